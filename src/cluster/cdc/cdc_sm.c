/*
 * CDC state machine (see cdc_sm.h). Owns the transaction table; keeps it sorted by id (ids
 * only grow) and trims the oldest finished transactions beyond PT_CDC_KEEP_FINISHED. A STEP
 * that does not advance the recorded step, or that names a finished transaction, changes
 * nothing: a step proposed twice (old and new leader) is applied once.
 */
#include "cluster/cdc/cdc_sm.h"

#include <stdlib.h>
#include <string.h>

#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

void pt_cdc_sm_init(struct pt_cdc_sm *sm)
{
    memset(sm, 0, sizeof(*sm));
    sm->next_id = 1;
}

void pt_cdc_sm_free(struct pt_cdc_sm *sm)
{
    free(sm->txns);
    memset(sm, 0, sizeof(*sm));
}

int pt_cdc_enc_begin(uint8_t *buf, size_t cap, const struct pt_cdc_req *q, uint8_t shard)
{
    int n;
    if (cap < 2) return -PT_EOVERFLOW;
    buf[0] = PT_CDC_BEGIN;
    buf[1] = shard;
    n = pt_cdc_req_encode(q, buf + 2, cap - 2);
    return n < 0 ? n : n + 2;
}

static int enc_step(uint8_t *buf, size_t cap, uint64_t txn, uint8_t step, uint64_t x, uint8_t type,
                    int32_t err, int with_repl, uint64_t repl, uint8_t repl_type)
{
    struct pt_cursor c;
    pt_cursor_init(&c, buf, cap);
    pt_enc_u8(&c, PT_CDC_STEP);
    pt_enc_u64(&c, txn);
    pt_enc_u8(&c, step);
    pt_enc_u64(&c, x);
    pt_enc_u8(&c, type);
    pt_enc_u32(&c, (uint32_t)err);
    if (with_repl) {
        pt_enc_u64(&c, repl);
        pt_enc_u8(&c, repl_type);
    }
    return pt_cursor_ok(&c) ? (int)c.pos : -PT_EOVERFLOW;
}

int pt_cdc_enc_step(uint8_t *buf, size_t cap, uint64_t txn, uint8_t step, uint64_t x, uint8_t type,
                    int32_t err)
{
    return enc_step(buf, cap, txn, step, x, type, err, 0, 0, 0);
}

int pt_cdc_enc_step_repl(uint8_t *buf, size_t cap, uint64_t txn, uint8_t step, uint64_t x,
                         uint8_t type, int32_t err, uint64_t repl, uint8_t repl_type)
{
    return enc_step(buf, cap, txn, step, x, type, err, 1, repl, repl_type);
}

int pt_cdc_enc_finish(uint8_t *buf, size_t cap, uint64_t txn, int32_t status, uint64_t result)
{
    struct pt_cursor c;
    pt_cursor_init(&c, buf, cap);
    pt_enc_u8(&c, PT_CDC_FINISH);
    pt_enc_u64(&c, txn);
    pt_enc_u32(&c, (uint32_t)status);
    pt_enc_u64(&c, result);
    return pt_cursor_ok(&c) ? (int)c.pos : -PT_EOVERFLOW;
}

const struct pt_cdc_txn *pt_cdc_sm_find(const struct pt_cdc_sm *sm, uint64_t id)
{
    size_t lo = 0, hi = sm->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sm->txns[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < sm->count && sm->txns[lo].id == id ? &sm->txns[lo] : NULL;
}

const struct pt_cdc_txn *pt_cdc_sm_next_active(const struct pt_cdc_sm *sm)
{
    size_t i;
    for (i = 0; i < sm->count; i++)
        if (!sm->txns[i].done) return &sm->txns[i];
    return NULL;
}

static void trim_finished(struct pt_cdc_sm *sm)
{
    size_t finished = 0, i, j;
    for (i = 0; i < sm->count; i++)
        finished += sm->txns[i].done;
    if (finished <= PT_CDC_KEEP_FINISHED) return;
    for (i = 0, j = 0; i < sm->count; i++) {
        if (sm->txns[i].done && finished > PT_CDC_KEEP_FINISHED) {
            finished--;
            continue;
        }
        sm->txns[j++] = sm->txns[i];
    }
    sm->count = j;
}

static void put_status(struct pt_shard_apply_out *out, unsigned i, int status)
{
    pt_put_le32(out->reply[i], (uint32_t)(int32_t)status);
    out->len[i] = 4;
}

static void put_txn(struct pt_shard_apply_out *out, unsigned i, const struct pt_cdc_txn *t)
{
    struct pt_cursor c;
    pt_cursor_init(&c, out->reply[i], PT_SHARD_WRITE_REPLY_MAX);
    pt_enc_u32(&c, 0);
    pt_enc_u64(&c, t->id);
    pt_enc_u8(&c, t->done);
    pt_enc_u32(&c, (uint32_t)t->status);
    pt_enc_u64(&c, t->result);
    out->len[i] = (uint16_t)c.pos;
}

static int apply_item(struct pt_cdc_sm *sm, const uint8_t *p, size_t len,
                      struct pt_shard_apply_out *out, unsigned i)
{
    struct pt_cursor c;
    struct pt_cdc_txn *t;
    size_t k;
    if (len < 1) {
        put_status(out, i, -PT_EPROTO);
        return 0;
    }
    if (p[0] == PT_CDC_BEGIN) {
        struct pt_cdc_req q;
        if (len < 2 || pt_cdc_req_decode(&q, p + 2, len - 2) != 0) {
            put_status(out, i, -PT_EPROTO);
            return 0;
        }
        for (k = 0; k < sm->count; k++)
            if (sm->txns[k].req.key == q.key) {
                put_txn(out, i, &sm->txns[k]); /* a retried request joins its transaction */
                return 0;
            }
        if (sm->count == sm->cap) {
            size_t cap = sm->cap ? sm->cap * 2 : 64;
            struct pt_cdc_txn *v = realloc(sm->txns, cap * sizeof(*v));
            if (!v) return -PT_ENOMEM;
            sm->txns = v;
            sm->cap = cap;
        }
        t = &sm->txns[sm->count++];
        memset(t, 0, sizeof(*t));
        t->id = sm->next_id++;
        t->req = q;
        t->shard = p[1];
        put_txn(out, i, t);
        return 0;
    }
    pt_cursor_init(&c, (void *)p, len);
    (void)pt_dec_u8(&c);
    {
        uint64_t id = pt_dec_u64(&c);
        t = (struct pt_cdc_txn *)pt_cdc_sm_find(sm, id);
    }
    if (p[0] == PT_CDC_STEP) {
        uint8_t step = pt_dec_u8(&c);
        uint64_t x = pt_dec_u64(&c);
        uint8_t type = pt_dec_u8(&c);
        int32_t err = (int32_t)pt_dec_u32(&c);
        uint64_t repl = t ? t->repl : 0;
        uint8_t repl_type = t ? t->repl_type : 0;
        if (pt_cursor_ok(&c) && c.pos < len) { /* the long form names the replaced entry */
            repl = pt_dec_u64(&c);
            repl_type = pt_dec_u8(&c);
        }
        if (!pt_cursor_ok(&c) || c.pos != len)
            put_status(out, i, -PT_EPROTO);
        else if (!t)
            put_status(out, i, -PT_ENOENT);
        else if (t->done || step <= t->step)
            put_status(out, i, -PT_ESTALE);
        else {
            t->step = step;
            t->x = x;
            t->type = type;
            t->err = err;
            t->repl = repl;
            t->repl_type = repl_type;
            put_status(out, i, 0);
        }
        return 0;
    }
    if (p[0] == PT_CDC_FINISH) {
        int32_t status = (int32_t)pt_dec_u32(&c);
        uint64_t result = pt_dec_u64(&c);
        if (!pt_cursor_ok(&c) || c.pos != len)
            put_status(out, i, -PT_EPROTO);
        else if (!t)
            put_status(out, i, -PT_ENOENT);
        else if (t->done)
            put_status(out, i, -PT_ESTALE);
        else {
            t->done = 1;
            t->status = status;
            t->result = result;
            put_status(out, i, 0);
            trim_finished(sm);
        }
        return 0;
    }
    put_status(out, i, -PT_EPROTO);
    return 0;
}

int pt_cdc_sm_apply(struct pt_cdc_sm *sm, const uint8_t *entry, size_t len,
                    struct pt_shard_apply_out *out)
{
    struct pt_cursor c;
    uint16_t count, i;
    int rc;
    out->count = 0;
    if (len < PT_SHARD_ENTRY_HEADER || entry[0] != PT_SHARD_ENTRY_VERSION) return 0;
    count = pt_get_le16(entry + 2);
    if (count > PT_SHARD_BATCH_MAX) return 0;
    pt_cursor_init(&c, (void *)(entry + PT_SHARD_ENTRY_HEADER), len - PT_SHARD_ENTRY_HEADER);
    for (i = 0; i < count; i++) {
        uint32_t n = pt_dec_u32(&c);
        const uint8_t *p = pt_cursor_take(&c, n);
        if (!p)
            put_status(out, i, -PT_EPROTO);
        else if ((rc = apply_item(sm, p, n, out, i)) != 0)
            return rc;
        out->count = (uint16_t)(i + 1);
    }
    return 0;
}

/*
 * Snapshot: u32 magic "PTCS", u32 version 2, u64 next_id, u64 count, then per transaction:
 * u64 id, u16 request length, request (cdc_msgs encoding), u8 shard, u8 step, u64 x, u8 type,
 * i32 err, u64 repl, u8 repl type, u8 done, i32 status, u64 result; then u32 CRC32C of
 * everything before. Version 1 (without repl) is still read.
 */
#define CDC_SNAP_MAGIC 0x53435450u
#define TXN_MAX_BYTES (8 + 2 + 600 + 1 + 1 + 8 + 1 + 4 + 9 + 1 + 4 + 8)
#define CDC_SNAP_VERSION 2

int pt_cdc_sm_snapshot(const struct pt_cdc_sm *sm, uint8_t **buf, size_t *len)
{
    size_t cap = 28 + sm->count * TXN_MAX_BYTES, i;
    struct pt_cursor c;
    uint8_t *b = malloc(cap);
    if (!b) return -PT_ENOMEM;
    pt_cursor_init(&c, b, cap);
    pt_enc_u32(&c, CDC_SNAP_MAGIC);
    pt_enc_u32(&c, CDC_SNAP_VERSION);
    pt_enc_u64(&c, sm->next_id);
    pt_enc_u64(&c, sm->count);
    for (i = 0; i < sm->count; i++) {
        const struct pt_cdc_txn *t = &sm->txns[i];
        uint8_t req[600];
        int n = pt_cdc_req_encode(&t->req, req, sizeof(req));
        if (n < 0) {
            free(b);
            return n;
        }
        pt_enc_u64(&c, t->id);
        pt_enc_u16(&c, (uint16_t)n);
        pt_enc_bytes(&c, req, (size_t)n);
        pt_enc_u8(&c, t->shard);
        pt_enc_u8(&c, t->step);
        pt_enc_u64(&c, t->x);
        pt_enc_u8(&c, t->type);
        pt_enc_u32(&c, (uint32_t)t->err);
        pt_enc_u64(&c, t->repl);
        pt_enc_u8(&c, t->repl_type);
        pt_enc_u8(&c, t->done);
        pt_enc_u32(&c, (uint32_t)t->status);
        pt_enc_u64(&c, t->result);
    }
    pt_enc_u32(&c, petrel_crc32c(0, b, c.pos));
    if (!pt_cursor_ok(&c)) {
        free(b);
        return -PT_EOVERFLOW;
    }
    *buf = b;
    *len = c.pos;
    return 0;
}

int pt_cdc_sm_restore(struct pt_cdc_sm *sm, const uint8_t *buf, size_t len)
{
    struct pt_cursor c;
    struct pt_cdc_sm fresh;
    uint64_t count, i;
    uint32_t version;
    if (len < 28 || petrel_crc32c(0, buf, len - 4) != pt_get_le32(buf + len - 4))
        return -PT_ECORRUPT;
    pt_cursor_init(&c, (void *)buf, len - 4);
    if (pt_dec_u32(&c) != CDC_SNAP_MAGIC) return -PT_ECORRUPT;
    version = pt_dec_u32(&c);
    if (version != 1 && version != CDC_SNAP_VERSION) return -PT_ECORRUPT;
    pt_cdc_sm_init(&fresh);
    fresh.next_id = pt_dec_u64(&c);
    count = pt_dec_u64(&c);
    if (count > len / 32) return -PT_ECORRUPT;
    fresh.txns = calloc(count ? count : 1, sizeof(*fresh.txns));
    if (!fresh.txns) return -PT_ENOMEM;
    fresh.cap = count ? count : 1;
    for (i = 0; i < count; i++) {
        struct pt_cdc_txn *t = &fresh.txns[i];
        uint16_t n;
        const uint8_t *req;
        t->id = pt_dec_u64(&c);
        n = pt_dec_u16(&c);
        req = pt_cursor_take(&c, n);
        if (!req || pt_cdc_req_decode(&t->req, req, n) != 0) break;
        t->shard = pt_dec_u8(&c);
        t->step = pt_dec_u8(&c);
        t->x = pt_dec_u64(&c);
        t->type = pt_dec_u8(&c);
        t->err = (int32_t)pt_dec_u32(&c);
        if (version >= 2) {
            t->repl = pt_dec_u64(&c);
            t->repl_type = pt_dec_u8(&c);
        }
        t->done = pt_dec_u8(&c);
        t->status = (int32_t)pt_dec_u32(&c);
        t->result = pt_dec_u64(&c);
        fresh.count++;
    }
    if (!pt_cursor_ok(&c) || fresh.count != count || pt_cursor_left(&c)) {
        pt_cdc_sm_free(&fresh);
        return -PT_ECORRUPT;
    }
    pt_cdc_sm_free(sm);
    *sm = fresh;
    return 0;
}
