/*
 * A Raft transport that finds peers by id at connect time: it wraps libraft's TCP transport
 * (raft_uv_tcp) and, for every outgoing connection, asks a resolver for the peer's current
 * "HOST:PORT" instead of trusting the address stored in the Raft configuration. The
 * configuration therefore holds stable logical names ("r0", "r1", ...) while the real ports may
 * change on every restart (the registry's --using-dynamic-ports case): a peer that moved is
 * found again on the next connection attempt. Shared by the shards and the CDC.
 */
#ifndef PETREL_CLUSTER_RAFT_TRANSPORT_H
#define PETREL_CLUSTER_RAFT_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <stddef.h>

/* Fill buf with the current address of Raft server `id`: 0, or negative when unknown. */
typedef int (*pt_raft_resolve_fn)(void *ctx, raft_id id, char *buf, size_t cap);

struct pt_raft_transport {
    struct raft_uv_transport outer; /* hand this one to raft_uv_init */
    struct raft_uv_transport inner; /* raft_uv_tcp */
    pt_raft_resolve_fn resolve;
    void *ctx;
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
};

/* Set up on `loop`, listening on bind_address ("HOST:PORT"): 0 or a RAFT_* error. */
int pt_raft_transport_init(struct pt_raft_transport *t, struct uv_loop_s *loop,
                           const char *bind_address, pt_raft_resolve_fn resolve, void *ctx);
/* Release memory after raft_close and raft_uv_close have finished. */
void pt_raft_transport_free(struct pt_raft_transport *t);

/* Bind an OS-chosen free TCP port on host and return it (the socket is closed again). */
int pt_raft_pick_port(const char *host, unsigned *port);
/* Whether another socket holds host:port (binding it fails with EADDRINUSE): 1 or 0. */
int pt_raft_port_taken(const char *host, unsigned port);

#endif
