/*
 * Streamed block transfer (docs/PROTOCOL.md, "Streamed writes"): a real block service on
 * loopback fed hostile streams by hand -- pieces out of order, a wrong page CRC mid-stream, a
 * stream cut short, a stream abandoned and replaced, malformed pieces, a block CRC that the
 * pieces do not add up to. Whatever arrives, nothing partial is ever stored or served, no temp
 * file stays behind, and the service keeps serving. Also: a block of the largest size travels
 * in frames no larger than one chunk both ways (the service refuses a bigger frame); a writer
 * that gives the page CRCs it computed once (pt_blocks_write_pages) sends frames whose CRC,
 * combined from them, the service accepts, and a wrong page CRC stores nothing.
 */
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/blocks/blocks.h"
#include "cluster/client/blocks_client.h"
#include "cluster/net/net.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"
#include "servers_fixture.h"
#include "test.h"

struct stream_env {
    struct reg_fixture reg;
    struct blocks_fixture bl;
    char tmp[600];
    const char *addr;
    uint64_t id;
    uint8_t secret[16];
    struct pt_conn *conn;
};

static void senv_start_idle(struct stream_env *e, const char *root, uint32_t idle_ms)
{
    char regdir[512], bdir[512];
    const char *dirs[1] = {bdir};
    struct pt_call_opts opts = {2000, 1, 1};
    snprintf(regdir, sizeof(regdir), "%s/reg", root);
    snprintf(bdir, sizeof(bdir), "%s/disk0", root);
    snprintf(e->tmp, sizeof(e->tmp), "%s/tmp", bdir);
    CHECK_OK(reg_fixture_start(&e->reg, regdir, 0));
    CHECK_OK(blocks_fixture_start_idle(&e->bl, e->reg.address, dirs, 1, "rack-1", idle_ms));
    CHECK(pt_blocks_server_has_secret(e->bl.srv, 0));
    e->addr = pt_blocks_server_address(e->bl.srv, 0);
    e->id = pt_blocks_server_id(e->bl.srv, 0);
    CHECK_OK(pt_reg_block_secret(e->reg.address, e->id, e->secret, &opts));
    CHECK_OK(pt_conn_open(e->addr, 2000, 0, &e->conn));
}

static void senv_start(struct stream_env *e, const char *root)
{
    senv_start_idle(e, root, 0);
}

static void senv_stop(struct stream_env *e)
{
    pt_conn_close(e->conn);
    blocks_fixture_stop(&e->bl);
    reg_fixture_stop(&e->reg);
}

static uint8_t *random_bytes(uint64_t seed, uint32_t size)
{
    struct pt_prng r;
    uint8_t *p = malloc(size ? size : 1);
    uint32_t i;
    pt_prng_seed(&r, seed);
    for (i = 0; i < size; i++)
        p[i] = (uint8_t)pt_prng_next(&r);
    return p;
}

/* Files in the service's tmp/ (temp files of writes in progress). */
static int temp_files(const struct stream_env *e)
{
    DIR *d = opendir(e->tmp);
    struct dirent *de;
    int n = 0;
    if (!d) return -1;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static int call(struct stream_env *e, uint16_t kind, const struct iovec *parts, int n)
{
    struct pt_reply rep;
    int err = pt_conn_callv(e->conn, kind, parts, n, 5000, &rep);
    pt_reply_free(&rep);
    return err;
}

static int begin(struct stream_env *e, uint64_t block, uint32_t crc, uint32_t size,
                 uint64_t stream)
{
    uint8_t b[PT_BLOCK_BEGIN_FIELDS];
    struct pt_block_write_req w = {block, crc, size, 0};
    struct pt_cursor c;
    struct iovec iov = {b, sizeof(b)};
    w.cert = pt_block_mac(e->secret, PT_BLOCK_WRITE_CERT, e->id, block, crc, size);
    pt_cursor_init(&c, b, sizeof(b));
    pt_block_enc_write(&c, &w);
    pt_enc_u64(&c, stream);
    return call(e, PT_MSG_BLOCK_WRITE_BEGIN, &iov, 1);
}

/* A piece [off, off+len) of data with its page CRCs; flip_crc >= 0 damages that page's CRC. */
static int pages(struct stream_env *e, uint64_t block, uint64_t stream, const uint8_t *data,
                 uint32_t off, uint32_t len, int flip_crc, int32_t pages_delta)
{
    uint8_t f[PT_BLOCK_PAGES_FIELDS], crcs[PT_BLOCK_CHUNK / PT_BLOCK_PAGE_SIZE * 4 + 8];
    struct pt_block_pages_req p = {block, stream, off, pt_block_pages(len)};
    struct pt_cursor c;
    struct iovec iov[3];
    uint32_t i;
    for (i = 0; i < p.pages; i++)
        pt_put_le32(crcs + 4 * i,
                    petrel_crc32c(0, data + off + i * PT_BLOCK_PAGE_SIZE,
                                  PT_MIN(PT_BLOCK_PAGE_SIZE, len - i * PT_BLOCK_PAGE_SIZE)));
    if (flip_crc >= 0) crcs[4 * flip_crc] ^= 1;
    p.pages = (uint32_t)((int32_t)p.pages + pages_delta);
    pt_cursor_init(&c, f, sizeof(f));
    pt_block_enc_pages(&c, &p);
    iov[0].iov_base = f;
    iov[0].iov_len = sizeof(f);
    iov[1].iov_base = crcs;
    iov[1].iov_len = (size_t)PT_MIN(p.pages, pt_block_pages(len)) * 4;
    iov[2].iov_base = (void *)(data + off);
    iov[2].iov_len = len;
    return call(e, PT_MSG_BLOCK_WRITE_PAGES, iov, 3);
}

static int end(struct stream_env *e, uint64_t block, uint64_t stream, uint64_t *proof)
{
    uint8_t b[PT_BLOCK_END_FIELDS];
    struct pt_cursor c;
    struct iovec iov = {b, sizeof(b)};
    struct pt_reply rep;
    int err;
    pt_cursor_init(&c, b, sizeof(b));
    pt_enc_u64(&c, block);
    pt_enc_u64(&c, stream);
    err = pt_conn_callv(e->conn, PT_MSG_BLOCK_WRITE_END, &iov, 1, 5000, &rep);
    if (!err && proof) *proof = rep.body_len == 8 ? pt_get_le64(rep.body) : 0;
    pt_reply_free(&rep);
    return err;
}

/* The block is neither stored nor served, no temp file remains, the service answers. */
static void check_nothing_kept(struct stream_env *e, uint64_t block)
{
    struct pt_call_opts opts = {5000, 1, 1};
    struct pt_block_stat st;
    uint8_t byte;
    uint32_t got;
    CHECK_EQ(pt_blocks_stat(e->addr, block, &st, &opts), -PT_ENOENT);
    CHECK_EQ(pt_blocks_read(e->addr, block, 0, 1, &byte, &got, NULL, &opts), -PT_ENOENT);
    CHECK_EQ(temp_files(e), 0);
}

TEST_T(blocks_stream_hostile_pieces_keep_nothing, 60)
{
    struct stream_env e;
    struct pt_call_opts opts = {5000, 1, 1};
    const uint32_t size = 3 * PT_BLOCK_CHUNK + 100;
    uint8_t *data = random_bytes(21, size), *back = malloc(size);
    uint32_t crc = pt_block_crc(data, size), got;
    uint64_t proof = 0;
    senv_start(&e, test_tmpdir());

    /* Pieces out of order: the second chunk first. The stream is dropped at once. */
    CHECK_OK(begin(&e, 1, crc, size, 11));
    CHECK_EQ(temp_files(&e), 1);
    CHECK_EQ(pages(&e, 1, 11, data, PT_BLOCK_CHUNK, PT_BLOCK_CHUNK, -1, 0), -PT_EPROTO);
    CHECK_EQ(end(&e, 1, 11, NULL), -PT_ENOENT);
    check_nothing_kept(&e, 1);

    /* A wrong page CRC mid-stream (page 5 of the second piece). */
    CHECK_OK(begin(&e, 2, crc, size, 12));
    CHECK_OK(pages(&e, 2, 12, data, 0, PT_BLOCK_CHUNK, -1, 0));
    CHECK_EQ(pages(&e, 2, 12, data, PT_BLOCK_CHUNK, PT_BLOCK_CHUNK, 5, 0), -PT_EBADMSG);
    CHECK_EQ(pages(&e, 2, 12, data, PT_BLOCK_CHUNK, PT_BLOCK_CHUNK, -1, 0), -PT_ENOENT);
    CHECK_EQ(end(&e, 2, 12, NULL), -PT_ENOENT);
    check_nothing_kept(&e, 2);

    /* Page data changed in flight under correct CRCs of the original: caught page by page. */
    CHECK_OK(begin(&e, 3, crc, size, 13));
    data[PT_BLOCK_CHUNK + 9000] ^= 0x40;
    CHECK_EQ(pages(&e, 3, 13, data, 0, PT_BLOCK_CHUNK, -1, 0), 0);
    {
        /* CRCs from the original bytes, data damaged: compute CRCs first, then damage. */
        uint8_t *orig = random_bytes(21, size);
        uint8_t f[PT_BLOCK_PAGES_FIELDS], crcs[PT_BLOCK_CHUNK / PT_BLOCK_PAGE_SIZE * 4];
        struct pt_block_pages_req p = {3, 13, PT_BLOCK_CHUNK, PT_BLOCK_CHUNK / PT_BLOCK_PAGE_SIZE};
        struct pt_cursor c;
        struct iovec iov[3];
        uint32_t i;
        for (i = 0; i < p.pages; i++)
            pt_put_le32(crcs + 4 * i, petrel_crc32c(0, orig + PT_BLOCK_CHUNK + i * 4096, 4096));
        pt_cursor_init(&c, f, sizeof(f));
        pt_block_enc_pages(&c, &p);
        iov[0].iov_base = f;
        iov[0].iov_len = sizeof(f);
        iov[1].iov_base = crcs;
        iov[1].iov_len = sizeof(crcs);
        iov[2].iov_base = data + PT_BLOCK_CHUNK;
        iov[2].iov_len = PT_BLOCK_CHUNK;
        CHECK_EQ(call(&e, PT_MSG_BLOCK_WRITE_PAGES, iov, 3), -PT_EBADMSG);
        free(orig);
    }
    data[PT_BLOCK_CHUNK + 9000] ^= 0x40;
    check_nothing_kept(&e, 3);

    /* A stream cut short: END before the last piece. */
    CHECK_OK(begin(&e, 4, crc, size, 14));
    CHECK_OK(pages(&e, 4, 14, data, 0, PT_BLOCK_CHUNK, -1, 0));
    CHECK_OK(pages(&e, 4, 14, data, PT_BLOCK_CHUNK, PT_BLOCK_CHUNK, -1, 0));
    CHECK_EQ(end(&e, 4, 14, NULL), -PT_EPROTO);
    check_nothing_kept(&e, 4);

    /* Malformed pieces: a page count that does not match the data, a misaligned piece in
       the middle, a piece past the end. */
    CHECK_OK(begin(&e, 5, crc, size, 15));
    CHECK_EQ(pages(&e, 5, 15, data, 0, PT_BLOCK_CHUNK, -1, -1), -PT_EPROTO);
    CHECK_OK(begin(&e, 5, crc, size, 16));
    CHECK_EQ(pages(&e, 5, 16, data, 0, PT_BLOCK_CHUNK - 100, -1, 0), -PT_EPROTO);
    CHECK_OK(begin(&e, 5, crc, size, 17));
    CHECK_OK(pages(&e, 5, 17, data, 0, PT_BLOCK_CHUNK, -1, 0));
    CHECK_OK(pages(&e, 5, 17, data, PT_BLOCK_CHUNK, PT_BLOCK_CHUNK, -1, 0));
    CHECK_OK(pages(&e, 5, 17, data, 2 * PT_BLOCK_CHUNK, PT_BLOCK_CHUNK, -1, 0));
    {
        uint8_t *more = calloc(1, size + PT_BLOCK_CHUNK);
        memcpy(more, data, size);
        CHECK_EQ(pages(&e, 5, 17, more, 3 * PT_BLOCK_CHUNK, 8192, -1, 0), -PT_EPROTO);
        free(more);
    }
    check_nothing_kept(&e, 5);

    /* Every page right, but the certified block CRC is another one: refused at END. */
    CHECK_OK(begin(&e, 6, crc ^ 1, size, 18));
    CHECK_OK(pages(&e, 6, 18, data, 0, PT_BLOCK_CHUNK, -1, 0));
    CHECK_OK(pages(&e, 6, 18, data, PT_BLOCK_CHUNK, PT_BLOCK_CHUNK, -1, 0));
    CHECK_OK(pages(&e, 6, 18, data, 2 * PT_BLOCK_CHUNK, PT_BLOCK_CHUNK, -1, 0));
    CHECK_OK(pages(&e, 6, 18, data, 3 * PT_BLOCK_CHUNK, 100, -1, 0));
    CHECK_EQ(end(&e, 6, 18, NULL), -PT_EBADMSG);
    check_nothing_kept(&e, 6);

    /* A stream abandoned mid-way, then started again by its writer (new stream id): the old
       one is gone (its pieces are refused), its temp file removed, the new one stores. */
    CHECK_OK(begin(&e, 7, crc, size, 19));
    CHECK_OK(pages(&e, 7, 19, data, 0, PT_BLOCK_CHUNK, -1, 0));
    CHECK_EQ(temp_files(&e), 1);
    CHECK_OK(begin(&e, 7, crc, size, 20));
    CHECK_EQ(temp_files(&e), 1);
    CHECK_EQ(pages(&e, 7, 19, data, PT_BLOCK_CHUNK, PT_BLOCK_CHUNK, -1, 0), -PT_ENOENT);
    CHECK_OK(pages(&e, 7, 20, data, 0, PT_BLOCK_CHUNK, -1, 0));
    CHECK_OK(pages(&e, 7, 20, data, PT_BLOCK_CHUNK, PT_BLOCK_CHUNK, -1, 0));
    CHECK_OK(pages(&e, 7, 20, data, 2 * PT_BLOCK_CHUNK, PT_BLOCK_CHUNK, -1, 0));
    CHECK_OK(pages(&e, 7, 20, data, 3 * PT_BLOCK_CHUNK, 100, -1, 0));
    CHECK_OK(end(&e, 7, 20, &proof));
    CHECK(pt_block_mac_check(e.secret, PT_BLOCK_WRITE_PROOF, e.id, 7, crc, size, proof));
    CHECK_EQ(temp_files(&e), 0);
    CHECK_OK(pt_blocks_read(e.addr, 7, 0, size, back, &got, NULL, &opts));
    CHECK_EQ(got, size);
    CHECK_MEM(back, data, size);

    /* Pieces for a stream nobody began, and without a certificate nothing starts. */
    CHECK_EQ(pages(&e, 8, 99, data, 0, PT_BLOCK_CHUNK, -1, 0), -PT_ENOENT);
    CHECK_EQ(end(&e, 8, 99, NULL), -PT_ENOENT);
    {
        uint8_t b[PT_BLOCK_BEGIN_FIELDS];
        struct pt_block_write_req w = {8, crc, size, 12345};
        struct pt_cursor c;
        struct iovec iov = {b, sizeof(b)};
        pt_cursor_init(&c, b, sizeof(b));
        pt_block_enc_write(&c, &w);
        pt_enc_u64(&c, 1);
        CHECK_EQ(call(&e, PT_MSG_BLOCK_WRITE_BEGIN, &iov, 1), -PT_ENOTCERT);
    }
    check_nothing_kept(&e, 8);
    senv_stop(&e);
    free(data);
    free(back);
}

TEST_T(blocks_stream_largest_block_travels_in_bounded_frames, 60)
{
    struct stream_env e;
    struct pt_call_opts opts = {10000, 1, 1};
    const uint32_t size = PT_BLOCK_MAX_SIZE;
    uint8_t *data = random_bytes(22, size), *back = malloc(size);
    uint32_t crc = pt_block_crc(data, size), got, bsize;
    uint64_t cert, proof;
    struct pt_conn *small;
    struct pt_reply rep;
    uint8_t req[16];
    struct pt_cursor c;
    struct pt_block_read_req r = {30, 0, PT_BLOCK_CHUNK + 1};
    senv_start(&e, test_tmpdir());
    cert = pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id, 30, crc, size);
    /* One 8 MiB BLOCK_WRITE frame is refused by the transport; the stream goes through. */
    CHECK(pt_blocks_write(e.addr, 31, crc, data, size,
                          pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id, 31, crc, size), &proof,
                          &opts) == 0);
    {
        struct iovec iov[2];
        uint8_t f[PT_BLOCK_WRITE_FIELDS];
        struct pt_block_write_req w = {32, crc, size, 0};
        w.cert = pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id, 32, crc, size);
        pt_cursor_init(&c, f, sizeof(f));
        pt_block_enc_write(&c, &w);
        iov[0].iov_base = f;
        iov[0].iov_len = sizeof(f);
        iov[1].iov_base = data;
        iov[1].iov_len = size;
        CHECK(pt_conn_callv(e.conn, PT_MSG_BLOCK_WRITE, iov, 2, 5000, &rep) != 0);
        pt_reply_free(&rep);
    }
    CHECK_OK(pt_blocks_write(e.addr, 30, crc, data, size, cert, &proof, &opts));
    CHECK(pt_block_mac_check(e.secret, PT_BLOCK_WRITE_PROOF, e.id, 30, crc, size, proof));
    /* Read back by a client that accepts no response frame above PT_BLOCK_MAX_BODY. */
    pt_call_pool_clear();
    CHECK_OK(pt_conn_open(e.addr, 2000, PT_BLOCK_MAX_BODY, &small));
    pt_call_pool_put(small);
    CHECK_OK(pt_blocks_read(e.addr, 30, 0, size, back, &got, &bsize, &opts));
    CHECK(got == size && bsize == size);
    CHECK_MEM(back, data, size);
    CHECK_OK(pt_blocks_read(e.addr, 30, 5000, 3 * PT_BLOCK_CHUNK + 7, back, &got, NULL, &opts));
    CHECK_EQ(got, 3 * PT_BLOCK_CHUNK + 7);
    CHECK_MEM(back, data + 5000, got);
    /* A read range above one chunk in one request is refused, not served in one frame. */
    pt_cursor_init(&c, req, sizeof(req));
    pt_block_enc_read(&c, &r);
    CHECK_EQ(pt_conn_call(e.conn, PT_MSG_BLOCK_READ, req, sizeof(req), 5000, &rep), -PT_E2BIG);
    pt_reply_free(&rep);
    pt_call_pool_clear();
    senv_stop(&e);
    free(data);
    free(back);
}

TEST_T(blocks_stream_abandoned_is_dropped_when_idle, 60)
{
    struct stream_env e;
    struct pt_call_opts opts = {5000, 1, 1};
    const uint32_t size = 2 * PT_BLOCK_CHUNK;
    uint8_t *data = random_bytes(23, size), *back = malloc(size);
    uint32_t crc = pt_block_crc(data, size), got;
    uint64_t t0, proof;
    senv_start_idle(&e, test_tmpdir(), 200);
    /* Half a block, then silence: the writer vanished without a word. */
    CHECK_OK(begin(&e, 40, crc, size, 41));
    CHECK_OK(pages(&e, 40, 41, data, 0, PT_BLOCK_CHUNK, -1, 0));
    CHECK_EQ(temp_files(&e), 1);
    /* Bounded wait for the idle check (200 ms; the bound only guards a stuck machine). */
    for (t0 = pt_now_ms(); temp_files(&e) != 0 && pt_now_ms() - t0 < 10000;)
        usleep(10000);
    CHECK_EQ(temp_files(&e), 0);
    test_log("abandoned stream dropped after %llu ms", (unsigned long long)(pt_now_ms() - t0));
    /* Its late pieces and end find no stream; nothing was stored. */
    CHECK_EQ(pages(&e, 40, 41, data, PT_BLOCK_CHUNK, PT_BLOCK_CHUNK, -1, 0), -PT_ENOENT);
    CHECK_EQ(end(&e, 40, 41, NULL), -PT_ENOENT);
    check_nothing_kept(&e, 40);
    /* The block's claim went with it: a new write of the block succeeds. */
    CHECK_OK(pt_blocks_write(e.addr, 40, crc, data, size,
                             pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id, 40, crc, size),
                             &proof, &opts));
    CHECK_OK(pt_blocks_read(e.addr, 40, 0, size, back, &got, NULL, &opts));
    CHECK_EQ(got, size);
    CHECK_MEM(back, data, size);
    pt_call_pool_clear();
    senv_stop(&e);
    free(data);
    free(back);
}

/* The page CRCs computed once (what a mirrored writer sends every copy) make frames whose CRC
 * is combined from them, not read from the data: on this plain connection the service checks
 * that CRC, so a wrong combination fails the write. A wrong page CRC stores nothing. */
TEST_T(blocks_stream_known_page_crcs_combine_into_frame_crcs, 60)
{
    struct stream_env e;
    struct pt_call_opts opts = {10000, 1, 1};
    const uint32_t size = 3 * PT_BLOCK_CHUNK + 1000; /* four pieces, the last page short */
    uint8_t *data = random_bytes(23, size), *back = malloc(size);
    uint8_t *crcs = malloc((size_t)pt_block_pages(size) * 4);
    uint32_t crc = pt_block_crc_pages(data, size, crcs), got;
    uint64_t proof;
    struct iovec piece = {data, size};
    CHECK_EQ(crc, pt_block_crc(data, size));
    CHECK_EQ(pt_get_le32(crcs + 4 * 70),
             petrel_crc32c(0, data + 70 * PT_BLOCK_PAGE_SIZE, PT_BLOCK_PAGE_SIZE));
    senv_start(&e, test_tmpdir());
    CHECK_OK(pt_blocks_write_pages(e.addr, 50, crc, &piece, 1, size, crcs,
                                   pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id, 50, crc, size),
                                   &proof, &opts));
    CHECK(pt_block_mac_check(e.secret, PT_BLOCK_WRITE_PROOF, e.id, 50, crc, size, proof));
    CHECK_OK(pt_blocks_read(e.addr, 50, 0, size, back, &got, NULL, &opts));
    CHECK_EQ(got, size);
    CHECK_MEM(back, data, size);
    /* page 70 (in the second piece) announced with a wrong CRC: refused, nothing kept */
    crcs[4 * 70] ^= 1;
    CHECK(pt_blocks_write_pages(e.addr, 51, crc, &piece, 1, size, crcs,
                                pt_block_mac(e.secret, PT_BLOCK_WRITE_CERT, e.id, 51, crc, size),
                                &proof, &opts) != 0);
    pt_call_pool_clear();
    {
        /* (the frame failed its CRC: the connection dropped, the stream's temp file goes when
           the stream idles out, as for any writer that vanishes) */
        struct pt_block_stat st;
        uint8_t byte;
        CHECK_EQ(pt_blocks_stat(e.addr, 51, &st, &opts), -PT_ENOENT);
        CHECK_EQ(pt_blocks_read(e.addr, 51, 0, 1, &byte, &got, NULL, &opts), -PT_ENOENT);
    }
    senv_stop(&e);
    free(crcs);
    free(data);
    free(back);
}
