/*
 * Durable small-file replacement and directory helpers (see durable.h). Owns the
 * temp-write-fsync-rename-fsync sequence; never leaves a temp file behind on error, never
 * renames before the data is on stable storage, never reports a directory created before
 * its parent was fsync'd. Every fsync passes through fsync_any, where a test hook can count
 * or fail it.
 */
#include "cluster/storage/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "petrel/common.h"

int pt_errno_to_pt(int e)
{
    switch (e) {
    case ENOENT:
        return -PT_ENOENT;
    case ENOSPC:
    case EDQUOT:
        return -PT_ENOSPC;
    case EACCES:
    case EPERM:
        return -PT_EACCES;
    case EEXIST:
        return -PT_EEXIST;
    case ENOTDIR:
        return -PT_ENOTDIR;
    case EROFS:
        return -PT_EROFS;
    case ENOMEM:
        return -PT_ENOMEM;
    case ENAMETOOLONG:
        return -PT_ENAMETOOLONG;
    default:
        return -PT_EIO;
    }
}

static pt_fsync_hook fsync_hook;
static void *fsync_hook_ctx;

void pt_durable_set_fsync_hook(pt_fsync_hook hook, void *ctx)
{
    fsync_hook = hook;
    fsync_hook_ctx = ctx;
}

static int fsync_any(int fd, const char *path, int is_dir)
{
    int rc = fsync_hook ? fsync_hook(fsync_hook_ctx, fd, path, is_dir) : fsync(fd);
    return rc == 0 ? 0 : pt_errno_to_pt(errno);
}

int pt_file_fsync(int fd, const char *path)
{
    return fsync_any(fd, path, 0);
}

/* fsync the directory that holds path's last component ("." for a bare name). */
static int parent_fsync(const char *path)
{
    char buf[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n;
    if (!slash) return pt_dir_fsync(".");
    n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= sizeof(buf)) return -PT_ENAMETOOLONG;
    memcpy(buf, path, n);
    buf[n] = 0;
    return pt_dir_fsync(buf);
}

int pt_mkdir_p(const char *path)
{
    char buf[PATH_MAX], norm[PATH_MAX];
    size_t i, n = 0;
    int err;
    if (!path[0] || strlen(path) >= sizeof(buf)) return -PT_EINVAL;
    /* Collapse repeated slashes and drop a trailing one: "a//b/" is "a/b". */
    for (i = 0; path[i]; i++)
        if (path[i] != '/' || n == 0 || norm[n - 1] != '/') norm[n++] = path[i];
    while (n > 1 && norm[n - 1] == '/')
        n--;
    norm[n] = 0;
    memcpy(buf, norm, n + 1);
    for (i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        buf[i] = 0;
        if (mkdir(buf, 0755) == 0) {
            /* A new entry in the parent: durable only once the parent is synced. */
            if ((err = parent_fsync(buf)) != 0) return err;
        } else if (errno != EEXIST) {
            return pt_errno_to_pt(errno);
        }
        buf[i] = norm[i];
    }
    {
        struct stat st;
        if (stat(norm, &st) != 0) return pt_errno_to_pt(errno);
        if (!S_ISDIR(st.st_mode)) return -PT_ENOTDIR;
    }
    return 0;
}

int pt_dir_fsync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;
    if (fd < 0) return pt_errno_to_pt(errno);
    err = fsync_any(fd, dir, 1);
    close(fd);
    return err;
}

int pt_durable_write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    const uint8_t *p = data;
    size_t done = 0;
    int fd, err = 0;
    if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp) ||
        snprintf(final, sizeof(final), "%s/%s", dir, name) >= (int)sizeof(final))
        return -PT_ENAMETOOLONG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return pt_errno_to_pt(errno);
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            err = pt_errno_to_pt(errno);
            break;
        }
        done += (size_t)w;
    }
    if (!err) err = fsync_any(fd, tmp, 0);
    if (close(fd) != 0 && !err) err = pt_errno_to_pt(errno);
    if (!err && rename(tmp, final) != 0) err = pt_errno_to_pt(errno);
    if (err) {
        unlink(tmp);
        return err;
    }
    return pt_dir_fsync(dir);
}

int pt_read_file(const char *path, size_t max, uint8_t **data, size_t *len)
{
    struct stat st;
    uint8_t *buf;
    size_t done = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;
    *data = NULL;
    *len = 0;
    if (fd < 0) return pt_errno_to_pt(errno);
    if (fstat(fd, &st) != 0) {
        err = pt_errno_to_pt(errno);
        close(fd);
        return err;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return -PT_EFBIG;
    }
    buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (!buf) {
        close(fd);
        return -PT_ENOMEM;
    }
    while (done < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + done, (size_t)st.st_size - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            err = r < 0 ? pt_errno_to_pt(errno) : -PT_EIO;
            break;
        }
        done += (size_t)r;
    }
    close(fd);
    if (err) {
        free(buf);
        return err;
    }
    *data = buf;
    *len = done;
    return 0;
}
