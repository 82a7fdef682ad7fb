/*
 * The vfs front door: opens the backend a location names and forwards every operation to its
 * ops table. Owns the rules every backend shares (read-only refusal, missing operations as
 * -PT_ENOTSUP) and the small helpers the CLI and FUSE driver use; never touches a store
 * itself.
 */
#include <stdio.h>
#include <string.h>

#include "petrel/common.h"
#include "petrel/vfs.h"

int petrel_vfs_open(const struct petrel_vfs_location *loc, int flags, struct petrel_vfs **out)
{
    *out = NULL;
    switch (loc->kind) {
    case PETREL_VFS_LOCAL:
        return petrel_vfs_local_open(loc->store, flags, out);
    case PETREL_VFS_IMAGE:
        return petrel_vfs_image_open(loc->store, flags, out);
    case PETREL_VFS_CLUSTER:
        return petrel_vfs_cluster_open_cache(loc->host, loc->port, flags, loc->cache_dir,
                                             loc->cache_size, out);
    }
    return -PT_EINVAL;
}

int petrel_vfs_close(struct petrel_vfs *vfs)
{
    if (!vfs) return 0;
    return vfs->ops->destroy(vfs);
}

#define READ_ONLY_GUARD(vfs)                                                                       \
    do {                                                                                           \
        if ((vfs)->caps & PETREL_VFS_CAP_READ_ONLY) return -PT_EROFS;                              \
    } while (0)

int petrel_vfs_stat(struct petrel_vfs *vfs, const char *path, struct petrel_vfs_stat *st)
{
    memset(st, 0, sizeof(*st));
    st->uid = st->gid = PETREL_VFS_ID_NONE;
    return vfs->ops->stat(vfs, path, st);
}

int petrel_vfs_readdir(struct petrel_vfs *vfs, const char *path, petrel_vfs_dir_fn fn, void *ctx)
{
    return vfs->ops->readdir(vfs, path, fn, ctx);
}

int petrel_vfs_mkdir(struct petrel_vfs *vfs, const char *path)
{
    READ_ONLY_GUARD(vfs);
    return vfs->ops->mkdir(vfs, path);
}

int petrel_vfs_remove(struct petrel_vfs *vfs, const char *path)
{
    READ_ONLY_GUARD(vfs);
    if (strcmp(path, "/") == 0) return -PT_EBUSY;
    return vfs->ops->remove(vfs, path);
}

int petrel_vfs_rename(struct petrel_vfs *vfs, const char *from, const char *to)
{
    READ_ONLY_GUARD(vfs);
    if (strcmp(from, "/") == 0 || strcmp(to, "/") == 0) return -PT_EBUSY;
    return vfs->ops->rename(vfs, from, to);
}

int petrel_vfs_rename_noreplace(struct petrel_vfs *vfs, const char *from, const char *to)
{
    struct petrel_vfs_stat st;
    READ_ONLY_GUARD(vfs);
    if (strcmp(from, "/") == 0 || strcmp(to, "/") == 0) return -PT_EBUSY;
    if (vfs->ops->rename_noreplace) return vfs->ops->rename_noreplace(vfs, from, to);
    if (vfs->ops->stat(vfs, to, &st) == 0) return -PT_EEXIST;
    return vfs->ops->rename(vfs, from, to);
}

int petrel_vfs_file_open(struct petrel_vfs *vfs, const char *path, int flags,
                         struct petrel_vfs_file **file)
{
    *file = NULL;
    if (flags & (PETREL_VFS_O_WRITE | PETREL_VFS_O_CREAT | PETREL_VFS_O_TRUNC))
        READ_ONLY_GUARD(vfs);
    if (!(flags & (PETREL_VFS_O_READ | PETREL_VFS_O_WRITE))) return -PT_EINVAL;
    return vfs->ops->open(vfs, path, flags, file);
}

int64_t petrel_vfs_file_read(struct petrel_vfs *vfs, struct petrel_vfs_file *file, void *buf,
                             uint64_t size, uint64_t off)
{
    return vfs->ops->read(vfs, file, buf, size, off);
}

int64_t petrel_vfs_file_write(struct petrel_vfs *vfs, struct petrel_vfs_file *file, const void *buf,
                              uint64_t size, uint64_t off)
{
    READ_ONLY_GUARD(vfs);
    return vfs->ops->write(vfs, file, buf, size, off);
}

int petrel_vfs_file_truncate(struct petrel_vfs *vfs, struct petrel_vfs_file *file, uint64_t size)
{
    READ_ONLY_GUARD(vfs);
    if (!vfs->ops->truncate) return -PT_ENOTSUP;
    return vfs->ops->truncate(vfs, file, size);
}

int petrel_vfs_file_stat(struct petrel_vfs *vfs, struct petrel_vfs_file *file,
                         struct petrel_vfs_stat *st)
{
    memset(st, 0, sizeof(*st));
    st->uid = st->gid = PETREL_VFS_ID_NONE;
    return vfs->ops->fstat(vfs, file, st);
}

int petrel_vfs_file_sync(struct petrel_vfs *vfs, struct petrel_vfs_file *file)
{
    return vfs->ops->sync(vfs, file);
}

int petrel_vfs_file_close(struct petrel_vfs *vfs, struct petrel_vfs_file *file)
{
    return vfs->ops->close(vfs, file, 0);
}

int petrel_vfs_file_abandon(struct petrel_vfs *vfs, struct petrel_vfs_file *file)
{
    return vfs->ops->close(vfs, file, 1);
}

int petrel_vfs_statfs(struct petrel_vfs *vfs, struct petrel_vfs_statfs *st)
{
    memset(st, 0, sizeof(*st));
    return vfs->ops->statfs(vfs, st);
}

int petrel_vfs_set_mtime(struct petrel_vfs *vfs, const char *path, int64_t sec, uint32_t nsec)
{
    READ_ONLY_GUARD(vfs);
    if (!vfs->ops->set_mtime) return -PT_ENOTSUP;
    return vfs->ops->set_mtime(vfs, path, sec, nsec);
}

int petrel_vfs_setattr(struct petrel_vfs *vfs, const char *path, const struct petrel_vfs_attr *a)
{
    READ_ONLY_GUARD(vfs);
    if (!vfs->ops->setattr) return -PT_ENOTSUP;
    return vfs->ops->setattr(vfs, path, a);
}

int petrel_vfs_mknod(struct petrel_vfs *vfs, const char *path, const struct petrel_vfs_node *n)
{
    READ_ONLY_GUARD(vfs);
    if (!vfs->ops->mknod) return -PT_ENOTSUP;
    if (n->type < PETREL_VFS_LNK || n->type > PETREL_VFS_BLK) return -PT_EINVAL;
    if (n->type == PETREL_VFS_LNK &&
        (!n->target || !n->target[0] || strlen(n->target) >= PETREL_VFS_PATH_MAX))
        return -PT_EINVAL;
    return vfs->ops->mknod(vfs, path, n);
}

int64_t petrel_vfs_readlink(struct petrel_vfs *vfs, const char *path, char *buf, uint64_t size)
{
    if (!vfs->ops->readlink) return -PT_ENOTSUP;
    return vfs->ops->readlink(vfs, path, buf, size);
}

int petrel_vfs_set_mode(struct petrel_vfs *vfs, const char *path, uint32_t mode)
{
    READ_ONLY_GUARD(vfs);
    if (!vfs->ops->set_mode) return -PT_ENOTSUP;
    return vfs->ops->set_mode(vfs, path, mode & 07777);
}

int64_t petrel_vfs_getxattr(struct petrel_vfs *vfs, const char *path, const char *name, void *buf,
                            uint64_t size)
{
    if (!vfs->ops->getxattr) return -PT_ENOTSUP;
    return vfs->ops->getxattr(vfs, path, name, buf, size);
}

int petrel_vfs_setxattr(struct petrel_vfs *vfs, const char *path, const char *name, const void *buf,
                        uint64_t size, int flags)
{
    READ_ONLY_GUARD(vfs);
    if (!vfs->ops->setxattr) return -PT_ENOTSUP;
    return vfs->ops->setxattr(vfs, path, name, buf, size, flags);
}

int petrel_vfs_removexattr(struct petrel_vfs *vfs, const char *path, const char *name)
{
    READ_ONLY_GUARD(vfs);
    if (!vfs->ops->removexattr) return -PT_ENOTSUP;
    return vfs->ops->removexattr(vfs, path, name);
}

int64_t petrel_vfs_listxattr(struct petrel_vfs *vfs, const char *path, char *buf, uint64_t size)
{
    if (!vfs->ops->listxattr) return -PT_ENOTSUP;
    return vfs->ops->listxattr(vfs, path, buf, size);
}

int petrel_vfs_write_all(struct petrel_vfs *vfs, struct petrel_vfs_file *file, const void *buf,
                         uint64_t size, uint64_t off)
{
    const uint8_t *p = buf;
    while (size > 0) {
        int64_t n = petrel_vfs_file_write(vfs, file, p, size, off);
        if (n < 0) return (int)n;
        if (n == 0) return -PT_EIO;
        p += n;
        off += (uint64_t)n;
        size -= (uint64_t)n;
    }
    return 0;
}

int petrel_vfs_mkdir_parents(struct petrel_vfs *vfs, const char *path)
{
    char buf[PETREL_VFS_PATH_MAX];
    size_t i, len = strlen(path);
    if (len >= sizeof(buf)) return -PT_ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            struct petrel_vfs_stat st;
            char saved = buf[i];
            int rc;
            buf[i] = '\0';
            rc = petrel_vfs_stat(vfs, buf, &st);
            if (rc == -PT_ENOENT) {
                rc = petrel_vfs_mkdir(vfs, buf);
                if (rc == -PT_EEXIST) rc = 0;
            } else if (rc == 0 && st.type != PETREL_VFS_DIR) {
                rc = -PT_ENOTDIR;
            }
            if (rc < 0) return rc;
            buf[i] = saved;
        }
    }
    return 0;
}

int petrel_vfs_path_join(char *out, size_t size, const char *dir, const char *name)
{
    int n;
    if (strcmp(dir, "/") == 0)
        n = snprintf(out, size, "/%s", name);
    else
        n = snprintf(out, size, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= size ? -PT_ENAMETOOLONG : 0;
}

const char *petrel_vfs_path_base(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}
