/*
 * Resolving Raft transport (see raft_transport.h). Delegates everything to raft_uv_tcp and only
 * rewrites the address of outgoing connections. An unknown peer is dialled at a closed port so
 * that the attempt fails through the normal callback path and libraft retries later.
 */
#include "cluster/shard/raft_transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UNKNOWN_PEER "127.0.0.1:1"

static struct pt_raft_transport *outer_of(struct raft_uv_transport *outer)
{
    return (struct pt_raft_transport *)((char *)outer - offsetof(struct pt_raft_transport, outer));
}

static void copy_errmsg(struct pt_raft_transport *t)
{
    memcpy(t->outer.errmsg, t->inner.errmsg, sizeof(t->outer.errmsg));
}

static int tr_init(struct raft_uv_transport *outer, raft_id id, const char *address)
{
    struct pt_raft_transport *t = outer_of(outer);
    int rc = t->inner.init(&t->inner, id, address);
    if (rc) copy_errmsg(t);
    return rc;
}

static void tr_accept(struct raft_uv_transport *inner, raft_id id, const char *address,
                      struct uv_stream_s *stream)
{
    struct pt_raft_transport *t = inner->data;
    t->accept_cb(&t->outer, id, address, stream);
}

static int tr_listen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
    struct pt_raft_transport *t = outer_of(outer);
    int rc;
    t->accept_cb = cb;
    rc = t->inner.listen(&t->inner, tr_accept);
    if (rc) copy_errmsg(t);
    return rc;
}

static int tr_connect(struct raft_uv_transport *outer, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    struct pt_raft_transport *t = outer_of(outer);
    char real[128];
    int rc;
    (void)address;
    if (t->resolve(t->ctx, id, real, sizeof(real)) != 0)
        snprintf(real, sizeof(real), "%s", UNKNOWN_PEER);
    rc = t->inner.connect(&t->inner, req, id, real, cb);
    if (rc) copy_errmsg(t);
    return rc;
}

static void tr_closed(struct raft_uv_transport *inner)
{
    struct pt_raft_transport *t = inner->data;
    if (t->close_cb) t->close_cb(&t->outer);
}

static void tr_close(struct raft_uv_transport *outer, raft_uv_transport_close_cb cb)
{
    struct pt_raft_transport *t = outer_of(outer);
    t->close_cb = cb;
    t->inner.close(&t->inner, tr_closed);
}

int pt_raft_transport_init(struct pt_raft_transport *t, struct uv_loop_s *loop,
                           const char *bind_address, pt_raft_resolve_fn resolve, void *ctx)
{
    int rc;
    memset(t, 0, sizeof(*t));
    if ((rc = raft_uv_tcp_init(&t->inner, loop)) != 0) return rc;
    if ((rc = raft_uv_tcp_set_bind_address(&t->inner, bind_address)) != 0) {
        raft_uv_tcp_close(&t->inner);
        return rc;
    }
    t->inner.data = t;
    t->resolve = resolve;
    t->ctx = ctx;
    t->outer.init = tr_init;
    t->outer.listen = tr_listen;
    t->outer.connect = tr_connect;
    t->outer.close = tr_close;
    return 0;
}

void pt_raft_transport_free(struct pt_raft_transport *t)
{
    raft_uv_tcp_close(&t->inner);
}

int pt_raft_pick_port(const char *host, unsigned *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), rc = -1;
    if (fd < 0) return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &sa.sin_addr) == 1 &&
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        *port = ntohs(sa.sin_port);
        rc = 0;
    }
    close(fd);
    return rc;
}

int pt_raft_port_taken(const char *host, unsigned port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, taken = 0;
    if (fd < 0) return 0;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    /* The same options libuv binds with, so that "free" means free for libraft too. */
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (inet_pton(AF_INET, host, &sa.sin_addr) == 1 &&
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno == EADDRINUSE)
        taken = 1;
    close(fd);
    return taken;
}
