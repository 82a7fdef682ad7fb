/*
 * Names of the shard operations (shard_msgs.h) as metrics label them:
 * petrel_requests_total{kind="shard_lookup"}. An operation missing here is counted as
 * "shard_other": never an error, only a less useful label.
 */
#include "cluster/proto/shard_msgs.h"

const char *pt_shard_op_metric_name(uint8_t op)
{
    switch (op) {
    case PT_SHARD_LOOKUP:
        return "shard_lookup";
    case PT_SHARD_READDIR:
        return "shard_readdir";
    case PT_SHARD_STAT:
        return "shard_stat";
    case PT_SHARD_SPANS:
        return "shard_spans";
    case PT_SHARD_GET_POLICY:
        return "shard_get_policy";
    case PT_SHARD_REPAIR_LIST:
        return "shard_repair_list";
    case PT_SHARD_DRAIN_STATUS:
        return "shard_drain_status";
    case PT_SHARD_REPAIR_STATUS:
        return "shard_repair_status";
    case PT_SHARD_CONSTRUCT_FILE:
        return "shard_construct_file";
    case PT_SHARD_ADD_SPAN:
        return "shard_add_span";
    case PT_SHARD_ADD_INLINE:
        return "shard_add_inline";
    case PT_SHARD_CERTIFY_SPAN:
        return "shard_certify_span";
    case PT_SHARD_LINK_FILE:
        return "shard_link_file";
    case PT_SHARD_UNLINK:
        return "shard_unlink";
    case PT_SHARD_RENAME:
        return "shard_rename";
    case PT_SHARD_EXPIRE:
        return "shard_expire";
    case PT_SHARD_DROP_SPAN:
        return "shard_drop_span";
    case PT_SHARD_RETIRE_FILE:
        return "shard_retire_file";
    case PT_SHARD_FORGET_FILE:
        return "shard_forget_file";
    case PT_SHARD_FORGET_DROPPED:
        return "shard_forget_dropped";
    case PT_SHARD_LINK_REPLACE:
        return "shard_link_replace";
    case PT_SHARD_UNLINK_INODE:
        return "shard_unlink_inode";
    case PT_SHARD_RENAME_INODE:
        return "shard_rename_inode";
    case PT_SHARD_MAKE_DIR:
        return "shard_make_dir";
    case PT_SHARD_ADD_ENTRY:
        return "shard_add_entry";
    case PT_SHARD_REMOVE_ENTRY:
        return "shard_remove_entry";
    case PT_SHARD_LOCK_ENTRY:
        return "shard_lock_entry";
    case PT_SHARD_UNLOCK_ENTRY:
        return "shard_unlock_entry";
    case PT_SHARD_REMOVE_DIR:
        return "shard_remove_dir";
    case PT_SHARD_SET_PARENT:
        return "shard_set_parent";
    case PT_SHARD_REPLACE_ENTRY:
        return "shard_replace_entry";
    case PT_SHARD_SETATTR:
        return "shard_setattr";
    case PT_SHARD_MAKE_NODE:
        return "shard_make_node";
    case PT_SHARD_ADD_RS_SPAN:
        return "shard_add_rs_span";
    case PT_SHARD_SET_POLICY:
        return "shard_set_policy";
    case PT_SHARD_REPORT_BAD_BLOCK:
        return "shard_report_bad_block";
    case PT_SHARD_SCRUB_REPORT:
        return "shard_scrub_report";
    case PT_SHARD_REPLACE_BLOCK:
        return "shard_replace_block";
    case PT_SHARD_DRAIN_SERVICE:
        return "shard_drain_service";
    case PT_SHARD_FAIL_SERVICE:
        return "shard_fail_service";
    default:
        return "shard_other";
    }
}
