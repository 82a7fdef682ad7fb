/*
 * Raft storage over the env (see raft_io_impl.h): load with every CRC checked, the term/vote
 * file replaced atomically, log segments appended in group-committed batches, truncation,
 * snapshots installed atomically and the log compacted behind them.
 *
 * Must never: run an append's callback before the fsync of its bytes completed; write a batch
 * while the previous one's fsync is in flight; reuse a segment file after a truncation (a new
 * segment supersedes the tail of older ones, so old bytes never sit behind new ones).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/replica/raft_io_impl.h"
#include "cluster/replica/raft_msg.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define META "meta"
#define META_TMP "meta.tmp"
#define SNAP_TMP "snap.tmp"
#define SEG_PREFIX "seg-"
#define SNAP_PREFIX "snap-"
#define DATA_PREFIX "sdata-"
#define LIST_MAX (16u << 20)
#define FILE_MAX ((uint64_t)1 << 32) /* refuse to load a larger file */

static void seg_name(char *buf, size_t cap, uint64_t seq)
{
    snprintf(buf, cap, SEG_PREFIX "%020" PRIu64, seq);
}

static void snap_name(char *buf, size_t cap, uint64_t index)
{
    snprintf(buf, cap, SNAP_PREFIX "%020" PRIu64, index);
}

void pt_raft_store_data_name(char *buf, size_t cap, uint64_t token)
{
    snprintf(buf, cap, DATA_PREFIX "%020" PRIu64, token);
}

/* "PREFIX" followed by exactly 20 digits: 1 and the number, else 0. */
static int name_number(const char *name, const char *prefix, uint64_t *out)
{
    size_t p = strlen(prefix), i;
    uint64_t v = 0;
    if (strncmp(name, prefix, p) != 0 || strlen(name) != p + 20) return 0;
    for (i = p; i < p + 20; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *out = v;
    return 1;
}

/* Names libraft's uv storage writes: metadata1/2, open-N, snapshot-..., N-M segments. */
static int is_libraft_name(const char *name)
{
    size_t i, len = strlen(name);
    if (!strcmp(name, "metadata1") || !strcmp(name, "metadata2")) return 1;
    if (!strncmp(name, "open-", 5) || !strncmp(name, "snapshot-", 9)) return 1;
    if (len != 33 || name[16] != '-') return 0;
    for (i = 0; i < len; i++)
        if (i != 16 && (name[i] < '0' || name[i] > '9')) return 0;
    return 1;
}

static int read_file(struct pt_env *e, const char *name, uint8_t **out, size_t *len)
{
    int fd = pt_env_open(e, name, PT_ENV_RDONLY);
    int64_t size, got;
    uint8_t *buf;
    if (fd < 0) return fd;
    size = pt_env_size(e, fd);
    if (size < 0 || (uint64_t)size > FILE_MAX) {
        pt_env_close(e, fd);
        return size < 0 ? (int)size : -PT_EFBIG;
    }
    buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        pt_env_close(e, fd);
        return -PT_ENOMEM;
    }
    got = pt_env_pread(e, fd, buf, (size_t)size, 0);
    pt_env_close(e, fd);
    if (got != size) {
        free(buf);
        return got < 0 ? (int)got : -PT_EIO;
    }
    *out = buf;
    *len = (size_t)size;
    return 0;
}

/* ---- load ---------------------------------------------------------------------------------- */

static void loaded_drop_from(struct pt_raft_io_impl *s, uint64_t index)
{
    while (s->n_loaded > 0 && s->start_index + s->n_loaded - 1 >= index) {
        s->n_loaded--;
        raft_free(s->loaded[s->n_loaded].buf.base);
    }
}

static int loaded_add(struct pt_raft_io_impl *s, uint64_t term, unsigned short type,
                      const void *data, size_t len)
{
    struct raft_entry *e;
    if (s->n_loaded == s->cap_loaded) {
        size_t cap = s->cap_loaded ? s->cap_loaded * 2 : 64;
        struct raft_entry *grown = raft_realloc(s->loaded, cap * sizeof(*grown));
        if (!grown) return -PT_ENOMEM;
        s->loaded = grown;
        s->cap_loaded = cap;
    }
    e = &s->loaded[s->n_loaded];
    memset(e, 0, sizeof(*e));
    e->term = term;
    e->type = type;
    e->buf.len = len;
    e->buf.base = raft_malloc(len ? len : 1);
    if (!e->buf.base) return -PT_ENOMEM;
    if (len) memcpy(e->buf.base, data, len);
    s->n_loaded++;
    return 0;
}

static int seg_add(struct pt_raft_io_impl *s, uint64_t seq, uint64_t first, uint64_t last)
{
    if (s->n_segs == s->cap_segs) {
        size_t cap = s->cap_segs ? s->cap_segs * 2 : 16;
        struct pt_raft_seg *grown = realloc(s->segs, cap * sizeof(*grown));
        if (!grown) return -PT_ENOMEM;
        s->segs = grown;
        s->cap_segs = cap;
    }
    s->segs[s->n_segs].seq = seq;
    s->segs[s->n_segs].first = first;
    s->segs[s->n_segs].last = last;
    s->n_segs++;
    return 0;
}

struct scan_ctx {
    struct pt_raft_io_impl *s;
    uint64_t last;
};

static int scan_record(void *ctx, const struct pt_raft_rec *rec)
{
    struct scan_ctx *c = ctx;
    int rc = loaded_add(c->s, rec->term, rec->type, rec->payload, rec->len);
    c->last = rec->index;
    return rc;
}

static void snapshot_destroy(struct raft_snapshot *snap);

static int load_snapshot(struct pt_raft_io_impl *s, uint64_t index, char *err, size_t err_cap)
{
    char name[64];
    uint8_t *buf = NULL;
    size_t len = 0, body;
    struct pt_raft_snap_header h;
    struct raft_snapshot *snap;
    struct pt_cursor c;
    int rc;
    snap_name(name, sizeof(name), index);
    if ((rc = read_file(s->env, name, &buf, &len)) != 0) {
        snprintf(err, err_cap, "cannot read snapshot %s: %s", name, petrel_strerror(rc));
        return rc;
    }
    rc = pt_raft_snap_header_decode(buf, len, &h);
    body = len - PT_RAFT_SNAP_HEADER;
    if (rc == 0 &&
        (h.index != index || len < PT_RAFT_SNAP_HEADER + 4 ||
         (uint64_t)body - 4 != (uint64_t)h.conf_len + h.data_len ||
         pt_get_le32(buf + len - 4) != petrel_crc32c(0, buf + PT_RAFT_SNAP_HEADER, body - 4)))
        rc = -PT_ECORRUPT;
    if (rc) {
        snprintf(err, err_cap, "snapshot %s is damaged (%s)", name, petrel_strerror(rc));
        free(buf);
        return rc;
    }
    snap = raft_calloc(1, sizeof(*snap));
    if (!snap) {
        free(buf);
        return -PT_ENOMEM;
    }
    snap->index = h.index;
    snap->term = h.term;
    snap->configuration_index = h.conf_index;
    pt_cursor_init(&c, buf + PT_RAFT_SNAP_HEADER, h.conf_len);
    if (pt_raft_conf_decode(&c, &snap->configuration) != 0 || pt_cursor_left(&c) != 0) {
        raft_configuration_close(&snap->configuration);
        raft_free(snap);
        free(buf);
        snprintf(err, err_cap, "snapshot %s: bad configuration", name);
        return -PT_ECORRUPT;
    }
    snap->bufs = raft_calloc(1, sizeof(*snap->bufs));
    if (snap->bufs) snap->bufs[0].base = raft_malloc(h.data_len ? (size_t)h.data_len : 1);
    if (!snap->bufs || !snap->bufs[0].base) {
        if (snap->bufs) raft_free(snap->bufs);
        raft_configuration_close(&snap->configuration);
        raft_free(snap);
        free(buf);
        return -PT_ENOMEM;
    }
    snap->n_bufs = 1;
    snap->bufs[0].len = (size_t)h.data_len;
    memcpy(snap->bufs[0].base, buf + PT_RAFT_SNAP_HEADER + h.conf_len, (size_t)h.data_len);
    free(buf);
    s->snap_token = 0;
    {
        struct pt_raft_snap_ref ref;
        if (pt_raft_snap_ref_decode(snap->bufs[0].base, snap->bufs[0].len, &ref)) {
            char dname[64];
            int fd;
            int64_t size = -PT_ENOENT;
            pt_raft_store_data_name(dname, sizeof(dname), ref.token);
            fd = pt_env_open(s->env, dname, PT_ENV_RDONLY);
            if (fd >= 0) {
                size = pt_env_size(s->env, fd);
                pt_env_close(s->env, fd);
            }
            if (size < 0 || (uint64_t)size != ref.len) {
                snprintf(err, err_cap, "snapshot %s: its data file %s is %s", name, dname,
                         size < 0 ? "missing" : "not of the length it names");
                snapshot_destroy(snap);
                return -PT_ECORRUPT;
            }
            s->snap_token = ref.token;
        }
    }
    s->loaded_snap = snap;
    s->snap_index = index;
    return 0;
}

static void snapshot_destroy(struct raft_snapshot *snap)
{
    unsigned i;
    if (!snap) return;
    for (i = 0; i < snap->n_bufs; i++)
        raft_free(snap->bufs[i].base);
    raft_free(snap->bufs);
    raft_configuration_close(&snap->configuration);
    raft_free(snap);
}

/* One segment: supersede, scan, cut a torn tail of the last one. */
static int load_segment(struct pt_raft_io_impl *s, uint64_t seq, int last, char *err,
                        size_t err_cap)
{
    char name[64];
    uint8_t *buf = NULL;
    size_t len = 0, valid_end = 0;
    uint64_t hseq, first, have_last;
    struct scan_ctx ctx;
    int rc;
    seg_name(name, sizeof(name), seq);
    if ((rc = read_file(s->env, name, &buf, &len)) != 0) {
        snprintf(err, err_cap, "cannot read log segment %s: %s", name, petrel_strerror(rc));
        return rc;
    }
    rc = pt_raft_seg_header_decode(buf, len, &hseq, &first);
    if (rc == 0 && hseq != seq) rc = -PT_ECORRUPT;
    if (rc == -PT_ECORRUPT && len <= PT_RAFT_SEG_HEADER) {
        /* A segment created but never synced: nothing in it was ever acknowledged (records go
         * behind a header only once it is durable). It need not be the last one: an install
         * opens a fresh segment, and a second install can open another behind it while an
         * older segment holding entries past the first snapshot keeps both from compaction. */
        free(buf);
        s->stats.torn_bytes_cut += len;
        if ((rc = pt_env_unlink(s->env, name)) == 0) rc = pt_env_fsync_dir(s->env, "");
        if (rc) snprintf(err, err_cap, "cannot remove empty segment %s", name);
        return rc;
    }
    if (rc) {
        snprintf(err, err_cap, "log segment %s: bad header (%s)", name, petrel_strerror(rc));
        free(buf);
        return rc;
    }
    have_last = s->start_index + s->n_loaded - 1;
    if (s->n_loaded > 0 && first <= have_last) {
        loaded_drop_from(s, first); /* superseded by a truncation */
    } else if (s->n_loaded > 0 && first > have_last + 1) {
        if (!s->loaded_snap || first > s->loaded_snap->index + 1) {
            snprintf(err, err_cap,
                     "log segment %s starts at %" PRIu64 " after a gap (log ends at %" PRIu64 ")",
                     name, first, have_last);
            free(buf);
            return -PT_ECORRUPT;
        }
        loaded_drop_from(s, 0); /* a snapshot install reset the log */
    }
    if (s->n_loaded == 0) s->start_index = first;
    ctx.s = s;
    ctx.last = first - 1;
    rc = pt_raft_seg_scan(buf, len, first, scan_record, &ctx, &valid_end);
    free(buf);
    if (rc == 1 && !last) rc = -PT_ECORRUPT;
    if (rc < 0) {
        if (rc == -PT_ECORRUPT)
            snprintf(err, err_cap,
                     "log segment %s is corrupt after index %" PRIu64
                     " (offset %zu) with committed data behind it: refusing to start",
                     name, ctx.last, valid_end);
        else
            snprintf(err, err_cap, "log segment %s: %s", name, petrel_strerror(rc));
        return rc;
    }
    if ((rc = seg_add(s, seq, first, ctx.last)) != 0) return rc;
    if (seq >= s->next_seq) s->next_seq = seq + 1;
    if (!last) return 0;
    s->open_fd = pt_env_open(s->env, name, PT_ENV_RDWR);
    if (s->open_fd < 0) {
        snprintf(err, err_cap, "cannot open log segment %s: %s", name, petrel_strerror(s->open_fd));
        return s->open_fd;
    }
    s->open_size = valid_end;
    s->open_unsynced = 1; /* what we read may be the page cache of a write never fsync'd */
    if (valid_end < len) {
        struct pt_raft_op *op;
        petrel_log(PT_LOG_WARN, "raft",
                   "log segment %s: cut a torn tail of %zu bytes after index %" PRIu64, name,
                   len - valid_end, ctx.last);
        s->stats.torn_bytes_cut += len - valid_end;
        if ((rc = pt_env_truncate(s->env, s->open_fd, valid_end)) != 0) {
            snprintf(err, err_cap, "cannot cut the torn tail of %s: %s", name, petrel_strerror(rc));
            return rc;
        }
        /* The cut is made durable before anything is written behind it. */
        op = calloc(1, sizeof(*op));
        if (!op) return -PT_ENOMEM;
        op->type = OP_SYNC;
        pt_raft_store_push(s, op);
    }
    return 0;
}

int pt_raft_store_load(struct pt_raft_io_impl *s, char *err, size_t err_cap)
{
    char *names = NULL, *name;
    size_t cap = 64u << 10;
    uint64_t num, best_snap = 0, *seqs = NULL;
    size_t n_seqs = 0, i;
    int count, rc = 0;
    uint8_t *buf;
    size_t len;
    for (;;) {
        names = malloc(cap);
        if (!names) return -PT_ENOMEM;
        count = pt_env_list(s->env, "", names, cap);
        if (count != -PT_ERANGE || cap >= LIST_MAX) break;
        free(names);
        cap *= 4;
    }
    if (count < 0) {
        snprintf(err, err_cap, "cannot list the Raft directory: %s", petrel_strerror(count));
        free(names);
        return count;
    }
    seqs = malloc(((size_t)count + 1) * sizeof(*seqs));
    if (!seqs) {
        free(names);
        return -PT_ENOMEM;
    }
    for (name = names, i = 0; i < (size_t)count; i++, name += strlen(name) + 1) {
        if (is_libraft_name(name)) {
            snprintf(err, err_cap,
                     "the Raft directory holds libraft's own storage (%s, written by an older "
                     "Petrel) which this version does not read: move it away and let the "
                     "replica catch up from its peers",
                     name);
            rc = -PT_EVERSION;
            goto out;
        }
        if (name_number(name, SNAP_PREFIX, &num) && num > best_snap) best_snap = num;
        if (name_number(name, SEG_PREFIX, &num)) seqs[n_seqs++] = num;
        if (name_number(name, DATA_PREFIX, &num) && num >= s->next_token) s->next_token = num + 1;
        if (!strcmp(name, META_TMP) || !strcmp(name, SNAP_TMP)) (void)pt_env_unlink(s->env, name);
    }
    if (s->next_token == 0) s->next_token = 1;
    s->term = s->vote = 0;
    rc = read_file(s->env, META, &buf, &len);
    if (rc == 0) {
        rc = pt_raft_meta_decode(buf, len, &s->term, &s->vote);
        free(buf);
        if (rc) {
            snprintf(err, err_cap, "the term and vote file is damaged (%s)", petrel_strerror(rc));
            goto out;
        }
    } else if (rc != -PT_ENOENT) {
        snprintf(err, err_cap, "cannot read the term and vote file: %s", petrel_strerror(rc));
        goto out;
    }
    rc = 0;
    if (best_snap && (rc = load_snapshot(s, best_snap, err, err_cap)) != 0) goto out;
    s->start_index = 1;
    for (i = 0; i < n_seqs; i++)
        if ((rc = load_segment(s, seqs[i], i + 1 == n_seqs, err, err_cap)) != 0) goto out;
    if (s->loaded_snap) {
        uint64_t si = s->loaded_snap->index;
        if (s->n_loaded > 0 && s->start_index > si + 1) {
            snprintf(err, err_cap, "the log starts at %" PRIu64 ", after the snapshot at %" PRIu64,
                     s->start_index, si);
            rc = -PT_ECORRUPT;
            goto out;
        }
        /* Entries older than the snapshot, or disagreeing with it (an install cut short by a
         * crash before the old log was removed), are not part of the log. */
        if (s->n_loaded > 0 &&
            (s->start_index + s->n_loaded - 1 < si ||
             (s->start_index <= si && s->loaded[si - s->start_index].term != s->loaded_snap->term)))
            loaded_drop_from(s, 0);
        if (s->n_loaded == 0) s->start_index = si + 1;
    } else if (s->n_loaded > 0 && s->start_index != 1) {
        snprintf(err, err_cap, "the log starts at index %" PRIu64 " without a snapshot",
                 s->start_index);
        rc = -PT_ECORRUPT;
        goto out;
    }
    if (s->n_loaded == 0 && !s->loaded_snap) s->start_index = 1;
    s->next_index = s->start_index + s->n_loaded;
out:
    free(seqs);
    free(names);
    return rc;
}

void pt_raft_store_free(struct pt_raft_io_impl *s)
{
    struct pt_raft_held *h;
    loaded_drop_from(s, 0);
    raft_free(s->loaded);
    s->loaded = NULL;
    snapshot_destroy(s->loaded_snap);
    s->loaded_snap = NULL;
    if (s->open_fd >= 0) pt_env_close(s->env, s->open_fd);
    s->open_fd = -1;
    while ((h = s->held) != NULL) {
        s->held = h->next;
        free(h->buf);
        free(h);
    }
    free(s->segs);
    free(s->wbuf);
}

/* ---- term and vote ------------------------------------------------------------------------- */

static void meta_synced(void *ctx, int status);

static int meta_start(struct pt_raft_io_impl *s)
{
    uint8_t buf[PT_RAFT_META_SIZE];
    int fd, rc;
    s->meta_dirty = 0;
    pt_raft_meta_encode(buf, s->term, s->vote);
    fd = pt_env_open(s->env, META_TMP, PT_ENV_RDWR | PT_ENV_CREAT);
    if (fd < 0) return fd;
    if ((rc = pt_env_truncate(s->env, fd, 0)) != 0 ||
        (rc = pt_env_pwrite(s->env, fd, buf, sizeof(buf), 0)) != 0) {
        pt_env_close(s->env, fd);
        return rc;
    }
    s->meta_fd = fd;
    s->meta_busy = 1;
    s->pending++;
    s->stats.meta_writes++;
    pt_env_fsync(s->env, fd, meta_synced, s);
    return 0;
}

static void meta_synced(void *ctx, int status)
{
    struct pt_raft_io_impl *s = ctx;
    s->pending--;
    pt_env_close(s->env, s->meta_fd);
    s->meta_fd = -1;
    s->meta_busy = 0;
    if (status == 0) status = pt_env_rename(s->env, META_TMP, META);
    if (status == 0) status = pt_env_fsync_dir(s->env, "");
    if (status == 0 && s->meta_dirty) status = meta_start(s);
    if (status) {
        /* Not durable: stay silent (held messages never leave) rather than act on it. */
        pt_raft_store_fail(s, "writing term and vote", status);
        s->meta_dirty = 1;
    }
    pt_raft_io_settled(s);
}

/* Never an error for libraft: a failure stops the I/O (messages stay held, nothing leaves). */
int pt_raft_store_meta_write(struct pt_raft_io_impl *s)
{
    int rc;
    s->meta_dirty = 1;
    if (s->meta_busy || s->failed) return 0;
    if ((rc = meta_start(s)) != 0) {
        pt_raft_store_fail(s, "writing term and vote", rc);
        s->meta_dirty = 1;
    }
    return 0;
}

/* ---- the disk queue ------------------------------------------------------------------------- */

static void queue_run(struct pt_raft_io_impl *s);

static void kick_cb(void *ctx)
{
    struct pt_raft_io_impl *s = ctx;
    s->pending--;
    s->kick_timer = 0;
    queue_run(s);
    pt_raft_io_settled(s);
}

void pt_raft_store_push(struct pt_raft_io_impl *s, struct pt_raft_op *op)
{
    op->next = NULL;
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    /* Run from the loop, never inside libraft's call (callbacks must come later). */
    if (!s->kick_timer && !s->busy) {
        s->pending++;
        s->kick_timer = pt_env_timer(s->env, 0, kick_cb, s);
    }
}

static struct pt_raft_op *queue_pop(struct pt_raft_io_impl *s)
{
    struct pt_raft_op *op = s->head;
    if (op) {
        s->head = op->next;
        if (!s->head) s->tail = NULL;
        op->next = NULL;
    }
    return op;
}

/*
 * An operation is done: status 0, or cancelled by close (a failure never reaches libraft).
 * A cancelled append is reported with 0: raft_close has made libraft unavailable, where a
 * follower's append callback ignores any status and a leader's, with status 0, only releases
 * its entries; with an error libraft 0.15's leader callback truncates its in-memory log from
 * the batch's index, and the next cancelled batch then truncates past the end (a crash).
 * Nothing reads the state of a closing libraft again.
 */
static void op_finish(struct pt_raft_io_impl *s, struct pt_raft_op *op, int status)
{
    int rs = status == 0 ? 0 : RAFT_CANCELED;
    PT_ASSERT(status == 0 || s->closing);
    if (op->type == OP_APPEND && op->append) {
        /* a follower answers for this batch only (see answer_shared_prefix in raft_io.c) */
        s->reply_cap = op->first_index + op->n - 1;
        op->append->cb(op->append, 0);
        s->reply_cap = 0;
    }
    if (op->type == OP_SNAPSHOT && op->put) op->put->cb(op->put, rs);
    if (op->own.buf.base) free(op->own.buf.base);
    free(op->snap_file);
    free(op);
}

/* Create segment seq=next_seq starting at `first` and make it the open one. */
static int seg_new(struct pt_raft_io_impl *s, uint64_t first)
{
    char name[64];
    uint8_t hdr[PT_RAFT_SEG_HEADER];
    int fd, rc;
    uint64_t seq = s->next_seq;
    seg_name(name, sizeof(name), seq);
    fd = pt_env_open(s->env, name, PT_ENV_RDWR | PT_ENV_CREAT | PT_ENV_EXCL);
    if (fd < 0) return fd;
    pt_raft_seg_header_encode(hdr, seq, first);
    if ((rc = pt_env_pwrite(s->env, fd, hdr, sizeof(hdr), 0)) != 0 ||
        (rc = pt_env_fsync_dir(s->env, "")) != 0 || (rc = seg_add(s, seq, first, first - 1)) != 0) {
        pt_env_close(s->env, fd);
        return rc;
    }
    if (s->open_fd >= 0) pt_env_close(s->env, s->open_fd);
    s->open_fd = fd;
    s->open_size = PT_RAFT_SEG_HEADER;
    s->open_unsynced = 1;
    s->next_seq = seq + 1;
    return 0;
}

/*
 * The storage failed with these operations in flight: they go back to the head of the queue,
 * which no longer runs; their callbacks run only at close (RAFT_CANCELED). libraft never sees
 * an append fail (see pt_raft_failed_fn).
 */
static void queue_park_inflight(struct pt_raft_io_impl *s)
{
    struct pt_raft_op *last = s->inflight;
    if (!last) return;
    while (last->next)
        last = last->next;
    last->next = s->head;
    if (!s->head) s->tail = last;
    s->head = s->inflight;
    s->inflight = NULL;
}

static void queue_synced(void *ctx, int status)
{
    struct pt_raft_io_impl *s = ctx;
    struct pt_raft_op *op;
    s->pending--;
    s->busy = 0;
    s->stats.fsyncs++;
    if (status) {
        pt_raft_store_fail(s, "fsync of the log", status);
        queue_park_inflight(s);
    } else {
        s->open_unsynced = 0;
    }
    while ((op = s->inflight) != NULL) {
        s->inflight = op->next;
        if (op->type == OP_APPEND) s->segs[s->n_segs - 1].last = op->first_index + op->n - 1;
        op_finish(s, op, 0);
    }
    queue_run(s);
    pt_raft_io_settled(s);
}

static void snapshot_synced(void *ctx, int status);

/*
 * A new segment's header is made durable before any record is written behind it and before
 * another segment follows it: a crash then leaves either a durable header or, in the last
 * segment only, at most a header (which load removes) — never records behind a torn header,
 * never a torn header in a segment that is no longer the last (both refused as corruption).
 */
static int header_sync_start(struct pt_raft_io_impl *s)
{
    s->busy = 1;
    s->pending++;
    pt_env_fsync(s->env, s->open_fd, queue_synced, s);
    return 0;
}

/* Write the consecutive appends at the head of the queue as one batch. */
static int append_start(struct pt_raft_io_impl *s)
{
    struct pt_raft_op *op, *last = NULL;
    uint64_t first = s->head->first_index, next = first;
    size_t size = 0, off = 0;
    unsigned i;
    int rc;
    struct pt_raft_seg *seg = s->n_segs ? &s->segs[s->n_segs - 1] : NULL;
    for (op = s->head; op && op->type == OP_APPEND && op->first_index == next; op = op->next) {
        for (i = 0; i < op->n; i++)
            size += pt_raft_rec_size(op->entries[i].buf.len);
        next += op->n;
        last = op;
    }
    if (size > s->wcap) {
        uint8_t *grown = realloc(s->wbuf, size);
        if (!grown) return -PT_ENOMEM;
        s->wbuf = grown;
        s->wcap = size;
    }
    if (s->open_fd < 0 || !seg || seg->last + 1 != first || s->open_size >= PT_RAFT_SEG_TARGET) {
        if ((rc = seg_new(s, first)) != 0) return rc;
    }
    if (s->open_unsynced) return header_sync_start(s);
    for (op = s->head;; op = op->next) {
        for (i = 0; i < op->n; i++) {
            const struct raft_entry *e = &op->entries[i];
            if (e->buf.len > PT_RAFT_REC_MAX) return -PT_EFBIG;
            pt_raft_rec_encode(s->wbuf + off, op->first_index + i, e->term, first, (uint8_t)e->type,
                               e->buf.base, (uint32_t)e->buf.len);
            off += pt_raft_rec_size(e->buf.len);
        }
        if (op == last) break;
    }
    if ((rc = pt_env_pwrite(s->env, s->open_fd, s->wbuf, size, s->open_size)) != 0) return rc;
    s->open_size += size;
    /* Move the batch to in-flight. */
    s->inflight = s->head;
    s->head = last->next;
    if (!s->head) s->tail = NULL;
    last->next = NULL;
    s->busy = 1;
    s->pending++;
    s->stats.append_writes++;
    pt_env_fsync(s->env, s->open_fd, queue_synced, s);
    return 0;
}

static int truncate_start(struct pt_raft_io_impl *s, struct pt_raft_op *op)
{
    size_t i, keep = 0;
    char name[64];
    int rc;
    for (i = 0; i < s->n_segs; i++) {
        struct pt_raft_seg *g = &s->segs[i];
        if (g->last >= op->index) g->last = op->index - 1;
        if (g->first >= op->index && i + 1 < s->n_segs) {
            seg_name(name, sizeof(name), g->seq);
            if ((rc = pt_env_unlink(s->env, name)) != 0) return rc;
            continue;
        }
        s->segs[keep++] = *g;
    }
    s->n_segs = keep;
    if ((rc = seg_new(s, op->index)) != 0) return rc;
    s->inflight = op;
    s->busy = 1;
    s->pending++;
    pt_env_fsync(s->env, s->open_fd, queue_synced, s);
    return 0;
}

static void snapshot_data_synced(void *ctx, int status);

/* A streamed snapshot's data file is made durable first, then the snap file naming it. */
static int snapshot_start(struct pt_raft_io_impl *s, struct pt_raft_op *op)
{
    int fd, rc;
    if (op->snap_token && !op->snap_data_synced) {
        char dname[64];
        pt_raft_store_data_name(dname, sizeof(dname), op->snap_token);
        fd = pt_env_open(s->env, dname, PT_ENV_RDWR);
        if (fd < 0) return fd;
        s->op_fd = fd;
        s->inflight = op;
        s->busy = 1;
        s->pending++;
        pt_env_fsync(s->env, fd, snapshot_data_synced, s);
        return 0;
    }
    fd = pt_env_open(s->env, SNAP_TMP, PT_ENV_RDWR | PT_ENV_CREAT);
    if (fd < 0) return fd;
    if ((rc = pt_env_truncate(s->env, fd, 0)) != 0 ||
        (rc = pt_env_pwrite(s->env, fd, op->snap_file, op->snap_len, 0)) != 0) {
        pt_env_close(s->env, fd);
        return rc;
    }
    s->op_fd = fd;
    s->inflight = op;
    s->busy = 1;
    s->pending++;
    pt_env_fsync(s->env, fd, snapshot_synced, s);
    return 0;
}

static void snapshot_data_synced(void *ctx, int status)
{
    struct pt_raft_io_impl *s = ctx;
    struct pt_raft_op *op = s->inflight;
    s->pending--;
    s->busy = 0;
    s->inflight = NULL;
    s->stats.fsyncs++;
    pt_env_close(s->env, s->op_fd);
    s->op_fd = -1;
    op->snap_data_synced = 1; /* now the snap file */
    if (status == 0) status = snapshot_start(s, op);
    if (status) {
        pt_raft_store_fail(s, "writing a snapshot's data", status);
        s->inflight = op;
        queue_park_inflight(s);
        queue_run(s);
        pt_raft_io_settled(s);
    }
}

/* After a snapshot at `index` is durable: drop what the log and older snapshots no longer need. */
static int compact(struct pt_raft_io_impl *s, uint64_t index, unsigned trailing)
{
    char *names, *name, fname[64];
    uint64_t keep_from = index > trailing ? index - trailing + 1 : 1, num;
    size_t drop = 0, i;
    int count, rc = 0;
    if (trailing == 0) {
        /* Installed from the leader: the log restarts after the snapshot. */
        if ((rc = seg_new(s, index + 1)) != 0) return rc;
    }
    while (drop + 1 < s->n_segs && s->segs[drop].last < keep_from) {
        seg_name(fname, sizeof(fname), s->segs[drop].seq);
        if ((rc = pt_env_unlink(s->env, fname)) != 0) return rc;
        drop++;
    }
    memmove(s->segs, s->segs + drop, (s->n_segs - drop) * sizeof(*s->segs));
    s->n_segs -= drop;
    /* Snapshots: keep this one and the one before it. */
    names = malloc(64u << 10);
    if (!names) return -PT_ENOMEM;
    count = pt_env_list(s->env, "", names, 64u << 10);
    if (count >= 0) {
        uint64_t prev = 0;
        for (name = names, i = 0; i < (size_t)count; i++, name += strlen(name) + 1)
            if (name_number(name, SNAP_PREFIX, &num) && num < index && num > prev) prev = num;
        for (name = names, i = 0; i < (size_t)count; i++, name += strlen(name) + 1)
            if ((name_number(name, SNAP_PREFIX, &num) && num < prev) ||
                (name_number(name, DATA_PREFIX, &num) && num < s->prev_snap_token)) {
                /* A data file older than the previous snapshot's: of a snapshot deleted
                 * here or before, or one that was never stored (a take or an install cut
                 * short). */
                if ((rc = pt_env_unlink(s->env, name)) != 0) break;
            }
    }
    free(names);
    if (rc == 0) rc = pt_env_fsync_dir(s->env, "");
    return rc;
}

static void snapshot_synced(void *ctx, int status)
{
    struct pt_raft_io_impl *s = ctx;
    struct pt_raft_op *op = s->inflight;
    char name[64];
    s->pending--;
    s->busy = 0;
    s->inflight = NULL;
    s->stats.fsyncs++;
    pt_env_close(s->env, s->op_fd);
    s->op_fd = -1;
    snap_name(name, sizeof(name), op->snap_index);
    if (status == 0) status = pt_env_rename(s->env, SNAP_TMP, name);
    if (status == 0) status = pt_env_fsync_dir(s->env, "");
    if (status == 0) {
        s->snap_index = op->snap_index;
        s->prev_snap_token = s->snap_token;
        s->snap_token = op->snap_token;
        status = compact(s, op->snap_index, op->trailing);
    }
    if (status) {
        pt_raft_store_fail(s, "writing a snapshot", status);
        s->inflight = op;
        queue_park_inflight(s);
    } else {
        op_finish(s, op, 0);
    }
    queue_run(s);
    pt_raft_io_settled(s);
}

static void queue_run(struct pt_raft_io_impl *s)
{
    struct pt_raft_op *op;
    int rc;
    while (!s->busy && s->head && !s->failed) {
        if (s->open_unsynced && s->open_fd >= 0 &&
            (s->head->type == OP_APPEND || s->head->type == OP_TRUNCATE)) {
            header_sync_start(s);
            break;
        }
        switch (s->head->type) {
        case OP_APPEND:
            rc = append_start(s);
            break;
        case OP_TRUNCATE:
            op = queue_pop(s);
            rc = truncate_start(s, op);
            if (rc) {
                s->inflight = op;
                queue_park_inflight(s);
            }
            break;
        case OP_SNAPSHOT:
            op = queue_pop(s);
            rc = snapshot_start(s, op);
            if (rc) {
                s->inflight = op;
                queue_park_inflight(s);
            }
            break;
        case OP_SYNC:
            op = queue_pop(s);
            s->inflight = op;
            s->busy = 1;
            s->pending++;
            pt_env_fsync(s->env, s->open_fd, queue_synced, s);
            rc = 0;
            break;
        default:
            rc = -PT_EINVAL;
        }
        if (rc) pt_raft_store_fail(s, "writing the log", rc);
    }
}

void pt_raft_store_cancel_queued(struct pt_raft_io_impl *s)
{
    struct pt_raft_op *op;
    while ((op = queue_pop(s)) != NULL)
        op_finish(s, op, -PT_ECANCELED);
}

/* ---- snapshots ------------------------------------------------------------------------------ */

int pt_raft_store_snapshot_image(const struct raft_snapshot *snap, uint8_t **out, size_t *len)
{
    struct pt_raft_snap_header h;
    struct pt_cursor c;
    size_t data = 0, total, off;
    unsigned i;
    uint8_t *buf;
    for (i = 0; i < snap->n_bufs; i++)
        data += snap->bufs[i].len;
    h.index = snap->index;
    h.term = snap->term;
    h.conf_index = snap->configuration_index;
    h.data_len = data;
    h.conf_len = (uint32_t)pt_raft_conf_size(&snap->configuration);
    total = PT_RAFT_SNAP_HEADER + h.conf_len + data + 4;
    buf = malloc(total);
    if (!buf) return -PT_ENOMEM;
    pt_raft_snap_header_encode(buf, &h);
    pt_cursor_init(&c, buf + PT_RAFT_SNAP_HEADER, h.conf_len);
    pt_raft_conf_encode(&c, &snap->configuration);
    off = PT_RAFT_SNAP_HEADER + h.conf_len;
    for (i = 0; i < snap->n_bufs; i++) {
        if (snap->bufs[i].len) memcpy(buf + off, snap->bufs[i].base, snap->bufs[i].len);
        off += snap->bufs[i].len;
    }
    pt_put_le32(buf + off, petrel_crc32c(0, buf + PT_RAFT_SNAP_HEADER, off - PT_RAFT_SNAP_HEADER));
    if (!pt_cursor_ok(&c)) {
        free(buf);
        return -PT_EINVAL;
    }
    *out = buf;
    *len = total;
    return 0;
}

int pt_raft_store_snapshot_read(struct pt_raft_io_impl *s, struct raft_snapshot **out)
{
    char err[256];
    struct raft_snapshot *keep = s->loaded_snap;
    uint64_t keep_index = s->snap_index, keep_token = s->snap_token;
    int rc;
    if (!s->snap_index) return -PT_ENOENT;
    s->loaded_snap = NULL;
    rc = load_snapshot(s, s->snap_index, err, sizeof(err));
    *out = s->loaded_snap;
    s->loaded_snap = keep;
    s->snap_index = keep_index;
    s->snap_token = keep_token;
    if (rc) petrel_log(PT_LOG_ERROR, "raft", "%s", err);
    return rc;
}
