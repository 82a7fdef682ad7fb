/*
 * Every message kind of the frame protocol, in one place (docs/PROTOCOL.md). A kind is a u16
 * grouped by service: 0x00xx generic, 0x01xx registry, 0x02xx block services, 0x03xx shards and
 * replicated nodes, 0x04xx CDC. A new kind is added here and nowhere else, so two services can
 * never pick the same number and a client needs no server header to name a message.
 */
#ifndef PETREL_CLUSTER_PROTO_IDS_H
#define PETREL_CLUSTER_PROTO_IDS_H

/* Generic kinds understood by every server. */
#define PT_MSG_PING 0x0001 /* body echoed back unchanged */
/* The first frame of an authenticated connection (docs/PROTOCOL.md, "Authentication"). */
#define PT_MSG_AUTH_HELLO 0x0002

/* Registry (registry_msg.h). */
#define PT_MSG_REG_SHARD_HEARTBEAT 0x0101
#define PT_MSG_REG_CDC_HEARTBEAT 0x0102
#define PT_MSG_REG_BLOCKS_HEARTBEAT 0x0103
#define PT_MSG_REG_LIST_SHARDS 0x0104
#define PT_MSG_REG_LIST_CDC 0x0105
#define PT_MSG_REG_LIST_BLOCKS 0x0106
#define PT_MSG_REG_BLOCK_SECRET 0x0107
#define PT_MSG_REG_INFO 0x0108 /* reply: struct pt_reg_info (registry_msg.h) */

/* Block services (blocks_msg.h). */
#define PT_MSG_BLOCK_WRITE 0x0201
#define PT_MSG_BLOCK_READ 0x0202
#define PT_MSG_BLOCK_ERASE 0x0203
#define PT_MSG_BLOCK_STAT 0x0204
#define PT_MSG_BLOCK_LIST 0x0205
#define PT_MSG_BLOCK_INFO 0x0206
#define PT_MSG_BLOCK_WRITE_BEGIN 0x0207
#define PT_MSG_BLOCK_WRITE_PAGES 0x0208
#define PT_MSG_BLOCK_WRITE_END 0x0209

/* Shards (shard_msgs.h) and every replicated node (shard or CDC replica). */
#define PT_MSG_SHARD_REQ 0x0301 /* body: a shard request (shard_msgs.h) */
#define PT_MSG_NODE_INFO 0x0302 /* reply: shard u8, replica u8, leader u8, raft address str */

/* CDC (cdc_msgs.h). */
#define PT_MSG_CDC_REQ 0x0401

#include <stdint.h>

/* A kind's name for metrics and logs ("block_read"), or "other" for an unknown kind (ids.c:
 * a new kind gets its name there too). */
const char *pt_msg_kind_name(uint16_t kind);

#endif
