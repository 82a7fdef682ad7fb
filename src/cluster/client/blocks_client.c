/*
 * Block service calls (see blocks_client.h). Owns request encoding, reply
 * validation and the end-to-end page check of reads. Never copies a byte of a read into the
 * caller's buffer before every page it comes from has matched its CRC, and never trusts a
 * length in a reply before checking it against the request.
 */
#include "cluster/client/blocks_client.h"

#include <stdlib.h>
#include <string.h>

#include "petrel/common.h"
#include "petrel/crc32c.h"

uint32_t pt_block_crc(const void *data, uint32_t size)
{
    const uint8_t *p = data;
    uint32_t crc = 0, off;
    for (off = 0; off < size; off += PT_BLOCK_PAGE_SIZE) {
        uint32_t n = PT_MIN(PT_BLOCK_PAGE_SIZE, size - off);
        crc = petrel_crc32c_append(crc, petrel_crc32c(0, p + off, n), n);
    }
    return crc;
}

static int reply_u64(struct pt_reply *rep, uint64_t *out)
{
    if (rep->body_len != 8) return -PT_EPROTO;
    *out = pt_get_le64(rep->body);
    return 0;
}

int pt_blocks_write(const char *address, uint64_t block_id, uint32_t crc, const void *data,
                    uint32_t size, uint64_t cert, uint64_t *proof, const struct pt_call_opts *opts)
{
    uint8_t fields[PT_BLOCK_WRITE_FIELDS];
    struct pt_block_write_req w = {block_id, crc, size, cert};
    struct pt_cursor c;
    struct iovec iov[2];
    struct pt_reply rep;
    int err;
    if (size > PT_BLOCK_MAX_SIZE) return -PT_EFBIG;
    pt_cursor_init(&c, fields, sizeof(fields));
    pt_block_enc_write(&c, &w);
    iov[0].iov_base = fields;
    iov[0].iov_len = sizeof(fields);
    iov[1].iov_base = (void *)data;
    iov[1].iov_len = size;
    err = pt_call(address, PT_MSG_BLOCK_WRITE, iov, 2, opts, &rep);
    if (!err) err = reply_u64(&rep, proof);
    pt_reply_free(&rep);
    return err;
}

int pt_blocks_write_iov(const char *address, uint64_t block_id, uint32_t crc,
                        const struct iovec *pieces, unsigned n, uint32_t size, uint64_t cert,
                        uint64_t *proof, const struct pt_call_opts *opts)
{
    uint8_t fields[PT_BLOCK_WRITE_FIELDS];
    struct pt_block_write_req w = {block_id, crc, size, cert};
    struct pt_cursor c;
    struct iovec iov[PT_CONN_PARTS_MAX];
    struct pt_reply rep;
    uint64_t total = 0;
    unsigned i;
    int err;
    if (size > PT_BLOCK_MAX_SIZE) return -PT_EFBIG;
    if (n + 1 > PT_CONN_PARTS_MAX) return -PT_EINVAL;
    for (i = 0; i < n; i++) {
        iov[1 + i] = pieces[i];
        total += pieces[i].iov_len;
    }
    if (total != size) return -PT_EINVAL;
    pt_cursor_init(&c, fields, sizeof(fields));
    pt_block_enc_write(&c, &w);
    iov[0].iov_base = fields;
    iov[0].iov_len = sizeof(fields);
    err = pt_call(address, PT_MSG_BLOCK_WRITE, iov, 1 + n, opts, &rep);
    if (!err) err = reply_u64(&rep, proof);
    pt_reply_free(&rep);
    return err;
}

int pt_blocks_read_resp_check(const uint8_t *body, size_t len, uint32_t offset, uint32_t count,
                              void *buf, uint32_t *got, uint32_t *block_size)
{
    struct pt_block_read_resp h;
    struct pt_cursor c;
    const uint8_t *crcs, *data;
    uint32_t i, want;
    if (got) *got = 0;
    pt_cursor_init(&c, (void *)body, len);
    pt_block_dec_read_resp(&c, &h);
    crcs = pt_cursor_take(&c, (size_t)h.pages * 4);
    data = pt_cursor_take(&c, h.data_len);
    if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) return -PT_EPROTO;
    /* The reply must cover exactly the pages our range touches. */
    want = offset >= h.block_size ? 0 : PT_MIN(count, h.block_size - offset);
    if (offset > h.block_size ||
        (want && (h.data_offset != offset / PT_BLOCK_PAGE_SIZE * PT_BLOCK_PAGE_SIZE ||
                  h.data_offset + h.data_len < offset + want)) ||
        (!want && h.data_len))
        return offset > h.block_size ? -PT_ERANGE : -PT_EPROTO;
    for (i = 0; i < h.pages; i++) {
        uint32_t n = PT_MIN(PT_BLOCK_PAGE_SIZE, h.data_len - i * PT_BLOCK_PAGE_SIZE);
        if (petrel_crc32c(0, data + (size_t)i * PT_BLOCK_PAGE_SIZE, n) !=
            pt_get_le32(crcs + (size_t)4 * i))
            return -PT_ECORRUPT;
    }
    if (want) memcpy(buf, data + (offset - h.data_offset), want);
    if (got) *got = want;
    if (block_size) *block_size = h.block_size;
    return 0;
}

int pt_blocks_read(const char *address, uint64_t block_id, uint32_t offset, uint32_t count,
                   void *buf, uint32_t *got, uint32_t *block_size, const struct pt_call_opts *opts)
{
    uint8_t req[16];
    struct pt_block_read_req r = {block_id, offset, count};
    struct pt_cursor c;
    struct pt_reply rep;
    int err;
    if (got) *got = 0;
    pt_cursor_init(&c, req, sizeof(req));
    pt_block_enc_read(&c, &r);
    err = pt_call_buf(address, PT_MSG_BLOCK_READ, req, sizeof(req), opts, &rep);
    if (!err) err = pt_blocks_read_resp_check(rep.body, rep.body_len, offset, count, buf, got,
                                              block_size);
    pt_reply_free(&rep);
    return err;
}

int pt_blocks_erase(const char *address, uint64_t block_id, uint32_t crc, uint32_t size,
                    uint64_t cert, uint64_t *proof, const struct pt_call_opts *opts)
{
    uint8_t req[24];
    struct pt_block_erase_req e = {block_id, crc, size, cert};
    struct pt_cursor c;
    struct pt_reply rep;
    int err;
    pt_cursor_init(&c, req, sizeof(req));
    pt_block_enc_erase(&c, &e);
    err = pt_call_buf(address, PT_MSG_BLOCK_ERASE, req, sizeof(req), opts, &rep);
    if (!err) err = reply_u64(&rep, proof);
    pt_reply_free(&rep);
    return err;
}

int pt_blocks_stat(const char *address, uint64_t block_id, struct pt_block_stat *out,
                   const struct pt_call_opts *opts)
{
    uint8_t req[8];
    struct pt_cursor c;
    struct pt_reply rep;
    int err;
    pt_put_le64(req, block_id);
    err = pt_call_buf(address, PT_MSG_BLOCK_STAT, req, sizeof(req), opts, &rep);
    if (!err) {
        pt_cursor_init(&c, rep.body, rep.body_len);
        pt_block_dec_stat(&c, out);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c) || out->block_id != block_id) err = -PT_EPROTO;
    }
    pt_reply_free(&rep);
    return err;
}

int pt_blocks_list(const char *address, uint64_t start, uint32_t max, struct pt_block_stat **out,
                   size_t *count, int *more, const struct pt_call_opts *opts)
{
    uint8_t req[12];
    struct pt_cursor c;
    struct pt_reply rep;
    uint32_t n, i;
    int err;
    *out = NULL;
    *count = 0;
    *more = 0;
    pt_put_le64(req, start);
    pt_put_le32(req + 8, max);
    err = pt_call_buf(address, PT_MSG_BLOCK_LIST, req, sizeof(req), opts, &rep);
    if (err) goto done;
    pt_cursor_init(&c, rep.body, rep.body_len);
    n = pt_dec_u32(&c);
    if (!pt_cursor_ok(&c) || n > max || n > pt_cursor_left(&c) / 16) {
        err = -PT_EPROTO;
        goto done;
    }
    *out = calloc(n ? n : 1, sizeof(**out));
    if (!*out) {
        err = -PT_ENOMEM;
        goto done;
    }
    for (i = 0; i < n; i++)
        pt_block_dec_stat(&c, &(*out)[i]);
    *more = pt_dec_u8(&c);
    if (!pt_cursor_ok(&c) || pt_cursor_left(&c) || *more > 1) {
        free(*out);
        *out = NULL;
        err = -PT_EPROTO;
        goto done;
    }
    *count = n;
done:
    pt_reply_free(&rep);
    return err;
}

int pt_blocks_info(const char *address, struct pt_block_info *out, const struct pt_call_opts *opts)
{
    struct pt_cursor c;
    struct pt_reply rep;
    int err = pt_call_buf(address, PT_MSG_BLOCK_INFO, NULL, 0, opts, &rep);
    if (!err) {
        pt_cursor_init(&c, rep.body, rep.body_len);
        pt_block_dec_info(&c, out);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) err = -PT_EPROTO;
    }
    pt_reply_free(&rep);
    return err;
}
