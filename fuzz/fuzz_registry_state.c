/*
 * Fuzz target: the registry state-file loader (pt_registry_decode in
 * src/cluster/registry/registry_state.c). Input byte 0 holds options (bit 0: recompute the
 * file's CRC trailer so the fuzzer gets past it), the rest is the file. The loader must:
 * leave the registry exactly as it was when it refuses a file; accept only files that keep
 * the registry's invariants (one entry per shard replica, CDC replica and block service id,
 * at most one leader per group, valid kinds, replicas, flags, ids); and accept only what it
 * reads exactly (re-encoding a loaded state gives the file back). A loaded state is then
 * listed and wiped as the server would.
 */
#include <string.h>

#include "cluster/registry/registry.h"
#include "fuzz.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

/* A key per entry: kind, shard and replica for replicas, the id for block services. */
static uint64_t state_key(const struct pt_registry_entry *e)
{
    if (e->kind == PT_REG_KIND_BLOCKS) return e->blocks.id;
    return ((uint64_t)e->kind << 60) | ((uint64_t)e->replica.shard << 8) | e->replica.replica;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void state_check_invariants(const struct pt_registry *r)
{
    uint64_t *keys = malloc((r->count ? r->count : 1) * sizeof(*keys));
    uint64_t *leaders = malloc((r->count ? r->count : 1) * sizeof(*leaders));
    size_t i, nleaders = 0, nkeys = 0;
    FUZZ_CHECK(keys && leaders);
    FUZZ_CHECK(r->count <= PT_REGISTRY_MAX_ENTRIES);
    for (i = 0; i < r->count; i++) {
        const struct pt_registry_entry *e = &r->entries[i];
        FUZZ_CHECK(e->kind >= PT_REG_KIND_SHARD && e->kind <= PT_REG_KIND_BLOCKS);
        FUZZ_CHECK(e->replica.replica < PT_REG_MAX_REPLICAS && e->replica.leader <= 1);
        if (e->kind == PT_REG_KIND_CDC) FUZZ_CHECK(e->replica.shard == 0);
        if (e->kind == PT_REG_KIND_BLOCKS) {
            FUZZ_CHECK(e->blocks.id != 0 && e->blocks.failure_domain[0] != 0);
        } else {
            keys[nkeys++] = state_key(e);
            if (e->replica.leader)
                leaders[nleaders++] = ((uint64_t)e->kind << 8) | e->replica.shard;
        }
    }
    /* Block service ids share the key space with nothing else: check them on their own. */
    qsort(keys, nkeys, sizeof(*keys), cmp_u64);
    for (i = 1; i < nkeys; i++)
        FUZZ_CHECK(keys[i] != keys[i - 1]);
    qsort(leaders, nleaders, sizeof(*leaders), cmp_u64);
    for (i = 1; i < nleaders; i++)
        FUZZ_CHECK(leaders[i] != leaders[i - 1]);
    nkeys = 0;
    for (i = 0; i < r->count; i++)
        if (r->entries[i].kind == PT_REG_KIND_BLOCKS) keys[nkeys++] = r->entries[i].blocks.id;
    qsort(keys, nkeys, sizeof(*keys), cmp_u64);
    for (i = 1; i < nkeys; i++)
        FUZZ_CHECK(keys[i] != keys[i - 1]);
    free(keys);
    free(leaders);
}

/* A registry with one known entry, to see that a refused file changes nothing. */
static void state_prefill(struct pt_registry *r)
{
    struct pt_reg_replica hb;
    memset(&hb, 0, sizeof(hb));
    hb.shard = 7;
    hb.replica = 2;
    hb.leader = 1;
    strcpy(hb.addr, "127.0.0.1:9000");
    FUZZ_CHECK(pt_registry_shard_heartbeat(r, &hb, 5) == 0);
}

static void state_use(struct pt_registry *r)
{
    size_t n = pt_registry_list_shards(r, PT_REG_ALL_SHARDS, 2000, NULL, 0), m;
    struct pt_reg_replica *v = calloc(n + 1, sizeof(*v));
    struct pt_reg_blocks *b;
    FUZZ_CHECK(v != NULL);
    FUZZ_CHECK(pt_registry_list_shards(r, PT_REG_ALL_SHARDS, 2000, v, n) == n);
    FUZZ_CHECK(pt_registry_list_cdc(r, 2000, v, n) <= r->count);
    free(v);
    m = pt_registry_list_blocks(r, 2000, NULL, 0);
    b = calloc(m + 1, sizeof(*b));
    FUZZ_CHECK(b != NULL);
    FUZZ_CHECK(pt_registry_list_blocks(r, 2000, b, m) == m);
    free(b);
    pt_registry_wipe_ports(r);
    state_check_invariants(r);
}

int pt_fuzz_registry_state(const uint8_t *data, size_t size)
{
    struct pt_registry r;
    uint8_t *file, *again;
    size_t len, again_len;
    int err;
    if (size < 1) return 0;
    len = size - 1;
    file = malloc(len ? len : 1);
    FUZZ_CHECK(file != NULL);
    if (len) memcpy(file, data + 1, len);
    if ((data[0] & 1) && len >= 4) pt_put_le32(file + len - 4, petrel_crc32c(0, file, len - 4));

    pt_registry_init(&r, 1000);
    state_prefill(&r);
    err = pt_registry_decode(&r, file, len, 1000);
    if (err) {
        FUZZ_CHECK(err == -PT_ECORRUPT || err == -PT_EVERSION || err == -PT_ENOMEM);
        FUZZ_CHECK(r.count == 1 && r.entries[0].replica.shard == 7 &&
                   strcmp(r.entries[0].replica.addr, "127.0.0.1:9000") == 0);
        pt_registry_free(&r);
        free(file);
        return 0;
    }
    state_check_invariants(&r);
    FUZZ_CHECK(pt_registry_encode(&r, &again, &again_len) == 0);
    FUZZ_CHECK(again_len == len && memcmp(again, file, len) == 0);
    free(again);
    state_use(&r);
    pt_registry_free(&r);
    free(file);
    return 0;
}

PT_FUZZ_TARGET(pt_fuzz_registry_state)
