/*
 * The cluster backend: a Petrel cluster (through its registry) seen through the vfs ops, over
 * the client library (include/petrel/client.h).
 *
 * Owns the bridge between the vfs's push-style writes and the client's pull-style
 * petrel_client_write_file: opening a file for writing starts a writer thread (with its own
 * client: a client is used by one thread at a time) whose read callback takes bytes from a
 * bounded queue that petrel_vfs_file_write fills. Invariants:
 * - Files are write-once (PETREL_VFS_CAP_WRITE_ONCE): a write handle is only made by
 *   creating a new file; writes must be sequential (offset == bytes written so far, else
 *   -PT_ENOTSUP); an existing (linked) file cannot be opened for writing (-PT_EPERM), only
 *   replaced (PETREL_VFS_O_REPLACE).
 * - Nothing here removes or replaces what its caller did not see: the link at close is a
 *   link-if-free for a name that was free at open, and replaces exactly the inode the name
 *   held at open otherwise (-PT_EEXIST / -PT_ESTALE when someone else got there first, and
 *   the new file is abandoned); remove unlinks only the inode it resolved.
 * - The file is linked only by petrel_vfs_file_close: the queue is marked finished, the
 *   writer's stream ends, and write_file certifies and links. sync never ends the stream.
 *   petrel_vfs_file_abandon makes the stream fail, so write_file aborts and never links.
 *   A handle that saw a failed write or truncate is abandoned at close as well: a file is
 *   linked only if every write its writer made succeeded.
 * - Reads go to petrel_client_read for exactly the requested range (streamed, never the
 *   whole file).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "petrel/client.h"
#include "petrel/common.h"
#include "petrel/vfs.h"

#define QUEUE_BYTES (4u << 20) /* bytes a writer may run ahead of the cluster */
#define PROBE_MS 3000          /* an unreachable registry is an error after this long */

struct cluster_vfs {
    struct petrel_client *client; /* for calls made by the vfs's (single) caller thread */
    char registry[PETREL_VFS_HOST_MAX + 8];
};

struct petrel_vfs_file {
    char *path;
    int writer;
    /* writer state */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint8_t *queue; /* ring of QUEUE_BYTES */
    size_t head, fill;
    int finished;     /* no more bytes: end the stream (link) */
    int abandoned;    /* fail the stream (never link) */
    int done;         /* the writer thread returned */
    int result;       /* its result */
    uint64_t written; /* bytes accepted so far */
    int failed;       /* a write or truncate failed: never link */
    struct petrel_client *wclient;
    int64_t mtime_sec;
    uint64_t replaces; /* the inode the name held at open (O_REPLACE), 0 if it was free */
};

static struct cluster_vfs *cluster(struct petrel_vfs *vfs)
{
    return vfs->backend;
}

static void fill_stat(const struct petrel_stat *s, struct petrel_vfs_stat *st)
{
    st->type = s->type == PETREL_TYPE_DIR ? PETREL_VFS_DIR : PETREL_VFS_REG;
    st->size = s->type == PETREL_TYPE_DIR ? 0 : s->size;
    st->mtime_sec = (int64_t)(s->mtime / 1000);
    st->mtime_nsec = (uint32_t)(s->mtime % 1000) * 1000000u;
    st->mode = st->type == PETREL_VFS_DIR ? 0755 : 0444; /* linked files are read-only */
}

static int cl_stat(struct petrel_vfs *vfs, const char *path, struct petrel_vfs_stat *st)
{
    struct petrel_stat s;
    int rc = petrel_client_stat(cluster(vfs)->client, path, &s);
    if (rc < 0) return rc;
    fill_stat(&s, st);
    return 0;
}

struct list_ctx {
    struct petrel_vfs *vfs;
    const char *dir;
    petrel_vfs_dir_fn fn;
    void *ctx;
    int rc;
};

static int list_entry(void *ctx, const struct petrel_dirent *e)
{
    struct list_ctx *l = ctx;
    struct petrel_vfs_stat st;
    char child[PETREL_VFS_PATH_MAX];
    memset(&st, 0, sizeof(st));
    st.type = e->type == PETREL_TYPE_DIR ? PETREL_VFS_DIR : PETREL_VFS_REG;
    st.mode = st.type == PETREL_VFS_DIR ? 0755 : 0444;
    /* Sizes and times are not in the listing: ask for them (an entry removed meanwhile is
     * listed with what the listing said). */
    if (petrel_vfs_path_join(child, sizeof(child), l->dir, e->name) == 0)
        cl_stat(l->vfs, child, &st);
    return l->fn(l->ctx, e->name, &st);
}

static int cl_readdir(struct petrel_vfs *vfs, const char *path, petrel_vfs_dir_fn fn, void *ctx)
{
    struct list_ctx l = {vfs, path, fn, ctx, 0};
    return petrel_client_list(cluster(vfs)->client, path, list_entry, &l);
}

static int cl_mkdir(struct petrel_vfs *vfs, const char *path)
{
    return petrel_client_mkdir(cluster(vfs)->client, path);
}

static int cl_remove(struct petrel_vfs *vfs, const char *path)
{
    struct petrel_stat s;
    int rc = petrel_client_stat(cluster(vfs)->client, path, &s);
    if (rc < 0) return rc;
    if (s.type == PETREL_TYPE_DIR) return petrel_client_rmdir(cluster(vfs)->client, path);
    /* Only the file just seen: one someone else put there meanwhile is left (-PT_ESTALE). */
    return petrel_client_unlink_inode(cluster(vfs)->client, path, s.id);
}

static int cl_rename(struct petrel_vfs *vfs, const char *from, const char *to)
{
    return petrel_client_rename(cluster(vfs)->client, from, to);
}

static int cl_rename_noreplace(struct petrel_vfs *vfs, const char *from, const char *to)
{
    return petrel_client_rename_noreplace(cluster(vfs)->client, from, to);
}

/* --- writing: the queue between vfs writes and the writer thread ------------------------ */

static long stream_read(void *ctx, void *buf, size_t cap)
{
    struct petrel_vfs_file *f = ctx;
    size_t n, first;
    pthread_mutex_lock(&f->lock);
    while (f->fill == 0 && !f->finished && !f->abandoned)
        pthread_cond_wait(&f->cond, &f->lock);
    if (f->abandoned) {
        pthread_mutex_unlock(&f->lock);
        return -PT_ECANCELED;
    }
    if (f->fill == 0) { /* finished and drained: the end of the file */
        pthread_mutex_unlock(&f->lock);
        return 0;
    }
    n = PT_MIN(cap, f->fill);
    first = PT_MIN(n, QUEUE_BYTES - f->head);
    memcpy(buf, f->queue + f->head, first);
    memcpy((uint8_t *)buf + first, f->queue, n - first);
    f->head = (f->head + n) % QUEUE_BYTES;
    f->fill -= n;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return (long)n;
}

static void *writer_main(void *arg)
{
    struct petrel_vfs_file *f = arg;
    int rc = petrel_client_replace_file(f->wclient, f->path, f->replaces, stream_read, f, NULL);
    pthread_mutex_lock(&f->lock);
    f->done = 1;
    f->result = rc;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

static void file_free(struct petrel_vfs_file *f)
{
    if (f->writer) {
        pthread_mutex_destroy(&f->lock);
        pthread_cond_destroy(&f->cond);
        petrel_client_close(f->wclient);
        free(f->queue);
    }
    free(f->path);
    free(f);
}

static int cl_open(struct petrel_vfs *vfs, const char *path, int flags,
                   struct petrel_vfs_file **out)
{
    struct cluster_vfs *cv = cluster(vfs);
    struct petrel_vfs_file *f;
    struct petrel_stat s;
    struct petrel_client_config cfg;
    int rc = petrel_client_stat(cv->client, path, &s);
    if (rc < 0 && rc != -PT_ENOENT) return rc;
    if (rc == 0 && s.type == PETREL_TYPE_DIR) return -PT_EISDIR;
    if (!(flags & PETREL_VFS_O_WRITE)) {
        if (rc < 0) return rc;
    } else {
        if (rc == 0 && (flags & PETREL_VFS_O_EXCL)) return -PT_EEXIST;
        if (rc == 0 && !(flags & PETREL_VFS_O_REPLACE)) return -PT_EPERM;
        if (!(flags & PETREL_VFS_O_CREAT)) return -PT_ENOENT;
    }
    f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return -PT_ENOMEM;
    }
    if (!(flags & PETREL_VFS_O_WRITE)) {
        *out = f;
        return 0;
    }
    f->writer = 1;
    f->replaces = rc == 0 ? s.id : 0;
    f->mtime_sec = (int64_t)time(NULL);
    f->queue = malloc(QUEUE_BYTES);
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = cv->registry;
    if (!f->queue || petrel_client_open(&f->wclient, &cfg) < 0) {
        free(f->queue);
        free(f->path);
        free(f);
        return -PT_ENOMEM;
    }
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    if (pthread_create(&f->thread, NULL, writer_main, f) != 0) {
        file_free(f);
        return -PT_ENOMEM;
    }
    *out = f;
    return 0;
}

struct read_ctx {
    uint8_t *buf;
    uint64_t got;
};

static int read_piece(void *ctx, const void *buf, size_t len)
{
    struct read_ctx *r = ctx;
    memcpy(r->buf + r->got, buf, len);
    r->got += len;
    return 0;
}

static int64_t cl_read(struct petrel_vfs *vfs, struct petrel_vfs_file *f, void *buf, uint64_t size,
                       uint64_t off)
{
    struct read_ctx r = {buf, 0};
    int rc;
    if (f->writer) return -PT_EBADF; /* the file does not exist until it is linked */
    rc = petrel_client_read(cluster(vfs)->client, f->path, off, size, read_piece, &r, NULL);
    return rc < 0 ? rc : (int64_t)r.got;
}

static int64_t cl_write(struct petrel_vfs *vfs, struct petrel_vfs_file *f, const void *buf,
                        uint64_t size, uint64_t off)
{
    const uint8_t *p = buf;
    uint64_t left = size;
    if (!f->writer) return -PT_EPERM;
    if (off != f->written) { /* write-once files are written in order */
        f->failed = 1;
        return -PT_ENOTSUP;
    }
    pthread_mutex_lock(&f->lock);
    while (left > 0) {
        size_t tail, n, first;
        while (f->fill == QUEUE_BYTES && !f->done)
            pthread_cond_wait(&f->cond, &f->lock);
        if (f->done) { /* the writer stopped early: its error is the answer */
            int rc = f->result < 0 ? f->result : -PT_EIO;
            f->failed = 1;
            pthread_mutex_unlock(&f->lock);
            return rc;
        }
        tail = (f->head + f->fill) % QUEUE_BYTES;
        n = (size_t)PT_MIN(left, (uint64_t)(QUEUE_BYTES - f->fill));
        first = PT_MIN(n, QUEUE_BYTES - tail);
        memcpy(f->queue + tail, p, first);
        memcpy(f->queue, p + first, n - first);
        f->fill += n;
        p += n;
        left -= n;
        f->written += n;
        pthread_cond_broadcast(&f->cond);
    }
    pthread_mutex_unlock(&f->lock);
    return (int64_t)size;
}

static int cl_truncate(struct petrel_vfs *vfs, struct petrel_vfs_file *f, uint64_t size)
{
    /* O_TRUNC of a file being created asks for its current size: nothing to do. */
    if (f->writer && size == f->written) return 0;
    if (f->writer) f->failed = 1;
    return f->writer ? -PT_ENOTSUP : -PT_EPERM;
}

static int cl_fstat(struct petrel_vfs *vfs, struct petrel_vfs_file *f, struct petrel_vfs_stat *st)
{
    if (!f->writer) return cl_stat(vfs, f->path, st);
    st->type = PETREL_VFS_REG;
    st->size = f->written;
    st->mtime_sec = f->mtime_sec;
    st->mode = 0644;
    return 0;
}

static int cl_sync(struct petrel_vfs *vfs, struct petrel_vfs_file *f)
{
    /* Nothing is durable before the link, and the link belongs to close alone. */
    return 0;
}

static int cl_close(struct petrel_vfs *vfs, struct petrel_vfs_file *f, int abandon)
{
    int rc = 0;
    if (f->writer) {
        pthread_mutex_lock(&f->lock);
        abandon |= f->failed;
        if (abandon)
            f->abandoned = 1;
        else
            f->finished = 1;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
        pthread_join(f->thread, NULL);
        rc = abandon ? (f->failed ? -PT_ECANCELED : 0) : f->result;
    }
    file_free(f);
    return rc;
}

static int cl_statfs(struct petrel_vfs *vfs, struct petrel_vfs_statfs *st)
{
    uint64_t cap = 0, used = 0;
    int rc = petrel_client_capacity(cluster(vfs)->client, &cap, &used);
    if (rc < 0) return rc;
    st->block_size = 4096;
    st->blocks_total = cap / 4096;
    st->blocks_used = used / 4096;
    st->name_max = 255;
    return 0;
}

static int cl_destroy(struct petrel_vfs *vfs)
{
    petrel_client_close(cluster(vfs)->client);
    free(vfs->backend);
    free(vfs);
    return 0;
}

static const struct petrel_vfs_ops cluster_ops = {
    .name = "cluster",
    .stat = cl_stat,
    .readdir = cl_readdir,
    .mkdir = cl_mkdir,
    .remove = cl_remove,
    .rename = cl_rename,
    .open = cl_open,
    .read = cl_read,
    .write = cl_write,
    .truncate = cl_truncate,
    .fstat = cl_fstat,
    .sync = cl_sync,
    .close = cl_close,
    .statfs = cl_statfs,
    .destroy = cl_destroy,
    .rename_noreplace = cl_rename_noreplace,
};

/* The cluster's own address parser never does DNS: names are resolved here, once. */
int petrel_vfs_cluster_address(const char *host, uint16_t port, char *out, size_t cap)
{
    struct addrinfo hints, *res = NULL;
    char numeric[INET6_ADDRSTRLEN];
    unsigned char probe[sizeof(struct in6_addr)];
    int n, v6 = 0;
    if (inet_pton(AF_INET, host, probe) == 1 || strcmp(host, "localhost") == 0) {
        n = snprintf(out, cap, "%s:%u", host, port);
        return n < 0 || (size_t)n >= cap ? -PT_ENAMETOOLONG : 0;
    }
    if (inet_pton(AF_INET6, host, probe) == 1) {
        n = snprintf(out, cap, "[%s]:%u", host, port);
        return n < 0 || (size_t)n >= cap ? -PT_ENAMETOOLONG : 0;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) return -PT_ENOHOST;
    if (res->ai_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, numeric,
                  sizeof(numeric));
    else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, numeric,
                  sizeof(numeric));
        v6 = 1;
    }
    freeaddrinfo(res);
    n = snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", numeric, port);
    return n < 0 || (size_t)n >= cap ? -PT_ENAMETOOLONG : 0;
}

int petrel_vfs_cluster_open(const char *host, uint16_t port, int flags, struct petrel_vfs **out)
{
    struct petrel_vfs *vfs;
    struct cluster_vfs *cv;
    struct petrel_client_config cfg;
    struct petrel_stat root;
    int rc;
    *out = NULL;
    vfs = calloc(1, sizeof(*vfs));
    cv = calloc(1, sizeof(*cv));
    if (!vfs || !cv) {
        free(vfs);
        free(cv);
        return -PT_ENOMEM;
    }
    rc = petrel_vfs_cluster_address(host, port, cv->registry, sizeof(cv->registry));
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = cv->registry;
    if (rc == 0) rc = petrel_client_open(&cv->client, &cfg);
    /* Reach the cluster now, so a wrong address is an error at open, not at first use: the
     * registry within PROBE_MS (no retries), then the root through the whole path. */
    if (rc == 0) rc = petrel_client_probe(cv->client, PROBE_MS);
    if (rc == 0) rc = petrel_client_stat(cv->client, "/", &root);
    if (rc < 0) {
        petrel_client_close(cv->client);
        free(vfs);
        free(cv);
        return rc;
    }
    vfs->ops = &cluster_ops;
    vfs->backend = cv;
    vfs->caps = PETREL_VFS_CAP_WRITE_ONCE;
    if (flags & PETREL_VFS_MOUNT_READ_ONLY) vfs->caps |= PETREL_VFS_CAP_READ_ONLY;
    snprintf(vfs->label, sizeof(vfs->label), "petrel://%s:%u", host, port);
    *out = vfs;
    return 0;
}
