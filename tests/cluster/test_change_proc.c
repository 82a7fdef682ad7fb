/*
 * Files that change (issue 12) through the client library on a cluster of real processes:
 * overwrite in the middle, append, truncate down and up, reads through a change, a spill of
 * the local cache into the shard's change file, and two writers of one file (the second commit
 * fails with PT_ESTALE and changes nothing; a change keeps reading the version it started
 * from). Every step is checked against a model of the bytes, read back from the cluster.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/client/router.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/client.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/prng.h"
#include "proc_cluster.h"
#include "test.h"

#define MAXLEN (512u << 10)
#define SPAN_SIZE (64u << 10)

struct bytes {
    const uint8_t *p;
    size_t left;
};

static long bytes_read(void *ctx, void *buf, size_t cap)
{
    struct bytes *b = ctx;
    size_t n = PT_MIN(cap, b->left);
    memcpy(buf, b->p, n);
    b->p += n;
    b->left -= n;
    return (long)n;
}

struct sink {
    uint8_t *buf;
    size_t len;
};

static int sink_write(void *ctx, const void *buf, size_t len)
{
    struct sink *s = ctx;
    if (s->len + len > MAXLEN) return -PT_E2BIG;
    memcpy(s->buf + s->len, buf, len);
    s->len += len;
    return 0;
}

/* The file at path holds exactly model[0, len). */
static void check_file(struct petrel_client *cl, const char *path, const uint8_t *model,
                       size_t len)
{
    static uint8_t got[MAXLEN];
    struct sink s = {got, 0};
    struct petrel_stat st;
    CHECK_OK(petrel_client_stat(cl, path, &st));
    CHECK_EQ(st.size, len);
    CHECK_OK(petrel_client_read(cl, path, 0, MAXLEN, sink_write, &s, NULL));
    CHECK_EQ(s.len, len);
    CHECK(memcmp(got, model, len) == 0);
}

/* The change reads exactly model[0, len). */
static void check_change(struct petrel_change *ch, const uint8_t *model, size_t len)
{
    static uint8_t got[MAXLEN];
    struct sink s = {got, 0};
    CHECK_EQ(petrel_change_size(ch), len);
    CHECK_OK(petrel_change_read(ch, 0, MAXLEN, sink_write, &s, NULL));
    CHECK_EQ(s.len, len);
    CHECK(memcmp(got, model, len) == 0);
}

static uint32_t spans_of(struct petrel_client *cl, const char *path, uint64_t *version)
{
    struct petrel_stat st;
    CHECK_OK(petrel_client_stat(cl, path, &st));
    if (version) *version = st.version;
    return st.spans;
}

TEST_T(cluster_change_overwrite_append_truncate_and_compare_and_swap, 240)
{
    static uint8_t model[MAXLEN], other[MAXLEN], data[8192];
    struct pc_cluster c;
    struct petrel_client_config cfg;
    struct petrel_change_config ccfg;
    struct petrel_client *cl;
    struct petrel_change *ch, *ch2;
    struct petrel_stat st;
    struct pt_prng prng;
    struct bytes b;
    char cache[600];
    size_t len = 300000, i;
    uint64_t v, nv, id;
    pt_prng_seed(&prng, test_seed());
    for (i = 0; i < MAXLEN; i++)
        model[i] = (uint8_t)pt_prng_next(&prng);
    pc_start(&c, 1, 1, 2, 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = c.registry;
    cfg.retry_budget_ms = 20000;
    cfg.attempt_timeout_ms = 2000;
    cfg.span_size = SPAN_SIZE;
    cfg.seed = test_seed() + 1;
    CHECK_OK(petrel_client_open(&cl, &cfg));
    snprintf(cache, sizeof(cache), "%s/cache", test_tmpdir());
    memset(&ccfg, 0, sizeof(ccfg));
    ccfg.cache_dir = cache;
    b.p = model;
    b.left = len;
    CHECK_OK(petrel_client_write_file(cl, "/f", bytes_read, &b, NULL));
    CHECK_EQ(spans_of(cl, "/f", &v), 5); /* 4 x 64 KiB + 37,856 bytes */
    CHECK_OK(petrel_client_stat(cl, "/f", &st));
    id = st.id;

    /* Overwrite 4 KiB in the middle: readers see the old bytes until the commit. */
    CHECK_OK(petrel_change_open(cl, id, v, &ccfg, &ch));
    CHECK_EQ(petrel_change_version(ch), v);
    check_change(ch, model, len);
    memcpy(other, model, len);
    for (i = 0; i < 4096; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    CHECK_OK(petrel_change_write(ch, 100000, data, 4096));
    memcpy(model + 100000, data, 4096);
    check_change(ch, model, len);
    check_file(cl, "/f", other, len);
    CHECK_OK(petrel_change_commit(ch, &nv));
    CHECK_EQ(nv, v + 1);
    CHECK_EQ(petrel_change_uploaded(ch), SPAN_SIZE); /* the one span it falls in, not the file */
    check_file(cl, "/f", model, len);
    CHECK_EQ(spans_of(cl, "/f", &v), 5);
    CHECK_EQ(v, nv);
    /* A commit with nothing new changes nothing. */
    CHECK_OK(petrel_change_commit(ch, &nv));
    CHECK_EQ(nv, v);

    /* Append 100 bytes: a sixth span of 100 bytes, the last one (37,856 bytes, more than
     * fits inline with them) is not written again. */
    CHECK_OK(petrel_change_write(ch, len, data, 100));
    memcpy(model + len, data, 100);
    len += 100;
    CHECK_OK(petrel_change_commit(ch, &nv));
    CHECK_EQ(nv, v + 1);
    CHECK_EQ(petrel_change_uploaded(ch), SPAN_SIZE + 100);
    check_file(cl, "/f", model, len);
    CHECK_EQ(spans_of(cl, "/f", &v), 6);
    /* Another 100: the inline last span takes them (rewritten with them, 200 bytes). */
    CHECK_OK(petrel_change_write(ch, len, data + 100, 100));
    memcpy(model + len, data + 100, 100);
    len += 100;
    CHECK_OK(petrel_change_commit(ch, &nv));
    CHECK_EQ(nv, v + 1);
    CHECK_EQ(petrel_change_uploaded(ch), SPAN_SIZE + 100 + 200);
    check_file(cl, "/f", model, len);
    CHECK_EQ(spans_of(cl, "/f", &v), 6);

    /* Truncate into span 1, then up again with a write past the end: zeros between. */
    CHECK_OK(petrel_change_truncate(ch, 70000));
    len = 70000;
    CHECK_EQ(petrel_change_truncate(ch, 1ull << 63), -PT_EFBIG); /* past what a hole reaches */
    CHECK_EQ(petrel_change_write(ch, (1ull << 63) - 1, data, 2), -PT_EFBIG);
    CHECK_OK(petrel_change_truncate(ch, 200000));
    memset(model + len, 0, 200000 - len);
    len = 200000;
    CHECK_OK(petrel_change_write(ch, 250000, data, 1000));
    memset(model + 200000, 0, 50000);
    memcpy(model + 250000, data, 1000);
    len = 251000;
    check_change(ch, model, len);
    { /* a read that starts past what still shows of the old content (inside an old span) */
        static uint8_t got[MAXLEN];
        struct sink s = {got, 0};
        CHECK_OK(petrel_change_read(ch, 100000, 1000, sink_write, &s, NULL));
        CHECK_EQ(s.len, 1000);
        CHECK(memcmp(got, model + 100000, 1000) == 0);
    }
    CHECK_OK(petrel_change_commit(ch, &nv));
    check_file(cl, "/f", model, len);
    CHECK_EQ(spans_of(cl, "/f", &v), 4); /* span 0 kept, 1..3 written again */
    petrel_change_close(ch);

    /* Two writers: the first commit wins, the second gets PT_ESTALE and changes nothing; the
     * loser still reads the version it started from. */
    CHECK_OK(petrel_change_open(cl, id, v, &ccfg, &ch));
    CHECK_OK(petrel_change_open(cl, id, 0, &ccfg, &ch2));
    memcpy(other, model, len);
    CHECK_OK(petrel_change_write(ch, 10, "first", 5));
    memcpy(model + 10, "first", 5);
    CHECK_OK(petrel_change_write(ch2, 20, "second", 6));
    memcpy(other + 20, "second", 6);
    CHECK_OK(petrel_change_commit(ch, &nv));
    CHECK_EQ(petrel_change_commit(ch2, NULL), -PT_ESTALE);
    CHECK_EQ(petrel_change_commit(ch2, NULL), -PT_ESTALE); /* and stays so */
    check_file(cl, "/f", model, len);
    CHECK_EQ(petrel_change_open(cl, id, v, &ccfg, &ch2), -PT_ESTALE); /* an old version */
    petrel_change_close(ch);

    /* A change larger than its cache spills into the shard's change file as it goes. */
    ccfg.cache_limit = 100000;
    memcpy(other, model, len);
    CHECK_OK(petrel_change_open(cl, id, 0, &ccfg, &ch));
    {
        size_t committed = len;
    for (i = 0; i < 60; i++) {
        uint64_t off = pt_prng_below(&prng, 400000);
        uint32_t n = (uint32_t)pt_prng_below(&prng, 8192) + 1;
        unsigned k;
        for (k = 0; k < n; k++)
            data[k] = (uint8_t)pt_prng_next(&prng);
        CHECK_OK(petrel_change_write(ch, off, data, n));
        if (off > len) memset(model + len, 0, off - len);
        memcpy(model + off, data, n);
        if (off + n > len) len = off + n;
    }
    check_change(ch, model, len);
    check_file(cl, "/f", other, committed); /* spilled, not visible */
    }
    CHECK_OK(petrel_change_commit(ch, &nv));
    check_file(cl, "/f", model, len);
    petrel_change_close(ch);
    petrel_client_close(cl);
    pc_stop(&c);
}

/* The spans of a file as its shard lists them (the first page): storage, copies or D + P,
 * offset, size. */
struct span_list {
    unsigned n;
    uint8_t storage[64], blocks[64];
    uint64_t off[64], size[64];
};

static void list_spans(struct pc_cluster *c, struct petrel_client *cl, const char *path,
                       struct span_list *v)
{
    struct pt_router r;
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    uint64_t id;
    unsigned i;
    CHECK_OK(petrel_client_resolve(cl, path, &id, NULL));
    pt_router_init(&r, c->registry, 10000, 2000, 1);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_SPANS;
    q.id = id;
    CHECK_OK(pt_router_shard(&r, PT_INODE_SHARD(id), &q, &rep, NULL));
    pt_cursor_init(&b, rep.body, rep.body_len);
    (void)pt_dec_u64(&b);
    v->n = pt_dec_u16(&b);
    CHECK(v->n <= 64);
    for (i = 0; i < v->n; i++) {
        struct pt_span s;
        CHECK_OK(pt_span_decode(&b, &s));
        v->storage[i] = s.storage;
        v->blocks[i] = (uint8_t)pt_span_block_count(&s);
        v->off[i] = s.offset;
        v->size[i] = s.size;
    }
    pt_reply_free(&rep);
}

/* [off, off + len) of the file at path equals want (len <= MAXLEN). */
static void check_range(struct petrel_client *cl, const char *path, uint64_t off,
                        const uint8_t *want, size_t len)
{
    static uint8_t got[MAXLEN];
    struct sink s = {got, 0};
    CHECK_OK(petrel_client_read(cl, path, off, len, sink_write, &s, NULL));
    CHECK_EQ(s.len, len);
    CHECK(memcmp(got, want, len) == 0);
}

#define PIB (1ull << 50)

/*
 * Holes: a truncate to 1 PiB stores one hole span (nothing uploaded) and reads as zeros at the
 * end and in the middle; writes into the hole and past the end go in place (the bytes written,
 * no zeros); a truncate down into a hole cuts it.
 */
TEST_T(cluster_change_holes, 240)
{
    static uint8_t model[MAXLEN], zeros[MAXLEN], data[8192];
    struct pc_cluster c;
    struct petrel_client_config cfg;
    struct petrel_change_config ccfg;
    struct petrel_client *cl;
    struct petrel_change *ch;
    struct petrel_stat st;
    struct span_list v;
    struct pt_prng prng;
    struct bytes b;
    char cache[600];
    size_t i;
    uint64_t id;
    pt_prng_seed(&prng, test_seed());
    for (i = 0; i < MAXLEN; i++)
        model[i] = (uint8_t)pt_prng_next(&prng);
    for (i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 13 + 5);
    pc_start(&c, 1, 1, 2, 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = c.registry;
    cfg.retry_budget_ms = 20000;
    cfg.attempt_timeout_ms = 2000;
    cfg.span_size = SPAN_SIZE;
    cfg.seed = test_seed() + 1;
    CHECK_OK(petrel_client_open(&cl, &cfg));
    snprintf(cache, sizeof(cache), "%s/cache", test_tmpdir());
    memset(&ccfg, 0, sizeof(ccfg));
    ccfg.cache_dir = cache;
    b.p = model;
    b.left = 10000;
    CHECK_OK(petrel_client_write_file(cl, "/h", bytes_read, &b, NULL));
    CHECK_OK(petrel_client_stat(cl, "/h", &st));
    id = st.id;

    /* truncate(2) to 1 PiB: one hole record, no byte uploaded */
    CHECK_OK(petrel_change_open(cl, id, 0, &ccfg, &ch));
    CHECK_OK(petrel_change_truncate(ch, PIB));
    CHECK_OK(petrel_change_commit(ch, NULL));
    CHECK_EQ(petrel_change_uploaded(ch), 0);
    CHECK_OK(petrel_client_stat(cl, "/h", &st));
    CHECK_EQ(st.size, PIB);
    CHECK_EQ(st.spans, 2);
    list_spans(&c, cl, "/h", &v);
    CHECK_EQ(v.storage[1], PT_STORAGE_HOLE);
    CHECK_EQ(v.size[1], PIB - 10000);
    check_range(cl, "/h", 0, model, 10000);
    check_range(cl, "/h", PIB - 4096, zeros, 4096);
    check_range(cl, "/h", PIB / 2 - 3, zeros, 4096);
    check_range(cl, "/h", 9000, zeros, 0);
    { /* across the end of the data into the hole */
        static uint8_t want[20000];
        memcpy(want, model, 10000);
        check_range(cl, "/h", 0, want, sizeof(want));
    }
    { /* a read of the whole tail stops at the size */
        static uint8_t got[16];
        struct sink s = {got, 0};
        CHECK_OK(petrel_client_read(cl, "/h", PIB - 10, 1000, sink_write, &s, NULL));
        CHECK_EQ(s.len, 10);
    }

    /* writes into the hole: the bytes written go in place, the hole is split around them */
    CHECK_OK(petrel_change_write(ch, PIB / 2, data, 5000));
    CHECK_OK(petrel_change_write(ch, PIB - 10, data, 10));
    { /* the change reads its own writes and zeros around them */
        static uint8_t got[MAXLEN], want[7000];
        struct sink s = {got, 0};
        memcpy(want + 1000, data, 5000);
        CHECK_OK(petrel_change_read(ch, PIB / 2 - 1000, sizeof(want), sink_write, &s, NULL));
        CHECK_EQ(s.len, sizeof(want));
        CHECK(memcmp(got, want, sizeof(want)) == 0);
    }
    CHECK_OK(petrel_change_commit(ch, NULL));
    CHECK_EQ(petrel_change_uploaded(ch), 5010);
    CHECK_OK(petrel_client_stat(cl, "/h", &st));
    CHECK_EQ(st.size, PIB);
    CHECK_EQ(st.spans, 5); /* data, hole, 5000 bytes, hole, 10 bytes */
    {
        static uint8_t want[7000];
        memcpy(want + 1000, data, 5000);
        check_range(cl, "/h", PIB / 2 - 1000, want, sizeof(want));
        check_range(cl, "/h", PIB - 10, data, 10);
        check_range(cl, "/h", PIB - 4106, zeros, 4096);
    }

    /* truncate down into a hole, then write past the end: a gap of 1 MiB is a hole */
    CHECK_OK(petrel_change_truncate(ch, PIB / 4));
    CHECK_OK(petrel_change_commit(ch, NULL));
    CHECK_OK(petrel_client_stat(cl, "/h", &st));
    CHECK_EQ(st.size, PIB / 4);
    CHECK_EQ(st.spans, 2);
    CHECK_OK(petrel_change_write(ch, PIB / 4 + (1u << 20), data, 100));
    CHECK_OK(petrel_change_commit(ch, NULL));
    CHECK_EQ(petrel_change_uploaded(ch), 5010 + 100);
    CHECK_OK(petrel_client_stat(cl, "/h", &st));
    CHECK_EQ(st.size, PIB / 4 + (1u << 20) + 100);
    list_spans(&c, cl, "/h", &v);
    CHECK_EQ(v.n, 4);
    CHECK_EQ(v.storage[2], PT_STORAGE_HOLE);
    CHECK_EQ(v.size[2], 1u << 20);
    check_range(cl, "/h", PIB / 4 - 100, zeros, 500000);
    check_range(cl, "/h", PIB / 4 + (1u << 20) - 100000, zeros, 100000);
    check_range(cl, "/h", PIB / 4 + (1u << 20), data, 100);
    check_range(cl, "/h", 0, model, 10000);
    petrel_change_close(ch);

    /* a short gap past the end is written as zeros with the data (no tiny hole) */
    CHECK_OK(petrel_change_open(cl, id, 0, &ccfg, &ch));
    CHECK_OK(petrel_change_write(ch, PIB / 4 + (1u << 20) + 1100, data, 50));
    CHECK_OK(petrel_change_commit(ch, NULL));
    list_spans(&c, cl, "/h", &v);
    CHECK_EQ(v.n, 4);
    CHECK_EQ(v.size[3], 1150);
    check_range(cl, "/h", PIB / 4 + (1u << 20) + 100, zeros, 1000);
    check_range(cl, "/h", PIB / 4 + (1u << 20) + 1100, data, 50);
    petrel_change_close(ch);
    petrel_client_close(cl);
    pc_stop(&c);
}

/* New spans of a change follow the storage policy of the file's directory: RS for a file at
 * or above the threshold, mirrored with the policy's copies below it. */
TEST_T(cluster_change_new_spans_follow_the_policy, 240)
{
    static uint8_t model[MAXLEN], data[8192];
    struct pc_cluster c;
    struct petrel_client_config cfg;
    struct petrel_change_config ccfg;
    struct petrel_client *cl;
    struct petrel_change *ch;
    struct petrel_stat st;
    struct span_list v;
    struct pt_prng prng;
    struct bytes b;
    struct petrel_policy rs = {.copies = 2, .data = 4, .parity = 2, .rs_threshold = 65536,
                               .block_size = 64u << 10},
                         one = {.copies = 1}, three = {.copies = 3};
    char cache[600];
    size_t i, len = 400000;
    pt_prng_seed(&prng, test_seed());
    for (i = 0; i < MAXLEN; i++)
        model[i] = (uint8_t)pt_prng_next(&prng);
    for (i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 3 + 1);
    pc_start(&c, 1, 1, 6, 1);
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = c.registry;
    cfg.retry_budget_ms = 20000;
    cfg.attempt_timeout_ms = 2000;
    cfg.span_size = SPAN_SIZE;
    cfg.copies = 2;
    cfg.seed = test_seed() + 1;
    CHECK_OK(petrel_client_open(&cl, &cfg));
    snprintf(cache, sizeof(cache), "%s/cache", test_tmpdir());
    memset(&ccfg, 0, sizeof(ccfg));
    ccfg.cache_dir = cache;

    /* an RS directory: a large file's overwritten span is written again RS */
    CHECK_OK(petrel_client_mkdir(cl, "/rs"));
    CHECK_OK(petrel_client_set_policy(cl, "/rs", &rs));
    b.p = model;
    b.left = len;
    CHECK_OK(petrel_client_write_file(cl, "/rs/big", bytes_read, &b, NULL));
    CHECK_OK(petrel_client_stat(cl, "/rs/big", &st));
    CHECK_OK(petrel_change_open(cl, st.id, 0, &ccfg, &ch));
    CHECK_OK(petrel_change_write(ch, 300000, data, 4096));
    memcpy(model + 300000, data, 4096);
    {
        static uint8_t more[100000];
        for (i = 0; i < sizeof(more); i++)
            more[i] = (uint8_t)pt_prng_next(&prng);
        CHECK_OK(petrel_change_write(ch, len, more, sizeof(more))); /* and an append */
        memcpy(model + len, more, sizeof(more));
        len += sizeof(more);
    }
    CHECK_OK(petrel_change_commit(ch, NULL));
    petrel_change_close(ch);
    check_file(cl, "/rs/big", model, len);
    list_spans(&c, cl, "/rs/big", &v);
    for (i = 0; i < v.n; i++)
        CHECK_MSG(v.storage[i] == PT_STORAGE_RS || v.size[i] <= PT_INLINE_MAX,
                  "span %zu at %llu (%llu bytes) is stored as %u", i,
                  (unsigned long long)v.off[i], (unsigned long long)v.size[i], v.storage[i]);

    /* a mirrored directory whose policy changed: new spans take the new copies */
    CHECK_OK(petrel_client_mkdir(cl, "/m"));
    CHECK_OK(petrel_client_set_policy(cl, "/m", &one));
    b.p = model;
    b.left = 200000;
    CHECK_OK(petrel_client_write_file(cl, "/m/f", bytes_read, &b, NULL));
    list_spans(&c, cl, "/m/f", &v);
    CHECK_EQ(v.blocks[0], 1);
    CHECK_OK(petrel_client_set_policy(cl, "/m", &three));
    CHECK_OK(petrel_client_stat(cl, "/m/f", &st));
    CHECK_OK(petrel_change_open(cl, st.id, 0, &ccfg, &ch));
    CHECK_OK(petrel_change_write(ch, 1000, data, 100));
    memcpy(model + 1000, data, 100);
    CHECK_OK(petrel_change_commit(ch, NULL));
    petrel_change_close(ch);
    check_file(cl, "/m/f", model, 200000);
    list_spans(&c, cl, "/m/f", &v);
    CHECK_EQ(v.storage[0], PT_STORAGE_MIRRORED);
    CHECK_EQ(v.blocks[0], 3); /* rewritten: the policy's copies now */
    CHECK_EQ(v.blocks[1], 1); /* untouched: shared with the old version */
    petrel_client_close(cl);
    pc_stop(&c);
}
