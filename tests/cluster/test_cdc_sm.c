/*
 * Deterministic tests of the CDC state machine: transactions are recorded, advanced only
 * forward, finished once, found again by their client key, trimmed, snapshotted; malformed
 * items are refused without change.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/cdc/cdc_sm.h"
#include "cluster/cdc/cdc_steps.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/prng.h"
#include "test.h"

static struct pt_shard_apply_out out;

/* Apply one item; returns its status, body after the status in *body. */
static int apply_item(struct pt_cdc_sm *sm, const uint8_t *item, int len, struct pt_cursor *body)
{
    struct pt_shard_entry_builder b;
    uint8_t entry[2048];
    struct pt_cursor dummy;
    int n;
    CHECK_OK(len);
    pt_shard_entry_init(&b, entry, sizeof(entry), 1);
    CHECK_OK(pt_shard_entry_add_raw(&b, item, (size_t)len));
    n = pt_shard_entry_finish(&b);
    CHECK_OK(pt_cdc_sm_apply(sm, entry, (size_t)n, &out));
    CHECK_EQ(out.count, 1);
    return pt_shard_reply_open(out.reply[0], out.len[0], body ? body : &dummy);
}

static uint64_t begin(struct pt_cdc_sm *sm, uint64_t key, uint8_t op, int *done)
{
    struct pt_cdc_req q;
    uint8_t item[600];
    struct pt_cursor b;
    uint64_t id;
    memset(&q, 0, sizeof(q));
    q.op = op;
    q.key = key;
    q.dir = 1;
    q.dir2 = op == PT_CDC_RENAME ? 2 : 0;
    q.name_len = 1;
    q.name[0] = 'a';
    if (op == PT_CDC_RENAME) {
        q.name2_len = 1;
        q.name2[0] = 'b';
    }
    CHECK_EQ(apply_item(sm, item, pt_cdc_enc_begin(item, sizeof(item), &q, 1), &b), 0);
    id = pt_dec_u64(&b);
    if (done) *done = pt_dec_u8(&b);
    return id;
}

TEST(cdc_transactions_record_steps_and_finish_once)
{
    struct pt_cdc_sm sm;
    uint8_t item[64];
    const struct pt_cdc_txn *t;
    uint64_t a, b, again;
    int done;
    pt_cdc_sm_init(&sm);
    a = begin(&sm, 111, PT_CDC_MKDIR, &done);
    CHECK_EQ(done, 0);
    b = begin(&sm, 222, PT_CDC_RENAME, NULL);
    CHECK_EQ(a, 1);
    CHECK_EQ(b, 2);
    /* A retried request joins its transaction. */
    again = begin(&sm, 111, PT_CDC_MKDIR, NULL);
    CHECK_EQ(again, a);
    CHECK_EQ(pt_cdc_sm_next_active(&sm)->id, a);
    CHECK_EQ(apply_item(&sm, item,
                        pt_cdc_enc_step(item, sizeof(item), a, 1, 0x0100000000000002ull, 1, 0),
                        NULL),
             0);
    /* A step proposed twice (old and new leader) is applied once. */
    CHECK_EQ(apply_item(&sm, item, pt_cdc_enc_step(item, sizeof(item), a, 1, 7, 1, 0), NULL),
             -PT_ESTALE);
    t = pt_cdc_sm_find(&sm, a);
    CHECK_EQ(t->step, 1);
    CHECK_EQ(t->x, 0x0100000000000002ull);
    CHECK_EQ(apply_item(&sm, item, pt_cdc_enc_finish(item, sizeof(item), a, 0, t->x), NULL), 0);
    CHECK_EQ(apply_item(&sm, item, pt_cdc_enc_finish(item, sizeof(item), a, -PT_EEXIST, 0), NULL),
             -PT_ESTALE);
    CHECK_EQ(apply_item(&sm, item, pt_cdc_enc_step(item, sizeof(item), a, 2, 0, 0, 0), NULL),
             -PT_ESTALE);
    CHECK_EQ(pt_cdc_sm_next_active(&sm)->id, b);
    /* The finished transaction answers a late retry with its outcome. */
    again = begin(&sm, 111, PT_CDC_MKDIR, &done);
    CHECK_EQ(again, a);
    CHECK_EQ(done, 1);
    CHECK_EQ(apply_item(&sm, item, pt_cdc_enc_finish(item, sizeof(item), 99, 0, 0), NULL),
             -PT_ENOENT);
    pt_cdc_sm_free(&sm);
}

TEST(cdc_snapshot_round_trip_and_corruption)
{
    struct pt_cdc_sm sm, copy;
    uint8_t item[64], *snap, *snap2;
    size_t len, len2;
    unsigned i;
    pt_cdc_sm_init(&sm);
    for (i = 0; i < 20; i++)
        begin(&sm, 1000 + i, (uint8_t)(1 + i % 3), NULL);
    for (i = 1; i <= 20; i += 2)
        CHECK_EQ(
            apply_item(&sm, item, pt_cdc_enc_finish(item, sizeof(item), i, -PT_ENOENT, 0), NULL),
            0);
    CHECK_OK(pt_cdc_sm_snapshot(&sm, &snap, &len));
    pt_cdc_sm_init(&copy);
    CHECK_OK(pt_cdc_sm_restore(&copy, snap, len));
    CHECK_OK(pt_cdc_sm_snapshot(&copy, &snap2, &len2));
    CHECK_EQ(len2, len);
    CHECK_MEM(snap2, snap, len);
    CHECK_EQ(pt_cdc_sm_next_active(&copy)->id, 2);
    CHECK_EQ(copy.next_id, 21);
    snap[len / 2] ^= 4;
    CHECK_EQ(pt_cdc_sm_restore(&copy, snap, len), -PT_ECORRUPT);
    CHECK_EQ(pt_cdc_sm_restore(&copy, snap, 10), -PT_ECORRUPT);
    CHECK_EQ(copy.count, 20); /* a refused restore leaves the state alone */
    free(snap);
    free(snap2);
    pt_cdc_sm_free(&sm);
    pt_cdc_sm_free(&copy);
}

TEST(cdc_finished_transactions_are_trimmed)
{
    struct pt_cdc_sm sm;
    uint8_t item[64];
    unsigned i, n = PT_CDC_KEEP_FINISHED + 50;
    pt_cdc_sm_init(&sm);
    for (i = 0; i < n; i++) {
        uint64_t id = begin(&sm, 5000 + i, PT_CDC_RMDIR, NULL);
        CHECK_EQ(apply_item(&sm, item, pt_cdc_enc_finish(item, sizeof(item), id, 0, 0), NULL), 0);
    }
    CHECK_EQ(sm.count, PT_CDC_KEEP_FINISHED);
    CHECK(pt_cdc_sm_find(&sm, 1) == NULL);
    CHECK(pt_cdc_sm_find(&sm, n) != NULL);
    pt_cdc_sm_free(&sm);
}

TEST(cdc_malformed_items_change_nothing)
{
    struct pt_cdc_sm sm;
    struct pt_prng g;
    uint8_t item[128], *s1, *s2;
    size_t l1, l2;
    unsigned i;
    pt_cdc_sm_init(&sm);
    begin(&sm, 1, PT_CDC_MKDIR, NULL);
    CHECK_OK(pt_cdc_sm_snapshot(&sm, &s1, &l1));
    pt_prng_seed(&g, test_seed());
    for (i = 0; i < 3000; i++) {
        int len = (int)pt_prng_below(&g, sizeof(item));
        pt_prng_fill(&g, item, (size_t)len);
        if (len)
            item[0] = (uint8_t)(pt_prng_below(&g, 2) ? 4 + pt_prng_below(&g, 250)
                                                     : 1 + pt_prng_below(&g, 3));
        if (len > 1 && item[0] == PT_CDC_BEGIN) item[2] = 0;    /* invalid CDC op: refused */
        if (len > 1 && item[0] != PT_CDC_BEGIN) item[1] = 0xEE; /* unknown transaction */
        CHECK(apply_item(&sm, item, len, NULL) < 0);
    }
    CHECK_OK(pt_cdc_sm_snapshot(&sm, &s2, &l2));
    CHECK_EQ(l1, l2);
    CHECK_MEM(s1, s2, l1);
    free(s1);
    free(s2);
    pt_cdc_sm_free(&sm);
}

/*
 * A rename onto an existing name records the replaced entry with its step (long STEP form);
 * a short STEP keeps it; it survives a snapshot, so a new leader's rollback or replacement
 * uses the same entry.
 */
TEST(cdc_rename_records_the_replaced_entry)
{
    struct pt_cdc_sm sm, copy;
    uint8_t item[64], *snap;
    size_t len;
    const struct pt_cdc_txn *t;
    uint64_t a;
    pt_cdc_sm_init(&sm);
    a = begin(&sm, 77, PT_CDC_RENAME, NULL);
    CHECK_EQ(
        apply_item(&sm, item, pt_cdc_enc_step(item, sizeof(item), a, 1, 5, PT_TYPE_FILE, 0), NULL),
        0);
    CHECK_EQ(apply_item(&sm, item,
                        pt_cdc_enc_step_repl(item, sizeof(item), a, 3, 5, PT_TYPE_FILE, 0,
                                             0x0100000000000009ull, PT_TYPE_FILE),
                        NULL),
             0);
    t = pt_cdc_sm_find(&sm, a);
    CHECK(t != NULL);
    CHECK_EQ(t->repl, 0x0100000000000009ull);
    CHECK_EQ(t->repl_type, PT_TYPE_FILE);
    CHECK_EQ(
        apply_item(&sm, item, pt_cdc_enc_step(item, sizeof(item), a, 4, 5, PT_TYPE_FILE, 0), NULL),
        0);
    t = pt_cdc_sm_find(&sm, a);
    CHECK_EQ(t->step, 4);
    CHECK_EQ(t->repl, 0x0100000000000009ull);
    /* A stale long STEP changes nothing, replaced entry included. */
    CHECK_EQ(apply_item(
                 &sm, item,
                 pt_cdc_enc_step_repl(item, sizeof(item), a, 2, 5, PT_TYPE_FILE, 0, 3, PT_TYPE_DIR),
                 NULL),
             -PT_ESTALE);
    CHECK_EQ(pt_cdc_sm_find(&sm, a)->repl, 0x0100000000000009ull);
    /* A truncated long form is malformed. */
    CHECK_EQ(
        apply_item(
            &sm, item,
            pt_cdc_enc_step_repl(item, sizeof(item), a, 5, 5, PT_TYPE_FILE, 0, 3, PT_TYPE_DIR) - 1,
            NULL),
        -PT_EPROTO);
    CHECK_OK(pt_cdc_sm_snapshot(&sm, &snap, &len));
    pt_cdc_sm_init(&copy);
    CHECK_OK(pt_cdc_sm_restore(&copy, snap, len));
    t = pt_cdc_sm_find(&copy, a);
    CHECK(t != NULL);
    CHECK_EQ(t->repl, 0x0100000000000009ull);
    CHECK_EQ(t->repl_type, PT_TYPE_FILE);
    CHECK_EQ(t->step, 4);
    free(snap);
    pt_cdc_sm_free(&copy);
    pt_cdc_sm_free(&sm);
}

/*
 * Steps naming a shard the deployment does not have are refused at once (-PT_ENOENT), never
 * left to be retried for ever: the router points at a closed port and must not be needed.
 * Before the fix such a step came back empty (retry later) after the router's whole budget.
 */
TEST(cdc_steps_refuse_missing_shards_without_retrying)
{
    struct pt_router r;
    struct pt_cdc_txn t;
    struct pt_cdc_outcome o;
    pt_router_init(&r, "127.0.0.1:1", 1, 1, 1);
    memset(&t, 0, sizeof(t));
    t.id = 5;
    t.req.op = PT_CDC_RENAME;
    t.req.key = 0xe6f010;
    t.req.dir = 0xca00000000000001ull; /* shard 202 */
    memcpy(t.req.name, "dir", 3);
    t.req.name_len = 3;
    t.req.dir2 = PT_INODE_MAKE(0, 2);
    memcpy(t.req.name2, "moved", 5);
    t.req.name2_len = 5;
    pt_cdc_run_step(&r, 1, &t, &o);
    CHECK_EQ(o.kind, PT_CDC_OUT_FINISH);
    CHECK_EQ(o.status, -PT_ENOENT);

    /* The source locked, the target directory on a missing shard: roll back (file and
       directory moves: the no-loops walk meets the missing shard too). */
    t.req.dir = PT_INODE_MAKE(0, 9);
    t.req.dir2 = PT_INODE_MAKE(3, 2);
    t.step = 1;
    t.x = PT_INODE_MAKE(0, 10);
    t.type = PT_TYPE_FILE;
    pt_cdc_run_step(&r, 2, &t, &o);
    CHECK_EQ(o.kind, PT_CDC_OUT_STEP);
    CHECK_EQ(o.step, PT_CDC_STEP_ROLLBACK);
    CHECK_EQ(o.err, -PT_ENOENT);
    t.type = PT_TYPE_DIR;
    pt_cdc_run_step(&r, 2, &t, &o);
    CHECK_EQ(o.kind, PT_CDC_OUT_STEP);
    CHECK_EQ(o.step, PT_CDC_STEP_ROLLBACK);
    CHECK_EQ(o.err, -PT_ENOENT);

    /* An rmdir in, and a mkdir on, a missing shard. */
    memset(&t, 0, sizeof(t));
    t.id = 6;
    t.req.op = PT_CDC_RMDIR;
    t.req.dir = PT_INODE_MAKE(200, 1);
    memcpy(t.req.name, "d", 1);
    t.req.name_len = 1;
    pt_cdc_run_step(&r, 1, &t, &o);
    CHECK_EQ(o.kind, PT_CDC_OUT_FINISH);
    CHECK_EQ(o.status, -PT_ENOENT);
    t.req.op = PT_CDC_MKDIR;
    t.req.dir = PT_INODE_ROOT;
    t.shard = 4; /* chosen when the deployment had more shards */
    pt_cdc_run_step(&r, 1, &t, &o);
    CHECK_EQ(o.kind, PT_CDC_OUT_FINISH);
    CHECK_EQ(o.status, -PT_ENOENT);
}

/* RENAME_INODE on the wire: the two expectations follow name2; expect 0 or a truncation is
 * refused; the other ops carry no expectation bytes. */
TEST(cdc_rename_inode_request_codec)
{
    struct pt_cdc_req q, d;
    uint8_t buf[600];
    int n, plain, i;
    memset(&q, 0, sizeof(q));
    q.op = PT_CDC_RENAME;
    q.key = 3;
    q.dir = 4;
    q.dir2 = 5;
    q.name_len = 1;
    q.name[0] = 'a';
    q.name2_len = 1;
    q.name2[0] = 'b';
    q.expect = 6;
    q.expect2 = 7;
    plain = pt_cdc_req_encode(&q, buf, sizeof(buf));
    CHECK_EQ(plain, 1 + 8 + 8 + 2 + 8 + 2);
    q.op = PT_CDC_RENAME_INODE;
    n = pt_cdc_req_encode(&q, buf, sizeof(buf));
    CHECK_EQ(n, plain + 16);
    CHECK_EQ(pt_get_le64(buf + plain), 6);
    CHECK_EQ(pt_get_le64(buf + plain + 8), 7);
    CHECK_OK(pt_cdc_req_decode(&d, buf, (size_t)n));
    CHECK_EQ(d.expect, 6);
    CHECK_EQ(d.expect2, 7);
    for (i = 0; i < n; i++)
        CHECK_EQ(pt_cdc_req_decode(&d, buf, (size_t)i), -PT_EPROTO);
    q.expect = 0; /* the source must be named */
    n = pt_cdc_req_encode(&q, buf, sizeof(buf));
    CHECK_EQ(pt_cdc_req_decode(&d, buf, (size_t)n), -PT_EINVAL);
}
