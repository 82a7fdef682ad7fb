/*
 * Replicated node (see node.h): the replica core over the uv env, plus the loop, the frame
 * server, discovery and the Raft port. Everything runs on the loop thread except the discovery
 * round, which does blocking registry and peer calls in the libuv thread pool and hands its
 * results back to the loop thread in its after-work callback (no shared mutable state, no
 * locks). Group commit, proposal callbacks, the term barrier and the read rule are the core's
 * (replica.c), not repeated here.
 *
 * Invariants: at most one discovery round in flight; the node is freed only after the replica
 * core's close callback (every proposal answered) and the env's close (no fsync in flight);
 * every libuv handle that was initialised is closed on every path, start-up failures included.
 */
#include "cluster/replica/node.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "cluster/client/registry_client.h"
#include "cluster/env/env_uv.h"
#include "cluster/metrics/metrics.h"
#include "cluster/storage/durable.h"
#include "petrel/codec.h"
#include "petrel/common.h"

#define DISCOVERY_MS 400
#define TICK_MS 100
#define RAFT_PORT_FILE "raft.port" /* in the replica's dir: the Raft port of the last run */
#define FUSE_MAGIC 0x65735546u     /* statfs f_type of FUSE filesystems */
#define PROBE_NAME ".petrel-fsync-probe"

struct peer {
    char client[PT_REG_ADDR_MAX];
    char raft[PT_REG_ADDR_MAX];
};

/* One discovery round: inputs copied in, results copied out (thread pool). */
struct discovery {
    uv_work_t work;
    struct pt_node *node;
    /* in */
    struct pt_reg_replica self;
    struct peer known[PT_NODE_MAX_REPLICAS];
    uint64_t known_secrets[PT_NODE_MAX_SERVICES];
    size_t n_known_secrets;
    /* out */
    int ok;
    struct peer peers[PT_NODE_MAX_REPLICAS];
    struct pt_node_service services[PT_NODE_MAX_SERVICES];
    size_t n_services;
};

/* The loop's own handles, each closed once on every path (start-up failure included). */
enum node_handle { H_POLL, H_TICK, H_TRANSFER, H_SIGINT, H_SIGTERM, H_COUNT };

struct pt_node {
    struct pt_node_config cfg;
    char registry[PT_REG_LOCATION_MAX];
    char host[64];
    uv_loop_t loop;
    int loop_ready;
    uv_check_t poll;           /* every loop turn: the term barrier, the leader's heartbeat */
    uv_timer_t tick;           /* discovery and the service's tick */
    uv_timer_t transfer_timer; /* bounds a leadership transfer on SIGTERM */
    uv_signal_t sigint, sigterm;
    unsigned handles_ready; /* bit per enum node_handle: initialised, to be closed */
    struct raft_transfer transfer;
    int transferring;
    struct pt_env *env;
    struct raft_io io;
    int io_ready;
    struct pt_replica *rep;
    int rep_closed;
    struct pt_server *server;
    struct pt_metrics *metrics;
    struct pt_http *http;
    char http_addr[PT_REG_ADDR_MAX];
    char raft_addr[PT_REG_ADDR_MAX];
    char raft_dir[4096];
    char names[PT_NODE_MAX_REPLICAS][16]; /* members' names in the Raft configuration */
    struct peer peers[PT_NODE_MAX_REPLICAS];
    /* discovery */
    struct discovery disc;
    int disc_running;
    raft_term disc_led_term; /* term in which a round announced this node as leader */
    uint64_t last_disc_ms;
    struct pt_node_service services[PT_NODE_MAX_SERVICES];
    size_t n_services;
    int stopping;
};

uint64_t pt_node_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uv_loop_t *pt_node_loop(struct pt_node *n)
{
    return &n->loop;
}

struct pt_env *pt_node_env(struct pt_node *n)
{
    return n->env;
}

struct raft *pt_node_raft(struct pt_node *n)
{
    return pt_replica_raft(n->rep);
}

int pt_node_is_leader(struct pt_node *n)
{
    return !n->stopping && n->rep && pt_replica_is_leader(n->rep);
}

const struct pt_raft_io_stats *pt_node_raft_stats(struct pt_node *n)
{
    return pt_raft_io_stats(&n->io);
}

struct pt_metrics *pt_node_metrics(struct pt_node *n)
{
    return n->metrics;
}

const char *pt_node_http_address(struct pt_node *n)
{
    return n->http_addr;
}

const char *pt_node_registry(struct pt_node *n)
{
    return n->registry;
}

const struct pt_node_service *pt_node_services(struct pt_node *n, size_t *count)
{
    *count = n->n_services;
    return n->services;
}

const struct pt_node_service *pt_node_service_find(struct pt_node *n, uint64_t id)
{
    size_t i;
    for (i = 0; i < n->n_services; i++)
        if (n->services[i].id == id) return &n->services[i];
    return NULL;
}

/* ---- Raft peers ------------------------------------------------------------------------- */

static int resolve_peer(void *ctx, raft_id id, char *buf, size_t cap)
{
    struct pt_node *n = ctx;
    if (id == 0 || id > n->cfg.replicas) return -PT_EINVAL;
    if (id - 1 == n->cfg.replica) {
        snprintf(buf, cap, "%s", n->raft_addr);
        return 0;
    }
    if (!n->peers[id - 1].raft[0]) return -PT_ENOENT;
    snprintf(buf, cap, "%s", n->peers[id - 1].raft);
    return 0;
}

/* ---- serving ------------------------------------------------------------------------------ */

int pt_node_can_serve(struct pt_node *n)
{
    return !n->stopping && n->rep && pt_replica_can_serve(n->rep);
}

void pt_node_reply_not_leader(struct pt_node *n, struct pt_request *req)
{
    unsigned id = n->rep ? pt_replica_leader(n->rep) : 0;
    const char *client = NULL;
    if (pt_node_is_leader(n)) {
        /* We lead but have not applied our barrier yet: come back in a moment. */
        pt_request_reply_error(req, -PT_EAGAIN, "leader catching up", NULL);
        return;
    }
    if (id >= 1 && id <= n->cfg.replicas && id - 1 != n->cfg.replica && n->peers[id - 1].client[0])
        client = n->peers[id - 1].client;
    pt_request_reply_error(req, -PT_ENOTLEADER, "not the leader", client);
}

void pt_node_reply_status(struct pt_node *n, struct pt_request *req, int status)
{
    if (status == -PT_ENOTLEADER)
        pt_node_reply_not_leader(n, req);
    else if (status == -PT_ECANCELED)
        pt_request_reply_error(req, -PT_EINDOUBT,
                               "leadership lost after the request was logged: outcome unknown",
                               NULL);
    else
        pt_request_reply_error(req, status, petrel_strerror(status), NULL);
}

int pt_node_propose(struct pt_node *n, const uint8_t *req, size_t len, pt_node_done_fn done,
                    void *ctx)
{
    if (n->stopping) return -PT_ENOTLEADER;
    return pt_replica_propose(n->rep, req, len, done, ctx);
}

int pt_node_read(struct pt_node *n, void (*done)(void *ctx, int status), void *ctx)
{
    if (n->stopping || !n->rep) return -PT_ENOTLEADER;
    return pt_replica_read(n->rep, done, ctx);
}

static void discovery_start(struct pt_node *n);

static void poll_cb(uv_check_t *h)
{
    struct pt_node *n = h->data;
    /* Checked every loop turn, not every tick: a new leader serves as soon as it can, and tells
     * the registry at once (clients ask it where the leader is). */
    pt_replica_poll(n->rep);
    if (pt_replica_is_leader(n->rep) && n->disc_led_term != pt_replica_raft(n->rep)->current_term &&
        !n->disc_running)
        discovery_start(n);
}

/* ---- discovery ------------------------------------------------------------------------------ */

static int query_raft_addr(const char *client, char *raft_out, size_t cap)
{
    struct pt_conn *c;
    struct pt_reply rep;
    struct pt_cursor cur;
    char addr[PT_REG_ADDR_MAX];
    int rc = pt_conn_open(client, 500, 4096, &c);
    if (rc) return rc;
    rc = pt_conn_call(c, PT_MSG_NODE_INFO, NULL, 0, 500, &rep);
    if (rc == 0) {
        pt_cursor_init(&cur, rep.body, rep.body_len);
        (void)pt_dec_u8(&cur);
        (void)pt_dec_u8(&cur);
        (void)pt_dec_u8(&cur);
        pt_dec_str(&cur, addr, sizeof(addr));
        if (pt_cursor_ok(&cur))
            snprintf(raft_out, cap, "%s", addr);
        else
            rc = -PT_EPROTO;
    }
    pt_reply_free(&rep);
    pt_conn_close(c);
    return rc;
}

static void discovery_work(uv_work_t *w)
{
    struct discovery *d = w->data;
    struct pt_node *n = d->node;
    struct pt_reg_replica *reps = NULL;
    struct pt_reg_blocks *blocks = NULL;
    size_t nreps = 0, nblocks = 0, i, j;
    struct pt_call_opts opts = {.timeout_ms = 500, .retry_budget_ms = 1};
    int rc;
    d->ok = 0;
    memcpy(d->peers, d->known, sizeof(d->peers));
    d->n_services = 0;
    if (n->cfg.kind == PT_NODE_REGISTRY) {
        /* Static peers: only their Raft addresses are to be learned (and relearned when a
         * peer restarted on another Raft port: NODE_INFO is cheap, ask every round). */
        for (i = 0; i < n->cfg.replicas; i++) {
            char raft_addr[PT_REG_ADDR_MAX];
            if (i == n->cfg.replica) continue;
            if (query_raft_addr(d->peers[i].client, raft_addr, sizeof(raft_addr)) == 0)
                snprintf(d->peers[i].raft, sizeof(d->peers[i].raft), "%s", raft_addr);
        }
        d->ok = 1;
        return;
    }
    rc = n->cfg.kind == PT_NODE_SHARD ? pt_reg_heartbeat_shard(n->registry, &d->self, &opts)
                                      : pt_reg_heartbeat_cdc(n->registry, &d->self, &opts);
    if (rc) return;
    rc = n->cfg.kind == PT_NODE_SHARD
             ? pt_reg_list_shards(n->registry, (uint16_t)n->cfg.shard, &reps, &nreps, &opts)
             : pt_reg_list_cdc(n->registry, &reps, &nreps, &opts);
    if (rc) return;
    for (i = 0; i < nreps; i++) {
        struct peer *p;
        if (reps[i].replica >= n->cfg.replicas) continue;
        if (n->cfg.kind == PT_NODE_SHARD && reps[i].shard != n->cfg.shard) continue;
        p = &d->peers[reps[i].replica];
        if (reps[i].replica == n->cfg.replica) continue;
        if (!reps[i].addr[0]) {
            /* The registry forgot the port (restart on dynamic ports): the old one is dead. */
            p->client[0] = p->raft[0] = 0;
            continue;
        }
        if (strcmp(p->client, reps[i].addr) != 0 || !p->raft[0]) {
            char raft_addr[PT_REG_ADDR_MAX];
            if (query_raft_addr(reps[i].addr, raft_addr, sizeof(raft_addr)) == 0) {
                snprintf(p->client, sizeof(p->client), "%s", reps[i].addr);
                snprintf(p->raft, sizeof(p->raft), "%s", raft_addr);
            }
        }
    }
    free(reps);
    if (pt_reg_list_blocks(n->registry, &blocks, &nblocks, &opts) == 0) {
        for (i = 0; i < nblocks && d->n_services < PT_NODE_MAX_SERVICES; i++) {
            struct pt_node_service *s = &d->services[d->n_services++];
            memset(s, 0, sizeof(*s));
            s->id = blocks[i].id;
            snprintf(s->domain, sizeof(s->domain), "%s", blocks[i].failure_domain);
            snprintf(s->addr, sizeof(s->addr), "%s", blocks[i].addr);
            s->stale = blocks[i].stale;
            s->capacity = blocks[i].capacity;
            s->used = blocks[i].used;
            for (j = 0; j < d->n_known_secrets; j++)
                if (d->known_secrets[j] == s->id) break;
            /* Secrets never change: fetch each once (the loop thread copies known ones back). */
            if (j == d->n_known_secrets &&
                pt_reg_block_secret(n->registry, s->id, s->secret, &opts) == 0)
                s->has_secret = 1;
        }
        free(blocks);
    }
    d->ok = 1;
}

static void discovery_done(uv_work_t *w, int status)
{
    struct discovery *d = w->data;
    struct pt_node *n = d->node;
    size_t i;
    n->disc_running = 0;
    /* On failure keep what we knew; pt_conn reconnects on the next round's first call. */
    if (status != 0 || !d->ok) return;
    for (i = 0; i < PT_NODE_MAX_REPLICAS; i++)
        if (i != n->cfg.replica) n->peers[i] = d->peers[i];
    for (i = 0; i < d->n_services; i++) {
        const struct pt_node_service *old = pt_node_service_find(n, d->services[i].id);
        if (!d->services[i].has_secret && old && old->has_secret) {
            memcpy(d->services[i].secret, old->secret, PT_REG_SECRET_SIZE);
            d->services[i].has_secret = 1;
        }
    }
    memcpy(n->services, d->services, d->n_services * sizeof(d->services[0]));
    n->n_services = d->n_services;
}

static void discovery_start(struct pt_node *n)
{
    struct discovery *d = &n->disc;
    size_t i;
    if (n->disc_running || n->stopping) return;
    memset(&d->self, 0, sizeof(d->self));
    d->self.shard = (uint8_t)n->cfg.shard;
    d->self.replica = (uint8_t)n->cfg.replica;
    d->self.leader = pt_replica_is_leader(n->rep);
    if (d->self.leader) n->disc_led_term = pt_replica_raft(n->rep)->current_term;
    snprintf(d->self.addr, sizeof(d->self.addr), "%s", pt_server_address(n->server));
    d->self.term = pt_replica_raft(n->rep)->current_term;
    d->self.commit = pt_replica_raft(n->rep)->commit_index;
    snprintf(d->self.http, sizeof(d->self.http), "%s", n->http_addr);
    memcpy(d->known, n->peers, sizeof(d->known));
    d->n_known_secrets = 0;
    for (i = 0; i < n->n_services; i++)
        if (n->services[i].has_secret) d->known_secrets[d->n_known_secrets++] = n->services[i].id;
    d->node = n;
    d->work.data = d;
    if (uv_queue_work(&n->loop, &d->work, discovery_work, discovery_done) == 0) {
        n->disc_running = 1;
        n->last_disc_ms = uv_now(&n->loop);
    }
}

static void tick_cb(uv_timer_t *t)
{
    struct pt_node *n = t->data;
    if (!n->disc_running && uv_now(&n->loop) - n->last_disc_ms >= DISCOVERY_MS) discovery_start(n);
    if (n->cfg.tick) n->cfg.tick(n->cfg.ctx);
}

/* ---- requests ------------------------------------------------------------------------------ */

static void handler(void *ctx, struct pt_request *req)
{
    struct pt_node *n = ctx;
    if (pt_request_kind(req) == PT_MSG_NODE_INFO) {
        uint8_t buf[300];
        struct pt_cursor c;
        pt_cursor_init(&c, buf, sizeof(buf));
        pt_enc_u8(&c, (uint8_t)n->cfg.shard);
        pt_enc_u8(&c, (uint8_t)n->cfg.replica);
        pt_enc_u8(&c, (uint8_t)pt_replica_is_leader(n->rep));
        pt_enc_str(&c, n->raft_addr);
        /* What the Raft port accepted and refused for authentication (operators, tests). */
        pt_enc_u64(&c, pt_raft_io_stats(&n->io)->received);
        pt_enc_u64(&c, pt_raft_io_stats(&n->io)->drop_auth);
        pt_enc_u64(&c, pt_raft_io_stats(&n->io)->drop_replay);
        pt_request_reply(req, buf, (uint32_t)c.pos);
        return;
    }
    if (pt_request_kind(req) == PT_MSG_PING) {
        pt_request_reply(req, pt_request_body(req), pt_request_body_len(req));
        return;
    }
    n->cfg.handler(n->cfg.ctx, req);
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

static void env_closed(void *ctx)
{
    (void)ctx; /* the loop ends once every handle is closed; pt_node_run frees */
}

static void handles_close(struct pt_node *n)
{
    uv_handle_t *h[H_COUNT];
    unsigned i;
    h[H_POLL] = (uv_handle_t *)&n->poll;
    h[H_TICK] = (uv_handle_t *)&n->tick;
    h[H_TRANSFER] = (uv_handle_t *)&n->transfer_timer;
    h[H_SIGINT] = (uv_handle_t *)&n->sigint;
    h[H_SIGTERM] = (uv_handle_t *)&n->sigterm;
    for (i = 0; i < H_COUNT; i++)
        if (n->handles_ready & (1u << i)) uv_close(h[i], NULL);
    n->handles_ready = 0;
}

/* The replica core answered every proposal and released libraft: close the rest. */
static void replica_closed(void *ctx)
{
    struct pt_node *n = ctx;
    n->rep = NULL;
    n->rep_closed = 1;
    if (n->stopping) {
        pt_http_stop(n->http);
        n->http = NULL;
        pt_server_stop(n->server);
        n->server = NULL;
        handles_close(n);
        pt_env_uv_close(n->env, env_closed, n);
    }
}

static void node_stop(struct pt_node *n)
{
    if (n->stopping) return;
    n->stopping = 1;
    uv_timer_stop(&n->tick);
    uv_timer_stop(&n->transfer_timer);
    uv_check_stop(&n->poll);
    /* The frame server stays up until the core has closed: clients waiting for a proposal get
     * its answer (PT_ENOTLEADER or PT_EINDOUBT) instead of a reset connection; new requests
     * meanwhile are told this node does not lead. */
    pt_replica_close(n->rep, replica_closed, n);
}

static void transfer_cb(struct raft_transfer *req)
{
    node_stop(req->data);
}

static void transfer_timeout(uv_timer_t *t)
{
    node_stop(t->data);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    struct pt_node *n = s->data;
    unsigned election = n->cfg.raft.election_timeout_ms;
    if (n->stopping || n->transferring) return;
    /* A leader asked to stop hands over first, so the group need not wait for an election. */
    if (signum == SIGTERM && n->cfg.replicas > 1 && pt_replica_is_leader(n->rep)) {
        n->transfer.data = n;
        if (raft_transfer(pt_replica_raft(n->rep), &n->transfer, 0, transfer_cb) == 0) {
            n->transferring = 1;
            if (uv_timer_start(&n->transfer_timer, transfer_timeout, 2 * (uint64_t)election, 0) ==
                0)
                return;
            /* No bound on the transfer: stop now (libraft still calls transfer_cb; ignored). */
        }
    }
    node_stop(n);
}

int pt_node_start_prepare_dir(const char *dir)
{
    return pt_mkdir_p(dir);
}

/* The Raft port of the last run (DIR/raft.port, ASCII decimal), 0 if none. */
static unsigned saved_port(const char *dir)
{
    char path[4200], buf[16];
    uint8_t *data = NULL;
    size_t len = 0;
    unsigned long v;
    char *end;
    snprintf(path, sizeof(path), "%s/%s", dir, RAFT_PORT_FILE);
    if (pt_read_file(path, sizeof(buf) - 1, &data, &len) != 0) return 0;
    if (len == 0 || len >= sizeof(buf)) {
        free(data);
        return 0;
    }
    memcpy(buf, data, len);
    buf[len] = 0;
    free(data);
    v = strtoul(buf, &end, 10);
    return (*end == 0 || *end == '\n') && v > 0 && v < 65536 ? (unsigned)v : 0;
}

/*
 * Remember the port for the next run, durably (storage/durable.h: temporary file, fsync,
 * rename, directory fsync), so a peer that cached it finds us again after a crash. Still a
 * hint: a lost or damaged file only means a fresh port (peers learn it through NODE_INFO).
 */
static void save_port(const char *dir, unsigned port)
{
    char buf[16];
    int len = snprintf(buf, sizeof(buf), "%u\n", port), rc;
    if ((rc = pt_durable_write_file(dir, RAFT_PORT_FILE, buf, (size_t)len)) != 0)
        petrel_log(PT_LOG_WARN, "node", "cannot save the Raft port in %s: %s", dir,
                   petrel_strerror(rc));
}

static int probe_fail(char *err, size_t err_cap, const char *dir, const char *step)
{
    int saved = errno;
    snprintf(err, err_cap,
             "data directory %s failed the durability probe (%s: %s): refusing to start where "
             "acknowledged writes might not survive a crash",
             dir, step, strerror(saved));
    return -PT_EIO;
}

int pt_node_check_data_dir(const char *dir, int unsafe_no_fsync_check, char *err, size_t err_cap)
{
    char tmp[4200], path[4200];
    static const char payload[] = "petrel fsync probe\n";
    struct statfs fs;
    int fd, dfd, ok;
    if (statfs(dir, &fs) != 0) return probe_fail(err, err_cap, dir, "statfs");
    if ((unsigned long)fs.f_type == FUSE_MAGIC) {
        if (!unsafe_no_fsync_check) {
            snprintf(err, err_cap,
                     "data directory %s is on a FUSE filesystem, which may acknowledge fsync "
                     "without making data durable: refusing to start (--unsafe-no-fsync-check "
                     "runs anyway, at the risk of losing acknowledged writes in a crash)",
                     dir);
            return -PT_ENOTSUP;
        }
        petrel_log(PT_LOG_WARN, "node", "%s is on FUSE: running without a durability guarantee",
                   dir);
    }
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, PROBE_NAME);
    snprintf(path, sizeof(path), "%s/%s", dir, PROBE_NAME);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return probe_fail(err, err_cap, dir, "create");
    ok = write(fd, payload, sizeof(payload)) == (ssize_t)sizeof(payload);
    if (!ok) {
        close(fd);
        return probe_fail(err, err_cap, dir, "write");
    }
    if (fdatasync(fd) != 0) {
        close(fd);
        return probe_fail(err, err_cap, dir, "fdatasync");
    }
    if (close(fd) != 0) return probe_fail(err, err_cap, dir, "close");
    if (rename(tmp, path) != 0) return probe_fail(err, err_cap, dir, "rename");
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return probe_fail(err, err_cap, dir, "open directory");
    if (fsync(dfd) != 0) {
        close(dfd);
        return probe_fail(err, err_cap, dir, "directory fsync");
    }
    if (unlink(path) != 0) {
        close(dfd);
        return probe_fail(err, err_cap, dir, "unlink");
    }
    ok = fsync(dfd) == 0;
    close(dfd);
    if (!ok) return probe_fail(err, err_cap, dir, "directory fsync");
    return 0;
}

/*
 * The Raft port: the one of the last run when it is free (peers may still have it cached),
 * else an OS-chosen one; peers learn it through PT_MSG_NODE_INFO.
 */
static int bind_raft_port(struct pt_node *n, char *err, size_t err_cap)
{
    char addr[PT_REG_ADDR_MAX];
    unsigned port = saved_port(n->cfg.dir);
    int rc = -PT_EADDRINUSE;
    if (port) {
        snprintf(addr, sizeof(addr), "%s:%u", n->host, port);
        rc = pt_env_uv_bind(n->env, addr, n->raft_addr, sizeof(n->raft_addr));
    }
    if (rc) {
        snprintf(addr, sizeof(addr), "%s:0", n->host);
        rc = pt_env_uv_bind(n->env, addr, n->raft_addr, sizeof(n->raft_addr));
    }
    if (rc) {
        snprintf(err, err_cap, "cannot listen for Raft on %s: %s", addr, petrel_strerror(rc));
        return rc;
    }
    save_port(n->cfg.dir, (unsigned)strtoul(strrchr(n->raft_addr, ':') + 1, NULL, 10));
    return 0;
}

/* Our Raft I/O over the env, and the replica core on it: 0 or a negative error (err says). */
static int start_replica(struct pt_node *n, char *err, size_t err_cap)
{
    struct pt_raft_io_config io;
    struct pt_replica_config rc_cfg;
    unsigned i;
    int rc;
    memset(&io, 0, sizeof(io));
    io.env = n->env;
    io.cluster_id = n->cfg.cluster_id;
    io.group = PT_RAFT_GROUP(n->cfg.kind, n->cfg.shard);
    io.replicas = n->cfg.replicas;
    io.listen = n->raft_addr;
    io.resolve = resolve_peer;
    io.resolve_ctx = n;
    io.stream_snapshots = n->cfg.stream_snapshots_io != NULL;
    if ((rc = pt_raft_io_init(&n->io, &io, err, err_cap)) != 0) {
        char inner[400];
        snprintf(inner, sizeof(inner), "%s", err);
        snprintf(err, err_cap, "Raft data in %s: %s", n->raft_dir, inner);
        return rc;
    }
    n->io_ready = 1;
    if (n->cfg.stream_snapshots_io) *n->cfg.stream_snapshots_io = &n->io;
    memset(&rc_cfg, 0, sizeof(rc_cfg));
    rc_cfg.env = n->env;
    rc_cfg.io = &n->io;
    rc_cfg.fsm = n->cfg.fsm;
    rc_cfg.id = n->cfg.replica + 1;
    rc_cfg.replicas = n->cfg.replicas;
    /* Members are named r0..r4 in the configuration (as every earlier version bootstrapped
     * them); their network addresses come from resolve_peer. */
    for (i = 0; i < n->cfg.replicas; i++) {
        snprintf(n->names[i], sizeof(n->names[i]), "r%u", i);
        rc_cfg.addresses[i] = n->names[i];
    }
    rc_cfg.election_timeout_ms = n->cfg.raft.election_timeout_ms;
    rc_cfg.heartbeat_timeout_ms = n->cfg.raft.heartbeat_ms;
    rc_cfg.snapshot_entries = n->cfg.snapshot_entries;
    if ((rc = pt_replica_start(&n->rep, &rc_cfg)) != 0) {
        snprintf(err, err_cap, "cannot start the Raft member in %s: %s", n->raft_dir,
                 petrel_strerror(rc));
        return rc;
    }
    return 0;
}

static int handles_init(struct pt_node *n, char *err, size_t err_cap)
{
    int rc;
    if ((rc = uv_check_init(&n->loop, &n->poll)) != 0) goto fail;
    n->handles_ready |= 1u << H_POLL;
    if ((rc = uv_timer_init(&n->loop, &n->tick)) != 0) goto fail;
    n->handles_ready |= 1u << H_TICK;
    if ((rc = uv_timer_init(&n->loop, &n->transfer_timer)) != 0) goto fail;
    n->handles_ready |= 1u << H_TRANSFER;
    if ((rc = uv_signal_init(&n->loop, &n->sigint)) != 0) goto fail;
    n->handles_ready |= 1u << H_SIGINT;
    if ((rc = uv_signal_init(&n->loop, &n->sigterm)) != 0) goto fail;
    n->handles_ready |= 1u << H_SIGTERM;
    n->poll.data = n->tick.data = n->transfer_timer.data = n;
    n->sigint.data = n->sigterm.data = n;
    return 0;
fail:
    snprintf(err, err_cap, "event loop: %s", uv_strerror(rc));
    return -PT_EIO;
}

static int handles_start(struct pt_node *n, char *err, size_t err_cap)
{
    int rc;
    if ((rc = uv_check_start(&n->poll, poll_cb)) != 0 ||
        (rc = uv_timer_start(&n->tick, tick_cb, 0, TICK_MS)) != 0 ||
        (rc = uv_signal_start(&n->sigint, signal_cb, SIGINT)) != 0 ||
        (rc = uv_signal_start(&n->sigterm, signal_cb, SIGTERM)) != 0) {
        snprintf(err, err_cap, "event loop: %s", uv_strerror(rc));
        return -PT_EIO;
    }
    return 0;
}

/* Undo a failed start: close what was opened, run the loop until it is released, free. */
static void start_undo(struct pt_node *n)
{
    if (n->loop_ready) {
        if (n->rep) {
            pt_replica_close(n->rep, replica_closed, n);
            while (!n->rep_closed)
                uv_run(&n->loop, UV_RUN_ONCE);
        }
        if (n->server) pt_server_stop(n->server);
        pt_http_stop(n->http);
        n->http = NULL;
        handles_close(n);
        if (n->env) pt_env_uv_close(n->env, env_closed, n);
        uv_run(&n->loop, UV_RUN_DEFAULT);
        if (n->io_ready) pt_raft_io_free(&n->io);
        if (n->env) pt_env_uv_free(n->env);
        uv_loop_close(&n->loop);
    }
    pt_metrics_free(n->metrics);
    free(n);
}

/* Raft state and I/O counters, read at render time (on the loop). */
static void metrics_collect(void *ctx)
{
    struct pt_node *n = ctx;
    struct pt_metrics *m = n->metrics;
    const struct pt_raft_io_stats *io;
    struct raft *r;
    if (!n->rep) return;
    r = pt_replica_raft(n->rep);
    io = pt_raft_io_stats(&n->io);
    pt_metric_set(pt_metrics_gauge(m, "petrel_raft_term", "", "Current Raft term"),
                  (double)r->current_term);
    pt_metric_set(pt_metrics_gauge(m, "petrel_raft_commit_index", "", "Raft commit index"),
                  (double)r->commit_index);
    pt_metric_set(pt_metrics_gauge(m, "petrel_raft_applied_index", "",
                                   "Index of the last entry applied to the state machine"),
                  (double)r->last_applied);
    pt_metric_set(pt_metrics_gauge(m, "petrel_raft_leader", "",
                                   "1 when this replica is the Raft leader, else 0"),
                  pt_node_is_leader(n) ? 1 : 0);
    pt_metric_set(pt_metrics_counter(m, "petrel_raft_log_appends_total", "",
                                     "Raft log append batches written since start-up"),
                  (double)io->appends);
    pt_metric_set(
        pt_metrics_counter(m, "petrel_raft_log_fsyncs_total", "", "Raft log fsyncs since start-up"),
        (double)io->fsyncs);
    pt_metric_set(pt_metrics_counter(m, "petrel_raft_messages_dropped_total", "",
                                     "Raft messages dropped as invalid since start-up"),
                  (double)(io->drop_header + io->drop_crc + io->drop_group + io->drop_sender +
                           io->drop_address + io->drop_body + io->drop_auth + io->drop_replay));
    pt_metric_set(pt_metrics_counter(m, "petrel_crc_errors_total", "where=\"raft\"",
                                     "CRC32C mismatches found, by where they were found"),
                  (double)io->drop_crc);
    pt_metric_set(pt_metrics_gauge(m, "petrel_block_services_known", "",
                                   "Block services known from the registry"),
                  (double)n->n_services);
}

/* The node's metrics set, and its HTTP endpoint when asked for one. */
static int metrics_start(struct pt_node *n, char *err, size_t err_cap)
{
    int rc;
    n->metrics = pt_metrics_new();
    if (!n->metrics || pt_metrics_on_collect(n->metrics, metrics_collect, n) != 0) {
        snprintf(err, err_cap, "out of memory");
        return -PT_ENOMEM;
    }
    pt_env_uv_set_metrics(n->env, n->metrics);
    if (!n->cfg.http) return 0;
    rc = pt_http_start(&n->loop, n->cfg.http, n->metrics, n->cfg.page, n->cfg.ctx, &n->http);
    if (rc) {
        snprintf(err, err_cap, "cannot serve HTTP on %s: %s", n->cfg.http, petrel_strerror(rc));
        n->http = NULL;
        return rc;
    }
    snprintf(n->http_addr, sizeof(n->http_addr), "%s", pt_http_address(n->http));
    n->cfg.http = n->http_addr;
    return 0;
}

int pt_node_start(struct pt_node **out, const struct pt_node_config *cfg, char *err, size_t err_cap)
{
    struct pt_node *n;
    struct pt_server_config scfg;
    char listen[PT_REG_ADDR_MAX];
    int rc;
    *out = NULL;
    if (cfg->replicas != 1 && cfg->replicas != 3 && cfg->replicas != 5) {
        snprintf(err, err_cap, "--replicas must be 1, 3 or 5");
        return -PT_EINVAL;
    }
    if (cfg->replica >= cfg->replicas) {
        snprintf(err, err_cap, "--replica must be below --replicas");
        return -PT_EINVAL;
    }
    if (!cfg->dir || (!cfg->registry && cfg->kind != PT_NODE_REGISTRY) || !cfg->fsm ||
        !cfg->handler) {
        snprintf(err, err_cap, "node: a data directory, a registry, an FSM and a handler");
        return -PT_EINVAL;
    }
    n = calloc(1, sizeof(*n));
    if (!n) {
        snprintf(err, err_cap, "out of memory");
        return -PT_ENOMEM;
    }
    n->cfg = *cfg;
    if (!n->cfg.raft.election_timeout_ms)
        n->cfg.raft.election_timeout_ms = PT_NODE_ELECTION_TIMEOUT_MS;
    if (!n->cfg.raft.heartbeat_ms) n->cfg.raft.heartbeat_ms = PT_NODE_HEARTBEAT_MS;
    if (n->cfg.raft.heartbeat_ms >= n->cfg.raft.election_timeout_ms) {
        snprintf(err, err_cap, "--heartbeat-ms (%u) must be below --election-timeout-ms (%u)",
                 n->cfg.raft.heartbeat_ms, n->cfg.raft.election_timeout_ms);
        start_undo(n);
        return -PT_EINVAL;
    }
    snprintf(n->registry, sizeof(n->registry), "%s", cfg->registry ? cfg->registry : "");
    snprintf(n->host, sizeof(n->host), "%s", cfg->host ? cfg->host : "127.0.0.1");
    n->cfg.registry = n->registry;
    n->cfg.host = n->host;
    snprintf(n->raft_dir, sizeof(n->raft_dir), "%s/raft", cfg->dir);
    /* Created durably: a crash right after start-up must not lose the directory the log is in. */
    if ((rc = pt_mkdir_p(n->raft_dir)) != 0) {
        snprintf(err, err_cap, "cannot create %s: %s", n->raft_dir, petrel_strerror(rc));
        start_undo(n);
        return rc;
    }
    if ((rc = pt_node_check_data_dir(n->raft_dir, cfg->raft.unsafe_no_fsync_check, err, err_cap)) !=
        0) {
        start_undo(n);
        return rc;
    }
    if ((rc = uv_loop_init(&n->loop)) != 0) {
        snprintf(err, err_cap, "event loop: %s", uv_strerror(rc));
        start_undo(n);
        return -PT_EIO;
    }
    n->loop_ready = 1;
    if ((rc = handles_init(n, err, err_cap)) != 0 ||
        (rc = pt_env_uv_init(&n->env, &n->loop, n->raft_dir, err, err_cap)) != 0) {
        n->env = NULL;
        start_undo(n);
        return rc;
    }
    if ((rc = metrics_start(n, err, err_cap)) != 0) {
        start_undo(n);
        return rc;
    }
    /* Client-facing server on an OS-chosen port; a registry replica's is in its location. */
    if (cfg->kind == PT_NODE_REGISTRY) {
        unsigned i;
        for (i = 0; i < cfg->replicas; i++) {
            if (!cfg->peers[i] || !cfg->peers[i][0]) {
                snprintf(err, err_cap, "registry group: no address for member %u", i);
                start_undo(n);
                return -PT_EINVAL;
            }
            snprintf(n->peers[i].client, sizeof(n->peers[i].client), "%s", cfg->peers[i]);
        }
        snprintf(listen, sizeof(listen), "%s",
                 cfg->listen ? cfg->listen : cfg->peers[cfg->replica]);
    } else
        snprintf(listen, sizeof(listen), "%s:0", n->host);
    memset(&scfg, 0, sizeof(scfg));
    scfg.listen = listen;
    scfg.handler = handler;
    scfg.ctx = n;
    scfg.metrics = n->metrics;
    if ((rc = pt_server_start(&n->loop, &scfg, &n->server)) != 0) {
        snprintf(err, err_cap, "cannot listen on %s: %s", listen, petrel_strerror(rc));
        n->server = NULL;
        start_undo(n);
        return rc;
    }
    if ((rc = bind_raft_port(n, err, err_cap)) != 0 || (rc = start_replica(n, err, err_cap)) != 0 ||
        (rc = handles_start(n, err, err_cap)) != 0) {
        start_undo(n);
        return rc;
    }
    *out = n;
    return 0;
}

int pt_node_run(struct pt_node *n)
{
    uv_run(&n->loop, UV_RUN_DEFAULT);
    PT_ASSERT(n->rep_closed);
    pt_raft_io_free(&n->io);
    pt_env_uv_free(n->env);
    uv_loop_close(&n->loop);
    pt_metrics_free(n->metrics);
    free(n);
    return 0;
}
