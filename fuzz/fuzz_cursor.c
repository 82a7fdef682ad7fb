/*
 * Fuzz target: the bounded cursor of include/petrel/codec.h and the wire strings of
 * frame.c (pt_enc_str / pt_dec_str). The input is a program: byte 0 sizes the buffer (the
 * rest of the input is its initial content), then each op byte runs one cursor call, on a
 * reading cursor and a writing cursor over that buffer, against a model of what it must do:
 * reads return the little-endian value of the bytes at the position or zero once failed;
 * the position only moves on success and never passes the length; failure is sticky;
 * strings decode only when they fit and hold no NUL, and re-encode to the same bytes.
 */
#include <string.h>

#include "cluster/proto/frame.h"
#include "fuzz.h"
#include "petrel/codec.h"
#include "petrel/common.h"

static uint64_t model_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    while (n--)
        v = (v << 8) | p[n];
    return v;
}

/* One read of n bytes (1, 2, 4, 8) through the matching decoder. */
static uint64_t cursor_read(struct pt_cursor *c, size_t n)
{
    switch (n) {
    case 1:
        return pt_dec_u8(c);
    case 2:
        return pt_dec_u16(c);
    case 4:
        return pt_dec_u32(c);
    default:
        return pt_dec_u64(c);
    }
}

static void cursor_write(struct pt_cursor *c, size_t n, uint64_t v)
{
    switch (n) {
    case 1:
        pt_enc_u8(c, (uint8_t)v);
        break;
    case 2:
        pt_enc_u16(c, (uint16_t)v);
        break;
    case 4:
        pt_enc_u32(c, (uint32_t)v);
        break;
    default:
        pt_enc_u64(c, v);
        break;
    }
}

int pt_fuzz_cursor(const uint8_t *data, size_t size)
{
    static const size_t widths[4] = {1, 2, 4, 8};
    struct pt_cursor rd, wr;
    uint8_t *buf, *out;
    size_t len, i, steps = 0;
    int failed_rd = 0, failed_wr = 0;
    if (size < 1) return 0;
    len = PT_MIN((size_t)data[0], size - 1);
    buf = malloc(len ? len : 1);
    out = malloc(len ? len : 1);
    FUZZ_CHECK(buf && out);
    if (len) memcpy(buf, data + 1, len);
    memset(out, 0xee, len ? len : 1);
    pt_cursor_init(&rd, buf, len);
    pt_cursor_init(&wr, out, len);
    for (i = 1 + len; i < size && steps < 4096; i++, steps++) {
        uint8_t op = data[i];
        size_t before_rd = rd.pos, before_wr = wr.pos, n = widths[op & 3];
        uint64_t v = ((uint64_t)op * 0x9e3779b97f4a7c15ull) ^ steps;
        switch ((op >> 2) % 5) {
        case 0: { /* integer read */
            int fits = !failed_rd && len - rd.pos >= n;
            uint64_t want = fits ? model_le(buf + rd.pos, n) : 0;
            FUZZ_CHECK(cursor_read(&rd, n) == want);
            if (!fits) failed_rd = 1;
            FUZZ_CHECK(rd.pos == before_rd + (fits ? n : 0));
            break;
        }
        case 1: { /* integer write, read back from the buffer */
            int fits = !failed_wr && len - wr.pos >= n;
            cursor_write(&wr, n, v);
            if (!fits) failed_wr = 1;
            FUZZ_CHECK(wr.pos == before_wr + (fits ? n : 0));
            if (fits)
                FUZZ_CHECK(model_le(out + before_wr, n) ==
                           (n == 8 ? v : v & ((1ull << (8 * n)) - 1)));
            break;
        }
        case 2: { /* take / bytes of an input-chosen length */
            size_t want = (size_t)(op >> 5) * 3, fits = !failed_rd && len - rd.pos >= want;
            uint8_t tmp[32];
            pt_dec_bytes(&rd, tmp, want);
            if (fits)
                FUZZ_CHECK(want == 0 || memcmp(tmp, buf + before_rd, want) == 0);
            else {
                size_t k;
                failed_rd = 1;
                for (k = 0; k < want; k++)
                    FUZZ_CHECK(tmp[k] == 0);
            }
            break;
        }
        case 3: { /* a wire string decoded into a buffer of input-chosen capacity */
            char s[64];
            size_t cap = 1 + (op >> 5) * 9, slen;
            int fits_len = !failed_rd && len - rd.pos >= 2;
            size_t n16 = fits_len ? (size_t)model_le(buf + rd.pos, 2) : 0;
            int ok = fits_len && n16 < cap && len - rd.pos - 2 >= n16 &&
                     !memchr(buf + rd.pos + 2, 0, n16);
            pt_dec_str(&rd, s, cap);
            FUZZ_CHECK(pt_cursor_ok(&rd) == ok);
            if (!ok) {
                failed_rd = 1;
                break;
            }
            slen = strlen(s);
            FUZZ_CHECK(slen == n16 && memcmp(s, buf + before_rd + 2, slen) == 0);
            FUZZ_CHECK(pt_str_size(s) == 2 + slen && rd.pos == before_rd + 2 + slen);
            {
                uint8_t again[80];
                struct pt_cursor e;
                pt_cursor_init(&e, again, sizeof(again));
                pt_enc_str(&e, s);
                FUZZ_CHECK(pt_cursor_ok(&e) && e.pos == 2 + slen);
                FUZZ_CHECK(memcmp(again, buf + before_rd, e.pos) == 0);
            }
            break;
        }
        default: { /* take on the writer, then its bookkeeping */
            size_t want = (size_t)(op >> 5);
            int fits = !failed_wr && len - wr.pos >= want;
            uint8_t *p = pt_cursor_take(&wr, want);
            FUZZ_CHECK((p != NULL) == fits);
            if (fits)
                FUZZ_CHECK(p == out + before_wr);
            else
                failed_wr = 1;
            break;
        }
        }
        FUZZ_CHECK(pt_cursor_ok(&rd) == !failed_rd && pt_cursor_ok(&wr) == !failed_wr);
        FUZZ_CHECK(rd.pos <= len && wr.pos <= len);
        FUZZ_CHECK(pt_cursor_left(&rd) == (failed_rd ? 0 : len - rd.pos));
        FUZZ_CHECK(pt_cursor_left(&wr) == (failed_wr ? 0 : len - wr.pos));
    }
    free(buf);
    free(out);
    return 0;
}

PT_FUZZ_TARGET(pt_fuzz_cursor)
