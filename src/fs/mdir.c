/*
 * Metadata pairs: two erase blocks holding an append-only log of commits, each closed by a
 * CRC32C record. Fetch, append, compaction into the other block, relocation to a fresh
 * block, and splitting a full pair in two by name-hash range.
 *
 * Owns the log format of docs/SPEC-FS.md ("Metadata pairs"). Invariants: each commit's CRC
 * is seeded with the previous commit's, and a reader parses past a commit only when the
 * fcrc window after it has changed since it was written, so bytes an erase left behind
 * (stale commits included) never extend a log; a commit is appended only where the log ends
 * with its window unchanged, and only when its own first window bytes change that window's
 * CRC (else it would be invisible: compaction instead); the second block of a new pair holds
 * no readable log; every commit is read back and compared with the expected CRC before it
 * counts; a compaction or split becomes visible only through its final CRC, so a power cut
 * leaves the old log in force. Records later in a log supersede earlier ones with the same key.
 * This file never allocates memory and never recurses; a log is re-scanned instead of cached
 * (by its record headers only, when the pair was validated since its blocks were last written).
 */
#include "fs/fs_internal.h"

#define PT_FETCH_HINT 512u

int pt_pair_eq(const uint32_t a[2], const uint32_t b[2])
{
    return (a[0] == b[0] && a[1] == b[1]) || (a[0] == b[1] && a[1] == b[0]);
}

void pt_gstate_xor(struct petrel_fs_gstate *a, const struct petrel_fs_gstate *b)
{
    a->move_pair[0] ^= b->move_pair[0];
    a->move_pair[1] ^= b->move_pair[1];
    a->move_hash ^= b->move_hash;
    a->move_pending ^= b->move_pending;
    a->orphans ^= b->orphans;
}

void pt_gstate_encode(uint8_t *p, const struct petrel_fs_gstate *g)
{
    pt_put_le32(p, g->move_pair[0]);
    pt_put_le32(p + 4, g->move_pair[1]);
    pt_put_le64(p + 8, g->move_hash);
    pt_put_le32(p + 16, g->move_pending);
    pt_put_le32(p + 20, g->orphans);
}

void pt_gstate_decode(struct petrel_fs_gstate *g, const uint8_t *p)
{
    g->move_pair[0] = pt_get_le32(p);
    g->move_pair[1] = pt_get_le32(p + 4);
    g->move_hash = pt_get_le64(p + 8);
    g->move_pending = pt_get_le32(p + 16);
    g->orphans = pt_get_le32(p + 20);
}

int pt_gstate_zero(const struct petrel_fs_gstate *g)
{
    return !g->move_pair[0] && !g->move_pair[1] && !g->move_hash && !g->move_pending &&
           !g->orphans;
}

static int pt_rev_newer(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) > 0;
}

/* Decode the fixed part of a state record's payload into md. */
static void pt_mdir_apply(struct pt_mdir *md, uint8_t type, const uint8_t *p, uint32_t len)
{
    struct petrel_fs_gstate g;
    switch (type) {
    case PT_REC_HEAD:
        if (len >= 4) {
            md->head = 1;
            md->dirid = pt_get_le32(p);
        }
        break;
    case PT_REC_THREAD:
        if (len >= 17) {
            md->next[0] = pt_get_le32(p);
            md->next[1] = pt_get_le32(p + 4);
            md->next_cont = p[8] & 1;
            md->next_split = pt_get_le64(p + 9);
        }
        break;
    case PT_REC_LO:
        if (len >= 8) md->lo = pt_get_le64(p);
        break;
    case PT_REC_GDELTA:
        if (len >= PT_GSTATE_SIZE) {
            pt_gstate_decode(&g, p);
            pt_gstate_xor(&md->gdelta, &g);
        }
        break;
    default:
        break;
    }
}

/* Note the ENTRY or DELETE record at pos (its header) as the newest one of the sought hash. */
static void pt_mdir_found(struct pt_mdir *md, uint8_t type, uint32_t pos, uint32_t len)
{
    md->found = type;
    md->found_rec.off = pos + PT_REC_HDR;
    md->found_rec.len = len;
    md->found_rec.type = type;
}

/* Bytes after a commit whose CRC the commit records (fcrc): the smallest multiple of
 * prog_size that holds a CRC record, so every later commit programs all of them. */
uint32_t pt_fcrc_size(const struct petrel_fs *fs)
{
    uint32_t min = PT_REC_HDR + PT_CRC_PAYLOAD;
    return (min + fs->prog_size - 1) / fs->prog_size * fs->prog_size;
}

/* CRC of the fcrc window at off, read ahead like the records that follow it. */
static int pt_window_crc(struct petrel_fs *fs, uint32_t block, uint32_t off, uint32_t size,
                         uint32_t *crc)
{
    uint8_t tmp[64];
    *crc = 0;
    while (size > 0) {
        uint32_t n = PT_MIN(size, (uint32_t)sizeof(tmp));
        int err = pt_read(fs, block, off, tmp, n, PT_FETCH_HINT);
        if (err) return err;
        *crc = petrel_crc32c(*crc, tmp, n);
        off += n;
        size -= n;
    }
    return 0;
}

/*
 * Scan one block's log: returns 1 if it holds at least one valid commit, 0 if none.
 *
 * The log is the longest chain of valid commits from offset 0 (docs/SPEC-FS.md 2.2): commit
 * 1's crc covers the block from offset 0 through its fcrc field; commit k+1's crc is seeded
 * with commit k's crc and covers commit k+1 through its fcrc field. After a valid commit k,
 * the log continues only if the fcrc window that follows it no longer has the CRC fcrc_k
 * recorded when k was written: an unchanged window means nothing was programmed there in
 * this life of the block, whatever bytes (stale commits of an earlier life, random, erased)
 * it holds, so they are never parsed.
 */
static int pt_mdir_scan(struct petrel_fs *fs, struct pt_mdir *out, uint32_t block,
                        const uint64_t *find_hash, const struct pt_fetch_visit *visit)
{
    struct pt_mdir t, md;
    uint8_t hdr[PT_REC_HDR], tmp[32];
    uint32_t pos, crc, done, fsize = pt_fcrc_size(fs);
    int valid = 0, err;

    memset(&md, 0, sizeof(md));
    md.next[0] = md.next[1] = PT_NULL;
    err = pt_read(fs, block, 0, tmp, 4, PT_FETCH_HINT);
    if (err) return err;
    md.rev = pt_get_le32(tmp);
    crc = petrel_crc32c(0, tmp, 4);
    pos = 4;
    t = md;
    for (;;) {
        uint8_t type;
        uint32_t len;
        if (pos + PT_REC_HDR > fs->block_size) break;
        err = pt_read(fs, block, pos, hdr, PT_REC_HDR, PT_FETCH_HINT);
        if (err) return err;
        type = hdr[0];
        len = (uint32_t)hdr[1] | ((uint32_t)hdr[2] << 8) | ((uint32_t)hdr[3] << 16);
        if (type == 0 || type == 0xff || len > fs->block_size - pos - PT_REC_HDR) break;
        crc = petrel_crc32c(crc, hdr, PT_REC_HDR);
        if (type == PT_REC_CRC) {
            uint32_t stored, fcrc, window;
            if (len < PT_CRC_PAYLOAD) break;
            err = pt_read(fs, block, pos + PT_REC_HDR, tmp, 8, PT_FETCH_HINT);
            if (err) return err;
            crc = petrel_crc32c(crc, tmp, 4);
            fcrc = pt_get_le32(tmp);
            stored = pt_get_le32(tmp + 4);
            if (stored != crc) break;
            /* commit k+1's CRC is seeded with this one: it depends on the whole log */
            t.crc_xor ^= stored;
            t.ncommits++;
            t.off = pos + PT_REC_HDR + len;
            t.log_crc = crc;
            t.fcrc = fcrc;
            t.erased = 0;
            md = t;
            valid = 1;
            pos = t.off;
            if (pos + fsize > fs->block_size) break; /* no room for another commit */
            err = pt_window_crc(fs, block, pos, fsize, &window);
            if (err) return err;
            if (window == fcrc) {
                md.erased = 1; /* nothing programmed after this commit: the log ends */
                break;
            }
            continue;
        }
        done = 0;
        if (type == PT_REC_INDEX) {
            t.index_off = pos + PT_REC_HDR;
            t.index_len = len;
        }
        if (type == PT_REC_HEAD || type == PT_REC_THREAD || type == PT_REC_LO ||
            type == PT_REC_GDELTA || ((type == PT_REC_ENTRY || type == PT_REC_DELETE) &&
                                      (find_hash || visit) && len >= 8)) {
            uint32_t n = PT_MIN(len, (uint32_t)sizeof(tmp));
            err = pt_read(fs, block, pos + PT_REC_HDR, tmp, n, PT_FETCH_HINT);
            if (err) return err;
            /* the CRC takes these bytes as read: reading them again after the cache moved
             * on (a payload crossing the cache's end) would fetch them twice */
            crc = petrel_crc32c(crc, tmp, n);
            done = n;
            if (type == PT_REC_ENTRY || type == PT_REC_DELETE) {
                uint64_t h = pt_get_le64(tmp);
                if (find_hash && h == *find_hash) pt_mdir_found(&t, type, pos, len);
                /* seen as parsed: the commit may still fail its CRC (visit->fn is told the
                 * offset; the caller keeps what lies inside the log fetch returns) */
                if (visit) visit->fn(visit->ctx, block, type, pos + PT_REC_HDR, len, h);
            } else {
                pt_mdir_apply(&t, type, tmp, n);
            }
        } else if (visit && (type == PT_REC_ENTRY || type == PT_REC_DELETE)) {
            visit->fn(visit->ctx, block, type, pos + PT_REC_HDR, len, 0); /* too short */
        }
        err = pt_read_crc(fs, block, pos + PT_REC_HDR + done, len - done, &crc);
        if (err) return err;
        pos += PT_REC_HDR + len;
    }
    if (!valid) return 0;
    md.pair[0] = block;
    *out = md;
    return 1;
}

/*
 * Fetch a pair validated earlier (its remembered link): neither block was programmed or
 * erased since, so its log is what the full fetch found; only the records' headers, the
 * state records and the keys of entries are read again, never the whole log.
 */
static int pt_mdir_recall(struct petrel_fs *fs, struct pt_mdir *md,
                          const struct petrel_fs_link *l, const uint64_t *find_hash)
{
    struct pt_mdir t;
    uint8_t hdr[PT_REC_HDR], tmp[32];
    uint32_t pos = 4;
    int err;
    memset(&t, 0, sizeof(t));
    t.pair[0] = l->pair[0];
    t.pair[1] = l->pair[1];
    t.rev = l->rev;
    t.off = l->off;
    t.erased = l->erased;
    t.log_crc = l->log_crc;
    t.fcrc = l->fcrc;
    t.crc_xor = l->crc_xor;
    t.ncommits = 1;
    t.next[0] = t.next[1] = PT_NULL;
    if (find_hash) {
        t.attrs_none = 1;
        t.attrs_hash = *find_hash;
    }
    while (pos + PT_REC_HDR <= t.off) {
        uint8_t type;
        uint32_t len;
        /* the header alone: about half the records are CRC records, which need no key, and
         * a read ahead for the key would cross into the next read unit for most of them */
        err = pt_read(fs, t.pair[0], pos, hdr, PT_REC_HDR, PT_REC_HDR);
        if (err) return err;
        type = hdr[0];
        len = (uint32_t)hdr[1] | ((uint32_t)hdr[2] << 8) | ((uint32_t)hdr[3] << 16);
        if (len > t.off - pos - PT_REC_HDR) return -PT_ECORRUPT;
        if (type == PT_REC_INDEX) {
            t.index_off = pos + PT_REC_HDR;
            t.index_len = len;
        }
        if (type == PT_REC_HEAD || type == PT_REC_THREAD || type == PT_REC_LO ||
            type == PT_REC_GDELTA ||
            ((type == PT_REC_ENTRY || type == PT_REC_DELETE || type == PT_REC_ATTR) &&
             find_hash && len >= 8)) {
            uint32_t n = PT_MIN(len, (uint32_t)sizeof(tmp));
            if (type == PT_REC_ENTRY || type == PT_REC_DELETE || type == PT_REC_ATTR) n = 8;
            err = pt_read(fs, t.pair[0], pos + PT_REC_HDR, tmp, n, n);
            if (err) return err;
            if (type == PT_REC_ATTR) {
                if (pt_get_le64(tmp) == *find_hash) t.attrs_none = 0;
            } else if (type == PT_REC_ENTRY || type == PT_REC_DELETE) {
                if (pt_get_le64(tmp) == *find_hash) pt_mdir_found(&t, type, pos, len);
            } else {
                pt_mdir_apply(&t, type, tmp, n);
            }
        }
        pos += PT_REC_HDR + len;
    }
    *md = t;
    return 0;
}

static int pt_mdir_fetch_visit_hash(struct petrel_fs *fs, struct pt_mdir *md,
                                    const uint32_t pair[2], const uint64_t *find_hash,
                                    const struct pt_fetch_visit *visit);

int pt_mdir_fetch(struct petrel_fs *fs, struct pt_mdir *md, const uint32_t pair[2],
                  const uint64_t *find_hash)
{
    return pt_mdir_fetch_visit_hash(fs, md, pair, find_hash, NULL);
}

int pt_mdir_fetch_visit(struct petrel_fs *fs, struct pt_mdir *md, const uint32_t pair[2],
                        const struct pt_fetch_visit *visit)
{
    return pt_mdir_fetch_visit_hash(fs, md, pair, NULL, visit);
}

static int pt_mdir_fetch_visit_hash(struct petrel_fs *fs, struct pt_mdir *md,
                                    const uint32_t pair[2], const uint64_t *find_hash,
                                    const struct pt_fetch_visit *visit)
{
    const struct petrel_fs_link *l = pt_links_find(fs, pair);
    uint8_t rev[2][4];
    int first, i, err;
    uint32_t p0 = pair[0], p1 = pair[1];
    int bad[2];
    if (p0 >= fs->block_count || p1 >= fs->block_count || p0 == p1) return -PT_ECORRUPT;
    if (l && l->off) {
        err = pt_mdir_recall(fs, md, l, find_hash);
        if (err == 0) pt_links_remember(fs, md);
        if (err != -PT_ECORRUPT && err != -PT_EIO) return err;
    }
    /* a block that cannot even be read is just not the valid one */
    err = pt_read(fs, p0, 0, rev[0], 4, 4);
    if (err && err != -PT_EIO && err != -PT_ECORRUPT) return err;
    bad[0] = err != 0;
    err = pt_read(fs, p1, 0, rev[1], 4, 4);
    if (err && err != -PT_EIO && err != -PT_ECORRUPT) return err;
    bad[1] = err != 0;
    if (bad[0] && bad[1]) return -PT_EIO;
    if (bad[0] || bad[1])
        first = bad[0] ? 1 : 0;
    else
        first = pt_rev_newer(pt_get_le32(rev[1]), pt_get_le32(rev[0])) ? 1 : 0;
    for (i = 0; i < 2; i++) {
        int which = i == 0 ? first : 1 - first;
        uint32_t b = which ? p1 : p0;
        int r;
        if (bad[which]) continue;
        r = pt_mdir_scan(fs, md, b, find_hash, visit);
        if (r < 0 && r != -PT_ECORRUPT && r != -PT_EIO) return r;
        if (r == 1) {
            md->pair[0] = b;
            md->pair[1] = which ? p0 : p1;
            pt_links_remember(fs, md);
            return 0;
        }
        petrel_log(PT_LOG_DEBUG, "fs", "pair {%u,%u}: block %u has no valid commit",
                   (unsigned)p0, (unsigned)p1, (unsigned)b);
    }
    return -PT_ECORRUPT;
}

int pt_mdir_refetch(struct petrel_fs *fs, struct pt_mdir *md, const uint64_t *find_hash)
{
    uint32_t pair[2];
    pair[0] = md->pair[0];
    pair[1] = md->pair[1];
    return pt_mdir_fetch(fs, md, pair, find_hash);
}

/* How far to read ahead when scanning a log's records from pos: when the cache holds a
 * whole block, the rest of the log (passes over it then hit the cache); otherwise one
 * record's header and key, so a scan reads the headers and not the payloads. */
static uint32_t pt_scan_hint(const struct petrel_fs *fs, const struct pt_mdir *md, uint32_t pos)
{
    if (fs->cache_size >= fs->block_size) return md->off > pos ? md->off - pos : 0;
    return PT_REC_HDR + 9;
}

int pt_rec_next(struct petrel_fs *fs, const struct pt_mdir *md, uint32_t *pos,
                struct pt_rec_ref *rec)
{
    uint8_t hdr[PT_REC_HDR];
    if (*pos < 4) *pos = 4;
    while (*pos + PT_REC_HDR <= md->off) {
        int err = pt_read(fs, md->pair[0], *pos, hdr, PT_REC_HDR, pt_scan_hint(fs, md, *pos));
        uint32_t len;
        if (err) return err;
        len = (uint32_t)hdr[1] | ((uint32_t)hdr[2] << 8) | ((uint32_t)hdr[3] << 16);
        rec->type = hdr[0];
        rec->off = *pos + PT_REC_HDR;
        rec->len = len;
        *pos += PT_REC_HDR + len;
        if (rec->type == PT_REC_CRC) continue;
        return 1;
    }
    return 0;
}

int pt_rec_hash(struct petrel_fs *fs, const struct pt_mdir *md, const struct pt_rec_ref *rec,
                uint64_t *hash, uint8_t *atype)
{
    uint8_t tmp[9];
    uint32_t n = rec->type == PT_REC_ATTR || rec->type == PT_REC_ATTRDEL ? 9 : 8;
    int err;
    *hash = 0;
    *atype = 0;
    if (rec->len < n) return -PT_ECORRUPT;
    err = pt_read(fs, md->pair[0], rec->off, tmp, n, pt_scan_hint(fs, md, rec->off));
    if (err) return err;
    *hash = pt_get_le64(tmp);
    if (n == 9) *atype = tmp[8];
    return 0;
}

static int pt_is_keyed(uint8_t type)
{
    return type == PT_REC_ENTRY || type == PT_REC_DELETE || type == PT_REC_ATTR ||
           type == PT_REC_ATTRDEL;
}

/* Whether a later record (type2, hash2, atype2) supersedes (type, hash, atype). */
static int pt_supersedes(uint8_t type, uint64_t hash, uint8_t atype, uint8_t type2,
                         uint64_t hash2, uint8_t atype2)
{
    switch (type) {
    case PT_REC_ENTRY:
        return (type2 == PT_REC_ENTRY || type2 == PT_REC_DELETE) && hash2 == hash;
    case PT_REC_ATTR:
        return hash2 == hash && (type2 == PT_REC_DELETE ||
                                 ((type2 == PT_REC_ATTR || type2 == PT_REC_ATTRDEL) &&
                                  atype2 == atype));
    default:
        return pt_rec_singleton(type) >= 0 && type2 == type;
    }
}

static int pt_supersedes_recs(uint8_t type, uint64_t hash, uint8_t atype,
                              const struct pt_rec *recs, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (pt_supersedes(type, hash, atype, recs[i].type, recs[i].hash, recs[i].atype))
            return 1;
    return 0;
}

/* Is the old record rec still in force: no later old record (from `after`) and none of
 * recs supersedes it. */
int pt_rec_live(struct petrel_fs *fs, const struct pt_mdir *md, const struct pt_rec_ref *rec,
                uint32_t after, const struct pt_rec *recs, int n, int *live)
{
    uint64_t hash = 0, h2;
    uint8_t atype = 0, a2;
    struct pt_rec_ref r2 = {0, 0, 0};
    uint32_t pos = after;
    int err;
    *live = 0;
    if (rec->type == PT_REC_DELETE || rec->type == PT_REC_ATTRDEL ||
        rec->type == PT_REC_GDELTA || rec->type == PT_REC_CRC)
        return 0;
    if (pt_is_keyed(rec->type)) {
        err = pt_rec_hash(fs, md, rec, &hash, &atype);
        if (err) return err;
    }
    if (pt_supersedes_recs(rec->type, hash, atype, recs, n)) return 0;
    while ((err = pt_rec_next(fs, md, &pos, &r2)) == 1) {
        h2 = 0;
        a2 = 0;
        if (pt_is_keyed(r2.type)) {
            if (!pt_is_keyed(rec->type)) continue;
            err = pt_rec_hash(fs, md, &r2, &h2, &a2);
            if (err) return err;
        }
        if (pt_supersedes(rec->type, hash, atype, r2.type, h2, a2)) return 0;
    }
    if (err < 0) return err;
    *live = 1;
    return 0;
}

/* ---- liveness map ---- */

#define PT_LIVE_ENT_BUCKETS 128u
#define PT_LIVE_KEY_BUCKETS 64u

static uint32_t pt_live_bucket(uint64_t h, uint32_t n)
{
    h ^= h >> 31;
    h *= 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 40) % n;
}

static void pt_count_add(uint8_t *c)
{
    if (*c < 255) (*c)++;
}

static void pt_count_sub(uint8_t *c)
{
    if (*c > 0 && *c < 255) (*c)--; /* a saturated counter stays: "maybe later" forever */
}

/* Records whose buckets count a later record, decided together by one scan of the rest of
 * the log (so a log full of superseded records costs a few scans, not one per record). */
#define PT_LIVE_BATCH 12
struct pt_live_batch {
    uint64_t hash[PT_LIVE_BATCH];
    uint32_t n, after[PT_LIVE_BATCH];
    uint16_t idx[PT_LIVE_BATCH]; /* below PT_LIVE_MAP_RECS */
    uint8_t type[PT_LIVE_BATCH], atype[PT_LIVE_BATCH];
};
typedef char pt_live_batch_idx_fits[PT_LIVE_MAP_RECS <= 65536u ? 1 : -1];

static int pt_live_batch_resolve(struct petrel_fs *fs, const struct pt_mdir *md,
                                 struct pt_live_map *map, struct pt_live_batch *b)
{
    struct pt_rec_ref r2 = {0, 0, 0};
    uint32_t pos, i;
    int err = 0;
    if (b->n == 0) return 0;
    pos = b->after[0]; /* the batch is in log order: the first item's successor is first */
    while (b->n > 0 && (err = pt_rec_next(fs, md, &pos, &r2)) == 1) {
        uint64_t h2 = 0;
        uint8_t a2 = 0;
        if (!pt_is_keyed(r2.type)) continue;
        err = pt_rec_hash(fs, md, &r2, &h2, &a2);
        if (err) return err;
        for (i = 0; i < b->n;) {
            if (r2.off - PT_REC_HDR >= b->after[i] &&
                pt_supersedes(b->type[i], b->hash[i], b->atype[i], r2.type, h2, a2)) {
                map->dead[b->idx[i] / 8] |= (uint8_t)(1u << (b->idx[i] % 8));
                b->n--;
                b->idx[i] = b->idx[b->n];
                b->after[i] = b->after[b->n];
                b->hash[i] = b->hash[b->n];
                b->type[i] = b->type[b->n];
                b->atype[i] = b->atype[b->n];
                continue;
            }
            i++;
        }
    }
    if (b->n > 0 && err < 0) return err;
    b->n = 0; /* the rest found no later record with their key: live */
    return 0;
}

static int pt_live_map_scan(struct petrel_fs *fs, const struct pt_mdir *md,
                            struct pt_live_map *map, int stop_at_entry);

int pt_live_map_build(struct petrel_fs *fs, const struct pt_mdir *md, struct pt_live_map *map)
{
    int err = pt_live_map_scan(fs, md, map, 0);
    return err > 0 ? 0 : err;
}

/* A keyed record's hash and attribute type, and its three buckets: b[0] among entries (ENTRY
 * and DELETE by name hash), b[1] among deletions, b[2] among attributes (hash and type). */
static int pt_live_rec_buckets(struct petrel_fs *fs, const struct pt_mdir *md,
                               const struct pt_rec_ref *rec, uint64_t *h, uint8_t *a, uint32_t b[3])
{
    int err = pt_rec_hash(fs, md, rec, h, a);
    if (err) return err;
    b[0] = pt_live_bucket(*h, PT_LIVE_ENT_BUCKETS);
    b[1] = pt_live_bucket(*h, PT_LIVE_KEY_BUCKETS);
    b[2] = pt_live_bucket(*h ^ ((uint64_t)*a << 56 | *a), PT_LIVE_KEY_BUCKETS);
    return 0;
}

/* Count a keyed record into (pt_count_add) or out of (pt_count_sub) the buckets it can
 * supersede in. */
static void pt_live_count(uint8_t type, const uint32_t b[3], uint8_t *ent, uint8_t *del,
                          uint8_t *att, void (*count)(uint8_t *c))
{
    if (type == PT_REC_ENTRY || type == PT_REC_DELETE) count(&ent[b[0]]);
    if (type == PT_REC_DELETE) count(&del[b[1]]);
    if (type == PT_REC_ATTR || type == PT_REC_ATTRDEL) count(&att[b[2]]);
}

/* 1 when md holds a live ENTRY (found without deciding the rest), 0 when none, or an error. */
int pt_mdir_has_entries(struct petrel_fs *fs, const struct pt_mdir *md)
{
    struct pt_rec_ref rec = {0, 0, 0};
    struct pt_live_map map;
    uint32_t pos = 0, idx;
    int err = pt_live_map_scan(fs, md, &map, 1);
    if (err) return err;
    for (idx = 0; (err = pt_rec_next(fs, md, &pos, &rec)) == 1; idx++) {
        int live;
        if (rec.type != PT_REC_ENTRY) continue;
        err = pt_live_map_live(fs, md, &map, idx, &rec, pos, &live);
        if (err) return err;
        if (live) return 1;
    }
    return err < 0 ? err : 0;
}

/* The second pass of pt_live_map_scan over counts[] (ent, then del, then att buckets) and
 * the last index of each singleton type. A helper, so the batch and the counts are not on
 * one frame (docs/FIRMWARE.md, frame-max). */
static PT_NOINLINE int pt_live_map_decide(struct petrel_fs *fs, const struct pt_mdir *md,
                                          struct pt_live_map *map, uint8_t *ent,
                                          const uint32_t *last, int stop_at_entry)
{
    uint8_t *del = ent + PT_LIVE_ENT_BUCKETS, *att = del + PT_LIVE_KEY_BUCKETS;
    struct pt_rec_ref rec = {0, 0, 0};
    struct pt_live_batch batch;
    uint32_t pos = 0, idx;
    int err;
    batch.n = 0;
    for (idx = 0; idx < map->nrecs; idx++) {
        uint64_t h = 0;
        uint8_t a = 0;
        int maybe = 0, live = 1;
        err = pt_rec_next(fs, md, &pos, &rec);
        if (err != 1) return err < 0 ? err : -PT_ECORRUPT;
        if (pt_is_keyed(rec.type)) {
            uint32_t b[3];
            err = pt_live_rec_buckets(fs, md, &rec, &h, &a, b);
            if (err) return err;
            pt_live_count(rec.type, b, ent, del, att, pt_count_sub);
            if (rec.type == PT_REC_ENTRY) maybe = ent[b[0]] != 0;
            if (rec.type == PT_REC_ENTRY && !maybe && stop_at_entry) return 1;
            if (rec.type == PT_REC_ATTR) maybe = del[b[1]] != 0 || att[b[2]] != 0;
            if (rec.type == PT_REC_DELETE || rec.type == PT_REC_ATTRDEL) live = 0;
        } else if (rec.type == PT_REC_GDELTA) {
            live = 0;
        } else if (pt_rec_singleton(rec.type) >= 0) {
            live = last[pt_rec_singleton(rec.type)] == idx;
        }
        if (maybe) {
            uint32_t k = batch.n++;
            batch.idx[k] = (uint16_t)idx;
            batch.after[k] = pos;
            batch.hash[k] = h;
            batch.type[k] = rec.type;
            batch.atype[k] = a;
            if (batch.n == PT_LIVE_BATCH) {
                err = pt_live_batch_resolve(fs, md, map, &batch);
                if (err) return err;
            }
        } else if (!live) {
            map->dead[idx / 8] |= (uint8_t)(1u << (idx % 8));
        }
    }
    return pt_live_batch_resolve(fs, md, map, &batch);
}

/*
 * Two passes. The first counts, in small hash buckets, the records that can supersede:
 * ENTRY and DELETE by name hash (ent), DELETE alone (del), ATTR and ATTRDEL by name hash and
 * attribute type (att); and notes the last of each singleton type. The second pass takes
 * each record out of its buckets before deciding it, so the counts then cover later records
 * only: a record none of whose buckets counts a later record is live for certain; the others
 * are decided in batches by scanning the rest of the log for a record with their key.
 */
static int pt_live_map_scan(struct petrel_fs *fs, const struct pt_mdir *md,
                            struct pt_live_map *map, int stop_at_entry)
{
    uint8_t ent[PT_LIVE_ENT_BUCKETS + 2 * PT_LIVE_KEY_BUCKETS];
    uint8_t *del = ent + PT_LIVE_ENT_BUCKETS, *att = del + PT_LIVE_KEY_BUCKETS;
    uint32_t last[PT_SINGLETONS] = {0, 0, 0, 0, 0, 0, 0}, pos = 0, idx = 0;
    struct pt_rec_ref rec = {0, 0, 0};
    int err = 0;
    memset(ent, 0, sizeof(ent));
    memset(map, 0, sizeof(*map));
    while (idx < PT_LIVE_MAP_RECS && (err = pt_rec_next(fs, md, &pos, &rec)) == 1) {
        uint64_t h;
        uint8_t a;
        if (pt_rec_singleton(rec.type) >= 0) last[pt_rec_singleton(rec.type)] = idx;
        if (pt_is_keyed(rec.type)) {
            uint32_t b[3];
            err = pt_live_rec_buckets(fs, md, &rec, &h, &a, b);
            if (err) return err;
            pt_live_count(rec.type, b, ent, del, att, pt_count_add);
        }
        idx++;
    }
    if (idx < PT_LIVE_MAP_RECS && err < 0) return err;
    map->nrecs = idx;
    /* Records past the map may supersede mapped ones: every bucket becomes "maybe". A
     * singleton record (superblock, head, thread, lo, mount state, fingers) is superseded only by a later one of
     * its type: the headers past the map say where the last of each type is, whether in the
     * map or not (a singleton in the map is live only when it is the last of its log). */
    if (idx == PT_LIVE_MAP_RECS) {
        uint32_t past = idx;
        while ((err = pt_rec_next(fs, md, &pos, &rec)) == 1) {
            if (past == PT_LIVE_MAP_RECS) memset(ent, 255, sizeof(ent));
            if (pt_rec_singleton(rec.type) >= 0) last[pt_rec_singleton(rec.type)] = past;
            past++;
        }
        if (err < 0) return err;
    }
    return pt_live_map_decide(fs, md, map, ent, last, stop_at_entry);
}

/* Liveness of record idx (at rec, next record at after) against later records of its log. */
int pt_live_map_live(struct petrel_fs *fs, const struct pt_mdir *md,
                     const struct pt_live_map *map, uint32_t idx,
                     const struct pt_rec_ref *rec, uint32_t after, int *live)
{
    if (map && idx < map->nrecs) {
        *live = !(map->dead[idx / 8] & (1u << (idx % 8)));
        return 0;
    }
    return pt_rec_live(fs, md, rec, after, NULL, 0, live);
}

/* ---- emitting records ---- */

static int pt_emit_hdr(struct petrel_fs *fs, struct pt_writer *w, uint8_t type, uint32_t len)
{
    uint8_t hdr[PT_REC_HDR];
    hdr[0] = type;
    hdr[1] = (uint8_t)len;
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)(len >> 16);
    return pt_writer_put(fs, w, hdr, PT_REC_HDR);
}

/* Emit the live attributes of src_hash in src as ATTR records keyed by hash. */
static int pt_emit_copyattrs(struct petrel_fs *fs, struct pt_writer *w, const struct pt_rec *r)
{
    const struct pt_mdir *src = r->src;
    struct pt_rec_ref rec = {0, 0, 0};
    uint32_t pos = 0;
    int err;
    uint8_t key[9];
    if (src->attrs_none && src->attrs_hash == r->src_hash) return 0; /* nothing to copy */
    while ((err = pt_rec_next(fs, src, &pos, &rec)) == 1) {
        uint64_t h;
        uint8_t a;
        int live;
        if (rec.type != PT_REC_ATTR) continue;
        err = pt_rec_hash(fs, src, &rec, &h, &a);
        if (err) return err;
        if (h != r->src_hash) continue;
        err = pt_rec_live(fs, src, &rec, pos, NULL, 0, &live);
        if (err) return err;
        if (!live) continue;
        pt_put_le64(key, r->hash);
        key[8] = a;
        err = pt_emit_hdr(fs, w, PT_REC_ATTR, rec.len);
        if (!err) err = pt_writer_put(fs, w, key, 9);
        if (!err) err = pt_writer_copy(fs, w, src->pair[0], rec.off + 9, rec.len - 9);
        if (err) return err;
    }
    return err;
}

static int pt_emit_rec(struct petrel_fs *fs, struct pt_writer *w, const struct pt_rec *r)
{
    int err, i;
    if (r->type == PT_REC_COPYATTRS) return pt_emit_copyattrs(fs, w, r);
    if (r->type == PT_REC_FINGERS && !r->seg[0] && r->seglen[0]) {
        err = pt_emit_hdr(fs, w, r->type, r->seglen[0]);
        return err ? err : pt_fingers_emit(fs, w, r->seglen[0]);
    }
    if (r->type == PT_REC_INDEX && r->src) {
        /* an index rewritten from the old record on the device (struct pt_rec) */
        uint32_t alen = (uint32_t)r->hash, blen = (uint32_t)r->src_hash;
        err = pt_emit_hdr(fs, w, r->type, alen + r->seglen[0] + blen);
        if (!err && alen)
            err = pt_writer_copy(fs, w, r->src->pair[0], (uint32_t)(r->hash >> 32), alen);
        if (!err && r->seglen[0]) err = pt_writer_put(fs, w, r->seg[0], r->seglen[0]);
        if (!err && blen)
            err = pt_writer_copy(fs, w, r->src->pair[0], (uint32_t)(r->src_hash >> 32), blen);
        return err;
    }
    err = pt_emit_hdr(fs, w, r->type,
                      r->seglen[0] + r->seglen[1] + r->seglen[2] + r->copy_len);
    for (i = 0; i <= PT_REC_SEGS && !err; i++) {
        if (r->copy_len && r->copy_at == i)
            err = pt_writer_copy(fs, w, r->copy_block, r->copy_off, r->copy_len);
        if (!err && i < PT_REC_SEGS && r->seglen[i])
            err = pt_writer_put(fs, w, r->seg[i], r->seglen[i]);
    }
    return err;
}

/* Close a commit: CRC record with the CRC of the fcrc window that follows it (as it is now,
 * before anything is programmed there), then the commit CRC (w->crc: seeded with the previous
 * commit's CRC, or 0 at offset 0, over this commit's bytes through fcrc), then padding so the
 * next commit starts aligned. The CRC value and the padding are covered by no CRC. */
static int pt_emit_crc(struct petrel_fs *fs, struct pt_writer *w, uint32_t *crc_out,
                       uint32_t *fcrc_out)
{
    uint32_t end = w->off + PT_REC_HDR + PT_CRC_PAYLOAD;
    uint32_t pad = (fs->prog_size - end % fs->prog_size) % fs->prog_size;
    uint32_t fcrc = 0, crc, fsize = pt_fcrc_size(fs);
    uint8_t tmp[4], zeros[16];
    int err;
    if (end + pad > fs->block_size) return -PT_ENOSPC;
    if (!w->dry && end + pad + fsize <= fs->block_size) {
        err = pt_read_crc(fs, w->block, end + pad, fsize, &fcrc);
        if (err) return err;
    }
    err = pt_emit_hdr(fs, w, PT_REC_CRC, PT_CRC_PAYLOAD + pad);
    if (err) return err;
    pt_put_le32(tmp, fcrc);
    err = pt_writer_put(fs, w, tmp, 4);
    if (err) return err;
    crc = w->crc;
    pt_put_le32(tmp, crc);
    err = pt_writer_put(fs, w, tmp, 4);
    memset(zeros, 0, sizeof(zeros));
    while (!err && pad > 0) {
        uint32_t n = PT_MIN(pad, (uint32_t)sizeof(zeros));
        err = pt_writer_put(fs, w, zeros, n);
        pad -= n;
    }
    if (crc_out) *crc_out = crc;
    if (fcrc_out) *fcrc_out = fcrc;
    return err;
}

static int pt_in_range(uint64_t h, uint64_t lo, uint64_t hi, int hi_open)
{
    return h >= lo && (hi_open || h < hi);
}

/* The split search's measure of a compacted log: bytes of the records keyed by name hash,
 * in PT_SPLIT_BUCKETS equal slices of the hash range [a, b], with the lowest and highest
 * hash seen in each slice. */
#define PT_SPLIT_BUCKETS 8
struct pt_split_hist {
    uint64_t a, b, width;
    uint32_t below;   /* bytes of keyed records with hash < a */
    uint32_t keyed;   /* bytes of all keyed records */
    uint32_t content; /* bytes before the CRC record */
    uint32_t w[PT_SPLIT_BUCKETS];
    uint64_t min[PT_SPLIT_BUCKETS], max[PT_SPLIT_BUCKETS];
};

static void pt_hist_add(struct pt_split_hist *hs, uint64_t h, uint32_t size)
{
    uint32_t j;
    hs->keyed += size;
    if (h < hs->a) {
        hs->below += size;
        return;
    }
    if (h > hs->b) return;
    j = (uint32_t)((h - hs->a) / hs->width);
    if (hs->w[j] == 0 || h < hs->min[j]) hs->min[j] = h;
    if (hs->w[j] == 0 || h > hs->max[j]) hs->max[j] = h;
    hs->w[j] += size;
}

/* What a written compaction left: its end and CRCs, as a fetch of it would find them. */
struct pt_compact_result {
    uint32_t off, log_crc, crc, fcrc;
};

struct pt_compact {
    const struct pt_mdir *src; /* old log, or NULL for a new pair */
    const struct pt_live_map *live; /* src's liveness map, or NULL */
    struct pt_split_hist *hist;     /* measured during a dry pass, or NULL */
    const struct pt_rec *recs;
    int n;
    const struct pt_rec *extra;
    int nextra;
    const struct petrel_fs_gstate *delta; /* a GDELTA the commit adds, or NULL */
    uint64_t lo, hi;
    int hi_open;
    int is_low; /* keeps superblock, head and global state */
    uint32_t rev;
    struct pt_compact_result *res; /* where the written log ends, or NULL */
};

static int pt_rec_keeps(const struct pt_compact *c, uint8_t type, uint64_t hash)
{
    if (pt_is_keyed(type) || type == PT_REC_COPYATTRS)
        return pt_in_range(hash, c->lo, c->hi, c->hi_open);
    if (type == PT_REC_SUPERBLOCK || type == PT_REC_HEAD || type == PT_REC_MSTATE ||
        type == PT_REC_FINGERS || type == PT_REC_INDEX || type == PT_REC_WEAR)
        return c->is_low; /* the index stays with the head (the lower part of its split) */
    return type == PT_REC_THREAD || type == PT_REC_LO;
}

/* Write (or with w->dry, measure) a compacted log: rev, live old records, new records,
 * extra records, the merged global-state delta, CRC. */
static int pt_emit_compact(struct petrel_fs *fs, struct pt_writer *w, const struct pt_compact *c)
{
    uint8_t tmp[PT_GSTATE_SIZE];
    struct pt_rec_ref rec = {0, 0, 0};
    uint32_t pos = 0;
    int err = 0, i;
    struct petrel_fs_gstate g;

    pt_put_le32(tmp, c->rev);
    err = pt_writer_put(fs, w, tmp, 4);
    if (err) return err;
    memset(&g, 0, sizeof(g));
    if (c->src) {
        uint32_t idx = 0;
        g = c->src->gdelta;
        for (; (err = pt_rec_next(fs, c->src, &pos, &rec)) == 1; idx++) {
            uint64_t h = 0;
            uint8_t a = 0;
            uint32_t at;
            int live;
            if (pt_is_keyed(rec.type)) {
                err = pt_rec_hash(fs, c->src, &rec, &h, &a);
                if (err) return err;
            }
            if (!pt_rec_keeps(c, rec.type, h)) continue;
            if (pt_supersedes_recs(rec.type, h, a, c->extra, c->nextra)) continue;
            if (pt_supersedes_recs(rec.type, h, a, c->recs, c->n)) continue;
            err = pt_live_map_live(fs, c->src, c->live, idx, &rec, pos, &live);
            if (err) return err;
            if (!live) continue;
            at = w->off;
            err = pt_writer_copy(fs, w, c->src->pair[0], rec.off - PT_REC_HDR,
                                 rec.len + PT_REC_HDR);
            if (err) return err;
            if (c->hist && pt_is_keyed(rec.type)) pt_hist_add(c->hist, h, w->off - at);
        }
        if (err < 0) return err;
    }
    for (i = 0; i < c->n; i++) {
        const struct pt_rec *r = &c->recs[i];
        uint32_t at;
        if (r->type == PT_REC_GDELTA) {
            struct petrel_fs_gstate d;
            pt_gstate_decode(&d, (const uint8_t *)r->seg[0]);
            pt_gstate_xor(&g, &d);
            continue;
        }
        if (r->type == PT_REC_DELETE || r->type == PT_REC_ATTRDEL) continue;
        if (!pt_rec_keeps(c, r->type, r->hash)) continue;
        if (r->type != PT_REC_COPYATTRS &&
            (pt_supersedes_recs(r->type, r->hash, r->atype, c->recs + i + 1, c->n - i - 1) ||
             pt_supersedes_recs(r->type, r->hash, r->atype, c->extra, c->nextra)))
            continue;
        at = w->off;
        err = pt_emit_rec(fs, w, r);
        if (err) return err;
        if (c->hist && (pt_is_keyed(r->type) || r->type == PT_REC_COPYATTRS))
            pt_hist_add(c->hist, r->hash, w->off - at);
    }
    for (i = 0; i < c->nextra; i++) {
        err = pt_emit_rec(fs, w, &c->extra[i]);
        if (err) return err;
    }
    if (c->delta) pt_gstate_xor(&g, c->delta);
    if (c->is_low && !pt_gstate_zero(&g)) {
        pt_gstate_encode(tmp, &g);
        err = pt_emit_hdr(fs, w, PT_REC_GDELTA, PT_GSTATE_SIZE);
        if (!err) err = pt_writer_put(fs, w, tmp, PT_GSTATE_SIZE);
        if (err) return err;
    }
    if (c->hist) c->hist->content = w->off;
    return pt_emit_crc(fs, w, c->res && !w->dry ? &c->res->crc : NULL,
                       c->res && !w->dry ? &c->res->fcrc : NULL);
}

/* Size of a compacted log, or -PT_ENOSPC when it does not fit a block. */
static int64_t pt_compact_size(struct petrel_fs *fs, const struct pt_compact *c)
{
    struct pt_writer w;
    int err;
    pt_writer_init(fs, &w, PT_NULL, 0, 1);
    err = pt_emit_compact(fs, &w, c);
    if (err) return err;
    return w.off;
}

/* Write a compacted log into target (erased here) and verify it. */
static int pt_write_compact(struct petrel_fs *fs, uint32_t target, const struct pt_compact *c)
{
    struct pt_writer w;
    int err = pt_erase(fs, target);
    if (err) return err;
    pt_writer_init(fs, &w, target, 0, 0);
    err = pt_emit_compact(fs, &w, c);
    if (!err) err = pt_writer_flush(fs, &w);
    if (!err) err = pt_verify(fs, target, 0, w.off, w.vcrc);
    if (!err && c->res) {
        c->res->off = w.off;
        c->res->log_crc = c->res->crc; /* the next commit's seed */
    }
    return err;
}

static int pt_bad_block_error(int err)
{
    return err == -PT_EIO || err == -PT_ECORRUPT;
}

/* Compact into target; on a bad block move to fresh blocks. Returns the block written. */
static int pt_compact_into(struct petrel_fs *fs, uint32_t target, const struct pt_compact *c,
                           int may_relocate, uint32_t *written)
{
    int tries;
    for (tries = 0; tries < 64; tries++) {
        int err;
        if (target != PT_NULL) {
            err = pt_write_compact(fs, target, c);
            if (err == 0) {
                *written = target;
                return 0;
            }
            if (!pt_bad_block_error(err)) return err;
            petrel_log(PT_LOG_WARN, "fs", "metadata block %u failed to program, moving",
                       (unsigned)target);
        }
        if (!may_relocate) return -PT_ENOSPC; /* the root pair is worn out */
        err = pt_alloc(fs, &target);
        if (err) return err;
    }
    return -PT_ENOSPC;
}

static int pt_is_root(const struct pt_mdir *md)
{
    static const uint32_t root[2] = {0, 1};
    return pt_pair_eq(md->pair, root);
}

/* Track what a successful append changed, without re-reading the log. */
static void pt_mdir_after_append(struct petrel_fs *fs, struct pt_mdir *md,
                                 const struct pt_rec *recs, int n,
                                 const struct petrel_fs_gstate *delta, uint32_t end, uint32_t crc,
                                 uint32_t fcrc)
{
    int i;
    md->off = end;
    md->log_crc = crc;
    md->fcrc = fcrc;
    md->erased = end + pt_fcrc_size(fs) <= fs->block_size;
    md->crc_xor ^= crc;
    md->ncommits++;
    md->found = 0;
    md->attrs_none = 0;
    for (i = 0; i < n; i++)
        if (recs[i].type != PT_REC_COPYATTRS && recs[i].seglen[0] && !recs[i].seglen[1] &&
            !recs[i].seglen[2] && !recs[i].copy_len)
            pt_mdir_apply(md, recs[i].type, (const uint8_t *)recs[i].seg[0], recs[i].seglen[0]);
    if (delta) pt_gstate_xor(&md->gdelta, delta);
}

/* CRC of the first fcrc-window bytes of the commit w is writing: from the program cache
 * while nothing of the commit is programmed yet, else read back from the device. */
static int pt_commit_head_crc(struct petrel_fs *fs, const struct pt_writer *w, uint32_t *crc)
{
    uint32_t fsize = pt_fcrc_size(fs);
    *crc = 0;
    if (w->off - w->start < fsize) return -PT_ECORRUPT; /* a commit always covers its window */
    if (fs->pcache.block == w->block && fs->pcache.off == w->start && fs->pcache.size >= fsize) {
        *crc = petrel_crc32c(0, fs->pcache.buf, fsize);
        return 0;
    }
    return pt_read_crc(fs, w->block, w->start, fsize, crc);
}

/*
 * Append one commit after the log. The reader continues past commit k only when the fcrc
 * window after it has changed (pt_mdir_scan), so a new commit whose first window bytes have
 * the very CRC fcrc_k (the same bytes as the stale ones under it, or a CRC collision) would
 * be invisible: it is abandoned (its programmed part, if any, is as invisible as the stale
 * bytes) and -PT_ENOSPC sends the caller to compaction.
 */
/* A GDELTA record of delta (none when NULL). */
static int pt_emit_delta(struct petrel_fs *fs, struct pt_writer *w,
                         const struct petrel_fs_gstate *delta)
{
    uint8_t tmp[PT_GSTATE_SIZE];
    int err;
    if (!delta) return 0;
    pt_gstate_encode(tmp, delta);
    err = pt_emit_hdr(fs, w, PT_REC_GDELTA, PT_GSTATE_SIZE);
    return err ? err : pt_writer_put(fs, w, tmp, PT_GSTATE_SIZE);
}

static int pt_mdir_append(struct petrel_fs *fs, struct pt_mdir *md, const struct pt_rec *recs,
                          int n, const struct petrel_fs_gstate *delta)
{
    struct pt_writer w;
    uint32_t crc, fcrc, head, index_off = md->index_off, index_len = md->index_len;
    int err, i;
    /* measure first: an append that does not fit goes to compaction */
    pt_writer_init(fs, &w, md->pair[0], md->off, 1);
    err = 0;
    for (i = 0; i < n && !err; i++) err = pt_emit_rec(fs, &w, &recs[i]);
    if (!err) err = pt_emit_delta(fs, &w, delta);
    if (!err) err = pt_emit_crc(fs, &w, NULL, NULL);
    if (err) return err;
    pt_writer_init(fs, &w, md->pair[0], md->off, 0);
    w.crc = md->log_crc; /* the commit CRC is seeded with the previous commit's */
    for (i = 0; i < n && !err; i++) {
        uint32_t at = w.off;
        err = pt_emit_rec(fs, &w, &recs[i]);
        if (recs[i].type == PT_REC_INDEX) {
            index_off = at + PT_REC_HDR;
            index_len = w.off - index_off;
        }
    }
    if (!err) err = pt_emit_delta(fs, &w, delta);
    if (!err) err = pt_emit_crc(fs, &w, &crc, &fcrc);
    if (!err) err = pt_commit_head_crc(fs, &w, &head);
    if (!err && head == md->fcrc) {
        fs->pcache.size = 0; /* drop what is not programmed yet */
        fs->pcache.block = PT_NULL;
        petrel_log(PT_LOG_DEBUG, "fs", "block %u: a commit at %u would leave its window unchanged",
                   (unsigned)md->pair[0], (unsigned)md->off);
        err = -PT_ENOSPC;
    }
    if (!err) err = pt_writer_flush(fs, &w);
    if (!err) err = pt_verify(fs, w.block, w.start, w.off - w.start, w.vcrc);
    if (err) {
        md->erased = 0;
        return err;
    }
    pt_mdir_after_append(fs, md, recs, n, delta, w.off, crc, fcrc);
    md->index_off = index_off;
    md->index_len = index_len;
    pt_links_remember(fs, md);
    return 0;
}

/* Size of the records every compacted log of this pair carries (no entries). */
static int64_t pt_base_size(struct petrel_fs *fs, struct pt_compact *c)
{
    uint64_t save_hi = c->hi;
    int save_open = c->hi_open;
    int64_t sz;
    c->hi = c->lo;
    c->hi_open = 0;
    sz = pt_compact_size(fs, c);
    c->hi = save_hi;
    c->hi_open = save_open;
    return sz;
}

/* The most a compacted log may hold so that appends keep room: half of the entry space. */
static int64_t pt_compact_limit(struct petrel_fs *fs, struct pt_compact *c)
{
    int64_t base = pt_base_size(fs, c);
    if (base < 0) return base;
    if (base > (int64_t)fs->block_size) return -PT_ENOSPC;
    return base + ((int64_t)fs->block_size - base) / 2;
}

/* One measuring pass over c's whole range: the bytes of its keyed records in slices of
 * [a, b] (see struct pt_split_hist), whatever the total size. */
static int pt_split_measure(struct petrel_fs *fs, struct pt_compact *c, uint64_t a, uint64_t b,
                            struct pt_split_hist *hs)
{
    struct pt_writer w;
    int err;
    memset(hs, 0, sizeof(*hs));
    hs->a = a;
    hs->b = b;
    hs->width = (b - a) / PT_SPLIT_BUCKETS + 1;
    hs->content = UINT32_MAX;
    pt_writer_init(fs, &w, PT_NULL, 0, PT_WRITER_MEASURE);
    c->hist = hs;
    err = pt_emit_compact(fs, &w, c);
    c->hist = NULL;
    if (hs->content == UINT32_MAX) return err ? err : -PT_ECORRUPT;
    return err == -PT_ENOSPC ? 0 : err; /* only the CRC record may not fit: measured */
}

/* Size of the compacted log whose keyed records take `keyed` bytes besides its base. */
static int64_t pt_split_size(struct petrel_fs *fs, uint32_t base, uint32_t keyed)
{
    uint32_t end = base + keyed + PT_REC_HDR + PT_CRC_PAYLOAD;
    return (int64_t)end + (fs->prog_size - end % fs->prog_size) % fs->prog_size;
}

/* Find the split hash: the largest s in (lo, hi) whose lower part stays within limit. When
 * even the lowest name's records exceed limit, the lower part keeps the lowest name alone
 * (when that fits a block): a split never leaves the lower pair without entries, which would
 * repeat at every compaction of the upper pair and grow the thread without bound. *whole is
 * set when the range holds the records of one name only (no split divides it).
 * The lower part's size only grows with s, at the hashes present: each measuring pass cuts
 * the candidate range into slices, keeps the slice where the size crosses limit and snaps it
 * to the lowest and highest hash in it, so a few passes over the log find s (a probe per bit
 * of the hash, each a trial compaction, used to cost a hundred times more). */
static PT_NOINLINE int pt_find_split(struct petrel_fs *fs, struct pt_compact *c, int64_t limit,
                                     int64_t total, uint64_t *split, int *whole)
{
    uint64_t lo = c->lo, hi = c->hi_open ? UINT64_MAX : c->hi - 1; /* inclusive */
    uint64_t a = lo, b = hi, hmin = 0;
    struct pt_split_hist hs;
    uint32_t base = 0, j, passes;
    int err, have_min = 0;
    int64_t sz;
    *whole = 0;
    *split = lo;
    for (passes = 0; passes < 64; passes++) {
        uint32_t cum;
        int found = -1;
        err = pt_split_measure(fs, c, a, b, &hs);
        if (err) return err;
        if (passes == 0) {
            base = hs.content - hs.keyed;
            for (j = 0; j < PT_SPLIT_BUCKETS && !have_min; j++)
                if (hs.w[j]) {
                    hmin = hs.min[j];
                    have_min = 1;
                }
            if (pt_split_size(fs, base, 0) > limit) break; /* nothing fits: s = lo */
        }
        cum = hs.below;
        for (j = 0; j < PT_SPLIT_BUCKETS; j++) {
            if (!hs.w[j]) continue;
            if (pt_split_size(fs, base, cum + hs.w[j]) > limit) {
                found = (int)j;
                break;
            }
            cum += hs.w[j];
        }
        if (found < 0) {
            *split = b; /* all of [a, b] fits */
            break;
        }
        if (hs.min[found] == hs.max[found]) {
            *split = hs.min[found]; /* [lo, h) fits, [lo, h] does not */
            break;
        }
        a = hs.min[found];
        b = hs.max[found];
    }
    if (passes == 64) return -PT_ECORRUPT;
    if (*split != lo) return 0;
    /* No name fits below limit: the lowest name alone, when it fits a block. */
    *split = lo;
    if (!have_min || hmin == hi) return 0; /* no name at all in range below hi */
    err = pt_split_measure(fs, c, hmin, hmin, &hs);
    if (err) return err;
    sz = pt_split_size(fs, base, hs.w[0]);
    if (total >= 0 && sz == total) {
        *whole = 1; /* that one name is all the range holds */
        return 0;
    }
    if (sz <= (int64_t)fs->block_size) *split = hmin + 1;
    return 0;
}

/*
 * Make sure a just-erased block holds no log: it is about to be the second block of a new
 * pair, where a valid log of a newer revision would be read instead of the pair's own. On
 * media whose erase may leave old contents (unknown erase value) the start of the block is
 * zeroed (revision 0, an invalid first record header). On media with an erase value the start
 * must read back erased: an erase that silently did nothing (a worn block) gives -PT_ECORRUPT
 * and the caller takes another block.
 */
int pt_block_invalidate(struct petrel_fs *fs, uint32_t block)
{
    uint32_t n = PT_MAX(fs->read_size, fs->prog_size), i;
    int err;
    if (fs->bd->erase_value >= 0) {
        fs->pcache.block = PT_NULL;
        err = pt_read_direct(fs, block, 0, fs->pcache.buf, n);
        if (err) return err;
        for (i = 0; i < n; i++)
            if (fs->pcache.buf[i] != (uint8_t)fs->bd->erase_value) {
                petrel_log(PT_LOG_WARN, "fs", "block %u did not erase, skipped", (unsigned)block);
                return -PT_ECORRUPT;
            }
        return 0;
    }
    memset(fs->pcache.buf, 0, fs->prog_size);
    fs->pcache.block = PT_NULL;
    return pt_prog_direct(fs, block, 0, fs->pcache.buf, fs->prog_size);
}

/* The second block of a new pair: erased, its old contents made unreadable. */
static int pt_alloc_spare(struct petrel_fs *fs, uint32_t *block)
{
    int tries;
    for (tries = 0; tries < 64; tries++) {
        int err = pt_alloc_erased(fs, block);
        if (err) return err;
        err = pt_block_invalidate(fs, *block);
        if (err == 0) return 0;
        if (err != -PT_EIO && err != -PT_ECORRUPT) return err;
    }
    return -PT_ENOSPC;
}

/* Write the pair holding [s, hi) of c's records, threaded to next (or keeping c's own
 * thread when next is NULL). */
static int pt_write_upper(struct petrel_fs *fs, const struct pt_compact *c, uint64_t s,
                          uint64_t hi, int hi_open, const uint32_t next[2], uint64_t next_split,
                          uint32_t out[2], int dry)
{
    struct pt_compact hc = *c;
    struct pt_rec x[2];
    uint8_t lo_buf[8], th_buf[17];
    int err;
    hc.lo = s;
    hc.hi = hi;
    hc.hi_open = hi_open;
    hc.is_low = 0;
    hc.rev = 1;
    hc.res = NULL;
    pt_put_le64(lo_buf, s);
    memset(x, 0, sizeof(x));
    x[0].type = PT_REC_LO;
    x[0].seg[0] = lo_buf;
    x[0].seglen[0] = 8;
    hc.extra = x;
    hc.nextra = 1;
    if (next) {
        pt_put_le32(th_buf, next[0]);
        pt_put_le32(th_buf + 4, next[1]);
        th_buf[8] = 1;
        pt_put_le64(th_buf + 9, next_split);
        x[1].type = PT_REC_THREAD;
        x[1].seg[0] = th_buf;
        x[1].seglen[0] = 17;
        hc.nextra = 2;
    }
    if (dry) {
        int64_t sz = pt_compact_size(fs, &hc);
        return sz < 0 ? (int)sz : 0;
    }
    err = pt_alloc_spare(fs, &out[1]);
    if (err) return err;
    return pt_compact_into(fs, PT_NULL, &hc, 1, &out[0]);
}

/* Move the upper part of c's hash range into new pairs: normally one pair holding
 * [split, hi) with split chosen so the lower part keeps about half the space; when that
 * upper part does not fit a block, pairs are peeled from the top, each as full as a block
 * allows. All new pairs are unreferenced until the caller's compaction of the lower part
 * commits, which links them. On return c covers [lo, split) with the thread record
 * (c->extra) linking the first new pair. Returns 1 (nothing written) when the upper part
 * does not fit a block but the whole range fits this pair. */
static int pt_split_upper(struct petrel_fs *fs, struct pt_compact *c, uint64_t split,
                          uint64_t *split_out, struct pt_rec *xl, uint8_t *th_buf)
{
    uint64_t hi = c->hi;
    int hi_open = c->hi_open, err, have_next = 0;
    uint32_t next[2] = {PT_NULL, PT_NULL};
    uint64_t next_split = 0;
    memset(th_buf, 0, 17);
    memset(xl, 0, sizeof(*xl));
    xl->type = PT_REC_THREAD;
    xl->seg[0] = th_buf;
    xl->seglen[0] = 17;
    c->extra = xl; /* caller-owned: still referenced when this returns */
    c->nextra = 1;
    if (pt_write_upper(fs, c, split, hi, hi_open, NULL, 0, NULL, 1) != 0) {
        /* peel full pairs from the top until the rest fits the lower pair */
        for (;;) {
            uint64_t a, b;
            int64_t low;
            c->hi = hi;
            c->hi_open = hi_open;
            low = pt_compact_size(fs, c);
            if (low >= 0 && low <= (int64_t)fs->block_size) {
                if (!have_next) return 1; /* all of it fits this pair: no split */
                break;
            }
            /* smallest s whose [s, hi) fits a block */
            a = c->lo;
            b = hi_open ? UINT64_MAX : hi - 1;
            if (pt_write_upper(fs, c, b, hi, hi_open, have_next ? next : NULL, next_split,
                               NULL, 1) != 0)
                return -PT_ENOSPC; /* one name's records exceed a block */
            while (a < b) {
                uint64_t mid = a + (b - a) / 2;
                if (pt_write_upper(fs, c, mid, hi, hi_open, have_next ? next : NULL, next_split,
                                   NULL, 1) == 0)
                    b = mid;
                else
                    a = mid + 1;
            }
            {
                uint32_t out[2];
                err = pt_write_upper(fs, c, a, hi, hi_open, have_next ? next : NULL,
                                     next_split, out, 0);
                if (err) return err;
                next[0] = out[0];
                next[1] = out[1];
            }
            have_next = 1;
            next_split = a;
            hi = a;
            hi_open = 0;
            if (a == c->lo) break;
        }
        split = next_split;
    } else {
        uint32_t out[2];
        err = pt_write_upper(fs, c, split, hi, hi_open, NULL, 0, out, 0);
        if (err) return err;
        next[0] = out[0];
        next[1] = out[1];
    }
    /* the lower part, now threaded to the first new pair */
    pt_put_le32(th_buf, next[0]);
    pt_put_le32(th_buf + 4, next[1]);
    th_buf[8] = 1;
    pt_put_le64(th_buf + 9, split);
    c->hi = split;
    c->hi_open = 0;
    {
        int64_t ls = pt_compact_size(fs, c);
        if (ls < 0) return (int)ls;
    }
    *split_out = split;
    return 0;
}

/* After a compaction into block written (pair {written, other}): md is the pair as a fetch
 * would find it. A helper, so its pair is not on the commit's frame (docs/FIRMWARE.md). */
static PT_NOINLINE int pt_mdir_compacted(struct petrel_fs *fs, struct pt_mdir *md,
                                         uint32_t written, uint32_t other, uint32_t rev,
                                         const struct pt_compact_result *res)
{
    struct pt_mdir w;
    uint32_t np[2];
    int err;
    np[0] = written;
    np[1] = other;
    /* the log just written was read back and matched: what a fetch would find */
    memset(&w, 0, sizeof(w));
    w.pair[0] = written;
    w.pair[1] = other;
    w.rev = rev;
    w.off = res->off;
    w.log_crc = res->log_crc;
    w.fcrc = res->fcrc;
    w.crc_xor = res->crc;
    w.erased = res->off + pt_fcrc_size(fs) <= fs->block_size;
    w.next[0] = w.next[1] = PT_NULL;
    pt_links_remember(fs, &w);
    err = pt_mdir_fetch(fs, md, np, NULL);
    if (err) return err;
    return md->pair[0] != written ? -PT_ECORRUPT : 0;
}

int pt_mdir_commit(struct petrel_fs *fs, struct pt_mdir *md, const struct pt_rec *recs, int n,
                   const struct petrel_fs_gstate *delta, uint32_t old_pair[2],
                   struct pt_split_note *split_note)
{
    struct pt_compact c;
    struct pt_compact_result res;
    struct pt_live_map live;
    int64_t total, limit;
    int err, relocate = 0, evict = 0, root = pt_is_root(md);
    struct pt_rec split_thread;
    uint8_t split_th[17];
    uint32_t written, orig[2];
    uint64_t split = 0;
    int whole = 0;

    old_pair[0] = old_pair[1] = PT_NULL;
    if (split_note) split_note->valid = 0;
    if (md->erased) {
        err = pt_mdir_append(fs, md, recs, n, delta);
        if (err == 0) return 0;
        if (err != -PT_ENOSPC && !pt_bad_block_error(err)) return err;
        if (pt_bad_block_error(err))
            petrel_log(PT_LOG_WARN, "fs", "commit to block %u failed verification, compacting",
                       (unsigned)md->pair[0]);
    }
    orig[0] = md->pair[0];
    orig[1] = md->pair[1];
    fs->layout_gen++; /* compaction may split or move the pair */
    err = pt_live_map_build(fs, md, &live);
    if (err) return err;
    memset(&c, 0, sizeof(c));
    c.src = md;
    c.live = &live;
    c.res = &res;
    c.recs = recs;
    c.n = n;
    c.delta = delta;
    c.lo = md->lo;
    c.hi = md->next_split;
    c.hi_open = !md->next_cont;
    c.is_low = 1;
    c.rev = md->rev + 1;
    if (!root && fs->block_cycles > 0 && c.rev % (uint32_t)fs->block_cycles == 0) relocate = 1;

    total = pt_compact_size(fs, &c);
    if (total < 0 && total != -PT_ENOSPC) return (int)total;
    limit = pt_compact_limit(fs, &c);
    if (limit < 0) return (int)limit;
    /* The root pair cannot move (it holds the superblock). When it has been compacted
     * block_cycles times and still holds entries, all its entries move to a new pair,
     * which can move, so a busy root directory does not wear the root blocks out. */
    if (root && fs->block_cycles > 0 && c.rev % (uint32_t)fs->block_cycles == 0 &&
        total > pt_base_size(fs, &c))
        evict = 1;
    split = c.lo; /* a range of one hash cannot be divided: all of it moves up */
    if (!evict && (total < 0 || total > limit) && !(!c.hi_open && c.lo == c.hi - 1)) {
        /* a split must divide the range; when one name holds it all (whole), compact.
         * The lower part is measured with the thread record the split adds. */
        memset(split_th, 0, sizeof(split_th));
        memset(&split_thread, 0, sizeof(split_thread));
        split_thread.type = PT_REC_THREAD;
        split_thread.seg[0] = split_th;
        split_thread.seglen[0] = sizeof(split_th);
        c.extra = &split_thread;
        c.nextra = 1;
        err = pt_find_split(fs, &c, limit, total, &split, &whole);
        c.extra = NULL;
        c.nextra = 0;
        if (err) return err;
    }
    if (!evict && total >= 0 &&
        (total <= limit || whole || (!c.hi_open && c.lo == c.hi - 1))) {
        /* compaction into the other block (or a fresh one) */
        uint32_t target = relocate ? PT_NULL : md->pair[1];
        err = pt_compact_into(fs, target, &c, !root, &written);
        if (err) return err;
    } else {
        /* split: the upper hash range moves to a new pair threaded right after this one */
        err = pt_split_upper(fs, &c, split, &split, &split_thread, split_th);
        if (err < 0) return err;
        if (err == 1) { /* the upper part alone does not fit, the whole does: compact */
            c.extra = NULL;
            c.nextra = 0;
            c.hi = md->next_split;
            c.hi_open = !md->next_cont;
        }
        err = pt_compact_into(fs, relocate ? PT_NULL : md->pair[1], &c, !root, &written);
        if (err) return err;
        if (c.extra && split_note) {
            /* linked by this commit: the first new pair, [split, ...) */
            split_note->pair[0] = pt_get_le32(split_th);
            split_note->pair[1] = pt_get_le32(split_th + 4);
            split_note->lo = pt_get_le64(split_th + 9);
            split_note->valid = 1;
        }
    }
    if (written != orig[1]) {
        old_pair[0] = orig[0];
        old_pair[1] = orig[1];
    }
    return pt_mdir_compacted(fs, md, written, orig[0], c.rev, &res);
}

int pt_mdir_create(struct petrel_fs *fs, struct pt_mdir *md, const struct pt_rec *recs, int n)
{
    struct pt_compact c;
    uint32_t pair[2], written;
    int err;
    memset(&c, 0, sizeof(c));
    c.recs = recs;
    c.n = n;
    c.hi_open = 1;
    c.is_low = 1;
    c.rev = 1;
    err = pt_alloc_spare(fs, &pair[1]);
    if (err) return err;
    err = pt_compact_into(fs, PT_NULL, &c, 1, &written);
    if (err) return err;
    pair[0] = written;
    return pt_mdir_fetch(fs, md, pair, NULL);
}

int pt_entry_decode(struct petrel_fs *fs, uint32_t block, const struct pt_rec_ref *rec,
                    struct pt_entry *e)
{
    uint8_t tmp[PT_ENTRY_FIXED + PT_REGSTRUCT_SIZE];
    uint32_t s;
    int err;
    memset(e, 0, sizeof(*e));
    if (rec->type != PT_REC_ENTRY || rec->len < PT_ENTRY_FIXED) return -PT_ECORRUPT;
    err = pt_read(fs, block, rec->off, tmp, PT_ENTRY_FIXED, rec->len);
    if (err) return err;
    e->hash = pt_get_le64(tmp);
    e->type = tmp[8];
    e->name_len = tmp[9];
    e->block = block;
    e->rec_off = rec->off;
    e->rec_len = rec->len;
    e->name_off = rec->off + PT_ENTRY_FIXED;
    s = PT_ENTRY_FIXED + e->name_len;
    if (e->name_len == 0) return -PT_ECORRUPT;
    if (e->type == PETREL_FS_DIR) {
        if (rec->len < s + PT_DIRSTRUCT_SIZE) return -PT_ECORRUPT;
        err = pt_read(fs, block, rec->off + s, tmp, PT_DIRSTRUCT_SIZE, PT_DIRSTRUCT_SIZE);
        if (err) return err;
        e->pair[0] = pt_get_le32(tmp);
        e->pair[1] = pt_get_le32(tmp + 4);
        e->dirid = pt_get_le32(tmp + 8);
        return 0;
    }
    if (!PETREL_FS_TYPE_HAS_DATA(e->type) || rec->len < s + PT_REGSTRUCT_SIZE) return -PT_ECORRUPT;
    err = pt_read(fs, block, rec->off + s, tmp, PT_REGSTRUCT_SIZE, PT_REGSTRUCT_SIZE);
    if (err) return err;
    e->size = pt_get_le64(tmp);
    e->root = pt_get_le32(tmp + 8);
    e->depth = tmp[12];
    e->tail_len = pt_get_le16(tmp + 13);
    s += PT_REGSTRUCT_SIZE;
    if (e->depth & PT_DEPTH_DIRECT) {
        uint32_t n = pt_direct_count(e->depth), i;
        uint8_t list[4 * (PT_DIRECT_MAX - 1)];
        if (n < 2 || n > PT_DIRECT_MAX || rec->len < s + 4 * (n - 1)) return -PT_ECORRUPT;
        err = pt_read(fs, block, rec->off + s, list, 4 * (n - 1), 4 * (n - 1));
        if (err) return err;
        for (i = 1; i < n; i++) e->direct[i - 1] = pt_get_le32(list + (size_t)4 * (i - 1));
        s += 4 * (n - 1);
    } else if (e->depth > PETREL_FS_TREE_DEPTH_MAX) {
        return -PT_ECORRUPT;
    }
    e->tail_off = rec->off + s;
    if (rec->len != s + e->tail_len || e->tail_len > e->size) return -PT_ECORRUPT;
    return 0;
}
