/*
 * A block store on a host directory, driven to completion on a private libuv loop (see
 * blocks.h, pt_blocks_local_*): for tests, the fuzzer and host tools that want the store's
 * synchronous view. Servers never use it: they run the store on their own env and loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/blocks/blocks.h"
#include "cluster/env/env_uv.h"
#include "cluster/storage/durable.h"
#include "petrel/common.h"

struct local_wait {
    int done, status;
};

static void local_done(void *ctx, int status)
{
    struct local_wait *w = ctx;
    w->status = status;
    w->done = 1;
}

static int local_run(struct pt_blocks_local *l, struct local_wait *w)
{
    while (!w->done)
        if (uv_run(&l->loop, UV_RUN_ONCE) == 0 && !w->done) return -PT_EIO;
    return w->status;
}

int pt_blocks_local_open(const char *dir, struct pt_blocks_local *out)
{
    struct local_wait w = {0, 0};
    char why[128];
    int err;
    memset(out, 0, sizeof(*out));
    err = pt_mkdir_p(dir);
    if (err) return err;
    out->dir = strdup(dir);
    if (!out->dir) return -PT_ENOMEM;
    if (uv_loop_init(&out->loop) != 0) {
        free(out->dir);
        return -PT_ENOMEM;
    }
    err = pt_env_uv_init(&out->env, &out->loop, dir, why, sizeof(why));
    if (err) {
        uv_loop_close(&out->loop);
        free(out->dir);
        return err;
    }
    pt_blocks_store_open(out->env, &out->store, local_done, &w);
    err = local_run(out, &w);
    if (err) pt_blocks_local_close(out);
    return err;
}

int pt_blocks_local_write(struct pt_blocks_local *l, uint64_t block_id, uint32_t crc,
                          const void *data, uint32_t size)
{
    struct local_wait w = {0, 0};
    pt_blocks_store_write(&l->store, block_id, crc, data, size, local_done, &w);
    return local_run(l, &w);
}

int pt_blocks_local_path(const struct pt_blocks_local *l, uint64_t block_id, char *buf, size_t cap)
{
    char rel[96];
    int n, err = pt_blocks_store_path(&l->store, block_id, rel, sizeof(rel));
    if (err) return err;
    n = snprintf(buf, cap, "%s/%s", l->dir, rel);
    return n < 0 || (size_t)n >= cap ? -PT_ENAMETOOLONG : 0;
}

static void local_closed(void *ctx)
{
    *(int *)ctx = 1;
}

void pt_blocks_local_close(struct pt_blocks_local *l)
{
    int closed = 0;
    if (!l->env) return;
    pt_blocks_store_close(&l->store);
    pt_env_uv_close(l->env, local_closed, &closed);
    while (!closed && uv_run(&l->loop, UV_RUN_ONCE) != 0) {
    }
    uv_run(&l->loop, UV_RUN_DEFAULT);
    pt_env_uv_free(l->env);
    l->env = NULL;
    uv_loop_close(&l->loop);
    free(l->dir);
    l->dir = NULL;
}
