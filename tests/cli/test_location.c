/*
 * Location parsing and path helpers of the vfs: which kind a text names, how paths are
 * normalized, and the local backend's basic contract.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "petrel/common.h"
#include "petrel/vfs.h"
#include "test.h"

static void touch(const char *path)
{
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0);
    close(fd);
}

TEST(location_cluster)
{
    struct petrel_vfs_location l;
    CHECK_OK(petrel_vfs_location_parse("petrel://127.0.0.1:7400/data/x/", &l));
    CHECK_EQ(l.kind, PETREL_VFS_CLUSTER);
    CHECK(strcmp(l.host, "127.0.0.1") == 0);
    CHECK_EQ(l.port, 7400);
    CHECK(strcmp(l.path, "/data/x") == 0);
    CHECK_OK(petrel_vfs_location_parse("petrel://h:1", &l));
    CHECK(strcmp(l.path, "/") == 0);
    CHECK_EQ(petrel_vfs_location_parse("petrel://h/x", &l), -PT_EINVAL);
    CHECK_EQ(petrel_vfs_location_parse("petrel://h:0/x", &l), -PT_EINVAL);
    CHECK_EQ(petrel_vfs_location_parse("petrel://h:70000/x", &l), -PT_EINVAL);
    CHECK_EQ(petrel_vfs_location_parse("petrel://:80/x", &l), -PT_EINVAL);
    CHECK_EQ(petrel_vfs_location_parse("petrel://h:80x/x", &l), -PT_EINVAL);
    CHECK_EQ(petrel_vfs_location_parse("petrel://h:80/../x", &l), -PT_EINVAL);
}

TEST(location_cluster_registry_group)
{
    struct petrel_vfs_location l;
    char addr[1024];
    CHECK_OK(petrel_vfs_location_parse("petrel://10.0.0.1:7400,10.0.0.2:7400,h3:7401/d/", &l));
    CHECK_EQ(l.kind, PETREL_VFS_CLUSTER);
    CHECK(strcmp(l.host, "10.0.0.1:7400,10.0.0.2:7400,h3:7401") == 0);
    CHECK_EQ(l.port, 0);
    CHECK(strcmp(l.path, "/d") == 0);
    CHECK_OK(petrel_vfs_location_parse("petrel://a:1,b:2,c:3", &l));
    CHECK(strcmp(l.path, "/") == 0);
    CHECK_OK(petrel_vfs_cluster_address("127.0.0.1:5,localhost:6,[::1]:7", 0, addr, sizeof(addr)));
    CHECK(strcmp(addr, "127.0.0.1:5,localhost:6,[::1]:7") == 0);
    CHECK_EQ(petrel_vfs_location_parse("petrel://a:1,,b:2/", &l), -PT_EINVAL);
    CHECK_EQ(petrel_vfs_location_parse("petrel://a:1,b/", &l), -PT_EINVAL);
    CHECK_EQ(petrel_vfs_location_parse("petrel://a:1,b:0/", &l), -PT_EINVAL);
    CHECK_EQ(petrel_vfs_location_parse("petrel://a:1,:2/", &l), -PT_EINVAL);
    CHECK_EQ(petrel_vfs_location_parse("petrel://a:1,b:2,/", &l), -PT_EINVAL);
    CHECK_EQ(petrel_vfs_location_parse("petrel://a:1,b:2,c:3,d:4,e:5,f:6/", &l), -PT_EINVAL);
    CHECK_EQ(petrel_vfs_location_parse("petrel://a:1,b:99999/", &l), -PT_EINVAL);
}

TEST(location_image_and_local)
{
    struct petrel_vfs_location l;
    char img[PATH_MAX], colon[PATH_MAX], text[PATH_MAX * 2];
    CHECK(chdir(test_tmpdir()) == 0);
    snprintf(img, sizeof(img), "%s/disk.img", test_tmpdir());
    touch(img);
    snprintf(text, sizeof(text), "%s:/photos//a.jpg", img);
    CHECK_OK(petrel_vfs_location_parse(text, &l));
    CHECK_EQ(l.kind, PETREL_VFS_IMAGE);
    CHECK(strcmp(l.store, img) == 0);
    CHECK(strcmp(l.path, "/photos/a.jpg") == 0);
    CHECK_OK(petrel_vfs_location_parse("disk.img:", &l));
    CHECK_EQ(l.kind, PETREL_VFS_IMAGE);
    CHECK(strcmp(l.path, "/") == 0);
    CHECK_OK(petrel_vfs_location_parse("disk.img:a/./b", &l));
    CHECK(strcmp(l.path, "/a/b") == 0);
    /* A new image named by the IMAGE:/PATH form. */
    CHECK_OK(petrel_vfs_location_parse("new.img:/x", &l));
    CHECK_EQ(l.kind, PETREL_VFS_IMAGE);
    CHECK(strcmp(l.store, "new.img") == 0);
    /* A local file whose name contains ':' is local. */
    snprintf(colon, sizeof(colon), "%s/a:b", test_tmpdir());
    touch(colon);
    CHECK_OK(petrel_vfs_location_parse("a:b", &l));
    CHECK_EQ(l.kind, PETREL_VFS_LOCAL);
    CHECK(strcmp(l.store, ".") == 0 && strcmp(l.path, "/a:b") == 0);
    CHECK_OK(petrel_vfs_location_parse("x:y", &l)); /* neither exists, not IMAGE:/ form */
    CHECK_EQ(l.kind, PETREL_VFS_LOCAL);
    CHECK_OK(petrel_vfs_location_parse("/etc/hostname", &l));
    CHECK_EQ(l.kind, PETREL_VFS_LOCAL);
    CHECK(strcmp(l.store, "/") == 0 && strcmp(l.path, "/etc/hostname") == 0);
    CHECK(mkdir("sub", 0755) == 0);
    CHECK_OK(petrel_vfs_location_parse("sub/../disk.img", &l));
    CHECK_EQ(l.kind, PETREL_VFS_LOCAL);
    CHECK(strcmp(l.path, img) == 0);
    CHECK_EQ(petrel_vfs_location_parse("", &l), -PT_EINVAL);
}

TEST(store_parse)
{
    struct petrel_vfs_location l;
    CHECK(chdir(test_tmpdir()) == 0);
    touch("disk.img");
    CHECK_OK(petrel_vfs_store_parse("disk.img", &l));
    CHECK_EQ(l.kind, PETREL_VFS_IMAGE);
    CHECK_OK(petrel_vfs_store_parse(".", &l));
    CHECK_EQ(l.kind, PETREL_VFS_LOCAL);
    CHECK_OK(petrel_vfs_store_parse("petrel://localhost:9/", &l));
    CHECK_EQ(l.kind, PETREL_VFS_CLUSTER);
    CHECK_EQ(petrel_vfs_store_parse("missing.img", &l), -PT_ENOENT);
}

TEST(path_helpers)
{
    char p[64] = "//a/./b//c/";
    char out[8];
    CHECK_OK(petrel_vfs_path_normalize(p, sizeof(p)));
    CHECK(strcmp(p, "/a/b/c") == 0);
    strcpy(p, "/./");
    CHECK_OK(petrel_vfs_path_normalize(p, sizeof(p)));
    CHECK(strcmp(p, "/") == 0);
    strcpy(p, "/a/../b");
    CHECK_EQ(petrel_vfs_path_normalize(p, sizeof(p)), -PT_EINVAL);
    CHECK_OK(petrel_vfs_path_join(out, sizeof(out), "/", "a"));
    CHECK(strcmp(out, "/a") == 0);
    CHECK_OK(petrel_vfs_path_join(out, sizeof(out), "/a", "b"));
    CHECK(strcmp(out, "/a/b") == 0);
    CHECK_EQ(petrel_vfs_path_join(out, sizeof(out), "/abcdef", "gh"), -PT_ENAMETOOLONG);
    CHECK(strcmp(petrel_vfs_path_base("/a/bc"), "bc") == 0);
}

static int count_entry(void *ctx, const char *name, const struct petrel_vfs_stat *st)
{
    (void)name;
    (void)st;
    ++*(int *)ctx;
    return 0;
}

TEST(local_backend)
{
    struct petrel_vfs *vfs;
    struct petrel_vfs_file *f;
    struct petrel_vfs_stat st;
    char buf[16];
    int n = 0;
    CHECK_OK(petrel_vfs_local_open(test_tmpdir(), 0, &vfs));
    CHECK_OK(petrel_vfs_mkdir_parents(vfs, "/a/b/c"));
    CHECK_OK(petrel_vfs_mkdir_parents(vfs, "/a/b/c"));
    CHECK_OK(petrel_vfs_file_open(vfs, "/a/f", PETREL_VFS_O_WRITE | PETREL_VFS_O_CREAT, &f));
    CHECK_OK(petrel_vfs_write_all(vfs, f, "hello", 5, 0));
    CHECK_OK(petrel_vfs_write_all(vfs, f, "J", 1, 0));
    CHECK_OK(petrel_vfs_file_close(vfs, f));
    CHECK_OK(petrel_vfs_stat(vfs, "/a/f", &st));
    CHECK_EQ(st.type, PETREL_VFS_REG);
    CHECK_EQ(st.size, 5);
    CHECK_OK(petrel_vfs_file_open(vfs, "/a/f", PETREL_VFS_O_READ, &f));
    CHECK_EQ(petrel_vfs_file_read(vfs, f, buf, sizeof(buf), 0), 5);
    CHECK_MEM(buf, "Jello", 5);
    CHECK_EQ(petrel_vfs_file_write(vfs, f, "x", 1, 0) < 0, 1);
    CHECK_OK(petrel_vfs_file_close(vfs, f));
    CHECK_OK(petrel_vfs_readdir(vfs, "/a", count_entry, &n));
    CHECK_EQ(n, 2);
    CHECK_EQ(petrel_vfs_remove(vfs, "/a"), -PT_ENOTEMPTY);
    CHECK_EQ(petrel_vfs_remove(vfs, "/"), -PT_EBUSY);
    CHECK_OK(petrel_vfs_rename(vfs, "/a/f", "/g"));
    CHECK_EQ(petrel_vfs_stat(vfs, "/a/f", &st), -PT_ENOENT);
    CHECK_OK(petrel_vfs_close(vfs));
    /* Read-only: every change is refused. */
    CHECK_OK(petrel_vfs_local_open(test_tmpdir(), PETREL_VFS_MOUNT_READ_ONLY, &vfs));
    CHECK_EQ(petrel_vfs_mkdir(vfs, "/z"), -PT_EROFS);
    CHECK_EQ(petrel_vfs_remove(vfs, "/g"), -PT_EROFS);
    CHECK_EQ(petrel_vfs_file_open(vfs, "/g", PETREL_VFS_O_WRITE, &f), -PT_EROFS);
    CHECK_OK(petrel_vfs_stat(vfs, "/g", &st));
    CHECK_OK(petrel_vfs_close(vfs));
}
