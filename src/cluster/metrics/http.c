/*
 * The read-only HTTP endpoint of a server (see metrics.h), on libmicrohttpd's internal polling
 * thread. Owns the hand-over between that thread and the server's loop: one request slot under
 * `lock`; the HTTP thread fills it and wakes the loop (uv_async_send), the loop renders the
 * answer while holding the lock and signals `done`. MHD's single polling thread serves one
 * request at a time, so one slot is enough. The HTTP thread never touches server state, and
 * the loop never blocks on the HTTP thread (it only holds the lock while rendering).
 *
 * Never answers a method other than GET or HEAD (405), a request with a body (400) or a path
 * longer than PT_HTTP_PATH_MAX (414); never waits for the loop longer than PT_HTTP_WAIT_MS
 * (503).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster/metrics/metrics.h"
#include "petrel/common.h"

#define PT_HTTP_PATH_MAX 256
#define PT_HTTP_ADDR_MAX 128

enum slot_state { SLOT_IDLE, SLOT_PENDING, SLOT_DONE };

struct pt_http {
    uv_loop_t *loop;
    uv_async_t wake;
    struct MHD_Daemon *daemon;
    int fd;
    char address[PT_HTTP_ADDR_MAX];
    struct pt_metrics *metrics;
    pt_http_page_fn page;
    void *page_ctx;
    pthread_mutex_t lock;
    pthread_cond_t done;
    int stopping;
    /* the slot */
    enum slot_state state;
    char path[PT_HTTP_PATH_MAX];
    int status;
    char *body;
    size_t len;
    const char *content_type;
};

/* On the loop thread: answer the pending request, if any. */
static void on_wake(uv_async_t *a)
{
    struct pt_http *h = a->data;
    pthread_mutex_lock(&h->lock);
    if (h->state == SLOT_PENDING) {
        h->body = NULL;
        h->len = 0;
        h->content_type = "text/plain; charset=utf-8";
        if (strcmp(h->path, "/metrics") == 0) {
            h->status = pt_metrics_render(h->metrics, &h->body, &h->len) == 0 ? 200 : 500;
            h->content_type = "text/plain; version=0.0.4; charset=utf-8";
        } else if (h->page) {
            h->status = h->page(h->page_ctx, h->path, &h->body, &h->len, &h->content_type);
        } else {
            h->status = 404;
        }
        h->state = SLOT_DONE;
        pthread_cond_broadcast(&h->done);
    }
    pthread_mutex_unlock(&h->lock);
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
                               const char *content_type)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    if (!body) {
        const char *text = status == 404   ? "not found\n"
                           : status == 405 ? "only GET and HEAD\n"
                           : status == 503 ? "server busy or stopping\n"
                           : status == 414 ? "path too long\n"
                                           : "error\n";
        r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
        content_type = "text/plain; charset=utf-8";
    } else {
        r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    }
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* On the HTTP thread: hand the request to the loop and wait (bounded) for its answer. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct pt_http *h = cls;
    struct timespec until;
    char *body = NULL;
    size_t len = 0;
    const char *type = NULL;
    int status;
    (void)version;
    (void)upload_data;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return respond(conn, 405, NULL, 0, NULL);
    if (*con_cls == NULL) { /* first call: headers only */
        *con_cls = h;
        return MHD_YES;
    }
    if (*upload_data_size) return respond(conn, 400, NULL, 0, NULL);
    if (strlen(url) >= PT_HTTP_PATH_MAX) return respond(conn, 414, NULL, 0, NULL);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += PT_HTTP_WAIT_MS / 1000;
    until.tv_nsec += (long)(PT_HTTP_WAIT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->lock);
    if (h->stopping) {
        pthread_mutex_unlock(&h->lock);
        return respond(conn, 503, NULL, 0, NULL);
    }
    snprintf(h->path, sizeof(h->path), "%s", url);
    h->state = SLOT_PENDING;
    uv_async_send(&h->wake);
    while (h->state != SLOT_DONE && !h->stopping)
        if (pthread_cond_timedwait(&h->done, &h->lock, &until) == ETIMEDOUT) break;
    if (h->state == SLOT_DONE) {
        status = h->status;
        body = h->body;
        len = h->len;
        type = h->content_type;
        h->body = NULL;
    } else {
        status = 503;
    }
    h->state = SLOT_IDLE; /* a late wake-up finds nothing to do */
    pthread_mutex_unlock(&h->lock);
    if (status != 200) {
        free(body);
        body = NULL;
    }
    return respond(conn, (unsigned)status, body, len, type);
}

/* "A.B.C.D:PORT", "[v6]:PORT" or "localhost:PORT" (this package stands below cluster/net, so
 * it parses its one address itself): 0 or -PT_EINVAL. */
static int parse_address(const char *text, struct sockaddr_storage *out)
{
    char host[PT_HTTP_ADDR_MAX], *end;
    const char *colon = strrchr(text, ':');
    size_t hl;
    unsigned long port;
    memset(out, 0, sizeof(*out));
    if (!colon || !colon[1]) return -PT_EINVAL;
    port = strtoul(colon + 1, &end, 10);
    if (*end || port > 65535 || colon[1] < '0' || colon[1] > '9') return -PT_EINVAL;
    hl = (size_t)(colon - text);
    if (hl >= sizeof(host)) return -PT_EINVAL;
    memcpy(host, text, hl);
    host[hl] = 0;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
        host[hl - 1] = 0;
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1) return -PT_EINVAL;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        return 0;
    }
    {
        struct sockaddr_in *a = (struct sockaddr_in *)out;
        if (strcmp(host, "localhost") == 0) snprintf(host, sizeof(host), "127.0.0.1");
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return -PT_EINVAL;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
    }
    return 0;
}

static int format_address(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (!inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip))) return -PT_EINVAL;
        return snprintf(buf, cap, "%s:%u", ip, ntohs(a->sin_port)) < (int)cap ? 0 : -PT_EINVAL;
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (!inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip))) return -PT_EINVAL;
        return snprintf(buf, cap, "[%s]:%u", ip, ntohs(a->sin6_port)) < (int)cap ? 0 : -PT_EINVAL;
    }
}

static int listen_socket(const char *listen_addr, int *fd_out, char *name, size_t cap)
{
    struct sockaddr_storage ss, bound;
    socklen_t sl = sizeof(bound);
    int fd, one = 1, err;
    memset(&bound, 0, sizeof(bound));
    if (parse_address(listen_addr, &ss) != 0) return -PT_EINVAL;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -PT_EIO;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss,
             ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) !=
            0 ||
        listen(fd, 64) != 0 || getsockname(fd, (struct sockaddr *)&bound, &sl) != 0) {
        err = errno == EADDRINUSE ? -PT_EADDRINUSE : errno == EACCES ? -PT_EACCES : -PT_EIO;
        close(fd);
        return err;
    }
    if (format_address(&bound, name, cap) != 0) {
        close(fd);
        return -PT_EIO;
    }
    *fd_out = fd;
    return 0;
}

int pt_http_start(uv_loop_t *loop, const char *listen_addr, struct pt_metrics *m,
                  pt_http_page_fn page, void *page_ctx, struct pt_http **out)
{
    struct pt_http *h;
    int rc;
    *out = NULL;
    if (!m) return -PT_EINVAL;
    h = calloc(1, sizeof(*h));
    if (!h) return -PT_ENOMEM;
    h->loop = loop;
    h->metrics = m;
    h->page = page;
    h->page_ctx = page_ctx;
    h->fd = -1;
    rc = listen_socket(listen_addr, &h->fd, h->address, sizeof(h->address));
    if (rc) {
        free(h);
        return rc;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->done, NULL);
    if (uv_async_init(loop, &h->wake, on_wake) != 0) {
        close(h->fd);
        pthread_mutex_destroy(&h->lock);
        pthread_cond_destroy(&h->done);
        free(h);
        return -PT_EIO;
    }
    h->wake.data = h;
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | (h->address[0] == '[' ? MHD_USE_IPv6 : 0), 0, NULL, NULL,
        on_request, h, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)h->fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!h->daemon) {
        close(h->fd);
        h->fd = -1;
        h->stopping = 1;
        pt_http_stop(h);
        return -PT_EIO;
    }
    *out = h;
    return 0;
}

const char *pt_http_address(const struct pt_http *h)
{
    return h->address;
}

static void on_wake_closed(uv_handle_t *handle)
{
    struct pt_http *h = handle->data;
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->done);
    free(h);
}

void pt_http_stop(struct pt_http *h)
{
    if (!h) return;
    pthread_mutex_lock(&h->lock);
    h->stopping = 1;
    pthread_cond_broadcast(&h->done);
    pthread_mutex_unlock(&h->lock);
    if (h->daemon) MHD_stop_daemon(h->daemon); /* joins the HTTP thread, closes the socket */
    h->daemon = NULL;
    free(h->body);
    h->body = NULL;
    uv_close((uv_handle_t *)&h->wake, on_wake_closed);
}
