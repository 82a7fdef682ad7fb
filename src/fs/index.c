/*
 * The index of a big directory: an INDEX record in the directory's head pair listing some of
 * its continuation pairs by lowest hash, so that a lookup starts at the nearest pair at or
 * below its hash instead of at the head and passes a bounded number of pairs, even right
 * after a mount (docs/SPEC-FS.md 4.1).
 *
 * Owns the record's encoding and the changes to it. The index is trusted by write order, not
 * by checking the pair it names (a dropped pair's blocks and a relocated pair's old block
 * keep logs that still validate): every entry names a pair that is now on the directory's
 * chain with that lowest hash. Entries may be missing (that only costs reads), so an entry is
 * added only after the commit that linked its pair (pt_fs_commit, after a split), and removed
 * in a head commit that completes before the commit that unlinks or moves its pair (a drop,
 * a relocation: commit.c), or in that same commit when it is the head's. The record is
 * rewritten from the old one on the device (struct pt_rec's INDEX form), never held in RAM.
 * Nothing here recurses or allocates.
 */
#include "fs/fs_internal.h"

/* At most half a block less 128 bytes, so that the head keeps room for its own records (the
 * root pair's superblock and mount state) and entries; none on blocks under 512 B. */
uint32_t pt_index_cap(const struct petrel_fs *fs)
{
    uint32_t n = fs->block_size / 2 > 128 ? (fs->block_size / 2 - 128) / PT_INDEX_ENTRY : 0;
    return n < 4 ? 0 : n;
}

/* The entry key of a pair whose lowest hash is lo: lo / 2^32 rounded up (*ok clear when that
 * does not fit 32 bits: such a pair gets no entry). */
uint32_t pt_index_lo_hi(uint64_t lo, int *ok)
{
    uint64_t k = (lo >> 32) + ((lo & 0xffffffffu) ? 1 : 0);
    *ok = k <= 0xffffffffu;
    return (uint32_t)k;
}

/* Read entry i of the record at (block, off): with the rest of the record read ahead for a
 * scan (len), or only the entry for a search (len 0). */
static int pt_index_entry(struct petrel_fs *fs, uint32_t block, uint32_t off, uint32_t len,
                          uint32_t i, uint32_t *lo_hi, uint32_t pair[2])
{
    uint8_t e[PT_INDEX_ENTRY];
    int err = pt_read(fs, block, off + i * PT_INDEX_ENTRY, e, PT_INDEX_ENTRY,
                      len ? len - i * PT_INDEX_ENTRY : PT_INDEX_ENTRY);
    if (err) return err;
    *lo_hi = pt_get_le32(e);
    if (pair) {
        pair[0] = pt_get_le32(e + 4);
        pair[1] = pt_get_le32(e + 8);
    }
    return 0;
}

int pt_index_find(struct petrel_fs *fs, uint32_t block, uint32_t off, uint32_t len, uint64_t hash,
                  uint32_t pair[2], uint32_t *lo_hi)
{
    uint32_t n = len / PT_INDEX_ENTRY, a = 0, b = n, key = (uint32_t)(hash >> 32), k;
    int err;
    /* entries are in increasing lo_hi: the last one with lo_hi <= hash / 2^32 (rounded
     * down), i.e. lo_hi * 2^32 <= hash */
    while (a < b) {
        uint32_t mid = a + (b - a) / 2;
        err = pt_index_entry(fs, block, off, 0, mid, &k, NULL);
        if (err) return err;
        if (k <= key)
            a = mid + 1;
        else
            b = mid;
    }
    if (a == 0) return 0;
    err = pt_index_entry(fs, block, off, 0, a - 1, lo_hi, pair);
    return err ? err : 1;
}

int pt_index_names(struct petrel_fs *fs, const struct pt_mdir *head, const uint32_t pair[2])
{
    uint32_t i, n = head->index_len / PT_INDEX_ENTRY, k, p[2];
    for (i = 0; i < n; i++) {
        int err = pt_index_entry(fs, head->pair[0], head->index_off, head->index_len, i, &k, p);
        if (err) return err;
        if (pt_pair_eq(p, pair)) return 1;
    }
    return 0;
}

/* payload = [a, a + alen) of the head's block, then seg[0], then [b, b + blen) */
static void pt_index_set(struct pt_rec *r, const struct pt_mdir *head, uint32_t a, uint32_t alen,
                         const uint8_t *e, uint32_t elen, uint32_t b, uint32_t blen)
{
    memset(r, 0, sizeof(*r));
    r->type = PT_REC_INDEX;
    r->src = head;
    r->hash = (uint64_t)a << 32 | alen;
    r->src_hash = (uint64_t)b << 32 | blen;
    r->seg[0] = e;
    r->seglen[0] = elen;
}

int pt_index_rec(struct petrel_fs *fs, const struct pt_mdir *head, const uint32_t remove[2],
                 const uint32_t add[2], uint64_t add_lo, struct pt_rec *r, uint8_t *e)
{
    uint32_t n = head->index_len / PT_INDEX_ENTRY, off = head->index_off, blk = head->pair[0];
    uint32_t i, k, p[2], at, key = 0, cap = pt_index_cap(fs);
    int err, ok = 1;
    if (add) {
        key = pt_index_lo_hi(add_lo, &ok);
        pt_put_le32(e, key);
        pt_put_le32(e + 4, add[0]);
        pt_put_le32(e + 8, add[1]);
        if (!ok) add = NULL; /* a lowest hash past the last key: no entry */
    }
    if (remove) {
        for (i = 0; i < n; i++) {
            err = pt_index_entry(fs, blk, off, head->index_len, i, &k, p);
            if (err) return err;
            if (pt_pair_eq(p, remove)) break;
        }
        if (i == n) {
            if (!add) return 0;
        } else {
            /* the entry goes, or the moved pair takes its place (same lowest hash) */
            pt_index_set(r, head, off, i * PT_INDEX_ENTRY, e, add ? PT_INDEX_ENTRY : 0,
                         off + (i + 1) * PT_INDEX_ENTRY, (n - i - 1) * PT_INDEX_ENTRY);
            return 1;
        }
    }
    if (!add || cap == 0) return 0;
    for (i = 0; i < n; i++) {
        err = pt_index_entry(fs, blk, off, head->index_len, i, &k, NULL);
        if (err) return err;
        if (k == key) return 0; /* one entry per key */
        if (k > key) break;
    }
    at = i;
    if (n >= cap) {
        /* full: drop the entry whose neighbours are nearest (the index stays spread over
         * the hash space); the next split past it adds */
        uint32_t best = 0, prev = 0, cur, next;
        uint64_t best_gap = UINT64_MAX;
        err = pt_index_entry(fs, blk, off, head->index_len, 0, &cur, NULL);
        if (err) return err;
        for (i = 0; i < n; i++) {
            uint64_t gap;
            if (i + 1 < n) {
                err = pt_index_entry(fs, blk, off, head->index_len, i + 1, &next, NULL);
                if (err) return err;
                gap = (uint64_t)next - prev;
            } else {
                next = 0;
                gap = ((uint64_t)1 << 32) - prev;
            }
            if (gap < best_gap) {
                best_gap = gap;
                best = i;
            }
            prev = cur;
            cur = next;
        }
        pt_index_set(r, head, off, best * PT_INDEX_ENTRY, e, 0, off + (best + 1) * PT_INDEX_ENTRY,
                     (n - best - 1) * PT_INDEX_ENTRY);
        return 1;
    }
    pt_index_set(r, head, off, at * PT_INDEX_ENTRY, e, PT_INDEX_ENTRY, off + at * PT_INDEX_ENTRY,
                 (n - at) * PT_INDEX_ENTRY);
    return 1;
}

int pt_index_change(struct petrel_fs *fs, uint32_t head[2], const uint32_t remove[2],
                    const uint32_t add[2], uint64_t add_lo)
{
    struct pt_mdir hmd;
    struct pt_rec r;
    uint8_t e[PT_INDEX_ENTRY];
    int err;
    if (!fs->index_ok) return 0;
    if (fs->ix_busy) return remove ? -PT_EIO : 0; /* see pt_fs_commit */
    memset(&r, 0, sizeof(r));
    err = pt_mdir_fetch(fs, &hmd, head, NULL);
    if (err) return err;
    if (!hmd.head && !(head[0] == 0 && head[1] == 1) && !(head[0] == 1 && head[1] == 0))
        return -PT_ECORRUPT;
    err = pt_index_rec(fs, &hmd, remove, add, add_lo, &r, e);
    if (err <= 0) return err;
    petrel_log(PT_LOG_DEBUG, "fs", "index of {%u,%u}: %s {%u,%u}", (unsigned)head[0],
               (unsigned)head[1],
               remove        ? "remove"
               : r.seglen[0] ? "add"
                             : "thin",
               remove ? (unsigned)remove[0]
               : add  ? (unsigned)add[0]
                      : 0u,
               remove ? (unsigned)remove[1]
               : add  ? (unsigned)add[1]
                      : 0u);
    fs->ix_busy = 1;
    fs->ix_known = 0;
    err = pt_fs_commit(fs, &hmd, &r, 1);
    fs->ix_busy = 0;
    fs->ix_known = 0;
    if (!err) {
        head[0] = hmd.pair[0]; /* the head may have moved */
        head[1] = hmd.pair[1];
    }
    return err;
}
