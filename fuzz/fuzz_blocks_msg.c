/*
 * Fuzz target: the block service message codec (src/cluster/proto/blocks_msg.c). The first
 * byte picks a decoder, the rest is its body. Accepted input must re-encode to the bytes
 * consumed, and sizes and ranges the decoders promise to check must hold: a BLOCK_READ
 * response header that decodes describes whole pages inside its block, with one CRC per page.
 */
#include <string.h>

#include "cluster/proto/blocks_msg.h"
#include "fuzz.h"
#include "petrel/common.h"

enum { OP_WRITE, OP_READ, OP_READ_RESP, OP_ERASE, OP_STAT, OP_INFO, OP_COUNT };

static void check_read_resp(const struct pt_block_read_resp *r)
{
    uint64_t end = (uint64_t)r->data_offset + r->data_len;
    FUZZ_CHECK(r->block_size <= PT_BLOCK_MAX_SIZE);
    FUZZ_CHECK(r->data_offset % PT_BLOCK_PAGE_SIZE == 0);
    FUZZ_CHECK(end <= r->block_size);
    FUZZ_CHECK(r->pages == pt_block_pages(r->data_len));
    FUZZ_CHECK(r->pages <= PT_BLOCK_MAX_PAGES);
    /* Only the block's last page may be short. */
    FUZZ_CHECK(end == r->block_size || r->data_len % PT_BLOCK_PAGE_SIZE == 0);
}

int pt_fuzz_blocks_msg(const uint8_t *data, size_t size)
{
    struct pt_cursor c, e;
    uint8_t out[256];
    const uint8_t *body = data + 1;
    size_t len;
    if (size < 1) return 0;
    len = size - 1;
    pt_cursor_init(&c, (void *)body, len);
    pt_cursor_init(&e, out, sizeof(out));
    switch (data[0] % OP_COUNT) {
    case OP_WRITE: {
        struct pt_block_write_req w;
        pt_block_dec_write(&c, &w);
        if (!pt_cursor_ok(&c)) return 0;
        FUZZ_CHECK(w.size <= PT_BLOCK_MAX_SIZE && c.pos == PT_BLOCK_WRITE_FIELDS);
        pt_block_enc_write(&e, &w);
        break;
    }
    case OP_READ: {
        struct pt_block_read_req r;
        pt_block_dec_read(&c, &r);
        if (!pt_cursor_ok(&c)) return 0;
        pt_block_enc_read(&e, &r);
        break;
    }
    case OP_READ_RESP: {
        struct pt_block_read_resp r;
        pt_block_dec_read_resp(&c, &r);
        if (!pt_cursor_ok(&c)) return 0;
        check_read_resp(&r);
        FUZZ_CHECK(c.pos == PT_BLOCK_READ_RESP_FIELDS);
        pt_block_enc_read_resp(&e, &r);
        break;
    }
    case OP_ERASE: {
        struct pt_block_erase_req x;
        pt_block_dec_erase(&c, &x);
        if (!pt_cursor_ok(&c)) return 0;
        FUZZ_CHECK(x.size <= PT_BLOCK_MAX_SIZE);
        pt_block_enc_erase(&e, &x);
        break;
    }
    case OP_STAT: {
        struct pt_block_stat s;
        pt_block_dec_stat(&c, &s);
        if (!pt_cursor_ok(&c)) return 0;
        FUZZ_CHECK(s.size <= PT_BLOCK_MAX_SIZE);
        pt_block_enc_stat(&e, &s);
        break;
    }
    default: {
        struct pt_block_info i;
        pt_block_dec_info(&c, &i);
        if (!pt_cursor_ok(&c)) return 0;
        FUZZ_CHECK(strlen(i.failure_domain) < sizeof(i.failure_domain));
        pt_block_enc_info(&e, &i);
        break;
    }
    }
    FUZZ_CHECK(pt_cursor_ok(&e) && c.pos <= len);
    FUZZ_CHECK(e.pos == c.pos && memcmp(out, body, c.pos) == 0);
    return 0;
}

PT_FUZZ_TARGET(pt_fuzz_blocks_msg)
