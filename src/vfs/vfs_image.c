/*
 * The image backend: a flash-engine filesystem (petrel_fs_*) in an image file or block
 * device (the image-file block device, src/bd/bd_file.c), seen through the vfs ops.
 *
 * Owns: finding an image's block size, the exclusive use of an image (an flock: one writer,
 * or several readers), and the host metadata the engine does not define, kept in engine
 * attributes of each entry but the root, which has none (docs/CLI.md, "Host metadata in
 * images"):
 *   type 0x01  mode, owner, times and device number: mtime seconds (le64), nanoseconds
 *              (le32), mode (le32), uid (le32), gid (le32), atime seconds (le64) and
 *              nanoseconds (le32), ctime seconds (le64) and nanoseconds (le32), rdev (le64):
 *              56 bytes (16, up to the mode, in images written before owners were kept);
 *   types 0x80-0xff  extended attributes: name length (u8), name, value; a name lives in
 *              the slot 0x80 + hash(name) % 128 or one of the next three (wrapping).
 * Program and read sizes matter to the format only at mkfs (commit padding, page size, both
 * recorded in the image: every commit says its padded length and the superblock the page
 * size), so an image is opened with IMAGE_PROG_SIZE whatever it was made with.
 * Never writes anything at open but what the engine's mount writes, never keeps an engine
 * file open past its vfs handle, and never calls the engine from two threads (the vfs is
 * single-threaded by contract).
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "petrel/bd.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/fs.h"
#include "petrel/hash.h"
#include "petrel/vfs.h"
#include "vfs/vfs_image.h"

#define ATTR_META 0x01
#define ATTR_XATTR_FIRST 0x80
#define ATTR_XATTR_SLOTS 128
#define XATTR_PROBES 4
/* Largest file of an image made by mkfs: the engine's largest, 4 GiB - 1 (files past 2 GiB,
 * as hosts and pjdfstest expect). */
#define IMAGE_FILE_MAX 0xffffffffu
#define META_SIZE 56
#define META_SIZE_V1 16

/* The image is read through a cache of whole blocks of at most this many bytes: metadata
 * logs are scanned in small pieces, and a host has the memory to read each block once. */
#define IMAGE_CACHE_BYTES (64u << 20)

struct image_vfs {
    struct petrel_bd bd;
    struct petrel_bd_file file;
    struct petrel_fs_config cfg;
    struct petrel_fs fs;
    int lock_fd; /* holds the flock on the image */
    void *cache; /* the device's block cache and its tags */
    uint32_t *cache_tags;
    struct petrel_fs_link *links; /* the engine's memory of pairs: one slot per two blocks */
    uint32_t *link_index;
    int (*fsync)(void *context); /* the device's own sync (fsync of the image) */
    uint32_t syncs_deferred;     /* engine syncs since the last fsync */
};

/* The engine syncs the device at the end of every operation; the image fsyncs every
 * IMAGE_SYNC_EVERY of them, on an explicit sync and at close. Each operation is atomic on
 * the image whatever reaches the disk, so a host crash loses at most the operations since the
 * last fsync, never the image (`petrel cp -r` of many small files would otherwise fsync per
 * file). */
#define IMAGE_SYNC_EVERY 1024u

static struct image_vfs *image_of_file(void *context)
{
    return (struct image_vfs *)(void *)((char *)context - offsetof(struct image_vfs, file));
}

static int image_bd_sync(void *context)
{
    struct image_vfs *im = image_of_file(context);
    if (++im->syncs_deferred < IMAGE_SYNC_EVERY) return 0;
    im->syncs_deferred = 0;
    return im->fsync(context);
}

static int image_fsync_now(struct image_vfs *im)
{
    im->syncs_deferred = 0;
    return im->fsync(im->bd.context);
}

/* Give the opened device a block cache (as large as the image, at most IMAGE_CACHE_BYTES). */
static int image_cache_init(struct image_vfs *im)
{
    uint64_t slots = IMAGE_CACHE_BYTES / im->file.block_size;
    if (im->file.block_count == 0) return -PT_EINVAL; /* the device never opens empty */
    if (slots > im->file.block_count) slots = im->file.block_count;
    if (slots == 0) slots = 1;
    im->cache = malloc((size_t)slots * im->file.block_size);
    im->cache_tags = malloc((size_t)slots * sizeof(uint32_t));
    im->links = malloc(((size_t)im->file.block_count / 2 + 1) * sizeof(*im->links));
    im->link_index = malloc((size_t)im->file.block_count * sizeof(uint32_t));
    if (!im->cache || !im->cache_tags || !im->links || !im->link_index) return -PT_ENOMEM;
    im->cfg.link_buffer = im->links;
    im->cfg.link_count = im->file.block_count / 2 + 1;
    im->cfg.link_index = im->link_index;
    return petrel_bd_file_set_cache(&im->file, im->cache, im->cache_tags, (uint32_t)slots);
}

static void image_cache_free(struct image_vfs *im)
{
    petrel_bd_file_set_cache(&im->file, NULL, NULL, 0);
    free(im->cache);
    free(im->cache_tags);
    free(im->links);
    free(im->link_index);
    im->cache = NULL;
    im->cache_tags = NULL;
    im->links = NULL;
    im->link_index = NULL;
}

struct petrel_vfs_file {
    struct petrel_fs_file f;
    char *path;
    int writable;
    int touched; /* mtime already set since open */
};

static struct image_vfs *image(struct petrel_vfs *vfs)
{
    return vfs->backend;
}

/* --- host metadata ---------------------------------------------------------------------- */

struct meta {
    int64_t sec; /* mtime */
    uint32_t nsec;
    uint32_t mode;
    uint32_t uid, gid; /* PETREL_VFS_ID_NONE: not kept (an older image) */
    int64_t asec, csec;
    uint32_t ansec, cnsec;
    uint64_t rdev;
};

static void meta_now(int64_t *sec, uint32_t *nsec)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *sec = ts.tv_sec;
    *nsec = (uint32_t)ts.tv_nsec;
}

/* Fresh metadata: all times now, no owner. */
static void meta_init(struct meta *m, uint32_t mode)
{
    memset(m, 0, sizeof(*m));
    meta_now(&m->sec, &m->nsec);
    m->asec = m->csec = m->sec;
    m->ansec = m->cnsec = m->nsec;
    m->mode = mode;
    m->uid = m->gid = PETREL_VFS_ID_NONE;
}

/* The root has no entry, so no attributes (engine: -PT_EINVAL); say so plainly. */
static int is_root(const char *path)
{
    while (*path == '/')
        path++;
    return *path == '\0';
}

static int meta_get(struct image_vfs *im, const char *path, struct meta *m)
{
    uint8_t b[META_SIZE];
    int64_t n;
    memset(m, 0, sizeof(*m));
    m->uid = m->gid = PETREL_VFS_ID_NONE;
    if (is_root(path)) return -PT_ENODATA;
    n = petrel_fs_getattr(&im->fs, path, ATTR_META, b, sizeof(b));
    if (n < 0) return (int)n;
    if (n != META_SIZE && n != META_SIZE_V1) return -PT_ENODATA;
    m->sec = (int64_t)pt_get_le64(b);
    m->nsec = pt_get_le32(b + 8);
    m->mode = pt_get_le32(b + 12);
    m->asec = m->csec = m->sec;
    m->ansec = m->cnsec = m->nsec;
    if (n == META_SIZE) {
        m->uid = pt_get_le32(b + 16);
        m->gid = pt_get_le32(b + 20);
        m->asec = (int64_t)pt_get_le64(b + 24);
        m->ansec = pt_get_le32(b + 32);
        m->csec = (int64_t)pt_get_le64(b + 36);
        m->cnsec = pt_get_le32(b + 44);
        m->rdev = pt_get_le64(b + 48);
    }
    return 0;
}

static int meta_set(struct image_vfs *im, const char *path, const struct meta *m)
{
    uint8_t b[META_SIZE];
    if (is_root(path)) return -PT_ENOTSUP;
    pt_put_le64(b, (uint64_t)m->sec);
    pt_put_le32(b + 8, m->nsec);
    pt_put_le32(b + 12, m->mode);
    pt_put_le32(b + 16, m->uid);
    pt_put_le32(b + 20, m->gid);
    pt_put_le64(b + 24, (uint64_t)m->asec);
    pt_put_le32(b + 32, m->ansec);
    pt_put_le64(b + 36, (uint64_t)m->csec);
    pt_put_le32(b + 44, m->cnsec);
    pt_put_le64(b + 48, m->rdev);
    return petrel_fs_setattr(&im->fs, path, ATTR_META, b, sizeof(b));
}

/* The default mode of an entry that has none recorded. */
static uint32_t meta_default_mode(uint8_t type)
{
    return type == PETREL_FS_REG ? 0644 : 0755;
}

/* The entry's metadata, or for an entry without any (created by an older tool, or an old
 * record without a mode) what it is shown with: the default mode, times now. */
static int meta_load(struct image_vfs *im, const char *path, struct meta *m)
{
    struct petrel_fs_info info;
    int rc = meta_get(im, path, m);
    if (rc == 0 && m->mode != 0) return 0;
    if (rc < 0 && rc != -PT_ENODATA) return rc;
    if (rc == 0 && m->uid != PETREL_VFS_ID_NONE) return 0; /* mode 0 set on purpose */
    rc = petrel_fs_stat(&im->fs, path, &info);
    if (rc < 0) return rc;
    if (m->sec == 0) meta_init(m, 0);
    m->mode = meta_default_mode(info.type);
    return 0;
}

/* Set the modification and change times to now, keeping the rest. */
static int meta_touch(struct image_vfs *im, const char *path)
{
    struct meta m;
    int rc = meta_load(im, path, &m);
    if (rc < 0) return rc;
    meta_now(&m.sec, &m.nsec);
    m.csec = m.sec;
    m.cnsec = m.nsec;
    return meta_set(im, path, &m);
}

/* A directory's entries changed: its mtime and ctime become now (the root keeps none). */
static void meta_touch_parent(struct image_vfs *im, const char *path)
{
    char parent[PETREL_VFS_PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(parent)) return;
    memcpy(parent, path, n + 1);
    while (n > 0 && parent[n - 1] != '/')
        n--;
    while (n > 0 && parent[n - 1] == '/')
        n--;
    parent[n] = '\0';
    if (n == 0) return;
    meta_touch(im, parent); /* best effort: the change itself is done */
}

/* --- operations ------------------------------------------------------------------------- */

static void fill_stat(struct image_vfs *im, const char *path, const struct petrel_fs_info *info,
                      struct petrel_vfs_stat *st)
{
    struct meta m;
    memset(st, 0, sizeof(*st));
    st->type = info->type >= PETREL_FS_REG && info->type <= PETREL_FS_BLK ? info->type
                                                                           : PETREL_VFS_REG;
    st->size = info->type == PETREL_FS_DIR ? 0 : info->size;
    st->uid = st->gid = PETREL_VFS_ID_NONE;
    if (meta_get(im, path, &m) == 0) {
        st->mtime_sec = m.sec;
        st->mtime_nsec = m.nsec;
        st->mode = m.mode & 07777;
        if (st->mode == 0 && m.uid == PETREL_VFS_ID_NONE) st->mode = meta_default_mode(info->type);
        st->uid = m.uid;
        st->gid = m.gid;
        st->atime_sec = m.asec;
        st->atime_nsec = m.ansec;
        st->ctime_sec = m.csec;
        st->ctime_nsec = m.cnsec;
        if (st->type == PETREL_VFS_CHR || st->type == PETREL_VFS_BLK) st->rdev = m.rdev;
        return;
    }
    if (!st->mode)
        st->mode = st->type == PETREL_VFS_DIR || st->type == PETREL_VFS_LNK ? 0755 : 0644;
}

static int image_stat(struct petrel_vfs *vfs, const char *path, struct petrel_vfs_stat *st)
{
    struct petrel_fs_info info;
    int rc = petrel_fs_stat(&image(vfs)->fs, path, &info);
    if (rc < 0) return rc;
    fill_stat(image(vfs), path, &info, st);
    return 0;
}

static int image_readdir(struct petrel_vfs *vfs, const char *path, petrel_vfs_dir_fn fn, void *ctx)
{
    struct image_vfs *im = image(vfs);
    struct petrel_fs_dir dir;
    struct petrel_fs_info info;
    int rc = petrel_fs_dir_open(&im->fs, &dir, path);
    if (rc < 0) return rc;
    for (;;) {
        char child[PETREL_VFS_PATH_MAX];
        struct petrel_vfs_stat st;
        rc = petrel_fs_dir_read(&im->fs, &dir, &info);
        if (rc <= 0) break;
        memset(&st, 0, sizeof(st));
        if (petrel_vfs_path_join(child, sizeof(child), path, info.name) < 0) {
            rc = -PT_ENAMETOOLONG;
            break;
        }
        fill_stat(im, child, &info, &st);
        rc = fn(ctx, info.name, &st);
        if (rc) break;
    }
    petrel_fs_dir_close(&im->fs, &dir);
    return rc;
}

static int image_mkdir(struct petrel_vfs *vfs, const char *path)
{
    int rc = petrel_fs_mkdir(&image(vfs)->fs, path);
    if (rc == 0) {
        struct meta m;
        meta_init(&m, 0755);
        meta_set(image(vfs), path, &m); /* best effort: the directory exists either way */
        meta_touch_parent(image(vfs), path);
    }
    return rc;
}

static int image_remove(struct petrel_vfs *vfs, const char *path)
{
    int rc = petrel_fs_remove(&image(vfs)->fs, path);
    if (rc == 0) meta_touch_parent(image(vfs), path);
    return rc;
}

static int image_rename(struct petrel_vfs *vfs, const char *from, const char *to)
{
    struct image_vfs *im = image(vfs);
    int rc = petrel_fs_rename(&im->fs, from, to);
    if (rc == 0 && strcmp(from, to) != 0) {
        struct meta m;
        /* the entry's attributes moved with it: its ctime changes, and both parents' */
        if (meta_get(im, to, &m) == 0) {
            meta_now(&m.csec, &m.cnsec);
            meta_set(im, to, &m);
        }
        meta_touch_parent(im, from);
        meta_touch_parent(im, to);
    }
    return rc;
}

static int image_open(struct petrel_vfs *vfs, const char *path, int flags,
                      struct petrel_vfs_file **out)
{
    struct image_vfs *im = image(vfs);
    struct petrel_vfs_file *f;
    int fsflags = 0, rc, created = 0;
    struct petrel_fs_info info;
    if ((flags & PETREL_VFS_O_READ) && (flags & PETREL_VFS_O_WRITE))
        fsflags = PETREL_O_RDWR;
    else if (flags & PETREL_VFS_O_WRITE)
        fsflags = PETREL_O_WRONLY;
    else
        fsflags = PETREL_O_RDONLY;
    if (flags & PETREL_VFS_O_CREAT) {
        fsflags |= PETREL_O_CREAT;
        created = petrel_fs_stat(&im->fs, path, &info) == -PT_ENOENT;
    }
    if (flags & PETREL_VFS_O_EXCL) fsflags |= PETREL_O_EXCL;
    if (flags & PETREL_VFS_O_TRUNC) fsflags |= PETREL_O_TRUNC;
    f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return -PT_ENOMEM;
    }
    rc = petrel_fs_file_open(&im->fs, &f->f, path, fsflags);
    if (rc < 0) {
        free(f->path);
        free(f);
        return rc;
    }
    f->writable = (flags & PETREL_VFS_O_WRITE) != 0;
    if (created || (flags & PETREL_VFS_O_TRUNC)) {
        f->touched = 1;
        meta_touch(im, path); /* best effort */
        if (created) meta_touch_parent(im, path);
    }
    *out = f;
    return 0;
}

static int64_t image_read(struct petrel_vfs *vfs, struct petrel_vfs_file *f, void *buf,
                          uint64_t size, uint64_t off)
{
    struct image_vfs *im = image(vfs);
    int64_t rc = petrel_fs_file_seek(&im->fs, &f->f, (int64_t)off, PETREL_SEEK_SET);
    if (rc < 0) return rc;
    return petrel_fs_file_read(&im->fs, &f->f, buf, size);
}

static int64_t image_write(struct petrel_vfs *vfs, struct petrel_vfs_file *f, const void *buf,
                           uint64_t size, uint64_t off)
{
    struct image_vfs *im = image(vfs);
    int64_t rc = petrel_fs_file_seek(&im->fs, &f->f, (int64_t)off, PETREL_SEEK_SET);
    if (rc < 0) return rc;
    rc = petrel_fs_file_write(&im->fs, &f->f, buf, size);
    /* The first write of an open session dates the file; a later set_mtime (tar, cp -p)
     * then wins, whatever order the close and the set_mtime reach us in. */
    if (rc > 0 && !f->touched) {
        f->touched = 1;
        meta_touch(im, f->path);
    }
    return rc;
}

static int image_truncate(struct petrel_vfs *vfs, struct petrel_vfs_file *f, uint64_t size)
{
    struct image_vfs *im = image(vfs);
    int rc = petrel_fs_file_truncate(&im->fs, &f->f, size);
    if (rc == 0 && !f->touched) {
        f->touched = 1;
        meta_touch(im, f->path);
    }
    return rc;
}

static int image_fstat(struct petrel_vfs *vfs, struct petrel_vfs_file *f,
                       struct petrel_vfs_stat *st)
{
    struct image_vfs *im = image(vfs);
    struct petrel_fs_info info;
    int64_t size = petrel_fs_file_size(&im->fs, &f->f);
    if (size < 0) return (int)size;
    memset(&info, 0, sizeof(info));
    info.type = PETREL_FS_REG;
    info.size = (uint64_t)size;
    fill_stat(im, f->path, &info, st);
    return 0;
}

static int image_sync(struct petrel_vfs *vfs, struct petrel_vfs_file *f)
{
    int rc;
    if (!f->writable) return 0;
    rc = petrel_fs_file_sync(&image(vfs)->fs, &f->f);
    return rc < 0 ? rc : image_fsync_now(image(vfs));
}

static int image_close(struct petrel_vfs *vfs, struct petrel_vfs_file *f, int abandon)
{
    int rc = petrel_fs_file_close(&image(vfs)->fs, &f->f);
    free(f->path);
    free(f);
    return rc;
}

static int image_statfs(struct petrel_vfs *vfs, struct petrel_vfs_statfs *st)
{
    struct image_vfs *im = image(vfs);
    struct petrel_fs_fsinfo info;
    int64_t used;
    int rc = petrel_fs_fsinfo(&im->fs, &info);
    if (rc < 0) return rc;
    used = petrel_fs_usage(&im->fs);
    if (used < 0) return (int)used;
    st->block_size = info.block_size;
    st->blocks_total = info.block_count;
    st->blocks_used = (uint64_t)used;
    st->name_max = info.name_max;
    return 0;
}

static int image_set_mtime(struct petrel_vfs *vfs, const char *path, int64_t sec, uint32_t nsec)
{
    struct image_vfs *im = image(vfs);
    struct meta m;
    int rc = meta_load(im, path, &m);
    if (rc < 0) return rc;
    m.sec = sec;
    m.nsec = nsec;
    return meta_set(im, path, &m);
}

static int image_set_mode(struct petrel_vfs *vfs, const char *path, uint32_t mode)
{
    struct image_vfs *im = image(vfs);
    struct meta m;
    int rc = meta_load(im, path, &m);
    if (rc < 0) return rc;
    m.mode = mode & 07777;
    return meta_set(im, path, &m);
}

static int image_setattr(struct petrel_vfs *vfs, const char *path, const struct petrel_vfs_attr *a)
{
    struct image_vfs *im = image(vfs);
    struct meta m;
    int rc = meta_load(im, path, &m);
    if (rc < 0) return rc;
    if (a->valid & PETREL_VFS_SET_MODE) m.mode = a->mode & 07777;
    if (a->valid & PETREL_VFS_SET_UID) m.uid = a->uid;
    if (a->valid & PETREL_VFS_SET_GID) m.gid = a->gid;
    if (a->valid & PETREL_VFS_SET_ATIME) {
        m.asec = a->atime_sec;
        m.ansec = a->atime_nsec;
    }
    if (a->valid & PETREL_VFS_SET_MTIME) {
        m.sec = a->mtime_sec;
        m.nsec = a->mtime_nsec;
    }
    if (a->valid & PETREL_VFS_SET_CTIME) {
        m.csec = a->ctime_sec;
        m.cnsec = a->ctime_nsec;
    } else {
        meta_now(&m.csec, &m.cnsec);
    }
    return meta_set(im, path, &m);
}

static int image_mknod(struct petrel_vfs *vfs, const char *path, const struct petrel_vfs_node *n)
{
    struct image_vfs *im = image(vfs);
    struct meta m;
    int rc = petrel_fs_mknod(&im->fs, path, n->type);
    if (rc < 0) return rc;
    if (n->type == PETREL_VFS_LNK) {
        struct petrel_fs_file f;
        size_t len = strlen(n->target);
        rc = petrel_fs_file_open(&im->fs, &f, path, PETREL_O_WRONLY);
        if (rc == 0) {
            int64_t w = petrel_fs_file_write(&im->fs, &f, n->target, len);
            rc = petrel_fs_file_close(&im->fs, &f);
            if (w < 0) rc = (int)w;
        }
    }
    if (rc == 0) {
        meta_init(&m, n->mode & 07777);
        m.uid = n->uid;
        m.gid = n->gid;
        m.rdev = n->type == PETREL_VFS_CHR || n->type == PETREL_VFS_BLK ? n->rdev : 0;
        rc = meta_set(im, path, &m);
    }
    if (rc < 0) {
        petrel_fs_remove(&im->fs, path); /* no half-made node stays */
        return rc;
    }
    meta_touch_parent(im, path);
    return 0;
}

static int64_t image_readlink(struct petrel_vfs *vfs, const char *path, char *buf, uint64_t size)
{
    struct image_vfs *im = image(vfs);
    struct petrel_fs_info info;
    struct petrel_fs_file f;
    int64_t n, len;
    int rc = petrel_fs_stat(&im->fs, path, &info);
    if (rc < 0) return rc;
    if (info.type != PETREL_FS_SYMLINK) return -PT_EINVAL;
    rc = petrel_fs_file_open(&im->fs, &f, path, PETREL_O_RDONLY);
    if (rc < 0) return rc;
    len = petrel_fs_file_size(&im->fs, &f);
    n = size ? petrel_fs_file_read(&im->fs, &f, buf, size) : 0;
    rc = petrel_fs_file_close(&im->fs, &f);
    if (n < 0) return n;
    if (rc < 0) return rc;
    return len;
}

/* --- extended attributes ----------------------------------------------------------------- */

/* Find the slot holding name (returns its type) or, with free_slot, the first free slot of
 * its probe run. buf receives the stored attribute (attr_max bytes). */
static int xattr_find(struct image_vfs *im, const char *path, const char *name, uint8_t *buf,
                      uint32_t bufsize, int64_t *len, int *free_slot)
{
    size_t nlen = strlen(name);
    uint32_t start = petrel_hash32(name, nlen, 0) % ATTR_XATTR_SLOTS, i;
    if (free_slot) *free_slot = -1;
    if (is_root(path)) return -PT_ENODATA;
    for (i = 0; i < XATTR_PROBES; i++) {
        int type = ATTR_XATTR_FIRST + (int)((start + i) % ATTR_XATTR_SLOTS);
        int64_t n = petrel_fs_getattr(&im->fs, path, (uint8_t)type, buf, bufsize);
        if (n == -PT_ENODATA) {
            if (free_slot && *free_slot < 0) *free_slot = type;
            continue;
        }
        if (n < 0) return (int)n;
        if (n >= 1 && buf[0] == nlen && (uint64_t)n >= 1 + nlen &&
            memcmp(buf + 1, name, nlen) == 0) {
            *len = n;
            return type;
        }
    }
    return -PT_ENODATA;
}

static int64_t image_getxattr(struct petrel_vfs *vfs, const char *path, const char *name, void *out,
                              uint64_t size)
{
    struct image_vfs *im = image(vfs);
    uint8_t buf[PETREL_FS_ATTR_MAX_DEFAULT + 1];
    int64_t len = 0;
    size_t nlen = strlen(name);
    int rc;
    if (nlen == 0 || nlen > 255) return -PT_ERANGE;
    rc = xattr_find(im, path, name, buf, sizeof(buf), &len, NULL);
    if (rc < 0) return rc;
    len -= 1 + (int64_t)nlen;
    if (size == 0) return len;
    if ((uint64_t)len > size) return -PT_ERANGE;
    memcpy(out, buf + 1 + nlen, (size_t)len);
    return len;
}

static int image_setxattr(struct petrel_vfs *vfs, const char *path, const char *name,
                          const void *value, uint64_t size, int flags)
{
    struct image_vfs *im = image(vfs);
    uint8_t buf[PETREL_FS_ATTR_MAX_DEFAULT + 1];
    int64_t len = 0;
    size_t nlen = strlen(name);
    int type, free_slot;
    if (nlen == 0 || nlen > 255) return -PT_ERANGE;
    if (is_root(path)) return -PT_ENOTSUP;
    if (1 + nlen + size > im->fs.attr_max || 1 + nlen + size > sizeof(buf)) return -PT_ENOSPC;
    type = xattr_find(im, path, name, buf, sizeof(buf), &len, &free_slot);
    if (type < 0 && type != -PT_ENODATA) return type;
    if (type >= 0 && (flags & PETREL_VFS_XATTR_CREATE)) return -PT_EEXIST;
    if (type < 0 && (flags & PETREL_VFS_XATTR_REPLACE)) return -PT_ENODATA;
    if (type < 0) {
        if (free_slot < 0) return -PT_ENOSPC; /* its probe run is full */
        type = free_slot;
    }
    buf[0] = (uint8_t)nlen;
    memcpy(buf + 1, name, nlen); /* NOLINT(bugprone-not-null-terminated-result): length-prefixed */
    if (size) memcpy(buf + 1 + nlen, value, (size_t)size);
    return petrel_fs_setattr(&im->fs, path, (uint8_t)type, buf, (uint32_t)(1 + nlen + size));
}

static int image_removexattr(struct petrel_vfs *vfs, const char *path, const char *name)
{
    struct image_vfs *im = image(vfs);
    uint8_t buf[PETREL_FS_ATTR_MAX_DEFAULT + 1];
    int64_t len = 0;
    int type;
    if (strlen(name) == 0 || strlen(name) > 255) return -PT_ERANGE;
    type = xattr_find(im, path, name, buf, sizeof(buf), &len, NULL);
    if (type < 0) return type;
    return petrel_fs_removeattr(&im->fs, path, (uint8_t)type);
}

static int64_t image_listxattr(struct petrel_vfs *vfs, const char *path, char *out, uint64_t size)
{
    struct image_vfs *im = image(vfs);
    uint8_t buf[PETREL_FS_ATTR_MAX_DEFAULT + 1];
    uint64_t total = 0;
    int type;
    struct petrel_fs_info info;
    int rc = petrel_fs_stat(&im->fs, path, &info);
    if (rc < 0) return rc;
    if (is_root(path)) return 0;
    for (type = ATTR_XATTR_FIRST; type < ATTR_XATTR_FIRST + ATTR_XATTR_SLOTS; type++) {
        int64_t n = petrel_fs_getattr(&im->fs, path, (uint8_t)type, buf, sizeof(buf));
        if (n == -PT_ENODATA) continue;
        if (n < 0) return n;
        if (n < 1 || (int64_t)buf[0] + 1 > n || buf[0] == 0) continue; /* not ours */
        if (size) {
            if (total + buf[0] + 1 > size) return -PT_ERANGE;
            memcpy(out + total, buf + 1, buf[0]);
            out[total + buf[0]] = '\0';
        }
        total += buf[0] + 1u;
    }
    return (int64_t)total;
}

/* --- open, format, close ------------------------------------------------------------------ */

static int image_destroy(struct petrel_vfs *vfs)
{
    struct image_vfs *im = image(vfs);
    /* every change of the session on the disk before the engine's clean mount-state record
     * (docs/SPEC-FS.md 3.1), whose unmount sync would otherwise be deferred */
    int rc = image_fsync_now(im);
    int rc1 = petrel_fs_unmount(&im->fs);
    int rc2 = petrel_bd_file_close(&im->file);
    image_cache_free(im);
    close(im->lock_fd);
    free(im);
    free(vfs);
    return rc < 0 ? rc : rc1 < 0 ? rc1 : rc2;
}

static const struct petrel_vfs_ops image_ops = {
    .name = "image",
    .stat = image_stat,
    .readdir = image_readdir,
    .mkdir = image_mkdir,
    .remove = image_remove,
    .rename = image_rename,
    .open = image_open,
    .read = image_read,
    .write = image_write,
    .truncate = image_truncate,
    .fstat = image_fstat,
    .sync = image_sync,
    .close = image_close,
    .statfs = image_statfs,
    .set_mtime = image_set_mtime,
    .set_mode = image_set_mode,
    .getxattr = image_getxattr,
    .setxattr = image_setxattr,
    .removexattr = image_removexattr,
    .listxattr = image_listxattr,
    .destroy = image_destroy,
    .setattr = image_setattr,
    .mknod = image_mknod,
    .readlink = image_readlink,
};

/* The version of the last image refused with -PT_EVERSION (petrel_vfs_image_refused_version). */
static uint32_t image_refused_version;

/* Open the device with one geometry and try to mount; on failure everything is closed. */
static int try_mount(struct image_vfs *im, const char *path, uint32_t read_size, uint32_t prog_size,
                     uint32_t block_size)
{
    int rc = petrel_bd_file_open(&im->bd, &im->file, path, 0, read_size, prog_size, block_size, 0,
                                 IMAGE_ERASE_VALUE);
    if (rc < 0) return rc;
    memset(&im->cfg, 0, sizeof(im->cfg));
    im->cfg.bd = &im->bd;
    im->cfg.block_cycles = IMAGE_BLOCK_CYCLES;
    im->cfg.cache_size = block_size; /* a host has the RAM: whole-block caches */
    /* a lookahead window over the whole device: one walk finds every free block (and fsck
     * checks double use in one pass) */
    im->cfg.lookahead_size = ((im->file.block_count + 63) / 64) * 8;
    im->fsync = im->bd.sync;
    im->bd.sync = image_bd_sync;
    /* the engine's first sync of a session follows its dirty mark (docs/SPEC-FS.md 3.1):
     * that one reaches the disk before anything the session writes next */
    im->syncs_deferred = IMAGE_SYNC_EVERY - 1;
    rc = image_cache_init(im);
    if (rc == 0) rc = petrel_fs_mount(&im->fs, &im->cfg);
    if (rc < 0) {
        if (rc == -PT_EVERSION) image_refused_version = im->fs.image_version;
        petrel_bd_file_close(&im->file);
        image_cache_free(im);
        return rc;
    }
    return 0;
}

uint32_t petrel_vfs_image_refused_version(void)
{
    return image_refused_version;
}

/*
 * Mount an image whose block size is not known in advance: 4096 first, then every power of
 * two from 128 B to 1 MiB that divides the image; the superblock must agree (the engine
 * refuses a block size other than the one it records).
 */
static int mount_any(struct image_vfs *im, const char *path, uint64_t image_size)
{
    int rc = -PT_ECORRUPT;
    uint32_t bs;
    for (bs = 0; bs <= (1u << 20); bs = bs ? bs << 1 : 128) {
        uint32_t block = bs ? bs : IMAGE_BLOCK_SIZE;
        int r;
        if ((bs && bs == IMAGE_BLOCK_SIZE) || image_size < 6ull * block || image_size % block)
            continue;
        r = try_mount(im, path, IMAGE_READ_SIZE, IMAGE_PROG_SIZE, block);
        if (r == 0) return 0;
        if (r == -PT_ENOENT || r == -PT_EACCES || r == -PT_EVERSION || r == -PT_ENOMEM) return r;
        if (r != -PT_EINVAL) rc = r;
    }
    return rc;
}

int petrel_vfs_image_open(const char *path, int flags, struct petrel_vfs **out)
{
    struct petrel_vfs *vfs;
    struct image_vfs *im;
    struct stat st;
    int rc;
    *out = NULL;
    if (stat(path, &st) < 0) return errno == ENOENT ? -PT_ENOENT : -PT_EIO;
    if (S_ISDIR(st.st_mode)) return -PT_EISDIR;
    vfs = calloc(1, sizeof(*vfs));
    im = calloc(1, sizeof(*im));
    if (!vfs || !im) {
        free(vfs);
        free(im);
        return -PT_ENOMEM;
    }
    if (S_ISBLK(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        off_t end = fd < 0 ? -1 : lseek(fd, 0, SEEK_END);
        if (fd >= 0) close(fd);
        st.st_size = end < 0 ? 0 : end;
    }
    /* One writer or several readers: a second writer would corrupt the image. The lock is
     * taken before mount, which may itself write (finishing a half-done rename). */
    im->lock_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (im->lock_fd < 0) {
        rc = errno == EACCES ? -PT_EACCES : -PT_EIO;
        free(vfs);
        free(im);
        return rc;
    }
    if (flock(im->lock_fd, ((flags & PETREL_VFS_MOUNT_READ_ONLY) ? LOCK_SH : LOCK_EX) | LOCK_NB) <
        0) {
        close(im->lock_fd);
        free(vfs);
        free(im);
        return -PT_EBUSY;
    }
    rc = mount_any(im, path, (uint64_t)st.st_size);
    if (rc < 0) {
        close(im->lock_fd);
        free(vfs);
        free(im);
        return rc;
    }
    vfs->ops = &image_ops;
    vfs->backend = im;
    vfs->caps = PETREL_VFS_CAP_XATTR | PETREL_VFS_CAP_RANDOM_WRITE | PETREL_VFS_CAP_MTIME |
                PETREL_VFS_CAP_MODE | PETREL_VFS_CAP_OWNER | PETREL_VFS_CAP_NODES;
    if (flags & PETREL_VFS_MOUNT_READ_ONLY) vfs->caps |= PETREL_VFS_CAP_READ_ONLY;
    snprintf(vfs->label, sizeof(vfs->label), "%s", path);
    *out = vfs;
    return 0;
}

struct petrel_fs *petrel_vfs_image_fs(struct petrel_vfs *vfs)
{
    if (!vfs || vfs->ops != &image_ops) return NULL;
    return &image(vfs)->fs;
}

int petrel_vfs_image_format(const char *path, uint64_t size, uint32_t block_size,
                            uint32_t prog_size, uint32_t read_size)
{
    struct image_vfs *im;
    struct stat st;
    uint64_t count;
    int rc, rc2, exists = stat(path, &st) == 0;
    if (!block_size || !prog_size || !read_size || block_size % prog_size || block_size % read_size)
        return -PT_EINVAL;
    if (exists && S_ISBLK(st.st_mode)) size = 0; /* the device decides */
    if (!exists || S_ISREG(st.st_mode)) {
        if (size == 0 || size % block_size) return -PT_EINVAL;
        count = size / block_size;
        if (count < 2 || count > UINT32_MAX) return -PT_EINVAL;
    } else if (!S_ISBLK(st.st_mode)) {
        return -PT_EINVAL;
    } else {
        count = 0;
    }
    im = calloc(1, sizeof(*im));
    if (!im) return -PT_ENOMEM;
    im->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (im->lock_fd < 0 || flock(im->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rc = im->lock_fd < 0 ? (errno == EACCES   ? -PT_EACCES
                                : errno == ENOENT ? -PT_ENOENT
                                                  : -PT_EIO)
                             : -PT_EBUSY;
        if (im->lock_fd >= 0) close(im->lock_fd);
        free(im);
        return rc;
    }
    /* An existing regular file is reformatted at the new size: start from an empty file of
     * erased bytes, so no old data survives past the end or in unused blocks. */
    if (exists && S_ISREG(st.st_mode) && ftruncate(im->lock_fd, 0) < 0) {
        close(im->lock_fd);
        free(im);
        return -PT_EIO;
    }
    rc = petrel_bd_file_open(&im->bd, &im->file, path, 1, read_size, prog_size, block_size,
                             (uint32_t)count, IMAGE_ERASE_VALUE);
    if (rc < 0) {
        if (!exists) unlink(path);
        close(im->lock_fd);
        free(im);
        return rc;
    }
    im->cfg.bd = &im->bd;
    im->cfg.block_cycles = IMAGE_BLOCK_CYCLES;
    im->cfg.file_max = IMAGE_FILE_MAX;
    rc = image_cache_init(im);
    if (rc == 0) rc = petrel_fs_format(&im->fs, &im->cfg);
    if (rc == 0) rc = petrel_fs_mount(&im->fs, &im->cfg); /* prove it mounts */
    if (rc == 0) rc = petrel_fs_unmount(&im->fs);
    rc2 = petrel_bd_file_close(&im->file);
    image_cache_free(im);
    if (rc == 0) rc = rc2;
    if (rc < 0 && !exists) unlink(path); /* leave nothing behind that was not there */
    close(im->lock_fd);
    free(im);
    return rc;
}
