/*
 * Fuzz target: the shard message codec (src/cluster/proto/shard_msgs.c). Byte 0 picks a
 * decoder: a shard request, a sequence of span records, or a reply (status, then STAT or
 * READDIR entries). Accepted requests and spans must re-encode to exactly the bytes read, and
 * carry only what the decoder promises: a known op, names without NUL or '/', at most
 * PT_SPAN_BLOCKS_MAX services or blocks, inline data no longer than the span. Reply bodies
 * are decoded whatever the status (as the CDC server does), and directory entries must carry
 * names a path can be built from.
 */
#include <string.h>

#include "cluster/proto/shard_msgs.h"
#include "fuzz.h"
#include "petrel/codec.h"
#include "petrel/common.h"

static void shard_request(const uint8_t *body, size_t len)
{
    static struct pt_shard_req q;
    static uint8_t again[PT_SHARD_MSG_MAX + 1024];
    int err = pt_shard_req_decode(&q, body, len), n;
    if (err) {
        FUZZ_CHECK(err == -PT_EPROTO || err == -PT_EINVAL || err == -PT_ENAMETOOLONG);
        return;
    }
    FUZZ_CHECK(pt_shard_op_valid(q.op));
    FUZZ_CHECK(strlen(q.name) == q.name_len && strlen(q.name2) == q.name2_len);
    FUZZ_CHECK(!memchr(q.name, '/', q.name_len) && !memchr(q.name2, '/', q.name2_len));
    FUZZ_CHECK(q.n_services <= PT_SPAN_BLOCKS_MAX && q.data_len <= PT_SHARD_MSG_MAX);
    FUZZ_CHECK(q.data_len == 0 || (q.data_ptr >= body && q.data_ptr + q.data_len <= body + len));
    n = pt_shard_req_encode(&q, again, sizeof(again));
    FUZZ_CHECK(n == (int)len && memcmp(again, body, len) == 0);
}

static void shard_spans(const uint8_t *body, size_t len)
{
    struct pt_cursor c, e;
    struct pt_span s;
    static uint8_t again[PT_INLINE_MAX + 512];
    int k;
    pt_cursor_init(&c, (void *)body, len);
    for (k = 0; k < 64 && pt_cursor_left(&c) > 0; k++) {
        size_t start = c.pos;
        if (pt_span_decode(&c, &s) != 0) return;
        FUZZ_CHECK(pt_span_block_count(&s) <= PT_SPAN_BLOCKS_MAX);
        if (s.storage == PT_STORAGE_INLINE)
            FUZZ_CHECK(s.inline_len == s.size && s.inline_len <= PT_INLINE_MAX &&
                       (s.inline_len == 0 ||
                        (s.inline_data >= body && s.inline_data + s.inline_len <= body + len)));
        else
            FUZZ_CHECK(s.data >= 1 && (s.storage != PT_STORAGE_MIRRORED || s.data == 1));
        pt_cursor_init(&e, again, sizeof(again));
        pt_span_encode(&e, &s);
        FUZZ_CHECK(pt_cursor_ok(&e) && e.pos == c.pos - start);
        FUZZ_CHECK(memcmp(again, body + start, e.pos) == 0);
    }
}

static void shard_reply(const uint8_t *body, size_t len, int dirents)
{
    struct pt_cursor c;
    int status = pt_shard_reply_open(body, len, &c), k;
    FUZZ_CHECK(status <= 0 && status > -PT_EMAX);
    /* The body is decoded whatever the status, as some callers do: it must be safe to. */
    if (!dirents) {
        struct pt_shard_stat st;
        pt_shard_reply_stat(&c, &st);
        return;
    }
    for (k = 0; k < 300 && pt_cursor_left(&c) > 0; k++) {
        struct pt_dirent de;
        if (pt_shard_reply_dirent(&c, &de) != 0) return;
        FUZZ_CHECK(strlen(de.name) == de.name_len && !strchr(de.name, '/'));
    }
}

int pt_fuzz_shard_msgs(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    switch (data[0] % 4) {
    case 0:
        shard_request(data + 1, size - 1);
        break;
    case 1:
        shard_spans(data + 1, size - 1);
        break;
    case 2:
        shard_reply(data + 1, size - 1, 0);
        break;
    default:
        shard_reply(data + 1, size - 1, 1);
        break;
    }
    return 0;
}

PT_FUZZ_TARGET(pt_fuzz_shard_msgs)
