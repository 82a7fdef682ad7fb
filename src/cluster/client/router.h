/*
 * Routing requests to the leader of a Raft group (a shard, or the CDC) with retries, back-off
 * and leader redirection. Used by the client library and by the CDC (which is a client of the
 * shards). Caches each group's leader address; asks the registry when it knows none, and
 * follows the address a follower names in its PT_ENOTLEADER reply. Not thread-safe: one router
 * per thread.
 *
 * What a failed attempt means decides whether it is repeated (docs/PROTOCOL.md, "Outcome
 * unknown"): PT_ENOTLEADER and PT_EAGAIN from a server had no effect and are retried at the
 * leader; PT_EINDOUBT (the request was logged, then leadership was lost) and a transport
 * failure after the request was sent (timeout, reset) may have taken effect: the request is
 * repeated only when it is repeatable (a repeat is recognised by the server, or only fails),
 * else the call returns -PT_EINDOUBT and the caller reads the state to learn the outcome.
 */
#ifndef PETREL_CLUSTER_ROUTER_H
#define PETREL_CLUSTER_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/net/net.h"
#include "cluster/proto/registry_msg.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/prng.h"

#define PT_ROUTER_CDC PT_SHARD_MAX /* target number of the CDC group */

struct pt_router {
    char registry[PT_REG_LOCATION_MAX];
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
 * and wait for the answer: 0 with rep filled, or the final error. `repeatable`: whether the
 * request may be sent again after an attempt whose outcome is unknown (above); when it is not,
 * such an attempt ends the call with -PT_EINDOUBT. *retried (may be NULL) is set when an
 * earlier attempt may have taken effect (it was in doubt and the request was repeated, or the
 * call ends in doubt), so that a caller can read e.g. PT_ENOENT after an unlink as "already
 * done". rep must be released with pt_reply_free on every return.
 */
int pt_router_call(struct pt_router *r, unsigned target, uint16_t kind, const void *body,
                   size_t len, int repeatable, struct pt_reply *rep, int *retried);

/*
 * Whether a shard request may be repeated after an attempt whose outcome is unknown: reads;
 * requests a repeat of which the shard recognises (CONSTRUCT_FILE: a second transient file that
 * expires unlinked; ADD_SPAN / ADD_INLINE: the last span again; CERTIFY_SPAN; LINK_FILE /
 * LINK_REPLACE: the cookie; RETIRE_FILE; the CDC's steps: the transaction id; ADD_RS_SPAN,
 * SET_POLICY, REPORT_BAD_BLOCK: the last span again, the same record, a report counted twice);
 * and requests a
 * repeat of which can only fail (UNLINK_INODE, RENAME_INODE: compare-and-set; DROP_SPAN: the
 * span is gone), whose caller then reads the state. Not UNLINK and RENAME by name (a repeat
 * could remove or move what another client put under the name since), nor leader-only ones.
 */
int pt_router_shard_repeatable(uint8_t op);

/* Encode a shard request and send it to the shard that owns `shard`, repeatable as above. */
int pt_router_shard(struct pt_router *r, unsigned shard, const struct pt_shard_req *q,
                    struct pt_reply *rep, int *retried);

#endif
