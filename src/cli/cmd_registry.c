/*
 * petrel registry --dir D --listen ADDR [--using-dynamic-ports] [--stale-after SECONDS]:
 * run the registry server in the foreground until SIGINT/SIGTERM. Owns argument parsing and
 * the process shell (signals, the "listening on" line that scripts wait for); the server
 * itself is src/cluster/registry/.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli/cli.h"
#include "cli/opt.h"
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

int cmd_registry(int argc, char **argv)
{
    const char *read_only_secret = NULL;
    struct pt_registry_server_config cfg;
    struct registry_run run;
    uv_loop_t loop;
    const char *stale_text = NULL;
    double stale;
    char *end;
    int err, n;

    memset(&cfg, 0, sizeof(cfg));
    memset(&run, 0, sizeof(run));
    cfg.listen = "127.0.0.1:7400";
    cfg.stale_after_ms = 10000;
    {
        const struct cli_option options[] = {
            {0, "dir", CLI_STRING, &cfg.dir, "DIR", "state directory (created if missing)"},
            {0, "listen", CLI_STRING, &cfg.listen, "HOST:PORT",
             "address (default 127.0.0.1:7400; port 0: the OS chooses)"},
            {0, "using-dynamic-ports", CLI_FLAG, &cfg.using_dynamic_ports, NULL,
             "forget stored service addresses at start-up"},
            {0, "stale-after", CLI_STRING, &stale_text, "SECONDS",
             "silence after which a service is stale (default 10)"},
            {0, "http", CLI_STRING, &cfg.http, "HOST:PORT",
             "serve the status page (/) and /metrics over HTTP here (port 0: the OS chooses;\n"
             "unauthenticated read-only views: bind to a trusted address)"},
            {0, "read-only-secret", CLI_STRING, &read_only_secret, "FILE",
             "a second secret whose holders may read and list only (needs --secret)"},
            {0, NULL, CLI_FLAG, NULL, NULL, NULL},
        };
        const struct cli_spec spec = {
            "registry",
            "--dir DIR [--listen HOST:PORT] [--using-dynamic-ports]\n"
            "                       [--stale-after SECONDS] [--http HOST:PORT]",
            "Run the registry: the directory of shards, CDC and block services. Prints\n"
            "'listening on HOST:PORT' once it serves (then 'http on HOST:PORT' with --http).",
            options,
            0,
            -1};
        CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    }
    if (n > 0) return cli_error("registry", "unexpected argument '%s'", argv[1]);
    if (stale_text) {
        stale = strtod(stale_text, &end);
        if (*end || !(stale > 0) || stale > 86400 * 365)
            return cli_error("registry", "bad --stale-after '%s': want seconds > 0", stale_text);
        cfg.stale_after_ms = (uint64_t)(stale * 1000);
    }
    if (!cfg.dir) return cli_error("registry", "--dir is required (petrel registry --help)");
    petrel_log_set(petrel_log_stderr, NULL, PT_LOG_WARN);
    if (cli_server_auth("registry", read_only_secret)) return 1;
    /* A peer that hangs up under a reply is an error for that connection, not a signal that
       ends the server. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    err = pt_registry_server_start(&loop, &cfg, &run.server);
    if (err) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return cli_error("registry", "cannot start on %s%s%s%s with state in %s: %s", cfg.listen,
                         cfg.http ? " (HTTP on " : "", cfg.http ? cfg.http : "",
                         cfg.http ? ")" : "", cfg.dir, petrel_strerror(err));
    }
    uv_signal_init(&loop, &run.sigint);
    uv_signal_init(&loop, &run.sigterm);
    run.sigint.data = run.sigterm.data = &run;
    uv_signal_start(&run.sigint, on_signal, SIGINT);
    uv_signal_start(&run.sigterm, on_signal, SIGTERM);
    printf("listening on %s\n", pt_registry_server_address(run.server));
    if (cfg.http) printf("http on %s\n", pt_registry_server_http_address(run.server));
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (run.stop_err)
        return cli_error("registry", "saving state at exit failed: %s",
                         petrel_strerror(run.stop_err));
    return 0;
}
