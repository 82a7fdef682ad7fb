/*
 * The block allocator: a lookahead bitmap over a window of the device that moves forward
 * around the device, starting at a point seeded from the image itself.
 *
 * Owns fs->lookahead and the look_* fields. A block is handed out only when no committed
 * structure and no open file uses it (the window is filled by a traversal) and it has not
 * been handed out since the last acknowledgement. The allocator counts the positions it
 * passes since the last acknowledgement (look_ack counts down from block_count) and reports
 * -PT_ENOSPC once it has gone round the whole device without one. A rescan's window starts
 * right after the last position passed and covers at most look_ack positions, so it never
 * covers a position passed since the last acknowledgement: a block handed out but not yet
 * referenced by a commit (a pair being split, index blocks of a sync) is never handed out
 * twice, while every block freed since the previous scan comes back at the next one.
 * The start point is the XOR of the CRCs of all commits read at mount (plus cfg->seed_mix):
 * the same image allocates the same way every time, different images spread wear
 * differently.
 */
#include "fs/fs_internal.h"

void pt_alloc_init(struct petrel_fs *fs)
{
    /* An empty window at the seeded point: the first allocation scans from there. */
    fs->look_start = (uint32_t)(fs->seed % fs->block_count);
    fs->look_len = 0;
    fs->look_next = 0;
    fs->look_ack = fs->block_count;
}

void pt_alloc_ack(struct petrel_fs *fs)
{
    fs->look_ack = fs->block_count;
}

void pt_alloc_drop_window(struct petrel_fs *fs)
{
    /* The next scan starts at the first position not passed yet. */
    fs->look_start = (fs->look_start + fs->look_next) % fs->block_count;
    fs->look_len = 0;
    fs->look_next = 0;
}

static int pt_alloc_mark(void *ctx, uint32_t block, int is_data)
{
    struct petrel_fs *fs = (struct petrel_fs *)ctx;
    uint32_t rel;
    (void)is_data;
    if (block >= fs->block_count) return 0;
    rel = (block + fs->block_count - fs->look_start) % fs->block_count;
    if (rel < fs->look_len) fs->lookahead[rel / 8] |= (uint8_t)(1u << (rel % 8));
    return 0;
}

static int pt_alloc_scan(struct petrel_fs *fs)
{
    int err;
    fs->look_start = (fs->look_start + fs->look_len) % fs->block_count;
    /* Positions passed since the last acknowledgement lie just before the new start; the
     * window stops before reaching them again. */
    fs->look_len = PT_MIN(fs->look_size, fs->look_ack);
    fs->look_next = 0;
    memset(fs->lookahead, 0, (fs->look_size + 7) / 8);
    err = pt_traverse(fs, 1, pt_alloc_mark, fs);
    if (err) pt_alloc_drop_window(fs); /* nothing passed: retry the same window next time */
    return err;
}

int pt_alloc(struct petrel_fs *fs, uint32_t *block)
{
    /* a block handed out may be one a saved finger names (a directory removed before the
     * clean unmount left its pairs free): the saved fingers go */
    fs->dfg_n = 0;
    fs->ix_known = 0; /* and so may the block of a removed directory's index */
    for (;;) {
        while (fs->look_next < fs->look_len) {
            uint32_t rel = fs->look_next++;
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

#ifdef PT_WEAR
/* For static wear leveling (wear.c), between operations: the most erased free block of the
 * window, which `fresh` first makes anew from the position reached, as wide as the lookahead
 * and the going-round count allow; marked taken, so the window never hands it out again (a
 * move's next picks and its index blocks come from the same window). The free blocks passed
 * over stay free. -PT_ENOSPC when the window has none. */
int pt_alloc_worn(struct petrel_fs *fs, uint32_t *block, int fresh)
{
    uint32_t rel, best = UINT32_MAX;
    if (fresh) {
        int err;
        pt_alloc_drop_window(fs);
        if (fs->look_ack == 0) return -PT_ENOSPC;
        err = pt_alloc_scan(fs);
        if (err) return err;
    }
    for (rel = fs->look_next; rel < fs->look_len; rel++) {
        if (fs->lookahead[rel / 8] & (1u << (rel % 8))) continue;
        if (best == UINT32_MAX || fs->wear[(fs->look_start + rel) % fs->block_count] >
                                      fs->wear[(fs->look_start + best) % fs->block_count])
            best = rel;
    }
    if (best == UINT32_MAX) return -PT_ENOSPC;
    fs->lookahead[best / 8] |= (uint8_t)(1u << (best % 8));
    *block = (fs->look_start + best) % fs->block_count;
    return 0;
}
#endif
