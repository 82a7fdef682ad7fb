/*
 * raft_fsm for a shard (see shard_fsm.h). Owns nothing but the reply buffer; the store is the
 * caller's. Snapshot buffers (an image, or a streamed snapshot's reference) are malloc'd here
 * and released by snapshot_finalize (fsm v2);
 * a restored buffer is released with raft_free once loaded, as libraft hands it over.
 */
#include "cluster/shard/shard_fsm.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/replica/replica.h"
#include "petrel/common.h"

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct pt_shard_fsm *f = fsm->data;
    int rc;
    *result = NULL;
    if (f->store_error) return RAFT_IOERR;
    rc = pt_shard_sm_apply(f->sm, buf->base, buf->len, &f->out);
    if (rc) {
        /* The store failed: stop here rather than let this replica diverge. */
        petrel_log(PT_LOG_ERROR, "shard", "store failure while applying: %s", petrel_strerror(rc));
        f->store_error = rc;
        return RAFT_IOERR;
    }
    f->applied++;
    *result = &f->out;
    return 0;
}

static int fill_from_store(void *ctx, pt_raft_snap_put_fn put, void *put_ctx)
{
    struct pt_shard_fsm *f = ctx;
    uint8_t *chunk = malloc(PT_SHARD_FSM_SNAP_CHUNK);
    int rc;
    if (!chunk) return -PT_ENOMEM;
    rc = pt_shard_sm_snapshot_stream(f->sm, put, put_ctx, chunk, PT_SHARD_FSM_SNAP_CHUNK, NULL);
    free(chunk);
    return rc;
}

static int drain_to_store(void *ctx, pt_raft_snap_get_fn get, void *get_ctx, uint64_t len)
{
    struct pt_shard_fsm *f = ctx;
    uint8_t *chunk = malloc(PT_SHARD_FSM_SNAP_CHUNK);
    int rc;
    if (!chunk) return -PT_ENOMEM;
    rc = pt_shard_sm_restore_stream(f->sm, get, get_ctx, len, chunk, PT_SHARD_FSM_SNAP_CHUNK);
    free(chunk);
    return rc;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct pt_shard_fsm *f = fsm->data;
    uint8_t *data;
    size_t len;
    struct raft_buffer *b;
    int rc;
    if (f->io) {
        len = PT_RAFT_SNAP_REF_BYTES;
        data = malloc(len);
        rc = data ? pt_raft_io_snap_write(f->io, fill_from_store, f, data) : -PT_ENOMEM;
        if (rc) free(data);
    } else {
        rc = pt_shard_sm_snapshot(f->sm, &data, &len);
    }
    pt_shard_sm_trim(f->sm); /* the walk touched every page of the store */
    if (rc) return rc == -PT_ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
    b = malloc(sizeof(*b));
    if (!b) {
        free(data);
        return RAFT_NOMEM;
    }
    b->base = data;
    b->len = len;
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct pt_shard_fsm *f = fsm->data;
    int rc;
    if (pt_raft_io_snap_is_ref(buf->base, buf->len))
        rc = f->io ? pt_raft_io_snap_read(f->io, buf->base, buf->len, drain_to_store, f)
                   : -PT_ECORRUPT;
    else
        rc = pt_shard_sm_restore(f->sm, buf->base, buf->len);
    pt_shard_sm_trim(f->sm);
    if (rc) {
        petrel_log(PT_LOG_ERROR, "shard", "cannot restore a snapshot: %s", petrel_strerror(rc));
        /* The store may be half replaced: refuse to apply (a streamed restore has also
         * stopped the replica, which restarts from its disk). */
        if (rc != -PT_ECORRUPT) f->store_error = rc;
        return RAFT_CORRUPT;
    }
    raft_free(buf->base);
    return 0;
}

void pt_shard_fsm_init(struct pt_shard_fsm *f, struct pt_shard_sm *sm)
{
    memset(f, 0, sizeof(*f));
    f->sm = sm;
    f->fsm.version = 2;
    f->fsm.data = f;
    f->fsm.apply = fsm_apply;
    f->fsm.snapshot = fsm_snapshot;
    f->fsm.restore = fsm_restore;
    f->fsm.snapshot_finalize = pt_replica_snapshot_finalize;
}
