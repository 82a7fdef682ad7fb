/*
 * rename (within and across directories, over existing entries, every error) and custom
 * attributes (set, get, replace, remove, limits; they follow renames and die with removal).
 */
#include "test_fs_harness.h"

TEST(fs_rename_cases)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_info info;
        char buf[64];
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/a"), 0);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/b"), 0);
        CHECK_EQ(tfs_put(&t, "/a/f", "one", 3), 0);
        /* same directory */
        CHECK_EQ(petrel_fs_rename(&t.fs, "/a/f", "/a/g"), 0);
        CHECK_EQ(petrel_fs_stat(&t.fs, "/a/f", &info), -PT_ENOENT);
        CHECK_EQ(tfs_get(&t, "/a/g", buf, sizeof(buf)), 3);
        /* across directories */
        CHECK_EQ(petrel_fs_rename(&t.fs, "/a/g", "/b/h"), 0);
        CHECK_EQ(petrel_fs_stat(&t.fs, "/a/g", &info), -PT_ENOENT);
        CHECK_EQ(tfs_get(&t, "/b/h", buf, sizeof(buf)), 3);
        CHECK_MEM(buf, "one", 3);
        /* over an existing file */
        CHECK_EQ(tfs_put(&t, "/a/x", "two!", 4), 0);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/a/x", "/b/h"), 0);
        CHECK_EQ(tfs_get(&t, "/b/h", buf, sizeof(buf)), 4);
        CHECK_MEM(buf, "two!", 4);
        CHECK_EQ(petrel_fs_stat(&t.fs, "/a/x", &info), -PT_ENOENT);
        /* onto itself */
        CHECK_EQ(petrel_fs_rename(&t.fs, "/b/h", "/b/h"), 0);
        CHECK_EQ(tfs_get(&t, "/b/h", buf, sizeof(buf)), 4);
        /* directories */
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/a/sub"), 0);
        CHECK_EQ(tfs_put(&t, "/a/sub/in", "deep", 4), 0);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/a", "/a/sub/loop"), -PT_EINVAL);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/a", "/a/new"), -PT_EINVAL);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/a/sub", "/b/h"), -PT_ENOTDIR);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/b/h", "/a/sub"), -PT_EISDIR);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/c"), 0);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/c", "/a"), -PT_ENOTEMPTY);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/a/sub", "/c"), 0); /* over an empty directory */
        CHECK_EQ(tfs_get(&t, "/c/in", buf, sizeof(buf)), 4);
        CHECK_MEM(buf, "deep", 4);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/missing", "/x"), -PT_ENOENT);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/b/h", "/nodir/x"), -PT_ENOENT);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/", "/x"), -PT_EINVAL);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/b/h", "/"), -PT_EINVAL);
        tfs_remount(&t);
        CHECK_EQ(tfs_get(&t, "/c/in", buf, sizeof(buf)), 4);
        CHECK_EQ(petrel_fs_stat(&t.fs, "/a/sub", &info), -PT_ENOENT);
        tfs_check_clean(&t);
        /* the directory moved with its contents can be emptied and removed */
        CHECK_EQ(petrel_fs_remove(&t.fs, "/c/in"), 0);
        CHECK_EQ(petrel_fs_remove(&t.fs, "/c"), 0);
        tfs_check_clean(&t);
    }
}

TEST(fs_rename_many_across_directories)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        int n = t.g->block_size <= 128 ? 20 : 60, i;
        char from[32], to[32], buf[32];
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/src"), 0);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/dst"), 0);
        for (i = 0; i < n; i++) {
            snprintf(from, sizeof(from), "/src/f%d", i);
            CHECK_EQ(tfs_put(&t, from, from, strlen(from)), 0);
        }
        for (i = 0; i < n; i++) {
            snprintf(from, sizeof(from), "/src/f%d", i);
            snprintf(to, sizeof(to), "/dst/g%d", i);
            CHECK_EQ(petrel_fs_rename(&t.fs, from, to), 0);
        }
        tfs_remount(&t);
        for (i = 0; i < n; i++) {
            snprintf(from, sizeof(from), "/src/f%d", i);
            snprintf(to, sizeof(to), "/dst/g%d", i);
            CHECK_EQ(tfs_get(&t, to, buf, sizeof(buf)), (int64_t)strlen(from));
            CHECK_MEM(buf, from, strlen(from));
        }
        CHECK_EQ(petrel_fs_remove(&t.fs, "/src"), 0);
        tfs_check_clean(&t);
    }
}

TEST(fs_open_file_follows_rename)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_file f;
        char buf[16];
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/d"), 0);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/old", PETREL_O_WRONLY | PETREL_O_CREAT), 0);
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, "abc", 3), 3);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/old", "/d/new"), 0);
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, "def", 3), 3);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        CHECK_EQ(tfs_get(&t, "/d/new", buf, sizeof(buf)), 6);
        CHECK_MEM(buf, "abcdef", 6);
        /* a file removed while open cannot be synced back into existence */
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/d/new", PETREL_O_WRONLY), 0);
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, "x", 1), 1);
        CHECK_EQ(petrel_fs_remove(&t.fs, "/d/new"), 0);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), -PT_ENOENT);
        {
            struct petrel_fs_info info;
            CHECK_EQ(petrel_fs_stat(&t.fs, "/d/new", &info), -PT_ENOENT);
        }
        tfs_check_clean(&t);
    }
}

TEST(fs_attributes)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        char buf[64];
        uint8_t big[2048];
        struct petrel_fs_fsinfo fi;
        int small = t.g->block_size <= 128;
        CHECK_EQ(petrel_fs_fsinfo(&t.fs, &fi), 0);
        CHECK_EQ(tfs_put(&t, "/f", "data", 4), 0);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/dir"), 0);
        CHECK_EQ(petrel_fs_getattr(&t.fs, "/f", 1, buf, sizeof(buf)), -PT_ENODATA);
        CHECK_EQ(petrel_fs_getattr(&t.fs, "/none", 1, buf, sizeof(buf)), -PT_ENOENT);
        CHECK_EQ(petrel_fs_setattr(&t.fs, "/none", 1, "v", 1), -PT_ENOENT);
        CHECK_EQ(petrel_fs_setattr(&t.fs, "/f", 1, "red", 3), 0);
        CHECK_EQ(petrel_fs_setattr(&t.fs, "/f", 2, "blue!", 5), 0);
        CHECK_EQ(petrel_fs_setattr(&t.fs, "/dir", 1, "dirattr", 7), 0);
        CHECK_EQ(petrel_fs_getattr(&t.fs, "/f", 1, buf, sizeof(buf)), 3);
        CHECK_MEM(buf, "red", 3);
        CHECK_EQ(petrel_fs_setattr(&t.fs, "/f", 1, "green", 5), 0);
        CHECK_EQ(petrel_fs_getattr(&t.fs, "/f", 1, buf, 2), 5); /* full size, partial copy */
        CHECK_MEM(buf, "gr", 2);
        CHECK_EQ(petrel_fs_setattr(&t.fs, "/f", 3, big, fi.attr_max + 1), -PT_ERANGE);
        memset(big, 0x5a, sizeof(big));
        /* the tiny geometry's metadata blocks cannot hold a third value next to the root's */
        if (!small) CHECK_EQ(petrel_fs_setattr(&t.fs, "/f", 3, big, PT_MIN(fi.attr_max, 100u)), 0);
        CHECK_EQ(petrel_fs_setattr(&t.fs, "/", 1, "x", 1), -PT_EINVAL);
        tfs_remount(&t);
        CHECK_EQ(petrel_fs_getattr(&t.fs, "/f", 2, buf, sizeof(buf)), 5);
        CHECK_MEM(buf, "blue!", 5);
        CHECK_EQ(petrel_fs_getattr(&t.fs, "/dir", 1, buf, sizeof(buf)), 7);
        CHECK_EQ(petrel_fs_removeattr(&t.fs, "/f", 2), 0);
        CHECK_EQ(petrel_fs_removeattr(&t.fs, "/f", 2), -PT_ENODATA);
        CHECK_EQ(petrel_fs_getattr(&t.fs, "/f", 2, buf, sizeof(buf)), -PT_ENODATA);
        /* attributes follow a rename (across directories too) */
        CHECK_EQ(petrel_fs_rename(&t.fs, "/f", "/dir/f2"), 0);
        CHECK_EQ(petrel_fs_getattr(&t.fs, "/dir/f2", 1, buf, sizeof(buf)), 5);
        CHECK_MEM(buf, "green", 5);
        if (!small)
            CHECK_EQ(petrel_fs_getattr(&t.fs, "/dir/f2", 3, buf, sizeof(buf)), (int64_t)PT_MIN(fi.attr_max, 100u));
        CHECK_EQ(petrel_fs_rename(&t.fs, "/dir/f2", "/dir/f3"), 0);
        CHECK_EQ(petrel_fs_getattr(&t.fs, "/dir/f3", 1, buf, sizeof(buf)), 5);
        /* and die with the entry */
        CHECK_EQ(petrel_fs_remove(&t.fs, "/dir/f3"), 0);
        CHECK_EQ(tfs_put(&t, "/dir/f3", "new", 3), 0);
        CHECK_EQ(petrel_fs_getattr(&t.fs, "/dir/f3", 1, buf, sizeof(buf)), -PT_ENODATA);
        tfs_remount(&t);
        CHECK_EQ(petrel_fs_getattr(&t.fs, "/dir/f3", 1, buf, sizeof(buf)), -PT_ENODATA);
        tfs_check_clean(&t);
    }
}
