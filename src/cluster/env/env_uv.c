/*
 * Production env on libuv (see env_uv.h). The only libuv- and syscall-bound part of the
 * replica stack: everything above it sees env.h alone.
 *
 * Invariants: every callback runs on the loop thread; a cancelled timer never fires; after
 * pt_env_uv_close starts, no callback of the owner runs again (pending fsync completions are
 * swallowed); every byte read from a socket is checked before it is used: the handshake first,
 * then each message's length against PT_ENV_MSG_MAX before the buffer grows for it.
 */
#include "cluster/env/env_uv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster/metrics/metrics.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/prng.h"

#define HS_MAGIC 0x564e4550u /* "PENV" */
#define HS_VERSION 1
#define HS_FIXED 6 /* magic, version, name length */

struct env_uv;

struct timer {
    uv_timer_t h;
    struct env_uv *env;
    uint64_t id;
    pt_env_cb cb;
    void *ctx;
    struct timer *prev, *next;
};

struct listener {
    uv_tcp_t h;
    struct env_uv *env;
    char name[PT_ENV_ADDR_MAX];
    pt_env_msg_cb cb;
    void *ctx;
    struct listener *next;
};

struct inconn {
    uv_tcp_t h;
    struct env_uv *env;
    struct listener *listener;
    char peer_ip[64];
    char from[PT_ENV_ADDR_MAX];
    int handshaken, closing, refused;
    uint8_t *buf;
    size_t len, cap;
    struct inconn *prev, *next;
};

struct qmsg {
    struct qmsg *next;
    size_t len;
    uint8_t data[]; /* 4-byte length + message */
};

struct outconn;
struct outsock {
    uv_tcp_t h;
    uv_connect_t creq;
    struct env_uv *env;
    struct outconn *owner; /* NULL once abandoned */
};

enum out_state { OUT_IDLE, OUT_CONNECTING, OUT_OPEN };

struct outconn {
    struct env_uv *env;
    char to[PT_ENV_ADDR_MAX];
    enum out_state state;
    struct outsock *sock;
    struct qmsg *head, *tail;
    size_t qbytes, qcount;
    uint64_t retry_at;
    struct outconn *next;
};

struct wreq {
    uv_write_t w;
    uint8_t data[];
};

struct fsreq {
    uv_fs_t r;
    struct env_uv *env;
    uint64_t start_ns;
    void (*done)(void *ctx, int status);
    void *ctx;
};

struct env_uv {
    struct pt_env env;
    uv_loop_t *loop;
    /* metrics (NULL: none): fsync latency, bytes read and written */
    struct pt_metric *m_fsync, *m_read, *m_written;
    int dirfd;
    uint64_t start_ns;
    struct pt_prng prng;
    uint64_t next_timer_id;
    struct timer *timers;
    struct listener *listeners;
    struct inconn *inconns;
    size_t n_inconns;
    struct outconn *outconns;
    struct inconn *delivering; /* the connection whose message a callback is handling */
    uv_timer_t anchor; /* closed last: makes close's done run from the loop */
    unsigned live_handles, pending_fs;
    int closing, anchor_closing;
    void (*close_done)(void *ctx);
    void *close_ctx;
    struct pt_env_uv_stats stats;
};

static struct env_uv *uv_of(struct pt_env *e)
{
    return (struct env_uv *)e;
}

static void anchor_closed(uv_handle_t *h);

/* During close: once no handle and no fsync is left, close the anchor (then `done` runs). */
static void close_progress(struct env_uv *u)
{
    if (u->closing && !u->anchor_closing && u->live_handles == 0 && u->pending_fs == 0) {
        u->anchor_closing = 1;
        uv_close((uv_handle_t *)&u->anchor, anchor_closed);
    }
}

static void handle_freed(struct env_uv *u)
{
    u->live_handles--;
    close_progress(u);
}

static int err_of(int errnum)
{
    switch (errnum) {
    case ENOENT:
        return -PT_ENOENT;
    case EEXIST:
        return -PT_EEXIST;
    case ENOSPC:
        return -PT_ENOSPC;
    case EDQUOT:
        return -PT_ENOSPC;
    case ENOMEM:
        return -PT_ENOMEM;
    case EACCES:
    case EPERM:
        return -PT_EACCES;
    case ENOTDIR:
        return -PT_ENOTDIR;
    case EISDIR:
        return -PT_EISDIR;
    case EINVAL:
        return -PT_EINVAL;
    case EBADF:
        return -PT_EBADF;
    case EMFILE:
    case ENFILE:
        return -PT_EMFILE;
    case ENAMETOOLONG:
        return -PT_ENAMETOOLONG;
    case ENOTEMPTY:
        return -PT_ENOTEMPTY;
    case EROFS:
        return -PT_EROFS;
    case EFBIG:
        return -PT_EFBIG;
    case EADDRINUSE:
        return -PT_EADDRINUSE;
    case ECONNREFUSED:
        return -PT_ECONNREFUSED;
    default:
        return -PT_EIO;
    }
}

/* ---- clock, randomness, timers --------------------------------------------------------------- */

static uint64_t e_now(struct pt_env *e)
{
    return (uv_hrtime() - uv_of(e)->start_ns) / 1000000u;
}

static uint64_t e_wall_ms(struct pt_env *e)
{
    struct timespec ts;
    (void)e;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t e_random(struct pt_env *e)
{
    return pt_prng_next(&uv_of(e)->prng);
}

static void timer_unlink(struct env_uv *u, struct timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        u->timers = t->next;
    if (t->next) t->next->prev = t->prev;
}

static void timer_freed(uv_handle_t *h)
{
    struct timer *t = h->data;
    struct env_uv *u = t->env;
    free(t);
    handle_freed(u);
}

static void timer_fire(uv_timer_t *h)
{
    struct timer *t = h->data;
    struct env_uv *u = t->env;
    timer_unlink(u, t);
    uv_close((uv_handle_t *)&t->h, timer_freed);
    if (!u->closing) t->cb(t->ctx);
}

static uint64_t e_timer(struct pt_env *e, uint64_t delay_ms, pt_env_cb cb, void *ctx)
{
    struct env_uv *u = uv_of(e);
    struct timer *t = calloc(1, sizeof(*t));
    if (!t || u->closing) {
        free(t);
        return 0;
    }
    uv_timer_init(u->loop, &t->h);
    u->live_handles++;
    t->h.data = t;
    t->env = u;
    t->id = ++u->next_timer_id;
    t->cb = cb;
    t->ctx = ctx;
    t->next = u->timers;
    if (u->timers) u->timers->prev = t;
    u->timers = t;
    uv_timer_start(&t->h, timer_fire, delay_ms, 0);
    return t->id;
}

static void e_cancel(struct pt_env *e, uint64_t id)
{
    struct env_uv *u = uv_of(e);
    struct timer *t;
    for (t = u->timers; t; t = t->next)
        if (t->id == id) {
            timer_unlink(u, t);
            uv_timer_stop(&t->h);
            uv_close((uv_handle_t *)&t->h, timer_freed);
            return;
        }
}

/* ---- addresses ------------------------------------------------------------------------------- */

static int parse_addr(const char *addr, struct sockaddr_in *sa, char *ip, size_t ip_cap)
{
    const char *colon = strrchr(addr, ':');
    char host[64], *end;
    unsigned long port;
    size_t hlen;
    if (!colon) return -PT_EINVAL;
    hlen = (size_t)(colon - addr);
    if (hlen == 0 || hlen >= sizeof(host)) return -PT_EINVAL;
    memcpy(host, addr, hlen);
    host[hlen] = 0;
    port = strtoul(colon + 1, &end, 10);
    if (!colon[1] || *end || port > 65535) return -PT_EINVAL;
    if (uv_ip4_addr(host, (int)port, sa) != 0) return -PT_EINVAL;
    if (ip) snprintf(ip, ip_cap, "%s", host);
    return 0;
}

/* ---- incoming connections -------------------------------------------------------------------- */

static void inconn_freed(uv_handle_t *h)
{
    struct inconn *c = h->data;
    struct env_uv *u = c->env;
    free(c->buf);
    free(c);
    handle_freed(u);
}

static void inconn_close(struct inconn *c, int malformed)
{
    struct env_uv *u = c->env;
    if (c->closing) return;
    c->closing = 1;
    if (malformed) u->stats.rejected++;
    if (c->prev)
        c->prev->next = c->next;
    else
        u->inconns = c->next;
    if (c->next) c->next->prev = c->prev;
    u->n_inconns--;
    uv_close((uv_handle_t *)&c->h, inconn_freed);
}

static void in_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct inconn *c = h->data;
    size_t want = 64u << 10;
    (void)hint;
    if (c->cap - c->len < want) {
        uint8_t *grown = realloc(c->buf, c->len + want);
        if (!grown) {
            buf->base = NULL;
            buf->len = 0;
            return;
        }
        c->buf = grown;
        c->cap = c->len + want;
    }
    buf->base = (char *)c->buf + c->len;
    buf->len = c->cap - c->len;
}

/* A claimed name is acceptable when it is "IP:PORT" with the connection's own source IP. */
static int name_ok(const struct inconn *c, const char *name)
{
    struct sockaddr_in sa;
    char ip[64];
    if (!name[0]) return 1; /* anonymous */
    if (parse_addr(name, &sa, ip, sizeof(ip)) != 0) return 0;
    return strcmp(ip, c->peer_ip) == 0;
}

/* Parse what arrived: 0 to keep reading, -1 to close (malformed). */
static int in_parse(struct inconn *c)
{
    size_t off = 0;
    int rc = 0;
    if (!c->handshaken) {
        size_t nlen;
        if (c->len < HS_FIXED) return 0;
        if (pt_get_le32(c->buf) != HS_MAGIC || c->buf[4] != HS_VERSION) return -1;
        nlen = c->buf[5];
        if (nlen >= PT_ENV_ADDR_MAX) return -1;
        if (c->len < HS_FIXED + nlen) return 0;
        memcpy(c->from, c->buf + HS_FIXED, nlen);
        c->from[nlen] = 0;
        if (memchr(c->from, 0, nlen) || !name_ok(c, c->from)) return -1;
        c->handshaken = 1;
        off = HS_FIXED + nlen;
    }
    while (c->len - off >= 4) {
        uint32_t mlen = pt_get_le32(c->buf + off);
        if (mlen == 0 || mlen > PT_ENV_MSG_MAX) {
            rc = -1;
            break;
        }
        if (c->len - off - 4 < mlen) {
            /* Make room for the whole message (bounded by the check above). */
            if (c->cap < (size_t)mlen + 4 + (64u << 10)) {
                uint8_t *grown;
                memmove(c->buf, c->buf + off, c->len - off);
                c->len -= off;
                off = 0;
                grown = realloc(c->buf, (size_t)mlen + 4 + (64u << 10));
                if (!grown) return -1;
                c->buf = grown;
                c->cap = (size_t)mlen + 4 + (64u << 10);
            }
            break;
        }
        if (c->listener->cb) {
            c->env->stats.delivered++;
            c->env->delivering = c;
            c->listener->cb(c->listener->ctx, c->from, c->buf + off + 4, mlen);
            c->env->delivering = NULL;
            if (c->closing || c->env->closing) return 0;
            if (c->refused) {
                c->env->stats.refused++;
                inconn_close(c, 0);
                return 0;
            }
        }
        off += 4 + (size_t)mlen;
    }
    if (off) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    return rc;
}

static void in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct inconn *c = s->data;
    (void)buf;
    if (n < 0) {
        inconn_close(c, 0);
        return;
    }
    if (n == 0) return;
    if (!c->buf) {
        inconn_close(c, 0);
        return;
    }
    c->len += (size_t)n;
    if (in_parse(c) != 0) inconn_close(c, 1);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    struct env_uv *u = l->env;
    struct inconn *c;
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    if (status < 0 || u->closing) return;
    c = calloc(1, sizeof(*c));
    if (!c) return;
    c->env = u;
    c->listener = l;
    uv_tcp_init(u->loop, &c->h);
    u->live_handles++;
    c->h.data = c;
    c->next = u->inconns;
    if (u->inconns) u->inconns->prev = c;
    u->inconns = c;
    u->n_inconns++;
    if (uv_accept(server, (uv_stream_t *)&c->h) != 0 || u->n_inconns > PT_ENV_UV_CONNS_MAX ||
        uv_tcp_getpeername(&c->h, (struct sockaddr *)&ss, &sslen) != 0) {
        inconn_close(c, 1);
        return;
    }
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, c->peer_ip, sizeof(c->peer_ip));
    u->stats.accepted++;
    uv_tcp_nodelay(&c->h, 1);
    uv_read_start((uv_stream_t *)&c->h, in_alloc, in_read);
}

static struct listener *listener_find(struct env_uv *u, const char *name)
{
    struct listener *l;
    for (l = u->listeners; l; l = l->next)
        if (!strcmp(l->name, name)) return l;
    return NULL;
}

static void listener_freed(uv_handle_t *h)
{
    struct listener *l = h->data;
    struct env_uv *u = l->env;
    free(l);
    handle_freed(u);
}

static int bind_listener(struct env_uv *u, const char *addr, struct listener **out)
{
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int sslen = sizeof(ss), rc;
    char ip[40];
    struct listener *l;
    if (parse_addr(addr, &sa, ip, sizeof(ip)) != 0) return -PT_EINVAL;
    l = calloc(1, sizeof(*l));
    if (!l) return -PT_ENOMEM;
    l->env = u;
    uv_tcp_init(u->loop, &l->h);
    u->live_handles++;
    l->h.data = l;
    rc = uv_tcp_bind(&l->h, (const struct sockaddr *)&sa, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&l->h, PT_ENV_UV_BACKLOG, on_connection);
    if (rc == 0) rc = uv_tcp_getsockname(&l->h, (struct sockaddr *)&ss, &sslen);
    if (rc != 0) {
        uv_close((uv_handle_t *)&l->h, listener_freed);
        return rc == UV_EADDRINUSE ? -PT_EADDRINUSE : -PT_EIO;
    }
    snprintf(l->name, sizeof(l->name), "%s:%u", ip,
             (unsigned)ntohs(((struct sockaddr_in *)&ss)->sin_port));
    /* Keep the order of creation: the first listener names this env in handshakes. */
    if (!u->listeners) {
        u->listeners = l;
    } else {
        struct listener *t = u->listeners;
        while (t->next)
            t = t->next;
        t->next = l;
    }
    *out = l;
    return 0;
}

int pt_env_uv_bind(struct pt_env *e, const char *addr, char *name, size_t cap)
{
    struct listener *l;
    int rc = bind_listener(uv_of(e), addr, &l);
    if (rc == 0) snprintf(name, cap, "%s", l->name);
    return rc;
}

static int e_listen(struct pt_env *e, const char *self, pt_env_msg_cb cb, void *ctx)
{
    struct env_uv *u = uv_of(e);
    struct listener *l = listener_find(u, self);
    int rc;
    if (!l && (rc = bind_listener(u, self, &l)) != 0) return rc;
    l->cb = cb;
    l->ctx = ctx;
    return 0;
}

/* ---- outgoing connections -------------------------------------------------------------------- */

static void e_refuse(struct pt_env *e)
{
    struct env_uv *u = uv_of(e);
    if (u->delivering) u->delivering->refused = 1;
}

static void outsock_freed(uv_handle_t *h)
{
    struct outsock *s = h->data;
    struct env_uv *u = s->env;
    free(s);
    handle_freed(u);
}

static void queue_drop(struct outconn *o)
{
    struct qmsg *m;
    while ((m = o->head) != NULL) {
        o->head = m->next;
        free(m);
    }
    o->tail = NULL;
    o->qbytes = o->qcount = 0;
}

static void out_fail(struct outconn *o)
{
    struct env_uv *u = o->env;
    if (o->sock) {
        o->sock->owner = NULL;
        uv_close((uv_handle_t *)&o->sock->h, outsock_freed);
        o->sock = NULL;
    }
    u->stats.dropped_unreachable += o->qcount;
    queue_drop(o);
    o->state = OUT_IDLE;
    o->retry_at = e_now(&u->env) + PT_ENV_UV_RETRY_MS;
}

static void write_done(uv_write_t *w, int status)
{
    struct outsock *s = w->data;
    free(w);
    if (status < 0 && s->owner && s->owner->sock == s) out_fail(s->owner);
}

static int out_write(struct outconn *o, const uint8_t *data, size_t len)
{
    struct wreq *w = malloc(sizeof(*w) + len);
    uv_buf_t b;
    if (!w) return -PT_ENOMEM;
    memcpy(w->data, data, len);
    w->w.data = o->sock;
    b = uv_buf_init((char *)w->data, (unsigned)len);
    if (uv_write(&w->w, (uv_stream_t *)&o->sock->h, &b, 1, write_done) != 0) {
        free(w);
        out_fail(o);
        return -PT_EIO;
    }
    return 0;
}

static void out_read_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char sink[256];
    (void)h;
    (void)hint;
    buf->base = sink;
    buf->len = sizeof(sink);
}

static void out_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct outsock *s = st->data;
    (void)buf;
    /* Nothing is ever sent back on an outgoing connection: EOF, error or bytes end it. */
    if (n != 0 && s->owner && s->owner->sock == s) out_fail(s->owner);
}

static void out_connected(uv_connect_t *req, int status)
{
    struct outsock *s = req->data;
    struct outconn *o = s->owner;
    struct env_uv *u;
    uint8_t hs[HS_FIXED + PT_ENV_ADDR_MAX];
    size_t nlen;
    struct qmsg *m;
    if (!o || o->sock != s) return;
    u = o->env;
    if (status < 0) {
        u->stats.connect_failures++;
        out_fail(o);
        return;
    }
    o->state = OUT_OPEN;
    u->stats.connects++;
    uv_tcp_nodelay(&s->h, 1);
    nlen = u->listeners ? strlen(u->listeners->name) : 0;
    pt_put_le32(hs, HS_MAGIC);
    hs[4] = HS_VERSION;
    hs[5] = (uint8_t)nlen;
    if (nlen) memcpy(hs + HS_FIXED, u->listeners->name, nlen);
    if (out_write(o, hs, HS_FIXED + nlen) != 0) return;
    uv_read_start((uv_stream_t *)&s->h, out_read_alloc, out_read);
    while ((m = o->head) != NULL && o->sock == s) {
        o->head = m->next;
        if (!o->head) o->tail = NULL;
        o->qbytes -= m->len;
        o->qcount--;
        u->stats.sent++;
        (void)out_write(o, m->data, m->len);
        free(m);
    }
}

static int out_connect(struct outconn *o)
{
    struct env_uv *u = o->env;
    struct sockaddr_in sa;
    struct outsock *s;
    if (parse_addr(o->to, &sa, NULL, 0) != 0) return -PT_EINVAL;
    s = calloc(1, sizeof(*s));
    if (!s) return -PT_ENOMEM;
    s->owner = o;
    s->env = u;
    uv_tcp_init(u->loop, &s->h);
    u->live_handles++;
    s->h.data = s;
    s->creq.data = s;
    o->sock = s;
    o->state = OUT_CONNECTING;
    if (uv_tcp_connect(&s->creq, &s->h, (const struct sockaddr *)&sa, out_connected) != 0) {
        u->stats.connect_failures++;
        out_fail(o);
        return -PT_ECONNREFUSED;
    }
    return 0;
}

static int e_send(struct pt_env *e, const char *to, const uint8_t *msg, size_t len)
{
    struct env_uv *u = uv_of(e);
    struct outconn *o;
    struct qmsg *m;
    uint8_t hdr[4];
    if (u->closing) return -PT_ECANCELED;
    if (len == 0 || len > PT_ENV_MSG_MAX || strlen(to) >= PT_ENV_ADDR_MAX) return -PT_EINVAL;
    for (o = u->outconns; o; o = o->next)
        if (!strcmp(o->to, to)) break;
    if (!o) {
        struct sockaddr_in sa;
        if (parse_addr(to, &sa, NULL, 0) != 0) return -PT_EINVAL;
        o = calloc(1, sizeof(*o));
        if (!o) return -PT_ENOMEM;
        o->env = u;
        snprintf(o->to, sizeof(o->to), "%s", to);
        o->next = u->outconns;
        u->outconns = o;
    }
    if (o->state == OUT_OPEN) {
        struct wreq *w;
        uv_buf_t b[1];
        if (uv_stream_get_write_queue_size((uv_stream_t *)&o->sock->h) > PT_ENV_UV_QUEUE_MAX) {
            u->stats.dropped_queue_full++;
            return -PT_EAGAIN;
        }
        w = malloc(sizeof(*w) + 4 + len);
        if (!w) return -PT_ENOMEM;
        pt_put_le32(w->data, (uint32_t)len);
        memcpy(w->data + 4, msg, len);
        w->w.data = o->sock;
        b[0] = uv_buf_init((char *)w->data, (unsigned)(4 + len));
        if (uv_write(&w->w, (uv_stream_t *)&o->sock->h, b, 1, write_done) != 0) {
            free(w);
            out_fail(o);
            return -PT_EIO;
        }
        u->stats.sent++;
        return 0;
    }
    if (o->state == OUT_IDLE && e_now(e) < o->retry_at) {
        u->stats.dropped_unreachable++;
        return -PT_ECONNREFUSED;
    }
    if (o->qbytes + len + 4 > PT_ENV_UV_QUEUE_MAX || o->qcount >= PT_ENV_UV_QUEUE_COUNT) {
        u->stats.dropped_queue_full++;
        return -PT_EAGAIN;
    }
    m = malloc(sizeof(*m) + 4 + len);
    if (!m) return -PT_ENOMEM;
    m->next = NULL;
    m->len = 4 + len;
    pt_put_le32(hdr, (uint32_t)len);
    memcpy(m->data, hdr, 4);
    memcpy(m->data + 4, msg, len);
    if (o->tail)
        o->tail->next = m;
    else
        o->head = m;
    o->tail = m;
    o->qbytes += m->len;
    o->qcount++;
    if (o->state == OUT_IDLE) return out_connect(o) == 0 ? 0 : -PT_ECONNREFUSED;
    return 0;
}

/* ---- files ----------------------------------------------------------------------------------- */

/* Relative, '/'-separated, no empty, "." or ".." component: 1 if acceptable. */
static int path_ok(const char *path, int allow_root)
{
    const char *p = path;
    if (!*path) return allow_root;
    if (*path == '/') return 0;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return 0;
        p += n;
        if (*p == '/') p++;
    }
    return 1;
}

static int e_open(struct pt_env *e, const char *path, int flags)
{
    int of = O_CLOEXEC, fd;
    if (!path_ok(path, 0)) return -PT_EINVAL;
    of |= (flags & PT_ENV_RDWR) ? O_RDWR : O_RDONLY;
    if (flags & PT_ENV_CREAT) of |= O_CREAT;
    if (flags & PT_ENV_EXCL) of |= O_EXCL;
    fd = openat(uv_of(e)->dirfd, path, of, 0644);
    return fd < 0 ? err_of(errno) : fd;
}

static int e_close(struct pt_env *e, int fd)
{
    (void)e;
    return close(fd) == 0 ? 0 : err_of(errno);
}

static int64_t e_pread(struct pt_env *e, int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    struct pt_metric *counted = uv_of(e)->m_read;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return err_of(errno);
        if (n == 0) break;
        done += (size_t)n;
    }
    pt_metric_add(counted, done);
    return (int64_t)done;
}

static int e_pwrite(struct pt_env *e, int fd, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    struct pt_metric *counted = uv_of(e)->m_written;
    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return err_of(errno);
        done += (size_t)n;
    }
    pt_metric_add(counted, len);
    return 0;
}

static int e_truncate(struct pt_env *e, int fd, uint64_t size)
{
    (void)e;
    return ftruncate(fd, (off_t)size) == 0 ? 0 : err_of(errno);
}

static int64_t e_size(struct pt_env *e, int fd)
{
    struct stat st;
    (void)e;
    return fstat(fd, &st) == 0 ? (int64_t)st.st_size : err_of(errno);
}

static void fs_done(uv_fs_t *r)
{
    struct fsreq *f = r->data;
    struct env_uv *u = f->env;
    int status = r->result < 0 ? err_of((int)-r->result) : 0;
    uv_fs_req_cleanup(r);
    pt_metric_observe(u->m_fsync, (double)(uv_hrtime() - f->start_ns) / 1e9);
    u->pending_fs--;
    if (!u->closing) f->done(f->ctx, status);
    free(f);
    close_progress(u);
}

static void fsync_failed(void *ctx)
{
    struct fsreq *f = ctx;
    struct env_uv *u = f->env;
    u->pending_fs--;
    if (!u->closing) f->done(f->ctx, -PT_EIO);
    free(f);
    close_progress(u);
}

static void e_fsync(struct pt_env *e, int fd, void (*done)(void *ctx, int status), void *ctx)
{
    struct env_uv *u = uv_of(e);
    struct fsreq *f = calloc(1, sizeof(*f));
    if (!f) {
        /* Cannot even record the request: the process is out of memory; failing loudly
         * beats acknowledging bytes that were never synced. */
        petrel_log(PT_LOG_ERROR, "env", "out of memory starting an fsync");
        abort();
    }
    f->env = u;
    f->done = done;
    f->ctx = ctx;
    f->r.data = f;
    f->start_ns = uv_hrtime();
    u->pending_fs++;
    if (uv_fs_fdatasync(u->loop, &f->r, fd, fs_done) != 0 && !e_timer(e, 0, fsync_failed, f)) {
        u->pending_fs--;
        free(f);
    }
}

static int e_rename(struct pt_env *e, const char *from, const char *to)
{
    int dfd = uv_of(e)->dirfd;
    if (!path_ok(from, 0) || !path_ok(to, 0)) return -PT_EINVAL;
    return renameat(dfd, from, dfd, to) == 0 ? 0 : err_of(errno);
}

static int e_unlink(struct pt_env *e, const char *path)
{
    if (!path_ok(path, 0)) return -PT_EINVAL;
    return unlinkat(uv_of(e)->dirfd, path, 0) == 0 ? 0 : err_of(errno);
}

static int e_mkdir(struct pt_env *e, const char *path)
{
    if (!path_ok(path, 0)) return -PT_EINVAL;
    return mkdirat(uv_of(e)->dirfd, path, 0755) == 0 ? 0 : err_of(errno);
}

static int open_dir(struct env_uv *u, const char *path)
{
    int fd;
    if (!path_ok(path, 1)) return -PT_EINVAL;
    fd = openat(u->dirfd, *path ? path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? err_of(errno) : fd;
}

static int e_fsync_dir(struct pt_env *e, const char *path)
{
    int fd = open_dir(uv_of(e), path), rc;
    if (fd < 0) return fd;
    rc = fsync(fd) == 0 ? 0 : err_of(errno);
    close(fd);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int e_list(struct pt_env *e, const char *path, char *buf, size_t cap)
{
    int fd = open_dir(uv_of(e), path), count = 0, i, rc = 0;
    DIR *d;
    struct dirent *de;
    char **names = NULL;
    size_t n_cap = 0, used = 0;
    if (fd < 0) return fd;
    d = fdopendir(fd);
    if (!d) {
        close(fd);
        return err_of(errno);
    }
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if ((size_t)count == n_cap) {
            char **grown = realloc(names, (n_cap ? n_cap * 2 : 64) * sizeof(*names));
            if (!grown) {
                rc = -PT_ENOMEM;
                break;
            }
            names = grown;
            n_cap = n_cap ? n_cap * 2 : 64;
        }
        if (!(names[count] = strdup(de->d_name))) {
            rc = -PT_ENOMEM;
            break;
        }
        count++;
    }
    closedir(d);
    if (rc == 0) {
        if (count) qsort(names, (size_t)count, sizeof(*names), cmp_str);
        for (i = 0; i < count && rc == 0; i++) {
            size_t n = strlen(names[i]) + 1;
            if (used + n > cap)
                rc = -PT_ERANGE;
            else
                memcpy(buf + used, names[i], n);
            used += n;
        }
    }
    for (i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return rc ? rc : count;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static const struct pt_env_ops uv_ops = {
    .now = e_now,
    .wall_ms = e_wall_ms,
    .random = e_random,
    .timer = e_timer,
    .cancel = e_cancel,
    .listen = e_listen,
    .send = e_send,
    .refuse = e_refuse,
    .open = e_open,
    .close = e_close,
    .pread = e_pread,
    .pwrite = e_pwrite,
    .truncate = e_truncate,
    .size = e_size,
    .fsync = e_fsync,
    .rename = e_rename,
    .unlink = e_unlink,
    .mkdir = e_mkdir,
    .fsync_dir = e_fsync_dir,
    .list = e_list,
};

int pt_env_uv_init(struct pt_env **out, uv_loop_t *loop, const char *dir, char *err, size_t err_cap)
{
    struct env_uv *u;
    uint64_t seed = 0;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_cap, "cannot create %s: %s", dir, strerror(errno));
        return err_of(errno);
    }
    u = calloc(1, sizeof(*u));
    if (!u) return -PT_ENOMEM;
    u->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (u->dirfd < 0) {
        int rc = err_of(errno);
        snprintf(err, err_cap, "cannot open %s: %s", dir, strerror(errno));
        free(u);
        return rc;
    }
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) seed = uv_hrtime();
    pt_prng_seed(&u->prng, seed);
    u->env.ops = &uv_ops;
    u->loop = loop;
    u->start_ns = uv_hrtime();
    uv_timer_init(loop, &u->anchor);
    u->anchor.data = u;
    *out = &u->env;
    return 0;
}

static void anchor_closed(uv_handle_t *h)
{
    struct env_uv *u = h->data;
    if (u->close_done) u->close_done(u->close_ctx);
}

void pt_env_uv_close(struct pt_env *e, void (*done)(void *ctx), void *ctx)
{
    struct env_uv *u = uv_of(e);
    struct listener *l;
    struct outconn *o;
    if (u->closing) return;
    u->closing = 1;
    u->close_done = done;
    u->close_ctx = ctx;
    while (u->timers)
        e_cancel(e, u->timers->id);
    while (u->inconns)
        inconn_close(u->inconns, 0);
    while ((l = u->listeners) != NULL) {
        u->listeners = l->next;
        uv_close((uv_handle_t *)&l->h, listener_freed);
    }
    for (o = u->outconns; o; o = o->next)
        out_fail(o);
    close_progress(u);
}

void pt_env_uv_free(struct pt_env *e)
{
    struct env_uv *u = uv_of(e);
    struct outconn *o;
    while ((o = u->outconns) != NULL) {
        u->outconns = o->next;
        queue_drop(o);
        free(o);
    }
    if (u->dirfd >= 0) close(u->dirfd);
    free(u);
}

void pt_env_uv_set_metrics(struct pt_env *e, struct pt_metrics *m)
{
    struct env_uv *u = uv_of(e);
    u->m_fsync = pt_metrics_histogram(m, "petrel_fsync_duration_seconds", "",
                                      "Time an fdatasync of a data file took");
    u->m_read = pt_metrics_counter(m, "petrel_disk_read_bytes_total", "",
                                   "Bytes read from data files");
    u->m_written = pt_metrics_counter(m, "petrel_disk_written_bytes_total", "",
                                      "Bytes written to data files");
}

const struct pt_env_uv_stats *pt_env_uv_stats(struct pt_env *e)
{
    return &uv_of(e)->stats;
}
