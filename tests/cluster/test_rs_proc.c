/*
 * Reed-Solomon spans on real processes: a registry, one shard and 6 block services in 6
 * failure domains on loopback. Files written RS(4,2) under a directory policy read back
 * exactly with every combination of up to P = 2 lost blocks per span — services stopped
 * (SIGSTOP: slower than the client's timeout), bytes flipped in stored block files, both, and
 * services killed — and P + 1 losses give -PT_EIO, never a wrong byte. Degraded reads queue
 * the bad blocks in the shard's repair queue. A layout wider than the deployment's failure
 * domains is refused.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster/client/router.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/client.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "proc_cluster.h"
#include "test.h"

#define SERVICES 6

static uint8_t rs_byte(uint64_t seed, uint64_t pos)
{
    uint64_t x = seed ^ (pos / 8) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return (uint8_t)(x >> (8 * (pos % 8)));
}

struct rs_gen {
    uint64_t seed, size, pos;
};

static long rs_gen_read(void *ctx, void *buf, size_t cap)
{
    struct rs_gen *g = ctx;
    size_t n = (size_t)PT_MIN((uint64_t)cap, g->size - g->pos), i;
    for (i = 0; i < n; i++)
        ((uint8_t *)buf)[i] = rs_byte(g->seed, g->pos + i);
    g->pos += n;
    return (long)n;
}

struct rs_check {
    uint64_t seed, pos;
    int bad;
};

static int rs_check_write(void *ctx, const void *buf, size_t len)
{
    struct rs_check *k = ctx;
    size_t i;
    for (i = 0; i < len; i++)
        if (((const uint8_t *)buf)[i] != rs_byte(k->seed, k->pos + i)) k->bad = 1;
    k->pos += len;
    return 0;
}

struct rs_file {
    const char *path;
    uint64_t seed, size;
};

/* Two spans of 2-row blocks (128 KiB: 64 KiB cells) and a one-row span (16 KiB cells). */
static const struct rs_file rs_files[] = {
    {"/rs/big", 11, (512u << 10) + (300u << 10)},
    {"/rs/small", 12, 50000},
};

static struct petrel_client *rs_client_seeded(struct pc_cluster *c, uint64_t seed);
static struct petrel_client *rs_client(struct pc_cluster *c)
{
    return rs_client_seeded(c, test_seed() + 7);
}

static struct petrel_client *rs_client_seeded(struct pc_cluster *c, uint64_t seed)
{
    struct petrel_client_config cfg;
    struct petrel_client *cl;
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = c->registry;
    cfg.retry_budget_ms = 30000;
    cfg.attempt_timeout_ms = 200; /* a stopped service is "slow" after this */
    cfg.seed = seed;
    CHECK_OK(petrel_client_open(&cl, &cfg));
    return cl;
}

/* Read a whole file and a range in its middle; 0 when exact, else the error (no wrong byte). */
static int rs_read_all(struct petrel_client *cl, const struct rs_file *f)
{
    struct rs_check k = {f->seed, 0, 0}, m = {f->seed, f->size / 3, 0};
    uint64_t got = 0;
    int rc = petrel_client_read(cl, f->path, 0, UINT64_MAX, rs_check_write, &k, &got);
    CHECK_MSG(!k.bad, "%s: a wrong byte was returned", f->path);
    if (rc) return rc;
    CHECK_EQ(got, f->size);
    rc = petrel_client_read(cl, f->path, f->size / 3, f->size / 3, rs_check_write, &m, &got);
    CHECK_MSG(!m.bad, "%s: a wrong byte was returned in a range", f->path);
    if (rc) return rc;
    CHECK_EQ(got, f->size / 3);
    return 0;
}

/* Flip (or flip back: XOR twice) one data byte in the middle of every block of a service. */
static unsigned rs_flip_service(struct pc_cluster *c, unsigned b)
{
    char sub[800], file[1200];
    unsigned n = 0, i;
    for (i = 0; i < 256; i++) {
        DIR *d;
        struct dirent *e;
        snprintf(sub, sizeof(sub), "%s/blocks-%u/blocks/%02x", c->root, b, i);
        d = opendir(sub);
        if (!d) continue;
        while ((e = readdir(d)) != NULL) {
            uint8_t hdr[32], byte;
            uint32_t size, pages;
            int fd;
            off_t at;
            if (!strstr(e->d_name, ".blk")) continue;
            snprintf(file, sizeof(file), "%s/%s", sub, e->d_name);
            fd = open(file, O_RDWR);
            CHECK(fd >= 0);
            CHECK(pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
            size = pt_get_le32(hdr + 16);
            pages = pt_get_le32(hdr + 24);
            at = (off_t)(32 + 4 * pages + size / 2 + 7);
            CHECK(pread(fd, &byte, 1, at) == 1);
            byte ^= 0x20;
            CHECK(pwrite(fd, &byte, 1, at) == 1);
            close(fd);
            n++;
        }
        closedir(d);
    }
    return n;
}

static pid_t rs_pid(struct pc_cluster *c, unsigned b)
{
    char name[32];
    unsigned i;
    snprintf(name, sizeof(name), "blocks-%u", b);
    for (i = 0; i < c->nprocs; i++)
        if (c->procs[i].pid > 0 && strcmp(c->procs[i].name, name) == 0) return c->procs[i].pid;
    test_fail(__FILE__, __LINE__, "no process %s", name);
}

enum { LOSE_STOP = 1, LOSE_FLIP = 2 };

/* Apply (on = 1) or undo (on = 0) a loss of each service in `lost` with its mode. */
static void rs_lose(struct pc_cluster *c, const unsigned *lost, const int *mode, unsigned n, int on)
{
    unsigned i;
    for (i = 0; i < n; i++) {
        if (mode[i] & LOSE_STOP) kill(rs_pid(c, lost[i]), on ? SIGSTOP : SIGCONT);
        if (mode[i] & LOSE_FLIP) CHECK(rs_flip_service(c, lost[i]) > 0);
    }
}

/* Read every file with these losses: exact for up to P, -PT_EIO beyond. */
static void rs_try(struct pc_cluster *c, const unsigned *lost, const int *mode, unsigned n)
{
    struct petrel_client *cl = rs_client(c);
    size_t f;
    rs_lose(c, lost, mode, n, 1);
    for (f = 0; f < PT_ARRAY_SIZE(rs_files); f++) {
        int rc = rs_read_all(cl, &rs_files[f]);
        if (n <= 2)
            CHECK_MSG(rc == 0, "%s with %u lost (services %u,%u modes %d,%d): %s", rs_files[f].path,
                      n, lost[0], n > 1 ? lost[1] : 0, mode[0], n > 1 ? mode[1] : 0,
                      petrel_strerror(rc));
        else
            CHECK_MSG(rc == -PT_EIO || rc == -PT_ECORRUPT, "%s with %u lost: %s (must be an error)",
                      rs_files[f].path, n, petrel_strerror(rc));
    }
    rs_lose(c, lost, mode, n, 0);
    petrel_client_close(cl);
}

static void rs_setup(struct pc_cluster *c, struct petrel_client *cl)
{
    struct petrel_policy p = {.copies = 2,
                              .data = 4,
                              .parity = 2,
                              .rs_threshold = 8192,
                              .block_size = 128u << 10},
                         got;
    char from[64];
    size_t f;
    CHECK_OK(petrel_client_mkdir(cl, "/rs"));
    CHECK_OK(petrel_client_set_policy(cl, "/rs", &p));
    CHECK_OK(petrel_client_get_policy(cl, "/rs", &got, from, sizeof(from)));
    CHECK_EQ(got.data, 4);
    CHECK_EQ(got.block_size, 128u << 10);
    CHECK(strcmp(from, "/rs") == 0);
    for (f = 0; f < PT_ARRAY_SIZE(rs_files); f++) {
        struct rs_gen g = {rs_files[f].seed, rs_files[f].size, 0};
        uint64_t written = 0;
        int rc = petrel_client_write_file(cl, rs_files[f].path, rs_gen_read, &g, &written);
        CHECK_MSG(rc == 0, "writing %s: %s", rs_files[f].path, petrel_strerror(rc));
        CHECK_EQ(written, rs_files[f].size);
    }
    (void)c;
}

/* The spans of a file as the shard lists them. */
static unsigned rs_spans(struct petrel_client *cl, struct pc_cluster *c, const char *path,
                         struct pt_span *out, uint8_t *keep, size_t keep_cap)
{
    struct pt_router r;
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    uint64_t id;
    unsigned n, i;
    CHECK_OK(petrel_client_resolve(cl, path, &id, NULL));
    pt_router_init(&r, c->registry, 10000, 2000, 1);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_SPANS;
    q.id = id;
    CHECK_OK(pt_router_shard(&r, PT_INODE_SHARD(id), &q, &rep, NULL));
    CHECK(rep.body_len <= keep_cap);
    memcpy(keep, rep.body, rep.body_len);
    pt_cursor_init(&b, keep, rep.body_len);
    (void)pt_dec_u64(&b);
    n = pt_dec_u16(&b);
    for (i = 0; i < n; i++)
        CHECK_OK(pt_span_decode(&b, &out[i]));
    pt_reply_free(&rep);
    return n;
}

/* Which blocks-N directory holds service `id` (its DIR/service.id: magic, u64 id, CRC). */
static unsigned rs_dir_of(struct pc_cluster *c, uint64_t id)
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

/*
 * Make a stored block lie: change bytes of its first page and store the page CRC of the new
 * bytes, so the service serves them as valid (what page CRCs cannot catch). Calling it again
 * with the same `saved` puts the original bytes and CRC back.
 */
static void rs_lie(struct pc_cluster *c, unsigned dir, uint64_t block, uint8_t saved[68], int undo)
{
    char path[800];
    uint8_t hdr[32], page[4096];
    uint32_t size, pages, n;
    int fd;
    snprintf(path, sizeof(path), "%s/blocks-%u/blocks/%02x/%016llx.blk", c->root, dir,
             (unsigned)(block & 0xff), (unsigned long long)block);
    fd = open(path, O_RDWR);
    CHECK_MSG(fd >= 0, "no block file %s", path);
    CHECK(pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
    size = pt_get_le32(hdr + 16);
    pages = pt_get_le32(hdr + 24);
    n = PT_MIN(size, 4096u);
    if (undo) {
        CHECK(pwrite(fd, saved, 4, 32) == 4);
        CHECK(pwrite(fd, saved + 4, 64, 32 + 4 * pages) == 64);
    } else {
        CHECK(pread(fd, saved, 4, 32) == 4);
        CHECK(pread(fd, page, n, 32 + 4 * pages) == (ssize_t)n);
        memcpy(saved + 4, page, 64);
        for (unsigned i = 0; i < 64; i++)
            page[i] ^= 0x55;
        {
            uint8_t crc[4];
            pt_put_le32(crc, petrel_crc32c(0, page, n));
            CHECK(pwrite(fd, crc, 4, 32) == 4);
        }
        CHECK(pwrite(fd, page, 64, 32 + 4 * pages) == 64);
    }
    close(fd);
}

/* The repair queue of shard 0. */
static unsigned rs_queue(struct pc_cluster *c, struct pt_repair_entry *out, unsigned max)
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

TEST_T(rs_every_loss_of_up_to_p_blocks_reads_back, 600)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    unsigned a, b, combos = 0;
    static uint8_t keep[PT_SHARD_MSG_MAX];
    struct pt_span spans[8];
    unsigned n, i;
    /* No repair: the losses this case makes must stay lost while it reads (a rebuilt block
     * would turn a P + 1 loss into a readable span); the reports still reach the queue. */
    pc_start_no_repair(&c, 1, 1, SERVICES, 1);
    cl = rs_client(&c);
    rs_setup(&c, cl);
    /* The layout: RS(4,2), 6 distinct services per span, geometry as SPEC-SHARD §3.3. */
    n = rs_spans(cl, &c, "/rs/big", spans, keep, sizeof(keep));
    CHECK_EQ(n, 2);
    for (i = 0; i < n; i++) {
        unsigned x, y;
        CHECK_EQ(spans[i].storage, PT_STORAGE_RS);
        CHECK_EQ(spans[i].data, 4);
        CHECK_EQ(spans[i].parity, 2);
        CHECK_EQ(spans[i].block_size, 128u << 10);
        CHECK_EQ(spans[i].certified, 1);
        for (x = 0; x < 6; x++)
            for (y = 0; y < x; y++)
                CHECK(spans[i].blocks[x].service != spans[i].blocks[y].service);
    }
    CHECK_EQ(rs_read_all(cl, &rs_files[0]), 0);
    CHECK_EQ(rs_read_all(cl, &rs_files[1]), 0);
    /* 64 rows per block (4 MiB blocks: the most a block gathers from cells), read healthy
     * and with P services stopped. */
    {
        struct petrel_policy wide = {
            .copies = 2, .data = 1, .parity = 2, .rs_threshold = 0, .block_size = 4u << 20};
        const struct rs_file tall = {"/rows/f", 13, (4u << 20) + 12345};
        struct rs_gen g = {tall.seed, tall.size, 0};
        unsigned lost[2] = {1, 4};
        int mode[2] = {LOSE_STOP, LOSE_STOP};
        struct petrel_client *k;
        CHECK_OK(petrel_client_mkdir(cl, "/rows"));
        CHECK_OK(petrel_client_set_policy(cl, "/rows", &wide));
        CHECK_OK(petrel_client_write_file(cl, tall.path, rs_gen_read, &g, NULL));
        CHECK_EQ(rs_read_all(cl, &tall), 0);
        rs_lose(&c, lost, mode, 2, 1);
        k = rs_client(&c);
        CHECK_EQ(rs_read_all(k, &tall), 0);
        petrel_client_close(k);
        rs_lose(&c, lost, mode, 2, 0);
    }
    /* Every set of at most 2 services (all 6 hold a block of each span), each lost as
     * stopped, rotten, or both. */
    for (a = 0; a < SERVICES; a++) {
        int m1;
        for (m1 = 1; m1 <= 3; m1++) {
            unsigned lost[1] = {a};
            int mode[1] = {m1};
            rs_try(&c, lost, mode, 1);
            combos++;
        }
        for (b = a + 1; b < SERVICES; b++) {
            int ma, mb;
            for (ma = 1; ma <= 3; ma++)
                for (mb = 1; mb <= 3; mb++) {
                    unsigned lost[2] = {a, b};
                    int mode[2] = {ma, mb};
                    rs_try(&c, lost, mode, 2);
                    combos++;
                }
        }
    }
    /* A parity block that lies (valid page CRCs over wrong bytes) while a data block's
     * service is stopped: the rebuilt cells fail their cell CRCs, the client leaves the liar
     * out, rebuilds from the other parity, returns exact bytes and reports the liar. */
    {
        uint8_t saved[68];
        unsigned liar = rs_dir_of(&c, spans[0].blocks[4].service);
        unsigned stopped = rs_dir_of(&c, spans[0].blocks[0].service);
        struct pt_repair_entry q[64];
        struct petrel_client *k;
        unsigned nq, j, found = 0;
        rs_lie(&c, liar, spans[0].blocks[4].block, saved, 0);
        kill(rs_pid(&c, stopped), SIGSTOP);
        k = rs_client(&c);
        CHECK_EQ(rs_read_all(k, &rs_files[0]), 0);
        petrel_client_close(k);
        kill(rs_pid(&c, stopped), SIGCONT);
        rs_lie(&c, liar, spans[0].blocks[4].block, saved, 1);
        nq = rs_queue(&c, q, 64);
        for (j = 0; j < nq; j++)
            found |= q[j].block == spans[0].blocks[4].block && q[j].reason == PT_BAD_CORRUPT;
        CHECK_MSG(found, "the lying parity block was not reported as corrupt");
    }
    /* P lost services and a third that is only slow (stopped, resumed 300 ms later, past
     * the 200 ms attempt timeout): too few blocks answer in time, so the client reads the
     * batch once more with patience instead of failing a read it can serve. */
    {
        unsigned s0 = rs_dir_of(&c, spans[0].blocks[0].service);
        unsigned s1 = rs_dir_of(&c, spans[0].blocks[1].service);
        unsigned s2 = rs_dir_of(&c, spans[0].blocks[2].service);
        struct petrel_client *k;
        pid_t waker;
        int st;
        kill(rs_pid(&c, s0), SIGSTOP);
        kill(rs_pid(&c, s1), SIGSTOP);
        kill(rs_pid(&c, s2), SIGSTOP);
        k = rs_client(&c);
        waker = fork();
        if (waker == 0) {
            struct timespec ts = {0, 300 * 1000000L};
            nanosleep(&ts, NULL);
            kill(rs_pid(&c, s2), SIGCONT);
            _exit(0);
        }
        CHECK(waker > 0);
        CHECK_EQ(rs_read_all(k, &rs_files[0]), 0);
        waitpid(waker, &st, 0);
        petrel_client_close(k);
        kill(rs_pid(&c, s2), SIGCONT);
        kill(rs_pid(&c, s1), SIGCONT);
        kill(rs_pid(&c, s0), SIGCONT);
    }
    /* P + 1 losses: an error, never bytes. The lost set must hold the first data block of
     * each file's first span: /rs/small fits in that block, so three losses elsewhere leave
     * every byte it needs in place and it reads back exactly (correctly). */
    {
        struct pt_span small[2];
        unsigned lost[3], nl = 0, cand, j;
        int flips[3] = {LOSE_FLIP, LOSE_FLIP, LOSE_FLIP},
            mixed[3] = {LOSE_STOP, LOSE_FLIP, LOSE_STOP};
        static uint8_t keep_small[PT_SHARD_MSG_MAX];
        lost[nl++] = rs_dir_of(&c, spans[0].blocks[0].service);
        CHECK_EQ(rs_spans(cl, &c, "/rs/small", small, keep_small, sizeof(keep_small)), 1);
        cand = rs_dir_of(&c, small[0].blocks[0].service);
        if (cand != lost[0]) lost[nl++] = cand;
        for (cand = 0; nl < 3; cand++) {
            int taken = 0;
            for (j = 0; j < nl; j++) taken |= lost[j] == cand;
            if (!taken) lost[nl++] = cand;
        }
        rs_try(&c, lost, flips, 3);
        rs_try(&c, lost, mixed, 3);
    }
    /* Killed services (connection refused), then one more loss. */
    {
        unsigned one[1] = {1};
        int flip[1] = {LOSE_FLIP};
        struct petrel_client *k;
        size_t f;
        pc_kill(&c, "blocks-0", SIGKILL);
        pc_kill(&c, "blocks-3", SIGKILL);
        k = rs_client(&c);
        for (f = 0; f < PT_ARRAY_SIZE(rs_files); f++)
            CHECK_EQ(rs_read_all(k, &rs_files[f]), 0);
        petrel_client_close(k);
        rs_flip_service(&c, one[0]);
        k = rs_client(&c);
        for (f = 0; f < PT_ARRAY_SIZE(rs_files); f++)
            CHECK_EQ(rs_read_all(k, &rs_files[f]), -PT_EIO);
        petrel_client_close(k);
        rs_flip_service(&c, one[0]);
        (void)flip;
    }
    /* The reports reached the repair queue: rotten and unreachable blocks of these files. */
    {
        static struct pt_repair_entry q[256];
        unsigned cnt = rs_queue(&c, q, 256), corrupt = 0, unreachable = 0;
        for (i = 0; i < cnt; i++) {
            corrupt += q[i].reason == PT_BAD_CORRUPT;
            unreachable += q[i].reason == PT_BAD_UNREACHABLE;
        }
        printf("rs: %u loss combinations read back exactly; repair queue: %u blocks (%u corrupt, "
               "%u unreachable at their last report)\n",
               combos, cnt, corrupt, unreachable);
        CHECK(cnt >= 8);
        CHECK(corrupt > 0 && unreachable > 0);
    }
    petrel_client_close(cl);
    pc_stop(&c);
}

TEST_T(rs_layout_wider_than_the_failure_domains_is_refused, 120)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct petrel_policy p = {.copies = 2,
                              .data = 4,
                              .parity = 2,
                              .rs_threshold = 0,
                              .block_size = 4096},
                         got;
    struct rs_gen g = {5, 100000, 0};
    char from[64];
    int rc;
    /* pc_start waited for all 3 services: no reason to wait out the default 15 s grace. */
    pc_start_placement_grace(&c, 1, 1, 3, 1, "1");
    cl = rs_client(&c);
    /* The default with 3 domains: mirrored only. */
    CHECK_OK(petrel_client_get_policy(cl, "/", &got, from, sizeof(from)));
    CHECK_EQ(got.data, 0);
    CHECK_EQ(from[0], 0);
    CHECK_OK(petrel_client_mkdir(cl, "/wide"));
    CHECK_OK(petrel_client_mkdir(cl, "/wide/inner"));
    CHECK_OK(petrel_client_set_policy(cl, "/wide", &p));
    CHECK_OK(petrel_client_get_policy(cl, "/wide/inner", &got, from, sizeof(from)));
    CHECK(strcmp(from, "/wide") == 0); /* inherited from the nearest ancestor */
    CHECK_EQ(got.parity, 2);
    p.parity = 9;
    CHECK_EQ(petrel_client_set_policy(cl, "/wide", &p), -PT_EINVAL);
    rc = petrel_client_write_file(cl, "/wide/inner/f", rs_gen_read, &g, NULL);
    CHECK_MSG(rc == -PT_ENOSPC || rc == -PT_EAGAIN, "RS(4,2) on 3 domains: %s",
              petrel_strerror(rc));
    /* Clearing the policy brings back mirroring. */
    CHECK_OK(petrel_client_set_policy(cl, "/wide", NULL));
    g.pos = 0;
    CHECK_OK(petrel_client_write_file(cl, "/wide/inner/f", rs_gen_read, &g, NULL));
    CHECK_EQ(rs_read_all(cl, &(struct rs_file){"/wide/inner/f", 5, 100000}), 0);
    /* A rotten mirrored copy: every read exact, and the copy is queued for repair once a
     * read met it (each client starts at a random copy). */
    {
        struct pt_repair_entry q[16];
        unsigned b, tries, nq = 0;
        for (b = 0; b < 3 && rs_flip_service(&c, b) == 0; b++)
            ;
        CHECK(b < 3);
        for (tries = 0; tries < 16 && nq == 0; tries++) {
            struct petrel_client *k = rs_client_seeded(&c, test_seed() + 100 + tries);
            CHECK_EQ(rs_read_all(k, &(struct rs_file){"/wide/inner/f", 5, 100000}), 0);
            petrel_client_close(k);
            nq = rs_queue(&c, q, 16);
        }
        CHECK_EQ(nq, 1);
        CHECK_EQ(q[0].reason, PT_BAD_CORRUPT);
    }
    petrel_client_close(cl);
    pc_stop(&c);
}
