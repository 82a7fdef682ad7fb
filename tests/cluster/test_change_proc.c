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

#include "petrel/client.h"
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
    CHECK_EQ(petrel_change_truncate(ch, 999999999999999ull), -PT_EFBIG); /* zeros, not sparse */
    CHECK_EQ(petrel_change_write(ch, 1ull << 41, data, 1), -PT_EFBIG);
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
