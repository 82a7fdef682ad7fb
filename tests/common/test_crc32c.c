/*
 * CRC-32C: published vectors, every implementation against a bit-at-a-time reference and the
 * table path, and the combine operations (append, xor, zero_extend) against direct
 * computation, including lengths of 2^32 and more reached through zero_extend identities.
 */
#include <stdlib.h>
#include <string.h>

#include "petrel/crc32c.h"
#include "petrel/prng.h"
#include "test.h"

/* Bit-at-a-time reference, independent of the tables. */
static uint32_t crc_reference(uint32_t crc, const unsigned char *p, size_t len)
{
    crc = ~crc;
    while (len--) {
        int k;
        crc ^= *p++;
        for (k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
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
        for (k = 0; k < len; k++) x[k] = a[k] ^ b[k];
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
