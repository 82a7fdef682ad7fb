/*
 * The replica core: one member of a Raft group, over env.h only (no libuv, no sockets, no
 * files of its own), so the same code runs in production (replica/node.c = this core + the uv
 * env + the frame server + discovery) and in the simulator (tests/sim).
 *
 * Owns the libraft `struct raft` over a raft_io it is given (storage and transport: in
 * production src/cluster/replica/raft_io over the uv env, in the simulator one over the sim
 * env), group commit and the read path:
 *  - Writes: requests proposed during one loop turn share one log entry (the envelope of
 *    entry.h: version, count, leader time, requests), hence one append and one fsync. A
 *    proposal's done callback runs exactly once: after its entry is committed and applied with
 *    the FSM's reply, or with an error. The error says what the caller may conclude:
 *      -PT_ENOTLEADER  the request never reached the log: it had no effect;
 *      -PT_ECANCELED   the entry was appended, then leadership was lost, the replica
 *                      closed or the append failed: it may still commit — outcome unknown;
 *      other           the request had no effect (-PT_E2BIG, -PT_ENOMEM, -PT_EIO: the entry
 *                      could not be built or appended).
 *  - Reads: pt_replica_read() calls back when the local store may answer a read that arrived
 *    before the call, linearizably: this replica leads and a barrier entry appended after the
 *    call was committed and applied in its term (a read-index round through the log; reads of
 *    one loop turn share one barrier). A deposed leader's barrier cannot commit, so it never
 *    answers with stale data; a follower refuses at once.
 * Configurable timeouts; no wall clock except the env's (stamped into entries).
 *
 * Invariants (PT_ASSERT): a proposal's callback runs once; an applied entry carries a reply
 * per request it holds; reads are released only by a successful barrier of the current term.
 */
#ifndef PETREL_CLUSTER_REPLICA_H
#define PETREL_CLUSTER_REPLICA_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/env/env.h"

#define PT_REPLICA_MAX 5

struct pt_replica;

/* A committed proposal: status 0 and the FSM's reply for it, or a negative error (above). */
typedef void (*pt_replica_done_fn)(void *ctx, int status, const uint8_t *reply, size_t len);
/* A read may be served now (0), or not here (-PT_ENOTLEADER, -PT_ECANCELED). */
typedef void (*pt_replica_read_fn)(void *ctx, int status);

struct pt_replica_config {
    struct pt_env *env;
    struct raft_io *io;   /* storage + transport, initialised, not yet used */
    struct raft_fsm *fsm; /* apply's result: struct pt_shard_apply_out (entry.h) */
    unsigned id;          /* this member: 1..replicas */
    unsigned replicas;    /* 1, 3 or 5 */
    const char *addresses[PT_REPLICA_MAX]; /* Raft address of member i+1 (io's transport names) */
    unsigned election_timeout_ms;          /* 0: 1000 */
    unsigned heartbeat_timeout_ms;         /* 0: 100 */
    unsigned snapshot_entries;             /* snapshot every this many entries; 0: 4096 */
    /* how long a leader waits for a lost InstallSnapshot before sending it again; 0: 5 election
     * timeouts (libraft's own default, 30 s, leaves a restarted follower behind that long) */
    unsigned install_snapshot_timeout_ms;
};

/*
 * Start (bootstrapping the group on a fresh store): 0 or -PT_E*. On a failure after libraft
 * was initialised *out is still set: a failed replica that must be closed with
 * pt_replica_close like a running one (libraft's close completes on the loop); else NULL.
 */
int pt_replica_start(struct pt_replica **out, const struct pt_replica_config *cfg);

/* An FSM's snapshot_finalize (fsm v2) for snapshots made of malloc'd buffers in one malloc'd
 * array: frees them and empties *bufs and *n. Shared by the shard, CDC and registry FSMs. */
int pt_replica_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n);
/*
 * Stop: pending proposals and reads get their callbacks (-PT_ENOTLEADER when not in the log,
 * -PT_ECANCELED when appended), then done(ctx) runs and the replica is freed. The raft_io is
 * the caller's to free afterwards.
 */
void pt_replica_close(struct pt_replica *r, void (*done)(void *ctx), void *ctx);

/* Queue an encoded request for the next log entry (see above): 0, or -PT_ENOTLEADER / -PT_E2BIG
 * (then done never runs). */
int pt_replica_propose(struct pt_replica *r, const uint8_t *req, size_t len,
                       pt_replica_done_fn done, void *ctx);
/* Ask for a linearizable read point (see above): 0 (done runs later), or -PT_ENOTLEADER. */
int pt_replica_read(struct pt_replica *r, pt_replica_read_fn done, void *ctx);

/*
 * Start the term barrier now if this member leads and has none in flight (the core's own tick
 * does it every 100 ms; production calls this every loop turn so a new leader serves at once).
 */
void pt_replica_poll(struct pt_replica *r);

/* Whether this member leads and has applied a barrier of its term (its store is complete). */
int pt_replica_can_serve(struct pt_replica *r);
int pt_replica_is_leader(struct pt_replica *r);
/* The leader as this member knows it: its id (0: unknown). */
unsigned pt_replica_leader(struct pt_replica *r);
struct raft *pt_replica_raft(struct pt_replica *r);
/* Inside a successful done callback: the log index of the entry that carried the proposal. */
uint64_t pt_replica_applying_index(struct pt_replica *r);

#endif
