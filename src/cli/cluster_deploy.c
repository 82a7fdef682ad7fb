/*
 * petrel cluster up|down|status FILE: a deployment on several machines, described by one
 * deployment file (docs/OPERATIONS.md, "Deployment file"), started and stopped over ssh.
 *
 * Owns the file's syntax and checks (one error line naming the line number), the command line
 * of each server it describes, and the remote shell command that starts one detached (pid in
 * DIR/petrel.pid, output appended to DIR/petrel.log) or stops one (SIGTERM, then SIGKILL after
 * a grace period). Never interprets what the servers do; `status` is `cluster status` on the
 * location the file names. The transport is `ssh TARGET COMMAND` ($PETREL_SSH or --ssh names
 * another program called the same way, e.g. to reach containers or network namespaces).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"

#define DEPLOY_MAX_HOSTS 64
#define DEPLOY_MAX_SERVERS 512
#define DEPLOY_FIELD 256
#define STOP_GRACE_S 15

enum server_kind { SV_REGISTRY, SV_BLOCKS, SV_SHARD, SV_CDC };

struct deploy_host {
    char name[64], address[DEPLOY_FIELD], target[DEPLOY_FIELD];
};

struct deploy_server {
    enum server_kind kind;
    unsigned host;    /* index in hosts */
    unsigned shard;   /* SV_SHARD */
    unsigned replica; /* index within its group */
    unsigned port;    /* SV_REGISTRY */
    char dir[DEPLOY_FIELD];
    char domain[64]; /* SV_BLOCKS */
    int line;
};

struct deployment {
    char petrel[DEPLOY_FIELD]; /* the binary on the hosts */
    char secret[DEPLOY_FIELD]; /* the secret file on the hosts ("" = none) */
    struct deploy_host hosts[DEPLOY_MAX_HOSTS];
    unsigned nhosts;
    struct deploy_server servers[DEPLOY_MAX_SERVERS];
    unsigned nservers;
    unsigned registries, shards, cdc, shard_replicas[256];
    char location[1024]; /* registry members "ADDR:PORT,..." */
};

static int deploy_error(const char *cmd, const char *file, int line, const char *msg)
{
    return cli_error(cmd, "%s:%d: %s", file, line, msg);
}

static int find_host(const struct deployment *d, const char *name)
{
    unsigned i;
    for (i = 0; i < d->nhosts; i++)
        if (strcmp(d->hosts[i].name, name) == 0) return (int)i;
    return -1;
}

/* A field with no shell or ssh meaning we would have to quote around: [A-Za-z0-9._/:@-]. */
static int plain(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/:@-[]", *s))
            return 0;
    return 1;
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (!*s || *end || errno || v > max) return -1;
    *out = (unsigned)v;
    return 0;
}

/* Read and check a deployment file: 0, or 1 after printing the error line. */
static int deploy_load(const char *cmd, const char *file, struct deployment *d)
{
    char line[1024], *w[8], *save;
    FILE *f = fopen(file, "r");
    int lineno = 0;
    unsigned i, n, s;
    memset(d, 0, sizeof(*d));
    snprintf(d->petrel, sizeof(d->petrel), "petrel");
    if (!f) return cli_error(cmd, "cannot open %s: %s", file, strerror(errno));
    while (fgets(line, sizeof(line), f)) {
        struct deploy_server *sv;
        char *hash = strchr(line, '#');
        lineno++;
        if (hash) *hash = 0;
        n = 0;
        for (w[n] = strtok_r(line, " \t\r\n", &save); w[n] && n < 7;
             w[n] = strtok_r(NULL, " \t\r\n", &save))
            n++;
        if (n == 0) continue;
        for (i = 0; i < n; i++)
            if (strlen(w[i]) >= DEPLOY_FIELD - 1 || !plain(w[i])) {
                fclose(f);
                return deploy_error(cmd, file, lineno,
                                    "a field holds a character other than letters, digits and "
                                    "._/:@-[] (or is too long)");
            }
        if (strcmp(w[0], "petrel") == 0 && n == 2) {
            snprintf(d->petrel, sizeof(d->petrel), "%s", w[1]);
            continue;
        }
        if (strcmp(w[0], "secret") == 0 && n == 2) {
            snprintf(d->secret, sizeof(d->secret), "%s", w[1]);
            continue;
        }
        if (strcmp(w[0], "host") == 0 && (n == 3 || n == 4)) {
            struct deploy_host *h;
            if (find_host(d, w[1]) >= 0 || d->nhosts == DEPLOY_MAX_HOSTS || strlen(w[1]) >= 64) {
                fclose(f);
                return deploy_error(cmd, file, lineno, "a host named twice (or too many hosts)");
            }
            h = &d->hosts[d->nhosts++];
            snprintf(h->name, sizeof(h->name), "%s", w[1]);
            snprintf(h->address, sizeof(h->address), "%s", w[2]);
            snprintf(h->target, sizeof(h->target), "%s", n == 4 ? w[3] : w[2]);
            continue;
        }
        if (d->nservers == DEPLOY_MAX_SERVERS) {
            fclose(f);
            return deploy_error(cmd, file, lineno, "too many servers");
        }
        sv = &d->servers[d->nservers];
        memset(sv, 0, sizeof(*sv));
        sv->line = lineno;
        if (strcmp(w[0], "registry") == 0 && n == 4) {
            sv->kind = SV_REGISTRY;
            if (parse_uint(w[2], 65535, &sv->port) || sv->port == 0) {
                fclose(f);
                return deploy_error(cmd, file, lineno, "registry HOST PORT DIR: bad port");
            }
            sv->replica = d->registries++;
            snprintf(sv->dir, sizeof(sv->dir), "%s", w[3]);
        } else if (strcmp(w[0], "shard") == 0 && n == 4) {
            sv->kind = SV_SHARD;
            if (parse_uint(w[1], 255, &sv->shard)) {
                fclose(f);
                return deploy_error(cmd, file, lineno, "shard N HOST DIR: N is 0..255");
            }
            sv->replica = d->shard_replicas[sv->shard]++;
            if (sv->shard + 1 > d->shards) d->shards = sv->shard + 1;
            w[1] = w[2];
            w[2] = w[3];
            snprintf(sv->dir, sizeof(sv->dir), "%s", w[2]);
        } else if (strcmp(w[0], "cdc") == 0 && n == 3) {
            sv->kind = SV_CDC;
            sv->replica = d->cdc++;
            snprintf(sv->dir, sizeof(sv->dir), "%s", w[2]);
        } else if (strcmp(w[0], "blocks") == 0 && n == 4 && strlen(w[3]) < 64) {
            sv->kind = SV_BLOCKS;
            snprintf(sv->dir, sizeof(sv->dir), "%s", w[2]);
            snprintf(sv->domain, sizeof(sv->domain), "%s", w[3]);
        } else {
            fclose(f);
            return deploy_error(cmd, file, lineno,
                                "want one of: petrel PATH | secret PATH | host NAME ADDRESS "
                                "[SSH-TARGET] | registry HOST PORT DIR | shard N HOST DIR | cdc "
                                "HOST DIR | blocks HOST DIR FAILURE-DOMAIN");
        }
        {
            int h = find_host(d, w[1]);
            if (h < 0) {
                fclose(f);
                return deploy_error(cmd, file, lineno,
                                    "unknown host (declare it with a host line first)");
            }
            sv->host = (unsigned)h;
        }
        d->nservers++;
    }
    fclose(f);
    if (d->registries != 1 && d->registries != 3 && d->registries != 5)
        return cli_error(cmd, "%s: %u registry lines: a deployment has 1, 3 or 5", file,
                         d->registries);
    if (d->shards == 0) return cli_error(cmd, "%s: no shard lines", file);
    for (s = 0; s < d->shards; s++) {
        n = d->shard_replicas[s];
        if (n != 1 && n != 3 && n != 5)
            return cli_error(cmd, "%s: shard %u has %u replicas: want 1, 3 or 5", file, s, n);
    }
    if (d->cdc != 0 && d->cdc != 1 && d->cdc != 3 && d->cdc != 5)
        return cli_error(cmd, "%s: %u cdc lines: want 0, 1, 3 or 5", file, d->cdc);
    for (i = 0; i < d->nservers; i++) {
        const struct deploy_server *sv = &d->servers[i];
        const struct deploy_host *h = &d->hosts[sv->host];
        size_t used = strlen(d->location);
        if (sv->kind != SV_REGISTRY) continue;
        snprintf(d->location + used, sizeof(d->location) - used, "%s%s:%u", used ? "," : "",
                 h->address, sv->port);
    }
    return 0;
}

/* The server's command line, space-separated (every field is plain: no quoting needed). */
static void server_command(const struct deployment *d, const struct deploy_server *sv, char *out,
                           size_t cap)
{
    const char *addr = d->hosts[sv->host].address;
    int n = 0;
    switch (sv->kind) {
    case SV_REGISTRY:
        if (d->registries == 1)
            n = snprintf(out, cap, "%s registry --dir %s --listen %s:%u", d->petrel, sv->dir, addr,
                         sv->port);
        else
            n = snprintf(out, cap, "%s registry --dir %s --group %s --replica %u", d->petrel,
                         sv->dir, d->location, sv->replica);
        break;
    case SV_BLOCKS:
        n = snprintf(out, cap, "%s blocks --registry %s --dir %s --failure-domain %s --listen %s:0",
                     d->petrel, d->location, sv->dir, sv->domain, addr);
        break;
    case SV_SHARD:
        n = snprintf(out, cap,
                     "%s shard --registry %s --shard %u --replica %u --replicas %u --host %s "
                     "--dir %s",
                     d->petrel, d->location, sv->shard, sv->replica, d->shard_replicas[sv->shard],
                     addr, sv->dir);
        break;
    case SV_CDC:
        n = snprintf(
            out, cap,
            "%s cdc --registry %s --replica %u --replicas %u --shards %u --host %s --dir %s",
            d->petrel, d->location, sv->replica, d->cdc, d->shards, addr, sv->dir);
        break;
    }
    if (n > 0 && (size_t)n < cap && d->secret[0])
        snprintf(out + n, cap - (size_t)n, " --secret %s", d->secret);
}

/* Run `SSH TARGET COMMAND`, output to our stderr: its exit status (127: could not run it). */
static int remote(const char *ssh, const char *target, const char *command)
{
    pid_t pid;
    int status;
    fflush(stdout);
    pid = fork();
    if (pid < 0) return 127;
    if (pid == 0) {
        dup2(STDERR_FILENO, STDOUT_FILENO);
        execlp(ssh, ssh, target, command, (char *)NULL);
        fprintf(stderr, "petrel cluster: cannot run %s: %s\n", ssh, strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const char *server_name(const struct deploy_server *sv, char *buf, size_t cap)
{
    static const char *kinds[] = {"registry", "blocks", "shard", "cdc"};
    if (sv->kind == SV_SHARD)
        snprintf(buf, cap, "shard %u replica %u", sv->shard, sv->replica);
    else
        snprintf(buf, cap, "%s %u", kinds[sv->kind], sv->replica);
    return buf;
}

static const char *ssh_program(const char *opt)
{
    const char *env = getenv("PETREL_SSH");
    if (opt) return opt;
    return env && *env ? env : "ssh";
}

/* Start every server not already running, registries first: 0, or 1 after an error line. */
static int deploy_up(const struct deployment *d, const char *ssh)
{
    static const enum server_kind order[] = {SV_REGISTRY, SV_BLOCKS, SV_CDC, SV_SHARD};
    char cmdline[2048], command[4096], name[64];
    unsigned k, i;
    for (k = 0; k < 4; k++)
        for (i = 0; i < d->nservers; i++) {
            const struct deploy_server *sv = &d->servers[i];
            int rc;
            if (sv->kind != order[k]) continue;
            server_command(d, sv, cmdline, sizeof(cmdline));
            /* Already running (its pid alive): left alone, so `up` can be repeated. */
            snprintf(command, sizeof(command),
                     "mkdir -p %s && cd %s || exit 1; "
                     "if [ -f petrel.pid ] && kill -0 \"$(cat petrel.pid)\" 2>/dev/null; then exit "
                     "0; fi; "
                     "nohup %s >>petrel.log 2>&1 </dev/null & echo $! >petrel.pid",
                     sv->dir, sv->dir, cmdline);
            rc = remote(ssh, d->hosts[sv->host].target, command);
            if (rc != 0)
                return cli_error("cluster up", "cannot start %s on %s (%s exited %d)",
                                 server_name(sv, name, sizeof(name)), d->hosts[sv->host].name, ssh,
                                 rc);
            fprintf(stderr, "petrel cluster: %s on %s\n", server_name(sv, name, sizeof(name)),
                    d->hosts[sv->host].name);
        }
    printf("petrel://%s\n", d->location);
    return 0;
}

/* Stop every server (clients of the registry first, the registry last): 0, or 1. */
static int deploy_down(const struct deployment *d, const char *ssh)
{
    static const enum server_kind order[] = {SV_SHARD, SV_CDC, SV_BLOCKS, SV_REGISTRY};
    char command[2048], name[64];
    unsigned k, i;
    int failed = 0;
    for (k = 0; k < 4; k++)
        for (i = 0; i < d->nservers; i++) {
            const struct deploy_server *sv = &d->servers[i];
            if (sv->kind != order[k]) continue;
            snprintf(command, sizeof(command),
                     "cd %s 2>/dev/null && [ -f petrel.pid ] || exit 0; p=$(cat petrel.pid); "
                     "kill -TERM \"$p\" 2>/dev/null; n=0; "
                     "while kill -0 \"$p\" 2>/dev/null && [ $n -lt %d ]; do sleep 0.1; n=$((n+1)); "
                     "done; "
                     "kill -KILL \"$p\" 2>/dev/null; rm -f petrel.pid",
                     sv->dir, STOP_GRACE_S * 10);
            if (remote(ssh, d->hosts[sv->host].target, command) != 0) {
                cli_error("cluster down", "cannot stop %s on %s",
                          server_name(sv, name, sizeof(name)), d->hosts[sv->host].name);
                failed = 1;
            }
        }
    return failed;
}

int cluster_deploy(int argc, char **argv)
{
    const char *ssh = NULL, *what = argv[0];
    struct deployment *d;
    char cmd[32];
    int n, rc;
    const struct cli_option options[] = {
        {0, "ssh", CLI_STRING, &ssh, "PROGRAM",
         "run PROGRAM TARGET COMMAND to reach a host (default: $PETREL_SSH, else ssh)"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL},
    };
    snprintf(cmd, sizeof(cmd), "cluster %s", what);
    {
        const struct cli_spec spec = {
            strcmp(what, "up") == 0     ? "cluster up"
            : strcmp(what, "down") == 0 ? "cluster down"
                                        : "cluster status",
            "FILE [--ssh PROGRAM]",
            "up: start every server a deployment file describes on its host over ssh (each\n"
            "detached, pid in DIR/petrel.pid, output in DIR/petrel.log; one already running is\n"
            "left alone) and print the cluster's location. down: stop them (SIGTERM, SIGKILL\n"
            "after 15 s), the registry last. status: what the registry of the file knows.\n"
            "The file's syntax: docs/OPERATIONS.md, \"Deployment file\".",
            options,
            1,
            1};
        CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    }
    d = malloc(sizeof(*d));
    if (!d) return cli_error(cmd, "out of memory");
    if (deploy_load(cmd, argv[1], d)) {
        free(d);
        return 1;
    }
    if (strcmp(what, "up") == 0)
        rc = deploy_up(d, ssh_program(ssh));
    else if (strcmp(what, "down") == 0)
        rc = deploy_down(d, ssh_program(ssh));
    else {
        char loc[1100];
        char *sargv[3];
        snprintf(loc, sizeof(loc), "petrel://%s", d->location);
        sargv[0] = "status";
        sargv[1] = loc;
        sargv[2] = NULL;
        rc = cluster_status(2, sargv);
    }
    free(d);
    return rc;
}
