/*
 * A replicated server node: the machinery shared by shard replicas and CDC replicas.
 *
 * Owns the libuv loop, the Raft member (Petrel's own Raft I/O, src/cluster/replica, over the
 * production env of src/cluster/env/env_uv.c: CRC'd log with explicit fdatasync, validated
 * message transport), the frame server
 * for clients, discovery through the registry (heartbeat with its client address, peers'
 * client addresses, their Raft addresses via PT_MSG_NODE_INFO, block services and their
 * secrets) and group commit: requests proposed during one loop iteration share one log entry
 * (the envelope of shard_sm.h: version, count, leader time, requests), hence one append and one
 * flush. A proposal's callback runs only after its entry is committed (persisted on a majority)
 * and applied, or with an error when it cannot be (leadership lost). Never interprets requests:
 * the service's handler and FSM do.
 */
#ifndef PETREL_CLUSTER_RAFT_NODE_H
#define PETREL_CLUSTER_RAFT_NODE_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/net/net.h"
#include "cluster/replica/raft_io.h"
#include "cluster/proto/registry_msg.h"

#define PT_MSG_NODE_INFO                                                                           \
    0x0302 /* any shard or CDC replica: shard, replica, raft address, leader                       \
            */
#define PT_NODE_MAX_REPLICAS 5
#define PT_NODE_MAX_SERVICES 256

enum pt_node_kind { PT_NODE_SHARD = 1, PT_NODE_CDC = 2 };

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

struct pt_raft_node;

/* A committed proposal: status 0 and the FSM's reply for it, or a negative error. */
typedef void (*pt_node_done_fn)(void *ctx, int status, const uint8_t *reply, size_t len);

struct pt_node_config {
    const char *registry;
    enum pt_node_kind kind;
    unsigned shard; /* shard number (0 for the CDC) */
    unsigned replica;
    unsigned replicas;         /* 1, 3 or 5 */
    uint64_t cluster_id;       /* in every Raft message's group (0 until deployments name one) */
    const char *dir;           /* Raft data under DIR/raft */
    const char *host;          /* listen host */
    unsigned snapshot_entries; /* take a snapshot every this many entries; 0 = 4096 */
    struct pt_node_raft_options raft;
    struct raft_fsm *fsm;
    void (*handler)(void *ctx, struct pt_request *req); /* service requests */
    void (*tick)(void *ctx);                            /* every 100 ms on the loop */
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

/* Create a data directory if missing: 0 or -PT_EIO. */
int pt_node_start_prepare_dir(const char *dir);

/*
 * Check that `dir` keeps what it is told to keep: refuse a FUSE filesystem (unless
 * unsafe_no_fsync_check) and run a probe (create, write, fdatasync, rename, directory fsync,
 * unlink) whose every step must succeed. 0, or a negative error with a one-line reason.
 */
int pt_node_check_data_dir(const char *dir, int unsafe_no_fsync_check, char *err, size_t err_cap);

/* Start everything on a fresh loop; err gets a one-line reason on failure. */
int pt_node_start(struct pt_raft_node **out, const struct pt_node_config *cfg, char *err,
                  size_t err_cap);
/*
 * Run the loop until SIGINT/SIGTERM, then close and free the node. On SIGTERM a leader first
 * hands leadership to the most up-to-date follower (raft_transfer; bounded by two election
 * timeouts) so the group does not wait out an election.
 */
int pt_node_run(struct pt_raft_node *n);

uv_loop_t *pt_node_loop(struct pt_raft_node *n);
struct raft *pt_node_raft(struct pt_raft_node *n);
/* The node's Raft I/O counters (dropped messages by reason, appends, fsyncs). */
const struct pt_raft_io_stats *pt_node_raft_stats(struct pt_raft_node *n);

/*
 * Whether this node leads and may serve reads: it is the Raft leader and a barrier of its own
 * term has been applied (so its store holds every committed entry).
 */
int pt_node_can_serve(struct pt_raft_node *n);

/* Reply to a request with PT_ENOTLEADER naming the leader's client address (if known). */
void pt_node_reply_not_leader(struct pt_raft_node *n, struct pt_request *req);

/*
 * Queue an encoded request for the next log entry; done runs after commit+apply (or on
 * failure). 0, or -PT_ENOTLEADER / -PT_E2BIG (request too big).
 */
int pt_node_propose(struct pt_raft_node *n, const uint8_t *req, size_t len, pt_node_done_fn done,
                    void *ctx);

/* Milliseconds of the wall clock, as stamped into entries. */
uint64_t pt_node_wall_ms(void);

/* The block services known from the registry (array valid until the next tick). */
const struct pt_node_service *pt_node_services(struct pt_raft_node *n, size_t *count);
const struct pt_node_service *pt_node_service_find(struct pt_raft_node *n, uint64_t id);

/* The registry address the node was started with. */
const char *pt_node_registry(struct pt_raft_node *n);

#endif
