/*
 * Registry messages (kinds 0x01xx; docs/PROTOCOL.md section "Registry"): heartbeats by which
 * shard replicas, CDC replicas and block services register, and the queries that list them.
 * Owns the byte layout of these bodies only: encoders write into a caller's cursor, decoders
 * read from one and leave it failed on malformed input (check pt_cursor_ok and that nothing
 * is left). No I/O, no allocation except the list decoders' arrays.
 */
#ifndef PETREL_CLUSTER_REGISTRY_MSG_H
#define PETREL_CLUSTER_REGISTRY_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/proto/ids.h"
#include "petrel/codec.h"

#define PT_REG_MAX_SHARDS 256
#define PT_REG_MAX_REPLICAS 5
#define PT_REG_ADDR_MAX 128  /* bytes of an address string, NUL included */
#define PT_REG_DOMAIN_MAX 64 /* bytes of a failure-domain name, NUL included */
#define PT_REG_SECRET_SIZE 16
/* A registry location: one "HOST:PORT" or a group's "HOST:PORT,HOST:PORT,..." (NUL included) */
#define PT_REG_LOCATION_MAX 1024
#define PT_REG_ALL_SHARDS 0xffff /* REG_LIST_SHARDS filter: every shard */

/* A shard or CDC replica, as heartbeated and as listed. For CDC entries shard is 0. */
struct pt_reg_replica {
    uint8_t shard;
    uint8_t replica;
    uint8_t leader;             /* the replica said it leads, and no later claim replaced it */
    uint8_t stale;              /* listing only: silent longer than the registry's stale time */
    uint64_t age_ms;            /* listing only: time since the last heartbeat */
    char addr[PT_REG_ADDR_MAX]; /* "" when unknown (wiped by --using-dynamic-ports) */
    /* Heartbeat status tail (optional on the wire; kept in the registry's memory only, not in
     * lists): the sender's Raft term, commit index and HTTP address ("" without --http). */
    uint64_t term, commit;
    char http[PT_REG_ADDR_MAX];
};

/* A block service, as heartbeated and as listed. */
struct pt_reg_blocks {
    uint64_t id;
    char failure_domain[PT_REG_DOMAIN_MAX];
    char addr[PT_REG_ADDR_MAX];
    uint64_t capacity; /* bytes */
    uint64_t used;     /* bytes held by blocks */
    uint64_t blocks;   /* block count */
    /* The service's scrubber (blocks.h, struct pt_blocks_scrub_stats) */
    uint64_t scrub_checked;      /* blocks verified whole since the service started */
    uint64_t scrub_rotten;       /* blocks found rotten since the service started */
    uint64_t scrub_passes;       /* full passes since the service started */
    uint64_t scrub_last_pass_ms; /* wall-clock ms at the end of the latest pass (0: none) */
    char http[PT_REG_ADDR_MAX];  /* heartbeat status tail (optional): HTTP address or "" */
    uint8_t stale;     /* listing only */
    uint64_t age_ms;   /* listing only */
};

/* Heartbeat bodies. Shard: shard, replica, leader, addr. CDC: replica, leader, addr. */
void pt_reg_enc_shard_heartbeat(struct pt_cursor *c, const struct pt_reg_replica *r);
void pt_reg_dec_shard_heartbeat(struct pt_cursor *c, struct pt_reg_replica *r);
void pt_reg_enc_cdc_heartbeat(struct pt_cursor *c, const struct pt_reg_replica *r);
void pt_reg_dec_cdc_heartbeat(struct pt_cursor *c, struct pt_reg_replica *r);
void pt_reg_enc_blocks_heartbeat(struct pt_cursor *c, const struct pt_reg_blocks *b);
void pt_reg_dec_blocks_heartbeat(struct pt_cursor *c, struct pt_reg_blocks *b);

/* List entries (one at a time, after a u32 count the caller writes/reads). */
void pt_reg_enc_replica_entry(struct pt_cursor *c, const struct pt_reg_replica *r);
void pt_reg_dec_replica_entry(struct pt_cursor *c, struct pt_reg_replica *r);
void pt_reg_enc_blocks_entry(struct pt_cursor *c, const struct pt_reg_blocks *b);
void pt_reg_dec_blocks_entry(struct pt_cursor *c, struct pt_reg_blocks *b);

/* Largest encoded size of one entry (for sizing replies). */
size_t pt_reg_replica_entry_max(void);
size_t pt_reg_blocks_entry_max(void);

/*
 * Decode a whole list reply body into a malloc'd array: 0 with *out and *count set, or -PT_EPROTO
 * (malformed, trailing bytes, or a count the body cannot hold), -PT_ENOMEM.
 */
int pt_reg_decode_replica_list(const uint8_t *body, size_t len, struct pt_reg_replica **out,
                               size_t *count);
int pt_reg_decode_blocks_list(const uint8_t *body, size_t len, struct pt_reg_blocks **out,
                              size_t *count);

/*
 * A registry location: "HOST:PORT" or the members of a registry group "HOST:PORT,HOST:PORT,..."
 * (at most PT_REG_MAX_REPLICAS, in member order). Split into addrs: the count, or -PT_EINVAL
 * (an empty or over-long member, too many members).
 */
int pt_reg_location_split(const char *location, char addrs[][PT_REG_ADDR_MAX], unsigned max);

/*
 * PT_MSG_REG_INFO reply: which member answered and how fresh its view is. staleness_ms is how
 * long ago this member last applied an entry of the group's log (0 on a serving leader,
 * UINT64_MAX when it has applied none since it started): its listings miss at most the changes
 * of that long. A standalone registry is a serving group of one.
 */
struct pt_reg_info {
    uint8_t replica, replicas, serving;
    uint64_t term, commit, applied, staleness_ms;
    char leader[PT_REG_ADDR_MAX]; /* client address of the leader, "" when unknown */
};
void pt_reg_enc_info(struct pt_cursor *c, const struct pt_reg_info *i);
void pt_reg_dec_info(struct pt_cursor *c, struct pt_reg_info *i);

#endif
