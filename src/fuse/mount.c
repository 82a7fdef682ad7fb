/*
 * The FUSE driver over the vfs ops (libfuse3, high-level path API).
 *
 * Owns: translating FUSE requests into vfs calls, the table of open handles, and the mount
 * lifetime. Invariants:
 * - Every vfs call is made under one lock, and the request loop is single-threaded: the flash
 *   engine is single-threaded and must never see two calls at once.
 * - flush (called on every close(2) of a descriptor, including a forked child's or a dup's)
 *   only syncs; it never links a write-once file. Only release (the last close of the open
 *   file) closes the vfs handle, which is what links a cluster file.
 * - A file open for writing is looked up by path in the handle table first, so its size is
 *   current even before the store shows it (a cluster file is invisible until linked).
 * - On unmount, handles still open are closed (image) or abandoned (write-once: a file whose
 *   writer never closed it is not linked).
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <fuse.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fuse/mount.h"
#include "petrel/common.h"

struct handle {
    struct petrel_vfs_file *file;
    char *path; /* NULL once the file was removed while open */
    int writer;
    struct handle *prev, *next;
};

struct driver {
    struct petrel_vfs *vfs;
    pthread_mutex_t lock;
    struct handle *open; /* list of open handles */
    int read_only;
};

static struct driver *drv(void)
{
    return fuse_get_context()->private_data;
}

/* FUSE hands back, as fh, the pointer we stored at open. */
static struct handle *handle_of(const struct fuse_file_info *fi)
{
    return (struct handle *)(uintptr_t)fi->fh; /* NOLINT(performance-no-int-to-ptr) */
}

static const char *dir_of(const struct fuse_file_info *fi)
{
    return (const char *)(uintptr_t)fi->fh; /* NOLINT(performance-no-int-to-ptr) */
}

#define LOCKED(expr)                                                                               \
    ({                                                                                             \
        struct driver *d_ = drv();                                                                 \
        __typeof__(expr) r_;                                                                       \
        pthread_mutex_lock(&d_->lock);                                                             \
        r_ = (expr);                                                                               \
        pthread_mutex_unlock(&d_->lock);                                                           \
        r_;                                                                                        \
    })

/* PT_E* codes mirror errno; Petrel-only codes become the nearest errno. */
static int to_errno(int64_t rc)
{
    if (rc >= 0) return 0;
    if (-rc == PT_ECORRUPT) return -EIO;
    if (-rc >= PT_EPETREL_BASE) return -EIO;
    return (int)rc;
}

static mode_t type_bits(uint8_t type)
{
    switch (type) {
    case PETREL_VFS_DIR: return S_IFDIR;
    case PETREL_VFS_LNK: return S_IFLNK;
    case PETREL_VFS_FIFO: return S_IFIFO;
    case PETREL_VFS_SOCK: return S_IFSOCK;
    case PETREL_VFS_CHR: return S_IFCHR;
    case PETREL_VFS_BLK: return S_IFBLK;
    default: return S_IFREG;
    }
}

/* Entries of a store that keeps no owner belong to the user serving the mount. */
static void fill_stat(const struct petrel_vfs_stat *s, struct stat *st, int read_only,
                      unsigned caps)
{
    int owners = (caps & PETREL_VFS_CAP_OWNER) != 0;
    memset(st, 0, sizeof(*st));
    /* the image backend always reports the mode it keeps, even 0 */
    st->st_mode = type_bits(s->type) | (s->mode || (owners && s->uid != PETREL_VFS_ID_NONE) ? s->mode
                                        : s->type == PETREL_VFS_REG           ? 0644
                                                                              : 0755);
    st->st_nlink = s->nlink ? s->nlink : s->type == PETREL_VFS_DIR ? 2 : 1;
    st->st_ino = (ino_t)s->ino; /* used with use_ino (CAP_INO) only */
    if (read_only) st->st_mode &= ~(mode_t)0222;
    st->st_size = (off_t)s->size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((s->size + 511) / 512);
    st->st_rdev = (dev_t)s->rdev;
    st->st_mtim.tv_sec = (time_t)s->mtime_sec;
    st->st_mtim.tv_nsec = s->mtime_nsec;
    st->st_ctim = st->st_mtim;
    st->st_atim = st->st_mtim;
    if (s->ctime_sec || s->ctime_nsec) {
        st->st_ctim.tv_sec = (time_t)s->ctime_sec;
        st->st_ctim.tv_nsec = s->ctime_nsec;
    }
    if (s->atime_sec || s->atime_nsec) {
        st->st_atim.tv_sec = (time_t)s->atime_sec;
        st->st_atim.tv_nsec = s->atime_nsec;
    }
    st->st_uid = owners && s->uid != PETREL_VFS_ID_NONE ? (uid_t)s->uid : getuid();
    st->st_gid = owners && s->gid != PETREL_VFS_ID_NONE ? (gid_t)s->gid : getgid();
}

static struct handle *find_writer(struct driver *d, const char *path)
{
    struct handle *h;
    for (h = d->open; h; h = h->next)
        if (h->writer && h->path && strcmp(h->path, path) == 0) return h;
    return NULL;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    struct driver *d = drv();
    struct petrel_vfs_stat s;
    struct handle *h;
    int rc;
    pthread_mutex_lock(&d->lock);
    h = fi ? handle_of(fi) : (path ? find_writer(d, path) : NULL);
    if (h)
        rc = petrel_vfs_file_stat(d->vfs, h->file, &s);
    else if (path)
        rc = petrel_vfs_stat(d->vfs, path, &s);
    else
        rc = -PT_EBADF;
    pthread_mutex_unlock(&d->lock);
    if (rc < 0) return to_errno(rc);
    fill_stat(&s, st, d->read_only, d->vfs->caps);
    return 0;
}

struct fill_ctx {
    void *buf;
    fuse_fill_dir_t filler;
    int read_only;
    unsigned caps;
};

static int fill_entry(void *ctx, const char *name, const struct petrel_vfs_stat *s)
{
    struct fill_ctx *c = ctx;
    struct stat st;
    fill_stat(s, &st, c->read_only, c->caps);
    return c->filler(c->buf, name, &st, 0, 0) ? 1 : 0;
}

/* A directory handle is its path (nullpath_ok hands readdir no path). */
static int op_opendir(const char *path, struct fuse_file_info *fi)
{
    char *copy = strdup(path);
    if (!copy) return -ENOMEM;
    fi->fh = (uint64_t)(uintptr_t)copy;
    return 0;
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
    free((char *)dir_of(fi));
    return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    struct fill_ctx c = {buf, filler, drv()->read_only, drv()->vfs->caps};
    const char *dir = dir_of(fi);
    int rc;
    filler(buf, ".", NULL, 0, 0);
    filler(buf, "..", NULL, 0, 0);
    rc = LOCKED(petrel_vfs_readdir(drv()->vfs, dir, fill_entry, &c));
    return rc > 0 ? 0 : to_errno(rc);
}

/* The owner and mode of a new entry: the caller's uid, its gid or the parent's when the
 * parent is setgid (then a new directory is setgid too). Called under the lock. */
static void new_owner(struct driver *d, const char *path, int is_dir, mode_t *mode,
                      struct petrel_vfs_attr *a)
{
    const struct fuse_context *ctx = fuse_get_context();
    char *parent = strdup(path); /* may be longer than PATH_MAX (the mount's own part) */
    struct petrel_vfs_stat ps;
    size_t n = strlen(path);
    memset(a, 0, sizeof(*a));
    a->uid = ctx->uid;
    a->gid = ctx->gid;
    if (parent) {
        while (n > 1 && parent[n - 1] != '/')
            n--;
        parent[n > 1 ? n - 1 : 1] = '\0';
        if (petrel_vfs_stat(d->vfs, parent, &ps) == 0 && (ps.mode & S_ISGID) &&
            ps.gid != PETREL_VFS_ID_NONE) {
            a->gid = ps.gid;
            if (is_dir) *mode |= S_ISGID;
        }
        free(parent);
    }
    a->mode = *mode & 07777;
    a->valid = PETREL_VFS_SET_MODE | PETREL_VFS_SET_UID | PETREL_VFS_SET_GID;
}

/* Give a new entry its owner and mode (stores that keep them). Called under the lock. */
static int own_new(struct driver *d, const char *path, int is_dir, mode_t mode)
{
    struct petrel_vfs_attr a;
    if (!(d->vfs->caps & PETREL_VFS_CAP_OWNER)) {
        if (is_dir && (d->vfs->caps & PETREL_VFS_CAP_MODE))
            return petrel_vfs_set_mode(d->vfs, path, (uint32_t)mode & 07777);
        return 0;
    }
    new_owner(d, path, is_dir, &mode, &a);
    return petrel_vfs_setattr(d->vfs, path, &a);
}

static int op_mkdir(const char *path, mode_t mode)
{
    struct driver *d = drv();
    int rc;
    pthread_mutex_lock(&d->lock);
    rc = petrel_vfs_mkdir(d->vfs, path);
    if (rc == 0 && (rc = own_new(d, path, 1, mode)) < 0) petrel_vfs_remove(d->vfs, path);
    pthread_mutex_unlock(&d->lock);
    return to_errno(rc);
}

static int make_node(const char *path, uint8_t type, mode_t mode, dev_t rdev, const char *target)
{
    struct driver *d = drv();
    struct petrel_vfs_node n;
    struct petrel_vfs_attr a;
    int rc;
    if (!(d->vfs->caps & PETREL_VFS_CAP_NODES)) return -EPERM;
    memset(&n, 0, sizeof(n));
    n.type = type;
    n.rdev = (uint64_t)rdev;
    n.target = target;
    pthread_mutex_lock(&d->lock);
    new_owner(d, path, 0, &mode, &a);
    n.mode = a.mode;
    n.uid = a.uid;
    n.gid = a.gid;
    rc = petrel_vfs_mknod(d->vfs, path, &n);
    pthread_mutex_unlock(&d->lock);
    return to_errno(rc);
}

static int op_mknod(const char *path, mode_t mode, dev_t rdev)
{
    switch (mode & S_IFMT) {
    case S_IFIFO: return make_node(path, PETREL_VFS_FIFO, mode, 0, NULL);
    case S_IFSOCK: return make_node(path, PETREL_VFS_SOCK, mode, 0, NULL);
    case S_IFCHR: return make_node(path, PETREL_VFS_CHR, mode, rdev, NULL);
    case S_IFBLK: return make_node(path, PETREL_VFS_BLK, mode, rdev, NULL);
    case S_IFREG:
    case 0: {
        struct driver *d = drv();
        struct petrel_vfs_file *f;
        int rc;
        pthread_mutex_lock(&d->lock);
        rc = petrel_vfs_file_open(d->vfs, path,
                                  PETREL_VFS_O_WRITE | PETREL_VFS_O_CREAT | PETREL_VFS_O_EXCL, &f);
        if (rc == 0) rc = petrel_vfs_file_close(d->vfs, f);
        if (rc == 0 && (rc = own_new(d, path, 0, mode)) < 0) petrel_vfs_remove(d->vfs, path);
        pthread_mutex_unlock(&d->lock);
        return to_errno(rc);
    }
    default: return -EINVAL;
    }
}

static int op_symlink(const char *target, const char *path)
{
    if (strlen(target) >= PETREL_VFS_PATH_MAX) return -ENAMETOOLONG;
    return make_node(path, PETREL_VFS_LNK, 0777, 0, target);
}

static int op_readlink(const char *path, char *buf, size_t size)
{
    int64_t n;
    if (size == 0) return -EINVAL;
    n = LOCKED(petrel_vfs_readlink(drv()->vfs, path, buf, size - 1));
    if (n < 0) return to_errno(n);
    buf[(size_t)n < size - 1 ? (size_t)n : size - 1] = '\0';
    return 0;
}

/* Hard links are not supported by either store (docs/CLI.md). */
static int op_link(const char *from, const char *to)
{
    return -EPERM;
}

static int remove_path(const char *path)
{
    struct driver *d = drv();
    struct handle *h;
    int rc;
    pthread_mutex_lock(&d->lock);
    rc = petrel_vfs_remove(d->vfs, path);
    if (rc == 0)
        for (h = d->open; h; h = h->next)
            if (h->path && strcmp(h->path, path) == 0) {
                free(h->path);
                h->path = NULL;
            }
    pthread_mutex_unlock(&d->lock);
    return to_errno(rc);
}

static int op_unlink(const char *path)
{
    struct stat st;
    int rc = op_getattr(path, &st, NULL);
    if (rc < 0) return rc;
    if (S_ISDIR(st.st_mode)) return -EISDIR;
    return remove_path(path);
}

static int op_rmdir(const char *path)
{
    struct stat st;
    int rc = op_getattr(path, &st, NULL);
    if (rc < 0) return rc;
    if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
    return remove_path(path);
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
    struct driver *d = drv();
    struct handle *h;
    size_t flen = strlen(from);
    int rc;
    if (flags & RENAME_EXCHANGE) return -EINVAL;
    pthread_mutex_lock(&d->lock);
    if (flags & RENAME_NOREPLACE)
        rc = petrel_vfs_rename_noreplace(d->vfs, from, to); /* atomic where the store can */
    else
        rc = petrel_vfs_rename(d->vfs, from, to);
    /* Open handles under the old name follow the rename. */
    for (h = d->open; rc == 0 && h; h = h->next) {
        if (h->path && strncmp(h->path, from, flen) == 0 &&
            (h->path[flen] == '\0' || h->path[flen] == '/')) {
            char *p = malloc(strlen(to) + strlen(h->path + flen) + 1);
            if (!p) continue;
            strcpy(p, to);
            strcat(p, h->path + flen);
            free(h->path);
            h->path = p;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return to_errno(rc);
}

static int open_common(const char *path, struct fuse_file_info *fi, int create)
{
    struct driver *d = drv();
    struct handle *h;
    int flags = 0, acc = fi->flags & O_ACCMODE, rc;
    if (acc == O_RDONLY || acc == O_RDWR) flags |= PETREL_VFS_O_READ;
    if (acc == O_WRONLY || acc == O_RDWR) flags |= PETREL_VFS_O_WRITE;
    if (create) flags |= PETREL_VFS_O_CREAT | PETREL_VFS_O_WRITE;
    if (fi->flags & O_EXCL) flags |= PETREL_VFS_O_EXCL;
    if (fi->flags & O_TRUNC) flags |= PETREL_VFS_O_TRUNC;
    if (fi->flags & O_APPEND) flags |= PETREL_VFS_O_APPEND;
    h = calloc(1, sizeof(*h));
    if (!h || !(h->path = strdup(path))) {
        free(h);
        return -ENOMEM;
    }
    h->writer = (flags & PETREL_VFS_O_WRITE) != 0;
    pthread_mutex_lock(&d->lock);
    rc = petrel_vfs_file_open(d->vfs, path, flags, &h->file);
    if (rc == 0) {
        h->next = d->open;
        if (d->open) d->open->prev = h;
        d->open = h;
    }
    pthread_mutex_unlock(&d->lock);
    if (rc < 0) {
        free(h->path);
        free(h);
        return to_errno(rc);
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    /* Write-once files stream: no page cache, so every byte reaches the writer in order;
     * readers read what is committed. A handle that changes a file (read-write, or writing
     * an existing file) keeps the page cache: shared mmap (SQLite's WAL index) needs it, and
     * its writes still reach the change in place (write-through). */
    if ((d->vfs->caps & PETREL_VFS_CAP_WRITE_ONCE) &&
        (!h->writer || (acc == O_WRONLY && create) || !(d->vfs->caps & PETREL_VFS_CAP_RANDOM_WRITE)))
        fi->direct_io = 1;
    return 0;
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct driver *d = drv();
    struct stat st;
    int owners = (d->vfs->caps & PETREL_VFS_CAP_OWNER) != 0;
    int existed = owners && op_getattr(path, &st, NULL) == 0, rc = open_common(path, fi, 1);
    if (rc == 0 && !existed && owners) {
        pthread_mutex_lock(&d->lock);
        rc = own_new(d, path, 0, mode);
        pthread_mutex_unlock(&d->lock);
        rc = to_errno(rc);
    }
    return rc;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
    return open_common(path, fi, 0);
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct handle *h = handle_of(fi);
    int64_t n = LOCKED(petrel_vfs_file_read(drv()->vfs, h->file, buf, size, (uint64_t)off));
    return n < 0 ? to_errno(n) : (int)n;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct handle *h = handle_of(fi);
    int rc = LOCKED(petrel_vfs_write_all(drv()->vfs, h->file, buf, size, (uint64_t)off));
    return rc < 0 ? to_errno(rc) : (int)size;
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    struct driver *d = drv();
    struct handle *h = fi ? handle_of(fi) : NULL;
    int rc;
    pthread_mutex_lock(&d->lock);
    if (!h && path) h = find_writer(d, path);
    if (h) {
        rc = petrel_vfs_file_truncate(d->vfs, h->file, (uint64_t)size);
    } else if (!path) {
        rc = -PT_EBADF;
    } else {
        struct petrel_vfs_file *f;
        rc = petrel_vfs_file_open(d->vfs, path, PETREL_VFS_O_WRITE, &f);
        if (rc == 0) {
            int rc2;
            rc = petrel_vfs_file_truncate(d->vfs, f, (uint64_t)size);
            rc2 = rc == 0 ? petrel_vfs_file_close(d->vfs, f) : petrel_vfs_file_abandon(d->vfs, f);
            if (rc == 0) rc = rc2;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return to_errno(rc);
}

/*
 * fallocate on a store that writes anywhere: space is not reserved ahead (the engine
 * allocates on write), so plain and KEEP_SIZE calls only grow the size where asked;
 * PUNCH_HOLE (always with KEEP_SIZE) writes zeros over the part of the range inside the
 * file. Other modes (zero range, collapse, insert, unshare) are -EOPNOTSUPP, as on tmpfs.
 */
static int op_fallocate(const char *path, int mode, off_t off, off_t len,
                        struct fuse_file_info *fi)
{
    static const char zeros[65536];
    struct driver *d = drv();
    struct handle *h = fi ? handle_of(fi) : NULL;
    struct petrel_vfs_stat st;
    uint64_t end, size;
    int rc;
    if (!h) return -EBADF;
    if (!(d->vfs->caps & PETREL_VFS_CAP_RANDOM_WRITE)) return -EOPNOTSUPP;
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) return -EOPNOTSUPP;
    if (off < 0 || len <= 0) return -EINVAL;
    pthread_mutex_lock(&d->lock);
    rc = petrel_vfs_file_stat(d->vfs, h->file, &st);
    size = st.size;
    end = (uint64_t)off + (uint64_t)len;
    if (rc == 0 && (mode & FALLOC_FL_PUNCH_HOLE)) {
        uint64_t at = (uint64_t)off, stop = (mode & FALLOC_FL_KEEP_SIZE) && end > size ? size : end;
        while (rc == 0 && at < stop) {
            uint64_t n = stop - at < sizeof(zeros) ? stop - at : sizeof(zeros);
            rc = petrel_vfs_write_all(d->vfs, h->file, zeros, n, at);
            at += n;
        }
    } else if (rc == 0 && !(mode & FALLOC_FL_KEEP_SIZE) && end > size) {
        rc = petrel_vfs_file_truncate(d->vfs, h->file, end);
    }
    pthread_mutex_unlock(&d->lock);
    return to_errno(rc);
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
    struct handle *h = handle_of(fi);
    if (!h->writer) return 0;
    return to_errno(LOCKED(petrel_vfs_file_sync(drv()->vfs, h->file)));
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    struct handle *h = handle_of(fi);
    return to_errno(LOCKED(petrel_vfs_file_sync(drv()->vfs, h->file)));
}

static void unlist(struct driver *d, struct handle *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        d->open = h->next;
    if (h->next) h->next->prev = h->prev;
    free(h->path);
    free(h);
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
    struct driver *d = drv();
    struct handle *h = handle_of(fi);
    int rc;
    pthread_mutex_lock(&d->lock);
    rc = petrel_vfs_file_close(d->vfs, h->file);
    if (rc < 0)
        petrel_log(PT_LOG_ERROR, "fuse", "closing %s failed: %s", h->path ? h->path : "(removed)",
                   petrel_strerror(rc));
    unlist(d, h);
    pthread_mutex_unlock(&d->lock);
    return to_errno(rc);
}

static int op_statfs(const char *path, struct statvfs *st)
{
    struct petrel_vfs_statfs s;
    int rc = LOCKED(petrel_vfs_statfs(drv()->vfs, &s));
    if (rc < 0) return to_errno(rc);
    memset(st, 0, sizeof(*st));
    st->f_bsize = st->f_frsize = s.block_size ? s.block_size : 4096;
    st->f_blocks = s.blocks_total;
    st->f_bfree = st->f_bavail =
        s.blocks_total > s.blocks_used ? s.blocks_total - s.blocks_used : 0;
    st->f_namemax = s.name_max ? s.name_max : 255;
    return 0;
}

static int op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    struct driver *d = drv();
    struct timespec now;
    if (!(d->vfs->caps & PETREL_VFS_CAP_MTIME)) return -ENOTSUP;
    if (!path && fi) path = (handle_of(fi))->path;
    if (!path) return -EBADF;
    if (d->vfs->caps & PETREL_VFS_CAP_OWNER) {
        struct petrel_vfs_attr a;
        clock_gettime(CLOCK_REALTIME, &now);
        memset(&a, 0, sizeof(a));
        if (tv[0].tv_nsec != UTIME_OMIT) {
            const struct timespec *t = tv[0].tv_nsec == UTIME_NOW ? &now : &tv[0];
            a.valid |= PETREL_VFS_SET_ATIME;
            a.atime_sec = t->tv_sec;
            a.atime_nsec = (uint32_t)t->tv_nsec;
        }
        if (tv[1].tv_nsec != UTIME_OMIT) {
            const struct timespec *t = tv[1].tv_nsec == UTIME_NOW ? &now : &tv[1];
            a.valid |= PETREL_VFS_SET_MTIME;
            a.mtime_sec = t->tv_sec;
            a.mtime_nsec = (uint32_t)t->tv_nsec;
        }
        if (!a.valid) return 0;
        return to_errno(LOCKED(petrel_vfs_setattr(d->vfs, path, &a)));
    }
    if (tv[1].tv_nsec == UTIME_OMIT) return 0;
    if (tv[1].tv_nsec == UTIME_NOW)
        clock_gettime(CLOCK_REALTIME, &now);
    else
        now = tv[1];
    return to_errno(LOCKED(petrel_vfs_set_mtime(d->vfs, path, now.tv_sec, (uint32_t)now.tv_nsec)));
}

/* Without stored modes, a chmod to the mode already shown succeeds (tar, cp -p) and any
 * other fails honestly. */
/*
 * The POSIX rules of chmod and chown for a caller other than root (chmod(2), chown(2)): the
 * kernel applies them itself with default_permissions (root's mounts); without it (a user's
 * own mount) it asks the driver, which then applies them here. Only the owner changes a mode
 * (a setgid bit it asks for on a file of a group it is not in is dropped); only root gives a
 * file away; the owner may change the group to one it is in.
 */
static int caller_in_group(gid_t gid)
{
    gid_t groups[256];
    int n = fuse_getgroups(256, groups), i;
    if (gid == fuse_get_context()->gid) return 1;
    for (i = 0; i < n && i < 256; i++)
        if (groups[i] == gid) return 1;
    return 0;
}

static int chmod_permitted(const char *path, mode_t *mode, struct fuse_file_info *fi)
{
    struct stat st;
    int rc;
    if (fuse_get_context()->uid == 0) return 0;
    if ((rc = op_getattr(path, &st, fi)) < 0) return rc;
    if (st.st_uid != fuse_get_context()->uid) {
        /* Only clearing setuid/setgid: the kernel does that after a write by another user
         * (who may write, or it would not have written); chmod(2) by a non-owner never
         * reaches here with default_permissions. */
        mode_t changed = (st.st_mode ^ *mode) & 07777;
        if (changed && !(changed & ~(mode_t)(S_ISUID | S_ISGID)) && !(*mode & changed)) return 0;
        return -EPERM;
    }
    if (!S_ISDIR(st.st_mode) && (*mode & S_ISGID) && !caller_in_group(st.st_gid))
        *mode &= ~(mode_t)S_ISGID;
    return 0;
}

static int chown_permitted(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    struct stat st;
    int rc;
    if (fuse_get_context()->uid == 0 || (uid == (uid_t)-1 && gid == (gid_t)-1)) return 0;
    if ((rc = op_getattr(path, &st, fi)) < 0) return rc;
    if (st.st_uid != fuse_get_context()->uid) return -EPERM;
    if (uid != (uid_t)-1 && uid != st.st_uid) return -EPERM;
    if (gid != (gid_t)-1 && gid != st.st_gid && !caller_in_group(gid)) return -EPERM;
    return 0;
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct driver *d = drv();
    struct stat st;
    int rc;
    if (!path && fi) path = (handle_of(fi))->path;
    if (!path) return -EBADF;
    if (d->vfs->caps & PETREL_VFS_CAP_OWNER) {
        struct petrel_vfs_attr a;
        if ((rc = chmod_permitted(path, &mode, fi)) < 0) return rc;
        memset(&a, 0, sizeof(a));
        a.valid = PETREL_VFS_SET_MODE;
        a.mode = (uint32_t)mode & 07777;
        return to_errno(LOCKED(petrel_vfs_setattr(d->vfs, path, &a)));
    }
    if (d->vfs->caps & PETREL_VFS_CAP_MODE)
        return to_errno(LOCKED(petrel_vfs_set_mode(d->vfs, path, (uint32_t)mode)));
    rc = op_getattr(path, &st, fi);
    if (rc < 0) return rc;
    return (st.st_mode & 07777) == (mode & 07777) ? 0 : -ENOTSUP;
}

/* A store that keeps owners takes what the POSIX rules allow (above); elsewhere every file
 * belongs to the user serving the mount. */
static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    struct driver *d = drv();
    if (!path && fi) path = (handle_of(fi))->path;
    if (!path) return -EBADF;
    if (d->vfs->caps & PETREL_VFS_CAP_OWNER) {
        struct petrel_vfs_attr a;
        int rc = chown_permitted(path, uid, gid, fi);
        if (rc < 0) return rc;
        memset(&a, 0, sizeof(a));
        if (uid != (uid_t)-1) a.valid |= PETREL_VFS_SET_UID;
        if (gid != (gid_t)-1) a.valid |= PETREL_VFS_SET_GID;
        a.uid = (uint32_t)uid;
        a.gid = (uint32_t)gid;
        return to_errno(LOCKED(petrel_vfs_setattr(d->vfs, path, &a)));
    }
    if ((uid != (uid_t)-1 && uid != getuid()) || (gid != (gid_t)-1 && gid != getgid()))
        return -EPERM;
    return 0;
}

static int op_setxattr(const char *path, const char *name, const char *value, size_t size,
                       int flags)
{
    int f = 0;
    if (flags & XATTR_CREATE) f |= PETREL_VFS_XATTR_CREATE;
    if (flags & XATTR_REPLACE) f |= PETREL_VFS_XATTR_REPLACE;
    return to_errno(LOCKED(petrel_vfs_setxattr(drv()->vfs, path, name, value, size, f)));
}

static int op_getxattr(const char *path, const char *name, char *value, size_t size)
{
    int64_t n = LOCKED(petrel_vfs_getxattr(drv()->vfs, path, name, value, size));
    if (n == -PT_ENOTSUP) return -ENODATA;
    return n < 0 ? to_errno(n) : (int)n;
}

static int op_listxattr(const char *path, char *list, size_t size)
{
    int64_t n = LOCKED(petrel_vfs_listxattr(drv()->vfs, path, list, size));
    if (n == -PT_ENOTSUP) return 0;
    return n < 0 ? to_errno(n) : (int)n;
}

static int op_removexattr(const char *path, const char *name)
{
    return to_errno(LOCKED(petrel_vfs_removexattr(drv()->vfs, path, name)));
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    cfg->nullpath_ok = 1;
    cfg->hard_remove = 1; /* no .fuse_hidden files left in the store after a crash */
    /* Stable inode numbers where the store has them (a cluster's inode ids): else the
     * kernel sees libfuse's node ids, which change when it forgets a node (pjdfstest
     * compares a file's inode number before and after a refused rename). */
    cfg->use_ino = (((struct driver *)fuse_get_context()->private_data)->vfs->caps &
                    PETREL_VFS_CAP_INO) != 0;
    cfg->attr_timeout = 1.0;
    cfg->entry_timeout = 1.0;
    cfg->negative_timeout = 0;
    return fuse_get_context()->private_data;
}

static const struct fuse_operations operations = {
    .init = op_init,
    .getattr = op_getattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .mkdir = op_mkdir,
    .mknod = op_mknod,
    .symlink = op_symlink,
    .readlink = op_readlink,
    .link = op_link,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .create = op_create,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .truncate = op_truncate,
    .flush = op_flush,
    .fsync = op_fsync,
    .fallocate = op_fallocate,
    .release = op_release,
    .statfs = op_statfs,
    .utimens = op_utimens,
    .chmod = op_chmod,
    .chown = op_chown,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
};

static int close_all(struct driver *d)
{
    struct handle *h, *next;
    int rc = 0;
    for (h = d->open; h; h = next) {
        int r = (d->vfs->caps & PETREL_VFS_CAP_WRITE_ONCE) && h->writer
                    ? petrel_vfs_file_abandon(d->vfs, h->file)
                    : petrel_vfs_file_close(d->vfs, h->file);
        if (r < 0 && rc == 0) rc = r;
        next = h->next;
        free(h->path);
        free(h);
    }
    d->open = NULL;
    return rc;
}

int petrel_fuse_mount(const struct petrel_vfs_location *where, const char *mountpoint,
                      const struct petrel_mount_options *options, enum petrel_mount_stage *stage)
{
    struct petrel_vfs_location abs = *where, *loc = &abs;
    struct driver d;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    struct fuse *fuse;
    char opts[1024];
    int rc, vflags = options->read_only ? PETREL_VFS_MOUNT_READ_ONLY : 0;
    const char *kind = loc->kind == PETREL_VFS_CLUSTER ? "cluster"
                       : loc->kind == PETREL_VFS_IMAGE ? "image"
                                                       : "local";

    /* The daemon runs in "/": make the store's name absolute first. */
    if (loc->kind != PETREL_VFS_CLUSTER) {
        char real[PATH_MAX];
        *stage = PETREL_MOUNT_STAGE_OPEN;
        if (!realpath(where->store, real)) return errno ? -errno : -PT_ENOENT;
        if (strlen(real) >= sizeof(abs.store)) return -PT_ENAMETOOLONG;
        strcpy(abs.store, real);
    }
    memset(&d, 0, sizeof(d));
    d.read_only = options->read_only;
    pthread_mutex_init(&d.lock, NULL);
    /* Open once before mounting so a bad store is reported to the user, not to a daemon. */
    *stage = PETREL_MOUNT_STAGE_OPEN;
    rc = petrel_vfs_open(loc, vflags, &d.vfs);
    if (rc < 0) return rc;
    rc = petrel_vfs_close(d.vfs);
    d.vfs = NULL;
    if (rc < 0) return rc;

    snprintf(opts, sizeof(opts), "fsname=petrel-%s,subtype=petrel%s%s%s", kind,
             options->read_only ? ",ro" : "", options->fuse_opts ? "," : "",
             options->fuse_opts ? options->fuse_opts : "");
    *stage = PETREL_MOUNT_STAGE_FUSE;
    if (fuse_opt_add_arg(&args, "petrel") || fuse_opt_add_arg(&args, "-o") ||
        fuse_opt_add_arg(&args, opts)) {
        fuse_opt_free_args(&args);
        return -PT_ENOMEM;
    }
    fuse = fuse_new(&args, &operations, sizeof(operations), &d);
    fuse_opt_free_args(&args);
    if (!fuse) return -PT_EINVAL;
    *stage = PETREL_MOUNT_STAGE_MOUNT;
    if (fuse_mount(fuse, mountpoint) != 0) {
        fuse_destroy(fuse);
        return -PT_EIO;
    }
    if (fuse_daemonize(options->foreground) != 0) {
        fuse_unmount(fuse);
        fuse_destroy(fuse);
        return -PT_EIO;
    }
    /* From here on we are the serving process. Open the store for good (after any fork, so
     * threads and locks a backend holds belong to this process). */
    *stage = PETREL_MOUNT_STAGE_OPEN;
    rc = petrel_vfs_open(loc, vflags, &d.vfs);
    if (rc == 0) {
        if (fuse_set_signal_handlers(fuse_get_session(fuse)) == 0) {
            fuse_loop(fuse);
            fuse_remove_signal_handlers(fuse_get_session(fuse));
        } else {
            rc = -PT_EIO;
        }
    }
    fuse_unmount(fuse);
    if (d.vfs) {
        int rc2;
        *stage = PETREL_MOUNT_STAGE_CLOSE;
        pthread_mutex_lock(&d.lock);
        rc2 = close_all(&d);
        pthread_mutex_unlock(&d.lock);
        if (rc == 0) rc = rc2;
        rc2 = petrel_vfs_close(d.vfs);
        if (rc == 0) rc = rc2;
    }
    fuse_destroy(fuse);
    pthread_mutex_destroy(&d.lock);
    return rc;
}
