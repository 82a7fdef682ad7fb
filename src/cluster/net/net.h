/*
 * The cluster network framework: addresses, a libuv TCP server that speaks frames, a blocking
 * client connection, and retry with exponential back-off. Every Petrel server (registry, shard,
 * CDC, block service) and every client is built on these pieces; the frame itself is
 * cluster/proto/frame.h.
 *
 * Server model. pt_server_start() listens on an address (port 0: the OS picks; read it back
 * with pt_server_address()). Each complete, valid request frame becomes a struct pt_request
 * handed to the handler on the loop thread. The handler may answer at once or much later (a
 * shard answers after its Raft entry commits): the request is a reply handle that owns the
 * request body and stays valid until exactly one of pt_request_reply*() is called, even if the
 * connection closed meanwhile (the reply is then dropped and -PT_ECONNRESET returned; the
 * request is freed either way). All pt_request_* and pt_server_* calls happen on the loop
 * thread. Invalid input never reaches the handler and never crashes the server: a bad magic,
 * version, flags, a length above the maximum or a CRC mismatch gets an error frame (request id
 * echoed as decoded) and the connection is closed after it. Responses on one connection may
 * come out of order; the request id matches them. A connection with too many unanswered
 * requests stops being read until replies drain (back-pressure). Host programs must ignore
 * SIGPIPE (signal(SIGPIPE, SIG_IGN)): libuv writes with plain writev, and a peer that resets
 * under a reply must cost that connection, not the process.
 *
 * Authentication (docs/PROTOCOL.md, "Authentication"). A server with keys answers only a
 * connection whose first frame is an AUTH_HELLO naming one of its keys; every later frame in
 * both directions carries a sequence number and a MAC under that connection's session keys.
 * A peer without a key, with a wrong one, or sending a frame that fails its MAC, is out of
 * sequence (replayed) or was sealed for another connection gets one PT_EACCES error frame and
 * a closed connection, and the server logs the peer's address at most once per
 * PT_SERVER_AUTH_LOG_MS per address. A client proving the read-only key gets PT_EACCES for
 * every request pt_auth_read_only_allowed refuses, and keeps its connection. A server without
 * keys serves as before and answers AUTH_HELLO with PT_EACCES (keeping the connection), so a
 * client that requires authentication never talks to a server that does not.
 *
 * Client model. struct pt_conn is a blocking connection to one address, used by one thread at
 * a time: pt_conn_call() sends a request and waits for the response with the same request id
 * (stale responses of earlier timed-out calls are skipped); it sends with MSG_NOSIGNAL, so a
 * closed peer never raises SIGPIPE. Transport failures close the
 * socket; the next call reconnects. A remote error frame returns its code and fills
 * reply->error (message, leader address for PT_ENOTLEADER) with reply->remote = 1.
 *
 * Retry. struct pt_retry computes full-jitter exponential back-off (delay drawn uniformly in
 * [cap/2, cap], cap = min(max_delay, base * 2^attempt)) from a seeded pt_prng, within a total
 * time budget; pt_error_retryable() says which codes a retry can cure.
 */
#ifndef PETREL_CLUSTER_NET_H
#define PETREL_CLUSTER_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <uv.h>

#include "cluster/proto/auth.h"
#include "cluster/proto/frame.h"
#include "petrel/prng.h"

/* --- addresses ---------------------------------------------------------------------------- */

/* Longest "HOST:PORT" text Petrel handles (fits PT_FRAME_ADDRESS_MAX). */
#define PT_ADDR_MAX 128

/*
 * Parse "A.B.C.D:PORT", "[v6]:PORT" or "localhost:PORT" (numeric port 0..65535) into *out:
 * 0 or -PT_EINVAL.
 */
int pt_addr_parse(const char *text, struct sockaddr_storage *out);

/* Format an IPv4/IPv6 socket address as "HOST:PORT" / "[HOST]:PORT": 0 or -PT_EINVAL. */
int pt_addr_format(const struct sockaddr *sa, char *buf, size_t cap);

/* --- server ------------------------------------------------------------------------------- */

struct pt_server;
struct pt_request;
struct pt_metrics;

/* A refused peer address is logged at most once per this interval (per address). */
#define PT_SERVER_AUTH_LOG_MS 10000

/* Called on the loop thread for every valid request; must eventually reply exactly once. */
typedef void (*pt_server_handler_fn)(void *ctx, struct pt_request *req);

struct pt_server_config {
    const char *listen;            /* "HOST:PORT"; port 0 lets the OS choose */
    uint32_t max_body;             /* largest request body accepted; 0 = default */
    uint32_t max_connections;      /* further connections are closed at once; 0 = 1024 */
    uint32_t max_pending_per_conn; /* unanswered requests before reading pauses; 0 = 64 */
    pt_server_handler_fn handler;
    void *ctx;
    /* Keys clients must prove (cluster/proto/auth.h); NULL: the process's server keys
     * (pt_auth_set_process), and without those, no authentication. Copied at start. */
    const struct pt_auth_keys *auth;
    /* Where request counts, latencies, bytes and frame CRC errors are counted (NULL: nowhere;
     * cluster/metrics/metrics.h). Several servers of one process may share one set. */
    struct pt_metrics *metrics;
};

/* Bind, listen and start accepting on `loop`: 0 or a negative PT_E* (-PT_EADDRINUSE, ...). */
int pt_server_start(uv_loop_t *loop, const struct pt_server_config *cfg, struct pt_server **out);

/* The bound address, "HOST:PORT" with the real port (valid until the server is freed). */
const char *pt_server_address(const struct pt_server *s);
uint16_t pt_server_port(const struct pt_server *s);

/* Number of open connections (for tests and stats). */
unsigned pt_server_connections(const struct pt_server *s);

/* Connections refused for authentication so far, and how many of them were logged. */
uint64_t pt_server_auth_refused(const struct pt_server *s);
uint64_t pt_server_auth_logged(const struct pt_server *s);

/*
 * Stop: close the listener and every connection. Requests still held by handlers stay valid
 * (their replies are dropped). Memory is released by close callbacks: keep running the loop
 * (uv_run) until it has no more work. The server pointer must not be used afterwards.
 */
void pt_server_stop(struct pt_server *s);

/* The request's kind, id and body (body owned by the request, valid until the reply). */
uint16_t pt_request_kind(const struct pt_request *r);
uint64_t pt_request_id(const struct pt_request *r);
const uint8_t *pt_request_body(const struct pt_request *r);
uint32_t pt_request_body_len(const struct pt_request *r);
/*
 * Name the request in metrics by `label` instead of its frame kind's name (a shard names each
 * request by its operation: "shard_lookup"). label must be a static string of [a-z0-9_].
 */
void pt_request_set_metric_kind(struct pt_request *r, const char *label);
/* Per-request slot for the handler's own state (NULL initially). */
void *pt_request_user(const struct pt_request *r);
void pt_request_set_user(struct pt_request *r, void *user);

/*
 * Reply and free the request. reply copies body; reply_take takes ownership of a malloc'd
 * body (freed after sending); reply_error sends an error frame (code negative or positive
 * PT_E*, message and leader may be NULL). Return 0 when queued, -PT_ECONNRESET when the
 * connection is gone (reply dropped), -PT_ENOMEM.
 */
int pt_request_reply(struct pt_request *r, const void *body, uint32_t len);
int pt_request_reply_take(struct pt_request *r, void *body, uint32_t len);
int pt_request_reply_error(struct pt_request *r, int code, const char *message, const char *leader);

/* --- blocking client ---------------------------------------------------------------------- */

struct pt_conn;

struct pt_reply {
    uint16_t kind;
    uint8_t *body; /* malloc'd (NULL when empty); release with pt_reply_free */
    uint32_t body_len;
    int remote; /* 1 when the server answered with an error frame */
    struct pt_frame_error error;
};

/*
 * Create a connection to "HOST:PORT" and connect within timeout_ms: 0 or -PT_EINVAL (bad
 * address), -PT_ECONNREFUSED, -PT_ETIMEDOUT, -PT_ENOMEM. max_body bounds response bodies
 * (0 = default).
 */
int pt_conn_open(const char *address, int timeout_ms, uint32_t max_body, struct pt_conn **out);
/*
 * pt_conn_open with an explicit key (NULL: none); pt_conn_open uses the process's client key
 * (pt_auth_set_process). With a key every connect starts with the handshake, which fails with
 * -PT_EACCES (the server refused the key, or could not prove it holds the key, or does not
 * authenticate at all); a response frame failing its MAC or sequence is -PT_EACCES too.
 */
int pt_conn_open_key(const char *address, int timeout_ms, uint32_t max_body,
                     const struct pt_auth_key *key, struct pt_conn **out);

/* The address the connection was opened with. */
const char *pt_conn_address(const struct pt_conn *c);

/* Close and free (NULL is fine). */
void pt_conn_close(struct pt_conn *c);

/* Most buffers one request may be gathered from (an RS block: up to 64 cells + its fields). */
#define PT_CONN_PARTS_MAX 72

/*
 * Send a request made of `nparts` (<= PT_CONN_PARTS_MAX) buffers (concatenated into one body) and wait up to
 * timeout_ms for its response. 0 with reply filled; a remote error's code with reply->remote
 * set and reply->error filled; or a transport error (-PT_ETIMEDOUT, -PT_ECONNRESET,
 * -PT_ECONNREFUSED, -PT_EBADMSG, -PT_EPROTO, -PT_EIO) after which the socket is closed and the
 * next call reconnects. The reply must be released with pt_reply_free on every return.
 */
int pt_conn_callv(struct pt_conn *c, uint16_t kind, const struct iovec *parts, int nparts,
                  int timeout_ms, struct pt_reply *reply);
int pt_conn_call(struct pt_conn *c, uint16_t kind, const void *body, uint32_t len, int timeout_ms,
                 struct pt_reply *reply);

/*
 * The two halves of a call, for pipelining several requests on one connection (a streamed
 * block): pt_conn_send sends one request and gives its id; pt_conn_recv waits for the next
 * response, whatever its request id (*id), with the same returns as pt_conn_callv (a remote
 * error: its code, reply->remote set). Responses of one connection may come in any order; the
 * caller matches ids. A transport error in either closes the socket: requests in flight are
 * lost and the caller starts over.
 */
int pt_conn_send(struct pt_conn *c, uint16_t kind, const struct iovec *parts, int nparts,
                 int timeout_ms, uint64_t *id);
/* pt_conn_send with the CRC of some parts known already (see pt_frame_seal_known; NULL: none). */
int pt_conn_send_known(struct pt_conn *c, uint16_t kind, const struct iovec *parts, int nparts,
                       const struct pt_frame_known_crc *known, int timeout_ms, uint64_t *id);
int pt_conn_recv(struct pt_conn *c, int timeout_ms, uint64_t *id, struct pt_reply *reply);

void pt_reply_free(struct pt_reply *reply);

/* --- retry -------------------------------------------------------------------------------- */

struct pt_retry {
    uint32_t base_ms;      /* first delay cap */
    uint32_t max_delay_ms; /* largest delay cap */
    uint32_t budget_ms;    /* total time allowed since init; 0 = unlimited */
    uint32_t attempt;      /* delays handed out so far */
    uint64_t start_ms;
    struct pt_prng prng;
};

/* Start a retry sequence; the seed makes the jitter reproducible. */
void pt_retry_init(struct pt_retry *r, uint32_t base_ms, uint32_t max_delay_ms, uint32_t budget_ms,
                   uint64_t seed);

/* The next delay (advances the attempt count) without sleeping. */
uint32_t pt_retry_next_delay(struct pt_retry *r);

/*
 * Sleep the next delay, clipped to what is left of the budget: 0, or -PT_ETIMEDOUT (without
 * sleeping) once the budget is spent.
 */
int pt_retry_wait(struct pt_retry *r);

/* Whether an error may go away on retry (transport errors, not-leader, EAGAIN, ESTALE). */
int pt_error_retryable(int err);

/* Milliseconds of a monotonic clock. */
uint64_t pt_now_ms(void);

/* A seed for jitter that differs between processes and calls (not for tests). */
uint64_t pt_entropy_seed(void);

/* --- one call with retries ---------------------------------------------------------------- */

struct pt_call_opts {
    int timeout_ms;           /* per attempt (connect + request + response); 0 = 5000 */
    uint32_t retry_budget_ms; /* total time for retries; 0 = 10000; 1 = a single attempt */
    uint64_t seed;            /* jitter seed; 0 = pt_entropy_seed() */
};

/*
 * Send a request to address (on a pooled or new connection) and wait for its response,
 * retrying transport errors and retryable remote errors (pt_error_retryable, PT_ENOTLEADER
 * excepted: redirection is the caller's business) with back-off until the budget is spent. Same
 * returns as pt_conn_callv; opts may be NULL for the defaults. The reply must be released with
 * pt_reply_free.
 */
int pt_call(const char *address, uint16_t kind, const struct iovec *parts, int nparts,
            const struct pt_call_opts *opts, struct pt_reply *reply);
/* pt_call with a body of one buffer (len 0: no body). */
int pt_call_buf(const char *address, uint16_t kind, const void *body, size_t len,
                const struct pt_call_opts *opts, struct pt_reply *reply);

/*
 * pt_call for a request that must reach the server at most once (it is not idempotent): a
 * single attempt (the budget is ignored), and no resend on a fresh connection after a failure
 * on a reused one (the server may have read the request before the connection failed).
 */
int pt_call_once(const char *address, uint16_t kind, const struct iovec *parts, int nparts,
                 const struct pt_call_opts *opts, struct pt_reply *reply);

/*
 * pt_call keeps up to 32 idle connections (process-wide, thread-safe) and reuses them for the
 * same address; a reused connection that turns out closed is replaced at once. Clear the pool
 * (closing those sockets), e.g. in a child after fork.
 */
void pt_call_pool_clear(void);

/*
 * The pool itself, for callers that run several requests on one connection (streamed block
 * transfers): take an idle connection to address (NULL: none; open one with pt_conn_open),
 * and give back one that has no response in flight (or pt_conn_close it).
 */
struct pt_conn *pt_call_pool_take(const char *address);
void pt_call_pool_put(struct pt_conn *c);

#endif
