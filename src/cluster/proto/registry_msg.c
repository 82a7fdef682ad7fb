/*
 * Registry message codec (see registry_msg.h and docs/PROTOCOL.md). Byte layout only; every
 * decoder tolerates any input, failing the cursor instead of reading out of bounds, and
 * rejects flags other than 0/1.
 */
#include "cluster/proto/registry_msg.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/proto/frame.h"
#include "petrel/common.h"

static uint8_t dec_bool(struct pt_cursor *c)
{
    uint8_t v = pt_dec_u8(c);
    if (v > 1) c->failed = 1;
    return v;
}

/* The status tail of a replica heartbeat (docs/PROTOCOL.md): optional, so a heartbeat that
 * ends before it (an older sender) still registers, with term, commit and http empty. */
static void enc_replica_tail(struct pt_cursor *c, const struct pt_reg_replica *r)
{
    pt_enc_u64(c, r->term);
    pt_enc_u64(c, r->commit);
    pt_enc_str(c, r->http);
}

static void dec_replica_tail(struct pt_cursor *c, struct pt_reg_replica *r)
{
    r->term = r->commit = 0;
    r->http[0] = 0;
    if (!pt_cursor_ok(c) || !pt_cursor_left(c)) return;
    r->term = pt_dec_u64(c);
    r->commit = pt_dec_u64(c);
    pt_dec_str(c, r->http, sizeof(r->http));
}

void pt_reg_enc_shard_heartbeat(struct pt_cursor *c, const struct pt_reg_replica *r)
{
    pt_enc_u8(c, r->shard);
    pt_enc_u8(c, r->replica);
    pt_enc_u8(c, r->leader ? 1 : 0);
    pt_enc_str(c, r->addr);
    enc_replica_tail(c, r);
}

void pt_reg_dec_shard_heartbeat(struct pt_cursor *c, struct pt_reg_replica *r)
{
    r->shard = pt_dec_u8(c);
    r->replica = pt_dec_u8(c);
    r->leader = dec_bool(c);
    r->stale = 0;
    r->age_ms = 0;
    pt_dec_str(c, r->addr, sizeof(r->addr));
    dec_replica_tail(c, r);
    if (r->replica >= PT_REG_MAX_REPLICAS) c->failed = 1;
}

void pt_reg_enc_cdc_heartbeat(struct pt_cursor *c, const struct pt_reg_replica *r)
{
    pt_enc_u8(c, r->replica);
    pt_enc_u8(c, r->leader ? 1 : 0);
    pt_enc_str(c, r->addr);
    enc_replica_tail(c, r);
}

void pt_reg_dec_cdc_heartbeat(struct pt_cursor *c, struct pt_reg_replica *r)
{
    r->shard = 0;
    r->replica = pt_dec_u8(c);
    r->leader = dec_bool(c);
    r->stale = 0;
    r->age_ms = 0;
    pt_dec_str(c, r->addr, sizeof(r->addr));
    dec_replica_tail(c, r);
    if (r->replica >= PT_REG_MAX_REPLICAS) c->failed = 1;
}

/* The scrubber's progress, after the usage fields of a heartbeat and of a list entry. */
static void enc_scrub(struct pt_cursor *c, const struct pt_reg_blocks *b)
{
    pt_enc_u64(c, b->scrub_checked);
    pt_enc_u64(c, b->scrub_rotten);
    pt_enc_u64(c, b->scrub_passes);
    pt_enc_u64(c, b->scrub_last_pass_ms);
}

static void dec_scrub(struct pt_cursor *c, struct pt_reg_blocks *b)
{
    b->scrub_checked = pt_dec_u64(c);
    b->scrub_rotten = pt_dec_u64(c);
    b->scrub_passes = pt_dec_u64(c);
    b->scrub_last_pass_ms = pt_dec_u64(c);
}

void pt_reg_enc_blocks_heartbeat(struct pt_cursor *c, const struct pt_reg_blocks *b)
{
    pt_enc_u64(c, b->id);
    pt_enc_str(c, b->failure_domain);
    pt_enc_str(c, b->addr);
    pt_enc_u64(c, b->capacity);
    pt_enc_u64(c, b->used);
    pt_enc_u64(c, b->blocks);
    enc_scrub(c, b);
    pt_enc_str(c, b->http); /* status tail */
}

void pt_reg_dec_blocks_heartbeat(struct pt_cursor *c, struct pt_reg_blocks *b)
{
    b->id = pt_dec_u64(c);
    pt_dec_str(c, b->failure_domain, sizeof(b->failure_domain));
    pt_dec_str(c, b->addr, sizeof(b->addr));
    b->capacity = pt_dec_u64(c);
    b->used = pt_dec_u64(c);
    b->blocks = pt_dec_u64(c);
    dec_scrub(c, b);
    b->http[0] = 0;
    if (pt_cursor_ok(c) && pt_cursor_left(c)) pt_dec_str(c, b->http, sizeof(b->http));
    b->stale = 0;
    b->age_ms = 0;
    if (b->id == 0 || b->failure_domain[0] == 0) c->failed = 1;
}

void pt_reg_enc_replica_entry(struct pt_cursor *c, const struct pt_reg_replica *r)
{
    pt_enc_u8(c, r->shard);
    pt_enc_u8(c, r->replica);
    pt_enc_u8(c, r->leader ? 1 : 0);
    pt_enc_u8(c, r->stale ? 1 : 0);
    pt_enc_u64(c, r->age_ms);
    pt_enc_str(c, r->addr);
}

void pt_reg_dec_replica_entry(struct pt_cursor *c, struct pt_reg_replica *r)
{
    r->shard = pt_dec_u8(c);
    r->replica = pt_dec_u8(c);
    r->leader = dec_bool(c);
    r->stale = dec_bool(c);
    r->age_ms = pt_dec_u64(c);
    pt_dec_str(c, r->addr, sizeof(r->addr));
    r->term = r->commit = 0;
    r->http[0] = 0;
}

void pt_reg_enc_blocks_entry(struct pt_cursor *c, const struct pt_reg_blocks *b)
{
    pt_enc_u64(c, b->id);
    pt_enc_str(c, b->failure_domain);
    pt_enc_str(c, b->addr);
    pt_enc_u64(c, b->capacity);
    pt_enc_u64(c, b->used);
    pt_enc_u64(c, b->blocks);
    pt_enc_u8(c, b->stale ? 1 : 0);
    pt_enc_u64(c, b->age_ms);
    enc_scrub(c, b);
}

void pt_reg_dec_blocks_entry(struct pt_cursor *c, struct pt_reg_blocks *b)
{
    b->id = pt_dec_u64(c);
    pt_dec_str(c, b->failure_domain, sizeof(b->failure_domain));
    pt_dec_str(c, b->addr, sizeof(b->addr));
    b->capacity = pt_dec_u64(c);
    b->used = pt_dec_u64(c);
    b->blocks = pt_dec_u64(c);
    b->stale = dec_bool(c);
    b->age_ms = pt_dec_u64(c);
    dec_scrub(c, b);
    b->http[0] = 0;
}

size_t pt_reg_replica_entry_max(void)
{
    return 4 + 8 + 2 + PT_REG_ADDR_MAX;
}

size_t pt_reg_blocks_entry_max(void)
{
    return 8 + 2 + PT_REG_DOMAIN_MAX + 2 + PT_REG_ADDR_MAX + 24 + 1 + 8 + 32;
}

int pt_reg_decode_replica_list(const uint8_t *body, size_t len, struct pt_reg_replica **out,
                               size_t *count)
{
    struct pt_cursor c;
    uint32_t n, i;
    struct pt_reg_replica *v;
    *out = NULL;
    *count = 0;
    pt_cursor_init(&c, (void *)body, len);
    n = pt_dec_u32(&c);
    /* Each entry takes at least 14 bytes: a count the body cannot hold is malformed. */
    if (!pt_cursor_ok(&c) || n > pt_cursor_left(&c) / 14) return -PT_EPROTO;
    v = calloc(n ? n : 1, sizeof(*v));
    if (!v) return -PT_ENOMEM;
    for (i = 0; i < n; i++)
        pt_reg_dec_replica_entry(&c, &v[i]);
    if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) {
        free(v);
        return -PT_EPROTO;
    }
    *out = v;
    *count = n;
    return 0;
}

int pt_reg_decode_blocks_list(const uint8_t *body, size_t len, struct pt_reg_blocks **out,
                              size_t *count)
{
    struct pt_cursor c;
    uint32_t n, i;
    struct pt_reg_blocks *v;
    *out = NULL;
    *count = 0;
    pt_cursor_init(&c, (void *)body, len);
    n = pt_dec_u32(&c);
    if (!pt_cursor_ok(&c) || n > pt_cursor_left(&c) / 45) return -PT_EPROTO;
    v = calloc(n ? n : 1, sizeof(*v));
    if (!v) return -PT_ENOMEM;
    for (i = 0; i < n; i++)
        pt_reg_dec_blocks_entry(&c, &v[i]);
    if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) {
        free(v);
        return -PT_EPROTO;
    }
    *out = v;
    *count = n;
    return 0;
}

int pt_reg_location_split(const char *location, char addrs[][PT_REG_ADDR_MAX], unsigned max)
{
    const char *p = location;
    unsigned n = 0;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || len >= PT_REG_ADDR_MAX || n == max || n == PT_REG_MAX_REPLICAS)
            return -PT_EINVAL;
        memcpy(addrs[n], p, len);
        addrs[n][len] = 0;
        n++;
        if (!end) return (int)n;
        p = end + 1;
    }
}

void pt_reg_enc_info(struct pt_cursor *c, const struct pt_reg_info *i)
{
    pt_enc_u8(c, i->replica);
    pt_enc_u8(c, i->replicas);
    pt_enc_u8(c, i->serving);
    pt_enc_u64(c, i->term);
    pt_enc_u64(c, i->commit);
    pt_enc_u64(c, i->applied);
    pt_enc_u64(c, i->staleness_ms);
    pt_enc_str(c, i->leader);
}

void pt_reg_dec_info(struct pt_cursor *c, struct pt_reg_info *i)
{
    memset(i, 0, sizeof(*i));
    i->replica = pt_dec_u8(c);
    i->replicas = pt_dec_u8(c);
    i->serving = pt_dec_u8(c);
    i->term = pt_dec_u64(c);
    i->commit = pt_dec_u64(c);
    i->applied = pt_dec_u64(c);
    i->staleness_ms = pt_dec_u64(c);
    pt_dec_str(c, i->leader, sizeof(i->leader));
}
