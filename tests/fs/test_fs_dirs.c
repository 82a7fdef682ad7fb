/*
 * Directory behaviour over every geometry: many entries (splits and compaction), listing,
 * deep trees, removal, and every error code of mkdir / remove / stat / dir_open.
 */
#include "test_fs_harness.h"

static int tfs_count_entries(struct tfs *t, const char *path, const char *must_contain)
{
    struct petrel_fs_dir d;
    struct petrel_fs_info info;
    int n = 0, r, seen = 0;
    CHECK_EQ(petrel_fs_dir_open(&t->fs, &d, path), 0);
    while ((r = petrel_fs_dir_read(&t->fs, &d, &info)) == 1) {
        n++;
        if (must_contain && strcmp(info.name, must_contain) == 0) seen++;
    }
    CHECK_EQ(r, 0);
    CHECK_EQ(petrel_fs_dir_tell(&t->fs, &d), n);
    CHECK_EQ(petrel_fs_dir_close(&t->fs, &d), 0);
    if (must_contain) CHECK_EQ(seen, 1);
    return n;
}

TEST_T(fs_many_files_split_and_list, 300)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        int n = t.g->block_size <= 128 ? 40 : 200, i;
        char name[32], buf[32];
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/d"), 0);
        for (i = 0; i < n; i++) {
            snprintf(name, sizeof(name), "/d/file%03d", i);
            CHECK_EQ(tfs_put(&t, name, name, strlen(name)), 0);
        }
        CHECK_EQ(tfs_count_entries(&t, "/d", "file007"), n);
        tfs_remount(&t);
        CHECK_EQ(tfs_count_entries(&t, "/d", "file000"), n);
        for (i = 0; i < n; i++) {
            snprintf(name, sizeof(name), "/d/file%03d", i);
            CHECK_EQ(tfs_get(&t, name, buf, sizeof(buf)), (int64_t)strlen(name));
            CHECK_MEM(buf, name, strlen(name));
        }
        tfs_check_clean(&t);
        /* remove every other file, the rest survive */
        for (i = 0; i < n; i += 2) {
            snprintf(name, sizeof(name), "/d/file%03d", i);
            CHECK_EQ(petrel_fs_remove(&t.fs, name), 0);
        }
        tfs_remount(&t);
        CHECK_EQ(tfs_count_entries(&t, "/d", "file001"), n / 2);
        CHECK_EQ(petrel_fs_remove(&t.fs, "/d"), -PT_ENOTEMPTY);
        for (i = 1; i < n; i += 2) {
            snprintf(name, sizeof(name), "/d/file%03d", i);
            CHECK_EQ(petrel_fs_remove(&t.fs, name), 0);
        }
        CHECK_EQ(petrel_fs_remove(&t.fs, "/d"), 0);
        CHECK_EQ(tfs_count_entries(&t, "/", NULL), 0);
        tfs_check_clean(&t);
    }
}

TEST(fs_deep_directories)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        char path[512] = "";
        int depth = 24, i;
        struct petrel_fs_info info;
        for (i = 0; i < depth; i++) {
            size_t l = strlen(path);
            snprintf(path + l, sizeof(path) - l, "/d%d", i);
            CHECK_EQ(petrel_fs_mkdir(&t.fs, path), 0);
        }
        strcat(path, "/leaf");
        CHECK_EQ(tfs_put(&t, path, "x", 1), 0);
        tfs_remount(&t);
        CHECK_EQ(petrel_fs_stat(&t.fs, path, &info), 0);
        CHECK_EQ(info.type, PETREL_FS_REG);
        CHECK_EQ(info.size, 1);
        CHECK(strcmp(info.name, "leaf") == 0);
        tfs_check_clean(&t);
        /* remove bottom-up */
        CHECK_EQ(petrel_fs_remove(&t.fs, path), 0);
        for (i = depth; i > 0; i--) {
            char *slash = strrchr(path, '/');
            *slash = 0;
            CHECK_EQ(petrel_fs_remove(&t.fs, path), 0);
        }
        tfs_remount(&t);
        CHECK_EQ(petrel_fs_stat(&t.fs, "/d0", &info), -PT_ENOENT);
        tfs_check_clean(&t);
    }
}

TEST(fs_dir_error_codes)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_info info;
        struct petrel_fs_dir d;
        struct petrel_fs_file f;
        char longname[300];
        memset(longname, 'a', sizeof(longname));
        longname[0] = '/';
        longname[299] = 0;
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/a"), 0);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/a"), -PT_EEXIST);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/"), -PT_EEXIST);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/nope/b"), -PT_ENOENT);
        CHECK_EQ(tfs_put(&t, "/a/file", "z", 1), 0);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/a/file/sub"), -PT_ENOTDIR);
        CHECK_EQ(petrel_fs_stat(&t.fs, "/a/file/x", &info), -PT_ENOTDIR);
        CHECK_EQ(petrel_fs_stat(&t.fs, "/a/missing", &info), -PT_ENOENT);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, longname), -PT_ENAMETOOLONG);
        CHECK_EQ(petrel_fs_stat(&t.fs, longname, &info), -PT_ENAMETOOLONG);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/a/."), -PT_EINVAL);
        CHECK_EQ(petrel_fs_stat(&t.fs, "/a/../a", &info), -PT_EINVAL);
        CHECK_EQ(petrel_fs_remove(&t.fs, "/"), -PT_EINVAL);
        CHECK_EQ(petrel_fs_remove(&t.fs, "/a/missing"), -PT_ENOENT);
        CHECK_EQ(petrel_fs_remove(&t.fs, "/a"), -PT_ENOTEMPTY);
        CHECK_EQ(petrel_fs_dir_open(&t.fs, &d, "/a/file"), -PT_ENOTDIR);
        CHECK_EQ(petrel_fs_dir_open(&t.fs, &d, "/zz"), -PT_ENOENT);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/a", PETREL_O_RDONLY), -PT_EISDIR);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/", PETREL_O_RDONLY), -PT_EISDIR);
        /* slashes are forgiving */
        CHECK_EQ(petrel_fs_stat(&t.fs, "//a///file", &info), 0);
        CHECK_EQ(petrel_fs_stat(&t.fs, "a/", &info), 0);
        CHECK_EQ(info.type, PETREL_FS_DIR);
        tfs_check_clean(&t);
    }
}

TEST(fs_dir_seek_tell_rewind)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_dir d;
        struct petrel_fs_info info;
        char names[12][32], name[32];
        int i;
        for (i = 0; i < 12; i++) {
            snprintf(name, sizeof(name), "/e%d", i);
            CHECK_EQ(petrel_fs_mkdir(&t.fs, name), 0);
        }
        CHECK_EQ(petrel_fs_dir_open(&t.fs, &d, "/"), 0);
        for (i = 0; i < 12; i++) {
            CHECK_EQ(petrel_fs_dir_read(&t.fs, &d, &info), 1);
            CHECK_EQ(info.type, PETREL_FS_DIR);
            strcpy(names[i], info.name);
        }
        CHECK_EQ(petrel_fs_dir_read(&t.fs, &d, &info), 0);
        CHECK_EQ(petrel_fs_dir_seek(&t.fs, &d, 5), 0);
        CHECK_EQ(petrel_fs_dir_tell(&t.fs, &d), 5);
        CHECK_EQ(petrel_fs_dir_read(&t.fs, &d, &info), 1);
        CHECK(strcmp(info.name, names[5]) == 0);
        CHECK_EQ(petrel_fs_dir_rewind(&t.fs, &d), 0);
        CHECK_EQ(petrel_fs_dir_read(&t.fs, &d, &info), 1);
        CHECK(strcmp(info.name, names[0]) == 0);
        CHECK_EQ(petrel_fs_dir_close(&t.fs, &d), 0);
    }
}
