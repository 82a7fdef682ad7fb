/*
 * Open files: the page buffer, the open data block, the batch of tree updates, and the
 * read, write, seek, truncate and sync operations.
 *
 * A file's bytes [0, tree_size) live in its data tree; the rest (at most one page, the
 * "tail") lives in the page buffer and, at sync, inline in the directory entry when it is
 * small (at most inline_max bytes), so appending and syncing never rewrites whole blocks.
 * Invariants: pages are programmed into the open block in increasing slot order and only
 * into erased slots; a block referenced by the last commit is only ever extended (new pages
 * after its last valid page, in slots proven erased), never changed; every other change is
 * copy-on-write into a fresh block; bytes of the page buffer beyond the file size are zero.
 * Nothing is visible on disk before sync commits the new entry, so a power cut returns the
 * file as of its last sync. No recursion; RAM is the struct and one page buffer.
 */
#include <stdlib.h>

#include "fs/fs_internal.h"

void pt_handle_link(struct petrel_fs *fs, struct petrel_fs_handle *h, uint8_t kind);
void pt_handle_unlink(struct petrel_fs *fs, struct petrel_fs_handle *h);

#define PT_BUF_EMPTY 0
#define PT_BUF_CLEAN 1
#define PT_BUF_DIRTY 2

#ifndef PETREL_FS_READONLY
static int pt_file_writable(const struct petrel_fs_file *f)
{
    return (f->flags & PETREL_O_WRONLY) != 0;
}
#endif /* PETREL_FS_READONLY */

static int pt_file_readable(const struct petrel_fs_file *f)
{
    return (f->flags & PETREL_O_RDONLY) != 0;
}

#ifndef PETREL_FS_READONLY
/* Valid pages of logical block bi in the tree. */
static uint32_t pt_file_valid_pages(struct petrel_fs *fs, const struct petrel_fs_file *f,
                                    uint32_t bi)
{
    uint64_t d = (uint64_t)pt_pages_per_block(fs) * pt_page_payload(fs);
    uint64_t start = (uint64_t)bi * d, pld = pt_page_payload(fs);
    uint64_t n;
    if (f->tree_size <= start) return 0;
    n = (f->tree_size - start + pld - 1) / pld;
    return (uint32_t)PT_MIN(n, (uint64_t)pt_pages_per_block(fs));
}
#endif /* PETREL_FS_READONLY */

/* Physical block currently holding logical block bi, outside the open block. The last
 * tree lookup and the addresses after it in the same index page are remembered, so that a
 * sequential read reads an index page once per PETREL_FS_MAP_RUN data blocks. */
static int pt_file_block(struct petrel_fs *fs, struct petrel_fs_file *f, uint32_t bi,
                         uint32_t *blk)
{
    uint32_t i;
    int err;
    for (i = f->pend_n; i > 0; i--) {
        if (f->pend[i - 1].index == bi) {
            *blk = f->pend[i - 1].block;
            return 0;
        }
    }
    if (f->map_valid && bi >= f->map_index && bi - f->map_index < f->map_n) {
        *blk = f->map_block[bi - f->map_index];
        return 0;
    }
    f->map_valid = 0;
    err = pt_tree_lookup_run(fs, f->root, f->depth, f->direct, bi, f->map_block,
                             PETREL_FS_MAP_RUN, &f->map_n);
    if (err) return err;
    f->map_valid = 1;
    f->map_index = bi;
    *blk = f->map_block[0];
    return 0;
}

/* Read-only view of page p: *payload NULL means zeros. */
static int pt_file_page_src(struct petrel_fs *fs, struct petrel_fs_file *f, uint64_t p,
                            const uint8_t **payload)
{
    uint32_t ppb = pt_pages_per_block(fs);
    uint32_t bi = (uint32_t)(p / ppb), slot = (uint32_t)(p % ppb), blk;
    int err;
    *payload = NULL;
    if (p * pt_page_payload(fs) >= f->tree_size) return 0;
    if (f->ob_open && f->ob_index == bi) {
        if (slot < f->ob_next)
            blk = f->ob_block;
        else if (slot < f->ob_src_pages)
            blk = f->ob_src;
        else
            return 0;
    } else {
        err = pt_file_block(fs, f, bi, &blk);
        if (err) return err;
    }
    if (blk == PT_NULL) return 0;
    return pt_page_read(fs, blk, slot, payload);
}

#ifndef PETREL_FS_READONLY
/* Copy page `slot` of src (or a zero page) into slot of dst. */
static int pt_copy_page(struct petrel_fs *fs, uint32_t src, uint32_t dst, uint32_t slot)
{
    uint8_t *page;
    if (src != PT_NULL) {
        const uint8_t *p;
        int err = pt_page_read(fs, src, slot, &p);
        if (err) return err;
        page = fs->rcache.buf + (size_t)(p - fs->rcache.buf);
    } else {
        page = fs->rcache.buf;
        memset(page, 0, pt_page_payload(fs));
    }
    fs->rcache.block = PT_NULL;
    return pt_page_prog(fs, dst, slot, page);
}
#endif /* PETREL_FS_READONLY */

#ifndef PETREL_FS_READONLY
static int pt_bad(int err)
{
    return err == -PT_EIO || err == -PT_ECORRUPT;
}
#endif /* PETREL_FS_READONLY */

#ifndef PETREL_FS_READONLY
/* The open block failed: move its pages [0, ob_next) to a fresh block. */
static int pt_file_ob_move(struct petrel_fs *fs, struct petrel_fs_file *f)
{
    int tries;
    for (tries = 0; tries < 16; tries++) {
        uint32_t nb, s;
        int err = pt_alloc_erased(fs, &nb);
        if (err) return err;
        for (s = 0; s < f->ob_next && !err; s++) err = pt_copy_page(fs, f->ob_block, nb, s);
        if (!err) {
            petrel_log(PT_LOG_WARN, "fs", "data block %u failed, moved to %u",
                       (unsigned)f->ob_block, (unsigned)nb);
            f->ob_block = nb;
            return 0;
        }
        if (!pt_bad(err)) return err;
        /* a failing copy source is fatal; a failing target is retried */
        if (err == -PT_ECORRUPT) {
            const uint8_t *p;
            int e2 = pt_page_read(fs, f->ob_block, 0, &p);
            if (e2 == -PT_ECORRUPT && f->ob_next > 0) return -PT_ECORRUPT;
        }
    }
    return -PT_ENOSPC; /* no good block found: the device is worn out */
}
#endif /* PETREL_FS_READONLY */

#ifndef PETREL_FS_READONLY
/* Program one page into the open block at slot (pages before it already written). */
static int pt_file_ob_prog(struct petrel_fs *fs, struct petrel_fs_file *f, uint32_t slot,
                           uint8_t *page, int from_buf)
{
    int tries;
    for (tries = 0; tries < 16; tries++) {
        int err;
        if (from_buf)
            err = pt_page_prog(fs, f->ob_block, slot, page);
        else
            err = pt_copy_page(fs, slot < f->ob_src_pages ? f->ob_src : PT_NULL, f->ob_block,
                               slot);
        if (err == 0) {
            f->ob_next = slot + 1;
            return 0;
        }
        if (!pt_bad(err)) return err;
        if (!from_buf && err == -PT_ECORRUPT && slot < f->ob_src_pages) {
            const uint8_t *p;
            if (pt_page_read(fs, f->ob_src, slot, &p) == -PT_ECORRUPT) return -PT_ECORRUPT;
        }
        err = pt_file_ob_move(fs, f);
        if (err) return err;
    }
    return -PT_ENOSPC; /* no good block found: the device is worn out */
}
#endif /* PETREL_FS_READONLY */

#ifndef PETREL_FS_READONLY
static int pt_file_pend(struct petrel_fs *fs, struct petrel_fs_file *f, uint32_t bi,
                        uint32_t blk)
{
    uint32_t i;
    for (i = 0; i < f->pend_n; i++) {
        if (f->pend[i].index == bi) {
            f->pend[i].block = blk;
            return 0;
        }
    }
    if (f->pend_n == f->pend_max) {
        int err = pt_tree_apply(fs, &f->root, &f->depth, f);
        if (err) return err;
    }
    f->pend[f->pend_n].index = bi;
    f->pend[f->pend_n].block = blk;
    f->pend_n++;
    return 0;
}
#endif /* PETREL_FS_READONLY */

#ifndef PETREL_FS_READONLY
static int pt_file_close_ob(struct petrel_fs *fs, struct petrel_fs_file *f)
{
    int err = 0;
    if (!f->ob_open) return 0;
    if (f->ob_block != f->ob_src) {
        /* every page the tree covers must be valid: old pages are copied, holes zeroed */
        uint32_t want = PT_MAX(f->ob_src_pages, pt_file_valid_pages(fs, f, f->ob_index));
        while (!err && f->ob_next < want) err = pt_file_ob_prog(fs, f, f->ob_next, NULL, 0);
        if (!err) err = pt_file_pend(fs, f, f->ob_index, f->ob_block);
    }
    if (!err) f->ob_open = 0;
    return err;
}
#endif /* PETREL_FS_READONLY */

#ifndef PETREL_FS_READONLY
/* Whether slot of blk still reads as erased (so it may be programmed in place). */
static int pt_slot_erased(struct petrel_fs *fs, uint32_t blk, uint32_t slot)
{
    uint32_t off = slot * fs->page_size, i;
    int ev = fs->bd->erase_value;
    if (ev < 0) return 0;
    fs->rcache.block = PT_NULL;
    if (pt_read_direct(fs, blk, off, fs->rcache.buf, fs->page_size)) return 0;
    for (i = 0; i < fs->page_size; i++)
        if (fs->rcache.buf[i] != (uint8_t)ev) return 0;
    return 1;
}
#endif /* PETREL_FS_READONLY */

#ifndef PETREL_FS_READONLY
/* Make the open block logical block bi, ready for a page at slot (or later). */
static int pt_file_ob_open(struct petrel_fs *fs, struct petrel_fs_file *f, uint32_t bi,
                           uint32_t slot)
{
    uint32_t ppb = pt_pages_per_block(fs), pld = pt_page_payload(fs), src;
    int err;
    if (f->ob_open && f->ob_index == bi && slot >= f->ob_next) return 0;
    err = pt_file_close_ob(fs, f);
    if (err) return err;
    err = pt_file_block(fs, f, bi, &src);
    if (err) return err;
    f->ob_index = bi;
    f->ob_src = src;
    f->ob_src_pages = src == PT_NULL ? 0 : pt_file_valid_pages(fs, f, bi);
    if (src != PT_NULL && f->ob_src_pages > 0 && slot >= f->ob_src_pages &&
        f->tree_size == ((uint64_t)bi * ppb + f->ob_src_pages) * pld &&
        pt_slot_erased(fs, src, f->ob_src_pages)) {
        /* extend the block in place: the committed pages stay untouched */
        f->ob_block = src;
        f->ob_next = f->ob_src_pages;
    } else {
        err = pt_alloc_erased(fs, &f->ob_block);
        if (err) return err;
        f->ob_next = 0;
    }
    f->ob_open = 1;
    return 0;
}
#endif /* PETREL_FS_READONLY */

#ifndef PETREL_FS_READONLY
/* Program the page buffer as logical page p. */
static int pt_file_prog_page(struct petrel_fs *fs, struct petrel_fs_file *f, uint64_t p)
{
    uint32_t ppb = pt_pages_per_block(fs), pld = pt_page_payload(fs);
    uint32_t bi = (uint32_t)(p / ppb), slot = (uint32_t)(p % ppb);
    uint64_t d = (uint64_t)ppb * pld, end;
    int err;
    if (f->tree_size > 0 && f->tree_size % d) {
        /* the tree's last block is partly written: before the tree grows past it, its
         * remaining pages are written as zeros so that every page it covers is valid */
        uint32_t last = (uint32_t)((f->tree_size - 1) / d);
        if (bi > last) {
            err = pt_file_ob_open(fs, f, last, pt_file_valid_pages(fs, f, last));
            while (!err && f->ob_next < ppb) err = pt_file_ob_prog(fs, f, f->ob_next, NULL, 0);
            if (err) return err;
            f->tree_size = (uint64_t)(last + 1) * d;
        }
    }
    err = pt_file_ob_open(fs, f, bi, slot);
    if (err) return err;
    while (f->ob_next < slot) {
        err = pt_file_ob_prog(fs, f, f->ob_next, NULL, 0);
        if (err) return err;
    }
    err = pt_file_ob_prog(fs, f, slot, f->buf, 1);
    if (err) return err;
    end = PT_MIN(f->size, (p + 1) * pld);
    if (end > f->tree_size) f->tree_size = end;
    f->buf_state = PT_BUF_CLEAN;
    return 0;
}
#endif /* PETREL_FS_READONLY */

#ifndef PETREL_FS_READONLY
/* Does the buffered page hold bytes that are not in the tree? */
static int pt_file_buf_unsaved(struct petrel_fs *fs, const struct petrel_fs_file *f)
{
    uint64_t start = f->buf_page * pt_page_payload(fs);
    if (f->buf_state == PT_BUF_DIRTY) return 1;
    return f->buf_state == PT_BUF_CLEAN && start >= f->tree_size && start < f->size;
}
#endif /* PETREL_FS_READONLY */

#ifndef PETREL_FS_READONLY
/* Make the page buffer hold logical page p. */
static int pt_file_load(struct petrel_fs *fs, struct petrel_fs_file *f, uint64_t p)
{
    const uint8_t *src;
    uint32_t pld = pt_page_payload(fs);
    int err;
    if (f->buf_state != PT_BUF_EMPTY && f->buf_page == p) return 0;
    if (f->buf_state != PT_BUF_EMPTY && pt_file_buf_unsaved(fs, f)) {
        err = pt_file_prog_page(fs, f, f->buf_page);
        if (err) return err;
    }
    f->buf_state = PT_BUF_EMPTY;
    err = pt_file_page_src(fs, f, p, &src);
    if (err) return err;
    if (src)
        memcpy(f->buf, src, pld);
    else
        memset(f->buf, 0, pld);
    /* bytes past the end of the file read as zero */
    if (f->size < (p + 1) * pld) {
        uint64_t keep = f->size > p * pld ? f->size - p * pld : 0;
        memset(f->buf + keep, 0, pld - (uint32_t)keep);
    }
    f->buf_page = p;
    f->buf_state = PT_BUF_CLEAN;
    return 0;
}
#endif /* PETREL_FS_READONLY */

static int pt_check_flags(int flags)
{
    int mode = flags & 3;
    if (mode == 0) return -PT_EINVAL;
    if (flags & ~(3 | PETREL_O_CREAT | PETREL_O_EXCL | PETREL_O_TRUNC | PETREL_O_APPEND))
        return -PT_EINVAL;
    if ((flags & PETREL_O_TRUNC) && !(flags & PETREL_O_WRONLY)) return -PT_EINVAL;
    return 0;
}

#ifndef PETREL_FS_READONLY
/* The file structure of an entry (docs/SPEC-FS.md §4): size, root, depth, tail length and,
 * for a file listing its blocks, the blocks after the first. */
uint32_t pt_reg_struct(uint8_t *p, uint64_t size, uint32_t root, uint8_t depth,
                       const uint32_t *direct, uint16_t tail_len)
{
    uint32_t i, n = PT_REGSTRUCT_SIZE;
    pt_put_le64(p, size);
    pt_put_le32(p + 8, root);
    p[12] = depth;
    pt_put_le16(p + 13, tail_len);
    /* a listed file always comes with its list (direct is NULL only for depth 0) */
    for (i = 1; direct && i < pt_direct_count(depth); i++, n += 4)
        pt_put_le32(p + n, direct[i - 1]);
    return n;
}
#endif /* PETREL_FS_READONLY */

/* Open path; a created entry gets type (PETREL_FS_REG or a host type). */
/* The page buffer and the room for buffered tree updates: from the configuration, else
 * allocated (one allocation when both are), else (no malloc) the updates kept inline. */
static int pt_file_buffers(struct petrel_fs *fs, struct petrel_fs_file *file,
                           const struct petrel_fs_file_config *fcfg)
{
    size_t pend_bytes = sizeof(struct petrel_fs_pend) * PETREL_FS_PENDING;
    if (fcfg && fcfg->pend_buffer && fcfg->pend_count) {
        file->pend = fcfg->pend_buffer;
        file->pend_max = fcfg->pend_count;
        pend_bytes = 0;
    }
#ifdef PETREL_FS_NO_MALLOC
    (void)fs;
    if (!fcfg || !fcfg->buffer) return -PT_ENOMEM;
    file->buf = (uint8_t *)fcfg->buffer;
    if (pend_bytes) {
        file->pend = file->pend_inline;
        file->pend_max = PETREL_FS_PENDING_INLINE;
    }
#else
    if (fcfg && fcfg->buffer) {
        file->buf = (uint8_t *)fcfg->buffer;
        if (pend_bytes) {
            file->pend = (struct petrel_fs_pend *)malloc(pend_bytes);
            if (!file->pend) return -PT_ENOMEM;
            file->pend_alloc = 1;
        }
    } else {
        /* the page size is a multiple of 16: the updates that follow are aligned */
        file->buf = (uint8_t *)malloc(fs->page_size + pend_bytes);
        if (!file->buf) return -PT_ENOMEM;
        file->buf_alloc = 1;
        if (pend_bytes) file->pend = (struct petrel_fs_pend *)(void *)(file->buf + fs->page_size);
    }
    if (pend_bytes) file->pend_max = PETREL_FS_PENDING;
#endif
    return 0;
}

static int pt_file_open_typed(struct petrel_fs *fs, struct petrel_fs_file *file, const char *path,
                              int flags, const struct petrel_fs_file_config *fcfg, uint8_t type)
{
    struct pt_lookup lk;
    int err = pt_check_flags(flags);
    if (err) return err;
#ifdef PETREL_FS_READONLY
    if (flags & (PETREL_O_WRONLY | PETREL_O_CREAT | PETREL_O_TRUNC)) return -PT_EROFS;
#else
    /* a writer commits (create, sync, close): the session is dirty before its lookup */
    if (flags & (PETREL_O_WRONLY | PETREL_O_CREAT)) {
        err = pt_mstate_mark_dirty(fs);
        if (err) return err;
    }
#endif
    err = pt_lookup(fs, path, &lk, -1);
    if (err) return err;
    if (lk.is_root) return -PT_EISDIR;
    if (lk.exists == 1 && lk.e.type == PETREL_FS_DIR) return -PT_EISDIR;
    if (lk.exists == 1 && (flags & PETREL_O_CREAT) && (flags & PETREL_O_EXCL)) return -PT_EEXIST;
    if (lk.exists != 1 && !(flags & PETREL_O_CREAT)) return -PT_ENOENT;
    if (lk.exists == -1) return -PT_EEXIST;
    if ((flags & PETREL_O_WRONLY) && fs->readonly) return -PT_EROFS;

    memset(file, 0, sizeof(*file));
    file->flags = flags;
    file->root = PT_NULL;
    file->type = lk.exists == 1 ? lk.e.type : type;
    err = pt_file_buffers(fs, file, fcfg);
    if (err) return err;
#ifndef PETREL_FS_READONLY
    if (lk.exists != 1) {
        uint8_t ent[PT_ENTRY_FIXED], reg[PT_REGSTRUCT_MAX];
        struct pt_rec r;
        pt_put_le64(ent, lk.hash);
        ent[8] = type;
        ent[9] = (uint8_t)lk.name_len;
        memset(&r, 0, sizeof(r));
        r.type = PT_REC_ENTRY;
        r.hash = lk.hash;
        r.seg[0] = ent;
        r.seglen[0] = PT_ENTRY_FIXED;
        r.seg[1] = lk.name; /* the name as the path spells it */
        r.seglen[1] = lk.name_len;
        r.seg[2] = reg;
        r.seglen[2] = pt_reg_struct(reg, 0, PT_NULL, 0, NULL, 0);
        uint32_t gen = fs->layout_gen;
        err = pt_fs_commit(fs, &lk.md, &r, 1);
        if (err) goto fail;
        pt_alloc_ack(fs);
        if (gen != fs->layout_gen) {
            /* the commit may have moved the directory's head: look the entry up again */
            err = pt_lookup(fs, path, &lk, -1);
            if (!err && lk.exists != 1) err = -PT_ENOENT;
            if (err) goto fail;
        }
    } else
#endif
    {
        file->size = lk.e.size;
        file->root = lk.e.root;
        file->depth = lk.e.depth;
        memcpy(file->direct, lk.e.direct, sizeof(file->direct));
        file->tree_size = lk.e.size - lk.e.tail_len;
        if (lk.e.tail_len > 0) {
            uint32_t pld = pt_page_payload(fs);
            if (lk.e.tail_len > pld || file->tree_size % pld) {
                err = -PT_ECORRUPT;
                goto fail;
            }
            memset(file->buf, 0, pld);
            err = pt_read(fs, lk.e.block, lk.e.tail_off, file->buf, lk.e.tail_len,
                          lk.e.tail_len);
            if (err) goto fail;
            file->buf_page = file->tree_size / pld;
            file->buf_state = PT_BUF_CLEAN;
        }
        if (flags & PETREL_O_TRUNC) {
            file->size = 0;
            file->tree_size = 0;
            file->root = PT_NULL;
            file->depth = 0;
            file->buf_state = PT_BUF_EMPTY;
            file->dirty = 1;
        }
    }
    memcpy(file->head, lk.parent, sizeof(file->head));
    file->hash = lk.hash;
    memcpy(file->epair, lk.md.pair, sizeof(file->epair));
    file->egen = fs->layout_gen;
    file->epair_valid = 1;
    pt_handle_link(fs, &file->h, PETREL_FS_REG);
    return 0;
fail:
#ifndef PETREL_FS_NO_MALLOC
    if (file->buf_alloc) free(file->buf);
    if (file->pend_alloc) free(file->pend);
#endif
    file->buf = NULL;
    file->pend = NULL;
    return err;
}

int petrel_fs_file_opencfg(struct petrel_fs *fs, struct petrel_fs_file *file, const char *path,
                           int flags, const struct petrel_fs_file_config *fcfg)
{
    PT_REQUIRE_MOUNTED(fs);
    return pt_file_open_typed(fs, file, path, flags, fcfg, PETREL_FS_REG);
}

#ifndef PETREL_FS_READONLY
int petrel_fs_mknod(struct petrel_fs *fs, const char *path, uint8_t type)
{
    PT_REQUIRE_MOUNTED(fs);
    struct petrel_fs_file file;
    int err;
    if (!PETREL_FS_TYPE_HAS_DATA(type)) return -PT_EINVAL;
    err = pt_file_open_typed(fs, &file, path, PETREL_O_WRONLY | PETREL_O_CREAT | PETREL_O_EXCL,
                             NULL, type);
    if (err) return err;
    return petrel_fs_file_close(fs, &file);
}
#endif /* PETREL_FS_READONLY */

int petrel_fs_file_open(struct petrel_fs *fs, struct petrel_fs_file *file, const char *path,
                        int flags)
{
    PT_REQUIRE_MOUNTED(fs);
    return petrel_fs_file_opencfg(fs, file, path, flags, NULL);
}

int64_t petrel_fs_file_read(struct petrel_fs *fs, struct petrel_fs_file *f, void *buf,
                            uint64_t size)
{
    PT_REQUIRE_MOUNTED(fs);
    uint8_t *out = (uint8_t *)buf;
    uint32_t pld = pt_page_payload(fs);
    uint64_t done = 0;
    if (!pt_file_readable(f)) return -PT_EBADF;
    if (f->error) return f->error;
    if (f->pos >= f->size) return 0;
    size = PT_MIN(size, f->size - f->pos);
    while (done < size) {
        uint64_t p = f->pos / pld;
        uint32_t o = (uint32_t)(f->pos % pld);
        uint32_t n = (uint32_t)PT_MIN((uint64_t)(pld - o), size - done);
        if (f->buf_state != PT_BUF_EMPTY && f->buf_page == p) {
            memcpy(out + done, f->buf + o, n);
        } else {
            const uint8_t *src;
            int err = pt_file_page_src(fs, f, p, &src);
            if (err) return err;
            if (src)
                memcpy(out + done, src + o, n);
            else
                memset(out + done, 0, n);
        }
        done += n;
        f->pos += n;
    }
    return (int64_t)done;
}

#ifndef PETREL_FS_READONLY
int64_t petrel_fs_file_write(struct petrel_fs *fs, struct petrel_fs_file *f, const void *buf,
                             uint64_t size)
{
    PT_REQUIRE_MOUNTED(fs);
    const uint8_t *in = (const uint8_t *)buf;
    uint32_t pld = pt_page_payload(fs);
    uint64_t done = 0;
    if (!pt_file_writable(f)) return -PT_EBADF;
    if (f->error) return f->error;
    if (fs->readonly) return -PT_EROFS;
    if (f->flags & PETREL_O_APPEND) f->pos = f->size;
    if (f->pos > fs->file_max || size > fs->file_max - f->pos) return -PT_EFBIG;
    if (size == 0 && f->pos > f->size) {
        /* like littlefs: even an empty write past the end fills the gap with zeros */
        f->size = f->pos;
        f->dirty = 1;
    }
    while (done < size) {
        uint64_t p = f->pos / pld;
        uint32_t o = (uint32_t)(f->pos % pld);
        uint32_t n = (uint32_t)PT_MIN((uint64_t)(pld - o), size - done);
        int err = pt_file_load(fs, f, p);
        if (err) {
            f->error = err;
            return err;
        }
        memcpy(f->buf + o, in + done, n);
        f->buf_state = PT_BUF_DIRTY;
        done += n;
        f->pos += n;
        if (f->pos > f->size) f->size = f->pos;
        f->dirty = 1;
    }
    return (int64_t)done;
}
#endif /* PETREL_FS_READONLY */

int64_t petrel_fs_file_seek(struct petrel_fs *fs, struct petrel_fs_file *f, int64_t off,
                            int whence)
{
    PT_REQUIRE_MOUNTED(fs);
    int64_t base;
    if (whence == PETREL_SEEK_SET)
        base = 0;
    else if (whence == PETREL_SEEK_CUR)
        base = (int64_t)f->pos;
    else if (whence == PETREL_SEEK_END)
        base = (int64_t)f->size;
    else
        return -PT_EINVAL;
    if ((off < 0 && base + off < 0)) return -PT_EINVAL;
    if (off > 0 && (uint64_t)(base + off) > fs->file_max) return -PT_EFBIG;
    f->pos = (uint64_t)(base + off);
    return (int64_t)f->pos;
}

int64_t petrel_fs_file_tell(struct petrel_fs *fs, struct petrel_fs_file *f)
{
    PT_REQUIRE_MOUNTED(fs);
    (void)fs;
    return (int64_t)f->pos;
}

int64_t petrel_fs_file_size(struct petrel_fs *fs, struct petrel_fs_file *f)
{
    PT_REQUIRE_MOUNTED(fs);
    (void)fs;
    return (int64_t)f->size;
}

#ifndef PETREL_FS_READONLY
int petrel_fs_file_truncate(struct petrel_fs *fs, struct petrel_fs_file *f, uint64_t size)
{
    PT_REQUIRE_MOUNTED(fs);
    uint32_t pld = pt_page_payload(fs), ppb = pt_pages_per_block(fs);
    int err;
    if (!pt_file_writable(f)) return -PT_EBADF;
    if (f->error) return f->error;
    if (fs->readonly) return -PT_EROFS;
    if (size > fs->file_max) return -PT_EFBIG;
    if (size < f->size) {
        uint64_t keep_pages = (size + pld - 1) / pld;
        uint64_t d = (uint64_t)ppb * pld;
        uint32_t bi, nb_new, nb_old;
        if (f->buf_state != PT_BUF_EMPTY && f->buf_page >= keep_pages) f->buf_state = PT_BUF_EMPTY;
        if (size % pld) {
            /* the new last page keeps its head and loses its tail: it moves to the buffer */
            uint64_t p = size / pld;
            err = pt_file_load(fs, f, p);
            if (err) goto fail;
            memset(f->buf + size % pld, 0, pld - size % pld);
            f->buf_state = PT_BUF_DIRTY;
            if (f->tree_size > p * pld) f->tree_size = p * pld;
        } else if (f->tree_size > size) {
            f->tree_size = size;
        }
        /* the open block was filled under the old size: close it, so that later writes
         * copy only the pages the new size keeps */
        err = pt_file_close_ob(fs, f);
        if (err) goto fail;
        /* drop data blocks wholly past the new end */
        nb_new = (uint32_t)((f->tree_size + d - 1) / d);
        nb_old = (uint32_t)((f->size + d - 1) / d);
        if (f->tree_size == 0) {
            f->root = PT_NULL;
            f->map_valid = 0;
            f->depth = 0;
            f->pend_n = 0;
        } else {
            for (bi = nb_new; bi < nb_old; bi++) {
                uint32_t blk;
                err = pt_file_block(fs, f, bi, &blk);
                if (!err && blk != PT_NULL) err = pt_file_pend(fs, f, bi, PT_NULL);
                if (err) goto fail;
            }
        }
        f->size = size;
    } else if (size > f->size) {
        f->size = size;
    }
    f->dirty = 1;
    return 0;
fail:
    f->error = err;
    return err;
}
#endif /* PETREL_FS_READONLY */

#ifndef PETREL_FS_READONLY
int petrel_fs_file_sync(struct petrel_fs *fs, struct petrel_fs_file *f)
{
    PT_REQUIRE_MOUNTED(fs);
    uint32_t pld = pt_page_payload(fs);
    uint16_t tail_len = 0;
    struct pt_mdir md;
    struct pt_entry e;
    struct pt_rec r;
    uint8_t ent[PT_ENTRY_FIXED], reg[PT_REGSTRUCT_MAX];
    int err, keep_tail;

    if (f->error) return f->error;
    if (!pt_file_writable(f)) return 0;
    if (!f->dirty && f->buf_state != PT_BUF_DIRTY && !f->ob_open && f->pend_n == 0) return 0;
    if (fs->readonly) return -PT_EROFS;
    err = pt_mstate_mark_dirty(fs); /* done at open in this session: nothing to do */
    if (err) return err;

    keep_tail = f->buf_state != PT_BUF_EMPTY && f->buf_page * pld == f->tree_size &&
                f->size > f->tree_size && f->size - f->tree_size <= fs->inline_max;
    if (!keep_tail && f->size > f->tree_size) {
        /* everything past the tree goes into it, through the last page */
        err = pt_file_load(fs, f, (f->size - 1) / pld);
        if (!err) err = pt_file_prog_page(fs, f, (f->size - 1) / pld);
        if (err) goto fail;
    } else if (f->buf_state == PT_BUF_DIRTY && f->buf_page * pld < f->tree_size) {
        err = pt_file_prog_page(fs, f, f->buf_page);
        if (err) goto fail;
    }
    err = pt_file_close_ob(fs, f);
    if (!err) err = pt_tree_apply(fs, &f->root, &f->depth, f);
    if (err) goto fail;
    if (f->tree_size == 0) {
        f->root = PT_NULL;
        f->depth = 0;
        f->map_valid = 0;
    }
    if (keep_tail) tail_len = (uint16_t)(f->size - f->tree_size);

    /* the pair that held the entry, unless entries may have moved since */
    err = 1;
    if (f->epair_valid && f->egen == fs->layout_gen) {
        err = pt_mdir_fetch(fs, &md, f->epair, &f->hash);
        if (err == 0 && md.found != PT_REC_ENTRY) err = 1;
    }
    if (err) err = pt_dir_find_pair(fs, f->head, f->hash, &md);
    if (err) goto fail;
    if (md.found != PT_REC_ENTRY) {
        err = -PT_ENOENT;
        goto fail;
    }
    err = pt_entry_decode(fs, md.pair[0], &md.found_rec, &e);
    if (err) goto fail;
    if (e.type != f->type) {
        err = -PT_ENOENT;
        goto fail;
    }
    pt_put_le64(ent, f->hash);
    ent[8] = e.type;
    ent[9] = e.name_len;
    /* the name copied from the entry's record on the device: md's newest log block, which
     * the commit appends to or compacts out of (unchanged until it returns) */
    memset(&r, 0, sizeof(r));
    r.type = PT_REC_ENTRY;
    r.hash = f->hash;
    r.seg[0] = ent;
    r.seglen[0] = PT_ENTRY_FIXED;
    r.copy_at = 1;
    r.copy_block = e.block;
    r.copy_off = e.name_off;
    r.copy_len = e.name_len;
    r.seg[1] = reg;
    r.seglen[1] = pt_reg_struct(reg, f->size, f->root, f->depth, f->direct, tail_len);
    r.seg[2] = f->buf;
    r.seglen[2] = tail_len;
    err = pt_fs_commit(fs, &md, &r, 1);
    if (err) goto fail;
    memcpy(f->epair, md.pair, sizeof(f->epair));
    f->egen = fs->layout_gen;
    f->epair_valid = 1;
    err = pt_sync(fs);
    if (err) goto fail;
    if (f->buf_state == PT_BUF_DIRTY) f->buf_state = PT_BUF_CLEAN;
    f->dirty = 0;
    pt_alloc_ack(fs);
#ifdef PT_WEAR
    (void)pt_wear_level(fs); /* between operations; the sync is done whatever it meets */
#endif
    return 0;
fail:
    if (err != -PT_ENOSPC) f->error = err;
    return err;
}
#endif /* PETREL_FS_READONLY */

int petrel_fs_file_close(struct petrel_fs *fs, struct petrel_fs_file *f)
{
    PT_REQUIRE_MOUNTED(fs);
    int err = 0;
#ifndef PETREL_FS_READONLY
    if (pt_file_writable(f)) {
        err = f->error ? f->error : petrel_fs_file_sync(fs, f);
    }
#endif
    pt_handle_unlink(fs, &f->h);
#ifndef PETREL_FS_NO_MALLOC
    if (f->buf_alloc) free(f->buf);
    if (f->pend_alloc) free(f->pend);
#endif
    f->buf = NULL;
    f->pend = NULL;
    return err;
}

int pt_file_inflight(struct petrel_fs *fs, int (*cb)(void *ctx, uint32_t block, int is_data),
                     void *ctx)
{
    struct petrel_fs_handle *h;
    for (h = fs->handles; h; h = h->next) {
        struct petrel_fs_file *f;
        uint32_t i;
        int err;
        if (h->kind != PETREL_FS_REG) continue;
        f = (struct petrel_fs_file *)(void *)h;
        if (f->ob_open) {
            err = cb(ctx, f->ob_block, 1);
            if (err) return err;
        }
        for (i = 0; i < f->pend_n; i++) {
            if (f->pend[i].block == PT_NULL) continue;
            err = cb(ctx, f->pend[i].block, 1);
            if (err) return err;
        }
        err = pt_tree_walk(fs, f->root, f->depth, f->direct, f->size, cb, ctx);
        if (err) return err;
    }
    return 0;
}
