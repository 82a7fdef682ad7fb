/*
 * Registry calls (see reg_calls.h): encode a body, make one pt_conn call, decode the reply.
 */
#include "cluster/client/reg_calls.h"

#include <stdlib.h>
#include <string.h>

#include "petrel/common.h"

static int call(struct pt_conn *c, uint16_t kind, const void *body, uint32_t len,
                struct pt_reply *rep)
{
    return pt_conn_call(c, kind, body, len, PT_REGC_TIMEOUT_MS, rep);
}

static int heartbeat(struct pt_conn *c, uint16_t kind, const struct pt_reg_replica *r)
{
    uint8_t buf[256];
    struct pt_cursor cur;
    struct pt_reply rep;
    int rc;
    pt_cursor_init(&cur, buf, sizeof(buf));
    if (kind == PT_MSG_REG_SHARD_HEARTBEAT) pt_reg_enc_shard_heartbeat(&cur, r);
    else pt_reg_enc_cdc_heartbeat(&cur, r);
    if (!pt_cursor_ok(&cur)) return -PT_EINVAL;
    rc = call(c, kind, buf, (uint32_t)cur.pos, &rep);
    pt_reply_free(&rep);
    return rc;
}

int pt_regc_shard_heartbeat(struct pt_conn *c, const struct pt_reg_replica *r)
{
    return heartbeat(c, PT_MSG_REG_SHARD_HEARTBEAT, r);
}

int pt_regc_cdc_heartbeat(struct pt_conn *c, const struct pt_reg_replica *r)
{
    return heartbeat(c, PT_MSG_REG_CDC_HEARTBEAT, r);
}

int pt_regc_list_shards(struct pt_conn *c, uint16_t filter, struct pt_reg_replica **out,
                        size_t *n)
{
    uint8_t body[2];
    struct pt_reply rep;
    int rc;
    pt_put_le16(body, filter);
    rc = call(c, PT_MSG_REG_LIST_SHARDS, body, 2, &rep);
    if (rc == 0) rc = pt_reg_decode_replica_list(rep.body, rep.body_len, out, n);
    pt_reply_free(&rep);
    return rc;
}

int pt_regc_list_cdc(struct pt_conn *c, struct pt_reg_replica **out, size_t *n)
{
    struct pt_reply rep;
    int rc = call(c, PT_MSG_REG_LIST_CDC, NULL, 0, &rep);
    if (rc == 0) rc = pt_reg_decode_replica_list(rep.body, rep.body_len, out, n);
    pt_reply_free(&rep);
    return rc;
}

int pt_regc_list_blocks(struct pt_conn *c, struct pt_reg_blocks **out, size_t *n)
{
    struct pt_reply rep;
    int rc = call(c, PT_MSG_REG_LIST_BLOCKS, NULL, 0, &rep);
    if (rc == 0) rc = pt_reg_decode_blocks_list(rep.body, rep.body_len, out, n);
    pt_reply_free(&rep);
    return rc;
}

int pt_regc_block_secret(struct pt_conn *c, uint64_t id, uint8_t secret[PT_REG_SECRET_SIZE])
{
    uint8_t body[8];
    struct pt_reply rep;
    int rc;
    pt_put_le64(body, id);
    rc = call(c, PT_MSG_REG_BLOCK_SECRET, body, 8, &rep);
    if (rc == 0) {
        if (rep.body_len != PT_REG_SECRET_SIZE) rc = -PT_EPROTO;
        else memcpy(secret, rep.body, PT_REG_SECRET_SIZE);
    }
    pt_reply_free(&rep);
    return rc;
}
