/*
 * Custom attributes: small values (at most attr_max bytes) of types 0-255 attached to an
 * entry, stored as ATTR / ATTRDEL records in the pair that holds the entry (they share its
 * name hash, so splits keep them together).
 *
 * Owns nothing but the attribute protocol: setting is one commit (atomic); the latest
 * record wins; removing the entry (DELETE) ends all its attributes; rename copies them.
 * Attributes of the root directory are not supported (it has no entry): -PT_EINVAL.
 */
#include "fs/fs_internal.h"

/* Find the attribute's latest record in the entry's pair: 1 found, 0 not. */
static int pt_attr_find(struct petrel_fs *fs, const struct pt_lookup *lk, uint8_t type,
                        struct pt_rec_ref *found)
{
    struct pt_rec_ref rec = {0, 0, 0};
    uint32_t pos = 0;
    int have = 0, err;
    while ((err = pt_rec_next(fs, &lk->md, &pos, &rec)) == 1) {
        uint64_t h;
        uint8_t a;
        if (rec.type != PT_REC_ATTR && rec.type != PT_REC_ATTRDEL && rec.type != PT_REC_DELETE)
            continue;
        err = pt_rec_hash(fs, &lk->md, &rec, &h, &a);
        if (err) return err;
        if (h != lk->hash) continue;
        if (rec.type == PT_REC_DELETE) {
            have = 0;
        } else if (a == type) {
            have = rec.type == PT_REC_ATTR;
            *found = rec;
        }
    }
    if (err < 0) return err;
    return have;
}

static int pt_attr_lookup(struct petrel_fs *fs, const char *path, struct pt_lookup *lk)
{
    int err = pt_lookup(fs, path, lk, -1);
    if (err) return err;
    if (lk->is_root) return -PT_EINVAL;
    if (lk->exists != 1) return -PT_ENOENT;
    return 0;
}

int64_t petrel_fs_getattr(struct petrel_fs *fs, const char *path, uint8_t type, void *buf,
                          uint32_t size)
{
    PT_REQUIRE_MOUNTED(fs);
    struct pt_lookup lk;
    struct pt_rec_ref rec = {0, 0, 0};
    uint32_t len;
    int err = pt_attr_lookup(fs, path, &lk);
    if (err) return err;
    err = pt_attr_find(fs, &lk, type, &rec);
    if (err < 0) return err;
    if (err == 0) return -PT_ENODATA;
    if (rec.len < 9) return -PT_ECORRUPT;
    len = rec.len - 9;
    if (size && buf) {
        err = pt_read(fs, lk.md.pair[0], rec.off + 9, buf, PT_MIN(size, len), len);
        if (err) return err;
    }
    return len;
}

#ifndef PETREL_FS_READONLY
static int pt_attr_commit(struct petrel_fs *fs, struct pt_lookup *lk, uint8_t rtype,
                          uint8_t type, const void *buf, uint32_t size)
{
    uint8_t key[9];
    struct pt_rec r;
    int err;
    pt_put_le64(key, lk->hash);
    key[8] = type;
    memset(&r, 0, sizeof(r));
    r.type = rtype;
    r.hash = lk->hash;
    r.atype = type;
    r.seg[0] = key;
    r.seglen[0] = 9;
    r.seg[1] = buf;
    r.seglen[1] = size;
    err = pt_fs_commit(fs, &lk->md, &r, 1);
    if (!err) pt_alloc_ack(fs);
    return err;
}

int petrel_fs_setattr(struct petrel_fs *fs, const char *path, uint8_t type, const void *buf,
                      uint32_t size)
{
    PT_REQUIRE_MOUNTED(fs);
    struct pt_lookup lk;
    int err;
    if (size > fs->attr_max) return -PT_ERANGE;
    if (size && !buf) return -PT_EINVAL;
    err = pt_mstate_mark_dirty(fs);
    if (err) return err;
    err = pt_attr_lookup(fs, path, &lk);
    if (err) return err;
    err = pt_fs_writable(fs);
    if (err) return err;
    return pt_attr_commit(fs, &lk, PT_REC_ATTR, type, buf, size);
}
#endif /* PETREL_FS_READONLY */

#ifndef PETREL_FS_READONLY
int petrel_fs_removeattr(struct petrel_fs *fs, const char *path, uint8_t type)
{
    PT_REQUIRE_MOUNTED(fs);
    struct pt_lookup lk;
    struct pt_rec_ref rec = {0, 0, 0};
    int err = pt_mstate_mark_dirty(fs);
    if (err) return err;
    err = pt_attr_lookup(fs, path, &lk);
    if (err) return err;
    err = pt_attr_find(fs, &lk, type, &rec);
    if (err < 0) return err;
    if (err == 0) return -PT_ENODATA;
    err = pt_fs_writable(fs);
    if (err) return err;
    return pt_attr_commit(fs, &lk, PT_REC_ATTRDEL, type, NULL, 0);
}
#endif /* PETREL_FS_READONLY */
