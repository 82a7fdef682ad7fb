/*
 * POSIX through the client library on a cluster of real processes (issue 11): directories
 * made with a mode and owner through the CDC (on either shard), files created with an owner
 * and changed before and after their link, nodes and their refusals, stat of a file still
 * being written and of one whose name was removed, restart (every store rebuilt from the
 * log), and the space statfs reports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/proto/shard_msgs.h"
#include "petrel/client.h"
#include "petrel/common.h"
#include "proc_cluster.h"
#include "test.h"

struct bytes {
    const char *p;
    size_t left;
};

static long bytes_read(void *ctx, void *buf, size_t cap)
{
    struct bytes *b = ctx;
    size_t n = PT_MIN(cap, b->left);
    memcpy(buf, b->p, n);
    b->p += n;
    b->left -= n;
    return (long)n;
}

struct sink {
    char buf[64];
    size_t len;
};

static int sink_write(void *ctx, const void *buf, size_t len)
{
    struct sink *s = ctx;
    if (s->len + len > sizeof(s->buf)) return -PT_E2BIG;
    memcpy(s->buf + s->len, buf, len);
    s->len += len;
    return 0;
}

static void check_attrs(struct petrel_client *cl, const char *path, uint32_t mode, uint32_t uid,
                        uint32_t gid)
{
    struct petrel_stat st;
    int rc = petrel_client_stat(cl, path, &st);
    CHECK_MSG(rc == 0, "stat %s: %s", path, petrel_strerror(rc));
    CHECK_MSG(st.mode == mode && st.uid == uid && st.gid == gid, "%s: mode %o uid %u gid %u", path,
              st.mode, st.uid, st.gid);
}

TEST_T(cluster_posix_attributes_nodes_and_handles, 240)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct petrel_stat st, before;
    struct petrel_attr a;
    struct petrel_new_file nf;
    char path[64], buf[32], name[300];
    unsigned i, on_shard[2] = {0, 0};
    uint64_t total = 0, avail = 0;
    pc_start(&c, 2, 1, 2, 1);
    cl = pc_client(&c, 20000);
    /* Directories through the CDC keep the creator's mode and owner, on whichever shard. */
    for (i = 0; i < 6; i++) {
        snprintf(path, sizeof(path), "/d%u", i);
        CHECK_OK(petrel_client_mkdir_owned(cl, path, 02750 + i, 1000 + i, 100));
        check_attrs(cl, path, PT_MODE_IFDIR | (02750 + i), 1000 + i, 100);
        CHECK_OK(petrel_client_stat(cl, path, &st));
        on_shard[PT_INODE_SHARD(st.id)]++;
    }
    CHECK(on_shard[0] && on_shard[1]);
    /* A file created with an owner, changed while being written (found by its id only). */
    memset(&a, 0, sizeof(a));
    a.mode = 0600;
    a.uid = 7;
    a.gid = 8;
    CHECK_OK(petrel_client_create(cl, "/d1/f", 0, &a, &nf));
    CHECK_EQ(petrel_client_stat(cl, "/d1/f", &st), -PT_ENOENT); /* invisible until linked */
    CHECK_OK(petrel_client_stat_inode(cl, nf.file, &st));
    CHECK_EQ(st.state, PT_FILE_TRANSIENT);
    CHECK_EQ(st.mode, PT_MODE_IFREG | 0600);
    a.valid = PETREL_ATTR_MODE | PETREL_ATTR_MTIME;
    a.mode = 04640;
    a.mtime_ns = 1234567890123456789ull;
    CHECK_OK(petrel_client_setattr_inode(cl, nf.file, &a));
    /* Renamed before its close: linked under the new name. */
    CHECK_OK(petrel_client_retarget(cl, &nf, "/d1/g"));
    {
        struct bytes b = {"hello", 5};
        CHECK_OK(petrel_client_fill(cl, &nf, bytes_read, &b, NULL));
    }
    CHECK_EQ(petrel_client_stat(cl, "/d1/f", &st), -PT_ENOENT);
    check_attrs(cl, "/d1/g", PT_MODE_IFREG | 04640, 7, 8);
    CHECK_OK(petrel_client_stat(cl, "/d1/g", &before));
    CHECK_EQ(before.version, 2); /* created, one span */
    /* After the link: chown, times; the version (content) does not move. */
    a.valid = PETREL_ATTR_UID | PETREL_ATTR_GID | PETREL_ATTR_ATIME | PETREL_ATTR_MTIME_NOW;
    a.uid = 0;
    a.gid = 0;
    a.atime_ns = 5;
    CHECK_OK(petrel_client_setattr(cl, "/d1/g", &a));
    CHECK_OK(petrel_client_stat(cl, "/d1/g", &st));
    CHECK_EQ(st.uid, 0);
    CHECK_EQ(st.atime_ns, 5);
    CHECK(st.mtime_ns > before.mtime_ns && st.ctime_ns >= before.ctime_ns);
    CHECK_EQ(st.version, before.version);
    /* Refusals: a missing path, unknown bits, a retarget onto another shard's directory. */
    CHECK_EQ(petrel_client_setattr(cl, "/d1/missing", &a), -PT_ENOENT);
    a.valid = 0x100;
    CHECK_EQ(petrel_client_setattr(cl, "/d1/g", &a), -PT_EINVAL);
    {
        unsigned other = 0;
        struct petrel_stat d;
        for (i = 0; i < 6; i++) {
            snprintf(path, sizeof(path), "/d%u", i);
            CHECK_OK(petrel_client_stat(cl, path, &d));
            if (PT_INODE_SHARD(d.id) != PT_INODE_SHARD(nf.file)) other = i;
        }
        CHECK_OK(petrel_client_create(cl, "/d1/h", 0, NULL, &nf));
        snprintf(path, sizeof(path), "/d%u/h", other);
        CHECK_EQ(petrel_client_retarget(cl, &nf, path), -PT_EXDEV);
    }
    /* Nodes: created once per name, read back, refused on a taken name or a bad target. */
    CHECK_OK(petrel_client_mknod(cl, "/d1/ln", PETREL_TYPE_SYMLINK, 0777, 1, 2, 0, "../x"));
    CHECK_EQ(petrel_client_readlink(cl, "/d1/ln", buf, sizeof(buf)), 4);
    CHECK(strcmp(buf, "../x") == 0);
    CHECK_EQ(petrel_client_mknod(cl, "/d1/ln", PETREL_TYPE_FIFO, 0644, 1, 2, 0, NULL), -PT_EEXIST);
    CHECK_EQ(petrel_client_mknod(cl, "/d1/g", PETREL_TYPE_SOCKET, 0644, 1, 2, 0, NULL), -PT_EEXIST);
    check_attrs(cl, "/d1/g", PT_MODE_IFREG | 04640, 0, 0); /* the taken name kept its file */
    CHECK_EQ(petrel_client_readlink(cl, "/d1/g", buf, sizeof(buf)), -PT_EINVAL);
    CHECK_EQ(petrel_client_mknod(cl, "/d1/bad", PETREL_TYPE_SYMLINK, 0777, 0, 0, 0, ""),
             -PT_EINVAL);
    CHECK_EQ(petrel_client_mknod(cl, "/d1/bad", PETREL_TYPE_FILE, 0644, 0, 0, 0, NULL), -PT_EINVAL);
    CHECK_OK(petrel_client_mknod(cl, "/d1/dev", PETREL_TYPE_BLK, 0660, 0, 6, 0x0803, NULL));
    CHECK_OK(petrel_client_stat(cl, "/d1/dev", &st));
    CHECK_EQ(st.type, PETREL_TYPE_BLK);
    CHECK_EQ(st.rdev, 0x0803);
    memset(name, 'x', 256);
    name[0] = '/';
    name[256] = 0; /* a 255-byte name */
    CHECK_OK(petrel_client_mknod(cl, name, PETREL_TYPE_FIFO, 0644, 0, 0, 0, NULL));
    name[256] = 'x';
    name[257] = 0; /* 256 bytes */
    CHECK_EQ(petrel_client_mknod(cl, name, PETREL_TYPE_FIFO, 0644, 0, 0, 0, NULL),
             -PT_ENAMETOOLONG);
    /* Nodes move and go like files. */
    CHECK_OK(petrel_client_rename(cl, "/d1/ln", "/d2/ln"));
    CHECK_EQ(petrel_client_readlink(cl, "/d2/ln", buf, sizeof(buf)), 4);
    CHECK_OK(petrel_client_unlink(cl, "/d2/ln"));
    /* A file whose name was removed: still there by its id (retention), readable. */
    CHECK_OK(petrel_client_stat(cl, "/d1/g", &before));
    CHECK_OK(petrel_client_unlink(cl, "/d1/g"));
    CHECK_OK(petrel_client_stat_inode(cl, before.id, &st));
    CHECK_EQ(st.state, PT_FILE_UNLINKED);
    CHECK_EQ(st.size, 5);
    {
        struct sink s = {{0}, 0};
        CHECK_OK(petrel_client_read_inode(cl, before.id, 0, 100, sink_write, &s, NULL));
        CHECK_EQ(s.len, 5);
        CHECK(memcmp(s.buf, "hello", 5) == 0);
    }
    /* Space: something to report, available no more than the total. */
    CHECK_OK(petrel_client_space(cl, &total, &avail));
    CHECK(total > 0 && avail <= total);
    /* Every store rebuilt from its log keeps all of it. */
    petrel_client_close(cl);
    pc_restart_all(&c, 1);
    pc_wait_serving(&c, 60000);
    cl = pc_client(&c, 20000);
    check_attrs(cl, "/d3", PT_MODE_IFDIR | 02753, 1003, 100);
    CHECK_OK(petrel_client_stat(cl, "/d1/dev", &st));
    CHECK_EQ(st.rdev, 0x0803);
    CHECK_OK(petrel_client_stat_inode(cl, before.id, &st));
    CHECK_EQ(st.mode, PT_MODE_IFREG | 04640);
    CHECK_EQ(st.atime_ns, 5);
    petrel_client_close(cl);
    pc_stop(&c);
}
