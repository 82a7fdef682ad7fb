/*
 * The simulated clients: a random workload of shard requests (real codec) with per-attempt
 * timeouts, retries and leader redirection; every definitive answer goes to the checker. An
 * attempt that may have reached the log without an answer makes the op's outcome unknown.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/proto/shard_msgs.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "sim_cluster_impl.h"

/* ---- clients ------------------------------------------------------------------------------------- */

void sc_client_next(void *ctx);
static void client_send(struct client *cl);

static int encode_req(struct client *cl, struct pt_shard_req *q)
{
    int len = pt_shard_req_encode(q, cl->req, sizeof(cl->req));
    if (len < 0) return len;
    cl->req_len = (size_t)len;
    cl->is_write = pt_shard_op_is_write(q->op);
    cl->attempts = 0;
    cl->indeterminate = 0;
    return 0;
}

void sc_set_name(char *dst, uint8_t *len, unsigned idx)
{
    dst[0] = 'n';
    dst[1] = (char)('0' + idx);
    dst[2] = 0;
    *len = 2;
}

/* Build the request for the client's current stage. */
static void client_stage_req(struct client *cl)
{
    struct sim_cluster *c = cl->c;
    struct pt_shard_req q;
    memset(&q, 0, sizeof(q));
    switch (cl->kind) {
    case OP_MKDIR:
        q.op = PT_SHARD_MAKE_DIR;
        q.txn = 1000 + cl->shard;
        q.target = PT_INODE_ROOT;
        break;
    case OP_WRITE:
        if (cl->stage == 0) {
            q.op = PT_SHARD_CONSTRUCT_FILE;
            q.cookie = cl->cookie;
        } else if (cl->stage <= (int)cl->nspans) {
            unsigned s = (unsigned)cl->stage - 1;
            q.op = PT_SHARD_ADD_INLINE;
            q.id = cl->file_id;
            q.cookie = cl->cookie;
            q.offset = s ? cl->dlen[0] : 0;
            q.size = (uint32_t)cl->dlen[s];
            q.crc = petrel_crc32c(0, cl->data[s], cl->dlen[s]);
            q.data_ptr = cl->data[s];
            q.data_len = (uint32_t)cl->dlen[s];
        } else if (cl->cas && cl->stage == (int)cl->nspans + 1) {
            q.op = PT_SHARD_LOOKUP; /* what LINK_REPLACE may replace */
            q.id = c->model[cl->shard].dir;
            sc_set_name(q.name, &q.name_len, cl->name);
        } else {
            q.op = cl->cas ? PT_SHARD_LINK_REPLACE : PT_SHARD_LINK_FILE;
            q.id = cl->file_id;
            q.cookie = cl->cookie;
            q.target = c->model[cl->shard].dir;
            q.expect = cl->cas ? cl->seen[0] : 0;
            sc_set_name(q.name, &q.name_len, cl->name);
        }
        break;
    case OP_LOOKUP:
        q.op = PT_SHARD_LOOKUP;
        q.id = c->model[cl->shard].dir;
        sc_set_name(q.name, &q.name_len, cl->name);
        break;
    case OP_READ:
        if (cl->stage == 0) {
            q.op = PT_SHARD_LOOKUP;
            q.id = c->model[cl->shard].dir;
            sc_set_name(q.name, &q.name_len, cl->name);
        } else if (cl->stage == 1) {
            q.op = PT_SHARD_STAT;
            q.id = cl->file_id;
        } else {
            q.op = PT_SHARD_SPANS;
            q.id = cl->file_id;
            q.max = 16;
        }
        break;
    case OP_READDIR:
        q.op = PT_SHARD_READDIR;
        q.id = c->model[cl->shard].dir;
        break;
    case OP_CHANGE:
        /* lookup, stat, OPEN_CHANGE (expecting the version seen), then append one span (or
         * truncate to 0 and write one anew), COMMIT_CHANGE */
        if (cl->stage == 0) {
            q.op = PT_SHARD_LOOKUP;
            q.id = c->model[cl->shard].dir;
            sc_set_name(q.name, &q.name_len, cl->name);
        } else if (cl->stage == 1) {
            q.op = PT_SHARD_STAT;
            q.id = cl->file_id;
        } else if (cl->stage == 2) {
            q.op = PT_SHARD_OPEN_CHANGE;
            q.id = cl->file_id;
            q.cookie = cl->cookie;
            q.expect = cl->seen[0];
        } else if (cl->rewrite && cl->stage == 3) {
            q.op = PT_SHARD_TRUNCATE_SPANS;
            q.id = cl->change_id;
            q.cookie = cl->cookie;
            q.offset = 0;
            q.expect = cl->base_size;
        } else if (cl->stage == 3 + cl->rewrite) {
            q.op = PT_SHARD_ADD_INLINE;
            q.id = cl->change_id;
            q.cookie = cl->cookie;
            q.offset = cl->rewrite ? 0 : cl->base_size;
            q.size = (uint32_t)cl->dlen[0];
            q.crc = petrel_crc32c(0, cl->data[0], cl->dlen[0]);
            q.data_ptr = cl->data[0];
            q.data_len = (uint32_t)cl->dlen[0];
        } else {
            q.op = PT_SHARD_COMMIT_CHANGE;
            q.id = cl->change_id;
            q.cookie = cl->cookie;
        }
        break;
    case OP_COMPACT:
        /* what a shard leader's compaction does (shard_compact.c), with inline spans: lookup,
         * stat, SPANS, OPEN_CHANGE (expecting the version seen), ADD_INLINE of the run's bytes
         * at its start (it replaces the run), COMPACT_CHANGE */
        if (cl->stage == 0) {
            q.op = PT_SHARD_LOOKUP;
            q.id = c->model[cl->shard].dir;
            sc_set_name(q.name, &q.name_len, cl->name);
        } else if (cl->stage == 1) {
            q.op = PT_SHARD_STAT;
            q.id = cl->file_id;
        } else if (cl->stage == 2) {
            q.op = PT_SHARD_SPANS;
            q.id = cl->file_id;
            q.max = 16;
        } else if (cl->stage == 3) {
            q.op = PT_SHARD_OPEN_CHANGE;
            q.id = cl->file_id;
            q.cookie = cl->cookie;
            q.expect = cl->seen[0];
        } else if (cl->stage == 4) {
            q.op = PT_SHARD_ADD_INLINE;
            q.id = cl->change_id;
            q.cookie = cl->cookie;
            q.offset = cl->run_off;
            q.size = (uint32_t)cl->merged_len;
            q.crc = petrel_crc32c(0, cl->merged, cl->merged_len);
            q.data_ptr = cl->merged;
            q.data_len = (uint32_t)cl->merged_len;
        } else {
            q.op = PT_SHARD_COMPACT_CHANGE;
            q.id = cl->change_id;
            q.cookie = cl->cookie;
        }
        break;
    case OP_RENAME:
        q.id = c->model[cl->shard].dir;
        if (cl->cas && cl->stage < 2) { /* RENAME_INODE: look up name, then name2 */
            q.op = PT_SHARD_LOOKUP;
            sc_set_name(q.name, &q.name_len, cl->stage == 0 ? cl->name : cl->name2);
            break;
        }
        q.op = cl->cas ? PT_SHARD_RENAME_INODE : PT_SHARD_RENAME;
        q.target = cl->seen[0];
        q.expect = cl->seen[1];
        sc_set_name(q.name, &q.name_len, cl->name);
        sc_set_name(q.name2, &q.name2_len, cl->name2);
        break;
    case OP_UNLINK:
        q.id = c->model[cl->shard].dir;
        sc_set_name(q.name, &q.name_len, cl->name);
        if (cl->cas && cl->stage == 0) { /* UNLINK_INODE: look the name up first */
            q.op = PT_SHARD_LOOKUP;
            break;
        }
        q.op = cl->cas ? PT_SHARD_UNLINK_INODE : PT_SHARD_UNLINK;
        q.expect = cl->seen[0];
        break;
    }
    if (encode_req(cl, &q) != 0) abort();
}

static void client_done(struct client *cl, int outcome)
{
    struct sim_cluster *c = cl->c;
    c->res->ops_done++;
    if (outcome > 0) c->res->ops_acked++;
    else if (outcome == 0) c->res->ops_failed++;
    else c->res->ops_unknown++;
    cl->busy = 0;
    if (!c->stop_clients) pt_env_timer(cl->env, sim_below(c->sim, 40), sc_client_next, cl);
}

static void attempt_timeout(void *ctx)
{
    struct client *cl = ctx;
    cl->timer = 0;
    if (cl->is_write) cl->indeterminate = 1;
    cl->target[cl->shard] = (cl->target[cl->shard] + 1) % cl->c->cfg.replicas;
    client_send(cl);
}

static void client_send(struct client *cl)
{
    uint8_t msg[REQ_MAX + 16];
    char to[PT_ENV_ADDR_MAX];
    if (cl->attempts++ >= MAX_ATTEMPTS) {
        /* give up: the outcome of a write is unknown, a read just did not happen */
        client_done(cl, cl->is_write ? -1 : 0);
        return;
    }
    cl->req_id = (uint64_t)cl->idx << 48 | ++cl->seq;
    pt_put_le64(msg + 4, cl->req_id);
    memcpy(msg + 12, cl->req, cl->req_len);
    pt_put_le32(msg, petrel_crc32c(0, msg + 4, 8 + cl->req_len));
    snprintf(to, sizeof(to), "s%ur%u", cl->shard, cl->target[cl->shard]);
    pt_env_send(cl->env, to, msg, 12 + cl->req_len);
    cl->timer = pt_env_timer(cl->env, ATTEMPT_MS, attempt_timeout, cl);
}

static void retry_later(struct client *cl, uint64_t ms)
{
    if (cl->timer) pt_env_cancel(cl->env, cl->timer);
    cl->timer = pt_env_timer(cl->env, ms, (pt_env_cb)client_send, cl);
}

/* A definitive answer for the current stage. */
static void client_result(struct client *cl, int st, uint64_t index, struct pt_cursor *body)
{
    struct sim_cluster *c = cl->c;
    uint64_t key = sc_sum64(cl->req, cl->req_len), id;
    if (cl->is_write && st == 0) {
        if (index > c->model[cl->shard].acked_max) c->model[cl->shard].acked_max = index;
        if (cl->kind == OP_WRITE) sc_keyset_add(&c->acked_keys[cl->shard], key);
        if (index == 0 || index > c->model[cl->shard].committed)
            sc_violate(c, "client c%u: write acknowledged at index %llu, committed is %llu", cl->idx,
                    (unsigned long long)index, (unsigned long long)c->model[cl->shard].committed);
    }
    if (cl->is_write && st != 0 && !cl->indeterminate && cl->kind == OP_WRITE)
        sc_keyset_add(&c->failed_keys[cl->shard], key);
    switch (cl->kind) {
    case OP_MKDIR:
        if (st == 0) c->model[cl->shard].dir = pt_dec_u64(body);
        client_done(cl, st == 0 ? 1 : 0);
        return;
    case OP_WRITE:
        if (cl->cas && cl->stage == (int)cl->nspans + 1) { /* the lookup before LINK_REPLACE */
            if (st == 0 || st == -PT_ENOENT) sc_check_lookup(cl, st, body, &cl->seen[0]);
            if (st != 0 && st != -PT_ENOENT) {
                client_done(cl, 0);
                return;
            }
            cl->stage++;
            client_stage_req(cl);
            client_send(cl);
            return;
        }
        if (st != 0) {
            client_done(cl, cl->indeterminate ? -1 : 0);
            return;
        }
        if (cl->stage == 0) cl->file_id = pt_dec_u64(body);
        if (cl->stage == (int)cl->nspans + 1 + cl->cas) {
            client_done(cl, 1);
            return;
        }
        cl->stage++;
        client_stage_req(cl);
        client_send(cl);
        return;
    case OP_LOOKUP:
        if (st == 0 || st == -PT_ENOENT) sc_check_lookup(cl, st, body, &id);
        client_done(cl, st == 0 ? 1 : 0);
        return;
    case OP_CHANGE:
        if (cl->stage == 0) {
            if (st == 0 || st == -PT_ENOENT) sc_check_lookup(cl, st, body, &id);
            if (st != 0 || !id) {
                client_done(cl, 0);
                return;
            }
            cl->file_id = id;
        } else if (cl->stage == 1) {
            struct pt_shard_stat sst;
            if (st != 0 || pt_shard_reply_stat(body, &sst) != 0 || sst.type != PT_TYPE_FILE ||
                sst.state != PT_FILE_LINKED) {
                client_done(cl, 0); /* gone, or a node: nothing to change */
                return;
            }
            cl->seen[0] = sst.version;
            cl->base_size = sst.size;
            /* files stay small enough for one SPANS page and the checker's buffer */
            if (sst.spans >= 12 || sst.size + cl->dlen[0] > 512) cl->rewrite = 1;
        } else if (st != 0) {
            /* a lost race (the file changed or went since the stat: ESTALE at open or commit,
             * checked against the model by the checker) or an unknown outcome */
            if (st == -PT_ESTALE && cl->stage == 4 + cl->rewrite) c->res->changes_refused++;
            client_done(cl, cl->indeterminate ? -1 : 0);
            return;
        } else if (cl->stage == 2) {
            cl->change_id = pt_dec_u64(body);
            if (pt_dec_u64(body) != cl->seen[0] || pt_dec_u64(body) != cl->base_size)
                sc_violate(c, "client c%u: OPEN_CHANGE of %llx answered another version or size "
                           "than it was asked to expect",
                        cl->idx, (unsigned long long)cl->file_id);
        } else if (cl->stage == 4 + cl->rewrite) {
            c->res->changes_committed++;
            client_done(cl, 1); /* committed: the new version replaced the one seen */
            return;
        }
        cl->stage++;
        client_stage_req(cl);
        client_send(cl);
        return;
    case OP_COMPACT:
        if (cl->stage == 0) {
            if (st == 0 || st == -PT_ENOENT) sc_check_lookup(cl, st, body, &id);
            if (st != 0 || !id) {
                client_done(cl, 0);
                return;
            }
            cl->file_id = id;
        } else if (cl->stage == 1) {
            struct pt_shard_stat sst;
            if (st != 0 || pt_shard_reply_stat(body, &sst) != 0 || sst.type != PT_TYPE_FILE ||
                sst.state != PT_FILE_LINKED || sst.spans < 2) {
                client_done(cl, 0); /* gone, a node, or nothing to merge */
                return;
            }
            cl->seen[0] = sst.version;
        } else if (cl->stage == 2) {
            /* a random run of two or more spans (every span is inline here) */
            struct pt_span sp[16];
            uint16_t n, i, first, count;
            uint64_t end = 0;
            if (st != 0) {
                client_done(cl, 0);
                return;
            }
            (void)pt_dec_u64(body);
            n = pt_dec_u16(body);
            for (i = 0; i < n && i < 16; i++)
                if (pt_span_decode(body, &sp[i]) != 0 || sp[i].storage != PT_STORAGE_INLINE ||
                    sp[i].offset != end) {
                    client_done(cl, 0);
                    return;
                } else {
                    end += sp[i].size;
                }
            if (n < 2 || n > 16) {
                client_done(cl, 0);
                return;
            }
            first = (uint16_t)sim_below(c->sim, (uint64_t)n - 1);
            count = (uint16_t)(2 + sim_below(c->sim, (uint64_t)(n - first - 1)));
            cl->run_off = sp[first].offset;
            cl->merged_len = 0;
            for (i = first; i < first + count; i++) {
                if (cl->merged_len + sp[i].inline_len > sizeof(cl->merged)) break;
                memcpy(cl->merged + cl->merged_len, sp[i].inline_data, sp[i].inline_len);
                cl->merged_len += sp[i].inline_len;
            }
            if (i < first + count || cl->merged_len > PT_INLINE_MAX) {
                client_done(cl, 0);
                return;
            }
        } else if (st != 0) {
            /* ESTALE: a writer's commit came first (checked against the model); EINVAL:
             * another compaction merged the run first; or an unknown outcome */
            if (cl->stage == 5) c->res->compactions_refused++;
            client_done(cl, cl->indeterminate ? -1 : 0);
            return;
        } else if (cl->stage == 3) {
            cl->change_id = pt_dec_u64(body);
        } else if (cl->stage == 5) {
            c->res->compactions++;
            client_done(cl, 1);
            return;
        }
        cl->stage++;
        client_stage_req(cl);
        client_send(cl);
        return;
    case OP_READDIR:
        if (st == 0) sc_check_readdir(cl, body);
        client_done(cl, st == 0 ? 1 : 0);
        return;
    case OP_READ:
        if (cl->stage == 0) {
            if (st == 0 || st == -PT_ENOENT) sc_check_lookup(cl, st, body, &id);
            if (st != 0 || !id) {
                client_done(cl, 0);
                return;
            }
            cl->file_id = id;
            cl->stage = 1;
            client_stage_req(cl);
            client_send(cl);
            return;
        }
        if (cl->stage == 1) {
            if (st == 0) sc_check_stat(cl, body);
            if (st != 0) {
                client_done(cl, 0);
                return;
            }
            cl->stage = 2;
            client_stage_req(cl);
            client_send(cl);
            return;
        }
        /* the name may have moved on and the file been retired: its bytes never change */
        if (st == 0) sc_check_spans(cl, body);
        client_done(cl, st == 0 ? 1 : 0);
        return;
    case OP_RENAME:
    case OP_UNLINK:
        if (cl->cas && cl->stage < (cl->kind == OP_RENAME ? 2 : 1)) {
            unsigned name = cl->name;
            if (cl->stage == 1) { /* sc_check_lookup checks cl->name */
                cl->name = cl->name2;
            }
            if (st == 0 || st == -PT_ENOENT) sc_check_lookup(cl, st, body, &cl->seen[cl->stage]);
            cl->name = name;
            /* nothing to move or remove: done, nothing happened */
            if ((st != 0 && st != -PT_ENOENT) || (cl->stage == 0 && !cl->seen[0])) {
                client_done(cl, 0);
                return;
            }
            cl->stage++;
            client_stage_req(cl);
            client_send(cl);
            return;
        }
        /* a retry after a lost reply may find its own work done: outcome unknown */
        client_done(cl, st == 0 ? 1 : (cl->indeterminate ? -1 : 0));
        return;
    default:
        client_done(cl, st == 0 ? 1 : (cl->indeterminate ? -1 : 0));
        return;
    }
}

void sc_on_client_reply(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct client *cl = ctx;
    struct pt_cursor body;
    int st;
    unsigned hint;
    uint64_t index;
    (void)from;
    if (len < 25 || pt_get_le32(msg) != petrel_crc32c(0, msg + 4, len - 4)) return;
    if (!cl->busy || pt_get_le64(msg + 4) != cl->req_id || !cl->timer) return;
    pt_env_cancel(cl->env, cl->timer);
    cl->timer = 0;
    st = (int)pt_get_le32(msg + 12);
    hint = msg[16];
    index = pt_get_le64(msg + 17);
    pt_cursor_init(&body, (void *)(msg + 25), len - 25);
    switch (st) {
    case -PT_ENOTLEADER:
        /* never proposed: no effect; go where the replica says the leader is */
        cl->target[cl->shard] = hint >= 1 && hint <= cl->c->cfg.replicas
                                    ? hint - 1
                                    : (cl->target[cl->shard] + 1) % cl->c->cfg.replicas;
        retry_later(cl, 20);
        return;
    case -PT_ECANCELED:
    case -PT_EIO:
        if (cl->is_write) cl->indeterminate = 1;
        cl->target[cl->shard] = (cl->target[cl->shard] + 1) % cl->c->cfg.replicas;
        retry_later(cl, 50);
        return;
    case -PT_EAGAIN:
        retry_later(cl, 50);
        return;
    default:
        client_result(cl, st, index, &body);
    }
}

void sc_client_next(void *ctx)
{
    struct client *cl = ctx;
    struct sim_cluster *c = cl->c;
    unsigned i;
    if (c->stop_clients || cl->busy || c->violated) return;
    cl->busy = 1;
    cl->stage = 0;
    cl->shard = (unsigned)sim_below(c->sim, c->cfg.shards);
    if (!c->model[cl->shard].dir) {
        cl->kind = OP_MKDIR;
    } else {
        uint64_t r = sim_below(c->sim, 100);
        cl->kind = r < 30 ? OP_WRITE : r < 42 ? OP_LOOKUP : r < 50 ? OP_READDIR
                   : r < 68 ? OP_READ : r < 78 ? OP_RENAME : r < 86 ? OP_UNLINK
                   : r < 95 ? OP_CHANGE : OP_COMPACT;
    }
    /* few names, several clients: creates of the same name collide */
    cl->name = (unsigned)sim_below(c->sim, NAMES);
    cl->name2 = (unsigned)sim_below(c->sim, NAMES);
    /* half the name changes as compare-and-set on what the client saw (what the library sends) */
    cl->cas = (cl->kind == OP_WRITE || cl->kind == OP_RENAME || cl->kind == OP_UNLINK) &&
              sim_below(c->sim, 2) == 0;
    cl->seen[0] = cl->seen[1] = 0;
    if (cl->kind == OP_COMPACT) cl->cookie = sim_random(c->sim) | 1;
    if (cl->kind == OP_CHANGE) {
        cl->cookie = sim_random(c->sim) | 1;
        cl->rewrite = (int)sim_below(c->sim, 2);
        cl->dlen[0] = 1 + (size_t)sim_below(c->sim, sizeof(cl->data[0]));
        sim_fill(c->sim, cl->data[0], cl->dlen[0]);
    }
    if (cl->kind == OP_WRITE) {
        cl->cookie = sim_random(c->sim) | 1;
        cl->nspans = 1 + (unsigned)sim_below(c->sim, 2);
        for (i = 0; i < cl->nspans; i++) {
            cl->dlen[i] = 1 + (size_t)sim_below(c->sim, sizeof(cl->data[i]));
            sim_fill(c->sim, cl->data[i], cl->dlen[i]);
        }
    }
    cl->op_lo = c->model[cl->shard].acked_max;
    client_stage_req(cl);
    client_send(cl);
}

