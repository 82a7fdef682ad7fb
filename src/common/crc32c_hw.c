/*
 * The run-time choice of a CRC-32C path: which paths this CPU can run, which one
 * petrel_crc32c takes for a given buffer size, and which multiply the combine operations use.
 *
 * The choice is made once per process, on first use: the CPU is probed and a pointer to one of
 * the constant dispatch records below is published with an atomic store (release; readers load
 * it with acquire), so threads racing on the first call compute the same record and never see
 * a half-made one. Nothing here reads buffers; the paths themselves live in crc32c_x86.c and
 * crc32c_arm.c and must all agree with the table path bit for bit.
 *
 * Size thresholds come from bench/bench_crc32c.c runs (docs/CRC32C.md has the figures): the
 * folding paths pay a fixed cost to set up and reduce their vector lanes, which the crc32
 * instruction's three streams beat on short buffers.
 *
 * Builds with any C99 compiler: without GNU C there is no hardware path, and the dispatch is
 * the constant table record.
 */
#include "common/crc32c_impl.h"

struct crc32c_dispatch {
    unsigned available; /* bit (1 << impl) per usable path, table included */
    enum petrel_crc32c_impl small, large;
    size_t large_from; /* buffers of at least this many bytes take `large` */
    pt_crc32c_raw_fn small_fn, large_fn;
    uint32_t (*multiply)(uint32_t a, uint32_t b);
};

static const struct crc32c_dispatch dispatch_table = {
    .available = 1u << PETREL_CRC32C_TABLE,
    .small = PETREL_CRC32C_TABLE,
    .large = PETREL_CRC32C_TABLE,
    .large_from = 0,
    .small_fn = pt_crc32c_table_raw,
    .large_fn = pt_crc32c_table_raw,
    .multiply = pt_crc32c_multiply_portable,
};

#ifdef PT_CRC32C_X86
#define X86_BASE                                                                                   \
    (1u << PETREL_CRC32C_TABLE | 1u << PETREL_CRC32C_SSE42 | 1u << PETREL_CRC32C_PCLMUL)
/* Without AVX-512: PCLMULQDQ folding beside crc32 streams from 960 bytes up (the path's own
 * floor: below it that path runs the three streams too), three crc32 streams below. */
static const struct crc32c_dispatch dispatch_x86 = {
    .available = X86_BASE,
    .small = PETREL_CRC32C_SSE42,
    .large = PETREL_CRC32C_PCLMUL,
    .large_from = 960,
    .small_fn = pt_crc32c_x86_sse42,
    .large_fn = pt_crc32c_x86_pclmul,
    .multiply = pt_crc32c_x86_multiply,
};
/* With AVX-512 VPCLMULQDQ: 512-bit folding from 256 bytes up (beside crc32 streams from
 * 2400 bytes), three crc32 streams below. */
static const struct crc32c_dispatch dispatch_x86_avx512 = {
    .available = X86_BASE | 1u << PETREL_CRC32C_VPCLMUL,
    .small = PETREL_CRC32C_SSE42,
    .large = PETREL_CRC32C_VPCLMUL,
    .large_from = 256,
    .small_fn = pt_crc32c_x86_sse42,
    .large_fn = pt_crc32c_x86_vpclmul,
    .multiply = pt_crc32c_x86_multiply,
};
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
    .multiply = pt_crc32c_multiply_portable,
};
static const struct crc32c_dispatch dispatch_arm_pmull = {
    .available = 1u << PETREL_CRC32C_TABLE | 1u << PETREL_CRC32C_ARMV8,
    .small = PETREL_CRC32C_ARMV8,
    .large = PETREL_CRC32C_ARMV8,
    .large_from = 0,
    .small_fn = pt_crc32c_arm_crc_pmull,
    .large_fn = pt_crc32c_arm_crc_pmull,
    .multiply = pt_crc32c_arm_multiply,
};
#endif

static const struct crc32c_dispatch *crc32c_probe(void)
{
#if defined(PT_CRC32C_X86)
    unsigned found = pt_crc32c_x86_probe();
    if (found & 1u << PETREL_CRC32C_VPCLMUL) return &dispatch_x86_avx512;
    if (found & 1u << PETREL_CRC32C_SSE42) return &dispatch_x86;
#elif defined(PT_CRC32C_ARM)
    unsigned found = pt_crc32c_arm_probe();
    if (found & 1u << PETREL_CRC32C_ARMV8)
        return (found & PT_CRC32C_ARM_PMULL) ? &dispatch_arm_pmull : &dispatch_arm;
#endif
    return &dispatch_table;
}

#if defined(PT_CRC32C_X86) || defined(PT_CRC32C_ARM)
static const struct crc32c_dispatch *crc32c_resolved;

static const struct crc32c_dispatch *crc32c_dispatch(void)
{
    const struct crc32c_dispatch *d = __atomic_load_n(&crc32c_resolved, __ATOMIC_ACQUIRE);
    if (!d) {
        d = crc32c_probe();
        __atomic_store_n(&crc32c_resolved, d, __ATOMIC_RELEASE);
    }
    return d;
}
#else
static const struct crc32c_dispatch *crc32c_dispatch(void)
{
    return crc32c_probe();
}
#endif

int pt_crc32c_hw_available(enum petrel_crc32c_impl impl)
{
    return impl != PETREL_CRC32C_TABLE && (unsigned)impl < PETREL_CRC32C_IMPL_COUNT &&
           (crc32c_dispatch()->available >> impl & 1);
}

uint32_t pt_crc32c_hw(enum petrel_crc32c_impl impl, uint32_t reg, const void *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    if (!pt_crc32c_hw_available(impl)) return pt_crc32c_table_raw(reg, p, len);
    switch (impl) {
#ifdef PT_CRC32C_X86
    case PETREL_CRC32C_SSE42:
        return pt_crc32c_x86_sse42(reg, p, len);
    case PETREL_CRC32C_PCLMUL:
        return pt_crc32c_x86_pclmul(reg, p, len);
    case PETREL_CRC32C_VPCLMUL:
        return pt_crc32c_x86_vpclmul(reg, p, len);
#endif
#ifdef PT_CRC32C_ARM
    case PETREL_CRC32C_ARMV8: /* the form this CPU supports */
        return crc32c_dispatch()->large_fn(reg, p, len);
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
