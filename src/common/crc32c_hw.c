/*
 * Hardware CRC-32C paths. This build has none yet beyond the portable table path; the x86-64
 * (SSE4.2, PCLMULQDQ, VPCLMULQDQ) and ARMv8 paths plug in here.
 */
#include "common/crc32c_impl.h"

int pt_crc32c_hw_available(enum petrel_crc32c_impl impl)
{
    return impl == PETREL_CRC32C_TABLE;
}

enum petrel_crc32c_impl pt_crc32c_hw_best(void)
{
    return PETREL_CRC32C_TABLE;
}

uint32_t pt_crc32c_hw(enum petrel_crc32c_impl impl, uint32_t crc, const void *buf, size_t len)
{
    (void)impl;
    return ~pt_crc32c_table_raw(~crc, (const unsigned char *)buf, len);
}

uint32_t pt_crc32c_multiply(uint32_t a, uint32_t b)
{
    return pt_crc32c_multiply_portable(a, b);
}
