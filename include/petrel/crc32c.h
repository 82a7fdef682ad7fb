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
 *
 * Build switches (define them for every file of src/common, e.g. -DPETREL_CRC32C_NO_HW):
 *
 *   PETREL_CRC32C_TABLE_BYTES  size of the portable path's table, which is also the whole
 *                              CRC on a CPU without CRC instructions (microcontrollers):
 *       8192  (default) slicing-by-8 over eight 256-entry tables, 8 bytes a step; fastest
 *             without hardware (about 2.5 GB/s on a 2020s x86-64 core);
 *       1024  one 256-entry table, a byte a step (about 5 times slower: 0.5 GB/s);
 *       64    one 16-entry table, half a byte a step (about half as fast again): for
 *             parts where every byte of flash counts.
 *             Any other value is a compile error. The API and every result are the same.
 *   PETREL_CRC32C_NO_HW        no hardware path: the table path only, no CPU probing, no
 *                              calibration; crc32c_x86.c and crc32c_arm.c compile to nothing.
 *                              Without it, hardware paths exist only where the compiler is GNU
 *                              C on x86-64 or AArch64, so a Cortex-M build gets the table path
 *                              either way.
 *
 * `make crc-variants` builds and runs the CRC tests and the flash engine's tests in each
 * combination; `make bench` prints the table path's speed in each size.
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
    PETREL_CRC32C_TABLE = 0,  /* portable table path (its size: PETREL_CRC32C_TABLE_BYTES) */
    PETREL_CRC32C_SSE42,      /* x86-64 crc32 instruction, three interleaved streams */
    PETREL_CRC32C_PCLMUL,     /* x86-64 PCLMULQDQ folding beside crc32 streams */
    PETREL_CRC32C_VPCLMUL256, /* x86-64 AVX2 + VPCLMULQDQ 256-bit folding (no AVX-512) */
    PETREL_CRC32C_VPCLMUL512, /* x86-64 AVX-512 VPCLMULQDQ 512-bit folding */
    PETREL_CRC32C_ARMV8,      /* ARMv8 crc32c instructions */
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
 * implementation. The choice is made once per process at first use, from the CPU's features
 * and a calibration of a few microseconds that times each candidate on 4 KiB
 * (docs/CRC32C.md, "Dispatch").
 */
enum petrel_crc32c_impl petrel_crc32c_best(void);
const char *petrel_crc32c_impl_name(enum petrel_crc32c_impl impl);

#endif
