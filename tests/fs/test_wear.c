/*
 * Wear and bad blocks. A small device with a low endurance is written and rewritten until
 * the engine says -PT_ENOSPC (or -PT_EROFS); every file whose last replacement was
 * acknowledged must still read back, before and after a remount, and wear spread is
 * reported (max / mean erase count). Separate cases put bad blocks of each kind on a fresh
 * device: every program is verified, so files written around them read back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_harness.h"
#include "petrel/common.h"
#include "petrel/prng.h"
#include "test.h"

#define W_FILES 4

static const struct fsh_geometry wear_geo = {
    "wear", 16, 16, 1024, 32, 0xff, PETREL_BD_EMU_PROG_STRICT, 256, 8, 0};

/* Replace path atomically: write a temporary file, then rename it over path. */
static int replace_file(struct petrel_fs *fs, const char *dir, const char *path, uint64_t seed,
                        size_t len)
{
    char tmp[32];
    int err;
    snprintf(tmp, sizeof(tmp), "%stmp", dir);
    err = fsh_write_pattern(fs, tmp, seed, len);
    if (err) {
        test_log("writing tmp (%zu bytes) for %s: %s", len, path, petrel_errname(err));
        return err;
    }
    err = petrel_fs_rename(fs, tmp, path);
    if (err) test_log("renaming tmp over %s: %s", path, petrel_errname(err));
    return err;
}

/* dir: "" for files in the root (whose pair never moves), "d/" for a subdirectory. */
static void wear_run_geo(const struct fsh_geometry *geo, enum petrel_bd_emu_fault worn_fault,
                         uint32_t endurance, const char *dir, uint64_t max_iter, uint64_t seed)
{
    struct fsh_dev d;
    struct pt_prng g;
    uint64_t seeds[W_FILES] = {0}, alt_seed = 0;
    size_t sizes[W_FILES] = {0}, alt_size = 0;
    int alt_file = -1;
    uint64_t iter, total_wear = 0;
    uint32_t b, max_wear = 0, worn = 0;
    int end = 0, bad_end = 0, lost = 0, i;
    char path[64];

    /* files of 50 bytes to 1.4 blocks of 1 KiB (scaled to the block size): live data stays
     * under half the device */
    uint32_t len_span = (uint32_t)((uint64_t)1400 * geo->block_size / 1024);

    fsh_dev_init(&d, geo, seed);
    d.emu.cfg.endurance = endurance;
    d.emu.cfg.worn_fault = worn_fault;
    d.cfg.block_cycles = 8;
    pt_prng_seed(&g, seed);
    fsh_format_mount(&d);
    if (dir[0]) CHECK_OK(petrel_fs_mkdir(&d.fs, "d"));
    for (iter = 1; iter <= max_iter && !end; iter++) {
        int k = (int)pt_prng_below(&g, W_FILES);
        size_t len = 50 + (size_t)pt_prng_below(&g, len_span);
        int err;
        snprintf(path, sizeof(path), "%sw%d", dir, k);
        err = replace_file(&d.fs, dir, path, iter, len);
        if (err) {
            /* The replacement that failed may or may not have happened: either version of
             * that file is right afterwards. */
            alt_file = k;
            alt_seed = iter;
            alt_size = len;
        }
        if (err == -PT_ENOSPC || err == -PT_EROFS) {
            test_log("ended with %s after %llu replacements, %lld of %u blocks in use",
                     petrel_errname(err), (unsigned long long)iter,
                     (long long)petrel_fs_usage(&d.fs), geo->block_count);
            end = 1;
            break;
        }
        if (err) { /* checked after the data and wear report below */
            test_log("replacement %llu of %s ended the run with %s", (unsigned long long)iter, path,
                     petrel_errname(err));
            bad_end = err;
            end = 1;
            break;
        }
        seeds[k] = iter;
        sizes[k] = len;
        for (i = 0; i < W_FILES; i++) { /* every acknowledged file, after every step */
            int r;
            if (!seeds[i]) continue;
            snprintf(path, sizeof(path), "%sw%d", dir, i);
            r = fsh_file_is_pattern(&d.fs, path, seeds[i], sizes[i]);
            CHECK_MSG(r == 1, "after replacement %llu, %s (replacement %llu) reads %s",
                      (unsigned long long)iter, path, (unsigned long long)seeds[i],
                      r < 0 ? petrel_errname(r) : "other contents");
        }
        if (iter % 64 == 0) { /* remount now and then: the allocator restarts elsewhere */
            CHECK_OK(fsh_unmount(&d));
            CHECK_OK(fsh_mount(&d));
        }
    }
    CHECK_MSG(end || endurance == 0, "the device did not wear out in %llu replacements",
              (unsigned long long)max_iter);
    CHECK_MSG(!end || endurance != 0, "-PT_ENOSPC or an error on a device that cannot wear out");
    /* Every acknowledged file reads back, now and after a remount. */
    for (i = 0; i < 2; i++) {
        int k;
        for (k = 0; k < W_FILES; k++) {
            int r;
            snprintf(path, sizeof(path), "%sw%d", dir, k);
            if (!seeds[k]) continue;
            r = fsh_file_is_pattern(&d.fs, path, seeds[k], sizes[k]);
            if (r != 1 && k == alt_file) r = fsh_file_is_pattern(&d.fs, path, alt_seed, alt_size);
            if (r != 1) {
                test_log("%s (replacement %llu, %zu bytes) lost after wear-out (%s): %s", path,
                         (unsigned long long)seeds[k], sizes[k],
                         i ? "after a remount" : "before a remount",
                         r < 0 ? petrel_errname(r) : "other contents");
                lost++;
            }
        }
        fsh_unmount(&d);
        CHECK_MSG(fsh_mount(&d) == 0, "mount after wear-out failed");
    }
    for (b = 0; b < geo->block_count; b++) {
        uint32_t w = petrel_bd_emu_wear(&d.emu, b);
        total_wear += w;
        if (w > max_wear) max_wear = w;
        if (w >= endurance) worn++;
    }
    test_log("wear: max %u, mean %.1f erases per block (endurance %u), %u of %u blocks worn; "
             "root pair blocks 0 and 1: %u, %u",
             max_wear, (double)total_wear / geo->block_count, endurance, worn, geo->block_count,
             petrel_bd_emu_wear(&d.emu, 0), petrel_bd_emu_wear(&d.emu, 1));
    if (endurance) {
        printf("    fs wear-out (%s, %s): max %u, mean %.1f erases per block, endurance %u\n",
               dir[0] ? "subdirectory" : "root",
               worn_fault == PETREL_BD_EMU_ERASE_ERROR ? "erase errors"
               : worn_fault == PETREL_BD_EMU_PROG_NOOP ? "programs do not stick"
                                                       : "program errors",
               max_wear, (double)total_wear / geo->block_count, endurance);
        fflush(stdout);
    }
    CHECK_MSG(lost == 0, "%d acknowledged files lost (see above)", lost);
    /* Live data is under half the device: -PT_ENOSPC must mean the device wore out, not that
     * space ran short early. */
    CHECK_MSG(endurance == 0 || total_wear * 2 >= (uint64_t)endurance * geo->block_count,
              "-PT_ENOSPC at mean wear %.1f, under half the endurance %u: space ran out early",
              (double)total_wear / geo->block_count, endurance);
    CHECK_MSG(bad_end == 0, "wear-out ended with %s: only -PT_ENOSPC or -PT_EROFS may end it",
              petrel_errname(bad_end));
    fsh_dev_free(&d);
}

static void wear_run(enum petrel_bd_emu_fault worn_fault, uint32_t endurance, const char *dir,
                     uint64_t max_iter, uint64_t seed)
{
    wear_run_geo(&wear_geo, worn_fault, endurance, dir, max_iter, seed);
}

#define WEAR_ENDURANCE (test_sanitized() ? 20 : 60)

/*
 * The erase matrix (fsh_matrix) at one block size: the device wears out under each erase
 * behaviour in turn — worn blocks failing erases, then programs that do not stick, then
 * program errors, by turns; files in the root and in a subdirectory by turns. 32 blocks.
 */
static void wear_matrix(int size)
{
    static const enum petrel_bd_emu_fault faults[3] = {
        PETREL_BD_EMU_ERASE_ERROR, PETREL_BD_EMU_PROG_NOOP, PETREL_BD_EMU_PROG_ERROR};
    int e;
    for (e = 0; e < FSH_MATRIX_ERASES; e++) {
        struct fsh_geometry geo = fsh_matrix[size * FSH_MATRIX_ERASES + e];
        geo.block_count = 32;
        test_log("%s:", geo.name);
        wear_run_geo(&geo, faults[e % 3], WEAR_ENDURANCE, e % 2 ? "d/" : "", 200000,
                     test_seed() + (uint64_t)e);
    }
}

TEST_T(wear_out_matrix512, 240)
{
    wear_matrix(FSH_M512);
}

TEST_T(wear_out_matrix4k, 240)
{
    wear_matrix(FSH_M4K);
}

TEST_T(wear_out_matrix64k, 240)
{
    wear_matrix(FSH_M64K);
}

TEST_T(wear_out_erase_errors_subdir, 240)
{
    wear_run(PETREL_BD_EMU_ERASE_ERROR, WEAR_ENDURANCE, "d/", 200000, test_seed());
}

TEST_T(wear_out_progs_do_not_stick_subdir, 240)
{
    wear_run(PETREL_BD_EMU_PROG_NOOP, WEAR_ENDURANCE, "d/", 200000, test_seed());
}

TEST_T(wear_out_prog_errors_subdir, 240)
{
    wear_run(PETREL_BD_EMU_PROG_ERROR, WEAR_ENDURANCE, "d/", 200000, test_seed());
}

TEST_T(wear_out_erase_errors_root, 240)
{
    wear_run(PETREL_BD_EMU_ERASE_ERROR, WEAR_ENDURANCE, "", 200000, test_seed());
}

TEST_T(wear_out_progs_do_not_stick_root, 240)
{
    wear_run(PETREL_BD_EMU_PROG_NOOP, WEAR_ENDURANCE, "", 200000, test_seed());
}

TEST_T(wear_out_prog_errors_root, 240)
{
    wear_run(PETREL_BD_EMU_PROG_ERROR, WEAR_ENDURANCE, "", 200000, test_seed());
}

/* The same churn with no wear at all: 300 replacements in the root, every file checked
 * after every step. Seed 1036541731 (fixed here) once exposed a block used twice. */
TEST(replace_files_in_root_without_wear)
{
    test_seed();
    wear_run(PETREL_BD_EMU_OK, 0, "", 300, 1036541731);
}

/* Bad blocks of one kind on a fresh device: files written around them read back. */
static void bad_blocks_run(enum petrel_bd_emu_fault fault, int geometry)
{
    struct fsh_dev d;
    struct pt_prng g;
    int i, k, bad = 0;
    char path[64];
    const struct fsh_geometry *geo = &fsh_geometries[geometry];
    size_t len = geo->block_size * 2 + 100;
    fsh_dev_init(&d, geo, test_seed());
    pt_prng_seed(&g, test_seed());
    /* Blocks 0 and 1 hold the superblock pair; every fifth other block goes bad. */
    for (i = 2; i < (int)geo->block_count; i++)
        if (pt_prng_below(&g, 5) == 0) {
            CHECK_OK(petrel_bd_emu_set_fault(&d.emu, (uint32_t)i, fault));
            bad++;
        }
    fsh_format_mount(&d);
    for (k = 0; k < 6; k++) {
        int err;
        snprintf(path, sizeof(path), "b%d", k);
        err = fsh_write_pattern(&d.fs, path, 500 + (uint64_t)k, len);
        CHECK_MSG(err == 0, "%s: writing %s with %d bad blocks: %s", geo->name, path, bad,
                  petrel_errname(err));
        snprintf(path, sizeof(path), "dir%d", k);
        CHECK_OK(petrel_fs_mkdir(&d.fs, path));
    }
    for (i = 0; i < 2; i++) {
        for (k = 0; k < 6; k++) {
            snprintf(path, sizeof(path), "b%d", k);
            CHECK_MSG(fsh_file_is_pattern(&d.fs, path, 500 + (uint64_t)k, len) == 1,
                      "%s: %s does not read back (pass %d)", geo->name, path, i);
        }
        CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
        CHECK_OK(fsh_unmount(&d));
        CHECK_OK(fsh_mount(&d));
    }
    fsh_dev_free(&d);
}

#define BAD_CASES(kind, FAULT)                                                                     \
    TEST(bad_blocks_##kind##_nor)                                                                  \
    {                                                                                              \
        bad_blocks_run(FAULT, FSH_NOR);                                                            \
    }                                                                                              \
    TEST(bad_blocks_##kind##_tiny)                                                                 \
    {                                                                                              \
        bad_blocks_run(FAULT, FSH_TINY);                                                           \
    }

BAD_CASES(prog_error, PETREL_BD_EMU_PROG_ERROR)
BAD_CASES(prog_noop, PETREL_BD_EMU_PROG_NOOP)
BAD_CASES(erase_error, PETREL_BD_EMU_ERASE_ERROR)
BAD_CASES(erase_noop, PETREL_BD_EMU_ERASE_NOOP)
BAD_CASES(read_error, PETREL_BD_EMU_READ_ERROR)
