/*
 * One step of a CDC transaction against the shards: given a transaction as recorded in the
 * CDC state, make the shard call(s) of its current step and say what to record next (a STEP
 * or a FINISH), or nothing when a shard that exists has no reachable leader right now (the
 * step is then tried again later: every shard half is idempotent, keyed by the transaction
 * id). Blocking; runs on a worker thread with its own router. The no-loops check of a
 * directory rename lives here: it walks the parents from the destination up to the root,
 * which is safe because the CDC runs one transaction at a time and is the only writer of
 * directory parents.
 */
#ifndef PETREL_CLUSTER_CDC_STEPS_H
#define PETREL_CLUSTER_CDC_STEPS_H

#include "cluster/cdc/cdc_sm.h"
#include "cluster/client/router.h"

enum pt_cdc_outcome_kind { PT_CDC_OUT_NONE = 0, PT_CDC_OUT_STEP = 1, PT_CDC_OUT_FINISH = 2 };

struct pt_cdc_outcome {
    enum pt_cdc_outcome_kind kind;
    uint8_t step;
    uint64_t x;
    uint8_t type;
    int32_t err;
    uint64_t repl; /* rename: the replaced entry (kept from the transaction unless changed) */
    uint8_t repl_type;
    int32_t status;
    uint64_t result;
};

/*
 * shards: the deployment's shard count. An inode naming a shard at or beyond it is refused
 * with -PT_ENOENT (rolling back what the transaction holds), never retried.
 */
void pt_cdc_run_step(struct pt_router *r, unsigned shards, const struct pt_cdc_txn *t,
                     struct pt_cdc_outcome *out);

#endif
