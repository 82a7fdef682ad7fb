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

#include <raft.h>
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

/* --- the replicated registry (registry_fsm.c, docs/SPEC-REGISTRY.md) ------------------------- */

/*
 * A registry group keeps the registry in a Raft log (replica/entry.h envelope). Each request
 * of an entry is one registry log item: u16 kind, then the heartbeat body exactly as on the
 * wire (docs/PROTOCOL.md), then for a block service heartbeat the 16-byte secret the leader
 * drew for it (used only if the service is new). Kind PT_REGISTRY_ITEM_TICK (no body) only
 * moves the group's clock: the leader logs one when idle so followers know how fresh they are.
 * Applying is deterministic: an entry's "now" is the leader time in its header, never a
 * replica's own clock.
 */
#define PT_REGISTRY_ITEM_TICK 0
#define PT_REGISTRY_ITEM_MAX 1024 /* kind + the largest heartbeat body + a secret */

/* Encode one log item into buf[cap]: its length, or -PT_EINVAL (unknown kind, no secret for a
 * block heartbeat) / -PT_E2BIG. */
int pt_registry_item_encode(uint8_t *buf, size_t cap, uint16_t kind, const uint8_t *body,
                            size_t body_len, const uint8_t fresh_secret[PT_REG_SECRET_SIZE]);

struct pt_shard_apply_out;
/*
 * Apply one log entry: each item's reply is [i32 status][body] (the body of a block service
 * heartbeat is its secret); a malformed item is -PT_EPROTO for that item alone. *time_ms gets
 * the entry's leader time (0 for an entry that is not an envelope). Returns 0 (state errors are
 * per item) or -PT_ENOMEM.
 */
int pt_registry_apply(struct pt_registry *r, const uint8_t *entry, size_t len,
                      struct pt_shard_apply_out *out, uint64_t *time_ms);

/*
 * Answer a read (PT_MSG_REG_LIST_SHARDS, _LIST_CDC, _LIST_BLOCKS, _BLOCK_SECRET) from `state`
 * with ages measured at now_ms: 1 when the request was such a read (it is answered, a
 * malformed body with PT_EPROTO), 0 when it is another kind (untouched).
 */
struct pt_request;
int pt_registry_serve_read(const struct pt_registry *state, struct pt_request *req,
                           uint64_t now_ms);
/* A fresh block service secret from the kernel's generator: 0 or -PT_EIO. */
int pt_registry_random_secret(uint8_t secret[PT_REG_SECRET_SIZE]);

/*
 * The registry as a libraft FSM (registry_fsm.c): apply (pt_registry_apply), snapshot (u64
 * clock + the state file, docs/SPEC-REGISTRY.md) and restore. `applied` (may be NULL) is
 * called after each entry that carried a time and after a restore, with the group clock's
 * base: the newest entry time seen (it never goes back).
 */
struct pt_registry_fsm {
    struct raft_fsm fsm; /* hand &fsm to the replica */
    struct pt_registry *state;
    uint64_t time_ms; /* newest entry time applied (or restored) */
    void (*applied)(void *ctx, uint64_t time_ms);
    void *ctx;
    struct pt_shard_apply_out *out; /* replies of the entry being applied (owned) */
};
int pt_registry_fsm_init(struct pt_registry_fsm *f, struct pt_registry *state);
void pt_registry_fsm_free(struct pt_registry_fsm *f);

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

/* --- a member of a registry group (registry_group.c) ----------------------------------------- */

#define PT_REGISTRY_MAX_STALENESS_MS 2000 /* default bound on a follower's answers */
#define PT_REGISTRY_TICK_MS 500           /* an idle leader logs a clock tick this often */

struct pt_node_raft_options;
struct pt_registry_group_config {
    const char *dir;      /* Raft data under DIR/raft (created if missing) */
    const char *location; /* the group: "HOST:PORT,HOST:PORT,..." (1, 3 or 5 members) */
    unsigned replica;     /* this member: its index in location */
    const char *listen;   /* bind address; NULL: location's member `replica` */
    uint64_t stale_after_ms;
    uint64_t max_staleness_ms; /* a follower refuses reads beyond this (PT_ENOTLEADER with the
                                  leader); 0: PT_REGISTRY_MAX_STALENESS_MS */
    unsigned election_timeout_ms, heartbeat_ms; /* 0: the node defaults */
    const char *http; /* status page and metrics endpoint "HOST:PORT"; NULL: none */
    /* called once the member serves, with its address and its HTTP endpoint's (NULL: none;
     * the CLI prints "listening on" and "http on") */
    void (*started)(void *ctx, const char *address, const char *http);
    void *started_ctx;
};

/*
 * Run one member of a registry group until SIGINT/SIGTERM (replica/node.h): heartbeats are
 * proposed by the leader and answered once committed (quorum writes); reads are answered by
 * the leader, and by a follower whose last applied entry is at most max_staleness_ms old
 * (PT_MSG_REG_INFO reports that staleness). 0, or a negative PT_E* when start-up failed (err
 * says why).
 */
int pt_registry_group_run(const struct pt_registry_group_config *cfg, char *err, size_t err_cap);

#endif
