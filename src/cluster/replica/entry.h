/*
 * The log entry envelope shared by every replicated state machine (shards and the CDC): a
 * batch of encoded requests that share one Raft append and one flush, and the replies the
 * state machine gives for one applied entry. The replica core builds entries with it; the
 * state machines (shard_sm.c, cdc_sm.c) read them. Layout byte by byte: docs/SPEC-SHARD.md
 * section 2: header (version u8, reserved u8, count u16, the leader's time u64), then
 * count x (u32 length, encoded request). An entry with count 0 is a barrier.
 *
 * The names keep their historical pt_shard_ prefix: the envelope was born in the shard state
 * machine and its bytes are the shards' on-disk log format.
 */
#ifndef PETREL_CLUSTER_REPLICA_ENTRY_H
#define PETREL_CLUSTER_REPLICA_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#define PT_SHARD_ENTRY_VERSION 1
#define PT_SHARD_ENTRY_HEADER 12     /* version u8, reserved u8, count u16, time u64 */
#define PT_SHARD_BATCH_MAX 64        /* requests in one log entry (group commit) */
#define PT_SHARD_WRITE_REPLY_MAX 512 /* largest reply of a state-changing request */

struct pt_shard_entry_builder {
    uint8_t *buf;
    size_t cap, pos;
    uint16_t count;
    int failed;
};
void pt_shard_entry_init(struct pt_shard_entry_builder *b, uint8_t *buf, size_t cap,
                         uint64_t time_ms);
/* Append an already encoded request: 0, or -PT_EOVERFLOW / -PT_E2BIG (batch full). */
int pt_shard_entry_add_raw(struct pt_shard_entry_builder *b, const uint8_t *req, size_t len);
/* Finish: the entry's length, or a negative error if an add failed. */
int pt_shard_entry_finish(struct pt_shard_entry_builder *b);

/* The replies of one applied entry, one per request, in order: [i32 status][body] each. The
 * result a state machine's raft_fsm apply hands back to the replica core. */
struct pt_shard_apply_out {
    uint16_t count;
    uint16_t len[PT_SHARD_BATCH_MAX];
    uint8_t reply[PT_SHARD_BATCH_MAX][PT_SHARD_WRITE_REPLY_MAX];
};

#endif
