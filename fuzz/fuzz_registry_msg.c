/*
 * Fuzz target: the registry message codec (src/cluster/proto/registry_msg.c). The first byte
 * picks a decoder (heartbeats, list entries, whole list replies), the rest is its body. A
 * decoder that accepts bytes must have read them exactly: encoding what it decoded gives back
 * the bytes it consumed, and the values it promises to range-check are in range.
 */
#include <string.h>

#include "cluster/proto/frame.h"
#include "cluster/proto/registry_msg.h"
#include "fuzz.h"
#include "petrel/common.h"

enum {
    OP_SHARD_HB,
    OP_CDC_HB,
    OP_BLOCKS_HB,
    OP_REPLICA_ENTRY,
    OP_BLOCKS_ENTRY,
    OP_REPLICA_LIST,
    OP_BLOCKS_LIST,
    OP_COUNT
};

/* Re-encoding `used` bytes with enc must give exactly body[0..used). */
static void same_bytes(const uint8_t *body, size_t used, const uint8_t *again, size_t again_len)
{
    FUZZ_CHECK(again_len == used);
    FUZZ_CHECK(used == 0 || memcmp(again, body, used) == 0);
}

/* Bytes of an empty status tail (docs/PROTOCOL.md §2): u64 term, u64 commit, str http for a
 * replica heartbeat (replica 1), str http for a block service's. */
static size_t empty_tail_len(int replica)
{
    uint8_t tmp[32];
    struct pt_cursor t;
    pt_cursor_init(&t, tmp, sizeof(tmp));
    if (replica) {
        pt_enc_u64(&t, 0);
        pt_enc_u64(&t, 0);
    }
    pt_enc_str(&t, "");
    return t.pos;
}

/* A heartbeat from an older sender ends before its optional status tail: it decodes with an
 * empty tail, which the encoder writes back, so the re-encoding is the bytes consumed followed
 * by exactly one empty tail. */
static void same_bytes_or_tail_added(const uint8_t *body, size_t used, const uint8_t *again,
                                     size_t again_len, int tail_empty, int replica)
{
    if (again_len != used && tail_empty) {
        FUZZ_CHECK(again_len == used + empty_tail_len(replica));
        FUZZ_CHECK(used == 0 || memcmp(again, body, used) == 0);
        return;
    }
    same_bytes(body, used, again, again_len);
}

static void one_item(int op, const uint8_t *body, size_t len)
{
    struct pt_cursor c, e;
    struct pt_reg_replica r;
    struct pt_reg_blocks b;
    uint8_t out[512];
    int hb = op == OP_SHARD_HB || op == OP_CDC_HB || op == OP_BLOCKS_HB, tail_empty = 0;
    pt_cursor_init(&c, (void *)body, len);
    pt_cursor_init(&e, out, sizeof(out));
    switch (op) {
    case OP_SHARD_HB:
        pt_reg_dec_shard_heartbeat(&c, &r);
        if (!pt_cursor_ok(&c)) return;
        FUZZ_CHECK(r.replica < PT_REG_MAX_REPLICAS && r.leader <= 1);
        tail_empty = r.term == 0 && r.commit == 0 && r.http[0] == 0;
        pt_reg_enc_shard_heartbeat(&e, &r);
        break;
    case OP_CDC_HB:
        pt_reg_dec_cdc_heartbeat(&c, &r);
        if (!pt_cursor_ok(&c)) return;
        FUZZ_CHECK(r.replica < PT_REG_MAX_REPLICAS && r.leader <= 1 && r.shard == 0);
        tail_empty = r.term == 0 && r.commit == 0 && r.http[0] == 0;
        pt_reg_enc_cdc_heartbeat(&e, &r);
        break;
    case OP_BLOCKS_HB:
        pt_reg_dec_blocks_heartbeat(&c, &b);
        if (!pt_cursor_ok(&c)) return;
        FUZZ_CHECK(b.id != 0 && b.failure_domain[0] != 0);
        tail_empty = b.http[0] == 0;
        pt_reg_enc_blocks_heartbeat(&e, &b);
        break;
    case OP_REPLICA_ENTRY:
        pt_reg_dec_replica_entry(&c, &r);
        if (!pt_cursor_ok(&c)) return;
        FUZZ_CHECK(r.leader <= 1 && r.stale <= 1);
        FUZZ_CHECK(c.pos <= pt_reg_replica_entry_max());
        pt_reg_enc_replica_entry(&e, &r);
        break;
    default:
        pt_reg_dec_blocks_entry(&c, &b);
        if (!pt_cursor_ok(&c)) return;
        FUZZ_CHECK(b.stale <= 1);
        FUZZ_CHECK(c.pos <= pt_reg_blocks_entry_max());
        pt_reg_enc_blocks_entry(&e, &b);
        break;
    }
    FUZZ_CHECK(pt_cursor_ok(&e));
    FUZZ_CHECK(c.pos <= len);
    if (hb)
        same_bytes_or_tail_added(body, c.pos, out, e.pos, tail_empty, op != OP_BLOCKS_HB);
    else
        same_bytes(body, c.pos, out, e.pos);
}

static void replica_list(const uint8_t *body, size_t len)
{
    struct pt_reg_replica *v;
    struct pt_cursor e;
    uint8_t *out;
    size_t n, i;
    int err = pt_reg_decode_replica_list(body, len, &v, &n);
    if (err) {
        FUZZ_CHECK(err == -PT_EPROTO && v == NULL && n == 0);
        return;
    }
    out = malloc(len + 1);
    FUZZ_CHECK(out != NULL);
    pt_cursor_init(&e, out, len + 1);
    pt_enc_u32(&e, (uint32_t)n);
    for (i = 0; i < n; i++)
        pt_reg_enc_replica_entry(&e, &v[i]);
    FUZZ_CHECK(pt_cursor_ok(&e));
    same_bytes(body, len, out, e.pos);
    free(out);
    free(v);
}

static void blocks_list(const uint8_t *body, size_t len)
{
    struct pt_reg_blocks *v;
    struct pt_cursor e;
    uint8_t *out;
    size_t n, i;
    int err = pt_reg_decode_blocks_list(body, len, &v, &n);
    if (err) {
        FUZZ_CHECK(err == -PT_EPROTO && v == NULL && n == 0);
        return;
    }
    out = malloc(len + 1);
    FUZZ_CHECK(out != NULL);
    pt_cursor_init(&e, out, len + 1);
    pt_enc_u32(&e, (uint32_t)n);
    for (i = 0; i < n; i++)
        pt_reg_enc_blocks_entry(&e, &v[i]);
    FUZZ_CHECK(pt_cursor_ok(&e));
    same_bytes(body, len, out, e.pos);
    free(out);
    free(v);
}

int pt_fuzz_registry_msg(const uint8_t *data, size_t size)
{
    int op;
    if (size < 1) return 0;
    op = data[0] % OP_COUNT;
    if (op == OP_REPLICA_LIST)
        replica_list(data + 1, size - 1);
    else if (op == OP_BLOCKS_LIST)
        blocks_list(data + 1, size - 1);
    else
        one_item(op, data + 1, size - 1);
    return 0;
}

PT_FUZZ_TARGET(pt_fuzz_registry_msg)
