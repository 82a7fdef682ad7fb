/*
 * The Raft glue of a shard: a struct raft_fsm whose apply runs the shard state machine on a
 * committed log entry, and whose snapshot/restore serialize the whole store.
 *
 * Apply hands its replies to the request that proposed the entry through the result pointer
 * (struct pt_shard_apply_out, owned by this object and overwritten by the next apply: libraft
 * calls the apply callback synchronously right after fsm->apply, so the proposer copies it
 * out at once). On followers nobody reads it. Never talks to the network.
 */
#ifndef PETREL_CLUSTER_SHARD_FSM_H
#define PETREL_CLUSTER_SHARD_FSM_H

#include <raft.h>

#include "cluster/replica/raft_io.h"

#include "cluster/shard/shard_sm.h"

struct pt_shard_fsm {
    struct raft_fsm fsm; /* handed to raft_init; fsm.data points back here */
    struct pt_shard_sm *sm;
    struct pt_shard_apply_out out;
    int store_error;  /* the first store failure; apply refuses everything after it */
    uint64_t applied; /* entries applied (for tests and stats) */
    /* The replica's Raft I/O, set before raft_start when its config has stream_snapshots:
     * snapshots go through its data files. NULL: one buffer (images still restore either
     * way, so a directory written by an older version loads). */
    struct raft_io *io;
};

/* Bytes of the buffer a streamed snapshot moves through (allocated for the call only). */
#define PT_SHARD_FSM_SNAP_CHUNK (1u << 20)

/* Bind an FSM to an open store. */
void pt_shard_fsm_init(struct pt_shard_fsm *f, struct pt_shard_sm *sm);

#endif
