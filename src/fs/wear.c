/*
 * Static wear leveling (docs/SPEC-FS.md 9): erase counts per block, the WEAR record that keeps
 * them across mounts, and the moves of cold file data onto worn blocks.
 *
 * Owns fs->wear and the wear_* fields. Dynamic wear leveling (the allocator going round the
 * device, pairs moving after block_cycles erases) spreads the erases of data that changes;
 * data that never changes pins its blocks, so the rest of the device takes every erase. Here,
 * when the most-erased block has been erased more than wear_spread times more often than a
 * block holding file data, that data is copied onto the most-worn of a few free blocks the
 * allocator offers and the file's entry is committed pointing at the copy: the little-erased
 * block joins the rotation, the worn one rests under data that does not change.
 *
 * Invariants: a move is a file write without new data, in the same order (program and verify
 * the copy in a fresh block, write new index blocks, then one ENTRY commit), so a power cut
 * leaves the file as it was or moved, never a mix; the old block is not touched, only freed
 * by the commit. A page that fails its CRC is never copied (a copy would give it a valid CRC).
 * Open files are never moved (their handle holds the old tree). Moves run only between
 * operations (after a sync), never inside one, and their own erases earn no further moves, so
 * the extra writes stay within the budget documented in petrel_fs_config.wear_spread. The
 * counts are advisory: a lost or stale WEAR record costs evenness, never data.
 */
#include <stdlib.h>

#include "fs/fs_internal.h"

#ifdef PT_WEAR

static const uint32_t pt_root_pair[2] = {0, 1};

void pt_wear_free(struct petrel_fs *fs)
{
#ifndef PETREL_FS_NO_MALLOC
    if (fs->wear_alloc) free(fs->wear);
#endif
    fs->wear = NULL;
    fs->wear_alloc = 0;
}

/* Decode the WEAR record rec of root into fs->wear (already zeroed): 0, or -PT_ECORRUPT when
 * it is malformed (then the counts stay zero). */
static int pt_wear_load(struct petrel_fs *fs, const struct pt_mdir *root,
                        const struct pt_rec_ref *rec)
{
    uint8_t buf[32];
    uint32_t n = fs->block_count, base, shift, i, j;
    int err;
    if (rec->len != PT_WEAR_HDR + n) return -PT_ECORRUPT;
    err = pt_read(fs, root->pair[0], rec->off, buf, PT_WEAR_HDR, rec->len);
    if (err) return err;
    base = pt_get_le32(buf);
    shift = buf[4];
    if (shift > 24 || buf[5] || buf[6] || buf[7]) return -PT_ECORRUPT;
    for (i = 0; i < n; i += (uint32_t)sizeof(buf)) {
        uint32_t k = PT_MIN((uint32_t)sizeof(buf), n - i);
        err = pt_read(fs, root->pair[0], rec->off + PT_WEAR_HDR + i, buf, k, rec->len);
        if (err) return err;
        for (j = 0; j < k; j++)
            fs->wear[i + j] = base + ((uint32_t)buf[j] << shift);
    }
    return 0;
}

int pt_wear_mount(struct petrel_fs *fs, const struct pt_mdir *root)
{
    const struct petrel_fs_config *cfg = fs->cfg;
    struct pt_rec_ref rec = {0, 0, 0}, last = {0, 0, 0};
    uint32_t pos = 0;
    int err, found = 0;
    fs->wear = NULL;
    fs->wear_alloc = 0;
    fs->wear_credit = fs->wear_unsaved = fs->wear_moves = 0;
    fs->wear_busy = 0;
    if (!cfg->wear_spread) return 0;
    if (cfg->wear_buffer) {
        fs->wear = cfg->wear_buffer;
    } else {
#ifdef PETREL_FS_NO_MALLOC
        return 0; /* no counts without a buffer: static wear leveling is off */
#else
        fs->wear = (uint32_t *)malloc(sizeof(uint32_t) * PETREL_FS_WEAR_WORDS(fs->block_count));
        if (!fs->wear) return -PT_ENOMEM;
        fs->wear_alloc = 1;
#endif
    }
    memset(fs->wear, 0, sizeof(uint32_t) * fs->block_count);
    while ((err = pt_rec_next(fs, root, &pos, &rec)) == 1) {
        if (rec.type == PT_REC_WEAR) {
            last = rec;
            found = 1;
        }
    }
    if (err < 0) return err;
    if (!found) return 0;
    err = pt_wear_load(fs, root, &last);
    if (err == -PT_ECORRUPT) {
        /* advisory data: counting restarts, fsck reports the record */
        petrel_log(PT_LOG_WARN, "fs", "erase-count record malformed: counts restart at 0");
        memset(fs->wear, 0, sizeof(uint32_t) * fs->block_count);
        return 0;
    }
    return err;
}

static int pt_wear_between_ops(const struct petrel_fs *fs)
{
    return !fs->readonly && !fs->ms_clean &&
           memcmp(&fs->gstate, &fs->gpending, sizeof(fs->gstate)) == 0;
}

int pt_wear_save(struct petrel_fs *fs)
{
    uint32_t n = fs->block_count, base = UINT32_MAX, max = 0, shift = 0, i;
    uint8_t *p;
    struct pt_mdir root;
    struct pt_rec r;
    int err;
    if (!fs->wear || !fs->wear_unsaved || !pt_wear_between_ops(fs)) return 0;
    if (PT_WEAR_HDR + n > fs->block_size / 4) return 0; /* too big for the root pair */
    for (i = 0; i < n; i++) {
        base = PT_MIN(base, fs->wear[i]);
        max = PT_MAX(max, fs->wear[i]);
    }
    while (((max - base) >> shift) > 255)
        shift++;
    /* encoded in the words after the counts (PETREL_FS_WEAR_WORDS) */
    p = (uint8_t *)(void *)(fs->wear + n);
    pt_put_le32(p, base);
    p[4] = (uint8_t)shift;
    p[5] = p[6] = p[7] = 0;
    for (i = 0; i < n; i++) {
        uint32_t v = (fs->wear[i] - base) >> shift;
        p[PT_WEAR_HDR + i] = (uint8_t)(v > 255 ? 255 : v);
    }
    err = pt_mdir_fetch(fs, &root, pt_root_pair, NULL);
    if (err) return err;
    memset(&r, 0, sizeof(r));
    r.type = PT_REC_WEAR;
    r.seg[0] = p;
    r.seglen[0] = PT_WEAR_HDR + n;
    fs->wear_busy++;
    err = pt_fs_commit(fs, &root, &r, 1);
    fs->wear_busy--;
    if (err == -PT_ENOSPC) return 0; /* no room: the counts stay in RAM */
    if (err) return err;
    fs->wear_unsaved = 0;
    return 0;
}

/* ---- finding cold data ---- */

struct pt_wear_pick {
    uint32_t pair[2]; /* pair holding the entry of the coldest file */
    uint64_t hash;
    uint32_t cold; /* erase count of its least-erased data block */
    int found;
};

/* Whether an open file has an entry with this name hash (its handle holds the old tree). */
static int pt_wear_is_open(const struct petrel_fs *fs, uint64_t hash)
{
    const struct petrel_fs_handle *h;
    for (h = fs->handles; h; h = h->next) {
        if (h->kind == PETREL_FS_REG &&
            ((const struct petrel_fs_file *)(const void *)h)->hash == hash)
            return 1;
    }
    return 0;
}

struct pt_wear_walk {
    struct petrel_fs *fs;
    uint32_t file_min;
};

static int pt_wear_data_cb(void *ctx, uint32_t block, int is_data)
{
    struct pt_wear_walk *w = (struct pt_wear_walk *)ctx;
    if (is_data && block < w->fs->block_count)
        w->file_min = PT_MIN(w->file_min, w->fs->wear[block]);
    return 0;
}

/* The closed file whose least-erased data block is the least erased of all. */
static PT_NOINLINE int pt_wear_find(struct petrel_fs *fs, struct pt_wear_pick *pk)
{
    struct pt_mdir md;
    struct pt_live_map map;
    struct pt_wear_walk w;
    uint32_t guard;
    int err = pt_mdir_fetch(fs, &md, pt_root_pair, NULL);
    pk->found = 0;
    pk->cold = UINT32_MAX;
    w.fs = fs;
    for (guard = 0; !err && guard <= fs->block_count; guard++) {
        struct pt_rec_ref rec = {0, 0, 0};
        uint32_t pos = 0, idx, next[2];
        err = pt_live_map_build(fs, &md, &map);
        for (idx = 0; !err && (err = pt_rec_next(fs, &md, &pos, &rec)) == 1; idx++) {
            struct pt_entry e;
            int live;
            err = 0;
            if (rec.type != PT_REC_ENTRY) continue;
            err = pt_live_map_live(fs, &md, &map, idx, &rec, pos, &live);
            if (err || !live) continue;
            err = pt_entry_decode(fs, md.pair[0], &rec, &e);
            if (err) break;
            if (!PETREL_FS_TYPE_HAS_DATA(e.type) || e.root == PT_NULL) continue;
            if (pt_wear_is_open(fs, e.hash)) continue;
            w.file_min = UINT32_MAX;
            err = pt_tree_walk(fs, e.root, e.depth, e.direct, e.size, pt_wear_data_cb, &w);
            if (err) break;
            if (w.file_min < pk->cold) {
                pk->cold = w.file_min;
                pk->pair[0] = md.pair[0];
                pk->pair[1] = md.pair[1];
                pk->hash = e.hash;
                pk->found = 1;
            }
        }
        if (err < 0) return err;
        if (md.next[0] == PT_NULL) return 0;
        next[0] = md.next[0];
        next[1] = md.next[1];
        err = pt_mdir_fetch(fs, &md, next, NULL);
    }
    return err ? err : -PT_ECORRUPT;
}

/* ---- moving ---- */

/* Copy the first pages of data block src into the most worn of a few free blocks, if it is
 * worn enough to be worth it: 0 (*dst set), 1 no move (no worn block free, or src or the
 * copy failed: src stays), or an error of the device. */
static PT_NOINLINE int pt_wear_copy(struct petrel_fs *fs, uint32_t src, uint32_t pages,
                                    uint32_t *dst, int first)
{
    uint32_t best = PT_NULL, slot, spread = fs->cfg->wear_spread;
    int err = 0;
    err = pt_alloc_worn(fs, &best, first);
    if (err == -PT_ENOSPC) return 1;
    if (err) return err;
    if (fs->wear[best] <= fs->wear[src] + spread / 2) return 1; /* not worth a copy */
    err = pt_erase(fs, best);
    for (slot = 0; !err && slot < pages; slot++) {
        const uint8_t *p;
        err = pt_page_read(fs, src, slot, &p);
        if (err == -PT_ECORRUPT) return 1; /* never give a bad page a valid CRC */
        if (err) return err;
        fs->rcache.block = PT_NULL; /* the page's CRC slot is rewritten in the cache */
        err = pt_page_prog(fs, best, slot, fs->rcache.buf + (size_t)(p - fs->rcache.buf));
    }
    if (err == -PT_EIO || err == -PT_ECORRUPT) {
        petrel_log(PT_LOG_WARN, "fs", "wear leveling: block %u failed, not moved to",
                   (unsigned)best);
        return 1;
    }
    if (err) return err;
    petrel_log(PT_LOG_DEBUG, "fs", "wear leveling: block %u (%u erases) moved to %u (%u)",
               (unsigned)src, (unsigned)fs->wear[src], (unsigned)best, (unsigned)fs->wear[best]);
    *dst = best;
    return 0;
}

/* New tree of the file for the moved blocks (new index blocks written, nothing committed). */
static PT_NOINLINE int pt_wear_tree(struct petrel_fs *fs, const struct pt_entry *e,
                                    struct petrel_fs_pend *pend, uint32_t n, uint32_t *root,
                                    uint8_t *depth, uint32_t direct[PT_DIRECT_MAX - 1])
{
    struct petrel_fs_file f;
    int err;
    memset(&f, 0, sizeof(f));
    memcpy(f.direct, e->direct, sizeof(f.direct));
    f.pend = pend;
    f.pend_n = n;
    f.pend_max = n;
    *root = e->root;
    *depth = e->depth;
    err = pt_tree_apply(fs, root, depth, &f);
    memcpy(direct, f.direct, sizeof(f.direct));
    return err;
}

/* The ENTRY commit: the same name, size and tail, the new tree. */
static PT_NOINLINE int pt_wear_commit(struct petrel_fs *fs, struct pt_mdir *md,
                                      const struct pt_entry *e, uint32_t root, uint8_t depth,
                                      const uint32_t *direct)
{
    uint8_t ent[PT_ENTRY_FIXED + PETREL_FS_NAME_MAX_DEFAULT], reg[PT_REGSTRUCT_MAX];
    struct pt_rec r;
    int err;
    pt_put_le64(ent, e->hash);
    ent[8] = e->type;
    ent[9] = e->name_len;
    err = pt_read(fs, e->block, e->name_off, ent + PT_ENTRY_FIXED, e->name_len, e->name_len);
    if (err) return err;
    memset(&r, 0, sizeof(r));
    r.type = PT_REC_ENTRY;
    r.hash = e->hash;
    r.seg[0] = ent;
    r.seglen[0] = PT_ENTRY_FIXED + e->name_len;
    r.seg[1] = reg;
    r.seglen[1] = pt_reg_struct(reg, e->size, root, depth, direct, e->tail_len);
    /* the tail copied from the entry's record: md's newest log block, unchanged until the
     * commit returns */
    r.copy_at = 3;
    r.copy_block = e->block;
    r.copy_off = e->tail_off;
    r.copy_len = e->tail_len;
    return pt_fs_commit(fs, md, &r, 1);
}

/* Move up to allowed cold data blocks of the file picked (erased at most spread / 4 times
 * more than its coldest); *moved counts them. */
static PT_NOINLINE int pt_wear_move(struct petrel_fs *fs, const struct pt_wear_pick *pk,
                                    uint32_t allowed, uint32_t *moved)
{
    struct petrel_fs_pend pend[PETREL_FS_WEAR_MOVE_MAX];
    uint32_t direct[PT_DIRECT_MAX - 1];
    uint32_t pld = pt_page_payload(fs), ppb = pt_pages_per_block(fs), pages, nblocks, k, n = 0;
    uint32_t root;
    uint8_t depth;
    struct pt_mdir md;
    struct pt_entry e;
    int err = pt_mdir_fetch(fs, &md, pk->pair, &pk->hash);
    *moved = 0;
    if (err) return err;
    if (md.found != PT_REC_ENTRY) return 0;
    err = pt_entry_decode(fs, md.pair[0], &md.found_rec, &e);
    if (err) return err;
    if (!PETREL_FS_TYPE_HAS_DATA(e.type) || e.size < e.tail_len) return 0;
    pages = (uint32_t)((e.size - e.tail_len + pld - 1) / pld);
    nblocks = (pages + ppb - 1) / ppb;
    for (k = 0; k < nblocks && n < allowed; k++) {
        uint32_t b, nb;
        err = pt_tree_lookup(fs, e.root, e.depth, e.direct, k, &b);
        if (err) return err;
        /* the coldest blocks of the file (near the coldest of the device) first */
        if (b == PT_NULL || fs->wear[b] > pk->cold + fs->cfg->wear_spread / 4) continue;
        err = pt_wear_copy(fs, b, PT_MIN(ppb, pages - k * ppb), &nb, n == 0);
        if (err == 1) break;
        if (err) return err;
        pend[n].index = k;
        pend[n].block = nb;
        n++;
    }
    if (n == 0) return 0;
    err = pt_wear_tree(fs, &e, pend, n, &root, &depth, direct);
    if (!err) err = pt_wear_commit(fs, &md, &e, root, depth, direct);
    if (!err) err = pt_sync(fs);
    if (err) return err;
    *moved = n;
    fs->wear_moves += n;
    return 0;
}

int pt_wear_level(struct petrel_fs *fs)
{
    uint32_t spread, cost, max = 0, min = UINT32_MAX, i, allowed, moved = 0;
    struct pt_wear_pick pk;
    int err = 0;
    if (!fs->wear || fs->wear_busy || !pt_wear_between_ops(fs)) return 0;
    spread = fs->cfg->wear_spread;
    cost = PT_MAX(1u, spread / 4);
    /* credit beyond a few calls' worth is not kept: moves stay spread out */
    fs->wear_credit = PT_MIN(fs->wear_credit, cost * PETREL_FS_WEAR_MOVE_MAX * 4);
    if (fs->wear_credit >= cost) {
        for (i = 0; i < fs->block_count; i++) {
            max = PT_MAX(max, fs->wear[i]);
            min = PT_MIN(min, fs->wear[i]);
        }
    }
    if (fs->wear_credit >= cost && max - min > spread) {
        allowed = PT_MIN(fs->wear_credit / cost, (uint32_t)PETREL_FS_WEAR_MOVE_MAX);
        fs->wear_busy++;
        err = pt_wear_find(fs, &pk);
        if (!err && pk.found && pk.cold + spread < max)
            err = pt_wear_move(fs, &pk, allowed, &moved);
        fs->wear_busy--;
        /* a search that moved nothing still spends one move: it read the metadata */
        fs->wear_credit -= cost * PT_MAX(1u, moved);
        /* the move is over, done or not: nothing it allocated is in flight */
        pt_alloc_ack(fs);
    }
    if (!err && fs->wear_unsaved >= fs->block_count) err = pt_wear_save(fs);
    return err;
}

#endif /* PT_WEAR */
