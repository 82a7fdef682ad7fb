/*
 * raft_fsm for a shard (see shard_fsm.h). Owns nothing but the reply buffer; the store is the
 * caller's. Snapshot buffers are malloc'd here and released by snapshot_finalize (fsm v2);
 * a restored buffer is released with raft_free once loaded, as libraft hands it over.
 */
#include "cluster/shard/shard_fsm.h"

#include <stdlib.h>
#include <string.h>

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

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct pt_shard_fsm *f = fsm->data;
    uint8_t *data;
    size_t len;
    struct raft_buffer *b;
    int rc = pt_shard_sm_snapshot(f->sm, &data, &len);
    if (rc) return RAFT_IOERR;
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

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    unsigned i;
    (void)fsm;
    if (*bufs) {
        for (i = 0; i < *n_bufs; i++)
            free((*bufs)[i].base);
        free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct pt_shard_fsm *f = fsm->data;
    int rc = pt_shard_sm_restore(f->sm, buf->base, buf->len);
    if (rc) return RAFT_CORRUPT;
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
    f->fsm.snapshot_finalize = fsm_snapshot_finalize;
}
