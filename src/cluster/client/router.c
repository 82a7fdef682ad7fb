/*
 * Leader routing with retries (see router.h). The only place a client decides whom to ask:
 * cached leader, else the registry's leader hint, else replicas in turn.
 */
#include "cluster/client/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/client/registry_client.h"
#include "cluster/proto/ids.h"
#include "petrel/common.h"

void pt_router_init(struct pt_router *r, const char *registry, uint32_t budget_ms,
                    int attempt_timeout_ms, uint64_t seed)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->registry, sizeof(r->registry), "%s", registry);
    r->budget_ms = budget_ms ? budget_ms : 30000;
    r->attempt_timeout_ms = attempt_timeout_ms ? attempt_timeout_ms : 3000;
    pt_prng_seed(&r->prng, seed);
}

/* Ask the registry for an address of the group: the leader if one is flagged, else the next. */
static int discover(struct pt_router *r, unsigned target)
{
    struct pt_reg_replica *v = NULL;
    struct pt_call_opts opts = {.timeout_ms = 1000, .retry_budget_ms = 1};
    size_t n = 0, i, live = 0;
    int rc = target == PT_ROUTER_CDC
                 ? pt_reg_list_cdc(r->registry, &v, &n, &opts)
                 : pt_reg_list_shards(r->registry, (uint16_t)target, &v, &n, &opts);
    if (rc) return rc;
    r->leader[target][0] = 0;
    for (i = 0; i < n; i++)
        if (v[i].addr[0] && !v[i].stale && v[i].leader)
            snprintf(r->leader[target], sizeof(r->leader[0]), "%s", v[i].addr);
    if (!r->leader[target][0]) {
        for (i = 0; i < n; i++)
            if (v[i].addr[0]) live++;
        if (live) {
            size_t pick = r->next[target]++ % live, k = 0;
            for (i = 0; i < n; i++) {
                if (!v[i].addr[0]) continue;
                if (k++ == pick) snprintf(r->leader[target], sizeof(r->leader[0]), "%s", v[i].addr);
            }
        }
    }
    free(v);
    return r->leader[target][0] ? 0 : -PT_EAGAIN;
}

int pt_router_shard_repeatable(uint8_t op)
{
    switch (op) {
    case PT_SHARD_LOOKUP:
    case PT_SHARD_READDIR:
    case PT_SHARD_STAT:
    case PT_SHARD_SPANS:
    case PT_SHARD_CONSTRUCT_FILE:
    case PT_SHARD_ADD_SPAN:
    case PT_SHARD_ADD_INLINE:
    case PT_SHARD_CERTIFY_SPAN:
    case PT_SHARD_LINK_FILE:
    case PT_SHARD_LINK_REPLACE:
    case PT_SHARD_DROP_SPAN:
    case PT_SHARD_RETIRE_FILE:
    case PT_SHARD_UNLINK_INODE:
    case PT_SHARD_RENAME_INODE:
    case PT_SHARD_MAKE_DIR:
    case PT_SHARD_ADD_ENTRY:
    case PT_SHARD_REMOVE_ENTRY:
    case PT_SHARD_LOCK_ENTRY:
    case PT_SHARD_UNLOCK_ENTRY:
    case PT_SHARD_REMOVE_DIR:
    case PT_SHARD_SET_PARENT:
    case PT_SHARD_REPLACE_ENTRY:
    case PT_SHARD_SETATTR: /* sets the same values again (a *_NOW time: a later now) */
    /* changes: a second change file (never committed, expires); a tail cut again; a commit
     * repeated answers the version its first try made */
    case PT_SHARD_OPEN_CHANGE:
    case PT_SHARD_TRUNCATE_SPANS:
    case PT_SHARD_COMMIT_CHANGE:
    case PT_SHARD_ADD_HOLE: /* the same hole again: a repeat answers it */
    /* redundancy: reads; the last RS span again; a policy set again; a report counted twice */
    case PT_SHARD_GET_POLICY:
    case PT_SHARD_REPAIR_LIST:
    case PT_SHARD_ADD_RS_SPAN:
    case PT_SHARD_SET_POLICY:
    case PT_SHARD_REPORT_BAD_BLOCK:
    case PT_SHARD_SCRUB_REPORT:
    case PT_SHARD_DRAIN_STATUS:
    case PT_SHARD_REPAIR_STATUS:
    case PT_SHARD_DRAIN_SERVICE: /* a mark set twice */
    case PT_SHARD_FAIL_SERVICE:
        return 1;
    default:
        return 0; /* UNLINK and RENAME by name, leader-only and unknown requests */
    }
}

int pt_router_call(struct pt_router *r, unsigned target, uint16_t kind, const void *body,
                   size_t len, int repeatable, struct pt_reply *rep, int *retried)
{
    struct pt_retry retry;
    struct pt_call_opts opts;
    struct iovec iov;
    int rc, hops = 0;
    memset(rep, 0, sizeof(*rep));
    if (retried) *retried = 0;
    if (target > PT_ROUTER_CDC) return -PT_EINVAL;
    pt_retry_init(&retry, 20, 500, r->budget_ms, pt_prng_next(&r->prng));
    memset(&opts, 0, sizeof(opts));
    opts.timeout_ms = r->attempt_timeout_ms;
    opts.retry_budget_ms = 1;
    iov.iov_base = (void *)body;
    iov.iov_len = len;
    for (;;) {
        if (!r->leader[target][0]) {
            rc = discover(r, target);
            if (rc) goto wait;
        }
        pt_reply_free(rep);
        rc = repeatable ? pt_call(r->leader[target], kind, &iov, 1, &opts, rep)
                        : pt_call_once(r->leader[target], kind, &iov, 1, &opts, rep);
        if (rc == 0) return 0;
        if (rep->remote && rc == -PT_ENOTLEADER) {
            /* No effect. A follower names the leader: go there at once (a few hops, then
             * back off). */
            if (rep->error.leader[0] && hops++ < 3) {
                snprintf(r->leader[target], sizeof(r->leader[0]), "%s", rep->error.leader);
                continue;
            }
            r->leader[target][0] = 0;
        } else if (rep->remote && rc == -PT_EINDOUBT) {
            /* Logged by a leader that lost its lead: it may still commit. The same replica is
             * asked again: it knows its successor by then and redirects. */
            if (retried) *retried = 1;
            if (!repeatable) return rc;
        } else if (rep->remote && rc != -PT_EAGAIN) {
            return rc; /* the operation's own answer */
        } else if (!rep->remote) {
            /* Transport failure: once sent (timeout, reset), the request may have been
             * applied; a refused connection never delivered it. */
            if (rc == -PT_ETIMEDOUT || rc == -PT_ECONNRESET || rc == -PT_EIO || rc == -PT_EBADMSG ||
                rc == -PT_EPROTO) {
                if (retried) *retried = 1;
                if (!repeatable) return -PT_EINDOUBT;
            }
            r->leader[target][0] = 0;
        }
    wait:
        hops = 0;
        if (pt_retry_wait(&retry) != 0) return rc ? rc : -PT_ETIMEDOUT;
    }
}

int pt_router_shard(struct pt_router *r, unsigned shard, const struct pt_shard_req *q,
                    struct pt_reply *rep, int *retried)
{
    uint8_t buf[PT_INLINE_MAX + 1024];
    int n = pt_shard_req_encode(q, buf, sizeof(buf));
    if (n < 0) {
        memset(rep, 0, sizeof(*rep));
        return n;
    }
    return pt_router_call(r, shard, PT_MSG_SHARD_REQ, buf, (size_t)n,
                          pt_router_shard_repeatable(q->op), rep, retried);
}
