/*
 * Writes the seed corpora (fuzz/corpus/TARGET/NAME) from the real encoders, so every seed starts
 * as a valid message, state file or block file that the fuzzer then mutates. Run from the
 * repository root after `make` (it links the normal build's libraries):
 *
 *   cc -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -Ifuzz fuzz/make_seeds.c build/libpetrel_cluster.a \
 *      build/libpetrel_fs.a build/libpetrel_common.a $(pkg-config --libs libuv raft) -lpthread \
 *      -o build/make-seeds && build/make-seeds
 *
 * Deterministic: the same seeds every run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/blocks/blocks.h"
#include "cluster/proto/blocks_msg.h"
#include "cluster/proto/cdc_msgs.h"
#include "cluster/proto/shard_msgs.h"
#include "cluster/proto/frame.h"
#include "cluster/proto/registry_msg.h"
#include "cluster/registry/registry.h"
#include "cluster/replica/raft_log.h"
#include "cluster/replica/raft_msg.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/fs.h"

static void put(const char *target, const char *name, const void *a, size_t alen, const void *b,
                size_t blen)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof(path), "fuzz/corpus/%s", target);
    mkdir("fuzz/corpus", 0755);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "fuzz/corpus/%s/%s", target, name);
    f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return;
    }
    if (alen) fwrite(a, 1, alen, f);
    if (blen) fwrite(b, 1, blen, f);
    fclose(f);
}

static void frames(void)
{
    uint8_t buf[PT_FRAME_HEADER_SIZE + 512];
    static const uint16_t kinds[] = {PT_MSG_PING, PT_MSG_REG_SHARD_HEARTBEAT, PT_MSG_BLOCK_READ};
    char name[64];
    size_t i;
    int n;
    for (i = 0; i < PT_ARRAY_SIZE(kinds); i++) {
        memset(buf + PT_FRAME_HEADER_SIZE, (int)i + 1, 40);
        pt_frame_encode_header(buf, 0, kinds[i], 100 + i, buf + PT_FRAME_HEADER_SIZE,
                               (uint32_t)(i * 20));
        snprintf(name, sizeof(name), "request-%04x", kinds[i]);
        put("frame", name, buf, PT_FRAME_HEADER_SIZE + i * 20, NULL, 0);
    }
    pt_frame_encode_header(buf, PT_FRAME_RESPONSE, PT_MSG_PING, 7, NULL, 0);
    put("frame", "response-empty", buf, PT_FRAME_HEADER_SIZE, NULL, 0);
    n = pt_frame_error_encode(buf + PT_FRAME_HEADER_SIZE, 400, -PT_ENOTLEADER, "not the leader",
                              "127.0.0.1:7401");
    put("frame", "error-body", buf + PT_FRAME_HEADER_SIZE, (size_t)n, NULL, 0);
    pt_frame_encode_header(buf, PT_FRAME_RESPONSE | PT_FRAME_ERROR, 0x0301, 9,
                           buf + PT_FRAME_HEADER_SIZE, (uint32_t)n);
    put("frame", "response-error", buf, PT_FRAME_HEADER_SIZE + (size_t)n, NULL, 0);
    n = pt_frame_error_encode(buf + PT_FRAME_HEADER_SIZE, 400, PT_EIO, "", NULL);
    pt_frame_encode_header(buf, PT_FRAME_RESPONSE | PT_FRAME_ERROR, 0x0202, 10,
                           buf + PT_FRAME_HEADER_SIZE, (uint32_t)n);
    put("frame", "response-error-short", buf, PT_FRAME_HEADER_SIZE + (size_t)n, NULL, 0);
}

static void registry_msgs(void)
{
    uint8_t buf[2048];
    struct pt_cursor c;
    struct pt_reg_replica r = {3, 1, 1, 0, 0, "127.0.0.1:7410", 0, 0, ""};
    struct pt_reg_blocks b;
    uint8_t op;
    int i;
    memset(&b, 0, sizeof(b));
    b.id = 0xfeedbeef;
    strcpy(b.failure_domain, "rack1");
    strcpy(b.addr, "[::1]:7500");
    b.capacity = 1ull << 40;
    b.used = 12345;
    b.blocks = 3;
    for (op = 0; op < 7; op++) {
        char name[32];
        pt_cursor_init(&c, buf, sizeof(buf));
        pt_enc_u8(&c, op);
        switch (op) {
        case 0:
            pt_reg_enc_shard_heartbeat(&c, &r);
            break;
        case 1:
            pt_reg_enc_cdc_heartbeat(&c, &r);
            break;
        case 2:
            pt_reg_enc_blocks_heartbeat(&c, &b);
            break;
        case 3:
            r.age_ms = 1500;
            r.stale = 1;
            pt_reg_enc_replica_entry(&c, &r);
            break;
        case 4:
            b.stale = 1;
            b.age_ms = 99;
            pt_reg_enc_blocks_entry(&c, &b);
            break;
        case 5:
            pt_enc_u32(&c, 3);
            for (i = 0; i < 3; i++) {
                r.replica = (uint8_t)i;
                pt_reg_enc_replica_entry(&c, &r);
            }
            break;
        default:
            pt_enc_u32(&c, 2);
            for (i = 0; i < 2; i++) {
                b.id += (uint64_t)i;
                pt_reg_enc_blocks_entry(&c, &b);
            }
            break;
        }
        snprintf(name, sizeof(name), "op%u", op);
        put("registry_msg", name, buf, c.pos, NULL, 0);
    }
}

static void blocks_msgs(void)
{
    uint8_t buf[256];
    struct pt_cursor c;
    struct pt_block_write_req w = {77, 0x12345678, 5000, 0xabcdef};
    struct pt_block_read_req rd = {77, 4096, 9000};
    struct pt_block_read_resp rr = {10000, 4096, 5904, 2};
    struct pt_block_erase_req e = {77, 0x12345678, 5000, 0x1111};
    struct pt_block_stat s = {77, 5000, 0x12345678};
    struct pt_block_info info = {
        .service_id = 0x42, .capacity = 1ull << 30, .used = 1 << 20, .blocks = 7, .failure_domain = "m1"};
    uint8_t op;
    for (op = 0; op < 6; op++) {
        char name[32];
        pt_cursor_init(&c, buf, sizeof(buf));
        pt_enc_u8(&c, op);
        switch (op) {
        case 0:
            pt_block_enc_write(&c, &w);
            pt_enc_bytes(&c, "data", 4);
            break;
        case 1:
            pt_block_enc_read(&c, &rd);
            break;
        case 2:
            pt_block_enc_read_resp(&c, &rr);
            break;
        case 3:
            pt_block_enc_erase(&c, &e);
            break;
        case 4:
            pt_block_enc_stat(&c, &s);
            break;
        default:
            pt_block_enc_info(&c, &info);
            break;
        }
        snprintf(name, sizeof(name), "op%u", op);
        put("blocks_msg", name, buf, c.pos, NULL, 0);
    }
}

static void registry_states(void)
{
    struct pt_registry r;
    struct pt_reg_replica hb = {0, 0, 1, 0, 0, "127.0.0.1:7401", 0, 0, ""};
    struct pt_reg_blocks b;
    uint8_t fresh[16] = {1, 2, 3}, secret[16], *buf, opt;
    size_t len;
    int i;
    pt_registry_init(&r, 1000);
    pt_registry_encode(&r, &buf, &len);
    opt = 0;
    put("registry_state", "empty", &opt, 1, buf, len);
    free(buf);
    for (i = 0; i < 3; i++) {
        hb.shard = (uint8_t)(i + 1);
        hb.replica = (uint8_t)i;
        pt_registry_shard_heartbeat(&r, &hb, 10);
    }
    pt_registry_cdc_heartbeat(&r, &hb, 10);
    memset(&b, 0, sizeof(b));
    b.id = 99;
    strcpy(b.failure_domain, "m1");
    strcpy(b.addr, "127.0.0.1:7500");
    b.capacity = 1 << 30;
    pt_registry_blocks_heartbeat(&r, &b, 10, fresh, secret);
    pt_registry_encode(&r, &buf, &len);
    put("registry_state", "five-entries", &opt, 1, buf, len);
    opt = 1; /* the target recomputes the CRC: mutations reach the entry checks */
    put("registry_state", "five-entries-crcfix", &opt, 1, buf, len);
    free(buf);
    pt_registry_wipe_ports(&r);
    pt_registry_encode(&r, &buf, &len);
    put("registry_state", "wiped-crcfix", &opt, 1, buf, len);
    free(buf);
    pt_registry_free(&r);
}

/* A block file as blocks_store.c writes it, behind the target's 9-byte prefix. */
static void block_file_at(const char *target, const char *name, uint8_t opts, uint32_t offset,
                          uint32_t count, uint32_t size, int rot)
{
    static uint8_t file[PT_BLOCK_FILE_HEADER + 4 * 4 + 3 * 4096 + 100];
    uint8_t prefix[9];
    uint32_t pages = pt_block_pages(size), i;
    uint8_t *data = file + PT_BLOCK_FILE_HEADER + pages * 4;
    for (i = 0; i < size; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    for (i = 0; i < pages; i++) {
        uint32_t n = PT_MIN(4096u, size - i * 4096);
        pt_put_le32(file + PT_BLOCK_FILE_HEADER + 4 * i, petrel_crc32c(0, data + i * 4096, n));
    }
    pt_put_le32(file, PT_BLOCK_FILE_MAGIC);
    pt_put_le32(file + 4, PT_BLOCK_FILE_VERSION);
    pt_put_le64(file + 8, 0x0123456789abcdefull);
    pt_put_le32(file + 16, size);
    pt_put_le32(file + 20, petrel_crc32c(0, data, size));
    pt_put_le32(file + 24, pages);
    pt_put_le32(file + 28, petrel_crc32c(0, file, 28));
    prefix[0] = opts;
    pt_put_le32(prefix + 1, offset);
    pt_put_le32(prefix + 5, count);
    if (rot == 1 && pages) file[PT_BLOCK_FILE_HEADER + 1] ^= 0x40; /* a page CRC rots */
    if (rot == 2 && size) data[size - 1] ^= 0x01;                  /* a data byte rots */
    put(target, name, prefix, 9, file, PT_BLOCK_FILE_HEADER + pages * 4 + size);
}

static void block_file(const char *name, uint8_t opts, uint32_t offset, uint32_t count,
                       uint32_t size)
{
    block_file_at("block_file", name, opts, offset, count, size, 0);
}

static void cursor_programs(void)
{
    static const uint8_t a[] = {8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 0, 4, 8, 12, 16, 0x60};
    static const uint8_t b[] = {12, 3, 0, 'a',  'b',  'c',  9,    0,   0,
                                0,  0, 0, 0x2c, 0x0c, 0x4c, 0x13, 0x07};
    static const uint8_t c[] = {4, 0xff, 0xff, 0, 0, 0x0c, 0x0c, 0x10, 0x11, 0x08, 0x03};
    put("cursor", "ints", a, sizeof(a), NULL, 0);
    put("cursor", "strings", b, sizeof(b), NULL, 0);
    put("cursor", "short", c, sizeof(c), NULL, 0);
}

/* A formatted image of geometry g (index into the target's table) with a few files. */
static void fs_image(const char *name, uint8_t opts, uint32_t read, uint32_t prog, uint32_t bsize,
                     uint32_t count, int populate)
{
    static uint8_t mem[64 * 1024];
    struct petrel_bd bd;
    struct petrel_bd_ram ram;
    struct petrel_fs_config cfg;
    struct petrel_fs fs;
    struct petrel_fs_file f;
    size_t len = (size_t)bsize * count;
    memset(mem, 0xff, len);
    petrel_bd_ram_init(&bd, &ram, mem, read, prog, bsize, count, 0xff);
    memset(&cfg, 0, sizeof(cfg));
    cfg.bd = &bd;
    if (petrel_fs_format(&fs, &cfg) || petrel_fs_mount(&fs, &cfg)) {
        fprintf(stderr, "%s: format failed\n", name);
        return;
    }
    if (populate) {
        static uint8_t data[3000];
        size_t i;
        for (i = 0; i < sizeof(data); i++)
            data[i] = (uint8_t)(i * 13);
        petrel_fs_mkdir(&fs, "/d");
        petrel_fs_mkdir(&fs, "/d/e");
        if (petrel_fs_file_open(&fs, &f, "/d/small", PETREL_O_WRONLY | PETREL_O_CREAT) == 0) {
            petrel_fs_file_write(&fs, &f, "hello", 5);
            petrel_fs_file_close(&fs, &f);
        }
        if (petrel_fs_file_open(&fs, &f, "/big", PETREL_O_WRONLY | PETREL_O_CREAT) == 0) {
            petrel_fs_file_write(&fs, &f, data, populate > 1 ? sizeof(data) : 600);
            petrel_fs_file_close(&fs, &f);
        }
        petrel_fs_setattr(&fs, "/d", 1, "attr", 4);
    }
    petrel_fs_unmount(&fs);
    while (len > 0 && mem[len - 1] == 0xff)
        len--;
    put("fs_image", name, &opts, 1, mem, len);
}

static void shard_msgs(void)
{
    static const uint8_t ops[] = {PT_SHARD_LOOKUP,     PT_SHARD_READDIR,    PT_SHARD_ADD_SPAN,
                                  PT_SHARD_ADD_INLINE, PT_SHARD_RENAME,     PT_SHARD_ADD_ENTRY,
                                  PT_SHARD_EXPIRE,     PT_SHARD_ADD_RS_SPAN, PT_SHARD_SET_POLICY,
                                  PT_SHARD_REPORT_BAD_BLOCK, PT_SHARD_REPAIR_LIST};
    static uint8_t cells[4 * 16 * 6];
    static uint8_t buf[1024];
    struct pt_shard_req q;
    struct pt_span sp;
    struct pt_cursor c;
    char name[32];
    size_t i;
    int n;
    for (i = 0; i < sizeof(ops); i++) {
        memset(&q, 0, sizeof(q));
        q.op = ops[i];
        q.id = PT_INODE_MAKE(2, 77);
        q.target = PT_INODE_ROOT;
        q.cookie = 0xc00c1e;
        q.txn = 5;
        q.offset = 4096;
        q.size = 5;
        q.crc = petrel_crc32c(0, "hello", 5);
        q.storage = PT_STORAGE_RS;
        q.data = 4;
        q.parity = 2;
        q.block_size = 1 << 20;
        q.max = 100;
        strcpy(q.name, "photo.jpg");
        q.name_len = 9;
        strcpy(q.name2, "new");
        q.name2_len = 3;
        q.data_ptr = (const uint8_t *)"hello";
        q.data_len = 5;
        if (q.op == PT_SHARD_ADD_RS_SPAN) { /* RS(4,2) of 4 MiB: 16 rows x 6 cell CRCs */
            q.size = 4u << 20;
            q.data_ptr = cells;
            q.data_len = sizeof(cells);
        }
        if (q.op == PT_SHARD_SET_POLICY) {
            static const struct pt_policy pol = {2, 4, 2, 4u << 20, 1u << 20};
            static uint8_t rec[PT_POLICY_SIZE];
            pt_policy_encode(rec, &pol);
            q.data_ptr = rec;
            q.data_len = sizeof(rec);
        }
        q.n_services = 6;
        for (n = 0; n < 6; n++)
            q.services[n] = 100 + (uint64_t)n;
        buf[0] = 0;
        n = pt_shard_req_encode(&q, buf + 1, sizeof(buf) - 1);
        snprintf(name, sizeof(name), "req-op%u", ops[i]);
        if (n > 0) put("shard_msgs", name, buf, (size_t)n + 1, NULL, 0);
    }
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_enc_u8(&c, 1);
    memset(&sp, 0, sizeof(sp));
    sp.size = 5;
    sp.crc = q.crc;
    sp.inline_len = 5;
    sp.inline_data = (const uint8_t *)"hello";
    pt_span_encode(&c, &sp);
    sp.offset = 5;
    sp.size = 1 << 20;
    sp.storage = PT_STORAGE_MIRRORED;
    sp.data = 1;
    sp.parity = 2;
    sp.certified = 1;
    sp.block_size = 1 << 20;
    for (n = 0; n < 3; n++) {
        sp.blocks[n].service = 10 + (uint64_t)n;
        sp.blocks[n].block = 99;
        sp.blocks[n].crc = 0x1234;
    }
    pt_span_encode(&c, &sp);
    sp.storage = PT_STORAGE_RS;
    sp.data = 2;
    sp.parity = 1;
    sp.block_size = pt_rs_block_size(sp.size, 2); /* 512 KiB: 8 rows of 64 KiB cells */
    sp.cell_crcs = cells;
    pt_span_encode(&c, &sp);
    put("shard_msgs", "spans", buf, c.pos, NULL, 0);
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_enc_u8(&c, 2);
    pt_enc_u32(&c, 0);
    pt_enc_u8(&c, PT_TYPE_FILE);
    pt_enc_u8(&c, PT_FILE_LINKED);
    pt_enc_u64(&c, 12345);
    pt_enc_u64(&c, 1700000000000ull);
    pt_enc_u64(&c, PT_INODE_ROOT);
    pt_enc_u64(&c, 0);
    put("shard_msgs", "reply-stat", buf, c.pos, NULL, 0);
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_enc_u8(&c, 3);
    pt_enc_u32(&c, 0);
    for (n = 0; n < 2; n++) {
        pt_enc_u64(&c, 0x1111 * (uint64_t)(n + 1));
        pt_enc_u64(&c, PT_INODE_MAKE(1, 10 + n));
        pt_enc_u8(&c, PT_TYPE_DIR);
        pt_enc_u8(&c, 4);
        pt_enc_bytes(&c, n ? "dir2" : "dir1", 4);
    }
    put("shard_msgs", "reply-dirents", buf, c.pos, NULL, 0);
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_enc_u8(&c, 2);
    pt_enc_u32(&c, (uint32_t)-PT_ENOTLEADER);
    put("shard_msgs", "reply-error", buf, c.pos, NULL, 0);
}

static void cdc_msgs(void)
{
    static uint8_t buf[600];
    struct pt_cdc_req q;
    uint8_t op;
    for (op = PT_CDC_MKDIR; op <= PT_CDC_RENAME; op++) {
        char name[32];
        int n;
        memset(&q, 0, sizeof(q));
        q.op = op;
        q.key = 0xabc + op;
        q.dir = PT_INODE_ROOT;
        strcpy(q.name, "a-dir");
        q.name_len = 5;
        if (op == PT_CDC_RENAME) {
            q.dir2 = PT_INODE_MAKE(3, 9);
            strcpy(q.name2, "b");
            q.name2_len = 1;
        }
        n = pt_cdc_req_encode(&q, buf, sizeof(buf));
        snprintf(name, sizeof(name), "op%u", op);
        if (n > 0) put("cdc_msgs", name, buf, (size_t)n, NULL, 0);
    }
}

/* Raft messages of every type, as replicas send them (option byte 0: CRC as encoded). */
static void raft_msgs(void)
{
    struct pt_raft_msg_header h = {0, 7, 0x10000, 0, 2, 1, 0};
    struct raft_message m;
    struct raft_entry e[3];
    uint8_t payload[40], opt = 0, *buf;
    size_t len;
    unsigned t, i;
    char name[32];
    memset(payload, 0x5a, sizeof(payload));
    for (t = RAFT_IO_APPEND_ENTRIES; t <= RAFT_IO_TIMEOUT_NOW; t++) {
        memset(&m, 0, sizeof(m));
        m.type = (unsigned short)t;
        switch (t) {
        case RAFT_IO_APPEND_ENTRIES:
            for (i = 0; i < 3; i++) {
                e[i].term = 3;
                e[i].type = (unsigned short)(1 + i);
                e[i].buf.base = payload;
                e[i].buf.len = 10 * i;
            }
            m.append_entries.term = 3;
            m.append_entries.prev_log_index = 5;
            m.append_entries.prev_log_term = 2;
            m.append_entries.leader_commit = 5;
            m.append_entries.entries = e;
            m.append_entries.n_entries = 3;
            break;
        case RAFT_IO_APPEND_ENTRIES_RESULT: m.append_entries_result.last_log_index = 8; break;
        case RAFT_IO_REQUEST_VOTE:
            m.request_vote.term = 4;
            m.request_vote.candidate_id = 2;
            m.request_vote.pre_vote = true;
            break;
        case RAFT_IO_REQUEST_VOTE_RESULT: m.request_vote_result.vote_granted = true; break;
        case RAFT_IO_INSTALL_SNAPSHOT:
            m.install_snapshot.term = 4;
            m.install_snapshot.last_index = 9;
            m.install_snapshot.conf_index = 1;
            raft_configuration_init(&m.install_snapshot.conf);
            raft_configuration_add(&m.install_snapshot.conf, 1, "r0", RAFT_VOTER);
            raft_configuration_add(&m.install_snapshot.conf, 2, "r1", RAFT_VOTER);
            m.install_snapshot.data.base = payload;
            m.install_snapshot.data.len = sizeof(payload);
            break;
        case RAFT_IO_TIMEOUT_NOW: m.timeout_now.term = 4; break;
        }
        if (pt_raft_msg_encode(&h, &m, &buf, &len) != 0) continue;
        snprintf(name, sizeof(name), "type-%u", t);
        put("raftmsg", name, &opt, 1, buf, len);
        free(buf);
        if (t == RAFT_IO_INSTALL_SNAPSHOT) raft_configuration_close(&m.install_snapshot.conf);
    }
}

/* Log segments: batches of records, whole and torn (option byte as in fuzz_raftlog.c). */
static void raft_logs(void)
{
    static const uint64_t batch_first[7] = {0, 1, 1, 3, 3, 3, 6};
    uint8_t seg[2048], payload[64], opt;
    size_t pos = PT_RAFT_SEG_HEADER;
    uint64_t i;
    memset(payload, 0x33, sizeof(payload));
    pt_raft_seg_header_encode(seg, 1, 1);
    for (i = 1; i <= 6; i++) {
        pt_raft_rec_encode(seg + pos, i, 1 + i / 3, batch_first[i], (uint8_t)(1 + i % 3), payload,
                           (uint32_t)(i * 9));
        pos += pt_raft_rec_size(i * 9);
    }
    opt = 0;
    put("raftlog", "whole-file", &opt, 1, seg, pos);
    put("raftlog", "torn-tail", &opt, 1, seg, pos - 13);
    opt = 1;
    put("raftlog", "records-only", &opt, 1, seg + PT_RAFT_SEG_HEADER, pos - PT_RAFT_SEG_HEADER);
    opt = 3;
    put("raftlog", "two-segments", &opt, 1, seg + PT_RAFT_SEG_HEADER, pos - PT_RAFT_SEG_HEADER);
    opt = 5;
    put("raftlog", "with-meta", &opt, 1, seg + PT_RAFT_SEG_HEADER, pos - PT_RAFT_SEG_HEADER);
}

int main(void)
{
    raft_msgs();
    raft_logs();
    shard_msgs();
    cdc_msgs();
    fs_image("tiny-empty", 0x00, 16, 16, 128, 32, 0);
    fs_image("tiny-files", 0x10, 16, 16, 128, 32, 1);
    fs_image("512-files", 0x11, 16, 16, 512, 16, 2);
    fs_image("emmc-files", 0x02, 512, 512, 512, 16, 1);
    fs_image("emmc-files-write", 0x12, 512, 512, 512, 16, 2);
    fs_image("nor4k-files", 0x13, 16, 16, 4096, 8, 1);
    frames();
    registry_msgs();
    blocks_msgs();
    registry_states();
    block_file("empty-block", 0, 0, 0, 0);
    block_file("one-byte", 2, 0, 1, 1);
    block_file("page", 0, 0, 4096, 4096);
    block_file("three-pages-mid", 0, 5000, 3000, 3 * 4096 + 50);
    block_file("three-pages-erase", 1, 4096, 100000, 3 * 4096 + 50);
    block_file("rewrite-same", 2, 0, 0, 3 * 4096 + 17);
    block_file("tail", 3, 12288, 50, 3 * 4096 + 50);
    block_file("rewrite-own", 4, 0, 10, 2 * 4096 + 9);
    block_file_at("block_file", "rewrite-own-rotten-page", 4, 0, 10, 4096 + 9, 2);
    /* Regression inputs: a retried write of a block whose stored copy rotted must heal it. */
    block_file_at("../regress/block_file", "rewrite-rotten-crc-table", 4, 0, 10, 2 * 4096 + 9, 1);
    block_file_at("../regress/block_file", "rewrite-rotten-data", 4, 0, 10, 4096 + 9, 2);
    cursor_programs();
    return 0;
}
