/*
 * The block service's scrubber (blocks_scrub.c) in-process, on a real loop and disk: one pass
 * over blocks of edge sizes finds exactly the blocks damaged anywhere in their file (header,
 * page CRC table, first page, a middle chunk, the very last byte of the last page of a
 * multi-chunk block, a page rewritten with a matching page CRC), counts the others as
 * checked, and the pacing holds the read rate.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cluster/blocks/blocks.h"
#include "cluster/client/blocks_client.h"
#include "cluster/env/env_uv.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"
#include "test.h"

struct scrub_fixture {
    uv_loop_t loop;
    struct pt_env *env;
    struct pt_blocks_service *svc;
    int opened, open_status;
    uint64_t rotten[32];
    int nrotten;
};

static int no_secret(void *ctx, uint8_t secret[PT_REG_SECRET_SIZE])
{
    (void)ctx;
    (void)secret;
    return 0;
}

static void on_rotten(void *ctx, uint64_t block_id)
{
    struct scrub_fixture *f = ctx;
    if (f->nrotten < (int)PT_ARRAY_SIZE(f->rotten)) f->rotten[f->nrotten++] = block_id;
}

static void opened(void *ctx, int status)
{
    struct scrub_fixture *f = ctx;
    f->open_status = status;
    f->opened = 1;
}

static void fixture_open(struct scrub_fixture *f, const char *dir)
{
    char why[256];
    memset(f, 0, sizeof(*f));
    CHECK_OK(uv_loop_init(&f->loop));
    CHECK_OK(pt_env_uv_init(&f->env, &f->loop, dir, why, sizeof(why)));
    f->svc = calloc(1, sizeof(*f->svc));
    CHECK(f->svc);
    f->svc->get_secret = no_secret;
    f->svc->on_rotten = on_rotten;
    f->svc->hook_ctx = f;
    pt_blocks_store_open(f->env, &f->svc->store, opened, f);
    while (!f->opened)
        uv_run(&f->loop, UV_RUN_ONCE);
    CHECK_OK(f->open_status);
    CHECK_OK(pt_blocks_service_init(f->svc));
}

static void env_done(void *ctx)
{
    (void)ctx;
}

static void fixture_close(struct scrub_fixture *f)
{
    pt_blocks_service_close(f->svc);
    pt_env_uv_close(f->env, env_done, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pt_env_uv_free(f->env);
    CHECK_OK(uv_loop_close(&f->loop));
}

/* Run the loop until the scrubber has finished `passes` full passes. */
static void run_passes(struct scrub_fixture *f, uint64_t passes)
{
    while (f->svc->scrub.stats.passes < passes)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void flip(const char *dir, uint64_t id, long at)
{
    char path[1024];
    uint8_t byte;
    int fd;
    snprintf(path, sizeof(path), "%s/blocks/%02x/%016llx.blk", dir, (unsigned)(id & 0xff),
             (unsigned long long)id);
    fd = open(path, O_RDWR);
    CHECK_MSG(fd >= 0, "no block file %s", path);
    if (at < 0) at += (long)lseek(fd, 0, SEEK_END); /* from the end */
    CHECK(pread(fd, &byte, 1, at) == 1);
    byte ^= 0x01;
    CHECK(pwrite(fd, &byte, 1, at) == 1);
    close(fd);
}

/* Rewrite page `page` of a block together with its page CRC: each page still verifies, only
 * the block CRC (which the page CRCs must combine to) shows the change. */
static void lie(const char *dir, uint64_t id, uint32_t page)
{
    char path[1024];
    uint8_t hdr[32], buf[4096], crc[4];
    uint32_t pages;
    int fd;
    snprintf(path, sizeof(path), "%s/blocks/%02x/%016llx.blk", dir, (unsigned)(id & 0xff),
             (unsigned long long)id);
    fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    CHECK(pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
    pages = pt_get_le32(hdr + 24);
    CHECK(pread(fd, buf, sizeof(buf), 32 + 4 * pages + 4096 * page) == (ssize_t)sizeof(buf));
    buf[100] ^= 0xff;
    pt_put_le32(crc, petrel_crc32c(0, buf, sizeof(buf)));
    CHECK(pwrite(fd, buf, sizeof(buf), 32 + 4 * pages + 4096 * page) == (ssize_t)sizeof(buf));
    CHECK(pwrite(fd, crc, 4, 32 + 4 * page) == 4);
    close(fd);
}

static int was_reported(const struct scrub_fixture *f, uint64_t id)
{
    int i, n = 0;
    for (i = 0; i < f->nrotten; i++)
        n += f->rotten[i] == id;
    return n;
}

TEST_T(blocks_scrub_finds_every_damaged_block_in_one_pass, 60)
{
    /* id -> size; ids 10.. are damaged below, 1.. stay whole */
    static const struct {
        uint64_t id;
        uint32_t size;
        long at; /* where to flip a byte (negative: from the end); 0 = whole */
    } blocks[] = {
        {1, 0, 0},          {2, 1, 0},           {3, 4096, 0},          {4, 600000, 0},
        {10, 4096, 5},      /* header: the block id field */
        {11, 600000, 32 + 4 * 140}, /* page CRC table, page 140 (third chunk) */
        {12, 8192, 32 + 8 + 17},    /* first page */
        {13, 600000, 32 + 4 * 147 + 300000}, /* a page in the second chunk */
        {14, 600000, -1},           /* the last byte of the last page */
        {15, 262144 + 1, -1},       /* the last page is one byte, alone in its chunk */
        {16, 12288, 1},             /* a lie: page 1 rewritten with its page CRC (below) */
    };
    struct scrub_fixture f;
    struct pt_blocks_local l;
    const char *dir = test_tmpdir();
    size_t i;
    CHECK_OK(pt_blocks_local_open(dir, &l));
    for (i = 0; i < PT_ARRAY_SIZE(blocks); i++) {
        uint8_t *data = malloc(blocks[i].size + 1);
        struct pt_prng g;
        pt_prng_seed(&g, test_seed() + blocks[i].id);
        pt_prng_fill(&g, data, blocks[i].size);
        CHECK_OK(pt_blocks_local_write(&l, blocks[i].id, pt_block_crc(data, blocks[i].size), data,
                                       blocks[i].size));
        free(data);
    }
    pt_blocks_local_close(&l);

    fixture_open(&f, dir);
    CHECK_EQ(f.svc->count, PT_ARRAY_SIZE(blocks));
    /* A healthy pass: everything checked, nothing rotten. */
    pt_blocks_scrub_start(f.svc, 1ull << 30);
    run_passes(&f, 1);
    CHECK_EQ(f.nrotten, 0);
    CHECK_EQ(f.svc->scrub.stats.blocks_checked, PT_ARRAY_SIZE(blocks));
    CHECK(f.svc->scrub.stats.last_pass_ms > 0);
    for (i = 0; i < PT_ARRAY_SIZE(blocks); i++)
        if (blocks[i].at == 1)
            lie(dir, blocks[i].id, 1);
        else if (blocks[i].at)
            flip(dir, blocks[i].id, blocks[i].at);
    /* The next pass finds exactly the damaged ones, each once. */
    run_passes(&f, 2);
    for (i = 0; i < PT_ARRAY_SIZE(blocks); i++)
        CHECK_MSG(was_reported(&f, blocks[i].id) == (blocks[i].at ? 1 : 0),
                  "block %llu (damage at %ld) reported %d times",
                  (unsigned long long)blocks[i].id, blocks[i].at, was_reported(&f, blocks[i].id));
    CHECK_EQ(f.svc->scrub.stats.rotten, 7);
    CHECK_EQ(f.svc->scrub.stats.blocks_checked, PT_ARRAY_SIZE(blocks) + 4);
    /* Off: no more timers; the loop has nothing left of the scrubber. */
    pt_blocks_scrub_start(f.svc, 0);
    CHECK_EQ(f.svc->scrub.timer, 0);
    fixture_close(&f);
}

/* The pacing: a pass over 8 MiB at 16 MiB/s takes about half a second of loop time. */
TEST_T(blocks_scrub_keeps_to_its_rate, 60)
{
    struct scrub_fixture f;
    struct pt_blocks_local l;
    const char *dir = test_tmpdir();
    uint32_t size = 1u << 20;
    uint8_t *data = calloc(1, size);
    uint64_t i, t0, ms;
    CHECK_OK(pt_blocks_local_open(dir, &l));
    for (i = 0; i < 8; i++) {
        data[0] = (uint8_t)i;
        CHECK_OK(pt_blocks_local_write(&l, 100 + i, pt_block_crc(data, size), data, size));
    }
    pt_blocks_local_close(&l);
    free(data);
    fixture_open(&f, dir);
    t0 = pt_env_now(f.env);
    pt_blocks_scrub_start(f.svc, 16ull << 20);
    run_passes(&f, 1);
    ms = pt_env_now(f.env) - t0;
    printf("scrub: 8 MiB at 16 MiB/s in %llu ms\n", (unsigned long long)ms);
    CHECK_MSG(ms >= 450, "8 MiB at 16 MiB/s took only %llu ms", (unsigned long long)ms);
    CHECK_EQ(f.svc->scrub.stats.blocks_checked, 8);
    CHECK_EQ(f.svc->scrub.stats.bytes_checked, 8ull << 20);
    fixture_close(&f);
}
