/*
 * The frame codec (see frame.h and docs/PROTOCOL.md). Owns the byte layout of the frame header
 * and of error bodies. It never allocates and never reads past the lengths it is given; every
 * length from the wire is checked before it is used.
 */
#include "cluster/proto/frame.h"

#include <string.h>

#include "cluster/proto/auth.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define PT_FRAME_CRC_OFFSET 20

uint32_t pt_frame_crc(const uint8_t *raw_header, const void *body, uint32_t body_len)
{
    uint32_t crc = petrel_crc32c(0, raw_header, PT_FRAME_CRC_OFFSET);
    /* A sealed frame's MAC covers its body: its CRC covers the header alone (PROTOCOL.md 1.4). */
    if (raw_header[5] & PT_FRAME_AUTH) return crc;
    return body_len ? petrel_crc32c(crc, body, body_len) : crc;
}

void pt_frame_encode_header(uint8_t *out, uint8_t flags, uint16_t kind, uint64_t request_id,
                            const void *body, uint32_t body_len)
{
    pt_put_le32(out, PT_FRAME_MAGIC);
    out[4] = PT_FRAME_VERSION;
    out[5] = flags;
    pt_put_le16(out + 6, kind);
    pt_put_le64(out + 8, request_id);
    pt_put_le32(out + 16, body_len);
    pt_put_le32(out + PT_FRAME_CRC_OFFSET, pt_frame_crc(out, body, body_len));
}

int pt_frame_decode_header(const uint8_t *in, uint32_t max_body, struct pt_frame_header *out)
{
    out->version = in[4];
    out->flags = in[5];
    out->kind = pt_get_le16(in + 6);
    out->request_id = pt_get_le64(in + 8);
    out->body_len = pt_get_le32(in + 16);
    out->crc = pt_get_le32(in + PT_FRAME_CRC_OFFSET);
    if (pt_get_le32(in) != PT_FRAME_MAGIC) return -PT_EPROTO;
    if (out->version != PT_FRAME_VERSION) return -PT_EVERSION;
    if (out->flags & ~PT_FRAME_FLAGS_KNOWN) return -PT_EPROTO;
    if ((out->flags & PT_FRAME_ERROR) && !(out->flags & PT_FRAME_RESPONSE)) return -PT_EPROTO;
    if (out->body_len > max_body) return -PT_E2BIG;
    return 0;
}

int pt_frame_check_crc(const uint8_t *raw_header, const struct pt_frame_header *h, const void *body)
{
    return pt_frame_crc(raw_header, body, h->body_len) == h->crc ? 0 : -PT_EBADMSG;
}

int pt_frame_decode(const uint8_t *buf, size_t len, uint32_t max_body, struct pt_frame_header *h,
                    const uint8_t **body)
{
    int err;
    if (len < PT_FRAME_HEADER_SIZE) return -PT_EPROTO;
    err = pt_frame_decode_header(buf, max_body, h);
    if (err) return err;
    if (len - PT_FRAME_HEADER_SIZE != h->body_len) return -PT_EPROTO;
    err = pt_frame_check_crc(buf, h, buf + PT_FRAME_HEADER_SIZE);
    if (err) return err;
    *body = buf + PT_FRAME_HEADER_SIZE;
    return 0;
}

void pt_frame_seal(uint8_t *hdr, uint8_t *trailer, uint8_t flags, uint16_t kind,
                   uint64_t request_id, const struct iovec *parts, int nparts,
                   const uint8_t *key, uint64_t seq)
{
    pt_frame_seal_known(hdr, trailer, flags, kind, request_id, parts, nparts, NULL, key, seq);
}

void pt_frame_seal_known(uint8_t *hdr, uint8_t *trailer, uint8_t flags, uint16_t kind,
                         uint64_t request_id, const struct iovec *parts, int nparts,
                         const struct pt_frame_known_crc *known, const uint8_t *key, uint64_t seq)
{
    int crc_parts = known ? known->from : nparts;
    uint64_t known_len = 0;
    PT_ASSERT(crc_parts >= 0 && crc_parts <= nparts);
    struct pt_auth_frame_mac mac;
    uint64_t total = 0;
    uint32_t crc;
    int i;
    for (i = 0; i < nparts; i++)
        total += parts[i].iov_len;
    if (key) {
        flags |= PT_FRAME_AUTH;
        total += PT_FRAME_TRAILER_SIZE;
    }
    pt_put_le32(hdr, PT_FRAME_MAGIC);
    hdr[4] = PT_FRAME_VERSION;
    hdr[5] = flags;
    pt_put_le16(hdr + 6, kind);
    pt_put_le64(hdr + 8, request_id);
    pt_put_le32(hdr + 16, (uint32_t)total);
    crc = petrel_crc32c(0, hdr, PT_FRAME_CRC_OFFSET);
    if (!key) {
        for (i = 0; i < crc_parts; i++)
            if (parts[i].iov_len) crc = petrel_crc32c(crc, parts[i].iov_base, parts[i].iov_len);
        for (; i < nparts; i++)
            known_len += parts[i].iov_len;
        if (known_len) crc = petrel_crc32c_append(crc, known->crc, known_len);
    }
    if (key) {
        /* sealed: the CRC stays the header's alone; the MAC is the body's one pass */
        pt_put_le64(trailer, seq);
        pt_auth_frame_mac_init(&mac, key, seq);
        pt_auth_frame_mac_add(&mac, hdr, PT_FRAME_CRC_OFFSET);
        for (i = 0; i < nparts; i++)
            pt_auth_frame_mac_add(&mac, parts[i].iov_base, parts[i].iov_len);
        pt_auth_frame_mac_final(&mac, trailer + 8);
    }
    pt_put_le32(hdr + PT_FRAME_CRC_OFFSET, crc);
}

int pt_frame_unseal(const uint8_t *raw_header, struct pt_frame_header *h, const uint8_t *body,
                    const uint8_t *key, uint64_t seq)
{
    struct pt_auth_frame_mac mac;
    uint8_t tag[PT_AUTH_TAG_BYTES];
    uint32_t n;
    if (!(h->flags & PT_FRAME_AUTH) || h->body_len < PT_FRAME_TRAILER_SIZE) return -PT_EACCES;
    n = h->body_len - PT_FRAME_TRAILER_SIZE;
    if (pt_get_le64(body + n) != seq) return -PT_EACCES;
    /* The sequence is the MAC's nonce: a frame sealed at another one cannot verify. */
    pt_auth_frame_mac_init(&mac, key, seq);
    pt_auth_frame_mac_add(&mac, raw_header, PT_FRAME_CRC_OFFSET);
    pt_auth_frame_mac_add(&mac, body, n);
    pt_auth_frame_mac_final(&mac, tag);
    if (!pt_auth_tag_equal(tag, body + n + 8)) return -PT_EACCES;
    h->body_len = n;
    return 0;
}

static size_t bounded_len(const char *s, size_t max)
{
    size_t n = 0;
    if (!s) return 0;
    while (n < max && s[n])
        n++;
    return n;
}

size_t pt_frame_error_size(const char *message, const char *leader)
{
    return 4 + 2 + bounded_len(message, PT_FRAME_ERROR_MESSAGE_MAX) + 2 +
           bounded_len(leader, PT_FRAME_ADDRESS_MAX);
}

int pt_frame_error_encode(uint8_t *out, size_t cap, int code, const char *message,
                          const char *leader)
{
    struct pt_cursor c;
    size_t mlen = bounded_len(message, PT_FRAME_ERROR_MESSAGE_MAX);
    size_t llen = bounded_len(leader, PT_FRAME_ADDRESS_MAX);
    pt_cursor_init(&c, out, cap);
    pt_enc_u32(&c, (uint32_t)(code < 0 ? -code : code));
    pt_enc_u16(&c, (uint16_t)mlen);
    pt_enc_bytes(&c, message, mlen);
    pt_enc_u16(&c, (uint16_t)llen);
    pt_enc_bytes(&c, leader, llen);
    return pt_cursor_ok(&c) ? (int)c.pos : -PT_ERANGE;
}

int pt_frame_error_decode(const uint8_t *body, size_t len, struct pt_frame_error *out)
{
    struct pt_cursor c;
    uint32_t code;
    pt_cursor_init(&c, (void *)body, len);
    code = pt_dec_u32(&c);
    pt_dec_str(&c, out->message, sizeof(out->message));
    pt_dec_str(&c, out->leader, sizeof(out->leader));
    if (!pt_cursor_ok(&c) || pt_cursor_left(&c) != 0) return -PT_EPROTO;
    if (code == 0 || code >= PT_EMAX) return -PT_EPROTO;
    out->code = -(int)code;
    return 0;
}

size_t pt_str_size(const char *s)
{
    return 2 + (s ? strlen(s) : 0);
}

void pt_enc_str(struct pt_cursor *c, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > UINT16_MAX) {
        c->failed = 1;
        return;
    }
    pt_enc_u16(c, (uint16_t)n);
    pt_enc_bytes(c, s, n);
}

void pt_dec_str(struct pt_cursor *c, char *dst, size_t cap)
{
    uint16_t n = pt_dec_u16(c);
    const uint8_t *p;
    dst[0] = 0;
    if (!pt_cursor_ok(c)) return;
    if ((size_t)n >= cap) {
        c->failed = 1;
        return;
    }
    p = pt_cursor_take(c, n);
    if (!p) return;
    if (n && memchr(p, 0, n)) {
        c->failed = 1;
        return;
    }
    memcpy(dst, p, n);
    dst[n] = 0;
}
