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
#include "cluster/env/env_uv.h"
#include "cluster/net/durable.h"
#include "cluster/net/net.h"
#include "petrel/common.h"

#define LOG_MODULE "blocks"

struct blocks_service {
    struct pt_blocks_server *owner;
    struct pt_blocks_store store;
    struct pt_env *env;
    char *dir;
    int opened, open_status, env_closed;
    struct pt_server *srv;
    char address[PT_ADDR_MAX];
    /* Index: sorted by block id. */
    struct pt_block_stat *index;
    size_t count, cap;
    uint64_t used;
    /* Blocks with a write or erase in flight: a second one for the same block waits its turn
       (PT_EBUSY, retried by the client), so an erase proof can never race a write. */
    uint64_t busy[64];
    int nbusy;
    /* Shared with the heartbeat thread (under owner->lock). */
    uint8_t secret[PT_REG_SECRET_SIZE];
    int has_secret;
    uint64_t pub_used, pub_blocks;
};

struct pt_blocks_server {
    uv_loop_t *loop;
    char registry[PT_ADDR_MAX];
    char failure_domain[PT_REG_DOMAIN_MAX];
    uint32_t heartbeat_ms;
    struct blocks_service *svc;
    int nsvc;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    pthread_t heartbeat;
    int heartbeat_running;
};

enum work_op { OP_WRITE, OP_READ, OP_ERASE };

struct blocks_work {
    struct blocks_service *svc;
    struct pt_request *req;
    enum work_op op;
    uint64_t block_id;
    uint32_t crc, size, offset, count;
    const uint8_t *data;
    uint8_t *out;
    size_t out_len;
    int err;
};

/* --- index --------------------------------------------------------------------------------- */

static size_t index_find(const struct blocks_service *s, uint64_t id)
{
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->index[mid].block_id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void publish_usage(struct blocks_service *s)
{
    pthread_mutex_lock(&s->owner->lock);
    s->pub_used = s->used;
    s->pub_blocks = s->count;
    pthread_mutex_unlock(&s->owner->lock);
}

static int index_put(struct blocks_service *s, const struct pt_block_stat *st)
{
    size_t i = index_find(s, st->block_id);
    if (i < s->count && s->index[i].block_id == st->block_id) {
        s->used -= s->index[i].size;
        s->index[i] = *st;
        s->used += st->size;
        return 0;
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        struct pt_block_stat *v = realloc(s->index, cap * sizeof(*v));
        if (!v) return -PT_ENOMEM;
        s->index = v;
        s->cap = cap;
    }
    memmove(&s->index[i + 1], &s->index[i], (s->count - i) * sizeof(*s->index));
    s->index[i] = *st;
    s->count++;
    s->used += st->size;
    return 0;
}

static void index_remove(struct blocks_service *s, uint64_t id)
{
    size_t i = index_find(s, id);
    if (i >= s->count || s->index[i].block_id != id) return;
    s->used -= s->index[i].size;
    memmove(&s->index[i], &s->index[i + 1], (s->count - i - 1) * sizeof(*s->index));
    s->count--;
}

static void on_scan(void *ctx, const struct pt_block_stat *st)
{
    index_put(ctx, st);
}

/* Capacity of the file system holding the service's directory, in bytes (0 if unknown). */
static uint64_t service_capacity(const struct blocks_service *s)
{
    struct statvfs v;
    if (statvfs(s->dir, &v) != 0) return 0;
    return (uint64_t)v.f_blocks * v.f_frsize;
}

/* --- secrets ------------------------------------------------------------------------------- */

static int get_secret(struct blocks_service *s, uint8_t secret[PT_REG_SECRET_SIZE])
{
    int ok;
    pthread_mutex_lock(&s->owner->lock);
    ok = s->has_secret;
    if (ok) memcpy(secret, s->secret, PT_REG_SECRET_SIZE);
    pthread_mutex_unlock(&s->owner->lock);
    return ok;
}

/* --- disk work ----------------------------------------------------------------------------- */

static const char *work_error_text(const struct blocks_work *bw)
{
    switch (bw->err) {
    case -PT_ECORRUPT:
        return "stored block failed its CRC";
    case -PT_ENOENT:
        return "no such block";
    case -PT_EEXIST:
        return "a different block exists under this id";
    case -PT_EBADMSG:
        return "block data does not match its CRC";
    case -PT_ERANGE:
        return "offset beyond the end of the block";
    case -PT_EINVAL:
        return "CRC or size differ from the stored block";
    case -PT_ENOSPC:
        return "disk full";
    default:
        return "block store failed";
    }
}

static void reply_mac(struct blocks_work *bw, enum pt_block_mac_domain domain)
{
    uint8_t secret[PT_REG_SECRET_SIZE], out[8];
    if (!get_secret(bw->svc, secret)) {
        pt_request_reply_error(bw->req, -PT_EAGAIN, "no secret from the registry yet", NULL);
        return;
    }
    pt_put_le64(out, pt_block_mac(secret, domain, bw->svc->store.service_id, bw->block_id, bw->crc,
                                  bw->size));
    pt_request_reply(bw->req, out, sizeof(out));
}

static int busy_claim(struct blocks_service *s, uint64_t id)
{
    int i;
    for (i = 0; i < s->nbusy; i++)
        if (s->busy[i] == id) return 0;
    if (s->nbusy == (int)PT_ARRAY_SIZE(s->busy)) return 0;
    s->busy[s->nbusy++] = id;
    return 1;
}

static void busy_release(struct blocks_service *s, uint64_t id)
{
    int i;
    for (i = 0; i < s->nbusy; i++)
        if (s->busy[i] == id) {
            s->busy[i] = s->busy[--s->nbusy];
            return;
        }
}

static void work_done(struct blocks_work *bw)
{
    struct blocks_service *s = bw->svc;
    if (bw->op != OP_READ) busy_release(s, bw->block_id);
    if (bw->err) {
        if (bw->err == -PT_ECORRUPT)
            petrel_log(PT_LOG_WARN, LOG_MODULE, "%016" PRIx64 ": block %016" PRIx64 " is corrupt",
                       s->store.service_id, bw->block_id);
        pt_request_reply_error(bw->req, bw->err, work_error_text(bw), NULL);
        free(bw->out);
        free(bw);
        return;
    }
    switch (bw->op) {
    case OP_WRITE: {
        struct pt_block_stat st = {bw->block_id, bw->size, bw->crc};
        index_put(s, &st);
        publish_usage(s);
        reply_mac(bw, PT_BLOCK_WRITE_PROOF);
        break;
    }
    case OP_READ:
        pt_request_reply_take(bw->req, bw->out, (uint32_t)bw->out_len);
        bw->out = NULL;
        break;
    case OP_ERASE:
        index_remove(s, bw->block_id);
        publish_usage(s);
        reply_mac(bw, PT_BLOCK_ERASE_PROOF);
        break;
    }
    free(bw);
}

static void write_stored(void *ctx, int status)
{
    struct blocks_work *bw = ctx;
    bw->err = status;
    work_done(bw);
}

/* Writes complete through the env (their fsync off the loop); reads and erases at once. */
static void queue_work(struct blocks_service *s, struct blocks_work *bw)
{
    if (bw->op != OP_READ && !busy_claim(s, bw->block_id)) {
        pt_request_reply_error(bw->req, -PT_EBUSY, "block busy with another write or erase", NULL);
        free(bw);
        return;
    }
    switch (bw->op) {
    case OP_WRITE:
        pt_blocks_store_write(&s->store, bw->block_id, bw->crc, bw->data, bw->size, write_stored,
                              bw);
        return;
    case OP_READ:
        bw->err = pt_blocks_store_read(&s->store, bw->block_id, bw->offset, bw->count, &bw->out,
                                       &bw->out_len);
        break;
    case OP_ERASE:
        bw->err = pt_blocks_store_erase(&s->store, bw->block_id, bw->crc, bw->size);
        break;
    }
    work_done(bw);
}

/* --- requests ------------------------------------------------------------------------------ */

static struct blocks_work *new_work(struct blocks_service *s, struct pt_request *req,
                                    enum work_op op)
{
    struct blocks_work *bw = calloc(1, sizeof(*bw));
    if (!bw) {
        pt_request_reply_error(req, -PT_ENOMEM, "out of memory", NULL);
        return NULL;
    }
    bw->svc = s;
    bw->req = req;
    bw->op = op;
    return bw;
}

static int check_cert(struct blocks_service *s, struct pt_request *req,
                      enum pt_block_mac_domain domain, uint64_t block_id, uint32_t crc,
                      uint32_t size, uint64_t cert)
{
    uint8_t secret[PT_REG_SECRET_SIZE];
    if (!get_secret(s, secret)) {
        pt_request_reply_error(req, -PT_EAGAIN, "no secret from the registry yet", NULL);
        return 0;
    }
    if (!pt_block_mac_check(secret, domain, s->store.service_id, block_id, crc, size, cert)) {
        petrel_log(PT_LOG_WARN, LOG_MODULE,
                   "%016" PRIx64 ": refused %s of block %016" PRIx64 ": bad certificate",
                   s->store.service_id, domain == PT_BLOCK_WRITE_CERT ? "write" : "erase",
                   block_id);
        pt_request_reply_error(req, -PT_ENOTCERT, "certificate does not verify", NULL);
        return 0;
    }
    return 1;
}

static void handle_list(struct blocks_service *s, struct pt_request *req, struct pt_cursor *c)
{
    uint64_t start = pt_dec_u64(c);
    uint32_t max = pt_dec_u32(c), n, i;
    size_t first, cap;
    uint8_t *buf;
    struct pt_cursor out;
    if (!pt_cursor_ok(c) || pt_cursor_left(c)) {
        pt_request_reply_error(req, -PT_EPROTO, "malformed request body", NULL);
        return;
    }
    if (max > PT_BLOCK_LIST_MAX) max = PT_BLOCK_LIST_MAX;
    first = index_find(s, start);
    n = (uint32_t)PT_MIN((size_t)max, s->count - first);
    cap = 4 + (size_t)n * 16 + 1;
    buf = malloc(cap);
    if (!buf) {
        pt_request_reply_error(req, -PT_ENOMEM, "out of memory", NULL);
        return;
    }
    pt_cursor_init(&out, buf, cap);
    pt_enc_u32(&out, n);
    for (i = 0; i < n; i++)
        pt_block_enc_stat(&out, &s->index[first + i]);
    pt_enc_u8(&out, first + n < s->count ? 1 : 0);
    pt_request_reply_take(req, buf, (uint32_t)out.pos);
}

static void handler(void *ctx, struct pt_request *req)
{
    struct blocks_service *s = ctx;
    struct pt_cursor c;
    struct blocks_work *bw;
    pt_cursor_init(&c, (void *)pt_request_body(req), pt_request_body_len(req));
    switch (pt_request_kind(req)) {
    case PT_MSG_PING:
        pt_request_reply(req, pt_request_body(req), pt_request_body_len(req));
        return;
    case PT_MSG_BLOCK_WRITE: {
        struct pt_block_write_req w;
        pt_block_dec_write(&c, &w);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c) != w.size) break;
        if (!check_cert(s, req, PT_BLOCK_WRITE_CERT, w.block_id, w.crc, w.size, w.cert)) return;
        bw = new_work(s, req, OP_WRITE);
        if (!bw) return;
        bw->block_id = w.block_id;
        bw->crc = w.crc;
        bw->size = w.size;
        bw->data = pt_request_body(req) + PT_BLOCK_WRITE_FIELDS; /* owned by req until reply */
        queue_work(s, bw);
        return;
    }
    case PT_MSG_BLOCK_READ: {
        struct pt_block_read_req r;
        pt_block_dec_read(&c, &r);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) break;
        bw = new_work(s, req, OP_READ);
        if (!bw) return;
        bw->block_id = r.block_id;
        bw->offset = r.offset;
        bw->count = r.count;
        queue_work(s, bw);
        return;
    }
    case PT_MSG_BLOCK_ERASE: {
        struct pt_block_erase_req e;
        pt_block_dec_erase(&c, &e);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) break;
        if (!check_cert(s, req, PT_BLOCK_ERASE_CERT, e.block_id, e.crc, e.size, e.cert)) return;
        bw = new_work(s, req, OP_ERASE);
        if (!bw) return;
        bw->block_id = e.block_id;
        bw->crc = e.crc;
        bw->size = e.size;
        queue_work(s, bw);
        return;
    }
    case PT_MSG_BLOCK_STAT: {
        uint64_t id = pt_dec_u64(&c);
        size_t i;
        uint8_t out[16];
        struct pt_cursor oc;
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) break;
        i = index_find(s, id);
        if (i >= s->count || s->index[i].block_id != id) {
            pt_request_reply_error(req, -PT_ENOENT, "no such block", NULL);
            return;
        }
        pt_cursor_init(&oc, out, sizeof(out));
        pt_block_enc_stat(&oc, &s->index[i]);
        pt_request_reply(req, out, sizeof(out));
        return;
    }
    case PT_MSG_BLOCK_LIST:
        handle_list(s, req, &c);
        return;
    case PT_MSG_BLOCK_INFO: {
        struct pt_block_info info;
        uint8_t out[128];
        struct pt_cursor oc;
        if (pt_cursor_left(&c)) break;
        memset(&info, 0, sizeof(info));
        info.service_id = s->store.service_id;
        info.capacity = service_capacity(s);
        info.used = s->used;
        info.blocks = s->count;
        snprintf(info.failure_domain, sizeof(info.failure_domain), "%s", s->owner->failure_domain);
        pt_cursor_init(&oc, out, sizeof(out));
        pt_block_enc_info(&oc, &info);
        pt_request_reply(req, out, (uint32_t)oc.pos);
        return;
    }
    default:
        pt_request_reply_error(req, -PT_ENOTSUP, "unknown message kind for a block service", NULL);
        return;
    }
    pt_request_reply_error(req, -PT_EPROTO, "malformed request body", NULL);
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
        hb.id = s->store.service_id;
        snprintf(hb.failure_domain, sizeof(hb.failure_domain), "%s", b->failure_domain);
        snprintf(hb.addr, sizeof(hb.addr), "%s", s->address);
        hb.capacity = service_capacity(s);
        pthread_mutex_lock(&b->lock);
        hb.used = s->pub_used;
        hb.blocks = s->pub_blocks;
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
    pt_blocks_store_open(s->env, &s->store, service_opened, s);
    while (!s->opened)
        if (uv_run(b->loop, UV_RUN_ONCE) == 0 && !s->opened) return -PT_EIO;
    return s->open_status;
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

int pt_blocks_server_start(uv_loop_t *loop, const struct pt_blocks_server_config *cfg,
                           struct pt_blocks_server **out)
{
    struct pt_blocks_server *b;
    int i, err = 0;
    struct sockaddr_storage ss;
    *out = NULL;
    if (cfg->ndirs <= 0 || !cfg->failure_domain || !cfg->failure_domain[0] ||
        strlen(cfg->failure_domain) >= PT_REG_DOMAIN_MAX || !cfg->registry ||
        pt_addr_parse(cfg->registry, &ss) != 0)
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
    for (i = 0; i < cfg->ndirs && !err; i++) {
        struct blocks_service *s = &b->svc[i];
        struct pt_server_config scfg;
        char addr[PT_ADDR_MAX];
        s->owner = b;
        b->nsvc = i + 1;
        err = open_service(b, s, cfg->dirs[i]);
        if (!err) err = pt_blocks_store_scan(&s->store, on_scan, s);
        if (!err)
            err = listen_address(cfg->listen ? cfg->listen : "127.0.0.1:0", i, addr, sizeof(addr));
        if (err) break;
        publish_usage(s);
        memset(&scfg, 0, sizeof(scfg));
        scfg.listen = addr;
        scfg.max_body = PT_BLOCK_WRITE_FIELDS + PT_BLOCK_MAX_SIZE;
        scfg.handler = handler;
        scfg.ctx = s;
        err = pt_server_start(loop, &scfg, &s->srv);
        if (!err) snprintf(s->address, sizeof(s->address), "%s", pt_server_address(s->srv));
    }
    if (err) {
        pt_blocks_server_stop(b);
        uv_run(loop, UV_RUN_DEFAULT);
        pt_blocks_server_free(b);
        return err;
    }
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
    return s->svc[i].store.service_id;
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
        pt_blocks_store_close(&b->svc[i].store);
        if (b->svc[i].env) pt_env_uv_free(b->svc[i].env);
        free(b->svc[i].dir);
        free(b->svc[i].index);
    }
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->wake);
    free(b->svc);
    free(b);
}
