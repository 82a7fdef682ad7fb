/*
 * The replica core's contract, case by case, on three replicas in the simulator (no random
 * faults: each case makes the one it needs): what each error tells the caller, callbacks run
 * exactly once, and a leader cut off from its followers never answers a read.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
    int failed_calls; /* pt_raft_failed_fn calls */
    char failed_reason[200];
};

struct trio {
    struct sim *sim;
    struct member m[N];
    int exit_on_failure; /* no on_failed hook: the production default (log and exit) */
};

static void member_failed(void *ctx, const char *reason)
{
    struct member *m = ctx;
    m->failed_calls++;
    snprintf(m->failed_reason, sizeof(m->failed_reason), "%s", reason);
}

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
    memset(t->m, 0, sizeof(t->m));
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
        if (!t->exit_on_failure) {
            io.on_failed = member_failed;
            io.failed_ctx = m;
        }
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
    /* the process ends with its replica: its listeners (the freed raft_io's) go with it */
    sim_proc_crash(m->proc);
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

/*
 * A failed fsync stops the Raft I/O (libraft 0.15 told RAFT_IOERR drops the entry from its
 * in-memory log and reuses the index in the same term): the owner is told once, later, with a
 * reason; libraft never sees the failure (the entry stays in its log, not stored), nothing
 * leaves the stopped replica, the proposal's outcome stays unknown, and close completes.
 */
TEST_T(replica_storage_failure_stops_the_io_and_never_reaches_libraft, 120)
{
    struct trio t;
    struct sim_faults f;
    struct outcome a = {0};
    uint8_t req[64];
    int len = encode_construct(req, sizeof(req), 9), l;
    raft_index last;
    uint64_t sent;
    unsigned i;
    struct raft *raft;
    CHECK(len > 0);
    memset(&t, 0, sizeof(t));
    trio_start(&t);
    CHECK(sim_run_until_cond(t.sim, 10000, has_leader, &t));
    l = leader_of(&t);
    raft = pt_replica_raft(t.m[l].rep);
    sim_faults_none(&f);
    f.fsync_fail_ppm = 1000000; /* every fsync fails from now on, everywhere */
    sim_set_faults(t.sim, &f);
    a.rep = t.m[l].rep;
    last = raft_last_index(raft);
    CHECK_OK(pt_replica_propose(t.m[l].rep, req, (size_t)len, done, &a));
    CHECK_EQ(t.m[l].failed_calls, 0); /* never inside the call */
    sim_run_until(t.sim, sim_now(t.sim) + 50);
    CHECK_EQ(t.m[l].failed_calls, 1);
    CHECK_MSG(strstr(t.m[l].failed_reason, "Raft storage failed: fsync of the log") != NULL, "%s",
              t.m[l].failed_reason);
    /* libraft still holds the entry, unstored: its index was not handed out again */
    CHECK_EQ(raft_last_index(raft), last + 1);
    CHECK(raft->last_stored <= last);
    sent = pt_raft_io_stats(&t.m[l].io)->sent;
    sim_run_until(t.sim, sim_now(t.sim) + 5000);
    CHECK_EQ(t.m[l].failed_calls, 1); /* once */
    CHECK_EQ(pt_raft_io_stats(&t.m[l].io)->sent, sent); /* stopped: nothing leaves */
    CHECK(raft_last_index(raft) >= last + 1);
    CHECK(a.calls == 0 || a.status != 0); /* never acknowledged */
    for (i = 0; i < N; i++)
        CHECK(t.m[i].failed_calls <= 1);
    trio_stop(&t); /* every close completes with the failed writes parked */
    CHECK_EQ(a.calls, 1);
    CHECK(a.status != 0);
}

static void log_to_stderr(void *ctx, enum petrel_log_level level, const char *module,
                          const char *message)
{
    petrel_log_stderr(ctx, level, module, message);
}

/* Without an on_failed hook (production), a storage failure logs one line and exits 1. */
TEST_T(replica_storage_failure_exits_with_a_log_line_by_default, 120)
{
    int fds[2], status;
    char out[4096];
    ssize_t n, got = 0;
    pid_t pid;
    CHECK_OK(pipe(fds));
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct trio t;
        struct sim_faults f;
        uint8_t req[64];
        struct outcome a = {0};
        int len = encode_construct(req, sizeof(req), 9), l;
        dup2(fds[1], 2);
        close(fds[0]);
        petrel_log_set(log_to_stderr, NULL, PT_LOG_ERROR);
        memset(&t, 0, sizeof(t));
        t.exit_on_failure = 1;
        trio_start(&t);
        if (!sim_run_until_cond(t.sim, 10000, has_leader, &t)) _exit(3);
        l = leader_of(&t);
        sim_faults_none(&f);
        f.fsync_fail_ppm = 1000000;
        sim_set_faults(t.sim, &f);
        a.rep = t.m[l].rep;
        if (pt_replica_propose(t.m[l].rep, req, (size_t)len, done, &a) != 0) _exit(4);
        sim_run_until(t.sim, sim_now(t.sim) + 5000);
        _exit(0); /* not reached: the failed fsync exits */
    }
    close(fds[1]);
    while (got < (ssize_t)sizeof(out) - 1 &&
           (n = read(fds[0], out + got, sizeof(out) - 1 - (size_t)got)) > 0)
        got += n;
    out[got] = 0;
    close(fds[0]);
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 1, "child status %d: %s", status, out);
    CHECK_MSG(strstr(out, "petrel raft: error: Raft storage failed: fsync of the log: ") != NULL &&
                  strstr(out, "exiting so that the supervisor restarts the replica") != NULL,
              "%s", out);
}
