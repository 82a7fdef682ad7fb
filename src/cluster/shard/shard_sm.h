/*
 * The shard state machine: a metadata shard's directories, files, spans and block index in an
 * LMDB store, changed only by applying Raft log entries.
 *
 * pt_shard_sm_apply() is deterministic and does no I/O beyond its LMDB transaction: the same
 * entries applied in the same order give byte-identical stores on every replica. Time comes
 * only from the entry (stamped by the leader when it proposed it), never from the local clock;
 * block services are chosen by the leader and carried in the entry. Operation failures (name
 * exists, wrong cookie, ...) are results written into the reply, not errors of apply: apply
 * itself fails only when the store fails, and then the entry changed nothing.
 *
 * The store is a derived copy of the Raft log: it is opened fresh at start-up and rebuilt by
 * replaying the log (or restored from a Raft snapshot), so it needs no fsync of its own.
 * Layout byte by byte: docs/SPEC-SHARD.md.
 */
#ifndef PETREL_CLUSTER_SHARD_SM_H
#define PETREL_CLUSTER_SHARD_SM_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/proto/shard_msgs.h"
#include "cluster/replica/entry.h"

struct pt_shard_sm {
    MDB_env *env;
    MDB_dbi inodes, dirents, spans, blockidx, meta, txns, transient, dropped;
    MDB_dbi policy, repairq; /* redundancy: storage policies, blocks reported bad */
    MDB_dbi blockrefs, changes; /* files that change: shared copies' holders, change files */
    unsigned shard;
    uint64_t transient_ttl_ms; /* a writer silent this long loses its transient file */
    uint64_t retention_ms;     /* an unlinked file is kept this long before GC */
    int root_stamped;          /* shard 0: the root has its times (root_stamp in shard_sm.c) */
};

/* Most span records one block copy may be listed by (a file, its old versions kept for the
 * retention period and its open changes); REPLACE_BLOCK refuses more with -PT_E2BIG. */
#define PT_SHARD_HOLDERS_MAX 256
#define PT_SHARD_TRANSIENT_TTL_MS (120u * 1000u)
#define PT_SHARD_RETENTION_MS (24u * 3600u * 1000u)

/* Open (fresh = wipe first) the store under dir/ for shard `shard`; creates the root on shard 0. */
int pt_shard_sm_open(struct pt_shard_sm *sm, const char *dir, unsigned shard, int fresh);
void pt_shard_sm_close(struct pt_shard_sm *sm);

/* Append a shard request to a log entry (the envelope of replica/entry.h): 0, or
 * -PT_EOVERFLOW / -PT_E2BIG (batch full) / encode errors. */
int pt_shard_entry_add(struct pt_shard_entry_builder *b, const struct pt_shard_req *req);

/*
 * Apply one log entry: each request in its own LMDB transaction, its reply in out. Returns 0,
 * or a negative error when the store failed (the failing request then changed nothing, and
 * apply must not continue: the replica stops rather than diverge).
 */
int pt_shard_sm_apply(struct pt_shard_sm *sm, const uint8_t *entry, size_t len,
                      struct pt_shard_apply_out *out);

/* Answer a read-only request (LOOKUP, READDIR, STAT, SPANS) from the store. Same reply form. */
int pt_shard_sm_query(struct pt_shard_sm *sm, const uint8_t *req, size_t len, uint8_t *reply,
                      size_t cap, size_t *reply_len);

/*
 * Garbage collection (read-only helpers for the leader). Files whose retention is over at
 * `now`: unlinked with deadline <= now, or expired with deadline + retention <= now. Scans at
 * most `budget` inodes from *cursor (an inode id; 0 = start) and moves the cursor on (back to
 * 0 at the end). Fills ids[0..max) and returns how many, or a negative error.
 */
int pt_shard_sm_gc_candidates(struct pt_shard_sm *sm, uint64_t now, uint64_t *cursor,
                              unsigned budget, uint64_t *ids, unsigned max);

/* One stored block of a file: where it is and what the erase certificate covers. */
struct pt_gc_block {
    uint64_t service, block;
    uint32_t crc, size;
};
/* Every block of a file's spans, malloc'd into *out (count in *n; none: NULL, 0). */
int pt_shard_sm_file_blocks(struct pt_shard_sm *sm, uint64_t file, struct pt_gc_block **out,
                            size_t *n);

/*
 * Blocks of spans dropped (DROP_SPAN) whose retention is over at `now` (a failed writer's
 * copies that may exist on a service), oldest first: up to max into out (with their drop
 * times in times, the key FORGET_DROPPED names). Returns how many, or a negative error.
 */
int pt_shard_sm_gc_dropped(struct pt_shard_sm *sm, uint64_t now, struct pt_gc_block *out,
                           uint64_t *times, unsigned max);
#define PT_SHARD_GC_DROPPED_MAX 64 /* blocks forgotten by one FORGET_DROPPED */

/*
 * Blocks the block index places on `service`, from block id *cursor on, as repair tasks (file,
 * span offset, service, block; the rest 0): count or -PT_E*. *cursor moves past the last one,
 * or back to 0 when the service's blocks are exhausted.
 */
int pt_shard_sm_service_blocks(struct pt_shard_sm *sm, uint64_t service, uint64_t *cursor,
                               struct pt_repair_entry *out, unsigned max);

/* Block services marked draining (DRAIN_SERVICE): count (<= max) or -PT_E*. */
int pt_shard_sm_draining(struct pt_shard_sm *sm, uint64_t *out, unsigned max);
/* Block services declared failed (FAIL_SERVICE): count (<= max) or -PT_E*. */
int pt_shard_sm_failed(struct pt_shard_sm *sm, uint64_t *out, unsigned max);

/* Whether the block index places `block` on `service` (a span lists that copy): 1, 0 or
 * -PT_E*. */
int pt_shard_sm_block_listed(struct pt_shard_sm *sm, uint64_t service, uint64_t block);

/*
 * Every span of the store, in one read transaction, to fn with the file id and a mask of the
 * span's blocks that sit in the repair queue (bit i: block i); *queued gets the number of
 * repair queue entries. The span's cell_crcs and inline_data are NULL. 0 or -PT_E*.
 */
typedef void (*pt_shard_span_fn)(void *ctx, uint64_t file, const struct pt_span *s,
                                 unsigned queued_mask);
int pt_shard_sm_span_scan(struct pt_shard_sm *sm, pt_shard_span_fn fn, void *ctx,
                          uint64_t *queued);

/*
 * Background compaction (issue 12, shard_compact.c): the next run of small spans of one linked
 * file, scanning at most `budget` span records from file *cursor on (the cursor moves past the
 * files looked at, back to 0 at the end of the table). A run is consecutive certified spans,
 * each inline or mirrored and smaller than `below` bytes, merged size at most `max` bytes,
 * at least `min_run` spans long and at most PT_COMPACT_RUN_MAX. The spans are copied into
 * *run (inline bytes into run->inline_bytes). Returns 1 (a run), 0 (none in this budget) or
 * -PT_E*.
 */
#define PT_COMPACT_RUN_MAX 64
struct pt_compact_run {
    uint64_t file, version, offset; /* offset: the run's first byte */
    uint32_t size;                  /* the run's bytes */
    unsigned n, copies;             /* spans; the largest copy count among them (0: inline) */
    struct pt_span spans[PT_COMPACT_RUN_MAX];
    uint8_t inline_bytes[PT_COMPACT_RUN_MAX * PT_INLINE_MAX]; /* inline spans' bytes, in order */
};
int pt_shard_sm_compact_find(struct pt_shard_sm *sm, uint32_t below, uint32_t max, unsigned min_run,
                             unsigned budget, uint64_t *cursor, struct pt_compact_run *run);

/* Up to `budget` spans from key (*file, *offset) on, in key order, to fn (queued_mask 0); the
 * key moves past the last one, or back to (0, 0) at the end of the store. Count or -PT_E*. */
int pt_shard_sm_span_walk(struct pt_shard_sm *sm, uint64_t *file, uint64_t *offset, unsigned budget,
                          pt_shard_span_fn fn, void *ctx);

/*
 * Snapshots (shard_snap.c; bytes in docs/SPEC-SHARD.md "Shard snapshot"), streamed so that
 * memory does not grow with the store.
 *
 * pt_shard_sm_snapshot_stream walks the store in one read transaction and passes the image to
 * `write` through the caller's buffer (cap >= 16), in pieces of at most cap bytes; *total (if
 * not NULL) gets the image's length. A write error stops it and is returned.
 *
 * pt_shard_sm_restore_stream reads an image of `len` bytes from `read` (positional: it reads
 * the image twice) through the caller's buffer: first it checks magic, version, structure and
 * CRC without touching the store (-PT_ECORRUPT, store unchanged), then it replaces every
 * table, committing every PT_SHARD_RESTORE_BATCH bytes. A store failure during the second
 * pass leaves the store partly replaced: the caller must not apply entries to it (a replica
 * stops, see shard_fsm.c). Images of versions 1-5 restore.
 *
 * pt_shard_sm_snapshot / pt_shard_sm_restore are the same over one malloc'd buffer (what
 * libraft's snapshot interface hands over).
 */
#define PT_SHARD_RESTORE_BATCH (8u << 20) /* bytes of records per restore transaction */
#define PT_SHARD_SNAP_TRIM (1u << 20)     /* bytes of image taken between trims of the map */
#define PT_SHARD_SNAP_KEY_MAX 511         /* LMDB's key limit: longer keys are corrupt */
typedef int (*pt_shard_snap_write_fn)(void *ctx, const uint8_t *buf, size_t len);
/* Up to len bytes at off into buf: count (short only at the end) or -PT_E*. */
typedef int64_t (*pt_shard_snap_read_fn)(void *ctx, uint64_t off, uint8_t *buf, size_t len);
int pt_shard_sm_snapshot_stream(struct pt_shard_sm *sm, pt_shard_snap_write_fn write, void *ctx,
                                uint8_t *buf, size_t cap, uint64_t *total);
int pt_shard_sm_restore_stream(struct pt_shard_sm *sm, pt_shard_snap_read_fn read, void *ctx,
                               uint64_t len, uint8_t *buf, size_t cap);
int pt_shard_sm_snapshot(struct pt_shard_sm *sm, uint8_t **buf, size_t *len);
int pt_shard_sm_restore(struct pt_shard_sm *sm, const uint8_t *buf, size_t len);

/*
 * Unmap the store's pages from this process (they stay in the kernel's page cache): a walk of
 * the whole store (a snapshot taken or restored) would otherwise leave all of it counted in
 * the replica's resident memory, which then grows with the store. Only what is read again
 * comes back. Taking a snapshot calls it every PT_SHARD_SNAP_TRIM bytes, a restore at every
 * commit, the replica after each snapshot.
 */
/* An LMDB return code as -PT_E* (0 stays 0): not found ENOENT, map full ENOSPC, corrupt
 * ECORRUPT, out of memory ENOMEM, anything else EIO. */
int pt_shard_sm_mdb_error(int rc);
void pt_shard_sm_trim(struct pt_shard_sm *sm);
/* Every directory's subdirectory count (its inode record's offset 42, SPEC-SHARD.md §3.1)
 * recomputed from `dirents` inside t: a restore ends with it, so snapshots from before the
 * count existed need no version of their own. 0 or -PT_E*. */
int pt_shard_sm_recount_subdirs(struct pt_shard_sm *sm, MDB_txn *t);

#endif
