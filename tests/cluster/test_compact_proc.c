/*
 * Background compaction (issue 12) on a cluster of real processes: a file written in small
 * spans is merged by the shard leader into one span; the bytes read back are identical
 * before and after, the version does not move, a change opened before the compaction keeps
 * reading the old spans and still commits (a concurrent change wins), planning on the merged
 * span; what it wrote is merged again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "petrel/client.h"
#include "petrel/common.h"
#include "petrel/prng.h"
#include "proc_cluster.h"
#include "test.h"

#define MAXLEN (512u << 10)
#define SMALL_SPAN (16u << 10)

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

static void check_file(struct petrel_client *cl, const char *path, const uint8_t *model, size_t len)
{
    static uint8_t got[MAXLEN];
    struct sink s = {got, 0};
    CHECK_OK(petrel_client_read(cl, path, 0, MAXLEN, sink_write, &s, NULL));
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

/* Wait (bounded) for the leader's compaction to leave the file with at most `spans` spans. */
static uint32_t wait_spans(struct petrel_client *cl, const char *path, uint32_t spans)
{
    uint32_t n = spans_of(cl, path, NULL);
    unsigned i;
    for (i = 0; i < 1200 && n > spans; i++) {
        usleep(50000);
        n = spans_of(cl, path, NULL);
    }
    return n;
}

TEST_T(cluster_compact_merges_small_spans_same_bytes, 240)
{
    static uint8_t model[MAXLEN], got[MAXLEN];
    struct pc_cluster c;
    struct petrel_client_config cfg;
    struct petrel_change_config ccfg;
    struct petrel_client *cl;
    struct petrel_change *ch;
    struct petrel_stat st;
    struct pt_prng prng;
    struct bytes b;
    struct sink s = {got, 0};
    char cache[600];
    size_t len = 300000, i;
    uint64_t v, v2, nv;
    pt_prng_seed(&prng, test_seed());
    for (i = 0; i < MAXLEN; i++)
        model[i] = (uint8_t)pt_prng_next(&prng);
    pc_start(&c, 1, 1, 2, 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = c.registry;
    cfg.retry_budget_ms = 20000;
    cfg.attempt_timeout_ms = 2000;
    cfg.span_size = SMALL_SPAN;
    cfg.seed = test_seed() + 1;
    CHECK_OK(petrel_client_open(&cl, &cfg));
    snprintf(cache, sizeof(cache), "%s/cache", test_tmpdir());
    memset(&ccfg, 0, sizeof(ccfg));
    ccfg.cache_dir = cache;
    b.p = model;
    b.left = len;
    CHECK_OK(petrel_client_write_file(cl, "/f", bytes_read, &b, NULL));
    CHECK_OK(petrel_client_stat(cl, "/f", &st));
    v = st.version;
    /* A change opened now holds the small spans' list (a reader of the old version). */
    CHECK_OK(petrel_change_open(cl, st.id, v, &ccfg, &ch));
    /* 18 spans of 16 KiB and a tail, all small: one run, one merged span. */
    CHECK_EQ(wait_spans(cl, "/f", 1), 1);
    CHECK_EQ(spans_of(cl, "/f", &v2), 1);
    CHECK_EQ(v2, v); /* same content, same version */
    check_file(cl, "/f", model, len);
    /* The change still reads the old spans (kept for the retention period). */
    CHECK_OK(petrel_change_read(ch, 0, MAXLEN, sink_write, &s, NULL));
    CHECK_EQ(s.len, len);
    CHECK(memcmp(got, model, len) == 0);
    /* It overwrites inside what was its second span, appends, and commits: the compaction did
     * not move the version, so it wins; its change file is made now, from the merged span,
     * and its plan works on that (not on the 19 spans it opened with). */
    for (i = 0; i < 100; i++)
        model[len + i] = (uint8_t)(i + 1);
    memset(model + 20000, 0xAB, 10);
    CHECK_OK(petrel_change_write(ch, 20000, model + 20000, 10));
    CHECK_OK(petrel_change_write(ch, len, model + len, 100));
    CHECK_OK(petrel_change_commit(ch, &nv));
    CHECK_EQ(nv, v + 1);
    petrel_change_close(ch);
    len += 100;
    check_file(cl, "/f", model, len);
    /* It wrote the file again in 16 KiB spans (its one span was touched): merged again. */
    CHECK_EQ(wait_spans(cl, "/f", 1), 1);
    CHECK_EQ(spans_of(cl, "/f", &v2), 1);
    CHECK_EQ(v2, v + 1);
    check_file(cl, "/f", model, len);
    petrel_client_close(cl);
    pc_stop(&c);
}
