/*
 * Process-level cluster harness (see proc_cluster.h).
 */
#include "proc_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster/client/registry_client.h"
#include "cluster/proto/auth.h"
#include "cluster/proto/registry_msg.h"
#include "cluster/replica/node.h"
#include "petrel/common.h"
#include "test.h"

uint64_t pc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *petrel_bin(void)
{
    const char *b = getenv("PETREL_BIN");
    return b && *b ? b : "build/petrel";
}

static void spawn(struct pc_cluster *c, const char *name, char *const args[])
{
    struct pc_proc *p;
    char *argv[40]; /* the binary, up to 32 arguments, 6 added below, NULL */
    unsigned i;
    pid_t parent = getpid();
    CHECK(c->nprocs < PC_MAX_PROCS);
    p = &c->procs[c->nprocs++];
    snprintf(p->name, sizeof(p->name), "%s", name);
    {
        char tmp[sizeof(p->log)];
        snprintf(tmp, sizeof(tmp), "%s/%s.log", c->root, name);
        memcpy(p->log, tmp, sizeof(tmp));
    }
    argv[0] = (char *)petrel_bin();
    for (i = 0; args[i]; i++) {
        CHECK(i < 32);
        argv[i + 1] = args[i];
    }
    if (c->secret[0]) {
        argv[++i] = "--secret";
        argv[++i] = c->secret;
        argv[++i] = "--read-only-secret";
        argv[++i] = c->ro_secret;
    }
    if (c->http) {
        argv[++i] = "--http";
        argv[++i] = "127.0.0.1:0";
    }
    argv[i + 1] = NULL;
    /* Keep the arguments for pc_restart_one: NUL-separated, double NUL at the end. */
    {
        size_t pos = 0, l;
        memset(p->argv_buf, 0, sizeof(p->argv_buf));
        for (i = 0; args[i]; i++) {
            l = strlen(args[i]);
            CHECK(pos + l + 2 < sizeof(p->argv_buf));
            memcpy(p->argv_buf + pos, args[i], l);
            pos += l + 1;
        }
    }
    p->pid = fork();
    CHECK(p->pid >= 0);
    if (p->pid == 0) {
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        /* Clusters with secrets keep warnings: the tests read the refusal lines. */
        if (!c->secret[0]) setenv("PETREL_QUIET", "1", 1);
        execv(argv[0], argv);
        _exit(127);
    }
}

static int start_registry_members; /* the next start_all_auth starts a group of this many */

/* A registry group on loopback ports free now (each member binds its own next). */
static void start_registry_group(struct pc_cluster *c)
{
    char dirs[PT_REG_MAX_REPLICAS][600], names[PT_REG_MAX_REPLICAS][24], idx[PT_REG_MAX_REPLICAS][12];
    char line[700], got[64];
    unsigned i;
    uint64_t start = pc_now_ms();
    c->registry[0] = 0;
    for (i = 0; i < c->registries; i++) {
        struct sockaddr_in a;
        socklen_t alen = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
        CHECK(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
        close(fd);
        snprintf(c->registry + strlen(c->registry), sizeof(c->registry) - strlen(c->registry),
                 "%s127.0.0.1:%u", i ? "," : "", ntohs(a.sin_port));
    }
    c->reg_proc = c->nprocs;
    for (i = 0; i < c->registries; i++) {
        char *args[] = {"registry", "--dir", dirs[i], "--group", c->registry, "--replica", idx[i],
                        "--stale-after", "3", NULL};
        snprintf(dirs[i], sizeof(dirs[i]), "%s/registry-%u", c->root, i);
        snprintf(names[i], sizeof(names[i]), "registry-%u", i);
        snprintf(idx[i], sizeof(idx[i]), "%u", i);
        snprintf(line, sizeof(line), "%s/%s.log", c->root, names[i]);
        unlink(line);
        spawn(c, names[i], args);
    }
    for (i = 0; i < c->registries; i++) {
        struct pc_proc *p = &c->procs[c->reg_proc + i];
        got[0] = 0;
        while (!got[0] && pc_now_ms() - start < PC_WAIT_MS) {
            FILE *f = fopen(p->log, "r");
            if (f) {
                while (fgets(line, sizeof(line), f))
                    if (sscanf(line, "listening on %63s", got) == 1) break;
                /* "http on" follows "listening on" in the same flush */
                while (got[0] && c->http && fgets(line, sizeof(line), f))
                    if (sscanf(line, "http on %63s", c->registry_https[i]) == 1) break;
                fclose(f);
            }
            if (!got[0]) usleep(20000);
        }
        CHECK_MSG(got[0], "registry member %u did not start (see %s)", i, p->log);
        CHECK_MSG(!c->http || c->registry_https[i][0],
                  "registry member %u printed no 'http on' line (see %s)", i, p->log);
    }
}

int pc_registry_leader(struct pc_cluster *c)
{
    char addrs[PT_REG_MAX_REPLICAS][PT_REG_ADDR_MAX];
    struct pt_call_opts one = {500, 1, 0};
    struct pt_reg_info info;
    int n = pt_reg_location_split(c->registry, addrs, PT_REG_MAX_REPLICAS), i;
    for (i = 0; i < n; i++)
        if (pt_reg_info(addrs[i], &info, &one) == 0 && info.serving) return i;
    return -1;
}

static void start_registry(struct pc_cluster *c, int dynamic)
{
    char dir[600], line[700];
    char *args[] = {"registry",    "--dir",         dir, "--listen",
                    "127.0.0.1:0", "--stale-after", "3", dynamic ? "--using-dynamic-ports" : NULL,
                    NULL};
    uint64_t start = pc_now_ms();
    struct pc_proc *p;
    snprintf(dir, sizeof(dir), "%s/registry", c->root);
    snprintf(line, sizeof(line), "%s/registry.log", c->root);
    unlink(line); /* the address is read from this log: drop a previous run's line */
    c->reg_proc = c->nprocs;
    spawn(c, "registry", args);
    p = &c->procs[c->reg_proc];
    c->registry[0] = 0;
    while (!c->registry[0] && pc_now_ms() - start < PC_WAIT_MS) {
        FILE *f = fopen(p->log, "r");
        if (f) {
            while (fgets(line, sizeof(line), f))
                if (sscanf(line, "listening on %63s", c->registry) == 1) break;
            /* "http on" follows "listening on" in the same flush */
            while (c->registry[0] && c->http && fgets(line, sizeof(line), f))
                if (sscanf(line, "http on %63s", c->registry_http) == 1) break;
            fclose(f);
        }
        if (!c->registry[0]) usleep(20000);
    }
    CHECK_MSG(c->registry[0], "the registry did not start (see %s)", p->log);
    CHECK_MSG(!c->http || c->registry_http[0], "the registry printed no 'http on' line (see %s)",
              p->log);
}

static void start_servers(struct pc_cluster *c)
{
    unsigned s, r, b;
    char name[48];
    for (b = 0; b < c->blocks; b++) {
        char dir[600], dom[32];
        char *args[] = {"blocks", "--registry",       c->registry, "--dir",
                        dir,      "--failure-domain", dom,         NULL,
                        NULL,     NULL};
        if (c->scrub_rate) {
            args[7] = "--scrub-rate";
            args[8] = (char *)c->scrub_rate;
        }
        snprintf(dir, sizeof(dir), "%s/blocks-%u", c->root, b);
        snprintf(dom, sizeof(dom), "rack%u", b);
        snprintf(name, sizeof(name), "blocks-%u", b);
        spawn(c, name, args);
    }
    for (s = 0; s < c->shards; s++)
        for (r = 0; r < c->replicas; r++) {
            char dir[600], sh[16], rep[16], k[16], snap[16], ret[16];
            char *args[] = {"shard", "--registry",  c->registry, "--shard",
                            sh,      "--replica",   rep,         "--replicas",
                            k,       "--dir",       dir,         "--snapshot-entries",
                            snap,    "--retention", ret,         NULL,
                            NULL,    NULL,          NULL,        NULL,
                            NULL};
            unsigned na = 15;
            if (c->repair_stale) {
                args[na++] = "--repair-stale";
                args[na++] = (char *)c->repair_stale;
            }
            if (c->no_repair) args[na++] = "--no-repair";
            if (c->placement_grace) {
                args[na++] = "--placement-grace";
                args[na++] = (char *)c->placement_grace;
            }
            snprintf(snap, sizeof(snap), "%u", c->snapshot_entries ? c->snapshot_entries : 4096);
            snprintf(ret, sizeof(ret), "%u", c->retention_s ? c->retention_s : 86400);
            snprintf(dir, sizeof(dir), "%s/shard-%u-%u", c->root, s, r);
            snprintf(sh, sizeof(sh), "%u", s);
            snprintf(rep, sizeof(rep), "%u", r);
            snprintf(k, sizeof(k), "%u", c->replicas);
            snprintf(name, sizeof(name), "shard-%u-%u", s, r);
            spawn(c, name, args);
        }
    if (c->with_cdc)
        for (r = 0; r < 3; r++) {
            char dir[600], rep[16], sh[16];
            char *args[] = {"cdc", "--registry", c->registry, "--replica", rep, "--replicas",
                            "3",   "--shards",   sh,          "--dir",     dir, NULL};
            snprintf(dir, sizeof(dir), "%s/cdc-%u", c->root, r);
            snprintf(rep, sizeof(rep), "%u", r);
            snprintf(sh, sizeof(sh), "%u", c->shards);
            snprintf(name, sizeof(name), "cdc-%u", r);
            spawn(c, name, args);
        }
}

struct petrel_client *pc_client(struct pc_cluster *c, uint32_t budget_ms)
{
    struct petrel_client_config cfg;
    struct petrel_client *cl;
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = c->registry;
    cfg.retry_budget_ms = budget_ms;
    cfg.attempt_timeout_ms = 2000;
    cfg.seed = test_seed() + 1;
    CHECK_OK(petrel_client_open(&cl, &cfg));
    return cl;
}

static int count_entry(void *ctx, const struct petrel_dirent *e)
{
    (void)e;
    (*(unsigned *)ctx)++;
    return 0;
}

/* Ready = the root lists, and the registry knows every block service. */
/* Whether every shard's leader heartbeated (starting a discovery round, which lists the block
 * services) after `since`: then the leaders know the block services the registry had then. */
static int shards_heard_since(struct pc_cluster *c, uint64_t since)
{
    struct pt_reg_replica *v = NULL;
    size_t n = 0, i;
    unsigned fresh_leaders = 0;
    struct pt_call_opts o = {.timeout_ms = 500, .retry_budget_ms = 1};
    if (pt_reg_list_shards(c->registry, PT_REG_ALL_SHARDS, &v, &n, &o) != 0) return 0;
    for (i = 0; i < n; i++)
        if (v[i].leader && !v[i].stale && pc_now_ms() - since > v[i].age_ms) fresh_leaders++;
    free(v);
    return fresh_leaders >= c->shards;
}

uint64_t pc_wait_serving(struct pc_cluster *c, unsigned timeout_ms)
{
    uint64_t start = pc_now_ms(), blocks_since = 0;
    struct petrel_client *cl = pc_client(c, 1000);
    int rc = -1;
    while (pc_now_ms() - start < timeout_ms) {
        unsigned n = 0;
        struct pt_reg_blocks *v = NULL;
        size_t nb = 0, live = 0, i;
        struct pt_call_opts o = {.timeout_ms = 500, .retry_budget_ms = 1};
        rc = petrel_client_list(cl, "/", count_entry, &n);
        if (rc == 0 && pt_reg_list_blocks(c->registry, &v, &nb, &o) == 0) {
            for (i = 0; i < nb; i++)
                live += v[i].addr[0] && !v[i].stale;
            free(v);
            /* Leaders may be elected before their discovery saw the block services: wait for
             * a round of every shard replica after all block services were live. */
            if (live >= c->blocks && !blocks_since) blocks_since = pc_now_ms();
            if (live >= c->blocks && shards_heard_since(c, blocks_since)) break;
        }
        rc = -1;
        usleep(50000);
    }
    petrel_client_close(cl);
    CHECK_MSG(rc == 0, "the cluster did not start serving within %u ms (logs in %s)", timeout_ms,
              c->root);
    return pc_now_ms() - start;
}

static void start_all_auth(struct pc_cluster *c, unsigned shards, unsigned replicas,
                           unsigned blocks, int with_cdc, unsigned snapshot_entries,
                           unsigned retention_s, int auth, const char *scrub_rate,
                           const char *repair_stale);
static int start_with_http; /* the next start_all_auth passes --http to every server */
static int start_no_repair; /* the next start_all_auth passes --no-repair to every shard */
static const char *start_placement_grace; /* the next start_all_auth: --placement-grace */

static void start_all(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
                      int with_cdc, unsigned snapshot_entries, unsigned retention_s)
{
    start_all_auth(c, shards, replicas, blocks, with_cdc, snapshot_entries, retention_s, 0, NULL,
                   NULL);
}

static void start_all_auth(struct pc_cluster *c, unsigned shards, unsigned replicas,
                           unsigned blocks, int with_cdc, unsigned snapshot_entries,
                           unsigned retention_s, int auth, const char *scrub_rate,
                           const char *repair_stale)
{
    memset(c, 0, sizeof(*c));
    c->registries = start_registry_members;
    start_registry_members = 0;
    c->http = start_with_http;
    start_with_http = 0;
    c->no_repair = start_no_repair;
    start_no_repair = 0;
    c->placement_grace = start_placement_grace;
    start_placement_grace = NULL;
    pt_auth_set_process(NULL, NULL, NULL);
    if (auth) {
        struct pt_auth_key key;
        char err[700];
        snprintf(c->secret, sizeof(c->secret), "%s/secret", test_tmpdir());
        snprintf(c->ro_secret, sizeof(c->ro_secret), "%s/read-only-secret", test_tmpdir());
        CHECK_OK(pt_auth_secret_create(c->secret, err, sizeof(err)));
        CHECK_OK(pt_auth_secret_create(c->ro_secret, err, sizeof(err)));
        CHECK_OK(pt_auth_key_load(c->secret, &key, err, sizeof(err)));
        pt_auth_set_process(&key, NULL, NULL);
    }
    c->retention_s = retention_s;
    c->scrub_rate = scrub_rate;
    c->repair_stale = repair_stale;
    snprintf(c->root, sizeof(c->root), "%s", test_tmpdir());
    c->shards = shards;
    c->replicas = replicas;
    c->blocks = blocks;
    c->with_cdc = with_cdc;
    c->snapshot_entries = snapshot_entries;
    if (c->registries)
        start_registry_group(c);
    else
        start_registry(c, 0);
    start_servers(c);
    pc_wait_serving(c, PC_WAIT_MS);
}

void pc_start_registry_group(struct pc_cluster *c, unsigned shards, unsigned replicas,
                             unsigned blocks, int with_cdc, unsigned registries)
{
    start_registry_members = registries;
    start_all(c, shards, replicas, blocks, with_cdc, 0, 0);
}

void pc_start_registry_group_http(struct pc_cluster *c, unsigned shards, unsigned replicas,
                                  unsigned blocks, int with_cdc, unsigned registries)
{
    start_registry_members = registries;
    start_with_http = 1;
    start_all(c, shards, replicas, blocks, with_cdc, 0, 0);
}

void pc_start_scrub(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
                    int with_cdc, const char *scrub_rate, const char *repair_stale)
{
    start_all_auth(c, shards, replicas, blocks, with_cdc, 0, 0, 0, scrub_rate, repair_stale);
}

void pc_start_no_repair(struct pc_cluster *c, unsigned shards, unsigned replicas,
                        unsigned blocks, int with_cdc)
{
    start_no_repair = 1;
    start_all_auth(c, shards, replicas, blocks, with_cdc, 0, 0, 0, NULL, NULL);
}

void pc_start_placement_grace(struct pc_cluster *c, unsigned shards, unsigned replicas,
                              unsigned blocks, int with_cdc, const char *seconds)
{
    start_placement_grace = seconds;
    start_all_auth(c, shards, replicas, blocks, with_cdc, 0, 0, 0, NULL, NULL);
}

void pc_start_http(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
                   int with_cdc)
{
    start_with_http = 1;
    start_all_auth(c, shards, replicas, blocks, with_cdc, 0, 0, 0, NULL, NULL);
}

int pc_find(struct pc_cluster *c, const char *name)
{
    unsigned i;
    for (i = 0; i < c->nprocs; i++)
        if (strcmp(c->procs[i].name, name) == 0) return (int)i;
    return -1;
}

void pc_start_auth(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
                   int with_cdc)
{
    start_all_auth(c, shards, replicas, blocks, with_cdc, 0, 0, 1, NULL, NULL);
}

void pc_start_opts(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
                   int with_cdc, unsigned snapshot_entries)
{
    start_all(c, shards, replicas, blocks, with_cdc, snapshot_entries, 0);
}

void pc_start_retention(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
                        unsigned retention_s)
{
    start_all(c, shards, replicas, blocks, 0, 0, retention_s);
}

void pc_start(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
              int with_cdc)
{
    pc_start_opts(c, shards, replicas, blocks, with_cdc, 0);
}

void pc_stop(struct pc_cluster *c)
{
    unsigned i;
    for (i = 0; i < c->nprocs; i++)
        if (c->procs[i].pid > 0) kill(c->procs[i].pid, SIGKILL);
    for (i = 0; i < c->nprocs; i++)
        if (c->procs[i].pid > 0) waitpid(c->procs[i].pid, NULL, 0);
    c->nprocs = 0;
}

pid_t pc_kill(struct pc_cluster *c, const char *name, int sig)
{
    unsigned i;
    for (i = 0; i < c->nprocs; i++)
        if (c->procs[i].pid > 0 && strcmp(c->procs[i].name, name) == 0) {
            pid_t pid = c->procs[i].pid;
            kill(pid, sig);
            waitpid(pid, NULL, 0);
            c->procs[i].pid = 0;
            return pid;
        }
    test_fail(__FILE__, __LINE__, "no process named %s", name);
}

void pc_restart_one(struct pc_cluster *c, const char *name)
{
    unsigned i;
    for (i = 0; i < c->nprocs; i++)
        if (c->procs[i].pid == 0 && strcmp(c->procs[i].name, name) == 0) {
            char buf[1024], *args[24];
            unsigned n = 0;
            size_t pos = 0;
            memcpy(buf, c->procs[i].argv_buf, sizeof(buf));
            while (buf[pos] && n < 23) {
                args[n++] = buf + pos;
                pos += strlen(buf + pos) + 1;
            }
            args[n] = NULL;
            c->procs[i] = c->procs[--c->nprocs];
            spawn(c, name, args);
            return;
        }
    test_fail(__FILE__, __LINE__, "no stopped process named %s", name);
}

void pc_restart_all(struct pc_cluster *c, int using_dynamic_ports)
{
    pc_stop(c);
    start_registry(c, using_dynamic_ports);
    start_servers(c);
}

int pc_shard_leader(struct pc_cluster *c, unsigned shard, unsigned *replica)
{
    return pc_group_leader(c, (int)shard, replica);
}

int pc_group_leader(struct pc_cluster *c, int shard, unsigned *replica)
{
    uint64_t start = pc_now_ms();
    /* Ask the replicas themselves (PT_MSG_NODE_INFO): the registry's hint may lag. */
    while (pc_now_ms() - start < PC_WAIT_MS) {
        struct pt_reg_replica *v = NULL;
        size_t n = 0, i;
        struct pt_call_opts o = {.timeout_ms = 500, .retry_budget_ms = 1};
        int found = 0;
        int rc = shard < 0 ? pt_reg_list_cdc(c->registry, &v, &n, &o)
                           : pt_reg_list_shards(c->registry, (uint16_t)shard, &v, &n, &o);
        if (rc == 0) {
            for (i = 0; i < n && !found; i++) {
                struct pt_reply rep;
                if (!v[i].addr[0]) continue;
                if (pt_call(v[i].addr, PT_MSG_NODE_INFO, NULL, 0, &o, &rep) == 0 &&
                    rep.body_len >= 3 && rep.body[2]) {
                    *replica = v[i].replica;
                    found = 1;
                }
                pt_reply_free(&rep);
            }
            free(v);
        }
        if (found) return 0;
        usleep(50000);
    }
    return -PT_ENOENT;
}
