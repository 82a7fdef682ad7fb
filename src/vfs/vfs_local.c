/*
 * The local backend: a directory of the host filesystem seen through the vfs ops. It lets
 * `petrel cp` read and write ordinary files and lets the CLI and the FUSE driver be tested
 * without a Petrel store. Paths are resolved relative to the root directory with the *at()
 * calls, so a vfs rooted at D never names anything outside D by construction of its paths
 * (no ".." parts reach here: paths are normalized). Symlinks are followed like any host tool.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "petrel/common.h"
#include "petrel/vfs.h"

struct local_vfs {
    int dirfd;
    char root[PETREL_VFS_PATH_MAX];
};

struct petrel_vfs_file {
    int fd;
};

static struct local_vfs *local(struct petrel_vfs *vfs)
{
    return vfs->backend;
}

/* "/" -> ".", "/a/b" -> "a/b": a name relative to the root directory. */
static const char *rel(const char *path)
{
    while (*path == '/')
        path++;
    return *path ? path : ".";
}

/* An absolute host path, for the calls that have no *at() form (xattrs). */
static int host_path(struct petrel_vfs *vfs, const char *path, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/%s", local(vfs)->root, rel(path));
    return n < 0 || (size_t)n >= size ? -PT_ENAMETOOLONG : 0;
}

static int err(void)
{
    return errno ? -errno : -PT_EIO;
}

static void fill_stat(const struct stat *s, struct petrel_vfs_stat *st)
{
    st->type = S_ISDIR(s->st_mode) ? PETREL_VFS_DIR : PETREL_VFS_REG;
    st->size = S_ISDIR(s->st_mode) ? 0 : (uint64_t)s->st_size;
    st->mtime_sec = s->st_mtim.tv_sec;
    st->mtime_nsec = (uint32_t)s->st_mtim.tv_nsec;
    st->mode = s->st_mode & 07777;
}

static int local_stat(struct petrel_vfs *vfs, const char *path, struct petrel_vfs_stat *st)
{
    struct stat s;
    if (fstatat(local(vfs)->dirfd, rel(path), &s, 0) < 0) return err();
    if (!S_ISDIR(s.st_mode) && !S_ISREG(s.st_mode) && !S_ISBLK(s.st_mode)) return -PT_ENOTSUP;
    fill_stat(&s, st);
    return 0;
}

static int local_readdir(struct petrel_vfs *vfs, const char *path, petrel_vfs_dir_fn fn, void *ctx)
{
    int fd = openat(local(vfs)->dirfd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;
    struct dirent *e;
    int rc = 0;
    if (fd < 0) return err();
    d = fdopendir(fd);
    if (!d) {
        rc = err();
        close(fd);
        return rc;
    }
    for (;;) {
        struct stat s;
        struct petrel_vfs_stat st;
        errno = 0;
        e = readdir(d);
        if (!e) {
            if (errno) rc = err();
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (fstatat(dirfd(d), e->d_name, &s, 0) < 0) continue; /* vanished or dangling */
        if (!S_ISDIR(s.st_mode) && !S_ISREG(s.st_mode)) continue;
        memset(&st, 0, sizeof(st));
        fill_stat(&s, &st);
        rc = fn(ctx, e->d_name, &st);
        if (rc) break;
    }
    closedir(d);
    return rc;
}

static int local_mkdir(struct petrel_vfs *vfs, const char *path)
{
    return mkdirat(local(vfs)->dirfd, rel(path), 0755) < 0 ? err() : 0;
}

static int local_remove(struct petrel_vfs *vfs, const char *path)
{
    struct stat s;
    if (fstatat(local(vfs)->dirfd, rel(path), &s, AT_SYMLINK_NOFOLLOW) < 0) return err();
    if (unlinkat(local(vfs)->dirfd, rel(path), S_ISDIR(s.st_mode) ? AT_REMOVEDIR : 0) < 0)
        return err();
    return 0;
}

static int local_rename(struct petrel_vfs *vfs, const char *from, const char *to)
{
    struct local_vfs *l = local(vfs);
    return renameat(l->dirfd, rel(from), l->dirfd, rel(to)) < 0 ? err() : 0;
}

static int local_open(struct petrel_vfs *vfs, const char *path, int flags,
                      struct petrel_vfs_file **out)
{
    int oflags = O_CLOEXEC, fd;
    struct stat s;
    struct petrel_vfs_file *f;
    if ((flags & PETREL_VFS_O_READ) && (flags & PETREL_VFS_O_WRITE))
        oflags |= O_RDWR;
    else if (flags & PETREL_VFS_O_WRITE)
        oflags |= O_WRONLY;
    else
        oflags |= O_RDONLY;
    if (flags & PETREL_VFS_O_CREAT) oflags |= O_CREAT;
    if (flags & PETREL_VFS_O_EXCL) oflags |= O_EXCL;
    if (flags & PETREL_VFS_O_TRUNC) oflags |= O_TRUNC;
    fd = openat(local(vfs)->dirfd, rel(path), oflags, 0644);
    if (fd < 0) return err();
    if (fstat(fd, &s) < 0 || S_ISDIR(s.st_mode)) {
        int rc = S_ISDIR(s.st_mode) ? -PT_EISDIR : err();
        close(fd);
        return rc;
    }
    f = malloc(sizeof(*f));
    if (!f) {
        close(fd);
        return -PT_ENOMEM;
    }
    f->fd = fd;
    *out = f;
    return 0;
}

static int64_t local_read(struct petrel_vfs *vfs, struct petrel_vfs_file *f, void *buf,
                          uint64_t size, uint64_t off)
{
    ssize_t n = pread(f->fd, buf, size, (off_t)off);
    return n < 0 ? err() : n;
}

static int64_t local_write(struct petrel_vfs *vfs, struct petrel_vfs_file *f, const void *buf,
                           uint64_t size, uint64_t off)
{
    ssize_t n = pwrite(f->fd, buf, size, (off_t)off);
    return n < 0 ? err() : n;
}

static int local_truncate(struct petrel_vfs *vfs, struct petrel_vfs_file *f, uint64_t size)
{
    return ftruncate(f->fd, (off_t)size) < 0 ? err() : 0;
}

static int local_fstat(struct petrel_vfs *vfs, struct petrel_vfs_file *f,
                       struct petrel_vfs_stat *st)
{
    struct stat s;
    if (fstat(f->fd, &s) < 0) return err();
    fill_stat(&s, st);
    return 0;
}

static int local_sync(struct petrel_vfs *vfs, struct petrel_vfs_file *f)
{
    return fsync(f->fd) < 0 && errno != EINVAL ? err() : 0;
}

static int local_close(struct petrel_vfs *vfs, struct petrel_vfs_file *f, int abandon)
{
    int rc = close(f->fd) < 0 ? err() : 0;
    free(f);
    return rc;
}

static int local_statfs(struct petrel_vfs *vfs, struct petrel_vfs_statfs *st)
{
    struct statvfs s;
    if (fstatvfs(local(vfs)->dirfd, &s) < 0) return err();
    st->block_size = s.f_frsize;
    st->blocks_total = s.f_blocks;
    st->blocks_used = s.f_blocks - s.f_bfree;
    st->name_max = (uint32_t)s.f_namemax;
    return 0;
}

static int local_set_mtime(struct petrel_vfs *vfs, const char *path, int64_t sec, uint32_t nsec)
{
    struct timespec ts[2];
    ts[0].tv_sec = 0;
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_sec = (time_t)sec;
    ts[1].tv_nsec = nsec;
    return utimensat(local(vfs)->dirfd, rel(path), ts, 0) < 0 ? err() : 0;
}

static int local_set_mode(struct petrel_vfs *vfs, const char *path, uint32_t mode)
{
    return fchmodat(local(vfs)->dirfd, rel(path), (mode_t)mode, 0) < 0 ? err() : 0;
}

static int64_t local_getxattr(struct petrel_vfs *vfs, const char *path, const char *name, void *buf,
                              uint64_t size)
{
    char p[PETREL_VFS_PATH_MAX * 2];
    ssize_t n;
    int rc = host_path(vfs, path, p, sizeof(p));
    if (rc < 0) return rc;
    n = getxattr(p, name, buf, size);
    return n < 0 ? err() : n;
}

static int local_setxattr(struct petrel_vfs *vfs, const char *path, const char *name,
                          const void *buf, uint64_t size, int flags)
{
    char p[PETREL_VFS_PATH_MAX * 2];
    int xflags = 0, rc = host_path(vfs, path, p, sizeof(p));
    if (rc < 0) return rc;
    if (flags & PETREL_VFS_XATTR_CREATE) xflags |= XATTR_CREATE;
    if (flags & PETREL_VFS_XATTR_REPLACE) xflags |= XATTR_REPLACE;
    return setxattr(p, name, buf, size, xflags) < 0 ? err() : 0;
}

static int local_removexattr(struct petrel_vfs *vfs, const char *path, const char *name)
{
    char p[PETREL_VFS_PATH_MAX * 2];
    int rc = host_path(vfs, path, p, sizeof(p));
    if (rc < 0) return rc;
    return removexattr(p, name) < 0 ? err() : 0;
}

static int64_t local_listxattr(struct petrel_vfs *vfs, const char *path, char *buf, uint64_t size)
{
    char p[PETREL_VFS_PATH_MAX * 2];
    ssize_t n;
    int rc = host_path(vfs, path, p, sizeof(p));
    if (rc < 0) return rc;
    n = listxattr(p, buf, size);
    return n < 0 ? err() : n;
}

static int local_destroy(struct petrel_vfs *vfs)
{
    close(local(vfs)->dirfd);
    free(vfs->backend);
    free(vfs);
    return 0;
}

static const struct petrel_vfs_ops local_ops = {
    .name = "local",
    .stat = local_stat,
    .readdir = local_readdir,
    .mkdir = local_mkdir,
    .remove = local_remove,
    .rename = local_rename,
    .open = local_open,
    .read = local_read,
    .write = local_write,
    .truncate = local_truncate,
    .fstat = local_fstat,
    .sync = local_sync,
    .close = local_close,
    .statfs = local_statfs,
    .set_mtime = local_set_mtime,
    .set_mode = local_set_mode,
    .getxattr = local_getxattr,
    .setxattr = local_setxattr,
    .removexattr = local_removexattr,
    .listxattr = local_listxattr,
    .destroy = local_destroy,
};

int petrel_vfs_local_open(const char *root, int flags, struct petrel_vfs **out)
{
    struct petrel_vfs *vfs;
    struct local_vfs *l;
    char abs[PETREL_VFS_PATH_MAX];
    *out = NULL;
    if (!realpath(root, abs)) return err();
    vfs = calloc(1, sizeof(*vfs));
    l = calloc(1, sizeof(*l));
    if (!vfs || !l) {
        free(vfs);
        free(l);
        return -PT_ENOMEM;
    }
    l->dirfd = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (l->dirfd < 0) {
        int rc = err();
        free(vfs);
        free(l);
        return rc;
    }
    snprintf(l->root, sizeof(l->root), "%s", abs);
    vfs->ops = &local_ops;
    vfs->backend = l;
    vfs->caps = PETREL_VFS_CAP_XATTR | PETREL_VFS_CAP_RANDOM_WRITE | PETREL_VFS_CAP_MTIME |
                PETREL_VFS_CAP_MODE;
    if (flags & PETREL_VFS_MOUNT_READ_ONLY) vfs->caps |= PETREL_VFS_CAP_READ_ONLY;
    snprintf(vfs->label, sizeof(vfs->label), "%s", abs);
    *out = vfs;
    return 0;
}
