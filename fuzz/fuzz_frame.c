/*
 * Fuzz target: the cluster frame codec (src/cluster/proto/frame.c). The input is taken as a
 * whole frame twice, as received and with its CRC field recomputed (so the fuzzer reaches the
 * checks behind the CRC), then as an error body. Accepted frames must re-encode to the same
 * header bytes and point their body inside the input; accepted error bodies must re-encode
 * to exactly the input.
 */
#include <string.h>

#include "cluster/proto/frame.h"
#include "fuzz.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

static void frame_check_one(const uint8_t *buf, size_t size, uint32_t max_body)
{
    struct pt_frame_header h;
    const uint8_t *body = NULL;
    uint8_t again[PT_FRAME_HEADER_SIZE];
    int err = pt_frame_decode(buf, size, max_body, &h, &body);
    FUZZ_CHECK(err <= 0);
    if (err) {
        FUZZ_CHECK(err == -PT_EPROTO || err == -PT_EVERSION || err == -PT_E2BIG ||
                   err == -PT_EBADMSG);
        return;
    }
    FUZZ_CHECK(size == PT_FRAME_HEADER_SIZE + (size_t)h.body_len);
    FUZZ_CHECK(h.body_len <= max_body);
    FUZZ_CHECK(body == buf + PT_FRAME_HEADER_SIZE);
    FUZZ_CHECK(h.version == PT_FRAME_VERSION && !(h.flags & ~PT_FRAME_FLAGS_KNOWN));
    pt_frame_encode_header(again, h.flags, h.kind, h.request_id, body, h.body_len);
    FUZZ_CHECK(memcmp(again, buf, PT_FRAME_HEADER_SIZE) == 0);
    {
        /* a trailer check under a key nobody used: refused, or (never) accepted, no harm */
        static const uint8_t key[32] = {1};
        struct pt_frame_header sealed = h;
        int u = pt_frame_unseal(buf, &sealed, body, key, 0);
        FUZZ_CHECK(u == -PT_EACCES || (u == 0 && sealed.body_len + PT_FRAME_TRAILER_SIZE ==
                                                     h.body_len));
    }
    if (h.flags & PT_FRAME_ERROR) {
        struct pt_frame_error e;
        if (pt_frame_error_decode(body, h.body_len, &e) == 0) FUZZ_CHECK(e.code < 0);
    }
}

static void error_body_check(const uint8_t *buf, size_t size)
{
    struct pt_frame_error e;
    uint8_t *again;
    size_t n;
    int err = pt_frame_error_decode(buf, size, &e);
    if (err) {
        FUZZ_CHECK(err == -PT_EPROTO);
        return;
    }
    FUZZ_CHECK(e.code < 0 && e.code > -PT_EMAX);
    FUZZ_CHECK(strlen(e.message) <= PT_FRAME_ERROR_MESSAGE_MAX);
    FUZZ_CHECK(strlen(e.leader) <= PT_FRAME_ADDRESS_MAX);
    n = pt_frame_error_size(e.message, e.leader);
    FUZZ_CHECK(n == size);
    again = malloc(n);
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(pt_frame_error_encode(again, n, e.code, e.message, e.leader) == (int)n);
    FUZZ_CHECK(memcmp(again, buf, n) == 0);
    free(again);
}

int pt_fuzz_frame(const uint8_t *data, size_t size)
{
    uint8_t *copy;
    frame_check_one(data, size, PT_FRAME_MAX_BODY_DEFAULT);
    frame_check_one(data, size, 16);
    error_body_check(data, size);
    if (size < PT_FRAME_HEADER_SIZE) return 0;
    /* The same bytes with a correct CRC: only the header's own checks can refuse them. */
    copy = malloc(size);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, size);
    pt_put_le32(copy + 20, pt_frame_crc(copy, copy + PT_FRAME_HEADER_SIZE,
                                        (uint32_t)(size - PT_FRAME_HEADER_SIZE)));
    {
        struct pt_frame_header h;
        const uint8_t *body;
        int header_err = pt_frame_decode_header(copy, PT_FRAME_MAX_BODY_DEFAULT, &h);
        int err = pt_frame_decode(copy, size, PT_FRAME_MAX_BODY_DEFAULT, &h, &body);
        FUZZ_CHECK(err != -PT_EBADMSG);
        if (!header_err && h.body_len == size - PT_FRAME_HEADER_SIZE) FUZZ_CHECK(err == 0);
    }
    frame_check_one(copy, size, PT_FRAME_MAX_BODY_DEFAULT);
    free(copy);
    return 0;
}

PT_FUZZ_TARGET(pt_fuzz_frame)
