/*
 * Reed-Solomon over ISA-L (see ec.h). Encoding uses the tables of the parity rows prepared
 * once per code; decoding builds, per call, the rows that map D survivors to each wanted
 * block: the inverse of the survivors' sub-matrix for a data block, that inverse multiplied
 * by the parity row (gf_mul, ISA-L's) for a parity block. Never guesses: a singular
 * sub-matrix (impossible for a Cauchy code) is reported as -PT_EIO, not decoded.
 */
#include "cluster/ec/ec.h"

#include <isa-l.h>
#include <string.h>

#include "petrel/common.h"

int pt_ec_init(struct pt_ec *ec, unsigned data, unsigned parity)
{
    if (data < 1 || data > PT_EC_DATA_MAX || parity < 1 || parity > PT_EC_PARITY_MAX)
        return -PT_EINVAL;
    memset(ec, 0, sizeof(*ec));
    ec->data = data;
    ec->parity = parity;
    gf_gen_cauchy1_matrix(ec->matrix, (int)(data + parity), (int)data);
    ec_init_tables((int)data, (int)parity, ec->matrix + (size_t)data * data, ec->tables);
    return 0;
}

void pt_ec_encode(const struct pt_ec *ec, size_t len, uint8_t *const *data, uint8_t *const *parity)
{
    ec_encode_data((int)len, (int)ec->data, (int)ec->parity, (unsigned char *)ec->tables,
                   (unsigned char **)data, (unsigned char **)parity);
}

int pt_ec_decode(const struct pt_ec *ec, size_t len, unsigned n_have, const unsigned *have,
                 uint8_t *const *src, unsigned n_want, const unsigned *want, uint8_t *const *out)
{
    unsigned d = ec->data, rows = ec->data + ec->parity, i, j, k;
    uint8_t sub[PT_EC_DATA_MAX * PT_EC_DATA_MAX], inv[PT_EC_DATA_MAX * PT_EC_DATA_MAX];
    uint8_t dec[PT_EC_ROWS_MAX * PT_EC_DATA_MAX];
    uint8_t tables[32 * PT_EC_DATA_MAX * PT_EC_ROWS_MAX];
    uint32_t seen = 0;
    if (n_have < d) return -PT_EIO;
    if (n_want > rows) return -PT_EINVAL;
    for (i = 0; i < d; i++) {
        if (have[i] >= rows || (seen >> have[i] & 1u)) return -PT_EINVAL;
        seen |= 1u << have[i];
        memcpy(sub + (size_t)i * d, ec->matrix + (size_t)have[i] * d, d);
    }
    for (i = 0; i < n_want; i++)
        if (want[i] >= rows) return -PT_EINVAL;
    if (n_want == 0) return 0;
    if (gf_invert_matrix(sub, inv, (int)d) != 0) return -PT_EIO;
    /* Row w of the code times inv maps the survivors to block w. */
    for (i = 0; i < n_want; i++) {
        const uint8_t *row = ec->matrix + (size_t)want[i] * d;
        for (j = 0; j < d; j++) {
            uint8_t s = 0;
            for (k = 0; k < d; k++)
                s ^= gf_mul(row[k], inv[(size_t)k * d + j]);
            dec[(size_t)i * d + j] = s;
        }
    }
    ec_init_tables((int)d, (int)n_want, dec, tables);
    ec_encode_data((int)len, (int)d, (int)n_want, tables, (unsigned char **)src,
                   (unsigned char **)out);
    return 0;
}

const char *pt_ec_cpu_features(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return __builtin_cpu_supports("gfni") ? "avx512+gfni" : "avx512";
    if (__builtin_cpu_supports("avx2")) return "avx2";
    if (__builtin_cpu_supports("avx")) return "avx";
    if (__builtin_cpu_supports("sse4.1")) return "sse";
#endif
    return "base";
}
