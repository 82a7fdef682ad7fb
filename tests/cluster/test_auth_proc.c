/*
 * Authentication on real processes (docs/PROTOCOL.md, "Authentication"): a cluster started
 * with a secret and a read-only secret; every port — registry, shard replicas, CDC replicas,
 * block services, Raft — is attacked with no key, a wrong key, a replayed frame, a frame sealed
 * for another connection and read-only writes. Each attack must be refused (one PT_EACCES error
 * frame, then the connection closes; on Raft ports the message is dropped and counted), nothing
 * may change, and the servers must serve the real client afterwards.
 *
 * The attacker speaks the protocol with raw sockets and the proto helpers (pt_frame_seal,
 * pt_auth_*), not with pt_conn, so a client-side bug cannot hide a server-side one.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cluster/client/registry_client.h"
#include "cluster/net/net.h"
#include "cluster/proto/auth.h"
#include "cluster/proto/shard_msgs.h"
#include "cluster/replica/raft_io.h"
#include "cluster/replica/raft_msg.h"
#include "petrel/client.h"
#include "petrel/common.h"
#include "proc_cluster.h"
#include "test.h"

/* ---- a raw frame client ------------------------------------------------------------------ */

struct raw {
    int fd;
    int sealed;
    struct pt_auth_session ses;
    uint64_t seq_out, seq_in, next_id;
    char refusal[PT_FRAME_ERROR_MESSAGE_MAX + 1]; /* the last refused hello's message */
};

static int tcp_connect(const char *addr)
{
    struct sockaddr_in sa;
    char host[64];
    unsigned port;
    struct timeval tv = {5, 0};
    int fd;
    CHECK_EQ(sscanf(addr, "%63[^:]:%u", host, &port), 2);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    CHECK_EQ(inet_pton(AF_INET, host, &sa.sin_addr), 1);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    CHECK_MSG(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s", addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void raw_open(struct raw *r, const char *addr)
{
    memset(r, 0, sizeof(*r));
    r->fd = tcp_connect(addr);
    r->next_id = 1000;
}

static void send_bytes(int fd, const void *buf, size_t len)
{
    CHECK_EQ(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Build one frame (sealed with key at seq when key is given) into out; returns its length. */
static size_t frame_build(uint8_t *out, uint16_t kind, uint64_t id, const void *body, uint32_t len,
                          const uint8_t *key, uint64_t seq)
{
    struct iovec part = {(void *)body, len};
    uint8_t trailer[PT_FRAME_TRAILER_SIZE];
    pt_frame_seal(out, trailer, 0, kind, id, &part, len ? 1 : 0, key, seq);
    memcpy(out + PT_FRAME_HEADER_SIZE, body, len);
    if (key) memcpy(out + PT_FRAME_HEADER_SIZE + len, trailer, sizeof(trailer));
    return PT_FRAME_HEADER_SIZE + len + (key ? PT_FRAME_TRAILER_SIZE : 0);
}

static int recv_all(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

/* Read one frame: 0 and its (unsealed) body in body[cap], or -1 on EOF / timeout. */
static int raw_recv(struct raw *r, struct pt_frame_header *h, uint8_t *body, size_t cap)
{
    uint8_t hdr[PT_FRAME_HEADER_SIZE];
    if (recv_all(r->fd, hdr, sizeof(hdr)) != 0) return -1;
    CHECK_OK(pt_frame_decode_header(hdr, (uint32_t)cap, h));
    if (h->body_len) CHECK_OK(recv_all(r->fd, body, h->body_len));
    CHECK_OK(pt_frame_check_crc(hdr, h, body));
    if (r->sealed) {
        CHECK_OK(pt_frame_unseal(hdr, h, body, r->ses.s2c, r->seq_in));
        r->seq_in++;
    } else {
        CHECK(!(h->flags & PT_FRAME_AUTH));
    }
    return 0;
}

/* Handshake with key in a hello of the given version: 0, or the error code the server answered
 * (with the error's message in r->refusal). */
static int raw_hello_version(struct raw *r, const struct pt_auth_key *k, uint8_t version)
{
    uint8_t hello[2 + PT_AUTH_ID_BYTES + PT_AUTH_NONCE_BYTES], frame[256], body[2048];
    uint8_t proof[PT_AUTH_MAC_BYTES];
    struct pt_frame_header h;
    struct pt_frame_error e;
    hello[0] = version;
    hello[1] = 0;
    memcpy(hello + 2, k->id, PT_AUTH_ID_BYTES);
    pt_auth_random(hello + 2 + PT_AUTH_ID_BYTES, PT_AUTH_NONCE_BYTES);
    send_bytes(r->fd, frame,
               frame_build(frame, PT_MSG_AUTH_HELLO, r->next_id++, hello, sizeof(hello), NULL, 0));
    CHECK_OK(raw_recv(r, &h, body, sizeof(body)));
    if (h.flags & PT_FRAME_ERROR) {
        CHECK_OK(pt_frame_error_decode(body, h.body_len, &e));
        snprintf(r->refusal, sizeof(r->refusal), "%s", e.message);
        return e.code;
    }
    CHECK_EQ(h.body_len, PT_AUTH_NONCE_BYTES + PT_AUTH_MAC_BYTES);
    pt_auth_server_proof(k, hello + 2 + PT_AUTH_ID_BYTES, body, proof);
    CHECK(pt_auth_mac_equal(proof, body + PT_AUTH_NONCE_BYTES));
    pt_auth_session_derive(k, hello + 2 + PT_AUTH_ID_BYTES, body, &r->ses);
    r->sealed = 1;
    return 0;
}

static int raw_hello(struct raw *r, const struct pt_auth_key *k)
{
    return raw_hello_version(r, k, PT_AUTH_HELLO_VERSION);
}

/* Send a request (sealed when the connection is) and return its frame bytes for replays. */
static size_t raw_send(struct raw *r, uint16_t kind, const void *body, uint32_t len, uint8_t *frame)
{
    size_t n = frame_build(frame, kind, r->next_id++, body, len, r->sealed ? r->ses.c2s : NULL,
                           r->seq_out);
    if (r->sealed) r->seq_out++;
    send_bytes(r->fd, frame, n);
    return n;
}

/* The answer to the last request: 0, or the remote error code. */
static int raw_answer(struct raw *r)
{
    static uint8_t body[PT_FRAME_MAX_BODY_DEFAULT];
    struct pt_frame_header h;
    struct pt_frame_error e;
    CHECK_MSG(raw_recv(r, &h, body, sizeof(body)) == 0, "no answer");
    if (!(h.flags & PT_FRAME_ERROR)) return 0;
    CHECK_OK(pt_frame_error_decode(body, h.body_len, &e));
    return e.code;
}

/* One PT_EACCES error, then the server closes the connection. */
static void expect_refused_and_closed(struct raw *r, const char *what, const char *addr)
{
    uint8_t b;
    int rc = raw_answer(r);
    CHECK_MSG(rc == -PT_EACCES, "%s at %s: answered %s, not PT_EACCES", what, addr,
              petrel_strerror(rc));
    CHECK_MSG(recv(r->fd, &b, 1, 0) == 0, "%s at %s: connection still open", what, addr);
    close(r->fd);
    r->fd = -1;
}

/* ---- the cluster's ports ----------------------------------------------------------------- */

struct target {
    char addr[PT_ADDR_MAX];
    uint16_t write_kind; /* a request that changes state there */
    uint8_t write_body[64];
    uint32_t write_len;
};

static unsigned targets(struct pc_cluster *c, struct target *t, unsigned max)
{
    struct pt_call_opts o = {.timeout_ms = 2000, .retry_budget_ms = 5000};
    struct pt_reg_replica *v = NULL;
    struct pt_reg_blocks *b = NULL;
    struct pt_shard_req q;
    size_t n = 0, i;
    unsigned k = 0;
    int len;
    /* the registry: a heartbeat would register a service */
    snprintf(t[k].addr, sizeof(t[k].addr), "%.*s", (int)sizeof(t[k].addr) - 1, c->registry);
    t[k].write_kind = PT_MSG_REG_BLOCK_SECRET;
    memset(t[k].write_body, 0, 8);
    t[k++].write_len = 8;
    /* shard replicas: unlink /victim */
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_UNLINK;
    q.id = PT_INODE_ROOT;
    snprintf(q.name, sizeof(q.name), "victim");
    q.name_len = 6;
    len = pt_shard_req_encode(&q, t[0].write_body, sizeof(t[0].write_body));
    CHECK(len > 0);
    CHECK_OK(pt_reg_list_shards(c->registry, PT_REG_ALL_SHARDS, &v, &n, &o));
    for (i = 0; i < n && k < max; i++, k++) {
        snprintf(t[k].addr, sizeof(t[k].addr), "%s", v[i].addr);
        t[k].write_kind = PT_MSG_SHARD_REQ;
        CHECK_EQ(pt_shard_req_encode(&q, t[k].write_body, sizeof(t[k].write_body)), len);
        t[k].write_len = (uint32_t)len;
    }
    free(v);
    CHECK_OK(pt_reg_list_cdc(c->registry, &v, &n, &o));
    for (i = 0; i < n && k < max; i++, k++) {
        snprintf(t[k].addr, sizeof(t[k].addr), "%s", v[i].addr);
        t[k].write_kind = PT_MSG_CDC_REQ;
        memset(t[k].write_body, 7, 16);
        t[k].write_len = 16;
    }
    free(v);
    CHECK_OK(pt_reg_list_blocks(c->registry, &b, &n, &o));
    for (i = 0; i < n && k < max; i++, k++) {
        snprintf(t[k].addr, sizeof(t[k].addr), "%s", b[i].addr);
        t[k].write_kind = PT_MSG_BLOCK_ERASE;
        memset(t[k].write_body, 0, 32);
        t[k].write_len = 32;
    }
    free(b);
    return k;
}

static int victim_exists(struct petrel_client *cl)
{
    struct petrel_stat st;
    int rc = petrel_client_stat(cl, "/victim", &st);
    CHECK_MSG(rc == 0 || rc == -PT_ENOENT, "stat /victim: %s", petrel_strerror(rc));
    return rc == 0;
}

static long one_byte(void *ctx, void *buf, size_t cap)
{
    int *done = ctx;
    if (*done || !cap) return 0;
    *done = 1;
    memcpy(buf, "v", 1);
    return 1;
}

static int keep_byte(void *ctx, const void *buf, size_t len)
{
    if (len) memcpy(ctx, buf, 1);
    return 0;
}

static void make_victim(struct petrel_client *cl)
{
    int done = 0;
    CHECK_OK(petrel_client_write_file(cl, "/victim", one_byte, &done, NULL));
}

/* How many "refused a connection from" lines a server's log holds. */
static unsigned refusal_lines(struct pc_cluster *c, const char *addr)
{
    unsigned i, n = 0;
    char line[1024], needle[128];
    snprintf(needle, sizeof(needle), "%.100s: refused a connection from", addr);
    for (i = 0; i < c->nprocs; i++) {
        FILE *f = fopen(c->procs[i].log, "r");
        if (!f) continue;
        while (fgets(line, sizeof(line), f))
            n += strstr(line, needle) != NULL;
        fclose(f);
    }
    return n;
}

TEST_T(auth_every_frame_port_refuses_strangers_replays_and_readonly_writes, 240)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct target t[16];
    struct pt_auth_key full, ro, wrong;
    char err[700];
    uint8_t frame[256], replay[256];
    size_t replay_len;
    unsigned nt, i;
    uint64_t t0;

    pc_start_auth(&c, 1, 3, 2, 1);
    CHECK_OK(pt_auth_key_load(c.secret, &full, err, sizeof(err)));
    CHECK_OK(pt_auth_key_load(c.ro_secret, &ro, err, sizeof(err)));
    pt_auth_key_from_secret("not the cluster's secret, 32+ bytes long", 40, &wrong);
    cl = pc_client(&c, 20000);
    make_victim(cl);
    nt = targets(&c, t, 16);
    CHECK_EQ(nt, 1 + 3 + 3 + 2);
    t0 = pc_now_ms();

    for (i = 0; i < nt; i++) {
        struct raw r, r2;
        const char *a = t[i].addr;
        /* 1. no key: the first frame is a request, not a hello */
        raw_open(&r, a);
        raw_send(&r, t[i].write_kind, t[i].write_body, t[i].write_len, frame);
        expect_refused_and_closed(&r, "no key", a);
        /* 2. a wrong key: refused at the hello */
        raw_open(&r, a);
        CHECK_EQ(raw_hello(&r, &wrong), -PT_EACCES);
        CHECK_MSG(recv(r.fd, frame, 1, 0) == 0, "wrong key at %s: connection still open", a);
        close(r.fd);
        /* 2b. the right key in a hello of version 1 (BLAKE2b frame MACs): refused, saying so */
        raw_open(&r, a);
        CHECK_EQ(raw_hello_version(&r, &full, 1), -PT_EACCES);
        CHECK_MSG(strstr(r.refusal, "another version") != NULL, "%s: %s", a, r.refusal);
        close(r.fd);
        /* 3. a frame replayed on its own connection: the first is served, the copy refused */
        raw_open(&r, a);
        CHECK_OK(raw_hello(&r, &full));
        replay_len = raw_send(&r, PT_MSG_PING, "ping", 4, replay);
        CHECK_OK(raw_answer(&r));
        send_bytes(r.fd, replay, replay_len);
        expect_refused_and_closed(&r, "replayed frame", a);
        /* ... and on a new connection (before and after its hello) */
        raw_open(&r, a);
        send_bytes(r.fd, replay, replay_len);
        expect_refused_and_closed(&r, "replay on a new connection", a);
        raw_open(&r, a);
        CHECK_OK(raw_hello(&r, &full));
        send_bytes(r.fd, replay, replay_len);
        expect_refused_and_closed(&r, "replay after a new hello", a);
        /* 4. a frame sealed for connection r2, sent on r with the very sequence number r
         * expects next (0): only the session keys tell the connections apart */
        raw_open(&r, a);
        raw_open(&r2, a);
        CHECK_OK(raw_hello(&r, &full));
        CHECK_OK(raw_hello(&r2, &full));
        replay_len = raw_send(&r2, PT_MSG_PING, "r2", 2, replay);
        CHECK_OK(raw_answer(&r2));
        send_bytes(r.fd, replay, replay_len);
        expect_refused_and_closed(&r, "frame of another connection", a);
        close(r2.fd);
        /* 5. read-only key: reads served, writes refused, the connection kept */
        raw_open(&r, a);
        CHECK_OK(raw_hello(&r, &ro));
        raw_send(&r, PT_MSG_PING, "ro", 2, frame);
        CHECK_OK(raw_answer(&r));
        raw_send(&r, t[i].write_kind, t[i].write_body, t[i].write_len, frame);
        CHECK_EQ(raw_answer(&r), -PT_EACCES);
        raw_send(&r, PT_MSG_PING, "still here", 10, frame);
        CHECK_OK(raw_answer(&r));
        close(r.fd);
    }
    /* Nothing changed (every shard replica was asked to unlink /victim without the key and
     * with the read-only key), the cluster serves, and each server logged its refusals once
     * (all came within the interval). */
    CHECK(pc_now_ms() - t0 < PT_SERVER_AUTH_LOG_MS);
    CHECK(victim_exists(cl));
    for (i = 0; i < nt; i++)
        CHECK_MSG(refusal_lines(&c, t[i].addr) == 1, "%s logged %u refusal lines, want 1",
                  t[i].addr, refusal_lines(&c, t[i].addr));
    petrel_client_close(cl);
    cl = pc_client(&c, 20000);
    {
        int done = 0;
        CHECK_OK(petrel_client_write_file(cl, "/after", one_byte, &done, NULL));
    }
    petrel_client_close(cl);
    pc_stop(&c);
}

TEST_T(auth_readonly_client_reads_and_cannot_write, 180)
{
    struct pc_cluster c;
    struct petrel_client *cl;
    struct pt_auth_key ro, full;
    char err[700], buf[8];
    int done = 0;
    pc_start_auth(&c, 1, 1, 2, 1);
    CHECK_OK(pt_auth_key_load(c.ro_secret, &ro, err, sizeof(err)));
    CHECK_OK(pt_auth_key_load(c.secret, &full, err, sizeof(err)));
    cl = pc_client(&c, 20000);
    make_victim(cl);
    CHECK_OK(petrel_client_mkdir(cl, "/dir"));
    petrel_client_close(cl);
    /* The same library with the read-only key (pooled connections hold the old key). */
    pt_auth_set_process(&ro, NULL, NULL);
    pt_call_pool_clear();
    cl = pc_client(&c, 3000);
    CHECK(victim_exists(cl));
    {
        uint64_t got = 0;
        CHECK_OK(petrel_client_read(cl, "/victim", 0, 1, keep_byte, buf, &got));
        CHECK_EQ(got, 1);
        CHECK_EQ(buf[0], 'v');
    }
    CHECK_EQ(petrel_client_write_file(cl, "/new", one_byte, &done, NULL), -PT_EACCES);
    CHECK_EQ(petrel_client_unlink(cl, "/victim"), -PT_EACCES);
    CHECK_EQ(petrel_client_mkdir(cl, "/dir2"), -PT_EACCES);
    CHECK_EQ(petrel_client_rename(cl, "/victim", "/dir/victim"), -PT_EACCES);
    CHECK_EQ(petrel_client_rename(cl, "/victim", "/renamed"), -PT_EACCES);
    CHECK_EQ(petrel_client_rmdir(cl, "/dir"), -PT_EACCES);
    petrel_client_close(cl);
    /* nothing changed */
    pt_auth_set_process(&full, NULL, NULL);
    pt_call_pool_clear();
    cl = pc_client(&c, 20000);
    CHECK(victim_exists(cl));
    {
        struct petrel_stat st;
        CHECK_EQ(petrel_client_stat(cl, "/new", &st), -PT_ENOENT);
        CHECK_EQ(petrel_client_stat(cl, "/dir2", &st), -PT_ENOENT);
        CHECK_EQ(petrel_client_stat(cl, "/renamed", &st), -PT_ENOENT);
        CHECK_OK(petrel_client_stat(cl, "/dir", &st));
    }
    petrel_client_close(cl);
    pc_stop(&c);
}

TEST_T(auth_client_with_a_key_refuses_a_server_without, 120)
{
    struct pc_cluster c;
    struct pt_auth_key key;
    struct pt_conn *conn;
    struct pt_reply rep;
    uint8_t frame[256];
    pc_start(&c, 1, 1, 1, 0);
    pt_auth_key_from_secret("a secret this unauthenticated cluster does not have", 51, &key);
    /* the server refuses the hello with PT_EACCES (and serves on: a hello is a request it
     * cannot serve, not a framing error): a client that wants authentication gets none */
    CHECK_EQ(pt_conn_open_key(c.registry, 2000, 0, &key, &conn), -PT_EACCES);
    {
        struct raw r;
        raw_open(&r, c.registry);
        CHECK_EQ(raw_hello(&r, &key), -PT_EACCES);
        raw_send(&r, PT_MSG_PING, "on", 2, frame);
        CHECK_OK(raw_answer(&r));
        close(r.fd);
    }
    /* and without a key the server serves as before */
    CHECK_OK(pt_conn_open_key(c.registry, 2000, 0, NULL, &conn));
    CHECK_OK(pt_conn_call(conn, PT_MSG_PING, "x", 1, 2000, &rep));
    pt_reply_free(&rep);
    pt_conn_close(conn);
    pc_stop(&c);
}

/* ---- Raft ports -------------------------------------------------------------------------- */

struct replica_info {
    char client[PT_ADDR_MAX], raft[64];
    unsigned id; /* Raft id: replica number + 1 */
    int leader;
    uint64_t received, drop_auth, drop_replay;
};

static void replica_info(const char *client, struct replica_info *ri)
{
    struct pt_call_opts o = {.timeout_ms = 2000, .retry_budget_ms = 5000};
    struct pt_reply rep;
    struct pt_cursor cur;
    char addr[PT_ADDR_MAX];
    snprintf(addr, sizeof(addr), "%s", client); /* client may be ri->client */
    memset(ri, 0, sizeof(*ri));
    snprintf(ri->client, sizeof(ri->client), "%s", addr);
    CHECK_OK(pt_call(client, PT_MSG_NODE_INFO, NULL, 0, &o, &rep));
    pt_cursor_init(&cur, rep.body, rep.body_len);
    (void)pt_dec_u8(&cur);
    ri->id = pt_dec_u8(&cur) + 1u;
    ri->leader = pt_dec_u8(&cur);
    pt_dec_str(&cur, ri->raft, sizeof(ri->raft));
    ri->received = pt_dec_u64(&cur);
    ri->drop_auth = pt_dec_u64(&cur);
    ri->drop_replay = pt_dec_u64(&cur);
    CHECK(pt_cursor_ok(&cur));
    pt_reply_free(&rep);
}

/* A connection to a Raft port claiming to be `name` (the env handshake, docs 6.1). */
static int raft_connect(const char *raft_addr, const char *name)
{
    uint8_t hs[6 + 64];
    size_t n = strlen(name);
    int fd = tcp_connect(raft_addr);
    pt_put_le32(hs, 0x564e4550u);
    hs[4] = 1;
    hs[5] = (uint8_t)n;
    memcpy(hs + 6, name, n);
    send_bytes(fd, hs, 6 + n);
    return fd;
}

static void raft_send(int fd, const uint8_t *msg, size_t len)
{
    uint8_t l[4];
    pt_put_le32(l, (uint32_t)len);
    send_bytes(fd, l, 4);
    send_bytes(fd, msg, len);
}

/* The server closed the connection (EOF within the socket's 5 s receive timeout). */
static void expect_closed(int fd, const char *what)
{
    uint8_t b;
    CHECK_MSG(recv(fd, &b, 1, 0) == 0, "%s: connection not closed", what);
    close(fd);
}

/* A RequestVote result of term 0 from `from` to `to` (harmless: libraft ignores it). */
static size_t vote_result(uint8_t **out, unsigned from, unsigned to, const uint8_t *key,
                          uint64_t seq)
{
    struct pt_raft_msg_header h;
    struct raft_message m;
    size_t len;
    memset(&h, 0, sizeof(h));
    memset(&m, 0, sizeof(m));
    h.group = PT_RAFT_GROUP(1, 0);
    h.from = from;
    h.to = to;
    h.flags = key ? PT_RAFT_MSG_AUTH : 0;
    m.type = RAFT_IO_REQUEST_VOTE_RESULT;
    CHECK_OK(pt_raft_msg_encode(&h, &m, out, &len));
    if (key) pt_raft_msg_seal(*out, len, key, seq);
    return len;
}

/* Poll a replica's counters until cond holds (the server reads the socket asynchronously). */
#define WAIT_INFO(ri, cond)                                                                        \
    do {                                                                                           \
        uint64_t w0_ = pc_now_ms();                                                                \
        for (;;) {                                                                                 \
            replica_info(target->client, (ri));                                                    \
            if (cond) break;                                                                       \
            CHECK_MSG(pc_now_ms() - w0_ < 10000, "timed out waiting for %s", #cond);               \
            usleep(20000);                                                                         \
        }                                                                                          \
    } while (0)

TEST_T(auth_raft_port_drops_unsealed_wrong_key_readonly_and_replayed_messages, 180)
{
    struct pc_cluster c;
    struct pt_reg_replica *v = NULL;
    struct pt_call_opts o = {.timeout_ms = 2000, .retry_budget_ms = 5000};
    struct replica_info ri[3], *target = NULL, *claim = NULL, now;
    struct pt_auth_key full, wrong, ro;
    struct petrel_client *cl;
    uint8_t key[PT_AUTH_KEY_BYTES], bad[PT_AUTH_KEY_BYTES], ro_raft[PT_AUTH_KEY_BYTES], *msg;
    char err[700];
    size_t n = 0, i, len;
    uint64_t seq;
    unsigned leader;
    int fd;

    pc_start_auth(&c, 1, 3, 1, 0);
    CHECK_OK(pt_auth_key_load(c.secret, &full, err, sizeof(err)));
    pt_auth_key_from_secret("not the cluster's secret, 32+ bytes long", 40, &wrong);
    pt_auth_raft_key(&full, key);
    pt_auth_raft_key(&wrong, bad);
    CHECK_OK(pt_auth_key_load(c.ro_secret, &ro, err, sizeof(err)));
    pt_auth_raft_key(&ro, ro_raft);
    CHECK_OK(pc_shard_leader(&c, 0, &leader));
    CHECK_OK(pt_reg_list_shards(c.registry, 0, &v, &n, &o));
    CHECK_EQ(n, 3);
    for (i = 0; i < 3; i++)
        replica_info(v[i].addr, &ri[i]);
    free(v);
    /* Target a follower and claim to be the other follower: followers do not talk to each
     * other while a leader holds, so that sender's window sees only what we send. */
    for (i = 0; i < 3; i++)
        if (!ri[i].leader) {
            if (!target)
                target = &ri[i];
            else
                claim = &ri[i];
        }
    CHECK(target && claim);
    /* unsealed: dropped, the connection closed */
    fd = raft_connect(target->raft, claim->raft);
    len = vote_result(&msg, claim->id, target->id, NULL, 0);
    raft_send(fd, msg, len);
    free(msg);
    WAIT_INFO(&now, now.drop_auth == target->drop_auth + 1);
    expect_closed(fd, "unsealed Raft message");
    /* sealed with the wrong key (an incarnation of the claimed sender never seen: fresh) */
    fd = raft_connect(target->raft, claim->raft);
    seq = (uint64_t)0x7e57a5e5u << 32 | 1000u;
    len = vote_result(&msg, claim->id, target->id, bad, seq);
    raft_send(fd, msg, len);
    free(msg);
    WAIT_INFO(&now, now.drop_auth == target->drop_auth + 2);
    expect_closed(fd, "Raft message sealed with a wrong key");
    /* sealed with what the read-only key would give: no Raft key at all */
    fd = raft_connect(target->raft, claim->raft);
    len = vote_result(&msg, claim->id, target->id, ro_raft, seq);
    raft_send(fd, msg, len);
    free(msg);
    WAIT_INFO(&now, now.drop_auth == target->drop_auth + 3);
    expect_closed(fd, "Raft message sealed with the read-only key");
    /* sealed with the cluster key: accepted once (the connection stays), its copy dropped as
     * a replay (and the connection closed), on the same or on a new connection */
    fd = raft_connect(target->raft, claim->raft);
    len = vote_result(&msg, claim->id, target->id, key, seq);
    raft_send(fd, msg, len);
    WAIT_INFO(&now, now.received > target->received);
    CHECK_EQ(now.drop_replay, target->drop_replay);
    raft_send(fd, msg, len);
    WAIT_INFO(&now, now.drop_replay == target->drop_replay + 1);
    expect_closed(fd, "replayed Raft message");
    fd = raft_connect(target->raft, claim->raft);
    raft_send(fd, msg, len);
    WAIT_INFO(&now, now.drop_replay == target->drop_replay + 2);
    expect_closed(fd, "Raft message replayed on a new connection");
    /* an older count than the newest seen, beyond the window of 64: a replay too */
    fd = raft_connect(target->raft, claim->raft);
    pt_raft_msg_seal(msg, len, key, seq - 64);
    raft_send(fd, msg, len);
    WAIT_INFO(&now, now.drop_replay == target->drop_replay + 3);
    expect_closed(fd, "Raft message older than the window");
    free(msg);
    CHECK_EQ(now.drop_auth, target->drop_auth + 3);
    /* logged once for all of these (within the interval) */
    {
        unsigned lines = 0, p;
        char line[1024], needle[128];
        snprintf(needle, sizeof(needle), "%s: refused a message from", target->raft);
        for (p = 0; p < c.nprocs; p++) {
            FILE *f = fopen(c.procs[p].log, "r");
            if (!f) continue;
            while (fgets(line, sizeof(line), f))
                lines += strstr(line, needle) != NULL;
            fclose(f);
        }
        CHECK_MSG(lines == 1, "%u refusal lines for %s, want 1", lines, target->raft);
    }
    /* the group still commits */
    cl = pc_client(&c, 20000);
    make_victim(cl);
    CHECK(victim_exists(cl));
    petrel_client_close(cl);
    pc_stop(&c);
}

/* ---- the client side against an impostor ------------------------------------------------- */

/* A listener that answers one hello with a well-formed reply whose proof is wrong (it does
 * not hold the key) and then waits for the client to go away. */
struct impostor {
    int lfd;
    char addr[64];
    pthread_t thread;
};

static void *impostor_main(void *arg)
{
    struct impostor *im = arg;
    uint8_t hdr[PT_FRAME_HEADER_SIZE], body[128], reply[64], frame[256], b;
    struct pt_frame_header h;
    int fd = accept(im->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    if (recv_all(fd, hdr, sizeof(hdr)) == 0 && pt_frame_decode_header(hdr, sizeof(body), &h) == 0 &&
        recv_all(fd, body, h.body_len) == 0) {
        struct iovec part = {reply, sizeof(reply)};
        pt_auth_random(reply, sizeof(reply)); /* a nonce and a proof it cannot compute */
        pt_frame_seal(frame, NULL, PT_FRAME_RESPONSE, PT_MSG_AUTH_HELLO, h.request_id, &part, 1,
                      NULL, 0);
        memcpy(frame + PT_FRAME_HEADER_SIZE, reply, sizeof(reply));
        send_bytes(fd, frame, PT_FRAME_HEADER_SIZE + sizeof(reply));
        while (recv(fd, &b, 1, 0) > 0) {
        }
    }
    close(fd);
    return NULL;
}

TEST_T(auth_client_refuses_a_server_that_cannot_prove_the_key, 60)
{
    struct impostor im;
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    struct pt_auth_key key;
    struct pt_conn *conn = NULL;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    im.lfd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(im.lfd >= 0);
    CHECK_OK(bind(im.lfd, (struct sockaddr *)&sa, sizeof(sa)));
    CHECK_OK(listen(im.lfd, 4));
    CHECK_OK(getsockname(im.lfd, (struct sockaddr *)&sa, &len));
    snprintf(im.addr, sizeof(im.addr), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    CHECK_OK(pthread_create(&im.thread, NULL, impostor_main, &im));
    pt_auth_key_from_secret("the key the impostor does not hold, 32+", 39, &key);
    CHECK_EQ(pt_conn_open_key(im.addr, 3000, 0, &key, &conn), -PT_EACCES);
    CHECK(conn == NULL);
    pthread_join(im.thread, NULL);
    close(im.lfd);
}
