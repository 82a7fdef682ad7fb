/*
 * Petrel's Raft I/O driven directly (no libraft) over the simulator's env: what the store
 * writes and what load hands back afterwards, in the cases the cluster simulation found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/replica/raft_io.h"
#include "petrel/common.h"
#include "sim.h"
#include "test.h"

static int resolve_one(void *ctx, raft_id id, char *buf, size_t cap)
{
    (void)ctx;
    if (id != 1) return -PT_EINVAL;
    snprintf(buf, cap, "r0/raft");
    return 0;
}

static int io_open(struct raft_io *io, struct sim_proc *p)
{
    struct pt_raft_io_config cfg;
    char err[200];
    int rc;
    memset(&cfg, 0, sizeof(cfg));
    cfg.env = sim_proc_env(p);
    cfg.cluster_id = 1;
    cfg.group = PT_RAFT_GROUP(1, 0);
    cfg.replicas = 1;
    cfg.listen = "r0/raft";
    cfg.resolve = resolve_one;
    rc = pt_raft_io_init(io, &cfg, err, sizeof(err));
    CHECK_MSG(rc == 0, "%s", err);
    return rc;
}

static int calls;

static void append_done(struct raft_io_append *req, int status)
{
    (void)req;
    CHECK_EQ(status, 0);
    calls++;
}

static void put_done(struct raft_io_snapshot_put *req, int status)
{
    (void)req;
    CHECK_EQ(status, 0);
    calls++;
}

static void io_closed(struct raft_io *io)
{
    (void)io;
    calls++;
}

static int calls_reached(void *ctx) { return calls >= *(int *)ctx; }

static void run_until_calls(struct sim *s, int n)
{
    CHECK(sim_run_until_cond(s, sim_now(s) + 5000, calls_reached, &n));
}

/* Append n entries of `term`, one byte each, and wait for their callback. */
static void append_n(struct sim *s, struct raft_io *io, struct raft_entry *e, unsigned n,
                     raft_term term)
{
    struct raft_io_append req;
    unsigned i;
    int want = calls + 1;
    for (i = 0; i < n; i++) {
        e[i].term = term;
        e[i].type = RAFT_COMMAND;
        e[i].buf.base = &e[i].type;
        e[i].buf.len = 1;
        e[i].batch = NULL;
    }
    CHECK_OK(io->append(io, &req, e, n, append_done));
    run_until_calls(s, want);
}

/*
 * A follower installs a snapshot at 5 (the log restarts after it, at 6), appends 6..8, and
 * restarts: load keeps 6..8 (before commit 22d038c it read the term "at 5" one slot before
 * its array, a heap overflow, and on a mismatch dropped the log: a replica restarted without
 * entries it had acknowledged; seed 4246591713 replaced a committed entry that way).
 */
TEST(raftstore_log_right_after_an_installed_snapshot_survives_a_restart)
{
    struct sim_faults f;
    struct sim *s;
    struct sim_proc *p;
    struct raft_io io;
    struct raft_entry e[8], *loaded = NULL;
    struct raft_snapshot snap, *got = NULL;
    struct raft_io_snapshot_put put;
    struct raft_buffer data;
    char state[] = "state";
    raft_term term;
    raft_id vote;
    raft_index start;
    size_t n = 0, i;
    sim_faults_none(&f);
    s = sim_new(test_seed(), &f);
    p = sim_proc_add(s, "r0");
    CHECK_OK(io_open(&io, p));
    CHECK_OK(io.load(&io, &term, &vote, &got, &start, &loaded, &n));
    CHECK_EQ(n, 0u);
    append_n(s, &io, e, 5, 1); /* 1..5 */
    memset(&snap, 0, sizeof(snap));
    snap.index = 5;
    snap.term = 1;
    raft_configuration_init(&snap.configuration);
    CHECK_OK(raft_configuration_add(&snap.configuration, 1, "r0/raft", RAFT_VOTER));
    snap.configuration_index = 1;
    data.base = state;
    data.len = sizeof(state);
    snap.bufs = &data;
    snap.n_bufs = 1;
    {
        int want = calls + 1;
        CHECK_OK(io.snapshot_put(&io, 0, &put, &snap, put_done)); /* installed: trailing 0 */
        run_until_calls(s, want);
    }
    raft_configuration_close(&snap.configuration);
    append_n(s, &io, e, 3, 2); /* 6..8 */
    {
        int want = calls + 1;
        io.close(&io, io_closed);
        run_until_calls(s, want);
    }
    pt_raft_io_free(&io);
    /* the restart */
    CHECK_OK(io_open(&io, p));
    CHECK_OK(io.load(&io, &term, &vote, &got, &start, &loaded, &n));
    CHECK(got != NULL);
    CHECK_EQ(got->index, 5u);
    CHECK_EQ(start, 6u);
    CHECK_EQ(n, 3u);
    for (i = 0; i < n; i++)
        CHECK_EQ(loaded[i].term, 2u);
    for (i = 0; i < n; i++)
        raft_free(loaded[i].buf.base); /* each entry its own buffer (raft_store.c, load) */
    raft_free(loaded);
    if (got) {
        for (i = 0; i < got->n_bufs; i++)
            raft_free(got->bufs[i].base);
        raft_free(got->bufs);
        raft_configuration_close(&got->configuration);
        raft_free(got);
    }
    {
        int want = calls + 1;
        io.close(&io, io_closed);
        run_until_calls(s, want);
    }
    pt_raft_io_free(&io);
    sim_free(s);
}
