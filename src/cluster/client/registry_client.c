/*
 * Registry calls (see registry_client.h): request encoding and reply validation. Never trusts
 * a count or a length in a reply before checking it against the bytes received.
 */
#include "cluster/client/registry_client.h"

#include <stdlib.h>
#include <string.h>

#include "petrel/common.h"

/* A call whose reply must be empty. */
static int call_empty_reply(const char *address, uint16_t kind, const void *body, size_t len,
                            const struct pt_call_opts *opts)
{
    struct pt_reply rep;
    int err = pt_call_buf(address, kind, body, len, opts, &rep);
    if (!err && rep.body_len) err = -PT_EPROTO;
    pt_reply_free(&rep);
    return err;
}

int pt_reg_heartbeat_shard(const char *registry, const struct pt_reg_replica *hb,
                           const struct pt_call_opts *opts)
{
    uint8_t buf[8 + PT_REG_ADDR_MAX];
    struct pt_cursor c;
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_reg_enc_shard_heartbeat(&c, hb);
    if (!pt_cursor_ok(&c)) return -PT_EINVAL;
    return call_empty_reply(registry, PT_MSG_REG_SHARD_HEARTBEAT, buf, c.pos, opts);
}

int pt_reg_heartbeat_cdc(const char *registry, const struct pt_reg_replica *hb,
                         const struct pt_call_opts *opts)
{
    uint8_t buf[8 + PT_REG_ADDR_MAX];
    struct pt_cursor c;
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_reg_enc_cdc_heartbeat(&c, hb);
    if (!pt_cursor_ok(&c)) return -PT_EINVAL;
    return call_empty_reply(registry, PT_MSG_REG_CDC_HEARTBEAT, buf, c.pos, opts);
}

int pt_reg_heartbeat_blocks(const char *registry, const struct pt_reg_blocks *hb,
                            uint8_t secret_out[PT_REG_SECRET_SIZE], const struct pt_call_opts *opts)
{
    uint8_t buf[64 + PT_REG_ADDR_MAX + PT_REG_DOMAIN_MAX];
    struct pt_cursor c;
    struct pt_reply rep;
    int err;
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_reg_enc_blocks_heartbeat(&c, hb);
    if (!pt_cursor_ok(&c)) return -PT_EINVAL;
    err = pt_call_buf(registry, PT_MSG_REG_BLOCKS_HEARTBEAT, buf, c.pos, opts, &rep);
    if (!err && rep.body_len != PT_REG_SECRET_SIZE) err = -PT_EPROTO;
    if (!err) memcpy(secret_out, rep.body, PT_REG_SECRET_SIZE);
    pt_reply_free(&rep);
    return err;
}

int pt_reg_list_shards(const char *registry, uint16_t shard_filter, struct pt_reg_replica **out,
                       size_t *count, const struct pt_call_opts *opts)
{
    uint8_t buf[2];
    struct pt_reply rep;
    int err;
    *out = NULL;
    *count = 0;
    pt_put_le16(buf, shard_filter);
    err = pt_call_buf(registry, PT_MSG_REG_LIST_SHARDS, buf, 2, opts, &rep);
    if (!err) err = pt_reg_decode_replica_list(rep.body, rep.body_len, out, count);
    pt_reply_free(&rep);
    return err;
}

int pt_reg_list_cdc(const char *registry, struct pt_reg_replica **out, size_t *count,
                    const struct pt_call_opts *opts)
{
    struct pt_reply rep;
    int err;
    *out = NULL;
    *count = 0;
    err = pt_call_buf(registry, PT_MSG_REG_LIST_CDC, NULL, 0, opts, &rep);
    if (!err) err = pt_reg_decode_replica_list(rep.body, rep.body_len, out, count);
    pt_reply_free(&rep);
    return err;
}

int pt_reg_list_blocks(const char *registry, struct pt_reg_blocks **out, size_t *count,
                       const struct pt_call_opts *opts)
{
    struct pt_reply rep;
    int err;
    *out = NULL;
    *count = 0;
    err = pt_call_buf(registry, PT_MSG_REG_LIST_BLOCKS, NULL, 0, opts, &rep);
    if (!err) err = pt_reg_decode_blocks_list(rep.body, rep.body_len, out, count);
    pt_reply_free(&rep);
    return err;
}

int pt_reg_block_secret(const char *registry, uint64_t service_id,
                        uint8_t secret_out[PT_REG_SECRET_SIZE], const struct pt_call_opts *opts)
{
    uint8_t buf[8];
    struct pt_reply rep;
    int err;
    pt_put_le64(buf, service_id);
    err = pt_call_buf(registry, PT_MSG_REG_BLOCK_SECRET, buf, 8, opts, &rep);
    if (!err && rep.body_len != PT_REG_SECRET_SIZE) err = -PT_EPROTO;
    if (!err) memcpy(secret_out, rep.body, PT_REG_SECRET_SIZE);
    pt_reply_free(&rep);
    return err;
}
