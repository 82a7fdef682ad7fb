/*
 * The raft_io vtable over the env (see raft_io.h): load/bootstrap/term/vote/append/truncate/
 * snapshot calls are turned into operations of the store (raft_store.c); messages are encoded
 * and decoded by raft_msg.c and checked here against the group's membership; time, randomness
 * and ticks come from the env.
 *
 * Every callback to libraft runs from an env callback (a timer, an fsync completion), never
 * inside the libraft call that caused it. Close completes only when nothing is pending, so the
 * impl may then be freed.
 */
#include "cluster/replica/raft_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/replica/raft_io_impl.h"
#include "cluster/replica/raft_msg.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

static struct pt_raft_io_impl *impl_of(struct raft_io *io)
{
    return io->impl;
}

/* ---- deferred callbacks --------------------------------------------------------------------- */

enum deferred_kind { D_SEND, D_APPEND_FAIL, D_SNAP_GET, D_SNAP_PUT_FAIL, D_WORK, D_CLOSE };

struct deferred {
    struct pt_raft_io_impl *s;
    enum deferred_kind kind;
    void *req;
    struct raft_snapshot *snap;
    int status;
};

static void deferred_fire(void *ctx)
{
    struct deferred *d = ctx;
    struct pt_raft_io_impl *s = d->s;
    s->pending--;
    switch (d->kind) {
    case D_SEND: {
        struct raft_io_send *r = d->req;
        /* libraft 0.15 sends some messages without a callback (the TimeoutNow of a leadership
         * transfer): calling it crashed every leader stopped with SIGTERM */
        if (r->cb) r->cb(r, d->status);
        break;
    }
    case D_APPEND_FAIL: {
        struct raft_io_append *r = d->req;
        r->cb(r, d->status);
        break;
    }
    case D_SNAP_GET: {
        struct raft_io_snapshot_get *r = d->req;
        r->cb(r, d->snap, d->status);
        break;
    }
    case D_SNAP_PUT_FAIL: {
        struct raft_io_snapshot_put *r = d->req;
        r->cb(r, d->status);
        break;
    }
    case D_WORK: {
        struct raft_io_async_work *r = d->req;
        r->cb(r, r->work(r));
        break;
    }
    case D_CLOSE: {
        raft_io_close_cb cb = s->close_cb;
        free(d);
        if (cb) cb(s->io);
        return;
    }
    }
    free(d);
    pt_raft_io_settled(s);
}

static int defer(struct pt_raft_io_impl *s, enum deferred_kind kind, void *req,
                 struct raft_snapshot *snap, int status)
{
    struct deferred *d = calloc(1, sizeof(*d));
    if (!d) return RAFT_NOMEM;
    d->s = s;
    d->kind = kind;
    d->req = req;
    d->snap = snap;
    d->status = status;
    s->pending++;
    pt_env_timer(s->env, 0, deferred_fire, d);
    return 0;
}

/* Called whenever something completed: release held messages, finish a close. */
void pt_raft_io_settled(struct pt_raft_io_impl *s)
{
    struct pt_raft_held *h;
    if (!s->meta_busy && !s->meta_dirty) {
        while ((h = s->held) != NULL) {
            s->held = h->next;
            if (!s->closing) {
                (void)pt_env_send(s->env, h->to, h->buf, h->len);
                s->stats.sent++;
            }
            free(h->buf);
            free(h);
        }
        s->held_tail = NULL;
        s->n_held = 0;
    }
    if (s->closing && !s->closed_cb_queued && s->pending == 0 && !s->busy && !s->meta_busy) {
        s->closed_cb_queued = 1;
        defer(s, D_CLOSE, NULL, NULL, 0);
    }
}

/* ---- fail-stop ------------------------------------------------------------------------------- */

static void failed_fire(void *ctx)
{
    struct pt_raft_io_impl *s = ctx;
    s->pending--;
    if (!s->closing) {
        if (s->cfg.on_failed) {
            s->cfg.on_failed(s->cfg.failed_ctx, s->failed_reason);
        } else {
            petrel_log(PT_LOG_ERROR, "raft",
                       "%s: exiting so that the supervisor restarts the replica from its disk",
                       s->failed_reason);
            exit(1);
        }
    }
    pt_raft_io_settled(s);
}

void pt_raft_store_fail(struct pt_raft_io_impl *s, const char *what, int rc)
{
    if (s->failed) return;
    s->failed = 1;
    snprintf(s->failed_reason, sizeof(s->failed_reason), "Raft storage failed: %s: %s", what,
             petrel_strerror(rc));
    petrel_log(PT_LOG_ERROR, "raft", "%s", s->failed_reason);
    s->pending++;
    pt_env_timer(s->env, 0, failed_fire, s);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static int io_init(struct raft_io *io, raft_id id, const char *address)
{
    struct pt_raft_io_impl *s = impl_of(io);
    (void)address;
    if (id == 0 || id > s->cfg.replicas) {
        snprintf(io->errmsg, sizeof(io->errmsg), "replica id %llu outside 1..%u", id,
                 s->cfg.replicas);
        return RAFT_INVALID;
    }
    s->id = id;
    return 0;
}

static void tick_fire(void *ctx)
{
    struct pt_raft_io_impl *s = ctx;
    s->tick_timer = 0;
    if (s->closing) return;
    s->tick_timer = pt_env_timer(s->env, s->tick_ms, tick_fire, s);
    s->tick(s->io);
}

static void close_step(void *ctx)
{
    struct pt_raft_io_impl *s = ctx;
    s->pending--;
    pt_raft_store_cancel_queued(s);
    pt_raft_io_settled(s);
}

static void io_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct pt_raft_io_impl *s = impl_of(io);
    s->closing = 1;
    s->close_cb = cb;
    if (s->tick_timer) pt_env_cancel(s->env, s->tick_timer);
    s->tick_timer = 0;
    s->pending++;
    pt_env_timer(s->env, 0, close_step, s);
}

static int io_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                   struct raft_snapshot **snapshot, raft_index *start_index,
                   struct raft_entry *entries[], size_t *n_entries)
{
    struct pt_raft_io_impl *s = impl_of(io);
    if (s->load_done) {
        snprintf(io->errmsg, sizeof(io->errmsg), "load called twice");
        return RAFT_INVALID;
    }
    s->load_done = 1;
    *term = s->term;
    *voted_for = s->vote;
    *snapshot = s->loaded_snap;
    *start_index = s->start_index;
    *entries = s->n_loaded ? s->loaded : NULL;
    *n_entries = s->n_loaded;
    if (!s->n_loaded) raft_free(s->loaded);
    s->loaded_snap = NULL;
    s->loaded = NULL;
    s->n_loaded = s->cap_loaded = 0;
    return 0;
}

static void on_message(void *ctx, const char *from, const uint8_t *msg, size_t len);

static int io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    struct pt_raft_io_impl *s = impl_of(io);
    int rc;
    s->tick = tick;
    s->recv = recv;
    s->tick_ms = msecs ? msecs : 1;
    if ((rc = pt_env_listen(s->env, s->listen, on_message, s)) != 0) {
        snprintf(io->errmsg, sizeof(io->errmsg), "cannot listen on %s: %s", s->listen,
                 petrel_strerror(rc));
        return RAFT_IOERR;
    }
    s->tick_timer = pt_env_timer(s->env, s->tick_ms, tick_fire, s);
    return 0;
}

static int io_bootstrap(struct raft_io *io, const struct raft_configuration *conf)
{
    struct pt_raft_io_impl *s = impl_of(io);
    struct raft_buffer buf;
    struct pt_raft_op *op;
    int rc;
    if (s->term != 0 || s->n_loaded || s->loaded_snap || s->next_index != 1 || s->load_done)
        return RAFT_CANTBOOTSTRAP;
    if ((rc = raft_configuration_encode(conf, &buf)) != 0) return rc;
    op = calloc(1, sizeof(*op));
    if (!op || !(op->own.buf.base = malloc(buf.len ? buf.len : 1))) {
        free(op);
        raft_free(buf.base);
        return RAFT_NOMEM;
    }
    s->start_index = 1;
    s->n_loaded = 0;
    rc = 0;
    {
        /* The first entry: the configuration, term 1. */
        struct raft_entry *e = raft_calloc(1, sizeof(*e));
        if (!e) {
            free(op->own.buf.base);
            free(op);
            raft_free(buf.base);
            return RAFT_NOMEM;
        }
        e->term = 1;
        e->type = RAFT_CHANGE;
        e->buf = buf;
        raft_free(s->loaded);
        s->loaded = e;
        s->n_loaded = s->cap_loaded = 1;
    }
    memcpy(op->own.buf.base, buf.base, buf.len);
    op->own.buf.len = buf.len;
    op->own.term = 1;
    op->own.type = RAFT_CHANGE;
    op->type = OP_APPEND;
    op->entries = &op->own;
    op->n = 1;
    op->first_index = 1;
    s->next_index = 2;
    s->term = 1;
    s->vote = 0;
    if ((rc = pt_raft_store_meta_write(s)) != 0) {
        free(op->own.buf.base);
        free(op);
        return rc;
    }
    pt_raft_store_push(s, op);
    return 0;
}

static int io_recover(struct raft_io *io, const struct raft_configuration *conf)
{
    (void)conf;
    snprintf(io->errmsg, sizeof(io->errmsg), "recover is not supported by Petrel's Raft I/O");
    return RAFT_INVALID;
}

static int io_set_term(struct raft_io *io, raft_term term)
{
    struct pt_raft_io_impl *s = impl_of(io);
    s->term = term;
    s->vote = 0;
    return pt_raft_store_meta_write(s);
}

static int io_set_vote(struct raft_io *io, raft_id server_id)
{
    struct pt_raft_io_impl *s = impl_of(io);
    s->vote = server_id;
    return pt_raft_store_meta_write(s);
}

static int io_append(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct pt_raft_io_impl *s = impl_of(io);
    struct pt_raft_op *op;
    req->cb = cb;
    if (s->closing) return RAFT_CANCELED;
    op = calloc(1, sizeof(*op));
    if (!op) return RAFT_NOMEM;
    op->type = OP_APPEND;
    op->append = req;
    op->entries = entries;
    op->n = n;
    op->first_index = s->next_index;
    s->next_index += n;
    s->stats.appends++;
    pt_raft_store_push(s, op);
    return 0;
}

static int io_truncate(struct raft_io *io, raft_index index)
{
    struct pt_raft_io_impl *s = impl_of(io);
    struct pt_raft_op *op;
    if (index == 0 || index >= s->next_index) return index == 0 ? RAFT_INVALID : 0;
    op = calloc(1, sizeof(*op));
    if (!op) return RAFT_NOMEM;
    op->type = OP_TRUNCATE;
    op->index = index;
    s->next_index = index;
    pt_raft_store_push(s, op);
    return 0;
}

static int io_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct pt_raft_io_impl *s = impl_of(io);
    struct pt_raft_op *op;
    req->cb = cb;
    op = calloc(1, sizeof(*op));
    if (!op) return RAFT_NOMEM;
    if (pt_raft_store_snapshot_image(snapshot, &op->snap_file, &op->snap_len) != 0) {
        free(op);
        return RAFT_NOMEM;
    }
    if (snapshot->n_bufs == 1) {
        struct pt_raft_snap_ref ref;
        if (pt_raft_snap_ref_decode(snapshot->bufs[0].base, snapshot->bufs[0].len, &ref))
            op->snap_token = ref.token;
    }
    op->type = OP_SNAPSHOT;
    op->put = req;
    op->trailing = trailing;
    op->snap_index = snapshot->index;
    if (trailing == 0) s->next_index = snapshot->index + 1;
    pt_raft_store_push(s, op);
    return 0;
}

static int io_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                           raft_io_snapshot_get_cb cb)
{
    struct pt_raft_io_impl *s = impl_of(io);
    struct raft_snapshot *snap = NULL;
    int rc = pt_raft_store_snapshot_read(s, &snap);
    req->cb = cb;
    return defer(s, D_SNAP_GET, req, rc ? NULL : snap, rc ? RAFT_IOERR : 0);
}

static raft_time io_time(struct raft_io *io)
{
    return pt_env_now(impl_of(io)->env);
}

static int io_random(struct raft_io *io, int min, int max)
{
    uint64_t r = pt_env_random(impl_of(io)->env);
    if (max <= min) return min;
    return min + (int)(r % (uint64_t)(max - min));
}

static int io_async_work(struct raft_io *io, struct raft_io_async_work *req,
                         raft_io_async_work_cb cb)
{
    req->cb = cb;
    return defer(impl_of(io), D_WORK, req, NULL, 0);
}

/* ---- streamed snapshots --------------------------------------------------------------------- */

typedef char pt_raft_snap_ref_size_check[PT_RAFT_SNAP_REF_BYTES == PT_RAFT_SNAP_REF_LEN ? 1 : -1];

int pt_raft_io_snap_is_ref(const uint8_t *data, size_t len)
{
    struct pt_raft_snap_ref ref;
    return pt_raft_snap_ref_decode(data, len, &ref);
}

struct snap_file {
    struct pt_env *env;
    int fd;
    uint64_t off;
    uint32_t crc;
    int err; /* the first read error of the disk */
};

static int snap_file_put(void *ctx, const uint8_t *buf, size_t len)
{
    struct snap_file *f = ctx;
    int rc = pt_env_pwrite(f->env, f->fd, buf, len, f->off);
    if (rc) return rc;
    f->crc = petrel_crc32c(f->crc, buf, len);
    f->off += len;
    return 0;
}

static int64_t snap_file_get(void *ctx, uint64_t off, uint8_t *buf, size_t len)
{
    struct snap_file *f = ctx;
    int64_t got = pt_env_pread(f->env, f->fd, buf, len, off);
    if (got < 0 && !f->err) f->err = (int)got;
    return got;
}

/* A new data file through fill: the reference in ref, or an error (no file left). */
static int snap_data_write(struct pt_raft_io_impl *s, pt_raft_snap_fill_fn fill, void *ctx,
                           uint8_t ref[PT_RAFT_SNAP_REF_LEN])
{
    struct pt_raft_snap_ref r;
    struct snap_file f;
    char name[64];
    int rc;
    memset(&f, 0, sizeof(f));
    f.env = s->env;
    r.token = s->next_token++;
    pt_raft_store_data_name(name, sizeof(name), r.token);
    f.fd = pt_env_open(s->env, name, PT_ENV_RDWR | PT_ENV_CREAT);
    if (f.fd < 0) return f.fd;
    rc = pt_env_truncate(s->env, f.fd, 0);
    if (rc == 0) rc = fill(ctx, snap_file_put, &f);
    pt_env_close(s->env, f.fd);
    if (rc) {
        (void)pt_env_unlink(s->env, name);
        return rc;
    }
    r.len = f.off;
    r.crc = f.crc;
    pt_raft_snap_ref_encode(ref, &r);
    return 0;
}

int pt_raft_io_snap_write(struct raft_io *io, pt_raft_snap_fill_fn fill, void *ctx,
                          uint8_t ref[PT_RAFT_SNAP_REF_BYTES])
{
    struct pt_raft_io_impl *s = impl_of(io);
    int rc;
    if (s->failed) return -PT_EIO;
    rc = snap_data_write(s, fill, ctx, ref);
    /* As when a snapshot file cannot be written: the storage failed, the replica stops and
     * restarts from its disk (libraft would retry the take at every later entry). */
    if (rc && rc != -PT_ENOMEM) pt_raft_store_fail(s, "writing a snapshot's data", rc);
    return rc;
}

int pt_raft_io_snap_read(struct raft_io *io, const uint8_t *ref, size_t ref_len,
                         pt_raft_snap_drain_fn drain, void *ctx)
{
    struct pt_raft_io_impl *s = impl_of(io);
    struct pt_raft_snap_ref r;
    struct snap_file f;
    char name[64];
    int64_t size;
    int rc;
    if (!pt_raft_snap_ref_decode(ref, ref_len, &r)) return -PT_ECORRUPT;
    memset(&f, 0, sizeof(f));
    f.env = s->env;
    pt_raft_store_data_name(name, sizeof(name), r.token);
    f.fd = pt_env_open(s->env, name, PT_ENV_RDONLY);
    if (f.fd < 0) return f.fd == -PT_ENOENT ? -PT_ECORRUPT : f.fd;
    size = pt_env_size(s->env, f.fd);
    if (size < 0 || (uint64_t)size != r.len)
        rc = size < 0 ? (int)size : -PT_ECORRUPT;
    else
        rc = drain(ctx, snap_file_get, &f, r.len);
    pt_env_close(s->env, f.fd);
    /* The disk failed, or the state machine did after it began replacing its state: stop, and
     * restart from the disk (which restores this snapshot again). A damaged image changed
     * nothing: libraft hears of it. */
    if (f.err || (rc && rc != -PT_ECORRUPT))
        pt_raft_store_fail(s, "reading a snapshot's data", f.err ? f.err : rc);
    return rc;
}

/* The image a reference names, whole (an InstallSnapshot carries it): malloc'd, or NULL. */
static uint8_t *snap_data_load(struct pt_raft_io_impl *s, const struct pt_raft_snap_ref *r)
{
    char name[64];
    uint8_t *buf;
    int fd;
    if (r->len > PT_RAFT_MSG_MAX) return NULL;
    pt_raft_store_data_name(name, sizeof(name), r->token);
    fd = pt_env_open(s->env, name, PT_ENV_RDONLY);
    if (fd < 0) return NULL;
    buf = malloc(r->len ? (size_t)r->len : 1);
    if (buf && (pt_env_pread(s->env, fd, buf, (size_t)r->len, 0) != (int64_t)r->len ||
                petrel_crc32c(0, buf, (size_t)r->len) != r->crc)) {
        free(buf);
        buf = NULL;
    }
    pt_env_close(s->env, fd);
    return buf;
}

static int snap_fill_image(void *ctx, pt_raft_snap_put_fn put, void *put_ctx)
{
    const struct raft_buffer *b = ctx;
    return put(put_ctx, b->base, b->len);
}

/* ---- transport ------------------------------------------------------------------------------- */

/*
 * A follower's successful answer names the last index its log shares with the leader's.
 * Capped at what the message being answered proved (reply_cap, see on_message). Raised to
 * this replica's durable snapshot: everything up to a snapshot was committed, so the leader
 * holds the same entries. libraft 0.15 answers an InstallSnapshot older than its own snapshot
 * with the older snapshot's index, and rejects an AppendEntries whose previous entry lies
 * inside its snapshot (compacted: "no entry"), one index at a time as the leader probes down
 * (one heartbeat each) until the leader resends an older snapshot — for ever, or for minutes
 * (a follower stuck behind; simulator, strict liveness). Such a rejection becomes a success
 * naming the snapshot (the entries up to it match: they were committed), and the leader
 * continues right after it.
 */
static void answer_shared_prefix(struct pt_raft_io_impl *s, struct raft_append_entries_result *r)
{
    if (r->rejected > 0) {
        if (r->rejected > s->snap_index) return; /* a real mismatch: the leader probes */
        r->rejected = 0;
        r->last_log_index = s->snap_index;
        return;
    }
    if (s->reply_cap && r->last_log_index > s->reply_cap) r->last_log_index = s->reply_cap;
    if (r->last_log_index < s->snap_index) r->last_log_index = s->snap_index;
}

/*
 * Sequence numbers of sealed messages: a random 32-bit incarnation ("boot", from the env's
 * generator: seeded in the simulator) and a count of the messages it sealed. A restarted
 * replica is a new incarnation, so receivers need no state that survives restarts and no
 * clock (wall clocks jump); a count that would wrap starts a new incarnation.
 */
static uint64_t next_send_seq(struct pt_raft_io_impl *s)
{
    if (s->send_boot == 0 || s->send_count == UINT32_MAX) {
        do
            s->send_boot = (uint32_t)pt_env_random(s->env);
        while (s->send_boot == 0);
        s->send_count = 0;
    }
    return (uint64_t)s->send_boot << 32 | ++s->send_count;
}

/*
 * Accept each sequence number of a sender once. Per incarnation of the sender (the newest
 * PT_RAFT_SEEN_BOOTS are kept): a count above the highest seen, or one of the 64 below it not
 * seen yet (the network may reorder); anything older is refused as a replay. An incarnation
 * not kept is accepted as new (a restarted sender), replacing the least recently used.
 */
static int seq_fresh(struct pt_raft_io_impl *s, uint64_t from, uint64_t seq)
{
    struct pt_raft_seen *w = s->seen[from], *e = NULL;
    uint32_t boot = (uint32_t)(seq >> 32), count = (uint32_t)seq, d;
    unsigned i;
    if (boot == 0 || count == 0) return 0; /* never sent */
    for (i = 0; i < PT_RAFT_SEEN_BOOTS; i++) {
        if (w[i].boot == boot) {
            e = &w[i];
            break;
        }
        if (!e || w[i].used < e->used) e = &w[i];
    }
    if (e->boot != boot) {
        e->boot = boot;
        e->top = count;
        e->mask = 1;
        e->used = ++s->seen_clock;
        return 1;
    }
    e->used = ++s->seen_clock;
    if (count > e->top) {
        d = count - e->top;
        e->mask = (d >= 64 ? 0 : e->mask << d) | 1;
        e->top = count;
        return 1;
    }
    d = e->top - count;
    if (d >= 64 || (e->mask & (1ull << d))) return 0;
    e->mask |= 1ull << d;
    return 1;
}

static int io_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                   raft_io_send_cb cb)
{
    struct pt_raft_io_impl *s = impl_of(io);
    struct raft_message fixed;
    struct pt_raft_msg_header h;
    char to[PT_ENV_ADDR_MAX];
    uint8_t *buf, *image = NULL;
    size_t len;
    int rc;
    req->cb = cb;
    if (s->failed) return defer(s, D_SEND, req, NULL, 0); /* stopped: nothing leaves */
    if (m->server_id == 0 || m->server_id > s->cfg.replicas || m->server_id == s->id ||
        s->cfg.resolve(s->cfg.resolve_ctx, m->server_id, to, sizeof(to)) != 0) {
        s->stats.send_unresolved++;
        return defer(s, D_SEND, req, NULL, RAFT_NOCONNECTION);
    }
    if (m->type == RAFT_IO_APPEND_ENTRIES_RESULT) {
        fixed = *m;
        answer_shared_prefix(s, &fixed.append_entries_result);
        m = &fixed;
    }
    if (m->type == RAFT_IO_INSTALL_SNAPSHOT) {
        /* A streamed snapshot travels as its image: the follower has no such file. */
        struct pt_raft_snap_ref ref;
        if (pt_raft_snap_ref_decode(m->install_snapshot.data.base, m->install_snapshot.data.len,
                                    &ref)) {
            fixed = *m;
            image = snap_data_load(s, &ref);
            if (!image) return defer(s, D_SEND, req, NULL, RAFT_IOERR);
            fixed.install_snapshot.data.base = image;
            fixed.install_snapshot.data.len = (size_t)ref.len;
            m = &fixed;
        }
    }
    memset(&h, 0, sizeof(h));
    h.cluster_id = s->cfg.cluster_id;
    h.group = s->cfg.group;
    h.from = s->id;
    h.to = m->server_id;
    h.flags = s->auth ? PT_RAFT_MSG_AUTH : 0;
    rc = pt_raft_msg_encode(&h, m, &buf, &len);
    free(image);
    if (rc) return defer(s, D_SEND, req, NULL, rc == -PT_ENOMEM ? RAFT_NOMEM : RAFT_TOOBIG);
    if (s->auth) pt_raft_msg_seal(buf, len, s->auth_key, next_send_seq(s));
    if (s->meta_busy || s->meta_dirty) {
        /* The term or vote this message may depend on is not durable yet. */
        struct pt_raft_held *held = s->n_held < PT_RAFT_HELD_MAX ? calloc(1, sizeof(*held)) : NULL;
        if (!held) {
            s->stats.held_dropped++;
            free(buf);
            return defer(s, D_SEND, req, NULL, RAFT_NOMEM);
        }
        snprintf(held->to, sizeof(held->to), "%s", to);
        held->buf = buf;
        held->len = len;
        if (s->held_tail)
            s->held_tail->next = held;
        else
            s->held = held;
        s->held_tail = held;
        s->n_held++;
    } else {
        rc = pt_env_send(s->env, to, buf, len);
        free(buf);
        s->stats.sent++;
        if (rc) return defer(s, D_SEND, req, NULL, RAFT_NOCONNECTION);
    }
    return defer(s, D_SEND, req, NULL, 0);
}

/*
 * A message that failed authentication or was a replay: close its connection (the transport's only way to
 * say no: nothing is sent back on a Raft connection) and log the sender's address at most
 * once per PT_RAFT_AUTH_LOG_MS, not per message.
 */
static void refused(struct pt_raft_io_impl *s, const char *from, const char *why)
{
    uint64_t now = pt_env_now(s->env);
    pt_env_refuse(s->env);
    if (s->auth_logged_at && now - s->auth_logged_at < PT_RAFT_AUTH_LOG_MS) return;
    s->auth_logged_at = now ? now : 1;
    petrel_log(PT_LOG_WARN, "raft",
               "%s: refused a message from %s that %s; connection closed (logged once per %d s)",
               s->listen, from && from[0] ? from : "an anonymous sender", why,
               PT_RAFT_AUTH_LOG_MS / 1000);
}

/*
 * An InstallSnapshot as received: a reference names a file of the sender, never one of ours,
 * so it is dropped. With streamed snapshots the image goes to a data file now and libraft
 * gets the reference: 1 to deliver, 0 when dropped (the body freed).
 */
static int install_snapshot_take(struct pt_raft_io_impl *s, struct raft_message *m)
{
    struct raft_buffer *data = &m->install_snapshot.data;
    uint8_t ref[PT_RAFT_SNAP_REF_LEN], *small;
    int rc;
    if (pt_raft_io_snap_is_ref(data->base, data->len)) {
        s->stats.drop_body++;
        rc = -PT_EINVAL;
    } else if (!s->cfg.stream_snapshots) {
        return 1;
    } else if ((rc = snap_data_write(s, snap_fill_image, data, ref)) == 0) {
        small = raft_malloc(sizeof(ref));
        if (small) {
            memcpy(small, ref, sizeof(ref));
            raft_free(data->base);
            data->base = small;
            data->len = sizeof(ref);
            return 1;
        }
        rc = -PT_ENOMEM;
    }
    if (rc != -PT_EINVAL)
        petrel_log(PT_LOG_WARN, "raft", "%s: cannot keep a received snapshot: %s", s->listen,
                   petrel_strerror(rc));
    pt_raft_msg_release(m);
    return 0;
}

static void on_message(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct pt_raft_io_impl *s = ctx;
    struct pt_raft_msg_header h;
    struct raft_message m;
    char addr[PT_ENV_ADDR_MAX];
    uint64_t seq = 0;
    int rc;
    if (s->closing || s->failed || !s->recv) return;
    rc = pt_raft_msg_decode_header(msg, len, &h);
    if (rc) {
        if (rc == -PT_EBADMSG)
            s->stats.drop_crc++;
        else
            s->stats.drop_header++;
        return;
    }
    /* Sealed or not must match our own setting: a replica with a key never reads plain
     * messages, one without a key cannot check a seal. */
    if (s->auth != !!(h.flags & PT_RAFT_MSG_AUTH) ||
        (s->auth && pt_raft_msg_unseal(msg, len, s->auth_key, &seq) != 0)) {
        s->stats.drop_auth++;
        refused(s, from, "failed authentication (wrong or no cluster secret)");
        return;
    }
    if (h.cluster_id != s->cfg.cluster_id || h.group != s->cfg.group || h.to != s->id) {
        s->stats.drop_group++;
        return;
    }
    if (h.from == 0 || h.from > s->cfg.replicas || h.from == s->id) {
        s->stats.drop_sender++;
        return;
    }
    if (s->cfg.resolve(s->cfg.resolve_ctx, h.from, addr, sizeof(addr)) != 0 || !from ||
        strcmp(addr, from) != 0) {
        s->stats.drop_address++;
        return;
    }
    if (s->auth && !seq_fresh(s, h.from, seq)) {
        s->stats.drop_replay++;
        refused(s, from, "was a replay");
        return;
    }
    if (pt_raft_msg_decode_body(&h, msg + PT_RAFT_MSG_HEADER, &m) != 0) {
        s->stats.drop_body++;
        return;
    }
    if (m.type == RAFT_IO_REQUEST_VOTE && m.request_vote.candidate_id != h.from) {
        s->stats.drop_body++;
        return;
    }
    if (m.type == RAFT_IO_INSTALL_SNAPSHOT && !install_snapshot_take(s, &m)) return;
    snprintf(s->peer_addr[h.from], sizeof(s->peer_addr[h.from]), "%s", addr);
    m.server_address = s->peer_addr[h.from];
    s->stats.received++;
    if (m.type == RAFT_IO_APPEND_ENTRIES) {
        /* What this message proves the follower shares with the leader: its entries and the
         * matching entry before them; beyond that the follower's log may hold entries of an
         * older term that the leader never had. libraft 0.15 commits up to leader_commit capped
         * only by what it stored, and answers success with everything it stored: a stale tail
         * entry then counts as replicated and is applied (seen in the simulator: two replicas
         * commit different entries at one index). Figure 2 of the Raft paper caps both at the
         * last new entry; so do we (leader_commit here, the answer in io_send). */
        raft_index verified = m.append_entries.prev_log_index + m.append_entries.n_entries;
        if (m.append_entries.leader_commit > verified) m.append_entries.leader_commit = verified;
        s->reply_cap = verified;
        s->recv(s->io, &m);
        s->reply_cap = 0;
        return;
    }
    s->recv(s->io, &m);
}

/* ---- public ---------------------------------------------------------------------------------- */

int pt_raft_io_init(struct raft_io *io, const struct pt_raft_io_config *cfg, char *err,
                    size_t err_cap)
{
    struct pt_raft_io_impl *s;
    int rc;
    memset(io, 0, sizeof(*io));
    if (!cfg->env || !cfg->resolve || !cfg->listen || cfg->replicas == 0 ||
        cfg->replicas > PT_RAFT_MAX_REPLICAS || strlen(cfg->listen) >= PT_ENV_ADDR_MAX) {
        snprintf(err, err_cap, "invalid Raft I/O configuration");
        return -PT_EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) return -PT_ENOMEM;
    s->io = io;
    s->env = cfg->env;
    s->cfg = *cfg;
    snprintf(s->listen, sizeof(s->listen), "%s", cfg->listen);
    s->cfg.listen = s->listen;
    {
        const struct pt_auth_key *k =
            cfg->auth ? cfg->auth : cfg->no_auth ? NULL : pt_auth_process_server().full;
        s->cfg.auth = NULL;
        if (k) {
            s->auth = 1;
            pt_auth_raft_key(k, s->auth_key);
        }
    }
    s->open_fd = s->meta_fd = s->op_fd = -1;
    s->next_seq = 1;
    s->next_index = 1;
    io->version = 2;
    io->impl = s;
    io->init = io_init;
    io->close = io_close;
    io->load = io_load;
    io->start = io_start;
    io->bootstrap = io_bootstrap;
    io->recover = io_recover;
    io->set_term = io_set_term;
    io->set_vote = io_set_vote;
    io->send = io_send;
    io->append = io_append;
    io->truncate = io_truncate;
    io->snapshot_put = io_snapshot_put;
    io->snapshot_get = io_snapshot_get;
    io->time = io_time;
    io->random = io_random;
    io->async_work = io_async_work;
    if ((rc = pt_raft_store_load(s, err, err_cap)) != 0) {
        pt_raft_io_free(io);
        return rc;
    }
    return 0;
}

void pt_raft_io_free(struct raft_io *io)
{
    struct pt_raft_io_impl *s = impl_of(io);
    struct pt_raft_op *op;
    if (!s) return;
    /* Never started or already closed: only the queue's kick can still be pending. */
    if (s->kick_timer) pt_env_cancel(s->env, s->kick_timer);
    while ((op = s->head) != NULL) {
        s->head = op->next;
        free(op->own.buf.base);
        free(op->snap_file);
        free(op);
    }
    pt_raft_store_free(s);
    free(s);
    io->impl = NULL;
}

const struct pt_raft_io_stats *pt_raft_io_stats(struct raft_io *io)
{
    return &impl_of(io)->stats;
}
