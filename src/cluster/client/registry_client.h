/*
 * Client side of the registry: the calls servers, the client library and the CLI make to
 * register (heartbeats) and to find shards, CDC replicas and block services. Every call takes
 * the registry's location — "HOST:PORT", or a registry group's "HOST:PORT,HOST:PORT,..." — and
 * optional pt_call_opts (NULL = defaults) and retries transport failures with back-off
 * (pt_call). With a group, each round tries the members one attempt each (timeout_ms each,
 * default 2 s), the one that answered last first, following a follower's redirection to the
 * leader; rounds repeat until retry_budget_ms is spent. Returns 0 or a negative PT_E*.
 */
#ifndef PETREL_CLUSTER_REGISTRY_CLIENT_H
#define PETREL_CLUSTER_REGISTRY_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/net/net.h"
#include "cluster/proto/registry_msg.h"

/* Heartbeats (registration). A block service receives its secret in secret_out. */
int pt_reg_heartbeat_shard(const char *registry, const struct pt_reg_replica *hb,
                           const struct pt_call_opts *opts);
int pt_reg_heartbeat_cdc(const char *registry, const struct pt_reg_replica *hb,
                         const struct pt_call_opts *opts);
int pt_reg_heartbeat_blocks(const char *registry, const struct pt_reg_blocks *hb,
                            uint8_t secret_out[PT_REG_SECRET_SIZE],
                            const struct pt_call_opts *opts);

/*
 * Listings into malloc'd arrays (free() them), sorted by (shard, replica) / replica / id.
 * shard_filter: one shard, or PT_REG_ALL_SHARDS.
 */
int pt_reg_list_shards(const char *registry, uint16_t shard_filter, struct pt_reg_replica **out,
                       size_t *count, const struct pt_call_opts *opts);
int pt_reg_list_cdc(const char *registry, struct pt_reg_replica **out, size_t *count,
                    const struct pt_call_opts *opts);
int pt_reg_list_blocks(const char *registry, struct pt_reg_blocks **out, size_t *count,
                       const struct pt_call_opts *opts);

/* The secret shared by a block service and the shards (for certificates): 0 or -PT_ENOENT. */
int pt_reg_block_secret(const char *registry, uint64_t service_id,
                        uint8_t secret_out[PT_REG_SECRET_SIZE], const struct pt_call_opts *opts);

/* Whether a registry location is well formed (every member a numeric "HOST:PORT"): 0 or
 * -PT_EINVAL. */
int pt_reg_location_check(const char *location);

/* PT_MSG_REG_INFO of one member ("HOST:PORT", not a list): who it is, how fresh its view. */
int pt_reg_info(const char *address, struct pt_reg_info *out, const struct pt_call_opts *opts);

#endif
