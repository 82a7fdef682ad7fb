/*
 * Replication of the shard state machine with libraft's deterministic in-memory fixture: three
 * replicas apply the same entries into three LMDB stores; the proposer gets its replies only
 * after commit; a killed leader is replaced without losing a committed entry; a replica that
 * was down catches up (through a snapshot once the log was compacted) and ends byte-identical.
 */
#include <raft.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/shard/shard_fsm.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "test.h"

#define N 3

struct cluster {
    struct raft_fixture f;
    struct pt_shard_sm sm[N];
    struct pt_shard_fsm fsm[N];
};

struct pending {
    struct raft_apply req;
    int done;
    int status;
    uint16_t count;
    uint8_t reply[PT_SHARD_BATCH_MAX][PT_SHARD_WRITE_REPLY_MAX];
};

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct pending *p = req->data;
    struct pt_shard_apply_out *out = result;
    unsigned i;
    p->done = 1;
    p->status = status;
    if (status == 0 && out) {
        p->count = out->count;
        for (i = 0; i < out->count; i++)
            memcpy(p->reply[i], out->reply[i], out->len[i]);
    }
}

static struct cluster *cluster_start(void)
{
    struct cluster *c = calloc(1, sizeof(*c));
    struct raft_configuration conf;
    unsigned i;
    CHECK(c);
    CHECK_EQ(raft_fixture_initialize(&c->f), 0);
    for (i = 0; i < N; i++) {
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/r%u", test_tmpdir(), i);
        CHECK_OK(pt_shard_sm_open(&c->sm[i], dir, 0, 1));
        pt_shard_fsm_init(&c->fsm[i], &c->sm[i]);
        CHECK_EQ(raft_fixture_grow(&c->f, &c->fsm[i].fsm), 0);
        raft_set_snapshot_threshold(raft_fixture_get(&c->f, i), 8);
        raft_set_snapshot_trailing(raft_fixture_get(&c->f, i), 2);
    }
    CHECK_EQ(raft_fixture_configuration(&c->f, N, &conf), 0);
    CHECK_EQ(raft_fixture_bootstrap(&c->f, &conf), 0);
    raft_configuration_close(&conf);
    CHECK_EQ(raft_fixture_start(&c->f), 0);
    CHECK(raft_fixture_step_until_has_leader(&c->f, 10000));
    return c;
}

static void cluster_stop(struct cluster *c)
{
    unsigned i;
    raft_fixture_close(&c->f);
    for (i = 0; i < N; i++)
        pt_shard_sm_close(&c->sm[i]);
    free(c);
}

/* Propose one entry holding reqs on the current leader; returns the entry's index. */
static raft_index propose(struct cluster *c, struct pending *p, const struct pt_shard_req *reqs,
                          unsigned n, uint64_t now)
{
    struct raft *r = raft_fixture_get(&c->f, raft_fixture_leader_index(&c->f));
    struct pt_shard_entry_builder b;
    struct raft_buffer buf;
    uint8_t tmp[8192];
    unsigned i;
    int len;
    pt_shard_entry_init(&b, tmp, sizeof(tmp), now);
    for (i = 0; i < n; i++)
        CHECK_OK(pt_shard_entry_add(&b, &reqs[i]));
    len = pt_shard_entry_finish(&b);
    CHECK_OK(len);
    buf.len = (size_t)len;
    buf.base = raft_malloc(buf.len);
    memcpy(buf.base, tmp, buf.len);
    memset(p, 0, sizeof(*p));
    p->req.data = p;
    CHECK_EQ(raft_apply(r, &p->req, &buf, 1, apply_cb), 0);
    return raft_last_index(r);
}

static int reply_u64(struct pending *p, unsigned i, uint64_t *v)
{
    struct pt_cursor body;
    int st = pt_shard_reply_open(p->reply[i], PT_SHARD_WRITE_REPLY_MAX, &body);
    if (st == 0 && v) *v = pt_dec_u64(&body);
    return st;
}

static void check_identical(struct cluster *c)
{
    uint8_t *s0, *s;
    size_t l0, l;
    unsigned i;
    CHECK_OK(pt_shard_sm_snapshot(&c->sm[0], &s0, &l0));
    for (i = 1; i < N; i++) {
        CHECK_OK(pt_shard_sm_snapshot(&c->sm[i], &s, &l));
        CHECK_EQ(l, l0);
        CHECK_MEM(s, s0, l0);
        free(s);
    }
    free(s0);
}

TEST(shard_raft_replies_only_after_commit)
{
    struct cluster *c = cluster_start();
    struct pending p;
    struct pt_shard_req q = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = 9};
    unsigned leader = raft_fixture_leader_index(&c->f);
    raft_index idx;
    uint64_t id;
    unsigned i;
    /* Cut the leader off: its entry cannot commit, so no reply may come. */
    for (i = 0; i < N; i++)
        if (i != leader) raft_fixture_disconnect(&c->f, leader, i);
    idx = propose(c, &p, &q, 1, 100);
    raft_fixture_step_until_elapsed(&c->f, 200);
    CHECK_EQ(p.done, 0);
    for (i = 0; i < N; i++)
        if (i != leader) raft_fixture_reconnect(&c->f, leader, i);
    /* Reconnected in time: the entry commits and only now is the reply delivered. */
    CHECK(raft_fixture_step_until_applied(&c->f, N, idx, 10000));
    CHECK(p.done);
    CHECK_EQ(p.status, 0);
    CHECK_EQ(reply_u64(&p, 0, &id), 0);
    CHECK_EQ(id, PT_INODE_MAKE(0, 2));
    check_identical(c);
    cluster_stop(c);
}

TEST(shard_raft_batch_and_failover_keep_committed_entries)
{
    struct cluster *c = cluster_start();
    struct pending p;
    struct pt_shard_req reqs[4];
    uint64_t ids[16];
    unsigned nids = 0, i, round, leader;
    raft_index idx;
    for (round = 0; round < 3; round++) {
        for (i = 0; i < 4; i++) {
            memset(&reqs[i], 0, sizeof(reqs[i]));
            reqs[i].op = PT_SHARD_CONSTRUCT_FILE;
            reqs[i].cookie = round * 4 + i;
        }
        idx = propose(c, &p, reqs, 4, 1000 + round);
        CHECK(raft_fixture_step_until_applied(&c->f, N, idx, 10000));
        CHECK(p.done);
        CHECK_EQ(p.status, 0);
        CHECK_EQ(p.count, 4);
        for (i = 0; i < 4; i++)
            CHECK_EQ(reply_u64(&p, i, &ids[nids++]), 0);
    }
    /* Link them all, then kill the leader and keep going on the new one. */
    for (i = 0; i < nids; i++) {
        struct pt_shard_req l = {
            .op = PT_SHARD_LINK_FILE, .id = ids[i], .cookie = i, .target = PT_INODE_ROOT};
        l.name_len = (uint8_t)snprintf(l.name, sizeof(l.name), "f%u", i);
        idx = propose(c, &p, &l, 1, 2000 + i);
        CHECK(raft_fixture_step_until_applied(&c->f, N, idx, 10000));
        CHECK_EQ(reply_u64(&p, 0, NULL), 0);
    }
    leader = raft_fixture_leader_index(&c->f);
    raft_fixture_kill(&c->f, leader);
    CHECK(raft_fixture_step_until_has_no_leader(&c->f, 20000));
    CHECK(raft_fixture_step_until_has_leader(&c->f, 20000));
    CHECK(raft_fixture_leader_index(&c->f) != leader);
    /* Enough entries to compact the log (snapshot threshold 8): the dead replica must later
     * catch up from a snapshot. */
    for (i = 0; i < 20; i++) {
        struct pt_shard_req k = {.op = PT_SHARD_CONSTRUCT_FILE, .cookie = 100 + i};
        idx = propose(c, &p, &k, 1, 3000 + i);
        CHECK(raft_fixture_step_until_applied(&c->f, raft_fixture_leader_index(&c->f), idx, 10000));
        CHECK_EQ(reply_u64(&p, 0, NULL), 0);
    }
    raft_fixture_revive(&c->f, leader);
    CHECK(raft_fixture_step_until_applied(&c->f, N, idx, 30000));
    /* Every replica answers every committed name, and the stores are byte-identical. */
    for (i = 0; i < N; i++) {
        uint8_t req[300], rep[300];
        size_t rl;
        struct pt_cursor body;
        struct pt_shard_req lk = {
            .op = PT_SHARD_LOOKUP, .id = PT_INODE_ROOT, .name = "f11", .name_len = 3};
        int n = pt_shard_req_encode(&lk, req, sizeof(req));
        CHECK_OK(pt_shard_sm_query(&c->sm[i], req, (size_t)n, rep, sizeof(rep), &rl));
        CHECK_EQ(pt_shard_reply_open(rep, rl, &body), 0);
        CHECK_EQ(pt_dec_u64(&body), ids[11]);
    }
    check_identical(c);
    cluster_stop(c);
}
