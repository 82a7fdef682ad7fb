/*
 * Directories: path resolution, lookups by name hash, mkdir, remove, rename, stat and
 * directory reading.
 *
 * A directory is a chain of metadata pairs, each holding the entries of one name-hash range
 * [lo, next_split); its first pair (the head) carries the directory id. Owns the protocols
 * that change entries: each visible change is one atomic commit, and steps that must touch
 * two pairs (link a new directory into the thread, unlink a removed one, a rename between
 * pairs) record their intent in the global state first so that mount can finish them.
 * Never recurses (paths are walked component by component), never trusts a name hash
 * alone (names are compared after the hash matches).
 */
#include "fs/fs_internal.h"

static const uint32_t pt_root_pair[2] = {0, 1};

int pt_fs_writable(struct petrel_fs *fs)
{
    return fs->readonly ? -PT_EROFS : 0;
}

/* Fingers (fs->fg): the walk starts at the pair whose range starts highest at or below the
 * hash among those remembered for this directory; walks record the first pair they enter in
 * each 16th of the hash space. Any change of layout (a compaction, split, drop or move bumps
 * layout_gen) drops them all. */
#define PT_FG_SHIFT 60

static void pt_fingers_reset(struct petrel_fs *fs, const uint32_t head[2])
{
    uint32_t j;
    fs->fg_head[0] = head[0];
    fs->fg_head[1] = head[1];
    fs->fg_gen = fs->layout_gen;
    if (!fs->fg) return; /* none without malloc */
    for (j = 0; j < PETREL_FS_FINGERS; j++) fs->fg[j].pair[0] = fs->fg[j].pair[1] = PT_NULL;
}

static void pt_finger_note(struct petrel_fs *fs, uint64_t lo, const uint32_t pair[2])
{
    uint32_t j = (uint32_t)(lo >> PT_FG_SHIFT);
    if (!fs->fg || (fs->fg[j].pair[0] != PT_NULL && fs->fg[j].lo <= lo)) return;
    fs->fg[j].lo = lo;
    fs->fg[j].pair[0] = pair[0];
    fs->fg[j].pair[1] = pair[1];
}

/* The walk's end: the pair holding the hash, and how many pairs the walk passed from the
 * nearest index entry (a lower bound when it started at a finger), for pt_fs_commit. */
static int pt_walk_end(struct petrel_fs *fs, const struct pt_mdir *md, uint32_t hops)
{
    fs->ix_pair[0] = md->pair[0];
    fs->ix_pair[1] = md->pair[1];
    fs->ix_hops = hops;
    fs->ix_gen = fs->layout_gen;
    return 0;
}

int pt_dir_find_pair(struct petrel_fs *fs, const uint32_t head[2], uint64_t hash,
                     struct pt_mdir *md)
{
    uint32_t guard, cur[2], hops = 0, key = 0;
    uint64_t lo = 0;
    int err = 0, j, from_index = 0;
    cur[0] = head[0];
    cur[1] = head[1];
    /* the head's index (docs/SPEC-FS.md 4.1): where it is, known from an earlier walk of
     * this directory or read with the head */
    if (!pt_pair_eq(fs->ix_head, head)) {
        fs->ix_known = 0;
        fs->ix_head[0] = head[0];
        fs->ix_head[1] = head[1];
    }
    fs->ix_gen = fs->layout_gen - 1; /* no walk end yet */
    if (!fs->ix_known || fs->ix_kgen != fs->layout_gen) {
        const struct petrel_fs_link *l = pt_links_find(fs, head);
        if (l && !l->indexed) {
            /* a remembered head without an index: no need to read it for one */
            fs->ix_known = 1;
            fs->ix_kgen = fs->layout_gen;
            fs->ix_len = 0;
        }
    }
    if (!fs->ix_known || fs->ix_kgen != fs->layout_gen) {
        err = pt_mdir_fetch(fs, md, head, &hash);
        if (err) return err;
        fs->ix_known = 1;
        fs->ix_kgen = fs->layout_gen;
        fs->ix_block = md->pair[0];
        fs->ix_off = md->index_off;
        fs->ix_len = md->index_len;
        if (!md->next_cont || hash < md->next_split) return pt_walk_end(fs, md, 0);
    }
    if (fs->ix_len) {
        uint32_t p[2];
        err = pt_index_find(fs, fs->ix_block, fs->ix_off, fs->ix_len, hash, p, &key);
        if (err < 0) return err;
        if (err == 1) {
            cur[0] = p[0];
            cur[1] = p[1];
            from_index = 1;
        }
    } else if (!fs->index_ok) {
        /* a 3.x image has no index: fingers (a directory of a 4.x image without one is
         * short: a walk past PT_INDEX_HOPS pairs gives it an index) */
        if (fs->fg_gen != fs->layout_gen || !pt_pair_eq(fs->fg_head, head))
            pt_fingers_reset(fs, head);
        for (j = fs->fg ? (int)(hash >> PT_FG_SHIFT) : -1; j >= 0; j--) {
            if (fs->fg[j].pair[0] != PT_NULL && fs->fg[j].lo <= hash) {
                cur[0] = fs->fg[j].pair[0];
                cur[1] = fs->fg[j].pair[1];
                lo = fs->fg[j].lo;
                break;
            }
        }
        /* the fingers the last clean unmount saved, when one starts nearer */
        err = pt_fingers_find(fs, head, hash, cur, &lo);
        if (err < 0) return err;
        if (err == 1) pt_finger_note(fs, lo, cur);
    }
    for (guard = 0; guard <= fs->block_count; guard++) {
        /* pairs the walk only passes are skipped by their remembered links; the pair that
         * holds the hash is always read (and its commits verified) */
        const struct petrel_fs_link *l = pt_links_find(fs, cur);
        if (guard > fs->big_hops || (guard && pt_pair_eq(head, fs->big_head))) {
            /* the directory with the longest walk is the one worth saving fingers for */
            fs->big_head[0] = head[0];
            fs->big_head[1] = head[1];
            if (guard > fs->big_hops) fs->big_hops = guard;
        }
        if (l && l->next_cont && hash >= l->next_split) {
            from_index = 0; /* a remembered link: validated, its place known */
            cur[0] = l->next[0];
            cur[1] = l->next[1];
            hops++;
            if (!fs->index_ok) pt_finger_note(fs, l->next_split, cur);
            continue;
        }
        err = pt_mdir_fetch(fs, md, cur, &hash);
        if (from_index) {
            int ok = 1;
            from_index = 0;
            if (err == 0 && (md->head || pt_index_lo_hi(md->lo, &ok) != key || !ok))
                err = -PT_ECORRUPT;
            if (err == -PT_ECORRUPT || err == -PT_EIO) {
                /* not what the index says (damage: fsck reports it): from the head */
                petrel_log(PT_LOG_INFO, "fs", "index entry {%u,%u} ignored", (unsigned)cur[0],
                           (unsigned)cur[1]);
                cur[0] = head[0];
                cur[1] = head[1];
                continue;
            }
        }
        if (err) return err;
        if (!md->next_cont || hash < md->next_split) return pt_walk_end(fs, md, hops);
        cur[0] = md->next[0];
        cur[1] = md->next[1];
        hops++;
        if (!fs->index_ok) pt_finger_note(fs, md->next_split, cur);
    }
    return -PT_ECORRUPT;
}

int pt_entry_name_eq(struct petrel_fs *fs, const struct pt_entry *e, const char *name,
                     uint32_t len)
{
    char buf[256];
    if (e->name_len != len) return 0;
    if (pt_read(fs, e->block, e->name_off, buf, len, len)) return 0;
    return memcmp(buf, name, len) == 0;
}

/* Next path component: returns its length (0 at the end), sets *comp. */
static uint32_t pt_path_next(const char **p, const char **comp)
{
    const char *s = *p;
    uint32_t n = 0;
    while (*s == '/') s++;
    *comp = s;
    while (s[n] && s[n] != '/') n++;
    *p = s + n;
    return n;
}

/* Check every component and hash the directory part of the path (all but the last). */
static int pt_path_key(struct petrel_fs *fs, const char *path, uint64_t *key, uint32_t *ncomp)
{
    const char *p = path, *comp;
    uint32_t len, n = 0;
    uint64_t k = 0, prev = 0;
    while ((len = pt_path_next(&p, &comp)) > 0) {
        if (len > fs->name_max) return -PT_ENAMETOOLONG;
        if ((len == 1 && comp[0] == '.') || (len == 2 && comp[0] == '.' && comp[1] == '.'))
            return -PT_EINVAL;
        prev = k;
        k = petrel_hash64(comp, len, k ^ ((uint64_t)len << 56) ^ 0x5bd1e995u);
        n++;
    }
    *key = prev;
    *ncomp = n;
    return 0;
}

/*
 * The head pair of the directory an entry names. Normally the entry's pair; while orphan
 * repairs are pending (a head moved and its entry could not be updated yet, e.g. on a worn
 * device), the thread's head with the entry's directory id is authoritative.
 */
int pt_dir_head(struct petrel_fs *fs, const struct pt_entry *e, uint32_t head[2])
{
    static const uint32_t root[2] = {0, 1};
    struct pt_mdir md;
    uint32_t guard;
    int err;
    head[0] = e->pair[0];
    head[1] = e->pair[1];
    if (fs->gstate.orphans == 0) return 0;
    err = pt_mdir_fetch(fs, &md, root, NULL);
    for (guard = 0; !err && guard <= fs->block_count; guard++) {
        uint32_t next[2];
        if (md.head && md.dirid == e->dirid) {
            head[0] = md.pair[0];
            head[1] = md.pair[1];
            return 0;
        }
        if (md.next[0] == PT_NULL) return 0;
        next[0] = md.next[0];
        next[1] = md.next[1];
        err = pt_mdir_fetch(fs, &md, next, NULL);
    }
    return err;
}

int pt_lookup(struct petrel_fs *fs, const char *path, struct pt_lookup *lk, int64_t watch_dirid)
{
    const char *p = path, *comp;
    uint32_t len, ncomp = 0, depth = 0;
    uint64_t key = 0;
    int err;
    memset(lk, 0, sizeof(*lk));
    if (!path) return -PT_EINVAL;
    err = pt_path_key(fs, path, &key, &ncomp);
    if (err) return err;
    memcpy(lk->parent, pt_root_pair, sizeof(lk->parent));
    lk->is_root = 1;
    if (ncomp > 1 && watch_dirid < 0 && fs->dc_valid && fs->dc_gen == fs->layout_gen &&
        fs->dc_ncomp == ncomp - 1 && fs->dc_key == key) {
        /* the same directory as the last lookup: start there */
        memcpy(lk->parent, fs->dc_head, sizeof(lk->parent));
        lk->parent_dirid = fs->dc_dirid;
        while (depth < ncomp - 1) {
            pt_path_next(&p, &comp);
            depth++;
        }
    }
    while ((len = pt_path_next(&p, &comp)) > 0) {
        int last = ++depth == ncomp;
        lk->is_root = 0;
        lk->name = comp;
        lk->name_len = len;
        lk->hash = petrel_hash64(comp, len, 0);
        err = pt_dir_find_pair(fs, lk->parent, lk->hash, &lk->md);
        if (err) return err;
        lk->exists = 0;
        if (lk->md.found == PT_REC_ENTRY) {
            err = pt_entry_decode(fs, lk->md.pair[0], &lk->md.found_rec, &lk->e);
            if (err) return err;
            lk->exists = pt_entry_name_eq(fs, &lk->e, comp, len) ? 1 : -1;
        }
        if (last) break;
        if (lk->exists != 1) return -PT_ENOENT;
        if (lk->e.type != PETREL_FS_DIR) return -PT_ENOTDIR;
        err = pt_dir_head(fs, &lk->e, lk->parent);
        if (err) return err;
        lk->parent_dirid = lk->e.dirid;
        if (watch_dirid >= 0 && lk->e.dirid == (uint64_t)watch_dirid) lk->saw_dirid = 1;
    }
    if (lk->exists == 1 && lk->e.type == PETREL_FS_DIR) {
        err = pt_dir_head(fs, &lk->e, lk->e.pair);
        if (err) return err;
    }
    if (ncomp > 1) {
        fs->dc_valid = 1;
        fs->dc_gen = fs->layout_gen;
        fs->dc_key = key;
        fs->dc_ncomp = ncomp - 1;
        memcpy(fs->dc_head, lk->parent, sizeof(fs->dc_head));
        fs->dc_dirid = lk->parent_dirid;
    }
    return 0;
}

#ifndef PETREL_FS_READONLY
/* Build a DELETE record for hash. */
static void pt_rec_delete(struct pt_rec *r, uint8_t *hb, uint64_t hash)
{
    pt_put_le64(hb, hash);
    memset(r, 0, sizeof(*r));
    r->type = PT_REC_DELETE;
    r->hash = hash;
    r->seg[0] = hb;
    r->seglen[0] = 8;
}

/* The fixed part of an entry's payload (hash, type, name length): the name follows it in
 * the record as a segment of its own, so no name-sized buffer is needed. */
static void pt_entry_head(uint8_t *buf, uint64_t hash, uint8_t type, uint32_t name_len)
{
    pt_put_le64(buf, hash);
    buf[8] = type;
    buf[9] = (uint8_t)name_len;
}
#endif /* PETREL_FS_READONLY */

int petrel_fs_stat(struct petrel_fs *fs, const char *path, struct petrel_fs_info *info)
{
    PT_REQUIRE_MOUNTED(fs);
    struct pt_lookup lk;
    int err = pt_lookup(fs, path, &lk, -1);
    if (err) return err;
    memset(info, 0, sizeof(*info));
    if (lk.is_root) {
        info->type = PETREL_FS_DIR;
        strcpy(info->name, "/");
        return 0;
    }
    if (lk.exists != 1) return -PT_ENOENT;
    info->type = lk.e.type;
    info->size = PETREL_FS_TYPE_HAS_DATA(lk.e.type) ? lk.e.size : 0;
    err = pt_read(fs, lk.e.block, lk.e.name_off, info->name, lk.e.name_len, lk.e.name_len);
    info->name[lk.e.name_len] = 0;
    return err;
}

#ifndef PETREL_FS_READONLY
/* Last pair of the directory chain starting at head. */
static int pt_dir_last(struct petrel_fs *fs, const uint32_t head[2], struct pt_mdir *md)
{
    uint32_t guard;
    int err = pt_mdir_fetch(fs, md, head, NULL);
    for (guard = 0; !err && guard <= fs->block_count; guard++) {
        uint32_t next[2];
        if (!md->next_cont) return 0;
        next[0] = md->next[0];
        next[1] = md->next[1];
        err = pt_mdir_fetch(fs, md, next, NULL);
    }
    return err ? err : -PT_ECORRUPT;
}

static void pt_rec_thread(struct pt_rec *r, uint8_t *th, const uint32_t next[2], int cont,
                          uint64_t split)
{
    pt_put_le32(th, next[0]);
    pt_put_le32(th + 4, next[1]);
    th[8] = (uint8_t)(cont ? 1 : 0);
    pt_put_le64(th + 9, split);
    memset(r, 0, sizeof(*r));
    r->type = PT_REC_THREAD;
    r->seg[0] = th;
    r->seglen[0] = 17;
}

/* The new directory's first pair (head record dirid), threaded to what follows last. */
static PT_NOINLINE int pt_mkdir_pair(struct petrel_fs *fs, const struct pt_mdir *last,
                                     uint32_t dirid, uint32_t pair[2])
{
    struct pt_mdir nd;
    struct pt_rec r[2];
    uint8_t hb[4], th[17];
    uint32_t n = 1;
    int err;
    pt_put_le32(hb, dirid);
    memset(r, 0, sizeof(r));
    r[0].type = PT_REC_HEAD;
    r[0].seg[0] = hb;
    r[0].seglen[0] = 4;
    if (last->next[0] != PT_NULL) pt_rec_thread(&r[n++], th, last->next, 0, 0);
    err = pt_mdir_create(fs, &nd, r, (int)n);
    if (!err) memcpy(pair, nd.pair, sizeof(nd.pair));
    return err;
}

/* Commit to md the new directory's entry (name from the path, its pair and dirid) and, with
 * the thread, or alone, md's thread link to the new pair. */
static PT_NOINLINE int pt_mkdir_commit(struct petrel_fs *fs, struct pt_mdir *md,
                                       const struct pt_lookup *lk, const uint32_t ndpair[2],
                                       uint32_t dirid, int entry, int thread)
{
    struct pt_rec r[2];
    uint8_t th[17], ent[PT_ENTRY_FIXED], dst[PT_DIRSTRUCT_SIZE];
    int n = 0;
    memset(r, 0, sizeof(r));
    if (entry) {
        pt_entry_head(ent, lk->hash, PETREL_FS_DIR, lk->name_len);
        pt_put_le32(dst, ndpair[0]);
        pt_put_le32(dst + 4, ndpair[1]);
        pt_put_le32(dst + 8, dirid);
        r[n].type = PT_REC_ENTRY;
        r[n].hash = lk->hash;
        r[n].seg[0] = ent;
        r[n].seglen[0] = PT_ENTRY_FIXED;
        r[n].seg[1] = lk->name;
        r[n].seglen[1] = lk->name_len;
        r[n].seg[2] = dst;
        r[n].seglen[2] = PT_DIRSTRUCT_SIZE;
        n++;
    }
    if (thread) pt_rec_thread(&r[n++], th, ndpair, 0, 0);
    return pt_fs_commit(fs, md, r, n);
}

/* The entry and the thread link in two pairs: the link first, then the entry. Between the
 * two commits the new directory is in the thread without an entry: a repair run by a
 * relocation in between would reclaim it, so repairs wait until the entry is written. */
static PT_NOINLINE int pt_mkdir_apart(struct petrel_fs *fs, const struct pt_lookup *lk,
                                      struct pt_mdir *last, const uint32_t ndpair[2],
                                      uint32_t dirid)
{
    uint8_t was_repairing = fs->repairing;
    int err;
    fs->gpending.orphans++;
    fs->repairing = 1;
    err = pt_mkdir_commit(fs, last, lk, ndpair, dirid, 0, 1);
    if (!err) {
        struct pt_mdir emd;
        err = pt_dir_find_pair(fs, lk->parent, lk->hash, &emd);
        if (!err) {
            fs->gpending.orphans--;
            err = pt_mkdir_commit(fs, &emd, lk, ndpair, dirid, 1, 0);
        }
    }
    fs->repairing = was_repairing;
    if (err) fs->gpending = fs->gstate;
    return err;
}

int petrel_fs_mkdir(struct petrel_fs *fs, const char *path)
{
    PT_REQUIRE_MOUNTED(fs);
    struct pt_lookup lk;
    struct pt_mdir last;
    uint32_t dirid, ndpair[2];
    int err = pt_mstate_mark_dirty(fs);
    if (err) return err;
    err = pt_lookup(fs, path, &lk, -1);
    if (err) return err;
    if (lk.is_root || lk.exists) return -PT_EEXIST;
    err = pt_fs_writable(fs);
    if (err) return err;
    err = pt_dir_last(fs, lk.parent, &last);
    if (err) return err;
    dirid = fs->next_dirid++;
    /* the new directory's first pair, threaded after the parent's last pair */
    err = pt_mkdir_pair(fs, &last, dirid, ndpair);
    if (err) return err;
    if (pt_pair_eq(last.pair, lk.md.pair)) {
        /* entry and thread link in one commit */
        err = pt_mkdir_commit(fs, &lk.md, &lk, ndpair, dirid, 1, 1);
    } else {
        err = pt_mkdir_apart(fs, &lk, &last, ndpair, dirid);
        if (!err && fs->gpending.orphans > 0) {
            /* the directory exists: a repair that fails now runs again later */
            int rerr = pt_fs_repair(fs, 0);
            if (rerr)
                petrel_log(PT_LOG_WARN, "fs", "repair after mkdir %s: %s", path,
                           petrel_strerror(rerr));
        }
    }
    if (err) return err;
    pt_alloc_ack(fs);
    return 0;
}

/* Whether the directory starting at head has any live entry. */
static int pt_dir_empty(struct petrel_fs *fs, const uint32_t head[2])
{
    struct pt_mdir md;
    uint32_t guard;
    int err = pt_mdir_fetch(fs, &md, head, NULL);
    for (guard = 0; !err && guard <= fs->block_count; guard++) {
        struct pt_rec_ref rec = {0, 0, 0};
        uint32_t pos = 0, next[2];
        while ((err = pt_rec_next(fs, &md, &pos, &rec)) == 1) {
            int live;
            if (rec.type != PT_REC_ENTRY) continue;
            err = pt_rec_live(fs, &md, &rec, pos, NULL, 0, &live);
            if (err) return err;
            if (live) return 0;
        }
        if (err < 0) return err;
        if (!md.next_cont) return 1;
        next[0] = md.next[0];
        next[1] = md.next[1];
        err = pt_mdir_fetch(fs, &md, next, NULL);
    }
    return err ? err : -PT_ECORRUPT;
}

/* After a removal committed: drop the pair that held path's name from the thread when no
 * entry is left in it, so that churn does not grow directories without bound. Best effort:
 * a pair kept is consistent, so a failure here is only logged. */
/* The pair that would hold path's name: 1 when the name is absent from it (the pair to try
 * to drop, in *md), 0 when there is none to try. A helper so that the lookup's frame is gone
 * when the drop commits. */
static PT_NOINLINE int pt_drop_lookup(struct petrel_fs *fs, const char *path, struct pt_mdir *md)
{
    struct pt_lookup lk;
    int err = pt_lookup(fs, path, &lk, -1);
    if (err) return err;
    if (lk.is_root || lk.exists != 0) return 0;
    *md = lk.md;
    return 1;
}

static void pt_drop_empty_pair(struct petrel_fs *fs, const char *path,
                               const struct pt_mdir *known)
{
    struct pt_mdir md;
    int err = 0;
    if (known) {
        err = pt_drop_if_empty(fs, known);
    } else {
        err = pt_drop_lookup(fs, path, &md);
        if (err == 1) err = pt_drop_if_empty(fs, &md);
    }
    fs->dc_valid = 0;
    if (err)
        petrel_log(PT_LOG_INFO, "fs", "empty pair after removing %s kept: %s", path,
                   petrel_strerror(err));
    pt_alloc_ack(fs);
}

int petrel_fs_remove(struct petrel_fs *fs, const char *path)
{
    PT_REQUIRE_MOUNTED(fs);
    struct pt_lookup lk;
    struct pt_rec r;
    uint8_t hb[8];
    int err = pt_mstate_mark_dirty(fs);
    if (err) return err;
    err = pt_lookup(fs, path, &lk, -1);
    fs->dc_valid = 0; /* a directory may go */
    if (err) return err;
    if (lk.is_root) return -PT_EINVAL;
    if (lk.exists != 1) return -PT_ENOENT;
    err = pt_fs_writable(fs);
    if (err) return err;
    pt_rec_delete(&r, hb, lk.hash);
    if (lk.e.type == PETREL_FS_DIR) {
        err = pt_dir_empty(fs, lk.e.pair);
        if (err < 0) return err;
        if (err == 0) return -PT_ENOTEMPTY;
        fs->gpending.orphans++;
        err = pt_fs_commit(fs, &lk.md, &r, 1);
        /* -PT_ENOENT: the head is no longer in the thread, so the repair a relocation ran
         * inside the commit has already reclaimed the directory */
        if (!err) err = pt_unlink_dir(fs, lk.e.pair);
        if (err == -PT_ENOENT) err = 0;
        if (err) fs->gpending = fs->gstate;
    } else {
        err = pt_fs_commit(fs, &lk.md, &r, 1);
    }
    if (err) return err;
    pt_alloc_ack(fs);
    pt_drop_empty_pair(fs, path, NULL);
    return 0;
}

/* What a rename keeps of its source after the lookup: the pair, the parent and the entry's
 * place on the device (a whole struct pt_lookup for each path would double the frame). */
struct pt_rename_src {
    struct pt_mdir md;      /* the pair holding the source entry */
    uint32_t parent[2];
    uint64_t hash;
    uint32_t dirid;         /* directories */
    uint32_t block, name_off, rec_len;
    uint8_t type, name_len;
};

static PT_NOINLINE int pt_rename_source(struct petrel_fs *fs, const char *oldpath,
                                        struct pt_rename_src *src)
{
    struct pt_lookup lo;
    int err = pt_lookup(fs, oldpath, &lo, -1);
    if (err) return err;
    if (lo.is_root) return -PT_EINVAL;
    if (lo.exists != 1) return -PT_ENOENT;
    src->md = lo.md;
    memcpy(src->parent, lo.parent, sizeof(src->parent));
    src->hash = lo.hash;
    src->dirid = lo.e.dirid;
    src->block = lo.e.block;
    src->name_off = lo.e.name_off;
    src->rec_len = lo.e.rec_len;
    src->type = lo.e.type;
    src->name_len = lo.e.name_len;
    return 0;
}

/* The rename's commits: the new entry (replacing ln's) with the source's attributes, and the
 * source's deletion, in one commit when both names are in one pair, else the new entry with
 * "move pending" first and the deletion second. On return lo->md is the source's pair as the
 * rename left it. */
static PT_NOINLINE int pt_rename_commit(struct petrel_fs *fs, struct pt_rename_src *lo,
                                        struct pt_lookup *ln)
{
    struct pt_rec r[4];
    uint8_t hb_old[8], hb_new[8], head[PT_ENTRY_FIXED];
    uint32_t body_len;
    int n = 0, err;

    /* the new entry: new name (from newpath), the old entry's structure and inline tail
     * copied from its record on the device (the source pair's newest log block, which the
     * commit appends to or compacts out of, so its bytes stay until the commit returns) */
    pt_entry_head(head, ln->hash, lo->type, ln->name_len);
    body_len = lo->rec_len - PT_ENTRY_FIXED - lo->name_len;
    if (lo->rec_len < PT_ENTRY_FIXED + lo->name_len || body_len > PT_REGSTRUCT_MAX + 1024)
        return -PT_ECORRUPT;
    memset(r, 0, sizeof(r));
    if (ln->exists == 1) pt_rec_delete(&r[n++], hb_new, ln->hash);
    r[n].type = PT_REC_ENTRY;
    r[n].hash = ln->hash;
    r[n].seg[0] = head;
    r[n].seglen[0] = PT_ENTRY_FIXED;
    r[n].seg[1] = ln->name;
    r[n].seglen[1] = ln->name_len;
    r[n].copy_at = 2;
    r[n].copy_block = lo->block;
    r[n].copy_off = lo->name_off + lo->name_len;
    r[n].copy_len = body_len;
    n++;
    r[n].type = PT_REC_COPYATTRS;
    r[n].hash = ln->hash;
    r[n].src = &lo->md;
    r[n].src_hash = lo->hash;
    n++;
    if (pt_pair_eq(lo->md.pair, ln->md.pair)) {
        pt_rec_delete(&r[n++], hb_old, lo->hash);
        r[n - 2].src = &ln->md;
        err = pt_fs_commit(fs, &ln->md, r, n);
        if (!err) lo->md = ln->md;
    } else {
        uint64_t hash = lo->hash;
        fs->gpending.move_pending = 1;
        memcpy(fs->gpending.move_pair, lo->md.pair, sizeof(lo->md.pair));
        fs->gpending.move_hash = lo->hash;
        err = pt_fs_commit(fs, &ln->md, r, n);
        if (!err) {
            /* the source pair may have moved meanwhile: the global state followed it */
            uint32_t sp[2];
            memcpy(sp, fs->gpending.move_pair, sizeof(sp));
            memset(fs->gpending.move_pair, 0, sizeof(fs->gpending.move_pair));
            fs->gpending.move_hash = 0;
            fs->gpending.move_pending = 0;
            err = pt_mdir_fetch(fs, &lo->md, sp, &hash);
            if (!err) {
                pt_rec_delete(&r[0], hb_old, hash);
                err = pt_fs_commit(fs, &lo->md, r, 1);
            }
        }
    }
    return err;
}

int petrel_fs_rename(struct petrel_fs *fs, const char *oldpath, const char *newpath)
{
    PT_REQUIRE_MOUNTED(fs);
    struct pt_rename_src lo;
    struct pt_lookup ln;
    int err, replaced_dir = 0;
    uint32_t replaced_pair[2];
    struct petrel_fs_handle *h;

    fs->dc_valid = 0; /* directories may move */
    err = pt_mstate_mark_dirty(fs);
    if (err) return err;
    err = pt_rename_source(fs, oldpath, &lo);
    if (err) return err;
    err = pt_lookup(fs, newpath, &ln, lo.type == PETREL_FS_DIR ? (int64_t)lo.dirid : -1);
    if (err) return err;
    if (ln.is_root) return -PT_EINVAL;
    if (ln.saw_dirid) return -PT_EINVAL;
    if (ln.exists == -1) return -PT_EEXIST;
    if (ln.exists == 1) {
        if (pt_pair_eq(ln.parent, lo.parent) && ln.hash == lo.hash) return 0;
        if (lo.type == PETREL_FS_DIR) {
            if (ln.e.type != PETREL_FS_DIR) return -PT_ENOTDIR;
            err = pt_dir_empty(fs, ln.e.pair);
            if (err < 0) return err;
            if (err == 0) return -PT_ENOTEMPTY;
            replaced_dir = 1;
            memcpy(replaced_pair, ln.e.pair, sizeof(replaced_pair));
        } else if (ln.e.type == PETREL_FS_DIR) {
            return -PT_EISDIR;
        }
    }
    err = pt_fs_writable(fs);
    if (err) return err;

    if (replaced_dir) fs->gpending.orphans++;
    err = pt_rename_commit(fs, &lo, &ln);
    if (!err && replaced_dir) {
        err = pt_unlink_dir(fs, replaced_pair);
        if (err == -PT_ENOENT) err = 0; /* already reclaimed by a repair inside a commit */
    }
    if (err) {
        fs->gpending = fs->gstate;
        return err;
    }
    for (h = fs->handles; h; h = h->next) {
        if (h->kind == PETREL_FS_REG) {
            struct petrel_fs_file *f = (struct petrel_fs_file *)(void *)h;
            if (pt_pair_eq(f->head, lo.parent) && f->hash == lo.hash) {
                memcpy(f->head, ln.parent, sizeof(f->head));
                f->hash = ln.hash;
                f->epair_valid = 0;
            }
        }
    }
    pt_alloc_ack(fs);
    /* after a directory was replaced, pairs may have moved: find the source's pair again */
    pt_drop_empty_pair(fs, oldpath, replaced_dir ? NULL : &lo.md);
    return 0;
}
#endif /* PETREL_FS_READONLY */

/* ---- directory reading ---- */

static void pt_handle_add(struct petrel_fs *fs, struct petrel_fs_handle *h, uint8_t kind)
{
    h->kind = kind;
    h->next = fs->handles;
    fs->handles = h;
}

static void pt_handle_remove(struct petrel_fs *fs, struct petrel_fs_handle *h)
{
    struct petrel_fs_handle **p;
    for (p = &fs->handles; *p; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            return;
        }
    }
}

int petrel_fs_dir_open(struct petrel_fs *fs, struct petrel_fs_dir *dir, const char *path)
{
    PT_REQUIRE_MOUNTED(fs);
    struct pt_lookup lk;
    int err = pt_lookup(fs, path, &lk, -1);
    if (err) return err;
    memset(dir, 0, sizeof(*dir));
    if (lk.is_root) {
        memcpy(dir->head, pt_root_pair, sizeof(dir->head));
    } else {
        if (lk.exists != 1) return -PT_ENOENT;
        if (lk.e.type != PETREL_FS_DIR) return -PT_ENOTDIR;
        memcpy(dir->head, lk.e.pair, sizeof(dir->head));
    }
    memcpy(dir->pair, dir->head, sizeof(dir->pair));
    pt_handle_add(fs, &dir->h, PETREL_FS_DIR);
    return 0;
}

/* Return the next batched entry of dir (its pair unchanged since the scan) in info. */
static int pt_dir_serve(struct petrel_fs *fs, struct petrel_fs_dir *dir,
                        struct petrel_fs_info *info)
{
    struct pt_rec_ref rec;
    struct pt_entry e;
    int err;
    rec.type = PT_REC_ENTRY;
    rec.off = dir->batch[dir->batch_i].off;
    rec.len = dir->batch[dir->batch_i].len;
    err = pt_entry_decode(fs, dir->batch_block, &rec, &e);
    if (err) return err;
    memset(info, 0, sizeof(*info));
    info->type = e.type;
    info->size = PETREL_FS_TYPE_HAS_DATA(e.type) ? e.size : 0;
    err = pt_read(fs, e.block, e.name_off, info->name, e.name_len, e.name_len);
    if (err) return err;
    info->name[e.name_len] = 0;
    dir->last_hash = dir->batch[dir->batch_i].hash;
    dir->have_last = 1;
    dir->batch_i++;
    dir->pos++;
    return 1;
}

/* Building a batch from a pair's records in log order: the (up to PETREL_FS_DIR_BATCH)
 * lowest live entries above the last one returned, in hash order. A name's liveness is its
 * last ENTRY or DELETE record, so the batch keeps, for the lowest hashes seen, the last such
 * record of each; dead names are dropped at the end. When no hash had to make room for a
 * lower one, the batch holds the whole rest of the pair. */
struct pt_dir_scan {
    struct petrel_fs_dir *dir;
    uint8_t dead[PETREL_FS_DIR_BATCH];
    uint32_t n, block, end;
    int evicted, unusable;
};

static void pt_dir_scan_init(struct pt_dir_scan *s, struct petrel_fs_dir *dir, uint32_t block)
{
    s->dir = dir;
    s->n = 0;
    s->block = block;
    s->end = 0;
    s->evicted = 0;
    s->unusable = 0;
}

static void pt_dir_scan_add(struct pt_dir_scan *s, uint8_t type, uint32_t off, uint32_t len,
                            uint64_t h)
{
    struct petrel_fs_dir *dir = s->dir;
    uint32_t k, j;
    if (off + len > s->end) s->end = off + len;
    if (dir->have_last && h <= dir->last_hash) return;
    for (k = 0; k < s->n && dir->batch[k].hash < h; k++) {
    }
    if (k < s->n && dir->batch[k].hash == h) {
        /* a later record of a name already kept supersedes the earlier one */
        dir->batch[k].off = off;
        dir->batch[k].len = len;
        s->dead[k] = type == PT_REC_DELETE;
        return;
    }
    if (k == PETREL_FS_DIR_BATCH) {
        s->evicted = 1; /* above every kept hash, and no room */
        return;
    }
    if (s->n == PETREL_FS_DIR_BATCH)
        s->evicted = 1; /* the highest kept hash makes room */
    else
        s->n++;
    for (j = s->n - 1; j > k; j--) {
        dir->batch[j] = dir->batch[j - 1];
        s->dead[j] = s->dead[j - 1];
    }
    dir->batch[k].hash = h;
    dir->batch[k].off = off;
    dir->batch[k].len = len;
    s->dead[k] = type == PT_REC_DELETE;
}

static void pt_dir_scan_finish(struct pt_dir_scan *s, const struct pt_mdir *md)
{
    struct petrel_fs_dir *dir = s->dir;
    uint32_t k, j;
    for (k = 0, j = 0; k < s->n; k++)
        if (!s->dead[k]) dir->batch[j++] = dir->batch[k];
    if (j == 0 && s->n > 0) {
        /* every name kept is gone: the next scan starts above them */
        dir->last_hash = dir->batch[s->n - 1].hash;
        dir->have_last = 1;
    }
    dir->batch_n = (uint8_t)j;
    dir->batch_i = 0;
    dir->batch_last = (uint8_t)!s->evicted;
    dir->batch_block = md->pair[0];
    dir->batch_off = md->off;
    dir->batch_rev = md->rev;
}

/* The records a cold fetch parses, as it parses them: a block change (the newer block
 * failed) starts over. */
static void pt_dir_scan_visit(void *ctx, uint32_t block, uint8_t type, uint32_t off,
                              uint32_t len, uint64_t hash)
{
    struct pt_dir_scan *s = (struct pt_dir_scan *)ctx;
    if (block != s->block) pt_dir_scan_init(s, s->dir, block);
    if (len < 8) s->unusable = 1; /* malformed: the scan below decides as it always did */
    pt_dir_scan_add(s, type, off, len, hash);
}

/* Scan md once into the batch. */
static int pt_dir_scan_batch(struct petrel_fs *fs, struct petrel_fs_dir *dir,
                             const struct pt_mdir *md)
{
    struct pt_rec_ref rec = {0, 0, 0};
    struct pt_dir_scan s;
    uint32_t pos = 0;
    int err;
    pt_dir_scan_init(&s, dir, md->pair[0]);
    while ((err = pt_rec_next(fs, md, &pos, &rec)) == 1) {
        uint64_t h;
        uint8_t a;
        if (rec.type != PT_REC_ENTRY && rec.type != PT_REC_DELETE) continue;
        err = pt_rec_hash(fs, md, &rec, &h, &a);
        if (err) return err;
        pt_dir_scan_add(&s, rec.type, rec.off, rec.len, h);
    }
    if (err < 0) return err;
    pt_dir_scan_finish(&s, md);
    return 0;
}

/* Fetch a pair not remembered and build the batch from the records the fetch parses, so its
 * log is read once (the batch is the scan's when every record seen lies inside the log the
 * fetch found valid; otherwise, after a torn commit, the log is scanned again). */
static int pt_dir_fetch_batch(struct petrel_fs *fs, struct petrel_fs_dir *dir,
                              struct pt_mdir *md)
{
    struct pt_dir_scan s;
    struct pt_fetch_visit v;
    int err;
    pt_dir_scan_init(&s, dir, PT_NULL);
    v.fn = pt_dir_scan_visit;
    v.ctx = &s;
    err = pt_mdir_fetch_visit(fs, md, dir->pair, &v);
    if (err) return err;
    if (s.block == md->pair[0] && !s.unusable && s.end <= md->off) {
        pt_dir_scan_finish(&s, md);
        return 0;
    }
    return pt_dir_scan_batch(fs, dir, md);
}

int petrel_fs_dir_read(struct petrel_fs *fs, struct petrel_fs_dir *dir,
                       struct petrel_fs_info *info)
{
    PT_REQUIRE_MOUNTED(fs);
    uint32_t guard;
    for (guard = 0; guard <= fs->block_count; guard++) {
        const struct petrel_fs_link *l;
        struct pt_mdir md;
        int err;
        if (dir->at_end) return 0;
        /* the batch holds while the pair's log is unchanged (its remembered state) */
        l = pt_links_find(fs, dir->pair);
        if (dir->batch_n && !(l && l->pair[0] == dir->batch_block &&
                              l->off == dir->batch_off && l->rev == dir->batch_rev))
            dir->batch_n = dir->batch_i = dir->batch_last = 0;
        if (dir->batch_i < dir->batch_n) return pt_dir_serve(fs, dir, info);
        if (dir->batch_n && dir->batch_last && l) {
            /* the pair is done: on to the next one without reading it again */
            memset(&md, 0, sizeof(md));
            md.next_cont = l->next_cont;
            md.next[0] = l->next[0];
            md.next[1] = l->next[1];
        } else {
            if (l && l->off) {
                /* a remembered log is scanned as it is, without fetching it again */
                memset(&md, 0, sizeof(md));
                md.pair[0] = l->pair[0];
                md.pair[1] = l->pair[1];
                md.off = l->off;
                md.rev = l->rev;
                err = pt_dir_scan_batch(fs, dir, &md);
            } else {
                err = pt_dir_fetch_batch(fs, dir, &md);
            }
            if (err) return err;
            if (dir->batch_n > 0) return pt_dir_serve(fs, dir, info);
            if (!dir->batch_last) continue; /* only dead names were kept: scan again */
            l = pt_links_find(fs, dir->pair);
            if (!l) {
                err = pt_mdir_fetch(fs, &md, dir->pair, NULL);
                if (err) return err;
            } else {
                md.next_cont = l->next_cont;
                md.next[0] = l->next[0];
                md.next[1] = l->next[1];
            }
        }
        dir->batch_n = dir->batch_i = dir->batch_last = 0;
        if (!md.next_cont) {
            dir->at_end = 1;
            return 0;
        }
        dir->pair[0] = md.next[0];
        dir->pair[1] = md.next[1];
    }
    return -PT_ECORRUPT;
}

int petrel_fs_dir_rewind(struct petrel_fs *fs, struct petrel_fs_dir *dir)
{
    PT_REQUIRE_MOUNTED(fs);
    (void)fs;
    memcpy(dir->pair, dir->head, sizeof(dir->pair));
    dir->have_last = 0;
    dir->last_hash = 0;
    dir->at_end = 0;
    dir->pos = 0;
    dir->batch_n = dir->batch_i = dir->batch_last = 0;
    return 0;
}

int petrel_fs_dir_seek(struct petrel_fs *fs, struct petrel_fs_dir *dir, uint64_t off)
{
    PT_REQUIRE_MOUNTED(fs);
    struct petrel_fs_info info;
    int err = petrel_fs_dir_rewind(fs, dir);
    while (!err && dir->pos < off) {
        err = petrel_fs_dir_read(fs, dir, &info);
        if (err == 0) return 0; /* past the end: stays at the end */
        if (err == 1) err = 0;
    }
    return err;
}

int64_t petrel_fs_dir_tell(struct petrel_fs *fs, struct petrel_fs_dir *dir)
{
    PT_REQUIRE_MOUNTED(fs);
    (void)fs;
    return (int64_t)dir->pos;
}

int petrel_fs_dir_close(struct petrel_fs *fs, struct petrel_fs_dir *dir)
{
    PT_REQUIRE_MOUNTED(fs);
    pt_handle_remove(fs, &dir->h);
    return 0;
}

/* Exposed to file.c. */
void pt_handle_link(struct petrel_fs *fs, struct petrel_fs_handle *h, uint8_t kind);
void pt_handle_unlink(struct petrel_fs *fs, struct petrel_fs_handle *h);
void pt_handle_link(struct petrel_fs *fs, struct petrel_fs_handle *h, uint8_t kind)
{
    pt_handle_add(fs, h, kind);
}
void pt_handle_unlink(struct petrel_fs *fs, struct petrel_fs_handle *h)
{
    pt_handle_remove(fs, h);
}
