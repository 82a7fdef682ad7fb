/*
 * The operator's marks on a block service, set on every shard:
 * petrel blocks drain ID --registry HOST:PORT [--stop] [--wait]: mark block service ID
 * (hex, as `petrel cluster status` and the service's "listening on" line print it) as draining
 * (DRAIN_SERVICE), then print how many blocks the shards still place on it (DRAIN_STATUS);
 * --wait repeats that every second until none remain. The shards' repair moves the blocks
 * (copying them from the service while it serves); the service may be removed once it holds
 * nothing. --stop clears the mark.
 * petrel blocks fail ID --registry HOST:PORT [--stop] [--wait]: the same with FAIL_SERVICE:
 * the service is declared failed (dead disk, lost machine), so repair rebuilds its blocks from
 * the spans' other blocks at once, never reading it, and nothing new goes there.
 * Reads and writes only through the shards.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "cluster/client/registry_client.h"
#include "cluster/client/router.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/codec.h"
#include "petrel/common.h"

#define DRAIN_WAIT_POLL_US 1000000

/* The shard numbers the registry lists (each once): count or -PT_E*. */
static int drain_shards(const char *registry, unsigned *out, unsigned max)
{
    struct pt_call_opts opts = {3000, 1, 0};
    struct pt_reg_replica *v;
    size_t n, i;
    unsigned k = 0, j;
    int rc = pt_reg_list_shards(registry, PT_REG_ALL_SHARDS, &v, &n, &opts);
    if (rc) return rc;
    for (i = 0; i < n; i++) {
        for (j = 0; j < k && out[j] != v[i].shard; j++)
            ;
        if (j == k && k < max) out[k++] = v[i].shard;
    }
    free(v);
    return (int)k;
}

/* One command: drain (fail 0) or fail (fail 1). */
static int blocks_mark(int argc, char **argv, int fail)
{
    const char *cmd = fail ? "blocks fail" : "blocks drain";
    const char *registry = NULL;
    int stop = 0, wait = 0, n, i, nshards;
    unsigned shards[PT_SHARD_MAX] = {0};
    struct pt_router r;
    uint64_t id;
    char *end;
    {
        const struct cli_option options[] = {
            {0, "registry", CLI_STRING, &registry, "HOST:PORT", "the registry of the cluster"},
            {0, "stop", CLI_FLAG, &stop, NULL,
             fail ? "take the declaration back" : "stop draining the service"},
            {0, "wait", CLI_FLAG, &wait, NULL, "wait until the service holds no block"},
            {0, NULL, CLI_FLAG, NULL, NULL, NULL},
        };
        const struct cli_spec drain_spec = {
            "blocks drain",
            "ID --registry HOST:PORT [--stop] [--wait]",
            "Move every block off block service ID (hex): the shards copy each block to a\n"
            "service in a failure domain its span does not use yet and swap it in. Prints the\n"
            "blocks left per shard; --wait until none are left.",
            options,
            1,
            1,
        };
        const struct cli_spec fail_spec = {
            "blocks fail",
            "ID --registry HOST:PORT [--stop] [--wait]",
            "Declare block service ID (hex) failed: the shards rebuild each of its blocks from\n"
            "the span's other blocks onto a service in a failure domain the span does not use,\n"
            "without reading the failed service, and place nothing new on it. Prints the\n"
            "blocks left on it; --wait until none are left.",
            options,
            1,
            1,
        };
        const struct cli_spec *spec = fail ? &fail_spec : &drain_spec;
        CLI_PARSE_OR_RETURN(spec, argc, argv, &n);
    }
    if (!registry) return cli_error(cmd, "--registry is required");
    id = strtoull(argv[1], &end, 16);
    if (!argv[1][0] || *end || id == 0)
        return cli_error(cmd, "bad block service id '%s' (hex, not 0)", argv[1]);
    {
        /* the cluster's key, as for any client: --secret, PETREL_SECRET or the key file
         * `cluster start` wrote for this registry address */
        char host[256];
        const char *colon = strrchr(registry, ':');
        unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
        if (!colon || colon == registry || (size_t)(colon - registry) >= sizeof(host) ||
            !colon[1] || *end || port == 0 || port > 65535)
            return cli_error(cmd, "bad registry address '%s' (HOST:PORT)", registry);
        memcpy(host, registry, (size_t)(colon - registry));
        host[colon - registry] = 0;
        if (cli_client_auth(cmd, host, (unsigned)port)) return 1;
    }
    nshards = drain_shards(registry, shards, PT_SHARD_MAX);
    if (nshards < 0)
        return cli_error(cmd, "cannot reach the registry at %s: %s", registry,
                         cli_strerror(nshards));
    if (nshards == 0) return cli_error(cmd, "the registry lists no shard");
    pt_router_init(&r, registry, 20000, 3000, id);
    for (i = 0; i < nshards; i++) {
        struct pt_shard_req q;
        struct pt_reply rep;
        int rc;
        memset(&q, 0, sizeof(q));
        q.op = fail ? PT_SHARD_FAIL_SERVICE : PT_SHARD_DRAIN_SERVICE;
        q.target = id;
        q.max = stop ? 0 : 1;
        rc = pt_router_shard(&r, shards[i], &q, &rep, NULL);
        pt_reply_free(&rep);
        if (rc) return cli_error(cmd, "shard %u: %s", shards[i], cli_strerror(rc));
    }
    for (;;) {
        uint64_t left = 0;
        for (i = 0; i < nshards; i++) {
            struct pt_shard_req q;
            struct pt_reply rep;
            struct pt_cursor c;
            uint64_t here;
            int rc;
            memset(&q, 0, sizeof(q));
            q.op = PT_SHARD_DRAIN_STATUS;
            q.target = id;
            rc = pt_router_shard(&r, shards[i], &q, &rep, NULL);
            if (rc) {
                pt_reply_free(&rep);
                return cli_error(cmd, "shard %u: %s", shards[i], cli_strerror(rc));
            }
            pt_cursor_init(&c, rep.body, rep.body_len);
            (void)pt_dec_u8(&c);
            here = pt_dec_u64(&c);
            pt_reply_free(&rep);
            if (!pt_cursor_ok(&c)) return cli_error(cmd, "shard %u: bad reply", shards[i]);
            left += here;
        }
        printf("block service %016" PRIx64 ": %s, %" PRIu64 " block%s left on %d shard%s\n", id,
               fail ? (stop ? "not failed" : "failed") : (stop ? "not draining" : "draining"), left, left == 1 ? "" : "s", nshards,
               nshards == 1 ? "" : "s");
        fflush(stdout);
        if (!wait || stop || left == 0) return 0;
        usleep(DRAIN_WAIT_POLL_US);
    }
}

int cmd_blocks_drain(int argc, char **argv)
{
    return blocks_mark(argc, argv, 0);
}

int cmd_blocks_fail(int argc, char **argv)
{
    return blocks_mark(argc, argv, 1);
}
