/*
 * Static wear leveling (issue 15): a 1 MiB NOR chip (256 blocks of 4 KiB) with an endurance
 * of 100 erases, 90% filled with files that never change, then two small files rewritten in
 * turn until the first block reaches its endurance; the static files are checked at every
 * remount (every 2,000 rewrites) and at the end. Run twice in the same process: static wear
 * leveling off (the baseline: dynamic wear leveling only) and on (wear_spread 16).
 * Lines:
 *   fs-wear spread=S blocks=N endurance=E static-files=K rewrites=R moved=M erases=T
 *           erases/rewrite=A mean=X max=Y mean/endurance=F max/mean=G
 *           (moved: blocks static wear leveling copied; erases/rewrite: the write cost)
 *   fs-wear-histogram spread=S  LO-HI:COUNT ...   (blocks by erase count, buckets of 10)
 *   fs-budget wear-mean/endurance F>=0.80 ok|over  and  wear-max/mean G<=1.50 ok|over
 * The figures are deterministic (seeded device, deterministic engine).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "petrel/bd.h"
#include "petrel/common.h"
#include "petrel/fs.h"
#include "petrel/prng.h"

#define BW_BLOCKS 256
#define BW_BLOCK 4096
#define BW_ENDURANCE 100
#define BW_PER_BLOCK ((BW_BLOCK / 256) * 252) /* file bytes per data block (page 256) */

struct bw {
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_fs_config cfg;
    struct petrel_fs fs;
    uint8_t rbuf[BW_BLOCK], pbuf[BW_BLOCK], look[BW_BLOCKS / 8];
    uint32_t wear[PETREL_FS_WEAR_WORDS(BW_BLOCKS)];
};

struct bw_result {
    double mean_ratio, max_mean;
    int ok;
};

static void bw_pattern(uint8_t *buf, size_t len, uint64_t seed)
{
    struct pt_prng g;
    size_t i;
    pt_prng_seed(&g, seed);
    for (i = 0; i < len; i++)
        buf[i] = (uint8_t)pt_prng_next(&g);
}

static int bw_write(struct bw *b, const char *path, uint64_t seed, size_t len, uint8_t *buf)
{
    struct petrel_fs_file f;
    int64_t n;
    int err =
        petrel_fs_file_open(&b->fs, &f, path, PETREL_O_WRONLY | PETREL_O_CREAT | PETREL_O_TRUNC);
    if (err) return err;
    bw_pattern(buf, len, seed);
    n = petrel_fs_file_write(&b->fs, &f, buf, len);
    err = petrel_fs_file_close(&b->fs, &f);
    return n < 0 ? (int)n : err;
}

/* 1 when path holds len bytes of bw_pattern(seed). */
static int bw_intact(struct bw *b, const char *path, uint64_t seed, size_t len, uint8_t *buf,
                     uint8_t *want)
{
    struct petrel_fs_file f;
    int64_t n;
    if (petrel_fs_file_open(&b->fs, &f, path, PETREL_O_RDONLY)) return 0;
    n = petrel_fs_file_read(&b->fs, &f, buf, len + 1);
    petrel_fs_file_close(&b->fs, &f);
    bw_pattern(want, len, seed);
    return n == (int64_t)len && memcmp(buf, want, len) == 0;
}

static int bw_check_static(struct bw *b, int n, const size_t *sizes, uint8_t *buf, uint8_t *want)
{
    int i;
    for (i = 0; i < n; i++) {
        char path[32];
        snprintf(path, sizeof(path), "s/%03d", i);
        if (!bw_intact(b, path, 100 + (uint64_t)i, sizes[i], buf, want)) {
            fprintf(stderr, "fs-bench: wear: static file %s damaged\n", path);
            return 0;
        }
    }
    return 1;
}

static void bw_run(uint32_t spread, struct bw_result *res)
{
    static struct bw b;
    static uint8_t buf[16 * BW_PER_BLOCK + 64], want[16 * BW_PER_BLOCK + 64];
    static size_t sizes[BW_BLOCKS];
    struct petrel_bd_emu_config ec;
    unsigned long long total = 0, rewrites, moved = 0;
    uint32_t blk, max = 0, hist[11];
    int n = 0, err = 0, i;
    char line[256];
    size_t o;

    res->ok = 0;
    memset(&b, 0, sizeof(b));
    memset(&ec, 0, sizeof(ec));
    ec.read_size = 16;
    ec.prog_size = 16;
    ec.block_size = BW_BLOCK;
    ec.block_count = BW_BLOCKS;
    ec.erase_value = 0xff;
    ec.prog_mode = PETREL_BD_EMU_PROG_NOR;
    ec.seed = 1;
    ec.endurance = BW_ENDURANCE;
    if (petrel_bd_emu_create(&b.bd, &b.emu, &ec)) return;
    b.cfg.bd = &b.bd;
    b.cfg.lookahead_size = BW_BLOCKS / 8;
    b.cfg.block_cycles = 8;
    b.cfg.read_buffer = b.rbuf;
    b.cfg.prog_buffer = b.pbuf;
    b.cfg.lookahead_buffer = b.look;
    b.cfg.wear_spread = spread;
    b.cfg.wear_buffer = b.wear;
    if (petrel_fs_format(&b.fs, &b.cfg) || petrel_fs_mount(&b.fs, &b.cfg) ||
        petrel_fs_mkdir(&b.fs, "s")) {
        fprintf(stderr, "fs-bench: wear: format/mount failed\n");
        goto out;
    }
    /* static files (4 listed blocks, or every third a 14-block tree, single blocks at the end)
     * until 90% of the blocks are in use */
    for (;;) {
        int64_t used = petrel_fs_usage(&b.fs);
        uint32_t blocks = n % 3 == 2 ? 14 : 4, need = blocks + (blocks > 4);
        char path[32];
        if (used < 0) goto out;
        if ((uint64_t)used + need > BW_BLOCKS * 9 / 10) blocks = need = 1;
        if ((uint64_t)used + need > BW_BLOCKS * 9 / 10) break;
        sizes[n] = (size_t)blocks * BW_PER_BLOCK + 20;
        snprintf(path, sizeof(path), "s/%03d", n);
        err = bw_write(&b, path, 100 + (uint64_t)n, sizes[n], buf);
        if (err) goto out;
        n++;
    }
    for (rewrites = 1;; rewrites++) {
        for (blk = 0, max = 0; blk < BW_BLOCKS; blk++)
            max = PT_MAX(max, petrel_bd_emu_wear(&b.emu, blk));
        if (max >= BW_ENDURANCE) break;
        err = bw_write(&b, rewrites % 2 ? "h1" : "h2", 1000 + rewrites,
                       1000 + (size_t)(rewrites % 5) * 700, buf);
        if (err) goto out;
        if (rewrites % 2000 == 0) {
            if (!bw_check_static(&b, n, sizes, buf, want)) goto out;
            moved += spread ? b.fs.wear_moves : 0;
            if (petrel_fs_unmount(&b.fs) || petrel_fs_mount(&b.fs, &b.cfg)) goto out;
        }
    }
    if (!bw_check_static(&b, n, sizes, buf, want)) goto out;
    moved += spread ? b.fs.wear_moves : 0;
    memset(hist, 0, sizeof(hist));
    for (blk = 0; blk < BW_BLOCKS; blk++) {
        uint32_t w = petrel_bd_emu_wear(&b.emu, blk);
        total += w;
        hist[PT_MIN(w / 10, 10u)]++;
    }
    res->mean_ratio = (double)total / BW_BLOCKS / BW_ENDURANCE;
    res->max_mean = total ? (double)max * BW_BLOCKS / (double)total : 0;
    printf("fs-wear spread=%u blocks=%u endurance=%u static-files=%d rewrites=%llu moved=%llu "
           "erases=%llu erases/rewrite=%.2f mean=%.1f max=%u mean/endurance=%.2f max/mean=%.2f\n",
           (unsigned)spread, BW_BLOCKS, BW_ENDURANCE, n, rewrites, moved, total,
           (double)total / (double)rewrites, (double)total / BW_BLOCKS, (unsigned)max,
           res->mean_ratio, res->max_mean);
    o = (size_t)snprintf(line, sizeof(line), "fs-wear-histogram spread=%u", (unsigned)spread);
    for (i = 0; i <= 10 && o < sizeof(line); i++)
        o += (size_t)snprintf(line + o, sizeof(line) - o, " %d-%d:%u", i * 10,
                              i == 10 ? BW_ENDURANCE : i * 10 + 9, (unsigned)hist[i]);
    printf("%s\n", line);
    res->ok = 1;
out:
    if (!res->ok)
        fprintf(stderr, "fs-bench: wear (spread %u): %s after %d static files\n", (unsigned)spread,
                err ? petrel_errname(err) : "failed", n);
    if (b.fs.mounted) petrel_fs_unmount(&b.fs);
    petrel_bd_emu_destroy(&b.emu);
}

BENCH(fs_wear)
{
    struct bw_result off, on;
    bw_run(0, &off);
    bw_run(16, &on);
    if (!off.ok || !on.ok) {
        printf("fs-wear errors: see stderr\n");
        return;
    }
    printf("fs-wear before/after: mean/endurance %.2f -> %.2f, max/mean %.2f -> %.2f\n",
           off.mean_ratio, on.mean_ratio, off.max_mean, on.max_mean);
    printf("fs-budget wear-mean/endurance %.2f>=0.80 %s\n", on.mean_ratio,
           on.mean_ratio >= 0.8 ? "ok" : "over");
    printf("fs-budget wear-max/mean %.2f<=1.50 %s\n", on.max_mean,
           on.max_mean <= 1.5 ? "ok" : "over");
}
