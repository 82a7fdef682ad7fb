/*
 * libraft storage and transport over env.h for the simulator (see sim_raft_io.h).
 *
 * Invariants: an append callback runs after an fsync of the log issued after its write; the
 * callbacks run in append order; nothing is sent while a term/vote fsync is outstanding; after
 * a fatal error no callback reports success and nothing more is written.
 */
#include "sim_raft_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define META_SLOT 32
#define REC_HEADER 24
#define MSG_HEADER 14

struct pending_append {
    struct raft_io_append *req;
    uint64_t seq;
    struct pending_append *next;
};

struct held_msg {
    char to[PT_ENV_ADDR_MAX];
    uint8_t *buf;
    size_t len;
    struct held_msg *next;
};

struct append_sync;

struct pending_send {
    struct raft_io_send *req;
    struct pending_send *next;
};

struct sio {
    struct sim_raft_io_config cfg;
    char listen[PT_ENV_ADDR_MAX];
    raft_id id;
    int meta_fd, log_fd, failed, closing, listening;
    /* durable state as loaded / last written */
    raft_term term;
    raft_id vote;
    uint64_t meta_seq;
    /* log: offsets of entries 1..n, end offset */
    uint64_t *offs;
    size_t n, cap;
    uint64_t end;
    struct raft_entry *loaded;
    size_t n_loaded;
    /* appends waiting for their fsync */
    struct pending_append *appends, **appends_tail;
    uint64_t append_seq;
    /* term/vote syncs outstanding; messages held until they complete */
    unsigned meta_syncs;
    struct held_msg *held, **held_tail;
    struct append_sync *syncs;
    /* send callbacks to run on the next turn */
    struct pending_send *sends;
    uint64_t send_timer, tick_timer, fatal_timer;
    unsigned tick_ms;
    raft_io_tick_cb tick;
    raft_io_recv_cb recv;
    struct raft_io *io;
};

static struct sio *sio_of(struct raft_io *io) { return io->impl; }

/* ---- fatal errors --------------------------------------------------------------------------- */

static void fatal_cb(void *ctx)
{
    struct sio *s = ctx;
    s->fatal_timer = 0;
    if (s->cfg.fatal) s->cfg.fatal(s->cfg.ctx, -PT_EIO);
}

static int fail(struct sio *s)
{
    if (!s->failed) {
        s->failed = 1;
        s->fatal_timer = pt_env_timer(s->cfg.env, 0, fatal_cb, s);
    }
    return RAFT_IOERR;
}

/* ---- meta ------------------------------------------------------------------------------------ */

static void flush_held(struct sio *s)
{
    while (s->held && s->meta_syncs == 0 && !s->failed) {
        struct held_msg *m = s->held;
        s->held = m->next;
        pt_env_send(s->cfg.env, m->to, m->buf, m->len);
        free(m->buf);
        free(m);
    }
    if (!s->held) s->held_tail = &s->held;
}

static void meta_synced(void *ctx, int status)
{
    struct sio *s = ctx;
    s->meta_syncs--;
    if (status) {
        fail(s);
        return;
    }
    flush_held(s);
}

static int meta_write(struct sio *s, raft_term term, raft_id vote)
{
    uint8_t slot[META_SLOT] = {0};
    uint64_t seq = s->meta_seq + 1;
    if (s->failed) return RAFT_IOERR;
    pt_put_le64(slot, seq);
    pt_put_le64(slot + 8, term);
    pt_put_le64(slot + 16, vote);
    pt_put_le32(slot + 24, petrel_crc32c(0, slot, 24));
    if (pt_env_pwrite(s->cfg.env, s->meta_fd, slot, sizeof(slot), (seq % 2) * META_SLOT) != 0)
        return fail(s);
    s->meta_seq = seq;
    s->term = term;
    s->vote = vote;
    s->meta_syncs++;
    pt_env_fsync(s->cfg.env, s->meta_fd, meta_synced, s);
    return 0;
}

static void meta_load(struct sio *s)
{
    uint8_t buf[2 * META_SLOT];
    int64_t n = pt_env_pread(s->cfg.env, s->meta_fd, buf, sizeof(buf), 0);
    int i;
    for (i = 0; i < 2 && n >= (i + 1) * META_SLOT; i++) {
        const uint8_t *p = buf + i * META_SLOT;
        uint64_t seq = pt_get_le64(p);
        if (pt_get_le32(p + 24) != petrel_crc32c(0, p, 24) || seq % 2 != (uint64_t)i) continue;
        if (seq > s->meta_seq) {
            s->meta_seq = seq;
            s->term = pt_get_le64(p + 8);
            s->vote = pt_get_le64(p + 16);
        }
    }
}

/* ---- log ------------------------------------------------------------------------------------- */

static void offs_push(struct sio *s, uint64_t off)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->offs = realloc(s->offs, s->cap * sizeof(*s->offs));
        if (!s->offs) abort();
    }
    s->offs[s->n++] = off;
}

static size_t padded(size_t len) { return (len + 7) & ~(size_t)7; }

/* Parse the log's longest valid prefix into s->loaded (raft_malloc'd for libraft). */
static int log_load(struct sio *s)
{
    int64_t size = pt_env_size(s->cfg.env, s->log_fd), got;
    uint8_t *file;
    uint64_t off = 0;
    size_t cap = 0;
    if (size < 0) return (int)size;
    file = malloc((size_t)size + 1);
    if (!file) return -PT_ENOMEM;
    got = pt_env_pread(s->cfg.env, s->log_fd, file, (size_t)size, 0);
    if (got != size) {
        free(file);
        return got < 0 ? (int)got : -PT_EIO;
    }
    while (off + REC_HEADER <= (uint64_t)size) {
        const uint8_t *h = file + off;
        uint32_t len = pt_get_le32(h + 8);
        struct raft_entry *e;
        if (pt_get_le32(h + 20) != petrel_crc32c(0, h, 20)) break;
        if (off + REC_HEADER + padded(len) > (uint64_t)size) break;
        if (pt_get_le32(h + 16) != petrel_crc32c(0, h + REC_HEADER, len)) break;
        if (s->n_loaded == cap) {
            cap = cap ? cap * 2 : 64;
            s->loaded = realloc(s->loaded, cap * sizeof(*s->loaded));
            if (!s->loaded) abort();
        }
        e = &s->loaded[s->n_loaded++];
        e->term = pt_get_le64(h);
        e->type = h[12];
        e->buf.len = len;
        e->buf.base = raft_malloc(len ? len : 1);
        if (!e->buf.base) abort();
        memcpy(e->buf.base, h + REC_HEADER, len);
        e->batch = e->buf.base;
        offs_push(s, off);
        off += REC_HEADER + padded(len);
    }
    free(file);
    s->end = off;
    /* Cut a torn or foreign tail now so that new records follow the valid prefix. */
    if (off < (uint64_t)size && pt_env_truncate(s->cfg.env, s->log_fd, off) != 0) return -PT_EIO;
    return 0;
}

static int log_write(struct sio *s, const struct raft_entry *e)
{
    size_t len = padded(e->buf.len);
    uint8_t *rec = calloc(1, REC_HEADER + len);
    int rc;
    if (!rec) return -PT_ENOMEM;
    pt_put_le64(rec, e->term);
    pt_put_le32(rec + 8, (uint32_t)e->buf.len);
    rec[12] = (uint8_t)e->type;
    /* libraft leaves a barrier's 8 bytes uninitialised (heap garbage): store zeros */
    if (e->buf.len && e->type != RAFT_BARRIER) memcpy(rec + REC_HEADER, e->buf.base, e->buf.len);
    pt_put_le32(rec + 16, petrel_crc32c(0, rec + REC_HEADER, e->buf.len));
    pt_put_le32(rec + 20, petrel_crc32c(0, rec, 20));
    rc = pt_env_pwrite(s->cfg.env, s->log_fd, rec, REC_HEADER + len, s->end);
    free(rec);
    if (rc) return rc;
    offs_push(s, s->end);
    s->end += REC_HEADER + len;
    return 0;
}

/* ---- raft_io methods ------------------------------------------------------------------------- */

static void on_message(void *ctx, const char *from, const uint8_t *msg, size_t len);

static int m_init(struct raft_io *io, raft_id id, const char *address)
{
    struct sio *s = sio_of(io);
    int rc;
    s->id = id;
    (void)address;
    s->meta_fd = pt_env_open(s->cfg.env, "meta", PT_ENV_RDWR | PT_ENV_CREAT);
    s->log_fd = pt_env_open(s->cfg.env, "log", PT_ENV_RDWR | PT_ENV_CREAT);
    if (s->meta_fd < 0 || s->log_fd < 0 || pt_env_fsync_dir(s->cfg.env, "") != 0) {
        snprintf(io->errmsg, sizeof(io->errmsg), "cannot open the raft files");
        return RAFT_IOERR;
    }
    meta_load(s);
    rc = log_load(s);
    if (getenv("PETREL_SIM_VERBOSE")) {
        size_t i;
        fprintf(stderr, "%8llu %s load: term %llu vote %llu, %zu entries:",
                (unsigned long long)pt_env_now(s->cfg.env), s->listen,
                (unsigned long long)s->term, (unsigned long long)s->vote, s->n_loaded);
        for (i = 0; i < s->n_loaded; i++)
            fprintf(stderr, " %llu/%u", (unsigned long long)s->loaded[i].term, s->loaded[i].type);
        fprintf(stderr, "\n");
    }
    if (rc != 0) {
        snprintf(io->errmsg, sizeof(io->errmsg), "cannot load the log: %s", petrel_strerror(rc));
        return RAFT_IOERR;
    }
    return 0;
}

static int m_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                  struct raft_snapshot **snapshot, raft_index *start_index,
                  struct raft_entry *entries[], size_t *n_entries)
{
    struct sio *s = sio_of(io);
    *term = s->term;
    *voted_for = s->vote;
    *snapshot = NULL;
    *start_index = 1;
    *entries = s->loaded;
    *n_entries = s->n_loaded;
    if (!s->n_loaded && s->loaded) {
        free(s->loaded);
        *entries = NULL;
    }
    s->loaded = NULL; /* libraft owns them now (raft_free of the array and each batch) */
    s->n_loaded = 0;
    return 0;
}

static void tick_fire(void *ctx)
{
    struct sio *s = ctx;
    s->tick_timer = pt_env_timer(s->cfg.env, s->tick_ms, tick_fire, s);
    s->tick(s->io);
}

static int m_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    struct sio *s = sio_of(io);
    s->tick_ms = msecs;
    s->tick = tick;
    s->recv = recv;
    if (!s->listening) {
        if (pt_env_listen(s->cfg.env, s->cfg.listen, on_message, io) != 0) return RAFT_IOERR;
        s->listening = 1;
    }
    s->tick_timer = pt_env_timer(s->cfg.env, msecs, tick_fire, s);
    return 0;
}

static int m_bootstrap(struct raft_io *io, const struct raft_configuration *conf)
{
    struct sio *s = sio_of(io);
    struct raft_entry e;
    int rc;
    if (s->term != 0 || s->n != 0) return RAFT_CANTBOOTSTRAP;
    memset(&e, 0, sizeof(e));
    e.term = 1;
    e.type = RAFT_CHANGE;
    if ((rc = raft_configuration_encode(conf, &e.buf)) != 0) return rc;
    rc = log_write(s, &e);
    if (rc) {
        raft_free(e.buf.base);
        return fail(s);
    }
    /* raft_start's load must see the bootstrapped entry */
    s->loaded = realloc(s->loaded, sizeof(*s->loaded));
    if (!s->loaded) abort();
    e.batch = e.buf.base;
    s->loaded[0] = e;
    s->n_loaded = 1;
    /* the entry is synced with the meta file below: nothing is sent before both */
    s->meta_syncs++;
    pt_env_fsync(s->cfg.env, s->log_fd, meta_synced, s);
    return meta_write(s, 1, 0);
}

static int m_recover(struct raft_io *io, const struct raft_configuration *conf)
{
    (void)io;
    (void)conf;
    return RAFT_NOTFOUND;
}

static int m_set_term(struct raft_io *io, raft_term term) { return meta_write(sio_of(io), term, 0); }

static int m_set_vote(struct raft_io *io, raft_id id)
{
    struct sio *s = sio_of(io);
    return meta_write(s, s->term, id);
}

/* -- messages -- */

static void enc_entries(struct pt_cursor *c, const struct raft_entry *e, unsigned n)
{
    unsigned i;
    pt_enc_u32(c, n);
    for (i = 0; i < n; i++) {
        pt_enc_u64(c, e[i].term);
        pt_enc_u8(c, (uint8_t)e[i].type);
        pt_enc_u32(c, (uint32_t)e[i].buf.len);
        if (e[i].type == RAFT_BARRIER) { /* uninitialised in libraft: send zeros */
            uint8_t *z = pt_cursor_take(c, e[i].buf.len);
            if (z) memset(z, 0, e[i].buf.len);
        } else {
            pt_enc_bytes(c, e[i].buf.base, e[i].buf.len);
        }
    }
}

static size_t msg_size(const struct raft_message *m)
{
    size_t n = MSG_HEADER + PT_ENV_ADDR_MAX + 64;
    unsigned i;
    if (m->type == RAFT_IO_APPEND_ENTRIES)
        for (i = 0; i < m->append_entries.n_entries; i++)
            n += 13 + m->append_entries.entries[i].buf.len;
    return n;
}

static int encode_message(struct sio *s, const struct raft_message *m, uint8_t **out, size_t *len)
{
    size_t cap = msg_size(m), alen = strlen(s->cfg.listen);
    uint8_t *buf = malloc(cap);
    struct pt_cursor c;
    if (!buf) return RAFT_NOMEM;
    pt_cursor_init(&c, buf, cap);
    pt_enc_u32(&c, 0);
    pt_enc_u8(&c, (uint8_t)m->type);
    pt_enc_u64(&c, s->id);
    pt_enc_u8(&c, (uint8_t)alen);
    pt_enc_bytes(&c, s->cfg.listen, alen);
    switch (m->type) {
    case RAFT_IO_REQUEST_VOTE:
        pt_enc_u64(&c, m->request_vote.term);
        pt_enc_u64(&c, m->request_vote.candidate_id);
        pt_enc_u64(&c, m->request_vote.last_log_index);
        pt_enc_u64(&c, m->request_vote.last_log_term);
        pt_enc_u8(&c, m->request_vote.disrupt_leader);
        pt_enc_u8(&c, m->request_vote.pre_vote);
        break;
    case RAFT_IO_REQUEST_VOTE_RESULT:
        pt_enc_u64(&c, m->request_vote_result.term);
        pt_enc_u8(&c, m->request_vote_result.vote_granted);
        pt_enc_u8(&c, (uint8_t)m->request_vote_result.pre_vote);
        break;
    case RAFT_IO_APPEND_ENTRIES:
        pt_enc_u64(&c, m->append_entries.term);
        pt_enc_u64(&c, m->append_entries.prev_log_index);
        pt_enc_u64(&c, m->append_entries.prev_log_term);
        pt_enc_u64(&c, m->append_entries.leader_commit);
        enc_entries(&c, m->append_entries.entries, m->append_entries.n_entries);
        break;
    case RAFT_IO_APPEND_ENTRIES_RESULT:
        pt_enc_u64(&c, m->append_entries_result.term);
        pt_enc_u64(&c, m->append_entries_result.rejected);
        pt_enc_u64(&c, m->append_entries_result.last_log_index);
        break;
    case RAFT_IO_TIMEOUT_NOW:
        pt_enc_u64(&c, m->timeout_now.term);
        pt_enc_u64(&c, m->timeout_now.last_log_index);
        pt_enc_u64(&c, m->timeout_now.last_log_term);
        break;
    default: /* install_snapshot: no snapshots here */
        free(buf);
        return RAFT_INVALID;
    }
    if (!pt_cursor_ok(&c)) {
        free(buf);
        return RAFT_NOMEM;
    }
    pt_put_le32(buf, petrel_crc32c(0, buf + 4, c.pos - 4));
    *out = buf;
    *len = c.pos;
    return 0;
}

static void sends_done(void *ctx)
{
    struct sio *s = ctx;
    s->send_timer = 0;
    while (s->sends) {
        struct pending_send *p = s->sends;
        s->sends = p->next;
        if (p->req->cb) p->req->cb(p->req, 0);
        free(p);
    }
}

static int m_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                  raft_io_send_cb cb)
{
    struct sio *s = sio_of(io);
    struct held_msg *h;
    struct pending_send *p;
    uint8_t *buf;
    size_t len;
    int rc;
    if (s->failed) return RAFT_IOERR;
    if ((rc = encode_message(s, m, &buf, &len)) != 0) return rc;
    h = calloc(1, sizeof(*h));
    p = calloc(1, sizeof(*p));
    if (!h || !p) abort();
    snprintf(h->to, sizeof(h->to), "%s", m->server_address);
    h->buf = buf;
    h->len = len;
    *s->held_tail = h;
    s->held_tail = &h->next;
    flush_held(s);
    req->cb = cb;
    p->req = req;
    p->next = s->sends;
    s->sends = p;
    if (!s->send_timer) s->send_timer = pt_env_timer(s->cfg.env, 0, sends_done, s);
    return 0;
}

static int dec_entries(struct pt_cursor *c, struct raft_entry **out, unsigned *n_out)
{
    uint32_t n = pt_dec_u32(c), i;
    size_t total = 0, start = c->pos, pos = 0;
    struct raft_entry *e;
    uint8_t *batch;
    /* first pass: validate and size */
    for (i = 0; i < n && pt_cursor_ok(c); i++) {
        uint32_t len;
        (void)pt_dec_u64(c);
        (void)pt_dec_u8(c);
        len = pt_dec_u32(c);
        if (!pt_cursor_take(c, len)) break;
        total += len;
    }
    if (!pt_cursor_ok(c) || n > 1u << 20) return -1;
    *n_out = n;
    *out = NULL;
    if (!n) return 0;
    e = raft_calloc(n, sizeof(*e));
    batch = raft_malloc(total ? total : 1);
    if (!e || !batch) abort();
    c->pos = start;
    for (i = 0; i < n; i++) {
        e[i].term = pt_dec_u64(c);
        e[i].type = pt_dec_u8(c);
        e[i].buf.len = pt_dec_u32(c);
        e[i].buf.base = batch + pos;
        pt_dec_bytes(c, batch + pos, e[i].buf.len);
        pos += e[i].buf.len;
        e[i].batch = batch;
    }
    *out = e;
    return 0;
}

static void on_message(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct raft_io *io = ctx;
    struct sio *s = sio_of(io);
    struct raft_message m;
    struct pt_cursor c;
    char addr[PT_ENV_ADDR_MAX];
    uint8_t alen;
    (void)from;
    if (s->closing || s->failed || !s->recv || len < MSG_HEADER) return;
    if (pt_get_le32(msg) != petrel_crc32c(0, msg + 4, len - 4)) return; /* corrupted */
    memset(&m, 0, sizeof(m));
    pt_cursor_init(&c, (uint8_t *)msg, len);
    (void)pt_dec_u32(&c);
    m.type = pt_dec_u8(&c);
    m.server_id = pt_dec_u64(&c);
    alen = pt_dec_u8(&c);
    if (alen >= sizeof(addr) || m.server_id == 0) return;
    pt_dec_bytes(&c, addr, alen);
    addr[alen] = 0;
    m.server_address = addr;
    switch (m.type) {
    case RAFT_IO_REQUEST_VOTE:
        m.request_vote.term = pt_dec_u64(&c);
        m.request_vote.candidate_id = pt_dec_u64(&c);
        m.request_vote.last_log_index = pt_dec_u64(&c);
        m.request_vote.last_log_term = pt_dec_u64(&c);
        m.request_vote.disrupt_leader = pt_dec_u8(&c) != 0;
        m.request_vote.pre_vote = pt_dec_u8(&c) != 0;
        break;
    case RAFT_IO_REQUEST_VOTE_RESULT:
        m.request_vote_result.term = pt_dec_u64(&c);
        m.request_vote_result.vote_granted = pt_dec_u8(&c) != 0;
        m.request_vote_result.pre_vote = (raft_tribool)pt_dec_u8(&c);
        break;
    case RAFT_IO_APPEND_ENTRIES:
        m.append_entries.term = pt_dec_u64(&c);
        m.append_entries.prev_log_index = pt_dec_u64(&c);
        m.append_entries.prev_log_term = pt_dec_u64(&c);
        m.append_entries.leader_commit = pt_dec_u64(&c);
        if (!pt_cursor_ok(&c) ||
            dec_entries(&c, &m.append_entries.entries, &m.append_entries.n_entries) != 0)
            return;
        break;
    case RAFT_IO_APPEND_ENTRIES_RESULT:
        m.append_entries_result.term = pt_dec_u64(&c);
        m.append_entries_result.rejected = pt_dec_u64(&c);
        m.append_entries_result.last_log_index = pt_dec_u64(&c);
        break;
    case RAFT_IO_TIMEOUT_NOW:
        m.timeout_now.term = pt_dec_u64(&c);
        m.timeout_now.last_log_index = pt_dec_u64(&c);
        m.timeout_now.last_log_term = pt_dec_u64(&c);
        break;
    default:
        return;
    }
    if (!pt_cursor_ok(&c) || pt_cursor_left(&c) != 0) {
        if (m.type == RAFT_IO_APPEND_ENTRIES && m.append_entries.n_entries) {
            raft_free(m.append_entries.entries[0].batch);
            raft_free(m.append_entries.entries);
        }
        return;
    }
    s->recv(io, &m);
}

/* -- appends -- */

struct append_sync {
    struct sio *s;
    uint64_t upto;
    struct append_sync *next; /* in s->syncs until it completes (a crash drops completions) */
};

static void sync_unlink(struct sio *s, struct append_sync *a)
{
    struct append_sync **pp = &s->syncs;
    while (*pp && *pp != a)
        pp = &(*pp)->next;
    if (*pp) *pp = a->next;
}

static void append_synced(void *ctx, int status)
{
    struct append_sync *a = ctx;
    struct sio *s = a->s;
    uint64_t upto = a->upto;
    sync_unlink(s, a);
    free(a);
    if (status) {
        fail(s);
        return;
    }
    if (s->failed) return;
    while (s->appends && s->appends->seq <= upto) {
        struct pending_append *p = s->appends;
        s->appends = p->next;
        if (!s->appends) s->appends_tail = &s->appends;
        p->req->cb(p->req, 0);
        free(p);
    }
}

static int m_append(struct raft_io *io, struct raft_io_append *req,
                    const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct sio *s = sio_of(io);
    struct pending_append *p;
    struct append_sync *a;
    unsigned i;
    if (s->failed) return RAFT_IOERR;
    if (getenv("PETREL_SIM_VERBOSE"))
        fprintf(stderr, "%8llu %s append %u at %zu (first term %llu type %u)\n",
                (unsigned long long)pt_env_now(s->cfg.env), s->listen, n, s->n + 1,
                (unsigned long long)entries[0].term, entries[0].type);
    for (i = 0; i < n; i++)
        if (log_write(s, &entries[i]) != 0) return fail(s);
    p = calloc(1, sizeof(*p));
    a = calloc(1, sizeof(*a));
    if (!p || !a) abort();
    req->cb = cb;
    p->req = req;
    p->seq = ++s->append_seq;
    *s->appends_tail = p;
    s->appends_tail = &p->next;
    a->s = s;
    a->upto = p->seq;
    a->next = s->syncs;
    s->syncs = a;
    pt_env_fsync(s->cfg.env, s->log_fd, append_synced, a);
    return 0;
}

static int m_truncate(struct raft_io *io, raft_index index)
{
    struct sio *s = sio_of(io);
    if (s->failed) return RAFT_IOERR;
    if (index < 1 || index > s->n + 1) return RAFT_INVALID;
    if (getenv("PETREL_SIM_VERBOSE"))
        fprintf(stderr, "%8llu %s truncate %llu (n %zu)\n", (unsigned long long)pt_env_now(s->cfg.env),
                s->listen, (unsigned long long)index, s->n);
    if (index == s->n + 1) return 0;
    if (pt_env_truncate(s->cfg.env, s->log_fd, s->offs[index - 1]) != 0) return fail(s);
    s->end = s->offs[index - 1];
    s->n = (size_t)index - 1;
    return 0;
}

static int m_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                          const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    (void)io;
    (void)trailing;
    (void)req;
    (void)snapshot;
    (void)cb;
    return RAFT_NOTFOUND;
}

static int m_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                          raft_io_snapshot_get_cb cb)
{
    (void)io;
    (void)req;
    (void)cb;
    return RAFT_NOTFOUND;
}

static raft_time m_time(struct raft_io *io) { return pt_env_now(sio_of(io)->cfg.env); }

static int m_random(struct raft_io *io, int min, int max)
{
    uint64_t r = pt_env_random(sio_of(io)->cfg.env);
    return max > min ? min + (int)(r % (uint64_t)(max - min)) : min;
}

static void m_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct sio *s = sio_of(io);
    struct pending_send *ps;
    s->closing = 1;
    if (s->tick_timer) pt_env_cancel(s->cfg.env, s->tick_timer);
    if (s->send_timer) pt_env_cancel(s->cfg.env, s->send_timer);
    if (s->fatal_timer) pt_env_cancel(s->cfg.env, s->fatal_timer);
    s->tick_timer = s->send_timer = s->fatal_timer = 0;
    /*
     * Appends still waiting for their fsync die with the process: their callbacks never run
     * (calling them canceled from inside raft_close crashes libraft 0.15, which has already
     * failed their requests); libraft frees its log in the close callback below.
     */
    while (s->appends) {
        struct pending_append *p = s->appends;
        s->appends = p->next;
        free(p);
    }
    s->appends_tail = &s->appends;
    while ((ps = s->sends) != NULL) {
        s->sends = ps->next;
        if (ps->req->cb) ps->req->cb(ps->req, RAFT_CANCELED);
        free(ps);
    }
    s->failed = 1; /* late fsync completions (clean close) must not report anything */
    if (cb) cb(io);
}

int sim_raft_io_init(struct raft_io *io, const struct sim_raft_io_config *cfg)
{
    struct sio *s = calloc(1, sizeof(*s));
    if (!s) return -PT_ENOMEM;
    memset(io, 0, sizeof(*io));
    s->cfg = *cfg;
    snprintf(s->listen, sizeof(s->listen), "%s", cfg->listen);
    s->cfg.listen = s->listen;
    s->meta_fd = s->log_fd = -1;
    s->appends_tail = &s->appends;
    s->held_tail = &s->held;
    io->version = 1;
    io->impl = s;
    s->io = io;
    io->init = m_init;
    io->close = m_close;
    io->load = m_load;
    io->start = m_start;
    io->bootstrap = m_bootstrap;
    io->recover = m_recover;
    io->set_term = m_set_term;
    io->set_vote = m_set_vote;
    io->send = m_send;
    io->append = m_append;
    io->truncate = m_truncate;
    io->snapshot_put = m_snapshot_put;
    io->snapshot_get = m_snapshot_get;
    io->time = m_time;
    io->random = m_random;
    return 0;
}

void sim_raft_io_free(struct raft_io *io)
{
    struct sio *s = sio_of(io);
    size_t i;
    if (!s) return;
    while (s->held) {
        struct held_msg *m = s->held;
        s->held = m->next;
        free(m->buf);
        free(m);
    }
    while (s->syncs) {
        struct append_sync *a = s->syncs;
        s->syncs = a->next;
        free(a);
    }
    for (i = 0; i < s->n_loaded; i++)
        raft_free(s->loaded[i].buf.base);
    free(s->loaded);
    /* fsync contexts of a crashed process never come back: their events died with it */
    if (s->meta_fd >= 0) pt_env_close(s->cfg.env, s->meta_fd);
    if (s->log_fd >= 0) pt_env_close(s->cfg.env, s->log_fd);
    free(s->offs);
    free(s);
    io->impl = NULL;
}
