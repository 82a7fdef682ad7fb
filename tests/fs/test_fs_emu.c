/*
 * The engine on emulated flash: strict programming (any second program of a byte is an
 * engine bug), NOR bit semantics with bad blocks that fail or silently ignore programs and
 * erases, and a device worn out until -PT_ENOSPC with the synced data intact.
 */
#include "test_fs_harness.h"
#include "petrel/prng.h"

struct temu {
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_fs_config cfg;
    struct petrel_fs fs;
};

static void temu_setup(struct temu *t, const struct tfs_geometry *g, enum petrel_bd_emu_prog_mode mode,
                       uint32_t endurance, uint64_t seed)
{
    struct petrel_bd_emu_config ec;
    memset(t, 0, sizeof(*t));
    memset(&ec, 0, sizeof(ec));
    ec.read_size = g->read_size;
    ec.prog_size = g->prog_size;
    ec.block_size = g->block_size;
    ec.block_count = g->block_count;
    ec.erase_value = PETREL_BD_EMU_ERASE_FF;
    ec.prog_mode = mode;
    ec.endurance = endurance;
    ec.worn_fault = PETREL_BD_EMU_PROG_ERROR;
    ec.seed = seed;
    CHECK_EQ(petrel_bd_emu_create(&t->bd, &t->emu, &ec), 0);
    t->cfg.bd = &t->bd;
    t->cfg.block_cycles = 16;
}

/* A mixed workload checked against expectations; returns the first error or 0. */
static void workload(struct petrel_fs *fs, uint64_t seed, int rounds)
{
    struct pt_prng g;
    static uint8_t data[20000], buf[20000];
    char name[48];
    int r, i;
    pt_prng_seed(&g, seed);
    pt_prng_fill(&g, data, sizeof(data));
    CHECK_EQ(petrel_fs_mkdir(fs, "/w"), 0);
    for (r = 0; r < rounds; r++) {
        for (i = 0; i < 8; i++) {
            struct petrel_fs_file f;
            size_t len = (size_t)pt_prng_below(&g, 9000);
            snprintf(name, sizeof(name), "/w/f%d", i);
            CHECK_EQ(petrel_fs_file_open(fs, &f, name, PETREL_O_WRONLY | PETREL_O_CREAT | PETREL_O_TRUNC), 0);
            CHECK_EQ(petrel_fs_file_write(fs, &f, data + i * 100 + r, len), (int64_t)len);
            CHECK_EQ(petrel_fs_file_close(fs, &f), 0);
            CHECK_EQ(petrel_fs_file_open(fs, &f, name, PETREL_O_RDONLY), 0);
            CHECK_EQ(petrel_fs_file_read(fs, &f, buf, sizeof(buf)), (int64_t)len);
            TFS_CHECK_SAME(buf, data + i * 100 + r, len);
            CHECK_EQ(petrel_fs_file_close(fs, &f), 0);
        }
        snprintf(name, sizeof(name), "/w/dir%d", r);
        CHECK_EQ(petrel_fs_mkdir(fs, name), 0);
        if (r > 0) {
            char old[48];
            snprintf(old, sizeof(old), "/w/dir%d", r - 1);
            snprintf(name, sizeof(name), "/w/dir%d/moved", r);
            CHECK_EQ(petrel_fs_rename(fs, old, name), 0);
        }
    }
}

TEST_T(fs_emu_strict_programming, 300)
{
    int gi;
    for (gi = 0; gi < TFS_NGEOM; gi++) {
        struct temu t;
        test_log("geometry %s", tfs_geometries[gi].name);
        temu_setup(&t, &tfs_geometries[gi], PETREL_BD_EMU_PROG_STRICT, 0, test_seed());
        CHECK_EQ(petrel_fs_format(&t.fs, &t.cfg), 0);
        CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
        workload(&t.fs, test_seed(), tfs_geometries[gi].block_size <= 128 ? 3 : 10);
        CHECK_EQ(petrel_fs_unmount(&t.fs), 0);
        CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
        CHECK_EQ(petrel_fs_check(&t.fs, tfs_report, NULL), 0);
        petrel_fs_unmount(&t.fs);
        petrel_bd_emu_destroy(&t.emu);
    }
}

TEST_T(fs_emu_bad_blocks_are_abandoned, 300)
{
    static const enum petrel_bd_emu_fault faults[] = {
        PETREL_BD_EMU_PROG_ERROR, PETREL_BD_EMU_PROG_NOOP, PETREL_BD_EMU_ERASE_ERROR,
        PETREL_BD_EMU_ERASE_NOOP};
    int gi;
    size_t fi;
    for (gi = 0; gi < TFS_NGEOM; gi++) {
        for (fi = 0; fi < PT_ARRAY_SIZE(faults); fi++) {
            struct temu t;
            struct pt_prng g;
            uint32_t b, n = 0;
            temu_setup(&t, &tfs_geometries[gi], PETREL_BD_EMU_PROG_NOR, 0, test_seed() + fi);
            CHECK_EQ(petrel_fs_format(&t.fs, &t.cfg), 0);
            CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
            /* one block in eight goes bad after format (never the root pair) */
            pt_prng_seed(&g, test_seed() ^ fi);
            for (b = 2; b < tfs_geometries[gi].block_count; b++) {
                if (pt_prng_below(&g, 8) == 0) {
                    CHECK_EQ(petrel_bd_emu_set_fault(&t.emu, b, faults[fi]), 0);
                    n++;
                }
            }
            test_log("geometry %s fault %d: %u bad blocks", tfs_geometries[gi].name,
                     (int)faults[fi], n);
            workload(&t.fs, test_seed(), tfs_geometries[gi].block_size <= 128 ? 2 : 5);
            CHECK_EQ(petrel_fs_unmount(&t.fs), 0);
            CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
            CHECK_EQ(petrel_fs_check(&t.fs, tfs_report, NULL), 0);
            petrel_fs_unmount(&t.fs);
            petrel_bd_emu_destroy(&t.emu);
        }
    }
}

TEST_T(fs_emu_wear_out_ends_in_enospc, 300)
{
    struct temu t;
    static uint8_t data[3000], buf[3000];
    uint32_t i, maxw = 0;
    uint64_t sum = 0;
    int err = 0, round;
    const struct tfs_geometry *g = &tfs_geometries[0];
    struct tfs_geometry small = *g;
    small.block_count = 64;
    temu_setup(&t, &small, PETREL_BD_EMU_PROG_NOR, 30, test_seed());
    tfs_fill(data, sizeof(data), 1);
    CHECK_EQ(petrel_fs_format(&t.fs, &t.cfg), 0);
    CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
    for (round = 0; round < 100000; round++) {
        struct petrel_fs_file f;
        int64_t n;
        data[0] = (uint8_t)round;
        err = petrel_fs_file_open(&t.fs, &f, "/wear", PETREL_O_WRONLY | PETREL_O_CREAT | PETREL_O_TRUNC);
        if (err) break;
        n = petrel_fs_file_write(&t.fs, &f, data, sizeof(data));
        err = petrel_fs_file_close(&t.fs, &f);
        if (n < 0) err = (int)n;
        if (err) break;
    }
    test_log("worn out after %d rewrites: %s", round, petrel_strerror(err));
    CHECK_MSG(err == -PT_ENOSPC || err == -PT_EROFS, "ended with %s", petrel_strerror(err));
    /* the last synced version (round - 1 if the failing one did not complete) is intact */
    petrel_fs_unmount(&t.fs);
    CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
    {
        struct petrel_fs_file f;
        int64_t n;
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/wear", PETREL_O_RDONLY), 0);
        n = petrel_fs_file_read(&t.fs, &f, buf, sizeof(buf));
        petrel_fs_file_close(&t.fs, &f);
        CHECK(n == 0 || n == (int64_t)sizeof(data));
        if (n > 0) {
            /* the failed round may have committed (then its data is whole) or not */
            CHECK(buf[0] == (uint8_t)(round - 1) || buf[0] == (uint8_t)round);
            TFS_CHECK_SAME(buf + 1, data + 1, sizeof(data) - 1);
        }
    }
    for (i = 0; i < small.block_count; i++) {
        uint32_t w = petrel_bd_emu_wear(&t.emu, i);
        sum += w;
        if (w > maxw) maxw = w;
    }
    test_log("wear: max %u mean %.1f", maxw, (double)sum / small.block_count);
    petrel_fs_unmount(&t.fs);
    petrel_bd_emu_destroy(&t.emu);
}

/* ---- random operations with random (torn) power cuts, against a model ---- */

#define RM_FILES 6
#define RM_MAX 6000

struct rm_file {
    int exists;
    uint32_t len;
    uint8_t data[RM_MAX];
};

struct rm_model {
    struct rm_file f[RM_FILES];
    int dir_exists;
};

static void rm_path(char *buf, size_t n, int i)
{
    snprintf(buf, n, i % 2 ? "/d/f%d" : "/f%d", i);
}

/* Does the device state match model m for every file? */
static int rm_matches(struct petrel_fs *fs, const struct rm_model *m, int only)
{
    static uint8_t buf[RM_MAX + 16];
    int i;
    for (i = 0; i < RM_FILES; i++) {
        struct petrel_fs_file f;
        char p[32];
        int err;
        int64_t n;
        if (only >= 0 && i != only) continue;
        rm_path(p, sizeof(p), i);
        err = petrel_fs_file_open(fs, &f, p, PETREL_O_RDONLY);
        if (!m->f[i].exists) {
            if (err != -PT_ENOENT) {
                if (err == 0) petrel_fs_file_close(fs, &f);
                return 0;
            }
            continue;
        }
        if (err) return 0;
        n = petrel_fs_file_read(fs, &f, buf, sizeof(buf));
        petrel_fs_file_close(fs, &f);
        if (n != (int64_t)m->f[i].len || memcmp(buf, m->f[i].data, m->f[i].len) != 0) return 0;
    }
    return 1;
}

/* Apply one random operation to fs and to `next` (a copy of the model). */
static int rm_op(struct petrel_fs *fs, struct pt_prng *g, struct rm_model *next, int *touched)
{
    int i = (int)pt_prng_below(g, RM_FILES), err = 0;
    char p[32], q[32];
    struct rm_file *rf = &next->f[i];
    uint64_t op = pt_prng_below(g, 10);
    rm_path(p, sizeof(p), i);
    *touched = i;
    if (i % 2 && !next->dir_exists) {
        err = petrel_fs_mkdir(fs, "/d");
        if (!err) next->dir_exists = 1;
        *touched = -1;
        return err;
    }
    if (op < 5) { /* write at a random offset, sync */
        struct petrel_fs_file f;
        uint32_t off = (uint32_t)pt_prng_below(g, rf->exists ? rf->len + 1 : 1);
        uint32_t n = (uint32_t)pt_prng_below(g, 1500) + 1;
        if (off + n > RM_MAX) n = RM_MAX - off;
        err = petrel_fs_file_open(fs, &f, p, PETREL_O_WRONLY | PETREL_O_CREAT);
        if (err) return err;
        if (!rf->exists) {
            rf->exists = 1;
            rf->len = 0;
        }
        pt_prng_fill(g, rf->data + off, n);
        if (petrel_fs_file_seek(fs, &f, off, PETREL_SEEK_SET) < 0 ||
            petrel_fs_file_write(fs, &f, rf->data + off, n) != (int64_t)n) {
            petrel_fs_file_close(fs, &f);
            return -PT_EIO;
        }
        if (off + n > rf->len) rf->len = off + n;
        return petrel_fs_file_close(fs, &f);
    }
    if (op < 6 && rf->exists) { /* truncate */
        struct petrel_fs_file f;
        uint32_t ns = (uint32_t)pt_prng_below(g, RM_MAX);
        err = petrel_fs_file_open(fs, &f, p, PETREL_O_RDWR);
        if (err) return err;
        if (ns > rf->len) memset(rf->data + rf->len, 0, ns - rf->len);
        rf->len = ns;
        err = petrel_fs_file_truncate(fs, &f, ns);
        if (err) {
            petrel_fs_file_close(fs, &f);
            return err;
        }
        return petrel_fs_file_close(fs, &f);
    }
    if (op < 7 && rf->exists) { /* remove */
        rf->exists = 0;
        return petrel_fs_remove(fs, p);
    }
    if (op < 9 && rf->exists) { /* rename onto a file slot of the same parity or not */
        int j = (int)pt_prng_below(g, RM_FILES);
        if (j == i || (j % 2 && !next->dir_exists)) return 0;
        rm_path(q, sizeof(q), j);
        next->f[j] = *rf;
        rf->exists = 0;
        *touched = -2 - j; /* two files */
        return petrel_fs_rename(fs, p, q);
    }
    return petrel_fs_setattr(fs, "/", 1, "x", 1) == -PT_EINVAL ? 0 : -PT_EIO;
}

TEST_T(fs_emu_random_ops_with_power_cuts, 600)
{
    int gi;
    long cuts_total = 0;
    struct pt_prng g;
    pt_prng_seed(&g, test_seed());
    for (gi = 0; gi < TFS_NGEOM; gi++) {
        static struct rm_model cur, next;
        struct temu t;
        int step, steps = test_sanitized() ? 60 : 400;
        long cuts = 0;
        if (tfs_geometries[gi].block_size <= 128) continue; /* files too big for tiny */
        temu_setup(&t, &tfs_geometries[gi], PETREL_BD_EMU_PROG_NOR, 0, test_seed() + (uint64_t)gi);
        CHECK_EQ(petrel_fs_format(&t.fs, &t.cfg), 0);
        CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
        memset(&cur, 0, sizeof(cur));
        for (step = 0; step < steps; step++) {
            int touched, err, cut = pt_prng_below(&g, 2) == 0;
            next = cur;
            if (cut)
                petrel_bd_emu_powerloss(&t.emu, 1 + pt_prng_below(&g, 6),
                                        pt_prng_below(&g, 2) ? PETREL_BD_EMU_POWERLOSS_TORN
                                                             : PETREL_BD_EMU_POWERLOSS_ATOMIC);
            err = rm_op(&t.fs, &g, &next, &touched);
            if (petrel_bd_emu_is_dead(&t.emu)) {
                int okold, oknew;
                cuts++;
                petrel_fs_unmount(&t.fs);
                petrel_bd_emu_reboot(&t.emu);
                err = petrel_fs_mount(&t.fs, &t.cfg);
                CHECK_MSG(err == 0, "step %d: mount after cut: %s", step, petrel_strerror(err));
                err = petrel_fs_check(&t.fs, tfs_report, NULL);
                CHECK_MSG(err == 0, "step %d: check after cut: %s", step, petrel_strerror(err));
                okold = rm_matches(&t.fs, &cur, -1);
                oknew = rm_matches(&t.fs, &next, -1);
                if (!okold && !oknew && touched >= 0 && !cur.f[touched].exists) {
                    /* open(CREAT) commits the empty file before the data is synced */
                    static struct rm_model mid;
                    mid = cur;
                    mid.f[touched].exists = 1;
                    mid.f[touched].len = 0;
                    if (rm_matches(&t.fs, &mid, -1)) {
                        okold = 1;
                        cur = mid;
                    }
                }
                CHECK_MSG(okold || oknew, "[%s] step %d: state is neither before nor after",
                          tfs_geometries[gi].name, step);
                if (oknew) cur = next;
                next.dir_exists = cur.dir_exists;
                {
                    struct petrel_fs_info info;
                    cur.dir_exists = petrel_fs_stat(&t.fs, "/d", &info) == 0;
                }
                continue;
            }
            petrel_bd_emu_powerloss(&t.emu, 0, PETREL_BD_EMU_POWERLOSS_ATOMIC);
            CHECK_MSG(err == 0, "[%s] step %d: operation failed: %s", tfs_geometries[gi].name,
                      step, petrel_strerror(err));
            cur = next;
            if (step % 50 == 49) {
                CHECK_EQ(petrel_fs_check(&t.fs, tfs_report, NULL), 0);
                CHECK(rm_matches(&t.fs, &cur, -1));
            }
        }
        CHECK(rm_matches(&t.fs, &cur, -1));
        test_log("%s: %d steps, %ld power cuts", tfs_geometries[gi].name, steps, cuts);
        cuts_total += cuts;
        petrel_fs_unmount(&t.fs);
        petrel_bd_emu_destroy(&t.emu);
    }
    test_log("%ld power cuts in total", cuts_total);
}
