/*
 * Shard message codec: requests as a field set chosen by the op, span records. Owns the
 * layouts in docs/PROTOCOL.md ("Shard messages") and docs/SPEC-SHARD.md ("Span record").
 * Never allocates, never trusts a length it did not check against the buffer.
 */
#include "cluster/proto/shard_msgs.h"

#include <string.h>

#include "petrel/codec.h"
#include "petrel/common.h"

enum {
    F_ID = 1 << 0,
    F_TARGET = 1 << 1,
    F_COOKIE = 1 << 2,
    F_TXN = 1 << 3,
    F_OFFSET = 1 << 4,
    F_SIZECRC = 1 << 5,
    F_LAYOUT = 1 << 6,
    F_MAX = 1 << 7,
    F_NAME = 1 << 8,
    F_NAME2 = 1 << 9,
    F_DATA = 1 << 10,
    F_SERVICES = 1 << 11,
    F_EXPECT = 1 << 12,
    F_ATTR = 1 << 13,     /* the attribute block, always present */
    F_ATTR_OPT = 1 << 14, /* the attribute block, present or not (the request ends before) */
    F_INVALID = -1,
};

/* The single table of which fields each op carries, in the fixed order of the F_ bits. */
static int shard_req_fields(uint8_t op)
{
    switch (op) {
    case PT_SHARD_LOOKUP:
        return F_ID | F_NAME;
    case PT_SHARD_READDIR:
        return F_ID | F_OFFSET | F_MAX | F_NAME;
    case PT_SHARD_STAT:
        return F_ID;
    case PT_SHARD_SPANS:
        return F_ID | F_OFFSET | F_MAX;
    case PT_SHARD_CONSTRUCT_FILE:
        return F_COOKIE | F_ATTR_OPT;
    case PT_SHARD_ADD_SPAN:
        return F_ID | F_COOKIE | F_OFFSET | F_SIZECRC | F_LAYOUT | F_SERVICES;
    case PT_SHARD_ADD_INLINE:
        return F_ID | F_COOKIE | F_OFFSET | F_SIZECRC | F_DATA;
    case PT_SHARD_CERTIFY_SPAN:
        return F_ID | F_COOKIE | F_OFFSET | F_DATA;
    case PT_SHARD_LINK_FILE:
        return F_ID | F_COOKIE | F_TARGET | F_NAME;
    case PT_SHARD_UNLINK:
        return F_ID | F_NAME;
    case PT_SHARD_LINK_REPLACE:
        return F_ID | F_COOKIE | F_TARGET | F_NAME | F_EXPECT;
    case PT_SHARD_UNLINK_INODE:
        return F_ID | F_NAME | F_EXPECT;
    case PT_SHARD_RENAME_INODE:
        return F_ID | F_TARGET | F_NAME | F_NAME2 | F_EXPECT;
    case PT_SHARD_RENAME:
        return F_ID | F_NAME | F_NAME2;
    case PT_SHARD_EXPIRE:
        return 0;
    case PT_SHARD_DROP_SPAN:
        return F_ID | F_COOKIE | F_OFFSET;
    case PT_SHARD_RETIRE_FILE:
    case PT_SHARD_FORGET_FILE:
        return F_ID;
    case PT_SHARD_FORGET_DROPPED:
        return F_DATA;
    case PT_SHARD_MAKE_DIR:
        return F_TXN | F_TARGET | F_ATTR_OPT;
    case PT_SHARD_ADD_ENTRY:
        return F_TXN | F_ID | F_TARGET | F_OFFSET | F_NAME;
    case PT_SHARD_REMOVE_ENTRY:
        return F_TXN | F_ID | F_TARGET | F_NAME;
    case PT_SHARD_LOCK_ENTRY:
        return F_TXN | F_ID | F_NAME;
    case PT_SHARD_UNLOCK_ENTRY:
        return F_TXN | F_ID | F_NAME;
    case PT_SHARD_REMOVE_DIR:
        return F_TXN | F_ID;
    case PT_SHARD_SET_PARENT:
        return F_TXN | F_ID | F_TARGET;
    case PT_SHARD_REPLACE_ENTRY:
        return F_TXN | F_ID | F_TARGET | F_COOKIE | F_OFFSET | F_NAME;
    case PT_SHARD_SETATTR:
        return F_ID | F_ATTR;
    case PT_SHARD_MAKE_NODE:
        return F_ID | F_NAME | F_DATA | F_ATTR;
    case PT_SHARD_OPEN_CHANGE:
        return F_ID | F_COOKIE | F_EXPECT;
    case PT_SHARD_TRUNCATE_SPANS:
        return F_ID | F_COOKIE | F_OFFSET | F_EXPECT;
    case PT_SHARD_COMMIT_CHANGE:
    case PT_SHARD_COMPACT_CHANGE:
        return F_ID | F_COOKIE;
    case PT_SHARD_ADD_HOLE:
        return F_ID | F_COOKIE | F_OFFSET | F_EXPECT;
    /* redundancy */
    case PT_SHARD_GET_POLICY:
        return F_ID;
    case PT_SHARD_REPAIR_LIST:
        return F_TARGET | F_OFFSET | F_MAX;
    case PT_SHARD_ADD_RS_SPAN:
        return F_ID | F_COOKIE | F_OFFSET | F_SIZECRC | F_LAYOUT | F_DATA | F_SERVICES;
    case PT_SHARD_SET_POLICY:
        return F_ID | F_DATA;
    case PT_SHARD_REPORT_BAD_BLOCK:
        return F_ID | F_TARGET | F_OFFSET | F_MAX;
    case PT_SHARD_SCRUB_REPORT:
        return F_ID | F_TARGET;
    case PT_SHARD_REPLACE_BLOCK:
        return F_ID | F_TARGET | F_OFFSET | F_SERVICES;
    case PT_SHARD_DRAIN_STATUS:
        return F_TARGET;
    case PT_SHARD_DRAIN_SERVICE:
    case PT_SHARD_FAIL_SERVICE:
        return F_TARGET | F_MAX;
    case PT_SHARD_REPAIR_STATUS:
        return 0;
    default:
        return F_INVALID;
    }
}

int pt_shard_op_valid(uint8_t op)
{
    return shard_req_fields(op) != F_INVALID;
}

int pt_shard_op_is_write(uint8_t op)
{
    return pt_shard_op_valid(op) && op >= 16;
}

int pt_shard_req_encode(const struct pt_shard_req *req, uint8_t *buf, size_t cap)
{
    struct pt_cursor c;
    int f = shard_req_fields(req->op);
    unsigned i;
    if (f == F_INVALID) return -PT_EINVAL;
    pt_cursor_init(&c, buf, cap);
    pt_enc_u8(&c, req->op);
    if (f & F_ID) pt_enc_u64(&c, req->id);
    if (f & F_TARGET) pt_enc_u64(&c, req->target);
    if (f & F_COOKIE) pt_enc_u64(&c, req->cookie);
    if (f & F_TXN) pt_enc_u64(&c, req->txn);
    if (f & F_OFFSET) pt_enc_u64(&c, req->offset);
    if (f & F_SIZECRC) {
        pt_enc_u32(&c, req->size);
        pt_enc_u32(&c, req->crc);
    }
    if (f & F_LAYOUT) {
        pt_enc_u8(&c, req->storage);
        pt_enc_u8(&c, req->data);
        pt_enc_u8(&c, req->parity);
        pt_enc_u32(&c, req->block_size);
    }
    if (f & F_MAX) pt_enc_u16(&c, req->max);
    if (f & F_NAME) {
        pt_enc_u8(&c, req->name_len);
        pt_enc_bytes(&c, req->name, req->name_len);
    }
    if (f & F_NAME2) {
        pt_enc_u8(&c, req->name2_len);
        pt_enc_bytes(&c, req->name2, req->name2_len);
    }
    if (f & F_DATA) {
        if (req->data_len > PT_SHARD_MSG_MAX) return -PT_EINVAL;
        pt_enc_u32(&c, req->data_len);
        pt_enc_bytes(&c, req->data_ptr, req->data_len);
    }
    if (f & F_SERVICES) {
        if (req->n_services > PT_SPAN_BLOCKS_MAX) return -PT_EINVAL;
        pt_enc_u8(&c, req->n_services);
        for (i = 0; i < req->n_services; i++)
            pt_enc_u64(&c, req->services[i]);
    }
    if (f & F_EXPECT) pt_enc_u64(&c, req->expect);
    if ((f & F_ATTR) || ((f & F_ATTR_OPT) && req->has_attr)) {
        pt_enc_u32(&c, req->attr.valid);
        pt_enc_u32(&c, req->attr.mode);
        pt_enc_u32(&c, req->attr.uid);
        pt_enc_u32(&c, req->attr.gid);
        pt_enc_u64(&c, req->attr.atime);
        pt_enc_u64(&c, req->attr.mtime);
        pt_enc_u64(&c, req->attr.rdev);
    }
    if (!pt_cursor_ok(&c)) return -PT_EOVERFLOW;
    return (int)c.pos;
}

static int dec_name(struct pt_cursor *c, char *out, uint8_t *len_out)
{
    uint8_t n = pt_dec_u8(c);
    const uint8_t *p = pt_cursor_take(c, n);
    if (!p) return -PT_EPROTO;
    if (memchr(p, 0, n) || memchr(p, '/', n)) return -PT_EINVAL;
    memcpy(out, p, n);
    out[n] = 0;
    *len_out = n;
    return 0;
}

int pt_shard_req_decode(struct pt_shard_req *req, const uint8_t *buf, size_t len)
{
    struct pt_cursor c;
    int f, rc;
    unsigned i;
    memset(req, 0, sizeof(*req));
    pt_cursor_init(&c, (void *)buf, len);
    req->op = pt_dec_u8(&c);
    if (!pt_cursor_ok(&c)) return -PT_EPROTO;
    f = shard_req_fields(req->op);
    if (f == F_INVALID) return -PT_EPROTO;
    if (f & F_ID) req->id = pt_dec_u64(&c);
    if (f & F_TARGET) req->target = pt_dec_u64(&c);
    if (f & F_COOKIE) req->cookie = pt_dec_u64(&c);
    if (f & F_TXN) req->txn = pt_dec_u64(&c);
    if (f & F_OFFSET) req->offset = pt_dec_u64(&c);
    if (f & F_SIZECRC) {
        req->size = pt_dec_u32(&c);
        req->crc = pt_dec_u32(&c);
    }
    if (f & F_LAYOUT) {
        req->storage = pt_dec_u8(&c);
        req->data = pt_dec_u8(&c);
        req->parity = pt_dec_u8(&c);
        req->block_size = pt_dec_u32(&c);
    }
    if (f & F_MAX) req->max = pt_dec_u16(&c);
    if (f & F_NAME) {
        rc = dec_name(&c, req->name, &req->name_len);
        if (rc) return rc == -PT_EINVAL ? -PT_EINVAL : -PT_EPROTO;
    }
    if (f & F_NAME2) {
        rc = dec_name(&c, req->name2, &req->name2_len);
        if (rc) return rc == -PT_EINVAL ? -PT_EINVAL : -PT_EPROTO;
    }
    if (f & F_DATA) {
        req->data_len = pt_dec_u32(&c);
        if (req->data_len > PT_SHARD_MSG_MAX) return -PT_EPROTO;
        req->data_ptr = pt_cursor_take(&c, req->data_len);
        if (!req->data_ptr && req->data_len) return -PT_EPROTO;
    }
    if (f & F_SERVICES) {
        req->n_services = pt_dec_u8(&c);
        if (req->n_services > PT_SPAN_BLOCKS_MAX) return -PT_EPROTO;
        for (i = 0; i < req->n_services; i++)
            req->services[i] = pt_dec_u64(&c);
    }
    if (f & F_EXPECT) req->expect = pt_dec_u64(&c);
    if ((f & F_ATTR) || ((f & F_ATTR_OPT) && pt_cursor_ok(&c) && c.pos < len)) {
        req->has_attr = 1;
        req->attr.valid = pt_dec_u32(&c);
        req->attr.mode = pt_dec_u32(&c);
        req->attr.uid = pt_dec_u32(&c);
        req->attr.gid = pt_dec_u32(&c);
        req->attr.atime = pt_dec_u64(&c);
        req->attr.mtime = pt_dec_u64(&c);
        req->attr.rdev = pt_dec_u64(&c);
    }
    if (!pt_cursor_ok(&c) || c.pos != len) return -PT_EPROTO;
    return 0;
}

uint8_t pt_mode_type(uint32_t mode)
{
    switch (mode & PT_MODE_IFMT) {
    case PT_MODE_IFDIR:
        return PT_TYPE_DIR;
    case PT_MODE_IFREG:
        return PT_TYPE_FILE;
    case PT_MODE_IFLNK:
        return PT_TYPE_SYMLINK;
    case PT_MODE_IFIFO:
        return PT_TYPE_FIFO;
    case PT_MODE_IFSOCK:
        return PT_TYPE_SOCKET;
    case PT_MODE_IFCHR:
        return PT_TYPE_CHR;
    case PT_MODE_IFBLK:
        return PT_TYPE_BLK;
    default:
        return PT_TYPE_NONE;
    }
}

uint32_t pt_type_mode(uint8_t type)
{
    static const uint32_t bits[] = {0,
                                    PT_MODE_IFDIR,
                                    PT_MODE_IFREG,
                                    PT_MODE_IFLNK,
                                    PT_MODE_IFIFO,
                                    PT_MODE_IFSOCK,
                                    PT_MODE_IFCHR,
                                    PT_MODE_IFBLK};
    return PT_TYPE_VALID(type) ? bits[type] : 0;
}

unsigned pt_span_block_count(const struct pt_span *s)
{
    return s->storage == PT_STORAGE_INLINE || s->storage == PT_STORAGE_HOLE
               ? 0u
               : (unsigned)s->data + s->parity;
}

uint32_t pt_span_cell_crc(const struct pt_span *s, unsigned block, unsigned row)
{
    return pt_get_le32(s->cell_crcs + 4 * ((size_t)block * pt_rs_rows(s->block_size) + row));
}

void pt_span_encode(struct pt_cursor *c, const struct pt_span *s)
{
    unsigned i, n = pt_span_block_count(s);
    pt_enc_u64(c, s->offset);
    pt_enc_u32(c, s->storage == PT_STORAGE_HOLE ? 0u : (uint32_t)s->size);
    pt_enc_u32(c, s->crc);
    pt_enc_u8(c, s->storage);
    pt_enc_u8(c, s->data);
    pt_enc_u8(c, s->parity);
    pt_enc_u8(c, s->certified);
    pt_enc_u32(c, s->block_size);
    if (s->storage == PT_STORAGE_HOLE) {
        pt_enc_u64(c, s->size);
        return;
    }
    if (s->storage == PT_STORAGE_INLINE) {
        pt_enc_u32(c, s->inline_len);
        pt_enc_bytes(c, s->inline_data, s->inline_len);
        return;
    }
    for (i = 0; i < n; i++) {
        pt_enc_u64(c, s->blocks[i].service);
        pt_enc_u64(c, s->blocks[i].block);
        pt_enc_u32(c, s->blocks[i].crc);
    }
    if (s->storage == PT_STORAGE_RS)
        pt_enc_bytes(c, s->cell_crcs, (size_t)4 * n * pt_rs_rows(s->block_size));
}

int pt_span_decode(struct pt_cursor *c, struct pt_span *s)
{
    unsigned i, n;
    memset(s, 0, sizeof(*s));
    s->offset = pt_dec_u64(c);
    s->size = pt_dec_u32(c);
    s->crc = pt_dec_u32(c);
    s->storage = pt_dec_u8(c);
    s->data = pt_dec_u8(c);
    s->parity = pt_dec_u8(c);
    s->certified = pt_dec_u8(c);
    s->block_size = pt_dec_u32(c);
    if (!pt_cursor_ok(c)) return -PT_EPROTO;
    switch (s->storage) {
    case PT_STORAGE_INLINE:
        if (s->data || s->parity) return -PT_EPROTO;
        s->inline_len = pt_dec_u32(c);
        if (s->inline_len != s->size || s->inline_len > PT_INLINE_MAX) return -PT_EPROTO;
        s->inline_data = pt_cursor_take(c, s->inline_len);
        if (!s->inline_data && s->inline_len) return -PT_EPROTO;
        return pt_cursor_ok(c) ? 0 : -PT_EPROTO;
    case PT_STORAGE_HOLE:
        if (s->size || s->crc || s->data || s->parity || s->block_size || s->certified != 1)
            return -PT_EPROTO;
        s->size = pt_dec_u64(c);
        if (s->size == 0 || s->size > (uint64_t)PT_HOLE_MAX ||
            s->offset > (uint64_t)PT_HOLE_MAX - s->size)
            return -PT_EPROTO;
        return pt_cursor_ok(c) ? 0 : -PT_EPROTO;
    case PT_STORAGE_MIRRORED:
        if (s->data != 1 || s->parity + 1u > PT_SPAN_BLOCKS_MAX) return -PT_EPROTO;
        break;
    case PT_STORAGE_RS:
        if (!s->data || !s->parity || s->data > 16 || s->parity > 4 ||
            (unsigned)s->data + s->parity > PT_SPAN_BLOCKS_MAX ||
            s->block_size != pt_rs_block_size(s->size, s->data) || s->size == 0 ||
            s->block_size > PT_RS_BLOCK_MAX)
            return -PT_EPROTO;
        break;
    default:
        return -PT_EPROTO;
    }
    n = pt_span_block_count(s);
    for (i = 0; i < n; i++) {
        s->blocks[i].service = pt_dec_u64(c);
        s->blocks[i].block = pt_dec_u64(c);
        s->blocks[i].crc = pt_dec_u32(c);
    }
    if (s->storage == PT_STORAGE_RS) {
        s->cell_crcs = pt_cursor_take(c, (size_t)4 * n * pt_rs_rows(s->block_size));
        if (!s->cell_crcs) return -PT_EPROTO;
    }
    return pt_cursor_ok(c) ? 0 : -PT_EPROTO;
}

void pt_policy_encode(uint8_t out[PT_POLICY_SIZE], const struct pt_policy *p)
{
    out[0] = 1;
    out[1] = p->copies;
    out[2] = p->data;
    out[3] = p->parity;
    pt_put_le32(out + 4, p->rs_threshold);
    pt_put_le32(out + 8, p->block_size);
}

int pt_policy_decode(const uint8_t *in, size_t len, struct pt_policy *p)
{
    if (len != PT_POLICY_SIZE || in[0] != 1) return -PT_EINVAL;
    p->copies = in[1];
    p->data = in[2];
    p->parity = in[3];
    p->rs_threshold = pt_get_le32(in + 4);
    p->block_size = pt_get_le32(in + 8);
    if (p->copies < 1 || p->copies > PT_SPAN_BLOCKS_MAX) return -PT_EINVAL;
    if (p->rs_threshold > PT_SPAN_SIZE_MAX) return -PT_EINVAL;
    if (p->data == 0 && p->parity == 0) return 0;
    if (p->data < 1 || p->data > 16 || p->parity < 1 || p->parity > 4 ||
        (unsigned)p->data + p->parity > PT_SPAN_BLOCKS_MAX)
        return -PT_EINVAL;
    if (p->block_size < PT_RS_PAGE || p->block_size > PT_RS_BLOCK_MAX ||
        p->block_size % PT_RS_PAGE || (uint64_t)p->block_size * p->data > PT_SPAN_SIZE_MAX ||
        pt_rs_block_size(p->block_size * p->data, p->data) != p->block_size)
        return -PT_EINVAL;
    return 0;
}

void pt_repair_entry_encode(struct pt_cursor *c, const struct pt_repair_entry *e)
{
    pt_enc_u64(c, e->service);
    pt_enc_u64(c, e->block);
    pt_enc_u64(c, e->file);
    pt_enc_u64(c, e->offset);
    pt_enc_u8(c, e->reason);
    pt_enc_u32(c, e->count);
    pt_enc_u64(c, e->first_ms);
    pt_enc_u64(c, e->last_ms);
}

int pt_repair_entry_decode(struct pt_cursor *c, struct pt_repair_entry *e)
{
    e->service = pt_dec_u64(c);
    e->block = pt_dec_u64(c);
    e->file = pt_dec_u64(c);
    e->offset = pt_dec_u64(c);
    e->reason = pt_dec_u8(c);
    e->count = pt_dec_u32(c);
    e->first_ms = pt_dec_u64(c);
    e->last_ms = pt_dec_u64(c);
    return pt_cursor_ok(c) ? 0 : -PT_EPROTO;
}

int pt_shard_reply_open(const uint8_t *reply, size_t len, struct pt_cursor *body)
{
    int32_t status;
    /* On any failure the body is an empty, failed cursor: decoding it yields zeros safely. */
    pt_cursor_init(body, (void *)reply, 0);
    body->failed = 1;
    if (len < 4) return -PT_EPROTO;
    status = (int32_t)pt_get_le32(reply);
    if (status > 0 || status <= -PT_EMAX) return -PT_EPROTO;
    pt_cursor_init(body, (void *)(reply + 4), len - 4);
    return status;
}

int pt_shard_reply_stat(struct pt_cursor *body, struct pt_shard_stat *st)
{
    st->type = pt_dec_u8(body);
    st->state = pt_dec_u8(body);
    st->size = pt_dec_u64(body);
    st->mtime = pt_dec_u64(body);
    st->parent = pt_dec_u64(body);
    st->deadline = pt_dec_u64(body);
    st->has_posix = 0;
    st->target_len = 0;
    st->target[0] = 0;
    if (!pt_cursor_ok(body)) return -PT_EPROTO;
    if (pt_cursor_left(body) > 0) { /* a shard with POSIX attributes (issue 11) */
        const uint8_t *p;
        st->mode = pt_dec_u32(body);
        st->uid = pt_dec_u32(body);
        st->gid = pt_dec_u32(body);
        st->atime_ns = pt_dec_u64(body);
        st->mtime_ns = pt_dec_u64(body);
        st->ctime_ns = pt_dec_u64(body);
        st->rdev = pt_dec_u64(body);
        st->version = pt_dec_u64(body);
        st->target_len = pt_dec_u16(body);
        if (st->target_len > PT_SYMLINK_MAX) return -PT_EPROTO;
        p = pt_cursor_take(body, st->target_len);
        if (!p || !pt_cursor_ok(body)) return -PT_EPROTO;
        if (memchr(p, 0, st->target_len)) return -PT_EPROTO;
        memcpy(st->target, p, st->target_len);
        st->target[st->target_len] = 0;
        st->has_posix = 1;
    }
    st->spans = 0;
    if (pt_cursor_left(body) >= 4) st->spans = pt_dec_u32(body); /* issue 12 */
    st->nlink = 0;
    if (pt_cursor_left(body) >= 4) st->nlink = pt_dec_u32(body); /* directory link counts */
    return 0;
}

int pt_shard_reply_dirent(struct pt_cursor *body, struct pt_dirent *de)
{
    const uint8_t *p;
    de->hash = pt_dec_u64(body);
    de->id = pt_dec_u64(body);
    de->type = pt_dec_u8(body);
    de->name_len = pt_dec_u8(body);
    p = pt_cursor_take(body, de->name_len);
    if (!p) return -PT_EPROTO;
    /* A name the shard could never have stored (NUL or '/') would change the path a caller
       builds from it. */
    if (memchr(p, 0, de->name_len) || memchr(p, '/', de->name_len)) return -PT_EPROTO;
    memcpy(de->name, p, de->name_len);
    de->name[de->name_len] = 0;
    return 0;
}
