/*
 * Redundancy on a real local deployment: a registry, one shard and 14 block services (each
 * its own process and failure domain, data in a temporary directory on this machine's disk)
 * started as child processes of build/petrel, driven through the client library. Prints
 *   rs cpu FEATURES                               (the kernel ISA-L dispatches to)
 *   rs encode|decode LAYOUT GB/s cpu-s/GiB        (in memory, one core; decode: P data lost)
 *   rs raw-disk write SIZE MB/s                   (1 MiB writes + fsync to the same disk)
 *   rs write|read LAYOUT SIZE MB/s                (mirror3, RS(4,2), RS(10,4))
 *   rs read-degraded LAYOUT down=N SIZE MB/s      (N block services killed)
 *   rs ratio write|read LAYOUT/mirror3 X
 * SIZE is 64 MiB (BENCH_BIG=1: 1 GiB). Files are pseudo-random and checked on every read.
 * BENCH(repair), on its own deployment of 7 services (RS(4,2) needs 6 domains, and a 7th to
 * rebuild into), SIZE of RS(4,2) files (64 MiB; BENCH_BIG=1: 4 GiB), one service SIGKILLed:
 *   repair lost BYTES of BLOCKS blocks, budget=unlimited|N MB/s
 *   repair back-to-policy SECONDS (from the kill: stale detection, --repair-stale 1, rebuild)
 *   repair rate MB/s rebuilt (the blocks left once the first round's swaps landed, over the
 *                           time from then to the last swap: whole rounds only; none when
 *                           one round rebuilt everything)
 *   repair ratio traffic/budget X  (reads of D survivors + the write, per second, over the
 *                                   budget: at most 1 when the pacing holds)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cluster/client/blocks_client.h"
#include "cluster/client/router.h"
#include "cluster/proto/shard_msgs.h"
#include "cluster/ec/ec.h"
#include "petrel/client.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/prng.h"

#define RS_SERVICES 14

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* In-memory encode and decode throughput of one layout, 1 GiB of data each way. */
static void bench_codec(unsigned d, unsigned p)
{
    const size_t cell = 64u << 10;
    uint8_t *buf = malloc(cell * (d + p)), *out = malloc(cell * p);
    uint8_t *data[PT_EC_DATA_MAX], *par[PT_EC_PARITY_MAX], *src[PT_EC_DATA_MAX],
        *dst[PT_EC_PARITY_MAX];
    unsigned have[PT_EC_DATA_MAX], want[PT_EC_PARITY_MAX], i;
    struct pt_ec ec;
    struct pt_prng g;
    size_t rounds = (1ull << 30) / (cell * d), r;
    double t0, c0, t1, c1;
    if (!buf || !out || pt_ec_init(&ec, d, p) != 0) goto done;
    pt_prng_seed(&g, 3);
    pt_prng_fill(&g, buf, cell * d);
    for (i = 0; i < d; i++)
        data[i] = buf + cell * i;
    for (i = 0; i < p; i++)
        par[i] = buf + cell * (d + i);
    t0 = bench_now();
    c0 = cpu_now();
    for (r = 0; r < rounds; r++)
        pt_ec_encode(&ec, cell, data, par);
    t1 = bench_now();
    c1 = cpu_now();
    printf("rs encode RS(%u,%u) %.2f GB/s %.3f cpu-s/GiB\n", d, p,
           (double)rounds * cell * d / (t1 - t0) / 1e9,
           (c1 - c0) * (1ull << 30) / ((double)rounds * cell * d));
    /* Lose the first P data blocks: rebuild them from the other data and all parity. */
    for (i = 0; i < d; i++) {
        have[i] = i + p;
        src[i] = buf + cell * (i + p);
    }
    for (i = 0; i < p; i++) {
        want[i] = i;
        dst[i] = out + cell * i;
    }
    t0 = bench_now();
    c0 = cpu_now();
    for (r = 0; r < rounds; r++)
        if (pt_ec_decode(&ec, cell, d, have, src, p, want, dst) != 0) break;
    t1 = bench_now();
    c1 = cpu_now();
    if (memcmp(out, buf, cell * p) != 0) printf("rs error decode RS(%u,%u) wrong bytes\n", d, p);
    printf("rs decode RS(%u,%u) %.2f GB/s %.3f cpu-s/GiB\n", d, p,
           (double)rounds * cell * d / (t1 - t0) / 1e9,
           (c1 - c0) * (1ull << 30) / ((double)rounds * cell * d));
done:
    free(buf);
    free(out);
}

/* ---- a local deployment of child processes --------------------------------------------- */

struct deploy {
    char root[64], petrel[1024], registry[64];
    pid_t reg, shard, blocks[RS_SERVICES];
    unsigned services;      /* block services started (<= RS_SERVICES) */
    const char *repair_rate; /* the shard's --repair-rate (NULL: its default) */
};

static pid_t spawn(struct deploy *dp, const char *log, char *const argv[])
{
    char path[256];
    pid_t pid;
    snprintf(path, sizeof(path), "%s/%s.log", dp->root, log);
    pid = fork();
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(dp->petrel, argv);
        _exit(127);
    }
    return pid;
}

static int wait_line(const char *path, const char *key, char *out, size_t cap)
{
    double t0 = bench_now();
    while (bench_now() - t0 < 30) {
        char line[512];
        FILE *f = fopen(path, "r");
        if (f) {
            while (fgets(line, sizeof(line), f)) {
                char *p = strstr(line, key);
                if (p && sscanf(p + strlen(key), "%63s", out) == 1 && cap > 0) {
                    fclose(f);
                    return 0;
                }
            }
            fclose(f);
        }
        usleep(20000);
    }
    return -1;
}

static void deploy_stop(struct deploy *dp)
{
    pid_t all[RS_SERVICES + 2];
    unsigned i, n = 0;
    char cmd[128];
    for (i = 0; i < RS_SERVICES; i++)
        if (dp->blocks[i] > 0) all[n++] = dp->blocks[i];
    if (dp->shard > 0) all[n++] = dp->shard;
    if (dp->reg > 0) all[n++] = dp->reg;
    for (i = 0; i < n; i++)
        kill(all[i], SIGKILL);
    for (i = 0; i < n; i++)
        waitpid(all[i], NULL, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dp->root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dp->root);
}

static int deploy_start(struct deploy *dp, unsigned services, const char *repair_rate)
{
    char dir[128], log[128], dom[32], exe[900];
    ssize_t n;
    unsigned i;
    memset(dp, 0, sizeof(*dp));
    dp->services = services;
    dp->repair_rate = repair_rate;
    snprintf(dp->root, sizeof(dp->root), "/tmp/petrel-bench-rs-XXXXXX");
    if (!mkdtemp(dp->root)) return -1;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    *strrchr(exe, '/') = 0; /* build/bench */
    snprintf(dp->petrel, sizeof(dp->petrel), "%s/../petrel", exe);
    snprintf(dir, sizeof(dir), "%s/registry", dp->root);
    {
        char *argv[] = {"petrel", "registry", "--dir", dir, "--listen", "127.0.0.1:0", NULL};
        dp->reg = spawn(dp, "registry", argv);
    }
    snprintf(log, sizeof(log), "%s/registry.log", dp->root);
    if (wait_line(log, "listening on ", dp->registry, sizeof(dp->registry)) != 0) return -1;
    for (i = 0; i < dp->services; i++) {
        char bdir[128], name[32];
        char *argv[] = {"petrel", "blocks",           "--registry", dp->registry, "--dir",
                        bdir,     "--failure-domain", dom,          NULL};
        snprintf(bdir, sizeof(bdir), "%s/blocks-%u", dp->root, i);
        snprintf(dom, sizeof(dom), "d%u", i);
        snprintf(name, sizeof(name), "blocks-%u", i);
        dp->blocks[i] = spawn(dp, name, argv);
    }
    snprintf(dir, sizeof(dir), "%s/shard", dp->root);
    {
        char *argv[] = {"petrel", "shard",     "--registry", dp->registry, "--shard",
                        "0",      "--replica", "0",          "--replicas", "1",
                        "--dir",  dir,         NULL,         NULL,         NULL,
                        NULL,     NULL};
        if (repair_rate) { /* the repair bench: a lost service is rebuilt 1 s after it is stale */
            argv[12] = "--repair-stale";
            argv[13] = "1";
            argv[14] = "--repair-rate";
            argv[15] = (char *)repair_rate;
        }
        dp->shard = spawn(dp, "shard", argv);
    }
    return 0;
}

/* ---- files ------------------------------------------------------------------------------ */

struct stream {
    uint64_t size, pos;
    int bad;
};

static uint8_t stream_byte(uint64_t pos)
{
    uint64_t x = (pos / 8 + 1) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (uint8_t)(x >> (8 * (pos % 8)));
}

static long stream_read(void *ctx, void *buf, size_t cap)
{
    struct stream *s = ctx;
    size_t n = (size_t)PT_MIN((uint64_t)cap, s->size - s->pos), i;
    uint8_t *b = buf;
    for (i = 0; i < n; i++)
        b[i] = stream_byte(s->pos + i);
    s->pos += n;
    return (long)n;
}

static int stream_check(void *ctx, const void *buf, size_t len)
{
    struct stream *s = ctx;
    const uint8_t *b = buf;
    size_t i;
    /* Spot-check 1 byte in 61: the check must not dominate the measurement. */
    for (i = 0; i < len; i += 61)
        if (b[i] != stream_byte(s->pos + i)) s->bad = 1;
    s->pos += len;
    return 0;
}

static struct petrel_client *client(struct deploy *dp)
{
    struct petrel_client_config cfg;
    struct petrel_client *c = NULL;
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = dp->registry;
    cfg.retry_budget_ms = 60000;
    cfg.attempt_timeout_ms = 5000;
    cfg.span_size = 4u << 20;
    cfg.seed = 11;
    if (petrel_client_open(&c, &cfg) != 0) return NULL;
    return c;
}

static double write_file(struct deploy *dp, const char *path, const struct petrel_policy *p,
                         uint64_t size)
{
    struct petrel_client *c = client(dp);
    struct stream s = {size, 0, 0};
    double t0, t1;
    int rc;
    if (!c) return -1;
    if ((rc = petrel_client_set_policy(c, "/", p)) != 0) {
        printf("rs error set policy: %s\n", petrel_strerror(rc));
        petrel_client_close(c);
        return -1;
    }
    t0 = bench_now();
    rc = petrel_client_write_file(c, path, stream_read, &s, NULL);
    t1 = bench_now();
    petrel_client_close(c);
    if (rc) {
        printf("rs error write %s: %s\n", path, petrel_strerror(rc));
        return -1;
    }
    return (double)size / (t1 - t0) / 1e6;
}

static double read_file(struct deploy *dp, const char *path, uint64_t size)
{
    struct petrel_client *c = client(dp);
    struct stream s = {size, 0, 0};
    uint64_t got = 0;
    double t0, t1;
    int rc;
    if (!c) return -1;
    t0 = bench_now();
    rc = petrel_client_read(c, path, 0, UINT64_MAX, stream_check, &s, &got);
    t1 = bench_now();
    petrel_client_close(c);
    if (rc || got != size || s.bad) {
        printf("rs error read %s: %s%s\n", path, petrel_strerror(rc),
               s.bad ? " (wrong bytes)" : "");
        return -1;
    }
    return (double)size / (t1 - t0) / 1e6;
}

static double raw_disk(struct deploy *dp, uint64_t size)
{
    char path[128];
    uint8_t *buf = malloc(1u << 20);
    uint64_t done = 0;
    double t0, t1;
    int fd;
    snprintf(path, sizeof(path), "%s/raw", dp->root);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || !buf) {
        free(buf);
        return -1;
    }
    memset(buf, 0x5A, 1u << 20);
    t0 = bench_now();
    while (done < size) {
        if (write(fd, buf, 1u << 20) != (ssize_t)(1u << 20)) break;
        if (fdatasync(fd) != 0) break;
        done += 1u << 20;
    }
    t1 = bench_now();
    close(fd);
    unlink(path);
    free(buf);
    return (double)done / (t1 - t0) / 1e6;
}

static int deploy_ready(struct deploy *dp)
{
    double t0 = bench_now();
    while (bench_now() - t0 < 60) {
        struct pt_reg_blocks *v = NULL;
        size_t n = 0, i, live = 0;
        struct pt_call_opts o = {1000, 1, 1};
        if (pt_reg_list_blocks(dp->registry, &v, &n, &o) == 0) {
            for (i = 0; i < n; i++)
                live += !v[i].stale;
            free(v);
        }
        if (live >= dp->services) {
            /* Ready once the shard places a span over every service: it knows them all (the
             * repair bench leaves one out, or its probe could never return to policy after
             * a loss). */
            struct petrel_client *c = client(dp);
            struct petrel_policy p = {2, dp->services - 4 - (dp->repair_rate ? 1u : 0u), 4, 0,
                                      4096};
            struct stream st = {1000, 0, 0};
            int rc = c ? petrel_client_set_policy(c, "/", &p) : -1;
            if (rc == 0) rc = petrel_client_write_file(c, "/probe", stream_read, &st, NULL);
            petrel_client_close(c);
            if (rc == 0) return 0;
        }
        usleep(100000);
    }
    return -1;
}

BENCH(rs)
{
    static const struct {
        const char *name, *path;
        struct petrel_policy p;
    } layouts[] = {
        {"mirror3", "/m3", {3, 0, 0, 0, 0}},
        {"RS(4,2)", "/rs42", {2, 4, 2, 0, 1u << 20}},
        {"RS(10,4)", "/rs104", {2, 10, 4, 0, 1u << 20}},
    };
    struct deploy dp;
    const char *big = getenv("BENCH_BIG");
    uint64_t size = big && atoi(big) ? 1ull << 30 : 64ull << 20;
    double w[3], r[3];
    size_t i;
    printf("rs cpu %s\n", pt_ec_cpu_features());
    bench_codec(4, 2);
    bench_codec(10, 4);
    if (deploy_start(&dp, RS_SERVICES, NULL) != 0 || deploy_ready(&dp) != 0) {
        printf("rs error the local deployment did not start (logs in %s)\n", dp.root);
        return;
    }
    printf("rs raw-disk write %llu %.1f\n", (unsigned long long)size, raw_disk(&dp, size));
    for (i = 0; i < 3; i++) {
        w[i] = write_file(&dp, layouts[i].path, &layouts[i].p, size);
        printf("rs write %s %llu %.1f\n", layouts[i].name, (unsigned long long)size, w[i]);
    }
    for (i = 0; i < 3; i++) {
        r[i] = read_file(&dp, layouts[i].path, size);
        printf("rs read %s %llu %.1f\n", layouts[i].name, (unsigned long long)size, r[i]);
    }
    for (i = 1; i < 3; i++)
        printf("rs ratio write %s/mirror3 %.2f\nrs ratio read %s/mirror3 %.2f\n", layouts[i].name,
               w[i] / w[0], layouts[i].name, r[i] / r[0]);
    /* Degraded: 1 service down, then 2 (P of RS(4,2)), then 4 (P of RS(10,4)). */
    {
        static const unsigned steps[] = {1, 2, 4};
        unsigned down = 0, s;
        for (s = 0; s < PT_ARRAY_SIZE(steps); s++) {
            while (down < steps[s]) {
                kill(dp.blocks[down], SIGKILL);
                waitpid(dp.blocks[down], NULL, 0);
                dp.blocks[down++] = 0;
            }
            if (down <= 2)
                printf("rs read-degraded RS(4,2) down=%u %llu %.1f\n", down,
                       (unsigned long long)size, read_file(&dp, "/rs42", size));
            if (down == 1 || down == 4)
                printf("rs read-degraded RS(10,4) down=%u %llu %.1f\n", down,
                       (unsigned long long)size, read_file(&dp, "/rs104", size));
        }
    }
    deploy_stop(&dp);
}

/* ---- repair ------------------------------------------------------------------------------- */

#define REPAIR_SERVICES 7

/* The shard's REPAIR_STATUS: spans below policy and the blocks on `svc`; 0 or -PT_E*. */
static int repair_status(struct deploy *dp, uint64_t svc, uint64_t *below, uint64_t *on)
{
    struct pt_router r;
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    unsigned n, i;
    int rc;
    pt_router_init(&r, dp->registry, 5000, 2000, 1);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_REPAIR_STATUS;
    if ((rc = pt_router_shard(&r, 0, &q, &rep, NULL)) != 0) return rc;
    pt_cursor_init(&b, rep.body, rep.body_len);
    (void)pt_dec_u64(&b);
    *below = pt_dec_u64(&b);
    (void)pt_dec_u64(&b);
    (void)pt_dec_u64(&b);
    (void)pt_dec_u64(&b);
    n = pt_dec_u16(&b);
    *on = 0;
    for (i = 0; i < n; i++) {
        uint64_t id = pt_dec_u64(&b), blocks;
        (void)pt_dec_u8(&b);
        blocks = pt_dec_u64(&b);
        (void)pt_dec_u64(&b);
        (void)pt_dec_u64(&b);
        if (id == svc) *on = blocks;
    }
    rc = pt_cursor_ok(&b) ? 0 : -PT_EPROTO;
    pt_reply_free(&rep);
    return rc;
}

/* One run: SIZE of RS(4,2) over 7 services, the fullest killed, timed back to policy. */
static void repair_run(uint64_t size, const char *rate_mb)
{
    struct petrel_policy p = {2, 4, 2, 0, 1u << 20};
    struct pt_call_opts o = {2000, 1, 0};
    struct pt_reg_blocks *v = NULL;
    struct deploy dp;
    uint64_t lost = 0, lost_blocks = 0, victim = 0, below = 0, on = 0;
    size_t n = 0, i, k;
    double t_kill, t_first = 0, t_done = 0;
    uint64_t left_first = 0;
    unsigned files = 4;
    if (deploy_start(&dp, REPAIR_SERVICES, rate_mb) != 0 || deploy_ready(&dp) != 0) {
        printf("repair error the local deployment did not start (logs in %s)\n", dp.root);
        deploy_stop(&dp);
        return;
    }
    for (i = 0; i < files; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/f%zu", i);
        if (write_file(&dp, path, &p, size / files) < 0) goto out;
    }
    if (pt_reg_list_blocks(dp.registry, &v, &n, &o) != 0) goto out;
    for (i = 0, k = n; i < n; i++)
        if (k == n || v[i].used > v[k].used) k = i;
    if (k == n || repair_status(&dp, v[k].id, &below, &on) != 0) goto out;
    victim = v[k].id;
    lost_blocks = on;
    {
        /* the service's own count (the registry's lags by a heartbeat) */
        struct pt_block_info info;
        if (pt_blocks_info(v[k].addr, &info, &o) != 0) goto out;
        lost = info.used;
    }
    for (i = 0; i < dp.services; i++) {
        char id_path[160];
        uint8_t rec[16];
        FILE *f;
        snprintf(id_path, sizeof(id_path), "%s/blocks-%zu/service.id", dp.root, i);
        if (!(f = fopen(id_path, "rb"))) continue;
        if (fread(rec, 1, sizeof(rec), f) == sizeof(rec) && pt_get_le64(rec + 4) == victim) {
            kill(dp.blocks[i], SIGKILL);
            waitpid(dp.blocks[i], NULL, 0);
            dp.blocks[i] = 0;
        }
        fclose(f);
    }
    t_kill = bench_now();
    printf("repair lost %llu bytes in %llu blocks, budget=%s%s\n", (unsigned long long)lost,
           (unsigned long long)lost_blocks, rate_mb && strcmp(rate_mb, "0") ? rate_mb : "unlimited",
           rate_mb && strcmp(rate_mb, "0") ? " MB/s" : "");
    while (bench_now() - t_kill < 600) {
        if (repair_status(&dp, victim, &below, &on) == 0) {
            if (on < lost_blocks && t_first == 0) {
                t_first = bench_now(); /* the first round's swaps landed */
                left_first = on;
            }
            if (on == 0 && below == 0) {
                t_done = bench_now();
                break;
            }
        }
        usleep(50000);
    }
    if (t_done == 0) {
        printf("repair error not back to policy within 10 minutes (%llu blocks left)\n",
               (unsigned long long)on);
        goto out;
    }
    printf("repair back-to-policy %.2f\n", t_done - t_kill);
    if (t_done > t_first && left_first > 0) {
        /* the rounds after the first, whole: their blocks over their time */
        double rate = (double)lost * (double)left_first / (double)lost_blocks /
                      (t_done - t_first) / 1e6;
        printf("repair rate %.1f\n", rate);
        if (rate_mb && atof(rate_mb) > 0)
            printf("repair ratio traffic/budget %.2f\n", rate * (p.data + 1) / atof(rate_mb));
    }
    for (i = 0; i < files; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/f%zu", i);
        if (read_file(&dp, path, size / files) < 0) printf("repair error %s after repair\n", path);
    }
out:
    free(v);
    deploy_stop(&dp);
}

BENCH(repair)
{
    const char *big = getenv("BENCH_BIG");
    uint64_t size = big && atoi(big) ? 4ull << 30 : 64ull << 20;
    repair_run(size, "0");
    repair_run(size, "16");
}
