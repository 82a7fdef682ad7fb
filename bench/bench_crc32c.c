/*
 * crc32c throughput: every available Petrel path and ISA-L's crc32_iscsi, on 4 KiB and 1 MiB
 * buffers, measured in the same run. Lines: "crc32c IMPL BYTES GBPS", then the ratio of
 * Petrel's best path to ISA-L for each size. `best` is petrel_crc32c itself (the path it picks
 * for that size); the others call one path directly.
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

/* GB/s of fn over `total` bytes in len-byte calls, best of three rounds. */
static double measure_total(uint32_t (*fn)(int, uint32_t, const void *, size_t), int impl,
                            const unsigned char *buf, size_t len, size_t total)
{
    double best = 0;
    int round;
    for (round = 0; round < 3; round++) {
        size_t reps = total / len, i;
        double t0 = bench_now(), dt;
        uint32_t c = 0;
        for (i = 0; i < reps; i++) c = fn(impl, c, buf, len);
        dt = bench_now() - t0;
        bench_sink = c;
        if ((double)reps * len / dt / 1e9 > best) best = (double)reps * len / dt / 1e9;
    }
    return best;
}

/* GB/s of fn over 64 MiB in len-byte calls, best of three rounds. */
static double measure(uint32_t (*fn)(int, uint32_t, const void *, size_t), int impl,
                      const unsigned char *buf, size_t len)
{
    return measure_total(fn, impl, buf, len, (size_t)64 << 20);
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

BENCH(crc32c)
{
    static const size_t sizes[] = {4096, 1u << 20};
    unsigned char *buf = malloc(1u << 20);
    struct pt_prng g;
    size_t s;
    if (!buf) return;
    pt_prng_seed(&g, 1);
    pt_prng_fill(&g, buf, 1u << 20);
    for (s = 0; s < 2; s++) {
        int impl;
        double isal = measure(run_isal, 0, buf, sizes[s]);
        double best = measure(run_best, 0, buf, sizes[s]);
        printf("crc32c best %zu %.2f\n", sizes[s], best);
        for (impl = 0; impl < PETREL_CRC32C_IMPL_COUNT; impl++) {
            if (!petrel_crc32c_impl_available((enum petrel_crc32c_impl)impl)) continue;
            printf("crc32c %s %zu %.2f\n", petrel_crc32c_impl_name((enum petrel_crc32c_impl)impl),
                   sizes[s], measure(run_petrel, impl, buf, sizes[s]));
        }
        printf("crc32c isal %zu %.2f\n", sizes[s], isal);
        printf("crc32c ratio-best-to-isal %zu %.2f\n", sizes[s], best / isal);
    }
    free(buf);
}

BENCH(crc32c_sizes)
{
    unsigned char *buf = malloc(1u << 16);
    struct pt_prng g;
    size_t len;
    if (!buf) return;
    pt_prng_seed(&g, 2);
    pt_prng_fill(&g, buf, 1u << 16);
    for (len = 16; len <= 1u << 16; len *= 2) {
        int impl;
        printf("crc32c-size best %zu %.2f\n", len, measure_total(run_best, 0, buf, len, 16u << 20));
        for (impl = 1; impl < PETREL_CRC32C_IMPL_COUNT; impl++) {
            if (!petrel_crc32c_impl_available((enum petrel_crc32c_impl)impl)) continue;
            printf("crc32c-size %s %zu %.2f\n",
                   petrel_crc32c_impl_name((enum petrel_crc32c_impl)impl), len,
                   measure_total(run_petrel, impl, buf, len, 16u << 20));
        }
        printf("crc32c-size isal %zu %.2f\n", len, measure_total(run_isal, 0, buf, len, 16u << 20));
    }
    free(buf);
}
