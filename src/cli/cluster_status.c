/*
 * petrel cluster status petrel://HOST:PORT: what the registry knows — every shard replica and
 * CDC replica with its address, leadership and heartbeat age, and every block service with
 * its failure domain, capacity and use; what each shard's leader knows of repair
 * (REPAIR_STATUS: spans below policy, the repair queue, services declared failed or
 * draining); then per failure domain its capacity, use, the scrubbers' progress (blocks
 * checked, rotten, the oldest last full pass), its blocks in the repair queue and the spans
 * below policy for a block there. Reads only; a silent service shows as stale, a shard that
 * does not answer as such (the rest is still shown).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "cluster/client/registry_client.h"
#include "cluster/client/router.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/codec.h"
#include "petrel/common.h"

static void print_replicas(const char *what, const struct pt_reg_replica *r, size_t n, int shards)
{
    size_t i;
    for (i = 0; i < n; i++) {
        char name[32];
        if (shards)
            snprintf(name, sizeof(name), "shard %u/%u", r[i].shard, r[i].replica);
        else
            snprintf(name, sizeof(name), "cdc %u", r[i].replica);
        printf("  %-14s %-22s %-8s %s, last heard %llu ms ago\n", name,
               r[i].addr[0] ? r[i].addr : "(no address)", r[i].leader ? "leader" : "follower",
               r[i].stale ? "STALE" : "alive", (unsigned long long)r[i].age_ms);
    }
    if (n == 0) printf("  (no %s registered)\n", what);
}

/* Age of a wall-clock time in words ("never" for 0). */
static const char *scrub_age(uint64_t last_ms, char *buf, size_t cap)
{
    struct timespec ts;
    uint64_t now;
    if (!last_ms) return "never";
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    snprintf(buf, cap, "%llus ago",
             (unsigned long long)(now > last_ms ? (now - last_ms) / 1000 : 0));
    return buf;
}

/* What the shards' leaders say of one block service (REPAIR_STATUS), summed over shards. */
struct svc_repair {
    uint64_t id, blocks, queued, below;
    uint8_t flags; /* 1 draining, 2 declared failed */
};

struct repair_view {
    struct svc_repair *svc;
    size_t n, cap;
    uint64_t below, queued; /* spans below policy and queue entries, all shards */
};

static struct svc_repair *repair_find(const struct repair_view *rv, uint64_t id)
{
    size_t i;
    for (i = 0; i < rv->n; i++)
        if (rv->svc[i].id == id) return &rv->svc[i];
    return NULL;
}

/* Ask every shard's leader for REPAIR_STATUS, print one line per shard, gather per service. */
static void repair_gather(const char *registry, const struct pt_reg_replica *shards, size_t ns,
                          struct repair_view *rv)
{
    struct pt_router r;
    size_t i, j;
    pt_router_init(&r, registry, 3000, 2000, 1);
    printf("repair:\n");
    for (i = 0; i < ns; i++) {
        struct pt_shard_req q;
        struct pt_reply rep;
        struct pt_cursor c;
        uint64_t spans, below, queued, repaired, failed;
        unsigned k, cnt;
        int rc;
        for (j = 0; j < i && shards[j].shard != shards[i].shard; j++)
            ;
        if (j < i) continue; /* one question per shard */
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_REPAIR_STATUS;
        rc = pt_router_shard(&r, shards[i].shard, &q, &rep, NULL);
        if (rc) {
            printf("  shard %-4u no answer: %s\n", shards[i].shard, cli_strerror(rc));
            pt_reply_free(&rep);
            continue;
        }
        pt_cursor_init(&c, rep.body, rep.body_len);
        spans = pt_dec_u64(&c);
        below = pt_dec_u64(&c);
        queued = pt_dec_u64(&c);
        repaired = pt_dec_u64(&c);
        failed = pt_dec_u64(&c);
        cnt = pt_dec_u16(&c);
        for (k = 0; k < cnt && pt_cursor_ok(&c); k++) {
            struct svc_repair x, *have;
            x.id = pt_dec_u64(&c);
            x.flags = pt_dec_u8(&c);
            x.blocks = pt_dec_u64(&c);
            x.queued = pt_dec_u64(&c);
            x.below = pt_dec_u64(&c);
            if (!pt_cursor_ok(&c)) break;
            if ((have = repair_find(rv, x.id)) != NULL) {
                have->flags |= x.flags;
                have->blocks += x.blocks;
                have->queued += x.queued;
                have->below += x.below;
                continue;
            }
            if (rv->n == rv->cap) {
                size_t nc = rv->cap ? rv->cap * 2 : 16;
                struct svc_repair *nv = realloc(rv->svc, nc * sizeof(*nv));
                if (!nv) break;
                rv->svc = nv;
                rv->cap = nc;
            }
            rv->svc[rv->n++] = x;
        }
        pt_reply_free(&rep);
        if (!pt_cursor_ok(&c)) {
            printf("  shard %-4u a malformed repair status\n", shards[i].shard);
            continue;
        }
        rv->below += below;
        rv->queued += queued;
        printf("  shard %-4u %llu span%s, %llu below policy, %llu queued for repair, %llu "
               "repaired and %llu failed repairs by this leader\n",
               shards[i].shard, (unsigned long long)spans, spans == 1 ? "" : "s",
               (unsigned long long)below, (unsigned long long)queued,
               (unsigned long long)repaired, (unsigned long long)failed);
    }
}

/* Per failure domain: capacity, use, the scrubbers' progress, the repair queue and the spans
 * below policy for a block there (a domain is gathered at its first service; a deployment has
 * few domains). */
static void print_domains(const struct pt_reg_blocks *v, size_t n, const struct repair_view *rv)
{
    size_t i, j;
    if (!n) return;
    printf("failure domains:\n");
    for (i = 0; i < n; i++) {
        uint64_t cap = 0, used = 0, checked = 0, rotten = 0, oldest = UINT64_MAX;
        uint64_t queued = 0, below = 0;
        unsigned services = 0, stale = 0, failed = 0;
        char a[32], b[32], age[32];
        for (j = 0; j < i && strcmp(v[j].failure_domain, v[i].failure_domain) != 0; j++)
            ;
        if (j < i) continue; /* shown with its first service */
        for (j = i; j < n; j++) {
            if (strcmp(v[j].failure_domain, v[i].failure_domain) != 0) continue;
            services++;
            stale += v[j].stale;
            cap += v[j].capacity;
            used += v[j].used;
            checked += v[j].scrub_checked;
            rotten += v[j].scrub_rotten;
            if (v[j].scrub_last_pass_ms < oldest) oldest = v[j].scrub_last_pass_ms;
            {
                const struct svc_repair *x = repair_find(rv, v[j].id);
                if (x) {
                    queued += x->queued;
                    below += x->below;
                    failed += (x->flags & 2) != 0;
                }
            }
        }
        printf("  domain %-10s %u service%s%s%s, %s used of %s, scrub: %llu blocks checked, "
               "%llu rotten, oldest last pass %s; repair: %llu queued, %llu span%s below "
               "policy\n",
               v[i].failure_domain, services, services == 1 ? "" : "s",
               stale ? " (some STALE)" : "", failed ? " (some FAILED)" : "",
               cli_human_size(used, a, sizeof(a)), cli_human_size(cap, b, sizeof(b)),
               (unsigned long long)checked, (unsigned long long)rotten,
               scrub_age(oldest, age, sizeof(age)), (unsigned long long)queued,
               (unsigned long long)below, below == 1 ? "" : "s");
    }
}

static int blocks_has(const struct pt_reg_blocks *v, size_t n, uint64_t id)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (v[i].id == id) return 1;
    return 0;
}

/* A registry group: each member, whether it leads, and how stale its view is. */
static void print_registry_group(const char *location)
{
    char addrs[PT_REG_MAX_REPLICAS][PT_REG_ADDR_MAX];
    struct pt_call_opts one = {1000, 1, 0};
    int n = pt_reg_location_split(location, addrs, PT_REG_MAX_REPLICAS), i;
    for (i = 0; i < n; i++) {
        struct pt_reg_info info;
        if (pt_reg_info(addrs[i], &info, &one) != 0) {
            printf("  registry %d %-22s unreachable\n", i, addrs[i]);
            continue;
        }
        if (info.serving)
            printf("  registry %d %-22s leader   term %llu, commit %llu\n", i, addrs[i],
                   (unsigned long long)info.term, (unsigned long long)info.commit);
        else if (info.staleness_ms == UINT64_MAX)
            printf("  registry %d %-22s follower term %llu, nothing applied yet\n", i, addrs[i],
                   (unsigned long long)info.term);
        else
            printf("  registry %d %-22s follower term %llu, applied %llu ms ago\n", i, addrs[i],
                   (unsigned long long)info.term, (unsigned long long)info.staleness_ms);
    }
}

int cluster_status(int argc, char **argv)
{
    struct petrel_vfs_location loc;
    struct pt_reg_replica *shards = NULL, *cdc = NULL;
    struct pt_reg_blocks *blocks = NULL;
    struct repair_view rv = {NULL, 0, 0, 0, 0};
    size_t nshards = 0, ncdc = 0, nblocks = 0, i;
    struct pt_call_opts opts = {2000, 3000, 0};
    char addr[PT_REG_LOCATION_MAX], a[32], b[32];
    uint64_t cap = 0, used = 0;
    int n, rc, leaders = 0, stale = 0;
    const struct cli_option options[] = {{0, NULL, CLI_FLAG, NULL, NULL, NULL}};
    const struct cli_spec spec = {
        "cluster status",
        "petrel://HOST:PORT",
        "Show the services a cluster's registry knows: shard and CDC replicas (address,\n"
        "leader, heartbeat age) and block services (failure domain, capacity, use); what\n"
        "each shard knows of repair (spans below policy, repair queue); per failure domain\n"
        "capacity, use, scrub progress, repair queue and spans below policy.",
        options,
        1,
        1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    rc = petrel_vfs_location_parse(argv[1], &loc);
    if (rc < 0 && strncmp(argv[1], "petrel://", 9) == 0)
        return cli_location_error("cluster status", argv[1], rc);
    if (rc < 0 || loc.kind != PETREL_VFS_CLUSTER)
        return cli_error("cluster status", "'%s' is not a cluster address (petrel://HOST:PORT)",
                         argv[1]);
    if (cli_client_auth("cluster status", loc.host, loc.port)) return 1;
    rc = petrel_vfs_cluster_address(loc.host, loc.port, addr, sizeof(addr));
    if (rc < 0) return cli_cluster_error("cluster status", loc.host, loc.port, rc);
    {
        /* the first question once, within 3 s: an unreachable registry is an error at once */
        struct pt_call_opts once = {3000, 1, 0};
        rc = pt_reg_list_shards(addr, PT_REG_ALL_SHARDS, &shards, &nshards, &once);
        if (rc < 0) return cli_cluster_error("cluster status", loc.host, loc.port, rc);
    }
    if (rc == 0) rc = pt_reg_list_cdc(addr, &cdc, &ncdc, &opts);
    if (rc == 0) rc = pt_reg_list_blocks(addr, &blocks, &nblocks, &opts);
    if (rc < 0) {
        free(shards);
        free(cdc);
        return cli_error("cluster status", "cannot reach the registry at %s: %s", addr,
                         cli_strerror(rc));
    }
    for (i = 0; i < nshards; i++)
        leaders += shards[i].leader && !shards[i].stale;
    for (i = 0; i < nshards; i++)
        stale += shards[i].stale;
    printf("registry %s\n", addr);
    if (strchr(addr, ',')) print_registry_group(addr);
    printf("shards: %zu replica%s, %d leader%s, %d stale\n", nshards, nshards == 1 ? "" : "s",
           leaders, leaders == 1 ? "" : "s", stale);
    print_replicas("shard replicas", shards, nshards, 1);
    printf("cdc: %zu replica%s\n", ncdc, ncdc == 1 ? "" : "s");
    print_replicas("CDC replicas", cdc, ncdc, 0);
    repair_gather(addr, shards, nshards, &rv);
    printf("block services: %zu\n", nblocks);
    for (i = 0; i < nblocks; i++) {
        const struct svc_repair *x = repair_find(&rv, blocks[i].id);
        cap += blocks[i].capacity;
        used += blocks[i].used;
        printf("  blocks %016llx %-22s domain %-10s %s used of %s, %llu blocks, %s%s%s\n",
               (unsigned long long)blocks[i].id,
               blocks[i].addr[0] ? blocks[i].addr : "(no address)", blocks[i].failure_domain,
               cli_human_size(blocks[i].used, a, sizeof(a)),
               cli_human_size(blocks[i].capacity, b, sizeof(b)),
               (unsigned long long)blocks[i].blocks, blocks[i].stale ? "STALE" : "alive",
               x && (x->flags & 2) ? ", FAILED (declared)" : "",
               x && (x->flags & 1) ? ", DRAINING" : "");
    }
    if (nblocks == 0) printf("  (no block services registered)\n");
    for (i = 0; i < rv.n; i++)
        if (rv.svc[i].below && !blocks_has(blocks, nblocks, rv.svc[i].id))
            printf("  unregistered block service %016llx: %llu span%s below policy\n",
                   (unsigned long long)rv.svc[i].id, (unsigned long long)rv.svc[i].below,
                   rv.svc[i].below == 1 ? "" : "s");
    print_domains(blocks, nblocks, &rv);
    printf("capacity: %s used of %s\n", cli_human_size(used, a, sizeof(a)),
           cli_human_size(cap, b, sizeof(b)));
    free(shards);
    free(cdc);
    free(blocks);
    free(rv.svc);
    return 0;
}
