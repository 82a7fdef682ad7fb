/*
 * The Petrel name hash: a stable 64-bit (and 32-bit) hash of directory entry names.
 *
 * Both tiers order directory entries by this hash (the flash engine in its metadata, the
 * cluster shards in their keys), so its values are part of the on-disk formats: they never
 * change, on any platform, compiler or endianness. Input is read byte by byte as
 * little-endian 64-bit words; the algorithm and test vectors are in docs/HASH.md.
 *
 * Not cryptographic: an adversary can make collisions. Users of the hash must handle equal
 * hashes for different names (both tiers compare the names after the hash).
 * Plain C99, no dependencies; written for Petrel, under the project's licence.
 */
#ifndef PETREL_HASH_H
#define PETREL_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 64-bit hash of len bytes at name, with a seed (0 for directory ordering). */
uint64_t petrel_hash64(const void *name, size_t len, uint64_t seed);

/* 32-bit hash: the two halves of petrel_hash64 folded together. */
uint32_t petrel_hash32(const void *name, size_t len, uint64_t seed);

#endif
