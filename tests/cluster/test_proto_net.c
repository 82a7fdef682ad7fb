/*
 * The network framework: a libuv server on a thread of the test, driven by blocking client
 * connections and by raw sockets sending malformed bytes. Checks echo, error replies with a
 * leader, replies made later (after a timer, and after the connection closed), rejection of
 * bad frames without the server dying, addresses and retry pacing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/net/net.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "test.h"

#define KIND_NOTLEADER 0x7001
#define KIND_HOLD 0x7002
#define KIND_RELEASE 0x7003
#define KIND_LATER 0x7004

struct fixture {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    struct pt_server *srv;
    char address[PT_ADDR_MAX];
    struct pt_request *held;
};

struct later {
    uv_timer_t timer;
    struct pt_request *req;
};

static void on_later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_later(uv_timer_t *t)
{
    struct later *l = t->data;
    pt_request_reply(l->req, pt_request_body(l->req), pt_request_body_len(l->req));
    uv_close((uv_handle_t *)&l->timer, on_later_closed);
}

static void handler(void *ctx, struct pt_request *r)
{
    struct fixture *f = ctx;
    switch (pt_request_kind(r)) {
    case PT_MSG_PING:
        pt_request_reply(r, pt_request_body(r), pt_request_body_len(r));
        break;
    case KIND_NOTLEADER:
        pt_request_reply_error(r, -PT_ENOTLEADER, "ask the leader", "127.0.0.1:9");
        break;
    case KIND_HOLD:
        f->held = r;
        break;
    case KIND_RELEASE: {
        uint8_t code[4];
        int err = f->held ? pt_request_reply(f->held, "late", 4) : -PT_ENOENT;
        f->held = NULL;
        pt_put_le32(code, (uint32_t)-err);
        pt_request_reply(r, code, 4);
        break;
    }
    case KIND_LATER: {
        struct later *l = malloc(sizeof(*l));
        l->req = r;
        uv_timer_init(&f->loop, &l->timer);
        l->timer.data = l;
        uv_timer_start(&l->timer, on_later, 30, 0);
        break;
    }
    default:
        pt_request_reply_error(r, -PT_ENOTSUP, "unknown kind", NULL);
    }
}

static void on_stop(uv_async_t *a)
{
    struct fixture *f = a->data;
    if (f->held) pt_request_reply_error(f->held, -PT_ECANCELED, "stopping", NULL);
    f->held = NULL;
    pt_server_stop(f->srv);
    uv_close((uv_handle_t *)&f->stop, NULL);
}

static void *loop_main(void *arg)
{
    struct fixture *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void fixture_start_with(struct fixture *f, uint32_t max_body, const char *listen,
                               uint32_t max_connections, uint32_t max_pending)
{
    struct pt_server_config cfg;
    memset(f, 0, sizeof(*f));
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = listen;
    cfg.max_body = max_body;
    cfg.max_connections = max_connections;
    cfg.max_pending_per_conn = max_pending;
    cfg.handler = handler;
    cfg.ctx = f;
    CHECK_OK(uv_loop_init(&f->loop));
    CHECK_OK(pt_server_start(&f->loop, &cfg, &f->srv));
    CHECK(pt_server_port(f->srv) != 0);
    snprintf(f->address, sizeof(f->address), "%s", pt_server_address(f->srv));
    uv_async_init(&f->loop, &f->stop, on_stop);
    f->stop.data = f;
    CHECK(pthread_create(&f->thread, NULL, loop_main, f) == 0);
}

static void fixture_start(struct fixture *f, uint32_t max_body)
{
    fixture_start_with(f, max_body, "127.0.0.1:0", 0, 0);
}

static void fixture_stop(struct fixture *f)
{
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    CHECK_EQ(uv_loop_close(&f->loop), 0); /* every handle and connection released */
}

static void check_ping(const char *address)
{
    struct pt_conn *c;
    struct pt_reply rep;
    CHECK_OK(pt_conn_open(address, 2000, 0, &c));
    CHECK_OK(pt_conn_call(c, PT_MSG_PING, "alive?", 6, 2000, &rep));
    CHECK_EQ(rep.body_len, 6);
    CHECK_MEM(rep.body, "alive?", 6);
    pt_reply_free(&rep);
    pt_conn_close(c);
}

TEST_T(net_echo_sizes, 60)
{
    struct fixture f;
    struct pt_conn *c;
    struct pt_reply rep;
    static const uint32_t sizes[] = {0, 1, 23, 24, 25, 4096, 65536, 1 << 20, 3 << 20};
    uint8_t *body = malloc(3 << 20);
    size_t i;
    for (i = 0; i < (3u << 20); i++)
        body[i] = (uint8_t)(i * 31 + 7);
    fixture_start(&f, 0);
    CHECK_OK(pt_conn_open(f.address, 2000, 0, &c));
    for (i = 0; i < PT_ARRAY_SIZE(sizes); i++) {
        CHECK_OK(pt_conn_call(c, PT_MSG_PING, body, sizes[i], 10000, &rep));
        CHECK_EQ(rep.kind, PT_MSG_PING);
        CHECK_EQ(rep.body_len, sizes[i]);
        if (sizes[i]) CHECK_MEM(rep.body, body, sizes[i]);
        pt_reply_free(&rep);
    }
    /* A body sent in several parts is one body. */
    {
        struct iovec parts[3] = {{body, 10}, {body + 10, 0}, {body + 10, 5000}};
        CHECK_OK(pt_conn_callv(c, PT_MSG_PING, parts, 3, 2000, &rep));
        CHECK_EQ(rep.body_len, 5010);
        CHECK_MEM(rep.body, body, 5010);
        pt_reply_free(&rep);
    }
    pt_conn_close(c);
    free(body);
    fixture_stop(&f);
}

TEST(net_error_reply_carries_code_and_leader)
{
    struct fixture f;
    struct pt_conn *c;
    struct pt_reply rep;
    fixture_start(&f, 0);
    CHECK_OK(pt_conn_open(f.address, 2000, 0, &c));
    CHECK_EQ(pt_conn_call(c, KIND_NOTLEADER, NULL, 0, 2000, &rep), -PT_ENOTLEADER);
    CHECK(rep.remote);
    CHECK(strcmp(rep.error.leader, "127.0.0.1:9") == 0);
    CHECK(strcmp(rep.error.message, "ask the leader") == 0);
    pt_reply_free(&rep);
    CHECK_EQ(pt_conn_call(c, 0x7777, NULL, 0, 2000, &rep), -PT_ENOTSUP);
    pt_reply_free(&rep);
    /* The connection stays usable after remote errors. */
    CHECK_OK(pt_conn_call(c, PT_MSG_PING, "x", 1, 2000, &rep));
    pt_reply_free(&rep);
    pt_conn_close(c);
    fixture_stop(&f);
}

TEST(net_async_reply_later_and_after_close)
{
    struct fixture f;
    struct pt_conn *a, *b;
    struct pt_reply rep;
    int tries;
    uint64_t deadline = pt_now_ms() + 30000; /* generous: CI machines are busy */
    fixture_start(&f, 0);
    CHECK_OK(pt_conn_open(f.address, 2000, 0, &a));
    CHECK_OK(pt_conn_open(f.address, 2000, 0, &b));
    /* Reply from a timer callback, while another connection is served meanwhile. */
    CHECK_OK(pt_conn_call(a, KIND_LATER, "tick", 4, 2000, &rep));
    CHECK_MEM(rep.body, "tick", 4);
    pt_reply_free(&rep);
    /* A held request whose client gave up: the reply handle stays valid, the reply drops. */
    CHECK_EQ(pt_conn_call(a, KIND_HOLD, NULL, 0, 100, &rep), -PT_ETIMEDOUT);
    pt_conn_close(a);
    for (tries = 0; pt_now_ms() < deadline; tries++) {
        uint32_t code;
        CHECK_OK(pt_conn_call(b, KIND_RELEASE, NULL, 0, 2000, &rep));
        code = pt_get_le32(rep.body);
        pt_reply_free(&rep);
        if (code == PT_ECONNRESET) break;
        /* The server had not seen the close yet: the reply went out; hold again. */
        CHECK_EQ(code, 0);
        CHECK_OK(pt_conn_open(f.address, 2000, 0, &a));
        CHECK_EQ(pt_conn_call(a, KIND_HOLD, NULL, 0, 50, &rep), -PT_ETIMEDOUT);
        pt_conn_close(a);
        usleep(10000);
    }
    CHECK(pt_now_ms() < deadline);
    pt_conn_close(b);
    fixture_stop(&f);
}

static int raw_connect(const char *address)
{
    struct sockaddr_storage ss;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    CHECK_OK(pt_addr_parse(address, &ss));
    CHECK(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Read until EOF; returns the error code of the first frame (0 if none came). */
static int raw_read_error(int fd)
{
    uint8_t buf[4096];
    size_t got = 0;
    ssize_t n;
    struct pt_frame_header h;
    struct pt_frame_error e;
    while ((n = recv(fd, buf + got, sizeof(buf) - got, 0)) > 0)
        got += (size_t)n;
    /* A close with unread input arrives as a reset, possibly before the error frame. */
    CHECK_MSG(n == 0 || errno == ECONNRESET, "connection not closed by the server");
    if (got == 0) return n == 0 ? 0 : -PT_ECONNRESET;
    if (n < 0 && got < PT_FRAME_HEADER_SIZE) return -PT_ECONNRESET;
    CHECK(got >= PT_FRAME_HEADER_SIZE);
    CHECK_OK(pt_frame_decode_header(buf, sizeof(buf), &h));
    if (n < 0 && got < PT_FRAME_HEADER_SIZE + h.body_len) return -PT_ECONNRESET;
    CHECK(h.flags == (PT_FRAME_RESPONSE | PT_FRAME_ERROR));
    CHECK_EQ(got, PT_FRAME_HEADER_SIZE + h.body_len);
    CHECK_OK(pt_frame_check_crc(buf, &h, buf + PT_FRAME_HEADER_SIZE));
    CHECK_OK(pt_frame_error_decode(buf + PT_FRAME_HEADER_SIZE, h.body_len, &e));
    return e.code;
}

static int send_raw_frame(const char *address, const uint8_t *frame, size_t len, int shut)
{
    int fd = raw_connect(address), code;
    CHECK(send(fd, frame, len, MSG_NOSIGNAL) == (ssize_t)len);
    if (shut) shutdown(fd, SHUT_WR);
    code = raw_read_error(fd);
    close(fd);
    return code;
}

TEST(net_malformed_frames_rejected_server_survives)
{
    struct fixture f;
    uint8_t frame[PT_FRAME_HEADER_SIZE + 16];
    uint8_t garbage[300];
    size_t cut;
    int i;
    fixture_start(&f, 1024);
    memset(frame + PT_FRAME_HEADER_SIZE, 'b', 16);
    /* Bad CRC. */
    pt_frame_encode_header(frame, 0, PT_MSG_PING, 5, frame + PT_FRAME_HEADER_SIZE, 16);
    frame[PT_FRAME_HEADER_SIZE + 3] ^= 1;
    CHECK_EQ(send_raw_frame(f.address, frame, sizeof(frame), 0), -PT_EBADMSG);
    /* Hostile length: refused from the header alone. */
    pt_frame_encode_header(frame, 0, PT_MSG_PING, 5, NULL, 0);
    pt_put_le32(frame + 16, 0xfffffff0u);
    CHECK_EQ(send_raw_frame(f.address, frame, PT_FRAME_HEADER_SIZE, 0), -PT_E2BIG);
    /* Wrong version, bad magic, a response sent to a server. */
    pt_frame_encode_header(frame, 0, PT_MSG_PING, 5, NULL, 0);
    frame[4] = 9;
    CHECK_EQ(send_raw_frame(f.address, frame, PT_FRAME_HEADER_SIZE, 0), -PT_EVERSION);
    pt_frame_encode_header(frame, 0, PT_MSG_PING, 5, NULL, 0);
    frame[1] = 'X';
    CHECK_EQ(send_raw_frame(f.address, frame, PT_FRAME_HEADER_SIZE, 0), -PT_EPROTO);
    pt_frame_encode_header(frame, PT_FRAME_RESPONSE, PT_MSG_PING, 5, NULL, 0);
    CHECK_EQ(send_raw_frame(f.address, frame, PT_FRAME_HEADER_SIZE, 0), -PT_EPROTO);
    /* Every truncation of a valid frame, then the client hangs up: no reply, no crash. */
    pt_frame_encode_header(frame, 0, PT_MSG_PING, 5, frame + PT_FRAME_HEADER_SIZE, 16);
    for (cut = 0; cut < sizeof(frame); cut++)
        CHECK_EQ(send_raw_frame(f.address, frame, cut, 1), 0);
    /* Random garbage. */
    for (i = 0; i < 20; i++) {
        for (size_t k = 0; k < sizeof(garbage); k++)
            garbage[k] = (uint8_t)(k * 13 + i * 101);
        CHECK(send_raw_frame(f.address, garbage, sizeof(garbage), 1) < 0);
    }
    check_ping(f.address);
    fixture_stop(&f);
}

TEST(net_client_errors)
{
    struct fixture f;
    struct pt_conn *c;
    char dead[PT_ADDR_MAX];
    fixture_start(&f, 0);
    snprintf(dead, sizeof(dead), "%s", f.address);
    fixture_stop(&f);
    CHECK_EQ(pt_conn_open(dead, 1000, 0, &c), -PT_ECONNREFUSED);
    CHECK_EQ(pt_conn_open("nonsense", 1000, 0, &c), -PT_EINVAL);
    CHECK_EQ(pt_conn_open("127.0.0.1:99999", 1000, 0, &c), -PT_EINVAL);
}

TEST(net_client_reconnects_after_server_restart)
{
    struct fixture f;
    struct pt_conn *c;
    struct pt_reply rep;
    struct pt_server_config cfg;
    fixture_start(&f, 0);
    CHECK_OK(pt_conn_open(f.address, 2000, 0, &c));
    CHECK_OK(pt_conn_call(c, PT_MSG_PING, "1", 1, 2000, &rep));
    pt_reply_free(&rep);
    fixture_stop(&f);
    CHECK(pt_conn_call(c, PT_MSG_PING, "2", 1, 2000, &rep) < 0);
    pt_reply_free(&rep);
    /* Same port again: the next call reconnects by itself. */
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = pt_conn_address(c);
    cfg.handler = handler;
    cfg.ctx = &f;
    memset(&f, 0, sizeof(f));
    CHECK_OK(uv_loop_init(&f.loop));
    CHECK_OK(pt_server_start(&f.loop, &cfg, &f.srv));
    uv_async_init(&f.loop, &f.stop, on_stop);
    f.stop.data = &f;
    CHECK(pthread_create(&f.thread, NULL, loop_main, &f) == 0);
    CHECK_OK(pt_conn_call(c, PT_MSG_PING, "3", 1, 2000, &rep));
    CHECK_MEM(rep.body, "3", 1);
    pt_reply_free(&rep);
    pt_conn_close(c);
    fixture_stop(&f);
}

TEST(net_addresses)
{
    struct sockaddr_storage ss;
    char buf[PT_ADDR_MAX];
    CHECK_OK(pt_addr_parse("127.0.0.1:7400", &ss));
    CHECK_OK(pt_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)));
    CHECK(strcmp(buf, "127.0.0.1:7400") == 0);
    CHECK_OK(pt_addr_parse("[::1]:0", &ss));
    CHECK_OK(pt_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)));
    CHECK(strcmp(buf, "[::1]:0") == 0);
    CHECK_OK(pt_addr_parse("localhost:1", &ss));
    CHECK_EQ(pt_addr_parse("127.0.0.1", &ss), -PT_EINVAL);
    CHECK_EQ(pt_addr_parse("127.0.0.1:", &ss), -PT_EINVAL);
    CHECK_EQ(pt_addr_parse("127.0.0.1:-1", &ss), -PT_EINVAL);
    CHECK_EQ(pt_addr_parse("127.0.0.1:65536", &ss), -PT_EINVAL);
    CHECK_EQ(pt_addr_parse("example.org:80", &ss), -PT_EINVAL);
    CHECK_EQ(pt_addr_parse("[::1:80", &ss), -PT_EINVAL);
    CHECK_EQ(pt_addr_format((struct sockaddr *)&ss, buf, 3), -PT_EINVAL);
}

TEST(net_retry_backoff_bounds_and_replay)
{
    struct pt_retry a, b;
    uint32_t i, cap = 10;
    pt_retry_init(&a, 10, 500, 0, test_seed());
    pt_retry_init(&b, 10, 500, 0, test_seed());
    for (i = 0; i < 20; i++) {
        uint32_t d = pt_retry_next_delay(&a);
        CHECK_MSG(d >= cap / 2 && d <= cap, "delay %u outside [%u, %u]", d, cap / 2, cap);
        CHECK_EQ(d, pt_retry_next_delay(&b));
        if (cap < 500) cap = cap * 2 > 500 ? 500 : cap * 2;
    }
    /* A spent budget stops the retries without sleeping. */
    pt_retry_init(&a, 1, 2, 1, 1);
    usleep(3000);
    CHECK_EQ(pt_retry_wait(&a), -PT_ETIMEDOUT);
    CHECK(pt_error_retryable(-PT_ENOTLEADER));
    CHECK(pt_error_retryable(-PT_ECONNREFUSED));
    CHECK(!pt_error_retryable(-PT_ENOENT));
    CHECK(!pt_error_retryable(-PT_ENOTCERT));
}

struct delayed_start {
    struct fixture *f;
    char address[PT_ADDR_MAX];
};

static void *start_later(void *arg)
{
    struct delayed_start *d = arg;
    usleep(300000);
    fixture_start_with(d->f, 0, d->address, 0, 0);
    return NULL;
}

TEST(net_call_retries_until_the_server_is_up)
{
    struct fixture f;
    struct delayed_start d;
    struct pt_reply rep;
    struct pt_call_opts opts = {1000, 60000, test_seed() | 1};
    struct iovec iov = {"hi", 2};
    pthread_t t;
    fixture_start(&f, 0);
    snprintf(d.address, sizeof(d.address), "%s", f.address);
    fixture_stop(&f);
    d.f = &f;
    CHECK(pthread_create(&t, NULL, start_later, &d) == 0);
    /* Connection refused at first: pt_call backs off and retries until the server answers. */
    CHECK_OK(pt_call(d.address, PT_MSG_PING, &iov, 1, &opts, &rep));
    CHECK_MEM(rep.body, "hi", 2);
    pt_reply_free(&rep);
    pthread_join(t, NULL);
    /* Errors a retry cannot cure come back at once, and not-leader is left to the caller. */
    CHECK_EQ(pt_call(d.address, 0x7777, NULL, 0, &opts, &rep), -PT_ENOTSUP);
    pt_reply_free(&rep);
    CHECK_EQ(pt_call(d.address, KIND_NOTLEADER, NULL, 0, &opts, &rep), -PT_ENOTLEADER);
    CHECK(strcmp(rep.error.leader, "127.0.0.1:9") == 0);
    pt_reply_free(&rep);
    fixture_stop(&f);
    /* With nobody listening, the budget bounds the wait. */
    opts.retry_budget_ms = 300;
    CHECK_EQ(pt_call(d.address, PT_MSG_PING, &iov, 1, &opts, &rep), -PT_ECONNREFUSED);
    pt_reply_free(&rep);
}

TEST(net_back_pressure_and_connection_limit)
{
    struct fixture f;
    struct pt_conn *a, *b, *c;
    struct pt_reply rep;
    uint8_t frames[2 * PT_FRAME_HEADER_SIZE], buf[256];
    struct sockaddr_storage ss;
    struct pt_frame_header h;
    struct timeval tv = {0, 200000};
    size_t got = 0;
    ssize_t n;
    int fd, tries;
    uint64_t deadline = pt_now_ms() + 30000; /* generous: CI machines are busy */
    fixture_start_with(&f, 0, "127.0.0.1:0", 2, 1);
    /* One unanswered request per connection: a pipelined second one waits for the first. */
    pt_frame_encode_header(frames, 0, KIND_HOLD, 1, NULL, 0);
    pt_frame_encode_header(frames + PT_FRAME_HEADER_SIZE, 0, PT_MSG_PING, 2, NULL, 0);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_OK(pt_addr_parse(f.address, &ss));
    CHECK(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 0);
    CHECK(send(fd, frames, sizeof(frames), MSG_NOSIGNAL) == (ssize_t)sizeof(frames));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    CHECK(recv(fd, buf, sizeof(buf), 0) < 0); /* nothing: HOLD is held, PING not read yet */
    /* The connection limit (2): the raw socket and `a` fit, a third is closed at once. */
    CHECK_OK(pt_conn_open(f.address, 2000, 0, &a));
    CHECK_EQ(pt_conn_call(a, KIND_RELEASE, NULL, 0, 2000, &rep), 0);
    CHECK_EQ(pt_get_le32(rep.body), 0);
    pt_reply_free(&rep);
    /* Released: both replies arrive, in order. */
    tv.tv_sec = 5;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (got < 2 * PT_FRAME_HEADER_SIZE + 4 &&
           (n = recv(fd, buf + got, sizeof(buf) - got, 0)) > 0)
        got += (size_t)n;
    CHECK(got >= PT_FRAME_HEADER_SIZE + 4);
    CHECK_OK(pt_frame_decode_header(buf, 100, &h));
    CHECK_EQ(h.request_id, 1);
    CHECK_OK(pt_frame_decode_header(buf + PT_FRAME_HEADER_SIZE + 4, 100, &h));
    CHECK_EQ(h.request_id, 2);
    CHECK_OK(pt_conn_open(f.address, 2000, 0, &b));
    CHECK(pt_conn_call(b, PT_MSG_PING, "x", 1, 2000, &rep) < 0);
    pt_reply_free(&rep);
    pt_conn_close(b);
    /* Once a slot frees up, new connections are served again. */
    close(fd);
    for (tries = 0; pt_now_ms() < deadline; tries++) {
        int err;
        CHECK_OK(pt_conn_open(f.address, 2000, 0, &c));
        err = pt_conn_call(c, PT_MSG_PING, "y", 1, 2000, &rep);
        pt_reply_free(&rep);
        pt_conn_close(c);
        if (err == 0) break;
        usleep(10000);
    }
    CHECK(pt_now_ms() < deadline);
    pt_conn_close(a);
    fixture_stop(&f);
}

TEST(net_call_pool_survives_server_restart)
{
    struct fixture f;
    struct pt_reply rep;
    struct pt_call_opts once = {2000, 1, 1};
    struct iovec iov = {"p", 1};
    char address[PT_ADDR_MAX];
    int i;
    fixture_start(&f, 0);
    snprintf(address, sizeof(address), "%s", f.address);
    for (i = 0; i < 3; i++) {
        CHECK_OK(pt_call(address, PT_MSG_PING, &iov, 1, &once, &rep));
        pt_reply_free(&rep);
    }
    CHECK_EQ(pt_server_connections(f.srv), 1); /* one pooled connection, reused */
    fixture_stop(&f);
    fixture_start_with(&f, 0, address, 0, 0);
    /* The pooled connection died with the old server: a single attempt still succeeds. */
    CHECK_OK(pt_call(address, PT_MSG_PING, &iov, 1, &once, &rep));
    CHECK_MEM(rep.body, "p", 1);
    pt_reply_free(&rep);
    pt_call_pool_clear();
    fixture_stop(&f);
}
