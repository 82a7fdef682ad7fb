/*
 * The run-time choice of a CRC-32C path: which paths this CPU can run, which one
 * petrel_crc32c takes for a given buffer size, and which multiply the combine operations use.
 *
 * The choice is made once per process, on first use, in two steps. The CPU's features give a
 * level (crc32c_impl.h: SSE4.2, +PCLMULQDQ, +AVX2 VPCLMULQDQ, +AVX-512), and the level the
 * candidates for large buffers in a fixed order of preference (widest vector first). Then a
 * calibration times every candidate on the same 4 KiB, taking turns, and keeps the first one
 * unless a later one is clearly faster (pt_crc32c_calibration_pick): on the machine the
 * levels were tuned on the widest path wins, but a CPU whose wide multiplier is slow gets
 * what is fastest on it. (Issue 14 saw the PCLMULQDQ path run behind the crc32 streams on an
 * AMD EPYC; the cause there was AVX code leaving the vector registers dirty, which the
 * vzeroupper forms of crc32c_x86.c remove, but a calibration catches whatever the cause.) It
 * costs about 10 microseconds (docs/CRC32C.md has the figures).
 *
 * The result is a pointer to one of the constant dispatch records below, published with a
 * compare-and-swap from NULL: threads racing on the first call may calibrate differently, but
 * only the first record stored is ever used, and a record is never seen half-made (release on
 * store, acquire on load). Tests and benchmarks may force a lower level
 * (pt_crc32c_force_level); that stores another constant record, and a call running at that
 * moment finishes on the record it loaded, which is just as correct.
 *
 * Nothing here reads callers' buffers; the paths live in crc32c_x86.c and crc32c_arm.c and
 * must all agree with the table path bit for bit. Size thresholds come from
 * `petrel-bench crc32c_sizes`: the folding paths pay a fixed cost to set up and reduce their
 * vector lanes, which the crc32 instruction's three streams beat on short buffers.
 *
 * Builds with any C99 compiler: without GNU C on x86-64 or AArch64 (or with
 * PETREL_CRC32C_NO_HW) there is no hardware path, and the dispatch is the constant table
 * record.
 */
#include "common/crc32c_impl.h"

struct crc32c_dispatch {
    unsigned available; /* bit (1 << impl) per usable path, table included */
    enum petrel_crc32c_impl small, large;
    size_t large_from; /* buffers of at least this many bytes take `large` */
    pt_crc32c_raw_fn small_fn, large_fn;
    pt_crc32c_raw_fn crc_fn;    /* the form of the CRC-instruction path (sse42, armv8) */
    pt_crc32c_raw_fn pclmul_fn; /* the form of the pclmul path (x86-64) */
    uint32_t (*multiply)(uint32_t a, uint32_t b);
};

static const struct crc32c_dispatch dispatch_table = {
    .available = 1u << PETREL_CRC32C_TABLE,
    .small = PETREL_CRC32C_TABLE,
    .large = PETREL_CRC32C_TABLE,
    .large_from = 0,
    .small_fn = pt_crc32c_table_raw,
    .large_fn = pt_crc32c_table_raw,
    .crc_fn = pt_crc32c_table_raw,
    .pclmul_fn = pt_crc32c_table_raw,
    .multiply = pt_crc32c_multiply_portable,
};

static const char *const level_names[PT_CRC32C_LEVEL_COUNT] = {
    "table", "sse42", "pclmul", "avx2-vpclmul", "avx512-vpclmul", "armv8",
};

const char *pt_crc32c_level_name(enum pt_crc32c_level level)
{
    return (unsigned)level < PT_CRC32C_LEVEL_COUNT ? level_names[level] : "unknown";
}

size_t pt_crc32c_calibration_pick(const uint64_t *times, size_t count)
{
    size_t best = 0, i;
    for (i = 1; i < count; i++) {
        /* Unmeasured: never wins (and an unmeasured winner is never beaten, as no time is
         * below 0). Otherwise it must be clearly faster: by more than an eighth. */
        if (times[i] == 0) continue;
        if (times[i] < times[best] - times[best] / 8) best = i;
    }
    return best;
}

#ifdef PT_CRC32C_X86
#define AVAIL_SSE42 (1u << PETREL_CRC32C_TABLE | 1u << PETREL_CRC32C_SSE42)
#define AVAIL_PCLMUL (AVAIL_SSE42 | 1u << PETREL_CRC32C_PCLMUL)
#define AVAIL_AVX2 (AVAIL_PCLMUL | 1u << PETREL_CRC32C_VPCLMUL256)
#define AVAIL_AVX512 (AVAIL_AVX2 | 1u << PETREL_CRC32C_VPCLMUL512)

/*
 * From the threshold up, `large`; below it, three crc32 streams (sse42). The thresholds:
 * pclmul from 1104 bytes (the path's own floor: below it that path runs the three streams
 * too); the VPCLMULQDQ paths from 256 bytes, where their folding overtakes the streams. On
 * CPUs with AVX the sse42 and pclmul paths take their vzeroupper forms (crc32c_x86.c says
 * why).
 */
#define RECORD(avail, large, large_fn, from, crc_fn, pclmul_fn, multiply)                          \
    {                                                                                              \
        avail, PETREL_CRC32C_SSE42, large, from, crc_fn, large_fn, crc_fn, pclmul_fn, multiply     \
    }
/* The pclmul and sse42 records of a level, in that order. */
#define RECORD_PCLMUL(avail, pclmul_fn, sse42_fn)                                                  \
    RECORD(avail, PETREL_CRC32C_PCLMUL, pclmul_fn, 1104, sse42_fn, pclmul_fn,                      \
           pt_crc32c_x86_multiply),                                                                \
        RECORD(avail, PETREL_CRC32C_SSE42, sse42_fn, 0, sse42_fn, pclmul_fn,                       \
               pt_crc32c_x86_multiply)
#define RECORD_PCLMUL_AVX(avail)                                                                   \
    RECORD_PCLMUL(avail, pt_crc32c_x86_pclmul_avx, pt_crc32c_x86_sse42_avx)
#define RECORD_V256(avail)                                                                         \
    RECORD(avail, PETREL_CRC32C_VPCLMUL256, pt_crc32c_x86_vpclmul256, 256,                         \
           pt_crc32c_x86_sse42_avx, pt_crc32c_x86_pclmul_avx, pt_crc32c_x86_multiply)

/* Every record of a level, in the calibration's order of preference (fallback order). */
static const struct crc32c_dispatch x86_sse42[] = {
    RECORD(AVAIL_SSE42, PETREL_CRC32C_SSE42, pt_crc32c_x86_sse42_soft, 0, pt_crc32c_x86_sse42_soft,
           pt_crc32c_table_raw, pt_crc32c_x86_multiply_soft),
};
static const struct crc32c_dispatch x86_pclmul[] = {
    RECORD_PCLMUL(AVAIL_PCLMUL, pt_crc32c_x86_pclmul, pt_crc32c_x86_sse42),
};
static const struct crc32c_dispatch x86_pclmul_avx[] = {
    RECORD_PCLMUL_AVX(AVAIL_PCLMUL),
};
static const struct crc32c_dispatch x86_avx2[] = {
    RECORD_V256(AVAIL_AVX2),
    RECORD_PCLMUL_AVX(AVAIL_AVX2),
};
static const struct crc32c_dispatch x86_avx512[] = {
    RECORD(AVAIL_AVX512, PETREL_CRC32C_VPCLMUL512, pt_crc32c_x86_vpclmul512, 256,
           pt_crc32c_x86_sse42_avx, pt_crc32c_x86_pclmul_avx, pt_crc32c_x86_multiply),
    RECORD_V256(AVAIL_AVX512),
    RECORD_PCLMUL_AVX(AVAIL_AVX512),
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The large-buffer path of each candidate timed on the same 4 KiB (never written, so its
 * pages may all map the zero page: the paths' speed does not depend on the bytes). */
#define CALIBRATION_BYTES 4096
#define CALIBRATION_ROUNDS 6
#define CALIBRATION_CALLS 4
static unsigned char calibration_buf[CALIBRATION_BYTES];

static const struct crc32c_dispatch *x86_calibrate(const struct crc32c_dispatch *c, size_t n)
{
    uint64_t best[4] = {0, 0, 0, 0};
    volatile uint32_t sink = 0;
    size_t i, round, call;
    if (n == 1) return c;
    for (i = 0; i < n; i++)
        sink ^= c[i].large_fn(0, calibration_buf, CALIBRATION_BYTES);
    for (round = 0; round < CALIBRATION_ROUNDS; round++)
        for (i = 0; i < n; i++) {
            uint64_t t0 = pt_crc32c_x86_ticks(), dt;
            uint32_t r = 0;
            for (call = 0; call < CALIBRATION_CALLS; call++)
                r = c[i].large_fn(r, calibration_buf, CALIBRATION_BYTES);
            dt = pt_crc32c_x86_ticks() - t0;
            sink ^= r;
            if (dt > 0 && (best[i] == 0 || dt < best[i])) best[i] = dt;
        }
    (void)sink;
    return &c[pt_crc32c_calibration_pick(best, n)];
}
#endif

#ifdef PT_CRC32C_ARM
/* The CRC32 instructions on three streams for every size; with PMULL the streams take any
 * length and PMULL multiplies, without it they take 3 KiB blocks (crc32c_arm.c). */
static const struct crc32c_dispatch dispatch_arm = {
    .available = 1u << PETREL_CRC32C_TABLE | 1u << PETREL_CRC32C_ARMV8,
    .small = PETREL_CRC32C_ARMV8,
    .large = PETREL_CRC32C_ARMV8,
    .large_from = 0,
    .small_fn = pt_crc32c_arm_crc_plain,
    .large_fn = pt_crc32c_arm_crc_plain,
    .crc_fn = pt_crc32c_arm_crc_plain,
    .pclmul_fn = pt_crc32c_table_raw,
    .multiply = pt_crc32c_multiply_portable,
};
static const struct crc32c_dispatch dispatch_arm_pmull = {
    .available = 1u << PETREL_CRC32C_TABLE | 1u << PETREL_CRC32C_ARMV8,
    .small = PETREL_CRC32C_ARMV8,
    .large = PETREL_CRC32C_ARMV8,
    .large_from = 0,
    .small_fn = pt_crc32c_arm_crc_pmull,
    .large_fn = pt_crc32c_arm_crc_pmull,
    .crc_fn = pt_crc32c_arm_crc_pmull,
    .pclmul_fn = pt_crc32c_table_raw,
    .multiply = pt_crc32c_arm_multiply,
};
#endif

#if defined(PT_CRC32C_X86) || defined(PT_CRC32C_ARM)
#ifdef PT_CRC32C_X86
/* The CPU's features, probed once: cpuid traps to the hypervisor in a virtual machine, where
 * one costs microseconds. Bit 31 marks the value as probed (the probe never sets it). */
static unsigned crc32c_x86_found;

static unsigned x86_found(void)
{
    unsigned found = __atomic_load_n(&crc32c_x86_found, __ATOMIC_RELAXED);
    if (!found) {
        found = pt_crc32c_x86_probe() | 1u << 31;
        __atomic_store_n(&crc32c_x86_found, found, __ATOMIC_RELAXED);
    }
    return found;
}
#endif

static enum pt_crc32c_level crc32c_probe_level(void)
{
#if defined(PT_CRC32C_X86)
    unsigned found = x86_found();
    if (found & 1u << PETREL_CRC32C_VPCLMUL512) return PT_CRC32C_LEVEL_AVX512;
    if (found & 1u << PETREL_CRC32C_VPCLMUL256) return PT_CRC32C_LEVEL_AVX2;
    if (found & 1u << PETREL_CRC32C_PCLMUL) return PT_CRC32C_LEVEL_PCLMUL;
    if (found & 1u << PETREL_CRC32C_SSE42) return PT_CRC32C_LEVEL_SSE42;
#elif defined(PT_CRC32C_ARM)
    if (pt_crc32c_arm_probe() & 1u << PETREL_CRC32C_ARMV8) return PT_CRC32C_LEVEL_ARMV8;
#endif
    return PT_CRC32C_LEVEL_TABLE;
}

/* The record for a level this CPU can run: calibrated among the level's candidates. */
static const struct crc32c_dispatch *crc32c_choose(enum pt_crc32c_level level)
{
    switch (level) {
#ifdef PT_CRC32C_X86
    case PT_CRC32C_LEVEL_SSE42:
        return x86_calibrate(x86_sse42, COUNT(x86_sse42));
    case PT_CRC32C_LEVEL_PCLMUL:
        if (x86_found() & PT_CRC32C_X86_AVX)
            return x86_calibrate(x86_pclmul_avx, COUNT(x86_pclmul_avx));
        return x86_calibrate(x86_pclmul, COUNT(x86_pclmul));
    case PT_CRC32C_LEVEL_AVX2:
        return x86_calibrate(x86_avx2, COUNT(x86_avx2));
    case PT_CRC32C_LEVEL_AVX512:
        return x86_calibrate(x86_avx512, COUNT(x86_avx512));
#endif
#ifdef PT_CRC32C_ARM
    case PT_CRC32C_LEVEL_ARMV8:
        return (pt_crc32c_arm_probe() & PT_CRC32C_ARM_PMULL) ? &dispatch_arm_pmull : &dispatch_arm;
#endif
    default:
        return &dispatch_table;
    }
}

static const struct crc32c_dispatch *crc32c_resolved;
static int crc32c_cpu_level_plus1; /* 0 until probed; probing again gives the same answer */

enum pt_crc32c_level pt_crc32c_cpu_level(void)
{
    int level = __atomic_load_n(&crc32c_cpu_level_plus1, __ATOMIC_RELAXED);
    if (!level) {
        level = (int)crc32c_probe_level() + 1;
        __atomic_store_n(&crc32c_cpu_level_plus1, level, __ATOMIC_RELAXED);
    }
    return (enum pt_crc32c_level)(level - 1);
}

static const struct crc32c_dispatch *crc32c_dispatch(void)
{
    const struct crc32c_dispatch *d = __atomic_load_n(&crc32c_resolved, __ATOMIC_ACQUIRE);
    if (!d) {
        const struct crc32c_dispatch *none = 0;
        d = crc32c_choose(pt_crc32c_cpu_level());
        /* The first record published wins; a thread that lost the race adopts it. */
        if (!__atomic_compare_exchange_n(&crc32c_resolved, &none, d, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            d = none;
    }
    return d;
}

int pt_crc32c_force_level(enum pt_crc32c_level level)
{
    enum pt_crc32c_level cpu = pt_crc32c_cpu_level();
    if (level == PT_CRC32C_LEVEL_COUNT) level = cpu;
    /* The x86 levels form a chain; ARMv8 and the table are levels of their own. */
    if ((unsigned)level > (unsigned)cpu ||
        (cpu == PT_CRC32C_LEVEL_ARMV8 && level != cpu && level != PT_CRC32C_LEVEL_TABLE) ||
        (level == PT_CRC32C_LEVEL_ARMV8 && cpu != PT_CRC32C_LEVEL_ARMV8))
        return -1;
    __atomic_store_n(&crc32c_resolved, crc32c_choose(level), __ATOMIC_RELEASE);
    return 0;
}
#else
enum pt_crc32c_level pt_crc32c_cpu_level(void)
{
    return PT_CRC32C_LEVEL_TABLE;
}

static const struct crc32c_dispatch *crc32c_dispatch(void)
{
    return &dispatch_table;
}

int pt_crc32c_force_level(enum pt_crc32c_level level)
{
    return level == PT_CRC32C_LEVEL_TABLE || level == PT_CRC32C_LEVEL_COUNT ? 0 : -1;
}
#endif

int pt_crc32c_hw_available(enum petrel_crc32c_impl impl)
{
    return impl != PETREL_CRC32C_TABLE && (unsigned)impl < PETREL_CRC32C_IMPL_COUNT &&
           (crc32c_dispatch()->available >> impl & 1);
}

uint32_t pt_crc32c_hw(enum petrel_crc32c_impl impl, uint32_t reg, const void *buf, size_t len)
{
    const struct crc32c_dispatch *d = crc32c_dispatch();
    const unsigned char *p = (const unsigned char *)buf;
    if ((unsigned)impl >= PETREL_CRC32C_IMPL_COUNT || !(d->available >> impl & 1))
        return pt_crc32c_table_raw(reg, p, len);
    switch (impl) {
#ifdef PT_CRC32C_X86
    case PETREL_CRC32C_SSE42: /* the form this level supports */
        return d->crc_fn(reg, p, len);
    case PETREL_CRC32C_PCLMUL: /* the form this CPU wants */
        return d->pclmul_fn(reg, p, len);
    case PETREL_CRC32C_VPCLMUL256:
        return pt_crc32c_x86_vpclmul256(reg, p, len);
    case PETREL_CRC32C_VPCLMUL512:
        return pt_crc32c_x86_vpclmul512(reg, p, len);
#endif
#ifdef PT_CRC32C_ARM
    case PETREL_CRC32C_ARMV8: /* the form this CPU supports */
        return d->crc_fn(reg, p, len);
#endif
    default:
        return pt_crc32c_table_raw(reg, p, len);
    }
}

enum petrel_crc32c_impl pt_crc32c_choice(size_t len)
{
    const struct crc32c_dispatch *d = crc32c_dispatch();
    return len >= d->large_from ? d->large : d->small;
}

uint32_t pt_crc32c_auto(uint32_t reg, const void *buf, size_t len)
{
    const struct crc32c_dispatch *d = crc32c_dispatch();
    return (len >= d->large_from ? d->large_fn : d->small_fn)(reg, (const unsigned char *)buf, len);
}

uint32_t pt_crc32c_multiply(uint32_t a, uint32_t b)
{
    return crc32c_dispatch()->multiply(a, b);
}
