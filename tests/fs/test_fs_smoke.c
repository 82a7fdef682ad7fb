/*
 * First-light cases for the flash engine: format, mount, create, write, read back, remount.
 */
#include "test_fs_harness.h"

TEST(fs_format_mount_empty_root)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_info info;
        struct petrel_fs_dir d;
        CHECK_EQ(petrel_fs_stat(&t.fs, "/", &info), 0);
        CHECK_EQ(info.type, PETREL_FS_DIR);
        CHECK_EQ(petrel_fs_dir_open(&t.fs, &d, "/"), 0);
        CHECK_EQ(petrel_fs_dir_read(&t.fs, &d, &info), 0);
        CHECK_EQ(petrel_fs_dir_close(&t.fs, &d), 0);
        tfs_remount(&t);
        tfs_check_clean(&t);
    }
}

TEST(fs_small_file_round_trip)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        char buf[64];
        CHECK_EQ(tfs_put(&t, "/hello", "hello world", 11), 0);
        CHECK_EQ(tfs_get(&t, "/hello", buf, sizeof(buf)), 11);
        CHECK_MEM(buf, "hello world", 11);
        tfs_remount(&t);
        CHECK_EQ(tfs_get(&t, "/hello", buf, sizeof(buf)), 11);
        CHECK_MEM(buf, "hello world", 11);
        tfs_check_clean(&t);
    }
}

TEST(fs_large_file_round_trip)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        size_t len = t.g->block_size * 5 + 1234;
        uint8_t *a = malloc(len), *b = malloc(len);
        tfs_fill(a, len, 7);
        CHECK_EQ(tfs_put(&t, "/big", a, len), 0);
        memset(b, 0, len);
        CHECK_EQ(tfs_get(&t, "/big", b, len), (int64_t)len);
        CHECK_MEM(a, b, len);
        tfs_remount(&t);
        memset(b, 0, len);
        CHECK_EQ(tfs_get(&t, "/big", b, len), (int64_t)len);
        CHECK_MEM(a, b, len);
        tfs_check_clean(&t);
        free(a);
        free(b);
    }
}
