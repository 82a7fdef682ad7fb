/*
 * shard-rss: the resident memory of a shard replica as its store grows (issue 14: under 64 MB
 * with 1,000,000 files). Run by `make bench-shard-rss` (mk/bench-shard-rss.sh), which starts a
 * cluster and sets PETREL_BENCH_REGISTRY ("HOST:PORT"), PETREL_BENCH_CLUSTER_DIR (its --dir)
 * and PETREL_SECRET (its secret file); without the first two it says it was skipped.
 *
 * Creates BENCH_FILES (default 100,000) empty files through the client library, from
 * BENCH_THREADS (default 8) threads with one client each, so that the shard's group commit
 * batches their requests into shared Raft entries; 1,000 files per directory. After every
 * 100,000 files (BENCH_STEP; a fifth of the run below 500,000 files) and at the end prints the
 * time they took and VmRSS of every shard replica
 * of the cluster (found in /proc by their --dir under the cluster directory):
 *   shard-rss files N secs S rate R/s rss-mb A B C ... anon-mb A B C ... peak-mb A B C ...
 * (VmRSS; the part of it that is the process's own memory, RssAnon: the rest is the LMDB
 * map's pages and the binary, shared with the page cache; and VmHWM, the peak VmRSS so far,
 * which catches a snapshot's moment).
 * and at the end `cluster-bench shard-rss MAX MB ratio-to-raw 0` (the largest peak RSS of a
 * replica).
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "cluster/proto/auth.h"
#include "petrel/client.h"
#include "petrel/common.h"

#define RSS_DIR_FILES 1000u
#define RSS_MAX_REPLICAS 16

struct rss_run {
    const char *registry;
    unsigned files, threads;
    pthread_mutex_t lock;
    unsigned next, done, failed;
    int first_error;
};

static long rss_empty(void *ctx, void *buf, size_t cap)
{
    (void)ctx;
    (void)buf;
    (void)cap;
    return 0;
}

static void *rss_worker(void *arg)
{
    struct rss_run *run = arg;
    struct petrel_client_config cfg;
    struct petrel_client *c;
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = run->registry;
    cfg.retry_budget_ms = 120000;
    if (petrel_client_open(&c, &cfg) != 0) return NULL;
    for (;;) {
        char path[64];
        unsigned i;
        int rc;
        pthread_mutex_lock(&run->lock);
        i = run->next < run->files ? run->next++ : run->files;
        pthread_mutex_unlock(&run->lock);
        if (i >= run->files) break;
        snprintf(path, sizeof(path), "/rss/d%u/f%u", i / RSS_DIR_FILES, i % RSS_DIR_FILES);
        rc = petrel_client_write_file(c, path, rss_empty, NULL, NULL);
        pthread_mutex_lock(&run->lock);
        run->done++;
        if (rc && rc != -PT_EEXIST) {
            run->failed++;
            if (!run->first_error) run->first_error = rc;
        }
        pthread_mutex_unlock(&run->lock);
    }
    petrel_client_close(c);
    return NULL;
}

/* VmRSS, RssAnon and VmHWM (MB) of every `petrel shard` process whose --dir lies under cluster_dir.
 */
static unsigned rss_of_replicas(const char *cluster_dir, double *mb, double *anon, double *hwm,
                                unsigned max)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    unsigned n = 0;
    size_t dlen = strlen(cluster_dir);
    if (!d) return 0;
    while ((e = readdir(d)) != NULL && n < max) {
        char path[300], args[4096], line[256];
        size_t len, off;
        int is_shard = 0, mine = 0, argi = 0;
        FILE *f;
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        if (!(f = fopen(path, "rb"))) continue;
        len = fread(args, 1, sizeof(args) - 1, f);
        fclose(f);
        args[len] = 0;
        for (off = 0; off < len; off += strlen(args + off) + 1, argi++) {
            if (argi == 1 && !strcmp(args + off, "shard")) is_shard = 1;
            if (!strncmp(args + off, cluster_dir, dlen)) mine = 1;
        }
        if (!is_shard || !mine) continue;
        snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
        if (!(f = fopen(path, "r"))) continue;
        while (fgets(line, sizeof(line), f)) {
            unsigned long kb;
            if (sscanf(line, "VmHWM: %lu kB", &kb) == 1) hwm[n] = kb / 1024.0;
            if (sscanf(line, "VmRSS: %lu kB", &kb) == 1) mb[n] = kb / 1024.0;
            if (sscanf(line, "RssAnon: %lu kB", &kb) == 1) anon[n] = kb / 1024.0;
            if (sscanf(line, "RssFile: %lu kB", &kb) == 1) {
                n++; /* the last of the three */
                break;
            }
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

static double rss_report(const char *cluster_dir, unsigned files, double secs, double step_secs,
                         unsigned step_files)
{
    double mb[RSS_MAX_REPLICAS], anon[RSS_MAX_REPLICAS], hwm[RSS_MAX_REPLICAS], top = 0;
    unsigned n = rss_of_replicas(cluster_dir, mb, anon, hwm, RSS_MAX_REPLICAS), i;
    printf("shard-rss files %u secs %.1f rate %.0f/s rss-mb", files, secs,
           step_secs > 0 ? step_files / step_secs : 0.0);
    for (i = 0; i < n; i++) {
        printf(" %.1f", mb[i]);
        if (mb[i] > top) top = mb[i];
    }
    printf(" anon-mb");
    for (i = 0; i < n; i++)
        printf(" %.1f", anon[i]);
    printf(" peak-mb");
    for (i = 0; i < n; i++) {
        printf(" %.1f", hwm[i]);
        if (hwm[i] > top) top = hwm[i];
    }
    printf("\n");
    return top;
}

BENCH(shard_rss)
{
    const char *registry = getenv("PETREL_BENCH_REGISTRY");
    const char *cluster_dir = getenv("PETREL_BENCH_CLUSTER_DIR");
    const char *s;
    struct rss_run run;
    pthread_t tids[64];
    struct petrel_client_config cfg;
    struct petrel_client *c;
    unsigned i, reported = 0, dirs, step;
    double t0, last_t, top = 0;
    if (!registry || !cluster_dir) {
        printf("shard-rss: skipped (needs a cluster: make bench-shard-rss)\n");
        return;
    }
    if ((s = getenv("PETREL_SECRET")) != NULL && s[0]) {
        struct pt_auth_key key;
        char err[300];
        if (pt_auth_key_load(s, &key, err, sizeof(err)) != 0) {
            printf("shard-rss: cannot use the %s\n", err);
            return;
        }
        pt_auth_set_process(&key, NULL, NULL);
    }
    memset(&run, 0, sizeof(run));
    run.registry = registry;
    run.files = (s = getenv("BENCH_FILES")) ? (unsigned)strtoul(s, NULL, 10) : 100000u;
    run.threads = (s = getenv("BENCH_THREADS")) ? (unsigned)strtoul(s, NULL, 10) : 8u;
    if (run.threads == 0 || run.threads > 64) run.threads = 8;
    /* a line per 100,000 files; smaller runs get five lines */
    step = (s = getenv("BENCH_STEP")) ? (unsigned)strtoul(s, NULL, 10)
           : run.files >= 500000      ? 100000u
                                      : run.files / 5;
    if (step == 0) step = 1;
    pthread_mutex_init(&run.lock, NULL);
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = registry;
    if (petrel_client_open(&c, &cfg) != 0) {
        printf("shard-rss: cannot open a client on %s\n", registry);
        return;
    }
    dirs = (run.files + RSS_DIR_FILES - 1) / RSS_DIR_FILES;
    (void)petrel_client_mkdir(c, "/rss");
    for (i = 0; i < dirs; i++) {
        char path[32];
        int rc;
        snprintf(path, sizeof(path), "/rss/d%u", i);
        rc = petrel_client_mkdir(c, path);
        if (rc && rc != -PT_EEXIST) {
            printf("shard-rss: mkdir %s: %s\n", path, petrel_strerror(rc));
            petrel_client_close(c);
            return;
        }
    }
    petrel_client_close(c);
    printf("shard-rss: %u files, %u threads, %u directories; before:\n", run.files, run.threads,
           dirs);
    rss_report(cluster_dir, 0, 0, 0, 0);
    t0 = last_t = bench_now();
    for (i = 0; i < run.threads; i++)
        pthread_create(&tids[i], NULL, rss_worker, &run);
    for (;;) {
        unsigned done;
        struct timespec ts = {0, 100 * 1000 * 1000};
        pthread_mutex_lock(&run.lock);
        done = run.done;
        pthread_mutex_unlock(&run.lock);
        if (done >= reported + step || done >= run.files) {
            double now = bench_now(), m;
            m = rss_report(cluster_dir, done, now - t0, now - last_t, done - reported);
            if (m > top) top = m;
            reported = done;
            last_t = now;
            if (done >= run.files) break;
        }
        nanosleep(&ts, NULL);
    }
    for (i = 0; i < run.threads; i++)
        pthread_join(tids[i], NULL);
    if (run.failed)
        printf("shard-rss: %u creates failed, the first with %s\n", run.failed,
               petrel_strerror(run.first_error));
    printf("cluster-bench shard-rss %.1f MB ratio-to-raw 0 (largest replica peak RSS at %u files, "
           "%.0f files/s)\n",
           top, run.files, run.files / (bench_now() - t0));
    pthread_mutex_destroy(&run.lock);
}
