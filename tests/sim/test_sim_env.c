/*
 * The simulator env itself: ordering, replay, and that each fault does what it says.
 */
#include <stdio.h>
#include <string.h>

#include "petrel/common.h"
#include "sim.h"
#include "test.h"

/* ---- timers ----------------------------------------------------------------------------------- */

struct order {
    int seen[16];
    int n;
    uint64_t at[16];
    struct sim *s;
};

struct tick {
    struct order *o;
    int tag;
};

static void record(void *ctx)
{
    struct tick *t = ctx;
    t->o->at[t->o->n] = sim_now(t->o->s);
    t->o->seen[t->o->n++] = t->tag;
}

TEST(sim_timers_order_and_cancel)
{
    struct sim_faults f;
    struct sim *s;
    struct pt_env *e;
    struct order o = {0};
    struct tick t[5];
    uint64_t id[5];
    int i;
    sim_faults_none(&f);
    s = sim_new(1, &f);
    o.s = s;
    e = sim_proc_env(sim_proc_add(s, "p"));
    for (i = 0; i < 5; i++) {
        t[i].o = &o;
        t[i].tag = i;
    }
    id[0] = pt_env_timer(e, 30, record, &t[0]);
    id[1] = pt_env_timer(e, 10, record, &t[1]);
    id[2] = pt_env_timer(e, 10, record, &t[2]); /* same time: after 1 (sequence) */
    id[3] = pt_env_timer(e, 20, record, &t[3]);
    id[4] = pt_env_timer(e, 0, record, &t[4]);
    for (i = 1; i < 5; i++)
        CHECK(id[i] != id[i - 1] && id[i] != 0);
    pt_env_cancel(e, id[3]);
    CHECK_EQ(o.n, 0); /* nothing runs inside the call */
    sim_run_until(s, 100);
    CHECK_EQ(o.n, 4);
    CHECK_EQ(o.seen[0], 4);
    CHECK_EQ(o.seen[1], 1);
    CHECK_EQ(o.seen[2], 2);
    CHECK_EQ(o.seen[3], 0);
    CHECK_EQ(o.at[3], 30);
    CHECK_EQ(pt_env_now(e), 100);
    sim_free(s);
}

/* ---- replay -------------------------------------------------------------------------------- */

struct pinger {
    struct pt_env *e;
    const char *peer;
    int got;
};

static void ping_recv(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct pinger *p = ctx;
    uint8_t buf[64];
    p->got++;
    if (len > sizeof(buf)) return;
    memcpy(buf, msg, len);
    if (len) buf[0]++;
    pt_env_send(p->e, p->peer, buf, len);
}

static void ping_tick(void *ctx)
{
    struct pinger *p = ctx;
    uint8_t msg[16];
    uint64_t r = pt_env_random(p->e);
    memcpy(msg, &r, 8);
    memset(msg + 8, 7, 8);
    pt_env_send(p->e, p->peer, msg, sizeof(msg));
    pt_env_timer(p->e, 50, ping_tick, p);
}

static uint64_t ping_run(uint64_t seed, struct sim_stats *st)
{
    struct sim_faults f;
    struct sim *s;
    struct pinger a, b;
    uint64_t h;
    sim_faults_default(&f);
    f.crash_ppm = 0; /* nobody restarts these */
    s = sim_new(seed, &f);
    a.e = sim_proc_env(sim_proc_add(s, "a"));
    b.e = sim_proc_env(sim_proc_add(s, "b"));
    a.peer = "b";
    b.peer = "a";
    a.got = b.got = 0;
    CHECK_OK(pt_env_listen(a.e, "a", ping_recv, &a));
    CHECK_OK(pt_env_listen(b.e, "b", ping_recv, &b));
    CHECK_EQ(pt_env_listen(b.e, "a", ping_recv, &b), -PT_EADDRINUSE);
    pt_env_timer(a.e, 1, ping_tick, &a);
    sim_run_until(s, 20000);
    h = sim_trace_hash(s);
    *st = *sim_stats(s);
    sim_free(s);
    return h;
}

TEST(sim_same_seed_same_trace)
{
    struct sim_stats s1, s2, s3;
    uint64_t seed = test_seed();
    uint64_t h1 = ping_run(seed, &s1), h2 = ping_run(seed, &s2), h3 = ping_run(seed + 1, &s3);
    test_log("seed %llu: hash %016llx, %llu events, %llu msgs", (unsigned long long)seed,
             (unsigned long long)h1, (unsigned long long)s1.events,
             (unsigned long long)s1.msgs_delivered);
    CHECK(h1 == h2);
    CHECK(memcmp(&s1, &s2, sizeof(s1)) == 0);
    CHECK(h1 != h3);
    CHECK(s1.msgs_delivered > 100);
    CHECK(s1.msgs_lost > 0 && s1.msgs_dup > 0 && s1.msgs_corrupt > 0);
}

/* ---- network faults ------------------------------------------------------------------------- */

struct inbox {
    int n;
    uint8_t last[32];
    size_t last_len;
    char from[PT_ENV_ADDR_MAX];
    uint64_t at[64];
    struct sim *s;
};

static void inbox_recv(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct inbox *in = ctx;
    if (in->n < 64) in->at[in->n] = sim_now(in->s);
    in->n++;
    in->last_len = len < 32 ? len : 32;
    memcpy(in->last, msg, in->last_len);
    snprintf(in->from, sizeof(in->from), "%s", from);
}

static struct sim *net_setup(struct sim_faults *f, struct pt_env **a, struct pt_env **b,
                             struct inbox *in, int a_listens)
{
    struct sim *s = sim_new(test_seed(), f);
    memset(in, 0, sizeof(*in));
    in->s = s;
    *a = sim_proc_env(sim_proc_add(s, "a"));
    *b = sim_proc_env(sim_proc_add(s, "b"));
    CHECK_OK(pt_env_listen(*b, "b", inbox_recv, in));
    if (a_listens) CHECK_OK(pt_env_listen(*a, "a", inbox_recv, in));
    return s;
}

TEST(sim_net_delay_loss_dup)
{
    struct sim_faults f;
    struct pt_env *a, *b;
    struct inbox in;
    struct sim *s;
    int i;
    const uint8_t msg[4] = {1, 2, 3, 4};
    sim_faults_none(&f);
    f.delay_min_ms = 40;
    f.delay_max_ms = 40;
    s = net_setup(&f, &a, &b, &in, 0);
    pt_env_send(a, "b", msg, 4);
    sim_run_until(s, 39);
    CHECK_EQ(in.n, 0);
    sim_run_until(s, 40);
    CHECK_EQ(in.n, 1);
    CHECK(memcmp(in.last, msg, 4) == 0);
    CHECK_EQ(strcmp(in.from, ""), 0); /* a listens nowhere: anonymous */
    sim_free(s);

    sim_faults_none(&f);
    f.loss_ppm = SIM_PPM / 2;
    s = net_setup(&f, &a, &b, &in, 1);
    for (i = 0; i < 1000; i++)
        pt_env_send(a, "b", msg, 4);
    sim_run_until(s, 10);
    CHECK_MSG(in.n > 400 && in.n < 600, "%d of 1000 delivered at 50%% loss", in.n);
    CHECK_EQ(strcmp(in.from, "a"), 0);
    sim_free(s);

    sim_faults_none(&f);
    f.dup_ppm = SIM_PPM;
    s = net_setup(&f, &a, &b, &in, 0);
    for (i = 0; i < 10; i++)
        pt_env_send(a, "b", msg, 4);
    sim_run_until(s, 10);
    CHECK_EQ(in.n, 20);
    sim_free(s);
}

TEST(sim_net_corrupt_reorder)
{
    struct sim_faults f;
    struct pt_env *a, *b;
    struct inbox in;
    struct sim *s;
    int i, changed = 0, late = 0;
    uint8_t msg[8] = {0};
    sim_faults_none(&f);
    f.corrupt_ppm = SIM_PPM;
    s = net_setup(&f, &a, &b, &in, 0);
    for (i = 0; i < 20; i++) {
        pt_env_send(a, "b", msg, sizeof(msg));
        sim_run_until(s, sim_now(s) + 5);
        if (memcmp(in.last, msg, sizeof(msg)) != 0) changed++;
    }
    CHECK_EQ(changed, 20);
    sim_free(s);

    sim_faults_none(&f);
    f.reorder_ppm = SIM_PPM / 2;
    f.reorder_max_ms = 1000;
    s = net_setup(&f, &a, &b, &in, 0);
    for (i = 0; i < 64; i++) {
        msg[0] = (uint8_t)i;
        pt_env_send(a, "b", msg, sizeof(msg));
    }
    sim_run_until(s, 2000);
    CHECK_EQ(in.n, 64);
    for (i = 0; i < 64; i++)
        if (in.at[i] > 50) late++;
    CHECK(late > 10); /* sent together, many arrive much later: order is not kept */
    sim_free(s);
}

TEST(sim_net_partitions)
{
    struct sim_faults f;
    struct pt_env *a, *b;
    struct inbox in;
    struct sim *s;
    const uint8_t msg[1] = {9};
    sim_faults_none(&f);
    s = net_setup(&f, &a, &b, &in, 1);
    sim_block(s, sim_env_proc(a), sim_env_proc(b), 1); /* one-way: a -> b cut */
    pt_env_send(a, "b", msg, 1);
    pt_env_send(b, "a", msg, 1);
    sim_run_until(s, 10);
    CHECK_EQ(in.n, 1);
    CHECK_EQ(strcmp(in.from, "b"), 0);
    CHECK_EQ(sim_stats(s)->msgs_blocked, 1);
    sim_heal(s);
    pt_env_send(a, "b", msg, 1);
    sim_run_until(s, 20);
    CHECK_EQ(in.n, 2);
    sim_free(s);

    /* scheduled partitions (all kinds) happen and heal */
    sim_faults_none(&f);
    f.partition_ppm = SIM_PPM / 2;
    f.partition_max_ms = 500;
    s = net_setup(&f, &a, &b, &in, 1);
    sim_run_until(s, 20000);
    CHECK(sim_stats(s)->partitions > 10);
    sim_set_faults(s, &(struct sim_faults){.delay_min_ms = 1, .delay_max_ms = 1});
    sim_run_until(s, 25000); /* every partition ends within its length (flaps: < 5 s) */
    in.n = 0;
    pt_env_send(a, "b", msg, 1);
    pt_env_send(b, "a", msg, 1);
    sim_run_until(s, 25010);
    CHECK_EQ(in.n, 2);
    sim_free(s);
}

/* ---- disk ----------------------------------------------------------------------------------- */

struct sync_result {
    int done, status;
};

static void sync_done(void *ctx, int status)
{
    struct sync_result *r = ctx;
    r->done++;
    r->status = status;
}

static int fsync_now(struct sim *s, struct pt_env *e, int fd)
{
    struct sync_result r = {0, 0};
    pt_env_fsync(e, fd, sync_done, &r);
    CHECK_EQ(r.done, 0); /* never inside the call */
    sim_run_until(s, sim_now(s) + 10);
    CHECK_EQ(r.done, 1);
    return r.status;
}

static int64_t read_file(struct pt_env *e, const char *path, char *buf, size_t cap)
{
    int fd = pt_env_open(e, path, PT_ENV_RDONLY);
    int64_t n;
    if (fd < 0) return fd;
    n = pt_env_pread(e, fd, buf, cap, 0);
    pt_env_close(e, fd);
    return n;
}

TEST(sim_disk_volatile_until_fsync)
{
    struct sim_faults f;
    struct sim *s;
    struct sim_proc *p;
    struct pt_env *e;
    char buf[64], names[64];
    int fd;
    sim_faults_none(&f);
    s = sim_new(test_seed(), &f);
    p = sim_proc_add(s, "p");
    e = sim_proc_env(p);
    CHECK_OK(pt_env_mkdir(e, "d"));
    CHECK_OK(pt_env_fsync_dir(e, ""));
    /* a: data synced, entry synced; b: data synced, entry not; c: entry synced, data not */
    fd = pt_env_open(e, "d/a", PT_ENV_RDWR | PT_ENV_CREAT);
    CHECK(fd >= 0);
    CHECK_OK(pt_env_pwrite(e, fd, "alpha", 5, 0));
    CHECK_OK(fsync_now(s, e, fd));
    CHECK_OK(pt_env_pwrite(e, fd, "ALPHA-unsynced", 14, 0));
    pt_env_close(e, fd);
    fd = pt_env_open(e, "d/c", PT_ENV_RDWR | PT_ENV_CREAT);
    CHECK_OK(pt_env_fsync_dir(e, "d"));
    CHECK_OK(pt_env_pwrite(e, fd, "gamma", 5, 0));
    pt_env_close(e, fd);
    fd = pt_env_open(e, "d/b", PT_ENV_RDWR | PT_ENV_CREAT);
    CHECK_OK(pt_env_pwrite(e, fd, "beta", 4, 0));
    CHECK_OK(fsync_now(s, e, fd));
    CHECK_EQ(pt_env_open(e, "d/b", PT_ENV_RDWR | PT_ENV_CREAT | PT_ENV_EXCL), -PT_EEXIST);
    CHECK_EQ(pt_env_list(e, "d", names, sizeof(names)), 3);
    CHECK_EQ(read_file(e, "d/a", buf, sizeof(buf)), 14);
    sim_proc_crash(p);
    CHECK_EQ(pt_env_open(e, "d/a", PT_ENV_RDONLY), -PT_EIO); /* down */
    sim_proc_restart(p);
    e = sim_proc_env(p);
    CHECK_EQ(pt_env_list(e, "d", names, sizeof(names)), 2);
    CHECK_EQ(strcmp(names, "a"), 0);
    CHECK_EQ(strcmp(names + 2, "c"), 0);
    CHECK_EQ(read_file(e, "d/a", buf, sizeof(buf)), 5);
    CHECK(memcmp(buf, "alpha", 5) == 0);
    CHECK_EQ(read_file(e, "d/c", buf, sizeof(buf)), 0);
    CHECK_EQ(read_file(e, "d/b", buf, sizeof(buf)), -PT_ENOENT);
    /* rename is volatile too until fsync_dir */
    CHECK_OK(pt_env_rename(e, "d/a", "d/z"));
    CHECK_EQ(read_file(e, "d/a", buf, sizeof(buf)), -PT_ENOENT);
    sim_proc_crash(p);
    sim_proc_restart(p);
    e = sim_proc_env(p);
    CHECK_EQ(read_file(e, "d/a", buf, sizeof(buf)), 5);
    CHECK_OK(pt_env_rename(e, "d/a", "d/z"));
    CHECK_OK(pt_env_fsync_dir(e, "d"));
    sim_proc_crash(p);
    sim_proc_restart(p);
    e = sim_proc_env(p);
    CHECK_EQ(read_file(e, "d/z", buf, sizeof(buf)), 5);
    CHECK_EQ(pt_env_open(e, "../x", PT_ENV_RDWR | PT_ENV_CREAT), -PT_EINVAL);
    CHECK_EQ(pt_env_open(e, "nodir/x", PT_ENV_RDWR | PT_ENV_CREAT), -PT_ENOENT);
    sim_free(s);
}

TEST(sim_disk_torn_write_at_crash)
{
    struct sim_faults f;
    int run, mixed = 0;
    static uint8_t buf[8 * SIM_SECTOR], old[8 * SIM_SECTOR], new_[8 * SIM_SECTOR];
    memset(old, 'o', sizeof(old));
    memset(new_, 'n', sizeof(new_));
    sim_faults_none(&f);
    f.torn_ppm = SIM_PPM;
    for (run = 0; run < 8; run++) {
        struct sim *s = sim_new(test_seed() + (uint64_t)run, &f);
        struct sim_proc *p = sim_proc_add(s, "p");
        struct pt_env *e = sim_proc_env(p);
        int fd = pt_env_open(e, "f", PT_ENV_RDWR | PT_ENV_CREAT), sec, n_old = 0, n_new = 0;
        CHECK_OK(pt_env_fsync_dir(e, ""));
        CHECK_OK(pt_env_pwrite(e, fd, old, sizeof(old), 0));
        CHECK_OK(fsync_now(s, e, fd));
        CHECK_OK(pt_env_pwrite(e, fd, new_, sizeof(new_), 0));
        sim_proc_crash(p);
        sim_proc_restart(p);
    e = sim_proc_env(p);
        CHECK_EQ(read_file(e, "f", (char *)buf, sizeof(buf)), (int64_t)sizeof(buf));
        for (sec = 0; sec < 8; sec++) {
            /* a sector is old or new as a whole, never a mix */
            CHECK(memcmp(buf + sec * SIM_SECTOR, old, SIM_SECTOR) == 0 ||
                  memcmp(buf + sec * SIM_SECTOR, new_, SIM_SECTOR) == 0);
            if (buf[sec * SIM_SECTOR] == 'o') n_old++;
            else n_new++;
        }
        if (n_old && n_new) mixed++;
        CHECK_EQ(sim_stats(s)->torn_files, 1);
        sim_free(s);
    }
    CHECK(mixed > 0);
}

TEST(sim_disk_fsync_fails_and_io_errors)
{
    struct sim_faults f;
    struct sim *s;
    struct sim_proc *p;
    struct pt_env *e;
    char buf[16];
    int fd;
    sim_faults_none(&f);
    f.fsync_fail_ppm = SIM_PPM;
    s = sim_new(test_seed(), &f);
    p = sim_proc_add(s, "p");
    e = sim_proc_env(p);
    fd = pt_env_open(e, "f", PT_ENV_RDWR | PT_ENV_CREAT);
    CHECK_EQ(pt_env_fsync_dir(e, ""), -PT_EIO);
    sim_set_faults(s, &(struct sim_faults){.delay_min_ms = 1, .delay_max_ms = 1});
    CHECK_OK(pt_env_fsync_dir(e, ""));
    sim_set_faults(s, &f);
    CHECK_OK(pt_env_pwrite(e, fd, "data", 4, 0));
    CHECK_EQ(fsync_now(s, e, fd), -PT_EIO);
    sim_proc_crash(p);
    sim_proc_restart(p);
    e = sim_proc_env(p);
    CHECK_EQ(read_file(e, "f", buf, sizeof(buf)), 0); /* a failed fsync made nothing durable */

    sim_faults_none(&f);
    f.write_eio_ppm = SIM_PPM;
    sim_set_faults(s, &f);
    fd = pt_env_open(e, "f", PT_ENV_RDWR);
    CHECK_EQ(pt_env_pwrite(e, fd, "x", 1, 0), -PT_EIO);
    sim_faults_none(&f);
    f.write_enospc_ppm = SIM_PPM;
    sim_set_faults(s, &f);
    CHECK_EQ(pt_env_pwrite(e, fd, "x", 1, 0), -PT_ENOSPC);
    sim_faults_none(&f);
    f.read_eio_ppm = SIM_PPM;
    sim_set_faults(s, &f);
    CHECK_EQ(pt_env_pread(e, fd, buf, 1, 0), -PT_EIO);
    CHECK(sim_stats(s)->io_errors >= 3);
    /* a process the profile spares (a client) gets a clean disk */
    sim_proc_set_faultable(p, 0, 0, 0);
    CHECK_EQ(pt_env_pread(e, fd, buf, 1, 0), 0);
    CHECK_EQ(pt_env_pread(e, 99, buf, 1, 0), -PT_EBADF);
    sim_free(s);
}

TEST(sim_disk_stale_after_crash)
{
    struct sim_faults f;
    struct sim *s;
    struct sim_proc *p;
    struct pt_env *e;
    char buf[16];
    int fd;
    sim_faults_none(&f);
    f.stale_ppm = SIM_PPM;
    s = sim_new(test_seed(), &f);
    p = sim_proc_add(s, "p");
    e = sim_proc_env(p);
    fd = pt_env_open(e, "f", PT_ENV_RDWR | PT_ENV_CREAT);
    CHECK_OK(pt_env_fsync_dir(e, ""));
    CHECK_OK(pt_env_pwrite(e, fd, "version1", 8, 0));
    CHECK_OK(fsync_now(s, e, fd));
    CHECK_OK(pt_env_pwrite(e, fd, "VERSION2", 8, 0));
    CHECK_OK(fsync_now(s, e, fd));
    sim_proc_crash(p);
    sim_proc_restart(p);
    e = sim_proc_env(p);
    CHECK_EQ(read_file(e, "f", buf, sizeof(buf)), 8);
    CHECK(memcmp(buf, "version1", 8) == 0);
    CHECK_EQ(sim_stats(s)->stale_files, 1);
    sim_free(s);
}

/* ---- processes ------------------------------------------------------------------------------ */

struct life {
    int fired, stops, starts;
};

static void life_fire(void *ctx) { ((struct life *)ctx)->fired++; }
static void life_stop(void *ctx) { ((struct life *)ctx)->stops++; }
static void life_start(void *ctx) { ((struct life *)ctx)->starts++; }

TEST(sim_crash_pause_clock)
{
    struct sim_faults f;
    struct sim *s;
    struct sim_proc *p;
    struct pt_env *e;
    struct life l = {0, 0, 0};
    struct sim_proc_hooks h = {life_stop, life_start, &l};
    struct order o = {0};
    struct tick t = {&o, 1};
    uint64_t wall;
    struct sync_result r = {0, 0};
    int fd;
    sim_faults_none(&f);
    s = sim_new(test_seed(), &f);
    o.s = s;
    p = sim_proc_add(s, "p");
    e = sim_proc_env(p);
    sim_proc_set_hooks(p, &h);
    /* a crash kills the incarnation: its sends vanish, its disk calls fail; its timers and
     * fsync completions still run (so its code can free itself) but nothing became durable */
    pt_env_timer(e, 10, life_fire, &l);
    fd = pt_env_open(e, "f", PT_ENV_RDWR | PT_ENV_CREAT);
    CHECK_OK(pt_env_pwrite(e, fd, "x", 1, 0));
    pt_env_fsync(e, fd, sync_done, &r);
    sim_proc_crash(p);
    CHECK_EQ(l.stops, 1);
    CHECK_EQ(pt_env_pwrite(e, fd, "y", 1, 0), -PT_EIO);
    CHECK_EQ(pt_env_listen(e, "again", NULL, NULL), -PT_EIO);
    sim_run_until(s, 100);
    CHECK_EQ(l.fired, 1);
    CHECK_EQ(r.done, 1); /* completes (the dead code may free itself), made nothing durable */
    CHECK_EQ(pt_env_send(e, "nobody", (const uint8_t *)"x", 1), 0);
    sim_proc_restart(p);
    CHECK_EQ(l.starts, 1);
    CHECK(sim_proc_up(p));
    CHECK(sim_proc_env(p) != e); /* a new incarnation, a new env */
    CHECK_EQ(pt_env_pwrite(e, fd, "y", 1, 0), -PT_EIO); /* the old one stays dead */
    e = sim_proc_env(p);
    CHECK_EQ(pt_env_open(e, "f", PT_ENV_RDONLY), -PT_ENOENT); /* never made durable */
    /* a pause delays the process's events until it ends */
    pt_env_timer(e, 10, record, &t);
    sim_proc_pause(p, 2000);
    sim_run_until(s, 1000);
    CHECK_EQ(o.n, 0);
    sim_run_until(s, 3000);
    CHECK_EQ(o.n, 1);
    CHECK_EQ(o.at[0], 2100);
    /* a clock jump moves the wall clock only */
    wall = pt_env_wall_ms(e);
    sim_proc_clock_jump(p, -50000);
    CHECK_EQ(pt_env_wall_ms(e), wall - 50000);
    CHECK_EQ(pt_env_now(e), 3000);
    /* scheduled crashes restart through the hooks */
    sim_faults_none(&f);
    f.crash_ppm = SIM_PPM;
    f.restart_max_ms = 100;
    sim_set_faults(s, &f);
    sim_run_until(s, 20000);
    CHECK(l.stops > 3);
    CHECK(l.starts >= l.stops - 1);
    sim_free(s);
}
