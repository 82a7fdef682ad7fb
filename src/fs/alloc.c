/*
 * The block allocator: a lookahead bitmap over a window of the device that moves forward
 * around the device, starting at a point seeded from the image itself.
 * (A rescan keeps the blocks handed out since the last acknowledgement taken, even when the
 * new window covers them again, as it does when the window spans the whole device.)
 *
 * Owns fs->lookahead and the look_* fields. A block is handed out only when no committed
 * structure and no open file uses it (the window is filled by a traversal) and it has not
 * been handed out since the last acknowledgement: the allocator counts the blocks it passes
 * and reports -PT_ENOSPC once it has gone round the whole device without an ack, so a block
 * allocated but not yet referenced by a commit is never handed out twice. The start point is
 * the XOR of the CRCs of all commits read at mount (plus cfg->seed_mix): the same image
 * allocates the same way every time, different images spread wear differently.
 */
#include "fs/fs_internal.h"

void pt_alloc_init(struct petrel_fs *fs)
{
    uint32_t start = (uint32_t)(fs->seed % fs->block_count);
    /* Force a scan at the first allocation; the first window starts at the seeded point. */
    fs->look_start = (start + fs->block_count - fs->look_size % fs->block_count) % fs->block_count;
    fs->look_next = fs->look_size;
    fs->look_ack = fs->block_count;
}

void pt_alloc_ack(struct petrel_fs *fs)
{
    fs->look_ack = fs->block_count;
}

static int pt_alloc_mark(void *ctx, uint32_t block, int is_data)
{
    struct petrel_fs *fs = (struct petrel_fs *)ctx;
    uint32_t rel;
    (void)is_data;
    if (block >= fs->block_count) return 0;
    rel = (block + fs->block_count - fs->look_start) % fs->block_count;
    if (rel < fs->look_size) fs->lookahead[rel / 8] |= (uint8_t)(1u << (rel % 8));
    return 0;
}

static int pt_alloc_scan(struct petrel_fs *fs)
{
    uint32_t consumed = fs->block_count - fs->look_ack, i;
    int err;
    fs->look_start = (fs->look_start + fs->look_size) % fs->block_count;
    fs->look_next = 0;
    memset(fs->lookahead, 0, (fs->look_size + 7) / 8);
    err = pt_traverse(fs, 1, pt_alloc_mark, fs);
    if (err) return err;
    /* Blocks handed out since the last acknowledgement may not be referenced yet (a pair
     * being split, index blocks of a sync): they are the last `consumed` blocks before the
     * new window, and stay taken wherever the new window covers them again. */
    for (i = 1; i <= consumed; i++) {
        uint32_t rel = fs->block_count - i;
        if (rel < fs->look_size) fs->lookahead[rel / 8] |= (uint8_t)(1u << (rel % 8));
    }
    return 0;
}

int pt_alloc(struct petrel_fs *fs, uint32_t *block)
{
    for (;;) {
        while (fs->look_next < fs->look_size) {
            uint32_t rel = fs->look_next++;
            if (fs->look_ack == 0) return -PT_ENOSPC;
            fs->look_ack--;
            if (!(fs->lookahead[rel / 8] & (1u << (rel % 8)))) {
                fs->lookahead[rel / 8] |= (uint8_t)(1u << (rel % 8));
                *block = (fs->look_start + rel) % fs->block_count;
                return 0;
            }
        }
        if (fs->look_ack == 0) return -PT_ENOSPC;
        {
            int err = pt_alloc_scan(fs);
            if (err) return err;
        }
    }
}

/* Allocate and erase a block; blocks that fail to erase are skipped (left to wear out). */
int pt_alloc_erased(struct petrel_fs *fs, uint32_t *block)
{
    for (;;) {
        int err = pt_alloc(fs, block);
        if (err) return err;
        err = pt_erase(fs, *block);
        if (err == 0) return 0;
        if (err != -PT_EIO && err != -PT_ECORRUPT) return err;
        petrel_log(PT_LOG_WARN, "fs", "block %u failed to erase, skipped", (unsigned)*block);
    }
}
