/*
 * Block services: the store on disk (round trips of edge sizes, partial reads, rotten pages,
 * damaged headers and truncated files, idempotent writes, erase, persistent id, leftover temp
 * files), and the server in-process with a registry (certificates and proofs, refused writes
 * leave nothing behind, end-to-end verified reads through the client, stat/list/info).
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/blocks/blocks.h"
#include "cluster/client/blocks_client.h"
#include "cluster/net/net.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"
#include "servers_fixture.h"
#include "test.h"

static uint8_t *random_block(uint64_t seed, uint32_t size)
{
    struct pt_prng g;
    uint8_t *b = malloc(size ? size : 1);
    pt_prng_seed(&g, seed);
    pt_prng_fill(&g, b, size);
    return b;
}

/* Flip one byte of a stored block file at a file offset. */
static void damage(struct pt_blocks_local *s, uint64_t id, off_t at)
{
    char path[4096];
    uint8_t byte;
    int fd;
    CHECK_OK(pt_blocks_local_path(s, id, path, sizeof(path)));
    fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    CHECK(pread(fd, &byte, 1, at) == 1);
    byte ^= 0x40;
    CHECK(pwrite(fd, &byte, 1, at) == 1);
    close(fd);
}

/* Read through the store and check the response body layout and content. */
static int store_read_check(struct pt_blocks_store *s, uint64_t id, const uint8_t *want,
                            uint32_t size, uint32_t off, uint32_t count)
{
    uint8_t *body;
    size_t len;
    struct pt_cursor c;
    struct pt_block_read_resp r;
    const uint8_t *crcs, *data;
    int err = pt_blocks_store_read(s, id, off, count, &body, &len);
    if (err) return err;
    pt_cursor_init(&c, body, len);
    pt_block_dec_read_resp(&c, &r);
    crcs = pt_cursor_take(&c, (size_t)r.pages * 4);
    data = pt_cursor_take(&c, r.data_len);
    CHECK(pt_cursor_ok(&c) && pt_cursor_left(&c) == 0);
    CHECK_EQ(r.block_size, size);
    if (count && off < size) {
        CHECK_EQ(r.data_offset, off / 4096 * 4096);
        CHECK(r.data_offset + r.data_len >= PT_MIN(off + count, size));
        CHECK_MEM(data, want + r.data_offset, r.data_len);
        for (uint32_t i = 0; i < r.pages; i++) {
            uint32_t n = PT_MIN(4096, r.data_len - i * 4096);
            CHECK_EQ(pt_get_le32(crcs + 4 * i),
                     petrel_crc32c(0, want + r.data_offset + i * 4096, n));
        }
    } else {
        CHECK_EQ(r.data_len, 0);
    }
    free(body);
    return 0;
}

TEST(blocks_store_round_trip_edge_sizes)
{
    static const uint32_t sizes[] = {0, 1, 4095, 4096, 4097, 8192, 100000, (1u << 20) + 3};
    struct pt_blocks_local s;
    size_t i;
    CHECK_OK(pt_blocks_local_open(test_tmpdir(), &s));
    for (i = 0; i < PT_ARRAY_SIZE(sizes); i++) {
        uint32_t size = sizes[i];
        uint8_t *data = random_block(test_seed() + i, size);
        uint32_t crc = pt_block_crc(data, size);
        struct pt_block_stat st;
        CHECK_EQ(crc, petrel_crc32c(0, data, size)); /* combined from pages == whole */
        CHECK_OK(pt_blocks_local_write(&s, 100 + i, crc, data, size));
        CHECK_OK(pt_blocks_store_stat(&s.store, 100 + i, &st));
        CHECK(st.size == size && st.crc == crc);
        CHECK_OK(store_read_check(&s.store, 100 + i, data, size, 0, size));
        CHECK_OK(store_read_check(&s.store, 100 + i, data, size, 0, UINT32_MAX));
        if (size > 1) {
            CHECK_OK(store_read_check(&s.store, 100 + i, data, size, size / 2, 1));
            CHECK_OK(store_read_check(&s.store, 100 + i, data, size, size - 1, 100));
            CHECK_OK(store_read_check(&s.store, 100 + i, data, size, 1, size - 2));
        }
        CHECK_OK(store_read_check(&s.store, 100 + i, data, size, size, 10)); /* empty at the end */
        CHECK_EQ(store_read_check(&s.store, 100 + i, data, size, size + 1, 1), -PT_ERANGE);
        free(data);
    }
    pt_blocks_local_close(&s);
}

TEST(blocks_store_write_rules)
{
    struct pt_blocks_local s;
    uint8_t *a = random_block(1, 10000), *b = random_block(2, 10000);
    uint32_t ca = pt_block_crc(a, 10000), cb = pt_block_crc(b, 10000);
    struct pt_block_stat st;
    CHECK_OK(pt_blocks_local_open(test_tmpdir(), &s));
    CHECK_EQ(pt_blocks_local_write(&s, 1, ca ^ 1, a, 10000), -PT_EBADMSG);
    CHECK_EQ(pt_blocks_store_stat(&s.store, 1, &st), -PT_ENOENT); /* nothing visible */
    CHECK_OK(pt_blocks_local_write(&s, 1, ca, a, 10000));
    CHECK_OK(pt_blocks_local_write(&s, 1, ca, a, 10000)); /* idempotent */
    CHECK_EQ(pt_blocks_local_write(&s, 1, cb, b, 10000), -PT_EEXIST);
    CHECK_OK(store_read_check(&s.store, 1, a, 10000, 0, 10000));
    CHECK_EQ(pt_blocks_local_write(&s, 2, 0, a, PT_BLOCK_MAX_SIZE + 1), -PT_EFBIG);
    /* Erase: must name the right block; idempotent. */
    CHECK_EQ(pt_blocks_store_erase(&s.store, 1, cb, 10000), -PT_EINVAL);
    CHECK_OK(pt_blocks_store_erase(&s.store, 1, ca, 10000));
    CHECK_EQ(pt_blocks_store_stat(&s.store, 1, &st), -PT_ENOENT);
    CHECK_EQ(store_read_check(&s.store, 1, a, 10000, 0, 1), -PT_ENOENT);
    CHECK_OK(pt_blocks_store_erase(&s.store, 1, ca, 10000));
    CHECK_OK(pt_blocks_local_write(&s, 1, cb, b, 10000)); /* the id is free again */
    free(a);
    free(b);
    pt_blocks_local_close(&s);
}

TEST(blocks_store_rotten_pages_never_returned)
{
    struct pt_blocks_local s;
    uint32_t size = 5 * 4096 + 100, pages = 6;
    uint8_t *data = random_block(3, size);
    uint32_t crc = pt_block_crc(data, size);
    off_t data_off = PT_BLOCK_FILE_HEADER + pages * 4;
    CHECK_OK(pt_blocks_local_open(test_tmpdir(), &s));
    CHECK_OK(pt_blocks_local_write(&s, 9, crc, data, size));
    damage(&s, 9, data_off + 2 * 4096 + 17); /* page 2 */
    CHECK_EQ(store_read_check(&s.store, 9, data, size, 0, size), -PT_ECORRUPT);
    CHECK_EQ(store_read_check(&s.store, 9, data, size, 2 * 4096 + 4000, 1), -PT_ECORRUPT);
    CHECK_EQ(store_read_check(&s.store, 9, data, size, 4096, 4097), -PT_ECORRUPT);
    /* Pages not touched by the range still read fine. */
    CHECK_OK(store_read_check(&s.store, 9, data, size, 0, 2 * 4096));
    CHECK_OK(store_read_check(&s.store, 9, data, size, 3 * 4096, size - 3 * 4096));
    /* The short last page is checked too. */
    damage(&s, 9, data_off + 5 * 4096 + 99);
    CHECK_EQ(store_read_check(&s.store, 9, data, size, size - 1, 1), -PT_ECORRUPT);
    /* A rotten page CRC entry is a rotten page. */
    damage(&s, 9, PT_BLOCK_FILE_HEADER + 4 * 0 + 1);
    CHECK_EQ(store_read_check(&s.store, 9, data, size, 0, 1), -PT_ECORRUPT);
    /* A damaged header makes the whole block corrupt, and a rewrite repairs it. */
    damage(&s, 9, 17);
    CHECK_EQ(store_read_check(&s.store, 9, data, size, 3 * 4096, 1), -PT_ECORRUPT);
    CHECK_OK(pt_blocks_local_write(&s, 9, crc, data, size));
    CHECK_OK(store_read_check(&s.store, 9, data, size, 0, size));
    free(data);
    pt_blocks_local_close(&s);
}

TEST(blocks_store_truncated_file_is_corrupt)
{
    struct pt_blocks_local s;
    char path[4096];
    uint8_t *data = random_block(4, 20000);
    CHECK_OK(pt_blocks_local_open(test_tmpdir(), &s));
    CHECK_OK(pt_blocks_local_write(&s, 5, pt_block_crc(data, 20000), data, 20000));
    CHECK_OK(pt_blocks_local_path(&s, 5, path, sizeof(path)));
    CHECK(truncate(path, 15000) == 0);
    CHECK_EQ(store_read_check(&s.store, 5, data, 20000, 0, 20000), -PT_ECORRUPT);
    CHECK_OK(store_read_check(&s.store, 5, data, 20000, 0, 4096)); /* what is intact still reads */
    CHECK(truncate(path, 10) == 0);
    CHECK_EQ(store_read_check(&s.store, 5, data, 20000, 0, 1), -PT_ECORRUPT);
    free(data);
    pt_blocks_local_close(&s);
}

static void count_block(void *ctx, const struct pt_block_stat *st)
{
    (void)st;
    (*(int *)ctx)++;
}

TEST(blocks_store_identity_scan_and_temp_cleanup)
{
    struct pt_blocks_local s;
    char tmp[4096];
    uint64_t id;
    int n = 0, fd, i;
    uint8_t *data = random_block(5, 3000);
    CHECK_OK(pt_blocks_local_open(test_tmpdir(), &s));
    id = s.store.service_id;
    CHECK(id != 0);
    for (i = 0; i < 10; i++)
        CHECK_OK(pt_blocks_local_write(&s, (uint64_t)i * 0x1234567, pt_block_crc(data, 3000), data,
                                       3000));
    /* A write interrupted by a crash leaves a temp file: reopening removes it. */
    snprintf(tmp, sizeof(tmp), "%s/tmp/0000000000000001.1.1.tmp", test_tmpdir());
    fd = open(tmp, O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0);
    close(fd);
    pt_blocks_local_close(&s);
    CHECK_OK(pt_blocks_local_open(test_tmpdir(), &s));
    CHECK_EQ(s.store.service_id, id);
    CHECK(access(tmp, F_OK) != 0);
    CHECK_OK(pt_blocks_store_scan(&s.store, count_block, &n));
    CHECK_EQ(n, 10);
    pt_blocks_local_close(&s);
    /* A damaged identity file stops the service rather than inventing a new identity. */
    snprintf(tmp, sizeof(tmp), "%s/%s", test_tmpdir(), PT_BLOCKS_ID_FILE);
    CHECK(truncate(tmp, 5) == 0);
    CHECK_EQ(pt_blocks_local_open(test_tmpdir(), &s), -PT_ECORRUPT);
    free(data);
}

/* --- the server in-process ---------------------------------------------------------------- */

struct cert_env {
    struct reg_fixture reg;
    struct blocks_fixture bl;
    const char *addr;
    uint64_t id;
    uint8_t secret[16];
};

static void env_start(struct cert_env *e, const char *root)
{
    char regdir[512], bdir[512];
    const char *dirs[1] = {bdir};
    struct pt_call_opts opts = {2000, 1, 1};
    snprintf(regdir, sizeof(regdir), "%s/reg", root);
    snprintf(bdir, sizeof(bdir), "%s/disk0", root);
    CHECK_OK(reg_fixture_start(&e->reg, regdir, 0));
    CHECK_OK(blocks_fixture_start(&e->bl, e->reg.address, dirs, 1, "rack-1"));
    CHECK(pt_blocks_server_has_secret(e->bl.srv, 0));
    e->addr = pt_blocks_server_address(e->bl.srv, 0);
    e->id = pt_blocks_server_id(e->bl.srv, 0);
    CHECK_OK(pt_reg_block_secret(e->reg.address, e->id, e->secret, &opts));
}

static void env_stop(struct cert_env *e)
{
    blocks_fixture_stop(&e->bl);
    reg_fixture_stop(&e->reg);
}

TEST_T(blocks_server_certificates_and_proofs, 60)
{
    struct cert_env e;
    struct pt_call_opts opts = {5000, 1, 1};
    uint32_t size = 3 * 4096 + 5, crc, got, bsize;
    uint8_t *data = random_block(6, size), *back = malloc(size);
    uint64_t cert, proof;
    struct pt_block_stat st;
    uint8_t wrong[16];
    env_start(&e, test_tmpdir());
    crc = pt_block_crc(data, size);
    cert = pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id, 42, crc, size);
    /* Refused: no certificate, a certificate for another block/size/service, an erase
       certificate, a certificate under another secret. Nothing is stored. */
    CHECK_EQ(pt_blocks_write(e.addr, 42, crc, data, size, 0, &proof, &opts), -PT_ENOTCERT);
    CHECK_EQ(pt_blocks_write(e.addr, 42, crc, data, size,
                             pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id, 43, crc, size),
                             &proof, &opts),
             -PT_ENOTCERT);
    CHECK_EQ(pt_blocks_write(e.addr, 42, crc, data, size,
                             pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id + 1, 42, crc, size),
                             &proof, &opts),
             -PT_ENOTCERT);
    CHECK_EQ(pt_blocks_write(e.addr, 42, crc, data, size,
                             pt_block_mac(e.secret, PT_BLOCK_ERASE_CERT, e.id, 42, crc, size),
                             &proof, &opts),
             -PT_ENOTCERT);
    memcpy(wrong, e.secret, 16);
    wrong[0] ^= 1;
    CHECK_EQ(pt_blocks_write(e.addr, 42, crc, data, size,
                             pt_block_mac(wrong, PT_BLOCK_WRITE_CERT, e.id, 42, crc, size), &proof,
                             &opts),
             -PT_ENOTCERT);
    CHECK_EQ(pt_blocks_stat(e.addr, 42, &st, &opts), -PT_ENOENT);
    /* A valid certificate but data that does not match its CRC. */
    data[7] ^= 1;
    CHECK_EQ(pt_blocks_write(e.addr, 42, crc, data, size, cert, &proof, &opts), -PT_EBADMSG);
    data[7] ^= 1;
    /* Accepted, with a proof the shard can check. */
    CHECK_OK(pt_blocks_write(e.addr, 42, crc, data, size, cert, &proof, &opts));
    CHECK(pt_block_mac_check(e.secret, PT_BLOCK_WRITE_PROOF, e.id, 42, crc, size, proof));
    CHECK(!pt_block_mac_check(e.secret, PT_BLOCK_WRITE_CERT, e.id, 42, crc, size, proof));
    CHECK_OK(pt_blocks_stat(e.addr, 42, &st, &opts));
    CHECK(st.size == size && st.crc == crc);
    CHECK_OK(pt_blocks_read(e.addr, 42, 0, size, back, &got, &bsize, &opts));
    CHECK(got == size && bsize == size);
    CHECK_MEM(back, data, size);
    CHECK_OK(pt_blocks_read(e.addr, 42, 4000, 200, back, &got, NULL, &opts));
    CHECK_EQ(got, 200);
    CHECK_MEM(back, data + 4000, 200);
    CHECK_EQ(pt_blocks_read(e.addr, 42, size + 1, 1, back, &got, NULL, &opts), -PT_ERANGE);
    /* Erase needs its own certificate. */
    CHECK_EQ(pt_blocks_erase(e.addr, 42, crc, size, cert, &proof, &opts), -PT_ENOTCERT);
    CHECK_OK(pt_blocks_read(e.addr, 42, 0, 1, back, &got, NULL, &opts));
    CHECK_OK(pt_blocks_erase(e.addr, 42, crc, size,
                             pt_block_mac(e.secret, PT_BLOCK_ERASE_CERT, e.id, 42, crc, size),
                             &proof, &opts));
    CHECK(pt_block_mac_check(e.secret, PT_BLOCK_ERASE_PROOF, e.id, 42, crc, size, proof));
    CHECK_EQ(pt_blocks_read(e.addr, 42, 0, 1, back, &got, NULL, &opts), -PT_ENOENT);
    env_stop(&e);
    free(data);
    free(back);
}

TEST_T(blocks_server_corrupt_page_detected_end_to_end, 60)
{
    struct cert_env e;
    struct pt_call_opts opts = {5000, 1, 1};
    struct pt_blocks_local view;
    char bdir[512];
    uint32_t size = 4 * 4096, crc, got;
    uint8_t *data = random_block(7, size), *back = malloc(size);
    uint64_t proof;
    env_start(&e, test_tmpdir());
    crc = pt_block_crc(data, size);
    CHECK_OK(pt_blocks_write(e.addr, 7, crc, data, size,
                             pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id, 7, crc, size),
                             &proof, &opts));
    snprintf(bdir, sizeof(bdir), "%s/disk0", test_tmpdir());
    CHECK_OK(pt_blocks_local_open(bdir, &view));
    damage(&view, 7, PT_BLOCK_FILE_HEADER + 4 * 4 + 3 * 4096 + 1);
    memset(back, 0xee, size);
    CHECK_EQ(pt_blocks_read(e.addr, 7, 0, size, back, &got, NULL, &opts), -PT_ECORRUPT);
    CHECK_EQ(got, 0);
    CHECK_EQ(back[0], 0xee); /* not a byte handed out */
    CHECK_OK(pt_blocks_read(e.addr, 7, 0, 3 * 4096, back, &got, NULL, &opts));
    CHECK_MEM(back, data, 3 * 4096);
    pt_blocks_local_close(&view);
    env_stop(&e);
    free(data);
    free(back);
}

TEST_T(blocks_server_stat_list_info_and_heartbeat, 60)
{
    struct cert_env e;
    struct pt_call_opts opts = {5000, 1, 1};
    struct pt_block_stat *v;
    struct pt_block_info info;
    struct pt_reg_blocks *reg;
    size_t n, total = 0;
    int more, i, tries;
    uint64_t deadline;
    uint8_t *data = random_block(8, 1000);
    uint32_t crc = pt_block_crc(data, 1000);
    uint64_t proof, next = 0;
    env_start(&e, test_tmpdir());
    for (i = 0; i < 25; i++) {
        uint64_t id = 1000 + (uint64_t)i * 3;
        CHECK_OK(pt_blocks_write(e.addr, id, crc, data, 1000,
                                 pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id, id, crc, 1000),
                                 &proof, &opts));
    }
    do {
        CHECK_OK(pt_blocks_list(e.addr, next, 10, &v, &n, &more, &opts));
        for (size_t k = 0; k < n; k++)
            CHECK_EQ(v[k].block_id, 1000 + (total + k) * 3);
        total += n;
        if (n) next = v[n - 1].block_id + 1;
        free(v);
    } while (more);
    CHECK_EQ(total, 25);
    CHECK_OK(pt_blocks_info(e.addr, &info, &opts));
    CHECK(info.service_id == e.id && info.blocks == 25 && info.used == 25000);
    CHECK(strcmp(info.failure_domain, "rack-1") == 0 && info.capacity > 0);
    /* The registry learns the usage from heartbeats (every 200 ms here). */
    deadline = pt_now_ms() + 60000;
    for (tries = 0;; tries++) {
        CHECK_OK(pt_reg_list_blocks(e.reg.address, &reg, &n, &opts));
        CHECK_EQ(n, 1);
        if (reg[0].blocks == 25) break;
        free(reg);
        CHECK_MSG(pt_now_ms() < deadline, "the registry did not learn the usage in 60 s");
        usleep(50000);
    }
    CHECK(reg[0].id == e.id && reg[0].used == 25000 && !reg[0].stale);
    CHECK(strcmp(reg[0].addr, e.addr) == 0 && strcmp(reg[0].failure_domain, "rack-1") == 0);
    free(reg);
    env_stop(&e);
    free(data);
}

TEST_T(blocks_server_restart_keeps_blocks_and_index, 60)
{
    struct cert_env e;
    struct pt_call_opts opts = {5000, 1, 1};
    uint32_t size = 70000, crc, got;
    uint8_t *data = random_block(9, size), *back = malloc(size);
    uint64_t proof, id;
    struct pt_block_stat st;
    env_start(&e, test_tmpdir());
    crc = pt_block_crc(data, size);
    id = e.id;
    CHECK_OK(pt_blocks_write(e.addr, 5, crc, data, size,
                             pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id, 5, crc, size),
                             &proof, &opts));
    env_stop(&e);
    env_start(&e, test_tmpdir());
    CHECK_EQ(e.id, id);
    CHECK_OK(pt_blocks_stat(e.addr, 5, &st, &opts));
    CHECK_OK(pt_blocks_read(e.addr, 5, 0, size, back, &got, NULL, &opts));
    CHECK_MEM(back, data, size);
    env_stop(&e);
    free(data);
    free(back);
}

/* Read one response frame from a raw socket into a malloc'd body. */
static void read_response(int fd, struct pt_frame_header *h, uint8_t **body)
{
    uint8_t hdr[PT_FRAME_HEADER_SIZE];
    size_t got = 0;
    while (got < sizeof(hdr)) {
        ssize_t n = recv(fd, hdr + got, sizeof(hdr) - got, 0);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK_OK(pt_frame_decode_header(hdr, 1 << 20, h));
    *body = malloc(h->body_len + 1);
    got = 0;
    while (got < h->body_len) {
        ssize_t n = recv(fd, *body + got, h->body_len - got, 0);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK_OK(pt_frame_check_crc(hdr, h, *body));
}

TEST_T(blocks_server_write_and_erase_of_one_block_never_race, 60)
{
    struct cert_env e;
    struct pt_call_opts opts = {5000, 1, 1};
    /* the largest block one BLOCK_WRITE frame may carry (a larger one is a stream) */
    uint32_t size = PT_BLOCK_CHUNK, crc;
    uint8_t *data = random_block(10, size);
    uint8_t wf[PT_FRAME_HEADER_SIZE + PT_BLOCK_WRITE_FIELDS], ef[PT_FRAME_HEADER_SIZE + 24];
    struct pt_block_write_req w;
    struct pt_block_erase_req er;
    struct pt_cursor c;
    struct sockaddr_storage ss;
    struct pt_frame_header h;
    struct pt_block_stat st;
    uint8_t *body;
    int fd, round, write_ok = 0, erase_err = 1, busy_seen = 0;
    env_start(&e, test_tmpdir());
    crc = pt_block_crc(data, size);
    for (round = 0; round < 3; round++) {
        uint64_t id = 900 + (uint64_t)round;
        struct iovec iov[3];
        w.block_id = id;
        w.crc = crc;
        w.size = size;
        w.cert = pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id, id, crc, size);
        pt_cursor_init(&c, wf + PT_FRAME_HEADER_SIZE, PT_BLOCK_WRITE_FIELDS);
        pt_block_enc_write(&c, &w);
        /* Frame CRC over fields then data. */
        {
            uint8_t *whole = malloc(PT_BLOCK_WRITE_FIELDS + size);
            memcpy(whole, wf + PT_FRAME_HEADER_SIZE, PT_BLOCK_WRITE_FIELDS);
            memcpy(whole + PT_BLOCK_WRITE_FIELDS, data, size);
            pt_frame_encode_header(wf, 0, PT_MSG_BLOCK_WRITE, 1, whole,
                                   PT_BLOCK_WRITE_FIELDS + size);
            free(whole);
        }
        er.block_id = id;
        er.crc = crc;
        er.size = size;
        er.cert = pt_block_mac(e.secret, PT_BLOCK_ERASE_CERT, e.id, id, crc, size);
        pt_cursor_init(&c, ef + PT_FRAME_HEADER_SIZE, 24);
        pt_block_enc_erase(&c, &er);
        pt_frame_encode_header(ef, 0, PT_MSG_BLOCK_ERASE, 2, ef + PT_FRAME_HEADER_SIZE, 24);
        /* Both requests back to back on one connection, before reading any reply. */
        fd = socket(AF_INET, SOCK_STREAM, 0);
        CHECK_OK(pt_addr_parse(e.addr, &ss));
        CHECK(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 0);
        iov[0].iov_base = wf;
        iov[0].iov_len = sizeof(wf);
        iov[1].iov_base = data;
        iov[1].iov_len = size;
        iov[2].iov_base = ef;
        iov[2].iov_len = sizeof(ef);
        {
            size_t total = sizeof(wf) + size + sizeof(ef), sent = 0;
            int k = 0;
            while (sent < total) {
                ssize_t n = writev(fd, iov + k, 3 - k);
                CHECK(n > 0);
                sent += (size_t)n;
                while (k < 3 && (size_t)n >= iov[k].iov_len) {
                    n -= (ssize_t)iov[k].iov_len;
                    k++;
                }
                if (k < 3) {
                    iov[k].iov_base = (char *)iov[k].iov_base + n;
                    iov[k].iov_len -= (size_t)n;
                }
            }
        }
        for (int r = 0; r < 2; r++) {
            read_response(fd, &h, &body);
            if (h.request_id == 1)
                write_ok = !(h.flags & PT_FRAME_ERROR);
            else {
                struct pt_frame_error fe;
                erase_err = 0;
                if (h.flags & PT_FRAME_ERROR) {
                    CHECK_OK(pt_frame_error_decode(body, h.body_len, &fe));
                    erase_err = fe.code;
                }
            }
            free(body);
        }
        close(fd);
        CHECK(write_ok);
        /* Either the erase waited its turn (EBUSY: the block stays), or it ran after the
           write completed (the block is gone). Never a proof with the block still there. */
        CHECK(erase_err == 0 || erase_err == -PT_EBUSY);
        if (erase_err == -PT_EBUSY) busy_seen++;
        if (erase_err == 0)
            CHECK_EQ(pt_blocks_stat(e.addr, id, &st, &opts), -PT_ENOENT);
        else
            CHECK_OK(pt_blocks_stat(e.addr, id, &st, &opts));
    }
    test_log("erase refused as busy in %d of 3 rounds", busy_seen);
    env_stop(&e);
    free(data);
}
