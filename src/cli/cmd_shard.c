/*
 * petrel shard --registry ADDR --shard N --replica R --dir D [--replicas K] [--host H]
 * [--snapshot-entries E] [--retention SECONDS] [--election-timeout-ms MS] [--heartbeat-ms MS]
 * [--repair-rate MB/s] [--repair-stale SECONDS] [--no-repair] [--placement-grace SECONDS]
 * [--compact-below KiB] [--compact-rate MB/s] [--unsafe-no-fsync-check]:
 * run one replica of a metadata shard until SIGINT/SIGTERM. Owns only option parsing; the
 * server is src/cluster/shard/shard_server.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "cluster/shard/shard_server.h"
#include "petrel/common.h"

int cmd_shard(int argc, char **argv)
{
    const char *read_only_secret = NULL;
    const char *shard = NULL, *replica = NULL, *replicas = NULL, *snap = NULL, *retention = NULL;
    const char *election = NULL, *heartbeat = NULL, *repair_rate = NULL, *repair_stale = NULL,
               *grace = NULL;
    const char *compact_below = NULL, *compact_rate = NULL;
    int verbose = 0, n;
    struct pt_shard_config cfg;
    char err[512] = "";
    int rc;
    memset(&cfg, 0, sizeof(cfg));
    cfg.replicas = 3;
    cfg.host = "127.0.0.1";
    {
        const struct cli_option options[] = {
            {0, "registry", CLI_STRING, &cfg.registry, "ADDR", "the registry's address"},
            {0, "shard", CLI_STRING, &shard, "N", "the shard's number (0..255)"},
            {0, "replica", CLI_STRING, &replica, "R", "this replica's number (0..K-1)"},
            {0, "replicas", CLI_STRING, &replicas, "K",
             "replicas in the group: 1, 3 or 5 (default 3)"},
            {0, "dir", CLI_STRING, &cfg.dir, "D", "state directory (Raft log under D/raft)"},
            {0, "host", CLI_STRING, &cfg.host, "H", "address to serve on (default 127.0.0.1)"},
            {0, "snapshot-entries", CLI_STRING, &snap, "E",
             "log entries between snapshots (default 4096)"},
            {0, "retention", CLI_STRING, &retention, "SECONDS",
             "how long deleted files are kept (default 86400)"},
            {0, "repair-rate", CLI_STRING, &repair_rate, "MB/s",
             "bytes per second the leader's repair reads and writes (default 32; 0: no limit)"},
            {0, "repair-stale", CLI_STRING, &repair_stale, "SECONDS",
             "rebuild every block of a block service stale this long (default 600; 0: never)"},
            {0, "placement-grace", CLI_STRING, &grace, "SECONDS",
             "after start-up, a span no set of services can hold is answered 'try again' this "
             "long (services may still be registering), then 'no space' (default 15)"},
            {0, "no-repair", CLI_FLAG, &cfg.no_repair, NULL,
             "rebuild and erase nothing (reports still queue): maintenance, degraded-read tests"},
            {0, "compact-below", CLI_STRING, &compact_below, "KiB",
             "the leader merges runs of spans smaller than this (default 64; 0: never)"},
            {0, "compact-rate", CLI_STRING, &compact_rate, "MB/s",
             "bytes per second compaction reads and writes (default 16; 0: no limit)"},
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
            "shard",
            "--registry ADDR --shard N --replica R --dir D [--replicas K] [--host H]\n"
            "                    [--snapshot-entries E] [--retention SECONDS]\n"
            "                    [--repair-rate MB/s] [--repair-stale SECONDS] [--no-repair]\n"
            "                    [--placement-grace SECONDS]\n"
            "                    [--compact-below KiB] [--compact-rate MB/s]\n"
            "                    [--election-timeout-ms MS] [--heartbeat-ms MS]\n"
            "                    [--unsafe-no-fsync-check] [--http HOST:PORT] [--verbose]",
            "Run replica R (0..K-1) of metadata shard N, a Raft group of K = 1, 3 or 5\n"
            "replicas whose log is kept under D/raft and compacted by a snapshot every E\n"
            "entries (default 4096). Ports are chosen by the OS and registered with the\n"
            "registry at ADDR. Deleted, replaced and expired files are kept for the\n"
            "retention period (default 86400 s; every replica of a shard needs the same)\n"
            "before their blocks are erased. The leader repairs blocks reported rotten or\n"
            "missing and the blocks of services stale for --repair-stale seconds, and\n"
            "merges runs of small spans of a file (appends) into one span, same bytes.",
            options,
            0,
            -1};
        CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    }
    if (n > 0) return cli_error("shard", "unexpected argument '%s'", argv[1]);
    if (shard && cli_parse_uint(shard, 255, &cfg.shard))
        return cli_error("shard", "bad --shard '%s' (0..255)", shard);
    if (replica && cli_parse_uint(replica, 4, &cfg.replica))
        return cli_error("shard", "bad --replica '%s' (0..4)", replica);
    if (replicas && cli_parse_uint(replicas, 5, &cfg.replicas))
        return cli_error("shard", "bad --replicas '%s' (1, 3 or 5)", replicas);
    if (snap && (cli_parse_uint(snap, 1u << 30, &cfg.snapshot_entries) || cfg.snapshot_entries < 2))
        return cli_error("shard", "bad --snapshot-entries '%s' (2 or more)", snap);
    if (retention) {
        unsigned sec;
        if (cli_parse_uint(retention, 10u * 365 * 24 * 3600, &sec) || sec == 0)
            return cli_error("shard", "bad --retention '%s' (seconds, 1 or more)", retention);
        cfg.retention_ms = (uint64_t)sec * 1000u;
    }
    {
        unsigned mb = 32, sec = 600;
        if (repair_rate && cli_parse_uint(repair_rate, 100000, &mb))
            return cli_error("shard", "bad --repair-rate '%s' (MB/s, 0..100000)", repair_rate);
        if (repair_stale && cli_parse_uint(repair_stale, 10u * 365 * 24 * 3600, &sec))
            return cli_error("shard", "bad --repair-stale '%s' (seconds)", repair_stale);
        cfg.repair_rate = (uint64_t)mb << 20;
        cfg.repair_stale_ms = (uint64_t)sec * 1000u;
    }
    if (grace) {
        unsigned sec;
        if (cli_parse_uint(grace, 3600, &sec))
            return cli_error("shard", "bad --placement-grace '%s' (seconds, 0..3600)", grace);
        cfg.placement_grace_ms = (uint64_t)sec * 1000u;
        cfg.placement_grace_set = 1;
    }
    {
        unsigned kib = 64, mb = 16;
        if (compact_below && cli_parse_uint(compact_below, 4096, &kib))
            return cli_error("shard", "bad --compact-below '%s' (KiB, 0..4096)", compact_below);
        if (compact_rate && cli_parse_uint(compact_rate, 100000, &mb))
            return cli_error("shard", "bad --compact-rate '%s' (MB/s, 0..100000)", compact_rate);
        cfg.compact_off = kib == 0;
        cfg.compact_below = kib << 10;
        cfg.compact_rate = mb ? (uint64_t)mb << 20 : UINT64_MAX; /* 0: no limit */
    }
    if (election && (cli_parse_uint(election, 600000, &cfg.raft.election_timeout_ms) ||
                     cfg.raft.election_timeout_ms < 10))
        return cli_error("shard", "bad --election-timeout-ms '%s' (10..600000)", election);
    if (heartbeat &&
        (cli_parse_uint(heartbeat, 600000, &cfg.raft.heartbeat_ms) || cfg.raft.heartbeat_ms == 0))
        return cli_error("shard", "bad --heartbeat-ms '%s' (1..600000)", heartbeat);
    if (verbose) petrel_log_set(petrel_log_stderr, NULL, PT_LOG_DEBUG);
    if (!cfg.registry || !cfg.dir || !shard || !replica)
        return cli_error("shard", "--registry, --shard, --replica and --dir are required");
    if (cli_server_auth("shard", read_only_secret)) return 1;
    /* A peer that dies mid-write must cost an error code, not the process. */
    signal(SIGPIPE, SIG_IGN);
    if (!getenv("PETREL_QUIET")) petrel_log_set(petrel_log_stderr, NULL, PT_LOG_WARN);
    rc = pt_shard_server_run(&cfg, err, sizeof(err));
    if (rc) return cli_error("shard", "%s", err[0] ? err : petrel_strerror(rc));
    return 0;
}
