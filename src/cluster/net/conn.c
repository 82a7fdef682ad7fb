/*
 * The blocking client connection (see net.h). Owns one socket to one address, request ids,
 * deadlines and response validation. It never returns a response body that failed its CRC or
 * belongs to another request, and never keeps a socket whose framing state is uncertain: any
 * transport error or timeout closes it, and the next call reconnects.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/net/net.h"
#include "petrel/common.h"

#define HELLO_VERSION PT_AUTH_HELLO_VERSION
#define HELLO_SIZE PT_AUTH_HELLO_SIZE
#define HELLO_REPLY_SIZE (PT_AUTH_NONCE_BYTES + PT_AUTH_MAC_BYTES)

struct pt_conn {
    int fd;
    char address[PT_ADDR_MAX];
    struct sockaddr_storage addr;
    uint32_t max_body;
    uint64_t next_id;
    int has_key;
    struct pt_auth_key key;
    struct pt_auth_session session; /* of the open socket */
    uint64_t seq_out, seq_in;
};

static int errno_to_pt(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return -PT_ECONNREFUSED;
    case ECONNRESET:
    case EPIPE:
        return -PT_ECONNRESET;
    case ETIMEDOUT:
        return -PT_ETIMEDOUT;
    case ENETUNREACH:
    case EHOSTUNREACH:
        return -PT_EHOSTUNREACH;
    case ENOMEM:
        return -PT_ENOMEM;
    default:
        return -PT_EIO;
    }
}

static int remaining_ms(uint64_t deadline)
{
    uint64_t now = pt_now_ms();
    return now >= deadline ? 0 : (int)(deadline - now);
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
    struct pollfd p;
    int n;
    for (;;) {
        p.fd = fd;
        p.events = events;
        p.revents = 0;
        n = poll(&p, 1, remaining_ms(deadline));
        if (n > 0) return 0;
        if (n == 0) return -PT_ETIMEDOUT;
        if (errno != EINTR) return errno_to_pt(errno);
    }
}

static void conn_drop(struct pt_conn *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int send_all(int fd, struct iovec *iov, int n, uint64_t deadline);
static int recv_all(int fd, void *buf, size_t len, uint64_t deadline);

/*
 * The client half of the handshake (docs/PROTOCOL.md, "Authentication"): send AUTH_HELLO with
 * our key id and a fresh nonce, read the server's nonce and proof, check the proof, derive the
 * session keys. Any refusal or a proof that does not match is -PT_EACCES.
 */
static int conn_handshake(struct pt_conn *c, uint64_t deadline)
{
    uint8_t hello[HELLO_SIZE], hdr[PT_FRAME_HEADER_SIZE];
    uint8_t body[PT_FRAME_ERROR_MESSAGE_MAX + PT_FRAME_ADDRESS_MAX + 16];
    uint8_t proof[PT_AUTH_MAC_BYTES];
    struct pt_frame_header h;
    struct iovec iov[2];
    uint64_t id = ++c->next_id;
    int err;
    hello[0] = HELLO_VERSION;
    hello[1] = 0;
    memcpy(hello + 2, c->key.id, PT_AUTH_ID_BYTES);
    pt_auth_random(hello + 2 + PT_AUTH_ID_BYTES, PT_AUTH_NONCE_BYTES);
    pt_frame_encode_header(hdr, 0, PT_MSG_AUTH_HELLO, id, hello, sizeof(hello));
    iov[0].iov_base = hdr;
    iov[0].iov_len = sizeof(hdr);
    iov[1].iov_base = hello;
    iov[1].iov_len = sizeof(hello);
    err = send_all(c->fd, iov, 2, deadline);
    if (err) return err;
    err = recv_all(c->fd, hdr, sizeof(hdr), deadline);
    if (err) return err;
    err = pt_frame_decode_header(hdr, sizeof(body), &h);
    if (err) return err == -PT_E2BIG ? -PT_EPROTO : err;
    if (!(h.flags & PT_FRAME_RESPONSE) || (h.flags & PT_FRAME_AUTH) || h.request_id != id ||
        h.kind != PT_MSG_AUTH_HELLO)
        return -PT_EPROTO;
    err = recv_all(c->fd, body, h.body_len, deadline);
    if (!err) err = pt_frame_check_crc(hdr, &h, body);
    if (err) return err;
    if (h.flags & PT_FRAME_ERROR) {
        struct pt_frame_error e;
        if (pt_frame_error_decode(body, h.body_len, &e) == 0)
            petrel_log(PT_LOG_DEBUG, "net", "%s: authentication refused: %s", c->address,
                       e.message);
        return -PT_EACCES;
    }
    if (h.body_len != HELLO_REPLY_SIZE) return -PT_EPROTO;
    pt_auth_server_proof(&c->key, hello + 2 + PT_AUTH_ID_BYTES, body, proof);
    if (!pt_auth_mac_equal(proof, body + PT_AUTH_NONCE_BYTES)) return -PT_EACCES;
    pt_auth_session_derive(&c->key, hello + 2 + PT_AUTH_ID_BYTES, body, &c->session);
    c->seq_out = c->seq_in = 0;
    return 0;
}

static int conn_connect(struct pt_conn *c, uint64_t deadline)
{
    socklen_t len =
        c->addr.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int one = 1, soerr = 0, err;
    socklen_t soerr_len = sizeof(soerr);
    int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno_to_pt(errno);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&c->addr, len) != 0) {
        if (errno != EINPROGRESS) {
            err = errno_to_pt(errno);
            close(fd);
            return err;
        }
        err = wait_fd(fd, POLLOUT, deadline);
        if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &soerr_len) != 0) soerr = errno;
        if (!err && soerr) err = errno_to_pt(soerr);
        if (err) {
            close(fd);
            return err;
        }
    }
    c->fd = fd;
    if (c->has_key) {
        err = conn_handshake(c, deadline);
        if (err) conn_drop(c);
        return err;
    }
    return 0;
}

int pt_conn_open(const char *address, int timeout_ms, uint32_t max_body, struct pt_conn **out)
{
    return pt_conn_open_key(address, timeout_ms, max_body, pt_auth_process_client(), out);
}

int pt_conn_open_key(const char *address, int timeout_ms, uint32_t max_body,
                     const struct pt_auth_key *key, struct pt_conn **out)
{
    struct pt_conn *c;
    int err;
    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (!c) return -PT_ENOMEM;
    c->fd = -1;
    if (key) {
        c->has_key = 1;
        c->key = *key;
    }
    c->max_body = max_body ? max_body : PT_FRAME_MAX_BODY_DEFAULT;
    c->next_id = pt_entropy_seed() & 0xffffffffull; /* distinct ids across reconnects */
    err = pt_addr_parse(address, &c->addr);
    if (!err) {
        snprintf(c->address, sizeof(c->address), "%s", address);
        err = conn_connect(c, pt_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0));
    }
    if (err) {
        free(c);
        return err;
    }
    *out = c;
    return 0;
}

const char *pt_conn_address(const struct pt_conn *c)
{
    return c->address;
}

void pt_conn_close(struct pt_conn *c)
{
    if (!c) return;
    conn_drop(c);
    sodium_memzero(c, sizeof(*c));
    free(c);
}

void pt_reply_free(struct pt_reply *reply)
{
    free(reply->body);
    reply->body = NULL;
    reply->body_len = 0;
}

static int send_all(int fd, struct iovec *iov, int n, uint64_t deadline)
{
    while (n > 0) {
        struct msghdr msg;
        ssize_t w;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)n;
        w = sendmsg(fd, &msg, MSG_NOSIGNAL); /* a closed peer is an error, not SIGPIPE */
        if (w < 0) {
            int err;
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return errno_to_pt(errno);
            err = wait_fd(fd, POLLOUT, deadline);
            if (err) return err;
            continue;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int recv_all(int fd, void *buf, size_t len, uint64_t deadline)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = recv(fd, (char *)buf + got, len - got, 0);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0) return -PT_ECONNRESET;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return errno_to_pt(errno);
        r = wait_fd(fd, POLLIN, deadline);
        if (r) return (int)r;
    }
    return 0;
}

int pt_conn_send(struct pt_conn *c, uint16_t kind, const struct iovec *parts, int nparts,
                 int timeout_ms, uint64_t *id_out)
{
    return pt_conn_send_known(c, kind, parts, nparts, NULL, timeout_ms, id_out);
}

int pt_conn_send_known(struct pt_conn *c, uint16_t kind, const struct iovec *parts, int nparts,
                       const struct pt_frame_known_crc *known, int timeout_ms, uint64_t *id_out)
{
    uint8_t hdr[PT_FRAME_HEADER_SIZE], trailer[PT_FRAME_TRAILER_SIZE];
    struct iovec iov[PT_CONN_PARTS_MAX + 2]; /* header, parts, trailer */
    uint64_t deadline = pt_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    uint64_t id, total = 0;
    int i, n, err;
    if (nparts < 0 || nparts > PT_CONN_PARTS_MAX) return -PT_EINVAL;
    for (i = 0; i < nparts; i++)
        total += parts[i].iov_len;
    if (total > UINT32_MAX - PT_FRAME_TRAILER_SIZE) return -PT_E2BIG;
    if (c->fd < 0) {
        err = conn_connect(c, deadline);
        if (err) return err;
    }
    id = ++c->next_id;
    /* With a key the body gains the trailer (sequence, MAC) after the parts. */
    pt_frame_seal_known(hdr, trailer, 0, kind, id, parts, nparts, known,
                        c->has_key ? c->session.c2s : NULL, c->seq_out);
    iov[0].iov_base = hdr;
    iov[0].iov_len = sizeof(hdr);
    for (i = 0; i < nparts; i++)
        iov[i + 1] = parts[i];
    n = nparts + 1;
    if (c->has_key) {
        iov[n].iov_base = trailer;
        iov[n++].iov_len = sizeof(trailer);
        c->seq_out++;
    }
    err = send_all(c->fd, iov, n, deadline);
    if (err) {
        conn_drop(c);
        return err;
    }
    *id_out = id;
    return 0;
}

int pt_conn_recv(struct pt_conn *c, int timeout_ms, uint64_t *id_out, struct pt_reply *reply)
{
    uint8_t hdr[PT_FRAME_HEADER_SIZE];
    struct pt_frame_header h;
    uint64_t deadline = pt_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    int err;
    memset(reply, 0, sizeof(*reply));
    if (c->fd < 0) return -PT_ECONNRESET;
    err = recv_all(c->fd, hdr, sizeof(hdr), deadline);
    if (err) goto fail;
    err = pt_frame_decode_header(hdr, c->max_body + (c->has_key ? PT_FRAME_TRAILER_SIZE : 0), &h);
    if (err) goto fail;
    if (!(h.flags & PT_FRAME_RESPONSE)) {
        err = -PT_EPROTO;
        goto fail;
    }
    if (h.body_len) {
        reply->body = malloc(h.body_len);
        if (!reply->body) {
            err = -PT_ENOMEM;
            goto fail;
        }
        err = recv_all(c->fd, reply->body, h.body_len, deadline);
        if (err) goto fail;
    }
    reply->body_len = h.body_len;
    /* (a sealed frame's CRC is its header's: its MAC, checked below, covers the body) */
    err = pt_frame_check_crc(hdr, &h, reply->body);
    if (err) goto fail;
    if (c->has_key) {
        /* Every response, also a stale one, is checked: each takes a sequence number. */
        err = pt_frame_unseal(hdr, &h, reply->body, c->session.s2c, c->seq_in);
        if (err) goto fail;
        c->seq_in++;
        reply->body_len = h.body_len;
    } else if (h.flags & PT_FRAME_AUTH) {
        err = -PT_EPROTO;
        goto fail;
    }
    *id_out = h.request_id;
    reply->kind = h.kind;
    if (h.flags & PT_FRAME_ERROR) {
        reply->remote = 1;
        err = pt_frame_error_decode(reply->body, reply->body_len, &reply->error);
        if (err) goto fail;
        pt_reply_free(reply);
        return reply->error.code;
    }
    return 0;
fail:
    pt_reply_free(reply);
    reply->remote = 0;
    conn_drop(c);
    return err;
}

int pt_conn_callv(struct pt_conn *c, uint16_t kind, const struct iovec *parts, int nparts,
                  int timeout_ms, struct pt_reply *reply)
{
    uint64_t deadline = pt_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    uint64_t id, got;
    int err;
    memset(reply, 0, sizeof(*reply));
    err = pt_conn_send(c, kind, parts, nparts, timeout_ms, &id);
    if (err) return err;
    for (;;) {
        int left = (int)(deadline > pt_now_ms() ? deadline - pt_now_ms() : 0);
        err = pt_conn_recv(c, left ? left : 1, &got, reply);
        if (err < 0 && !reply->remote) return err;
        if (got == id) break;
        /* A leftover response of an earlier call that timed out: skip it. */
        pt_reply_free(reply);
    }
    if (err) return err;
    if (reply->kind != kind) {
        pt_reply_free(reply);
        conn_drop(c);
        return -PT_EPROTO;
    }
    return 0;
}

int pt_conn_call(struct pt_conn *c, uint16_t kind, const void *body, uint32_t len, int timeout_ms,
                 struct pt_reply *reply)
{
    struct iovec iov;
    iov.iov_base = (void *)body;
    iov.iov_len = len;
    return pt_conn_callv(c, kind, &iov, len ? 1 : 0, timeout_ms, reply);
}
