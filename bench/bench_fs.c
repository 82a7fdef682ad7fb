/*
 * Flash engine workloads on an emulated NOR chip (read 16 B, prog 16 B, erase 4 KiB, 512
 * blocks): bytes read, programmed and erased per workload, counted by the emulated device.
 * Lines:
 *   fs-bench NAME cache=N read=BYTES prog=BYTES erase=BYTES
 *   fs-budget NAME cache=N VALUE<=LIMIT ok|over (the budgets of issue 9 §2, at caches 256, 4096;
 *                                              lookup-cold: the lookup budget with every pair
 *                                              fetched cold, as after a mount without a walk)
 *   fs-bench bigdir / bigdir-cold ...          (issue 9 §2b: big directories; bigdir-cold, at
 *                                              caches 256 and 4096: the first lookups in two
 *                                              directories after a mount, and after churn and
 *                                              a remount: bounded by the directory index)
 *   fs-ram ...                                 (structs and configured buffers)
 *   fs-code ...                                (engine text size built with -Os)
 * Byte counts are deterministic: the device and the engine take no randomness but the seed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "petrel/bd.h"
#include "petrel/common.h"
#include "petrel/fs.h"
#include "petrel/prng.h"
#include "fs/fs_internal.h"

#define BF_BLOCKS 512
#define BF_BLOCK 4096
#define BF_CACHE 4096 /* the engine's default cache for blocks of 4 KiB or less */
#define BF_DATA (512u * 1024u)
#define BF_LOOKAHEAD 64

struct bf {
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_fs_config cfg;
    struct petrel_fs fs;
    uint8_t rbuf[BF_CACHE], pbuf[BF_CACHE], look[BF_LOOKAHEAD];
};

static int bf_failed;
static uint32_t bf_page_payload; /* the page buffer petrel_fs_file_open allocates (page_size) */

static int bf_ok(long long r, const char *what)
{
    if (r < 0) {
        fprintf(stderr, "fs-bench: %s: %s\n", what, petrel_errname((int)r));
        bf_failed = 1;
        return 0;
    }
    return 1;
}

static uint32_t bf_cache = BF_CACHE; /* cache_size of the current run */

static int bf_setup(struct bf *b)
{
    struct petrel_bd_emu_config ec;
    memset(b, 0, sizeof(*b));
    memset(&ec, 0, sizeof(ec));
    ec.read_size = 16;
    ec.prog_size = 16;
    ec.block_size = BF_BLOCK;
    ec.block_count = BF_BLOCKS;
    ec.erase_value = 0xff;
    ec.prog_mode = PETREL_BD_EMU_PROG_NOR;
    ec.seed = 1;
    if (!bf_ok(petrel_bd_emu_create(&b->bd, &b->emu, &ec), "device")) return -1;
    b->cfg.bd = &b->bd;
    b->cfg.cache_size = bf_cache;
    b->cfg.lookahead_size = BF_LOOKAHEAD;
    b->cfg.block_cycles = 500;
    b->cfg.read_buffer = b->rbuf;
    b->cfg.prog_buffer = b->pbuf;
    b->cfg.lookahead_buffer = b->look;
    if (!bf_ok(petrel_fs_format(&b->fs, &b->cfg), "format")) return -1;
    if (!bf_ok(petrel_fs_mount(&b->fs, &b->cfg), "mount")) return -1;
    {
        struct petrel_fs_fsinfo info;
        if (!bf_ok(petrel_fs_fsinfo(&b->fs, &info), "fsinfo")) return -1;
        bf_page_payload = info.page_size;
    }
    return 0;
}

static void bf_print(struct bf *b, const char *name)
{
    printf("fs-bench %s cache=%u read=%llu prog=%llu erase=%llu\n", name, (unsigned)bf_cache,
           (unsigned long long)b->emu.stats.read_bytes, (unsigned long long)b->emu.stats.prog_bytes,
           (unsigned long long)b->emu.stats.erase_bytes);
}

static void bf_budget(const char *name, unsigned long long value, unsigned long long limit)
{
    printf("fs-budget %s cache=%u %llu<=%llu %s\n", name, (unsigned)bf_cache, value, limit,
           value <= limit ? "ok" : "over");
}

static int bf_write_file(struct bf *b, const char *path, const uint8_t *data, size_t len)
{
    struct petrel_fs_file f;
    int64_t n;
    int err =
        petrel_fs_file_open(&b->fs, &f, path, PETREL_O_WRONLY | PETREL_O_CREAT | PETREL_O_TRUNC);
    if (err) return err;
    n = petrel_fs_file_write(&b->fs, &f, data, len);
    err = petrel_fs_file_close(&b->fs, &f);
    return n < 0 ? (int)n : err;
}

/* The workloads at one cache size: byte-count lines and the budget lines of issue 9 §2. */
static void bf_run(void)
{
    static struct bf b;
    static uint8_t data[512 * 1024];
    struct pt_prng g;
    struct petrel_fs_file f;
    struct petrel_fs_info info;
    char path[64], path2[64];
    int i;
    size_t off;
    unsigned long long small_read = 0, small_prog = 0, rename_read = 0, seq_prog = 0, seq_read = 0,
                       rand_prog = 0, log_prog = 0, log_erase = 0, lookup_read = 0, cold_read = 0,
                       mount_read = 0, full_read = 0;

    pt_prng_seed(&g, 7);
    pt_prng_fill(&g, data, sizeof(data));

    /* small-files, rename, seq-write, seq-read, rand-write, log-append: one filesystem. */
    if (bf_setup(&b)) return;
    bf_ok(petrel_fs_mkdir(&b.fs, "small"), "mkdir");
    bf_ok(petrel_fs_mkdir(&b.fs, "other"), "mkdir");
    petrel_bd_emu_stats_reset(&b.emu);
    for (i = 0; i < 100; i++) {
        snprintf(path, sizeof(path), "small/file-%03d", i);
        bf_ok(bf_write_file(&b, path, data + i * 64, 64), "small-files");
    }
    bf_print(&b, "small-files");
    small_read = b.emu.stats.read_bytes;
    small_prog = b.emu.stats.prog_bytes;

    petrel_bd_emu_stats_reset(&b.emu);
    for (i = 0; i < 100; i++) {
        snprintf(path, sizeof(path), "small/file-%03d", i);
        snprintf(path2, sizeof(path2), "other/file-%03d", i);
        bf_ok(petrel_fs_rename(&b.fs, path, path2), "rename");
    }
    bf_print(&b, "rename");
    rename_read = b.emu.stats.read_bytes;

    petrel_bd_emu_stats_reset(&b.emu);
    if (bf_ok(petrel_fs_file_open(&b.fs, &f, "seq", PETREL_O_WRONLY | PETREL_O_CREAT), "open")) {
        for (off = 0; off < sizeof(data); off += 4096)
            bf_ok(petrel_fs_file_write(&b.fs, &f, data + off, 4096), "seq-write");
        bf_ok(petrel_fs_file_close(&b.fs, &f), "close");
    }
    bf_print(&b, "seq-write");
    seq_prog = b.emu.stats.prog_bytes;

    petrel_bd_emu_stats_reset(&b.emu);
    if (bf_ok(petrel_fs_file_open(&b.fs, &f, "seq", PETREL_O_RDONLY), "open")) {
        static uint8_t back[4096];
        for (off = 0; off < sizeof(data); off += 4096) {
            if (petrel_fs_file_read(&b.fs, &f, back, 4096) != 4096 ||
                memcmp(back, data + off, 4096) != 0) {
                fprintf(stderr, "fs-bench: seq-read: wrong data at %zu\n", off);
                bf_failed = 1;
                break;
            }
        }
        bf_ok(petrel_fs_file_close(&b.fs, &f), "close");
    }
    bf_print(&b, "seq-read");
    seq_read = b.emu.stats.read_bytes;

    petrel_bd_emu_stats_reset(&b.emu);
    if (bf_ok(petrel_fs_file_open(&b.fs, &f, "seq", PETREL_O_RDWR), "open")) {
        for (i = 0; i < 64; i++) {
            int64_t at = (int64_t)pt_prng_below(&g, sizeof(data) - 256);
            bf_ok(petrel_fs_file_seek(&b.fs, &f, at, PETREL_SEEK_SET), "seek");
            bf_ok(petrel_fs_file_write(&b.fs, &f, data + 1000 + i, 256), "rand-write");
            bf_ok(petrel_fs_file_sync(&b.fs, &f), "sync");
        }
        bf_ok(petrel_fs_file_close(&b.fs, &f), "close");
    }
    bf_print(&b, "rand-write");
    rand_prog = b.emu.stats.prog_bytes;

    petrel_bd_emu_stats_reset(&b.emu);
    if (bf_ok(petrel_fs_file_open(&b.fs, &f, "log",
                                  PETREL_O_WRONLY | PETREL_O_CREAT | PETREL_O_APPEND),
              "open")) {
        for (i = 0; i < 500; i++) {
            bf_ok(petrel_fs_file_write(&b.fs, &f, data + i * 32, 32), "log-append");
            bf_ok(petrel_fs_file_sync(&b.fs, &f), "sync");
        }
        bf_ok(petrel_fs_file_close(&b.fs, &f), "close");
    }
    bf_print(&b, "log-append");
    log_prog = b.emu.stats.prog_bytes;
    log_erase = b.emu.stats.erase_bytes;
    petrel_fs_unmount(&b.fs);
    petrel_bd_emu_destroy(&b.emu);

    /* mount and lookup: a 200-file directory. */
    if (bf_setup(&b)) return;
    bf_ok(petrel_fs_mkdir(&b.fs, "dir"), "mkdir");
    for (i = 0; i < 200; i++) {
        snprintf(path, sizeof(path), "dir/entry-%03d", i);
        bf_ok(bf_write_file(&b, path, data + i * 100, 100), "populate");
    }
    petrel_fs_unmount(&b.fs);
    petrel_bd_emu_stats_reset(&b.emu);
    bf_ok(petrel_fs_mount(&b.fs, &b.cfg), "mount");
    bf_print(&b, "mount");
    mount_read = b.emu.stats.read_bytes;
    petrel_bd_emu_stats_reset(&b.emu);
    for (i = 0; i < 200; i++) {
        snprintf(path, sizeof(path), "dir/entry-%03d", (i * 37) % 200);
        bf_ok(petrel_fs_stat(&b.fs, path, &info), "lookup");
    }
    bf_print(&b, "lookup");
    lookup_read = b.emu.stats.read_bytes;
    /* the same lookups with the pair memory forgotten, as a mount that does not walk the
     * thread would leave it: each pair is fetched cold once */
    pt_links_clear(&b.fs);
    b.fs.dc_valid = 0;
    petrel_bd_emu_stats_reset(&b.emu);
    for (i = 0; i < 200; i++) {
        snprintf(path, sizeof(path), "dir/entry-%03d", (i * 37) % 200);
        bf_ok(petrel_fs_stat(&b.fs, path, &info), "lookup-cold");
    }
    bf_print(&b, "lookup-cold");
    cold_read = b.emu.stats.read_bytes;
    petrel_fs_unmount(&b.fs);
    petrel_bd_emu_destroy(&b.emu);

    /* near-full: fill 80% of the blocks, then one 4 KiB file. */
    if (bf_setup(&b)) return;
    for (i = 0; petrel_fs_usage(&b.fs) < BF_BLOCKS * 8 / 10 && i < 1000; i++) {
        snprintf(path, sizeof(path), "fill-%03d", i);
        if (!bf_ok(bf_write_file(&b, path, data, 64 * 1024), "fill")) break;
    }
    petrel_bd_emu_stats_reset(&b.emu);
    bf_ok(bf_write_file(&b, "last", data, 4096), "near-full");
    bf_print(&b, "near-full");
    full_read = b.emu.stats.read_bytes;
    petrel_fs_unmount(&b.fs);
    petrel_bd_emu_destroy(&b.emu);

    /* small-files prog: at most 1.1x what the engine programmed before issue 9 (36,592 B) */
    bf_budget("small-files-read", small_read, 500000);
    bf_budget("small-files-prog", small_prog, 40251);
    bf_budget("rename-read", rename_read, 845000);
    bf_budget("lookup-read", lookup_read, 200000);
    bf_budget("lookup-cold-read", cold_read, 200000);
    bf_budget("mount-read", mount_read, 23776);
    bf_budget("near-full-read", full_read, 50000);
    bf_budget("rand-write-prog", rand_prog, 1000000);
    bf_budget("log-append-prog", log_prog, 128000);
    bf_budget("log-append-erase", log_erase, 256000);
    bf_budget("seq-write-prog", seq_prog, BF_DATA * 105ull / 100);
    bf_budget("seq-read-read", seq_read, BF_DATA * 105ull / 100);
}

BENCH(fs)
{
    static const uint32_t caches[2] = {256, BF_CACHE};
    int i;
    for (i = 0; i < 2; i++) {
        bf_cache = caches[i];
        bf_run();
    }
    printf("fs-ram struct-petrel_fs=%zu struct-petrel_fs_file=%zu struct-petrel_fs_dir=%zu "
           "read-cache=%d prog-cache=%d lookahead=%d file-page=%u total-one-open-file=%zu\n",
           sizeof(struct petrel_fs), sizeof(struct petrel_fs_file), sizeof(struct petrel_fs_dir),
           BF_CACHE, BF_CACHE, BF_LOOKAHEAD, (unsigned)bf_page_payload,
           sizeof(struct petrel_fs) + sizeof(struct petrel_fs_file) + 2 * BF_CACHE + BF_LOOKAHEAD +
               bf_page_payload);
    fflush(stdout);
    /* Code size: the script compiles the engine with -Os and sums the text sections. */
    if (system("sh bench/fs_code_size.sh") != 0) printf("fs-code unavailable\n");
    if (bf_failed) printf("fs-bench errors: see stderr\n");
}

/* ---- big directories (issue 9 §2b) ---- */

#define BB_BLOCKS 8192u

static unsigned long long bb_mount[3], bb_last_mount, bb_last_lookup_max;

/* One directory of n empty files on a 32 MiB emulated NOR device with a 4 KiB cache and a
 * pair memory of one slot per two blocks (as the image tools configure it): create CPU per
 * file, then after a remount the bytes read by the mount, by a lookup (average of 100) and
 * by reading the whole directory, against the bytes of the directory's logs. */
static void bb_run(uint32_t n, double *create_us, unsigned long long *lookup_avg)
{
    static struct petrel_fs_link links[BB_BLOCKS / 2 + 1];
    static uint32_t link_index[BB_BLOCKS];
    static struct bf b;
    struct petrel_bd_emu_config ec;
    struct petrel_fs_dir d;
    struct petrel_fs_info info;
    struct pt_lookup lk;
    struct pt_mdir md;
    char path[64];
    unsigned long long mount_read, lookup_read, lookup_max = 0, readdir_read, meta = 0;
    uint32_t i, listed = 0, pairs = 0;
    double t0, t1;
    int r;
    memset(&b, 0, sizeof(b));
    memset(&ec, 0, sizeof(ec));
    ec.read_size = 16;
    ec.prog_size = 16;
    ec.block_size = BF_BLOCK;
    ec.block_count = BB_BLOCKS;
    ec.erase_value = 0xff;
    ec.prog_mode = PETREL_BD_EMU_PROG_NOR;
    ec.seed = 1;
    if (!bf_ok(petrel_bd_emu_create(&b.bd, &b.emu, &ec), "device")) return;
    b.cfg.bd = &b.bd;
    b.cfg.cache_size = BF_CACHE;
    b.cfg.lookahead_size = BF_LOOKAHEAD;
    b.cfg.block_cycles = 500;
    b.cfg.read_buffer = b.rbuf;
    b.cfg.prog_buffer = b.pbuf;
    b.cfg.lookahead_buffer = b.look;
    b.cfg.link_buffer = links;
    b.cfg.link_count = BB_BLOCKS / 2 + 1;
    b.cfg.link_index = link_index;
    if (!bf_ok(petrel_fs_format(&b.fs, &b.cfg), "format") ||
        !bf_ok(petrel_fs_mount(&b.fs, &b.cfg), "mount") ||
        !bf_ok(petrel_fs_mkdir(&b.fs, "d"), "mkdir")) {
        petrel_bd_emu_destroy(&b.emu);
        return;
    }
    t0 = (double)clock() / CLOCKS_PER_SEC;
    for (i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "d/f%06u", (unsigned)i);
        if (!bf_ok(bf_write_file(&b, path, NULL, 0), "bigdir create")) break;
    }
    t1 = (double)clock() / CLOCKS_PER_SEC;
    *create_us = (t1 - t0) * 1e6 / n;
    petrel_fs_unmount(&b.fs);
    petrel_bd_emu_stats_reset(&b.emu);
    bf_ok(petrel_fs_mount(&b.fs, &b.cfg), "mount");
    mount_read = b.emu.stats.read_bytes;
    bb_last_mount = mount_read;
    petrel_bd_emu_stats_reset(&b.emu);
    for (i = 0; i < 100; i++) {
        unsigned long long before = b.emu.stats.read_bytes;
        snprintf(path, sizeof(path), "d/f%06u", (unsigned)((i * 7919u) % n));
        bf_ok(petrel_fs_stat(&b.fs, path, &info), "bigdir lookup");
        if (b.emu.stats.read_bytes - before > lookup_max) lookup_max = b.emu.stats.read_bytes - before;
    }
    lookup_read = b.emu.stats.read_bytes / 100;
    bb_last_lookup_max = lookup_max;
    *lookup_avg = lookup_read;
    /* the directory's metadata: the valid logs of its pairs */
    if (pt_lookup(&b.fs, "d", &lk, -1) == 0 && lk.exists == 1 &&
        pt_mdir_fetch(&b.fs, &md, lk.e.pair, NULL) == 0) {
        for (;;) {
            uint32_t next[2];
            meta += md.off;
            pairs++;
            if (!md.next_cont) break;
            next[0] = md.next[0];
            next[1] = md.next[1];
            if (pt_mdir_fetch(&b.fs, &md, next, NULL) != 0) break;
        }
    }
    petrel_bd_emu_stats_reset(&b.emu);
    if (bf_ok(petrel_fs_dir_open(&b.fs, &d, "d"), "dir_open")) {
        while ((r = petrel_fs_dir_read(&b.fs, &d, &info)) == 1)
            listed++;
        bf_ok(r, "dir_read");
        petrel_fs_dir_close(&b.fs, &d);
    }
    readdir_read = b.emu.stats.read_bytes;
    if (listed != n) {
        fprintf(stderr, "fs-bench: bigdir: listed %u of %u\n", (unsigned)listed, (unsigned)n);
        bf_failed = 1;
    }
    printf("fs-bench bigdir entries=%u pairs=%u create-cpu-us-per-file=%.1f mount-read=%llu "
           "lookup-read-avg=%llu lookup-read-max=%llu readdir-read=%llu dir-metadata=%llu\n",
           (unsigned)n, (unsigned)pairs, *create_us, mount_read, lookup_read, lookup_max,
           readdir_read, meta);
    printf("fs-budget bigdir-readdir entries=%u %llu<=%llu %s\n", (unsigned)n, readdir_read,
           2 * meta, readdir_read <= 2 * meta ? "ok" : "over");
    petrel_fs_unmount(&b.fs);
    petrel_bd_emu_destroy(&b.emu);
}

BENCH(fs_bigdir)
{
    static const uint32_t sizes[3] = {1000, 10000, 100000};
    double us[3] = {0, 0, 0};
    unsigned long long lookup[3] = {0, 0, 0};
    int i;
    for (i = 0; i < 3; i++) {
        bb_run(sizes[i], &us[i], &lookup[i]);
        bb_mount[i] = bb_last_mount;
    }
    /* bounded, whatever the number of files: at most the root pair's newest block (its log,
     * with the saved fingers of a big directory) and the other block's revision */
    printf("fs-budget bigdir-mount-read entries=100000 %llu<=%u %s\n", bb_mount[2],
           2u * BF_BLOCK, bb_mount[2] <= 2u * BF_BLOCK ? "ok" : "over");
    printf("fs-budget bigdir-lookup-read entries=100000 %llu<=65536 %s\n", lookup[2],
           lookup[2] <= 65536 ? "ok" : "over");
    /* the largest single lookup right after mount (the first ones fetch pairs cold) */
    printf("fs-budget bigdir-lookup-read-max entries=100000 %llu<=65536 %s\n",
           bb_last_lookup_max, bb_last_lookup_max <= 65536 ? "ok" : "over");
    printf("fs-budget bigdir-create-cpu 100k/1k=%.2f<=2.00 %s\n", us[0] > 0 ? us[2] / us[0] : 0,
           us[0] > 0 && us[2] <= 2 * us[0] ? "ok" : "over");
}

/* ---- cold first lookups outside the saved fingers (issue 9 §2b: "after mount", every
 * directory) ---- */

#define BC_BLOCKS 16384u
#define BC_ENTRIES 100000u

/* The largest read of one lookup among `count` spread over directory dir (n entries named
 * fNNNNNN), right after a mount: the first lookups fetch the pairs they walk cold. */
static unsigned long long bc_lookup_max(struct bf *b, const char *dir, uint32_t n, uint32_t count,
                                        int skip_thirds)
{
    struct petrel_fs_info info;
    unsigned long long max = 0;
    char path[64];
    uint32_t i;
    for (i = 0; i < count; i++) {
        unsigned long long before = b->emu.stats.read_bytes;
        uint32_t k = (i * 7919u) % n;
        if (skip_thirds && k % 3 == 0) k = k ? k - 1 : 1; /* removed by the churn */
        snprintf(path, sizeof(path), "%s/f%06u", dir, (unsigned)k);
        bf_ok(petrel_fs_stat(&b->fs, path, &info), "cold lookup");
        if (b->emu.stats.read_bytes - before > max) max = b->emu.stats.read_bytes - before;
    }
    return max;
}

/* Two directories of 100,000 empty files (a, then b: the clean unmount saves the fingers of
 * one of them); after a clean mount, the largest lookup in each. Then heavy churn in a (a
 * third of its files removed, as many new names created: compactions, splits and drops),
 * a clean unmount, a mount, and the largest lookup in a again. Same device and pair memory
 * as bb_run, twice the blocks. */
static void bc_run(uint32_t cache)
{
    static struct petrel_fs_link links[BC_BLOCKS / 2 + 1];
    static uint32_t link_index[BC_BLOCKS];
    static struct bf b;
    struct petrel_bd_emu_config ec;
    unsigned long long max_a, max_b, max_churn;
    char path[64];
    uint32_t i;
    int ok = 1;
    memset(&b, 0, sizeof(b));
    memset(&ec, 0, sizeof(ec));
    ec.read_size = 16;
    ec.prog_size = 16;
    ec.block_size = BF_BLOCK;
    ec.block_count = BC_BLOCKS;
    ec.erase_value = 0xff;
    ec.prog_mode = PETREL_BD_EMU_PROG_NOR;
    ec.seed = 1;
    if (!bf_ok(petrel_bd_emu_create(&b.bd, &b.emu, &ec), "device")) return;
    b.cfg.bd = &b.bd;
    b.cfg.cache_size = cache;
    b.cfg.lookahead_size = BF_LOOKAHEAD;
    b.cfg.block_cycles = 500;
    b.cfg.read_buffer = b.rbuf;
    b.cfg.prog_buffer = b.pbuf;
    b.cfg.lookahead_buffer = b.look;
    b.cfg.link_buffer = links;
    b.cfg.link_count = BC_BLOCKS / 2 + 1;
    b.cfg.link_index = link_index;
    if (!bf_ok(petrel_fs_format(&b.fs, &b.cfg), "format") ||
        !bf_ok(petrel_fs_mount(&b.fs, &b.cfg), "mount") ||
        !bf_ok(petrel_fs_mkdir(&b.fs, "a"), "mkdir") ||
        !bf_ok(petrel_fs_mkdir(&b.fs, "b"), "mkdir")) {
        petrel_bd_emu_destroy(&b.emu);
        return;
    }
    for (i = 0; ok && i < 2 * BC_ENTRIES; i++) {
        snprintf(path, sizeof(path), "%s/f%06u", i < BC_ENTRIES ? "a" : "b",
                 (unsigned)(i % BC_ENTRIES));
        ok = bf_ok(bf_write_file(&b, path, NULL, 0), "cold create");
    }
    ok = ok && bf_ok(petrel_fs_unmount(&b.fs), "unmount") &&
         bf_ok(petrel_fs_mount(&b.fs, &b.cfg), "mount");
    if (!ok) {
        petrel_bd_emu_destroy(&b.emu);
        return;
    }
    max_a = bc_lookup_max(&b, "a", BC_ENTRIES, 100, 0);
    max_b = bc_lookup_max(&b, "b", BC_ENTRIES, 100, 0);
    /* churn: every third file of a goes, and a new name for each comes */
    for (i = 0; ok && i < BC_ENTRIES; i += 3) {
        snprintf(path, sizeof(path), "a/f%06u", (unsigned)i);
        ok = bf_ok(petrel_fs_remove(&b.fs, path), "churn remove");
        snprintf(path, sizeof(path), "a/g%06u", (unsigned)i);
        ok = ok && bf_ok(bf_write_file(&b, path, NULL, 0), "churn create");
    }
    ok = ok && bf_ok(petrel_fs_unmount(&b.fs), "unmount") &&
         bf_ok(petrel_fs_mount(&b.fs, &b.cfg), "mount");
    if (!ok) {
        petrel_bd_emu_destroy(&b.emu);
        return;
    }
    /* names that survived the churn (i % 3 != 0) */
    max_churn = bc_lookup_max(&b, "a", BC_ENTRIES, 100, 1);
    printf("fs-bench bigdir-cold cache=%u entries=%u dirs=2 lookup-read-max-a=%llu "
           "lookup-read-max-b=%llu lookup-read-max-after-churn=%llu\n",
           (unsigned)cache, (unsigned)BC_ENTRIES, max_a, max_b, max_churn);
    printf("fs-budget bigdir-lookup-read-max-second-dir cache=%u entries=100000 %llu<=65536 %s\n",
           (unsigned)cache, max_a > max_b ? max_a : max_b,
           (max_a > max_b ? max_a : max_b) <= 65536 ? "ok" : "over");
    printf("fs-budget bigdir-lookup-read-max-after-churn cache=%u entries=100000 %llu<=65536 %s\n",
           (unsigned)cache, max_churn, max_churn <= 65536 ? "ok" : "over");
    petrel_fs_unmount(&b.fs);
    petrel_bd_emu_destroy(&b.emu);
}

BENCH(fs_bigdir_cold)
{
    bc_run(256);
    bc_run(BF_CACHE);
}
