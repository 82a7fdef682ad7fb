/*
 * POSIX attributes in the shard state machine (issue 11): modes, owners and times of new
 * inodes, SETATTR (any state, UTIME_NOW by the entry time, refusals), MAKE_NODE (symlinks,
 * FIFOs, sockets, devices; link-if-free), directory times on entry changes, the content
 * version, records of the first layout, and the codec of the new fields.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/proto/cdc_msgs.h"
#include "cluster/proto/shard_msgs.h"
#include "cluster/shard/shard_sm.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "test.h"

#define MS 1000000ull /* ns per ms */

static uint8_t reply[PT_SHARD_MSG_MAX];
static size_t reply_len;
static struct pt_shard_apply_out out;

static void open_store(struct pt_shard_sm *sm, const char *name, unsigned shard)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", test_tmpdir(), name);
    CHECK_OK(pt_shard_sm_open(sm, dir, shard, 1));
}

static int apply_at(struct pt_shard_sm *sm, uint64_t now, const struct pt_shard_req *q,
                    struct pt_cursor *body)
{
    uint8_t entry[PT_SHARD_MSG_MAX];
    struct pt_cursor dummy;
    struct pt_shard_entry_builder b;
    int n;
    pt_shard_entry_init(&b, entry, sizeof(entry), now);
    CHECK_OK(pt_shard_entry_add(&b, q));
    n = pt_shard_entry_finish(&b);
    CHECK_OK(n);
    CHECK_OK(pt_shard_sm_apply(sm, entry, (size_t)n, &out));
    CHECK_EQ(out.count, 1);
    memcpy(reply, out.reply[0], out.len[0]);
    reply_len = out.len[0];
    return pt_shard_reply_open(reply, reply_len, body ? body : &dummy);
}

static int stat_inode(struct pt_shard_sm *sm, uint64_t id, struct pt_shard_stat *st)
{
    struct pt_shard_req q = {.op = PT_SHARD_STAT, .id = id};
    uint8_t req[64];
    struct pt_cursor b;
    int n = pt_shard_req_encode(&q, req, sizeof(req)), rc;
    CHECK_OK(n);
    CHECK_OK(pt_shard_sm_query(sm, req, (size_t)n, reply, sizeof(reply), &reply_len));
    rc = pt_shard_reply_open(reply, reply_len, &b);
    if (rc == 0) CHECK_OK(pt_shard_reply_stat(&b, st));
    return rc;
}

static void named(struct pt_shard_req *q, const char *name)
{
    q->name_len = (uint8_t)strlen(name);
    memcpy(q->name, name, q->name_len + 1u);
}

static uint64_t create(struct pt_shard_sm *sm, uint64_t now, uint64_t cookie, uint32_t mode,
                       uint32_t uid, uint32_t gid)
{
    struct pt_shard_req q = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = cookie, .has_attr = 1};
    struct pt_cursor b;
    q.attr.mode = mode;
    q.attr.uid = uid;
    q.attr.gid = gid;
    CHECK_EQ(apply_at(sm, now, &q, &b), 0);
    return pt_dec_u64(&b);
}

static int add_inline(struct pt_shard_sm *sm, uint64_t now, uint64_t id, uint64_t cookie,
                      uint64_t off, const char *data)
{
    struct pt_shard_req q = {.op = PT_SHARD_ADD_INLINE, .id = id, .cookie = cookie, .offset = off};
    q.size = q.data_len = (uint32_t)strlen(data);
    q.crc = petrel_crc32c(0, data, q.size);
    q.data_ptr = (const uint8_t *)data;
    return apply_at(sm, now, &q, NULL);
}

static int link_as(struct pt_shard_sm *sm, uint64_t now, uint64_t id, uint64_t cookie,
                   const char *name)
{
    struct pt_shard_req q = {.op = PT_SHARD_LINK_FILE, .id = id, .cookie = cookie};
    q.target = PT_INODE_ROOT;
    named(&q, name);
    return apply_at(sm, now, &q, NULL);
}

static int setattr(struct pt_shard_sm *sm, uint64_t now, uint64_t id, uint32_t valid, uint32_t mode,
                   uint32_t uid, uint32_t gid, uint64_t atime, uint64_t mtime)
{
    struct pt_shard_req q = {.op = PT_SHARD_SETATTR, .id = id, .has_attr = 1};
    q.attr.valid = valid;
    q.attr.mode = mode;
    q.attr.uid = uid;
    q.attr.gid = gid;
    q.attr.atime = atime;
    q.attr.mtime = mtime;
    return apply_at(sm, now, &q, NULL);
}

static int make_node(struct pt_shard_sm *sm, uint64_t now, uint64_t dir, const char *name,
                     uint32_t mode, uint64_t rdev, const char *target, uint64_t *id)
{
    struct pt_shard_req q = {.op = PT_SHARD_MAKE_NODE, .id = dir, .has_attr = 1};
    struct pt_cursor b;
    int rc;
    named(&q, name);
    q.attr.mode = mode;
    q.attr.uid = 1000;
    q.attr.gid = 100;
    q.attr.rdev = rdev;
    if (target) {
        q.data_len = (uint32_t)strlen(target);
        q.data_ptr = (const uint8_t *)target;
    }
    rc = apply_at(sm, now, &q, &b);
    if (rc == 0 && id) *id = pt_dec_u64(&b);
    return rc;
}

TEST(shard_posix_new_file_keeps_mode_owner_and_times)
{
    struct pt_shard_sm sm;
    struct pt_shard_stat st;
    uint64_t id;
    open_store(&sm, "s", 0);
    id = create(&sm, 5000, 9, 04751, 1000, 100); /* the type bits come from the op */
    CHECK_EQ(stat_inode(&sm, id, &st), 0);
    CHECK(st.has_posix);
    CHECK_EQ(st.mode, PT_MODE_IFREG | 04751);
    CHECK_EQ(st.uid, 1000);
    CHECK_EQ(st.gid, 100);
    CHECK_EQ(st.atime_ns, 5000 * MS);
    CHECK_EQ(st.mtime_ns, 5000 * MS);
    CHECK_EQ(st.ctime_ns, 5000 * MS);
    CHECK_EQ(st.version, 1);
    /* Every change of the content bumps the version and moves mtime and ctime. */
    CHECK_EQ(add_inline(&sm, 5001, id, 9, 0, "abc"), 0);
    CHECK_EQ(stat_inode(&sm, id, &st), 0);
    CHECK_EQ(st.version, 2);
    CHECK_EQ(st.mtime_ns, 5001 * MS);
    /* Without attributes (a client from before): 0644, root. */
    {
        struct pt_shard_req q = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = 3};
        struct pt_cursor b;
        CHECK_EQ(apply_at(&sm, 5002, &q, &b), 0);
        CHECK_EQ(stat_inode(&sm, pt_dec_u64(&b), &st), 0);
        CHECK_EQ(st.mode, PT_MODE_IFREG | 0644);
        CHECK_EQ(st.uid, 0);
    }
    pt_shard_sm_close(&sm);
}

TEST(shard_posix_setattr_any_state_and_refusals)
{
    struct pt_shard_sm sm;
    struct pt_shard_stat st;
    uint64_t id;
    open_store(&sm, "s", 0);
    id = create(&sm, 1000, 7, 0600, 1000, 100);
    /* While transient (fchmod / futimens before close). */
    CHECK_EQ(
        setattr(&sm, 1001, id, PT_ATTR_MODE | PT_ATTR_UID, PT_MODE_IFDIR | 06644, 2000, 0, 0, 0),
        0);
    CHECK_EQ(stat_inode(&sm, id, &st), 0);
    CHECK_EQ(st.mode, PT_MODE_IFREG | 06644); /* the type stays */
    CHECK_EQ(st.uid, 2000);
    CHECK_EQ(st.gid, 100); /* not asked: kept */
    CHECK_EQ(st.ctime_ns, 1001 * MS);
    CHECK_EQ(st.version, 1); /* attributes are not content */
    CHECK_EQ(setattr(&sm, 1002, id, PT_ATTR_ATIME | PT_ATTR_MTIME, 0, 0, 0, 123456789ull,
                     987654321012ull),
             0);
    CHECK_EQ(stat_inode(&sm, id, &st), 0);
    CHECK_EQ(st.atime_ns, 123456789ull);
    CHECK_EQ(st.mtime_ns, 987654321012ull);
    CHECK_EQ(st.ctime_ns, 1002 * MS);
    CHECK_EQ(link_as(&sm, 1003, id, 7, "f"), 0);
    CHECK_EQ(stat_inode(&sm, id, &st), 0);
    CHECK_EQ(st.mtime_ns, 987654321012ull); /* the link keeps what the writer set */
    CHECK_EQ(st.ctime_ns, 1002 * MS);       /* and moves no time */
    /* UTIME_NOW: the entry's time. */
    CHECK_EQ(setattr(&sm, 1004, id, PT_ATTR_MTIME_NOW | PT_ATTR_GID, 0, 0, 55, 0, 0), 0);
    CHECK_EQ(stat_inode(&sm, id, &st), 0);
    CHECK_EQ(st.mtime_ns, 1004 * MS);
    CHECK_EQ(st.atime_ns, 123456789ull);
    CHECK_EQ(st.gid, 55);
    /* Refusals change nothing. */
    CHECK_EQ(setattr(&sm, 1005, PT_INODE_MAKE(0, 999), PT_ATTR_UID, 0, 1, 0, 0, 0), -PT_ENOENT);
    CHECK_EQ(setattr(&sm, 1005, PT_INODE_MAKE(3, 2), PT_ATTR_UID, 0, 1, 0, 0, 0), -PT_EXDEV);
    CHECK_EQ(setattr(&sm, 1005, id, 0x80, 0, 1, 0, 0, 0), -PT_EINVAL);
    CHECK_EQ(setattr(&sm, 1005, id, PT_ATTR_MTIME | PT_ATTR_MTIME_NOW | PT_ATTR_UID, 0, 1, 0, 0, 5),
             -PT_EINVAL);
    CHECK_EQ(stat_inode(&sm, id, &st), 0);
    CHECK_EQ(st.uid, 2000);
    CHECK_EQ(st.ctime_ns, 1004 * MS);
    /* The root directory too. */
    CHECK_EQ(setattr(&sm, 1006, PT_INODE_ROOT, PT_ATTR_MODE, 01777, 0, 0, 0, 0), 0);
    CHECK_EQ(stat_inode(&sm, PT_INODE_ROOT, &st), 0);
    CHECK_EQ(st.mode, PT_MODE_IFDIR | 01777);
    pt_shard_sm_close(&sm);
}

TEST(shard_posix_make_node_types_and_link_if_free)
{
    struct pt_shard_sm sm;
    struct pt_shard_stat st;
    char long_target[PT_SYMLINK_MAX + 2];
    uint64_t link_id, fifo, dev, other;
    open_store(&sm, "s", 0);
    CHECK_EQ(make_node(&sm, 2000, PT_INODE_ROOT, "l", PT_MODE_IFLNK | 0777, 0, "../x/y", &link_id),
             0);
    CHECK_EQ(stat_inode(&sm, link_id, &st), 0);
    CHECK_EQ(st.type, PT_TYPE_SYMLINK);
    CHECK_EQ(st.mode, PT_MODE_IFLNK | 0777);
    CHECK_EQ(st.target_len, 6);
    CHECK(strcmp(st.target, "../x/y") == 0);
    CHECK_EQ(st.size, 6);
    CHECK_EQ(st.uid, 1000);
    CHECK_EQ(st.state, PT_FILE_LINKED);
    /* The directory's mtime and ctime follow its entries. */
    CHECK_EQ(stat_inode(&sm, PT_INODE_ROOT, &st), 0);
    CHECK_EQ(st.mtime_ns, 2000 * MS);
    CHECK_EQ(st.ctime_ns, 2000 * MS);
    CHECK_EQ(make_node(&sm, 2001, PT_INODE_ROOT, "p", PT_MODE_IFIFO | 0640, 0, NULL, &fifo), 0);
    CHECK_EQ(make_node(&sm, 2002, PT_INODE_ROOT, "d", PT_MODE_IFCHR | 0600, 0x0501, NULL, &dev), 0);
    CHECK_EQ(stat_inode(&sm, dev, &st), 0);
    CHECK_EQ(st.type, PT_TYPE_CHR);
    CHECK_EQ(st.rdev, 0x0501);
    CHECK_EQ(stat_inode(&sm, fifo, &st), 0);
    CHECK_EQ(st.rdev, 0);
    /* A taken name: refused, the holder untouched. */
    CHECK_EQ(make_node(&sm, 2003, PT_INODE_ROOT, "p", PT_MODE_IFSOCK | 0755, 0, NULL, &other),
             -PT_EEXIST);
    CHECK_EQ(stat_inode(&sm, fifo, &st), 0);
    CHECK_EQ(st.type, PT_TYPE_FIFO);
    CHECK_EQ(st.mode, PT_MODE_IFIFO | 0640);
    /* Bad requests. */
    CHECK_EQ(make_node(&sm, 2004, PT_INODE_ROOT, "r", PT_MODE_IFREG | 0644, 0, NULL, NULL),
             -PT_EINVAL);
    CHECK_EQ(make_node(&sm, 2004, PT_INODE_ROOT, "r", PT_MODE_IFDIR | 0755, 0, NULL, NULL),
             -PT_EINVAL);
    CHECK_EQ(make_node(&sm, 2004, PT_INODE_ROOT, "r", PT_MODE_IFLNK | 0777, 0, NULL, NULL),
             -PT_EINVAL); /* a link without a target */
    CHECK_EQ(make_node(&sm, 2004, PT_INODE_ROOT, "r", PT_MODE_IFIFO | 0644, 0, "x", NULL),
             -PT_EINVAL); /* a FIFO with one */
    memset(long_target, 'a', sizeof(long_target) - 1);
    long_target[sizeof(long_target) - 1] = 0;
    CHECK_EQ(make_node(&sm, 2004, PT_INODE_ROOT, "r", PT_MODE_IFLNK | 0777, 0, long_target, NULL),
             -PT_EINVAL);
    long_target[PT_SYMLINK_MAX] = 0; /* 4095 bytes: the longest */
    CHECK_EQ(make_node(&sm, 2004, PT_INODE_ROOT, "r", PT_MODE_IFLNK | 0777, 0, long_target, &other),
             0);
    CHECK_EQ(stat_inode(&sm, other, &st), 0);
    CHECK_EQ(st.target_len, PT_SYMLINK_MAX);
    CHECK_EQ(make_node(&sm, 2005, link_id, "x", PT_MODE_IFIFO | 0644, 0, NULL, NULL), -PT_ENOTDIR);
    /* Unlinked like a file: kept for the retention period, then a GC candidate. */
    {
        struct pt_shard_req q = {.op = PT_SHARD_UNLINK, .id = PT_INODE_ROOT};
        uint64_t cursor = 0, ids[8];
        int n;
        named(&q, "p");
        CHECK_EQ(apply_at(&sm, 3000, &q, NULL), 0);
        CHECK_EQ(stat_inode(&sm, fifo, &st), 0);
        CHECK_EQ(st.state, PT_FILE_UNLINKED);
        CHECK_EQ(st.ctime_ns, 3000 * MS);
        n = pt_shard_sm_gc_candidates(&sm, 3000 + sm.retention_ms, &cursor, 100, ids, 8);
        CHECK_EQ(n, 1);
        CHECK_EQ(ids[0], fifo);
    }
    pt_shard_sm_close(&sm);
}

TEST(shard_posix_rename_moves_nodes_and_changes_ctime)
{
    struct pt_shard_sm sm;
    struct pt_shard_stat st;
    uint64_t l1, l2;
    struct pt_shard_req q = {.op = PT_SHARD_RENAME, .id = PT_INODE_ROOT};
    open_store(&sm, "s", 0);
    CHECK_EQ(make_node(&sm, 100, PT_INODE_ROOT, "a", PT_MODE_IFLNK | 0777, 0, "t1", &l1), 0);
    CHECK_EQ(make_node(&sm, 101, PT_INODE_ROOT, "b", PT_MODE_IFLNK | 0777, 0, "t2", &l2), 0);
    named(&q, "a");
    q.name2_len = 1;
    memcpy(q.name2, "b", 2);
    CHECK_EQ(apply_at(&sm, 200, &q, NULL), 0); /* a node replaces a node */
    CHECK_EQ(stat_inode(&sm, l1, &st), 0);
    CHECK_EQ(st.ctime_ns, 200 * MS);
    CHECK_EQ(st.mtime_ns, 100 * MS);
    CHECK_EQ(stat_inode(&sm, l2, &st), 0);
    CHECK_EQ(st.state, PT_FILE_UNLINKED);
    pt_shard_sm_close(&sm);
}

TEST(shard_posix_root_owned_and_stamped_by_first_entry)
{
    struct pt_shard_sm sm;
    struct pt_shard_stat st;
    open_store(&sm, "s", 0);
    CHECK_EQ(stat_inode(&sm, PT_INODE_ROOT, &st), 0);
    CHECK_EQ(st.uid, (uint32_t)geteuid());
    CHECK_EQ(st.ctime_ns, 0);
    CHECK_EQ(make_node(&sm, 777, PT_INODE_ROOT, "f", PT_MODE_IFIFO | 0644, 0, NULL, NULL), 0);
    CHECK_EQ(stat_inode(&sm, PT_INODE_ROOT, &st), 0);
    CHECK_EQ(st.atime_ns, 777 * MS);
    CHECK_EQ(st.mtime_ns, 777 * MS);
    pt_shard_sm_close(&sm);
}

/* A snapshot of the version-2 layout (46-byte inode records) restores with defaults. */
TEST(shard_posix_first_layout_records_read_with_defaults)
{
    struct pt_shard_sm sm;
    struct pt_shard_stat st;
    uint8_t buf[512];
    struct pt_cursor c;
    uint8_t key[8], val[46];
    unsigned t;
    uint64_t id = PT_INODE_MAKE(0, 5);
    open_store(&sm, "s", 0);
    memset(val, 0, sizeof(val));
    val[0] = PT_TYPE_FILE;
    pt_put_le64(val + 1, 4242); /* mtime, ms */
    pt_put_le64(val + 9, PT_INODE_ROOT);
    val[17] = PT_FILE_LINKED;
    for (t = 0; t < 8; t++)
        key[t] = (uint8_t)(id >> (56 - 8 * t));
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_enc_u32(&c, 0x53535450u);
    pt_enc_u32(&c, 2);
    for (t = 0; t < 8; t++) { /* inodes, dirents, spans, blockidx, meta, txns, transient, dropped */
        pt_enc_u64(&c, t == 0 ? 1 : 0);
        if (t == 0) {
            pt_enc_u32(&c, 8);
            pt_enc_bytes(&c, key, 8);
            pt_enc_u32(&c, 46);
            pt_enc_bytes(&c, val, 46);
        }
    }
    pt_enc_u32(&c, petrel_crc32c(0, buf, c.pos));
    CHECK(pt_cursor_ok(&c));
    CHECK_OK(pt_shard_sm_restore(&sm, buf, c.pos));
    CHECK_EQ(stat_inode(&sm, id, &st), 0);
    CHECK_EQ(st.mode, PT_MODE_IFREG | 0644);
    CHECK_EQ(st.mtime_ns, 4242 * MS);
    CHECK_EQ(st.ctime_ns, 4242 * MS);
    CHECK_EQ(st.mtime, 4242);
    /* Changed, it is written in the new layout and keeps what it had. */
    CHECK_EQ(setattr(&sm, 5000, id, PT_ATTR_UID, 0, 77, 0, 0, 0), 0);
    CHECK_EQ(stat_inode(&sm, id, &st), 0);
    CHECK_EQ(st.uid, 77);
    CHECK_EQ(st.mtime_ns, 4242 * MS);
    pt_shard_sm_close(&sm);
}

TEST(shard_posix_msgs_roundtrip_and_truncation)
{
    struct pt_shard_req q, d;
    uint8_t buf[256];
    int n, i;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_SETATTR;
    q.id = 0x0100000000000009ull;
    q.attr.valid = PT_ATTR_MODE | PT_ATTR_MTIME;
    q.attr.mode = 0755;
    q.attr.mtime = 0x1122334455667788ull;
    n = pt_shard_req_encode(&q, buf, sizeof(buf));
    CHECK_EQ(n, 1 + 8 + 40);
    CHECK_OK(pt_shard_req_decode(&d, buf, (size_t)n));
    CHECK(d.has_attr);
    CHECK_EQ(d.attr.valid, q.attr.valid);
    CHECK_EQ(d.attr.mtime, q.attr.mtime);
    for (i = 0; i < n; i++) /* every truncation is refused */
        CHECK_EQ(pt_shard_req_decode(&d, buf, (size_t)i), -PT_EPROTO);
    /* CONSTRUCT_FILE: the attribute block is optional, but whole. */
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_CONSTRUCT_FILE;
    q.cookie = 5;
    n = pt_shard_req_encode(&q, buf, sizeof(buf));
    CHECK_EQ(n, 9);
    CHECK_OK(pt_shard_req_decode(&d, buf, (size_t)n));
    CHECK(!d.has_attr);
    q.has_attr = 1;
    q.attr.uid = 1234;
    n = pt_shard_req_encode(&q, buf, sizeof(buf));
    CHECK_EQ(n, 49);
    CHECK_OK(pt_shard_req_decode(&d, buf, (size_t)n));
    CHECK(d.has_attr);
    CHECK_EQ(d.attr.uid, 1234);
    CHECK_EQ(pt_shard_req_decode(&d, buf, 30), -PT_EPROTO);
    /* MAKE_NODE with a target. */
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_MAKE_NODE;
    q.id = PT_INODE_ROOT;
    named(&q, "ln");
    q.data_ptr = (const uint8_t *)"tgt";
    q.data_len = 3;
    q.attr.mode = PT_MODE_IFLNK | 0777;
    n = pt_shard_req_encode(&q, buf, sizeof(buf));
    CHECK_EQ(n, 1 + 8 + 3 + 7 + 40);
    CHECK_OK(pt_shard_req_decode(&d, buf, (size_t)n));
    CHECK_EQ(d.data_len, 3);
    CHECK(memcmp(d.data_ptr, "tgt", 3) == 0);
    CHECK_EQ(d.attr.mode, PT_MODE_IFLNK | 0777);
    /* CDC MKDIR: mode and owner optional. */
    {
        struct pt_cdc_req m, md;
        memset(&m, 0, sizeof(m));
        m.op = PT_CDC_MKDIR;
        m.key = 3;
        m.dir = PT_INODE_ROOT;
        m.name_len = 1;
        m.name[0] = 'd';
        n = pt_cdc_req_encode(&m, buf, sizeof(buf));
        CHECK_OK(pt_cdc_req_decode(&md, buf, (size_t)n));
        CHECK(!md.has_attr);
        m.has_attr = 1;
        m.mode = 02750;
        m.uid = 9;
        m.gid = 8;
        CHECK_EQ(pt_cdc_req_encode(&m, buf, sizeof(buf)), n + 12);
        CHECK_OK(pt_cdc_req_decode(&md, buf, (size_t)n + 12));
        CHECK(md.has_attr);
        CHECK_EQ(md.mode, 02750);
        CHECK_EQ(md.gid, 8);
        CHECK_EQ(pt_cdc_req_decode(&md, buf, (size_t)n + 5), -PT_EPROTO);
    }
}

TEST(shard_posix_make_dir_carries_mode_and_owner)
{
    struct pt_shard_sm sm;
    struct pt_shard_stat st;
    struct pt_shard_req q = {.op = PT_SHARD_MAKE_DIR, .txn = 4, .target = PT_INODE_ROOT};
    struct pt_cursor b;
    open_store(&sm, "s", 0);
    q.has_attr = 1;
    q.attr.mode = 0151;
    q.attr.uid = 65534;
    q.attr.gid = 65533;
    CHECK_EQ(apply_at(&sm, 900, &q, &b), 0);
    CHECK_EQ(stat_inode(&sm, pt_dec_u64(&b), &st), 0);
    CHECK_EQ(st.mode, PT_MODE_IFDIR | 0151);
    CHECK_EQ(st.uid, 65534);
    CHECK_EQ(st.gid, 65533);
    CHECK_EQ(st.ctime_ns, 900 * MS);
    pt_shard_sm_close(&sm);
}

/* The same entries, new ops among them, give byte-identical stores; a snapshot of them
 * restores to the same store (records with targets, attributes, both op kinds). */
TEST(shard_posix_replay_is_deterministic_and_snapshots_round_trip)
{
    struct pt_shard_sm a, b, c;
    uint8_t *sa, *sb, *sc;
    size_t la, lb, lc;
    unsigned k, round;
    open_store(&a, "a", 0);
    open_store(&b, "b", 0);
    open_store(&c, "c", 0);
    for (round = 0; round < 2; round++) {
        struct pt_shard_sm *sm = round ? &b : &a;
        uint64_t now = 10000;
        for (k = 0; k < 40; k++) {
            char name[16], target[32];
            uint64_t id = 0;
            snprintf(name, sizeof(name), "n%u", k % 17);
            snprintf(target, sizeof(target), "../t/%u", k * 7);
            switch (k % 4) {
            case 0:
                make_node(sm, now++, PT_INODE_ROOT, name, PT_MODE_IFLNK | 0777, 0, target, &id);
                break;
            case 1:
                make_node(sm, now++, PT_INODE_ROOT, name, PT_MODE_IFCHR | 0600, k, NULL, &id);
                break;
            case 2:
                id = create(sm, now++, k, 0640, k, k + 1);
                add_inline(sm, now++, id, k, 0, target);
                link_as(sm, now++, id, k, name);
                break;
            default:
                setattr(sm, now++, PT_INODE_MAKE(0, 2 + k / 2), PT_ATTR_MODE | PT_ATTR_MTIME_NOW, k,
                        0, 0, 0, 0);
                break;
            }
        }
    }
    CHECK_OK(pt_shard_sm_snapshot(&a, &sa, &la));
    CHECK_OK(pt_shard_sm_snapshot(&b, &sb, &lb));
    CHECK_EQ(la, lb);
    CHECK(memcmp(sa, sb, la) == 0);
    CHECK_EQ(pt_get_le32(sa + 4), 5); /* snapshot version 5 (issue 12: blockrefs, changes) */
    CHECK_OK(pt_shard_sm_restore(&c, sa, la));
    CHECK_OK(pt_shard_sm_snapshot(&c, &sc, &lc));
    CHECK_EQ(lc, la);
    CHECK(memcmp(sc, sa, la) == 0);
    free(sa);
    free(sb);
    free(sc);
    pt_shard_sm_close(&a);
    pt_shard_sm_close(&b);
    pt_shard_sm_close(&c);
}
