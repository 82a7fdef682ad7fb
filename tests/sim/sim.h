/*
 * The simulator: env.h for many simulated processes in one process, on one thread, from one
 * seed. Time is virtual (an event queue ordered by (time, sequence)); every choice (delays,
 * losses, crashes, torn pages, ...) is drawn from one seeded PRNG, so a seed replays a whole
 * run event for event, and sim_trace_hash() proves it.
 *
 * It is the worst network and the worst disk we can describe, each fault with its own rate
 * in the fault profile (parts per million per occasion):
 *   network: delay, loss, reordering (a long extra delay), duplication, corruption (one flipped
 *            byte), partitions (symmetric, one-way, flapping);
 *   disk:    writes are volatile until fsync (per-file data) and fsync_dir (directory entries);
 *            a crash keeps the durable state, plus for each dirty file a random subset of its
 *            dirty 512-byte sectors (torn writes); fsync that fails; EIO and ENOSPC on read and
 *            write; a lying disk that returns the previous durable version after a crash;
 *   process: crash and restart (through the owner's stop/start hooks), pauses longer than an
 *            election timeout, wall-clock jumps.
 *
 * Never does real I/O and never reads a real clock. Not thread-safe (one thread by design).
 */
#ifndef PETREL_TESTS_SIM_H
#define PETREL_TESTS_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/env/env.h"

#define SIM_PPM 1000000u
#define SIM_PROC_MAX 32
#define SIM_SECTOR 512

/* Fault rates: *_ppm are chances per occasion in parts per million; 0 turns a fault off. */
struct sim_faults {
    /* network, per message */
    uint32_t delay_min_ms, delay_max_ms; /* one-way delay, uniform */
    uint32_t loss_ppm, dup_ppm, corrupt_ppm;
    uint32_t reorder_ppm, reorder_max_ms; /* extra delay up to reorder_max_ms */
    /* scheduled faults, chance per process per simulated second */
    uint32_t partition_ppm;   /* start a partition around the process (symmetric, one-way or flapping) */
    uint32_t partition_max_ms;
    uint32_t crash_ppm;       /* crash, restart after restart_max_ms at most */
    uint32_t restart_max_ms;
    uint32_t pause_ppm;       /* stop running the process for up to pause_max_ms */
    uint32_t pause_max_ms;
    uint32_t clock_jump_ppm;  /* wall clock jumps by up to +-clock_jump_max_ms */
    uint32_t clock_jump_max_ms;
    /* disk, per call */
    uint32_t fsync_fail_ppm;
    uint32_t read_eio_ppm, write_eio_ppm, write_enospc_ppm;
    /* at a crash, per dirty file: keep some dirty sectors (torn write) */
    uint32_t torn_ppm;
    /* at a crash, per file: the disk lies and serves the previous durable version */
    uint32_t stale_ppm;
};

/* The profile with every fault off and a 1 ms network. */
void sim_faults_none(struct sim_faults *f);
/* The profile the cluster simulation runs by default (see DESIGN.md, simulator). */
void sim_faults_default(struct sim_faults *f);

struct sim;
struct sim_proc;

/* Owner hooks: stop throws away the process's in-memory state (its disk has already crashed);
 * start brings it up again from its disk. Both run from the loop. */
struct sim_proc_hooks {
    void (*stop)(void *ctx);
    void (*start)(void *ctx);
    void *ctx;
};

struct sim *sim_new(uint64_t seed, const struct sim_faults *faults);
void sim_free(struct sim *s);
/* Change the profile (e.g. heal: sim_faults_none) from now on; running partitions end. */
void sim_set_faults(struct sim *s, const struct sim_faults *faults);

/* A new process named `name` ("s0r1"); up, with an empty disk. */
struct sim_proc *sim_proc_add(struct sim *s, const char *name);
void sim_proc_set_hooks(struct sim_proc *p, const struct sim_proc_hooks *h);
/* Whether random crashes, pauses and partitions may hit this process (clients: no crashes). */
void sim_proc_set_faultable(struct sim_proc *p, int crash, int pause, int partition);
/* The env of the process's current incarnation: a new one at every restart; the env of a
 * crashed incarnation stays valid but dead (calls fail, sends vanish, nothing gets durable;
 * its timers and fsync completions still run so that its code can free itself). */
struct pt_env *sim_proc_env(struct sim_proc *p);
const char *sim_proc_name(struct sim_proc *p);
int sim_proc_up(struct sim_proc *p);
/* The process behind an env made by this simulator. */
struct sim_proc *sim_env_proc(struct pt_env *e);

/* Crash now: the disk loses volatile state (torn/stale per profile), listeners go, the
 * incarnation's env dies, then the stop hook runs. */
void sim_proc_crash(struct sim_proc *p);
/* Restart a crashed process now: start hook. */
void sim_proc_restart(struct sim_proc *p);
/* Restart a crashed process after ms (from the loop). */
void sim_proc_restart_later(struct sim_proc *p, uint64_t ms);
/* Stop running the process's events until now + ms. */
void sim_proc_pause(struct sim_proc *p, uint64_t ms);
/* Make the process's wall clock jump by delta_ms. */
void sim_proc_clock_jump(struct sim_proc *p, int64_t delta_ms);
/* Block (1) or unblock (0) messages from a to b. */
void sim_block(struct sim *s, struct sim_proc *a, struct sim_proc *b, int blocked);
void sim_heal(struct sim *s); /* unblock everything, end pauses */

/* Run one event: 1, or 0 when the queue is empty. */
int sim_step(struct sim *s);
/* Run events up to virtual time t (ms); the clock ends at t. */
void sim_run_until(struct sim *s, uint64_t t);
/* Run until pred(ctx) is true or time t: 1 if pred became true. */
int sim_run_until_cond(struct sim *s, uint64_t t, int (*pred)(void *ctx), void *ctx);
uint64_t sim_now(struct sim *s);
/* One draw from the run's generator (for harness decisions, so they replay too). */
uint64_t sim_random(struct sim *s);
uint64_t sim_below(struct sim *s, uint64_t bound);
int sim_chance(struct sim *s, uint32_t ppm);
void sim_fill(struct sim *s, void *buf, size_t len);

/* A hash of every event run so far (kind, time, process, payload): equal runs, equal hashes. */
uint64_t sim_trace_hash(const struct sim *s);

/* Counters, for tests and the report. */
struct sim_stats {
    uint64_t events, msgs_sent, msgs_delivered, msgs_lost, msgs_dup, msgs_corrupt, msgs_blocked;
    uint64_t crashes, pauses, partitions, clock_jumps, torn_files, stale_files, fsync_fails,
        io_errors;
};
const struct sim_stats *sim_stats(const struct sim *s);

/* Read a file's durable bytes as the disk would keep them at a crash (test inspection). */
int64_t sim_disk_durable(struct sim_proc *p, const char *path, void *buf, size_t cap);

#endif
