/*
 * Blocking calls to the registry used by shards, the CDC and the client library: heartbeats and
 * listings over one struct pt_conn (cluster/net/net.h), bodies as in cluster/proto/registry_msg.h.
 * Each call returns 0 or the transport / remote error; it never retries (callers own their
 * retry policy) and never keeps state.
 */
#ifndef PETREL_CLUSTER_REG_CALLS_H
#define PETREL_CLUSTER_REG_CALLS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/net/net.h"
#include "cluster/proto/registry_msg.h"

#define PT_REGC_TIMEOUT_MS 1000

int pt_regc_shard_heartbeat(struct pt_conn *c, const struct pt_reg_replica *r);
int pt_regc_cdc_heartbeat(struct pt_conn *c, const struct pt_reg_replica *r);
/* Listings into malloc'd arrays (free() them). filter: a shard, or PT_REG_ALL_SHARDS. */
int pt_regc_list_shards(struct pt_conn *c, uint16_t filter, struct pt_reg_replica **out,
                        size_t *n);
int pt_regc_list_cdc(struct pt_conn *c, struct pt_reg_replica **out, size_t *n);
int pt_regc_list_blocks(struct pt_conn *c, struct pt_reg_blocks **out, size_t *n);
/* The certificate secret of one block service. */
int pt_regc_block_secret(struct pt_conn *c, uint64_t id, uint8_t secret[PT_REG_SECRET_SIZE]);

#endif
