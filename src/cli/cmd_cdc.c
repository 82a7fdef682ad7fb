/*
 * petrel cdc --registry ADDR --replica R --dir D [--replicas K] [--shards N] [--host H]: run one
 * replica of the cross-directory coordinator until SIGINT/SIGTERM. Option parsing only; the
 * server is src/cluster/cdc/cdc_server.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "cluster/cdc/cdc_server.h"
#include "petrel/common.h"

int cmd_cdc(int argc, char **argv)
{
    const char *read_only_secret = NULL;
    const char *replica = NULL, *replicas = NULL, *shards = NULL, *election = NULL,
               *heartbeat = NULL;
    int verbose = 0, n;
    struct pt_cdc_config cfg;
    char err[512] = "";
    int rc;
    memset(&cfg, 0, sizeof(cfg));
    cfg.replicas = 3;
    cfg.shards = 1;
    cfg.host = "127.0.0.1";
    {
        const struct cli_option options[] = {
            {0, "registry", CLI_STRING, &cfg.registry, "ADDR", "the registry's address"},
            {0, "replica", CLI_STRING, &replica, "R", "this replica's number (0..K-1)"},
            {0, "replicas", CLI_STRING, &replicas, "K",
             "replicas in the group: 1, 3 or 5 (default 3)"},
            {0, "shards", CLI_STRING, &shards, "N", "shards of the deployment (default 1)"},
            {0, "dir", CLI_STRING, &cfg.dir, "D", "state directory (Raft log under D/raft)"},
            {0, "host", CLI_STRING, &cfg.host, "H", "address to serve on (default 127.0.0.1)"},
            {0, "election-timeout-ms", CLI_STRING, &election, "MS",
             "Raft election timeout (default 250; randomized up to twice that)"},
            {0, "heartbeat-ms", CLI_STRING, &heartbeat, "MS",
             "Raft heartbeat interval, below the election timeout (default 50)"},
            {0, "unsafe-no-fsync-check", CLI_FLAG, &cfg.raft.unsafe_no_fsync_check, NULL,
             "start even on a filesystem known not to honour fsync (FUSE)"},
            {0, "http", CLI_STRING, &cfg.http, "HOST:PORT",
             "serve /metrics over HTTP here (port 0: the OS chooses; unauthenticated: a trusted "
             "address only)"},
            {0, "verbose", CLI_FLAG, &verbose, NULL, "log debug messages"},
            {0, "read-only-secret", CLI_STRING, &read_only_secret, "FILE",
             "a second secret whose holders may read and list only (needs --secret)"},
            {0, NULL, CLI_FLAG, NULL, NULL, NULL},
        };
        const struct cli_spec spec = {
            "cdc",
            "--registry ADDR --replica R --dir D [--replicas K] [--shards N] [--host H]\n"
            "                    [--election-timeout-ms MS] [--heartbeat-ms MS]\n"
            "                    [--unsafe-no-fsync-check] [--http HOST:PORT] [--verbose]",
            "Run replica R (0..K-1) of the cross-directory coordinator (mkdir, rmdir and\n"
            "renames across directories as transactions over the N shards), a Raft group\n"
            "of K = 1, 3 or 5 replicas whose log is kept under D/raft.",
            options,
            0,
            -1};
        CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    }
    if (n > 0) return cli_error("cdc", "unexpected argument '%s'", argv[1]);
    if (replica && cli_parse_uint(replica, 4, &cfg.replica))
        return cli_error("cdc", "bad --replica '%s' (0..4)", replica);
    if (replicas && cli_parse_uint(replicas, 5, &cfg.replicas))
        return cli_error("cdc", "bad --replicas '%s' (1, 3 or 5)", replicas);
    if (shards && (cli_parse_uint(shards, 256, &cfg.shards) || cfg.shards == 0))
        return cli_error("cdc", "bad --shards '%s' (1..256)", shards);
    if (election && (cli_parse_uint(election, 600000, &cfg.raft.election_timeout_ms) ||
                     cfg.raft.election_timeout_ms < 10))
        return cli_error("cdc", "bad --election-timeout-ms '%s' (10..600000)", election);
    if (heartbeat &&
        (cli_parse_uint(heartbeat, 600000, &cfg.raft.heartbeat_ms) || cfg.raft.heartbeat_ms == 0))
        return cli_error("cdc", "bad --heartbeat-ms '%s' (1..600000)", heartbeat);
    if (verbose) petrel_log_set(petrel_log_stderr, NULL, PT_LOG_DEBUG);
    if (!cfg.registry || !cfg.dir || !replica)
        return cli_error("cdc", "--registry, --replica and --dir are required");
    if (cli_server_auth("cdc", read_only_secret)) return 1;
    /* A peer that dies mid-write must cost an error code, not the process. */
    signal(SIGPIPE, SIG_IGN);
    if (!getenv("PETREL_QUIET")) petrel_log_set(petrel_log_stderr, NULL, PT_LOG_WARN);
    rc = pt_cdc_server_run(&cfg, err, sizeof(err));
    if (rc) return cli_error("cdc", "%s", err[0] ? err : petrel_strerror(rc));
    return 0;
}
