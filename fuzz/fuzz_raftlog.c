/*
 * Fuzz target: the Raft log loader (src/cluster/replica/raft_store.c over raft_log.c) as a
 * replica runs it at start-up, on real files through the production env. The input is
 *
 *   u8 options | segment bytes
 *
 * The bytes are stored as the log's segment files in a scratch directory (option bit 0 first
 * writes a valid segment header for first index 1, so the fuzzer reaches the records; bit 1
 * splits them into two segments at the middle, the second starting where the first's records
 * end; bit 2 adds a term-and-vote file), then pt_raft_io_init loads them. It must refuse
 * cleanly (-PT_ECORRUPT, -PT_EVERSION) or load a contiguous log, and a second load of what the
 * first one left (after cutting a torn tail) must give the same entries and cut nothing more.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cluster/env/env_uv.h"
#include "cluster/replica/raft_io.h"
#include "cluster/replica/raft_log.h"
#include "fuzz.h"
#include "petrel/codec.h"
#include "petrel/common.h"

static char scratch[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void put_file(const char *name, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    char path[400];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s", scratch, name);
    f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    if (alen) FUZZ_CHECK(fwrite(a, 1, alen, f) == alen);
    if (blen) FUZZ_CHECK(fwrite(b, 1, blen, f) == blen);
    fclose(f);
}

static int resolve_none(void *ctx, raft_id id, char *buf, size_t cap)
{
    (void)ctx;
    (void)id;
    (void)buf;
    (void)cap;
    return -PT_ENOENT;
}

static void closed(void *ctx)
{
    *(int *)ctx = 1;
}

struct loaded {
    int rc;
    uint64_t torn, start, n, terms;
};

static struct loaded load_once(void)
{
    uv_loop_t loop;
    struct pt_env *env;
    struct pt_raft_io_config cfg;
    struct raft_io io;
    struct loaded out;
    char err[512];
    int done = 0;
    memset(&out, 0, sizeof(out));
    uv_loop_init(&loop);
    FUZZ_CHECK(pt_env_uv_init(&env, &loop, scratch, err, sizeof(err)) == 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.env = env;
    cfg.replicas = 1;
    cfg.listen = "127.0.0.1:0";
    cfg.resolve = resolve_none;
    out.rc = pt_raft_io_init(&io, &cfg, err, sizeof(err));
    FUZZ_CHECK(out.rc == 0 || out.rc == -PT_ECORRUPT || out.rc == -PT_EVERSION);
    if (out.rc != 0) FUZZ_CHECK(err[0] != 0);
    if (out.rc == 0) {
        raft_term term;
        raft_id vote;
        struct raft_snapshot *snap;
        raft_index start;
        struct raft_entry *entries;
        size_t n, i;
        out.torn = pt_raft_io_stats(&io)->torn_bytes_cut;
        FUZZ_CHECK(io.load(&io, &term, &vote, &snap, &start, &entries, &n) == 0);
        FUZZ_CHECK(snap == NULL);
        FUZZ_CHECK(n == 0 || start == 1);
        out.start = start;
        out.n = n;
        for (i = 0; i < n; i++) {
            FUZZ_CHECK(entries[i].type >= RAFT_COMMAND && entries[i].type <= RAFT_CHANGE);
            out.terms = out.terms * 31 + entries[i].term + entries[i].buf.len;
            raft_free(entries[i].buf.base);
        }
        raft_free(entries);
        pt_raft_io_free(&io);
    }
    /* Run the loop once so a pending fsync of a cut tail completes, then close. */
    uv_run(&loop, UV_RUN_NOWAIT);
    pt_env_uv_close(env, closed, &done);
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    pt_env_uv_free(env);
    FUZZ_CHECK(uv_loop_close(&loop) == 0);
    return out;
}

int pt_fuzz_raftlog(const uint8_t *data, size_t size)
{
    uint8_t hdr[PT_RAFT_SEG_HEADER];
    struct loaded a, b;
    const uint8_t *body;
    size_t len;
    if (size < 1) return 0;
    if (!scratch[0]) snprintf(scratch, sizeof(scratch), "/tmp/petrel-fuzz-raftlog-%d", (int)getpid());
    nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    FUZZ_CHECK(mkdir(scratch, 0755) == 0);
    body = data + 1;
    len = size - 1;
    if (data[0] & 1) {
        if (data[0] & 2) {
            size_t half = len / 2;
            pt_raft_seg_header_encode(hdr, 1, 1);
            put_file("seg-00000000000000000001", hdr, sizeof(hdr), body, half);
            /* The second segment supersedes from index 2 on. */
            pt_raft_seg_header_encode(hdr, 2, 2);
            put_file("seg-00000000000000000002", hdr, sizeof(hdr), body + half, len - half);
        } else {
            pt_raft_seg_header_encode(hdr, 1, 1);
            put_file("seg-00000000000000000001", hdr, sizeof(hdr), body, len);
        }
    } else {
        put_file("seg-00000000000000000001", body, len, NULL, 0);
    }
    if (data[0] & 4) {
        uint8_t meta[PT_RAFT_META_SIZE];
        pt_raft_meta_encode(meta, 3, 1);
        put_file("meta", meta, sizeof(meta), NULL, 0);
    }
    a = load_once();
    b = load_once();
    FUZZ_CHECK(a.rc == b.rc);
    if (a.rc == 0) {
        FUZZ_CHECK(b.torn == 0);
        FUZZ_CHECK(a.n == b.n && a.start == b.start && a.terms == b.terms);
    }
    nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

PT_FUZZ_TARGET(pt_fuzz_raftlog)
