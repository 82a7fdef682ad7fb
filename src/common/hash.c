/*
 * The Petrel name hash (docs/HASH.md). Reads input as little-endian 64-bit words through byte
 * loads only, so the value never depends on the host's endianness or alignment rules.
 * Each word is scrambled by multiply-rotate-multiply and folded into the state with a rotate
 * and multiply-add; the tail (0..7 bytes) is packed into one more word tagged with its
 * length; a final avalanche mixes every input bit into every output bit.
 */
#include "petrel/hash.h"

#define HASH_K1 0x9e3779b97f4a7c15ull /* 2^64 / golden ratio */
#define HASH_K2 0xd6e8feb86659fd93ull
#define HASH_K3 0xa0761d6478bd642full
#define HASH_K4 0xe7037ed1a0b428dbull

static uint64_t hash_rotl(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t hash_load_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    size_t i;
    for (i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t hash_scramble(uint64_t w)
{
    w *= HASH_K2;
    w = hash_rotl(w, 29);
    return w * HASH_K1;
}

uint64_t petrel_hash64(const void *name, size_t len, uint64_t seed)
{
    const unsigned char *p = (const unsigned char *)name;
    uint64_t h = seed ^ HASH_K3 ^ ((uint64_t)len * HASH_K1);
    size_t left = len;

    while (left >= 8) {
        h ^= hash_scramble(hash_load_le(p, 8));
        h = hash_rotl(h, 31) * HASH_K4 + HASH_K3;
        p += 8;
        left -= 8;
    }
    /* The tail word carries its byte count in the top byte, so "a" and "a\0" differ. */
    h ^= hash_scramble(hash_load_le(p, left) ^ ((uint64_t)left << 56));
    h = hash_rotl(h, 31) * HASH_K4 + HASH_K3;

    h ^= h >> 32;
    h *= HASH_K2;
    h ^= h >> 29;
    h *= HASH_K4;
    h ^= h >> 32;
    return h;
}

uint32_t petrel_hash32(const void *name, size_t len, uint64_t seed)
{
    uint64_t h = petrel_hash64(name, len, seed);
    return (uint32_t)(h ^ (h >> 32));
}
