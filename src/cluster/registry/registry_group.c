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
 * With --http each member serves the status page (registry_status.c) from its own replicated
 * state, headed by which member it is, its role and staleness, and the group's members as they
 * last answered PT_MSG_REG_INFO: a worker thread polls every peer every PT_GROUP_POLL_MS (one
 * short connection each, off the loop), and a peer that did not answer is shown down.
 *
 * Invariants: the state changes only in fsm_apply/fsm_restore (loop thread); a follower never
 * answers a read once its last apply is older than the bound.
 */
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/client/registry_client.h"
#include "cluster/proto/frame.h"
#include "cluster/proto/ids.h"
#include "cluster/registry/registry.h"
#include "cluster/registry/registry_status.h"
#include "cluster/replica/entry.h"
#include "cluster/replica/node.h"
#include "cluster/storage/durable.h"
#include "petrel/codec.h"
#include "petrel/common.h"

#define PT_GROUP_POLL_MS 500 /* peers' PT_MSG_REG_INFO for the status page, this often */

/* One poll of the peers (worker thread: it only fills `got` and `ok`). */
struct member_poll {
    uv_work_t work;
    struct group_service *s;
    char addrs[PT_REG_MAX_REPLICAS][PT_REG_ADDR_MAX];
    unsigned members, self;
    int ok[PT_REG_MAX_REPLICAS];
    struct pt_reg_info got[PT_REG_MAX_REPLICAS];
};

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
    /* the status page */
    struct pt_registry_events events;
    struct pt_registry_member_view views[PT_REG_MAX_REPLICAS];
    uint64_t answered_ms[PT_REG_MAX_REPLICAS]; /* local time of each peer's last answer */
    struct member_poll poll;
    int polling;
    uint64_t last_poll_ms;
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

static void fill_info(struct group_service *s, struct pt_reg_info *info)
{
    struct raft *r = pt_node_raft(s->node);
    raft_id leader = 0;
    const char *leader_addr = NULL;
    memset(info, 0, sizeof(*info));
    info->replica = (uint8_t)s->replica;
    info->replicas = (uint8_t)s->members;
    info->serving = (uint8_t)pt_node_can_serve(s->node);
    info->term = r->current_term;
    info->commit = r->commit_index;
    info->applied = r->last_applied;
    info->staleness_ms = staleness(s);
    raft_leader(r, &leader, &leader_addr);
    if (leader >= 1 && leader <= s->members)
        snprintf(info->leader, sizeof(info->leader), "%s", s->addrs[leader - 1]);
}

static void handle_info(struct group_service *s, struct pt_request *req)
{
    struct pt_reg_info info;
    struct pt_cursor c;
    uint8_t buf[64 + PT_REG_ADDR_MAX];
    fill_info(s, &info);
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

/* ---- the status page ----------------------------------------------------------------------- */

static void poll_work(uv_work_t *w)
{
    struct member_poll *p = w->data;
    struct pt_call_opts one = {.timeout_ms = 300, .retry_budget_ms = 1};
    unsigned i;
    for (i = 0; i < p->members; i++)
        p->ok[i] = i != p->self && pt_reg_info(p->addrs[i], &p->got[i], &one) == 0;
}

static void poll_done(uv_work_t *w, int status)
{
    struct member_poll *p = w->data;
    struct group_service *s = p->s;
    unsigned i;
    s->polling = 0;
    if (status) return;
    for (i = 0; i < s->members; i++) {
        struct pt_registry_member_view *v = &s->views[i];
        enum pt_registry_role was = v->role;
        uint64_t heard_before = s->answered_ms[i];
        if (i == s->replica) continue;
        if (p->ok[i]) {
            v->info = p->got[i];
            v->role = v->info.serving ? PT_REGISTRY_ROLE_LEADER : PT_REGISTRY_ROLE_FOLLOWER;
            s->answered_ms[i] = pt_now_ms();
        } else {
            v->role = PT_REGISTRY_ROLE_DOWN;
        }
        /* A peer not heard from yet (starting up) is not news. */
        if (heard_before && (was == PT_REGISTRY_ROLE_DOWN) != (v->role == PT_REGISTRY_ROLE_DOWN))
            pt_registry_events_add(&s->events, pt_node_wall_ms(), "registry member %u (%s) %s",
                                   i, s->addrs[i],
                                   v->role == PT_REGISTRY_ROLE_DOWN ? "is unreachable"
                                                                    : "answers again");
    }
}

static void poll_peers(struct group_service *s)
{
    struct member_poll *p = &s->poll;
    if (s->polling || s->members < 2 || pt_now_ms() - s->last_poll_ms < PT_GROUP_POLL_MS) return;
    memset(p, 0, sizeof(*p));
    p->work.data = p;
    p->s = s;
    memcpy(p->addrs, s->addrs, sizeof(p->addrs));
    p->members = s->members;
    p->self = s->replica;
    if (uv_queue_work(pt_node_loop(s->node), &p->work, poll_work, poll_done) == 0) {
        s->polling = 1;
        s->last_poll_ms = pt_now_ms();
    }
}

/* This member's own row, from its Raft state. */
static void self_view(struct group_service *s)
{
    struct pt_registry_member_view *v = &s->views[s->replica];
    struct raft *r = pt_node_raft(s->node);
    fill_info(s, &v->info);
    v->silent_ms = 0;
    v->role = v->info.serving              ? PT_REGISTRY_ROLE_LEADER
              : r->state == RAFT_CANDIDATE ? PT_REGISTRY_ROLE_CANDIDATE
                                           : PT_REGISTRY_ROLE_FOLLOWER;
}

/* "/" is the status page, from this member's replicated state. */
static int status_page(void *ctx, const char *path, char **body, size_t *len,
                       const char **content_type)
{
    struct group_service *s = ctx;
    struct pt_registry_group_view *g;
    unsigned i;
    int rc;
    if (strcmp(path, "/") != 0 && strcmp(path, "/index.html") != 0) return 404;
    g = calloc(1, sizeof(*g));
    if (!g) return 500;
    self_view(s);
    g->self = s->replica;
    g->members = s->members;
    g->max_staleness_ms = s->max_staleness_ms;
    for (i = 0; i < s->members; i++) {
        g->m[i] = s->views[i];
        snprintf(g->m[i].addr, sizeof(g->m[i].addr), "%s", s->addrs[i]);
        if (i != s->replica)
            g->m[i].silent_ms =
                s->answered_ms[i] ? pt_now_ms() - s->answered_ms[i] : UINT64_MAX;
    }
    pt_registry_events_watch(&s->events, &s->state, group_now(s), pt_node_wall_ms());
    rc = pt_registry_group_status_page(&s->state, &s->events, g, group_now(s), pt_node_wall_ms(),
                                       body, len);
    free(g);
    if (rc) return 500;
    *content_type = "text/html; charset=utf-8";
    return 200;
}

static void tick(void *ctx)
{
    struct group_service *s = ctx;
    uint8_t item[8];
    int n;
    poll_peers(s);
    pt_registry_events_watch(&s->events, &s->state, group_now(s), pt_node_wall_ms());
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
    nc.page = cfg->http ? status_page : NULL;
    nc.ctx = s;
    if ((rc = pt_mkdir_p(cfg->dir)) != 0 ||
        (rc = pt_node_start(&s->node, &nc, err, err_cap)) != 0) {
        if (!err[0]) snprintf(err, err_cap, "cannot use %s", cfg->dir);
        pt_registry_fsm_free(&s->fsm);
        pt_registry_free(&s->state);
        free(s);
        return rc;
    }
    if (cfg->started)
        cfg->started(cfg->started_ctx, s->addrs[cfg->replica],
                     cfg->http ? pt_node_http_address(s->node) : NULL);
    rc = pt_node_run(s->node);
    pt_registry_fsm_free(&s->fsm);
    pt_registry_free(&s->state);
    free(s);
    return rc;
}
