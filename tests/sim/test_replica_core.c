/*
 * The replica core's contract, case by case, on three replicas in the simulator (no random
 * faults: each case makes the one it needs): what each error tells the caller, callbacks run
 * exactly once, and a leader cut off from its followers never answers a read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/proto/shard_msgs.h"
#include "cluster/replica/raft_io.h"
#include "cluster/replica/replica.h"
#include "cluster/shard/shard_fsm.h"
#include "cluster/shard/shard_sm.h"
#include "petrel/common.h"
#include "sim.h"
#include "test.h"

#define N 3

struct member {
    struct sim_proc *proc;
    struct raft_io io;
    struct pt_shard_sm sm;
    struct pt_shard_fsm fsm;
    struct pt_replica *rep;
    char raft_addr[32];
};

struct trio {
    struct sim *sim;
    struct member m[N];
};

static int resolve(void *ctx, raft_id id, char *buf, size_t cap)
{
    (void)ctx;
    if (id < 1 || id > N) return -PT_EINVAL;
    snprintf(buf, cap, "r%u/raft", (unsigned)id - 1);
    return 0;
}

static void trio_start(struct trio *t)
{
    struct sim_faults f;
    unsigned i, j;
    sim_faults_none(&f);
    t->sim = sim_new(test_seed(), &f);
    for (i = 0; i < N; i++)
        snprintf(t->m[i].raft_addr, sizeof(t->m[i].raft_addr), "r%u/raft", i);
    for (i = 0; i < N; i++) {
        struct member *m = &t->m[i];
        struct pt_raft_io_config io;
        struct pt_replica_config rc;
        char name[16], dir[600], err[200];
        snprintf(name, sizeof(name), "r%u", i);
        snprintf(dir, sizeof(dir), "%s/%s", test_tmpdir(), name);
        m->proc = sim_proc_add(t->sim, name);
        CHECK_OK(pt_shard_sm_open(&m->sm, dir, 0, 1));
        pt_shard_fsm_init(&m->fsm, &m->sm);
        memset(&io, 0, sizeof(io));
        io.env = sim_proc_env(m->proc);
        io.cluster_id = 1;
        io.group = PT_RAFT_GROUP(1, 0);
        io.replicas = N;
        io.listen = m->raft_addr;
        io.resolve = resolve;
        CHECK_OK(pt_raft_io_init(&m->io, &io, err, sizeof(err)));
        memset(&rc, 0, sizeof(rc));
        rc.env = sim_proc_env(m->proc);
        rc.io = &m->io;
        rc.fsm = &m->fsm.fsm;
        rc.id = i + 1;
        rc.replicas = N;
        for (j = 0; j < N; j++)
            rc.addresses[j] = t->m[j].raft_addr;
        CHECK_OK(pt_replica_start(&m->rep, &rc));
    }
}

static void closed(void *ctx)
{
    struct member *m = ctx;
    pt_raft_io_free(&m->io);
    pt_shard_sm_close(&m->sm);
    m->rep = NULL;
}

static void trio_stop(struct trio *t)
{
    unsigned i;
    for (i = 0; i < N; i++)
        if (t->m[i].rep) pt_replica_close(t->m[i].rep, closed, &t->m[i]);
    sim_run_until(t->sim, sim_now(t->sim) + 2000);
    for (i = 0; i < N; i++)
        CHECK(t->m[i].rep == NULL);
    sim_free(t->sim);
}

static int leader_of(struct trio *t)
{
    unsigned i;
    for (i = 0; i < N; i++)
        if (t->m[i].rep && pt_replica_can_serve(t->m[i].rep)) return (int)i;
    return -1;
}

static int has_leader(void *ctx) { return leader_of(ctx) >= 0; }

struct outcome {
    int calls, status;
    uint64_t index;
    struct pt_replica *rep;
};

static void done(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct outcome *o = ctx;
    (void)reply;
    (void)len;
    o->calls++;
    o->status = status;
    if (status == 0) o->index = pt_replica_applying_index(o->rep);
}

static void read_done(void *ctx, int status)
{
    struct outcome *o = ctx;
    o->calls++;
    o->status = status;
}

static int encode_construct(uint8_t *buf, size_t cap, uint64_t cookie)
{
    struct pt_shard_req q;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_CONSTRUCT_FILE;
    q.cookie = cookie;
    return pt_shard_req_encode(&q, buf, cap);
}

/* Cut member i off from the others, both ways. */
static void isolate(struct trio *t, unsigned i)
{
    unsigned j;
    for (j = 0; j < N; j++)
        if (j != i) {
            sim_block(t->sim, t->m[i].proc, t->m[j].proc, 1);
            sim_block(t->sim, t->m[j].proc, t->m[i].proc, 1);
        }
}

TEST_T(replica_errors_say_what_happened, 120)
{
    struct trio t;
    struct outcome a = {0}, b = {0}, c = {0}, d[3];
    uint8_t req[64];
    int len = encode_construct(req, sizeof(req), 7), l, f;
    CHECK(len > 0);
    trio_start(&t);
    CHECK(sim_run_until_cond(t.sim, 10000, has_leader, &t));
    l = leader_of(&t);
    f = (l + 1) % N;
    /* a follower refuses at once: no callback will come */
    CHECK_EQ(pt_replica_propose(t.m[f].rep, req, (size_t)len, done, &a), -PT_ENOTLEADER);
    CHECK_EQ(pt_replica_read(t.m[f].rep, read_done, &a), -PT_ENOTLEADER);
    /* the leader commits: status 0, once, with the entry's index; group commit shares it */
    memset(d, 0, sizeof(d));
    for (unsigned i = 0; i < 3; i++) {
        d[i].rep = t.m[l].rep;
        CHECK_OK(pt_replica_propose(t.m[l].rep, req, (size_t)len, done, &d[i]));
    }
    CHECK_EQ(d[0].calls, 0); /* never inside the call */
    sim_run_until(t.sim, sim_now(t.sim) + 500);
    CHECK_EQ(d[0].calls, 1);
    CHECK_EQ(d[0].status, 0);
    CHECK(d[0].index > 0);
    CHECK_EQ(d[1].index, d[0].index);
    CHECK_EQ(d[2].index, d[0].index);
    /* a read on the leader is released by its barrier */
    CHECK_OK(pt_replica_read(t.m[l].rep, read_done, &b));
    sim_run_until(t.sim, sim_now(t.sim) + 500);
    CHECK_EQ(b.calls, 1);
    CHECK_EQ(b.status, 0);
    /* cut off, the leader still believes it leads for a while: its proposal is appended but
     * cannot commit (outcome unknown), its read is never answered with 0 */
    isolate(&t, (unsigned)l);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.rep = t.m[l].rep;
    CHECK_OK(pt_replica_propose(t.m[l].rep, req, (size_t)len, done, &a));
    CHECK_OK(pt_replica_read(t.m[l].rep, read_done, &b));
    sim_run_until(t.sim, sim_now(t.sim) + 5000);
    CHECK_EQ(a.calls, 1);
    CHECK_EQ(a.status, -PT_ECANCELED);
    CHECK_EQ(b.calls, 1);
    CHECK(b.status != 0);
    CHECK(!pt_replica_is_leader(t.m[l].rep));
    /* closing with a proposal still in the batch: never appended, -PT_ENOTLEADER, once */
    sim_heal(t.sim);
    CHECK(sim_run_until_cond(t.sim, sim_now(t.sim) + 10000, has_leader, &t));
    l = leader_of(&t);
    c.rep = t.m[l].rep;
    CHECK_OK(pt_replica_propose(t.m[l].rep, req, (size_t)len, done, &c));
    pt_replica_close(t.m[l].rep, closed, &t.m[l]);
    sim_run_until(t.sim, sim_now(t.sim) + 100);
    CHECK_EQ(c.calls, 1);
    CHECK_EQ(c.status, -PT_ENOTLEADER);
    trio_stop(&t);
}
