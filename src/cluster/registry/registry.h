/*
 * The registry: the directory of a Petrel deployment. Shard replicas, CDC replicas and block
 * services register by heartbeating; clients and servers ask where things are.
 *
 * struct pt_registry is the state machine, deterministic and free of I/O except the explicit
 * save/load: time is passed in (now_ms), secrets are passed in. The server
 * (pt_registry_server_*) puts it on the network and the disk.
 *
 * Invariants: at most one entry per (shard, replica), per CDC replica and per block service
 * id; at most one replica per shard (and one CDC replica) carries the leader hint — the most
 * recent claim wins; a block service keeps its secret for life (created at its first
 * heartbeat, persisted, never changed). An entry is stale when it has not heartbeated for
 * stale_after_ms; stale entries are still listed (flagged) so callers can choose.
 * Persisted state holds entries but not heartbeat times: after a load every entry counts as
 * seen at load time, except with wipe_ports (--using-dynamic-ports), which also empties every
 * address and marks every entry stale until it heartbeats again.
 */
#ifndef PETREL_CLUSTER_REGISTRY_H
#define PETREL_CLUSTER_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/proto/registry_msg.h"

#define PT_REGISTRY_MAX_ENTRIES 65536
#define PT_REGISTRY_STATE_FILE "registry.state"
#define PT_REGISTRY_STATE_MAGIC 0x53525450u /* "PTRS" */
#define PT_REGISTRY_STATE_VERSION 1

enum pt_registry_kind {
    PT_REG_KIND_SHARD = 1,
    PT_REG_KIND_CDC = 2,
    PT_REG_KIND_BLOCKS = 3,
};

struct pt_registry_entry {
    uint8_t kind;
    struct pt_reg_replica replica; /* shard and CDC entries */
    struct pt_reg_blocks blocks;   /* block service entries */
    uint8_t secret[PT_REG_SECRET_SIZE];
    uint64_t last_seen_ms; /* 0: never since load (stale) */
    /* status page only (registry_status.c), not saved: what the events ring last said */
    uint8_t reported_stale, reported_up;
};

struct pt_registry {
    struct pt_registry_entry *entries;
    size_t count, cap;
    uint64_t stale_after_ms;
    int needs_save; /* something persisted changed since the last save */
    int structural; /* an entry, address, leader or secret changed: save promptly */
};

void pt_registry_init(struct pt_registry *r, uint64_t stale_after_ms);
void pt_registry_free(struct pt_registry *r);

/*
 * Heartbeats: register or refresh an entry. The address must be a valid "HOST:PORT" with a
 * non-zero port, the shard < PT_REG_MAX_SHARDS, the replica < PT_REG_MAX_REPLICAS:
 * 0, -PT_EINVAL, -PT_ENOSPC (too many entries), -PT_ENOMEM.
 */
int pt_registry_shard_heartbeat(struct pt_registry *r, const struct pt_reg_replica *hb,
                                uint64_t now_ms);
int pt_registry_cdc_heartbeat(struct pt_registry *r, const struct pt_reg_replica *hb,
                              uint64_t now_ms);
/*
 * A block service heartbeat; a new service gets `fresh_secret` as its secret. The service's
 * secret (old or new) is copied to secret_out.
 */
int pt_registry_blocks_heartbeat(struct pt_registry *r, const struct pt_reg_blocks *hb,
                                 uint64_t now_ms, const uint8_t fresh_secret[PT_REG_SECRET_SIZE],
                                 uint8_t secret_out[PT_REG_SECRET_SIZE]);

/* Whether an entry is stale at now_ms. */
int pt_registry_entry_stale(const struct pt_registry *r, const struct pt_registry_entry *e,
                            uint64_t now_ms);

/*
 * Listings, in (shard, replica) / replica / id order, with stale and age filled in. Each
 * returns how many entries exist (and writes min(that, max) into out).
 */
size_t pt_registry_list_shards(const struct pt_registry *r, uint16_t shard_filter, uint64_t now_ms,
                               struct pt_reg_replica *out, size_t max);
size_t pt_registry_list_cdc(const struct pt_registry *r, uint64_t now_ms,
                            struct pt_reg_replica *out, size_t max);
size_t pt_registry_list_blocks(const struct pt_registry *r, uint64_t now_ms,
                               struct pt_reg_blocks *out, size_t max);

/* The secret of a block service: 0 or -PT_ENOENT. */
int pt_registry_block_secret(const struct pt_registry *r, uint64_t id,
                             uint8_t secret_out[PT_REG_SECRET_SIZE]);

/* Empty every stored address and mark every entry stale (--using-dynamic-ports). */
void pt_registry_wipe_ports(struct pt_registry *r);

/* Serialise the persisted state (docs/PROTOCOL.md, "Registry state file"): malloc'd buffer. */
int pt_registry_encode(const struct pt_registry *r, uint8_t **out, size_t *len);
/* Replace the state with a serialised one: 0, -PT_ECORRUPT (bad CRC or layout), -PT_EVERSION. */
int pt_registry_decode(struct pt_registry *r, const uint8_t *buf, size_t len, uint64_t now_ms);

/* Save to dir/registry.state durably; load from it (a missing file is an empty registry). */
int pt_registry_save(struct pt_registry *r, const char *dir);
int pt_registry_load(struct pt_registry *r, const char *dir, uint64_t now_ms);

/* --- the server ---------------------------------------------------------------------------- */

struct pt_registry_server_config {
    const char *dir;    /* state directory (created if missing) */
    const char *listen; /* "HOST:PORT" */
    uint64_t stale_after_ms;
    int using_dynamic_ports; /* wipe stored ports at start-up */
    /* Status page and metrics endpoint "HOST:PORT" (port 0: OS-chosen); NULL: none. */
    const char *http;
};

struct pt_registry_server;

/*
 * Load the state (wiping ports if asked), listen, and serve on `loop`: 0 or -PT_E* (a corrupt
 * state file is -PT_ECORRUPT: the registry refuses to start rather than forget services).
 */
int pt_registry_server_start(uv_loop_t *loop, const struct pt_registry_server_config *cfg,
                             struct pt_registry_server **out);
const char *pt_registry_server_address(const struct pt_registry_server *s);
/* The status page's bound address, or "" without one. */
const char *pt_registry_server_http_address(const struct pt_registry_server *s);
/* Save pending state, stop serving, free (run the loop afterwards to release handles). */
int pt_registry_server_stop(struct pt_registry_server *s);

#endif
