/*
 * Device access for the engine: reads through the read cache, programs through the program
 * cache (a stream writer), erases, and the read-back verification of every program.
 *
 * Owns fs->rcache and fs->pcache. Never returns data it did not read from the device (the
 * caches are dropped for a block whenever it is programmed or erased), never programs
 * outside the range the caller opened, and never hides a device error: a failed callback's
 * code is returned as is. Verification compares the CRC of what the device holds now with
 * the CRC of what the engine meant to write, so a program that silently did nothing, or left
 * stale but self-consistent data, is reported as -PT_ECORRUPT.
 */
#include "fs/fs_internal.h"

/*
 * Remembered pairs: the built-in table of PETREL_FS_LINK_CACHE slots, searched linearly and
 * replaced round-robin, or a configured table with a block index: a pair lives in slot
 * min(pair) mod nlinks and link_index[block] names the slot of the pair holding block, so
 * finding a pair and forgetting a block's pair are one step each.
 */
static void pt_link_clear_slot(struct petrel_fs *fs, uint32_t i)
{
    struct petrel_fs_link *l = &fs->linkv[i];
    if (fs->link_index && l->pair[0] != PT_NULL) {
        if (l->pair[0] < fs->block_count && fs->link_index[l->pair[0]] == i + 1)
            fs->link_index[l->pair[0]] = 0;
        if (l->pair[1] < fs->block_count && fs->link_index[l->pair[1]] == i + 1)
            fs->link_index[l->pair[1]] = 0;
    }
    l->pair[0] = l->pair[1] = PT_NULL;
}

/* Forget remembered thread links of any pair using block (it is being changed). */
static void pt_links_drop(struct petrel_fs *fs, uint32_t block)
{
    uint32_t i;
    if (fs->link_index) {
        if (block < fs->block_count && fs->link_index[block]) {
            i = fs->link_index[block] - 1;
            if (fs->linkv[i].pair[0] == block || fs->linkv[i].pair[1] == block)
                pt_link_clear_slot(fs, i);
            fs->link_index[block] = 0;
        }
        return;
    }
    for (i = 0; i < fs->nlinks; i++)
        if (fs->linkv[i].pair[0] == block || fs->linkv[i].pair[1] == block)
            pt_link_clear_slot(fs, i);
}

static uint32_t pt_link_slot(struct petrel_fs *fs, const uint32_t pair[2])
{
    uint32_t i;
    if (fs->link_index) {
        if (pair[0] < fs->block_count && fs->link_index[pair[0]]) {
            i = fs->link_index[pair[0]] - 1;
            if (pt_pair_eq(fs->linkv[i].pair, pair)) return i;
        }
        return fs->nlinks;
    }
    for (i = 0; i < fs->nlinks; i++)
        if (fs->linkv[i].pair[0] != PT_NULL && pt_pair_eq(fs->linkv[i].pair, pair)) return i;
    return fs->nlinks;
}

void pt_links_remember(struct petrel_fs *fs, const struct pt_mdir *md)
{
    struct petrel_fs_link *l;
    uint32_t i = pt_link_slot(fs, md->pair);
    if (fs->nlinks == 0) return; /* no table (no malloc, no link_buffer) */
    if (i == fs->nlinks) {
        /* pinned (a FINGERS record is being written from the links, mstate.c): a new pair is
         * not remembered, so no remembered one is replaced */
        if (fs->links_pinned) return;
        if (fs->link_index) {
            i = PT_MIN(md->pair[0], md->pair[1]) % fs->nlinks;
        } else {
            i = fs->link_next;
            fs->link_next = (fs->link_next + 1) % fs->nlinks;
        }
        pt_link_clear_slot(fs, i);
    }
    l = &fs->linkv[i];
    l->pair[0] = md->pair[0];
    l->pair[1] = md->pair[1];
    l->next[0] = md->next[0];
    l->next[1] = md->next[1];
    l->next_cont = (uint8_t)(md->next_cont ? 1 : 0);
    l->next_split = md->next_split;
    l->rev = md->rev;
    l->off = md->off;
    l->log_crc = md->log_crc;
    l->fcrc = md->fcrc;
    l->crc_xor = md->crc_xor;
    l->erased = md->erased;
    l->indexed = md->index_len != 0;
    if (fs->link_index) {
        /* a block belongs to one pair at a time: an older pair of either block goes */
        if (md->pair[0] < fs->block_count) {
            if (fs->link_index[md->pair[0]] && fs->link_index[md->pair[0]] != i + 1)
                pt_links_drop(fs, md->pair[0]);
            fs->link_index[md->pair[0]] = i + 1;
        }
        if (md->pair[1] < fs->block_count) {
            if (fs->link_index[md->pair[1]] && fs->link_index[md->pair[1]] != i + 1)
                pt_links_drop(fs, md->pair[1]);
            fs->link_index[md->pair[1]] = i + 1;
        }
    }
}

const struct petrel_fs_link *pt_links_find(struct petrel_fs *fs, const uint32_t pair[2])
{
    uint32_t i = pt_link_slot(fs, pair);
    return i == fs->nlinks ? NULL : &fs->linkv[i];
}

void pt_links_forget(struct petrel_fs *fs, const uint32_t pair[2])
{
    pt_links_drop(fs, pair[0]);
    pt_links_drop(fs, pair[1]);
}

void pt_links_clear(struct petrel_fs *fs)
{
    uint32_t i;
    for (i = 0; i < fs->nlinks; i++) fs->linkv[i].pair[0] = fs->linkv[i].pair[1] = PT_NULL;
    if (fs->link_index) memset(fs->link_index, 0, sizeof(uint32_t) * fs->block_count);
    fs->link_next = 0;
}

void pt_cache_drop(struct petrel_fs *fs, uint32_t block)
{
    if (block == PT_NULL || fs->rcache.block == block) fs->rcache.block = PT_NULL;
}

static int pt_dev_read(struct petrel_fs *fs, uint32_t block, uint32_t off, void *buf,
                       uint32_t size)
{
    if (block >= fs->block_count || off > fs->block_size || size > fs->block_size - off)
        return -PT_ECORRUPT;
    return fs->bd->read(fs->bd->context, block, off, buf, size);
}

int pt_read(struct petrel_fs *fs, uint32_t block, uint32_t off, void *buf, uint32_t size,
            uint32_t hint)
{
    uint8_t *out = (uint8_t *)buf;
    struct petrel_fs_cache *c = &fs->rcache;
    if (block >= fs->block_count || off > fs->block_size || size > fs->block_size - off)
        return -PT_ECORRUPT;
    while (size > 0) {
        uint32_t n, start, end, want;
        int err;
        if (c->block == block && off >= c->off && off < c->off + c->size) {
            n = PT_MIN(size, c->off + c->size - off);
            memcpy(out, c->buf + (off - c->off), n);
            out += n;
            off += n;
            size -= n;
            hint = hint > n ? hint - n : 0;
            continue;
        }
        want = PT_MAX(size, hint);
        if (c->block == block && off == c->off + c->size && c->size < fs->cache_size) {
            /* right after the cached bytes, with room: keep them and read on (a fetch
             * reading a log in small steps leaves the whole log cached for what follows) */
            end = off + PT_MIN(want, fs->block_size - off);
            end = end + (fs->read_size - end % fs->read_size) % fs->read_size;
            if (end - c->off > fs->cache_size) end = c->off + fs->cache_size;
            if (end > fs->block_size) end = fs->block_size;
            err = pt_dev_read(fs, block, off, c->buf + c->size, end - off);
            if (err) {
                c->block = PT_NULL;
                return err;
            }
            c->size = end - c->off;
            continue;
        }
        /* Fill the cache from the aligned start, as far as the caller expects to read. */
        start = off - off % fs->read_size;
        end = off + PT_MIN(want, fs->block_size - off);
        end = end + (fs->read_size - end % fs->read_size) % fs->read_size;
        if (end - start > fs->cache_size) end = start + fs->cache_size;
        if (end > fs->block_size) end = fs->block_size;
        c->block = PT_NULL;
        err = pt_dev_read(fs, block, start, c->buf, end - start);
        if (err) return err;
        c->block = block;
        c->off = start;
        c->size = end - start;
    }
    return 0;
}

int pt_read_crc(struct petrel_fs *fs, uint32_t block, uint32_t off, uint32_t size,
                uint32_t *crc)
{
    uint8_t tmp[64];
    while (size > 0) {
        uint32_t n = PT_MIN(size, (uint32_t)sizeof(tmp));
        int err = pt_read(fs, block, off, tmp, n, size);
        if (err) return err;
        *crc = petrel_crc32c(*crc, tmp, n);
        off += n;
        size -= n;
    }
    return 0;
}

int pt_read_direct(struct petrel_fs *fs, uint32_t block, uint32_t off, void *buf, uint32_t size)
{
    return pt_dev_read(fs, block, off, buf, size);
}

int pt_erase(struct petrel_fs *fs, uint32_t block)
{
    int err;
    pt_cache_drop(fs, block);
    pt_links_drop(fs, block);
    if (fs->pcache.block == block) fs->pcache.block = PT_NULL;
    if (block >= fs->block_count) return -PT_ECORRUPT;
    pt_wear_count(fs, block);
    err = fs->bd->erase(fs->bd->context, block);
    return err;
}

int pt_prog_direct(struct petrel_fs *fs, uint32_t block, uint32_t off, const void *buf,
                   uint32_t size)
{
    pt_cache_drop(fs, block);
    pt_links_drop(fs, block);
    if (block >= fs->block_count || off > fs->block_size || size > fs->block_size - off)
        return -PT_ECORRUPT;
    return fs->bd->prog(fs->bd->context, block, off, buf, size);
}

int pt_sync(struct petrel_fs *fs)
{
    return fs->bd->sync ? fs->bd->sync(fs->bd->context) : 0;
}

/* Read [off, off+size) back from the device (not the cache) and compare its CRC. */
int pt_verify(struct petrel_fs *fs, uint32_t block, uint32_t off, uint32_t size,
              uint32_t expect_crc)
{
    struct petrel_fs_cache *c = &fs->rcache;
    uint32_t crc = 0;
    uint32_t pos = off - off % fs->read_size;
    uint32_t end = off + size;
    pt_cache_drop(fs, block);
    c->block = PT_NULL;
    while (pos < end) {
        uint32_t n = end - pos;
        uint32_t lo, hi;
        int err;
        n += (fs->read_size - n % fs->read_size) % fs->read_size;
        if (n > fs->cache_size) n = fs->cache_size;
        if (n > fs->block_size - pos) n = fs->block_size - pos;
        err = pt_dev_read(fs, block, pos, c->buf, n);
        if (err) return err;
        lo = pos < off ? off - pos : 0;
        hi = PT_MIN(n, end - pos);
        crc = petrel_crc32c(crc, c->buf + lo, hi - lo);
        pos += n;
    }
    return crc == expect_crc ? 0 : -PT_ECORRUPT;
}

/* ---- program stream ---- */

void pt_writer_init(struct petrel_fs *fs, struct pt_writer *w, uint32_t block, uint32_t off,
                    int dry)
{
    w->block = block;
    w->start = off;
    w->off = off;
    w->crc = 0;
    w->vcrc = 0;
    w->dry = dry;
    if (!dry) {
        fs->pcache.block = block;
        fs->pcache.off = off;
        fs->pcache.size = 0;
    }
}

int pt_writer_flush(struct petrel_fs *fs, struct pt_writer *w)
{
    struct petrel_fs_cache *p = &fs->pcache;
    int err;
    if (w->dry || p->size == 0) return 0;
    err = pt_prog_direct(fs, p->block, p->off, p->buf, p->size);
    p->off += p->size;
    p->size = 0;
    return err;
}

int pt_writer_put(struct petrel_fs *fs, struct pt_writer *w, const void *buf, uint32_t size)
{
    const uint8_t *in = (const uint8_t *)buf;
    struct petrel_fs_cache *p = &fs->pcache;
    if (w->dry != PT_WRITER_MEASURE && size > fs->block_size - w->off) return -PT_ENOSPC;
    if (w->dry) {
        w->off += size;
        return 0;
    }
    w->crc = petrel_crc32c(w->crc, in, size);
    w->vcrc = petrel_crc32c(w->vcrc, in, size);
    w->off += size;
    while (size > 0) {
        uint32_t n = PT_MIN(size, fs->cache_size - p->size);
        memcpy(p->buf + p->size, in, n);
        p->size += n;
        in += n;
        size -= n;
        if (p->size == fs->cache_size) {
            int err = pt_writer_flush(fs, w);
            if (err) return err;
        }
    }
    return 0;
}

/* Copy bytes from the device (any block, read through the read cache) into the stream. */
int pt_writer_copy(struct petrel_fs *fs, struct pt_writer *w, uint32_t block, uint32_t off,
                   uint32_t size)
{
    uint8_t tmp[64];
    while (size > 0) {
        uint32_t n = PT_MIN(size, (uint32_t)sizeof(tmp));
        int err = pt_read(fs, block, off, tmp, n, size);
        if (err) return err;
        err = pt_writer_put(fs, w, tmp, n);
        if (err) return err;
        off += n;
        size -= n;
    }
    return 0;
}
