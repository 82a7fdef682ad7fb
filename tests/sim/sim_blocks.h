/*
 * Block services under the simulator: N services (the real request handling of
 * src/cluster/blocks/blocks_service.c over the real store, blocks_store.c) in distinct failure
 * domains, each a simulated process with its own disk, and clients that write mirrored files
 * (every block on 2 services, under certificates from the services' secrets, acknowledged
 * only when both write proofs verify) and read them back with page-CRC checks and fallback to
 * the other copy, and erase some files (under erase certificates, as the shard's GC does).
 *
 * The disk under each service is the simulator's (torn writes at crashes, EIO, ENOSPC, failing
 * fsync) behind a lying layer: a write may land with one byte changed and no error (the store's
 * read-back must catch it), and a stored block may rot at rest (one copy of a file at most).
 *
 * The checker: (1) a service never returns, with success, a byte that was not written;
 * (2) every write proof verifies; (3) after healing, every copy with a proof reads back whole
 * and right unless it rotted (or its disk lied at a crash), and every acknowledged file has a
 * readable right copy, and every copy with an erase proof is gone (unless a replayed write of
 * it arrived after the erase: the network replays requests and certificates do not expire).
 *
 * Then, with repair_rate set, the repair phase (sim_blocks.c): one service dies for good and
 * the shard's rebuild machine (src/cluster/shard/repair_rebuild.c) rebuilds every mirrored
 * copy and RS(2,1) block it held onto an unused failure domain, paced on simulated time;
 * checked: back to policy, every rebuilt block reads back exact, repair never ahead of
 * repair_rate x simulated time.
 *
 * With shard_dir set, the shard repair phase runs instead: the shard's own repair code
 * (shard_repair.c, through its host interface) over a real shard store, a writer writing spans
 * through that store while one service dies in the middle of a span, some spans with two
 * blocks in one failure domain, the leader crashing before and after swaps, a new home
 * crashing under some rebuilds; checked: every acknowledged span back to policy without
 * operator action, every listed block reads back exact, the block index agrees, every swap
 * lands in a domain its span does not use, the repair budget holds.
 */
#ifndef PETREL_TESTS_SIM_BLOCKS_H
#define PETREL_TESTS_SIM_BLOCKS_H

#include <stdint.h>

#include "sim.h"

#define SIM_BLOCKS_SERVICES_MAX 8
#define SIM_BLOCKS_CLIENTS_MAX 4

struct sim_blocks_config {
    uint64_t seed;
    unsigned services;          /* 4..8, each its own failure domain */
    unsigned clients;           /* 1..4 */
    uint64_t fault_ms;          /* simulated time with faults */
    uint64_t settle_ms;         /* after healing, for the final reads */
    struct sim_faults faults;   /* network, crashes, disk errors */
    uint32_t corrupt_write_ppm; /* per write call: lands with one byte changed, no error */
    uint32_t rot_ppm;           /* per simulated second: a byte of a stored copy rots */
    uint64_t repair_rate;       /* then one service dies and repair runs at this B/s (0: no) */
    const char *shard_dir;      /* set: the shard repair phase instead (its store under here) */
    int verbose;
};

struct sim_blocks_result {
    int ok;
    char violation[512];
    uint64_t sim_ms, trace_hash;
    uint64_t files_acked, files_abandoned, files_erased, write_attempts, reads_checked, reads_fallback,
        reads_unavailable, copies_checked, corrupt_writes, rots, lied_services;
    uint64_t repaired, repaired_rs, repair_bytes, repair_ms; /* the repair phase */
    uint64_t repair_unrecoverable; /* its other copy had rotted before the service died */
    /* the shard repair phase: spans acknowledged, swaps applied, bytes moved by repair, time
     * from the first write to every span at policy, leader crashes, blocks moved for domains */
    uint64_t shard_spans, shard_swaps, shard_repair_bytes, shard_repair_ms, leader_crashes,
        shard_domain_moves;
    /* then new versions of its files (issue 12): mirrored block copies the new version shares
     * with the old one, checked to be kept out of what GC erases with the old version */
    uint64_t shared_copies_checked;
    struct sim_stats stats;
};

void sim_blocks_config_default(struct sim_blocks_config *c, uint64_t seed);
/* Run one simulation; 0 when it ran (see res->ok), negative on a bad configuration. */
int sim_blocks_run(const struct sim_blocks_config *cfg, struct sim_blocks_result *res);

#endif
