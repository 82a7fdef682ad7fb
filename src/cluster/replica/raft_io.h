/*
 * Petrel's Raft I/O: a complete libraft 0.15 `struct raft_io` (log storage, term and vote,
 * snapshots, transport, clock, randomness, ticks) written only against the env interface
 * (cluster/env/env.h). The same code runs in production over env_uv (files, fdatasync, TCP)
 * and inside the deterministic simulator (virtual time, injected disk and network faults).
 *
 * Durability is explicit: an append's callback runs only after pt_env_fsync of the bytes it
 * wrote has completed, and appends that arrive while an fsync is in flight are written by one
 * write and one fsync (group commit). A term or vote change is written to a temporary file,
 * fsync'd, renamed over "meta" and the directory fsync'd; until that is done no message leaves
 * the replica (so a vote or a term is never acted on by others before it is durable).
 *
 * Every received byte goes through the codec of raft_msg.h, which validates the header (magic,
 * version, cluster and group, sender, destination, length, CRC32C) and every count and length
 * before it allocates; what fails is dropped and counted (pt_raft_io_stats), never trusted.
 *
 * Files (under the env's data directory; byte layouts in docs/SPEC-RAFTLOG.md): "meta" (term,
 * vote), "seg-<seq>" (log segments of CRC'd entries), "snap-<index>" (snapshots). Load refuses
 * a corrupt committed log and cuts a torn tail; it refuses a directory written by libraft's own
 * uv storage with one clear message.
 *
 * A storage failure stops the I/O (fail-stop, see pt_raft_failed_fn): it is never reported to
 * libraft as an error.
 *
 * Must never: call libuv, a syscall, a thread or the wall clock directly (everything goes
 * through the env); invoke a libraft callback from inside the call that started it.
 */
#ifndef PETREL_CLUSTER_REPLICA_RAFT_IO_H
#define PETREL_CLUSTER_REPLICA_RAFT_IO_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/env/env.h"
#include "cluster/proto/auth.h"

#define PT_RAFT_MAX_REPLICAS 16 /* replica ids are 1..replicas */

/* The network address Raft replica `id` listens on now (it may change across restarts):
 * 0, or a negative error when it is not known yet. */
typedef int (*pt_raft_resolve_fn)(void *ctx, raft_id id, char *buf, size_t cap);

/*
 * The Raft storage failed (a write, fsync, rename or directory fsync error): `reason` is one
 * line naming the operation and the error. Called once, later (from an env callback, never
 * inside a libraft call). From then on the I/O is stopped, not broken: libraft is never told
 * (libraft 0.15, told RAFT_IOERR for an append, drops the entry from its in-memory log and
 * reuses the index in the same term although followers may hold it: two replicas then commit
 * different entries at one index), no callback of a write runs, no message leaves and none is
 * delivered, term and vote stay as they were. The owner must close the replica and start it
 * again from its disk, which holds exactly what was made durable. NULL: the I/O logs the
 * reason and exits the process with status 1 (production: the supervisor, e.g. systemd's
 * Restart=on-failure, restarts it).
 */
typedef void (*pt_raft_failed_fn)(void *ctx, const char *reason);

struct pt_raft_io_config {
    struct pt_env *env;
    uint64_t cluster_id; /* both part of every message's group: others are dropped */
    uint32_t group;      /* PT_RAFT_GROUP(kind, number) */
    unsigned replicas;   /* members are ids 1..replicas */
    const char *listen;  /* this replica's Raft address (pt_env_listen) */
    pt_raft_resolve_fn resolve;
    void *resolve_ctx;
    pt_raft_failed_fn on_failed; /* NULL: log and exit(1); see pt_raft_failed_fn */
    void *failed_ctx;
    /*
     * The cluster key (cluster/proto/auth.h) that seals every message sent and must seal
     * every message received (docs/PROTOCOL.md, "Raft messages": a MAC and a sequence number
     * in a trailer; a message whose sequence number this replica saw already, or older than
     * the 64 newest it saw from that sender, is dropped). NULL: the process's server key
     * (pt_auth_set_process); without one, no authentication (unsealed messages, as before).
     * Copied at init.
     */
    const struct pt_auth_key *auth;
    int no_auth; /* ignore the process key (tests that run sealed and unsealed groups) */
    /*
     * The state machine streams its snapshots (pt_raft_io_snap_write/read below): a snapshot
     * image received from the leader is written to a data file as it arrives and handed to
     * libraft as a reference, so neither libraft nor the state machine holds it.
     */
    int stream_snapshots;
};

/* A group number: kind 1 = shard, 2 = CDC (as enum pt_node_kind), number = shard number. */
#define PT_RAFT_GROUP(kind, number) (((uint32_t)(kind) << 16) | ((uint32_t)(number)&0xffffu))

/* What the replica counted; drops are per reason. */
struct pt_raft_io_stats {
    uint64_t received, sent;
    uint64_t drop_header;  /* short, wrong magic, wrong version, length mismatch */
    uint64_t drop_crc;     /* CRC32C mismatch */
    uint64_t drop_group;   /* other cluster or group, or not addressed to us */
    uint64_t drop_sender;  /* sender not a replica of this group, or itself */
    uint64_t drop_address; /* transport-proven address is not the sender's */
    uint64_t drop_body;    /* body malformed or over a limit */
    uint64_t drop_auth;    /* not sealed, or sealed with another key (MAC mismatch) */
    uint64_t drop_replay;  /* a sequence number seen already, or below the window */
    uint64_t send_unresolved;
    uint64_t held_dropped; /* messages dropped while PT_RAFT_HELD_MAX waited for a term/vote */
    uint64_t appends, append_writes, fsyncs, meta_writes;
    uint64_t torn_bytes_cut; /* cut from the log's tail at load */
};

/*
 * Set up `io` (its impl is allocated here) and load the data directory: term, vote, the newest
 * snapshot and the log, checking every CRC. 0, or a negative error with a one-line reason in
 * err: -PT_ECORRUPT (damaged committed data), -PT_EVERSION (a directory of libraft's uv
 * storage or of an unknown format version), -PT_EIO / -PT_ENOMEM.
 */
int pt_raft_io_init(struct raft_io *io, const struct pt_raft_io_config *cfg, char *err,
                    size_t err_cap);
/* Free what pt_raft_io_init allocated: after raft_close's callback has run, or when libraft
 * never started (raft_init or raft_start failed). */
void pt_raft_io_free(struct raft_io *io);

const struct pt_raft_io_stats *pt_raft_io_stats(struct raft_io *io);

/*
 * Streamed snapshots (docs/SPEC-RAFTLOG.md §3.1). A state machine whose memory must not grow
 * with its state writes its image to a data file of the Raft directory from inside
 * raft_fsm.snapshot and hands libraft the reference instead of the image; its
 * raft_fsm.restore, given a reference, reads the image back from the file. The store makes
 * the data file durable before the snap file naming it, keeps it as long as that snap file,
 * and ships the image to a follower that needs it (received images go to a data file too
 * when stream_snapshots is set).
 *
 * pt_raft_io_snap_write: fill(ctx, put, put_ctx) writes the image with put calls (pieces of
 * any size, in order); ref gets the reference. 0 or a negative error (the file is removed).
 * pt_raft_io_snap_read: drain(ctx, get, get_ctx, len) reads the image of `len` bytes with get
 * (positional, as often as it likes). -PT_ECORRUPT when ref is not a reference or the file
 * does not have its length; else what drain returned.
 */
typedef int (*pt_raft_snap_put_fn)(void *ctx, const uint8_t *buf, size_t len);
typedef int64_t (*pt_raft_snap_get_fn)(void *ctx, uint64_t off, uint8_t *buf, size_t len);
typedef int (*pt_raft_snap_fill_fn)(void *ctx, pt_raft_snap_put_fn put, void *put_ctx);
typedef int (*pt_raft_snap_drain_fn)(void *ctx, pt_raft_snap_get_fn get, void *get_ctx,
                                     uint64_t len);
#define PT_RAFT_SNAP_REF_BYTES 32 /* = PT_RAFT_SNAP_REF_LEN of raft_log.h */
int pt_raft_io_snap_write(struct raft_io *io, pt_raft_snap_fill_fn fill, void *ctx,
                          uint8_t ref[PT_RAFT_SNAP_REF_BYTES]);
int pt_raft_io_snap_read(struct raft_io *io, const uint8_t *ref, size_t ref_len,
                         pt_raft_snap_drain_fn drain, void *ctx);
/* Whether snapshot data is a reference (1) or an image (0). */
int pt_raft_io_snap_is_ref(const uint8_t *data, size_t len);

#endif
