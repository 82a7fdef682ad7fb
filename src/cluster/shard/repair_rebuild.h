/*
 * Rebuilding one block of a span (repair_rebuild.c): an event-driven state machine on the env
 * interface (env.h), so the same code runs in a shard leader (block I/O on the production
 * transport) and in the simulator (block I/O as simulated messages to the real block service
 * core, virtual time). It owns no thread and never blocks: every block read and write is an
 * asynchronous request through `struct pt_rebuild_io`, every wait is a timer of the env.
 *
 * A rebuild reads survivors whole, one at a time (each checked against the CRC the span
 * records: a block service's page CRCs are not trusted alone), rebuilds the lost block
 * (mirrored: a good copy; Reed-Solomon: pt_ec_decode from D survivors), checks the result
 * against the lost block's recorded CRC, writes it to the new home under a write certificate
 * and checks the write proof. Only then does it report success: the caller may swap the new
 * copy into the span (REPLACE_BLOCK) only after a successful rebuild, never before.
 *
 * Pacing (--repair-rate): before each transfer of `len` bytes the pacer makes the rebuild wait
 * until the bytes moved since the budget's epoch, these included, fit in rate x (now - epoch):
 * the bytes moved by repair never run ahead of the budget, measured on the env's clock.
 */
#ifndef PETREL_CLUSTER_REPAIR_REBUILD_H
#define PETREL_CLUSTER_REPAIR_REBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/env/env.h"
#include "cluster/proto/registry_msg.h"
#include "cluster/proto/shard_msgs.h"

/* The repair budget: bytes per second over an epoch that starts again after an idle pause. */
struct pt_repair_pace {
    uint64_t rate;     /* bytes per second; 0 = unlimited */
    uint64_t epoch_ms; /* env clock */
    uint64_t bytes;    /* moved since epoch_ms */
    uint64_t end_ms;   /* the last transfer charged, or the end of a wait (0: never) */
};
#define PT_REPAIR_PACE_IDLE_MS 2000 /* a pause longer than this starts a new epoch */

/* Milliseconds to wait before `len` more bytes may move at now_ms; 0 means go: the bytes are
 * charged to the budget. */
uint64_t pt_repair_pace_wait(struct pt_repair_pace *p, uint64_t now_ms, uint64_t len);

/* Asynchronous block I/O. Both calls return at once; done runs later on the env's loop, never
 * inside the call. The read delivers the whole block (status 0) or an error. */
typedef void (*pt_rebuild_read_cb)(void *arg, int status, const uint8_t *data, size_t len);
typedef void (*pt_rebuild_write_cb)(void *arg, int status, uint64_t proof);
struct pt_rebuild_io {
    void (*read)(void *ctx, const char *addr, uint64_t block, uint32_t size,
                 pt_rebuild_read_cb done, void *arg);
    void (*write)(void *ctx, const char *addr, uint64_t block, uint32_t crc, const uint8_t *data,
                  uint32_t size, uint64_t cert, pt_rebuild_write_cb done, void *arg);
    void *ctx;
};

struct pt_rebuild;
/* The rebuild's outcome: 0 (written, proof checked), -PT_EIO (too few good survivors),
 * -PT_ECORRUPT (the rebuilt bytes do not match the recorded CRC), -PT_EACCES (bad proof), or
 * the write's error. The rebuild may be freed inside the callback. */
typedef void (*pt_rebuild_done_cb)(void *ctx, struct pt_rebuild *b, int status);

struct pt_rebuild {
    /* filled by the caller before pt_rebuild_start */
    struct pt_env *env;
    const struct pt_rebuild_io *io;
    struct pt_repair_pace *pace; /* shared by the rebuilds of one budget */
    struct pt_span span;         /* cell_crcs and inline_data unused (NULL) */
    unsigned lost;               /* index of the block to rebuild */
    int drain;                   /* copy the lost block from its own service first */
    char addr[PT_SPAN_BLOCKS_MAX][PT_REG_ADDR_MAX]; /* "" when unknown, stale or failed */
    uint64_t new_service;
    char new_addr[PT_REG_ADDR_MAX];
    uint8_t new_secret[PT_REG_SECRET_SIZE];
    pt_rebuild_done_cb done;
    void *ctx;
    /* the machine's own state */
    int step;      /* enum in repair_rebuild.c */
    unsigned next; /* next block index to read */
    unsigned reading, have;
    unsigned idx[PT_SPAN_BLOCKS_MAX];
    uint8_t *src[PT_SPAN_BLOCKS_MAX];
    uint8_t *out;
    uint64_t timer;
    uint64_t bytes; /* moved by this rebuild (reads and the write) */
    int busy;       /* an I/O is in flight */
    int cancelled;  /* the owner went away: free itself when the I/O completes */
};

/* Start; 0, or -PT_ENOMEM / -PT_EINVAL (done is then never called). */
int pt_rebuild_start(struct pt_rebuild *b);
/*
 * The owner goes away (a leader deposed, a simulated process crashed): done is never called.
 * Returns 1 when nothing was in flight: the buffers are released and the caller frees the
 * rebuild. Returns 0 when an I/O is in flight: the rebuild (which must then have been
 * malloc'd) frees itself when that I/O completes.
 */
int pt_rebuild_cancel(struct pt_rebuild *b);
/* Buffers held by a finished or cancelled-idle rebuild. */
void pt_rebuild_release(struct pt_rebuild *b);

#endif
