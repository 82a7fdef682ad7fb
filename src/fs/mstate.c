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

/* Commit record m to the root pair. The commit carries no global-state delta (the callers
 * run between operations, when fs->gpending equals fs->gstate). */
static int pt_mstate_commit(struct petrel_fs *fs, struct pt_mdir *root, const struct pt_mstate *m)
{
    uint8_t buf[PT_MSTATE_SIZE];
    struct pt_rec r;
    pt_mstate_encode(buf, m);
    memset(&r, 0, sizeof(r));
    r.type = PT_REC_MSTATE;
    r.seg[0] = buf;
    r.seglen[0] = PT_MSTATE_SIZE;
    return pt_fs_commit(fs, root, &r, 1);
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
    err = pt_mstate_commit(fs, &root, &m);
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
    err = pt_mstate_commit(fs, &root, &m);
    if (err == -PT_ENOSPC) return 0; /* no room: the image stays dirty, mounted by a walk */
    if (!err) err = pt_sync(fs);
    if (!err) fs->ms_clean = 1;
    return err;
}
