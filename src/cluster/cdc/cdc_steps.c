/*
 * CDC transaction steps (see cdc_steps.h). Step numbers per operation:
 *   mkdir : 0 MAKE_DIR on the chosen shard -> 1 ADD_ENTRY in the parent -> done;
 *           refused: 2 REMOVE_DIR of the new directory -> done with the refusal.
 *   rmdir : 0 LOCK_ENTRY -> 1 REMOVE_DIR (only if empty) -> 2 REMOVE_ENTRY -> done;
 *           refused: 9 UNLOCK_ENTRY -> done with the refusal.
 *   rename: 0 LOCK_ENTRY source -> 1 (directories: no-loops walk) LOCK_ENTRY target: the
 *           replaced entry, if any, is recorded in the transaction (repl) and stays locked ->
 *           (target a directory: 2 REMOVE_DIR of it, only if empty) -> 3 ADD_ENTRY target, or
 *           REPLACE_ENTRY when it exists (the commit point) -> 4 REMOVE_ENTRY source ->
 *           (replaced file: 5 RETIRE_FILE on its shard) (directories: 6 SET_PARENT) -> done;
 *           refused: 9 UNLOCK_ENTRY source and target -> done with the refusal (a rename onto
 *           itself "rolls back" with status 0: nothing to do).
 */
#include "cluster/cdc/cdc_steps.h"

#include <string.h>

#include "petrel/codec.h"
#include "petrel/common.h"

#define MAX_DEPTH 4096

/* What a step needs: the router to the shards and the deployment's shard count. */
struct cdc_env {
    struct pt_router *router;
    unsigned shards;
};

/*
 * A shard call: 0 / the operation's refusal / 1 when the shard is temporarily unreachable (no
 * leader yet, electing, restarting: the step is tried again later). An inode on a shard the
 * deployment does not have is refused at once with -PT_ENOENT (no shard call): retrying it
 * could never succeed and would hold up every later transaction. A reply that cannot be
 * decoded is refused with -PT_EPROTO rather than retried for ever.
 */
static int call(const struct cdc_env *r, const struct pt_shard_req *q, uint64_t owner, uint64_t *v1,
                uint8_t *v2)
{
    struct pt_reply rep;
    int rc;
    if (PT_INODE_SHARD(owner) >= r->shards) return -PT_ENOENT;
    rc = pt_router_shard(r->router, PT_INODE_SHARD(owner), q, &rep, NULL);
    if (rc == 0 && (v1 || v2)) {
        struct pt_cursor c;
        pt_cursor_init(&c, rep.body, rep.body_len);
        if (v1) *v1 = pt_dec_u64(&c);
        if (v2) *v2 = pt_dec_u8(&c);
        if (!pt_cursor_ok(&c)) rc = -PT_EPROTO;
    } else if (rc != 0 && (!rep.remote || rc == -PT_ENOTLEADER || rc == -PT_EAGAIN)) {
        rc = 1; /* unreachable, or no leader yet: try the step again later */
    }
    pt_reply_free(&rep);
    return rc;
}

static void named(struct pt_shard_req *q, uint8_t op, uint64_t txn, uint64_t dir, const char *name,
                  uint8_t len)
{
    memset(q, 0, sizeof(*q));
    q->op = op;
    q->txn = txn;
    q->id = dir;
    memcpy(q->name, name, len);
    q->name[len] = 0;
    q->name_len = len;
}

/* REMOVE_DIR of dir (refused by its shard unless empty), as a call() result. */
static int remove_dir(const struct cdc_env *r, uint64_t txn, uint64_t dir)
{
    struct pt_shard_req q;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_REMOVE_DIR;
    q.txn = txn;
    q.id = dir;
    return call(r, &q, dir, NULL, NULL);
}

static void set_step(struct pt_cdc_outcome *o, enum pt_cdc_step step, uint64_t x, uint8_t type,
                     int32_t err)
{
    o->kind = PT_CDC_OUT_STEP;
    o->step = step;
    o->x = x;
    o->type = type;
    o->err = err;
}

static void set_finish(struct pt_cdc_outcome *o, int32_t status, uint64_t result)
{
    o->kind = PT_CDC_OUT_FINISH;
    o->status = status;
    o->result = result;
}

/* Whether `moved` is `dir` or one of its ancestors: 1 yes, 0 no, <0 error, 2 unreachable. */
static int is_ancestor(const struct cdc_env *r, uint64_t moved, uint64_t dir)
{
    uint64_t cur = dir;
    unsigned depth;
    for (depth = 0; depth < MAX_DEPTH; depth++) {
        struct pt_shard_req q;
        struct pt_reply rep;
        struct pt_shard_stat st;
        struct pt_cursor c;
        int rc;
        if (cur == moved) return 1;
        if (cur == PT_INODE_ROOT) return 0;
        if (PT_INODE_SHARD(cur) >= r->shards) return -PT_ENOENT;
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_STAT;
        q.id = cur;
        rc = pt_router_shard(r->router, PT_INODE_SHARD(cur), &q, &rep, NULL);
        if (rc == 0) {
            pt_cursor_init(&c, rep.body, rep.body_len);
            rc = pt_shard_reply_stat(&c, &st);
        } else if (!rep.remote || rc == -PT_ENOTLEADER || rc == -PT_EAGAIN) {
            rc = 2;
        }
        pt_reply_free(&rep);
        if (rc) return rc;
        cur = st.parent;
    }
    return -PT_ELOOP;
}

static void mkdir_step(const struct cdc_env *r, const struct pt_cdc_txn *t,
                       struct pt_cdc_outcome *o)
{
    struct pt_shard_req q;
    uint64_t id;
    int rc;
    switch ((enum pt_cdc_step)t->step) {
    case PT_CDC_MKDIR_MAKE_DIR:
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_MAKE_DIR;
        q.txn = t->id;
        q.target = t->req.dir;
        if (t->req.has_attr) { /* the creator's mode and owner (issue 11) */
            q.has_attr = 1;
            q.attr.mode = t->req.mode;
            q.attr.uid = t->req.uid;
            q.attr.gid = t->req.gid;
        }
        rc = call(r, &q, PT_INODE_MAKE(t->shard, 0), &id, NULL);
        if (rc == 0)
            set_step(o, PT_CDC_MKDIR_ADD_ENTRY, id, PT_TYPE_DIR, 0);
        else if (rc < 0)
            set_finish(o, rc, 0);
        return;
    case PT_CDC_MKDIR_ADD_ENTRY:
        named(&q, PT_SHARD_ADD_ENTRY, t->id, t->req.dir, t->req.name, t->req.name_len);
        q.target = t->x;
        q.offset = PT_TYPE_DIR;
        rc = call(r, &q, t->req.dir, NULL, NULL);
        if (rc == 0)
            set_finish(o, 0, t->x);
        else if (rc < 0)
            set_step(o, PT_CDC_MKDIR_UNDO, t->x, PT_TYPE_DIR, rc);
        return;
    default:
        rc = remove_dir(r, t->id, t->x);
        if (rc <= 0) set_finish(o, t->err, 0);
        return;
    }
}

static void unlock_step(const struct cdc_env *r, const struct pt_cdc_txn *t,
                        struct pt_cdc_outcome *o)
{
    struct pt_shard_req q;
    named(&q, PT_SHARD_UNLOCK_ENTRY, t->id, t->req.dir, t->req.name, t->req.name_len);
    if (call(r, &q, t->req.dir, NULL, NULL) <= 0) set_finish(o, t->err, 0);
}

static void rmdir_step(const struct cdc_env *r, const struct pt_cdc_txn *t,
                       struct pt_cdc_outcome *o)
{
    struct pt_shard_req q;
    uint64_t id;
    uint8_t type;
    int rc;
    switch ((enum pt_cdc_step)t->step) {
    case PT_CDC_RMDIR_LOCK:
        named(&q, PT_SHARD_LOCK_ENTRY, t->id, t->req.dir, t->req.name, t->req.name_len);
        rc = call(r, &q, t->req.dir, &id, &type);
        if (rc < 0)
            set_finish(o, rc, 0);
        else if (rc == 0 && type != PT_TYPE_DIR)
            set_step(o, PT_CDC_STEP_ROLLBACK, id, type, -PT_ENOTDIR);
        else if (rc == 0)
            set_step(o, PT_CDC_RMDIR_REMOVE_DIR, id, type, 0);
        return;
    case PT_CDC_RMDIR_REMOVE_DIR:
        rc = remove_dir(r, t->id, t->x);
        if (rc == 0)
            set_step(o, PT_CDC_RMDIR_REMOVE_ENTRY, t->x, t->type, 0);
        else if (rc < 0)
            set_step(o, PT_CDC_STEP_ROLLBACK, t->x, t->type, rc);
        return;
    case PT_CDC_RMDIR_REMOVE_ENTRY:
        named(&q, PT_SHARD_REMOVE_ENTRY, t->id, t->req.dir, t->req.name, t->req.name_len);
        q.target = t->x;
        rc = call(r, &q, t->req.dir, NULL, NULL);
        if (rc <= 0) set_finish(o, rc, 0);
        return;
    default:
        unlock_step(r, t, o);
        return;
    }
}

static void rename_unlock_step(const struct cdc_env *r, const struct pt_cdc_txn *t,
                               struct pt_cdc_outcome *o)
{
    struct pt_shard_req q;
    if (t->repl) {
        named(&q, PT_SHARD_UNLOCK_ENTRY, t->id, t->req.dir2, t->req.name2, t->req.name2_len);
        if (call(r, &q, t->req.dir2, NULL, NULL) > 0) return;
    }
    unlock_step(r, t, o);
}

/* Step 1 after the no-loops check: lock the target name and see what it holds. */
static void rename_lock_target(const struct cdc_env *r, const struct pt_cdc_txn *t,
                               struct pt_cdc_outcome *o)
{
    struct pt_shard_req q;
    uint64_t id;
    uint8_t type;
    int rc, err = 0;
    named(&q, PT_SHARD_LOCK_ENTRY, t->id, t->req.dir2, t->req.name2, t->req.name2_len);
    rc = call(r, &q, t->req.dir2, &id, &type);
    if (rc > 0) return;
    if (rc == -PT_ENOENT) {
        if (t->req.op == PT_CDC_RENAME_INODE &&
            t->req.expect2) /* what was to be replaced is gone */
            set_step(o, PT_CDC_STEP_ROLLBACK, t->x, t->type, -PT_ESTALE);
        else
            set_step(o, PT_CDC_RENAME_LINK_TARGET, t->x, t->type, 0);
        return;
    }
    if (rc < 0) {
        set_step(o, PT_CDC_STEP_ROLLBACK, t->x, t->type, rc);
        return;
    }
    o->repl = id;
    o->repl_type = type;
    if (id == t->x)
        err = 1; /* onto itself: undo the locks, succeed */
    else if (t->req.op == PT_CDC_RENAME_INODE && !t->req.expect2)
        err = -PT_EEXIST; /* the name was free and someone else took it */
    else if (t->req.op == PT_CDC_RENAME_INODE && id != t->req.expect2)
        err = -PT_ESTALE; /* someone else's change: left alone */
    else if (t->type != PT_TYPE_DIR && type == PT_TYPE_DIR)
        err = -PT_EISDIR;
    else if (t->type == PT_TYPE_DIR && type != PT_TYPE_DIR)
        err = -PT_ENOTDIR;
    if (err)
        set_step(o, PT_CDC_STEP_ROLLBACK, t->x, t->type, err > 0 ? 0 : err);
    else
        set_step(o, type == PT_TYPE_DIR ? PT_CDC_RENAME_REMOVE_TARGET : PT_CDC_RENAME_LINK_TARGET,
                 t->x, t->type, 0);
}

static void rename_step(const struct cdc_env *r, const struct pt_cdc_txn *t,
                        struct pt_cdc_outcome *o)
{
    struct pt_shard_req q;
    uint64_t id;
    uint8_t type;
    int rc;
    switch ((enum pt_cdc_step)t->step) {
    case PT_CDC_RENAME_LOCK_SOURCE:
        named(&q, PT_SHARD_LOCK_ENTRY, t->id, t->req.dir, t->req.name, t->req.name_len);
        rc = call(r, &q, t->req.dir, &id, &type);
        if (rc < 0)
            set_finish(o, rc, 0);
        else if (rc == 0 && t->req.op == PT_CDC_RENAME_INODE && id != t->req.expect)
            set_step(o, PT_CDC_STEP_ROLLBACK, id, type, -PT_ESTALE); /* not what was asked */
        else if (rc == 0)
            set_step(o, PT_CDC_RENAME_LOCK_TARGET, id, type, 0);
        return;
    case PT_CDC_RENAME_LOCK_TARGET:
        if (PT_INODE_SHARD(t->req.dir2) >= r->shards) {
            /* No such target directory (a missing name in it would read as "free" below). */
            set_step(o, PT_CDC_STEP_ROLLBACK, t->x, t->type, -PT_ENOENT);
            return;
        }
        if (t->type == PT_TYPE_DIR) {
            rc = is_ancestor(r, t->x, t->req.dir2);
            if (rc == 2) return;
            if (rc == 1) rc = -PT_ELOOP;
            if (rc < 0) {
                set_step(o, PT_CDC_STEP_ROLLBACK, t->x, t->type, rc);
                return;
            }
        }
        rename_lock_target(r, t, o);
        return;
    case PT_CDC_RENAME_REMOVE_TARGET:
        /* The replaced directory goes first, only if empty (its locked entry keeps it named). */
        rc = remove_dir(r, t->id, t->repl);
        if (rc == 0)
            set_step(o, PT_CDC_RENAME_LINK_TARGET, t->x, t->type, 0);
        else if (rc < 0)
            set_step(o, PT_CDC_STEP_ROLLBACK, t->x, t->type, rc);
        return;
    case PT_CDC_RENAME_LINK_TARGET:
        named(&q, t->repl ? PT_SHARD_REPLACE_ENTRY : PT_SHARD_ADD_ENTRY, t->id, t->req.dir2,
              t->req.name2, t->req.name2_len);
        q.target = t->x;
        q.offset = t->type;
        q.cookie = t->repl;
        rc = call(r, &q, t->req.dir2, NULL, NULL);
        if (rc == 0)
            set_step(o, PT_CDC_RENAME_REMOVE_SOURCE, t->x, t->type, 0);
        else if (rc < 0)
            set_step(o, PT_CDC_STEP_ROLLBACK, t->x, t->type, rc);
        return;
    case PT_CDC_RENAME_REMOVE_SOURCE:
        named(&q, PT_SHARD_REMOVE_ENTRY, t->id, t->req.dir, t->req.name, t->req.name_len);
        q.target = t->x;
        rc = call(r, &q, t->req.dir, NULL, NULL);
        if (rc > 0) return;
        if (t->repl && t->repl_type != PT_TYPE_DIR)
            set_step(o, PT_CDC_RENAME_RETIRE_REPLACED, t->x, t->type, 0);
        else if (t->type == PT_TYPE_DIR)
            set_step(o, PT_CDC_RENAME_SET_PARENT, t->x, t->type, 0);
        else
            set_finish(o, rc, 0);
        return;
    case PT_CDC_RENAME_RETIRE_REPLACED:
        /* The replaced file lost its name: its retention starts on its own shard. */
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_RETIRE_FILE;
        q.id = t->repl;
        rc = call(r, &q, t->repl, NULL, NULL);
        if (rc <= 0) set_finish(o, 0, 0);
        return;
    case PT_CDC_RENAME_SET_PARENT:
        memset(&q, 0, sizeof(q));
        q.op = PT_SHARD_SET_PARENT;
        q.txn = t->id;
        q.id = t->x;
        q.target = t->req.dir2;
        rc = call(r, &q, t->x, NULL, NULL);
        if (rc <= 0) set_finish(o, rc, 0);
        return;
    default:
        rename_unlock_step(r, t, o);
        return;
    }
}

void pt_cdc_run_step(struct pt_router *router, unsigned shards, const struct pt_cdc_txn *t,
                     struct pt_cdc_outcome *out)
{
    struct cdc_env env;
    const struct cdc_env *r = &env;
    env.router = router;
    env.shards = shards;
    memset(out, 0, sizeof(*out));
    out->repl = t->repl;
    out->repl_type = t->repl_type;
    switch (t->req.op) {
    case PT_CDC_MKDIR:
        mkdir_step(r, t, out);
        break;
    case PT_CDC_RMDIR:
        rmdir_step(r, t, out);
        break;
    case PT_CDC_RENAME:
    case PT_CDC_RENAME_INODE:
        rename_step(r, t, out);
        break;
    default:
        set_finish(out, -PT_EPROTO, 0);
        break;
    }
}
