/*
 * Files that change (issue 12), in the shard state machine alone: a change file shares its
 * base file's span records (the same block copies), replaces, drops and appends spans, and
 * replaces the base's content by compare-and-swap on the version. GC erases a copy only when
 * no span record lists it any more, whatever order versions, changes and files go in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/proto/shard_msgs.h"
#include "cluster/shard/shard_sm.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "test.h"

#define SPAN 4096u
#define COOKIE 5u

static uint8_t reply_buf[PT_SHARD_MSG_MAX];
static struct pt_shard_apply_out out;

static void open_sm(struct pt_shard_sm *sm, const char *name)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", test_tmpdir(), name);
    CHECK_OK(pt_shard_sm_open(sm, dir, 0, 1));
    sm->retention_ms = 1000;
}

static int apply(struct pt_shard_sm *sm, uint64_t now, const struct pt_shard_req *q,
                 struct pt_cursor *body)
{
    uint8_t entry[PT_SHARD_MSG_MAX];
    struct pt_cursor dummy;
    struct pt_shard_entry_builder b;
    int n;
    pt_shard_entry_init(&b, entry, sizeof(entry), now);
    CHECK_OK(pt_shard_entry_add(&b, q));
    n = pt_shard_entry_finish(&b);
    CHECK_OK(n);
    CHECK_OK(pt_shard_sm_apply(sm, entry, (size_t)n, &out));
    CHECK_EQ(out.count, 1);
    memcpy(reply_buf, out.reply[0], out.len[0]);
    return pt_shard_reply_open(reply_buf, out.len[0], body ? body : &dummy);
}

static int query(struct pt_shard_sm *sm, const struct pt_shard_req *q, struct pt_cursor *body)
{
    uint8_t req[PT_SHARD_MSG_MAX];
    size_t len;
    int n = pt_shard_req_encode(q, req, sizeof(req));
    CHECK_OK(n);
    CHECK_OK(pt_shard_sm_query(sm, req, (size_t)n, reply_buf, sizeof(reply_buf), &len));
    return pt_shard_reply_open(reply_buf, len, body);
}

/* A mirrored span of SPAN bytes (two copies on services 11, 12) at off, certified. */
static int add_span(struct pt_shard_sm *sm, uint64_t now, uint64_t id, uint64_t off, uint32_t crc)
{
    struct pt_shard_req q = {.op = PT_SHARD_ADD_SPAN,
                             .id = id,
                             .cookie = COOKIE,
                             .offset = off,
                             .size = SPAN,
                             .crc = crc,
                             .storage = PT_STORAGE_MIRRORED,
                             .data = 1,
                             .parity = 1,
                             .block_size = SPAN,
                             .n_services = 2,
                             .services = {11, 12}};
    struct pt_shard_req c = {
        .op = PT_SHARD_CERTIFY_SPAN, .id = id, .cookie = COOKIE, .offset = off};
    static const uint8_t proofs[16];
    int rc = apply(sm, now, &q, NULL);
    if (rc) return rc;
    c.data_len = 16;
    c.data_ptr = proofs;
    return apply(sm, now, &c, NULL);
}

static int add_inline(struct pt_shard_sm *sm, uint64_t now, uint64_t id, uint64_t off,
                      const char *text)
{
    struct pt_shard_req q = {.op = PT_SHARD_ADD_INLINE, .id = id, .cookie = COOKIE, .offset = off};
    q.size = q.data_len = (uint32_t)strlen(text);
    q.crc = petrel_crc32c(0, text, q.size);
    q.data_ptr = (const uint8_t *)text;
    return apply(sm, now, &q, NULL);
}

/* A linked file "name" in the root with n spans of SPAN bytes, CRCs 1..n. */
static uint64_t make_file(struct pt_shard_sm *sm, uint64_t now, const char *name, unsigned n)
{
    struct pt_shard_req q = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = COOKIE};
    struct pt_shard_req l = {.op = PT_SHARD_LINK_FILE, .cookie = COOKIE, .target = PT_INODE_ROOT};
    struct pt_cursor b;
    uint64_t id;
    unsigned i;
    CHECK_EQ(apply(sm, now, &q, &b), 0);
    id = pt_dec_u64(&b);
    for (i = 0; i < n; i++)
        CHECK_EQ(add_span(sm, now, id, (uint64_t)i * SPAN, i + 1), 0);
    l.id = id;
    l.name_len = (uint8_t)strlen(name);
    memcpy(l.name, name, l.name_len);
    CHECK_EQ(apply(sm, now, &l, NULL), 0);
    return id;
}

static int open_change(struct pt_shard_sm *sm, uint64_t now, uint64_t file, uint64_t expect,
                       uint64_t *change, uint64_t *version)
{
    struct pt_shard_req q = {
        .op = PT_SHARD_OPEN_CHANGE, .id = file, .cookie = COOKIE, .expect = expect};
    struct pt_cursor b;
    int rc = apply(sm, now, &q, &b);
    if (rc) return rc;
    *change = pt_dec_u64(&b);
    if (version) *version = pt_dec_u64(&b);
    return 0;
}

static int commit(struct pt_shard_sm *sm, uint64_t now, uint64_t change, uint64_t cookie,
                  uint64_t *version)
{
    struct pt_shard_req q = {.op = PT_SHARD_COMMIT_CHANGE, .id = change, .cookie = cookie};
    struct pt_cursor b;
    int rc = apply(sm, now, &q, &b);
    if (rc == 0 && version) *version = pt_dec_u64(&b);
    return rc;
}

static int truncate_spans(struct pt_shard_sm *sm, uint64_t now, uint64_t change, uint64_t off)
{
    struct pt_shard_req q = {
        .op = PT_SHARD_TRUNCATE_SPANS, .id = change, .cookie = COOKIE, .offset = off};
    return apply(sm, now, &q, NULL);
}

static int truncate_expect(struct pt_shard_sm *sm, uint64_t now, uint64_t change, uint64_t off,
                           uint64_t expect)
{
    struct pt_shard_req q = {.op = PT_SHARD_TRUNCATE_SPANS,
                             .id = change,
                             .cookie = COOKIE,
                             .offset = off,
                             .expect = expect};
    return apply(sm, now, &q, NULL);
}

/* The file's span records: size, count, and each span's (offset, crc, first block id). */
struct spans {
    uint64_t size;
    unsigned n;
    uint64_t off[16], block[16];
    uint32_t crc[16], len[16];
};
static void spans_of(struct pt_shard_sm *sm, uint64_t id, struct spans *v)
{
    struct pt_shard_req q = {.op = PT_SHARD_SPANS, .id = id};
    struct pt_cursor b;
    unsigned i;
    memset(v, 0, sizeof(*v));
    CHECK_EQ(query(sm, &q, &b), 0);
    v->size = pt_dec_u64(&b);
    v->n = pt_dec_u16(&b);
    CHECK(v->n <= 16);
    for (i = 0; i < v->n; i++) {
        struct pt_span s;
        CHECK_OK(pt_span_decode(&b, &s));
        v->off[i] = s.offset;
        v->crc[i] = s.crc;
        v->len[i] = s.size;
        v->block[i] = s.storage == PT_STORAGE_INLINE ? 0 : s.blocks[0].block;
    }
}

static uint64_t version_of(struct pt_shard_sm *sm, uint64_t id, uint8_t *state)
{
    struct pt_shard_req q = {.op = PT_SHARD_STAT, .id = id};
    struct pt_shard_stat st;
    struct pt_cursor b;
    CHECK_EQ(query(sm, &q, &b), 0);
    CHECK_OK(pt_shard_reply_stat(&b, &st));
    if (state) *state = st.state;
    return st.version;
}

static size_t gc_blocks(struct pt_shard_sm *sm, uint64_t id)
{
    struct pt_gc_block *v;
    size_t n;
    CHECK_OK(pt_shard_sm_file_blocks(sm, id, &v, &n));
    free(v);
    return n;
}

static size_t table_entries(struct pt_shard_sm *sm, MDB_dbi dbi)
{
    MDB_txn *t;
    MDB_stat st;
    CHECK_EQ(mdb_txn_begin(sm->env, NULL, MDB_RDONLY, &t), 0);
    CHECK_EQ(mdb_stat(t, dbi, &st), 0);
    mdb_txn_abort(t);
    return st.ms_entries;
}

static int forget(struct pt_shard_sm *sm, uint64_t now, uint64_t id)
{
    struct pt_shard_req q = {.op = PT_SHARD_FORGET_FILE, .id = id};
    return apply(sm, now, &q, NULL);
}

static int unlink_name(struct pt_shard_sm *sm, uint64_t now, const char *name)
{
    struct pt_shard_req q = {.op = PT_SHARD_UNLINK, .id = PT_INODE_ROOT};
    q.name_len = (uint8_t)strlen(name);
    memcpy(q.name, name, q.name_len);
    return apply(sm, now, &q, NULL);
}

/* An overwrite in the middle replaces one span; the others stay the same copies, shared. */
TEST(shard_change_overwrite_replaces_one_span_and_shares_the_rest)
{
    struct pt_shard_sm sm;
    struct spans before, during, after, old;
    uint64_t f, c, v, nv;
    uint8_t state;
    open_sm(&sm, "s");
    f = make_file(&sm, 10, "f", 3);
    spans_of(&sm, f, &before);
    CHECK_EQ(before.size, 3 * SPAN);
    v = version_of(&sm, f, NULL);
    CHECK_EQ(open_change(&sm, 20, f, v, &c, &nv), 0);
    CHECK_EQ(nv, v);
    CHECK_EQ(version_of(&sm, c, &state), v);
    CHECK_EQ(state, PT_FILE_TRANSIENT);
    spans_of(&sm, c, &during);
    CHECK_EQ(during.n, 3);
    CHECK(memcmp(during.block, before.block, sizeof(before.block)) == 0); /* shared, not copied */
    /* The shared copies are nobody's alone: GC of either file would leave them. */
    CHECK_EQ(gc_blocks(&sm, c), 0);
    CHECK_EQ(gc_blocks(&sm, f), 0);
    /* Overwrite the middle span: a new span with new copies in its place. */
    CHECK_EQ(add_span(&sm, 21, c, SPAN, 0x99), 0);
    /* A repeat (the reply was lost) finds the new span, not a third one. */
    CHECK_EQ(add_span(&sm, 21, c, SPAN, 0x99), 0);
    spans_of(&sm, c, &during);
    CHECK_EQ(during.n, 3);
    CHECK_EQ(during.size, 3 * SPAN);
    CHECK_EQ(during.crc[1], 0x99);
    CHECK(during.block[1] != before.block[1]);
    CHECK_EQ(during.block[0], before.block[0]);
    CHECK_EQ(during.block[2], before.block[2]);
    CHECK_EQ(gc_blocks(&sm, c), 2); /* the new span's two copies are the change's own */
    /* Readers of the file still see the old content until the commit. */
    spans_of(&sm, f, &after);
    CHECK_EQ(after.crc[1], 2);
    CHECK_EQ(commit(&sm, 30, c, COOKIE, &nv), 0);
    CHECK_EQ(nv, v + 1);
    CHECK_EQ(version_of(&sm, f, &state), v + 1);
    CHECK_EQ(state, PT_FILE_LINKED);
    spans_of(&sm, f, &after);
    CHECK_EQ(after.n, 3);
    CHECK_EQ(after.crc[1], 0x99);
    CHECK_EQ(after.block[1], during.block[1]);
    CHECK_EQ(after.block[0], before.block[0]);
    /* The old version is kept under the change's id for the retention period, unlinked: its
     * only own copies are the replaced span's. */
    CHECK_EQ(version_of(&sm, c, &state), v);
    CHECK_EQ(state, PT_FILE_UNLINKED);
    spans_of(&sm, c, &old);
    CHECK_EQ(old.n, 3);
    CHECK_EQ(old.crc[1], 2);
    CHECK_EQ(old.block[1], before.block[1]);
    CHECK_EQ(gc_blocks(&sm, c), 2);
    CHECK_EQ(gc_blocks(&sm, f), 2); /* its new span's own; the unchanged copies are shared */
    /* GC forgets the old version: the file keeps every copy it lists. */
    CHECK_EQ(forget(&sm, 2000, c), 0);
    CHECK_EQ(table_entries(&sm, sm.blockrefs), 0);
    CHECK_EQ(table_entries(&sm, sm.changes), 0);
    CHECK_EQ(table_entries(&sm, sm.blockidx), 6);
    CHECK_EQ(gc_blocks(&sm, f), 6);
    CHECK_EQ(unlink_name(&sm, 2001, "f"), 0);
    CHECK_EQ(forget(&sm, 4000, f), 0);
    CHECK_EQ(table_entries(&sm, sm.blockidx), 0);
    CHECK_EQ(table_entries(&sm, sm.spans), 0);
    pt_shard_sm_close(&sm);
}

/* Two writers change one file: the first commit wins, the second gets PT_ESTALE and changes
 * nothing; a repeated commit answers the same version; refusals change nothing. */
TEST(shard_change_commit_is_compare_and_swap)
{
    struct pt_shard_sm sm;
    struct spans s;
    uint64_t f, c1, c2, c3, v, nv, again, plain;
    struct pt_shard_req cons = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = COOKIE};
    struct pt_cursor b;
    open_sm(&sm, "s");
    f = make_file(&sm, 10, "f", 2);
    v = version_of(&sm, f, NULL);
    CHECK_EQ(open_change(&sm, 20, f, v + 7, &c1, NULL), -PT_ESTALE); /* not the version seen */
    CHECK_EQ(open_change(&sm, 20, PT_INODE_ROOT, 0, &c1, NULL), -PT_EISDIR);
    CHECK_EQ(open_change(&sm, 20, PT_INODE_MAKE(1, 5), 0, &c1, NULL), -PT_EXDEV);
    CHECK_EQ(open_change(&sm, 20, f, 0, &c1, NULL), 0);
    CHECK_EQ(open_change(&sm, 20, f, v, &c2, NULL), 0);
    CHECK_EQ(open_change(&sm, 20, c1, 0, &c3, NULL), -PT_ESTALE); /* a change is not linked */
    CHECK_EQ(add_span(&sm, 21, c1, 0, 0xA1), 0);
    CHECK_EQ(add_span(&sm, 21, c2, SPAN, 0xB2), 0);
    CHECK_EQ(commit(&sm, 22, c1, COOKIE + 1, NULL), -PT_EACCES);
    CHECK_EQ(commit(&sm, 22, c1, COOKIE, &nv), 0);
    CHECK_EQ(nv, v + 1);
    CHECK_EQ(commit(&sm, 23, c1, COOKIE, &again), 0); /* the repeat of a lost reply */
    CHECK_EQ(again, nv);
    CHECK_EQ(commit(&sm, 23, c2, COOKIE, NULL), -PT_ESTALE); /* the loser */
    CHECK_EQ(version_of(&sm, f, NULL), v + 1);
    spans_of(&sm, f, &s);
    CHECK_EQ(s.crc[0], 0xA1);
    CHECK_EQ(s.crc[1], 2); /* not the loser's 0xB2 */
    spans_of(&sm, c2, &s);
    CHECK_EQ(s.crc[1], 0xB2); /* the loser's change stays as it was, until it expires */
    /* A change of the new version commits again. */
    CHECK_EQ(open_change(&sm, 24, f, v + 1, &c3, NULL), 0);
    CHECK_EQ(add_inline(&sm, 25, c3, 2 * SPAN, "tail"), 0);
    CHECK_EQ(commit(&sm, 26, c3, COOKIE, &nv), 0);
    CHECK_EQ(nv, v + 2);
    spans_of(&sm, f, &s);
    CHECK_EQ(s.size, 2 * SPAN + 4);
    CHECK_EQ(s.n, 3);
    /* A plain transient file is no change: nothing to commit. */
    CHECK_EQ(apply(&sm, 27, &cons, &b), 0);
    plain = pt_dec_u64(&b);
    CHECK_EQ(commit(&sm, 27, plain, COOKIE, NULL), -PT_EINVAL);
    CHECK_EQ(add_inline(&sm, 27, plain, 0, "x"), 0);
    CHECK_EQ(add_inline(&sm, 27, plain, 0, "yy"), -PT_EINVAL); /* grows only at its end */
    /* A removed file cannot take a commit. */
    CHECK_EQ(open_change(&sm, 28, f, 0, &c1, NULL), 0);
    CHECK_EQ(unlink_name(&sm, 29, "f"), 0);
    CHECK_EQ(commit(&sm, 30, c1, COOKIE, NULL), -PT_ESTALE);
    pt_shard_sm_close(&sm);
}

/* A commit waits for every span's proofs. */
TEST(shard_change_commit_needs_certified_spans)
{
    struct pt_shard_sm sm;
    struct pt_shard_req q = {.op = PT_SHARD_ADD_SPAN,
                             .cookie = COOKIE,
                             .offset = 0,
                             .size = SPAN,
                             .crc = 0x55,
                             .storage = PT_STORAGE_MIRRORED,
                             .data = 1,
                             .parity = 0,
                             .block_size = SPAN,
                             .n_services = 1,
                             .services = {11}};
    uint64_t f, c, v;
    open_sm(&sm, "s");
    f = make_file(&sm, 10, "f", 2);
    v = version_of(&sm, f, NULL);
    CHECK_EQ(open_change(&sm, 20, f, 0, &c, NULL), 0);
    q.id = c;
    CHECK_EQ(apply(&sm, 21, &q, NULL), 0);
    CHECK_EQ(commit(&sm, 22, c, COOKIE, NULL), -PT_EAGAIN);
    CHECK_EQ(version_of(&sm, f, NULL), v);
    pt_shard_sm_close(&sm);
}

/* Truncation drops whole spans at a span boundary; an append rewrites the last partial span;
 * a replacement whose end falls inside a span is refused. Copies only the change listed go to
 * `dropped` (erased after the retention), shared ones stay with the base file. */
TEST(shard_change_truncate_append_and_refusals)
{
    struct pt_shard_sm sm;
    struct pt_shard_req bad = {.op = PT_SHARD_ADD_SPAN,
                               .cookie = COOKIE,
                               .offset = 0,
                               .size = SPAN + 1,
                               .crc = 1,
                               .storage = PT_STORAGE_MIRRORED,
                               .data = 1,
                               .parity = 1,
                               .block_size = SPAN + 1,
                               .n_services = 2,
                               .services = {11, 12}};
    struct pt_gc_block g[8];
    uint64_t times[8];
    struct spans s;
    uint64_t f, c, t;
    open_sm(&sm, "s");
    f = make_file(&sm, 10, "f", 3);
    CHECK_EQ(open_change(&sm, 20, f, 0, &c, NULL), 0);
    bad.id = c;
    CHECK_EQ(apply(&sm, 21, &bad, NULL), -PT_EINVAL); /* would end inside span 1 */
    bad.offset = 100;
    CHECK_EQ(apply(&sm, 21, &bad, NULL), -PT_EINVAL); /* starts inside span 0 */
    bad.offset = 3 * SPAN + 1;
    CHECK_EQ(apply(&sm, 21, &bad, NULL), -PT_EINVAL); /* past the end: no holes */
    CHECK_EQ(truncate_spans(&sm, 22, c, SPAN + 1), -PT_EINVAL);
    CHECK_EQ(truncate_spans(&sm, 22, c, 4 * SPAN), -PT_EINVAL);
    /* Replace span 2 by a new one, then cut it away: its copies are the change's alone. */
    CHECK_EQ(add_span(&sm, 23, c, 2 * SPAN, 0x33), 0);
    CHECK_EQ(truncate_spans(&sm, 24, c, SPAN), 0);
    CHECK_EQ(truncate_spans(&sm, 24, c, SPAN), 0); /* a repeat */
    spans_of(&sm, c, &s);
    CHECK_EQ(s.size, SPAN);
    CHECK_EQ(s.n, 1);
    CHECK_EQ(pt_shard_sm_gc_dropped(&sm, 1u << 30, g, times, 8), 2); /* span 2's new copies */
    CHECK_EQ(times[0], 24);
    /* The base's span 1 and 2 copies stay: the base lists them. */
    CHECK_EQ(table_entries(&sm, sm.blockidx), 6);
    CHECK_EQ(table_entries(&sm, sm.blockrefs), 2); /* span 0, shared */
    /* Append: the last span rewritten bigger (offset 0, past the end) takes the tail. */
    bad.offset = 0;
    bad.size = bad.block_size = 2 * SPAN;
    CHECK_EQ(apply(&sm, 25, &bad, NULL), 0);
    spans_of(&sm, c, &s);
    CHECK_EQ(s.size, 2 * SPAN);
    CHECK_EQ(s.n, 1);
    /* Inline: "hello" grows to "hello world" in place of its one span. */
    {
        struct pt_shard_req cons = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = COOKIE};
        struct pt_shard_req l = {.op = PT_SHARD_LINK_FILE,
                                 .cookie = COOKIE,
                                 .target = PT_INODE_ROOT,
                                 .name = "g",
                                 .name_len = 1};
        struct pt_cursor b;
        uint64_t g_id;
        CHECK_EQ(apply(&sm, 30, &cons, &b), 0);
        g_id = l.id = pt_dec_u64(&b);
        CHECK_EQ(add_inline(&sm, 30, g_id, 0, "hello"), 0);
        CHECK_EQ(apply(&sm, 30, &l, NULL), 0);
        CHECK_EQ(open_change(&sm, 31, g_id, 0, &t, NULL), 0);
        CHECK_EQ(add_inline(&sm, 32, t, 0, "hello world"), 0);
        CHECK_EQ(commit(&sm, 33, t, COOKIE, NULL), 0);
        spans_of(&sm, g_id, &s);
        CHECK_EQ(s.size, 11);
        CHECK_EQ(s.n, 1);
        CHECK_EQ(s.crc[0], petrel_crc32c(0, "hello world", 11));
        /* O_TRUNC: everything cut, then new content; the cut repeated (its reply was lost) is
         * done, a stale duplicate of it arriving after the new content cuts nothing. */
        CHECK_EQ(open_change(&sm, 34, g_id, 0, &t, NULL), 0);
        CHECK_EQ(truncate_expect(&sm, 35, t, 0, 11), 0);
        CHECK_EQ(truncate_expect(&sm, 35, t, 0, 11), 0);
        CHECK_EQ(add_inline(&sm, 35, t, 0, "new"), 0);
        CHECK_EQ(truncate_expect(&sm, 35, t, 0, 11), -PT_ESTALE);
        CHECK_EQ(commit(&sm, 36, t, COOKIE, NULL), 0);
        spans_of(&sm, g_id, &s);
        CHECK_EQ(s.size, 3);
    }
    pt_shard_sm_close(&sm);
}

/* An abandoned change expires; GC then erases only the copies it alone listed. */
TEST(shard_change_abandoned_expires_and_releases_its_holds)
{
    struct pt_shard_sm sm;
    struct pt_shard_req ex = {.op = PT_SHARD_EXPIRE};
    uint64_t f, c, ids[4], cursor = 0, now;
    uint8_t state;
    open_sm(&sm, "s");
    f = make_file(&sm, 10, "f", 3);
    CHECK_EQ(open_change(&sm, 20, f, 0, &c, NULL), 0);
    CHECK_EQ(add_span(&sm, 21, c, 0, 0x44), 0);
    now = 21 + PT_SHARD_TRANSIENT_TTL_MS;
    CHECK_EQ(apply(&sm, now, &ex, NULL), 0);
    version_of(&sm, c, &state);
    CHECK_EQ(state, PT_FILE_EXPIRED);
    CHECK_EQ(pt_shard_sm_gc_candidates(&sm, now + 1000, &cursor, 100, ids, 4), 1);
    CHECK_EQ(ids[0], c);
    CHECK_EQ(gc_blocks(&sm, c), 2); /* its new span only */
    CHECK_EQ(forget(&sm, now + 1000, c), 0);
    CHECK_EQ(table_entries(&sm, sm.blockrefs), 0);
    CHECK_EQ(table_entries(&sm, sm.changes), 0);
    CHECK_EQ(table_entries(&sm, sm.blockidx), 6); /* the file's own */
    CHECK_EQ(gc_blocks(&sm, f), 6);
    pt_shard_sm_close(&sm);
}

/* Two holders both in GC: whichever goes first, a shared copy is erased exactly when its last
 * holder goes (never while a live file lists it). */
TEST(shard_change_gc_never_erases_a_shared_copy)
{
    struct pt_shard_sm sm;
    struct pt_shard_req ex = {.op = PT_SHARD_EXPIRE};
    struct pt_gc_block g[8];
    uint64_t times[8], f, c, now;
    open_sm(&sm, "s");
    /* The file goes while a change of it is open: the change keeps the shared copies. */
    f = make_file(&sm, 10, "f", 2);
    CHECK_EQ(open_change(&sm, 20, f, 0, &c, NULL), 0);
    CHECK_EQ(unlink_name(&sm, 21, "f"), 0);
    CHECK_EQ(gc_blocks(&sm, f), 0);
    CHECK_EQ(forget(&sm, 2000, f), 0);
    CHECK_EQ(table_entries(&sm, sm.blockidx), 4); /* now the change's */
    CHECK_EQ(table_entries(&sm, sm.blockrefs), 0);
    CHECK_EQ(pt_shard_sm_gc_dropped(&sm, 1u << 30, g, times, 8), 0); /* the change is live */
    CHECK_EQ(gc_blocks(&sm, c), 4);
    CHECK_EQ(commit(&sm, 2001, c, COOKIE, NULL), -PT_ESTALE);
    /* Both in GC, the first's round skipped the shared copies: the second's forget drops them
     * for erasure after the retention. */
    f = make_file(&sm, 3000, "g", 2);
    CHECK_EQ(open_change(&sm, 3001, f, 0, &c, NULL), 0);
    now = 3001 + PT_SHARD_TRANSIENT_TTL_MS;
    CHECK_EQ(apply(&sm, now, &ex, NULL), 0); /* the change expired */
    CHECK_EQ(gc_blocks(&sm, c), 0);         /* its round erases nothing */
    CHECK_EQ(unlink_name(&sm, now, "g"), 0);
    CHECK_EQ(forget(&sm, now + 1000, f), 0); /* the file goes first */
    CHECK_EQ(pt_shard_sm_gc_dropped(&sm, 1u << 30, g, times, 8), 4);
    CHECK_EQ(times[0], now + 1000);
    CHECK_EQ(forget(&sm, now + 2000, c), 0);
    CHECK_EQ(table_entries(&sm, sm.blockidx), 4); /* the first test file's change, still live */
    pt_shard_sm_close(&sm);
}

/* Repair swaps a copy in every span record that lists it, so versions stay identical. */
TEST(shard_change_repair_swaps_every_holder)
{
    struct pt_shard_sm sm;
    struct pt_shard_req r = {.op = PT_SHARD_REPLACE_BLOCK, .n_services = 2, .services = {11, 31}};
    struct pt_shard_req sp = {.op = PT_SHARD_SPANS};
    struct pt_cursor b;
    struct pt_span s;
    struct spans v;
    uint64_t f, c, nv;
    open_sm(&sm, "s");
    f = make_file(&sm, 10, "f", 2);
    CHECK_EQ(open_change(&sm, 20, f, 0, &c, NULL), 0);
    spans_of(&sm, f, &v);
    r.id = f;
    r.offset = SPAN;
    r.target = v.block[1];
    CHECK_EQ(apply(&sm, 21, &r, &b), 0);
    CHECK_EQ(pt_dec_u8(&b), 1);
    sp.id = c;
    sp.offset = SPAN;
    CHECK_EQ(query(&sm, &sp, &b), 0);
    pt_dec_u64(&b);
    CHECK_EQ(pt_dec_u16(&b), 1);
    CHECK_OK(pt_span_decode(&b, &s));
    CHECK_EQ(s.blocks[0].service, 31);
    CHECK_EQ(s.blocks[0].block, v.block[1]);
    CHECK_EQ(gc_blocks(&sm, c), 0); /* still shared, on the new service */
    CHECK_EQ(commit(&sm, 22, c, COOKIE, &nv), 0);
    CHECK_EQ(gc_blocks(&sm, c), 0); /* nothing changed: the old version owns nothing */
    CHECK_EQ(forget(&sm, 5000, c), 0);
    CHECK_EQ(table_entries(&sm, sm.blockrefs), 0);
    CHECK_EQ(table_entries(&sm, sm.blockidx), 4);
    pt_shard_sm_close(&sm);
}

/* Snapshots carry the holders and changes; a restored store continues identically. */
TEST(shard_change_snapshot_round_trip)
{
    struct pt_shard_sm sm, copy;
    uint8_t *snap, *snap2;
    size_t len, len2;
    uint64_t f, c, nv;
    open_sm(&sm, "s");
    open_sm(&copy, "copy");
    f = make_file(&sm, 10, "f", 2);
    CHECK_EQ(open_change(&sm, 20, f, 0, &c, NULL), 0);
    CHECK_EQ(add_span(&sm, 21, c, SPAN, 0x77), 0);
    CHECK_OK(pt_shard_sm_snapshot(&sm, &snap, &len));
    CHECK_EQ(pt_get_le32(snap + 4), 5);
    CHECK_OK(pt_shard_sm_restore(&copy, snap, len));
    CHECK_EQ(table_entries(&copy, copy.blockrefs), 2);
    CHECK_EQ(table_entries(&copy, copy.changes), 1);
    CHECK_EQ(commit(&copy, 22, c, COOKIE, &nv), 0);
    CHECK_EQ(commit(&sm, 22, c, COOKIE, &nv), 0);
    free(snap);
    CHECK_OK(pt_shard_sm_snapshot(&sm, &snap, &len));
    CHECK_OK(pt_shard_sm_snapshot(&copy, &snap2, &len2));
    CHECK_EQ(len, len2);
    CHECK(memcmp(snap, snap2, len) == 0);
    free(snap);
    free(snap2);
    pt_shard_sm_close(&sm);
    pt_shard_sm_close(&copy);
}

/* ---- compaction (COMPACT_CHANGE) -------------------------------------------------------- */

/* Span k of the compaction tests holds SPAN bytes 'a' + k; crc_of(k, n): the CRC of spans
 * k..k+n-1 one after the other. */
static uint32_t crc_of(unsigned k, unsigned n)
{
    static uint8_t buf[8 * SPAN];
    unsigned i;
    for (i = 0; i < n; i++)
        memset(buf + (size_t)i * SPAN, 'a' + (int)(k + i), SPAN);
    return petrel_crc32c(0, buf, (size_t)n * SPAN);
}

/* A mirrored span of `size` bytes at off (services 21, 22), certified, by `cookie`. */
static int add_span_sized(struct pt_shard_sm *sm, uint64_t now, uint64_t id, uint64_t cookie,
                          uint64_t off, uint32_t size, uint32_t crc)
{
    struct pt_shard_req q = {.op = PT_SHARD_ADD_SPAN,
                             .id = id,
                             .cookie = cookie,
                             .offset = off,
                             .size = size,
                             .crc = crc,
                             .storage = PT_STORAGE_MIRRORED,
                             .data = 1,
                             .parity = 1,
                             .block_size = size,
                             .n_services = 2,
                             .services = {21, 22}};
    struct pt_shard_req c = {
        .op = PT_SHARD_CERTIFY_SPAN, .id = id, .cookie = cookie, .offset = off};
    static const uint8_t proofs[16];
    int rc = apply(sm, now, &q, NULL);
    if (rc) return rc;
    c.data_len = 16;
    c.data_ptr = proofs;
    return apply(sm, now, &c, NULL);
}

/* A linked file of n spans of SPAN bytes with real CRCs (span k holds 'a' + k). */
static uint64_t make_real_file(struct pt_shard_sm *sm, uint64_t now, const char *name, unsigned n)
{
    struct pt_shard_req q = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = COOKIE};
    struct pt_shard_req l = {.op = PT_SHARD_LINK_FILE, .cookie = COOKIE, .target = PT_INODE_ROOT};
    struct pt_cursor b;
    uint64_t id;
    unsigned i;
    CHECK_EQ(apply(sm, now, &q, &b), 0);
    id = pt_dec_u64(&b);
    for (i = 0; i < n; i++)
        CHECK_EQ(add_span_sized(sm, now, id, COOKIE, (uint64_t)i * SPAN, SPAN, crc_of(i, 1)), 0);
    l.id = id;
    l.name_len = (uint8_t)strlen(name);
    memcpy(l.name, name, l.name_len);
    CHECK_EQ(apply(sm, now, &l, NULL), 0);
    return id;
}

#define COMPACTOR 0xC0C0u

static int compact(struct pt_shard_sm *sm, uint64_t now, uint64_t change, uint64_t *version)
{
    struct pt_shard_req q = {.op = PT_SHARD_COMPACT_CHANGE, .id = change, .cookie = COMPACTOR};
    struct pt_cursor b;
    int rc = apply(sm, now, &q, &b);
    if (rc == 0 && version) *version = pt_dec_u64(&b);
    return rc;
}

/* A compaction's change file: spans [first, first + n) of file f merged into one. */
static uint64_t compaction_of(struct pt_shard_sm *sm, uint64_t now, uint64_t f, unsigned first,
                              unsigned n)
{
    struct pt_shard_req q = {.op = PT_SHARD_OPEN_CHANGE, .id = f, .cookie = COMPACTOR};
    struct pt_cursor b;
    uint64_t c;
    CHECK_EQ(apply(sm, now, &q, &b), 0);
    c = pt_dec_u64(&b);
    CHECK_EQ(
        add_span_sized(sm, now, c, COMPACTOR, (uint64_t)first * SPAN, n * SPAN, crc_of(first, n)),
        0);
    return c;
}

/* The CRC of a concatenation the shard computes from the parts' CRCs is the real one. */
TEST(shard_compact_merges_a_run_keeping_version_and_bytes)
{
    struct pt_shard_sm sm;
    struct spans before, after, old;
    uint64_t f, c, v, nv;
    uint8_t state;
    open_sm(&sm, "s");
    f = make_real_file(&sm, 10, "f", 5);
    spans_of(&sm, f, &before);
    v = version_of(&sm, f, NULL);
    /* Spans 1, 2, 3 become one span of 3 x SPAN bytes. */
    c = compaction_of(&sm, 20, f, 1, 3);
    CHECK_EQ(compact(&sm, 30, c, &nv), 0);
    CHECK_EQ(nv, v); /* the content did not change: neither does the version */
    CHECK_EQ(version_of(&sm, f, &state), v);
    CHECK_EQ(state, PT_FILE_LINKED);
    spans_of(&sm, f, &after);
    CHECK_EQ(after.n, 3);
    CHECK_EQ(after.size, before.size);
    CHECK_EQ(after.off[1], SPAN);
    CHECK_EQ(after.len[1], 3 * SPAN);
    CHECK_EQ(after.crc[1], crc_of(1, 3));
    CHECK_EQ(after.block[0], before.block[0]);
    CHECK_EQ(after.block[2], before.block[4]);
    /* The old spans stay readable under the change's id, unlinked, for the retention period;
     * they are its own copies now (3 spans x 2 copies), the merged span the file's. */
    CHECK_EQ(version_of(&sm, c, &state), v);
    CHECK_EQ(state, PT_FILE_UNLINKED);
    spans_of(&sm, c, &old);
    CHECK_EQ(old.n, 5);
    CHECK(memcmp(old.block, before.block, sizeof(before.block)) == 0);
    CHECK_EQ(gc_blocks(&sm, c), 6);
    CHECK_EQ(gc_blocks(&sm, f), 2);
    /* Every copy still has its holder: 5 old spans and the merged one, 2 copies each, and
     * none waits for erasure. */
    CHECK_EQ(table_entries(&sm, sm.blockidx), 12);
    CHECK_EQ(table_entries(&sm, sm.dropped), 0);
    /* A repeat (lost reply) answers the same. */
    CHECK_EQ(compact(&sm, 31, c, &nv), 0);
    CHECK_EQ(nv, v);
    /* GC forgets the old spans; the file keeps every copy it lists. */
    CHECK_EQ(forget(&sm, 2000, c), 0);
    CHECK_EQ(table_entries(&sm, sm.blockrefs), 0);
    CHECK_EQ(table_entries(&sm, sm.blockidx), 6);
    CHECK_EQ(gc_blocks(&sm, f), 6);
    pt_shard_sm_close(&sm);
}

/* A concurrent change wins: a writer's commit after a compaction still succeeds (the version
 * did not move) and takes its own spans; a writer's commit before it makes the compaction
 * fail with PT_ESTALE and change nothing. GC never erases a copy a version still lists. */
TEST(shard_compact_loses_to_a_concurrent_change)
{
    struct pt_shard_sm sm;
    struct spans s, w;
    uint64_t f, c, wc, v, nv;
    open_sm(&sm, "s");
    f = make_real_file(&sm, 10, "f", 4);
    v = version_of(&sm, f, NULL);
    /* The writer opened before the compaction swapped, commits after it. */
    CHECK_EQ(open_change(&sm, 15, f, v, &wc, NULL), 0);
    CHECK_EQ(add_inline(&sm, 16, wc, 4 * SPAN, "appended"), 0);
    c = compaction_of(&sm, 20, f, 0, 4);
    CHECK_EQ(compact(&sm, 21, c, NULL), 0);
    spans_of(&sm, f, &s);
    CHECK_EQ(s.n, 1);
    CHECK_EQ(commit(&sm, 22, wc, COOKIE, &nv), 0); /* not refused by the compaction */
    CHECK_EQ(nv, v + 1);
    spans_of(&sm, f, &s);
    spans_of(&sm, wc, &w);
    CHECK_EQ(s.n, 5); /* the writer's version: the four old spans and its append */
    CHECK_EQ(s.size, 4 * SPAN + 8);
    CHECK_EQ(s.crc[3], crc_of(3, 1));
    CHECK_EQ(w.n, 1); /* the merged span went to the old version */
    /* Every copy is listed by someone: the merged span's only by the writer's old version,
     * the old spans' by the file (their other holder, the compaction's change, is there too). */
    CHECK_EQ(gc_blocks(&sm, wc), 2);
    CHECK_EQ(gc_blocks(&sm, c), 0);
    CHECK_EQ(gc_blocks(&sm, f), 0);
    CHECK_EQ(forget(&sm, 3000, c), 0);
    CHECK_EQ(forget(&sm, 3000, wc), 0);
    CHECK_EQ(gc_blocks(&sm, f), 8);
    CHECK_EQ(table_entries(&sm, sm.blockidx), 8);
    /* A writer that commits first: the compaction is stale and changes nothing. */
    v = version_of(&sm, f, NULL);
    c = compaction_of(&sm, 40, f, 0, 4);
    CHECK_EQ(open_change(&sm, 41, f, v, &wc, NULL), 0);
    CHECK_EQ(commit(&sm, 42, wc, COOKIE, &nv), 0);
    CHECK_EQ(compact(&sm, 43, c, NULL), -PT_ESTALE);
    spans_of(&sm, f, &s);
    CHECK_EQ(s.n, 5);
    CHECK_EQ(version_of(&sm, f, NULL), v + 1);
    pt_shard_sm_close(&sm);
}

/* What is not the same bytes is refused, and nothing changes: a wrong CRC, a "run" of one
 * span, a change that also appended, a merged span across a span that changed in between. */
TEST(shard_compact_refuses_other_bytes)
{
    struct pt_shard_sm sm;
    struct pt_shard_req q = {.op = PT_SHARD_OPEN_CHANGE, .cookie = COMPACTOR};
    struct spans s;
    struct pt_cursor b;
    uint64_t f, c, v;
    open_sm(&sm, "s");
    f = make_real_file(&sm, 10, "f", 4);
    v = version_of(&sm, f, NULL);
    q.id = f;
    /* A merged span whose CRC is not the run's. */
    CHECK_EQ(apply(&sm, 20, &q, &b), 0);
    c = pt_dec_u64(&b);
    CHECK_EQ(add_span_sized(&sm, 20, c, COMPACTOR, 0, 2 * SPAN, crc_of(0, 2) ^ 1), 0);
    CHECK_EQ(compact(&sm, 21, c, NULL), -PT_EINVAL);
    /* A run of one span (a rewrite, not a merge). */
    CHECK_EQ(apply(&sm, 22, &q, &b), 0);
    c = pt_dec_u64(&b);
    CHECK_EQ(add_span_sized(&sm, 22, c, COMPACTOR, SPAN, SPAN, crc_of(1, 1)), 0);
    CHECK_EQ(compact(&sm, 23, c, NULL), -PT_EINVAL);
    /* A merge plus an append. */
    c = compaction_of(&sm, 24, f, 0, 2);
    CHECK_EQ(add_inline(&sm, 24, c, 4 * SPAN, "x"), -PT_EACCES); /* not its cookie */
    {
        struct pt_shard_req a = {.op = PT_SHARD_ADD_INLINE,
                                 .id = c,
                                 .cookie = COMPACTOR,
                                 .offset = 4 * SPAN,
                                 .size = 1,
                                 .data_len = 1};
        a.crc = petrel_crc32c(0, "x", 1);
        a.data_ptr = (const uint8_t *)"x";
        CHECK_EQ(apply(&sm, 24, &a, NULL), 0);
    }
    CHECK_EQ(compact(&sm, 25, c, NULL), -PT_EINVAL);
    /* Two merged spans whose CRCs are swapped: each covers a run, neither holds its bytes. */
    CHECK_EQ(apply(&sm, 26, &q, &b), 0);
    c = pt_dec_u64(&b);
    CHECK_EQ(add_span_sized(&sm, 26, c, COMPACTOR, 0, 2 * SPAN, crc_of(2, 2)), 0);
    CHECK_EQ(add_span_sized(&sm, 26, c, COMPACTOR, 2 * SPAN, 2 * SPAN, crc_of(0, 2)), 0);
    CHECK_EQ(compact(&sm, 27, c, NULL), -PT_EINVAL);
    spans_of(&sm, f, &s);
    CHECK_EQ(s.n, 4);
    CHECK_EQ(version_of(&sm, f, NULL), v);
    /* The same two merged spans with their own CRCs: one compaction of two runs. */
    CHECK_EQ(apply(&sm, 28, &q, &b), 0);
    c = pt_dec_u64(&b);
    CHECK_EQ(add_span_sized(&sm, 28, c, COMPACTOR, 0, 2 * SPAN, crc_of(0, 2)), 0);
    CHECK_EQ(add_span_sized(&sm, 28, c, COMPACTOR, 2 * SPAN, 2 * SPAN, crc_of(2, 2)), 0);
    CHECK_EQ(compact(&sm, 29, c, NULL), 0);
    spans_of(&sm, f, &s);
    CHECK_EQ(s.n, 2);
    CHECK_EQ(version_of(&sm, f, NULL), v);
    pt_shard_sm_close(&sm);
}
