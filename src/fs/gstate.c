/*
 * Global state repairs: finishing a half-done rename and reclaiming orphaned directories.
 *
 * Owns the meaning of the move and orphan fields of struct petrel_fs_gstate. A cross-pair
 * rename first commits the new entry together with "move pending: source (pair, hash)";
 * mount deletes that source, completing the rename. Directory link and unlink steps that
 * touch two pairs raise the orphan count in their first commit; pt_fs_repair then walks the
 * thread and, for every directory head, finds the entry naming its dirid: no entry means
 * the head is an orphan and its pairs are unlinked; an entry naming another pair means the
 * head moved and the entry is pointed at it. Runs at mount and after any step that left
 * orphans. Every fix is one commit; the walk restarts after each, so a power cut anywhere
 * leaves a state the next mount repairs again.
 */
#include "fs/fs_internal.h"

static const uint32_t pt_root_pair[2] = {0, 1};

/* Unlink the directory whose head is `head` (and its continuation pairs) from the thread.
 * The pairs' global-state deltas move into the unlinking commit. */
/* The directory's pairs from head: the XOR of their global-state deltas, and the thread
 * link after the last of them. A helper, so its fetched pair is not under the commit. */
static PT_NOINLINE int pt_dir_pairs_sum(struct petrel_fs *fs, const uint32_t head[2],
                                        struct petrel_fs_gstate *removed, uint32_t after[2])
{
    struct pt_mdir seg;
    uint32_t guard;
    int err = pt_mdir_fetch(fs, &seg, head, NULL);
    if (err) return err;
    memset(removed, 0, sizeof(*removed));
    for (guard = 0;; guard++) {
        uint32_t next[2];
        pt_gstate_xor(removed, &seg.gdelta);
        if (!seg.next_cont || guard > fs->block_count) break;
        next[0] = seg.next[0];
        next[1] = seg.next[1];
        err = pt_mdir_fetch(fs, &seg, next, NULL);
        if (err) return err;
    }
    after[0] = seg.next[0];
    after[1] = seg.next[1];
    return 0;
}

int pt_unlink_dir(struct petrel_fs *fs, const uint32_t head[2])
{
    struct pt_mdir pred;
    struct petrel_fs_gstate removed;
    struct pt_rec r;
    uint8_t th[17];
    uint32_t after[2];
    int err = pt_thread_pred(fs, head, &pred, NULL);
    if (err) return err;
    /* the directory's pairs leave the thread: what a walk learnt of them (fingers, the index
     * state of index.c) must not outlive them, whoever takes their blocks next */
    fs->layout_gen++;
    err = pt_dir_pairs_sum(fs, head, &removed, after);
    if (err) return err;
    pt_put_le32(th, after[0]);
    pt_put_le32(th + 4, after[1]);
    th[8] = pred.next_cont;
    pt_put_le64(th + 9, pred.next_split);
    memset(&r, 0, sizeof(r));
    r.type = PT_REC_THREAD;
    r.seg[0] = th;
    r.seglen[0] = 17;
    if (fs->gpending.orphans > 0) fs->gpending.orphans--;
    fs->layout_gen++; /* the unlinked pairs' blocks become free */
    pt_gstate_xor(&fs->gstate, &removed);
    err = pt_fs_commit(fs, &pred, &r, 1);
    if (err) pt_gstate_xor(&fs->gstate, &removed);
    return err;
}

/* Find the live directory entry naming dirid anywhere: fills md (its pair) and e. */
static PT_NOINLINE int pt_find_dirid(struct petrel_fs *fs, uint32_t dirid,
                                     const uint32_t head[2], struct pt_mdir *md,
                                     struct pt_entry *e)
{
    uint32_t guard;
    int err = pt_mdir_fetch(fs, md, pt_root_pair, NULL), found = 0;
    struct pt_mdir fmd;
    struct pt_entry fe;
    for (guard = 0; !err && guard <= fs->block_count; guard++) {
        struct pt_rec_ref rec = {0, 0, 0};
        uint32_t pos = 0, next[2];
        while ((err = pt_rec_next(fs, md, &pos, &rec)) == 1) {
            int live;
            if (rec.type != PT_REC_ENTRY) continue;
            err = pt_entry_decode(fs, md->pair[0], &rec, e);
            if (err) return err;
            if (e->type != PETREL_FS_DIR || e->dirid != dirid) continue;
            err = pt_rec_live(fs, md, &rec, pos, NULL, 0, &live);
            if (err) return err;
            if (!live) continue;
            /* an entry naming another pair is the one to fix (during a rename two
             * entries may name the directory) */
            if (!pt_pair_eq(e->pair, head)) return 0;
            fmd = *md;
            fe = *e;
            found = 1;
        }
        if (err < 0) return err;
        if (md->next[0] == PT_NULL) {
            if (!found) return -PT_ENOENT;
            *md = fmd;
            *e = fe;
            return 0;
        }
        next[0] = md->next[0];
        next[1] = md->next[1];
        err = pt_mdir_fetch(fs, md, next, NULL);
    }
    return err ? err : -PT_ECORRUPT;
}

/* Point a directory entry at a new head pair. */
static PT_NOINLINE int pt_entry_repoint(struct petrel_fs *fs, struct pt_mdir *md,
                                        const struct pt_entry *e, const uint32_t pair[2])
{
    uint8_t dst[PT_DIRSTRUCT_SIZE];
    struct pt_rec r;
    uint32_t len = e->rec_len;
    int err;
    if (len < PT_ENTRY_FIXED + PT_DIRSTRUCT_SIZE || len > PT_ENTRY_FIXED + 255 + PT_DIRSTRUCT_SIZE)
        return -PT_ECORRUPT;
    err = pt_read(fs, e->block, e->rec_off + len - PT_DIRSTRUCT_SIZE, dst, PT_DIRSTRUCT_SIZE,
                  PT_DIRSTRUCT_SIZE);
    if (err) return err;
    pt_put_le32(dst, pair[0]);
    pt_put_le32(dst + 4, pair[1]);
    /* hash, type and name copied from the record on the device (md's newest log block, which
     * the commit appends to or compacts out of), then the new pair and the dirid */
    memset(&r, 0, sizeof(r));
    r.type = PT_REC_ENTRY;
    r.hash = e->hash;
    r.copy_at = 0;
    r.copy_block = e->block;
    r.copy_off = e->rec_off;
    r.copy_len = len - PT_DIRSTRUCT_SIZE;
    r.seg[0] = dst;
    r.seglen[0] = PT_DIRSTRUCT_SIZE;
    if (fs->gpending.orphans > 0) fs->gpending.orphans--;
    return pt_fs_commit(fs, md, &r, 1);
}

/* One pass: fix the first problem found. Returns 1 if it fixed one, 0 if clean. */
/* The head q (directory dirid at pair): -PT_ENOENT when no entry names its dirid (an
 * orphan), 1 after pointing an entry that names another pair at it, 0 when it is linked. A
 * helper, so the entry found is not on the pass's frame under the unlink's commit. */
static PT_NOINLINE int pt_repair_head(struct petrel_fs *fs, uint32_t dirid, const uint32_t pair[2])
{
    struct pt_mdir emd;
    struct pt_entry e;
    int err = pt_find_dirid(fs, dirid, pair, &emd, &e);
    if (err) return err;
    if (pt_pair_eq(e.pair, pair)) return 0;
    petrel_log(PT_LOG_INFO, "fs", "directory %u moved to {%u,%u}: fixing entry", (unsigned)dirid,
               (unsigned)pair[0], (unsigned)pair[1]);
    err = pt_entry_repoint(fs, &emd, &e, pair);
    return err ? err : 1;
}

/* What a repair pass needs of the pair at `pair`: whether it is a directory head (and its
 * dirid), its blocks newest first, and the next pair on the thread. A helper, so the fetched
 * pair is not on the pass's frame under the repairs it commits (docs/FIRMWARE.md, stack). */
static PT_NOINLINE int pt_repair_peek(struct petrel_fs *fs, uint32_t pair[2], uint32_t *dirid,
                                      uint32_t next[2])
{
    struct pt_mdir q;
    int err = pt_mdir_fetch(fs, &q, pair, NULL);
    if (err) return err;
    pair[0] = q.pair[0];
    pair[1] = q.pair[1];
    next[0] = q.next[0];
    next[1] = q.next[1];
    *dirid = q.dirid;
    return q.head;
}

static PT_NOINLINE int pt_repair_pass(struct petrel_fs *fs)
{
    uint32_t guard, head[2], next[2], dirid;
    int err;
    memcpy(head, pt_root_pair, sizeof(head));
    for (guard = 0; guard <= fs->block_count; guard++) {
        err = pt_repair_peek(fs, head, &dirid, next);
        if (err < 0) return err;
        if (err && !pt_pair_eq(head, pt_root_pair)) {
            err = pt_repair_head(fs, dirid, head);
            if (err == -PT_ENOENT) {
                petrel_log(PT_LOG_INFO, "fs", "reclaiming orphan directory {%u,%u}",
                           (unsigned)head[0], (unsigned)head[1]);
                err = pt_unlink_dir(fs, head);
                return err ? err : 1;
            }
            if (err) return err < 0 ? err : 1;
        }
        if (next[0] == PT_NULL) return 0;
        memcpy(head, next, sizeof(head));
    }
    return -PT_ECORRUPT;
}

static int pt_fs_repair_once(struct petrel_fs *fs, int finish_move);

/* Repairs run one at a time: a repair commit that moves a head only raises the orphan
 * count, which the running repair loop then handles (no nesting, no recursion). A pending
 * move is finished only at mount (finish_move): at run time it belongs to the rename in
 * progress. */
int pt_fs_repair(struct petrel_fs *fs, int finish_move)
{
    int err;
    if (fs->repairing) return 0;
    fs->repairing = 1;
    err = pt_fs_repair_once(fs, finish_move);
    fs->repairing = 0;
    return err;
}

/* Finish a half-done rename: delete its source entry (a helper, so its pair is not under
 * the passes that follow). */
static PT_NOINLINE int pt_finish_move(struct petrel_fs *fs)
{
    int err;
    struct pt_mdir md;
    uint32_t pair[2];
    uint64_t hash = fs->gpending.move_hash;
    memcpy(pair, fs->gpending.move_pair, sizeof(pair));
    petrel_log(PT_LOG_INFO, "fs", "finishing an interrupted rename");
    memset(&fs->gpending.move_pair, 0, sizeof(fs->gpending.move_pair));
    fs->gpending.move_hash = 0;
    fs->gpending.move_pending = 0;
    err = pt_mdir_fetch(fs, &md, pair, &hash);
    if (err) return err;
    if (md.found == PT_REC_ENTRY) {
        struct pt_rec r;
        uint8_t hb[8];
        pt_put_le64(hb, hash);
        memset(&r, 0, sizeof(r));
        r.type = PT_REC_DELETE;
        r.hash = hash;
        r.seg[0] = hb;
        r.seglen[0] = 8;
        return pt_fs_commit(fs, &md, &r, 1);
    }
    return pt_fs_commit(fs, &md, NULL, 0);
}

/* The global state's orphan count is zero again: a commit to the root pair carries it. */
static PT_NOINLINE int pt_orphans_cleared(struct petrel_fs *fs)
{
    struct pt_mdir md;
    int err;
    fs->gpending.orphans = 0;
    err = pt_mdir_fetch(fs, &md, pt_root_pair, NULL);
    return err ? err : pt_fs_commit(fs, &md, NULL, 0);
}

static int pt_fs_repair_once(struct petrel_fs *fs, int finish_move)
{
    int err, i;
    if (finish_move && fs->gpending.move_pending) {
        err = pt_finish_move(fs);
        if (err) return err;
    }
    for (i = 0; fs->gpending.orphans > 0 && i < 256; i++) {
        err = pt_repair_pass(fs);
        if (err < 0) return err;
        if (err == 0) {
            err = pt_orphans_cleared(fs);
            if (err) return err;
        }
    }
    return 0;
}
