/*
 * The one interface between cluster server logic and the world: clock, timers, randomness,
 * network and disk. Server logic (Raft I/O, replicas, state machines, later every server)
 * calls only these functions and is driven only by their callbacks, so the same code runs
 *  - in production on libuv, TCP and files (env_uv.c), and
 *  - in the simulator (tests/sim), many processes in one thread from one seed, with virtual
 *    time and injected faults; a seed replays a whole cluster run exactly.
 *
 * Rules for code above this interface: no wall clock, no sleeps, no threads, no global
 * mutable state, no direct syscalls for I/O. Every callback runs on the env's one thread,
 * never re-entrantly from inside the call that started the operation (completions are
 * always delivered later, from the loop), so a caller may start an operation while holding
 * half-updated state.
 *
 * Ownership: buffers passed in are copied before the call returns unless stated otherwise;
 * buffers passed to callbacks are valid only during the callback.
 */
#ifndef PETREL_CLUSTER_ENV_H
#define PETREL_CLUSTER_ENV_H

#include <stddef.h>
#include <stdint.h>

/*
 * An env is a vtable; implementations embed `struct pt_env` as their first member. The
 * pt_env_* functions below only dispatch (env.c), so one binary may hold both kinds.
 */
struct pt_env_ops;
struct pt_env {
    const struct pt_env_ops *ops;
};

/* ---- clock, randomness ---------------------------------------------------------------- */

/* Monotonic milliseconds since the env started (virtual time in the simulator). */
uint64_t pt_env_now(struct pt_env *e);
/* Wall-clock milliseconds since the Unix epoch: may jump (the simulator injects jumps). */
uint64_t pt_env_wall_ms(struct pt_env *e);
/* 64 random bits (from the run's seed in the simulator). */
uint64_t pt_env_random(struct pt_env *e);

/* ---- timers and deferred calls -------------------------------------------------------- */

typedef void (*pt_env_cb)(void *ctx);

/*
 * Call cb(ctx) once after delay_ms (0: on the next loop turn, after the current callback
 * returns). Returns a non-zero timer id; pt_env_cancel with that id before it fires
 * guarantees it never fires. Ids are never reused within one env.
 */
uint64_t pt_env_timer(struct pt_env *e, uint64_t delay_ms, pt_env_cb cb, void *ctx);
void pt_env_cancel(struct pt_env *e, uint64_t timer_id);

/* ---- network: authenticated-by-framing messages between named endpoints ---------------- */

/*
 * An endpoint is named by a string address ("127.0.0.1:7401" in production, "s0r1" in the
 * simulator). Messages are whole byte strings up to PT_ENV_MSG_MAX: a message is delivered
 * entirely or not at all, possibly late, possibly out of order with respect to other
 * messages, possibly twice, possibly with its bytes corrupted (the simulator does all of
 * these; production over TCP does fewer). Logic above must validate every byte it receives.
 * Delivery reports the sender's address as the transport knows it: the listener's own name
 * of the peer (what it passed to pt_env_listen) when the peer proved it during the
 * connection's handshake, else "" (anonymous: a client).
 */
#define PT_ENV_MSG_MAX (64u << 20)
#define PT_ENV_ADDR_MAX 64

typedef void (*pt_env_msg_cb)(void *ctx, const char *from, const uint8_t *msg, size_t len);

/* Receive messages for address `self` (an env may listen on several addresses, e.g. a replica's
 * Raft address and its client address). 0 or -PT_E*. */
int pt_env_listen(struct pt_env *e, const char *self, pt_env_msg_cb cb, void *ctx);
/* Send a copy of msg to address `to`. Best effort: 0 means queued, not delivered. */
int pt_env_send(struct pt_env *e, const char *to, const uint8_t *msg, size_t len);
/*
 * Only from inside a message callback: the message being delivered failed authentication.
 * The transport stops delivering from the connection it came from and closes it (production:
 * the sender sees the close, and a genuine sender reconnects on its next send); a transport
 * without connections (the simulator) does nothing more.
 */
void pt_env_refuse(struct pt_env *e);

/* ---- disk: files under the process's data directory ------------------------------------ */

/*
 * Paths are relative to the env's data directory, '/'-separated, no "..". A file handle is a
 * small non-negative int. Writes land in a volatile cache until pt_env_fsync (data and size)
 * completes; pt_env_fsync_dir makes creations, renames and unlinks in that directory durable.
 * A crash (simulator) keeps exactly what was made durable, possibly plus any subset of the
 * rest, possibly with torn pages at the write boundaries. Every call may fail with -PT_EIO
 * or -PT_ENOSPC; a read may return stale bytes after a crash only where the simulator was
 * told the disk lies (then CRCs above must catch it).
 */
enum pt_env_open_flags { PT_ENV_RDONLY = 0, PT_ENV_RDWR = 1, PT_ENV_CREAT = 2, PT_ENV_EXCL = 4 };

int pt_env_open(struct pt_env *e, const char *path, int flags);
int pt_env_close(struct pt_env *e, int fd);
/* Read up to len bytes at off: count read (short at end of file) or -PT_E*. */
int64_t pt_env_pread(struct pt_env *e, int fd, void *buf, size_t len, uint64_t off);
/* Write all len bytes at off: 0 or -PT_E*. */
int pt_env_pwrite(struct pt_env *e, int fd, const void *buf, size_t len, uint64_t off);
int pt_env_truncate(struct pt_env *e, int fd, uint64_t size);
int64_t pt_env_size(struct pt_env *e, int fd);
/* Make the file's data and size durable; done(ctx, 0 or -PT_E*) runs later on the loop. */
void pt_env_fsync(struct pt_env *e, int fd, void (*done)(void *ctx, int status), void *ctx);
int pt_env_rename(struct pt_env *e, const char *from, const char *to);
int pt_env_unlink(struct pt_env *e, const char *path);
int pt_env_mkdir(struct pt_env *e, const char *path);
/* Make entries of directory `path` ("" = the data directory) durable: 0 or -PT_E*. */
int pt_env_fsync_dir(struct pt_env *e, const char *path);
/* Names in directory `path`, sorted, each NUL-terminated, packed into buf: count or -PT_E*
 * (-PT_ERANGE when they do not fit in cap: call again with a larger buffer). */
int pt_env_list(struct pt_env *e, const char *path, char *buf, size_t cap);

/* ---- the vtable implementations fill in (same meaning as the functions above) ------------ */
struct pt_env_ops {
    uint64_t (*now)(struct pt_env *e);
    uint64_t (*wall_ms)(struct pt_env *e);
    uint64_t (*random)(struct pt_env *e);
    uint64_t (*timer)(struct pt_env *e, uint64_t delay_ms, pt_env_cb cb, void *ctx);
    void (*cancel)(struct pt_env *e, uint64_t timer_id);
    int (*listen)(struct pt_env *e, const char *self, pt_env_msg_cb cb, void *ctx);
    int (*send)(struct pt_env *e, const char *to, const uint8_t *msg, size_t len);
    int (*open)(struct pt_env *e, const char *path, int flags);
    int (*close)(struct pt_env *e, int fd);
    int64_t (*pread)(struct pt_env *e, int fd, void *buf, size_t len, uint64_t off);
    int (*pwrite)(struct pt_env *e, int fd, const void *buf, size_t len, uint64_t off);
    int (*truncate)(struct pt_env *e, int fd, uint64_t size);
    int64_t (*size)(struct pt_env *e, int fd);
    void (*fsync)(struct pt_env *e, int fd, void (*done)(void *ctx, int status), void *ctx);
    int (*rename)(struct pt_env *e, const char *from, const char *to);
    int (*unlink)(struct pt_env *e, const char *path);
    int (*mkdir)(struct pt_env *e, const char *path);
    int (*fsync_dir)(struct pt_env *e, const char *path);
    int (*list)(struct pt_env *e, const char *path, char *buf, size_t cap);
    void (*refuse)(struct pt_env *e); /* may be NULL: nothing to close */
};

#endif
