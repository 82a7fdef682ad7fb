/*
 * Block service messages (kinds 0x02xx; docs/PROTOCOL.md section "Block services") and the
 * certificates that authorise writes and erases.
 *
 * A certificate is SipHash-2-4, under the secret the registry hands to the block service and
 * to shards, of a 28-byte message:
 *
 *   u32 domain | u64 block service id | u64 block id | u32 block CRC32C | u32 block size
 *
 * Domain tags keep the four uses apart, so a proof can never be replayed as a certificate:
 * WRITE_CERT and ERASE_CERT are made by the shard and checked by the block service;
 * WRITE_PROOF and ERASE_PROOF are made by the block service once the block is durable (or
 * gone) and checked by the shard. Byte layout only here; no I/O.
 */
#ifndef PETREL_CLUSTER_BLOCKS_MSG_H
#define PETREL_CLUSTER_BLOCKS_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/proto/ids.h"
#include "petrel/codec.h"

#define PT_BLOCK_PAGE_SIZE 4096u
#define PT_BLOCK_MAX_SIZE (8u * 1024 * 1024)
#define PT_BLOCK_MAX_PAGES (PT_BLOCK_MAX_SIZE / PT_BLOCK_PAGE_SIZE)
#define PT_BLOCK_LIST_MAX 4096 /* entries in one BLOCK_LIST reply */
/* The most block data one frame carries: a BLOCK_WRITE, one BLOCK_WRITE_PAGES, one
 * BLOCK_READ response. A larger block travels as a stream of such pieces. */
#define PT_BLOCK_CHUNK (256u * 1024)
/* The largest body of a block service frame either way: a BLOCK_WRITE_PAGES of a full chunk,
 * or a BLOCK_READ response of a chunk that starts mid-page (one page more, with its CRC). */
#define PT_BLOCK_MAX_BODY \
    (PT_BLOCK_CHUNK + PT_BLOCK_PAGE_SIZE + (PT_BLOCK_CHUNK / PT_BLOCK_PAGE_SIZE + 1) * 4 + 64)
/* A write stream idle this long is given up (its temp file removed). */
#define PT_BLOCK_STREAM_IDLE_MS 30000
/* Write streams open at once in one service; a further BEGIN gets PT_EBUSY. */
#define PT_BLOCK_STREAMS_MAX 32

enum pt_block_mac_domain {
    PT_BLOCK_WRITE_CERT = 0x54524357,  /* "WCRT" */
    PT_BLOCK_ERASE_CERT = 0x54524345,  /* "ECRT" */
    PT_BLOCK_WRITE_PROOF = 0x46525057, /* "WPRF" */
    PT_BLOCK_ERASE_PROOF = 0x46525045, /* "EPRF" */
};

/* The MAC of (domain, service, block, crc, size) under a 16-byte secret. */
uint64_t pt_block_mac(const uint8_t secret[16], enum pt_block_mac_domain domain,
                      uint64_t service_id, uint64_t block_id, uint32_t crc, uint32_t size);

/* Constant-time check of a received MAC: 1 when it is the expected one. */
int pt_block_mac_check(const uint8_t secret[16], enum pt_block_mac_domain domain,
                       uint64_t service_id, uint64_t block_id, uint32_t crc, uint32_t size,
                       uint64_t mac);

/* Number of pages of a block of `size` bytes (the last page may be short). */
static inline uint32_t pt_block_pages(uint32_t size)
{
    return (uint32_t)((size + (uint64_t)PT_BLOCK_PAGE_SIZE - 1) / PT_BLOCK_PAGE_SIZE);
}

/*
 * BLOCK_WRITE request: block id, CRC, size, certificate, then `size` data bytes (the rest of
 * the body). The fields before the data take PT_BLOCK_WRITE_FIELDS bytes. Response: u64 proof.
 */
#define PT_BLOCK_WRITE_FIELDS 24
struct pt_block_write_req {
    uint64_t block_id;
    uint32_t crc;
    uint32_t size;
    uint64_t cert;
};
void pt_block_enc_write(struct pt_cursor *c, const struct pt_block_write_req *w);
/* Decodes the fields; the data is what is left in the cursor (must be exactly w->size). */
void pt_block_dec_write(struct pt_cursor *c, struct pt_block_write_req *w);

/*
 * A block written as a stream (docs/PROTOCOL.md, "Streamed writes"), all on one connection:
 * BLOCK_WRITE_BEGIN carries the BLOCK_WRITE fields (no data) and a stream id the writer picks;
 * BLOCK_WRITE_PAGES carries block id, stream id, offset, page count, the page CRCs and the
 * pages (at most PT_BLOCK_CHUNK bytes, in order); BLOCK_WRITE_END (block id, stream id) asks
 * for the proof. BEGIN and PAGES answer with an empty body; END with the u64 proof.
 */
#define PT_BLOCK_BEGIN_FIELDS 32
#define PT_BLOCK_PAGES_FIELDS 24
#define PT_BLOCK_END_FIELDS 16
struct pt_block_pages_req {
    uint64_t block_id;
    uint64_t stream;
    uint32_t offset;
    uint32_t pages;
};
void pt_block_enc_pages(struct pt_cursor *c, const struct pt_block_pages_req *p);
/* Decodes the fields; the page CRCs then the data are what is left in the cursor. */
void pt_block_dec_pages(struct pt_cursor *c, struct pt_block_pages_req *p);

/* BLOCK_READ request: block id, offset, count. */
struct pt_block_read_req {
    uint64_t block_id;
    uint32_t offset;
    uint32_t count;
};
void pt_block_enc_read(struct pt_cursor *c, const struct pt_block_read_req *r);
void pt_block_dec_read(struct pt_cursor *c, struct pt_block_read_req *r);

/*
 * BLOCK_READ response header: the block's size and the page-aligned range returned (every
 * page the requested range touches, whole, so the client can check each page CRC), then
 * `pages` u32 page CRCs, then data_len data bytes.
 */
struct pt_block_read_resp {
    uint32_t block_size;
    uint32_t data_offset; /* multiple of PT_BLOCK_PAGE_SIZE */
    uint32_t data_len;
    uint32_t pages;
};
#define PT_BLOCK_READ_RESP_FIELDS 16
void pt_block_enc_read_resp(struct pt_cursor *c, const struct pt_block_read_resp *r);
void pt_block_dec_read_resp(struct pt_cursor *c, struct pt_block_read_resp *r);

/* BLOCK_ERASE request: block id, CRC and size of the block, certificate. Response: u64. */
struct pt_block_erase_req {
    uint64_t block_id;
    uint32_t crc;
    uint32_t size;
    uint64_t cert;
};
void pt_block_enc_erase(struct pt_cursor *c, const struct pt_block_erase_req *e);
void pt_block_dec_erase(struct pt_cursor *c, struct pt_block_erase_req *e);

/* A stored block as STAT and LIST report it. */
struct pt_block_stat {
    uint64_t block_id;
    uint32_t size;
    uint32_t crc;
};
void pt_block_enc_stat(struct pt_cursor *c, const struct pt_block_stat *s);
void pt_block_dec_stat(struct pt_cursor *c, struct pt_block_stat *s);

/*
 * BLOCK_LIST request: u64 start (first id listed is >= start), u32 max entries.
 * Response: u32 count, count stat entries, u8 more (1 when entries remain after the last).
 */

/* BLOCK_INFO response: the service's own description. */
struct pt_block_info {
    uint64_t service_id;
    uint64_t capacity;
    uint64_t used;
    uint64_t blocks;
    char failure_domain[64];
    /* after the fields above (issue 11; a service from before sends neither: has_disk 0) */
    uint8_t has_disk;
    uint64_t fsid; /* the file system holding the blocks (0 unknown) */
    uint64_t free; /* bytes free on it for users */
    /* then the scrubber's progress (blocks.h, struct pt_blocks_scrub_stats); a service from
     * before sends none: has_scrub 0 */
    uint8_t has_scrub;
    uint64_t scrub_checked, scrub_rotten, scrub_passes, scrub_last_pass_ms;
};
void pt_block_enc_info(struct pt_cursor *c, const struct pt_block_info *i);
void pt_block_dec_info(struct pt_cursor *c, struct pt_block_info *i);

#endif
