/*
 * The local backend: a directory of the host filesystem seen through the vfs ops. It lets
 * `petrel cp` read and write ordinary files and lets the CLI and the FUSE driver be tested
 * without a Petrel store. Paths are resolved relative to the root directory with the *at()
 * calls, so a vfs rooted at D never names anything outside D by construction of its paths
 * (no ".." parts reach here: paths are normalized). Symbolic links in the middle of a path
 * are followed like any host tool; the last component is seen as it is (stat is lstat, a link
 * reads as PETREL_VFS_LNK and copies as a link) but opening a link opens its target.
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

/* A block device reads as a file (its contents: `petrel cp /dev/sdX img:/x`). */
static uint8_t local_type(mode_t m)
{
    if (S_ISDIR(m)) return PETREL_VFS_DIR;
    if (S_ISLNK(m)) return PETREL_VFS_LNK;
    if (S_ISFIFO(m)) return PETREL_VFS_FIFO;
    if (S_ISSOCK(m)) return PETREL_VFS_SOCK;
    if (S_ISCHR(m)) return PETREL_VFS_CHR;
    return PETREL_VFS_REG;
}

static void fill_stat(const struct stat *s, struct petrel_vfs_stat *st)
{
    st->type = local_type(s->st_mode);
    st->size = S_ISDIR(s->st_mode) ? 0 : (uint64_t)s->st_size;
    st->mtime_sec = s->st_mtim.tv_sec;
    st->mtime_nsec = (uint32_t)s->st_mtim.tv_nsec;
    st->mode = s->st_mode & 07777;
    st->uid = s->st_uid;
    st->gid = s->st_gid;
    st->atime_sec = s->st_atim.tv_sec;
    st->atime_nsec = (uint32_t)s->st_atim.tv_nsec;
    st->ctime_sec = s->st_ctim.tv_sec;
    st->ctime_nsec = (uint32_t)s->st_ctim.tv_nsec;
    st->rdev = S_ISCHR(s->st_mode) ? (uint64_t)s->st_rdev : 0;
}

static int local_stat(struct petrel_vfs *vfs, const char *path, struct petrel_vfs_stat *st)
{
    struct stat s;
    if (fstatat(local(vfs)->dirfd, rel(path), &s, AT_SYMLINK_NOFOLLOW) < 0) return err();
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
        if (fstatat(dirfd(d), e->d_name, &s, AT_SYMLINK_NOFOLLOW) < 0) continue; /* vanished */
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

static int local_setattr(struct petrel_vfs *vfs, const char *path, const struct petrel_vfs_attr *a)
{
    int dfd = local(vfs)->dirfd;
    struct stat s;
    if (fstatat(dfd, rel(path), &s, AT_SYMLINK_NOFOLLOW) < 0) return err();
    if (a->valid & (PETREL_VFS_SET_UID | PETREL_VFS_SET_GID)) {
        uid_t uid = (a->valid & PETREL_VFS_SET_UID) ? (uid_t)a->uid : (uid_t)-1;
        gid_t gid = (a->valid & PETREL_VFS_SET_GID) ? (gid_t)a->gid : (gid_t)-1;
        if (fchownat(dfd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) < 0) return err();
    }
    /* after the owner: a chown clears setuid/setgid, the mode asked for puts them back */
    if ((a->valid & PETREL_VFS_SET_MODE) && !S_ISLNK(s.st_mode) &&
        fchmodat(dfd, rel(path), (mode_t)(a->mode & 07777), 0) < 0)
        return err();
    if (a->valid & (PETREL_VFS_SET_ATIME | PETREL_VFS_SET_MTIME)) {
        struct timespec ts[2];
        ts[0].tv_sec = (time_t)a->atime_sec;
        ts[0].tv_nsec = (a->valid & PETREL_VFS_SET_ATIME) ? (long)a->atime_nsec : UTIME_OMIT;
        ts[1].tv_sec = (time_t)a->mtime_sec;
        ts[1].tv_nsec = (a->valid & PETREL_VFS_SET_MTIME) ? (long)a->mtime_nsec : UTIME_OMIT;
        if (utimensat(dfd, rel(path), ts, AT_SYMLINK_NOFOLLOW) < 0) return err();
    }
    return 0; /* a host filesystem keeps its own ctime: SET_CTIME cannot be honoured */
}

static int local_mknod(struct petrel_vfs *vfs, const char *path, const struct petrel_vfs_node *n)
{
    int dfd = local(vfs)->dirfd, rc;
    mode_t perm = (mode_t)(n->mode & 07777);
    switch (n->type) {
    case PETREL_VFS_LNK: rc = symlinkat(n->target, dfd, rel(path)); break;
    case PETREL_VFS_FIFO: rc = mknodat(dfd, rel(path), S_IFIFO | perm, 0); break;
    case PETREL_VFS_SOCK: rc = mknodat(dfd, rel(path), S_IFSOCK | perm, 0); break;
    case PETREL_VFS_CHR: rc = mknodat(dfd, rel(path), S_IFCHR | perm, (dev_t)n->rdev); break;
    case PETREL_VFS_BLK: rc = mknodat(dfd, rel(path), S_IFBLK | perm, (dev_t)n->rdev); break;
    default: return -PT_EINVAL;
    }
    if (rc < 0) return err();
    if (n->uid != PETREL_VFS_ID_NONE || n->gid != PETREL_VFS_ID_NONE) {
        /* best effort, like the host's own tools: only root gives files away */
        if (fchownat(dfd, rel(path), (uid_t)n->uid, (gid_t)n->gid, AT_SYMLINK_NOFOLLOW) < 0 &&
            errno != EPERM) {
            rc = err();
            unlinkat(dfd, rel(path), 0);
            return rc;
        }
    }
    return 0;
}

static int64_t local_readlink(struct petrel_vfs *vfs, const char *path, char *buf, uint64_t size)
{
    char target[PETREL_VFS_PATH_MAX];
    ssize_t n = readlinkat(local(vfs)->dirfd, rel(path), target, sizeof(target));
    if (n < 0) return err();
    if ((size_t)n >= sizeof(target)) return -PT_ENAMETOOLONG;
    memcpy(buf, target, (size_t)n < size ? (size_t)n : (size_t)size);
    return n;
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
    .setattr = local_setattr,
    .mknod = local_mknod,
    .readlink = local_readlink,
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
                PETREL_VFS_CAP_MODE | PETREL_VFS_CAP_OWNER | PETREL_VFS_CAP_NODES;
    if (flags & PETREL_VFS_MOUNT_READ_ONLY) vfs->caps |= PETREL_VFS_CAP_READ_ONLY;
    snprintf(vfs->label, sizeof(vfs->label), "%s", abs);
    *out = vfs;
    return 0;
}
