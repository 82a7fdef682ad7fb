/*
 * crc32c throughput: every available Petrel path and ISA-L's crc32_iscsi, on 4 KiB and 1 MiB
 * buffers, measured in the same run. Lines: "crc32c IMPL BYTES GBPS", then the ratio of
 * Petrel's best path to ISA-L for each size. `best` is petrel_crc32c itself (the path it picks
 * for that size); the others call one path directly.
 *
 * The machine is shared, so the candidates take turns: eleven rounds of about 15 ms each, every
 * candidate once a round, and each keeps its best round. A burst of load then hits all of them
 * alike instead of whichever happened to be running.
 *
 * crc32c_sizes prints "crc32c-size IMPL BYTES GBPS" for sizes from 16 bytes to 64 KiB: the
 * figures behind the dispatcher's size thresholds (src/common/crc32c_hw.c, docs/CRC32C.md).
 */
#include <isa-l.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"

static volatile uint32_t bench_sink;

typedef uint32_t (*crc_fn)(int impl, uint32_t crc, const void *buf, size_t len);

struct candidate {
    const char *name;
    crc_fn fn;
    int impl;
    double best; /* GB/s */
};

/* GB/s of one round: len-byte calls until `seconds` have passed. */
static double measure_round(const struct candidate *c, const unsigned char *buf, size_t len,
                            double seconds)
{
    size_t batch = ((size_t)4 << 20) / len + 1, calls = 0, i;
    double t0 = bench_now(), dt;
    uint32_t crc = 0;
    do {
        for (i = 0; i < batch; i++) crc = c->fn(c->impl, crc, buf, len);
        calls += batch;
        dt = bench_now() - t0;
    } while (dt < seconds);
    bench_sink = crc;
    return (double)calls * (double)len / dt / 1e9;
}

/* Every candidate's best of `rounds` rounds, taking turns. */
static void measure_all(struct candidate *c, int count, const unsigned char *buf, size_t len,
                        int rounds, double seconds)
{
    int r, i;
    for (i = 0; i < count; i++) c[i].best = 0;
    for (r = 0; r < rounds; r++)
        for (i = 0; i < count; i++) {
            double gbps = measure_round(&c[i], buf, len, seconds);
            if (gbps > c[i].best) c[i].best = gbps;
        }
}

static uint32_t run_petrel(int impl, uint32_t crc, const void *buf, size_t len)
{
    return petrel_crc32c_with((enum petrel_crc32c_impl)impl, crc, buf, len);
}

/* What callers get: petrel_crc32c with its own choice of path for the size. */
static uint32_t run_best(int impl, uint32_t crc, const void *buf, size_t len)
{
    (void)impl;
    return petrel_crc32c(crc, buf, len);
}

static uint32_t run_isal(int impl, uint32_t crc, const void *buf, size_t len)
{
    (void)impl;
    /* ISA-L takes and returns the raw register: invert around it to chain like Petrel. */
    return ~crc32_iscsi((unsigned char *)buf, (int)len, ~crc);
}

/* best, every available path from `first_impl` on, then isal; returns the count. */
static int candidates(struct candidate *c, int first_impl)
{
    int n = 0, impl;
    c[n++] = (struct candidate){"best", run_best, 0, 0};
    for (impl = first_impl; impl < PETREL_CRC32C_IMPL_COUNT; impl++)
        if (petrel_crc32c_impl_available((enum petrel_crc32c_impl)impl))
            c[n++] = (struct candidate){
                petrel_crc32c_impl_name((enum petrel_crc32c_impl)impl), run_petrel, impl, 0};
    c[n++] = (struct candidate){"isal", run_isal, 0, 0};
    return n;
}

BENCH(crc32c)
{
    static const size_t sizes[] = {4096, 1u << 20};
    struct candidate c[PETREL_CRC32C_IMPL_COUNT + 2];
    unsigned char *buf = malloc(1u << 20);
    struct pt_prng g;
    size_t s;
    int n, i;
    if (!buf) return;
    pt_prng_seed(&g, 1);
    pt_prng_fill(&g, buf, 1u << 20);
    n = candidates(c, PETREL_CRC32C_TABLE);
    for (s = 0; s < 2; s++) {
        measure_all(c, n, buf, sizes[s], 11, 0.015);
        for (i = 0; i < n; i++) printf("crc32c %s %zu %.2f\n", c[i].name, sizes[s], c[i].best);
        printf("crc32c ratio-best-to-isal %zu %.2f\n", sizes[s], c[0].best / c[n - 1].best);
    }
    free(buf);
}

BENCH(crc32c_sizes)
{
    struct candidate c[PETREL_CRC32C_IMPL_COUNT + 2];
    unsigned char *buf = malloc(1u << 16);
    struct pt_prng g;
    size_t len;
    int n, i;
    if (!buf) return;
    pt_prng_seed(&g, 2);
    pt_prng_fill(&g, buf, 1u << 16);
    n = candidates(c, PETREL_CRC32C_TABLE + 1); /* the table path is far behind at every size */
    for (len = 16; len <= 1u << 16; len *= 2) {
        measure_all(c, n, buf, len, 3, 0.01);
        for (i = 0; i < n; i++) printf("crc32c-size %s %zu %.2f\n", c[i].name, len, c[i].best);
    }
    free(buf);
}
