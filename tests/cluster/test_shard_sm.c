/*
 * Deterministic tests of the shard state machine: every operation, its refusals, paging,
 * expiry by the entry clock, CDC halves and their retries, snapshots, and that two stores fed
 * the same entries end identical.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/proto/shard_msgs.h"
#include "cluster/shard/shard_sm.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"
#include "test.h"

static uint8_t reply_buf[PT_SHARD_MSG_MAX];
static size_t reply_len;

static void open_sm(struct pt_shard_sm *sm, const char *name, unsigned shard)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", test_tmpdir(), name);
    CHECK_OK(pt_shard_sm_open(sm, dir, shard, 1));
}

/* Apply one request at time `now`; returns the reply status; body in `body`. */
static struct pt_shard_apply_out out;

static int apply(struct pt_shard_sm *sm, uint64_t now, const struct pt_shard_req *q,
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
    memcpy(reply_buf, out.reply[0], out.len[0]);
    reply_len = out.len[0];
    return pt_shard_reply_open(reply_buf, reply_len, body ? body : &dummy);
}

static int query(struct pt_shard_sm *sm, const struct pt_shard_req *q, struct pt_cursor *body)
{
    uint8_t req[PT_SHARD_MSG_MAX];
    struct pt_cursor dummy;
    int n = pt_shard_req_encode(q, req, sizeof(req));
    CHECK_OK(n);
    CHECK_OK(pt_shard_sm_query(sm, req, (size_t)n, reply_buf, sizeof(reply_buf), &reply_len));
    return pt_shard_reply_open(reply_buf, reply_len, body ? body : &dummy);
}

static void set_name(char *dst, uint8_t *len, const char *name)
{
    *len = (uint8_t)strlen(name);
    memcpy(dst, name, *len + 1);
}

static uint64_t construct(struct pt_shard_sm *sm, uint64_t now, uint64_t cookie)
{
    struct pt_shard_req q = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = cookie};
    struct pt_cursor b;
    CHECK_EQ(apply(sm, now, &q, &b), 0);
    return pt_dec_u64(&b);
}

static int add_inline(struct pt_shard_sm *sm, uint64_t now, uint64_t id, uint64_t cookie,
                      uint64_t off, const void *data, uint32_t len)
{
    struct pt_shard_req q = {.op = PT_SHARD_ADD_INLINE,
                             .id = id,
                             .cookie = cookie,
                             .offset = off,
                             .size = len,
                             .crc = petrel_crc32c(0, data, len),
                             .data_len = len,
                             .data_ptr = data};
    return apply(sm, now, &q, NULL);
}

static int link_file(struct pt_shard_sm *sm, uint64_t now, uint64_t id, uint64_t cookie,
                     uint64_t dir, const char *name)
{
    struct pt_shard_req q = {.op = PT_SHARD_LINK_FILE, .id = id, .cookie = cookie, .target = dir};
    set_name(q.name, &q.name_len, name);
    return apply(sm, now, &q, NULL);
}

static int lookup(struct pt_shard_sm *sm, uint64_t dir, const char *name, uint64_t *id)
{
    struct pt_shard_req q = {.op = PT_SHARD_LOOKUP, .id = dir};
    struct pt_cursor b;
    int st;
    set_name(q.name, &q.name_len, name);
    st = query(sm, &q, &b);
    if (st == 0 && id) *id = pt_dec_u64(&b);
    return st;
}

static int stat_of(struct pt_shard_sm *sm, uint64_t id, struct pt_shard_stat *st)
{
    struct pt_shard_req q = {.op = PT_SHARD_STAT, .id = id};
    struct pt_cursor b;
    int rc = query(sm, &q, &b);
    if (rc == 0) CHECK_OK(pt_shard_reply_stat(&b, st));
    return rc;
}

TEST(shard_root_exists_on_shard0_only)
{
    struct pt_shard_sm a, b;
    struct pt_shard_stat st;
    open_sm(&a, "s0", 0);
    open_sm(&b, "s1", 1);
    CHECK_EQ(stat_of(&a, PT_INODE_ROOT, &st), 0);
    CHECK_EQ(st.type, PT_TYPE_DIR);
    CHECK_EQ(st.parent, PT_INODE_ROOT);
    CHECK_EQ(stat_of(&b, PT_INODE_ROOT, &st), -PT_EXDEV);
    pt_shard_sm_close(&a);
    pt_shard_sm_close(&b);
}

TEST(shard_inline_file_lifecycle)
{
    struct pt_shard_sm sm;
    struct pt_shard_stat st;
    uint64_t id, found;
    open_sm(&sm, "s", 0);
    id = construct(&sm, 1000, 77);
    CHECK_EQ(PT_INODE_SHARD(id), 0);
    /* Invisible until linked. */
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "a.txt", NULL), -PT_ENOENT);
    CHECK_EQ(add_inline(&sm, 1001, id, 76, 0, "hello", 5), -PT_EACCES); /* wrong cookie */
    CHECK_EQ(add_inline(&sm, 1001, id, 77, 3, "hello", 5), -PT_EINVAL); /* not contiguous */
    CHECK_EQ(add_inline(&sm, 1001, id, 77, 0, "hello", 5), 0);
    CHECK_EQ(add_inline(&sm, 1002, id, 77, 5, " world", 6), 0);
    /* A retry of a committed request (reply lost in a failover) succeeds without change. */
    CHECK_EQ(add_inline(&sm, 1002, id, 77, 5, " world", 6), 0);
    CHECK_EQ(add_inline(&sm, 1002, id, 77, 5, " World", 6), -PT_EINVAL);
    CHECK_EQ(link_file(&sm, 1003, id, 77, PT_INODE_ROOT, "a.txt"), 0);
    CHECK_EQ(link_file(&sm, 1003, id, 77, PT_INODE_ROOT, "a.txt"), 0);
    CHECK_EQ(link_file(&sm, 1003, id, 78, PT_INODE_ROOT, "a.txt"), -PT_ESTALE);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "a.txt", &found), 0);
    CHECK_EQ(found, id);
    CHECK_EQ(stat_of(&sm, id, &st), 0);
    CHECK_EQ(st.size, 11);
    CHECK_EQ(st.state, PT_FILE_LINKED);
    /* the times are the last write's (or what the writer set): linking moves none */
    CHECK_EQ(st.mtime, 1002);
    CHECK_EQ(st.ctime_ns, 1002u * 1000000u);
    /* Linked files are immutable. */
    CHECK_EQ(add_inline(&sm, 1004, id, 77, 11, "!", 1), -PT_ESTALE);
    CHECK_EQ(link_file(&sm, 1004, id, 77, PT_INODE_ROOT, "b.txt"), -PT_ESTALE);
    pt_shard_sm_close(&sm);
}

TEST(shard_inline_crc_is_checked)
{
    struct pt_shard_sm sm;
    struct pt_shard_req q = {.op = PT_SHARD_ADD_INLINE,
                             .cookie = 1,
                             .size = 3,
                             .data_len = 3,
                             .data_ptr = (const uint8_t *)"abc"};
    open_sm(&sm, "s", 0);
    q.id = construct(&sm, 1, 1);
    q.crc = petrel_crc32c(0, "abd", 3);
    CHECK_EQ(apply(&sm, 2, &q, NULL), -PT_EBADMSG);
    pt_shard_sm_close(&sm);
}

TEST(shard_mirrored_span_needs_certify_before_link)
{
    struct pt_shard_sm sm;
    struct pt_shard_req q = {.op = PT_SHARD_ADD_SPAN,
                             .cookie = 5,
                             .size = 1 << 20,
                             .crc = 0x1234,
                             .storage = PT_STORAGE_MIRRORED,
                             .data = 1,
                             .parity = 2,
                             .block_size = 1 << 20,
                             .n_services = 3,
                             .services = {11, 12, 13}};
    struct pt_shard_req c = {.op = PT_SHARD_CERTIFY_SPAN, .cookie = 5};
    struct pt_shard_req sp = {.op = PT_SHARD_SPANS};
    struct pt_cursor b;
    struct pt_span s;
    uint8_t proofs[24] = {0};
    uint64_t id, blocks[3];
    unsigned i;
    open_sm(&sm, "s", 0);
    id = construct(&sm, 10, 5);
    q.id = c.id = sp.id = id;
    CHECK_EQ(apply(&sm, 11, &q, &b), 0);
    CHECK_EQ(pt_dec_u8(&b), 3);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(pt_dec_u64(&b), 11 + i);
        blocks[i] = pt_dec_u64(&b);
        CHECK_EQ(PT_INODE_SHARD(blocks[i]), 0);
    }
    /* Retried after a lost reply: the same blocks, no second span. */
    q.services[0] = 21;
    CHECK_EQ(apply(&sm, 11, &q, &b), 0);
    CHECK_EQ(pt_dec_u8(&b), 3);
    CHECK_EQ(pt_dec_u64(&b), 11);
    CHECK_EQ(pt_dec_u64(&b), blocks[0]);
    CHECK(blocks[0] != blocks[1] && blocks[1] != blocks[2]);
    CHECK_EQ(link_file(&sm, 12, id, 5, PT_INODE_ROOT, "big"), -PT_EAGAIN);
    c.data_len = 16; /* wrong number of proofs */
    c.data_ptr = proofs;
    CHECK_EQ(apply(&sm, 12, &c, NULL), -PT_EINVAL);
    c.data_len = 24;
    CHECK_EQ(apply(&sm, 12, &c, NULL), 0);
    CHECK_EQ(link_file(&sm, 13, id, 5, PT_INODE_ROOT, "big"), 0);
    /* The span record lists the blocks, certified. */
    CHECK_EQ(query(&sm, &sp, &b), 0);
    CHECK_EQ(pt_dec_u64(&b), 1 << 20);
    CHECK_EQ(pt_dec_u16(&b), 1);
    CHECK_OK(pt_span_decode(&b, &s));
    CHECK_EQ(s.storage, PT_STORAGE_MIRRORED);
    CHECK_EQ(s.parity, 2);
    CHECK_EQ(s.certified, 1);
    CHECK_EQ(s.blocks[2].block, blocks[2]);
    CHECK_EQ(s.blocks[1].crc, 0x1234);
    CHECK_EQ(pt_dec_u8(&b), 0);
    pt_shard_sm_close(&sm);
}

TEST(shard_drop_span_only_last_uncertified)
{
    struct pt_shard_sm sm;
    struct pt_shard_req q = {.op = PT_SHARD_ADD_SPAN,
                             .cookie = 5,
                             .size = 100,
                             .crc = 1,
                             .storage = PT_STORAGE_MIRRORED,
                             .data = 1,
                             .parity = 1,
                             .block_size = 100,
                             .n_services = 2,
                             .services = {7, 8}};
    struct pt_shard_req d = {.op = PT_SHARD_DROP_SPAN, .cookie = 5};
    struct pt_shard_req c = {.op = PT_SHARD_CERTIFY_SPAN,
                             .cookie = 5,
                             .data_len = 16,
                             .data_ptr = (const uint8_t *)"0123456789abcdef"};
    struct pt_shard_stat st;
    open_sm(&sm, "s", 0);
    q.id = d.id = c.id = construct(&sm, 1, 5);
    CHECK_EQ(apply(&sm, 2, &q, NULL), 0);
    q.offset = 100;
    CHECK_EQ(apply(&sm, 2, &q, NULL), 0);
    d.offset = 0;
    CHECK_EQ(apply(&sm, 3, &d, NULL), -PT_EINVAL); /* not the last span */
    d.offset = 100;
    CHECK_EQ(apply(&sm, 3, &d, NULL), 0);
    CHECK_EQ(stat_of(&sm, q.id, &st), 0);
    CHECK_EQ(st.size, 100);
    CHECK_EQ(apply(&sm, 3, &d, NULL), -PT_ENOENT);
    /* Placed again elsewhere at the same offset. */
    q.services[0] = 9;
    CHECK_EQ(apply(&sm, 4, &q, NULL), 0);
    c.offset = 100;
    CHECK_EQ(apply(&sm, 5, &c, NULL), 0);
    CHECK_EQ(apply(&sm, 6, &d, NULL), -PT_EBUSY); /* certified spans stay */
    d.cookie = 6;
    CHECK_EQ(apply(&sm, 6, &d, NULL), -PT_EACCES);
    pt_shard_sm_close(&sm);
}

TEST(shard_span_layout_refusals)
{
    struct pt_shard_sm sm;
    struct pt_shard_req q = {.op = PT_SHARD_ADD_SPAN,
                             .cookie = 5,
                             .size = 100,
                             .crc = 1,
                             .storage = PT_STORAGE_MIRRORED,
                             .data = 1,
                             .parity = 1,
                             .block_size = 100,
                             .n_services = 2,
                             .services = {7, 7}};
    open_sm(&sm, "s", 0);
    q.id = construct(&sm, 1, 5);
    CHECK_EQ(apply(&sm, 2, &q, NULL), -PT_EINVAL); /* same service twice */
    q.services[1] = 8;
    q.n_services = 3;
    CHECK_EQ(apply(&sm, 2, &q, NULL), -PT_EINVAL); /* count does not match layout */
    q.n_services = 2;
    q.storage = PT_STORAGE_RS;
    q.data = 4;
    CHECK_EQ(apply(&sm, 2, &q, NULL), -PT_EINVAL); /* RS only through ADD_RS_SPAN */
    q.storage = PT_STORAGE_MIRRORED;
    q.data = 1;
    q.size = 0;
    CHECK_EQ(apply(&sm, 2, &q, NULL), -PT_EINVAL);
    q.size = 100;
    CHECK_EQ(apply(&sm, 2, &q, NULL), 0);
    pt_shard_sm_close(&sm);
}

TEST(shard_transient_files_expire_by_entry_clock)
{
    struct pt_shard_sm sm;
    struct pt_shard_req ex = {.op = PT_SHARD_EXPIRE};
    struct pt_shard_stat st;
    struct pt_cursor b;
    uint64_t a, k;
    open_sm(&sm, "s", 0);
    a = construct(&sm, 1000, 1);
    k = construct(&sm, 1000, 2);
    /* The writer of k keeps working: its deadline moves. */
    CHECK_EQ(add_inline(&sm, 1000 + PT_SHARD_TRANSIENT_TTL_MS - 1, k, 2, 0, "x", 1), 0);
    CHECK_EQ(apply(&sm, 1000 + PT_SHARD_TRANSIENT_TTL_MS - 1, &ex, &b), 0);
    CHECK_EQ(pt_dec_u32(&b), 0);
    CHECK_EQ(apply(&sm, 1000 + PT_SHARD_TRANSIENT_TTL_MS, &ex, &b), 0);
    CHECK_EQ(pt_dec_u32(&b), 1);
    CHECK_EQ(stat_of(&sm, a, &st), 0);
    CHECK_EQ(st.state, PT_FILE_EXPIRED);
    CHECK_EQ(stat_of(&sm, k, &st), 0);
    CHECK_EQ(st.state, PT_FILE_TRANSIENT);
    CHECK_EQ(add_inline(&sm, 5000, a, 1, 0, "late", 4), -PT_ESTALE);
    CHECK_EQ(link_file(&sm, 5000, k, 2, PT_INODE_ROOT, "k"), 0);
    pt_shard_sm_close(&sm);
}

TEST(shard_unlink_keeps_file_for_retention)
{
    struct pt_shard_sm sm;
    struct pt_shard_req u = {.op = PT_SHARD_UNLINK, .id = PT_INODE_ROOT};
    struct pt_shard_stat st;
    uint64_t id;
    open_sm(&sm, "s", 0);
    id = construct(&sm, 1, 9);
    CHECK_EQ(add_inline(&sm, 1, id, 9, 0, "z", 1), 0);
    CHECK_EQ(link_file(&sm, 2, id, 9, PT_INODE_ROOT, "f"), 0);
    set_name(u.name, &u.name_len, "nope");
    CHECK_EQ(apply(&sm, 3, &u, NULL), -PT_ENOENT);
    set_name(u.name, &u.name_len, "f");
    CHECK_EQ(apply(&sm, 3, &u, NULL), 0);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "f", NULL), -PT_ENOENT);
    CHECK_EQ(stat_of(&sm, id, &st), 0);
    CHECK_EQ(st.state, PT_FILE_UNLINKED);
    CHECK_EQ(st.deadline, 3 + PT_SHARD_RETENTION_MS);
    pt_shard_sm_close(&sm);
}

/* A file named in a directory of another shard is retired on its own shard. */
TEST(shard_unlink_names_the_file_and_retire_is_idempotent)
{
    struct pt_shard_sm s0, s1;
    struct pt_shard_req mk = {.op = PT_SHARD_MAKE_DIR, .txn = 1, .target = PT_INODE_ROOT};
    struct pt_shard_req add = {
        .op = PT_SHARD_ADD_ENTRY, .txn = 2, .offset = PT_TYPE_FILE, .name = "f", .name_len = 1};
    struct pt_shard_req u = {.op = PT_SHARD_UNLINK, .name = "f", .name_len = 1};
    struct pt_shard_req r = {.op = PT_SHARD_RETIRE_FILE};
    struct pt_shard_stat st;
    struct pt_cursor b;
    uint64_t dir, file;
    open_sm(&s0, "s0", 0);
    open_sm(&s1, "s1", 1);
    CHECK_EQ(apply(&s1, 1, &mk, &b), 0);
    dir = pt_dec_u64(&b);
    file = construct(&s0, 1, 4);
    CHECK_EQ(link_file(&s0, 2, file, 4, PT_INODE_ROOT, "f"), 0);
    /* The CDC moved its name into dir (shard 1); then it is unlinked there. */
    add.id = dir;
    add.target = file;
    CHECK_EQ(apply(&s1, 3, &add, NULL), 0);
    u.id = dir;
    CHECK_EQ(apply(&s1, 4, &u, &b), 0);
    CHECK_EQ(pt_dec_u64(&b), file);
    r.id = file;
    CHECK_EQ(apply(&s1, 5, &r, NULL), -PT_EXDEV);
    CHECK_EQ(apply(&s0, 5, &r, NULL), 0);
    CHECK_EQ(stat_of(&s0, file, &st), 0);
    CHECK_EQ(st.state, PT_FILE_UNLINKED);
    CHECK_EQ(st.deadline, 5 + PT_SHARD_RETENTION_MS);
    CHECK_EQ(apply(&s0, 9, &r, NULL), 0); /* retried: unchanged */
    CHECK_EQ(stat_of(&s0, file, &st), 0);
    CHECK_EQ(st.deadline, 5 + PT_SHARD_RETENTION_MS);
    r.id = PT_INODE_ROOT;
    CHECK_EQ(apply(&s0, 9, &r, NULL), -PT_EISDIR);
    pt_shard_sm_close(&s0);
    pt_shard_sm_close(&s1);
}

TEST(shard_rename_same_directory)
{
    struct pt_shard_sm sm;
    struct pt_shard_req r = {.op = PT_SHARD_RENAME, .id = PT_INODE_ROOT};
    struct pt_shard_stat st;
    uint64_t a, b, found;
    open_sm(&sm, "s", 0);
    a = construct(&sm, 1, 1);
    b = construct(&sm, 1, 2);
    CHECK_EQ(link_file(&sm, 2, a, 1, PT_INODE_ROOT, "a"), 0); /* empty file: no spans */
    CHECK_EQ(link_file(&sm, 2, b, 2, PT_INODE_ROOT, "b"), 0);
    set_name(r.name, &r.name_len, "a");
    set_name(r.name2, &r.name2_len, "c");
    CHECK_EQ(apply(&sm, 3, &r, NULL), 0);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "a", NULL), -PT_ENOENT);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "c", &found), 0);
    CHECK_EQ(found, a);
    /* Replacing a file retires the old one. */
    set_name(r.name, &r.name_len, "c");
    set_name(r.name2, &r.name2_len, "b");
    CHECK_EQ(apply(&sm, 4, &r, NULL), 0);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "b", &found), 0);
    CHECK_EQ(found, a);
    CHECK_EQ(stat_of(&sm, b, &st), 0);
    CHECK_EQ(st.state, PT_FILE_UNLINKED);
    pt_shard_sm_close(&sm);
}

static uint64_t make_dir_named(struct pt_shard_sm *dsm, struct pt_shard_sm *psm, uint64_t txn,
                               uint64_t parent, const char *name)
{
    struct pt_shard_req mk = {.op = PT_SHARD_MAKE_DIR, .txn = txn, .target = parent};
    struct pt_shard_req add = {
        .op = PT_SHARD_ADD_ENTRY, .txn = txn, .id = parent, .offset = PT_TYPE_DIR};
    struct pt_cursor b;
    uint64_t d;
    CHECK_EQ(apply(dsm, 1, &mk, &b), 0);
    d = pt_dec_u64(&b);
    add.target = d;
    set_name(add.name, &add.name_len, name);
    CHECK_EQ(apply(psm, 1, &add, NULL), 0);
    return d;
}

static int rename_in(struct pt_shard_sm *sm, uint64_t now, uint64_t dir, const char *from,
                     const char *to, uint64_t *replaced)
{
    struct pt_shard_req r = {.op = PT_SHARD_RENAME, .id = dir};
    struct pt_cursor b;
    int st;
    set_name(r.name, &r.name_len, from);
    set_name(r.name2, &r.name2_len, to);
    st = apply(sm, now, &r, &b);
    if (st == 0 && replaced) *replaced = pt_dec_u64(&b);
    return st;
}

/* rename(2) rules within one directory: kinds must match, directories must be empty. */
TEST(shard_rename_replaces_by_posix_rules)
{
    struct pt_shard_sm s0, s1;
    struct pt_shard_stat st;
    uint64_t f, g, da, db, dfull, dremote, found, repl = 99;
    open_sm(&s0, "s0", 0);
    open_sm(&s1, "s1", 1);
    f = construct(&s0, 1, 1);
    g = construct(&s0, 1, 2);
    CHECK_EQ(link_file(&s0, 2, f, 1, PT_INODE_ROOT, "f"), 0);
    CHECK_EQ(link_file(&s0, 2, g, 2, PT_INODE_ROOT, "g"), 0);
    da = make_dir_named(&s0, &s0, 10, PT_INODE_ROOT, "da");
    db = make_dir_named(&s0, &s0, 11, PT_INODE_ROOT, "db");
    dfull = make_dir_named(&s0, &s0, 12, PT_INODE_ROOT, "dfull");
    make_dir_named(&s0, &s0, 13, dfull, "inner");
    dremote = make_dir_named(&s1, &s0, 14, PT_INODE_ROOT, "dremote");
    /* Onto itself: nothing changes. */
    CHECK_EQ(rename_in(&s0, 3, PT_INODE_ROOT, "f", "f", &repl), 0);
    CHECK_EQ(repl, 0);
    CHECK_EQ(lookup(&s0, PT_INODE_ROOT, "f", &found), 0);
    CHECK_EQ(found, f);
    /* Kinds must match. */
    CHECK_EQ(rename_in(&s0, 3, PT_INODE_ROOT, "f", "da", NULL), -PT_EISDIR);
    CHECK_EQ(rename_in(&s0, 3, PT_INODE_ROOT, "da", "f", NULL), -PT_ENOTDIR);
    /* A directory replaces only an empty directory; one on another shard goes to the CDC. */
    CHECK_EQ(rename_in(&s0, 3, PT_INODE_ROOT, "da", "dfull", NULL), -PT_ENOTEMPTY);
    CHECK_EQ(rename_in(&s0, 3, PT_INODE_ROOT, "da", "dremote", NULL), -PT_EXDEV);
    CHECK_EQ(stat_of(&s1, dremote, &st), 0);
    CHECK_EQ(lookup(&s0, PT_INODE_ROOT, "da", &found), 0); /* all refused: unchanged */
    CHECK_EQ(found, da);
    CHECK_EQ(stat_of(&s0, dfull, &st), 0);
    CHECK_EQ(rename_in(&s0, 4, PT_INODE_ROOT, "da", "db", &repl), 0);
    CHECK_EQ(repl, 0);
    CHECK_EQ(lookup(&s0, PT_INODE_ROOT, "db", &found), 0);
    CHECK_EQ(found, da);
    CHECK_EQ(lookup(&s0, PT_INODE_ROOT, "da", NULL), -PT_ENOENT);
    CHECK_EQ(stat_of(&s0, db, &st), -PT_ENOENT); /* the replaced directory is gone */
    /* A file replaces a file: the reply names it, it enters retention. */
    CHECK_EQ(rename_in(&s0, 5, PT_INODE_ROOT, "f", "g", &repl), 0);
    CHECK_EQ(repl, g);
    CHECK_EQ(lookup(&s0, PT_INODE_ROOT, "g", &found), 0);
    CHECK_EQ(found, f);
    CHECK_EQ(stat_of(&s0, g, &st), 0);
    CHECK_EQ(st.state, PT_FILE_UNLINKED);
    CHECK_EQ(st.deadline, 5 + PT_SHARD_RETENTION_MS);
    CHECK_EQ(stat_of(&s0, f, &st), 0);
    CHECK_EQ(st.state, PT_FILE_LINKED);
    pt_shard_sm_close(&s0);
    pt_shard_sm_close(&s1);
}

/* A replaced file whose inode is on another shard is named in the reply, for RETIRE_FILE. */
TEST(shard_rename_names_a_replaced_file_of_another_shard)
{
    struct pt_shard_sm s0, s1;
    struct pt_shard_req add = {.op = PT_SHARD_ADD_ENTRY,
                               .txn = 2,
                               .id = PT_INODE_ROOT,
                               .offset = PT_TYPE_FILE,
                               .name = "far",
                               .name_len = 3};
    struct pt_shard_stat st;
    uint64_t near, far, repl = 0;
    open_sm(&s0, "s0", 0);
    open_sm(&s1, "s1", 1);
    far = construct(&s1, 1, 7);
    CHECK_EQ(PT_INODE_SHARD(far), 1);
    add.target = far;
    CHECK_EQ(apply(&s0, 2, &add, NULL), 0);
    near = construct(&s0, 1, 8);
    CHECK_EQ(link_file(&s0, 2, near, 8, PT_INODE_ROOT, "near"), 0);
    CHECK_EQ(rename_in(&s0, 3, PT_INODE_ROOT, "near", "far", &repl), 0);
    CHECK_EQ(repl, far);
    CHECK_EQ(stat_of(&s1, far, &st), 0);
    CHECK_EQ(st.state, PT_FILE_TRANSIENT); /* untouched here: the client retires it on shard 1 */
    pt_shard_sm_close(&s0);
    pt_shard_sm_close(&s1);
}

/* REPLACE_ENTRY: only the entry this transaction locked, naming the expected inode; retried. */
TEST(shard_replace_entry_is_the_locked_swap)
{
    struct pt_shard_sm sm;
    struct pt_shard_req lock = {
        .op = PT_SHARD_LOCK_ENTRY, .txn = 5, .id = PT_INODE_ROOT, .name = "t", .name_len = 1};
    struct pt_shard_req rep = {.op = PT_SHARD_REPLACE_ENTRY,
                               .txn = 5,
                               .id = PT_INODE_ROOT,
                               .offset = PT_TYPE_FILE,
                               .name = "t",
                               .name_len = 1};
    struct pt_shard_stat st;
    uint64_t old, nw, found;
    open_sm(&sm, "s", 0);
    old = construct(&sm, 1, 1);
    nw = construct(&sm, 1, 2);
    CHECK_EQ(link_file(&sm, 2, old, 1, PT_INODE_ROOT, "t"), 0);
    CHECK_EQ(link_file(&sm, 2, nw, 2, PT_INODE_ROOT, "src"), 0);
    rep.target = nw;
    rep.cookie = old;
    CHECK_EQ(apply(&sm, 3, &rep, NULL), -PT_EBUSY); /* not locked by txn 5 */
    CHECK_EQ(apply(&sm, 3, &lock, NULL), 0);
    rep.cookie = nw;
    CHECK_EQ(apply(&sm, 3, &rep, NULL), -PT_ESTALE); /* names another inode */
    rep.cookie = old;
    rep.txn = 6;
    CHECK_EQ(apply(&sm, 3, &rep, NULL), -PT_EBUSY);
    rep.txn = 5;
    CHECK_EQ(apply(&sm, 4, &rep, NULL), 0);
    CHECK_EQ(apply(&sm, 5, &rep, NULL), 0); /* retried */
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "t", &found), 0);
    CHECK_EQ(found, nw);
    /* Unlocked: a plain unlink works again. */
    CHECK_EQ(rename_in(&sm, 6, PT_INODE_ROOT, "t", "t2", NULL), 0);
    CHECK_EQ(stat_of(&sm, nw, &st), 0);
    CHECK_EQ(st.state, PT_FILE_LINKED);
    pt_shard_sm_close(&sm);
}

TEST(shard_readdir_pages_in_hash_order)
{
    struct pt_shard_sm sm;
    struct pt_shard_req rd = {.op = PT_SHARD_READDIR, .id = PT_INODE_ROOT, .max = 7};
    char name[32];
    int seen[100] = {0};
    unsigned i, total = 0, pages = 0;
    uint64_t last_hash = 0;
    open_sm(&sm, "s", 0);
    for (i = 0; i < 100; i++) {
        uint64_t id = construct(&sm, 1, i + 1);
        snprintf(name, sizeof(name), "file-%u", i);
        CHECK_EQ(link_file(&sm, 2, id, i + 1, PT_INODE_ROOT, name), 0);
    }
    for (;;) {
        struct pt_cursor b;
        unsigned n, j;
        struct pt_dirent de;
        CHECK_EQ(query(&sm, &rd, &b), 0);
        n = pt_dec_u16(&b);
        CHECK(n <= 7);
        pages++;
        for (j = 0; j < n; j++) {
            unsigned idx;
            CHECK_OK(pt_shard_reply_dirent(&b, &de));
            CHECK(de.hash >= last_hash);
            last_hash = de.hash;
            CHECK_EQ(sscanf(de.name, "file-%u", &idx), 1);
            CHECK(idx < 100 && !seen[idx]);
            seen[idx] = 1;
            total++;
            rd.offset = de.hash;
            set_name(rd.name, &rd.name_len, de.name);
        }
        if (!pt_dec_u8(&b)) break;
        CHECK(pt_cursor_ok(&b));
    }
    CHECK_EQ(total, 100);
    CHECK_EQ(pages, 15);
    pt_shard_sm_close(&sm);
}

TEST(shard_cdc_halves_are_idempotent)
{
    struct pt_shard_sm s0, s1;
    struct pt_shard_req mk = {.op = PT_SHARD_MAKE_DIR, .txn = 42, .target = PT_INODE_ROOT};
    struct pt_shard_req add = {
        .op = PT_SHARD_ADD_ENTRY, .txn = 42, .id = PT_INODE_ROOT, .offset = PT_TYPE_DIR};
    struct pt_shard_req lock = {.op = PT_SHARD_LOCK_ENTRY, .txn = 43, .id = PT_INODE_ROOT};
    struct pt_shard_req rm = {.op = PT_SHARD_REMOVE_ENTRY, .txn = 43, .id = PT_INODE_ROOT};
    struct pt_shard_req rmdir = {.op = PT_SHARD_REMOVE_DIR, .txn = 43};
    struct pt_shard_req u = {.op = PT_SHARD_UNLINK, .id = PT_INODE_ROOT};
    struct pt_shard_stat st;
    struct pt_cursor b;
    uint64_t d, d2, found;
    open_sm(&s0, "s0", 0);
    open_sm(&s1, "s1", 1);
    CHECK_EQ(apply(&s1, 1, &mk, &b), 0);
    d = pt_dec_u64(&b);
    CHECK_EQ(PT_INODE_SHARD(d), 1);
    CHECK_EQ(apply(&s1, 2, &mk, &b), 0); /* retry: same directory */
    d2 = pt_dec_u64(&b);
    CHECK_EQ(d2, d);
    add.target = d;
    set_name(add.name, &add.name_len, "sub");
    CHECK_EQ(apply(&s0, 3, &add, NULL), 0);
    CHECK_EQ(apply(&s0, 3, &add, NULL), 0); /* retry */
    add.target = d + 1;
    CHECK_EQ(apply(&s0, 3, &add, NULL), -PT_EEXIST);
    CHECK_EQ(lookup(&s0, PT_INODE_ROOT, "sub", &found), 0);
    CHECK_EQ(found, d);
    /* Directories are removed through the CDC, never by unlink. */
    set_name(u.name, &u.name_len, "sub");
    CHECK_EQ(apply(&s0, 4, &u, NULL), -PT_EISDIR);
    /* A locked entry refuses other transactions and plain renames. */
    set_name(lock.name, &lock.name_len, "sub");
    CHECK_EQ(apply(&s0, 5, &lock, &b), 0);
    CHECK_EQ(pt_dec_u64(&b), d);
    CHECK_EQ(pt_dec_u8(&b), PT_TYPE_DIR);
    lock.txn = 44;
    CHECK_EQ(apply(&s0, 5, &lock, NULL), -PT_EBUSY);
    /* The directory on shard 1 is empty: remove it, then the entry. */
    rmdir.id = d;
    CHECK_EQ(apply(&s1, 6, &rmdir, NULL), 0);
    CHECK_EQ(apply(&s1, 6, &rmdir, NULL), 0); /* retry */
    CHECK_EQ(stat_of(&s1, d, &st), -PT_ENOENT);
    rm.target = d;
    set_name(rm.name, &rm.name_len, "sub");
    CHECK_EQ(apply(&s0, 7, &rm, NULL), 0);
    CHECK_EQ(apply(&s0, 7, &rm, NULL), 0); /* retry */
    CHECK_EQ(lookup(&s0, PT_INODE_ROOT, "sub", NULL), -PT_ENOENT);
    pt_shard_sm_close(&s0);
    pt_shard_sm_close(&s1);
}

TEST(shard_remove_dir_refuses_non_empty)
{
    struct pt_shard_sm sm;
    struct pt_shard_req mk = {.op = PT_SHARD_MAKE_DIR, .txn = 1, .target = PT_INODE_ROOT};
    struct pt_shard_req rmdir = {.op = PT_SHARD_REMOVE_DIR, .txn = 2};
    struct pt_cursor b;
    uint64_t d, f;
    open_sm(&sm, "s", 0);
    CHECK_EQ(apply(&sm, 1, &mk, &b), 0);
    d = pt_dec_u64(&b);
    f = construct(&sm, 1, 3);
    CHECK_EQ(link_file(&sm, 2, f, 3, d, "inner"), 0);
    rmdir.id = d;
    CHECK_EQ(apply(&sm, 3, &rmdir, NULL), -PT_ENOTEMPTY);
    rmdir.id = PT_INODE_ROOT;
    CHECK_EQ(apply(&sm, 3, &rmdir, NULL), -PT_EBUSY);
    pt_shard_sm_close(&sm);
}

TEST(shard_malformed_entries_are_refused_without_change)
{
    struct pt_shard_sm sm;
    struct pt_prng g;
    uint8_t entry[256];
    unsigned i;
    struct pt_cursor b;
    uint8_t *snap1, *snap2;
    size_t l1, l2;
    open_sm(&sm, "s", 0);
    CHECK_OK(pt_shard_sm_snapshot(&sm, &snap1, &l1));
    pt_prng_seed(&g, test_seed());
    for (i = 0; i < 2000; i++) {
        size_t len = (size_t)pt_prng_below(&g, sizeof(entry));
        pt_prng_fill(&g, entry, len);
        unsigned j;
        if (len) entry[0] = PT_SHARD_ENTRY_VERSION;
        if (len > 4) pt_put_le16(entry + 2, (uint16_t)pt_prng_below(&g, 4));
        if (len > 16) pt_put_le32(entry + 12, (uint32_t)pt_prng_below(&g, len - 12));
        if (len > 16) entry[16] = (uint8_t)(16 + pt_prng_below(&g, 24));
        CHECK_OK(pt_shard_sm_apply(&sm, entry, len, &out));
        for (j = 0; j < out.count; j++)
            CHECK(pt_shard_reply_open(out.reply[j], out.len[j], &b) <= 0);
    }
    /* Random garbage can still be a well-formed CONSTRUCT or EXPIRE; everything else refused. */
    CHECK_OK(pt_shard_sm_snapshot(&sm, &snap2, &l2));
    CHECK(l2 >= l1);
    free(snap1);
    free(snap2);
    /* Queries with garbage: an error reply, never a crash. */
    for (i = 0; i < 2000; i++) {
        size_t len = (size_t)pt_prng_below(&g, 64);
        pt_prng_fill(&g, entry, len);
        if (len) entry[0] = (uint8_t)(1 + pt_prng_below(&g, 4));
        CHECK_OK(pt_shard_sm_query(&sm, entry, len, reply_buf, sizeof(reply_buf), &reply_len));
    }
    pt_shard_sm_close(&sm);
}

/* The same random operations applied to two stores give identical snapshots. */
TEST(shard_apply_is_deterministic)
{
    struct pt_shard_sm a, b;
    struct pt_prng g;
    uint8_t *sa, *sb;
    size_t la, lb;
    uint64_t files[64];
    unsigned nfiles = 0, i;
    open_sm(&a, "a", 0);
    open_sm(&b, "b", 0);
    pt_prng_seed(&g, test_seed());
    for (i = 0; i < 600; i++) {
        struct pt_shard_req q;
        uint8_t data[64];
        char name[16];
        uint64_t now = 1000 + i * 500;
        unsigned pick = (unsigned)pt_prng_below(&g, 5);
        memset(&q, 0, sizeof(q));
        snprintf(name, sizeof(name), "n%u", (unsigned)pt_prng_below(&g, 40));
        if (pick == 0 || nfiles == 0) {
            q.op = PT_SHARD_CONSTRUCT_FILE;
            q.cookie = pt_prng_next(&g) & 3;
        } else {
            q.id = files[pt_prng_below(&g, nfiles)];
            q.cookie = pt_prng_next(&g) & 3;
            if (pick == 1) {
                q.op = PT_SHARD_ADD_INLINE;
                q.size = q.data_len = 1 + (uint32_t)pt_prng_below(&g, sizeof(data));
                pt_prng_fill(&g, data, q.data_len);
                q.data_ptr = data;
                q.crc = petrel_crc32c(0, data, q.data_len);
                q.offset = pt_prng_below(&g, 2) ? 0 : pt_prng_below(&g, 200);
            } else if (pick == 2) {
                q.op = PT_SHARD_LINK_FILE;
                q.target = PT_INODE_ROOT;
                set_name(q.name, &q.name_len, name);
            } else if (pick == 3) {
                q.op = PT_SHARD_UNLINK;
                q.id = PT_INODE_ROOT;
                set_name(q.name, &q.name_len, name);
            } else {
                q.op = pt_prng_below(&g, 2) ? PT_SHARD_EXPIRE : PT_SHARD_RENAME;
                q.id = PT_INODE_ROOT;
                set_name(q.name, &q.name_len, name);
                snprintf(name, sizeof(name), "n%u", (unsigned)pt_prng_below(&g, 40));
                set_name(q.name2, &q.name2_len, name);
            }
        }
        {
            struct pt_cursor body;
            int sta = apply(&a, now, &q, &body);
            if (q.op == PT_SHARD_CONSTRUCT_FILE && sta == 0 && nfiles < 64)
                files[nfiles++] = pt_dec_u64(&body);
            CHECK_EQ(apply(&b, now, &q, NULL), sta);
        }
    }
    CHECK_OK(pt_shard_sm_snapshot(&a, &sa, &la));
    CHECK_OK(pt_shard_sm_snapshot(&b, &sb, &lb));
    CHECK_EQ(la, lb);
    CHECK_MEM(sa, sb, la);
    /* Restore into a third store: same bytes again. */
    {
        struct pt_shard_sm c;
        uint8_t *sc;
        size_t lc;
        open_sm(&c, "c", 0);
        CHECK_OK(pt_shard_sm_restore(&c, sa, la));
        CHECK_OK(pt_shard_sm_snapshot(&c, &sc, &lc));
        CHECK_EQ(lc, la);
        CHECK_MEM(sc, sa, la);
        sa[la / 2] ^= 1;
        CHECK_EQ(pt_shard_sm_restore(&c, sa, la), -PT_ECORRUPT);
        free(sc);
        pt_shard_sm_close(&c);
    }
    free(sa);
    free(sb);
    pt_shard_sm_close(&a);
    pt_shard_sm_close(&b);
}

/* Several requests in one entry: each gets its own reply, a refusal does not undo the others. */
TEST(shard_batch_entry_replies_in_order)
{
    struct pt_shard_sm sm;
    struct pt_shard_entry_builder b;
    struct pt_shard_req c1 = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = 1};
    struct pt_shard_req bad = {
        .op = PT_SHARD_UNLINK, .id = PT_INODE_ROOT, .name_len = 1, .name = "x"};
    struct pt_shard_req c2 = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = 2};
    struct pt_cursor body;
    uint8_t entry[4096];
    int n;
    unsigned i;
    open_sm(&sm, "s", 0);
    pt_shard_entry_init(&b, entry, sizeof(entry), 5);
    CHECK_OK(pt_shard_entry_add(&b, &c1));
    CHECK_OK(pt_shard_entry_add(&b, &bad));
    CHECK_OK(pt_shard_entry_add(&b, &c2));
    n = pt_shard_entry_finish(&b);
    CHECK_OK(pt_shard_sm_apply(&sm, entry, (size_t)n, &out));
    CHECK_EQ(out.count, 3);
    CHECK_EQ(pt_shard_reply_open(out.reply[0], out.len[0], &body), 0);
    CHECK_EQ(pt_dec_u64(&body), PT_INODE_MAKE(0, 2));
    CHECK_EQ(pt_shard_reply_open(out.reply[1], out.len[1], &body), -PT_ENOENT);
    CHECK_EQ(pt_shard_reply_open(out.reply[2], out.len[2], &body), 0);
    CHECK_EQ(pt_dec_u64(&body), PT_INODE_MAKE(0, 3));
    /* A full batch refuses one more. */
    pt_shard_entry_init(&b, entry, sizeof(entry), 5);
    for (i = 0; i < PT_SHARD_BATCH_MAX; i++)
        CHECK_OK(pt_shard_entry_add(&b, &c1));
    CHECK_EQ(pt_shard_entry_add(&b, &c1), -PT_E2BIG);
    pt_shard_sm_close(&sm);
}

TEST(shard_msgs_roundtrip_and_truncation)
{
    struct pt_shard_req q = {.op = PT_SHARD_ADD_SPAN,
                             .id = 1,
                             .cookie = 2,
                             .offset = 3,
                             .size = 4,
                             .crc = 5,
                             .storage = 1,
                             .data = 1,
                             .parity = 2,
                             .block_size = 4,
                             .n_services = 3,
                             .services = {7, 8, 9}};
    struct pt_shard_req d;
    uint8_t buf[256];
    int n, i;
    n = pt_shard_req_encode(&q, buf, sizeof(buf));
    CHECK_OK(n);
    CHECK_OK(pt_shard_req_decode(&d, buf, (size_t)n));
    CHECK_EQ(d.services[2], 9);
    CHECK_EQ(d.parity, 2);
    for (i = 0; i < n; i++)
        CHECK_EQ(pt_shard_req_decode(&d, buf, (size_t)i), -PT_EPROTO);
    buf[n] = 0;
    CHECK_EQ(pt_shard_req_decode(&d, buf, (size_t)n + 1), -PT_EPROTO); /* trailing byte */
    buf[0] = 99;
    CHECK_EQ(pt_shard_req_decode(&d, buf, (size_t)n), -PT_EPROTO);
    /* Names with '/' or NUL are refused. */
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_LOOKUP;
    q.name_len = 3;
    memcpy(q.name, "a/b", 4);
    n = pt_shard_req_encode(&q, buf, sizeof(buf));
    CHECK_EQ(pt_shard_req_decode(&d, buf, (size_t)n), -PT_EINVAL);
    /* A reply with an impossible status leaves a body that decodes to an error, not garbage. */
    {
        struct pt_cursor body;
        struct pt_shard_stat st;
        struct pt_dirent de;
        pt_put_le32(buf, 7);
        memset(&body, 0xAB, sizeof(body));
        CHECK_EQ(pt_shard_reply_open(buf, 40, &body), -PT_EPROTO);
        CHECK_EQ(pt_shard_reply_stat(&body, &st), -PT_EPROTO);
        CHECK_EQ(pt_shard_reply_dirent(&body, &de), -PT_EPROTO);
        memset(&body, 0xAB, sizeof(body));
        CHECK_EQ(pt_shard_reply_open(buf, 3, &body), -PT_EPROTO);
        CHECK_EQ(pt_shard_reply_stat(&body, &st), -PT_EPROTO);
    }
}

/* A linked inline file named `name` in the root, written by `cookie`. */
static uint64_t linked(struct pt_shard_sm *sm, uint64_t now, uint64_t cookie, const char *name)
{
    uint64_t id = construct(sm, now, cookie);
    CHECK_EQ(add_inline(sm, now, id, cookie, 0, name, (uint32_t)strlen(name)), 0);
    CHECK_EQ(link_file(sm, now, id, cookie, PT_INODE_ROOT, name), 0);
    return id;
}

static int link_replace(struct pt_shard_sm *sm, uint64_t now, uint64_t id, uint64_t cookie,
                        const char *name, uint64_t expect, uint64_t *replaced)
{
    struct pt_shard_req q = {.op = PT_SHARD_LINK_REPLACE,
                             .id = id,
                             .cookie = cookie,
                             .target = PT_INODE_ROOT,
                             .expect = expect};
    struct pt_cursor b;
    int st;
    set_name(q.name, &q.name_len, name);
    st = apply(sm, now, &q, &b);
    if (st == 0 && replaced) *replaced = pt_dec_u64(&b);
    return st;
}

/* Link-if-free: of two writers racing for one new name the second is refused, and neither a
 * refused nor a retried link touches the winner; a retried link after a lost reply succeeds
 * without acting again (also when the name was changed by others in between). */
TEST(shard_link_is_link_if_free_and_retry_safe)
{
    struct pt_shard_sm sm;
    struct pt_shard_req u = {.op = PT_SHARD_UNLINK, .id = PT_INODE_ROOT};
    struct pt_shard_stat st;
    uint64_t a, b, found;
    open_sm(&sm, "s", 0);
    a = construct(&sm, 1, 11);
    b = construct(&sm, 1, 22);
    CHECK_EQ(link_file(&sm, 2, a, 11, PT_INODE_ROOT, "x"), 0);
    CHECK_EQ(link_file(&sm, 3, b, 22, PT_INODE_ROOT, "x"), -PT_EEXIST);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "x", &found), 0);
    CHECK_EQ(found, a);
    CHECK_EQ(stat_of(&sm, b, &st), 0);
    CHECK_EQ(st.state, PT_FILE_TRANSIENT); /* the loser's file stays unlinked, then expires */
    /* The winner's retry (lost reply): 0, nothing changes; a wrong cookie is refused. */
    CHECK_EQ(link_file(&sm, 4, a, 11, PT_INODE_ROOT, "x"), 0);
    CHECK_EQ(link_file(&sm, 4, a, 12, PT_INODE_ROOT, "x"), -PT_ESTALE);
    /* Someone removes x and b takes it; a's late retry must not act on b's file. */
    set_name(u.name, &u.name_len, "x");
    CHECK_EQ(apply(&sm, 5, &u, NULL), 0);
    CHECK_EQ(link_file(&sm, 6, b, 22, PT_INODE_ROOT, "x"), 0);
    CHECK_EQ(link_file(&sm, 7, a, 11, PT_INODE_ROOT, "x"), 0);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "x", &found), 0);
    CHECK_EQ(found, b);
    CHECK_EQ(stat_of(&sm, b, &st), 0);
    CHECK_EQ(st.state, PT_FILE_LINKED);
    pt_shard_sm_close(&sm);
}

/* LINK_REPLACE replaces exactly the inode it names, and nothing else. */
TEST(shard_link_replace_only_the_expected_inode)
{
    struct pt_shard_sm sm;
    struct pt_shard_stat st;
    uint64_t old, other, n1, n2, n3, found, replaced = 0;
    open_sm(&sm, "s", 0);
    old = linked(&sm, 1, 1, "f");
    n1 = construct(&sm, 2, 2);
    n2 = construct(&sm, 2, 3);
    n3 = construct(&sm, 2, 4);
    /* Name free but a replacement expected: what was to be replaced is gone. */
    CHECK_EQ(link_replace(&sm, 3, n1, 2, "g", old, NULL), -PT_ESTALE);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "g", NULL), -PT_ENOENT);
    /* expect 0 is a link-if-free. */
    CHECK_EQ(link_replace(&sm, 3, n1, 2, "f", 0, NULL), -PT_EEXIST);
    /* The right inode: replaced and retired, reply names it. */
    CHECK_EQ(link_replace(&sm, 4, n1, 2, "f", old, &replaced), 0);
    CHECK_EQ(replaced, old);
    CHECK_EQ(stat_of(&sm, old, &st), 0);
    CHECK_EQ(st.state, PT_FILE_UNLINKED);
    /* A second replacer that also saw `old` is refused: n1 stays. */
    CHECK_EQ(link_replace(&sm, 5, n2, 3, "f", old, NULL), -PT_ESTALE);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "f", &found), 0);
    CHECK_EQ(found, n1);
    CHECK_EQ(stat_of(&sm, n2, &st), 0);
    CHECK_EQ(st.state, PT_FILE_TRANSIENT);
    /* n1's retry after a lost reply: 0 with the same answer, n1 still named, no second retire. */
    replaced = 0;
    CHECK_EQ(link_replace(&sm, 6, n1, 2, "f", old, &replaced), 0);
    CHECK_EQ(replaced, old);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "f", &found), 0);
    CHECK_EQ(found, n1);
    /* A directory is never replaced by a file. */
    other = make_dir_named(&sm, &sm, 70, PT_INODE_ROOT, "d");
    CHECK_EQ(link_replace(&sm, 7, n3, 4, "d", other, NULL), -PT_EISDIR);
    pt_shard_sm_close(&sm);
}

/* UNLINK_INODE removes the name only while it holds the expected inode. */
TEST(shard_unlink_inode_leaves_someone_elses_file)
{
    struct pt_shard_sm sm;
    struct pt_shard_req u = {.op = PT_SHARD_UNLINK_INODE, .id = PT_INODE_ROOT};
    struct pt_shard_stat st;
    struct pt_cursor b;
    uint64_t a, c, found;
    open_sm(&sm, "s", 0);
    a = linked(&sm, 1, 1, "f");
    set_name(u.name, &u.name_len, "f");
    u.expect = a + 1;
    CHECK_EQ(apply(&sm, 2, &u, NULL), -PT_ESTALE);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "f", &found), 0);
    CHECK_EQ(found, a);
    u.expect = a;
    CHECK_EQ(apply(&sm, 3, &u, &b), 0);
    CHECK_EQ(pt_dec_u64(&b), a);
    CHECK_EQ(stat_of(&sm, a, &st), 0);
    CHECK_EQ(st.state, PT_FILE_UNLINKED);
    /* Someone else makes f again: a retried unlink of a is refused, c stays. */
    c = linked(&sm, 4, 2, "f");
    CHECK_EQ(apply(&sm, 5, &u, NULL), -PT_ESTALE);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "f", &found), 0);
    CHECK_EQ(found, c);
    set_name(u.name, &u.name_len, "nope");
    CHECK_EQ(apply(&sm, 6, &u, NULL), -PT_ENOENT);
    pt_shard_sm_close(&sm);
}

static int rename_inode(struct pt_shard_sm *sm, uint64_t now, const char *from, uint64_t src,
                        const char *to, uint64_t expect)
{
    struct pt_shard_req r = {
        .op = PT_SHARD_RENAME_INODE, .id = PT_INODE_ROOT, .target = src, .expect = expect};
    set_name(r.name, &r.name_len, from);
    set_name(r.name2, &r.name2_len, to);
    return apply(sm, now, &r, NULL);
}

/* RENAME_INODE moves only the expected source, onto only the expected target (0: free). */
TEST(shard_rename_inode_is_compare_and_set)
{
    struct pt_shard_sm sm;
    struct pt_shard_stat st;
    uint64_t a, b, c, found;
    open_sm(&sm, "s", 0);
    a = linked(&sm, 1, 1, "a");
    b = linked(&sm, 1, 2, "b");
    CHECK_EQ(rename_inode(&sm, 2, "a", b, "n", 0), -PT_ESTALE);   /* a holds another inode */
    CHECK_EQ(rename_inode(&sm, 2, "a", a, "b", 0), -PT_EEXIST);   /* b was to be free */
    CHECK_EQ(rename_inode(&sm, 2, "a", a, "b", a), -PT_ESTALE);   /* b holds another inode */
    CHECK_EQ(rename_inode(&sm, 2, "a", a, "gone", b), -PT_ESTALE); /* the target vanished */
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "a", &found), 0);
    CHECK_EQ(found, a);
    CHECK_EQ(stat_of(&sm, b, &st), 0);
    CHECK_EQ(st.state, PT_FILE_LINKED); /* refusals changed nothing */
    CHECK_EQ(rename_inode(&sm, 3, "a", a, "b", b), 0);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "b", &found), 0);
    CHECK_EQ(found, a);
    CHECK_EQ(stat_of(&sm, b, &st), 0);
    CHECK_EQ(st.state, PT_FILE_UNLINKED);
    /* A retry after a lost reply finds a new "a" made by someone else: left alone. */
    c = linked(&sm, 4, 3, "a");
    CHECK_EQ(rename_inode(&sm, 5, "a", a, "b", b), -PT_ESTALE);
    CHECK_EQ(lookup(&sm, PT_INODE_ROOT, "a", &found), 0);
    CHECK_EQ(found, c);
    CHECK_EQ(rename_inode(&sm, 6, "a", c, "free", 0), 0);
    pt_shard_sm_close(&sm);
}

/* The compare-and-set ops on the wire: expect round-trips, every truncation is refused. */
TEST(shard_msgs_compare_and_set_ops_roundtrip)
{
    static const uint8_t ops[] = {PT_SHARD_LINK_REPLACE, PT_SHARD_UNLINK_INODE,
                                  PT_SHARD_RENAME_INODE};
    struct pt_shard_req q, d;
    uint8_t buf[600];
    size_t k;
    int n, i;
    for (k = 0; k < sizeof(ops); k++) {
        memset(&q, 0, sizeof(q));
        q.op = ops[k];
        q.id = 0x0102030405060708ull;
        q.target = 9;
        q.cookie = 10;
        q.expect = 0xA1A2A3A4A5A6A7A8ull;
        set_name(q.name, &q.name_len, "n");
        set_name(q.name2, &q.name2_len, "m2");
        n = pt_shard_req_encode(&q, buf, sizeof(buf));
        CHECK_OK(n);
        CHECK_OK(pt_shard_req_decode(&d, buf, (size_t)n));
        CHECK_EQ(d.expect, q.expect);
        CHECK_EQ(pt_get_le64(buf + n - 8), q.expect); /* expect is the last field */
        CHECK(pt_shard_op_is_write(q.op));
        for (i = 0; i < n; i++)
            CHECK_EQ(pt_shard_req_decode(&d, buf, (size_t)i), -PT_EPROTO);
    }
    /* The example of PROTOCOL.md 4.1, byte by byte. */
    {
        static const uint8_t want[35] = {0x1C, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                         0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 'f', 5, 0, 0, 0, 0, 0, 0, 0};
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_LINK_REPLACE;
        q.id = 7;
        q.target = PT_INODE_ROOT;
        q.cookie = 0x2A;
        q.expect = 5;
        set_name(q.name, &q.name_len, "f");
        CHECK_EQ(pt_shard_req_encode(&q, buf, sizeof(buf)), 35);
        CHECK(memcmp(buf, want, sizeof(want)) == 0);
    }
}

/* GC: candidates only after the retention period; FORGET_FILE drops spans, index and inode. */
TEST(shard_gc_candidates_and_forget)
{
    struct pt_shard_sm sm;
    struct pt_shard_req q = {.op = PT_SHARD_ADD_SPAN,
                             .cookie = 5,
                             .size = 1 << 20,
                             .crc = 0x1234,
                             .storage = PT_STORAGE_MIRRORED,
                             .data = 1,
                             .parity = 1,
                             .block_size = 1 << 20,
                             .n_services = 2,
                             .services = {11, 12}};
    struct pt_shard_req c = {.op = PT_SHARD_CERTIFY_SPAN, .cookie = 5};
    struct pt_shard_req u = {
        .op = PT_SHARD_UNLINK, .id = PT_INODE_ROOT, .name = "f", .name_len = 1};
    struct pt_shard_req fg = {.op = PT_SHARD_FORGET_FILE};
    struct pt_shard_req ex = {.op = PT_SHARD_EXPIRE};
    struct pt_gc_block *blocks;
    uint8_t proofs[16] = {0};
    uint64_t id, lost, ids[4], cursor = 0;
    size_t n;
    open_sm(&sm, "s", 0);
    sm.retention_ms = 1000;
    id = construct(&sm, 10, 5);
    q.id = c.id = fg.id = id;
    CHECK_EQ(apply(&sm, 11, &q, NULL), 0);
    c.data_len = 16;
    c.data_ptr = proofs;
    CHECK_EQ(apply(&sm, 12, &c, NULL), 0);
    CHECK_EQ(link_file(&sm, 13, id, 5, PT_INODE_ROOT, "f"), 0);
    CHECK_OK(pt_shard_sm_file_blocks(&sm, id, &blocks, &n));
    CHECK_EQ(n, 2);
    CHECK_EQ(blocks[0].service, 11);
    CHECK_EQ(blocks[1].service, 12);
    CHECK_EQ(blocks[1].crc, 0x1234);
    CHECK_EQ(blocks[1].size, 1 << 20);
    free(blocks);
    /* Linked: never a candidate, never forgotten. */
    CHECK_EQ(pt_shard_sm_gc_candidates(&sm, 1u << 30, &cursor, 100, ids, 4), 0);
    CHECK_EQ(apply(&sm, 14, &fg, NULL), -PT_EBUSY);
    CHECK_EQ(apply(&sm, 20, &u, NULL), 0); /* retention until 1020 */
    cursor = 0;
    CHECK_EQ(pt_shard_sm_gc_candidates(&sm, 1019, &cursor, 100, ids, 4), 0);
    cursor = 0;
    CHECK_EQ(pt_shard_sm_gc_candidates(&sm, 1020, &cursor, 100, ids, 4), 1);
    CHECK_EQ(ids[0], id);
    /* A transient file whose writer vanished: expired, then kept for the retention too. */
    lost = construct(&sm, 30, 6);
    ex.id = 0;
    CHECK_EQ(apply(&sm, 30 + PT_SHARD_TRANSIENT_TTL_MS, &ex, NULL), 0);
    cursor = 0;
    CHECK_EQ(
        pt_shard_sm_gc_candidates(&sm, 30 + PT_SHARD_TRANSIENT_TTL_MS + 999, &cursor, 100, ids, 4),
        1);
    cursor = 0;
    CHECK_EQ(
        pt_shard_sm_gc_candidates(&sm, 30 + PT_SHARD_TRANSIENT_TTL_MS + 1000, &cursor, 100, ids, 4),
        2);
    /* The scan budget bounds one look; the cursor carries on. */
    cursor = 0;
    CHECK_EQ(pt_shard_sm_gc_candidates(&sm, 1u << 30, &cursor, 1, ids, 4), 0); /* the root */
    CHECK(cursor != 0);
    /* Forget: spans, block index and inode go; a repeat is a success. */
    CHECK_EQ(apply(&sm, 1030, &fg, NULL), 0);
    CHECK_EQ(apply(&sm, 1031, &fg, NULL), 0);
    CHECK_EQ(stat_of(&sm, id, NULL), -PT_ENOENT);
    CHECK_OK(pt_shard_sm_file_blocks(&sm, id, &blocks, &n));
    CHECK_EQ(n, 0);
    fg.id = lost;
    CHECK_EQ(apply(&sm, 1u << 30, &fg, NULL), 0);
    CHECK_EQ(stat_of(&sm, lost, NULL), -PT_ENOENT);
    fg.id = PT_INODE_ROOT;
    CHECK_EQ(apply(&sm, 1u << 30, &fg, NULL), -PT_EISDIR);
    {
        /* The block index holds nothing of the forgotten file. */
        MDB_txn *t;
        MDB_stat st;
        CHECK_EQ(mdb_txn_begin(sm.env, NULL, MDB_RDONLY, &t), 0);
        CHECK_EQ(mdb_stat(t, sm.blockidx, &st), 0);
        CHECK_EQ(st.ms_entries, 0);
        CHECK_EQ(mdb_stat(t, sm.spans, &st), 0);
        CHECK_EQ(st.ms_entries, 0);
        mdb_txn_abort(t);
    }
    pt_shard_sm_close(&sm);
}

/* GC of dropped spans: their blocks are listed after the retention period, then forgotten. */
TEST(shard_gc_dropped_span_blocks)
{
    struct pt_shard_sm sm, copy;
    struct pt_shard_req q = {.op = PT_SHARD_ADD_SPAN,
                             .cookie = 5,
                             .size = 4096,
                             .crc = 0x77,
                             .storage = PT_STORAGE_MIRRORED,
                             .data = 1,
                             .parity = 1,
                             .block_size = 4096,
                             .n_services = 2,
                             .services = {11, 12}};
    struct pt_shard_req d = {.op = PT_SHARD_DROP_SPAN, .cookie = 5, .offset = 0};
    struct pt_shard_req fg = {.op = PT_SHARD_FORGET_DROPPED};
    struct pt_gc_block b[4];
    uint64_t times[4], id;
    uint8_t data[48], *snap;
    size_t len;
    unsigned i;
    open_sm(&sm, "s", 0);
    sm.retention_ms = 1000;
    id = construct(&sm, 10, 5);
    q.id = d.id = id;
    CHECK_EQ(apply(&sm, 11, &q, NULL), 0);
    CHECK_EQ(pt_shard_sm_gc_dropped(&sm, 1u << 30, b, times, 4), 0);
    CHECK_EQ(apply(&sm, 50, &d, NULL), 0);
    CHECK_EQ(pt_shard_sm_gc_dropped(&sm, 1049, b, times, 4), 0);
    CHECK_EQ(pt_shard_sm_gc_dropped(&sm, 1050, b, times, 4), 2);
    for (i = 0; i < 2; i++) {
        CHECK_EQ(times[i], 50);
        CHECK_EQ(b[i].crc, 0x77);
        CHECK_EQ(b[i].size, 4096);
        pt_put_le64(data + 24 * i, times[i]);
        pt_put_le64(data + 24 * i + 8, b[i].service);
        pt_put_le64(data + 24 * i + 16, b[i].block);
    }
    CHECK(b[0].service != b[1].service);
    /* Kept by a snapshot. */
    CHECK_OK(pt_shard_sm_snapshot(&sm, &snap, &len));
    open_sm(&copy, "copy", 0);
    copy.retention_ms = 1000;
    CHECK_OK(pt_shard_sm_restore(&copy, snap, len));
    CHECK_EQ(pt_shard_sm_gc_dropped(&copy, 1050, b, times, 4), 2);
    free(snap);
    pt_shard_sm_close(&copy);
    /* Forgotten once proven erased; a repeat is a success; malformed lists are refused. */
    fg.data_ptr = data;
    fg.data_len = 47;
    CHECK_EQ(apply(&sm, 1100, &fg, NULL), -PT_EINVAL);
    fg.data_len = 24;
    CHECK_EQ(apply(&sm, 1100, &fg, NULL), 0);
    CHECK_EQ(pt_shard_sm_gc_dropped(&sm, 1100, b, times, 4), 1);
    fg.data_len = 48;
    CHECK_EQ(apply(&sm, 1101, &fg, NULL), 0);
    CHECK_EQ(pt_shard_sm_gc_dropped(&sm, 1u << 30, b, times, 4), 0);
    pt_shard_sm_close(&sm);
}

/* Zero the subdirectory count (bytes 42..45) of every directory record in a snapshot's inodes
 * table and fix its CRC: a snapshot as written before directories counted their subdirs. */
static void snapshot_forget_subdirs(uint8_t *snap, size_t len)
{
    struct pt_cursor c;
    uint64_t count, j;
    pt_cursor_init(&c, snap + 8, len - 12);
    count = pt_dec_u64(&c);
    for (j = 0; j < count; j++) {
        uint32_t kl = pt_dec_u32(&c), vl;
        uint8_t *v;
        CHECK(pt_cursor_take(&c, kl) != NULL);
        vl = pt_dec_u32(&c);
        v = pt_cursor_take(&c, vl);
        CHECK(v != NULL && vl >= 46);
        if (v[0] == PT_TYPE_DIR) memset(v + 42, 0, 4);
    }
    CHECK(pt_cursor_ok(&c));
    pt_put_le32(snap + len - 4, petrel_crc32c(0, snap, len - 4));
}

static uint32_t nlink_of(struct pt_shard_sm *sm, uint64_t id)
{
    struct pt_shard_stat st;
    CHECK_EQ(stat_of(sm, id, &st), 0);
    return st.nlink;
}

/* A directory's link count is 2 + its subdirectories, through every way an entry comes and
 * goes (CDC add/replace/remove, same-directory rename, rename over an empty directory), and
 * survives a snapshot, also one from before the count (recounted at restore). */
TEST(shard_directory_nlink_counts_subdirectories)
{
    struct pt_shard_sm s0, s1, s2;
    struct pt_shard_req lock = {.op = PT_SHARD_LOCK_ENTRY, .txn = 30, .id = PT_INODE_ROOT};
    struct pt_shard_req rep = {
        .op = PT_SHARD_REPLACE_ENTRY, .txn = 30, .id = PT_INODE_ROOT, .offset = PT_TYPE_FILE};
    struct pt_shard_req rm = {.op = PT_SHARD_REMOVE_ENTRY, .txn = 31, .id = PT_INODE_ROOT};
    uint64_t a, b, remote, sub, f, g;
    uint8_t *snap;
    size_t len;
    open_sm(&s0, "s0", 0);
    open_sm(&s1, "s1", 1);
    CHECK_EQ(nlink_of(&s0, PT_INODE_ROOT), 2);
    f = construct(&s0, 1, 1);
    CHECK_EQ(link_file(&s0, 2, f, 1, PT_INODE_ROOT, "f"), 0);
    CHECK_EQ(nlink_of(&s0, PT_INODE_ROOT), 2); /* a file is no subdirectory */
    CHECK_EQ(nlink_of(&s0, f), 1);
    a = make_dir_named(&s0, &s0, 10, PT_INODE_ROOT, "a");
    b = make_dir_named(&s0, &s0, 11, PT_INODE_ROOT, "b");
    remote = make_dir_named(&s1, &s0, 12, PT_INODE_ROOT, "remote"); /* inode on shard 1 */
    sub = make_dir_named(&s0, &s0, 13, a, "sub");
    CHECK_EQ(nlink_of(&s0, PT_INODE_ROOT), 5);
    CHECK_EQ(nlink_of(&s0, a), 3);
    CHECK_EQ(nlink_of(&s0, sub), 2);
    CHECK_EQ(nlink_of(&s1, remote), 2);
    /* Renamed within its directory: still one subdirectory; a retried ADD_ENTRY counts once. */
    CHECK_EQ(rename_in(&s0, 3, PT_INODE_ROOT, "a", "a2", NULL), 0);
    CHECK_EQ(nlink_of(&s0, PT_INODE_ROOT), 5);
    make_dir_named(&s0, &s0, 13, a, "sub");
    CHECK_EQ(nlink_of(&s0, a), 3);
    /* Onto the empty directory b: two subdirectories become one. */
    CHECK_EQ(rename_in(&s0, 4, PT_INODE_ROOT, "a2", "b", NULL), 0);
    CHECK_EQ(nlink_of(&s0, PT_INODE_ROOT), 4);
    CHECK_EQ(stat_of(&s0, b, NULL), -PT_ENOENT);
    /* The CDC's locked swap: the directory entry "remote" now names a file. */
    g = construct(&s0, 5, 2);
    set_name(lock.name, &lock.name_len, "remote");
    CHECK_EQ(apply(&s0, 5, &lock, NULL), 0);
    CHECK_EQ(nlink_of(&s0, PT_INODE_ROOT), 4); /* a lock changes no count */
    rep.target = g;
    rep.cookie = remote;
    set_name(rep.name, &rep.name_len, "remote");
    CHECK_EQ(apply(&s0, 6, &rep, NULL), 0);
    CHECK_EQ(nlink_of(&s0, PT_INODE_ROOT), 3);
    /* The CDC's rmdir half: the entry of sub goes from a. */
    rm.id = a;
    rm.target = sub;
    set_name(rm.name, &rm.name_len, "sub");
    CHECK_EQ(apply(&s0, 7, &rm, NULL), 0);
    CHECK_EQ(apply(&s0, 7, &rm, NULL), 0); /* retry: counted once */
    CHECK_EQ(nlink_of(&s0, a), 2);
    make_dir_named(&s0, &s0, 14, a, "s1");
    make_dir_named(&s0, &s0, 15, a, "s2");
    CHECK_EQ(nlink_of(&s0, a), 4);
    /* A snapshot carries the counts; one without them is recounted at restore. */
    CHECK_OK(pt_shard_sm_snapshot(&s0, &snap, &len));
    open_sm(&s2, "s2", 0);
    CHECK_OK(pt_shard_sm_restore(&s2, snap, len));
    CHECK_EQ(nlink_of(&s2, PT_INODE_ROOT), 3);
    CHECK_EQ(nlink_of(&s2, a), 4);
    snapshot_forget_subdirs(snap, len);
    CHECK_OK(pt_shard_sm_restore(&s2, snap, len));
    CHECK_EQ(nlink_of(&s2, PT_INODE_ROOT), 3);
    CHECK_EQ(nlink_of(&s2, a), 4);
    free(snap);
    pt_shard_sm_close(&s0);
    pt_shard_sm_close(&s1);
    pt_shard_sm_close(&s2);
}
