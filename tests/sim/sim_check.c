/*
 * The checker of the simulated cluster (see sim_cluster.c's opening comment for what it
 * checks): the committed history H recorded from every replica's FSM, the model fed by H, the
 * checks of every client reply against the model, and the final checks after healing.
 * Never changes what it observes; a violation is recorded once and ends the run.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/proto/shard_msgs.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "sim_cluster_impl.h"

void sc_violate(struct sim_cluster *c, const char *fmt, ...)
{
    va_list ap;
    if (c->violated) return;
    c->violated = 1;
    va_start(ap, fmt);
    vsnprintf(c->res->violation, sizeof(c->res->violation), fmt, ap);
    va_end(ap);
}

uint64_t sc_sum64(const void *buf, size_t len)
{
    return ((uint64_t)petrel_crc32c(0, buf, len) << 32) ^ (uint64_t)len ^
           ((uint64_t)petrel_crc32c(0x9e3779b9u, buf, len) << 8);
}

void sc_keyset_add(struct keyset *s, uint64_t k)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->k = realloc(s->k, s->cap * sizeof(*s->k));
        if (!s->k) abort();
    }
    s->k[s->n++] = k;
}

int sc_keyset_has(const struct keyset *s, uint64_t k)
{
    size_t i;
    for (i = 0; i < s->n; i++)
        if (s->k[i] == k) return 1;
    return 0;
}

struct mfile *sc_file_find(struct sim_cluster *c, uint64_t id)
{
    size_t i;
    for (i = c->n_files; i-- > 0;)
        if (c->files[i].id == id) return &c->files[i];
    return NULL;
}

static struct mfile *file_add(struct sim_cluster *c, uint64_t id, uint64_t cookie);
static struct mfile *file_add(struct sim_cluster *c, uint64_t id, uint64_t cookie)
{
    struct mfile *f;
    if (c->n_files == c->files_cap) {
        c->files_cap = c->files_cap ? c->files_cap * 2 : 256;
        c->files = realloc(c->files, c->files_cap * sizeof(*c->files));
        if (!c->files) abort();
    }
    f = &c->files[c->n_files++];
    memset(f, 0, sizeof(*f));
    f->id = id;
    f->cookie = cookie;
    f->state = PT_FILE_TRANSIENT;
    return f;
}

int sc_name_index(const char *name, size_t len)
{
    if (len != 2 || name[0] != 'n' || name[1] < '0' || name[1] >= '0' + NAMES) return -1;
    return name[1] - '0';
}

static void version_push(struct shard_model *m, uint64_t index)
{
    if (m->n_ver && m->ver[m->n_ver - 1].index == index) {
        memcpy(m->ver[m->n_ver - 1].names, m->cur, sizeof(m->cur));
        return;
    }
    if (m->n_ver == m->ver_cap) {
        m->ver_cap = m->ver_cap ? m->ver_cap * 2 : 256;
        m->ver = realloc(m->ver, m->ver_cap * sizeof(*m->ver));
        if (!m->ver) abort();
    }
    m->ver[m->n_ver].index = index;
    memcpy(m->ver[m->n_ver].names, m->cur, sizeof(m->cur));
    m->n_ver++;
}

/*
 * LINK_FILE / LINK_REPLACE (PROTOCOL.md, ops 20 and 28). A transient file gets the name if it
 * is free (LINK_FILE, or LINK_REPLACE expecting 0) or holds exactly `expect` (which is then
 * unlinked). A retry of a link whose first try committed (same file, same cookie) succeeds
 * without acting: the file holds that name, or was linked in this directory and has lost its
 * name since. Anything else that succeeds gave a file a second name.
 */
static void model_link(struct sim_cluster *c, unsigned shard, uint64_t index,
                       const struct pt_shard_req *q, int ni, int st, struct pt_cursor *body)
{
    struct shard_model *m = &c->model[shard];
    struct mfile *f = sc_file_find(c, q->id), *old;
    uint64_t expect = q->op == PT_SHARD_LINK_REPLACE ? q->expect : 0;
    if (st == 0) {
        uint64_t replaced = q->op == PT_SHARD_LINK_REPLACE ? pt_dec_u64(body) : 0;
        if (!f) {
            sc_violate(c, "shard %u index %llu: link of unknown file %llx", shard,
                    (unsigned long long)index, (unsigned long long)q->id);
            return;
        }
        if (f->state != PT_FILE_TRANSIENT) {
            /* a retry: acts on nothing, answers what the first try answered */
            if (f->cookie != q->cookie ||
                !((f->state == PT_FILE_LINKED && m->cur[ni] == q->id) ||
                  f->state == PT_FILE_UNLINKED))
                sc_violate(c, "shard %u index %llu: file %llx (state %u) linked twice (as n%d, "
                           "which holds %llx)",
                        shard, (unsigned long long)index, (unsigned long long)q->id, f->state, ni,
                        (unsigned long long)m->cur[ni]);
            else if (replaced != expect)
                sc_violate(c, "shard %u index %llu: retried link of %llx answered %llx, not %llx",
                        shard, (unsigned long long)index, (unsigned long long)q->id,
                        (unsigned long long)replaced, (unsigned long long)expect);
            return;
        }
        if (m->cur[ni] != expect || replaced != expect)
            sc_violate(c, "shard %u index %llu: link of %llx as n%d (expecting %llx, replaced %llx) "
                       "while it names %llx",
                    shard, (unsigned long long)index, (unsigned long long)q->id, ni,
                    (unsigned long long)expect, (unsigned long long)replaced,
                    (unsigned long long)m->cur[ni]);
        if (m->cur[ni] && (old = sc_file_find(c, m->cur[ni])) != NULL) old->state = PT_FILE_UNLINKED;
        f->state = PT_FILE_LINKED;
        m->cur[ni] = q->id;
        return;
    }
    if (!f || f->state != PT_FILE_TRANSIENT) return; /* a refused retry or a stranger's file */
    if (st == -PT_EEXIST && (expect || !m->cur[ni]))
        sc_violate(c, "shard %u index %llu: link of %llx (expecting %llx) refused with EEXIST, "
                   "n%d holds %llx",
                shard, (unsigned long long)index, (unsigned long long)q->id,
                (unsigned long long)expect, ni, (unsigned long long)m->cur[ni]);
    if (st == -PT_ESTALE && (!expect || m->cur[ni] == expect))
        sc_violate(c, "shard %u index %llu: link of %llx (expecting %llx) refused with ESTALE, "
                   "n%d holds %llx",
                shard, (unsigned long long)index, (unsigned long long)q->id,
                (unsigned long long)expect, ni, (unsigned long long)m->cur[ni]);
}

/*
 * RENAME / RENAME_INODE within the model's directory (ops 22 and 30): RENAME_INODE acts only
 * while name holds `target` and name2 holds `expect` (0: free).
 */
static void model_rename(struct sim_cluster *c, unsigned shard, uint64_t index,
                         const struct pt_shard_req *q, int ni, int n2, int st,
                         struct pt_cursor *body)
{
    struct shard_model *m = &c->model[shard];
    struct mfile *f;
    int checked = q->op == PT_SHARD_RENAME_INODE;
    if (st == 0) {
        uint64_t replaced = pt_dec_u64(body);
        if (!m->cur[ni] || (checked && m->cur[ni] != q->target)) {
            sc_violate(c, "shard %u index %llu: rename of n%d (expecting %llx) succeeded, model "
                       "has %llx",
                    shard, (unsigned long long)index, ni, (unsigned long long)q->target,
                    (unsigned long long)m->cur[ni]);
            return;
        }
        if (ni == n2 || m->cur[ni] == m->cur[n2]) return;
        if (replaced != m->cur[n2] || (checked && replaced != q->expect))
            sc_violate(c, "shard %u index %llu: rename n%d->n%d replaced %llx, model has %llx",
                    shard, (unsigned long long)index, ni, n2, (unsigned long long)replaced,
                    (unsigned long long)m->cur[n2]);
        if (m->cur[n2] && (f = sc_file_find(c, m->cur[n2])) != NULL) f->state = PT_FILE_UNLINKED;
        m->cur[n2] = m->cur[ni];
        m->cur[ni] = 0;
        return;
    }
    if (st == -PT_ENOENT && m->cur[ni])
        sc_violate(c, "shard %u index %llu: rename of present n%d said ENOENT", shard,
                (unsigned long long)index, ni);
    if (st == -PT_ESTALE &&
        (!checked || (m->cur[ni] == q->target && m->cur[n2] == q->expect)))
        sc_violate(c, "shard %u index %llu: rename n%d->n%d (expecting %llx, %llx) said ESTALE, "
                   "model has %llx, %llx",
                shard, (unsigned long long)index, ni, n2, (unsigned long long)q->target,
                (unsigned long long)q->expect, (unsigned long long)m->cur[ni],
                (unsigned long long)m->cur[n2]);
    if (st == -PT_EEXIST && (!checked || q->expect || !m->cur[n2]))
        sc_violate(c, "shard %u index %llu: rename n%d->n%d said EEXIST, model has %llx", shard,
                (unsigned long long)index, ni, n2, (unsigned long long)m->cur[n2]);
}

/*
 * Files that change (issue 12; PROTOCOL.md ops 42-44). OPEN_CHANGE gives a change file with
 * its base's bytes; COMMIT_CHANGE must succeed exactly when the base is still linked and no
 * other commit reached it since the change was opened (compare-and-swap on the version: two
 * versions never interleave, a lost update is impossible), and a refusal (PT_ESTALE) must be
 * one the model predicts. The replaced content is kept for reads that started before.
 */
static void model_change(struct sim_cluster *c, unsigned shard, uint64_t index,
                         const struct pt_shard_req *q, int st, struct pt_cursor *body)
{
    struct mfile *f = sc_file_find(c, q->id), *b, *n;
    switch (q->op) {
    case PT_SHARD_OPEN_CHANGE: {
        uint64_t id, version;
        if (st != 0) {
            if (st == -PT_ESTALE && f && f->state == PT_FILE_LINKED && !q->expect)
                sc_violate(c, "shard %u index %llu: OPEN_CHANGE of linked %llx (any version) said "
                           "ESTALE",
                        shard, (unsigned long long)index, (unsigned long long)q->id);
            return;
        }
        id = pt_dec_u64(body);
        version = pt_dec_u64(body);
        if (!f || f->state != PT_FILE_LINKED) {
            sc_violate(c, "shard %u index %llu: OPEN_CHANGE of %llx (state %d) succeeded", shard,
                    (unsigned long long)index, (unsigned long long)q->id, f ? f->state : -1);
            return;
        }
        if (f->ver_seen && ((f->commits == f->ver_commits && version != f->ver_seen) ||
                            (f->commits != f->ver_commits && version <= f->ver_seen)))
            sc_violate(c, "shard %u index %llu: file %llx at version %llu after %llu, with %llu "
                       "commits since",
                    shard, (unsigned long long)index, (unsigned long long)q->id,
                    (unsigned long long)version, (unsigned long long)f->ver_seen,
                    (unsigned long long)(f->commits - f->ver_commits));
        f->ver_seen = version;
        f->ver_commits = f->commits;
        n = file_add(c, id, q->cookie);
        f = sc_file_find(c, q->id); /* file_add may have moved the array */
        n->base = f->id;
        n->base_commits = f->commits;
        n->data = malloc(f->len ? f->len : 1);
        if (!n->data) abort();
        memcpy(n->data, f->data, f->len);
        n->len = f->len;
        return;
    }
    case PT_SHARD_TRUNCATE_SPANS:
        if (st == 0 && f && q->offset < f->len) f->len = (size_t)q->offset;
        return;
    case PT_SHARD_COMMIT_CHANGE:
    case PT_SHARD_COMPACT_CHANGE: {
        int may;
        if (!f || !f->base) return; /* not a change the model knows: refused anyway */
        b = sc_file_find(c, f->base);
        if (f->committed) { /* a repeat: answers the first commit, changes nothing */
            if (st != 0 && f->cookie == q->cookie)
                sc_violate(c, "shard %u index %llu: repeated commit of %llx refused (%d)", shard,
                        (unsigned long long)index, (unsigned long long)q->id, st);
            return;
        }
        may = b && b->state == PT_FILE_LINKED && b->commits == f->base_commits &&
              f->state == PT_FILE_TRANSIENT && f->cookie == q->cookie;
        if (st == 0 && !may)
            sc_violate(c, "shard %u index %llu: commit of change %llx succeeded although its base "
                       "%llx had %llu commits since it opened (state %d): versions interleaved",
                    shard, (unsigned long long)index, (unsigned long long)q->id,
                    (unsigned long long)f->base, b ? (unsigned long long)(b->commits - f->base_commits) : 0ull,
                    b ? b->state : -1);
        if (st == -PT_ESTALE && may)
            sc_violate(c, "shard %u index %llu: commit of change %llx said ESTALE although nothing "
                       "changed its base %llx",
                    shard, (unsigned long long)index, (unsigned long long)q->id,
                    (unsigned long long)f->base);
        if (st != 0 || !b) return;
        if (q->op == PT_SHARD_COMPACT_CHANGE) {
            /* A compaction changes no byte and no version: the base keeps its bytes (and its
             * commit count, so a writer's change opened before still commits: a concurrent
             * change wins); the change file keeps the old spans, unlinked. */
            if (f->len != b->len || memcmp(f->data, b->data, b->len) != 0)
                sc_violate(c, "shard %u index %llu: compaction %llx of %llx swapped in %zu bytes "
                           "that are not the file's %zu",
                        shard, (unsigned long long)index, (unsigned long long)q->id,
                        (unsigned long long)f->base, f->len, b->len);
            f->committed = 1;
            f->state = PT_FILE_UNLINKED;
            return;
        }
        /* the base takes the change's bytes; the change file keeps the old ones, unlinked */
        b->old = realloc(b->old, (b->n_old + 1) * sizeof(*b->old));
        if (!b->old) abort();
        b->old[b->n_old].index = index;
        b->old[b->n_old].data = b->data;
        b->old[b->n_old].len = b->len;
        b->n_old++;
        b->data = malloc(f->len ? f->len : 1);
        if (!b->data) abort();
        memcpy(b->data, f->data, f->len);
        b->len = f->len;
        b->commits++;
        f->committed = 1;
        f->state = PT_FILE_UNLINKED;
        return;
    }
    default:
        return;
    }
}

/* One committed request and its reply, first time seen: feed the model, check consistency. */
static void model_apply_one(struct sim_cluster *c, unsigned shard, uint64_t index,
                            const uint8_t *req, size_t len, const uint8_t *reply, size_t rlen)
{
    struct shard_model *m = &c->model[shard];
    struct pt_shard_req q;
    struct pt_cursor body;
    int st = pt_shard_reply_open(reply, rlen, &body), ni, n2;
    struct mfile *f;
    if (pt_shard_req_decode(&q, req, len) != 0) return;
    if (st == 0) sc_keyset_add(&m->ok_keys, sc_sum64(req, len));
    if (q.op == PT_SHARD_MAKE_DIR) return;
    ni = sc_name_index(q.name, q.name_len);
    n2 = sc_name_index(q.name2, q.name2_len);
    switch (q.op) {
    case PT_SHARD_CONSTRUCT_FILE:
        if (st == 0) file_add(c, pt_dec_u64(&body), q.cookie);
        break;
    case PT_SHARD_ADD_INLINE:
        if (st != 0) break;
        f = sc_file_find(c, q.id);
        if (!f) {
            sc_violate(c, "shard %u index %llu: ADD_INLINE succeeded on unknown file %llx", shard,
                    (unsigned long long)index, (unsigned long long)q.id);
            break;
        }
        if (f->base && q.offset < f->len) {
            /* a change file: the span takes the place of what it covers (a repeat finds its
             * own bytes there already: the same result) */
            size_t end = (size_t)q.offset + q.data_len;
            if (end < f->len) {
                memcpy(f->data + q.offset, q.data_ptr, q.data_len);
            } else {
                f->data = realloc(f->data, end);
                if (!f->data) abort();
                memcpy(f->data + q.offset, q.data_ptr, q.data_len);
                f->len = end;
            }
        } else if (q.offset == f->len) {
            f->data = realloc(f->data, f->len + q.data_len);
            if (!f->data) abort();
            memcpy(f->data + f->len, q.data_ptr, q.data_len);
            f->len += q.data_len;
        } else if (q.offset + q.data_len != f->len) {
            sc_violate(c, "shard %u index %llu: ADD_INLINE at %llu succeeded on a file of %zu bytes",
                    shard, (unsigned long long)index, (unsigned long long)q.offset, f->len);
        }
        break;
    case PT_SHARD_OPEN_CHANGE:
    case PT_SHARD_TRUNCATE_SPANS:
    case PT_SHARD_COMMIT_CHANGE:
    case PT_SHARD_COMPACT_CHANGE:
        model_change(c, shard, index, &q, st, &body);
        break;
    case PT_SHARD_LINK_FILE:
    case PT_SHARD_LINK_REPLACE:
        if (ni < 0 || q.target != m->dir) break;
        model_link(c, shard, index, &q, ni, st, &body);
        break;
    case PT_SHARD_UNLINK:
    case PT_SHARD_UNLINK_INODE:
        if (ni < 0 || q.id != m->dir) break;
        if (st == 0) {
            uint64_t gone = pt_dec_u64(&body);
            if (gone != m->cur[ni] || !gone ||
                (q.op == PT_SHARD_UNLINK_INODE && gone != q.expect))
                sc_violate(c, "shard %u index %llu: unlink of n%d removed %llx, model has %llx", shard,
                        (unsigned long long)index, ni, (unsigned long long)gone,
                        (unsigned long long)m->cur[ni]);
            if ((f = sc_file_find(c, gone)) != NULL) f->state = PT_FILE_UNLINKED;
            m->cur[ni] = 0;
        } else if (st == -PT_ENOENT && m->cur[ni]) {
            sc_violate(c, "shard %u index %llu: unlink of n%d said ENOENT, model has %llx", shard,
                    (unsigned long long)index, ni, (unsigned long long)m->cur[ni]);
        } else if (st == -PT_ESTALE && (q.op != PT_SHARD_UNLINK_INODE || m->cur[ni] == q.expect ||
                                        !m->cur[ni])) {
            sc_violate(c, "shard %u index %llu: unlink of n%d (expecting %llx) said ESTALE, model "
                       "has %llx",
                    shard, (unsigned long long)index, ni, (unsigned long long)q.expect,
                    (unsigned long long)m->cur[ni]);
        }
        break;
    case PT_SHARD_RENAME:
    case PT_SHARD_RENAME_INODE:
        if (ni < 0 || n2 < 0 || q.id != m->dir) break;
        model_rename(c, shard, index, &q, ni, n2, st, &body);
        break;
    default:
        break;
    }
}

static void model_apply_entry(struct sim_cluster *c, unsigned shard, uint64_t index,
                              const uint8_t *entry, size_t len, const struct pt_shard_apply_out *out)
{
    struct pt_cursor cur;
    uint16_t count, i;
    if (len < PT_SHARD_ENTRY_HEADER || entry[0] != PT_SHARD_ENTRY_VERSION) return;
    count = pt_get_le16(entry + 2);
    pt_cursor_init(&cur, (void *)(entry + PT_SHARD_ENTRY_HEADER), len - PT_SHARD_ENTRY_HEADER);
    for (i = 0; i < count && i < out->count; i++) {
        uint32_t n = pt_dec_u32(&cur);
        const uint8_t *req = pt_cursor_take(&cur, n);
        if (!req) break;
        model_apply_one(c, shard, index, req, n, out->reply[i], out->len[i]);
    }
    version_push(&c->model[shard], index);
}

/* ---- the FSM seen by the checker: the real one, wrapped ---------------------------------------- */

int sc_wrap_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct inc *in = fsm->data;
    struct node *n = in->n;
    struct sim_cluster *c = n->c;
    struct shard_model *m = &c->model[n->shard];
    struct raft *raft = in->io.data;
    struct pt_shard_apply_out *out;
    uint64_t index = raft->last_applied + 1, rsum = 0;
    uint16_t i;
    int rc;
    *result = NULL;
    if (in->dead) return RAFT_IOERR; /* a crashed incarnation's store is gone */
    rc = in->fsm.fsm.apply(&in->fsm.fsm, buf, result);
    if (rc) return rc;
    out = *result;
    if (index <= in->applied)
        sc_violate(c, "s%ur%u applied index %llu after %llu", n->shard, n->rid,
                (unsigned long long)index, (unsigned long long)in->applied);
    in->applied = index;
    for (i = 0; out && i < out->count; i++)
        rsum ^= sc_sum64(out->reply[i], out->len[i]) * (i + 1u);
    if (index >= m->hist_cap) {
        size_t old = m->hist_cap;
        m->hist_cap = m->hist_cap ? m->hist_cap * 2 : 1024;
        while (m->hist_cap <= index)
            m->hist_cap *= 2;
        m->hist = realloc(m->hist, m->hist_cap * sizeof(*m->hist));
        if (!m->hist) abort();
        memset(m->hist + old, 0, (m->hist_cap - old) * sizeof(*m->hist));
    }
    if (c->cfg.verbose)
        fprintf(stderr, "%8llu s%ur%u apply %llu sum %016llx term %llu len %zu count %u time %llu\n",
                (unsigned long long)sim_now(c->sim), n->shard, n->rid, (unsigned long long)index,
                (unsigned long long)sc_sum64(buf->base, buf->len),
                (unsigned long long)raft->current_term, buf->len,
                buf->len >= 12 ? pt_get_le16((const uint8_t *)buf->base + 2) : 0,
                buf->len >= 12 ? (unsigned long long)pt_get_le64((const uint8_t *)buf->base + 4) : 0ull);
    if (m->hist[index].set) {
        if (m->hist[index].entry_sum != sc_sum64(buf->base, buf->len))
            sc_violate(c, "shard %u index %llu: replica r%u applied a different entry than another "
                       "replica (a committed entry was lost or replaced)",
                    n->shard, (unsigned long long)index, n->rid);
        else if (m->hist[index].reply_sum != rsum)
            sc_violate(c, "shard %u index %llu: replica r%u's replies differ from another replica's",
                    n->shard, (unsigned long long)index, n->rid);
        return 0;
    }
    if (index != m->committed + 1 && m->committed + 1 < index) {
        uint64_t j;
        for (j = m->committed + 1; j < index; j++)
            if (!m->hist[j].set) m->hist[j].set = 2; /* barriers / config: no FSM call */
    }
    m->hist[index].set = 1;
    m->hist[index].entry_sum = sc_sum64(buf->base, buf->len);
    m->hist[index].reply_sum = rsum;
    if (index > m->committed) m->committed = index;
    if (out) model_apply_entry(c, n->shard, index, buf->base, buf->len, out);
    return 0;
}

int sc_wrap_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct inc *in = fsm->data;
    if (in->dead) return RAFT_IOERR;
    return in->fsm.fsm.snapshot(&in->fsm.fsm, bufs, n_bufs);
}

int sc_wrap_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                  unsigned *n_bufs)
{
    struct inc *in = fsm->data;
    return in->fsm.fsm.snapshot_finalize(&in->fsm.fsm, bufs, n_bufs);
}

int sc_wrap_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct inc *in = fsm->data;
    struct raft *raft = in->io.data;
    int rc;
    if (in->dead) return RAFT_IOERR;
    rc = in->fsm.fsm.restore(&in->fsm.fsm, buf);
    /* the store now holds everything up to the snapshot: applies go on from there */
    if (rc == 0 && raft) in->applied = 0;
    return rc;
}

/* Whether some model version of the shard inside [lo, hi] satisfies pred. */
static int window_any(struct sim_cluster *c, unsigned shard, uint64_t lo, uint64_t hi,
                      int (*pred)(const uint64_t *names, void *arg), void *arg)
{
    struct shard_model *m = &c->model[shard];
    static const uint64_t empty[NAMES];
    size_t i;
    const uint64_t *base = empty; /* the state at lo: the last version at or before it */
    for (i = 0; i < m->n_ver && m->ver[i].index <= lo; i++)
        base = m->ver[i].names;
    if (pred(base, arg)) return 1;
    for (; i < m->n_ver && m->ver[i].index <= hi; i++)
        if (pred(m->ver[i].names, arg)) return 1;
    return 0;
}

struct lookup_arg {
    unsigned name;
    uint64_t id;
};

static int lookup_pred(const uint64_t *names, void *arg)
{
    struct lookup_arg *a = arg;
    return names[a->name] == a->id;
}

struct readdir_arg {
    uint64_t ids[NAMES];
};

static int readdir_pred(const uint64_t *names, void *arg)
{
    struct readdir_arg *a = arg;
    return memcmp(names, a->ids, sizeof(a->ids)) == 0;
}

void sc_check_lookup(struct client *cl, int st, struct pt_cursor *body, uint64_t *id_out)
{
    struct sim_cluster *c = cl->c;
    struct lookup_arg a;
    a.name = cl->name;
    a.id = 0;
    if (st == 0) {
        a.id = pt_dec_u64(body);
        (void)pt_dec_u8(body);
    }
    *id_out = a.id;
    c->res->reads_checked++;
    if (!window_any(c, cl->shard, cl->op_lo, c->model[cl->shard].committed, lookup_pred, &a))
        sc_violate(c, "client c%u: lookup of n%u on shard %u returned %llx, which no state in "
                   "[%llu, %llu] has (stale or wrong read)",
                cl->idx, cl->name, cl->shard, (unsigned long long)a.id,
                (unsigned long long)cl->op_lo, (unsigned long long)c->model[cl->shard].committed);
}

void sc_check_readdir(struct client *cl, struct pt_cursor *body)
{
    struct sim_cluster *c = cl->c;
    struct readdir_arg a;
    uint16_t n = pt_dec_u16(body), i;
    memset(&a, 0, sizeof(a));
    for (i = 0; i < n; i++) {
        struct pt_dirent de;
        int ni;
        if (pt_shard_reply_dirent(body, &de) != 0) {
            sc_violate(c, "client c%u: malformed READDIR reply", cl->idx);
            return;
        }
        ni = sc_name_index(de.name, de.name_len);
        if (ni < 0 || a.ids[ni]) {
            sc_violate(c, "client c%u: READDIR on shard %u lists unknown or repeated name '%s'",
                    cl->idx, cl->shard, de.name);
            return;
        }
        a.ids[ni] = de.id;
    }
    c->res->reads_checked++;
    if (!window_any(c, cl->shard, cl->op_lo, c->model[cl->shard].committed, readdir_pred, &a))
        sc_violate(c, "client c%u: READDIR of shard %u matches no state in [%llu, %llu]", cl->idx,
                cl->shard, (unsigned long long)cl->op_lo,
                (unsigned long long)c->model[cl->shard].committed);
}

/* Whether a file held (len, data) at some point of [lo, now]: its current content, or one a
 * commit after lo replaced (data NULL: compare the length only). */
static int content_in_window(const struct mfile *f, uint64_t lo, const uint8_t *data, size_t len)
{
    size_t i;
    if (len == f->len && (!data || memcmp(data, f->data, len) == 0)) return 1;
    for (i = 0; i < f->n_old; i++)
        if (f->old[i].index > lo && len == f->old[i].len &&
            (!data || memcmp(data, f->old[i].data, len) == 0))
            return 1;
    return 0;
}

void sc_check_spans(struct client *cl, struct pt_cursor *body)
{
    struct sim_cluster *c = cl->c;
    struct mfile *f = sc_file_find(c, cl->file_id);
    uint8_t got[1024];
    size_t got_len = 0;
    uint64_t size = pt_dec_u64(body);
    uint16_t n = pt_dec_u16(body), i;
    for (i = 0; i < n; i++) {
        struct pt_span sp;
        if (pt_span_decode(body, &sp) != 0 || sp.storage != PT_STORAGE_INLINE ||
            sp.offset != got_len || got_len + sp.inline_len > sizeof(got)) {
            sc_violate(c, "client c%u: bad span in file %llx", cl->idx,
                    (unsigned long long)cl->file_id);
            return;
        }
        memcpy(got + got_len, sp.inline_data, sp.inline_len);
        got_len += sp.inline_len;
    }
    c->res->reads_checked++;
    if (!f || f->state == PT_FILE_TRANSIENT) {
        sc_violate(c, "client c%u: file %llx read through a name is %s", cl->idx,
                (unsigned long long)cl->file_id, f ? "still transient" : "unknown");
        return;
    }
    if (size != got_len || !content_in_window(f, cl->op_lo, got, got_len))
        sc_violate(c, "client c%u: file %llx returned %zu bytes (size %llu) that differ from the "
                   "%zu its writer added (and from every version in the read's window)",
                cl->idx, (unsigned long long)cl->file_id, got_len, (unsigned long long)size,
                f->len);
}

/* STAT of a file found through a name: a linked (or since retired) file of its writer's size. */
void sc_check_stat(struct client *cl, struct pt_cursor *body)
{
    struct sim_cluster *c = cl->c;
    struct pt_shard_stat st;
    struct mfile *f = sc_file_find(c, cl->file_id);
    if (pt_shard_reply_stat(body, &st) != 0) {
        sc_violate(c, "client c%u: malformed STAT reply", cl->idx);
        return;
    }
    c->res->reads_checked++;
    if (st.type != PT_TYPE_FILE || st.state == PT_FILE_TRANSIENT || !f ||
        !content_in_window(f, cl->op_lo, NULL, (size_t)st.size))
        sc_violate(c, "client c%u: STAT of file %llx found through a name: type %u state %u size "
                   "%llu, its writer added %zu bytes",
                cl->idx, (unsigned long long)cl->file_id, st.type, st.state,
                (unsigned long long)st.size, f ? f->len : 0);
}

/* After healing, a named file's bytes in a converged store are exactly its last committed
 * version's (every acknowledged version intact: the last one is what the name shows). */
static void final_content(struct sim_cluster *c, struct inc *in, unsigned s, unsigned r,
                          uint64_t id)
{
    struct pt_shard_req q;
    struct pt_cursor body;
    struct mfile *f = sc_file_find(c, id);
    uint8_t req[64], got[1024];
    size_t rl, got_len = 0;
    uint16_t n, k;
    int len;
    memset(&q, 0, sizeof(q));
    q.op = PT_SHARD_SPANS;
    q.id = id;
    q.max = 16;
    len = pt_shard_req_encode(&q, req, sizeof(req));
    if (!f || len < 0 ||
        pt_shard_sm_query(&in->sm, req, (size_t)len, c->reply, REPLY_MAX, &rl) != 0 ||
        pt_shard_reply_open(c->reply, rl, &body) != 0) {
        sc_violate(c, "s%ur%u: final SPANS of %llx failed", s, r, (unsigned long long)id);
        return;
    }
    (void)pt_dec_u64(&body);
    n = pt_dec_u16(&body);
    for (k = 0; k < n; k++) {
        struct pt_span sp;
        if (pt_span_decode(&body, &sp) != 0 || sp.storage != PT_STORAGE_INLINE ||
            sp.offset != got_len || got_len + sp.inline_len > sizeof(got)) {
            sc_violate(c, "s%ur%u: final spans of %llx malformed", s, r, (unsigned long long)id);
            return;
        }
        memcpy(got + got_len, sp.inline_data, sp.inline_len);
        got_len += sp.inline_len;
    }
    if (got_len != f->len || memcmp(got, f->data, got_len) != 0)
        sc_violate(c, "s%ur%u: final bytes of %llx (%zu) differ from its last committed version "
                   "(%zu bytes, %llu commits)",
                s, r, (unsigned long long)id, got_len, f->len, (unsigned long long)f->commits);
}

/* After healing: stores agree with the model, acknowledged writes are in, failed ones not. */
void sc_final_checks(struct sim_cluster *c)
{
    unsigned s, r, i;
    for (s = 0; s < c->cfg.shards && !c->violated; s++) {
        struct shard_model *m = &c->model[s];
        for (i = 0; i < c->acked_keys[s].n; i++)
            if (!sc_keyset_has(&m->ok_keys, c->acked_keys[s].k[i]))
                sc_violate(c, "shard %u: an acknowledged write is not in the committed history", s);
        for (i = 0; i < c->failed_keys[s].n; i++)
            if (sc_keyset_has(&m->ok_keys, c->failed_keys[s].k[i]))
                sc_violate(c, "shard %u: a write that failed definitively took effect", s);
        if (!m->dir) continue;
        for (r = 0; r < c->cfg.replicas && !c->violated; r++) {
            struct inc *in = c->nodes[s][r].cur;
            if (!sc_replica_converged(c, s, r, sc_shard_leader_last(c, s))) continue; /* lagging */
            for (i = 0; i < NAMES && in; i++) {
                struct pt_shard_req q;
                uint8_t req[64];
                size_t rl;
                struct pt_cursor body;
                int len, st;
                uint64_t id = 0;
                memset(&q, 0, sizeof(q));
                q.op = PT_SHARD_LOOKUP;
                q.id = m->dir;
                sc_set_name(q.name, &q.name_len, i);
                len = pt_shard_req_encode(&q, req, sizeof(req));
                if (len < 0 || pt_shard_sm_query(&in->sm, req, (size_t)len, c->reply, REPLY_MAX,
                                                 &rl) != 0) {
                    sc_violate(c, "s%ur%u: final lookup failed", s, r);
                    break;
                }
                st = pt_shard_reply_open(c->reply, rl, &body);
                if (st == 0) id = pt_dec_u64(&body);
                if (id != m->cur[i])
                    sc_violate(c, "s%ur%u: final store has n%u -> %llx, model %llx", s, r, i,
                            (unsigned long long)id, (unsigned long long)m->cur[i]);
                else if (id)
                    final_content(c, in, s, r, id);
            }
        }
    }
}

