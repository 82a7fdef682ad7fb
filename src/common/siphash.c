/*
 * SipHash-2-4, written from the paper (see include/petrel/siphash.h). Owns only the PRF: two
 * compression rounds per message word, four finalisation rounds. Never reads past len bytes:
 * the tail word is assembled byte by byte.
 */
#include "petrel/siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* One SipRound: the ARX network of the paper, section 2. */
#define SIPROUND(v0, v1, v2, v3)                                                              \
    do {                                                                                     \
        v0 += v1;                                                                            \
        v1 = ROTL(v1, 13);                                                                   \
        v1 ^= v0;                                                                            \
        v0 = ROTL(v0, 32);                                                                   \
        v2 += v3;                                                                            \
        v3 = ROTL(v3, 16);                                                                   \
        v3 ^= v2;                                                                            \
        v0 += v3;                                                                            \
        v3 = ROTL(v3, 21);                                                                   \
        v3 ^= v0;                                                                            \
        v2 += v1;                                                                            \
        v1 = ROTL(v1, 17);                                                                   \
        v1 ^= v2;                                                                            \
        v2 = ROTL(v2, 32);                                                                   \
    } while (0)

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

uint64_t petrel_siphash24(const uint8_t key[PETREL_SIPHASH_KEY_SIZE], const void *data,
                          size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    /* Initialisation constants: "somepseudorandomlygeneratedbytes" in ASCII. */
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
    uint64_t v3 = k1 ^ 0x7465646279746573ull;
    uint64_t m, last;
    size_t words = len / 8, i;
    size_t tail = len % 8;

    for (i = 0; i < words; i++) {
        m = load_le64(p + 8 * i);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    last = (uint64_t)(len & 0xff) << 56;
    for (i = 0; i < tail; i++) last |= (uint64_t)p[8 * words + i] << (8 * i);
    v3 ^= last;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= last;

    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

int petrel_mac_equal(uint64_t a, uint64_t b)
{
    uint64_t d = a ^ b;
    d |= d >> 32;
    d |= d >> 16;
    d |= d >> 8;
    return (int)(1 & ((d & 0xff) - 1) >> 8);
}
