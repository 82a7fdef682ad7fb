/*
 * Durable small-file replacement and directory helpers (see durable.h). Owns the
 * temp-write-fsync-rename-fsync sequence; never leaves a temp file behind on error, never
 * renames before the data is on stable storage.
 */
#include "cluster/net/durable.h"

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

int pt_mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    size_t i, n = strlen(path);
    if (n == 0 || n >= sizeof(buf)) return -PT_EINVAL;
    memcpy(buf, path, n + 1);
    for (i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        buf[i] = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return pt_errno_to_pt(errno);
        buf[i] = path[i];
    }
    {
        struct stat st;
        if (stat(path, &st) != 0) return pt_errno_to_pt(errno);
        if (!S_ISDIR(st.st_mode)) return -PT_ENOTDIR;
    }
    return 0;
}

int pt_dir_fsync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;
    if (fd < 0) return pt_errno_to_pt(errno);
    if (fsync(fd) != 0) err = pt_errno_to_pt(errno);
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
    if (!err && fsync(fd) != 0) err = pt_errno_to_pt(errno);
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
