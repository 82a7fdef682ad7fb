/*
 * A replicated server node: what a shard replica and a CDC replica run. It is the replica core
 * (replica.h: libraft over Petrel's Raft I/O, group commit, proposal callbacks that say
 * whether a request had no effect or an unknown one, the term barrier) on the production env
 * (env_uv.h: files with explicit fdatasync, TCP), plus what only production needs: the libuv
 * loop, the frame server for clients, discovery through the registry (heartbeat with its
 * client address, peers' client addresses, their Raft addresses via PT_MSG_NODE_INFO, block
 * services and their secrets), the Raft port kept across restarts and the SIGTERM hand-over.
 * The simulator (tests/sim) runs the same replica core over its own env, so the code it checks
 * is the code that runs here. Never interprets requests: the service's handler and FSM do.
 */
#ifndef PETREL_CLUSTER_REPLICA_NODE_H
#define PETREL_CLUSTER_REPLICA_NODE_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/net/net.h"
#include "cluster/proto/ids.h"
#include "cluster/replica/raft_io.h"
#include "cluster/replica/replica.h"
#include "cluster/proto/registry_msg.h"

#define PT_NODE_MAX_REPLICAS PT_REPLICA_MAX
#define PT_NODE_MAX_SERVICES 256

enum pt_node_kind { PT_NODE_SHARD = 1, PT_NODE_CDC = 2, PT_NODE_REGISTRY = 3 };

/*
 * Raft timing and start-up checks, shared by shards and the CDC (server flags
 * --election-timeout-ms, --heartbeat-ms, --unsafe-no-fsync-check). With the defaults a leader
 * killed with SIGKILL is replaced by a serving leader in well under a second on loopback.
 */
#define PT_NODE_ELECTION_TIMEOUT_MS 250
#define PT_NODE_HEARTBEAT_MS 50
struct pt_node_raft_options {
    unsigned election_timeout_ms; /* 0 = PT_NODE_ELECTION_TIMEOUT_MS */
    unsigned heartbeat_ms;        /* 0 = PT_NODE_HEARTBEAT_MS; must be below the election timeout */
    int unsafe_no_fsync_check;    /* run on a filesystem known not to honour fsync (FUSE) */
};

struct pt_node;

/*
 * A committed proposal: status 0 and the FSM's reply for it, or a negative error with the
 * meaning of replica.h: -PT_ENOTLEADER (no effect), -PT_ECANCELED (appended, outcome unknown),
 * other (no effect). pt_node_reply_status turns it into the client's answer.
 */
typedef pt_replica_done_fn pt_node_done_fn;

struct pt_node_config {
    const char *registry; /* location of the registry (NULL for a registry replica) */
    enum pt_node_kind kind;
    unsigned shard; /* shard number (0 for the CDC) */
    unsigned replica;
    unsigned replicas;   /* 1, 3 or 5 */
    uint64_t cluster_id; /* in every Raft message's group (0 until deployments name one) */
    const char *dir;     /* Raft data under DIR/raft */
    const char *host;    /* listen host */
    const char *http;    /* "HOST:PORT" of the metrics endpoint (port 0: OS-chosen); NULL: none */
    /*
     * A registry replica finds its peers without a registry: peers[i] is the client address of
     * member i (from the group's location), listen the address its client server binds
     * (NULL: peers[replica]). Its peers' Raft addresses come from PT_MSG_NODE_INFO.
     */
    const char *peers[PT_NODE_MAX_REPLICAS];
    const char *listen;
    unsigned snapshot_entries; /* take a snapshot every this many entries; 0 = 4096 */
    struct pt_node_raft_options raft;
    struct raft_fsm *fsm;
    /* Non-NULL: the FSM streams its snapshots (raft_io.h, "Streamed snapshots"); set to the
     * node's raft_io before Raft starts (and so before the FSM restores anything). */
    struct raft_io **stream_snapshots_io;
    void (*handler)(void *ctx, struct pt_request *req); /* service requests */
    void (*tick)(void *ctx);                            /* every 100 ms on the loop */
    /* Pages of the HTTP endpoint besides /metrics (cluster/metrics, pt_http_page_fn), called
     * on the loop with ctx; NULL: /metrics only. */
    int (*page)(void *ctx, const char *path, char **body, size_t *len,
                const char **content_type);
    void *ctx;
};

/* A block service as the node knows it (from the registry). */
struct pt_node_service {
    uint64_t id;
    char domain[PT_REG_DOMAIN_MAX];
    char addr[PT_REG_ADDR_MAX];
    uint8_t stale, has_secret;
    uint64_t capacity, used;
    uint8_t secret[PT_REG_SECRET_SIZE];
};

/* Create a data directory (and its parents) if missing, durably (storage/durable.h): 0 or
 * -PT_E*. */
int pt_node_start_prepare_dir(const char *dir);

/*
 * Check that `dir` keeps what it is told to keep: refuse a FUSE filesystem (unless
 * unsafe_no_fsync_check) and run a probe (create, write, fdatasync, rename, directory fsync,
 * unlink) whose every step must succeed. 0, or a negative error with a one-line reason.
 */
int pt_node_check_data_dir(const char *dir, int unsafe_no_fsync_check, char *err, size_t err_cap);

/* Start everything on a fresh loop; err gets a one-line reason on failure. */
int pt_node_start(struct pt_node **out, const struct pt_node_config *cfg, char *err,
                  size_t err_cap);
/*
 * Run the loop until SIGINT/SIGTERM, then close and free the node. On SIGTERM a leader first
 * hands leadership to the most up-to-date follower (raft_transfer; bounded by two election
 * timeouts) so the group does not wait out an election.
 */
int pt_node_run(struct pt_node *n);

uv_loop_t *pt_node_loop(struct pt_node *n);
struct pt_env;
/* The env the node's logic runs on (its clock and timers; env_uv on the node's loop). */
struct pt_env *pt_node_env(struct pt_node *n);
struct raft *pt_node_raft(struct pt_node *n);
/* Whether this node is the Raft leader (it may not serve yet: pt_node_can_serve). */
int pt_node_is_leader(struct pt_node *n);
/* The node's Raft I/O counters (dropped messages by reason, appends, fsyncs). */
const struct pt_raft_io_stats *pt_node_raft_stats(struct pt_node *n);

/*
 * Whether this node leads and may serve reads: it is the Raft leader and a barrier of its own
 * term has been applied (so its store holds every committed entry).
 */
int pt_node_can_serve(struct pt_node *n);

/* Reply to a request with PT_ENOTLEADER naming the leader's client address (if known), or
 * PT_EAGAIN when this node leads but has not applied its term barrier yet. */
void pt_node_reply_not_leader(struct pt_node *n, struct pt_request *req);

/*
 * Answer a request whose proposal failed with `status` (a pt_node_done_fn or pt_node_propose
 * error): -PT_ENOTLEADER as pt_node_reply_not_leader (no effect: the client retries at the
 * leader); -PT_ECANCELED as PT_EINDOUBT (the entry was appended, then leadership was lost or
 * the node stopped: it may still commit, so the client must not simply repeat a request that
 * is not idempotent, docs/PROTOCOL.md); anything else as itself.
 */
void pt_node_reply_status(struct pt_node *n, struct pt_request *req, int status);

/*
 * Linearizable read (pt_replica_read): done(ctx, 0) once this node may answer a read that
 * arrived before the call — it still leads and a barrier appended after the call committed in
 * its term, so a deposed leader never answers with stale data — or done(ctx, -PT_ENOTLEADER /
 * -PT_ECANCELED) when it may not (a read has no effect: the client retries elsewhere). Reads of
 * one loop turn share one barrier. 0, or -PT_ENOTLEADER / -PT_ENOMEM (then done never runs).
 */
int pt_node_read(struct pt_node *n, void (*done)(void *ctx, int status), void *ctx);

/*
 * Queue an encoded request for the next log entry (pt_replica_propose); done runs once, after
 * commit+apply or on failure. 0, or -PT_ENOTLEADER / -PT_E2BIG (then done never runs).
 */
int pt_node_propose(struct pt_node *n, const uint8_t *req, size_t len, pt_node_done_fn done,
                    void *ctx);

/* Milliseconds of the wall clock, as stamped into entries. */
uint64_t pt_node_wall_ms(void);

/* The block services known from the registry (array valid until the next tick). */
const struct pt_node_service *pt_node_services(struct pt_node *n, size_t *count);
const struct pt_node_service *pt_node_service_find(struct pt_node *n, uint64_t id);

/* The node's metrics (cluster/metrics/metrics.h): the service adds its own series and
 * collectors; served at /metrics when the node was started with an HTTP address. */
struct pt_metrics *pt_node_metrics(struct pt_node *n);
/* The HTTP endpoint's bound address, or "" without one. */
const char *pt_node_http_address(struct pt_node *n);

/* The registry address the node was started with. */
const char *pt_node_registry(struct pt_node *n);

#endif
