/*
 * Registry calls (see registry_client.h): request encoding and reply validation. Never trusts
 * a count or a length in a reply before checking it against the bytes received.
 */
#include "cluster/client/registry_client.h"

#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/proto/ids.h"
#include "petrel/common.h"

/* The member of a registry group that answered last (process-wide hint, any group). */
static _Atomic unsigned last_good;

/*
 * One call to a registry location. A single address is pt_call_buf. A group is tried member by
 * member, one attempt each (starting with the one that answered last, or the leader a
 * follower named), in rounds with back-off until the retry budget is spent: a dead or
 * partitioned member costs one timeout, a follower that may not serve redirects to the leader.
 * An error that is an answer (not a transport error, not PT_ENOTLEADER or another retryable
 * one) ends the call at once.
 */
static int reg_call(const char *registry, uint16_t kind, const void *body, size_t len,
                    const struct pt_call_opts *opts, struct pt_reply *rep)
{
    char addrs[PT_REG_MAX_REPLICAS][PT_REG_ADDR_MAX], hint[PT_FRAME_ADDRESS_MAX + 1];
    struct pt_call_opts one;
    struct pt_retry retry;
    uint32_t budget = opts && opts->retry_budget_ms ? opts->retry_budget_ms : 10000;
    unsigned start, k;
    int n, err = -PT_EINVAL;
    if (!strchr(registry, ',')) return pt_call_buf(registry, kind, body, len, opts, rep);
    memset(rep, 0, sizeof(*rep));
    n = pt_reg_location_split(registry, addrs, PT_REG_MAX_REPLICAS);
    if (n < 0) return n;
    memset(&one, 0, sizeof(one));
    one.timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
    one.retry_budget_ms = 1;
    one.seed = opts ? opts->seed : 0;
    pt_retry_init(&retry, 20, 500, budget, one.seed ? one.seed : pt_entropy_seed());
    hint[0] = 0;
    for (;;) {
        start = atomic_load(&last_good);
        for (k = 0; k < (unsigned)n; k++) {
            unsigned i = (start + k) % (unsigned)n, j;
            const char *addr = addrs[i];
            if (hint[0]) {
                /* The leader a follower named, if it is a member: ask it next. */
                for (j = 0; j < (unsigned)n; j++)
                    if (strcmp(addrs[j], hint) == 0) break;
                if (j < (unsigned)n) {
                    i = j;
                    addr = addrs[j];
                    k--;
                }
                hint[0] = 0;
            }
            err = pt_call_buf(addr, kind, body, len, &one, rep);
            if (err >= 0) {
                atomic_store(&last_good, i);
                return err;
            }
            if (err == -PT_ENOTLEADER && rep->remote && rep->error.leader[0] &&
                strcmp(rep->error.leader, addr) != 0)
                snprintf(hint, sizeof(hint), "%s", rep->error.leader);
            if (!pt_error_retryable(err) && rep->remote) return err;
            pt_reply_free(rep);
        }
        if (budget == 1 || pt_retry_wait(&retry) != 0) return err;
    }
}

/* A call whose reply must be empty. */
static int call_empty_reply(const char *address, uint16_t kind, const void *body, size_t len,
                            const struct pt_call_opts *opts)
{
    struct pt_reply rep;
    int err = reg_call(address, kind, body, len, opts, &rep);
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
    err = reg_call(registry, PT_MSG_REG_BLOCKS_HEARTBEAT, buf, c.pos, opts, &rep);
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
    err = reg_call(registry, PT_MSG_REG_LIST_SHARDS, buf, 2, opts, &rep);
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
    err = reg_call(registry, PT_MSG_REG_LIST_CDC, NULL, 0, opts, &rep);
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
    err = reg_call(registry, PT_MSG_REG_LIST_BLOCKS, NULL, 0, opts, &rep);
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
    err = reg_call(registry, PT_MSG_REG_BLOCK_SECRET, buf, 8, opts, &rep);
    if (!err && rep.body_len != PT_REG_SECRET_SIZE) err = -PT_EPROTO;
    if (!err) memcpy(secret_out, rep.body, PT_REG_SECRET_SIZE);
    pt_reply_free(&rep);
    return err;
}

int pt_reg_info(const char *address, struct pt_reg_info *out, const struct pt_call_opts *opts)
{
    struct pt_reply rep;
    struct pt_cursor c;
    int err = pt_call_buf(address, PT_MSG_REG_INFO, NULL, 0, opts, &rep);
    if (!err) {
        pt_cursor_init(&c, rep.body, rep.body_len);
        pt_reg_dec_info(&c, out);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) err = -PT_EPROTO;
    }
    pt_reply_free(&rep);
    return err;
}

int pt_reg_location_check(const char *location)
{
    char addrs[PT_REG_MAX_REPLICAS][PT_REG_ADDR_MAX];
    struct sockaddr_storage ss;
    int n = pt_reg_location_split(location, addrs, PT_REG_MAX_REPLICAS), i;
    if (n < 0) return n;
    for (i = 0; i < n; i++)
        if (pt_addr_parse(addrs[i], &ss) != 0) return -PT_EINVAL;
    return 0;
}
