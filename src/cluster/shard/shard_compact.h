/*
 * Background compaction of small spans (issue 12), run by a shard leader: appends of small
 * records leave files with runs of small spans; the leader merges a run into one span with
 * the same bytes and swaps it in by COMPACT_CHANGE (compare-and-swap on the file's version;
 * the version does not move, so a writer's change always wins). See shard_compact.c and
 * docs/DESIGN.md "Compaction".
 */
#ifndef PETREL_CLUSTER_SHARD_COMPACT_H
#define PETREL_CLUSTER_SHARD_COMPACT_H

#include <stdint.h>

#include "cluster/proto/shard_msgs.h"
#include "cluster/replica/node.h"
#include "cluster/shard/shard_sm.h"

#define PT_COMPACT_BELOW_DEFAULT (64u << 10) /* spans smaller than this are small */
#define PT_COMPACT_MAX_DEFAULT (4u << 20)    /* a merged span is at most this */
#define PT_COMPACT_MIN_RUN_DEFAULT 4         /* runs shorter than this stay */
#define PT_COMPACT_RATE_DEFAULT (16u << 20)  /* bytes read + written per second */
#define PT_COMPACT_INLINE_COPIES 2           /* copies of a merge of inline spans alone */

/* The leader's choice of `copies` block services for a new mirrored span (q->services,
 * q->n_services): 0 or -PT_E* (shard_server.c's placement, with its failure domains). */
typedef int (*pt_compact_place_fn)(void *ctx, struct pt_shard_req *q, unsigned copies);

struct pt_shard_compact {
    struct pt_node *node;
    struct pt_shard_sm *sm;
    pt_compact_place_fn place;
    void *place_ctx;
    uint32_t below, max; /* below = 0: compaction off */
    unsigned min_run;
    uint64_t rate;    /* bytes/s read + written; 0 = unlimited */
    uint64_t next_ms; /* no new run before this (pacing) */
    uint64_t cursor;  /* file id the next scan starts at */
    uint64_t seq;     /* cookies of the compaction's change files */
    void *job;        /* the run in flight (shard_compact.c), NULL when none */
    void *mem;        /* the job's memory, allocated at the first look and reused */
    /* counters (metrics) */
    uint64_t runs, spans_merged, bytes_rewritten, stale, failed;
};

void pt_shard_compact_init(struct pt_shard_compact *k, struct pt_node *node, struct pt_shard_sm *sm,
                           pt_compact_place_fn place, void *place_ctx, uint32_t below,
                           uint64_t rate, uint64_t seed);
/* On the loop, by the leader's tick: starts the next run when none is in flight. */
void pt_shard_compact_tick(struct pt_shard_compact *k, uint64_t now_ms);
/* After the node's loop has stopped. */
void pt_shard_compact_close(struct pt_shard_compact *k);

#endif
