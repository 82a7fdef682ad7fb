/*
 * Little-endian encode/decode: the one way Petrel writes integers to disk and to the wire.
 *
 * Every stored or transmitted structure is written field by field through these helpers, never
 * by copying a C struct, so formats are identical on every compiler and endianness. The
 * bounded cursor (struct pt_cursor) turns a short or malformed buffer into a sticky error
 * instead of an out-of-bounds access: decode all fields, then check pt_cursor_ok() once.
 *
 * Plain C99, header-only, no dependencies: the flash engine uses it.
 */
#ifndef PETREL_CODEC_H
#define PETREL_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void pt_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void pt_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void pt_put_le64(uint8_t *p, uint64_t v)
{
    pt_put_le32(p, (uint32_t)v);
    pt_put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint16_t pt_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t pt_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t pt_get_le64(const uint8_t *p)
{
    return (uint64_t)pt_get_le32(p) | ((uint64_t)pt_get_le32(p + 4) << 32);
}

/*
 * A bounded cursor over a buffer, for writing or reading a sequence of fields. Once a field
 * does not fit, the cursor is marked failed, later writes do nothing and later reads return
 * zeros; check pt_cursor_ok() at the end.
 */
struct pt_cursor {
    uint8_t *buf;
    size_t len;
    size_t pos;
    int failed;
};

static inline void pt_cursor_init(struct pt_cursor *c, void *buf, size_t len)
{
    c->buf = (uint8_t *)buf;
    c->len = len;
    c->pos = 0;
    c->failed = 0;
}
static inline int pt_cursor_ok(const struct pt_cursor *c)
{
    return !c->failed;
}
static inline size_t pt_cursor_left(const struct pt_cursor *c)
{
    return c->failed ? 0 : c->len - c->pos;
}
/* Reserve n bytes; returns where they start, or NULL (and fails the cursor) if they do not fit. */
static inline uint8_t *pt_cursor_take(struct pt_cursor *c, size_t n)
{
    uint8_t *p;
    if (c->failed || c->len - c->pos < n) {
        c->failed = 1;
        return NULL;
    }
    p = c->buf + c->pos;
    c->pos += n;
    return p;
}
static inline void pt_enc_u8(struct pt_cursor *c, uint8_t v)
{
    uint8_t *p = pt_cursor_take(c, 1);
    if (p) p[0] = v;
}
static inline void pt_enc_u16(struct pt_cursor *c, uint16_t v)
{
    uint8_t *p = pt_cursor_take(c, 2);
    if (p) pt_put_le16(p, v);
}
static inline void pt_enc_u32(struct pt_cursor *c, uint32_t v)
{
    uint8_t *p = pt_cursor_take(c, 4);
    if (p) pt_put_le32(p, v);
}
static inline void pt_enc_u64(struct pt_cursor *c, uint64_t v)
{
    uint8_t *p = pt_cursor_take(c, 8);
    if (p) pt_put_le64(p, v);
}
static inline void pt_enc_bytes(struct pt_cursor *c, const void *src, size_t n)
{
    uint8_t *p = pt_cursor_take(c, n);
    if (p && n) memcpy(p, src, n);
}
static inline uint8_t pt_dec_u8(struct pt_cursor *c)
{
    const uint8_t *p = pt_cursor_take(c, 1);
    return p ? p[0] : 0;
}
static inline uint16_t pt_dec_u16(struct pt_cursor *c)
{
    const uint8_t *p = pt_cursor_take(c, 2);
    return p ? pt_get_le16(p) : 0;
}
static inline uint32_t pt_dec_u32(struct pt_cursor *c)
{
    const uint8_t *p = pt_cursor_take(c, 4);
    return p ? pt_get_le32(p) : 0;
}
static inline uint64_t pt_dec_u64(struct pt_cursor *c)
{
    const uint8_t *p = pt_cursor_take(c, 8);
    return p ? pt_get_le64(p) : 0;
}
/* Copy n bytes out; on failure dst is zero-filled. */
static inline void pt_dec_bytes(struct pt_cursor *c, void *dst, size_t n)
{
    const uint8_t *p = pt_cursor_take(c, n);
    if (p) {
        if (n) memcpy(dst, p, n);
    } else if (n) {
        memset(dst, 0, n);
    }
}

#endif
