/*
 * Host entry types (format 2.0, types 3-7): symbolic links, FIFOs, sockets and device nodes
 * are stored with the file structure, keep their type through writes, syncs, renames and
 * remounts, list with their type, and are refused where they make no sense.
 */
#include "test_fs_harness.h"

static const uint8_t host_types[] = {PETREL_FS_SYMLINK, PETREL_FS_FIFO, PETREL_FS_SOCK,
                                     PETREL_FS_CHR, PETREL_FS_BLK};

TEST(fs_mknod_types_survive_remount_rename_and_sync)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_info info;
        struct petrel_fs_file f;
        char target[200], back[200];
        size_t i;
        memset(target, 'x', sizeof(target));
        memcpy(target, "../a/b", 6);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/d"), 0);
        for (i = 0; i < sizeof(host_types); i++) {
            char path[32];
            snprintf(path, sizeof(path), "/d/n%u", (unsigned)host_types[i]);
            CHECK_EQ(petrel_fs_mknod(&t.fs, path, host_types[i]), 0);
            CHECK_EQ(petrel_fs_mknod(&t.fs, path, host_types[i]), -PT_EEXIST);
            CHECK_EQ(petrel_fs_stat(&t.fs, path, &info), 0);
            CHECK_EQ(info.type, host_types[i]);
            CHECK_EQ(info.size, 0);
        }
        /* a link's target is its data; the type stays through the write and the sync */
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/d/n3", PETREL_O_WRONLY), 0);
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, target, sizeof(target)), (int64_t)sizeof(target));
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/d/n3", "/l"), 0);
        tfs_remount(&t);
        CHECK_EQ(petrel_fs_stat(&t.fs, "/l", &info), 0);
        CHECK_EQ(info.type, PETREL_FS_SYMLINK);
        CHECK_EQ(info.size, sizeof(target));
        CHECK_EQ(tfs_get(&t, "/l", back, sizeof(back)), (int64_t)sizeof(target));
        CHECK(memcmp(back, target, sizeof(target)) == 0);
        CHECK_EQ(petrel_fs_stat(&t.fs, "/d/n6", &info), 0);
        CHECK_EQ(info.type, PETREL_FS_CHR);
        tfs_check_clean(&t);
        /* each removes like a file */
        CHECK_EQ(petrel_fs_remove(&t.fs, "/l"), 0);
        for (i = 1; i < sizeof(host_types); i++) {
            char path[32];
            snprintf(path, sizeof(path), "/d/n%u", (unsigned)host_types[i]);
            CHECK_EQ(petrel_fs_remove(&t.fs, path), 0);
        }
        CHECK_EQ(petrel_fs_remove(&t.fs, "/d"), 0);
        CHECK_EQ(petrel_fs_usage(&t.fs), 2);
    }
}

TEST(fs_mknod_listing_reports_types)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_dir dir;
        struct petrel_fs_info info;
        unsigned seen = 0;
        size_t i;
        for (i = 0; i < sizeof(host_types); i++) {
            char path[32];
            snprintf(path, sizeof(path), "/n%u", (unsigned)host_types[i]);
            CHECK_EQ(petrel_fs_mknod(&t.fs, path, host_types[i]), 0);
        }
        CHECK_EQ(petrel_fs_mknod(&t.fs, "/r", PETREL_FS_REG), 0);
        CHECK_EQ(petrel_fs_dir_open(&t.fs, &dir, "/"), 0);
        while (petrel_fs_dir_read(&t.fs, &dir, &info) == 1) {
            if (info.name[0] == 'n') CHECK_EQ((unsigned)(info.name[1] - '0'), info.type);
            if (info.name[0] == 'r') CHECK_EQ(info.type, PETREL_FS_REG);
            seen |= 1u << info.type;
        }
        CHECK_EQ(petrel_fs_dir_close(&t.fs, &dir), 0);
        CHECK_EQ(seen, 0xfau); /* types 1 and 3-7 */
        tfs_check_clean(&t);
    }
}

TEST(fs_mknod_refuses_bad_requests)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_file f;
        CHECK_EQ(petrel_fs_mknod(&t.fs, "/x", PETREL_FS_DIR), -PT_EINVAL);
        CHECK_EQ(petrel_fs_mknod(&t.fs, "/x", 0), -PT_EINVAL);
        CHECK_EQ(petrel_fs_mknod(&t.fs, "/x", 8), -PT_EINVAL);
        CHECK_EQ(petrel_fs_mknod(&t.fs, "/x", 0xff), -PT_EINVAL);
        CHECK_EQ(petrel_fs_mknod(&t.fs, "/missing/x", PETREL_FS_FIFO), -PT_ENOENT);
        CHECK_EQ(petrel_fs_mknod(&t.fs, "/", PETREL_FS_FIFO), -PT_EISDIR);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/d"), 0);
        CHECK_EQ(petrel_fs_mknod(&t.fs, "/d", PETREL_FS_FIFO), -PT_EISDIR);
        CHECK_EQ(petrel_fs_mknod(&t.fs, "/p", PETREL_FS_FIFO), 0);
        CHECK_EQ(petrel_fs_mknod(&t.fs, "/p/x", PETREL_FS_FIFO), -PT_ENOTDIR);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/p"), -PT_EEXIST);
        /* a directory cannot replace a node, nor a node a non-empty directory */
        CHECK_EQ(petrel_fs_rename(&t.fs, "/d", "/p"), -PT_ENOTDIR);
        CHECK_EQ(petrel_fs_mknod(&t.fs, "/d/y", PETREL_FS_SOCK), 0);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/p", "/d"), -PT_EISDIR);
        /* a node replaces a file and keeps its own type */
        CHECK_EQ(tfs_put(&t, "/f", "abc", 3), 0);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/p", "/f"), 0);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/f", PETREL_O_RDONLY), 0);
        CHECK_EQ(petrel_fs_file_size(&t.fs, &f), 0);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        tfs_remount(&t);
        {
            struct petrel_fs_info info;
            CHECK_EQ(petrel_fs_stat(&t.fs, "/f", &info), 0);
            CHECK_EQ(info.type, PETREL_FS_FIFO);
        }
        tfs_check_clean(&t);
    }
}

TEST(fs_mknod_readonly_and_unmounted)
{
    struct petrel_fs fs;
    memset(&fs, 0, sizeof(fs));
    CHECK_EQ(petrel_fs_mknod(&fs, "/x", PETREL_FS_FIFO), -PT_EINVAL);
    CHECK_EQ(petrel_fs_mknod(NULL, "/x", PETREL_FS_FIFO), -PT_EINVAL);
}
