/*
 * Background compaction of a shard leader (see shard_compact.h). One run at a time:
 *  1. on the loop: pt_shard_sm_compact_find picks the next run of small spans of a linked file
 *     (the file's version at that moment recorded), and the addresses of its copies;
 *  2. on the thread pool: reads the run's bytes (inline bytes from the record; a mirrored span
 *     from any of its copies, each read verified by the block service's page CRCs and then
 *     against the span's CRC) into one buffer;
 *  3. on the loop, through Raft like a writer's requests: OPEN_CHANGE (expect = the recorded
 *     version; a file changed since is left for a later look), then ADD_INLINE or ADD_SPAN at
 *     the run's start (the change file's run is replaced by one span), for a mirrored span the
 *     copies written on the thread pool with the leader's write certificates and their proofs
 *     checked, CERTIFY_SPAN, and COMPACT_CHANGE, which swaps the merged span in only if the
 *     file is still at that version and the merged span's CRC is the CRC of the run's.
 * Never changes a byte a reader can see and never moves a file's version: a writer whose
 * change was opened before commits after it as if nothing happened (the merged span then
 * goes to the old version). Never frees a block itself: the old spans stay listed by the
 * change file, unlinked, for the retention period (readers holding the old span list keep
 * reading them), then GC erases the copies no other span lists (blockrefs). A leader that
 * stops half-way leaves a transient change file that expires like an abandoned writer's.
 * Paced by `rate` (bytes read + written per second) between runs.
 */
#include "cluster/shard/shard_compact.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cluster/client/blocks_client.h"
#include "cluster/proto/blocks_msg.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define LOG_MODULE "compact"
#define COMPACT_EVERY_MS 1000 /* a look for a run at most this often when none was found */
#define COMPACT_SCAN_BUDGET 4096

struct compact_job {
    uv_work_t work;
    struct pt_shard_compact *k;
    struct pt_compact_run run;
    char addr[PT_COMPACT_RUN_MAX][PT_SPAN_BLOCKS_MAX][PT_REG_ADDR_MAX];
    uint8_t *buf; /* the run's bytes */
    uint32_t crc; /* of buf */
    uint64_t change, cookie;
    /* the merged span's copies (mirrored) */
    unsigned copies;
    uint64_t service[PT_SPAN_BLOCKS_MAX], block[PT_SPAN_BLOCKS_MAX], cert[PT_SPAN_BLOCKS_MAX],
        proof[PT_SPAN_BLOCKS_MAX];
    char new_addr[PT_SPAN_BLOCKS_MAX][PT_REG_ADDR_MAX];
    int writing; /* the worker writes (else reads) */
    int in_worker;
    int rc;
};

void pt_shard_compact_init(struct pt_shard_compact *k, struct pt_node *node, struct pt_shard_sm *sm,
                           pt_compact_place_fn place, void *place_ctx, uint32_t below,
                           uint64_t rate, uint64_t seed)
{
    memset(k, 0, sizeof(*k));
    k->node = node;
    k->sm = sm;
    k->place = place;
    k->place_ctx = place_ctx;
    k->below = below;
    k->max = PT_COMPACT_MAX_DEFAULT;
    k->min_run = PT_COMPACT_MIN_RUN_DEFAULT;
    k->rate = rate;
    k->seq = seed | 1;
}

/* The job's memory (k->mem) is allocated once and reused; only the run's bytes are not. */
static void job_free(struct compact_job *j)
{
    free(j->buf);
    j->buf = NULL;
}

/* The run is over (swapped, stale or failed): pace the next one by what this one moved. */
static void job_done(struct compact_job *j, int rc, const char *step)
{
    struct pt_shard_compact *k = j->k;
    uint64_t now = pt_node_wall_ms(), moved = 2ull * j->run.size;
    if (rc == 0) {
        k->runs++;
        k->spans_merged += j->run.n;
        k->bytes_rewritten += j->run.size;
        petrel_log(PT_LOG_INFO, LOG_MODULE,
                   "file %016" PRIx64 ": %u spans at %" PRIu64 " merged into one of %u bytes",
                   j->run.file, j->run.n, j->run.offset, j->run.size);
    } else if (rc == -PT_ESTALE) {
        k->stale++; /* the file changed: a later look sees the new version */
    } else {
        k->failed++;
        petrel_log(PT_LOG_WARN, LOG_MODULE, "file %016" PRIx64 ": %s: %s", j->run.file, step,
                   petrel_strerror(rc));
    }
    k->next_ms = now + (k->rate ? moved * 1000 / k->rate : 0);
    if (rc != 0 && rc != -PT_ESTALE && k->next_ms < now + COMPACT_EVERY_MS)
        k->next_ms = now + COMPACT_EVERY_MS;
    k->job = NULL;
    job_free(j);
}

typedef void (*step_fn)(void *ctx, int status, const uint8_t *reply, size_t len);

/* Propose one request of the run's change; `done` gets its reply. */
static void propose(struct compact_job *j, struct pt_shard_req *q, step_fn done, const char *step)
{
    uint8_t *enc = malloc(PT_SHARD_MSG_MAX);
    int n = enc ? pt_shard_req_encode(q, enc, PT_SHARD_MSG_MAX) : -PT_ENOMEM;
    int rc = n < 0 ? n : pt_node_propose(j->k->node, enc, (size_t)n, done, j);
    free(enc);
    if (rc) job_done(j, rc, step);
}

/* The reply of a step: its status (a proposal's or the op's) and body. */
static int step_reply(int status, const uint8_t *reply, size_t len, struct pt_cursor *body)
{
    if (status) return status;
    return pt_shard_reply_open(reply, len, body);
}

static void compacted(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct compact_job *j = ctx;
    struct pt_cursor body;
    job_done(j, step_reply(status, reply, len, &body), "compact");
}

static void swap_in(struct compact_job *j)
{
    struct pt_shard_req q;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_COMPACT_CHANGE;
    q.id = j->change;
    q.cookie = j->cookie;
    propose(j, &q, compacted, "compact");
}

static void certified(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct compact_job *j = ctx;
    struct pt_cursor body;
    int rc = step_reply(status, reply, len, &body);
    if (rc) {
        job_done(j, rc, "certify");
        return;
    }
    swap_in(j);
}

/* --- the thread pool: reads of the run, writes of the merged span ------------------------ */

static void io_work(uv_work_t *w)
{
    struct compact_job *j = w->data;
    struct pt_call_opts opts = {.timeout_ms = 5000, .retry_budget_ms = 3000};
    unsigned i, b;
    uint64_t at = 0;
    j->rc = 0;
    if (j->writing) {
        for (b = 0; b < j->copies && j->rc == 0; b++)
            j->rc = pt_blocks_write(j->new_addr[b], j->block[b], j->crc, j->buf, j->run.size,
                                    j->cert[b], &j->proof[b], &opts);
        return;
    }
    for (i = 0; i < j->run.n && j->rc == 0; i++) {
        const struct pt_span *s = &j->run.spans[i];
        uint8_t *to = j->buf + at;
        if (s->storage == PT_STORAGE_INLINE) {
            memcpy(to, s->inline_data, s->size);
        } else {
            int rc = -PT_EIO;
            for (b = 0; b < pt_span_block_count(s) && rc != 0; b++) {
                uint32_t got = 0, size = 0;
                if (!j->addr[i][b][0]) continue;
                rc = pt_blocks_read(j->addr[i][b], s->blocks[b].block, 0, s->size, to, &got, &size,
                                    &opts);
                if (rc == 0 && (got != s->size || size != s->block_size)) rc = -PT_ECORRUPT;
            }
            j->rc = rc;
        }
        if (j->rc == 0 && petrel_crc32c(0, to, s->size) != s->crc) j->rc = -PT_ECORRUPT;
        at += s->size;
    }
    if (j->rc == 0) j->crc = petrel_crc32c(0, j->buf, j->run.size);
}

static void written(struct compact_job *j);
static void read_done(struct compact_job *j);

static void io_after(uv_work_t *w, int status)
{
    struct compact_job *j = w->data;
    j->in_worker = 0;
    if (status) j->rc = -PT_ECANCELED;
    if (!pt_node_can_serve(j->k->node) && j->rc == 0) j->rc = -PT_ENOTLEADER;
    if (j->rc) {
        job_done(j, j->rc, j->writing ? "write" : "read");
        return;
    }
    if (j->writing)
        written(j);
    else
        read_done(j);
}

static void io_queue(struct compact_job *j)
{
    j->work.data = j;
    j->in_worker = 1;
    if (uv_queue_work(pt_node_loop(j->k->node), &j->work, io_work, io_after) != 0) {
        j->in_worker = 0;
        job_done(j, -PT_ENOMEM, "queue");
    }
}

/* Every copy written: check the proofs as the server does for a writer, then certify. */
static void written(struct compact_job *j)
{
    struct pt_shard_req q;
    uint8_t proofs[8 * PT_SPAN_BLOCKS_MAX];
    unsigned b;
    for (b = 0; b < j->copies; b++) {
        const struct pt_node_service *svc = pt_node_service_find(j->k->node, j->service[b]);
        if (!svc || !svc->has_secret ||
            !pt_block_mac_check(svc->secret, PT_BLOCK_WRITE_PROOF, j->service[b], j->block[b],
                                j->crc, j->run.size, j->proof[b])) {
            job_done(j, -PT_ENOTCERT, "proof");
            return;
        }
        pt_put_le64(proofs + 8 * b, j->proof[b]);
    }
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_CERTIFY_SPAN;
    q.id = j->change;
    q.cookie = j->cookie;
    q.offset = j->run.offset;
    q.data_ptr = proofs;
    q.data_len = 8 * j->copies;
    propose(j, &q, certified, "certify");
}

/* The merged span placed in the change file: write its copies with the certificates. */
static void placed(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct compact_job *j = ctx;
    struct pt_cursor body;
    unsigned n, b;
    int rc = step_reply(status, reply, len, &body);
    if (rc) {
        job_done(j, rc, "add span");
        return;
    }
    n = pt_dec_u8(&body);
    if (n != j->copies || !pt_cursor_ok(&body)) {
        job_done(j, -PT_EPROTO, "add span");
        return;
    }
    for (b = 0; b < n; b++) {
        const struct pt_node_service *svc;
        j->service[b] = pt_dec_u64(&body);
        j->block[b] = pt_dec_u64(&body);
        svc = pt_node_service_find(j->k->node, j->service[b]);
        if (!svc || !svc->has_secret || !svc->addr[0]) {
            job_done(j, -PT_EAGAIN, "add span");
            return;
        }
        snprintf(j->new_addr[b], sizeof(j->new_addr[b]), "%s", svc->addr);
        j->cert[b] = pt_block_mac(svc->secret, PT_BLOCK_WRITE_CERT, j->service[b], j->block[b],
                                  j->crc, j->run.size);
    }
    if (!pt_cursor_ok(&body)) {
        job_done(j, -PT_EPROTO, "add span");
        return;
    }
    j->writing = 1;
    io_queue(j);
}

static void inlined(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct compact_job *j = ctx;
    struct pt_cursor body;
    int rc = step_reply(status, reply, len, &body);
    if (rc) {
        job_done(j, rc, "add inline");
        return;
    }
    swap_in(j);
}

/* The change file exists: put the merged span at the run's start (it replaces the run). */
static void opened(void *ctx, int status, const uint8_t *reply, size_t len)
{
    struct compact_job *j = ctx;
    struct pt_shard_req q;
    struct pt_cursor body;
    int rc = step_reply(status, reply, len, &body);
    if (rc) {
        job_done(j, rc, "open change");
        return;
    }
    j->change = pt_dec_u64(&body);
    if (!pt_cursor_ok(&body)) {
        job_done(j, -PT_EPROTO, "open change");
        return;
    }
    memset(&q, 0, sizeof(q));
    q.id = j->change;
    q.cookie = j->cookie;
    q.offset = j->run.offset;
    q.size = j->run.size;
    q.crc = j->crc;
    if (j->run.size <= PT_INLINE_MAX) {
        q.op = PT_SHARD_ADD_INLINE;
        q.data_ptr = j->buf;
        q.data_len = j->run.size;
        propose(j, &q, inlined, "add inline");
        return;
    }
    q.op = PT_SHARD_ADD_SPAN;
    q.storage = PT_STORAGE_MIRRORED;
    q.data = 1;
    /* Copies as the run's mirrored spans have; a run of inline spans alone: the client's
     * default of two. */
    j->copies = j->run.copies ? j->run.copies : PT_COMPACT_INLINE_COPIES;
    q.parity = (uint8_t)(j->copies - 1);
    q.block_size = j->run.size;
    if ((rc = j->k->place(j->k->place_ctx, &q, j->copies)) != 0) {
        job_done(j, rc, "place");
        return;
    }
    propose(j, &q, placed, "add span");
}

/* The run's bytes are read and verified: open the compaction's change of the file. */
static void read_done(struct compact_job *j)
{
    struct pt_shard_req q;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_OPEN_CHANGE;
    q.id = j->run.file;
    q.cookie = j->cookie;
    q.expect = j->run.version;
    propose(j, &q, opened, "open change");
}

void pt_shard_compact_tick(struct pt_shard_compact *k, uint64_t now_ms)
{
    struct compact_job *j;
    unsigned i, b;
    int rc;
    if (!k->below || k->job || now_ms < k->next_ms || !pt_node_can_serve(k->node)) return;
    if (!k->mem && !(k->mem = malloc(sizeof(*j)))) return;
    j = k->mem;
    memset(j, 0, sizeof(*j));
    j->k = k;
    rc = pt_shard_sm_compact_find(k->sm, k->below, k->max, k->min_run, COMPACT_SCAN_BUDGET,
                                  &k->cursor, &j->run);
    if (rc > 0) PT_ASSERT(j->run.n >= 2 && j->run.n <= PT_COMPACT_RUN_MAX && j->run.size > 0);
    if (rc <= 0 || !(j->buf = malloc(j->run.size))) {
        if (rc < 0) k->failed++;
        /* Nothing here: the next look a moment later (at once when the scan ran out of its
         * budget in the middle of the table). */
        k->next_ms = k->cursor ? now_ms : now_ms + COMPACT_EVERY_MS;
        job_free(j);
        return;
    }
    for (i = 0; i < j->run.n; i++)
        for (b = 0; b < pt_span_block_count(&j->run.spans[i]); b++) {
            const struct pt_node_service *svc =
                pt_node_service_find(k->node, j->run.spans[i].blocks[b].service);
            if (svc && !svc->stale && svc->addr[0])
                snprintf(j->addr[i][b], sizeof(j->addr[i][b]), "%s", svc->addr);
        }
    /* The inline bytes point into the run record; the worker copies them out. */
    k->seq += 2;
    j->cookie = k->seq;
    k->job = j;
    io_queue(j);
}

void pt_shard_compact_close(struct pt_shard_compact *k)
{
    struct compact_job *j = k->mem;
    /* A job still on the thread pool when the loop stopped keeps its memory (the process is
     * ending); any other is freed. */
    if (j && j->in_worker) return;
    if (j) job_free(j);
    free(k->mem);
    k->mem = NULL;
    k->job = NULL;
}
