/*
 * Block services in the simulator (see sim_blocks.h): the services' processes and their
 * incarnations, the lying disk layer, the transport of block requests over env messages, the
 * clients' workload and the checker. Everything is drawn from the run's seed, so a seed
 * replays a run event for event.
 *
 * Transport (simulator only; production uses frames, docs/PROTOCOL.md): a request is
 *   u32 crc32c of the rest | u64 request id | u16 kind | body
 * and a reply
 *   u32 crc32c of the rest | u64 request id | i32 status | body (empty on an error).
 * A message whose CRC fails is dropped, as an unauthenticated frame is in production, so the
 * network's corruption never reaches the checker as a wrong byte from a service.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/blocks/blocks.h"
#include "cluster/client/blocks_client.h"
#include "cluster/ec/ec.h"
#include "cluster/env/env.h"
#include "cluster/replica/entry.h"
#include "cluster/shard/repair_rebuild.h"
#include "cluster/shard/shard_repair.h"
#include "cluster/shard/shard_sm.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "sim_blocks.h"

#define FILES_MAX 4096
#define REQ_HDR 14
#define REPLY_HDR 16
#define ATTEMPT_MS 400
#define WRITE_ATTEMPTS 40
#define FINAL_ATTEMPTS 20

struct sb;

/* ---- services ------------------------------------------------------------------------------ */

/* The env a service's store sees: the simulator's, plus silent corruption of writes. */
struct lie_env {
    struct pt_env base;
    struct pt_env *inner;
    struct sb *c;
};

/* One incarnation of a service process. Kept until the run ends: writes in flight on a dead
 * incarnation still complete through its env and free their service core. */
struct sb_inc {
    struct sb_service *svc;
    struct lie_env env;
    struct pt_blocks_service *core;
    int dead, opening, ready;
    struct sb_inc *next;
};

struct sb_service {
    struct sb *c;
    unsigned idx;
    struct sim_proc *proc;
    char addr[PT_ENV_ADDR_MAX];
    uint8_t secret[PT_REG_SECRET_SIZE];
    uint64_t id;       /* the store's service id, fixed at the first start */
    uint64_t lied_at;  /* 1 + time of the last crash at which its disk served stale data */
    int lost;          /* its disk lied about its identity file: out for good (disk replaced) */
    struct sb_inc *cur;
};

/* A reply owed to a client: lives until sent or the run ends. */
struct sb_reply {
    struct sb_inc *inc;
    char to[PT_ENV_ADDR_MAX];
    uint64_t req_id;
    struct sb_reply *prev, *next;
};

/* ---- the model and the clients ---------------------------------------------------------------- */

struct sb_file {
    uint64_t block_id;
    uint32_t crc, size;
    uint8_t *data;
    unsigned svc[2];
    int proof[2];        /* a write proof verified */
    uint64_t proof_at[2];
    int rotted[2];
    int acked;
    int whole[2]; /* the final check read the copy back whole and right */
    int repair;   /* the repair phase must rebuild its copy on the dead service */
    int unrecoverable; /* its one good copy was on the dead service (the other rotted or lied) */
    int deleted;  /* a client started erasing it: no more reads */
    int erased[2];  /* an erase proof verified */
    uint64_t erased_at[2], write_seen_at[2];  /* last arrival of a write of it at the service */
};

enum sb_op { SB_IDLE, SB_WRITE, SB_READ, SB_ERASE, SB_FINAL };

struct sb_client {
    struct sb *c;
    unsigned idx;
    struct sim_proc *proc;
    struct pt_env *env;
    char addr[PT_ENV_ADDR_MAX];
    enum sb_op op;
    size_t file;
    unsigned copy, first, tries, attempts;
    int final_erased; /* the final read is of a copy with an erase proof */
    uint32_t off, count;
    uint64_t req_id, timer, seq;
};

struct sb {
    struct sim_blocks_config cfg;
    struct sim_blocks_result *res;
    struct sim *sim;
    struct sb_service svc[SIM_BLOCKS_SERVICES_MAX];
    struct sb_client cl[SIM_BLOCKS_CLIENTS_MAX];
    struct sb_inc *incs;
    struct sb_reply *replies;
    struct sb_file files[FILES_MAX];
    size_t n_files;
    size_t final_next; /* the final check's next (file, copy), as file * 2 + copy */
    int lying, stop_clients, violated, final_done;
    uint64_t stale_seen;
};

static void sb_violate(struct sb *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_violate(struct sb *c, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (c->violated) return;
    c->violated = 1;
    n = snprintf(c->res->violation, sizeof(c->res->violation), "at %llu ms: ",
                 (unsigned long long)sim_now(c->sim));
    va_start(ap, fmt);
    vsnprintf(c->res->violation + n, sizeof(c->res->violation) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---- the lying disk --------------------------------------------------------------------------- */

static struct pt_env *inner(struct pt_env *e)
{
    return ((struct lie_env *)e)->inner;
}

static uint64_t l_now(struct pt_env *e) { return pt_env_now(inner(e)); }
static uint64_t l_wall_ms(struct pt_env *e) { return pt_env_wall_ms(inner(e)); }
static uint64_t l_random(struct pt_env *e) { return pt_env_random(inner(e)); }
static uint64_t l_timer(struct pt_env *e, uint64_t ms, pt_env_cb cb, void *ctx)
{
    return pt_env_timer(inner(e), ms, cb, ctx);
}
static void l_cancel(struct pt_env *e, uint64_t id) { pt_env_cancel(inner(e), id); }
static int l_listen(struct pt_env *e, const char *self, pt_env_msg_cb cb, void *ctx)
{
    return pt_env_listen(inner(e), self, cb, ctx);
}
static int l_send(struct pt_env *e, const char *to, const uint8_t *msg, size_t len)
{
    return pt_env_send(inner(e), to, msg, len);
}
static int l_open(struct pt_env *e, const char *path, int flags)
{
    return pt_env_open(inner(e), path, flags);
}
static int l_close(struct pt_env *e, int fd) { return pt_env_close(inner(e), fd); }
static int64_t l_pread(struct pt_env *e, int fd, void *buf, size_t len, uint64_t off)
{
    return pt_env_pread(inner(e), fd, buf, len, off);
}

/* A write that lands with one byte changed and reports success: only a read-back catches it. */
static int l_pwrite(struct pt_env *e, int fd, const void *buf, size_t len, uint64_t off)
{
    struct lie_env *l = (struct lie_env *)e;
    struct sb *c = l->c;
    uint8_t *bad;
    size_t at;
    int rc;
    if (!c->lying || !len || !sim_chance(c->sim, c->cfg.corrupt_write_ppm))
        return pt_env_pwrite(l->inner, fd, buf, len, off);
    bad = malloc(len);
    if (!bad) abort();
    memcpy(bad, buf, len);
    at = (size_t)sim_below(c->sim, len);
    bad[at] ^= (uint8_t)(1u << sim_below(c->sim, 8));
    rc = pt_env_pwrite(l->inner, fd, bad, len, off);
    free(bad);
    if (rc == 0) c->res->corrupt_writes++;
    return rc;
}
static int l_truncate(struct pt_env *e, int fd, uint64_t size)
{
    return pt_env_truncate(inner(e), fd, size);
}
static int64_t l_size(struct pt_env *e, int fd) { return pt_env_size(inner(e), fd); }
static void l_fsync(struct pt_env *e, int fd, void (*done)(void *ctx, int status), void *ctx)
{
    pt_env_fsync(inner(e), fd, done, ctx);
}
static int l_rename(struct pt_env *e, const char *from, const char *to)
{
    return pt_env_rename(inner(e), from, to);
}
static int l_unlink(struct pt_env *e, const char *path) { return pt_env_unlink(inner(e), path); }
static int l_mkdir(struct pt_env *e, const char *path) { return pt_env_mkdir(inner(e), path); }
static int l_fsync_dir(struct pt_env *e, const char *path)
{
    return pt_env_fsync_dir(inner(e), path);
}
static int l_list(struct pt_env *e, const char *path, char *buf, size_t cap)
{
    return pt_env_list(inner(e), path, buf, cap);
}

static const struct pt_env_ops lie_ops = {
    .now = l_now,
    .wall_ms = l_wall_ms,
    .random = l_random,
    .timer = l_timer,
    .cancel = l_cancel,
    .listen = l_listen,
    .send = l_send,
    .open = l_open,
    .close = l_close,
    .pread = l_pread,
    .pwrite = l_pwrite,
    .truncate = l_truncate,
    .size = l_size,
    .fsync = l_fsync,
    .rename = l_rename,
    .unlink = l_unlink,
    .mkdir = l_mkdir,
    .fsync_dir = l_fsync_dir,
    .list = l_list,
};

/* ---- the transport ------------------------------------------------------------------------------ */

static void reply_free(struct sb *c, struct sb_reply *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        c->replies = r->next;
    if (r->next) r->next->prev = r->prev;
    free(r);
}

static void send_reply(void *ctx, int status, const char *why, uint8_t *body, size_t len)
{
    struct sb_reply *r = ctx;
    struct sb *c = r->inc->svc->c;
    uint8_t *msg;
    (void)why;
    if (status) len = 0;
    if (!r->inc->dead && (msg = malloc(REPLY_HDR + len)) != NULL) {
        pt_put_le64(msg + 4, r->req_id);
        pt_put_le32(msg + 12, (uint32_t)status);
        if (len) memcpy(msg + REPLY_HDR, body, len);
        pt_put_le32(msg, petrel_crc32c(0, msg + 4, REPLY_HDR - 4 + len));
        pt_env_send(&r->inc->env.base, r->to, msg, REPLY_HDR + len);
        free(msg);
    }
    free(body);
    reply_free(c, r);
}

static void service_msg(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct sb_inc *in = ctx;
    struct sb *c = in->svc->c;
    struct sb_reply *r;
    if (in->dead || !in->ready || len < REQ_HDR ||
        pt_get_le32(msg) != petrel_crc32c(0, msg + 4, len - 4))
        return;
    if (pt_get_le16(msg + 12) == PT_MSG_BLOCK_WRITE && len >= REQ_HDR + 8) {
        /* For the checker: a write delivered after an erase may bring the block back (the
           network replays requests; a certificate does not expire). */
        uint64_t id = pt_get_le64(msg + REQ_HDR);
        size_t i = (size_t)(id & 0xffffffffffull);
        if (i < c->n_files && c->files[i].block_id == id) {
            struct sb_file *f = &c->files[i];
            unsigned k;
            for (k = 0; k < 2; k++)
                if (f->svc[k] == in->svc->idx) f->write_seen_at[k] = sim_now(c->sim);
        }
    }
    r = calloc(1, sizeof(*r));
    if (!r) abort();
    r->inc = in;
    snprintf(r->to, sizeof(r->to), "%s", from);
    r->req_id = pt_get_le64(msg + 4);
    r->next = c->replies;
    if (c->replies) c->replies->prev = r;
    c->replies = r;
    pt_blocks_service_handle(in->core, pt_get_le16(msg + 12), msg + REQ_HDR, len - REQ_HDR,
                             send_reply, r);
}

/* ---- service lifecycle ------------------------------------------------------------------------- */

static int svc_secret(void *ctx, uint8_t secret[PT_REG_SECRET_SIZE])
{
    struct sb_inc *in = ctx;
    memcpy(secret, in->svc->secret, PT_REG_SECRET_SIZE);
    return 1;
}

static void svc_open(struct sb_inc *in);

static void svc_retry(void *ctx)
{
    struct sb_inc *in = ctx;
    if (!in->dead) svc_open(in);
}

static void svc_opened(void *ctx, int status)
{
    struct sb_inc *in = ctx;
    struct sb_service *s = in->svc;
    in->opening = 0;
    if (!status && !in->dead) status = pt_blocks_service_init(in->core);
    if (!in->dead && status == -PT_ECORRUPT && s->lied_at) {
        /* The identity file went stale with the rest: the service refuses to start under a
           guessed identity, by design; an operator replaces the disk. Its copies are excused
           by the lie already. */
        s->lost = 1;
        pt_blocks_service_close(in->core);
        in->core = NULL;
        return;
    }
    if (in->dead || status) {
        /* A failed start (an EIO on the way) is retried, as a supervisor would. */
        pt_blocks_service_close(in->core);
        in->core = NULL;
        if (!in->dead) pt_env_timer(in->env.inner, 100, svc_retry, in);
        return;
    }
    if (s->id && s->id != in->core->store.service_id)
        sb_violate(s->c, "b%u: service id changed from %016llx to %016llx", s->idx,
                   (unsigned long long)s->id, (unsigned long long)in->core->store.service_id);
    s->id = in->core->store.service_id;
    if (pt_env_listen(in->env.inner, s->addr, service_msg, in) != 0) {
        sb_violate(s->c, "b%u: cannot listen", s->idx);
        return;
    }
    in->ready = 1;
}

static void svc_open(struct sb_inc *in)
{
    struct sb_service *s = in->svc;
    in->core = calloc(1, sizeof(*in->core));
    if (!in->core) abort();
    in->core->get_secret = svc_secret;
    in->core->hook_ctx = in;
    snprintf(in->core->failure_domain, sizeof(in->core->failure_domain), "fd%u", s->idx);
    in->opening = 1;
    pt_blocks_store_open(&in->env.base, &in->core->store, svc_opened, in);
}

static void svc_start(void *ctx)
{
    struct sb_service *s = ctx;
    struct sb_inc *in = calloc(1, sizeof(*in));
    if (!in) abort();
    in->svc = s;
    in->env.base.ops = &lie_ops;
    in->env.inner = sim_proc_env(s->proc);
    in->env.c = s->c;
    in->next = s->c->incs;
    s->c->incs = in;
    s->cur = in;
    svc_open(in);
}

static void svc_stop(void *ctx)
{
    struct sb_service *s = ctx;
    struct sb *c = s->c;
    struct sb_inc *in = s->cur;
    uint64_t stale = sim_stats(c->sim)->stale_files;
    if (stale != c->stale_seen) { /* this crash's disk served old versions of files */
        c->stale_seen = stale;
        s->lied_at = 1 + sim_now(c->sim);
        c->res->lied_services++;
    }
    if (c->cfg.verbose)
        fprintf(stderr, "%8llu b%u crash\n", (unsigned long long)sim_now(c->sim), s->idx);
    s->cur = NULL;
    if (!in) return;
    in->dead = 1;
    if (in->core && !in->opening) {
        pt_blocks_service_close(in->core);
        in->core = NULL;
    }
}

/* ---- clients --------------------------------------------------------------------------------- */

static void client_next(void *ctx);

static void client_timeout(void *ctx);

static void client_after(struct sb_client *cl, uint64_t ms)
{
    cl->timer = pt_env_timer(cl->env, ms, client_next, cl);
}

static void client_done(struct sb_client *cl)
{
    cl->op = SB_IDLE;
    client_after(cl, 1 + sim_below(cl->c->sim, 50));
}

static void client_send(struct sb_client *cl, unsigned svc, uint16_t kind, const uint8_t *body,
                        size_t len)
{
    uint8_t *msg = malloc(REQ_HDR + len);
    if (!msg) abort();
    cl->req_id = ((uint64_t)cl->idx << 48) | ++cl->seq;
    pt_put_le64(msg + 4, cl->req_id);
    pt_put_le16(msg + 12, kind);
    if (len) memcpy(msg + REQ_HDR, body, len);
    pt_put_le32(msg, petrel_crc32c(0, msg + 4, REQ_HDR - 4 + len));
    pt_env_send(cl->env, cl->c->svc[svc].addr, msg, REQ_HDR + len);
    free(msg);
    cl->timer = pt_env_timer(cl->env, ATTEMPT_MS, client_timeout, cl);
}

static void send_write(struct sb_client *cl)
{
    struct sb *c = cl->c;
    struct sb_file *f = &c->files[cl->file];
    struct sb_service *s = &c->svc[f->svc[cl->copy]];
    struct pt_block_write_req w;
    struct pt_cursor cur;
    uint8_t *body = malloc(PT_BLOCK_WRITE_FIELDS + f->size + 1);
    if (!body) abort();
    w.block_id = f->block_id;
    w.crc = f->crc;
    w.size = f->size;
    /* The certificate the owning shard issues, under the service's secret. */
    w.cert = pt_block_mac(s->secret, PT_BLOCK_WRITE_CERT, s->id, f->block_id, f->crc, f->size);
    pt_cursor_init(&cur, body, PT_BLOCK_WRITE_FIELDS + f->size);
    pt_block_enc_write(&cur, &w);
    if (f->size) memcpy(body + PT_BLOCK_WRITE_FIELDS, f->data, f->size);
    cl->attempts++;
    c->res->write_attempts++;
    client_send(cl, f->svc[cl->copy], PT_MSG_BLOCK_WRITE, body, PT_BLOCK_WRITE_FIELDS + f->size);
    free(body);
}

static void send_erase(struct sb_client *cl)
{
    struct sb *c = cl->c;
    struct sb_file *f = &c->files[cl->file];
    struct sb_service *s = &c->svc[f->svc[cl->copy]];
    struct pt_block_erase_req e;
    struct pt_cursor cur;
    uint8_t body[24];
    e.block_id = f->block_id;
    e.crc = f->crc;
    e.size = f->size;
    /* The certificate the shard's GC issues once the file's retention is over. */
    e.cert = pt_block_mac(s->secret, PT_BLOCK_ERASE_CERT, s->id, f->block_id, f->crc, f->size);
    pt_cursor_init(&cur, body, sizeof(body));
    pt_block_enc_erase(&cur, &e);
    cl->attempts++;
    client_send(cl, f->svc[cl->copy], PT_MSG_BLOCK_ERASE, body, sizeof(body));
}

static void send_read(struct sb_client *cl, unsigned copy)
{
    struct sb_file *f = &cl->c->files[cl->file];
    struct pt_block_read_req r;
    struct pt_cursor cur;
    uint8_t body[16];
    r.block_id = f->block_id;
    r.offset = cl->off;
    r.count = cl->count;
    pt_cursor_init(&cur, body, sizeof(body));
    pt_block_enc_read(&cur, &r);
    cl->copy = copy;
    cl->attempts++;
    client_send(cl, f->svc[copy], PT_MSG_BLOCK_READ, body, sizeof(body));
}

static int copy_excused(const struct sb *c, const struct sb_file *f, unsigned k)
{
    const struct sb_service *s = &c->svc[f->svc[k]];
    return f->rotted[k] || (s->lied_at && s->lied_at > f->proof_at[k]);
}

/*
 * A successful read reply from service `svc` for file f: every byte must be the file's
 * (checked before the page CRCs: a service must never hand out a wrong byte). Returns 1 if the
 * reply is whole (layout right and every page CRC matches), 0 if the client must not use it.
 */
static int check_read(struct sb_client *cl, struct sb_file *f, const uint8_t *body, size_t len)
{
    struct sb *c = cl->c;
    struct pt_block_read_resp r;
    struct pt_cursor cur;
    const uint8_t *crcs, *data;
    uint32_t want_first, want_end, got, size;
    uint8_t *buf;
    int err;
    pt_cursor_init(&cur, (void *)body, len);
    pt_block_dec_read_resp(&cur, &r);
    crcs = pt_cursor_ok(&cur) ? pt_cursor_take(&cur, (size_t)r.pages * 4) : NULL;
    data = pt_cursor_ok(&cur) ? pt_cursor_take(&cur, r.data_len) : NULL;
    if (!pt_cursor_ok(&cur) || pt_cursor_left(&cur) || r.block_size != f->size ||
        r.data_offset > f->size || r.data_len > f->size - r.data_offset) {
        sb_violate(c, "b%u: malformed read reply for block %016llx", f->svc[cl->copy],
                   (unsigned long long)f->block_id);
        return 0;
    }
    if (r.data_len && memcmp(data, f->data + r.data_offset, r.data_len) != 0) {
        sb_violate(c, "b%u returned bytes of block %016llx (offset %u, %u bytes) that were never "
                      "written%s",
                   f->svc[cl->copy], (unsigned long long)f->block_id, r.data_offset, r.data_len,
                   f->rotted[cl->copy] ? " (the copy rotted: its page CRC must have failed)" : "");
        return 0;
    }
    want_first = cl->off < f->size ? cl->off / PT_BLOCK_PAGE_SIZE * PT_BLOCK_PAGE_SIZE : 0;
    want_end = (uint32_t)PT_MIN((uint64_t)cl->off + cl->count, f->size);
    if (cl->count && cl->off < f->size &&
        (r.data_offset != want_first || r.data_offset + r.data_len < want_end)) {
        sb_violate(c, "b%u: read reply for block %016llx does not cover the range asked",
                   f->svc[cl->copy], (unsigned long long)f->block_id);
        return 0;
    }
    (void)crcs;
    /* What the production client makes of it: page CRCs checked, then the range's bytes. */
    buf = malloc(f->size + 1);
    if (!buf) abort();
    err = pt_blocks_read_resp_check(body, len, cl->off, cl->count, buf, &got, &size);
    if (!err && (size != f->size || got != (cl->off < f->size ? want_end - cl->off : 0) ||
                 (got && memcmp(buf, f->data + cl->off, got) != 0)))
        sb_violate(c, "the client accepted a wrong read of block %016llx from b%u",
                   (unsigned long long)f->block_id, f->svc[cl->copy]);
    free(buf);
    if (err) return 0; /* a rotten CRC entry: the client drops the copy */
    c->res->reads_checked++;
    return 1;
}

static void start_write(struct sb_client *cl)
{
    struct sb *c = cl->c;
    struct sb_file *f;
    unsigned a, b, n = c->cfg.services;
    uint64_t pick = sim_below(c->sim, 100);
    if (c->n_files == FILES_MAX) {
        client_done(cl);
        return;
    }
    f = &c->files[c->n_files];
    memset(f, 0, sizeof(*f));
    cl->file = c->n_files++;
    f->block_id = ((uint64_t)(cl->idx + 1) << 40) | (uint64_t)cl->file;
    /* mostly small blocks, some several pages, a few empty or page-aligned */
    f->size = pick < 3    ? 0
              : pick < 8  ? PT_BLOCK_PAGE_SIZE * (uint32_t)(1 + sim_below(c->sim, 4))
              : pick < 70 ? (uint32_t)(1 + sim_below(c->sim, 6000))
                          : (uint32_t)(6000 + sim_below(c->sim, 30000));
    f->data = malloc(f->size ? f->size : 1);
    if (!f->data) abort();
    sim_fill(c->sim, f->data, f->size);
    f->crc = pt_block_crc(f->data, f->size);
    /* two services, hence two failure domains */
    a = (unsigned)sim_below(c->sim, n);
    b = (a + 1 + (unsigned)sim_below(c->sim, n - 1)) % n;
    f->svc[0] = a;
    f->svc[1] = b;
    cl->op = SB_WRITE;
    cl->copy = 0;
    cl->attempts = 0;
    send_write(cl);
}

static int pick_acked(struct sb *c, size_t *out)
{
    size_t tries;
    if (!c->n_files) return 0;
    for (tries = 0; tries < 8; tries++) {
        size_t i = (size_t)sim_below(c->sim, c->n_files);
        if (c->files[i].acked && !c->files[i].deleted) {
            *out = i;
            return 1;
        }
    }
    return 0;
}

static void start_read(struct sb_client *cl)
{
    struct sb *c = cl->c;
    struct sb_file *f;
    if (!pick_acked(c, &cl->file)) {
        start_write(cl);
        return;
    }
    f = &c->files[cl->file];
    cl->op = SB_READ;
    cl->off = f->size ? (uint32_t)sim_below(c->sim, f->size + 1) : 0;
    cl->count = (uint32_t)sim_below(c->sim, f->size + 2);
    if (sim_chance(c->sim, 300000)) {
        cl->off = 0;
        cl->count = f->size;
    }
    cl->first = (unsigned)sim_below(c->sim, 2);
    cl->tries = 0;
    cl->attempts = 0;
    send_read(cl, cl->first);
}

static void start_erase(struct sb_client *cl)
{
    struct sb *c = cl->c;
    if (!pick_acked(c, &cl->file)) {
        start_write(cl);
        return;
    }
    c->files[cl->file].deleted = 1;
    cl->op = SB_ERASE;
    cl->copy = 0;
    cl->attempts = 0;
    send_erase(cl);
}

/* The final check: every copy of every acknowledged file, from its own service. */
static void final_next(struct sb_client *cl)
{
    struct sb *c = cl->c;
    while (c->final_next < c->n_files * 2) {
        size_t i = c->final_next / 2;
        unsigned k = (unsigned)(c->final_next % 2);
        struct sb_file *f = &c->files[i];
        if ((f->proof[k] || f->erased[k]) && !c->svc[f->svc[k]].lost) {
            cl->op = SB_FINAL;
            cl->final_erased = f->erased[k];
            cl->file = i;
            cl->off = 0;
            cl->count = f->size;
            cl->attempts = 0;
            send_read(cl, k);
            return;
        }
        c->final_next++;
    }
    c->final_done = 1;
    cl->op = SB_IDLE;
}

static void final_copy_done(struct sb_client *cl, int status, int whole)
{
    struct sb *c = cl->c;
    struct sb_file *f = &c->files[cl->file];
    unsigned k = cl->copy;
    c->res->copies_checked++;
    if (!whole && !copy_excused(c, f, k))
        sb_violate(c,
                   "b%u gave a write proof for block %016llx (%u bytes) at %llu ms, but after "
                   "healing it reads back %s",
                   f->svc[k], (unsigned long long)f->block_id, f->size,
                   (unsigned long long)f->proof_at[k],
                   status ? petrel_strerror(status) : "with a bad page CRC");
    f->whole[k] = whole;
    c->final_next++;
    final_next(cl);
}

/* A copy with an erase proof: gone for good, unless a replayed write of it came later. */
static void final_erased_done(struct sb_client *cl, int status)
{
    struct sb *c = cl->c;
    struct sb_file *f = &c->files[cl->file];
    unsigned k = cl->copy;
    c->res->copies_checked++;
    if (status != -PT_ENOENT && f->write_seen_at[k] <= f->erased_at[k])
        sb_violate(c,
                   "b%u gave an erase proof for block %016llx at %llu ms, but after healing it "
                   "answers %s",
                   f->svc[k], (unsigned long long)f->block_id,
                   (unsigned long long)f->erased_at[k],
                   status ? petrel_strerror(status) : "with the block");
    c->final_next++;
    final_next(cl);
}

static void client_reply(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct sb_client *cl = ctx;
    struct sb *c = cl->c;
    struct sb_file *f;
    int status, whole;
    const uint8_t *body;
    size_t blen;
    (void)from;
    if (len < REPLY_HDR || pt_get_le32(msg) != petrel_crc32c(0, msg + 4, len - 4) ||
        pt_get_le64(msg + 4) != cl->req_id || cl->op == SB_IDLE)
        return; /* damaged, late or duplicated */
    pt_env_cancel(cl->env, cl->timer);
    cl->req_id = 0;
    status = (int32_t)pt_get_le32(msg + 12);
    body = msg + REPLY_HDR;
    blen = len - REPLY_HDR;
    f = &c->files[cl->file];
    switch (cl->op) {
    case SB_WRITE: {
        struct sb_service *s = &c->svc[f->svc[cl->copy]];
        if (status == 0) {
            if (blen != 8 || !pt_block_mac_check(s->secret, PT_BLOCK_WRITE_PROOF, s->id,
                                                 f->block_id, f->crc, f->size, pt_get_le64(body))) {
                sb_violate(c, "b%u: write proof for block %016llx does not verify", s->idx,
                           (unsigned long long)f->block_id);
                return;
            }
            f->proof[cl->copy] = 1;
            f->proof_at[cl->copy] = sim_now(c->sim);
            if (cl->copy == 1) {
                f->acked = 1;
                c->res->files_acked++;
                client_done(cl);
                return;
            }
            cl->copy = 1;
            cl->attempts = 0;
            send_write(cl);
            return;
        }
        if (status == -PT_ENOTCERT || status == -PT_EBADMSG || status == -PT_EEXIST ||
            status == -PT_EPROTO) {
            sb_violate(c, "b%u refused a valid write of block %016llx: %s", s->idx,
                       (unsigned long long)f->block_id, petrel_strerror(status));
            return;
        }
        /* EIO, ENOSPC, EBUSY, ECORRUPT (the read-back failed): retry the same write */
        if (cl->attempts >= WRITE_ATTEMPTS) {
            c->res->files_abandoned++;
            client_done(cl);
            return;
        }
        cl->timer = pt_env_timer(cl->env, 50 + sim_below(c->sim, 200), client_timeout, cl);
        return;
    }
    case SB_READ:
        whole = status == 0 && check_read(cl, f, body, blen);
        if (c->violated) return;
        if (whole || ++cl->tries == 2) {
            if (!whole) c->res->reads_unavailable++;
            if (whole && cl->tries) c->res->reads_fallback++;
            client_done(cl);
            return;
        }
        send_read(cl, 1 - cl->copy); /* the other copy */
        return;
    case SB_ERASE: {
        struct sb_service *s = &c->svc[f->svc[cl->copy]];
        if (status == 0) {
            if (blen != 8 || !pt_block_mac_check(s->secret, PT_BLOCK_ERASE_PROOF, s->id,
                                                 f->block_id, f->crc, f->size, pt_get_le64(body))) {
                sb_violate(c, "b%u: erase proof for block %016llx does not verify", s->idx,
                           (unsigned long long)f->block_id);
                return;
            }
            f->erased[cl->copy] = 1;
            f->erased_at[cl->copy] = sim_now(c->sim);
            if (cl->copy == 1) {
                c->res->files_erased++;
                client_done(cl);
                return;
            }
            cl->copy = 1;
            cl->attempts = 0;
            send_erase(cl);
            return;
        }
        if (status == -PT_ENOTCERT || status == -PT_EINVAL || status == -PT_EPROTO) {
            sb_violate(c, "b%u refused a valid erase of block %016llx: %s", s->idx,
                       (unsigned long long)f->block_id, petrel_strerror(status));
            return;
        }
        if (cl->attempts >= WRITE_ATTEMPTS) {
            client_done(cl);
            return;
        }
        cl->timer = pt_env_timer(cl->env, 50 + sim_below(c->sim, 200), client_timeout, cl);
        return;
    }
    case SB_FINAL:
        whole = status == 0 && check_read(cl, f, body, blen);
        if (c->violated) return;
        if (cl->final_erased)
            final_erased_done(cl, status);
        else
            final_copy_done(cl, status, whole);
        return;
    case SB_IDLE:
        return;
    }
}

/* No reply in time: write again (same block, idempotent), or read the other copy. */
static void client_timeout(void *ctx)
{
    struct sb_client *cl = ctx;
    struct sb *c = cl->c;
    cl->timer = 0;
    cl->req_id = 0;
    if (c->violated) return;
    switch (cl->op) {
    case SB_WRITE:
        if (cl->attempts >= WRITE_ATTEMPTS) {
            c->res->files_abandoned++;
            client_done(cl);
        } else {
            send_write(cl);
        }
        return;
    case SB_READ:
        if (++cl->tries == 2) {
            c->res->reads_unavailable++;
            client_done(cl);
        } else {
            send_read(cl, 1 - cl->copy);
        }
        return;
    case SB_ERASE:
        if (cl->attempts >= WRITE_ATTEMPTS)
            client_done(cl);
        else
            send_erase(cl);
        return;
    case SB_FINAL:
        if (cl->attempts < FINAL_ATTEMPTS)
            send_read(cl, cl->copy);
        else if (cl->final_erased)
            final_erased_done(cl, -PT_ETIMEDOUT);
        else
            final_copy_done(cl, -PT_ETIMEDOUT, 0);
        return;
    case SB_IDLE:
        return;
    }
}

static void client_next(void *ctx)
{
    struct sb_client *cl = ctx;
    struct sb *c = cl->c;
    uint64_t pick;
    cl->timer = 0;
    if (c->violated || c->stop_clients) return;
    pick = sim_below(c->sim, 100);
    if (pick < 40)
        start_write(cl);
    else if (pick < 90)
        start_read(cl);
    else
        start_erase(cl);
}

/* ---- rot at rest ----------------------------------------------------------------------------- */

static void rot_synced(void *ctx, int status)
{
    (void)ctx;
    (void)status;
}

/* Flip one byte of one stored copy of an acknowledged file whose other copy is sound. */
static void rot_tick(void *ctx)
{
    struct sb *c = ctx;
    size_t i;
    unsigned k;
    struct sb_file *f;
    struct sb_service *s;
    struct pt_env *e;
    char path[96];
    int fd;
    int64_t size;
    if (c->violated || !c->lying) return;
    pt_env_timer(sim_proc_env(c->cl[0].proc), 1000, rot_tick, c);
    if (!sim_chance(c->sim, c->cfg.rot_ppm) || !pick_acked(c, &i)) return;
    f = &c->files[i];
    k = (unsigned)sim_below(c->sim, 2);
    s = &c->svc[f->svc[k]];
    if (f->rotted[0] || f->rotted[1] || copy_excused(c, f, 1 - k) || !s->cur || !f->size) return;
    e = s->cur->env.inner;
    snprintf(path, sizeof(path), "blocks/%02x/%016llx.blk", (unsigned)(f->block_id & 0xff),
             (unsigned long long)f->block_id);
    fd = pt_env_open(e, path, PT_ENV_RDWR);
    if (fd < 0) return;
    f->rotted[k] = 1; /* from here on, whatever happens to the write below */
    size = pt_env_size(e, fd);
    if (size > 0) {
        uint64_t at = sim_below(c->sim, (uint64_t)size);
        uint8_t byte;
        if (pt_env_pread(e, fd, &byte, 1, at) == 1) {
            byte ^= (uint8_t)(1u << sim_below(c->sim, 8));
            if (pt_env_pwrite(e, fd, &byte, 1, at) == 0) {
                c->res->rots++;
                pt_env_fsync(e, fd, rot_synced, NULL);
            }
        }
    }
    pt_env_close(e, fd);
}

/* ---- the run --------------------------------------------------------------------------------- */

/* ---- the repair phase ------------------------------------------------------------------------ */
/*
 * After the final check: one service dies for good and a repairer process rebuilds every
 * acknowledged copy it held onto a live service in a failure domain the file does not use,
 * with the shard's repair machine (src/cluster/shard/repair_rebuild.c) over simulated messages,
 * paced to cfg.repair_rate on the simulated clock. Checked: every such file is back to two
 * copies in distinct domains, the rebuilt copy reads back exactly, and the bytes repair moved
 * never ran ahead of rate x simulated time since the phase began. A crash of the new home in
 * the middle of a rebuild only makes the repairer retry elsewhere.
 */
#define REPAIR_ATTEMPTS 8
#define RS_SPANS 6

struct sb_repair {
    struct sb *c;
    struct sim_proc *proc;
    struct pt_env *env;
    struct pt_rebuild_io io;
    struct pt_repair_pace pace;
    struct pt_rebuild *rb;
    unsigned dead;
    size_t file; /* the file being repaired */
    unsigned copy, tries;
    uint64_t start_ms, moved, req_id, seq, timer;
    int write, done;
    pt_rebuild_read_cb rd;
    pt_rebuild_write_cb wr;
    void *arg;
    uint32_t size;
    uint64_t repaired, failed_tries;
    int charging; /* repair traffic (the RS spans' first writes are not) */
    struct sb_repair *acct; /* whose budget this traffic counts against (NULL: its own) */
    /* RS(2,1) spans the repairer writes before the death, then repairs and reads back */
    struct sb_rs {
        uint64_t id[3];
        uint32_t crc[3], size;
        uint8_t *data[3];
        unsigned svc[3];
        int acked;
    } rs[RS_SPANS];
    unsigned rs_next, rs_block, rs_tries;
    int rs_phase; /* 0 writing, 1 repairing, 2 reading back, 3 done */
    unsigned rs_lost;
    uint64_t rs_repaired;
};

static void repair_charge(struct sb_repair *p, uint32_t len)
{
    uint64_t allowed;
    if (!p->charging) return;
    if (p->acct) p = p->acct;
    allowed = p->c->cfg.repair_rate * (sim_now(p->c->sim) - p->start_ms) / 1000;
    p->moved += len;
    if (p->moved > allowed)
        sb_violate(
            p->c, "repair moved %llu bytes in %llu simulated ms: over --repair-rate %llu B/s",
            (unsigned long long)p->moved, (unsigned long long)(sim_now(p->c->sim) - p->start_ms),
            (unsigned long long)p->c->cfg.repair_rate);
}

static void repair_io_timeout(void *ctx)
{
    struct sb_repair *p = ctx;
    p->timer = 0;
    p->req_id = 0;
    if (p->write)
        p->wr(p->arg, -PT_ETIMEDOUT, 0);
    else
        p->rd(p->arg, -PT_ETIMEDOUT, NULL, 0);
}

static void repair_send(struct sb_repair *p, const char *to, uint16_t kind, const uint8_t *body,
                        size_t len)
{
    uint8_t *msg = malloc(REQ_HDR + len);
    if (!msg) abort();
    p->req_id = (0xfeull << 48) | ++p->seq;
    pt_put_le64(msg + 4, p->req_id);
    pt_put_le16(msg + 12, kind);
    if (len) memcpy(msg + REQ_HDR, body, len);
    pt_put_le32(msg, petrel_crc32c(0, msg + 4, REQ_HDR - 4 + len));
    pt_env_send(p->env, to, msg, REQ_HDR + len);
    free(msg);
    p->timer = pt_env_timer(p->env, ATTEMPT_MS, repair_io_timeout, p);
}

static void repair_read(void *ctx, const char *addr, uint64_t block, uint32_t size,
                        pt_rebuild_read_cb done, void *arg)
{
    struct sb_repair *p = ctx;
    struct pt_block_read_req r = {.block_id = block, .offset = 0, .count = size};
    struct pt_cursor cur;
    uint8_t body[16];
    repair_charge(p, size);
    pt_cursor_init(&cur, body, sizeof(body));
    pt_block_enc_read(&cur, &r);
    p->write = 0;
    p->rd = done;
    p->arg = arg;
    p->size = size;
    repair_send(p, addr, PT_MSG_BLOCK_READ, body, sizeof(body));
}

static void repair_write(void *ctx, const char *addr, uint64_t block, uint32_t crc,
                         const uint8_t *data, uint32_t size, uint64_t cert,
                         pt_rebuild_write_cb done, void *arg)
{
    struct sb_repair *p = ctx;
    struct pt_block_write_req w = {.block_id = block, .crc = crc, .size = size, .cert = cert};
    struct pt_cursor cur;
    uint8_t *body = malloc(PT_BLOCK_WRITE_FIELDS + size + 1);
    if (!body) abort();
    repair_charge(p, size);
    pt_cursor_init(&cur, body, PT_BLOCK_WRITE_FIELDS + size);
    pt_block_enc_write(&cur, &w);
    if (size) memcpy(body + PT_BLOCK_WRITE_FIELDS, data, size);
    p->write = 1;
    p->wr = done;
    p->arg = arg;
    p->size = size;
    repair_send(p, addr, PT_MSG_BLOCK_WRITE, body, PT_BLOCK_WRITE_FIELDS + size);
    free(body);
}

static void repair_reply(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct sb_repair *p = ctx;
    int status;
    (void)from;
    if (len < REPLY_HDR || pt_get_le32(msg) != petrel_crc32c(0, msg + 4, len - 4) ||
        pt_get_le64(msg + 4) != p->req_id || !p->req_id)
        return; /* damaged, late or duplicated */
    pt_env_cancel(p->env, p->timer);
    p->timer = 0;
    p->req_id = 0;
    status = (int32_t)pt_get_le32(msg + 12);
    if (p->write) {
        p->wr(p->arg, status,
              status == 0 && len == REPLY_HDR + 8 ? pt_get_le64(msg + REPLY_HDR) : 0);
        return;
    }
    {
        uint8_t *buf = malloc(p->size ? p->size : 1);
        uint32_t got = 0, bsize = 0;
        if (!buf) abort();
        if (status == 0)
            status = pt_blocks_read_resp_check(msg + REPLY_HDR, len - REPLY_HDR, 0, p->size, buf,
                                               &got, &bsize);
        if (status == 0 && (got != p->size || bsize != p->size)) status = -PT_ECORRUPT;
        p->rd(p->arg, status, buf, status == 0 ? got : 0);
        free(buf);
    }
}

/* ---- RS(2,1) spans in the repair phase: written before the death, rebuilt, read back ---- */

static void repair_next(void *ctx);
static void rs_step(void *ctx);
static void repair_rebuilt(void *ctx, struct pt_rebuild *b, int status);

static void rs_write_done(void *arg, int status, uint64_t proof)
{
    struct sb_repair *p = arg;
    struct sb *c = p->c;
    struct sb_rs *s = &p->rs[p->rs_next];
    unsigned b = p->rs_block;
    const struct sb_service *v = &c->svc[s->svc[b]];
    if (status == 0 && !pt_block_mac_check(v->secret, PT_BLOCK_WRITE_PROOF, v->id, s->id[b],
                                           s->crc[b], s->size, proof)) {
        sb_violate(c, "b%u: write proof for RS block %016llx does not verify", s->svc[b],
                   (unsigned long long)s->id[b]);
        return;
    }
    if (status == 0) {
        p->rs_tries = 0;
        if (++p->rs_block == 3) {
            s->acked = 1;
            p->rs_block = 0;
            p->rs_next++;
        }
    } else if (++p->rs_tries >= 20) { /* abandoned: never acknowledged */
        p->rs_tries = 0;
        p->rs_block = 0;
        p->rs_next++;
    }
    pt_env_timer(p->env, 1 + sim_below(c->sim, 20), rs_step, p);
}

static void rs_read_done(void *arg, int status, const uint8_t *data, size_t len)
{
    struct sb_repair *p = arg;
    struct sb *c = p->c;
    struct sb_rs *s = &p->rs[p->rs_next];
    unsigned b = p->rs_block;
    if (status == 0 && (len != s->size || (len && memcmp(data, s->data[b], len) != 0))) {
        sb_violate(c, "RS block %016llx on b%u reads back wrong after repair",
                   (unsigned long long)s->id[b], s->svc[b]);
        return;
    }
    if (status == 0 || ++p->rs_tries >= 20) {
        if (status)
            sb_violate(c, "RS block %016llx on b%u unreadable after repair: %s",
                       (unsigned long long)s->id[b], s->svc[b], petrel_strerror(status));
        p->rs_tries = 0;
        if (++p->rs_block == 3) {
            p->rs_block = 0;
            p->rs_next++;
        }
    }
    pt_env_timer(p->env, 1 + sim_below(c->sim, 20), rs_step, p);
}

/* Write (phase 0) or read back (phase 2) the next RS block. */
static void rs_step(void *ctx)
{
    struct sb_repair *p = ctx;
    struct sb *c = p->c;
    struct sb_rs *s;
    if (c->violated) return;
    while (p->rs_next < RS_SPANS && p->rs_phase == 2 && !p->rs[p->rs_next].acked)
        p->rs_next++;
    if (p->rs_next == RS_SPANS) {
        p->rs_phase++;
        p->rs_next = 0;
        if (p->rs_phase == 1) return; /* written: the caller kills a service */
        if (p->rs_phase == 3) p->done = 1;
        return;
    }
    s = &p->rs[p->rs_next];
    if (p->rs_phase == 0) {
        const struct sb_service *v = &c->svc[s->svc[p->rs_block]];
        uint64_t cert = pt_block_mac(v->secret, PT_BLOCK_WRITE_CERT, v->id, s->id[p->rs_block],
                                     s->crc[p->rs_block], s->size);
        repair_write(p, v->addr, s->id[p->rs_block], s->crc[p->rs_block], s->data[p->rs_block],
                     s->size, cert, rs_write_done, p);
        return;
    }
    repair_read(p, c->svc[s->svc[p->rs_block]].addr, s->id[p->rs_block], s->size, rs_read_done, p);
}

/* Make the spans: RS(2,1) over 3 of the services, data drawn from the seed. */
static void rs_make(struct sb_repair *p)
{
    struct sb *c = p->c;
    struct pt_ec ec;
    unsigned i, n = c->cfg.services;
    if (pt_ec_init(&ec, 2, 1) != 0) abort();
    for (i = 0; i < RS_SPANS; i++) {
        struct sb_rs *s = &p->rs[i];
        unsigned b, first = (unsigned)sim_below(c->sim, n);
        s->size = (uint32_t)(1 + sim_below(c->sim, 3 * PT_BLOCK_PAGE_SIZE));
        for (b = 0; b < 3; b++) {
            s->data[b] = malloc(s->size);
            if (!s->data[b]) abort();
            s->svc[b] = (first + b) % n; /* distinct services, hence domains */
            s->id[b] = (0xf0ull << 40) | (uint64_t)(i * 3 + b);
        }
        sim_fill(c->sim, s->data[0], s->size);
        sim_fill(c->sim, s->data[1], s->size);
        pt_ec_encode(&ec, s->size, s->data, s->data + 2);
        for (b = 0; b < 3; b++)
            s->crc[b] = pt_block_crc(s->data[b], s->size);
    }
}

/* The next RS span with a block on the dead service: rebuild it onto the one service the span
 * does not use (4 services: exactly one other domain). 1 when a rebuild started or is due. */
static int rs_repair_next(struct sb_repair *p)
{
    struct sb *c = p->c;
    for (; p->rs_next < RS_SPANS; p->rs_next++) {
        struct sb_rs *s = &p->rs[p->rs_next];
        struct pt_rebuild *b;
        unsigned k, j, to, n = c->cfg.services;
        if (!s->acked) continue;
        for (k = 0; k < 3 && s->svc[k] != p->dead; k++)
            ;
        if (k == 3) continue;
        for (to = 0; to < n; to++)
            if (to != p->dead && to != s->svc[0] && to != s->svc[1] && to != s->svc[2]) break;
        if (to == n || !sim_proc_up(c->svc[to].proc) || !c->svc[to].cur || !c->svc[to].cur->ready) {
            pt_env_timer(p->env, 200, repair_next, p); /* restarting: look again later */
            return 1;
        }
        b = calloc(1, sizeof(*b));
        if (!b) abort();
        b->env = p->env;
        b->io = &p->io;
        b->pace = &p->pace;
        b->span.storage = PT_STORAGE_RS;
        b->span.data = 2;
        b->span.parity = 1;
        b->span.certified = 1;
        b->span.block_size = s->size;
        b->span.size = 2 * s->size;
        for (j = 0; j < 3; j++) {
            b->span.blocks[j].service = c->svc[s->svc[j]].id;
            b->span.blocks[j].block = s->id[j];
            b->span.blocks[j].crc = s->crc[j];
            if (j != k) snprintf(b->addr[j], sizeof(b->addr[j]), "%s", c->svc[s->svc[j]].addr);
        }
        b->lost = k;
        b->new_service = c->svc[to].id;
        snprintf(b->new_addr, sizeof(b->new_addr), "%s", c->svc[to].addr);
        memcpy(b->new_secret, c->svc[to].secret, sizeof(b->new_secret));
        b->done = repair_rebuilt;
        b->ctx = p;
        p->rs_lost = k;
        if (pt_rebuild_start(b) != 0) abort();
        p->rb = b;
        return 1;
    }
    return 0;
}

static void rs_rebuilt(struct sb_repair *p, struct pt_rebuild *b, int status)
{
    struct sb *c = p->c;
    struct sb_rs *s = &p->rs[p->rs_next];
    if (c->cfg.verbose)
        fprintf(stderr, "%8llu repair of RS block %016llx onto %016llx: %s\n",
                (unsigned long long)sim_now(c->sim), (unsigned long long)s->id[p->rs_lost],
                (unsigned long long)b->new_service, status ? petrel_strerror(status) : "done");
    if (status == 0) {
        unsigned to;
        for (to = 0; to < c->cfg.services && c->svc[to].id != b->new_service; to++)
            ;
        s->svc[p->rs_lost] = to; /* the swap */
        p->rs_repaired++;
        p->tries = 0;
        p->rs_next++;
    } else if (++p->tries >= REPAIR_ATTEMPTS) {
        sb_violate(c, "RS block %016llx could not be rebuilt after %u tries: %s",
                   (unsigned long long)s->id[p->rs_lost], p->tries, petrel_strerror(status));
        free(b);
        return;
    }
    free(b);
    pt_env_timer(p->env, 1 + sim_below(c->sim, 50), repair_next, p);
}

static void repair_rebuilt(void *ctx, struct pt_rebuild *b, int status)
{
    struct sb_repair *p = ctx;
    struct sb *c = p->c;
    struct sb_file *f = &c->files[p->file < c->n_files ? p->file : 0];
    p->rb = NULL;
    if (p->file >= c->n_files) {
        rs_rebuilt(p, b, status);
        return;
    }
    if (c->cfg.verbose)
        fprintf(stderr, "%8llu repair of block %016llx onto %016llx: %s\n",
                (unsigned long long)sim_now(c->sim), (unsigned long long)f->block_id,
                (unsigned long long)b->new_service, status ? petrel_strerror(status) : "done");
    if (status == 0) {
        /* the swap: the file's copy now lives on the new home */
        unsigned to;
        for (to = 0; to < c->cfg.services && c->svc[to].id != b->new_service; to++)
            ;
        f->svc[p->copy] = to;
        f->proof[p->copy] = 1;
        f->proof_at[p->copy] = sim_now(c->sim);
        f->whole[p->copy] = 0; /* the final read-back sets it */
        p->repaired++;
        p->tries = 0;
        p->file++;
    } else {
        p->failed_tries++;
        if (++p->tries >= REPAIR_ATTEMPTS) {
            sb_violate(c, "block %016llx could not be rebuilt after %u tries: %s",
                       (unsigned long long)f->block_id, p->tries, petrel_strerror(status));
            free(b);
            return;
        }
    }
    free(b);
    pt_env_timer(p->env, 1 + sim_below(c->sim, 50), repair_next, p);
}

/* The next acknowledged file with a copy on the dead service: start its rebuild. */
static void repair_next(void *ctx)
{
    struct sb_repair *p = ctx;
    struct sb *c = p->c;
    for (; p->file < c->n_files && !c->violated; p->file++) {
        struct sb_file *f = &c->files[p->file];
        struct pt_rebuild *b;
        unsigned k, other, to, n = c->cfg.services, start;
        if (!f->repair) continue; /* acknowledged, a copy on the dead service, the other whole */
        k = f->svc[0] == p->dead ? 0 : 1;
        other = f->svc[1 - k];
        /* a live service in a failure domain the file does not use (each service its own) */
        start = (unsigned)sim_below(c->sim, n);
        for (to = 0; to < n; to++) {
            unsigned s = (start + to) % n;
            if (s != p->dead && s != other && !c->svc[s].lost && sim_proc_up(c->svc[s].proc)) break;
        }
        if (to == n) { /* every candidate is restarting: look again later */
            pt_env_timer(p->env, 200, repair_next, p);
            return;
        }
        to = (start + to) % n;
        b = calloc(1, sizeof(*b));
        if (!b) abort();
        b->env = p->env;
        b->io = &p->io;
        b->pace = &p->pace;
        b->span.storage = PT_STORAGE_MIRRORED;
        b->span.data = 1;
        b->span.parity = 1;
        b->span.certified = 1;
        b->span.block_size = f->size;
        b->span.size = f->size;
        b->span.blocks[0].service = c->svc[f->svc[0]].id;
        b->span.blocks[0].block = f->block_id;
        b->span.blocks[0].crc = f->crc;
        b->span.blocks[1] = b->span.blocks[0];
        b->span.blocks[1].service = c->svc[f->svc[1]].id;
        b->lost = k;
        snprintf(b->addr[1 - k], sizeof(b->addr[1 - k]), "%s", c->svc[other].addr);
        b->new_service = c->svc[to].id;
        snprintf(b->new_addr, sizeof(b->new_addr), "%s", c->svc[to].addr);
        memcpy(b->new_secret, c->svc[to].secret, sizeof(b->new_secret));
        b->done = repair_rebuilt;
        b->ctx = p;
        p->copy = k;
        if (pt_rebuild_start(b) != 0) abort();
        p->rb = b;
        /* a variant: the new home crashes in the middle of some rebuilds (restarts later) */
        if (sim_below(c->sim, 8) == 0) {
            sim_proc_crash(c->svc[to].proc);
            sim_proc_restart_later(c->svc[to].proc, 200 + sim_below(c->sim, 800));
        }
        return;
    }
    if (c->violated || rs_repair_next(p)) return;
    p->rs_phase = 2; /* every span at policy: read every block back */
    p->rs_next = p->rs_block = p->rs_tries = 0;
    p->charging = 0;
    rs_step(p);
}

static int rs_written(void *ctx)
{
    struct sb_repair *p = ctx;
    return p->rs_phase >= 1 || p->c->violated;
}

static int repair_finished(void *ctx)
{
    struct sb_repair *p = ctx;
    return p->done || p->c->violated;
}

/* Kill one service for good, repair, check; then the caller's final check runs again. */
static void repair_phase(struct sb *c)
{
    struct sb_repair *p = calloc(1, sizeof(*p));
    size_t i;
    if (!p) abort();
    p->c = c;
    p->dead = (unsigned)sim_below(c->sim, c->cfg.services);
    p->proc = sim_proc_add(c->sim, "rep");
    p->env = sim_proc_env(p->proc);
    sim_proc_set_faultable(p->proc, 0, 0, 0);
    pt_env_listen(p->env, "rep", repair_reply, p);
    p->io.read = repair_read;
    p->io.write = repair_write;
    p->io.ctx = p;
    p->pace.rate = c->cfg.repair_rate;
    /* RS(2,1) needs a fourth domain to repair into: only when no disk was replaced */
    for (i = 0; i < c->cfg.services && !c->svc[i].lost; i++)
        ;
    if (i == c->cfg.services) {
        rs_make(p);
        pt_env_timer(p->env, 0, rs_step, p);
    } else {
        p->rs_phase = 1;
    }
    if (!sim_run_until_cond(c->sim, sim_now(c->sim) + 10 * c->cfg.settle_ms, rs_written, p))
        sb_violate(c, "the RS spans were not written");
    if (sim_proc_up(c->svc[p->dead].proc)) sim_proc_crash(c->svc[p->dead].proc);
    c->svc[p->dead].lost = 1; /* out for good */
    for (i = 0; i < c->n_files; i++) {
        struct sb_file *f = &c->files[i];
        f->repair =
            f->acked && !f->deleted &&
            ((f->svc[0] == p->dead && f->whole[1]) || (f->svc[1] == p->dead && f->whole[0]));
        f->unrecoverable =
            f->acked && !f->deleted && !f->repair && (f->svc[0] == p->dead || f->svc[1] == p->dead);
        c->res->repair_unrecoverable += (uint64_t)f->unrecoverable;
    }
    p->start_ms = sim_now(c->sim);
    p->charging = 1;
    pt_env_timer(p->env, 0, repair_next, p);
    if (!sim_run_until_cond(c->sim, sim_now(c->sim) + 100 * c->cfg.settle_ms, repair_finished, p))
        sb_violate(c, "repair did not finish");
    /* every such file is back to policy: two copies on distinct live services (domains) */
    for (i = 0; !c->violated && i < c->n_files; i++) {
        const struct sb_file *f = &c->files[i];
        if (f->repair && (f->svc[0] == p->dead || f->svc[1] == p->dead || f->svc[0] == f->svc[1]))
            sb_violate(c, "block %016llx not back to policy after repair (b%u, b%u; b%u died)",
                       (unsigned long long)f->block_id, f->svc[0], f->svc[1], p->dead);
    }
    for (i = 0; !c->violated && i < RS_SPANS; i++) {
        const struct sb_rs *s = &p->rs[i];
        if (s->acked &&
            (s->svc[0] == p->dead || s->svc[1] == p->dead || s->svc[2] == p->dead ||
             s->svc[0] == s->svc[1] || s->svc[1] == s->svc[2] || s->svc[0] == s->svc[2]))
            sb_violate(c, "RS span %zu not back to policy after repair (b%u, b%u, b%u; b%u died)",
                       i, s->svc[0], s->svc[1], s->svc[2], p->dead);
    }
    c->res->repaired = p->repaired + p->rs_repaired;
    c->res->repaired_rs = p->rs_repaired;
    for (i = 0; i < RS_SPANS; i++) {
        free(p->rs[i].data[0]);
        free(p->rs[i].data[1]);
        free(p->rs[i].data[2]);
    }
    c->res->repair_bytes = p->moved;
    c->res->repair_ms = sim_now(c->sim) - p->start_ms;
    if (p->rb && pt_rebuild_cancel(p->rb)) free(p->rb);
    free(p);
}

/* ---- the shard repair phase ------------------------------------------------------------------ */
/*
 * The shard's own repair (src/cluster/shard/shard_repair.c: task choice, new homes, rounds,
 * REPLACE_BLOCK swaps) over a real shard store (LMDB under cfg.shard_dir), driven by a
 * simulated leader process whose host (struct pt_repair_host) is this simulator: the registry's
 * view of the services, proposals applied to the store after a simulated delay, block I/O as
 * simulated messages. A writer writes mirrored and RS(2,1) spans through the same store
 * (ADD_SPAN / ADD_RS_SPAN, block writes under certificates, CERTIFY_SPAN; a span whose write
 * fails is dropped and written elsewhere) and one service dies for good in the middle of a
 * span's writes; another (service 1) is silent from the start, holding nothing. The network
 * loses, duplicates, corrupts and reorders; disks fail some calls. Some spans are written with two
 * blocks in one failure domain (the last service shares service 0's). The leader crashes at random
 * after a rebuild and before its swap, and after a swap was applied; a new incarnation takes over
 * from the store alone. Checked: every acknowledged (certified) span ends at policy (no block on
 * the dead service, every block in its own domain) with no operator action; every block the store
 * lists reads back exactly the bytes written; every listed copy is in the block index and the dead
 * service's copies are not (nothing lost, nothing referenced twice); every copy swapped out
 * waits in `dropped` for GC exactly once; repair traffic never ran ahead of repair_rate x
 * simulated time.
 */
#define SR_SPANS 48      /* spans the writer writes */
#define SR_STALE_MS 2000 /* the leader's --repair-stale */
#define SR_WRITE_TRIES 5
#define SR_LEADER_CRASHES 3 /* at most, per run */

struct sr_span {
    uint64_t file, offset;
    unsigned n, rs;
    uint32_t size, block_size;
    uint64_t block[3];
    uint32_t crc[3];
    unsigned svc[3];
    uint8_t *data[3];
    uint64_t proof[3];
    int acked;
};

struct sr;

/* One incarnation of the shard leader. */
struct sr_inc {
    struct sr *x;
    struct pt_env *env;
    struct sb_repair io; /* its block I/O (the rebuild machine's), charged to the phase */
    struct pt_rebuild_io rio;
    struct pt_shard_repair rep;
    int dead;
    unsigned no;
    struct sr_inc *next;
};

struct sr_prop {
    struct sr_inc *inc;
    uint8_t req[256];
    size_t len;
    pt_node_done_fn done;
    void *dctx;
};

struct sr {
    struct sb *c;
    struct pt_shard_sm sm;
    int sm_open;
    struct pt_shard_apply_out out;
    uint8_t entry[PT_SHARD_MSG_MAX];
    struct pt_node_service view[SIM_BLOCKS_SERVICES_MAX];
    struct sim_proc *leader;
    struct sr_inc *cur, *incs;
    unsigned n_incs, crashes;
    struct sb_repair acct; /* the phase's budget: start time and bytes moved */
    /* the writer */
    struct sim_proc *wproc;
    struct sb_repair w; /* its block I/O (not charged) */
    struct sr_span span[SR_SPANS];
    unsigned nspan, k, tries, written;
    uint64_t file, file_size, avoid;
    unsigned dead;
    int killed, writer_done;
    uint64_t swaps, moved_domain, crash_before_swap, crash_after_swap;
    struct pt_gc_block swapped[256]; /* old copies swapped out (service, block) */
    unsigned nswapped;
    /* the final read-back */
    unsigned rd_span, rd_block;
    int rd_done;
};

static int sr_ok(struct sr *x)
{
    return !x->c->violated;
}

/* Apply one encoded request as a committed entry: its status; the reply in x->out.reply[0]. */
static int sr_apply_raw(struct sr *x, const uint8_t *req, size_t len, struct pt_cursor *body)
{
    struct pt_shard_entry_builder b;
    struct pt_cursor dummy;
    int n;
    pt_shard_entry_init(&b, x->entry, sizeof(x->entry), sim_now(x->c->sim));
    if (pt_shard_entry_add_raw(&b, req, len) != 0 || (n = pt_shard_entry_finish(&b)) < 0 ||
        pt_shard_sm_apply(&x->sm, x->entry, (size_t)n, &x->out) != 0 || x->out.count != 1) {
        sb_violate(x->c, "shard store refused an entry");
        return -PT_EIO;
    }
    return pt_shard_reply_open(x->out.reply[0], x->out.len[0], body ? body : &dummy);
}

static int sr_apply(struct sr *x, const struct pt_shard_req *q, struct pt_cursor *body)
{
    uint8_t req[PT_SHARD_MSG_MAX];
    int n = pt_shard_req_encode(q, req, sizeof(req));
    if (n < 0) {
        sb_violate(x->c, "shard request does not encode: %s", petrel_strerror(n));
        return n;
    }
    return sr_apply_raw(x, req, (size_t)n, body);
}

static unsigned sr_domain(const struct sr *x, unsigned i)
{
    return i == x->c->cfg.services - 1 ? 0 : i; /* the last service shares service 0's domain */
}

/* The registry's view: a service that is down is stale at once (the simulated heartbeat). */
static void sr_view(struct sr *x)
{
    unsigned i;
    for (i = 0; i < x->c->cfg.services; i++) {
        struct pt_node_service *v = &x->view[i];
        const struct sb_service *s = &x->c->svc[i];
        memset(v, 0, sizeof(*v));
        v->id = s->id;
        snprintf(v->domain, sizeof(v->domain), "d%u", sr_domain(x, i));
        snprintf(v->addr, sizeof(v->addr), "%s", s->addr);
        v->stale = s->lost || !sim_proc_up(s->proc) || !s->cur || !s->cur->ready;
        v->has_secret = 1;
        memcpy(v->secret, s->secret, sizeof(v->secret));
    }
}

static const struct pt_node_service *sr_services(void *ctx, size_t *count)
{
    struct sr_inc *in = ctx;
    sr_view(in->x);
    *count = in->x->c->cfg.services;
    return in->x->view;
}

static const struct pt_node_service *sr_service_find(void *ctx, uint64_t id)
{
    struct sr_inc *in = ctx;
    unsigned i;
    sr_view(in->x);
    for (i = 0; i < in->x->c->cfg.services; i++)
        if (in->x->view[i].id == id) return &in->x->view[i];
    return NULL;
}

static struct pt_env *sr_env(void *ctx)
{
    return ((struct sr_inc *)ctx)->env;
}
static int sr_can_serve(void *ctx)
{
    return !((struct sr_inc *)ctx)->dead;
}

static void sr_crash_leader(struct sr *x, const char *why)
{
    struct sb *c = x->c;
    if (c->cfg.verbose)
        fprintf(stderr, "%8llu shard leader crash (%s)\n", (unsigned long long)sim_now(c->sim),
                why);
    x->crashes++;
    sim_proc_crash(x->leader);
    sim_proc_restart_later(x->leader, 200 + sim_below(c->sim, 600));
}

static int sr_span_at(struct sr *x, uint64_t file, uint64_t offset, struct pt_span *out);
static unsigned sr_svc_index(const struct sr *x, uint64_t id);

/* A swap puts the new copy in a failure domain no other block of its span uses (there are
 * always enough: 6 domains, at most 3 blocks, one service silent and one dead). */
static void sr_check_swap(struct sr *x, const struct pt_shard_req *q)
{
    struct pt_span sp;
    unsigned i, k, n;
    if (sr_span_at(x, q->id, q->offset, &sp) != 0) {
        sb_violate(x->c, "a swapped span is gone");
        return;
    }
    n = pt_span_block_count(&sp);
    for (k = 0; k < n && sp.blocks[k].block != q->target; k++)
        ;
    if (k == n || sp.blocks[k].service != q->services[1]) {
        sb_violate(x->c, "REPLACE_BLOCK said swapped, the span does not list the new copy");
        return;
    }
    for (i = 0; i < n; i++)
        if (i != k && sr_domain(x, sr_svc_index(x, sp.blocks[i].service)) ==
                          sr_domain(x, sr_svc_index(x, q->services[1])))
            sb_violate(x->c,
                       "repair moved block %016llx into failure domain d%u, which block %u "
                       "of its span already uses",
                       (unsigned long long)q->target, sr_domain(x, sr_svc_index(x, q->services[1])),
                       i);
}

/* The proposal commits after a simulated delay; a proposal of a leader that died meanwhile
 * commits or not (Raft may have replicated it before the crash). */
static void sr_commit(void *ctx)
{
    struct sr_prop *pr = ctx;
    struct sr *x = pr->inc->x;
    struct pt_shard_req q;
    int swapped = 0;
    if (!sr_ok(x)) {
        pr->done(pr->dctx, -PT_ECANCELED, NULL, 0);
        free(pr);
        return;
    }
    if (pr->inc->dead && sim_below(x->c->sim, 2) == 0) {
        pr->done(pr->dctx, -PT_ECANCELED, NULL, 0);
        free(pr);
        return;
    }
    if (pt_shard_req_decode(&q, pr->req, pr->len) != 0) abort();
    {
        struct pt_cursor body;
        int st = sr_apply_raw(x, pr->req, pr->len, &body);
        if (st == 0 && q.op == PT_SHARD_REPLACE_BLOCK) swapped = pt_dec_u8(&body);
        if (swapped && q.services[1]) {
            x->swaps++;
            if (x->nswapped < PT_ARRAY_SIZE(x->swapped)) {
                x->swapped[x->nswapped].service = q.services[0];
                x->swapped[x->nswapped++].block = q.target;
            }
            sr_check_swap(x, &q);
        }
        pr->done(pr->dctx, pr->inc->dead ? -PT_ECANCELED : 0,
                 pr->inc->dead ? NULL : x->out.reply[0], pr->inc->dead ? 0 : x->out.len[0]);
    }
    /* a crash after a swap was applied, before the old copy is erased (GC, days later) */
    if (swapped && q.services[1] && !pr->inc->dead && x->crashes < SR_LEADER_CRASHES &&
        sim_below(x->c->sim, 6) == 0) {
        x->crash_after_swap++;
        sr_crash_leader(x, "after a swap");
    }
    free(pr);
}

static int sr_propose(void *ctx, const uint8_t *req, size_t len, pt_node_done_fn done, void *dctx)
{
    struct sr_inc *in = ctx;
    struct sr *x = in->x;
    struct sr_prop *pr;
    if (in->dead || len > sizeof(pr->req)) return -PT_ENOTLEADER;
    /* a crash after the rebuild wrote and proved the new copy, before its swap is proposed */
    if (req[0] == PT_SHARD_REPLACE_BLOCK && x->crashes < SR_LEADER_CRASHES &&
        sim_below(x->c->sim, 6) == 0) {
        x->crash_before_swap++;
        sr_crash_leader(x, "before a swap");
        return -PT_ENOTLEADER;
    }
    pr = calloc(1, sizeof(*pr));
    if (!pr) abort();
    pr->inc = in;
    memcpy(pr->req, req, len);
    pr->len = len;
    pr->done = done;
    pr->dctx = dctx;
    pt_env_timer(in->env, 1 + sim_below(x->c->sim, 20), sr_commit, pr);
    return 0;
}

/* The rebuild machine's I/O: a dead incarnation's requests fail at once (sends would vanish,
 * and its bytes must not count against the budget). */
struct sr_fail {
    pt_rebuild_read_cb rd;
    pt_rebuild_write_cb wr;
    void *arg;
};

static void sr_io_failed(void *ctx)
{
    struct sr_fail *f = ctx;
    if (f->rd)
        f->rd(f->arg, -PT_ECANCELED, NULL, 0);
    else
        f->wr(f->arg, -PT_ECANCELED, 0);
    free(f);
}

static void sr_read(void *ctx, const char *addr, uint64_t block, uint32_t size,
                    pt_rebuild_read_cb done, void *arg)
{
    struct sr_inc *in = ctx;
    if (in->dead) {
        struct sr_fail *f = calloc(1, sizeof(*f));
        if (!f) abort();
        f->rd = done;
        f->arg = arg;
        pt_env_timer(in->env, 0, sr_io_failed, f);
        return;
    }
    repair_read(&in->io, addr, block, size, done, arg);
}

static void sr_write(void *ctx, const char *addr, uint64_t block, uint32_t crc, const uint8_t *data,
                     uint32_t size, uint64_t cert, pt_rebuild_write_cb done, void *arg)
{
    struct sr_inc *in = ctx;
    struct sr *x = in->x;
    if (in->dead) {
        struct sr_fail *f = calloc(1, sizeof(*f));
        if (!f) abort();
        f->wr = done;
        f->arg = arg;
        pt_env_timer(in->env, 0, sr_io_failed, f);
        return;
    }
    repair_write(&in->io, addr, block, crc, data, size, cert, done, arg);
    /* the new home crashes under some rebuilds' writes (back before it would count as stale):
     * that rebuild fails, and its copy must never be swapped in */
    if (sim_below(x->c->sim, 6) == 0) {
        unsigned to = x->c->cfg.services, i;
        for (i = 0; i < x->c->cfg.services; i++)
            if (strcmp(x->c->svc[i].addr, addr) == 0) to = i;
        if (to < x->c->cfg.services && !x->c->svc[to].lost && sim_proc_up(x->c->svc[to].proc)) {
            sim_proc_crash(x->c->svc[to].proc);
            sim_proc_restart_later(x->c->svc[to].proc, 100 + sim_below(x->c->sim, 900));
        }
    }
}

static void sr_tick(void *ctx)
{
    struct sr_inc *in = ctx;
    if (in->dead || !sr_ok(in->x)) return;
    pt_shard_repair_tick(&in->rep, sim_now(in->x->c->sim));
    pt_env_timer(in->env, 100, sr_tick, in);
}

static void sr_leader_stop(void *ctx)
{
    struct sr *x = ctx;
    if (x->cur) x->cur->dead = 1; /* its round winds down on its env's timers, proposing nothing */
    x->cur = NULL;
}

static void sr_leader_start(void *ctx)
{
    struct sr *x = ctx;
    struct sb *c = x->c;
    struct sr_inc *in = calloc(1, sizeof(*in));
    struct pt_repair_host h;
    if (!in) abort();
    in->x = x;
    in->no = x->n_incs++;
    in->env = sim_proc_env(x->leader);
    in->io.c = c;
    in->io.env = in->env;
    in->io.charging = 1;
    in->io.acct = &x->acct;
    in->io.seq = (uint64_t)in->no << 32; /* request ids never repeat across incarnations */
    in->rio.read = sr_read;
    in->rio.write = sr_write;
    in->rio.ctx = in;
    pt_env_listen(in->env, "sl", repair_reply, &in->io);
    memset(&h, 0, sizeof(h));
    h.services = sr_services;
    h.service_find = sr_service_find;
    h.env = sr_env;
    h.can_serve = sr_can_serve;
    h.propose = sr_propose;
    h.io = &in->rio;
    h.ctx = in;
    pt_shard_repair_init_host(&in->rep, &h, &x->sm, c->cfg.repair_rate, SR_STALE_MS,
                              sim_random(c->sim));
    in->next = x->incs;
    x->incs = in;
    x->cur = in;
    pt_env_timer(in->env, 1 + sim_below(c->sim, 100), sr_tick, in);
}

/* ---- the writer ---- */

static void sr_write_step(void *ctx);

static void sr_after(struct sr *x, uint64_t ms)
{
    pt_env_timer(x->w.env, ms, sr_write_step, x);
}

/* A new span at the end of the current file on services the registry lists as live. */
static int sr_span_add(struct sr *x)
{
    struct sb *c = x->c;
    struct sr_span *s = &x->span[x->nspan];
    struct pt_shard_req q;
    struct pt_cursor b;
    uint8_t cells[4 * 3];
    unsigned cand[SIM_BLOCKS_SERVICES_MAX], nc = 0, i, j;
    int st;
    sr_view(x);
    for (i = 0; i < c->cfg.services; i++)
        if (!x->view[i].stale && x->view[i].id != x->avoid) cand[nc++] = i;
    unsigned rs = (unsigned)sim_below(c->sim, 2), n = rs ? 3 : 2;
    memset(s, 0, sizeof(*s));
    if (nc < n) return -PT_EAGAIN;
    for (i = 0; i < nc; i++) { /* shuffle */
        unsigned k = i + (unsigned)sim_below(c->sim, nc - i), t = cand[i];
        cand[i] = cand[k];
        cand[k] = t;
    }
    /* mostly distinct domains; one span in four as a writer with too few domains left it */
    for (i = 0, j = 0; i < nc && j < n; i++) {
        unsigned k, clash = 0;
        for (k = 0; k < j; k++)
            clash |= sr_domain(x, s->svc[k]) == sr_domain(x, cand[i]);
        if (clash && sim_below(c->sim, 4) != 0) continue;
        s->svc[j++] = cand[i];
    }
    if (j < n) return -PT_EAGAIN;
    s->rs = rs;
    s->n = n;
    s->file = x->file;
    s->offset = x->file_size;
    if (s->rs) {
        s->size = (uint32_t)(1 + sim_below(c->sim, 2 * 2 * PT_BLOCK_PAGE_SIZE));
        s->block_size = pt_rs_block_size(s->size, 2);
    } else {
        s->size = (uint32_t)(1 + sim_below(c->sim, 3 * PT_BLOCK_PAGE_SIZE));
        s->block_size = s->size;
    }
    for (i = 0; i < s->n; i++) {
        s->data[i] = calloc(1, s->block_size);
        if (!s->data[i]) abort();
    }
    memset(&q, 0, sizeof(q));
    q.id = x->file;
    q.cookie = 77;
    q.offset = s->offset;
    q.size = s->size;
    q.data = 1;
    q.parity = 1;
    q.n_services = (uint8_t)s->n;
    for (i = 0; i < s->n; i++)
        q.services[i] = c->svc[s->svc[i]].id;
    if (s->rs) {
        struct pt_ec ec;
        uint8_t *span = malloc(s->size);
        if (!span || pt_ec_init(&ec, 2, 1) != 0) abort();
        sim_fill(c->sim, span, s->size);
        memcpy(s->data[0], span, s->size < s->block_size ? s->size : s->block_size);
        if (s->size > s->block_size)
            memcpy(s->data[1], span + s->block_size, s->size - s->block_size);
        pt_ec_encode(&ec, s->block_size, s->data, s->data + 2);
        q.op = PT_SHARD_ADD_RS_SPAN;
        q.crc = petrel_crc32c(0, span, s->size);
        q.storage = PT_STORAGE_RS;
        q.data = 2;
        q.block_size = s->block_size;
        for (i = 0; i < 3; i++)
            pt_put_le32(cells + 4 * i, petrel_crc32c(0, s->data[i], s->block_size));
        q.data_len = sizeof(cells);
        q.data_ptr = cells;
        free(span);
    } else {
        sim_fill(c->sim, s->data[0], s->size);
        memcpy(s->data[1], s->data[0], s->size);
        q.op = PT_SHARD_ADD_SPAN;
        q.crc = pt_block_crc(s->data[0], s->size);
        q.storage = PT_STORAGE_MIRRORED;
    }
    st = sr_apply(x, &q, &b);
    if (st != 0) {
        sb_violate(c, "ADD_SPAN refused: %s", petrel_strerror(st));
        return st;
    }
    if (pt_dec_u8(&b) != s->n) {
        sb_violate(c, "ADD_SPAN placed another number of blocks");
        return -PT_EPROTO;
    }
    for (i = 0; i < s->n; i++) {
        uint64_t svc = pt_dec_u64(&b);
        s->block[i] = pt_dec_u64(&b);
        s->crc[i] = s->rs ? pt_dec_u32(&b) : q.crc; /* a mirrored span's reply has no CRCs */
        if (svc != q.services[i] || s->crc[i] != pt_block_crc(s->data[i], s->block_size))
            sb_violate(
                c, "ADD_SPAN (%s) block %u: service %016llx (asked %016llx), CRC %08x (want %08x)",
                s->rs ? "RS" : "mirrored", i, (unsigned long long)svc,
                (unsigned long long)q.services[i], s->crc[i],
                pt_block_crc(s->data[i], s->block_size));
    }
    x->k = 0;
    x->tries = 0;
    return 0;
}

static void sr_span_drop(struct sr *x)
{
    struct sr_span *s = &x->span[x->nspan];
    struct pt_shard_req q;
    unsigned i;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_DROP_SPAN;
    q.id = x->file;
    q.cookie = 77;
    q.offset = s->offset;
    if (sr_apply(x, &q, NULL) != 0) sb_violate(x->c, "DROP_SPAN refused");
    for (i = 0; i < s->n; i++) {
        free(s->data[i]);
        s->data[i] = NULL;
    }
    s->n = 0;
}

static void sr_certify(struct sr *x)
{
    struct sr_span *s = &x->span[x->nspan];
    struct pt_shard_req q;
    uint8_t proofs[8 * 3];
    unsigned i;
    for (i = 0; i < s->n; i++)
        pt_put_le64(proofs + 8 * i, s->proof[i]);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_CERTIFY_SPAN;
    q.id = x->file;
    q.cookie = 77;
    q.offset = s->offset;
    q.data_len = 8 * s->n;
    q.data_ptr = proofs;
    if (sr_apply(x, &q, NULL) != 0) {
        sb_violate(x->c, "CERTIFY_SPAN refused");
        return;
    }
    s->acked = 1; /* acknowledged to the writer: must never be lost */
    x->file_size += s->size;
    x->nspan++;
    x->written++;
}

static void sr_block_written(void *arg, int status, uint64_t proof)
{
    struct sr *x = arg;
    struct sb *c = x->c;
    struct sr_span *s = &x->span[x->nspan];
    const struct sb_service *v = &c->svc[s->svc[x->k]];
    if (!sr_ok(x)) return;
    if (status == 0 && !pt_block_mac_check(v->secret, PT_BLOCK_WRITE_PROOF, v->id, s->block[x->k],
                                           s->crc[x->k], s->block_size, proof)) {
        sb_violate(c, "write proof of block %016llx does not verify",
                   (unsigned long long)s->block[x->k]);
        return;
    }
    if (status == 0) {
        s->proof[x->k++] = proof;
        x->tries = 0;
        /* the death: in the middle of a span's writes, once a third of the spans are in */
        if (!x->killed && x->k < s->n && x->nspan >= SR_SPANS / 3) {
            x->killed = 1;
            x->dead = s->svc[(unsigned)sim_below(c->sim, s->n)];
            if (c->cfg.verbose)
                fprintf(stderr, "%8llu b%u dies for good\n", (unsigned long long)sim_now(c->sim),
                        x->dead);
            if (sim_proc_up(c->svc[x->dead].proc)) sim_proc_crash(c->svc[x->dead].proc);
            c->svc[x->dead].lost = 1;
        }
        if (x->k == s->n) sr_certify(x);
    } else if (++x->tries >= SR_WRITE_TRIES) {
        x->avoid = v->id; /* give the span up, write it again elsewhere */
        sr_span_drop(x);
    }
    sr_after(x, 1 + sim_below(c->sim, 20));
}

static void sr_write_step(void *ctx)
{
    struct sr *x = ctx;
    struct sb *c = x->c;
    struct sr_span *s;
    const struct sb_service *v;
    if (!sr_ok(x)) return;
    if (x->nspan == SR_SPANS) {
        x->writer_done = 1;
        return;
    }
    s = &x->span[x->nspan];
    if (!x->file || (s->n == 0 && x->file_size && sim_below(c->sim, 4) == 0)) {
        struct pt_shard_req q = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = 77};
        struct pt_cursor b;
        if (sr_apply(x, &q, &b) != 0) return;
        x->file = pt_dec_u64(&b);
        x->file_size = 0;
    }
    if (s->n == 0) {
        int rc = sr_span_add(x);
        x->avoid = 0;
        if (rc == -PT_EAGAIN) {
            sr_after(x, 100);
            return;
        }
        if (rc) return;
    }
    v = &c->svc[s->svc[x->k]];
    repair_write(&x->w, v->addr, s->block[x->k], s->crc[x->k], s->data[x->k], s->block_size,
                 pt_block_mac(v->secret, PT_BLOCK_WRITE_CERT, v->id, s->block[x->k], s->crc[x->k],
                              s->block_size),
                 sr_block_written, x);
}

/* ---- the end: back to policy, and every listed block reads back ---- */

static int sr_span_now(struct sr *x, const struct sr_span *s, struct pt_span *out)
{
    return sr_span_at(x, s->file, s->offset, out);
}

/* The span at (file, offset) as the store lists it now: 0 or a negative error. */
static int sr_span_at(struct sr *x, uint64_t file, uint64_t offset, struct pt_span *out)
{
    return pt_shard_span_at(&x->sm, file, offset, out);
}

static unsigned sr_svc_index(const struct sr *x, uint64_t id)
{
    unsigned i;
    for (i = 0; i < x->c->cfg.services && x->c->svc[i].id != id; i++)
        ;
    return i;
}

/* Whether span s is at policy now; why (for the violation) when not. */
static int sr_at_policy(struct sr *x, const struct sr_span *s, char *why, size_t cap)
{
    struct pt_span sp;
    unsigned i, j;
    int rc = sr_span_now(x, s, &sp);
    if (rc) {
        snprintf(why, cap, "not in the store: %s", petrel_strerror(rc));
        return 0;
    }
    if (!sp.certified || pt_span_block_count(&sp) != s->n) {
        snprintf(why, cap, "changed shape");
        return 0;
    }
    for (i = 0; i < s->n; i++) {
        unsigned a = sr_svc_index(x, sp.blocks[i].service);
        if (sp.blocks[i].block != s->block[i] || sp.blocks[i].crc != s->crc[i]) {
            snprintf(why, cap, "block %u is another block", i);
            return 0;
        }
        if (a >= x->c->cfg.services || (x->killed && a == x->dead)) {
            snprintf(why, cap, "block %u on b%u (dead or unknown)", i, a);
            return 0;
        }
        for (j = 0; j < i; j++)
            if (sr_domain(x, a) == sr_domain(x, sr_svc_index(x, sp.blocks[j].service))) {
                snprintf(why, cap, "blocks %u and %u share failure domain d%u", j, i,
                         sr_domain(x, a));
                return 0;
            }
    }
    return 1;
}

static int sr_settled(void *ctx)
{
    struct sr *x = ctx;
    unsigned i;
    char why[128];
    if (!sr_ok(x)) return 1;
    if (!x->writer_done || !x->cur || x->cur->rep.running || x->cur->rep.swaps_pending) return 0;
    for (i = 0; i < x->nspan; i++)
        if (x->span[i].acked && !sr_at_policy(x, &x->span[i], why, sizeof(why))) return 0;
    return 1;
}

static void sr_read_next(struct sr *x);

static void sr_read_done(void *arg, int status, const uint8_t *data, size_t len)
{
    struct sr *x = arg;
    const struct sr_span *s = &x->span[x->rd_span];
    if (!sr_ok(x)) return;
    if (status != 0 && ++x->tries < FINAL_ATTEMPTS) {
        sr_read_next(x);
        return;
    }
    if (status != 0 || len != s->block_size || memcmp(data, s->data[x->rd_block], len) != 0) {
        sb_violate(x->c, "block %u (%016llx) of span %u of file %016llx: %s after repair",
                   x->rd_block, (unsigned long long)s->block[x->rd_block], x->rd_span,
                   (unsigned long long)s->file, status ? petrel_strerror(status) : "wrong bytes");
        return;
    }
    x->tries = 0;
    if (++x->rd_block == s->n) {
        x->rd_block = 0;
        x->rd_span++;
    }
    sr_read_next(x);
}

/* Read every block of every acknowledged span from where the store lists it. */
static void sr_read_next(struct sr *x)
{
    struct pt_span sp;
    while (x->rd_span < x->nspan && !x->span[x->rd_span].acked)
        x->rd_span++;
    if (x->rd_span == x->nspan) {
        x->rd_done = 1;
        return;
    }
    if (sr_span_now(x, &x->span[x->rd_span], &sp) != 0) {
        sb_violate(x->c, "span %u vanished", x->rd_span);
        return;
    }
    repair_read(&x->w, x->c->svc[sr_svc_index(x, sp.blocks[x->rd_block].service)].addr,
                sp.blocks[x->rd_block].block, x->span[x->rd_span].block_size, sr_read_done, x);
}

static int sr_read_finished(void *ctx)
{
    struct sr *x = ctx;
    return x->rd_done || !sr_ok(x);
}

/* Every listed copy in the block index, the dead service's in none. */
static void sr_check_index(struct sr *x)
{
    struct pt_repair_entry e[4];
    uint64_t cursor = 0;
    unsigned i, b;
    for (i = 0; sr_ok(x) && i < x->nspan; i++) {
        struct pt_span sp;
        if (!x->span[i].acked || sr_span_now(x, &x->span[i], &sp) != 0) continue;
        for (b = 0; b < x->span[i].n; b++)
            if (pt_shard_sm_block_listed(&x->sm, sp.blocks[b].service, sp.blocks[b].block) != 1)
                sb_violate(x->c, "block %016llx on %016llx: listed by its span, not indexed",
                           (unsigned long long)sp.blocks[b].block,
                           (unsigned long long)sp.blocks[b].service);
    }
    /* every copy swapped out waits in `dropped` for GC's erase, exactly once, and no span
     * lists it any more (a crash after the swap loses neither) */
    if (sr_ok(x) && x->nswapped) {
        struct pt_gc_block *d = calloc(4096, sizeof(*d));
        uint64_t *times = calloc(4096, sizeof(*times));
        int nd;
        if (!d || !times) abort();
        nd = pt_shard_sm_gc_dropped(&x->sm, UINT64_MAX, d, times, 4096);
        for (i = 0; sr_ok(x) && i < x->nswapped; i++) {
            unsigned seen = 0;
            int k;
            for (k = 0; k < nd; k++)
                seen += d[k].service == x->swapped[i].service && d[k].block == x->swapped[i].block;
            if (seen != 1 ||
                pt_shard_sm_block_listed(&x->sm, x->swapped[i].service, x->swapped[i].block) != 0)
                sb_violate(
                    x->c, "old copy of block %016llx on %016llx: %u times in dropped, %s",
                    (unsigned long long)x->swapped[i].block,
                    (unsigned long long)x->swapped[i].service, seen,
                    pt_shard_sm_block_listed(&x->sm, x->swapped[i].service, x->swapped[i].block)
                        ? "still indexed"
                        : "not indexed");
        }
        free(d);
        free(times);
    }
    if (sr_ok(x) && x->killed &&
        pt_shard_sm_service_blocks(&x->sm, x->c->svc[x->dead].id, &cursor, e, 4) != 0)
        sb_violate(x->c, "the dead service b%u still holds blocks in the index (block %016llx)",
                   x->dead, (unsigned long long)e[0].block);
}

/*
 * Versions sharing mirrored spans (issue 12): each written file (its spans repaired, their
 * copies moved by swaps) is linked, then changed by OPEN_CHANGE + an appended inline span +
 * COMMIT_CHANGE. The old version (now the change file, unlinked for its retention) lists the
 * same block copies as the new one; the blocks GC would erase with it once its retention is
 * over (pt_shard_sm_file_blocks, what shard_server.c's GC erases) must hold none of the copies
 * the new version's spans list, and the old version must be a GC candidate by then.
 */
static void sr_check_versions(struct sr *x)
{
    static const uint8_t tail[10] = "appended\n";
    uint64_t files[SR_SPANS];
    unsigned nfiles = 0, i, j;
    for (i = 0; i < x->nspan; i++) {
        if (!x->span[i].acked) continue;
        for (j = 0; j < nfiles && files[j] != x->span[i].file; j++)
            ;
        if (j == nfiles) files[nfiles++] = x->span[i].file;
    }
    for (j = 0; sr_ok(x) && j < nfiles; j++) {
        struct pt_shard_req q;
        struct pt_shard_stat st;
        struct pt_cursor b;
        struct pt_gc_block *gc = NULL;
        uint64_t change, cursor = 0, cand[64];
        uint8_t req[PT_SHARD_MSG_MAX], reply[PT_SHARD_MSG_MAX];
        size_t ngc = 0, k, reply_len = 0;
        int n, found = 0;
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_LINK_FILE;
        q.id = files[j];
        q.cookie = 77;
        q.target = PT_INODE_ROOT;
        q.name_len = (uint8_t)snprintf(q.name, sizeof(q.name), "v%u", j);
        if (sr_apply(x, &q, NULL) != 0) continue; /* a span never certified: no version */
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_STAT;
        q.id = files[j];
        n = pt_shard_req_encode(&q, req, sizeof(req));
        if (n < 0 ||
            pt_shard_sm_query(&x->sm, req, (size_t)n, reply, sizeof(reply), &reply_len) != 0 ||
            pt_shard_reply_open(reply, reply_len, &b) != 0 || pt_shard_reply_stat(&b, &st) != 0) {
            sb_violate(x->c, "STAT of linked file %016llx failed", (unsigned long long)files[j]);
            return;
        }
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_OPEN_CHANGE;
        q.id = files[j];
        q.cookie = 900 + j;
        q.expect = st.version;
        if (sr_apply(x, &q, &b) != 0) {
            sb_violate(x->c, "OPEN_CHANGE of %016llx refused", (unsigned long long)files[j]);
            return;
        }
        change = pt_dec_u64(&b);
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_ADD_INLINE;
        q.id = change;
        q.cookie = 900 + j;
        q.offset = st.size;
        q.size = sizeof(tail);
        q.crc = petrel_crc32c(0, tail, sizeof(tail));
        q.data_ptr = tail;
        q.data_len = sizeof(tail);
        if (sr_apply(x, &q, NULL) != 0) {
            sb_violate(x->c, "append to change %016llx refused", (unsigned long long)change);
            return;
        }
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_COMMIT_CHANGE;
        q.id = change;
        q.cookie = 900 + j;
        if (sr_apply(x, &q, NULL) != 0) {
            sb_violate(x->c, "COMMIT_CHANGE of %016llx refused", (unsigned long long)change);
            return;
        }
        n = pt_shard_sm_gc_candidates(&x->sm, UINT64_MAX, &cursor, 1u << 20, cand, 64);
        for (k = 0; n > 0 && k < (size_t)n; k++) found |= cand[k] == change;
        if (!found) {
            sb_violate(x->c, "the old version %016llx of %016llx is no GC candidate",
                       (unsigned long long)change, (unsigned long long)files[j]);
            return;
        }
        if (pt_shard_sm_file_blocks(&x->sm, change, &gc, &ngc) != 0) {
            sb_violate(x->c, "blocks of the old version %016llx unreadable",
                       (unsigned long long)change);
            return;
        }
        for (i = 0; sr_ok(x) && i < x->nspan; i++) {
            struct pt_span sp;
            unsigned bb;
            if (!x->span[i].acked || x->span[i].file != files[j] ||
                sr_span_at(x, files[j], x->span[i].offset, &sp) != 0)
                continue;
            for (bb = 0; bb < pt_span_block_count(&sp); bb++) {
                x->c->res->shared_copies_checked++;
                for (k = 0; k < ngc; k++)
                    if (gc[k].service == sp.blocks[bb].service && gc[k].block == sp.blocks[bb].block)
                        sb_violate(x->c,
                                   "GC of the old version %016llx would erase block %016llx on "
                                   "%016llx, which the new version of %016llx still lists",
                                   (unsigned long long)change, (unsigned long long)gc[k].block,
                                   (unsigned long long)gc[k].service,
                                   (unsigned long long)files[j]);
            }
        }
        free(gc);
    }
}

static void shard_repair_phase(struct sb *c)
{
    struct sr *x = calloc(1, sizeof(*x));
    struct sim_proc_hooks h;
    char dir[512], why[128];
    unsigned i, j;
    if (!x) abort();
    x->c = c;
    snprintf(dir, sizeof(dir), "%s/shard-%llu", c->cfg.shard_dir, (unsigned long long)c->cfg.seed);
    if (pt_shard_sm_open(&x->sm, dir, 0, 1) != 0) {
        sb_violate(c, "cannot open the shard store in %s", dir);
        free(x);
        return;
    }
    if (c->cfg.verbose) petrel_log_set(petrel_log_stderr, NULL, PT_LOG_INFO); /* repair's lines */
    x->acct.c = c;
    x->acct.start_ms = sim_now(c->sim);
    x->wproc = sim_proc_add(c->sim, "sw");
    sim_proc_set_faultable(x->wproc, 0, 0, 0);
    x->w.c = c;
    x->w.env = sim_proc_env(x->wproc);
    pt_env_listen(x->w.env, "sw", repair_reply, &x->w);
    x->leader = sim_proc_add(c->sim, "sl");
    sim_proc_set_faultable(x->leader, 0, 0, 0);
    h.stop = sr_leader_stop;
    h.start = sr_leader_start;
    h.ctx = x;
    sim_proc_set_hooks(x->leader, &h);
    /* a service the registry still lists, silent since before the writes and holding
     * nothing: repair must look past it to the one that dies */
    if (sim_proc_up(c->svc[1].proc)) sim_proc_crash(c->svc[1].proc);
    c->svc[1].lost = 1;
    sr_leader_start(x);
    {
        /* the worst network and flaky disks (no lying ones: every acknowledged byte must
         * come back), no random crashes: the phase's own are the leader's, the dead
         * service's and some new homes' */
        struct sim_faults f;
        sim_faults_none(&f);
        f.delay_min_ms = 1;
        f.delay_max_ms = 20;
        f.loss_ppm = 20000;
        f.dup_ppm = 10000;
        f.corrupt_ppm = 5000;
        f.reorder_ppm = 20000;
        f.reorder_max_ms = 100;
        f.read_eio_ppm = 2000;
        f.write_eio_ppm = 2000;
        f.fsync_fail_ppm = 2000;
        sim_set_faults(c->sim, &f);
    }
    sr_after(x, 1);
    if (!sim_run_until_cond(c->sim, sim_now(c->sim) + 20 * c->cfg.settle_ms, sr_settled, x)) {
        for (i = 0; i < x->nspan && sr_ok(x); i++)
            if (x->span[i].acked && !sr_at_policy(x, &x->span[i], why, sizeof(why)))
                sb_violate(c, "span %u (file %016llx, offset %llu) not back to policy: %s", i,
                           (unsigned long long)x->span[i].file,
                           (unsigned long long)x->span[i].offset, why);
        if (sr_ok(x))
            sb_violate(c, "shard repair did not settle (writer %s, leader %s)",
                       x->writer_done ? "done" : "busy", x->cur ? "up" : "down");
    }
    if (sr_ok(x) && !x->killed) sb_violate(c, "no service died during the writes");
    {
        struct sim_faults none;
        sim_faults_none(&none);
        sim_set_faults(c->sim, &none);
    }
    c->res->shard_repair_ms = sim_now(c->sim) - x->acct.start_ms;
    if (sr_ok(x)) {
        x->tries = 0;
        sr_read_next(x);
        if (!sim_run_until_cond(c->sim, sim_now(c->sim) + 10 * c->cfg.settle_ms, sr_read_finished,
                                x))
            sb_violate(c, "the read-back after shard repair did not finish");
    }
    sr_check_index(x);
    sr_check_versions(x);
    c->res->shard_spans = x->written;
    c->res->shard_swaps = x->swaps;
    c->res->shard_repair_bytes = x->acct.moved;
    c->res->leader_crashes = x->crashes;
    /* wind down: the leader goes, its rounds finish on their timers */
    if (sim_proc_up(x->leader)) sim_proc_crash(x->leader);
    sim_run_until(c->sim, sim_now(c->sim) + 5000);
    while (x->incs) {
        struct sr_inc *in = x->incs;
        x->incs = in->next;
        c->res->shard_domain_moves += in->rep.moved_domain;
        pt_shard_repair_close(&in->rep);
        free(in);
    }
    for (i = 0; i <= x->nspan && i < SR_SPANS; i++)
        for (j = 0; j < 3; j++)
            free(x->span[i].data[j]);
    pt_shard_sm_close(&x->sm);
    free(x);
}

void sim_blocks_config_default(struct sim_blocks_config *c, uint64_t seed)
{
    memset(c, 0, sizeof(*c));
    c->seed = seed;
    c->services = 4;
    c->clients = 2;
    c->fault_ms = 60000;
    c->settle_ms = 20000;
    sim_faults_default(&c->faults);
    /* The block store is not a quorum protocol: every disk fault the simulator has is on. */
    c->faults.fsync_fail_ppm = 5000;
    c->faults.read_eio_ppm = 2000;
    c->faults.write_eio_ppm = 2000;
    c->faults.write_enospc_ppm = 2000;
    c->faults.torn_ppm = 500000;
    c->faults.stale_ppm = 1000;
    c->corrupt_write_ppm = 20000;
    c->rot_ppm = 300000;
    c->repair_rate = 256 * 1024;
}

static int clients_idle(void *ctx)
{
    struct sb *c = ctx;
    unsigned i;
    for (i = 0; i < c->cfg.clients; i++)
        if (c->cl[i].op != SB_IDLE) return 0;
    return 1;
}

static int services_ready(void *ctx)
{
    struct sb *c = ctx;
    unsigned i;
    for (i = 0; i < c->cfg.services; i++)
        if (!c->svc[i].lost && (!c->svc[i].cur || !c->svc[i].cur->ready)) return 0;
    return 1;
}

static int final_finished(void *ctx)
{
    struct sb *c = ctx;
    return c->final_done || c->violated;
}

int sim_blocks_run(const struct sim_blocks_config *cfg, struct sim_blocks_result *res)
{
    struct sb *c;
    struct sim_faults none;
    unsigned i;
    size_t f;
    if (cfg->services < 4 || cfg->services > SIM_BLOCKS_SERVICES_MAX || cfg->clients < 1 ||
        cfg->clients > SIM_BLOCKS_CLIENTS_MAX)
        return -PT_EINVAL;
    c = calloc(1, sizeof(*c));
    if (!c) return -PT_ENOMEM;
    memset(res, 0, sizeof(*res));
    c->cfg = *cfg;
    c->res = res;
    sim_faults_none(&none);
    c->sim = sim_new(cfg->seed, &none);
    for (i = 0; i < cfg->services; i++) {
        struct sb_service *s = &c->svc[i];
        struct sim_proc_hooks h;
        s->c = c;
        s->idx = i;
        snprintf(s->addr, sizeof(s->addr), "b%u", i);
        sim_fill(c->sim, s->secret, sizeof(s->secret)); /* the registry's secret for it */
        s->proc = sim_proc_add(c->sim, s->addr);
        h.stop = svc_stop;
        h.start = svc_start;
        h.ctx = s;
        sim_proc_set_hooks(s->proc, &h);
    }
    for (i = 0; i < cfg->clients; i++) {
        struct sb_client *cl = &c->cl[i];
        cl->c = c;
        cl->idx = i;
        snprintf(cl->addr, sizeof(cl->addr), "c%u", i);
        cl->proc = sim_proc_add(c->sim, cl->addr);
        cl->env = sim_proc_env(cl->proc);
        sim_proc_set_faultable(cl->proc, 0, 0, 1);
        pt_env_listen(cl->env, cl->addr, client_reply, cl);
    }
    for (i = 0; i < cfg->services; i++)
        svc_start(&c->svc[i]);
    if (!sim_run_until_cond(c->sim, 1000, services_ready, c))
        sb_violate(c, "the block services did not start");
    /* faults */
    for (i = 0; i < cfg->clients; i++)
        client_after(&c->cl[i], 1 + i);
    sim_set_faults(c->sim, &cfg->faults);
    c->lying = 1;
    pt_env_timer(c->cl[0].env, 1000, rot_tick, c);
    while (!c->violated && sim_now(c->sim) < 1000 + cfg->fault_ms)
        sim_run_until(c->sim, sim_now(c->sim) + 100);
    /* heal: faults off, everyone up, the clients finish what they were doing */
    c->lying = 0;
    c->stop_clients = 1;
    sim_set_faults(c->sim, &none);
    sim_heal(c->sim);
    for (i = 0; i < cfg->services; i++)
        if (!sim_proc_up(c->svc[i].proc)) sim_proc_restart(c->svc[i].proc);
    if (!c->violated &&
        !sim_run_until_cond(c->sim, sim_now(c->sim) + cfg->settle_ms, clients_idle, c))
        sb_violate(c, "clients still busy %llu ms after healing", (unsigned long long)cfg->settle_ms);
    if (!c->violated &&
        !sim_run_until_cond(c->sim, sim_now(c->sim) + cfg->settle_ms, services_ready, c))
        sb_violate(c, "block services not all up %llu ms after healing",
                   (unsigned long long)cfg->settle_ms);
    if (!c->violated) {
        final_next(&c->cl[0]);
        if (!sim_run_until_cond(c->sim, sim_now(c->sim) + 10 * cfg->settle_ms, final_finished, c))
            sb_violate(c, "the final reads did not finish");
    }
    if (!c->violated && cfg->shard_dir) {
        shard_repair_phase(c);
    } else if (!c->violated && cfg->repair_rate) {
        repair_phase(c);
        /* the final check again: every copy with a proof, the rebuilt ones included */
        for (f = 0; f < c->n_files; f++)
            c->files[f].whole[0] = c->files[f].whole[1] = 0;
        c->final_next = 0;
        c->final_done = 0;
        if (!c->violated) {
            final_next(&c->cl[0]);
            if (!sim_run_until_cond(c->sim, sim_now(c->sim) + 10 * cfg->settle_ms, final_finished, c))
                sb_violate(c, "the final reads after repair did not finish");
        }
        for (f = 0; !c->violated && f < c->n_files; f++)
            if (c->files[f].repair && (!c->files[f].whole[0] || !c->files[f].whole[1]))
                sb_violate(c, "repaired block %016llx does not read back whole from both copies",
                           (unsigned long long)c->files[f].block_id);
    }
    /* every acknowledged file has a right copy unless both its disks failed it */
    for (f = 0; !c->violated && f < c->n_files; f++) {
        struct sb_file *fl = &c->files[f];
        if (fl->acked && !fl->deleted && !fl->unrecoverable && !fl->whole[0] && !fl->whole[1] &&
            !(copy_excused(c, fl, 0) && copy_excused(c, fl, 1)))
            sb_violate(c, "acknowledged block %016llx (b%u, b%u) has no readable copy",
                       (unsigned long long)fl->block_id, fl->svc[0], fl->svc[1]);
    }
    res->ok = !c->violated;
    res->sim_ms = sim_now(c->sim);
    res->trace_hash = sim_trace_hash(c->sim);
    res->stats = *sim_stats(c->sim);
    /* tear down: crash every service, let writes in flight finish and free their cores */
    for (i = 0; i < cfg->services; i++)
        if (sim_proc_up(c->svc[i].proc)) sim_proc_crash(c->svc[i].proc);
    sim_run_until(c->sim, sim_now(c->sim) + 5000);
    sim_free(c->sim);
    while (c->replies)
        reply_free(c, c->replies);
    while (c->incs) {
        struct sb_inc *in = c->incs;
        c->incs = in->next;
        free(in);
    }
    for (f = 0; f < c->n_files; f++)
        free(c->files[f].data);
    free(c);
    return 0;
}
