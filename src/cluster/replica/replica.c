/*
 * The replica core (see replica.h): libraft over a given raft_io, group commit, read barriers.
 *
 * Everything runs on the env's one thread. Group commit: the first proposal of a loop turn
 * opens a batch and schedules a 0 ms timer that submits it; read requests of a turn join the
 * next barrier the same way. Invariants: a batch is submitted at most once; each proposal's
 * callback runs once (asserted); a read callback with status 0 runs only from a barrier of
 * the current term that completed successfully.
 */
#include "cluster/replica/replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/proto/shard_msgs.h"
#include "cluster/replica/entry.h"
#include "petrel/common.h"

#define ENTRY_CAP (PT_SHARD_BATCH_MAX * (PT_INLINE_MAX + 1024))
#define TICK_MS 100

struct proposal {
    pt_replica_done_fn done;
    void *ctx;
    int called;
};

struct batch {
    struct raft_apply req;
    struct pt_replica *r;
    unsigned count;
    struct proposal items[PT_SHARD_BATCH_MAX];
};

struct read_wait {
    pt_replica_read_fn done;
    void *ctx;
    struct read_wait *next;
};

/* One read barrier in flight and the reads it releases. */
struct read_round {
    struct raft_apply req;
    struct pt_replica *r;
    raft_term term;
    struct read_wait *reads;
    struct read_round *next; /* rounds in flight (close cancels none: libraft calls back) */
};

struct pt_replica {
    struct pt_replica_config cfg;
    struct raft raft;
    /* batch being filled, flushed on the next turn */
    struct batch *fill;
    struct pt_shard_entry_builder builder;
    uint8_t *entry;
    uint64_t flush_timer;
    /* reads waiting for the next barrier */
    struct read_wait *reads;
    uint64_t read_timer;
    /* the term barrier: a new leader serves nothing until a barrier of its term applied */
    raft_term served_term, barrier_term;
    struct raft_apply barrier;
    uint64_t tick_timer;
    unsigned rounds_in_flight, batches_in_flight;
    raft_index applying;      /* entry whose proposals' callbacks are running (0: none) */
    int closing, raft_closed; /* close asked / libraft's close callback ran */
    void (*close_done)(void *ctx);
    void *close_ctx;
};

static void proposal_call(struct proposal *p, int status, const uint8_t *reply, size_t len)
{
    PT_ASSERT(!p->called);
    p->called = 1;
    p->done(p->ctx, status, reply, len);
}

int pt_replica_is_leader(struct pt_replica *r)
{
    return !r->closing && raft_state(&r->raft) == RAFT_LEADER;
}

int pt_replica_can_serve(struct pt_replica *r)
{
    return pt_replica_is_leader(r) && r->served_term == r->raft.current_term;
}

unsigned pt_replica_leader(struct pt_replica *r)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&r->raft, &id, &addr);
    return (unsigned)id;
}

struct raft *pt_replica_raft(struct pt_replica *r)
{
    return &r->raft;
}

uint64_t pt_replica_applying_index(struct pt_replica *r)
{
    return r->applying;
}

static void maybe_closed(struct pt_replica *r);

/* ---- group commit ------------------------------------------------------------------------- */

static void batch_cb(struct raft_apply *req, int status, void *result)
{
    struct batch *b = req->data;
    struct pt_replica *r = b->r;
    struct pt_shard_apply_out *out = result;
    unsigned i;
    if (status == 0) PT_ASSERT(out != NULL && out->count == b->count);
    r->applying = status == 0 ? req->index : 0;
    for (i = 0; i < b->count; i++) {
        if (status == 0 && out && i < out->count)
            proposal_call(&b->items[i], 0, out->reply[i], out->len[i]);
        else
            /* Appended but not known to be applied here: it may still commit elsewhere. */
            proposal_call(&b->items[i], -PT_ECANCELED, NULL, 0);
    }
    r->applying = 0;
    free(b);
    r->batches_in_flight--;
    maybe_closed(r);
}

static void batch_fail(struct batch *b, int err)
{
    unsigned i;
    for (i = 0; i < b->count; i++)
        proposal_call(&b->items[i], err, NULL, 0);
    free(b);
}

static void batch_submit(struct pt_replica *r)
{
    struct batch *b = r->fill;
    struct raft_buffer buf;
    int len, rc;
    if (!b) return;
    r->fill = NULL;
    len = pt_shard_entry_finish(&r->builder);
    if (len < 0) {
        batch_fail(b, len);
        return;
    }
    /* Padded to 8 bytes (libraft's uv storage reloads only such entries); the envelope's
     * count makes the zeros harmless. */
    buf.len = ((size_t)len + 7) & ~(size_t)7;
    buf.base = raft_malloc(buf.len);
    if (!buf.base) {
        batch_fail(b, -PT_ENOMEM);
        return;
    }
    memset(buf.base, 0, buf.len);
    memcpy(buf.base, r->entry, (size_t)len);
    b->req.data = b;
    rc = raft_apply(&r->raft, &b->req, &buf, 1, batch_cb);
    if (rc) {
        raft_free(buf.base);
        batch_fail(b, rc == RAFT_NOTLEADER ? -PT_ENOTLEADER : -PT_EIO);
        return;
    }
    r->batches_in_flight++;
}

static void flush_cb(void *ctx)
{
    struct pt_replica *r = ctx;
    r->flush_timer = 0;
    batch_submit(r);
}

static int batch_open(struct pt_replica *r)
{
    r->fill = calloc(1, sizeof(*r->fill));
    if (!r->fill) return -PT_ENOMEM;
    r->fill->r = r;
    pt_shard_entry_init(&r->builder, r->entry, ENTRY_CAP, pt_env_wall_ms(r->cfg.env));
    if (!r->flush_timer) r->flush_timer = pt_env_timer(r->cfg.env, 0, flush_cb, r);
    return 0;
}

int pt_replica_propose(struct pt_replica *r, const uint8_t *req, size_t len,
                       pt_replica_done_fn done, void *ctx)
{
    int rc;
    if (!pt_replica_is_leader(r)) return -PT_ENOTLEADER;
    if (len > ENTRY_CAP / 2) return -PT_E2BIG;
    if (!r->fill && (rc = batch_open(r)) != 0) return rc;
    rc = pt_shard_entry_add_raw(&r->builder, req, len);
    if (rc == -PT_E2BIG || rc == -PT_EOVERFLOW) {
        batch_submit(r);
        if ((rc = batch_open(r)) != 0) return rc;
        rc = pt_shard_entry_add_raw(&r->builder, req, len);
    }
    if (rc) return rc;
    r->fill->items[r->fill->count].done = done;
    r->fill->items[r->fill->count].ctx = ctx;
    r->fill->count++;
    return 0;
}

/* ---- barriers ------------------------------------------------------------------------------ */

/*
 * A barrier is an empty batch (the envelope with no request) proposed like any entry: once it
 * is applied, every entry before it is too, and it committed in its term. Not libraft's
 * raft_barrier: libraft 0.15 leaves that entry's 8 bytes uninitialised, and heap garbage would
 * go to disk and the network (and make the simulator's runs differ from one seed).
 */
static int barrier_propose(struct pt_replica *r, struct raft_apply *req, raft_apply_cb cb)
{
    struct pt_shard_entry_builder b;
    uint8_t env[PT_SHARD_ENTRY_HEADER];
    struct raft_buffer buf;
    int len, rc;
    pt_shard_entry_init(&b, env, sizeof(env), pt_env_wall_ms(r->cfg.env));
    if ((len = pt_shard_entry_finish(&b)) < 0) return len;
    buf.len = ((size_t)len + 7) & ~(size_t)7;
    buf.base = raft_malloc(buf.len);
    if (!buf.base) return -PT_ENOMEM;
    memset(buf.base, 0, buf.len);
    memcpy(buf.base, env, (size_t)len);
    if ((rc = raft_apply(&r->raft, req, &buf, 1, cb)) != 0) {
        raft_free(buf.base);
        return rc == RAFT_NOTLEADER ? -PT_ENOTLEADER : -PT_EIO;
    }
    return 0;
}

/* ---- reads --------------------------------------------------------------------------------- */

static void reads_fail(struct read_wait *w, int status)
{
    while (w) {
        struct read_wait *next = w->next;
        w->done(w->ctx, status);
        free(w);
        w = next;
    }
}

static void round_cb(struct raft_apply *req, int status, void *result)
{
    struct read_round *rr = req->data;
    struct pt_replica *r = rr->r;
    (void)result;
    /* Committed in the term the reads arrived in, while this member still leads it. */
    int ok = status == 0 && !r->closing && rr->term == r->raft.current_term &&
             raft_state(&r->raft) == RAFT_LEADER;
    if (ok) PT_ASSERT(r->served_term == rr->term);
    reads_fail(rr->reads, ok ? 0 : -PT_ECANCELED);
    free(rr);
    r->rounds_in_flight--;
    maybe_closed(r);
}

static void read_round_start(void *ctx)
{
    struct pt_replica *r = ctx;
    struct read_round *rr;
    r->read_timer = 0;
    if (!r->reads) return;
    if (!pt_replica_can_serve(r)) {
        reads_fail(r->reads, -PT_ENOTLEADER);
        r->reads = NULL;
        return;
    }
    rr = calloc(1, sizeof(*rr));
    if (!rr) {
        reads_fail(r->reads, -PT_ECANCELED);
        r->reads = NULL;
        return;
    }
    rr->r = r;
    rr->term = r->raft.current_term;
    rr->reads = r->reads;
    rr->req.data = rr;
    r->reads = NULL;
    if (barrier_propose(r, &rr->req, round_cb) != 0) {
        reads_fail(rr->reads, -PT_ENOTLEADER);
        free(rr);
        return;
    }
    r->rounds_in_flight++;
}

int pt_replica_read(struct pt_replica *r, pt_replica_read_fn done, void *ctx)
{
    struct read_wait *w;
    if (!pt_replica_can_serve(r)) return -PT_ENOTLEADER;
    w = calloc(1, sizeof(*w));
    if (!w) return -PT_ENOMEM;
    w->done = done;
    w->ctx = ctx;
    w->next = r->reads;
    r->reads = w;
    if (!r->read_timer) r->read_timer = pt_env_timer(r->cfg.env, 0, read_round_start, r);
    return 0;
}

/* ---- the term barrier ------------------------------------------------------------------------ */

static void term_barrier_cb(struct raft_apply *req, int status, void *result)
{
    struct pt_replica *r = req->data;
    (void)result;
    if (status == 0 && r->barrier_term == r->raft.current_term) r->served_term = r->barrier_term;
    r->barrier_term = 0;
    r->rounds_in_flight--;
    maybe_closed(r);
}

void pt_replica_poll(struct pt_replica *r)
{
    if (!r->closing && raft_state(&r->raft) == RAFT_LEADER &&
        r->served_term != r->raft.current_term && r->barrier_term == 0) {
        r->barrier.data = r;
        if (barrier_propose(r, &r->barrier, term_barrier_cb) == 0) {
            r->barrier_term = r->raft.current_term;
            r->rounds_in_flight++;
        }
    }
}

static void tick_cb(void *ctx)
{
    struct pt_replica *r = ctx;
    r->tick_timer = pt_env_timer(r->cfg.env, TICK_MS, tick_cb, r);
    pt_replica_poll(r);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

int pt_replica_start(struct pt_replica **out, const struct pt_replica_config *cfg)
{
    struct pt_replica *r;
    struct raft_configuration conf;
    unsigned i, every;
    int rc;
    if (cfg->replicas != 1 && cfg->replicas != 3 && cfg->replicas != 5) return -PT_EINVAL;
    if (cfg->id < 1 || cfg->id > cfg->replicas || !cfg->io || !cfg->fsm || !cfg->env)
        return -PT_EINVAL;
    for (i = 0; i < cfg->replicas; i++)
        if (!cfg->addresses[i] || !cfg->addresses[i][0]) return -PT_EINVAL;
    r = calloc(1, sizeof(*r));
    if (!r) return -PT_ENOMEM;
    r->entry = malloc(ENTRY_CAP);
    if (!r->entry) {
        free(r);
        return -PT_ENOMEM;
    }
    r->cfg = *cfg;
    *out = NULL;
    if ((rc = raft_init(&r->raft, cfg->io, cfg->fsm, cfg->id, cfg->addresses[cfg->id - 1])) != 0)
        goto fail;
    r->raft.data = r;
    raft_configuration_init(&conf);
    for (i = 0; i < cfg->replicas; i++)
        if ((rc = raft_configuration_add(&conf, i + 1, cfg->addresses[i], RAFT_VOTER)) != 0) {
            raft_configuration_close(&conf);
            goto fail_raft;
        }
    rc = raft_bootstrap(&r->raft, &conf);
    raft_configuration_close(&conf);
    if (rc != 0 && rc != RAFT_CANTBOOTSTRAP) goto fail_raft;
    raft_set_election_timeout(&r->raft, cfg->election_timeout_ms ? cfg->election_timeout_ms : 1000);
    raft_set_heartbeat_timeout(&r->raft,
                               cfg->heartbeat_timeout_ms ? cfg->heartbeat_timeout_ms : 100);
    every = cfg->snapshot_entries ? cfg->snapshot_entries : 4096;
    raft_set_snapshot_threshold(&r->raft, every);
    raft_set_snapshot_trailing(&r->raft, every / 8 ? every / 8 : 1);
    raft_set_install_snapshot_timeout(
        &r->raft, cfg->install_snapshot_timeout_ms
                      ? cfg->install_snapshot_timeout_ms
                      : 5 * (cfg->election_timeout_ms ? cfg->election_timeout_ms : 1000));
    raft_set_pre_vote(&r->raft, true);
    if ((rc = raft_start(&r->raft)) != 0) goto fail_raft;
    r->tick_timer = pt_env_timer(cfg->env, TICK_MS, tick_cb, r);
    *out = r;
    return 0;
fail_raft:
    /* libraft is initialised: only raft_close releases it, and its close completes later (on
     * the loop): hand the failed replica back for pt_replica_close. */
    petrel_log(PT_LOG_ERROR, "replica", "raft start: %s", raft_strerror(rc));
    *out = r;
    return -PT_EIO;
fail:
    free(r->entry);
    free(r);
    *out = NULL;
    return -PT_EIO;
}

static void maybe_closed(struct pt_replica *r)
{
    void (*done)(void *ctx);
    void *ctx;
    if (!r->raft_closed || !r->close_done || r->rounds_in_flight || r->batches_in_flight) return;
    done = r->close_done;
    ctx = r->close_ctx;
    r->close_done = NULL;
    free(r->entry);
    free(r);
    done(ctx);
}

static void raft_closed(struct raft *raft)
{
    struct pt_replica *r = raft->data;
    /* libraft has failed every apply and barrier still pending before this point. */
    PT_ASSERT(r->rounds_in_flight == 0 && r->batches_in_flight == 0);
    r->raft_closed = 1;
    maybe_closed(r);
}

void pt_replica_close(struct pt_replica *r, void (*done)(void *ctx), void *ctx)
{
    r->closing = 1;
    r->close_done = done;
    r->close_ctx = ctx;
    if (r->tick_timer) pt_env_cancel(r->cfg.env, r->tick_timer);
    if (r->flush_timer) pt_env_cancel(r->cfg.env, r->flush_timer);
    if (r->read_timer) pt_env_cancel(r->cfg.env, r->read_timer);
    r->tick_timer = r->flush_timer = r->read_timer = 0;
    if (r->fill) {
        batch_fail(r->fill, -PT_ENOTLEADER); /* never reached the log */
        r->fill = NULL;
    }
    reads_fail(r->reads, -PT_ENOTLEADER);
    r->reads = NULL;
    raft_close(&r->raft, raft_closed);
}

int pt_replica_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    unsigned i;
    (void)fsm;
    if (*bufs) {
        for (i = 0; i < *n; i++)
            free((*bufs)[i].base);
        free(*bufs);
    }
    *bufs = NULL;
    *n = 0;
    return 0;
}
