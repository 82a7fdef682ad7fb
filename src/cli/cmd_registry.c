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

static void group_started(void *ctx, const char *address, const char *http)
{
    (void)ctx;
    printf("listening on %s\n", address);
    if (http) printf("http on %s\n", http);
    fflush(stdout);
}

/* Parse a positive millisecond count option (NULL: keep *out). */
static int parse_ms(const char *text, const char *name, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (!text) return 0;
    v = strtoull(text, &end, 10);
    if (*end || v == 0 || v > 3600000ull)
        return cli_error("registry", "bad --%s '%s': want milliseconds 1..3600000", name, text);
    *out = v;
    return 0;
}

int cmd_registry(int argc, char **argv)
{
    const char *read_only_secret = NULL;
    struct pt_registry_server_config cfg;
    struct registry_run run;
    uv_loop_t loop;
    const char *stale_text = NULL, *group = NULL, *replica_text = NULL, *listen = NULL;
    const char *staleness_text = NULL, *election_text = NULL, *heartbeat_text = NULL;
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
            {0, "listen", CLI_STRING, &listen, "HOST:PORT",
             "address (default 127.0.0.1:7400; port 0: the OS chooses; in a group: this\n"
             "member's address in --group)"},
            {0, "group", CLI_STRING, &group, "H:P,H:P,H:P",
             "run as one member of a replicated registry group of 3 or 5 (or 1) members"},
            {0, "replica", CLI_STRING, &replica_text, "N", "this member's index in --group (0..)"},
            {0, "max-staleness-ms", CLI_STRING, &staleness_text, "MS",
             "group: a follower answers reads only this fresh, else redirects (default 2000)"},
            {0, "election-timeout-ms", CLI_STRING, &election_text, "MS",
             "group: Raft election timeout (default 250)"},
            {0, "heartbeat-ms", CLI_STRING, &heartbeat_text, "MS",
             "group: Raft heartbeat interval (default 50)"},
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
            "                       [--stale-after SECONDS] [--http HOST:PORT]\n"
            "       petrel registry --dir DIR --group H:P,H:P,H:P --replica N\n"
            "                       [--max-staleness-ms MS] [--stale-after SECONDS]",
            "Run the registry: the directory of shards, CDC and block services. Prints\n"
            "'listening on HOST:PORT' once it serves (then 'http on HOST:PORT' with --http).\n"
            "With --group, one member of a replicated registry (a Raft group): clients name\n"
            "the whole group, petrel://H:P,H:P,H:P.",
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
    if (listen) cfg.listen = listen;
    if (group || replica_text) {
        struct pt_registry_group_config g;
        char why[512];
        uint64_t election = 0, heartbeat = 0;
        unsigned long replica;
        if (!group || !replica_text)
            return cli_error("registry", "--group and --replica go together");
        if (cfg.using_dynamic_ports)
            return cli_error("registry", "--using-dynamic-ports: a group's addresses are fixed");
        replica = strtoul(replica_text, &end, 10);
        if (*end || !replica_text[0] || replica >= PT_REG_MAX_REPLICAS)
            return cli_error("registry", "bad --replica '%s': want 0..4", replica_text);
        memset(&g, 0, sizeof(g));
        g.dir = cfg.dir;
        g.location = group;
        g.replica = (unsigned)replica;
        g.listen = listen;
        g.stale_after_ms = cfg.stale_after_ms;
        g.http = cfg.http;
        if (parse_ms(staleness_text, "max-staleness-ms", &g.max_staleness_ms) ||
            parse_ms(election_text, "election-timeout-ms", &election) ||
            parse_ms(heartbeat_text, "heartbeat-ms", &heartbeat))
            return 1;
        g.election_timeout_ms = (unsigned)election;
        g.heartbeat_ms = (unsigned)heartbeat;
        g.started = group_started;
        petrel_log_set(petrel_log_stderr, NULL, PT_LOG_WARN);
        if (cli_server_auth("registry", read_only_secret)) return 1;
        signal(SIGPIPE, SIG_IGN);
        why[0] = 0;
        err = pt_registry_group_run(&g, why, sizeof(why));
        if (err) return cli_error("registry", "%s", why[0] ? why : petrel_strerror(err));
        return 0;
    }
    if (staleness_text || election_text || heartbeat_text)
        return cli_error("registry", "--max-staleness-ms, --election-timeout-ms and "
                                     "--heartbeat-ms are for a group (--group)");
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
