/*
 * Filesystem-level commits: every change to a metadata pair goes through pt_fs_commit, which
 * adds the global-state delta the commit must carry and repairs the references to a pair
 * that moved to a fresh block (bad block, wear leveling).
 *
 * Owns fs->gstate / fs->gpending bookkeeping and the relocation fix-up. Invariants: the
 * on-disk global state is the XOR of the GDELTA records of every pair in the thread, and
 * fs->gstate equals it after every successful commit; a moved pair is re-linked from its
 * thread predecessor first (one atomic commit), and a moved directory head is recorded as
 * an orphan fix in the global state, repaired by pt_fs_repair, so a power cut between the
 * steps is recovered at mount. A continuation pair left without entries is dropped from the
 * thread by one commit to its predecessor, which takes over its hash range and its share of
 * the global state. Loops are bounded; nothing recurses.
 */
#include "fs/fs_internal.h"

void pt_handles_relocate(struct petrel_fs *fs, const uint32_t old[2], const uint32_t nw[2])
{
    struct petrel_fs_handle *h;
    for (h = fs->handles; h; h = h->next) {
        if (h->kind == PETREL_FS_DIR) {
            struct petrel_fs_dir *d = (struct petrel_fs_dir *)(void *)h;
            if (pt_pair_eq(d->head, old)) memcpy(d->head, nw, sizeof(d->head));
            if (pt_pair_eq(d->pair, old)) memcpy(d->pair, nw, sizeof(d->pair));
        } else {
            struct petrel_fs_file *f = (struct petrel_fs_file *)(void *)h;
            if (pt_pair_eq(f->head, old)) memcpy(f->head, nw, sizeof(f->head));
        }
    }
}

static int pt_is_dir_head(const struct pt_mdir *md)
{
    static const uint32_t root[2] = {0, 1};
    return md->head || pt_pair_eq(md->pair, root);
}

/* Find the pair whose thread pointer names `pair`; dhead (when not NULL) is set to the head
 * of pred's directory (the pairs of a directory are consecutive on the thread). */
int pt_thread_pred(struct petrel_fs *fs, const uint32_t pair[2], struct pt_mdir *pred,
                   uint32_t dhead[2])
{
    static const uint32_t root[2] = {0, 1};
    uint32_t guard;
    int err = pt_mdir_fetch(fs, pred, root, NULL);
    for (guard = 0; !err && guard < fs->block_count; guard++) {
        if (dhead && pt_is_dir_head(pred)) {
            dhead[0] = pred->pair[0];
            dhead[1] = pred->pair[1];
        }
        if (pred->next[0] == PT_NULL) return -PT_ENOENT;
        if (pt_pair_eq(pred->next, pair)) return 0;
        {
            uint32_t next[2];
            next[0] = pred->next[0];
            next[1] = pred->next[1];
            err = pt_mdir_fetch(fs, pred, next, NULL);
        }
    }
    return err ? err : -PT_ECORRUPT;
}

/* Commit recs plus the pending global-state delta; no relocation handling. */
static int pt_commit_raw(struct petrel_fs *fs, struct pt_mdir *md, const struct pt_rec *recs, int n,
                         uint32_t old[2], struct pt_split_note *split)
{
    struct petrel_fs_gstate want = fs->gpending, d = fs->gpending;
    int err;
    pt_gstate_xor(&d, &fs->gstate);
    err = pt_mdir_commit(fs, md, recs, n, pt_gstate_zero(&d) ? NULL : &d, old, split);
    if (err == 0) fs->gstate = want;
    return err;
}

/* Whether the index of the directory whose head is `head` names pair: 1 yes, 0 no (a
 * helper, so the head's pair is not on the relinking frame under its commits). */
static PT_NOINLINE int pt_index_names_at(struct petrel_fs *fs, const uint32_t head[2],
                                         const uint32_t pair[2])
{
    struct pt_mdir hmd;
    int err = pt_mdir_fetch(fs, &hmd, head, NULL);
    return err ? err : pt_index_names(fs, &hmd, pair);
}

/*
 * Relink a moved pair (old -> nw, lowest hash lo) from its thread predecessor pred. When the
 * pair is a continuation pair named by its directory's index, the entry must not outlive the
 * link it names (docs/SPEC-FS.md 4.1): when pred is the head, one commit rewrites both;
 * otherwise the head is committed without the entry first, then pred, then the entry is added
 * back with the new address. *old2 reports pred's own move.
 */
static PT_NOINLINE int pt_relink_commit(struct petrel_fs *fs, struct pt_mdir *pred,
                                        int index_head, const uint32_t old[2],
                                        const uint32_t nw[2], uint64_t lo, uint32_t old2[2])
{
    struct pt_rec r[2];
    uint8_t th[17], e[PT_INDEX_ENTRY];
    int n = 1, err;
    if (index_head) {
        err = pt_index_rec(fs, pred, old, nw, lo, &r[1], e);
        if (err < 0) return err;
        n += err;
        fs->ix_known = 0; /* where the head's record is may change */
        if (err)
            petrel_log(PT_LOG_DEBUG, "fs", "index of {%u,%u}: move {%u,%u} with its link",
                       (unsigned)pred->pair[0], (unsigned)pred->pair[1], (unsigned)old[0],
                       (unsigned)old[1]);
    }
    pt_put_le32(th, nw[0]);
    pt_put_le32(th + 4, nw[1]);
    th[8] = pred->next_cont;
    pt_put_le64(th + 9, pred->next_split);
    memset(&r[0], 0, sizeof(r[0]));
    r[0].type = PT_REC_THREAD;
    r[0].seg[0] = th;
    r[0].seglen[0] = 17;
    return pt_commit_raw(fs, pred, r, n, old2, NULL);
}

/* The index steps around the relinking commit, and that commit (pt_relink_commit: a helper, so
 * its records are not on the frame under the index's own commits). */
static int pt_relink(struct petrel_fs *fs, struct pt_mdir *pred, uint32_t dhead[2], int was_head,
                     const uint32_t old[2], const uint32_t nw[2], uint64_t lo, uint32_t old2[2])
{
    int readd = 0, index_head = 0, err;
    if (!was_head && pred->next_cont && fs->index_ok) {
        if (pt_is_dir_head(pred)) {
            index_head = 1;
        } else {
            uint32_t at[2];
            err = pt_index_names_at(fs, dhead, old);
            if (err < 0) return err;
            if (err) {
                at[0] = pred->pair[0];
                at[1] = pred->pair[1];
                err = pt_index_change(fs, dhead, old, NULL, 0);
                if (err) return err;
                err = pt_mdir_fetch(fs, pred, at, NULL); /* pred is not the head: unmoved */
                if (err) return err;
                readd = 1;
            }
        }
    }
    err = pt_relink_commit(fs, pred, index_head, old, nw, lo, old2);
    if (err) return err;
    if (readd && old2[0] == PT_NULL) {
        /* the pair is on the chain at nw (unless pred moved too: its new block is not linked
         * yet, so the entry waits for a later split): an entry may name it again */
        err = pt_index_change(fs, dhead, NULL, nw, lo);
        if (err)
            petrel_log(PT_LOG_INFO, "fs", "index entry of a moved pair not re-added: %s",
                       petrel_strerror(err));
    }
    return 0;
}

/* After a commit that moved md from old: the relinking of every pair that moved with it;
 * sets *need_repair when a directory head moved (its entry is pointed at it by
 * pt_fs_repair). A helper, so that its frame (a predecessor pair) is not under the commit
 * nor under the repair, which commits too (docs/FIRMWARE.md, stack). */
static PT_NOINLINE int pt_commit_relink(struct petrel_fs *fs, struct pt_mdir *md,
                                        const uint32_t old[2], int *need_repair)
{
    uint32_t cur_old[2], cur_new[2];
    int err, was_head, guard;
    uint64_t cur_lo;
    memcpy(cur_old, old, sizeof(cur_old));
    memcpy(cur_new, md->pair, sizeof(cur_new));
    was_head = md->head;
    cur_lo = md->lo;
    for (guard = 0; guard < 64; guard++) {
        struct pt_mdir pred;
        uint32_t old2[2], dhead[2] = {PT_NULL, PT_NULL};
        petrel_log(PT_LOG_INFO, "fs", "pair {%u,%u} moved to {%u,%u}", (unsigned)cur_old[0],
                   (unsigned)cur_old[1], (unsigned)cur_new[0], (unsigned)cur_new[1]);
        pt_handles_relocate(fs, cur_old, cur_new);
        if (fs->gpending.move_pending && pt_pair_eq(fs->gpending.move_pair, cur_old))
            memcpy(fs->gpending.move_pair, cur_new, sizeof(cur_new));
        err = pt_thread_pred(fs, cur_old, &pred, dhead);
        if (err) return err == -PT_ENOENT ? -PT_ECORRUPT : err;
        if (was_head) {
            fs->gpending.orphans++;
            *need_repair = 1;
        }
        err = pt_relink(fs, &pred, dhead, was_head, cur_old, cur_new, cur_lo, old2);
        if (err) return err;
        if (old2[0] == PT_NULL) break;
        memcpy(cur_old, old2, sizeof(old2));
        memcpy(cur_new, pred.pair, sizeof(cur_new));
        was_head = pt_is_dir_head(&pred);
        cur_lo = pred.lo;
    }
    return 0;
}

int pt_fs_commit(struct petrel_fs *fs, struct pt_mdir *md, const struct pt_rec *recs, int n)
{
    uint32_t ihead[2], old[2];
    int err, need_repair = 0, track;
    struct pt_split_note split;

    if (fs->readonly) return -PT_EROFS;
    if (fs->ms_clean) {
        /* the clean mount-state record would go stale: a changing call that did not mark
         * the session dirty first (mstate.c) is a bug, refused before it writes */
        petrel_log(PT_LOG_ERROR, "fs", "commit before the dirty mark refused");
        return -PT_EINVAL;
    }
    /* a split of the pair the last walk ended at, far enough from the nearest index entry
     * (ix_hops), gives the index a new entry, after the commit that links it */
    track = fs->index_ok && !fs->ix_busy && fs->ix_gen == fs->layout_gen &&
            pt_pair_eq(md->pair, fs->ix_pair) && fs->ix_hops + 1 >= PT_INDEX_HOPS;
    memcpy(ihead, fs->ix_head, sizeof(ihead));
    err = pt_commit_raw(fs, md, recs, n, old, track ? &split : NULL);
    if (err) {
        if (err == -PT_EIO) {
            petrel_log(PT_LOG_ERROR, "fs", "metadata cannot be written: read-only");
        }
        return err;
    }
    if (old[0] != PT_NULL) {
        track = 0; /* a move may have moved the head too: no entry this time */
        err = pt_commit_relink(fs, md, old, &need_repair);
        if (err) return err;
    }
    if (need_repair) {
        err = pt_fs_repair(fs, 0);
        if (err) return err;
        /* the caller's pair may have been rewritten by the repair */
        err = pt_mdir_refetch(fs, md, NULL);
        if (err) return err;
    }
    if (track && split.valid) {
        /* the new pair is linked and on the chain: an entry may name it (best effort: a
         * missing entry costs reads only) */
        int ierr = pt_index_change(fs, ihead, NULL, split.pair, split.lo);
        if (ierr) petrel_log(PT_LOG_INFO, "fs", "index entry not added: %s", petrel_strerror(ierr));
        if (!ierr && pt_pair_eq(md->pair, ihead)) err = pt_mdir_refetch(fs, md, NULL);
    }
    return err;
}

int pt_drop_if_empty(struct petrel_fs *fs, const struct pt_mdir *md)
{
    static const uint32_t root[2] = {0, 1};
    struct petrel_fs_handle *h;
    struct pt_mdir pred;
    struct pt_rec r[2];
    uint8_t th[17], e[PT_INDEX_ENTRY];
    uint32_t dhead[2] = {PT_NULL, PT_NULL};
    int err, n = 1;
    if (md->head || pt_pair_eq(md->pair, root)) return 0; /* heads and the root stay */
    if ((fs->gstate.move_pending && pt_pair_eq(fs->gstate.move_pair, md->pair)) ||
        (fs->gpending.move_pending && pt_pair_eq(fs->gpending.move_pair, md->pair)))
        return 0;
    for (h = fs->handles; h; h = h->next)
        if (h->kind == PETREL_FS_DIR &&
            pt_pair_eq(((struct petrel_fs_dir *)(void *)h)->pair, md->pair))
            return 0; /* a reader stands on it: dropped at a later removal */
    err = pt_mdir_has_entries(fs, md);
    if (err != 0) return err < 0 ? err : 0;
    err = pt_thread_pred(fs, md->pair, &pred, dhead);
    if (err) return err == -PT_ENOENT ? -PT_ECORRUPT : err;
    if (!pred.next_cont) return 0; /* not a continuation of pred's directory */
    if (fs->index_ok && pt_is_dir_head(&pred)) {
        /* the head's own index loses the entry in the commit that unlinks the pair */
        err = pt_index_rec(fs, &pred, md->pair, NULL, 0, &r[1], e);
        if (err < 0) return err;
        n += err;
        fs->ix_known = 0; /* where the head's record is may change */
        if (err)
            petrel_log(PT_LOG_DEBUG, "fs", "index of {%u,%u}: drop {%u,%u} with its link",
                       (unsigned)pred.pair[0], (unsigned)pred.pair[1], (unsigned)md->pair[0],
                       (unsigned)md->pair[1]);
    } else if (fs->index_ok) {
        /* the entry goes first: an entry never names a pair off its chain */
        uint32_t at[2];
        at[0] = pred.pair[0];
        at[1] = pred.pair[1];
        err = pt_index_change(fs, dhead, md->pair, NULL, 0);
        if (err) return err;
        err = pt_mdir_fetch(fs, &pred, at, NULL);
        if (err) return err;
    }
    /* pred now runs to where the dropped pair ran, and carries its global-state delta */
    pt_put_le32(th, md->next[0]);
    pt_put_le32(th + 4, md->next[1]);
    th[8] = md->next_cont;
    pt_put_le64(th + 9, md->next_split);
    memset(&r[0], 0, sizeof(r[0]));
    r[0].type = PT_REC_THREAD;
    r[0].seg[0] = th;
    r[0].seglen[0] = 17;
    fs->layout_gen++;
    pt_gstate_xor(&fs->gstate, &md->gdelta);
    err = pt_fs_commit(fs, &pred, r, n);
    /* undo only when the commit itself did not land (a failed fix-up after it keeps it) */
    if (err && memcmp(&fs->gstate, &fs->gpending, sizeof(fs->gstate)) != 0)
        pt_gstate_xor(&fs->gstate, &md->gdelta);
    /* the predecessor's own link went with its commit; the dropped pair leaves the thread */
    pt_links_forget(fs, md->pair);
    return err;
}
