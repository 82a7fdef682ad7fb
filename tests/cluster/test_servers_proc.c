/*
 * The registry and block services as processes (build/petrel) on loopback with OS-assigned
 * ports, started by the test and always killed with it: malformed and truncated frames and
 * bodies get an error reply or a closed connection and the server stays up; writes without
 * a valid certificate are refused; kill -9 and restart keep blocks and registry state;
 * --using-dynamic-ports forgets stored addresses.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/client/blocks_client.h"
#include "cluster/net/net.h"
#include "petrel/common.h"
#include "petrel/prng.h"
#include "servers_fixture.h"
#include "test.h"

static void start_registry(struct server_proc *p, const char *dir, int dynamic)
{
    const char *args[] = {"registry", "--dir",       dir,
                          "--listen", "127.0.0.1:0", dynamic ? "--using-dynamic-ports" : NULL,
                          NULL};
    CHECK_MSG(proc_start(p, 1, args) == 0, "registry did not start");
}

static void start_blocks(struct server_proc *p, const char *registry, const char *d1,
                         const char *d2)
{
    const char *args[] = {"blocks", "--registry", registry, "--failure-domain", "m1", "--dir", d1,
                          "--dir",  d2,           NULL};
    CHECK_MSG(proc_start(p, 2, args) == 0, "block services did not start");
}

static void ping(const char *addr)
{
    struct pt_conn *c;
    struct pt_reply rep;
    CHECK_OK(pt_conn_open(addr, 2000, 0, &c));
    CHECK_OK(pt_conn_call(c, PT_MSG_PING, "up?", 3, 2000, &rep));
    CHECK_MEM(rep.body, "up?", 3);
    pt_reply_free(&rep);
    pt_conn_close(c);
}

/* Send raw bytes, half-close, drain until the server closes or 5 s pass. */
static void send_raw(const char *addr, const uint8_t *bytes, size_t len)
{
    struct sockaddr_storage ss;
    struct timeval tv = {5, 0};
    uint8_t buf[4096];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t n;
    CHECK_OK(pt_addr_parse(addr, &ss));
    CHECK(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (len) send(fd, bytes, len, MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
    }
    CHECK_MSG(n == 0 || errno == ECONNRESET, "server neither replied nor closed");
    close(fd);
}

/* Malformed input at every layer; the server must survive all of it. */
static void abuse(const char *addr, const uint16_t *kinds, size_t nkinds, uint64_t seed)
{
    uint8_t frame[PT_FRAME_HEADER_SIZE + 64], junk[512];
    struct pt_prng g;
    struct pt_conn *c;
    struct pt_reply rep;
    size_t cut, k, len;
    int i;
    pt_prng_seed(&g, seed);
    memset(frame + PT_FRAME_HEADER_SIZE, 0x11, 64);
    pt_frame_encode_header(frame, 0, kinds[0], 1, frame + PT_FRAME_HEADER_SIZE, 64);
    for (cut = 0; cut < sizeof(frame); cut += 5)
        send_raw(addr, frame, cut);
    for (i = 0; i < 30; i++) {
        len = (size_t)pt_prng_below(&g, sizeof(junk));
        pt_prng_fill(&g, junk, len);
        if (i % 3 == 0 && len >= 4) pt_put_le32(junk, PT_FRAME_MAGIC);
        send_raw(addr, junk, len);
    }
    pt_frame_encode_header(frame, 0, kinds[0], 1, NULL, 0);
    pt_put_le32(frame + 16, 0x7fffffffu); /* a hostile length */
    send_raw(addr, frame, PT_FRAME_HEADER_SIZE);
    pt_frame_encode_header(frame, 0, kinds[0], 1, frame + PT_FRAME_HEADER_SIZE, 64);
    frame[30] ^= 4; /* CRC mismatch */
    send_raw(addr, frame, sizeof(frame));
    /* Well-framed requests with bodies of random bytes and lengths, for every kind. */
    CHECK_OK(pt_conn_open(addr, 2000, 0, &c));
    for (k = 0; k < nkinds; k++)
        for (i = 0; i < 20; i++) {
            int err;
            len = (size_t)pt_prng_below(&g, 80);
            pt_prng_fill(&g, junk, len);
            err = pt_conn_call(c, kinds[k], junk, (uint32_t)len, 5000, &rep);
            CHECK_MSG(err == 0 || rep.remote, "kind %04x: transport error %d", kinds[k], err);
            pt_reply_free(&rep);
        }
    pt_conn_close(c);
    ping(addr);
}

TEST_T(proc_registry_survives_malformed_input_and_restarts, 120)
{
    static const uint16_t kinds[] = {PT_MSG_REG_SHARD_HEARTBEAT,  PT_MSG_REG_CDC_HEARTBEAT,
                                     PT_MSG_REG_BLOCKS_HEARTBEAT, PT_MSG_REG_LIST_SHARDS,
                                     PT_MSG_REG_LIST_CDC,         PT_MSG_REG_LIST_BLOCKS,
                                     PT_MSG_REG_BLOCK_SECRET,     0x0ff0};
    struct server_proc reg;
    struct pt_call_opts opts = {2000, 1, 1};
    struct pt_reg_replica hb, *v;
    size_t n;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/reg", test_tmpdir());
    start_registry(&reg, dir, 0);
    abuse(reg.address[0], kinds, PT_ARRAY_SIZE(kinds), test_seed());
    CHECK(proc_alive(&reg));
    memset(&hb, 0, sizeof(hb));
    hb.shard = 3;
    hb.replica = 1;
    hb.leader = 1;
    snprintf(hb.addr, sizeof(hb.addr), "127.0.0.1:4242");
    CHECK_OK(pt_reg_heartbeat_shard(reg.address[0], &hb, &opts));
    /* kill -9 right after an acknowledged registration: it was durable. */
    proc_stop(&reg, SIGKILL);
    start_registry(&reg, dir, 0);
    CHECK_OK(pt_reg_list_shards(reg.address[0], 3, &v, &n, &opts));
    CHECK(n == 1 && strcmp(v[0].addr, "127.0.0.1:4242") == 0 && v[0].leader);
    free(v);
    proc_stop(&reg, SIGTERM);
    /* A full restart on dynamic ports: the stale address is gone. */
    start_registry(&reg, dir, 1);
    CHECK_OK(pt_reg_list_shards(reg.address[0], 3, &v, &n, &opts));
    CHECK(n == 1 && v[0].addr[0] == 0 && v[0].stale && !v[0].leader);
    free(v);
    CHECK_EQ(proc_stop(&reg, SIGTERM), 0); /* clean exit status on SIGTERM */
}

static uint8_t *pattern(uint32_t size, uint32_t salt)
{
    uint8_t *b = malloc(size ? size : 1);
    for (uint32_t i = 0; i < size; i++)
        b[i] = (uint8_t)((i * 2654435761u + salt) >> 13);
    return b;
}

TEST_T(proc_blocks_certificates_malformed_input_and_kill9, 180)
{
    static const uint16_t kinds[] = {PT_MSG_BLOCK_WRITE,
                                     PT_MSG_BLOCK_READ,
                                     PT_MSG_BLOCK_ERASE,
                                     PT_MSG_BLOCK_STAT,
                                     PT_MSG_BLOCK_LIST,
                                     PT_MSG_BLOCK_INFO,
                                     0x02ff};
    static const uint32_t sizes[] = {0, 1, 4095, 4096, 4097, 1u << 20, PT_BLOCK_MAX_SIZE};
    struct server_proc reg, bl;
    struct pt_call_opts opts = {10000, 2000, 1};
    struct pt_reg_blocks *list;
    struct pt_block_info info;
    char regdir[512], d1[512], d2[512];
    uint64_t ids[2], proof;
    uint8_t secret[16];
    uint8_t *back = malloc(PT_BLOCK_MAX_SIZE);
    size_t n, i;
    uint32_t got;
    snprintf(regdir, sizeof(regdir), "%s/reg", test_tmpdir());
    snprintf(d1, sizeof(d1), "%s/disk1", test_tmpdir());
    snprintf(d2, sizeof(d2), "%s/disk2", test_tmpdir());
    start_registry(&reg, regdir, 0);
    start_blocks(&bl, reg.address[0], d1, d2);
    CHECK_OK(pt_reg_list_blocks(reg.address[0], &list, &n, &opts));
    CHECK_EQ(n, 2);
    free(list);
    CHECK_OK(pt_blocks_info(bl.address[0], &info, &opts));
    ids[0] = info.service_id;
    CHECK_OK(pt_blocks_info(bl.address[1], &info, &opts));
    ids[1] = info.service_id;
    CHECK(ids[0] != ids[1]);
    CHECK_OK(pt_reg_block_secret(reg.address[0], ids[0], secret, &opts));

    abuse(bl.address[0], kinds, PT_ARRAY_SIZE(kinds), test_seed());
    CHECK(proc_alive(&bl));

    /* Writes: refused without a valid certificate, accepted with one. */
    for (i = 0; i < PT_ARRAY_SIZE(sizes); i++) {
        uint8_t *data = pattern(sizes[i], (uint32_t)i);
        uint32_t crc = pt_block_crc(data, sizes[i]);
        uint64_t cert = pt_block_mac(secret, PT_BLOCK_WRITE_CERT, ids[0], 500 + i, crc, sizes[i]);
        CHECK_EQ(
            pt_blocks_write(bl.address[0], 500 + i, crc, data, sizes[i], cert ^ 1, &proof, &opts),
            -PT_ENOTCERT);
        /* The right certificate at the wrong service (another id) is refused too. */
        CHECK_EQ(pt_blocks_write(bl.address[1], 500 + i, crc, data, sizes[i], cert, &proof, &opts),
                 -PT_ENOTCERT);
        CHECK_OK(pt_blocks_write(bl.address[0], 500 + i, crc, data, sizes[i], cert, &proof, &opts));
        CHECK(pt_block_mac_check(secret, PT_BLOCK_WRITE_PROOF, ids[0], 500 + i, crc, sizes[i],
                                 proof));
        free(data);
    }
    /* kill -9 and restart: same identities, every acknowledged block intact. */
    proc_stop(&bl, SIGKILL);
    start_blocks(&bl, reg.address[0], d1, d2);
    CHECK_OK(pt_blocks_info(bl.address[0], &info, &opts));
    CHECK_EQ(info.service_id, ids[0]);
    CHECK_EQ(info.blocks, PT_ARRAY_SIZE(sizes));
    for (i = 0; i < PT_ARRAY_SIZE(sizes); i++) {
        uint8_t *data = pattern(sizes[i], (uint32_t)i);
        CHECK_OK(pt_blocks_read(bl.address[0], 500 + i, 0, sizes[i], back, &got, NULL, &opts));
        CHECK_EQ(got, sizes[i]);
        CHECK_MEM(back, data, sizes[i]);
        free(data);
    }
    /* Clients that hang up before their (large) reply is written do not hurt the server. */
    for (i = 0; i < 20; i++) {
        uint8_t req[PT_FRAME_HEADER_SIZE + 16];
        struct pt_block_read_req rr = {500 + PT_ARRAY_SIZE(sizes) - 1, 0, PT_BLOCK_MAX_SIZE};
        struct pt_cursor rc;
        struct sockaddr_storage ss;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        pt_cursor_init(&rc, req + PT_FRAME_HEADER_SIZE, 16);
        pt_block_enc_read(&rc, &rr);
        pt_frame_encode_header(req, 0, PT_MSG_BLOCK_READ, 1, req + PT_FRAME_HEADER_SIZE, 16);
        CHECK_OK(pt_addr_parse(bl.address[0], &ss));
        CHECK(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 0);
        CHECK(send(fd, req, sizeof(req), MSG_NOSIGNAL) == (ssize_t)sizeof(req));
        if (i % 2) {
            /* Wait for the reply to start flowing, then reset the connection under it. */
            struct linger lg = {1, 0};
            uint8_t first;
            CHECK(recv(fd, &first, 1, 0) == 1);
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(fd);
    }
    ping(bl.address[0]);
    CHECK(proc_alive(&bl) && proc_alive(&reg));
    CHECK_EQ(proc_stop(&bl, SIGTERM), 0);
    CHECK_EQ(proc_stop(&reg, SIGTERM), 0);
    free(back);
}

struct writer {
    const char *addr;
    uint64_t service;
    const uint8_t *secret;
    uint64_t acked[4096];
    volatile int nacked;
    volatile int stop;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct pt_call_opts opts = {5000, 1, 1};
    uint32_t size = 256 * 1024;
    uint64_t id;
    for (id = 1; id < 4096 && !w->stop; id++) {
        uint8_t *data = pattern(size, (uint32_t)id);
        uint32_t crc = pt_block_crc(data, size);
        uint64_t proof;
        int err = pt_blocks_write(
            w->addr, id, crc, data, size,
            pt_block_mac(w->secret, PT_BLOCK_WRITE_CERT, w->service, id, crc, size), &proof, &opts);
        free(data);
        if (err) break;
        w->acked[w->nacked] = id;
        __atomic_store_n(&w->nacked, w->nacked + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

TEST_T(proc_blocks_kill9_mid_write_stream, 120)
{
    struct server_proc reg, bl;
    struct pt_call_opts opts = {10000, 2000, 1};
    struct pt_block_info info;
    struct pt_block_stat *list;
    struct writer w;
    pthread_t t;
    char regdir[512], d1[512], d2[512], tmpdir[600];
    uint8_t secret[16], *back = malloc(256 * 1024);
    size_t n, i;
    int more, k;
    uint64_t deadline;
    uint32_t got;
    snprintf(regdir, sizeof(regdir), "%s/reg", test_tmpdir());
    snprintf(d1, sizeof(d1), "%s/disk1", test_tmpdir());
    snprintf(d2, sizeof(d2), "%s/disk2", test_tmpdir());
    start_registry(&reg, regdir, 0);
    start_blocks(&bl, reg.address[0], d1, d2);
    CHECK_OK(pt_blocks_info(bl.address[0], &info, &opts));
    CHECK_OK(pt_reg_block_secret(reg.address[0], info.service_id, secret, &opts));
    memset(&w, 0, sizeof(w));
    w.addr = bl.address[0];
    w.service = info.service_id;
    w.secret = secret;
    CHECK(pthread_create(&t, NULL, writer_main, &w) == 0);
    /* Until five writes were acknowledged (bounded only by a generous deadline). */
    deadline = pt_now_ms() + 60000;
    for (k = 0; pt_now_ms() < deadline && __atomic_load_n(&w.nacked, __ATOMIC_ACQUIRE) < 5; k++)
        usleep(2000);
    proc_stop(&bl, SIGKILL); /* most likely in the middle of a write */
    w.stop = 1;
    pthread_join(t, NULL);
    CHECK(w.nacked >= 5);
    test_log("%d writes acknowledged before kill -9", w.nacked);
    start_blocks(&bl, reg.address[0], d1, d2);
    /* Every acknowledged block is there and intact... */
    for (k = 0; k < w.nacked; k++) {
        uint8_t *data = pattern(256 * 1024, (uint32_t)w.acked[k]);
        CHECK_OK(pt_blocks_read(bl.address[0], w.acked[k], 0, 256 * 1024, back, &got, NULL, &opts));
        CHECK_MEM(back, data, 256 * 1024);
        free(data);
    }
    /* ...and nothing half-written is visible: every listed block reads back whole. */
    CHECK_OK(pt_blocks_list(bl.address[0], 0, 4096, &list, &n, &more, &opts));
    CHECK(n >= (size_t)w.nacked && n <= (size_t)w.nacked + 1);
    for (i = 0; i < n; i++) {
        uint8_t *data = pattern(256 * 1024, (uint32_t)list[i].block_id);
        CHECK_OK(pt_blocks_read(bl.address[0], list[i].block_id, 0, 256 * 1024, back, &got, NULL,
                                &opts));
        CHECK_MEM(back, data, 256 * 1024);
        free(data);
    }
    free(list);
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", d1);
    {
        DIR *d = opendir(tmpdir);
        struct dirent *e;
        int files = 0;
        CHECK(d != NULL);
        while ((e = readdir(d)) != NULL)
            files += e->d_name[0] != '.';
        closedir(d);
        CHECK_EQ(files, 0); /* interrupted temp files were cleaned at start */
    }
    CHECK_EQ(proc_stop(&bl, SIGTERM), 0);
    CHECK_EQ(proc_stop(&reg, SIGTERM), 0);
    free(back);
}
