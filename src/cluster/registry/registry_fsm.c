/*
 * The registry as a replicated state machine (see registry.h, "the replicated registry"):
 * log items in, state changes and per-item replies out. Owns the item layout and the rule
 * that time inside the state machine is the leader's time stamped in each entry, so every
 * replica applying the same log reaches the same entries, addresses, leaders and secrets.
 * Never draws randomness: a new block service's secret travels in the item.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/proto/frame.h"
#include "cluster/proto/ids.h"
#include "cluster/registry/registry.h"
#include "cluster/replica/entry.h"
#include "petrel/codec.h"
#include "cluster/replica/replica.h"
#include "petrel/common.h"

int pt_registry_item_encode(uint8_t *buf, size_t cap, uint16_t kind, const uint8_t *body,
                            size_t body_len, const uint8_t fresh_secret[PT_REG_SECRET_SIZE])
{
    struct pt_cursor c;
    int blocks = kind == PT_MSG_REG_BLOCKS_HEARTBEAT;
    if (kind != PT_REGISTRY_ITEM_TICK && kind != PT_MSG_REG_SHARD_HEARTBEAT &&
        kind != PT_MSG_REG_CDC_HEARTBEAT && !blocks)
        return -PT_EINVAL;
    if (blocks && !fresh_secret) return -PT_EINVAL;
    pt_cursor_init(&c, buf, cap);
    pt_enc_u16(&c, kind);
    if (body_len) pt_enc_bytes(&c, body, body_len);
    if (blocks) pt_enc_bytes(&c, fresh_secret, PT_REG_SECRET_SIZE);
    if (!pt_cursor_ok(&c)) return -PT_E2BIG;
    return (int)c.pos;
}

static void put_status(struct pt_shard_apply_out *out, unsigned i, int status)
{
    pt_put_le32(out->reply[i], (uint32_t)(int32_t)status);
    out->len[i] = 4;
}

/* One item at leader time now_ms: the state changes and out's reply i is set. */
static int apply_item(struct pt_registry *r, const uint8_t *p, size_t n, uint64_t now_ms,
                      struct pt_shard_apply_out *out, unsigned i)
{
    struct pt_cursor c;
    uint16_t kind;
    int rc;
    pt_cursor_init(&c, (void *)p, n);
    kind = pt_dec_u16(&c);
    if (!pt_cursor_ok(&c)) {
        put_status(out, i, -PT_EPROTO);
        return 0;
    }
    switch (kind) {
    case PT_REGISTRY_ITEM_TICK:
        put_status(out, i, pt_cursor_left(&c) ? -PT_EPROTO : 0);
        return 0;
    case PT_MSG_REG_SHARD_HEARTBEAT:
    case PT_MSG_REG_CDC_HEARTBEAT: {
        struct pt_reg_replica hb;
        int cdc = kind == PT_MSG_REG_CDC_HEARTBEAT;
        if (cdc)
            pt_reg_dec_cdc_heartbeat(&c, &hb);
        else
            pt_reg_dec_shard_heartbeat(&c, &hb);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) {
            put_status(out, i, -PT_EPROTO);
            return 0;
        }
        rc = cdc ? pt_registry_cdc_heartbeat(r, &hb, now_ms)
                 : pt_registry_shard_heartbeat(r, &hb, now_ms);
        if (rc == -PT_ENOMEM) return rc;
        put_status(out, i, rc);
        return 0;
    }
    case PT_MSG_REG_BLOCKS_HEARTBEAT: {
        struct pt_reg_blocks hb;
        uint8_t fresh[PT_REG_SECRET_SIZE], secret[PT_REG_SECRET_SIZE];
        pt_reg_dec_blocks_heartbeat(&c, &hb);
        if (pt_cursor_left(&c) != PT_REG_SECRET_SIZE) c.failed = 1;
        pt_dec_bytes(&c, fresh, sizeof(fresh));
        if (!pt_cursor_ok(&c)) {
            put_status(out, i, -PT_EPROTO);
            return 0;
        }
        rc = pt_registry_blocks_heartbeat(r, &hb, now_ms, fresh, secret);
        if (rc == -PT_ENOMEM) return rc;
        put_status(out, i, rc);
        if (rc == 0) {
            memcpy(out->reply[i] + 4, secret, PT_REG_SECRET_SIZE);
            out->len[i] = 4 + PT_REG_SECRET_SIZE;
        }
        return 0;
    }
    default:
        put_status(out, i, -PT_EPROTO);
        return 0;
    }
}

int pt_registry_apply(struct pt_registry *r, const uint8_t *entry, size_t len,
                      struct pt_shard_apply_out *out, uint64_t *time_ms)
{
    struct pt_cursor c;
    uint16_t count, i;
    uint64_t now;
    int rc;
    out->count = 0;
    *time_ms = 0;
    if (len < PT_SHARD_ENTRY_HEADER || entry[0] != PT_SHARD_ENTRY_VERSION) return 0;
    count = pt_get_le16(entry + 2);
    if (count > PT_SHARD_BATCH_MAX) return 0;
    now = pt_get_le64(entry + 4);
    *time_ms = now;
    pt_cursor_init(&c, (void *)(entry + PT_SHARD_ENTRY_HEADER), len - PT_SHARD_ENTRY_HEADER);
    for (i = 0; i < count; i++) {
        uint32_t n = pt_dec_u32(&c);
        const uint8_t *p = pt_cursor_take(&c, n);
        if (!p)
            put_status(out, i, -PT_EPROTO);
        else if ((rc = apply_item(r, p, n, now, out, i)) != 0)
            return rc;
        out->count = (uint16_t)(i + 1);
    }
    return 0;
}

/* ---- the libraft FSM ------------------------------------------------------------------------ */

static void clock_seen(struct pt_registry_fsm *f, uint64_t time_ms)
{
    if (time_ms > f->time_ms) f->time_ms = time_ms;
    if (f->applied) f->applied(f->ctx, f->time_ms);
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct pt_registry_fsm *f = fsm->data;
    uint64_t t;
    if (pt_registry_apply(f->state, buf->base, buf->len, f->out, &t) != 0) {
        *result = NULL;
        return RAFT_NOMEM;
    }
    if (t) clock_seen(f, t);
    *result = f->out;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    struct pt_registry_fsm *f = fsm->data;
    struct raft_buffer *b = malloc(sizeof(*b));
    uint8_t *state, *data;
    size_t len;
    if (!b) return RAFT_NOMEM;
    if (pt_registry_encode(f->state, &state, &len) != 0) {
        free(b);
        return RAFT_NOMEM;
    }
    data = malloc(8 + len);
    if (!data) {
        free(state);
        free(b);
        return RAFT_NOMEM;
    }
    pt_put_le64(data, f->time_ms);
    memcpy(data + 8, state, len);
    free(state);
    b->base = data;
    b->len = 8 + len;
    *bufs = b;
    *n = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct pt_registry_fsm *f = fsm->data;
    uint64_t t;
    if (buf->len < 8) return RAFT_CORRUPT;
    t = pt_get_le64(buf->base);
    /* Every entry counts as seen at the snapshot's time: heartbeat times are not kept. */
    if (pt_registry_decode(f->state, (const uint8_t *)buf->base + 8, buf->len - 8, t) != 0)
        return RAFT_CORRUPT;
    clock_seen(f, t);
    raft_free(buf->base);
    return 0;
}

int pt_registry_fsm_init(struct pt_registry_fsm *f, struct pt_registry *state)
{
    memset(f, 0, sizeof(*f));
    f->out = malloc(sizeof(*f->out));
    if (!f->out) return -PT_ENOMEM;
    f->state = state;
    f->fsm.version = 2;
    f->fsm.data = f;
    f->fsm.apply = fsm_apply;
    f->fsm.snapshot = fsm_snapshot;
    f->fsm.snapshot_finalize = pt_replica_snapshot_finalize;
    f->fsm.restore = fsm_restore;
    return 0;
}

void pt_registry_fsm_free(struct pt_registry_fsm *f)
{
    free(f->out);
    f->out = NULL;
}
