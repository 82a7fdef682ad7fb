/*
 * A Petrel cluster in the simulator: shards x replicas running the real replica core
 * (src/cluster/replica) and the real shard state machine (shard_sm + shard_fsm, LMDB in a
 * per-replica temporary directory, wiped and rebuilt from the Raft log at every start, as in
 * production), simulated clients issuing shard requests with the real codec, and the checker
 * (sim_check.c) that compares everything the clients saw with a model fed by the committed log.
 *
 * A run: set up, fault phase (the profile's faults), heal (faults off, everyone restarted),
 * settle, final checks. Any violation ends the run with a message naming it; the caller
 * prints the seed and the replay command.
 */
#ifndef PETREL_TESTS_SIM_CLUSTER_H
#define PETREL_TESTS_SIM_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "sim.h"

struct pt_auth_key;

struct sim_cluster_config {
    uint64_t seed;
    unsigned shards;      /* >= 1, <= 4 */
    unsigned replicas;    /* 1, 3 or 5 */
    unsigned clients;     /* <= 8 */
    uint64_t fault_ms;    /* simulated time with faults */
    uint64_t settle_ms;   /* simulated time after healing, before the final checks */
    unsigned snapshot_entries; /* replicas snapshot every this many entries (default 64) */
    struct sim_faults faults;
    const char *dir;      /* for the replicas' LMDB stores */
    int verbose;
    int strict_liveness; /* every replica must converge after healing (default), not only a majority */
    uint64_t fail_assert_at_ms; /* tests only: a PT_ASSERT fails then (0: never) */
    const struct pt_auth_key *auth; /* seal every Raft message with this key (NULL: none) */
};

struct sim_cluster_result {
    int ok;
    char violation[512];
    uint64_t sim_ms, trace_hash;
    uint64_t ops_done, ops_acked, ops_failed, ops_unknown, reads_checked, writes_committed;
    uint64_t changes_committed, changes_refused; /* OP_CHANGE commits acked / ESTALE (issue 12) */
    uint64_t compactions, compactions_refused; /* OP_COMPACT swaps acked / refused */
    uint64_t lagging_replicas; /* replicas that had not caught up when the run ended */
    uint64_t storage_restarts; /* replicas restarted after their Raft storage failed */
    uint64_t raft_drop_auth, raft_drop_replay; /* summed over replicas (pt_raft_io_stats) */
    struct sim_stats stats;
};

void sim_cluster_config_default(struct sim_cluster_config *c, uint64_t seed, const char *dir);
/* Run one simulation; 0 when it ran (see res->ok), negative on a setup error. */
int sim_cluster_run(const struct sim_cluster_config *cfg, struct sim_cluster_result *res);

#endif
