/*
 * The power-loss sweep. For each reentrant scenario and each geometry, in rounds that each
 * mount with a different allocator seed (so blocks and operations differ): run the scenario's
 * session once to count its progs and erases (M), then for every N in 1..M restore the
 * starting image,
 * cut the power at the N-th operation (atomic in even rounds, torn in odd ones; in half the
 * rounds the power is cut a second time during the recovering mount), reboot and check:
 *   - mount succeeds and petrel_fs_check is clean;
 *   - files synced before the scenario (keep_small, keep_big) are intact;
 *   - the scenario shows one of its stages (the state before or after each of its steps,
 *     never a mix), the stage never goes back as N grows, and a scenario whose run returned
 *     success despite the cut shows its final stage;
 *   - the filesystem still takes a write and reads it back.
 * A session (pl_session) is the scenario's steps, then the end of the session and the start
 * of the next one: unmount (sync, "clean" mount-state record), mount from that record, one
 * small change (the "dirty" mark, then its commit). The starting image is clean, so the cuts
 * fall before, inside and after every transition of the record, and the fsck after each cut
 * compares a clean record with the walk (a stale one is reported).
 * Cuts are counted into the run's total (test_powerloss_summary.c prints it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"
#include "fs_harness.h"
#include "petrel/common.h"
#include "test.h"

struct pl_scenario {
    const char *name;
    void (*setup)(struct fsh_dev *d);       /* on a mounted fresh fs; leaves everything synced */
    int (*run)(struct fsh_dev *d);          /* the steps under test: 0 or the first error */
    int (*stage)(struct fsh_dev *d);        /* stage shown after a reboot, -1 for none */
    int (*stages)(const struct fsh_dev *d); /* stage after an uncut run */
    int32_t block_cycles;                   /* 0: the harness default */
};

/* A "large" file: spans at least one and a half erase blocks (never inline). */
static size_t big_size(const struct fsh_dev *d)
{
    size_t b = d->geo.block_size + d->geo.block_size / 2;
    return b < 1000 ? 1000 : b;
}

#define PL_RUN(expr)                                                                               \
    do {                                                                                           \
        long long pl_r_ = (long long)(expr);                                                       \
        if (pl_r_ < 0) return (int)pl_r_;                                                          \
    } while (0)

/* Open, seek, write, leave open; on failure close (errors ignored: power may be gone). */
static int pl_write_at(struct fsh_dev *d, struct petrel_fs_file *f, int64_t off, int whence,
                       uint64_t seed, size_t len)
{
    uint8_t *buf = (uint8_t *)malloc(len);
    int64_t n;
    CHECK(buf != NULL);
    fsh_pattern(buf, len, seed, 0);
    n = petrel_fs_file_seek(&d->fs, f, off, whence);
    if (n >= 0) n = petrel_fs_file_write(&d->fs, f, buf, len);
    if (n >= 0 && (size_t)n != len) n = -PT_EIO;
    free(buf);
    return n < 0 ? (int)n : 0;
}

static int pl_exists(struct fsh_dev *d, const char *path)
{
    struct petrel_fs_info info;
    int err = petrel_fs_stat(&d->fs, path, &info);
    if (err == -PT_ENOENT) return 0;
    return err ? err : 1;
}

/* Entry count of a directory, or a negative code. */
static int pl_dir_count(struct fsh_dev *d, const char *path)
{
    struct petrel_fs_dir dir;
    struct petrel_fs_info info;
    int n = 0, r, err = petrel_fs_dir_open(&d->fs, &dir, path);
    if (err) return err;
    while ((r = petrel_fs_dir_read(&d->fs, &dir, &info)) > 0)
        if (strcmp(info.name, ".") != 0 && strcmp(info.name, "..") != 0) n++;
    err = petrel_fs_dir_close(&d->fs, &dir);
    return r < 0 ? r : err ? err : n;
}

static int stages_2(const struct fsh_dev *d)
{
    (void)d;
    return 2;
}
static int stages_3(const struct fsh_dev *d)
{
    (void)d;
    return 3;
}
static int stages_appends(const struct fsh_dev *d)
{
    (void)d;
    return 8;
}
static int stages_5(const struct fsh_dev *d)
{
    (void)d;
    return 5;
}

/* --- create: new files appear empty then whole, or not at all --------------------------- */

#define CREATE_FILES 4

static void create_setup(struct fsh_dev *d)
{
    CHECK_OK(petrel_fs_mkdir(&d->fs, "d"));
    CHECK_OK(fsh_write_pattern(&d->fs, "d/sibling", 7, 50));
}

/* Sizes: inline, one page, several pages. */
static size_t create_size(int i)
{
    static const size_t sizes[CREATE_FILES] = {100, 0, 700, 3000};
    return sizes[i];
}

static int create_run(struct fsh_dev *d)
{
    int i;
    for (i = 0; i < CREATE_FILES; i++) {
        struct petrel_fs_file f;
        char path[32];
        int err;
        snprintf(path, sizeof(path), "d/new%d", i);
        err =
            petrel_fs_file_open(&d->fs, &f, path, PETREL_O_WRONLY | PETREL_O_CREAT | PETREL_O_EXCL);
        if (err) return err;
        if (create_size(i))
            err = pl_write_at(d, &f, 0, PETREL_SEEK_SET, 11 + (uint64_t)i, create_size(i));
        if (err) {
            petrel_fs_file_close(&d->fs, &f);
            return err;
        }
        PL_RUN(petrel_fs_file_close(&d->fs, &f));
    }
    return 0;
}

/* Stage: 2 per whole file, 1 for the last one existing empty. */
static int create_stage(struct fsh_dev *d)
{
    int i, stage = 0;
    if (fsh_file_is_pattern(&d->fs, "d/sibling", 7, 50) != 1) return -1;
    for (i = 0; i < CREATE_FILES; i++) {
        struct petrel_fs_info info;
        char path[32];
        int err;
        snprintf(path, sizeof(path), "d/new%d", i);
        err = petrel_fs_stat(&d->fs, path, &info);
        if (err == -PT_ENOENT) break;
        if (err || info.type != PETREL_FS_REG) return -1;
        if (fsh_file_is_pattern(&d->fs, path, 11 + (uint64_t)i, create_size(i)) == 1) {
            stage += 2;
            continue;
        }
        if (info.size != 0) return -1;
        stage++;
        i++;
        break;
    }
    if (pl_dir_count(d, "d") != 1 + i) return -1; /* nothing after a missing or empty file */
    return stage;
}

static int create_stages(const struct fsh_dev *d)
{
    (void)d;
    return 2 * CREATE_FILES;
}

/* --- write+sync: overwrite in the middle, sync, append, close -------------------------- */

static void write_setup(struct fsh_dev *d)
{
    CHECK_OK(fsh_write_pattern(&d->fs, "f", 21, big_size(d)));
}

static int write_run(struct fsh_dev *d)
{
    struct petrel_fs_file f;
    size_t big = big_size(d);
    int err = petrel_fs_file_open(&d->fs, &f, "f", PETREL_O_RDWR);
    if (err) return err;
    err = pl_write_at(d, &f, (int64_t)(big / 3), PETREL_SEEK_SET, 22, big / 2 + 100);
    if (!err) err = petrel_fs_file_sync(&d->fs, &f);
    if (!err) err = pl_write_at(d, &f, 0, PETREL_SEEK_END, 23, 50);
    if (err) {
        petrel_fs_file_close(&d->fs, &f);
        return err;
    }
    return petrel_fs_file_close(&d->fs, &f);
}

static int write_stage(struct fsh_dev *d)
{
    size_t big = big_size(d), mid = big / 2 + 100;
    uint8_t *want = (uint8_t *)malloc(big + 50);
    int stage = -1, r;
    CHECK(want != NULL);
    fsh_pattern(want, big, 21, 0);
    r = fsh_file_equals(&d->fs, "f", want, big);
    if (r == 1) stage = 0;
    fsh_pattern(want + big / 3, mid, 22, 0);
    if (stage < 0 && fsh_file_equals(&d->fs, "f", want, big) == 1) stage = 1;
    fsh_pattern(want + big, 50, 23, 0);
    if (stage < 0 && fsh_file_equals(&d->fs, "f", want, big + 50) == 1) stage = 2;
    free(want);
    return stage;
}

/* --- append: eight appends, each closed ------------------------------------------------ */

static void append_setup(struct fsh_dev *d)
{
    CHECK_OK(fsh_write_pattern(&d->fs, "log", 31, big_size(d) + 37));
}

#define APPENDS 8

static int append_run(struct fsh_dev *d)
{
    int i;
    for (i = 0; i < APPENDS; i++) {
        struct petrel_fs_file f;
        int err = petrel_fs_file_open(&d->fs, &f, "log", PETREL_O_WRONLY | PETREL_O_APPEND);
        if (err) return err;
        err = pl_write_at(d, &f, 0, PETREL_SEEK_CUR, 32 + (uint64_t)i, 64);
        if (err) {
            petrel_fs_file_close(&d->fs, &f);
            return err;
        }
        PL_RUN(petrel_fs_file_close(&d->fs, &f));
    }
    return 0;
}

static int append_stage(struct fsh_dev *d)
{
    size_t base = big_size(d) + 37;
    uint8_t *want = (uint8_t *)malloc(base + APPENDS * 64);
    int i, stage = -1;
    CHECK(want != NULL);
    fsh_pattern(want, base, 31, 0);
    for (i = 0; i <= APPENDS && stage < 0; i++) {
        if (i > 0) fsh_pattern(want + base + (size_t)(i - 1) * 64, 64, 32 + (uint64_t)(i - 1), 0);
        if (fsh_file_equals(&d->fs, "log", want, base + (size_t)i * 64) == 1) stage = i;
    }
    free(want);
    return stage;
}

/* --- truncate: shrink, then extend with zeros ------------------------------------------ */

static void truncate_setup(struct fsh_dev *d)
{
    CHECK_OK(fsh_write_pattern(&d->fs, "t", 41, 2 * big_size(d)));
}

static int truncate_run(struct fsh_dev *d)
{
    size_t big = big_size(d);
    uint64_t sizes[2];
    int i;
    sizes[0] = big / 2 + 3;
    sizes[1] = big;
    for (i = 0; i < 2; i++) {
        struct petrel_fs_file f;
        int err = petrel_fs_file_open(&d->fs, &f, "t", PETREL_O_RDWR);
        if (err) return err;
        err = petrel_fs_file_truncate(&d->fs, &f, sizes[i]);
        if (err) {
            petrel_fs_file_close(&d->fs, &f);
            return err;
        }
        PL_RUN(petrel_fs_file_close(&d->fs, &f));
    }
    return 0;
}

static int truncate_stage(struct fsh_dev *d)
{
    size_t big = big_size(d), cut = big / 2 + 3;
    uint8_t *want = (uint8_t *)malloc(2 * big);
    int stage = -1;
    CHECK(want != NULL);
    fsh_pattern(want, 2 * big, 41, 0);
    if (fsh_file_equals(&d->fs, "t", want, 2 * big) == 1) stage = 0;
    if (stage < 0 && fsh_file_equals(&d->fs, "t", want, cut) == 1) stage = 1;
    memset(want + cut, 0, big - cut);
    if (stage < 0 && fsh_file_equals(&d->fs, "t", want, big) == 1) stage = 2;
    free(want);
    return stage;
}

/* --- rename across directories, then over an existing file ----------------------------- */

static void rename_setup(struct fsh_dev *d)
{
    CHECK_OK(petrel_fs_mkdir(&d->fs, "a"));
    CHECK_OK(petrel_fs_mkdir(&d->fs, "b"));
    CHECK_OK(fsh_write_pattern(&d->fs, "a/x", 51, big_size(d)));
    CHECK_OK(fsh_write_pattern(&d->fs, "b/y", 52, 80));
}

static int rename_run(struct fsh_dev *d)
{
    PL_RUN(petrel_fs_rename(&d->fs, "a/x", "b/x"));
    PL_RUN(petrel_fs_rename(&d->fs, "b/y", "a/y"));
    PL_RUN(petrel_fs_rename(&d->fs, "b/x", "a/y"));
    return 0;
}

static int rename_stage(struct fsh_dev *d)
{
    size_t big = big_size(d);
    int ax = pl_exists(d, "a/x"), bx = pl_exists(d, "b/x"), ay = pl_exists(d, "a/y"),
        by = pl_exists(d, "b/y");
    int na = pl_dir_count(d, "a"), nb = pl_dir_count(d, "b");
    if (ax < 0 || bx < 0 || ay < 0 || by < 0 || na < 0 || nb < 0) return -1;
    if (ax && !bx && !ay && by && na == 1 && nb == 1 &&
        fsh_file_is_pattern(&d->fs, "a/x", 51, big) == 1 &&
        fsh_file_is_pattern(&d->fs, "b/y", 52, 80) == 1)
        return 0;
    if (!ax && bx && !ay && by && na == 0 && nb == 2 &&
        fsh_file_is_pattern(&d->fs, "b/x", 51, big) == 1 &&
        fsh_file_is_pattern(&d->fs, "b/y", 52, 80) == 1)
        return 1;
    if (!ax && bx && ay && !by && na == 1 && nb == 1 &&
        fsh_file_is_pattern(&d->fs, "b/x", 51, big) == 1 &&
        fsh_file_is_pattern(&d->fs, "a/y", 52, 80) == 1)
        return 2;
    if (!ax && !bx && ay && !by && na == 1 && nb == 0 &&
        fsh_file_is_pattern(&d->fs, "a/y", 51, big) == 1)
        return 3;
    return -1;
}

/* --- mkdir / remove, and a directory moved across directories -------------------------- */

static void mkdir_setup(struct fsh_dev *d)
{
    CHECK_OK(fsh_write_pattern(&d->fs, "old", 61, 100));
    CHECK_OK(petrel_fs_mkdir(&d->fs, "e"));
    CHECK_OK(petrel_fs_mkdir(&d->fs, "m"));
    CHECK_OK(fsh_write_pattern(&d->fs, "m/f", 62, big_size(d)));
}

static int mkdir_run(struct fsh_dev *d)
{
    PL_RUN(petrel_fs_mkdir(&d->fs, "d2"));
    PL_RUN(petrel_fs_mkdir(&d->fs, "d2/sub"));
    PL_RUN(petrel_fs_remove(&d->fs, "e"));
    PL_RUN(petrel_fs_remove(&d->fs, "old"));
    PL_RUN(petrel_fs_rename(&d->fs, "m", "d2/sub/m"));
    return 0;
}

static int mkdir_stage(struct fsh_dev *d)
{
    int d2 = pl_exists(d, "d2"), sub = pl_exists(d, "d2/sub"), e = pl_exists(d, "e"),
        old = pl_exists(d, "old"), m = pl_exists(d, "m"), mm = pl_exists(d, "d2/sub/m");
    int stage;
    if (d2 < 0 || sub < 0 || e < 0 || old < 0 || m < 0 || mm < 0) return -1;
    if (!d2 && !sub && e && old && m && !mm)
        stage = 0;
    else if (d2 && !sub && e && old && m && !mm)
        stage = 1;
    else if (d2 && sub && e && old && m && !mm)
        stage = 2;
    else if (d2 && sub && !e && old && m && !mm)
        stage = 3;
    else if (d2 && sub && !e && !old && m && !mm)
        stage = 4;
    else if (d2 && sub && !e && !old && !m && mm)
        stage = 5;
    else
        return -1;
    if (old && fsh_file_is_pattern(&d->fs, "old", 61, 100) != 1) return -1;
    if (fsh_file_is_pattern(&d->fs, mm ? "d2/sub/m/f" : "m/f", 62, big_size(d)) != 1) return -1;
    /* The root: keep_small, keep_big, old, e, m at first. */
    if (pl_dir_count(d, "/") != 5 + (d2 ? 1 : 0) - (e ? 0 : 1) - (old ? 0 : 1) - (m ? 0 : 1))
        return -1;
    return stage;
}

/* --- attributes: change, remove, add --------------------------------------------------- */

static void attr_setup(struct fsh_dev *d)
{
    CHECK_OK(fsh_write_pattern(&d->fs, "f", 71, 50));
    CHECK_OK(petrel_fs_setattr(&d->fs, "f", 1, "old-value", 9));
    CHECK_OK(petrel_fs_setattr(&d->fs, "f", 2, "two", 3));
}

/* The third attribute: 40 bytes, or 4 on tiny blocks (an entry and its attributes must fit one
 * 128-byte metadata block). */
static uint32_t attr3_size(struct fsh_dev *d)
{
    struct petrel_fs_fsinfo info;
    CHECK_OK(petrel_fs_fsinfo(&d->fs, &info));
    return info.attr_max < 80 ? 4 : 40;
}

static int attr_run(struct fsh_dev *d)
{
    uint8_t v3[40];
    fsh_pattern(v3, sizeof(v3), 73, 0);
    PL_RUN(petrel_fs_setattr(&d->fs, "f", 1, "new value!!", 11));
    PL_RUN(petrel_fs_removeattr(&d->fs, "f", 2));
    PL_RUN(petrel_fs_setattr(&d->fs, "f", 3, v3, attr3_size(d)));
    return 0;
}

static int attr_stage(struct fsh_dev *d)
{
    uint8_t a1[64], a2[64], a3[64], v3[40];
    int64_t n1 = petrel_fs_getattr(&d->fs, "f", 1, a1, sizeof(a1));
    int64_t n2 = petrel_fs_getattr(&d->fs, "f", 2, a2, sizeof(a2));
    int64_t n3 = petrel_fs_getattr(&d->fs, "f", 3, a3, sizeof(a3));
    int one_old, one_new, two, three;
    fsh_pattern(v3, sizeof(v3), 73, 0);
    if (fsh_file_is_pattern(&d->fs, "f", 71, 50) != 1) return -1;
    one_old = n1 == 9 && memcmp(a1, "old-value", 9) == 0;
    one_new = n1 == 11 && memcmp(a1, "new value!!", 11) == 0;
    two = n2 == 3 && memcmp(a2, "two", 3) == 0;
    three = n3 == (int64_t)attr3_size(d) && memcmp(a3, v3, attr3_size(d)) == 0;
    if (!one_old && !one_new) return -1;
    if (!two && n2 != -PT_ENODATA) return -1;
    if (!three && n3 != -PT_ENODATA) return -1;
    if (one_old && two && !three) return 0;
    if (one_new && two && !three) return 1;
    if (one_new && !two && !three) return 2;
    if (one_new && !two && three) return 3;
    return -1;
}

/* --- compaction (and relocation with block_cycles 1): many commits to one pair --------- */

static uint32_t compaction_commits(const struct fsh_dev *d)
{
    uint32_t unit = d->geo.prog_size > 32 ? d->geo.prog_size : 32;
    uint32_t k = 2 * d->geo.block_size / unit + 2;
    return k < 8 ? 8 : k > 300 ? 300 : k;
}

static int compaction_stages(const struct fsh_dev *d)
{
    return (int)compaction_commits(d);
}

/* Compaction works on "c" in the root; relocation on "r/c" (the root pair never moves). */
static const char *compaction_path(const struct fsh_dev *d)
{
    return d->cfg.block_cycles == 8 ? "r/c" : "c";
}

static void compaction_setup(struct fsh_dev *d)
{
    uint8_t v[4] = {0, 0, 0, 0};
    if (d->cfg.block_cycles == 8) CHECK_OK(petrel_fs_mkdir(&d->fs, "r"));
    CHECK_OK(fsh_write_pattern(&d->fs, compaction_path(d), 81, 30));
    CHECK_OK(petrel_fs_setattr(&d->fs, compaction_path(d), 1, v, 4));
}

static int compaction_run(struct fsh_dev *d)
{
    uint32_t i, k = compaction_commits(d);
    for (i = 1; i <= k; i++) {
        uint8_t v[4];
        v[0] = (uint8_t)i;
        v[1] = (uint8_t)(i >> 8);
        v[2] = v[3] = 0;
        PL_RUN(petrel_fs_setattr(&d->fs, compaction_path(d), 1, v, 4));
    }
    return 0;
}

static int compaction_stage(struct fsh_dev *d)
{
    uint8_t v[8];
    if (petrel_fs_getattr(&d->fs, compaction_path(d), 1, v, sizeof(v)) != 4) return -1;
    if (fsh_file_is_pattern(&d->fs, compaction_path(d), 81, 30) != 1) return -1;
    return v[0] | v[1] << 8;
}

/* --- split: a directory grows past one metadata block ---------------------------------- */

static uint32_t split_files(const struct fsh_dev *d)
{
    uint32_t k = d->geo.block_size / 2 / 32 + 8;
    return k > 80 ? 80 : k;
}

static int split_stages(const struct fsh_dev *d)
{
    return 2 * (int)split_files(d);
}

static void split_setup(struct fsh_dev *d)
{
    CHECK_OK(petrel_fs_mkdir(&d->fs, "s"));
}

static int split_run(struct fsh_dev *d)
{
    uint32_t i, k = split_files(d);
    for (i = 0; i < k; i++) {
        char path[32];
        snprintf(path, sizeof(path), "s/file-%03u", (unsigned)i);
        PL_RUN(fsh_write_pattern(&d->fs, path, 900 + i, 20));
    }
    return 0;
}

static int split_stage(struct fsh_dev *d)
{
    uint32_t i, k = split_files(d);
    int stage = 0, n = pl_dir_count(d, "s");
    for (i = 0; i < k; i++) {
        char path[32];
        struct petrel_fs_info info;
        int err;
        snprintf(path, sizeof(path), "s/file-%03u", (unsigned)i);
        err = petrel_fs_stat(&d->fs, path, &info);
        if (err == -PT_ENOENT) break;
        if (err) return -1;
        if (fsh_file_is_pattern(&d->fs, path, 900 + i, 20) == 1) {
            stage += 2;
            continue;
        }
        if (info.size != 0) return -1;
        stage += 1;
        i++;
        break;
    }
    if (n != (int)i) return -1; /* nothing after the first missing or empty file */
    return stage;
}

/* --- grow_tree: a file listing its blocks grows past the list into an index tree, then a
 * block in the middle is rewritten (the tree copied on write) ------------------------------ */

static void grow_setup(struct fsh_dev *d)
{
    CHECK_OK(fsh_write_pattern(&d->fs, "g", 91, 3 * (size_t)d->geo.block_size));
}

static int grow_run(struct fsh_dev *d)
{
    size_t b = d->geo.block_size;
    struct petrel_fs_file f;
    int err = petrel_fs_file_open(&d->fs, &f, "g", PETREL_O_RDWR);
    if (err) return err;
    err = pl_write_at(d, &f, 0, PETREL_SEEK_END, 92, 4 * b);
    if (err) {
        petrel_fs_file_close(&d->fs, &f);
        return err;
    }
    PL_RUN(petrel_fs_file_close(&d->fs, &f));
    err = petrel_fs_file_open(&d->fs, &f, "g", PETREL_O_RDWR);
    if (err) return err;
    err = pl_write_at(d, &f, (int64_t)(2 * b), PETREL_SEEK_SET, 93, 100);
    if (err) {
        petrel_fs_file_close(&d->fs, &f);
        return err;
    }
    return petrel_fs_file_close(&d->fs, &f);
}

static int grow_stage(struct fsh_dev *d)
{
    size_t b = d->geo.block_size;
    uint8_t *want = (uint8_t *)malloc(7 * b);
    int stage = -1;
    CHECK(want != NULL);
    fsh_pattern(want, 3 * b, 91, 0);
    if (fsh_file_equals(&d->fs, "g", want, 3 * b) == 1) stage = 0;
    fsh_pattern(want + 3 * b, 4 * b, 92, 0);
    if (stage < 0 && fsh_file_equals(&d->fs, "g", want, 7 * b) == 1) stage = 1;
    fsh_pattern(want + 2 * b, 100, 93, 0);
    if (stage < 0 && fsh_file_equals(&d->fs, "g", want, 7 * b) == 1) stage = 2;
    free(want);
    return stage;
}

/* --- bigdir: a directory of many pairs with an index in its head (docs/SPEC-FS.md 4.1);
 * names leave in hash order (their pairs empty and are dropped, index entries first) while
 * new names arrive (splits, entries added after them); with block_cycles 8 pairs move too --- */

#define BIG_STEPS 10
#define BIG_MOVES 120
static uint32_t big_rm[BIG_STEPS]; /* old names removed, in this order (ascending hash) */
static uint32_t big_nrm;
static uint32_t big_hot; /* the old name bigdir_moves changes over and over */

static uint32_t big_old(const struct fsh_dev *d)
{
    (void)d;
    return 80;
}

static void big_name(char *buf, size_t cap, char kind, uint32_t i)
{
    snprintf(buf, cap, "b/%c-%03u", kind, (unsigned)i);
}

static uint64_t big_hash(char kind, uint32_t i)
{
    char name[16];
    snprintf(name, sizeof(name), "%c-%03u", kind, (unsigned)i);
    return petrel_hash64(name, strlen(name), 0);
}

/* After the setup's names: the removal list is every name of the indexed pair that holds the
 * highest of them, in ascending hash (that pair empties and is dropped, its index entry
 * taken out first); the hot name is one of the indexed pair that holds the lowest (that pair
 * moves, its entry re-pointed). */
static void big_plan(struct fsh_dev *d)
{
    uint32_t i, j, lo_i = UINT32_MAX, hi_i = UINT32_MAX, hi_pair[2] = {0, 0};
    char path[32];
    struct pt_lookup lk;
    struct pt_mdir head;
    CHECK_OK(petrel_fs_check(&d->fs, fsh_check_log, NULL));
    CHECK_OK(pt_lookup(&d->fs, "b", &lk, -1));
    CHECK_OK(pt_mdir_fetch(&d->fs, &head, lk.e.pair, NULL));
    CHECK_MSG(head.index_len >= 2 * PT_INDEX_ENTRY,
              "bigdir: fewer than 2 index entries after %u names", (unsigned)big_old(d));
    for (i = 0; i < big_old(d); i++) {
        big_name(path, sizeof(path), 'o', i);
        CHECK_OK(pt_lookup(&d->fs, path, &lk, -1));
        if (pt_index_names(&d->fs, &head, lk.md.pair) != 1) continue;
        if (lo_i == UINT32_MAX || big_hash('o', i) < big_hash('o', lo_i)) lo_i = i;
        if (hi_i == UINT32_MAX || big_hash('o', i) > big_hash('o', hi_i)) {
            hi_i = i;
            memcpy(hi_pair, lk.md.pair, sizeof(hi_pair));
        }
    }
    CHECK(lo_i != UINT32_MAX);
    big_hot = lo_i;
    big_nrm = 0;
    for (i = 0; i < big_old(d); i++) {
        big_name(path, sizeof(path), 'o', i);
        CHECK_OK(pt_lookup(&d->fs, path, &lk, -1));
        if (!pt_pair_eq(lk.md.pair, hi_pair)) continue;
        CHECK(big_nrm < BIG_STEPS);
        for (j = big_nrm++; j > 0 && big_hash('o', big_rm[j - 1]) > big_hash('o', i); j--)
            big_rm[j] = big_rm[j - 1];
        big_rm[j] = i;
    }
    CHECK(big_nrm > 0 && (lo_i != hi_i || big_nrm == 0));
}

static int big_removed(uint32_t i)
{
    uint32_t s;
    for (s = 0; s < big_nrm; s++)
        if (big_rm[s] == i) return 1;
    return 0;
}

static void big_setup(struct fsh_dev *d)
{
    uint32_t i;
    char path[32];
    CHECK_OK(petrel_fs_mkdir(&d->fs, "b"));
    for (i = 0; i < big_old(d); i++) {
        big_name(path, sizeof(path), 'o', i);
        CHECK_OK(fsh_write_pattern(&d->fs, path, 500 + i, 8));
    }
    big_plan(d);
}

static int big_run(struct fsh_dev *d)
{
    uint32_t s;
    char path[32];
    for (s = 0; s < big_nrm; s++) {
        big_name(path, sizeof(path), 'o', big_rm[s]);
        PL_RUN(petrel_fs_remove(&d->fs, path));
        big_name(path, sizeof(path), 'n', s);
        PL_RUN(fsh_write_pattern(&d->fs, path, 700 + s, 8));
    }
    return 0;
}

static int big_stages(const struct fsh_dev *d)
{
    (void)d;
    return 3 * (int)big_nrm;
}

/* Every old name not on the removal list is there with its bytes; the steps done are a
 * prefix, each step's stages in order: its old name removed, its new name created (empty),
 * its bytes written. */
static int big_stage(struct fsh_dev *d)
{
    uint32_t i, s, t;
    char path[32];
    for (i = 0; i < big_old(d); i++) {
        if (big_removed(i)) continue;
        big_name(path, sizeof(path), 'o', i);
        if (fsh_file_is_pattern(&d->fs, path, 500 + i, 8) != 1) return -1;
    }
    for (s = 0; s < big_nrm; s++) {
        struct petrel_fs_info info;
        int old_there, new_there, whole = 0;
        big_name(path, sizeof(path), 'o', big_rm[s]);
        old_there = pl_exists(d, path);
        if (old_there == 1 && fsh_file_is_pattern(&d->fs, path, 500 + big_rm[s], 8) != 1) return -1;
        big_name(path, sizeof(path), 'n', s);
        new_there = pl_exists(d, path);
        if (new_there == 1) {
            whole = fsh_file_is_pattern(&d->fs, path, 700 + s, 8) == 1;
            if (!whole && (petrel_fs_stat(&d->fs, path, &info) != 0 || info.size != 0)) return -1;
        }
        if (old_there < 0 || new_there < 0 || (old_there && new_there)) return -1;
        if (whole) continue; /* step s done */
        /* the steps after it have not happened */
        for (t = s + 1; t < big_nrm; t++) {
            big_name(path, sizeof(path), 'o', big_rm[t]);
            if (fsh_file_is_pattern(&d->fs, path, 500 + big_rm[t], 8) != 1) return -1;
            big_name(path, sizeof(path), 'n', t);
            if (pl_exists(d, path) != 0) return -1;
        }
        return 3 * (int)s + (old_there ? 0 : new_there ? 2 : 1);
    }
    return 3 * (int)big_nrm;
}

/* bigdir_moves: one name in a far pair takes BIG_MOVES attribute changes, so its pair is
 * compacted again and again and, with block_cycles 8, moves (its index entry re-pointed) */
static void big_moves_setup(struct fsh_dev *d)
{
    uint8_t v[4] = {0, 0, 0, 0};
    char path[32];
    big_setup(d);
    big_name(path, sizeof(path), 'o', big_hot);
    CHECK_OK(petrel_fs_setattr(&d->fs, path, 1, v, 4));
}

static int big_moves_run(struct fsh_dev *d)
{
    uint32_t i;
    char path[32];
    big_name(path, sizeof(path), 'o', big_hot);
    for (i = 1; i <= BIG_MOVES; i++) {
        uint8_t v[4] = {(uint8_t)i, 0, 0, 0};
        PL_RUN(petrel_fs_setattr(&d->fs, path, 1, v, 4));
    }
    return 0;
}

static int big_moves_stages(const struct fsh_dev *d)
{
    (void)d;
    return BIG_MOVES;
}

static int big_moves_stage(struct fsh_dev *d)
{
    uint32_t i;
    uint8_t v[8];
    char path[32];
    for (i = 0; i < big_old(d); i++) {
        big_name(path, sizeof(path), 'o', i);
        if (fsh_file_is_pattern(&d->fs, path, 500 + i, 8) != 1) return -1;
    }
    big_name(path, sizeof(path), 'o', big_hot);
    if (petrel_fs_getattr(&d->fs, path, 1, v, sizeof(v)) != 4) return -1;
    return v[0];
}

/* --- wear_move: static wear leveling moves cold file data during syncs ------------------
 * The run ages the device first (every free block erased 20 times more than every block in
 * use, as a long life of rewrites would leave it), so that with wear_spread 4 each sync of
 * the run is followed by moves of cold data (keep_big, "cold") onto worn blocks; the cuts
 * fall inside those copies, their index writes, their entry commits and the WEAR record
 * saved at unmount. */

#define PL_WEAR_BLOCKS 256 /* the most blocks of a sweep's geometries */
static uint32_t pl_wear_buffer[PETREL_FS_WEAR_WORDS(PL_WEAR_BLOCKS)];

static void wmove_setup(struct fsh_dev *d)
{
    CHECK(d->geo.block_count <= PL_WEAR_BLOCKS);
    CHECK_OK(fsh_write_pattern(&d->fs, "cold", 31, big_size(d) * 2));
    CHECK_OK(fsh_write_pattern(&d->fs, "hot", 700, 1100));
    d->cfg.wear_spread = 4;
    d->cfg.wear_buffer = pl_wear_buffer;
}

static int wmove_used(void *ctx, uint32_t block)
{
    struct fsh_dev *d = (struct fsh_dev *)ctx;
    d->fs.wear[block] = 0;
    return 0;
}

static int wmove_run(struct fsh_dev *d)
{
    uint32_t b;
    int i;
    CHECK(d->fs.wear != NULL);
    for (b = 0; b < d->fs.block_count; b++) d->fs.wear[b] = 20;
    CHECK_OK(petrel_fs_traverse(&d->fs, wmove_used, d));
    d->fs.wear_unsaved++;
    for (i = 1; i <= 3; i++) PL_RUN(fsh_write_pattern(&d->fs, "hot", 700 + (uint64_t)i, 1100));
    /* the sweep must cover moves: without one the scenario tests nothing new */
    if (d->fs.wear_moves == 0 && !petrel_bd_emu_is_dead(&d->emu)) {
        test_log("wear_move: no block moved");
        return -PT_EINVAL;
    }
    return 0;
}

static int wmove_stage(struct fsh_dev *d)
{
    int i;
    if (fsh_file_is_pattern(&d->fs, "cold", 31, big_size(d) * 2) != 1) return -1;
    for (i = 3; i >= 0; i--)
        if (fsh_file_is_pattern(&d->fs, "hot", 700 + (uint64_t)i, 1100) == 1) return i;
    return -1;
}

static const struct pl_scenario scenarios[] = {
    {"create", create_setup, create_run, create_stage, create_stages, 0},
    {"write_sync", write_setup, write_run, write_stage, stages_2, 0},
    {"append", append_setup, append_run, append_stage, stages_appends, 0},
    {"truncate", truncate_setup, truncate_run, truncate_stage, stages_2, 0},
    {"rename", rename_setup, rename_run, rename_stage, stages_3, 0},
    {"mkdir_remove", mkdir_setup, mkdir_run, mkdir_stage, stages_5, 0},
    {"attr", attr_setup, attr_run, attr_stage, stages_3, 0},
    {"compaction", compaction_setup, compaction_run, compaction_stage, compaction_stages, 0},
    /* block_cycles 8 (the engine's least): the pair of r/ moves every 8 erases */
    {"relocation", compaction_setup, compaction_run, compaction_stage, compaction_stages, 8},
    {"split", split_setup, split_run, split_stage, split_stages, 0},
    {"grow_tree", grow_setup, grow_run, grow_stage, stages_2, 0},
    {"bigdir", big_setup, big_run, big_stage, big_stages, 0},
    /* the same with pairs moving every 8 erases: relocations re-point index entries */
    {"bigdir_moves", big_moves_setup, big_moves_run, big_moves_stage, big_moves_stages, 8},
    {"wear_move", wmove_setup, wmove_run, wmove_stage, stages_3, 0},
};

/* --- the sweep -------------------------------------------------------------------------- */

/* The scenario's steps, then unmount (the clean record), mount (trusting it) and a change
 * (the dirty mark first): 0 or the first error. */
static int pl_session(struct fsh_dev *d, const struct pl_scenario *s)
{
    int err = s->run(d);
    if (!err) err = fsh_unmount(d);
    if (!err) err = fsh_mount(d);
    if (!err) err = petrel_fs_setattr(&d->fs, "keep_small", 8, "session", 7);
    return err;
}

static void pl_check_keep(struct fsh_dev *d, const char *what)
{
    CHECK_MSG(fsh_file_is_pattern(&d->fs, "keep_small", 1, 40) == 1,
              "%s: synced file keep_small damaged", what);
    CHECK_MSG(fsh_file_is_pattern(&d->fs, "keep_big", 2, big_size(d)) == 1,
              "%s: synced file keep_big damaged", what);
}

/* The filesystem takes a new write after recovery and reads it back. */
static void pl_check_writable(struct fsh_dev *d, const char *what)
{
    int err = fsh_write_pattern(&d->fs, "after", 3, 300);
    CHECK_MSG(err == 0, "%s: write after recovery failed: %s", what, petrel_errname(err));
    CHECK_MSG(fsh_file_is_pattern(&d->fs, "after", 3, 300) == 1,
              "%s: write after recovery does not read back", what);
}

/*
 * A second cut while recovering from the first: mount (which may finish a half-done rename
 * or reclaim orphans) and one small commit, with the power cut again at one of their first
 * few progs and erases. Returns 1 if the power went (the device is then rebooted).
 */
static int pl_cut_recovery(struct fsh_dev *d, uint64_t n, enum petrel_bd_emu_powerloss mode)
{
    int dead;
    petrel_bd_emu_powerloss(&d->emu, 1 + n % 4, mode);
    if (fsh_mount(d) == 0) petrel_fs_setattr(&d->fs, "keep_small", 9, "recovered", 9);
    dead = petrel_bd_emu_is_dead(&d->emu);
    fsh_reboot(d);
    return dead;
}

/* Restore the starting image and mount it with the round's allocator seed. */
static void pl_restart(struct fsh_dev *d, struct petrel_bd_emu *snap, int round, const char *what)
{
    int err;
    CHECK_OK(petrel_bd_emu_restore(&d->emu, snap));
    d->cfg.seed_mix = (uint64_t)round * 0x9e3779b97f4a7c15ull;
    err = fsh_mount(d);
    CHECK_MSG(err == 0, "%s: mount of the starting image failed: %s", what, petrel_errname(err));
}

#define PL_STRIDE_64K 6
/* Under `make soak` too (4x the rounds): cutting at every operation made the grow_tree sweep
 * on 64 KiB blocks outlast its 300 s (now about 75 s). Round r cuts the operations at offset
 * r mod 5; 5 is odd, so the soak's 16 rounds cut every offset both atomic and torn. */
#define PL_STRIDE_64K_SOAK 5

/*
 * Sweep one scenario over one geometry; returns the number of power cuts simulated.
 * Round r mounts with allocator seed r (so blocks, and so the operations, differ between
 * rounds), counts the scenario's operations M uncut, then cuts at each of 1..M: even rounds
 * atomic, odd rounds torn.
 */
static uint64_t pl_sweep(const struct fsh_geometry *g, const struct pl_scenario *s, int rounds)
{
    struct fsh_dev d;
    struct petrel_bd snap_bd;
    struct petrel_bd_emu snap;
    struct petrel_bd_emu_config ec;
    uint64_t m, n, cuts = 0, ops = 0, stride = test_sanitized() ? 7 : 1;
    int round, final, err;
    char what[160];

    if (g->block_size >= 65536) stride *= test_soak() ? PL_STRIDE_64K_SOAK : PL_STRIDE_64K;
    fsh_dev_init(&d, g, test_seed());
    if (s->block_cycles) d.cfg.block_cycles = s->block_cycles;
    fsh_format_mount(&d);
    CHECK_OK(fsh_write_pattern(&d.fs, "keep_small", 1, 40));
    CHECK_OK(fsh_write_pattern(&d.fs, "keep_big", 2, big_size(&d)));
    s->setup(&d);
    CHECK_OK(fsh_unmount(&d));
    ec = d.emu.cfg;
    CHECK_OK(petrel_bd_emu_create(&snap_bd, &snap, &ec));
    CHECK_OK(petrel_bd_emu_copy(&snap, &d.emu));

    for (round = 0; round < rounds; round++) {
        enum petrel_bd_emu_powerloss mode =
            round % 2 == 0 ? PETREL_BD_EMU_POWERLOSS_ATOMIC : PETREL_BD_EMU_POWERLOSS_TORN;
        int prev = 0;

        /* Uncut: count the operations, check the final stage. */
        snprintf(what, sizeof(what), "%s/%s round %d uncut", g->name, s->name, round);
        pl_restart(&d, &snap, round, what);
        petrel_bd_emu_powerloss(&d.emu, 0, PETREL_BD_EMU_POWERLOSS_ATOMIC);
        err = pl_session(&d, s);
        CHECK_MSG(err == 0, "%s: run failed: %s", what, petrel_errname(err));
        m = d.emu.powerloss_ops;
        ops += m;
        CHECK_OK(fsh_unmount(&d));
        CHECK_OK(fsh_mount(&d));
        final = s->stages(&d);
        CHECK_MSG(s->stage(&d) == final, "%s: shows stage %d, not the final %d", what, s->stage(&d),
                  final);
        CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
        CHECK_OK(fsh_unmount(&d));

        for (n = 1 + (uint64_t)round % stride; n <= m; n += stride) {
            int stage, run_err;
            snprintf(what, sizeof(what), "%s/%s cut %llu of %llu (%s, round %d)", g->name, s->name,
                     (unsigned long long)n, (unsigned long long)m,
                     mode == PETREL_BD_EMU_POWERLOSS_TORN ? "torn" : "atomic", round);
            pl_restart(&d, &snap, round, what);
            pt_prng_seed(&d.emu.prng, test_seed() ^ (n << 8) ^ (uint64_t)round);
            petrel_bd_emu_powerloss(&d.emu, n, mode);
            run_err = pl_session(&d, s);
            CHECK_MSG(petrel_bd_emu_is_dead(&d.emu),
                      "%s: run did only %llu operations this time (not deterministic)", what,
                      (unsigned long long)d.emu.powerloss_ops);
            fsh_reboot(&d);
            cuts++;
            if (round % 4 >= 2 && pl_cut_recovery(&d, n, mode)) cuts++;

            err = fsh_mount(&d);
            CHECK_MSG(err == 0, "%s: mount after the cut failed: %s", what, petrel_errname(err));
            err = petrel_fs_check(&d.fs, fsh_check_log, NULL);
            CHECK_MSG(err == 0, "%s: fsck after the cut: %s", what, petrel_errname(err));
            pl_check_keep(&d, what);
            stage = s->stage(&d);
            CHECK_MSG(stage >= 0, "%s: the filesystem shows a state that is no stage", what);
            CHECK_MSG(stage >= prev, "%s: stage %d after stage %d at an earlier cut", what, stage,
                      prev);
            CHECK_MSG(run_err < 0 || stage == final,
                      "%s: run reported success but shows stage %d of %d", what, stage, final);
            prev = stage;
            pl_check_writable(&d, what);
            CHECK_OK(fsh_unmount(&d));
        }
    }
    test_log("%s/%s: %d rounds, %llu operations, %llu power cuts", g->name, s->name, rounds,
             (unsigned long long)ops, (unsigned long long)cuts);
    petrel_bd_emu_destroy(&snap);
    fsh_dev_free(&d);
    return cuts;
}

static void pl_case_geo(const char *scenario, const struct fsh_geometry *g, int rounds)
{
    size_t i;
    char name[64];
    for (i = 0; i < PT_ARRAY_SIZE(scenarios); i++) {
        if (strcmp(scenarios[i].name, scenario) != 0) continue;
        snprintf(name, sizeof(name), "%s/%s", g->name, scenario);
        fsh_powercuts_add(name, pl_sweep(g, &scenarios[i], rounds));
        return;
    }
    CHECK_MSG(0, "no scenario %s", scenario);
}

static void pl_case(const char *scenario, int geometry, int rounds)
{
    pl_case_geo(scenario, &fsh_geometries[geometry], rounds);
}

/* One block size of the erase matrix: every erase behaviour in turn. */
static void pl_matrix(const char *scenario, int size, int rounds)
{
    int e;
    for (e = 0; e < FSH_MATRIX_ERASES; e++)
        pl_case_geo(scenario, &fsh_matrix[size * FSH_MATRIX_ERASES + e], rounds);
}

/* Rounds per sweep: half atomic, half torn, each with its own allocator seed. */
#define PL_ROUNDS (test_soak() ? 64 : 8)
/* Rounds per erase behaviour of the matrix. 64 KiB blocks make every cut expensive (1.5-block
 * files, whole-block restores): they cut at every PL_STRIDE_64K-th operation, the offset moving
 * with the round. */
#define PL_MATRIX_ROUNDS (test_soak() ? 32 : 8)
#define PL_MATRIX_ROUNDS_64K (test_soak() ? 16 : 4)

#define PL_CASES(scn)                                                                              \
    TEST_T(powerloss_##scn##_nor, 300)                                                             \
    {                                                                                              \
        pl_case(#scn, FSH_NOR, PL_ROUNDS);                                                         \
    }                                                                                              \
    TEST_T(powerloss_##scn##_emmc, 300)                                                            \
    {                                                                                              \
        pl_case(#scn, FSH_EMMC, PL_ROUNDS);                                                        \
    }                                                                                              \
    TEST_T(powerloss_##scn##_nand, 300)                                                            \
    {                                                                                              \
        pl_case(#scn, FSH_NAND, PL_ROUNDS);                                                        \
    }                                                                                              \
    TEST_T(powerloss_##scn##_tiny, 300)                                                            \
    {                                                                                              \
        pl_case(#scn, FSH_TINY, PL_ROUNDS);                                                        \
    }                                                                                              \
    TEST_T(powerloss_##scn##_nor1, 300)                                                            \
    {                                                                                              \
        pl_case(#scn, FSH_NOR1, PL_ROUNDS / 2);                                                    \
    }                                                                                              \
    TEST_T(powerloss_##scn##_matrix512, 300)                                                       \
    {                                                                                              \
        pl_matrix(#scn, FSH_M512, PL_MATRIX_ROUNDS);                                               \
    }                                                                                              \
    TEST_T(powerloss_##scn##_matrix4k, 300)                                                        \
    {                                                                                              \
        pl_matrix(#scn, FSH_M4K, PL_MATRIX_ROUNDS);                                                \
    }                                                                                              \
    TEST_T(powerloss_##scn##_matrix64k, 300)                                                       \
    {                                                                                              \
        pl_matrix(#scn, FSH_M64K, PL_MATRIX_ROUNDS_64K);                                           \
    }

PL_CASES(create)
PL_CASES(write_sync)
PL_CASES(append)
PL_CASES(truncate)
PL_CASES(rename)
PL_CASES(mkdir_remove)
PL_CASES(attr)
PL_CASES(compaction)
PL_CASES(relocation)
PL_CASES(split)
PL_CASES(grow_tree)
PL_CASES(wear_move)

/* The directory index under power cuts: splits, drops and moves in a directory of many pairs
 * on 512 B blocks, with every erase behaviour (128 B blocks hold no index). */
#define PL_BIG_ROUNDS (test_soak() ? 32 : 8)
TEST_T(powerloss_bigdir_matrix512, 300)
{
    pl_matrix("bigdir", FSH_M512, PL_BIG_ROUNDS);
}
TEST_T(powerloss_bigdir_moves_matrix512, 300)
{
    pl_matrix("bigdir_moves", FSH_M512, PL_BIG_ROUNDS);
}
/* 128-byte programs on 512 B blocks: four commits fill a block, so a pair compacts at nearly
 * every commit and, with block_cycles 8, a moved pair's predecessor often moves in the same
 * fix-up (its entry must then wait: the predecessor's new block is not linked yet). */
static const struct fsh_geometry pl_big_prog128 = {"512-prog128",          16,  128, 512, 160, 0xff,
                                                   PETREL_BD_EMU_PROG_NOR, 512, 32,  0};
TEST_T(powerloss_bigdir_moves_prog128, 300)
{
    pl_case_geo("bigdir_moves", &pl_big_prog128, PL_BIG_ROUNDS);
}
