/*
 * Names of the message kinds of ids.h, as metrics label them (petrel_requests_total{kind=...}).
 * A kind missing here is counted as "other": never an error, only a less useful label.
 */
#include "cluster/proto/ids.h"

const char *pt_msg_kind_name(uint16_t kind)
{
    switch (kind) {
    case PT_MSG_PING:
        return "ping";
    case PT_MSG_AUTH_HELLO:
        return "auth_hello";
    case PT_MSG_REG_SHARD_HEARTBEAT:
        return "reg_shard_heartbeat";
    case PT_MSG_REG_CDC_HEARTBEAT:
        return "reg_cdc_heartbeat";
    case PT_MSG_REG_BLOCKS_HEARTBEAT:
        return "reg_blocks_heartbeat";
    case PT_MSG_REG_LIST_SHARDS:
        return "reg_list_shards";
    case PT_MSG_REG_LIST_CDC:
        return "reg_list_cdc";
    case PT_MSG_REG_LIST_BLOCKS:
        return "reg_list_blocks";
    case PT_MSG_REG_BLOCK_SECRET:
        return "reg_block_secret";
    case PT_MSG_REG_INFO:
        return "reg_info";
    case PT_MSG_BLOCK_WRITE:
        return "block_write";
    case PT_MSG_BLOCK_READ:
        return "block_read";
    case PT_MSG_BLOCK_ERASE:
        return "block_erase";
    case PT_MSG_BLOCK_STAT:
        return "block_stat";
    case PT_MSG_BLOCK_LIST:
        return "block_list";
    case PT_MSG_BLOCK_INFO:
        return "block_info";
    case PT_MSG_BLOCK_WRITE_BEGIN:
        return "block_write_begin";
    case PT_MSG_BLOCK_WRITE_PAGES:
        return "block_write_pages";
    case PT_MSG_BLOCK_WRITE_END:
        return "block_write_end";
    case PT_MSG_SHARD_REQ:
        return "shard_req";
    case PT_MSG_NODE_INFO:
        return "node_info";
    case PT_MSG_CDC_REQ:
        return "cdc_req";
    default:
        return "other";
    }
}
