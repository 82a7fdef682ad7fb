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

/* ---- an env that can hold fsyncs back (the disk is slow) ---------------------------------- */

struct gate {
    struct pt_env env;
    struct pt_env *inner;
    int hold;
    int n_held;
    struct {
        int fd;
        void (*done)(void *ctx, int status);
        void *ctx;
    } held[256];
};

static struct pt_env *in_of(struct pt_env *e)
{
    return ((struct gate *)e)->inner;
}
static uint64_t g_now(struct pt_env *e)
{
    return pt_env_now(in_of(e));
}
static uint64_t g_wall(struct pt_env *e)
{
    return pt_env_wall_ms(in_of(e));
}
static uint64_t g_random(struct pt_env *e)
{
    return pt_env_random(in_of(e));
}
static uint64_t g_timer(struct pt_env *e, uint64_t d, pt_env_cb cb, void *ctx)
{
    return pt_env_timer(in_of(e), d, cb, ctx);
}
static void g_cancel(struct pt_env *e, uint64_t id)
{
    pt_env_cancel(in_of(e), id);
}
static int g_listen(struct pt_env *e, const char *self, pt_env_msg_cb cb, void *ctx)
{
    return pt_env_listen(in_of(e), self, cb, ctx);
}
static int g_send(struct pt_env *e, const char *to, const uint8_t *m, size_t len)
{
    return pt_env_send(in_of(e), to, m, len);
}
static int g_open(struct pt_env *e, const char *p, int f)
{
    return pt_env_open(in_of(e), p, f);
}
static int g_close(struct pt_env *e, int fd)
{
    return pt_env_close(in_of(e), fd);
}
static int64_t g_pread(struct pt_env *e, int fd, void *b, size_t n, uint64_t o)
{
    return pt_env_pread(in_of(e), fd, b, n, o);
}
static int g_pwrite(struct pt_env *e, int fd, const void *b, size_t n, uint64_t o)
{
    return pt_env_pwrite(in_of(e), fd, b, n, o);
}
static int g_truncate(struct pt_env *e, int fd, uint64_t s)
{
    return pt_env_truncate(in_of(e), fd, s);
}
static int64_t g_size(struct pt_env *e, int fd)
{
    return pt_env_size(in_of(e), fd);
}
static void g_fsync(struct pt_env *e, int fd, void (*done)(void *, int), void *ctx)
{
    struct gate *g = (struct gate *)e;
    if (g->hold && g->n_held < 256) {
        g->held[g->n_held].fd = fd;
        g->held[g->n_held].done = done;
        g->held[g->n_held].ctx = ctx;
        g->n_held++;
        return;
    }
    pt_env_fsync(g->inner, fd, done, ctx);
}
static int g_rename(struct pt_env *e, const char *a, const char *b)
{
    return pt_env_rename(in_of(e), a, b);
}
static int g_unlink(struct pt_env *e, const char *p)
{
    return pt_env_unlink(in_of(e), p);
}
static int g_mkdir(struct pt_env *e, const char *p)
{
    return pt_env_mkdir(in_of(e), p);
}
static int g_fsync_dir(struct pt_env *e, const char *p)
{
    return pt_env_fsync_dir(in_of(e), p);
}
static int g_list(struct pt_env *e, const char *p, char *b, size_t c)
{
    return pt_env_list(in_of(e), p, b, c);
}

static const struct pt_env_ops gate_ops = {g_now,    g_wall,     g_random,    g_timer, g_cancel,
                                           g_listen, g_send,     g_open,      g_close, g_pread,
                                           g_pwrite, g_truncate, g_size,      g_fsync, g_rename,
                                           g_unlink, g_mkdir,    g_fsync_dir, g_list,   NULL};

static void gate_release(struct gate *g)
{
    int i;
    g->hold = 0;
    for (i = 0; i < g->n_held; i++)
        pt_env_fsync(g->inner, g->held[i].fd, g->held[i].done, g->held[i].ctx);
    g->n_held = 0;
}

/* ---- a counting state machine and a group of replicas --------------------------------------- */

struct counter {
    struct raft_fsm fsm;
    uint64_t applied, sum;
};

static int counter_apply(struct raft_fsm *f, const struct raft_buffer *buf, void **result)
{
    struct counter *c = f->data;
    CHECK_EQ(buf->len, 8);
    c->applied++;
    c->sum += pt_get_le64(buf->base);
    *result = NULL;
    return 0;
}

static int counter_snapshot(struct raft_fsm *f, struct raft_buffer *bufs[], unsigned *n)
{
    struct counter *c = f->data;
    *bufs = raft_malloc(sizeof(**bufs));
    CHECK(*bufs);
    (*bufs)[0].len = 16;
    (*bufs)[0].base = raft_malloc(16);
    pt_put_le64((*bufs)[0].base, c->applied);
    pt_put_le64((uint8_t *)(*bufs)[0].base + 8, c->sum);
    *n = 1;
    return 0;
}

static int counter_restore(struct raft_fsm *f, struct raft_buffer *buf)
{
    struct counter *c = f->data;
    CHECK_EQ(buf->len, 16);
    c->applied = pt_get_le64(buf->base);
    c->sum = pt_get_le64((uint8_t *)buf->base + 8);
    raft_free(buf->base);
    return 0;
}

#define GROUP_MAX 3

struct rep {
    struct pt_env *uv;
    struct gate gate;
    struct raft_io io;
    struct raft raft;
    struct counter fsm;
    char name[PT_ENV_ADDR_MAX];
    int running, closed;
};

struct group {
    uv_loop_t loop;
    unsigned n, snapshot_every;
    /* proposals answered with an error (leadership lost) and proposed again: each may still
     * have been committed by the next leader, so it may be applied twice */
    unsigned in_doubt;
    struct rep r[GROUP_MAX];
};

static int group_resolve(void *ctx, raft_id id, char *buf, size_t cap)
{
    struct group *g = ctx;
    if (id == 0 || id > g->n || !g->r[id - 1].name[0]) return -PT_ENOENT;
    snprintf(buf, cap, "%s", g->r[id - 1].name);
    return 0;
}

static void rep_start(struct group *g, unsigned i)
{
    struct rep *r = &g->r[i];
    struct pt_raft_io_config cfg;
    struct raft_configuration conf;
    char sub[16], err[300], bound[PT_ENV_ADDR_MAX];
    unsigned k;
    int rc;
    snprintf(sub, sizeof(sub), "r%u", i);
    r->uv = env_new(&g->loop, sub);
    CHECK_OK(pt_env_uv_bind(r->uv, r->name[0] ? r->name : "127.0.0.1:0", bound, sizeof(bound)));
    snprintf(r->name, sizeof(r->name), "%s", bound);
    memset(&r->gate, 0, sizeof(r->gate));
    r->gate.env.ops = &gate_ops;
    r->gate.inner = r->uv;
    memset(&cfg, 0, sizeof(cfg));
    cfg.env = &r->gate.env;
    cfg.cluster_id = 77;
    cfg.group = PT_RAFT_GROUP(1, 0);
    cfg.replicas = g->n;
    cfg.listen = r->name;
    cfg.resolve = group_resolve;
    cfg.resolve_ctx = g;
    rc = pt_raft_io_init(&r->io, &cfg, err, sizeof(err));
    CHECK_MSG(rc == 0, "replica %u: %s", i, err);
    memset(&r->fsm, 0, sizeof(r->fsm));
    r->fsm.fsm.version = 1;
    r->fsm.fsm.data = &r->fsm;
    r->fsm.fsm.apply = counter_apply;
    r->fsm.fsm.snapshot = counter_snapshot;
    r->fsm.fsm.restore = counter_restore;
    CHECK_EQ(raft_init(&r->raft, &r->io, &r->fsm.fsm, i + 1, sub), 0);
    r->raft.data = r;
    raft_configuration_init(&conf);
    for (k = 0; k < g->n; k++) {
        char nm[16];
        snprintf(nm, sizeof(nm), "r%u", k);
        CHECK_EQ(raft_configuration_add(&conf, k + 1, nm, RAFT_VOTER), 0);
    }
    rc = raft_bootstrap(&r->raft, &conf);
    CHECK(rc == 0 || rc == RAFT_CANTBOOTSTRAP);
    raft_configuration_close(&conf);
    raft_set_election_timeout(&r->raft, 150);
    raft_set_heartbeat_timeout(&r->raft, 20);
    raft_set_pre_vote(&r->raft, true);
    if (g->snapshot_every) {
        raft_set_snapshot_threshold(&r->raft, g->snapshot_every);
        raft_set_snapshot_trailing(&r->raft, 2);
    }
    CHECK_EQ(raft_start(&r->raft), 0);
    r->running = 1;
    r->closed = 0;
}

static void rep_closed(struct raft *raft)
{
    struct rep *r = raft->data;
    r->closed = 1;
}

static void rep_stop(struct group *g, unsigned i)
{
    struct rep *r = &g->r[i];
    if (!r->running) return;
    raft_close(&r->raft, rep_closed);
    CHECK(run_until(&g->loop, &r->closed, 5000));
    pt_raft_io_free(&r->io);
    env_close_free(&g->loop, r->uv);
    r->running = 0;
}

static struct rep *group_leader(struct group *g, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    unsigned i;
    while (now_ms() < end) {
        for (i = 0; i < g->n; i++)
            if (g->r[i].running && raft_state(&g->r[i].raft) == RAFT_LEADER) return &g->r[i];
        run_for(&g->loop, 10);
    }
    CHECK_MSG(0, "no leader within %u ms", ms);
    return NULL;
}

struct applied {
    struct raft_apply req;
    int done, status;
};

static void applied_cb(struct raft_apply *req, int status, void *result)
{
    struct applied *a = req->data;
    (void)result;
    a->done = 1;
    a->status = status;
}

static void propose(struct rep *r, struct applied *a, uint64_t value)
{
    struct raft_buffer buf;
    buf.len = 8;
    buf.base = raft_malloc(8);
    pt_put_le64(buf.base, value);
    memset(a, 0, sizeof(*a));
    a->req.data = a;
    CHECK_EQ(raft_apply(&r->raft, &a->req, &buf, 1, applied_cb), 0);
}

/* Propose values 1..count at the leader, one after the other; wait for each. */
static void propose_n(struct group *g, uint64_t from, unsigned count)
{
    unsigned i;
    for (i = 0; i < count; i++) {
        struct rep *l = group_leader(g, 5000);
        struct applied a;
        propose(l, &a, from + i);
        CHECK_MSG(run_until(&g->loop, &a.done, 5000), "entry %u never applied", i);
        if (a.status != 0) { /* leadership moved: propose again (the first may commit too) */
            g->in_doubt++;
            i--;
        }
    }
}

/* Replica i applies count entries, plus at most one for each proposal that was in doubt
 * (answered with an error, proposed again, and perhaps committed both times). */
static void wait_applied(struct group *g, unsigned i, uint64_t count)
{
    uint64_t end = now_ms() + 10000;
    while (g->r[i].fsm.applied < count && now_ms() < end)
        run_for(&g->loop, 10);
    CHECK_MSG(g->r[i].fsm.applied >= count && g->r[i].fsm.applied <= count + g->in_doubt,
              "replica %u applied %llu of %llu (%u proposals in doubt)", i,
              (unsigned long long)g->r[i].fsm.applied, (unsigned long long)count, g->in_doubt);
}

static void group_init(struct group *g, unsigned n)
{
    memset(g, 0, sizeof(*g));
    g->n = n;
    uv_loop_init(&g->loop);
}

static void group_close(struct group *g)
{
    unsigned i;
    for (i = 0; i < g->n; i++)
        rep_stop(g, i);
    uv_run(&g->loop, UV_RUN_NOWAIT);
    CHECK_EQ(uv_loop_close(&g->loop), 0);
}

TEST(raftio_append_callback_waits_for_its_fsync)
{
    struct group g;
    struct rep *l;
    struct applied a;
    group_init(&g, 1);
    rep_start(&g, 0);
    l = group_leader(&g, 5000);
    propose_n(&g, 1, 3);
    /* The disk holds its fsync: the entry must not be reported committed meanwhile. */
    l->gate.hold = 1;
    propose(l, &a, 100);
    run_for(&g.loop, 300);
    CHECK_MSG(!a.done, "an append was acknowledged before its fsync completed");
    CHECK(l->gate.n_held > 0);
    CHECK_EQ(l->fsm.applied, 3);
    gate_release(&l->gate);
    CHECK(run_until(&g.loop, &a.done, 5000));
    CHECK_EQ(a.status, 0);
    CHECK_EQ(l->fsm.applied, 4);
    CHECK(pt_raft_io_stats(&l->io)->fsyncs >= 4);
    group_close(&g);
}

TEST_T(raftio_three_replicas_replicate_fail_over_snapshot_and_restart, 120)
{
    struct group g;
    struct rep *l;
    unsigned i, old;
    group_init(&g, 3);
    g.snapshot_every = 16;
    for (i = 0; i < 3; i++)
        rep_start(&g, i);
    propose_n(&g, 1, 30);
    for (i = 0; i < 3; i++)
        wait_applied(&g, i, 30);
    /* The leader goes away; the others elect one and go on. */
    l = group_leader(&g, 5000);
    old = (unsigned)(l - g.r);
    rep_stop(&g, old);
    propose_n(&g, 31, 25);
    /* Back from its directory, it catches up (through a snapshot: the log was compacted). */
    rep_start(&g, old);
    for (i = 0; i < 3; i++)
        wait_applied(&g, i, 55);
    for (i = 0; i < 3; i++)
        CHECK_EQ(g.r[i].fsm.sum, 55 * 56 / 2);
    {
        char cmd[800];
        snprintf(cmd, sizeof(cmd), "ls %s/r%u | grep -q '^snap-'", test_tmpdir(), old);
        CHECK_MSG(system(cmd) == 0, "replica %u holds no snapshot", old);
    }
    /* Everyone restarts from disk: the committed state comes back. */
    for (i = 0; i < 3; i++)
        rep_stop(&g, i);
    for (i = 0; i < 3; i++)
        rep_start(&g, i);
    propose_n(&g, 56, 1);
    for (i = 0; i < 3; i++) {
        wait_applied(&g, i, 56);
        CHECK_EQ(g.r[i].fsm.sum, 56 * 57 / 2);
    }
    group_close(&g);
}

/* Names of the segment files in dir (newline-separated into buf), and how many. */
static int segments(const char *dir, char names[][64], int max)
{
    char cmd[800];
    FILE *p;
    int n = 0;
    snprintf(cmd, sizeof(cmd), "ls %s | grep '^seg-'", dir);
    p = popen(cmd, "r");
    CHECK(p);
    while (n < max && fgets(names[n], 64, p)) {
        names[n][strcspn(names[n], "\n")] = 0;
        n++;
    }
    pclose(p);
    return n;
}

/* pt_raft_io_init on directory `sub`: the error, with the message in err. */
static int try_load(uv_loop_t *loop, const char *sub, char *err, size_t cap)
{
    struct pt_env *e = env_new(loop, sub);
    struct pt_raft_io_config cfg;
    struct raft_io io;
    int rc;
    memset(&cfg, 0, sizeof(cfg));
    cfg.env = e;
    cfg.replicas = 1;
    cfg.listen = "127.0.0.1:0";
    cfg.resolve = group_resolve;
    err[0] = 0;
    rc = pt_raft_io_init(&io, &cfg, err, cap);
    if (rc == 0) pt_raft_io_free(&io);
    env_close_free(loop, e);
    return rc;
}

TEST(raftio_load_cuts_a_torn_tail_and_refuses_corruption)
{
    struct group g;
    char dir[700], path[800], seg[4][64], err[400];
    FILE *f;
    int n;
    group_init(&g, 1);
    rep_start(&g, 0);
    propose_n(&g, 1, 10);
    rep_stop(&g, 0);
    snprintf(dir, sizeof(dir), "%s/r0", test_tmpdir());
    n = segments(dir, seg, 4);
    CHECK(n >= 1);
    /* A torn write at the tail: half a record of garbage. */
    snprintf(path, sizeof(path), "%s/%s", dir, seg[n - 1]);
    f = fopen(path, "ab");
    CHECK(f);
    fwrite("\x0b\0\0\0\0\0\0\0\x05\0\0\0\0\0\0\0\x0b\0\0\0torn", 1, 24, f);
    fclose(f);
    rep_start(&g, 0);
    CHECK(pt_raft_io_stats(&g.r[0].io)->torn_bytes_cut >= 24);
    propose_n(&g, 11, 1);
    wait_applied(&g, 0, 11);
    CHECK_EQ(g.r[0].fsm.sum, 66);
    rep_stop(&g, 0);
    group_close(&g);
    uv_loop_init(&g.loop);
    /* A flipped byte in the first record, with later batches behind it: refused. */
    n = segments(dir, seg, 4);
    snprintf(path, sizeof(path), "%s/%s", dir, seg[0]);
    f = fopen(path, "r+b");
    CHECK(f);
    fseek(f, PT_RAFT_SEG_HEADER + PT_RAFT_REC_HEADER + 2, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    CHECK_EQ(try_load(&g.loop, "r0", err, sizeof(err)), -PT_ECORRUPT);
    CHECK_MSG(strstr(err, "corrupt") != NULL, "message: %s", err);
    /* A damaged term-and-vote file. */
    snprintf(path, sizeof(path), "%s/r1", test_tmpdir());
    CHECK_EQ(try_load(&g.loop, "r1", err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/r1/meta", test_tmpdir());
    f = fopen(path, "wb");
    CHECK(f);
    fwrite("not a meta file at all, 28b", 1, 28, f);
    fclose(f);
    CHECK_EQ(try_load(&g.loop, "r1", err, sizeof(err)), -PT_ECORRUPT);
    /* A directory of libraft's own storage: one clear refusal. */
    snprintf(path, sizeof(path), "%s/old", test_tmpdir());
    CHECK_EQ(try_load(&g.loop, "old", err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/old/metadata1", test_tmpdir());
    f = fopen(path, "wb");
    CHECK(f);
    fclose(f);
    CHECK_EQ(try_load(&g.loop, "old", err, sizeof(err)), -PT_EVERSION);
    CHECK_MSG(strstr(err, "libraft") != NULL, "message: %s", err);
    CHECK_EQ(uv_loop_close(&g.loop), 0);
}

/* Encode a RequestVote from `from` to `to` with the given ids, cluster and group. */
static uint8_t *vote_msg(uint64_t cluster, uint32_t group, uint64_t from, uint64_t to,
                         uint64_t candidate, size_t *len)
{
    struct pt_raft_msg_header h = {0, cluster, group, 0, from, to, 0};
    struct raft_message m;
    uint8_t *buf;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_IO_REQUEST_VOTE;
    m.request_vote.term = 1000000;
    m.request_vote.candidate_id = candidate;
    m.request_vote.last_log_index = 1000000;
    m.request_vote.last_log_term = 1000000;
    CHECK_OK(pt_raft_msg_encode(&h, &m, &buf, len));
    return buf;
}

TEST(raftio_bad_messages_are_dropped_and_counted)
{
    struct group g;
    struct pt_env *intruder;
    char iname[PT_ENV_ADDR_MAX];
    const struct pt_raft_io_stats *st;
    uint32_t grp = PT_RAFT_GROUP(1, 0);
    uint64_t term_before;
    uint8_t *m, junk[100];
    size_t len;
    unsigned i;
    struct pt_prng pr;
    pt_prng_seed(&pr, test_seed());
    group_init(&g, 3);
    for (i = 0; i < 3; i++)
        rep_start(&g, i);
    propose_n(&g, 1, 3);
    intruder = env_new(&g.loop, "intruder");
    CHECK_OK(pt_env_uv_bind(intruder, "127.0.0.1:0", iname, sizeof(iname)));
    st = pt_raft_io_stats(&g.r[0].io);
    term_before = g.r[0].raft.current_term;
#define SEND_FROM(env, buf, n)                                                                     \
    do {                                                                                           \
        CHECK_OK(pt_env_send((env), g.r[0].name, (buf), (n)));                                     \
        free(buf);                                                                                 \
    } while (0)
    m = vote_msg(78, grp, 2, 1, 2, &len); /* another cluster */
    SEND_FROM(g.r[1].uv, m, len);
    m = vote_msg(77, grp + 1, 2, 1, 2, &len); /* another group */
    SEND_FROM(g.r[1].uv, m, len);
    m = vote_msg(77, grp, 2, 3, 2, &len); /* not for replica 1 */
    SEND_FROM(g.r[1].uv, m, len);
    m = vote_msg(77, grp, 9, 1, 9, &len); /* no such replica */
    SEND_FROM(intruder, m, len);
    m = vote_msg(77, grp, 1, 1, 1, &len); /* claims to be the receiver */
    SEND_FROM(intruder, m, len);
    m = vote_msg(77, grp, 2, 1, 2, &len); /* claims replica 2 from another address */
    SEND_FROM(intruder, m, len);
    m = vote_msg(77, grp, 2, 1, 3, &len); /* from replica 2, for candidate 3: body refused */
    SEND_FROM(g.r[1].uv, m, len);
    m = vote_msg(77, grp, 2, 1, 2, &len); /* bad CRC */
    m[len - 1] ^= 1;
    SEND_FROM(g.r[1].uv, m, len);
    for (i = 0; i < 50; i++) { /* random bytes */
        pt_prng_fill(&pr, junk, sizeof(junk));
        CHECK_OK(pt_env_send(g.r[1].uv, g.r[0].name, junk, 1 + pt_prng_below(&pr, sizeof(junk))));
    }
#undef SEND_FROM
    {
        uint64_t end = now_ms() + 5000;
        while (now_ms() < end && st->drop_group + st->drop_sender + st->drop_address +
                                         st->drop_body + st->drop_crc + st->drop_header <
                                     58)
            run_for(&g.loop, 10);
    }
    CHECK_EQ(st->drop_group, 3);
    CHECK_EQ(st->drop_sender, 2);
    CHECK_EQ(st->drop_address, 1);
    CHECK_EQ(st->drop_body, 1);
    CHECK_EQ(st->drop_crc, 1);
    CHECK_EQ(st->drop_header, 50);
    /* None of them moved the term (each carried term 1000000); the group still works. */
    CHECK(g.r[0].raft.current_term < 1000);
    CHECK(g.r[0].raft.current_term >= term_before);
    propose_n(&g, 4, 2);
    for (i = 0; i < 3; i++)
        wait_applied(&g, i, 5);
    env_close_free(&g.loop, intruder);
    group_close(&g);
}

TEST(raftio_no_message_leaves_before_its_term_and_vote_are_durable)
{
    struct group g;
    struct rep *l, *f;
    uint64_t term0, sent;
    unsigned i, old;
    group_init(&g, 3);
    for (i = 0; i < 3; i++)
        rep_start(&g, i);
    propose_n(&g, 1, 3);
    l = group_leader(&g, 5000);
    old = (unsigned)(l - g.r);
    f = &g.r[(old + 1) % 3];
    term0 = f->raft.current_term;
    /* The follower's disk stalls; the leader goes away, so a new term begins. */
    f->gate.hold = 1;
    rep_stop(&g, old);
    {
        uint64_t end = now_ms() + 5000;
        while (f->raft.current_term == term0 && now_ms() < end)
            run_for(&g.loop, 1);
    }
    CHECK_MSG(f->raft.current_term > term0, "no new term within 5 s");
    sent = pt_raft_io_stats(&f->io)->sent;
    run_for(&g.loop, 500);
    CHECK_MSG(pt_raft_io_stats(&f->io)->sent == sent,
              "messages left before the new term was durable");
    /* The disk catches up: the group elects a leader and serves. */
    gate_release(&f->gate);
    propose_n(&g, 4, 2);
    rep_start(&g, old);
    for (i = 0; i < 3; i++)
        wait_applied(&g, i, 5);
    group_close(&g);
}

TEST(raftio_appends_behind_an_fsync_share_one_write_and_fsync)
{
    struct group g;
    struct rep *l;
    struct applied a[64];
    const struct pt_raft_io_stats *st;
    uint64_t appends0, writes0, fsyncs0;
    unsigned i;
    int all = 0;
    group_init(&g, 1);
    rep_start(&g, 0);
    l = group_leader(&g, 5000);
    propose_n(&g, 1, 1);
    st = pt_raft_io_stats(&l->io);
    appends0 = st->appends;
    writes0 = st->append_writes;
    fsyncs0 = st->fsyncs;
    /* The disk is busy with one fsync while 64 proposals arrive. */
    l->gate.hold = 1;
    propose(l, &a[0], 1000);
    run_for(&g.loop, 50);
    for (i = 1; i < 64; i++)
        propose(l, &a[i], 1000 + i);
    run_for(&g.loop, 50);
    gate_release(&l->gate);
    while (!all) {
        all = 1;
        for (i = 0; i < 64 && all; i++)
            if (!a[i].done) {
                all = 0;
                CHECK_MSG(run_until(&g.loop, &a[i].done, 5000), "append %u never done", i);
            }
    }
    for (i = 0; i < 64; i++)
        CHECK_EQ(a[i].status, 0);
    test_log("64 appends: %llu writes, %llu fsyncs",
             (unsigned long long)(st->append_writes - writes0),
             (unsigned long long)(st->fsyncs - fsyncs0));
    CHECK_EQ(st->appends - appends0, 64);
    CHECK_MSG(st->append_writes - writes0 <= 3, "%llu writes for 64 appends",
              (unsigned long long)(st->append_writes - writes0));
    CHECK_EQ(l->fsm.applied, 65);
    group_close(&g);
}
