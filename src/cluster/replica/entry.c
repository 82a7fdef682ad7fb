/*
 * The log entry envelope (see entry.h): building one batch. Never allocates; a builder that
 * overflowed stays failed, so a half-built entry is never finished.
 */
#include "cluster/replica/entry.h"

#include <string.h>

#include "petrel/codec.h"
#include "petrel/common.h"

void pt_shard_entry_init(struct pt_shard_entry_builder *b, uint8_t *buf, size_t cap,
                         uint64_t time_ms)
{
    b->buf = buf;
    b->cap = cap;
    b->pos = PT_SHARD_ENTRY_HEADER;
    b->count = 0;
    b->failed = cap < PT_SHARD_ENTRY_HEADER;
    if (b->failed) return;
    buf[0] = PT_SHARD_ENTRY_VERSION;
    buf[1] = 0;
    pt_put_le16(buf + 2, 0);
    pt_put_le64(buf + 4, time_ms);
}

int pt_shard_entry_add_raw(struct pt_shard_entry_builder *b, const uint8_t *req, size_t len)
{
    if (b->failed) return -PT_EOVERFLOW;
    if (b->count == PT_SHARD_BATCH_MAX) return -PT_E2BIG;
    if (b->cap - b->pos < 4 || b->cap - b->pos - 4 < len) return -PT_EOVERFLOW;
    pt_put_le32(b->buf + b->pos, (uint32_t)len);
    memcpy(b->buf + b->pos + 4, req, len);
    b->pos += 4 + len;
    b->count++;
    return 0;
}

int pt_shard_entry_finish(struct pt_shard_entry_builder *b)
{
    if (b->failed) return -PT_EOVERFLOW;
    pt_put_le16(b->buf + 2, b->count);
    return (int)b->pos;
}
