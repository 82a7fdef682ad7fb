/*
 * petrel cluster start --dir D [--shards N] [--replicas R] [--block-services B]: a whole
 * deployment on loopback as child processes of this one — the registry (on an OS-assigned
 * port, with --using-dynamic-ports so a restart on new ports re-resolves at once), R CDC
 * replicas, N shards of R replicas, B block services each in its own failure domain — with
 * data and logs under D. Prints petrel://127.0.0.1:PORT once the registry serves, then waits;
 * Ctrl-C or SIGTERM stops every child (SIGTERM, then SIGKILL after a grace period). The
 * layout is kept in D/cluster.conf, so a second start on D resumes with the same layout and
 * the data intact. Children get SIGTERM if this process dies (PR_SET_PDEATHSIG).
 *
 * With --registries 3 (or 5) the registry is a replicated group on fixed loopback ports (chosen
 * at the first start, kept in cluster.conf): the cluster is petrel://127.0.0.1:P1,...,:P3, a
 * member that exits is started again like any server, and the cluster stops only when every
 * member has.
 *
 * petrel cluster status petrel://HOST:PORT: services, leaders, capacity (cluster_status.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "cluster/client/registry_client.h"
#include "cluster/client/router.h"
#include "cluster/storage/durable.h"
#include "cluster/proto/shard_msgs.h"
#include "cluster/net/net.h"
#include "cluster/proto/auth.h"
#include "petrel/common.h"

#define MAX_CHILDREN 128
#define START_TIMEOUT_MS 30000  /* the registry's address line */
#define READY_TIMEOUT_MS 120000 /* every service back and serving (a busy machine, a long log) */
#define STOP_GRACE_MS 10000
#define MAX_ARGS 24
/* A server that exits on its own (a fail-stop on a storage error, a crash, a kill) is started
 * again after a back-off: 1 s, doubling to 30 s while it keeps exiting within a minute. */
#define RESTART_FIRST_MS 1000
#define RESTART_MAX_MS 30000
#define RESTART_RESET_MS 60000

struct child {
    pid_t pid;
    char name[64];
    char log[PATH_MAX];
    char *argv[MAX_ARGS + 1]; /* its command line (owned), to start it again */
    off_t log_start;          /* where this run's output starts in the log */
    int exited;
    uint64_t started_ms;    /* when this run of it started */
    uint64_t restart_at_ms; /* exited: when to start it again (0: not scheduled) */
    uint64_t backoff_ms;    /* the last back-off used */
    unsigned restarts;
};

struct cluster {
    const char *dir;
    char election[24], heartbeat[24]; /* passed to shards and CDC replicas ("" = default) */
    int unsafe_no_fsync_check;
    uint64_t shards, replicas, blocks;
    unsigned registries; /* registry processes: children 0..registries-1 */
    struct child kids[MAX_CHILDREN];
    int nkids;
    char registry[PT_REG_LOCATION_MAX]; /* HOST:PORT, or a group's HOST:PORT,HOST:PORT,... */
    char secret[PATH_MAX], read_only_secret[PATH_MAX]; /* DIR/secret, DIR/read-only-secret */
    const char *http;  /* --http: the registry's status page address; NULL: no HTTP at all */
    char http_addr[64]; /* the address it bound */
};

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t child_changed;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_child(int sig)
{
    (void)sig;
    child_changed = 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Directories of the deployment, each made durable in its parent (storage/durable.c). */
static int make_dir(const char *path)
{
    return pt_mkdir_p(path);
}

/* --- the layout file: "shards N\nreplicas R\nblock-services B\n" ------------------------- */

/* Optional lines: "registries N" and "registry-port-I P" for a registry group. */
static uint64_t layout_registries, layout_ports[5];

static int layout_load(const char *dir, uint64_t *shards, uint64_t *replicas, uint64_t *blocks)
{
    char path[PATH_MAX + 64], key[32];
    unsigned long long v;
    FILE *f;
    int found = 0;
    snprintf(path, sizeof(path), "%s/cluster.conf", dir);
    f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : -errno;
    while (fscanf(f, "%31s %llu", key, &v) == 2) {
        if (strcmp(key, "shards") == 0) *shards = v, found |= 1;
        if (strcmp(key, "replicas") == 0) *replicas = v, found |= 2;
        if (strcmp(key, "block-services") == 0) *blocks = v, found |= 4;
        if (strcmp(key, "registries") == 0) layout_registries = v;
        if (strncmp(key, "registry-port-", 14) == 0 && key[14] >= '0' && key[14] <= '4' &&
            !key[15])
            layout_ports[key[14] - '0'] = v;
    }
    fclose(f);
    return found == 7 ? 1 : -PT_ECORRUPT;
}

/* Written to a temp file, fsync'd, renamed into place, then the directory fsync'd. */
static int layout_save(const char *dir, uint64_t shards, uint64_t replicas, uint64_t blocks)
{
    char text[512];
    unsigned i;
    int n = snprintf(text, sizeof(text), "shards %llu\nreplicas %llu\nblock-services %llu\n",
                     (unsigned long long)shards, (unsigned long long)replicas,
                     (unsigned long long)blocks);
    if (layout_registries > 1) {
        n += snprintf(text + n, sizeof(text) - (size_t)n, "registries %llu\n",
                      (unsigned long long)layout_registries);
        for (i = 0; i < layout_registries; i++)
            n += snprintf(text + n, sizeof(text) - (size_t)n, "registry-port-%u %llu\n", i,
                          (unsigned long long)layout_ports[i]);
    }
    return pt_durable_write_file(dir, "cluster.conf", text, (size_t)n);
}

/* --- children ---------------------------------------------------------------------------- */

/* Append the Raft options given to `cluster start` to a server's argv (NULL at index at). */
/*
 * Every server gets the cluster's secrets, right after "petrel SERVER" (the command line
 * keeps ending in what scripts look for, e.g. "--dir D"): argv[0..at) becomes argv[0..at+4)
 * with a NULL after it; returns at + 4, the next free slot.
 */
static int secret_args(struct cluster *c, char **argv, int at)
{
    int i;
    for (i = at - 1; i >= 2; i--)
        argv[i + 4] = argv[i];
    argv[2] = "--secret";
    argv[3] = c->secret;
    argv[4] = "--read-only-secret";
    argv[5] = c->read_only_secret;
    argv[at + 4] = NULL;
    return at + 4;
}

/*
 * DIR/secret and DIR/read-only-secret, made on the first start (mode 0600), loaded as a check
 * (a file someone made group-readable is refused here, before any server starts); the cluster
 * key becomes this process's client key (it asks the registry whether the cluster is ready).
 */
static int secrets_prepare(struct cluster *c)
{
    struct pt_auth_key key;
    char err[PATH_MAX + 128];
    const char *paths[2];
    int i, rc;
    snprintf(c->secret, sizeof(c->secret), "%s/secret", c->dir);
    snprintf(c->read_only_secret, sizeof(c->read_only_secret), "%s/read-only-secret", c->dir);
    paths[0] = c->secret;
    paths[1] = c->read_only_secret;
    for (i = 1; i >= 0; i--) {
        rc = pt_auth_secret_create(paths[i], err, sizeof(err));
        if (rc < 0 && rc != -PT_EEXIST) return cli_error("cluster start", "cannot create the %s", err);
        rc = pt_auth_key_load(paths[i], &key, err, sizeof(err));
        if (rc < 0) return cli_error("cluster start", "cannot use the %s", err);
    }
    pt_auth_set_process(&key, NULL, NULL); /* paths[0]: the cluster key */
    sodium_memzero(&key, sizeof(key));
    return 0;
}

/*
 * Copy the cluster secret to the per-user key file of the registry's address, so a client on
 * this machine finds it with no flag (cli_client_auth): written to a temporary file (0600, in
 * a directory of mode 0700) and renamed over the old one. Returns 0, or -1 with err filled.
 */
static int key_file_write(struct cluster *c, char *path, size_t cap, char *err, size_t err_cap)
{
    char tmp[4200], buf[PT_AUTH_SECRET_MAX + 1], *slash;
    ssize_t n;
    int in, out = -1, ok;
    if (cli_key_file_path(c->registry, path, cap) != 0) {
        snprintf(err, err_cap, "neither XDG_CONFIG_HOME nor HOME is set");
        return -1;
    }
    /* mkdir -p of the key directory, each level 0700 */
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (slash = strchr(tmp + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = 0;
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
            snprintf(err, err_cap, "cannot create %s: %s", tmp, strerror(errno));
            return -1;
        }
        *slash = '/';
    }
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    in = open(c->secret, O_RDONLY | O_CLOEXEC);
    n = in >= 0 ? read(in, buf, sizeof(buf)) : -1;
    if (in >= 0) close(in);
    if (n > 0) out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ok = out >= 0 && fchmod(out, 0600) == 0 && write(out, buf, (size_t)n) == n && fsync(out) == 0;
    if (out >= 0) close(out);
    sodium_memzero(buf, sizeof(buf));
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, err_cap, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* With --http, every server but the registry serves /metrics on an OS-chosen loopback port
 * (the status page links them): appended at argv[at]; returns the next free slot. */
static int http_args(struct cluster *c, char **argv, int at)
{
    if (c->http) {
        argv[at++] = "--http";
        argv[at++] = "127.0.0.1:0";
    }
    argv[at] = NULL;
    return at;
}

static void raft_args(struct cluster *c, char **argv, int at)
{
    if (c->election[0]) {
        argv[at++] = "--election-timeout-ms";
        argv[at++] = c->election;
    }
    if (c->heartbeat[0]) {
        argv[at++] = "--heartbeat-ms";
        argv[at++] = c->heartbeat;
    }
    if (c->unsafe_no_fsync_check) argv[at++] = "--unsafe-no-fsync-check";
    argv[at] = NULL;
}

/* Start (or start again) a child from its stored command line; its output appends to its log. */
static int start_child(struct child *k)
{
    struct stat st;
    int fd;
    pid_t pid;
    char *const *argv = k->argv;
    fd = open(k->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    k->log_start = fstat(fd, &st) == 0 ? st.st_size : 0;
    pid = fork();
    if (pid < 0) {
        close(fd);
        return -errno;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the whole group; the parent stops us */
        signal(SIGTERM, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1) _exit(1);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        fd = open("/dev/null", O_RDONLY);
        if (fd >= 0) dup2(fd, STDIN_FILENO);
        execv("/proc/self/exe", argv);
        dprintf(STDERR_FILENO, "petrel cluster: cannot run %s: %s\n", argv[1], strerror(errno));
        _exit(127);
    }
    close(fd);
    k->pid = pid;
    k->exited = 0;
    k->restart_at_ms = 0;
    k->started_ms = pt_now_ms();
    return 0;
}

static void child_free(struct child *k)
{
    int i;
    for (i = 0; i < MAX_ARGS && k->argv[i]; i++)
        free(k->argv[i]);
    memset(k->argv, 0, sizeof(k->argv));
}

static int spawn(struct cluster *c, const char *name, char *const argv[])
{
    struct child *k;
    int i, rc;
    if (c->nkids == MAX_CHILDREN) return -PT_EMFILE;
    k = &c->kids[c->nkids];
    memset(k, 0, sizeof(*k));
    snprintf(k->name, sizeof(k->name), "%s", name);
    snprintf(k->log, sizeof(k->log), "%s/logs/%s.log", c->dir, name);
    for (i = 0; argv[i]; i++) {
        if (i == MAX_ARGS || !(k->argv[i] = strdup(argv[i]))) {
            child_free(k);
            return -PT_ENOMEM;
        }
    }
    rc = start_child(k);
    if (rc < 0) {
        child_free(k);
        return rc;
    }
    c->nkids++;
    return 0;
}

/* Schedule every server (not the registry: its address is the cluster's) that exited on its
 * own to start again after its back-off; start those that are due. Returns the milliseconds
 * until the next one is due (-1: none scheduled). */
static long restart_due(struct cluster *c)
{
    uint64_t now = pt_now_ms(), next = 0;
    int i;
    /* A group member's address is fixed: it restarts like any server. */
    for (i = c->registries > 1 ? 0 : 1; i < c->nkids; i++) {
        struct child *k = &c->kids[i];
        if (!k->exited) continue;
        if (!k->restart_at_ms) {
            if (now - k->started_ms >= RESTART_RESET_MS || !k->backoff_ms)
                k->backoff_ms = RESTART_FIRST_MS;
            else
                k->backoff_ms = k->backoff_ms * 2 > RESTART_MAX_MS ? RESTART_MAX_MS
                                                                   : k->backoff_ms * 2;
            k->restart_at_ms = now + k->backoff_ms;
            fprintf(stderr, "petrel cluster: starting %s again in %llu s\n", k->name,
                    (unsigned long long)(k->backoff_ms / 1000));
        } else if (k->restart_at_ms <= now) {
            if (start_child(k) == 0) {
                k->restarts++;
                fprintf(stderr, "petrel cluster: started %s again (restart %u)\n", k->name,
                        k->restarts);
                continue;
            }
            k->restart_at_ms = 0; /* could not fork: back off further */
            continue;
        }
        if (!next || k->restart_at_ms < next) next = k->restart_at_ms;
    }
    return next ? (long)(next > now ? next - now : 0) : -1;
}

/* Find "listening on HOST:PORT" in this run's part of a child's log. */
static int log_line_address(const struct child *k, const char *prefix, char *addr, size_t size)
{
    char line[512];
    FILE *f = fopen(k->log, "r");
    int found = 0;
    if (!f) return 0;
    if (fseeko(f, k->log_start, SEEK_SET) == 0) {
        while (fgets(line, sizeof(line), f)) {
            const char *p = strstr(line, prefix);
            if (p) {
                size_t n;
                p += strlen(prefix);
                n = strcspn(p, " \r\n");
                if (n > 0 && n < size) {
                    memcpy(addr, p, n);
                    addr[n] = '\0';
                    found = 1;
                    break;
                }
            }
        }
    }
    fclose(f);
    return found;
}

static int log_address(const struct child *k, char *addr, size_t size)
{
    return log_line_address(k, "listening on ", addr, size);
}

static void reap(struct cluster *c, int report)
{
    int i, status;
    for (i = 0; i < c->nkids; i++) {
        struct child *k = &c->kids[i];
        if (k->exited) continue;
        if (waitpid(k->pid, &status, WNOHANG) == k->pid) {
            k->exited = 1;
            if (report) {
                if (WIFSIGNALED(status))
                    cli_error("cluster", "%s was killed by signal %d (log: %s)", k->name,
                              WTERMSIG(status), k->log);
                else
                    cli_error("cluster", "%s exited with status %d (log: %s)", k->name,
                              WEXITSTATUS(status), k->log);
            }
        }
    }
}

static int alive(struct cluster *c)
{
    int i, n = 0;
    for (i = 0; i < c->nkids; i++)
        n += !c->kids[i].exited;
    return n;
}

static void stop_all(struct cluster *c)
{
    int i, waited;
    int nreg = c->registries < (unsigned)c->nkids ? (int)c->registries : c->nkids;
    /* Clients of the registry first, the registry (children 0..registries-1) last. */
    for (i = c->nkids - 1; i >= nreg; i--)
        if (!c->kids[i].exited) kill(c->kids[i].pid, SIGTERM);
    for (waited = 0; waited < STOP_GRACE_MS && alive(c) > nreg; waited += 50) {
        sleep_ms(50);
        reap(c, 0);
    }
    for (i = 0; i < nreg; i++)
        if (!c->kids[i].exited) kill(c->kids[i].pid, SIGTERM);
    for (waited = 0; waited < STOP_GRACE_MS && alive(c) > 0; waited += 50) {
        sleep_ms(50);
        reap(c, 0);
    }
    for (i = 0; i < c->nkids; i++) {
        if (!c->kids[i].exited) {
            kill(c->kids[i].pid, SIGKILL);
            waitpid(c->kids[i].pid, NULL, 0);
            c->kids[i].exited = 1;
        }
    }
}

static int spawn_servers(struct cluster *c)
{
    char dir[PATH_MAX], name[64], n1[24], n2[24], nr[24], ns[24], domain[32];
    uint64_t s, r, b;
    snprintf(nr, sizeof(nr), "%llu", (unsigned long long)c->replicas);
    snprintf(ns, sizeof(ns), "%llu", (unsigned long long)c->shards);
    /* Block services first: a shard learns them at its heartbeat, and should find them all. */
    for (b = 0; b < c->blocks; b++) {
        snprintf(dir, sizeof(dir), "%s/blocks-%llu", c->dir, (unsigned long long)b);
        snprintf(name, sizeof(name), "blocks-%llu", (unsigned long long)b);
        snprintf(domain, sizeof(domain), "local-%llu", (unsigned long long)b);
        if (make_dir(dir) < 0) return cli_error("cluster", "cannot create '%s'", dir);
        {
            char *argv[MAX_ARGS + 1] = {"petrel", "blocks",           "--registry", c->registry, "--dir",
                              dir,      "--failure-domain", domain,       NULL};
            http_args(c, argv, secret_args(c, argv, 8));
            if (spawn(c, name, argv) < 0) return cli_error("cluster", "cannot start %s", name);
        }
    }
    for (r = 0; r < c->replicas && cli_has_command("cdc"); r++) {
        snprintf(dir, sizeof(dir), "%s/cdc/replica-%llu", c->dir, (unsigned long long)r);
        snprintf(name, sizeof(name), "cdc-%llu", (unsigned long long)r);
        snprintf(n1, sizeof(n1), "%llu", (unsigned long long)r);
        if (make_dir(dir) < 0) return cli_error("cluster", "cannot create '%s'", dir);
        {
            char *argv[MAX_ARGS + 1] = {"petrel", "cdc",        "--registry", c->registry, "--replica",
                              n1,       "--replicas", nr,           "--shards",  ns,
                              "--dir",  dir,          NULL};
            raft_args(c, argv, http_args(c, argv, secret_args(c, argv, 12)));
            if (spawn(c, name, argv) < 0) return cli_error("cluster", "cannot start %s", name);
        }
    }
    for (s = 0; s < c->shards; s++) {
        for (r = 0; r < c->replicas; r++) {
            snprintf(dir, sizeof(dir), "%s/shard-%llu/replica-%llu", c->dir, (unsigned long long)s,
                     (unsigned long long)r);
            snprintf(name, sizeof(name), "shard-%llu-replica-%llu", (unsigned long long)s,
                     (unsigned long long)r);
            snprintf(n1, sizeof(n1), "%llu", (unsigned long long)s);
            snprintf(n2, sizeof(n2), "%llu", (unsigned long long)r);
            if (make_dir(dir) < 0) return cli_error("cluster", "cannot create '%s'", dir);
            {
                char *argv[MAX_ARGS + 1] = {"petrel", "shard",     "--registry", c->registry,  "--shard",
                                  n1,       "--replica", n2,           "--replicas", nr,
                                  "--dir",  dir,         NULL};
                raft_args(c, argv, http_args(c, argv, secret_args(c, argv, 12)));
                if (spawn(c, name, argv) < 0) return cli_error("cluster", "cannot start %s", name);
            }
        }
    }
    return 0;
}

/* Whether the registry lists every service we started, with a leader for every shard (and
 * the CDC): then a client's first call finds the whole cluster. */
/*
 * Whether shard s answers queries (its leader has applied its log: a leader still catching
 * up answers PT_EAGAIN, a follower PT_ENOTLEADER). A STAT of an inode the shard may not
 * have: any answer of the operation itself (PT_ENOENT included) means it serves.
 */
static int shard_serves(struct pt_router *r, unsigned s)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    int rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_STAT;
    q.id = PT_INODE_MAKE(s, 1);
    rc = pt_router_shard(r, s, &q, &rep, NULL);
    rc = rc == 0 || (rep.remote && rc != -PT_EAGAIN && rc != -PT_ENOTLEADER);
    pt_reply_free(&rep);
    return rc;
}

/*
 * The cluster can take requests: every service registered *in this run* (a heartbeat after
 * the first time everything was listed: the registry keeps the last run's entries, leader
 * flags included, with their addresses wiped), with an address, every shard and the CDC with
 * a leader, and every shard's leader answering queries. Printing the address earlier made a
 * first request wait on a shard still rebuilding its store, or on block services not yet
 * back, until the client's retry budget ran out.
 */
static int cluster_ready(struct cluster *c, uint64_t *since_ms, uint64_t *blocks_ms)
{
    struct pt_call_opts opts = {1000, 1, 0};
    struct pt_reg_replica *shards = NULL, *cdc = NULL;
    struct pt_reg_blocks *blocks = NULL;
    size_t ns = 0, nc = 0, nb = 0, i, live_blocks = 0;
    uint8_t led[256] = {0};
    uint64_t leaders = 0, cdc_leader = 0, now = pt_now_ms();
    int ready = 0;
    if (pt_reg_list_shards(c->registry, PT_REG_ALL_SHARDS, &shards, &ns, &opts) == 0 &&
        pt_reg_list_cdc(c->registry, &cdc, &nc, &opts) == 0 &&
        pt_reg_list_blocks(c->registry, &blocks, &nb, &opts) == 0) {
        if (!*since_ms) *since_ms = now;
        /* Heard since we first looked: registered by this run's process. */
#define FRESH(x) ((x).addr[0] && !(x).stale && now - *since_ms > (x).age_ms)
        for (i = 0; i < ns; i++)
            if (FRESH(shards[i]) && shards[i].leader && !led[shards[i].shard]) {
                led[shards[i].shard] = 1;
                leaders++;
            }
        for (i = 0; i < nc; i++)
            cdc_leader |= FRESH(cdc[i]) && cdc[i].leader;
        for (i = 0; i < nb; i++)
            live_blocks += FRESH(blocks[i]);
#undef FRESH
        ready = leaders == c->shards && ns == c->shards * c->replicas &&
                live_blocks >= c->blocks && (!cli_has_command("cdc") || cdc_leader);
        /* Shards learn block services at their heartbeat: wait for one heartbeat of every
         * shard replica after every block service was back. */
        if (live_blocks >= c->blocks && !*blocks_ms) *blocks_ms = now;
        for (i = 0; ready && i < ns; i++)
            if (now - *blocks_ms <= shards[i].age_ms) ready = 0;
    }
    free(shards);
    free(cdc);
    free(blocks);
    if (ready) {
        /* A leader answering a query has applied its log (it answers PT_EAGAIN before). */
        struct pt_router r;
        unsigned s;
        pt_router_init(&r, c->registry, 1, 1000, (uint64_t)now | 1);
        for (s = 0; ready && s < c->shards; s++)
            ready = shard_serves(&r, s);
    }
    return ready;
}

/* Whether something listens on 127.0.0.1:port already (so --port fails before anything starts). */
static int port_taken(uint16_t port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), taken, one = 1;
    if (fd < 0) return 0; /* the registry will say it */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* as the registry binds */
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    taken = bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

static int cluster_start(int argc, char **argv)
{
    struct cluster *c;
    const char *dir = NULL;
    uint64_t shards = 0, replicas = 0, blocks = 0, s = 4, r = 1, b = 3, election = 0, heartbeat = 0;
    uint64_t port = 0, registries = 0, g = 1;
    const char *http = NULL;
    char listen[32];
    int unsafe_no_fsync_check = 0;
    char path[PATH_MAX + 64], real[PATH_MAX], key_file[PATH_MAX] = "";
    int n, rc, lock_fd, waited, status = 0;
    uint64_t since = 0, blocks_since = 0;
    struct sigaction sa;
    sigset_t mask, old;
    const struct cli_option options[] = {
        {'d', "dir", CLI_STRING, &dir, "DIR", "where data and logs live (created if missing)"},
        {'p', "port", CLI_UINT, &port, "N",
         "the registry's port: the cluster is petrel://127.0.0.1:N (default: one the OS picks)"},
        {0, "shards", CLI_UINT, &shards, "N", "metadata shards (default 4; 1-256)"},
        {0, "registries", CLI_UINT, &registries, "G",
         "registry processes: 1, or a replicated group of 3 or 5 (default 1)"},
        {0, "replicas", CLI_UINT, &replicas, "R",
         "replicas per shard and of the CDC (1, 3 or 5; default 1)"},
        {0, "block-services", CLI_UINT, &blocks, "B",
         "block services, each its own failure domain (default 3)"},
        {0, "election-timeout-ms", CLI_UINT, &election, "MS",
         "Raft election timeout of shards and CDC (default 250)"},
        {0, "heartbeat-ms", CLI_UINT, &heartbeat, "MS", "Raft heartbeat interval (default 50)"},
        {0, "unsafe-no-fsync-check", CLI_FLAG, &unsafe_no_fsync_check, NULL,
         "let shards and CDC run on a filesystem known not to honour fsync (FUSE)"},
        {0, "http", CLI_STRING, &http, "HOST:PORT",
         "the registry's status page here, /metrics on every server (unauthenticated)"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL},
    };
    const struct cli_spec spec = {
        "cluster start",
        "--dir DIR [--port N] [--shards N] [--replicas R] [--block-services B]\n"
        "                    [--registries G]\n"
        "                    [--election-timeout-ms MS] [--heartbeat-ms MS] "
        "[--unsafe-no-fsync-check]\n"
        "                    [--http HOST:PORT]",
        "Run a whole Petrel cluster on this machine (loopback): registry, CDC, shards and\n"
        "block services as child processes, data and logs under DIR. Prints the registry's\n"
        "location (petrel://127.0.0.1:PORT, PORT from --port or the OS) once it serves. Ctrl-C or SIGTERM stops it all;\n"
        "starting again on the same DIR resumes with the same layout and data.",
        options,
        0,
        0};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    if (!dir) return cli_error("cluster start", "no data directory given (use --dir DIR)");
    if (!cli_has_command("registry") || !cli_has_command("shard") || !cli_has_command("blocks"))
        return cli_error("cluster start",
                         "this build has no cluster servers (petrel registry, shard, blocks)");
    rc = make_dir(dir);
    if (rc < 0 || !realpath(dir, real))
        return cli_error("cluster start", "cannot create '%s': %s", dir,
                         cli_strerror(rc ? rc : -errno));
    rc = layout_load(real, &s, &r, &b);
    if (rc < 0)
        return cli_error("cluster start", "cannot read %s/cluster.conf: %s", real,
                         cli_strerror(rc));
    if (rc == 1) {
        g = layout_registries > 1 ? layout_registries : 1;
        if ((shards && shards != s) || (replicas && replicas != r) || (blocks && blocks != b) ||
            (registries && registries != g))
            return cli_error("cluster start",
                             "'%s' holds a cluster of %llu shards x %llu replicas, %llu block "
                             "services and %llu registr%s; start it with that layout (or use a "
                             "new --dir)",
                             dir, (unsigned long long)s, (unsigned long long)r,
                             (unsigned long long)b, (unsigned long long)g, g == 1 ? "y" : "ies");
    } else {
        if (shards) s = shards;
        if (replicas) r = replicas;
        if (blocks) b = blocks;
        if (registries) g = registries;
    }
    if (g != 1 && g != 3 && g != 5)
        return cli_error("cluster start", "bad --registries %llu (1, 3 or 5)",
                         (unsigned long long)g);
    if (rc == 0 && g > 1) {
        /* The group's ports: --port and the next ones, or OS-chosen, kept in cluster.conf. */
        unsigned i;
        layout_registries = g;
        for (i = 0; i < g; i++) {
            struct sockaddr_in a;
            socklen_t alen = sizeof(a);
            int fd;
            if (port) {
                layout_ports[i] = port + i;
                continue;
            }
            fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            memset(&a, 0, sizeof(a));
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
                getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
                if (fd >= 0) close(fd);
                return cli_error("cluster start", "cannot find a free port on 127.0.0.1");
            }
            close(fd);
            layout_ports[i] = ntohs(a.sin_port);
        }
    }
    if (g > 1) {
        unsigned i;
        for (i = 0; i < g; i++)
            if (layout_ports[i] == 0 || layout_ports[i] > 65535)
                return cli_error("cluster start", "%s/cluster.conf: no port for registry %u", real,
                                 i);
    }
    if (s < 1 || s > 256)
        return cli_error("cluster start", "bad --shards %llu (1-256)", (unsigned long long)s);
    if (r != 1 && r != 3 && r != 5)
        return cli_error("cluster start", "bad --replicas %llu (1, 3 or 5)", (unsigned long long)r);
    if (port > 65535)
        return cli_error("cluster start", "bad --port %llu (1-65535)", (unsigned long long)port);
    snprintf(listen, sizeof(listen), "127.0.0.1:%llu", (unsigned long long)port);
    if (port && g == 1 && port_taken((uint16_t)port))
        return cli_error("cluster start", "port %llu is in use on 127.0.0.1 (choose another --port)",
                         (unsigned long long)port);
    if (b < 1 || b > 64)
        return cli_error("cluster start", "bad --block-services %llu (1-64)",
                         (unsigned long long)b);
    snprintf(path, sizeof(path), "%s/cluster.lock", real);
    lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0)
        return cli_error("cluster start", "a cluster is already running on '%s'", dir);
    if (rc == 0 && layout_save(real, s, r, b) < 0) {
        close(lock_fd);
        return cli_error("cluster start", "cannot write %s/cluster.conf", real);
    }
    snprintf(path, sizeof(path), "%s/logs", real);
    if (make_dir(path) < 0) {
        close(lock_fd);
        return cli_error("cluster start", "cannot create '%s'", path);
    }

    c = calloc(1, sizeof(*c));
    if (!c) return cli_error("cluster start", "out of memory");
    c->dir = real;
    if (election) snprintf(c->election, sizeof(c->election), "%llu", (unsigned long long)election);
    if (heartbeat)
        snprintf(c->heartbeat, sizeof(c->heartbeat), "%llu", (unsigned long long)heartbeat);
    c->unsafe_no_fsync_check = unsafe_no_fsync_check;
    c->http = http;
    c->shards = s;
    c->replicas = r;
    c->blocks = b;
    c->registries = (unsigned)g;
    if (secrets_prepare(c)) {
        close(lock_fd);
        free(c);
        return 1;
    }

    /* Signals: block them, and wait for them in sigsuspend (no race with the checks). */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_child;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, &old);

    if (g > 1) {
        /* A replicated group: members on their fixed ports, the location lists them all. */
        unsigned i;
        c->registry[0] = 0;
        for (i = 0; i < g; i++)
            snprintf(c->registry + strlen(c->registry), sizeof(c->registry) - strlen(c->registry),
                     "%s127.0.0.1:%llu", i ? "," : "", (unsigned long long)layout_ports[i]);
        for (i = 0; i < g; i++) {
            char idx[16], name[32];
            char *rargv[20] = {"petrel",  "registry",  "--group", c->registry, "--replica",
                               idx,       "--dir",     path,      NULL};
            int at;
            snprintf(idx, sizeof(idx), "%u", i);
            snprintf(name, sizeof(name), "registry-%u", i);
            snprintf(path, sizeof(path), "%s/registry-%u", real, i);
            if (make_dir(path) < 0) {
                status = cli_error("cluster start", "cannot create '%s'", path);
                goto out;
            }
            at = secret_args(c, rargv, 8);
            if (c->election[0]) {
                rargv[at++] = "--election-timeout-ms";
                rargv[at++] = c->election;
            }
            if (c->heartbeat[0]) {
                rargv[at++] = "--heartbeat-ms";
                rargv[at++] = c->heartbeat;
            }
            /* Every member serves the status page: member 0 on --http, the others on
             * OS-chosen loopback ports (their logs' "http on" lines). */
            if (http) {
                rargv[at++] = "--http";
                rargv[at++] = i == 0 ? (char *)http : "127.0.0.1:0";
            }
            rargv[at] = NULL;
            if (spawn(c, name, rargv) < 0) {
                status = cli_error("cluster start", "cannot start %s", name);
                goto out;
            }
        }
        for (i = 0; i < g; i++) {
            char got[64];
            for (waited = 0; !log_address(&c->kids[i], got, sizeof(got)); waited += 50) {
                reap(c, 0);
                if (c->kids[i].exited || waited >= START_TIMEOUT_MS || stop_requested) {
                    status = cli_error("cluster start", "registry %u did not start (log: %s)", i,
                                       c->kids[i].log);
                    goto out;
                }
                sigprocmask(SIG_SETMASK, &old, NULL);
                sleep_ms(50);
                sigprocmask(SIG_BLOCK, &mask, NULL);
            }
        }
    } else {
        snprintf(path, sizeof(path), "%s/registry", real);
        if (make_dir(path) < 0) {
            status = cli_error("cluster start", "cannot create '%s'", path);
            goto out;
        }
        {
            char *rargv[14] = {
                "petrel", "registry", "--dir", path, "--listen", listen, "--using-dynamic-ports", NULL};
            int at = secret_args(c, rargv, 7);
            if (http) {
                rargv[at++] = "--http";
                rargv[at++] = (char *)http;
                rargv[at] = NULL;
            }
            if (spawn(c, "registry", rargv) < 0) {
                status = cli_error("cluster start", "cannot start the registry");
                goto out;
            }
        }
        for (waited = 0; !log_address(&c->kids[0], c->registry, sizeof(c->registry)); waited += 50) {
            reap(c, 0);
            if (c->kids[0].exited || waited >= START_TIMEOUT_MS || stop_requested) {
                status =
                    cli_error("cluster start", "the registry did not start (log: %s)", c->kids[0].log);
                goto out;
            }
            sigprocmask(SIG_SETMASK, &old, NULL);
            sleep_ms(50);
            sigprocmask(SIG_BLOCK, &mask, NULL);
        }
    }
    {
        char err[PATH_MAX + 128];
        if (key_file_write(c, key_file, sizeof(key_file), err, sizeof(err)) != 0) {
            key_file[0] = 0;
            fprintf(stderr,
                    "petrel cluster: %s; clients need --secret %s (or PETREL_SECRET)\n", err,
                    c->secret);
        }
    }
    if (spawn_servers(c)) {
        status = 1;
        goto out;
    }
    /* Serve the address once the cluster can take requests (or say why not). */
    for (waited = 0; !cluster_ready(c, &since, &blocks_since); waited += 100) {
        reap(c, 1);
        if (stop_requested) goto out;
        if (waited >= READY_TIMEOUT_MS) {
            fprintf(stderr,
                    "petrel cluster: not every service registered with a leader within "
                    "%d s; serving anyway (see %s/logs)\n",
                    READY_TIMEOUT_MS / 1000, real);
            break;
        }
        sigprocmask(SIG_SETMASK, &old, NULL);
        sleep_ms(100);
        sigprocmask(SIG_BLOCK, &mask, NULL);
    }
    printf("petrel://%s\n", c->registry);
    fflush(stdout);
    if (http && log_line_address(&c->kids[0], "http on ", c->http_addr, sizeof(c->http_addr)))
        fprintf(stderr, "petrel cluster: status page http://%s/ (unauthenticated: a trusted "
                        "address only)\n", c->http_addr);
    if (!cli_has_command("cdc"))
        fprintf(stderr, "petrel cluster: this build has no CDC (petrel cdc): mkdir, rmdir and "
                        "renames across directories will fail\n");
    fprintf(stderr,
            "petrel cluster: %llu shard%s x %llu replica%s, CDC x %llu, %llu block service%s; "
            "data and logs in %s; Ctrl-C stops\n",
            (unsigned long long)s, s == 1 ? "" : "s", (unsigned long long)r, r == 1 ? "" : "s",
            cli_has_command("cdc") ? (unsigned long long)r : 0ULL, (unsigned long long)b,
            b == 1 ? "" : "s", real);
    fprintf(stderr,
            "petrel cluster: every frame is authenticated with %s (read-only clients: %s)%s%s\n",
            c->secret, c->read_only_secret, key_file[0] ? "; clients of this user find it in " : "",
            key_file);
    while (!stop_requested) {
        long wait_ms = restart_due(c);
        if (wait_ms < 0) {
            sigsuspend(&old);
        } else {
            /* sleep until the next restart is due, or a signal (atomically unblocked) */
            struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};
            pselect(0, NULL, NULL, NULL, &ts, &old);
        }
        if (child_changed) {
            child_changed = 0;
            reap(c, 1);
            if (c->registries <= 1 && c->kids[0].exited) {
                status = cli_error("cluster start", "the registry stopped; stopping the cluster");
                break;
            }
        }
    }
out:
    stop_all(c);
    for (n = 0; n < c->nkids; n++)
        child_free(&c->kids[n]);
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(lock_fd);
    free(c);
    return status;
}

/* petrel cluster init --secret FILE: a new secret (32 random bytes, mode 0600). */
static int cluster_init(int argc, char **argv)
{
    char err[PATH_MAX + 128];
    int n;
    const struct cli_option options[] = {{0, NULL, CLI_FLAG, NULL, NULL, NULL}};
    const struct cli_spec spec = {
        "cluster init",
        "--secret FILE",
        "Make a new cluster secret: 32 random bytes (64 hex digits) in FILE, mode 0600. Hand\n"
        "it to every server and client with --secret FILE; a second one made the same way is\n"
        "a read-only key (servers: --read-only-secret FILE). An existing FILE is never\n"
        "overwritten.",
        options,
        0,
        0};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    if (!cli_secret_path)
        return cli_error("cluster init", "--secret FILE is required (where to write it)");
    if (pt_auth_secret_create(cli_secret_path, err, sizeof(err)) < 0)
        return cli_error("cluster init", "cannot create the %s", err);
    printf("%s\n", cli_secret_path);
    return 0;
}

int cmd_cluster(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "start") == 0) return cluster_start(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "init") == 0) return cluster_init(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "up") == 0 || strcmp(argv[1], "down") == 0))
        return cluster_deploy(argc - 1, argv + 1);
    /* status FILE: a deployment file (a regular file); status petrel://...: a location */
    if (argc >= 3 && strcmp(argv[1], "status") == 0 && strncmp(argv[2], "petrel://", 9) != 0 &&
        argv[2][0] != '-') {
        struct stat st;
        if (stat(argv[2], &st) == 0 && S_ISREG(st.st_mode))
            return cluster_deploy(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "status") == 0) return cluster_status(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: petrel cluster start --dir DIR [--port N] [--shards N] [--replicas R] "
               "[--block-services B]\n"
               "       petrel cluster status petrel://HOST:PORT\n"
               "       petrel cluster up|down|status DEPLOYMENT-FILE [--ssh PROGRAM]\n"
               "       petrel cluster init --secret FILE\n\n"
               "Run a whole cluster on this machine, or show a cluster's services, leaders and\n"
               "capacity. 'petrel cluster start --help' and 'petrel cluster status --help' say "
               "more.\n");
        return 0;
    }
    if (argc < 2)
        return cli_error("cluster",
                         "missing subcommand: start, status, init, up or down (petrel cluster "
                         "--help)");
    return cli_error("cluster", "unknown subcommand '%s': start, status, init, up or down",
                     argv[1]);
}
