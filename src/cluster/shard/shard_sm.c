/*
 * The shard state machine over LMDB (see shard_sm.h for the contract, docs/SPEC-SHARD.md for
 * every key and value). Owns the store layout and the rules of every shard operation.
 *
 * Invariants kept by apply:
 *  - a directory entry points at an inode; a linked file is reachable only through entries;
 *  - a file's size is the sum of its spans, spans are contiguous from offset 0;
 *  - a file is linked only when every span is certified; its content changes after only by
 *    COMMIT_CHANGE, which swaps in a change file's spans whole (issue 12);
 *  - a block copy is erased only when no span record lists it (blockidx + blockrefs holders);
 *  - every block of every span has one block-index entry (service, block) -> (file, offset);
 *  - an entry locked by a CDC transaction changes only through that transaction.
 * Never reads the clock, never does network or file I/O outside LMDB.
 */
#include "cluster/shard/shard_sm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/hash.h"

/* Keys are big-endian so that LMDB's byte order is numeric order. */
static void key_put_be64(uint8_t *p, uint64_t v)
{
    int i;
    for (i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}
static uint64_t key_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

int pt_shard_sm_mdb_error(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return -PT_ENOENT;
    case MDB_MAP_FULL:
        return -PT_ENOSPC;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
        return -PT_ECORRUPT;
    case ENOMEM:
        return -PT_ENOMEM;
    default:
        return -PT_EIO;
    }
}

/* The short name used throughout this file. */
static int map_mdb(int rc)
{
    return pt_shard_sm_mdb_error(rc);
}

/* ---- records ------------------------------------------------------------------------- */

struct inode_rec {
    uint8_t type;
    /* directories */
    uint64_t parent;
    /* files */
    uint8_t state;
    uint64_t size;
    uint64_t cookie;
    uint64_t deadline;
    uint32_t n_spans; /* files: spans; directories: entries of type directory (subdirs) */
    /* POSIX attributes (issue 11; a 46-byte record from before has defaults, inode_decode) */
    uint32_t mode; /* type bits | permission bits */
    uint32_t uid, gid;
    uint64_t atime, mtime, ctime; /* ns since the epoch */
    uint64_t rdev;
    uint64_t version; /* bumped by every change of a file's content (issue 12 compares it) */
    uint16_t target_len;
    char target[PT_SYMLINK_MAX + 1]; /* symlinks */
};

#define INODE_REC_V1_LEN 46 /* before issue 11: no POSIX attributes */
#define INODE_REC_LEN 100   /* plus the symlink target */
#define NS_PER_MS 1000000u

static void inode_encode(const struct inode_rec *r, uint8_t *out)
{
    struct pt_cursor c;
    pt_cursor_init(&c, out, INODE_REC_LEN + r->target_len);
    pt_enc_u8(&c, r->type);
    pt_enc_u64(&c, r->mtime / NS_PER_MS); /* the ms field of the first layout, kept in step */
    pt_enc_u64(&c, r->parent);
    pt_enc_u8(&c, r->state);
    pt_enc_u64(&c, r->size);
    pt_enc_u64(&c, r->cookie);
    pt_enc_u64(&c, r->deadline);
    pt_enc_u32(&c, r->n_spans);
    pt_enc_u32(&c, r->mode);
    pt_enc_u32(&c, r->uid);
    pt_enc_u32(&c, r->gid);
    pt_enc_u64(&c, r->atime);
    pt_enc_u64(&c, r->mtime);
    pt_enc_u64(&c, r->ctime);
    pt_enc_u64(&c, r->rdev);
    pt_enc_u64(&c, r->version);
    pt_enc_u16(&c, r->target_len);
    pt_enc_bytes(&c, r->target, r->target_len);
}

static int inode_decode(struct inode_rec *r, const MDB_val *v)
{
    struct pt_cursor c;
    uint64_t mtime_ms;
    const uint8_t *p;
    if (v->mv_size != INODE_REC_V1_LEN && v->mv_size < INODE_REC_LEN) return -PT_ECORRUPT;
    pt_cursor_init(&c, v->mv_data, v->mv_size);
    r->type = pt_dec_u8(&c);
    mtime_ms = pt_dec_u64(&c);
    r->parent = pt_dec_u64(&c);
    r->state = pt_dec_u8(&c);
    r->size = pt_dec_u64(&c);
    r->cookie = pt_dec_u64(&c);
    r->deadline = pt_dec_u64(&c);
    r->n_spans = pt_dec_u32(&c);
    if (!PT_TYPE_VALID(r->type)) return -PT_ECORRUPT;
    r->target_len = 0;
    r->target[0] = 0;
    if (v->mv_size == INODE_REC_V1_LEN) {
        /* Before issue 11: directories 0755, files 0644, owned by root, one time for all. */
        if (r->type != PT_TYPE_DIR && r->type != PT_TYPE_FILE) return -PT_ECORRUPT;
        r->mode = pt_type_mode(r->type) | (r->type == PT_TYPE_DIR ? 0755u : 0644u);
        r->uid = r->gid = 0;
        r->atime = r->mtime = r->ctime = mtime_ms * NS_PER_MS;
        r->rdev = 0;
        r->version = 0;
        return 0;
    }
    r->mode = pt_dec_u32(&c);
    r->uid = pt_dec_u32(&c);
    r->gid = pt_dec_u32(&c);
    r->atime = pt_dec_u64(&c);
    r->mtime = pt_dec_u64(&c);
    r->ctime = pt_dec_u64(&c);
    r->rdev = pt_dec_u64(&c);
    r->version = pt_dec_u64(&c);
    r->target_len = pt_dec_u16(&c);
    if (r->target_len > PT_SYMLINK_MAX || v->mv_size != INODE_REC_LEN + (size_t)r->target_len)
        return -PT_ECORRUPT;
    if (pt_mode_type(r->mode) != r->type) return -PT_ECORRUPT;
    p = pt_cursor_take(&c, r->target_len);
    if (!p || !pt_cursor_ok(&c)) return -PT_ECORRUPT;
    memcpy(r->target, p, r->target_len);
    r->target[r->target_len] = 0;
    return 0;
}

/* A new inode of `type` made at entry time `now` (ms): every time is now, the default mode
 * (0755 directories, 0644 otherwise) and owner 0:0 unless the request carries attributes. */
static void inode_new(struct inode_rec *r, uint8_t type, uint64_t now, const struct pt_shard_req *q)
{
    memset(r, 0, sizeof(*r));
    r->type = type;
    r->mode = pt_type_mode(type) | (type == PT_TYPE_DIR ? 0755u : 0644u);
    if (q->has_attr) {
        r->mode = pt_type_mode(type) | (q->attr.mode & PT_MODE_PERM);
        r->uid = q->attr.uid;
        r->gid = q->attr.gid;
    }
    r->atime = r->mtime = r->ctime = now * NS_PER_MS;
}

/* Content changed at entry time now (ms): mtime and ctime. */
static void inode_changed(struct inode_rec *r, uint64_t now)
{
    r->mtime = r->ctime = now * NS_PER_MS;
}

struct dirent_rec {
    uint64_t id;
    uint8_t type;
    uint64_t lock_txn; /* 0: unlocked */
    uint64_t mtime;
};
#define DIRENT_REC_LEN 25

static void dirent_encode(const struct dirent_rec *r, uint8_t *out)
{
    pt_put_le64(out, r->id);
    out[8] = r->type;
    pt_put_le64(out + 9, r->lock_txn);
    pt_put_le64(out + 17, r->mtime);
}
static int dirent_decode(struct dirent_rec *r, const MDB_val *v)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size != DIRENT_REC_LEN) return -PT_ECORRUPT;
    r->id = pt_get_le64(p);
    r->type = p[8];
    r->lock_txn = pt_get_le64(p + 9);
    r->mtime = pt_get_le64(p + 17);
    return 0;
}

/* ---- store access ---------------------------------------------------------------------- */

static int inode_get(struct pt_shard_sm *sm, MDB_txn *t, uint64_t id, struct inode_rec *r)
{
    uint8_t k[8];
    MDB_val key = {8, k}, val;
    int rc;
    memset(r, 0, sizeof(*r));
    key_put_be64(k, id);
    rc = mdb_get(t, sm->inodes, &key, &val);
    if (rc) return map_mdb(rc);
    return inode_decode(r, &val);
}

static int inode_put(struct pt_shard_sm *sm, MDB_txn *t, uint64_t id, const struct inode_rec *r)
{
    uint8_t k[8], v[INODE_REC_LEN + PT_SYMLINK_MAX];
    MDB_val key = {8, k}, val = {INODE_REC_LEN + (size_t)r->target_len, v};
    key_put_be64(k, id);
    inode_encode(r, v);
    return map_mdb(mdb_put(t, sm->inodes, &key, &val, 0));
}

static int inode_del(struct pt_shard_sm *sm, MDB_txn *t, uint64_t id)
{
    uint8_t k[8];
    MDB_val key = {8, k};
    key_put_be64(k, id);
    return map_mdb(mdb_del(t, sm->inodes, &key, NULL));
}

static size_t dirent_key(uint8_t *k, uint64_t dir, const char *name, size_t len)
{
    key_put_be64(k, dir);
    key_put_be64(k + 8, petrel_hash64(name, len, 0));
    memcpy(k + 16, name, len);
    return 16 + len;
}

static int dirent_get(struct pt_shard_sm *sm, MDB_txn *t, uint64_t dir, const char *name,
                      size_t len, struct dirent_rec *r)
{
    uint8_t k[16 + PT_NAME_MAX];
    MDB_val key, val;
    int rc;
    key.mv_size = dirent_key(k, dir, name, len);
    key.mv_data = k;
    rc = mdb_get(t, sm->dirents, &key, &val);
    if (rc) return map_mdb(rc);
    return dirent_decode(r, &val);
}

/*
 * The directory's count of entries of type directory (its link count is 2 + that, the STAT
 * reply's nlink): every put and delete of an entry goes through dirent_put/dirent_del with the
 * directory's record `d`, which they keep in step (the caller writes `d` back in the same
 * transaction). d is NULL only where the entry's type cannot change (LOCK/UNLOCK_ENTRY).
 */
static int dirent_was_dir(struct pt_shard_sm *sm, MDB_txn *t, MDB_val *key)
{
    MDB_val val;
    struct dirent_rec old;
    int rc = mdb_get(t, sm->dirents, key, &val);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return map_mdb(rc);
    if ((rc = dirent_decode(&old, &val)) != 0) return rc;
    return old.type == PT_TYPE_DIR;
}

static int dirent_put(struct pt_shard_sm *sm, MDB_txn *t, uint64_t dir, struct inode_rec *d,
                      const char *name, size_t len, const struct dirent_rec *r)
{
    uint8_t k[16 + PT_NAME_MAX], v[DIRENT_REC_LEN];
    MDB_val key, val = {DIRENT_REC_LEN, v};
    int was = 0, rc;
    key.mv_size = dirent_key(k, dir, name, len);
    key.mv_data = k;
    if (d && (was = dirent_was_dir(sm, t, &key)) < 0) return was;
    dirent_encode(r, v);
    if ((rc = mdb_put(t, sm->dirents, &key, &val, 0)) != 0) return map_mdb(rc);
    if (d) d->n_spans = d->n_spans - (uint32_t)was + (r->type == PT_TYPE_DIR);
    return 0;
}

static int dirent_del(struct pt_shard_sm *sm, MDB_txn *t, uint64_t dir, struct inode_rec *d,
                      const char *name, size_t len)
{
    uint8_t k[16 + PT_NAME_MAX];
    MDB_val key;
    int was, rc;
    key.mv_size = dirent_key(k, dir, name, len);
    key.mv_data = k;
    if ((was = dirent_was_dir(sm, t, &key)) < 0) return was;
    if ((rc = mdb_del(t, sm->dirents, &key, NULL)) != 0) return map_mdb(rc);
    d->n_spans -= (uint32_t)was;
    return 0;
}

/* Whether a directory has any entry: one range search on its key prefix. */
static int dir_is_empty(struct pt_shard_sm *sm, MDB_txn *t, uint64_t dir)
{
    MDB_cursor *cur;
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    int rc, empty;
    key_put_be64(k, dir);
    memset(k + 8, 0, 8);
    rc = mdb_cursor_open(t, sm->dirents, &cur);
    if (rc) return map_mdb(rc);
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    empty =
        rc == MDB_NOTFOUND || (rc == 0 && (key.mv_size < 8 || key_get_be64(key.mv_data) != dir));
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    return empty;
}

static int meta_next(struct pt_shard_sm *sm, MDB_txn *t, const char *name, uint64_t *out)
{
    MDB_val key = {strlen(name), (void *)name}, val;
    uint8_t v[8];
    uint64_t next = 2; /* sequence 1 is the root directory */
    int rc = mdb_get(t, sm->meta, &key, &val);
    if (rc == 0 && val.mv_size == 8)
        next = pt_get_le64(val.mv_data);
    else if (rc != MDB_NOTFOUND)
        return rc ? map_mdb(rc) : -PT_ECORRUPT;
    if (next > 0x00FFFFFFFFFFFFFFull) return -PT_ENOSPC;
    *out = next;
    pt_put_le64(v, next + 1);
    val.mv_size = 8;
    val.mv_data = v;
    return map_mdb(mdb_put(t, sm->meta, &key, &val, 0));
}

static int transient_index(struct pt_shard_sm *sm, MDB_txn *t, uint64_t deadline, uint64_t id,
                           int add)
{
    uint8_t k[16];
    MDB_val key = {16, k}, val = {0, k};
    int rc;
    key_put_be64(k, deadline);
    key_put_be64(k + 8, id);
    if (add) return map_mdb(mdb_put(t, sm->transient, &key, &val, 0));
    rc = mdb_del(t, sm->transient, &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : map_mdb(rc);
}

/* A CDC step already done by txn: its recorded result. */
static int txn_get(struct pt_shard_sm *sm, MDB_txn *t, uint64_t txn, uint8_t op, uint64_t *res)
{
    uint8_t k[9];
    MDB_val key = {9, k}, val;
    int rc;
    key_put_be64(k, txn);
    k[8] = op;
    rc = mdb_get(t, sm->txns, &key, &val);
    if (rc) return map_mdb(rc);
    if (val.mv_size != 8) return -PT_ECORRUPT;
    *res = pt_get_le64(val.mv_data);
    return 0;
}
static int txn_put(struct pt_shard_sm *sm, MDB_txn *t, uint64_t txn, uint8_t op, uint64_t res)
{
    uint8_t k[9], v[8];
    MDB_val key = {9, k}, val = {8, v};
    key_put_be64(k, txn);
    k[8] = op;
    pt_put_le64(v, res);
    return map_mdb(mdb_put(t, sm->txns, &key, &val, 0));
}

/* ---- open / close ---------------------------------------------------------------------- */

static int wipe_store(const char *dir)
{
    char path[4096];
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    size_t i;
    for (i = 0; i < PT_ARRAY_SIZE(files); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        if (unlink(path) != 0 && errno != ENOENT) return -PT_EIO;
    }
    return 0;
}

int pt_shard_sm_open(struct pt_shard_sm *sm, const char *dir, unsigned shard, int fresh)
{
    MDB_txn *t;
    int rc;
    memset(sm, 0, sizeof(*sm));
    if (shard >= PT_SHARD_MAX) return -PT_EINVAL;
    sm->shard = shard;
    sm->transient_ttl_ms = PT_SHARD_TRANSIENT_TTL_MS;
    sm->retention_ms = PT_SHARD_RETENTION_MS;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -PT_EIO;
    if (fresh && (rc = wipe_store(dir)) != 0) return rc;
    if ((rc = mdb_env_create(&sm->env)) != 0) return map_mdb(rc);
    mdb_env_set_maxdbs(sm->env, 16);
    mdb_env_set_mapsize(sm->env, (size_t)4 << 30);
    /* The Raft log is the write-ahead log; the store is rebuilt from it, so no fsync here. */
    rc = mdb_env_open(sm->env, dir, MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS, 0644);
    if (rc) goto fail;
    if ((rc = mdb_txn_begin(sm->env, NULL, 0, &t)) != 0) goto fail;
    if ((rc = mdb_dbi_open(t, "inodes", MDB_CREATE, &sm->inodes)) ||
        (rc = mdb_dbi_open(t, "dirents", MDB_CREATE, &sm->dirents)) ||
        (rc = mdb_dbi_open(t, "spans", MDB_CREATE, &sm->spans)) ||
        (rc = mdb_dbi_open(t, "blockidx", MDB_CREATE, &sm->blockidx)) ||
        (rc = mdb_dbi_open(t, "meta", MDB_CREATE, &sm->meta)) ||
        (rc = mdb_dbi_open(t, "txns", MDB_CREATE, &sm->txns)) ||
        (rc = mdb_dbi_open(t, "transient", MDB_CREATE, &sm->transient)) ||
        (rc = mdb_dbi_open(t, "dropped", MDB_CREATE, &sm->dropped)) ||
        (rc = mdb_dbi_open(t, "policy", MDB_CREATE, &sm->policy)) ||
        (rc = mdb_dbi_open(t, "repairq", MDB_CREATE, &sm->repairq)) ||
        (rc = mdb_dbi_open(t, "blockrefs", MDB_CREATE, &sm->blockrefs)) ||
        (rc = mdb_dbi_open(t, "changes", MDB_CREATE, &sm->changes))) {
        mdb_txn_abort(t);
        goto fail;
    }
    if (shard == 0) {
        struct inode_rec root;
        if (inode_get(sm, t, PT_INODE_ROOT, &root) == -PT_ENOENT) {
            struct pt_shard_req none;
            memset(&none, 0, sizeof(none));
            inode_new(&root, PT_TYPE_DIR, 0, &none);
            /* Owned by the user running the shard (every replica of shard 0 runs as the same
             * user); its times are stamped by the first applied entry (root_stamp). */
            root.uid = (uint32_t)geteuid();
            root.gid = (uint32_t)getegid();
            root.parent = PT_INODE_ROOT;
            if ((rc = inode_put(sm, t, PT_INODE_ROOT, &root)) != 0) {
                mdb_txn_abort(t);
                mdb_env_close(sm->env);
                sm->env = NULL;
                return rc;
            }
        }
    }
    if ((rc = mdb_txn_commit(t)) != 0) goto fail;
    return 0;
fail:
    mdb_env_close(sm->env);
    sm->env = NULL;
    return map_mdb(rc);
}

void pt_shard_sm_close(struct pt_shard_sm *sm)
{
    if (sm->env) mdb_env_close(sm->env);
    sm->env = NULL;
}

int pt_shard_entry_add(struct pt_shard_entry_builder *b, const struct pt_shard_req *req)
{
    int n;
    if (b->failed) return -PT_EOVERFLOW;
    if (b->count == PT_SHARD_BATCH_MAX) return -PT_E2BIG;
    if (b->cap - b->pos < 4) return -PT_EOVERFLOW;
    n = pt_shard_req_encode(req, b->buf + b->pos + 4, b->cap - b->pos - 4);
    if (n < 0) return n;
    pt_put_le32(b->buf + b->pos, (uint32_t)n);
    b->pos += 4 + (size_t)n;
    b->count++;
    return 0;
}

/* ---- operations -------------------------------------------------------------------------- */

struct apply_ctx {
    struct pt_shard_sm *sm;
    MDB_txn *t;
    uint64_t now;
    struct pt_cursor out; /* reply body */
};

/* The file a writer may still change: transient, right cookie. */
static int writable_file(struct apply_ctx *a, const struct pt_shard_req *q, struct inode_rec *f)
{
    int rc = inode_get(a->sm, a->t, q->id, f);
    if (rc) return rc;
    if (f->type != PT_TYPE_FILE) return -PT_EISDIR;
    if (f->state != PT_FILE_TRANSIENT) return -PT_ESTALE;
    if (f->cookie != q->cookie) return -PT_EACCES;
    return 0;
}

/* A writer that acts keeps its file alive: move the deadline. */
static int touch_transient(struct apply_ctx *a, uint64_t id, struct inode_rec *f)
{
    int rc = transient_index(a->sm, a->t, f->deadline, id, 0);
    if (rc) return rc;
    f->deadline = a->now + a->sm->transient_ttl_ms;
    inode_changed(f, a->now);
    f->version++;
    return transient_index(a->sm, a->t, f->deadline, id, 1);
}

static int span_key(uint8_t *k, uint64_t file, uint64_t offset)
{
    key_put_be64(k, file);
    key_put_be64(k + 8, offset);
    return 16;
}

static int span_put(struct apply_ctx *a, uint64_t file, const struct pt_span *s)
{
    uint8_t k[16], v[PT_SPAN_RECORD_MAX + PT_INLINE_MAX];
    struct pt_cursor c;
    MDB_val key = {16, k}, val;
    span_key(k, file, s->offset);
    pt_cursor_init(&c, v, sizeof(v));
    pt_span_encode(&c, s);
    if (!pt_cursor_ok(&c)) return -PT_EOVERFLOW;
    val.mv_size = c.pos;
    val.mv_data = v;
    return map_mdb(mdb_put(a->t, a->sm->spans, &key, &val, 0));
}

static int span_get(struct pt_shard_sm *sm, MDB_txn *t, uint64_t file, uint64_t off,
                    struct pt_span *s)
{
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    struct pt_cursor c;
    int rc;
    span_key(k, file, off);
    rc = mdb_get(t, sm->spans, &key, &val);
    if (rc) return map_mdb(rc);
    pt_cursor_init(&c, val.mv_data, val.mv_size);
    return pt_span_decode(&c, s) ? -PT_ECORRUPT : 0;
}

/* ---- shared spans (issue 12) ---------------------------------------------------------------
 *
 * A change file starts with copies of its base file's span records: the same blocks, listed
 * by two span records. `blockidx` names one holder (file, offset) of a copy (service, block);
 * every other span record that lists the copy has a key in `blockrefs`. A copy is free (GC may
 * erase it) only when it has no holder left; every path that removes a span record releases
 * its holders through holder_release, and a copy whose last holder goes is erased after the
 * retention period (table `dropped`) unless GC erases it with its file (FORGET_FILE).
 */

static void ref_key(uint8_t *k, uint64_t service, uint64_t block, uint64_t file, uint64_t off)
{
    key_put_be64(k, service);
    key_put_be64(k + 8, block);
    key_put_be64(k + 16, file);
    key_put_be64(k + 24, off);
}

/* The holder blockidx names for a copy: 0, or -PT_ENOENT when none. */
static int holder_primary(struct pt_shard_sm *sm, MDB_txn *t, uint64_t service, uint64_t block,
                          uint64_t *file, uint64_t *off)
{
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    int rc;
    key_put_be64(k, service);
    key_put_be64(k + 8, block);
    if ((rc = mdb_get(t, sm->blockidx, &key, &val)) != 0) return map_mdb(rc);
    if (val.mv_size != 16) return -PT_ECORRUPT;
    *file = pt_get_le64(val.mv_data);
    *off = pt_get_le64((const uint8_t *)val.mv_data + 8);
    return 0;
}

static int holder_set_primary(struct pt_shard_sm *sm, MDB_txn *t, uint64_t service,
                              uint64_t block, uint64_t file, uint64_t off)
{
    uint8_t k[16], v[16];
    MDB_val key = {16, k}, val = {16, v};
    key_put_be64(k, service);
    key_put_be64(k + 8, block);
    pt_put_le64(v, file);
    pt_put_le64(v + 8, off);
    return map_mdb(mdb_put(t, sm->blockidx, &key, &val, 0));
}

/* The first holder of a copy in `blockrefs` (1 found, 0 none, or an error), after (file, off)
 * when `after` is set (a scan of every secondary holder). */
static int holder_next(struct pt_shard_sm *sm, MDB_txn *t, uint64_t service, uint64_t block,
                       int after, uint64_t *file, uint64_t *off)
{
    MDB_cursor *cur;
    uint8_t k[32];
    MDB_val key = {32, k}, val;
    int rc, found = 0;
    ref_key(k, service, block, after ? *file : 0, after ? *off : 0);
    if ((rc = mdb_cursor_open(t, sm->blockrefs, &cur)) != 0) return map_mdb(rc);
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (rc == 0 && after && key.mv_size == 32 && memcmp(key.mv_data, k, 32) == 0)
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    if (rc == 0 && key.mv_size == 32 && key_get_be64(key.mv_data) == service &&
        key_get_be64((const uint8_t *)key.mv_data + 8) == block) {
        *file = key_get_be64((const uint8_t *)key.mv_data + 16);
        *off = key_get_be64((const uint8_t *)key.mv_data + 24);
        found = 1;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    return found;
}

static int holder_ref(struct pt_shard_sm *sm, MDB_txn *t, uint64_t service, uint64_t block,
                      uint64_t file, uint64_t off, int add)
{
    uint8_t k[32];
    MDB_val key = {32, k}, val = {0, k};
    int rc;
    ref_key(k, service, block, file, off);
    if (add) return map_mdb(mdb_put(t, sm->blockrefs, &key, &val, 0));
    rc = mdb_del(t, sm->blockrefs, &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : map_mdb(rc);
}

/* One more span record (file, off) lists the copy. */
static int holder_add(struct apply_ctx *a, uint64_t service, uint64_t block, uint64_t file,
                      uint64_t off)
{
    uint64_t pf, po;
    int rc = holder_primary(a->sm, a->t, service, block, &pf, &po);
    if (rc == -PT_ENOENT) return holder_set_primary(a->sm, a->t, service, block, file, off);
    if (rc) return rc;
    return holder_ref(a->sm, a->t, service, block, file, off, 1);
}

/* The span record (file, off) no longer lists the copy: 1 when other holders remain, 0 when
 * that was the last one (the copy is free), or an error. */
static int holder_release(struct apply_ctx *a, uint64_t service, uint64_t block, uint64_t file,
                          uint64_t off)
{
    uint64_t pf, po, nf = 0, no = 0;
    int rc = holder_primary(a->sm, a->t, service, block, &pf, &po);
    if (rc && rc != -PT_ENOENT) return rc;
    if (rc == 0 && (pf != file || po != off)) {
        if ((rc = holder_ref(a->sm, a->t, service, block, file, off, 0)) != 0) return rc;
        return 1;
    }
    /* It was the primary (or there is none): promote the next holder. */
    if ((rc = holder_next(a->sm, a->t, service, block, 0, &nf, &no)) < 0) return rc;
    if (rc == 0) {
        uint8_t k[16];
        MDB_val key = {16, k};
        key_put_be64(k, service);
        key_put_be64(k + 8, block);
        rc = mdb_del(a->t, a->sm->blockidx, &key, NULL);
        return rc && rc != MDB_NOTFOUND ? map_mdb(rc) : 0;
    }
    if ((rc = holder_ref(a->sm, a->t, service, block, nf, no, 0)) != 0 ||
        (rc = holder_set_primary(a->sm, a->t, service, block, nf, no)) != 0)
        return rc;
    return 1;
}

/* The span record of the copy moved from (file, off) to (to, off) (a commit's swap). */
static int holder_move(struct apply_ctx *a, uint64_t service, uint64_t block, uint64_t file,
                       uint64_t to, uint64_t off)
{
    uint64_t pf, po;
    int rc = holder_primary(a->sm, a->t, service, block, &pf, &po);
    if (rc && rc != -PT_ENOENT) return rc;
    if (rc == -PT_ENOENT || (pf == file && po == off))
        return holder_set_primary(a->sm, a->t, service, block, to, off);
    if ((rc = holder_ref(a->sm, a->t, service, block, file, off, 0)) != 0) return rc;
    return holder_ref(a->sm, a->t, service, block, to, off, 1);
}

/* A copy no span lists any more: GC erases it after the retention period. */
static int copy_dropped(struct apply_ctx *a, uint64_t service, uint64_t block, uint32_t crc,
                        uint32_t size)
{
    uint8_t dk[24], dv[8];
    MDB_val dkey = {24, dk}, dval = {8, dv};
    key_put_be64(dk, a->now);
    key_put_be64(dk + 8, service);
    key_put_be64(dk + 16, block);
    pt_put_le32(dv, crc);
    pt_put_le32(dv + 4, size);
    return map_mdb(mdb_put(a->t, a->sm->dropped, &dkey, &dval, 0));
}

/* Span s of file leaves it (a change's truncate or overwrite): release its copies. */
static int span_release(struct apply_ctx *a, uint64_t file, const struct pt_span *s)
{
    unsigned i;
    int rc;
    for (i = 0; i < pt_span_block_count(s); i++) {
        rc = holder_release(a, s->blocks[i].service, s->blocks[i].block, file, s->offset);
        if (rc < 0) return rc;
        if (rc == 0 &&
            (rc = copy_dropped(a, s->blocks[i].service, s->blocks[i].block, s->blocks[i].crc,
                               s->block_size)) != 0)
            return rc;
    }
    return 0;
}

/* Span records of a file copied out of the store (a change rewrites keys while it reads). */
struct span_raw {
    uint64_t offset;
    size_t len;
    uint8_t *val;
};

static void spans_free(struct span_raw *v, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        free(v[i].val);
    free(v);
}

/* The records of `file` whose offset is in [from, to), in offset order. */
static int spans_load(struct apply_ctx *a, uint64_t file, uint64_t from, uint64_t to,
                      struct span_raw **out, size_t *n)
{
    MDB_cursor *cur;
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    struct span_raw *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc, err = 0;
    *out = NULL;
    *n = 0;
    span_key(k, file, from);
    if ((rc = mdb_cursor_open(a->t, a->sm->spans, &cur)) != 0) return map_mdb(rc);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        uint64_t off;
        if (key.mv_size != 16 || key_get_be64(key.mv_data) != file) break;
        off = key_get_be64((const uint8_t *)key.mv_data + 8);
        if (off >= to) break;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct span_raw *nv = realloc(v, nc * sizeof(*nv));
            if (!nv) {
                err = -PT_ENOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        v[cnt].offset = off;
        v[cnt].len = val.mv_size;
        v[cnt].val = malloc(val.mv_size ? val.mv_size : 1);
        if (!v[cnt].val) {
            err = -PT_ENOMEM;
            break;
        }
        memcpy(v[cnt].val, val.mv_data, val.mv_size);
        cnt++;
    }
    mdb_cursor_close(cur);
    if (!err && rc && rc != MDB_NOTFOUND) err = map_mdb(rc);
    if (err) {
        spans_free(v, cnt);
        return err;
    }
    *out = v;
    *n = cnt;
    return 0;
}

static int span_raw_decode(const struct span_raw *r, struct pt_span *s)
{
    struct pt_cursor c;
    pt_cursor_init(&c, r->val, r->len);
    if (pt_span_decode(&c, s) || s->offset != r->offset) return -PT_ECORRUPT;
    return 0;
}

static int span_raw_put(struct apply_ctx *a, uint64_t file, const struct span_raw *r)
{
    uint8_t k[16];
    MDB_val key = {16, k}, val = {r->len, r->val};
    span_key(k, file, r->offset);
    return map_mdb(mdb_put(a->t, a->sm->spans, &key, &val, 0));
}

static int span_raw_del(struct apply_ctx *a, uint64_t file, uint64_t offset)
{
    uint8_t k[16];
    MDB_val key = {16, k};
    span_key(k, file, offset);
    return map_mdb(mdb_del(a->t, a->sm->spans, &key, NULL));
}

/* `changes` record of a change file: its base file, the base's version it started from, and
 * (once committed) the version its commit made. */
struct change_rec {
    uint64_t base, base_version, committed;
};
#define CHANGE_REC_LEN 24

static int change_get(struct pt_shard_sm *sm, MDB_txn *t, uint64_t id, struct change_rec *r)
{
    uint8_t k[8];
    MDB_val key = {8, k}, val;
    int rc;
    key_put_be64(k, id);
    if ((rc = mdb_get(t, sm->changes, &key, &val)) != 0) return map_mdb(rc);
    if (val.mv_size != CHANGE_REC_LEN) return -PT_ECORRUPT;
    r->base = pt_get_le64(val.mv_data);
    r->base_version = pt_get_le64((const uint8_t *)val.mv_data + 8);
    r->committed = pt_get_le64((const uint8_t *)val.mv_data + 16);
    return 0;
}

static int change_put(struct apply_ctx *a, uint64_t id, const struct change_rec *r)
{
    uint8_t k[8], v[CHANGE_REC_LEN];
    MDB_val key = {8, k}, val = {CHANGE_REC_LEN, v};
    key_put_be64(k, id);
    pt_put_le64(v, r->base);
    pt_put_le64(v + 8, r->base_version);
    pt_put_le64(v + 16, r->committed);
    return map_mdb(mdb_put(a->t, a->sm->changes, &key, &val, 0));
}

/* A hole span record [offset, offset + len) of file. */
static int hole_put(struct apply_ctx *a, uint64_t file, uint64_t offset, uint64_t len)
{
    struct pt_span h;
    memset(&h, 0, sizeof(h));
    h.offset = offset;
    h.size = len;
    h.storage = PT_STORAGE_HOLE;
    h.certified = 1;
    return span_put(a, file, &h);
}

/* The span of file that holds byte off (1, in *s), 0 when none does, or an error. */
static int span_at(struct apply_ctx *a, uint64_t file, uint64_t off, struct pt_span *s)
{
    MDB_cursor *cur;
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    struct pt_cursor c;
    int rc, found = 0, bad = 0;
    span_key(k, file, off);
    if ((rc = mdb_cursor_open(a->t, a->sm->spans, &cur)) != 0) return map_mdb(rc);
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (rc == 0 && key.mv_size == 16 && key_get_be64(key.mv_data) == file &&
        key_get_be64((const uint8_t *)key.mv_data + 8) == off) {
        found = 1;
    } else if (rc == 0 || rc == MDB_NOTFOUND) {
        rc = mdb_cursor_get(cur, &key, &val, rc == 0 ? MDB_PREV : MDB_LAST);
        if (rc == 0 && key.mv_size == 16 && key_get_be64(key.mv_data) == file) found = 1;
    }
    if (found) {
        pt_cursor_init(&c, val.mv_data, val.mv_size);
        if (pt_span_decode(&c, s) != 0)
            bad = 1;
        else if (s->offset > off || off - s->offset >= s->size)
            found = 0;
    }
    mdb_cursor_close(cur);
    if (bad) return -PT_ECORRUPT;
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    return found;
}

/* A hole of file that straddles `at` (starts before it, ends after it) becomes two holes that
 * meet there (no bytes change): every byte offset inside a hole is a span boundary on demand.
 * 1 when it split one, 0 when `at` is a boundary already or not inside a hole. */
static int hole_split(struct apply_ctx *a, uint64_t file, uint64_t at, struct inode_rec *f)
{
    struct pt_span h;
    int rc = span_at(a, file, at, &h);
    if (rc <= 0) return rc;
    if (h.storage != PT_STORAGE_HOLE || h.offset == at) return 0;
    if ((rc = hole_put(a, file, h.offset, at - h.offset)) != 0 ||
        (rc = hole_put(a, file, at, h.offset + h.size - at)) != 0)
        return rc;
    f->n_spans++;
    return 1;
}

/*
 * A span [off, off + len) with off < f->size of a change file takes the place of the spans
 * covering that range: the range starts at a span's start and ends at a span's end or reaches
 * past the file's end (an append that rewrote the last partial span). A hole is a boundary at
 * every byte: a hole that straddles either end of the range is split there first (its parts
 * outside the range stay). Those spans are released and leave the file. Off == size is an
 * append (nothing to do); any other case is -PT_EINVAL (a plain transient file only grows at
 * its end).
 */
static int span_make_room(struct apply_ctx *a, const struct pt_shard_req *q, struct inode_rec *f,
                          uint64_t off, uint64_t len)
{
    struct change_rec ch;
    struct span_raw *v;
    uint64_t end = off + len, covered;
    size_t n, i;
    int rc;
    if (off == f->size) return 0;
    if (off > f->size || len == 0 || end < off) return -PT_EINVAL;
    rc = change_get(a->sm, a->t, q->id, &ch);
    if (rc) return rc == -PT_ENOENT ? -PT_EINVAL : rc;
    if ((rc = hole_split(a, q->id, off, f)) < 0) return rc;
    if (end < f->size && (rc = hole_split(a, q->id, end, f)) < 0) return rc;
    if ((rc = spans_load(a, q->id, off, end, &v, &n)) != 0) return rc;
    rc = 0;
    covered = off;
    for (i = 0; i < n && !rc; i++) {
        struct pt_span s;
        if ((rc = span_raw_decode(&v[i], &s)) != 0) break;
        if (s.offset != covered) rc = -PT_EINVAL; /* no span starts at the range's start */
        covered = s.offset + s.size;
    }
    /* The spans must end with the range (none straddles its end), or the range reaches past
     * the file's end and takes the whole tail. */
    if (!rc && !(n > 0 && (covered == end || (covered == f->size && end > f->size))))
        rc = -PT_EINVAL;
    for (i = 0; i < n && !rc; i++) {
        struct pt_span s;
        if ((rc = span_raw_decode(&v[i], &s)) || (rc = span_release(a, q->id, &s)) ||
            (rc = span_raw_del(a, q->id, s.offset)))
            break;
        f->size -= s.size;
        f->n_spans--;
    }
    spans_free(v, n);
    return rc;
}

static int op_construct(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec f;
    uint64_t seq = 0, id;
    int rc = meta_next(a->sm, a->t, "inode_seq", &seq);
    if (rc) return rc;
    id = PT_INODE_MAKE(a->sm->shard, seq);
    inode_new(&f, PT_TYPE_FILE, a->now, q);
    f.state = PT_FILE_TRANSIENT;
    f.cookie = q->cookie;
    f.version = 1;
    f.deadline = a->now + a->sm->transient_ttl_ms;
    if ((rc = inode_put(a->sm, a->t, id, &f)) ||
        (rc = transient_index(a->sm, a->t, f.deadline, id, 1)))
        return rc;
    pt_enc_u64(&a->out, id);
    return 0;
}

/*
 * A retried request whose first try was committed (the reply was lost with the old leader):
 * the span at its offset is exactly the one asked for (the last span of a file written from
 * start to end; any span of a change file, which replaces spans in place). Returns 1 when it
 * is, with the span in *s.
 */
static int is_retry_of_last_span(struct apply_ctx *a, const struct pt_shard_req *q,
                                 const struct inode_rec *f, struct pt_span *s)
{
    struct change_rec ch;
    if (q->offset >= f->size || q->offset + q->size > f->size) return 0;
    /* A plain file's earlier span asked again is a stale duplicate, not a retry: refused. */
    if (q->offset + q->size != f->size && change_get(a->sm, a->t, q->id, &ch) != 0) return 0;
    if (span_get(a->sm, a->t, q->id, q->offset, s) != 0) return 0;
    return s->size == q->size && s->crc == q->crc;
}

static int span_new_blocks(struct apply_ctx *a, const struct pt_shard_req *q, struct pt_span *s);
static void span_reply_blocks(struct apply_ctx *a, const struct pt_span *s);

/* A new span with blocks at the end of transient file f (ADD_SPAN, ADD_RS_SPAN): place its
 * blocks, store it, grow the file, move its owner deadline, answer the placements. */
static int span_append(struct apply_ctx *a, const struct pt_shard_req *q, struct inode_rec *f,
                       struct pt_span *s)
{
    int rc;
    if ((rc = span_new_blocks(a, q, s)) != 0) return rc;
    if ((rc = span_put(a, q->id, s)) != 0) return rc;
    f->size += q->size;
    f->n_spans++;
    if ((rc = touch_transient(a, q->id, f)) || (rc = inode_put(a->sm, a->t, q->id, f))) return rc;
    span_reply_blocks(a, s);
    return 0;
}

static int op_add_span(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec f;
    struct pt_span s;
    unsigned i, j;
    int rc = writable_file(a, q, &f);
    if (rc) return rc;
    if (is_retry_of_last_span(a, q, &f, &s) && s.storage == q->storage && s.parity == q->parity) {
        span_reply_blocks(a, &s);
        return 0;
    }
    if (q->size == 0 || q->size > PT_SPAN_SIZE_MAX) return -PT_EINVAL;
    if ((rc = span_make_room(a, q, &f, q->offset, q->size)) != 0) return rc;
    if (f.size + q->size < f.size) return -PT_EFBIG;
    /* Reed-Solomon spans come through ADD_RS_SPAN (they carry cell CRCs). */
    if (q->storage != PT_STORAGE_MIRRORED || q->data != 1 || q->parity + 1u > PT_SPAN_BLOCKS_MAX)
        return -PT_EINVAL;
    if (q->n_services != q->data + q->parity) return -PT_EINVAL;
    for (i = 0; i < q->n_services; i++)
        for (j = 0; j < i; j++)
            if (q->services[i] == q->services[j]) return -PT_EINVAL;
    memset(&s, 0, sizeof(s));
    s.offset = q->offset;
    s.size = q->size;
    s.crc = q->crc;
    s.storage = PT_STORAGE_MIRRORED;
    s.data = 1;
    s.parity = q->parity;
    s.block_size = q->size;
    for (i = 0; i < q->n_services; i++)
        s.blocks[i].crc = q->crc;
    return span_append(a, q, &f, &s);
}

static int op_add_inline(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec f;
    struct pt_span s;
    int rc = writable_file(a, q, &f);
    if (rc) return rc;
    if (is_retry_of_last_span(a, q, &f, &s) && s.storage == PT_STORAGE_INLINE) return 0;
    if (q->size == 0 || q->size != q->data_len || q->size > PT_INLINE_MAX) return -PT_EINVAL;
    if ((rc = span_make_room(a, q, &f, q->offset, q->size)) != 0) return rc;
    if (petrel_crc32c(0, q->data_ptr, q->data_len) != q->crc) return -PT_EBADMSG;
    memset(&s, 0, sizeof(s));
    s.offset = q->offset;
    s.size = q->size;
    s.crc = q->crc;
    s.storage = PT_STORAGE_INLINE;
    s.certified = 1;
    s.inline_len = q->data_len;
    s.inline_data = q->data_ptr;
    if ((rc = span_put(a, q->id, &s)) != 0) return rc;
    f.size += q->size;
    f.n_spans++;
    if ((rc = touch_transient(a, q->id, &f)) != 0) return rc;
    return inode_put(a->sm, a->t, q->id, &f);
}

/*
 * ADD_HOLE: a hole span of q->expect bytes (read as zeros, no blocks) at q->offset: at the end
 * of a transient file, or in place in a change file (span_make_room). A file never grows past
 * PT_HOLE_MAX bytes (-PT_EFBIG). A repeat (the same hole already at that offset) is done.
 */
static int op_add_hole(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec f;
    struct pt_span s;
    uint64_t len = q->expect;
    int rc = writable_file(a, q, &f);
    if (rc) return rc;
    if (len == 0) return -PT_EINVAL;
    if (q->offset > (uint64_t)PT_HOLE_MAX || len > (uint64_t)PT_HOLE_MAX - q->offset)
        return -PT_EFBIG;
    if (q->offset < f.size && span_get(a->sm, a->t, q->id, q->offset, &s) == 0 &&
        s.storage == PT_STORAGE_HOLE && s.size == len)
        return 0;
    if ((rc = span_make_room(a, q, &f, q->offset, len)) != 0) return rc;
    if (f.size > (uint64_t)PT_HOLE_MAX - len) return -PT_EFBIG;
    if ((rc = hole_put(a, q->id, q->offset, len)) != 0) return rc;
    f.size += len;
    f.n_spans++;
    if ((rc = touch_transient(a, q->id, &f)) != 0) return rc;
    return inode_put(a->sm, a->t, q->id, &f);
}

/*
 * A writer whose block write failed (a service died before the registry noticed) gives the
 * span up and adds it again elsewhere: only the last span, only while uncertified. Its blocks
 * leave the block index; any copy already written is an orphan for the block scrubber.
 */
static int op_drop_span(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec f;
    struct pt_span s;
    uint8_t k[16];
    MDB_val key = {16, k};
    unsigned i;
    int rc = writable_file(a, q, &f);
    if (rc) return rc;
    if ((rc = span_get(a->sm, a->t, q->id, q->offset, &s)) != 0) return rc;
    if (q->offset + s.size != f.size) return -PT_EINVAL;
    if (s.certified) return -PT_EBUSY;
    for (i = 0; i < pt_span_block_count(&s); i++) {
        uint8_t dk[24], dv[8];
        MDB_val dkey = {24, dk}, dval = {8, dv};
        key_put_be64(k, s.blocks[i].service);
        key_put_be64(k + 8, s.blocks[i].block);
        rc = mdb_del(a->t, a->sm->blockidx, &key, NULL);
        if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
        /* The writer may have stored copies: erased by GC after the retention period. */
        key_put_be64(dk, a->now);
        key_put_be64(dk + 8, s.blocks[i].service);
        key_put_be64(dk + 16, s.blocks[i].block);
        pt_put_le32(dv, s.blocks[i].crc);
        pt_put_le32(dv + 4, s.block_size);
        if ((rc = map_mdb(mdb_put(a->t, a->sm->dropped, &dkey, &dval, 0))) != 0) return rc;
    }
    span_key(k, q->id, q->offset);
    if ((rc = map_mdb(mdb_del(a->t, a->sm->spans, &key, NULL))) != 0) return rc;
    f.size -= s.size;
    f.n_spans--;
    if ((rc = touch_transient(a, q->id, &f)) != 0) return rc;
    return inode_put(a->sm, a->t, q->id, &f);
}

/* The leader checked the proofs against the registry secret before proposing this entry. */
static int op_certify(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec f;
    struct pt_span s;
    int rc = writable_file(a, q, &f);
    if (rc) return rc;
    if ((rc = span_get(a->sm, a->t, q->id, q->offset, &s)) != 0) return rc;
    if (s.storage == PT_STORAGE_INLINE) return 0;
    if (q->data_len != 8u * pt_span_block_count(&s)) return -PT_EINVAL;
    if (s.certified) return 0;
    s.certified = 1;
    if ((rc = span_put(a, q->id, &s)) != 0) return rc;
    if ((rc = touch_transient(a, q->id, &f)) != 0) return rc;
    return inode_put(a->sm, a->t, q->id, &f);
}

/* A directory of this shard that can take new entries. */
static int live_dir(struct apply_ctx *a, uint64_t dir, struct inode_rec *d)
{
    int rc;
    if (PT_INODE_SHARD(dir) != a->sm->shard) return -PT_EXDEV;
    rc = inode_get(a->sm, a->t, dir, d);
    if (rc) return rc;
    return d->type == PT_TYPE_DIR ? 0 : -PT_ENOTDIR;
}

static int all_spans_certified(struct apply_ctx *a, uint64_t file)
{
    MDB_cursor *cur;
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    int rc, ok = 1;
    span_key(k, file, 0);
    if ((rc = mdb_cursor_open(a->t, a->sm->spans, &cur)) != 0) return map_mdb(rc);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct pt_span s;
        struct pt_cursor c;
        if (key.mv_size != 16 || key_get_be64(key.mv_data) != file) break;
        pt_cursor_init(&c, val.mv_data, val.mv_size);
        if (pt_span_decode(&c, &s)) {
            ok = -PT_ECORRUPT;
            break;
        }
        if (!s.certified) {
            ok = 0;
            break;
        }
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    return ok;
}

static int replace_target(struct apply_ctx *a, const struct dirent_rec *old, uint8_t type,
                          uint64_t *retire);
static int inode_touch_ctime(struct apply_ctx *a, uint64_t id);

/*
 * LINK_FILE (replace 0) and LINK_REPLACE (replace 1): a certified transient file gets its name.
 * LINK_FILE needs the name free (-PT_EEXIST). LINK_REPLACE needs the name to hold exactly
 * q->expect, a file, which it replaces and retires (-PT_ESTALE when the name holds anything
 * else or nothing any more: someone else changed it, and theirs is left alone); q->expect 0
 * makes it LINK_FILE. Reply (LINK_REPLACE only): u64 the replaced inode.
 */
static int link_file(struct apply_ctx *a, const struct pt_shard_req *q, int replace)
{
    struct inode_rec f, d;
    struct dirent_rec e;
    uint64_t retire = 0;
    int rc;
    if (q->name_len == 0) return -PT_EINVAL;
    if ((rc = writable_file(a, q, &f)) != 0) {
        /* A retried link whose first try was committed (its reply was lost): the file is
         * linked with this writer's cookie under that very name, or was linked in that
         * directory and removed since by someone else. The first try did the work; this one
         * changes nothing (a linked file never gets a second name). */
        if (rc == -PT_ESTALE && f.cookie == q->cookie &&
            ((f.state == PT_FILE_LINKED &&
              dirent_get(a->sm, a->t, q->target, q->name, q->name_len, &e) == 0 && e.id == q->id) ||
             (f.state == PT_FILE_UNLINKED && f.parent == q->target))) {
            if (replace) pt_enc_u64(&a->out, q->expect);
            return 0;
        }
        return rc;
    }
    if ((rc = live_dir(a, q->target, &d)) != 0) return rc;
    rc = all_spans_certified(a, q->id);
    if (rc < 0) return rc;
    if (rc == 0) return -PT_EAGAIN; /* a span still awaits its proofs */
    rc = dirent_get(a->sm, a->t, q->target, q->name, q->name_len, &e);
    if (rc == 0) {
        if (!q->expect) return -PT_EEXIST;
        if (e.id != q->expect) return -PT_ESTALE;
        if ((rc = replace_target(a, &e, PT_TYPE_FILE, &retire)) != 0) return rc;
    } else if (rc != -PT_ENOENT) {
        return rc;
    } else if (q->expect) {
        return -PT_ESTALE; /* what was to be replaced is gone */
    }
    if ((rc = transient_index(a->sm, a->t, f.deadline, q->id, 0)) != 0) return rc;
    f.state = PT_FILE_LINKED;
    f.deadline = 0;
    /* No time moves: the file was created (for its writer) at CONSTRUCT_FILE, and its times
     * are those of its last write or what the writer set; a link at the writer's close, which
     * FUSE delivers after close(2) returned, must not change them behind its back. */
    f.parent = q->target;
    e.id = q->id;
    e.type = PT_TYPE_FILE;
    e.lock_txn = 0;
    e.mtime = a->now;
    inode_changed(&d, a->now);
    if ((rc = inode_put(a->sm, a->t, q->id, &f)) ||
        (rc = dirent_put(a->sm, a->t, q->target, &d, q->name, q->name_len, &e)))
        return rc;
    /* The replaced file: the client retires it on its own shard when that is another one. */
    if (replace) pt_enc_u64(&a->out, retire);
    return inode_put(a->sm, a->t, q->target, &d);
}

/* An entry's file lost its last name: keep it for the retention period (local files only). */
static int retire_file(struct apply_ctx *a, uint64_t id)
{
    struct inode_rec f;
    int rc;
    if (PT_INODE_SHARD(id) != a->sm->shard) return 0;
    rc = inode_get(a->sm, a->t, id, &f);
    if (rc == -PT_ENOENT) return 0;
    if (rc) return rc;
    f.state = PT_FILE_UNLINKED;
    f.deadline = a->now + a->sm->retention_ms;
    f.ctime = a->now * NS_PER_MS; /* its link count fell */
    return inode_put(a->sm, a->t, id, &f);
}

/*
 * UNLINK (checked 0) and UNLINK_INODE (checked 1: only when the name holds q->expect, else
 * -PT_ESTALE: a name that now holds someone else's file is left alone).
 */
static int unlink_entry(struct apply_ctx *a, const struct pt_shard_req *q, int checked)
{
    struct inode_rec d;
    struct dirent_rec e;
    int rc;
    if ((rc = live_dir(a, q->id, &d)) != 0) return rc;
    if ((rc = dirent_get(a->sm, a->t, q->id, q->name, q->name_len, &e)) != 0) return rc;
    if (checked && e.id != q->expect) return -PT_ESTALE;
    if (e.type == PT_TYPE_DIR) return -PT_EISDIR; /* rmdir goes through the CDC */
    if (e.lock_txn) return -PT_EBUSY;
    if ((rc = dirent_del(a->sm, a->t, q->id, &d, q->name, q->name_len)) != 0) return rc;
    if ((rc = retire_file(a, e.id)) != 0) return rc;
    inode_changed(&d, a->now);
    /* The removed inode: the client retires it on its own shard when that is another one. */
    pt_enc_u64(&a->out, e.id);
    return inode_put(a->sm, a->t, q->id, &d);
}

static int op_retire(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec f;
    int rc;
    if (PT_INODE_SHARD(q->id) != a->sm->shard) return -PT_EXDEV;
    if ((rc = inode_get(a->sm, a->t, q->id, &f)) != 0) return rc;
    if (f.type == PT_TYPE_DIR) return -PT_EISDIR;
    if (f.state != PT_FILE_LINKED) return 0; /* already retired (a retry) */
    return retire_file(a, q->id);
}

/*
 * An existing entry `old` is about to be replaced by an entry of type `type` (rename(2)
 * rules): a file replaces a file, a directory replaces an empty directory. A replaced file
 * starts its retention (here when it is local; *retire names it for its own shard), a
 * replaced directory is removed; a directory on another shard cannot be checked here
 * (PT_EXDEV: the client goes through the CDC).
 */
static int replace_target(struct apply_ctx *a, const struct dirent_rec *old, uint8_t type,
                          uint64_t *retire)
{
    int rc;
    if (old->lock_txn) return -PT_EBUSY;
    if (type != PT_TYPE_DIR && old->type == PT_TYPE_DIR) return -PT_EISDIR;
    if (type == PT_TYPE_DIR && old->type != PT_TYPE_DIR) return -PT_ENOTDIR;
    if (old->type != PT_TYPE_DIR) {
        *retire = old->id;
        return retire_file(a, old->id);
    }
    if (PT_INODE_SHARD(old->id) != a->sm->shard) return -PT_EXDEV;
    rc = dir_is_empty(a->sm, a->t, old->id);
    if (rc < 0) return rc;
    if (!rc) return -PT_ENOTEMPTY;
    return inode_del(a->sm, a->t, old->id);
}

/*
 * Copy b of span sp leaves a forgotten file. GC erased it with the file when the file was its
 * only holder. When exactly one holder remains and that file is itself unlinked or expired,
 * its own GC round may have skipped the copy while it was still shared: the copy goes to
 * `dropped` (erased after the retention period, never before that file's own collection:
 * the other file's deadline is at most now + retention). A live holder keeps it.
 */
static int forget_copy(struct apply_ctx *a, const struct pt_span *sp, unsigned b, uint64_t file)
{
    uint64_t service = sp->blocks[b].service, block = sp->blocks[b].block, pf = 0, po = 0;
    struct inode_rec o;
    int rc = holder_release(a, service, block, file, sp->offset);
    if (rc <= 0) return rc;
    rc = holder_next(a->sm, a->t, service, block, 0, &pf, &po);
    if (rc != 0) return rc < 0 ? rc : 0; /* two holders or more remain */
    if ((rc = holder_primary(a->sm, a->t, service, block, &pf, &po)) != 0) return rc;
    rc = inode_get(a->sm, a->t, pf, &o);
    if (rc) return rc == -PT_ENOENT ? 0 : rc;
    if (o.state != PT_FILE_UNLINKED && o.state != PT_FILE_EXPIRED) return 0;
    return copy_dropped(a, service, block, sp->blocks[b].crc, sp->block_size);
}

/*
 * FORGET_FILE: the leader proved every block of the file erased (erase proofs checked before
 * proposing): its spans, block index entries and inode go. Only a file whose retention was
 * running (unlinked or expired); an absent file is a repeat (a new leader's second try).
 */
static int op_forget(struct apply_ctx *a, const struct pt_shard_req *q)
{
    MDB_cursor *cur;
    struct inode_rec f;
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    int rc, err = 0;
    if (PT_INODE_SHARD(q->id) != a->sm->shard) return -PT_EXDEV;
    rc = inode_get(a->sm, a->t, q->id, &f);
    if (rc == -PT_ENOENT) return 0;
    if (rc) return rc;
    if (f.type == PT_TYPE_DIR) return -PT_EISDIR;
    if (f.state != PT_FILE_UNLINKED && f.state != PT_FILE_EXPIRED) return -PT_EBUSY;
    span_key(k, q->id, 0);
    if ((rc = mdb_cursor_open(a->t, a->sm->spans, &cur)) != 0) return map_mdb(rc);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE)) {
        struct pt_span sp;
        struct pt_cursor c;
        unsigned i;
        if (key.mv_size != 16 || key_get_be64(key.mv_data) != q->id) break;
        pt_cursor_init(&c, val.mv_data, val.mv_size);
        if (pt_span_decode(&c, &sp)) {
            err = -PT_ECORRUPT;
            break;
        }
        for (i = 0; i < pt_span_block_count(&sp) && !err; i++)
            err = forget_copy(a, &sp, i, q->id);
        if (err) break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0) break;
        span_key(k, q->id, 0);
        key.mv_size = 16;
        key.mv_data = k;
    }
    mdb_cursor_close(cur);
    if (err) return err;
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    key_put_be64(k, q->id);
    key.mv_size = 8;
    key.mv_data = k; /* the cursor left it pointing into the store */
    rc = mdb_del(a->t, a->sm->changes, &key, NULL); /* a change file's record goes with it */
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    return inode_del(a->sm, a->t, q->id);
}

/* FORGET_DROPPED: the leader proved these dropped blocks erased; absent keys are repeats. */
static int op_forget_dropped(struct apply_ctx *a, const struct pt_shard_req *q)
{
    uint32_t i;
    if (q->data_len == 0 || q->data_len % 24 || q->data_len / 24 > PT_SHARD_GC_DROPPED_MAX)
        return -PT_EINVAL;
    for (i = 0; i < q->data_len / 24; i++) {
        uint8_t dk[24];
        MDB_val dkey = {24, dk};
        int rc;
        const uint8_t *p = q->data_ptr + (size_t)24 * i;
        key_put_be64(dk, pt_get_le64(p));
        key_put_be64(dk + 8, pt_get_le64(p + 8));
        key_put_be64(dk + 16, pt_get_le64(p + 16));
        rc = mdb_del(a->t, a->sm->dropped, &dkey, NULL);
        if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    }
    return 0;
}

/*
 * RENAME (checked 0) and RENAME_INODE (checked 1): within one directory, name -> name2.
 * RENAME_INODE moves name only while it holds q->target, and onto name2 only while name2
 * holds q->expect (0: only while name2 is free, -PT_EEXIST otherwise); any other content is
 * someone else's change: -PT_ESTALE, nothing done.
 */
static int rename_entry(struct apply_ctx *a, const struct pt_shard_req *q, int checked)
{
    struct inode_rec d;
    struct dirent_rec e, old;
    uint64_t retire = 0;
    int rc;
    if (q->name2_len == 0) return -PT_EINVAL;
    if ((rc = live_dir(a, q->id, &d)) != 0) return rc;
    if ((rc = dirent_get(a->sm, a->t, q->id, q->name, q->name_len, &e)) != 0) return rc;
    if (checked && e.id != q->target) return -PT_ESTALE;
    if (q->name_len == q->name2_len && memcmp(q->name, q->name2, q->name_len) == 0) {
        pt_enc_u64(&a->out, 0); /* onto itself: nothing to do */
        return 0;
    }
    if (e.lock_txn) return -PT_EBUSY;
    rc = dirent_get(a->sm, a->t, q->id, q->name2, q->name2_len, &old);
    if (rc == 0) {
        if (old.id == e.id) {
            pt_enc_u64(&a->out, 0);
            return 0;
        }
        if (checked && !q->expect) return -PT_EEXIST;
        if (checked && old.id != q->expect) return -PT_ESTALE;
        if ((rc = replace_target(a, &old, e.type, &retire)) != 0) return rc;
    } else if (rc != -PT_ENOENT) {
        return rc;
    } else if (checked && q->expect) {
        return -PT_ESTALE; /* what was to be replaced is gone */
    }
    if ((rc = dirent_del(a->sm, a->t, q->id, &d, q->name, q->name_len)) != 0) return rc;
    e.mtime = a->now;
    if ((rc = dirent_put(a->sm, a->t, q->id, &d, q->name2, q->name2_len, &e)) != 0) return rc;
    if ((rc = inode_touch_ctime(a, e.id)) != 0) return rc;
    inode_changed(&d, a->now);
    /* The replaced file: the client retires it on its own shard when that is another one. */
    pt_enc_u64(&a->out, retire);
    return inode_put(a->sm, a->t, q->id, &d);
}

/* A local inode whose metadata changed (renamed): its ctime becomes the entry time. */
static int inode_touch_ctime(struct apply_ctx *a, uint64_t id)
{
    struct inode_rec r;
    int rc;
    if (PT_INODE_SHARD(id) != a->sm->shard) return 0;
    rc = inode_get(a->sm, a->t, id, &r);
    if (rc == -PT_ENOENT) return 0;
    if (rc) return rc;
    r.ctime = a->now * NS_PER_MS;
    return inode_put(a->sm, a->t, id, &r);
}

/* ---- POSIX attributes and nodes (issue 11) ------------------------------------------------ */

/*
 * SETATTR: mode (permission bits; the type stays), owner and times of any inode of this
 * shard, in any state (a transient file being written takes fchmod/futimens before its link;
 * an unlinked file still open takes them too). ctime becomes the entry time; the content
 * version does not change. The POSIX rules (who may, setuid/setgid cleared) are the caller's.
 */
static int op_setattr(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec r;
    const struct pt_shard_attr *at = &q->attr;
    uint64_t now_ns = a->now * NS_PER_MS;
    int rc;
    if (at->valid & ~(uint32_t)PT_ATTR_ALL) return -PT_EINVAL;
    if ((at->valid & PT_ATTR_ATIME) && (at->valid & PT_ATTR_ATIME_NOW)) return -PT_EINVAL;
    if ((at->valid & PT_ATTR_MTIME) && (at->valid & PT_ATTR_MTIME_NOW)) return -PT_EINVAL;
    if (PT_INODE_SHARD(q->id) != a->sm->shard) return -PT_EXDEV;
    if ((rc = inode_get(a->sm, a->t, q->id, &r)) != 0) return rc;
    if (r.state == PT_FILE_EXPIRED && r.type != PT_TYPE_DIR) return -PT_ESTALE;
    if (at->valid & PT_ATTR_MODE) r.mode = (r.mode & PT_MODE_IFMT) | (at->mode & PT_MODE_PERM);
    if (at->valid & PT_ATTR_UID) r.uid = at->uid;
    if (at->valid & PT_ATTR_GID) r.gid = at->gid;
    if (at->valid & PT_ATTR_ATIME) r.atime = at->atime;
    if (at->valid & PT_ATTR_ATIME_NOW) r.atime = now_ns;
    if (at->valid & PT_ATTR_MTIME) r.mtime = at->mtime;
    if (at->valid & PT_ATTR_MTIME_NOW) r.mtime = now_ns;
    r.ctime = now_ns;
    return inode_put(a->sm, a->t, q->id, &r);
}

/*
 * MAKE_NODE: a symbolic link, FIFO, socket or device node, created and named in one step
 * (like LINK_FILE, only if the name is free: -PT_EEXIST). The type comes from the mode's type
 * bits; a symlink's target (1..4095 bytes, no NUL) is the data, other nodes carry none.
 * Reply: u64 the new inode.
 */
static int op_make_node(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec d, n;
    struct dirent_rec e;
    uint8_t type = pt_mode_type(q->attr.mode);
    uint64_t seq = 0, id;
    int rc;
    if (q->name_len == 0 || !PT_TYPE_IS_NODE(type)) return -PT_EINVAL;
    if (type == PT_TYPE_SYMLINK ? q->data_len == 0 || q->data_len > PT_SYMLINK_MAX ||
                                      memchr(q->data_ptr, 0, q->data_len) != NULL
                                : q->data_len != 0)
        return -PT_EINVAL;
    if ((rc = live_dir(a, q->id, &d)) != 0) return rc;
    rc = dirent_get(a->sm, a->t, q->id, q->name, q->name_len, &e);
    if (rc == 0) return -PT_EEXIST;
    if (rc != -PT_ENOENT) return rc;
    if ((rc = meta_next(a->sm, a->t, "inode_seq", &seq)) != 0) return rc;
    id = PT_INODE_MAKE(a->sm->shard, seq);
    inode_new(&n, type, a->now, q);
    n.state = PT_FILE_LINKED;
    n.parent = q->id;
    n.version = 1;
    if (type == PT_TYPE_CHR || type == PT_TYPE_BLK) n.rdev = q->attr.rdev;
    if (type == PT_TYPE_SYMLINK) {
        n.target_len = (uint16_t)q->data_len;
        memcpy(n.target, q->data_ptr, q->data_len);
        n.target[n.target_len] = 0;
        n.size = q->data_len;
    }
    e.id = id;
    e.type = type;
    e.lock_txn = 0;
    e.mtime = a->now;
    inode_changed(&d, a->now);
    if ((rc = inode_put(a->sm, a->t, id, &n)) ||
        (rc = dirent_put(a->sm, a->t, q->id, &d, q->name, q->name_len, &e)) ||
        (rc = inode_put(a->sm, a->t, q->id, &d)))
        return rc;
    pt_enc_u64(&a->out, id);
    return 0;
}

static int op_expire(struct apply_ctx *a)
{
    MDB_cursor *cur;
    MDB_val key, val;
    uint32_t expired = 0;
    int rc, err = 0;
    if ((rc = mdb_cursor_open(a->t, a->sm->transient, &cur)) != 0) return map_mdb(rc);
    while ((rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST)) == 0) {
        struct inode_rec f;
        uint64_t deadline, id;
        if (key.mv_size != 16) {
            err = -PT_ECORRUPT;
            break;
        }
        deadline = key_get_be64(key.mv_data);
        id = key_get_be64((const uint8_t *)key.mv_data + 8);
        if (deadline > a->now) break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0) break;
        if ((err = inode_get(a->sm, a->t, id, &f)) != 0) break;
        f.state = PT_FILE_EXPIRED;
        if ((err = inode_put(a->sm, a->t, id, &f)) != 0) break;
        expired++;
    }
    mdb_cursor_close(cur);
    if (err) return err;
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    pt_enc_u32(&a->out, expired);
    return 0;
}

/* ---- CDC halves ---------------------------------------------------------------------------- */

static int op_make_dir(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec d;
    uint64_t seq = 0, id;
    int rc = txn_get(a->sm, a->t, q->txn, q->op, &id);
    if (rc == 0) {
        pt_enc_u64(&a->out, id);
        return 0;
    }
    if (rc != -PT_ENOENT) return rc;
    if ((rc = meta_next(a->sm, a->t, "inode_seq", &seq)) != 0) return rc;
    id = PT_INODE_MAKE(a->sm->shard, seq);
    inode_new(&d, PT_TYPE_DIR, a->now, q);
    d.parent = q->target;
    if ((rc = inode_put(a->sm, a->t, id, &d)) || (rc = txn_put(a->sm, a->t, q->txn, q->op, id)))
        return rc;
    pt_enc_u64(&a->out, id);
    return 0;
}

/* A file of this shard got a name in `dir` through the CDC: it is linked there. */
static int relink_local_file(struct apply_ctx *a, uint64_t id, uint64_t dir)
{
    struct inode_rec f;
    if (PT_INODE_SHARD(id) != a->sm->shard) return 0;
    if (inode_get(a->sm, a->t, id, &f) != 0 || f.type == PT_TYPE_DIR) return 0;
    f.ctime = a->now * NS_PER_MS;
    f.state = PT_FILE_LINKED;
    f.deadline = 0;
    f.parent = dir;
    return inode_put(a->sm, a->t, id, &f);
}

static int op_add_entry(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec d;
    struct dirent_rec e;
    int rc;
    if (q->name_len == 0 || !PT_TYPE_VALID(q->offset)) return -PT_EINVAL;
    if ((rc = live_dir(a, q->id, &d)) != 0) return rc;
    rc = dirent_get(a->sm, a->t, q->id, q->name, q->name_len, &e);
    if (rc == 0) return e.id == q->target ? 0 : -PT_EEXIST; /* a retried step is a success */
    if (rc != -PT_ENOENT) return rc;
    e.id = q->target;
    e.type = (uint8_t)q->offset;
    e.lock_txn = 0;
    e.mtime = a->now;
    if ((rc = dirent_put(a->sm, a->t, q->id, &d, q->name, q->name_len, &e)) != 0) return rc;
    if (e.type != PT_TYPE_DIR && (rc = relink_local_file(a, q->target, q->id)) != 0) return rc;
    inode_changed(&d, a->now);
    return inode_put(a->sm, a->t, q->id, &d);
}

/*
 * The commit point of a CDC rename onto an existing name: the entry, locked by this
 * transaction since it named `cookie`, now names `target` (unlocked). A retry finds it done.
 * The replaced inode is handled by the transaction's other steps (REMOVE_DIR before,
 * RETIRE_FILE after).
 */
static int op_replace_entry(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec d;
    struct dirent_rec e;
    int rc;
    if (q->name_len == 0 || !PT_TYPE_VALID(q->offset)) return -PT_EINVAL;
    if ((rc = live_dir(a, q->id, &d)) != 0) return rc;
    if ((rc = dirent_get(a->sm, a->t, q->id, q->name, q->name_len, &e)) != 0) return rc;
    if (e.id == q->target && e.lock_txn == 0) return 0; /* a retried step */
    if (e.id != q->cookie) return -PT_ESTALE;
    if (e.lock_txn != q->txn) return -PT_EBUSY;
    e.id = q->target;
    e.type = (uint8_t)q->offset;
    e.lock_txn = 0;
    e.mtime = a->now;
    if ((rc = dirent_put(a->sm, a->t, q->id, &d, q->name, q->name_len, &e)) != 0) return rc;
    if (e.type != PT_TYPE_DIR && (rc = relink_local_file(a, q->target, q->id)) != 0) return rc;
    inode_changed(&d, a->now);
    return inode_put(a->sm, a->t, q->id, &d);
}

static int op_remove_entry(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec d;
    struct dirent_rec e;
    int rc;
    if ((rc = live_dir(a, q->id, &d)) != 0) return rc;
    rc = dirent_get(a->sm, a->t, q->id, q->name, q->name_len, &e);
    if (rc == -PT_ENOENT) return 0; /* already removed by this step's first try */
    if (rc) return rc;
    if (e.id != q->target) return -PT_ESTALE;
    if (e.lock_txn && e.lock_txn != q->txn) return -PT_EBUSY;
    if ((rc = dirent_del(a->sm, a->t, q->id, &d, q->name, q->name_len)) != 0) return rc;
    inode_changed(&d, a->now);
    return inode_put(a->sm, a->t, q->id, &d);
}

static int op_lock_entry(struct apply_ctx *a, const struct pt_shard_req *q, int lock)
{
    struct inode_rec d;
    struct dirent_rec e;
    int rc;
    if ((rc = live_dir(a, q->id, &d)) != 0) return rc;
    rc = dirent_get(a->sm, a->t, q->id, q->name, q->name_len, &e);
    if (rc == -PT_ENOENT && !lock) return 0;
    if (rc) return rc;
    if (lock) {
        if (e.lock_txn && e.lock_txn != q->txn) return -PT_EBUSY;
        e.lock_txn = q->txn;
        pt_enc_u64(&a->out, e.id);
        pt_enc_u8(&a->out, e.type);
    } else {
        if (e.lock_txn != q->txn) return 0;
        e.lock_txn = 0;
    }
    return dirent_put(a->sm, a->t, q->id, NULL, q->name, q->name_len, &e);
}

static int op_remove_dir(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec d;
    uint64_t done;
    int rc;
    if (q->id == PT_INODE_ROOT) return -PT_EBUSY;
    if (txn_get(a->sm, a->t, q->txn, q->op, &done) == 0) return 0;
    if ((rc = live_dir(a, q->id, &d)) != 0) return rc;
    rc = dir_is_empty(a->sm, a->t, q->id);
    if (rc < 0) return rc;
    if (!rc) return -PT_ENOTEMPTY;
    if ((rc = inode_del(a->sm, a->t, q->id)) != 0) return rc;
    return txn_put(a->sm, a->t, q->txn, q->op, q->id);
}

static int op_set_parent(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec d;
    int rc;
    if ((rc = live_dir(a, q->id, &d)) != 0) return rc;
    d.parent = q->target;
    inode_changed(&d, a->now);
    return inode_put(a->sm, a->t, q->id, &d);
}

/* ---- redundancy: Reed-Solomon spans, storage policies, the repair queue ------------------ */

/* The blockidx entries of a new span's blocks, with fresh block ids. */
static int span_new_blocks(struct apply_ctx *a, const struct pt_shard_req *q, struct pt_span *s)
{
    unsigned i;
    int rc;
    for (i = 0; i < q->n_services; i++) {
        uint64_t seq = 0;
        uint8_t k[16], v[16];
        MDB_val key = {16, k}, val = {16, v};
        if ((rc = meta_next(a->sm, a->t, "block_seq", &seq)) != 0) return rc;
        s->blocks[i].service = q->services[i];
        s->blocks[i].block = PT_INODE_MAKE(a->sm->shard, seq);
        key_put_be64(k, s->blocks[i].service);
        key_put_be64(k + 8, s->blocks[i].block);
        pt_put_le64(v, q->id);
        pt_put_le64(v + 8, q->offset);
        if ((rc = map_mdb(mdb_put(a->t, a->sm->blockidx, &key, &val, 0))) != 0) return rc;
    }
    return 0;
}

/* ADD_SPAN's and ADD_RS_SPAN's reply: n, then per block (service, block, block CRC). */
static void span_reply_blocks(struct apply_ctx *a, const struct pt_span *s)
{
    unsigned i, n = pt_span_block_count(s);
    pt_enc_u8(&a->out, (uint8_t)n);
    for (i = 0; i < n; i++) {
        pt_enc_u64(&a->out, s->blocks[i].service);
        pt_enc_u64(&a->out, s->blocks[i].block);
        if (s->storage == PT_STORAGE_RS) pt_enc_u32(&a->out, s->blocks[i].crc);
    }
}

/*
 * A Reed-Solomon span: the layout must be RS(D, P) with D + P distinct services (chosen by
 * the leader in distinct failure domains), the block size the geometry's function of (size,
 * D), and the cell CRCs exactly rows x (D + P); each block's CRC is combined from its cells'.
 */
static int op_add_rs_span(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec f;
    struct pt_span s;
    unsigned i, j, n, rows, r;
    uint32_t cell;
    int rc = writable_file(a, q, &f);
    if (rc) return rc;
    if (is_retry_of_last_span(a, q, &f, &s) && s.storage == PT_STORAGE_RS &&
        s.data == q->data && s.parity == q->parity) {
        span_reply_blocks(a, &s);
        return 0;
    }
    if (q->size == 0 || q->size > PT_SPAN_SIZE_MAX) return -PT_EINVAL;
    if ((rc = span_make_room(a, q, &f, q->offset, q->size)) != 0) return rc;
    if (f.size + q->size < f.size) return -PT_EFBIG;
    if (q->storage != PT_STORAGE_RS || q->data < 1 || q->data > 16 || q->parity < 1 ||
        q->parity > 4 || (unsigned)q->data + q->parity > PT_SPAN_BLOCKS_MAX)
        return -PT_EINVAL;
    n = (unsigned)q->data + q->parity;
    if (q->block_size != pt_rs_block_size(q->size, q->data) || q->block_size > PT_RS_BLOCK_MAX)
        return -PT_EINVAL;
    rows = pt_rs_rows(q->block_size);
    cell = pt_rs_cell(q->block_size);
    if (q->data_len != 4u * rows * n || q->n_services != n) return -PT_EINVAL;
    for (i = 0; i < n; i++)
        for (j = 0; j < i; j++)
            if (q->services[i] == q->services[j]) return -PT_EINVAL;
    memset(&s, 0, sizeof(s));
    s.offset = q->offset;
    s.size = q->size;
    s.crc = q->crc;
    s.storage = PT_STORAGE_RS;
    s.data = q->data;
    s.parity = q->parity;
    s.block_size = q->block_size;
    s.cell_crcs = q->data_ptr;
    for (i = 0; i < n; i++) {
        uint32_t crc = 0;
        for (r = 0; r < rows; r++)
            crc = petrel_crc32c_append(crc, pt_get_le32(q->data_ptr + 4 * ((size_t)i * rows + r)),
                                       cell);
        s.blocks[i].crc = crc;
    }
    return span_append(a, q, &f, &s);
}

/* SET_POLICY: a directory of this shard gets a storage policy (an empty record clears it). */
static int op_set_policy(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec d;
    struct pt_policy p;
    uint8_t k[8];
    MDB_val key = {8, k}, val = {q->data_len, (void *)q->data_ptr};
    int rc;
    if (PT_INODE_SHARD(q->id) != a->sm->shard) return -PT_EXDEV;
    if ((rc = inode_get(a->sm, a->t, q->id, &d)) != 0) return rc;
    if (d.type != PT_TYPE_DIR) return -PT_ENOTDIR;
    key_put_be64(k, q->id);
    if (q->data_len == 0) {
        rc = mdb_del(a->t, a->sm->policy, &key, NULL);
        return rc == MDB_NOTFOUND ? 0 : map_mdb(rc);
    }
    if ((rc = pt_policy_decode(q->data_ptr, q->data_len, &p)) != 0) return rc;
    return map_mdb(mdb_put(a->t, a->sm->policy, &key, &val, 0));
}

static void repair_value_encode(uint8_t *v, const struct pt_repair_entry *e)
{
    pt_put_le64(v, e->file);
    pt_put_le64(v + 8, e->offset);
    v[16] = e->reason;
    pt_put_le32(v + 17, e->count);
    pt_put_le64(v + 21, e->first_ms);
    pt_put_le64(v + 29, e->last_ms);
}
#define REPAIR_VALUE_SIZE 37

/* Queue (service, block) of the span (file, offset) with a reason; a repeat counts. */
static int repairq_record(struct apply_ctx *a, uint64_t service, uint64_t block, uint64_t file,
                          uint64_t offset, uint8_t reason)
{
    struct pt_repair_entry e;
    uint8_t k[16], v[REPAIR_VALUE_SIZE];
    MDB_val key = {16, k}, val;
    int rc;
    memset(&e, 0, sizeof(e));
    key_put_be64(k, service);
    key_put_be64(k + 8, block);
    rc = mdb_get(a->t, a->sm->repairq, &key, &val);
    if (rc == 0 && val.mv_size == REPAIR_VALUE_SIZE) {
        e.count = pt_get_le32((uint8_t *)val.mv_data + 17);
        e.first_ms = pt_get_le64((uint8_t *)val.mv_data + 21);
    } else if (rc != MDB_NOTFOUND) {
        return rc ? map_mdb(rc) : -PT_ECORRUPT;
    } else {
        e.first_ms = a->now;
    }
    e.file = file;
    e.offset = offset;
    e.reason = reason;
    e.count++;
    e.last_ms = a->now;
    repair_value_encode(v, &e);
    val.mv_size = sizeof(v);
    val.mv_data = v;
    return map_mdb(mdb_put(a->t, a->sm->repairq, &key, &val, 0));
}

/*
 * REPORT_BAD_BLOCK: a reader found a block of a span down, missing or rotten. Queued for
 * repair (the repair itself is the scrubber/repair step of issue 13); a block already queued
 * counts the report and keeps its first time. Only a block the named span really lists is
 * accepted, so a reader cannot queue arbitrary ids.
 */
static int op_report_bad_block(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct pt_span s;
    unsigned i, n;
    int rc;
    if (PT_INODE_SHARD(q->id) != a->sm->shard) return -PT_EXDEV;
    if (q->max < PT_BAD_UNREACHABLE || q->max > PT_BAD_MISSING) return -PT_EINVAL;
    if ((rc = span_get(a->sm, a->t, q->id, q->offset, &s)) != 0) return rc;
    n = pt_span_block_count(&s);
    for (i = 0; i < n && s.blocks[i].block != q->target; i++)
        ;
    if (i == n) return -PT_ENOENT;
    return repairq_record(a, s.blocks[i].service, s.blocks[i].block, q->id, q->offset,
                          (uint8_t)q->max);
}

/*
 * SCRUB_REPORT: a block service's scrubber found one of its blocks rotten. The service knows
 * only (service, block); the block index names the span. Queued like a reader's report with
 * reason "corrupt". A block no span lists (its file was forgotten, its span dropped) is
 * -PT_ENOENT: nothing to repair, GC erases or has erased it.
 */
static int op_scrub_report(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct pt_span s;
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    uint64_t file, offset;
    unsigned i, n;
    int rc;
    if (PT_INODE_SHARD(q->id) != a->sm->shard) return -PT_EXDEV;
    key_put_be64(k, q->target);
    key_put_be64(k + 8, q->id);
    rc = mdb_get(a->t, a->sm->blockidx, &key, &val);
    if (rc == MDB_NOTFOUND) return -PT_ENOENT;
    if (rc) return map_mdb(rc);
    if (val.mv_size != 16) return -PT_ECORRUPT;
    file = pt_get_le64(val.mv_data);
    offset = pt_get_le64((uint8_t *)val.mv_data + 8);
    if ((rc = span_get(a->sm, a->t, file, offset, &s)) != 0) return rc;
    n = pt_span_block_count(&s);
    for (i = 0; i < n; i++)
        if (s.blocks[i].block == q->id && s.blocks[i].service == q->target) break;
    if (i == n) return -PT_ENOENT;
    return repairq_record(a, q->target, q->id, file, offset, PT_BAD_CORRUPT);
}

/*
 * REPLACE_BLOCK's swap in the span records other than (q->id, q->offset) that list the copy
 * (old service, q->target): each swaps the service too and its `blockrefs` key moves to the
 * new service. The caller then names (q->id, q->offset) in `blockidx` under the new service,
 * so the holder blockidx named before becomes a `blockrefs` key when it was another one.
 */
static int replace_block_holders(struct apply_ctx *a, const struct pt_shard_req *q,
                                 uint64_t old_svc, uint64_t new_svc)
{
    uint64_t hf[PT_SHARD_HOLDERS_MAX], ho[PT_SHARD_HOLDERS_MAX], f = 0, o = 0;
    unsigned n = 0, h, i, cnt;
    int rc = holder_primary(a->sm, a->t, old_svc, q->target, &f, &o);
    if (rc && rc != -PT_ENOENT) return rc;
    if (rc == 0 && (f != q->id || o != q->offset)) {
        hf[n] = f;
        ho[n++] = o;
    }
    f = o = 0;
    for (rc = holder_next(a->sm, a->t, old_svc, q->target, 0, &f, &o); rc == 1;
         rc = holder_next(a->sm, a->t, old_svc, q->target, 1, &f, &o)) {
        if (f == q->id && o == q->offset) continue;
        if (n == PT_SHARD_HOLDERS_MAX) return -PT_E2BIG;
        hf[n] = f;
        ho[n++] = o;
    }
    if (rc < 0) return rc;
    for (h = 0; h < n; h++) {
        struct pt_span s;
        if ((rc = span_get(a->sm, a->t, hf[h], ho[h], &s)) != 0) return rc;
        cnt = pt_span_block_count(&s);
        for (i = 0; i < cnt; i++)
            if (s.blocks[i].block == q->target && s.blocks[i].service == old_svc) break;
        if (i == cnt) return -PT_ECORRUPT; /* a holder whose span does not list the copy */
        s.blocks[i].service = new_svc;
        if ((rc = span_put(a, hf[h], &s)) != 0 ||
            (rc = holder_ref(a->sm, a->t, old_svc, q->target, hf[h], ho[h], 0)) != 0 ||
            (rc = holder_ref(a->sm, a->t, new_svc, q->target, hf[h], ho[h], 1)) != 0)
            return rc;
    }
    /* (q->id, q->offset) may have been a blockrefs holder: it becomes the primary. */
    return holder_ref(a->sm, a->t, old_svc, q->target, q->id, q->offset, 0);
}

/*
 * REPLACE_BLOCK (leader only): repair swaps a rebuilt copy into its span. services = (old
 * service, new service); the block keeps its id (the key of a copy is (service, block)). A
 * compare-and-swap: it acts only while the span still lists (old service, block), so a repair
 * that was overtaken (the span changed, another repair swapped first, the file is gone) changes
 * nothing but removes the stale queue entry. On a swap the old copy goes to `dropped` (GC
 * erases it after the retention period, like a dropped span's blocks), the block index and
 * the repair queue follow. New service 0: only forget the queue entry (repair found that no
 * span lists the block). Reply: u8 1 swapped, 0 nothing to do (the queue entry is gone).
 */
static int op_replace_block(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct pt_span s;
    uint8_t k[16], v[16], dk[24], dv[8];
    MDB_val key = {16, k}, val = {16, v}, dkey = {24, dk}, dval = {8, dv};
    uint64_t old_svc, new_svc;
    unsigned i, j, n;
    int rc;
    if (q->n_services != 2) return -PT_EINVAL;
    old_svc = q->services[0];
    new_svc = q->services[1];
    if (old_svc == new_svc) return -PT_EINVAL;
    key_put_be64(k, old_svc);
    key_put_be64(k + 8, q->target);
    rc = mdb_del(a->t, a->sm->repairq, &key, NULL);
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    if (new_svc == 0) goto nothing; /* only forget the queue entry */
    rc = span_get(a->sm, a->t, q->id, q->offset, &s);
    if (rc == -PT_ENOENT) goto nothing;
    if (rc) return rc;
    n = pt_span_block_count(&s);
    for (i = 0; i < n; i++)
        if (s.blocks[i].block == q->target && s.blocks[i].service == old_svc) break;
    if (i == n) goto nothing; /* compare failed: someone swapped or dropped it first */
    for (j = 0; j < n; j++)
        if (s.blocks[j].service == new_svc) return -PT_EEXIST; /* two blocks on one service */
    s.blocks[i].service = new_svc;
    if ((rc = span_put(a, q->id, &s)) != 0) return rc;
    /* Every other span record listing the copy (a file's versions share spans) follows. */
    if ((rc = replace_block_holders(a, q, old_svc, new_svc)) != 0) return rc;
    rc = mdb_del(a->t, a->sm->blockidx, &key, NULL);
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    key_put_be64(k, new_svc);
    pt_put_le64(v, q->id);
    pt_put_le64(v + 8, q->offset);
    if ((rc = map_mdb(mdb_put(a->t, a->sm->blockidx, &key, &val, 0))) != 0) return rc;
    key_put_be64(dk, a->now);
    key_put_be64(dk + 8, old_svc);
    key_put_be64(dk + 16, q->target);
    pt_put_le32(dv, s.blocks[i].crc);
    pt_put_le32(dv + 4, s.block_size);
    if ((rc = map_mdb(mdb_put(a->t, a->sm->dropped, &dkey, &dval, 0))) != 0) return rc;
    pt_enc_u8(&a->out, 1);
    return 0;
nothing:
    pt_enc_u8(&a->out, 0);
    return 0;
}

/* ---- files that change (issue 12) ----------------------------------------------------------- */

/*
 * OPEN_CHANGE: a linked file of this shard gets a change file: a new transient file (the
 * writer's cookie, owner deadline) that starts with the base file's size, attributes and span
 * records, every copy shared (a holder more). q->expect, when non-zero, is the version the
 * writer saw (-PT_ESTALE when the file is at another one). Reply: u64 change id, u64 the base's
 * version (what COMMIT_CHANGE will compare), u64 its size.
 */
static int op_open_change(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec f, c;
    struct change_rec ch;
    struct span_raw *v;
    uint64_t seq = 0, id;
    size_t n, i;
    unsigned j;
    int rc;
    if (PT_INODE_SHARD(q->id) != a->sm->shard) return -PT_EXDEV;
    if ((rc = inode_get(a->sm, a->t, q->id, &f)) != 0) return rc;
    if (f.type == PT_TYPE_DIR) return -PT_EISDIR;
    if (f.type != PT_TYPE_FILE) return -PT_EINVAL;
    if (f.state != PT_FILE_LINKED) return -PT_ESTALE;
    if (q->expect && q->expect != f.version) return -PT_ESTALE;
    if ((rc = meta_next(a->sm, a->t, "inode_seq", &seq)) != 0) return rc;
    id = PT_INODE_MAKE(a->sm->shard, seq);
    c = f;
    c.state = PT_FILE_TRANSIENT;
    c.cookie = q->cookie;
    c.deadline = a->now + a->sm->transient_ttl_ms;
    if ((rc = spans_load(a, q->id, 0, UINT64_MAX, &v, &n)) != 0) return rc;
    for (i = 0; i < n && !rc; i++) {
        struct pt_span s;
        if ((rc = span_raw_decode(&v[i], &s)) != 0) break;
        for (j = 0; j < pt_span_block_count(&s) && !rc; j++)
            rc = holder_add(a, s.blocks[j].service, s.blocks[j].block, id, s.offset);
        if (!rc) rc = span_raw_put(a, id, &v[i]);
    }
    spans_free(v, n);
    if (rc) return rc;
    if (n != f.n_spans) return -PT_ECORRUPT;
    ch.base = q->id;
    ch.base_version = f.version;
    ch.committed = 0;
    if ((rc = change_put(a, id, &ch)) || (rc = inode_put(a->sm, a->t, id, &c)) ||
        (rc = transient_index(a->sm, a->t, c.deadline, id, 1)))
        return rc;
    pt_enc_u64(&a->out, id);
    pt_enc_u64(&a->out, f.version);
    pt_enc_u64(&a->out, f.size);
    return 0;
}

/*
 * TRUNCATE_SPANS: a transient file loses every span at or after q->offset, which must be a
 * span's start or the file's size (-PT_EINVAL otherwise: the writer first rewrites the span
 * that holds the new end). Copies no span lists any more wait out the retention in `dropped`.
 * q->expect, when non-zero, is the size the writer saw: a file already cut there is a repeat
 * (done); one of another size is a stale duplicate arriving after later writes (-PT_ESTALE,
 * nothing cut).
 */
static int op_truncate_spans(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec f;
    struct span_raw *v;
    size_t n, i;
    int rc = writable_file(a, q, &f);
    if (rc) return rc;
    if (q->offset > f.size) return -PT_EINVAL;
    if (q->offset == f.size) return 0; /* nothing past it (a repeat) */
    if (q->expect && q->expect != f.size) return -PT_ESTALE;
    /* Inside a hole: the hole is cut there first (the writer rewrites no bytes for it). */
    if ((rc = hole_split(a, q->id, q->offset, &f)) < 0) return rc;
    if ((rc = spans_load(a, q->id, q->offset, UINT64_MAX, &v, &n)) != 0) return rc;
    if (n == 0 || v[0].offset != q->offset) rc = -PT_EINVAL;
    for (i = 0; i < n && !rc; i++) {
        struct pt_span s;
        if ((rc = span_raw_decode(&v[i], &s)) || (rc = span_release(a, q->id, &s)) ||
            (rc = span_raw_del(a, q->id, s.offset)))
            break;
        f.n_spans--;
    }
    spans_free(v, n);
    if (rc) return rc;
    f.size = q->offset;
    if ((rc = touch_transient(a, q->id, &f)) != 0) return rc;
    return inode_put(a->sm, a->t, q->id, &f);
}

/*
 * COMMIT_CHANGE: the change replaces its base's content by compare-and-swap on the version:
 * only while the base is still linked at the version the change started from (-PT_ESTALE
 * otherwise: another writer committed first, or the file was removed; nothing changes, the
 * change stays open until it expires). Every span must be certified (-PT_EAGAIN). The two
 * files swap span lists (records both hold at the same offset stay where they are): the base
 * gets the new content and version + 1; the change file keeps the old content as an unlinked
 * file in its retention period (readers that opened the old version keep reading it; GC then
 * erases the copies no other span lists). Reply: u64 the new version, u64 the id that holds
 * the old version. A repeat of a committed change by its writer answers the same.
 */
/* CRC32C of A || B from crc(A), crc(B) and |B|: the CRC register is linear, so
 * crc(A || B) = crc(B) ^ z(crc(A), |B|) ^ z(0, |B|), z(c, n) the CRC of n zero bytes
 * continued from c. */
static uint32_t crc_concat(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    static const uint8_t zeros[4096];
    uint32_t za = crc_a, z0 = 0;
    while (len_b) {
        size_t n = (size_t)PT_MIN(len_b, (uint64_t)sizeof(zeros));
        za = petrel_crc32c(za, zeros, n);
        z0 = petrel_crc32c(z0, zeros, n);
        len_b -= n;
    }
    return crc_b ^ za ^ z0;
}

/*
 * A compaction holds the same bytes as its base: every record of the change file that is not
 * shared with the base (cv[j].val set) is one span that covers exactly a contiguous run of at
 * least two of the base's unshared records, and its CRC is the CRC of their concatenation.
 * The sizes are equal, so no base byte is left uncovered.
 */
static int compact_same_bytes(const struct span_raw *fv, size_t fn, const struct span_raw *cv,
                              size_t cn)
{
    size_t i = 0, j;
    int rc;
    for (j = 0; j < cn; j++) {
        struct pt_span m, s;
        uint64_t at;
        uint32_t crc = 0;
        unsigned run = 0;
        if (!cv[j].val) continue;
        if ((rc = span_raw_decode(&cv[j], &m)) != 0) return rc;
        while (i < fn && (!fv[i].val || fv[i].offset < m.offset))
            if (fv[i++].val) return -PT_EINVAL; /* a base record no merged span covers */
        for (at = m.offset; at < m.offset + m.size; at += s.size, i++, run++) {
            if (i == fn || !fv[i].val || fv[i].offset != at) return -PT_EINVAL;
            if ((rc = span_raw_decode(&fv[i], &s)) != 0) return rc;
            crc = run ? crc_concat(crc, s.crc, s.size) : s.crc;
        }
        if (at != m.offset + m.size || run < 2 || crc != m.crc) return -PT_EINVAL;
    }
    for (; i < fn; i++)
        if (fv[i].val) return -PT_EINVAL;
    return 0;
}

static int commit_swap(struct apply_ctx *a, const struct pt_shard_req *q, int compact)
{
    struct inode_rec f, c;
    struct change_rec ch;
    struct span_raw *fv = NULL, *cv = NULL;
    size_t fn = 0, cn = 0, i, j;
    uint64_t f_size, f_spans;
    int rc = change_get(a->sm, a->t, q->id, &ch);
    if (rc) return rc == -PT_ENOENT ? -PT_EINVAL : rc;
    if (ch.committed) {
        if ((rc = inode_get(a->sm, a->t, q->id, &c)) != 0) return rc;
        if (c.cookie != q->cookie) return -PT_EACCES;
        pt_enc_u64(&a->out, ch.committed);
        pt_enc_u64(&a->out, q->id);
        return 0;
    }
    if ((rc = writable_file(a, q, &c)) != 0) return rc;
    rc = all_spans_certified(a, q->id);
    if (rc < 0) return rc;
    if (rc == 0) return -PT_EAGAIN;
    rc = inode_get(a->sm, a->t, ch.base, &f);
    if (rc == -PT_ENOENT) return -PT_ESTALE;
    if (rc) return rc;
    if (f.state != PT_FILE_LINKED || f.version != ch.base_version) return -PT_ESTALE;
    if (compact && (c.size != f.size || c.n_spans >= f.n_spans)) return -PT_EINVAL;
    if ((rc = spans_load(a, ch.base, 0, UINT64_MAX, &fv, &fn)) != 0 ||
        (rc = spans_load(a, q->id, 0, UINT64_MAX, &cv, &cn)) != 0)
        goto out;
    /* Records both files hold at one offset, byte for byte, are shared: they stay. The rest
     * change sides, and so do their copies' holders. */
    for (i = 0, j = 0; i < fn; i++) {
        while (j < cn && cv[j].offset < fv[i].offset)
            j++;
        if (j < cn && cv[j].offset == fv[i].offset && cv[j].len == fv[i].len &&
            memcmp(cv[j].val, fv[i].val, fv[i].len) == 0) {
            free(fv[i].val);
            fv[i].val = NULL; /* shared */
            free(cv[j].val);
            cv[j].val = NULL;
        }
    }
    if (compact && (rc = compact_same_bytes(fv, fn, cv, cn)) != 0) goto out;
    for (i = 0; i < fn && !rc; i++)
        if (fv[i].val) rc = span_raw_del(a, ch.base, fv[i].offset);
    for (i = 0; i < cn && !rc; i++)
        if (cv[i].val) rc = span_raw_del(a, q->id, cv[i].offset);
    for (i = 0; i < fn && !rc; i++) {
        struct pt_span s;
        unsigned b;
        if (!fv[i].val) continue;
        if ((rc = span_raw_decode(&fv[i], &s)) != 0) break;
        for (b = 0; b < pt_span_block_count(&s) && !rc; b++)
            rc = holder_move(a, s.blocks[b].service, s.blocks[b].block, ch.base, q->id, s.offset);
        if (!rc) rc = span_raw_put(a, q->id, &fv[i]);
    }
    for (i = 0; i < cn && !rc; i++) {
        struct pt_span s;
        unsigned b;
        if (!cv[i].val) continue;
        if ((rc = span_raw_decode(&cv[i], &s)) != 0) break;
        for (b = 0; b < pt_span_block_count(&s) && !rc; b++)
            rc = holder_move(a, s.blocks[b].service, s.blocks[b].block, q->id, ch.base, s.offset);
        if (!rc) rc = span_raw_put(a, ch.base, &cv[i]);
    }
    if (rc) goto out;
    f_size = f.size;
    f_spans = f.n_spans;
    f.size = c.size;
    f.n_spans = c.n_spans;
    if (!compact) { /* a compaction keeps the content, so the version and the times */
        f.version = ch.base_version + 1;
        f.mtime = c.mtime;
        f.ctime = a->now * NS_PER_MS;
    }
    if ((rc = transient_index(a->sm, a->t, c.deadline, q->id, 0)) != 0) goto out;
    c.size = f_size;
    c.n_spans = (uint32_t)f_spans;
    c.version = ch.base_version;
    c.state = PT_FILE_UNLINKED;
    c.parent = f.parent;
    c.deadline = a->now + a->sm->retention_ms;
    ch.committed = f.version;
    if ((rc = inode_put(a->sm, a->t, ch.base, &f)) || (rc = inode_put(a->sm, a->t, q->id, &c)) ||
        (rc = change_put(a, q->id, &ch)))
        goto out;
    pt_enc_u64(&a->out, f.version);
    pt_enc_u64(&a->out, q->id);
out:
    spans_free(fv, fn);
    spans_free(cv, cn);
    return rc;
}

static int op_commit_change(struct apply_ctx *a, const struct pt_shard_req *q)
{
    return commit_swap(a, q, 0);
}

/*
 * COMPACT_CHANGE (leader only): a background compaction's change file, whose only edits are
 * runs of the base's spans replaced in place by one span each (ADD_SPAN / ADD_INLINE at the
 * run's start), replaces the base's span list like COMMIT_CHANGE — the same compare-and-swap
 * on the version, the same swap of holders, the old spans kept by the change file as an
 * unlinked file for the retention period — but the content is unchanged, so the version,
 * mtime and ctime stay: a writer's change opened before still commits (a concurrent change
 * wins; the merged span then goes to the old version). Refused with -PT_EINVAL unless every
 * merged span covers exactly a contiguous run of >= 2 of the base's spans and its CRC is the
 * CRC of their concatenation (compact_same_bytes), and the size is the base's. Reply: u64
 * the file's version, u64 the id holding the old spans.
 */
static int op_compact_change(struct apply_ctx *a, const struct pt_shard_req *q)
{
    return commit_swap(a, q, 1);
}

/* Service marks in `meta`: key prefix + 16 hex digits of the service id, value u64 1. Drain
 * marks ("drain:", DRAIN_SERVICE) and failed marks ("failed:", FAIL_SERVICE). */
#define DRAIN_PREFIX "drain:"
#define FAILED_PREFIX "failed:"
static size_t mark_key(char *k, size_t cap, const char *prefix, uint64_t service)
{
    int n = snprintf(k, cap, "%s%016" PRIx64, prefix, service);
    return n < 0 ? 0 : (size_t)n;
}
static size_t drain_key(char *k, size_t cap, uint64_t service)
{
    return mark_key(k, cap, DRAIN_PREFIX, service);
}

/* Set (max 1) or clear (max 0) a service mark. */
static int op_service_mark(struct apply_ctx *a, const struct pt_shard_req *q, const char *prefix)
{
    char k[32];
    uint8_t v[8];
    MDB_val key, val = {8, v};
    int rc;
    if (q->target == 0 || q->max > 1) return -PT_EINVAL;
    key.mv_size = mark_key(k, sizeof(k), prefix, q->target);
    key.mv_data = k;
    if (q->max == 0) {
        rc = mdb_del(a->t, a->sm->meta, &key, NULL);
        return rc == MDB_NOTFOUND ? 0 : map_mdb(rc);
    }
    pt_put_le64(v, 1);
    return map_mdb(mdb_put(a->t, a->sm->meta, &key, &val, 0));
}

/* DRAIN_SERVICE: mark (max 1) or unmark (max 0) a block service as draining. */
static int op_drain_service(struct apply_ctx *a, const struct pt_shard_req *q)
{
    return op_service_mark(a, q, DRAIN_PREFIX);
}

/* FAIL_SERVICE: an operator declares (max 1) a block service failed, or takes it back (max 0).
 * Repair then rebuilds its blocks from the spans' other blocks at once (as for a service
 * stale past --repair-stale), and neither repair nor new spans place blocks on it. */
static int op_fail_service(struct apply_ctx *a, const struct pt_shard_req *q)
{
    return op_service_mark(a, q, FAILED_PREFIX);
}

/* DRAIN_STATUS: u8 draining, u64 blocks the block index still places on the service. */
static int q_drain_status(struct apply_ctx *a, const struct pt_shard_req *q)
{
    char k[32];
    uint8_t bk[16];
    MDB_val key, val, ikey = {16, bk};
    MDB_cursor *cur;
    uint64_t n = 0;
    int rc;
    key.mv_size = drain_key(k, sizeof(k), q->target);
    key.mv_data = k;
    rc = mdb_get(a->t, a->sm->meta, &key, &val);
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    pt_enc_u8(&a->out, rc == 0 ? 1 : 0);
    if ((rc = mdb_cursor_open(a->t, a->sm->blockidx, &cur)) != 0) return map_mdb(rc);
    key_put_be64(bk, q->target);
    key_put_be64(bk + 8, 0);
    for (rc = mdb_cursor_get(cur, &ikey, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &ikey, &val, MDB_NEXT)) {
        if (ikey.mv_size != 16 || key_get_be64(ikey.mv_data) != q->target) break;
        n++;
    }
    mdb_cursor_close(cur);
    pt_enc_u64(&a->out, n);
    return 0;
}


/* A read-only transaction and a cursor on one table, for the leader's scans: 0 or a PT_E*
 * (nothing left open on error). */
static int read_cursor(struct pt_shard_sm *sm, MDB_dbi dbi, MDB_txn **t, MDB_cursor **cur)
{
    int rc = mdb_txn_begin(sm->env, NULL, MDB_RDONLY, t);
    if (rc != 0) return map_mdb(rc);
    if ((rc = mdb_cursor_open(*t, dbi, cur)) != 0) {
        mdb_txn_abort(*t);
        return map_mdb(rc);
    }
    return 0;
}

/* The services a mark (prefix) is set for: count (<= max) or -PT_E*. */
static int service_marks(struct pt_shard_sm *sm, const char *prefix, uint64_t *out, unsigned max)
{
    MDB_txn *t;
    MDB_cursor *cur;
    size_t plen = strlen(prefix);
    MDB_val key = {plen, (void *)prefix}, val;
    unsigned n = 0;
    int rc;
    if ((rc = read_cursor(sm, sm->meta, &t, &cur)) != 0) return rc;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0 && n < max;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        char hex[17];
        if (key.mv_size != plen + 16 || memcmp(key.mv_data, prefix, plen) != 0) break;
        memcpy(hex, (char *)key.mv_data + plen, 16);
        hex[16] = 0;
        out[n++] = strtoull(hex, NULL, 16);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(t);
    return (int)n;
}

int pt_shard_sm_draining(struct pt_shard_sm *sm, uint64_t *out, unsigned max)
{
    return service_marks(sm, DRAIN_PREFIX, out, max);
}

int pt_shard_sm_failed(struct pt_shard_sm *sm, uint64_t *out, unsigned max)
{
    return service_marks(sm, FAILED_PREFIX, out, max);
}

int pt_shard_sm_block_listed(struct pt_shard_sm *sm, uint64_t service, uint64_t block)
{
    MDB_txn *t;
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    int rc = mdb_txn_begin(sm->env, NULL, MDB_RDONLY, &t);
    if (rc != 0) return map_mdb(rc);
    key_put_be64(k, service);
    key_put_be64(k + 8, block);
    rc = mdb_get(t, sm->blockidx, &key, &val);
    mdb_txn_abort(t);
    if (rc == MDB_NOTFOUND) return 0;
    return rc ? map_mdb(rc) : 1;
}

int pt_shard_sm_span_scan(struct pt_shard_sm *sm, pt_shard_span_fn fn, void *ctx,
                          uint64_t *queued)
{
    MDB_txn *t;
    MDB_cursor *cur;
    MDB_val key, val;
    MDB_stat st;
    int rc, err = 0;
    if ((rc = read_cursor(sm, sm->spans, &t, &cur)) != 0) return rc;
    *queued = mdb_stat(t, sm->repairq, &st) == 0 ? st.ms_entries : 0;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct pt_span sp;
        struct pt_cursor c;
        unsigned i, mask = 0;
        if (key.mv_size != 16) continue;
        pt_cursor_init(&c, val.mv_data, val.mv_size);
        if (pt_span_decode(&c, &sp)) {
            err = -PT_ECORRUPT;
            break;
        }
        sp.cell_crcs = NULL; /* inside the transaction's pages */
        sp.inline_data = NULL;
        for (i = 0; i < pt_span_block_count(&sp); i++) {
            uint8_t qk[16];
            MDB_val qkey = {16, qk}, qval;
            key_put_be64(qk, sp.blocks[i].service);
            key_put_be64(qk + 8, sp.blocks[i].block);
            if (mdb_get(t, sm->repairq, &qkey, &qval) == 0) mask |= 1u << i;
        }
        fn(ctx, key_get_be64(key.mv_data), &sp, mask);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(t);
    if (err) return err;
    return rc == MDB_NOTFOUND ? 0 : map_mdb(rc);
}

int pt_shard_sm_span_walk(struct pt_shard_sm *sm, uint64_t *file, uint64_t *offset, unsigned budget,
                          pt_shard_span_fn fn, void *ctx)
{
    MDB_txn *t;
    MDB_cursor *cur;
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    int rc, err = 0, n = 0;
    if ((rc = read_cursor(sm, sm->spans, &t, &cur)) != 0) return rc;
    span_key(k, *file, *offset);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0 && (unsigned)n < budget;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct pt_span sp;
        struct pt_cursor c;
        if (key.mv_size != 16) continue;
        pt_cursor_init(&c, val.mv_data, val.mv_size);
        if (pt_span_decode(&c, &sp)) {
            err = -PT_ECORRUPT;
            break;
        }
        sp.cell_crcs = NULL; /* inside the transaction's pages */
        sp.inline_data = NULL;
        *file = key_get_be64(key.mv_data);
        *offset = key_get_be64((const uint8_t *)key.mv_data + 8) + 1;
        fn(ctx, *file, &sp, 0);
        n++;
    }
    if (rc == MDB_NOTFOUND) *file = *offset = 0; /* the end: the next walk starts over */
    mdb_cursor_close(cur);
    mdb_txn_abort(t);
    if (err) return err;
    return rc == 0 || rc == MDB_NOTFOUND ? n : map_mdb(rc);
}

static int q_get_policy(struct apply_ctx *a, const struct pt_shard_req *q)
{
    uint8_t k[8];
    MDB_val key = {8, k}, val;
    int rc;
    if (PT_INODE_SHARD(q->id) != a->sm->shard) return -PT_EXDEV;
    key_put_be64(k, q->id);
    if ((rc = mdb_get(a->t, a->sm->policy, &key, &val)) != 0) return map_mdb(rc);
    pt_enc_bytes(&a->out, val.mv_data, val.mv_size);
    return 0;
}

/* REPAIR_LIST: queue entries from (service, block) on, in key order; then u8 more. */
static int q_repair_list(struct apply_ctx *a, const struct pt_shard_req *q)
{
    MDB_cursor *cur;
    uint8_t k[16], *count_at;
    MDB_val key = {16, k}, val;
    uint16_t count = 0, max = q->max ? q->max : 256;
    int rc, more = 0;
    count_at = pt_cursor_take(&a->out, 2);
    if (!count_at) return -PT_EOVERFLOW;
    key_put_be64(k, q->target);
    key_put_be64(k + 8, q->offset);
    if ((rc = mdb_cursor_open(a->t, a->sm->repairq, &cur)) != 0) return map_mdb(rc);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        const uint8_t *v = val.mv_data;
        struct pt_repair_entry e;
        if (key.mv_size != 16 || val.mv_size != REPAIR_VALUE_SIZE) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (count == max || pt_cursor_left(&a->out) < PT_REPAIR_ENTRY_SIZE + 1) {
            more = 1;
            break;
        }
        e.service = key_get_be64(key.mv_data);
        e.block = key_get_be64((uint8_t *)key.mv_data + 8);
        e.file = pt_get_le64(v);
        e.offset = pt_get_le64(v + 8);
        e.reason = v[16];
        e.count = pt_get_le32(v + 17);
        e.first_ms = pt_get_le64(v + 21);
        e.last_ms = pt_get_le64(v + 29);
        pt_repair_entry_encode(&a->out, &e);
        count++;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    pt_put_le16(count_at, count);
    pt_enc_u8(&a->out, (uint8_t)more);
    return 0;
}

static int dispatch_write(struct apply_ctx *a, const struct pt_shard_req *q)
{
    switch (q->op) {
    case PT_SHARD_CONSTRUCT_FILE:
        return op_construct(a, q);
    case PT_SHARD_ADD_SPAN:
        return op_add_span(a, q);
    case PT_SHARD_ADD_INLINE:
        return op_add_inline(a, q);
    case PT_SHARD_CERTIFY_SPAN:
        return op_certify(a, q);
    case PT_SHARD_LINK_FILE:
        return link_file(a, q, 0);
    case PT_SHARD_LINK_REPLACE:
        return link_file(a, q, 1);
    case PT_SHARD_UNLINK:
        return unlink_entry(a, q, 0);
    case PT_SHARD_UNLINK_INODE:
        return unlink_entry(a, q, 1);
    case PT_SHARD_RENAME:
        return rename_entry(a, q, 0);
    case PT_SHARD_RENAME_INODE:
        return rename_entry(a, q, 1);
    case PT_SHARD_EXPIRE:
        return op_expire(a);
    case PT_SHARD_DROP_SPAN:
        return op_drop_span(a, q);
    case PT_SHARD_RETIRE_FILE:
        return op_retire(a, q);
    case PT_SHARD_FORGET_FILE:
        return op_forget(a, q);
    case PT_SHARD_FORGET_DROPPED:
        return op_forget_dropped(a, q);
    case PT_SHARD_MAKE_DIR:
        return op_make_dir(a, q);
    case PT_SHARD_ADD_ENTRY:
        return op_add_entry(a, q);
    case PT_SHARD_REMOVE_ENTRY:
        return op_remove_entry(a, q);
    case PT_SHARD_LOCK_ENTRY:
        return op_lock_entry(a, q, 1);
    case PT_SHARD_UNLOCK_ENTRY:
        return op_lock_entry(a, q, 0);
    case PT_SHARD_REMOVE_DIR:
        return op_remove_dir(a, q);
    case PT_SHARD_SET_PARENT:
        return op_set_parent(a, q);
    case PT_SHARD_REPLACE_ENTRY:
        return op_replace_entry(a, q);
    case PT_SHARD_SETATTR:
        return op_setattr(a, q);
    case PT_SHARD_MAKE_NODE:
        return op_make_node(a, q);
    case PT_SHARD_ADD_RS_SPAN:
        return op_add_rs_span(a, q);
    case PT_SHARD_SET_POLICY:
        return op_set_policy(a, q);
    case PT_SHARD_REPORT_BAD_BLOCK:
        return op_report_bad_block(a, q);
    case PT_SHARD_SCRUB_REPORT:
        return op_scrub_report(a, q);
    case PT_SHARD_REPLACE_BLOCK:
        return op_replace_block(a, q);
    case PT_SHARD_DRAIN_SERVICE:
        return op_drain_service(a, q);
    case PT_SHARD_OPEN_CHANGE:
        return op_open_change(a, q);
    case PT_SHARD_TRUNCATE_SPANS:
        return op_truncate_spans(a, q);
    case PT_SHARD_COMMIT_CHANGE:
        return op_commit_change(a, q);
    case PT_SHARD_ADD_HOLE:
        return op_add_hole(a, q);
    case PT_SHARD_COMPACT_CHANGE:
        return op_compact_change(a, q);
    case PT_SHARD_FAIL_SERVICE:
        return op_fail_service(a, q);
    default:
        return -PT_EPROTO;
    }
}

/* Store failures (as opposed to refusals) abort the whole entry and stop apply. */
static int is_store_failure(int rc)
{
    return rc == -PT_EIO || rc == -PT_ENOSPC || rc == -PT_ENOMEM || rc == -PT_ECORRUPT;
}

static int reply_status_only(uint8_t *reply, size_t cap, size_t *reply_len, int status)
{
    if (cap < 4) return -PT_EOVERFLOW;
    pt_put_le32(reply, (uint32_t)(int32_t)status);
    *reply_len = 4;
    return 0;
}

static int apply_one(struct pt_shard_sm *sm, uint64_t now, const uint8_t *req, size_t len,
                     uint8_t *reply, uint16_t *reply_len)
{
    struct apply_ctx a;
    struct pt_shard_req q;
    size_t rl;
    int rc, st;
    if ((st = pt_shard_req_decode(&q, req, len)) != 0 || !pt_shard_op_is_write(q.op)) {
        reply_status_only(reply, PT_SHARD_WRITE_REPLY_MAX, &rl, st ? st : -PT_EPROTO);
        *reply_len = (uint16_t)rl;
        return 0;
    }
    a.sm = sm;
    a.now = now;
    pt_cursor_init(&a.out, reply + 4, PT_SHARD_WRITE_REPLY_MAX - 4);
    if ((rc = mdb_txn_begin(sm->env, NULL, 0, &a.t)) != 0) return map_mdb(rc);
    st = dispatch_write(&a, &q);
    if (st == 0 && !pt_cursor_ok(&a.out)) st = -PT_EOVERFLOW;
    if (st != 0) {
        mdb_txn_abort(a.t);
        if (is_store_failure(st)) return st;
        reply_status_only(reply, PT_SHARD_WRITE_REPLY_MAX, &rl, st);
        *reply_len = (uint16_t)rl;
        return 0;
    }
    if ((rc = mdb_txn_commit(a.t)) != 0) return map_mdb(rc);
    pt_put_le32(reply, 0);
    *reply_len = (uint16_t)(4 + a.out.pos);
    return 0;
}

/*
 * The root directory is made at open, outside the log, so it has no time of its own: the
 * first entry applied gives it one (deterministic: every replica applies the same entry).
 */
static int root_stamp(struct pt_shard_sm *sm, uint64_t now)
{
    struct inode_rec root;
    MDB_txn *t;
    int rc;
    if (sm->shard != 0 || sm->root_stamped || now == 0) return 0;
    if ((rc = mdb_txn_begin(sm->env, NULL, 0, &t)) != 0) return map_mdb(rc);
    rc = inode_get(sm, t, PT_INODE_ROOT, &root);
    if (rc == 0 && root.ctime == 0) {
        root.atime = root.mtime = root.ctime = now * NS_PER_MS;
        rc = inode_put(sm, t, PT_INODE_ROOT, &root);
    }
    if (rc) {
        mdb_txn_abort(t);
        return rc == -PT_ENOENT ? 0 : rc;
    }
    if ((rc = mdb_txn_commit(t)) != 0) return map_mdb(rc);
    sm->root_stamped = 1;
    return 0;
}

int pt_shard_sm_apply(struct pt_shard_sm *sm, const uint8_t *entry, size_t len,
                      struct pt_shard_apply_out *out)
{
    struct pt_cursor c;
    uint16_t count, i;
    uint64_t now;
    int rc;
    out->count = 0;
    /*
     * A malformed entry cannot come from our leader's builder; whatever it is, every replica
     * refuses it identically (no request applied, no reply) instead of stopping.
     */
    if (len < PT_SHARD_ENTRY_HEADER || entry[0] != PT_SHARD_ENTRY_VERSION) return 0;
    count = pt_get_le16(entry + 2);
    now = pt_get_le64(entry + 4);
    if (count > PT_SHARD_BATCH_MAX) return 0;
    if ((rc = root_stamp(sm, now)) != 0) return rc;
    pt_cursor_init(&c, (void *)(entry + PT_SHARD_ENTRY_HEADER), len - PT_SHARD_ENTRY_HEADER);
    for (i = 0; i < count; i++) {
        uint32_t n = pt_dec_u32(&c);
        const uint8_t *req = pt_cursor_take(&c, n);
        if (!req) {
            /* A truncated tail: refuse the rest identically everywhere. */
            size_t rl;
            reply_status_only(out->reply[i], PT_SHARD_WRITE_REPLY_MAX, &rl, -PT_EPROTO);
            out->len[i] = (uint16_t)rl;
            out->count = (uint16_t)(i + 1);
            continue;
        }
        if ((rc = apply_one(sm, now, req, n, out->reply[i], &out->len[i])) != 0) return rc;
        out->count = (uint16_t)(i + 1);
    }
    return 0;
}

/* ---- queries ------------------------------------------------------------------------------ */

static int q_lookup(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct dirent_rec e;
    int rc;
    if (PT_INODE_SHARD(q->id) != a->sm->shard) return -PT_EXDEV;
    rc = dirent_get(a->sm, a->t, q->id, q->name, q->name_len, &e);
    if (rc == -PT_ENOENT) {
        struct inode_rec d;
        int drc = inode_get(a->sm, a->t, q->id, &d);
        if (drc) return drc;
        if (d.type != PT_TYPE_DIR) return -PT_ENOTDIR;
        return rc;
    }
    if (rc) return rc;
    pt_enc_u64(&a->out, e.id);
    pt_enc_u8(&a->out, e.type);
    return 0;
}

static int q_stat(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec r;
    int rc;
    if (PT_INODE_SHARD(q->id) != a->sm->shard) return -PT_EXDEV;
    if ((rc = inode_get(a->sm, a->t, q->id, &r)) != 0) return rc;
    pt_enc_u8(&a->out, r.type);
    pt_enc_u8(&a->out, r.type != PT_TYPE_DIR ? r.state : 0);
    pt_enc_u64(&a->out, r.type != PT_TYPE_DIR ? r.size : 0);
    pt_enc_u64(&a->out, r.mtime / NS_PER_MS);
    pt_enc_u64(&a->out, r.parent);
    pt_enc_u64(&a->out, r.type != PT_TYPE_DIR ? r.deadline : 0);
    /* POSIX attributes (issue 11): after the fields of the first layout. */
    pt_enc_u32(&a->out, r.mode);
    pt_enc_u32(&a->out, r.uid);
    pt_enc_u32(&a->out, r.gid);
    pt_enc_u64(&a->out, r.atime);
    pt_enc_u64(&a->out, r.mtime);
    pt_enc_u64(&a->out, r.ctime);
    pt_enc_u64(&a->out, r.rdev);
    pt_enc_u64(&a->out, r.version);
    pt_enc_u16(&a->out, r.target_len);
    pt_enc_bytes(&a->out, r.target, r.target_len);
    pt_enc_u32(&a->out, r.type == PT_TYPE_FILE ? r.n_spans : 0); /* issue 12 */
    /* link count: a directory's "." and its name, plus each subdirectory's ".." */
    pt_enc_u32(&a->out, r.type == PT_TYPE_DIR ? 2 + r.n_spans : 1);
    return 0;
}

static int q_readdir(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec d;
    MDB_cursor *cur;
    uint8_t k[16 + PT_NAME_MAX];
    MDB_val key, val;
    uint16_t count = 0, max = q->max ? PT_MIN(q->max, PT_READDIR_MAX) : PT_READDIR_MAX;
    uint8_t *count_at;
    int rc, more = 0, bad = 0;
    if ((rc = live_dir(a, q->id, &d)) != 0) return rc;
    key_put_be64(k, q->id);
    key_put_be64(k + 8, q->offset);
    memcpy(k + 16, q->name, q->name_len);
    key.mv_size = 16 + q->name_len;
    key.mv_data = k;
    count_at = pt_cursor_take(&a->out, 2);
    if (!count_at) return -PT_EOVERFLOW;
    if ((rc = mdb_cursor_open(a->t, a->sm->dirents, &cur)) != 0) return map_mdb(rc);
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    /* The cursor (hash, name) is exclusive: skip an exact match. */
    if (rc == 0 && key.mv_size == 16u + q->name_len && q->name_len &&
        memcmp(key.mv_data, k, key.mv_size) == 0)
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct dirent_rec e;
        size_t nlen, need;
        if (key.mv_size < 17 || key_get_be64(key.mv_data) != q->id) break;
        nlen = key.mv_size - 16;
        need = 8 + 8 + 1 + 1 + nlen;
        if (count == max || pt_cursor_left(&a->out) < need + 1) {
            more = 1;
            break;
        }
        if (dirent_decode(&e, &val) || nlen > PT_NAME_MAX) {
            bad = 1;
            break;
        }
        pt_enc_u64(&a->out, key_get_be64((const uint8_t *)key.mv_data + 8));
        pt_enc_u64(&a->out, e.id);
        pt_enc_u8(&a->out, e.type);
        pt_enc_u8(&a->out, (uint8_t)nlen);
        pt_enc_bytes(&a->out, (const uint8_t *)key.mv_data + 16, nlen);
        count++;
    }
    mdb_cursor_close(cur);
    if (bad) return -PT_ECORRUPT;
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    pt_put_le16(count_at, count);
    pt_enc_u8(&a->out, (uint8_t)more);
    return 0;
}

static int q_spans(struct apply_ctx *a, const struct pt_shard_req *q)
{
    struct inode_rec f;
    MDB_cursor *cur;
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    uint16_t count = 0, max = q->max ? q->max : 64;
    uint8_t *count_at;
    int rc, more = 0;
    if (PT_INODE_SHARD(q->id) != a->sm->shard) return -PT_EXDEV;
    if ((rc = inode_get(a->sm, a->t, q->id, &f)) != 0) return rc;
    if (f.type != PT_TYPE_FILE) return -PT_EISDIR;
    pt_enc_u64(&a->out, f.size);
    count_at = pt_cursor_take(&a->out, 2);
    if (!count_at) return -PT_EOVERFLOW;
    span_key(k, q->id, q->offset);
    if ((rc = mdb_cursor_open(a->t, a->sm->spans, &cur)) != 0) return map_mdb(rc);
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    /* Start at the span that contains offset: the one at or before it. */
    if (rc == 0 && (key_get_be64(key.mv_data) != q->id ||
                    key_get_be64((uint8_t *)key.mv_data + 8) > q->offset)) {
        if (mdb_cursor_get(cur, &key, &val, MDB_PREV) != 0 || key_get_be64(key.mv_data) != q->id)
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    } else if (rc == MDB_NOTFOUND) {
        rc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
    }
    for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size != 16 || key_get_be64(key.mv_data) != q->id) break;
        if (count == max || pt_cursor_left(&a->out) < val.mv_size + 1) {
            more = 1;
            break;
        }
        pt_enc_bytes(&a->out, val.mv_data, val.mv_size);
        count++;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    pt_put_le16(count_at, count);
    pt_enc_u8(&a->out, (uint8_t)more);
    return 0;
}

int pt_shard_sm_query(struct pt_shard_sm *sm, const uint8_t *req, size_t len, uint8_t *reply,
                      size_t cap, size_t *reply_len)
{
    struct apply_ctx a;
    struct pt_shard_req q;
    int rc, st;
    if (cap < 4) return -PT_EOVERFLOW;
    if ((st = pt_shard_req_decode(&q, req, len)) != 0 || pt_shard_op_is_write(q.op))
        return reply_status_only(reply, cap, reply_len, st ? st : -PT_EPROTO);
    a.sm = sm;
    a.now = 0;
    pt_cursor_init(&a.out, reply + 4, cap - 4);
    if ((rc = mdb_txn_begin(sm->env, NULL, MDB_RDONLY, &a.t)) != 0) return map_mdb(rc);
    switch (q.op) {
    case PT_SHARD_LOOKUP:
        st = q_lookup(&a, &q);
        break;
    case PT_SHARD_STAT:
        st = q_stat(&a, &q);
        break;
    case PT_SHARD_READDIR:
        st = q_readdir(&a, &q);
        break;
    case PT_SHARD_GET_POLICY:
        st = q_get_policy(&a, &q);
        break;
    case PT_SHARD_REPAIR_LIST:
        st = q_repair_list(&a, &q);
        break;
    case PT_SHARD_DRAIN_STATUS:
        st = q_drain_status(&a, &q);
        break;
    case PT_SHARD_REPAIR_STATUS:
        st = -PT_ENOTSUP; /* the leader's repair answers it (shard_repair.c), not the store */
        break;
    default:
        st = q_spans(&a, &q);
        break;
    }
    mdb_txn_abort(a.t);
    if (st == 0 && !pt_cursor_ok(&a.out)) st = -PT_EOVERFLOW;
    if (st) return reply_status_only(reply, cap, reply_len, st);
    pt_put_le32(reply, 0);
    *reply_len = 4 + a.out.pos;
    return 0;
}

/* ---- snapshots ---------------------------------------------------------------------------- */

int pt_shard_sm_gc_candidates(struct pt_shard_sm *sm, uint64_t now, uint64_t *cursor,
                              unsigned budget, uint64_t *ids, unsigned max)
{
    MDB_txn *t;
    MDB_cursor *cur;
    uint8_t k[8];
    MDB_val key = {8, k}, val;
    unsigned seen = 0, n = 0;
    int rc;
    if ((rc = read_cursor(sm, sm->inodes, &t, &cur)) != 0) return rc;
    key_put_be64(k, *cursor);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0 && seen < budget && n < max;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT), seen++) {
        struct inode_rec f;
        uint64_t id;
        if (key.mv_size != 8 || inode_decode(&f, &val) != 0) continue;
        id = key_get_be64(key.mv_data);
        *cursor = id + 1;
        if (f.type == PT_TYPE_DIR) continue;
        if ((f.state == PT_FILE_UNLINKED && f.deadline <= now) ||
            (f.state == PT_FILE_EXPIRED && f.deadline + sm->retention_ms <= now))
            ids[n++] = id;
    }
    if (rc == MDB_NOTFOUND) *cursor = 0; /* the end: start again next time */
    mdb_cursor_close(cur);
    mdb_txn_abort(t);
    return rc == 0 || rc == MDB_NOTFOUND ? (int)n : map_mdb(rc);
}

int pt_shard_sm_service_blocks(struct pt_shard_sm *sm, uint64_t service, uint64_t *cursor,
                               struct pt_repair_entry *out, unsigned max)
{
    MDB_txn *t;
    MDB_cursor *cur;
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    unsigned n = 0;
    int rc;
    if ((rc = read_cursor(sm, sm->blockidx, &t, &cur)) != 0) return rc;
    key_put_be64(k, service);
    key_put_be64(k + 8, *cursor);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0 && n < max;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size != 16 || key_get_be64(key.mv_data) != service) break;
        if (val.mv_size != 16) continue;
        memset(&out[n], 0, sizeof(out[n]));
        out[n].service = service;
        out[n].block = key_get_be64((uint8_t *)key.mv_data + 8);
        out[n].file = pt_get_le64(val.mv_data);
        out[n].offset = pt_get_le64((uint8_t *)val.mv_data + 8);
        *cursor = out[n].block + 1;
        n++;
    }
    if (n < max) *cursor = 0; /* the end: start over next time */
    mdb_cursor_close(cur);
    mdb_txn_abort(t);
    return (int)n;
}

int pt_shard_sm_file_blocks(struct pt_shard_sm *sm, uint64_t file, struct pt_gc_block **out,
                            size_t *n)
{
    MDB_txn *t;
    MDB_cursor *cur;
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    struct pt_gc_block *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc, err = 0;
    *out = NULL;
    *n = 0;
    if ((rc = read_cursor(sm, sm->spans, &t, &cur)) != 0) return rc;
    span_key(k, file, 0);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0 && !err;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct pt_span sp;
        struct pt_cursor c;
        unsigned i;
        if (key.mv_size != 16 || key_get_be64(key.mv_data) != file) break;
        pt_cursor_init(&c, val.mv_data, val.mv_size);
        if (pt_span_decode(&c, &sp)) {
            err = -PT_ECORRUPT;
            break;
        }
        for (i = 0; i < pt_span_block_count(&sp); i++) {
            uint64_t pf = 0, po = 0;
            int hr;
            /* A copy another span record also lists (a version or change of this file) is
             * not this file's to erase: it is collected with its last holder. */
            hr = holder_primary(sm, t, sp.blocks[i].service, sp.blocks[i].block, &pf, &po);
            if (hr == 0 && (pf != file || po != sp.offset)) continue;
            if (hr == 0 || hr == -PT_ENOENT)
                hr = holder_next(sm, t, sp.blocks[i].service, sp.blocks[i].block, 0, &pf, &po);
            if (hr < 0) {
                err = hr;
                break;
            }
            if (hr > 0) continue;
            if (cnt == cap) {
                size_t nc = cap ? cap * 2 : 16;
                struct pt_gc_block *nv = realloc(v, nc * sizeof(*nv));
                if (!nv) {
                    err = -PT_ENOMEM;
                    break;
                }
                v = nv;
                cap = nc;
            }
            v[cnt].service = sp.blocks[i].service;
            v[cnt].block = sp.blocks[i].block;
            v[cnt].crc = sp.blocks[i].crc;
            v[cnt].size = sp.block_size;
            cnt++;
        }
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(t);
    if (!err && rc && rc != MDB_NOTFOUND) err = map_mdb(rc);
    if (err) {
        free(v);
        return err;
    }
    *out = v;
    *n = cnt;
    return 0;
}

int pt_shard_sm_gc_dropped(struct pt_shard_sm *sm, uint64_t now, struct pt_gc_block *out,
                           uint64_t *times, unsigned max)
{
    MDB_txn *t;
    MDB_cursor *cur;
    MDB_val key, val;
    unsigned n = 0;
    int rc;
    if ((rc = read_cursor(sm, sm->dropped, &t, &cur)) != 0) return rc;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0 && n < max;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        const uint8_t *k = key.mv_data, *v = val.mv_data;
        if (key.mv_size != 24 || val.mv_size != 8) continue;
        if (key_get_be64(k) + sm->retention_ms > now) break; /* oldest first: the rest wait */
        times[n] = key_get_be64(k);
        out[n].service = key_get_be64(k + 8);
        out[n].block = key_get_be64(k + 16);
        out[n].crc = pt_get_le32(v);
        out[n].size = pt_get_le32(v + 4);
        n++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(t);
    return rc == 0 || rc == MDB_NOTFOUND ? (int)n : map_mdb(rc);
}

/* The run being built by pt_shard_sm_compact_find: whether span s may join it. */
static int compact_fits(const struct pt_compact_run *r, const struct pt_span *s, uint32_t below,
                        uint32_t max, size_t inline_used)
{
    uint64_t end = r->n ? r->offset + r->size : s->offset;
    if (!s->certified || s->size == 0 || s->size >= below || s->offset != end) return 0;
    if (s->storage != PT_STORAGE_INLINE && s->storage != PT_STORAGE_MIRRORED) return 0;
    if (r->n == PT_COMPACT_RUN_MAX) return 0;
    if (s->storage == PT_STORAGE_INLINE && inline_used + s->size > sizeof(r->inline_bytes))
        return 0;
    return (uint64_t)r->size + s->size <= max;
}

int pt_shard_sm_compact_find(struct pt_shard_sm *sm, uint32_t below, uint32_t max, unsigned min_run,
                             unsigned budget, uint64_t *cursor, struct pt_compact_run *run)
{
    MDB_txn *t;
    MDB_cursor *cur;
    uint8_t k[16];
    MDB_val key = {16, k}, val;
    uint64_t file = 0;
    size_t inline_used = 0;
    int linked = 0, found = 0, rc;
    unsigned seen = 0;
    if (min_run < 2) min_run = 2;
    memset(run, 0, sizeof(*run));
    if ((rc = read_cursor(sm, sm->spans, &t, &cur)) != 0) return rc;
    span_key(k, *cursor, 0);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0 && !found;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct pt_cursor c;
        struct pt_span s;
        uint64_t f;
        if (key.mv_size != 16) continue;
        f = key_get_be64(key.mv_data);
        if (f != file || seen == 0) {
            struct inode_rec ir;
            if (run->n >= min_run) { /* the last file's run ended with it */
                found = 1;
                break;
            }
            if (seen >= budget) { /* the next look starts at this file */
                *cursor = f;
                break;
            }
            file = f;
            *cursor = f;
            run->n = 0;
            run->size = 0;
            run->copies = 0;
            inline_used = 0;
            linked = inode_get(sm, t, f, &ir) == 0 && ir.type == PT_TYPE_FILE &&
                     ir.state == PT_FILE_LINKED;
            run->file = f;
            run->version = linked ? ir.version : 0;
        }
        seen++;
        if (!linked) continue;
        pt_cursor_init(&c, val.mv_data, val.mv_size);
        if (pt_span_decode(&c, &s) != 0) continue;
        if (!compact_fits(run, &s, below, max, inline_used)) {
            if (run->n >= min_run) {
                found = 1;
                break;
            }
            run->n = 0;
            run->size = 0;
            run->copies = 0;
            inline_used = 0;
            if (!compact_fits(run, &s, below, max, 0)) continue;
        }
        if (run->n == 0) run->offset = s.offset;
        if (s.storage == PT_STORAGE_INLINE) {
            memcpy(run->inline_bytes + inline_used, s.inline_data, s.size);
            s.inline_data = run->inline_bytes + inline_used;
            inline_used += s.size;
        } else if ((unsigned)s.parity + 1u > run->copies) {
            run->copies = (unsigned)s.parity + 1u;
        }
        s.cell_crcs = NULL;
        run->spans[run->n++] = s;
        run->size += s.size;
    }
    if (!found && run->n >= min_run && (rc == 0 || rc == MDB_NOTFOUND)) found = 1;
    if (found)
        *cursor = run->file + 1; /* the file's next run in a later look */
    else if (rc == MDB_NOTFOUND)
        *cursor = 0; /* the end: start again */
    mdb_cursor_close(cur);
    mdb_txn_abort(t);
    if (rc && rc != MDB_NOTFOUND && !found) return map_mdb(rc);
    if (!found) memset(run, 0, sizeof(*run));
    return found;
}

/* Store a directory's subdirectory count (a directory of another shard or gone: nothing). */
static int set_subdirs(struct pt_shard_sm *sm, MDB_txn *t, uint64_t dir, uint32_t n)
{
    struct inode_rec d;
    int rc = inode_get(sm, t, dir, &d);
    if (rc == -PT_ENOENT) return 0;
    if (rc) return rc;
    if (d.type != PT_TYPE_DIR || d.n_spans == n) return 0;
    d.n_spans = n;
    return inode_put(sm, t, dir, &d);
}

/*
 * Recompute every directory's count of entries of type directory from `dirents` (one pass in
 * key order: a directory's entries are one key range). A snapshot written before the count
 * existed holds 0 in its directories' records; a recount makes any snapshot right. Directories
 * with no entry get 0.
 */
int pt_shard_sm_recount_subdirs(struct pt_shard_sm *sm, MDB_txn *t)
{
    MDB_cursor *cur;
    MDB_val key, val;
    uint64_t dir = 0, prev = 0;
    uint32_t n = 0;
    int rc, have = 0;
    /* first every directory to 0, then the counts of those with entries */
    if ((rc = mdb_cursor_open(t, sm->inodes, &cur)) != 0) return map_mdb(rc);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct inode_rec d;
        int err;
        if (key.mv_size != 8 || (err = inode_decode(&d, &val)) != 0) {
            mdb_cursor_close(cur);
            return -PT_ECORRUPT;
        }
        if (d.type != PT_TYPE_DIR || d.n_spans == 0) continue;
        d.n_spans = 0;
        {
            uint8_t v[INODE_REC_LEN + PT_SYMLINK_MAX];
            MDB_val nv = {INODE_REC_LEN + d.target_len, v};
            inode_encode(&d, v);
            if ((rc = mdb_cursor_put(cur, &key, &nv, MDB_CURRENT)) != 0) break;
        }
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    if ((rc = mdb_cursor_open(t, sm->dirents, &cur)) != 0) return map_mdb(rc);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct dirent_rec e;
        if (key.mv_size < 16 || dirent_decode(&e, &val) != 0) {
            mdb_cursor_close(cur);
            return -PT_ECORRUPT;
        }
        dir = key_get_be64(key.mv_data);
        if (have && dir != prev) {
            if ((rc = set_subdirs(sm, t, prev, n)) != 0) {
                mdb_cursor_close(cur);
                return rc;
            }
            n = 0;
        }
        have = 1;
        prev = dir;
        n += e.type == PT_TYPE_DIR;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) return map_mdb(rc);
    return have ? set_subdirs(sm, t, prev, n) : 0;
}

