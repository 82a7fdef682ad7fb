/*
 * Routing requests to the leader of a Raft group (a shard, or the CDC) with retries, back-off
 * and leader redirection. Used by the client library and by the CDC (which is a client of the
 * shards). Caches each group's leader address; asks the registry when it knows none, and
 * follows the address a follower names in its PT_ENOTLEADER reply. Not thread-safe: one router
 * per thread.
 */
#ifndef PETREL_CLUSTER_ROUTER_H
#define PETREL_CLUSTER_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/net/net.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/prng.h"

#define PT_ROUTER_CDC PT_SHARD_MAX /* target number of the CDC group */

struct pt_router {
    char registry[128];
    uint32_t budget_ms;     /* total time one call may spend retrying */
    int attempt_timeout_ms; /* one request/response exchange */
    char leader[PT_SHARD_MAX + 1][PT_FRAME_ADDRESS_MAX + 1];
    unsigned next[PT_SHARD_MAX + 1]; /* replica to try when no leader is known */
    struct pt_prng prng;
};

void pt_router_init(struct pt_router *r, const char *registry, uint32_t budget_ms,
                    int attempt_timeout_ms, uint64_t seed);

/*
 * Send body (message kind `kind`) to the leader of `target` (a shard number or PT_ROUTER_CDC)
 * and wait for the answer: 0 with rep filled, or the final error. *retried (may be NULL) is
 * set when the request may have been delivered more than once (a timed-out attempt was
 * repeated), so that a caller can read e.g. PT_ENOENT after an unlink as "already done".
 * rep must be released with pt_reply_free on every return.
 */
int pt_router_call(struct pt_router *r, unsigned target, uint16_t kind, const void *body,
                   size_t len, struct pt_reply *rep, int *retried);

/* Encode a shard request and send it to the shard that owns `shard`. */
int pt_router_shard(struct pt_router *r, unsigned shard, const struct pt_shard_req *q,
                    struct pt_reply *rep, int *retried);

#endif
