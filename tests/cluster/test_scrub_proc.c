/*
 * The scrubber and repair on real processes: a registry, one shard, a CDC and 8 block services
 * in 8 failure domains, with mirrored (3 copies) and RS(4,2) files.
 *  - After a clean first pass (nothing rotten, progress in the registry), a byte flipped at a
 *    random place of one block of every span (header, page CRC table, pages; one at a block's
 *    last byte) is found by the scrubber within one further pass of its service — before any
 *    reader met it — and repaired: rebuilt onto a service in a failure domain the span did not
 *    use, swapped in, the queue emptied; the rotten copy is never served.
 *  - A block service killed for good while files are being written: every span returns to its
 *    policy (D + P blocks on D + P live services in distinct domains, each block whole) with no
 *    operator action, and every acknowledged file reads back exactly.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/client/blocks_client.h"
#include "cluster/client/registry_client.h"
#include "cluster/client/router.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/client.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"
#include "proc_cluster.h"
#include "test.h"

#define SERVICES 8
#define MAX_BLOCKS 64

static uint8_t sc_byte(uint64_t seed, uint64_t pos)
{
    uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull ^ pos * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return (uint8_t)x;
}

struct sc_gen {
    uint64_t seed, size, pos;
    int bad;
};

static long sc_gen_read(void *ctx, void *buf, size_t cap)
{
    struct sc_gen *g = ctx;
    size_t n = (size_t)PT_MIN((uint64_t)cap, g->size - g->pos), i;
    for (i = 0; i < n; i++)
        ((uint8_t *)buf)[i] = sc_byte(g->seed, g->pos + i);
    g->pos += n;
    return (long)n;
}

static int sc_check_write(void *ctx, const void *buf, size_t len)
{
    struct sc_gen *g = ctx;
    size_t i;
    for (i = 0; i < len; i++)
        if (((const uint8_t *)buf)[i] != sc_byte(g->seed, g->pos + i)) g->bad = 1;
    g->pos += len;
    return 0;
}

static const struct {
    const char *path;
    uint64_t size;
} sc_files[] = {
    {"/m/a", 300000}, {"/m/b", 5000}, {"/rs/big", (512u << 10) + (300u << 10)}, {"/rs/small", 50000},
};

struct sc_block {
    uint64_t service, block;
    uint32_t crc, size;
};

/* Every (service, block) of every span of a file, into all[base...]; span_first gets the index
 * of each span's first block. Returns how many blocks were added. */
static unsigned sc_blocks(struct pc_cluster *c, struct petrel_client *cl, const char *path,
                          struct sc_block *all, unsigned base, unsigned *span_first,
                          unsigned *nspans)
{
    static uint8_t keep[PT_SHARD_MSG_MAX];
    struct pt_router r;
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    uint64_t id;
    unsigned n, i, k = 0;
    CHECK_OK(petrel_client_resolve(cl, path, &id, NULL));
    pt_router_init(&r, c->registry, 10000, 2000, 1);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_SPANS;
    q.id = id;
    CHECK_OK(pt_router_shard(&r, PT_INODE_SHARD(id), &q, &rep, NULL));
    memcpy(keep, rep.body, rep.body_len);
    pt_cursor_init(&b, keep, rep.body_len);
    (void)pt_dec_u64(&b);
    n = pt_dec_u16(&b);
    for (i = 0; i < n; i++) {
        struct pt_span s;
        unsigned j;
        CHECK_OK(pt_span_decode(&b, &s));
        CHECK_EQ(s.certified, 1);
        span_first[(*nspans)++] = base + k;
        for (j = 0; j < pt_span_block_count(&s); j++) {
            CHECK(base + k < MAX_BLOCKS);
            all[base + k].service = s.blocks[j].service;
            all[base + k].block = s.blocks[j].block;
            all[base + k].crc = s.blocks[j].crc;
            all[base + k].size = s.block_size;
            k++;
        }
    }
    pt_reply_free(&rep);
    return k;
}

/* The registry's view of every block service (sorted by id). */
static size_t sc_services(struct pc_cluster *c, struct pt_reg_blocks **v)
{
    struct pt_call_opts opts = {5000, 1, 0};
    size_t n;
    CHECK_OK(pt_reg_list_blocks(c->registry, v, &n, &opts));
    return n;
}

static const struct pt_reg_blocks *sc_find(const struct pt_reg_blocks *v, size_t n, uint64_t id)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (v[i].id == id) return &v[i];
    test_fail(__FILE__, __LINE__, "block service %llx is not registered", (unsigned long long)id);
}

static unsigned sc_dir_of(struct pc_cluster *c, uint64_t id)
{
    unsigned b;
    for (b = 0; b < SERVICES; b++) {
        char path[700];
        uint8_t rec[16];
        FILE *f;
        snprintf(path, sizeof(path), "%s/blocks-%u/service.id", c->root, b);
        f = fopen(path, "rb");
        if (!f) continue;
        if (fread(rec, 1, sizeof(rec), f) == sizeof(rec) && pt_get_le64(rec + 4) == id) {
            fclose(f);
            return b;
        }
        fclose(f);
    }
    test_fail(__FILE__, __LINE__, "no block service %llx", (unsigned long long)id);
}

/* Flip one byte of a stored block file: at `at`, or at a random place when at < 0 (the last
 * byte when at == -1). Returns where. */
static long sc_flip(struct pc_cluster *c, const struct sc_block *b, long at, struct pt_prng *g)
{
    char path[800];
    uint8_t byte;
    off_t size;
    int fd;
    snprintf(path, sizeof(path), "%s/blocks-%u/blocks/%02x/%016llx.blk", c->root,
             sc_dir_of(c, b->service), (unsigned)(b->block & 0xff), (unsigned long long)b->block);
    fd = open(path, O_RDWR);
    CHECK_MSG(fd >= 0, "no block file %s", path);
    size = lseek(fd, 0, SEEK_END);
    CHECK(size > 32);
    if (at == -1)
        at = (long)size - 1;
    else if (at < 0)
        at = (long)(pt_prng_next(g) % (uint64_t)size);
    CHECK(pread(fd, &byte, 1, at) == 1);
    byte ^= (uint8_t)(1u << (pt_prng_next(g) % 8));
    CHECK(pwrite(fd, &byte, 1, at) == 1);
    close(fd);
    return at;
}

static unsigned sc_queue(struct pc_cluster *c, struct pt_repair_entry *out, unsigned max)
{
    struct pt_router r;
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor body;
    unsigned cnt, i;
    pt_router_init(&r, c->registry, 10000, 2000, 1);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_REPAIR_LIST;
    CHECK_OK(pt_router_shard(&r, 0, &q, &rep, NULL));
    pt_cursor_init(&body, rep.body, rep.body_len);
    cnt = pt_dec_u16(&body);
    CHECK(cnt <= max);
    for (i = 0; i < cnt; i++)
        CHECK_OK(pt_repair_entry_decode(&body, &out[i]));
    pt_reply_free(&rep);
    return cnt;
}


/* All blocks of all files, span by span (span_first[nspans] = total). */
static unsigned sc_all(struct pc_cluster *c, struct petrel_client *cl, unsigned nfiles,
                       struct sc_block *blocks, unsigned *span_first, unsigned *nspans)
{
    unsigned n = 0;
    size_t f;
    *nspans = 0;
    for (f = 0; f < nfiles; f++)
        n += sc_blocks(c, cl, sc_files[f].path, blocks, n, span_first, nspans);
    span_first[*nspans] = n;
    return n;
}

/* Every span at its policy: its blocks on distinct live services (one domain each here), each
 * block whole on its service (read and CRC-checked), none on `dead`. Returns 1 if so. */
static int sc_at_policy(struct pc_cluster *c, const struct sc_block *blocks, const unsigned *first,
                        unsigned nspans, uint64_t dead, int verbose)
{
    struct pt_reg_blocks *v;
    size_t nv = sc_services(c, &v);
    struct pt_call_opts opts = {5000, 1, 0};
    uint8_t *buf = malloc(4u << 20);
    unsigned i, j, k;
    int ok = 1;
    for (i = 0; i < nspans && ok; i++)
        for (j = first[i]; j < first[i + 1] && ok; j++) {
            const struct pt_reg_blocks *s = NULL;
            uint32_t got = 0;
            for (k = first[i]; k < j; k++)
                if (blocks[k].service == blocks[j].service) ok = 0;
            for (k = 0; k < nv; k++)
                if (v[k].id == blocks[j].service) s = &v[k];
            if (!ok || !s || s->stale || blocks[j].service == dead) {
                if (verbose) printf("span %u: block %u not at policy\n", i, j - first[i]);
                ok = 0;
                break;
            }
            if (pt_blocks_read(s->addr, blocks[j].block, 0, 4u << 20, buf, &got, NULL, &opts) != 0 ||
                got != blocks[j].size || petrel_crc32c(0, buf, got) != blocks[j].crc) {
                if (verbose) printf("span %u: block %u not whole\n", i, j - first[i]);
                ok = 0;
            }
        }
    free(buf);
    free(v);
    return ok;
}

static void sc_read_all(struct petrel_client *cl, unsigned nfiles)
{
    size_t f;
    for (f = 0; f < nfiles; f++) {
        struct sc_gen k = {f, sc_files[f].size, 0, 0};
        uint64_t got = 0;
        int rc = petrel_client_read(cl, sc_files[f].path, 0, UINT64_MAX, sc_check_write, &k, &got);
        CHECK_MSG(rc == 0, "reading %s: %s", sc_files[f].path, petrel_strerror(rc));
        CHECK_MSG(!k.bad, "%s: a wrong byte", sc_files[f].path);
        CHECK_EQ(got, sc_files[f].size);
    }
}

static struct petrel_client *sc_setup(struct pc_cluster *c)
{
    struct petrel_client *cl;
    struct petrel_client_config cfg;
    struct petrel_policy mirror = {.copies = 3, .data = 0, .parity = 0},
                         rs = {.copies = 2,
                               .data = 4,
                               .parity = 2,
                               .rs_threshold = 8192,
                               .block_size = 128u << 10};
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = c->registry;
    cfg.retry_budget_ms = 30000;
    cfg.attempt_timeout_ms = 1000;
    cfg.seed = test_seed();
    CHECK_OK(petrel_client_open(&cl, &cfg));
    CHECK_OK(petrel_client_mkdir(cl, "/m"));
    CHECK_OK(petrel_client_mkdir(cl, "/rs"));
    CHECK_OK(petrel_client_set_policy(cl, "/m", &mirror));
    CHECK_OK(petrel_client_set_policy(cl, "/rs", &rs));
    return cl;
}

static void sc_write(struct petrel_client *cl, size_t f)
{
    struct sc_gen gen = {f, sc_files[f].size, 0, 0};
    int rc = petrel_client_write_file(cl, sc_files[f].path, sc_gen_read, &gen, NULL);
    CHECK_MSG(rc == 0, "writing %s: %s", sc_files[f].path, petrel_strerror(rc));
}

TEST_T(scrub_finds_and_repair_rebuilds_every_flipped_byte, 300)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct sc_block blocks[MAX_BLOCKS], flipped[16];
    unsigned span_first[33], nspans = 0, nblocks, nflipped = 0, i, left;
    uint64_t passes_at_flip[16], start;
    int detected[16];
    struct pt_reg_blocks *v;
    struct pt_prng g;
    size_t nv, f;

    pt_prng_seed(&g, test_seed());
    pc_start_scrub(&c, 1, 1, SERVICES, 1, "64", NULL);
    cl = sc_setup(&c);
    for (f = 0; f < PT_ARRAY_SIZE(sc_files); f++)
        sc_write(cl, f);
    nblocks = sc_all(&c, cl, PT_ARRAY_SIZE(sc_files), blocks, span_first, &nspans);
    CHECK(nspans >= 4 && nblocks > 0);

    /* A clean pass everywhere after the writes: nothing rotten, progress in the registry. */
    start = pc_now_ms();
    for (;;) {
        size_t done = 0;
        nv = sc_services(&c, &v);
        CHECK_EQ(nv, SERVICES);
        for (f = 0; f < nv; f++) {
            CHECK_EQ(v[f].scrub_rotten, 0);
            done += v[f].scrub_passes >= 2 && v[f].scrub_checked >= v[f].blocks;
        }
        free(v);
        if (done == nv) break;
        CHECK_MSG(pc_now_ms() - start < PC_WAIT_MS, "the scrubbers did not finish a pass");
        usleep(50000);
    }

    /* One random block of every span gets a flipped byte at a random place; the first at its
     * very last byte (the last page). Each service's pass count at that moment is noted. */
    nv = sc_services(&c, &v);
    for (i = 0; i < nspans; i++) {
        unsigned width = span_first[i + 1] - span_first[i];
        struct sc_block *b = &blocks[span_first[i] + pt_prng_next(&g) % width];
        long at = sc_flip(&c, b, i == 0 ? -1 : -2, &g);
        struct pt_block_info info;
        struct pt_call_opts opts = {5000, 1, 0};
        CHECK_OK(pt_blocks_info(sc_find(v, nv, b->service)->addr, &info, &opts));
        passes_at_flip[nflipped] = info.scrub_passes;
        detected[nflipped] = 0;
        flipped[nflipped++] = *b;
        printf("scrub: flipped byte %ld of block %016llx on service %016llx\n", at,
               (unsigned long long)b->block, (unsigned long long)b->service);
    }

    /* Each flip is detected (queued as corrupt, or already swapped out of its span) within one
     * further pass of its service: the pass under way at the flip may have passed the block,
     * the next one may not; its report leaves at the next heartbeat. */
    start = pc_now_ms();
    for (left = nflipped; left;) {
        struct pt_repair_entry q[64];
        unsigned nq = sc_queue(&c, q, 64), j, n2, f2[33];
        struct sc_block now[MAX_BLOCKS];
        n2 = sc_all(&c, cl, PT_ARRAY_SIZE(sc_files), now, f2, &j);
        for (i = 0; i < nflipped; i++) {
            int queued = 0, listed = 0;
            if (detected[i]) continue;
            for (j = 0; j < nq; j++)
                queued |= q[j].service == flipped[i].service && q[j].block == flipped[i].block &&
                          q[j].reason == PT_BAD_CORRUPT;
            for (j = 0; j < n2; j++)
                listed |= now[j].service == flipped[i].service && now[j].block == flipped[i].block;
            if (queued || !listed) {
                struct pt_block_info info;
                struct pt_call_opts opts = {5000, 1, 0};
                CHECK_OK(pt_blocks_info(sc_find(v, nv, flipped[i].service)->addr, &info, &opts));
                CHECK_MSG(info.scrub_passes <= passes_at_flip[i] + 2,
                          "block %016llx found only after %llu passes",
                          (unsigned long long)flipped[i].block,
                          (unsigned long long)(info.scrub_passes - passes_at_flip[i]));
                CHECK(info.scrub_rotten >= 1);
                detected[i] = 1;
                left--;
            }
        }
        CHECK_MSG(pc_now_ms() - start < PC_WAIT_MS, "only %u of %u flips were found",
                  nflipped - left, nflipped);
        if (left) usleep(20000);
    }

    /* Repaired: the queue empties, every span at its policy again (the rebuilt copies whole on
     * services in domains the spans did not use), exact reads; the rotten copies never
     * served. */
    start = pc_now_ms();
    for (;;) {
        struct pt_repair_entry q[64];
        unsigned nq = sc_queue(&c, q, 64);
        nblocks = sc_all(&c, cl, PT_ARRAY_SIZE(sc_files), blocks, span_first, &nspans);
        if (nq == 0 && sc_at_policy(&c, blocks, span_first, nspans, 0, 0)) break;
        CHECK_MSG(pc_now_ms() - start < PC_WAIT_MS, "repair did not finish: %u queued", nq);
        usleep(100000);
    }
    for (i = 0; i < nflipped; i++) {
        struct pt_call_opts opts = {5000, 1, 0};
        uint8_t *whole = malloc(1u << 20);
        unsigned j;
        int rc;
        for (j = 0; j < nblocks; j++)
            CHECK_MSG(!(blocks[j].service == flipped[i].service &&
                        blocks[j].block == flipped[i].block),
                      "a span still lists rotten block %016llx", (unsigned long long)flipped[i].block);
        rc = pt_blocks_read(sc_find(v, nv, flipped[i].service)->addr, flipped[i].block, 0, 1u << 20,
                            whole, NULL, NULL, &opts);
        free(whole);
        CHECK_MSG(rc == -PT_ECORRUPT, "a rotten block was served: %s", petrel_strerror(rc));
    }
    free(v);
    sc_read_all(cl, PT_ARRAY_SIZE(sc_files));
    printf("scrub: %u flips in %u spans found by the scrubbers, repaired in %llu ms\n", nflipped,
           nspans, (unsigned long long)(pc_now_ms() - start));
    petrel_client_close(cl);
    pc_stop(&c);
}

TEST_T(repair_returns_every_span_to_policy_after_a_service_dies, 300)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct sc_block blocks[MAX_BLOCKS];
    unsigned span_first[33], nspans = 0, nblocks;
    uint64_t dead = 0, start;
    size_t f;
    pc_start_scrub(&c, 1, 1, SERVICES, 1, "0", "2");
    cl = sc_setup(&c);
    /* write load: the service dies between the files and is still listed fresh for a while,
     * so the next writes meet it and go around it */
    for (f = 0; f < PT_ARRAY_SIZE(sc_files); f++) {
        sc_write(cl, f);
        if (f == 1) {
            nblocks = sc_all(&c, cl, 2, blocks, span_first, &nspans);
            dead = blocks[0].service; /* holds a copy of /m/a */
            {
                char name[16];
                snprintf(name, sizeof(name), "blocks-%u", sc_dir_of(&c, dead));
                pc_kill(&c, name, SIGKILL);
            }
        }
    }
    start = pc_now_ms();
    for (;;) {
        nblocks = sc_all(&c, cl, PT_ARRAY_SIZE(sc_files), blocks, span_first, &nspans);
        if (sc_at_policy(&c, blocks, span_first, nspans, dead, 0)) break;
        CHECK_MSG(pc_now_ms() - start < PC_WAIT_MS, "spans did not return to policy");
        usleep(200000);
    }
    sc_read_all(cl, PT_ARRAY_SIZE(sc_files));
    printf("repair: %u spans (%u blocks) back to policy %llu ms after a service died\n", nspans,
           nblocks, (unsigned long long)(pc_now_ms() - start));
    petrel_client_close(cl);
    pc_stop(&c);
}

/* Every span's blocks in distinct failure domains on live services (the registry's view). */
static int sc_domains_at_policy(struct pc_cluster *c, const struct sc_block *blocks,
                                const unsigned *first, unsigned nspans)
{
    struct pt_reg_blocks *v;
    size_t nv = sc_services(c, &v);
    unsigned i, j, k;
    int ok = 1;
    for (i = 0; i < nspans && ok; i++)
        for (j = first[i]; j < first[i + 1] && ok; j++)
            for (k = first[i]; k < j && ok; k++)
                ok = strcmp(sc_find(v, nv, blocks[j].service)->failure_domain,
                            sc_find(v, nv, blocks[k].service)->failure_domain) != 0;
    free(v);
    return ok;
}

/*
 * A block service restarts in another failure domain, one that already holds a copy of some
 * span (a rack merged into another): those spans are below their failure-domain policy, and
 * the shard leader's repair moves a copy of each to a domain the span does not use, with no
 * operator action; every file reads back exact.
 */
TEST_T(repair_moves_copies_out_of_a_shared_failure_domain, 300)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct sc_block blocks[MAX_BLOCKS];
    unsigned span_first[33], nspans = 0, a, b, i;
    uint64_t start;
    char from[16], to[16];
    size_t f;
    pc_start_scrub(&c, 1, 1, SERVICES, 1, "0", "600");
    cl = sc_setup(&c);
    for (f = 0; f < 2; f++) /* the mirrored files: 3 copies in 3 domains */
        sc_write(cl, f);
    sc_all(&c, cl, 2, blocks, span_first, &nspans);
    CHECK(sc_domains_at_policy(&c, blocks, span_first, nspans));
    a = sc_dir_of(&c, blocks[0].service);
    b = sc_dir_of(&c, blocks[1].service);
    /* blocks-a comes back in blocks-b's rack */
    snprintf(from, sizeof(from), "blocks-%u", a);
    pc_kill(&c, from, SIGKILL);
    for (i = 0; i < c.nprocs; i++)
        if (strcmp(c.procs[i].name, from) == 0) {
            char *p = c.procs[i].argv_buf;
            snprintf(to, sizeof(to), "rack%u", a);
            while (*p && strcmp(p, to) != 0)
                p += strlen(p) + 1;
            CHECK(*p);
            CHECK_EQ(strlen(to), strlen(p));
            snprintf(to, sizeof(to), "rack%u", b);
            memcpy(p, to, strlen(to));
        }
    pc_restart_one(&c, from);
    start = pc_now_ms();
    /* first the registry lists the service in its new rack (the span below policy) */
    for (;;) {
        struct pt_reg_blocks *v;
        size_t nv = sc_services(&c, &v);
        int moved = strcmp(sc_find(v, nv, blocks[0].service)->failure_domain, to) == 0;
        free(v);
        if (moved) break;
        CHECK_MSG(pc_now_ms() - start < PC_WAIT_MS, "the registry never saw the new domain");
        usleep(50000);
    }
    for (;;) {
        sc_all(&c, cl, 2, blocks, span_first, &nspans);
        if (sc_domains_at_policy(&c, blocks, span_first, nspans) &&
            sc_at_policy(&c, blocks, span_first, nspans, 0, 0))
            break;
        CHECK_MSG(pc_now_ms() - start < PC_WAIT_MS, "spans did not return to their domain policy");
        usleep(200000);
    }
    sc_read_all(cl, 2);
    printf("domains: %u spans back in distinct failure domains %llu ms after a service joined "
           "another's\n",
           nspans, (unsigned long long)(pc_now_ms() - start));
    petrel_client_close(cl);
    pc_stop(&c);
}

/* Run `petrel blocks drain ...` and return its exit status with its last output line. */
static int sc_drain_cli(struct pc_cluster *c, const char *args, char *last, size_t cap)
{
    const char *bin = getenv("PETREL_BIN");
    char cmd[1024], line[512];
    FILE *p;
    int st;
    snprintf(cmd, sizeof(cmd), "%s blocks drain %s --registry %s 2>&1",
             bin && *bin ? bin : "build/petrel", args, c->registry);
    p = popen(cmd, "r");
    CHECK(p != NULL);
    last[0] = 0;
    while (fgets(line, sizeof(line), p))
        snprintf(last, cap, "%s", line);
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST_T(drain_moves_every_block_off_a_live_service, 300)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct sc_block blocks[MAX_BLOCKS];
    unsigned span_first[33], nspans = 0, nblocks, j, on = 0;
    char arg[64], last[512];
    uint64_t drained;
    size_t f;
    pc_start_scrub(&c, 1, 1, SERVICES, 1, "0", NULL);
    cl = sc_setup(&c);
    for (f = 0; f < PT_ARRAY_SIZE(sc_files); f++)
        sc_write(cl, f);
    nblocks = sc_all(&c, cl, PT_ARRAY_SIZE(sc_files), blocks, span_first, &nspans);
    drained = blocks[span_first[nspans - 1]].service; /* holds a block of an RS span */
    for (j = 0; j < nblocks; j++)
        on += blocks[j].service == drained;
    CHECK(on > 0);
    /* bad input: one clear error each */
    CHECK_EQ(sc_drain_cli(&c, "zz", last, sizeof(last)), 1);
    CHECK_MSG(strstr(last, "bad block service id"), "%s", last);
    snprintf(arg, sizeof(arg), "%016llx --wait", (unsigned long long)drained);
    CHECK_EQ(sc_drain_cli(&c, arg, last, sizeof(last)), 0);
    CHECK_MSG(strstr(last, ": draining, 0 blocks left on 1 shard"), "%s", last);
    nblocks = sc_all(&c, cl, PT_ARRAY_SIZE(sc_files), blocks, span_first, &nspans);
    CHECK(sc_at_policy(&c, blocks, span_first, nspans, drained, 1));
    sc_read_all(cl, PT_ARRAY_SIZE(sc_files));
    snprintf(arg, sizeof(arg), "%016llx --stop", (unsigned long long)drained);
    CHECK_EQ(sc_drain_cli(&c, arg, last, sizeof(last)), 0);
    CHECK_MSG(strstr(last, "not draining, 0 blocks left"), "%s", last);
    printf("drain: %u blocks moved off a live service\n", on);
    petrel_client_close(cl);
    pc_stop(&c);
}

/* One shard's REPAIR_STATUS: totals, and what it says of service `svc` (0: none). */
struct sc_status {
    uint64_t spans, below, queued;
    uint64_t svc_blocks, svc_queued, svc_below;
    uint8_t svc_flags;
    int svc_listed;
};

static void sc_repair_status(struct pc_cluster *c, uint64_t svc, struct sc_status *st)
{
    struct pt_router r;
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    unsigned n, i;
    memset(st, 0, sizeof(*st));
    pt_router_init(&r, c->registry, 10000, 2000, 1);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_REPAIR_STATUS;
    CHECK_OK(pt_router_shard(&r, 0, &q, &rep, NULL));
    pt_cursor_init(&b, rep.body, rep.body_len);
    st->spans = pt_dec_u64(&b);
    st->below = pt_dec_u64(&b);
    st->queued = pt_dec_u64(&b);
    (void)pt_dec_u64(&b); /* repaired */
    (void)pt_dec_u64(&b); /* failed */
    n = pt_dec_u16(&b);
    for (i = 0; i < n; i++) {
        uint64_t id = pt_dec_u64(&b);
        uint8_t flags = pt_dec_u8(&b);
        uint64_t blocks = pt_dec_u64(&b), queued = pt_dec_u64(&b), below = pt_dec_u64(&b);
        if (id != svc) continue;
        st->svc_listed = 1;
        st->svc_flags = flags;
        st->svc_blocks = blocks;
        st->svc_queued = queued;
        st->svc_below = below;
    }
    CHECK(pt_cursor_ok(&b));
    CHECK_EQ(pt_cursor_left(&b), 0);
    pt_reply_free(&rep);
}

/* Blocks the shard's block index still places on `svc` (DRAIN_STATUS). */
static uint64_t sc_blocks_left(struct pc_cluster *c, uint64_t svc)
{
    struct pt_router r;
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    uint64_t left;
    pt_router_init(&r, c->registry, 10000, 2000, 1);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_DRAIN_STATUS;
    q.target = svc;
    CHECK_OK(pt_router_shard(&r, 0, &q, &rep, NULL));
    pt_cursor_init(&b, rep.body, rep.body_len);
    (void)pt_dec_u8(&b);
    left = pt_dec_u64(&b);
    CHECK(pt_cursor_ok(&b));
    pt_reply_free(&rep);
    return left;
}

/* Send a signal to a process of the cluster without waiting for it (SIGSTOP / SIGCONT). */
static void sc_signal(struct pc_cluster *c, const char *name, int sig)
{
    unsigned i;
    for (i = 0; i < c->nprocs; i++)
        if (c->procs[i].pid > 0 && strcmp(c->procs[i].name, name) == 0) {
            CHECK_OK(kill(c->procs[i].pid, sig));
            return;
        }
    test_fail(__FILE__, __LINE__, "no process named %s", name);
}

/* Run `petrel ARGS` and return its exit status; its whole output into out. */
static int sc_cli(const char *args, char *out, size_t cap)
{
    const char *bin = getenv("PETREL_BIN");
    char cmd[1024];
    size_t len = 0, got;
    FILE *p;
    int st;
    snprintf(cmd, sizeof(cmd), "%s %s 2>&1", bin && *bin ? bin : "build/petrel", args);
    p = popen(cmd, "r");
    CHECK(p != NULL);
    while (len + 1 < cap && (got = fread(out + len, 1, cap - 1 - len, p)) > 0)
        len += got;
    out[len] = 0;
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * An operator declares a live block service failed: repair rebuilds every block it holds
 * onto services in domains the spans do not use (nothing else would move them: the service
 * answers, and --repair-stale is off), new spans avoid it, and `cluster status` shows it.
 * Then a hung service (SIGSTOP: stale, not failed) puts its spans below policy in the status,
 * per failure domain, and nothing is repaired for it.
 */
TEST_T(blocks_fail_rebuilds_a_declared_service_and_status_shows_repair, 300)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct sc_block blocks[MAX_BLOCKS];
    unsigned span_first[33], nspans = 0, nblocks, j, on = 0, hung_on = 0;
    static char out[16384];
    char arg[512], name[16];
    struct sc_status st;
    uint64_t victim, hung = 0, start;
    size_t f;
    pc_start_scrub(&c, 1, 1, SERVICES, 1, "0", NULL);
    cl = sc_setup(&c);
    for (f = 0; f < 3; f++)
        sc_write(cl, f);
    nblocks = sc_all(&c, cl, 3, blocks, span_first, &nspans);
    victim = blocks[span_first[nspans - 1]].service; /* holds a block of an RS span */
    for (j = 0; j < nblocks; j++)
        on += blocks[j].service == victim;
    sc_repair_status(&c, victim, &st);
    CHECK_EQ(st.spans, nspans);
    CHECK_EQ(st.below, 0);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.svc_blocks, on);
    CHECK_EQ(st.svc_flags, 0);

    /* bad input: one clear error each, nothing marked */
    CHECK_EQ(sc_cli("blocks fail zz --registry 127.0.0.1:1", out, sizeof(out)), 1);
    CHECK_MSG(strstr(out, "bad block service id 'zz'"), "%s", out);
    CHECK_EQ(sc_cli("blocks fail 1f --registry nocolon", out, sizeof(out)), 1);
    CHECK_MSG(strstr(out, "bad registry address 'nocolon'"), "%s", out);

    snprintf(arg, sizeof(arg), "blocks fail %016llx --registry %s", (unsigned long long)victim,
             c.registry);
    CHECK_EQ(sc_cli(arg, out, sizeof(out)), 0);
    CHECK_MSG(strstr(out, ": failed, "), "%s", out);
    start = pc_now_ms();
    while (sc_blocks_left(&c, victim) != 0) {
        CHECK_MSG(pc_now_ms() - start < PC_WAIT_MS, "the declared service still holds blocks");
        usleep(100000);
    }
    nblocks = sc_all(&c, cl, 3, blocks, span_first, &nspans);
    CHECK(sc_at_policy(&c, blocks, span_first, nspans, victim, 1));
    sc_read_all(cl, 3);
    sc_repair_status(&c, victim, &st);
    CHECK_EQ(st.below, 0);
    CHECK_EQ(st.svc_listed, 1); /* listed for its mark though it holds nothing */
    CHECK_EQ(st.svc_flags, 2);
    CHECK_EQ(st.svc_blocks, 0);

    /* New spans avoid the declared service (it is alive and has room): four RS(4,2) files,
     * 6 of 8 services each (a placement blind to the mark would miss it with odds 1/256). */
    for (f = 0; f < 4; f++) {
        struct sc_gen gen = {100 + f, 50000, 0, 0};
        struct sc_block nb[MAX_BLOCKS];
        unsigned nf[4], ns = 0, k, m;
        snprintf(arg, sizeof(arg), "/rs/new%zu", f);
        CHECK_OK(petrel_client_write_file(cl, arg, sc_gen_read, &gen, NULL));
        m = sc_blocks(&c, cl, arg, nb, 0, nf, &ns);
        CHECK_EQ(m, 6);
        for (k = 0; k < m; k++)
            CHECK_MSG(nb[k].service != victim, "a new block went to the declared service");
    }
    sc_write(cl, 3);
    nblocks = sc_all(&c, cl, PT_ARRAY_SIZE(sc_files), blocks, span_first, &nspans);
    snprintf(arg, sizeof(arg), "cluster status petrel://%s", c.registry);
    CHECK_EQ(sc_cli(arg, out, sizeof(out)), 0);
    CHECK_MSG(strstr(out, "FAILED (declared)") && strstr(out, "(some FAILED)") &&
                  strstr(out, " 0 below policy, 0 queued for repair"),
              "%s", out);

    /* A hung service: stale in the registry, its spans below policy in the status (per
     * domain), not repaired (no --repair-stale, not declared). */
    hung = blocks[0].service;
    sc_repair_status(&c, hung, &st);
    hung_on = (unsigned)st.svc_blocks; /* one block per span on a service */
    CHECK(hung_on >= 1);
    snprintf(name, sizeof(name), "blocks-%u", sc_dir_of(&c, hung));
    sc_signal(&c, name, SIGSTOP);
    start = pc_now_ms();
    for (;;) {
        sc_repair_status(&c, hung, &st);
        if (st.below > 0) break;
        CHECK_MSG(pc_now_ms() - start < PC_WAIT_MS, "the hung service never counted");
        usleep(100000);
    }
    CHECK_EQ(st.below, hung_on);
    CHECK_EQ(st.svc_below, hung_on);
    CHECK_EQ(st.svc_blocks, hung_on);
    snprintf(arg, sizeof(arg), "cluster status petrel://%s", c.registry);
    CHECK_EQ(sc_cli(arg, out, sizeof(out)), 0);
    {
        char want[64];
        snprintf(want, sizeof(want), "repair: 0 queued, %u span%s below policy", hung_on,
                 hung_on == 1 ? "" : "s");
        CHECK_MSG(strstr(out, "(some STALE)") && strstr(out, want), "want '%s' in\n%s", want,
                  out);
    }
    sc_signal(&c, name, SIGCONT);
    start = pc_now_ms();
    for (;;) {
        sc_repair_status(&c, hung, &st);
        if (st.below == 0) break;
        CHECK_MSG(pc_now_ms() - start < PC_WAIT_MS, "the resumed service still counts");
        usleep(100000);
    }
    CHECK_EQ(st.svc_blocks, hung_on); /* nothing moved while it hung */

    snprintf(arg, sizeof(arg), "blocks fail %016llx --stop --registry %s",
             (unsigned long long)victim, c.registry);
    CHECK_EQ(sc_cli(arg, out, sizeof(out)), 0);
    CHECK_MSG(strstr(out, "not failed, 0 blocks left"), "%s", out);
    sc_repair_status(&c, victim, &st);
    CHECK_EQ(st.svc_listed, 0);
    printf("fail: %u blocks rebuilt off a declared service; %u spans below policy while a "
           "service hung\n", on, hung_on);
    petrel_client_close(cl);
    pc_stop(&c);
}

/* Write a block no span lists straight to a service, with a valid certificate (what a repair
 * that crashed before its swap, or a writer whose span was never recorded, leaves). */
static void sc_plant(struct pc_cluster *c, const struct pt_reg_blocks *s, uint64_t block,
                     uint32_t size)
{
    uint8_t secret[PT_REG_SECRET_SIZE], *data = malloc(size);
    struct pt_call_opts opts = {5000, 1, 0};
    uint64_t proof = 0;
    uint32_t crc, i;
    CHECK(data != NULL);
    for (i = 0; i < size; i++)
        data[i] = sc_byte(block, i);
    crc = petrel_crc32c(0, data, size);
    CHECK_OK(pt_reg_block_secret(c->registry, s->id, secret, &opts));
    CHECK_OK(pt_blocks_write(s->addr, block, crc, data, size,
                             pt_block_mac(secret, PT_BLOCK_WRITE_CERT, s->id, block, crc, size),
                             &proof, &opts));
    free(data);
}

/*
 * Orphans: blocks of shard 0 that a service holds and no span lists are erased by the shard
 * leader's sweep once they were seen unlisted for the retention period (3 s here) — never
 * sooner, never a block a span lists, never a block of another shard's id range.
 */
TEST_T(orphan_sweep_erases_unlisted_blocks_after_the_retention, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct sc_block blocks[MAX_BLOCKS];
    struct pt_reg_blocks *v;
    struct pt_call_opts opts = {5000, 1, 0};
    struct pt_block_stat st;
    unsigned span_first[33], nspans = 0, nblocks, j;
    uint64_t orphan = PT_INODE_MAKE(0, 1ull << 40), foreign = PT_INODE_MAKE(1, 1ull << 40);
    uint64_t planted, erased_after = 0;
    size_t nv;
    pc_start_retention(&c, 1, 1, 4, 3);
    cl = pc_client(&c, 30000);
    {
        struct sc_gen gen = {7, 300000, 0, 0};
        CHECK_OK(petrel_client_write_file(cl, "/kept", sc_gen_read, &gen, NULL));
    }
    nblocks = sc_blocks(&c, cl, "/kept", blocks, 0, span_first, &nspans);
    CHECK(nblocks >= 2);
    nv = sc_services(&c, &v);
    CHECK_EQ(nv, 4);
    sc_plant(&c, &v[0], orphan, 8192);
    sc_plant(&c, &v[1], orphan + 1, 4096);
    sc_plant(&c, &v[0], foreign, 4096);
    planted = pc_now_ms();
    for (;;) {
        int a = pt_blocks_stat(v[0].addr, orphan, &st, &opts);
        int b = pt_blocks_stat(v[1].addr, orphan + 1, &st, &opts);
        CHECK_MSG((a == 0 || a == -PT_ENOENT) && (b == 0 || b == -PT_ENOENT), "stat: %s %s",
                  petrel_strerror(a), petrel_strerror(b));
        if (a == -PT_ENOENT && b == -PT_ENOENT) {
            erased_after = pc_now_ms() - planted;
            break;
        }
        CHECK_MSG(pc_now_ms() - planted < PC_WAIT_MS, "orphans not erased (%s, %s)",
                  petrel_strerror(a), petrel_strerror(b));
        usleep(100000);
    }
    CHECK_MSG(erased_after >= 3000, "an orphan was erased %llu ms after it appeared",
              (unsigned long long)erased_after);
    CHECK_OK(pt_blocks_stat(v[0].addr, foreign, &st, &opts)); /* another shard's id: kept */
    for (j = 0; j < nblocks; j++) {
        const struct pt_reg_blocks *s = sc_find(v, nv, blocks[j].service);
        CHECK_MSG(pt_blocks_stat(s->addr, blocks[j].block, &st, &opts) == 0,
                  "block %016llx of a span was erased", (unsigned long long)blocks[j].block);
    }
    {
        struct sc_gen k = {7, 300000, 0, 0};
        uint64_t got = 0;
        CHECK_OK(petrel_client_read(cl, "/kept", 0, UINT64_MAX, sc_check_write, &k, &got));
        CHECK(!k.bad && got == 300000);
    }
    printf("orphans: 2 erased %llu ms after they appeared (retention 3 s)\n",
           (unsigned long long)erased_after);
    free(v);
    petrel_client_close(cl);
    pc_stop(&c);
}
