/*
 * The shard service on a replicated node (see shard_server.h): validates and answers
 * PT_MSG_SHARD_REQ. Queries are served by the leader from its store once it has applied a
 * barrier of its term; state changes become log entries. The leader adds what apply must not
 * compute itself: the block services of a new span (distinct failure domains, from the
 * registry), the check of block proofs before a span is certified, and the certificates in
 * the reply to ADD_SPAN (MACs under each block service's secret). Never replies to a state
 * change before its entry is committed and applied.
 */
#include "cluster/shard/shard_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/client/blocks_client.h"
#include "cluster/metrics/metrics.h"
#include "cluster/storage/durable.h"
#include "cluster/proto/blocks_msg.h"
#include "cluster/proto/shard_msgs.h"
#include "cluster/replica/node.h"
#include "cluster/shard/shard_compact.h"
#include "cluster/shard/shard_fsm.h"
#include "cluster/shard/shard_repair.h"
#include "cluster/shard/shard_sm.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/prng.h"

#define EXPIRE_EVERY_MS 5000
#define GC_EVERY_MS 1000    /* a leader looks for files whose retention is over this often */
#define GC_SCAN_BUDGET 4096 /* inodes examined per look */
#define GC_FILES_MAX 16     /* files erased per round */
/* By default, for this long after start-up a shard that cannot place a span yet answers
 * EAGAIN (the client retries) rather than ENOSPC: its view of the block services comes from
 * the registry a moment after it starts, and block services may still be registering.
 * --placement-grace sets it. */
#define SERVICES_GRACE_MS 15000

/* One round of garbage collection: files and their blocks, erased on a worker thread. */
struct gc_block {
    struct pt_gc_block b;
    char addr[PT_REG_ADDR_MAX];
    uint8_t secret[PT_REG_SECRET_SIZE];
    int known; /* the service and its secret are known */
};
struct gc_file {
    uint64_t id;
    struct gc_block *blocks;
    size_t n;
    int erased; /* every block's erase proof checked */
};
struct gc_round {
    uv_work_t work;
    struct shard_service *s;
    struct gc_file files[GC_FILES_MAX];
    unsigned n;
    /* blocks of dropped spans: one pseudo-file per block, with its drop time */
    struct gc_file dropped[PT_SHARD_GC_DROPPED_MAX];
    uint64_t dropped_time[PT_SHARD_GC_DROPPED_MAX];
    unsigned n_dropped;
};

struct shard_service {
    struct pt_node *node;
    struct pt_shard_sm sm;
    struct pt_shard_fsm fsm;
    struct pt_prng prng;
    uint64_t last_expire_ms;
    uint64_t last_gc_ms, gc_cursor;
    int gc_running;
    struct pt_shard_repair repair;
    struct pt_shard_compact compact;
    uint64_t started_ms;         /* wall clock at start-up */
    uint64_t placement_grace_ms; /* EAGAIN rather than ENOSPC this long after start-up */
    struct pt_metric *m_gc_rounds, *m_gc_files; /* GC progress (NULL: no metrics) */
    uint8_t reply[PT_SHARD_MSG_MAX + 4];
};

struct op_ctx {
    struct shard_service *s;
    struct pt_request *req;
    uint8_t op;
    uint32_t crc, size;
};

static void reply_shard(struct pt_request *req, const uint8_t *reply, size_t len)
{
    struct pt_cursor body;
    int st = pt_shard_reply_open(reply, len, &body);
    if (st)
        pt_request_reply_error(req, st, petrel_strerror(st), NULL);
    else
        pt_request_reply(req, body.buf, (uint32_t)body.len);
}

/*
 * ADD_SPAN's reply gets each block's write certificate appended: (service, block, cert). The
 * certificate covers the block's CRC and size: the span's for a mirrored copy; for an RS
 * block the CRC apply combined from its cell CRCs (in apply's reply) and the block size.
 */
static void reply_add_span(struct shard_service *s, struct op_ctx *o, const uint8_t *reply,
                           size_t len)
{
    struct pt_cursor in, out;
    uint8_t buf[1 + PT_SPAN_BLOCKS_MAX * 24];
    unsigned n, i;
    int st = pt_shard_reply_open(reply, len, &in);
    if (st) {
        pt_request_reply_error(o->req, st, petrel_strerror(st), NULL);
        return;
    }
    n = pt_dec_u8(&in);
    pt_cursor_init(&out, buf, sizeof(buf));
    pt_enc_u8(&out, (uint8_t)n);
    for (i = 0; i < n && i < PT_SPAN_BLOCKS_MAX; i++) {
        uint64_t service = pt_dec_u64(&in), block = pt_dec_u64(&in);
        uint32_t crc = o->op == PT_SHARD_ADD_RS_SPAN ? pt_dec_u32(&in) : o->crc;
        const struct pt_node_service *svc = pt_node_service_find(s->node, service);
        if (!svc || !svc->has_secret) {
            pt_request_reply_error(o->req, -PT_EAGAIN, "block service secret not known yet", NULL);
            return;
        }
        pt_enc_u64(&out, service);
        pt_enc_u64(&out, block);
        pt_enc_u64(&out,
                   pt_block_mac(svc->secret, PT_BLOCK_WRITE_CERT, service, block, crc, o->size));
    }
    pt_request_reply(o->req, buf, (uint32_t)out.pos);
}

static void write_done(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct op_ctx *o = ctx;
    if (!o->req) {
        free(o);
        return;
    }
    if (status)
        pt_node_reply_status(o->s->node, o->req, status);
    else if (o->op == PT_SHARD_ADD_SPAN || o->op == PT_SHARD_ADD_RS_SPAN)
        reply_add_span(o->s, o, reply, len);
    else
        reply_shard(o->req, reply, len);
    free(o);
}

/*
 * Pick copies block services, each in its own failure domain, at random among the fresh ones,
 * avoiding those the client listed in its request (services that just failed it).
 */
static int choose_services(struct shard_service *s, struct pt_shard_req *q, unsigned copies)
{
    size_t count, i, j, picked = 0, no_secret = 0;
    uint64_t avoid[PT_SPAN_BLOCKS_MAX];
    unsigned n_avoid = q->n_services;
    memcpy(avoid, q->services, sizeof(avoid));
    const struct pt_node_service *all = pt_node_services(s->node, &count);
    size_t order[PT_NODE_MAX_SERVICES];
    for (i = 0; i < count; i++)
        order[i] = i;
    for (i = count; i > 1; i--) {
        size_t k = (size_t)pt_prng_below(&s->prng, i), t = order[i - 1];
        order[i - 1] = order[k];
        order[k] = t;
    }
    for (i = 0; i < count && picked < copies; i++) {
        const struct pt_node_service *c = &all[order[i]];
        int clash = 0;
        if (c->stale || !c->addr[0] || pt_shard_repair_avoids(&s->repair, c->id)) continue;
        if (!c->has_secret) {
            no_secret++; /* fetched on the next discovery round */
            continue;
        }
        for (j = 0; j < n_avoid; j++)
            if (avoid[j] == c->id) clash = 1;
        if (c->capacity && c->used + q->size > c->capacity) continue;
        for (j = 0; j < picked; j++) {
            const struct pt_node_service *p = pt_node_service_find(s->node, q->services[j]);
            if (p && strcmp(p->domain, c->domain) == 0) clash = 1;
        }
        if (clash) continue;
        q->services[picked++] = c->id;
    }
    if (picked < copies)
        return no_secret || pt_node_wall_ms() - s->started_ms < s->placement_grace_ms ? -PT_EAGAIN
                                                                               : -PT_ENOSPC;
    q->n_services = (uint8_t)copies;
    return 0;
}

/* Compaction's placement of a merged mirrored span: the same as a writer's. */
static int compact_place(void *ctx, struct pt_shard_req *q, unsigned copies)
{
    q->n_services = 0;
    return choose_services(ctx, q, copies);
}

/*
 * ADD_RS_SPAN: D + P block services in D + P distinct failure domains, or a refusal that says
 * so (a deployment with fewer domains cannot hold the layout: -PT_ENOSPC after the start-up
 * grace). Returns 0, or non-zero after replying.
 */
static int place_rs_span(struct shard_service *s, struct pt_shard_req *q, struct pt_request *req)
{
    char msg[160];
    int rc;
    if (q->storage != PT_STORAGE_RS || q->data < 1 || q->data > 16 || q->parity < 1 ||
        q->parity > 4 || (unsigned)q->data + q->parity > PT_SPAN_BLOCKS_MAX) {
        pt_request_reply_error(req, -PT_EINVAL, "bad Reed-Solomon layout (D 1..16, P 1..4, "
                                                "D + P <= 16)", NULL);
        return -PT_EINVAL;
    }
    if ((rc = choose_services(s, q, (unsigned)q->data + q->parity)) != 0) {
        snprintf(msg, sizeof(msg),
                 rc == -PT_EAGAIN ? "block services not known yet"
                                  : "RS(%u,%u) needs %u block services in distinct failure "
                                    "domains; too few are available",
                 q->data, q->parity, q->data + q->parity);
        pt_request_reply_error(req, rc, msg, NULL);
    }
    return rc;
}

/* Certify only with a valid proof from every block service of the span. */
static int check_proofs(struct shard_service *s, const struct pt_shard_req *q)
{
    struct pt_shard_req sq;
    uint8_t req[64];
    size_t rl;
    struct pt_cursor body;
    struct pt_span span;
    unsigned i, n;
    int len, st;
    memset(&sq, 0, sizeof(sq));
    sq.op = PT_SHARD_SPANS;
    sq.id = q->id;
    sq.offset = q->offset;
    sq.max = 1;
    len = pt_shard_req_encode(&sq, req, sizeof(req));
    if (len < 0) return len;
    if ((st = pt_shard_sm_query(&s->sm, req, (size_t)len, s->reply, sizeof(s->reply), &rl)) != 0)
        return st;
    if ((st = pt_shard_reply_open(s->reply, rl, &body)) != 0) return st;
    (void)pt_dec_u64(&body);
    if (pt_dec_u16(&body) != 1) return -PT_ENOENT;
    if (pt_span_decode(&body, &span) != 0) return -PT_ECORRUPT;
    if (span.offset != q->offset) return -PT_ENOENT;
    if (span.storage == PT_STORAGE_INLINE) return 0;
    n = pt_span_block_count(&span);
    if (q->data_len != 8u * n) return -PT_EINVAL;
    for (i = 0; i < n; i++) {
        const struct pt_node_service *svc = pt_node_service_find(s->node, span.blocks[i].service);
        uint64_t proof = pt_get_le64(q->data_ptr + 8 * i);
        if (!svc || !svc->has_secret) return -PT_EAGAIN;
        if (!pt_block_mac_check(svc->secret, PT_BLOCK_WRITE_PROOF, span.blocks[i].service,
                                span.blocks[i].block, span.blocks[i].crc, span.block_size, proof))
            return -PT_ENOTCERT;
    }
    return 0;
}

/* A read waiting for its read-index barrier (pt_node_read). */
struct read_ctx {
    struct shard_service *s;
    struct pt_request *req;
};

/* The barrier committed in this leader's term (or leadership was lost): answer the read from
 * the store now, or send the client to the leader. A read has no effect, so -PT_ECANCELED is
 * "not here" too, never "outcome unknown". */
static void read_ready(void *ctx, int status)
{
    struct read_ctx *r = ctx;
    struct shard_service *s = r->s;
    size_t rl;
    int rc;
    if (status != 0) {
        pt_node_reply_not_leader(s->node, r->req);
    } else if (pt_request_body_len(r->req) >= 1 &&
               pt_request_body(r->req)[0] == PT_SHARD_REPAIR_STATUS) {
        struct pt_cursor out;
        pt_cursor_init(&out, s->reply + 4, sizeof(s->reply) - 4);
        rc = pt_shard_repair_status(&s->repair, &out);
        if (rc) {
            pt_request_reply_error(r->req, rc, "cannot scan the spans", NULL);
        } else {
            pt_put_le32(s->reply, 0);
            reply_shard(r->req, s->reply, 4 + out.pos);
        }
    } else {
        rc = pt_shard_sm_query(&s->sm, pt_request_body(r->req), pt_request_body_len(r->req),
                               s->reply, sizeof(s->reply), &rl);
        if (rc)
            pt_request_reply_error(r->req, rc, "store failure", NULL);
        else
            reply_shard(r->req, s->reply, rl);
    }
    free(r);
}

static void handle(void *ctx, struct pt_request *req)
{
    struct shard_service *s = ctx;
    struct pt_shard_req q;
    const uint8_t *body = pt_request_body(req);
    uint32_t len = pt_request_body_len(req);
    struct op_ctx *o;
    uint8_t *enc;
    int rc, n;
    if (pt_request_kind(req) != PT_MSG_SHARD_REQ) {
        pt_request_reply_error(req, -PT_ENOTSUP, "unknown message kind for a shard", NULL);
        return;
    }
    if ((rc = pt_shard_req_decode(&q, body, len)) != 0) {
        pt_request_reply_error(req, rc, "malformed shard request", NULL);
        return;
    }
    pt_request_set_metric_kind(req, pt_shard_op_metric_name(q.op));
    if (!pt_node_can_serve(s->node)) {
        pt_node_reply_not_leader(s->node, req);
        return;
    }
    if (!pt_shard_op_is_write(q.op)) {
        struct read_ctx *r = malloc(sizeof(*r));
        if (!r) {
            pt_request_reply_error(req, -PT_ENOMEM, "out of memory", NULL);
            return;
        }
        r->s = s;
        r->req = req;
        if ((rc = pt_node_read(s->node, read_ready, r)) != 0) {
            free(r);
            pt_node_reply_status(s->node, req, rc);
        }
        return;
    }
    if (q.op == PT_SHARD_EXPIRE || q.op == PT_SHARD_FORGET_FILE || q.op == PT_SHARD_REPLACE_BLOCK ||
        q.op == PT_SHARD_FORGET_DROPPED || q.op == PT_SHARD_COMPACT_CHANGE) {
        pt_request_reply_error(req, -PT_EPERM,
                               "expiry, collection and compaction are driven by the leader", NULL);
        return;
    }
    if (q.op == PT_SHARD_ADD_SPAN && q.storage == PT_STORAGE_MIRRORED) {
        if (q.data != 1 || q.parity + 1u > PT_SPAN_BLOCKS_MAX) {
            pt_request_reply_error(req, -PT_EINVAL, "bad mirrored layout", NULL);
            return;
        }
        if ((rc = choose_services(s, &q, q.parity + 1u)) != 0) {
            pt_request_reply_error(req, rc,
                                   rc == -PT_EAGAIN
                                       ? "block services not known yet"
                                       : "not enough block services in distinct failure domains",
                                   NULL);
            return;
        }
    }
    if (q.op == PT_SHARD_ADD_RS_SPAN && (rc = place_rs_span(s, &q, req)) != 0) return;
    if (q.op == PT_SHARD_CERTIFY_SPAN && (rc = check_proofs(s, &q)) != 0) {
        pt_request_reply_error(req, rc,
                               rc == -PT_ENOTCERT ? "bad block proof" : petrel_strerror(rc), NULL);
        return;
    }
    o = calloc(1, sizeof(*o));
    enc = malloc(len + PT_SPAN_BLOCKS_MAX * 8 + 16);
    if (!o || !enc) {
        free(o);
        free(enc);
        pt_request_reply_error(req, -PT_ENOMEM, "out of memory", NULL);
        return;
    }
    n = pt_shard_req_encode(&q, enc, len + PT_SPAN_BLOCKS_MAX * 8 + 16);
    o->s = s;
    o->req = req;
    o->op = q.op;
    o->crc = q.crc;
    o->size = q.op == PT_SHARD_ADD_RS_SPAN ? q.block_size : q.size;
    rc = n < 0 ? n : pt_node_propose(s->node, enc, (size_t)n, write_done, o);
    free(enc);
    if (rc) {
        free(o);
        pt_node_reply_status(s->node, req, rc);
    }
}

/* Propose a leader-only request (EXPIRE, FORGET_FILE); its reply goes nowhere. */
static void propose_own(struct shard_service *s, uint8_t op, uint64_t id)
{
    struct pt_shard_req q;
    uint8_t enc[16];
    struct op_ctx *o;
    int n;
    memset(&q, 0, sizeof(q));
    q.op = op;
    q.id = id;
    n = pt_shard_req_encode(&q, enc, sizeof(enc));
    o = calloc(1, sizeof(*o));
    if (!o || n < 0) {
        free(o);
        return;
    }
    if (pt_node_propose(s->node, enc, (size_t)n, write_done, o) != 0) free(o);
}

static void gc_round_free(struct gc_round *g)
{
    unsigned i;
    for (i = 0; i < g->n; i++)
        free(g->files[i].blocks);
    for (i = 0; i < g->n_dropped; i++)
        free(g->dropped[i].blocks);
    free(g);
}

/* Worker thread: erase every block with its certificate and check each erase proof. */
static void gc_erase_files(struct gc_file *files, unsigned count)
{
    struct pt_call_opts opts = {.timeout_ms = 2000, .retry_budget_ms = 3000};
    unsigned i;
    size_t j;
    for (i = 0; i < count; i++) {
        struct gc_file *f = &files[i];
        f->erased = 1;
        for (j = 0; j < f->n && f->erased; j++) {
            const struct gc_block *b = &f->blocks[j];
            uint64_t proof = 0;
            if (!b->known ||
                pt_blocks_erase(b->addr, b->b.block, b->b.crc, b->b.size,
                                pt_block_mac(b->secret, PT_BLOCK_ERASE_CERT, b->b.service,
                                             b->b.block, b->b.crc, b->b.size),
                                &proof, &opts) != 0 ||
                !pt_block_mac_check(b->secret, PT_BLOCK_ERASE_PROOF, b->b.service, b->b.block,
                                    b->b.crc, b->b.size, proof))
                f->erased = 0; /* tried again in a later round */
        }
    }
}

static void gc_work(uv_work_t *w)
{
    struct gc_round *g = w->data;
    gc_erase_files(g->files, g->n);
    gc_erase_files(g->dropped, g->n_dropped);
}

/* FORGET_DROPPED for the dropped blocks proven erased. */
static void gc_forget_dropped(struct shard_service *s, struct gc_round *g)
{
    uint8_t data[PT_SHARD_GC_DROPPED_MAX * 24], enc[PT_SHARD_GC_DROPPED_MAX * 24 + 16];
    struct pt_shard_req q;
    struct op_ctx *o;
    unsigned i, n = 0;
    int len;
    for (i = 0; i < g->n_dropped; i++) {
        if (!g->dropped[i].erased) continue;
        uint8_t *p = data + (size_t)24 * n;
        pt_put_le64(p, g->dropped_time[i]);
        pt_put_le64(p + 8, g->dropped[i].blocks[0].b.service);
        pt_put_le64(p + 16, g->dropped[i].blocks[0].b.block);
        n++;
    }
    if (n == 0) return;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_FORGET_DROPPED;
    q.data_len = 24 * n;
    q.data_ptr = data;
    len = pt_shard_req_encode(&q, enc, sizeof(enc));
    o = calloc(1, sizeof(*o));
    if (!o || len < 0) {
        free(o);
        return;
    }
    if (pt_node_propose(s->node, enc, (size_t)len, write_done, o) != 0) free(o);
}

/* Back on the loop: every file whose blocks are all proven erased is forgotten (logged). */
static void gc_done(uv_work_t *w, int status)
{
    struct gc_round *g = w->data;
    struct shard_service *s = g->s;
    unsigned i;
    s->gc_running = 0;
    pt_metric_add(s->m_gc_rounds, 1);
    if (status == 0 && pt_node_can_serve(s->node)) {
        for (i = 0; i < g->n; i++)
            if (g->files[i].erased) {
                propose_own(s, PT_SHARD_FORGET_FILE, g->files[i].id);
                pt_metric_add(s->m_gc_files, 1);
            }
        gc_forget_dropped(s, g);
    }
    gc_round_free(g);
}

/* Start a GC round for files whose retention is over at `now` (leader only). */
/* Where a block is and the secret to certify its erase, from the registry's list. */
static void gc_locate(struct shard_service *s, struct gc_block *b, const struct pt_gc_block *gb)
{
    const struct pt_node_service *svc = pt_node_service_find(s->node, gb->service);
    b->b = *gb;
    if (svc && svc->has_secret && svc->addr[0]) {
        b->known = 1;
        snprintf(b->addr, sizeof(b->addr), "%s", svc->addr);
        memcpy(b->secret, svc->secret, sizeof(b->secret));
    }
}

static void gc_start(struct shard_service *s, uint64_t now)
{
    uint64_t ids[GC_FILES_MAX];
    struct pt_gc_block dropped[PT_SHARD_GC_DROPPED_MAX];
    struct gc_round *g;
    unsigned i;
    size_t j;
    int n =
        pt_shard_sm_gc_candidates(&s->sm, now, &s->gc_cursor, GC_SCAN_BUDGET, ids, GC_FILES_MAX);
    int nd;
    if (n < 0) n = 0;
    if (!(g = calloc(1, sizeof(*g)))) return;
    g->s = s;
    g->work.data = g;
    nd = pt_shard_sm_gc_dropped(&s->sm, now, dropped, g->dropped_time, PT_SHARD_GC_DROPPED_MAX);
    for (i = 0; nd > 0 && i < (unsigned)nd; i++) {
        struct gc_file *f = &g->dropped[g->n_dropped];
        if (!(f->blocks = calloc(1, sizeof(*f->blocks)))) break;
        f->n = 1;
        gc_locate(s, &f->blocks[0], &dropped[i]);
        g->n_dropped++;
    }
    for (i = 0; i < (unsigned)n; i++) {
        struct gc_file *f = &g->files[g->n];
        struct pt_gc_block *blocks;
        if (pt_shard_sm_file_blocks(&s->sm, ids[i], &blocks, &f->n) != 0) continue;
        f->id = ids[i];
        f->blocks = f->n ? calloc(f->n, sizeof(*f->blocks)) : NULL;
        if (f->n && !f->blocks) {
            free(blocks);
            continue;
        }
        for (j = 0; j < f->n; j++)
            gc_locate(s, &f->blocks[j], &blocks[j]);
        free(blocks);
        g->n++;
    }
    if ((g->n == 0 && g->n_dropped == 0) ||
        uv_queue_work(pt_node_loop(s->node), &g->work, gc_work, gc_done) != 0) {
        gc_round_free(g);
        return;
    }
    s->gc_running = 1;
}

/*
 * The leader proposes expiry now and then, stamped with its clock like every entry, and
 * collects the files whose retention is over.
 */
static void tick(void *ctx)
{
    struct shard_service *s = ctx;
    uint64_t now = pt_node_wall_ms();
    if (!pt_node_can_serve(s->node)) return;
    if (!s->gc_running && now - s->last_gc_ms >= GC_EVERY_MS) {
        s->last_gc_ms = now;
        gc_start(s, now);
    }
    pt_shard_repair_tick(&s->repair, now);
    pt_shard_compact_tick(&s->compact, now);
    if (now - s->last_expire_ms < EXPIRE_EVERY_MS) return;
    s->last_expire_ms = now;
    propose_own(s, PT_SHARD_EXPIRE, 0);
}

/* Repair progress and GC state, read at render time (on the loop). */
static void metrics_collect(void *ctx)
{
    struct shard_service *s = ctx;
    struct pt_metrics *m = pt_node_metrics(s->node);
    pt_metric_set(pt_metrics_counter(m, "petrel_repair_blocks_total", "",
                                     "Blocks rebuilt and swapped in by this replica's repair"),
                  (double)s->repair.repaired);
    pt_metric_set(pt_metrics_counter(m, "petrel_repair_failures_total", "",
                                     "Repairs of this replica that could not finish"),
                  (double)s->repair.failed);
    pt_metric_set(pt_metrics_gauge(m, "petrel_repair_running", "",
                                   "1 while a repair round is in flight"),
                  s->repair.running ? 1 : 0);
    pt_metric_set(pt_metrics_gauge(m, "petrel_repair_draining_services", "",
                                   "Block services this replica drains"),
                  (double)s->repair.ndraining);
    pt_metric_set(pt_metrics_gauge(m, "petrel_repair_stale_services", "",
                                   "Stale block services whose blocks repair watches"),
                  (double)s->repair.nstale);
    pt_metric_set(pt_metrics_gauge(m, "petrel_gc_running", "", "1 while a GC round is in flight"),
                  s->gc_running ? 1 : 0);
    pt_metric_set(pt_metrics_counter(m, "petrel_compact_runs_total", "",
                                     "Runs of small spans this replica merged and swapped in"),
                  (double)s->compact.runs);
    pt_metric_set(pt_metrics_counter(m, "petrel_compact_spans_merged_total", "",
                                     "Small spans replaced by merged spans (this replica)"),
                  (double)s->compact.spans_merged);
    pt_metric_set(pt_metrics_counter(m, "petrel_compact_bytes_total", "",
                                     "Bytes rewritten by compaction (this replica)"),
                  (double)s->compact.bytes_rewritten);
    pt_metric_set(pt_metrics_counter(m, "petrel_compact_stale_total", "",
                                     "Compactions a concurrent change of the file won"),
                  (double)s->compact.stale);
    pt_metric_set(pt_metrics_counter(m, "petrel_compact_failures_total", "",
                                     "Compactions that could not finish (retried later)"),
                  (double)s->compact.failed);
}

int pt_shard_server_run(const struct pt_shard_config *cfg, char *err, unsigned err_cap)
{
    struct shard_service *s = calloc(1, sizeof(*s));
    struct pt_node_config nc;
    char store[4096];
    int rc;
    if (!s) return -PT_ENOMEM;
    if (cfg->shard >= PT_SHARD_MAX) {
        snprintf(err, err_cap, "--shard must be below %d", PT_SHARD_MAX);
        free(s);
        return -PT_EINVAL;
    }
    snprintf(store, sizeof(store), "%s/store", cfg->dir);
    /* The replica's directory, durably in its parent (the node then fills it). */
    if ((rc = pt_mkdir_p(cfg->dir)) != 0 || (rc = pt_node_start_prepare_dir(cfg->dir)) != 0 ||
        (rc = pt_shard_sm_open(&s->sm, store, cfg->shard, 1)) != 0) {
        snprintf(err, err_cap, "cannot open the store in %s: %s", store, petrel_strerror(rc));
        free(s);
        return rc;
    }
    if (cfg->retention_ms) s->sm.retention_ms = cfg->retention_ms;
    pt_shard_fsm_init(&s->fsm, &s->sm);
    pt_prng_seed(&s->prng, pt_entropy_seed());
    s->started_ms = pt_node_wall_ms();
    s->placement_grace_ms = cfg->placement_grace_set ? cfg->placement_grace_ms : SERVICES_GRACE_MS;
    memset(&nc, 0, sizeof(nc));
    nc.registry = cfg->registry;
    nc.kind = PT_NODE_SHARD;
    nc.shard = cfg->shard;
    nc.replica = cfg->replica;
    nc.replicas = cfg->replicas;
    nc.dir = cfg->dir;
    nc.host = cfg->host;
    nc.http = cfg->http;
    nc.snapshot_entries = cfg->snapshot_entries;
    nc.raft = cfg->raft;
    nc.fsm = &s->fsm.fsm;
    nc.stream_snapshots_io = &s->fsm.io;
    nc.handler = handle;
    nc.tick = tick;
    nc.ctx = s;
    if ((rc = pt_node_start(&s->node, &nc, err, err_cap)) != 0) {
        pt_shard_sm_close(&s->sm);
        free(s);
        return rc;
    }
    pt_shard_repair_init(&s->repair, s->node, &s->sm, cfg->repair_rate, cfg->repair_stale_ms,
                         pt_prng_next(&s->prng));
    s->repair.paused = cfg->no_repair;
    {
        uint32_t below = cfg->compact_below ? cfg->compact_below : PT_COMPACT_BELOW_DEFAULT;
        pt_shard_compact_init(&s->compact, s->node, &s->sm, compact_place, s,
                              cfg->compact_off ? 0 : below,
                              cfg->compact_rate ? cfg->compact_rate : PT_COMPACT_RATE_DEFAULT,
                              pt_prng_next(&s->prng));
    }
    s->m_gc_rounds = pt_metrics_counter(pt_node_metrics(s->node), "petrel_gc_rounds_total", "",
                                        "GC rounds finished by this replica as leader");
    s->m_gc_files = pt_metrics_counter(pt_node_metrics(s->node), "petrel_gc_files_total", "",
                                       "Files whose blocks GC erased (then forgotten)");
    pt_metrics_on_collect(pt_node_metrics(s->node), metrics_collect, s);
    rc = pt_node_run(s->node);
    pt_shard_repair_close(&s->repair);
    pt_shard_compact_close(&s->compact);
    pt_shard_sm_close(&s->sm);
    free(s);
    return rc;
}
