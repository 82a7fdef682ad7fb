/*
 * Files that change (issue 12) on a local deployment (`petrel cluster start` as a child
 * process, data in a temporary directory), driven through the client library. Prints
 *   change append 100B x N OPS/s bytes-written B spans S size Z
 *   change append stored-after-compaction B spans S (waited W s)
 *   change create 100B x N OPS/s                       (baseline: new 100-byte files)
 *   change ratio append/create X
 *   change compact SPANS x 16KiB spans-after S T s stored-before B stored-after B
 *   change overwrite 4KiB SIZE S s bytes-written B spans-before P spans-after Q one-span ok
 *   change rewrite SIZE S s                             (BENCH_REWRITE=1: the whole file again)
 *   change ratio overwrite/rewrite X                    (idem)
 * SIZE is 1 GiB (BENCH_CHANGE_MB=64: 64 MiB); N is 1000. "Stored" is the bytes the live
 * version's spans hold on block services and in the shard (size x copies, inline bytes);
 * the old versions' blocks wait out the retention period. Bytes are checked after each phase.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cluster/client/client_internal.h"
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

static struct petrel_client *client_spans(struct local *l, uint32_t span_size)
{
    struct petrel_client_config cfg;
    struct petrel_client *c = NULL;
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = l->registry;
    cfg.retry_budget_ms = 60000;
    cfg.attempt_timeout_ms = 5000;
    cfg.span_size = span_size;
    cfg.seed = 12;
    if (petrel_client_open(&c, &cfg) != 0) return NULL;
    return c;
}

static struct petrel_client *client(struct local *l)
{
    return client_spans(l, 4u << 20);
}

/* The bytes the live version of file id stores (every span record, SPANS page by page):
 * inline bytes, and block size x blocks of the others; *spans gets the span count. */
static int stored_bytes(struct petrel_client *c, uint64_t id, uint64_t *bytes, unsigned *spans)
{
    struct pt_shard_req q;
    uint64_t pos = 0, last_end = 0;
    int rc = 0, more = 1;
    *bytes = 0;
    *spans = 0;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_SPANS;
    q.id = id;
    while (more && rc == 0) {
        struct pt_reply rep;
        struct pt_cursor b;
        unsigned k, cnt;
        q.offset = pos;
        if ((rc = pt_client_shard_call(c, id, &q, &rep, NULL)) != 0) {
            pt_reply_free(&rep);
            break;
        }
        pt_cursor_init(&b, rep.body, rep.body_len);
        (void)pt_dec_u64(&b);
        cnt = pt_dec_u16(&b);
        for (k = 0; k < cnt && rc == 0; k++) {
            struct pt_span s;
            if (pt_span_decode(&b, &s) != 0) {
                rc = -PT_EPROTO;
                break;
            }
            if (*spans && s.offset < last_end) continue; /* a page starts with the last one */
            last_end = s.offset + s.size;
            (*spans)++;
            *bytes += s.storage == PT_STORAGE_INLINE
                          ? s.inline_len
                          : (uint64_t)s.block_size * pt_span_block_count(&s);
        }
        more = pt_dec_u8(&b);
        if (rc == 0 && !pt_cursor_ok(&b)) rc = -PT_EPROTO;
        pt_reply_free(&rep);
        if (more && last_end <= pos) more = 0;
        pos = last_end;
    }
    return rc;
}

/* Wait (at most `limit` s) until the shard leader's compaction leaves at most `want` spans. */
static double wait_compaction(struct petrel_client *c, const char *path, uint32_t want,
                              double limit)
{
    struct petrel_stat st;
    double t0 = bench_now();
    while (petrel_client_stat(c, path, &st) == 0 && st.spans > want && bench_now() - t0 < limit)
        usleep(20000);
    return bench_now() - t0;
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
    {
        /* Runs of PT_COMPACT_MIN_RUN_DEFAULT (4) small spans or more are merged. */
        double waited = st.spans >= 4 ? wait_compaction(c, "/log", 1, 30) : 0;
        uint64_t stored = 0;
        unsigned spans = 0;
        if ((rc = stored_bytes(c, id, &stored, &spans)) != 0) {
            printf("change error stored: %s\n", petrel_strerror(rc));
            petrel_client_close(c);
            return;
        }
        printf("change append stored-after-compaction %llu spans %u (waited %.1f s)\n",
               (unsigned long long)stored, spans, waited);
    }
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

/* A file written in 64 spans of 16 KiB: how long until the leader's compaction merged them,
 * and what the live version stores before and after. */
static void bench_compact(struct local *l)
{
    struct petrel_client *c = client_spans(l, 16u << 10);
    struct pattern p = {1u << 20, 0};
    struct petrel_stat st;
    uint64_t before = 0, after = 0;
    unsigned spans_before = 0, spans_after = 0;
    double took;
    int rc = c ? petrel_client_write_file(c, "/small", pattern_read, &p, NULL) : -1;
    if (rc == 0) rc = petrel_client_stat(c, "/small", &st);
    if (rc == 0) rc = stored_bytes(c, st.id, &before, &spans_before);
    took = rc == 0 ? wait_compaction(c, "/small", 1, 60) : 0;
    if (rc == 0) rc = stored_bytes(c, st.id, &after, &spans_after);
    if (rc == 0) { /* the bytes are the same */
        struct collect col = {malloc(1u << 20), 0, 1u << 20};
        size_t i;
        rc = col.buf ? petrel_client_read(c, "/small", 0, UINT64_MAX, collect_write, &col, NULL)
                     : -PT_ENOMEM;
        for (i = 0; rc == 0 && i < col.len; i++)
            if (col.buf[i] != pattern_byte(i)) rc = -PT_ECORRUPT;
        if (rc == 0 && col.len != 1u << 20) rc = -PT_ECORRUPT;
        free(col.buf);
    }
    petrel_client_close(c);
    if (rc) {
        printf("change error compact: %s\n", petrel_strerror(rc));
        return;
    }
    printf("change compact %u x 16KiB spans-after %u %.2f s stored-before %llu stored-after %llu\n",
           spans_before, spans_after, took, (unsigned long long)before, (unsigned long long)after);
}

/* 4 KiB overwritten in the middle of a big file (and, BENCH_REWRITE=1, writing the whole
 * file again for comparison). */
static void bench_overwrite(struct local *l, uint64_t size, int rewrite_too)
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
    if (rc == 0 && rewrite_too)
        rc = petrel_client_replace_file(c, "/big", before.id, pattern_read, &p, NULL);
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
    /* At most one span rewritten: no more bytes than one span, no more than one span more. */
    printf("change overwrite 4KiB %llu %.3f s bytes-written %llu spans-before %u spans-after %u "
           "one-span %s\n",
           (unsigned long long)size, overwrite, (unsigned long long)written, before.spans,
           after.spans,
           written <= (4u << 20) && after.spans <= before.spans + 1 ? "ok" : "FAILED");
    if (!rewrite_too) return;
    printf("change rewrite %llu %.3f s\n", (unsigned long long)size, rewrite);
    printf("change ratio overwrite/rewrite %.4f\n", overwrite / rewrite);
}

BENCH(change)
{
    struct local l;
    const char *mb = getenv("BENCH_CHANGE_MB"), *rewrite = getenv("BENCH_REWRITE");
    uint64_t size = (mb && atoi(mb) > 0 ? (uint64_t)atoi(mb) : 1024) << 20;
    if (local_start(&l) != 0) {
        printf("change error the local cluster did not start (logs in %s)\n", l.root);
        local_stop(&l);
        return;
    }
    bench_append(&l);
    bench_compact(&l);
    bench_overwrite(&l, size, rewrite && atoi(rewrite));
    local_stop(&l);
}
