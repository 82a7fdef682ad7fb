/*
 * The emulated flash device, one behaviour per case: erase values, NOR programming, strict
 * mode, wear and endurance, bad blocks, power cuts (atomic and torn) and reboot, bit flips,
 * counters, snapshots, and determinism from the seed.
 */
#include <stdlib.h>
#include <string.h>

#include "petrel/bd.h"
#include "petrel/common.h"
#include "test.h"

static struct petrel_bd_emu_config small_cfg(int32_t erase_value, enum petrel_bd_emu_prog_mode mode)
{
    struct petrel_bd_emu_config c;
    memset(&c, 0, sizeof(c));
    c.read_size = 4;
    c.prog_size = 4;
    c.block_size = 256;
    c.block_count = 8;
    c.erase_value = erase_value;
    c.prog_mode = mode;
    c.seed = 42;
    return c;
}

static int all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != v) return 0;
    return 1;
}

TEST(bd_emu_rejects_bad_geometry_and_access)
{
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_bd_emu_config c = small_cfg(0xff, PETREL_BD_EMU_PROG_RAW);
    uint8_t buf[8] = {0};
    c.block_size = 250; /* not a multiple of 4 */
    CHECK_EQ(petrel_bd_emu_create(&bd, &emu, &c), -PT_EINVAL);
    c = small_cfg(0x12, PETREL_BD_EMU_PROG_RAW);
    CHECK_EQ(petrel_bd_emu_create(&bd, &emu, &c), -PT_EINVAL);
    c = small_cfg(0xff, PETREL_BD_EMU_PROG_RAW);
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
    CHECK_EQ(bd.read(bd.context, 8, 0, buf, 4), -PT_EINVAL);   /* block out of range */
    CHECK_EQ(bd.read(bd.context, 0, 2, buf, 4), -PT_EINVAL);   /* unaligned */
    CHECK_EQ(bd.read(bd.context, 0, 252, buf, 8), -PT_EINVAL); /* past the block end */
    CHECK_EQ(bd.prog(bd.context, 0, 0, buf, 3), -PT_EINVAL);
    CHECK_EQ(bd.erase(bd.context, 9), -PT_EINVAL);
    CHECK_EQ(emu.stats.read_bytes + emu.stats.prog_bytes + emu.stats.erase_bytes, 0);
    petrel_bd_emu_destroy(&emu);
}

TEST(bd_emu_erase_values)
{
    static const int32_t values[] = {0xff, 0x00};
    size_t i;
    for (i = 0; i < 2; i++) {
        struct petrel_bd bd;
        struct petrel_bd_emu emu;
        struct petrel_bd_emu_config c = small_cfg(values[i], PETREL_BD_EMU_PROG_RAW);
        uint8_t buf[256];
        CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
        CHECK_EQ(bd.erase_value, values[i]);
        CHECK_OK(bd.read(bd.context, 3, 0, buf, 256));
        CHECK(all_bytes(buf, 256, (uint8_t)values[i]));
        memset(buf, 0x5a, 16);
        CHECK_OK(bd.prog(bd.context, 3, 16, buf, 16));
        CHECK_OK(bd.erase(bd.context, 3));
        CHECK_OK(bd.read(bd.context, 3, 0, buf, 256));
        CHECK(all_bytes(buf, 256, (uint8_t)values[i]));
        petrel_bd_emu_destroy(&emu);
    }
}

TEST(bd_emu_erase_random_and_keep)
{
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_bd_emu_config c = small_cfg(PETREL_BD_EMU_ERASE_RANDOM, PETREL_BD_EMU_PROG_RAW);
    uint8_t a[256], b[256], data[256];
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
    CHECK_EQ(bd.erase_value, -1);
    CHECK_OK(bd.erase(bd.context, 1));
    CHECK_OK(bd.read(bd.context, 1, 0, a, 256));
    CHECK_OK(bd.erase(bd.context, 1));
    CHECK_OK(bd.read(bd.context, 1, 0, b, 256));
    CHECK(memcmp(a, b, 256) != 0); /* fresh random contents each erase */
    CHECK(!all_bytes(a, 256, 0xff) && !all_bytes(a, 256, 0x00));
    petrel_bd_emu_destroy(&emu);

    c = small_cfg(PETREL_BD_EMU_ERASE_KEEP, PETREL_BD_EMU_PROG_RAW);
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
    memset(data, 0x77, sizeof(data));
    CHECK_OK(bd.prog(bd.context, 2, 0, data, 256));
    CHECK_OK(bd.erase(bd.context, 2));
    CHECK_OK(bd.read(bd.context, 2, 0, a, 256));
    CHECK_MEM(a, data, 256); /* erase left the old contents */
    petrel_bd_emu_destroy(&emu);
}

TEST(bd_emu_nor_prog_only_clears_bits)
{
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_bd_emu_config c = small_cfg(0xff, PETREL_BD_EMU_PROG_NOR);
    uint8_t w1[4] = {0xf0, 0x0f, 0xaa, 0xff}, w2[4] = {0x3c, 0xff, 0x55, 0x00}, r[4];
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
    CHECK_OK(bd.prog(bd.context, 0, 8, w1, 4));
    CHECK_OK(bd.prog(bd.context, 0, 8, w2, 4)); /* allowed, but only clears bits */
    CHECK_OK(bd.read(bd.context, 0, 8, r, 4));
    CHECK_EQ(r[0], 0x30);
    CHECK_EQ(r[1], 0x0f);
    CHECK_EQ(r[2], 0x00);
    CHECK_EQ(r[3], 0x00);
    petrel_bd_emu_destroy(&emu);

    c = small_cfg(0x00, PETREL_BD_EMU_PROG_NOR); /* erased 0x00: prog only sets bits */
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
    CHECK_OK(bd.prog(bd.context, 0, 8, w1, 4));
    CHECK_OK(bd.prog(bd.context, 0, 8, w2, 4));
    CHECK_OK(bd.read(bd.context, 0, 8, r, 4));
    CHECK_EQ(r[0], 0xfc);
    CHECK_EQ(r[1], 0xff);
    CHECK_EQ(r[2], 0xff);
    CHECK_EQ(r[3], 0xff);
    petrel_bd_emu_destroy(&emu);
}

TEST(bd_emu_strict_refuses_double_prog)
{
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_bd_emu_config c = small_cfg(0xff, PETREL_BD_EMU_PROG_STRICT);
    uint8_t w[8] = {1, 2, 3, 4, 5, 6, 7, 8}, r[8];
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
    CHECK_OK(bd.prog(bd.context, 1, 0, w, 4));
    CHECK_EQ(bd.prog(bd.context, 1, 0, w + 4, 8), -PT_EINVAL); /* overlaps programmed bytes */
    CHECK_OK(bd.read(bd.context, 1, 0, r, 8));
    CHECK_MEM(r, w, 4);
    CHECK(all_bytes(r + 4, 4, 0xff)); /* the refused prog changed nothing */
    CHECK_OK(bd.prog(bd.context, 1, 4, w + 4, 4));
    /* Bytes put back to the erased state take a program again. */
    CHECK_OK(petrel_bd_emu_set_erased(&emu, 1, 4, 4));
    CHECK_OK(bd.read(bd.context, 1, 0, r, 8));
    CHECK(all_bytes(r + 4, 4, 0xff));
    CHECK_EQ(bd.prog(bd.context, 1, 0, w, 4), -PT_EINVAL);
    CHECK_OK(bd.prog(bd.context, 1, 4, w + 4, 4));
    CHECK_EQ(petrel_bd_emu_set_erased(&emu, 1, 250, 8), -PT_EINVAL);
    CHECK_OK(bd.erase(bd.context, 1));
    CHECK_OK(bd.prog(bd.context, 1, 0, w, 8)); /* erased again: allowed */
    petrel_bd_emu_destroy(&emu);
}

TEST(bd_emu_wear_counts_and_endurance)
{
    static const enum petrel_bd_emu_fault faults[] = {
        PETREL_BD_EMU_ERASE_ERROR, PETREL_BD_EMU_PROG_NOOP, PETREL_BD_EMU_PROG_ERROR};
    size_t k;
    for (k = 0; k < 3; k++) {
        struct petrel_bd bd;
        struct petrel_bd_emu emu;
        struct petrel_bd_emu_config c = small_cfg(0xff, PETREL_BD_EMU_PROG_NOR);
        uint8_t w[4] = {0x11, 0x22, 0x33, 0x44}, r[4];
        int i;
        c.endurance = 5;
        c.worn_fault = faults[k];
        CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
        for (i = 0; i < 5; i++)
            CHECK_OK(bd.erase(bd.context, 2));
        CHECK_EQ(petrel_bd_emu_wear(&emu, 2), 5);
        CHECK_EQ(petrel_bd_emu_wear(&emu, 3), 0);
        CHECK_OK(bd.prog(bd.context, 2, 0, w, 4)); /* 5 erases: still good */
        CHECK_OK(bd.read(bd.context, 2, 0, r, 4));
        CHECK_MEM(r, w, 4);
        if (faults[k] == PETREL_BD_EMU_ERASE_ERROR) {
            CHECK_EQ(bd.erase(bd.context, 2), -PT_EIO); /* the 6th erase fails */
            CHECK_EQ(petrel_bd_emu_wear(&emu, 2), 5);
            CHECK_OK(bd.read(bd.context, 2, 0, r, 4));
            CHECK_MEM(r, w, 4); /* and leaves the block as it was */
        } else {
            CHECK_OK(bd.erase(bd.context, 2));
            CHECK_EQ(petrel_bd_emu_wear(&emu, 2), 6);
            if (faults[k] == PETREL_BD_EMU_PROG_NOOP)
                CHECK_OK(bd.prog(bd.context, 2, 0, w, 4)); /* "succeeds"... */
            else
                CHECK_EQ(bd.prog(bd.context, 2, 0, w, 4), -PT_EIO);
            CHECK_OK(bd.read(bd.context, 2, 0, r, 4));
            CHECK(all_bytes(r, 4, 0xff)); /* ...but does not stick */
        }
        CHECK_OK(petrel_bd_emu_set_wear(&emu, 4, 100));
        CHECK_EQ(petrel_bd_emu_wear(&emu, 4), 100);
        petrel_bd_emu_destroy(&emu);
    }
}

TEST(bd_emu_bad_block_behaviours)
{
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_bd_emu_config c = small_cfg(0xff, PETREL_BD_EMU_PROG_RAW);
    uint8_t w[4] = {9, 8, 7, 6}, r[4];
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
    CHECK_OK(petrel_bd_emu_set_fault(&emu, 1, PETREL_BD_EMU_PROG_ERROR));
    CHECK_OK(petrel_bd_emu_set_fault(&emu, 2, PETREL_BD_EMU_ERASE_ERROR));
    CHECK_OK(petrel_bd_emu_set_fault(&emu, 3, PETREL_BD_EMU_READ_ERROR));
    CHECK_OK(petrel_bd_emu_set_fault(&emu, 4, PETREL_BD_EMU_PROG_NOOP));
    CHECK_EQ(petrel_bd_emu_set_fault(&emu, 8, PETREL_BD_EMU_PROG_NOOP), -PT_EINVAL);

    CHECK_EQ(bd.prog(bd.context, 1, 0, w, 4), -PT_EIO);
    CHECK_OK(bd.read(bd.context, 1, 0, r, 4));
    CHECK(all_bytes(r, 4, 0xff));

    CHECK_OK(bd.prog(bd.context, 2, 0, w, 4));
    CHECK_EQ(bd.erase(bd.context, 2), -PT_EIO);
    CHECK_OK(bd.read(bd.context, 2, 0, r, 4));
    CHECK_MEM(r, w, 4);

    CHECK_OK(bd.prog(bd.context, 3, 0, w, 4));
    CHECK_EQ(bd.read(bd.context, 3, 0, r, 4), -PT_EIO);

    CHECK_OK(bd.prog(bd.context, 4, 0, w, 4));
    CHECK_OK(bd.read(bd.context, 4, 0, r, 4));
    CHECK(all_bytes(r, 4, 0xff));

    /* Erase that silently does nothing: old data survives a "successful" erase. */
    CHECK_OK(bd.prog(bd.context, 5, 0, w, 4));
    CHECK_OK(petrel_bd_emu_set_fault(&emu, 5, PETREL_BD_EMU_ERASE_NOOP));
    CHECK_OK(bd.erase(bd.context, 5));
    CHECK_OK(bd.read(bd.context, 5, 0, r, 4));
    CHECK_MEM(r, w, 4);

    /* Healed. */
    CHECK_OK(petrel_bd_emu_set_fault(&emu, 3, PETREL_BD_EMU_OK));
    CHECK_OK(bd.read(bd.context, 3, 0, r, 4));
    CHECK_MEM(r, w, 4);
    petrel_bd_emu_destroy(&emu);
}

TEST(bd_emu_powerloss_atomic_then_reboot)
{
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_bd_emu_config c = small_cfg(0xff, PETREL_BD_EMU_PROG_NOR);
    uint8_t w[16], r[16];
    memset(w, 0x42, sizeof(w));
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
    petrel_bd_emu_powerloss(&emu, 3, PETREL_BD_EMU_POWERLOSS_ATOMIC);
    CHECK_OK(bd.prog(bd.context, 0, 0, w, 16)); /* op 1 */
    CHECK_OK(bd.read(bd.context, 0, 0, r, 16)); /* reads do not count */
    CHECK_OK(bd.erase(bd.context, 1));          /* op 2 */
    CHECK(!petrel_bd_emu_is_dead(&emu));
    CHECK_EQ(bd.prog(bd.context, 0, 16, w, 16), -PT_EIO); /* op 3: cut */
    CHECK(petrel_bd_emu_is_dead(&emu));
    CHECK_EQ(bd.read(bd.context, 0, 0, r, 16), -PT_EIO);
    CHECK_EQ(bd.prog(bd.context, 0, 32, w, 16), -PT_EIO);
    CHECK_EQ(bd.erase(bd.context, 0), -PT_EIO);
    CHECK_EQ(bd.sync(bd.context), -PT_EIO);
    petrel_bd_emu_reboot(&emu);
    CHECK(!petrel_bd_emu_is_dead(&emu));
    CHECK_OK(bd.read(bd.context, 0, 0, r, 16));
    CHECK_MEM(r, w, 16); /* the op before the cut is there */
    CHECK_OK(bd.read(bd.context, 0, 16, r, 16));
    CHECK(all_bytes(r, 16, 0xff)); /* the cut op did not happen */
    CHECK_OK(bd.sync(bd.context));
    petrel_bd_emu_destroy(&emu);
}

TEST(bd_emu_powerloss_torn_prog_and_erase)
{
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_bd_emu_config c = small_cfg(0xff, PETREL_BD_EMU_PROG_NOR);
    uint8_t w[256], r[256];
    int seen_partial = 0, seen_partial_erase = 0, round;
    memset(w, 0x00, sizeof(w));
    c.seed = test_seed();
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
    for (round = 0; round < 32; round++) {
        size_t i, programmed = 0;
        petrel_bd_emu_reboot(&emu);
        CHECK_OK(bd.erase(bd.context, 0));
        petrel_bd_emu_powerloss(&emu, 1, PETREL_BD_EMU_POWERLOSS_TORN);
        CHECK_EQ(bd.prog(bd.context, 0, 0, w, 256), -PT_EIO);
        petrel_bd_emu_reboot(&emu);
        CHECK_OK(bd.read(bd.context, 0, 0, r, 256));
        /* A prefix programmed, then at most one partial byte, then erased bytes. */
        while (programmed < 256 && r[programmed] == 0x00)
            programmed++;
        CHECK(programmed < 256);
        for (i = programmed + 1; i < 256; i++)
            CHECK_EQ(r[i], 0xff);
        if (programmed > 0 && programmed < 255) seen_partial = 1;

        CHECK_OK(bd.prog(bd.context, 1, 0, w, 256));
        petrel_bd_emu_powerloss(&emu, 1, PETREL_BD_EMU_POWERLOSS_TORN);
        CHECK_EQ(bd.erase(bd.context, 1), -PT_EIO);
        petrel_bd_emu_reboot(&emu);
        CHECK_OK(bd.read(bd.context, 1, 0, r, 256));
        for (i = 0; i < 256 && r[i] == 0xff; i++) {
        }
        CHECK(all_bytes(r + i, 256 - i, 0x00)); /* erased prefix, old suffix */
        if (i > 0) seen_partial_erase = 1;
    }
    CHECK(seen_partial);
    CHECK(seen_partial_erase);
    petrel_bd_emu_destroy(&emu);
}

TEST(bd_emu_flip_bits_and_counters)
{
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_bd_emu_config c = small_cfg(0xff, PETREL_BD_EMU_PROG_RAW);
    uint8_t r[256];
    int b, diff = 0, i;
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
    CHECK_OK(petrel_bd_emu_flip_bits(&emu, 6, 1));
    CHECK_OK(bd.read(bd.context, 6, 0, r, 256));
    for (i = 0; i < 256; i++)
        for (b = 0; b < 8; b++)
            diff += !((r[i] >> b) & 1);
    CHECK_EQ(diff, 1);
    CHECK_OK(petrel_bd_emu_flip_range(&emu, 7, 100, 4, 3));
    CHECK_OK(bd.read(bd.context, 7, 0, r, 256));
    CHECK(all_bytes(r, 100, 0xff) && all_bytes(r + 104, 152, 0xff));
    CHECK(!all_bytes(r + 100, 4, 0xff));
    CHECK_EQ(petrel_bd_emu_flip_range(&emu, 7, 250, 10, 1), -PT_EINVAL);
    CHECK_OK(petrel_bd_emu_flip_bits(&emu, UINT32_MAX, 50));

    petrel_bd_emu_stats_reset(&emu);
    CHECK_OK(bd.read(bd.context, 0, 0, r, 64));
    CHECK_OK(bd.prog(bd.context, 0, 0, r, 32));
    CHECK_OK(bd.erase(bd.context, 0));
    CHECK_OK(bd.erase(bd.context, 1));
    CHECK_OK(bd.sync(bd.context));
    CHECK_EQ(emu.stats.reads, 1);
    CHECK_EQ(emu.stats.read_bytes, 64);
    CHECK_EQ(emu.stats.progs, 1);
    CHECK_EQ(emu.stats.prog_bytes, 32);
    CHECK_EQ(emu.stats.erases, 2);
    CHECK_EQ(emu.stats.erase_bytes, 512);
    CHECK_EQ(emu.stats.syncs, 1);
    petrel_bd_emu_destroy(&emu);
}

/* Run a fixed mix of random faults; return a digest of the final contents. */
static uint64_t emu_run_digest(uint64_t seed)
{
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_bd_emu_config c = small_cfg(PETREL_BD_EMU_ERASE_RANDOM, PETREL_BD_EMU_PROG_RAW);
    uint8_t w[64];
    uint64_t h = 1469598103934665603ull;
    size_t i;
    c.seed = seed;
    memset(w, 0x3c, sizeof(w));
    if (petrel_bd_emu_create(&bd, &emu, &c)) return 0;
    bd.erase(bd.context, 0);
    petrel_bd_emu_powerloss(&emu, 2, PETREL_BD_EMU_POWERLOSS_TORN);
    bd.prog(bd.context, 0, 0, w, 64);
    bd.prog(bd.context, 0, 64, w, 64);
    petrel_bd_emu_reboot(&emu);
    petrel_bd_emu_flip_bits(&emu, UINT32_MAX, 20);
    for (i = 0; i < (size_t)c.block_size * c.block_count; i++)
        h = (h ^ emu.memory[i]) * 1099511628211ull;
    petrel_bd_emu_destroy(&emu);
    return h;
}

TEST(bd_emu_deterministic_from_seed)
{
    uint64_t seed = test_seed();
    CHECK_EQ(emu_run_digest(seed), emu_run_digest(seed));
    CHECK(emu_run_digest(seed) != emu_run_digest(seed + 1));
}

TEST(bd_emu_copy_restores_snapshot)
{
    struct petrel_bd bd, bd2;
    struct petrel_bd_emu emu, snap;
    struct petrel_bd_emu_config c = small_cfg(0xff, PETREL_BD_EMU_PROG_STRICT);
    uint8_t w[4] = {1, 2, 3, 4}, r[4];
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
    CHECK_OK(petrel_bd_emu_create(&bd2, &snap, &c));
    CHECK_OK(bd.prog(bd.context, 0, 0, w, 4));
    CHECK_OK(petrel_bd_emu_copy(&snap, &emu));
    CHECK_OK(bd.erase(bd.context, 0));
    CHECK_OK(bd.prog(bd.context, 0, 4, w, 4));
    CHECK_OK(petrel_bd_emu_copy(&emu, &snap));
    CHECK_OK(bd.read(bd.context, 0, 0, r, 4));
    CHECK_MEM(r, w, 4);
    CHECK_EQ(bd.prog(bd.context, 0, 0, w, 4), -PT_EINVAL); /* "programmed" state restored */
    CHECK_EQ(petrel_bd_emu_wear(&emu, 0), 0);
    petrel_bd_emu_destroy(&emu);
    petrel_bd_emu_destroy(&snap);
}

TEST(bd_emu_restore_copies_only_changed_blocks)
{
    struct petrel_bd bd, bd2;
    struct petrel_bd_emu emu, snap;
    struct petrel_bd_emu_config c = small_cfg(0xff, PETREL_BD_EMU_PROG_STRICT);
    uint8_t w[4] = {1, 2, 3, 4}, r[256];
    int round;
    c.block_size = 100; /* programmed bits of a block do not start on a byte boundary */
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &c));
    CHECK_OK(petrel_bd_emu_create(&bd2, &snap, &c));
    CHECK_OK(bd.prog(bd.context, 3, 0, w, 4));
    CHECK_OK(petrel_bd_emu_copy(&snap, &emu));
    CHECK_OK(petrel_bd_emu_copy(&emu, &snap));
    for (round = 0; round < 3; round++) {
        CHECK_OK(bd.erase(bd.context, 3));
        CHECK_OK(bd.prog(bd.context, 2, 96, w, 4));
        CHECK_OK(bd.prog(bd.context, 4, 0, w, 4));
        CHECK_OK(petrel_bd_emu_flip_bits(&emu, 5, 3));
        CHECK_OK(petrel_bd_emu_set_fault(&emu, 6, PETREL_BD_EMU_READ_ERROR));
        CHECK_OK(petrel_bd_emu_restore(&emu, &snap));
        CHECK_MEM(emu.memory, snap.memory, (size_t)c.block_size * c.block_count);
        CHECK_MEM(emu.programmed, snap.programmed, ((size_t)c.block_size * c.block_count + 7) / 8);
        CHECK_EQ(petrel_bd_emu_wear(&emu, 3), 0);
        CHECK_OK(bd.read(bd.context, 6, 0, r, 100));
        CHECK_EQ(bd.prog(bd.context, 3, 0, w, 4), -PT_EINVAL); /* still programmed */
        CHECK_OK(bd.prog(bd.context, 2, 96, w, 4));            /* erased again */
        CHECK_OK(petrel_bd_emu_restore(&emu, &snap));
    }
    petrel_bd_emu_destroy(&emu);
    petrel_bd_emu_destroy(&snap);
}
