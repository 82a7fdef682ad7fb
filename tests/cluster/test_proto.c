/*
 * The frame codec: round trips, every truncation of a valid frame, random garbage, single bit
 * flips anywhere (caught by the CRC), length limits, error bodies and wire strings; the sealed
 * frame's MAC (RFC 8439's ChaCha20-Poly1305 tag, checked against libsodium's AEAD) and what
 * unsealing refuses: any changed byte, another sequence number, another key.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/proto/auth.h"
#include "cluster/proto/frame.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"
#include "test.h"

static size_t make_frame(uint8_t *buf, uint8_t flags, uint16_t kind, uint64_t id,
                         const uint8_t *body, uint32_t len)
{
    pt_frame_encode_header(buf, flags, kind, id, body, len);
    if (len) memcpy(buf + PT_FRAME_HEADER_SIZE, body, len);
    return PT_FRAME_HEADER_SIZE + len;
}

TEST(proto_frame_layout)
{
    uint8_t buf[64];
    struct pt_frame_header h;
    const uint8_t *body;
    make_frame(buf, 0, 0x0203, 0x1122334455667788ull, (const uint8_t *)"abc", 3);
    CHECK(buf[0] == 'P' && buf[1] == 'T' && buf[2] == 'R' && buf[3] == 'L');
    CHECK_EQ(buf[4], PT_FRAME_VERSION);
    CHECK_EQ(buf[5], 0);
    CHECK(buf[6] == 0x03 && buf[7] == 0x02);
    CHECK_EQ(pt_get_le64(buf + 8), 0x1122334455667788ull);
    CHECK_EQ(pt_get_le32(buf + 16), 3);
    CHECK_EQ(pt_get_le32(buf + 20), petrel_crc32c(petrel_crc32c(0, buf, 20), "abc", 3));
    CHECK_OK(pt_frame_decode(buf, 27, 100, &h, &body));
    CHECK_EQ(h.kind, 0x0203);
    CHECK_EQ(h.request_id, 0x1122334455667788ull);
    CHECK_EQ(h.body_len, 3);
    CHECK_MEM(body, "abc", 3);
}

TEST(proto_frame_round_trip_random)
{
    struct pt_prng g;
    uint8_t *buf = malloc(PT_FRAME_HEADER_SIZE + 5000), body[5000];
    int i;
    pt_prng_seed(&g, test_seed());
    for (i = 0; i < 500; i++) {
        uint32_t len = (uint32_t)pt_prng_below(&g, sizeof(body) + 1);
        uint16_t kind = (uint16_t)pt_prng_next(&g);
        uint64_t id = pt_prng_next(&g);
        uint8_t flags = (uint8_t)pt_prng_below(&g, 2) ? PT_FRAME_RESPONSE : 0;
        struct pt_frame_header h;
        const uint8_t *got;
        pt_prng_fill(&g, body, len);
        size_t n = make_frame(buf, flags, kind, id, body, len);
        CHECK_OK(pt_frame_decode(buf, n, sizeof(body), &h, &got));
        CHECK_EQ(h.kind, kind);
        CHECK_EQ(h.request_id, id);
        CHECK_EQ(h.flags, flags);
        CHECK_EQ(h.body_len, len);
        CHECK_MEM(got, body, len);
    }
    free(buf);
}

TEST(proto_frame_every_truncation_rejected)
{
    uint8_t buf[PT_FRAME_HEADER_SIZE + 100], body[100];
    size_t n, cut;
    struct pt_frame_header h;
    const uint8_t *got;
    memset(body, 0x5a, sizeof(body));
    n = make_frame(buf, 0, 7, 9, body, sizeof(body));
    for (cut = 0; cut < n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan catches any over-read */
        memcpy(copy, buf, cut);
        CHECK_EQ(pt_frame_decode(copy, cut, 1000, &h, &got), -PT_EPROTO);
        free(copy);
    }
    /* Trailing bytes are rejected too. */
    {
        uint8_t longer[sizeof(buf) + 1];
        memcpy(longer, buf, n);
        longer[n] = 0;
        CHECK_EQ(pt_frame_decode(longer, n + 1, 1000, &h, &got), -PT_EPROTO);
    }
}

TEST(proto_frame_every_bit_flip_detected)
{
    uint8_t buf[PT_FRAME_HEADER_SIZE + 40], body[40];
    size_t n, bit;
    struct pt_frame_header h;
    const uint8_t *got;
    int i;
    for (i = 0; i < 40; i++)
        body[i] = (uint8_t)(i * 7);
    n = make_frame(buf, 0, 0x0101, 42, body, sizeof(body));
    for (bit = 0; bit < n * 8; bit++) {
        int err;
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        err = pt_frame_decode(buf, n, 1000, &h, &got);
        CHECK_MSG(err < 0, "flip of bit %zu accepted", bit);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    CHECK_OK(pt_frame_decode(buf, n, 1000, &h, &got));
}

TEST(proto_frame_limits_and_header_errors)
{
    uint8_t buf[PT_FRAME_HEADER_SIZE];
    struct pt_frame_header h;
    make_frame(buf, 0, 1, 77, NULL, 0);
    CHECK_OK(pt_frame_decode_header(buf, 0, &h));
    /* A hostile length is refused before anything is allocated, with the id still decoded. */
    pt_put_le32(buf + 16, 0xffffffffu);
    CHECK_EQ(pt_frame_decode_header(buf, PT_FRAME_MAX_BODY_DEFAULT, &h), -PT_E2BIG);
    CHECK_EQ(h.request_id, 77);
    make_frame(buf, 0, 1, 77, NULL, 0);
    buf[4] = 2;
    CHECK_EQ(pt_frame_decode_header(buf, 10, &h), -PT_EVERSION);
    make_frame(buf, 0x80, 1, 77, NULL, 0);
    CHECK_EQ(pt_frame_decode_header(buf, 10, &h), -PT_EPROTO);
    make_frame(buf, PT_FRAME_ERROR, 1, 77, NULL, 0); /* error without response */
    CHECK_EQ(pt_frame_decode_header(buf, 10, &h), -PT_EPROTO);
    make_frame(buf, 0, 1, 77, NULL, 0);
    buf[0] = 'X';
    CHECK_EQ(pt_frame_decode_header(buf, 10, &h), -PT_EPROTO);
}

TEST(proto_frame_random_garbage_never_accepted)
{
    struct pt_prng g;
    uint8_t buf[256];
    int i, accepted = 0;
    pt_prng_seed(&g, test_seed());
    for (i = 0; i < 20000; i++) {
        size_t n = (size_t)pt_prng_below(&g, sizeof(buf) + 1);
        struct pt_frame_header h;
        const uint8_t *got;
        pt_prng_fill(&g, buf, n);
        if (i & 1 && n >= 4) pt_put_le32(buf, PT_FRAME_MAGIC); /* get past the magic */
        if (i & 2 && n >= 5) buf[4] = PT_FRAME_VERSION;
        if (pt_frame_decode(buf, n, sizeof(buf), &h, &got) == 0) accepted++;
    }
    CHECK_EQ(accepted, 0);
}

TEST(proto_error_body_round_trip)
{
    uint8_t buf[2048];
    struct pt_frame_error e;
    char longmsg[PT_FRAME_ERROR_MESSAGE_MAX + 50];
    int n;
    n = pt_frame_error_encode(buf, sizeof(buf), -PT_ENOTLEADER, "not the leader", "127.0.0.1:7401");
    CHECK_EQ(n, (int)pt_frame_error_size("not the leader", "127.0.0.1:7401"));
    CHECK_EQ(pt_get_le32(buf), PT_ENOTLEADER);
    CHECK_OK(pt_frame_error_decode(buf, (size_t)n, &e));
    CHECK_EQ(e.code, -PT_ENOTLEADER);
    CHECK(strcmp(e.message, "not the leader") == 0);
    CHECK(strcmp(e.leader, "127.0.0.1:7401") == 0);
    /* Every truncation fails cleanly. */
    for (int cut = 0; cut < n; cut++)
        CHECK_EQ(pt_frame_error_decode(buf, (size_t)cut, &e), -PT_EPROTO);
    /* Long messages are truncated to the limit, and still decode. */
    memset(longmsg, 'm', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = 0;
    n = pt_frame_error_encode(buf, sizeof(buf), PT_EIO, longmsg, NULL);
    CHECK_OK(n);
    CHECK_OK(pt_frame_error_decode(buf, (size_t)n, &e));
    CHECK_EQ(strlen(e.message), PT_FRAME_ERROR_MESSAGE_MAX);
    CHECK_EQ(e.leader[0], 0);
    /* Code 0 and codes beyond the table are malformed. */
    n = pt_frame_error_encode(buf, sizeof(buf), 0, "x", NULL);
    CHECK_EQ(pt_frame_error_decode(buf, (size_t)n, &e), -PT_EPROTO);
    pt_put_le32(buf, 99999);
    CHECK_EQ(pt_frame_error_decode(buf, (size_t)n, &e), -PT_EPROTO);
    CHECK_EQ(pt_frame_error_encode(buf, 3, PT_EIO, "x", NULL), -PT_ERANGE);
}

TEST(proto_strings)
{
    uint8_t buf[32];
    char out[8];
    struct pt_cursor c;
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_enc_str(&c, "hello");
    pt_enc_str(&c, "");
    CHECK(pt_cursor_ok(&c));
    CHECK_EQ(c.pos, pt_str_size("hello") + pt_str_size(""));
    pt_cursor_init(&c, buf, c.pos);
    pt_dec_str(&c, out, sizeof(out));
    CHECK(strcmp(out, "hello") == 0);
    pt_dec_str(&c, out, sizeof(out));
    CHECK(pt_cursor_ok(&c) && out[0] == 0);
    /* Too long for the destination, and embedded NUL: the cursor fails. */
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_enc_str(&c, "12345678");
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_dec_str(&c, out, sizeof(out));
    CHECK(!pt_cursor_ok(&c));
    buf[3] = 0;
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_put_le16(buf, 3);
    pt_dec_str(&c, out, sizeof(out));
    CHECK(!pt_cursor_ok(&c));
}

/* The frame MAC streamed over pieces is RFC 8439's AEAD tag over their concatenation (empty
 * plaintext, nonce 00000000 | seq), whatever the cut: libsodium's one-shot AEAD is the oracle. */
TEST(proto_frame_mac_is_chacha20_poly1305_aead)
{
    struct pt_prng g;
    uint8_t data[3000], key[PT_AUTH_KEY_BYTES], nonce[12], want[PT_AUTH_TAG_BYTES];
    uint8_t got[PT_AUTH_TAG_BYTES], no_cipher[1];
    unsigned long long maclen;
    int i;
    pt_prng_seed(&g, test_seed());
    for (i = 0; i < 300; i++) {
        struct pt_auth_frame_mac m;
        size_t len = (size_t)pt_prng_below(&g, sizeof(data) + 1), off = 0;
        uint64_t seq = i < 3 ? (uint64_t)i : pt_prng_next(&g);
        pt_prng_fill(&g, data, len);
        pt_prng_fill(&g, key, sizeof(key));
        memset(nonce, 0, 4);
        pt_put_le64(nonce + 4, seq);
        CHECK_EQ(crypto_aead_chacha20poly1305_ietf_encrypt_detached(
                     no_cipher, want, &maclen, no_cipher, 0, data, len, NULL, nonce, key),
                 0);
        CHECK_EQ(maclen, PT_AUTH_TAG_BYTES);
        pt_auth_frame_mac_init(&m, key, seq);
        while (off < len) {
            size_t piece = 1 + (size_t)pt_prng_below(&g, (uint32_t)(len - off));
            pt_auth_frame_mac_add(&m, data + off, piece);
            off += piece;
        }
        pt_auth_frame_mac_final(&m, got);
        CHECK_MEM(got, want, sizeof(want));
    }
}

/* Seal a frame of body[len] in two parts into buf (header, body, trailer): its length. */
static size_t seal_frame(uint8_t *buf, const uint8_t *body, uint32_t len, const uint8_t *key,
                         uint64_t seq)
{
    struct iovec parts[2];
    parts[0].iov_base = (void *)body;
    parts[0].iov_len = len / 3;
    parts[1].iov_base = (void *)(body + len / 3);
    parts[1].iov_len = len - len / 3;
    pt_frame_seal(buf, buf + PT_FRAME_HEADER_SIZE + len, 0, 0x0201, 77, parts, 2, key, seq);
    memcpy(buf + PT_FRAME_HEADER_SIZE, body, len);
    return PT_FRAME_HEADER_SIZE + len + PT_FRAME_TRAILER_SIZE;
}

/* Unseal a whole frame held in buf[n]: 0 or the first error. */
static int unseal_frame(uint8_t *buf, size_t n, const uint8_t *key, uint64_t seq,
                        struct pt_frame_header *h)
{
    const uint8_t *body;
    int err = pt_frame_decode(buf, n, 1 << 20, h, &body);
    return err ? err : pt_frame_unseal(buf, h, body, key, seq);
}

TEST(proto_sealed_frame_refuses_any_change_other_sequence_and_key)
{
    struct pt_prng g;
    struct pt_frame_header h;
    uint8_t body[700], key[PT_AUTH_KEY_BYTES], other[PT_AUTH_KEY_BYTES];
    uint8_t frame[PT_FRAME_HEADER_SIZE + sizeof(body) + PT_FRAME_TRAILER_SIZE];
    uint8_t copy[sizeof(frame)];
    size_t n, pos;
    pt_prng_seed(&g, test_seed());
    pt_prng_fill(&g, body, sizeof(body));
    pt_prng_fill(&g, key, sizeof(key));
    memcpy(other, key, sizeof(key));
    other[31] ^= 1;
    n = seal_frame(frame, body, sizeof(body), key, 41);
    CHECK_EQ(n, sizeof(frame));
    CHECK_EQ(frame[5], PT_FRAME_AUTH);
    CHECK_EQ(pt_get_le32(frame + 16), sizeof(body) + PT_FRAME_TRAILER_SIZE);
    CHECK_EQ(pt_get_le64(frame + PT_FRAME_HEADER_SIZE + sizeof(body)), 41);
    /* the CRC of a sealed frame is its header's alone: the MAC covers the body */
    CHECK_EQ(pt_get_le32(frame + 20), petrel_crc32c(0, frame, 20));
    memcpy(copy, frame, n);
    CHECK_OK(unseal_frame(copy, n, key, 41, &h));
    CHECK_EQ(h.body_len, sizeof(body));
    /* another receiver's sequence, another key */
    memcpy(copy, frame, n);
    CHECK_EQ(unseal_frame(copy, n, key, 42, &h), -PT_EACCES);
    memcpy(copy, frame, n);
    CHECK_EQ(unseal_frame(copy, n, other, 41, &h), -PT_EACCES);
    /* a frame sealed at another sequence whose trailer claims the expected one: the sequence
     * is the MAC's nonce, so rewriting it (and fixing the CRC, as an attacker can) fails */
    n = seal_frame(copy, body, sizeof(body), key, 40);
    pt_put_le64(copy + PT_FRAME_HEADER_SIZE + sizeof(body), 41);
    pt_put_le32(copy + 20, petrel_crc32c(0, copy, 20));
    CHECK_EQ(unseal_frame(copy, n, key, 41, &h), -PT_EACCES);
    /* any byte of header 0..19, body or MAC changed, the CRC recomputed as a sender would
       (over the body too when the change cleared the AUTH flag): refused */
    for (pos = 0; pos < n; pos++) {
        if (pos >= 20 && pos < PT_FRAME_HEADER_SIZE) continue; /* the CRC itself */
        if (pos >= PT_FRAME_HEADER_SIZE + sizeof(body) &&
            pos < PT_FRAME_HEADER_SIZE + sizeof(body) + 8)
            continue; /* the sequence: covered above */
        memcpy(copy, frame, n);
        copy[pos] ^= (uint8_t)(1u << (pos & 7));
        pt_put_le32(copy + 20, pt_frame_crc(copy, copy + PT_FRAME_HEADER_SIZE, (uint32_t)n - 24));
        CHECK(unseal_frame(copy, n, key, 41, &h) != 0);
    }
}
