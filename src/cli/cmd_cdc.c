/*
 * petrel cdc --registry ADDR --replica R --dir D [--replicas K] [--shards N] [--host H]: run one
 * replica of the cross-directory coordinator until SIGINT/SIGTERM. Option parsing only; the
 * server is src/cluster/cdc/cdc_server.c.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cluster/cdc/cdc_server.h"
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

int cmd_cdc(int argc, char **argv)
{
    static const struct option opts[] = {{"registry", required_argument, NULL, 'g'},
                                         {"replica", required_argument, NULL, 'r'},
                                         {"replicas", required_argument, NULL, 'k'},
                                         {"shards", required_argument, NULL, 's'},
                                         {"dir", required_argument, NULL, 'd'},
                                         {"host", required_argument, NULL, 'H'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct pt_cdc_config cfg;
    char err[512] = "";
    int c, have_replica = 0, rc;
    memset(&cfg, 0, sizeof(cfg));
    cfg.replicas = 3;
    cfg.shards = 1;
    cfg.host = "127.0.0.1";
    optind = 1;
    opterr = 0; /* one error line: ours */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'g':
            cfg.registry = optarg;
            break;
        case 'r':
            if (parse_uint(optarg, 4, &cfg.replica))
                return cli_error("cdc", "bad --replica '%s' (0..4)", optarg);
            have_replica = 1;
            break;
        case 'k':
            if (parse_uint(optarg, 5, &cfg.replicas))
                return cli_error("cdc", "bad --replicas '%s' (1, 3 or 5)", optarg);
            break;
        case 's':
            if (parse_uint(optarg, 256, &cfg.shards) || cfg.shards == 0)
                return cli_error("cdc", "bad --shards '%s' (1..256)", optarg);
            break;
        case 'd':
            cfg.dir = optarg;
            break;
        case 'H':
            cfg.host = optarg;
            break;
        case 'v':
            petrel_log_set(petrel_log_stderr, NULL, PT_LOG_DEBUG);
            break;
        case 'h':
            printf("usage: petrel cdc --registry ADDR --replica R --dir D [--replicas K] [--shards "
                   "N]\n"
                   "                  [--host H] [--verbose]\n"
                   "Run replica R (0..K-1) of the cross-directory coordinator (mkdir, rmdir and\n"
                   "renames across directories as transactions over the N shards), a Raft group\n"
                   "of K = 1, 3 or 5 replicas whose log is kept under D/raft.\n");
            return 0;
        default:
            return cli_error("cdc", "bad option %s (petrel cdc --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_error("cdc", "unexpected argument '%s'", argv[optind]);
    if (!cfg.registry || !cfg.dir || !have_replica)
        return cli_error("cdc", "--registry, --replica and --dir are required");
    /* A peer that dies mid-write must cost an error code, not the process. */
    signal(SIGPIPE, SIG_IGN);
    if (!getenv("PETREL_QUIET")) petrel_log_set(petrel_log_stderr, NULL, PT_LOG_WARN);
    rc = pt_cdc_server_run(&cfg, err, sizeof(err));
    if (rc) return cli_error("cdc", "%s", err[0] ? err : petrel_strerror(rc));
    return 0;
}
