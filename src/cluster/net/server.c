/*
 * The frame server on libuv (see net.h for the model). Owns listening, connection lifetimes,
 * frame reassembly, validation and reply writing. It never interprets a message body (that is
 * the handler's job), never hands an unvalidated frame to a handler, and never frees a
 * connection while a request still points at it.
 *
 * Lifetimes: a connection holds one reference for its open handle and one per unanswered
 * request; it is freed when the handle has closed and the last request is answered. The
 * server holds one reference for its listener and one per live connection struct.
 * Reassembly reads straight into the header buffer and then into a body buffer of exactly the
 * announced length (checked against max_body first), so a body is never copied on receipt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/metrics/metrics.h"
#include "cluster/net/net.h"
#include "petrel/common.h"

#define LOG_MODULE "net"

#define AUTH_LOG_SLOTS 16
#define KIND_SLOTS 96 /* request kinds (and shard operations) whose series are looked up once */

enum conn_auth { AUTH_NONE, AUTH_WAIT_HELLO, AUTH_ESTABLISHED };

/* HELLO body: version u8, flags u8, key id, client nonce (docs/PROTOCOL.md). */
#define HELLO_VERSION PT_AUTH_HELLO_VERSION
#define HELLO_SIZE PT_AUTH_HELLO_SIZE

struct srv_conn;

struct pt_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct pt_server_config cfg;
    char address[PT_ADDR_MAX];
    uint16_t port;
    unsigned refs;
    unsigned connections;
    int stopping;
    struct srv_conn *conns;
    int auth; /* clients must prove one of the keys */
    struct pt_auth_key key_full, key_read_only;
    int has_read_only;
    struct {
        char peer[PT_ADDR_MAX];
        uint64_t at;
    } auth_log[AUTH_LOG_SLOTS]; /* last log time per refused address */
    uint64_t auth_refused, auth_logged;
    /* metrics (all NULL without a metrics set) */
    struct pt_metric *m_received, *m_sent, *m_crc, *m_rejected, *m_connections, *m_pending;
    struct {
        uint16_t kind;
        const char *label; /* NULL: the kind's name */
        struct pt_metric *count, *errors, *seconds;
    } kinds[KIND_SLOTS];
    unsigned nkinds;
};

struct srv_conn {
    uv_tcp_t tcp;
    struct pt_server *server;
    struct srv_conn *prev, *next;
    unsigned refs;
    int closing;
    int paused;
    int close_after_write;
    unsigned pending;
    unsigned writes;
    uint8_t hdr[PT_FRAME_HEADER_SIZE];
    size_t hdr_got;
    int in_body;
    struct pt_frame_header h;
    uint8_t *body;
    size_t body_got;
    enum conn_auth auth;
    int read_only;
    struct pt_auth_session session;
    uint64_t seq_in, seq_out;
};

struct pt_request {
    struct srv_conn *conn;
    uint64_t start_ns;       /* arrival (uv_hrtime), for the latency histogram */
    const char *metric_kind; /* static label overriding the kind's name (NULL: none) */
    uint16_t kind;
    uint64_t id;
    uint8_t *body;
    uint32_t len;
    void *user;
};

struct srv_write {
    uv_write_t req;
    struct srv_conn *conn;
    uint8_t hdr[PT_FRAME_HEADER_SIZE];
    uint8_t trailer[PT_FRAME_TRAILER_SIZE];
    void *body;
};

static int uv_to_pt(int uverr)
{
    switch (uverr) {
    case UV_EADDRINUSE:
        return -PT_EADDRINUSE;
    case UV_EADDRNOTAVAIL:
        return -PT_EINVAL;
    case UV_EACCES:
        return -PT_EACCES;
    case UV_ENOMEM:
        return -PT_ENOMEM;
    case UV_ECONNREFUSED:
        return -PT_ECONNREFUSED;
    case UV_ECONNRESET:
        return -PT_ECONNRESET;
    case UV_ETIMEDOUT:
        return -PT_ETIMEDOUT;
    default:
        return -PT_EIO;
    }
}

static void server_unref(struct pt_server *s)
{
    if (--s->refs == 0) free(s);
}

static void conn_unref(struct srv_conn *c)
{
    if (--c->refs) return;
    free(c->body);
    server_unref(c->server);
    free(c);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

static void conn_close(struct srv_conn *c)
{
    struct pt_server *s = c->server;
    if (c->closing) return;
    c->closing = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->connections--;
    pt_metric_gauge_add(s->m_connections, -1);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_write_done(uv_write_t *req, int status)
{
    struct srv_write *w = (struct srv_write *)req;
    struct srv_conn *c = w->conn;
    free(w->body);
    free(w);
    c->writes--;
    if (status < 0 || (c->close_after_write && c->writes == 0)) conn_close(c);
    conn_unref(c);
}

/* Queue one frame; takes ownership of body (malloc'd or NULL). */
static int conn_send(struct srv_conn *c, uint8_t flags, uint16_t kind, uint64_t id, void *body,
                     uint32_t len)
{
    struct srv_write *w;
    uv_buf_t bufs[3];
    struct iovec part;
    int err, n = 0, sealed = c->auth == AUTH_ESTABLISHED;
    if (c->closing) {
        free(body);
        return -PT_ECONNRESET;
    }
    w = malloc(sizeof(*w));
    if (!w) {
        free(body);
        conn_close(c);
        return -PT_ENOMEM;
    }
    w->conn = c;
    w->body = body;
    part.iov_base = body;
    part.iov_len = len;
    /* Sequence numbers follow the order frames are queued, which is the order libuv writes. */
    pt_frame_seal(w->hdr, w->trailer, flags, kind, id, &part, len ? 1 : 0,
                  sealed ? c->session.s2c : NULL, c->seq_out);
    if (sealed) c->seq_out++;
    bufs[n++] = uv_buf_init((char *)w->hdr, PT_FRAME_HEADER_SIZE);
    if (len) bufs[n++] = uv_buf_init((char *)body, len);
    if (sealed) bufs[n++] = uv_buf_init((char *)w->trailer, PT_FRAME_TRAILER_SIZE);
    err = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)n, on_write_done);
    if (!err)
        pt_metric_add(c->server->m_sent,
                      PT_FRAME_HEADER_SIZE + (uint64_t)len + (sealed ? PT_FRAME_TRAILER_SIZE : 0));
    if (err) {
        free(body);
        free(w);
        conn_close(c);
        return uv_to_pt(err);
    }
    c->writes++;
    c->refs++;
    return 0;
}

static int conn_send_error(struct srv_conn *c, uint16_t kind, uint64_t id, int code,
                           const char *message, const char *leader)
{
    size_t n = pt_frame_error_size(message, leader);
    uint8_t *body = malloc(n);
    if (!body) {
        conn_close(c);
        return -PT_ENOMEM;
    }
    pt_frame_error_encode(body, n, code, message, leader);
    return conn_send(c, PT_FRAME_RESPONSE | PT_FRAME_ERROR, kind, id, body, (uint32_t)n);
}

/* A frame we will not process: tell the peer why, then close once the reply is written. */
static void conn_reject(struct srv_conn *c, int code, const char *why)
{
    pt_metric_add(c->server->m_rejected, 1);
    petrel_log(PT_LOG_DEBUG, LOG_MODULE, "%s: rejecting frame: %s", c->server->address, why);
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->close_after_write = 1;
    free(c->body);
    c->body = NULL;
    if (conn_send_error(c, c->h.kind, c->h.request_id, code, why, NULL) == 0) return;
    conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void conn_maybe_resume(struct srv_conn *c)
{
    if (c->paused && !c->closing && !c->close_after_write &&
        c->pending < c->server->cfg.max_pending_per_conn) {
        c->paused = 0;
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c);
    }
}

static void conn_dispatch(struct srv_conn *c)
{
    struct pt_server *s = c->server;
    struct pt_request *r = malloc(sizeof(*r));
    if (!r) {
        conn_reject(c, -PT_ENOMEM, "out of memory");
        return;
    }
    r->conn = c;
    r->start_ns = s->cfg.metrics ? uv_hrtime() : 0;
    r->metric_kind = NULL;
    r->kind = c->h.kind;
    r->id = c->h.request_id;
    r->body = c->body;
    r->len = c->h.body_len;
    r->user = NULL;
    c->body = NULL;
    c->in_body = 0;
    c->hdr_got = 0;
    c->body_got = 0;
    c->pending++;
    c->refs++;
    pt_metric_gauge_add(s->m_pending, 1);
    s->cfg.handler(s->cfg.ctx, r);
    if (!c->closing && !c->paused && c->pending >= s->cfg.max_pending_per_conn) {
        c->paused = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

/* The frame was consumed here (answered without a handler): get ready for the next one. */
static void conn_frame_done(struct srv_conn *c)
{
    free(c->body);
    c->body = NULL;
    c->in_body = 0;
    c->hdr_got = 0;
    c->body_got = 0;
}

/* Log a refused peer, at most once per PT_SERVER_AUTH_LOG_MS for each address. */
static void auth_log_refused(struct srv_conn *c, const char *why)
{
    struct pt_server *s = c->server;
    struct sockaddr_storage peer;
    int len = sizeof(peer);
    char addr[PT_ADDR_MAX] = "?";
    uint64_t now = uv_now(s->loop);
    unsigned i, slot = 0;
    s->auth_refused++;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) == 0) {
        pt_addr_format((struct sockaddr *)&peer, addr, sizeof(addr));
        /* One address is the host, not the port: a scanner's every connection is one peer. */
        if (strrchr(addr, ':')) *strrchr(addr, ':') = 0;
    }
    for (i = 0; i < AUTH_LOG_SLOTS; i++) {
        if (strcmp(s->auth_log[i].peer, addr) == 0) {
            slot = i;
            break;
        }
        if (s->auth_log[i].at < s->auth_log[slot].at) slot = i; /* least recently logged */
    }
    if (i < AUTH_LOG_SLOTS && s->auth_log[slot].at &&
        now - s->auth_log[slot].at < PT_SERVER_AUTH_LOG_MS)
        return;
    snprintf(s->auth_log[slot].peer, sizeof(s->auth_log[slot].peer), "%s", addr);
    s->auth_log[slot].at = now ? now : 1;
    s->auth_logged++;
    petrel_log(PT_LOG_WARN, LOG_MODULE,
               "%s: refused a connection from %s: %s (logged once per %u s per address)",
               s->address, addr, why, PT_SERVER_AUTH_LOG_MS / 1000);
}

static void auth_refuse(struct srv_conn *c, const char *why)
{
    auth_log_refused(c, why);
    conn_reject(c, -PT_EACCES, why);
}

/* The first frame of a connection to a server with keys: AUTH_HELLO naming one of them. */
static void conn_hello(struct srv_conn *c)
{
    struct pt_server *s = c->server;
    const struct pt_auth_key *k = NULL;
    const uint8_t *b = c->body;
    uint8_t reply[PT_AUTH_NONCE_BYTES + PT_AUTH_MAC_BYTES];
    uint8_t *copy;
    if (c->h.kind != PT_MSG_AUTH_HELLO) {
        auth_refuse(c, "authentication required: this cluster has a secret (--secret FILE)");
        return;
    }
    if (c->h.body_len == HELLO_SIZE && b[0] != HELLO_VERSION && !(c->h.flags & PT_FRAME_AUTH)) {
        /* A peer of another release (1: BLAKE2b frame MACs): say so rather than "malformed". */
        auth_refuse(c, "authentication hello of another version: this server speaks version 2 "
                       "(upgrade every server and client together)");
        return;
    }
    if (c->h.body_len != HELLO_SIZE || b[1] != 0 || (c->h.flags & PT_FRAME_AUTH)) {
        auth_refuse(c, "malformed authentication hello");
        return;
    }
    if (sodium_memcmp(b + 2, s->key_full.id, PT_AUTH_ID_BYTES) == 0)
        k = &s->key_full;
    else if (s->has_read_only && sodium_memcmp(b + 2, s->key_read_only.id, PT_AUTH_ID_BYTES) == 0)
        k = &s->key_read_only;
    if (!k) {
        auth_refuse(c, "unknown key: not this cluster's secret");
        return;
    }
    pt_auth_random(reply, PT_AUTH_NONCE_BYTES);
    pt_auth_server_proof(k, b + 2 + PT_AUTH_ID_BYTES, reply, reply + PT_AUTH_NONCE_BYTES);
    pt_auth_session_derive(k, b + 2 + PT_AUTH_ID_BYTES, reply, &c->session);
    c->read_only = k->read_only;
    copy = malloc(sizeof(reply));
    if (!copy) {
        conn_reject(c, -PT_ENOMEM, "out of memory");
        return;
    }
    memcpy(copy, reply, sizeof(reply));
    /* The hello's answer is the last plain frame; everything after it is sealed. */
    if (conn_send(c, PT_FRAME_RESPONSE, PT_MSG_AUTH_HELLO, c->h.request_id, copy,
                  (uint32_t)sizeof(reply)) != 0)
        return;
    c->auth = AUTH_ESTABLISHED;
    c->seq_in = c->seq_out = 0;
    conn_frame_done(c);
}

/* A complete frame whose CRC matched: authenticate it, then hand it to the handler. */
static void conn_frame(struct srv_conn *c)
{
    struct pt_server *s = c->server;
    if (!s->auth) {
        if (c->h.kind == PT_MSG_AUTH_HELLO) {
            /* An answer like any request's: the connection stays (a client with a key
             * drops it itself, it will not talk unauthenticated). */
            conn_send_error(c, c->h.kind, c->h.request_id, -PT_EACCES,
                            "this server has no cluster secret: it does not authenticate "
                            "(start it with --secret FILE)",
                            NULL);
            conn_frame_done(c);
            return;
        }
        if (c->h.flags & PT_FRAME_AUTH) {
            conn_reject(c, -PT_EPROTO, "authenticated frame sent to a server without a secret");
            return;
        }
        conn_dispatch(c);
        return;
    }
    if (c->auth == AUTH_WAIT_HELLO) {
        conn_hello(c);
        return;
    }
    if (pt_frame_unseal(c->hdr, &c->h, c->body, c->session.c2s, c->seq_in) != 0) {
        auth_refuse(c, "frame failed authentication (MAC, sequence number or connection)");
        return;
    }
    c->seq_in++;
    if (c->read_only && !pt_auth_read_only_allowed(c->h.kind, c->body, c->h.body_len)) {
        conn_send_error(c, c->h.kind, c->h.request_id, -PT_EACCES,
                        "read-only key: this request needs the cluster's full secret", NULL);
        conn_frame_done(c);
        return;
    }
    if (c->h.body_len == 0) {
        free(c->body); /* only the trailer was left */
        c->body = NULL;
    }
    conn_dispatch(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct srv_conn *c = h->data;
    (void)suggested;
    if (c->in_body)
        *buf = uv_buf_init((char *)c->body + c->body_got, (unsigned)(c->h.body_len - c->body_got));
    else
        *buf =
            uv_buf_init((char *)c->hdr + c->hdr_got, (unsigned)(PT_FRAME_HEADER_SIZE - c->hdr_got));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct srv_conn *c = stream->data;
    int err;
    (void)buf;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->closing || c->close_after_write) return;
    pt_metric_add(c->server->m_received, (uint64_t)nread);
    if (c->in_body) {
        c->body_got += (size_t)nread;
        if (c->body_got < c->h.body_len) return;
        /* (a sealed frame's CRC is its header's: its MAC, checked later, covers the body) */
        if (pt_frame_check_crc(c->hdr, &c->h, c->body)) {
            pt_metric_add(c->server->m_crc, 1);
            conn_reject(c, -PT_EBADMSG, "frame CRC mismatch");
            return;
        }
        conn_frame(c);
        return;
    }
    c->hdr_got += (size_t)nread;
    if (c->hdr_got < PT_FRAME_HEADER_SIZE) return;
    err = pt_frame_decode_header(c->hdr, c->server->cfg.max_body, &c->h);
    if (err == -PT_EPROTO) {
        conn_reject(c, err, "bad frame magic or flags");
        return;
    }
    if (err == -PT_EVERSION) {
        conn_reject(c, err, "unsupported protocol version");
        return;
    }
    if (err == -PT_E2BIG) {
        conn_reject(c, err, "frame body longer than the server accepts");
        return;
    }
    if (c->h.flags & PT_FRAME_RESPONSE) {
        conn_reject(c, -PT_EPROTO, "a response frame sent to a server");
        return;
    }
    if (c->h.body_len == 0) {
        if (pt_frame_check_crc(c->hdr, &c->h, NULL)) {
            pt_metric_add(c->server->m_crc, 1);
            conn_reject(c, -PT_EBADMSG, "frame CRC mismatch");
            return;
        }
        conn_frame(c);
        return;
    }
    c->body = malloc(c->h.body_len);
    if (!c->body) {
        conn_reject(c, -PT_ENOMEM, "out of memory for the frame body");
        return;
    }
    c->in_body = 1;
    c->body_got = 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct pt_server *s = listener->data;
    struct srv_conn *c;
    if (status < 0 || s->stopping) return;
    c = calloc(1, sizeof(*c));
    if (!c) return;
    c->server = s;
    c->refs = 1;
    c->auth = s->auth ? AUTH_WAIT_HELLO : AUTH_NONE;
    s->refs++;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->connections++;
    pt_metric_gauge_add(s->m_connections, 1);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (s->connections > s->cfg.max_connections) {
        petrel_log(PT_LOG_WARN, LOG_MODULE, "%s: too many connections, closing a new one",
                   s->address);
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c);
}

static void on_listener_closed(uv_handle_t *h)
{
    server_unref(h->data);
}

int pt_server_start(uv_loop_t *loop, const struct pt_server_config *cfg, struct pt_server **out)
{
    struct sockaddr_storage addr;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    struct pt_server *s;
    int err;

    *out = NULL;
    if (!cfg->handler) return -PT_EINVAL;
    err = pt_addr_parse(cfg->listen, &addr);
    if (err) return err;
    s = calloc(1, sizeof(*s));
    if (!s) return -PT_ENOMEM;
    s->loop = loop;
    s->cfg = *cfg;
    s->cfg.listen = NULL;
    if (!s->cfg.max_body) s->cfg.max_body = PT_FRAME_MAX_BODY_DEFAULT;
    if (!s->cfg.max_connections) s->cfg.max_connections = 1024;
    if (!s->cfg.max_pending_per_conn) s->cfg.max_pending_per_conn = 64;
    s->refs = 1;
    if (cfg->metrics) {
        struct pt_metrics *m = cfg->metrics;
        s->m_received = pt_metrics_counter(m, "petrel_net_received_bytes_total", "",
                                           "Bytes read from client connections");
        s->m_sent = pt_metrics_counter(m, "petrel_net_sent_bytes_total", "",
                                       "Bytes of reply frames queued to client connections");
        s->m_crc = pt_metrics_counter(m, "petrel_crc_errors_total", "where=\"frame\"",
                                      "CRC32C mismatches found, by where they were found");
        s->m_rejected = pt_metrics_counter(m, "petrel_frames_rejected_total", "",
                                           "Frames refused (malformed, CRC, authentication)");
        s->m_connections = pt_metrics_gauge(m, "petrel_connections", "", "Open client connections");
        s->m_pending = pt_metrics_gauge(m, "petrel_requests_pending", "",
                                        "Requests received and not answered yet (queue length)");
    }
    {
        struct pt_auth_keys keys = cfg->auth ? *cfg->auth : pt_auth_process_server();
        s->cfg.auth = NULL;
        if (keys.full) {
            s->auth = 1;
            s->key_full = *keys.full;
            s->key_full.read_only = 0;
        }
        if (keys.full && keys.read_only) {
            s->has_read_only = 1;
            s->key_read_only = *keys.read_only;
            s->key_read_only.read_only = 1;
        }
    }
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    err = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (!err) err = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    if (!err) err = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    if (!err && pt_addr_format((struct sockaddr *)&bound, s->address, sizeof(s->address)))
        err = UV_EINVAL;
    if (err) {
        s->stopping = 1;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return uv_to_pt(err);
    }
    s->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                               : ((struct sockaddr_in6 *)&bound)->sin6_port);
    if (!s->auth)
        petrel_log(PT_LOG_WARN, LOG_MODULE,
                   "%s: no cluster secret: the network is trusted, any peer that reaches this "
                   "port is served (start with --secret FILE)",
                   s->address);
    *out = s;
    return 0;
}

const char *pt_server_address(const struct pt_server *s)
{
    return s->address;
}

uint16_t pt_server_port(const struct pt_server *s)
{
    return s->port;
}

unsigned pt_server_connections(const struct pt_server *s)
{
    return s->connections;
}

uint64_t pt_server_auth_refused(const struct pt_server *s)
{
    return s->auth_refused;
}

uint64_t pt_server_auth_logged(const struct pt_server *s)
{
    return s->auth_logged;
}

void pt_server_stop(struct pt_server *s)
{
    if (s->stopping) return;
    s->stopping = 1;
    while (s->conns)
        conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

uint16_t pt_request_kind(const struct pt_request *r)
{
    return r->kind;
}

uint64_t pt_request_id(const struct pt_request *r)
{
    return r->id;
}

const uint8_t *pt_request_body(const struct pt_request *r)
{
    return r->body;
}

uint32_t pt_request_body_len(const struct pt_request *r)
{
    return r->len;
}

void pt_request_set_metric_kind(struct pt_request *r, const char *label)
{
    r->metric_kind = label;
}

void *pt_request_user(const struct pt_request *r)
{
    return r->user;
}

void pt_request_set_user(struct pt_request *r, void *user)
{
    r->user = user;
}

/* The series of one request kind, looked up once per kind (kinds past KIND_SLOTS share
 * "other"'s lookup cost, not its label). */
static unsigned kind_slot(struct pt_server *s, uint16_t kind, const char *label)
{
    unsigned i;
    char labels[64];
    for (i = 0; i < s->nkinds; i++)
        if (s->kinds[i].kind == kind && s->kinds[i].label == label) return i;
    if (s->nkinds == KIND_SLOTS) return KIND_SLOTS;
    i = s->nkinds++;
    snprintf(labels, sizeof(labels), "kind=\"%s\"", label ? label : pt_msg_kind_name(kind));
    s->kinds[i].kind = kind;
    s->kinds[i].label = label;
    s->kinds[i].count = pt_metrics_counter(s->cfg.metrics, "petrel_requests_total", labels,
                                           "Requests answered, by message kind");
    s->kinds[i].errors = pt_metrics_counter(s->cfg.metrics, "petrel_request_errors_total", labels,
                                            "Requests answered with an error frame, by kind");
    s->kinds[i].seconds =
        pt_metrics_histogram(s->cfg.metrics, "petrel_request_duration_seconds", labels,
                             "Time from a request's arrival to its reply being queued, by kind");
    return i;
}

/* Count an answered request: its kind, whether it failed, how long it took. */
static void request_count(struct pt_request *r, int failed)
{
    struct pt_server *s = r->conn->server;
    unsigned i;
    if (!s->cfg.metrics) return;
    i = kind_slot(s, r->kind, r->metric_kind);
    if (i == KIND_SLOTS) return;
    pt_metric_add(s->kinds[i].count, 1);
    if (failed) pt_metric_add(s->kinds[i].errors, 1);
    pt_metric_observe(s->kinds[i].seconds, (double)(uv_hrtime() - r->start_ns) / 1e9);
}

static void request_finish(struct pt_request *r)
{
    struct srv_conn *c = r->conn;
    pt_metric_gauge_add(c->server->m_pending, -1);
    free(r->body);
    free(r);
    c->pending--;
    conn_maybe_resume(c);
    conn_unref(c);
}

int pt_request_reply_take(struct pt_request *r, void *body, uint32_t len)
{
    int err;
    request_count(r, 0);
    err = conn_send(r->conn, PT_FRAME_RESPONSE, r->kind, r->id, body, len);
    request_finish(r);
    return err;
}

int pt_request_reply(struct pt_request *r, const void *body, uint32_t len)
{
    void *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy) {
            request_finish(r);
            return -PT_ENOMEM;
        }
        memcpy(copy, body, len);
    }
    return pt_request_reply_take(r, copy, len);
}

int pt_request_reply_error(struct pt_request *r, int code, const char *message, const char *leader)
{
    int err;
    request_count(r, 1);
    err = conn_send_error(r->conn, r->kind, r->id, code, message, leader);
    request_finish(r);
    return err;
}
