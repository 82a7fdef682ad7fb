/*
 * The registry's view for operators (registry_status.c): the status page, the recent-events
 * ring and the registry's own gauges, all read from the state on the loop thread.
 */
#ifndef PETREL_CLUSTER_REGISTRY_STATUS_H
#define PETREL_CLUSTER_REGISTRY_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/registry/registry.h"

#define PT_REGISTRY_EVENTS 32

struct pt_registry_event {
    uint64_t wall_ms;
    char text[240];
};

/* The last PT_REGISTRY_EVENTS events, oldest overwritten first. */
struct pt_registry_events {
    struct pt_registry_event ring[PT_REGISTRY_EVENTS];
    uint64_t next; /* events recorded so far */
};

struct pt_metrics;

void pt_registry_events_add(struct pt_registry_events *ev, uint64_t wall_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record services that went down (stale) or came back since the last call. */
void pt_registry_events_watch(struct pt_registry_events *ev, struct pt_registry *r, uint64_t now_ms,
                              uint64_t wall_ms);

/* Set the registry's gauges (services up and down by kind). */
void pt_registry_metrics_collect(struct pt_metrics *m, const struct pt_registry *r,
                                 uint64_t now_ms);

/* The status page as a malloc'd HTML document: 0 or -PT_ENOMEM. */
int pt_registry_status_page(const struct pt_registry *r, const struct pt_registry_events *ev,
                            const char *self, uint64_t now_ms, uint64_t wall_ms, char **out,
                            size_t *len);

/*
 * A registry group as one member sees it, for its status page: itself (from its own Raft
 * state) and every member as last heard through PT_MSG_REG_INFO (registry_group.c polls them).
 */
enum pt_registry_role {
    PT_REGISTRY_ROLE_DOWN = 0,  /* did not answer the last poll */
    PT_REGISTRY_ROLE_FOLLOWER,
    PT_REGISTRY_ROLE_CANDIDATE, /* the member itself only: others cannot tell */
    PT_REGISTRY_ROLE_LEADER,    /* serving leader */
};
struct pt_registry_member_view {
    char addr[PT_REG_ADDR_MAX];
    enum pt_registry_role role;
    uint64_t silent_ms;     /* since the member last answered (0: itself; UINT64_MAX: never) */
    struct pt_reg_info info; /* as it last answered (zero: never) */
};
struct pt_registry_group_view {
    unsigned self, members;
    uint64_t max_staleness_ms; /* beyond it this member redirects reads to the leader */
    struct pt_registry_member_view m[PT_REG_MAX_REPLICAS];
};

/* The status page of a group member (group: NULL renders the standalone page). */
int pt_registry_group_status_page(const struct pt_registry *r,
                                  const struct pt_registry_events *ev,
                                  const struct pt_registry_group_view *group, uint64_t now_ms,
                                  uint64_t wall_ms, char **out, size_t *len);

#endif
