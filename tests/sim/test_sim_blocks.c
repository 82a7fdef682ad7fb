/*
 * Block services under the simulator: the store alone on a crashing, lying disk (durability of
 * a completed write, nothing half-written after a crash mid-write, failures leave nothing),
 * then whole runs of services and clients (sim_blocks.c) over many seeds. A failure prints
 * the seed and the command that replays it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/blocks/blocks.h"
#include "cluster/client/blocks_client.h"
#include "cluster/shard/repair_rebuild.h"
#include "petrel/common.h"
#include "sim.h"
#include "sim_blocks.h"
#include "test.h"

/* ---- the store on the simulator's disk ---------------------------------------------------- */

struct wait {
    int done, status;
};

static void waited(void *ctx, int status)
{
    struct wait *w = ctx;
    w->done = 1;
    w->status = status;
}

static int wait_done(void *ctx)
{
    return ((struct wait *)ctx)->done;
}

static int store_open(struct sim *s, struct pt_env *e, struct pt_blocks_store *st)
{
    struct wait w = {0, 0};
    pt_blocks_store_open(e, st, waited, &w);
    CHECK(sim_run_until_cond(s, sim_now(s) + 1000, wait_done, &w));
    return w.status;
}

static int store_write(struct sim *s, struct pt_blocks_store *st, uint64_t id, const uint8_t *d,
                       uint32_t size)
{
    struct wait w = {0, 0};
    pt_blocks_store_write(st, id, pt_block_crc(d, size), d, size, waited, &w);
    CHECK(!w.done); /* never completes from inside the call */
    CHECK(sim_run_until_cond(s, sim_now(s) + 1000, wait_done, &w));
    return w.status;
}

static int store_read_all(struct pt_blocks_store *st, uint64_t id, const uint8_t *want,
                          uint32_t size)
{
    uint8_t *body;
    size_t len;
    int err = pt_blocks_store_read(st, id, 0, size, &body, &len);
    if (err) return err;
    CHECK_EQ(len, PT_BLOCK_READ_RESP_FIELDS + (size_t)pt_block_pages(size) * 4 + size);
    CHECK_MEM(body + len - size, want, size);
    free(body);
    return 0;
}

static void nothing_hook(void *ctx)
{
    (void)ctx;
}

TEST(sim_blocks_store_durable_after_write_and_clean_after_crash)
{
    struct sim_faults f;
    struct sim *s;
    struct sim_proc *p;
    struct sim_proc_hooks h = {nothing_hook, nothing_hook, NULL};
    struct pt_blocks_store st;
    struct pt_block_stat bst;
    struct wait w = {0, 0};
    uint8_t data[10000];
    uint64_t id;
    char names[256];
    unsigned i;
    for (i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 13 + 1);
    sim_faults_none(&f);
    f.torn_ppm = SIM_PPM; /* every crash tears what was not synced */
    s = sim_new(test_seed(), &f);
    p = sim_proc_add(s, "b0");
    sim_proc_set_hooks(p, &h);
    CHECK_OK(store_open(s, sim_proc_env(p), &st));
    id = st.service_id;
    CHECK(id != 0);
    /* A completed write survives a crash at once after it. */
    CHECK_OK(store_write(s, &st, 0x1234, data, sizeof(data)));
    sim_proc_crash(p);
    sim_proc_restart(p);
    CHECK_OK(store_open(s, sim_proc_env(p), &st));
    CHECK_EQ(st.service_id, id); /* the identity was durable too */
    CHECK_OK(store_read_all(&st, 0x1234, data, sizeof(data)));
    /* A crash in the middle of a write (before its fsync completed): no block, no temp file. */
    pt_blocks_store_write(&st, 0x1235, pt_block_crc(data, sizeof(data)), data, sizeof(data),
                          waited, &w);
    sim_proc_crash(p);
    CHECK(sim_run_until_cond(s, sim_now(s) + 1000, wait_done, &w));
    CHECK(w.status != 0); /* the dead incarnation's write did not succeed */
    sim_proc_restart(p);
    CHECK_OK(store_open(s, sim_proc_env(p), &st));
    CHECK_EQ(pt_blocks_store_stat(&st, 0x1235, &bst), -PT_ENOENT);
    CHECK_EQ(pt_env_list(sim_proc_env(p), "tmp", names, sizeof(names)), 0);
    CHECK_OK(store_read_all(&st, 0x1234, data, sizeof(data)));
    sim_free(s);
}

TEST(sim_blocks_store_failures_leave_nothing)
{
    struct sim_faults f;
    struct sim *s;
    struct sim_proc *p;
    struct pt_blocks_store st;
    struct pt_block_stat bst;
    uint8_t data[6000];
    unsigned i, failed = 0, ok = 0;
    for (i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7);
    sim_faults_none(&f);
    s = sim_new(test_seed(), &f);
    p = sim_proc_add(s, "b0");
    CHECK_OK(store_open(s, sim_proc_env(p), &st));
    /* Now every fsync fails half the time, every write or read errs a tenth of the time. */
    f.fsync_fail_ppm = SIM_PPM / 2;
    f.write_eio_ppm = SIM_PPM / 10;
    f.read_eio_ppm = SIM_PPM / 10;
    sim_set_faults(s, &f);
    for (i = 0; i < 40; i++) {
        int err = store_write(s, &st, 100 + i, data, sizeof(data));
        if (err) {
            failed++;
            CHECK_MSG(err == -PT_EIO || err == -PT_ENOSPC, "write: %s", petrel_strerror(err));
            sim_faults_none(&f);
            sim_set_faults(s, &f);
            /* Nothing half-written is visible (absent, or whole when taking back a block whose
               directory sync failed failed too). */
            err = pt_blocks_store_stat(&st, 100 + i, &bst);
            CHECK(err == -PT_ENOENT || store_read_all(&st, 100 + i, data, sizeof(data)) == 0);
            f.fsync_fail_ppm = SIM_PPM / 2;
            f.write_eio_ppm = SIM_PPM / 10;
            f.read_eio_ppm = SIM_PPM / 10;
            sim_set_faults(s, &f);
        } else {
            ok++;
        }
    }
    CHECK(failed > 0 && ok > 0);
    sim_faults_none(&f);
    sim_set_faults(s, &f);
    for (i = 0; i < 40; i++) {
        int err = store_read_all(&st, 100 + i, data, sizeof(data));
        CHECK(err == 0 || err == -PT_ENOENT);
    }
    sim_free(s);
}

/* ---- the repair budget ------------------------------------------------------------------------ */

/* The pacer never lets bytes run ahead of rate x time since the first epoch, waits rather
 * than refuses, keeps its epoch while a caller waits (even longer than the idle pause: a block
 * bigger than 2 s of budget), and starts a new epoch only after real idleness. */
TEST(repair_pace_never_runs_ahead_of_the_budget)
{
    struct pt_repair_pace p;
    uint64_t now = 5000, moved = 0, wait;
    unsigned i;
    memset(&p, 0, sizeof(p));
    p.rate = 1000; /* bytes per second */
    /* a 4000-byte block: 4 s of budget, more than the idle pause */
    wait = pt_repair_pace_wait(&p, now, 4000);
    CHECK_EQ(wait, 4000);
    now += wait;
    CHECK_EQ(pt_repair_pace_wait(&p, now, 4000), 0);
    moved += 4000;
    /* many small transfers, each asked for as soon as allowed: never ahead of the budget */
    for (i = 0; i < 100; i++) {
        uint32_t len = 1 + (i * 37) % 300;
        while ((wait = pt_repair_pace_wait(&p, now, len)) != 0)
            now += wait > 7 ? 7 : wait; /* timers may fire early in steps: still never ahead */
        moved += len;
        CHECK(moved * 1000 <= p.rate * (now - 5000));
    }
    /* idle for longer than the pause: a new epoch, no credit saved up from before */
    now += PT_REPAIR_PACE_IDLE_MS + 1;
    CHECK_EQ(pt_repair_pace_wait(&p, now, 500), 500);
    now += 500;
    CHECK_EQ(pt_repair_pace_wait(&p, now, 500), 0);
    /* unlimited: never waits */
    memset(&p, 0, sizeof(p));
    CHECK_EQ(pt_repair_pace_wait(&p, 0, 1u << 30), 0);
    CHECK_EQ(pt_repair_pace_wait(&p, 0, 1u << 30), 0);
}

/* ---- whole runs ------------------------------------------------------------------------------ */

static unsigned env_seeds(unsigned dflt)
{
    const char *s = getenv("PETREL_SIM_BLOCKS_SEEDS");
    return s && atoi(s) > 0 ? (unsigned)atoi(s) : dflt;
}

static void run_seeds(const char *name, uint64_t first, unsigned seeds)
{
    struct sim_blocks_config cfg;
    struct sim_blocks_result r;
    uint64_t acked = 0, reads = 0, fallback = 0, unavailable = 0, copies = 0, corrupt = 0, rots = 0,
             crashes = 0, lied = 0, abandoned = 0, erased = 0;
    uint64_t repaired = 0, repaired_rs = 0, repair_bytes = 0, repair_ms = 0, unrecoverable = 0;
    unsigned i;
    sim_blocks_config_default(&cfg, first);
    for (i = 0; i < seeds; i++) {
        uint64_t seed = first + i;
        sim_blocks_config_default(&cfg, seed);
        cfg.verbose = getenv("PETREL_SIM_VERBOSE") != NULL;
        CHECK_OK(sim_blocks_run(&cfg, &r));
        if (!r.ok)
            test_fail(__FILE__, __LINE__,
                      "seed %llu: %s\n    replay: build/tests/test-sim --seed %llu %s",
                      (unsigned long long)seed, r.violation, (unsigned long long)seed, name);
        acked += r.files_acked;
        abandoned += r.files_abandoned;
        erased += r.files_erased;
        reads += r.reads_checked;
        fallback += r.reads_fallback;
        unavailable += r.reads_unavailable;
        copies += r.copies_checked;
        corrupt += r.corrupt_writes;
        rots += r.rots;
        crashes += r.stats.crashes;
        lied += r.lied_services;
        repaired += r.repaired;
        repaired_rs += r.repaired_rs;
        repair_bytes += r.repair_bytes;
        repair_ms += r.repair_ms;
        unrecoverable += r.repair_unrecoverable;
    }
    printf("     %s: %u seeds x %llu simulated s: %llu files acked (%llu abandoned, %llu erased), "
           "%llu reads "
           "checked (%llu from the second copy, %llu unavailable), %llu copies checked at the "
           "end; %llu silently corrupted writes, %llu rotten copies, %llu crashes (%llu with a "
           "lying disk)\n",
           name, seeds, (unsigned long long)(cfg.fault_ms / 1000), (unsigned long long)acked,
           (unsigned long long)abandoned, (unsigned long long)erased, (unsigned long long)reads,
           (unsigned long long)fallback, (unsigned long long)unavailable,
           (unsigned long long)copies, (unsigned long long)corrupt, (unsigned long long)rots,
           (unsigned long long)crashes, (unsigned long long)lied);
    printf("     %s: repair after one service died for good: %llu blocks rebuilt (%llu of RS(2,1) "
           "spans), %llu bytes moved "
           "in %llu simulated ms (%.0f B/s against a %llu B/s budget), %llu files whose other "
           "copy had rotted before\n",
           name, (unsigned long long)repaired, (unsigned long long)repaired_rs,
           (unsigned long long)repair_bytes, (unsigned long long)repair_ms,
           repair_ms ? (double)repair_bytes * 1000.0 / (double)repair_ms : 0.0,
           (unsigned long long)cfg.repair_rate, (unsigned long long)unrecoverable);
}

/* One seed (replays a failure exactly with --seed). */
TEST_T(sim_blocks, 120)
{
    run_seeds("sim_blocks", test_seed(), 1);
}

/* Same seed, same run. */
TEST_T(sim_blocks_replays, 120)
{
    struct sim_blocks_config cfg;
    struct sim_blocks_result a, b;
    sim_blocks_config_default(&cfg, test_seed());
    CHECK_OK(sim_blocks_run(&cfg, &a));
    CHECK_OK(sim_blocks_run(&cfg, &b));
    CHECK_MSG(a.ok, "%s", a.violation);
    CHECK(a.trace_hash == b.trace_hash);
    CHECK_EQ(a.files_acked, b.files_acked);
    CHECK(a.files_acked > 0 && a.reads_checked > 0);
    cfg.seed++;
    CHECK_OK(sim_blocks_run(&cfg, &b));
    CHECK(a.trace_hash != b.trace_hash);
}

/* Bad configurations are refused. */
TEST(sim_blocks_refuses_bad_config)
{
    struct sim_blocks_config cfg;
    struct sim_blocks_result r;
    sim_blocks_config_default(&cfg, 1);
    cfg.services = 3; /* fewer than 4 failure domains */
    CHECK_EQ(sim_blocks_run(&cfg, &r), -PT_EINVAL);
    sim_blocks_config_default(&cfg, 1);
    cfg.clients = 0;
    CHECK_EQ(sim_blocks_run(&cfg, &r), -PT_EINVAL);
}

/* Many seeds (PETREL_SIM_BLOCKS_SEEDS; default 200, 50 under sanitizers). */
TEST_T(sim_blocks_seeds, 3600)
{
    run_seeds("sim_blocks", test_seed(), env_seeds(test_sanitized() ? 50 : 200));
}

/* The shard's own repair (task choice, rounds, REPLACE_BLOCK swaps) over a real shard store in
 * the simulator: one service dies for good in the middle of a span's writes, the leader
 * crashes before and after swaps; every acknowledged span back to policy, every block reads
 * back, the budget holds (PETREL_SIM_BLOCKS_SEEDS / 10 seeds; default 20). */
static void run_shard_seeds(uint64_t first, unsigned seeds)
{
    struct sim_blocks_config cfg;
    struct sim_blocks_result r;
    uint64_t spans = 0, swaps = 0, bytes = 0, ms = 0, crashes = 0, moves = 0, shared = 0;
    unsigned i;
    sim_blocks_config_default(&cfg, first);
    for (i = 0; i < seeds; i++) {
        uint64_t seed = first + i;
        sim_blocks_config_default(&cfg, seed);
        cfg.services = 7;        /* 6 failure domains; one service silent, one dies */
        cfg.repair_rate = 32768; /* tight: the pacer must hold repair back */
        cfg.fault_ms = 10000;    /* the block-level faults are sim_blocks's; keep this part short */
        cfg.shard_dir = test_tmpdir();
        cfg.verbose = getenv("PETREL_SIM_VERBOSE") != NULL;
        CHECK_OK(sim_blocks_run(&cfg, &r));
        if (!r.ok)
            test_fail(__FILE__, __LINE__,
                      "seed %llu: %s\n    replay: build/tests/test-sim --seed %llu "
                      "sim_blocks_shard_repair",
                      (unsigned long long)seed, r.violation, (unsigned long long)seed);
        CHECK(r.shard_spans > 0);
        CHECK(r.shared_copies_checked > 0); /* versions shared mirrored copies */
        shared += r.shared_copies_checked;
        spans += r.shard_spans;
        swaps += r.shard_swaps;
        bytes += r.shard_repair_bytes;
        ms += r.shard_repair_ms;
        crashes += r.leader_crashes;
        moves += r.shard_domain_moves;
    }
    printf("     sim_blocks_shard_repair: %u seeds: %llu spans acknowledged, %llu swaps (%llu "
           "blocks queued for a shared failure domain), %llu shard leader crashes, %llu bytes "
           "moved by repair in %llu simulated ms (%.0f B/s against a %llu B/s budget)\n",
           seeds, (unsigned long long)spans, (unsigned long long)swaps, (unsigned long long)moves,
           (unsigned long long)crashes, (unsigned long long)bytes, (unsigned long long)ms,
           ms ? (double)bytes * 1000.0 / (double)ms : 0.0, (unsigned long long)cfg.repair_rate);
    printf("     sim_blocks_shard_repair: %llu block copies (mirrored, RS) shared by a file's old and new "
           "versions, none among what GC erases with the old one\n",
           (unsigned long long)shared);
}

TEST_T(sim_blocks_shard_repair, 120)
{
    run_shard_seeds(test_seed(), 1);
}

TEST_T(sim_blocks_shard_repair_seeds, 3600)
{
    unsigned n = env_seeds(200) / 10;
    run_shard_seeds(test_seed(), test_sanitized() ? 5 : n ? n : 1);
}
