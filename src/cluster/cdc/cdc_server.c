/*
 * CDC service on a replicated node (see cdc_server.h). Owns the raft_fsm of the CDC, the
 * client requests waiting for their transaction, and the driver that runs one step at a time
 * on a worker thread (blocking shard calls through its own router) and records the outcome
 * through Raft. The worker only reads a copy of the transaction; all state changes happen by
 * applying log entries on the loop thread.
 */
#include "cluster/cdc/cdc_server.h"

#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cdc/cdc_sm.h"
#include "cluster/cdc/cdc_steps.h"
#include "cluster/client/router.h"
#include "cluster/storage/durable.h"
#include "cluster/proto/cdc_msgs.h"
#include "cluster/replica/node.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/prng.h"

#define MAX_WAITERS 1024
#define RETRY_STEP_MS 200

struct waiter {
    uint64_t txn;
    struct pt_request *req;
};

struct cdc_service {
    struct pt_node *node;
    struct raft_fsm fsm;
    struct pt_cdc_sm sm;
    struct pt_shard_apply_out out;
    unsigned shards;
    unsigned next_shard; /* new directories go round-robin over the shards */
    struct pt_prng prng;
    struct waiter waiters[MAX_WAITERS];
    unsigned n_waiters;
    /* driver: IDLE -> RUNNING (worker runs a step) -> RECORDING (outcome in Raft) -> IDLE */
    uv_work_t work;
    enum { DRIVER_IDLE, DRIVER_RUNNING, DRIVER_RECORDING } driver;
    uint64_t retry_at;
    struct pt_cdc_txn cur;
    struct pt_cdc_outcome outcome;
    struct pt_router router; /* used by the worker thread only */
};

/* ---- raft_fsm ------------------------------------------------------------------------------ */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct cdc_service *s = fsm->data;
    int rc = pt_cdc_sm_apply(&s->sm, buf->base, buf->len, &s->out);
    *result = rc ? NULL : &s->out;
    return rc ? RAFT_NOMEM : 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    struct cdc_service *s = fsm->data;
    struct raft_buffer *b = malloc(sizeof(*b));
    uint8_t *data;
    size_t len;
    if (!b) return RAFT_NOMEM;
    if (pt_cdc_sm_snapshot(&s->sm, &data, &len) != 0) {
        free(b);
        return RAFT_NOMEM;
    }
    b->base = data;
    b->len = len;
    *bufs = b;
    *n = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct cdc_service *s = fsm->data;
    if (pt_cdc_sm_restore(&s->sm, buf->base, buf->len) != 0) return RAFT_CORRUPT;
    raft_free(buf->base);
    return 0;
}

/* ---- answering clients ----------------------------------------------------------------------- */

static void reply_txn(struct pt_request *req, int32_t status, uint64_t result)
{
    uint8_t body[8];
    if (status) {
        pt_request_reply_error(req, status, petrel_strerror(status), NULL);
        return;
    }
    pt_put_le64(body, result);
    pt_request_reply(req, body, 8);
}

/* Answer waiters whose transaction finished; hand the rest to the leader if we lost it. */
static void check_waiters(struct cdc_service *s)
{
    unsigned i = 0;
    int leader = pt_node_is_leader(s->node);
    while (i < s->n_waiters) {
        const struct pt_cdc_txn *t = pt_cdc_sm_find(&s->sm, s->waiters[i].txn);
        if (t && t->done)
            reply_txn(s->waiters[i].req, t->status, t->result);
        else if (!leader || !t)
            /* Its BEGIN is in the log: the next leader finishes it. The client's repeat (same
             * key) joins it there. */
            pt_node_reply_status(s->node, s->waiters[i].req, -PT_ECANCELED);
        else {
            i++;
            continue;
        }
        s->waiters[i] = s->waiters[--s->n_waiters];
    }
}

/* ---- driver ------------------------------------------------------------------------------------
 */

static void drive(struct cdc_service *s);

static void recorded(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct cdc_service *s = ctx;
    (void)reply;
    (void)len;
    s->driver = DRIVER_IDLE;
    if (status) s->retry_at = uv_now(pt_node_loop(s->node)) + RETRY_STEP_MS;
    check_waiters(s);
    drive(s);
}

static void step_work(uv_work_t *w)
{
    struct cdc_service *s = w->data;
    pt_cdc_run_step(&s->router, s->shards, &s->cur, &s->outcome);
}

static void step_done(uv_work_t *w, int status)
{
    struct cdc_service *s = w->data;
    uint8_t item[64];
    int n = -1;
    s->driver = DRIVER_IDLE;
    if (status == 0 && s->outcome.kind == PT_CDC_OUT_STEP)
        n = pt_cdc_enc_step_repl(item, sizeof(item), s->cur.id, s->outcome.step, s->outcome.x,
                                 s->outcome.type, s->outcome.err, s->outcome.repl,
                                 s->outcome.repl_type);
    else if (status == 0 && s->outcome.kind == PT_CDC_OUT_FINISH)
        n = pt_cdc_enc_finish(item, sizeof(item), s->cur.id, s->outcome.status, s->outcome.result);
    if (n < 0 || pt_node_propose(s->node, item, (size_t)n, recorded, s) != 0) {
        /* Shards unreachable or we lost the lead: try again a little later. */
        s->retry_at = uv_now(pt_node_loop(s->node)) + RETRY_STEP_MS;
        return;
    }
    s->driver = DRIVER_RECORDING; /* the next step needs this outcome recorded */
}

static void drive(struct cdc_service *s)
{
    const struct pt_cdc_txn *t;
    uv_loop_t *loop = pt_node_loop(s->node);
    if (s->driver != DRIVER_IDLE) return;
    if (!pt_node_can_serve(s->node) || uv_now(loop) < s->retry_at) return;
    t = pt_cdc_sm_next_active(&s->sm);
    if (!t) return;
    s->cur = *t;
    s->work.data = s;
    if (uv_queue_work(loop, &s->work, step_work, step_done) == 0) s->driver = DRIVER_RUNNING;
}

/* ---- requests ----------------------------------------------------------------------------------
 */

struct begin_ctx {
    struct cdc_service *s;
    struct pt_request *req;
};

static void begun(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct begin_ctx *b = ctx;
    struct cdc_service *s = b->s;
    struct pt_cursor c;
    uint64_t txn;
    uint8_t done;
    int32_t st;
    uint64_t result;
    int rc;
    if (status) {
        pt_node_reply_status(s->node, b->req, status);
        free(b);
        return;
    }
    rc = pt_shard_reply_open(reply, len, &c);
    txn = pt_dec_u64(&c);
    done = pt_dec_u8(&c);
    st = (int32_t)pt_dec_u32(&c);
    result = pt_dec_u64(&c);
    if (rc || !pt_cursor_ok(&c))
        pt_request_reply_error(b->req, rc ? rc : -PT_EPROTO, "transaction refused", NULL);
    else if (done)
        reply_txn(b->req, st, result);
    else if (s->n_waiters == MAX_WAITERS)
        pt_request_reply_error(b->req, -PT_EAGAIN, "too many transactions waiting", NULL);
    else {
        s->waiters[s->n_waiters].txn = txn;
        s->waiters[s->n_waiters].req = b->req;
        s->n_waiters++;
        drive(s);
    }
    free(b);
}

static void handle(void *ctx, struct pt_request *req)
{
    struct cdc_service *s = ctx;
    struct pt_cdc_req q;
    struct begin_ctx *b;
    uint8_t item[700];
    int rc, n;
    if (pt_request_kind(req) != PT_MSG_CDC_REQ) {
        pt_request_reply_error(req, -PT_ENOTSUP, "unknown message kind for the CDC", NULL);
        return;
    }
    if ((rc = pt_cdc_req_decode(&q, pt_request_body(req), pt_request_body_len(req))) != 0) {
        pt_request_reply_error(req, rc, "malformed CDC request", NULL);
        return;
    }
    if (PT_INODE_SHARD(q.dir) >= s->shards ||
        (pt_cdc_op_is_rename(q.op) && PT_INODE_SHARD(q.dir2) >= s->shards)) {
        /* No such directory: no shard has it, so no transaction could ever progress. */
        pt_request_reply_error(req, -PT_ENOENT, "directory on a shard the deployment lacks", NULL);
        return;
    }
    if (!pt_node_can_serve(s->node)) {
        pt_node_reply_not_leader(s->node, req);
        return;
    }
    n = pt_cdc_enc_begin(item, sizeof(item), &q, (uint8_t)(s->next_shard++ % s->shards));
    b = malloc(sizeof(*b));
    if (n < 0 || !b) {
        free(b);
        pt_request_reply_error(req, n < 0 ? n : -PT_ENOMEM, "cannot record the transaction", NULL);
        return;
    }
    b->s = s;
    b->req = req;
    if ((rc = pt_node_propose(s->node, item, (size_t)n, begun, b)) != 0) {
        free(b);
        pt_node_reply_status(s->node, req, rc);
    }
}

static void tick(void *ctx)
{
    struct cdc_service *s = ctx;
    check_waiters(s);
    drive(s);
}

int pt_cdc_server_run(const struct pt_cdc_config *cfg, char *err, unsigned err_cap)
{
    struct cdc_service *s;
    struct pt_node_config nc;
    int rc;
    if (cfg->shards == 0 || cfg->shards > PT_SHARD_MAX) {
        snprintf(err, err_cap, "--shards must be 1..%d", PT_SHARD_MAX);
        return -PT_EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) return -PT_ENOMEM;
    pt_cdc_sm_init(&s->sm);
    s->shards = cfg->shards;
    pt_prng_seed(&s->prng, pt_entropy_seed());
    s->next_shard = (unsigned)pt_prng_below(&s->prng, cfg->shards);
    pt_router_init(&s->router, cfg->registry, 5000, 2000, pt_prng_next(&s->prng));
    s->fsm.version = 2;
    s->fsm.data = s;
    s->fsm.apply = fsm_apply;
    s->fsm.snapshot = fsm_snapshot;
    s->fsm.snapshot_finalize = pt_replica_snapshot_finalize;
    s->fsm.restore = fsm_restore;
    memset(&nc, 0, sizeof(nc));
    nc.registry = cfg->registry;
    nc.kind = PT_NODE_CDC;
    nc.replica = cfg->replica;
    nc.replicas = cfg->replicas;
    nc.dir = cfg->dir;
    nc.host = cfg->host;
    nc.http = cfg->http;
    nc.raft = cfg->raft;
    nc.fsm = &s->fsm;
    nc.handler = handle;
    nc.tick = tick;
    nc.ctx = s;
    /* The replica's directory, durably in its parent (the node then fills it). */
    if ((rc = pt_mkdir_p(cfg->dir)) != 0 || (rc = pt_node_start_prepare_dir(cfg->dir)) != 0 ||
        (rc = pt_node_start(&s->node, &nc, err, err_cap)) != 0) {
        if (!err[0]) snprintf(err, err_cap, "cannot use %s", cfg->dir);
        pt_cdc_sm_free(&s->sm);
        free(s);
        return rc;
    }
    rc = pt_node_run(s->node);
    pt_cdc_sm_free(&s->sm);
    free(s);
    return rc;
}
