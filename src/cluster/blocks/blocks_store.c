/*
 * The block store on disk (see blocks.h; format in docs/PROTOCOL.md, "Block file"). Owns the
 * block file layout, the durable write sequence, verified reads and erases. It never makes a
 * block visible under its final name before its bytes are on stable storage and read back
 * correct, never returns a byte from a page whose CRC failed, and never trusts a header field
 * (size, page count, id) from disk without checking it.
 *
 * Every byte goes through the env (cluster/env/env.h) of the process that owns the store, so
 * the simulator's disk faults (torn and lost writes, EIO, ENOSPC, failing fsync, stale data
 * after a crash, a disk that corrupts what it stores) reach this code exactly as production's
 * do. Paths are relative to the env's data directory. Single-threaded like every env user:
 * the one slow call, fsync, completes through the env (libuv's thread pool in production), so
 * writes are continuations: open and write, fsync, then read back, rename, sync the directory.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/blocks/blocks.h"
#include "cluster/env/env.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define PATH_CAP 96
#define ID_TEMP PT_BLOCKS_ID_FILE ".tmp"

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

/* Read exactly len bytes at off; a short file is corrupt (shorter than its header says). */
static int read_full(struct pt_env *env, int fd, void *buf, size_t len, uint64_t off)
{
    int64_t n = pt_env_pread(env, fd, buf, len, off);
    if (n < 0) return (int)n;
    return (size_t)n == len ? 0 : -PT_ECORRUPT;
}

int pt_blocks_store_path(const struct pt_blocks_store *s, uint64_t block_id, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "blocks/%02x/%016" PRIx64 ".blk", (unsigned)(block_id & 0xff),
                     block_id);
    (void)s;
    return n < 0 || (size_t)n >= cap ? -PT_ENAMETOOLONG : 0;
}

static void subdir_path(uint64_t block_id, char *buf, size_t cap)
{
    snprintf(buf, cap, "blocks/%02x", (unsigned)(block_id & 0xff));
}

/* --- opening --------------------------------------------------------------------------------- */

struct open_op {
    struct pt_blocks_store *s;
    pt_blocks_store_done done;
    void *ctx;
    int fd, err;
};

static void open_finish(void *arg)
{
    struct open_op *op = arg;
    op->done(op->ctx, op->err);
    free(op);
}

/* Completion delivered from the loop, never from inside the call that started the work. */
static void open_complete(struct open_op *op, int err)
{
    op->err = err;
    if (!pt_env_timer(op->s->env, 0, open_finish, op)) open_finish(op);
}

static void id_synced(void *arg, int status)
{
    struct open_op *op = arg;
    struct pt_env *env = op->s->env;
    int err = status, cerr = pt_env_close(env, op->fd);
    if (!err) err = cerr;
    if (!err) err = pt_env_rename(env, ID_TEMP, PT_BLOCKS_ID_FILE);
    if (!err) err = pt_env_fsync_dir(env, "");
    if (err) pt_env_unlink(env, ID_TEMP);
    op->err = err;
    open_finish(op);
}

/* 1 if the id file was loaded, 0 if absent, or a negative error. */
static int load_id(struct pt_blocks_store *s)
{
    uint8_t buf[17];
    int64_t n;
    int fd = pt_env_open(s->env, PT_BLOCKS_ID_FILE, PT_ENV_RDONLY);
    if (fd == -PT_ENOENT) return 0;
    if (fd < 0) return fd;
    n = pt_env_pread(s->env, fd, buf, sizeof(buf), 0);
    pt_env_close(s->env, fd);
    if (n < 0) return (int)n;
    if (n != 16 || pt_get_le32(buf) != PT_BLOCKS_ID_MAGIC ||
        pt_get_le32(buf + 12) != petrel_crc32c(0, buf, 12) || pt_get_le64(buf + 4) == 0)
        return -PT_ECORRUPT;
    s->service_id = pt_get_le64(buf + 4);
    return 1;
}

static int remove_temp_files(struct pt_env *env)
{
    char *names = NULL, *p;
    size_t cap = 4096;
    int n, i;
    for (;;) {
        char *grown = realloc(names, cap);
        if (!grown) {
            free(names);
            return -PT_ENOMEM;
        }
        names = grown;
        n = pt_env_list(env, "tmp", names, cap);
        if (n != -PT_ERANGE) break;
        cap *= 2;
    }
    for (i = 0, p = names; n > 0 && i < n; i++, p += strlen(p) + 1) {
        char path[PATH_CAP];
        if (snprintf(path, sizeof(path), "tmp/%s", p) < (int)sizeof(path)) pt_env_unlink(env, path);
    }
    free(names);
    return n < 0 ? n : 0;
}

/* Create a directory; 1 if it is new, 0 if it existed, or a negative error. */
static int make_dir(struct pt_env *env, const char *path)
{
    int err = pt_env_mkdir(env, path);
    return err == 0 ? 1 : err == -PT_EEXIST ? 0 : err;
}

void pt_blocks_store_open(struct pt_env *env, struct pt_blocks_store *out,
                          pt_blocks_store_done done, void *ctx)
{
    struct open_op *op = calloc(1, sizeof(*op));
    uint8_t rec[16];
    char path[PATH_CAP];
    int err, i, created = 0, top_created = 0;
    memset(out, 0, sizeof(*out));
    out->env = env;
    if (!op) {
        done(ctx, -PT_ENOMEM);
        return;
    }
    op->s = out;
    op->done = done;
    op->ctx = ctx;
    err = make_dir(env, "blocks");
    top_created = err == 1;
    /* The 256 subdirectories, then one sync of blocks/ makes every new entry durable. */
    for (i = 0; err >= 0 && i < 256; i++) {
        snprintf(path, sizeof(path), "blocks/%02x", (unsigned)i);
        err = make_dir(env, path);
        created += err == 1;
    }
    if (err >= 0 && created) err = pt_env_fsync_dir(env, "blocks");
    if (err >= 0) {
        err = make_dir(env, "tmp");
        top_created |= err == 1;
    }
    if (err >= 0 && top_created) err = pt_env_fsync_dir(env, "");
    if (err >= 0) err = remove_temp_files(env);
    if (err >= 0) err = load_id(out);
    if (err != 0) {
        open_complete(op, err < 0 ? err : 0);
        return;
    }
    /* First use: a random non-zero id, written to a temp file, synced, renamed into place. */
    do
        out->service_id = pt_env_random(env);
    while (out->service_id == 0);
    pt_put_le32(rec, PT_BLOCKS_ID_MAGIC);
    pt_put_le64(rec + 4, out->service_id);
    pt_put_le32(rec + 12, petrel_crc32c(0, rec, 12));
    op->fd = pt_env_open(env, ID_TEMP, PT_ENV_RDWR | PT_ENV_CREAT);
    if (op->fd < 0) {
        open_complete(op, op->fd);
        return;
    }
    err = pt_env_truncate(env, op->fd, 0);
    if (!err) err = pt_env_pwrite(env, op->fd, rec, sizeof(rec), 0);
    if (err) {
        pt_env_close(env, op->fd);
        pt_env_unlink(env, ID_TEMP);
        open_complete(op, err);
        return;
    }
    pt_env_fsync(env, op->fd, id_synced, op);
}

void pt_blocks_store_close(struct pt_blocks_store *s)
{
    s->env = NULL;
}

/* --- stat and scan --------------------------------------------------------------------------- */

static int read_header_fd(struct pt_env *env, int fd, uint64_t block_id, struct block_header *h)
{
    uint8_t raw[PT_BLOCK_FILE_HEADER];
    int err = read_full(env, fd, raw, sizeof(raw), 0);
    if (err) return err;
    return header_decode(raw, block_id, h);
}

int pt_blocks_store_stat(struct pt_blocks_store *s, uint64_t block_id, struct pt_block_stat *out)
{
    char path[PATH_CAP];
    struct block_header h;
    int fd, err = pt_blocks_store_path(s, block_id, path, sizeof(path));
    if (err) return err;
    fd = pt_env_open(s->env, path, PT_ENV_RDONLY);
    if (fd < 0) return fd;
    err = read_header_fd(s->env, fd, block_id, &h);
    pt_env_close(s->env, fd);
    if (err) return err;
    out->block_id = block_id;
    out->size = h.size;
    out->crc = h.crc;
    return 0;
}

int pt_blocks_store_scan(struct pt_blocks_store *s,
                         void (*fn)(void *ctx, const struct pt_block_stat *st), void *ctx)
{
    char path[PATH_CAP], *names;
    size_t cap = 8192;
    int i, n = 0;
    names = malloc(cap);
    if (!names) return -PT_ENOMEM;
    for (i = 0; i < 256 && n >= 0; i++) {
        char *p;
        int k;
        snprintf(path, sizeof(path), "blocks/%02x", (unsigned)i);
        while ((n = pt_env_list(s->env, path, names, cap)) == -PT_ERANGE) {
            char *grown = realloc(names, cap * 2);
            if (!grown) {
                n = -PT_ENOMEM;
                break;
            }
            names = grown;
            cap *= 2;
        }
        for (k = 0, p = names; k < n; k++, p += strlen(p) + 1) {
            struct pt_block_stat st;
            char *end;
            uint64_t id;
            if (strlen(p) != 20 || strcmp(p + 16, ".blk") != 0) continue;
            id = strtoull(p, &end, 16);
            if (end != p + 16) continue;
            /* A block whose header is unreadable is skipped; a scrub finds it by its name. */
            if (pt_blocks_store_stat(s, id, &st) == 0) fn(ctx, &st);
        }
    }
    free(names);
    return n < 0 ? n : 0;
}

/* --- writing --------------------------------------------------------------------------------- */

/*
 * A block being written arrives in pieces (pt_blocks_store_stream_*): each piece's pages are
 * checked against the page CRCs the writer sent and written at their place in a temp file;
 * the page CRCs are kept (4 bytes a page: the only per-block state) and combined into the
 * block CRC as they come. At the end the combined CRC must be the certified one; the header
 * and the page CRC table go in front of the data, the file is fsync'd, read back and checked
 * against the page CRCs (verify_written), renamed into place and its directory fsync'd.
 */
struct pt_blocks_stream {
    struct pt_env *env;
    pt_blocks_store_done done;
    void *ctx;
    uint64_t block_id;
    uint32_t crc, size, pages;
    uint32_t next;  /* bytes received so far (pieces come in order) */
    uint32_t whole; /* CRC32C of the bytes received, combined from their page CRCs */
    int fd;         /* temp file, or -1 when the identical block is stored already */
    int err;
    char tmp[PATH_CAP], final[PATH_CAP];
    uint8_t header[PT_BLOCK_FILE_HEADER];
    uint8_t *crcs;
};

static void stream_free(struct pt_blocks_stream *st)
{
    free(st->crcs);
    free(st);
}

static void stream_finish_cb(void *arg)
{
    struct pt_blocks_stream *st = arg;
    st->done(st->ctx, st->err);
    stream_free(st);
}

/* Completion delivered from the loop, never from inside the call that started the work. */
static void stream_complete(struct pt_blocks_stream *st, int err)
{
    st->err = err;
    if (!pt_env_timer(st->env, 0, stream_finish_cb, st)) stream_finish_cb(st);
}

/*
 * Read a written temp file back after its fsync and compare header, page CRC table and every
 * page with what we meant, 64 KiB at a time. Right after the fsync the pages are normally
 * still in the page cache, so this costs CPU (CRC32C), not a second pass over the disk; it is
 * what catches a disk that acknowledges a write and stores something else (the simulator's
 * block-service runs prove it is needed: without it a proof is given for corrupt bytes).
 */
static int verify_written(struct pt_env *env, int fd, const uint8_t *header, const uint8_t *crcs,
                          uint32_t pages, uint32_t size)
{
    enum { CHUNK = PT_BLOCK_PAGE_SIZE * 16 };
    uint8_t raw[PT_BLOCK_FILE_HEADER];
    uint8_t *buf = malloc(CHUNK);
    uint64_t data_off = PT_BLOCK_FILE_HEADER + (uint64_t)pages * 4;
    uint32_t page = 0, done = 0;
    int64_t len;
    int err = buf ? 0 : -PT_ENOMEM;
    if (!err) err = read_full(env, fd, raw, sizeof(raw), 0);
    if (!err && memcmp(raw, header, sizeof(raw)) != 0) err = -PT_ECORRUPT;
    while (!err && done < pages * 4) {
        uint32_t n = PT_MIN((uint32_t)CHUNK, pages * 4 - done);
        err = read_full(env, fd, buf, n, PT_BLOCK_FILE_HEADER + (uint64_t)done);
        if (!err && memcmp(buf, crcs + done, n) != 0) err = -PT_ECORRUPT;
        done += n;
    }
    while (!err && page < pages) {
        uint32_t off = page * PT_BLOCK_PAGE_SIZE;
        uint32_t chunk = PT_MIN(size - off, (uint32_t)CHUNK), i;
        err = read_full(env, fd, buf, chunk, data_off + off);
        for (i = 0; !err && i * PT_BLOCK_PAGE_SIZE < chunk; i++, page++) {
            uint32_t n = PT_MIN(PT_BLOCK_PAGE_SIZE, chunk - i * PT_BLOCK_PAGE_SIZE);
            if (petrel_crc32c(0, buf + (size_t)i * PT_BLOCK_PAGE_SIZE, n) !=
                pt_get_le32(crcs + (size_t)4 * page))
                err = -PT_ECORRUPT;
        }
    }
    /* Nothing may follow the data. */
    if (!err) {
        len = pt_env_size(env, fd);
        if (len < 0)
            err = (int)len;
        else if ((uint64_t)len != data_off + size)
            err = -PT_ECORRUPT;
    }
    free(buf);
    return err;
}

static void stream_synced(void *arg, int status)
{
    struct pt_blocks_stream *st = arg;
    char sub[PATH_CAP];
    int err = status, cerr;
    if (!err) err = verify_written(st->env, st->fd, st->header, st->crcs, st->pages, st->size);
    cerr = pt_env_close(st->env, st->fd);
    st->fd = -1;
    if (!err) err = cerr;
    if (!err) err = pt_env_rename(st->env, st->tmp, st->final);
    if (err) {
        pt_env_unlink(st->env, st->tmp);
    } else {
        subdir_path(st->block_id, sub, sizeof(sub));
        err = pt_env_fsync_dir(st->env, sub);
        /* Visible but maybe not durable: take it back, so that the client's retry writes it
           again rather than finding it "already stored". */
        if (err) pt_env_unlink(st->env, st->final);
    }
    st->err = err;
    stream_finish_cb(st);
}

/*
 * Whether the stored block, whose header already claims (crc, size), is whole: every page
 * verifies and the page CRCs combine to crc. Reads it a chunk at a time (never the whole
 * block at once). 0, -PT_ECORRUPT, or another error.
 */
static int stored_block_whole(struct pt_blocks_store *s, uint64_t block_id, uint32_t crc,
                              uint32_t size)
{
    uint32_t off = 0, whole = 0;
    int err = 0;
    do {
        struct pt_block_read_resp r;
        struct pt_cursor c;
        uint8_t *body;
        size_t len;
        uint32_t i, n = PT_MIN(PT_BLOCK_CHUNK, size - off);
        err = pt_blocks_store_read(s, block_id, off, n, &body, &len);
        if (err) return err;
        pt_cursor_init(&c, body, len);
        pt_block_dec_read_resp(&c, &r);
        for (i = 0; pt_cursor_ok(&c) && i < r.pages; i++)
            whole = petrel_crc32c_append(
                whole, pt_dec_u32(&c), PT_MIN(PT_BLOCK_PAGE_SIZE, size - off - i * PT_BLOCK_PAGE_SIZE));
        if (!pt_cursor_ok(&c) || r.block_size != size || r.data_len != n) err = -PT_ECORRUPT;
        free(body);
        off += n;
    } while (!err && off < size);
    if (!err && whole != crc) err = -PT_ECORRUPT;
    return err;
}

int pt_blocks_store_stream_open(struct pt_blocks_store *s, uint64_t block_id, uint32_t crc,
                                uint32_t size, struct pt_blocks_stream **out)
{
    struct pt_blocks_stream *st;
    struct pt_block_stat old = {0, 0, 0};
    struct block_header h;
    int err;
    *out = NULL;
    if (size > PT_BLOCK_MAX_SIZE) return -PT_EFBIG;
    st = calloc(1, sizeof(*st));
    if (!st) return -PT_ENOMEM;
    st->env = s->env;
    st->block_id = block_id;
    st->crc = crc;
    st->size = size;
    st->pages = pt_block_pages(size);
    st->fd = -1;
    st->crcs = malloc((size_t)st->pages * 4 + 1);
    if (!st->crcs) {
        stream_free(st);
        return -PT_ENOMEM;
    }
    pt_blocks_store_path(s, block_id, st->final, sizeof(st->final));
    err = pt_blocks_store_stat(s, block_id, &old);
    if (err == 0 && (old.crc != crc || old.size != size)) {
        err = -PT_EEXIST;
    } else if (err == 0) {
        /* The same block again (a retried write): the pieces are checked but not stored,
           unless the stored copy rotted since; then it is replaced like one with a bad
           header. */
        err = stored_block_whole(s, block_id, crc, size);
        if (err == 0) {
            *out = st;
            return 0;
        }
    }
    if (err != -PT_ENOENT && err != -PT_ECORRUPT) {
        stream_free(st);
        return err;
    }
    h.block_id = block_id;
    h.size = size;
    h.crc = crc;
    h.pages = st->pages;
    header_encode(st->header, &h);
    snprintf(st->tmp, sizeof(st->tmp), "tmp/%016" PRIx64 ".%" PRIu64 ".tmp", block_id,
             s->temp_counter++);
    st->fd = pt_env_open(s->env, st->tmp, PT_ENV_RDWR | PT_ENV_CREAT | PT_ENV_EXCL);
    if (st->fd < 0) {
        err = st->fd;
        stream_free(st);
        return err;
    }
    *out = st;
    return 0;
}

int pt_blocks_store_stream_pages(struct pt_blocks_stream *st, uint32_t offset,
                                 const uint8_t *crcs, const void *data, uint32_t len)
{
    const uint8_t *p = data;
    uint32_t i, first, n_pages;
    if (offset != st->next) return -PT_EPROTO; /* pieces come in order, without gaps */
    if (len > st->size - st->next) return -PT_EPROTO;
    /* Whole pages only, except the block's last page. */
    if (len % PT_BLOCK_PAGE_SIZE && offset + len != st->size) return -PT_EPROTO;
    first = offset / PT_BLOCK_PAGE_SIZE;
    n_pages = pt_block_pages(len);
    for (i = 0; i < n_pages; i++) {
        uint32_t n = PT_MIN(PT_BLOCK_PAGE_SIZE, len - i * PT_BLOCK_PAGE_SIZE);
        uint32_t want = pt_get_le32(crcs + (size_t)4 * i);
        if (petrel_crc32c(0, p + (size_t)i * PT_BLOCK_PAGE_SIZE, n) != want) return -PT_EBADMSG;
    }
    if (st->fd >= 0 && len) {
        int err = pt_env_pwrite(st->env, st->fd, data, len,
                                PT_BLOCK_FILE_HEADER + (uint64_t)st->pages * 4 + offset);
        if (err) return err;
    }
    for (i = 0; i < n_pages; i++) {
        uint32_t pc = pt_get_le32(crcs + (size_t)4 * i);
        pt_put_le32(st->crcs + (size_t)4 * (first + i), pc);
        st->whole = petrel_crc32c_append(st->whole, pc,
                                         PT_MIN(PT_BLOCK_PAGE_SIZE, len - i * PT_BLOCK_PAGE_SIZE));
    }
    st->next += len;
    return 0;
}

void pt_blocks_store_stream_finish(struct pt_blocks_stream *st, pt_blocks_store_done done,
                                   void *ctx)
{
    int err = 0;
    st->done = done;
    st->ctx = ctx;
    if (st->next != st->size)
        err = -PT_EPROTO; /* pieces missing: nothing partial becomes visible */
    else if (st->whole != st->crc)
        err = -PT_EBADMSG;
    if (st->fd < 0) {
        /* The identical block is stored already. Its name may not be durable yet (an earlier
           write whose directory sync failed and whose unlink failed too): sync it before
           promising anything. */
        char sub[PATH_CAP];
        subdir_path(st->block_id, sub, sizeof(sub));
        if (!err) err = pt_env_fsync_dir(st->env, sub);
        stream_complete(st, err);
        return;
    }
    if (!err) err = pt_env_pwrite(st->env, st->fd, st->header, sizeof(st->header), 0);
    if (!err && st->pages)
        err = pt_env_pwrite(st->env, st->fd, st->crcs, (size_t)st->pages * 4,
                            PT_BLOCK_FILE_HEADER);
    if (err) {
        pt_env_close(st->env, st->fd);
        pt_env_unlink(st->env, st->tmp);
        st->fd = -1;
        stream_complete(st, err);
        return;
    }
    pt_env_fsync(st->env, st->fd, stream_synced, st);
}

void pt_blocks_store_stream_abort(struct pt_blocks_stream *st)
{
    if (st->fd >= 0) {
        pt_env_close(st->env, st->fd);
        pt_env_unlink(st->env, st->tmp);
    }
    stream_free(st);
}

/* One block given whole: a stream of one piece. */
void pt_blocks_store_write(struct pt_blocks_store *s, uint64_t block_id, uint32_t crc,
                           const void *data, uint32_t size, pt_blocks_store_done done, void *ctx)
{
    struct pt_blocks_stream *st;
    const uint8_t *p = data;
    uint8_t *crcs;
    uint32_t i, pages = pt_block_pages(size), whole = 0;
    int err;
    if (size > PT_BLOCK_MAX_SIZE) {
        err = -PT_EFBIG;
        goto early;
    }
    /* The data must match its CRC before anything else is decided. */
    crcs = malloc((size_t)pages * 4 + 1);
    if (!crcs) {
        err = -PT_ENOMEM;
        goto early;
    }
    for (i = 0; i < pages; i++) {
        uint32_t n = PT_MIN(PT_BLOCK_PAGE_SIZE, size - i * PT_BLOCK_PAGE_SIZE);
        uint32_t pc = petrel_crc32c(0, p + (size_t)i * PT_BLOCK_PAGE_SIZE, n);
        pt_put_le32(crcs + (size_t)4 * i, pc);
        whole = petrel_crc32c_append(whole, pc, n);
    }
    err = whole != crc ? -PT_EBADMSG : pt_blocks_store_stream_open(s, block_id, crc, size, &st);
    if (!err) {
        err = pt_blocks_store_stream_pages(st, 0, crcs, data, size);
        if (err) pt_blocks_store_stream_abort(st);
    }
    free(crcs);
    if (!err) {
        pt_blocks_store_stream_finish(st, done, ctx);
        return;
    }
early:
    /* Completion from the loop, as for every other outcome. */
    st = calloc(1, sizeof(*st));
    if (!st) {
        done(ctx, err);
        return;
    }
    st->env = s->env;
    st->done = done;
    st->ctx = ctx;
    st->fd = -1;
    stream_complete(st, err);
}

/* --- reading and erasing ----------------------------------------------------------------------- */

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
    fd = pt_env_open(s->env, path, PT_ENV_RDONLY);
    if (fd < 0) return fd;
    err = read_header_fd(s->env, fd, block_id, &h);
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
        err = read_full(s->env, fd, crcs, (size_t)pages * 4,
                        PT_BLOCK_FILE_HEADER + (uint64_t)first * 4);
    if (!err && r.data_len)
        err = read_full(s->env, fd, data, r.data_len,
                        PT_BLOCK_FILE_HEADER + (uint64_t)h.pages * 4 + r.data_offset);
    for (i = 0; !err && i < pages; i++) {
        uint32_t n = PT_MIN(PT_BLOCK_PAGE_SIZE, r.data_len - i * PT_BLOCK_PAGE_SIZE);
        if (petrel_crc32c(0, data + (size_t)i * PT_BLOCK_PAGE_SIZE, n) !=
            pt_get_le32(crcs + (size_t)4 * i))
            err = -PT_ECORRUPT;
    }
out:
    pt_env_close(s->env, fd);
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
    if (err) return err;
    subdir_path(block_id, sub, sizeof(sub));
    err = pt_blocks_store_stat(s, block_id, &st);
    /* Absent: maybe only since an earlier erase whose directory sync failed, so the name may
       still be on the disk; sync the directory before promising it is gone. */
    if (err == -PT_ENOENT) return pt_env_fsync_dir(s->env, sub);
    if (err == 0 && (st.crc != crc || st.size != size)) return -PT_EINVAL;
    if (err && err != -PT_ECORRUPT) return err;
    err = pt_env_unlink(s->env, path);
    if (err && err != -PT_ENOENT) return err;
    return pt_env_fsync_dir(s->env, sub);
}
