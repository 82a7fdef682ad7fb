/*
 * The RAM block device: a plain array of blocks in caller memory. Owns no memory of its own.
 * Never lets an access outside the array through, so an engine bug
 * shows up as -PT_EINVAL instead of a stray write.
 */
#include <string.h>

#include "petrel/bd.h"
#include "petrel/common.h"

int petrel_bd_check(const struct petrel_bd *bd, uint32_t block, uint32_t off, uint32_t size,
                    uint32_t granularity)
{
    if (block >= bd->block_count) return -PT_EINVAL;
    if (off > bd->block_size || size > bd->block_size - off) return -PT_EINVAL;
    if (granularity && (off % granularity || size % granularity)) return -PT_EINVAL;
    return 0;
}

static int ram_in_bounds(const struct petrel_bd_ram *ram, uint32_t block, uint32_t off,
                         uint32_t size)
{
    return block < ram->block_count && off <= ram->block_size && size <= ram->block_size - off;
}

static int ram_read(void *context, uint32_t block, uint32_t off, void *buf, uint32_t size)
{
    struct petrel_bd_ram *ram = (struct petrel_bd_ram *)context;
    if (!ram_in_bounds(ram, block, off, size)) return -PT_EINVAL;
    memcpy(buf, ram->memory + (size_t)block * ram->block_size + off, size);
    return 0;
}

static int ram_prog(void *context, uint32_t block, uint32_t off, const void *buf, uint32_t size)
{
    struct petrel_bd_ram *ram = (struct petrel_bd_ram *)context;
    if (!ram_in_bounds(ram, block, off, size)) return -PT_EINVAL;
    memcpy(ram->memory + (size_t)block * ram->block_size + off, buf, size);
    return 0;
}

static int ram_erase_ff(void *context, uint32_t block)
{
    struct petrel_bd_ram *ram = (struct petrel_bd_ram *)context;
    if (block >= ram->block_count) return -PT_EINVAL;
    memset(ram->memory + (size_t)block * ram->block_size, 0xff, ram->block_size);
    return 0;
}

static int ram_erase_00(void *context, uint32_t block)
{
    struct petrel_bd_ram *ram = (struct petrel_bd_ram *)context;
    if (block >= ram->block_count) return -PT_EINVAL;
    memset(ram->memory + (size_t)block * ram->block_size, 0x00, ram->block_size);
    return 0;
}

static int ram_sync(void *context)
{
    (void)context;
    return 0;
}

int petrel_bd_ram_init(struct petrel_bd *bd, struct petrel_bd_ram *ram, void *memory,
                       uint32_t read_size, uint32_t prog_size, uint32_t block_size,
                       uint32_t block_count, int32_t erase_value)
{
    if (!memory || !read_size || !prog_size || !block_size || !block_count ||
        block_size % read_size || block_size % prog_size)
        return -PT_EINVAL;
    if (erase_value != -1 && erase_value != 0xff && erase_value != 0x00) return -PT_EINVAL;
    ram->memory = (uint8_t *)memory;
    ram->block_size = block_size;
    ram->block_count = block_count;
    memset(bd, 0, sizeof(*bd));
    bd->context = ram;
    bd->read = ram_read;
    bd->prog = ram_prog;
    bd->erase = erase_value == 0x00 ? ram_erase_00 : ram_erase_ff;
    bd->sync = ram_sync;
    bd->read_size = read_size;
    bd->prog_size = prog_size;
    bd->block_size = block_size;
    bd->block_count = block_count;
    bd->erase_value = erase_value == -1 ? 0xff : erase_value;
    return 0;
}
