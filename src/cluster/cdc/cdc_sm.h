/*
 * The CDC state machine: the cross-directory transactions (mkdir, rmdir, rename across
 * directories) and how far each has gone, changed only by applying CDC log entries.
 *
 * A transaction is recorded (BEGIN) before any shard is touched; each completed step is
 * recorded (STEP) before the next one starts; the outcome is recorded last (FINISH). A new CDC
 * leader therefore resumes every unfinished transaction at its recorded step, and every step
 * is idempotent on the shards (keyed by the transaction id), so repeating the step that was in
 * flight when the old leader died is harmless. Deterministic, in memory, no I/O; the whole
 * state serializes to one snapshot buffer. Layout: docs/SPEC-SHARD.md ("CDC log").
 */
#ifndef PETREL_CLUSTER_CDC_SM_H
#define PETREL_CLUSTER_CDC_SM_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/proto/cdc_msgs.h"
#include "cluster/replica/entry.h"

enum pt_cdc_entry_op { PT_CDC_BEGIN = 1, PT_CDC_STEP = 2, PT_CDC_FINISH = 3 };

/*
 * How far a transaction has gone: the step recorded last (a u8 in the log and the snapshot:
 * the values are part of the format, docs/SPEC-SHARD.md). Every operation starts at step 0
 * and steps only go up; what each step does is in cdc_steps.c.
 */
enum pt_cdc_step {
    PT_CDC_STEP_START = 0, /* every operation: nothing done on the shards yet */
    /* mkdir */
    PT_CDC_MKDIR_MAKE_DIR = 0,  /* MAKE_DIR on the chosen shard */
    PT_CDC_MKDIR_ADD_ENTRY = 1, /* ADD_ENTRY of the new directory in the parent */
    PT_CDC_MKDIR_UNDO = 2,      /* refused: REMOVE_DIR of the new directory */
    /* rmdir */
    PT_CDC_RMDIR_LOCK = 0,         /* LOCK_ENTRY of the name */
    PT_CDC_RMDIR_REMOVE_DIR = 1,   /* REMOVE_DIR, only if empty */
    PT_CDC_RMDIR_REMOVE_ENTRY = 2, /* REMOVE_ENTRY of the name */
    /* rename */
    PT_CDC_RENAME_LOCK_SOURCE = 0,     /* LOCK_ENTRY of the source name */
    PT_CDC_RENAME_LOCK_TARGET = 1,     /* directories: no-loops walk; LOCK_ENTRY of the target */
    PT_CDC_RENAME_REMOVE_TARGET = 2,   /* the replaced directory: REMOVE_DIR, only if empty */
    PT_CDC_RENAME_LINK_TARGET = 3,     /* ADD_ENTRY / REPLACE_ENTRY target: the commit point */
    PT_CDC_RENAME_REMOVE_SOURCE = 4,   /* REMOVE_ENTRY of the source name */
    PT_CDC_RENAME_RETIRE_REPLACED = 5, /* the replaced file: RETIRE_FILE on its shard */
    PT_CDC_RENAME_SET_PARENT = 6,      /* a moved directory: SET_PARENT */
    PT_CDC_STEP_ROLLBACK = 9           /* every operation: undo a refused transaction's locks */
};
#define PT_CDC_KEEP_FINISHED 4096 /* finished transactions remembered for retried requests */

struct pt_cdc_txn {
    uint64_t id;
    struct pt_cdc_req req;
    uint8_t shard; /* mkdir: the shard chosen for the new directory */
    uint8_t step;
    uint64_t x;        /* the inode the transaction moves, removes or creates */
    uint8_t type;      /* its type */
    int32_t err;       /* the refusal being rolled back */
    uint64_t repl;     /* rename: the inode the target name held (0: none), locked by the txn */
    uint8_t repl_type; /* its type */
    uint8_t done;
    int32_t status;
    uint64_t result;
};

struct pt_cdc_sm {
    struct pt_cdc_txn *txns; /* in id order */
    size_t count, cap;
    uint64_t next_id;
};

void pt_cdc_sm_init(struct pt_cdc_sm *sm);
void pt_cdc_sm_free(struct pt_cdc_sm *sm);

/* Log entry items (inside the envelope of replica/entry.h). Each returns its length or an error. */
int pt_cdc_enc_begin(uint8_t *buf, size_t cap, const struct pt_cdc_req *q, uint8_t shard);
int pt_cdc_enc_step(uint8_t *buf, size_t cap, uint64_t txn, uint8_t step, uint64_t x, uint8_t type,
                    int32_t err);
/* The same STEP with the replaced entry of a rename (the server always writes this form). */
int pt_cdc_enc_step_repl(uint8_t *buf, size_t cap, uint64_t txn, uint8_t step, uint64_t x,
                         uint8_t type, int32_t err, uint64_t repl, uint8_t repl_type);
int pt_cdc_enc_finish(uint8_t *buf, size_t cap, uint64_t txn, int32_t status, uint64_t result);

/*
 * Apply one log entry (envelope of requests): replies per item in out, as [i32 status][body];
 * BEGIN's body is u64 txn, u8 done, i32 status, u64 result. Never fails: malformed items get
 * -PT_EPROTO identically everywhere. Returns 0 or -PT_ENOMEM (the replica must stop).
 */
int pt_cdc_sm_apply(struct pt_cdc_sm *sm, const uint8_t *entry, size_t len,
                    struct pt_shard_apply_out *out);

/* The oldest unfinished transaction, or NULL. */
const struct pt_cdc_txn *pt_cdc_sm_next_active(const struct pt_cdc_sm *sm);
const struct pt_cdc_txn *pt_cdc_sm_find(const struct pt_cdc_sm *sm, uint64_t id);

int pt_cdc_sm_snapshot(const struct pt_cdc_sm *sm, uint8_t **buf, size_t *len);
int pt_cdc_sm_restore(struct pt_cdc_sm *sm, const uint8_t *buf, size_t len);

#endif
