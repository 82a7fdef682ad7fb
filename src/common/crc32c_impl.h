/*
 * Internal interface between the portable CRC-32C core (crc32c.c) and the hardware paths.
 * Not installed; only src/common uses it.
 */
#ifndef PETREL_CRC32C_IMPL_H
#define PETREL_CRC32C_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "petrel/crc32c.h"

/* Table path on the raw register (no inversions), for hardware paths' heads and tails. */
uint32_t pt_crc32c_table_raw(uint32_t reg, const unsigned char *p, size_t len);

/* a * b mod P in the reflected representation: portable, and the fastest available. */
uint32_t pt_crc32c_multiply_portable(uint32_t a, uint32_t b);
uint32_t pt_crc32c_multiply(uint32_t a, uint32_t b);

/* Hardware paths: availability (CPU and build), the best one, and running one. */
int pt_crc32c_hw_available(enum petrel_crc32c_impl impl);
enum petrel_crc32c_impl pt_crc32c_hw_best(void);
uint32_t pt_crc32c_hw(enum petrel_crc32c_impl impl, uint32_t crc, const void *buf, size_t len);

#endif
