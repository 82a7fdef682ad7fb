/*
 * Repair on a shard leader (shard_repair.c): rebuilds blocks of the repair queue (reported by
 * readers and scrubbers), every block on a block service the registry has listed as stale
 * for longer than a timeout or declared failed by an operator (FAIL_SERVICE), and every block
 * on a service being drained (copied from it while it serves), each onto a fresh service in a failure domain its span does not use, and swaps the new copy in with REPLACE_BLOCK (a compare-and-swap applied through Raft).
 * Runs rounds like GC: chosen on the loop, each block rebuilt by the env-driven machine of
 * repair_rebuild.h (its block I/O on the libuv thread pool), the proposals on the loop. Never frees a block: the old copy is dropped by the swap's apply (GC
 * erases it after the retention period), and a copy written by a repair whose swap is refused
 * stays unused (a duplicated repair may have swapped in exactly that copy) until the orphan
 * sweep erases it: a block of this shard that a service holds and no span lists, seen so for
 * the retention period, is erased with a certificate (also what a crash left anywhere).
 */
#ifndef PETREL_CLUSTER_SHARD_REPAIR_H
#define PETREL_CLUSTER_SHARD_REPAIR_H

#include <stdint.h>
#include <time.h>

#include "cluster/replica/node.h"
#include "cluster/shard/repair_rebuild.h"
#include "cluster/shard/shard_sm.h"
#include "petrel/codec.h"
#include "petrel/prng.h"

/* A block a service holds that no span of this shard lists (seen by the orphan sweep). */
struct pt_orphan {
    uint64_t service, block, seen_ms; /* seen_ms: first seen unlisted (this leader) */
    uint32_t crc, size;
};
#define PT_REPAIR_ORPHANS_MAX 256

/*
 * What a repair needs from the node it runs on: the registry's view of the block services,
 * the clock and timers, leadership, proposals through Raft, and block I/O. A shard leader
 * passes its node (pt_shard_repair_init); the simulator passes its own processes, store and
 * messages (pt_shard_repair_init_host), so task choice and swaps run under its faults too.
 */
struct pt_repair_host {
    const struct pt_node_service *(*services)(void *ctx, size_t *count);
    const struct pt_node_service *(*service_find)(void *ctx, uint64_t id);
    struct pt_env *(*env)(void *ctx);
    int (*can_serve)(void *ctx);
    /* propose one encoded shard request; done runs later with its reply (pt_node_propose) */
    int (*propose)(void *ctx, const uint8_t *req, size_t len, pt_node_done_fn done, void *dctx);
    const struct pt_rebuild_io *io; /* NULL: the blocking client on the node's thread pool */
    void *ctx;
};

struct pt_shard_repair {
    struct pt_node *node; /* NULL under the simulator: no orphan sweep, host->io required */
    struct pt_repair_host host;
    struct pt_shard_sm *sm;
    struct pt_prng prng;
    uint64_t rate;     /* bytes per second read and written by repair; 0 = unlimited */
    uint64_t stale_ms; /* a service stale this long has every block rebuilt elsewhere */
    uint64_t last_ms;
    uint64_t marks_ms; /* when the draining/failed marks were last read */
    int running;
    int paused; /* --no-repair: reports still queue; nothing is rebuilt or erased */
    uint64_t queue_service, queue_block; /* where the next look at the queue starts */
    uint64_t stale_block;                /* where the next look at a stale service starts */
    uint64_t drain_block;                /* where the next look at a draining service starts */
    uint64_t fail_block;                 /* where the next look at a failed service starts */
    uint64_t domain_file, domain_offset; /* where the next walk for shared domains starts */
    uint64_t draining[16];               /* services marked draining (DRAIN_SERVICE) */
    unsigned ndraining;
    uint64_t declared[16]; /* services an operator declared failed (FAIL_SERVICE) */
    unsigned ndeclared;
    struct {
        uint64_t id, since;
    } stale[PT_NODE_MAX_SERVICES];
    unsigned nstale;
    uint64_t repaired, failed; /* blocks swapped in / repairs that could not finish */
    unsigned swaps_pending;    /* REPLACE_BLOCKs proposed, not yet answered */
    /* --repair-rate over rounds back to back, on the node env's clock (repair_rebuild.h) */
    struct pt_repair_pace pace;
    void *round; /* the repair round in flight (shard_repair.c), NULL when none */
    /* the orphan sweep: one service's block list at a time, round robin */
    uint64_t sweep_ms;    /* when the last sweep started */
    unsigned sweep_next;  /* index into the node's service list */
    uint64_t sweep_start; /* block id the next listing of that service starts at */
    struct pt_orphan orphans[PT_REPAIR_ORPHANS_MAX];
    unsigned norphans;
    uint64_t orphans_erased;
    uint64_t moved_domain; /* blocks queued because their span had two in one failure domain */
};

/* rate: bytes/s (0: unlimited); stale_ms: 0 = never rebuild for staleness alone. */
void pt_shard_repair_init(struct pt_shard_repair *r, struct pt_node *node, struct pt_shard_sm *sm,
                          uint64_t rate, uint64_t stale_ms, uint64_t seed);
/* The same over any host (the simulator's); node is NULL. */
void pt_shard_repair_init_host(struct pt_shard_repair *r, const struct pt_repair_host *host,
                               struct pt_shard_sm *sm, uint64_t rate, uint64_t stale_ms,
                               uint64_t seed);
/* Called on the loop by the leader's tick: starts a round when none runs (once a second). */
void pt_shard_repair_tick(struct pt_shard_repair *r, uint64_t now_ms);
/* After the node's loop has stopped: frees a round left waiting on a cancelled timer. */
void pt_shard_repair_close(struct pt_shard_repair *r);

/* Whether new blocks must not go to service `id` (declared failed or draining, as of the last
 * tick). */
int pt_shard_repair_avoids(const struct pt_shard_repair *r, uint64_t id);

/*
 * REPAIR_STATUS (leader, after its read barrier): the body of the reply into out — spans
 * checked, spans below policy, repair queue entries, blocks repaired and repairs failed since
 * this leader started, then per block service its blocks, queued blocks and spans below
 * policy for a block there (PROTOCOL.md). 0 or -PT_E*.
 */
int pt_shard_repair_status(struct pt_shard_repair *r, struct pt_cursor *out);

/* The span that starts at (file, offset), as the store lists it now: 0, or -PT_ENOENT when no
 * span starts there (the file gone, a directory, another boundary). Its blocks are filled;
 * cell_crcs and inline_data are NULL (they would point into a reused buffer). Not reentrant:
 * the shard's loop thread only (and the simulator). */
int pt_shard_span_at(struct pt_shard_sm *sm, uint64_t file, uint64_t offset, struct pt_span *out);

#endif
