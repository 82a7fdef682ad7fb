/*
 * The wire format of Raft messages between replicas (docs/PROTOCOL.md, "Raft messages"):
 * a 44-byte header (magic, version, type, cluster id, group, body length, sender and
 * destination replica ids, CRC32C over header and body) and a body per raft_message type.
 *
 * The decoder is the only code that reads bytes from a Raft port. It fails closed: the
 * header first (length, magic, version, CRC), then every count and every length against the
 * limits below *before* anything is allocated; nothing it rejects is partially returned.
 * Pure functions over buffers, no env, no I/O: the fuzzer drives them directly.
 */
#ifndef PETREL_CLUSTER_REPLICA_RAFT_MSG_H
#define PETREL_CLUSTER_REPLICA_RAFT_MSG_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

#define PT_RAFT_MSG_MAGIC 0x54465250u /* "PRFT" */
#define PT_RAFT_MSG_VERSION 1
#define PT_RAFT_MSG_HEADER 44
#define PT_RAFT_MSG_MAX (64u << 20)       /* whole message, = PT_ENV_MSG_MAX */
#define PT_RAFT_MSG_ENTRIES_MAX 65536u    /* entries in one AppendEntries */
#define PT_RAFT_MSG_ENTRY_MAX (16u << 20) /* bytes of one entry */
#define PT_RAFT_MSG_SERVERS_MAX 16u       /* servers in a snapshot's configuration */
#define PT_RAFT_MSG_ADDR_MAX 64u          /* bytes of a server address */

/* Header flags (bytes 6..7). AUTH: the body is followed by a 40-byte trailer, sequence u64
 * and a MAC (pt_raft_msg_seal). */
#define PT_RAFT_MSG_AUTH 0x0001u
#define PT_RAFT_MSG_TRAILER 40

struct pt_raft_msg_header {
    uint8_t type; /* RAFT_IO_* */
    uint64_t cluster_id;
    uint32_t group;
    uint32_t body_len;
    uint64_t from, to; /* replica ids */
    uint16_t flags;    /* PT_RAFT_MSG_AUTH or 0 (last: positional initialisers leave it 0) */
};

/*
 * Encode m (type, ids and body; m->server_id is ignored: h->from/h->to are used) into a
 * buffer from malloc: 0 or -PT_ENOMEM / -PT_EINVAL. AppendEntries that would exceed
 * PT_RAFT_MSG_MAX carry only the entries that fit (at least none): Raft then sends the rest
 * in the next round.
 */
int pt_raft_msg_encode(const struct pt_raft_msg_header *h, const struct raft_message *m,
                       uint8_t **out, size_t *out_len);

/*
 * Fill the trailer of a message encoded with PT_RAFT_MSG_AUTH (its last PT_RAFT_MSG_TRAILER
 * bytes): seq, then the MAC under key over everything before the trailer and seq.
 */
void pt_raft_msg_seal(uint8_t *buf, size_t len, const uint8_t *key, uint64_t seq);

/*
 * Check the trailer of a received message whose header decoded with PT_RAFT_MSG_AUTH: 0 with
 * *seq set, or -PT_EACCES when the MAC does not match.
 */
int pt_raft_msg_unseal(const uint8_t *buf, size_t len, const uint8_t *key, uint64_t *seq);

/*
 * Check the header of a received message: 0, -PT_EPROTO (short, magic, unknown flags, length
 * mismatch (the trailer counted when flagged) or over the limit, unknown type), -PT_EVERSION,
 * -PT_EBADMSG (CRC).
 */
int pt_raft_msg_decode_header(const uint8_t *buf, size_t len, struct pt_raft_msg_header *h);

/*
 * Decode the body of a message whose header passed: 0 and m filled (entries in one
 * raft_malloc'd batch, snapshot data and configuration allocated: libraft takes ownership,
 * or pt_raft_msg_release frees them), or -PT_EPROTO (malformed, over a limit) / -PT_ENOMEM
 * with nothing allocated.
 */
int pt_raft_msg_decode_body(const struct pt_raft_msg_header *h, const uint8_t *body,
                            struct raft_message *m);

/*
 * A Raft configuration as bytes (also inside snapshot files): u32 count, then per server u64
 * id, u8 role, u16 address length, address bytes. Decoding checks the count, lengths, ids and
 * roles (-PT_EPROTO) and leaves conf empty on failure; conf is initialised by the decoder.
 */
struct pt_cursor;
size_t pt_raft_conf_size(const struct raft_configuration *conf);
void pt_raft_conf_encode(struct pt_cursor *c, const struct raft_configuration *conf);
int pt_raft_conf_decode(struct pt_cursor *c, struct raft_configuration *conf);

/* Free what pt_raft_msg_decode_body allocated in m (when libraft does not take it). */
void pt_raft_msg_release(struct raft_message *m);

#endif
