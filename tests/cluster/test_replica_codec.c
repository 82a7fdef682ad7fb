/*
 * The replica's byte formats: Raft messages (raft_msg.c) and the log files (raft_log.c).
 * Every message type round-trips; every truncation and every bit flip of a message is
 * rejected; counts and lengths over the limits are refused even behind a valid CRC; the
 * 95-byte packet of issue 10 is dropped; a torn tail of the last batch is told apart from
 * corruption followed by a later batch.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/replica/raft_log.h"
#include "cluster/replica/raft_msg.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"
#include "test.h"

static const struct pt_raft_msg_header HDR = {0, 77, 0x10003, 0, 2, 1, 0};

static int decode(const uint8_t *buf, size_t len, struct raft_message *m)
{
    struct pt_raft_msg_header h;
    int rc = pt_raft_msg_decode_header(buf, len, &h);
    if (rc) return rc;
    CHECK_EQ(h.cluster_id, 77);
    CHECK_EQ(h.group, 0x10003);
    return pt_raft_msg_decode_body(&h, buf + PT_RAFT_MSG_HEADER, m);
}

/* An AppendEntries with n entries of sizes 0..n-1 filled from the generator. */
static void make_ae(struct raft_message *m, struct raft_entry *e, uint8_t *data, unsigned n,
                    struct pt_prng *g)
{
    unsigned i;
    size_t off = 0;
    memset(m, 0, sizeof(*m));
    m->type = RAFT_IO_APPEND_ENTRIES;
    m->append_entries.term = pt_prng_next(g);
    m->append_entries.prev_log_index = pt_prng_next(g);
    m->append_entries.prev_log_term = pt_prng_next(g);
    m->append_entries.leader_commit = pt_prng_next(g);
    for (i = 0; i < n; i++) {
        e[i].term = pt_prng_next(g);
        e[i].type = (unsigned short)(1 + i % 3);
        e[i].buf.base = data + off;
        e[i].buf.len = i * 7;
        pt_prng_fill(g, data + off, i * 7);
        off += i * 7;
    }
    m->append_entries.entries = e;
    m->append_entries.n_entries = n;
}

/* Decode without expectations about the header's ids (random input). */
static int decode_any(const uint8_t *buf, size_t len, struct raft_message *m)
{
    struct pt_raft_msg_header h;
    int rc = pt_raft_msg_decode_header(buf, len, &h);
    return rc ? rc : pt_raft_msg_decode_body(&h, buf + PT_RAFT_MSG_HEADER, m);
}

TEST(raftmsg_every_type_round_trips)
{
    struct pt_prng g;
    struct raft_message m, d;
    struct raft_entry e[8];
    uint8_t data[8 * 7 * 8], *buf;
    size_t len;
    unsigned i, t;
    pt_prng_seed(&g, test_seed());
    for (t = RAFT_IO_APPEND_ENTRIES; t <= RAFT_IO_TIMEOUT_NOW; t++) {
        memset(&m, 0, sizeof(m));
        m.type = (unsigned short)t;
        switch (t) {
        case RAFT_IO_APPEND_ENTRIES:
            make_ae(&m, e, data, 8, &g);
            break;
        case RAFT_IO_APPEND_ENTRIES_RESULT:
            m.append_entries_result.term = pt_prng_next(&g);
            m.append_entries_result.rejected = pt_prng_next(&g);
            m.append_entries_result.last_log_index = pt_prng_next(&g);
            break;
        case RAFT_IO_REQUEST_VOTE:
            m.request_vote.term = pt_prng_next(&g);
            m.request_vote.candidate_id = 2;
            m.request_vote.last_log_index = pt_prng_next(&g);
            m.request_vote.last_log_term = pt_prng_next(&g);
            m.request_vote.disrupt_leader = true;
            m.request_vote.pre_vote = true;
            break;
        case RAFT_IO_REQUEST_VOTE_RESULT:
            m.request_vote_result.term = pt_prng_next(&g);
            m.request_vote_result.vote_granted = true;
            m.request_vote_result.pre_vote = raft_tribool_false;
            break;
        case RAFT_IO_INSTALL_SNAPSHOT:
            m.install_snapshot.term = 9;
            m.install_snapshot.last_index = 100;
            m.install_snapshot.last_term = 8;
            m.install_snapshot.conf_index = 1;
            raft_configuration_init(&m.install_snapshot.conf);
            CHECK_EQ(raft_configuration_add(&m.install_snapshot.conf, 1, "r0", RAFT_VOTER), 0);
            CHECK_EQ(raft_configuration_add(&m.install_snapshot.conf, 2, "r1", RAFT_SPARE), 0);
            m.install_snapshot.data.base = data;
            m.install_snapshot.data.len = 100;
            break;
        case RAFT_IO_TIMEOUT_NOW:
            m.timeout_now.term = pt_prng_next(&g);
            m.timeout_now.last_log_index = pt_prng_next(&g);
            m.timeout_now.last_log_term = pt_prng_next(&g);
            break;
        }
        CHECK_OK(pt_raft_msg_encode(&HDR, &m, &buf, &len));
        CHECK_EQ(buf[5], t);
        CHECK_OK(decode(buf, len, &d));
        CHECK_EQ(d.type, t);
        CHECK_EQ(d.server_id, 2);
        switch (t) {
        case RAFT_IO_APPEND_ENTRIES:
            CHECK_EQ(d.append_entries.n_entries, 8);
            CHECK_EQ(d.append_entries.leader_commit, m.append_entries.leader_commit);
            CHECK_EQ(d.append_entries.prev_log_term, m.append_entries.prev_log_term);
            for (i = 0; i < 8; i++) {
                CHECK_EQ(d.append_entries.entries[i].term, e[i].term);
                CHECK_EQ(d.append_entries.entries[i].type, e[i].type);
                CHECK_EQ(d.append_entries.entries[i].buf.len, e[i].buf.len);
                CHECK_MEM(d.append_entries.entries[i].buf.base, e[i].buf.base, e[i].buf.len);
            }
            break;
        case RAFT_IO_APPEND_ENTRIES_RESULT:
            CHECK_EQ(d.append_entries_result.rejected, m.append_entries_result.rejected);
            CHECK_EQ(d.append_entries_result.last_log_index,
                     m.append_entries_result.last_log_index);
            break;
        case RAFT_IO_REQUEST_VOTE:
            CHECK_EQ(d.request_vote.last_log_term, m.request_vote.last_log_term);
            CHECK(d.request_vote.disrupt_leader && d.request_vote.pre_vote);
            break;
        case RAFT_IO_REQUEST_VOTE_RESULT:
            CHECK(d.request_vote_result.vote_granted);
            CHECK_EQ(d.request_vote_result.pre_vote, raft_tribool_false);
            break;
        case RAFT_IO_INSTALL_SNAPSHOT:
            CHECK_EQ(d.install_snapshot.conf.n, 2);
            CHECK_EQ(d.install_snapshot.conf.servers[1].role, RAFT_SPARE);
            CHECK(!strcmp(d.install_snapshot.conf.servers[1].address, "r1"));
            CHECK_EQ(d.install_snapshot.data.len, 100);
            CHECK_MEM(d.install_snapshot.data.base, data, 100);
            raft_configuration_close(&m.install_snapshot.conf);
            break;
        case RAFT_IO_TIMEOUT_NOW:
            CHECK_EQ(d.timeout_now.last_log_index, m.timeout_now.last_log_index);
            break;
        }
        pt_raft_msg_release(&d);
        free(buf);
    }
}

TEST(raftmsg_every_truncation_and_bit_flip_rejected)
{
    struct pt_prng g;
    struct raft_message m, d;
    struct raft_entry e[4];
    uint8_t data[4 * 7 * 4], *buf;
    size_t len, i;
    unsigned bit;
    pt_prng_seed(&g, test_seed());
    make_ae(&m, e, data, 4, &g);
    CHECK_OK(pt_raft_msg_encode(&HDR, &m, &buf, &len));
    for (i = 0; i < len; i++)
        CHECK_MSG(decode(buf, i, &d) < 0, "truncation to %zu bytes accepted", i);
    for (i = 0; i < len; i++)
        for (bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            CHECK_MSG(decode(buf, len, &d) < 0, "flip of bit %u of byte %zu accepted", bit, i);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    CHECK_OK(decode(buf, len, &d));
    pt_raft_msg_release(&d);
    free(buf);
}

/* Re-close a hand-made message with a valid CRC (what an attacker can always do). */
static void reseal(uint8_t *buf, size_t len)
{
    uint32_t crc = petrel_crc32c(0, buf, 40);
    pt_put_le32(buf + 20, (uint32_t)(len - PT_RAFT_MSG_HEADER));
    crc = petrel_crc32c(0, buf, 40);
    crc = petrel_crc32c(crc, buf + PT_RAFT_MSG_HEADER, len - PT_RAFT_MSG_HEADER);
    pt_put_le32(buf + 40, crc);
}

TEST(raftmsg_limits_refused_behind_a_valid_crc)
{
    struct pt_prng g;
    struct raft_message m, d;
    struct raft_entry e[2];
    uint8_t data[64], *buf;
    size_t len;
    pt_prng_seed(&g, test_seed());
    make_ae(&m, e, data, 2, &g);
    CHECK_OK(pt_raft_msg_encode(&HDR, &m, &buf, &len));
    /* Entry count far over the limit: refused before any allocation. */
    pt_put_le32(buf + PT_RAFT_MSG_HEADER + 32, 0xffffffffu);
    reseal(buf, len);
    CHECK_EQ(decode(buf, len, &d), -PT_EPROTO);
    /* Count within the limit but more than the body holds. */
    pt_put_le32(buf + PT_RAFT_MSG_HEADER + 32, 3);
    reseal(buf, len);
    CHECK_EQ(decode(buf, len, &d), -PT_EPROTO);
    /* An entry length over the body. */
    pt_put_le32(buf + PT_RAFT_MSG_HEADER + 32, 2);
    pt_put_le32(buf + PT_RAFT_MSG_HEADER + 36 + 9, 0x7fffffffu);
    reseal(buf, len);
    CHECK_EQ(decode(buf, len, &d), -PT_EPROTO);
    /* An unknown entry type. */
    pt_put_le32(buf + PT_RAFT_MSG_HEADER + 36 + 9, 0);
    buf[PT_RAFT_MSG_HEADER + 36 + 8] = 9;
    reseal(buf, len);
    CHECK_EQ(decode(buf, len, &d), -PT_EPROTO);
    /* An unknown message type, a wrong version, a wrong magic. */
    buf[PT_RAFT_MSG_HEADER + 36 + 8] = 1;
    buf[5] = 7;
    reseal(buf, len);
    CHECK_EQ(decode(buf, len, &d), -PT_EPROTO);
    buf[5] = RAFT_IO_APPEND_ENTRIES;
    buf[4] = 2;
    reseal(buf, len);
    CHECK_EQ(decode(buf, len, &d), -PT_EVERSION);
    buf[4] = 1;
    buf[0] ^= 1;
    reseal(buf, len);
    CHECK_EQ(decode(buf, len, &d), -PT_EPROTO);
    free(buf);
    {
        /* A snapshot configuration with far too many servers. */
        uint8_t snap[PT_RAFT_MSG_HEADER + 36 + 8];
        memset(snap, 0, sizeof(snap));
        pt_put_le32(snap, PT_RAFT_MSG_MAGIC);
        snap[4] = PT_RAFT_MSG_VERSION;
        snap[5] = RAFT_IO_INSTALL_SNAPSHOT;
        pt_put_le64(snap + 8, 77);
        pt_put_le32(snap + 16, 0x10003);
        pt_put_le64(snap + 24, 2);
        pt_put_le32(snap + PT_RAFT_MSG_HEADER + 32, 100000);
        reseal(snap, sizeof(snap));
        CHECK_EQ(decode(snap, sizeof(snap), &d), -PT_EPROTO);
    }
}

TEST(raftmsg_issue10_packet_and_random_bytes_rejected)
{
    struct pt_prng g;
    struct raft_message d;
    uint8_t pkt[95];
    unsigned i;
    pt_prng_seed(&g, test_seed());
    /* libraft's handshake (protocol 1, id, address length, address) then an AppendEntries
     * preamble and a 44-byte random header: never a Petrel message. */
    memset(pkt, 0, sizeof(pkt));
    pt_put_le64(pkt, 1);
    pt_put_le64(pkt + 8, 2);
    pt_put_le64(pkt + 16, 8);
    memcpy(pkt + 24, "r1", 2);
    pt_put_le64(pkt + 32, 1);
    pt_put_le64(pkt + 40, 44);
    pt_prng_fill(&g, pkt + 48, 47);
    CHECK(decode_any(pkt, sizeof(pkt), &d) < 0);
    CHECK(decode_any(pkt + 32, sizeof(pkt) - 32, &d) < 0);
    for (i = 0; i < 20000; i++) {
        uint8_t buf[200];
        size_t len = (size_t)pt_prng_below(&g, sizeof(buf));
        pt_prng_fill(&g, buf, len);
        if (i % 2 && len >= PT_RAFT_MSG_HEADER) {
            /* Valid magic, version and CRC: the body checks must hold on their own. */
            pt_put_le32(buf, PT_RAFT_MSG_MAGIC);
            buf[4] = PT_RAFT_MSG_VERSION;
            buf[5] = (uint8_t)(1 + pt_prng_below(&g, 6));
            buf[6] = buf[7] = 0;
            reseal(buf, len);
        }
        if (decode_any(buf, len, &d) == 0) pt_raft_msg_release(&d);
    }
}

TEST(raftmsg_oversized_append_sends_the_entries_that_fit)
{
    struct raft_message m, d;
    struct raft_entry e[6];
    uint8_t *big = calloc(1, PT_RAFT_MSG_ENTRY_MAX), *buf;
    size_t len;
    unsigned i;
    CHECK(big);
    memset(&m, 0, sizeof(m));
    m.type = RAFT_IO_APPEND_ENTRIES;
    for (i = 0; i < 6; i++) {
        e[i].term = 1;
        e[i].type = RAFT_COMMAND;
        e[i].buf.base = big;
        e[i].buf.len = PT_RAFT_MSG_ENTRY_MAX;
    }
    m.append_entries.entries = e;
    m.append_entries.n_entries = 6;
    CHECK_OK(pt_raft_msg_encode(&HDR, &m, &buf, &len));
    CHECK(len <= PT_RAFT_MSG_MAX);
    CHECK_OK(decode(buf, len, &d));
    CHECK_EQ(d.append_entries.n_entries, 3);
    pt_raft_msg_release(&d);
    free(buf);
    free(big);
}

/* ---- log files ----------------------------------------------------------------------------- */

/* A segment of batches [1..3], [4..5], [6..8]; record offsets in off[index]. */
static size_t make_segment(uint8_t *seg, size_t *off)
{
    static const uint64_t batch_first[9] = {0, 1, 1, 1, 4, 4, 6, 6, 6};
    size_t pos = PT_RAFT_SEG_HEADER;
    uint8_t payload[40];
    uint64_t i;
    pt_raft_seg_header_encode(seg, 7, 1);
    for (i = 1; i <= 8; i++) {
        memset(payload, (int)i, sizeof(payload));
        off[i] = pos;
        pt_raft_rec_encode(seg + pos, i, 3, batch_first[i], RAFT_COMMAND, payload,
                           (uint32_t)(i * 5));
        pos += pt_raft_rec_size(i * 5);
    }
    return pos;
}

static int count_rec(void *ctx, const struct pt_raft_rec *rec)
{
    unsigned *n = ctx;
    CHECK_EQ(rec->len, rec->index * 5);
    CHECK_EQ(rec->payload[0], rec->index);
    (*n)++;
    return 0;
}

TEST(raftlog_torn_tail_is_cut_corruption_before_a_later_batch_refused)
{
    uint8_t seg[2048];
    size_t off[9], len = make_segment(seg, off), end;
    uint64_t seq, first;
    unsigned n = 0;
    CHECK_OK(pt_raft_seg_header_decode(seg, len, &seq, &first));
    CHECK_EQ(seq, 7);
    CHECK_EQ(pt_raft_seg_scan(seg, len, 1, count_rec, &n, &end), 0);
    CHECK_EQ(n, 8);
    CHECK_EQ(end, len);
    /* Torn inside the last batch (record 7 damaged, 8 intact): cut at 7. */
    seg[off[7] + PT_RAFT_REC_HEADER] ^= 0x40;
    n = 0;
    CHECK_EQ(pt_raft_seg_scan(seg, len, 1, count_rec, &n, &end), 1);
    CHECK_EQ(n, 6);
    CHECK_EQ(end, off[7]);
    seg[off[7] + PT_RAFT_REC_HEADER] ^= 0x40;
    /* A short tail (write cut mid-record). */
    n = 0;
    CHECK_EQ(pt_raft_seg_scan(seg, off[8] + 10, 1, count_rec, &n, &end), 1);
    CHECK_EQ(end, off[8]);
    /* Record 4 damaged while batch 3 (written after 4's fsync) is intact: corruption. */
    seg[off[4] + 9] ^= 1;
    n = 0;
    CHECK_EQ(pt_raft_seg_scan(seg, len, 1, count_rec, &n, &end), -PT_ECORRUPT);
    seg[off[4] + 9] ^= 1;
    /* Same for the first record of the file. */
    seg[off[1] + PT_RAFT_REC_HEADER + 1] ^= 1;
    CHECK_EQ(pt_raft_seg_scan(seg, len, 1, count_rec, &n, &end), -PT_ECORRUPT);
    seg[off[1] + PT_RAFT_REC_HEADER + 1] ^= 1;
    /* Out of sequence (the header claims another first index). */
    CHECK_EQ(pt_raft_seg_scan(seg, len, 2, count_rec, &n, &end), -PT_ECORRUPT);
    /* Header damage and version. */
    seg[3] ^= 1;
    CHECK_EQ(pt_raft_seg_header_decode(seg, len, &seq, &first), -PT_ECORRUPT);
    seg[3] ^= 1;
    CHECK_OK(pt_raft_seg_header_decode(seg, len, &seq, &first));
}

TEST(raftlog_meta_and_snapshot_headers_checked)
{
    uint8_t meta[PT_RAFT_META_SIZE], sh[PT_RAFT_SNAP_HEADER];
    uint64_t term, vote;
    struct pt_raft_snap_header h = {10, 3, 2, 100, 20}, back;
    size_t i;
    pt_raft_meta_encode(meta, 5, 2);
    CHECK_OK(pt_raft_meta_decode(meta, sizeof(meta), &term, &vote));
    CHECK_EQ(term, 5);
    CHECK_EQ(vote, 2);
    for (i = 0; i < sizeof(meta) * 8; i++) {
        meta[i / 8] ^= (uint8_t)(1u << (i % 8));
        CHECK(pt_raft_meta_decode(meta, sizeof(meta), &term, &vote) < 0);
        meta[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    CHECK(pt_raft_meta_decode(meta, sizeof(meta) - 1, &term, &vote) < 0);
    pt_raft_snap_header_encode(sh, &h);
    CHECK_OK(pt_raft_snap_header_decode(sh, sizeof(sh), &back));
    CHECK_EQ(back.data_len, 100);
    CHECK_EQ(back.conf_len, 20);
    for (i = 0; i < sizeof(sh) * 8; i++) {
        sh[i / 8] ^= (uint8_t)(1u << (i % 8));
        CHECK(pt_raft_snap_header_decode(sh, sizeof(sh), &back) < 0);
        sh[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
}
