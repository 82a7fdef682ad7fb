/*
 * Reed-Solomon erasure coding for spans of storage class 2 (docs/SPEC-SHARD.md §3.3), over
 * ISA-L: the code is the systematic Cauchy matrix of gf_gen_cauchy1_matrix (rows 0..D-1 the
 * identity, rows D..D+P-1 the parity coefficients); encoding and decoding run through
 * ec_init_tables / ec_encode_data, which pick the CPU's fastest kernel (AVX-512, AVX2, AVX,
 * SSE) themselves. Decoding inverts the D x D sub-matrix of D surviving rows with
 * gf_invert_matrix. No Galois-field arithmetic is written here.
 *
 * Owns no I/O and no allocation: a struct pt_ec holds the matrix and the encode tables of
 * one (D, P); every buffer is the caller's. Any D in 1..16 and P in 1..4 (the span format
 * limits D + P to PT_SPAN_BLOCKS_MAX, 16).
 */
#ifndef PETREL_CLUSTER_EC_H
#define PETREL_CLUSTER_EC_H

#include <stddef.h>
#include <stdint.h>

#define PT_EC_DATA_MAX 16
#define PT_EC_PARITY_MAX 4
#define PT_EC_ROWS_MAX (PT_EC_DATA_MAX + PT_EC_PARITY_MAX)

struct pt_ec {
    unsigned data, parity;
    uint8_t matrix[PT_EC_ROWS_MAX * PT_EC_DATA_MAX];        /* (D+P) x D, row major */
    uint8_t tables[32 * PT_EC_DATA_MAX * PT_EC_PARITY_MAX]; /* ec_init_tables of parity */
};

/* Prepare the code RS(data, parity): 0, or -PT_EINVAL outside 1..16 / 1..4. */
int pt_ec_init(struct pt_ec *ec, unsigned data, unsigned parity);

/*
 * Parity of one stripe: data[0..D-1] each `len` bytes, parity[0..P-1] receive `len` bytes.
 * Any len >= 1 (cells are whole pages in spans).
 */
void pt_ec_encode(const struct pt_ec *ec, size_t len, uint8_t *const *data, uint8_t *const *parity);

/*
 * Rebuild lost blocks of one stripe. have[0..D-1] are the indices (0..D+P-1, distinct) of D
 * surviving blocks whose `len` bytes are src[0..D-1]; want[0..n_want-1] the indices to
 * rebuild (data or parity) into out[0..n_want-1]. 0; -PT_EIO when fewer than D survivors are
 * given (n_have < D: more than P blocks lost); -PT_EINVAL for an index out of range or
 * repeated.
 */
int pt_ec_decode(const struct pt_ec *ec, size_t len, unsigned n_have, const unsigned *have,
                 uint8_t *const *src, unsigned n_want, const unsigned *want, uint8_t *const *out);

/* The instruction set ISA-L's dispatcher uses on this CPU ("avx512", "avx2", "avx", "sse",
 * "base"), for benchmark lines. */
const char *pt_ec_cpu_features(void);

#endif
