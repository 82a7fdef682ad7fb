/*
 * Reed-Solomon over ISA-L (src/cluster/ec): for every D <= 16 and P <= 4, parity equals
 * ISA-L's baseline (non-SIMD) encoder over the Cauchy matrix; every combination of up to P lost
 * blocks (exhaustive up to D + P = 16, every layout a span may have; a seeded sample above) decodes
 * back to the original bytes, from a random choice of survivors; P + 1 losses are refused, never
 * decoded.
 */
#include <isa-l.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/ec/ec.h"
#include "petrel/common.h"
#include "petrel/prng.h"
#include "test.h"

#define PT_EC_EXHAUSTIVE_ROWS 16 /* every layout a span can have */
#define LEN 300                  /* not a multiple of any SIMD width: the kernels' tails run too */

struct stripe {
    uint8_t buf[PT_EC_ROWS_MAX][LEN];
    uint8_t *ptr[PT_EC_ROWS_MAX];
};

static void stripe_fill(struct stripe *s, const struct pt_ec *ec, struct pt_prng *r)
{
    unsigned i, j;
    for (i = 0; i < PT_EC_ROWS_MAX; i++)
        s->ptr[i] = s->buf[i];
    for (i = 0; i < ec->data; i++)
        for (j = 0; j < LEN; j++)
            s->buf[i][j] = (uint8_t)pt_prng_next(r);
    pt_ec_encode(ec, LEN, s->ptr, s->ptr + ec->data);
}

/* Decode the blocks of `lost` (a bit mask) from D survivors picked at random; 0 when every
 * rebuilt byte matches. */
static int lose_and_rebuild(const struct pt_ec *ec, const struct stripe *s, uint32_t lost,
                            struct pt_prng *r)
{
    unsigned rows = ec->data + ec->parity, have[PT_EC_ROWS_MAX], want[PT_EC_ROWS_MAX];
    unsigned n_have = 0, n_want = 0, i;
    uint8_t *src[PT_EC_ROWS_MAX], *out[PT_EC_ROWS_MAX];
    static uint8_t rebuilt[PT_EC_ROWS_MAX][LEN];
    int rc;
    for (i = 0; i < rows; i++) {
        if (lost >> i & 1u)
            want[n_want++] = i;
        else
            have[n_have++] = i;
    }
    /* A random D of the survivors, in random order. */
    for (i = n_have; i > 1; i--) {
        unsigned k = (unsigned)pt_prng_below(r, i), t = have[i - 1];
        have[i - 1] = have[k];
        have[k] = t;
    }
    if (n_have > ec->data) n_have = ec->data;
    for (i = 0; i < n_have; i++)
        src[i] = (uint8_t *)s->buf[have[i]];
    for (i = 0; i < n_want; i++) {
        out[i] = rebuilt[i];
        memset(rebuilt[i], 0xA5, LEN);
    }
    rc = pt_ec_decode(ec, LEN, n_have, have, src, n_want, want, out);
    if (rc) return rc;
    for (i = 0; i < n_want; i++)
        if (memcmp(rebuilt[i], s->buf[want[i]], LEN) != 0) return 1;
    return 0;
}

TEST(ec_parity_matches_isal_baseline_for_every_layout)
{
    struct pt_prng r;
    unsigned d, p, i;
    pt_prng_seed(&r, test_seed());
    for (d = 1; d <= PT_EC_DATA_MAX; d++)
        for (p = 1; p <= PT_EC_PARITY_MAX; p++) {
            static struct stripe s;
            static uint8_t ref[PT_EC_PARITY_MAX][LEN];
            uint8_t matrix[PT_EC_ROWS_MAX * PT_EC_DATA_MAX], tables[32 * 16 * 4], *rp[4];
            struct pt_ec ec;
            CHECK_OK(pt_ec_init(&ec, d, p));
            stripe_fill(&s, &ec, &r);
            gf_gen_cauchy1_matrix(matrix, (int)(d + p), (int)d);
            ec_init_tables((int)d, (int)p, matrix + d * d, tables);
            for (i = 0; i < p; i++)
                rp[i] = ref[i];
            ec_encode_data_base(LEN, (int)d, (int)p, tables, s.ptr, rp);
            for (i = 0; i < p; i++)
                CHECK_MSG(memcmp(ref[i], s.buf[d + i], LEN) == 0, "RS(%u,%u) parity %u differs", d,
                          p, i);
        }
}

TEST(ec_every_loss_of_up_to_p_blocks_decodes)
{
    struct pt_prng r;
    unsigned d, p;
    unsigned long cases = 0;
    pt_prng_seed(&r, test_seed());
    for (d = 1; d <= PT_EC_DATA_MAX; d++)
        for (p = 1; p <= PT_EC_PARITY_MAX; p++) {
            static struct stripe s;
            struct pt_ec ec;
            unsigned rows = d + p;
            CHECK_OK(pt_ec_init(&ec, d, p));
            stripe_fill(&s, &ec, &r);
            if (rows <= PT_EC_EXHAUSTIVE_ROWS) {
                uint32_t lost;
                for (lost = 1; lost < (1u << rows); lost++) {
                    if ((unsigned)__builtin_popcount(lost) > p) continue;
                    CHECK_MSG(lose_and_rebuild(&ec, &s, lost, &r) == 0,
                              "RS(%u,%u) lost mask 0x%x not rebuilt", d, p, lost);
                    cases++;
                }
            } else {
                unsigned t;
                for (t = 0; t < 400; t++) {
                    uint32_t lost = 0;
                    unsigned n = 1 + (unsigned)pt_prng_below(&r, p);
                    while ((unsigned)__builtin_popcount(lost) < n)
                        lost |= 1u << pt_prng_below(&r, rows);
                    CHECK_MSG(lose_and_rebuild(&ec, &s, lost, &r) == 0,
                              "RS(%u,%u) lost mask 0x%x not rebuilt", d, p, lost);
                    cases++;
                }
            }
        }
    CHECK_EQ(cases, 17490);
}

TEST(ec_more_than_p_losses_are_refused)
{
    struct pt_prng r;
    unsigned d, p;
    pt_prng_seed(&r, test_seed());
    for (d = 1; d <= PT_EC_DATA_MAX; d++)
        for (p = 1; p <= PT_EC_PARITY_MAX && d + p > p + 1; p++) {
            static struct stripe s;
            struct pt_ec ec;
            uint32_t lost = 0;
            CHECK_OK(pt_ec_init(&ec, d, p));
            stripe_fill(&s, &ec, &r);
            while ((unsigned)__builtin_popcount(lost) < p + 1)
                lost |= 1u << pt_prng_below(&r, d + p);
            CHECK_EQ(lose_and_rebuild(&ec, &s, lost, &r), -PT_EIO);
        }
}

TEST(ec_bad_arguments_are_refused)
{
    struct pt_ec ec;
    static struct stripe s;
    unsigned have[4] = {0, 1, 1, 3}, want[1] = {2};
    uint8_t *out[1] = {s.buf[19]};
    CHECK_EQ(pt_ec_init(&ec, 0, 2), -PT_EINVAL);
    CHECK_EQ(pt_ec_init(&ec, 17, 2), -PT_EINVAL);
    CHECK_EQ(pt_ec_init(&ec, 4, 0), -PT_EINVAL);
    CHECK_EQ(pt_ec_init(&ec, 4, 5), -PT_EINVAL);
    CHECK_OK(pt_ec_init(&ec, 4, 2));
    CHECK_EQ(pt_ec_decode(&ec, LEN, 4, have, s.ptr, 1, want, out), -PT_EINVAL); /* repeated */
    have[2] = 6;
    CHECK_EQ(pt_ec_decode(&ec, LEN, 4, have, s.ptr, 1, want, out), -PT_EINVAL); /* range */
    have[2] = 4;
    want[0] = 6;
    CHECK_EQ(pt_ec_decode(&ec, LEN, 4, have, s.ptr, 1, want, out), -PT_EINVAL);
    CHECK(strlen(pt_ec_cpu_features()) > 0);
}
