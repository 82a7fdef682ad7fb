/*
 * The production env (env_uv.c) and Petrel's Raft I/O (raft_io.c) driven by real libraft on
 * one libuv loop over loopback TCP and real files: timers, messages and files of the env;
 * malformed bytes closing a connection; an append's callback held back exactly as long as its
 * fsync; a three-replica group electing, replicating, failing over and restarting from disk;
 * torn tails cut and mid-log corruption refused at load; libraft's old directory refused;
 * every kind of bad message dropped and counted.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "cluster/env/env_uv.h"
#include "cluster/replica/raft_io.h"
#include "cluster/replica/raft_log.h"
#include "cluster/replica/raft_msg.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/prng.h"
#include "test.h"

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static void wake(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until *flag is set or ms pass: 1 if the flag was set. */
static int run_until(uv_loop_t *loop, const int *flag, unsigned ms)
{
    uv_timer_t t;
    uint64_t end = now_ms() + ms;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, wake, 5, 5);
    while (!*flag && now_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

static void run_for(uv_loop_t *loop, unsigned ms)
{
    int never = 0;
    run_until(loop, &never, ms);
}

static void env_done(void *ctx)
{
    *(int *)ctx = 1;
}

static void env_close_free(uv_loop_t *loop, struct pt_env *e)
{
    int done = 0;
    pt_env_uv_close(e, env_done, &done);
    CHECK(run_until(loop, &done, 5000));
    pt_env_uv_free(e);
}

static struct pt_env *env_new(uv_loop_t *loop, const char *sub)
{
    char dir[700], err[256];
    struct pt_env *e;
    snprintf(dir, sizeof(dir), "%s/%s", test_tmpdir(), sub);
    CHECK_MSG(pt_env_uv_init(&e, loop, dir, err, sizeof(err)) == 0, "%s", err);
    return e;
}

/* ---- env_uv --------------------------------------------------------------------------------- */

struct order {
    int seen[4];
    int n;
};

static void order_cb(void *ctx)
{
    struct order *o = ctx;
    o->seen[o->n++] = 1;
}
static void order_a(void *ctx)
{
    struct order *o = ctx;
    o->seen[o->n++] = 'a';
}
static void order_b(void *ctx)
{
    struct order *o = ctx;
    o->seen[o->n++] = 'b';
}

TEST(env_uv_timers_fire_in_order_and_cancel_never_fires)
{
    uv_loop_t loop;
    struct pt_env *e;
    struct order o;
    uint64_t t0, id;
    int done = 0;
    uv_loop_init(&loop);
    e = env_new(&loop, "env");
    memset(&o, 0, sizeof(o));
    t0 = pt_env_now(e);
    pt_env_timer(e, 30, order_b, &o);
    pt_env_timer(e, 0, order_a, &o);
    id = pt_env_timer(e, 10, order_cb, &o);
    CHECK(id != 0);
    pt_env_cancel(e, id);
    CHECK_EQ(o.n, 0); /* never from inside the call */
    run_for(&loop, 80);
    CHECK_EQ(o.n, 2);
    CHECK_EQ(o.seen[0], 'a');
    CHECK_EQ(o.seen[1], 'b');
    CHECK(pt_env_now(e) - t0 >= 30);
    CHECK(pt_env_random(e) != pt_env_random(e));
    /* Timers pending at close never fire. */
    pt_env_timer(e, 1, order_cb, &o);
    pt_env_uv_close(e, env_done, &done);
    CHECK(run_until(&loop, &done, 2000));
    run_for(&loop, 20);
    CHECK_EQ(o.n, 2);
    pt_env_uv_free(e);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

struct inbox {
    int count;
    char from[PT_ENV_ADDR_MAX];
    size_t len;
    uint8_t first, last;
};

static void inbox_cb(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct inbox *b = ctx;
    b->count++;
    snprintf(b->from, sizeof(b->from), "%s", from);
    b->len = len;
    b->first = msg[0];
    b->last = msg[len - 1];
}

TEST(env_uv_messages_between_two_envs_name_the_sender)
{
    uv_loop_t loop;
    struct pt_env *a, *b;
    char na[PT_ENV_ADDR_MAX], nb[PT_ENV_ADDR_MAX];
    struct inbox ib, ia;
    uint8_t *big = malloc(3u << 20);
    unsigned i;
    uv_loop_init(&loop);
    a = env_new(&loop, "a");
    b = env_new(&loop, "b");
    CHECK_OK(pt_env_uv_bind(a, "127.0.0.1:0", na, sizeof(na)));
    CHECK_OK(pt_env_uv_bind(b, "127.0.0.1:0", nb, sizeof(nb)));
    CHECK(strcmp(na, "127.0.0.1:0") != 0);
    memset(&ib, 0, sizeof(ib));
    memset(&ia, 0, sizeof(ia));
    CHECK_OK(pt_env_listen(b, nb, inbox_cb, &ib));
    CHECK_OK(pt_env_listen(a, na, inbox_cb, &ia));
    for (i = 0; i < 100; i++) {
        uint8_t m[3] = {(uint8_t)i, 1, (uint8_t)i};
        CHECK_OK(pt_env_send(a, nb, m, sizeof(m)));
    }
    memset(big, 7, 3u << 20);
    big[0] = 1;
    big[(3u << 20) - 1] = 9;
    CHECK_OK(pt_env_send(a, nb, big, 3u << 20));
    while (ib.count < 101 && pt_env_now(a) < 10000)
        run_for(&loop, 10);
    CHECK_EQ(ib.count, 101);
    CHECK(!strcmp(ib.from, na));
    CHECK_EQ(ib.len, 3u << 20);
    CHECK_EQ(ib.first, 1);
    CHECK_EQ(ib.last, 9);
    CHECK_OK(pt_env_send(b, na, big, 10));
    while (ia.count < 1 && pt_env_now(b) < 10000)
        run_for(&loop, 10);
    CHECK(!strcmp(ia.from, nb));
    /* Bad arguments: one clear error. */
    CHECK_EQ(pt_env_send(a, "not-an-address", big, 1), -PT_EINVAL);
    CHECK_EQ(pt_env_send(a, nb, big, 0), -PT_EINVAL);
    CHECK_EQ(pt_env_listen(a, "127.0.0.1:99999", inbox_cb, &ia), -PT_EINVAL);
    free(big);
    env_close_free(&loop, a);
    env_close_free(&loop, b);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

struct synced {
    int done, status;
};

static void synced_cb(void *ctx, int status)
{
    struct synced *s = ctx;
    s->done = 1;
    s->status = status;
}

TEST(env_uv_files_fsync_rename_list_and_bad_paths)
{
    uv_loop_t loop;
    struct pt_env *e;
    struct synced s = {0, 1};
    char names[64], small[4];
    uint8_t buf[16];
    int fd;
    uv_loop_init(&loop);
    e = env_new(&loop, "files");
    fd = pt_env_open(e, "x.tmp", PT_ENV_RDWR | PT_ENV_CREAT);
    CHECK_OK(fd);
    CHECK_OK(pt_env_pwrite(e, fd, "hello world", 11, 0));
    CHECK_EQ(pt_env_size(e, fd), 11);
    CHECK_EQ(pt_env_pread(e, fd, buf, sizeof(buf), 6), 5);
    CHECK_MEM(buf, "world", 5);
    pt_env_fsync(e, fd, synced_cb, &s);
    CHECK_EQ(s.done, 0);
    CHECK(run_until(&loop, &s.done, 5000));
    CHECK_EQ(s.status, 0);
    CHECK_OK(pt_env_truncate(e, fd, 5));
    CHECK_EQ(pt_env_size(e, fd), 5);
    CHECK_OK(pt_env_close(e, fd));
    CHECK_OK(pt_env_rename(e, "x.tmp", "x"));
    CHECK_OK(pt_env_mkdir(e, "sub"));
    CHECK_OK(pt_env_fsync_dir(e, ""));
    CHECK_OK(pt_env_fsync_dir(e, "sub"));
    CHECK_EQ(pt_env_list(e, "", names, sizeof(names)), 2);
    CHECK(!strcmp(names, "sub") && !strcmp(names + 4, "x"));
    CHECK_EQ(pt_env_list(e, "", small, sizeof(small)), -PT_ERANGE);
    CHECK_EQ(pt_env_open(e, "x", PT_ENV_RDWR | PT_ENV_CREAT | PT_ENV_EXCL), -PT_EEXIST);
    CHECK_EQ(pt_env_open(e, "missing", PT_ENV_RDONLY), -PT_ENOENT);
    CHECK_EQ(pt_env_open(e, "../escape", PT_ENV_RDWR | PT_ENV_CREAT), -PT_EINVAL);
    CHECK_EQ(pt_env_open(e, "/etc/passwd", PT_ENV_RDONLY), -PT_EINVAL);
    CHECK_EQ(pt_env_open(e, "sub/../x", PT_ENV_RDONLY), -PT_EINVAL);
    CHECK_EQ(pt_env_rename(e, "x", ".."), -PT_EINVAL);
    CHECK_OK(pt_env_unlink(e, "x"));
    CHECK_EQ(pt_env_unlink(e, "x"), -PT_ENOENT);
    /* An fsync of a closed descriptor fails through the callback, later. */
    s.done = 0;
    pt_env_fsync(e, 1000, synced_cb, &s);
    CHECK_EQ(s.done, 0);
    CHECK(run_until(&loop, &s.done, 5000));
    CHECK(s.status < 0);
    env_close_free(&loop, e);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

/* A raw TCP client: connect to "IP:PORT", send bytes, report whether the server closed. */
static int raw_connect(const char *addr)
{
    struct sockaddr_in sa;
    const char *colon = strrchr(addr, ':');
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0 && colon);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    CHECK_OK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
    return fd;
}

/* Wait (running the loop) until the server closes fd: 1, or 0 after ms. */
static int raw_closed(uv_loop_t *loop, int fd, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    char c;
    while (now_ms() < end) {
        ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
        if (n == 0) return 1;
        run_for(loop, 5);
    }
    return 0;
}

TEST(env_uv_malformed_bytes_close_the_connection)
{
    uv_loop_t loop;
    struct pt_env *e, *peer;
    char name[PT_ENV_ADDR_MAX], pname[PT_ENV_ADDR_MAX];
    struct inbox ib;
    uint8_t hs[64], pkt[95];
    struct pt_prng g;
    int fd;
    unsigned i;
    pt_prng_seed(&g, test_seed());
    uv_loop_init(&loop);
    e = env_new(&loop, "srv");
    peer = env_new(&loop, "peer");
    CHECK_OK(pt_env_uv_bind(e, "127.0.0.1:0", name, sizeof(name)));
    CHECK_OK(pt_env_uv_bind(peer, "127.0.0.1:0", pname, sizeof(pname)));
    memset(&ib, 0, sizeof(ib));
    CHECK_OK(pt_env_listen(e, name, inbox_cb, &ib));
    /* The issue-10 packet: libraft's handshake and an AppendEntries with a random header. */
    memset(pkt, 0, sizeof(pkt));
    pt_put_le64(pkt, 1);
    pt_put_le64(pkt + 8, 2);
    pt_put_le64(pkt + 16, 8);
    memcpy(pkt + 24, "r1", 2);
    pt_put_le64(pkt + 32, 1);
    pt_put_le64(pkt + 40, 44);
    pt_prng_fill(&g, pkt + 48, 47);
    fd = raw_connect(name);
    CHECK_EQ(send(fd, pkt, sizeof(pkt), 0), (ssize_t)sizeof(pkt));
    CHECK_MSG(raw_closed(&loop, fd, 3000), "the libraft packet did not close the connection");
    close(fd);
    /* A handshake claiming someone else's IP. */
    pt_put_le32(hs, 0x564e4550u);
    hs[4] = 1;
    hs[5] = 14;
    memcpy(hs + 6, "10.9.8.7:12345", 14);
    fd = raw_connect(name);
    CHECK_EQ(send(fd, hs, 20, 0), 20);
    CHECK(raw_closed(&loop, fd, 3000));
    close(fd);
    /* A good anonymous handshake, then a length over the limit. */
    hs[5] = 0;
    pt_put_le32(hs + 6, PT_ENV_MSG_MAX + 1);
    fd = raw_connect(name);
    CHECK_EQ(send(fd, hs, 10, 0), 10);
    CHECK(raw_closed(&loop, fd, 3000));
    close(fd);
    /* Seeded random garbage. */
    for (i = 0; i < 20; i++) {
        uint8_t junk[64];
        pt_prng_fill(&g, junk, sizeof(junk));
        fd = raw_connect(name);
        CHECK_EQ(send(fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
        CHECK_MSG(raw_closed(&loop, fd, 3000), "random bytes %u kept the connection", i);
        close(fd);
    }
    CHECK_EQ(ib.count, 0);
    CHECK(pt_env_uv_stats(e)->rejected >= 23);
    /* The listener still serves well-formed peers. */
    CHECK_OK(pt_env_send(peer, name, (const uint8_t *)"ok", 2));
    while (ib.count < 1 && pt_env_now(e) < 10000)
        run_for(&loop, 10);
    CHECK_EQ(ib.count, 1);
    CHECK(!strcmp(ib.from, pname));
    env_close_free(&loop, e);
    env_close_free(&loop, peer);
    CHECK_EQ(uv_loop_close(&loop), 0);
}
