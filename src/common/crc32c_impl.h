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

/* The table size this build was compiled with (PETREL_CRC32C_TABLE_BYTES), so tests can check
 * that a build switch reached the library. */
size_t pt_crc32c_table_bytes(void);

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

/*
 * Levels of x86-64 CPU the dispatcher tells apart, each including the ones below it. A level
 * decides which paths are available; the calibration picks among them (crc32c_hw.c).
 */
enum pt_crc32c_level {
    PT_CRC32C_LEVEL_TABLE = 0, /* no CRC instruction */
    PT_CRC32C_LEVEL_SSE42,     /* crc32 instruction, no PCLMULQDQ */
    PT_CRC32C_LEVEL_PCLMUL,    /* + PCLMULQDQ */
    PT_CRC32C_LEVEL_AVX2,      /* + AVX2 and VPCLMULQDQ */
    PT_CRC32C_LEVEL_AVX512,    /* + AVX-512F (VPCLMULQDQ on 512-bit registers) */
    PT_CRC32C_LEVEL_ARMV8,     /* AArch64 CRC32 instructions (another family, never forced) */
    PT_CRC32C_LEVEL_COUNT
};

/* The level of this CPU (probed once), and a short name for a level. */
enum pt_crc32c_level pt_crc32c_cpu_level(void);
const char *pt_crc32c_level_name(enum pt_crc32c_level level);

/*
 * For tests and benchmarks: make petrel_crc32c behave as on a CPU of `level` (at most this
 * CPU's level): the paths above it become unavailable and the calibration runs again among the
 * rest. Returns 0, or -1 if the CPU cannot run that level. PT_CRC32C_LEVEL_COUNT returns to
 * this CPU's own level. Safe while other threads compute CRCs (they see the old or the new
 * choice, both correct).
 */
int pt_crc32c_force_level(enum pt_crc32c_level level);

/*
 * The calibration's decision, a pure function so tests can feed it times: candidates in the
 * preferred order (the fallback order), with the time each took on the same buffer (0 when
 * none could be measured). The first candidate wins unless a later one is faster by more than
 * 1/8 of the winner's time; equal or unmeasured times keep the earlier one. Returns the
 * winner's index.
 */
size_t pt_crc32c_calibration_pick(const uint64_t *times, size_t count);

/* x86-64 with GNU C: crc32c_x86.c. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) &&                            \
    !defined(PETREL_CRC32C_NO_HW)
#define PT_CRC32C_X86 1
/* Bit (1 << impl) set for every x86 path this CPU and OS can run; PT_CRC32C_X86_AVX if AVX. */
unsigned pt_crc32c_x86_probe(void);
#define PT_CRC32C_X86_AVX (1u << 30)
/* A cycle counter (rdtsc) for the calibration. */
uint64_t pt_crc32c_x86_ticks(void);
uint32_t pt_crc32c_x86_sse42(uint32_t reg, const unsigned char *p, size_t len);
uint32_t pt_crc32c_x86_pclmul(uint32_t reg, const unsigned char *p, size_t len);
uint32_t pt_crc32c_x86_vpclmul256(uint32_t reg, const unsigned char *p, size_t len);
uint32_t pt_crc32c_x86_vpclmul512(uint32_t reg, const unsigned char *p, size_t len);
/* The sse42 and pclmul paths for CPUs with AVX: the same after vzeroupper (crc32c_x86.c). */
uint32_t pt_crc32c_x86_sse42_avx(uint32_t reg, const unsigned char *p, size_t len);
uint32_t pt_crc32c_x86_pclmul_avx(uint32_t reg, const unsigned char *p, size_t len);
/* The crc32 form of the sse42 path for CPUs without PCLMULQDQ, and its multiply. */
uint32_t pt_crc32c_x86_sse42_soft(uint32_t reg, const unsigned char *p, size_t len);
uint32_t pt_crc32c_x86_multiply_soft(uint32_t a, uint32_t b);
/* a * b mod P with PCLMULQDQ and the crc32 instruction (needs the PCLMUL level). */
uint32_t pt_crc32c_x86_multiply(uint32_t a, uint32_t b);
#endif

/* AArch64 with GNU C: crc32c_arm.c. */
#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__)) &&                           \
    !defined(PETREL_CRC32C_NO_HW)
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
