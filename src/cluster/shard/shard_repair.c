/*
 * Repair rounds of a shard leader (see shard_repair.h). A round:
 *  1. on the loop: takes up to REPAIR_MAX tasks — blocks on draining services, repair-queue
 *     entries from a moving cursor (so an entry that cannot be repaired yet does not starve the
 *     rest), blocks on services an operator declared failed, blocks the block index places
 *     on services stale for longer than stale_ms, then blocks of spans with two blocks in one
 *     failure domain (a bounded walk over the span table from a cursor; copied like a drain)
 *     — reads each task's span from
 *     the store, and picks the new home: a fresh service with a secret, not in a failure domain
 *     of the span's other blocks;
 *  2. task after task, the env-driven rebuild machine (repair_rebuild.c) on the node's env:
 *     reads survivors whole (each verified by the block service's page CRCs and against the
 *     block CRC the span records), rebuilds the block (mirrored: a good copy; Reed-Solomon:
 *     pt_ec_decode of the whole block from D survivors, byte-wise the same code as the span's
 *     cells), checks it against its recorded CRC, writes it with a write certificate and
 *     checks the write proof; every transfer paced to `rate` by env timers. Its block I/O here
 *     is the blocking client on the libuv thread pool, one request at a time (io_*);
 *  3. on the loop: proposes REPLACE_BLOCK (old service, new service) for each written block;
 *     for a queue entry whose span no longer lists the block, REPLACE_BLOCK with new service 0
 *     forgets the entry.
 * Orphan sweep (in place of a repair round, never beside one, and only while no swap is in
 * flight): lists one service's blocks (BLOCK_LIST, 1024 at a time, services in turn); a block of
 * this shard that `blockidx` does not place there becomes a candidate with the time it was
 * first seen; a candidate still unlisted, after a read barrier, once the retention period has
 * passed since then is erased with an erase certificate (its CRC and size from the listing).
 * Exclusion makes the check sound: a block id is minted once (ADD_SPAN records it in
 * `blockidx` before any writer has a certificate for it), and the only other way a copy
 * becomes listed is a repair's swap, which cannot be in flight during a sweep.
 * Everything it needs from its node (services, clock, leadership, proposals, block I/O) goes
 * through struct pt_repair_host, so the simulator runs this same code (tests/sim/sim_blocks.c)
 * under crashes of the leader between rebuild and swap and after the swap; the orphan sweep
 * and the thread-pool block I/O are the node's alone.
 * Crash safety: nothing is decided outside Raft. A leader that dies after step 2 leaves an
 * unused copy on the new service; the next leader repeats the task (writing the same block to
 * the same or another service is idempotent or just another unused copy), and the swap's
 * compare makes a duplicate swap a no-op.
 */
#include "cluster/shard/shard_repair.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "cluster/client/blocks_client.h"
#include "cluster/ec/ec.h"
#include "cluster/proto/blocks_msg.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define LOG_MODULE "repair"
#define REPAIR_EVERY_MS 1000
#define REPAIR_MAX 8 /* blocks per round */

struct repair_task {
    uint64_t file;
    struct pt_span span; /* as the store listed it when the round started (no cell CRCs) */
    unsigned lost;       /* index of the block to rebuild */
    int forget;          /* no span lists the block: only forget the queue entry */
    int drain;           /* the block's service is draining: copy it from there first */
    char addr[PT_SPAN_BLOCKS_MAX][PT_REG_ADDR_MAX]; /* "" when unknown or stale */
    uint64_t new_service;
    char new_addr[PT_REG_ADDR_MAX];
    uint8_t new_secret[PT_REG_SECRET_SIZE];
    int written; /* rebuilt, stored, write proof checked */
};

struct repair_round {
    struct pt_rebuild rb; /* first: a cancelled busy rebuild frees the round with itself */
    struct pt_shard_repair *r;
    struct repair_task t[REPAIR_MAX];
    unsigned n, cur;
    struct pt_rebuild_io io;
    /* the one block I/O in flight (the rebuild is sequential), on the thread pool */
    uv_work_t work;
    char io_addr[PT_REG_ADDR_MAX];
    uint64_t io_block, io_cert, io_proof;
    uint32_t io_crc, io_size, io_got;
    const uint8_t *io_wdata;
    uint8_t *io_rdata;
    int io_write, io_rc;
    pt_rebuild_read_cb io_read_done;
    pt_rebuild_write_cb io_write_done;
    void *io_arg;
};

void pt_shard_repair_init_host(struct pt_shard_repair *r, const struct pt_repair_host *host,
                               struct pt_shard_sm *sm, uint64_t rate, uint64_t stale_ms,
                               uint64_t seed)
{
    memset(r, 0, sizeof(*r));
    r->host = *host;
    r->sm = sm;
    r->rate = rate;
    r->pace.rate = rate;
    r->stale_ms = stale_ms;
    pt_prng_seed(&r->prng, seed);
}

/* The node as a repair host. */
static const struct pt_node_service *node_services(void *ctx, size_t *count)
{
    return pt_node_services(ctx, count);
}
static const struct pt_node_service *node_service_find(void *ctx, uint64_t id)
{
    return pt_node_service_find(ctx, id);
}
static struct pt_env *node_env(void *ctx)
{
    return pt_node_env(ctx);
}
static int node_can_serve(void *ctx)
{
    return pt_node_can_serve(ctx);
}
static int node_propose(void *ctx, const uint8_t *req, size_t len, pt_node_done_fn done, void *dctx)
{
    return pt_node_propose(ctx, req, len, done, dctx);
}

void pt_shard_repair_init(struct pt_shard_repair *r, struct pt_node *node, struct pt_shard_sm *sm,
                          uint64_t rate, uint64_t stale_ms, uint64_t seed)
{
    struct pt_repair_host h = {.services = node_services,
                               .service_find = node_service_find,
                               .env = node_env,
                               .can_serve = node_can_serve,
                               .propose = node_propose,
                               .io = NULL,
                               .ctx = node};
    pt_shard_repair_init_host(r, &h, sm, rate, stale_ms, seed);
    r->node = node;
}

static const struct pt_node_service *host_services(struct pt_shard_repair *r, size_t *count)
{
    return r->host.services(r->host.ctx, count);
}
static const struct pt_node_service *host_find(struct pt_shard_repair *r, uint64_t id)
{
    return r->host.service_find(r->host.ctx, id);
}

/* --- step 1: choosing tasks (loop) ------------------------------------------------------- */

static int declared_failed(const struct pt_shard_repair *r, uint64_t id)
{
    unsigned j;
    for (j = 0; j < r->ndeclared; j++)
        if (r->declared[j] == id) return 1;
    return 0;
}

int pt_shard_repair_avoids(const struct pt_shard_repair *r, uint64_t id)
{
    unsigned j;
    for (j = 0; j < r->ndraining; j++)
        if (r->draining[j] == id) return 1;
    return declared_failed(r, id);
}

/* Re-read the draining and failed marks from the store (cheap: one read transaction each). */
static void marks_refresh(struct pt_shard_repair *r)
{
    int n = pt_shard_sm_draining(r->sm, r->draining, PT_ARRAY_SIZE(r->draining));
    r->ndraining = n > 0 ? (unsigned)n : 0;
    n = pt_shard_sm_failed(r->sm, r->declared, PT_ARRAY_SIZE(r->declared));
    r->ndeclared = n > 0 ? (unsigned)n : 0;
}

int pt_shard_span_at(struct pt_shard_sm *sm, uint64_t file, uint64_t offset, struct pt_span *out)
{
    static uint8_t reply[PT_SHARD_MSG_MAX + 4];
    uint8_t req[64];
    struct pt_shard_req q;
    struct pt_cursor body;
    size_t len;
    int n, rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_SPANS;
    q.id = file;
    q.offset = offset;
    q.max = 1;
    n = pt_shard_req_encode(&q, req, sizeof(req));
    if (n < 0) return n;
    rc = pt_shard_sm_query(sm, req, (size_t)n, reply, sizeof(reply), &len);
    if (rc) return rc;
    rc = pt_shard_reply_open(reply, len, &body);
    if (rc) return rc == -PT_ENOENT || rc == -PT_EISDIR ? -PT_ENOENT : rc;
    (void)pt_dec_u64(&body);
    if (pt_dec_u16(&body) < 1) return -PT_ENOENT;
    if (pt_span_decode(&body, out)) return -PT_ECORRUPT;
    if (out->offset != offset) return -PT_ENOENT;
    out->cell_crcs = NULL; /* points into `reply`; repair checks whole blocks */
    out->inline_data = NULL;
    return 0;
}

static int span_read(struct pt_shard_repair *r, uint64_t file, uint64_t offset, struct pt_span *out)
{
    return pt_shard_span_at(r->sm, file, offset, out);
}

/* A fresh service for block `lost` of the span, in a failure domain its other blocks do not
 * use: 0 with the task's new home filled in, or -PT_ENOSPC. */
static int choose_home(struct pt_shard_repair *r, struct repair_task *t)
{
    size_t count, i, k, order[PT_NODE_MAX_SERVICES];
    const struct pt_node_service *all = host_services(r, &count);
    unsigned n = pt_span_block_count(&t->span), j;
    for (i = 0; i < count; i++)
        order[i] = i;
    for (i = count; i > 1; i--) {
        size_t x = (size_t)pt_prng_below(&r->prng, i), y = order[i - 1];
        order[i - 1] = order[x];
        order[x] = y;
    }
    for (k = 0; k < count; k++) {
        const struct pt_node_service *c = &all[order[k]];
        int clash = 0;
        if (c->stale || !c->addr[0] || !c->has_secret) continue;
        if (pt_shard_repair_avoids(r, c->id)) continue;
        if (c->capacity && c->used + t->span.block_size > c->capacity) continue;
        for (j = 0; j < n && !clash; j++) {
            const struct pt_node_service *o;
            if (t->span.blocks[j].service == c->id) clash = 1;
            if (j == t->lost) continue;
            o = host_find(r, t->span.blocks[j].service);
            if (o && strcmp(o->domain, c->domain) == 0) clash = 1;
        }
        if (clash) continue;
        t->new_service = c->id;
        snprintf(t->new_addr, sizeof(t->new_addr), "%s", c->addr);
        memcpy(t->new_secret, c->secret, sizeof(t->new_secret));
        return 0;
    }
    return -PT_ENOSPC;
}

#define TASK_COPY 1  /* copy the block from its own service first (drain, domain move) */
#define TASK_QUIET 2 /* no home is not worth a warning (a domain move retried every walk) */

/* Turn (service, block, file, offset) into a task of the round; 1 if added. */
static int task_add(struct pt_shard_repair *r, struct repair_round *g,
                    const struct pt_repair_entry *e, int flags)
{
    int drain = (flags & TASK_COPY) != 0;
    struct repair_task *t = &g->t[g->n];
    unsigned i, n;
    int rc;
    for (i = 0; i < g->n; i++)
        if (g->t[i].file == e->file && g->t[i].span.offset == e->offset) return 0; /* one per span */
    memset(t, 0, sizeof(*t));
    t->file = e->file;
    t->drain = drain;
    rc = span_read(r, e->file, e->offset, &t->span);
    if (rc == 0) {
        n = pt_span_block_count(&t->span);
        for (i = 0; i < n; i++)
            if (t->span.blocks[i].block == e->block && t->span.blocks[i].service == e->service)
                break;
        if (i == n) rc = -PT_ENOENT;
        t->lost = i;
    }
    if (rc == -PT_ENOENT) {
        /* no span lists it any more: forget the entry */
        t->forget = 1;
        t->span.offset = e->offset;
        t->span.blocks[0].service = e->service;
        t->span.blocks[0].block = e->block;
        t->lost = 0;
        g->n++;
        return 1;
    }
    if (rc || t->span.storage == PT_STORAGE_INLINE || !t->span.certified) return 0;
    if (choose_home(r, t) != 0) {
        petrel_log((flags & TASK_QUIET) ? PT_LOG_DEBUG : PT_LOG_WARN, LOG_MODULE,
                   "block %016" PRIx64 " of file %016" PRIx64 ": no fresh service in a failure "
                   "domain the span does not use",
                   e->block, e->file);
        return 0;
    }
    for (i = 0; i < pt_span_block_count(&t->span); i++) {
        const struct pt_node_service *s = host_find(r, t->span.blocks[i].service);
        if (s && !s->stale && s->addr[0] && !declared_failed(r, s->id)) /* never read a failed one */
            snprintf(t->addr[i], sizeof(t->addr[i]), "%s", s->addr);
    }
    g->n++;
    return 1;
}

/* Queue entries from the cursor on; the cursor wraps when the queue is exhausted. */
static void take_queue(struct pt_shard_repair *r, struct repair_round *g)
{
    static uint8_t reply[PT_SHARD_MSG_MAX + 4];
    uint8_t req[64];
    struct pt_shard_req q;
    struct pt_cursor body;
    size_t len;
    unsigned cnt, i;
    int n;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_REPAIR_LIST;
    q.target = r->queue_service;
    q.offset = r->queue_block;
    q.max = REPAIR_MAX;
    n = pt_shard_req_encode(&q, req, sizeof(req));
    if (n < 0 || pt_shard_sm_query(r->sm, req, (size_t)n, reply, sizeof(reply), &len) != 0 ||
        pt_shard_reply_open(reply, len, &body) != 0)
        return;
    cnt = pt_dec_u16(&body);
    for (i = 0; i < cnt && g->n < REPAIR_MAX; i++) {
        struct pt_repair_entry e;
        if (pt_repair_entry_decode(&body, &e) != 0) return;
        r->queue_service = e.service;
        r->queue_block = e.block + 1;
        task_add(r, g, &e, 0);
    }
    if (i == cnt && pt_dec_u8(&body) == 0) r->queue_service = r->queue_block = 0;
}

/* Track since when each service is stale; take blocks of the first one stale too long. */
static void take_stale(struct pt_shard_repair *r, struct repair_round *g, uint64_t now)
{
    size_t count, i;
    const struct pt_node_service *all = host_services(r, &count);
    unsigned j, kept = 0;
    /* forget services that came back or left the list */
    for (j = 0; j < r->nstale; j++) {
        const struct pt_node_service *s = host_find(r, r->stale[j].id);
        if (s && s->stale) r->stale[kept++] = r->stale[j];
    }
    r->nstale = kept;
    for (i = 0; i < count && r->nstale < PT_NODE_MAX_SERVICES; i++) {
        if (!all[i].stale) continue;
        for (j = 0; j < r->nstale && r->stale[j].id != all[i].id; j++)
            ;
        if (j == r->nstale) {
            r->stale[r->nstale].id = all[i].id;
            r->stale[r->nstale++].since = now;
        }
    }
    if (!r->stale_ms) return;
    for (j = 0; j < r->nstale && g->n < REPAIR_MAX; j++) {
        struct pt_repair_entry e[REPAIR_MAX];
        int n, k;
        if (now - r->stale[j].since < r->stale_ms) continue;
        n = pt_shard_sm_service_blocks(r->sm, r->stale[j].id, &r->stale_block, e,
                                       REPAIR_MAX - g->n);
        for (k = 0; k < n && g->n < REPAIR_MAX; k++)
            task_add(r, g, &e[k], 0);
        /* one stale service at a time (its cursor is r->stale_block); one that holds nothing
         * of this shard must not hold up the others */
        if (n > 0) break;
    }
}

/* Blocks of the first draining service that still holds some (copied, not rebuilt, while it
 * serves: a failed copy falls back to rebuilding from the span's other blocks). */
static void take_draining(struct pt_shard_repair *r, struct repair_round *g)
{
    unsigned j;
    for (j = 0; j < r->ndraining && g->n < REPAIR_MAX; j++) {
        struct pt_repair_entry e[REPAIR_MAX];
        int k, m = pt_shard_sm_service_blocks(r->sm, r->draining[j], &r->drain_block, e,
                                              REPAIR_MAX - g->n);
        for (k = 0; k < m && g->n < REPAIR_MAX; k++)
            task_add(r, g, &e[k], TASK_COPY);
        if (m > 0) break; /* one service at a time: its cursor is r->drain_block */
    }
}

/* Blocks of the first declared-failed service that still holds some: rebuilt from the spans'
 * other blocks at once (the operator's word replaces the stale timeout). */
static void take_failed(struct pt_shard_repair *r, struct repair_round *g)
{
    unsigned j;
    for (j = 0; j < r->ndeclared && g->n < REPAIR_MAX; j++) {
        struct pt_repair_entry e[REPAIR_MAX];
        int k, m = pt_shard_sm_service_blocks(r->sm, r->declared[j], &r->fail_block, e,
                                              REPAIR_MAX - g->n);
        for (k = 0; k < m && g->n < REPAIR_MAX; k++)
            task_add(r, g, &e[k], 0);
        if (m > 0) break; /* one service at a time: its cursor is r->fail_block */
    }
}

/* Spans whose blocks sit in fewer failure domains than blocks (a span written while the
 * registry listed fewer domains, or a repair that had no other choice): the later block of a
 * shared domain is copied, like a drain, onto a fresh service in a domain the span does not
 * use. A bounded walk per round from a cursor over the span table, so a large store costs
 * each round the same. */
#define DOMAIN_WALK 256 /* spans looked at per round */

struct domain_walk {
    struct pt_shard_repair *r;
    struct pt_repair_entry e[REPAIR_MAX];
    unsigned n, max;
};

static void domain_span(void *ctx, uint64_t file, const struct pt_span *sp, unsigned mask)
{
    struct domain_walk *w = ctx;
    unsigned n = pt_span_block_count(sp), i, j;
    (void)mask;
    if (sp->storage == PT_STORAGE_INLINE || !sp->certified || w->n >= w->max) return;
    for (i = 1; i < n; i++) {
        const struct pt_node_service *s = host_find(w->r, sp->blocks[i].service);
        if (!s || s->stale || declared_failed(w->r, s->id)) continue; /* the other takes */
        for (j = 0; j < i; j++) {
            const struct pt_node_service *o = host_find(w->r, sp->blocks[j].service);
            if (o && strcmp(o->domain, s->domain) == 0) break;
        }
        if (j == i) continue;
        memset(&w->e[w->n], 0, sizeof(w->e[w->n]));
        w->e[w->n].file = file;
        w->e[w->n].offset = sp->offset;
        w->e[w->n].service = sp->blocks[i].service;
        w->e[w->n].block = sp->blocks[i].block;
        w->n++;
        return; /* one per span and round */
    }
}

static void take_domains(struct pt_shard_repair *r, struct repair_round *g)
{
    struct domain_walk w;
    unsigned k;
    if (g->n >= REPAIR_MAX) return;
    memset(&w, 0, sizeof(w));
    w.r = r;
    w.max = REPAIR_MAX - g->n;
    if (pt_shard_sm_span_walk(r->sm, &r->domain_file, &r->domain_offset, DOMAIN_WALK, domain_span,
                              &w) < 0)
        return;
    for (k = 0; k < w.n && g->n < REPAIR_MAX; k++)
        if (task_add(r, g, &w.e[k], TASK_COPY | TASK_QUIET)) r->moved_domain++;
}

/* --- step 2: rebuilding (the env-driven machine, repair_rebuild.c) ------------------------ */

/* The production block I/O under the machine: the blocking client on the libuv thread pool,
 * the completion on the loop. One request at a time per round. */
static void io_work(uv_work_t *w)
{
    struct repair_round *g = w->data;
    struct pt_call_opts opts = {.timeout_ms = 5000, .retry_budget_ms = 2000};
    if (g->io_write) {
        opts.retry_budget_ms = 3000;
        g->io_rc = pt_blocks_write(g->io_addr, g->io_block, g->io_crc, g->io_wdata, g->io_size,
                                   g->io_cert, &g->io_proof, &opts);
        return;
    }
    {
        uint32_t size = 0;
        g->io_rc = pt_blocks_read(g->io_addr, g->io_block, 0, g->io_size, g->io_rdata, &g->io_got,
                                  &size, &opts);
        if (g->io_rc == 0 && size != g->io_size) g->io_rc = -PT_ECORRUPT;
    }
}

static void io_after(uv_work_t *w, int status)
{
    struct repair_round *g = w->data;
    /* the callback may free the round: take what it needs first */
    int rc = status ? -PT_ECANCELED : g->io_rc;
    void *arg = g->io_arg;
    if (g->io_write) {
        pt_rebuild_write_cb done = g->io_write_done;
        uint64_t proof = g->io_proof;
        done(arg, rc, proof);
    } else {
        pt_rebuild_read_cb done = g->io_read_done;
        uint8_t *data = g->io_rdata;
        size_t got = rc == 0 ? g->io_got : 0;
        g->io_rdata = NULL;
        done(arg, rc, data, got);
        free(data);
    }
}

/* A request that could not be queued completes as failed from the loop. */
static void io_failed(void *ctx)
{
    struct repair_round *g = ctx;
    io_after(&g->work, 0);
}

static void io_queue(struct repair_round *g)
{
    g->work.data = g;
    if (uv_queue_work(pt_node_loop(g->r->node), &g->work, io_work, io_after) != 0) {
        g->io_rc = -PT_ENOMEM;
        pt_env_timer(pt_node_env(g->r->node), 0, io_failed, g);
    }
}

static void io_read(void *ctx, const char *addr, uint64_t block, uint32_t size,
                    pt_rebuild_read_cb done, void *arg)
{
    struct repair_round *g = ctx;
    snprintf(g->io_addr, sizeof(g->io_addr), "%s", addr);
    g->io_write = 0;
    g->io_block = block;
    g->io_size = size;
    g->io_got = 0;
    g->io_read_done = done;
    g->io_arg = arg;
    g->io_rdata = malloc(size);
    if (!g->io_rdata) {
        g->io_rc = -PT_ENOMEM;
        pt_env_timer(pt_node_env(g->r->node), 0, io_failed, g);
        return;
    }
    io_queue(g);
}

static void io_write(void *ctx, const char *addr, uint64_t block, uint32_t crc, const uint8_t *data,
                     uint32_t size, uint64_t cert, pt_rebuild_write_cb done, void *arg)
{
    struct repair_round *g = ctx;
    snprintf(g->io_addr, sizeof(g->io_addr), "%s", addr);
    g->io_write = 1;
    g->io_block = block;
    g->io_crc = crc;
    g->io_wdata = data; /* the machine holds it until done */
    g->io_size = size;
    g->io_cert = cert;
    g->io_proof = 0;
    g->io_write_done = done;
    g->io_arg = arg;
    io_queue(g);
}

static const struct pt_rebuild_io repair_io_uv = {.read = io_read, .write = io_write};

static void round_next(struct repair_round *g);
static void round_done(struct repair_round *g);

static void task_rebuilt(void *ctx, struct pt_rebuild *b, int status)
{
    struct repair_round *g = ctx;
    (void)b;
    if (status == 0) g->t[g->cur].written = 1;
    g->cur++;
    round_next(g);
}

/* Start the rebuild of the next task that needs one; the round ends after the last. */
static void round_next(struct repair_round *g)
{
    while (g->cur < g->n) {
        struct repair_task *t = &g->t[g->cur];
        struct pt_rebuild *b = &g->rb;
        if (!t->forget) {
            memset(b, 0, sizeof(*b));
            b->env = g->r->host.env(g->r->host.ctx);
            if (g->r->host.io) {
                b->io = g->r->host.io;
            } else {
                g->io = repair_io_uv;
                g->io.ctx = g;
                b->io = &g->io;
            }
            b->pace = &g->r->pace;
            b->span = t->span;
            b->lost = t->lost;
            b->drain = t->drain;
            memcpy(b->addr, t->addr, sizeof(b->addr));
            b->new_service = t->new_service;
            snprintf(b->new_addr, sizeof(b->new_addr), "%s", t->new_addr);
            memcpy(b->new_secret, t->new_secret, sizeof(b->new_secret));
            b->done = task_rebuilt;
            b->ctx = g;
            if (pt_rebuild_start(b) == 0) return;
        }
        g->cur++;
    }
    round_done(g);
}

/* --- step 3: the swaps (loop) -------------------------------------------------------------- */

struct swap_ctx {
    struct pt_shard_repair *r;
    uint64_t file, block, from, to;
};

static void swap_done(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct swap_ctx *x = ctx;
    struct pt_cursor body;
    int swapped = 0;
    if (x->r->swaps_pending) x->r->swaps_pending--;
    if (status == 0 && pt_shard_reply_open(reply, len, &body) == 0) swapped = pt_dec_u8(&body);
    if (x->to) {
        if (swapped) x->r->repaired++;
        petrel_log(status ? PT_LOG_WARN : PT_LOG_INFO, LOG_MODULE,
                   "block %016" PRIx64 " of file %016" PRIx64 " moved from %016" PRIx64
                   " to %016" PRIx64 ": %s",
                   x->block, x->file, x->from, x->to,
                   status ? petrel_strerror(status) : swapped ? "swapped" : "already done");
    }
    free(x);
}

static void propose_swap(struct pt_shard_repair *r, const struct repair_task *t)
{
    struct pt_shard_req q;
    uint8_t enc[128];
    struct swap_ctx *x;
    int n;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_REPLACE_BLOCK;
    q.id = t->file;
    q.offset = t->span.offset;
    q.target = t->span.blocks[t->lost].block;
    q.n_services = 2;
    q.services[0] = t->span.blocks[t->lost].service;
    q.services[1] = t->forget ? 0 : t->new_service;
    n = pt_shard_req_encode(&q, enc, sizeof(enc));
    x = calloc(1, sizeof(*x));
    if (!x || n < 0) {
        free(x);
        return;
    }
    x->r = r;
    x->file = q.id;
    x->block = q.target;
    x->from = q.services[0];
    x->to = q.services[1];
    if (r->host.propose(r->host.ctx, enc, (size_t)n, swap_done, x) != 0)
        free(x);
    else
        r->swaps_pending++;
}

static void round_done(struct repair_round *g)
{
    struct pt_shard_repair *r = g->r;
    unsigned i, done = 0;
    r->running = 0;
    r->round = NULL;
    if (r->host.can_serve(r->host.ctx))
        for (i = 0; i < g->n; i++) {
            if (g->t[i].written || g->t[i].forget) {
                propose_swap(r, &g->t[i]);
                done++;
            } else {
                r->failed++;
            }
        }
    /* A full round that finished every task: there is likely more, start the next at the
     * next tick instead of a second later (the cursors move past what this round took; the
     * pacing holds per round). A round with failures keeps the pause. */
    if (g->n == REPAIR_MAX && done == g->n) r->last_ms = 0;
    free(g);
}


/* --- the orphan sweep ---------------------------------------------------------------------- */

#define SWEEP_LIST_MAX 1024 /* blocks listed per sweep */
#define SWEEP_ERASE_MAX 16  /* orphans erased per sweep */

struct sweep_round {
    uv_work_t work;
    struct pt_shard_repair *r;
    uint64_t service, start;
    char addr[PT_REG_ADDR_MAX];
    uint8_t secret[PT_REG_SECRET_SIZE];
    struct pt_block_stat *list; /* the listing (worker), malloc'd */
    size_t n;
    int more, rc;
    struct pt_orphan erase[SWEEP_ERASE_MAX];
    unsigned nerase, erased[SWEEP_ERASE_MAX];
};

/* A quarter of the retention period between sweeps, between 1 s and 60 s. */
static uint64_t sweep_every(const struct pt_shard_repair *r)
{
    uint64_t every = r->sm->retention_ms / 4;
    return every < 1000 ? 1000 : every > 60000 ? 60000 : every;
}

static int sweep_due(const struct pt_shard_repair *r, uint64_t now_ms)
{
    return r->node && r->swaps_pending == 0 && now_ms - r->sweep_ms >= sweep_every(r);
}

static void sweep_list_work(uv_work_t *w)
{
    struct sweep_round *g = w->data;
    struct pt_call_opts opts = {.timeout_ms = 5000, .retry_budget_ms = 2000};
    g->rc = pt_blocks_list(g->addr, g->start, SWEEP_LIST_MAX, &g->list, &g->n, &g->more, &opts);
}

static void sweep_erase_work(uv_work_t *w)
{
    struct sweep_round *g = w->data;
    struct pt_call_opts opts = {.timeout_ms = 5000, .retry_budget_ms = 2000};
    unsigned i;
    for (i = 0; i < g->nerase; i++) {
        const struct pt_orphan *o = &g->erase[i];
        uint64_t proof = 0;
        g->erased[i] =
            pt_blocks_erase(g->addr, o->block, o->crc, o->size,
                            pt_block_mac(g->secret, PT_BLOCK_ERASE_CERT, o->service, o->block,
                                         o->crc, o->size),
                            &proof, &opts) == 0 &&
            pt_block_mac_check(g->secret, PT_BLOCK_ERASE_PROOF, o->service, o->block, o->crc,
                               o->size, proof);
    }
}

static void orphan_forget(struct pt_shard_repair *r, unsigned i)
{
    r->orphans[i] = r->orphans[--r->norphans];
}

static void sweep_erase_done(uv_work_t *w, int status)
{
    struct sweep_round *g = w->data;
    struct pt_shard_repair *r = g->r;
    unsigned i, j;
    for (i = 0; status == 0 && i < g->nerase; i++) {
        if (!g->erased[i]) continue;
        r->orphans_erased++;
        petrel_log(PT_LOG_INFO, LOG_MODULE,
                   "orphan block %016" PRIx64 " on %016" PRIx64 " erased (no span lists it)",
                   g->erase[i].block, g->erase[i].service);
        for (j = 0; j < r->norphans; j++)
            if (r->orphans[j].service == g->erase[i].service &&
                r->orphans[j].block == g->erase[i].block) {
                orphan_forget(r, j);
                break;
            }
    }
    free(g->list);
    free(g);
    r->running = 0;
}

/* After the read barrier: the store holds everything committed, so "unlisted" is current. */
static void sweep_decide(void *ctx, int status)
{
    struct sweep_round *g = ctx;
    struct pt_shard_repair *r = g->r;
    uint64_t now = pt_node_wall_ms();
    unsigned i;
    for (i = 0; status == 0 && i < r->norphans && g->nerase < SWEEP_ERASE_MAX; i++) {
        struct pt_orphan *o = &r->orphans[i];
        if (o->service != g->service || now - o->seen_ms < r->sm->retention_ms) continue;
        if (pt_shard_sm_block_listed(r->sm, o->service, o->block) != 0) continue;
        g->erase[g->nerase++] = *o;
    }
    if (status != 0 || g->nerase == 0 || r->swaps_pending ||
        uv_queue_work(pt_node_loop(r->node), &g->work, sweep_erase_work, sweep_erase_done) != 0) {
        free(g->list);
        free(g);
        r->running = 0;
    }
}

static void sweep_list_done(uv_work_t *w, int status)
{
    struct sweep_round *g = w->data;
    struct pt_shard_repair *r = g->r;
    uint64_t now = pt_node_wall_ms(), last = g->more && g->n ? g->list[g->n - 1].block_id : UINT64_MAX;
    size_t k;
    unsigned i;
    if (status != 0 || g->rc != 0 || !r->host.can_serve(r->host.ctx)) goto end;
    /* candidates of this range the listing no longer shows are gone (erased by GC, or lost) */
    for (i = 0; i < r->norphans;) {
        const struct pt_orphan *o = &r->orphans[i];
        int seen = 0;
        if (o->service == g->service && o->block >= g->start && o->block <= last)
            for (k = 0; k < g->n && !seen; k++)
                seen = g->list[k].block_id == o->block;
        else
            seen = 1;
        if (!seen)
            orphan_forget(r, i);
        else
            i++;
    }
    for (k = 0; k < g->n; k++) {
        const struct pt_block_stat *b = &g->list[k];
        int listed;
        if (PT_INODE_SHARD(b->block_id) != r->sm->shard) continue; /* another shard's */
        listed = pt_shard_sm_block_listed(r->sm, g->service, b->block_id);
        for (i = 0; i < r->norphans; i++)
            if (r->orphans[i].service == g->service && r->orphans[i].block == b->block_id) break;
        if (listed != 0) {
            if (i < r->norphans) orphan_forget(r, i);
        } else if (i == r->norphans && r->norphans < PT_REPAIR_ORPHANS_MAX) {
            struct pt_orphan *o = &r->orphans[r->norphans++];
            o->service = g->service;
            o->block = b->block_id;
            o->crc = b->crc;
            o->size = b->size;
            o->seen_ms = now;
        }
    }
    if (g->more && g->n) {
        r->sweep_start = last + 1;
    } else {
        r->sweep_start = 0;
        r->sweep_next++;
    }
    if (pt_node_read(r->node, sweep_decide, g) == 0) return;
end:
    if (g->rc != 0 || status != 0) { /* the service did not answer: the next one */
        r->sweep_next++;
        r->sweep_start = 0;
    }
    free(g->list);
    free(g);
    r->running = 0;
}

/* Start listing the next service: 0 when a sweep runs now. */
static int sweep_start(struct pt_shard_repair *r, uint64_t now_ms)
{
    size_t count, k;
    const struct pt_node_service *all = host_services(r, &count);
    struct sweep_round *g;
    r->sweep_ms = now_ms;
    for (k = 0; k < count; k++) {
        const struct pt_node_service *c = &all[(r->sweep_next + k) % count];
        if (c->stale || !c->addr[0] || !c->has_secret) continue;
        if ((r->sweep_next + k) % count != r->sweep_next % count) r->sweep_start = 0;
        r->sweep_next = (unsigned)((r->sweep_next + k) % count);
        g = calloc(1, sizeof(*g));
        if (!g) return -PT_ENOMEM;
        g->r = r;
        g->work.data = g;
        g->service = c->id;
        g->start = r->sweep_start;
        snprintf(g->addr, sizeof(g->addr), "%s", c->addr);
        memcpy(g->secret, c->secret, sizeof(g->secret));
        if (uv_queue_work(pt_node_loop(r->node), &g->work, sweep_list_work, sweep_list_done) != 0) {
            free(g);
            return -PT_EIO;
        }
        r->running = 1;
        return 0;
    }
    return -PT_ENOENT;
}

void pt_shard_repair_tick(struct pt_shard_repair *r, uint64_t now_ms)
{
    struct repair_round *g;
    if (now_ms - r->marks_ms >= REPAIR_EVERY_MS) {
        r->marks_ms = now_ms;
        marks_refresh(r);
    }
    if (r->running || r->paused) return;
    if (sweep_due(r, now_ms) && sweep_start(r, now_ms) == 0) return;
    if (now_ms - r->last_ms < REPAIR_EVERY_MS) return;
    r->last_ms = now_ms;
    g = calloc(1, sizeof(*g));
    if (!g) return;
    g->r = r;
    /* rounds back to back share one budget epoch (the pacer starts a new one after a pause) */
    take_draining(r, g);
    take_queue(r, g);
    take_failed(r, g);
    take_stale(r, g, now_ms);
    take_domains(r, g);
    if (g->n == 0) {
        free(g);
        return;
    }
    r->running = 1;
    r->round = g;
    round_next(g);
}

void pt_shard_repair_close(struct pt_shard_repair *r)
{
    struct repair_round *g = r->round;
    if (!g) return;
    pt_rebuild_release(&g->rb); /* the loop has stopped: nothing is in flight */
    free(g);
    r->round = NULL;
    r->running = 0;
}

/* --- REPAIR_STATUS ------------------------------------------------------------------------- */

#define STATUS_SLOTS 1024 /* open addressing over service ids; > 2 x PT_NODE_MAX_SERVICES */

struct status_service {
    uint64_t id, blocks, queued, below;
};

struct status_scan {
    struct pt_shard_repair *r;
    struct status_service slot[STATUS_SLOTS];
    unsigned used;
    uint64_t spans, below;
};

/* The slot of service id (created on first sight), or NULL when the table is full. */
static struct status_service *status_slot(struct status_scan *x, uint64_t id)
{
    unsigned h = (unsigned)((id * 0x9e3779b97f4a7c15ull) >> 54) % STATUS_SLOTS, k;
    for (k = 0; k < STATUS_SLOTS; k++, h = (h + 1) % STATUS_SLOTS) {
        if (x->slot[h].id == id) return &x->slot[h];
        if (x->slot[h].id == 0) {
            if (x->used + 1 >= STATUS_SLOTS / 2) return NULL;
            x->used++;
            x->slot[h].id = id;
            return &x->slot[h];
        }
    }
    return NULL;
}

/*
 * A block is missing from its span's policy when it sits in the repair queue, when its service
 * is unknown to the registry, stale or declared failed, or when an earlier block of the span is
 * in the same failure domain. A span below policy counts once in the total and once for each
 * service holding one of its missing blocks.
 */
static void status_span(void *ctx, uint64_t file, const struct pt_span *sp, unsigned queued)
{
    struct status_scan *x = ctx;
    unsigned n = pt_span_block_count(sp), i, j;
    int below = 0;
    (void)file;
    if (sp->storage == PT_STORAGE_INLINE || n == 0 || !sp->certified) return;
    x->spans++;
    for (i = 0; i < n; i++) {
        const struct pt_node_service *s = host_find(x->r, sp->blocks[i].service);
        struct status_service *v = status_slot(x, sp->blocks[i].service);
        int missing = (queued >> i) & 1;
        if (!s || s->stale || declared_failed(x->r, s->id)) missing = 1;
        for (j = 0; s && j < i && !missing; j++) {
            const struct pt_node_service *o = host_find(x->r, sp->blocks[j].service);
            if (o && strcmp(o->domain, s->domain) == 0) missing = 1;
        }
        if (v) {
            v->blocks++;
            v->queued += (queued >> i) & 1;
            v->below += (uint64_t)missing;
        }
        below |= missing;
    }
    x->below += (uint64_t)below;
}

int pt_shard_repair_status(struct pt_shard_repair *r, struct pt_cursor *out)
{
    struct status_scan *x = calloc(1, sizeof(*x));
    uint64_t queued = 0;
    unsigned k, count = 0;
    uint8_t *count_at;
    int rc;
    if (!x) return -PT_ENOMEM;
    x->r = r;
    marks_refresh(r);
    for (k = 0; k < r->ndraining; k++) /* shown even when they hold nothing any more */
        (void)status_slot(x, r->draining[k]);
    for (k = 0; k < r->ndeclared; k++)
        (void)status_slot(x, r->declared[k]);
    rc = pt_shard_sm_span_scan(r->sm, status_span, x, &queued);
    if (rc == 0) {
        pt_enc_u64(out, x->spans);
        pt_enc_u64(out, x->below);
        pt_enc_u64(out, queued);
        pt_enc_u64(out, r->repaired);
        pt_enc_u64(out, r->failed);
        count_at = pt_cursor_take(out, 2);
        for (k = 0; k < STATUS_SLOTS && count_at; k++) {
            const struct status_service *v = &x->slot[k];
            uint8_t flags = 0;
            unsigned j;
            if (!v->id) continue;
            for (j = 0; j < r->ndraining; j++)
                if (r->draining[j] == v->id) flags |= 1;
            if (declared_failed(r, v->id)) flags |= 2;
            pt_enc_u64(out, v->id);
            pt_enc_u8(out, flags);
            pt_enc_u64(out, v->blocks);
            pt_enc_u64(out, v->queued);
            pt_enc_u64(out, v->below);
            count++;
        }
        if (count_at) pt_put_le16(count_at, (uint16_t)count);
        if (!pt_cursor_ok(out)) rc = -PT_EOVERFLOW;
    }
    free(x);
    return rc;
}
