/*
 * The block store on disk (see blocks.h; format in docs/PROTOCOL.md, "Block file"). Owns the
 * block file layout, the durable write sequence, verified reads and erases. It never makes a
 * block visible under its final name before its bytes are on stable storage and read back
 * correct, never returns a byte from a page whose CRC failed, and never trusts a header field
 * (size, page count, id) from disk without checking it. Safe to call from several threads for
 * different blocks; it holds no state beyond the directory name and the service id.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cluster/blocks/blocks.h"
#include "cluster/net/durable.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define PATH_CAP 4096

static atomic_uint_fast64_t temp_counter;

struct block_header {
    uint64_t block_id;
    uint32_t size;
    uint32_t crc;
    uint32_t pages;
};

static void header_encode(uint8_t *out, const struct block_header *h)
{
    pt_put_le32(out, PT_BLOCK_FILE_MAGIC);
    pt_put_le32(out + 4, PT_BLOCK_FILE_VERSION);
    pt_put_le64(out + 8, h->block_id);
    pt_put_le32(out + 16, h->size);
    pt_put_le32(out + 20, h->crc);
    pt_put_le32(out + 24, h->pages);
    pt_put_le32(out + 28, petrel_crc32c(0, out, 28));
}

static int header_decode(const uint8_t *in, uint64_t want_id, struct block_header *h)
{
    if (pt_get_le32(in) != PT_BLOCK_FILE_MAGIC || pt_get_le32(in + 4) != PT_BLOCK_FILE_VERSION ||
        pt_get_le32(in + 28) != petrel_crc32c(0, in, 28))
        return -PT_ECORRUPT;
    h->block_id = pt_get_le64(in + 8);
    h->size = pt_get_le32(in + 16);
    h->crc = pt_get_le32(in + 20);
    h->pages = pt_get_le32(in + 24);
    if (h->block_id != want_id || h->size > PT_BLOCK_MAX_SIZE ||
        h->pages != pt_block_pages(h->size))
        return -PT_ECORRUPT;
    return 0;
}

static int read_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return pt_errno_to_pt(errno);
        if (r == 0) return -PT_ECORRUPT; /* the file is shorter than its header says */
        done += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t w = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return pt_errno_to_pt(errno);
        done += (size_t)w;
    }
    return 0;
}

int pt_blocks_store_path(const struct pt_blocks_store *s, uint64_t block_id, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/blocks/%02x/%016" PRIx64 ".blk", s->dir,
                     (unsigned)(block_id & 0xff), block_id);
    return n < 0 || (size_t)n >= cap ? -PT_ENAMETOOLONG : 0;
}

static int subdir_path(const struct pt_blocks_store *s, uint64_t block_id, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/blocks/%02x", s->dir, (unsigned)(block_id & 0xff));
    return n < 0 || (size_t)n >= cap ? -PT_ENAMETOOLONG : 0;
}

static int load_or_create_id(struct pt_blocks_store *s)
{
    char path[PATH_CAP];
    uint8_t *buf, rec[16];
    size_t len;
    int err;
    snprintf(path, sizeof(path), "%s/%s", s->dir, PT_BLOCKS_ID_FILE);
    err = pt_read_file(path, 64, &buf, &len);
    if (err == 0) {
        if (len != 16 || pt_get_le32(buf) != PT_BLOCKS_ID_MAGIC ||
            pt_get_le32(buf + 12) != petrel_crc32c(0, buf, 12) || pt_get_le64(buf + 4) == 0)
            err = -PT_ECORRUPT;
        else
            s->service_id = pt_get_le64(buf + 4);
        free(buf);
        return err;
    }
    if (err != -PT_ENOENT) return err;
    do {
        if (getrandom(&s->service_id, sizeof(s->service_id), 0) != sizeof(s->service_id))
            return -PT_EIO;
    } while (s->service_id == 0);
    pt_put_le32(rec, PT_BLOCKS_ID_MAGIC);
    pt_put_le64(rec + 4, s->service_id);
    pt_put_le32(rec + 12, petrel_crc32c(0, rec, 12));
    return pt_durable_write_file(s->dir, PT_BLOCKS_ID_FILE, rec, sizeof(rec));
}

static void remove_temp_files(const char *tmpdir)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

int pt_blocks_store_open(const char *dir, struct pt_blocks_store *out)
{
    char path[PATH_CAP];
    int err, i, created = 0;
    memset(out, 0, sizeof(*out));
    if (strlen(dir) > PATH_CAP - 64) return -PT_ENAMETOOLONG;
    out->dir = strdup(dir);
    if (!out->dir) return -PT_ENOMEM;
    snprintf(path, sizeof(path), "%s/blocks", dir);
    err = pt_mkdir_p(path);
    /* The 256 subdirectories: created with plain mkdir, then one fsync of blocks/ makes every
     * new entry durable (pt_mkdir_p would sync blocks/ once per subdirectory). */
    for (i = 0; !err && i < 256; i++) {
        snprintf(path, sizeof(path), "%s/blocks/%02x", dir, (unsigned)i);
        if (mkdir(path, 0755) == 0)
            created++;
        else if (errno != EEXIST)
            err = pt_errno_to_pt(errno);
    }
    if (!err && created) {
        snprintf(path, sizeof(path), "%s/blocks", dir);
        err = pt_dir_fsync(path);
    }
    if (!err) {
        snprintf(path, sizeof(path), "%s/tmp", dir);
        err = pt_mkdir_p(path);
        if (!err) remove_temp_files(path);
    }
    if (!err) err = load_or_create_id(out);
    if (err) {
        free(out->dir);
        out->dir = NULL;
    }
    return err;
}

void pt_blocks_store_close(struct pt_blocks_store *s)
{
    free(s->dir);
    s->dir = NULL;
}

uint64_t pt_blocks_store_capacity(const struct pt_blocks_store *s)
{
    struct statvfs v;
    if (statvfs(s->dir, &v) != 0) return 0;
    return (uint64_t)v.f_blocks * v.f_frsize;
}

static int read_header_fd(int fd, uint64_t block_id, struct block_header *h)
{
    uint8_t raw[PT_BLOCK_FILE_HEADER];
    int err = read_full(fd, raw, sizeof(raw), 0);
    if (err) return err;
    return header_decode(raw, block_id, h);
}

int pt_blocks_store_stat(struct pt_blocks_store *s, uint64_t block_id, struct pt_block_stat *out)
{
    char path[PATH_CAP];
    struct block_header h;
    int fd, err = pt_blocks_store_path(s, block_id, path, sizeof(path));
    if (err) return err;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pt_errno_to_pt(errno);
    err = read_header_fd(fd, block_id, &h);
    close(fd);
    if (err) return err;
    out->block_id = block_id;
    out->size = h.size;
    out->crc = h.crc;
    return 0;
}

int pt_blocks_store_scan(struct pt_blocks_store *s,
                         void (*fn)(void *ctx, const struct pt_block_stat *st), void *ctx)
{
    char path[PATH_CAP];
    int i;
    for (i = 0; i < 256; i++) {
        DIR *d;
        struct dirent *e;
        snprintf(path, sizeof(path), "%s/blocks/%02x", s->dir, (unsigned)i);
        d = opendir(path);
        if (!d) return pt_errno_to_pt(errno);
        while ((e = readdir(d)) != NULL) {
            struct pt_block_stat st;
            char *end;
            uint64_t id;
            if (strlen(e->d_name) != 20 || strcmp(e->d_name + 16, ".blk") != 0) continue;
            id = strtoull(e->d_name, &end, 16);
            if (end != e->d_name + 16) continue;
            /* A block whose header is unreadable is skipped; a scrub finds it by its name. */
            if (pt_blocks_store_stat(s, id, &st) == 0) fn(ctx, &st);
        }
        closedir(d);
    }
    return 0;
}

/* Read a written temp file back and compare every page CRC and the header with what we meant. */
static int verify_written(int fd, const uint8_t *header, const uint8_t *crcs, uint32_t pages,
                          uint32_t size)
{
    uint8_t raw[PT_BLOCK_FILE_HEADER];
    uint8_t *buf = malloc((size_t)PT_BLOCK_PAGE_SIZE * 16);
    uint8_t *table = malloc((size_t)pages * 4 + 1);
    uint64_t data_off = PT_BLOCK_FILE_HEADER + (uint64_t)pages * 4;
    uint32_t page = 0;
    int err = (!buf || !table) ? -PT_ENOMEM : 0;
    if (!err) err = read_full(fd, raw, sizeof(raw), 0);
    if (!err && memcmp(raw, header, sizeof(raw)) != 0) err = -PT_ECORRUPT;
    if (!err && pages) err = read_full(fd, table, (size_t)pages * 4, PT_BLOCK_FILE_HEADER);
    if (!err && pages && memcmp(table, crcs, (size_t)pages * 4) != 0) err = -PT_ECORRUPT;
    while (!err && page < pages) {
        uint32_t off = page * PT_BLOCK_PAGE_SIZE;
        uint32_t chunk = PT_MIN(size - off, PT_BLOCK_PAGE_SIZE * 16), i;
        err = read_full(fd, buf, chunk, data_off + off);
        for (i = 0; !err && i * PT_BLOCK_PAGE_SIZE < chunk; i++, page++) {
            uint32_t n = PT_MIN(PT_BLOCK_PAGE_SIZE, chunk - i * PT_BLOCK_PAGE_SIZE);
            if (petrel_crc32c(0, buf + (size_t)i * PT_BLOCK_PAGE_SIZE, n) !=
                pt_get_le32(crcs + (size_t)4 * page))
                err = -PT_ECORRUPT;
        }
    }
    /* Nothing may follow the data. */
    if (!err) {
        struct stat st;
        if (fstat(fd, &st) != 0)
            err = pt_errno_to_pt(errno);
        else if ((uint64_t)st.st_size != data_off + size)
            err = -PT_ECORRUPT;
    }
    free(buf);
    free(table);
    return err;
}

/*
 * Whether the stored block, whose header already claims (crc, size), is whole: every page
 * verifies and the page CRCs combine to crc. 0, -PT_ECORRUPT, or another error.
 */
static int stored_block_whole(struct pt_blocks_store *s, uint64_t block_id, uint32_t crc,
                              uint32_t size)
{
    struct pt_block_read_resp r;
    struct pt_cursor c;
    uint8_t *body;
    size_t len;
    uint32_t i, whole = 0;
    int err = pt_blocks_store_read(s, block_id, 0, size, &body, &len);
    if (err) return err;
    pt_cursor_init(&c, body, len);
    pt_block_dec_read_resp(&c, &r);
    for (i = 0; pt_cursor_ok(&c) && i < r.pages; i++)
        whole = petrel_crc32c_append(whole, pt_dec_u32(&c),
                                     PT_MIN(PT_BLOCK_PAGE_SIZE, size - i * PT_BLOCK_PAGE_SIZE));
    if (!pt_cursor_ok(&c) || r.block_size != size || r.data_len != size || whole != crc)
        err = -PT_ECORRUPT;
    free(body);
    return err;
}

int pt_blocks_store_write(struct pt_blocks_store *s, uint64_t block_id, uint32_t crc,
                          const void *data, uint32_t size)
{
    char final[PATH_CAP], tmp[PATH_CAP], sub[PATH_CAP];
    uint8_t header[PT_BLOCK_FILE_HEADER];
    struct block_header h;
    struct pt_block_stat old = {0, 0, 0};
    const uint8_t *p = data;
    uint32_t pages = pt_block_pages(size), i, whole = 0;
    uint8_t *crcs;
    int fd, err;

    if (size > PT_BLOCK_MAX_SIZE) return -PT_EFBIG;
    err = pt_blocks_store_path(s, block_id, final, sizeof(final));
    if (!err) err = subdir_path(s, block_id, sub, sizeof(sub));
    if (err) return err;

    /* The data must match its CRC before anything else is decided. */
    crcs = malloc((size_t)pages * 4 + 1);
    if (!crcs) return -PT_ENOMEM;
    for (i = 0; i < pages; i++) {
        uint32_t n = PT_MIN(PT_BLOCK_PAGE_SIZE, size - i * PT_BLOCK_PAGE_SIZE);
        uint32_t pc = petrel_crc32c(0, p + (size_t)i * PT_BLOCK_PAGE_SIZE, n);
        pt_put_le32(crcs + (size_t)4 * i, pc);
        whole = petrel_crc32c_append(whole, pc, n);
    }
    err = whole != crc ? -PT_EBADMSG : pt_blocks_store_stat(s, block_id, &old);
    if (err == 0 && (old.crc != crc || old.size != size)) {
        err = -PT_EEXIST;
    } else if (err == 0) {
        /* The same block again (a retried write): success only if the stored copy is still
           whole; a copy that rotted since is replaced like one with a bad header. */
        err = stored_block_whole(s, block_id, crc, size);
        if (err == 0) {
            free(crcs);
            return 0;
        }
    }
    if (err != -PT_ENOENT && err != -PT_ECORRUPT) {
        free(crcs);
        return err;
    }
    h.block_id = block_id;
    h.size = size;
    h.crc = crc;
    h.pages = pages;
    header_encode(header, &h);

    snprintf(tmp, sizeof(tmp), "%s/tmp/%016" PRIx64 ".%d.%" PRIu64 ".tmp", s->dir, block_id,
             (int)getpid(), (uint64_t)atomic_fetch_add(&temp_counter, 1));
    fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(crcs);
        return pt_errno_to_pt(errno);
    }
    err = write_full(fd, header, sizeof(header), 0);
    if (!err && pages) err = write_full(fd, crcs, (size_t)pages * 4, PT_BLOCK_FILE_HEADER);
    if (!err && size) err = write_full(fd, data, size, PT_BLOCK_FILE_HEADER + (uint64_t)pages * 4);
    if (!err) err = pt_file_fsync(fd, tmp);
    if (!err) err = verify_written(fd, header, crcs, pages, size);
    if (close(fd) != 0 && !err) err = pt_errno_to_pt(errno);
    free(crcs);
    if (!err && rename(tmp, final) != 0) err = pt_errno_to_pt(errno);
    if (err) {
        unlink(tmp);
        return err;
    }
    return pt_dir_fsync(sub);
}

int pt_blocks_store_read(struct pt_blocks_store *s, uint64_t block_id, uint32_t offset,
                         uint32_t count, uint8_t **body, size_t *body_len)
{
    char path[PATH_CAP];
    struct block_header h;
    struct pt_block_read_resp r;
    struct pt_cursor c;
    uint32_t first, pages, want, i;
    uint8_t *buf = NULL, *crcs, *data;
    size_t len;
    int fd, err;

    *body = NULL;
    *body_len = 0;
    err = pt_blocks_store_path(s, block_id, path, sizeof(path));
    if (err) return err;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pt_errno_to_pt(errno);
    err = read_header_fd(fd, block_id, &h);
    if (err) goto out;
    if (offset > h.size) {
        err = -PT_ERANGE;
        goto out;
    }
    want = PT_MIN(count, h.size - offset);
    first = offset / PT_BLOCK_PAGE_SIZE;
    pages = want ? pt_block_pages(offset + want) - first : 0;
    r.block_size = h.size;
    r.data_offset = want ? first * PT_BLOCK_PAGE_SIZE : 0;
    r.data_len = want ? PT_MIN(h.size - r.data_offset, pages * PT_BLOCK_PAGE_SIZE) : 0;
    r.pages = pages;
    len = PT_BLOCK_READ_RESP_FIELDS + (size_t)pages * 4 + r.data_len;
    buf = malloc(len);
    if (!buf) {
        err = -PT_ENOMEM;
        goto out;
    }
    pt_cursor_init(&c, buf, len);
    pt_block_enc_read_resp(&c, &r);
    crcs = pt_cursor_take(&c, (size_t)pages * 4);
    data = pt_cursor_take(&c, r.data_len);
    if (pages)
        err = read_full(fd, crcs, (size_t)pages * 4, PT_BLOCK_FILE_HEADER + (uint64_t)first * 4);
    if (!err && r.data_len)
        err = read_full(fd, data, r.data_len,
                        PT_BLOCK_FILE_HEADER + (uint64_t)h.pages * 4 + r.data_offset);
    for (i = 0; !err && i < pages; i++) {
        uint32_t n = PT_MIN(PT_BLOCK_PAGE_SIZE, r.data_len - i * PT_BLOCK_PAGE_SIZE);
        if (petrel_crc32c(0, data + (size_t)i * PT_BLOCK_PAGE_SIZE, n) !=
            pt_get_le32(crcs + (size_t)4 * i))
            err = -PT_ECORRUPT;
    }
out:
    close(fd);
    if (err) {
        free(buf);
        return err;
    }
    *body = buf;
    *body_len = len;
    return 0;
}

int pt_blocks_store_erase(struct pt_blocks_store *s, uint64_t block_id, uint32_t crc, uint32_t size)
{
    char path[PATH_CAP], sub[PATH_CAP];
    struct pt_block_stat st = {0, 0, 0};
    int err = pt_blocks_store_path(s, block_id, path, sizeof(path));
    if (!err) err = subdir_path(s, block_id, sub, sizeof(sub));
    if (err) return err;
    err = pt_blocks_store_stat(s, block_id, &st);
    if (err == -PT_ENOENT) return 0;
    if (err == 0 && (st.crc != crc || st.size != size)) return -PT_EINVAL;
    if (err && err != -PT_ECORRUPT) return err;
    if (unlink(path) != 0 && errno != ENOENT) return pt_errno_to_pt(errno);
    return pt_dir_fsync(sub);
}
