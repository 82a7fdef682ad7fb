/*
 * A seeded pseudo-random generator (xoshiro256** seeded through splitmix64).
 *
 * Petrel takes randomness only from a generator passed in, so that a test, a simulation or
 * an allocator start point replays exactly from its seed. Not for cryptography.
 * Plain C99, no dependencies.
 */
#ifndef PETREL_PRNG_H
#define PETREL_PRNG_H

#include <stddef.h>
#include <stdint.h>

struct pt_prng {
    uint64_t s[4];
};

/* Seed the generator; every seed (0 included) gives a valid, distinct stream. */
void pt_prng_seed(struct pt_prng *g, uint64_t seed);

/* The next 64 random bits. */
uint64_t pt_prng_next(struct pt_prng *g);

/* A uniform value in [0, bound) without modulo bias; bound 0 returns 0. */
uint64_t pt_prng_below(struct pt_prng *g, uint64_t bound);

/* Fill a buffer with random bytes. */
void pt_prng_fill(struct pt_prng *g, void *buf, size_t len);

/* One splitmix64 step: a good 64-bit mixer, also used to derive seeds. */
uint64_t pt_splitmix64(uint64_t *state);

#endif
