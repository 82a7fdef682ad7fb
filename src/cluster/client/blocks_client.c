/*
 * Block service calls (see blocks_client.h). Owns request encoding, reply
 * validation and the end-to-end page check of reads. Never copies a byte of a read into the
 * caller's buffer before every page it comes from has matched its CRC, and never trusts a
 * length in a reply before checking it against the request.
 */
#include "cluster/client/blocks_client.h"

#include <stdlib.h>
#include <string.h>

#include "petrel/common.h"
#include "petrel/crc32c.h"

uint32_t pt_block_crc_pages(const void *data, uint32_t size, uint8_t *page_crcs)
{
    const uint8_t *p = data;
    uint32_t crc = 0, off;
    for (off = 0; off < size; off += PT_BLOCK_PAGE_SIZE) {
        uint32_t n = PT_MIN(PT_BLOCK_PAGE_SIZE, size - off);
        uint32_t pc = petrel_crc32c(0, p + off, n);
        if (page_crcs) pt_put_le32(page_crcs + (size_t)4 * (off / PT_BLOCK_PAGE_SIZE), pc);
        crc = petrel_crc32c_append(crc, pc, n);
    }
    return crc;
}

uint32_t pt_block_crc(const void *data, uint32_t size)
{
    return pt_block_crc_pages(data, size, NULL);
}

/* The CRC32C of len bytes from their page CRCs (u32 LE each; the last page may be short). */
static uint32_t crc_from_pages(const uint8_t *crcs, uint32_t len)
{
    uint32_t crc = 0, off;
    for (off = 0; off < len; off += PT_BLOCK_PAGE_SIZE)
        crc = petrel_crc32c_append(crc, pt_get_le32(crcs + (size_t)4 * (off / PT_BLOCK_PAGE_SIZE)),
                                   PT_MIN(PT_BLOCK_PAGE_SIZE, len - off));
    return crc;
}

static int reply_u64(struct pt_reply *rep, uint64_t *out)
{
    if (rep->body_len != 8) return -PT_EPROTO;
    *out = pt_get_le64(rep->body);
    return 0;
}

/*
 * Run fn on a connection to address (pooled or new), with pt_call's retry rules: a transport
 * failure on a reused connection is retried at once on a fresh one; retryable errors are
 * retried with back-off within the budget. fn must leave the connection without a response
 * in flight when it returns 0 or a remote error (*remote set); otherwise the socket is
 * closed.
 */
typedef int (*conn_fn)(struct pt_conn *conn, void *arg, int timeout_ms, int *remote);

static int run_on_conn(const char *address, const struct pt_call_opts *opts, conn_fn fn, void *arg)
{
    int timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
    uint32_t budget = opts && opts->retry_budget_ms ? opts->retry_budget_ms : 10000;
    uint64_t seed = opts && opts->seed ? opts->seed : pt_entropy_seed();
    struct pt_retry retry;
    int err;
    pt_retry_init(&retry, 20, 1000, budget, seed);
    for (;;) {
        struct pt_conn *conn = pt_call_pool_take(address);
        int reused = conn != NULL, remote = 0;
        err = conn ? 0 : pt_conn_open(address, timeout, PT_BLOCK_MAX_BODY, &conn);
        if (!err) {
            err = fn(conn, arg, timeout, &remote);
            if (err >= 0 || remote)
                pt_call_pool_put(conn);
            else
                pt_conn_close(conn);
            if (reused && err < 0 && !remote && err != -PT_ETIMEDOUT && err != -PT_ENOMEM &&
                err != -PT_EINVAL && err != -PT_EBADMSG)
                continue; /* a stale pooled connection: try a fresh one at once */
            if (err < 0 && remote && !pt_error_retryable(err)) break;
        }
        if (err >= 0) break;
        if (err == -PT_EINVAL && !remote) break;
        if (!pt_error_retryable(err) || err == -PT_ENOTLEADER) break;
        if (budget == 1 || pt_retry_wait(&retry) != 0) break;
    }
    return err;
}

/* Receive the responses of requests first..last (ids in order) on conn, keeping the first
 * error; the body of the response to `want` (if any) goes to *out. */
static int collect(struct pt_conn *conn, uint64_t first, uint64_t last, int timeout, int *remote,
                   uint64_t want, struct pt_reply *out)
{
    int first_err = 0;
    uint64_t pending = last - first + 1;
    memset(out, 0, sizeof(*out));
    while (pending) {
        struct pt_reply rep;
        uint64_t id;
        int err = pt_conn_recv(conn, timeout, &id, &rep);
        if (err < 0 && !rep.remote) {
            pt_reply_free(out);
            *remote = 0;
            return err; /* transport: the socket is closed */
        }
        if (id < first || id > last) { /* a stale response of an earlier call */
            pt_reply_free(&rep);
            continue;
        }
        pending--;
        if (err && !first_err) {
            first_err = err;
            *remote = 1;
        }
        if (id == want && !err) {
            pt_reply_free(out);
            *out = rep;
        } else {
            pt_reply_free(&rep);
        }
    }
    return first_err;
}

/* --- streamed writes -------------------------------------------------------------------------- */

struct write_stream {
    uint64_t block_id, cert, proof;
    uint32_t crc, size;
    const struct iovec *pieces;
    unsigned n_pieces;
    const uint8_t *page_crcs; /* of the whole block, or NULL: computed per piece */
};

/* Gather [off, off+len) of the pieces into iov (at most max entries): count, or 0 if more
 * would be needed. */
static int gather(const struct iovec *pieces, unsigned n, uint32_t off, uint32_t len,
                  struct iovec *iov, int max)
{
    unsigned i;
    int k = 0;
    uint64_t at = 0;
    for (i = 0; i < n && len; i++) {
        uint64_t end = at + pieces[i].iov_len;
        if (off < end) {
            uint32_t in = (uint32_t)(off - at);
            uint32_t take = (uint32_t)PT_MIN((uint64_t)len, pieces[i].iov_len - in);
            if (k == max) return 0;
            iov[k].iov_base = (uint8_t *)pieces[i].iov_base + in;
            iov[k++].iov_len = take;
            off += take;
            len -= take;
        }
        at = end;
    }
    return len ? 0 : k;
}

/* CRC32C of page data gathered from iov (a page may straddle pieces). */
static void page_crcs(const struct iovec *iov, int n, uint8_t *out)
{
    uint32_t page = 0, in_page = 0, crc = 0;
    int i;
    for (i = 0; i < n; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left) {
            uint32_t take = (uint32_t)PT_MIN(left, (size_t)(PT_BLOCK_PAGE_SIZE - in_page));
            crc = petrel_crc32c(crc, p, take);
            p += take;
            left -= take;
            in_page += take;
            if (in_page == PT_BLOCK_PAGE_SIZE) {
                pt_put_le32(out + (size_t)4 * page++, crc);
                crc = 0;
                in_page = 0;
            }
        }
    }
    if (in_page) pt_put_le32(out + (size_t)4 * page, crc);
}

static int write_stream_run(struct pt_conn *conn, void *arg, int timeout, int *remote)
{
    struct write_stream *w = arg;
    uint8_t begin[PT_BLOCK_BEGIN_FIELDS], end[PT_BLOCK_END_FIELDS], fields[PT_BLOCK_PAGES_FIELDS];
    uint8_t crcs[PT_BLOCK_CHUNK / PT_BLOCK_PAGE_SIZE * 4];
    struct pt_block_write_req req = {w->block_id, w->crc, w->size, w->cert};
    struct iovec iov[PT_CONN_PARTS_MAX];
    struct pt_cursor c;
    struct pt_reply rep;
    uint64_t stream = pt_entropy_seed(), first, last = 0;
    uint32_t off = 0;
    int err;

    pt_cursor_init(&c, begin, sizeof(begin));
    pt_block_enc_write(&c, &req);
    pt_enc_u64(&c, stream);
    iov[0].iov_base = begin;
    iov[0].iov_len = sizeof(begin);
    err = pt_conn_send(conn, PT_MSG_BLOCK_WRITE_BEGIN, iov, 1, timeout, &first);
    /* Every piece follows at once: the service answers each as it lands, the replies are
       read at the end (a refused BEGIN makes every later piece fail with "no such stream";
       the first error is the one reported). */
    while (!err && off < w->size) {
        uint32_t len = PT_MIN(PT_BLOCK_CHUNK, w->size - off);
        struct pt_block_pages_req p = {w->block_id, stream, off, pt_block_pages(len)};
        int k = gather(w->pieces, w->n_pieces, off, len, iov + 2, PT_CONN_PARTS_MAX - 2);
        const uint8_t *piece_crcs = crcs;
        struct pt_frame_known_crc known = {2, 0};
        if (!k) return -PT_EINVAL;
        if (w->page_crcs) {
            /* pieces start on a page: their CRCs are a slice of the block's, and the frame's
               CRC over the data is theirs combined, without reading the data again */
            piece_crcs = w->page_crcs + (size_t)4 * (off / PT_BLOCK_PAGE_SIZE);
            known.crc = crc_from_pages(piece_crcs, len);
        } else {
            page_crcs(iov + 2, k, crcs);
        }
        pt_cursor_init(&c, fields, sizeof(fields));
        pt_block_enc_pages(&c, &p);
        iov[0].iov_base = fields;
        iov[0].iov_len = sizeof(fields);
        iov[1].iov_base = (void *)piece_crcs;
        iov[1].iov_len = (size_t)p.pages * 4;
        err = pt_conn_send_known(conn, PT_MSG_BLOCK_WRITE_PAGES, iov, 2 + k,
                                 w->page_crcs ? &known : NULL, timeout, &last);
        off += len;
    }
    if (err) return err;
    pt_cursor_init(&c, end, sizeof(end));
    pt_enc_u64(&c, w->block_id);
    pt_enc_u64(&c, stream);
    iov[0].iov_base = end;
    iov[0].iov_len = sizeof(end);
    err = pt_conn_send(conn, PT_MSG_BLOCK_WRITE_END, iov, 1, timeout, &last);
    if (err) return err;
    err = collect(conn, first, last, timeout, remote, last, &rep);
    if (!err) {
        err = reply_u64(&rep, &w->proof);
        if (err) *remote = 1; /* the connection is in a known state */
    }
    pt_reply_free(&rep);
    return err;
}

int pt_blocks_write_iov(const char *address, uint64_t block_id, uint32_t crc,
                        const struct iovec *pieces, unsigned n, uint32_t size, uint64_t cert,
                        uint64_t *proof, const struct pt_call_opts *opts)
{
    return pt_blocks_write_pages(address, block_id, crc, pieces, n, size, NULL, cert, proof, opts);
}

int pt_blocks_write_pages(const char *address, uint64_t block_id, uint32_t crc,
                          const struct iovec *pieces, unsigned n, uint32_t size,
                          const uint8_t *page_crcs, uint64_t cert, uint64_t *proof,
                          const struct pt_call_opts *opts)
{
    struct write_stream w = {block_id, cert, 0, crc, size, pieces, n, page_crcs};
    uint64_t total = 0;
    unsigned i;
    int err;
    if (size > PT_BLOCK_MAX_SIZE) return -PT_EFBIG;
    for (i = 0; i < n; i++)
        total += pieces[i].iov_len;
    if (total != size) return -PT_EINVAL;
    err = run_on_conn(address, opts, write_stream_run, &w);
    if (!err) *proof = w.proof;
    return err;
}

int pt_blocks_write(const char *address, uint64_t block_id, uint32_t crc, const void *data,
                    uint32_t size, uint64_t cert, uint64_t *proof, const struct pt_call_opts *opts)
{
    struct iovec piece;
    piece.iov_base = (void *)data;
    piece.iov_len = size;
    return pt_blocks_write_iov(address, block_id, crc, &piece, 1, size, cert, proof, opts);
}

int pt_blocks_read_resp_check(const uint8_t *body, size_t len, uint32_t offset, uint32_t count,
                              void *buf, uint32_t *got, uint32_t *block_size)
{
    struct pt_block_read_resp h;
    struct pt_cursor c;
    const uint8_t *crcs, *data;
    uint32_t i, want;
    if (got) *got = 0;
    pt_cursor_init(&c, (void *)body, len);
    pt_block_dec_read_resp(&c, &h);
    crcs = pt_cursor_take(&c, (size_t)h.pages * 4);
    data = pt_cursor_take(&c, h.data_len);
    if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) return -PT_EPROTO;
    /* The reply must cover exactly the pages our range touches. */
    want = offset >= h.block_size ? 0 : PT_MIN(count, h.block_size - offset);
    if (offset > h.block_size ||
        (want && (h.data_offset != offset / PT_BLOCK_PAGE_SIZE * PT_BLOCK_PAGE_SIZE ||
                  h.data_offset + h.data_len < offset + want)) ||
        (!want && h.data_len))
        return offset > h.block_size ? -PT_ERANGE : -PT_EPROTO;
    for (i = 0; i < h.pages; i++) {
        uint32_t n = PT_MIN(PT_BLOCK_PAGE_SIZE, h.data_len - i * PT_BLOCK_PAGE_SIZE);
        if (petrel_crc32c(0, data + (size_t)i * PT_BLOCK_PAGE_SIZE, n) !=
            pt_get_le32(crcs + (size_t)4 * i))
            return -PT_ECORRUPT;
    }
    if (want) memcpy(buf, data + (offset - h.data_offset), want);
    if (got) *got = want;
    if (block_size) *block_size = h.block_size;
    return 0;
}

/* --- streamed reads --------------------------------------------------------------------------- */

/* Chunks of one read in flight at once on its connection (readahead within the range). */
#define READ_WINDOW 16

struct read_stream {
    uint64_t block_id;
    uint32_t offset, count, got, block_size;
    uint8_t *buf;
};

static int read_chunk_send(struct pt_conn *conn, const struct read_stream *r, uint32_t off,
                           uint32_t n, int timeout, uint64_t *id)
{
    uint8_t req[16];
    struct pt_block_read_req q = {r->block_id, off, n};
    struct pt_cursor c;
    struct iovec iov;
    pt_cursor_init(&c, req, sizeof(req));
    pt_block_enc_read(&c, &q);
    iov.iov_base = req;
    iov.iov_len = sizeof(req);
    return pt_conn_send(conn, PT_MSG_BLOCK_READ, &iov, 1, timeout, id);
}

/*
 * The first chunk alone (it tells the block's size), then the rest of the range in chunks
 * of PT_BLOCK_CHUNK, up to READ_WINDOW in flight; every reply is checked page by page
 * (pt_blocks_read_resp_check) before its bytes land in the caller's buffer.
 */
static int read_stream_run(struct pt_conn *conn, void *arg, int timeout, int *remote)
{
    struct read_stream *r = arg;
    uint64_t ids[READ_WINDOW], id;
    uint32_t offs[READ_WINDOW], lens[READ_WINDOW];
    uint32_t first = PT_MIN(r->count, PT_BLOCK_CHUNK), next, end, got;
    unsigned head = 0, inflight = 0, i;
    struct pt_reply rep;
    int err, first_err = 0;
    r->got = 0;
    err = read_chunk_send(conn, r, r->offset, first, timeout, &id);
    if (!err) err = collect(conn, id, id, timeout, remote, id, &rep);
    if (err) return err;
    err = pt_blocks_read_resp_check(rep.body, rep.body_len, r->offset, first, r->buf, &got,
                                    &r->block_size);
    pt_reply_free(&rep);
    if (err) {
        *remote = 1; /* the reply was read whole: the connection is in a known state */
        return err;
    }
    r->got = got;
    if (got < first) return 0; /* the block ended */
    next = r->offset + first;
    end = r->offset + PT_MIN(r->count, r->block_size - r->offset);
    while (next < end || inflight) {
        while (next < end && inflight < READ_WINDOW && !first_err) {
            unsigned slot = (head + inflight) % READ_WINDOW;
            uint32_t n = PT_MIN(PT_BLOCK_CHUNK, end - next);
            err = read_chunk_send(conn, r, next, n, timeout, &ids[slot]);
            if (err) return err;
            offs[slot] = next;
            lens[slot] = n;
            next += n;
            inflight++;
        }
        if (!inflight) break;
        err = pt_conn_recv(conn, timeout, &id, &rep);
        if (err < 0 && !rep.remote) return err;
        for (i = 0; i < inflight; i++)
            if (ids[(head + i) % READ_WINDOW] == id) break;
        if (i == inflight) { /* stale */
            pt_reply_free(&rep);
            continue;
        }
        if (i != 0) { /* out of order: a block service answers one connection in order */
            pt_reply_free(&rep);
            return -PT_EPROTO;
        }
        if (!err) {
            unsigned slot = head;
            uint32_t size = 0;
            err = pt_blocks_read_resp_check(rep.body, rep.body_len, offs[slot], lens[slot],
                                            r->buf + (offs[slot] - r->offset), &got, &size);
            if (!err && (got != lens[slot] || size != r->block_size)) err = -PT_ECORRUPT;
            if (!err) r->got += got;
        }
        pt_reply_free(&rep);
        if (err && !first_err) first_err = err;
        head = (head + 1) % READ_WINDOW;
        inflight--;
    }
    if (first_err) *remote = 1;
    return first_err;
}

int pt_blocks_read(const char *address, uint64_t block_id, uint32_t offset, uint32_t count,
                   void *buf, uint32_t *got, uint32_t *block_size, const struct pt_call_opts *opts)
{
    struct read_stream r = {block_id, offset, count, 0, 0, buf};
    int err;
    if (got) *got = 0;
    err = run_on_conn(address, opts, read_stream_run, &r);
    if (err) return err;
    if (got) *got = r.got;
    if (block_size) *block_size = r.block_size;
    return 0;
}

int pt_blocks_erase(const char *address, uint64_t block_id, uint32_t crc, uint32_t size,
                    uint64_t cert, uint64_t *proof, const struct pt_call_opts *opts)
{
    uint8_t req[24];
    struct pt_block_erase_req e = {block_id, crc, size, cert};
    struct pt_cursor c;
    struct pt_reply rep;
    int err;
    pt_cursor_init(&c, req, sizeof(req));
    pt_block_enc_erase(&c, &e);
    err = pt_call_buf(address, PT_MSG_BLOCK_ERASE, req, sizeof(req), opts, &rep);
    if (!err) err = reply_u64(&rep, proof);
    pt_reply_free(&rep);
    return err;
}

int pt_blocks_stat(const char *address, uint64_t block_id, struct pt_block_stat *out,
                   const struct pt_call_opts *opts)
{
    uint8_t req[8];
    struct pt_cursor c;
    struct pt_reply rep;
    int err;
    pt_put_le64(req, block_id);
    err = pt_call_buf(address, PT_MSG_BLOCK_STAT, req, sizeof(req), opts, &rep);
    if (!err) {
        pt_cursor_init(&c, rep.body, rep.body_len);
        pt_block_dec_stat(&c, out);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c) || out->block_id != block_id) err = -PT_EPROTO;
    }
    pt_reply_free(&rep);
    return err;
}

int pt_blocks_list(const char *address, uint64_t start, uint32_t max, struct pt_block_stat **out,
                   size_t *count, int *more, const struct pt_call_opts *opts)
{
    uint8_t req[12];
    struct pt_cursor c;
    struct pt_reply rep;
    uint32_t n, i;
    int err;
    *out = NULL;
    *count = 0;
    *more = 0;
    pt_put_le64(req, start);
    pt_put_le32(req + 8, max);
    err = pt_call_buf(address, PT_MSG_BLOCK_LIST, req, sizeof(req), opts, &rep);
    if (err) goto done;
    pt_cursor_init(&c, rep.body, rep.body_len);
    n = pt_dec_u32(&c);
    if (!pt_cursor_ok(&c) || n > max || n > pt_cursor_left(&c) / 16) {
        err = -PT_EPROTO;
        goto done;
    }
    *out = calloc(n ? n : 1, sizeof(**out));
    if (!*out) {
        err = -PT_ENOMEM;
        goto done;
    }
    for (i = 0; i < n; i++)
        pt_block_dec_stat(&c, &(*out)[i]);
    *more = pt_dec_u8(&c);
    if (!pt_cursor_ok(&c) || pt_cursor_left(&c) || *more > 1) {
        free(*out);
        *out = NULL;
        err = -PT_EPROTO;
        goto done;
    }
    *count = n;
done:
    pt_reply_free(&rep);
    return err;
}

int pt_blocks_info(const char *address, struct pt_block_info *out, const struct pt_call_opts *opts)
{
    struct pt_cursor c;
    struct pt_reply rep;
    int err = pt_call_buf(address, PT_MSG_BLOCK_INFO, NULL, 0, opts, &rep);
    if (!err) {
        pt_cursor_init(&c, rep.body, rep.body_len);
        pt_block_dec_info(&c, out);
        if (!pt_cursor_ok(&c) || pt_cursor_left(&c)) err = -PT_EPROTO;
    }
    pt_reply_free(&rep);
    return err;
}
