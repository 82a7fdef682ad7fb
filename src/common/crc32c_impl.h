/*
 * Internal interface between the portable CRC-32C core (crc32c.c), the run-time choice of a
 * path (crc32c_hw.c) and the hardware paths (crc32c_x86.c, crc32c_arm.c). Not installed; only
 * src/common and the tests use it.
 *
 * Every path function here works on the raw CRC register (no pre/post inversion) and returns
 * exactly what pt_crc32c_table_raw returns for the same register, bytes and length, whatever
 * the length or alignment. A path never reads outside [p, p + len).
 */
#ifndef PETREL_CRC32C_IMPL_H
#define PETREL_CRC32C_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "petrel/crc32c.h"

/* A path on the raw register. */
typedef uint32_t (*pt_crc32c_raw_fn)(uint32_t reg, const unsigned char *p, size_t len);

/* Table path on the raw register (no inversions); also the hardware paths' fallback. */
uint32_t pt_crc32c_table_raw(uint32_t reg, const unsigned char *p, size_t len);

/* a * b mod P in the reflected representation: portable, and the fastest available. */
uint32_t pt_crc32c_multiply_portable(uint32_t a, uint32_t b);
uint32_t pt_crc32c_multiply(uint32_t a, uint32_t b);

/* Hardware paths: availability (CPU and build) and running one on the raw register. */
int pt_crc32c_hw_available(enum petrel_crc32c_impl impl);
uint32_t pt_crc32c_hw(enum petrel_crc32c_impl impl, uint32_t reg, const void *buf, size_t len);

/*
 * The path petrel_crc32c takes for a buffer of len bytes (resolved once per process), and
 * running that choice on the raw register. pt_crc32c_choice(SIZE_MAX) is the path for large
 * buffers, which petrel_crc32c_best() reports.
 */
enum petrel_crc32c_impl pt_crc32c_choice(size_t len);
uint32_t pt_crc32c_auto(uint32_t reg, const void *buf, size_t len);

/* x86-64 with GNU C: crc32c_x86.c. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PT_CRC32C_X86 1
/* Bit (1 << impl) set for every x86 path this CPU and OS can run. */
unsigned pt_crc32c_x86_probe(void);
uint32_t pt_crc32c_x86_sse42(uint32_t reg, const unsigned char *p, size_t len);
uint32_t pt_crc32c_x86_pclmul(uint32_t reg, const unsigned char *p, size_t len);
uint32_t pt_crc32c_x86_vpclmul(uint32_t reg, const unsigned char *p, size_t len);
/* a * b mod P with PCLMULQDQ and the crc32 instruction (needs the SSE42 path's features). */
uint32_t pt_crc32c_x86_multiply(uint32_t a, uint32_t b);
#endif

/* AArch64 with GNU C: crc32c_arm.c. */
#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define PT_CRC32C_ARM 1
/* Bit (1 << PETREL_CRC32C_ARMV8) if the CPU has the CRC32 instructions; bit 31 if also PMULL. */
unsigned pt_crc32c_arm_probe(void);
#define PT_CRC32C_ARM_PMULL (1u << 31)
/* The ARMV8 path in two forms: the CRC32 instructions alone, and with PMULL joins. */
uint32_t pt_crc32c_arm_crc_plain(uint32_t reg, const unsigned char *p, size_t len);
uint32_t pt_crc32c_arm_crc_pmull(uint32_t reg, const unsigned char *p, size_t len);
/* a * b mod P with PMULL and the crc32cw instruction (needs both). */
uint32_t pt_crc32c_arm_multiply(uint32_t a, uint32_t b);
#endif

#endif
