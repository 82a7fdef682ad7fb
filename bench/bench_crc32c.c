/*
 * crc32c throughput against ISA-L's crc32_iscsi, measured in the same run.
 *
 * `crc32c` prints, for this CPU's own level, every available Petrel path, `best`
 * (petrel_crc32c itself: the path it picks for that size) and `isal` (crc32_iscsi, ISA-L's own
 * choice for this CPU) on 4 KiB and 1 MiB: "crc32c IMPL BYTES GBPS", then
 * "crc32c ratio-best-to-isal BYTES R". Then, for every x86-64 level the CPU can run, forced
 * with pt_crc32c_force_level as if the CPU had only that level, petrel_crc32c against the
 * ISA-L function ISA-L itself runs on a CPU of that level (ISA-L 2.30: crc32_iscsi_00 with
 * SSE4.2 alone, crc32_iscsi_01 with PCLMULQDQ, also with AVX2 + VPCLMULQDQ for which it has
 * no path, crc32_iscsi_by16_10 with AVX-512):
 *   crc32c-level LEVEL BYTES petrel GBPS ISAL-FUNCTION GBPS ratio R
 *   crc32c-calibration LEVEL choice IMPL us MICROSECONDS
 * and a summary table. Then the legacy-SSE paths and their vzeroupper forms with the vector
 * registers' upper halves clean and dirty ("crc32c-dirty-upper PATH 4096 clean GBPS dirty
 * GBPS"), and last the portable table path in each size the build switch
 * PETREL_CRC32C_TABLE_BYTES offers: "crc32c-table VARIANT BYTES GBPS".
 *
 * The machine is shared, so the candidates take turns: eleven rounds of about 15 ms each, every
 * candidate once a round, and each keeps its best round. A burst of load then hits all of them
 * alike instead of whichever happened to be running.
 *
 * crc32c_sizes prints "crc32c-size IMPL BYTES GBPS" for sizes from 16 bytes to 64 KiB: the
 * figures behind the dispatcher's size thresholds (src/common/crc32c_hw.c, docs/CRC32C.md).
 */
#include <dlfcn.h>
#include <isa-l.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "common/crc32c_impl.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"

/* The three table variants, compiled here whatever the library was built with. */
#define CRC32C_WANT_SLICE8 1
#define CRC32C_WANT_BYTE 1
#define CRC32C_WANT_NIBBLE 1
#include "common/crc32c_table.inc"

static volatile uint32_t bench_sink;

typedef uint32_t (*crc_fn)(const void *ctx, uint32_t crc, const void *buf, size_t len);
typedef unsigned int (*isal_fn)(unsigned char *buf, int len, unsigned int init);

struct candidate {
    const char *name;
    crc_fn fn;
    const void *ctx; /* what fn needs: an impl number, an ISA-L or a raw function */
    double best;     /* GB/s */
};

/* GB/s of one round: len-byte calls until `seconds` have passed. */
static double measure_round(const struct candidate *c, const unsigned char *buf, size_t len,
                            double seconds)
{
    size_t batch = ((size_t)4 << 20) / len + 1, calls = 0, i;
    double t0 = bench_now(), dt;
    uint32_t crc = 0;
    do {
        for (i = 0; i < batch; i++)
            crc = c->fn(c->ctx, crc, buf, len);
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
    for (i = 0; i < count; i++)
        c[i].best = 0;
    for (r = 0; r < rounds; r++)
        for (i = 0; i < count; i++) {
            double gbps = measure_round(&c[i], buf, len, seconds);
            if (gbps > c[i].best) c[i].best = gbps;
        }
}

static const int impl_numbers[PETREL_CRC32C_IMPL_COUNT] = {0, 1, 2, 3, 4, 5};

static uint32_t run_petrel(const void *ctx, uint32_t crc, const void *buf, size_t len)
{
    return petrel_crc32c_with((enum petrel_crc32c_impl) * (const int *)ctx, crc, buf, len);
}

/* What callers get: petrel_crc32c with its own choice of path for the size. */
static uint32_t run_best(const void *ctx, uint32_t crc, const void *buf, size_t len)
{
    (void)ctx;
    return petrel_crc32c(crc, buf, len);
}

struct isal_ref {
    const char *name;
    isal_fn fn;
};

static uint32_t run_isal(const void *ctx, uint32_t crc, const void *buf, size_t len)
{
    /* ISA-L takes and returns the raw register: invert around it to chain like Petrel. */
    return ~((const struct isal_ref *)ctx)->fn((unsigned char *)buf, (int)len, ~crc);
}

static uint32_t run_raw(const void *ctx, uint32_t crc, const void *buf, size_t len)
{
    return ~(*(const pt_crc32c_raw_fn *)ctx)(~crc, (const unsigned char *)buf, len);
}

static const struct isal_ref isal_dispatch = {"isal", crc32_iscsi};

/* best, every available path from `first_impl` on, then isal; returns the count. */
static int candidates(struct candidate *c, int first_impl)
{
    int n = 0, impl;
    c[n++] = (struct candidate){"best", run_best, NULL, 0};
    for (impl = first_impl; impl < PETREL_CRC32C_IMPL_COUNT; impl++)
        if (petrel_crc32c_impl_available((enum petrel_crc32c_impl)impl))
            c[n++] = (struct candidate){petrel_crc32c_impl_name((enum petrel_crc32c_impl)impl),
                                        run_petrel, &impl_numbers[impl], 0};
    c[n++] = (struct candidate){"isal", run_isal, &isal_dispatch, 0};
    return n;
}

/*
 * The ISA-L function ISA-L's own dispatcher runs on a CPU of `level`, looked up by name (the
 * per-CPU functions are exported by libisal but not declared in its headers); its own
 * dispatcher when a name is missing.
 */
static struct isal_ref isal_for_level(enum pt_crc32c_level level)
{
    static const char *const names[PT_CRC32C_LEVEL_COUNT] = {
        "crc32_iscsi_base", "crc32_iscsi_00",      "crc32_iscsi_01",
        "crc32_iscsi_01",   "crc32_iscsi_by16_10", "crc32_iscsi",
    };
    struct isal_ref r = {"crc32_iscsi", crc32_iscsi};
    void *sym = dlsym(RTLD_DEFAULT, names[level]);
    if (sym) {
        r.name = names[level];
        *(void **)&r.fn = sym;
    }
    return r;
}

#define LEVEL_SIZES 2
struct level_result {
    enum pt_crc32c_level level;
    const char *choice, *isal;
    double calibration_us, petrel[LEVEL_SIZES], isal_gbps[LEVEL_SIZES];
};

/* petrel_crc32c forced to each x86-64 level this CPU can run, against ISA-L for that level. */
static void bench_levels(const unsigned char *buf, const size_t *sizes)
{
    struct level_result res[PT_CRC32C_LEVEL_COUNT];
    enum pt_crc32c_level cpu = pt_crc32c_cpu_level(), level;
    int nres = 0, i, s;
    if (cpu < PT_CRC32C_LEVEL_SSE42 || cpu > PT_CRC32C_LEVEL_AVX512) {
        printf("crc32c-level %s: no x86-64 level to force\n", pt_crc32c_level_name(cpu));
        return;
    }
    for (level = cpu; level >= PT_CRC32C_LEVEL_SSE42; level--) {
        struct isal_ref ref = isal_for_level(level);
        struct candidate c[2];
        struct level_result *r = &res[nres++];
        double t0 = bench_now();
        if (pt_crc32c_force_level(level) != 0) {
            printf("crc32c-level %s refused\n", pt_crc32c_level_name(level));
            nres--;
            continue;
        }
        r->calibration_us = (bench_now() - t0) * 1e6;
        r->level = level;
        r->choice = petrel_crc32c_impl_name(petrel_crc32c_best());
        r->isal = ref.name;
        printf("crc32c-calibration %s choice %s us %.1f\n", pt_crc32c_level_name(level), r->choice,
               r->calibration_us);
        c[0] = (struct candidate){"petrel", run_best, NULL, 0};
        c[1] = (struct candidate){ref.name, run_isal, &ref, 0};
        for (s = 0; s < LEVEL_SIZES; s++) {
            measure_all(c, 2, buf, sizes[s], 11, 0.015);
            r->petrel[s] = c[0].best;
            r->isal_gbps[s] = c[1].best;
            printf("crc32c-level %s %zu petrel %.2f %s %.2f ratio %.2f\n",
                   pt_crc32c_level_name(level), sizes[s], c[0].best, ref.name, c[1].best,
                   c[0].best / c[1].best);
        }
        if (level == PT_CRC32C_LEVEL_SSE42) break; /* the enum is unsigned on some ABIs */
    }
    pt_crc32c_force_level(PT_CRC32C_LEVEL_COUNT);
    printf("\n| level | path | calibration | 4 KiB Petrel | ISA-L | ratio | 1 MiB Petrel | "
           "ISA-L | ratio |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (i = 0; i < nres; i++)
        printf("| %s | %s | %.0f us | %.1f | %.1f (%s) | %.2f | %.1f | %.1f | %.2f |\n",
               pt_crc32c_level_name(res[i].level), res[i].choice, res[i].calibration_us,
               res[i].petrel[0], res[i].isal_gbps[0], res[i].isal,
               res[i].petrel[0] / res[i].isal_gbps[0], res[i].petrel[1], res[i].isal_gbps[1],
               res[i].petrel[1] / res[i].isal_gbps[1]);
    printf("\n");
}

#ifdef PT_CRC32C_X86
/* A raw path called with the upper halves of the vector registers dirty, as after AVX code
 * that did not end with vzeroupper (ISA-L's assembly, for one). No target attribute: with one,
 * the compiler would put a vzeroupper of its own before the call. Needs AVX2 to run. */
static uint32_t run_raw_dirty(const void *ctx, uint32_t crc, const void *buf, size_t len)
{
    __asm__ volatile("vpcmpeqd %%ymm1, %%ymm1, %%ymm1" ::: "xmm1");
    return ~(*(const pt_crc32c_raw_fn *)ctx)(~crc, (const unsigned char *)buf, len);
}

/* The legacy-SSE paths and their vzeroupper forms, clean and dirty: why the forms exist. */
static void bench_dirty_upper(const unsigned char *buf)
{
    static const pt_crc32c_raw_fn fns[4] = {pt_crc32c_x86_sse42, pt_crc32c_x86_sse42_avx,
                                            pt_crc32c_x86_pclmul, pt_crc32c_x86_pclmul_avx};
    static const char *const names[4] = {"sse42", "sse42-avx", "pclmul", "pclmul-avx"};
    struct candidate c[8];
    int i;
    if (pt_crc32c_cpu_level() < PT_CRC32C_LEVEL_AVX2) return;
    for (i = 0; i < 4; i++) {
        c[2 * i] = (struct candidate){names[i], run_raw, &fns[i], 0};
        c[2 * i + 1] = (struct candidate){names[i], run_raw_dirty, &fns[i], 0};
    }
    measure_all(c, 8, buf, 4096, 5, 0.015);
    for (i = 0; i < 4; i++)
        printf("crc32c-dirty-upper %s 4096 clean %.2f dirty %.2f\n", names[i], c[2 * i].best,
               c[2 * i + 1].best);
}
#endif

/* The table path in each size of the build switch, and ISA-L's table code. */
static void bench_table_variants(const unsigned char *buf)
{
    static const pt_crc32c_raw_fn slice8 = crc32c_slice8_raw, byte = crc32c_byte_raw,
                                  nibble = crc32c_nibble_raw;
    static const struct isal_ref base = {"isal-base", crc32_iscsi_base};
    struct candidate c[4] = {
        {"8192", run_raw, &slice8, 0},
        {"1024", run_raw, &byte, 0},
        {"64", run_raw, &nibble, 0},
        {"isal-base", run_isal, &base, 0},
    };
    int i;
    measure_all(c, 4, buf, 4096, 5, 0.015);
    for (i = 0; i < 4; i++)
        printf("crc32c-table %s 4096 %.2f\n", c[i].name, c[i].best);
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
        for (i = 0; i < n; i++)
            printf("crc32c %s %zu %.2f\n", c[i].name, sizes[s], c[i].best);
        printf("crc32c ratio-best-to-isal %zu %.2f\n", sizes[s], c[0].best / c[n - 1].best);
    }
    bench_levels(buf, sizes);
#ifdef PT_CRC32C_X86
    bench_dirty_upper(buf);
#endif
    bench_table_variants(buf);
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
        for (i = 0; i < n; i++)
            printf("crc32c-size %s %zu %.2f\n", c[i].name, len, c[i].best);
    }
    free(buf);
}
