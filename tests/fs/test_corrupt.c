/*
 * Corruption: a flipped bit in a data page gives -PT_ECORRUPT (never wrong bytes) and fsck
 * reports it; a damaged or truncated newest commit makes fetch fall back to the state before
 * it; random garbage and randomly damaged images mount with an error, or mount and then give
 * right bytes or errors on every read — never a crash, a hang or wrong bytes.
 * Damage is located without knowing the format: by finding a file's bytes on the device, or
 * by diffing the image before and after one operation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_harness.h"
#include "petrel/common.h"
#include "petrel/prng.h"
#include "test.h"

/* Find the first place on the device holding len bytes equal to want; 0 if found. */
static int find_bytes(struct fsh_dev *d, const uint8_t *want, size_t len, uint32_t *block,
                      uint32_t *off)
{
    uint32_t b, i, bs = d->geo.block_size;
    for (b = 0; b < d->geo.block_count; b++) {
        const uint8_t *blk = d->emu.memory + (size_t)b * bs;
        for (i = 0; i + len <= bs; i++)
            if (memcmp(blk + i, want, len) == 0) {
                *block = b;
                *off = i;
                return 0;
            }
    }
    return -1;
}

static int count_problems_cb_calls;
static void count_problems(void *ctx, const char *problem)
{
    (void)ctx;
    (void)problem;
    count_problems_cb_calls++;
}

static void data_flip_run(int geometry)
{
    const struct fsh_geometry *geo = &fsh_geometries[geometry];
    struct fsh_dev d;
    struct petrel_fs_file f;
    struct petrel_fs_fsinfo info;
    size_t len = 3 * geo->block_size + 77;
    uint8_t *want = (uint8_t *)malloc(len), *got = (uint8_t *)malloc(len + 1);
    uint32_t block, off, payload;
    int64_t n;
    CHECK(want && got);
    fsh_dev_init(&d, geo, test_seed());
    fsh_format_mount(&d);
    CHECK_OK(petrel_fs_fsinfo(&d.fs, &info));
    payload = info.page_size - 4;
    fsh_pattern(want, len, 99, 0);
    CHECK_OK(fsh_write_file(&d.fs, "big", want, len));
    CHECK_OK(fsh_unmount(&d));
    /* The second page of the file: bytes [payload, payload + 16). */
    CHECK_MSG(find_bytes(&d, want + payload, 16, &block, &off) == 0,
              "%s: the file's second page is not on the device as plain bytes", geo->name);
    CHECK_OK(petrel_bd_emu_flip_range(&d.emu, block, off, 16, 1));
    CHECK_OK(fsh_mount(&d));
    n = fsh_read_file(&d.fs, "big", got, len + 1);
    CHECK_MSG(n == -PT_ECORRUPT, "%s: reading a file with a flipped data bit gave %s", geo->name,
              n < 0 ? petrel_errname((int)n) : "data");
    /* Pages other than the damaged one still read right. */
    CHECK_OK(petrel_fs_file_open(&d.fs, &f, "big", PETREL_O_RDONLY));
    n = petrel_fs_file_read(&d.fs, &f, got, payload);
    CHECK_EQ(n, payload);
    CHECK_MEM(got, want, payload);
    CHECK_EQ(petrel_fs_file_read(&d.fs, &f, got, payload), -PT_ECORRUPT);
    CHECK_EQ(petrel_fs_file_seek(&d.fs, &f, 2 * (int64_t)payload, PETREL_SEEK_SET),
             2 * (int64_t)payload);
    n = petrel_fs_file_read(&d.fs, &f, got, len - 2 * payload);
    CHECK_EQ(n, (int64_t)(len - 2 * payload));
    CHECK_MEM(got, want + 2 * payload, len - 2 * payload);
    CHECK_OK(petrel_fs_file_close(&d.fs, &f));
    count_problems_cb_calls = 0;
    CHECK_EQ(petrel_fs_check(&d.fs, count_problems, NULL), -PT_ECORRUPT);
    CHECK(count_problems_cb_calls > 0);
    /* Flip it back: clean again. */
    CHECK_OK(fsh_unmount(&d));
    memcpy(d.emu.memory + (size_t)block * geo->block_size + off, want + payload, 16);
    CHECK_OK(fsh_mount(&d));
    CHECK_OK(petrel_fs_check(&d.fs, NULL, NULL));
    CHECK_EQ(fsh_file_equals(&d.fs, "big", want, len), 1);
    fsh_dev_free(&d);
    free(want);
    free(got);
}

TEST(corrupt_data_page_nor)
{
    data_flip_run(FSH_NOR);
}
TEST(corrupt_data_page_emmc)
{
    data_flip_run(FSH_EMMC);
}
TEST(corrupt_data_page_nand)
{
    data_flip_run(FSH_NAND);
}
TEST(corrupt_data_page_tiny)
{
    data_flip_run(FSH_TINY);
}

/*
 * The newest commit damaged: snapshot, do one small metadata operation (setattr), diff to
 * find the bytes it programmed, then for many single-bit flips and truncations inside them:
 * mount succeeds, fsck is clean, the file is intact and the attribute is either absent (the
 * fallback) or exactly right.
 */
static void damaged_commit_run(int geometry)
{
    const struct fsh_geometry *geo = &fsh_geometries[geometry];
    struct fsh_dev d;
    struct petrel_bd snap_bd, after_bd;
    struct petrel_bd_emu snap, after;
    struct petrel_bd_emu_config ec;
    struct pt_prng g;
    size_t bytes = (size_t)geo->block_size * geo->block_count, i, lo = (size_t)-1, hi = 0;
    int trial, fellback = 0, kept = 0;
    fsh_dev_init(&d, geo, test_seed());
    pt_prng_seed(&g, test_seed());
    fsh_format_mount(&d);
    CHECK_OK(fsh_write_pattern(&d.fs, "f", 5, 300));
    CHECK_OK(petrel_fs_mkdir(&d.fs, "dir"));
    CHECK_OK(fsh_unmount(&d));
    ec = d.emu.cfg;
    CHECK_OK(petrel_bd_emu_create(&snap_bd, &snap, &ec));
    CHECK_OK(petrel_bd_emu_create(&after_bd, &after, &ec));
    CHECK_OK(petrel_bd_emu_copy(&snap, &d.emu));
    CHECK_OK(fsh_mount(&d));
    CHECK_OK(petrel_fs_setattr(&d.fs, "f", 7, "attribute", 9));
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(petrel_bd_emu_copy(&after, &d.emu));
    for (i = 0; i < bytes; i++)
        if (snap.memory[i] != after.memory[i]) {
            if (lo == (size_t)-1) lo = i;
            hi = i;
        }
    CHECK(lo != (size_t)-1);
    if (lo / geo->block_size != hi / geo->block_size) {
        test_log("%s: the commit touched more than one block (compaction); nothing to damage",
                 geo->name);
        goto out;
    }
    for (trial = 0; trial < 64; trial++) {
        uint8_t v[16];
        int64_t n;
        int err;
        /* Half the damage lands in the first bytes the commit changed (its records, surely
         * under its CRC); the rest anywhere it changed (on big program units much of that is
         * padding, which no CRC needs to cover). */
        size_t span = trial % 2 ? hi - lo + 1 : PT_MIN(hi - lo + 1, (size_t)64);
        size_t at = lo + (size_t)pt_prng_below(&g, span);
        CHECK_OK(petrel_bd_emu_copy(&d.emu, &after));
        if (trial % 4 == 3) {
            /* Truncated: the commit's tail never made it (erased again). */
            uint32_t blk = (uint32_t)(at / geo->block_size);
            uint32_t from = (uint32_t)(at % geo->block_size);
            CHECK_OK(petrel_bd_emu_set_erased(&d.emu, blk, from, geo->block_size - from));
        } else {
            d.emu.memory[at] ^= (uint8_t)(1u << pt_prng_below(&g, 8));
        }
        err = fsh_mount(&d);
        CHECK_MSG(err == 0, "%s trial %d: mount with a damaged newest commit: %s", geo->name, trial,
                  petrel_errname(err));
        err = petrel_fs_check(&d.fs, fsh_check_log, NULL);
        CHECK_MSG(err == 0, "%s trial %d: fsck: %s", geo->name, trial, petrel_errname(err));
        CHECK_EQ(fsh_file_is_pattern(&d.fs, "f", 5, 300), 1);
        n = petrel_fs_getattr(&d.fs, "f", 7, v, sizeof(v));
        if (n == -PT_ENODATA) {
            fellback++;
        } else {
            CHECK_MSG(n == 9 && memcmp(v, "attribute", 9) == 0,
                      "%s trial %d: attribute reads %lld bytes, not the right ones", geo->name,
                      trial, (long long)n);
            kept++;
        }
        /* And it takes new commits after the damage. */
        CHECK_OK(petrel_fs_setattr(&d.fs, "f", 8, "again", 5));
        CHECK_OK(fsh_unmount(&d));
        CHECK_OK(fsh_mount(&d));
        CHECK_EQ(petrel_fs_getattr(&d.fs, "f", 8, v, sizeof(v)), 5);
        CHECK_OK(fsh_unmount(&d));
    }
    CHECK(fellback > 0);
    test_log("%s: %d fallbacks, %d damages outside the checked bytes", geo->name, fellback, kept);
out:
    petrel_bd_emu_destroy(&snap);
    petrel_bd_emu_destroy(&after);
    fsh_dev_free(&d);
}

TEST(corrupt_newest_commit_nor)
{
    damaged_commit_run(FSH_NOR);
}
TEST(corrupt_newest_commit_emmc)
{
    damaged_commit_run(FSH_EMMC);
}
TEST(corrupt_newest_commit_nand)
{
    damaged_commit_run(FSH_NAND);
}
TEST(corrupt_newest_commit_tiny)
{
    damaged_commit_run(FSH_TINY);
}

/*
 * Walk everything a mounted (possibly damaged) image shows, bounded: every directory listing
 * ends, every read ends, files named fN hold pattern N (or nothing yet, or an error).
 */
static void walk_damaged(struct fsh_dev *d)
{
    static const char *const dirs[] = {"/", "a", "a/b", "c"};
    static uint8_t buf[70000];
    size_t k;
    for (k = 0; k < PT_ARRAY_SIZE(dirs); k++) {
        struct petrel_fs_dir dir;
        struct petrel_fs_info info;
        int r, guard = 0;
        if (petrel_fs_dir_open(&d->fs, &dir, dirs[k]) != 0) continue;
        while ((r = petrel_fs_dir_read(&d->fs, &dir, &info)) > 0) {
            CHECK_MSG(++guard < 10000, "directory %s does not end", dirs[k]);
            if (info.type == PETREL_FS_REG && info.name[0] == 'f') {
                char path[300];
                unsigned id = (unsigned)atoi(info.name + 1);
                int64_t n;
                snprintf(path, sizeof(path), "%s/%s", dirs[k], info.name);
                n = fsh_read_file(&d->fs, path, buf, sizeof(buf));
                if (n > 0) {
                    uint8_t *want = (uint8_t *)malloc((size_t)n);
                    CHECK(want != NULL);
                    fsh_pattern(want, (size_t)n, 1000 + id, 0);
                    CHECK_MSG(memcmp(want, buf, (size_t)n) == 0,
                              "%s read back wrong bytes from a damaged image", path);
                    free(want);
                }
            }
        }
        petrel_fs_dir_close(&d->fs, &dir);
    }
    petrel_fs_check(&d->fs, NULL, NULL);
    petrel_fs_usage(&d->fs);
}

/* A populated image: files fN of pattern 1000+N in /, a, a/b, c. */
static void populate(struct fsh_dev *d)
{
    static const char *const dirs[] = {"", "a/", "a/b/", "c/"};
    unsigned i;
    CHECK_OK(petrel_fs_mkdir(&d->fs, "a"));
    CHECK_OK(petrel_fs_mkdir(&d->fs, "a/b"));
    CHECK_OK(petrel_fs_mkdir(&d->fs, "c"));
    for (i = 0; i < 12; i++) {
        char path[32];
        size_t len = i % 3 == 0 ? 20 : i % 3 == 1 ? 700 : 2 * d->geo.block_size + 5;
        snprintf(path, sizeof(path), "%sf%u", dirs[i % 4], i);
        CHECK_OK(fsh_write_pattern(&d->fs, path, 1000 + i, len));
        CHECK_OK(petrel_fs_setattr(&d->fs, path, 1, "x", 1));
    }
}

static void damaged_images_run(int geometry, int rounds)
{
    const struct fsh_geometry *geo = &fsh_geometries[geometry];
    struct fsh_dev d;
    struct petrel_bd snap_bd;
    struct petrel_bd_emu snap;
    struct petrel_bd_emu_config ec;
    struct pt_prng g;
    int round, mounted = 0;
    fsh_dev_init(&d, geo, test_seed());
    pt_prng_seed(&g, test_seed());
    fsh_format_mount(&d);
    populate(&d);
    CHECK_OK(fsh_unmount(&d));
    ec = d.emu.cfg;
    CHECK_OK(petrel_bd_emu_create(&snap_bd, &snap, &ec));
    CHECK_OK(petrel_bd_emu_copy(&snap, &d.emu));
    for (round = 0; round < rounds; round++) {
        uint64_t kind = pt_prng_below(&g, 5);
        uint32_t b = (uint32_t)pt_prng_below(&g, geo->block_count), k;
        uint8_t *blk;
        CHECK_OK(petrel_bd_emu_copy(&d.emu, &snap));
        blk = d.emu.memory + (size_t)b * geo->block_size;
        if (kind == 0) { /* a few bits anywhere */
            CHECK_OK(
                petrel_bd_emu_flip_bits(&d.emu, UINT32_MAX, 1 + (uint32_t)pt_prng_below(&g, 8)));
        } else if (kind == 1) { /* one block of garbage */
            pt_prng_fill(&g, blk, geo->block_size);
        } else if (kind == 2) { /* one block truncated at a random point */
            k = (uint32_t)pt_prng_below(&g, geo->block_size);
            memset(blk + k, 0xff, geo->block_size - k);
        } else if (kind == 3) { /* the superblock pair damaged */
            CHECK_OK(petrel_bd_emu_flip_bits(&d.emu, (uint32_t)pt_prng_below(&g, 2),
                                             1 + (uint32_t)pt_prng_below(&g, 4)));
        } else { /* many blocks swapped with each other's contents */
            for (k = 0; k < 4; k++) {
                uint32_t c = (uint32_t)pt_prng_below(&g, geo->block_count);
                memcpy(blk, d.emu.memory + (size_t)c * geo->block_size, geo->block_size);
            }
        }
        if (fsh_mount(&d) == 0) {
            mounted++;
            walk_damaged(&d);
            fsh_unmount(&d);
        }
    }
    test_log("%s: %d damaged images, %d mounted", geo->name, rounds, mounted);
    petrel_bd_emu_destroy(&snap);
    fsh_dev_free(&d);
}

TEST_T(corrupt_damaged_images, 180)
{
    int g, rounds = test_sanitized() ? 40 : 200;
    for (g = 0; g < FSH_GEOMETRY_COUNT; g++)
        damaged_images_run(g, rounds);
}

TEST_T(corrupt_garbage_images, 180)
{
    int g, round, rounds = test_sanitized() ? 40 : 300, mounted = 0;
    struct pt_prng pg;
    pt_prng_seed(&pg, test_seed());
    for (g = 0; g < FSH_GEOMETRY_COUNT; g++) {
        struct fsh_dev d;
        fsh_dev_init(&d, &fsh_geometries[g], test_seed() + (uint64_t)g);
        for (round = 0; round < rounds; round++) {
            size_t bytes = (size_t)d.geo.block_size * d.geo.block_count;
            /* Pure noise, or noise with long runs of 0x00 / 0xff like real media. */
            pt_prng_fill(&pg, d.emu.memory, bytes);
            if (round % 2) {
                size_t at = (size_t)pt_prng_below(&pg, bytes);
                memset(d.emu.memory + at, round % 4 == 1 ? 0xff : 0x00,
                       (size_t)pt_prng_below(&pg, bytes - at));
            }
            if (fsh_mount(&d) == 0) {
                mounted++;
                walk_damaged(&d);
                fsh_unmount(&d);
            }
        }
        fsh_dev_free(&d);
    }
    test_log("%d garbage images mounted (of %d)", mounted, rounds * FSH_GEOMETRY_COUNT);
}
