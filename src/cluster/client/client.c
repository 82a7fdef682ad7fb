/*
 * The client library (include/petrel/client.h). Owns path resolution, the write protocol
 * (construct -> add spans -> write blocks -> certify -> link) and streaming reads with
 * fallback between copies. Talks to shards and the CDC only through the router (leader
 * routing, retries) and to block services only through blocks_client. Holds at most one span
 * of data in memory while writing and 1 MiB while reading.
 */
#include "petrel/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/client/blocks_client.h"
#include "cluster/client/router.h"
#include "cluster/proto/cdc_msgs.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define READ_PIECE (1u << 20)
#define DEFAULT_SPAN (4u << 20)

struct petrel_client {
    struct petrel_client_config cfg;
    char registry[128];
    struct pt_router router;
    struct pt_prng prng;
    struct pt_reg_blocks *services;
    size_t n_services;
    struct pt_call_opts block_opts;
};

int petrel_client_open(struct petrel_client **out, const struct petrel_client_config *cfg)
{
    struct petrel_client *c;
    if (!cfg || !cfg->registry || !cfg->registry[0]) return -PT_EINVAL;
    if (cfg->span_size > PT_BLOCK_MAX_SIZE || cfg->copies > PT_SPAN_BLOCKS_MAX) return -PT_EINVAL;
    c = calloc(1, sizeof(*c));
    if (!c) return -PT_ENOMEM;
    c->cfg = *cfg;
    snprintf(c->registry, sizeof(c->registry), "%s", cfg->registry);
    c->cfg.registry = c->registry;
    if (!c->cfg.span_size) c->cfg.span_size = DEFAULT_SPAN;
    if (!c->cfg.copies) c->cfg.copies = 2;
    pt_prng_seed(&c->prng, cfg->seed ? cfg->seed : pt_entropy_seed());
    pt_router_init(&c->router, c->registry, cfg->retry_budget_ms, cfg->attempt_timeout_ms,
                   pt_prng_next(&c->prng));
    c->block_opts.timeout_ms = cfg->attempt_timeout_ms ? cfg->attempt_timeout_ms : 3000;
    c->block_opts.retry_budget_ms = 500; /* then the next copy, or another service */
    *out = c;
    return 0;
}

int petrel_client_probe(struct petrel_client *c, int timeout_ms)
{
    struct pt_call_opts opts;
    struct pt_reply rep;
    int rc;
    memset(&opts, 0, sizeof(opts));
    opts.timeout_ms = timeout_ms;
    opts.retry_budget_ms = 1; /* one attempt */
    /* the cheapest registry request: its answer proves a registry listens there */
    rc = pt_call_buf(c->registry, PT_MSG_REG_LIST_CDC, NULL, 0, &opts, &rep);
    pt_reply_free(&rep);
    return rc;
}

void petrel_client_close(struct petrel_client *c)
{
    if (!c) return;
    free(c->services);
    free(c);
}

/* ---- paths --------------------------------------------------------------------------------- */

/* The next name of a path ending at `end`: 1 (name, len set, *p moved past it), 0 at the
 * end, or a negative error. Paths have no length limit of their own here: a FUSE mount hands
 * over paths longer than PATH_MAX (the mount point's own part plus a PATH_MAX-long relative
 * one); only each name is limited. */
static int next_component_until(const char **p, const char *end, char *name, uint8_t *len)
{
    const char *s = *p, *e;
    while (s < end && *s == '/')
        s++;
    if (s >= end) return 0;
    e = memchr(s, '/', (size_t)(end - s));
    if (!e) e = end;
    if (e - s > PT_NAME_MAX) return -PT_ENAMETOOLONG;
    if ((e - s == 1 && s[0] == '.') || (e - s == 2 && s[0] == '.' && s[1] == '.'))
        return -PT_EINVAL;
    memcpy(name, s, (size_t)(e - s));
    name[e - s] = 0;
    *len = (uint8_t)(e - s);
    *p = e;
    return 1;
}

static int shard_call(struct petrel_client *c, uint64_t owner, const struct pt_shard_req *q,
                      struct pt_reply *rep, int *retried)
{
    return pt_router_shard(&c->router, PT_INODE_SHARD(owner), q, rep, retried);
}

static int lookup(struct petrel_client *c, uint64_t dir, const char *name, uint8_t len,
                  uint64_t *id, uint8_t *type)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    int rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_LOOKUP;
    q.id = dir;
    memcpy(q.name, name, len + 1u);
    q.name_len = len;
    rc = shard_call(c, dir, &q, &rep, NULL);
    if (rc == 0) {
        pt_cursor_init(&b, rep.body, rep.body_len);
        uint8_t t;
        *id = pt_dec_u64(&b);
        t = pt_dec_u8(&b);
        if (type) *type = t;
        if (!pt_cursor_ok(&b)) rc = -PT_EPROTO;
    }
    pt_reply_free(&rep);
    return rc;
}

static int lookup(struct petrel_client *c, uint64_t dir, const char *name, uint8_t len,
                  uint64_t *id, uint8_t *type);

/* Resolve the first len bytes of an absolute path. */
static int resolve_prefix(struct petrel_client *c, const char *path, size_t len, uint64_t *id,
                          uint8_t *type)
{
    uint64_t cur = PT_INODE_ROOT;
    uint8_t t = PT_TYPE_DIR, nlen;
    char name[PT_NAME_MAX + 1];
    const char *p = path, *end = path + len;
    int rc;
    if (!path || path[0] != '/') return -PT_EINVAL;
    while ((rc = next_component_until(&p, end, name, &nlen)) > 0) {
        if (t != PT_TYPE_DIR) return -PT_ENOTDIR;
        if ((rc = lookup(c, cur, name, nlen, &cur, &t)) != 0) return rc;
    }
    if (rc < 0) return rc;
    *id = cur;
    if (type) *type = t;
    return 0;
}

int petrel_client_resolve(struct petrel_client *c, const char *path, uint64_t *id, uint8_t *type)
{
    if (!path) return -PT_EINVAL;
    return resolve_prefix(c, path, strlen(path), id, type);
}

/* Resolve the parent directory of path and return the last name. */
static int resolve_parent(struct petrel_client *c, const char *path, uint64_t *dir, char *name,
                          uint8_t *len)
{
    const char *end, *slash, *p;
    uint8_t type;
    int rc;
    if (!path || path[0] != '/') return -PT_EINVAL;
    end = path + strlen(path);
    while (end > path + 1 && end[-1] == '/')
        end--;
    for (slash = end - 1; slash > path && *slash != '/'; slash--)
        ;
    if (slash + 1 >= end) return -PT_EINVAL; /* the root has no parent */
    p = slash;
    if ((rc = next_component_until(&p, end, name, len)) <= 0) return rc ? rc : -PT_EINVAL;
    if ((rc = resolve_prefix(c, path, (size_t)(slash - path) + 1, dir, &type)) != 0) return rc;
    return type == PT_TYPE_DIR ? 0 : -PT_ENOTDIR;
}

/* STAT of an inode; s may be NULL (then only st), st may be NULL (then only s). */
static int stat_inode(struct petrel_client *c, uint64_t id, struct petrel_stat *st,
                      struct pt_shard_stat *s)
{
    struct pt_shard_req q;
    struct pt_shard_stat *own = NULL;
    struct pt_reply rep;
    struct pt_cursor b;
    int rc;
    if (!s && !(s = own = malloc(sizeof(*s)))) return -PT_ENOMEM;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_STAT;
    q.id = id;
    rc = shard_call(c, id, &q, &rep, NULL);
    if (rc == 0) {
        pt_cursor_init(&b, rep.body, rep.body_len);
        rc = pt_shard_reply_stat(&b, s);
        if (rc == 0 && st) {
            memset(st, 0, sizeof(*st));
            st->id = id;
            st->type = s->type;
            st->size = s->size;
            st->mtime = s->mtime;
            st->state = s->state;
            if (s->has_posix) {
                st->mode = s->mode;
                st->uid = s->uid;
                st->gid = s->gid;
                st->atime_ns = s->atime_ns;
                st->mtime_ns = s->mtime_ns;
                st->ctime_ns = s->ctime_ns;
                st->rdev = s->rdev;
                st->version = s->version;
            } else { /* a shard from before POSIX attributes */
                st->mode = pt_type_mode(s->type) | (s->type == PT_TYPE_DIR ? 0755u : 0644u);
                st->atime_ns = st->mtime_ns = st->ctime_ns = s->mtime * 1000000u;
            }
        }
    }
    pt_reply_free(&rep);
    free(own);
    return rc;
}

int petrel_client_stat(struct petrel_client *c, const char *path, struct petrel_stat *st)
{
    uint64_t id;
    int rc = petrel_client_resolve(c, path, &id, NULL);
    return rc ? rc : stat_inode(c, id, st, NULL);
}

int petrel_client_list(struct petrel_client *c, const char *path, petrel_list_fn fn, void *ctx)
{
    struct pt_shard_req q;
    uint64_t dir;
    uint8_t type;
    int rc = petrel_client_resolve(c, path, &dir, &type);
    if (rc) return rc;
    if (type != PT_TYPE_DIR) return -PT_ENOTDIR;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_READDIR;
    q.id = dir;
    for (;;) {
        struct pt_reply rep;
        struct pt_cursor b;
        unsigned n, i;
        int more;
        rc = shard_call(c, dir, &q, &rep, NULL);
        if (rc) {
            pt_reply_free(&rep);
            return rc;
        }
        pt_cursor_init(&b, rep.body, rep.body_len);
        n = pt_dec_u16(&b);
        for (i = 0; i < n; i++) {
            struct pt_dirent de;
            struct petrel_dirent out;
            if (pt_shard_reply_dirent(&b, &de) != 0) {
                pt_reply_free(&rep);
                return -PT_EPROTO;
            }
            out.id = de.id;
            out.type = de.type;
            memcpy(out.name, de.name, de.name_len + 1u);
            q.offset = de.hash;
            memcpy(q.name, de.name, de.name_len + 1u);
            q.name_len = de.name_len;
            if ((rc = fn(ctx, &out)) != 0) {
                pt_reply_free(&rep);
                return rc;
            }
        }
        more = pt_dec_u8(&b);
        rc = pt_cursor_ok(&b) ? 0 : -PT_EPROTO;
        pt_reply_free(&rep);
        if (rc || !more) return rc;
    }
}

/* ---- CDC operations -------------------------------------------------------------------------- */

static int cdc_call(struct petrel_client *c, struct pt_cdc_req *q)
{
    uint8_t buf[600];
    struct pt_reply rep;
    int n, rc;
    q->key = pt_prng_next(&c->prng) | 1;
    n = pt_cdc_req_encode(q, buf, sizeof(buf));
    if (n < 0) return n;
    /* Repeatable: the CDC answers a repeated key from the transaction it already ran. */
    rc = pt_router_call(&c->router, PT_ROUTER_CDC, PT_MSG_CDC_REQ, buf, (size_t)n, 1, &rep, NULL);
    pt_reply_free(&rep);
    return rc;
}

int petrel_client_mkdir(struct petrel_client *c, const char *path)
{
    struct pt_cdc_req q;
    int rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_CDC_MKDIR;
    if ((rc = resolve_parent(c, path, &q.dir, q.name, &q.name_len)) != 0) return rc;
    return cdc_call(c, &q);
}

int petrel_client_rmdir(struct petrel_client *c, const char *path)
{
    struct pt_cdc_req q;
    int rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_CDC_RMDIR;
    if ((rc = resolve_parent(c, path, &q.dir, q.name, &q.name_len)) != 0) return rc;
    return cdc_call(c, &q);
}

/*
 * A file that lost its name in `dir` (unlink, or replaced by a rename) but lives on another
 * shard (renamed into dir through the CDC): start its retention on its own shard.
 */
static int retire_elsewhere(struct petrel_client *c, uint64_t dir, uint64_t id)
{
    struct pt_shard_req r;
    struct pt_reply rep;
    int rc;
    if (id == 0 || PT_INODE_SHARD(id) == PT_INODE_SHARD(dir)) return 0;
    memset(&r, 0, sizeof(r));
    r.op = PT_SHARD_RETIRE_FILE;
    r.id = id;
    rc = shard_call(c, id, &r, &rep, NULL);
    pt_reply_free(&rep);
    return rc;
}

/*
 * The inode a name holds now, or 0 when the name is free: the expectation a compare-and-set
 * request carries.
 */
static int lookup_expect(struct petrel_client *c, uint64_t dir, const char *name, uint8_t len,
                         uint64_t *id)
{
    uint8_t t;
    int rc = lookup(c, dir, name, len, id, &t);
    if (rc == -PT_ENOENT) {
        *id = 0;
        return 0;
    }
    return rc;
}

static int rename_checked(struct petrel_client *c, const char *from, const char *to, int noreplace)
{
    struct pt_cdc_req q;
    uint64_t src, dst;
    int rc, retried;
    memset(&q, 0, sizeof(q));
    q.op = PT_CDC_RENAME;
    if ((rc = resolve_parent(c, from, &q.dir, q.name, &q.name_len)) != 0) return rc;
    if ((rc = resolve_parent(c, to, &q.dir2, q.name2, &q.name2_len)) != 0) return rc;
    /* What both names hold now: the rename moves only that source and replaces only that
     * target; a change by someone else in between fails it and leaves theirs. */
    if ((rc = lookup(c, q.dir, q.name, q.name_len, &src, NULL)) != 0) return rc;
    if ((rc = lookup_expect(c, q.dir2, q.name2, q.name2_len, &dst)) != 0) return rc;
    if (noreplace && dst) return dst == src ? 0 : -PT_EEXIST;
    if (q.dir == q.dir2) {
        struct pt_shard_req s;
        struct pt_reply rep;
        memset(&s, 0, sizeof(s));
        s.op = PT_SHARD_RENAME_INODE;
        s.id = q.dir;
        s.target = src;
        s.expect = dst;
        memcpy(s.name, q.name, sizeof(s.name));
        s.name_len = q.name_len;
        memcpy(s.name2, q.name2, sizeof(s.name2));
        s.name2_len = q.name2_len;
        rc = shard_call(c, q.dir, &s, &rep, &retried);
        if (rc == 0 && rep.body_len >= 8) rc = retire_elsewhere(c, q.dir, pt_get_le64(rep.body));
        pt_reply_free(&rep);
        /* The first try may have done it before its reply was lost: then the target holds
         * the source's inode. Anything else is someone else's name, left alone. */
        if ((rc == -PT_ENOENT || rc == -PT_ESTALE || rc == -PT_EEXIST) && retried) {
            uint64_t id;
            if (lookup(c, q.dir, q.name2, q.name2_len, &id, NULL) == 0 && id == src) rc = 0;
        }
        /* A directory replacing a directory of another shard: the CDC checks and removes it. */
        if (rc != -PT_EXDEV) return rc;
    }
    q.op = PT_CDC_RENAME_INODE;
    q.expect = src;
    q.expect2 = dst;
    return cdc_call(c, &q);
}

int petrel_client_rename(struct petrel_client *c, const char *from, const char *to)
{
    return rename_checked(c, from, to, 0);
}

int petrel_client_rename_noreplace(struct petrel_client *c, const char *from, const char *to)
{
    return rename_checked(c, from, to, 1);
}

int petrel_client_unlink_inode(struct petrel_client *c, const char *path, uint64_t id)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    int rc, retried;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_UNLINK_INODE;
    if (id == 0) return -PT_EINVAL;
    if ((rc = resolve_parent(c, path, &q.id, q.name, &q.name_len)) != 0) return rc;
    q.expect = id;
    rc = shard_call(c, q.id, &q, &rep, &retried);
    if (rc == 0 && rep.body_len >= 8) rc = retire_elsewhere(c, q.id, pt_get_le64(rep.body));
    pt_reply_free(&rep);
    /* A retry whose first try was committed finds the name gone or holding someone else's
     * file (left alone): the file asked for is removed either way. */
    if ((rc == -PT_ENOENT || rc == -PT_ESTALE) && retried) rc = 0;
    if (rc == -PT_EINDOUBT) {
        /* Still in doubt when the budget ran out: the name tells. */
        uint64_t now;
        int lrc = lookup_expect(c, q.id, q.name, q.name_len, &now);
        if (lrc == 0 && now != id) rc = retire_elsewhere(c, q.id, id);
    }
    return rc;
}

int petrel_client_unlink(struct petrel_client *c, const char *path)
{
    uint64_t id;
    uint8_t type;
    int rc = petrel_client_resolve(c, path, &id, &type);
    if (rc) return rc;
    if (type == PT_TYPE_DIR) return -PT_EISDIR;
    return petrel_client_unlink_inode(c, path, id);
}

/* ---- block services ---------------------------------------------------------------------- */

int petrel_client_capacity(struct petrel_client *c, uint64_t *capacity, uint64_t *used)
{
    struct pt_reg_blocks *b = NULL;
    size_t n = 0, i;
    int rc = pt_reg_list_blocks(c->registry, &b, &n, NULL);
    if (rc < 0) return rc;
    *capacity = *used = 0;
    for (i = 0; i < n; i++) {
        if (b[i].stale) continue;
        *capacity += b[i].capacity;
        *used += b[i].used;
    }
    free(b);
    return 0;
}

static int refresh_services(struct petrel_client *c)
{
    struct pt_reg_blocks *v = NULL;
    size_t n = 0;
    struct pt_call_opts opts = {.timeout_ms = 1000, .retry_budget_ms = 2000};
    int rc = pt_reg_list_blocks(c->registry, &v, &n, &opts);
    if (rc) return rc;
    free(c->services);
    c->services = v;
    c->n_services = n;
    return 0;
}

/* Copy the address of block service id into out (refresh: ask the registry first). */
static int service_addr(struct petrel_client *c, uint64_t id, int refresh, char *out, size_t cap)
{
    size_t i;
    if (refresh) refresh_services(c);
    for (i = 0; i < c->n_services; i++)
        if (c->services[i].id == id && c->services[i].addr[0]) {
            snprintf(out, cap, "%s", c->services[i].addr);
            return 0;
        }
    if (!refresh) return service_addr(c, id, 1, out, cap);
    return -PT_ENXIO;
}

/* ---- writing --------------------------------------------------------------------------------- */

struct writer {
    struct petrel_client *c;
    uint64_t file, cookie, dir;
};

static int write_call(struct writer *w, struct pt_shard_req *q, struct pt_reply *rep, int *retried)
{
    q->id = w->file;
    q->cookie = w->cookie;
    return shard_call(w->c, w->dir, q, rep, retried);
}

static int write_inline(struct writer *w, uint64_t offset, const uint8_t *data, uint32_t len)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    int rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_ADD_INLINE;
    q.offset = offset;
    q.size = len;
    q.crc = petrel_crc32c(0, data, len);
    q.data_len = len;
    q.data_ptr = data;
    rc = write_call(w, &q, &rep, NULL);
    pt_reply_free(&rep);
    return rc;
}

/*
 * One attempt at a mirrored span: ADD_SPAN (avoiding the services in avoid), write every
 * copy, CERTIFY. A block service that fails the write is added to avoid and *failed is set,
 * the span then stays uncertified for the caller to drop.
 */
static int span_attempt(struct writer *w, uint64_t offset, const uint8_t *data, uint32_t len,
                        uint32_t crc, uint64_t *avoid, uint8_t *n_avoid, int *failed)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    uint8_t proofs[PT_SPAN_BLOCKS_MAX * 8];
    unsigned n, i;
    int rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_ADD_SPAN;
    q.offset = offset;
    q.size = len;
    q.crc = crc;
    q.storage = PT_STORAGE_MIRRORED;
    q.data = 1;
    q.parity = (uint8_t)(w->c->cfg.copies - 1);
    q.block_size = len;
    q.n_services = *n_avoid;
    memcpy(q.services, avoid, *n_avoid * sizeof(avoid[0]));
    if ((rc = write_call(w, &q, &rep, NULL)) != 0) {
        pt_reply_free(&rep);
        return rc;
    }
    pt_cursor_init(&b, rep.body, rep.body_len);
    n = pt_dec_u8(&b);
    if (n == 0 || n > PT_SPAN_BLOCKS_MAX) rc = -PT_EPROTO;
    for (i = 0; i < n && rc == 0; i++) {
        uint64_t service = pt_dec_u64(&b), block = pt_dec_u64(&b), cert = pt_dec_u64(&b), proof = 0;
        char addr[PT_REG_ADDR_MAX];
        if (!pt_cursor_ok(&b)) {
            rc = -PT_EPROTO;
            break;
        }
        rc = service_addr(w->c, service, 0, addr, sizeof(addr));
        if (rc == 0)
            rc = pt_blocks_write(addr, block, crc, data, len, cert, &proof, &w->c->block_opts);
        if (rc != 0 && rc != -PT_ENOTCERT && rc != -PT_EEXIST) {
            /* The service may have moved: ask the registry once and retry there. */
            if (service_addr(w->c, service, 1, addr, sizeof(addr)) == 0)
                rc = pt_blocks_write(addr, block, crc, data, len, cert, &proof, &w->c->block_opts);
        }
        if (rc != 0) {
            petrel_log(PT_LOG_WARN, "client", "block service %llu failed a write: %s",
                       (unsigned long long)service, petrel_strerror(rc));
            if (*n_avoid < PT_SPAN_BLOCKS_MAX) avoid[(*n_avoid)++] = service;
            *failed = 1;
        }
        pt_put_le64(proofs + (size_t)8 * i, proof);
    }
    pt_reply_free(&rep);
    if (rc) return rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_CERTIFY_SPAN;
    q.offset = offset;
    q.data_len = 8 * n;
    q.data_ptr = proofs;
    rc = write_call(w, &q, &rep, NULL);
    pt_reply_free(&rep);
    return rc;
}

/* A mirrored span; a block service that fails is avoided and the span placed again. */
static int write_span(struct writer *w, uint64_t offset, const uint8_t *data, uint32_t len)
{
    uint64_t avoid[PT_SPAN_BLOCKS_MAX];
    uint8_t n_avoid = 0;
    uint32_t crc = pt_block_crc(data, len);
    unsigned attempt;
    int rc = -PT_EIO;
    for (attempt = 0; attempt < 4; attempt++) {
        struct pt_shard_req q;
        struct pt_reply rep;
        int failed = 0, drc, retried;
        rc = span_attempt(w, offset, data, len, crc, avoid, &n_avoid, &failed);
        if (rc == 0 || !failed) return rc;
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_DROP_SPAN;
        q.offset = offset;
        drc = write_call(w, &q, &rep, &retried);
        pt_reply_free(&rep);
        /* A repeat whose first try was committed finds the span gone: it is dropped. */
        if (drc == -PT_ENOENT && retried) drc = 0;
        if (drc) return drc;
    }
    return rc;
}

/* Fill buf from the stream: bytes read (< cap only at the end) or a negative error. */
static long fill(petrel_read_fn read, void *ctx, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        long n = read(ctx, buf + got, cap - got);
        if (n < 0) return n;
        if (n == 0) break;
        got += (size_t)n;
    }
    return (long)got;
}

int petrel_client_create(struct petrel_client *c, const char *path, uint64_t replaces,
                         const struct petrel_attr *owner, struct petrel_new_file *nf)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    uint64_t existing;
    int rc;
    memset(nf, 0, sizeof(*nf));
    if ((rc = resolve_parent(c, path, &nf->dir, nf->name, &nf->name_len)) != 0) return rc;
    /* Fail early when the name already differs from what the caller expects (the link
     * checks it again, atomically). */
    if ((rc = lookup_expect(c, nf->dir, nf->name, nf->name_len, &existing)) != 0) return rc;
    if (existing != replaces) return replaces ? -PT_ESTALE : -PT_EEXIST;
    nf->replaces = replaces;
    nf->cookie = pt_prng_next(&c->prng) | 1;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_CONSTRUCT_FILE;
    q.cookie = nf->cookie;
    if (owner) {
        q.has_attr = 1;
        q.attr.mode = owner->mode & PT_MODE_PERM;
        q.attr.uid = owner->uid;
        q.attr.gid = owner->gid;
    }
    rc = shard_call(c, nf->dir, &q, &rep, NULL);
    if (rc == 0) {
        pt_cursor_init(&b, rep.body, rep.body_len);
        nf->file = pt_dec_u64(&b);
        if (!pt_cursor_ok(&b)) rc = -PT_EPROTO;
    }
    pt_reply_free(&rep);
    return rc;
}

int petrel_client_fill(struct petrel_client *c, const struct petrel_new_file *nf,
                       petrel_read_fn read, void *ctx, uint64_t *size_out)
{
    struct writer w;
    struct pt_shard_req q;
    struct pt_reply rep;
    uint8_t *buf;
    uint64_t offset = 0, replaces;
    int rc = 0;
    memset(&w, 0, sizeof(w));
    w.c = c;
    w.file = nf->file;
    w.cookie = nf->cookie;
    /* Routing only (the file's shard is its directory's): nf->dir is read after the stream
     * ended, when no rename can change it any more. */
    w.dir = nf->file;
    buf = malloc(c->cfg.span_size);
    if (!buf) return -PT_ENOMEM;
    for (;;) {
        long n = fill(read, ctx, buf, c->cfg.span_size);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n == 0) break;
        rc = n <= (long)PT_INLINE_MAX ? write_inline(&w, offset, buf, (uint32_t)n)
                                      : write_span(&w, offset, buf, (uint32_t)n);
        if (rc) break;
        offset += (uint64_t)n;
        if ((size_t)n < c->cfg.span_size) break;
    }
    free(buf);
    if (rc) return rc; /* the transient file expires on its own */
    /* Read only after the stream ended: a rename before close (petrel_client_retarget) may
     * have changed where the file goes. */
    w.dir = nf->dir;
    replaces = nf->replaces;
    /* Link-if-free, or replace-only-that-inode: a name someone else took or changed meanwhile
     * is left to them and this file is abandoned (it expires unlinked). A retried link whose
     * first try was committed is recognised by the shard from the cookie. */
    memset(&q, 0, sizeof(q));
    q.op = replaces ? PT_SHARD_LINK_REPLACE : PT_SHARD_LINK_FILE;
    q.target = w.dir;
    q.expect = replaces;
    memcpy(q.name, nf->name, nf->name_len + 1u);
    q.name_len = nf->name_len;
    rc = write_call(&w, &q, &rep, NULL);
    if (rc == 0 && replaces && rep.body_len >= 8)
        rc = retire_elsewhere(c, w.dir, pt_get_le64(rep.body));
    pt_reply_free(&rep);
    if (rc == -PT_EINDOUBT) {
        /* Every try was in doubt until the budget ran out: read the name to learn whether a
         * try linked the file (then the link is done and what it replaced, the inode expected,
         * starts its retention), or not (still in doubt: it may commit later). */
        uint64_t id;
        if (lookup(c, w.dir, nf->name, nf->name_len, &id, NULL) == 0 && id == w.file)
            rc = retire_elsewhere(c, w.dir, replaces);
    }
    if (rc == 0 && size_out) *size_out = offset;
    return rc;
}

int petrel_client_replace_file(struct petrel_client *c, const char *path, uint64_t replaces,
                               petrel_read_fn read, void *ctx, uint64_t *size_out)
{
    struct petrel_new_file nf;
    int rc = petrel_client_create(c, path, replaces, NULL, &nf);
    return rc ? rc : petrel_client_fill(c, &nf, read, ctx, size_out);
}

int petrel_client_write_file(struct petrel_client *c, const char *path, petrel_read_fn read,
                             void *ctx, uint64_t *size_out)
{
    return petrel_client_replace_file(c, path, 0, read, ctx, size_out);
}

/* ---- reading --------------------------------------------------------------------------------- */

/* Deliver [from, from+count) of a mirrored span, trying each copy until one serves it intact. */
static int read_blocks(struct petrel_client *c, const struct pt_span *s, uint32_t from,
                       uint32_t count, uint8_t *buf, petrel_write_fn write, void *ctx)
{
    unsigned n = pt_span_block_count(s), first = (unsigned)pt_prng_below(&c->prng, n), k;
    uint32_t done = 0;
    int rc = -PT_EIO, refreshed = 0;
    while (done < count) {
        uint32_t piece = PT_MIN(READ_PIECE, count - done), got = 0;
        for (k = 0; k < n; k++) {
            unsigned idx = (first + k) % n;
            const struct pt_block_ref *b = &s->blocks[idx];
            char addr[PT_REG_ADDR_MAX], moved[PT_REG_ADDR_MAX];
            int known = service_addr(c, b->service, 0, addr, sizeof(addr)) == 0;
            rc = known ? pt_blocks_read(addr, b->block, from + done, piece, buf, &got, NULL,
                                        &c->block_opts)
                       : -PT_ENXIO;
            if (rc != 0 && rc != -PT_ECORRUPT && rc != -PT_ENOENT && !refreshed) {
                /* The service may have moved (restart on a new port): ask the registry once. */
                refreshed = 1;
                if (service_addr(c, b->service, 1, moved, sizeof(moved)) == 0 &&
                    (!known || strcmp(moved, addr) != 0))
                    rc = pt_blocks_read(moved, b->block, from + done, piece, buf, &got, NULL,
                                        &c->block_opts);
            }
            if (rc == 0 && got != piece) rc = -PT_ECORRUPT; /* shorter than its span says */
            if (rc == 0) {
                first = idx; /* keep reading from the copy that works */
                break;
            }
            /* Down, missing or rotten: the next copy. */
            petrel_log(PT_LOG_WARN, "client", "block %llx on service %llu: %s, trying another copy",
                       (unsigned long long)b->block, (unsigned long long)b->service,
                       petrel_strerror(rc));
        }
        if (rc) return rc;
        if ((rc = write(ctx, buf, piece)) != 0) return rc;
        done += piece;
    }
    return 0;
}

int petrel_client_read(struct petrel_client *c, const char *path, uint64_t offset, uint64_t len,
                       petrel_write_fn write, void *ctx, uint64_t *got)
{
    uint64_t id;
    uint8_t type;
    int rc = petrel_client_resolve(c, path, &id, &type);
    if (got) *got = 0;
    if (rc) return rc;
    if (type == PT_TYPE_DIR) return -PT_EISDIR;
    if (type != PT_TYPE_FILE) return -PT_EINVAL;
    return petrel_client_read_inode(c, id, offset, len, write, ctx, got);
}

int petrel_client_read_inode(struct petrel_client *c, uint64_t id, uint64_t offset, uint64_t len,
                             petrel_write_fn write, void *ctx, uint64_t *got)
{
    struct pt_shard_req q;
    uint64_t size, end, pos = offset, delivered = 0;
    uint8_t *buf;
    int rc = 0;
    if (got) *got = 0;
    buf = malloc(READ_PIECE);
    if (!buf) return -PT_ENOMEM;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_SPANS;
    q.id = id;
    q.max = 16;
    for (;;) {
        struct pt_reply rep;
        struct pt_cursor b;
        unsigned n, i;
        int more;
        q.offset = pos;
        rc = shard_call(c, id, &q, &rep, NULL);
        if (rc) {
            pt_reply_free(&rep);
            break;
        }
        pt_cursor_init(&b, rep.body, rep.body_len);
        size = pt_dec_u64(&b);
        end = len > size || offset + len > size ? size : offset + len;
        n = pt_dec_u16(&b);
        for (i = 0; i < n && rc == 0 && pos < end; i++) {
            struct pt_span s;
            uint64_t s_end;
            uint32_t from, count;
            if (pt_span_decode(&b, &s) != 0) {
                rc = -PT_EPROTO;
                break;
            }
            s_end = s.offset + s.size;
            if (s_end <= pos) continue;
            if (s.offset > pos) {
                rc = -PT_ECORRUPT; /* a hole: spans must be contiguous */
                break;
            }
            from = (uint32_t)(pos - s.offset);
            count = (uint32_t)(PT_MIN(s_end, end) - pos);
            if (s.storage == PT_STORAGE_INLINE) {
                if (petrel_crc32c(0, s.inline_data, s.inline_len) != s.crc)
                    rc = -PT_ECORRUPT;
                else
                    rc = write(ctx, s.inline_data + from, count);
            } else {
                rc = read_blocks(c, &s, from, count, buf, write, ctx);
            }
            if (rc == 0) {
                pos += count;
                delivered += count;
            }
        }
        more = pt_dec_u8(&b);
        if (rc == 0 && !pt_cursor_ok(&b)) rc = -PT_EPROTO;
        pt_reply_free(&rep);
        if (rc || pos >= end || !more) break;
    }
    free(buf);
    if (got) *got = delivered;
    return rc;
}

/* ---- POSIX attributes and nodes (issue 11) ------------------------------------------------- */

int petrel_client_stat_inode(struct petrel_client *c, uint64_t id, struct petrel_stat *st)
{
    return stat_inode(c, id, st, NULL);
}

int petrel_client_setattr_inode(struct petrel_client *c, uint64_t id, const struct petrel_attr *a)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    int rc;
    if (a->valid & ~(unsigned)PT_ATTR_ALL) return -PT_EINVAL;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_SETATTR;
    q.id = id;
    q.has_attr = 1;
    q.attr.valid = a->valid;
    q.attr.mode = a->mode & PT_MODE_PERM;
    q.attr.uid = a->uid;
    q.attr.gid = a->gid;
    q.attr.atime = a->atime_ns;
    q.attr.mtime = a->mtime_ns;
    rc = shard_call(c, id, &q, &rep, NULL);
    pt_reply_free(&rep);
    return rc;
}

int petrel_client_setattr(struct petrel_client *c, const char *path, const struct petrel_attr *a)
{
    uint64_t id;
    int rc = petrel_client_resolve(c, path, &id, NULL);
    return rc ? rc : petrel_client_setattr_inode(c, id, a);
}

int petrel_client_mkdir_owned(struct petrel_client *c, const char *path, uint32_t mode,
                              uint32_t uid, uint32_t gid)
{
    struct pt_cdc_req q;
    int rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_CDC_MKDIR;
    if ((rc = resolve_parent(c, path, &q.dir, q.name, &q.name_len)) != 0) return rc;
    q.has_attr = 1;
    q.mode = mode & PT_MODE_PERM;
    q.uid = uid;
    q.gid = gid;
    return cdc_call(c, &q);
}

int petrel_client_mknod(struct petrel_client *c, const char *path, uint8_t type, uint32_t mode,
                        uint32_t uid, uint32_t gid, uint64_t rdev, const char *target)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    size_t tlen = target ? strlen(target) : 0;
    int rc;
    if (!PT_TYPE_IS_NODE(type)) return -PT_EINVAL;
    if (type == PT_TYPE_SYMLINK && tlen == 0) return -PT_EINVAL;
    if (tlen > PT_SYMLINK_MAX) return -PT_ENAMETOOLONG;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_MAKE_NODE;
    if ((rc = resolve_parent(c, path, &q.id, q.name, &q.name_len)) != 0) return rc;
    q.has_attr = 1;
    q.attr.mode = pt_type_mode(type) | (mode & PT_MODE_PERM);
    q.attr.uid = uid;
    q.attr.gid = gid;
    q.attr.rdev = rdev;
    if (type == PT_TYPE_SYMLINK) {
        q.data_len = (uint32_t)tlen;
        q.data_ptr = (const uint8_t *)target;
    }
    rc = shard_call(c, q.id, &q, &rep, NULL);
    pt_reply_free(&rep);
    return rc;
}

int petrel_client_readlink(struct petrel_client *c, const char *path, char *buf, size_t size)
{
    struct pt_shard_stat *s;
    uint64_t id;
    uint8_t type;
    int rc = petrel_client_resolve(c, path, &id, &type);
    if (rc) return rc;
    if (type != PT_TYPE_SYMLINK) return -PT_EINVAL;
    if (!(s = malloc(sizeof(*s)))) return -PT_ENOMEM;
    rc = stat_inode(c, id, NULL, s);
    if (rc == 0 && s->type != PT_TYPE_SYMLINK) rc = -PT_EINVAL;
    if (rc == 0) {
        size_t n = PT_MIN((size_t)s->target_len, size);
        memcpy(buf, s->target, n);
        if (n < size) buf[n] = 0;
        rc = s->target_len;
    }
    free(s);
    return rc;
}

int petrel_client_retarget(struct petrel_client *c, struct petrel_new_file *nf, const char *path)
{
    uint64_t dir, existing;
    char name[PT_NAME_MAX + 1];
    uint8_t len;
    int rc = resolve_parent(c, path, &dir, name, &len);
    if (rc) return rc;
    if (PT_INODE_SHARD(dir) != PT_INODE_SHARD(nf->file)) return -PT_EXDEV;
    if ((rc = lookup_expect(c, dir, name, len, &existing)) != 0) return rc;
    if (existing == nf->file) existing = 0;
    nf->dir = dir;
    memcpy(nf->name, name, len + 1u);
    nf->name_len = len;
    nf->replaces = existing;
    return 0;
}

int petrel_client_space(struct petrel_client *c, uint64_t *total, uint64_t *avail)
{
    struct pt_reg_blocks *b = NULL;
    uint64_t *seen;
    size_t n = 0, i, nseen = 0;
    struct pt_call_opts opts = {.timeout_ms = 1000, .retry_budget_ms = 1000};
    int rc = pt_reg_list_blocks(c->registry, &b, &n, NULL);
    if (rc < 0) return rc;
    *total = *avail = 0;
    seen = calloc(n ? n : 1, sizeof(*seen));
    if (!seen) {
        free(b);
        return -PT_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        struct pt_block_info info;
        size_t k;
        if (b[i].stale) continue;
        memset(&info, 0, sizeof(info));
        if (!b[i].addr[0] || pt_blocks_info(b[i].addr, &info, &opts) != 0) {
            *total += b[i].capacity;
            continue;
        }
        if (info.fsid) { /* a file system already counted (several services on one disk) */
            for (k = 0; k < nseen && seen[k] != info.fsid; k++)
                ;
            if (k < nseen) continue;
            seen[nseen++] = info.fsid;
        }
        *total += info.capacity;
        *avail += info.free;
    }
    free(seen);
    free(b);
    /* every byte is stored copies times */
    *total /= c->cfg.copies;
    *avail /= c->cfg.copies;
    return 0;
}
