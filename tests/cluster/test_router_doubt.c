/*
 * The client's retry decisions after an answer that says what happened (docs/PROTOCOL.md,
 * "Outcome unknown"): a real frame server on a thread of the test plays a shard leader whose
 * answers are scripted per request (PT_EINDOUBT, PT_ENOTLEADER naming itself, success, or no
 * answer at all) and that also answers the registry's LIST_SHARDS naming itself the leader
 * (where a router that forgot the leader asks); the real router (client/router.c) talks to it.
 * Checks that a request in doubt is repeated only when it is repeatable, that "not the leader" (no
 * effect) is always retried and never marks the call as possibly repeated, and that a
 * non-repeatable request whose attempt timed out ends in -PT_EINDOUBT after exactly one delivery.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/client/router.h"
#include "cluster/net/net.h"
#include "cluster/proto/ids.h"
#include "cluster/proto/registry_msg.h"
#include "petrel/common.h"
#include "test.h"

enum answer { A_OK = 1, A_INDOUBT, A_NOTLEADER_SELF, A_SILENT };

#define SCRIPT_MAX 8

struct fixture {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    struct pt_server *srv;
    char address[PT_ADDR_MAX];
    enum answer script[SCRIPT_MAX];
    unsigned n_script;
    unsigned seen; /* requests delivered (loop thread writes, atomics) */
    struct pt_request *held[SCRIPT_MAX];
    unsigned n_held;
};

/* The registry's answer: one replica of shard 0, the leader, at this server. */
static void list_shards(struct fixture *f, struct pt_request *r)
{
    uint8_t body[512];
    struct pt_cursor c;
    struct pt_reg_replica me;
    memset(&me, 0, sizeof(me));
    me.leader = 1;
    snprintf(me.addr, sizeof(me.addr), "%s", f->address);
    pt_cursor_init(&c, body, sizeof(body));
    pt_enc_u32(&c, 1);
    pt_reg_enc_replica_entry(&c, &me);
    pt_request_reply(r, body, (uint32_t)c.pos);
}

static void handler(void *ctx, struct pt_request *r)
{
    struct fixture *f = ctx;
    unsigned i;
    if (pt_request_kind(r) == PT_MSG_REG_LIST_SHARDS) {
        list_shards(f, r);
        return;
    }
    i = __atomic_fetch_add(&f->seen, 1, __ATOMIC_SEQ_CST);
    enum answer a = i < f->n_script ? f->script[i] : A_OK;
    switch (a) {
    case A_INDOUBT:
        pt_request_reply_error(r, -PT_EINDOUBT, "outcome unknown", NULL);
        break;
    case A_NOTLEADER_SELF:
        /* A follower naming the leader: here the same server, so the router comes back. */
        pt_request_reply_error(r, -PT_ENOTLEADER, "not the leader", f->address);
        break;
    case A_SILENT:
        f->held[f->n_held++] = r; /* never answered before the client gives up */
        break;
    default: {
        uint8_t ok[4] = {0, 0, 0, 0}; /* a shard reply: i32 status 0 */
        pt_request_reply(r, ok, sizeof(ok));
    }
    }
}

static void on_stop(uv_async_t *a)
{
    struct fixture *f = a->data;
    unsigned i;
    for (i = 0; i < f->n_held; i++)
        pt_request_reply_error(f->held[i], -PT_ECANCELED, "stopping", NULL);
    pt_server_stop(f->srv);
    uv_close((uv_handle_t *)&f->stop, NULL);
}

static void *loop_main(void *arg)
{
    struct fixture *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void fixture_start(struct fixture *f, const enum answer *script, unsigned n)
{
    struct pt_server_config cfg;
    memset(f, 0, sizeof(*f));
    memcpy(f->script, script, n * sizeof(script[0]));
    f->n_script = n;
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = "127.0.0.1:0";
    cfg.handler = handler;
    cfg.ctx = f;
    CHECK_OK(uv_loop_init(&f->loop));
    CHECK_OK(pt_server_start(&f->loop, &cfg, &f->srv));
    snprintf(f->address, sizeof(f->address), "%s", pt_server_address(f->srv));
    CHECK_OK(uv_async_init(&f->loop, &f->stop, on_stop));
    f->stop.data = f;
    CHECK(pthread_create(&f->thread, NULL, loop_main, f) == 0);
}

static unsigned fixture_stop(struct fixture *f)
{
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    CHECK_EQ(uv_loop_close(&f->loop), 0);
    pt_call_pool_clear();
    return __atomic_load_n(&f->seen, __ATOMIC_SEQ_CST);
}

/* One shard request of `op` through a router that knows the fixture as shard 0's leader. */
static int call_op(struct fixture *f, uint8_t op, int attempt_timeout_ms, int *retried)
{
    struct pt_router r;
    struct pt_shard_req q;
    struct pt_reply rep;
    int rc;
    pt_router_init(&r, f->address, 3000, attempt_timeout_ms, test_seed() | 1);
    snprintf(r.leader[0], sizeof(r.leader[0]), "%s", f->address);
    memset(&q, 0, sizeof(q));
    q.op = op;
    q.id = PT_INODE_ROOT;
    q.target = PT_INODE_ROOT;
    q.cookie = 7;
    q.expect = 9;
    memcpy(q.name, "a", 2);
    q.name_len = 1;
    memcpy(q.name2, "b", 2);
    q.name2_len = 1;
    rc = pt_router_shard(&r, 0, &q, &rep, retried);
    pt_reply_free(&rep);
    return rc;
}

TEST(router_repeats_a_repeatable_request_in_doubt)
{
    static const enum answer script[] = {A_INDOUBT, A_OK};
    struct fixture f;
    int retried = 0;
    fixture_start(&f, script, 2);
    CHECK_OK(call_op(&f, PT_SHARD_LINK_FILE, 2000, &retried));
    CHECK_EQ(retried, 1); /* the caller learns that the first try may have linked */
    CHECK_EQ(fixture_stop(&f), 2u);
}

TEST(router_returns_in_doubt_for_a_request_not_repeatable)
{
    static const enum answer script[] = {A_INDOUBT, A_OK};
    struct fixture f;
    int retried = 0;
    fixture_start(&f, script, 2);
    CHECK_EQ(call_op(&f, PT_SHARD_UNLINK, 2000, &retried), -PT_EINDOUBT);
    CHECK_EQ(retried, 1);
    CHECK_EQ(fixture_stop(&f), 1u); /* delivered once, never repeated */
}

TEST(router_retries_not_leader_as_no_effect)
{
    static const enum answer script[] = {A_NOTLEADER_SELF, A_NOTLEADER_SELF, A_OK};
    struct fixture f;
    int retried = 1;
    fixture_start(&f, script, 3);
    /* Even a request that must not be repeated: "not the leader" means it had no effect. */
    CHECK_OK(call_op(&f, PT_SHARD_UNLINK, 2000, &retried));
    CHECK_EQ(retried, 0);
    CHECK_EQ(fixture_stop(&f), 3u);
}

TEST(router_timeout_of_a_request_not_repeatable_is_in_doubt)
{
    static const enum answer script[] = {A_SILENT, A_OK};
    struct fixture f;
    int retried = 0;
    fixture_start(&f, script, 2);
    CHECK_EQ(call_op(&f, PT_SHARD_RENAME, 200, &retried), -PT_EINDOUBT);
    CHECK_EQ(retried, 1);
    CHECK_EQ(fixture_stop(&f), 1u);
}

TEST(router_timeout_of_a_repeatable_request_is_repeated)
{
    static const enum answer script[] = {A_SILENT, A_OK};
    struct fixture f;
    int retried = 0;
    fixture_start(&f, script, 2);
    CHECK_OK(call_op(&f, PT_SHARD_UNLINK_INODE, 200, &retried));
    CHECK_EQ(retried, 1); /* UNLINK_INODE's caller reads ENOENT/ESTALE as its own success */
    CHECK_EQ(fixture_stop(&f), 2u);
}

TEST(router_repeatable_table)
{
    /* made repeatable by the shard (cookie, compare-and-set, last-span check, txn id) */
    static const uint8_t yes[] = {
        PT_SHARD_LOOKUP,       PT_SHARD_READDIR,        PT_SHARD_STAT,
        PT_SHARD_SPANS,        PT_SHARD_CONSTRUCT_FILE, PT_SHARD_ADD_SPAN,
        PT_SHARD_ADD_INLINE,   PT_SHARD_CERTIFY_SPAN,   PT_SHARD_LINK_FILE,
        PT_SHARD_LINK_REPLACE, PT_SHARD_DROP_SPAN,      PT_SHARD_RETIRE_FILE,
        PT_SHARD_UNLINK_INODE, PT_SHARD_RENAME_INODE,   PT_SHARD_MAKE_DIR,
        PT_SHARD_ADD_ENTRY,    PT_SHARD_REMOVE_ENTRY,   PT_SHARD_LOCK_ENTRY,
        PT_SHARD_UNLOCK_ENTRY, PT_SHARD_REMOVE_DIR,     PT_SHARD_SET_PARENT,
        PT_SHARD_REPLACE_ENTRY};
    /* by name (a repeat may hit another client's file), leader-only, unknown */
    static const uint8_t no[] = {PT_SHARD_UNLINK,
                                 PT_SHARD_RENAME,
                                 PT_SHARD_EXPIRE,
                                 PT_SHARD_FORGET_FILE,
                                 PT_SHARD_FORGET_DROPPED,
                                 0,
                                 200};
    size_t i;
    for (i = 0; i < sizeof(yes); i++)
        CHECK_MSG(pt_router_shard_repeatable(yes[i]), "op %u", yes[i]);
    for (i = 0; i < sizeof(no); i++)
        CHECK_MSG(!pt_router_shard_repeatable(no[i]), "op %u", no[i]);
}
