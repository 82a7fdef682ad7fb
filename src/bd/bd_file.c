/*
 * The image file device: a regular file or a block device node used as a flash image through
 * pread/pwrite, with fsync as sync. Owns the descriptor it opened and nothing else.
 * Never touches bytes outside block_count * block_size, never lets a short read or write
 * pass as success (a short transfer is -PT_EIO). Its optional block cache is a read cache
 * written through by every prog and erase, so after a successful sync every completed prog
 * and erase is on the medium, and a failed pread or pwrite leaves no cached copy behind.
 * POSIX only (the one device in src/bd that is not freestanding C99).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "petrel/bd.h"
#include "petrel/common.h"

static int file_errno(int e)
{
    switch (e) {
    case ENOENT:
        return -PT_ENOENT;
    case EACCES:
    case EPERM:
        return -PT_EACCES;
    case EROFS:
        return -PT_EROFS;
    case ENOSPC:
        return -PT_ENOSPC;
    case EISDIR:
        return -PT_EISDIR;
    default:
        return -PT_EIO;
    }
}

/* Write len copies of byte at offset pos, in stack-sized pieces. */
static int file_fill(int fd, off_t pos, uint64_t len, uint8_t byte)
{
    uint8_t chunk[512];
    memset(chunk, byte, sizeof(chunk));
    while (len > 0) {
        size_t n = len < sizeof(chunk) ? (size_t)len : sizeof(chunk);
        ssize_t w = pwrite(fd, chunk, n, pos);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? file_errno(errno) : -PT_EIO;
        pos += w;
        len -= (uint64_t)w;
    }
    return 0;
}

static int file_pread(struct petrel_bd_file *f, off_t pos, uint8_t *p, uint32_t size)
{
    while (size > 0) {
        ssize_t r = pread(f->fd, p, size, pos);
        f->preads++;
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -PT_EIO; /* an image never ends inside its geometry */
        f->read_bytes += (uint64_t)r;
        p += r;
        pos += r;
        size -= (uint32_t)r;
    }
    return 0;
}

/* The cached copy of block, or NULL when the cache does not hold it. */
static uint8_t *file_cached(struct petrel_bd_file *f, uint32_t block)
{
    uint32_t slot;
    if (!f->cache_slots) return NULL;
    slot = block % f->cache_slots;
    return f->cache_tag[slot] == block ? f->cache + (size_t)slot * f->block_size : NULL;
}

static int file_read(void *context, uint32_t block, uint32_t off, void *buf, uint32_t size)
{
    struct petrel_bd_file *f = (struct petrel_bd_file *)context;
    uint8_t *c;
    if (block >= f->block_count || off > f->block_size || size > f->block_size - off)
        return -PT_EINVAL;
    if (size == 0) return 0;
    if (f->cache_slots) {
        uint32_t slot = block % f->cache_slots;
        c = file_cached(f, block);
        if (!c) {
            int err;
            c = f->cache + (size_t)slot * f->block_size;
            f->cache_tag[slot] = PETREL_BD_FILE_NO_BLOCK;
            err = file_pread(f, (off_t)block * f->block_size, c, f->block_size);
            if (err) return err;
            f->cache_tag[slot] = block;
        }
        memcpy(buf, c + off, size);
        return 0;
    }
    return file_pread(f, (off_t)block * f->block_size + off, (uint8_t *)buf, size);
}

static int file_prog(void *context, uint32_t block, uint32_t off, const void *buf, uint32_t size)
{
    struct petrel_bd_file *f = (struct petrel_bd_file *)context;
    off_t pos = (off_t)block * f->block_size + off;
    const uint8_t *p = (const uint8_t *)buf;
    uint8_t *c;
    if (block >= f->block_count || off > f->block_size || size > f->block_size - off)
        return -PT_EINVAL;
    c = file_cached(f, block);
    if (c) {
        /* written through below; the copy is dropped first so a failed write leaves none */
        f->cache_tag[block % f->cache_slots] = PETREL_BD_FILE_NO_BLOCK;
        memcpy(c + off, p, size);
    }
    while (size > 0) {
        ssize_t w = pwrite(f->fd, p, size, pos);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? file_errno(errno) : -PT_EIO;
        p += w;
        pos += w;
        size -= (uint32_t)w;
    }
    if (c) f->cache_tag[block % f->cache_slots] = block;
    return 0;
}

static int file_erase(void *context, uint32_t block)
{
    struct petrel_bd_file *f = (struct petrel_bd_file *)context;
    uint8_t *c;
    int err;
    if (block >= f->block_count) return -PT_EINVAL;
    if (f->erase_value < 0) return 0;
    c = file_cached(f, block);
    if (c) f->cache_tag[block % f->cache_slots] = PETREL_BD_FILE_NO_BLOCK;
    err = file_fill(f->fd, (off_t)block * f->block_size, f->block_size, (uint8_t)f->erase_value);
    if (!err && c) {
        memset(c, f->erase_value, f->block_size);
        f->cache_tag[block % f->cache_slots] = block;
    }
    return err;
}

int petrel_bd_file_set_cache(struct petrel_bd_file *file, void *buffer, uint32_t *tags,
                             uint32_t slots)
{
    uint32_t i;
    if (slots && (!buffer || !tags)) return -PT_EINVAL;
    file->cache = (uint8_t *)buffer;
    file->cache_tag = tags;
    file->cache_slots = slots;
    for (i = 0; i < slots; i++)
        tags[i] = PETREL_BD_FILE_NO_BLOCK;
    return 0;
}

static int file_sync(void *context)
{
    struct petrel_bd_file *f = (struct petrel_bd_file *)context;
    while (fsync(f->fd) != 0) {
        if (errno == EINTR) continue;
        /* fsync on some device nodes and pipes is meaningless; data is already written. */
        if (errno == EINVAL || errno == EROFS) return 0;
        return -PT_EIO;
    }
    return 0;
}

int petrel_bd_file_open(struct petrel_bd *bd, struct petrel_bd_file *file, const char *path,
                        int create, uint32_t read_size, uint32_t prog_size, uint32_t block_size,
                        uint32_t block_count, int32_t erase_value)
{
    struct stat st;
    off_t size;
    int fd, err;
    if (!path || !read_size || !prog_size || !block_size || block_size % read_size ||
        block_size % prog_size)
        return -PT_EINVAL;
    if (erase_value != -1 && (erase_value < 0 || erase_value > 0xff)) return -PT_EINVAL;
    do {
        fd = open(path, O_RDWR | (create ? O_CREAT : 0), 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return file_errno(errno);
    if (fstat(fd, &st) != 0) {
        err = file_errno(errno);
        goto fail;
    }
    err = -PT_EINVAL;
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode) && !S_ISCHR(st.st_mode)) goto fail;
    /* lseek to the end measures regular files and block device nodes alike. */
    size = lseek(fd, 0, SEEK_END);
    if (size < 0) {
        err = file_errno(errno);
        goto fail;
    }
    if (block_count == 0) {
        uint64_t n = (uint64_t)size / block_size;
        if (n == 0 || n > UINT32_MAX) goto fail;
        block_count = (uint32_t)n;
    } else if ((uint64_t)size < (uint64_t)block_count * block_size) {
        if (!create || !S_ISREG(st.st_mode)) goto fail;
        err = file_fill(fd, size, (uint64_t)block_count * block_size - (uint64_t)size,
                        erase_value < 0 ? 0 : (uint8_t)erase_value);
        if (err) goto fail;
    }
    memset(file, 0, sizeof(*file));
    file->fd = fd;
    file->block_size = block_size;
    file->block_count = block_count;
    file->erase_value = erase_value;
    memset(bd, 0, sizeof(*bd));
    bd->context = file;
    bd->read = file_read;
    bd->prog = file_prog;
    bd->erase = file_erase;
    bd->sync = file_sync;
    bd->read_size = read_size;
    bd->prog_size = prog_size;
    bd->block_size = block_size;
    bd->block_count = block_count;
    bd->erase_value = erase_value;
    return 0;
fail:
    close(fd);
    return err;
}

int petrel_bd_file_close(struct petrel_bd_file *file)
{
    int err = 0;
    if (file->fd < 0) return 0;
    if (file_sync(file) != 0) err = -PT_EIO;
    if (close(file->fd) != 0 && !err) err = -PT_EIO;
    file->fd = -1;
    return err;
}
