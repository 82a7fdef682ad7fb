/*
 * SipHash-2-4, written from the paper (see include/petrel/siphash.h). Owns only the PRF: two
 * compression rounds per message word, four finalisation rounds. Never reads past len bytes:
 * the tail word is assembled byte by byte.
 */
#include "petrel/siphash.h"

/* Rotate left by 0 < b < 64. */
static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

/* One SipRound: the ARX network of the paper, section 2, on the state v[0..3]. */
static void sipround(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = rotl(v[1], 13);
    v[1] ^= v[0];
    v[0] = rotl(v[0], 32);
    v[2] += v[3];
    v[3] = rotl(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = rotl(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = rotl(v[1], 17);
    v[1] ^= v[2];
    v[2] = rotl(v[2], 32);
}

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t petrel_siphash24(const uint8_t key[PETREL_SIPHASH_KEY_SIZE], const void *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    /* Initialisation constants: "somepseudorandomlygeneratedbytes" in ASCII. */
    uint64_t v[4];
    uint64_t m, last;
    size_t words = len / 8, i;
    size_t tail = len % 8;

    v[0] = k0 ^ 0x736f6d6570736575ull;
    v[1] = k1 ^ 0x646f72616e646f6dull;
    v[2] = k0 ^ 0x6c7967656e657261ull;
    v[3] = k1 ^ 0x7465646279746573ull;

    for (i = 0; i < words; i++) {
        m = load_le64(p + 8 * i);
        v[3] ^= m;
        sipround(v);
        sipround(v);
        v[0] ^= m;
    }
    last = (uint64_t)(len & 0xff) << 56;
    for (i = 0; i < tail; i++)
        last |= (uint64_t)p[8 * words + i] << (8 * i);
    v[3] ^= last;
    sipround(v);
    sipround(v);
    v[0] ^= last;

    v[2] ^= 0xff;
    sipround(v);
    sipround(v);
    sipround(v);
    sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

int petrel_mac_equal(uint64_t a, uint64_t b)
{
    uint64_t d = a ^ b;
    d |= d >> 32;
    d |= d >> 16;
    d |= d >> 8;
    return (int)(1 & ((d & 0xff) - 1) >> 8);
}
