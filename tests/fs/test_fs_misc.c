/*
 * Whole-filesystem calls and configuration: usage and traverse, fsck finding damage,
 * mounting garbage, static buffers, configuration errors, the seeded allocator.
 */
#include "test_fs_harness.h"
#include "petrel/prng.h"

static int count_block(void *ctx, uint32_t block)
{
    uint32_t *seen = (uint32_t *)ctx;
    seen[0]++;
    if (block > seen[1]) seen[1] = block;
    return 0;
}

static int stop_early(void *ctx, uint32_t block)
{
    (void)ctx;
    (void)block;
    return 7;
}

TEST(fs_usage_and_traverse)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        uint32_t seen[2] = {0, 0};
        int64_t before = petrel_fs_usage(&t.fs), after;
        size_t len = t.g->block_size * 4;
        uint8_t *a = calloc(1, len);
        CHECK_EQ(before, 2); /* the root pair */
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/d"), 0);
        CHECK_EQ(tfs_put(&t, "/d/f", a, len), 0);
        after = petrel_fs_usage(&t.fs);
        CHECK(after >= before + 2 + 4);
        CHECK_EQ(petrel_fs_traverse(&t.fs, count_block, seen), 0);
        CHECK_EQ(seen[0], after);
        CHECK(seen[1] < t.g->block_count);
        CHECK_EQ(petrel_fs_traverse(&t.fs, stop_early, NULL), 7);
        CHECK_EQ(petrel_fs_remove(&t.fs, "/d/f"), 0);
        CHECK_EQ(petrel_fs_remove(&t.fs, "/d"), 0);
        CHECK_EQ(petrel_fs_usage(&t.fs), before);
        free(a);
    }
}

static void count_problem(void *ctx, const char *problem)
{
    (*(int *)ctx)++;
    test_log("problem: %s", problem);
}

TEST(fs_check_reports_damaged_data)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        size_t len = t.g->block_size * 2;
        uint8_t *a = malloc(len);
        uint32_t seen[2] = {0, 0};
        int problems = 0;
        tfs_fill(a, len, 11);
        CHECK_EQ(tfs_put(&t, "/f", a, len), 0);
        tfs_check_clean(&t);
        /* the highest block in use is a data block of /f: damage its first page */
        CHECK_EQ(petrel_fs_traverse(&t.fs, count_block, seen), 0);
        CHECK(seen[1] > 1);
        t.mem[(size_t)seen[1] * t.g->block_size + 3] ^= 0x40;
        CHECK_EQ(petrel_fs_check(&t.fs, count_problem, &problems), -PT_ECORRUPT);
        CHECK(problems >= 1);
        CHECK_EQ(tfs_get(&t, "/f", a, len), -PT_ECORRUPT);
        free(a);
    }
}

TEST(fs_mount_garbage_fails_cleanly)
{
    struct tfs t;
    struct pt_prng g;
    pt_prng_seed(&g, test_seed());
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        int round;
        size_t bytes = (size_t)t.g->block_size * t.g->block_count;
        CHECK_EQ(petrel_fs_unmount(&t.fs), 0);
        for (round = 0; round < 5; round++) {
            int err;
            pt_prng_fill(&g, t.mem, bytes);
            err = petrel_fs_mount(&t.fs, &t.cfg);
            CHECK_EQ(err, -PT_ECORRUPT);
        }
        memset(t.mem, 0, bytes);
        CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), -PT_ECORRUPT);
        /* a valid image with a damaged superblock copy in the newest commit still mounts
         * from the older block when one exists; a reformat always works */
        CHECK_EQ(petrel_fs_format(&t.fs, &t.cfg), 0);
        CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
    }
}

TEST(fs_static_buffers_and_config_errors)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs fs2;
        struct petrel_fs_config cfg = t.cfg;
        struct petrel_fs_fsinfo fi;
        struct petrel_fs_file f;
        struct petrel_fs_file_config fc;
        uint8_t *rb = malloc(t.g->block_size), *pb = malloc(t.g->block_size);
        uint8_t look[64], *page;
        char buf[8];
        CHECK_EQ(petrel_fs_fsinfo(&t.fs, &fi), 0);
        CHECK_EQ(fi.version, PETREL_FS_VERSION);
        CHECK_EQ(fi.block_size, t.g->block_size);
        CHECK_EQ(petrel_fs_unmount(&t.fs), 0);
        cfg.read_buffer = rb;
        cfg.prog_buffer = pb;
        cfg.lookahead_buffer = look;
        cfg.lookahead_size = sizeof(look);
        cfg.cache_size = t.g->block_size;
        CHECK_EQ(petrel_fs_mount(&fs2, &cfg), 0);
        page = malloc(fi.page_size);
        memset(&fc, 0, sizeof(fc));
        fc.buffer = page;
        CHECK_EQ(petrel_fs_file_opencfg(&fs2, &f, "/s", PETREL_O_RDWR | PETREL_O_CREAT, &fc), 0);
        CHECK_EQ(petrel_fs_file_write(&fs2, &f, "static", 6), 6);
        CHECK_EQ(petrel_fs_file_close(&fs2, &f), 0);
        CHECK_EQ(petrel_fs_unmount(&fs2), 0);
        /* bad configurations */
        cfg = t.cfg;
        cfg.cache_size = t.g->prog_size == 16 ? 24 : t.g->block_size + 1;
        CHECK_EQ(petrel_fs_mount(&fs2, &cfg), -PT_EINVAL);
        cfg = t.cfg;
        cfg.lookahead_size = 3;
        CHECK_EQ(petrel_fs_mount(&fs2, &cfg), -PT_EINVAL);
        cfg = t.cfg;
        cfg.block_count = t.g->block_count - 1;
        CHECK_EQ(petrel_fs_mount(&fs2, &cfg), -PT_EINVAL);
        cfg = t.cfg;
        cfg.name_max = 300;
        CHECK_EQ(petrel_fs_format(&fs2, &cfg), -PT_EINVAL);
        cfg.bd = NULL;
        CHECK_EQ(petrel_fs_mount(&fs2, &cfg), -PT_EINVAL);
        CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
        CHECK_EQ(tfs_get(&t, "/s", buf, sizeof(buf)), 6);
        CHECK_MEM(buf, "static", 6);
        free(rb);
        free(pb);
        free(page);
    }
}

/* The same image allocates the same blocks on every mount; seed_mix changes the start. */
TEST(fs_allocation_is_deterministic_per_image)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        size_t bytes = (size_t)t.g->block_size * t.g->block_count;
        uint8_t *base = malloc(bytes), *one = malloc(bytes);
        uint32_t s1[2] = {0, 0}, s2[2] = {0, 0}, s3[2] = {0, 0};
        CHECK_EQ(tfs_put(&t, "/a", "x", 1), 0);
        CHECK_EQ(petrel_fs_unmount(&t.fs), 0);
        memcpy(base, t.mem, bytes);
        CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/d"), 0);
        CHECK_EQ(petrel_fs_traverse(&t.fs, count_block, s1), 0);
        CHECK_EQ(petrel_fs_unmount(&t.fs), 0);
        memcpy(one, t.mem, bytes);
        memcpy(t.mem, base, bytes);
        CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/d"), 0);
        CHECK_EQ(petrel_fs_traverse(&t.fs, count_block, s2), 0);
        CHECK_EQ(petrel_fs_unmount(&t.fs), 0);
        CHECK(memcmp(one, t.mem, bytes) == 0); /* identical images */
        CHECK_EQ(s1[1], s2[1]);
        memcpy(t.mem, base, bytes);
        t.cfg.seed_mix = 0x9e3779b97f4a7c15ull;
        CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/d"), 0);
        CHECK_EQ(petrel_fs_traverse(&t.fs, count_block, s3), 0);
        test_log("%s: highest block %u without, %u with seed_mix", t.g->name, s1[1], s3[1]);
        t.cfg.seed_mix = 0;
        free(base);
        free(one);
    }
}
