/*
 * Block service message codec and certificate MACs (see blocks_msg.h, docs/PROTOCOL.md).
 * Byte layout only; decoders fail the cursor on out-of-range values instead of trusting them.
 */
#include "cluster/proto/blocks_msg.h"

#include "cluster/proto/frame.h"
#include "petrel/siphash.h"

uint64_t pt_block_mac(const uint8_t secret[16], enum pt_block_mac_domain domain,
                      uint64_t service_id, uint64_t block_id, uint32_t crc, uint32_t size)
{
    uint8_t m[28];
    pt_put_le32(m, (uint32_t)domain);
    pt_put_le64(m + 4, service_id);
    pt_put_le64(m + 12, block_id);
    pt_put_le32(m + 20, crc);
    pt_put_le32(m + 24, size);
    return petrel_siphash24(secret, m, sizeof(m));
}

int pt_block_mac_check(const uint8_t secret[16], enum pt_block_mac_domain domain,
                       uint64_t service_id, uint64_t block_id, uint32_t crc, uint32_t size,
                       uint64_t mac)
{
    return petrel_mac_equal(pt_block_mac(secret, domain, service_id, block_id, crc, size), mac);
}

void pt_block_enc_write(struct pt_cursor *c, const struct pt_block_write_req *w)
{
    pt_enc_u64(c, w->block_id);
    pt_enc_u32(c, w->crc);
    pt_enc_u32(c, w->size);
    pt_enc_u64(c, w->cert);
}

void pt_block_dec_write(struct pt_cursor *c, struct pt_block_write_req *w)
{
    w->block_id = pt_dec_u64(c);
    w->crc = pt_dec_u32(c);
    w->size = pt_dec_u32(c);
    w->cert = pt_dec_u64(c);
    if (w->size > PT_BLOCK_MAX_SIZE) c->failed = 1;
}

void pt_block_enc_pages(struct pt_cursor *c, const struct pt_block_pages_req *p)
{
    pt_enc_u64(c, p->block_id);
    pt_enc_u64(c, p->stream);
    pt_enc_u32(c, p->offset);
    pt_enc_u32(c, p->pages);
}

void pt_block_dec_pages(struct pt_cursor *c, struct pt_block_pages_req *p)
{
    p->block_id = pt_dec_u64(c);
    p->stream = pt_dec_u64(c);
    p->offset = pt_dec_u32(c);
    p->pages = pt_dec_u32(c);
    if (p->pages > PT_BLOCK_CHUNK / PT_BLOCK_PAGE_SIZE) c->failed = 1;
}

void pt_block_enc_read(struct pt_cursor *c, const struct pt_block_read_req *r)
{
    pt_enc_u64(c, r->block_id);
    pt_enc_u32(c, r->offset);
    pt_enc_u32(c, r->count);
}

void pt_block_dec_read(struct pt_cursor *c, struct pt_block_read_req *r)
{
    r->block_id = pt_dec_u64(c);
    r->offset = pt_dec_u32(c);
    r->count = pt_dec_u32(c);
}

void pt_block_enc_read_resp(struct pt_cursor *c, const struct pt_block_read_resp *r)
{
    pt_enc_u32(c, r->block_size);
    pt_enc_u32(c, r->data_offset);
    pt_enc_u32(c, r->data_len);
    pt_enc_u32(c, r->pages);
}

void pt_block_dec_read_resp(struct pt_cursor *c, struct pt_block_read_resp *r)
{
    r->block_size = pt_dec_u32(c);
    r->data_offset = pt_dec_u32(c);
    r->data_len = pt_dec_u32(c);
    r->pages = pt_dec_u32(c);
    /* The range must be whole pages of the block, and the CRC count must match it. */
    if (r->block_size > PT_BLOCK_MAX_SIZE || r->data_offset % PT_BLOCK_PAGE_SIZE ||
        r->data_offset > r->block_size || r->data_len > r->block_size - r->data_offset ||
        r->pages != pt_block_pages(r->data_len) ||
        (r->data_offset + r->data_len != r->block_size && r->data_len % PT_BLOCK_PAGE_SIZE))
        c->failed = 1;
}

void pt_block_enc_erase(struct pt_cursor *c, const struct pt_block_erase_req *e)
{
    pt_enc_u64(c, e->block_id);
    pt_enc_u32(c, e->crc);
    pt_enc_u32(c, e->size);
    pt_enc_u64(c, e->cert);
}

void pt_block_dec_erase(struct pt_cursor *c, struct pt_block_erase_req *e)
{
    e->block_id = pt_dec_u64(c);
    e->crc = pt_dec_u32(c);
    e->size = pt_dec_u32(c);
    e->cert = pt_dec_u64(c);
    if (e->size > PT_BLOCK_MAX_SIZE) c->failed = 1;
}

void pt_block_enc_stat(struct pt_cursor *c, const struct pt_block_stat *s)
{
    pt_enc_u64(c, s->block_id);
    pt_enc_u32(c, s->size);
    pt_enc_u32(c, s->crc);
}

void pt_block_dec_stat(struct pt_cursor *c, struct pt_block_stat *s)
{
    s->block_id = pt_dec_u64(c);
    s->size = pt_dec_u32(c);
    s->crc = pt_dec_u32(c);
    if (s->size > PT_BLOCK_MAX_SIZE) c->failed = 1;
}

void pt_block_enc_info(struct pt_cursor *c, const struct pt_block_info *i)
{
    pt_enc_u64(c, i->service_id);
    pt_enc_u64(c, i->capacity);
    pt_enc_u64(c, i->used);
    pt_enc_u64(c, i->blocks);
    pt_enc_str(c, i->failure_domain);
    if (i->has_disk || i->has_scrub) {
        pt_enc_u64(c, i->fsid);
        pt_enc_u64(c, i->free);
    }
    if (i->has_scrub) {
        pt_enc_u64(c, i->scrub_checked);
        pt_enc_u64(c, i->scrub_rotten);
        pt_enc_u64(c, i->scrub_passes);
        pt_enc_u64(c, i->scrub_last_pass_ms);
    }
}

void pt_block_dec_info(struct pt_cursor *c, struct pt_block_info *i)
{
    i->service_id = pt_dec_u64(c);
    i->capacity = pt_dec_u64(c);
    i->used = pt_dec_u64(c);
    i->blocks = pt_dec_u64(c);
    pt_dec_str(c, i->failure_domain, sizeof(i->failure_domain));
    i->fsid = i->free = 0;
    i->has_disk = i->has_scrub = 0;
    i->scrub_checked = i->scrub_rotten = i->scrub_passes = i->scrub_last_pass_ms = 0;
    if (pt_cursor_ok(c) && pt_cursor_left(c) > 0) {
        i->has_disk = 1;
        i->fsid = pt_dec_u64(c);
        i->free = pt_dec_u64(c);
    }
    if (pt_cursor_ok(c) && pt_cursor_left(c) > 0) {
        i->has_scrub = 1;
        i->scrub_checked = pt_dec_u64(c);
        i->scrub_rotten = pt_dec_u64(c);
        i->scrub_passes = pt_dec_u64(c);
        i->scrub_last_pass_ms = pt_dec_u64(c);
    }
}
