/*
 * CRC-32C: the portable table path (slicing-by-8, or a smaller table chosen at build time by
 * PETREL_CRC32C_TABLE_BYTES: include/petrel/crc32c.h), the GF(2) arithmetic behind append / xor /
 * zero_extend, and the run-time choice of the fastest path for this CPU.
 *
 * Invariants: every path returns exactly what the table path returns for any buffer, length
 * and alignment (tests/common/test_crc32c.c checks this); the combine operations never touch
 * data and are exact for every 64-bit length. The power tables hold x^(2^k) mod P for all
 * k = 0..66 (lengths in bits reach 2^66). Those powers happen to repeat every 31 steps
 * because x has multiplicative order 2^31 - 1 modulo P, but we never rely on it: a table
 * indexed k & 31 would be wrong, one indexed k % 31 right only by that accident.
 *
 * Plain C99; hardware paths live in crc32c_x86.c and crc32c_arm.c, and the choice among them
 * (once per process, by CPU and buffer size) in crc32c_hw.c, all behind crc32c_impl.h.
 */
#include "petrel/crc32c.h"

#include "common/crc32c_impl.h"

#define CRC32C_POLY 0x82f63b78u /* reflected Castagnoli polynomial */
#define CRC32C_X0 0x80000000u   /* x^0 in the reflected representation */

#ifndef PETREL_CRC32C_TABLE_BYTES
#define PETREL_CRC32C_TABLE_BYTES 8192
#endif
#if PETREL_CRC32C_TABLE_BYTES == 8192
#define CRC32C_WANT_SLICE8 1
#elif PETREL_CRC32C_TABLE_BYTES == 1024
#define CRC32C_WANT_BYTE 1
#elif PETREL_CRC32C_TABLE_BYTES == 64
#define CRC32C_WANT_NIBBLE 1
#else
#error "PETREL_CRC32C_TABLE_BYTES must be 8192, 1024 or 64 (include/petrel/crc32c.h)"
#endif
#include "crc32c_table.inc"
#include "crc32c_powers.inc"

/* Raw register update, no pre/post inversion: shared by the hardware paths for their tails. */
uint32_t pt_crc32c_table_raw(uint32_t reg, const unsigned char *p, size_t len)
{
#if PETREL_CRC32C_TABLE_BYTES == 8192
    return crc32c_slice8_raw(reg, p, len);
#elif PETREL_CRC32C_TABLE_BYTES == 1024
    return crc32c_byte_raw(reg, p, len);
#else
    return crc32c_nibble_raw(reg, p, len);
#endif
}

size_t pt_crc32c_table_bytes(void)
{
    return PETREL_CRC32C_TABLE_BYTES;
}

static uint32_t crc32c_table(uint32_t crc, const void *buf, size_t len)
{
    return ~pt_crc32c_table_raw(~crc, (const unsigned char *)buf, len);
}

/* a * b mod P, both reflected; the portable path of pt_crc32c_multiply. */
uint32_t pt_crc32c_multiply_portable(uint32_t a, uint32_t b)
{
    uint32_t product = 0;
    uint32_t bit;
    for (bit = CRC32C_X0; bit; bit >>= 1) {
        if (a & bit) product ^= b;
        b = (b & 1) ? (b >> 1) ^ CRC32C_POLY : b >> 1;
    }
    return product;
}

/* x^(8 * bytes) mod P, or its inverse; bytes may be any 64-bit count. */
static uint32_t crc32c_x8n(uint64_t bytes, int inverse)
{
    const uint32_t *powers = inverse ? crc32c_xinv2n : crc32c_x2n;
    uint32_t result = CRC32C_X0;
    unsigned k = 3; /* bit i of the byte count is bit i+3 of the bit count */
    while (bytes) {
        if (bytes & 1) result = pt_crc32c_multiply(result, powers[k]);
        bytes >>= 1;
        k++;
    }
    return result;
}

uint32_t petrel_crc32c_zero_extend(uint32_t crc, int64_t zeros)
{
    uint64_t count;
    int inverse = zeros < 0;
    /* Negate in unsigned arithmetic: INT64_MIN has no positive int64_t. */
    count = inverse ? (uint64_t)0 - (uint64_t)zeros : (uint64_t)zeros;
    return ~pt_crc32c_multiply(crc32c_x8n(count, inverse), ~crc);
}

uint32_t petrel_crc32c_append(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    return pt_crc32c_multiply(crc32c_x8n(len_b, 0), crc_a) ^ crc_b;
}

uint32_t petrel_crc32c_xor(uint32_t crc_a, uint32_t crc_b, uint64_t len)
{
    /* The CRC is affine in the data: crc(m) = L(m) ^ crc(zeros of len(m)). */
    uint32_t zeros_crc = ~pt_crc32c_multiply(crc32c_x8n(len, 0), 0xffffffffu);
    return crc_a ^ crc_b ^ zeros_crc;
}

/* --- dispatch ---------------------------------------------------------------------------- */

static const char *const impl_names[PETREL_CRC32C_IMPL_COUNT] = {
    "table", "sse42", "pclmul", "vpclmul256", "vpclmul512", "armv8",
};

const char *petrel_crc32c_impl_name(enum petrel_crc32c_impl impl)
{
    return (unsigned)impl < PETREL_CRC32C_IMPL_COUNT ? impl_names[impl] : "unknown";
}

int petrel_crc32c_impl_available(enum petrel_crc32c_impl impl)
{
    return impl == PETREL_CRC32C_TABLE || pt_crc32c_hw_available(impl);
}

uint32_t petrel_crc32c_with(enum petrel_crc32c_impl impl, uint32_t crc, const void *buf, size_t len)
{
    if (impl == PETREL_CRC32C_TABLE || !pt_crc32c_hw_available(impl))
        return crc32c_table(crc, buf, len);
    return ~pt_crc32c_hw(impl, ~crc, buf, len);
}

/* The path for large buffers; shorter ones may take another (pt_crc32c_choice). */
enum petrel_crc32c_impl petrel_crc32c_best(void)
{
    return pt_crc32c_choice((size_t)-1);
}

uint32_t petrel_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return ~pt_crc32c_auto(~crc, buf, len);
}
