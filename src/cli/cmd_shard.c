/*
 * petrel shard --registry ADDR --shard N --replica R --dir D [--replicas K] [--host H]
 * [--snapshot-entries E] [--retention SECONDS]:
 * run one replica of a metadata shard until SIGINT/SIGTERM. Owns only option parsing; the
 * server is src/cluster/shard/shard_server.c.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cluster/shard/shard_server.h"
#include "petrel/common.h"

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v;
    if (!s || !*s) return -1;
    v = strtoul(s, &end, 10);
    if (*end || v > max) return -1;
    *out = (unsigned)v;
    return 0;
}

int cmd_shard(int argc, char **argv)
{
    static const struct option opts[] = {{"registry", required_argument, NULL, 'g'},
                                         {"shard", required_argument, NULL, 's'},
                                         {"replica", required_argument, NULL, 'r'},
                                         {"replicas", required_argument, NULL, 'k'},
                                         {"dir", required_argument, NULL, 'd'},
                                         {"host", required_argument, NULL, 'H'},
                                         {"snapshot-entries", required_argument, NULL, 'S'},
                                         {"retention", required_argument, NULL, 'R'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct pt_shard_config cfg;
    char err[512] = "";
    int c, have_shard = 0, have_replica = 0, rc;
    memset(&cfg, 0, sizeof(cfg));
    cfg.replicas = 3;
    cfg.host = "127.0.0.1";
    optind = 1;
    opterr = 0; /* one error line: ours */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'g':
            cfg.registry = optarg;
            break;
        case 's':
            if (parse_uint(optarg, 255, &cfg.shard))
                return cli_error("shard", "bad --shard '%s' (0..255)", optarg);
            have_shard = 1;
            break;
        case 'r':
            if (parse_uint(optarg, 4, &cfg.replica))
                return cli_error("shard", "bad --replica '%s' (0..4)", optarg);
            have_replica = 1;
            break;
        case 'k':
            if (parse_uint(optarg, 5, &cfg.replicas))
                return cli_error("shard", "bad --replicas '%s' (1, 3 or 5)", optarg);
            break;
        case 'd':
            cfg.dir = optarg;
            break;
        case 'H':
            cfg.host = optarg;
            break;
        case 'S':
            if (parse_uint(optarg, 1u << 30, &cfg.snapshot_entries) || cfg.snapshot_entries < 2)
                return cli_error("shard", "bad --snapshot-entries '%s' (2 or more)", optarg);
            break;
        case 'R': {
            unsigned sec;
            if (parse_uint(optarg, 10u * 365 * 24 * 3600, &sec) || sec == 0)
                return cli_error("shard", "bad --retention '%s' (seconds, 1 or more)", optarg);
            cfg.retention_ms = (uint64_t)sec * 1000u;
            break;
        }
        case 'v':
            petrel_log_set(petrel_log_stderr, NULL, PT_LOG_DEBUG);
            break;
        case 'h':
            printf(
                "usage: petrel shard --registry ADDR --shard N --replica R --dir D [--replicas K]\n"
                "                    [--host H] [--snapshot-entries E] [--retention SECONDS] "
                "[--verbose]\n"
                "Run replica R (0..K-1) of metadata shard N, a Raft group of K = 1, 3 or 5\n"
                "replicas whose log is kept under D/raft and compacted by a snapshot every E\n"
                "entries (default 4096). Ports are chosen by the OS and registered with the\n"
                "registry at ADDR. Deleted, replaced and expired files are kept for the\n"
                "retention period (default 86400 s; every replica of a shard needs the same)\n"
                "before their blocks are erased.\n");
            return 0;
        default:
            return cli_error("shard", "bad option %s (petrel shard --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_error("shard", "unexpected argument '%s'", argv[optind]);
    if (!cfg.registry || !cfg.dir || !have_shard || !have_replica)
        return cli_error("shard", "--registry, --shard, --replica and --dir are required");
    /* A peer that dies mid-write must cost an error code, not the process. */
    signal(SIGPIPE, SIG_IGN);
    if (!getenv("PETREL_QUIET")) petrel_log_set(petrel_log_stderr, NULL, PT_LOG_WARN);
    rc = pt_shard_server_run(&cfg, err, sizeof(err));
    if (rc) return cli_error("shard", "%s", err[0] ? err : petrel_strerror(rc));
    return 0;
}
