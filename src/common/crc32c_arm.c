/*
 * AArch64 CRC-32C path on the raw register (crc32c_impl.h): the ARMv8 crc32c instructions
 * (__crc32cd on 8 bytes, 3-cycle latency on common cores) on three independent streams,
 * joined by multiplying the first two registers by x^(8n) mod P; plus
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

/* x^(8 * bytes) mod P for the stream joins, from the power tables in crc32c.c. */
static uint32_t arm_shift_const(size_t bytes)
{
    /* zero_extend(c, n) is ~(x^(8n) * ~c): with ~c = x^0 it yields ~x^(8n). */
    return ~petrel_crc32c_zero_extend(~0x80000000u, (int64_t)bytes);
}

#define STREAM_BYTES 1024 /* 1 KiB a stream: the join costs about 3% of a round */

TARGET_CRC uint32_t pt_crc32c_arm_crc(uint32_t reg, const unsigned char *p, size_t len)
{
    static uint32_t k1, k2; /* x^(8*STREAM_BYTES) and x^(16*STREAM_BYTES) mod P */
    if (len >= 3 * STREAM_BYTES) {
        uint32_t a1 = __atomic_load_n(&k1, __ATOMIC_RELAXED);
        uint32_t a2 = __atomic_load_n(&k2, __ATOMIC_RELAXED);
        if (!a1 || !a2) {
            a1 = arm_shift_const(STREAM_BYTES);
            a2 = arm_shift_const(2 * STREAM_BYTES);
            __atomic_store_n(&k1, a1, __ATOMIC_RELAXED);
            __atomic_store_n(&k2, a2, __ATOMIC_RELAXED);
        }
        while (len >= 3 * STREAM_BYTES) {
            uint32_t a = reg, b = 0, c = 0;
            size_t i;
            for (i = 0; i < STREAM_BYTES; i += 8) {
                a = __crc32cd(a, load64(p + i));
                b = __crc32cd(b, load64(p + STREAM_BYTES + i));
                c = __crc32cd(c, load64(p + 2 * STREAM_BYTES + i));
            }
            reg = pt_crc32c_multiply(a, a2) ^ pt_crc32c_multiply(b, a1) ^ c;
            p += 3 * STREAM_BYTES;
            len -= 3 * STREAM_BYTES;
        }
    }
    while (len >= 8) {
        reg = __crc32cd(reg, load64(p));
        p += 8;
        len -= 8;
    }
    while (len--) reg = __crc32cb(reg, *p++);
    return reg;
}

#else
typedef int pt_crc32c_arm_unused; /* ISO C wants a non-empty file */
#endif /* PT_CRC32C_ARM */
