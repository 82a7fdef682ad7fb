/*
 * The registry server: the registry state machine (registry_state.c) behind the frame server.
 * Owns message dispatch, the wall of validation in front of the state (a malformed body is a
 * PT_EPROTO reply, never a state change), when state is saved (at once after a structural
 * change, within a second after a usage change, and at stop), and where secrets come from
 * (getrandom). Runs entirely on its loop thread.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cluster/storage/durable.h"
#include "cluster/net/net.h"
#include "cluster/proto/frame.h"
#include "cluster/metrics/metrics.h"
#include "cluster/registry/registry.h"
#include "cluster/registry/registry_status.h"
#include "petrel/common.h"

#define LOG_MODULE "registry"

struct pt_registry_server {
    uv_loop_t *loop;
    struct pt_server *srv;
    uv_timer_t save_timer;
    struct pt_registry state;
    char *dir;
    struct pt_metrics *metrics;
    struct pt_http *http;
    char http_addr[PT_ADDR_MAX];
    struct pt_registry_events events;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void save_if_needed(struct pt_registry_server *s, int structural_only)
{
    int err;
    if (!s->state.needs_save || (structural_only && !s->state.structural)) return;
    err = pt_registry_save(&s->state, s->dir);
    if (err) {
        petrel_log(PT_LOG_ERROR, LOG_MODULE, "saving state in %s failed: %s", s->dir,
                   petrel_strerror(err));
        pt_registry_events_add(&s->events, wall_ms(), "saving the registry state in %s failed: %s",
                               s->dir, petrel_strerror(err));
    }
}

static void reply_cursor(struct pt_request *req, uint8_t *buf, struct pt_cursor *c)
{
    if (!pt_cursor_ok(c)) {
        free(buf);
        pt_request_reply_error(req, -PT_ERANGE, "reply too large", NULL);
        return;
    }
    pt_request_reply_take(req, buf, (uint32_t)c->pos);
}

static void handle_list_replicas(const struct pt_registry *state, struct pt_request *req, int cdc,
                                 uint16_t filter, uint64_t now)
{
    size_t n = cdc ? pt_registry_list_cdc(state, now, NULL, 0)
                   : pt_registry_list_shards(state, filter, now, NULL, 0);
    struct pt_reg_replica *v = calloc(n ? n : 1, sizeof(*v));
    size_t cap = 4 + n * pt_reg_replica_entry_max(), i;
    uint8_t *buf = malloc(cap);
    struct pt_cursor c;
    if (!v || !buf) {
        free(v);
        free(buf);
        pt_request_reply_error(req, -PT_ENOMEM, "out of memory", NULL);
        return;
    }
    if (cdc)
        pt_registry_list_cdc(state, now, v, n);
    else
        pt_registry_list_shards(state, filter, now, v, n);
    pt_cursor_init(&c, buf, cap);
    pt_enc_u32(&c, (uint32_t)n);
    for (i = 0; i < n; i++)
        pt_reg_enc_replica_entry(&c, &v[i]);
    free(v);
    reply_cursor(req, buf, &c);
}

static void handle_list_blocks(const struct pt_registry *state, struct pt_request *req,
                               uint64_t now)
{
    size_t n = pt_registry_list_blocks(state, now, NULL, 0);
    struct pt_reg_blocks *v = calloc(n ? n : 1, sizeof(*v));
    size_t cap = 4 + n * pt_reg_blocks_entry_max(), i;
    uint8_t *buf = malloc(cap);
    struct pt_cursor c;
    if (!v || !buf) {
        free(v);
        free(buf);
        pt_request_reply_error(req, -PT_ENOMEM, "out of memory", NULL);
        return;
    }
    pt_registry_list_blocks(state, now, v, n);
    pt_cursor_init(&c, buf, cap);
    pt_enc_u32(&c, (uint32_t)n);
    for (i = 0; i < n; i++)
        pt_reg_enc_blocks_entry(&c, &v[i]);
    free(v);
    reply_cursor(req, buf, &c);
}

int pt_registry_serve_read(const struct pt_registry *state, struct pt_request *req, uint64_t now_ms)
{
    struct pt_cursor c;
    int err;
    pt_cursor_init(&c, (void *)pt_request_body(req), pt_request_body_len(req));
    switch (pt_request_kind(req)) {
    case PT_MSG_REG_LIST_SHARDS: {
        uint16_t filter = pt_dec_u16(&c);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) break;
        handle_list_replicas(state, req, 0, filter, now_ms);
        return 1;
    }
    case PT_MSG_REG_LIST_CDC:
        if (pt_cursor_left(&c)) break;
        handle_list_replicas(state, req, 1, PT_REG_ALL_SHARDS, now_ms);
        return 1;
    case PT_MSG_REG_LIST_BLOCKS:
        if (pt_cursor_left(&c)) break;
        handle_list_blocks(state, req, now_ms);
        return 1;
    case PT_MSG_REG_BLOCK_SECRET: {
        uint8_t secret[PT_REG_SECRET_SIZE];
        uint64_t id = pt_dec_u64(&c);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) break;
        err = pt_registry_block_secret(state, id, secret);
        if (err) {
            pt_request_reply_error(req, err, "unknown block service", NULL);
            return 1;
        }
        pt_request_reply(req, secret, sizeof(secret));
        return 1;
    }
    default:
        return 0;
    }
    pt_request_reply_error(req, -PT_EPROTO, "malformed request body", NULL);
    return 1;
}

int pt_registry_random_secret(uint8_t secret[PT_REG_SECRET_SIZE])
{
    size_t got = 0;
    while (got < PT_REG_SECRET_SIZE) {
        ssize_t n = getrandom(secret + got, PT_REG_SECRET_SIZE - got, 0);
        if (n <= 0) return -PT_EIO;
        got += (size_t)n;
    }
    return 0;
}

static void handler(void *ctx, struct pt_request *req)
{
    struct pt_registry_server *s = ctx;
    struct pt_cursor c;
    int err = 0;
    pt_cursor_init(&c, (void *)pt_request_body(req), pt_request_body_len(req));
    switch (pt_request_kind(req)) {
    case PT_MSG_PING:
        pt_request_reply(req, pt_request_body(req), pt_request_body_len(req));
        return;
    case PT_MSG_REG_SHARD_HEARTBEAT:
    case PT_MSG_REG_CDC_HEARTBEAT: {
        struct pt_reg_replica hb;
        int cdc = pt_request_kind(req) == PT_MSG_REG_CDC_HEARTBEAT;
        if (cdc)
            pt_reg_dec_cdc_heartbeat(&c, &hb);
        else
            pt_reg_dec_shard_heartbeat(&c, &hb);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) break;
        err = cdc ? pt_registry_cdc_heartbeat(&s->state, &hb, pt_now_ms())
                  : pt_registry_shard_heartbeat(&s->state, &hb, pt_now_ms());
        if (err) {
            pt_registry_events_add(
                &s->events, wall_ms(), "%s heartbeat of replica %u (%s) refused: %s",
                cdc ? "CDC" : "shard", hb.replica, hb.addr, petrel_strerror(err));
            pt_request_reply_error(req, err, "heartbeat refused", NULL);
            return;
        }
        save_if_needed(s, 1);
        pt_request_reply(req, NULL, 0);
        return;
    }
    case PT_MSG_REG_BLOCKS_HEARTBEAT: {
        struct pt_reg_blocks hb;
        uint8_t fresh[PT_REG_SECRET_SIZE], secret[PT_REG_SECRET_SIZE];
        pt_reg_dec_blocks_heartbeat(&c, &hb);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) break;
        err = pt_registry_random_secret(fresh);
        if (!err) err = pt_registry_blocks_heartbeat(&s->state, &hb, pt_now_ms(), fresh, secret);
        if (err) {
            pt_registry_events_add(&s->events, wall_ms(),
                                   "heartbeat of block service %016llx (%s) refused: %s",
                                   (unsigned long long)hb.id, hb.addr, petrel_strerror(err));
            pt_request_reply_error(req, err, "heartbeat refused", NULL);
            return;
        }
        save_if_needed(s, 1);
        pt_request_reply(req, secret, sizeof(secret));
        return;
    }
    case PT_MSG_REG_INFO: {
        struct pt_reg_info info;
        uint8_t buf[64 + PT_REG_ADDR_MAX];
        if (pt_cursor_left(&c)) break;
        memset(&info, 0, sizeof(info));
        info.replicas = info.serving = 1;
        snprintf(info.leader, sizeof(info.leader), "%s", pt_server_address(s->srv));
        pt_cursor_init(&c, buf, sizeof(buf));
        pt_reg_enc_info(&c, &info);
        pt_request_reply(req, buf, (uint32_t)c.pos);
        return;
    }
    default:
        if (pt_registry_serve_read(&s->state, req, pt_now_ms())) return;
        pt_request_reply_error(req, -PT_ENOTSUP, "unknown message kind for the registry", NULL);
        return;
    }
    pt_request_reply_error(req, -PT_EPROTO, "malformed request body", NULL);
}

static void on_save_timer(uv_timer_t *t)
{
    struct pt_registry_server *s = t->data;
    save_if_needed(s, 0);
    pt_registry_events_watch(&s->events, &s->state, pt_now_ms(), wall_ms());
}

static void metrics_collect(void *ctx)
{
    struct pt_registry_server *s = ctx;
    pt_registry_metrics_collect(s->metrics, &s->state, pt_now_ms());
}

/* "/" is the status page (rendered on the loop thread, see cluster/metrics). */
static int status_page(void *ctx, const char *path, char **body, size_t *len,
                       const char **content_type)
{
    struct pt_registry_server *s = ctx;
    if (strcmp(path, "/") != 0 && strcmp(path, "/index.html") != 0) return 404;
    pt_registry_events_watch(&s->events, &s->state, pt_now_ms(), wall_ms());
    if (pt_registry_status_page(&s->state, &s->events, pt_server_address(s->srv), pt_now_ms(),
                                wall_ms(), body, len) != 0)
        return 500;
    *content_type = "text/html; charset=utf-8";
    return 200;
}

int pt_registry_server_start(uv_loop_t *loop, const struct pt_registry_server_config *cfg,
                             struct pt_registry_server **out)
{
    struct pt_registry_server *s;
    struct pt_server_config scfg;
    int err;
    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (!s) return -PT_ENOMEM;
    s->loop = loop;
    s->dir = strdup(cfg->dir);
    pt_registry_init(&s->state, cfg->stale_after_ms);
    err = s->dir ? pt_mkdir_p(cfg->dir) : -PT_ENOMEM;
    if (!err) err = pt_registry_load(&s->state, cfg->dir, pt_now_ms());
    if (!err && cfg->using_dynamic_ports) {
        pt_registry_wipe_ports(&s->state);
        err = pt_registry_save(&s->state, cfg->dir);
    }
    if (!err) {
        s->metrics = pt_metrics_new();
        if (!s->metrics || pt_metrics_on_collect(s->metrics, metrics_collect, s) != 0)
            err = -PT_ENOMEM;
    }
    if (!err) {
        memset(&scfg, 0, sizeof(scfg));
        scfg.listen = cfg->listen;
        scfg.max_body = 64 * 1024;
        scfg.handler = handler;
        scfg.ctx = s;
        scfg.metrics = s->metrics;
        err = pt_server_start(loop, &scfg, &s->srv);
    }
    if (!err && cfg->http) {
        err = pt_http_start(loop, cfg->http, s->metrics, status_page, s, &s->http);
        if (err) {
            pt_server_stop(s->srv);
            s->srv = NULL;
        } else {
            snprintf(s->http_addr, sizeof(s->http_addr), "%s", pt_http_address(s->http));
        }
    }
    if (err) {
        pt_metrics_free(s->metrics);
        pt_registry_free(&s->state);
        free(s->dir);
        free(s);
        return err;
    }
    uv_timer_init(loop, &s->save_timer);
    s->save_timer.data = s;
    uv_timer_start(&s->save_timer, on_save_timer, 1000, 1000);
    *out = s;
    return 0;
}

const char *pt_registry_server_address(const struct pt_registry_server *s)
{
    return pt_server_address(s->srv);
}

const char *pt_registry_server_http_address(const struct pt_registry_server *s)
{
    return s->http_addr;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct pt_registry_server *s = h->data;
    pt_registry_free(&s->state);
    pt_metrics_free(s->metrics);
    free(s->dir);
    free(s);
}

int pt_registry_server_stop(struct pt_registry_server *s)
{
    int err = 0;
    if (s->state.needs_save) err = pt_registry_save(&s->state, s->dir);
    pt_http_stop(s->http);
    s->http = NULL;
    pt_server_stop(s->srv);
    uv_close((uv_handle_t *)&s->save_timer, on_timer_closed);
    return err;
}
