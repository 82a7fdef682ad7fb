/*
 * Block services on the network (see blocks.h). Owns request dispatch, certificate checks,
 * the in-memory block index (loop thread only), one production env per service (its disk
 * directory) for the store, and the heartbeat thread. It never accepts a write or erase whose
 * certificate does not verify under the registry's secret, and never sends a proof before the
 * store reported the block durable (or gone).
 *
 * Threads: the loop thread owns the index, the servers and the stores; a write's fsync runs on
 * libuv's thread pool through the env (the data goes to the page cache from the loop, the
 * read-back hits the page cache), reads and erases run on the loop; the heartbeat thread only
 * reads the published usage and writes the secret, both under `lock`.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "cluster/blocks/blocks.h"
#include "cluster/client/blocks_client.h"
#include "cluster/client/router.h"
#include "cluster/env/env_uv.h"
#include "cluster/metrics/metrics.h"
#include "cluster/storage/durable.h"
#include "cluster/net/net.h"
#include "petrel/common.h"

#define LOG_MODULE "blocks"

struct blocks_service {
    struct pt_blocks_server *owner;
    struct pt_blocks_service *core;
    struct pt_env *env;
    char *dir;
    int opened, open_status, env_closed;
    struct pt_server *srv;
    char address[PT_ADDR_MAX];
    /* Shared with the heartbeat thread (under owner->lock). */
    uint8_t secret[PT_REG_SECRET_SIZE];
    int has_secret;
    uint64_t pub_used, pub_blocks;
    struct pt_blocks_scrub_stats pub_scrub;
    /* Blocks the scrubber found rotten, not yet accepted by their shard (SCRUB_REPORT). */
    uint64_t rotten[256];
    int nrotten;
};

struct pt_blocks_server {
    uv_loop_t *loop;
    char registry[PT_REG_LOCATION_MAX];
    char failure_domain[PT_REG_DOMAIN_MAX];
    uint32_t heartbeat_ms;
    struct blocks_service *svc;
    int nsvc;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    pthread_t heartbeat;
    int heartbeat_running;
    struct pt_router router;    /* heartbeat thread only: SCRUB_REPORT to the shards */
    struct pt_metrics *metrics; /* loop thread only */
    struct pt_http *http;
    struct pt_metric *m_block_crc;
    char http_addr[PT_ADDR_MAX]; /* written before the heartbeat thread starts */
};

/* --- hooks of the service core ------------------------------------------------------------ */

static void publish_usage(void *ctx)
{
    struct blocks_service *s = ctx;
    pthread_mutex_lock(&s->owner->lock);
    s->pub_used = s->core->used;
    s->pub_blocks = s->core->count;
    s->pub_scrub = s->core->scrub.stats;
    pthread_mutex_unlock(&s->owner->lock);
}

/* Queue a rotten block for the heartbeat thread to report (a full queue drops it: the next
 * pass finds it again). */
static void queue_rotten(void *ctx, uint64_t block_id)
{
    struct blocks_service *s = ctx;
    int i;
    pthread_mutex_lock(&s->owner->lock);
    for (i = 0; i < s->nrotten && s->rotten[i] != block_id; i++)
        ;
    if (i == s->nrotten && s->nrotten < (int)PT_ARRAY_SIZE(s->rotten))
        s->rotten[s->nrotten++] = block_id;
    pthread_cond_broadcast(&s->owner->wake);
    pthread_mutex_unlock(&s->owner->lock);
}

static int get_secret(void *ctx, uint8_t secret[PT_REG_SECRET_SIZE])
{
    struct blocks_service *s = ctx;
    int ok;
    pthread_mutex_lock(&s->owner->lock);
    ok = s->has_secret;
    if (ok) memcpy(secret, s->secret, PT_REG_SECRET_SIZE);
    pthread_mutex_unlock(&s->owner->lock);
    return ok;
}

/* Capacity of the file system holding the service's directory, in bytes (0 if unknown). */
static uint64_t service_capacity(void *ctx)
{
    struct blocks_service *s = ctx;
    struct statvfs v;
    if (statvfs(s->dir, &v) != 0) return 0;
    return (uint64_t)v.f_blocks * v.f_frsize;
}

/* The file system holding the service's directory: its id and bytes free for users. */
static void service_disk(void *ctx, uint64_t *fsid, uint64_t *free_bytes)
{
    struct blocks_service *s = ctx;
    struct statvfs v;
    *fsid = *free_bytes = 0;
    if (statvfs(s->dir, &v) != 0) return;
    *fsid = (uint64_t)v.f_fsid;
    *free_bytes = (uint64_t)v.f_bavail * v.f_frsize;
}

/* --- requests from the frame server -------------------------------------------------------- */

static void reply_request(void *ctx, int status, const char *why, uint8_t *body, size_t len)
{
    struct pt_request *req = ctx;
    struct blocks_service *s = pt_request_user(req);
    /* A read that met a page failing its CRC (the client reconstructs from other copies). */
    if (status == -PT_ECORRUPT && pt_request_kind(req) == PT_MSG_BLOCK_READ)
        pt_metric_add(s->owner->m_block_crc, 1);
    if (status)
        pt_request_reply_error(req, status, why, NULL);
    else
        pt_request_reply_take(req, body, (uint32_t)len);
}

static void handler(void *ctx, struct pt_request *req)
{
    struct blocks_service *s = ctx;
    pt_request_set_user(req, s);
    pt_blocks_service_handle(s->core, pt_request_kind(req), pt_request_body(req),
                             pt_request_body_len(req), reply_request, req);
}

/* --- heartbeats ---------------------------------------------------------------------------- */

/* One heartbeat for every service; returns how many succeeded. */
static int heartbeat_all(struct pt_blocks_server *b)
{
    int i, ok = 0;
    for (i = 0; i < b->nsvc; i++) {
        struct blocks_service *s = &b->svc[i];
        struct pt_reg_blocks hb;
        struct pt_call_opts opts = {1000, 1, 0};
        uint8_t secret[PT_REG_SECRET_SIZE];
        int err;
        memset(&hb, 0, sizeof(hb));
        hb.id = s->core->store.service_id;
        snprintf(hb.failure_domain, sizeof(hb.failure_domain), "%s", b->failure_domain);
        snprintf(hb.addr, sizeof(hb.addr), "%s", s->address);
        snprintf(hb.http, sizeof(hb.http), "%s", b->http_addr);
        hb.capacity = service_capacity(s);
        pthread_mutex_lock(&b->lock);
        hb.used = s->pub_used;
        hb.blocks = s->pub_blocks;
        hb.scrub_checked = s->pub_scrub.blocks_checked;
        hb.scrub_rotten = s->pub_scrub.rotten;
        hb.scrub_passes = s->pub_scrub.passes;
        hb.scrub_last_pass_ms = s->pub_scrub.last_pass_ms;
        pthread_mutex_unlock(&b->lock);
        err = pt_reg_heartbeat_blocks(b->registry, &hb, secret, &opts);
        if (err) {
            petrel_log(PT_LOG_DEBUG, LOG_MODULE, "heartbeat to %s failed: %s", b->registry,
                       petrel_strerror(err));
            continue;
        }
        pthread_mutex_lock(&b->lock);
        memcpy(s->secret, secret, sizeof(secret));
        s->has_secret = 1;
        pthread_mutex_unlock(&b->lock);
        ok++;
    }
    return ok;
}

/*
 * Tell the owning shard (the shard number is in the block id) about each queued rotten block.
 * Done: accepted, or refused for good (no span lists the block: nothing to repair). Kept for the
 * next round: the shard unreachable or leaderless.
 */
static void report_rotten(struct pt_blocks_server *b)
{
    int i, k;
    for (i = 0; i < b->nsvc; i++) {
        struct blocks_service *s = &b->svc[i];
        uint64_t todo[PT_ARRAY_SIZE(s->rotten)];
        int n;
        pthread_mutex_lock(&b->lock);
        n = s->nrotten;
        memcpy(todo, s->rotten, (size_t)n * sizeof(todo[0]));
        pthread_mutex_unlock(&b->lock);
        for (k = 0; k < n; k++) {
            struct pt_shard_req q;
            struct pt_reply rep;
            int err, j;
            memset(&q, 0, sizeof(q));
            q.op = PT_SHARD_SCRUB_REPORT;
            q.id = todo[k];
            q.target = s->core->store.service_id;
            err = pt_router_shard(&b->router, PT_INODE_SHARD(todo[k]), &q, &rep, NULL);
            pt_reply_free(&rep);
            /* ENOENT: no span lists it (an old copy repair replaced, waiting for GC) */
            petrel_log(err && err != -PT_ENOENT ? PT_LOG_WARN : PT_LOG_INFO, LOG_MODULE,
                       "%016" PRIx64 ": rotten block %016" PRIx64 " reported to shard %u: %s",
                       q.target, todo[k], (unsigned)PT_INODE_SHARD(todo[k]),
                       err ? petrel_strerror(err) : "queued for repair");
            if (err && err != -PT_ENOENT && err != -PT_EXDEV && err != -PT_EINVAL) continue;
            pthread_mutex_lock(&b->lock);
            for (j = 0; j < s->nrotten; j++)
                if (s->rotten[j] == todo[k]) {
                    s->rotten[j] = s->rotten[--s->nrotten];
                    break;
                }
            pthread_mutex_unlock(&b->lock);
        }
    }
}

static void *heartbeat_main(void *arg)
{
    struct pt_blocks_server *b = arg;
    pthread_mutex_lock(&b->lock);
    while (!b->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += b->heartbeat_ms / 1000;
        ts.tv_nsec += (long)(b->heartbeat_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&b->wake, &b->lock, &ts);
        if (b->stopping) break;
        pthread_mutex_unlock(&b->lock);
        heartbeat_all(b);
        report_rotten(b);
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* --- lifecycle ----------------------------------------------------------------------------- */

static void service_opened(void *ctx, int status)
{
    struct blocks_service *s = ctx;
    s->open_status = status;
    s->opened = 1;
}

/* The service's env on the server's loop, and its store opened (the loop runs until then). */
static int open_service(struct pt_blocks_server *b, struct blocks_service *s, const char *dir)
{
    char why[256];
    int err;
    s->dir = strdup(dir);
    if (!s->dir) return -PT_ENOMEM;
    err = pt_mkdir_p(dir);
    if (!err) err = pt_env_uv_init(&s->env, b->loop, dir, why, sizeof(why));
    if (err) return err;
    s->core = calloc(1, sizeof(*s->core));
    if (!s->core) return -PT_ENOMEM;
    s->core->get_secret = get_secret;
    s->core->on_change = publish_usage;
    s->core->capacity = service_capacity;
    s->core->on_rotten = queue_rotten;
    s->core->disk = service_disk;
    s->core->hook_ctx = s;
    snprintf(s->core->failure_domain, sizeof(s->core->failure_domain), "%s", b->failure_domain);
    pt_blocks_store_open(s->env, &s->core->store, service_opened, s);
    while (!s->opened)
        if (uv_run(b->loop, UV_RUN_ONCE) == 0 && !s->opened) return -PT_EIO;
    return s->open_status ? s->open_status : pt_blocks_service_init(s->core);
}

static int listen_address(const char *base, int i, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    char host[PT_ADDR_MAX];
    const char *colon = strrchr(base, ':');
    unsigned long port;
    int err = pt_addr_parse(base, &ss);
    if (err) return err;
    port = strtoul(colon + 1, NULL, 10);
    if (port && port + (unsigned long)i > 65535) return -PT_EINVAL;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - base), base);
    if (snprintf(out, cap, "%s:%lu", host, port ? port + (unsigned long)i : 0) >= (int)cap)
        return -PT_EINVAL;
    return 0;
}

/* Usage and scrub progress of every service, read at render time (on the loop). */
static void metrics_collect(void *ctx)
{
    struct pt_blocks_server *b = ctx;
    int i;
    for (i = 0; i < b->nsvc; i++) {
        struct blocks_service *s = &b->svc[i];
        const struct pt_blocks_scrub_stats *st = &s->core->scrub.stats;
        char l[64];
        int queued;
        snprintf(l, sizeof(l), "service=\"%016" PRIx64 "\"", s->core->store.service_id);
        pthread_mutex_lock(&b->lock);
        queued = s->nrotten;
        pthread_mutex_unlock(&b->lock);
#define G(name, help, v) pt_metric_set(pt_metrics_gauge(b->metrics, name, l, help), (double)(v))
#define C(name, help, v) pt_metric_set(pt_metrics_counter(b->metrics, name, l, help), (double)(v))
        G("petrel_blocks_stored", "Blocks stored by the service", s->core->count);
        G("petrel_blocks_used_bytes", "Bytes held by the service's blocks", s->core->used);
        G("petrel_blocks_capacity_bytes", "Size of the file system holding the service",
          service_capacity(s));
        G("petrel_blocks_writes_in_flight", "Block writes and erases in flight", s->core->inflight);
        G("petrel_scrub_report_queue", "Rotten blocks waiting to be reported to their shard",
          queued);
        C("petrel_scrub_checked_blocks_total", "Blocks the scrubber read back whole and verified",
          st->blocks_checked);
        C("petrel_scrub_checked_bytes_total", "Bytes the scrubber verified", st->bytes_checked);
        C("petrel_scrub_rotten_blocks_total", "Blocks the scrubber found rotten", st->rotten);
        C("petrel_scrub_passes_total", "Full scrub passes over the service's blocks", st->passes);
        G("petrel_scrub_last_pass_timestamp_seconds",
          "When the latest full scrub pass ended (0: none yet)", st->last_pass_ms / 1000.0);
#undef G
#undef C
    }
}

const char *pt_blocks_server_http_address(const struct pt_blocks_server *s)
{
    return s->http_addr;
}

int pt_blocks_server_start(uv_loop_t *loop, const struct pt_blocks_server_config *cfg,
                           struct pt_blocks_server **out)
{
    struct pt_blocks_server *b;
    int i, err = 0;
    *out = NULL;
    if (cfg->ndirs <= 0 || !cfg->failure_domain || !cfg->failure_domain[0] ||
        strlen(cfg->failure_domain) >= PT_REG_DOMAIN_MAX || !cfg->registry ||
        pt_reg_location_check(cfg->registry) != 0)
        return -PT_EINVAL;
    b = calloc(1, sizeof(*b));
    if (!b) return -PT_ENOMEM;
    b->svc = calloc((size_t)cfg->ndirs, sizeof(*b->svc));
    if (!b->svc) {
        free(b);
        return -PT_ENOMEM;
    }
    b->loop = loop;
    snprintf(b->registry, sizeof(b->registry), "%s", cfg->registry);
    snprintf(b->failure_domain, sizeof(b->failure_domain), "%s", cfg->failure_domain);
    b->heartbeat_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : 1000;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->wake, NULL);
    b->metrics = pt_metrics_new();
    if (!b->metrics || pt_metrics_on_collect(b->metrics, metrics_collect, b) != 0) err = -PT_ENOMEM;
    b->m_block_crc = pt_metrics_counter(b->metrics, "petrel_crc_errors_total", "where=\"block\"",
                                        "CRC32C mismatches found, by where they were found");
    for (i = 0; i < cfg->ndirs && !err; i++) {
        struct blocks_service *s = &b->svc[i];
        struct pt_server_config scfg;
        char addr[PT_ADDR_MAX];
        s->owner = b;
        b->nsvc = i + 1;
        err = open_service(b, s, cfg->dirs[i]);
        if (!err) pt_env_uv_set_metrics(s->env, b->metrics);
        if (!err)
            err = listen_address(cfg->listen ? cfg->listen : "127.0.0.1:0", i, addr, sizeof(addr));
        if (err) break;
        publish_usage(s);
        memset(&scfg, 0, sizeof(scfg));
        scfg.listen = addr;
        scfg.max_body = PT_BLOCK_MAX_BODY;
        scfg.handler = handler;
        scfg.ctx = s;
        scfg.metrics = b->metrics;
        err = pt_server_start(loop, &scfg, &s->srv);
        if (!err) snprintf(s->address, sizeof(s->address), "%s", pt_server_address(s->srv));
    }
    if (!err && cfg->http) {
        err = pt_http_start(loop, cfg->http, b->metrics, NULL, NULL, &b->http);
        if (!err) snprintf(b->http_addr, sizeof(b->http_addr), "%s", pt_http_address(b->http));
    }
    if (err) {
        pt_blocks_server_stop(b);
        uv_run(loop, UV_RUN_DEFAULT);
        pt_blocks_server_free(b);
        return err;
    }
    for (i = 0; i < b->nsvc; i++) {
        pt_blocks_scrub_start(b->svc[i].core, cfg->scrub_rate);
        b->svc[i].core->stream_idle_ms = cfg->stream_idle_ms;
    }
    pt_router_init(&b->router, b->registry, 5000, 1000, b->svc[0].core->store.service_id);
    heartbeat_all(b);
    if (pthread_create(&b->heartbeat, NULL, heartbeat_main, b) == 0)
        b->heartbeat_running = 1;
    else
        err = -PT_ENOMEM;
    if (err) {
        pt_blocks_server_stop(b);
        uv_run(loop, UV_RUN_DEFAULT);
        pt_blocks_server_free(b);
        return err;
    }
    *out = b;
    return 0;
}

int pt_blocks_server_count(const struct pt_blocks_server *s)
{
    return s->nsvc;
}

const char *pt_blocks_server_address(const struct pt_blocks_server *s, int i)
{
    return s->svc[i].address;
}

uint64_t pt_blocks_server_id(const struct pt_blocks_server *s, int i)
{
    return s->svc[i].core->store.service_id;
}

int pt_blocks_server_has_secret(struct pt_blocks_server *s, int i)
{
    int v;
    pthread_mutex_lock(&s->lock);
    v = s->svc[i].has_secret;
    pthread_mutex_unlock(&s->lock);
    return v;
}

static void env_closed(void *ctx)
{
    (void)ctx;
}

void pt_blocks_server_stop(struct pt_blocks_server *b)
{
    int i;
    pthread_mutex_lock(&b->lock);
    b->stopping = 1;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->lock);
    if (b->heartbeat_running) {
        pthread_join(b->heartbeat, NULL);
        b->heartbeat_running = 0;
    }
    pt_http_stop(b->http);
    b->http = NULL;
    for (i = 0; i < b->nsvc; i++) {
        if (b->svc[i].srv) {
            pt_server_stop(b->svc[i].srv);
            b->svc[i].srv = NULL;
        }
        if (b->svc[i].env && !b->svc[i].env_closed) {
            b->svc[i].env_closed = 1;
            pt_env_uv_close(b->svc[i].env, env_closed, NULL);
        }
    }
}

void pt_blocks_server_free(struct pt_blocks_server *b)
{
    int i;
    for (i = 0; i < b->nsvc; i++) {
        if (b->svc[i].core) pt_blocks_service_close(b->svc[i].core);
        if (b->svc[i].env) pt_env_uv_free(b->svc[i].env);
        free(b->svc[i].dir);
    }
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->wake);
    pt_metrics_free(b->metrics);
    free(b->svc);
    free(b);
}
