/*
 * The registry group's state machine under Raft in the simulator: three replica cores with the
 * registry FSM (registry_fsm.c) on a lossy, duplicating, reordering network whose leader is cut
 * off now and then, while the current leader proposes block-service heartbeats (each a new
 * service id, each with a secret drawn from the seed). Checked after healing: every member
 * holds byte-identical state; every acknowledged heartbeat is there, with the secret its
 * acknowledgement returned; none refused with PT_ENOTLEADER (no effect) is there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/proto/ids.h"
#include "cluster/registry/registry.h"
#include "cluster/replica/raft_io.h"
#include "cluster/replica/replica.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "sim.h"
#include "test.h"

#define N 3
#define MAX_HB 2000

struct member {
    struct sim_proc *proc;
    struct raft_io io;
    struct pt_registry state;
    struct pt_registry_fsm fsm;
    struct pt_replica *rep;
    char raft_addr[32];
};

struct hb {
    uint64_t id;
    int calls, status;
    uint8_t secret[PT_REG_SECRET_SIZE]; /* the acknowledgement's */
};

struct group {
    struct sim *sim;
    struct member m[N];
    struct hb hbs[MAX_HB];
    unsigned nhb;
};

static int resolve(void *ctx, raft_id id, char *buf, size_t cap)
{
    (void)ctx;
    if (id < 1 || id > N) return -PT_EINVAL;
    snprintf(buf, cap, "g%u/raft", (unsigned)id - 1);
    return 0;
}

static void group_start(struct group *g, const struct sim_faults *f)
{
    unsigned i, j;
    g->sim = sim_new(test_seed(), f);
    for (i = 0; i < N; i++)
        snprintf(g->m[i].raft_addr, sizeof(g->m[i].raft_addr), "g%u/raft", i);
    for (i = 0; i < N; i++) {
        struct member *m = &g->m[i];
        struct pt_raft_io_config io;
        struct pt_replica_config rc;
        char name[16], err[200];
        snprintf(name, sizeof(name), "g%u", i);
        m->proc = sim_proc_add(g->sim, name);
        /* crashes need the restart hooks; this case's faults are the network's */
        sim_proc_set_faultable(m->proc, 0, 1, 1);
        pt_registry_init(&m->state, 10000);
        CHECK_OK(pt_registry_fsm_init(&m->fsm, &m->state));
        memset(&io, 0, sizeof(io));
        io.env = sim_proc_env(m->proc);
        io.cluster_id = 1;
        io.group = PT_RAFT_GROUP(3, 0);
        io.replicas = N;
        io.listen = m->raft_addr;
        io.resolve = resolve;
        CHECK_OK(pt_raft_io_init(&m->io, &io, err, sizeof(err)));
        memset(&rc, 0, sizeof(rc));
        rc.env = sim_proc_env(m->proc);
        rc.io = &m->io;
        rc.fsm = &m->fsm.fsm;
        rc.id = i + 1;
        rc.replicas = N;
        rc.snapshot_entries = 64; /* snapshots and their installs happen in the run */
        for (j = 0; j < N; j++)
            rc.addresses[j] = g->m[j].raft_addr;
        CHECK_OK(pt_replica_start(&m->rep, &rc));
    }
}

static void closed(void *ctx)
{
    struct member *m = ctx;
    pt_raft_io_free(&m->io);
    m->rep = NULL;
    sim_proc_crash(m->proc);
}

static void group_stop(struct group *g)
{
    unsigned i;
    for (i = 0; i < N; i++)
        if (g->m[i].rep) pt_replica_close(g->m[i].rep, closed, &g->m[i]);
    sim_run_until(g->sim, sim_now(g->sim) + 2000);
    for (i = 0; i < N; i++) {
        CHECK(g->m[i].rep == NULL);
        pt_registry_fsm_free(&g->m[i].fsm);
        pt_registry_free(&g->m[i].state);
    }
    sim_free(g->sim);
}

static int leader_of(struct group *g)
{
    unsigned i;
    for (i = 0; i < N; i++)
        if (g->m[i].rep && pt_replica_can_serve(g->m[i].rep)) return (int)i;
    return -1;
}

static void hb_done(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct hb *h = ctx;
    h->calls++;
    h->status = status;
    if (status == 0) {
        CHECK_EQ(len, 4u + PT_REG_SECRET_SIZE);
        CHECK_EQ(pt_get_le32(reply), 0u);
        memcpy(h->secret, reply + 4, PT_REG_SECRET_SIZE);
    }
}

/* Propose a heartbeat of a new block service at member l. */
static void propose(struct group *g, int l)
{
    struct pt_reg_blocks b;
    struct pt_cursor c;
    uint8_t body[512], item[PT_REGISTRY_ITEM_MAX], secret[PT_REG_SECRET_SIZE];
    struct hb *h;
    int n, rc;
    if (g->nhb == MAX_HB) return;
    h = &g->hbs[g->nhb];
    memset(h, 0, sizeof(*h));
    h->id = 1000 + g->nhb;
    memset(&b, 0, sizeof(b));
    b.id = h->id;
    snprintf(b.addr, sizeof(b.addr), "10.0.%u.%u:7500", (unsigned)(h->id >> 8) & 255,
             (unsigned)h->id & 255);
    snprintf(b.failure_domain, sizeof(b.failure_domain), "rack-%u", (unsigned)(h->id % 7));
    b.capacity = 1u << 30;
    pt_cursor_init(&c, body, sizeof(body));
    pt_reg_enc_blocks_heartbeat(&c, &b);
    CHECK(pt_cursor_ok(&c));
    sim_fill(g->sim, secret, sizeof(secret));
    n = pt_registry_item_encode(item, sizeof(item), PT_MSG_REG_BLOCKS_HEARTBEAT, body, c.pos,
                                secret);
    CHECK(n > 0);
    rc = pt_replica_propose(g->m[l].rep, item, (size_t)n, hb_done, h);
    if (rc == 0) {
        g->nhb++;
        return;
    }
    CHECK_EQ(rc, -PT_ENOTLEADER);
}

static void isolate(struct group *g, unsigned i, int blocked)
{
    unsigned j;
    for (j = 0; j < N; j++)
        if (j != i) {
            sim_block(g->sim, g->m[i].proc, g->m[j].proc, blocked);
            sim_block(g->sim, g->m[j].proc, g->m[i].proc, blocked);
        }
}

static int converged(void *ctx)
{
    struct group *g = ctx;
    int l = leader_of(g);
    unsigned i;
    raft_index target;
    if (l < 0) return 0;
    target = pt_replica_raft(g->m[l].rep)->commit_index;
    for (i = 0; i < N; i++)
        if (pt_replica_raft(g->m[i].rep)->last_applied < target) return 0;
    return 1;
}

TEST_T(registry_group_sim_members_agree_and_keep_acks, 300)
{
    static struct group g;
    struct sim_faults f;
    uint8_t *enc[N];
    size_t len[N];
    uint64_t end;
    unsigned i, acked = 0, refused = 0;
    int cut = -1;
    memset(&g, 0, sizeof(g));
    sim_faults_none(&f);
    f.delay_min_ms = 1;
    f.delay_max_ms = 15;
    f.loss_ppm = 30000;
    f.dup_ppm = 20000;
    f.reorder_ppm = 50000;
    f.reorder_max_ms = 30;
    group_start(&g, &f);
    CHECK(sim_run_until_cond(g.sim, 20000, converged, &g));
    end = sim_now(g.sim) + (test_soak() ? 120000 : 20000);
    while (sim_now(g.sim) < end) {
        int l = leader_of(&g);
        if (l >= 0) {
            unsigned k = 1 + (unsigned)sim_below(g.sim, 3);
            while (k--)
                propose(&g, l);
        }
        /* now and then the leader is cut off for a while (then healed) */
        if (cut < 0 && l >= 0 && sim_chance(g.sim, 20000)) {
            cut = l;
            isolate(&g, (unsigned)l, 1);
        } else if (cut >= 0 && sim_chance(g.sim, 8000)) {
            isolate(&g, (unsigned)cut, 0);
            cut = -1;
        }
        sim_run_until(g.sim, sim_now(g.sim) + 20 + sim_below(g.sim, 40));
    }
    if (cut >= 0) isolate(&g, (unsigned)cut, 0);
    {
        struct sim_faults none;
        sim_faults_none(&none);
        sim_set_faults(g.sim, &none);
    }
    sim_heal(g.sim);
    /* one more heartbeat through a leader so every member's commit catches up */
    CHECK(sim_run_until_cond(g.sim, sim_now(g.sim) + 20000, converged, &g));
    propose(&g, leader_of(&g));
    sim_run_until(g.sim, sim_now(g.sim) + 1000);
    CHECK(sim_run_until_cond(g.sim, sim_now(g.sim) + 20000, converged, &g));
    for (i = 0; i < N; i++)
        CHECK_OK(pt_registry_encode(&g.m[i].state, &enc[i], &len[i]));
    for (i = 1; i < N; i++) {
        CHECK_EQ(len[i], len[0]);
        CHECK_MEM(enc[i], enc[0], len[0]);
    }
    for (i = 0; i < N; i++)
        free(enc[i]);
    for (i = 0; i < g.nhb; i++) {
        struct hb *h = &g.hbs[i];
        uint8_t secret[PT_REG_SECRET_SIZE];
        int rc = pt_registry_block_secret(&g.m[0].state, h->id, secret);
        CHECK_MSG(h->calls == 1, "heartbeat %u: %d callbacks", i, h->calls);
        if (h->status == 0) {
            acked++;
            CHECK_MSG(rc == 0, "acknowledged heartbeat %u lost", i);
            CHECK_MEM(secret, h->secret, PT_REG_SECRET_SIZE);
        } else if (h->status == -PT_ENOTLEADER) {
            refused++;
            CHECK_MSG(rc == -PT_ENOENT, "heartbeat %u refused but applied", i);
        }
    }
    test_log("%u heartbeats: %u acknowledged, %u refused, %u in doubt", g.nhb, acked, refused,
             g.nhb - acked - refused);
    CHECK(acked > 100);
    group_stop(&g);
}
