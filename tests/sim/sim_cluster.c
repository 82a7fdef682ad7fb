/*
 * The simulated cluster (see sim_cluster.h): replicas, a minimal shard service on the replica
 * core, clients with retries and redirection, and the checker.
 *
 * The shard service here is the sim's own front end (production's is shard_server.c on frames):
 * a request message is [u32 crc32c of the rest][u64 request id][encoded shard request], a
 * reply [u32 crc][u64 request id][i32 status][u8 leader id hint][u64 log index][body]. The
 * CRC stands for what TCP and the frame layer give production (no silently corrupted request);
 * a server drops a request id it has already seen from the same client (TCP delivers once),
 * so only a client's own retries can repeat a request.
 *
 * The checker keeps, per shard, the committed history H (entry and reply checksums by log
 * index, filled by the first replica to apply each index) and a model fed by H: every
 * directory name's file at every index, every file's bytes. It checks, as the run goes:
 *  - every replica applies the same entry and produces the same replies at each index, each
 *    replica in index order (state machine safety, determinism);
 *  - H is consistent with the model: a link succeeds only on a free name, unlink and rename
 *    name the file the model has there (no name points at two files);
 *  - every read the client accepts matches the model at some index inside its real-time
 *    window [largest index acknowledged to anyone before the read began, largest index
 *    committed when the reply arrived] (linearizable reads);
 *  - a file read through a name returns exactly the bytes its writer added, all of them (no
 *    byte never written, no half-written file visible);
 * and at the end, after healing: every acknowledged write is in H with success exactly where
 * the model says; every definitively failed write is not; every replica converged and its
 * store answers like the model.
 */
#include "sim_cluster.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/proto/shard_msgs.h"
#include "cluster/replica/replica.h"
#include "cluster/shard/shard_fsm.h"
#include "cluster/shard/shard_sm.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "cluster/replica/raft_io.h"
#include "cluster/replica/raft_io_impl.h"

#define MAX_SHARDS 4
#define MAX_CLIENTS 8
#define NAMES 6
#define ATTEMPT_MS 700
#define MAX_ATTEMPTS 40
#define SEEN_MAX 64
#define REQ_MAX (PT_INLINE_MAX + 512)
#define REPLY_MAX (PT_SHARD_MSG_MAX + 64)

struct sim_cluster;

/* ---- model ------------------------------------------------------------------------------------ */

struct hist_entry {
    uint64_t entry_sum, reply_sum;
    int set;
};

struct version {
    uint64_t index;
    uint64_t names[NAMES];
};

struct mfile {
    uint64_t id, cookie;
    uint8_t state;
    uint8_t *data;
    size_t len;
};

struct keyset {
    uint64_t *k;
    size_t n, cap;
};

struct shard_model {
    uint64_t dir;
    struct hist_entry *hist;
    size_t hist_cap;
    uint64_t committed; /* highest index applied anywhere */
    struct version *ver;
    size_t n_ver, ver_cap;
    uint64_t cur[NAMES];
    uint64_t acked_max;
    struct keyset ok_keys; /* requests that succeeded in H */
};

/* ---- nodes -------------------------------------------------------------------------------------- */

/* One incarnation of a replica process: everything that dies with it. */
struct inc {
    struct node *n;
    struct pt_env *env;
    struct raft_io io;
    int io_ready, dead;
    struct pt_replica *rep;
    struct pt_shard_sm sm;
    int sm_open;
    struct pt_shard_fsm fsm;
    struct raft_fsm wrap;
    uint64_t applied; /* last index applied by this incarnation */
    uint64_t watch_timer;
    char seen_from[SEEN_MAX][8];
    uint64_t seen_id[SEEN_MAX];
    unsigned seen_next;
};

struct node {
    struct sim_cluster *c;
    unsigned shard, rid; /* rid: 0-based */
    struct sim_proc *proc;
    char addr[PT_ENV_ADDR_MAX], raft_addr[PT_ENV_ADDR_MAX], dir[512];
    struct inc *cur; /* the live incarnation (NULL while down or starting failed) */
    unsigned incarnations;
};

enum op_kind { OP_WRITE, OP_LOOKUP, OP_READDIR, OP_READ, OP_RENAME, OP_UNLINK, OP_MKDIR, OP_KINDS };

struct client {
    struct sim_cluster *c;
    unsigned idx;
    struct sim_proc *proc;
    struct pt_env *env;
    char addr[PT_ENV_ADDR_MAX];
    int busy, kind, stage;
    unsigned shard, name, name2;
    uint64_t file_id, cookie;
    uint8_t data[2][64];
    size_t dlen[2];
    unsigned nspans, span;
    uint64_t req_id;
    uint8_t req[REQ_MAX];
    size_t req_len;
    int is_write;
    unsigned target[MAX_SHARDS];
    unsigned attempts;
    int indeterminate;
    uint64_t timer, op_lo, seq;
};

struct sim_cluster {
    struct sim_cluster_config cfg;
    struct sim *sim;
    struct node nodes[MAX_SHARDS][PT_REPLICA_MAX];
    struct client clients[MAX_CLIENTS];
    struct shard_model model[MAX_SHARDS];
    struct mfile *files;
    size_t n_files, files_cap;
    struct keyset acked_keys[MAX_SHARDS], failed_keys[MAX_SHARDS];
    int stop_clients, violated;
    struct sim_cluster_result *res;
    uint8_t reply[REPLY_MAX];
};

static void violate(struct sim_cluster *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violate(struct sim_cluster *c, const char *fmt, ...)
{
    va_list ap;
    if (c->violated) return;
    c->violated = 1;
    va_start(ap, fmt);
    vsnprintf(c->res->violation, sizeof(c->res->violation), fmt, ap);
    va_end(ap);
}

static uint64_t sum64(const void *buf, size_t len)
{
    return ((uint64_t)petrel_crc32c(0, buf, len) << 32) ^ (uint64_t)len ^
           ((uint64_t)petrel_crc32c(0x9e3779b9u, buf, len) << 8);
}

static void keyset_add(struct keyset *s, uint64_t k)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->k = realloc(s->k, s->cap * sizeof(*s->k));
        if (!s->k) abort();
    }
    s->k[s->n++] = k;
}

static int keyset_has(const struct keyset *s, uint64_t k)
{
    size_t i;
    for (i = 0; i < s->n; i++)
        if (s->k[i] == k) return 1;
    return 0;
}

static struct mfile *file_find(struct sim_cluster *c, uint64_t id)
{
    size_t i;
    for (i = c->n_files; i-- > 0;)
        if (c->files[i].id == id) return &c->files[i];
    return NULL;
}

static struct mfile *file_add(struct sim_cluster *c, uint64_t id, uint64_t cookie)
{
    struct mfile *f;
    if (c->n_files == c->files_cap) {
        c->files_cap = c->files_cap ? c->files_cap * 2 : 256;
        c->files = realloc(c->files, c->files_cap * sizeof(*c->files));
        if (!c->files) abort();
    }
    f = &c->files[c->n_files++];
    memset(f, 0, sizeof(*f));
    f->id = id;
    f->cookie = cookie;
    f->state = PT_FILE_TRANSIENT;
    return f;
}

static int name_index(const char *name, size_t len)
{
    if (len != 2 || name[0] != 'n' || name[1] < '0' || name[1] >= '0' + NAMES) return -1;
    return name[1] - '0';
}

static void version_push(struct shard_model *m, uint64_t index)
{
    if (m->n_ver && m->ver[m->n_ver - 1].index == index) {
        memcpy(m->ver[m->n_ver - 1].names, m->cur, sizeof(m->cur));
        return;
    }
    if (m->n_ver == m->ver_cap) {
        m->ver_cap = m->ver_cap ? m->ver_cap * 2 : 256;
        m->ver = realloc(m->ver, m->ver_cap * sizeof(*m->ver));
        if (!m->ver) abort();
    }
    m->ver[m->n_ver].index = index;
    memcpy(m->ver[m->n_ver].names, m->cur, sizeof(m->cur));
    m->n_ver++;
}

/* One committed request and its reply, first time seen: feed the model, check consistency. */
static void model_apply_one(struct sim_cluster *c, unsigned shard, uint64_t index,
                            const uint8_t *req, size_t len, const uint8_t *reply, size_t rlen)
{
    struct shard_model *m = &c->model[shard];
    struct pt_shard_req q;
    struct pt_cursor body;
    int st = pt_shard_reply_open(reply, rlen, &body), ni, n2;
    struct mfile *f;
    if (pt_shard_req_decode(&q, req, len) != 0) return;
    if (st == 0) keyset_add(&m->ok_keys, sum64(req, len));
    if (q.op == PT_SHARD_MAKE_DIR) return;
    ni = name_index(q.name, q.name_len);
    n2 = name_index(q.name2, q.name2_len);
    switch (q.op) {
    case PT_SHARD_CONSTRUCT_FILE:
        if (st == 0) file_add(c, pt_dec_u64(&body), q.cookie);
        break;
    case PT_SHARD_ADD_INLINE:
        if (st != 0) break;
        f = file_find(c, q.id);
        if (!f) {
            violate(c, "shard %u index %llu: ADD_INLINE succeeded on unknown file %llx", shard,
                    (unsigned long long)index, (unsigned long long)q.id);
            break;
        }
        if (q.offset == f->len) {
            f->data = realloc(f->data, f->len + q.data_len);
            if (!f->data) abort();
            memcpy(f->data + f->len, q.data_ptr, q.data_len);
            f->len += q.data_len;
        } else if (q.offset + q.data_len != f->len) {
            violate(c, "shard %u index %llu: ADD_INLINE at %llu succeeded on a file of %zu bytes",
                    shard, (unsigned long long)index, (unsigned long long)q.offset, f->len);
        }
        break;
    case PT_SHARD_LINK_FILE:
        if (ni < 0 || q.target != m->dir) break;
        f = file_find(c, q.id);
        if (st == 0) {
            if (m->cur[ni] && m->cur[ni] != q.id)
                violate(c, "shard %u index %llu: link of %llx as n%d while it names %llx (a name "
                           "pointing at two files)",
                        shard, (unsigned long long)index, (unsigned long long)q.id, ni,
                        (unsigned long long)m->cur[ni]);
            if (!f) {
                violate(c, "shard %u index %llu: link of unknown file %llx", shard,
                        (unsigned long long)index, (unsigned long long)q.id);
                break;
            }
            if (m->cur[ni] != q.id && f->state != PT_FILE_TRANSIENT)
                violate(c, "shard %u index %llu: file %llx linked twice", shard,
                        (unsigned long long)index, (unsigned long long)q.id);
            f->state = PT_FILE_LINKED;
            m->cur[ni] = q.id;
        } else if (st == -PT_EEXIST && !m->cur[ni]) {
            violate(c, "shard %u index %llu: link refused with EEXIST on free name n%d", shard,
                    (unsigned long long)index, ni);
        }
        break;
    case PT_SHARD_UNLINK:
        if (ni < 0 || q.id != m->dir) break;
        if (st == 0) {
            uint64_t gone = pt_dec_u64(&body);
            if (gone != m->cur[ni] || !gone)
                violate(c, "shard %u index %llu: unlink of n%d removed %llx, model has %llx", shard,
                        (unsigned long long)index, ni, (unsigned long long)gone,
                        (unsigned long long)m->cur[ni]);
            if ((f = file_find(c, gone)) != NULL) f->state = PT_FILE_UNLINKED;
            m->cur[ni] = 0;
        } else if (st == -PT_ENOENT && m->cur[ni]) {
            violate(c, "shard %u index %llu: unlink of n%d said ENOENT, model has %llx", shard,
                    (unsigned long long)index, ni, (unsigned long long)m->cur[ni]);
        }
        break;
    case PT_SHARD_RENAME:
        if (ni < 0 || n2 < 0 || q.id != m->dir) break;
        if (st == 0) {
            uint64_t replaced = pt_dec_u64(&body);
            if (!m->cur[ni]) {
                violate(c, "shard %u index %llu: rename of absent n%d succeeded", shard,
                        (unsigned long long)index, ni);
                break;
            }
            if (ni == n2 || m->cur[ni] == m->cur[n2]) break;
            if (replaced != m->cur[n2])
                violate(c, "shard %u index %llu: rename n%d->n%d replaced %llx, model has %llx",
                        shard, (unsigned long long)index, ni, n2, (unsigned long long)replaced,
                        (unsigned long long)m->cur[n2]);
            if (m->cur[n2] && (f = file_find(c, m->cur[n2])) != NULL) f->state = PT_FILE_UNLINKED;
            m->cur[n2] = m->cur[ni];
            m->cur[ni] = 0;
        } else if (st == -PT_ENOENT && m->cur[ni]) {
            violate(c, "shard %u index %llu: rename of present n%d said ENOENT", shard,
                    (unsigned long long)index, ni);
        }
        break;
    default:
        break;
    }
}

static void model_apply_entry(struct sim_cluster *c, unsigned shard, uint64_t index,
                              const uint8_t *entry, size_t len, const struct pt_shard_apply_out *out)
{
    struct pt_cursor cur;
    uint16_t count, i;
    if (len < PT_SHARD_ENTRY_HEADER || entry[0] != PT_SHARD_ENTRY_VERSION) return;
    count = pt_get_le16(entry + 2);
    pt_cursor_init(&cur, (void *)(entry + PT_SHARD_ENTRY_HEADER), len - PT_SHARD_ENTRY_HEADER);
    for (i = 0; i < count && i < out->count; i++) {
        uint32_t n = pt_dec_u32(&cur);
        const uint8_t *req = pt_cursor_take(&cur, n);
        if (!req) break;
        model_apply_one(c, shard, index, req, n, out->reply[i], out->len[i]);
    }
    version_push(&c->model[shard], index);
}

/* ---- the FSM seen by the checker: the real one, wrapped ---------------------------------------- */

static int wrap_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct inc *in = fsm->data;
    struct node *n = in->n;
    struct sim_cluster *c = n->c;
    struct shard_model *m = &c->model[n->shard];
    struct raft *raft = in->io.data;
    struct pt_shard_apply_out *out;
    uint64_t index = raft->last_applied + 1, rsum = 0;
    uint16_t i;
    int rc;
    *result = NULL;
    if (in->dead) return RAFT_IOERR; /* a crashed incarnation's store is gone */
    rc = in->fsm.fsm.apply(&in->fsm.fsm, buf, result);
    if (rc) return rc;
    out = *result;
    if (index <= in->applied)
        violate(c, "s%ur%u applied index %llu after %llu", n->shard, n->rid,
                (unsigned long long)index, (unsigned long long)in->applied);
    in->applied = index;
    for (i = 0; out && i < out->count; i++)
        rsum ^= sum64(out->reply[i], out->len[i]) * (i + 1u);
    if (index >= m->hist_cap) {
        size_t old = m->hist_cap;
        m->hist_cap = m->hist_cap ? m->hist_cap * 2 : 1024;
        while (m->hist_cap <= index)
            m->hist_cap *= 2;
        m->hist = realloc(m->hist, m->hist_cap * sizeof(*m->hist));
        if (!m->hist) abort();
        memset(m->hist + old, 0, (m->hist_cap - old) * sizeof(*m->hist));
    }
    if (c->cfg.verbose)
        fprintf(stderr, "%8llu s%ur%u apply %llu sum %016llx term %llu len %zu count %u time %llu\n",
                (unsigned long long)sim_now(c->sim), n->shard, n->rid, (unsigned long long)index,
                (unsigned long long)sum64(buf->base, buf->len),
                (unsigned long long)raft->current_term, buf->len,
                buf->len >= 12 ? pt_get_le16((const uint8_t *)buf->base + 2) : 0,
                buf->len >= 12 ? (unsigned long long)pt_get_le64((const uint8_t *)buf->base + 4) : 0ull);
    if (m->hist[index].set) {
        if (m->hist[index].entry_sum != sum64(buf->base, buf->len))
            violate(c, "shard %u index %llu: replica r%u applied a different entry than another "
                       "replica (a committed entry was lost or replaced)",
                    n->shard, (unsigned long long)index, n->rid);
        else if (m->hist[index].reply_sum != rsum)
            violate(c, "shard %u index %llu: replica r%u's replies differ from another replica's",
                    n->shard, (unsigned long long)index, n->rid);
        return 0;
    }
    if (index != m->committed + 1 && m->committed + 1 < index) {
        uint64_t j;
        for (j = m->committed + 1; j < index; j++)
            if (!m->hist[j].set) m->hist[j].set = 2; /* barriers / config: no FSM call */
    }
    m->hist[index].set = 1;
    m->hist[index].entry_sum = sum64(buf->base, buf->len);
    m->hist[index].reply_sum = rsum;
    if (index > m->committed) m->committed = index;
    if (out) model_apply_entry(c, n->shard, index, buf->base, buf->len, out);
    return 0;
}

static int wrap_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct inc *in = fsm->data;
    if (in->dead) return RAFT_IOERR;
    return in->fsm.fsm.snapshot(&in->fsm.fsm, bufs, n_bufs);
}

static int wrap_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                  unsigned *n_bufs)
{
    struct inc *in = fsm->data;
    return in->fsm.fsm.snapshot_finalize(&in->fsm.fsm, bufs, n_bufs);
}

static int wrap_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct inc *in = fsm->data;
    struct raft *raft = in->io.data;
    int rc;
    if (in->dead) return RAFT_IOERR;
    rc = in->fsm.fsm.restore(&in->fsm.fsm, buf);
    /* the store now holds everything up to the snapshot: applies go on from there */
    if (rc == 0 && raft) in->applied = 0;
    return rc;
}

/* ---- the shard front end on a node -------------------------------------------------------------- */

struct op_ctx {
    struct inc *in;
    char to[PT_ENV_ADDR_MAX];
    uint64_t req_id;
    uint8_t req[REQ_MAX];
    size_t len;
};

static void send_reply(struct inc *in, const char *to, uint64_t req_id, int status,
                       uint64_t index, const uint8_t *body, size_t blen)
{
    uint8_t *buf = in->n->c->reply;
    unsigned hint = in->rep && !in->dead ? pt_replica_leader(in->rep) : 0;
    if (blen > REPLY_MAX - 32) blen = 0;
    pt_put_le64(buf + 4, req_id);
    pt_put_le32(buf + 12, (uint32_t)status);
    buf[16] = (uint8_t)hint;
    pt_put_le64(buf + 17, index);
    if (blen) memmove(buf + 25, body, blen);
    pt_put_le32(buf, petrel_crc32c(0, buf + 4, 21 + blen));
    pt_env_send(in->env, to, buf, 25 + blen);
}

static void write_done(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct op_ctx *o = ctx;
    struct inc *in = o->in;
    if (status == 0) {
        struct pt_cursor body;
        int st = pt_shard_reply_open(reply, len, &body);
        send_reply(in, o->to, o->req_id, st, pt_replica_applying_index(in->rep), body.buf,
                   st ? 0 : body.len);
    } else {
        send_reply(in, o->to, o->req_id, status, 0, NULL, 0);
    }
    free(o);
}

static void read_ready(void *ctx, int status)
{
    struct op_ctx *o = ctx;
    struct inc *in = o->in;
    uint8_t *out = in->n->c->reply + 64;
    size_t rl = 0;
    if (status == 0 && !in->dead) {
        int rc = pt_shard_sm_query(&in->sm, o->req, o->len, out, REPLY_MAX - 128, &rl);
        struct pt_cursor body;
        int st = rc ? rc : pt_shard_reply_open(out, rl, &body);
        send_reply(in, o->to, o->req_id, st, 0, st ? NULL : body.buf, st ? 0 : body.len);
    } else {
        send_reply(in, o->to, o->req_id, status ? status : -PT_ECANCELED, 0, NULL, 0);
    }
    free(o);
}

static void on_client_msg(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct inc *in = ctx;
    struct pt_shard_req q;
    struct op_ctx *o;
    uint64_t req_id;
    unsigned i;
    int rc;
    if (in->dead || !in->rep || len < 12 || len - 12 > REQ_MAX || !from[0] || strlen(from) >= 8)
        return;
    if (pt_get_le32(msg) != petrel_crc32c(0, msg + 4, len - 4)) return;
    req_id = pt_get_le64(msg + 4);
    for (i = 0; i < SEEN_MAX; i++)
        if (in->seen_id[i] == req_id && strcmp(in->seen_from[i], from) == 0) return;
    in->seen_id[in->seen_next] = req_id;
    snprintf(in->seen_from[in->seen_next], sizeof(in->seen_from[0]), "%s", from);
    in->seen_next = (in->seen_next + 1) % SEEN_MAX;
    if (pt_shard_req_decode(&q, msg + 12, len - 12) != 0) {
        send_reply(in, from, req_id, -PT_EPROTO, 0, NULL, 0);
        return;
    }
    o = calloc(1, sizeof(*o));
    if (!o) abort();
    o->in = in;
    snprintf(o->to, sizeof(o->to), "%s", from);
    o->req_id = req_id;
    memcpy(o->req, msg + 12, len - 12);
    o->len = len - 12;
    if (pt_shard_op_is_write(q.op))
        rc = pt_replica_propose(in->rep, o->req, o->len, write_done, o);
    else
        rc = pt_replica_read(in->rep, read_ready, o);
    if (rc) {
        send_reply(in, from, req_id, rc, 0, NULL, 0);
        free(o);
    }
}

/* ---- node lifecycle ------------------------------------------------------------------------------ */

static int resolve_peer(void *ctx, raft_id id, char *buf, size_t cap)
{
    struct inc *in = ctx;
    if (id < 1 || id > in->n->c->cfg.replicas) return -PT_EINVAL;
    snprintf(buf, cap, "s%ur%u/raft", in->n->shard, (unsigned)id - 1);
    return 0;
}

static void inc_free(struct inc *in)
{
    if (in->io_ready) pt_raft_io_free(&in->io);
    if (in->sm_open) pt_shard_sm_close(&in->sm);
    free(in);
}

static void inc_closed(void *ctx)
{
    inc_free(ctx);
}

/* The process crashed (its disk already lost what was not durable): the incarnation is dead;
 * its replica closes on the dead env (calls fail, sends vanish) and frees itself. */
static void node_stop(void *ctx)
{
    struct node *n = ctx;
    struct inc *in = n->cur;
    if (!in) return;
    if (n->c->cfg.verbose)
        fprintf(stderr, "%8llu s%ur%u crash\n", (unsigned long long)sim_now(n->c->sim), n->shard,
                n->rid);
    n->cur = NULL;
    in->dead = 1;
    if (in->watch_timer) pt_env_cancel(in->env, in->watch_timer);
    if (in->sm_open) { /* the derived store goes at once: the next start wipes it */
        pt_shard_sm_close(&in->sm);
        in->sm_open = 0;
    }
    if (in->rep)
        pt_replica_close(in->rep, inc_closed, in);
    else
        inc_free(in);
}

/* A supervisor: a replica whose Raft storage failed (an fsync or write error) is restarted
 * from its disk, never left running on pages the kernel may have dropped. */
static void node_watch(void *ctx)
{
    struct inc *in = ctx;
    struct pt_raft_io_impl *impl = in->io.impl;
    in->watch_timer = 0;
    if (in->dead) return;
    if (impl && impl->failed) {
        struct node *n = in->n;
        sim_proc_crash(n->proc);
        sim_proc_restart_later(n->proc, 100 + sim_below(n->c->sim, 1000));
        return;
    }
    in->watch_timer = pt_env_timer(in->env, 200, node_watch, in);
}

static void node_start(void *ctx);

static void node_retry(void *ctx)
{
    struct node *n = ctx;
    if (!n->cur && sim_proc_up(n->proc)) node_start(n);
}

static void node_start(void *ctx)
{
    struct node *n = ctx;
    struct sim_cluster *c = n->c;
    struct pt_raft_io_config iocfg;
    struct pt_replica_config rcfg;
    char addrs[PT_REPLICA_MAX][PT_ENV_ADDR_MAX], err[256];
    struct inc *in = calloc(1, sizeof(*in));
    unsigned i;
    int rc;
    if (!in) abort();
    in->n = n;
    in->env = sim_proc_env(n->proc);
    n->incarnations++;
    if (pt_shard_sm_open(&in->sm, n->dir, n->shard, 1) != 0) {
        violate(c, "s%ur%u: cannot open LMDB in %s", n->shard, n->rid, n->dir);
        free(in);
        return;
    }
    in->sm_open = 1;
    pt_shard_fsm_init(&in->fsm, &in->sm);
    in->wrap.version = 2;
    in->wrap.data = in;
    in->wrap.apply = wrap_apply;
    in->wrap.snapshot = wrap_snapshot;
    in->wrap.snapshot_finalize = wrap_snapshot_finalize;
    in->wrap.restore = wrap_restore;
    memset(&iocfg, 0, sizeof(iocfg));
    iocfg.env = in->env;
    iocfg.cluster_id = 0x5153494d50455452ull;
    iocfg.group = PT_RAFT_GROUP(1, n->shard);
    iocfg.replicas = c->cfg.replicas;
    iocfg.listen = n->raft_addr;
    iocfg.resolve = resolve_peer;
    iocfg.resolve_ctx = in;
    rc = pt_raft_io_init(&in->io, &iocfg, err, sizeof(err));
    if (rc == -PT_ECORRUPT || rc == -PT_EVERSION) {
        violate(c, "s%ur%u: Raft data refused at start-up: %s", n->shard, n->rid, err);
        inc_free(in);
        return;
    }
    if (rc == 0) {
        in->io_ready = 1;
        memset(&rcfg, 0, sizeof(rcfg));
        rcfg.env = in->env;
        rcfg.io = &in->io;
        rcfg.fsm = &in->wrap;
        rcfg.id = n->rid + 1;
        rcfg.replicas = c->cfg.replicas;
        for (i = 0; i < c->cfg.replicas; i++) {
            snprintf(addrs[i], sizeof(addrs[i]), "s%ur%u/raft", n->shard, i);
            rcfg.addresses[i] = addrs[i];
        }
        rcfg.election_timeout_ms = 1000;
        rcfg.heartbeat_timeout_ms = 100;
        rcfg.snapshot_entries = c->cfg.snapshot_entries;
        rc = pt_replica_start(&in->rep, &rcfg);
    }
    if (rc) {
        /* an injected EIO while loading or bootstrapping: a supervisor tries again */
        in->dead = 1;
        if (in->rep)
            pt_replica_close(in->rep, inc_closed, in);
        else
            inc_free(in);
        pt_env_timer(sim_proc_env(n->proc), 200, node_retry, n);
        return;
    }
    n->cur = in;
    if (c->cfg.verbose) {
        struct raft *raft = pt_replica_raft(in->rep);
        fprintf(stderr, "%8llu s%ur%u start: term %llu vote %llu last index %llu\n",
                (unsigned long long)sim_now(c->sim), n->shard, n->rid,
                (unsigned long long)raft->current_term, (unsigned long long)raft->voted_for,
                (unsigned long long)raft_last_index(raft));
    }
    pt_env_listen(in->env, n->addr, on_client_msg, in);
    in->watch_timer = pt_env_timer(in->env, 200, node_watch, in);
}

/* ---- clients ------------------------------------------------------------------------------------- */

static void client_next(void *ctx);
static void client_send(struct client *cl);

static int encode_req(struct client *cl, struct pt_shard_req *q)
{
    int len = pt_shard_req_encode(q, cl->req, sizeof(cl->req));
    if (len < 0) return len;
    cl->req_len = (size_t)len;
    cl->is_write = pt_shard_op_is_write(q->op);
    cl->attempts = 0;
    cl->indeterminate = 0;
    return 0;
}

static void set_name(char *dst, uint8_t *len, unsigned idx)
{
    dst[0] = 'n';
    dst[1] = (char)('0' + idx);
    dst[2] = 0;
    *len = 2;
}

/* Build the request for the client's current stage. */
static void client_stage_req(struct client *cl)
{
    struct sim_cluster *c = cl->c;
    struct pt_shard_req q;
    memset(&q, 0, sizeof(q));
    switch (cl->kind) {
    case OP_MKDIR:
        q.op = PT_SHARD_MAKE_DIR;
        q.txn = 1000 + cl->shard;
        q.target = PT_INODE_ROOT;
        break;
    case OP_WRITE:
        if (cl->stage == 0) {
            q.op = PT_SHARD_CONSTRUCT_FILE;
            q.cookie = cl->cookie;
        } else if (cl->stage <= (int)cl->nspans) {
            unsigned s = (unsigned)cl->stage - 1;
            q.op = PT_SHARD_ADD_INLINE;
            q.id = cl->file_id;
            q.cookie = cl->cookie;
            q.offset = s ? cl->dlen[0] : 0;
            q.size = (uint32_t)cl->dlen[s];
            q.crc = petrel_crc32c(0, cl->data[s], cl->dlen[s]);
            q.data_ptr = cl->data[s];
            q.data_len = (uint32_t)cl->dlen[s];
        } else {
            q.op = PT_SHARD_LINK_FILE;
            q.id = cl->file_id;
            q.cookie = cl->cookie;
            q.target = c->model[cl->shard].dir;
            set_name(q.name, &q.name_len, cl->name);
        }
        break;
    case OP_LOOKUP:
        q.op = PT_SHARD_LOOKUP;
        q.id = c->model[cl->shard].dir;
        set_name(q.name, &q.name_len, cl->name);
        break;
    case OP_READ:
        if (cl->stage == 0) {
            q.op = PT_SHARD_LOOKUP;
            q.id = c->model[cl->shard].dir;
            set_name(q.name, &q.name_len, cl->name);
        } else if (cl->stage == 1) {
            q.op = PT_SHARD_STAT;
            q.id = cl->file_id;
        } else {
            q.op = PT_SHARD_SPANS;
            q.id = cl->file_id;
            q.max = 16;
        }
        break;
    case OP_READDIR:
        q.op = PT_SHARD_READDIR;
        q.id = c->model[cl->shard].dir;
        break;
    case OP_RENAME:
        q.op = PT_SHARD_RENAME;
        q.id = c->model[cl->shard].dir;
        set_name(q.name, &q.name_len, cl->name);
        set_name(q.name2, &q.name2_len, cl->name2);
        break;
    case OP_UNLINK:
        q.op = PT_SHARD_UNLINK;
        q.id = c->model[cl->shard].dir;
        set_name(q.name, &q.name_len, cl->name);
        break;
    }
    if (encode_req(cl, &q) != 0) abort();
}

static void client_done(struct client *cl, int outcome)
{
    struct sim_cluster *c = cl->c;
    c->res->ops_done++;
    if (outcome > 0) c->res->ops_acked++;
    else if (outcome == 0) c->res->ops_failed++;
    else c->res->ops_unknown++;
    cl->busy = 0;
    if (!c->stop_clients) pt_env_timer(cl->env, sim_below(c->sim, 40), client_next, cl);
}

static void attempt_timeout(void *ctx)
{
    struct client *cl = ctx;
    cl->timer = 0;
    if (cl->is_write) cl->indeterminate = 1;
    cl->target[cl->shard] = (cl->target[cl->shard] + 1) % cl->c->cfg.replicas;
    client_send(cl);
}

static void client_send(struct client *cl)
{
    uint8_t msg[REQ_MAX + 16];
    char to[PT_ENV_ADDR_MAX];
    if (cl->attempts++ >= MAX_ATTEMPTS) {
        /* give up: the outcome of a write is unknown, a read just did not happen */
        client_done(cl, cl->is_write ? -1 : 0);
        return;
    }
    cl->req_id = (uint64_t)cl->idx << 48 | ++cl->seq;
    pt_put_le64(msg + 4, cl->req_id);
    memcpy(msg + 12, cl->req, cl->req_len);
    pt_put_le32(msg, petrel_crc32c(0, msg + 4, 8 + cl->req_len));
    snprintf(to, sizeof(to), "s%ur%u", cl->shard, cl->target[cl->shard]);
    pt_env_send(cl->env, to, msg, 12 + cl->req_len);
    cl->timer = pt_env_timer(cl->env, ATTEMPT_MS, attempt_timeout, cl);
}

static void retry_later(struct client *cl, uint64_t ms)
{
    if (cl->timer) pt_env_cancel(cl->env, cl->timer);
    cl->timer = pt_env_timer(cl->env, ms, (pt_env_cb)client_send, cl);
}

/* Whether some model version of the shard inside [lo, hi] satisfies pred. */
static int window_any(struct sim_cluster *c, unsigned shard, uint64_t lo, uint64_t hi,
                      int (*pred)(const uint64_t *names, void *arg), void *arg)
{
    struct shard_model *m = &c->model[shard];
    static const uint64_t empty[NAMES];
    size_t i;
    const uint64_t *base = empty; /* the state at lo: the last version at or before it */
    for (i = 0; i < m->n_ver && m->ver[i].index <= lo; i++)
        base = m->ver[i].names;
    if (pred(base, arg)) return 1;
    for (; i < m->n_ver && m->ver[i].index <= hi; i++)
        if (pred(m->ver[i].names, arg)) return 1;
    return 0;
}

struct lookup_arg {
    unsigned name;
    uint64_t id;
};

static int lookup_pred(const uint64_t *names, void *arg)
{
    struct lookup_arg *a = arg;
    return names[a->name] == a->id;
}

struct readdir_arg {
    uint64_t ids[NAMES];
};

static int readdir_pred(const uint64_t *names, void *arg)
{
    struct readdir_arg *a = arg;
    return memcmp(names, a->ids, sizeof(a->ids)) == 0;
}

static void check_lookup(struct client *cl, int st, struct pt_cursor *body, uint64_t *id_out)
{
    struct sim_cluster *c = cl->c;
    struct lookup_arg a;
    a.name = cl->name;
    a.id = 0;
    if (st == 0) {
        a.id = pt_dec_u64(body);
        (void)pt_dec_u8(body);
    }
    *id_out = a.id;
    c->res->reads_checked++;
    if (!window_any(c, cl->shard, cl->op_lo, c->model[cl->shard].committed, lookup_pred, &a))
        violate(c, "client c%u: lookup of n%u on shard %u returned %llx, which no state in "
                   "[%llu, %llu] has (stale or wrong read)",
                cl->idx, cl->name, cl->shard, (unsigned long long)a.id,
                (unsigned long long)cl->op_lo, (unsigned long long)c->model[cl->shard].committed);
}

static void check_readdir(struct client *cl, struct pt_cursor *body)
{
    struct sim_cluster *c = cl->c;
    struct readdir_arg a;
    uint16_t n = pt_dec_u16(body), i;
    memset(&a, 0, sizeof(a));
    for (i = 0; i < n; i++) {
        struct pt_dirent de;
        int ni;
        if (pt_shard_reply_dirent(body, &de) != 0) {
            violate(c, "client c%u: malformed READDIR reply", cl->idx);
            return;
        }
        ni = name_index(de.name, de.name_len);
        if (ni < 0 || a.ids[ni]) {
            violate(c, "client c%u: READDIR on shard %u lists unknown or repeated name '%s'",
                    cl->idx, cl->shard, de.name);
            return;
        }
        a.ids[ni] = de.id;
    }
    c->res->reads_checked++;
    if (!window_any(c, cl->shard, cl->op_lo, c->model[cl->shard].committed, readdir_pred, &a))
        violate(c, "client c%u: READDIR of shard %u matches no state in [%llu, %llu]", cl->idx,
                cl->shard, (unsigned long long)cl->op_lo,
                (unsigned long long)c->model[cl->shard].committed);
}

static void check_spans(struct client *cl, struct pt_cursor *body)
{
    struct sim_cluster *c = cl->c;
    struct mfile *f = file_find(c, cl->file_id);
    uint8_t got[256];
    size_t got_len = 0;
    uint64_t size = pt_dec_u64(body);
    uint16_t n = pt_dec_u16(body), i;
    for (i = 0; i < n; i++) {
        struct pt_span sp;
        if (pt_span_decode(body, &sp) != 0 || sp.storage != PT_STORAGE_INLINE ||
            sp.offset != got_len || got_len + sp.inline_len > sizeof(got)) {
            violate(c, "client c%u: bad span in file %llx", cl->idx,
                    (unsigned long long)cl->file_id);
            return;
        }
        memcpy(got + got_len, sp.inline_data, sp.inline_len);
        got_len += sp.inline_len;
    }
    c->res->reads_checked++;
    if (!f || f->state == PT_FILE_TRANSIENT) {
        violate(c, "client c%u: file %llx read through a name is %s", cl->idx,
                (unsigned long long)cl->file_id, f ? "still transient" : "unknown");
        return;
    }
    if (size != f->len || got_len != f->len || memcmp(got, f->data, f->len) != 0)
        violate(c, "client c%u: file %llx returned %zu bytes (size %llu) that differ from the "
                   "%zu its writer added",
                cl->idx, (unsigned long long)cl->file_id, got_len, (unsigned long long)size,
                f->len);
}

/* STAT of a file found through a name: a linked (or since retired) file of its writer's size. */
static void check_stat(struct client *cl, struct pt_cursor *body)
{
    struct sim_cluster *c = cl->c;
    struct pt_shard_stat st;
    struct mfile *f = file_find(c, cl->file_id);
    if (pt_shard_reply_stat(body, &st) != 0) {
        violate(c, "client c%u: malformed STAT reply", cl->idx);
        return;
    }
    c->res->reads_checked++;
    if (st.type != PT_TYPE_FILE || st.state == PT_FILE_TRANSIENT || !f || st.size != f->len)
        violate(c, "client c%u: STAT of file %llx found through a name: type %u state %u size "
                   "%llu, its writer added %zu bytes",
                cl->idx, (unsigned long long)cl->file_id, st.type, st.state,
                (unsigned long long)st.size, f ? f->len : 0);
}

/* A definitive answer for the current stage. */
static void client_result(struct client *cl, int st, uint64_t index, struct pt_cursor *body)
{
    struct sim_cluster *c = cl->c;
    uint64_t key = sum64(cl->req, cl->req_len), id;
    if (cl->is_write && st == 0) {
        if (index > c->model[cl->shard].acked_max) c->model[cl->shard].acked_max = index;
        if (cl->kind == OP_WRITE) keyset_add(&c->acked_keys[cl->shard], key);
        if (index == 0 || index > c->model[cl->shard].committed)
            violate(c, "client c%u: write acknowledged at index %llu, committed is %llu", cl->idx,
                    (unsigned long long)index, (unsigned long long)c->model[cl->shard].committed);
    }
    if (cl->is_write && st != 0 && !cl->indeterminate && cl->kind == OP_WRITE)
        keyset_add(&c->failed_keys[cl->shard], key);
    switch (cl->kind) {
    case OP_MKDIR:
        if (st == 0) c->model[cl->shard].dir = pt_dec_u64(body);
        client_done(cl, st == 0 ? 1 : 0);
        return;
    case OP_WRITE:
        if (st != 0) {
            client_done(cl, cl->indeterminate ? -1 : 0);
            return;
        }
        if (cl->stage == 0) cl->file_id = pt_dec_u64(body);
        if (cl->stage == (int)cl->nspans + 1) {
            client_done(cl, 1);
            return;
        }
        cl->stage++;
        client_stage_req(cl);
        client_send(cl);
        return;
    case OP_LOOKUP:
        if (st == 0 || st == -PT_ENOENT) check_lookup(cl, st, body, &id);
        client_done(cl, st == 0 ? 1 : 0);
        return;
    case OP_READDIR:
        if (st == 0) check_readdir(cl, body);
        client_done(cl, st == 0 ? 1 : 0);
        return;
    case OP_READ:
        if (cl->stage == 0) {
            if (st == 0 || st == -PT_ENOENT) check_lookup(cl, st, body, &id);
            if (st != 0 || !id) {
                client_done(cl, 0);
                return;
            }
            cl->file_id = id;
            cl->stage = 1;
            client_stage_req(cl);
            client_send(cl);
            return;
        }
        if (cl->stage == 1) {
            if (st == 0) check_stat(cl, body);
            if (st != 0) {
                client_done(cl, 0);
                return;
            }
            cl->stage = 2;
            client_stage_req(cl);
            client_send(cl);
            return;
        }
        /* the name may have moved on and the file been retired: its bytes never change */
        if (st == 0) check_spans(cl, body);
        client_done(cl, st == 0 ? 1 : 0);
        return;
    default:
        client_done(cl, st == 0 ? 1 : (cl->indeterminate ? -1 : 0));
        return;
    }
}

static void on_client_reply(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct client *cl = ctx;
    struct pt_cursor body;
    int st;
    unsigned hint;
    uint64_t index;
    (void)from;
    if (len < 25 || pt_get_le32(msg) != petrel_crc32c(0, msg + 4, len - 4)) return;
    if (!cl->busy || pt_get_le64(msg + 4) != cl->req_id || !cl->timer) return;
    pt_env_cancel(cl->env, cl->timer);
    cl->timer = 0;
    st = (int)pt_get_le32(msg + 12);
    hint = msg[16];
    index = pt_get_le64(msg + 17);
    pt_cursor_init(&body, (void *)(msg + 25), len - 25);
    switch (st) {
    case -PT_ENOTLEADER:
        /* never proposed: no effect; go where the replica says the leader is */
        cl->target[cl->shard] = hint >= 1 && hint <= cl->c->cfg.replicas
                                    ? hint - 1
                                    : (cl->target[cl->shard] + 1) % cl->c->cfg.replicas;
        retry_later(cl, 20);
        return;
    case -PT_ECANCELED:
    case -PT_EIO:
        if (cl->is_write) cl->indeterminate = 1;
        cl->target[cl->shard] = (cl->target[cl->shard] + 1) % cl->c->cfg.replicas;
        retry_later(cl, 50);
        return;
    case -PT_EAGAIN:
        retry_later(cl, 50);
        return;
    default:
        client_result(cl, st, index, &body);
    }
}

static void client_next(void *ctx)
{
    struct client *cl = ctx;
    struct sim_cluster *c = cl->c;
    unsigned i;
    if (c->stop_clients || cl->busy || c->violated) return;
    cl->busy = 1;
    cl->stage = 0;
    cl->shard = (unsigned)sim_below(c->sim, c->cfg.shards);
    if (!c->model[cl->shard].dir) {
        cl->kind = OP_MKDIR;
    } else {
        uint64_t r = sim_below(c->sim, 100);
        cl->kind = r < 35 ? OP_WRITE : r < 50 ? OP_LOOKUP : r < 60 ? OP_READDIR
                   : r < 80 ? OP_READ : r < 90 ? OP_RENAME : OP_UNLINK;
    }
    /* few names, several clients: creates of the same name collide */
    cl->name = (unsigned)sim_below(c->sim, NAMES);
    cl->name2 = (unsigned)sim_below(c->sim, NAMES);
    if (cl->kind == OP_WRITE) {
        cl->cookie = sim_random(c->sim) | 1;
        cl->nspans = 1 + (unsigned)sim_below(c->sim, 2);
        for (i = 0; i < cl->nspans; i++) {
            cl->dlen[i] = 1 + (size_t)sim_below(c->sim, sizeof(cl->data[i]));
            sim_fill(c->sim, cl->data[i], cl->dlen[i]);
        }
    }
    cl->op_lo = c->model[cl->shard].acked_max;
    client_stage_req(cl);
    client_send(cl);
}

/* ---- the run ---------------------------------------------------------------------------------- */

void sim_cluster_config_default(struct sim_cluster_config *c, uint64_t seed, const char *dir)
{
    memset(c, 0, sizeof(*c));
    c->seed = seed;
    c->shards = 2;
    c->replicas = 3;
    c->clients = 4;
    c->fault_ms = 60000;
    c->settle_ms = 15000;
    /* Snapshots are off by default: with them the replica's raft_store loses acknowledged
     * entries after a restart (see DESIGN.md); PETREL_SIM_SNAPSHOT_ENTRIES=64 turns them on. */
    c->snapshot_entries = 1u << 30;
    sim_faults_default(&c->faults);
    c->dir = dir;
}

/* Whether replica r of shard s has applied everything the leader holds. */
static int replica_converged(struct sim_cluster *c, unsigned s, unsigned r, raft_index leader_last)
{
    struct inc *in = c->nodes[s][r].cur;
    struct raft *raft;
    if (!in || !in->rep) return 0;
    raft = pt_replica_raft(in->rep);
    return raft_last_applied(raft) >= c->model[s].committed &&
           raft_last_applied(raft) == raft_last_index(raft) && raft_last_index(raft) == leader_last;
}

/* The last index of shard s's one serving leader (0 when there is not exactly one). */
static raft_index shard_leader_last(struct sim_cluster *c, unsigned s)
{
    unsigned r, leaders = 0;
    raft_index last = 0;
    for (r = 0; r < c->cfg.replicas; r++) {
        struct inc *in = c->nodes[s][r].cur;
        if (in && in->rep && pt_replica_can_serve(in->rep)) {
            leaders++;
            last = raft_last_index(pt_replica_raft(in->rep));
        }
    }
    return leaders == 1 ? last : 0;
}

/* Replicas of shard s that converged on its one serving leader (0 when there is none). */
static unsigned shard_converged(struct sim_cluster *c, unsigned s)
{
    unsigned r, n = 0;
    raft_index last = shard_leader_last(c, s);
    if (!last) return 0;
    for (r = 0; r < c->cfg.replicas; r++)
        n += (unsigned)replica_converged(c, s, r, last);
    return n;
}

static int converged(void *ctx)
{
    struct sim_cluster *c = ctx;
    unsigned s;
    if (c->violated) return 1;
    for (s = 0; s < c->cfg.shards; s++)
        if (shard_converged(c, s) != c->cfg.replicas) return 0;
    return 1;
}

static int clients_idle(void *ctx)
{
    struct sim_cluster *c = ctx;
    unsigned i;
    for (i = 0; i < c->cfg.clients; i++)
        if (c->clients[i].busy) return 0;
    return 1;
}

/* After healing: stores agree with the model, acknowledged writes are in, failed ones not. */
static void final_checks(struct sim_cluster *c)
{
    unsigned s, r, i;
    for (s = 0; s < c->cfg.shards && !c->violated; s++) {
        struct shard_model *m = &c->model[s];
        for (i = 0; i < c->acked_keys[s].n; i++)
            if (!keyset_has(&m->ok_keys, c->acked_keys[s].k[i]))
                violate(c, "shard %u: an acknowledged write is not in the committed history", s);
        for (i = 0; i < c->failed_keys[s].n; i++)
            if (keyset_has(&m->ok_keys, c->failed_keys[s].k[i]))
                violate(c, "shard %u: a write that failed definitively took effect", s);
        if (!m->dir) continue;
        for (r = 0; r < c->cfg.replicas && !c->violated; r++) {
            struct inc *in = c->nodes[s][r].cur;
            if (!replica_converged(c, s, r, shard_leader_last(c, s))) continue; /* lagging */
            for (i = 0; i < NAMES && in; i++) {
                struct pt_shard_req q;
                uint8_t req[64];
                size_t rl;
                struct pt_cursor body;
                int len, st;
                uint64_t id = 0;
                memset(&q, 0, sizeof(q));
                q.op = PT_SHARD_LOOKUP;
                q.id = m->dir;
                set_name(q.name, &q.name_len, i);
                len = pt_shard_req_encode(&q, req, sizeof(req));
                if (len < 0 || pt_shard_sm_query(&in->sm, req, (size_t)len, c->reply, REPLY_MAX,
                                                 &rl) != 0) {
                    violate(c, "s%ur%u: final lookup failed", s, r);
                    break;
                }
                st = pt_shard_reply_open(c->reply, rl, &body);
                if (st == 0) id = pt_dec_u64(&body);
                if (id != m->cur[i])
                    violate(c, "s%ur%u: final store has n%u -> %llx, model %llx", s, r, i,
                            (unsigned long long)id, (unsigned long long)m->cur[i]);
            }
        }
    }
}

/* A failed PT_ASSERT ends the process (petrel_assert_fail aborts after this hook): say which
 * seed it was and how to replay it first. */
static void assert_hook(void *ctx, const char *file, int line, const char *cond)
{
    struct sim_cluster *c = ctx;
    violate(c, "PT_ASSERT(%s) failed at %s:%d", cond, file, line);
    fprintf(stderr, "seed %llu: %s at %llu ms\n    replay: build/tests/test-sim --seed %llu sim_cluster\n",
            (unsigned long long)c->cfg.seed, c->res->violation,
            (unsigned long long)sim_now(c->sim), (unsigned long long)c->cfg.seed);
    fflush(stderr);
}

/* Test of the reporting path: an invariant that does not hold. */
static void fail_assert(void *ctx)
{
    struct sim_cluster *c = ctx;
    PT_ASSERT(c->cfg.fail_assert_at_ms == 0);
}

int sim_cluster_run(const struct sim_cluster_config *cfg, struct sim_cluster_result *res)
{
    struct sim_cluster *c = calloc(1, sizeof(*c));
    struct sim_faults none;
    unsigned s, r, i;
    if (!c) return -PT_ENOMEM;
    if (cfg->shards < 1 || cfg->shards > MAX_SHARDS || cfg->clients > MAX_CLIENTS ||
        (cfg->replicas != 1 && cfg->replicas != 3 && cfg->replicas != 5)) {
        free(c);
        return -PT_EINVAL;
    }
    memset(res, 0, sizeof(*res));
    c->cfg = *cfg;
    c->res = res;
    sim_faults_none(&none);
    c->sim = sim_new(cfg->seed, &none);
    petrel_assert_set_hook(assert_hook, c);
    for (s = 0; s < cfg->shards; s++)
        for (r = 0; r < cfg->replicas; r++) {
            struct node *n = &c->nodes[s][r];
            struct sim_proc_hooks h;
            n->c = c;
            n->shard = s;
            n->rid = r;
            snprintf(n->addr, sizeof(n->addr), "s%ur%u", s, r);
            snprintf(n->raft_addr, sizeof(n->raft_addr), "s%ur%u/raft", s, r);
            snprintf(n->dir, sizeof(n->dir), "%s/s%ur%u", cfg->dir, s, r);
            mkdir(n->dir, 0755);
            n->proc = sim_proc_add(c->sim, n->addr);
            h.stop = node_stop;
            h.start = node_start;
            h.ctx = n;
            sim_proc_set_hooks(n->proc, &h);
        }
    c->model[0].dir = PT_INODE_ROOT;
    for (i = 0; i < cfg->clients; i++) {
        struct client *cl = &c->clients[i];
        cl->c = c;
        cl->idx = i;
        snprintf(cl->addr, sizeof(cl->addr), "c%u", i);
        cl->proc = sim_proc_add(c->sim, cl->addr);
        cl->env = sim_proc_env(cl->proc);
        sim_proc_set_faultable(cl->proc, 0, 0, 1);
        pt_env_listen(cl->env, cl->addr, on_client_reply, cl);
    }
    for (s = 0; s < cfg->shards; s++)
        for (r = 0; r < cfg->replicas; r++)
            node_start(&c->nodes[s][r]);
    /* warm-up without faults: leaders, then the per-shard directories */
    sim_run_until(c->sim, 3000);
    for (i = 0; i < cfg->clients; i++)
        pt_env_timer(c->clients[i].env, 1 + i, client_next, &c->clients[i]);
    sim_set_faults(c->sim, &cfg->faults);
    if (cfg->fail_assert_at_ms) pt_env_timer(c->clients[0].env, cfg->fail_assert_at_ms, fail_assert, c);
    while (!c->violated && sim_now(c->sim) < 3000 + cfg->fault_ms)
        sim_run_until(c->sim, sim_now(c->sim) + 100);
    /* heal: faults off, partitions and pauses over, everyone up */
    sim_set_faults(c->sim, &none);
    sim_heal(c->sim);
    for (s = 0; s < cfg->shards; s++)
        for (r = 0; r < cfg->replicas; r++)
            if (!sim_proc_up(c->nodes[s][r].proc)) sim_proc_restart(c->nodes[s][r].proc);
    if (!c->violated &&
        !sim_run_until_cond(c->sim, sim_now(c->sim) + cfg->settle_ms, clients_idle, c))
        violate(c, "clients still busy %llu ms after healing (no progress)",
                (unsigned long long)cfg->settle_ms);
    c->stop_clients = 1;
    /*
     * Everyone should converge; a lagging minority is counted, not a violation (Raft promises
     * progress with a majority; libraft 0.15 can leave a follower stuck behind a snapshot it
     * refuses, see DESIGN.md), unless cfg->strict_liveness. A shard without a serving leader
     * and a converged majority is a violation.
     */
    if (!c->violated &&
        !sim_run_until_cond(c->sim, sim_now(c->sim) + cfg->settle_ms, converged, c)) {
        int short_majority = 0;
        for (s = 0; s < cfg->shards; s++) {
            unsigned ok = shard_converged(c, s);
            if (ok <= cfg->replicas / 2) short_majority = 1;
            res->lagging_replicas += cfg->replicas - ok;
        }
        if (!short_majority && !cfg->strict_liveness) goto settled;
    }
    if (!c->violated && !converged(c))
    {
        char state[400];
        size_t pos = 0;
        for (s = 0; s < cfg->shards; s++)
            for (r = 0; r < cfg->replicas; r++) {
                struct inc *in = c->nodes[s][r].cur;
                struct raft *raft = in && in->rep ? pt_replica_raft(in->rep) : NULL;
                if (pos < sizeof(state))
                    pos += (size_t)snprintf(
                        state + pos, sizeof(state) - pos, " s%ur%u:%s/t%llu/i%llu/a%llu", s, r,
                        !raft ? "down" : raft_state(raft) == RAFT_LEADER ? "L" : "F",
                        raft ? (unsigned long long)raft->current_term : 0ull,
                        raft ? (unsigned long long)raft_last_index(raft) : 0ull,
                        raft ? (unsigned long long)raft_last_applied(raft) : 0ull);
            }
        if (cfg->verbose)
            for (s = 0; s < cfg->shards; s++)
                for (r = 0; r < cfg->replicas; r++) {
                    struct inc *in = c->nodes[s][r].cur;
                    const struct pt_raft_io_stats *st;
                    if (!in || !in->io_ready) continue;
                    st = pt_raft_io_stats(&in->io);
                    fprintf(stderr,
                            "s%ur%u io: recv %llu sent %llu drops hdr %llu crc %llu group %llu "
                            "sender %llu addr %llu body %llu unresolved %llu appends %llu "
                            "fsyncs %llu failed %d\n",
                            s, r, (unsigned long long)st->received, (unsigned long long)st->sent,
                            (unsigned long long)st->drop_header, (unsigned long long)st->drop_crc,
                            (unsigned long long)st->drop_group,
                            (unsigned long long)st->drop_sender,
                            (unsigned long long)st->drop_address,
                            (unsigned long long)st->drop_body,
                            (unsigned long long)st->send_unresolved,
                            (unsigned long long)st->appends, (unsigned long long)st->fsyncs,
                            ((struct pt_raft_io_impl *)in->io.impl)->failed);
                }
        violate(c, "replicas did not converge %llu ms after healing:%s",
                (unsigned long long)cfg->settle_ms, state);
    }
settled:
    if (!c->violated) final_checks(c);
    res->ok = !c->violated;
    res->sim_ms = sim_now(c->sim);
    res->trace_hash = sim_trace_hash(c->sim);
    res->stats = *sim_stats(c->sim);
    for (s = 0; s < cfg->shards; s++)
        res->writes_committed += c->model[s].ok_keys.n;
    /* tear down: crash everyone, let the dead incarnations close and free themselves */
    for (s = 0; s < cfg->shards; s++)
        for (r = 0; r < cfg->replicas; r++)
            if (sim_proc_up(c->nodes[s][r].proc)) sim_proc_crash(c->nodes[s][r].proc);
    sim_run_until(c->sim, sim_now(c->sim) + 5000);
    petrel_assert_set_hook(NULL, NULL);
    sim_free(c->sim);
    for (s = 0; s < MAX_SHARDS; s++) {
        free(c->model[s].hist);
        free(c->model[s].ver);
        free(c->model[s].ok_keys.k);
        free(c->acked_keys[s].k);
        free(c->failed_keys[s].k);
    }
    for (i = 0; i < c->n_files; i++)
        free(c->files[i].data);
    free(c->files);
    free(c);
    return 0;
}
