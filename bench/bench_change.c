/*
 * Files that change (issue 12) on a local deployment (`petrel cluster start` as a child
 * process, data in a temporary directory), driven through the client library. Prints
 *   change append 100B x N OPS/s bytes-written B spans S size Z
 *   change create 100B x N OPS/s                       (baseline: new 100-byte files)
 *   change ratio append/create X
 *   change rewrite SIZE S s                             (baseline: the whole file again)
 *   change overwrite 4KiB SIZE S s bytes-written B spans-before P spans-after Q
 *   change ratio overwrite/rewrite X
 * SIZE is 64 MiB (BENCH_BIG=1: 1 GiB); N is 1000. Bytes are checked after each phase.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cluster/proto/auth.h"
#include "petrel/client.h"
#include "petrel/common.h"

#define APPENDS 1000

struct local {
    char root[64], registry[128];
    pid_t pid;
};

static void local_stop(struct local *l)
{
    char cmd[128];
    if (l->pid > 0) {
        kill(l->pid, SIGTERM);
        waitpid(l->pid, NULL, 0);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", l->root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", l->root);
}

/* `petrel cluster start --dir ROOT/c` in the background; its address from its output. */
static int local_start(struct local *l)
{
    char exe[900], petrel[1024], dir[128], out[128];
    ssize_t n;
    double t0;
    memset(l, 0, sizeof(*l));
    snprintf(l->root, sizeof(l->root), "/tmp/petrel-bench-change-XXXXXX");
    if (!mkdtemp(l->root)) return -1;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    *strrchr(exe, '/') = 0; /* build/bench */
    snprintf(petrel, sizeof(petrel), "%s/../petrel", exe);
    snprintf(dir, sizeof(dir), "%s/c", l->root);
    snprintf(out, sizeof(out), "%s/cluster.out", l->root);
    l->pid = fork();
    if (l->pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(petrel, "petrel", "cluster", "start", "--dir", dir, (char *)NULL);
        _exit(127);
    }
    t0 = bench_now();
    while (bench_now() - t0 < 60) {
        char line[512];
        FILE *f = fopen(out, "r");
        if (f) {
            while (fgets(line, sizeof(line), f)) {
                char *p = strstr(line, "petrel://");
                if (p && sscanf(p + 9, "%127[^/ \n]", l->registry) == 1) {
                    /* the cluster's secret is this process's client key */
                    struct pt_auth_key key;
                    char path[160], err[256];
                    fclose(f);
                    snprintf(path, sizeof(path), "%s/c/secret", l->root);
                    if (pt_auth_key_load(path, &key, err, sizeof(err)) < 0) return -1;
                    pt_auth_set_process(&key, NULL, NULL);
                    return 0;
                }
            }
            fclose(f);
        }
        usleep(50000);
    }
    return -1;
}

static struct petrel_client *client(struct local *l)
{
    struct petrel_client_config cfg;
    struct petrel_client *c = NULL;
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = l->registry;
    cfg.retry_budget_ms = 60000;
    cfg.attempt_timeout_ms = 5000;
    cfg.span_size = 4u << 20;
    cfg.seed = 12;
    if (petrel_client_open(&c, &cfg) != 0) return NULL;
    return c;
}

struct pattern {
    uint64_t size, pos;
};

static uint8_t pattern_byte(uint64_t pos)
{
    uint64_t x = (pos / 8 + 1) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (uint8_t)(x >> (8 * (pos % 8)));
}

static long pattern_read(void *ctx, void *buf, size_t cap)
{
    struct pattern *s = ctx;
    size_t n = (size_t)PT_MIN((uint64_t)cap, s->size - s->pos), i;
    uint8_t *b = buf;
    for (i = 0; i < n; i++)
        b[i] = pattern_byte(s->pos + i);
    s->pos += n;
    return (long)n;
}

struct collect {
    uint8_t *buf;
    size_t len, cap;
};

static int collect_write(void *ctx, const void *buf, size_t len)
{
    struct collect *c = ctx;
    if (len > c->cap - c->len) return -PT_E2BIG;
    memcpy(c->buf + c->len, buf, len);
    c->len += len;
    return 0;
}

/* 100-byte records appended and committed one at a time to one file. */
static void bench_append(struct local *l)
{
    struct petrel_client *c = client(l);
    struct pattern none = {0, 0};
    struct petrel_stat st;
    uint8_t rec[100];
    uint64_t written = 0, id;
    double t0, t1, appends, creates;
    unsigned i;
    int rc = c ? petrel_client_write_file(c, "/log", pattern_read, &none, NULL) : -1;
    if (rc == 0) rc = petrel_client_stat(c, "/log", &st);
    id = st.id;
    t0 = bench_now();
    for (i = 0; rc == 0 && i < APPENDS; i++) {
        struct petrel_change *ch;
        memset(rec, 'a' + (int)(i % 26), sizeof(rec));
        if ((rc = petrel_change_open(c, id, 0, NULL, &ch)) != 0) break;
        rc = petrel_change_write(ch, petrel_change_size(ch), rec, sizeof(rec));
        if (rc == 0) rc = petrel_change_commit(ch, NULL);
        written += petrel_change_uploaded(ch);
        petrel_change_close(ch);
    }
    t1 = bench_now();
    if (rc == 0) rc = petrel_client_stat(c, "/log", &st);
    if (rc == 0) { /* every record where it belongs */
        struct collect col = {malloc(APPENDS * 100), 0, APPENDS * 100};
        rc = col.buf ? petrel_client_read(c, "/log", 0, UINT64_MAX, collect_write, &col, NULL)
                     : -PT_ENOMEM;
        for (i = 0; rc == 0 && i < APPENDS; i++)
            if (col.buf[i * 100] != 'a' + (int)(i % 26) || col.buf[i * 100 + 99] != col.buf[i * 100])
                rc = -PT_ECORRUPT;
        free(col.buf);
    }
    if (rc) {
        printf("change error append: %s\n", petrel_strerror(rc));
        petrel_client_close(c);
        return;
    }
    appends = APPENDS / (t1 - t0);
    printf("change append 100B x %u %.0f ops/s bytes-written %llu spans %u size %llu\n", APPENDS,
           appends, (unsigned long long)written, st.spans, (unsigned long long)st.size);
    t0 = bench_now();
    for (i = 0; rc == 0 && i < APPENDS; i++) {
        char path[32];
        struct pattern p = {100, 0};
        snprintf(path, sizeof(path), "/new-%u", i);
        rc = petrel_client_write_file(c, path, pattern_read, &p, NULL);
    }
    t1 = bench_now();
    creates = APPENDS / (t1 - t0);
    printf("change create 100B x %u %.0f ops/s\n", APPENDS, creates);
    printf("change ratio append/create %.2f\n", appends / creates);
    petrel_client_close(c);
}

/* 4 KiB overwritten in the middle of a big file, against writing the whole file again. */
static void bench_overwrite(struct local *l, uint64_t size)
{
    struct petrel_client *c = client(l);
    struct pattern p = {size, 0};
    struct petrel_change *ch = NULL;
    struct petrel_stat before, after;
    uint8_t page[4096];
    uint64_t at = size / 2 + 12345, written = 0;
    double t0, t1, rewrite, overwrite;
    int rc = c ? petrel_client_write_file(c, "/big", pattern_read, &p, NULL) : -1;
    if (rc == 0) rc = petrel_client_stat(c, "/big", &before);
    p.pos = 0;
    t0 = bench_now();
    if (rc == 0) rc = petrel_client_replace_file(c, "/big", before.id, pattern_read, &p, NULL);
    t1 = bench_now();
    rewrite = t1 - t0;
    if (rc == 0) rc = petrel_client_stat(c, "/big", &before);
    memset(page, 0xEE, sizeof(page));
    t0 = bench_now();
    if (rc == 0) rc = petrel_change_open(c, before.id, 0, NULL, &ch);
    if (rc == 0) rc = petrel_change_write(ch, at, page, sizeof(page));
    if (rc == 0) rc = petrel_change_commit(ch, NULL);
    t1 = bench_now();
    overwrite = t1 - t0;
    if (ch) written = petrel_change_uploaded(ch);
    petrel_change_close(ch);
    if (rc == 0) rc = petrel_client_stat(c, "/big", &after);
    if (rc == 0) { /* the page and its neighbours */
        uint8_t buf[3 * 4096];
        struct collect col = {buf, 0, sizeof(buf)};
        unsigned i;
        rc = petrel_client_read(c, "/big", at - 4096, sizeof(buf), collect_write, &col, NULL);
        for (i = 0; rc == 0 && i < sizeof(buf); i++) {
            uint64_t pos = at - 4096 + i;
            uint8_t want = pos >= at && pos < at + 4096 ? 0xEE : pattern_byte(pos);
            if (buf[i] != want) rc = -PT_ECORRUPT;
        }
    }
    petrel_client_close(c);
    if (rc) {
        printf("change error overwrite: %s\n", petrel_strerror(rc));
        return;
    }
    printf("change rewrite %llu %.3f s\n", (unsigned long long)size, rewrite);
    printf("change overwrite 4KiB %llu %.3f s bytes-written %llu spans-before %u spans-after %u\n",
           (unsigned long long)size, overwrite, (unsigned long long)written, before.spans,
           after.spans);
    printf("change ratio overwrite/rewrite %.4f\n", overwrite / rewrite);
}

BENCH(change)
{
    struct local l;
    const char *big = getenv("BENCH_BIG");
    uint64_t size = big && atoi(big) ? 1ull << 30 : 64ull << 20;
    if (local_start(&l) != 0) {
        printf("change error the local cluster did not start (logs in %s)\n", l.root);
        local_stop(&l);
        return;
    }
    bench_append(&l);
    bench_overwrite(&l, size);
    local_stop(&l);
}
