/*
 * CDC request codec (see cdc_msgs.h). Names obey the shard rules: 1..255 bytes, no '/' or NUL.
 */
#include "cluster/proto/cdc_msgs.h"

#include <string.h>

#include "petrel/codec.h"
#include "petrel/common.h"

static int name_ok(const char *n, uint8_t len)
{
    return len > 0 && !memchr(n, 0, len) && !memchr(n, '/', len);
}

int pt_cdc_req_encode(const struct pt_cdc_req *q, uint8_t *buf, size_t cap)
{
    struct pt_cursor c;
    if (q->op < PT_CDC_MKDIR || q->op > PT_CDC_RENAME_INODE) return -PT_EINVAL;
    pt_cursor_init(&c, buf, cap);
    pt_enc_u8(&c, q->op);
    pt_enc_u64(&c, q->key);
    pt_enc_u64(&c, q->dir);
    pt_enc_u8(&c, q->name_len);
    pt_enc_bytes(&c, q->name, q->name_len);
    pt_enc_u64(&c, q->dir2);
    pt_enc_u8(&c, q->name2_len);
    pt_enc_bytes(&c, q->name2, q->name2_len);
    if (q->op == PT_CDC_RENAME_INODE) {
        pt_enc_u64(&c, q->expect);
        pt_enc_u64(&c, q->expect2);
    }
    if (q->op == PT_CDC_MKDIR && q->has_attr) {
        pt_enc_u32(&c, q->mode);
        pt_enc_u32(&c, q->uid);
        pt_enc_u32(&c, q->gid);
    }
    return pt_cursor_ok(&c) ? (int)c.pos : -PT_EOVERFLOW;
}

int pt_cdc_req_decode(struct pt_cdc_req *q, const uint8_t *buf, size_t len)
{
    struct pt_cursor c;
    const uint8_t *p;
    memset(q, 0, sizeof(*q));
    pt_cursor_init(&c, (void *)buf, len);
    q->op = pt_dec_u8(&c);
    q->key = pt_dec_u64(&c);
    q->dir = pt_dec_u64(&c);
    q->name_len = pt_dec_u8(&c);
    p = pt_cursor_take(&c, q->name_len);
    if (p) memcpy(q->name, p, q->name_len);
    q->dir2 = pt_dec_u64(&c);
    q->name2_len = pt_dec_u8(&c);
    p = pt_cursor_take(&c, q->name2_len);
    if (p) memcpy(q->name2, p, q->name2_len);
    if (q->op == PT_CDC_RENAME_INODE) {
        q->expect = pt_dec_u64(&c);
        q->expect2 = pt_dec_u64(&c);
    }
    if (q->op == PT_CDC_MKDIR && pt_cursor_ok(&c) && c.pos < len) {
        q->has_attr = 1;
        q->mode = pt_dec_u32(&c);
        q->uid = pt_dec_u32(&c);
        q->gid = pt_dec_u32(&c);
    }
    if (!pt_cursor_ok(&c) || c.pos != len) return -PT_EPROTO;
    if (q->op < PT_CDC_MKDIR || q->op > PT_CDC_RENAME_INODE || !name_ok(q->name, q->name_len))
        return -PT_EINVAL;
    if (pt_cdc_op_is_rename(q->op) && !name_ok(q->name2, q->name2_len)) return -PT_EINVAL;
    if (!pt_cdc_op_is_rename(q->op) && q->name2_len) return -PT_EINVAL;
    if (q->op == PT_CDC_RENAME_INODE && q->expect == 0) return -PT_EINVAL;
    return 0;
}
