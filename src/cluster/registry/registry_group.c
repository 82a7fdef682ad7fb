/*
 * One member of a registry group: the registry state machine (registry_state.c, applied
 * through registry_fsm.c) as the FSM of a replicated node (replica/node.h), found by its
 * peers through the static addresses of the group's location instead of a registry.
 *
 * Owns which requests go through the log (heartbeats: the leader proposes them, drawing a new
 * block service's secret first, and answers once they are committed), which are answered
 * from the local state (listings and secrets: by the leader, or by a follower no staler than
 * max_staleness_ms) and the group's clock. The clock is the leader time stamped in the newest
 * applied entry plus the local time elapsed since it was applied, so ages and staleness flags
 * need no synchronised clocks, and a follower cut off from the leader sees its entries age
 * rather than look fresh. An idle leader logs a tick every PT_REGISTRY_TICK_MS to keep
 * followers' clocks and staleness current.
 *
 * Invariants: the state changes only in fsm_apply/fsm_restore (loop thread); a follower never
 * answers a read once its last apply is older than the bound.
 */
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/proto/frame.h"
#include "cluster/proto/ids.h"
#include "cluster/registry/registry.h"
#include "cluster/replica/entry.h"
#include "cluster/replica/node.h"
#include "cluster/storage/durable.h"
#include "petrel/codec.h"
#include "petrel/common.h"

struct group_service {
    struct pt_node *node;
    struct pt_registry_fsm fsm;
    struct pt_registry state;
    char addrs[PT_REG_MAX_REPLICAS][PT_REG_ADDR_MAX];
    unsigned members, replica;
    uint64_t max_staleness_ms;
    uint64_t applied_time_ms; /* leader time of the newest applied entry (0: none yet) */
    uint64_t applied_at_ms;   /* local monotonic time of that apply */
    uint64_t last_proposal_ms;
};

/* The group's clock as this member sees it (see the file comment). */
static uint64_t group_now(const struct group_service *s)
{
    if (!s->applied_time_ms) return pt_node_wall_ms();
    return s->applied_time_ms + (pt_now_ms() - s->applied_at_ms);
}

static uint64_t staleness(const struct group_service *s)
{
    if (pt_node_can_serve(s->node)) return 0;
    if (!s->applied_at_ms) return UINT64_MAX;
    return pt_now_ms() - s->applied_at_ms;
}

/* The FSM applied an entry (or restored a snapshot): the group clock's new base. */
static void applied(void *ctx, uint64_t time_ms)
{
    struct group_service *s = ctx;
    s->applied_time_ms = time_ms;
    s->applied_at_ms = pt_now_ms();
}

/* ---- requests ------------------------------------------------------------------------------ */

struct write_ctx {
    struct group_service *s;
    struct pt_request *req;
};

static void written(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct write_ctx *w = ctx;
    struct pt_cursor c;
    int rc;
    if (status) {
        pt_node_reply_status(w->s->node, w->req, status);
        free(w);
        return;
    }
    pt_cursor_init(&c, (void *)reply, len);
    rc = len >= 4 ? (int)(int32_t)pt_dec_u32(&c) : -PT_EPROTO;
    if (rc)
        pt_request_reply_error(w->req, rc, "heartbeat refused", NULL);
    else
        pt_request_reply(w->req, reply + 4, (uint32_t)(len - 4));
    free(w);
}

static void handle_write(struct group_service *s, struct pt_request *req)
{
    uint8_t item[PT_REGISTRY_ITEM_MAX], fresh[PT_REG_SECRET_SIZE];
    uint16_t kind = pt_request_kind(req);
    struct write_ctx *w;
    int n, rc;
    if (!pt_node_can_serve(s->node)) {
        pt_node_reply_not_leader(s->node, req);
        return;
    }
    if (kind == PT_MSG_REG_BLOCKS_HEARTBEAT && (rc = pt_registry_random_secret(fresh)) != 0) {
        pt_request_reply_error(req, rc, "no randomness for a secret", NULL);
        return;
    }
    n = pt_registry_item_encode(item, sizeof(item), kind, pt_request_body(req),
                                pt_request_body_len(req), fresh);
    if (n < 0) {
        pt_request_reply_error(req, -PT_EPROTO, "malformed request body", NULL);
        return;
    }
    w = malloc(sizeof(*w));
    if (!w) {
        pt_request_reply_error(req, -PT_ENOMEM, "out of memory", NULL);
        return;
    }
    w->s = s;
    w->req = req;
    if ((rc = pt_node_propose(s->node, item, (size_t)n, written, w)) != 0) {
        free(w);
        pt_node_reply_status(s->node, req, rc);
        return;
    }
    s->last_proposal_ms = pt_now_ms();
}

static void handle_info(struct group_service *s, struct pt_request *req)
{
    struct raft *r = pt_node_raft(s->node);
    struct pt_reg_info info;
    struct pt_cursor c;
    uint8_t buf[64 + PT_REG_ADDR_MAX];
    raft_id leader = 0;
    const char *leader_addr = NULL;
    memset(&info, 0, sizeof(info));
    info.replica = (uint8_t)s->replica;
    info.replicas = (uint8_t)s->members;
    info.serving = (uint8_t)pt_node_can_serve(s->node);
    info.term = r->current_term;
    info.commit = r->commit_index;
    info.applied = r->last_applied;
    info.staleness_ms = staleness(s);
    raft_leader(r, &leader, &leader_addr);
    if (leader >= 1 && leader <= s->members)
        snprintf(info.leader, sizeof(info.leader), "%s", s->addrs[leader - 1]);
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_reg_enc_info(&c, &info);
    pt_request_reply(req, buf, (uint32_t)c.pos);
}

static void handle(void *ctx, struct pt_request *req)
{
    struct group_service *s = ctx;
    switch (pt_request_kind(req)) {
    case PT_MSG_REG_SHARD_HEARTBEAT:
    case PT_MSG_REG_CDC_HEARTBEAT:
    case PT_MSG_REG_BLOCKS_HEARTBEAT:
        handle_write(s, req);
        return;
    case PT_MSG_REG_INFO:
        handle_info(s, req);
        return;
    case PT_MSG_REG_LIST_SHARDS:
    case PT_MSG_REG_LIST_CDC:
    case PT_MSG_REG_LIST_BLOCKS:
    case PT_MSG_REG_BLOCK_SECRET:
        /* A leader's state holds every committed entry once it serves; a follower's lags by
         * at most its staleness. Beyond the bound, send the client to the leader. */
        if (staleness(s) > s->max_staleness_ms) {
            pt_node_reply_not_leader(s->node, req);
            return;
        }
        pt_registry_serve_read(&s->state, req, group_now(s));
        return;
    default:
        pt_request_reply_error(req, -PT_ENOTSUP, "unknown message kind for the registry", NULL);
        return;
    }
}

static void tick_done(void *ctx, int status, const uint8_t *reply, size_t len)
{
    (void)ctx;
    (void)status;
    (void)reply;
    (void)len;
}

static void tick(void *ctx)
{
    struct group_service *s = ctx;
    uint8_t item[8];
    int n;
    if (!pt_node_can_serve(s->node) || pt_now_ms() - s->last_proposal_ms < PT_REGISTRY_TICK_MS)
        return;
    n = pt_registry_item_encode(item, sizeof(item), PT_REGISTRY_ITEM_TICK, NULL, 0, NULL);
    if (n > 0 && pt_node_propose(s->node, item, (size_t)n, tick_done, s) == 0)
        s->last_proposal_ms = pt_now_ms();
}

/* The host part of "HOST:PORT" / "[V6]:PORT" (the Raft port binds there too). */
static void host_of(const char *addr, char *host, size_t cap)
{
    const char *colon = strrchr(addr, ':');
    size_t len = colon ? (size_t)(colon - addr) : strlen(addr);
    if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
        addr++;
        len -= 2;
    }
    if (len >= cap) len = cap - 1;
    memcpy(host, addr, len);
    host[len] = 0;
}

int pt_registry_group_run(const struct pt_registry_group_config *cfg, char *err, size_t err_cap)
{
    struct group_service *s;
    struct pt_node_config nc;
    char host[PT_REG_ADDR_MAX];
    unsigned i;
    int rc, n;
    s = calloc(1, sizeof(*s));
    if (!s) return -PT_ENOMEM;
    n = pt_reg_location_split(cfg->location, s->addrs, PT_REG_MAX_REPLICAS);
    if (n != 1 && n != 3 && n != 5) {
        snprintf(err, err_cap, "a registry group has 1, 3 or 5 members (HOST:PORT,...): '%s'",
                 cfg->location);
        free(s);
        return -PT_EINVAL;
    }
    if (cfg->replica >= (unsigned)n) {
        snprintf(err, err_cap, "--replica %u: the group has %d members", cfg->replica, n);
        free(s);
        return -PT_EINVAL;
    }
    s->members = (unsigned)n;
    s->replica = cfg->replica;
    s->max_staleness_ms =
        cfg->max_staleness_ms ? cfg->max_staleness_ms : PT_REGISTRY_MAX_STALENESS_MS;
    pt_registry_init(&s->state, cfg->stale_after_ms);
    if (pt_registry_fsm_init(&s->fsm, &s->state) != 0) {
        free(s);
        return -PT_ENOMEM;
    }
    s->fsm.applied = applied;
    s->fsm.ctx = s;
    host_of(cfg->listen ? cfg->listen : s->addrs[cfg->replica], host, sizeof(host));
    memset(&nc, 0, sizeof(nc));
    nc.kind = PT_NODE_REGISTRY;
    nc.replica = cfg->replica;
    nc.replicas = s->members;
    nc.dir = cfg->dir;
    nc.host = host;
    nc.http = cfg->http;
    nc.listen = cfg->listen;
    for (i = 0; i < s->members; i++)
        nc.peers[i] = s->addrs[i];
    nc.raft.election_timeout_ms = cfg->election_timeout_ms;
    nc.raft.heartbeat_ms = cfg->heartbeat_ms;
    nc.fsm = &s->fsm.fsm;
    nc.handler = handle;
    nc.tick = tick;
    nc.ctx = s;
    if ((rc = pt_mkdir_p(cfg->dir)) != 0 ||
        (rc = pt_node_start(&s->node, &nc, err, err_cap)) != 0) {
        if (!err[0]) snprintf(err, err_cap, "cannot use %s", cfg->dir);
        pt_registry_fsm_free(&s->fsm);
        pt_registry_free(&s->state);
        free(s);
        return rc;
    }
    if (cfg->started) cfg->started(cfg->started_ctx, s->addrs[cfg->replica]);
    rc = pt_node_run(s->node);
    pt_registry_fsm_free(&s->fsm);
    pt_registry_free(&s->state);
    free(s);
    return rc;
}
