/*
 * Block services: one per disk directory, storing immutable blocks of up to 8 MiB with a
 * CRC32C per 4 KiB page (file format: docs/PROTOCOL.md, "Block file").
 *
 * struct pt_blocks_store is the disk side, over the env interface (cluster/env/env.h) so the
 * simulator runs it on its faulty disk; its one slow call, fsync, completes asynchronously
 * (libuv's thread pool in production). It never lets a write become visible before the data is
 * fsync'd (temp file, pages verified against the writer's page CRCs as they arrive, write,
 * fsync, read back and checked, rename, fsync directory), and never returns a byte
 * whose page failed its CRC.
 *
 * The server (pt_blocks_server_*) runs several services in one process on one loop: each
 * listens on its own address, checks certificates (SipHash MACs under the secret the registry
 * hands out in heartbeat replies), keeps an in-memory index of its blocks for STAT, LIST and
 * usage, and heartbeats the registry from a background thread.
 */
#ifndef PETREL_CLUSTER_BLOCKS_H
#define PETREL_CLUSTER_BLOCKS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/proto/blocks_msg.h"
#include "cluster/proto/registry_msg.h"

#define PT_BLOCK_FILE_MAGIC 0x4b425450u /* "PTBK" */
#define PT_BLOCK_FILE_VERSION 1
#define PT_BLOCK_FILE_HEADER 32
#define PT_BLOCKS_ID_FILE "service.id"
#define PT_BLOCKS_ID_MAGIC 0x53425450u /* "PTBS" */

struct pt_env;

/* A store lives in the data directory of an env (cluster/env/env.h): every I/O goes through it. */
struct pt_blocks_store {
    struct pt_env *env;
    uint64_t service_id;
    uint64_t temp_counter; /* names of temp files, unique within this incarnation */
};

/* Completion of an asynchronous store call: 0 or -PT_E*; runs later, from the env's loop. */
typedef void (*pt_blocks_store_done)(void *ctx, int status);

/*
 * Open (creating if needed) the store in env's data directory: the persistent random service
 * id is created durably on first use (which needs an fsync, hence the callback); leftover temp
 * files of interrupted writes are removed. `out` must stay in place until done runs.
 */
void pt_blocks_store_open(struct pt_env *env, struct pt_blocks_store *out,
                          pt_blocks_store_done done, void *ctx);
void pt_blocks_store_close(struct pt_blocks_store *s);

/* Call fn for every stored block with a valid header (in no particular order). */
int pt_blocks_store_scan(struct pt_blocks_store *s,
                         void (*fn)(void *ctx, const struct pt_block_stat *st), void *ctx);

/*
 * Store a block durably (a stream of one piece, below): write a temp file, fsync it (through
 * the env: off the loop in production), read it back and check it, rename it
 * into place, fsync its directory; then done(ctx, status). `data` is copied out during the call; the
 * store itself may go away before done runs (the operation keeps what it needs).
 * crc must be the CRC32C of the data (else -PT_EBADMSG). An existing identical block is success
 * when every page of it still verifies; a different one is -PT_EEXIST; a corrupt one (bad
 * header, or a rotten page under the same header) is replaced. -PT_ECORRUPT when the read-back
 * does not match (nothing becomes visible), -PT_ENOSPC, -PT_EIO.
 */
void pt_blocks_store_write(struct pt_blocks_store *s, uint64_t block_id, uint32_t crc,
                           const void *data, uint32_t size, pt_blocks_store_done done, void *ctx);

/*
 * A block written in pieces (BLOCK_WRITE_BEGIN / PAGES / END, docs/PROTOCOL.md): open checks
 * what is stored under the id (a different block: -PT_EEXIST; the identical, whole block: the
 * pieces are then checked but not written again) and creates the temp file. Each piece is
 * page-aligned, comes in order (else -PT_EPROTO) and is verified page by page against the
 * writer's page CRCs (-PT_EBADMSG) before it is written; only the page CRCs are kept (4 bytes
 * a page). finish checks that every byte came and that the page CRCs combine to the block's
 * CRC, writes header and CRC table, fsyncs, reads the file back and checks every page against
 * the page CRCs (from the page cache, normally), renames, fsyncs the
 * directory, then done(ctx, status) from the loop: the stream is freed either way. abort (a
 * stream given up before finish) closes and removes the temp file: nothing partial is ever
 * visible. After an error from pages the caller must abort.
 */
struct pt_blocks_stream;
int pt_blocks_store_stream_open(struct pt_blocks_store *s, uint64_t block_id, uint32_t crc,
                                uint32_t size, struct pt_blocks_stream **out);
int pt_blocks_store_stream_pages(struct pt_blocks_stream *st, uint32_t offset,
                                 const uint8_t *crcs, const void *data, uint32_t len);
void pt_blocks_store_stream_finish(struct pt_blocks_stream *st, pt_blocks_store_done done,
                                   void *ctx);
void pt_blocks_store_stream_abort(struct pt_blocks_stream *st);

/*
 * Read the pages touched by [offset, offset+count) into a malloc'd BLOCK_READ response body
 * (docs/PROTOCOL.md): header, page CRCs, data. Each page is verified first: -PT_ECORRUPT on a
 * mismatch; -PT_ENOENT, -PT_ERANGE (offset beyond the end).
 */
int pt_blocks_store_read(struct pt_blocks_store *s, uint64_t block_id, uint32_t offset,
                         uint32_t count, uint8_t **body, size_t *body_len);

/* Header of a stored block: 0, -PT_ENOENT, -PT_ECORRUPT (bad header). */
int pt_blocks_store_stat(struct pt_blocks_store *s, uint64_t block_id, struct pt_block_stat *out);

/*
 * Erase a block, durably (unlink, fsync its directory). If it exists with a valid header, its
 * crc and size must match (else -PT_EINVAL). Absent is success (idempotent), after an fsync of
 * its directory (the absence may be an earlier erase's unsynced unlink).
 */
int pt_blocks_store_erase(struct pt_blocks_store *s, uint64_t block_id, uint32_t crc,
                          uint32_t size);

/* Path of a block's file relative to the data directory (for tests that damage blocks). */
int pt_blocks_store_path(const struct pt_blocks_store *s, uint64_t block_id, char *buf, size_t cap);

/*
 * A store on a host directory outside any server (tests, fuzzing, tools): its own libuv loop
 * and production env, with the asynchronous calls run to completion. The other store calls
 * take &local.store.
 */
struct pt_blocks_local {
    char *dir;
    uv_loop_t loop;
    struct pt_env *env;
    struct pt_blocks_store store;
};
int pt_blocks_local_open(const char *dir, struct pt_blocks_local *out);
int pt_blocks_local_write(struct pt_blocks_local *l, uint64_t block_id, uint32_t crc,
                          const void *data, uint32_t size);
/* Host path of a block's file (for tests that damage blocks on purpose). */
int pt_blocks_local_path(const struct pt_blocks_local *l, uint64_t block_id, char *buf,
                         size_t cap);
void pt_blocks_local_close(struct pt_blocks_local *l);

/* --- one service's request handling, without a transport ------------------------------------- */

/*
 * The reply to one request: status 0 with a malloc'd body the callee takes (len bytes), or a
 * negative PT_E* with a one-line reason and no body. Exactly one reply per request, possibly
 * from inside pt_blocks_service_handle (unlike env callbacks): a transport must be ready.
 */
typedef void (*pt_blocks_reply_fn)(void *ctx, int status, const char *why, uint8_t *body,
                                   size_t len);

/*
 * The scrubber's progress (blocks_scrub.c): cumulative since the service started, except
 * last_pass_ms (wall-clock ms when the latest full pass over the index ended; 0: none yet).
 */
struct pt_blocks_scrub_stats {
    uint64_t blocks_checked; /* blocks read whole and verified (every page, and the block CRC) */
    uint64_t bytes_checked;
    uint64_t rotten;         /* blocks found rotten (a page, the header or the block CRC) */
    uint64_t passes;         /* full passes over the index */
    uint64_t last_pass_ms;
};

/* Where the scrubber is: the block it reads (by id: the index may change under it) and the
 * offset in it, with the page CRCs combined so far. */
struct pt_blocks_scrub {
    uint64_t rate;  /* bytes per second; 0 = off */
    uint64_t timer; /* pending env timer (0: none) */
    uint64_t block; /* next block id to verify */
    uint32_t offset;
    uint32_t whole; /* CRC32C of the block's bytes before offset, from its page CRCs */
    uint64_t debt;  /* bytes read not yet paid for in delay */
    struct pt_blocks_scrub_stats stats;
};

/* A write stream open in a service (BLOCK_WRITE_BEGIN .. END). */
struct pt_blocks_service;
struct pt_blocks_stream_slot {
    struct pt_blocks_service *svc;
    struct pt_blocks_stream *st; /* NULL: free slot */
    uint64_t block_id, stream;
    uint32_t crc, size;
    uint64_t timer;   /* env timer checking for idleness */
    uint64_t last_ms; /* env time of its latest piece */
};

/*
 * A block service: its store, the index of its blocks (for STAT, LIST, usage) and the rules
 * (certificates, proofs, one write or erase per block at a time). The transport fills in the
 * hooks, opens the store, calls pt_blocks_service_init, then feeds requests. Heap-allocated
 * (calloc): pt_blocks_service_close frees it, at once or when its last write completes.
 */
struct pt_blocks_service {
    struct pt_blocks_store store;
    /* hooks, filled by the transport */
    int (*get_secret)(void *ctx, uint8_t secret[PT_REG_SECRET_SIZE]); /* 1 if known */
    void (*on_change)(void *ctx);       /* index, usage or scrub progress changed (may be NULL) */
    uint64_t (*capacity)(void *ctx);    /* bytes of the disk (may be NULL: 0) */
    /* The scrubber found a stored block rotten (may be NULL): the transport tells the shard
       that owns it (PT_INODE_SHARD of the block id). Called on every pass that finds it. */
    void (*on_rotten)(void *ctx, uint64_t block_id);
    /* the disk's file system id (statvfs f_fsid; 0 unknown) and its bytes free for users
       (may be NULL: 0, 0): lets statfs count a disk shared by several services once */
    void (*disk)(void *ctx, uint64_t *fsid, uint64_t *free_bytes);
    void *hook_ctx;
    char failure_domain[PT_REG_DOMAIN_MAX];
    /* index, sorted by block id */
    struct pt_block_stat *index;
    size_t count, cap;
    uint64_t used;
    /* Blocks with a write or erase in flight: a second one for the same block waits its turn
       (PT_EBUSY, retried by the client), so an erase proof can never race a write. */
    uint64_t busy[64];
    int nbusy;
    unsigned inflight;
    int closing;
    struct pt_blocks_scrub scrub;
    /* Write streams in progress; each holds its block's busy claim. One idle for
       PT_BLOCK_STREAM_IDLE_MS is aborted (temp file removed). */
    struct pt_blocks_stream_slot streams[PT_BLOCK_STREAMS_MAX];
    uint64_t streams_aborted; /* streams given up (idle, failed piece, replaced, closed) */
    uint32_t stream_idle_ms;  /* 0 = PT_BLOCK_STREAM_IDLE_MS */
};

/* Build the index from the opened store: 0 or -PT_E*. */
int pt_blocks_service_init(struct pt_blocks_service *s);
/* Handle one request (PT_MSG_PING or PT_MSG_BLOCK_*) with its body; body is read during the
 * call only. */
void pt_blocks_service_handle(struct pt_blocks_service *s, uint16_t kind, const uint8_t *body,
                              size_t len, pt_blocks_reply_fn reply, void *ctx);
void pt_blocks_service_close(struct pt_blocks_service *s);

/*
 * Start (rate > 0) or stop (0) the scrubber: it verifies every page of every indexed block, one
 * chunk (up to 256 KiB) per env timer, pacing the timers so that it reads about `rate` bytes
 * per second; a block with a write or erase in flight is skipped for this pass. Between two
 * steps the loop serves requests, so foreground I/O waits at most one chunk. After a full
 * pass it waits at least 1 s, then starts again at the lowest id.
 */
void pt_blocks_scrub_start(struct pt_blocks_service *s, uint64_t rate);
/* Index helpers the scrubber shares with the request handlers (blocks_service.c). */
size_t pt_blocks_index_find(const struct pt_blocks_service *s, uint64_t id);
int pt_blocks_busy(const struct pt_blocks_service *s, uint64_t id);

/* --- the server ---------------------------------------------------------------------------- */

struct pt_blocks_server_config {
    const char *registry; /* "HOST:PORT" of the registry */
    const char *failure_domain;
    const char *const *dirs; /* one service per directory */
    int ndirs;
    const char *listen;    /* first service's address; the next use port+1, ... (or 0) */
    uint32_t heartbeat_ms; /* 0 = 1000 */
    /* Scrubber rate per service in bytes per second (`--scrub-rate MB/s`); 0 = off. */
    uint64_t scrub_rate;
    /* A write stream silent this long is dropped; 0 = PT_BLOCK_STREAM_IDLE_MS (tests set less). */
    uint32_t stream_idle_ms;
    /* Metrics endpoint "HOST:PORT" for every service of the process (port 0: OS-chosen);
     * NULL: none. The address goes to the registry in each heartbeat. */
    const char *http;
};

struct pt_blocks_server;

/*
 * Open every store, listen, try one heartbeat (so writes work at once when the registry is
 * up), start the heartbeat thread: 0 or -PT_E*.
 */
int pt_blocks_server_start(uv_loop_t *loop, const struct pt_blocks_server_config *cfg,
                           struct pt_blocks_server **out);
int pt_blocks_server_count(const struct pt_blocks_server *s);
const char *pt_blocks_server_address(const struct pt_blocks_server *s, int i);
uint64_t pt_blocks_server_id(const struct pt_blocks_server *s, int i);
/* The metrics endpoint's bound address, or "" without one. */
const char *pt_blocks_server_http_address(const struct pt_blocks_server *s);
/* Whether service i has its secret (its first heartbeat succeeded). */
int pt_blocks_server_has_secret(struct pt_blocks_server *s, int i);
/* Stop listening and heartbeating (on the loop thread). */
void pt_blocks_server_stop(struct pt_blocks_server *s);
/* Release everything, once uv_run has returned after stop. */
void pt_blocks_server_free(struct pt_blocks_server *s);

#endif
