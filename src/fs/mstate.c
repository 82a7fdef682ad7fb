/*
 * The mount-state record (docs/SPEC-FS.md "Mount state"): what the mount walk would compute,
 * kept in the root pair so that a mount of a cleanly unmounted image reads the superblock's
 * pair only.
 *
 * Owns the MSTATE record and the session protocol around it. The record holds a clean/dirty
 * flag, the next directory id and the allocator seed; "clean" also says that the global state
 * (the XOR of every pair's deltas) is zero: nothing half done. Invariant: while the record in
 * force says "clean", no pair has changed since it was written, so its totals are the walk's.
 * Kept by three rules:
 * (1) every public call that may commit first makes the record "dirty" durably
 * (pt_mstate_mark_dirty: one root commit and a device sync, once per session), before its
 * lookups, so no caller holds a root pair fetched before the mark; (2) pt_fs_commit refuses
 * to commit while the record is clean (an assertion of rule 1); (3) unmount syncs, then
 * commits "clean" with the totals of the session (pt_mstate_mark_clean). A mount that finds
 * "dirty" (a session cut by power loss) walks, as a 2.x mount always did.
 */
#include "fs/fs_internal.h"

static const uint32_t pt_root_pair[2] = {0, 1};

void pt_mstate_encode(uint8_t *p, const struct pt_mstate *m)
{
    memset(p, 0, PT_MSTATE_SIZE);
    p[0] = m->clean ? PT_MSTATE_CLEAN : PT_MSTATE_DIRTY;
    pt_put_le32(p + 4, m->next_dirid);
    pt_put_le32(p + 8, m->seed);
}

int pt_mstate_decode(struct pt_mstate *m, const uint8_t *p, uint32_t len)
{
    memset(m, 0, sizeof(*m));
    if (len != PT_MSTATE_SIZE) return -PT_ECORRUPT;
    if (p[0] != PT_MSTATE_CLEAN && p[0] != PT_MSTATE_DIRTY) return -PT_ECORRUPT;
    if (p[1] || p[2] || p[3]) return -PT_ECORRUPT;
    m->clean = p[0] == PT_MSTATE_CLEAN;
    m->next_dirid = pt_get_le32(p + 4);
    m->seed = pt_get_le32(p + 8);
    if (m->clean && m->next_dirid == 0) return -PT_ECORRUPT; /* ids start at 1 */
    return 0;
}

/* The record in force in the root pair md: 1 found (decoded into m), 0 none, or an error
 * (-PT_ECORRUPT for a malformed record). */
int pt_mstate_read(struct petrel_fs *fs, const struct pt_mdir *md, struct pt_mstate *m)
{
    struct pt_rec_ref rec = {0, 0, 0}, last = {0, 0, 0};
    uint8_t buf[PT_MSTATE_SIZE];
    uint32_t pos = 0;
    int err, found = 0;
    memset(m, 0, sizeof(*m));
    while ((err = pt_rec_next(fs, md, &pos, &rec)) == 1) {
        if (rec.type == PT_REC_MSTATE) {
            last = rec;
            found = 1;
        }
    }
    if (err < 0) return err;
    if (!found) return 0;
    if (last.len != PT_MSTATE_SIZE) return -PT_ECORRUPT;
    err = pt_read(fs, md->pair[0], last.off, buf, PT_MSTATE_SIZE, PT_MSTATE_SIZE);
    if (err) return err;
    err = pt_mstate_decode(m, buf, last.len);
    return err ? err : 1;
}

/* Commit record m to the root pair and, with_fingers, a FINGERS record of fingers_len bytes
 * (0: none in force), written from the remembered pairs by pt_fingers_emit. The commit carries
 * no global-state delta (the callers run between operations, when fs->gpending equals
 * fs->gstate). */
static int pt_mstate_commit(struct petrel_fs *fs, struct pt_mdir *root, const struct pt_mstate *m,
                            uint32_t fingers_len, int with_fingers)
{
    uint8_t buf[PT_MSTATE_SIZE];
    struct pt_rec r[2];
    pt_mstate_encode(buf, m);
    memset(r, 0, sizeof(r));
    r[0].type = PT_REC_MSTATE;
    r[0].seg[0] = buf;
    r[0].seglen[0] = PT_MSTATE_SIZE;
    r[1].type = PT_REC_FINGERS;
    r[1].seglen[0] = fingers_len; /* no segment: pt_fingers_emit writes the payload */
    return pt_fs_commit(fs, root, r, with_fingers ? 2 : 1);
}

/* Largest FINGERS record the root pair takes: a quarter of a block, at most PT_FINGERS_MAX
 * entries; none below 8 entries (small blocks). */
static uint32_t pt_fingers_cap(const struct petrel_fs *fs)
{
    uint32_t n = fs->block_size / 4 > PT_FINGERS_HDR ?
                     (fs->block_size / 4 - PT_FINGERS_HDR) / PT_FINGER_SIZE : 0;
    if (n > PT_FINGERS_MAX) n = PT_FINGERS_MAX;
    return n >= 8 ? n : 0;
}

/* Continuation pairs of the directory at head reachable through remembered links. */
static uint32_t pt_fingers_chain(struct petrel_fs *fs, const uint32_t head[2])
{
    const struct petrel_fs_link *l;
    uint32_t cur[2], count = 0, guard;
    if (head[0] == PT_NULL) return 0;
    cur[0] = head[0];
    cur[1] = head[1];
    for (guard = 0; guard < fs->block_count; guard++) {
        l = pt_links_find(fs, cur);
        if (!l || !l->next_cont) break;
        count++;
        cur[0] = l->next[0];
        cur[1] = l->next[1];
    }
    return count;
}

/* The fingers of the directory with the longest walk this session (or the last one walked,
 * whichever has more remembered pairs), from the remembered pairs only (nothing is read):
 * the chain from its head as far as links are remembered, every k-th continuation pair so
 * that at most the cap are kept; none for a directory of fewer than PT_FINGERS_MIN_PAIRS
 * pairs. Returns the record's length (0: none). With w, also writes the record's payload to
 * w (pt_fingers_emit); without, only measures it. No buffer: a record of up to 1,160 bytes
 * is never held in RAM (docs/FIRMWARE.md, stack). */
static uint32_t pt_fingers_walk(struct petrel_fs *fs, struct pt_writer *w, int *err)
{
    uint32_t cap = pt_fingers_cap(fs), cur[2], head[2], count, k, i, n = 0;
    uint32_t big = pt_fingers_chain(fs, fs->big_head), last = pt_fingers_chain(fs, fs->fg_head);
    const struct petrel_fs_link *l;
    uint8_t e[PT_FINGER_SIZE];
    *err = 0;
    if (!cap) return 0;
    if (big >= last) {
        head[0] = fs->big_head[0];
        head[1] = fs->big_head[1];
        count = big;
    } else {
        head[0] = fs->fg_head[0];
        head[1] = fs->fg_head[1];
        count = last;
    }
    if (count < PT_FINGERS_MIN_PAIRS) return 0;
    k = (count + cap - 1) / cap;
    if (w) {
        pt_put_le32(e, head[0]);
        pt_put_le32(e + 4, head[1]);
        *err = pt_writer_put(fs, w, e, PT_FINGERS_HDR);
    }
    cur[0] = head[0];
    cur[1] = head[1];
    for (i = 0; i < count && !*err; i++) {
        l = pt_links_find(fs, cur);
        if (!l || !l->next_cont) break;
        /* lo rounded up to a multiple of 2^32: a finger is taken only for hashes at or
         * above it, so never for a hash below the pair's range */
        if (i % k == 0 && n < cap && l->next_split <= 0xffffffff00000000ull) {
            n++;
            if (w) {
                pt_put_le32(e, (uint32_t)((l->next_split + 0xffffffffull) >> 32));
                pt_put_le32(e + 4, l->next[0]);
                pt_put_le32(e + 8, l->next[1]);
                *err = pt_writer_put(fs, w, e, PT_FINGER_SIZE);
            }
        }
        cur[0] = l->next[0];
        cur[1] = l->next[1];
    }
    return n ? PT_FINGERS_HDR + PT_FINGER_SIZE * n : 0;
}

int pt_fingers_emit(struct petrel_fs *fs, struct pt_writer *w, uint32_t len)
{
    int err;
    /* the links stay put while fs->links_pinned (cache.c): the payload is the one measured */
    uint32_t got = pt_fingers_walk(fs, w, &err);
    PT_ASSERT(fs->links_pinned);
    if (err) return err;
    return got == len ? 0 : -PT_ECORRUPT;
}

int pt_mstate_mark_dirty(struct petrel_fs *fs)
{
    struct pt_mdir root;
    struct pt_mstate m;
    int err;
    if (fs->readonly) return 0; /* nothing will commit */
    if (!fs->ms_clean) {
        fs->ms_changed = 1; /* dirty already (marked, or found so): clean it at unmount */
        return 0;
    }
    err = pt_mdir_fetch(fs, &root, pt_root_pair, NULL);
    if (err) return err;
    memset(&m, 0, sizeof(m));
    m.clean = 0;
    fs->ms_clean = 0; /* lets pt_fs_commit through for this one */
    err = pt_mstate_commit(fs, &root, &m, 0, 0);
    /* durable before anything the session writes next: a device that reorders writes
     * (an image file) must not keep a later change and lose the mark */
    if (!err) err = pt_sync(fs);
    if (err) {
        fs->ms_clean = 1; /* the next changing call tries again; nothing else commits */
        return err;
    }
    fs->ms_changed = 1;
    return 0;
}

int pt_mstate_mark_clean(struct petrel_fs *fs)
{
    struct pt_mdir root;
    struct pt_mstate m;
    int err;
    if (fs->ms_clean || !fs->ms_changed || fs->readonly) return 0;
    /* only between operations, with nothing half done (a clean record says the global
     * state is zero): a pending move or orphan is left to the walk of the next mount */
    if (!pt_gstate_zero(&fs->gstate) || !pt_gstate_zero(&fs->gpending)) return 0;
    /* every change of the session is durable before the record that sums it up */
    err = pt_sync(fs);
    if (!err) err = pt_mdir_fetch(fs, &root, pt_root_pair, NULL);
    if (err) return err;
    memset(&m, 0, sizeof(m));
    m.clean = 1;
    m.next_dirid = fs->next_dirid;
    /* the next session's allocator starts where this one stopped */
    m.seed = (fs->look_start + fs->look_next) % fs->block_count;
    if (fs->dfg_n && fs->dfg_gen == fs->layout_gen) {
        /* mounted clean with saved fingers, and nothing moved or was allocated since: the
         * FINGERS record in force is still true */
        err = pt_mstate_commit(fs, &root, &m, 0, 0);
    } else {
        /* a 4.x image's directories have indexes (docs/SPEC-FS.md 4.1): no fingers */
        int werr;
        uint32_t len = fs->index_ok ? 0 : pt_fingers_walk(fs, NULL, &werr);
        /* the record is written from the links by pt_fingers_emit during the commit, which
         * must not let them change (no remembered pair is replaced while pinned) */
        fs->links_pinned = len != 0;
        err = pt_mstate_commit(fs, &root, &m, len, 1);
        fs->links_pinned = 0;
        if (err == -PT_ENOSPC && len) {
            err = pt_mdir_fetch(fs, &root, pt_root_pair, NULL);
            if (!err) err = pt_mstate_commit(fs, &root, &m, 0, 1);
        }
    }
    if (err == -PT_ENOSPC) return 0; /* no room: the image stays dirty, mounted by a walk */
    if (!err) err = pt_sync(fs);
    if (!err) fs->ms_clean = 1;
    return err;
}

int pt_fingers_locate(struct petrel_fs *fs, const struct pt_mdir *md, uint32_t head[2],
                      uint32_t *off, uint32_t *n)
{
    struct pt_rec_ref rec = {0, 0, 0}, last = {0, 0, 0};
    uint8_t h[PT_FINGERS_HDR];
    uint32_t pos = 0;
    int err, found = 0;
    *n = 0;
    while ((err = pt_rec_next(fs, md, &pos, &rec)) == 1) {
        if (rec.type == PT_REC_FINGERS) {
            last = rec;
            found = 1;
        }
    }
    if (err < 0) return err;
    if (!found || last.len == 0) return 0;
    if (last.len < PT_FINGERS_HDR + PT_FINGER_SIZE || (last.len - PT_FINGERS_HDR) % PT_FINGER_SIZE)
        return -PT_ECORRUPT;
    err = pt_read(fs, md->pair[0], last.off, h, PT_FINGERS_HDR, PT_FINGERS_HDR);
    if (err) return err;
    head[0] = pt_get_le32(h);
    head[1] = pt_get_le32(h + 4);
    *off = last.off + PT_FINGERS_HDR;
    *n = (last.len - PT_FINGERS_HDR) / PT_FINGER_SIZE;
    return 1;
}

int pt_fingers_load(struct petrel_fs *fs, const struct pt_mdir *md)
{
    uint32_t head[2], off, n;
    int err = pt_fingers_locate(fs, md, head, &off, &n);
    fs->dfg_n = 0;
    if (err == -PT_ECORRUPT) return 0; /* malformed: not used (fsck reports it) */
    if (err <= 0) return err;
    fs->dfg_head[0] = head[0];
    fs->dfg_head[1] = head[1];
    fs->dfg_block = md->pair[0];
    fs->dfg_off = off;
    fs->dfg_gen = fs->layout_gen;
    fs->dfg_n = n;
    return 0;
}

int pt_fingers_find(struct petrel_fs *fs, const uint32_t head[2], uint64_t hash,
                    uint32_t pair[2], uint64_t *lo)
{
    uint8_t e[PT_FINGER_SIZE];
    uint32_t a = 0, b, best = 0, have = 0;
    uint64_t flo;
    int err;
    if (!fs->dfg_n || fs->dfg_gen != fs->layout_gen || !pt_pair_eq(fs->dfg_head, head))
        return 0;
    /* entries are in hash order: the last one whose (rounded up) lo is at or below hash */
    b = fs->dfg_n;
    while (a < b) {
        uint32_t mid = a + (b - a) / 2;
        err = pt_read(fs, fs->dfg_block, fs->dfg_off + PT_FINGER_SIZE * mid, e, PT_FINGER_SIZE,
                      PT_FINGER_SIZE);
        if (err) return err;
        if ((uint64_t)pt_get_le32(e) << 32 <= hash) {
            best = mid;
            have = 1;
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    if (!have) return 0;
    err = pt_read(fs, fs->dfg_block, fs->dfg_off + PT_FINGER_SIZE * best, e, PT_FINGER_SIZE,
                  PT_FINGER_SIZE);
    if (err) return err;
    flo = (uint64_t)pt_get_le32(e) << 32;
    if (flo <= *lo) return 0;
    *lo = flo;
    pair[0] = pt_get_le32(e + 4);
    pair[1] = pt_get_le32(e + 8);
    if (pair[0] >= fs->block_count || pair[1] >= fs->block_count || pair[0] == pair[1]) {
        fs->dfg_n = 0; /* damaged: not used again */
        return 0;
    }
    return 1;
}
