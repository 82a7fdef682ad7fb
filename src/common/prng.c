/*
 * xoshiro256** (Blackman and Vigna), seeded by splitmix64. Owns nothing but the four words of
 * state the caller passes; never reads a clock or global state, so streams replay exactly.
 */
#include "petrel/prng.h"

#include <string.h>

uint64_t pt_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void pt_prng_seed(struct pt_prng *g, uint64_t seed)
{
    int i;
    for (i = 0; i < 4; i++) g->s[i] = pt_splitmix64(&seed);
}

static uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t pt_prng_next(struct pt_prng *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

uint64_t pt_prng_below(struct pt_prng *g, uint64_t bound)
{
    uint64_t threshold, r;
    if (bound == 0) return 0;
    /* Reject the low values that would make some residues more likely than others. */
    threshold = (0 - bound) % bound;
    do {
        r = pt_prng_next(g);
    } while (r < threshold);
    return r % bound;
}

void pt_prng_fill(struct pt_prng *g, void *buf, size_t len)
{
    unsigned char *p = (unsigned char *)buf;
    while (len >= 8) {
        uint64_t v = pt_prng_next(g);
        int i;
        for (i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t v = pt_prng_next(g);
        size_t i;
        for (i = 0; i < len; i++) p[i] = (unsigned char)(v >> (8 * i));
    }
}
