/*
 * SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012): a keyed
 * pseudo-random function with a 128-bit key and a 64-bit output, intended as a MAC for short
 * messages. Petrel uses it for block certificates and proofs (a shard proves to a block
 * service that a write or erase is authorised, and the block service proves it was done), with
 * a secret shared through the registry.
 *
 * Conventions of the paper: the key is 16 bytes, k0 = bytes 0..7 and k1 = bytes 8..15, both
 * little-endian; the message is read as little-endian 64-bit words, the last one padded with
 * zeros and topped with the message length mod 256 in its highest byte. The result is a u64
 * (serialised little-endian where Petrel stores or sends it).
 *
 * Plain C99, no dependencies.
 */
#ifndef PETREL_SIPHASH_H
#define PETREL_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define PETREL_SIPHASH_KEY_SIZE 16

/* SipHash-2-4 of len bytes at data under a 16-byte key. */
uint64_t petrel_siphash24(const uint8_t key[PETREL_SIPHASH_KEY_SIZE], const void *data, size_t len);

/*
 * Compare two MACs without a data-dependent early exit (so the time taken does not tell how
 * many leading bits of a forged tag were right): 1 when equal.
 */
int petrel_mac_equal(uint64_t a, uint64_t b);

#endif
