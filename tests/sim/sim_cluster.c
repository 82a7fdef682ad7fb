/*
 * The simulated cluster (see sim_cluster.h): replicas, a minimal shard service on the replica
 * core and the run; the clients are in sim_client.c, the checker in sim_check.c.
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
#include "sim_cluster_impl.h"

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
    if (in->io_ready) {
        in->n->c->res->raft_drop_auth += pt_raft_io_stats(&in->io)->drop_auth;
        in->n->c->res->raft_drop_replay += pt_raft_io_stats(&in->io)->drop_replay;
        pt_raft_io_free(&in->io);
    }
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
 * from its disk, never left running on pages the kernel may have dropped (what systemd does
 * in production when the replica exits; see pt_raft_failed_fn). */
static void node_watch(void *ctx)
{
    struct inc *in = ctx;
    in->watch_timer = 0;
    if (in->dead) return;
    if (in->storage_failed) {
        struct node *n = in->n;
        n->c->res->storage_restarts++;
        sim_proc_crash(n->proc);
        sim_proc_restart_later(n->proc, 100 + sim_below(n->c->sim, 1000));
        return;
    }
    in->watch_timer = pt_env_timer(in->env, 200, node_watch, in);
}

/* The raft_io stopped on a storage failure: the supervisor restarts the process at once. */
static void node_storage_failed(void *ctx, const char *reason)
{
    struct inc *in = ctx;
    if (in->dead || in->storage_failed) return;
    if (in->n->c->cfg.verbose)
        fprintf(stderr, "%8llu s%ur%u %s\n", (unsigned long long)sim_now(in->n->c->sim),
                in->n->shard, in->n->rid, reason);
    in->storage_failed = 1;
    if (in->watch_timer) pt_env_cancel(in->env, in->watch_timer);
    in->watch_timer = pt_env_timer(in->env, 0, node_watch, in);
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
        sc_violate(c, "s%ur%u: cannot open LMDB in %s", n->shard, n->rid, n->dir);
        free(in);
        return;
    }
    in->sm_open = 1;
    pt_shard_fsm_init(&in->fsm, &in->sm);
    in->wrap.version = 2;
    in->wrap.data = in;
    in->wrap.apply = sc_wrap_apply;
    in->wrap.snapshot = sc_wrap_snapshot;
    in->wrap.snapshot_finalize = sc_wrap_snapshot_finalize;
    in->wrap.restore = sc_wrap_restore;
    memset(&iocfg, 0, sizeof(iocfg));
    iocfg.env = in->env;
    iocfg.cluster_id = 0x5153494d50455452ull;
    iocfg.group = PT_RAFT_GROUP(1, n->shard);
    iocfg.replicas = c->cfg.replicas;
    iocfg.listen = n->raft_addr;
    iocfg.resolve = resolve_peer;
    iocfg.resolve_ctx = in;
    iocfg.on_failed = node_storage_failed;
    iocfg.failed_ctx = in;
    iocfg.auth = c->cfg.auth;
    iocfg.no_auth = c->cfg.auth == NULL;
    iocfg.stream_snapshots = 1;
    rc = pt_raft_io_init(&in->io, &iocfg, err, sizeof(err));
    if (rc == -PT_ECORRUPT || rc == -PT_EVERSION) {
        sc_violate(c, "s%ur%u: Raft data refused at start-up: %s", n->shard, n->rid, err);
        inc_free(in);
        return;
    }
    if (rc == 0) {
        in->io_ready = 1;
        in->fsm.io = &in->io;
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
    /* Every run takes snapshots, restores them and sends them to lagging followers. */
    c->snapshot_entries = 64;
    /* Every replica, not only a majority, must converge after healing. */
    c->strict_liveness = 1;
    sim_faults_default(&c->faults);
    c->dir = dir;
}

/* Whether replica r of shard s has applied everything the leader holds. */
int sc_replica_converged(struct sim_cluster *c, unsigned s, unsigned r, raft_index leader_last)
{
    struct inc *in = c->nodes[s][r].cur;
    struct raft *raft;
    if (!in || !in->rep) return 0;
    raft = pt_replica_raft(in->rep);
    return raft_last_applied(raft) >= c->model[s].committed &&
           raft_last_applied(raft) == raft_last_index(raft) && raft_last_index(raft) == leader_last;
}

/* The last index of shard s's one serving leader (0 when there is not exactly one). */
raft_index sc_shard_leader_last(struct sim_cluster *c, unsigned s)
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
    raft_index last = sc_shard_leader_last(c, s);
    if (!last) return 0;
    for (r = 0; r < c->cfg.replicas; r++)
        n += (unsigned)sc_replica_converged(c, s, r, last);
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

/* A failed PT_ASSERT ends the process (petrel_assert_fail aborts after this hook): say which
 * seed it was and how to replay it first. */
static void assert_hook(void *ctx, const char *file, int line, const char *cond)
{
    struct sim_cluster *c = ctx;
    sc_violate(c, "PT_ASSERT(%s) failed at %s:%d", cond, file, line);
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
        pt_env_listen(cl->env, cl->addr, sc_on_client_reply, cl);
    }
    for (s = 0; s < cfg->shards; s++)
        for (r = 0; r < cfg->replicas; r++)
            node_start(&c->nodes[s][r]);
    /* warm-up without faults: leaders, then the per-shard directories */
    sim_run_until(c->sim, 3000);
    for (i = 0; i < cfg->clients; i++)
        pt_env_timer(c->clients[i].env, 1 + i, sc_client_next, &c->clients[i]);
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
        sc_violate(c, "clients still busy %llu ms after healing (no progress)",
                (unsigned long long)cfg->settle_ms);
    c->stop_clients = 1;
    /*
     * Everyone should converge (cfg->strict_liveness, the default). Without it a lagging
     * minority is only counted (Raft promises progress with a majority). A shard without a
     * serving leader and a converged majority is always a violation.
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
        sc_violate(c, "replicas did not converge %llu ms after healing:%s",
                (unsigned long long)cfg->settle_ms, state);
    }
settled:
    if (!c->violated) sc_final_checks(c);
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
    {
        size_t k;
        free(c->files[i].data);
        for (k = 0; k < c->files[i].n_old; k++)
            free(c->files[i].old[k].data);
        free(c->files[i].old);
    }
    free(c->files);
    free(c);
    return 0;
}

