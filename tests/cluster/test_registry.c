/*
 * The registry: the state machine driven with explicit times (register, heartbeat, leader
 * hints, staleness, bad heartbeats), its state file (persist, reload, every truncation and
 * bit flip refused, dynamic-ports wipe), its message codec, and the server in-process over
 * loopback (calls, malformed bodies, unknown kinds).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/client/registry_client.h"
#include "cluster/storage/durable.h"
#include "cluster/registry/registry.h"
#include "petrel/common.h"
#include "servers_fixture.h"
#include "test.h"

static struct pt_reg_replica replica(uint8_t shard, uint8_t r, uint8_t leader, const char *addr)
{
    struct pt_reg_replica v;
    memset(&v, 0, sizeof(v));
    v.shard = shard;
    v.replica = r;
    v.leader = leader;
    snprintf(v.addr, sizeof(v.addr), "%s", addr);
    return v;
}

static struct pt_reg_blocks blocks(uint64_t id, const char *fd, const char *addr, uint64_t used)
{
    struct pt_reg_blocks b;
    memset(&b, 0, sizeof(b));
    b.id = id;
    snprintf(b.failure_domain, sizeof(b.failure_domain), "%s", fd);
    snprintf(b.addr, sizeof(b.addr), "%s", addr);
    b.capacity = 1000000;
    b.used = used;
    b.blocks = used / 10;
    return b;
}

static const uint8_t secret_a[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t secret_b[16] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};

/* A registry with two shards of three replicas, two CDC replicas and two block services. */
static void populate(struct pt_registry *r, uint64_t now)
{
    uint8_t s, i, out[16];
    struct pt_reg_replica v;
    struct pt_reg_blocks b;
    char addr[32];
    for (s = 0; s < 2; s++)
        for (i = 0; i < 3; i++) {
            snprintf(addr, sizeof(addr), "127.0.0.1:%u", 7000u + s * 10u + i);
            v = replica(s, i, i == 1, addr);
            CHECK_OK(pt_registry_shard_heartbeat(r, &v, now));
        }
    for (i = 0; i < 2; i++) {
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", 7100u + i);
        v = replica(0, i, i == 0, addr);
        CHECK_OK(pt_registry_cdc_heartbeat(r, &v, now));
    }
    b = blocks(0xb2, "rack-b", "127.0.0.1:7202", 500);
    CHECK_OK(pt_registry_blocks_heartbeat(r, &b, now, secret_b, out));
    b = blocks(0xa1, "rack-a", "127.0.0.1:7201", 100);
    CHECK_OK(pt_registry_blocks_heartbeat(r, &b, now, secret_a, out));
}

TEST(registry_register_list_and_leader_hints)
{
    struct pt_registry r;
    struct pt_reg_replica v[8], hb;
    struct pt_reg_blocks b[4];
    uint8_t secret[16];
    pt_registry_init(&r, 5000);
    populate(&r, 1000);
    CHECK_EQ(pt_registry_list_shards(&r, PT_REG_ALL_SHARDS, 1000, v, 8), 6);
    CHECK(v[0].shard == 0 && v[0].replica == 0 && v[5].shard == 1 && v[5].replica == 2);
    CHECK(strcmp(v[4].addr, "127.0.0.1:7011") == 0 && v[4].leader);
    CHECK(!v[3].leader && !v[5].leader);
    CHECK_EQ(pt_registry_list_shards(&r, 1, 1000, v, 8), 3);
    CHECK_EQ(v[0].shard, 1);
    CHECK_EQ(pt_registry_list_cdc(&r, 1000, v, 8), 2);
    CHECK(v[0].leader && !v[1].leader);
    /* A new leadership claim withdraws the old one in the same group only. */
    hb = replica(1, 2, 1, "127.0.0.1:7012");
    CHECK_OK(pt_registry_shard_heartbeat(&r, &hb, 1100));
    pt_registry_list_shards(&r, PT_REG_ALL_SHARDS, 1100, v, 8);
    CHECK(!v[4].leader && v[5].leader && v[1].leader);
    /* Block services are listed by id, with their usage; the first secret sticks. */
    CHECK_EQ(pt_registry_list_blocks(&r, 1000, b, 4), 2);
    CHECK_EQ(b[0].id, 0xa1);
    CHECK(strcmp(b[0].failure_domain, "rack-a") == 0);
    CHECK_EQ(b[1].used, 500);
    b[0].used = 200;
    CHECK_OK(pt_registry_blocks_heartbeat(&r, &b[0], 1200, secret_b, secret));
    CHECK_MEM(secret, secret_a, 16);
    CHECK_OK(pt_registry_block_secret(&r, 0xa1, secret));
    CHECK_MEM(secret, secret_a, 16);
    CHECK_EQ(pt_registry_block_secret(&r, 0xdead, secret), -PT_ENOENT);
    /* An address change is an update, not a second entry. */
    hb = replica(0, 0, 0, "127.0.0.1:9999");
    CHECK_OK(pt_registry_shard_heartbeat(&r, &hb, 1300));
    CHECK_EQ(pt_registry_list_shards(&r, 0, 1300, v, 8), 3);
    CHECK(strcmp(v[0].addr, "127.0.0.1:9999") == 0);
    pt_registry_free(&r);
}

TEST(registry_stale_after_silence)
{
    struct pt_registry r;
    struct pt_reg_replica v[8], hb;
    struct pt_reg_blocks b[4];
    pt_registry_init(&r, 5000);
    populate(&r, 1000);
    pt_registry_list_shards(&r, PT_REG_ALL_SHARDS, 6000, v, 8);
    CHECK(!v[0].stale);
    CHECK_EQ(v[0].age_ms, 5000);
    hb = replica(0, 0, 0, "127.0.0.1:7000");
    CHECK_OK(pt_registry_shard_heartbeat(&r, &hb, 5500));
    pt_registry_list_shards(&r, PT_REG_ALL_SHARDS, 6001, v, 8);
    CHECK(!v[0].stale && v[1].stale && v[5].stale);
    pt_registry_list_blocks(&r, 6001, b, 4);
    CHECK(b[0].stale && b[1].stale);
    pt_registry_free(&r);
}

TEST(registry_bad_heartbeats_change_nothing)
{
    struct pt_registry r;
    struct pt_reg_replica hb;
    struct pt_reg_blocks b;
    uint8_t secret[16];
    pt_registry_init(&r, 5000);
    hb = replica(0, 0, 0, "127.0.0.1:0");
    CHECK_EQ(pt_registry_shard_heartbeat(&r, &hb, 1), -PT_EINVAL);
    hb = replica(0, 0, 0, "not an address");
    CHECK_EQ(pt_registry_shard_heartbeat(&r, &hb, 1), -PT_EINVAL);
    hb = replica(0, PT_REG_MAX_REPLICAS, 0, "127.0.0.1:1");
    CHECK_EQ(pt_registry_cdc_heartbeat(&r, &hb, 1), -PT_EINVAL);
    b = blocks(0, "x", "127.0.0.1:1", 0);
    CHECK_EQ(pt_registry_blocks_heartbeat(&r, &b, 1, secret_a, secret), -PT_EINVAL);
    b = blocks(5, "", "127.0.0.1:1", 0);
    CHECK_EQ(pt_registry_blocks_heartbeat(&r, &b, 1, secret_a, secret), -PT_EINVAL);
    CHECK_EQ(r.count, 0);
    CHECK(!r.needs_save);
    pt_registry_free(&r);
}

TEST(registry_persist_reload)
{
    struct pt_registry r, back;
    struct pt_reg_replica v1[8], v2[8];
    struct pt_reg_blocks b1[4], b2[4];
    uint8_t secret[16];
    const char *dir = test_tmpdir();
    pt_registry_init(&r, 5000);
    populate(&r, 1000);
    CHECK(r.needs_save && r.structural);
    CHECK_OK(pt_registry_save(&r, dir));
    CHECK(!r.needs_save);
    pt_registry_init(&back, 5000);
    CHECK_OK(pt_registry_load(&back, dir, 90000));
    CHECK_EQ(pt_registry_list_shards(&back, PT_REG_ALL_SHARDS, 90000, v2, 8), 6);
    pt_registry_list_shards(&r, PT_REG_ALL_SHARDS, 1000, v1, 8);
    for (int i = 0; i < 6; i++) {
        CHECK(strcmp(v1[i].addr, v2[i].addr) == 0);
        CHECK_EQ(v1[i].leader, v2[i].leader);
        CHECK(!v2[i].stale); /* counted as seen at load time */
    }
    CHECK_EQ(pt_registry_list_cdc(&back, 90000, v2, 8), 2);
    CHECK_EQ(pt_registry_list_blocks(&back, 90000, b2, 4), 2);
    pt_registry_list_blocks(&r, 1000, b1, 4);
    CHECK(strcmp(b1[1].addr, b2[1].addr) == 0 && b1[1].used == b2[1].used);
    CHECK_OK(pt_registry_block_secret(&back, 0xb2, secret));
    CHECK_MEM(secret, secret_b, 16);
    /* A missing file is an empty registry. */
    pt_registry_free(&back);
    pt_registry_init(&back, 5000);
    CHECK_OK(pt_registry_load(&back, "/nonexistent-petrel-dir", 1));
    CHECK_EQ(back.count, 0);
    pt_registry_free(&back);
    pt_registry_free(&r);
}

TEST(registry_state_file_damage_refused)
{
    struct pt_registry r, back;
    uint8_t *buf;
    size_t len, i;
    pt_registry_init(&r, 5000);
    populate(&r, 1000);
    CHECK_OK(pt_registry_encode(&r, &buf, &len));
    pt_registry_init(&back, 5000);
    CHECK_OK(pt_registry_decode(&back, buf, len, 5));
    CHECK_EQ(back.count, r.count);
    for (i = 0; i < len; i++)
        CHECK_EQ(pt_registry_decode(&back, buf, i, 5), -PT_ECORRUPT);
    for (i = 0; i < len * 8; i++) {
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        CHECK(pt_registry_decode(&back, buf, len, 5) < 0);
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    CHECK_EQ(back.count, r.count); /* failed loads left the last good state */
    free(buf);
    pt_registry_free(&back);
    pt_registry_free(&r);
}

TEST(registry_dynamic_ports_wipe)
{
    struct pt_registry r;
    struct pt_reg_replica v[8], hb;
    struct pt_reg_blocks b[4];
    uint8_t secret[16];
    pt_registry_init(&r, 5000);
    populate(&r, 1000);
    CHECK_OK(pt_registry_save(&r, test_tmpdir()));
    pt_registry_free(&r);
    pt_registry_init(&r, 5000);
    CHECK_OK(pt_registry_load(&r, test_tmpdir(), 2000));
    pt_registry_wipe_ports(&r);
    CHECK_EQ(pt_registry_list_shards(&r, PT_REG_ALL_SHARDS, 2000, v, 8), 6);
    for (int i = 0; i < 6; i++)
        CHECK(v[i].addr[0] == 0 && v[i].stale && !v[i].leader);
    pt_registry_list_blocks(&r, 2000, b, 4);
    CHECK(b[0].addr[0] == 0 && b[0].stale);
    /* Secrets survive the wipe: blocks already written keep verifying. */
    CHECK_OK(pt_registry_block_secret(&r, 0xa1, secret));
    CHECK_MEM(secret, secret_a, 16);
    /* A fresh heartbeat brings one replica back with its new address. */
    hb = replica(0, 1, 1, "127.0.0.1:45000");
    CHECK_OK(pt_registry_shard_heartbeat(&r, &hb, 2100));
    pt_registry_list_shards(&r, 0, 2100, v, 8);
    CHECK(strcmp(v[1].addr, "127.0.0.1:45000") == 0 && !v[1].stale && v[1].leader);
    CHECK(v[0].stale && v[0].addr[0] == 0);
    /* The wipe is persisted at once: a crash right after it does not resurrect old ports. */
    CHECK_OK(pt_registry_save(&r, test_tmpdir()));
    pt_registry_free(&r);
    pt_registry_init(&r, 5000);
    CHECK_OK(pt_registry_load(&r, test_tmpdir(), 3000));
    pt_registry_list_shards(&r, 0, 3000, v, 8);
    CHECK(v[0].addr[0] == 0 && strcmp(v[1].addr, "127.0.0.1:45000") == 0);
    pt_registry_free(&r);
}

TEST(registry_list_codec_rejects_malformed)
{
    uint8_t buf[1024];
    struct pt_cursor c;
    struct pt_reg_replica v = replica(3, 2, 1, "127.0.0.1:1"), *out;
    struct pt_reg_blocks b = blocks(7, "fd", "127.0.0.1:2", 3), *bout;
    size_t n, len, cut;
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_enc_u32(&c, 2);
    pt_reg_enc_replica_entry(&c, &v);
    pt_reg_enc_replica_entry(&c, &v);
    len = c.pos;
    CHECK_OK(pt_reg_decode_replica_list(buf, len, &out, &n));
    CHECK(n == 2 && out[1].shard == 3 && out[1].leader && strcmp(out[1].addr, "127.0.0.1:1") == 0);
    free(out);
    for (cut = 0; cut < len; cut++)
        CHECK_EQ(pt_reg_decode_replica_list(buf, cut, &out, &n), -PT_EPROTO);
    pt_put_le32(buf, 0xffffffffu); /* a count the body cannot hold: no huge allocation */
    CHECK_EQ(pt_reg_decode_replica_list(buf, len, &out, &n), -PT_EPROTO);
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_enc_u32(&c, 1);
    b.scrub_rotten = 4;
    b.scrub_passes = 5;
    b.scrub_last_pass_ms = 6;
    pt_reg_enc_blocks_entry(&c, &b);
    len = c.pos;
    CHECK_OK(pt_reg_decode_blocks_list(buf, len, &bout, &n));
    CHECK(n == 1 && bout[0].id == 7 && bout[0].used == 3);
    CHECK(bout[0].scrub_rotten == 4 && bout[0].scrub_passes == 5 && bout[0].scrub_last_pass_ms == 6);
    free(bout);
    buf[len - 9 - 32] = 2; /* the stale flag (before age and 4 scrub fields) must be 0 or 1 */
    CHECK_EQ(pt_reg_decode_blocks_list(buf, len, &bout, &n), -PT_EPROTO);
}

/* --- the server in-process ---------------------------------------------------------------- */

TEST(registry_server_calls_and_restart)
{
    struct reg_fixture f;
    struct pt_reg_replica hb = replica(2, 1, 1, "127.0.0.1:7021"), *v;
    struct pt_reg_blocks b = blocks(0x77, "m1", "127.0.0.1:7301", 42), *bl;
    struct pt_call_opts opts = {2000, 1, 1};
    uint8_t secret[16], secret2[16];
    size_t n;
    const char *dir = test_tmpdir();
    CHECK_OK(reg_fixture_start(&f, dir, 0));
    CHECK_OK(pt_reg_heartbeat_shard(f.address, &hb, &opts));
    hb = replica(0, 0, 1, "127.0.0.1:7100");
    CHECK_OK(pt_reg_heartbeat_cdc(f.address, &hb, &opts));
    CHECK_OK(pt_reg_heartbeat_blocks(f.address, &b, secret, &opts));
    CHECK_OK(pt_reg_heartbeat_blocks(f.address, &b, secret2, &opts));
    CHECK_MEM(secret, secret2, 16);
    CHECK_OK(pt_reg_block_secret(f.address, 0x77, secret2, &opts));
    CHECK_MEM(secret, secret2, 16);
    CHECK_EQ(pt_reg_block_secret(f.address, 0x78, secret2, &opts), -PT_ENOENT);
    CHECK_OK(pt_reg_list_shards(f.address, PT_REG_ALL_SHARDS, &v, &n, &opts));
    CHECK(n == 1 && v[0].shard == 2 && v[0].leader && !v[0].stale);
    free(v);
    CHECK_OK(pt_reg_list_shards(f.address, 3, &v, &n, &opts));
    CHECK_EQ(n, 0);
    free(v);
    CHECK_OK(pt_reg_list_cdc(f.address, &v, &n, &opts));
    CHECK(n == 1 && strcmp(v[0].addr, "127.0.0.1:7100") == 0);
    free(v);
    /* A heartbeat the state refuses is an error reply, not a crash. */
    hb = replica(0, 0, 0, "127.0.0.1:0");
    CHECK_EQ(pt_reg_heartbeat_shard(f.address, &hb, &opts), -PT_EINVAL);
    reg_fixture_stop(&f);

    /* Restart: state is back. With dynamic ports: addresses are gone, secrets kept. */
    CHECK_OK(reg_fixture_start(&f, dir, 0));
    CHECK_OK(pt_reg_list_blocks(f.address, &bl, &n, &opts));
    CHECK(n == 1 && bl[0].id == 0x77 && bl[0].used == 42 &&
          strcmp(bl[0].addr, "127.0.0.1:7301") == 0);
    free(bl);
    reg_fixture_stop(&f);
    CHECK_OK(reg_fixture_start(&f, dir, 1));
    CHECK_OK(pt_reg_list_blocks(f.address, &bl, &n, &opts));
    CHECK(n == 1 && bl[0].addr[0] == 0 && bl[0].stale);
    free(bl);
    CHECK_OK(pt_reg_block_secret(f.address, 0x77, secret2, &opts));
    CHECK_MEM(secret, secret2, 16);
    reg_fixture_stop(&f);
}

TEST(registry_server_malformed_bodies)
{
    struct reg_fixture f;
    struct pt_conn *c;
    struct pt_reply rep;
    static const uint16_t kinds[] = {PT_MSG_REG_SHARD_HEARTBEAT,  PT_MSG_REG_CDC_HEARTBEAT,
                                     PT_MSG_REG_BLOCKS_HEARTBEAT, PT_MSG_REG_LIST_SHARDS,
                                     PT_MSG_REG_LIST_CDC,         PT_MSG_REG_LIST_BLOCKS,
                                     PT_MSG_REG_BLOCK_SECRET};
    uint8_t junk[200];
    size_t k, len;
    CHECK_OK(reg_fixture_start(&f, test_tmpdir(), 0));
    CHECK_OK(pt_conn_open(f.address, 2000, 0, &c));
    for (k = 0; k < sizeof(junk); k++)
        junk[k] = (uint8_t)(k * 37 + 1);
    for (k = 0; k < PT_ARRAY_SIZE(kinds); k++)
        for (len = 0; len < 60; len += 7) {
            int err = pt_conn_call(c, kinds[k], junk, (uint32_t)len, 2000, &rep);
            CHECK_MSG(err == -PT_EPROTO || err == -PT_EINVAL ||
                          (err == 0 && kinds[k] == PT_MSG_REG_LIST_CDC && len == 0) ||
                          (err == 0 && kinds[k] == PT_MSG_REG_LIST_BLOCKS && len == 0),
                      "kind %04x len %zu: %d", kinds[k], len, err);
            pt_reply_free(&rep);
        }
    CHECK_EQ(pt_conn_call(c, 0x0199, NULL, 0, 2000, &rep), -PT_ENOTSUP);
    pt_reply_free(&rep);
    CHECK_OK(pt_conn_call(c, PT_MSG_PING, "ok", 2, 2000, &rep));
    pt_reply_free(&rep);
    pt_conn_close(c);
    reg_fixture_stop(&f);
}

TEST(registry_server_refuses_corrupt_state)
{
    struct reg_fixture f;
    uint8_t junk[40] = {'P', 'T', 'R', 'S', 1};
    CHECK_OK(pt_durable_write_file(test_tmpdir(), PT_REGISTRY_STATE_FILE, junk, sizeof(junk)));
    CHECK_EQ(reg_fixture_start(&f, test_tmpdir(), 0), -PT_ECORRUPT);
}
