/*
 * CRC-32C: published vectors, every implementation against a bit-at-a-time reference and the
 * table path (every length 0..4096 at random alignments, long buffers across the hardware
 * paths' round groups, buffers that end or start at an unmapped page so any over-read faults),
 * the dispatcher's choice for every size, the hardware multiply against the portable one, every
 * generated constant recomputed, and the combine operations (append, xor, zero_extend) against
 * direct computation, including lengths of 2^32 and more reached through zero_extend
 * identities. Every path and every table variant is also checked at every alignment 0..63
 * over random lengths up to 64 KiB, and the dispatcher at every CPU level this machine can
 * be forced down to (the calibration's rule separately, on made-up times).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/crc32c_impl.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"
#include "test.h"

/* The x86 constants are plain data: checked on every CPU. */
#include "common/crc32c_shift.inc"

/* All three table variants, whichever one the library was built with, to test them here. */
#define CRC32C_WANT_SLICE8 1
#define CRC32C_WANT_BYTE 1
#define CRC32C_WANT_NIBBLE 1
#include "common/crc32c_table.inc"

/* Bit-at-a-time reference, independent of the tables. */
static uint32_t crc_reference(uint32_t crc, const unsigned char *p, size_t len)
{
    crc = ~crc;
    while (len--) {
        int k;
        crc ^= *p++;
        for (k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
    }
    return ~crc;
}

TEST(crc32c_published_vectors)
{
    static const unsigned char zeros[32] = {0};
    unsigned char ones[32], inc[32], dec[32];
    int i;
    for (i = 0; i < 32; i++) {
        ones[i] = 0xff;
        inc[i] = (unsigned char)i;
        dec[i] = (unsigned char)(31 - i);
    }
    CHECK_EQ(petrel_crc32c(0, "123456789", 9), 0xe3069283u);
    CHECK_EQ(petrel_crc32c(0, "", 0), 0);
    /* RFC 3720 (iSCSI) B.4 vectors. */
    CHECK_EQ(petrel_crc32c(0, zeros, 32), 0x8a9136aau);
    CHECK_EQ(petrel_crc32c(0, ones, 32), 0x62a8ab43u);
    CHECK_EQ(petrel_crc32c(0, inc, 32), 0x46dd794eu);
    CHECK_EQ(petrel_crc32c(0, dec, 32), 0x113fdb5cu);
    CHECK_EQ(petrel_crc32c(0, "a", 1), 0xc1d04330u);
}

TEST(crc32c_incremental_equals_one_shot)
{
    struct pt_prng g;
    unsigned char buf[1000];
    size_t cut;
    pt_prng_seed(&g, test_seed());
    pt_prng_fill(&g, buf, sizeof(buf));
    for (cut = 0; cut <= sizeof(buf); cut += 7) {
        uint32_t a = petrel_crc32c(0, buf, cut);
        CHECK_EQ(petrel_crc32c(a, buf + cut, sizeof(buf) - cut),
                 petrel_crc32c(0, buf, sizeof(buf)));
    }
}

TEST(crc32c_every_path_matches_reference)
{
    struct pt_prng g;
    enum petrel_crc32c_impl impl;
    size_t bufsize = 4096 + 64;
    unsigned char *buf = malloc(bufsize);
    int paths = 0;
    CHECK(buf != NULL);
    pt_prng_seed(&g, test_seed());
    pt_prng_fill(&g, buf, bufsize);
    for (impl = 0; impl < PETREL_CRC32C_IMPL_COUNT; impl++) {
        size_t len;
        if (!petrel_crc32c_impl_available(impl)) continue;
        paths++;
        for (len = 0; len <= 4096; len++) {
            size_t align = (size_t)pt_prng_below(&g, 64);
            uint32_t start = (len & 1) ? (uint32_t)pt_prng_next(&g) : 0;
            uint32_t want = crc_reference(start, buf + align, len);
            uint32_t got = petrel_crc32c_with(impl, start, buf + align, len);
            CHECK_MSG(got == want, "%s: len %zu align %zu: %08x != %08x",
                      petrel_crc32c_impl_name(impl), len, align, got, want);
        }
    }
    test_log("%d paths checked, best is %s", paths, petrel_crc32c_impl_name(petrel_crc32c_best()));
    CHECK(petrel_crc32c_impl_available(petrel_crc32c_best()));
    free(buf);
}

TEST(crc32c_large_buffers_all_paths)
{
    struct pt_prng g;
    enum petrel_crc32c_impl impl;
    size_t len = (1u << 20) + 123;
    unsigned char *buf = malloc(len);
    uint32_t want;
    CHECK(buf != NULL);
    pt_prng_seed(&g, test_seed());
    pt_prng_fill(&g, buf, len);
    want = petrel_crc32c_with(PETREL_CRC32C_TABLE, 0, buf, len);
    CHECK_EQ(want, crc_reference(0, buf, len));
    for (impl = 0; impl < PETREL_CRC32C_IMPL_COUNT; impl++) {
        if (!petrel_crc32c_impl_available(impl)) continue;
        CHECK_MSG(petrel_crc32c_with(impl, 0, buf + 1, len - 1) ==
                      petrel_crc32c_with(PETREL_CRC32C_TABLE, 0, buf + 1, len - 1),
                  "path %s differs on 1 MiB", petrel_crc32c_impl_name(impl));
    }
    free(buf);
}

TEST(crc32c_append_matches_concatenation)
{
    struct pt_prng g;
    unsigned char buf[3000];
    int i;
    pt_prng_seed(&g, test_seed());
    pt_prng_fill(&g, buf, sizeof(buf));
    for (i = 0; i < 500; i++) {
        size_t a = (size_t)pt_prng_below(&g, 1500), b = (size_t)pt_prng_below(&g, 1500);
        uint32_t ca = petrel_crc32c(0, buf, a), cb = petrel_crc32c(0, buf + a, b);
        CHECK_EQ(petrel_crc32c_append(ca, cb, b), petrel_crc32c(0, buf, a + b));
    }
    /* Appending nothing changes nothing; appending to nothing gives the second CRC. */
    CHECK_EQ(petrel_crc32c_append(0x12345678u, 0, 0), 0x12345678u);
    CHECK_EQ(petrel_crc32c_append(0, 0xe3069283u, 9), 0xe3069283u);
}

TEST(crc32c_xor_matches_direct)
{
    struct pt_prng g;
    unsigned char a[2048], b[2048], x[2048];
    int i;
    pt_prng_seed(&g, test_seed());
    for (i = 0; i < 200; i++) {
        size_t len = (size_t)pt_prng_below(&g, sizeof(a) + 1), k;
        pt_prng_fill(&g, a, len);
        pt_prng_fill(&g, b, len);
        for (k = 0; k < len; k++)
            x[k] = a[k] ^ b[k];
        CHECK_EQ(petrel_crc32c_xor(petrel_crc32c(0, a, len), petrel_crc32c(0, b, len), len),
                 petrel_crc32c(0, x, len));
    }
}

TEST(crc32c_zero_extend_matches_direct)
{
    struct pt_prng g;
    static unsigned char buf[8192];
    int i;
    pt_prng_seed(&g, test_seed());
    for (i = 0; i < 300; i++) {
        size_t data = (size_t)pt_prng_below(&g, 4096), zeros = (size_t)pt_prng_below(&g, 4096);
        uint32_t c;
        pt_prng_fill(&g, buf, data);
        memset(buf + data, 0, zeros);
        c = petrel_crc32c(0, buf, data);
        CHECK_EQ(petrel_crc32c_zero_extend(c, (int64_t)zeros), petrel_crc32c(0, buf, data + zeros));
        /* Negative undoes zeros that are there. */
        CHECK_EQ(petrel_crc32c_zero_extend(petrel_crc32c(0, buf, data + zeros), -(int64_t)zeros),
                 c);
    }
    CHECK_EQ(petrel_crc32c_zero_extend(0xe3069283u, 0), 0xe3069283u);
}

/*
 * Lengths past 2^32 cannot be checked by computing over real buffers, so check identities that
 * only hold if every power is right: extending by a then b equals extending by a + b, and
 * extending then undoing is the identity, for lengths spread over the whole 64-bit range
 * (these catch a power table that wraps, e.g. indexed k & 31).
 */
TEST(crc32c_zero_extend_huge_lengths)
{
    struct pt_prng g;
    int i;
    pt_prng_seed(&g, test_seed());
    for (i = 0; i < 2000; i++) {
        int shift = (int)pt_prng_below(&g, 62);
        int64_t a = (int64_t)(pt_prng_next(&g) >> (2 + shift));
        int64_t b = (int64_t)(pt_prng_next(&g) >> (2 + (int)pt_prng_below(&g, 62)));
        uint32_t c = (uint32_t)pt_prng_next(&g);
        uint32_t ab = petrel_crc32c_zero_extend(petrel_crc32c_zero_extend(c, a), b);
        CHECK_EQ(ab, petrel_crc32c_zero_extend(c, a + b));
        CHECK_EQ(petrel_crc32c_zero_extend(petrel_crc32c_zero_extend(c, a), -a), c);
        CHECK_EQ(petrel_crc32c_zero_extend(c, a - b),
                 petrel_crc32c_zero_extend(petrel_crc32c_zero_extend(c, -b), a));
    }
    /* 2^32 zero bytes, as 4096 appends of 1 MiB of zeros combined in a tree. */
    {
        static unsigned char zeros[1 << 20];
        uint32_t c = petrel_crc32c(0, zeros, sizeof(zeros));
        int64_t len = sizeof(zeros);
        while (len < ((int64_t)1 << 32)) {
            c = petrel_crc32c_append(c, c, (uint64_t)len);
            len *= 2;
        }
        CHECK_EQ(c, petrel_crc32c_zero_extend(0, (int64_t)1 << 32));
        /* ... and once more to 2^33 with data in front: "123456789" then 2^33 zeros. */
        c = petrel_crc32c_append(c, c, (uint64_t)1 << 32);
        CHECK_EQ(petrel_crc32c_append(0xe3069283u, c, (uint64_t)1 << 33),
                 petrel_crc32c_zero_extend(0xe3069283u, (int64_t)1 << 33));
    }
    /* The extremes of the signed range. */
    CHECK_EQ(petrel_crc32c_zero_extend(petrel_crc32c_zero_extend(0x1234u, INT64_MAX), -INT64_MAX),
             0x1234u);
    CHECK_EQ(petrel_crc32c_zero_extend(petrel_crc32c_zero_extend(0x99u, INT64_MIN), INT64_MAX),
             petrel_crc32c_zero_extend(0x99u, -1));
}

/* x^n mod P, reflected, one multiplication by x at a time: independent of every table. */
static uint32_t xpow_slow(uint64_t n)
{
    uint32_t v = 0x80000000u;
    while (n--)
        v = (v & 1) ? (v >> 1) ^ 0x82f63b78u : v >> 1;
    return v;
}

TEST(crc32c_multiply_matches_portable)
{
    struct pt_prng g;
    static const uint32_t edges[] = {0,           1,           0x80000000u, 0x40000000u,
                                     0xffffffffu, 0x82f63b78u, 0x7fffffffu, 0xfffffffeu};
    size_t i, j;
    int rounds = test_sanitized() ? 20000 : 200000;
    pt_prng_seed(&g, test_seed());
    for (i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        for (j = 0; j < sizeof(edges) / sizeof(edges[0]); j++)
            CHECK_EQ(pt_crc32c_multiply(edges[i], edges[j]),
                     pt_crc32c_multiply_portable(edges[i], edges[j]));
    for (i = 0; i < (size_t)rounds; i++) {
        uint32_t a = (uint32_t)pt_prng_next(&g), b = (uint32_t)pt_prng_next(&g);
        uint32_t want = pt_crc32c_multiply_portable(a, b);
        CHECK_MSG(pt_crc32c_multiply(a, b) == want, "%08x * %08x", a, b);
#ifdef PT_CRC32C_X86
        if (petrel_crc32c_impl_available(PETREL_CRC32C_SSE42))
            CHECK_MSG(pt_crc32c_x86_multiply(a, b) == want, "x86 %08x * %08x", a, b);
#endif
#ifdef PT_CRC32C_ARM
        if (pt_crc32c_arm_probe() & PT_CRC32C_ARM_PMULL)
            CHECK_MSG(pt_crc32c_arm_multiply(a, b) == want, "arm %08x * %08x", a, b);
#endif
        /* x^0 is the identity; the product commutes. */
        CHECK_EQ(pt_crc32c_multiply(a, 0x80000000u), a);
        CHECK_EQ(pt_crc32c_multiply(b, a), want);
    }
    /* x^7 * x^9 = x^16, and x^31 * x = x^32 = P's low terms. */
    CHECK_EQ(pt_crc32c_multiply(xpow_slow(7), xpow_slow(9)), xpow_slow(16));
    CHECK_EQ(pt_crc32c_multiply(xpow_slow(31), xpow_slow(1)), 0x82f63b78u);
}

/*
 * The power tables behind the combine operations, checked entry by entry: x^(8 * 2^k) by
 * repeated squaring from x^8 (portable multiply only) against append (which multiplies by
 * x^(8 len) for any 64-bit len) for every k = 0..63, and its inverse against negative
 * zero_extend down to INT64_MIN = -2^63. Together these use every table entry a byte count can
 * reach (x^(2^3) .. x^(2^66) and their inverses).
 */
TEST(crc32c_powers_exact_for_every_bit)
{
    uint32_t power = xpow_slow(8); /* x^(8 * 2^0) */
    int k;
    for (k = 0; k < 64; k++) {
        uint64_t bytes = (uint64_t)1 << k;
        /* append(x^0, 0, n) = x^(8n) * x^0. */
        CHECK_MSG(petrel_crc32c_append(0x80000000u, 0, bytes) == power, "2^%d bytes", k);
        if (k < 63) {
            /* zero_extend(c, n) = ~(x^(8n) * ~c): with ~c = x^0 it gives ~x^(8n). */
            CHECK_MSG(~petrel_crc32c_zero_extend(~0x80000000u, (int64_t)bytes) == power,
                      "zero_extend 2^%d bytes", k);
            CHECK_MSG(pt_crc32c_multiply_portable(
                          ~petrel_crc32c_zero_extend(~0x80000000u, -(int64_t)bytes), power) ==
                          0x80000000u,
                      "-2^%d bytes", k);
        } else {
            CHECK_EQ(pt_crc32c_multiply_portable(
                         ~petrel_crc32c_zero_extend(~0x80000000u, INT64_MIN), power),
                     0x80000000u);
        }
        power = pt_crc32c_multiply_portable(power, power);
    }
}

TEST(crc32c_generated_constants_exact)
{
    /* crc32c_shift[m - 1] = x^(64m - 33): step by x^64 from x^31. */
    uint32_t x64 = xpow_slow(64), v = xpow_slow(31);
    size_t m;
    for (m = 1; m <= sizeof(crc32c_shift) / sizeof(crc32c_shift[0]); m++) {
        CHECK_MSG(crc32c_shift[m - 1] == v, "entry %zu", m);
        v = pt_crc32c_multiply_portable(v, x64);
    }
    CHECK_EQ(CRC32C_X86_SHIFT_1400, xpow_slow(64 * 1400 - 33));
    CHECK_EQ(CRC32C_X86_SHIFT_1054, xpow_slow(64 * 1054 - 33));
    CHECK_EQ(CRC32C_X86_SHIFT_782, xpow_slow(64 * 782 - 33));
}

/*
 * petrel_crc32c through the dispatcher: for every size up to 8 KiB (and a few large ones) the
 * chosen path is available, the result matches the reference from a random start, and is what
 * that path gives when called directly. The large-buffer choice is what petrel_crc32c_best
 * reports.
 */
TEST(crc32c_dispatch_every_size)
{
    struct pt_prng g;
    size_t bufsize = (1u << 17) + 64, len;
    unsigned char *buf = malloc(bufsize);
    static const size_t large[] = {12345, 65536, 100000, 1u << 17};
    size_t i, from;
    CHECK(buf != NULL);
    pt_prng_seed(&g, test_seed());
    pt_prng_fill(&g, buf, bufsize);
    for (len = 0; len <= 8192 + sizeof(large) / sizeof(large[0]); len++) {
        size_t n = len <= 8192 ? len : large[len - 8193];
        size_t align = (size_t)pt_prng_below(&g, 64);
        uint32_t start = (uint32_t)pt_prng_next(&g);
        enum petrel_crc32c_impl impl = pt_crc32c_choice(n);
        uint32_t want = crc_reference(start, buf + align, n);
        CHECK_MSG(petrel_crc32c_impl_available(impl), "len %zu: %s", n,
                  petrel_crc32c_impl_name(impl));
        CHECK_MSG(petrel_crc32c(start, buf + align, n) == want, "len %zu align %zu", n, align);
        CHECK_MSG(petrel_crc32c_with(impl, start, buf + align, n) == want, "%s len %zu",
                  petrel_crc32c_impl_name(impl), n);
    }
    CHECK_EQ(pt_crc32c_choice((size_t)-1), petrel_crc32c_best());
    /* The choice only changes once, from the short-buffer path to the long-buffer one. */
    for (i = 1, len = 1, from = 0; len <= 1u << 20; len++) {
        if (pt_crc32c_choice(len) == pt_crc32c_choice(len - 1)) continue;
        i++;
        from = len;
    }
    CHECK_MSG(i <= 2, "%zu different choices by size", i);
    test_log("short buffers: %s, from %zu bytes: %s", petrel_crc32c_impl_name(pt_crc32c_choice(0)),
             from, petrel_crc32c_impl_name(petrel_crc32c_best()));
    free(buf);
}

/*
 * Long buffers at random lengths and alignments cross the hardware paths' round groups (up to
 * 11200 bytes) and remainders in every combination; every path against the table path.
 */
TEST(crc32c_long_lengths_all_paths)
{
    struct pt_prng g;
    enum petrel_crc32c_impl impl;
    size_t bufsize = (1u << 18) + 64;
    unsigned char *buf = malloc(bufsize);
    int i, rounds = test_sanitized() ? 40 : 300;
    CHECK(buf != NULL);
    pt_prng_seed(&g, test_seed());
    pt_prng_fill(&g, buf, bufsize);
    for (i = 0; i < rounds; i++) {
        size_t len = (size_t)pt_prng_below(&g, i < rounds / 2 ? 50000 : 1u << 18);
        size_t align = (size_t)pt_prng_below(&g, 64);
        uint32_t start = (uint32_t)pt_prng_next(&g);
        uint32_t want = petrel_crc32c_with(PETREL_CRC32C_TABLE, start, buf + align, len);
        for (impl = 1; impl < PETREL_CRC32C_IMPL_COUNT; impl++) {
            if (!petrel_crc32c_impl_available(impl)) continue;
            CHECK_MSG(petrel_crc32c_with(impl, start, buf + align, len) == want,
                      "%s: len %zu align %zu", petrel_crc32c_impl_name(impl), len, align);
        }
        CHECK_MSG(petrel_crc32c(start, buf + align, len) == want, "best: len %zu", len);
    }
    CHECK_EQ(petrel_crc32c_with(PETREL_CRC32C_TABLE, 0, buf, 1u << 18),
             crc_reference(0, buf, 1u << 18));
    free(buf);
}

/*
 * No path reads past the end of its buffer or before its start: buffers of every length up to
 * 4 KiB + 256 (and some long ones) placed so they end right before an unmapped page, then
 * start right after one. An over-read faults and fails the case.
 */
TEST(crc32c_no_read_outside_buffer)
{
    struct pt_prng g;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = 64 * 1024, span = data + 2 * page;
    size_t lens[4096 + 256 + 1 + 6], nlens = 0, i;
    unsigned char *map, *lo, *hi;
    enum petrel_crc32c_impl impl;
    pt_prng_seed(&g, test_seed());
    map = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    CHECK_OK(mprotect(map, page, PROT_NONE));
    CHECK_OK(mprotect(map + page + data, page, PROT_NONE));
    lo = map + page;        /* first readable byte */
    hi = map + page + data; /* first unreadable byte after */
    pt_prng_fill(&g, lo, data);
    for (i = 0; i <= 4096 + 256; i++)
        lens[nlens++] = i;
    lens[nlens++] = 12345;
    lens[nlens++] = 22401;
    lens[nlens++] = 2 * 8432 + 1; /* just past two AVX2 groups */
    lens[nlens++] = 2 * 6256 + 1; /* just past two PCLMULQDQ groups */
    lens[nlens++] = 40000;
    lens[nlens++] = data;
    for (impl = 0; impl < PETREL_CRC32C_IMPL_COUNT; impl++) {
        if (!petrel_crc32c_impl_available(impl)) continue;
        for (i = 0; i < nlens; i++) {
            size_t len = lens[i];
            uint32_t start = (uint32_t)pt_prng_next(&g);
            uint32_t want_end = petrel_crc32c_with(PETREL_CRC32C_TABLE, start, hi - len, len);
            uint32_t want_start = petrel_crc32c_with(PETREL_CRC32C_TABLE, start, lo, len);
            CHECK_MSG(petrel_crc32c_with(impl, start, hi - len, len) == want_end,
                      "%s: len %zu at the end", petrel_crc32c_impl_name(impl), len);
            CHECK_MSG(petrel_crc32c_with(impl, start, lo, len) == want_start,
                      "%s: len %zu at the start", petrel_crc32c_impl_name(impl), len);
        }
    }
    for (i = 0; i < nlens; i++) {
        CHECK_EQ(petrel_crc32c(0, hi - lens[i], lens[i]),
                 petrel_crc32c_with(PETREL_CRC32C_TABLE, 0, hi - lens[i], lens[i]));
        CHECK_EQ(petrel_crc32c(0, lo, lens[i]),
                 petrel_crc32c_with(PETREL_CRC32C_TABLE, 0, lo, lens[i]));
    }
    CHECK_OK(munmap(map, span));
}

#ifdef PT_CRC32C_ARM
/* Both forms of the ARMv8 path (only one is reachable through dispatch on a given CPU). */
TEST(crc32c_armv8_both_forms)
{
    struct pt_prng g;
    size_t bufsize = 20000 + 64, len;
    unsigned char *buf = malloc(bufsize);
    CHECK(buf != NULL);
    if (!petrel_crc32c_impl_available(PETREL_CRC32C_ARMV8)) {
        test_log("no CRC32 instructions on this CPU");
        free(buf);
        return;
    }
    pt_prng_seed(&g, test_seed());
    pt_prng_fill(&g, buf, bufsize);
    for (len = 0; len <= 20000; len += 1 + (size_t)pt_prng_below(&g, 40)) {
        size_t align = (size_t)pt_prng_below(&g, 64);
        uint32_t reg = (uint32_t)pt_prng_next(&g);
        uint32_t want = pt_crc32c_table_raw(reg, buf + align, len);
        CHECK_MSG(pt_crc32c_arm_crc_plain(reg, buf + align, len) == want, "plain len %zu", len);
        if (pt_crc32c_arm_probe() & PT_CRC32C_ARM_PMULL)
            CHECK_MSG(pt_crc32c_arm_crc_pmull(reg, buf + align, len) == want, "pmull len %zu", len);
    }
    free(buf);
}
#endif

/* Threads racing on the first call (this case runs in a fresh process) all get right CRCs. */
struct crc_thread {
    const unsigned char *buf;
    size_t len;
    uint32_t want, got[64];
};

static void *crc_thread_main(void *arg)
{
    struct crc_thread *t = arg;
    size_t i;
    for (i = 0; i < 64; i++)
        t->got[i] = petrel_crc32c(0, t->buf, t->len - i * 7);
    return NULL;
}

TEST(crc32c_first_use_from_threads)
{
    struct pt_prng g;
    enum { THREADS = 4 };
    pthread_t tid[THREADS];
    struct crc_thread t[THREADS];
    static unsigned char buf[8192];
    size_t i, j;
    pt_prng_seed(&g, test_seed());
    pt_prng_fill(&g, buf, sizeof(buf));
    for (i = 0; i < THREADS; i++) {
        t[i].buf = buf;
        t[i].len = 4096 + 1024 * i;
        CHECK_EQ(pthread_create(&tid[i], NULL, crc_thread_main, &t[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        CHECK_EQ(pthread_join(tid[i], NULL), 0);
        for (j = 0; j < 64; j++)
            CHECK_EQ(t[i].got[j], crc_reference(0, buf, t[i].len - j * 7));
    }
}

/* --- every path, every variant, every alignment, every level ---------------------------- */

/* The path that defines a level. */
static enum petrel_crc32c_impl needs_top(enum pt_crc32c_level level)
{
    switch (level) {
    case PT_CRC32C_LEVEL_SSE42:
        return PETREL_CRC32C_SSE42;
    case PT_CRC32C_LEVEL_PCLMUL:
        return PETREL_CRC32C_PCLMUL;
    case PT_CRC32C_LEVEL_AVX2:
        return PETREL_CRC32C_VPCLMUL256;
    case PT_CRC32C_LEVEL_AVX512:
        return PETREL_CRC32C_VPCLMUL512;
    case PT_CRC32C_LEVEL_ARMV8:
        return PETREL_CRC32C_ARMV8;
    default:
        return PETREL_CRC32C_TABLE;
    }
}

struct crc_path {
    const char *name;
    pt_crc32c_raw_fn fn;
};

/* Every raw-register function this build and CPU can run: each dispatchable path, the other
 * form of the crc32 path, and the three table variants. Returns the count. */
static size_t crc_paths(struct crc_path *out)
{
    size_t n = 0;
    out[n++] = (struct crc_path){"table-8k", crc32c_slice8_raw};
    out[n++] = (struct crc_path){"table-1k", crc32c_byte_raw};
    out[n++] = (struct crc_path){"table-64", crc32c_nibble_raw};
    out[n++] = (struct crc_path){"table-built", pt_crc32c_table_raw};
#ifdef PT_CRC32C_X86
    {
        unsigned found = pt_crc32c_x86_probe();
        if (found & 1u << PETREL_CRC32C_SSE42)
            out[n++] = (struct crc_path){"sse42-soft", pt_crc32c_x86_sse42_soft};
        if (found & 1u << PETREL_CRC32C_PCLMUL) {
            out[n++] = (struct crc_path){"sse42", pt_crc32c_x86_sse42};
            out[n++] = (struct crc_path){"pclmul", pt_crc32c_x86_pclmul};
        }
        if (found & PT_CRC32C_X86_AVX) {
            out[n++] = (struct crc_path){"sse42-avx", pt_crc32c_x86_sse42_avx};
            out[n++] = (struct crc_path){"pclmul-avx", pt_crc32c_x86_pclmul_avx};
        }
        if (found & 1u << PETREL_CRC32C_VPCLMUL256)
            out[n++] = (struct crc_path){"vpclmul256", pt_crc32c_x86_vpclmul256};
        if (found & 1u << PETREL_CRC32C_VPCLMUL512)
            out[n++] = (struct crc_path){"vpclmul512", pt_crc32c_x86_vpclmul512};
    }
#endif
#ifdef PT_CRC32C_ARM
    if (pt_crc32c_arm_probe() & 1u << PETREL_CRC32C_ARMV8)
        out[n++] = (struct crc_path){"armv8", pt_crc32c_arm_crc_plain};
    if (pt_crc32c_arm_probe() & PT_CRC32C_ARM_PMULL)
        out[n++] = (struct crc_path){"armv8-pmull", pt_crc32c_arm_crc_pmull};
#endif
    return n;
}

/*
 * For every alignment 0..63, random lengths up to 64 KiB (a short, a mid and a long one, so
 * every path's head, group and tail code meets every alignment) from random registers:
 * every path against the bit-at-a-time reference.
 */
TEST(crc32c_every_path_every_alignment)
{
    struct pt_prng g;
    struct crc_path paths[16];
    size_t npaths = crc_paths(paths), bufsize = 65536 + 64, align, i, k;
    unsigned char *buf = malloc(bufsize);
    int per_align = test_sanitized() ? 2 : 4;
    CHECK(buf != NULL);
    pt_prng_seed(&g, test_seed());
    pt_prng_fill(&g, buf, bufsize);
    for (align = 0; align < 64; align++)
        for (k = 0; k < (size_t)per_align; k++) {
            /* k = 0: up to 512 bytes; 1: up to 8 KiB; then up to 64 KiB. */
            size_t limit = k == 0 ? 512 : k == 1 ? 8192 : 65536;
            size_t len = (size_t)pt_prng_below(&g, limit + 1);
            uint32_t start = (uint32_t)pt_prng_next(&g);
            uint32_t want = ~crc_reference(~start, buf + align, len);
            for (i = 0; i < npaths; i++) {
                uint32_t got = paths[i].fn(start, buf + align, len);
                CHECK_MSG(got == want, "%s: len %zu align %zu register %08x: %08x != %08x",
                          paths[i].name, len, align, start, got, want);
            }
        }
    test_log("%zu paths and variants checked", npaths);
    free(buf);
}

/* No path or variant reads outside its buffer: lengths 0..1024 and some long ones ending at an
 * unmapped page and starting right after one. */
TEST(crc32c_every_path_stays_inside_buffer)
{
    struct pt_prng g;
    struct crc_path paths[16];
    size_t npaths = crc_paths(paths), page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = 16 * 1024, span = data + 2 * page, i, len;
    unsigned char *map, *lo, *hi;
    pt_prng_seed(&g, test_seed());
    map = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    CHECK_OK(mprotect(map, page, PROT_NONE));
    CHECK_OK(mprotect(map + page + data, page, PROT_NONE));
    lo = map + page;
    hi = map + page + data;
    pt_prng_fill(&g, lo, data);
    for (i = 0; i < npaths; i++)
        for (len = 0; len <= data; len = len < 1024 ? len + 1 : len * 2 + 13) {
            uint32_t want_end = crc32c_slice8_raw(1, hi - len, len);
            uint32_t want_start = crc32c_slice8_raw(2, lo, len);
            CHECK_MSG(paths[i].fn(1, hi - len, len) == want_end, "%s: len %zu at the end",
                      paths[i].name, len);
            CHECK_MSG(paths[i].fn(2, lo, len) == want_start, "%s: len %zu at the start",
                      paths[i].name, len);
        }
    CHECK_OK(munmap(map, span));
}

/*
 * The build switches of include/petrel/crc32c.h reached the library: `make crc-variants`
 * compiles this file and the library with each combination and runs it.
 */
TEST(crc32c_build_switches_in_effect)
{
#ifdef PETREL_CRC32C_TABLE_BYTES
    CHECK_EQ(pt_crc32c_table_bytes(), PETREL_CRC32C_TABLE_BYTES);
#else
    CHECK_EQ(pt_crc32c_table_bytes(), 8192);
#endif
#ifdef PETREL_CRC32C_NO_HW
    CHECK_EQ(pt_crc32c_cpu_level(), PT_CRC32C_LEVEL_TABLE);
    CHECK_EQ(petrel_crc32c_best(), PETREL_CRC32C_TABLE);
    CHECK_EQ(pt_crc32c_force_level(PT_CRC32C_LEVEL_SSE42), -1);
#endif
    test_log("table %zu bytes, level %s, large buffers take %s", pt_crc32c_table_bytes(),
             pt_crc32c_level_name(pt_crc32c_cpu_level()),
             petrel_crc32c_impl_name(petrel_crc32c_best()));
}

/* The rule of the calibration, on made-up times. */
TEST(crc32c_calibration_pick_rule)
{
    static const uint64_t tie[] = {100, 100, 100};
    static const uint64_t slightly[] = {100, 90, 95}; /* within an eighth: keep the first */
    static const uint64_t clearly[] = {100, 80, 95};  /* the second clearly faster */
    static const uint64_t later[] = {100, 80, 60};    /* then the third beats the second */
    static const uint64_t unmeasured[] = {0, 10, 5};  /* no time for the first: keep it */
    static const uint64_t gap[] = {100, 0, 50};       /* an unmeasured one is skipped */
    CHECK_EQ(pt_crc32c_calibration_pick(tie, 3), 0);
    CHECK_EQ(pt_crc32c_calibration_pick(slightly, 3), 0);
    CHECK_EQ(pt_crc32c_calibration_pick(clearly, 3), 1);
    CHECK_EQ(pt_crc32c_calibration_pick(later, 3), 2);
    CHECK_EQ(pt_crc32c_calibration_pick(unmeasured, 3), 0);
    CHECK_EQ(pt_crc32c_calibration_pick(gap, 3), 2);
    CHECK_EQ(pt_crc32c_calibration_pick(tie, 1), 0);
}

/*
 * petrel_crc32c and the combine operations at every level this CPU can be forced to (as on a
 * CPU of that level): the paths above the level are unavailable, the choice for every size
 * is an available path, and results match the reference; levels above the CPU's are refused.
 */
TEST(crc32c_every_level)
{
    struct pt_prng g;
    enum pt_crc32c_level cpu = pt_crc32c_cpu_level(), level;
    size_t bufsize = (1u << 16) + 64;
    unsigned char *buf = malloc(bufsize);
    int levels = 0;
    CHECK(buf != NULL);
    pt_prng_seed(&g, test_seed());
    pt_prng_fill(&g, buf, bufsize);
    for (level = PT_CRC32C_LEVEL_TABLE; level < PT_CRC32C_LEVEL_COUNT; level++) {
        enum petrel_crc32c_impl impl;
        size_t len, i;
        int x86 = level <= PT_CRC32C_LEVEL_AVX512 && cpu <= PT_CRC32C_LEVEL_AVX512;
        int runnable = level == PT_CRC32C_LEVEL_TABLE || level == cpu || (x86 && level < cpu);
        if (!runnable) {
            CHECK_MSG(pt_crc32c_force_level(level) == -1, "level %s accepted on a %s CPU",
                      pt_crc32c_level_name(level), pt_crc32c_level_name(cpu));
            continue;
        }
        CHECK_OK(pt_crc32c_force_level(level));
        levels++;
        /* Exactly the paths of this level and those below it. */
        for (impl = PETREL_CRC32C_TABLE; impl < PETREL_CRC32C_IMPL_COUNT; impl++) {
            int want = impl == PETREL_CRC32C_TABLE || (x86 && impl <= needs_top(level)) ||
                       impl == needs_top(level);
            CHECK_MSG(petrel_crc32c_impl_available(impl) == want, "level %s: %s",
                      pt_crc32c_level_name(level), petrel_crc32c_impl_name(impl));
        }
        for (len = 0; len <= 4200 + 4; len++) {
            static const size_t large[] = {12345, 40000, 65536, 50001};
            size_t n = len <= 4200 ? len : large[len - 4201];
            size_t align = (size_t)pt_prng_below(&g, 64);
            uint32_t start = (uint32_t)pt_prng_next(&g);
            uint32_t want = crc_reference(start, buf + align, n);
            CHECK(petrel_crc32c_impl_available(pt_crc32c_choice(n)));
            CHECK_MSG(petrel_crc32c(start, buf + align, n) == want, "level %s len %zu align %zu",
                      pt_crc32c_level_name(level), n, align);
            CHECK_MSG(petrel_crc32c_with(PETREL_CRC32C_SSE42, start, buf + align, n) == want,
                      "level %s sse42 len %zu", pt_crc32c_level_name(level), n);
        }
        /* The combine operations use this level's multiply. */
        for (i = 0; i < 200; i++) {
            size_t a = (size_t)pt_prng_below(&g, 5000), b = (size_t)pt_prng_below(&g, 5000);
            uint32_t x = (uint32_t)pt_prng_next(&g), y = (uint32_t)pt_prng_next(&g);
            CHECK_EQ(
                petrel_crc32c_append(petrel_crc32c(0, buf, a), petrel_crc32c(0, buf + a, b), b),
                petrel_crc32c(0, buf, a + b));
            CHECK_EQ(pt_crc32c_multiply(x, y), pt_crc32c_multiply_portable(x, y));
            CHECK_EQ(petrel_crc32c_zero_extend(petrel_crc32c_zero_extend(x, (int64_t)a << 40),
                                               -((int64_t)a << 40)),
                     x);
        }
        test_log("level %s: large buffers take %s", pt_crc32c_level_name(level),
                 petrel_crc32c_impl_name(petrel_crc32c_best()));
    }
    CHECK_EQ(pt_crc32c_force_level(PT_CRC32C_LEVEL_COUNT + 1), -1);
    CHECK_OK(pt_crc32c_force_level(PT_CRC32C_LEVEL_COUNT)); /* back to this CPU's own */
    CHECK(petrel_crc32c_impl_available(needs_top(cpu)));
    test_log("%d levels run on this %s CPU", levels, pt_crc32c_level_name(cpu));
    free(buf);
}
