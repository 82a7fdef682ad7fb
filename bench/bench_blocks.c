/*
 * Block service throughput over loopback: an in-process registry and one block service (each
 * on its own loop thread) in a temporary directory, driven by the blocking client. Prints
 *   blocks write SIZE MB/s      (durable: fsync, read-back verify, rename, dir fsync)
 *   blocks read SIZE MB/s       (whole block, page CRCs verified on both ends)
 *   blocks read-4k SIZE ops/s   (one 4 KiB page at random offsets)
 * and the cost of authentication (docs/PROTOCOL.md, "Authentication"), the same servers started
 * without and with a cluster secret in one run:
 *   auth meta-ops plain|sealed OPS/s   (registry LIST_BLOCKS round trips, pooled connection)
 *   auth write SIZE plain|sealed MB/s  (durable block writes, as above)
 *   auth ratio meta-ops|write-SIZE R   (sealed / plain; each mode's best of 3 alternated runs)
 *   auth seal SIZE MB/s                (sealing a frame alone: CRC32C + ChaCha20-Poly1305 MAC)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cluster/blocks/blocks.h"
#include "cluster/client/blocks_client.h"
#include "cluster/client/registry_client.h"
#include "cluster/net/net.h"
#include "cluster/proto/auth.h"
#include "cluster/registry/registry.h"
#include "petrel/common.h"
#include "petrel/prng.h"

struct loop_thread {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    void (*stop_fn)(void *);
    void *arg;
};

static void on_stop(uv_async_t *a)
{
    struct loop_thread *t = a->data;
    t->stop_fn(t->arg);
    uv_close((uv_handle_t *)&t->stop, NULL);
}

static void *loop_main(void *arg)
{
    uv_run(arg, UV_RUN_DEFAULT);
    return NULL;
}

static void loop_run(struct loop_thread *t, void (*stop_fn)(void *), void *arg)
{
    t->stop_fn = stop_fn;
    t->arg = arg;
    uv_async_init(&t->loop, &t->stop, on_stop);
    t->stop.data = t;
    pthread_create(&t->thread, NULL, loop_main, &t->loop);
}

static void loop_finish(struct loop_thread *t)
{
    uv_async_send(&t->stop);
    pthread_join(t->thread, NULL);
    uv_loop_close(&t->loop);
}

static void stop_registry(void *arg)
{
    pt_registry_server_stop(arg);
}

static void stop_blocks(void *arg)
{
    pt_blocks_server_stop(arg);
}

static void measure(const char *addr, uint64_t id, const uint8_t *secret, const uint8_t *data,
                    uint8_t *back, uint32_t size, uint64_t base, struct pt_prng *g)
{
    struct pt_call_opts opts = {30000, 1, 1};
    uint32_t crc = pt_block_crc(data, size), got;
    int n = (int)(32u * 1024 * 1024 / size), i, failed = 0;
    double t0, t1;
    uint64_t proof;
    if (n < 4) n = 4;
    t0 = bench_now();
    for (i = 0; i < n; i++)
        failed |= pt_blocks_write(
            addr, base + (uint64_t)i, crc, data, size,
            pt_block_mac(secret, PT_BLOCK_WRITE_CERT, id, base + (uint64_t)i, crc, size), &proof,
            &opts);
    t1 = bench_now();
    printf("blocks write %u %.1f\n", size, (double)size * n / (t1 - t0) / 1e6);
    t0 = bench_now();
    for (i = 0; i < n; i++)
        failed |= pt_blocks_read(addr, base + (uint64_t)i, 0, size, back, &got, NULL, &opts);
    t1 = bench_now();
    printf("blocks read %u %.1f\n", size, (double)size * n / (t1 - t0) / 1e6);
    t0 = bench_now();
    for (i = 0; i < 2000; i++) {
        uint32_t off = (uint32_t)pt_prng_below(g, size / 4096) * 4096;
        failed |=
            pt_blocks_read(addr, base + (uint64_t)(i % n), off, 4096, back, &got, NULL, &opts);
    }
    t1 = bench_now();
    printf("blocks read-4k %u %.0f\n", size, 2000 / (t1 - t0));
    if (failed) printf("blocks error %u some calls failed\n", size);
}

BENCH(blocks)
{
    static const uint32_t sizes[] = {64 * 1024, 1024 * 1024, 8 * 1024 * 1024};
    char root[] = "/tmp/petrel-bench-blocks-XXXXXX", regdir[128], bdir[128], cmd[256];
    const char *dirs[1] = {bdir};
    struct pt_registry_server_config rcfg;
    struct pt_blocks_server_config bcfg;
    struct pt_registry_server *reg;
    struct pt_blocks_server *blocks;
    struct loop_thread rt, bt;
    struct pt_call_opts opts = {5000, 1, 1};
    struct pt_prng g;
    uint8_t secret[16], *data = malloc(PT_BLOCK_MAX_SIZE), *back = malloc(PT_BLOCK_MAX_SIZE);
    uint64_t id;
    size_t s;

    if (!mkdtemp(root) || !data || !back) return;
    snprintf(regdir, sizeof(regdir), "%s/reg", root);
    snprintf(bdir, sizeof(bdir), "%s/disk", root);
    memset(&rcfg, 0, sizeof(rcfg));
    rcfg.dir = regdir;
    rcfg.listen = "127.0.0.1:0";
    rcfg.stale_after_ms = 10000;
    uv_loop_init(&rt.loop);
    if (pt_registry_server_start(&rt.loop, &rcfg, &reg) == 0) {
        loop_run(&rt, stop_registry, reg);
        memset(&bcfg, 0, sizeof(bcfg));
        bcfg.registry = pt_registry_server_address(reg);
        bcfg.failure_domain = "bench";
        bcfg.dirs = dirs;
        bcfg.ndirs = 1;
        bcfg.listen = "127.0.0.1:0";
        uv_loop_init(&bt.loop);
        if (pt_blocks_server_start(&bt.loop, &bcfg, &blocks) == 0) {
            loop_run(&bt, stop_blocks, blocks);
            id = pt_blocks_server_id(blocks, 0);
            if (pt_reg_block_secret(bcfg.registry, id, secret, &opts) == 0) {
                pt_prng_seed(&g, 1);
                pt_prng_fill(&g, data, PT_BLOCK_MAX_SIZE);
                for (s = 0; s < PT_ARRAY_SIZE(sizes); s++)
                    measure(pt_blocks_server_address(blocks, 0), id, secret, data, back, sizes[s],
                            (uint64_t)s * 100000 + 1, &g);
            }
            loop_finish(&bt);
            pt_blocks_server_free(blocks);
        }
        loop_finish(&rt);
    }
    free(data);
    free(back);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
}

/* One pass of the authentication benchmark: servers started with the process's keys. */
static void auth_pass(const char *mode, double *meta_ops, double *write_mbs, uint32_t size)
{
    char root[] = "/tmp/petrel-bench-auth-XXXXXX", regdir[128], bdir[128], cmd[256];
    const char *dirs[1] = {bdir};
    struct pt_registry_server_config rcfg;
    struct pt_blocks_server_config bcfg;
    struct pt_registry_server *reg;
    struct pt_blocks_server *blocks;
    struct loop_thread rt, bt;
    struct pt_call_opts opts = {30000, 1, 1};
    struct pt_prng g;
    uint8_t secret[16], *data = malloc(size);
    uint64_t id, proof;
    uint32_t crc;
    int i, n = (int)(64u * 1024 * 1024 / size), failed = 0;
    double t0;

    *meta_ops = *write_mbs = 0;
    if (!mkdtemp(root) || !data) return;
    snprintf(regdir, sizeof(regdir), "%s/reg", root);
    snprintf(bdir, sizeof(bdir), "%s/disk", root);
    memset(&rcfg, 0, sizeof(rcfg));
    rcfg.dir = regdir;
    rcfg.listen = "127.0.0.1:0";
    rcfg.stale_after_ms = 10000;
    pt_call_pool_clear(); /* pooled connections carry the previous pass's key */
    uv_loop_init(&rt.loop);
    if (pt_registry_server_start(&rt.loop, &rcfg, &reg) == 0) {
        loop_run(&rt, stop_registry, reg);
        memset(&bcfg, 0, sizeof(bcfg));
        bcfg.registry = pt_registry_server_address(reg);
        bcfg.failure_domain = "bench";
        bcfg.dirs = dirs;
        bcfg.ndirs = 1;
        bcfg.listen = "127.0.0.1:0";
        uv_loop_init(&bt.loop);
        if (pt_blocks_server_start(&bt.loop, &bcfg, &blocks) == 0) {
            loop_run(&bt, stop_blocks, blocks);
            id = pt_blocks_server_id(blocks, 0);
            if (pt_reg_block_secret(bcfg.registry, id, secret, &opts) == 0) {
                struct pt_reg_blocks *list = NULL;
                size_t nl = 0;
                t0 = bench_now();
                for (i = 0; i < 5000; i++) {
                    failed |= pt_reg_list_blocks(bcfg.registry, &list, &nl, &opts) != 0;
                    free(list);
                    list = NULL;
                }
                *meta_ops = 5000 / (bench_now() - t0);
                pt_prng_seed(&g, 1);
                pt_prng_fill(&g, data, size);
                crc = pt_block_crc(data, size);
                t0 = bench_now();
                for (i = 0; i < n; i++)
                    failed |= pt_blocks_write(
                        pt_blocks_server_address(blocks, 0), (uint64_t)i + 1, crc, data, size,
                        pt_block_mac(secret, PT_BLOCK_WRITE_CERT, id, (uint64_t)i + 1, crc, size),
                        &proof, &opts) != 0;
                *write_mbs = (double)size * n / (bench_now() - t0) / 1e6;
            }
            loop_finish(&bt);
            pt_blocks_server_free(blocks);
        }
        loop_finish(&rt);
    }
    pt_call_pool_clear();
    if (failed) printf("auth error %s some calls failed\n", mode);
    free(data);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
}

BENCH(auth)
{
    static const char secret[] = "the benchmark's cluster secret, 32 bytes or more";
    const uint32_t size = 1024 * 1024;
    struct pt_auth_key key;
    double best[2][2] = {{0, 0}, {0, 0}}, ops, mbs, t0;
    uint8_t hdr[PT_FRAME_HEADER_SIZE], trailer[PT_FRAME_TRAILER_SIZE];
    struct iovec part;
    int round, mode, i;
    petrel_log_set(NULL, NULL, PT_LOG_ERROR); /* the plain pass's "trusted network" warnings */
    pt_auth_key_from_secret(secret, sizeof(secret) - 1, &key);
    /* Alternate the modes and keep each one's best: a shared machine's noise hits both. */
    for (round = 0; round < 3; round++)
        for (mode = 0; mode < 2; mode++) {
            if (mode)
                pt_auth_set_process(&key, &key, NULL);
            else
                pt_auth_set_process(NULL, NULL, NULL);
            auth_pass(mode ? "sealed" : "plain", &ops, &mbs, size);
            if (ops > best[mode][0]) best[mode][0] = ops;
            if (mbs > best[mode][1]) best[mode][1] = mbs;
        }
    pt_auth_set_process(NULL, NULL, NULL);
    for (mode = 0; mode < 2; mode++) {
        printf("auth meta-ops %s %.0f\n", mode ? "sealed" : "plain", best[mode][0]);
        printf("auth write %u %s %.1f\n", size, mode ? "sealed" : "plain", best[mode][1]);
    }
    if (best[0][0] > 0) printf("auth ratio meta-ops %.2f\n", best[1][0] / best[0][0]);
    if (best[0][1] > 0) printf("auth ratio write-%u %.2f\n", size, best[1][1] / best[0][1]);
    /* The MAC alone: sealing a 1 MiB frame (what a sealed write adds on each side). */
    part.iov_base = malloc(size);
    part.iov_len = size;
    if (!part.iov_base) return;
    memset(part.iov_base, 0x5a, size);
    t0 = bench_now();
    for (i = 0; i < 64; i++)
        pt_frame_seal(hdr, trailer, 0, PT_MSG_BLOCK_WRITE, (uint64_t)i, &part, 1, key.key,
                      (uint64_t)i);
    printf("auth seal %u %.0f MB/s\n", size, 64.0 * size / (bench_now() - t0) / 1e6);
    free(part.iov_base);
}
