/*
 * petrel cluster status petrel://HOST:PORT: what the registry knows — every shard replica and
 * CDC replica with its address, leadership and heartbeat age, and every block service with
 * its failure domain, capacity and use; then per failure domain its capacity, use and the
 * scrubbers' progress (blocks checked, rotten, the oldest last full pass). Reads only; a
 * silent service shows as stale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "cluster/client/registry_client.h"
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

/* Per failure domain: capacity, use, and the scrubbers' progress (a domain is gathered at its
 * first service; a deployment has few domains). */
static void print_domains(const struct pt_reg_blocks *v, size_t n)
{
    size_t i, j;
    if (!n) return;
    printf("failure domains:\n");
    for (i = 0; i < n; i++) {
        uint64_t cap = 0, used = 0, checked = 0, rotten = 0, oldest = UINT64_MAX;
        unsigned services = 0, stale = 0;
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
        }
        printf("  domain %-10s %u service%s%s, %s used of %s, scrub: %llu blocks checked, "
               "%llu rotten, oldest last pass %s\n",
               v[i].failure_domain, services, services == 1 ? "" : "s",
               stale ? " (some STALE)" : "", cli_human_size(used, a, sizeof(a)),
               cli_human_size(cap, b, sizeof(b)), (unsigned long long)checked,
               (unsigned long long)rotten, scrub_age(oldest, age, sizeof(age)));
    }
}

int cluster_status(int argc, char **argv)
{
    struct petrel_vfs_location loc;
    struct pt_reg_replica *shards = NULL, *cdc = NULL;
    struct pt_reg_blocks *blocks = NULL;
    size_t nshards = 0, ncdc = 0, nblocks = 0, i;
    struct pt_call_opts opts = {2000, 3000, 0};
    char addr[PETREL_VFS_HOST_MAX + 8], a[32], b[32];
    uint64_t cap = 0, used = 0;
    int n, rc, leaders = 0, stale = 0;
    const struct cli_option options[] = {{0, NULL, CLI_FLAG, NULL, NULL, NULL}};
    const struct cli_spec spec = {
        "cluster status",
        "petrel://HOST:PORT",
        "Show the services a cluster's registry knows: shard and CDC replicas (address,\n"
        "leader, heartbeat age) and block services (failure domain, capacity, use).",
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
    printf("shards: %zu replica%s, %d leader%s, %d stale\n", nshards, nshards == 1 ? "" : "s",
           leaders, leaders == 1 ? "" : "s", stale);
    print_replicas("shard replicas", shards, nshards, 1);
    printf("cdc: %zu replica%s\n", ncdc, ncdc == 1 ? "" : "s");
    print_replicas("CDC replicas", cdc, ncdc, 0);
    printf("block services: %zu\n", nblocks);
    for (i = 0; i < nblocks; i++) {
        cap += blocks[i].capacity;
        used += blocks[i].used;
        printf("  blocks %-6llu %-22s domain %-10s %s used of %s, %llu blocks, %s\n",
               (unsigned long long)blocks[i].id,
               blocks[i].addr[0] ? blocks[i].addr : "(no address)", blocks[i].failure_domain,
               cli_human_size(blocks[i].used, a, sizeof(a)),
               cli_human_size(blocks[i].capacity, b, sizeof(b)),
               (unsigned long long)blocks[i].blocks, blocks[i].stale ? "STALE" : "alive");
    }
    if (nblocks == 0) printf("  (no block services registered)\n");
    print_domains(blocks, nblocks);
    printf("capacity: %s used of %s\n", cli_human_size(used, a, sizeof(a)),
           cli_human_size(cap, b, sizeof(b)));
    free(shards);
    free(cdc);
    free(blocks);
    return 0;
}
