/*
 * Raft replicas as real processes: the 95-byte packet of issue 10 and seeded random and
 * mutated frames sent to every shard and CDC replica's Raft port leave every replica up, the
 * cluster serving and every stored file unchanged; a leader killed with SIGKILL is replaced
 * by a serving leader (measured: N kills, median and max); an old libraft data directory and a
 * directory that fails the durability probe are refused with one clear line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/client/registry_client.h"
#include "cluster/client/router.h"
#include "cluster/net/net.h"
#include "cluster/replica/node.h"
#include "cluster/proto/registry_msg.h"
#include "cluster/replica/raft_io.h"
#include "cluster/replica/raft_msg.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/prng.h"
#include "proc_cluster.h"
#include "test.h"

struct bytes {
    const uint8_t *p;
    size_t len, pos;
};

static long bytes_read(void *ctx, void *buf, size_t cap)
{
    struct bytes *b = ctx;
    size_t n = b->len - b->pos < cap ? b->len - b->pos : cap;
    memcpy(buf, b->p + b->pos, n);
    b->pos += n;
    return (long)n;
}

static int bytes_check(void *ctx, const void *buf, size_t len)
{
    struct bytes *b = ctx;
    if (b->pos + len > b->len || memcmp(b->p + b->pos, buf, len) != 0)
        b->pos = SIZE_MAX / 2;
    else
        b->pos += len;
    return 0;
}

static void content(unsigned i, uint8_t *buf, size_t len)
{
    size_t k;
    for (k = 0; k < len; k++)
        buf[k] = (uint8_t)(i * 31 + k * 7);
}

static void files_write(struct petrel_client *cl, unsigned from, unsigned n)
{
    uint8_t buf[300];
    char path[32];
    unsigned i;
    for (i = from; i < n; i++) {
        struct bytes b = {buf, 100 + i, 0};
        uint64_t written = 0;
        content(i, buf, sizeof(buf));
        snprintf(path, sizeof(path), "/f%u", i);
        CHECK_OK(petrel_client_write_file(cl, path, bytes_read, &b, &written));
    }
}

static void files_check(struct petrel_client *cl, unsigned n)
{
    uint8_t buf[300];
    char path[32];
    unsigned i;
    for (i = 0; i < n; i++) {
        struct bytes b = {buf, 100 + i, 0};
        uint64_t got = 0;
        content(i, buf, sizeof(buf));
        snprintf(path, sizeof(path), "/f%u", i);
        CHECK_OK(petrel_client_read(cl, path, 0, UINT64_MAX, bytes_check, &b, &got));
        CHECK_MSG(got == 100 + i && b.pos == 100 + i, "%s changed", path);
    }
}

/* The Raft port a replica saved in its directory. */
static unsigned raft_port(struct pc_cluster *c, const char *replica_dir)
{
    char path[800];
    unsigned port = 0;
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s/raft.port", c->root, replica_dir);
    f = fopen(path, "r");
    CHECK_MSG(f != NULL, "no %s", path);
    CHECK_EQ(fscanf(f, "%u", &port), 1);
    fclose(f);
    return port;
}

/* Connect to 127.0.0.1:port, send bytes, close: what an attacker on the network can do. */
static void send_raw(unsigned port, const uint8_t *buf, size_t len)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    CHECK_MSG(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect to %u: %s", port,
              strerror(errno));
    if (len) (void)send(fd, buf, len, MSG_NOSIGNAL);
    close(fd);
}

static void check_alive(struct pc_cluster *c)
{
    unsigned i;
    for (i = 0; i < c->nprocs; i++) {
        int status;
        CHECK_MSG(waitpid(c->procs[i].pid, &status, WNOHANG) == 0, "%s died (log %s)",
                  c->procs[i].name, c->procs[i].log);
    }
}

TEST_T(cluster_raft_ports_survive_malformed_and_random_packets, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct pt_prng g;
    const char *dirs[] = {"shard-0-0", "shard-0-1", "shard-0-2", "cdc-0", "cdc-1", "cdc-2"};
    uint8_t pkt[95], frame[512];
    unsigned d, i;
    pt_prng_seed(&g, test_seed());
    pc_start(&c, 1, 3, 1, 1);
    cl = pc_client(&c, 20000);
    files_write(cl, 0, 10);
    for (d = 0; d < sizeof(dirs) / sizeof(dirs[0]); d++) {
        unsigned port = raft_port(&c, dirs[d]);
        /* Issue 10: libraft's handshake, then an AppendEntries with a random 44-byte header. */
        memset(pkt, 0, sizeof(pkt));
        pt_put_le64(pkt, 1);
        pt_put_le64(pkt + 8, 2);
        pt_put_le64(pkt + 16, 8);
        memcpy(pkt + 24, "r1", 2);
        pt_put_le64(pkt + 32, 1);
        pt_put_le64(pkt + 40, 44);
        pt_prng_fill(&g, pkt + 48, 47);
        send_raw(port, pkt, sizeof(pkt));
        for (i = 0; i < 60; i++) {
            size_t len = 1 + (size_t)pt_prng_below(&g, sizeof(frame) - 1), hs = 0;
            pt_prng_fill(&g, frame, len);
            if (i % 3 == 1 && len > 60) {
                /* Past a good anonymous handshake: a framed Petrel Raft message, mutated. */
                struct pt_raft_msg_header h = {0, 0, PT_RAFT_GROUP(1, 0), 0, 2, 1, 0};
                struct raft_message m;
                uint8_t *enc;
                size_t elen;
                memset(&m, 0, sizeof(m));
                m.type = RAFT_IO_REQUEST_VOTE;
                m.request_vote.term = 1u << 30;
                m.request_vote.candidate_id = 2;
                CHECK_OK(pt_raft_msg_encode(&h, &m, &enc, &elen));
                pt_put_le32(frame, 0x564e4550u);
                frame[4] = 1;
                frame[5] = 0;
                pt_put_le32(frame + 6, (uint32_t)elen);
                memcpy(frame + 10, enc, elen);
                frame[10 + pt_prng_below(&g, elen)] ^= (uint8_t)(1 + pt_prng_below(&g, 255));
                hs = 10 + elen;
                free(enc);
            } else if (i % 3 == 2) {
                /* A good handshake and a length prefix over the limit. */
                pt_put_le32(frame, 0x564e4550u);
                frame[4] = 1;
                frame[5] = 0;
                pt_put_le32(frame + 6, 0xffffffffu);
                hs = 10;
            }
            send_raw(port, frame, hs > len ? hs : len);
        }
    }
    check_alive(&c);
    pc_wait_serving(&c, 20000);
    files_check(cl, 10);
    files_write(cl, 10, 12); /* still takes writes */
    files_check(cl, 12);
    check_alive(&c);
    petrel_client_close(cl);
    pc_stop(&c);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Poll shard 0's replicas (but `dead`) every 5 ms until one says it leads: elapsed ms. */
static uint64_t time_to_leader(struct pc_cluster *c, unsigned dead, uint64_t start)
{
    struct pt_reg_replica *v = NULL;
    size_t n = 0, i;
    struct pt_call_opts o = {.timeout_ms = 200, .retry_budget_ms = 1};
    CHECK_OK(pt_reg_list_shards(c->registry, 0, &v, &n, &o));
    while (pc_now_ms() - start < 20000) {
        for (i = 0; i < n; i++) {
            struct pt_reply rep;
            int leads;
            if (v[i].replica == dead || !v[i].addr[0]) continue;
            if (pt_call(v[i].addr, PT_MSG_NODE_INFO, NULL, 0, &o, &rep) != 0) continue;
            leads = rep.body_len >= 3 && rep.body[2];
            pt_reply_free(&rep);
            if (leads) {
                free(v);
                return pc_now_ms() - start;
            }
        }
        usleep(5000);
    }
    free(v);
    CHECK_MSG(0, "no leader within 20 s");
    return 0;
}

/* Poll the surviving replicas of shard 0 until one leads and a read is served. */
static uint64_t time_to_serving(struct pc_cluster *c, struct petrel_client *cl, uint64_t start)
{
    struct petrel_stat st;
    while (pc_now_ms() - start < 20000) {
        if (petrel_client_stat(cl, "/", &st) == 0) return pc_now_ms() - start;
    }
    CHECK_MSG(0, "no serving leader within 20 s (logs in %s)", c->root);
    return 0;
}

TEST_T(cluster_leader_kill9_failover_time, 300)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    enum { KILLS = 7 };
    uint64_t took[KILLS], elected[KILLS];
    unsigned k, leader;
    char name[32];
    pc_start(&c, 1, 3, 1, 0);
    cl = pc_client(&c, 300);
    for (k = 0; k < KILLS; k++) {
        uint64_t t0;
        CHECK_OK(pc_shard_leader(&c, 0, &leader));
        snprintf(name, sizeof(name), "shard-0-%u", leader);
        t0 = pc_now_ms();
        pc_kill(&c, name, SIGKILL);
        elected[k] = time_to_leader(&c, leader, t0);
        took[k] = time_to_serving(&c, cl, t0);
        test_log("kill %u of leader %s: new leader after %llu ms, a client served after %llu ms", k,
                 name, (unsigned long long)elected[k], (unsigned long long)took[k]);
        pc_restart_one(&c, name);
        pc_wait_serving(&c, 20000);
    }
    qsort(took, KILLS, sizeof(took[0]), cmp_u64);
    qsort(elected, KILLS, sizeof(elected[0]), cmp_u64);
    printf("failover after kill -9 of the leader (%d kills, election timeout 250 ms): new leader "
           "median %llu ms, max %llu ms; client served median %llu ms, max %llu ms\n",
           KILLS, (unsigned long long)elected[KILLS / 2], (unsigned long long)elected[KILLS - 1],
           (unsigned long long)took[KILLS / 2], (unsigned long long)took[KILLS - 1]);
    if (!test_sanitized()) {
        CHECK_MSG(took[KILLS / 2] < 1000, "median failover %llu ms",
                  (unsigned long long)took[KILLS / 2]);
        CHECK_MSG(took[KILLS - 1] < 3000, "slowest failover %llu ms",
                  (unsigned long long)took[KILLS - 1]);
    }
    petrel_client_close(cl);
    pc_stop(&c);
}

TEST_T(cluster_sigterm_leader_hands_over_before_stopping, 120)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    unsigned leader, k;
    char name[32];
    pc_start(&c, 1, 3, 1, 0);
    cl = pc_client(&c, 20000);
    files_write(cl, 0, 3);
    for (k = 0; k < 3; k++) {
        uint64_t t0, took;
        CHECK_OK(pc_shard_leader(&c, 0, &leader));
        snprintf(name, sizeof(name), "shard-0-%u", leader);
        t0 = pc_now_ms();
        pc_kill(&c, name, SIGTERM); /* returns once the process exited */
        took = time_to_leader(&c, leader, t0);
        test_log("SIGTERM to leader %s: a new leader after %llu ms", name,
                 (unsigned long long)took);
        /* Without the hand-over the followers would wait out an election timeout (250 ms). */
        if (!test_sanitized())
            CHECK_MSG(took < 200, "new leader only after %llu ms", (unsigned long long)took);
        pc_restart_one(&c, name);
        pc_wait_serving(&c, 20000);
    }
    files_check(cl, 3);
    petrel_client_close(cl);
    pc_stop(&c);
}

/* The pid of a running process of the harness. */
static pid_t proc_pid(struct pc_cluster *c, const char *name)
{
    unsigned i;
    for (i = 0; i < c->nprocs; i++)
        if (c->procs[i].pid > 0 && strcmp(c->procs[i].name, name) == 0) return c->procs[i].pid;
    test_fail(__FILE__, __LINE__, "no process named %s", name);
}

/*
 * Find shard 0's leader, freeze its two followers (SIGSTOP) so nothing it appends can commit,
 * and return its client address. The leader then loses contact with its majority and steps
 * down after an election timeout, which fails every entry it appended: "outcome unknown".
 */
static void isolate_leader(struct pc_cluster *c, unsigned *leader, char *addr, size_t cap)
{
    struct pt_reg_replica *v = NULL;
    size_t n = 0, i;
    char name[32];
    CHECK_OK(pc_shard_leader(c, 0, leader));
    CHECK_OK(pt_reg_list_shards(c->registry, 0, &v, &n, NULL));
    addr[0] = 0;
    for (i = 0; i < n; i++)
        if (v[i].replica == *leader) snprintf(addr, cap, "%s", v[i].addr);
    free(v);
    CHECK(addr[0] != 0);
    for (i = 0; i < 3; i++) {
        if (i == *leader) continue;
        snprintf(name, sizeof(name), "shard-0-%zu", i);
        CHECK_OK(kill(proc_pid(c, name), SIGSTOP));
    }
}

static void resume_followers(struct pc_cluster *c, unsigned leader)
{
    char name[32];
    unsigned i;
    for (i = 0; i < 3; i++) {
        if (i == leader) continue;
        snprintf(name, sizeof(name), "shard-0-%u", i);
        CHECK_OK(kill(proc_pid(c, name), SIGCONT));
    }
}

/*
 * A leader that loses its lead after appending a request answers PT_EINDOUBT, not
 * PT_ENOTLEADER (which would tell the client the request had no effect); the router hands a
 * request that must not be repeated (UNLINK by name) back in doubt after one delivery, and
 * the group serves again afterwards.
 */
TEST_T(cluster_leader_losing_its_lead_after_the_append_answers_in_doubt, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct pt_router r;
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_conn *conn;
    uint8_t buf[512];
    char addr[PT_REG_ADDR_MAX];
    unsigned leader;
    int rc, retried = 0, n;
    pc_start(&c, 1, 3, 1, 0);
    cl = pc_client(&c, 30000);
    files_write(cl, 0, 2);

    /* Through the router: a request that is not repeatable comes back in doubt, once. */
    isolate_leader(&c, &leader, addr, sizeof(addr));
    pt_router_init(&r, c.registry, 20000, 20000, test_seed() | 1);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_UNLINK;
    q.id = PT_INODE_ROOT;
    memcpy(q.name, "nothing-here", 13);
    q.name_len = 12;
    rc = pt_router_shard(&r, 0, &q, &rep, &retried);
    pt_reply_free(&rep);
    CHECK_EQ(rc, -PT_EINDOUBT);
    CHECK_EQ(retried, 1);
    resume_followers(&c, leader);
    pc_wait_serving(&c, 30000);

    /* On the wire: the answer itself is PT_EINDOUBT, from the (former) leader. */
    isolate_leader(&c, &leader, addr, sizeof(addr));
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_CONSTRUCT_FILE;
    q.cookie = 77;
    n = pt_shard_req_encode(&q, buf, sizeof(buf));
    CHECK(n > 0);
    CHECK_OK(pt_conn_open(addr, 2000, 0, &conn));
    rc = pt_conn_call(conn, PT_MSG_SHARD_REQ, buf, (uint32_t)n, 20000, &rep);
    CHECK_EQ(rc, -PT_EINDOUBT);
    CHECK(rep.remote);
    pt_reply_free(&rep);
    pt_conn_close(conn);
    resume_followers(&c, leader);
    pc_wait_serving(&c, 30000);

    files_write(cl, 2, 4); /* files 2 and 3 */
    files_check(cl, 4);
    petrel_client_close(cl);
    pc_stop(&c);
}

/*
 * Reads are linearizable: a leader answers a read only after a barrier appended after the
 * read committed in its term (read index through the log). A leader cut off from its
 * majority therefore never answers a read from its store — it may already be deposed, with
 * newer writes committed elsewhere — and the read fails with "not here" (no effect: the
 * client retries at the leader), never with data. Before, the leader answered at once.
 */
TEST_T(cluster_cut_off_leader_never_answers_a_read, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct pt_shard_req q;
    struct pt_reply rep;
    struct pt_conn *conn;
    uint8_t buf[512];
    char addr[PT_REG_ADDR_MAX];
    unsigned leader;
    int rc, n;
    pc_start(&c, 1, 3, 1, 0);
    cl = pc_client(&c, 30000);
    files_write(cl, 0, 1);

    /* The leader answers a lookup of f0 while it has its majority ... */
    isolate_leader(&c, &leader, addr, sizeof(addr));
    resume_followers(&c, leader);
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_LOOKUP;
    q.id = PT_INODE_ROOT;
    memcpy(q.name, "f0", 3);
    q.name_len = 2;
    n = pt_shard_req_encode(&q, buf, sizeof(buf));
    CHECK(n > 0);
    CHECK_OK(pt_conn_open(addr, 2000, 0, &conn));
    rc = pt_conn_call(conn, PT_MSG_SHARD_REQ, buf, (uint32_t)n, 20000, &rep);
    CHECK_OK(rc);
    pt_reply_free(&rep);
    pt_conn_close(conn);

    /* ... and never once its followers are frozen: its barrier cannot commit. */
    isolate_leader(&c, &leader, addr, sizeof(addr));
    CHECK_OK(pt_conn_open(addr, 2000, 0, &conn));
    rc = pt_conn_call(conn, PT_MSG_SHARD_REQ, buf, (uint32_t)n, 20000, &rep);
    CHECK_MSG(rc == -PT_ENOTLEADER || rc == -PT_EAGAIN,
              "a leader without its majority answered a read: %s", petrel_errname(rc));
    pt_reply_free(&rep);
    pt_conn_close(conn);
    resume_followers(&c, leader);
    pc_wait_serving(&c, 30000);
    files_check(cl, 1);
    petrel_client_close(cl);
    pc_stop(&c);
}

/* Run `petrel shard` on dir and return its exit status, its first stderr line in line. */
static int run_shard(const char *dir, const char *extra, char *line, size_t cap)
{
    char cmd[2000];
    FILE *p;
    int status;
    snprintf(cmd, sizeof(cmd),
             "PETREL_QUIET=1 timeout 20 build/petrel shard --registry 127.0.0.1:1 --shard 0 "
             "--replica 0 --replicas 1 --dir %s %s 2>&1",
             dir, extra);
    p = popen(cmd, "r");
    CHECK(p);
    line[0] = 0;
    if (!fgets(line, (int)cap, p)) line[0] = 0;
    while (fgetc(p) != EOF)
        ;
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(cluster_shard_refuses_libraft_directory_and_undurable_dir)
{
    char dir[700], path[800], line[1024];
    FILE *f;
    snprintf(dir, sizeof(dir), "%s/old", test_tmpdir());
    snprintf(path, sizeof(path), "%s/raft", dir);
    CHECK_OK(mkdir(dir, 0755));
    CHECK_OK(mkdir(path, 0755));
    snprintf(path, sizeof(path), "%s/raft/metadata1", dir);
    f = fopen(path, "wb");
    CHECK(f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/raft/0000000000000001-0000000000000004", dir);
    f = fopen(path, "wb");
    CHECK(f);
    fclose(f);
    CHECK(run_shard(dir, "", line, sizeof(line)) != 0);
    CHECK_MSG(strstr(line, "libraft") != NULL && !strchr(line, '\n') == 0,
              "expected one line naming libraft, got: %s", line);
    /* The probe cannot create its file: a read-only data directory (unless we are root). */
    if (geteuid() != 0) {
        snprintf(dir, sizeof(dir), "%s/ro", test_tmpdir());
        snprintf(path, sizeof(path), "%s/raft", dir);
        CHECK_OK(mkdir(dir, 0755));
        CHECK_OK(mkdir(path, 0555));
        CHECK(run_shard(dir, "", line, sizeof(line)) != 0);
        CHECK_MSG(strstr(line, "durability probe") != NULL, "got: %s", line);
        chmod(path, 0755);
    }
    /* Bad timing flags: one clear error. */
    snprintf(dir, sizeof(dir), "%s/flags", test_tmpdir());
    CHECK(run_shard(dir, "--election-timeout-ms 100 --heartbeat-ms 100", line, sizeof(line)) != 0);
    CHECK_MSG(strstr(line, "heartbeat") != NULL, "got: %s", line);
    CHECK(run_shard(dir, "--election-timeout-ms x", line, sizeof(line)) != 0);
    CHECK_MSG(strstr(line, "election-timeout") != NULL, "got: %s", line);
}

/*
 * A cluster found through a registry group of three: the registry leader is killed, then a
 * shard leader too. Shards re-register through the group, a new client finds every service
 * through it, and nothing written before is lost.
 */
TEST_T(cluster_over_registry_group_survives_registry_leader_loss, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl, *fresh;
    unsigned leader;
    int reg;
    char name[32];
    uint64_t start;
    pc_start_registry_group(&c, 1, 3, 1, 0, 3);
    CHECK(strchr(c.registry, ',') != NULL);
    cl = pc_client(&c, 20000);
    files_write(cl, 0, 3);
    start = pc_now_ms();
    while ((reg = pc_registry_leader(&c)) < 0) {
        CHECK_MSG(pc_now_ms() - start < 20000, "no registry leader");
        usleep(20000);
    }
    snprintf(name, sizeof(name), "registry-%d", reg);
    pc_kill(&c, name, SIGKILL);
    /* The shard's leader changes while the registry leader is gone: the new one must be
     * registered through the surviving members for clients to find it. */
    CHECK_OK(pc_shard_leader(&c, 0, &leader));
    snprintf(name, sizeof(name), "shard-0-%u", leader);
    pc_kill(&c, name, SIGKILL);
    fresh = pc_client(&c, 30000);
    files_write(fresh, 3, 6);
    files_check(fresh, 6);
    files_check(cl, 6);
    petrel_client_close(fresh);
    petrel_client_close(cl);
    pc_stop(&c);
}
