/*
 * One block service's request handling (see blocks.h, pt_blocks_service_*), transport-free:
 * the frame server (blocks_server.c) feeds it requests from TCP, the simulator feeds it env
 * messages, and both run this code. Owns certificate checks, proofs, the in-memory block index
 * and the per-block exclusion of writes and erases. It never starts a write or erase whose
 * certificate does not verify under the service's secret, and never issues a proof before the
 * store reported the block durable (or gone).
 *
 * Runs on one thread (the env's). A write completes later (its fsync goes through the env);
 * pt_blocks_service_close while writes are in flight marks the service closing and frees it
 * when the last one completes, without replying (the transport that asked is gone).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/blocks/blocks.h"
#include "cluster/env/env.h"
#include "cluster/proto/frame.h"
#include "petrel/codec.h"
#include "petrel/common.h"

#define LOG_MODULE "blocks"

enum work_op { OP_WRITE, OP_READ, OP_ERASE };

struct blocks_work {
    struct pt_blocks_service *svc;
    pt_blocks_reply_fn reply;
    void *ctx;
    enum work_op op;
    uint64_t block_id;
    uint32_t crc, size;
};

/* --- index --------------------------------------------------------------------------------- */

size_t pt_blocks_index_find(const struct pt_blocks_service *s, uint64_t id)
{
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->index[mid].block_id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int index_put(struct pt_blocks_service *s, const struct pt_block_stat *st)
{
    size_t i = pt_blocks_index_find(s, st->block_id);
    if (i < s->count && s->index[i].block_id == st->block_id) {
        s->used -= s->index[i].size;
        s->index[i] = *st;
        s->used += st->size;
        return 0;
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        struct pt_block_stat *v = realloc(s->index, cap * sizeof(*v));
        if (!v) return -PT_ENOMEM;
        s->index = v;
        s->cap = cap;
    }
    memmove(&s->index[i + 1], &s->index[i], (s->count - i) * sizeof(*s->index));
    s->index[i] = *st;
    s->count++;
    s->used += st->size;
    return 0;
}

static void index_remove(struct pt_blocks_service *s, uint64_t id)
{
    size_t i = pt_blocks_index_find(s, id);
    if (i >= s->count || s->index[i].block_id != id) return;
    s->used -= s->index[i].size;
    memmove(&s->index[i], &s->index[i + 1], (s->count - i - 1) * sizeof(*s->index));
    s->count--;
}

static void on_scan(void *ctx, const struct pt_block_stat *st)
{
    index_put(ctx, st);
}

int pt_blocks_service_init(struct pt_blocks_service *s)
{
    return pt_blocks_store_scan(&s->store, on_scan, s);
}

static void service_free(struct pt_blocks_service *s)
{
    pt_blocks_store_close(&s->store);
    free(s->index);
    free(s);
}

static void stream_drop(struct pt_blocks_service *s, struct pt_blocks_stream_slot *slot);

void pt_blocks_service_close(struct pt_blocks_service *s)
{
    size_t i;
    for (i = 0; i < PT_ARRAY_SIZE(s->streams); i++)
        if (s->streams[i].st) stream_drop(s, &s->streams[i]);
    pt_blocks_scrub_start(s, 0);
    s->closing = 1;
    if (!s->inflight) service_free(s);
}

/* --- replies ------------------------------------------------------------------------------- */

static void reply_error(pt_blocks_reply_fn reply, void *ctx, int err, const char *why)
{
    reply(ctx, err, why, NULL, 0);
}

static void reply_copy(pt_blocks_reply_fn reply, void *ctx, const void *body, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        reply_error(reply, ctx, -PT_ENOMEM, "out of memory");
        return;
    }
    if (len) memcpy(copy, body, len);
    reply(ctx, 0, NULL, copy, len);
}

static const char *store_error_text(int err)
{
    switch (err) {
    case -PT_ECORRUPT:
        return "stored block failed its CRC";
    case -PT_ENOENT:
        return "no such block";
    case -PT_EEXIST:
        return "a different block exists under this id";
    case -PT_EBADMSG:
        return "block data does not match its CRC";
    case -PT_ERANGE:
        return "offset beyond the end of the block";
    case -PT_EINVAL:
        return "CRC or size differ from the stored block";
    case -PT_ENOSPC:
        return "disk full";
    default:
        return "block store failed";
    }
}

static void reply_mac(struct pt_blocks_service *s, pt_blocks_reply_fn reply, void *ctx,
                      enum pt_block_mac_domain domain, uint64_t block_id, uint32_t crc,
                      uint32_t size)
{
    uint8_t secret[PT_REG_SECRET_SIZE], out[8];
    if (!s->get_secret(s->hook_ctx, secret)) {
        reply_error(reply, ctx, -PT_EAGAIN, "no secret from the registry yet");
        return;
    }
    pt_put_le64(out, pt_block_mac(secret, domain, s->store.service_id, block_id, crc, size));
    reply_copy(reply, ctx, out, sizeof(out));
}

static int busy_claim(struct pt_blocks_service *s, uint64_t id)
{
    int i;
    for (i = 0; i < s->nbusy; i++)
        if (s->busy[i] == id) return 0;
    if (s->nbusy == (int)PT_ARRAY_SIZE(s->busy)) return 0;
    s->busy[s->nbusy++] = id;
    return 1;
}

int pt_blocks_busy(const struct pt_blocks_service *s, uint64_t id)
{
    int i;
    for (i = 0; i < s->nbusy; i++)
        if (s->busy[i] == id) return 1;
    return 0;
}

static void busy_release(struct pt_blocks_service *s, uint64_t id)
{
    int i;
    for (i = 0; i < s->nbusy; i++)
        if (s->busy[i] == id) {
            s->busy[i] = s->busy[--s->nbusy];
            return;
        }
}

static void changed(struct pt_blocks_service *s)
{
    if (s->on_change) s->on_change(s->hook_ctx);
}

static void store_failed(struct pt_blocks_service *s, pt_blocks_reply_fn reply, void *ctx,
                         uint64_t block_id, int err)
{
    if (err == -PT_ECORRUPT)
        petrel_log(PT_LOG_WARN, LOG_MODULE, "%016" PRIx64 ": block %016" PRIx64 " is corrupt",
                   s->store.service_id, block_id);
    reply_error(reply, ctx, err, store_error_text(err));
}

static void write_stored(void *arg, int status)
{
    struct blocks_work *bw = arg;
    struct pt_blocks_service *s = bw->svc;
    s->inflight--;
    busy_release(s, bw->block_id);
    if (s->closing) {
        free(bw);
        if (!s->inflight) service_free(s);
        return;
    }
    if (status) {
        store_failed(s, bw->reply, bw->ctx, bw->block_id, status);
    } else {
        struct pt_block_stat st = {bw->block_id, bw->size, bw->crc};
        index_put(s, &st);
        changed(s);
        reply_mac(s, bw->reply, bw->ctx, PT_BLOCK_WRITE_PROOF, bw->block_id, bw->crc, bw->size);
    }
    free(bw);
}

/* --- requests ------------------------------------------------------------------------------ */

static int check_cert(struct pt_blocks_service *s, pt_blocks_reply_fn reply, void *ctx,
                      enum pt_block_mac_domain domain, uint64_t block_id, uint32_t crc,
                      uint32_t size, uint64_t cert)
{
    uint8_t secret[PT_REG_SECRET_SIZE];
    if (!s->get_secret(s->hook_ctx, secret)) {
        reply_error(reply, ctx, -PT_EAGAIN, "no secret from the registry yet");
        return 0;
    }
    if (!pt_block_mac_check(secret, domain, s->store.service_id, block_id, crc, size, cert)) {
        petrel_log(PT_LOG_WARN, LOG_MODULE,
                   "%016" PRIx64 ": refused %s of block %016" PRIx64 ": bad certificate",
                   s->store.service_id, domain == PT_BLOCK_WRITE_CERT ? "write" : "erase",
                   block_id);
        reply_error(reply, ctx, -PT_ENOTCERT, "certificate does not verify");
        return 0;
    }
    return 1;
}

static void handle_write(struct pt_blocks_service *s, struct pt_cursor *c, const uint8_t *body,
                         pt_blocks_reply_fn reply, void *ctx)
{
    struct pt_block_write_req w;
    struct blocks_work *bw;
    pt_block_dec_write(c, &w);
    if (!pt_cursor_ok(c) || pt_cursor_left(c) != w.size) {
        reply_error(reply, ctx, -PT_EPROTO, "malformed request body");
        return;
    }
    if (!check_cert(s, reply, ctx, PT_BLOCK_WRITE_CERT, w.block_id, w.crc, w.size, w.cert)) return;
    if (!busy_claim(s, w.block_id)) {
        reply_error(reply, ctx, -PT_EBUSY, "block busy with another write or erase");
        return;
    }
    bw = calloc(1, sizeof(*bw));
    if (!bw) {
        busy_release(s, w.block_id);
        reply_error(reply, ctx, -PT_ENOMEM, "out of memory");
        return;
    }
    bw->svc = s;
    bw->reply = reply;
    bw->ctx = ctx;
    bw->op = OP_WRITE;
    bw->block_id = w.block_id;
    bw->crc = w.crc;
    bw->size = w.size;
    s->inflight++;
    pt_blocks_store_write(&s->store, w.block_id, w.crc, body + PT_BLOCK_WRITE_FIELDS, w.size,
                          write_stored, bw);
}

/* --- streamed writes ------------------------------------------------------------------------ */

/* Give a stream up: temp file removed, busy claim released, slot freed. */
static void stream_drop(struct pt_blocks_service *s, struct pt_blocks_stream_slot *slot)
{
    if (slot->timer) pt_env_cancel(s->store.env, slot->timer);
    pt_blocks_store_stream_abort(slot->st);
    busy_release(s, slot->block_id);
    memset(slot, 0, sizeof(*slot));
    s->streams_aborted++;
}

static struct pt_blocks_stream_slot *stream_find(struct pt_blocks_service *s, uint64_t block_id)
{
    size_t i;
    for (i = 0; i < PT_ARRAY_SIZE(s->streams); i++)
        if (s->streams[i].st && s->streams[i].block_id == block_id) return &s->streams[i];
    return NULL;
}

static void stream_idle_check(void *arg);

static void stream_arm(struct pt_blocks_service *s, struct pt_blocks_stream_slot *slot,
                       uint64_t delay)
{
    slot->timer = pt_env_timer(s->store.env, delay, stream_idle_check, slot);
}

static void stream_idle_check(void *arg)
{
    struct pt_blocks_stream_slot *slot = arg;
    struct pt_blocks_service *s = slot->svc;
    uint64_t now = pt_env_now(s->store.env), idle = now - slot->last_ms;
    uint64_t limit = s->stream_idle_ms ? s->stream_idle_ms : PT_BLOCK_STREAM_IDLE_MS;
    slot->timer = 0;
    if (!slot->st) return;
    if (idle >= limit) {
        petrel_log(PT_LOG_INFO, LOG_MODULE,
                   "%016" PRIx64 ": write stream of block %016" PRIx64 " idle, given up",
                   s->store.service_id, slot->block_id);
        stream_drop(s, slot);
        return;
    }
    stream_arm(s, slot, limit - idle);
}

static void handle_write_begin(struct pt_blocks_service *s, struct pt_cursor *c,
                               pt_blocks_reply_fn reply, void *ctx)
{
    struct pt_block_write_req w;
    struct pt_blocks_stream_slot *slot;
    uint64_t stream;
    size_t i;
    int err;
    pt_block_dec_write(c, &w);
    stream = pt_dec_u64(c);
    if (!pt_cursor_ok(c) || pt_cursor_left(c)) {
        reply_error(reply, ctx, -PT_EPROTO, "malformed request body");
        return;
    }
    if (!check_cert(s, reply, ctx, PT_BLOCK_WRITE_CERT, w.block_id, w.crc, w.size, w.cert)) return;
    /* A writer that starts again (its connection broke, it retries) replaces its old stream:
       only the holder of the certificate can, and the old one can never finish now. */
    slot = stream_find(s, w.block_id);
    if (slot) stream_drop(s, slot);
    for (i = 0, slot = NULL; i < PT_ARRAY_SIZE(s->streams) && !slot; i++)
        if (!s->streams[i].st) slot = &s->streams[i];
    if (!slot || !busy_claim(s, w.block_id)) {
        reply_error(reply, ctx, -PT_EBUSY,
                    slot ? "block busy with another write or erase" : "too many write streams");
        return;
    }
    err = pt_blocks_store_stream_open(&s->store, w.block_id, w.crc, w.size, &slot->st);
    if (err) {
        busy_release(s, w.block_id);
        store_failed(s, reply, ctx, w.block_id, err);
        return;
    }
    slot->svc = s;
    slot->block_id = w.block_id;
    slot->stream = stream;
    slot->crc = w.crc;
    slot->size = w.size;
    slot->last_ms = pt_env_now(s->store.env);
    stream_arm(s, slot, s->stream_idle_ms ? s->stream_idle_ms : PT_BLOCK_STREAM_IDLE_MS);
    reply_copy(reply, ctx, NULL, 0);
}

static void handle_write_pages(struct pt_blocks_service *s, struct pt_cursor *c,
                               pt_blocks_reply_fn reply, void *ctx)
{
    struct pt_block_pages_req p;
    struct pt_blocks_stream_slot *slot;
    const uint8_t *crcs, *data;
    size_t len;
    int err;
    pt_block_dec_pages(c, &p);
    crcs = pt_cursor_take(c, (size_t)p.pages * 4);
    len = pt_cursor_left(c);
    data = pt_cursor_take(c, len);
    if (!pt_cursor_ok(c) || len > PT_BLOCK_CHUNK || pt_block_pages((uint32_t)len) != p.pages) {
        reply_error(reply, ctx, -PT_EPROTO, "malformed request body");
        return;
    }
    slot = stream_find(s, p.block_id);
    if (!slot || slot->stream != p.stream) {
        reply_error(reply, ctx, -PT_ENOENT, "no such write stream");
        return;
    }
    err = pt_blocks_store_stream_pages(slot->st, p.offset, crcs, data, (uint32_t)len);
    if (err) {
        /* Nothing of a stream that went wrong is kept: the writer starts it again. */
        stream_drop(s, slot);
        reply_error(reply, ctx, err,
                    err == -PT_EBADMSG  ? "page data does not match its CRC"
                    : err == -PT_EPROTO ? "pages out of order or misaligned"
                                        : store_error_text(err));
        return;
    }
    slot->last_ms = pt_env_now(s->store.env);
    reply_copy(reply, ctx, NULL, 0);
}

static void handle_write_end(struct pt_blocks_service *s, struct pt_cursor *c,
                             pt_blocks_reply_fn reply, void *ctx)
{
    struct pt_blocks_stream_slot *slot;
    struct blocks_work *bw;
    struct pt_blocks_stream *st;
    uint64_t block_id = pt_dec_u64(c), stream = pt_dec_u64(c);
    if (!pt_cursor_ok(c) || pt_cursor_left(c)) {
        reply_error(reply, ctx, -PT_EPROTO, "malformed request body");
        return;
    }
    slot = stream_find(s, block_id);
    if (!slot || slot->stream != stream) {
        reply_error(reply, ctx, -PT_ENOENT, "no such write stream");
        return;
    }
    bw = calloc(1, sizeof(*bw));
    if (!bw) {
        stream_drop(s, slot);
        reply_error(reply, ctx, -PT_ENOMEM, "out of memory");
        return;
    }
    bw->svc = s;
    bw->reply = reply;
    bw->ctx = ctx;
    bw->op = OP_WRITE;
    bw->block_id = block_id;
    bw->crc = slot->crc;
    bw->size = slot->size;
    /* The slot is free again; the busy claim stays until the block is durable (write_stored). */
    st = slot->st;
    if (slot->timer) pt_env_cancel(s->store.env, slot->timer);
    memset(slot, 0, sizeof(*slot));
    s->inflight++;
    pt_blocks_store_stream_finish(st, write_stored, bw);
}

static void handle_list(struct pt_blocks_service *s, struct pt_cursor *c,
                        pt_blocks_reply_fn reply, void *ctx)
{
    uint64_t start = pt_dec_u64(c);
    uint32_t max = pt_dec_u32(c), n, i;
    size_t first, cap;
    uint8_t *buf;
    struct pt_cursor out;
    if (!pt_cursor_ok(c) || pt_cursor_left(c)) {
        reply_error(reply, ctx, -PT_EPROTO, "malformed request body");
        return;
    }
    if (max > PT_BLOCK_LIST_MAX) max = PT_BLOCK_LIST_MAX;
    first = pt_blocks_index_find(s, start);
    n = (uint32_t)PT_MIN((size_t)max, s->count - first);
    cap = 4 + (size_t)n * 16 + 1;
    buf = malloc(cap);
    if (!buf) {
        reply_error(reply, ctx, -PT_ENOMEM, "out of memory");
        return;
    }
    pt_cursor_init(&out, buf, cap);
    pt_enc_u32(&out, n);
    for (i = 0; i < n; i++)
        pt_block_enc_stat(&out, &s->index[first + i]);
    pt_enc_u8(&out, first + n < s->count ? 1 : 0);
    reply(ctx, 0, NULL, buf, out.pos);
}

void pt_blocks_service_handle(struct pt_blocks_service *s, uint16_t kind, const uint8_t *body,
                              size_t len, pt_blocks_reply_fn reply, void *ctx)
{
    struct pt_cursor c;
    pt_cursor_init(&c, (void *)body, len);
    switch (kind) {
    case PT_MSG_PING:
        reply_copy(reply, ctx, body, len);
        return;
    case PT_MSG_BLOCK_WRITE:
        handle_write(s, &c, body, reply, ctx);
        return;
    case PT_MSG_BLOCK_WRITE_BEGIN:
        handle_write_begin(s, &c, reply, ctx);
        return;
    case PT_MSG_BLOCK_WRITE_PAGES:
        handle_write_pages(s, &c, reply, ctx);
        return;
    case PT_MSG_BLOCK_WRITE_END:
        handle_write_end(s, &c, reply, ctx);
        return;
    case PT_MSG_BLOCK_READ: {
        struct pt_block_read_req r;
        uint8_t *out;
        size_t out_len;
        int err;
        pt_block_dec_read(&c, &r);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) break;
        if (r.count > PT_BLOCK_CHUNK) {
            /* No frame carries more than a chunk: a longer range is several reads. */
            reply_error(reply, ctx, -PT_E2BIG, "read range larger than one chunk (256 KiB)");
            return;
        }
        err = pt_blocks_store_read(&s->store, r.block_id, r.offset, r.count, &out, &out_len);
        if (err)
            store_failed(s, reply, ctx, r.block_id, err);
        else
            reply(ctx, 0, NULL, out, out_len);
        return;
    }
    case PT_MSG_BLOCK_ERASE: {
        struct pt_block_erase_req e;
        int err;
        pt_block_dec_erase(&c, &e);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) break;
        if (!check_cert(s, reply, ctx, PT_BLOCK_ERASE_CERT, e.block_id, e.crc, e.size, e.cert))
            return;
        if (!busy_claim(s, e.block_id)) {
            reply_error(reply, ctx, -PT_EBUSY, "block busy with another write or erase");
            return;
        }
        err = pt_blocks_store_erase(&s->store, e.block_id, e.crc, e.size);
        busy_release(s, e.block_id);
        if (err) {
            store_failed(s, reply, ctx, e.block_id, err);
            return;
        }
        index_remove(s, e.block_id);
        changed(s);
        reply_mac(s, reply, ctx, PT_BLOCK_ERASE_PROOF, e.block_id, e.crc, e.size);
        return;
    }
    case PT_MSG_BLOCK_STAT: {
        uint64_t id = pt_dec_u64(&c);
        size_t i;
        uint8_t out[16];
        struct pt_cursor oc;
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) break;
        i = pt_blocks_index_find(s, id);
        if (i >= s->count || s->index[i].block_id != id) {
            reply_error(reply, ctx, -PT_ENOENT, "no such block");
            return;
        }
        pt_cursor_init(&oc, out, sizeof(out));
        pt_block_enc_stat(&oc, &s->index[i]);
        reply_copy(reply, ctx, out, sizeof(out));
        return;
    }
    case PT_MSG_BLOCK_LIST:
        handle_list(s, &c, reply, ctx);
        return;
    case PT_MSG_BLOCK_INFO: {
        struct pt_block_info info;
        uint8_t out[192];
        struct pt_cursor oc;
        if (pt_cursor_left(&c)) break;
        memset(&info, 0, sizeof(info));
        info.service_id = s->store.service_id;
        info.capacity = s->capacity ? s->capacity(s->hook_ctx) : 0;
        info.used = s->used;
        info.blocks = s->count;
        info.scrub_checked = s->scrub.stats.blocks_checked;
        info.scrub_rotten = s->scrub.stats.rotten;
        info.scrub_passes = s->scrub.stats.passes;
        info.scrub_last_pass_ms = s->scrub.stats.last_pass_ms;
        info.has_scrub = 1;
        if (s->disk) {
            s->disk(s->hook_ctx, &info.fsid, &info.free);
            info.has_disk = 1;
        }
        snprintf(info.failure_domain, sizeof(info.failure_domain), "%s", s->failure_domain);
        pt_cursor_init(&oc, out, sizeof(out));
        pt_block_enc_info(&oc, &info);
        reply_copy(reply, ctx, out, oc.pos);
        return;
    }
    default:
        reply_error(reply, ctx, -PT_ENOTSUP, "unknown message kind for a block service");
        return;
    }
    reply_error(reply, ctx, -PT_EPROTO, "malformed request body");
}
