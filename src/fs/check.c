/*
 * Whole-filesystem walks: traverse (every block in use), usage, and the consistency check
 * behind `petrel fsck`.
 *
 * The walk follows the thread of metadata pairs from the root (no recursion, no memory
 * beyond the fs struct), reads the live entries of each pair and each file's data tree.
 * The check verifies every commit CRC (by fetching), every data and index page CRC, the
 * thread and hash-range structure, directory heads, block addresses, blocks used twice
 * (windowed over the lookahead buffer), the global state, and the mount-state record: a
 * clean record must say what the walk finds (global state zero, every directory id below its
 * next id), or a mount trusting it would be wrong; and the shape of the erase-count record.
 * It reports problems, never repairs them, and never writes.
 */
#include <stdio.h>

#include "fs/fs_internal.h"

static const uint32_t pt_root_pair[2] = {0, 1};

/* Visit each live entry of a pair. */
typedef int (*pt_entry_fn)(struct petrel_fs *fs, void *ctx, const struct pt_mdir *md,
                           const struct pt_entry *e);

/* Decode the live entry rec of md and hand it to fn (a helper, so the decoded entry is not
 * on the frame that builds the liveness map, docs/FIRMWARE.md). */
static PT_NOINLINE int pt_each_entry_visit(struct petrel_fs *fs, const struct pt_mdir *md,
                                           const struct pt_rec_ref *rec, pt_entry_fn fn,
                                           void *ctx)
{
    struct pt_entry e;
    int err = pt_entry_decode(fs, md->pair[0], rec, &e);
    return err ? err : fn(fs, ctx, md, &e);
}

static PT_NOINLINE int pt_each_entry(struct petrel_fs *fs, const struct pt_mdir *md,
                                     pt_entry_fn fn, void *ctx)
{
    struct pt_rec_ref rec = {0, 0, 0};
    struct pt_live_map map;
    uint32_t pos = 0, idx;
    int err = pt_live_map_build(fs, md, &map);
    if (err) return err;
    for (idx = 0; (err = pt_rec_next(fs, md, &pos, &rec)) == 1; idx++) {
        int live;
        if (rec.type != PT_REC_ENTRY) continue;
        err = pt_live_map_live(fs, md, &map, idx, &rec, pos, &live);
        if (err) return err;
        if (!live) continue;
        err = pt_each_entry_visit(fs, md, &rec, fn, ctx);
        if (err) return err;
    }
    return err;
}

struct pt_trav {
    int (*cb)(void *ctx, uint32_t block, int is_data);
    void *ctx;
    int include_inflight;
};

static int pt_trav_entry(struct petrel_fs *fs, void *ctx, const struct pt_mdir *md,
                         const struct pt_entry *e)
{
    struct pt_trav *t = (struct pt_trav *)ctx;
    int err;
    (void)md;
    if (PETREL_FS_TYPE_HAS_DATA(e->type))
        return pt_tree_walk(fs, e->root, e->depth, e->direct, e->size, t->cb, t->ctx);
    if (!t->include_inflight) return 0;
    /* a directory head not (yet) threaded is still in use */
    err = t->cb(t->ctx, e->pair[0], 0);
    if (!err) err = t->cb(t->ctx, e->pair[1], 0);
    return err;
}

int pt_traverse(struct petrel_fs *fs, int include_inflight,
                int (*cb)(void *ctx, uint32_t block, int is_data), void *ctx)
{
    struct pt_mdir md;
    struct pt_trav t;
    uint32_t guard;
    int err = pt_mdir_fetch(fs, &md, pt_root_pair, NULL);
    t.cb = cb;
    t.ctx = ctx;
    t.include_inflight = include_inflight;
    for (guard = 0; !err && guard <= fs->block_count; guard++) {
        uint32_t next[2];
        err = cb(ctx, md.pair[0], 0);
        if (!err) err = cb(ctx, md.pair[1], 0);
        if (!err) err = pt_each_entry(fs, &md, pt_trav_entry, &t);
        if (err) return err;
        if (md.next[0] == PT_NULL) break;
        next[0] = md.next[0];
        next[1] = md.next[1];
        err = pt_mdir_fetch(fs, &md, next, NULL);
    }
    if (err) return err;
    if (guard > fs->block_count) return -PT_ECORRUPT;
    return include_inflight ? pt_file_inflight(fs, cb, ctx) : 0;
}

struct pt_user_cb {
    int (*cb)(void *ctx, uint32_t block);
    void *ctx;
};

static int pt_user_adapter(void *ctx, uint32_t block, int is_data)
{
    struct pt_user_cb *u = (struct pt_user_cb *)ctx;
    (void)is_data;
    return u->cb(u->ctx, block);
}

int petrel_fs_traverse(struct petrel_fs *fs, int (*cb)(void *ctx, uint32_t block), void *ctx)
{
    PT_REQUIRE_MOUNTED(fs);
    struct pt_user_cb u;
    u.cb = cb;
    u.ctx = ctx;
    return pt_traverse(fs, 0, pt_user_adapter, &u);
}

static int pt_count(void *ctx, uint32_t block, int is_data)
{
    (void)block;
    (void)is_data;
    (*(int64_t *)ctx)++;
    return 0;
}

int64_t petrel_fs_usage(struct petrel_fs *fs)
{
    PT_REQUIRE_MOUNTED(fs);
    int64_t n = 0;
    int err = pt_traverse(fs, 0, pt_count, &n);
    return err ? err : n;
}

#ifndef PETREL_FS_NO_CHECK /* the switch leaves the consistency check out (fs.h) */
/* ---- check ---- */

struct pt_checker {
    void (*cb)(void *ctx, const char *problem);
    void *ctx;
    void (*progress)(void *ctx, uint64_t blocks);
    void *pctx;
    uint64_t blocks; /* blocks checked so far (pairs count two) */
    uint32_t problems;
    uint32_t win_start; /* double-use window */
};

static void pt_progress(struct pt_checker *c, uint64_t blocks)
{
    c->blocks += blocks;
    if (c->progress) c->progress(c->pctx, c->blocks);
}

static void pt_problem(struct pt_checker *c, const char *msg)
{
    c->problems++;
    if (c->cb) c->cb(c->ctx, msg);
}

/* The root pair's WEAR record in force (docs/SPEC-FS.md 9), if any: one byte per block of
 * the superblock's count after the header, a shift of at most 24, reserved bytes zero.
 * The counts themselves are advisory (any value is valid). */
static int pt_check_wear(struct petrel_fs *fs, const struct pt_mdir *md, struct pt_checker *c)
{
    struct pt_rec_ref rec = {0, 0, 0}, last = {0, 0, 0};
    uint8_t hdr[PT_WEAR_HDR];
    uint32_t pos = 0;
    int err, found = 0;
    while ((err = pt_rec_next(fs, md, &pos, &rec)) == 1) {
        if (rec.type == PT_REC_WEAR) {
            last = rec;
            found = 1;
        }
    }
    if (err < 0) return err;
    if (!found) return 0;
    if (last.len != PT_WEAR_HDR + fs->block_count) {
        pt_problem(c, "erase-count record malformed: not one byte per block");
        return 0;
    }
    err = pt_read(fs, md->pair[0], last.off, hdr, PT_WEAR_HDR, PT_WEAR_HDR);
    if (err) return err;
    if (hdr[4] > 24 || hdr[5] || hdr[6] || hdr[7])
        pt_problem(c, "erase-count record malformed: bad shift or reserved bytes");
    return 0;
}

static int pt_check_entry(struct petrel_fs *fs, void *ctx, const struct pt_mdir *md,
                          const struct pt_entry *e)
{
    struct pt_checker *c = (struct pt_checker *)ctx;
    char msg[160];
    uint64_t hi = md->next_split;
    if (e->hash < md->lo || (md->next_cont && e->hash >= hi)) {
        snprintf(msg, sizeof(msg), "pair {%u,%u}: entry hash %016llx outside the pair's range",
                 (unsigned)md->pair[0], (unsigned)md->pair[1], (unsigned long long)e->hash);
        pt_problem(c, msg);
    }
    if (e->name_len > fs->name_max) {
        snprintf(msg, sizeof(msg), "pair {%u,%u}: name longer than name_max",
                 (unsigned)md->pair[0], (unsigned)md->pair[1]);
        pt_problem(c, msg);
    }
    if (e->type == PETREL_FS_DIR) {
        struct pt_mdir d;
        int err = pt_mdir_fetch(fs, &d, e->pair, NULL);
        if (err || !d.head || d.dirid != e->dirid) {
            snprintf(msg, sizeof(msg), "directory entry in {%u,%u} names pair {%u,%u}: %s",
                     (unsigned)md->pair[0], (unsigned)md->pair[1], (unsigned)e->pair[0],
                     (unsigned)e->pair[1], err ? petrel_strerror(err) : "not its head");
            pt_problem(c, msg);
        }
        return 0;
    }
    {
        uint32_t pld = pt_page_payload(fs), ppb = pt_pages_per_block(fs);
        uint64_t d = (uint64_t)pld * ppb, tree_size = e->size - e->tail_len;
        uint32_t nb = (uint32_t)((tree_size + d - 1) / d), bi;
        if (e->tail_len > fs->inline_max || (e->tail_len && tree_size % pld)) {
            snprintf(msg, sizeof(msg), "file in {%u,%u}: bad inline tail",
                     (unsigned)md->pair[0], (unsigned)md->pair[1]);
            pt_problem(c, msg);
        }
        uint32_t run[64];
        uint8_t run_n = 0;
        uint32_t run_at = 0;
        for (bi = 0; bi < nb; bi++) {
            uint32_t blk, slot, valid;
            int err = 0;
            /* addresses come a page of the index at a time, not a page read per block */
            if (bi < run_at || bi - run_at >= run_n) {
                err = pt_tree_lookup_run(fs, e->root, e->depth, e->direct, bi, run, 64, &run_n);
                run_at = bi;
            }
            blk = err ? PT_NULL : run[bi - run_at];
            if (err) {
                snprintf(msg, sizeof(msg), "file in {%u,%u}: data tree unreadable at block %u: %s",
                         (unsigned)md->pair[0], (unsigned)md->pair[1], (unsigned)bi,
                         petrel_strerror(err));
                pt_problem(c, msg);
                return 0;
            }
            if (blk == PT_NULL) continue;
            pt_progress(c, 1);
            valid = (uint32_t)PT_MIN((uint64_t)ppb, (tree_size - (uint64_t)bi * d + pld - 1) / pld);
            for (slot = 0; slot < valid; slot++) {
                const uint8_t *p;
                err = pt_page_read(fs, blk, slot, &p);
                if (err) {
                    snprintf(msg, sizeof(msg), "file in {%u,%u}: data page %u.%u: %s",
                             (unsigned)md->pair[0], (unsigned)md->pair[1], (unsigned)blk,
                             (unsigned)slot, petrel_strerror(err));
                    pt_problem(c, msg);
                }
            }
        }
    }
    return 0;
}

static int pt_check_mark(void *ctx, uint32_t block, int is_data)
{
    struct petrel_fs *fs = (struct petrel_fs *)((void **)ctx)[0];
    struct pt_checker *c = (struct pt_checker *)((void **)ctx)[1];
    uint32_t rel;
    char msg[96];
    (void)is_data;
    if (block >= fs->block_count) {
        if (c->win_start == 0) {
            snprintf(msg, sizeof(msg), "block address %u out of range", (unsigned)block);
            pt_problem(c, msg);
        }
        return 0;
    }
    if (block < c->win_start || block - c->win_start >= fs->look_size) return 0;
    rel = block - c->win_start;
    if (fs->lookahead[rel / 8] & (1u << (rel % 8))) {
        snprintf(msg, sizeof(msg), "block %u is used twice", (unsigned)block);
        pt_problem(c, msg);
    }
    fs->lookahead[rel / 8] |= (uint8_t)(1u << (rel % 8));
    return 0;
}

/* The directory index (docs/SPEC-FS.md 4.1), checked along the thread walk: at a directory's
 * head, its INDEX record (whole entries, keys increasing); at each continuation pair, the next
 * entry when it names that pair (its key must be the pair's rounded lowest hash). Entries left
 * when the directory ends name pairs not on its chain. */
static int pt_check_index(struct petrel_fs *fs, struct pt_checker *c, const struct pt_mdir *md,
                          uint32_t *block, uint32_t *off, uint32_t *n, uint32_t *i)
{
    uint8_t e[PT_INDEX_ENTRY];
    uint32_t j, prev = 0, key, p[2];
    int err, ok;
    if (md->head || pt_pair_eq(md->pair, pt_root_pair)) {
        if (*i < *n) pt_problem(c, "directory index names a pair not on its directory's chain");
        *block = md->pair[0];
        *off = md->index_off;
        *n = md->index_len / PT_INDEX_ENTRY;
        *i = 0;
        if (md->index_len % PT_INDEX_ENTRY) {
            pt_problem(c, "directory index record malformed");
            *n = 0;
        }
        for (j = 0; j < *n; j++) {
            err = pt_read(fs, *block, *off + j * PT_INDEX_ENTRY, e, PT_INDEX_ENTRY,
                          PT_INDEX_ENTRY);
            if (err) return err;
            key = pt_get_le32(e);
            if (j && key <= prev) {
                pt_problem(c, "directory index entries out of order");
                *n = 0;
                break;
            }
            prev = key;
        }
        return 0;
    }
    if (md->index_len) pt_problem(c, "index record in a pair that is not a directory head");
    if (*i >= *n) return 0;
    err = pt_read(fs, *block, *off + *i * PT_INDEX_ENTRY, e, PT_INDEX_ENTRY, PT_INDEX_ENTRY);
    if (err) return err;
    p[0] = pt_get_le32(e + 4);
    p[1] = pt_get_le32(e + 8);
    if (!pt_pair_eq(p, md->pair)) return 0;
    if (pt_get_le32(e) != pt_index_lo_hi(md->lo, &ok) || !ok)
        pt_problem(c, "a directory index entry's hash does not match its pair");
    (*i)++;
    return 0;
}

int petrel_fs_check(struct petrel_fs *fs, void (*cb)(void *ctx, const char *problem), void *ctx)
{
    return petrel_fs_check_progress(fs, cb, ctx, NULL, NULL);
}

int petrel_fs_check_progress(struct petrel_fs *fs, void (*cb)(void *ctx, const char *problem),
                             void *ctx, void (*progress)(void *pctx, uint64_t blocks),
                             void *pctx)
{
    PT_REQUIRE_MOUNTED(fs);
    struct pt_checker c;
    struct pt_mdir md;
    struct pt_mstate ms;
    struct petrel_fs_gstate walked;
    char msg[160];
    uint32_t guard, w, max_dirid = 0, fg_head[2] = {PT_NULL, PT_NULL}, fg_off = 0, fg_n = 0;
    uint32_t fg_i = 0, fg_block, ix_block = PT_NULL, ix_off = 0, ix_n = 0, ix_i = 0;
    int err, ms_found, fg_found, fg_in;
    void *pair_ctx[2];

    memset(&c, 0, sizeof(c));
    c.cb = cb;
    c.ctx = ctx;
    c.progress = progress;
    c.pctx = pctx;
    err = pt_mdir_fetch(fs, &md, pt_root_pair, NULL);
    if (err) {
        pt_problem(&c, "root pair unreadable");
        return err == -PT_ECORRUPT ? -PT_ECORRUPT : err;
    }
    ms_found = pt_mstate_read(fs, &md, &ms);
    if (ms_found == -PT_ECORRUPT) pt_problem(&c, "mount-state record malformed");
    else if (ms_found < 0) return ms_found;
    /* saved fingers (trusted only with a clean record): each names, in order, a pair of its
     * directory and a bound at or above that pair's lowest hash */
    fg_block = md.pair[0];
    fg_found = pt_fingers_locate(fs, &md, fg_head, &fg_off, &fg_n);
    if (fg_found == -PT_ECORRUPT) pt_problem(&c, "fingers record malformed");
    else if (fg_found < 0) return fg_found;
    if (fg_found != 1 || ms_found != 1 || !ms.clean) fg_n = 0;
    err = pt_check_wear(fs, &md, &c);
    if (err) return err;
    fg_in = fg_n && pt_pair_eq(fg_head, pt_root_pair);
    memset(&walked, 0, sizeof(walked));
    for (guard = 0; guard <= fs->block_count; guard++) {
        uint32_t next[2];
        pt_progress(&c, 2);
        pt_gstate_xor(&walked, &md.gdelta);
        if (md.head && md.dirid > max_dirid) max_dirid = md.dirid;
        err = pt_check_index(fs, &c, &md, &ix_block, &ix_off, &ix_n, &ix_i);
        if (err) return err;
        if (md.head) {
            if (fg_in && fg_i < fg_n) pt_problem(&c, "fingers name pairs not in their directory");
            fg_in = fg_n && pt_pair_eq(fg_head, md.pair);
        } else if (fg_in && fg_i < fg_n && !pt_pair_eq(md.pair, pt_root_pair)) {
            uint8_t e[PT_FINGER_SIZE];
            uint32_t fp[2];
            err = pt_read(fs, fg_block, fg_off + PT_FINGER_SIZE * fg_i, e, PT_FINGER_SIZE,
                          PT_FINGER_SIZE);
            if (err) return err;
            fp[0] = pt_get_le32(e + 4);
            fp[1] = pt_get_le32(e + 8);
            if (pt_pair_eq(fp, md.pair)) {
                if (((uint64_t)pt_get_le32(e) << 32) < md.lo ||
                    ((uint64_t)pt_get_le32(e) << 32) - md.lo > 0xffffffffull)
                    pt_problem(&c, "a finger's hash bound does not match its pair");
                fg_i++;
            }
        }
        err = pt_each_entry(fs, &md, pt_check_entry, &c);
        if (err) {
            snprintf(msg, sizeof(msg), "pair {%u,%u}: entries unreadable: %s",
                     (unsigned)md.pair[0], (unsigned)md.pair[1], petrel_strerror(err));
            pt_problem(&c, msg);
        }
        if (md.next[0] == PT_NULL) break;
        next[0] = md.next[0];
        next[1] = md.next[1];
        {
            uint64_t split = md.next_split;
            int cont = md.next_cont;
            err = pt_mdir_fetch(fs, &md, next, NULL);
            if (err) {
                snprintf(msg, sizeof(msg), "pair {%u,%u} in the thread is unreadable: %s",
                         (unsigned)next[0], (unsigned)next[1], petrel_strerror(err));
                pt_problem(&c, msg);
                break;
            }
            if (cont && (md.head || md.lo != split)) {
                snprintf(msg, sizeof(msg), "pair {%u,%u}: continuation range mismatch",
                         (unsigned)next[0], (unsigned)next[1]);
                pt_problem(&c, msg);
            }
            if (!cont && !md.head) {
                snprintf(msg, sizeof(msg), "pair {%u,%u}: thread reaches a pair of no directory",
                         (unsigned)next[0], (unsigned)next[1]);
                pt_problem(&c, msg);
            }
        }
    }
    if (fg_in && fg_i < fg_n) pt_problem(&c, "fingers name pairs not in their directory");
    if (ix_i < ix_n) pt_problem(&c, "directory index names a pair not on its directory's chain");
    if (guard > fs->block_count) pt_problem(&c, "the thread of metadata pairs loops");
    if (fs->gstate.move_pending) pt_problem(&c, "a rename is half done");
    if (fs->gstate.orphans) pt_problem(&c, "orphaned directories are pending");
    /* what the mount took (from the record or its walk) against the pairs themselves */
    if (memcmp(&walked, &fs->gstate, sizeof(walked)) != 0)
        pt_problem(&c, "global state in use differs from the pairs' deltas");
    if (fs->next_dirid <= max_dirid) {
        snprintf(msg, sizeof(msg), "directory id %u in use, next id %u", (unsigned)max_dirid,
                 (unsigned)fs->next_dirid);
        pt_problem(&c, msg);
    }
    if (ms_found == 1 && ms.clean) {
        if (!pt_gstate_zero(&walked))
            pt_problem(&c, "mount-state record is stale: clean, but an operation is half done");
        if (ms.next_dirid <= max_dirid) {
            snprintf(msg, sizeof(msg),
                     "mount-state record is stale: clean, next directory id %u, id %u in use",
                     (unsigned)ms.next_dirid, (unsigned)max_dirid);
            pt_problem(&c, msg);
        }
        if (ms.seed >= fs->block_count) pt_problem(&c, "mount-state record: seed out of range");
    }

    /* blocks used twice, one lookahead window at a time */
    pair_ctx[0] = fs;
    pair_ctx[1] = &c;
    for (w = 0; fs->look_size && w < fs->block_count && c.problems < 1000; w += fs->look_size) {
        c.win_start = w;
        memset(fs->lookahead, 0, (fs->look_size + 7) / 8);
        err = pt_traverse(fs, 0, pt_check_mark, pair_ctx);
        if (err) {
            snprintf(msg, sizeof(msg), "traversal failed: %s", petrel_strerror(err));
            pt_problem(&c, msg);
            break;
        }
    }
    /* the allocator's window was used as scratch: rescan at the next allocation */
    if (fs->block_count) pt_alloc_drop_window(fs);
    return c.problems ? -PT_ECORRUPT : 0;
}
#endif /* PETREL_FS_NO_CHECK */
