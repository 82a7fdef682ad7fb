/*
 * Rebuilding one block as a state machine on the env (see repair_rebuild.h). Steps:
 *   COPY      (drain only) read the lost block from its own, still serving, service;
 *   SURVIVORS read the span's other blocks one at a time until enough are good (mirrored: 1,
 *             Reed-Solomon: D), then rebuild;
 *   WRITE     write the rebuilt block under a certificate and check the proof;
 *   DONE      reported once through done().
 * Every transfer first asks the pacer; a wait is an env timer, never a sleep. The machine
 * never trusts a byte it did not check: each survivor against the span's recorded block CRC,
 * the rebuilt block against the lost block's CRC, the new service's answer against the proof
 * its secret yields. It holds one block-sized buffer per survivor it keeps (D at most) plus
 * the rebuilt block.
 */
#include "cluster/shard/repair_rebuild.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/ec/ec.h"
#include "cluster/proto/blocks_msg.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

enum { RB_COPY = 1, RB_SURVIVORS, RB_WRITE, RB_DONE };

uint64_t pt_repair_pace_wait(struct pt_repair_pace *p, uint64_t now_ms, uint64_t len)
{
    uint64_t due;
    if (!p->rate) {
        p->bytes += len;
        p->end_ms = now_ms;
        return 0;
    }
    /* Nothing moved or waited for longer than the idle pause: a new epoch. This only ever
     * gives credit away, so the bytes since the first epoch stay under rate x time since it. */
    if (p->end_ms == 0 || now_ms > p->end_ms + PT_REPAIR_PACE_IDLE_MS) {
        p->epoch_ms = now_ms;
        p->bytes = 0;
    }
    due = p->epoch_ms + ((p->bytes + len) * 1000 + p->rate - 1) / p->rate;
    if (now_ms < due) {
        p->end_ms = due; /* the wait is not idleness */
        return due - now_ms;
    }
    p->bytes += len;
    p->end_ms = now_ms ? now_ms : 1;
    return 0;
}

void pt_rebuild_release(struct pt_rebuild *b)
{
    unsigned i;
    for (i = 0; i < PT_SPAN_BLOCKS_MAX; i++) {
        free(b->src[i]);
        b->src[i] = NULL;
    }
    free(b->out);
    b->out = NULL;
}

static void finish(struct pt_rebuild *b, int status)
{
    b->step = RB_DONE;
    pt_rebuild_release(b);
    b->done(b->ctx, b, status);
}

static void advance(void *ctx);

/* 1 when the pacer lets `len` bytes move now; else a timer calls advance again. */
static int paced(struct pt_rebuild *b, uint32_t len)
{
    uint64_t wait = pt_repair_pace_wait(b->pace, pt_env_now(b->env), len);
    if (wait == 0) {
        b->bytes += len;
        return 1;
    }
    b->timer = pt_env_timer(b->env, wait, advance, b);
    return 0;
}

static void read_done(void *arg, int status, const uint8_t *data, size_t len)
{
    struct pt_rebuild *b = arg;
    unsigned j = b->reading;
    int good;
    b->busy = 0;
    if (b->cancelled) {
        pt_rebuild_release(b);
        free(b);
        return;
    }
    good = status == 0 && len == b->span.block_size &&
           petrel_crc32c(0, data, len) == b->span.blocks[j].crc;
    if (b->step == RB_COPY) {
        b->step = RB_SURVIVORS;
        if (good) {
            if (len) memcpy(b->out, data, len);
            b->step = RB_WRITE;
        }
    } else if (good && b->span.storage == PT_STORAGE_MIRRORED) {
        if (len) memcpy(b->out, data, len);
        b->have = 1;
    } else if (good) {
        if (!b->src[b->have] && !(b->src[b->have] = malloc(len ? len : 1))) {
            finish(b, -PT_ENOMEM);
            return;
        }
        if (len) memcpy(b->src[b->have], data, len);
        b->idx[b->have++] = j;
    }
    advance(b);
}

static void write_done(void *arg, int status, uint64_t proof)
{
    struct pt_rebuild *b = arg;
    const struct pt_block_ref *l = &b->span.blocks[b->lost];
    b->busy = 0;
    if (b->cancelled) {
        pt_rebuild_release(b);
        free(b);
        return;
    }
    if (status == 0 && !pt_block_mac_check(b->new_secret, PT_BLOCK_WRITE_PROOF, b->new_service,
                                           l->block, l->crc, b->span.block_size, proof))
        status = -PT_EACCES;
    finish(b, status);
}

/* Survivors are in: rebuild the lost block into out and check it. 0 or -PT_E*. */
static int rebuild(struct pt_rebuild *b)
{
    if (b->span.storage != PT_STORAGE_MIRRORED) {
        struct pt_ec ec;
        unsigned want = b->lost;
        uint8_t *dst[1] = {b->out};
        int rc = pt_ec_init(&ec, b->span.data, b->span.parity);
        if (rc == 0)
            rc = pt_ec_decode(&ec, b->span.block_size, b->have, b->idx, b->src, 1, &want, dst);
        if (rc) return rc;
    }
    if (petrel_crc32c(0, b->out, b->span.block_size) != b->span.blocks[b->lost].crc)
        return -PT_ECORRUPT;
    return 0;
}

static void advance(void *ctx)
{
    struct pt_rebuild *b = ctx;
    unsigned n = pt_span_block_count(&b->span);
    unsigned need = b->span.storage == PT_STORAGE_MIRRORED ? 1 : b->span.data;
    uint32_t bs = b->span.block_size;
    b->timer = 0;
    if (b->step == RB_COPY && !b->addr[b->lost][0]) b->step = RB_SURVIVORS;
    if (b->step == RB_COPY) {
        if (!paced(b, bs)) return;
        b->reading = b->lost;
        b->busy = 1;
        b->io->read(b->io->ctx, b->addr[b->lost], b->span.blocks[b->lost].block, bs, read_done, b);
        return;
    }
    if (b->step == RB_SURVIVORS) {
        int rc;
        if (b->have < need) {
            while (b->next < n && (b->next == b->lost || !b->addr[b->next][0]))
                b->next++;
            if (b->next == n) {
                finish(b, -PT_EIO);
                return;
            }
            if (!paced(b, bs)) return;
            b->reading = b->next++;
            b->busy = 1;
            b->io->read(b->io->ctx, b->addr[b->reading], b->span.blocks[b->reading].block, bs,
                        read_done, b);
            return;
        }
        rc = rebuild(b);
        if (rc) {
            finish(b, rc);
            return;
        }
        b->step = RB_WRITE;
    }
    if (b->step == RB_WRITE) {
        const struct pt_block_ref *l = &b->span.blocks[b->lost];
        uint64_t cert;
        if (!paced(b, bs)) return;
        cert =
            pt_block_mac(b->new_secret, PT_BLOCK_WRITE_CERT, b->new_service, l->block, l->crc, bs);
        b->busy = 1;
        b->io->write(b->io->ctx, b->new_addr, l->block, l->crc, b->out, bs, cert, write_done, b);
    }
}

int pt_rebuild_start(struct pt_rebuild *b)
{
    unsigned n = pt_span_block_count(&b->span);
    if (!b->env || !b->io || !b->pace || !b->done || b->lost >= n ||
        b->span.block_size > PT_BLOCK_MAX_SIZE || !b->new_addr[0] ||
        (b->span.storage != PT_STORAGE_MIRRORED && b->span.storage != PT_STORAGE_RS))
        return -PT_EINVAL;
    memset(b->src, 0, sizeof(b->src));
    b->out = malloc(b->span.block_size ? b->span.block_size : 1);
    if (!b->out) return -PT_ENOMEM;
    b->step = b->drain ? RB_COPY : RB_SURVIVORS;
    b->next = b->have = 0;
    b->busy = b->cancelled = 0;
    b->bytes = 0;
    /* the first step runs from the loop, never inside the caller */
    b->timer = pt_env_timer(b->env, 0, advance, b);
    return 0;
}

int pt_rebuild_cancel(struct pt_rebuild *b)
{
    if (b->timer) pt_env_cancel(b->env, b->timer);
    b->timer = 0;
    if (b->busy) {
        b->cancelled = 1;
        return 0;
    }
    pt_rebuild_release(b);
    return 1;
}
