/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every Petrel format.
 *
 * Conventions: a CRC value is the finished CRC of some bytes (initial value and final xor
 * 0xFFFFFFFF applied), so crc32c("123456789") == 0xE3069283 and the CRC of no bytes is 0.
 * petrel_crc32c(crc, buf, len) continues a CRC: petrel_crc32c(petrel_crc32c(0, a), b) is the
 * CRC of a followed by b.
 *
 * The combine operations work on lengths up to 2^64-1 without touching data: they multiply
 * by x^(8n) mod P, computed by square-and-multiply over a table of x^(2^k) mod P for every k
 * up to 66 (never wrapped; see crc32c.c and docs/CRC32C.md).
 *
 * Plain C99 and no dependencies (the flash engine uses it); hardware paths are chosen at run
 * time on x86-64 (SSE4.2 crc32, PCLMULQDQ / VPCLMULQDQ folding) and ARMv8 (crc32c
 * instructions).
 */
#ifndef PETREL_CRC32C_H
#define PETREL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue `crc` (0 to start) over len bytes at buf. */
uint32_t petrel_crc32c(uint32_t crc, const void *buf, size_t len);

/* CRC of A followed by B, from crc(A), crc(B) and len(B). */
uint32_t petrel_crc32c_append(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* CRC of A xor B (byte-wise), for A and B of equal length len, from crc(A) and crc(B). */
uint32_t petrel_crc32c_xor(uint32_t crc_a, uint32_t crc_b, uint64_t len);

/*
 * The CRC of the bytes behind `crc` followed by `zeros` zero bytes; a negative count removes
 * that many trailing zero bytes (exact whenever the data did end in them).
 */
uint32_t petrel_crc32c_zero_extend(uint32_t crc, int64_t zeros);

/* Implementations, for tests and benchmarks. */
enum petrel_crc32c_impl {
    PETREL_CRC32C_TABLE = 0, /* portable slicing-by-8 */
    PETREL_CRC32C_SSE42,     /* x86-64 crc32 instruction, three interleaved streams */
    PETREL_CRC32C_PCLMUL,    /* x86-64 PCLMULQDQ folding */
    PETREL_CRC32C_VPCLMUL,   /* x86-64 AVX-512 VPCLMULQDQ folding */
    PETREL_CRC32C_ARMV8,     /* ARMv8 crc32c instructions */
    PETREL_CRC32C_IMPL_COUNT
};

/* Whether this CPU and build can run an implementation. */
int petrel_crc32c_impl_available(enum petrel_crc32c_impl impl);

/* Run one implementation directly (must be available). */
uint32_t petrel_crc32c_with(enum petrel_crc32c_impl impl, uint32_t crc, const void *buf,
                            size_t len);

/*
 * The implementation petrel_crc32c dispatches to for large buffers (the choice also depends on
 * the buffer size: short buffers may take another path), and a short name for any
 * implementation.
 */
enum petrel_crc32c_impl petrel_crc32c_best(void);
const char *petrel_crc32c_impl_name(enum petrel_crc32c_impl impl);

#endif
