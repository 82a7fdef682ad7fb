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
