/*
 * The cluster backend: a Petrel cluster (through its registry) seen through the vfs ops, over
 * the client library (include/petrel/client.h).
 *
 * Owns the bridge between the vfs's push-style writes and the client's pull-style
 * petrel_client_write_file: opening a file for writing starts a writer thread (with its own
 * client: a client is used by one thread at a time) whose read callback takes bytes from a
 * bounded queue that petrel_vfs_file_write fills. Invariants:
 * - A new file opened write-only streams (PETREL_VFS_CAP_WRITE_ONCE): writes must be
 *   sequential (offset == bytes written so far, else -PT_ENOTSUP) and the file appears whole
 *   at close. An existing file opened for writing (or a new one opened read-write, which is
 *   first linked empty) is changed through a change handle (petrel_change_*, issue 12):
 *   writes anywhere, truncation, reads of its own writes; sync (fsync, and the flush of every
 *   close(2)) and close commit it by compare-and-swap on the file's version, and a commit
 *   that lost to another writer's is returned as -PT_ESTALE. PETREL_VFS_O_REPLACE still
 *   replaces the file by a new one instead.
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
#include <unistd.h>

#include "petrel/client.h"
#include "petrel/common.h"
#include "petrel/vfs.h"

#define QUEUE_BYTES (4u << 20) /* bytes a writer may run ahead of the cluster */
#define PROBE_MS 3000          /* an unreachable registry is an error after this long */

struct cluster_vfs {
    struct petrel_client *client;    /* for calls made by the vfs's (single) caller thread */
    char registry[1024];             /* a registry, or a group's members */
    struct petrel_vfs_file *writers; /* files being written: found by path before the store */
    struct petrel_change_config cache; /* where and how much changes stage */
    char *cache_dir;
};

struct petrel_vfs_file {
    char *path;
    int writer;
    struct petrel_change *change; /* an existing file being changed (not a writer) */
    int append;                   /* PETREL_VFS_O_APPEND: every write goes to the end */
    uint64_t id; /* readers: the inode opened (read even after its name is removed) */
    /* writers: the transient file (its id known at open: fstat, fchmod, futimens, rename
     * before close), in the list of writers */
    struct petrel_new_file nf;
    struct petrel_vfs_file *prev, *next;
    int orphan; /* its name was removed before close: never linked */
    /* times set on the file being written: its bytes reach the shard later (at close at the
     * latest), which moves mtime, so they are set again after the link unless the writer
     * wrote after setting them (then the write's time is the right one) */
    struct petrel_attr times;
    uint64_t times_written;
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

static uint8_t vfs_type(uint8_t type)
{
    switch (type) {
    case PETREL_TYPE_DIR:
        return PETREL_VFS_DIR;
    case PETREL_TYPE_SYMLINK:
        return PETREL_VFS_LNK;
    case PETREL_TYPE_FIFO:
        return PETREL_VFS_FIFO;
    case PETREL_TYPE_SOCKET:
        return PETREL_VFS_SOCK;
    case PETREL_TYPE_CHR:
        return PETREL_VFS_CHR;
    case PETREL_TYPE_BLK:
        return PETREL_VFS_BLK;
    default:
        return PETREL_VFS_REG;
    }
}

static void fill_stat(const struct petrel_stat *s, struct petrel_vfs_stat *st)
{
    memset(st, 0, sizeof(*st));
    st->ino = s->id;
    st->type = vfs_type(s->type);
    st->size = s->type == PETREL_TYPE_DIR ? 0 : s->size;
    st->mtime_sec = (int64_t)(s->mtime_ns / 1000000000u);
    st->mtime_nsec = (uint32_t)(s->mtime_ns % 1000000000u);
    st->atime_sec = (int64_t)(s->atime_ns / 1000000000u);
    st->atime_nsec = (uint32_t)(s->atime_ns % 1000000000u);
    st->ctime_sec = (int64_t)(s->ctime_ns / 1000000000u);
    st->ctime_nsec = (uint32_t)(s->ctime_ns % 1000000000u);
    st->mode = s->mode & 07777;
    st->uid = s->uid;
    st->gid = s->gid;
    st->rdev = s->rdev;
    st->nlink = s->nlink;
    if (s->type == PETREL_TYPE_FILE) {
        st->version = s->version;
        st->spans = s->spans;
    }
}

/* The newest file being written under path (a name the store does not show yet). */
static struct petrel_vfs_file *find_writer(struct cluster_vfs *cv, const char *path)
{
    struct petrel_vfs_file *f;
    for (f = cv->writers; f; f = f->next)
        if (!f->orphan && strcmp(f->path, path) == 0) return f;
    return NULL;
}

/* A file being written: its transient inode's attributes, the size its writer reached. */
static int writer_stat(struct cluster_vfs *cv, struct petrel_vfs_file *f,
                       struct petrel_vfs_stat *st)
{
    struct petrel_stat s;
    int rc = petrel_client_stat_inode(cv->client, f->nf.file, &s);
    if (rc < 0) return rc;
    fill_stat(&s, st);
    st->type = PETREL_VFS_REG;
    st->size = f->written;
    return 0;
}

static int cl_stat(struct petrel_vfs *vfs, const char *path, struct petrel_vfs_stat *st)
{
    struct petrel_stat s;
    struct petrel_vfs_file *w = find_writer(cluster(vfs), path);
    int rc;
    if (w) return writer_stat(cluster(vfs), w, st);
    rc = petrel_client_stat(cluster(vfs)->client, path, &s);
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
    struct petrel_stat s;
    memset(&st, 0, sizeof(st));
    st.type = vfs_type(e->type);
    st.mode = st.type == PETREL_VFS_DIR ? 0755 : 0644;
    /* Sizes, modes and times are not in the listing: ask the inode (one call, no path to
     * resolve; an entry removed meanwhile is listed with what the listing said). */
    if (petrel_client_stat_inode(cluster(l->vfs)->client, e->id, &s) == 0) fill_stat(&s, &st);
    st.ino = e->id;
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
    struct petrel_vfs_file *w = find_writer(cluster(vfs), path);
    int rc;
    if (w && !w->nf.replaces) {
        /* A file still being written, never linked: it never will be. */
        w->orphan = 1;
        return 0;
    }
    rc = petrel_client_stat(cluster(vfs)->client, path, &s);
    if (rc < 0) return rc;
    if (s.type == PETREL_TYPE_DIR) return petrel_client_rmdir(cluster(vfs)->client, path);
    /* Only the file just seen: one someone else put there meanwhile is left (-PT_ESTALE). */
    return petrel_client_unlink_inode(cluster(vfs)->client, path, s.id);
}

static int cl_rename(struct petrel_vfs *vfs, const char *from, const char *to)
{
    struct cluster_vfs *cv = cluster(vfs);
    struct petrel_vfs_file *w = find_writer(cv, from);
    char *copy;
    int rc;
    if (!w || w->nf.replaces) return petrel_client_rename(cv->client, from, to);
    /* A file still being written (mkstemp + rename, save-by-rename): it is linked under the
     * new name at close, replacing what that name holds now. The writer thread reads the
     * name only after its stream ends, which only close (this thread) can cause. */
    if (!(copy = strdup(to))) return -PT_ENOMEM;
    if ((rc = petrel_client_retarget(cv->client, &w->nf, to)) < 0) {
        free(copy);
        return rc;
    }
    free(w->path);
    w->path = copy;
    return 0;
}

static int cl_rename_noreplace(struct petrel_vfs *vfs, const char *from, const char *to)
{
    struct cluster_vfs *cv = cluster(vfs);
    struct petrel_vfs_file *w = find_writer(cv, from);
    struct petrel_stat s;
    int rc;
    if (!w || w->nf.replaces) return petrel_client_rename_noreplace(cv->client, from, to);
    /* A file being written: only onto a free name (the link at close is a link-if-free
     * again, so a name taken meanwhile fails it rather than being replaced). */
    rc = petrel_client_stat(cv->client, to, &s);
    if (rc == 0 || find_writer(cv, to)) return -PT_EEXIST;
    if (rc != -PT_ENOENT) return rc;
    rc = cl_rename(vfs, from, to);
    if (rc == 0) w->nf.replaces = 0;
    return rc;
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
    int rc = petrel_client_fill(f->wclient, &f->nf, stream_read, f, NULL);
    pthread_mutex_lock(&f->lock);
    f->done = 1;
    f->result = rc;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* The writer state of a new file's handle goes (its thread has returned). */
static void writer_free(struct cluster_vfs *cv, struct petrel_vfs_file *f)
{
    if (!f->writer) return;
    if (f->prev)
        f->prev->next = f->next;
    else if (cv->writers == f)
        cv->writers = f->next;
    if (f->next) f->next->prev = f->prev;
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    petrel_client_close(f->wclient);
    free(f->queue);
    f->queue = NULL;
    f->writer = 0;
}

static void file_free(struct cluster_vfs *cv, struct petrel_vfs_file *f)
{
    writer_free(cv, f);
    petrel_change_close(f->change);
    free(f->path);
    free(f);
}

static long no_bytes(void *ctx, void *buf, size_t cap)
{
    (void)ctx;
    (void)buf;
    (void)cap;
    return 0;
}

/* A change handle of the file `id` (opened for writing: its content changes in place). */
static int open_change(struct cluster_vfs *cv, const char *path, uint64_t id, int flags,
                       struct petrel_vfs_file **out)
{
    struct petrel_vfs_file *f = calloc(1, sizeof(*f));
    int rc;
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return -PT_ENOMEM;
    }
    f->id = id;
    f->append = (flags & PETREL_VFS_O_APPEND) != 0;
    rc = petrel_change_open(cv->client, id, 0, &cv->cache, &f->change);
    if (rc == 0 && (flags & PETREL_VFS_O_TRUNC)) rc = petrel_change_truncate(f->change, 0);
    if (rc < 0) {
        file_free(cv, f);
        return rc;
    }
    *out = f;
    return 0;
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
        if (s.type != PETREL_TYPE_FILE) return -PT_EINVAL; /* nodes are opened by the kernel */
    } else {
        if (rc == 0 && (flags & PETREL_VFS_O_EXCL)) return -PT_EEXIST;
        if (rc == 0 && !(flags & PETREL_VFS_O_REPLACE)) {
            if (s.type != PETREL_TYPE_FILE) return -PT_EINVAL;
            return open_change(cv, path, s.id, flags, out);
        }
        if (!(flags & PETREL_VFS_O_CREAT)) return -PT_ENOENT;
        if (rc != 0 && (flags & PETREL_VFS_O_READ) && !(flags & PETREL_VFS_O_REPLACE)) {
            /* Read-write from the start (a database, fsx): the file is linked empty at once
             * (link-if-free: -PT_EEXIST when another got the name first) and then changed. */
            rc = petrel_client_write_file(cv->client, path, no_bytes, NULL, NULL);
            if (rc == 0) rc = petrel_client_stat(cv->client, path, &s);
            if (rc < 0) return rc;
            return open_change(cv, path, s.id, flags & ~PETREL_VFS_O_TRUNC, out);
        }
    }
    f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return -PT_ENOMEM;
    }
    if (!(flags & PETREL_VFS_O_WRITE)) {
        f->id = s.id;
        *out = f;
        return 0;
    }
    /* The transient file now, so that its id serves fstat/fchmod/futimens before close. */
    rc = petrel_client_create(cv->client, path, rc == 0 ? s.id : 0, NULL, &f->nf);
    if (rc < 0) {
        free(f->path);
        free(f);
        return rc;
    }
    f->writer = 1;
    f->replaces = f->nf.replaces;
    f->id = f->nf.file;
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
    f->next = cv->writers;
    if (cv->writers) cv->writers->prev = f;
    cv->writers = f;
    if (pthread_create(&f->thread, NULL, writer_main, f) != 0) {
        file_free(cv, f);
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
    if (f->change) {
        rc = petrel_change_read(f->change, off, size, read_piece, &r, NULL);
        return rc < 0 ? rc : (int64_t)r.got;
    }
    if (f->writer) return -PT_EBADF; /* the file does not exist until it is linked */
    rc = petrel_client_read_inode(cluster(vfs)->client, f->id, off, size, read_piece, &r, NULL);
    return rc < 0 ? rc : (int64_t)r.got;
}

/*
 * A new file written out of order (a write elsewhere than at its end, a truncate to another
 * size: a seek past the end, pjdfstest's write at 2 GiB, a download tool's preallocation)
 * stops streaming: what it wrote so far is linked now (as a close would, with the same
 * replace rules) and the handle goes on as a change of that file (holes for the gaps;
 * committed at fsync and close). Visible before close from then on, as on a local file
 * system. A writer that failed or whose name was removed stays refused (-PT_ENOTSUP).
 */
static int writer_to_change(struct petrel_vfs *vfs, struct petrel_vfs_file *f)
{
    struct cluster_vfs *cv = cluster(vfs);
    int rc;
    if (f->failed || f->orphan) {
        f->failed = 1;
        return -PT_ENOTSUP;
    }
    pthread_mutex_lock(&f->lock);
    f->finished = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    rc = f->result;
    if (rc == 0 && f->times.valid && f->times_written == f->written)
        rc = petrel_client_setattr_inode(cv->client, f->nf.file, &f->times);
    writer_free(cv, f);
    f->id = f->nf.file;
    if (rc == 0) rc = petrel_change_open(cv->client, f->id, 0, &cv->cache, &f->change);
    return rc;
}

static int64_t cl_write(struct petrel_vfs *vfs, struct petrel_vfs_file *f, const void *buf,
                        uint64_t size, uint64_t off)
{
    const uint8_t *p = buf;
    uint64_t left = size;
    if (f->change) {
        int rc;
        if (f->append) off = petrel_change_size(f->change);
        rc = petrel_change_write(f->change, off, buf, (size_t)size);
        return rc < 0 ? rc : (int64_t)size;
    }
    if (!f->writer) return -PT_EPERM;
    if (off != f->written) { /* out of order: from now on, the file changes by versions */
        int rc = writer_to_change(vfs, f);
        if (rc < 0) return rc;
        return cl_write(vfs, f, buf, size, off);
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
    if (f->change) return petrel_change_truncate(f->change, size);
    /* O_TRUNC of a file being created asks for its current size: nothing to do. */
    if (f->writer && size == f->written) return 0;
    if (f->writer) {
        int rc = writer_to_change(vfs, f);
        return rc < 0 ? rc : petrel_change_truncate(f->change, size);
    }
    return -PT_EPERM;
}

static int cl_fstat(struct petrel_vfs *vfs, struct petrel_vfs_file *f, struct petrel_vfs_stat *st)
{
    struct petrel_stat s;
    int rc;
    if (!f->writer) {
        /* By inode: an open file whose name was removed is still there (retention). */
        rc = petrel_client_stat_inode(cluster(vfs)->client, f->id, &s);
        if (rc < 0) return rc;
        fill_stat(&s, st);
        if (f->change) { /* with its own writes; times move with them, as they will at commit */
            st->size = petrel_change_size(f->change);
            if (petrel_change_dirty(f->change)) {
                struct timespec now;
                clock_gettime(CLOCK_REALTIME, &now);
                st->mtime_sec = st->ctime_sec = (int64_t)now.tv_sec;
                st->mtime_nsec = st->ctime_nsec = (uint32_t)now.tv_nsec;
            }
        }
        return 0;
    }
    if (writer_stat(cluster(vfs), f, st) == 0) return 0;
    memset(st, 0, sizeof(*st));
    st->ino = f->nf.file;
    st->type = PETREL_VFS_REG;
    st->size = f->written;
    st->mtime_sec = f->mtime_sec;
    st->mode = 0644;
    return 0;
}

/*
 * Commit a change handle. A commit that lost (-PT_ESTALE) because the file lost its last name
 * meanwhile (unlink, or rename over it, of a file still open: SQLite's journals) is no error:
 * the bytes of a removed file are nobody's any more, as on a local file system. Losing to
 * another writer's commit is.
 */
static int change_commit(struct petrel_vfs *vfs, struct petrel_vfs_file *f)
{
    struct petrel_stat s;
    int rc = petrel_change_commit(f->change, NULL);
    if (rc == -PT_ESTALE) {
        int src = petrel_client_stat_inode(cluster(vfs)->client, f->id, &s);
        if (src == -PT_ENOENT || (src == 0 && s.state != 1)) rc = 0;
    }
    return rc;
}

static int cl_sync(struct petrel_vfs *vfs, struct petrel_vfs_file *f)
{
    /* A change becomes durable (and visible) by its commit; the commit's answer is the
     * sync's. A new file: nothing is durable before the link, which belongs to close alone. */
    if (f->change) return change_commit(vfs, f);
    return 0;
}

static int cl_close(struct petrel_vfs *vfs, struct petrel_vfs_file *f, int abandon)
{
    int rc = 0;
    if (f->change && !abandon) rc = change_commit(vfs, f);
    if (f->writer) {
        pthread_mutex_lock(&f->lock);
        abandon |= f->failed | f->orphan;
        if (abandon)
            f->abandoned = 1;
        else
            f->finished = 1;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
        pthread_join(f->thread, NULL);
        rc = abandon ? (f->failed && !f->orphan ? -PT_ECANCELED : 0) : f->result;
        if (rc == 0 && !abandon && f->times.valid && f->times_written == f->written)
            rc = petrel_client_setattr_inode(cluster(vfs)->client, f->nf.file, &f->times);
    }
    file_free(cluster(vfs), f);
    return rc;
}

static int cl_statfs(struct petrel_vfs *vfs, struct petrel_vfs_statfs *st)
{
    uint64_t total = 0, avail = 0;
    int rc = petrel_client_space(cluster(vfs)->client, &total, &avail);
    if (rc < 0) return rc;
    st->block_size = 4096;
    st->blocks_total = total / 4096;
    st->blocks_used = total > avail ? (total - avail) / 4096 : 0; /* free = available */
    st->name_max = 255;
    return 0;
}

/* --- POSIX attributes and nodes (issue 11) ------------------------------------------------ */

static int cl_setattr(struct petrel_vfs *vfs, const char *path, const struct petrel_vfs_attr *a)
{
    struct cluster_vfs *cv = cluster(vfs);
    struct petrel_vfs_file *w = find_writer(cv, path);
    struct petrel_attr pa;
    memset(&pa, 0, sizeof(pa));
    if (a->valid & PETREL_VFS_SET_MODE) pa.valid |= PETREL_ATTR_MODE;
    if (a->valid & PETREL_VFS_SET_UID) pa.valid |= PETREL_ATTR_UID;
    if (a->valid & PETREL_VFS_SET_GID) pa.valid |= PETREL_ATTR_GID;
    if (a->valid & PETREL_VFS_SET_ATIME) pa.valid |= PETREL_ATTR_ATIME;
    if (a->valid & PETREL_VFS_SET_MTIME) pa.valid |= PETREL_ATTR_MTIME;
    /* ctime is the shard's: the time of this change */
    pa.mode = a->mode & 07777;
    pa.uid = a->uid;
    pa.gid = a->gid;
    pa.atime_ns = (uint64_t)a->atime_sec * 1000000000u + a->atime_nsec;
    pa.mtime_ns = (uint64_t)a->mtime_sec * 1000000000u + a->mtime_nsec;
    if (a->atime_sec < 0) pa.atime_ns = 0; /* before the epoch: not representable, clamp */
    if (a->mtime_sec < 0) pa.mtime_ns = 0;
    if (w) {
        int rc = petrel_client_setattr_inode(cv->client, w->nf.file, &pa);
        if (rc == 0 && (pa.valid & (PETREL_ATTR_ATIME | PETREL_ATTR_MTIME))) {
            w->times.valid |= pa.valid & (PETREL_ATTR_ATIME | PETREL_ATTR_MTIME);
            if (pa.valid & PETREL_ATTR_ATIME) w->times.atime_ns = pa.atime_ns;
            if (pa.valid & PETREL_ATTR_MTIME) w->times.mtime_ns = pa.mtime_ns;
            w->times_written = w->written;
        }
        return rc;
    }
    return petrel_client_setattr(cv->client, path, &pa);
}

static int cl_set_mtime(struct petrel_vfs *vfs, const char *path, int64_t sec, uint32_t nsec)
{
    struct petrel_vfs_attr a;
    memset(&a, 0, sizeof(a));
    a.valid = PETREL_VFS_SET_MTIME;
    a.mtime_sec = sec;
    a.mtime_nsec = nsec;
    return cl_setattr(vfs, path, &a);
}

static int cl_set_mode(struct petrel_vfs *vfs, const char *path, uint32_t mode)
{
    struct petrel_vfs_attr a;
    memset(&a, 0, sizeof(a));
    a.valid = PETREL_VFS_SET_MODE;
    a.mode = mode;
    return cl_setattr(vfs, path, &a);
}

static int cl_mknod(struct petrel_vfs *vfs, const char *path, const struct petrel_vfs_node *n)
{
    static const uint8_t types[] = {[PETREL_VFS_LNK] = PETREL_TYPE_SYMLINK,
                                    [PETREL_VFS_FIFO] = PETREL_TYPE_FIFO,
                                    [PETREL_VFS_SOCK] = PETREL_TYPE_SOCKET,
                                    [PETREL_VFS_CHR] = PETREL_TYPE_CHR,
                                    [PETREL_VFS_BLK] = PETREL_TYPE_BLK};
    uint32_t uid = n->uid == PETREL_VFS_ID_NONE ? (uint32_t)geteuid() : n->uid;
    uint32_t gid = n->gid == PETREL_VFS_ID_NONE ? (uint32_t)getegid() : n->gid;
    if (n->type >= PT_ARRAY_SIZE(types) || !types[n->type]) return -PT_EINVAL;
    return petrel_client_mknod(cluster(vfs)->client, path, types[n->type], n->mode, uid, gid,
                               n->rdev, n->target);
}

static int64_t cl_readlink(struct petrel_vfs *vfs, const char *path, char *buf, uint64_t size)
{
    return petrel_client_readlink(cluster(vfs)->client, path, buf, (size_t)size);
}

static int cl_destroy(struct petrel_vfs *vfs)
{
    petrel_client_close(cluster(vfs)->client);
    free(cluster(vfs)->cache_dir);
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
    .set_mtime = cl_set_mtime,
    .set_mode = cl_set_mode,
    .setattr = cl_setattr,
    .mknod = cl_mknod,
    .readlink = cl_readlink,
};

/* The cluster's own address parser never does DNS: names are resolved here, once. */
static int cluster_address_one(const char *host, uint16_t port, char *out, size_t cap);

int petrel_vfs_cluster_address(const char *host, uint16_t port, char *out, size_t cap)
{
    const char *p = host;
    size_t used = 0;
    if (port) return cluster_address_one(host, port, out, cap);
    /* A group: resolve member by member ("HOST:PORT", the port after the last ':'). */
    while (*p) {
        const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p), *colon;
        char member[PETREL_VFS_HOST_MAX];
        unsigned long mport;
        int rc;
        if ((size_t)(end - p) >= sizeof(member)) return -PT_ENAMETOOLONG;
        memcpy(member, p, (size_t)(end - p));
        member[end - p] = 0;
        colon = strrchr(member, ':');
        if (!colon) return -PT_EINVAL;
        mport = strtoul(colon + 1, NULL, 10);
        if (mport == 0 || mport > 65535) return -PT_EINVAL;
        member[colon - member] = 0;
        if (used && used + 1 >= cap) return -PT_ENAMETOOLONG;
        if (used) out[used++] = ',';
        if (member[0] == '[' && colon - member >= 2 && colon[-1] == ']') {
            member[colon - member - 1] = 0; /* "[V6]": the address inside the brackets */
            rc = cluster_address_one(member + 1, (uint16_t)mport, out + used, cap - used);
        } else
            rc = cluster_address_one(member, (uint16_t)mport, out + used, cap - used);
        if (rc) return rc;
        used += strlen(out + used);
        p = comma ? comma + 1 : end;
    }
    return used ? 0 : -PT_EINVAL;
}

static int cluster_address_one(const char *host, uint16_t port, char *out, size_t cap)
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
    return petrel_vfs_cluster_open_cache(host, port, flags, NULL, 0, out);
}

int petrel_vfs_cluster_open_cache(const char *host, uint16_t port, int flags,
                                  const char *cache_dir, uint64_t cache_size,
                                  struct petrel_vfs **out)
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
    if (rc == 0 && cache_dir && cache_dir[0] && !(cv->cache_dir = strdup(cache_dir)))
        rc = -PT_ENOMEM;
    cv->cache.cache_dir = cv->cache_dir;
    cv->cache.cache_limit = cache_size;
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = cv->registry;
    if (rc == 0) rc = petrel_client_open(&cv->client, &cfg);
    /* Reach the cluster now, so a wrong address is an error at open, not at first use: the
     * registry within PROBE_MS (no retries), then the root through the whole path. */
    if (rc == 0) rc = petrel_client_probe(cv->client, PROBE_MS);
    if (rc == 0) rc = petrel_client_stat(cv->client, "/", &root);
    if (rc < 0) {
        petrel_client_close(cv->client);
        free(cv->cache_dir);
        free(vfs);
        free(cv);
        return rc;
    }
    vfs->ops = &cluster_ops;
    vfs->backend = cv;
    vfs->caps = PETREL_VFS_CAP_WRITE_ONCE | PETREL_VFS_CAP_RANDOM_WRITE | PETREL_VFS_CAP_MTIME |
                PETREL_VFS_CAP_MODE | PETREL_VFS_CAP_OWNER | PETREL_VFS_CAP_NODES |
                PETREL_VFS_CAP_INO;
    if (flags & PETREL_VFS_MOUNT_READ_ONLY) vfs->caps |= PETREL_VFS_CAP_READ_ONLY;
    snprintf(vfs->label, sizeof(vfs->label), "petrel://%s:%u", host, port);
    *out = vfs;
    return 0;
}
