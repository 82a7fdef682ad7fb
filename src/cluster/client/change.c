/*
 * Files that change (include/petrel/client.h "files that change", issue 12): a change of a
 * linked file staged locally, uploaded as the spans of a shard change file, and committed by
 * compare-and-swap on the file's version.
 *
 * Owns the local staging (a cache file of dirty ranges at their file offsets, an extent list,
 * the size and how much of the old content still shows through) and the plan of an upload:
 * which of the current spans stay (shared with the old version), which runs of spans are
 * rewritten in place (their old bytes merged with the staged ones, cut at old span
 * boundaries so the shard can swap them one for one), and the tail that is cut and written
 * again. Goes to shards and block services only through client.c's span-level functions
 * (client_internal.h). Never makes a change visible except by COMMIT_CHANGE; never returns a
 * byte that the version it reads did not hold or that the change did not write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/client/client_internal.h"
#include "cluster/proto/blocks_msg.h"
#include "petrel/codec.h"
#include "petrel/common.h"

#define CHANGE_PIECE (1u << 20)           /* reads are delivered in pieces of this */
#define CHANGE_DEFAULT_LIMIT (64ull << 20) /* staged bytes before a spill */
/* Largest size a change may give a file: a hole is stored as zeros (no sparse spans yet), so a
 * truncate(2) far past the end would upload all of them. */
#define CHANGE_SIZE_MAX (1ull << 40)

/* A span record of the content the change starts from, kept encoded (its inline bytes and
 * cell CRCs point into it once decoded). */
struct base_span {
    uint64_t offset;
    uint32_t size;
    size_t len;
    uint8_t *raw;
};

struct extent {
    uint64_t start, end;
};

struct petrel_change {
    struct petrel_client *c;
    uint64_t file;    /* the linked file */
    uint64_t version; /* its version the change started from (what the commit compares) */
    uint64_t change;  /* the shard's change file (0: not made yet) */
    uint64_t cookie;
    uint64_t src;     /* whose span records `spans` are: the file, or the change after a spill */
    struct base_span *spans;
    size_t n_spans;
    uint64_t base_size;  /* the bytes those spans hold */
    uint64_t base_valid; /* of them, [0, base_valid) still show (a truncation hides the rest) */
    uint64_t size;       /* the size the change sees */
    struct extent *dirty; /* staged ranges, sorted, disjoint, not adjacent */
    size_t n_dirty, cap_dirty;
    uint64_t dirty_bytes, limit;
    unsigned copies; /* of new mirrored spans: as the old content's, else the client's */
    int fd;          /* the cache file: staged bytes at their file offsets */
    uint64_t uploaded; /* bytes written as new spans */
    int failed;      /* an upload or commit failed: every later one returns it */
};

static void spans_clear(struct petrel_change *ch)
{
    size_t i;
    for (i = 0; i < ch->n_spans; i++)
        free(ch->spans[i].raw);
    free(ch->spans);
    ch->spans = NULL;
    ch->n_spans = 0;
}

/* The span records of inode id (every page of SPANS) into ch->spans; its size. */
static int spans_load_once(struct petrel_change *ch, uint64_t id)
{
    struct pt_shard_req q;
    struct base_span *v = NULL;
    size_t n = 0, cap = 0;
    uint64_t pos = 0, size = 0;
    int rc = 0, more = 1;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_SPANS;
    q.id = id;
    while (more && rc == 0) {
        struct pt_reply rep;
        struct pt_cursor b;
        unsigned k, cnt;
        q.offset = pos;
        if ((rc = pt_client_shard_call(ch->c, id, &q, &rep, NULL)) != 0) {
            pt_reply_free(&rep);
            break;
        }
        pt_cursor_init(&b, rep.body, rep.body_len);
        size = pt_dec_u64(&b);
        cnt = pt_dec_u16(&b);
        for (k = 0; k < cnt && rc == 0; k++) {
            struct pt_span s;
            size_t at = b.pos;
            if (pt_span_decode(&b, &s) != 0) {
                rc = -PT_EPROTO;
                break;
            }
            if (n && s.offset < v[n - 1].offset + v[n - 1].size) continue; /* the page's first */
            if (s.offset != (n ? v[n - 1].offset + v[n - 1].size : 0)) {
                rc = -PT_ECORRUPT; /* spans are contiguous from 0 */
                break;
            }
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 16;
                struct base_span *nv = realloc(v, nc * sizeof(*nv));
                if (!nv) {
                    rc = -PT_ENOMEM;
                    break;
                }
                v = nv;
                cap = nc;
            }
            v[n].offset = s.offset;
            v[n].size = s.size;
            v[n].len = b.pos - at;
            if (!(v[n].raw = malloc(v[n].len))) {
                rc = -PT_ENOMEM;
                break;
            }
            memcpy(v[n].raw, rep.body + at, v[n].len);
            n++;
            if (s.storage == PT_STORAGE_MIRRORED && !ch->copies) ch->copies = s.parity + 1u;
        }
        more = pt_dec_u8(&b);
        if (rc == 0 && !pt_cursor_ok(&b)) rc = -PT_EPROTO;
        pt_reply_free(&rep);
        pos = n ? v[n - 1].offset + v[n - 1].size : 0;
        if (more && pos >= size) more = 0;
    }
    if (rc == 0 && pos != size) rc = -PT_ECORRUPT;
    if (rc) {
        struct petrel_change tmp;
        tmp.spans = v;
        tmp.n_spans = n;
        spans_clear(&tmp);
        return rc;
    }
    spans_clear(ch);
    ch->spans = v;
    ch->n_spans = n;
    ch->base_size = size;
    ch->src = id;
    return 0;
}

/* spans_load_once, again from the start when the pages did not join up: the shard leader's
 * compaction may merge spans between two pages (same bytes, same version), so a page can
 * start with a merged span that covers the end of the previous one. */
static int spans_load(struct petrel_change *ch, uint64_t id)
{
    int rc, tries = 0;
    while ((rc = spans_load_once(ch, id)) == -PT_ECORRUPT && ++tries < 3)
        ;
    return rc;
}

static int cache_open(struct petrel_change *ch, const struct petrel_change_config *cfg)
{
    char dir[4096], path[4200];
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (cfg && cfg->cache_dir) {
        snprintf(dir, sizeof(dir), "%s", cfg->cache_dir);
    } else if (xdg && xdg[0]) {
        snprintf(dir, sizeof(dir), "%s/petrel", xdg);
        if (mkdir(xdg, 0700) != 0 && errno != EEXIST) return -PT_EIO;
    } else if (home && home[0]) {
        snprintf(path, sizeof(path), "%s/.cache", home);
        if (mkdir(path, 0700) != 0 && errno != EEXIST) return -PT_EIO;
        snprintf(dir, sizeof(dir), "%s/.cache/petrel", home);
    } else {
        snprintf(dir, sizeof(dir), "/tmp");
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return -PT_EIO;
    snprintf(path, sizeof(path), "%s/change.XXXXXX", dir);
    ch->fd = mkstemp(path);
    if (ch->fd < 0) return errno == ENOSPC ? -PT_ENOSPC : errno == EACCES ? -PT_EACCES : -PT_EIO;
    unlink(path); /* staged bytes never outlive the change, whatever happens to the process */
    return 0;
}

int petrel_change_open(struct petrel_client *c, uint64_t id, uint64_t version,
                       const struct petrel_change_config *cfg, struct petrel_change **out)
{
    struct petrel_change *ch;
    struct petrel_stat st;
    int rc;
    *out = NULL;
    if ((rc = petrel_client_stat_inode(c, id, &st)) != 0) return rc;
    if (st.type == PETREL_TYPE_DIR) return -PT_EISDIR;
    if (st.type != PETREL_TYPE_FILE) return -PT_EINVAL;
    if (st.state != 1 || (version && st.version != version)) return -PT_ESTALE;
    if (!(ch = calloc(1, sizeof(*ch)))) return -PT_ENOMEM;
    ch->c = c;
    ch->file = id;
    ch->version = st.version;
    ch->cookie = pt_client_cookie(c);
    ch->limit = cfg && cfg->cache_limit ? cfg->cache_limit : CHANGE_DEFAULT_LIMIT;
    ch->fd = -1;
    if ((rc = cache_open(ch, cfg)) != 0 || (rc = spans_load(ch, id)) != 0) {
        petrel_change_close(ch);
        return rc;
    }
    /* Spans and stat come from two reads: a commit in between shows as another size. */
    if (ch->base_size != st.size) {
        petrel_change_close(ch);
        return -PT_ESTALE;
    }
    ch->base_valid = ch->size = ch->base_size;
    *out = ch;
    return 0;
}

void petrel_change_close(struct petrel_change *ch)
{
    if (!ch) return;
    spans_clear(ch);
    free(ch->dirty);
    if (ch->fd >= 0) close(ch->fd);
    free(ch);
}

uint64_t petrel_change_size(const struct petrel_change *ch)
{
    return ch->size;
}

uint64_t petrel_change_version(const struct petrel_change *ch)
{
    return ch->version;
}

uint64_t petrel_change_uploaded(const struct petrel_change *ch)
{
    return ch->uploaded;
}

int petrel_change_dirty(const struct petrel_change *ch)
{
    return ch->n_dirty > 0 || ch->size != ch->base_size || ch->base_valid < ch->base_size;
}

/* ---- staging ------------------------------------------------------------------------------ */

/* [start, end) is staged: merge it into the extent list. */
static int extent_add(struct petrel_change *ch, uint64_t start, uint64_t end)
{
    size_t i = 0, j, k;
    while (i < ch->n_dirty && ch->dirty[i].end < start)
        i++;
    for (j = i; j < ch->n_dirty && ch->dirty[j].start <= end; j++) {
        start = PT_MIN(start, ch->dirty[j].start);
        end = PT_MAX(end, ch->dirty[j].end);
    }
    if (j == i) { /* no overlap: insert at i */
        if (ch->n_dirty == ch->cap_dirty) {
            size_t nc = ch->cap_dirty ? ch->cap_dirty * 2 : 16;
            struct extent *nv = realloc(ch->dirty, nc * sizeof(*nv));
            if (!nv) return -PT_ENOMEM;
            ch->dirty = nv;
            ch->cap_dirty = nc;
        }
        memmove(ch->dirty + i + 1, ch->dirty + i, (ch->n_dirty - i) * sizeof(*ch->dirty));
        ch->n_dirty++;
        j = i + 1;
    } else if (j > i + 1) { /* [i, j) merge into i */
        memmove(ch->dirty + i + 1, ch->dirty + j, (ch->n_dirty - j) * sizeof(*ch->dirty));
        ch->n_dirty -= j - i - 1;
    }
    ch->dirty[i].start = start;
    ch->dirty[i].end = end;
    ch->dirty_bytes = 0;
    for (k = 0; k < ch->n_dirty; k++)
        ch->dirty_bytes += ch->dirty[k].end - ch->dirty[k].start;
    return 0;
}

/* Staged bytes at or past `size` are gone. */
static void extent_clip(struct petrel_change *ch, uint64_t size)
{
    size_t k;
    while (ch->n_dirty && ch->dirty[ch->n_dirty - 1].start >= size)
        ch->n_dirty--;
    if (ch->n_dirty && ch->dirty[ch->n_dirty - 1].end > size) ch->dirty[ch->n_dirty - 1].end = size;
    ch->dirty_bytes = 0;
    for (k = 0; k < ch->n_dirty; k++)
        ch->dirty_bytes += ch->dirty[k].end - ch->dirty[k].start;
}

static int overlaps_dirty(const struct petrel_change *ch, uint64_t start, uint64_t end)
{
    size_t k;
    for (k = 0; k < ch->n_dirty; k++)
        if (ch->dirty[k].start < end && ch->dirty[k].end > start) return 1;
    return 0;
}

struct into_buf {
    uint8_t *buf;
    size_t pos, cap;
};

static int into_buf_write(void *ctx, const void *data, size_t len)
{
    struct into_buf *b = ctx;
    if (len > b->cap - b->pos) return -PT_EPROTO;
    memcpy(b->buf + b->pos, data, len);
    b->pos += len;
    return 0;
}

/* The change's bytes [off, off + len) into buf: staged, else the old content while it shows,
 * else zeros. */
static int content(struct petrel_change *ch, uint64_t off, size_t len, uint8_t *buf)
{
    uint64_t end = off + len, show = PT_MIN(PT_MIN(ch->base_valid, ch->base_size), end);
    size_t lo = 0, hi = ch->n_spans, k;
    memset(buf, 0, len);
    while (lo < hi) { /* the first span that ends after off */
        size_t mid = (lo + hi) / 2;
        if (ch->spans[mid].offset + ch->spans[mid].size <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (k = lo; k < ch->n_spans && ch->spans[k].offset < show; k++) {
        struct base_span *bs = &ch->spans[k];
        struct pt_span s;
        struct pt_cursor cur;
        struct into_buf ib;
        uint64_t a = PT_MAX(off, bs->offset), b = PT_MIN(show, bs->offset + bs->size);
        int rc;
        if (a >= b) break; /* [off, end) starts past what still shows of the old content */
        pt_cursor_init(&cur, bs->raw, bs->len);
        if (pt_span_decode(&cur, &s) != 0) return -PT_ECORRUPT;
        ib.buf = buf + (a - off);
        ib.pos = 0;
        ib.cap = (size_t)(b - a);
        rc = pt_client_read_span(ch->c, ch->src, &s, (uint32_t)(a - bs->offset), (uint32_t)(b - a),
                                 into_buf_write, &ib);
        if (rc) return rc;
        if (ib.pos != ib.cap) return -PT_ECORRUPT;
    }
    for (k = 0; k < ch->n_dirty; k++) {
        uint64_t a = PT_MAX(off, ch->dirty[k].start), b = PT_MIN(end, ch->dirty[k].end);
        ssize_t got;
        if (a >= b) continue;
        got = pread(ch->fd, buf + (a - off), (size_t)(b - a), (off_t)a);
        if (got != (ssize_t)(b - a)) return -PT_EIO;
    }
    return 0;
}

int petrel_change_read(struct petrel_change *ch, uint64_t offset, uint64_t len,
                       petrel_write_fn write, void *ctx, uint64_t *got)
{
    uint64_t end = offset >= ch->size ? offset : PT_MIN(ch->size, offset + len), pos = offset;
    uint8_t *buf;
    int rc = 0;
    if (got) *got = 0;
    if (ch->failed) return ch->failed;
    if (pos >= end) return 0;
    if (!(buf = malloc(CHANGE_PIECE))) return -PT_ENOMEM;
    while (pos < end && rc == 0) {
        size_t n = (size_t)PT_MIN(CHANGE_PIECE, end - pos);
        if ((rc = content(ch, pos, n, buf)) == 0 && (rc = write(ctx, buf, n)) == 0) {
            pos += n;
            if (got) *got += n;
        }
    }
    free(buf);
    return rc;
}

static int change_flush(struct petrel_change *ch);

int petrel_change_write(struct petrel_change *ch, uint64_t offset, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t done = 0;
    int rc;
    if (ch->failed) return ch->failed;
    if (len == 0) return 0;
    if (offset + len < offset || offset + len > CHANGE_SIZE_MAX) return -PT_EFBIG;
    while (done < len) {
        ssize_t n = pwrite(ch->fd, p + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 && errno == ENOSPC ? -PT_ENOSPC : -PT_EIO;
        done += (size_t)n;
    }
    if ((rc = extent_add(ch, offset, offset + len)) != 0) return rc;
    if (offset + len > ch->size) ch->size = offset + len;
    /* Past the limit: the staged ranges go to the shard's change file as spans. */
    if (ch->dirty_bytes > ch->limit) return change_flush(ch);
    return 0;
}

int petrel_change_truncate(struct petrel_change *ch, uint64_t size)
{
    if (ch->failed) return ch->failed;
    if (size > CHANGE_SIZE_MAX && size > ch->size) return -PT_EFBIG;
    if (size < ch->size) {
        extent_clip(ch, size);
        if (size < ch->base_valid) ch->base_valid = size;
    }
    ch->size = size;
    return 0;
}

/* ---- upload and commit --------------------------------------------------------------------- */

static int shard_op(struct petrel_change *ch, struct pt_shard_req *q, struct pt_cursor *body,
                    struct pt_reply *rep)
{
    int rc = pt_client_shard_call(ch->c, ch->file, q, rep, NULL);
    if (rc == 0 && body) pt_cursor_init(body, rep->body, rep->body_len);
    return rc;
}

/* The shard's change file, made at the first upload: it starts with the version's spans. */
static int change_make(struct petrel_change *ch)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    int rc;
    if (ch->change) return 0;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_OPEN_CHANGE;
    q.id = ch->file;
    q.cookie = ch->cookie;
    q.expect = ch->version;
    rc = shard_op(ch, &q, &b, &rep);
    if (rc == 0) {
        ch->change = pt_dec_u64(&b);
        if (!pt_cursor_ok(&b)) rc = -PT_EPROTO;
    }
    pt_reply_free(&rep);
    return rc;
}

/* Write the change's bytes [start, end) as spans at start (each at most `max` bytes, or cut at
 * the offsets in cuts[] when given: the old spans' boundaries). */
static int upload_range(struct petrel_change *ch, uint64_t start, uint64_t end, uint8_t *buf,
                        uint32_t max)
{
    uint64_t pos = start;
    int rc = 0;
    while (pos < end && rc == 0) {
        uint32_t n = (uint32_t)PT_MIN((uint64_t)max, end - pos);
        if ((rc = content(ch, pos, n, buf)) == 0)
            rc = pt_client_put_span(ch->c, ch->change, ch->cookie, ch->copies, pos, buf, n);
        if (rc == 0) ch->uploaded += n;
        pos += n;
    }
    return rc;
}

/*
 * Upload the staged state into the change file. The current spans (the old version's, or the
 * change file's after an earlier spill) are kept when nothing staged touches them and they
 * still show whole; runs of touched spans before the last kept one are rewritten in place, in
 * pieces that end on old span boundaries (the shard swaps spans one range for one); the rest
 * (after the last kept span, and from the first run that cannot be cut so) is cut off and
 * written again up to the size.
 */
static int change_upload(struct petrel_change *ch)
{
    uint32_t max = pt_client_span_size(ch->c);
    uint64_t tail, size_before = ch->base_size;
    uint8_t *buf;
    size_t i, last = 0, n;
    int have_kept = 0, rc;
    unsigned char *keep;
    /* The change file starts with the span records the file has when it is made: the same
     * bytes as the version this change opened (OPEN_CHANGE checks the version), but a
     * background compaction (shard_compact.c) may have merged spans since, so the plan below
     * works on the change file's own records. */
    if (!ch->change) {
        if ((rc = change_make(ch)) != 0 || (rc = spans_load(ch, ch->change)) != 0) return rc;
        if (ch->base_size != size_before) return -PT_ECORRUPT;
    }
    n = ch->n_spans;
    if (!(keep = calloc(n ? n : 1, 1))) return -PT_ENOMEM;
    for (i = 0; i < n; i++) {
        uint64_t a = ch->spans[i].offset, e = a + ch->spans[i].size;
        keep[i] = e <= ch->base_valid && e <= ch->size && !overlaps_dirty(ch, a, e);
        if (keep[i]) {
            last = i;
            have_kept = 1;
        }
    }
    /* An append after a last span that stays inline with it (at most 4 KiB) rewrites that
     * span with it: at most 4 KiB into the shard per append, no block written. A longer
     * append adds spans, and the shard leader's compaction (shard_compact.c) later merges
     * runs of small spans into one. */
    if (have_kept && last == n - 1 && ch->size > ch->base_size &&
        ch->size - ch->spans[last].offset <= PT_MIN((uint64_t)max, (uint64_t)PT_INLINE_MAX)) {
        keep[last] = 0;
        have_kept = 0;
        for (i = last; i-- > 0;)
            if (keep[i]) {
                last = i;
                have_kept = 1;
                break;
            }
    }
    tail = have_kept ? ch->spans[last].offset + ch->spans[last].size : 0;
    /* A run that cannot be cut at old boundaries (an old span larger than a block) joins the
     * tail. */
    for (i = 0; have_kept && i < last; i++)
        if (!keep[i] && ch->spans[i].size > PT_MAX(max, PT_BLOCK_MAX_SIZE)) {
            tail = ch->spans[i].offset;
            break;
        }
    if (!(buf = malloc(PT_MAX(max, PT_BLOCK_MAX_SIZE)))) {
        free(keep);
        return -PT_ENOMEM;
    }
    rc = change_make(ch);
    /* Runs in place, before the tail. */
    for (i = 0; rc == 0 && i < n && ch->spans[i].offset < tail; i++) {
        uint64_t a, e;
        if (keep[i]) continue;
        a = ch->spans[i].offset;
        e = a + ch->spans[i].size;
        /* Pack the following touched spans while the piece stays within one span's bytes. */
        while (i + 1 < n && !keep[i + 1] && ch->spans[i + 1].offset < tail &&
               e + ch->spans[i + 1].size - a <= max) {
            i++;
            e += ch->spans[i].size;
        }
        rc = upload_range(ch, a, e, buf, (uint32_t)(e - a));
    }
    if (rc == 0 && tail < ch->base_size) {
        struct pt_shard_req q;
        struct pt_reply rep;
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_TRUNCATE_SPANS;
        q.id = ch->change;
        q.cookie = ch->cookie;
        q.offset = tail;
        q.expect = ch->base_size; /* the in-place runs kept the size */
        rc = shard_op(ch, &q, NULL, &rep);
        pt_reply_free(&rep);
    }
    if (rc == 0) rc = upload_range(ch, tail, ch->size, buf, max);
    free(buf);
    free(keep);
    return rc;
}

/* Upload, then continue from the change file's spans with nothing staged. */
static int change_flush(struct petrel_change *ch)
{
    int rc;
    if (ch->failed) return ch->failed;
    if (!petrel_change_dirty(ch)) return 0;
    if ((rc = change_upload(ch)) == 0 && (rc = spans_load(ch, ch->change)) == 0 &&
        ch->base_size != ch->size)
        rc = -PT_ECORRUPT;
    if (rc) {
        /* The change file and the local state no longer agree: this change is over. */
        ch->failed = rc;
        if (rc != -PT_ESTALE) /* a lost race is the caller's answer, not an incident */
            petrel_log(PT_LOG_WARN, "client", "change of inode %016llx failed: %s",
                       (unsigned long long)ch->file, petrel_strerror(rc));
        return rc;
    }
    ch->base_valid = ch->size;
    ch->n_dirty = 0;
    ch->dirty_bytes = 0;
    if (ftruncate(ch->fd, 0) != 0) return 0; /* only space; staged bytes are forgotten anyway */
    return 0;
}

int petrel_change_commit(struct petrel_change *ch, uint64_t *version)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    uint64_t nv = 0;
    int rc;
    if (ch->failed) return ch->failed;
    if ((rc = change_flush(ch)) != 0) return rc;
    if (!ch->change) { /* nothing changed */
        if (version) *version = ch->version;
        return 0;
    }
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_COMMIT_CHANGE;
    q.id = ch->change;
    q.cookie = ch->cookie;
    rc = shard_op(ch, &q, &b, &rep);
    if (rc == 0) {
        nv = pt_dec_u64(&b);
        if (!pt_cursor_ok(&b)) rc = -PT_EPROTO;
    }
    pt_reply_free(&rep);
    if (rc) {
        ch->failed = rc;
        return rc;
    }
    /* The file now holds exactly the change file's records: continue from them, as a change
     * of the new version. */
    ch->version = nv;
    ch->src = ch->file;
    ch->change = 0;
    ch->cookie = pt_client_cookie(ch->c);
    if (version) *version = nv;
    return 0;
}
