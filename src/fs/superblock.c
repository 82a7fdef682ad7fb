/*
 * Format, mount, unmount and fsinfo: the geometry, the superblock record of the root pair,
 * the buffers, and what mount rebuilds: the global state, the next directory id and the
 * allocator seed, from the clean mount-state record (mstate.c) or, after a cut session, from
 * a walk of every pair.
 *
 * Owns struct petrel_fs setup and the superblock record (docs/SPEC-FS.md "Superblock").
 * The superblock is an ordinary record of the root pair (blocks 0 and 1) and is written by
 * the ordinary commit path; mount trusts only a superblock inside a commit whose CRC holds.
 * Mount never writes unless a half-done operation must be finished; unmount commits the clean
 * mount-state record when the session changed anything. Buffers come from the
 * configuration or, unless PETREL_FS_NO_MALLOC, from malloc at mount (freed at unmount).
 */
#include <stdlib.h>

#include "fs/fs_internal.h"

static const uint32_t pt_root_pair[2] = {0, 1};
static const uint8_t pt_magic[8] = {'p', 'e', 't', 'r', 'e', 'l', 0, 0};

static void pt_fs_free(struct petrel_fs *fs)
{
#ifndef PETREL_FS_NO_MALLOC
    if (fs->rcache_alloc) free(fs->rcache.buf);
    if (fs->pcache_alloc) free(fs->pcache.buf);
    if (fs->look_alloc) free(fs->lookahead);
    free(fs->tables);
#endif
#ifdef PT_WEAR
    pt_wear_free(fs);
#endif
    fs->tables = NULL;
    fs->linkv = NULL;
    fs->fg = NULL;
    fs->nlinks = 0;
    fs->rcache.buf = fs->pcache.buf = fs->lookahead = NULL;
    fs->rcache_alloc = fs->pcache_alloc = fs->look_alloc = 0;
}

static void *pt_buffer(void *given, uint32_t size, uint8_t *allocated)
{
    *allocated = 0;
    if (given) return given;
#ifdef PETREL_FS_NO_MALLOC
    (void)size;
    return NULL;
#else
    *allocated = 1;
    return malloc(size);
#endif
}

/* Geometry and buffers from the configuration (block_count and page_size may be replaced
 * by the superblock's at mount). */
static int pt_fs_init(struct petrel_fs *fs, const struct petrel_fs_config *cfg)
{
    const struct petrel_bd *bd = cfg ? cfg->bd : NULL;
    uint32_t unit, page, pld;
    memset(fs, 0, sizeof(*fs));
    if (!bd || !bd->read || !bd->prog || !bd->erase) return -PT_EINVAL;
    fs->cfg = cfg;
    fs->bd = bd;
    fs->read_size = bd->read_size;
    fs->prog_size = bd->prog_size;
    fs->block_size = bd->block_size;
    fs->block_count = cfg->block_count ? cfg->block_count : bd->block_count;
    if (!fs->read_size || !fs->prog_size || fs->block_size < 128 ||
        fs->block_size % fs->read_size || fs->block_size % fs->prog_size ||
        fs->block_size > (1u << 24) || fs->block_count < 6 ||
        fs->block_count > bd->block_count)
        return -PT_EINVAL;
    unit = PT_MAX(fs->read_size, fs->prog_size);
    if (unit % PT_MIN(fs->read_size, fs->prog_size)) return -PT_EINVAL;
    page = unit;
    while (page < 256 && fs->block_size % (page * 2) == 0) page *= 2;
    if (page < 16 || fs->block_size % page) return -PT_EINVAL;
    fs->page_size = page;
    pld = page - 4;
    fs->inline_max = fs->block_size >= 512 ? PT_MIN(PT_MIN(pld, fs->block_size / 8), 1024u) : 0;
    fs->name_max = cfg->name_max ? cfg->name_max : PETREL_FS_NAME_MAX_DEFAULT;
    if (fs->name_max > PETREL_FS_NAME_MAX_DEFAULT) return -PT_EINVAL;
    fs->name_max = PT_MIN(fs->name_max, fs->block_size / 8);
    fs->attr_max = cfg->attr_max ? cfg->attr_max : PETREL_FS_ATTR_MAX_DEFAULT;
    fs->attr_max = PT_MIN(fs->attr_max, fs->block_size / 8);
    fs->file_max = cfg->file_max ? cfg->file_max : PETREL_FS_FILE_MAX_DEFAULT;
    if (fs->file_max > 0xffffffffu) fs->file_max = 0xffffffffu;
    fs->block_cycles = cfg->block_cycles;
    if (fs->block_cycles > 0 && fs->block_cycles < 8) fs->block_cycles = 8;
    /* odd: a relocation keeps the block holding the current log, which with an even count is
     * the same block every time (it would never move); with an odd one the two alternate */
    if (fs->block_cycles > 0 && fs->block_cycles % 2 == 0 && fs->block_cycles < INT32_MAX)
        fs->block_cycles++;
    fs->cache_size = cfg->cache_size ? cfg->cache_size
                                     : (fs->block_size <= 4096 ? fs->block_size : page);
    if (fs->cache_size % unit || fs->cache_size < page || fs->cache_size > fs->block_size)
        return -PT_EINVAL;
    {
        uint32_t la = cfg->lookahead_size;
        if (!la) la = PT_MIN(64u, ((fs->block_count + 63) / 64) * 8);
        if (la % 8) return -PT_EINVAL;
        fs->look_size = PT_MIN(la * 8, fs->block_count);
        fs->lookahead = (uint8_t *)pt_buffer(cfg->lookahead_buffer, la, &fs->look_alloc);
    }
    fs->rcache.buf = (uint8_t *)pt_buffer(cfg->read_buffer, fs->cache_size, &fs->rcache_alloc);
    fs->pcache.buf = (uint8_t *)pt_buffer(cfg->prog_buffer, fs->cache_size, &fs->pcache_alloc);
    fs->rcache.block = fs->pcache.block = PT_NULL;
    fs->fg_head[0] = fs->fg_head[1] = PT_NULL; /* no fingers yet */
    fs->big_head[0] = fs->big_head[1] = PT_NULL;
    fs->linkv = NULL;
    fs->nlinks = 0;
    fs->link_index = NULL;
    fs->fg = NULL;
    fs->tables = NULL;
#ifndef PETREL_FS_NO_MALLOC
    {
        /* the built-in links (unless configured) and the fingers: one allocation, outside
         * struct petrel_fs so that a firmware build without malloc does not carry them */
        size_t nl = cfg->link_buffer && cfg->link_count ? 0 : PETREL_FS_LINK_CACHE;
        size_t fsz = sizeof(struct petrel_fs_finger) * PETREL_FS_FINGERS;
        fs->tables = malloc(fsz + sizeof(struct petrel_fs_link) * nl);
        if (!fs->tables) {
            pt_fs_free(fs);
            return -PT_ENOMEM;
        }
        fs->fg = (struct petrel_fs_finger *)fs->tables;
        if (nl) {
            fs->linkv = (struct petrel_fs_link *)(void *)((uint8_t *)fs->tables + fsz);
            fs->nlinks = (uint32_t)nl;
        }
    }
#endif
    if (cfg->link_buffer && cfg->link_count) {
        if (!cfg->link_index) {
            pt_fs_free(fs);
            return -PT_EINVAL;
        }
        fs->linkv = cfg->link_buffer;
        fs->nlinks = cfg->link_count;
        fs->link_index = cfg->link_index;
    }
    pt_links_clear(fs);
    if (!fs->rcache.buf || !fs->pcache.buf || !fs->lookahead) {
        pt_fs_free(fs);
        return -PT_ENOMEM;
    }
    return 0;
}

#ifndef PETREL_FS_READONLY
static uint32_t pt_sb_encode(uint8_t *p, const struct petrel_fs *fs)
{
    memcpy(p, pt_magic, sizeof(pt_magic));
    pt_put_le32(p + 8, PETREL_FS_VERSION);
    pt_put_le32(p + 12, fs->block_size);
    pt_put_le32(p + 16, fs->block_count);
    pt_put_le32(p + 20, fs->page_size);
    pt_put_le16(p + 24, (uint16_t)fs->name_max);
    pt_put_le16(p + 26, (uint16_t)fs->inline_max);
    pt_put_le32(p + 28, fs->attr_max);
    pt_put_le32(p + 32, (uint32_t)fs->file_max);
    return PT_SB_SIZE;
}

int petrel_fs_format(struct petrel_fs *fs, const struct petrel_fs_config *cfg)
{
    uint8_t sb[PT_SB_SIZE], ms[PT_MSTATE_SIZE];
    struct pt_rec r[2];
    struct pt_mdir md;
    struct pt_mstate m;
    int err = pt_fs_init(fs, cfg), i;
    if (err) return err;
    pt_sb_encode(sb, fs);
    memset(r, 0, sizeof(r));
    r[0].type = PT_REC_SUPERBLOCK;
    r[0].seg[0] = sb;
    r[0].seglen[0] = PT_SB_SIZE;
    /* an empty filesystem is clean: no other pair, directory ids from 1 */
    memset(&m, 0, sizeof(m));
    m.clean = 1;
    m.next_dirid = 1;
    pt_mstate_encode(ms, &m);
    r[1].type = PT_REC_MSTATE;
    r[1].seg[0] = ms;
    r[1].seglen[0] = PT_MSTATE_SIZE;
    /* the root pair: block 1 erased, block 0 holds the first commit */
    for (i = 1; i >= 0 && !err; i--) err = pt_erase(fs, (uint32_t)i);
    if (!err) err = pt_block_invalidate(fs, 1);
    if (!err) {
        memset(&md, 0, sizeof(md));
        md.pair[0] = 1;
        md.pair[1] = 0;
        md.next[0] = md.next[1] = PT_NULL;
        md.next_split = 0;
        md.erased = 0; /* forces a compaction into block 0 */
        {
            uint32_t old[2];
            err = pt_mdir_commit(fs, &md, r, 2, NULL, old, NULL);
        }
    }
    if (!err) err = pt_sync(fs);
    if (!err) err = pt_mdir_fetch(fs, &md, pt_root_pair, NULL);
    pt_fs_free(fs);
    return err;
}
#endif /* PETREL_FS_READONLY */

/* Walk the thread: XOR of global-state deltas and commit CRCs, highest directory id. */
static int pt_mount_walk(struct petrel_fs *fs, uint64_t *crc_seed)
{
    struct pt_mdir md;
    uint32_t guard;
    int err = pt_mdir_fetch(fs, &md, pt_root_pair, NULL);
    memset(&fs->gstate, 0, sizeof(fs->gstate));
    *crc_seed = 0;
    fs->next_dirid = 1;
    for (guard = 0; !err && guard <= fs->block_count; guard++) {
        uint32_t next[2];
        pt_gstate_xor(&fs->gstate, &md.gdelta);
        *crc_seed = (*crc_seed << 7 | *crc_seed >> 57) ^ md.crc_xor;
        if (md.head && md.dirid >= fs->next_dirid) fs->next_dirid = md.dirid + 1;
        if (md.next[0] == PT_NULL) return 0;
        next[0] = md.next[0];
        next[1] = md.next[1];
        err = pt_mdir_fetch(fs, &md, next, NULL);
    }
    return err ? err : -PT_ECORRUPT;
}

int petrel_fs_mount(struct petrel_fs *fs, const struct petrel_fs_config *cfg)
{
    struct pt_mdir md;
    struct pt_mstate ms;
    struct pt_rec_ref rec, sbrec = {0, 0, 0};
    uint8_t sb[PT_SB_SIZE];
    uint32_t pos = 0, version, bs, bc, ps;
    uint64_t seed;
    int err = pt_fs_init(fs, cfg), found = 0;
    if (err) return err;
    err = pt_mdir_fetch(fs, &md, pt_root_pair, NULL);
    if (err) goto fail;
    while ((err = pt_rec_next(fs, &md, &pos, &rec)) == 1) {
        if (rec.type == PT_REC_SUPERBLOCK) {
            sbrec = rec;
            found = 1;
        }
    }
    if (err < 0) goto fail;
    err = -PT_ECORRUPT;
    if (!found || sbrec.len < PT_SB_SIZE) goto fail;
    err = pt_read(fs, md.pair[0], sbrec.off, sb, PT_SB_SIZE, PT_SB_SIZE);
    if (err) goto fail;
    err = -PT_ECORRUPT;
    if (memcmp(sb, pt_magic, sizeof(pt_magic)) != 0) goto fail;
    version = pt_get_le32(sb + 8);
    fs->image_version = version;
    bs = pt_get_le32(sb + 12);
    bc = pt_get_le32(sb + 16);
    ps = pt_get_le32(sb + 20);
    /* 3.x images are read and written as 3.x: without directory indexes (a 3.x engine,
     * which ignores INDEX records, may change them again) */
    if ((version >> 16) != (PETREL_FS_VERSION >> 16) && (version >> 16) != 3) {
        petrel_log(PT_LOG_INFO, "fs", "image format %u.%u, this engine reads 3.x and %u.x",
                   (unsigned)(version >> 16), (unsigned)(version & 0xffff),
                   (unsigned)(PETREL_FS_VERSION >> 16));
        err = -PT_EVERSION;
        goto fail;
    }
    err = -PT_EINVAL;
    if (bs != fs->block_size || bc > fs->bd->block_count || bc < 6) goto fail;
    if (cfg->block_count && cfg->block_count != bc) goto fail;
    if (ps < 16 || ps % PT_MAX(fs->read_size, fs->prog_size) || bs % ps || ps > fs->cache_size)
        goto fail;
    fs->index_ok = (version >> 16) == (PETREL_FS_VERSION >> 16);
    fs->block_count = bc;
    fs->look_size = PT_MIN(fs->look_size, bc);
    fs->page_size = ps;
    fs->name_max = pt_get_le16(sb + 24);
    fs->inline_max = pt_get_le16(sb + 26);
    fs->attr_max = pt_get_le32(sb + 28);
    fs->file_max = pt_get_le32(sb + 32);
    if (fs->name_max == 0 || fs->name_max > PETREL_FS_NAME_MAX_DEFAULT ||
        fs->inline_max > ps - 4)
        goto fail;

#ifdef PT_WEAR
    err = pt_wear_mount(fs, &md);
    if (err) goto fail;
#endif
    /* a clean record is the walk's result; without one (a cut session) walk */
    err = pt_mstate_read(fs, &md, &ms);
    if (err < 0 && err != -PT_ECORRUPT) goto fail;
    if (err == -PT_ECORRUPT)
        petrel_log(PT_LOG_WARN, "fs", "mount-state record malformed: walking the pairs");
    if (err == 1 && ms.clean) {
        memset(&fs->gstate, 0, sizeof(fs->gstate)); /* clean: nothing half done */
        fs->next_dirid = ms.next_dirid;
        seed = ms.seed;
        fs->ms_clean = 1;
        err = pt_fingers_load(fs, &md); /* saved with the clean record: valid with it */
        if (err) goto fail;
    } else {
        err = pt_mount_walk(fs, &seed);
        if (err) goto fail;
    }
    fs->gpending = fs->gstate;
    fs->seed = seed ^ cfg->seed_mix;
#ifdef PETREL_FS_READONLY
    /* no repair here: an image that needs one is refused (fs.h) */
    if (fs->gstate.move_pending || fs->gstate.orphans) {
        petrel_log(PT_LOG_WARN, "fs", "image needs a repair (%s): mount it writable first",
                   fs->gstate.move_pending ? "a rename is half done" : "orphans");
        err = -PT_EROFS;
        goto fail;
    }
    fs->readonly = 1;
    fs->mounted = 1;
#else
    pt_alloc_init(fs);
    fs->mounted = 1;
    if (fs->gstate.move_pending || fs->gstate.orphans) {
        err = pt_mstate_mark_dirty(fs);
        if (!err) err = pt_fs_repair(fs, 1);
        if (err) {
            petrel_log(PT_LOG_WARN, "fs", "mount repair failed (%s): read-only",
                       petrel_strerror(err));
            fs->readonly = 1;
        }
    }
    pt_alloc_ack(fs);
#endif
    return 0;
fail:
    pt_fs_free(fs);
    return err;
}

int petrel_fs_unmount(struct petrel_fs *fs)
{
    int err;
    PT_REQUIRE_MOUNTED(fs);
#ifdef PETREL_FS_READONLY
    err = 0; /* nothing was written: nothing to sync or record */
#else
    err = pt_sync(fs);
#ifdef PT_WEAR
    if (!err) err = pt_wear_save(fs);
#endif
    if (!err) err = pt_mstate_mark_clean(fs);
#endif
    pt_fs_free(fs);
    fs->mounted = 0;
    fs->handles = NULL;
    return err;
}

int petrel_fs_fsinfo(struct petrel_fs *fs, struct petrel_fs_fsinfo *info)
{
    PT_REQUIRE_MOUNTED(fs);
    memset(info, 0, sizeof(*info));
    info->version = PETREL_FS_VERSION;
    info->block_size = fs->block_size;
    info->block_count = fs->block_count;
    info->name_max = fs->name_max;
    info->file_max = fs->file_max;
    info->attr_max = fs->attr_max;
    info->page_size = fs->page_size;
    info->inline_max = fs->inline_max;
    return 0;
}
