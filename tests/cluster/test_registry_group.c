/*
 * The replicated registry: its state machine (log items applied at the leader time stamped in
 * each entry: two replicas applying one log reach the same bytes; a new block service's
 * secret comes from the item; a malformed item fails alone), the location list codec, and a
 * group of three `petrel registry --group` processes (quorum writes, follower reads with the
 * staleness they report, the leader killed while clients keep registering and finding
 * services, a lone member refusing writes and, beyond its staleness bound, reads).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/client/registry_client.h"
#include "cluster/proto/ids.h"
#include "cluster/registry/registry.h"
#include "cluster/replica/entry.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "servers_fixture.h"
#include "test.h"

/* ---- the state machine ------------------------------------------------------------------------
 */

/* A log entry (replica/entry.h envelope) at leader time `t` holding the items given. */
static size_t entry_build(uint8_t *buf, size_t cap, uint64_t t, const uint8_t items[][256],
                          const int *lens, unsigned n)
{
    struct pt_shard_entry_builder b;
    unsigned i;
    int len;
    pt_shard_entry_init(&b, buf, cap, t);
    for (i = 0; i < n; i++)
        CHECK_OK(pt_shard_entry_add_raw(&b, items[i], (size_t)lens[i]));
    len = pt_shard_entry_finish(&b);
    CHECK(len > 0);
    return (size_t)len;
}

static int shard_item(uint8_t *out, uint8_t shard, uint8_t replica, uint8_t leader,
                      const char *addr)
{
    struct pt_reg_replica hb;
    struct pt_cursor c;
    uint8_t body[200];
    memset(&hb, 0, sizeof(hb));
    hb.shard = shard;
    hb.replica = replica;
    hb.leader = leader;
    snprintf(hb.addr, sizeof(hb.addr), "%s", addr);
    pt_cursor_init(&c, body, sizeof(body));
    pt_reg_enc_shard_heartbeat(&c, &hb);
    CHECK(pt_cursor_ok(&c));
    return pt_registry_item_encode(out, 256, PT_MSG_REG_SHARD_HEARTBEAT, body, c.pos, NULL);
}

static int blocks_item(uint8_t *out, uint64_t id, const char *addr, uint8_t secret_byte)
{
    struct pt_reg_blocks hb;
    struct pt_cursor c;
    uint8_t body[300], secret[PT_REG_SECRET_SIZE];
    memset(&hb, 0, sizeof(hb));
    hb.id = id;
    snprintf(hb.addr, sizeof(hb.addr), "%s", addr);
    snprintf(hb.failure_domain, sizeof(hb.failure_domain), "rack-%llu", (unsigned long long)id);
    hb.capacity = 1000;
    memset(secret, secret_byte, sizeof(secret));
    pt_cursor_init(&c, body, sizeof(body));
    pt_reg_enc_blocks_heartbeat(&c, &hb);
    CHECK(pt_cursor_ok(&c));
    return pt_registry_item_encode(out, 256, PT_MSG_REG_BLOCKS_HEARTBEAT, body, c.pos, secret);
}

static int32_t reply_status(const struct pt_shard_apply_out *out, unsigned i)
{
    return (int32_t)pt_get_le32(out->reply[i]);
}

TEST(registry_group_fsm_applies_at_leader_time)
{
    static uint8_t entry[8192];
    static struct pt_shard_apply_out out;
    uint8_t items[4][256];
    int lens[4];
    struct pt_registry a, b;
    struct pt_reg_replica v[4];
    struct pt_reg_blocks bl[2];
    uint8_t secret[PT_REG_SECRET_SIZE], *enc_a, *enc_b;
    size_t len, la, lb;
    uint64_t t;
    pt_registry_init(&a, 1000);
    pt_registry_init(&b, 1000);
    lens[0] = shard_item(items[0], 0, 0, 1, "127.0.0.1:7000");
    lens[1] = shard_item(items[1], 0, 1, 0, "127.0.0.1:7001");
    lens[2] = blocks_item(items[2], 42, "127.0.0.1:7100", 0xab);
    lens[3] = 2; /* a tick */
    CHECK_EQ(pt_registry_item_encode(items[3], 256, PT_REGISTRY_ITEM_TICK, NULL, 0, NULL), 2);
    len = entry_build(entry, sizeof(entry), 5000000, items, lens, 4);
    /* Two replicas apply the same entry at different local times: same state. */
    CHECK_OK(pt_registry_apply(&a, entry, len, &out, &t));
    CHECK_EQ(t, 5000000u);
    CHECK_EQ(out.count, 4u);
    CHECK_EQ(reply_status(&out, 0), 0);
    CHECK_EQ(reply_status(&out, 2), 0);
    CHECK_EQ(out.len[2], 4u + PT_REG_SECRET_SIZE);
    CHECK_EQ(out.reply[2][4], 0xab);
    CHECK_OK(pt_registry_apply(&b, entry, len, &out, &t));
    CHECK_OK(pt_registry_encode(&a, &enc_a, &la));
    CHECK_OK(pt_registry_encode(&b, &enc_b, &lb));
    CHECK_EQ(la, lb);
    CHECK_MEM(enc_a, enc_b, la);
    free(enc_a);
    free(enc_b);
    /* Heartbeat times are the entry's: 400 ms after it the entries are 400 ms old. */
    CHECK_EQ(pt_registry_list_shards(&a, PT_REG_ALL_SHARDS, 5000400, v, 4), 2u);
    CHECK_EQ(v[0].age_ms, 400u);
    CHECK(!v[0].stale);
    CHECK_EQ(pt_registry_list_shards(&a, PT_REG_ALL_SHARDS, 5001500, v, 4), 2u);
    CHECK(v[0].stale);
    /* A known block service keeps its secret whatever the next item carries. */
    lens[0] = blocks_item(items[0], 42, "127.0.0.1:7101", 0xcd);
    len = entry_build(entry, sizeof(entry), 5002000, items, lens, 1);
    CHECK_OK(pt_registry_apply(&a, entry, len, &out, &t));
    CHECK_EQ(out.reply[0][4], 0xab);
    CHECK_OK(pt_registry_block_secret(&a, 42, secret));
    CHECK_EQ(secret[0], 0xab);
    CHECK_EQ(pt_registry_list_blocks(&a, 5002000, bl, 2), 1u);
    CHECK(strcmp(bl[0].addr, "127.0.0.1:7101") == 0);
    pt_registry_free(&a);
    pt_registry_free(&b);
}

TEST(registry_group_fsm_bad_items_fail_alone)
{
    static uint8_t entry[8192];
    static struct pt_shard_apply_out out;
    uint8_t items[4][256];
    int lens[4];
    struct pt_registry r;
    size_t len;
    uint64_t t;
    pt_registry_init(&r, 1000);
    lens[0] = shard_item(items[0], 1, 2, 1, "127.0.0.1:7012");
    lens[1] = shard_item(items[1], 1, 0, 0, "127.0.0.1:7010");
    lens[1] -= 3;                                           /* truncated body */
    lens[2] = shard_item(items[2], 1, 1, 0, "127.0.0.1:0"); /* no port: refused */
    items[3][0] = 0x99;
    items[3][1] = 0x01; /* unknown kind */
    lens[3] = 2;
    len = entry_build(entry, sizeof(entry), 77, items, lens, 4);
    CHECK_OK(pt_registry_apply(&r, entry, len, &out, &t));
    CHECK_EQ(out.count, 4u);
    CHECK_EQ(reply_status(&out, 0), 0);
    CHECK_EQ(reply_status(&out, 1), -PT_EPROTO);
    CHECK_EQ(reply_status(&out, 2), -PT_EINVAL);
    CHECK_EQ(reply_status(&out, 3), -PT_EPROTO);
    CHECK_EQ(pt_registry_list_shards(&r, PT_REG_ALL_SHARDS, 77, NULL, 0), 1u);
    /* Not an envelope: nothing applied, no time. */
    entry[0] = 9;
    CHECK_OK(pt_registry_apply(&r, entry, len, &out, &t));
    CHECK_EQ(out.count, 0u);
    CHECK_EQ(t, 0u);
    /* A block heartbeat item must carry a secret. */
    CHECK_EQ(
        pt_registry_item_encode(items[0], 256, PT_MSG_REG_BLOCKS_HEARTBEAT, items[1], 10, NULL),
        -PT_EINVAL);
    CHECK_EQ(pt_registry_item_encode(items[0], 256, PT_MSG_REG_LIST_CDC, NULL, 0, NULL),
             -PT_EINVAL);
    pt_registry_free(&r);
}

/* The largest heartbeat a service may send still fits one log item (the server's buffer). */
TEST(registry_group_largest_heartbeat_fits_an_item)
{
    struct pt_reg_blocks hb;
    struct pt_cursor c;
    uint8_t body[2048], item[PT_REGISTRY_ITEM_MAX], secret[PT_REG_SECRET_SIZE] = {0};
    memset(&hb, 0, sizeof(hb));
    hb.id = 1;
    memset(hb.addr, 'a', sizeof(hb.addr) - 1);
    memset(hb.failure_domain, 'd', sizeof(hb.failure_domain) - 1);
    memset(hb.http, 'h', sizeof(hb.http) - 1);
    pt_cursor_init(&c, body, sizeof(body));
    pt_reg_enc_blocks_heartbeat(&c, &hb);
    CHECK(pt_cursor_ok(&c));
    CHECK(pt_registry_item_encode(item, sizeof(item), PT_MSG_REG_BLOCKS_HEARTBEAT, body, c.pos,
                                  secret) > 0);
}

TEST(registry_location_split)
{
    char a[PT_REG_MAX_REPLICAS][PT_REG_ADDR_MAX];
    char longname[300];
    CHECK_EQ(pt_reg_location_split("127.0.0.1:1", a, 5), 1);
    CHECK(strcmp(a[0], "127.0.0.1:1") == 0);
    CHECK_EQ(pt_reg_location_split("h1:1,h2:2,[::1]:3", a, 5), 3);
    CHECK(strcmp(a[1], "h2:2") == 0);
    CHECK(strcmp(a[2], "[::1]:3") == 0);
    CHECK_EQ(pt_reg_location_split("a:1,,b:2", a, 5), -PT_EINVAL);
    CHECK_EQ(pt_reg_location_split("a:1,", a, 5), -PT_EINVAL);
    CHECK_EQ(pt_reg_location_split("", a, 5), -PT_EINVAL);
    CHECK_EQ(pt_reg_location_split("a:1,b:2,c:3,d:4,e:5,f:6", a, 5), -PT_EINVAL);
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    CHECK_EQ(pt_reg_location_split(longname, a, 5), -PT_EINVAL);
}

/* ---- a group of processes ------------------------------------------------------------------- */

#define MEMBERS 3

struct group {
    struct server_proc p[MEMBERS];
    char addrs[MEMBERS][32];
    char location[128];
    char dirs[MEMBERS][600];
};

/* Three loopback ports nothing listens on now (the members bind them next). */
static void group_ports(struct group *g)
{
    int fds[MEMBERS], i;
    g->location[0] = 0;
    for (i = 0; i < MEMBERS; i++) {
        struct sockaddr_in a;
        socklen_t alen = sizeof(a);
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(fds[i] >= 0 && bind(fds[i], (struct sockaddr *)&a, sizeof(a)) == 0);
        CHECK(getsockname(fds[i], (struct sockaddr *)&a, &alen) == 0);
        snprintf(g->addrs[i], sizeof(g->addrs[i]), "127.0.0.1:%u", ntohs(a.sin_port));
        snprintf(g->location + strlen(g->location), sizeof(g->location) - strlen(g->location),
                 "%s%s", i ? "," : "", g->addrs[i]);
    }
    for (i = 0; i < MEMBERS; i++)
        close(fds[i]);
}

static void member_start(struct group *g, int i)
{
    char replica[8];
    const char *args[] = {"registry",  "--dir",         g->dirs[i], "--group",
                          g->location, "--replica",     replica,    "--max-staleness-ms",
                          "400",       "--stale-after", "5",        NULL};
    snprintf(replica, sizeof(replica), "%d", i);
    CHECK_MSG(proc_start(&g->p[i], 1, args) == 0, "registry member %d did not start", i);
}

static void group_start(struct group *g)
{
    int i;
    memset(g, 0, sizeof(*g));
    group_ports(g);
    for (i = 0; i < MEMBERS; i++) {
        snprintf(g->dirs[i], sizeof(g->dirs[i]), "%s/reg-%d", test_tmpdir(), i);
        member_start(g, i);
    }
}

static void group_stop(struct group *g)
{
    int i;
    for (i = 0; i < MEMBERS; i++)
        if (g->p[i].pid > 0 && proc_alive(&g->p[i])) proc_stop(&g->p[i], SIGKILL);
}

/* The member that serves as leader (-1 while none does), asking each live member. */
static int group_leader(struct group *g)
{
    struct pt_call_opts one = {500, 1, 0};
    struct pt_reg_info info;
    int i;
    for (i = 0; i < MEMBERS; i++)
        if (proc_alive(&g->p[i]) && pt_reg_info(g->addrs[i], &info, &one) == 0 && info.serving) {
            CHECK_EQ(info.replica, (unsigned)i);
            CHECK_EQ(info.replicas, (unsigned)MEMBERS);
            CHECK_EQ(info.staleness_ms, 0u);
            return i;
        }
    return -1;
}

static int wait_leader(struct group *g)
{
    uint64_t start = pt_now_ms();
    int l;
    while ((l = group_leader(g)) < 0) {
        CHECK_MSG(pt_now_ms() - start < 30000, "no registry leader within 30 s");
        usleep(20000);
    }
    return l;
}

static struct pt_reg_replica hb_of(uint8_t shard, uint8_t replica, const char *addr)
{
    struct pt_reg_replica hb;
    memset(&hb, 0, sizeof(hb));
    hb.shard = shard;
    hb.replica = replica;
    hb.leader = replica == 0;
    snprintf(hb.addr, sizeof(hb.addr), "%s", addr);
    return hb;
}

/* Whether member i lists shard replica (shard, replica) at addr (a read of that member only). */
static int member_lists(struct group *g, int i, uint8_t shard, uint8_t replica, const char *addr)
{
    struct pt_call_opts one = {500, 1, 0};
    struct pt_reg_replica *v = NULL;
    size_t n = 0, k;
    int found = 0;
    if (pt_reg_list_shards(g->addrs[i], shard, &v, &n, &one) != 0) return 0;
    for (k = 0; k < n; k++)
        found |= v[k].replica == replica && strcmp(v[k].addr, addr) == 0;
    free(v);
    return found;
}

TEST_T(registry_group_survives_leader_loss, 180)
{
    struct group g;
    struct pt_call_opts opts = {1000, 20000, 0};
    struct pt_reg_replica hb, *v = NULL;
    struct pt_reg_blocks bhb;
    struct pt_reg_info info;
    struct pt_call_opts one = {500, 1, 0};
    uint8_t secret[PT_REG_SECRET_SIZE], secret2[PT_REG_SECRET_SIZE];
    size_t n = 0;
    uint64_t start;
    int leader, next, i, f;
    group_start(&g);
    leader = wait_leader(&g);
    /* A write through the whole location lands on the leader, committed on a quorum. */
    hb = hb_of(3, 0, "127.0.0.1:9001");
    CHECK_OK(pt_reg_heartbeat_shard(g.location, &hb, &opts));
    memset(&bhb, 0, sizeof(bhb));
    bhb.id = 77;
    snprintf(bhb.addr, sizeof(bhb.addr), "127.0.0.1:9100");
    snprintf(bhb.failure_domain, sizeof(bhb.failure_domain), "rack-a");
    CHECK_OK(pt_reg_heartbeat_blocks(g.location, &bhb, secret, &opts));
    /* A write sent to a follower alone is redirected to the leader, not applied there. */
    f = (leader + 1) % MEMBERS;
    {
        struct pt_reply rep;
        uint8_t body[200];
        struct pt_cursor c;
        pt_cursor_init(&c, body, sizeof(body));
        pt_reg_enc_shard_heartbeat(&c, &hb);
        CHECK_EQ(pt_call_buf(g.addrs[f], PT_MSG_REG_SHARD_HEARTBEAT, body, c.pos, &one, &rep),
                 -PT_ENOTLEADER);
        CHECK(strcmp(rep.error.leader, g.addrs[leader]) == 0);
        pt_reply_free(&rep);
    }
    /* Every member answers reads, followers with the staleness they report. */
    start = pt_now_ms();
    for (i = 0; i < MEMBERS; i++) {
        /* A follower learns the commit at the leader's next message: it may lag that much. */
        while (!member_lists(&g, i, 3, 0, "127.0.0.1:9001") ||
               pt_reg_block_secret(g.addrs[i], 77, secret2, &one) != 0) {
            CHECK_MSG(pt_now_ms() - start < 10000, "member %d never listed the heartbeats", i);
            usleep(20000);
        }
        CHECK_MEM(secret, secret2, PT_REG_SECRET_SIZE);
        CHECK_OK(pt_reg_info(g.addrs[i], &info, &one));
        CHECK(info.staleness_ms <= 400);
        CHECK(strcmp(info.leader, g.addrs[leader]) == 0);
    }
    /* The leader dies: clients naming the group keep registering and finding services. */
    proc_stop(&g.p[leader], SIGKILL);
    hb = hb_of(3, 1, "127.0.0.1:9002");
    CHECK_OK(pt_reg_heartbeat_shard(g.location, &hb, &opts));
    CHECK_OK(pt_reg_list_shards(g.location, 3, &v, &n, &opts));
    CHECK_EQ(n, 2u);
    free(v);
    next = wait_leader(&g);
    CHECK(next != leader);
    /* The secret drawn under the old leader survived it (it was committed). */
    CHECK_OK(pt_reg_heartbeat_blocks(g.location, &bhb, secret2, &opts));
    CHECK_MEM(secret, secret2, PT_REG_SECRET_SIZE);
    /* The old leader comes back as a follower and catches up. */
    member_start(&g, leader);
    start = pt_now_ms();
    while (!member_lists(&g, leader, 3, 1, "127.0.0.1:9002")) {
        CHECK_MSG(pt_now_ms() - start < 20000, "the restarted member never caught up");
        usleep(20000);
    }
    /* SIGTERM to the leader: it hands over (raft_transfer) and exits cleanly, and the group
     * goes on under the member it handed to. */
    next = wait_leader(&g);
    CHECK_EQ(proc_stop(&g.p[next], SIGTERM), 0);
    hb = hb_of(3, 2, "127.0.0.1:9003");
    CHECK_OK(pt_reg_heartbeat_shard(g.location, &hb, &opts));
    group_stop(&g);
}

TEST_T(registry_group_minority_refuses_writes, 180)
{
    struct group g;
    struct pt_call_opts opts = {1000, 20000, 0}, one = {500, 1, 0}, short_budget = {300, 1500, 0};
    struct pt_reg_replica hb, *v = NULL;
    struct pt_reg_info info;
    size_t n = 0;
    uint64_t start;
    int leader, lone, i;
    group_start(&g);
    leader = wait_leader(&g);
    hb = hb_of(1, 0, "127.0.0.1:9011");
    CHECK_OK(pt_reg_heartbeat_shard(g.location, &hb, &opts));
    /* Two of three die: the lone member is a minority. */
    lone = (leader + 1) % MEMBERS;
    for (i = 0; i < MEMBERS; i++)
        if (i != lone) proc_stop(&g.p[i], SIGKILL);
    hb = hb_of(1, 1, "127.0.0.1:9012");
    CHECK(pt_reg_heartbeat_shard(g.location, &hb, &short_budget) != 0);
    /* Beyond its staleness bound it refuses reads too (and says how stale it is). */
    start = pt_now_ms();
    for (;;) {
        CHECK_OK(pt_reg_info(g.addrs[lone], &info, &one));
        if (info.staleness_ms > 400) break;
        CHECK_MSG(pt_now_ms() - start < 10000, "staleness never grew");
        usleep(50000);
    }
    CHECK(!info.serving);
    CHECK(pt_reg_list_shards(g.addrs[lone], 1, &v, &n, &one) != 0);
    free(v);
    /* Nothing acknowledged was lost, nothing refused was applied: a member restarted makes a
     * majority again, which has the first heartbeat and not the refused one. */
    member_start(&g, leader);
    wait_leader(&g);
    CHECK_OK(pt_reg_list_shards(g.location, 1, &v, &n, &opts));
    CHECK_EQ(n, 1u);
    CHECK(strcmp(v[0].addr, "127.0.0.1:9011") == 0);
    free(v);
    group_stop(&g);
}
