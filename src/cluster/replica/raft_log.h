/*
 * Byte formats of the Raft files (docs/SPEC-RAFTLOG.md): the term-and-vote file, log
 * segments of CRC'd entry records, snapshot files. Pure functions over buffers (no env, no
 * allocation), so the loader's parsing is fuzzed directly.
 *
 * The torn-tail rule: appends are written one batch (one pwrite) at a time and the next batch
 * is written only after the previous one's fsync completed; every record names the first
 * index of its batch. A record that fails its CRC is therefore a torn tail when no valid record
 * of a *later* batch follows it (only the last, unsynced batch can be torn), and corruption of
 * synced data when one does.
 */
#ifndef PETREL_CLUSTER_REPLICA_RAFT_LOG_H
#define PETREL_CLUSTER_REPLICA_RAFT_LOG_H

#include <stddef.h>
#include <stdint.h>

#define PT_RAFT_META_MAGIC 0x54454d50u /* "PMET" */
#define PT_RAFT_SEG_MAGIC 0x47455350u  /* "PSEG" */
#define PT_RAFT_SNAP_MAGIC 0x504e5350u /* "PSNP" */
#define PT_RAFT_FILE_VERSION 1
#define PT_RAFT_META_SIZE 28
#define PT_RAFT_SEG_HEADER 32
#define PT_RAFT_REC_HEADER 32
#define PT_RAFT_REC_MAX (64u << 20) /* payload bytes of one entry */
#define PT_RAFT_SNAP_HEADER 48

void pt_raft_meta_encode(uint8_t out[PT_RAFT_META_SIZE], uint64_t term, uint64_t vote);
/* 0, -PT_ECORRUPT (size, magic, CRC) or -PT_EVERSION. */
int pt_raft_meta_decode(const uint8_t *buf, size_t len, uint64_t *term, uint64_t *vote);

void pt_raft_seg_header_encode(uint8_t out[PT_RAFT_SEG_HEADER], uint64_t seq, uint64_t first_index);
/* 0, -PT_ECORRUPT or -PT_EVERSION. */
int pt_raft_seg_header_decode(const uint8_t *buf, size_t len, uint64_t *seq, uint64_t *first_index);

/* Bytes a record of `payload_len` takes: header, payload, CRC, zero padding to 8. */
size_t pt_raft_rec_size(size_t payload_len);
void pt_raft_rec_encode(uint8_t *out, uint64_t index, uint64_t term, uint64_t batch_first,
                        uint8_t type, const void *payload, uint32_t len);

struct pt_raft_rec {
    uint64_t index, term, batch_first;
    uint8_t type;
    uint32_t len;
    const uint8_t *payload; /* inside the scanned buffer */
    size_t offset;          /* of the record in the segment */
};

/* Called for each valid record in order; a non-zero return stops the scan with that value. */
typedef int (*pt_raft_rec_fn)(void *ctx, const struct pt_raft_rec *rec);

/*
 * Scan the records of a segment image (buf = whole file, header included, already checked)
 * whose first record has index first_index. Returns 0 when every byte belongs to a valid
 * record (*valid_end = len); 1 for a torn tail (*valid_end = where the valid records end);
 * -PT_ECORRUPT when a bad record is followed by a valid record of a later batch, or records
 * are out of sequence; or what cb returned.
 */
int pt_raft_seg_scan(const uint8_t *buf, size_t len, uint64_t first_index, pt_raft_rec_fn cb,
                     void *ctx, size_t *valid_end);

struct pt_raft_snap_header {
    uint64_t index, term, conf_index, data_len;
    uint32_t conf_len;
};
void pt_raft_snap_header_encode(uint8_t out[PT_RAFT_SNAP_HEADER],
                                const struct pt_raft_snap_header *h);
/* 0, -PT_ECORRUPT or -PT_EVERSION. */
int pt_raft_snap_header_decode(const uint8_t *buf, size_t len, struct pt_raft_snap_header *h);

/*
 * Streamed snapshot data (SPEC-RAFTLOG.md §3.1): a state machine that streams its snapshots
 * hands libraft this 32-byte reference instead of its image; the image is the file
 * `sdata-<token>` beside the snap files. Bytes: u32 magic "PTSR", u32 version 1, u64 token
 * (>= 1), u64 image length, u32 CRC32C of the image, u32 CRC32C of the 28 bytes before.
 */
#define PT_RAFT_SNAP_REF_MAGIC 0x52535450u /* "PTSR" */
#define PT_RAFT_SNAP_REF_LEN 32
struct pt_raft_snap_ref {
    uint64_t token, len;
    uint32_t crc;
};
void pt_raft_snap_ref_encode(uint8_t out[PT_RAFT_SNAP_REF_LEN], const struct pt_raft_snap_ref *r);
/* 1 and *r when buf is exactly a valid reference, else 0 (an image, or damage). */
int pt_raft_snap_ref_decode(const uint8_t *buf, size_t len, struct pt_raft_snap_ref *r);

#endif
