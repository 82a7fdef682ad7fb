/*
 * Raft message codec (see raft_msg.h; layout in docs/PROTOCOL.md). Encoding writes every
 * field through the one little-endian cursor; decoding checks sizes before allocation and
 * leaves no allocation behind on failure.
 */
#include "cluster/replica/raft_msg.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/proto/auth.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define RV_BODY 33  /* term, candidate, last index, last term, flags */
#define RVR_BODY 10 /* term, granted, pre_vote */
#define AE_FIXED 36 /* term, prev index, prev term, commit, count */
#define AE_ENTRY 13 /* term, type, length */
#define AER_BODY 24 /* term, rejected, last index */
#define IS_FIXED 36 /* term, last index, last term, conf index, server count */
#define TN_BODY 24  /* term, last index, last term */

size_t pt_raft_conf_size(const struct raft_configuration *c)
{
    size_t n = 0;
    unsigned i;
    for (i = 0; i < c->n; i++)
        n += 8 + 1 + 2 + strlen(c->servers[i].address);
    return 4 + n;
}

/* Number of AppendEntries entries that fit in a message, and the body size they need. */
static unsigned ae_fit(const struct raft_append_entries *a, size_t *body)
{
    size_t size = AE_FIXED;
    unsigned i;
    for (i = 0; i < a->n_entries && i < PT_RAFT_MSG_ENTRIES_MAX; i++) {
        size_t one = AE_ENTRY + a->entries[i].buf.len;
        if (a->entries[i].buf.len > PT_RAFT_MSG_ENTRY_MAX ||
            size + one > PT_RAFT_MSG_MAX - PT_RAFT_MSG_HEADER - PT_RAFT_MSG_TRAILER)
            break;
        size += one;
    }
    *body = size;
    return i;
}

int pt_raft_msg_encode(const struct pt_raft_msg_header *h, const struct raft_message *m,
                       uint8_t **out, size_t *out_len)
{
    size_t body = 0, total;
    unsigned n_entries = 0, i;
    struct pt_cursor c;
    uint8_t *buf;
    uint32_t crc;
    switch (m->type) {
    case RAFT_IO_REQUEST_VOTE:
        body = RV_BODY;
        break;
    case RAFT_IO_REQUEST_VOTE_RESULT:
        body = RVR_BODY;
        break;
    case RAFT_IO_APPEND_ENTRIES:
        n_entries = ae_fit(&m->append_entries, &body);
        break;
    case RAFT_IO_APPEND_ENTRIES_RESULT:
        body = AER_BODY;
        break;
    case RAFT_IO_INSTALL_SNAPSHOT:
        if (m->install_snapshot.conf.n > PT_RAFT_MSG_SERVERS_MAX) return -PT_EINVAL;
        for (i = 0; i < m->install_snapshot.conf.n; i++)
            if (strlen(m->install_snapshot.conf.servers[i].address) > PT_RAFT_MSG_ADDR_MAX)
                return -PT_EINVAL;
        body = IS_FIXED - 4 + pt_raft_conf_size(&m->install_snapshot.conf) + 8 +
               m->install_snapshot.data.len;
        if (body > PT_RAFT_MSG_MAX - PT_RAFT_MSG_HEADER - PT_RAFT_MSG_TRAILER) return -PT_E2BIG;
        break;
    case RAFT_IO_TIMEOUT_NOW:
        body = TN_BODY;
        break;
    default:
        return -PT_EINVAL;
    }
    if (h->flags & ~PT_RAFT_MSG_AUTH) return -PT_EINVAL;
    total = PT_RAFT_MSG_HEADER + body;
    buf = calloc(1, total + ((h->flags & PT_RAFT_MSG_AUTH) ? PT_RAFT_MSG_TRAILER : 0));
    if (!buf) return -PT_ENOMEM;
    pt_cursor_init(&c, buf, total);
    pt_enc_u32(&c, PT_RAFT_MSG_MAGIC);
    pt_enc_u8(&c, PT_RAFT_MSG_VERSION);
    pt_enc_u8(&c, (uint8_t)m->type);
    pt_enc_u16(&c, h->flags);
    pt_enc_u64(&c, h->cluster_id);
    pt_enc_u32(&c, h->group);
    pt_enc_u32(&c, (uint32_t)body);
    pt_enc_u64(&c, h->from);
    pt_enc_u64(&c, h->to);
    pt_enc_u32(&c, 0); /* CRC, filled below */
    switch (m->type) {
    case RAFT_IO_REQUEST_VOTE: {
        const struct raft_request_vote *v = &m->request_vote;
        pt_enc_u64(&c, v->term);
        pt_enc_u64(&c, v->candidate_id);
        pt_enc_u64(&c, v->last_log_index);
        pt_enc_u64(&c, v->last_log_term);
        pt_enc_u8(&c, (uint8_t)((v->disrupt_leader ? 1 : 0) | (v->pre_vote ? 2 : 0)));
        break;
    }
    case RAFT_IO_REQUEST_VOTE_RESULT: {
        const struct raft_request_vote_result *v = &m->request_vote_result;
        pt_enc_u64(&c, v->term);
        pt_enc_u8(&c, v->vote_granted ? 1 : 0);
        pt_enc_u8(&c, (uint8_t)v->pre_vote);
        break;
    }
    case RAFT_IO_APPEND_ENTRIES: {
        const struct raft_append_entries *a = &m->append_entries;
        pt_enc_u64(&c, a->term);
        pt_enc_u64(&c, a->prev_log_index);
        pt_enc_u64(&c, a->prev_log_term);
        pt_enc_u64(&c, a->leader_commit);
        pt_enc_u32(&c, n_entries);
        for (i = 0; i < n_entries; i++) {
            pt_enc_u64(&c, a->entries[i].term);
            pt_enc_u8(&c, (uint8_t)a->entries[i].type);
            pt_enc_u32(&c, (uint32_t)a->entries[i].buf.len);
            pt_enc_bytes(&c, a->entries[i].buf.base, a->entries[i].buf.len);
        }
        break;
    }
    case RAFT_IO_APPEND_ENTRIES_RESULT: {
        const struct raft_append_entries_result *a = &m->append_entries_result;
        pt_enc_u64(&c, a->term);
        pt_enc_u64(&c, a->rejected);
        pt_enc_u64(&c, a->last_log_index);
        break;
    }
    case RAFT_IO_INSTALL_SNAPSHOT: {
        const struct raft_install_snapshot *s = &m->install_snapshot;
        pt_enc_u64(&c, s->term);
        pt_enc_u64(&c, s->last_index);
        pt_enc_u64(&c, s->last_term);
        pt_enc_u64(&c, s->conf_index);
        pt_raft_conf_encode(&c, &s->conf);
        pt_enc_u64(&c, s->data.len);
        pt_enc_bytes(&c, s->data.base, s->data.len);
        break;
    }
    case RAFT_IO_TIMEOUT_NOW: {
        const struct raft_timeout_now *t = &m->timeout_now;
        pt_enc_u64(&c, t->term);
        pt_enc_u64(&c, t->last_log_index);
        pt_enc_u64(&c, t->last_log_term);
        break;
    }
    }
    if (!pt_cursor_ok(&c) || c.pos != total) {
        free(buf);
        return -PT_EINVAL;
    }
    crc = petrel_crc32c(0, buf, 40);
    crc = petrel_crc32c(crc, buf + PT_RAFT_MSG_HEADER, body);
    pt_put_le32(buf + 40, crc);
    *out = buf;
    *out_len = total + ((h->flags & PT_RAFT_MSG_AUTH) ? PT_RAFT_MSG_TRAILER : 0);
    return 0;
}

void pt_raft_msg_seal(uint8_t *buf, size_t len, const uint8_t *key, uint64_t seq)
{
    struct pt_auth_mac mac;
    uint8_t *trailer = buf + len - PT_RAFT_MSG_TRAILER;
    pt_put_le64(trailer, seq);
    pt_auth_mac_init(&mac, key);
    pt_auth_mac_add(&mac, buf, len - PT_RAFT_MSG_TRAILER + 8);
    pt_auth_mac_final(&mac, trailer + 8);
}

int pt_raft_msg_unseal(const uint8_t *buf, size_t len, const uint8_t *key, uint64_t *seq)
{
    struct pt_auth_mac mac;
    uint8_t tag[PT_AUTH_MAC_BYTES];
    const uint8_t *trailer;
    if (len < PT_RAFT_MSG_HEADER + PT_RAFT_MSG_TRAILER) return -PT_EACCES;
    trailer = buf + len - PT_RAFT_MSG_TRAILER;
    pt_auth_mac_init(&mac, key);
    pt_auth_mac_add(&mac, buf, len - PT_RAFT_MSG_TRAILER + 8);
    pt_auth_mac_final(&mac, tag);
    if (!pt_auth_mac_equal(tag, trailer + 8)) return -PT_EACCES;
    *seq = pt_get_le64(trailer);
    return 0;
}

int pt_raft_msg_decode_header(const uint8_t *buf, size_t len, struct pt_raft_msg_header *h)
{
    uint32_t crc;
    size_t trailer;
    if (len < PT_RAFT_MSG_HEADER || len > PT_RAFT_MSG_MAX) return -PT_EPROTO;
    if (pt_get_le32(buf) != PT_RAFT_MSG_MAGIC) return -PT_EPROTO;
    if (buf[4] != PT_RAFT_MSG_VERSION) return -PT_EVERSION;
    h->type = buf[5];
    h->flags = pt_get_le16(buf + 6);
    if (h->flags & ~PT_RAFT_MSG_AUTH) return -PT_EPROTO;
    trailer = (h->flags & PT_RAFT_MSG_AUTH) ? PT_RAFT_MSG_TRAILER : 0;
    if (len < PT_RAFT_MSG_HEADER + trailer) return -PT_EPROTO;
    h->cluster_id = pt_get_le64(buf + 8);
    h->group = pt_get_le32(buf + 16);
    h->body_len = pt_get_le32(buf + 20);
    h->from = pt_get_le64(buf + 24);
    h->to = pt_get_le64(buf + 32);
    if ((size_t)h->body_len != len - PT_RAFT_MSG_HEADER - trailer) return -PT_EPROTO;
    crc = petrel_crc32c(0, buf, 40);
    crc = petrel_crc32c(crc, buf + PT_RAFT_MSG_HEADER, h->body_len);
    if (crc != pt_get_le32(buf + 40)) return -PT_EBADMSG;
    if (h->type < RAFT_IO_APPEND_ENTRIES || h->type > RAFT_IO_TIMEOUT_NOW) return -PT_EPROTO;
    return 0;
}

void pt_raft_conf_encode(struct pt_cursor *c, const struct raft_configuration *conf)
{
    unsigned i;
    pt_enc_u32(c, conf->n);
    for (i = 0; i < conf->n; i++) {
        size_t alen = strlen(conf->servers[i].address);
        pt_enc_u64(c, conf->servers[i].id);
        pt_enc_u8(c, (uint8_t)conf->servers[i].role);
        pt_enc_u16(c, (uint16_t)alen);
        pt_enc_bytes(c, conf->servers[i].address, alen);
    }
}

static int decode_entries(struct pt_cursor *c, struct raft_append_entries *a)
{
    uint32_t n = pt_dec_u32(c), i;
    size_t start = c->pos, total = 0;
    uint8_t *batch = NULL;
    if (!pt_cursor_ok(c) || n > PT_RAFT_MSG_ENTRIES_MAX) return -PT_EPROTO;
    /* First pass: every length within limits and inside the body, before any allocation. */
    for (i = 0; i < n; i++) {
        uint32_t len;
        (void)pt_dec_u64(c);
        if (pt_dec_u8(c) - 1u > RAFT_CHANGE - 1u) return -PT_EPROTO;
        len = pt_dec_u32(c);
        if (!pt_cursor_ok(c) || len > PT_RAFT_MSG_ENTRY_MAX || len > pt_cursor_left(c))
            return -PT_EPROTO;
        c->pos += len;
        total += len;
    }
    if (!pt_cursor_ok(c) || pt_cursor_left(c) != 0) return -PT_EPROTO;
    a->n_entries = n;
    a->entries = NULL;
    if (n == 0) return 0;
    a->entries = raft_calloc(n, sizeof(*a->entries));
    batch = raft_malloc(total ? total : 1);
    if (!a->entries || !batch) {
        raft_free(a->entries);
        raft_free(batch);
        a->entries = NULL;
        return -PT_ENOMEM;
    }
    c->pos = start;
    total = 0;
    for (i = 0; i < n; i++) {
        struct raft_entry *e = &a->entries[i];
        e->term = pt_dec_u64(c);
        e->type = pt_dec_u8(c);
        e->buf.len = pt_dec_u32(c);
        e->buf.base = batch + total;
        pt_dec_bytes(c, batch + total, e->buf.len);
        total += e->buf.len;
        e->batch = batch;
    }
    return 0;
}

int pt_raft_conf_decode(struct pt_cursor *c, struct raft_configuration *conf)
{
    uint32_t n = pt_dec_u32(c), i;
    if (!pt_cursor_ok(c) || n > PT_RAFT_MSG_SERVERS_MAX) return -PT_EPROTO;
    raft_configuration_init(conf);
    for (i = 0; i < n; i++) {
        char addr[PT_RAFT_MSG_ADDR_MAX + 1];
        uint64_t id = pt_dec_u64(c);
        uint8_t role = pt_dec_u8(c);
        uint16_t alen = pt_dec_u16(c);
        if (!pt_cursor_ok(c) || alen > PT_RAFT_MSG_ADDR_MAX || alen > pt_cursor_left(c) ||
            id == 0 || role > RAFT_SPARE)
            goto bad;
        pt_dec_bytes(c, addr, alen);
        addr[alen] = 0;
        if (memchr(addr, 0, alen)) goto bad;
        if (raft_configuration_add(conf, id, addr, role) != 0) goto bad;
    }
    return 0;
bad:
    raft_configuration_close(conf);
    raft_configuration_init(conf);
    return -PT_EPROTO;
}

int pt_raft_msg_decode_body(const struct pt_raft_msg_header *h, const uint8_t *body,
                            struct raft_message *m)
{
    struct pt_cursor c;
    int rc = 0;
    memset(m, 0, sizeof(*m));
    m->type = h->type;
    m->server_id = h->from;
    pt_cursor_init(&c, (void *)body, h->body_len);
    switch (h->type) {
    case RAFT_IO_REQUEST_VOTE: {
        struct raft_request_vote *v = &m->request_vote;
        uint8_t flags;
        v->term = pt_dec_u64(&c);
        v->candidate_id = pt_dec_u64(&c);
        v->last_log_index = pt_dec_u64(&c);
        v->last_log_term = pt_dec_u64(&c);
        flags = pt_dec_u8(&c);
        if (flags & ~3u) return -PT_EPROTO;
        v->disrupt_leader = flags & 1;
        v->pre_vote = (flags & 2) != 0;
        break;
    }
    case RAFT_IO_REQUEST_VOTE_RESULT: {
        struct raft_request_vote_result *v = &m->request_vote_result;
        uint8_t granted, pre;
        v->term = pt_dec_u64(&c);
        granted = pt_dec_u8(&c);
        pre = pt_dec_u8(&c);
        if (granted > 1 || pre > raft_tribool_false) return -PT_EPROTO;
        v->vote_granted = granted;
        v->pre_vote = (raft_tribool)pre;
        break;
    }
    case RAFT_IO_APPEND_ENTRIES: {
        struct raft_append_entries *a = &m->append_entries;
        a->term = pt_dec_u64(&c);
        a->prev_log_index = pt_dec_u64(&c);
        a->prev_log_term = pt_dec_u64(&c);
        a->leader_commit = pt_dec_u64(&c);
        if (!pt_cursor_ok(&c)) return -PT_EPROTO;
        return decode_entries(&c, a);
    }
    case RAFT_IO_APPEND_ENTRIES_RESULT: {
        struct raft_append_entries_result *a = &m->append_entries_result;
        a->term = pt_dec_u64(&c);
        a->rejected = pt_dec_u64(&c);
        a->last_log_index = pt_dec_u64(&c);
        break;
    }
    case RAFT_IO_INSTALL_SNAPSHOT: {
        struct raft_install_snapshot *s = &m->install_snapshot;
        uint64_t dlen;
        s->term = pt_dec_u64(&c);
        s->last_index = pt_dec_u64(&c);
        s->last_term = pt_dec_u64(&c);
        s->conf_index = pt_dec_u64(&c);
        if (!pt_cursor_ok(&c)) return -PT_EPROTO;
        if ((rc = pt_raft_conf_decode(&c, &s->conf)) != 0) return rc;
        dlen = pt_dec_u64(&c);
        if (!pt_cursor_ok(&c) || dlen != pt_cursor_left(&c)) {
            raft_configuration_close(&s->conf);
            return -PT_EPROTO;
        }
        s->data.len = (size_t)dlen;
        s->data.base = raft_malloc(dlen ? (size_t)dlen : 1);
        if (!s->data.base) {
            raft_configuration_close(&s->conf);
            return -PT_ENOMEM;
        }
        pt_dec_bytes(&c, s->data.base, s->data.len);
        break;
    }
    case RAFT_IO_TIMEOUT_NOW: {
        struct raft_timeout_now *t = &m->timeout_now;
        t->term = pt_dec_u64(&c);
        t->last_log_index = pt_dec_u64(&c);
        t->last_log_term = pt_dec_u64(&c);
        break;
    }
    default:
        return -PT_EPROTO;
    }
    if (!pt_cursor_ok(&c) || pt_cursor_left(&c) != 0) {
        pt_raft_msg_release(m);
        return -PT_EPROTO;
    }
    return 0;
}

void pt_raft_msg_release(struct raft_message *m)
{
    if (m->type == RAFT_IO_APPEND_ENTRIES) {
        if (m->append_entries.n_entries > 0 && m->append_entries.entries)
            raft_free(m->append_entries.entries[0].batch);
        raft_free(m->append_entries.entries);
        m->append_entries.entries = NULL;
        m->append_entries.n_entries = 0;
    } else if (m->type == RAFT_IO_INSTALL_SNAPSHOT) {
        raft_configuration_close(&m->install_snapshot.conf);
        raft_free(m->install_snapshot.data.base);
        m->install_snapshot.data.base = NULL;
    }
}
