/*
 * AArch64 CRC-32C path on the raw register (crc32c_impl.h): the ARMv8 crc32c instructions
 * (__crc32cd on 8 bytes, 3-cycle latency on common cores) on three independent streams,
 * joined by multiplying the first two registers by x^(8n) mod P (PMULL and the shared
 * constants of crc32c_shift.inc where the CPU has PMULL, the portable multiply otherwise); plus
 * pt_crc32c_arm_multiply, the a * b mod P behind the combine operations, from a PMULL product
 * reduced with one crc32cw.
 *
 * Nothing here runs unless pt_crc32c_arm_probe (getauxval on Linux) found the instructions;
 * every function carries its own target attribute, so no global -march flag is needed. Never
 * reads outside [p, p + len). GNU C; compiled to nothing on other CPUs.
 */
#include "common/crc32c_impl.h"

#ifdef PT_CRC32C_ARM

#include <arm_acle.h>
#include <arm_neon.h>
#include <string.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif

#include "crc32c_shift.inc"

#ifndef HWCAP_PMULL
#define HWCAP_PMULL (1 << 4)
#endif
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif

#define TARGET_CRC __attribute__((target("+crc")))
#define TARGET_CRC_PMULL __attribute__((target("+crc+crypto")))

unsigned pt_crc32c_arm_probe(void)
{
    unsigned found = 0;
#if defined(__linux__)
    unsigned long caps = getauxval(AT_HWCAP);
    if (caps & HWCAP_CRC32) found |= 1u << PETREL_CRC32C_ARMV8;
    if ((caps & HWCAP_CRC32) && (caps & HWCAP_PMULL)) found |= PT_CRC32C_ARM_PMULL;
#elif defined(__ARM_FEATURE_CRC32)
    /* No way to ask the OS: trust the compiler's target (e.g. -march=armv8.1-a). */
    found |= 1u << PETREL_CRC32C_ARMV8;
#endif
    return found;
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* the CRC wants little-endian words: AArch64 Linux is little-endian */
}

TARGET_CRC_PMULL uint32_t pt_crc32c_arm_multiply(uint32_t a, uint32_t b)
{
    /* As on x86 (crc32c_x86.c): the product shifted up one bit is a*b as a reflected 64-bit
     * polynomial; crc32cw reduces its low half (degree >= 32) and the high half adds in. */
    uint64_t ab = (uint64_t)vmull_p64((poly64_t)a, (poly64_t)b) << 1;
    return __crc32cw(0, (uint32_t)ab) ^ (uint32_t)(ab >> 32);
}

/* Three streams of m words each from reg (the other two from 0); the three registers. */
TARGET_CRC static inline void three_streams(uint32_t *a, uint32_t *b, uint32_t *c,
                                            const unsigned char *p, size_t m)
{
    const unsigned char *end = p + 8 * m;
    size_t stride = 8 * m;
    uint32_t ra = *a, rb = 0, rc = 0;
    for (; p < end; p += 8) {
        ra = __crc32cd(ra, load64(p));
        rb = __crc32cd(rb, load64(p + stride));
        rc = __crc32cd(rc, load64(p + 2 * stride));
    }
    *a = ra;
    *b = rb;
    *c = rc;
}

/* With PMULL: r * x^(64m) = crc32cd(0, pmull(r, x^(64m - 33))), as on x86 (docs/CRC32C.md). */
TARGET_CRC_PMULL static inline uint32_t shift_pmull(uint32_t r, size_t m)
{
    return __crc32cd(0, (uint64_t)vmull_p64((poly64_t)r, (poly64_t)crc32c_shift[m - 1]));
}

/*
 * With PMULL (the crypto extension): streams of any m <= 128 words, so every buffer from 24
 * bytes runs on three streams. Without it: streams of exactly 1 KiB, joined with the portable
 * multiply by x^(8 * 1024) and x^(16 * 1024) (computed once), and the rest on one stream.
 * crc32c_hw.c picks the form from pt_crc32c_arm_probe.
 */
#define STREAM_WORDS ((size_t)128) /* 1 KiB a stream: the join costs about 3% of a round */

TARGET_CRC_PMULL uint32_t pt_crc32c_arm_crc_pmull(uint32_t reg, const unsigned char *p, size_t len)
{
    while (len >= 24) {
        size_t m = len / 24 < STREAM_WORDS ? len / 24 : STREAM_WORDS;
        uint32_t a = reg, b, c;
        three_streams(&a, &b, &c, p, m);
        reg = shift_pmull(a, 2 * m) ^ shift_pmull(b, m) ^ c;
        p += 24 * m;
        len -= 24 * m;
    }
    while (len >= 8) {
        reg = __crc32cd(reg, load64(p));
        p += 8;
        len -= 8;
    }
    while (len--)
        reg = __crc32cb(reg, *p++);
    return reg;
}

/* x^(8 * bytes) mod P, from the power tables in crc32c.c. */
static uint32_t arm_shift_const(size_t bytes)
{
    /* zero_extend(c, n) is ~(x^(8n) * ~c): with ~c = x^0 it yields ~x^(8n). */
    return ~petrel_crc32c_zero_extend(~0x80000000u, (int64_t)bytes);
}

TARGET_CRC uint32_t pt_crc32c_arm_crc_plain(uint32_t reg, const unsigned char *p, size_t len)
{
    static uint32_t k1, k2; /* x^(8 * 1024) and x^(16 * 1024) mod P, once computed */
    if (len >= 24 * STREAM_WORDS) {
        uint32_t s1 = __atomic_load_n(&k1, __ATOMIC_RELAXED);
        uint32_t s2 = __atomic_load_n(&k2, __ATOMIC_RELAXED);
        if (!s1 || !s2) { /* never 0: x is invertible mod P */
            s1 = arm_shift_const(8 * STREAM_WORDS);
            s2 = arm_shift_const(16 * STREAM_WORDS);
            __atomic_store_n(&k1, s1, __ATOMIC_RELAXED);
            __atomic_store_n(&k2, s2, __ATOMIC_RELAXED);
        }
        while (len >= 24 * STREAM_WORDS) {
            uint32_t a = reg, b, c;
            three_streams(&a, &b, &c, p, STREAM_WORDS);
            reg = pt_crc32c_multiply_portable(a, s2) ^ pt_crc32c_multiply_portable(b, s1) ^ c;
            p += 24 * STREAM_WORDS;
            len -= 24 * STREAM_WORDS;
        }
    }
    while (len >= 8) {
        reg = __crc32cd(reg, load64(p));
        p += 8;
        len -= 8;
    }
    while (len--)
        reg = __crc32cb(reg, *p++);
    return reg;
}

#else
typedef int pt_crc32c_arm_unused; /* ISO C wants a non-empty file */
#endif /* PT_CRC32C_ARM */
