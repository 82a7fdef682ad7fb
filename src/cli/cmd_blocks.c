/*
 * petrel blocks --registry ADDR --dir D [--dir D2 ...] --failure-domain NAME [--listen ADDR]
 * [--scrub-rate MB/s] (`petrel blocks drain|fail ID ...` is blocks_drain.c):
 * run one block service per directory in the foreground until SIGINT/SIGTERM. Owns argument
 * parsing and the process shell; prints one "listening on HOST:PORT (block service ID, DIR)"
 * line per service once all serve. The services are src/cluster/blocks/.
 */
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "cluster/blocks/blocks.h"
#include "petrel/common.h"

#define MAX_DIRS 64
#define DEFAULT_SCRUB_RATE_MB 8 /* per service: a small share of one disk's bandwidth */
#define MAX_SCRUB_RATE_MB 100000

struct blocks_run {
    struct pt_blocks_server *server;
    uv_signal_t sigint, sigterm;
    int stopped;
};

static void on_signal(uv_signal_t *h, int signum)
{
    struct blocks_run *run = h->data;
    (void)signum;
    if (run->stopped) return;
    run->stopped = 1;
    pt_blocks_server_stop(run->server);
    uv_close((uv_handle_t *)&run->sigint, NULL);
    uv_close((uv_handle_t *)&run->sigterm, NULL);
}

int cmd_blocks(int argc, char **argv)
{
    const char *read_only_secret = NULL;
    const char *dirs[MAX_DIRS];
    struct cli_strings dir_list = {dirs, 0, MAX_DIRS};
    struct pt_blocks_server_config cfg;
    struct blocks_run run;
    uv_loop_t loop;
    uint64_t scrub_mb = DEFAULT_SCRUB_RATE_MB;
    int err, i, n;

    if (argc > 1 && strcmp(argv[1], "drain") == 0) return cmd_blocks_drain(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "fail") == 0) return cmd_blocks_fail(argc - 1, argv + 1);
    memset(&cfg, 0, sizeof(cfg));
    memset(&run, 0, sizeof(run));
    cfg.listen = "127.0.0.1:0";
    {
        const struct cli_option options[] = {
            {0, "registry", CLI_STRING, &cfg.registry, "HOST:PORT",
             "the registry to register and heartbeat with"},
            {0, "dir", CLI_STRINGS, &dir_list, "DIR",
             "a service's storage directory (repeatable: one service per disk)"},
            {0, "failure-domain", CLI_STRING, &cfg.failure_domain, "NAME",
             "what fails together (machine, rack); copies of a span go to distinct domains"},
            {0, "listen", CLI_STRING, &cfg.listen, "HOST:PORT",
             "first service's address, the next use PORT+1... (default 127.0.0.1:0: the OS "
             "chooses)"},
            {0, "scrub-rate", CLI_UINT, &scrub_mb, "MB/s",
             "how fast each service re-reads its blocks to find rot (default 8; 0: off)"},
            {0, "http", CLI_STRING, &cfg.http, "HOST:PORT",
             "serve /metrics over HTTP here (port 0: the OS chooses; unauthenticated: a trusted "
             "address only)"},
            {0, "read-only-secret", CLI_STRING, &read_only_secret, "FILE",
             "a second secret whose holders may read and list only (needs --secret)"},
            {0, NULL, CLI_FLAG, NULL, NULL, NULL},
        };
        const struct cli_spec spec = {
            "blocks",
            "--registry HOST:PORT --dir DIR [--dir DIR2 ...]\n"
            "                     --failure-domain NAME [--listen HOST:PORT] [--scrub-rate MB/s]\n"
            "                     [--http HOST:PORT]",
            "Run one block service per directory (one directory per disk) in the foreground\n"
            "until SIGINT or SIGTERM; prints one \"listening on\" line per service (and\n"
            "\"http on HOST:PORT\" with --http).",
            options,
            0,
            -1,
        };
        CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    }
    if (n > 0) return cli_error("blocks", "unexpected argument '%s'", argv[1]);
    cfg.dirs = dirs;
    cfg.ndirs = dir_list.n;
    if (!cfg.registry) return cli_error("blocks", "--registry is required (petrel blocks --help)");
    if (!cfg.ndirs) return cli_error("blocks", "at least one --dir is required");
    if (!cfg.failure_domain || !cfg.failure_domain[0])
        return cli_error("blocks", "--failure-domain is required");
    if (strlen(cfg.failure_domain) >= 64)
        return cli_error("blocks", "--failure-domain is longer than 63 bytes");
    if (scrub_mb > MAX_SCRUB_RATE_MB)
        return cli_error("blocks", "--scrub-rate %" PRIu64 " is above %u MB/s", scrub_mb,
                         MAX_SCRUB_RATE_MB);
    cfg.scrub_rate = scrub_mb << 20;
    petrel_log_set(petrel_log_stderr, NULL, PT_LOG_WARN);
    if (cli_server_auth("blocks", read_only_secret)) return 1;
    /* A peer that hangs up under a reply is an error for that connection, not a signal that
       ends the server. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    err = pt_blocks_server_start(&loop, &cfg, &run.server);
    if (err) {
        uv_loop_close(&loop);
        return cli_error("blocks", "cannot start (registry %s, listen %s%s%s): %s", cfg.registry,
                         cfg.listen ? cfg.listen : "127.0.0.1:0", cfg.http ? ", HTTP on " : "",
                         cfg.http ? cfg.http : "", petrel_strerror(err));
    }
    uv_signal_init(&loop, &run.sigint);
    uv_signal_init(&loop, &run.sigterm);
    run.sigint.data = run.sigterm.data = &run;
    uv_signal_start(&run.sigint, on_signal, SIGINT);
    uv_signal_start(&run.sigterm, on_signal, SIGTERM);
    for (i = 0; i < pt_blocks_server_count(run.server); i++)
        printf("listening on %s (block service %016" PRIx64 ", %s)\n",
               pt_blocks_server_address(run.server, i), pt_blocks_server_id(run.server, i),
               dirs[i]);
    if (cfg.http) printf("http on %s\n", pt_blocks_server_http_address(run.server));
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    pt_blocks_server_free(run.server);
    uv_loop_close(&loop);
    return 0;
}
