/*
 * File data: pages with a CRC32C each, grouped in data blocks, addressed by a copy-on-write
 * tree of index blocks (docs/SPEC-FS.md "Data pages" and "Data tree").
 *
 * A page is page_size bytes: payload, then le32 CRC32C of (le32 block, le32 slot, payload),
 * so a page read from the wrong place, a torn page or rotten bits fail the check; a page is
 * never returned unverified. Index blocks hold le32 child addresses in the same page format.
 * The tree is never modified in place: pt_tree_apply writes new index blocks for a batch of
 * data-block updates, level by level (each index block once per batch), and returns the new
 * root; the old tree stays valid until the caller commits the new root. Iterative with a
 * fixed stack of PETREL_FS_TREE_DEPTH_MAX levels; no recursion, no allocation.
 */
#include "fs/fs_internal.h"

uint32_t pt_page_payload(const struct petrel_fs *fs)
{
    return fs->page_size - 4;
}

uint32_t pt_pages_per_block(const struct petrel_fs *fs)
{
    return fs->block_size / fs->page_size;
}

uint32_t pt_tree_fanout(const struct petrel_fs *fs)
{
    return pt_pages_per_block(fs) * (pt_page_payload(fs) / 4);
}

uint32_t pt_page_crc(uint32_t block, uint32_t slot, const uint8_t *payload, uint32_t len)
{
    uint8_t addr[8];
    pt_put_le32(addr, block);
    pt_put_le32(addr + 4, slot);
    return petrel_crc32c(petrel_crc32c(0, addr, 8), payload, len);
}

/* Load a page into the read cache and verify it; *payload points into the cache and is
 * valid until the next device access. */
int pt_page_read(struct petrel_fs *fs, uint32_t block, uint32_t slot, const uint8_t **payload)
{
    uint32_t off = slot * fs->page_size, pld = pt_page_payload(fs);
    struct petrel_fs_cache *c = &fs->rcache;
    uint8_t dummy;
    const uint8_t *p;
    int err;
    if (block >= fs->block_count || slot >= pt_pages_per_block(fs)) return -PT_ECORRUPT;
    if (!(c->block == block && off >= c->off && off + fs->page_size <= c->off + c->size))
        c->block = PT_NULL;
    err = pt_read(fs, block, off, &dummy, 1, fs->page_size);
    if (err) return err;
    if (!(c->block == block && off >= c->off && off + fs->page_size <= c->off + c->size))
        return -PT_EIO;
    p = c->buf + (off - c->off);
    if (pt_page_crc(block, slot, p, pld) != pt_get_le32(p + pld)) {
        petrel_log(PT_LOG_WARN, "fs", "data page %u.%u failed its CRC", (unsigned)block,
                   (unsigned)slot);
        c->block = PT_NULL;
        return -PT_ECORRUPT;
    }
    *payload = p;
    return 0;
}

/* Program a page (payload in page[0, payload), the CRC is written after it) and verify. */
int pt_page_prog(struct petrel_fs *fs, uint32_t block, uint32_t slot, uint8_t *page)
{
    uint32_t pld = pt_page_payload(fs), expect;
    int err;
    pt_put_le32(page + pld, pt_page_crc(block, slot, page, pld));
    expect = petrel_crc32c(0, page, fs->page_size);
    err = pt_prog_direct(fs, block, slot * fs->page_size, page, fs->page_size);
    if (err) return err;
    return pt_verify(fs, block, slot * fs->page_size, fs->page_size, expect);
}

static uint64_t pt_pow(uint32_t f, uint32_t e)
{
    uint64_t r = 1;
    while (e--) {
        if (r > UINT64_MAX / f) return UINT64_MAX;
        r *= f;
    }
    return r;
}

static int pt_index_child(struct petrel_fs *fs, uint32_t node, uint32_t child, uint32_t *out)
{
    uint32_t ppp = pt_page_payload(fs) / 4;
    const uint8_t *p;
    int err = pt_page_read(fs, node, child / ppp, &p);
    if (err) return err;
    *out = pt_get_le32(p + (size_t)4 * (child % ppp));
    if (*out != PT_NULL && *out >= fs->block_count) return -PT_ECORRUPT;
    return 0;
}

/* The node at `level` (0 = data) covering key (its index at that level), or NULL. */
static int pt_tree_node(struct petrel_fs *fs, uint32_t root, uint8_t depth, uint32_t level,
                        uint64_t key, uint32_t *out)
{
    uint32_t f = pt_tree_fanout(fs), cur = root, lev;
    if (key >= pt_pow(f, depth - level)) {
        *out = PT_NULL;
        return 0;
    }
    for (lev = depth; lev > level && cur != PT_NULL; lev--) {
        uint64_t span = pt_pow(f, lev - 1 - level);
        int err = pt_index_child(fs, cur, (uint32_t)((key / span) % f), &cur);
        if (err) return err;
    }
    *out = cur;
    return 0;
}

int pt_tree_lookup(struct petrel_fs *fs, uint32_t root, uint8_t depth, const uint32_t *direct,
                   uint32_t index, uint32_t *block)
{
    uint32_t n = pt_direct_count(depth);
    if (n) {
        *block = index == 0 ? root : index < n ? direct[index - 1] : PT_NULL;
        return *block != PT_NULL && *block >= fs->block_count ? -PT_ECORRUPT : 0;
    }
    if (root == PT_NULL) {
        *block = PT_NULL;
        return 0;
    }
    return pt_tree_node(fs, root, depth, 0, index, block);
}

/* Addresses of logical blocks index, index+1, ... (at most max, and only those in the same
 * index page as index): one page read for a run of a sequential read. */
int pt_tree_lookup_run(struct petrel_fs *fs, uint32_t root, uint8_t depth,
                       const uint32_t *direct, uint32_t index, uint32_t *blocks, uint32_t max,
                       uint8_t *n)
{
    uint32_t f = pt_tree_fanout(fs), ppp = pt_page_payload(fs) / 4, node, child, k;
    const uint8_t *p;
    int err;
    *n = 1;
    if (pt_direct_count(depth)) {
        for (k = 0; k < max && (k == 0 || index + k < pt_direct_count(depth)); k++) {
            err = pt_tree_lookup(fs, root, depth, direct, index + k, &blocks[k]);
            if (err) return err;
        }
        *n = (uint8_t)k;
        return 0;
    }
    if (root == PT_NULL || depth == 0)
        return pt_tree_lookup(fs, root, depth, direct, index, blocks);
    /* the lowest index node covering index, then its page holding index's child */
    err = pt_tree_node(fs, root, depth, 1, index / f, &node);
    if (err) return err;
    if (node == PT_NULL) {
        blocks[0] = PT_NULL;
        return 0;
    }
    child = index % f;
    err = pt_page_read(fs, node, child / ppp, &p);
    if (err) return err;
    for (k = 0; k < max && child + k < f && (child + k) / ppp == child / ppp; k++) {
        uint32_t b = pt_get_le32(p + (size_t)4 * ((child + k) % ppp));
        if (b != PT_NULL && b >= fs->block_count) return -PT_ECORRUPT;
        blocks[k] = b;
    }
    *n = (uint8_t)k;
    return 0;
}

/* Write one index block: old node's pointers (or all NULL) patched with updates
 * pend[i..j) whose child slots are pend[k].index % fanout. */
static int pt_index_write(struct petrel_fs *fs, uint32_t old, const struct petrel_fs_pend *pend,
                          uint32_t i, uint32_t j, uint32_t *out)
{
    uint32_t ppb = pt_pages_per_block(fs), pld = pt_page_payload(fs), ppp = pld / 4;
    uint32_t fan = pt_tree_fanout(fs);
    int tries;
    for (tries = 0; tries < 16; tries++) {
        uint32_t blk, slot;
        int err = pt_alloc_erased(fs, &blk);
        if (err) return err;
        for (slot = 0; slot < ppb && !err; slot++) {
            uint8_t *page;
            uint32_t k;
            if (old != PT_NULL) {
                const uint8_t *p;
                err = pt_page_read(fs, old, slot, &p);
                if (err) return err;
                page = fs->rcache.buf + (size_t)(p - fs->rcache.buf);
            } else {
                fs->rcache.block = PT_NULL;
                page = fs->rcache.buf;
                memset(page, 0xff, pld);
            }
            for (k = i; k < j; k++) {
                uint32_t child = pend[k].index % fan;
                if (child / ppp == slot) pt_put_le32(page + (size_t)4 * (child % ppp), pend[k].block);
            }
            fs->rcache.block = PT_NULL; /* the cache copy is modified */
            err = pt_page_prog(fs, blk, slot, page);
        }
        if (!err) {
            *out = blk;
            return 0;
        }
        if (err != -PT_EIO && err != -PT_ECORRUPT) return err;
        petrel_log(PT_LOG_WARN, "fs", "index block %u failed to program, moving", (unsigned)blk);
    }
    return -PT_ENOSPC; /* no good block found: the device is worn out */
}

int pt_tree_apply(struct petrel_fs *fs, uint32_t *root, uint8_t *depth, struct petrel_fs_file *f)
{
    uint32_t fan = pt_tree_fanout(fs), i, n = f->pend_n, level;
    if (fan == 0) return -PT_EINVAL;
    uint32_t maxidx;
    int err;
    if (n == 0) return 0;
    f->map_valid = 0;
    /* sort by index, keeping the latest update of an index */
    for (i = 1; i < n; i++) {
        uint32_t k = i;
        while (k > 0 && f->pend[k - 1].index > f->pend[k].index) {
            uint32_t ti = f->pend[k].index, tb = f->pend[k].block;
            f->pend[k].index = f->pend[k - 1].index;
            f->pend[k].block = f->pend[k - 1].block;
            f->pend[k - 1].index = ti;
            f->pend[k - 1].block = tb;
            k--;
        }
    }
    maxidx = f->pend[n - 1].index;
    if (*depth == 0 || pt_direct_count(*depth)) {
        /* a file of a few blocks lists them in its entry */
        uint32_t list[PT_DIRECT_MAX], k = pt_direct_count(*depth), m;
        if (k == 0) k = *root != PT_NULL ? 1 : 0;
        for (i = 0; i < PT_DIRECT_MAX; i++)
            list[i] = i >= k ? PT_NULL : i == 0 ? *root : f->direct[i - 1];
        if (maxidx < PT_DIRECT_MAX) {
            for (i = 0; i < n; i++) list[f->pend[i].index] = f->pend[i].block;
            for (k = PT_DIRECT_MAX; k > 0 && list[k - 1] == PT_NULL; k--) {
            }
            *root = k ? list[0] : PT_NULL;
            *depth = (uint8_t)(k > 1 ? PT_DEPTH_DIRECT | k : 0);
            for (i = 1; i < PT_DIRECT_MAX; i++) f->direct[i - 1] = i < k ? list[i] : PT_NULL;
            f->pend_n = 0;
            return 0;
        }
        if (pt_direct_count(*depth)) {
            /* grown past the list: the listed blocks become the first index block's
             * children, then the tree grows as usual */
            struct petrel_fs_pend one[PT_DIRECT_MAX];
            uint32_t nr;
            for (i = 0, m = 0; i < k; i++) {
                if (list[i] == PT_NULL) continue;
                one[m].index = i;
                one[m].block = list[i];
                m++;
            }
            err = pt_index_write(fs, PT_NULL, one, 0, m, &nr);
            if (err) return err;
            *root = nr;
            *depth = 1;
        }
    }
    /* grow: each new level is a real index block whose first child is the old root */
    while ((uint64_t)maxidx >= pt_pow(fan, *depth)) {
        if (*depth >= PETREL_FS_TREE_DEPTH_MAX) return -PT_EFBIG;
        if (*root != PT_NULL) {
            struct petrel_fs_pend one;
            uint32_t nr;
            one.index = 0;
            one.block = *root;
            err = pt_index_write(fs, PT_NULL, &one, 0, 1, &nr);
            if (err) return err;
            *root = nr;
        }
        (*depth)++;
    }
    if (*depth == 0) {
        *root = f->pend[n - 1].block;
        f->pend_n = 0;
        return 0;
    }
    for (level = 1; level <= *depth; level++) {
        uint32_t out = 0;
        i = 0;
        while (i < n) {
            uint32_t key = f->pend[i].index / fan, j = i, old, nb;
            while (j < n && f->pend[j].index / fan == key) j++;
            err = pt_tree_node(fs, *root, *depth, level, key, &old);
            if (err) return err;
            err = pt_index_write(fs, old, f->pend, i, j, &nb);
            if (err) return err;
            f->pend[out].index = key;
            f->pend[out].block = nb;
            out++;
            i = j;
        }
        n = out;
    }
    *root = f->pend[0].block;
    f->pend_n = 0;
    return 0;
}

int pt_tree_walk(struct petrel_fs *fs, uint32_t root, uint8_t depth, const uint32_t *direct,
                 uint64_t size, int (*cb)(void *ctx, uint32_t block, int is_data), void *ctx)
{
    struct {
        uint32_t block, next;
    } st[PETREL_FS_TREE_DEPTH_MAX + 1];
    uint32_t fan = pt_tree_fanout(fs), i;
    int sp = 0, err;
    (void)size;
    for (i = 0; i < pt_direct_count(depth); i++) {
        uint32_t b = i == 0 ? root : direct[i - 1];
        if (b == PT_NULL) continue;
        if (b >= fs->block_count) return -PT_ECORRUPT;
        err = cb(ctx, b, 1);
        if (err) return err;
    }
    if (pt_direct_count(depth)) return 0;
    if (root == PT_NULL) return 0;
    if (root >= fs->block_count) return -PT_ECORRUPT;
    err = cb(ctx, root, depth == 0);
    if (err || depth == 0) return err;
    if (depth > PETREL_FS_TREE_DEPTH_MAX) return -PT_ECORRUPT;
    st[0].block = root;
    st[0].next = 0;
    while (sp >= 0) {
        uint32_t child;
        if (st[sp].next >= fan) {
            sp--;
            continue;
        }
        err = pt_index_child(fs, st[sp].block, st[sp].next++, &child);
        if (err) return err;
        if (child == PT_NULL) continue;
        err = cb(ctx, child, sp + 1 == depth);
        if (err) return err;
        if (sp + 1 < depth) {
            sp++;
            st[sp].block = child;
            st[sp].next = 0;
        }
    }
    return 0;
}
