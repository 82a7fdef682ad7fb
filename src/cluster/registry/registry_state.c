/*
 * The registry state machine and its persisted form (see registry.h). Owns the entry table:
 * lookups, heartbeats, staleness, listings, the state file layout. No sockets, no clocks, no
 * randomness of its own: everything that varies is passed in, so tests drive it exactly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "cluster/storage/durable.h"
#include "cluster/net/net.h"
#include "cluster/proto/frame.h"
#include "cluster/registry/registry.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

void pt_registry_init(struct pt_registry *r, uint64_t stale_after_ms)
{
    memset(r, 0, sizeof(*r));
    r->stale_after_ms = stale_after_ms;
}

void pt_registry_free(struct pt_registry *r)
{
    free(r->entries);
    r->entries = NULL;
    r->count = r->cap = 0;
}

static int valid_service_addr(const char *addr)
{
    struct sockaddr_storage ss;
    if (pt_addr_parse(addr, &ss)) return 0;
    if (ss.ss_family == AF_INET) return ((struct sockaddr_in *)&ss)->sin_port != 0;
    return ((struct sockaddr_in6 *)&ss)->sin6_port != 0;
}

static struct pt_registry_entry *entry_add(struct pt_registry *r, uint8_t kind)
{
    struct pt_registry_entry *e;
    if (r->count >= PT_REGISTRY_MAX_ENTRIES) return NULL;
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        e = realloc(r->entries, cap * sizeof(*e));
        if (!e) return NULL;
        r->entries = e;
        r->cap = cap;
    }
    e = &r->entries[r->count++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    return e;
}

static struct pt_registry_entry *find_replica(struct pt_registry *r, uint8_t kind, uint8_t shard,
                                              uint8_t replica)
{
    size_t i;
    for (i = 0; i < r->count; i++) {
        struct pt_registry_entry *e = &r->entries[i];
        if (e->kind == kind && e->replica.shard == shard && e->replica.replica == replica) return e;
    }
    return NULL;
}

static int replica_heartbeat(struct pt_registry *r, uint8_t kind, const struct pt_reg_replica *hb,
                             uint64_t now_ms)
{
    struct pt_registry_entry *e;
    size_t i;
    if (hb->replica >= PT_REG_MAX_REPLICAS || !valid_service_addr(hb->addr)) return -PT_EINVAL;
    e = find_replica(r, kind, hb->shard, hb->replica);
    if (!e) {
        if (r->count >= PT_REGISTRY_MAX_ENTRIES) return -PT_ENOSPC;
        e = entry_add(r, kind);
        if (!e) return -PT_ENOMEM;
        e->replica.shard = hb->shard;
        e->replica.replica = hb->replica;
        r->structural = 1;
    }
    if (strcmp(e->replica.addr, hb->addr) != 0 || e->replica.leader != (hb->leader ? 1 : 0))
        r->structural = 1;
    memcpy(e->replica.addr, hb->addr, sizeof(e->replica.addr));
    e->replica.addr[sizeof(e->replica.addr) - 1] = 0;
    e->replica.leader = hb->leader ? 1 : 0;
    /* status only: not part of the saved state */
    e->replica.term = hb->term;
    e->replica.commit = hb->commit;
    memcpy(e->replica.http, hb->http, sizeof(e->replica.http));
    e->replica.http[sizeof(e->replica.http) - 1] = 0;
    e->last_seen_ms = now_ms;
    /* The newest leadership claim wins: older claims in the same group are withdrawn. */
    if (e->replica.leader)
        for (i = 0; i < r->count; i++) {
            struct pt_registry_entry *o = &r->entries[i];
            if (o != e && o->kind == kind && o->replica.shard == e->replica.shard &&
                o->replica.leader) {
                o->replica.leader = 0;
                r->structural = 1;
            }
        }
    if (r->structural) r->needs_save = 1;
    return 0;
}

int pt_registry_shard_heartbeat(struct pt_registry *r, const struct pt_reg_replica *hb,
                                uint64_t now_ms)
{
    return replica_heartbeat(r, PT_REG_KIND_SHARD, hb, now_ms);
}

int pt_registry_cdc_heartbeat(struct pt_registry *r, const struct pt_reg_replica *hb,
                              uint64_t now_ms)
{
    struct pt_reg_replica copy = *hb;
    copy.shard = 0;
    return replica_heartbeat(r, PT_REG_KIND_CDC, &copy, now_ms);
}

static struct pt_registry_entry *find_blocks(const struct pt_registry *r, uint64_t id)
{
    size_t i;
    for (i = 0; i < r->count; i++)
        if (r->entries[i].kind == PT_REG_KIND_BLOCKS && r->entries[i].blocks.id == id)
            return &r->entries[i];
    return NULL;
}

int pt_registry_blocks_heartbeat(struct pt_registry *r, const struct pt_reg_blocks *hb,
                                 uint64_t now_ms, const uint8_t fresh_secret[PT_REG_SECRET_SIZE],
                                 uint8_t secret_out[PT_REG_SECRET_SIZE])
{
    struct pt_registry_entry *e;
    if (hb->id == 0 || hb->failure_domain[0] == 0 || !valid_service_addr(hb->addr))
        return -PT_EINVAL;
    e = find_blocks(r, hb->id);
    if (!e) {
        if (r->count >= PT_REGISTRY_MAX_ENTRIES) return -PT_ENOSPC;
        e = entry_add(r, PT_REG_KIND_BLOCKS);
        if (!e) return -PT_ENOMEM;
        e->blocks.id = hb->id;
        memcpy(e->secret, fresh_secret, PT_REG_SECRET_SIZE);
        r->structural = 1;
    }
    if (strcmp(e->blocks.addr, hb->addr) != 0 ||
        strcmp(e->blocks.failure_domain, hb->failure_domain) != 0)
        r->structural = 1;
    if (e->blocks.capacity != hb->capacity || e->blocks.used != hb->used ||
        e->blocks.blocks != hb->blocks)
        r->needs_save = 1;
    memcpy(e->blocks.addr, hb->addr, sizeof(e->blocks.addr));
    memcpy(e->blocks.failure_domain, hb->failure_domain, sizeof(e->blocks.failure_domain));
    e->blocks.addr[sizeof(e->blocks.addr) - 1] = 0;
    e->blocks.failure_domain[sizeof(e->blocks.failure_domain) - 1] = 0;
    e->blocks.capacity = hb->capacity;
    e->blocks.used = hb->used;
    e->blocks.blocks = hb->blocks;
    /* progress only: not part of the saved state */
    e->blocks.scrub_checked = hb->scrub_checked;
    e->blocks.scrub_rotten = hb->scrub_rotten;
    e->blocks.scrub_passes = hb->scrub_passes;
    e->blocks.scrub_last_pass_ms = hb->scrub_last_pass_ms;
    memcpy(e->blocks.http, hb->http, sizeof(e->blocks.http));
    e->blocks.http[sizeof(e->blocks.http) - 1] = 0;
    e->last_seen_ms = now_ms;
    memcpy(secret_out, e->secret, PT_REG_SECRET_SIZE);
    if (r->structural) r->needs_save = 1;
    return 0;
}

int pt_registry_entry_stale(const struct pt_registry *r, const struct pt_registry_entry *e,
                            uint64_t now_ms)
{
    if (e->last_seen_ms == 0) return 1;
    return now_ms > e->last_seen_ms && now_ms - e->last_seen_ms > r->stale_after_ms;
}

static uint64_t entry_age(const struct pt_registry_entry *e, uint64_t now_ms)
{
    if (e->last_seen_ms == 0) return UINT64_MAX;
    return now_ms > e->last_seen_ms ? now_ms - e->last_seen_ms : 0;
}

static int cmp_replica(const void *a, const void *b)
{
    const struct pt_reg_replica *x = a, *y = b;
    if (x->shard != y->shard) return x->shard < y->shard ? -1 : 1;
    return x->replica < y->replica ? -1 : x->replica > y->replica;
}

static int cmp_blocks(const void *a, const void *b)
{
    const struct pt_reg_blocks *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static size_t list_replicas(const struct pt_registry *r, uint8_t kind, uint16_t filter,
                            uint64_t now_ms, struct pt_reg_replica *out, size_t max)
{
    size_t i, n = 0;
    for (i = 0; i < r->count; i++) {
        const struct pt_registry_entry *e = &r->entries[i];
        if (e->kind != kind) continue;
        if (filter != PT_REG_ALL_SHARDS && e->replica.shard != filter) continue;
        if (n < max) {
            out[n] = e->replica;
            out[n].stale = (uint8_t)pt_registry_entry_stale(r, e, now_ms);
            out[n].age_ms = entry_age(e, now_ms);
        }
        n++;
    }
    if (out) qsort(out, PT_MIN(n, max), sizeof(*out), cmp_replica);
    return n;
}

size_t pt_registry_list_shards(const struct pt_registry *r, uint16_t shard_filter, uint64_t now_ms,
                               struct pt_reg_replica *out, size_t max)
{
    return list_replicas(r, PT_REG_KIND_SHARD, shard_filter, now_ms, out, max);
}

size_t pt_registry_list_cdc(const struct pt_registry *r, uint64_t now_ms,
                            struct pt_reg_replica *out, size_t max)
{
    return list_replicas(r, PT_REG_KIND_CDC, PT_REG_ALL_SHARDS, now_ms, out, max);
}

size_t pt_registry_list_blocks(const struct pt_registry *r, uint64_t now_ms,
                               struct pt_reg_blocks *out, size_t max)
{
    size_t i, n = 0;
    for (i = 0; i < r->count; i++) {
        const struct pt_registry_entry *e = &r->entries[i];
        if (e->kind != PT_REG_KIND_BLOCKS) continue;
        if (n < max) {
            out[n] = e->blocks;
            out[n].stale = (uint8_t)pt_registry_entry_stale(r, e, now_ms);
            out[n].age_ms = entry_age(e, now_ms);
        }
        n++;
    }
    if (out) qsort(out, PT_MIN(n, max), sizeof(*out), cmp_blocks);
    return n;
}

int pt_registry_block_secret(const struct pt_registry *r, uint64_t id,
                             uint8_t secret_out[PT_REG_SECRET_SIZE])
{
    const struct pt_registry_entry *e = find_blocks(r, id);
    if (!e) return -PT_ENOENT;
    memcpy(secret_out, e->secret, PT_REG_SECRET_SIZE);
    return 0;
}

void pt_registry_wipe_ports(struct pt_registry *r)
{
    size_t i;
    for (i = 0; i < r->count; i++) {
        struct pt_registry_entry *e = &r->entries[i];
        e->replica.addr[0] = 0;
        e->blocks.addr[0] = 0;
        e->replica.leader = 0;
        e->last_seen_ms = 0;
    }
    r->needs_save = r->structural = 1;
}

/* Per entry: kind, shard, replica, leader, id, addr, domain, capacity, used, blocks, secret. */
static size_t entry_size_max(void)
{
    return 4 + 8 + 2 + PT_REG_ADDR_MAX + 2 + PT_REG_DOMAIN_MAX + 24 + PT_REG_SECRET_SIZE;
}

int pt_registry_encode(const struct pt_registry *r, uint8_t **out, size_t *len)
{
    size_t cap = 12 + r->count * entry_size_max() + 4, i;
    struct pt_cursor c;
    uint8_t *buf = malloc(cap);
    if (!buf) return -PT_ENOMEM;
    pt_cursor_init(&c, buf, cap);
    pt_enc_u32(&c, PT_REGISTRY_STATE_MAGIC);
    pt_enc_u32(&c, PT_REGISTRY_STATE_VERSION);
    pt_enc_u32(&c, (uint32_t)r->count);
    for (i = 0; i < r->count; i++) {
        const struct pt_registry_entry *e = &r->entries[i];
        int blocks = e->kind == PT_REG_KIND_BLOCKS;
        pt_enc_u8(&c, e->kind);
        pt_enc_u8(&c, e->replica.shard);
        pt_enc_u8(&c, e->replica.replica);
        pt_enc_u8(&c, e->replica.leader);
        pt_enc_u64(&c, e->blocks.id);
        pt_enc_str(&c, blocks ? e->blocks.addr : e->replica.addr);
        pt_enc_str(&c, e->blocks.failure_domain);
        pt_enc_u64(&c, e->blocks.capacity);
        pt_enc_u64(&c, e->blocks.used);
        pt_enc_u64(&c, e->blocks.blocks);
        pt_enc_bytes(&c, e->secret, PT_REG_SECRET_SIZE);
    }
    pt_enc_u32(&c, petrel_crc32c(0, buf, c.pos));
    if (!pt_cursor_ok(&c)) {
        free(buf);
        return -PT_ERANGE;
    }
    *out = buf;
    *len = c.pos;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Whether a sorted key list repeats a key. */
static int has_duplicate(uint64_t *keys, size_t n)
{
    size_t i;
    qsort(keys, n, sizeof(*keys), cmp_u64);
    for (i = 1; i < n; i++)
        if (keys[i] == keys[i - 1]) return 1;
    return 0;
}

/*
 * A loaded state must keep the invariants the heartbeats keep (registry.h): one entry per
 * (shard, replica), per CDC replica (shard 0) and per block service id (non-zero, with a
 * failure domain), at most one leader per group. A CRC-valid file that breaks them was not
 * written by us: -PT_ECORRUPT. Sorting keeps this O(n log n) for 65536 entries.
 */
static int state_consistent(const struct pt_registry *r)
{
    uint64_t *ids = malloc((r->count ? r->count : 1) * sizeof(*ids));
    uint64_t *replicas = malloc((r->count ? r->count : 1) * sizeof(*replicas));
    uint64_t *leaders = malloc((r->count ? r->count : 1) * sizeof(*leaders));
    size_t i, nids = 0, nreplicas = 0, nleaders = 0;
    int err = 0;
    if (!ids || !replicas || !leaders) err = -PT_ENOMEM;
    for (i = 0; !err && i < r->count; i++) {
        const struct pt_registry_entry *e = &r->entries[i];
        if (e->kind == PT_REG_KIND_BLOCKS) {
            if (e->blocks.id == 0 || e->blocks.failure_domain[0] == 0) err = -PT_ECORRUPT;
            ids[nids++] = e->blocks.id;
            continue;
        }
        if (e->kind == PT_REG_KIND_CDC && e->replica.shard != 0) err = -PT_ECORRUPT;
        replicas[nreplicas++] =
            ((uint64_t)e->kind << 16) | ((uint64_t)e->replica.shard << 8) | e->replica.replica;
        if (e->replica.leader) leaders[nleaders++] = ((uint64_t)e->kind << 8) | e->replica.shard;
    }
    if (!err && (has_duplicate(ids, nids) || has_duplicate(replicas, nreplicas) ||
                 has_duplicate(leaders, nleaders)))
        err = -PT_ECORRUPT;
    free(ids);
    free(replicas);
    free(leaders);
    return err;
}

int pt_registry_decode(struct pt_registry *r, const uint8_t *buf, size_t len, uint64_t now_ms)
{
    int err;
    struct pt_registry fresh;
    struct pt_cursor c;
    uint32_t n, i;
    if (len < 16 || pt_get_le32(buf + len - 4) != petrel_crc32c(0, buf, len - 4))
        return -PT_ECORRUPT;
    pt_cursor_init(&c, (void *)buf, len - 4);
    if (pt_dec_u32(&c) != PT_REGISTRY_STATE_MAGIC) return -PT_ECORRUPT;
    if (pt_dec_u32(&c) != PT_REGISTRY_STATE_VERSION) return -PT_EVERSION;
    n = pt_dec_u32(&c);
    if (n > PT_REGISTRY_MAX_ENTRIES) return -PT_ECORRUPT;
    pt_registry_init(&fresh, r->stale_after_ms);
    for (i = 0; i < n && pt_cursor_ok(&c); i++) {
        struct pt_registry_entry e;
        char addr[PT_REG_ADDR_MAX];
        memset(&e, 0, sizeof(e));
        e.kind = pt_dec_u8(&c);
        e.replica.shard = pt_dec_u8(&c);
        e.replica.replica = pt_dec_u8(&c);
        e.replica.leader = pt_dec_u8(&c);
        e.blocks.id = pt_dec_u64(&c);
        pt_dec_str(&c, addr, sizeof(addr));
        pt_dec_str(&c, e.blocks.failure_domain, sizeof(e.blocks.failure_domain));
        e.blocks.capacity = pt_dec_u64(&c);
        e.blocks.used = pt_dec_u64(&c);
        e.blocks.blocks = pt_dec_u64(&c);
        pt_dec_bytes(&c, e.secret, PT_REG_SECRET_SIZE);
        if (e.kind < PT_REG_KIND_SHARD || e.kind > PT_REG_KIND_BLOCKS || e.replica.leader > 1 ||
            e.replica.replica >= PT_REG_MAX_REPLICAS)
            c.failed = 1;
        if (e.kind == PT_REG_KIND_BLOCKS)
            memcpy(e.blocks.addr, addr, sizeof(addr));
        else
            memcpy(e.replica.addr, addr, sizeof(addr));
        e.last_seen_ms = now_ms;
        if (pt_cursor_ok(&c)) {
            struct pt_registry_entry *slot = entry_add(&fresh, e.kind);
            if (!slot) {
                pt_registry_free(&fresh);
                return -PT_ENOMEM;
            }
            *slot = e;
        }
    }
    if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) {
        pt_registry_free(&fresh);
        return -PT_ECORRUPT;
    }
    err = state_consistent(&fresh);
    if (err) {
        pt_registry_free(&fresh);
        return err;
    }
    pt_registry_free(r);
    *r = fresh;
    return 0;
}

int pt_registry_save(struct pt_registry *r, const char *dir)
{
    uint8_t *buf;
    size_t len;
    int err = pt_registry_encode(r, &buf, &len);
    if (err) return err;
    err = pt_durable_write_file(dir, PT_REGISTRY_STATE_FILE, buf, len);
    free(buf);
    if (!err) r->needs_save = r->structural = 0;
    return err;
}

int pt_registry_load(struct pt_registry *r, const char *dir, uint64_t now_ms)
{
    char path[4096];
    uint8_t *buf;
    size_t len;
    int err;
    snprintf(path, sizeof(path), "%s/%s", dir, PT_REGISTRY_STATE_FILE);
    err = pt_read_file(path, 64u << 20, &buf, &len);
    if (err == -PT_ENOENT) return 0;
    if (err) return err;
    err = pt_registry_decode(r, buf, len, now_ms);
    free(buf);
    return err;
}
