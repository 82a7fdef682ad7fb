/*
 * x86-64 CRC-32C paths, all on the raw register (crc32c_impl.h):
 *   sse42      - the crc32 instruction on three independent streams (it has a 3-cycle latency
 *                and a throughput of one per cycle), the streams joined by a carry-less
 *                multiply by x^(8n) mod P whose 64-bit product one more crc32 instruction
 *                reduces; two forms: the multiply by PCLMULQDQ, or (CPUs with SSE4.2 and no
 *                PCLMULQDQ) by a 4-bit-window multiply in general registers;
 *   pclmul     - PCLMULQDQ folding of eight 128-bit lanes (128 bytes a round) while three
 *                crc32 streams run beside it on other execution units; the last lane is
 *                reduced with two crc32 instructions and the four registers joined as above;
 *   vpclmul256 - the same with AVX2 + VPCLMULQDQ folding eight 256-bit registers (256 bytes
 *                a round; no AVX-512 needed), and folding alone for mid-sized buffers;
 *   vpclmul512 - the same with AVX-512 VPCLMULQDQ folding four 512-bit registers;
 * the sse42 and pclmul paths also in a form for CPUs with AVX, which clears the upper halves of
 * the vector registers first (legacy-SSE code runs at half speed while they are dirty); plus
 * pt_crc32c_x86_multiply, the a * b mod P behind append / xor / zero_extend, and a cycle
 * counter for the dispatcher's calibration.
 *
 * Each function carries its own target attribute, so the file builds without global -m flags
 * and nothing here runs unless pt_crc32c_x86_probe (cpuid, and xgetbv for the AVX and AVX-512
 * state) said the CPU and OS support it. A path never reads outside [p, p + len): tails shorter
 * than a vector go through the crc32 instruction. The math behind every constant is in
 * docs/CRC32C.md; crc32c_shift.inc holds them.
 *
 * GNU C (target attributes, <immintrin.h>); compiled to nothing on other CPUs.
 */
#include "common/crc32c_impl.h"

#ifdef PT_CRC32C_X86

#include <cpuid.h>
#include <immintrin.h>
#include <string.h>

#include "crc32c_shift.inc"

/* x^(64m - 33) mod P: see crc32c_shift.inc. */
#define SHIFT(m) crc32c_shift[(m)-1]

#define TARGET_CRC __attribute__((target("sse4.2")))
#define TARGET_SSE42 __attribute__((target("sse4.2,pclmul")))
#define TARGET_AVX2 __attribute__((target("sse4.2,pclmul,avx2,vpclmulqdq")))
#define TARGET_AVX512 __attribute__((target("sse4.2,pclmul,avx2,avx512f,vpclmulqdq")))

/* --- probing ----------------------------------------------------------------------------- */

static uint64_t x86_xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

unsigned pt_crc32c_x86_probe(void)
{
    unsigned eax, ebx, ecx, edx, found = 0;
    uint64_t xcr0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    if (!(ecx & bit_SSE4_2)) return 0;
    found = 1u << PETREL_CRC32C_SSE42;
    if (!(ecx & bit_PCLMUL)) return found; /* first-generation Nehalem: the crc32 form alone */
    found |= 1u << PETREL_CRC32C_PCLMUL;
    if (!(ecx & bit_OSXSAVE)) return found;
    /* AVX needs the OS saving SSE and AVX state (XCR0 bits 1-2); AVX-512 also opmask, upper
     * ZMM and ZMM16-31 state (bits 5-7). */
    xcr0 = x86_xgetbv0();
    if (!(ecx & bit_AVX) || (xcr0 & 0x6) != 0x6) return found;
    found |= PT_CRC32C_X86_AVX;
    if (__get_cpuid_max(0, 0) < 7) return found;
    {
        unsigned b7, c7, a7, d7;
        __cpuid_count(7, 0, a7, b7, c7, d7);
        (void)a7;
        (void)d7;
        if (!(b7 & bit_AVX2) || !(c7 & bit_VPCLMULQDQ)) return found;
        found |= 1u << PETREL_CRC32C_VPCLMUL256;
        if ((b7 & bit_AVX512F) && (xcr0 & 0xe6) == 0xe6) found |= 1u << PETREL_CRC32C_VPCLMUL512;
    }
    return found;
}

uint64_t pt_crc32c_x86_ticks(void)
{
    return __rdtsc();
}

/* --- the crc32 instruction ---------------------------------------------------------------- */

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* One stream over len bytes: 8-byte words, then at most one 4-, 2- and 1-byte step. */
TARGET_CRC static inline uint32_t crc32_stream(uint32_t reg, const unsigned char *p, size_t len)
{
    uint64_t r = reg;
    uint32_t r32;
    while (len >= 8) {
        r = _mm_crc32_u64(r, load64(p));
        p += 8;
        len -= 8;
    }
    r32 = (uint32_t)r;
    if (len & 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        r32 = _mm_crc32_u32(r32, v);
        p += 4;
    }
    if (len & 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        r32 = _mm_crc32_u16(r32, v);
        p += 2;
    }
    if (len & 1) r32 = _mm_crc32_u8(r32, *p);
    return r32;
}

/*
 * The folding paths start at an 8-byte boundary: on the AMD EPYC we measured they ran at about
 * 60% of their speed on buffers misaligned by 1 or 2 bytes, and at most three crc32 steps (4,
 * 2 and 1 bytes) put that right. Callers ensure len > 7.
 */
#define ALIGNED8(p) (((uintptr_t)(p)&7) == 0)

TARGET_CRC static inline uint32_t align8(uint32_t reg, const unsigned char **p, size_t *len)
{
    size_t head = (size_t)(-(uintptr_t)*p & 7);
    reg = crc32_stream(reg, *p, head);
    *p += head;
    *len -= head;
    return reg;
}

/* reg_a * x^(128m) + reg_b * x^(64m) mod P: a 3-stream join over blocks of 8m bytes. */
TARGET_SSE42 static inline uint64_t join_two(uint64_t reg_a, uint64_t reg_b, size_t m)
{
    __m128i regs = _mm_set_epi64x((long long)reg_b, (long long)reg_a);
    __m128i k = _mm_set_epi64x(SHIFT(m), SHIFT(2 * m));
    __m128i prod =
        _mm_xor_si128(_mm_clmulepi64_si128(regs, k, 0x00), _mm_clmulepi64_si128(regs, k, 0x11));
    return _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(prod));
}

/* Three streams of m words each from registers a, 0 and 0: their registers in a, b, c. */
#define STREAMS3(a, b, c, p, m)                                                                    \
    do {                                                                                           \
        const unsigned char *s3_p_ = (p), *s3_end_ = s3_p_ + 8 * (m);                              \
        size_t s3_stride_ = 8 * (m);                                                               \
        (b) = 0;                                                                                   \
        (c) = 0;                                                                                   \
        for (; s3_p_ < s3_end_; s3_p_ += 8) {                                                      \
            (a) = _mm_crc32_u64((a), load64(s3_p_));                                               \
            (b) = _mm_crc32_u64((b), load64(s3_p_ + s3_stride_));                                  \
            (c) = _mm_crc32_u64((c), load64(s3_p_ + 2 * s3_stride_));                              \
        }                                                                                          \
    } while (0)

/* Three streams of m words (m = 1..128) from reg; returns the register after 24m bytes. */
TARGET_SSE42 static inline uint64_t three_streams(uint64_t a, const unsigned char *p, size_t m)
{
    uint64_t b, c;
    STREAMS3(a, b, c, p, m);
    return join_two(a, b, m) ^ c;
}

/* Below this one stream is faster: the join costs about as much as 64 bytes on one stream. */
#define THREE_STREAMS_MIN ((size_t)96)
#define STREAM_WORDS ((size_t)128) /* 1 KiB a stream: the join costs about 3% of a round */

TARGET_SSE42 uint32_t pt_crc32c_x86_sse42(uint32_t reg, const unsigned char *p, size_t len)
{
    uint64_t r = reg;
    if (len >= THREE_STREAMS_MIN) {
        while (len >= 24 * STREAM_WORDS) {
            r = three_streams(r, p, STREAM_WORDS);
            p += 24 * STREAM_WORDS;
            len -= 24 * STREAM_WORDS;
        }
        if (len >= 24) {
            size_t m = len / 24;
            r = three_streams(r, p, m);
            p += 24 * m;
            len -= 24 * m;
        }
    }
    return crc32_stream((uint32_t)r, p, len);
}

/* --- the crc32 instruction alone (SSE4.2 without PCLMULQDQ) -------------------------------- */

/*
 * a * b as polynomials (carry-less), a and b below 2^32: what PCLMULQDQ gives, from a table
 * of the 16 multiples of b by a 4-bit polynomial and eight steps over a's nibbles. The table
 * costs 14 shifts and xors; with the steps the whole multiply is about 30 cycles, which the
 * out-of-order core mostly hides behind the next streams' crc32 instructions.
 */
static inline uint64_t clmul32_soft(uint32_t a, uint32_t b)
{
    uint64_t t[16], r = 0;
    int i;
    t[0] = 0;
    t[1] = b;
    for (i = 2; i < 16; i += 2) {
        t[i] = t[i / 2] << 1;
        t[i + 1] = t[i] ^ b;
    }
    for (i = 28; i >= 0; i -= 4)
        r = r << 4 ^ t[a >> i & 15];
    return r;
}

/* reg_a * x^(128m) + reg_b * x^(64m) mod P, as join_two, without PCLMULQDQ. */
TARGET_CRC static inline uint64_t join_two_soft(uint64_t reg_a, uint64_t reg_b, size_t m)
{
    return _mm_crc32_u64(0, clmul32_soft((uint32_t)reg_a, SHIFT(2 * m)) ^
                                clmul32_soft((uint32_t)reg_b, SHIFT(m)));
}

/* Streams of up to 2 KiB: the join costs more than with PCLMULQDQ, so it comes less often. */
#define STREAM_WORDS_SOFT ((size_t)256)

TARGET_CRC uint32_t pt_crc32c_x86_sse42_soft(uint32_t reg, const unsigned char *p, size_t len)
{
    uint64_t r = reg;
    if (len >= THREE_STREAMS_MIN) {
        while (len >= 24) {
            size_t m = len / 24 < STREAM_WORDS_SOFT ? len / 24 : STREAM_WORDS_SOFT;
            uint64_t a = r, b, c;
            STREAMS3(a, b, c, p, m);
            r = join_two_soft(a, b, m) ^ c;
            p += 24 * m;
            len -= 24 * m;
        }
    }
    return crc32_stream((uint32_t)r, p, len);
}

TARGET_CRC uint32_t pt_crc32c_x86_multiply_soft(uint32_t a, uint32_t b)
{
    /* As pt_crc32c_x86_multiply below, with the product from clmul32_soft. */
    uint64_t ab = clmul32_soft(a, b) << 1;
    return _mm_crc32_u32(0, (uint32_t)ab) ^ (uint32_t)(ab >> 32);
}

TARGET_SSE42 uint32_t pt_crc32c_x86_multiply(uint32_t a, uint32_t b)
{
    /* The 64-bit product, shifted up one bit, is a*b as a reflected 64-bit polynomial: its
     * low half is the part of degree >= 32 (which crc32 reduces: it multiplies by x^32), its
     * high half the part below. */
    __m128i prod = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)a), _mm_cvtsi32_si128((int)b), 0);
    uint64_t ab = (uint64_t)_mm_cvtsi128_si64(prod) << 1;
    return _mm_crc32_u32(0, (uint32_t)ab) ^ (uint32_t)(ab >> 32);
}

/* --- PCLMULQDQ folding ---------------------------------------------------------------------- */

/* Constants to move a 128-bit lane D bits (a multiple of 64) later. */
#define FOLD128(d) _mm_set_epi64x(SHIFT((d) / 64), SHIFT((d) / 64 + 1))

TARGET_SSE42 static inline __m128i fold128(__m128i x, __m128i k, __m128i y)
{
    return _mm_xor_si128(
        y, _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)));
}

TARGET_SSE42 static inline __m128i load128(const unsigned char *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* The register after a last lane x (all earlier data folded into it), then the tail. */
TARGET_SSE42 static inline uint32_t finish128(__m128i x, const unsigned char *p, size_t len)
{
    __m128i k = FOLD128(128);
    uint64_t r;
    while (len >= 16) {
        x = fold128(x, k, load128(p));
        p += 16;
        len -= 16;
    }
    r = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));
    r = _mm_crc32_u64(r, (uint64_t)_mm_extract_epi64(x, 1));
    return crc32_stream((uint32_t)r, p, len);
}

/* v * x^(192w) + a * x^(128w) + b * x^(64w) + c mod P: the registers of a vector part and
 * three streams of w words each (3w <= 256) that follow it, joined. */
TARGET_SSE42 static inline uint32_t join_streams(uint64_t v, uint64_t a, uint64_t b, uint64_t c,
                                                 size_t w)
{
    __m128i regs = _mm_set_epi64x((long long)a, (long long)v);
    __m128i k = _mm_set_epi64x(SHIFT(2 * w), SHIFT(3 * w));
    __m128i prod =
        _mm_xor_si128(_mm_clmulepi64_si128(regs, k, 0x00), _mm_clmulepi64_si128(regs, k, 0x11));
    prod = _mm_xor_si128(prod, _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)b),
                                                    _mm_cvtsi32_si128((int)SHIFT(w)), 0));
    return (uint32_t)(_mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(prod)) ^ c);
}

/* r * x^(64m) + group mod P, for a constant k = SHIFT(m) given in a register. */
TARGET_SSE42 static inline uint64_t shift_add(uint64_t r, __m128i k, uint32_t group)
{
    __m128i prod = _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)r), k, 0x00);
    return _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(prod)) ^ group;
}

/* The register of the last lane's folded data (two crc32 on its halves). */
TARGET_SSE42 static inline uint64_t reduce128(__m128i x)
{
    uint64_t r = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));
    return _mm_crc32_u64(r, (uint64_t)_mm_extract_epi64(x, 1));
}

/* Eight lanes 16 bytes apart folded into the last, each moved by its own distance. */
TARGET_SSE42 static inline __m128i join128x8(__m128i x0, __m128i x1, __m128i x2, __m128i x3,
                                             __m128i x4, __m128i x5, __m128i x6, __m128i x7)
{
    x0 = fold128(x0, FOLD128(896), fold128(x1, FOLD128(768), x7));
    x2 = fold128(x2, FOLD128(640), fold128(x3, FOLD128(512), x0));
    x4 = fold128(x4, FOLD128(384), fold128(x5, FOLD128(256), x2));
    return fold128(x6, FOLD128(128), x4);
}

/*
 * As on AVX-512 below, large buffers keep the crc32 instruction busy beside the multiplier: a
 * round folds 128 bytes in eight lanes while three streams take 80 bytes each further on. The
 * multiplier does one product a cycle on recent Intel cores and one every two cycles on the
 * AMD EPYC we measured (whatever the vector width), the crc32 instruction 8 bytes a cycle on
 * both: ten words a stream make the 16 products of a round take about as long as its 30 crc32
 * on AMD (eight, the first choice, left the multiplier the bottleneck there: 38 GB/s against
 * 40-44 with ten to twelve) while costing Intel little. Groups of up to 17 rounds.
 */
#define ROUND128_VECTOR ((size_t)128)
#define ROUND128_WORDS ((size_t)10)
#define ROUND128_BYTES (ROUND128_VECTOR + 24 * ROUND128_WORDS)
#define GROUP128_ROUNDS ((size_t)17) /* largest n whose joins SHIFT(30n) stay within the table */
#define HYBRID128_MIN (3 * ROUND128_BYTES)

#define LOAD8(p)                                                                                   \
    x0 = load128(p);                                                                               \
    x1 = load128((p) + 16);                                                                        \
    x2 = load128((p) + 32);                                                                        \
    x3 = load128((p) + 48);                                                                        \
    x4 = load128((p) + 64);                                                                        \
    x5 = load128((p) + 80);                                                                        \
    x6 = load128((p) + 96);                                                                        \
    x7 = load128((p) + 112)
#define FOLD8(p, k)                                                                                \
    x0 = fold128(x0, k, load128(p));                                                               \
    x1 = fold128(x1, k, load128((p) + 16));                                                        \
    x2 = fold128(x2, k, load128((p) + 32));                                                        \
    x3 = fold128(x3, k, load128((p) + 48));                                                        \
    x4 = fold128(x4, k, load128((p) + 64));                                                        \
    x5 = fold128(x5, k, load128((p) + 80));                                                        \
    x6 = fold128(x6, k, load128((p) + 96));                                                        \
    x7 = fold128(x7, k, load128((p) + 112))

/* The register after n rounds (n >= 1) from reg. */
TARGET_SSE42 static uint32_t hybrid128_group(uint32_t reg, const unsigned char *p, size_t n)
{
    __m128i x0, x1, x2, x3, x4, x5, x6, x7, k = FOLD128(1024);
    const unsigned char *s = p + ROUND128_VECTOR * n;
    size_t stride = 8 * ROUND128_WORDS * n, i, j;
    uint64_t a = 0, b = 0, c = 0;
    LOAD8(p);
    x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)reg));
    for (i = 1;; i++) {
        for (j = 0; j < ROUND128_WORDS; j++) {
            a = _mm_crc32_u64(a, load64(s + 8 * j));
            b = _mm_crc32_u64(b, load64(s + stride + 8 * j));
            c = _mm_crc32_u64(c, load64(s + 2 * stride + 8 * j));
        }
        s += 8 * ROUND128_WORDS;
        if (i == n) break;
        p += ROUND128_VECTOR;
        FOLD8(p, k);
    }
    return join_streams(reduce128(join128x8(x0, x1, x2, x3, x4, x5, x6, x7)), a, b, c,
                        ROUND128_WORDS * n);
}

TARGET_SSE42 uint32_t pt_crc32c_x86_pclmul(uint32_t reg, const unsigned char *p, size_t len)
{
    if (len < HYBRID128_MIN) return pt_crc32c_x86_sse42(reg, p, len);
    if (!ALIGNED8(p)) reg = align8(reg, &p, &len);
    if (len >= 2 * GROUP128_ROUNDS * ROUND128_BYTES) {
        /* Whole groups start from 0 and run independently of each other; the running register
         * moves over a group (6256 bytes, 782 words) with one multiply. */
        __m128i k = _mm_cvtsi32_si128((int)CRC32C_X86_SHIFT_782);
        uint64_t r = reg;
        while (len >= 2 * GROUP128_ROUNDS * ROUND128_BYTES) {
            r = shift_add(r, k, hybrid128_group(0, p, GROUP128_ROUNDS));
            p += GROUP128_ROUNDS * ROUND128_BYTES;
            len -= GROUP128_ROUNDS * ROUND128_BYTES;
        }
        reg = (uint32_t)r;
    }
    while (len >= HYBRID128_MIN) {
        size_t n = len / ROUND128_BYTES < GROUP128_ROUNDS ? len / ROUND128_BYTES : GROUP128_ROUNDS;
        reg = hybrid128_group(reg, p, n);
        p += n * ROUND128_BYTES;
        len -= n * ROUND128_BYTES;
    }
    return pt_crc32c_x86_sse42(reg, p, len);
}

/* --- the same on CPUs with AVX ------------------------------------------------------------- */

/*
 * The sse42 and pclmul paths are legacy-SSE code (they must run on CPUs without AVX). Such
 * code pays a false dependency on the upper half of every vector register it writes while
 * that half is dirty: after AVX or AVX-512 code that did not end with vzeroupper, as ISA-L's
 * assembly leaves it. On the AMD EPYC we measured, both paths then ran at half speed (sse42
 * 4 KiB: 30 GB/s clean, 15.7 dirty), which is how an automatic choice of pclmul came to run
 * slower than the crc32 streams. On CPUs with AVX these forms clear the upper halves first
 * (vzeroupper: a cycle, and the ABI keeps no vector value live across a call). Buffers below
 * THREE_STREAMS_MIN use general registers only and skip it.
 */
#define TARGET_AVX __attribute__((target("sse4.2,pclmul,avx")))

TARGET_AVX uint32_t pt_crc32c_x86_sse42_avx(uint32_t reg, const unsigned char *p, size_t len)
{
    if (len >= THREE_STREAMS_MIN) _mm256_zeroupper();
    return pt_crc32c_x86_sse42(reg, p, len);
}

TARGET_AVX uint32_t pt_crc32c_x86_pclmul_avx(uint32_t reg, const unsigned char *p, size_t len)
{
    _mm256_zeroupper();
    return pt_crc32c_x86_pclmul(reg, p, len);
}

/* --- AVX-512: VPCLMULQDQ folding beside the crc32 instruction ----------------------------- */

/*
 * The folding loop is bound by the carry-less multiplier and the crc32 instruction runs on
 * other execution units, so large buffers use both at once: a round folds 256 bytes in four
 * 512-bit registers while three crc32 streams take 48 bytes each further on. A group of n
 * rounds covers 400n bytes laid out as [256n folded][48n stream a][48n stream b][48n stream c];
 * the four registers are joined with carry-less multiplies by x^(8k) mod P.
 */
#define ROUND_VECTOR ((size_t)256)
#define ROUND_WORDS ((size_t)6) /* crc32 words a stream takes in one round */
#define ROUND_BYTES (ROUND_VECTOR + 24 * ROUND_WORDS)
#define GROUP_ROUNDS ((size_t)28) /* largest n whose joins SHIFT(18n) stay within the table */
#define HYBRID_MIN (6 * ROUND_BYTES)
#define ALIGNX 63
#define VPCLMUL_MIN ((size_t)256) /* below this the three streams are as fast */

#define FOLD512(d) _mm512_broadcast_i32x4(FOLD128(d))

TARGET_AVX512 static inline __m512i fold512(__m512i x, __m512i k, __m512i y)
{
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
                                     _mm512_clmulepi64_epi128(x, k, 0x11), y, 0x96);
}

TARGET_AVX512 static inline __m512i load512(const unsigned char *p)
{
    return _mm512_loadu_si512((const void *)p);
}

/* 512-bit register holding `reg` in its low 32 bits. */
TARGET_AVX512 static inline __m512i reg512(uint32_t reg)
{
    return _mm512_inserti32x4(_mm512_setzero_si512(), _mm_cvtsi32_si128((int)reg), 0);
}

/* The four lanes of z folded into one 128-bit lane (lanes 0-2 move 384, 256 and 128 bits into
 * lane 3, whose constant 0 keeps it out of the products). */
TARGET_AVX512 static inline __m128i lanes512(__m512i z)
{
    __m512i k = _mm512_set_epi64(0, 0, SHIFT(2), SHIFT(3), SHIFT(4), SHIFT(5), SHIFT(6), SHIFT(7));
    __m512i prod = _mm512_xor_si512(_mm512_clmulepi64_epi128(z, k, 0x00),
                                    _mm512_clmulepi64_epi128(z, k, 0x11));
    __m256i half =
        _mm256_xor_si256(_mm512_castsi512_si256(prod), _mm512_extracti64x4_epi64(prod, 1));
    __m128i x = _mm_xor_si128(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
    return _mm_xor_si128(x, _mm512_extracti32x4_epi32(z, 3));
}

/* Four registers 64 bytes apart folded into the last one. */
TARGET_AVX512 static inline __m512i join512x4(__m512i z0, __m512i z1, __m512i z2, __m512i z3)
{
    z0 = fold512(z0, FOLD512(1536), z3);
    return fold512(z1, FOLD512(1024), fold512(z2, FOLD512(512), z0));
}

/* The register after n rounds (n >= 1) from reg. */
TARGET_AVX512 static uint32_t hybrid_group(uint32_t reg, const unsigned char *p, size_t n)
{
    __m512i z0, z1, z2, z3, k = FOLD512(2048);
    const unsigned char *s = p + ROUND_VECTOR * n;
    size_t stride = 8 * ROUND_WORDS * n, i, j;
    uint64_t a = 0, b = 0, c = 0;
    z0 = _mm512_xor_si512(load512(p), reg512(reg));
    z1 = load512(p + 64);
    z2 = load512(p + 128);
    z3 = load512(p + 192);
    for (i = 1;; i++) {
        for (j = 0; j < ROUND_WORDS; j++) {
            a = _mm_crc32_u64(a, load64(s + 8 * j));
            b = _mm_crc32_u64(b, load64(s + stride + 8 * j));
            c = _mm_crc32_u64(c, load64(s + 2 * stride + 8 * j));
        }
        s += 8 * ROUND_WORDS;
        if (i == n) break;
        p += ROUND_VECTOR;
        z0 = fold512(z0, k, load512(p));
        z1 = fold512(z1, k, load512(p + 64));
        z2 = fold512(z2, k, load512(p + 128));
        z3 = fold512(z3, k, load512(p + 192));
    }
    return join_streams(reduce128(lanes512(join512x4(z0, z1, z2, z3))), a, b, c, ROUND_WORDS * n);
}

/* Folding only, for buffers too short for round groups: 256, then 64 bytes at a time. */
TARGET_AVX512 static uint32_t fold_only(uint32_t reg, const unsigned char *p, size_t len)
{
    __m512i z0, z1, z2, z3, k = FOLD512(2048);
    z0 = _mm512_xor_si512(load512(p), reg512(reg));
    z1 = load512(p + 64);
    z2 = load512(p + 128);
    z3 = load512(p + 192);
    p += 256;
    len -= 256;
    while (len >= 256) {
        z0 = fold512(z0, k, load512(p));
        z1 = fold512(z1, k, load512(p + 64));
        z2 = fold512(z2, k, load512(p + 128));
        z3 = fold512(z3, k, load512(p + 192));
        p += 256;
        len -= 256;
    }
    z0 = join512x4(z0, z1, z2, z3);
    k = FOLD512(512);
    while (len >= 64) {
        z0 = fold512(z0, k, load512(p));
        p += 64;
        len -= 64;
    }
    return finish128(lanes512(z0), p, len);
}

TARGET_AVX512 uint32_t pt_crc32c_x86_vpclmul512(uint32_t reg, const unsigned char *p, size_t len)
{
    if (len < VPCLMUL_MIN) return pt_crc32c_x86_sse42_avx(reg, p, len);
    if (!ALIGNED8(p)) {
        reg = align8(reg, &p, &len);
        if (len < VPCLMUL_MIN) return pt_crc32c_x86_sse42_avx(reg, p, len);
    }
    if (len < HYBRID_MIN) return fold_only(reg, p, len);
    if (len >= 2 * GROUP_ROUNDS * ROUND_BYTES) {
        /* Whole groups start from 0, so each runs independently of the one before; the running
         * register moves over a group with one multiply by x^(8 * 11200). */
        __m128i k = _mm_cvtsi32_si128((int)CRC32C_X86_SHIFT_1400);
        uint64_t r = reg;
        while (len >= 2 * GROUP_ROUNDS * ROUND_BYTES) {
            r = shift_add(r, k, hybrid_group(0, p, GROUP_ROUNDS));
            p += GROUP_ROUNDS * ROUND_BYTES;
            len -= GROUP_ROUNDS * ROUND_BYTES;
        }
        reg = (uint32_t)r;
    }
    /* GROUP_ROUNDS <= len / ROUND_BYTES < 2 * GROUP_ROUNDS: one or two groups. */
    while (len >= HYBRID_MIN) {
        size_t n = len / ROUND_BYTES < GROUP_ROUNDS ? len / ROUND_BYTES : GROUP_ROUNDS;
        reg = hybrid_group(reg, p, n);
        p += n * ROUND_BYTES;
        len -= n * ROUND_BYTES;
    }
    return len >= VPCLMUL_MIN ? fold_only(reg, p, len) : pt_crc32c_x86_sse42_avx(reg, p, len);
}

/* --- AVX2: 256-bit VPCLMULQDQ folding beside the crc32 instruction ------------------------- */

/*
 * The AVX-512 design above with eight 256-bit registers in place of four 512-bit ones, for
 * CPUs with VPCLMULQDQ and no AVX-512 (AMD Zen 3, Intel Alder Lake and later client cores): a
 * round folds 256 bytes while three crc32 streams take 80 bytes each; without vpternlogq a
 * fold costs two xors. A 256-bit product takes as long as a 512-bit one on the AMD EPYC we
 * measured, so the round has twice the products per byte of the AVX-512 one; ten words a
 * stream (not six as there) balance them against the crc32 instruction: 55 GB/s against 48
 * with six. Groups of up to 17 rounds (CRC32C_X86_SHIFT_1054 moves over one).
 */
#define ROUND256_WORDS ((size_t)10)
#define ROUND256_BYTES (ROUND_VECTOR + 24 * ROUND256_WORDS)
#define GROUP256_ROUNDS ((size_t)17) /* largest n whose joins SHIFT(30n) stay within the table */
#define HYBRID256_MIN (3 * ROUND256_BYTES)
#define FOLD256(d) _mm256_broadcastsi128_si256(FOLD128(d))

TARGET_AVX2 static inline __m256i clmul256(__m256i x, __m256i k)
{
    return _mm256_xor_si256(_mm256_clmulepi64_epi128(x, k, 0x00),
                            _mm256_clmulepi64_epi128(x, k, 0x11));
}

TARGET_AVX2 static inline __m256i fold256(__m256i x, __m256i k, __m256i y)
{
    return _mm256_xor_si256(clmul256(x, k), y);
}

TARGET_AVX2 static inline __m256i load256(const unsigned char *p)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

/* The two lanes of z folded into one 128-bit lane. */
TARGET_AVX2 static inline __m128i lanes256(__m256i z)
{
    return fold128(_mm256_castsi256_si128(z), FOLD128(128), _mm256_extracti128_si256(z, 1));
}

/* Eight registers 32 bytes apart folded into the last one; the products are independent, so
 * they are summed as a tree rather than a chain. */
TARGET_AVX2 static inline __m256i join256x8(__m256i z0, __m256i z1, __m256i z2, __m256i z3,
                                            __m256i z4, __m256i z5, __m256i z6, __m256i z7)
{
    __m256i s01 = _mm256_xor_si256(clmul256(z0, FOLD256(1792)), clmul256(z1, FOLD256(1536)));
    __m256i s23 = _mm256_xor_si256(clmul256(z2, FOLD256(1280)), clmul256(z3, FOLD256(1024)));
    __m256i s45 = _mm256_xor_si256(clmul256(z4, FOLD256(768)), clmul256(z5, FOLD256(512)));
    __m256i s67 = fold256(z6, FOLD256(256), z7);
    return _mm256_xor_si256(_mm256_xor_si256(s01, s23), _mm256_xor_si256(s45, s67));
}

#define LOAD256X8(p)                                                                               \
    z0 = load256(p);                                                                               \
    z1 = load256((p) + 32);                                                                        \
    z2 = load256((p) + 64);                                                                        \
    z3 = load256((p) + 96);                                                                        \
    z4 = load256((p) + 128);                                                                       \
    z5 = load256((p) + 160);                                                                       \
    z6 = load256((p) + 192);                                                                       \
    z7 = load256((p) + 224)
#define FOLD256X8(p, k)                                                                            \
    z0 = fold256(z0, k, load256(p));                                                               \
    z1 = fold256(z1, k, load256((p) + 32));                                                        \
    z2 = fold256(z2, k, load256((p) + 64));                                                        \
    z3 = fold256(z3, k, load256((p) + 96));                                                        \
    z4 = fold256(z4, k, load256((p) + 128));                                                       \
    z5 = fold256(z5, k, load256((p) + 160));                                                       \
    z6 = fold256(z6, k, load256((p) + 192));                                                       \
    z7 = fold256(z7, k, load256((p) + 224))

/* The register after n rounds (n >= 1) from reg. */
TARGET_AVX2 static uint32_t hybrid256_group(uint32_t reg, const unsigned char *p, size_t n)
{
    __m256i z0, z1, z2, z3, z4, z5, z6, z7, k = FOLD256(2048);
    const unsigned char *s = p + ROUND_VECTOR * n;
    size_t stride = 8 * ROUND256_WORDS * n, i, j;
    uint64_t a = 0, b = 0, c = 0;
    LOAD256X8(p);
    z0 = _mm256_xor_si256(z0, _mm256_castsi128_si256(_mm_cvtsi32_si128((int)reg)));
    for (i = 1;; i++) {
        for (j = 0; j < ROUND256_WORDS; j++) {
            a = _mm_crc32_u64(a, load64(s + 8 * j));
            b = _mm_crc32_u64(b, load64(s + stride + 8 * j));
            c = _mm_crc32_u64(c, load64(s + 2 * stride + 8 * j));
        }
        s += 8 * ROUND256_WORDS;
        if (i == n) break;
        p += ROUND_VECTOR;
        FOLD256X8(p, k);
    }
    return join_streams(reduce128(lanes256(join256x8(z0, z1, z2, z3, z4, z5, z6, z7))), a, b, c,
                        ROUND256_WORDS * n);
}

/* Folding only, for buffers too short for round groups: 256, then 32 bytes at a time. */
TARGET_AVX2 static uint32_t fold256_only(uint32_t reg, const unsigned char *p, size_t len)
{
    __m256i z0, z1, z2, z3, z4, z5, z6, z7, k = FOLD256(2048);
    LOAD256X8(p);
    z0 = _mm256_xor_si256(z0, _mm256_castsi128_si256(_mm_cvtsi32_si128((int)reg)));
    p += 256;
    len -= 256;
    while (len >= 256) {
        FOLD256X8(p, k);
        p += 256;
        len -= 256;
    }
    z0 = join256x8(z0, z1, z2, z3, z4, z5, z6, z7);
    k = FOLD256(256);
    while (len >= 32) {
        z0 = fold256(z0, k, load256(p));
        p += 32;
        len -= 32;
    }
    return finish128(lanes256(z0), p, len);
}

TARGET_AVX2 uint32_t pt_crc32c_x86_vpclmul256(uint32_t reg, const unsigned char *p, size_t len)
{
    if (len < VPCLMUL_MIN) return pt_crc32c_x86_sse42_avx(reg, p, len);
    if (!ALIGNED8(p)) {
        reg = align8(reg, &p, &len);
        if (len < VPCLMUL_MIN) return pt_crc32c_x86_sse42_avx(reg, p, len);
    }
    if (len < HYBRID256_MIN) return fold256_only(reg, p, len);
    if (len >= 2 * GROUP256_ROUNDS * ROUND256_BYTES) {
        __m128i k = _mm_cvtsi32_si128((int)CRC32C_X86_SHIFT_1054);
        uint64_t r = reg;
        while (len >= 2 * GROUP256_ROUNDS * ROUND256_BYTES) {
            r = shift_add(r, k, hybrid256_group(0, p, GROUP256_ROUNDS));
            p += GROUP256_ROUNDS * ROUND256_BYTES;
            len -= GROUP256_ROUNDS * ROUND256_BYTES;
        }
        reg = (uint32_t)r;
    }
    while (len >= HYBRID256_MIN) {
        size_t n = len / ROUND256_BYTES < GROUP256_ROUNDS ? len / ROUND256_BYTES : GROUP256_ROUNDS;
        reg = hybrid256_group(reg, p, n);
        p += n * ROUND256_BYTES;
        len -= n * ROUND256_BYTES;
    }
    return len >= VPCLMUL_MIN ? fold256_only(reg, p, len) : pt_crc32c_x86_sse42_avx(reg, p, len);
}

#else
typedef int pt_crc32c_x86_unused; /* ISO C wants a non-empty file */
#endif /* PT_CRC32C_X86 */
