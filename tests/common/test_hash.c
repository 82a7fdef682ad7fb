/*
 * The name hash: fixed test vectors (the values are part of the on-disk formats and must never
 * change), independence from alignment, sensitivity to every byte and the length, and a
 * distribution check over many names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/hash.h"
#include "petrel/prng.h"
#include "test.h"

struct hash_vector {
    const char *name;
    size_t len;
    uint64_t hash64;
    uint32_t hash32;
};

/* Regenerate only with a format version change: docs/HASH.md lists the same values. */
static const struct hash_vector vectors[] = {
#include "hash_vectors.inc"
};

TEST(hash_vectors)
{
    size_t i;
    for (i = 0; i < PT_HASH_VECTOR_COUNT; i++) {
        CHECK_MSG(petrel_hash64(vectors[i].name, vectors[i].len, 0) == vectors[i].hash64,
                  "hash64 of vector %zu changed", i);
        CHECK_MSG(petrel_hash32(vectors[i].name, vectors[i].len, 0) == vectors[i].hash32,
                  "hash32 of vector %zu changed", i);
    }
}

TEST(hash_alignment_does_not_matter)
{
    unsigned char buf[80];
    const char *name = "a-rather-long-directory-entry-name.tar.gz";
    size_t len = strlen(name), off;
    uint64_t want = petrel_hash64(name, len, 0);
    for (off = 0; off < 16; off++) {
        memcpy(buf + off, name, len);
        CHECK_EQ(petrel_hash64(buf + off, len, 0), want);
    }
}

TEST(hash_every_byte_and_length_matter)
{
    struct pt_prng g;
    unsigned char a[64];
    size_t len, i;
    pt_prng_seed(&g, test_seed());
    for (len = 1; len <= sizeof(a); len++) {
        uint64_t h;
        pt_prng_fill(&g, a, len);
        h = petrel_hash64(a, len, 0);
        CHECK(h != petrel_hash64(a, len - 1, 0));
        for (i = 0; i < len; i++) {
            a[i] ^= 1;
            CHECK(petrel_hash64(a, len, 0) != h);
            a[i] ^= 1;
        }
        CHECK(petrel_hash64(a, len, 1) != h);
    }
    /* Trailing zero bytes are not ignored. */
    CHECK(petrel_hash64("a", 1, 0) != petrel_hash64("a\0", 2, 0));
    CHECK(petrel_hash64("", 0, 0) != petrel_hash64("\0", 1, 0));
}

/* Flipping one input bit flips each output bit with probability near 1/2. */
TEST(hash_avalanche)
{
    struct pt_prng g;
    unsigned char buf[24];
    long flips[64] = {0};
    int trials = 0, bit, t;
    pt_prng_seed(&g, test_seed());
    for (t = 0; t < 200; t++) {
        uint64_t h;
        pt_prng_fill(&g, buf, sizeof(buf));
        h = petrel_hash64(buf, sizeof(buf), 0);
        for (bit = 0; bit < (int)sizeof(buf) * 8; bit++) {
            uint64_t d;
            int o;
            buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            d = h ^ petrel_hash64(buf, sizeof(buf), 0);
            buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            for (o = 0; o < 64; o++) flips[o] += (d >> o) & 1;
            trials++;
        }
    }
    for (bit = 0; bit < 64; bit++) {
        double p = (double)flips[bit] / trials;
        CHECK_MSG(p > 0.45 && p < 0.55, "output bit %d flips with p=%.3f", bit, p);
    }
}

/* Sequential names (the common case: file0001, file0002...) spread evenly over buckets. */
TEST(hash_distribution_of_sequential_names)
{
    enum { BUCKETS = 256, NAMES = 256 * 200 };
    static long count[BUCKETS];
    double chi = 0, expect = (double)NAMES / BUCKETS;
    char name[32];
    int i;
    for (i = 0; i < NAMES; i++) {
        int n = snprintf(name, sizeof(name), "file%06d.dat", i);
        count[petrel_hash32(name, (size_t)n, 0) >> 24]++;
    }
    for (i = 0; i < BUCKETS; i++) chi += (count[i] - expect) * (count[i] - expect) / expect;
    /* 255 degrees of freedom: the 99.9th percentile is about 330. */
    test_log("chi-square %.1f over %d buckets", chi, BUCKETS);
    CHECK(chi < 330);
}
