/*
 * petrel registry --dir D --listen ADDR [--using-dynamic-ports] [--stale-after SECONDS]:
 * run the registry server in the foreground until SIGINT/SIGTERM. Owns argument parsing and
 * the process shell (signals, the "listening on" line that scripts wait for); the server
 * itself is src/cluster/registry/.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli/cli.h"
#include "cluster/registry/registry.h"
#include "petrel/common.h"

struct registry_run {
    struct pt_registry_server *server;
    uv_signal_t sigint, sigterm;
    int stop_err;
};

static void on_signal(uv_signal_t *h, int signum)
{
    struct registry_run *run = h->data;
    (void)signum;
    if (!run->server) return;
    run->stop_err = pt_registry_server_stop(run->server);
    run->server = NULL;
    uv_close((uv_handle_t *)&run->sigint, NULL);
    uv_close((uv_handle_t *)&run->sigterm, NULL);
}

static int usage(FILE *out)
{
    fprintf(out, "usage: petrel registry --dir DIR [--listen HOST:PORT] [--using-dynamic-ports]\n"
                 "                       [--stale-after SECONDS]\n"
                 "Run the registry: the directory of shards, CDC and block services.\n"
                 "  --dir DIR              state directory (created if missing)\n"
                 "  --listen HOST:PORT     address to serve on (default 127.0.0.1:7400; port 0:\n"
                 "                         the OS chooses); prints 'listening on HOST:PORT'\n"
                 "  --using-dynamic-ports  forget stored service addresses at start-up\n"
                 "  --stale-after SECONDS  silence after which a service is stale (default 10)\n");
    return out == stdout ? 0 : 2;
}

int cmd_registry(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"using-dynamic-ports", no_argument, NULL, 'p'},
        {"stale-after", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct pt_registry_server_config cfg;
    struct registry_run run;
    uv_loop_t loop;
    double stale;
    char *end;
    int c, err;

    memset(&cfg, 0, sizeof(cfg));
    memset(&run, 0, sizeof(run));
    cfg.listen = "127.0.0.1:7400";
    cfg.stale_after_ms = 10000;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            cfg.dir = optarg;
            break;
        case 'l':
            cfg.listen = optarg;
            break;
        case 'p':
            cfg.using_dynamic_ports = 1;
            break;
        case 's':
            stale = strtod(optarg, &end);
            if (*end || !(stale > 0) || stale > 86400 * 365)
                return cli_error("registry", "bad --stale-after '%s': want seconds > 0", optarg);
            cfg.stale_after_ms = (uint64_t)(stale * 1000);
            break;
        case 'h':
            return usage(stdout);
        default:
            return cli_error("registry", "bad option '%s' (petrel registry --help)",
                             argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_error("registry", "unexpected argument '%s'", argv[optind]);
    if (!cfg.dir) return cli_error("registry", "--dir is required (petrel registry --help)");
    petrel_log_set(petrel_log_stderr, NULL, PT_LOG_WARN);
    /* A peer that hangs up under a reply is an error for that connection, not a signal that
       ends the server. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    err = pt_registry_server_start(&loop, &cfg, &run.server);
    if (err) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return cli_error("registry", "cannot start on %s with state in %s: %s", cfg.listen, cfg.dir,
                         petrel_strerror(err));
    }
    uv_signal_init(&loop, &run.sigint);
    uv_signal_init(&loop, &run.sigterm);
    run.sigint.data = run.sigterm.data = &run;
    uv_signal_start(&run.sigint, on_signal, SIGINT);
    uv_signal_start(&run.sigterm, on_signal, SIGTERM);
    printf("listening on %s\n", pt_registry_server_address(run.server));
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (run.stop_err)
        return cli_error("registry", "saving state at exit failed: %s",
                         petrel_strerror(run.stop_err));
    return 0;
}
