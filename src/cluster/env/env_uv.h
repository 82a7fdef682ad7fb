/*
 * The production env (env.h) on a libuv loop the caller owns: timers on uv timers, the
 * monotonic clock from uv_hrtime, randomness from a generator seeded by getrandom, messages
 * over TCP, files under a data directory with real file descriptors, fdatasync on libuv's
 * thread pool, directory fsync.
 *
 * Messages (docs/PROTOCOL.md, "Env transport"): one outgoing connection per destination,
 * opened on the first send, reopened on the next send after a failure (not before
 * PT_ENV_UV_RETRY_MS), with a bounded queue (messages beyond it are dropped: senders above
 * retry); a listener with a real backlog per pt_env_listen. A connection opens with a
 * handshake naming the sender's listen address (its first listener; empty for a client with
 * none), which must carry the connection's own source IP; then length-prefixed messages.
 * Anything malformed (bad magic or version, a name that is not ours to claim, a length over
 * PT_ENV_MSG_MAX) closes the connection and is counted; so does pt_env_refuse (a message that
 * failed authentication above).
 *
 * Addresses are "IPv4:PORT". A listener asked for port 0 gets an OS-assigned port and is
 * named by the real one afterwards (pt_env_uv_bind tells it before listening).
 */
#ifndef PETREL_CLUSTER_ENV_UV_H
#define PETREL_CLUSTER_ENV_UV_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/env/env.h"

#define PT_ENV_UV_RETRY_MS 50            /* between connection attempts to one destination */
#define PT_ENV_UV_QUEUE_MAX (128u << 20) /* bytes queued to one destination */
#define PT_ENV_UV_QUEUE_COUNT 8192       /* messages queued to one destination */
#define PT_ENV_UV_BACKLOG 128
#define PT_ENV_UV_CONNS_MAX 1024 /* accepted connections at a time */

struct pt_env_uv_stats {
    uint64_t accepted, rejected; /* connections accepted; closed for malformed bytes */
    uint64_t refused;            /* closed by pt_env_refuse (a message failed authentication) */
    uint64_t delivered, sent, dropped_queue_full, dropped_unreachable;
    uint64_t connects, connect_failures;
};

/*
 * Create an env on `loop` with data directory `dir` (created if missing). 0 or -PT_E*, with
 * a one-line reason in err.
 */
int pt_env_uv_init(struct pt_env **out, uv_loop_t *loop, const char *dir, char *err,
                   size_t err_cap);

/*
 * Bind a listener on "IP:PORT" (port 0: OS-assigned) without delivering yet, and write its
 * real name into name (cap bytes); pt_env_listen with that name later starts delivery.
 * 0, -PT_EADDRINUSE or -PT_E*.
 */
int pt_env_uv_bind(struct pt_env *e, const char *addr, char *name, size_t cap);

/*
 * Close every handle (listeners, connections, timers: pending timers never fire), wait for
 * in-flight fsyncs, then call done(ctx) from the loop; free with pt_env_uv_free afterwards.
 */
void pt_env_uv_close(struct pt_env *e, void (*done)(void *ctx), void *ctx);
void pt_env_uv_free(struct pt_env *e);

const struct pt_env_uv_stats *pt_env_uv_stats(struct pt_env *e);

/* Count fsync latency and bytes read and written in `m` (cluster/metrics/metrics.h; several
 * envs of one process may share it). */
struct pt_metrics;
void pt_env_uv_set_metrics(struct pt_env *e, struct pt_metrics *m);

#endif
