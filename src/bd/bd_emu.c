/*
 * The emulated flash device: RAM contents plus everything a real chip does to software that
 * trusts it too much — erase values, NOR programming that only moves bits one way, wear with
 * an endurance limit, bad blocks, power cuts (clean or tearing the operation in flight), and
 * bit flips — with counters of every byte read, programmed and erased.
 *
 * Owns the memory it allocates at create and nothing else. Every random choice (torn
 * lengths, random erase contents, flipped bits) comes from one generator seeded by the
 * config and saved with the device by petrel_bd_emu_copy, so a run replays exactly.
 * Invariants: an access outside the geometry or off its granularity changes nothing and
 * returns -PT_EINVAL without counting toward a power cut; once the power is cut nothing
 * changes until petrel_bd_emu_reboot.
 */
#include <stdlib.h>
#include <string.h>

#include "petrel/bd.h"
#include "petrel/common.h"

static uint8_t *emu_block(const struct petrel_bd_emu *emu, uint32_t block)
{
    return emu->memory + (size_t)block * emu->cfg.block_size;
}

static size_t emu_bytes(const struct petrel_bd_emu_config *cfg)
{
    return (size_t)cfg->block_size * cfg->block_count;
}

/* An access inside the geometry and on its granularity: 0, else -PT_EINVAL. */
static int emu_check(const struct petrel_bd_emu *emu, uint32_t block, uint32_t off, uint32_t size,
                     uint32_t granularity)
{
    if (block >= emu->cfg.block_count) return -PT_EINVAL;
    if (off > emu->cfg.block_size || size > emu->cfg.block_size - off) return -PT_EINVAL;
    if (off % granularity || size % granularity) return -PT_EINVAL;
    return 0;
}

/* The behaviour of block for an operation, given the erase count it would be judged at. */
static enum petrel_bd_emu_fault emu_fault(const struct petrel_bd_emu *emu, uint32_t block,
                                          uint32_t wear)
{
    if (emu->fault[block] != PETREL_BD_EMU_OK) return (enum petrel_bd_emu_fault)emu->fault[block];
    if (emu->cfg.endurance && wear > emu->cfg.endurance) return emu->cfg.worn_fault;
    return PETREL_BD_EMU_OK;
}

static int emu_is_programmed(const struct petrel_bd_emu *emu, size_t pos)
{
    return (emu->programmed[pos >> 3] >> (pos & 7)) & 1;
}

static void emu_mark(struct petrel_bd_emu *emu, size_t pos, int programmed)
{
    if (programmed)
        emu->programmed[pos >> 3] |= (uint8_t)(1u << (pos & 7));
    else
        emu->programmed[pos >> 3] &= (uint8_t) ~(1u << (pos & 7));
}

/* Put one byte on the medium as the prog mode says. */
static void emu_put(struct petrel_bd_emu *emu, size_t pos, uint8_t data)
{
    uint8_t *m = emu->memory + pos;
    if (emu->cfg.prog_mode == PETREL_BD_EMU_PROG_NOR && emu->cfg.erase_value == 0xff)
        *m &= data;
    else if (emu->cfg.prog_mode == PETREL_BD_EMU_PROG_NOR && emu->cfg.erase_value == 0x00)
        *m |= data;
    else
        *m = data;
    emu_mark(emu, pos, 1);
}

/* Program the first len bytes of a prog; torn: a random prefix and part of one more byte. */
static void emu_apply_prog(struct petrel_bd_emu *emu, uint32_t block, uint32_t off,
                           const uint8_t *data, uint32_t size, int torn)
{
    size_t base = (size_t)block * emu->cfg.block_size + off;
    uint32_t len = size, i;
    emu->dirty[block] = 1;
    if (torn) len = (uint32_t)pt_prng_below(&emu->prng, size);
    for (i = 0; i < len; i++)
        emu_put(emu, base + i, data[i]);
    if (torn && emu->cfg.prog_mode == PETREL_BD_EMU_PROG_NOR) {
        /* The cell being programmed when the power went: some of its bits made it. */
        uint8_t some = (uint8_t)pt_prng_next(&emu->prng);
        if (emu->cfg.erase_value == 0xff)
            emu_put(emu, base + len, (uint8_t)(data[len] | ~some));
        else if (emu->cfg.erase_value == 0x00)
            emu_put(emu, base + len, (uint8_t)(data[len] & some));
    }
}

/* Erase len bytes of a block from off. */
static void emu_erase_range(struct petrel_bd_emu *emu, uint32_t block, uint32_t off, uint32_t len)
{
    uint8_t *m = emu_block(emu, block) + off;
    size_t base = (size_t)block * emu->cfg.block_size + off;
    uint32_t i;
    emu->dirty[block] = 1;
    if (emu->cfg.erase_value >= 0)
        memset(m, emu->cfg.erase_value, len);
    else if (emu->cfg.erase_value == PETREL_BD_EMU_ERASE_RANDOM)
        pt_prng_fill(&emu->prng, m, len);
    for (i = 0; i < len; i++)
        emu_mark(emu, base + i, 0);
}

/* Count a prog or erase toward an armed power cut; returns 1 if this one is cut. */
static int emu_cut_now(struct petrel_bd_emu *emu)
{
    emu->powerloss_ops++;
    if (emu->powerloss_at && emu->powerloss_ops == emu->powerloss_at) {
        emu->dead = 1;
        return 1;
    }
    return 0;
}

static int emu_read(void *context, uint32_t block, uint32_t off, void *buf, uint32_t size)
{
    struct petrel_bd_emu *emu = (struct petrel_bd_emu *)context;
    emu->stats.reads++;
    if (emu->dead) return -PT_EIO;
    if (emu_check(emu, block, off, size, emu->cfg.read_size)) return -PT_EINVAL;
    if (emu_fault(emu, block, emu->wear[block]) == PETREL_BD_EMU_READ_ERROR) return -PT_EIO;
    memcpy(buf, emu_block(emu, block) + off, size);
    emu->stats.read_bytes += size;
    return 0;
}

static int emu_prog(void *context, uint32_t block, uint32_t off, const void *buf, uint32_t size)
{
    struct petrel_bd_emu *emu = (struct petrel_bd_emu *)context;
    const uint8_t *data = (const uint8_t *)buf;
    enum petrel_bd_emu_fault fault;
    uint32_t i;
    emu->stats.progs++;
    if (emu->dead) return -PT_EIO;
    if (emu_check(emu, block, off, size, emu->cfg.prog_size)) return -PT_EINVAL;
    if (emu->cfg.prog_mode == PETREL_BD_EMU_PROG_STRICT) {
        size_t base = (size_t)block * emu->cfg.block_size + off;
        for (i = 0; i < size; i++)
            if (emu_is_programmed(emu, base + i)) return -PT_EINVAL;
    }
    fault = emu_fault(emu, block, emu->wear[block]);
    if (emu_cut_now(emu)) {
        if (emu->powerloss_mode == PETREL_BD_EMU_POWERLOSS_TORN && size > 0 &&
            fault != PETREL_BD_EMU_PROG_ERROR && fault != PETREL_BD_EMU_PROG_NOOP)
            emu_apply_prog(emu, block, off, data, size, 1);
        return -PT_EIO;
    }
    if (fault == PETREL_BD_EMU_PROG_ERROR) return -PT_EIO;
    if (fault != PETREL_BD_EMU_PROG_NOOP) emu_apply_prog(emu, block, off, data, size, 0);
    emu->stats.prog_bytes += size;
    return 0;
}

static int emu_erase(void *context, uint32_t block)
{
    struct petrel_bd_emu *emu = (struct petrel_bd_emu *)context;
    enum petrel_bd_emu_fault fault;
    emu->stats.erases++;
    if (emu->dead) return -PT_EIO;
    if (block >= emu->cfg.block_count) return -PT_EINVAL;
    /* An erase is judged by the count it would reach: erase number endurance+1 is the first
     * a worn block fails. */
    fault = emu_fault(emu, block, emu->wear[block] + 1);
    if (emu_cut_now(emu)) {
        if (emu->powerloss_mode == PETREL_BD_EMU_POWERLOSS_TORN &&
            fault != PETREL_BD_EMU_ERASE_ERROR && fault != PETREL_BD_EMU_ERASE_NOOP) {
            emu->wear[block]++;
            emu_erase_range(emu, block, 0,
                            (uint32_t)pt_prng_below(&emu->prng, emu->cfg.block_size));
        }
        return -PT_EIO;
    }
    if (fault == PETREL_BD_EMU_ERASE_ERROR) return -PT_EIO;
    emu->wear[block]++;
    emu->dirty[block] = 1;
    if (fault != PETREL_BD_EMU_ERASE_NOOP) emu_erase_range(emu, block, 0, emu->cfg.block_size);
    emu->stats.erase_bytes += emu->cfg.block_size;
    return 0;
}

static int emu_sync(void *context)
{
    struct petrel_bd_emu *emu = (struct petrel_bd_emu *)context;
    emu->stats.syncs++;
    return emu->dead ? -PT_EIO : 0;
}

int petrel_bd_emu_create(struct petrel_bd *bd, struct petrel_bd_emu *emu,
                         const struct petrel_bd_emu_config *cfg)
{
    size_t bytes;
    uint32_t b;
    if (!cfg->read_size || !cfg->prog_size || !cfg->block_size || !cfg->block_count ||
        cfg->block_size % cfg->read_size || cfg->block_size % cfg->prog_size)
        return -PT_EINVAL;
    if (cfg->erase_value != 0x00 && cfg->erase_value != 0xff &&
        cfg->erase_value != PETREL_BD_EMU_ERASE_RANDOM &&
        cfg->erase_value != PETREL_BD_EMU_ERASE_KEEP)
        return -PT_EINVAL;
    if (cfg->prog_mode > PETREL_BD_EMU_PROG_STRICT || cfg->worn_fault > PETREL_BD_EMU_ERASE_NOOP)
        return -PT_EINVAL;
    if ((uint64_t)cfg->block_size * cfg->block_count > (uint64_t)(size_t)-1 / 2) return -PT_EINVAL;
    memset(emu, 0, sizeof(*emu));
    emu->cfg = *cfg;
    bytes = emu_bytes(cfg);
    emu->memory = (uint8_t *)malloc(bytes);
    emu->programmed = (uint8_t *)calloc((bytes + 7) / 8, 1);
    emu->wear = (uint32_t *)calloc(cfg->block_count, sizeof(uint32_t));
    emu->fault = (uint8_t *)calloc(cfg->block_count, 1);
    emu->dirty = (uint8_t *)calloc(cfg->block_count, 1);
    if (!emu->memory || !emu->programmed || !emu->wear || !emu->fault || !emu->dirty) {
        petrel_bd_emu_destroy(emu);
        return -PT_ENOMEM;
    }
    pt_prng_seed(&emu->prng, cfg->seed);
    /* Start erased. KEEP has no erased state of its own: start from random, like new media. */
    if (cfg->erase_value >= 0)
        memset(emu->memory, cfg->erase_value, bytes);
    else
        for (b = 0; b < cfg->block_count; b++)
            pt_prng_fill(&emu->prng, emu_block(emu, b), cfg->block_size);
    memset(bd, 0, sizeof(*bd));
    bd->context = emu;
    bd->read = emu_read;
    bd->prog = emu_prog;
    bd->erase = emu_erase;
    bd->sync = emu_sync;
    bd->read_size = cfg->read_size;
    bd->prog_size = cfg->prog_size;
    bd->block_size = cfg->block_size;
    bd->block_count = cfg->block_count;
    bd->erase_value = cfg->erase_value >= 0 ? cfg->erase_value : -1;
    return 0;
}

void petrel_bd_emu_destroy(struct petrel_bd_emu *emu)
{
    free(emu->memory);
    free(emu->programmed);
    free(emu->wear);
    free(emu->fault);
    free(emu->dirty);
    emu->memory = emu->programmed = emu->fault = emu->dirty = NULL;
    emu->wear = NULL;
}

int petrel_bd_emu_copy(struct petrel_bd_emu *dst, const struct petrel_bd_emu *src)
{
    size_t bytes = emu_bytes(&src->cfg);
    if (dst->cfg.block_size != src->cfg.block_size || dst->cfg.block_count != src->cfg.block_count)
        return -PT_EINVAL;
    dst->cfg = src->cfg;
    memcpy(dst->memory, src->memory, bytes);
    memcpy(dst->programmed, src->programmed, (bytes + 7) / 8);
    memcpy(dst->wear, src->wear, src->cfg.block_count * sizeof(uint32_t));
    memcpy(dst->fault, src->fault, src->cfg.block_count);
    memset(dst->dirty, 0, src->cfg.block_count);
    dst->prng = src->prng;
    dst->powerloss_ops = src->powerloss_ops;
    dst->powerloss_at = src->powerloss_at;
    dst->powerloss_mode = src->powerloss_mode;
    dst->dead = src->dead;
    return 0;
}

int petrel_bd_emu_restore(struct petrel_bd_emu *dst, const struct petrel_bd_emu *src)
{
    uint32_t b, bs = src->cfg.block_size;
    if (dst->cfg.block_size != bs || dst->cfg.block_count != src->cfg.block_count)
        return -PT_EINVAL;
    for (b = 0; b < src->cfg.block_count; b++) {
        size_t first, last;
        if (!dst->dirty[b]) continue;
        memcpy(emu_block(dst, b), emu_block(src, b), bs);
        /* The programmed bits of this block, rounded out to whole bytes: neighbours that are
         * not dirty hold the same bits in both devices. */
        first = ((size_t)b * bs) / 8;
        last = ((size_t)(b + 1) * bs + 7) / 8;
        memcpy(dst->programmed + first, src->programmed + first, last - first);
        dst->wear[b] = src->wear[b];
        dst->fault[b] = src->fault[b];
        dst->dirty[b] = 0;
    }
    dst->cfg = src->cfg;
    dst->prng = src->prng;
    dst->powerloss_ops = src->powerloss_ops;
    dst->powerloss_at = src->powerloss_at;
    dst->powerloss_mode = src->powerloss_mode;
    dst->dead = src->dead;
    return 0;
}

int petrel_bd_emu_set_fault(struct petrel_bd_emu *emu, uint32_t block,
                            enum petrel_bd_emu_fault fault)
{
    if (block >= emu->cfg.block_count || fault > PETREL_BD_EMU_ERASE_NOOP) return -PT_EINVAL;
    emu->fault[block] = (uint8_t)fault;
    emu->dirty[block] = 1;
    return 0;
}

void petrel_bd_emu_powerloss(struct petrel_bd_emu *emu, uint64_t n,
                             enum petrel_bd_emu_powerloss mode)
{
    emu->powerloss_ops = 0;
    emu->powerloss_at = n;
    emu->powerloss_mode = mode;
}

void petrel_bd_emu_reboot(struct petrel_bd_emu *emu)
{
    emu->dead = 0;
    emu->powerloss_at = 0;
    emu->powerloss_ops = 0;
}

int petrel_bd_emu_is_dead(const struct petrel_bd_emu *emu)
{
    return emu->dead;
}

int petrel_bd_emu_flip_range(struct petrel_bd_emu *emu, uint32_t block, uint32_t off, uint32_t len,
                             uint32_t nbits)
{
    uint32_t i;
    if (block >= emu->cfg.block_count || len == 0 || off > emu->cfg.block_size ||
        len > emu->cfg.block_size - off)
        return -PT_EINVAL;
    for (i = 0; i < nbits; i++) {
        uint64_t bit = pt_prng_below(&emu->prng, (uint64_t)len * 8);
        emu->dirty[block] = 1;
        emu_block(emu, block)[off + bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    return 0;
}

int petrel_bd_emu_flip_bits(struct petrel_bd_emu *emu, uint32_t block, uint32_t nbits)
{
    uint32_t i;
    if (block != UINT32_MAX)
        return petrel_bd_emu_flip_range(emu, block, 0, emu->cfg.block_size, nbits);
    for (i = 0; i < nbits; i++) {
        uint32_t b = (uint32_t)pt_prng_below(&emu->prng, emu->cfg.block_count);
        int err = petrel_bd_emu_flip_range(emu, b, 0, emu->cfg.block_size, 1);
        if (err) return err;
    }
    return 0;
}

int petrel_bd_emu_set_erased(struct petrel_bd_emu *emu, uint32_t block, uint32_t off, uint32_t len)
{
    if (block >= emu->cfg.block_count || off > emu->cfg.block_size ||
        len > emu->cfg.block_size - off)
        return -PT_EINVAL;
    emu_erase_range(emu, block, off, len);
    return 0;
}

uint32_t petrel_bd_emu_wear(const struct petrel_bd_emu *emu, uint32_t block)
{
    return block < emu->cfg.block_count ? emu->wear[block] : 0;
}

int petrel_bd_emu_set_wear(struct petrel_bd_emu *emu, uint32_t block, uint32_t wear)
{
    if (block >= emu->cfg.block_count) return -PT_EINVAL;
    emu->wear[block] = wear;
    emu->dirty[block] = 1;
    return 0;
}

void petrel_bd_emu_stats_reset(struct petrel_bd_emu *emu)
{
    memset(&emu->stats, 0, sizeof(emu->stats));
}
