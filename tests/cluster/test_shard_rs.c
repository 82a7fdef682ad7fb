/*
 * The shard's redundancy ops on the state machine alone: ADD_RS_SPAN (geometry, cell CRCs,
 * block CRCs combined from them, retries, refusals), storage policies (SET/GET_POLICY), the
 * repair queue (REPORT_BAD_BLOCK, REPAIR_LIST), and that snapshots carry both new tables.
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

static uint8_t rs_reply[PT_SHARD_MSG_MAX];
static size_t rs_reply_len;
static struct pt_shard_apply_out rs_out;

static void rs_open(struct pt_shard_sm *sm, const char *name)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", test_tmpdir(), name);
    CHECK_OK(pt_shard_sm_open(sm, dir, 0, 1));
}

static int rs_apply(struct pt_shard_sm *sm, uint64_t now, const struct pt_shard_req *q,
                    struct pt_cursor *body)
{
    static uint8_t entry[PT_SHARD_MSG_MAX];
    struct pt_cursor dummy;
    struct pt_shard_entry_builder b;
    int n;
    pt_shard_entry_init(&b, entry, sizeof(entry), now);
    CHECK_OK(pt_shard_entry_add(&b, q));
    n = pt_shard_entry_finish(&b);
    CHECK_OK(n);
    CHECK_OK(pt_shard_sm_apply(sm, entry, (size_t)n, &rs_out));
    CHECK_EQ(rs_out.count, 1);
    memcpy(rs_reply, rs_out.reply[0], rs_out.len[0]);
    rs_reply_len = rs_out.len[0];
    return pt_shard_reply_open(rs_reply, rs_reply_len, body ? body : &dummy);
}

static int rs_query(struct pt_shard_sm *sm, const struct pt_shard_req *q, struct pt_cursor *body)
{
    uint8_t req[PT_SHARD_MSG_MAX];
    struct pt_cursor dummy;
    int n = pt_shard_req_encode(q, req, sizeof(req));
    CHECK_OK(n);
    CHECK_OK(pt_shard_sm_query(sm, req, (size_t)n, rs_reply, sizeof(rs_reply), &rs_reply_len));
    return pt_shard_reply_open(rs_reply, rs_reply_len, body ? body : &dummy);
}

static uint64_t rs_construct(struct pt_shard_sm *sm, uint64_t cookie)
{
    struct pt_shard_req q = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = cookie};
    struct pt_cursor b;
    CHECK_EQ(rs_apply(sm, 1, &q, &b), 0);
    return pt_dec_u64(&b);
}

static uint8_t cells[4 * PT_RS_ROWS_MAX * PT_SPAN_BLOCKS_MAX];

/* An ADD_RS_SPAN request for RS(d, p) of `size` bytes with made-up cell CRCs. */
static void rs_req(struct pt_shard_req *q, uint64_t id, uint32_t size, unsigned d, unsigned p)
{
    unsigned i, n = d + p, rows;
    memset(q, 0, sizeof(*q));
    q->op = PT_SHARD_ADD_RS_SPAN;
    q->id = id;
    q->cookie = 9;
    q->size = size;
    q->crc = 0x1234;
    q->storage = PT_STORAGE_RS;
    q->data = (uint8_t)d;
    q->parity = (uint8_t)p;
    q->block_size = pt_rs_block_size(size, d);
    rows = pt_rs_rows(q->block_size);
    for (i = 0; i < rows * n; i++)
        pt_put_le32(cells + 4 * i, 0x1000u + i);
    q->data_len = 4 * rows * n;
    q->data_ptr = cells;
    q->n_services = (uint8_t)(n > PT_SPAN_BLOCKS_MAX ? PT_SPAN_BLOCKS_MAX : n);
    for (i = 0; i < q->n_services; i++)
        q->services[i] = 100 + i;
}

TEST(rs_geometry_is_a_function_of_size_and_data_blocks)
{
    CHECK_EQ(pt_rs_block_size(1, 4), 4096);
    CHECK_EQ(pt_rs_block_size(4 * 4096, 4), 4096);
    CHECK_EQ(pt_rs_block_size(4 * 4096 + 1, 4), 8192);
    CHECK_EQ(pt_rs_block_size(4u << 16, 4), 65536);        /* one row of 64 KiB cells */
    CHECK_EQ(pt_rs_block_size((4u << 16) + 1, 4), 131072); /* two rows */
    CHECK_EQ(pt_rs_cell(8192), 8192);
    CHECK_EQ(pt_rs_rows(8192), 1);
    CHECK_EQ(pt_rs_cell(1u << 20), PT_RS_CELL);
    CHECK_EQ(pt_rs_rows(1u << 20), 16);
}

TEST(rs_span_add_certify_and_read_back)
{
    struct pt_shard_sm sm;
    struct pt_shard_req q, c;
    struct pt_cursor b;
    struct pt_span s;
    uint8_t proofs[8 * 6] = {0};
    uint64_t id, blocks[6];
    unsigned i, r, rows;
    rs_open(&sm, "s");
    id = rs_construct(&sm, 9);
    rs_req(&q, id, 3u << 20, 4, 2); /* 768 KiB blocks: 12 rows */
    rows = pt_rs_rows(q.block_size);
    CHECK_EQ(rows, 12);
    CHECK_EQ(rs_apply(&sm, 2, &q, &b), 0);
    CHECK_EQ(pt_dec_u8(&b), 6);
    for (i = 0; i < 6; i++) {
        uint32_t want = 0;
        CHECK_EQ(pt_dec_u64(&b), 100 + i);
        blocks[i] = pt_dec_u64(&b);
        for (r = 0; r < rows; r++)
            want = petrel_crc32c_append(want, 0x1000u + i * rows + r, PT_RS_CELL);
        CHECK_EQ(pt_dec_u32(&b), want); /* block CRC combined from its cells */
    }
    CHECK(pt_cursor_ok(&b) && pt_cursor_left(&b) == 0);
    /* A retry (reply lost) gets the same blocks. */
    CHECK_EQ(rs_apply(&sm, 3, &q, &b), 0);
    CHECK_EQ(pt_dec_u8(&b), 6);
    CHECK_EQ(pt_dec_u64(&b), 100);
    CHECK_EQ(pt_dec_u64(&b), blocks[0]);
    memset(&c, 0, sizeof(c));
    c.op = PT_SHARD_CERTIFY_SPAN;
    c.id = id;
    c.cookie = 9;
    c.data_len = sizeof(proofs);
    c.data_ptr = proofs;
    CHECK_EQ(rs_apply(&sm, 4, &c, NULL), 0);
    memset(&c, 0, sizeof(c));
    c.op = PT_SHARD_SPANS;
    c.id = id;
    CHECK_EQ(rs_query(&sm, &c, &b), 0);
    CHECK_EQ(pt_dec_u64(&b), 3u << 20);
    CHECK_EQ(pt_dec_u16(&b), 1);
    CHECK_OK(pt_span_decode(&b, &s));
    CHECK_EQ(s.storage, PT_STORAGE_RS);
    CHECK_EQ(s.certified, 1);
    CHECK_EQ(s.block_size, 768u << 10);
    CHECK_EQ(pt_span_cell_crc(&s, 0, 0), 0x1000);
    CHECK_EQ(pt_span_cell_crc(&s, 5, 11), 0x1000u + 5 * 12 + 11);
    CHECK_EQ(s.blocks[3].block, blocks[3]);
    pt_shard_sm_close(&sm);
}

TEST(rs_span_refusals)
{
    struct pt_shard_sm sm;
    struct pt_shard_req q;
    uint64_t id;
    rs_open(&sm, "s");
    id = rs_construct(&sm, 9);
    rs_req(&q, id, 100000, 4, 2);
    q.block_size += 4096;
    CHECK_EQ(rs_apply(&sm, 2, &q, NULL), -PT_EINVAL); /* block size not the geometry's */
    rs_req(&q, id, 100000, 4, 2);
    q.data_len -= 4;
    CHECK_EQ(rs_apply(&sm, 2, &q, NULL), -PT_EINVAL); /* cell CRCs missing */
    rs_req(&q, id, 100000, 4, 2);
    q.services[5] = q.services[0];
    CHECK_EQ(rs_apply(&sm, 2, &q, NULL), -PT_EINVAL); /* one service twice */
    rs_req(&q, id, 100000, 4, 5);
    CHECK_EQ(rs_apply(&sm, 2, &q, NULL), -PT_EINVAL); /* P > 4 */
    rs_req(&q, id, 100000, 13, 4);
    CHECK_EQ(rs_apply(&sm, 2, &q, NULL), -PT_EINVAL); /* 17 blocks: more than a span holds */
    rs_req(&q, id, 100000, 4, 2);
    q.storage = PT_STORAGE_MIRRORED;
    CHECK_EQ(rs_apply(&sm, 2, &q, NULL), -PT_EINVAL);
    rs_req(&q, id, 100000, 4, 2);
    q.offset = 5;
    CHECK_EQ(rs_apply(&sm, 2, &q, NULL), -PT_EINVAL); /* not at the end of the file */
    rs_req(&q, id, 100000, 4, 2);
    q.cookie = 8;
    CHECK_EQ(rs_apply(&sm, 2, &q, NULL), -PT_EACCES);
    rs_req(&q, id, 100000, 4, 2);
    CHECK_EQ(rs_apply(&sm, 2, &q, NULL), 0);
    pt_shard_sm_close(&sm);
}

static int set_policy(struct pt_shard_sm *sm, uint64_t dir, const struct pt_policy *p)
{
    uint8_t rec[PT_POLICY_SIZE];
    struct pt_shard_req q = {.op = PT_SHARD_SET_POLICY, .id = dir};
    if (p) {
        pt_policy_encode(rec, p);
        q.data_len = sizeof(rec);
        q.data_ptr = rec;
    }
    return rs_apply(sm, 5, &q, NULL);
}

static int get_policy(struct pt_shard_sm *sm, uint64_t dir, struct pt_policy *p)
{
    struct pt_shard_req q = {.op = PT_SHARD_GET_POLICY, .id = dir};
    struct pt_cursor b;
    int rc = rs_query(sm, &q, &b);
    if (rc == 0) CHECK_OK(pt_policy_decode(b.buf + b.pos, pt_cursor_left(&b), p));
    return rc;
}

TEST(rs_policy_set_get_clear_and_refusals)
{
    struct pt_shard_sm sm;
    struct pt_policy p = {.copies = 2,
                          .data = 10,
                          .parity = 4,
                          .rs_threshold = 1u << 20,
                          .block_size = 1u << 20},
                     got;
    uint64_t file;
    rs_open(&sm, "s");
    CHECK_EQ(get_policy(&sm, PT_INODE_ROOT, &got), -PT_ENOENT);
    CHECK_EQ(set_policy(&sm, PT_INODE_ROOT, &p), 0);
    CHECK_EQ(get_policy(&sm, PT_INODE_ROOT, &got), 0);
    CHECK_EQ(got.data, 10);
    CHECK_EQ(got.parity, 4);
    CHECK_EQ(got.copies, 2);
    CHECK_EQ(got.rs_threshold, 1u << 20);
    CHECK_EQ(got.block_size, 1u << 20);
    p.parity = 7;
    CHECK_EQ(set_policy(&sm, PT_INODE_ROOT, &p), -PT_EINVAL);
    p.parity = 4;
    p.block_size = 100000; /* not a multiple of 64 KiB above one cell */
    CHECK_EQ(set_policy(&sm, PT_INODE_ROOT, &p), -PT_EINVAL);
    p.block_size = 1u << 20;
    p.copies = 0;
    CHECK_EQ(set_policy(&sm, PT_INODE_ROOT, &p), -PT_EINVAL);
    p.copies = 3;
    p.data = p.parity = 0; /* mirrored only */
    CHECK_EQ(set_policy(&sm, PT_INODE_ROOT, &p), 0);
    file = rs_construct(&sm, 9);
    CHECK_EQ(set_policy(&sm, file, &p), -PT_ENOTDIR);
    CHECK_EQ(set_policy(&sm, PT_INODE_MAKE(1, 5), &p), -PT_EXDEV);
    CHECK_EQ(set_policy(&sm, PT_INODE_ROOT, NULL), 0); /* cleared */
    CHECK_EQ(get_policy(&sm, PT_INODE_ROOT, &got), -PT_ENOENT);
    CHECK_EQ(set_policy(&sm, PT_INODE_ROOT, NULL), 0); /* clearing twice is fine */
    pt_shard_sm_close(&sm);
}

static int report(struct pt_shard_sm *sm, uint64_t now, uint64_t file, uint64_t off, uint64_t block,
                  unsigned reason)
{
    struct pt_shard_req q = {.op = PT_SHARD_REPORT_BAD_BLOCK,
                             .id = file,
                             .offset = off,
                             .target = block,
                             .max = (uint16_t)reason};
    return rs_apply(sm, now, &q, NULL);
}

TEST(rs_bad_block_reports_fill_the_repair_queue)
{
    struct pt_shard_sm sm, copy;
    struct pt_shard_req q;
    struct pt_cursor b;
    struct pt_repair_entry e;
    uint64_t id, blk;
    uint8_t *snap;
    size_t snap_len;
    rs_open(&sm, "s");
    id = rs_construct(&sm, 9);
    rs_req(&q, id, 100000, 4, 2);
    CHECK_EQ(rs_apply(&sm, 2, &q, &b), 0);
    (void)pt_dec_u8(&b);
    (void)pt_dec_u64(&b);
    (void)pt_dec_u64(&b);
    (void)pt_dec_u32(&b);
    CHECK_EQ(pt_dec_u64(&b), 101);
    blk = pt_dec_u64(&b);
    CHECK_EQ(report(&sm, 10, id, 0, blk, PT_BAD_CORRUPT), 0);
    CHECK_EQ(report(&sm, 20, id, 0, blk, PT_BAD_UNREACHABLE), 0);
    CHECK_EQ(report(&sm, 20, id, 0, blk + 1000, PT_BAD_CORRUPT), -PT_ENOENT); /* not its block */
    CHECK_EQ(report(&sm, 20, id, 4096, blk, PT_BAD_CORRUPT), -PT_ENOENT);     /* no such span */
    CHECK_EQ(report(&sm, 20, id, 0, blk, 9), -PT_EINVAL);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_REPAIR_LIST;
    CHECK_EQ(rs_query(&sm, &q, &b), 0);
    CHECK_EQ(pt_dec_u16(&b), 1);
    CHECK_OK(pt_repair_entry_decode(&b, &e));
    CHECK_EQ(pt_dec_u8(&b), 0);
    CHECK_EQ(e.service, 101);
    CHECK_EQ(e.block, blk);
    CHECK_EQ(e.file, id);
    CHECK_EQ(e.offset, 0);
    CHECK_EQ(e.reason, PT_BAD_UNREACHABLE);
    CHECK_EQ(e.count, 2);
    CHECK_EQ(e.first_ms, 10);
    CHECK_EQ(e.last_ms, 20);
    /* A snapshot carries the queue and the policies. */
    {
        struct pt_policy p = {.copies = 3}, got;
        CHECK_EQ(set_policy(&sm, PT_INODE_ROOT, &p), 0);
        CHECK_OK(pt_shard_sm_snapshot(&sm, &snap, &snap_len));
        rs_open(&copy, "copy");
        CHECK_OK(pt_shard_sm_restore(&copy, snap, snap_len));
        free(snap);
        CHECK_EQ(get_policy(&copy, PT_INODE_ROOT, &got), 0);
        CHECK_EQ(got.copies, 3);
        CHECK_EQ(rs_query(&copy, &q, &b), 0);
        CHECK_EQ(pt_dec_u16(&b), 1);
        pt_shard_sm_close(&copy);
    }
    pt_shard_sm_close(&sm);
}

TEST(rs_span_record_codec_refuses_bad_geometry)
{
    uint8_t buf[PT_SPAN_RECORD_MAX];
    struct pt_span s, d;
    struct pt_cursor c;
    size_t len, cut;
    memset(&s, 0, sizeof(s));
    s.size = 200000;
    s.storage = PT_STORAGE_RS;
    s.data = 4;
    s.parity = 2;
    s.block_size = pt_rs_block_size(s.size, 4);
    s.cell_crcs = cells;
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_span_encode(&c, &s);
    CHECK(pt_cursor_ok(&c));
    len = c.pos;
    CHECK_EQ(len, 24 + 6 * 20 + 4 * 6 * pt_rs_rows(s.block_size));
    pt_cursor_init(&c, buf, len);
    CHECK_OK(pt_span_decode(&c, &d));
    for (cut = 0; cut < len; cut++) {
        pt_cursor_init(&c, buf, cut);
        CHECK(pt_span_decode(&c, &d) != 0);
    }
    pt_put_le32(buf + 20, s.block_size + 4096); /* block size off the geometry */
    pt_cursor_init(&c, buf, len);
    CHECK(pt_span_decode(&c, &d) != 0);
}

/* The example of PROTOCOL.md §4 (ADD_RS_SPAN), byte for byte. */
TEST(rs_add_span_request_bytes)
{
    static const uint8_t head[] = {0x30, 7, 0, 0, 0, 0, 0, 0, 0, 0x2A, 0,    0,    0,    0,   0,
                                   0,    0, 0, 0, 0, 0, 0, 0, 0, 0,    0xA0, 0x86, 0x01, 0x00};
    static const uint8_t layout[] = {2, 4, 2, 0x00, 0x70, 0x00, 0x00, 0x18, 0, 0, 0};
    uint8_t buf[128];
    struct pt_shard_req q;
    int n;
    rs_req(&q, 7, 100000, 4, 2);
    q.cookie = 0x2A;
    q.n_services = 0;
    CHECK_EQ(q.block_size, 28672);
    n = pt_shard_req_encode(&q, buf, sizeof(buf));
    CHECK_EQ(n, 69);
    CHECK_MEM(buf, head, sizeof(head));
    CHECK_MEM(buf + 33, layout, sizeof(layout)); /* after the u32 span CRC */
    CHECK_EQ(buf[68], 0);
}

static int scrub_report(struct pt_shard_sm *sm, uint64_t now, uint64_t service, uint64_t block)
{
    struct pt_shard_req q = {.op = PT_SHARD_SCRUB_REPORT, .id = block, .target = service};
    return rs_apply(sm, now, &q, NULL);
}

/* A scrubber names only (service, block): the block index finds the span; reason corrupt. */
TEST(rs_scrub_report_finds_the_span_through_the_block_index)
{
    struct pt_shard_sm sm;
    struct pt_shard_req q;
    struct pt_cursor b;
    struct pt_repair_entry e;
    uint64_t id, svc, blk;
    rs_open(&sm, "s");
    id = rs_construct(&sm, 9);
    rs_req(&q, id, 100000, 4, 2);
    CHECK_EQ(rs_apply(&sm, 2, &q, &b), 0);
    (void)pt_dec_u8(&b);
    (void)pt_dec_u64(&b);
    (void)pt_dec_u64(&b);
    (void)pt_dec_u32(&b);
    svc = pt_dec_u64(&b); /* the second block */
    blk = pt_dec_u64(&b);
    CHECK_EQ(scrub_report(&sm, 30, svc, blk), 0);
    CHECK_EQ(scrub_report(&sm, 40, svc, blk), 0); /* a repeat counts */
    CHECK_EQ(scrub_report(&sm, 40, svc + 1, blk), -PT_ENOENT); /* not on that service */
    CHECK_EQ(scrub_report(&sm, 40, svc, blk + 1000), -PT_ENOENT); /* no span lists it */
    CHECK_EQ(scrub_report(&sm, 40, svc, PT_INODE_MAKE(1, 7)), -PT_EXDEV);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_REPAIR_LIST;
    CHECK_EQ(rs_query(&sm, &q, &b), 0);
    CHECK_EQ(pt_dec_u16(&b), 1);
    CHECK_OK(pt_repair_entry_decode(&b, &e));
    CHECK_EQ(e.service, svc);
    CHECK_EQ(e.block, blk);
    CHECK_EQ(e.file, id);
    CHECK_EQ(e.offset, 0);
    CHECK_EQ(e.reason, PT_BAD_CORRUPT);
    CHECK_EQ(e.count, 2);
    CHECK_EQ(e.first_ms, 30);
    CHECK_EQ(e.last_ms, 40);
    pt_shard_sm_close(&sm);
}

static int replace_block(struct pt_shard_sm *sm, uint64_t now, uint64_t file, uint64_t block,
                         uint64_t old_svc, uint64_t new_svc, int *swapped)
{
    struct pt_shard_req q = {.op = PT_SHARD_REPLACE_BLOCK, .id = file, .target = block};
    struct pt_cursor b;
    int rc;
    q.n_services = 2;
    q.services[0] = old_svc;
    q.services[1] = new_svc;
    rc = rs_apply(sm, now, &q, &b);
    if (rc == 0) *swapped = pt_dec_u8(&b);
    return rc;
}

/* Repair's swap is a compare-and-swap on (old service, block): a repeat or a stale repair
 * changes nothing; the old copy goes to `dropped`, the index and the queue follow. */
TEST(rs_replace_block_swaps_only_what_the_span_still_lists)
{
    struct pt_shard_sm sm;
    struct pt_shard_req q;
    struct pt_cursor b;
    struct pt_span sp;
    struct pt_gc_block dropped[4];
    uint64_t times[4], id, svc[6], blk[6];
    int swapped = -1, i;
    rs_open(&sm, "s");
    id = rs_construct(&sm, 9);
    rs_req(&q, id, 100000, 4, 2);
    CHECK_EQ(rs_apply(&sm, 2, &q, &b), 0);
    CHECK_EQ(pt_dec_u8(&b), 6);
    for (i = 0; i < 6; i++) {
        svc[i] = pt_dec_u64(&b);
        blk[i] = pt_dec_u64(&b);
        (void)pt_dec_u32(&b);
    }
    CHECK_EQ(scrub_report(&sm, 3, svc[2], blk[2]), 0);
    /* onto a service the span already uses: refused */
    CHECK_EQ(replace_block(&sm, 4, id, blk[2], svc[2], svc[3], &swapped), -PT_EEXIST);
    CHECK_EQ(replace_block(&sm, 4, id, blk[2], svc[2], svc[2], &swapped), -PT_EINVAL);
    CHECK_EQ(replace_block(&sm, 5, id, blk[2], svc[2], 999, &swapped), 0);
    CHECK_EQ(swapped, 1);
    /* a repeated or overtaken repair: nothing */
    CHECK_EQ(replace_block(&sm, 6, id, blk[2], svc[2], 998, &swapped), 0);
    CHECK_EQ(swapped, 0);
    CHECK_EQ(replace_block(&sm, 6, id + 1, blk[2], svc[2], 998, &swapped), 0);
    CHECK_EQ(swapped, 0);
    /* the span lists the new copy, the cell CRCs unchanged */
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_SPANS;
    q.id = id;
    CHECK_EQ(rs_query(&sm, &q, &b), 0);
    (void)pt_dec_u64(&b);
    CHECK_EQ(pt_dec_u16(&b), 1);
    CHECK_OK(pt_span_decode(&b, &sp));
    CHECK_EQ(sp.blocks[2].service, 999);
    CHECK_EQ(sp.blocks[2].block, blk[2]);
    CHECK_EQ(sp.blocks[1].service, svc[1]);
    /* the index follows: the old copy is nobody's, the new one is the span's */
    CHECK_EQ(scrub_report(&sm, 7, svc[2], blk[2]), -PT_ENOENT);
    CHECK_EQ(scrub_report(&sm, 7, 999, blk[2]), 0);
    /* the queue entry of the old copy is gone; the new report is the only one */
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_REPAIR_LIST;
    CHECK_EQ(rs_query(&sm, &q, &b), 0);
    CHECK_EQ(pt_dec_u16(&b), 1);
    {
        struct pt_repair_entry e;
        CHECK_OK(pt_repair_entry_decode(&b, &e));
        CHECK_EQ(e.service, 999);
    }
    /* the old copy is erased by GC after the retention period */
    CHECK_EQ(pt_shard_sm_gc_dropped(&sm, 5 + sm.retention_ms, dropped, times, 4), 1);
    CHECK_EQ(dropped[0].service, svc[2]);
    CHECK_EQ(dropped[0].block, blk[2]);
    CHECK_EQ(dropped[0].size, sp.block_size);
    CHECK_EQ(dropped[0].crc, sp.blocks[2].crc);
    pt_shard_sm_close(&sm);
}

/* DRAIN_SERVICE marks a service; DRAIN_STATUS counts what the block index still places on it. */
TEST(rs_drain_mark_and_status)
{
    struct pt_shard_sm sm;
    struct pt_shard_req q;
    struct pt_cursor b;
    uint64_t id, svc, blk, marked[4];
    int swapped = 0;
    rs_open(&sm, "s");
    id = rs_construct(&sm, 9);
    rs_req(&q, id, 100000, 4, 2);
    CHECK_EQ(rs_apply(&sm, 2, &q, &b), 0);
    (void)pt_dec_u8(&b);
    svc = pt_dec_u64(&b);
    blk = pt_dec_u64(&b);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_DRAIN_SERVICE;
    q.target = svc;
    q.max = 1;
    CHECK_EQ(rs_apply(&sm, 3, &q, NULL), 0);
    CHECK_EQ(rs_apply(&sm, 3, &q, NULL), 0); /* twice is once */
    q.max = 2;
    CHECK_EQ(rs_apply(&sm, 3, &q, NULL), -PT_EINVAL);
    CHECK_EQ(pt_shard_sm_draining(&sm, marked, 4), 1);
    CHECK_EQ(marked[0], svc);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_DRAIN_STATUS;
    q.target = svc;
    CHECK_EQ(rs_query(&sm, &q, &b), 0);
    CHECK_EQ(pt_dec_u8(&b), 1);
    CHECK_EQ(pt_dec_u64(&b), 1);
    CHECK_EQ(replace_block(&sm, 4, id, blk, svc, 999, &swapped), 0);
    CHECK_EQ(swapped, 1);
    CHECK_EQ(rs_query(&sm, &q, &b), 0);
    CHECK_EQ(pt_dec_u8(&b), 1);
    CHECK_EQ(pt_dec_u64(&b), 0);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_DRAIN_SERVICE;
    q.target = svc;
    CHECK_EQ(rs_apply(&sm, 5, &q, NULL), 0); /* stop */
    CHECK_EQ(pt_shard_sm_draining(&sm, marked, 4), 0);
    pt_shard_sm_close(&sm);
}
