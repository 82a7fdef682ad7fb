/*
 * Process-level cluster tests on loopback: real registry, shard replicas (Raft on disk), CDC
 * replicas and block services as child processes of the case, driven through the client
 * library. Content is pseudo-random from the case's seed and checked by CRC while streaming.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>

#include "cluster/client/router.h"
#include "cluster/replica/raft_log.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/client.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"
#include "proc_cluster.h"
#include "test.h"

/* A deterministic stream of `size` bytes: position-seeded so reads can be checked. */
struct gen {
    uint64_t seed, size, pos;
};

static uint8_t gen_byte(uint64_t seed, uint64_t pos)
{
    uint64_t x = seed ^ (pos / 8) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return (uint8_t)(x >> (8 * (pos % 8)));
}

static long gen_read(void *ctx, void *buf, size_t cap)
{
    struct gen *g = ctx;
    size_t n = (size_t)PT_MIN((uint64_t)cap, g->size - g->pos), i;
    for (i = 0; i < n; i++)
        ((uint8_t *)buf)[i] = gen_byte(g->seed, g->pos + i);
    g->pos += n;
    return (long)n;
}

struct check {
    uint64_t seed, pos;
    int bad;
};

static int check_write(void *ctx, const void *buf, size_t len)
{
    struct check *k = ctx;
    size_t i;
    for (i = 0; i < len; i++)
        if (((const uint8_t *)buf)[i] != gen_byte(k->seed, k->pos + i)) k->bad = 1;
    k->pos += len;
    return 0;
}

static void write_file(struct petrel_client *cl, const char *path, uint64_t seed, uint64_t size)
{
    struct gen g = {seed, size, 0};
    uint64_t written = 0;
    int rc = petrel_client_write_file(cl, path, gen_read, &g, &written);
    CHECK_MSG(rc == 0, "writing %s: %s", path, petrel_strerror(rc));
    CHECK_EQ(written, size);
}

static void read_check(struct petrel_client *cl, const char *path, uint64_t seed, uint64_t size)
{
    struct check k = {seed, 0, 0};
    struct petrel_stat st;
    uint64_t got = 0;
    int rc;
    rc = petrel_client_stat(cl, path, &st);
    CHECK_MSG(rc == 0, "stat %s: %s", path, petrel_strerror(rc));
    CHECK_EQ(st.size, size);
    CHECK_EQ(st.type, PETREL_TYPE_FILE);
    rc = petrel_client_read(cl, path, 0, UINT64_MAX, check_write, &k, &got);
    CHECK_MSG(rc == 0, "reading %s: %s", path, petrel_strerror(rc));
    CHECK_EQ(got, size);
    CHECK_MSG(!k.bad, "%s: wrong bytes", path);
    /* A range in the middle. */
    if (size > 10) {
        struct check m = {seed, size / 3, 0};
        CHECK_OK(petrel_client_read(cl, path, size / 3, size / 3, check_write, &m, &got));
        CHECK_EQ(got, size / 3);
        CHECK(!m.bad);
    }
}

static int collect(void *ctx, const struct petrel_dirent *e)
{
    char *names = ctx;
    strcat(names, e->name);
    strcat(names, ",");
    return 0;
}

static const uint64_t sizes[] = {0, 1, 4095, 4096, 4097, 20u << 20};

TEST_T(cluster_single_shard_write_read_rename_delete, 240)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    char path[64], names[1024] = "";
    unsigned i;
    pc_start(&c, 1, 3, 3, 0);
    cl = pc_client(&c, 20000);
    for (i = 0; i < PT_ARRAY_SIZE(sizes); i++) {
        uint64_t size = test_sanitized() && sizes[i] > (1u << 20) ? (3u << 20) : sizes[i];
        snprintf(path, sizeof(path), "/f%u", i);
        write_file(cl, path, test_seed() + i, size);
        read_check(cl, path, test_seed() + i, size);
        test_log("wrote and read back %s (%llu bytes)", path, (unsigned long long)size);
    }
    CHECK_EQ(petrel_client_write_file(cl, "/f1", gen_read, &(struct gen){1, 1, 0}, NULL),
             -PT_EEXIST);
    CHECK_OK(petrel_client_list(cl, "/", collect, names));
    for (i = 0; i < PT_ARRAY_SIZE(sizes); i++) {
        snprintf(path, sizeof(path), "f%u,", i);
        CHECK_MSG(strstr(names, path), "listing '%s' lacks %s", names, path);
    }
    CHECK_OK(petrel_client_rename(cl, "/f2", "/renamed"));
    CHECK_EQ(petrel_client_read(cl, "/f2", 0, 1, check_write, &(struct check){0, 0, 0}, NULL),
             -PT_ENOENT);
    read_check(cl, "/renamed", test_seed() + 2, 4095);
    CHECK_OK(petrel_client_unlink(cl, "/renamed"));
    CHECK_EQ(petrel_client_unlink(cl, "/renamed"), -PT_ENOENT);
    {
        struct petrel_stat st;
        CHECK_EQ(petrel_client_stat(cl, "/renamed", &st), -PT_ENOENT);
    }
    petrel_client_close(cl);
    pc_stop(&c);
}

/* The state of a file inode, asked of its own shard. */
static int file_state(struct pc_cluster *c, uint64_t id)
{
    struct pt_router r;
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_cursor body;
    struct pt_shard_stat fs;
    int rc;
    pt_router_init(&r, c->registry, 10000, 2000, 1);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_STAT;
    q.id = id;
    rc = pt_router_shard(&r, PT_INODE_SHARD(id), &q, &rep, NULL);
    if (rc == 0) {
        pt_cursor_init(&body, rep.body, rep.body_len);
        rc = pt_shard_reply_stat(&body, &fs);
    }
    pt_reply_free(&rep);
    return rc ? rc : fs.state;
}

/* rename(2) replacement rules, across directories (CDC) and within one (shard). */
static void rename_replacements(struct pc_cluster *c, struct petrel_client *cl)
{
    struct petrel_stat st, a, b, old;
    /* Kinds must match; refused renames change nothing. */
    CHECK_EQ(petrel_client_rename(cl, "/d6/file", "/d7"), -PT_EISDIR);
    CHECK_EQ(petrel_client_rename(cl, "/d6", "/d7/file"), -PT_ENOTDIR);
    read_check(cl, "/d6/file", 106, 5006);
    read_check(cl, "/d7/file", 107, 5007);
    /* Onto itself: nothing to do. */
    CHECK_OK(petrel_client_rename(cl, "/d6/file", "/d6/file"));
    CHECK_OK(petrel_client_rename(cl, "/d6", "/d6"));
    read_check(cl, "/d6/file", 106, 5006);
    /* A directory replaces only an empty directory. */
    CHECK_OK(petrel_client_mkdir(cl, "/d6/full"));
    CHECK_OK(petrel_client_mkdir(cl, "/d6/full/x"));
    CHECK_EQ(petrel_client_rename(cl, "/d7", "/d6/full"), -PT_ENOTEMPTY);
    CHECK_OK(petrel_client_stat(cl, "/d6/full/x", &st));
    read_check(cl, "/d7/file", 107, 5007);
    CHECK_OK(petrel_client_mkdir(cl, "/d6/empty"));
    CHECK_OK(petrel_client_stat(cl, "/d6/empty", &old));
    CHECK_OK(petrel_client_stat(cl, "/d7", &a));
    CHECK_OK(petrel_client_rename(cl, "/d7", "/d6/empty"));
    CHECK_OK(petrel_client_stat(cl, "/d6/empty", &st));
    CHECK_EQ(st.id, a.id);
    read_check(cl, "/d6/empty/file", 107, 5007);
    CHECK_EQ(petrel_client_stat(cl, "/d7", &st), -PT_ENOENT);
    CHECK_EQ(file_state(c, old.id), -PT_ENOENT); /* the replaced directory is gone */
    /* Same directory, the target an empty directory of another shard: done by the CDC. */
    CHECK_OK(petrel_client_mkdir(cl, "/e1"));
    CHECK_OK(petrel_client_mkdir(cl, "/e2"));
    CHECK_OK(petrel_client_stat(cl, "/e1", &a));
    CHECK_OK(petrel_client_stat(cl, "/e2", &b));
    CHECK(PT_INODE_SHARD(a.id) != PT_INODE_SHARD(b.id)); /* mkdir places round-robin */
    {
        const char *src = PT_INODE_SHARD(b.id) ? "/e1" : "/e2";
        const char *dst = PT_INODE_SHARD(b.id) ? "/e2" : "/e1";
        uint64_t moved = PT_INODE_SHARD(b.id) ? a.id : b.id;
        uint64_t gone = PT_INODE_SHARD(b.id) ? b.id : a.id;
        CHECK_OK(petrel_client_rename(cl, src, dst));
        CHECK_OK(petrel_client_stat(cl, dst, &st));
        CHECK_EQ(st.id, moved);
        CHECK_EQ(petrel_client_stat(cl, src, &st), -PT_ENOENT);
        CHECK_EQ(file_state(c, gone), -PT_ENOENT);
    }
    /* Same directory, the replaced file's inode on another shard: retired there. */
    CHECK_OK(petrel_client_rename(cl, "/d4/file", "/d5/far"));
    CHECK_OK(petrel_client_stat(cl, "/d5/far", &old));
    write_file(cl, "/d5/near", 55, 3000);
    CHECK_OK(petrel_client_rename(cl, "/d5/near", "/d5/far"));
    read_check(cl, "/d5/far", 55, 3000);
    CHECK_EQ(petrel_client_stat(cl, "/d5/near", &st), -PT_ENOENT);
    CHECK_EQ(file_state(c, old.id), PT_FILE_UNLINKED);
}

/* The link count STAT reports for path. */
static uint32_t nlink_at(struct petrel_client *cl, const char *path)
{
    struct petrel_stat st;
    CHECK_MSG(petrel_client_stat(cl, path, &st) == 0, "stat %s", path);
    return st.nlink;
}

TEST_T(cluster_directories_across_shards_and_cdc_renames, 240)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct petrel_stat st;
    char path[64];
    unsigned i, on_shard[2] = {0, 0};
    pc_start(&c, 2, 3, 3, 1);
    cl = pc_client(&c, 20000);
    for (i = 0; i < 8; i++) {
        snprintf(path, sizeof(path), "/d%u", i);
        CHECK_MSG(petrel_client_mkdir(cl, path) == 0, "mkdir %s", path);
        CHECK_OK(petrel_client_stat(cl, path, &st));
        CHECK_EQ(st.type, PETREL_TYPE_DIR);
        on_shard[st.id >> 56]++;
    }
    test_log("directories on shard 0: %u, shard 1: %u", on_shard[0], on_shard[1]);
    CHECK(on_shard[0] > 0 && on_shard[1] > 0);
    CHECK_EQ(petrel_client_mkdir(cl, "/d0"), -PT_EEXIST);
    CHECK_OK(petrel_client_mkdir(cl, "/d0/sub"));
    CHECK_OK(petrel_client_mkdir(cl, "/d0/sub/deeper"));
    /* Link counts: 2 + subdirectories, whatever shard holds each directory. */
    CHECK_EQ(nlink_at(cl, "/"), 10);
    CHECK_EQ(nlink_at(cl, "/d0"), 3);
    CHECK_EQ(nlink_at(cl, "/d0/sub"), 3);
    CHECK_EQ(nlink_at(cl, "/d0/sub/deeper"), 2);
    /* Files in directories of both shards. */
    for (i = 0; i < 8; i++) {
        snprintf(path, sizeof(path), "/d%u/file", i);
        write_file(cl, path, 100 + i, 5000 + i);
        read_check(cl, path, 100 + i, 5000 + i);
    }
    /* A file moves across directories (and shards). */
    CHECK_OK(petrel_client_rename(cl, "/d1/file", "/d2/moved"));
    read_check(cl, "/d2/moved", 101, 5001);
    CHECK_EQ(petrel_client_stat(cl, "/d1/file", &st), -PT_ENOENT);
    /* Onto an existing file: replaced, and the replaced inode (on d1's shard) is retired. */
    {
        struct petrel_stat old;
        CHECK_OK(petrel_client_stat(cl, "/d2/moved", &old));
        CHECK_OK(petrel_client_rename(cl, "/d3/file", "/d2/moved"));
        read_check(cl, "/d2/moved", 103, 5003);
        CHECK_EQ(petrel_client_stat(cl, "/d3/file", &st), -PT_ENOENT);
        CHECK_EQ(file_state(&c, old.id), PT_FILE_UNLINKED);
    }
    /* A directory moves; moving it under itself is refused. */
    CHECK_OK(petrel_client_rename(cl, "/d0/sub", "/d4/sub"));
    CHECK_EQ(nlink_at(cl, "/d0"), 2); /* the CDC's rename moved the count */
    CHECK_EQ(nlink_at(cl, "/d4"), 3);
    CHECK_EQ(nlink_at(cl, "/"), 10);
    CHECK_EQ(nlink_at(cl, "/d4/file"), 1);
    CHECK_OK(petrel_client_stat(cl, "/d4/sub/deeper", &st));
    CHECK_EQ(petrel_client_rename(cl, "/d4", "/d4/sub/deeper/loop"), -PT_ELOOP);
    CHECK_OK(petrel_client_stat(cl, "/d4/sub", &st));
    CHECK_EQ(petrel_client_rename(cl, "/d5", "/d5/x"), -PT_ELOOP);
    /* rmdir: only empty directories. */
    CHECK_EQ(petrel_client_rmdir(cl, "/d4/sub"), -PT_ENOTEMPTY);
    CHECK_OK(petrel_client_rmdir(cl, "/d4/sub/deeper"));
    CHECK_OK(petrel_client_rmdir(cl, "/d4/sub"));
    CHECK_EQ(petrel_client_stat(cl, "/d4/sub", &st), -PT_ENOENT);
    CHECK_EQ(nlink_at(cl, "/d4"), 2);
    CHECK_EQ(petrel_client_rmdir(cl, "/d2/moved"), -PT_ENOTDIR);
    read_check(cl, "/d2/moved", 103, 5003);
    /* Unlinked in a directory of another shard than its inode: retired on its own shard. */
    {
        struct pt_router r;
        struct pt_shard_req q;
        struct pt_reply rep;
        struct pt_cursor body;
        struct pt_shard_stat fs;
        CHECK_OK(petrel_client_stat(cl, "/d2/moved", &st));
        CHECK_OK(petrel_client_unlink(cl, "/d2/moved"));
        pt_router_init(&r, c.registry, 10000, 2000, 1);
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_STAT;
        q.id = st.id;
        CHECK_OK(pt_router_shard(&r, PT_INODE_SHARD(st.id), &q, &rep, NULL));
        pt_cursor_init(&body, rep.body, rep.body_len);
        CHECK_OK(pt_shard_reply_stat(&body, &fs));
        CHECK_EQ(fs.state, PT_FILE_UNLINKED);
        pt_reply_free(&rep);
    }
    rename_replacements(&c, cl);
    petrel_client_close(cl);
    pc_stop(&c);
}

/* ---- failures -------------------------------------------------------------------------------- */

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "cluster/client/blocks_client.h"

/* A stream that kills the shard leader once it has handed out `at` bytes. */
struct killing_gen {
    struct gen g;
    struct pc_cluster *c;
    uint64_t at;
    uint64_t killed_ms, resumed_ms;
    char victim[32];
};

static long killing_read(void *ctx, void *buf, size_t cap)
{
    struct killing_gen *k = ctx;
    if (!k->killed_ms && k->g.pos >= k->at) {
        unsigned leader;
        CHECK_OK(pc_shard_leader(k->c, 0, &leader));
        snprintf(k->victim, sizeof(k->victim), "shard-0-%u", leader);
        pc_kill(k->c, k->victim, SIGKILL);
        k->killed_ms = pc_now_ms();
    }
    return gen_read(&k->g, buf, cap);
}

struct file_rec {
    char path[64];
    uint64_t seed, size;
};

static void read_all(struct petrel_client *cl, const struct file_rec *f, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++)
        read_check(cl, f[i].path, f[i].seed, f[i].size);
}

/* Flip the last byte (inside the data pages) of every block file under dir. */
static unsigned flip_blocks(const char *dir)
{
    char sub[800], file[1200];
    unsigned n = 0, i;
    for (i = 0; i < 256; i++) {
        DIR *d;
        struct dirent *e;
        snprintf(sub, sizeof(sub), "%s/blocks/%02x", dir, i);
        d = opendir(sub);
        if (!d) continue;
        while ((e = readdir(d)) != NULL) {
            int fd;
            off_t end;
            uint8_t b;
            if (!strstr(e->d_name, ".blk")) continue;
            snprintf(file, sizeof(file), "%s/%s", sub, e->d_name);
            fd = open(file, O_RDWR);
            CHECK(fd >= 0);
            end = lseek(fd, 0, SEEK_END);
            CHECK(pread(fd, &b, 1, end - 1) == 1);
            b ^= 0x40;
            CHECK(pwrite(fd, &b, 1, end - 1) == 1);
            close(fd);
            n++;
        }
        closedir(d);
    }
    return n;
}

TEST_T(cluster_survives_leader_kill_block_loss_bit_rot_and_restart, 300)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct file_rec files[16];
    unsigned n = 0, i, flipped;
    uint64_t big = test_sanitized() ? (6u << 20) : (20u << 20);
    uint64_t restart_ms;
    char dir[700];
    pc_start(&c, 2, 3, 3, 1);
    cl = pc_client(&c, 30000);
    CHECK_OK(petrel_client_mkdir(cl, "/data"));
    for (i = 0; i < PT_ARRAY_SIZE(sizes); i++) {
        struct file_rec *f = &files[n++];
        snprintf(f->path, sizeof(f->path), "/data/f%u", i);
        f->seed = 1000 + i;
        f->size = sizes[i] > (1u << 20) ? big : sizes[i];
        write_file(cl, f->path, f->seed, f->size);
    }
    /* kill -9 the leader of shard 0 in the middle of a multi-span write into the root. */
    {
        struct killing_gen k;
        struct file_rec *f = &files[n++];
        uint64_t written = 0;
        memset(&k, 0, sizeof(k));
        snprintf(f->path, sizeof(f->path), "/during-failover");
        f->seed = 77;
        f->size = big;
        k.g.seed = f->seed;
        k.g.size = f->size;
        k.c = &c;
        k.at = f->size / 2;
        CHECK_OK(petrel_client_write_file(cl, f->path, killing_read, &k, &written));
        k.resumed_ms = pc_now_ms();
        CHECK_EQ(written, f->size);
        CHECK(k.killed_ms);
        /* The kill came before the last span's ADD_SPAN: those and the link went to the new
         * leader. */
        printf("failover: killed %s mid-write; the rest of the write (last span(s) and the link)"
               " finished %llu ms later\n",
               k.victim, (unsigned long long)(k.resumed_ms - k.killed_ms));
        read_all(cl, files, n); /* nothing acknowledged was lost */
        pc_restart_one(&c, k.victim);
    }
    /* kill -9 the CDC leader: directory operations go on with the new one. */
    {
        unsigned leader;
        char victim[32];
        uint64_t t0;
        struct petrel_stat st;
        CHECK_OK(pc_group_leader(&c, -1, &leader));
        snprintf(victim, sizeof(victim), "cdc-%u", leader);
        pc_kill(&c, victim, SIGKILL);
        t0 = pc_now_ms();
        CHECK_OK(petrel_client_mkdir(cl, "/after-cdc-failover"));
        CHECK_OK(petrel_client_rename(cl, "/data/f1", "/after-cdc-failover/f1"));
        snprintf(files[1].path, sizeof(files[1].path), "/after-cdc-failover/f1");
        CHECK_OK(petrel_client_stat(cl, "/after-cdc-failover/f1", &st));
        printf("CDC failover: killed %s; mkdir and rename done %llu ms later\n", victim,
               (unsigned long long)(pc_now_ms() - t0));
        pc_restart_one(&c, victim);
    }
    /* A dead block service: every file is still readable from the other copy. */
    pc_kill(&c, "blocks-0", SIGKILL);
    {
        /* Written at once, before the registry calls the dead service stale: spans placed on
         * it are dropped and placed again on live services. */
        struct file_rec *f = &files[n++];
        snprintf(f->path, sizeof(f->path), "/data/while-blocks-0-down");
        f->seed = 4242;
        f->size = test_sanitized() ? (5u << 20) : (13u << 20);
        write_file(cl, f->path, f->seed, f->size);
    }
    read_all(cl, files, n);
    printf("block service down: read back %u files\n", n);
    pc_restart_one(&c, "blocks-0");
    /* Bit rot on another service: detected by the page CRCs, served from the other copy. */
    snprintf(dir, sizeof(dir), "%s/blocks-1", c.root);
    flipped = flip_blocks(dir);
    CHECK(flipped > 0);
    /* The service itself refuses every rotten block it is asked for. */
    {
        struct pt_reg_blocks *v = NULL;
        size_t nb = 0, j, k, nblk = 0;
        int more = 0;
        unsigned refused = 0;
        CHECK_OK(pt_reg_list_blocks(c.registry, &v, &nb, NULL));
        for (j = 0; j < nb; j++) {
            struct pt_block_stat *blk = NULL;
            if (strcmp(v[j].failure_domain, "rack1") != 0) continue;
            CHECK_OK(pt_blocks_list(v[j].addr, 0, 1000, &blk, &nblk, &more, NULL));
            for (k = 0; k < nblk; k++) {
                uint8_t byte;
                uint32_t got;
                int rc = pt_blocks_read(v[j].addr, blk[k].block_id, blk[k].size - 1, 1, &byte, &got,
                                        NULL, NULL);
                CHECK_MSG(rc == -PT_ECORRUPT, "rotten block %llx read: %s",
                          (unsigned long long)blk[k].block_id, petrel_strerror(rc));
                refused++;
            }
            free(blk);
        }
        free(v);
        CHECK_EQ(refused, flipped);
    }
    read_all(cl, files, n);
    printf("bit rot: flipped a byte in %u blocks of one service, read back %u files intact\n",
           flipped, n);
    /* Restart everything on new ports; the registry forgets the old ones. */
    {
        uint64_t t0 = pc_now_ms();
        pc_restart_all(&c, 1);
        pc_wait_serving(&c, PC_WAIT_MS);
        restart_ms = pc_now_ms() - t0;
        petrel_client_close(cl);
        cl = pc_client(&c, 30000);
        read_all(cl, files, n);
        printf("full restart on new dynamic ports: serving again after %llu ms\n",
               (unsigned long long)restart_ms);
    }
    petrel_client_close(cl);
    pc_stop(&c);
}

/* ---- malformed input ------------------------------------------------------------------------ */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "cluster/net/net.h"
#include "cluster/proto/cdc_msgs.h"
#include "cluster/proto/shard_msgs.h"
#include "cluster/replica/node.h"
#include "cluster/shard/shard_server.h"

/* Raw junk on a TCP connection: the server answers with an error frame or closes; never hangs. */
static void send_junk(const char *addr, struct pt_prng *g)
{
    struct sockaddr_in sa;
    char host[64];
    unsigned port;
    uint8_t junk[512], buf[4096];
    int fd;
    struct timeval tv = {3, 0};
    CHECK_EQ(sscanf(addr, "%63[^:]:%u", host, &port), 2);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    CHECK_EQ(inet_pton(AF_INET, host, &sa.sin_addr), 1);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    CHECK_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    pt_prng_fill(g, junk, sizeof(junk));
    CHECK(send(fd, junk, sizeof(junk), MSG_NOSIGNAL) > 0);
    /* Read until the server closes (it must, after a framing error). */
    while (recv(fd, buf, sizeof(buf), 0) > 0) {
    }
    close(fd);
}

static void garbage_calls(const char *addr, uint16_t kind, struct pt_prng *g, unsigned rounds)
{
    struct pt_conn *conn;
    unsigned i;
    CHECK_OK(pt_conn_open(addr, 2000, 0, &conn));
    for (i = 0; i < rounds; i++) {
        uint8_t body[300];
        struct pt_reply rep;
        size_t len = (size_t)pt_prng_below(g, sizeof(body));
        int rc;
        pt_prng_fill(g, body, len);
        /* Mostly ops that do not exist or are truncated; a few queries with random fields. */
        if (len && kind == PT_MSG_SHARD_REQ)
            body[0] = (uint8_t)(pt_prng_below(g, 2) ? 40 + pt_prng_below(g, 200)
                                                    : 1 + pt_prng_below(g, 4));
        rc = pt_conn_call(conn, kind, body, (uint32_t)len, 3000, &rep);
        CHECK_MSG(rc == 0 || rep.remote, "server %s did not answer garbage of kind %#x: %s", addr,
                  kind, petrel_strerror(rc));
        pt_reply_free(&rep);
    }
    pt_conn_close(conn);
}

TEST_T(cluster_malformed_messages_get_errors_not_crashes, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct pt_reg_replica *v = NULL;
    size_t n = 0, i;
    struct pt_prng g;
    unsigned rounds = test_sanitized() ? 50 : 300;
    pc_start(&c, 1, 3, 3, 1);
    pt_prng_seed(&g, test_seed());
    CHECK_OK(pt_reg_list_shards(c.registry, 0, &v, &n, NULL));
    CHECK_EQ(n, 3);
    for (i = 0; i < n; i++) {
        send_junk(v[i].addr, &g);
        garbage_calls(v[i].addr, PT_MSG_SHARD_REQ, &g, rounds);
        garbage_calls(v[i].addr, 0x03ff, &g, 10);           /* unknown kind */
        garbage_calls(v[i].addr, PT_MSG_CDC_REQ, &g, 10);   /* wrong service */
        garbage_calls(v[i].addr, PT_MSG_NODE_INFO, &g, 10); /* extra bytes are ignored */
    }
    free(v);
    CHECK_OK(pt_reg_list_cdc(c.registry, &v, &n, NULL));
    CHECK_EQ(n, 3);
    for (i = 0; i < n; i++) {
        send_junk(v[i].addr, &g);
        garbage_calls(v[i].addr, PT_MSG_CDC_REQ, &g, rounds);
        garbage_calls(v[i].addr, PT_MSG_SHARD_REQ, &g, 10);
    }
    free(v);
    /* Everyone is still alive and the cluster still works. */
    for (i = 0; i < c.nprocs; i++) {
        int st;
        CHECK_MSG(waitpid(c.procs[i].pid, &st, WNOHANG) == 0, "%s died", c.procs[i].name);
    }
    cl = pc_client(&c, 20000);
    CHECK_OK(petrel_client_mkdir(cl, "/after"));
    write_file(cl, "/after/file", 5, 10000);
    read_check(cl, "/after/file", 5, 10000);
    petrel_client_close(cl);
    pc_stop(&c);
}

/* ---- concurrency ------------------------------------------------------------------------------
 */

#include <pthread.h>

struct writer_arg {
    struct pc_cluster *c;
    unsigned id, files;
    int rc;
};

static void *writer_thread(void *p)
{
    struct writer_arg *a = p;
    struct petrel_client *cl = pc_client(a->c, 20000);
    unsigned i;
    char path[64];
    for (i = 0; i < a->files && a->rc == 0; i++) {
        struct gen g = {a->id * 1000 + i, 100 + i, 0};
        snprintf(path, sizeof(path), "/w%u-%u", a->id, i);
        a->rc = petrel_client_write_file(cl, path, gen_read, &g, NULL);
    }
    petrel_client_close(cl);
    return NULL;
}

/*
 * Many clients at once: their requests share log entries (group commit; with 8 writers we saw
 * entries of up to 8 requests) and every reply reaches the right client.
 */
TEST_T(cluster_concurrent_writers_share_commits, 120)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    pthread_t th[8];
    struct writer_arg args[8];
    unsigned i, j, files = test_sanitized() ? 5 : 20;
    char path[64];
    pc_start(&c, 1, 3, 3, 0);
    for (i = 0; i < 8; i++) {
        args[i].c = &c;
        args[i].id = i;
        args[i].files = files;
        args[i].rc = 0;
        CHECK_EQ(pthread_create(&th[i], NULL, writer_thread, &args[i]), 0);
    }
    for (i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(args[i].rc == 0, "writer %u: %s", i, petrel_strerror(args[i].rc));
    }
    cl = pc_client(&c, 20000);
    for (i = 0; i < 8; i++)
        for (j = 0; j < files; j++) {
            snprintf(path, sizeof(path), "/w%u-%u", i, j);
            read_check(cl, path, i * 1000 + j, 100 + j);
        }
    petrel_client_close(cl);
    pc_stop(&c);
}

/* Racers for one name: each writes its own bytes; all of them pass the client's early check
 * and construct their file before any of them links (a barrier in the first read), so the
 * shard's link-if-free / replace-only-that-inode decides every round. */
struct racer {
    struct pc_cluster *c;
    pthread_barrier_t *gate;
    const char *path;
    uint64_t seed, size, replaces;
    int waited, rc;
};

struct racer_stream {
    struct racer *r;
    struct gen g;
};

static long racer_stream_read(void *ctx, void *buf, size_t cap)
{
    struct racer_stream *s = ctx;
    if (!s->r->waited) {
        s->r->waited = 1;
        pthread_barrier_wait(s->r->gate);
    }
    return gen_read(&s->g, buf, cap);
}

static void *racer_thread(void *p)
{
    struct racer *r = p;
    struct petrel_client *cl = pc_client(r->c, 20000);
    struct racer_stream s = {r, {r->seed, r->size, 0}};
    r->rc = petrel_client_replace_file(cl, r->path, r->replaces, racer_stream_read, &s, NULL);
    if (!r->waited) pthread_barrier_wait(r->gate); /* refused before reading: still meet */
    petrel_client_close(cl);
    return NULL;
}

/* N racers on one name; returns the index of the only one that succeeded (checks the rest). */
static unsigned race(struct pc_cluster *c, const char *path, unsigned round, uint64_t replaces,
                     int loser_rc)
{
    enum { N = 4 };
    pthread_t th[N];
    struct racer r[N];
    pthread_barrier_t gate;
    unsigned i, winner = N, wins = 0;
    CHECK_EQ(pthread_barrier_init(&gate, NULL, N), 0);
    for (i = 0; i < N; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].c = c;
        r[i].gate = &gate;
        r[i].path = path;
        r[i].seed = round * 100 + i + 1;
        r[i].size = (round + i) % 2 ? 5000 : 100; /* in blocks, or inline */
        r[i].replaces = replaces;
        CHECK_EQ(pthread_create(&th[i], NULL, racer_thread, &r[i]), 0);
    }
    for (i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&gate);
    for (i = 0; i < N; i++) {
        if (r[i].rc == 0) {
            winner = i;
            wins++;
        } else {
            CHECK_MSG(r[i].rc == loser_rc, "round %u racer %u: %s, wanted %s", round, i,
                      petrel_strerror(r[i].rc), petrel_strerror(loser_rc));
        }
    }
    CHECK_MSG(wins == 1, "round %u: %u racers succeeded", round, wins);
    {
        struct petrel_client *cl = pc_client(c, 20000);
        read_check(cl, path, r[winner].seed, r[winner].size);
        petrel_client_close(cl);
    }
    return winner;
}

/*
 * Issue 10: racing creators of one new name through the client library. Every round exactly
 * one create succeeds and its bytes are stored; the others get PT_EEXIST and leave nothing.
 * Racing replacers of one file (each expecting the same inode): exactly one replaces it, the
 * others get PT_ESTALE. An unlink naming an inode the name no longer holds is refused and
 * leaves the current file.
 */
TEST_T(cluster_racing_creators_and_replacers_lose_nothing, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct petrel_stat st, now;
    unsigned round, rounds = test_sanitized() ? 3 : 8;
    char path[64], names[4096] = "";
    pc_start(&c, 1, 1, 3, 0);
    cl = pc_client(&c, 20000);
    for (round = 0; round < rounds; round++) {
        snprintf(path, sizeof(path), "/new-%u", round);
        race(&c, path, round, 0, -PT_EEXIST);
    }
    for (round = 0; round < rounds; round++) {
        snprintf(path, sizeof(path), "/new-%u", round);
        CHECK_OK(petrel_client_stat(cl, path, &st));
        race(&c, path, rounds + round, st.id, -PT_ESTALE);
        CHECK_OK(petrel_client_stat(cl, path, &now));
        CHECK(now.id != st.id);
        /* The old inode is gone from the name: an unlink that names it leaves the new file. */
        CHECK_EQ(petrel_client_unlink_inode(cl, path, st.id), -PT_ESTALE);
        CHECK_OK(petrel_client_stat(cl, path, &st));
        CHECK_EQ(st.id, now.id);
    }
    CHECK_EQ(petrel_client_unlink_inode(cl, "/new-0", 0), -PT_EINVAL);
    /* rename that never replaces: refused onto an existing name, done onto a free one. */
    CHECK_OK(petrel_client_stat(cl, "/new-0", &st));
    CHECK_EQ(petrel_client_rename_noreplace(cl, "/new-0", "/new-1"), -PT_EEXIST);
    CHECK_OK(petrel_client_rename_noreplace(cl, "/new-0", "/moved"));
    CHECK_OK(petrel_client_rename_noreplace(cl, "/moved", "/new-0"));
    CHECK_OK(petrel_client_stat(cl, "/new-0", &now));
    CHECK_EQ(now.id, st.id);
    /* Only the rounds' names are listed: no loser left a name behind. */
    CHECK_OK(petrel_client_list(cl, "/", collect, names));
    for (round = 0; round < rounds; round++) {
        snprintf(path, sizeof(path), "new-%u,", round);
        CHECK_MSG(strstr(names, path) != NULL, "%s missing from %s", path, names);
    }
    CHECK_EQ(strlen(names), (size_t)rounds * 6); /* "new-N," each */
    petrel_client_close(cl);
    pc_stop(&c);
}

static int read_whole(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    *len = fread(buf, 1, cap, f);
    fclose(f);
    return 0;
}

/*
 * What a replica's Raft directory shows: the newest snapshot's index (0: none), whether its
 * data is a reference whose data file exists with the length it names (1) or an image (0),
 * and the first index of its oldest log segment.
 */
struct raft_dir_view {
    uint64_t snap, first;
    int streamed;
};

static void raft_dir_look(const char *raft_dir, struct raft_dir_view *v)
{
    static uint8_t buf[1 << 16];
    char path[1200], best[256] = "";
    struct dirent *e;
    DIR *d = opendir(raft_dir);
    size_t len;
    memset(v, 0, sizeof(*v));
    v->first = UINT64_MAX;
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        uint64_t seq, first;
        if (!strncmp(e->d_name, "snap-", 5) && strlen(e->d_name) == 25 &&
            strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof(best), "%s", e->d_name);
        snprintf(path, sizeof(path), "%s/%s", raft_dir, e->d_name);
        if (!strncmp(e->d_name, "seg-", 4) &&
            read_whole(path, buf, PT_RAFT_SEG_HEADER, &len) == 0 &&
            pt_raft_seg_header_decode(buf, len, &seq, &first) == 0 && first < v->first)
            v->first = first;
    }
    closedir(d);
    if (best[0]) {
        struct pt_raft_snap_header h;
        struct pt_raft_snap_ref ref;
        snprintf(path, sizeof(path), "%s/%s", raft_dir, best);
        if (read_whole(path, buf, sizeof(buf), &len) == 0 &&
            pt_raft_snap_header_decode(buf, len, &h) == 0) {
            v->snap = h.index;
            if (len >= PT_RAFT_SNAP_HEADER + h.conf_len + h.data_len &&
                pt_raft_snap_ref_decode(buf + PT_RAFT_SNAP_HEADER + h.conf_len, h.data_len, &ref)) {
                FILE *f;
                snprintf(path, sizeof(path), "%s/sdata-%020llu", raft_dir,
                         (unsigned long long)ref.token);
                f = fopen(path, "rb");
                if (f) {
                    fseek(f, 0, SEEK_END);
                    v->streamed = (uint64_t)ftell(f) == ref.len;
                    fclose(f);
                }
            }
        }
    }
}

/*
 * Log compaction with real storage: with a snapshot every 16 entries, many small files later,
 * a full restart rebuilds every replica's store from its last snapshot plus the log after it.
 */
TEST_T(cluster_snapshots_and_restart_keep_everything, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    unsigned i, files = test_sanitized() ? 20 : 60;
    char path[64];
    pc_start_opts(&c, 1, 3, 3, 0, 16);
    cl = pc_client(&c, 20000);
    for (i = 0; i < files; i++) {
        snprintf(path, sizeof(path), "/s%u", i);
        write_file(cl, path, 300 + i, i % 3 ? 50 + i : 5000 + i);
    }
    CHECK_OK(petrel_client_unlink(cl, "/s0"));
    petrel_client_close(cl);
    pc_restart_all(&c, 1);
    pc_wait_serving(&c, PC_WAIT_MS);
    cl = pc_client(&c, 20000);
    for (i = 1; i < files; i++) {
        snprintf(path, sizeof(path), "/s%u", i);
        read_check(cl, path, 300 + i, i % 3 ? 50 + i : 5000 + i);
    }
    {
        struct petrel_stat st;
        CHECK_EQ(petrel_client_stat(cl, "/s0", &st), -PT_ENOENT);
    }
    /* The group went on compacting: snapshots exist on disk. */
    {
        char cmd[1200];
        snprintf(cmd, sizeof(cmd), "ls %s/shard-0-0/raft | grep -q '^snap-'", c.root);
        CHECK_MSG(system(cmd) == 0, "no snapshot file in %s/shard-0-0/raft", c.root);
    }
    /* ... streamed: each names a data file, and the restarted replicas restored from them. */
    for (i = 0; i < 3; i++) {
        struct raft_dir_view v;
        char dir[700];
        snprintf(dir, sizeof(dir), "%s/shard-0-%u/raft", c.root, i);
        raft_dir_look(dir, &v);
        CHECK_MSG(v.snap > 0 && v.streamed, "%s: snapshot %llu streamed %d", dir,
                  (unsigned long long)v.snap, v.streamed);
    }
    petrel_client_close(cl);
    pc_stop(&c);
}

/* ---- streamed snapshots --------------------------------------------------------------------- */

/*
 * A follower that missed more than the leader keeps in its log gets the store as a streamed
 * snapshot: its log restarts right after the snapshot, whose data is a file it references.
 * Made leader, it serves every file from the installed store.
 */
TEST_T(cluster_follower_installs_a_streamed_snapshot_and_serves_from_it, 240)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct raft_dir_view v;
    unsigned i, lag, leader = 0, round, files = test_sanitized() ? 24 : 48;
    char path[64], name[32], dir[700];
    uint64_t t0;
    pc_start_opts(&c, 1, 3, 3, 0, 16);
    cl = pc_client(&c, 20000);
    write_file(cl, "/before", 7, 100);
    CHECK_OK(pc_shard_leader(&c, 0, &leader));
    lag = (leader + 1) % 3;
    snprintf(name, sizeof(name), "shard-0-%u", lag);
    snprintf(dir, sizeof(dir), "%s/%s/raft", c.root, name);
    pc_kill(&c, name, SIGKILL);
    for (i = 0; i < files; i++) {
        snprintf(path, sizeof(path), "/f%u", i);
        write_file(cl, path, 900 + i, 40 + i);
    }
    petrel_client_close(cl);
    pc_restart_one(&c, name);
    /* The install is durable once the snap file names it and the log starts right after. */
    t0 = pc_now_ms();
    for (;;) {
        raft_dir_look(dir, &v);
        if (v.snap > 0 && v.first == v.snap + 1 && v.streamed) break;
        CHECK_MSG(pc_now_ms() - t0 < 60000,
                  "%s: no streamed install (snapshot %llu, log from %llu, streamed %d)", dir,
                  (unsigned long long)v.snap, (unsigned long long)v.first, v.streamed);
        usleep(20000);
    }
    /* Make the installed replica lead: stop any other leader until it does. */
    for (round = 0; round < 24; round++) {
        pc_wait_serving(&c, PC_WAIT_MS);
        if (pc_shard_leader(&c, 0, &leader) == 0 && leader == lag) break;
        snprintf(name, sizeof(name), "shard-0-%u", leader);
        pc_kill(&c, name, SIGKILL);
        pc_wait_serving(&c, PC_WAIT_MS);
        pc_restart_one(&c, name);
    }
    CHECK_EQ(leader, lag);
    cl = pc_client(&c, 20000);
    read_check(cl, "/before", 7, 100);
    for (i = 0; i < files; i++) {
        snprintf(path, sizeof(path), "/f%u", i);
        read_check(cl, path, 900 + i, 40 + i);
    }
    petrel_client_close(cl);
    pc_stop(&c);
}

/* ---- Raft ports ------------------------------------------------------------------------------ */

#include <sys/stat.h>

/* A listening socket on 127.0.0.1 holding an OS-chosen port until closed. */
static int hold_port(unsigned *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    CHECK_EQ(listen(fd, 1), 0);
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static unsigned read_port_file(const char *dir)
{
    char path[700];
    unsigned port = 0;
    FILE *f;
    snprintf(path, sizeof(path), "%s/raft.port", dir);
    f = fopen(path, "r");
    if (!f) return 0;
    if (fscanf(f, "%u", &port) != 1) port = 0;
    fclose(f);
    return port;
}

static void write_port_file(const char *dir, unsigned port)
{
    char path[700];
    FILE *f;
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof(path), "%s/raft.port", dir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    fprintf(f, "%u\n", port);
    fclose(f);
}

/*
 * A replica whose Raft port is taken by someone else between choosing and binding it (here: the
 * port of its last run, held by another socket) starts on a fresh port; a free port of the last
 * run is kept across a restart.
 */
TEST_T(cluster_raft_port_taken_at_start_up, 120)
{
    struct pc_cluster c;
    char dir[600];
    unsigned held[2], ports[3], r;
    int fds[2];
    fds[0] = hold_port(&held[0]);
    fds[1] = hold_port(&held[1]);
    for (r = 0; r < 2; r++) {
        snprintf(dir, sizeof(dir), "%s/shard-0-%u", test_tmpdir(), r);
        write_port_file(dir, held[r]);
    }
    pc_start(&c, 1, 3, 1, 0);
    for (r = 0; r < 3; r++) {
        snprintf(dir, sizeof(dir), "%s/shard-0-%u", test_tmpdir(), r);
        ports[r] = read_port_file(dir);
        CHECK_MSG(ports[r] != 0, "replica %u wrote no raft.port", r);
        if (r < 2) CHECK_MSG(ports[r] != held[r], "replica %u kept a taken port", r);
    }
    /* Restarted on the same directory: the same Raft port, and the group serves. */
    pc_kill(&c, "shard-0-0", SIGKILL);
    pc_restart_one(&c, "shard-0-0");
    snprintf(dir, sizeof(dir), "%s/shard-0-0", test_tmpdir());
    CHECK_EQ(read_port_file(dir), ports[0]);
    pc_kill(&c, "shard-0-1", SIGKILL);
    pc_restart_one(&c, "shard-0-1");
    /* Replica 2 alone cannot serve: replicas 0 and 1 must be back in the group. */
    pc_kill(&c, "shard-0-2", SIGKILL);
    pc_restart_one(&c, "shard-0-2");
    pc_wait_serving(&c, PC_WAIT_MS);
    close(fds[0]);
    close(fds[1]);
    pc_stop(&c);
}

/* ---- CDC rename steps repeated by a new leader ------------------------------------------------
 */

#include "cluster/cdc/cdc_steps.h"

/*
 * Drive a rename transaction step by step against the real shards, running every step twice
 * (a new CDC leader repeats the step that was in flight when the old one died) and recording
 * outcomes as the CDC state machine does. Returns the finish status.
 */
static int drive_rename_cas(struct pt_router *r, uint64_t txn, uint64_t dir, const char *name,
                            uint64_t dir2, const char *name2, uint64_t expect, uint64_t expect2)
{
    struct pt_cdc_txn t;
    unsigned guard;
    memset(&t, 0, sizeof(t));
    t.id = txn;
    t.req.op = expect ? PT_CDC_RENAME_INODE : PT_CDC_RENAME;
    t.req.expect = expect;
    t.req.expect2 = expect2;
    t.req.key = txn;
    t.req.dir = dir;
    t.req.dir2 = dir2;
    t.req.name_len = (uint8_t)strlen(name);
    memcpy(t.req.name, name, t.req.name_len);
    t.req.name2_len = (uint8_t)strlen(name2);
    memcpy(t.req.name2, name2, t.req.name2_len);
    for (guard = 0; guard < 40; guard++) {
        struct pt_cdc_outcome o1, o2;
        pt_cdc_run_step(r, 2, &t, &o1);
        if (o1.kind == PT_CDC_OUT_NONE) continue; /* shard busy electing: try again */
        pt_cdc_run_step(r, 2, &t, &o2);           /* the repeat must agree */
        CHECK_EQ(o2.kind, o1.kind);
        if (o1.kind == PT_CDC_OUT_FINISH) {
            CHECK_EQ(o2.status, o1.status);
            return o1.status;
        }
        CHECK_EQ(o2.step, o1.step);
        CHECK_EQ(o2.repl, o1.repl);
        CHECK(o1.step > t.step);
        t.step = o1.step;
        t.x = o1.x;
        t.type = o1.type;
        t.err = o1.err;
        t.repl = o1.repl;
        t.repl_type = o1.repl_type;
    }
    CHECK_MSG(0, "rename transaction did not finish");
    return -PT_EIO;
}

static int drive_rename(struct pt_router *r, uint64_t txn, uint64_t dir, const char *name,
                        uint64_t dir2, const char *name2)
{
    return drive_rename_cas(r, txn, dir, name, dir2, name2, 0, 0);
}

TEST_T(cluster_cdc_rename_replace_steps_repeat_safely, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct petrel_stat a, b, old, st;
    struct pt_router r;
    pc_start(&c, 2, 1, 3, 1);
    cl = pc_client(&c, 20000);
    pt_router_init(&r, c.registry, 10000, 2000, 1);
    CHECK_OK(petrel_client_mkdir(cl, "/a"));
    CHECK_OK(petrel_client_mkdir(cl, "/b"));
    CHECK_OK(petrel_client_mkdir(cl, "/b/sub"));
    CHECK_OK(petrel_client_stat(cl, "/a", &a));
    CHECK_OK(petrel_client_stat(cl, "/b", &b));
    write_file(cl, "/a/f", 1, 5000);
    write_file(cl, "/b/t", 2, 7000);
    /* Refused after the target was locked (directory onto file): both entries unlocked. */
    CHECK_OK(petrel_client_mkdir(cl, "/a/d"));
    CHECK_EQ(drive_rename(&r, 1ull << 40, a.id, "d", b.id, "t"), -PT_ENOTDIR);
    CHECK_EQ(drive_rename(&r, (1ull << 40) + 1, a.id, "f", b.id, "sub"), -PT_EISDIR);
    CHECK_OK(petrel_client_rename(cl, "/b/t", "/b/t2")); /* not left locked */
    CHECK_OK(petrel_client_rename(cl, "/b/t2", "/b/t"));
    CHECK_OK(petrel_client_rename(cl, "/a/d", "/a/d2"));
    /* File onto file across shards, every step twice. */
    CHECK_OK(petrel_client_stat(cl, "/b/t", &old));
    CHECK_EQ(drive_rename(&r, (1ull << 40) + 2, a.id, "f", b.id, "t"), 0);
    read_check(cl, "/b/t", 1, 5000);
    CHECK_EQ(petrel_client_stat(cl, "/a/f", &st), -PT_ENOENT);
    CHECK_EQ(file_state(&c, old.id), PT_FILE_UNLINKED);
    /* Directory onto an empty directory, every step twice. */
    CHECK_OK(petrel_client_stat(cl, "/b/sub", &old));
    CHECK_EQ(drive_rename(&r, (1ull << 40) + 3, a.id, "d2", b.id, "sub"), 0);
    CHECK_OK(petrel_client_stat(cl, "/b/sub", &st));
    CHECK_EQ(st.type, PETREL_TYPE_DIR);
    CHECK(st.id != old.id);
    CHECK_EQ(file_state(&c, old.id), -PT_ENOENT);
    CHECK_OK(petrel_client_mkdir(cl, "/b/sub/inside")); /* its parent moved with it */
    /* RENAME_INODE (what the client sends): only the inodes it saw, every step twice. */
    {
        struct petrel_stat g, t;
        write_file(cl, "/a/g", 3, 100);
        CHECK_OK(petrel_client_stat(cl, "/a/g", &g));
        CHECK_OK(petrel_client_stat(cl, "/b/t", &t));
        CHECK_EQ(drive_rename_cas(&r, (1ull << 40) + 4, a.id, "g", b.id, "t", g.id + 1, t.id),
                 -PT_ESTALE); /* the source holds another inode */
        CHECK_EQ(drive_rename_cas(&r, (1ull << 40) + 5, a.id, "g", b.id, "t", g.id, 0),
                 -PT_EEXIST); /* the target was to be free */
        CHECK_EQ(drive_rename_cas(&r, (1ull << 40) + 6, a.id, "g", b.id, "t", g.id, g.id),
                 -PT_ESTALE); /* the target holds another inode */
        CHECK_EQ(drive_rename_cas(&r, (1ull << 40) + 7, a.id, "g", b.id, "none", g.id, t.id),
                 -PT_ESTALE); /* the target to replace is gone */
        read_check(cl, "/a/g", 3, 100);
        read_check(cl, "/b/t", 1, 5000);
        CHECK_EQ(petrel_client_stat(cl, "/b/none", &st), -PT_ENOENT);
        CHECK_EQ(file_state(&c, t.id), PT_FILE_LINKED);
        CHECK_EQ(drive_rename_cas(&r, (1ull << 40) + 8, a.id, "g", b.id, "t", g.id, t.id), 0);
        read_check(cl, "/b/t", 3, 100);
        CHECK_EQ(file_state(&c, t.id), PT_FILE_UNLINKED);
        /* Nothing was left locked by the refusals: the client renames both back and forth. */
        CHECK_OK(petrel_client_rename(cl, "/b/t", "/a/g"));
        CHECK_OK(petrel_client_rename(cl, "/a/g", "/b/t"));
    }
    petrel_client_close(cl);
    pc_stop(&c);
}

/* ---- CDC requests that can never progress ------------------------------------------------ */

/* One CDC request sent as a client does; the reply's status (remote says whether it was one). */
static int cdc_request(struct pt_router *r, const struct pt_cdc_req *q, int *remote)
{
    uint8_t body[700];
    struct pt_reply rep;
    int n = pt_cdc_req_encode(q, body, sizeof(body)), rc;
    CHECK(n > 0);
    rc = pt_router_call(r, PT_ROUTER_CDC, PT_MSG_CDC_REQ, body, (size_t)n, 1, &rep, NULL);
    *remote = rep.remote;
    pt_reply_free(&rep);
    return rc;
}

/*
 * The network fuzzer's reproducers (fuzz/regress/net_cdc): a rename from a directory on a shard
 * the deployment does not have, and an rmdir in a directory that does not exist. Both must be
 * refused at once, and neither may hold up the transactions after it (the CDC runs one at a
 * time). Before the fix the first was retried for ever and every later request timed out.
 */
TEST_T(cluster_cdc_refuses_missing_directories_at_once, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct pt_router r;
    struct pt_cdc_req q;
    struct petrel_stat d;
    int remote;
    pc_start(&c, 1, 1, 3, 1);
    cl = pc_client(&c, 20000);
    /* attempts of 15 s: a request the CDC never answers fails with a local timeout */
    pt_router_init(&r, c.registry, 15000, 15000, 7);
    CHECK_OK(petrel_client_mkdir(cl, "/src"));
    CHECK_OK(petrel_client_mkdir(cl, "/src/dir"));
    CHECK_OK(petrel_client_stat(cl, "/src", &d));

    memset(&q, 0, sizeof(q));
    q.op = PT_CDC_RENAME;
    q.key = 0xe6f010;
    q.dir = 0xca00000000000001ull; /* shard 202 of a one-shard deployment */
    memcpy(q.name, "dir", 3);
    q.name_len = 3;
    q.dir2 = PT_INODE_MAKE(0, 2);
    memcpy(q.name2, "moved", 5);
    q.name2_len = 5;
    CHECK_EQ(cdc_request(&r, &q, &remote), -PT_ENOENT);
    CHECK(remote);
    /* The target on a missing shard: the source entry is locked first, then unlocked. */
    q.key = 0xe6f011;
    q.dir = d.id;
    q.dir2 = 0x0700000000000005ull;
    CHECK_EQ(cdc_request(&r, &q, &remote), -PT_ENOENT);
    CHECK(remote);
    memset(&q, 0, sizeof(q));
    q.op = PT_CDC_RMDIR;
    q.key = 0xf80f;
    q.dir = 0x100; /* no such inode on shard 0 */
    memcpy(q.name, "dir", 3);
    q.name_len = 3;
    CHECK_EQ(cdc_request(&r, &q, &remote), -PT_ENOENT);
    CHECK(remote);
    memset(&q, 0, sizeof(q));
    q.op = PT_CDC_MKDIR;
    q.key = 0xf810;
    q.dir = 0x4200000000000001ull;
    memcpy(q.name, "new", 3);
    q.name_len = 3;
    CHECK_EQ(cdc_request(&r, &q, &remote), -PT_ENOENT);
    CHECK(remote);

    /* Later transactions go through, and nothing was left locked. */
    CHECK_OK(petrel_client_mkdir(cl, "/after"));
    CHECK_OK(petrel_client_rename(cl, "/src/dir", "/after/dir"));
    CHECK_OK(petrel_client_rmdir(cl, "/after/dir"));
    petrel_client_close(cl);
    pc_stop(&c);
}

/* ---- garbage collection ------------------------------------------------------------------- */

#include "cluster/client/blocks_client.h"

/* Block files (*.blk) under every block service directory of the cluster. */
static unsigned count_block_files(struct pc_cluster *c)
{
    char dir[700], sub[800];
    unsigned n = 0, b, i;
    for (b = 0; b < c->blocks; b++)
        for (i = 0; i < 256; i++) {
            DIR *d;
            struct dirent *e;
            snprintf(dir, sizeof(dir), "%s/blocks-%u", c->root, b);
            snprintf(sub, sizeof(sub), "%s/blocks/%02x", dir, i);
            if (!(d = opendir(sub))) continue;
            while ((e = readdir(d)) != NULL)
                n += strstr(e->d_name, ".blk") != NULL;
            closedir(d);
        }
    return n;
}

/* Bytes the block services report used (through the registry). */
static uint64_t reported_used(struct pc_cluster *c)
{
    struct pt_reg_blocks *v = NULL;
    size_t n = 0, i;
    uint64_t used = 0;
    struct pt_call_opts o = {.timeout_ms = 2000, .retry_budget_ms = 5000};
    CHECK_OK(pt_reg_list_blocks(c->registry, &v, &n, &o));
    for (i = 0; i < n; i++)
        used += v[i].used;
    free(v);
    return used;
}

/*
 * Deleted and replaced files: once the retention period is over the shard leader erases their
 * blocks with erase certificates, checks the proofs and forgets the files; the block files
 * leave the services' directories and the space is reported free. A kept file is untouched.
 */
TEST_T(cluster_gc_erases_blocks_after_retention, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct petrel_stat gone1, gone2;
    unsigned before;
    uint64_t t0;
    uint64_t used_full, used;
    pc_start_retention(&c, 1, 3, 3, 2);
    cl = pc_client(&c, 20000);
    write_file(cl, "/keep", 7, 9000);
    before = count_block_files(&c);
    CHECK(before >= 2); /* mirrored: a copy on each of two services */
    write_file(cl, "/del", 8, 300000);
    write_file(cl, "/old", 9, 50000);
    write_file(cl, "/new", 10, 6000);
    CHECK(count_block_files(&c) >= before + 6);
    CHECK_OK(petrel_client_stat(cl, "/del", &gone1));
    CHECK_OK(petrel_client_stat(cl, "/old", &gone2));
    /* Every copy reported (2 x each file's bytes): the heartbeats lag on a busy machine, and
     * a partial figure here would make the check after GC meaningless. */
    for (t0 = pc_now_ms(); (used_full = reported_used(&c)) < 2 * 365000u &&
                           pc_now_ms() - t0 < PC_WAIT_MS;)
        usleep(100000);
    CHECK_MSG(used_full >= 2 * 365000u, "services report %llu bytes used",
              (unsigned long long)used_full);
    CHECK_OK(petrel_client_unlink(cl, "/del"));
    CHECK_OK(petrel_client_rename(cl, "/new", "/old")); /* /old's first file is replaced */
    /* Kept during the retention period: still there, still unlinked. */
    CHECK_EQ(file_state(&c, gone1.id), PT_FILE_UNLINKED);
    /* Then erased and forgotten (bounded wait: retention 2 s, GC looks every second). */
    for (t0 = pc_now_ms();
         pc_now_ms() - t0 < PC_WAIT_MS &&
         (count_block_files(&c) > before + 2 || file_state(&c, gone1.id) != -PT_ENOENT ||
          file_state(&c, gone2.id) != -PT_ENOENT);)
        usleep(100000);
    CHECK_EQ(count_block_files(&c), before + 2); /* /keep and /old (the former /new) */
    CHECK_EQ(file_state(&c, gone1.id), -PT_ENOENT);
    CHECK_EQ(file_state(&c, gone2.id), -PT_ENOENT);
    for (t0 = pc_now_ms();
         (used = reported_used(&c)) > 2 * 15000u && pc_now_ms() - t0 < PC_WAIT_MS;)
        usleep(100000);
    CHECK_MSG(used <= 2 * 15000u, "services still report %llu of %llu bytes used (want %u)",
              (unsigned long long)used, (unsigned long long)used_full, 2 * 15000u);
    read_check(cl, "/keep", 7, 9000);
    read_check(cl, "/old", 10, 6000);
    petrel_client_close(cl);
    pc_stop(&c);
}

/* Blocks the shard lists for a file (all its spans). */
static unsigned file_blocks(struct pc_cluster *c, uint64_t id)
{
    struct pt_router r;
    uint64_t offset = 0;
    unsigned total = 0;
    int more = 1;
    pt_router_init(&r, c->registry, 10000, 2000, 1);
    while (more) {
        struct pt_shard_req q;
        struct pt_reply rep;
        struct pt_cursor body;
        unsigned n, i;
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_SPANS;
        q.id = id;
        q.offset = offset;
        CHECK_OK(pt_router_shard(&r, PT_INODE_SHARD(id), &q, &rep, NULL));
        pt_cursor_init(&body, rep.body, rep.body_len);
        (void)pt_dec_u64(&body);
        n = pt_dec_u16(&body);
        for (i = 0; i < n; i++) {
            struct pt_span sp;
            CHECK_OK(pt_span_decode(&body, &sp));
            total += pt_span_block_count(&sp);
            offset = sp.offset + sp.size;
        }
        more = pt_dec_u8(&body);
        CHECK(pt_cursor_ok(&body));
        pt_reply_free(&rep);
        if (n == 0) break;
    }
    return total;
}

/*
 * Spans dropped after a failed block write (a block service killed before the registry noticed):
 * the copies the writer did store are erased after the retention period, so the services end
 * up holding exactly the blocks of the files that exist.
 */
TEST_T(cluster_gc_erases_copies_of_dropped_spans, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct petrel_stat st;
    unsigned expected, files;
    uint64_t t0;
    uint64_t size = test_sanitized() ? (5u << 20) : (13u << 20);
    pc_start_retention(&c, 1, 3, 3, 2);
    cl = pc_client(&c, 30000);
    write_file(cl, "/before", 1, 10000);
    pc_kill(&c, "blocks-0", SIGKILL);
    write_file(cl, "/during", 2, size);
    read_check(cl, "/during", 2, size);
    pc_restart_one(&c, "blocks-0");
    expected = 0;
    CHECK_OK(petrel_client_stat(cl, "/before", &st));
    expected += file_blocks(&c, st.id);
    CHECK_OK(petrel_client_stat(cl, "/during", &st));
    expected += file_blocks(&c, st.id);
    /* Bounded wait: retention 2 s, a GC look every second, blocks-0 back and registered. */
    for (t0 = pc_now_ms(); (files = count_block_files(&c)) != expected && pc_now_ms() - t0 < PC_WAIT_MS;)
        usleep(100000);
    test_log("block files: %u, blocks of live files: %u", files, expected);
    CHECK_EQ(files, expected);
    read_check(cl, "/before", 1, 10000);
    read_check(cl, "/during", 2, size);
    petrel_client_close(cl);
    pc_stop(&c);
}
