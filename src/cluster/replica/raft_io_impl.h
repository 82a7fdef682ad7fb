/*
 * The state behind one Petrel raft_io, shared by raft_io.c (the vtable, transport, clock,
 * deferred callbacks) and raft_store.c (term/vote, log segments, snapshots, the ordered disk
 * queue). Private to src/cluster/replica.
 *
 * Invariants: disk operations run in call order from one queue; at most one fsync of the
 * queue is in flight (`busy`), and the next batch is written only after it completed (the
 * torn-tail rule of raft_log.h depends on it). `next_index` is the logical end of the log as
 * libraft sees it; the segments catch up when the queue drains. No message leaves while a
 * term/vote write is not durable (`meta_busy || meta_dirty`).
 */
#ifndef PETREL_CLUSTER_REPLICA_RAFT_IO_IMPL_H
#define PETREL_CLUSTER_REPLICA_RAFT_IO_IMPL_H

#include "cluster/replica/raft_io.h"
#include "cluster/replica/raft_log.h"

#define PT_RAFT_SEG_TARGET (8u << 20) /* start a new segment past this size */
#define PT_RAFT_HELD_MAX 4096         /* messages held behind a term/vote write; more are dropped */

enum pt_raft_op_type { OP_APPEND, OP_TRUNCATE, OP_SNAPSHOT, OP_SYNC };

struct pt_raft_op {
    struct pt_raft_op *next;
    enum pt_raft_op_type type;
    /* append: libraft's request and entries (alive until the callback), or an own entry */
    struct raft_io_append *append;
    const struct raft_entry *entries;
    unsigned n;
    uint64_t first_index;
    struct raft_entry own;
    /* truncate */
    uint64_t index;
    /* snapshot */
    struct raft_io_snapshot_put *put;
    unsigned trailing;
    uint8_t *snap_file; /* whole file image */
    size_t snap_len;
    uint64_t snap_index;
    uint64_t snap_token; /* the data file the snapshot references (streamed), 0 for an image */
    int snap_data_synced; /* that data file is durable */
};

struct pt_raft_seg {
    uint64_t seq, first, last; /* last = first - 1 when empty; effective (after truncation) */
};

struct pt_raft_held {
    struct pt_raft_held *next;
    char to[PT_ENV_ADDR_MAX];
    uint8_t *buf;
    size_t len;
};

/* Incarnations of each sender whose replay windows a receiver keeps. */
#define PT_RAFT_SEEN_BOOTS 8
/* A Raft port logs messages that failed authentication at most once per this interval. */
#define PT_RAFT_AUTH_LOG_MS 10000

struct pt_raft_io_impl {
    struct raft_io *io;
    struct pt_env *env;
    struct pt_raft_io_config cfg;
    char listen[PT_ENV_ADDR_MAX];
    char peer_addr[PT_RAFT_MAX_REPLICAS + 1][PT_ENV_ADDR_MAX];
    raft_id id;
    /* authentication (see pt_raft_io_config.auth) */
    int auth;
    uint8_t auth_key[PT_AUTH_KEY_BYTES];
    uint32_t send_boot, send_count; /* sequence numbers sent: boot << 32 | count */
    struct pt_raft_seen {
        uint32_t boot;  /* a sender's incarnation */
        uint32_t top;   /* highest count seen from it */
        uint64_t mask;  /* bit i: count top - i was seen */
        uint64_t used;  /* when last used (a counter): the oldest entry is replaced */
    } seen[PT_RAFT_MAX_REPLICAS + 1][PT_RAFT_SEEN_BOOTS];
    uint64_t seen_clock;
    uint64_t auth_logged_at; /* env time of the last "failed authentication" log line */
    struct pt_raft_io_stats stats;
    /* driver */
    raft_io_tick_cb tick;
    raft_io_recv_cb recv;
    unsigned tick_ms;
    uint64_t tick_timer;
    unsigned pending; /* deferred callbacks and disk completions not yet run */
    int closing, closed_cb_queued;
    raft_io_close_cb close_cb;
    /* persistent state as loaded (handed to libraft by load) */
    uint64_t term, vote;
    struct raft_snapshot *loaded_snap;
    struct raft_entry *loaded;
    size_t n_loaded, cap_loaded;
    uint64_t start_index;
    int load_done;
    /* the log */
    uint64_t next_index; /* logical */
    uint64_t snap_index; /* newest durable snapshot file, 0 if none */
    /* streamed snapshot data files (sdata-<token>): the next token to use, and those of the
     * newest and the previous snapshot (0: an image, or not known) */
    uint64_t next_token, snap_token, prev_snap_token;
    struct pt_raft_seg *segs;
    size_t n_segs, cap_segs;
    uint64_t next_seq;
    int open_fd; /* of the last segment, -1 if none */
    uint64_t open_size;
    int open_unsynced; /* the open segment's header was never fsync'd: no record goes behind it */
    /* the disk queue */
    struct pt_raft_op *head, *tail, *inflight;
    int busy, op_fd;
    int failed; /* the storage failed: stopped until closed (pt_raft_store_fail) */
    /* While libraft handles an AppendEntries or completes a follower's append: the highest
     * index its log is known to share with the leader's (see io_send). 0: none. */
    uint64_t reply_cap;
    char failed_reason[200];
    uint64_t kick_timer;
    uint8_t *wbuf;
    size_t wcap;
    /* term and vote */
    int meta_busy, meta_dirty, meta_fd;
    struct pt_raft_held *held, *held_tail;
    unsigned n_held;
};

/* raft_store.c */
int pt_raft_store_load(struct pt_raft_io_impl *s, char *err, size_t err_cap);
void pt_raft_store_free(struct pt_raft_io_impl *s);
int pt_raft_store_meta_write(struct pt_raft_io_impl *s);
void pt_raft_store_push(struct pt_raft_io_impl *s, struct pt_raft_op *op);
void pt_raft_store_cancel_queued(struct pt_raft_io_impl *s);
int pt_raft_store_snapshot_read(struct pt_raft_io_impl *s, struct raft_snapshot **out);
int pt_raft_store_snapshot_image(const struct raft_snapshot *snap, uint8_t **out, size_t *len);
/* The name of a streamed snapshot's data file. */
void pt_raft_store_data_name(char *buf, size_t cap, uint64_t token);

/* raft_io.c: called by the store when it may have become idle / term-vote durable */
void pt_raft_io_settled(struct pt_raft_io_impl *s);
/* raft_io.c: the storage failed doing `what` with error rc: stop (once) and tell the owner. */
void pt_raft_store_fail(struct pt_raft_io_impl *s, const char *what, int rc);

#endif
