/*
 * Raft file formats (see raft_log.h and docs/SPEC-RAFTLOG.md). Every structure is written
 * field by field through the codec and closed by a CRC32C; decoders check the CRC before
 * trusting any field but the ones needed to find it (lengths, checked against the buffer).
 */
#include "cluster/replica/raft_log.h"

#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

void pt_raft_meta_encode(uint8_t out[PT_RAFT_META_SIZE], uint64_t term, uint64_t vote)
{
    pt_put_le32(out, PT_RAFT_META_MAGIC);
    pt_put_le16(out + 4, PT_RAFT_FILE_VERSION);
    pt_put_le16(out + 6, 0);
    pt_put_le64(out + 8, term);
    pt_put_le64(out + 16, vote);
    pt_put_le32(out + 24, petrel_crc32c(0, out, 24));
}

int pt_raft_meta_decode(const uint8_t *buf, size_t len, uint64_t *term, uint64_t *vote)
{
    if (len != PT_RAFT_META_SIZE || pt_get_le32(buf) != PT_RAFT_META_MAGIC) return -PT_ECORRUPT;
    if (pt_get_le32(buf + 24) != petrel_crc32c(0, buf, 24)) return -PT_ECORRUPT;
    if (pt_get_le16(buf + 4) != PT_RAFT_FILE_VERSION || pt_get_le16(buf + 6) != 0)
        return -PT_EVERSION;
    *term = pt_get_le64(buf + 8);
    *vote = pt_get_le64(buf + 16);
    return 0;
}

void pt_raft_seg_header_encode(uint8_t out[PT_RAFT_SEG_HEADER], uint64_t seq, uint64_t first_index)
{
    pt_put_le32(out, PT_RAFT_SEG_MAGIC);
    pt_put_le16(out + 4, PT_RAFT_FILE_VERSION);
    pt_put_le16(out + 6, 0);
    pt_put_le64(out + 8, seq);
    pt_put_le64(out + 16, first_index);
    pt_put_le32(out + 24, 0);
    pt_put_le32(out + 28, petrel_crc32c(0, out, 28));
}

int pt_raft_seg_header_decode(const uint8_t *buf, size_t len, uint64_t *seq, uint64_t *first_index)
{
    if (len < PT_RAFT_SEG_HEADER || pt_get_le32(buf) != PT_RAFT_SEG_MAGIC) return -PT_ECORRUPT;
    if (pt_get_le32(buf + 28) != petrel_crc32c(0, buf, 28)) return -PT_ECORRUPT;
    if (pt_get_le16(buf + 4) != PT_RAFT_FILE_VERSION || pt_get_le16(buf + 6) != 0 ||
        pt_get_le32(buf + 24) != 0)
        return -PT_EVERSION;
    *seq = pt_get_le64(buf + 8);
    *first_index = pt_get_le64(buf + 16);
    if (*first_index == 0) return -PT_ECORRUPT;
    return 0;
}

size_t pt_raft_rec_size(size_t payload_len)
{
    return (PT_RAFT_REC_HEADER + payload_len + 4 + 7) & ~(size_t)7;
}

void pt_raft_rec_encode(uint8_t *out, uint64_t index, uint64_t term, uint64_t batch_first,
                        uint8_t type, const void *payload, uint32_t len)
{
    size_t size = pt_raft_rec_size(len), end = PT_RAFT_REC_HEADER + len;
    pt_put_le64(out, index);
    pt_put_le64(out + 8, term);
    pt_put_le64(out + 16, batch_first);
    pt_put_le32(out + 24, len);
    out[28] = type;
    out[29] = out[30] = out[31] = 0;
    if (len) memcpy(out + PT_RAFT_REC_HEADER, payload, len);
    pt_put_le32(out + end, petrel_crc32c(0, out, end));
    memset(out + end + 4, 0, size - end - 4);
}

/* Parse the record at off: 0 and rec filled, or -1 (does not fit, bad fields or CRC). */
static int rec_parse(const uint8_t *buf, size_t len, size_t off, struct pt_raft_rec *rec)
{
    const uint8_t *p = buf + off;
    uint32_t plen;
    size_t end, i;
    if (len - off < PT_RAFT_REC_HEADER + 4) return -1;
    plen = pt_get_le32(p + 24);
    if (plen > PT_RAFT_REC_MAX || pt_raft_rec_size(plen) > len - off) return -1;
    end = PT_RAFT_REC_HEADER + plen;
    if (pt_get_le32(p + end) != petrel_crc32c(0, p, end)) return -1;
    if (p[28] < 1 || p[28] > 3 || p[29] || p[30] || p[31]) return -1;
    for (i = end + 4; i < pt_raft_rec_size(plen); i++)
        if (p[i]) return -1;
    rec->index = pt_get_le64(p);
    rec->term = pt_get_le64(p + 8);
    rec->batch_first = pt_get_le64(p + 16);
    rec->len = plen;
    rec->type = p[28];
    rec->payload = p + PT_RAFT_REC_HEADER;
    rec->offset = off;
    return 0;
}

int pt_raft_seg_scan(const uint8_t *buf, size_t len, uint64_t first_index, pt_raft_rec_fn cb,
                     void *ctx, size_t *valid_end)
{
    size_t off = PT_RAFT_SEG_HEADER, probe;
    uint64_t expect = first_index;
    struct pt_raft_rec rec;
    int rc;
    while (off < len) {
        if (rec_parse(buf, len, off, &rec) != 0) break;
        if (rec.index != expect || rec.batch_first > rec.index) return -PT_ECORRUPT;
        if ((rc = cb(ctx, &rec)) != 0) return rc;
        off += pt_raft_rec_size(rec.len);
        expect++;
    }
    *valid_end = off;
    if (off >= len) return 0;
    /* A bad record: torn tail unless a record of a later batch was written after it. */
    for (probe = off + 8; probe + PT_RAFT_REC_HEADER + 4 <= len; probe += 8)
        if (rec_parse(buf, len, probe, &rec) == 0 && rec.batch_first > expect) return -PT_ECORRUPT;
    return 1;
}

void pt_raft_snap_header_encode(uint8_t out[PT_RAFT_SNAP_HEADER],
                                const struct pt_raft_snap_header *h)
{
    pt_put_le32(out, PT_RAFT_SNAP_MAGIC);
    pt_put_le16(out + 4, PT_RAFT_FILE_VERSION);
    pt_put_le16(out + 6, 0);
    pt_put_le64(out + 8, h->index);
    pt_put_le64(out + 16, h->term);
    pt_put_le64(out + 24, h->conf_index);
    pt_put_le64(out + 32, h->data_len);
    pt_put_le32(out + 40, h->conf_len);
    pt_put_le32(out + 44, petrel_crc32c(0, out, 44));
}

int pt_raft_snap_header_decode(const uint8_t *buf, size_t len, struct pt_raft_snap_header *h)
{
    if (len < PT_RAFT_SNAP_HEADER || pt_get_le32(buf) != PT_RAFT_SNAP_MAGIC) return -PT_ECORRUPT;
    if (pt_get_le32(buf + 44) != petrel_crc32c(0, buf, 44)) return -PT_ECORRUPT;
    if (pt_get_le16(buf + 4) != PT_RAFT_FILE_VERSION || pt_get_le16(buf + 6) != 0)
        return -PT_EVERSION;
    h->index = pt_get_le64(buf + 8);
    h->term = pt_get_le64(buf + 16);
    h->conf_index = pt_get_le64(buf + 24);
    h->data_len = pt_get_le64(buf + 32);
    h->conf_len = pt_get_le32(buf + 40);
    if (h->index == 0 || h->term == 0 || h->conf_index == 0 || h->conf_index > h->index)
        return -PT_ECORRUPT;
    return 0;
}

void pt_raft_snap_ref_encode(uint8_t out[PT_RAFT_SNAP_REF_LEN], const struct pt_raft_snap_ref *r)
{
    pt_put_le32(out, PT_RAFT_SNAP_REF_MAGIC);
    pt_put_le32(out + 4, 1);
    pt_put_le64(out + 8, r->token);
    pt_put_le64(out + 16, r->len);
    pt_put_le32(out + 24, r->crc);
    pt_put_le32(out + 28, petrel_crc32c(0, out, 28));
}

int pt_raft_snap_ref_decode(const uint8_t *buf, size_t len, struct pt_raft_snap_ref *r)
{
    if (len != PT_RAFT_SNAP_REF_LEN || pt_get_le32(buf) != PT_RAFT_SNAP_REF_MAGIC ||
        pt_get_le32(buf + 4) != 1 || pt_get_le32(buf + 28) != petrel_crc32c(0, buf, 28))
        return 0;
    r->token = pt_get_le64(buf + 8);
    r->len = pt_get_le64(buf + 16);
    r->crc = pt_get_le32(buf + 24);
    return r->token != 0;
}
