/*
 * CDC messages: the cross-directory operations a client asks the CDC for (kind PT_MSG_CDC_REQ,
 * docs/PROTOCOL.md "CDC") and the CDC's own log entries (docs/SPEC-SHARD.md "CDC log").
 * Byte layout only: bounded decoders, no I/O.
 *
 * A request carries a client key (random u64 chosen once per operation by the client): a
 * retried request with the same key joins the transaction of the first try instead of
 * starting another, so a retry after a lost reply is safe.
 */
#ifndef PETREL_CLUSTER_CDC_MSGS_H
#define PETREL_CLUSTER_CDC_MSGS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/proto/ids.h"
#include "cluster/proto/shard_msgs.h"

enum pt_cdc_op {
    PT_CDC_MKDIR = 1,  /* (dir, name) -> new directory id */
    PT_CDC_RMDIR = 2,  /* (dir, name) */
    PT_CDC_RENAME = 3, /* (dir, name) -> (dir2, name2), replacing name2 (rename(2) rules) */
    /* RENAME as compare-and-set: moves name only while it holds expect, onto name2 only while
     * name2 holds expect2 (0: only while name2 is free, -PT_EEXIST otherwise); a change by
     * someone else is refused with -PT_ESTALE. */
    PT_CDC_RENAME_INODE = 4,
};

/* RENAME or RENAME_INODE. */
#define pt_cdc_op_is_rename(op) ((op) == PT_CDC_RENAME || (op) == PT_CDC_RENAME_INODE)

struct pt_cdc_req {
    uint8_t op;
    uint64_t key;
    uint64_t dir, dir2;
    uint8_t name_len, name2_len;
    char name[PT_NAME_MAX + 1], name2[PT_NAME_MAX + 1];
    uint64_t expect, expect2; /* RENAME_INODE: the inodes name and name2 must hold */
    /* MKDIR only, optional (issue 11): the new directory's permission bits and owner;
     * absent: 0755, 0:0 */
    uint8_t has_attr;
    uint32_t mode, uid, gid;
};

/* u8 op, u64 key, u64 dir, name (u8 len + bytes), u64 dir2, name2 (RENAME_INODE: then u64
 * expect, u64 expect2; MKDIR with has_attr: then u32 mode, u32 uid, u32 gid). Length or
 * -PT_EINVAL. */
int pt_cdc_req_encode(const struct pt_cdc_req *q, uint8_t *buf, size_t cap);
/* 0, -PT_EPROTO (malformed), -PT_EINVAL (bad name or op). */
int pt_cdc_req_decode(struct pt_cdc_req *q, const uint8_t *buf, size_t len);

#endif
