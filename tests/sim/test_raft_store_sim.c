/*
 * Petrel's Raft I/O driven directly (no libraft) over the simulator's env: what the store
 * writes and what load hands back afterwards, in the cases the cluster simulation found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/replica/raft_io.h"
#include "cluster/replica/raft_msg.h"
#include "petrel/common.h"
#include "sim.h"
#include "test.h"

static unsigned n_replicas = 1;

static int resolve_one(void *ctx, raft_id id, char *buf, size_t cap)
{
    (void)ctx;
    if (id < 1 || id > n_replicas) return -PT_EINVAL;
    snprintf(buf, cap, "r%u/raft", (unsigned)id - 1);
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
    cfg.replicas = n_replicas;
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

static int calls_reached(void *ctx)
{
    return calls >= *(int *)ctx;
}

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
    n_replicas = 1;
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

/* ---- what a follower tells libraft and its leader ------------------------------------------ */

struct fake_leader {
    struct pt_env *env;
    struct raft_append_entries_result got;
    int results;
};

static void leader_recv(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct fake_leader *l = ctx;
    struct pt_raft_msg_header h;
    struct raft_message m;
    (void)from;
    CHECK_OK(pt_raft_msg_decode_header(msg, len, &h));
    CHECK_OK(pt_raft_msg_decode_body(&h, msg + PT_RAFT_MSG_HEADER, &m));
    CHECK_EQ(m.type, RAFT_IO_APPEND_ENTRIES_RESULT);
    l->got = m.append_entries_result;
    l->results++;
}

static raft_index seen_commit;
static struct raft_io_send answer_req;

static void answer_sent(struct raft_io_send *req, int status)
{
    (void)req;
    (void)status;
}

/* Answer as libraft 0.15 does: success with everything stored (5 entries). */
static void answer_all_stored(struct raft_io *io, struct raft_message *m)
{
    struct raft_message r;
    CHECK_EQ(m->type, RAFT_IO_APPEND_ENTRIES);
    seen_commit = m->append_entries.leader_commit;
    memset(&r, 0, sizeof(r));
    r.type = RAFT_IO_APPEND_ENTRIES_RESULT;
    r.server_id = 2;
    r.append_entries_result.term = 1;
    r.append_entries_result.rejected = 0;
    r.append_entries_result.last_log_index = 5;
    CHECK_OK(io->send(io, &answer_req, &r, answer_sent));
}

static void tick_none(struct raft_io *io)
{
    (void)io;
}

static int results_reached(void *ctx)
{
    return ((struct fake_leader *)ctx)->results > 0;
}

/*
 * A follower whose log holds 1..5 gets a heartbeat proving only 1..2 (prev 2, no entries,
 * leader_commit 5): libraft 0.15 would commit up to 5 and answer "5", although 3..5 may be
 * entries of an older term the leader never had (the simulator saw two replicas commit
 * different entries that way). The Raft I/O hands libraft leader_commit 2 and caps the answer
 * at 2. An answer below the follower's durable snapshot names the snapshot (everything in it
 * was committed), so a leader with an older snapshot goes on after it instead of resending.
 */
TEST(raftstore_follower_answers_only_what_the_leader_proved)
{
    struct sim_faults f;
    struct sim *s;
    struct sim_proc *p, *lp;
    struct raft_io io;
    struct raft_entry e[8], *loaded = NULL;
    struct raft_snapshot snap, *got = NULL;
    struct raft_io_snapshot_put put;
    struct raft_buffer data;
    struct raft_message m, r;
    struct pt_raft_msg_header h;
    struct fake_leader l;
    char state[] = "state";
    raft_term term;
    raft_id vote;
    raft_index start;
    size_t n = 0;
    uint8_t *buf;
    size_t len;
    n_replicas = 2;
    sim_faults_none(&f);
    s = sim_new(test_seed(), &f);
    p = sim_proc_add(s, "r0");
    lp = sim_proc_add(s, "r1");
    memset(&l, 0, sizeof(l));
    l.env = sim_proc_env(lp);
    CHECK_OK(pt_env_listen(l.env, "r1/raft", leader_recv, &l));
    CHECK_OK(io_open(&io, p));
    CHECK_OK(io.init(&io, 1, "r0/raft"));
    CHECK_OK(io.load(&io, &term, &vote, &got, &start, &loaded, &n));
    CHECK_OK(io.start(&io, 100, tick_none, answer_all_stored));
    append_n(s, &io, e, 5, 1); /* 1..5 */
    /* the heartbeat */
    memset(&m, 0, sizeof(m));
    m.type = RAFT_IO_APPEND_ENTRIES;
    m.append_entries.term = 1;
    m.append_entries.prev_log_index = 2;
    m.append_entries.prev_log_term = 1;
    m.append_entries.leader_commit = 5;
    memset(&h, 0, sizeof(h));
    h.cluster_id = 1;
    h.group = PT_RAFT_GROUP(1, 0);
    h.from = 2;
    h.to = 1;
    CHECK_OK(pt_raft_msg_encode(&h, &m, &buf, &len));
    CHECK_OK(pt_env_send(l.env, "r0/raft", buf, len));
    free(buf);
    CHECK(sim_run_until_cond(s, sim_now(s) + 1000, results_reached, &l));
    CHECK_EQ(seen_commit, 2u);
    CHECK_EQ(l.got.rejected, 0u);
    CHECK_EQ(l.got.last_log_index, 2u);
    /* a durable snapshot at 4 (2 trailing entries kept) */
    memset(&snap, 0, sizeof(snap));
    snap.index = 4;
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
        CHECK_OK(io.snapshot_put(&io, 2, &put, &snap, put_done));
        run_until_calls(s, want);
    }
    raft_configuration_close(&snap.configuration);
    /* libraft's answer to an older snapshot (at 3) than its own: raised to 4 */
    memset(&r, 0, sizeof(r));
    r.type = RAFT_IO_APPEND_ENTRIES_RESULT;
    r.server_id = 2;
    r.append_entries_result.term = 1;
    r.append_entries_result.last_log_index = 3;
    l.results = 0;
    CHECK_OK(io.send(&io, &answer_req, &r, answer_sent));
    CHECK(sim_run_until_cond(s, sim_now(s) + 1000, results_reached, &l));
    CHECK_EQ(l.got.last_log_index, 4u);
    /* a rejection past the snapshot (a real mismatch) is passed on as it is */
    r.append_entries_result.rejected = 5;
    r.append_entries_result.last_log_index = 5;
    l.results = 0;
    CHECK_OK(io.send(&io, &answer_req, &r, answer_sent));
    CHECK(sim_run_until_cond(s, sim_now(s) + 1000, results_reached, &l));
    CHECK_EQ(l.got.rejected, 5u);
    CHECK_EQ(l.got.last_log_index, 5u);
    /* a rejection inside the snapshot ("no entry at 3": compacted) names the snapshot */
    r.append_entries_result.rejected = 3;
    r.append_entries_result.last_log_index = 5;
    l.results = 0;
    CHECK_OK(io.send(&io, &answer_req, &r, answer_sent));
    CHECK(sim_run_until_cond(s, sim_now(s) + 1000, results_reached, &l));
    CHECK_EQ(l.got.rejected, 0u);
    CHECK_EQ(l.got.last_log_index, 4u);
    {
        int want = calls + 1;
        io.close(&io, io_closed);
        run_until_calls(s, want);
    }
    pt_raft_io_free(&io);
    sim_free(s);
}

static int closed_calls;

static void io_closed_count(struct raft_io *io)
{
    (void)io;
    closed_calls++;
}

static void append_ignore(struct raft_io_append *req, int status)
{
    (void)req;
    (void)status;
}

/*
 * A crash in each of the first steps of the first append after an installed snapshot (the
 * install opens a fresh segment), 40 times with dirty sectors torn at random: the restart
 * always loads (the
 * segment's header was made durable before records went behind it; before, a torn header
 * under surviving records was refused as corruption). Entries 6.. are each over a sector.
 */
TEST(raftstore_crash_during_the_first_append_after_an_install_always_loads)
{
    unsigned step, refused = 0;
    static uint8_t big[3][700];
    for (step = 0; step < 40; step++) {
        struct sim_faults f;
        struct sim *s;
        struct sim_proc *p;
        struct raft_io io;
        struct raft_entry e[8], *loaded = NULL;
        struct raft_snapshot snap, *got = NULL;
        struct raft_io_snapshot_put put;
        struct raft_io_append req;
        struct raft_buffer data;
        char state[] = "state", err[200];
        struct pt_raft_io_config cfg;
        raft_term term;
        raft_id vote;
        raft_index start;
        size_t n = 0, i;
        unsigned k;
        int rc;
        n_replicas = 1;
        sim_faults_none(&f);
        f.torn_ppm = 500000;
        s = sim_new(test_seed() + step, &f);
        p = sim_proc_add(s, "r0");
        CHECK_OK(io_open(&io, p));
        CHECK_OK(io.load(&io, &term, &vote, &got, &start, &loaded, &n));
        append_n(s, &io, e, 5, 1);
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
            CHECK_OK(io.snapshot_put(&io, 0, &put, &snap, put_done));
            run_until_calls(s, want);
        }
        raft_configuration_close(&snap.configuration);
        for (i = 0; i < 3; i++) {
            memset(big[i], (int)(0x40 + i), sizeof(big[i]));
            e[i].term = 2;
            e[i].type = RAFT_COMMAND;
            e[i].buf.base = big[i];
            e[i].buf.len = sizeof(big[i]);
            e[i].batch = NULL;
        }
        CHECK_OK(io.append(&io, &req, e, 3, append_ignore));
        for (k = 0; k < 1 + step % 4 && sim_step(s); k++)
            ;
        sim_proc_crash(p);
        closed_calls = 0;
        io.close(&io, io_closed_count);
        while (!closed_calls && sim_step(s))
            ;
        CHECK_EQ(closed_calls, 1);
        pt_raft_io_free(&io);
        sim_proc_restart(p);
        memset(&cfg, 0, sizeof(cfg));
        cfg.env = sim_proc_env(p);
        cfg.cluster_id = 1;
        cfg.group = PT_RAFT_GROUP(1, 0);
        cfg.replicas = 1;
        cfg.listen = "r0/raft";
        cfg.resolve = resolve_one;
        rc = pt_raft_io_init(&io, &cfg, err, sizeof(err));
        if (rc != 0) {
            test_log("step %u: %s", step, err);
            refused++;
        } else {
            pt_raft_io_free(&io);
        }
        sim_free(s);
    }
    CHECK_EQ(refused, 0u);
}
