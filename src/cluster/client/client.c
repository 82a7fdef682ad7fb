/*
 * The client library (include/petrel/client.h). Owns path resolution, the write protocol
 * (construct -> add spans -> write blocks -> certify -> link) and streaming reads with
 * fallback between copies, Reed-Solomon spans with degraded reads, storage policies. Talks to
 * shards and the CDC only through the router (leader routing, retries) and to block services
 * only through blocks_client. Holds at most one span of data in memory while writing (an RS
 * span: its D + P blocks, the I/O window of its parallel block writes; plus the policy's
 * threshold read ahead to choose the layout) and about 1 MiB per block read while reading.
 * Never returns a byte that did not match a page CRC or, when rebuilt, its cell CRC.
 */
#include "petrel/client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/client/blocks_client.h"
#include "cluster/client/client_internal.h"
#include "cluster/client/router.h"
#include "cluster/ec/ec.h"
#include "cluster/proto/cdc_msgs.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define READ_PIECE (1u << 20)
/* A sequential read of a mirrored span fetches up to this much at once (its chunks pipelined
 * on one connection: readahead), then hands it on in READ_PIECE pieces. */
#define READ_AHEAD (4u << 20)
#define DEFAULT_SPAN (4u << 20)

struct petrel_client {
    struct petrel_client_config cfg;
    char registry[PT_REG_LOCATION_MAX];
    struct pt_router router;
    struct pt_prng prng;
    struct pt_reg_blocks *services;
    size_t n_services;
    struct pt_call_opts block_opts;
    struct pt_call_opts rs_read_opts; /* one attempt: other blocks can serve an RS read */
    /* redundancy: the last directory's policy (writer_policy), services that just failed */
    struct pt_policy policy;
    uint64_t policy_dir, policy_cached_at;
    struct {
        uint64_t service, until;
    } down[8];
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
    c->rs_read_opts.timeout_ms = c->block_opts.timeout_ms;
    c->rs_read_opts.retry_budget_ms = 1;
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
    /* the cheapest registry request: its answer proves a registry listens there (any member
     * of a registry group) */
    {
        struct pt_reg_replica *v = NULL;
        size_t n = 0;
        (void)rep;
        rc = pt_reg_list_cdc(c->registry, &v, &n, &opts);
        free(v);
    }
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
            st->nlink = s->nlink;
            if (s->has_posix) {
                st->mode = s->mode;
                st->uid = s->uid;
                st->gid = s->gid;
                st->atime_ns = s->atime_ns;
                st->mtime_ns = s->mtime_ns;
                st->ctime_ns = s->ctime_ns;
                st->rdev = s->rdev;
                st->version = s->version;
                st->spans = s->spans;
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

/* One block operation of a span run on its own thread (blocks of a span travel in parallel). */
struct block_job {
    pthread_t thread;
    char addr[PT_REG_ADDR_MAX];
    uint64_t service, block, cert, proof;
    uint32_t crc, size;
    struct iovec pieces[PT_RS_ROWS_MAX];
    unsigned n_pieces;
    const uint8_t *page_crcs; /* the block's page CRCs when known (mirrored spans), or NULL */
    /* reads */
    uint32_t offset, count, got;
    uint8_t *buf;
    const struct pt_call_opts *opts;
    int write, rc, started;
    int skip; /* not run (its rc is set already) */
};

static void *block_job_run(void *arg)
{
    struct block_job *j = arg;
    if (j->skip) return NULL;
    if (j->write)
        j->rc = pt_blocks_write_pages(j->addr, j->block, j->crc, j->pieces, j->n_pieces, j->size,
                                      j->page_crcs, j->cert, &j->proof, j->opts);
    else
        j->rc = pt_blocks_read(j->addr, j->block, j->offset, j->count, j->buf, &j->got, NULL,
                               j->opts);
    return NULL;
}

/* Run jobs in parallel (a job whose thread cannot start runs here). */
static void block_jobs_run(struct block_job *jobs, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++)
        jobs[i].started = pthread_create(&jobs[i].thread, NULL, block_job_run, &jobs[i]) == 0;
    for (i = 0; i < n; i++) {
        if (jobs[i].started)
            pthread_join(jobs[i].thread, NULL);
        else
            block_job_run(&jobs[i]);
    }
}

/* ---- writing --------------------------------------------------------------------------------- */

struct writer {
    struct petrel_client *c;
    uint64_t file, cookie, dir;
    unsigned copies; /* mirrored spans: the policy's copies */
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

/* Start jobs in parallel (a job whose thread cannot start runs at join). */
static void block_jobs_start(struct block_job *jobs, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++)
        jobs[i].started = pthread_create(&jobs[i].thread, NULL, block_job_run, &jobs[i]) == 0;
}

static void block_jobs_join(struct block_job *jobs, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++) {
        if (jobs[i].started)
            pthread_join(jobs[i].thread, NULL);
        else
            block_job_run(&jobs[i]);
        jobs[i].started = 0;
        jobs[i].skip = 1; /* joined: never run again */
    }
}

/* A mirrored span on its way: placed (ADD_SPAN), its copies being written. */
struct span_flight {
    uint64_t offset;
    uint8_t *data;
    uint8_t *page_crcs; /* of data, computed once for every copy; NULL: not kept */
    uint32_t len, crc;
    struct block_job jobs[PT_SPAN_BLOCKS_MAX];
    unsigned n;
};

/*
 * First half of a mirrored span: ADD_SPAN (avoiding the services in avoid), then the write
 * of every copy started, each on its own thread and connection. 0 with the jobs running
 * (span_finish must follow), or the shard's error with nothing running.
 */
static int span_place(struct writer *w, struct span_flight *f, const uint64_t *avoid,
                      uint8_t n_avoid)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    unsigned n, i;
    int rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_ADD_SPAN;
    q.offset = f->offset;
    q.size = f->len;
    q.crc = f->crc;
    q.storage = PT_STORAGE_MIRRORED;
    q.data = 1;
    q.parity = (uint8_t)(w->copies - 1);
    q.block_size = f->len;
    q.n_services = n_avoid;
    if (n_avoid) memcpy(q.services, avoid, n_avoid * sizeof(avoid[0]));
    f->n = 0;
    if ((rc = write_call(w, &q, &rep, NULL)) != 0) {
        pt_reply_free(&rep);
        return rc;
    }
    pt_cursor_init(&b, rep.body, rep.body_len);
    n = pt_dec_u8(&b);
    if (n == 0 || n > PT_SPAN_BLOCKS_MAX) rc = -PT_EPROTO;
    for (i = 0; i < n && rc == 0; i++) {
        struct block_job *j = &f->jobs[i];
        memset(j, 0, sizeof(*j));
        j->service = pt_dec_u64(&b);
        j->block = pt_dec_u64(&b);
        j->cert = pt_dec_u64(&b);
        if (!pt_cursor_ok(&b)) {
            rc = -PT_EPROTO;
            break;
        }
        j->write = 1;
        j->crc = f->crc;
        j->size = f->len;
        j->pieces[0].iov_base = f->data;
        j->pieces[0].iov_len = f->len;
        j->n_pieces = 1;
        j->page_crcs = f->page_crcs;
        j->opts = &w->c->block_opts;
        j->rc = service_addr(w->c, j->service, 0, j->addr, sizeof(j->addr));
        j->skip = j->rc != 0;
    }
    pt_reply_free(&rep);
    if (rc) return rc;
    f->n = n;
    block_jobs_start(f->jobs, n);
    return 0;
}

/*
 * Second half: wait for the copies, retry a copy once at the service's new address when it
 * may have moved, then CERTIFY with every proof. A block service that failed is added to
 * avoid and *failed is set; the span then stays uncertified for the caller to drop.
 */
static int span_finish(struct writer *w, struct span_flight *f, uint64_t *avoid,
                       uint8_t *n_avoid, int *failed)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    uint8_t proofs[PT_SPAN_BLOCKS_MAX * 8];
    unsigned i;
    int rc = 0;
    block_jobs_join(f->jobs, f->n);
    for (i = 0; i < f->n; i++) {
        struct block_job *j = &f->jobs[i];
        int jrc = j->rc;
        if (jrc != 0 && jrc != -PT_ENOTCERT && jrc != -PT_EEXIST) {
            /* The service may have moved: ask the registry once and retry there. */
            if (service_addr(w->c, j->service, 1, j->addr, sizeof(j->addr)) == 0)
                jrc = pt_blocks_write(j->addr, j->block, f->crc, f->data, f->len, j->cert,
                                      &j->proof, &w->c->block_opts);
        }
        if (jrc != 0) {
            petrel_log(PT_LOG_WARN, "client", "block service %llu failed a write: %s",
                       (unsigned long long)j->service, petrel_strerror(jrc));
            if (*n_avoid < PT_SPAN_BLOCKS_MAX) avoid[(*n_avoid)++] = j->service;
            *failed = 1;
            if (!rc) rc = jrc;
        }
        pt_put_le64(proofs + (size_t)8 * i, j->proof);
    }
    if (rc) return rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_CERTIFY_SPAN;
    q.offset = f->offset;
    q.data_len = 8 * f->n;
    q.data_ptr = proofs;
    rc = write_call(w, &q, &rep, NULL);
    pt_reply_free(&rep);
    return rc;
}

/* One attempt at a mirrored span: place it, write every copy, CERTIFY. */
static int span_attempt(struct writer *w, uint64_t offset, const uint8_t *data, uint32_t len,
                        uint32_t crc, uint64_t *avoid, uint8_t *n_avoid, int *failed)
{
    struct span_flight f;
    int rc;
    f.offset = offset;
    f.data = (uint8_t *)data;
    f.page_crcs = NULL;
    f.len = len;
    f.crc = crc;
    rc = span_place(w, &f, avoid, *n_avoid);
    return rc ? rc : span_finish(w, &f, avoid, n_avoid, failed);
}

/* Drop the span at `offset` of the file being written (a failed placement), so it can be
 * placed again: 0 once it is gone. */
static int drop_span(struct writer *w, uint64_t offset)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    int rc, retried;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_DROP_SPAN;
    q.offset = offset;
    rc = write_call(w, &q, &rep, &retried);
    pt_reply_free(&rep);
    /* A repeat whose first try was committed finds the span gone: it is dropped. */
    if (rc == -PT_ENOENT && retried) rc = 0;
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
        int failed = 0, drc;
        rc = span_attempt(w, offset, data, len, crc, avoid, &n_avoid, &failed);
        if (rc == 0 || !failed) return rc;
        if ((drc = drop_span(w, offset)) != 0) return drc;
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

/* ---- redundancy: storage policies ---------------------------------------------------------- */

#define POLICY_CACHE_MS 5000       /* a writer reuses a directory's policy this long */
#define DEFAULT_RS_DOMAINS 6       /* failure domains the default RS(4,2) needs */
#define DEFAULT_RS_THRESHOLD (4u << 20)
#define DEFAULT_RS_BLOCK (1u << 20)
#define CHAIN_MAX 64               /* ancestors asked for a policy, nearest first */

static void policy_to_public(const struct pt_policy *p, struct petrel_policy *out)
{
    out->copies = p->copies;
    out->data = p->data;
    out->parity = p->parity;
    out->rs_threshold = p->rs_threshold;
    out->block_size = p->block_size;
}

/* The default: the client's copies; RS(4,2) when the registry lists >= 6 failure domains. */
static void policy_default(struct petrel_client *c, struct pt_policy *p)
{
    size_t i, j, domains = 0;
    memset(p, 0, sizeof(*p));
    p->copies = (uint8_t)c->cfg.copies;
    if (!c->n_services) refresh_services(c);
    for (i = 0; i < c->n_services; i++) {
        int seen = 0;
        if (c->services[i].stale) continue;
        for (j = 0; j < i && !seen; j++)
            seen = !c->services[j].stale &&
                   strcmp(c->services[j].failure_domain, c->services[i].failure_domain) == 0;
        if (!seen) domains++;
    }
    if (domains >= DEFAULT_RS_DOMAINS) {
        p->data = 4;
        p->parity = 2;
        p->rs_threshold = DEFAULT_RS_THRESHOLD;
        p->block_size = DEFAULT_RS_BLOCK;
    }
}

/* GET_POLICY on the directory's own shard: 0, -PT_ENOENT (none), or an error. */
static int policy_of_dir(struct petrel_client *c, uint64_t dir, struct pt_policy *p)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    int rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_GET_POLICY;
    q.id = dir;
    rc = shard_call(c, dir, &q, &rep, NULL);
    if (rc == 0) rc = pt_policy_decode(rep.body, rep.body_len, p) ? -PT_EPROTO : 0;
    pt_reply_free(&rep);
    return rc;
}

/*
 * The policy of the directory at path: walk from the root recording each directory and the
 * length of its path prefix, then ask from the nearest up. *from_len: prefix length of the
 * directory it came from, or -1 for the default.
 */
static int policy_resolve(struct petrel_client *c, const char *path, struct pt_policy *p,
                          int *from_len, uint64_t *dir_out)
{
    uint64_t ids[CHAIN_MAX], cur = PT_INODE_ROOT;
    int ends[CHAIN_MAX];
    unsigned n = 0, i;
    uint8_t t = PT_TYPE_DIR, len;
    char name[PT_NAME_MAX + 1];
    const char *s = path, *end;
    int rc;
    if (!path || path[0] != '/') return -PT_EINVAL;
    end = path + strlen(path);
    ids[n] = cur;
    ends[n++] = 1;
    while ((rc = next_component_until(&s, end, name, &len)) > 0) {
        if ((rc = lookup(c, cur, name, len, &cur, &t)) != 0) return rc;
        if (t != PT_TYPE_DIR) return -PT_ENOTDIR;
        if (n == CHAIN_MAX) { /* keep the nearest CHAIN_MAX */
            memmove(ids, ids + 1, sizeof(ids[0]) * (CHAIN_MAX - 1));
            memmove(ends, ends + 1, sizeof(ends[0]) * (CHAIN_MAX - 1));
            n--;
        }
        ids[n] = cur;
        ends[n++] = (int)(s - path);
    }
    if (rc < 0) return rc;
    if (dir_out) *dir_out = cur;
    for (i = n; i-- > 0;) {
        rc = policy_of_dir(c, ids[i], p);
        if (rc == 0) {
            *from_len = ends[i];
            return 0;
        }
        if (rc != -PT_ENOENT) return rc;
    }
    policy_default(c, p);
    *from_len = -1;
    return 0;
}

int petrel_client_get_policy(struct petrel_client *c, const char *path, struct petrel_policy *out,
                             char *from, size_t cap)
{
    struct pt_policy p;
    int from_len, rc = policy_resolve(c, path, &p, &from_len, NULL);
    if (rc) return rc;
    policy_to_public(&p, out);
    if (from && cap) snprintf(from, cap, "%.*s", from_len < 0 ? 0 : from_len, path);
    return 0;
}

int petrel_client_set_policy(struct petrel_client *c, const char *path,
                             const struct petrel_policy *p)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_policy pp, check;
    uint8_t rec[PT_POLICY_SIZE];
    uint64_t dir;
    uint8_t type;
    int rc;
    memset(&q, 0, sizeof(q));
    if (p) {
        if (p->copies > 255 || p->data > 255 || p->parity > 255) return -PT_EINVAL;
        pp.copies = (uint8_t)p->copies;
        pp.data = (uint8_t)p->data;
        pp.parity = (uint8_t)p->parity;
        pp.rs_threshold = p->rs_threshold;
        pp.block_size = p->block_size;
        pt_policy_encode(rec, &pp);
        if (pt_policy_decode(rec, sizeof(rec), &check) != 0) return -PT_EINVAL;
        q.data_len = sizeof(rec);
        q.data_ptr = rec;
    }
    if ((rc = petrel_client_resolve(c, path, &dir, &type)) != 0) return rc;
    if (type != PT_TYPE_DIR) return -PT_ENOTDIR;
    q.op = PT_SHARD_SET_POLICY;
    q.id = dir;
    rc = shard_call(c, dir, &q, &rep, NULL);
    pt_reply_free(&rep);
    if (rc == 0) c->policy_cached_at = 0;
    return rc;
}

/* The policy a new file in directory `dir` (path of the file: `path`) is written with. */
static int writer_policy(struct petrel_client *c, const char *path, uint64_t dir,
                         struct pt_policy *p)
{
    char *parent, *slash;
    int from_len, rc;
    uint64_t now = pt_now_ms(), resolved;
    if (c->policy_cached_at && c->policy_dir == dir && now - c->policy_cached_at < POLICY_CACHE_MS) {
        *p = c->policy;
        return 0;
    }
    /* a copy of any length: paths through a FUSE mount may exceed PATH_MAX */
    if (!(parent = strdup(path))) return -PT_ENOMEM;
    slash = strrchr(parent, '/');
    if (!slash) {
        free(parent);
        return -PT_EINVAL;
    }
    slash[1] = 0;
    rc = policy_resolve(c, parent, p, &from_len, &resolved);
    free(parent);
    if (rc != 0) return rc;
    c->policy = *p;
    c->policy_dir = dir;
    c->policy_cached_at = now;
    return 0;
}

/* ---- redundancy: Reed-Solomon spans ---------------------------------------------------------- */

/*
 * The bytes of one RS span being written: data in row-major order (cell (row r, data block
 * k) at r * D * cell + k * cell, exactly the span's bytes in order, zero past the end), parity
 * blocks apart. The buffers are sized for the policy's full span and reused span after span:
 * the writer holds one span (its I/O window) and nothing more.
 */
struct rs_writer {
    struct pt_ec ec;
    unsigned d, p;
    uint32_t full_block;
    uint8_t *data;               /* D x full_block */
    uint8_t *parity[PT_EC_PARITY_MAX];
    uint8_t cells[4 * PT_RS_ROWS_MAX * PT_SPAN_BLOCKS_MAX];
    uint32_t block_crc[PT_SPAN_BLOCKS_MAX];
};

static void rs_writer_free(struct rs_writer *r)
{
    unsigned i;
    free(r->data);
    for (i = 0; i < PT_EC_PARITY_MAX; i++)
        free(r->parity[i]);
}

static int rs_writer_init(struct rs_writer *r, const struct pt_policy *p)
{
    unsigned i;
    memset(r, 0, sizeof(*r));
    if (pt_ec_init(&r->ec, p->data, p->parity) != 0) return -PT_EINVAL;
    r->d = p->data;
    r->p = p->parity;
    r->full_block = p->block_size;
    r->data = malloc((size_t)r->d * r->full_block);
    for (i = 0; i < r->p; i++)
        r->parity[i] = malloc(r->full_block);
    for (i = 0; i < r->p; i++)
        if (!r->parity[i]) break;
    if (!r->data || i < r->p) {
        rs_writer_free(r);
        return -PT_ENOMEM;
    }
    return 0;
}

/* Where cell (block b, row r) of the current span lies in the writer's buffers. */
static uint8_t *rs_cell(struct rs_writer *r, unsigned b, unsigned row, uint32_t cell)
{
    if (b < r->d) return r->data + ((size_t)row * r->d + b) * cell;
    return r->parity[b - r->d] + (size_t)row * cell;
}

/* Parity per cell row, every cell's CRC and each block's CRC combined from them. */
static void rs_encode_span(struct rs_writer *r, uint32_t size, uint32_t block_size)
{
    uint32_t cell = pt_rs_cell(block_size), rows = pt_rs_rows(block_size), row;
    unsigned b, n = r->d + r->p;
    size_t total = (size_t)r->d * block_size;
    if (total > size) memset(r->data + size, 0, total - size); /* padding of the last row */
    for (row = 0; row < rows; row++) {
        uint8_t *src[PT_EC_DATA_MAX], *dst[PT_EC_PARITY_MAX];
        for (b = 0; b < r->d; b++)
            src[b] = rs_cell(r, b, row, cell);
        for (b = 0; b < r->p; b++)
            dst[b] = rs_cell(r, r->d + b, row, cell);
        pt_ec_encode(&r->ec, cell, src, dst);
    }
    for (b = 0; b < n; b++) {
        uint32_t crc = 0;
        for (row = 0; row < rows; row++) {
            uint32_t cc = petrel_crc32c(0, rs_cell(r, b, row, cell), cell);
            pt_put_le32(r->cells + 4 * ((size_t)b * rows + row), cc);
            crc = petrel_crc32c_append(crc, cc, cell);
        }
        r->block_crc[b] = crc;
    }
}

/* One attempt at an RS span: ADD_RS_SPAN (avoiding `avoid`), the D + P writes, CERTIFY. */
static int rs_span_attempt(struct writer *w, struct rs_writer *r, uint64_t offset, uint32_t size,
                           uint32_t crc, uint64_t *avoid, uint8_t *n_avoid, int *failed)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    struct block_job jobs[PT_SPAN_BLOCKS_MAX];
    uint8_t proofs[PT_SPAN_BLOCKS_MAX * 8];
    uint32_t block_size = pt_rs_block_size(size, r->d), cell = pt_rs_cell(block_size);
    uint32_t rows = pt_rs_rows(block_size);
    unsigned n = r->d + r->p, i, k;
    int rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_ADD_RS_SPAN;
    q.offset = offset;
    q.size = size;
    q.crc = crc;
    q.storage = PT_STORAGE_RS;
    q.data = (uint8_t)r->d;
    q.parity = (uint8_t)r->p;
    q.block_size = block_size;
    q.data_len = 4 * rows * n;
    q.data_ptr = r->cells;
    q.n_services = *n_avoid;
    memcpy(q.services, avoid, *n_avoid * sizeof(avoid[0]));
    if ((rc = write_call(w, &q, &rep, NULL)) != 0) {
        pt_reply_free(&rep);
        return rc;
    }
    pt_cursor_init(&b, rep.body, rep.body_len);
    if (pt_dec_u8(&b) != n) rc = -PT_EPROTO;
    memset(jobs, 0, sizeof(jobs));
    for (i = 0; i < n && rc == 0; i++) {
        struct block_job *j = &jobs[i];
        j->service = pt_dec_u64(&b);
        j->block = pt_dec_u64(&b);
        j->cert = pt_dec_u64(&b);
        if (!pt_cursor_ok(&b)) rc = -PT_EPROTO;
        j->write = 1;
        j->crc = r->block_crc[i];
        j->size = block_size;
        j->opts = &w->c->block_opts;
        j->n_pieces = rows;
        for (k = 0; k < rows; k++) {
            j->pieces[k].iov_base = rs_cell(r, i, k, cell);
            j->pieces[k].iov_len = cell;
        }
        if (rc == 0 && service_addr(w->c, j->service, 0, j->addr, sizeof(j->addr)) != 0)
            j->addr[0] = 0;
    }
    pt_reply_free(&rep);
    if (rc) return rc;
    block_jobs_run(jobs, n);
    for (i = 0; i < n; i++) {
        struct block_job *j = &jobs[i];
        if (j->rc != 0 && j->rc != -PT_ENOTCERT && j->rc != -PT_EEXIST &&
            service_addr(w->c, j->service, 1, j->addr, sizeof(j->addr)) == 0)
            block_job_run(j); /* the service may have moved: once more at its new address */
        if (j->rc != 0) {
            petrel_log(PT_LOG_WARN, "client", "block service %llu failed a write: %s",
                       (unsigned long long)j->service, petrel_strerror(j->rc));
            if (*n_avoid < PT_SPAN_BLOCKS_MAX) avoid[(*n_avoid)++] = j->service;
            *failed = 1;
            rc = j->rc;
        }
        pt_put_le64(proofs + (size_t)8 * i, j->proof);
    }
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

/* An RS span of the writer's first `size` data bytes; a failing service is avoided. */
static int write_rs_span(struct writer *w, struct rs_writer *r, uint64_t offset, uint32_t size)
{
    uint64_t avoid[PT_SPAN_BLOCKS_MAX];
    uint8_t n_avoid = 0;
    uint32_t crc = petrel_crc32c(0, r->data, size);
    unsigned attempt;
    int rc = -PT_EIO;
    rs_encode_span(r, size, pt_rs_block_size(size, r->d));
    for (attempt = 0; attempt < 4; attempt++) {
        int failed = 0, drc;
        rc = rs_span_attempt(w, r, offset, size, crc, avoid, &n_avoid, &failed);
        if (rc == 0 || !failed) return rc;
        if ((drc = drop_span(w, offset)) != 0) return drc;
    }
    return rc;
}

/* The data stream of a writer: bytes read ahead to decide the layout, then the caller's. */
struct source {
    petrel_read_fn read;
    void *ctx;
    const uint8_t *ahead;
    size_t ahead_len, ahead_pos;
};

static long source_fill(struct source *s, uint8_t *buf, size_t cap)
{
    size_t from_ahead = PT_MIN(cap, s->ahead_len - s->ahead_pos);
    long n;
    if (from_ahead) memcpy(buf, s->ahead + s->ahead_pos, from_ahead);
    s->ahead_pos += from_ahead;
    if (from_ahead == cap) return (long)cap;
    n = fill(s->read, s->ctx, buf + from_ahead, cap - from_ahead);
    return n < 0 ? n : (long)(from_ahead + (size_t)n);
}

/* Every span of a file written RS from the source; *written the bytes stored. */
static int write_rs_file(struct writer *w, const struct pt_policy *p, struct source *src,
                         uint64_t *written)
{
    struct rs_writer r;
    uint64_t offset = 0;
    size_t span = (size_t)p->data * p->block_size;
    int rc = rs_writer_init(&r, p);
    if (rc) return rc;
    for (;;) {
        long n = source_fill(src, r.data, span);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n == 0) break;
        if ((rc = write_rs_span(w, &r, offset, (uint32_t)n)) != 0) break;
        offset += (uint64_t)n;
        if ((size_t)n < span) break;
    }
    rs_writer_free(&r);
    *written = offset;
    return rc;
}

/* ---- redundancy: degraded reads ------------------------------------------------------------ */

#define DOWN_MS 10000 /* a service that failed a read is tried last for this long */

static void service_mark_down(struct petrel_client *c, uint64_t service)
{
    unsigned i, slot = 0;
    uint64_t now = pt_now_ms();
    for (i = 0; i < PT_ARRAY_SIZE(c->down); i++) {
        if (c->down[i].service == service || c->down[i].until < now) {
            slot = i;
            break;
        }
        if (c->down[i].until < c->down[slot].until) slot = i;
    }
    c->down[slot].service = service;
    c->down[slot].until = now + DOWN_MS;
}

static int service_is_down(struct petrel_client *c, uint64_t service)
{
    unsigned i;
    uint64_t now = pt_now_ms();
    for (i = 0; i < PT_ARRAY_SIZE(c->down); i++)
        if (c->down[i].service == service && c->down[i].until >= now) return 1;
    return 0;
}

/* Tell the file's shard that a block did not serve a read (repair queue); best effort. */
static void report_bad_block(struct petrel_client *c, uint64_t file, const struct pt_span *s,
                             unsigned idx, int err)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    int rc;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_REPORT_BAD_BLOCK;
    q.id = file;
    q.offset = s->offset;
    q.target = s->blocks[idx].block;
    q.max = err == -PT_ECORRUPT ? PT_BAD_CORRUPT
            : err == -PT_ENOENT ? PT_BAD_MISSING
                                : PT_BAD_UNREACHABLE;
    rc = shard_call(c, file, &q, &rep, NULL);
    pt_reply_free(&rep);
    if (rc)
        petrel_log(PT_LOG_WARN, "client", "could not report block %llx: %s",
                   (unsigned long long)q.target, petrel_strerror(rc));
}

/*
 * State of one RS span while it is read: which blocks failed (each reported once), and the
 * buffers of one batch of cell rows: block b's bytes from row `ra` on at blk + b * stride.
 */
struct rs_reader {
    struct petrel_client *c;
    const char *path;
    uint64_t file;
    const struct pt_span *s;
    struct pt_ec ec;
    unsigned d, n;
    uint32_t cell, rows, row_bytes, batch_rows;
    uint8_t *blk, *out;
    size_t stride;
    int failed[PT_SPAN_BLOCKS_MAX]; /* 0, or the error that took the block out */
    uint32_t reported;              /* blocks already logged and reported to the shard */
    int patient;                    /* second try of a batch: slow services get more time */
    int too_few;                    /* the batch failed for want of D survivors (nothing of it
                                     * was delivered) */
    struct pt_call_opts patient_opts;
};

/* A batch that lost more than P blocks while some only timed out is read once more, giving
 * every service this many times the attempt timeout: a busy but healthy service is not a
 * lost block. */
#define RS_PATIENT_FACTOR 5

static void rs_block_failed(struct rs_reader *r, unsigned b, int err)
{
    if (r->failed[b]) return;
    r->failed[b] = err;
    if (r->reported >> b & 1u) return;
    r->reported |= 1u << b;
    petrel_log(PT_LOG_WARN, "client", "%s: span at %llu: block %u (%llx on service %llu): %s",
               r->path, (unsigned long long)r->s->offset, b,
               (unsigned long long)r->s->blocks[b].block,
               (unsigned long long)r->s->blocks[b].service, petrel_strerror(err));
    if (err != -PT_ECORRUPT && err != -PT_ENOENT) service_mark_down(r->c, r->s->blocks[b].service);
    report_bad_block(r->c, r->file, r->s, b, err);
}

/* Read [lo, hi) of several blocks of the batch starting at row ra, in parallel. */
static void rs_read_blocks(struct rs_reader *r, uint32_t ra, const unsigned *which, unsigned m,
                           const uint32_t *lo, const uint32_t *hi)
{
    struct block_job jobs[PT_SPAN_BLOCKS_MAX];
    unsigned i;
    memset(jobs, 0, sizeof(jobs));
    for (i = 0; i < m; i++) {
        struct block_job *j = &jobs[i];
        const struct pt_block_ref *ref = &r->s->blocks[which[i]];
        j->block = ref->block;
        j->offset = lo[i];
        j->count = hi[i] - lo[i];
        j->buf = r->blk + which[i] * r->stride + (lo[i] - ra * r->cell);
        j->opts = r->patient ? &r->patient_opts : &r->c->rs_read_opts;
        if (service_addr(r->c, ref->service, 0, j->addr, sizeof(j->addr)) != 0) j->addr[0] = 0;
    }
    block_jobs_run(jobs, m);
    for (i = 0; i < m; i++) {
        struct block_job *j = &jobs[i];
        char moved[PT_REG_ADDR_MAX];
        if (j->rc != 0 && j->rc != -PT_ECORRUPT && j->rc != -PT_ENOENT &&
            service_addr(r->c, r->s->blocks[which[i]].service, 1, moved, sizeof(moved)) == 0 &&
            strcmp(moved, j->addr) != 0) {
            snprintf(j->addr, sizeof(j->addr), "%s", moved);
            block_job_run(j); /* restarted on a new port */
        }
        if (j->rc == 0 && j->got != j->count) j->rc = -PT_ECORRUPT;
        if (j->rc != 0) rs_block_failed(r, which[i], j->rc);
    }
}

/*
 * D survivors (not failed, not `exclude`) with whole cells for rows [ra2, rb2] in the batch
 * buffers: healthy services first, services that just failed last. `full` marks blocks read
 * whole for these rows already. Returns how many were found (< D: too many lost).
 */
static unsigned rs_gather(struct rs_reader *r, uint32_t ra, uint32_t ra2, uint32_t rb2, int exclude,
                          uint32_t *full, unsigned *have)
{
    unsigned n_have = 0, b, i, pass;
    for (pass = 0; pass < 2 && n_have < r->d; pass++) {
        unsigned which[PT_SPAN_BLOCKS_MAX], m = 0;
        uint32_t lo[PT_SPAN_BLOCKS_MAX], hi[PT_SPAN_BLOCKS_MAX];
        for (b = 0; b < r->n && n_have + m < r->d; b++) {
            int used = 0;
            for (i = 0; i < n_have; i++)
                used |= have[i] == b;
            if (used || r->failed[b] || (int)b == exclude) continue;
            if (*full >> b & 1u) {
                have[n_have++] = b;
                continue;
            }
            if (pass == 0 && !r->patient && service_is_down(r->c, r->s->blocks[b].service))
                continue;
            which[m] = b;
            lo[m] = ra2 * r->cell;
            hi[m] = (rb2 + 1) * r->cell;
            m++;
        }
        if (m) rs_read_blocks(r, ra, which, m, lo, hi);
        for (i = 0; i < m; i++)
            if (!r->failed[which[i]]) {
                have[n_have++] = which[i];
                *full |= 1u << which[i];
            }
    }
    return n_have;
}

/* Every rebuilt cell against its cell CRC from the span record: 0 or the first bad one + 1. */
static unsigned rs_check_rebuilt(struct rs_reader *r, uint32_t ra, uint32_t ra2, uint32_t rb2,
                                 const unsigned *want, unsigned n_want)
{
    unsigned i;
    uint32_t row;
    for (i = 0; i < n_want; i++)
        for (row = ra2; row <= rb2; row++) {
            const uint8_t *cellp = r->blk + want[i] * r->stride + (size_t)(row - ra) * r->cell;
            if (petrel_crc32c(0, cellp, r->cell) != pt_span_cell_crc(r->s, want[i], row))
                return i + 1;
        }
    return 0;
}

/*
 * Rebuild the cells of rows [ra2, rb2] of the failed data blocks in `want` from D survivors
 * read whole for those rows, then check every rebuilt cell against its cell CRC. A survivor
 * that served wrong bytes under valid page CRCs makes the check fail: then each survivor in
 * turn is left out (another block read instead, when one remains) until a set passes; the one
 * left out is reported as corrupt. No set passes: -PT_ECORRUPT, nothing delivered.
 */
static int rs_rebuild(struct rs_reader *r, uint32_t ra, uint32_t ra2, uint32_t rb2,
                      const unsigned *want, unsigned n_want)
{
    unsigned have[PT_SPAN_BLOCKS_MAX], n_have, b, i, bad = 0;
    uint8_t *src[PT_SPAN_BLOCKS_MAX], *dst[PT_SPAN_BLOCKS_MAX];
    uint32_t len = (rb2 - ra2 + 1) * r->cell, full = 0;
    int exclude = -1, rc;
    for (;;) {
        n_have = rs_gather(r, ra, ra2, rb2, exclude, &full, have);
        if (n_have < r->d) {
            unsigned lost = 0;
            if (exclude >= 0) break; /* no other set to try */
            for (b = 0; b < r->n; b++)
                lost += r->failed[b] != 0;
            petrel_log(PT_LOG_ERROR, "client",
                       "%s: span at offset %llu (RS(%u,%u)): %u of its %u blocks unreadable, at "
                       "most %u can be rebuilt",
                       r->path, (unsigned long long)r->s->offset, r->d, r->n - r->d, lost, r->n,
                       r->n - r->d);
            r->too_few = 1;
            return -PT_EIO;
        }
        for (i = 0; i < r->d; i++)
            src[i] = r->blk + have[i] * r->stride + (size_t)(ra2 - ra) * r->cell;
        for (i = 0; i < n_want; i++)
            dst[i] = r->blk + want[i] * r->stride + (size_t)(ra2 - ra) * r->cell;
        if ((rc = pt_ec_decode(&r->ec, len, r->d, have, src, n_want, want, dst)) != 0) return rc;
        if ((bad = rs_check_rebuilt(r, ra, ra2, rb2, want, n_want)) == 0) {
            if (exclude >= 0) rs_block_failed(r, (unsigned)exclude, -PT_ECORRUPT);
            return 0;
        }
        /* Leave out the next survivor of the first set (in block order). */
        for (b = (unsigned)(exclude + 1); b < r->n && (r->failed[b] || !(full >> b & 1u)); b++)
            ;
        if (b >= r->n) break;
        exclude = (int)b;
    }
    petrel_log(PT_LOG_ERROR, "client",
               "%s: span at offset %llu: rebuilt cell (block %u, rows %u..%u) fails its CRC "
               "from every set of survivors",
               r->path, (unsigned long long)r->s->offset, want[bad ? bad - 1 : 0], ra2, rb2);
    return -PT_ECORRUPT;
}

/* Deliver span bytes [from, to) lying in rows [ra, rb] (every block read or rebuilt). */
static int rs_deliver(struct rs_reader *r, uint32_t ra, uint32_t from, uint32_t to,
                      petrel_write_fn write, void *ctx)
{
    uint32_t x = from, o = 0;
    int rc;
    while (x < to) {
        uint32_t row = x / r->row_bytes, in_row = x % r->row_bytes, k = in_row / r->cell;
        uint32_t off = in_row % r->cell, n = PT_MIN(PT_MIN(r->cell - off, to - x), READ_PIECE - o);
        memcpy(r->out + o, r->blk + k * r->stride + (size_t)(row - ra) * r->cell + off, n);
        o += n;
        x += n;
        if (o == READ_PIECE) { /* the caller gets pieces of at most 1 MiB */
            if ((rc = write(ctx, r->out, o)) != 0) return rc;
            o = 0;
        }
    }
    return o ? write(ctx, r->out, o) : 0;
}

/* One batch of rows [ra, rb]: read what the range needs, rebuild what failed, deliver. */
static int rs_read_batch(struct rs_reader *r, uint32_t ra, uint32_t rb, uint32_t from, uint32_t to,
                         petrel_write_fn write, void *ctx)
{
    unsigned which[PT_SPAN_BLOCKS_MAX], want[PT_SPAN_BLOCKS_MAX], m = 0, n_want = 0, k;
    uint32_t lo[PT_SPAN_BLOCKS_MAX], hi[PT_SPAN_BLOCKS_MAX], wlo = UINT32_MAX, whi = 0;
    uint32_t klo[PT_SPAN_BLOCKS_MAX] = {0}, khi[PT_SPAN_BLOCKS_MAX] = {0};
    int rc;
    /* Each data block's needed in-block range: contiguous across the batch's rows. */
    for (k = 0; k < r->d; k++) {
        uint32_t row;
        klo[k] = UINT32_MAX;
        khi[k] = 0;
        for (row = ra; row <= rb; row++) {
            uint32_t c0 = row * r->row_bytes + k * r->cell, c1 = c0 + r->cell;
            uint32_t a = PT_MAX(c0, from), z = PT_MIN(c1, to);
            if (a >= z) continue;
            klo[k] = PT_MIN(klo[k], row * r->cell + (a - c0));
            khi[k] = PT_MAX(khi[k], row * r->cell + (z - c0));
        }
        if (klo[k] >= khi[k]) continue;
        if (r->failed[k] || (!r->patient && service_is_down(r->c, r->s->blocks[k].service))) {
            if (!r->failed[k]) r->failed[k] = -PT_ETIMEDOUT; /* known down: not asked again */
            continue;
        }
        which[m] = k;
        lo[m] = klo[k];
        hi[m] = khi[k];
        m++;
    }
    if (m) rs_read_blocks(r, ra, which, m, lo, hi);
    for (k = 0; k < r->d; k++) {
        if (klo[k] >= khi[k] || !r->failed[k]) continue;
        want[n_want++] = k;
        wlo = PT_MIN(wlo, klo[k] / r->cell);
        whi = PT_MAX(whi, (khi[k] - 1) / r->cell);
    }
    if (n_want && (rc = rs_rebuild(r, ra, wlo, whi, want, n_want)) != 0) return rc;
    return rs_deliver(r, ra, from, to, write, ctx);
}

/* Deliver [from, from+count) of an RS span, degraded where blocks fail. */
static int read_rs(struct petrel_client *c, const char *path, uint64_t file,
                   const struct pt_span *s, uint32_t from, uint32_t count, petrel_write_fn write,
                   void *ctx)
{
    struct rs_reader r;
    uint32_t to = from + count, pos = from;
    int rc = 0;
    memset(&r, 0, sizeof(r));
    if (pt_ec_init(&r.ec, s->data, s->parity) != 0) return -PT_ECORRUPT;
    r.c = c;
    r.path = path;
    r.file = file;
    r.s = s;
    r.d = s->data;
    r.n = (unsigned)s->data + s->parity;
    r.cell = pt_rs_cell(s->block_size);
    r.rows = pt_rs_rows(s->block_size);
    r.row_bytes = r.d * r.cell;
    /* A batch reads up to 1 MiB from each block (D MiB of the file), in parallel. */
    r.batch_rows = PT_MIN(PT_MAX(1u, READ_PIECE / r.cell), r.rows);
    r.stride = (size_t)r.batch_rows * r.cell;
    r.blk = malloc(r.stride * r.n);
    r.out = malloc(READ_PIECE);
    if (!r.blk || !r.out) {
        free(r.blk);
        free(r.out);
        return -PT_ENOMEM;
    }
    r.patient_opts = c->rs_read_opts;
    r.patient_opts.timeout_ms *= RS_PATIENT_FACTOR;
    while (pos < to && rc == 0) {
        uint32_t ra = pos / r.row_bytes, rb = PT_MIN(ra + r.batch_rows - 1, r.rows - 1);
        uint32_t end = PT_MIN(to, (rb + 1) * r.row_bytes);
        unsigned b, timed_out = 0;
        r.too_few = 0;
        rc = rs_read_batch(&r, ra, rb, pos, end, write, ctx);
        for (b = 0; b < r.n; b++)
            timed_out += r.failed[b] == -PT_ETIMEDOUT;
        if (rc == -PT_EIO && r.too_few && timed_out && !r.patient) {
            /* nothing of the batch was delivered: read it again, patiently */
            for (b = 0; b < r.n; b++)
                if (r.failed[b] == -PT_ETIMEDOUT) r.failed[b] = 0;
            r.patient = 1;
            rc = rs_read_batch(&r, ra, rb, pos, end, write, ctx);
        }
        pos = end;
    }
    free(r.blk);
    free(r.out);
    return rc;
}

int petrel_client_create(struct petrel_client *c, const char *path, uint64_t replaces,
                         const struct petrel_attr *owner, struct petrel_new_file *nf)
{
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor b;
    struct pt_policy pol;
    uint64_t existing;
    int rc;
    memset(nf, 0, sizeof(*nf));
    if ((rc = resolve_parent(c, path, &nf->dir, nf->name, &nf->name_len)) != 0) return rc;
    /* Fail early when the name already differs from what the caller expects (the link
     * checks it again, atomically). */
    if ((rc = lookup_expect(c, nf->dir, nf->name, nf->name_len, &existing)) != 0) return rc;
    if (existing != replaces) return replaces ? -PT_ESTALE : -PT_EEXIST;
    if ((rc = writer_policy(c, path, nf->dir, &pol)) != 0) return rc;
    nf->copies = pol.copies ? pol.copies : (uint8_t)c->cfg.copies;
    nf->rs_data = pol.data;
    nf->rs_parity = pol.parity;
    nf->rs_threshold = pol.rs_threshold;
    nf->rs_block_size = pol.block_size;
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

/*
 * The mirrored spans of a file, pipelined: up to SPAN_WINDOW spans in flight (placed, their
 * copies being written) while the next one is read from the source; spans are certified in
 * order, so the uncertified ones are always the file's last. When a copy of one fails, every
 * span in flight is waited for, the uncertified tail dropped (last first: DROP_SPAN takes only
 * the last span) and written again one by one with write_span (which avoids the failed
 * service). A tail shorter than PT_INLINE_MAX after the spans is stored inline.
 */
#define SPAN_WINDOW 3

/* The oldest span in flight: its copies, then CERTIFY; on a failed copy, the recovery above. */
static int finish_oldest(struct writer *w, struct span_flight *fl, unsigned *head,
                         unsigned *inflight)
{
    struct span_flight *o = &fl[*head];
    uint64_t avoid[PT_SPAN_BLOCKS_MAX];
    uint8_t n_avoid = 0;
    unsigned i, n = *inflight;
    int failed = 0, rc = span_finish(w, o, avoid, &n_avoid, &failed);
    if (rc && failed) {
        /* Wait for the rest, drop the uncertified tail (newest first), write it again. */
        for (i = 1; i < n; i++)
            block_jobs_join(fl[(*head + i) % SPAN_WINDOW].jobs, fl[(*head + i) % SPAN_WINDOW].n);
        rc = 0;
        for (i = n; i-- > 0 && !rc;)
            rc = drop_span(w, fl[(*head + i) % SPAN_WINDOW].offset);
        for (i = 0; i < n && !rc; i++) {
            struct span_flight *r = &fl[(*head + i) % SPAN_WINDOW];
            rc = write_span(w, r->offset, r->data, r->len);
        }
        *head = (*head + n) % SPAN_WINDOW;
        *inflight = 0;
        return rc;
    }
    if (rc) return rc;
    *head = (*head + 1) % SPAN_WINDOW;
    (*inflight)--;
    return 0;
}

static int write_mirrored_spans(struct writer *w, struct source *src, uint64_t *offset_out)
{
    struct petrel_client *c = w->c;
    struct span_flight *fl = calloc(SPAN_WINDOW, sizeof(*fl));
    unsigned head = 0, inflight = 0, i;
    uint64_t offset = *offset_out;
    int rc = 0, eof = 0;
    if (!fl) return -PT_ENOMEM;
    for (i = 0; i < SPAN_WINDOW; i++)
        if (!(fl[i].data = malloc(c->cfg.span_size)) ||
            !(fl[i].page_crcs = malloc((size_t)pt_block_pages(c->cfg.span_size) * 4 + 4)))
            rc = -PT_ENOMEM;
    while (!rc && (!eof || inflight)) {
        if (!eof && inflight < SPAN_WINDOW) {
            struct span_flight *f = &fl[(head + inflight) % SPAN_WINDOW];
            long n = source_fill(src, f->data, c->cfg.span_size);
            if (n < 0) {
                rc = (int)n;
                break;
            }
            eof = n == 0 || (size_t)n < c->cfg.span_size;
            if (n == 0) continue;
            if (n <= (long)PT_INLINE_MAX) {
                /* only ever the file's last piece: the spans before it come first */
                while (!rc && inflight)
                    rc = finish_oldest(w, fl, &head, &inflight);
                if (rc) break;
                rc = write_inline(w, offset, f->data, (uint32_t)n);
                if (!rc) offset += (uint64_t)n;
                continue;
            }
            f->offset = offset;
            f->len = (uint32_t)n;
            f->crc = pt_block_crc_pages(f->data, f->len, f->page_crcs);
            rc = span_place(w, f, NULL, 0);
            if (rc) break;
            inflight++;
            offset += (uint64_t)n;
            if (inflight < SPAN_WINDOW && !eof) continue;
        }
        rc = finish_oldest(w, fl, &head, &inflight);
    }
    /* On an error, no thread may outlive its buffer. */
    for (i = 0; i < inflight; i++)
        block_jobs_join(fl[(head + i) % SPAN_WINDOW].jobs, fl[(head + i) % SPAN_WINDOW].n);
    for (i = 0; i < SPAN_WINDOW; i++) {
        free(fl[i].data);
        free(fl[i].page_crcs);
    }
    free(fl);
    *offset_out = offset;
    return rc;
}

int petrel_client_fill(struct petrel_client *c, const struct petrel_new_file *nf,
                       petrel_read_fn read, void *ctx, uint64_t *size_out)
{
    struct writer w;
    struct pt_shard_req q;
    struct pt_reply rep;
    uint8_t *ahead = NULL;
    uint64_t offset = 0, replaces;
    struct pt_policy pol;
    struct source src;
    int rc = 0;
    memset(&w, 0, sizeof(w));
    w.c = c;
    w.file = nf->file;
    w.cookie = nf->cookie;
    w.copies = nf->copies ? nf->copies : c->cfg.copies;
    /* Routing only (the file's shard is its directory's): nf->dir is read after the stream
     * ended, when no rename can change it any more. */
    w.dir = nf->file;
    memset(&pol, 0, sizeof(pol));
    pol.copies = nf->copies;
    pol.data = nf->rs_data;
    pol.parity = nf->rs_parity;
    pol.rs_threshold = nf->rs_threshold;
    pol.block_size = nf->rs_block_size;
    memset(&src, 0, sizeof(src));
    src.read = read;
    src.ctx = ctx;
    if (pol.data) {
        /* Read up to the threshold to learn whether the file is large enough for RS. */
        long n;
        size_t want = pol.rs_threshold ? pol.rs_threshold : 1;
        ahead = malloc(want);
        if (!ahead) return -PT_ENOMEM;
        n = fill(read, ctx, ahead, want);
        if (n < 0) {
            free(ahead);
            return (int)n;
        }
        src.ahead = ahead;
        src.ahead_len = (size_t)n;
        if (n > 0 && (uint64_t)n >= pol.rs_threshold) {
            rc = write_rs_file(&w, &pol, &src, &offset);
            free(ahead);
            if (rc) return rc;
            goto link;
        }
    }
    rc = write_mirrored_spans(&w, &src, &offset);
    free(ahead);
    if (rc) return rc; /* the transient file expires on its own */
link:
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

static void report_bad_block(struct petrel_client *c, uint64_t file, const struct pt_span *s,
                             unsigned idx, int err);

/*
 * Deliver [from, from+count) of a mirrored span, trying each copy until one serves it intact;
 * a copy that is missing or rotten is reported to the file's shard (once per call).
 */
static int read_blocks(struct petrel_client *c, uint64_t file, const struct pt_span *s,
                       uint32_t from, uint32_t count, uint8_t *buf, uint32_t cap,
                       petrel_write_fn write, void *ctx)
{
    uint32_t reported = 0;
    unsigned n = pt_span_block_count(s), first = (unsigned)pt_prng_below(&c->prng, n), k;
    uint32_t done = 0;
    int rc = -PT_EIO, refreshed = 0;
    while (done < count) {
        uint32_t piece = PT_MIN(cap, count - done), got = 0, out;
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
            if ((rc == -PT_ECORRUPT || rc == -PT_ENOENT) && !(reported >> idx & 1u)) {
                reported |= 1u << idx;
                report_bad_block(c, file, s, idx, rc);
            }
        }
        if (rc) return rc;
        for (out = 0; out < piece; out += PT_MIN(READ_PIECE, piece - out))
            if ((rc = write(ctx, buf + out, PT_MIN(READ_PIECE, piece - out))) != 0) return rc;
        done += piece;
    }
    return 0;
}

static int read_id(struct petrel_client *c, const char *path, uint64_t id, uint64_t offset,
                   uint64_t len, petrel_write_fn write, void *ctx, uint64_t *got);

/* count zero bytes (a hole span's), in pieces of at most 64 KiB. */
static int write_zeros(petrel_write_fn write, void *ctx, uint64_t count)
{
    static const uint8_t zeros[64 << 10];
    int rc = 0;
    while (count && rc == 0) {
        size_t n = (size_t)PT_MIN(count, (uint64_t)sizeof(zeros));
        rc = write(ctx, zeros, n);
        count -= n;
    }
    return rc;
}

/* Deliver [from, from+count) of one span of file id by its storage kind: inline (its CRC
 * checked), Reed-Solomon (label names the file in errors), or mirrored through buf[cap]. */
static int read_span_range(struct petrel_client *c, const char *label, uint64_t id,
                           const struct pt_span *s, uint32_t from, uint32_t count, uint8_t *buf,
                           uint32_t cap, petrel_write_fn write, void *ctx)
{
    if (s->storage == PT_STORAGE_INLINE) {
        if (petrel_crc32c(0, s->inline_data, s->inline_len) != s->crc) return -PT_ECORRUPT;
        return write(ctx, s->inline_data + from, count);
    }
    if (s->storage == PT_STORAGE_RS) return read_rs(c, label, id, s, from, count, write, ctx);
    if (s->storage == PT_STORAGE_HOLE) return write_zeros(write, ctx, count);
    return read_blocks(c, id, s, from, count, buf, cap, write, ctx);
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
    return read_id(c, path, id, offset, len, write, ctx, got);
}

int petrel_client_read_inode(struct petrel_client *c, uint64_t id, uint64_t offset, uint64_t len,
                             petrel_write_fn write, void *ctx, uint64_t *got)
{
    char label[40];
    snprintf(label, sizeof(label), "inode %016llx", (unsigned long long)id);
    return read_id(c, label, id, offset, len, write, ctx, got);
}

/*
 * Mirrored spans read ahead of the one being delivered, each by a thread from one copy into its
 * own buffer, so that the block services' disks and the network work while the caller consumes
 * (a cold sequential read waited for each span in turn). A read ahead that fails or comes back
 * short is not an error: the span is read again by read_blocks, which tries every copy and
 * reports the bad ones. Only for reads that cross spans: a read inside one span stays as it was.
 */
#define READ_SPANS_AHEAD 3
#define SPANS_PER_REPLY 16

struct span_ahead {
    struct block_job job;
    uint8_t *buf;
    uint32_t cap;
    int active;
};

/* Start reading spans[k] (mirrored) into slot a: 0, or -PT_ENOMEM (then nothing runs). */
static int span_ahead_start(struct petrel_client *c, struct span_ahead *a, const struct pt_span *s,
                            uint32_t from, uint32_t count)
{
    unsigned n = pt_span_block_count(s), idx = (unsigned)pt_prng_below(&c->prng, n);
    struct block_job *j = &a->job;
    if (a->cap < count) {
        uint8_t *b = realloc(a->buf, count);
        if (!b) return -PT_ENOMEM;
        a->buf = b;
        a->cap = count;
    }
    memset(j, 0, sizeof(*j));
    j->block = s->blocks[idx].block;
    j->service = s->blocks[idx].service;
    j->offset = from;
    j->count = count;
    j->buf = a->buf;
    j->opts = &c->block_opts;
    j->rc = service_addr(c, j->service, 0, j->addr, sizeof(j->addr));
    j->skip = j->rc != 0;
    block_jobs_start(j, 1);
    a->active = 1;
    return 0;
}

/* Wait for slot a: 1 when it holds its span's count bytes intact, else 0. */
static int span_ahead_join(struct span_ahead *a)
{
    if (!a->active) return 0;
    block_jobs_join(&a->job, 1);
    a->active = 0;
    return a->job.rc == 0 && a->job.got == a->job.count;
}

/* Deliver n contiguous spans (of one SPANS reply) with reads ahead; *done counts the bytes of
 * the spans delivered whole. */
static int read_spans(struct petrel_client *c, const char *path, uint64_t id,
                      const struct pt_span *spans, const uint64_t *from, const uint64_t *count,
                      unsigned n, uint8_t *buf, uint32_t cap, petrel_write_fn write, void *ctx,
                      struct span_ahead *ahead, uint64_t *done)
{
    unsigned k, next = 0, i;
    int rc = 0;
    for (k = 0; k < n && rc == 0; k++) {
        struct span_ahead *a = &ahead[k % READ_SPANS_AHEAD];
        for (; n > 1 && next < n && next < k + READ_SPANS_AHEAD; next++)
            if (spans[next].storage == PT_STORAGE_MIRRORED &&
                span_ahead_start(c, &ahead[next % READ_SPANS_AHEAD], &spans[next],
                                 (uint32_t)from[next], (uint32_t)count[next]) != 0)
                break; /* out of memory: the rest is read in turn */
        /* a span not read ahead is read below, in turn */
        if (next <= k) next = k + 1;
        if (spans[k].storage == PT_STORAGE_HOLE) {
            rc = write_zeros(write, ctx, count[k]); /* zeros, nothing to fetch */
        } else if (span_ahead_join(a)) {
            uint32_t out;
            for (out = 0; out < count[k] && rc == 0; out += PT_MIN(READ_PIECE, count[k] - out))
                rc = write(ctx, a->buf + out, PT_MIN(READ_PIECE, count[k] - out));
        } else {
            rc = read_span_range(c, path, id, &spans[k], (uint32_t)from[k], (uint32_t)count[k], buf,
                                 cap, write, ctx);
        }
        if (rc == 0) *done += count[k];
    }
    /* On an error no thread may outlive its buffer. */
    for (i = 0; i < READ_SPANS_AHEAD; i++)
        span_ahead_join(&ahead[i]);
    return rc;
}

/* The reading of petrel_client_read(_inode); path only names the file in log messages. */
static int read_id(struct petrel_client *c, const char *path, uint64_t id, uint64_t offset,
                   uint64_t len, petrel_write_fn write, void *ctx, uint64_t *got)
{
    struct pt_shard_req q;
    uint64_t size, end, pos = offset, delivered = 0;
    uint8_t *buf;
    struct pt_span *spans;
    struct span_ahead ahead[READ_SPANS_AHEAD];
    uint64_t from[SPANS_PER_REPLY], count[SPANS_PER_REPLY];
    /* a short read needs no readahead buffer */
    uint32_t cap = (uint32_t)PT_MIN((uint64_t)READ_AHEAD, PT_MAX(len, (uint64_t)READ_PIECE));
    unsigned k;
    int rc = 0;
    if (got) *got = 0;
    memset(ahead, 0, sizeof(ahead));
    buf = malloc(cap);
    spans = malloc(sizeof(*spans) * SPANS_PER_REPLY);
    if (!buf || !spans) {
        free(buf);
        free(spans);
        return -PT_ENOMEM;
    }
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_SPANS;
    q.id = id;
    q.max = SPANS_PER_REPLY;
    for (;;) {
        struct pt_reply rep;
        struct pt_cursor b;
        unsigned n, i, m = 0;
        uint64_t at = pos;
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
        if (n > SPANS_PER_REPLY) rc = -PT_EPROTO;
        /* The spans this read needs, decoded (and their contiguity checked) before any is read. */
        for (i = 0; i < n && rc == 0 && at < end; i++) {
            struct pt_span *s = &spans[m];
            uint64_t s_end;
            if (pt_span_decode(&b, s) != 0) {
                rc = -PT_EPROTO;
                break;
            }
            s_end = s->offset + s->size;
            if (s_end <= at) continue;
            if (s->offset > at) {
                rc = -PT_ECORRUPT; /* a hole: spans must be contiguous */
                break;
            }
            /* a hole's count may pass 4 GiB; a span with blocks never does */
            from[m] = at - s->offset;
            count[m] = PT_MIN(s_end, end) - at;
            at += count[m++];
        }
        /* Spans past the read's end are not decoded: "more" follows them. */
        for (; i < n && rc == 0; i++) {
            struct pt_span skip;
            if (pt_span_decode(&b, &skip) != 0) rc = -PT_EPROTO;
        }
        more = pt_dec_u8(&b);
        if (rc == 0 && !pt_cursor_ok(&b)) rc = -PT_EPROTO;
        if (rc == 0) {
            uint64_t done = 0;
            rc = read_spans(c, path, id, spans, from, count, m, buf, cap, write, ctx, ahead, &done);
            pos += done;
            delivered += done;
        }
        pt_reply_free(&rep);
        if (rc || pos >= end || !more) break;
    }
    for (k = 0; k < READ_SPANS_AHEAD; k++)
        free(ahead[k].buf);
    free(spans);
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

/* ---- for change.c (files that change, issue 12): span-level access ------------------------- */

int pt_client_shard_call(struct petrel_client *c, uint64_t owner, const struct pt_shard_req *q,
                         struct pt_reply *rep, int *retried)
{
    return shard_call(c, owner, q, rep, retried);
}

int pt_client_put_span(struct petrel_client *c, uint64_t file, uint64_t cookie, unsigned copies,
                       uint64_t offset, const uint8_t *data, uint32_t len)
{
    struct writer w;
    memset(&w, 0, sizeof(w));
    w.c = c;
    w.file = file;
    w.cookie = cookie;
    w.dir = file; /* routing: the file's own shard */
    w.copies = copies ? copies : c->cfg.copies;
    return len <= PT_INLINE_MAX ? write_inline(&w, offset, data, len)
                                : write_span(&w, offset, data, len);
}

int pt_client_put_rs_span(struct petrel_client *c, uint64_t file, uint64_t cookie,
                          const struct pt_policy *p, uint64_t offset, const uint8_t *data,
                          uint32_t len)
{
    struct writer w;
    struct rs_writer r;
    int rc;
    if (len == 0 || len > (uint64_t)p->data * p->block_size) return -PT_EINVAL;
    if ((rc = rs_writer_init(&r, p)) != 0) return rc;
    memset(&w, 0, sizeof(w));
    w.c = c;
    w.file = file;
    w.cookie = cookie;
    w.dir = file;
    w.copies = p->copies ? p->copies : c->cfg.copies;
    memcpy(r.data, data, len);
    rc = write_rs_span(&w, &r, offset, len);
    rs_writer_free(&r);
    return rc;
}

int pt_client_file_policy(struct petrel_client *c, uint64_t file, struct pt_policy *p)
{
    struct pt_shard_stat *s = malloc(sizeof(*s));
    uint64_t dir, parent;
    unsigned hops;
    int rc;
    if (!s) return -PT_ENOMEM;
    if ((rc = stat_inode(c, file, NULL, s)) != 0) {
        free(s);
        return rc;
    }
    /* The policy a writer into that directory used just now (writer_policy's cache). */
    if (c->policy_cached_at && c->policy_dir == s->parent &&
        pt_now_ms() - c->policy_cached_at < POLICY_CACHE_MS) {
        *p = c->policy;
        free(s);
        return 0;
    }
    /* The directory the file was linked into, then its ancestors, nearest first. */
    parent = s->parent;
    for (dir = parent, hops = 0; hops < CHAIN_MAX; hops++) {
        uint64_t up;
        rc = policy_of_dir(c, dir, p);
        if (rc == 0 || rc != -PT_ENOENT) break;
        if (dir == PT_INODE_ROOT || stat_inode(c, dir, NULL, s) != 0 || s->parent == dir) break;
        up = s->parent;
        dir = up;
    }
    free(s);
    if (rc != 0 && rc != -PT_ENOENT) return rc;
    if (rc) policy_default(c, p);
    c->policy = *p;
    c->policy_dir = parent;
    c->policy_cached_at = pt_now_ms();
    return 0;
}

int pt_client_read_span(struct petrel_client *c, uint64_t file, const struct pt_span *s,
                        uint32_t from, uint32_t count, petrel_write_fn write, void *ctx)
{
    char label[40];
    uint8_t *buf = NULL;
    int rc;
    snprintf(label, sizeof(label), "inode %016llx", (unsigned long long)file);
    if (s->storage != PT_STORAGE_INLINE && s->storage != PT_STORAGE_RS &&
        s->storage != PT_STORAGE_HOLE && !(buf = malloc(READ_PIECE)))
        return -PT_ENOMEM;
    rc = read_span_range(c, label, file, s, from, count, buf, READ_PIECE, write, ctx);
    free(buf);
    return rc;
}

uint32_t pt_client_span_size(const struct petrel_client *c)
{
    return c->cfg.span_size;
}

uint64_t pt_client_cookie(struct petrel_client *c)
{
    return pt_prng_next(&c->prng) | 1;
}
