/*
 * Client side of block services: the calls shards, block services and the client library
 * make to move block data (the registry's calls, which find the services, are in
 * registry_client.h, included here because every user of one uses the other).
 *
 * Every call takes the server's "HOST:PORT" and optional pt_call_opts (timeouts, retry budget;
 * NULL = defaults) and retries transport failures with back-off (pt_call). Returns 0 or a
 * negative PT_E*; remote errors come back as their code (PT_ENOTCERT for a refused
 * certificate, PT_ECORRUPT for a rotten page, PT_ENOENT for a missing block or service).
 *
 * Reads are verified end to end: the block service returns every page the range touches with
 * the page CRCs it stored, and pt_blocks_read recomputes each page's CRC before copying a
 * byte out; a mismatch is -PT_ECORRUPT, never wrong data.
 */
#ifndef PETREL_CLUSTER_BLOCKS_CLIENT_H
#define PETREL_CLUSTER_BLOCKS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/net/net.h"
#include "cluster/proto/blocks_msg.h"
#include "cluster/client/registry_client.h"

/* --- block services ------------------------------------------------------------------------ */

/* The CRC32C of a whole block, combined from its page CRCs (what certificates cover). */
uint32_t pt_block_crc(const void *data, uint32_t size);
/* The same, also writing each page's CRC32C (u32 LE, pt_block_pages(size) of them) to
 * page_crcs: a writer computes them once and sends them to every copy. */
uint32_t pt_block_crc_pages(const void *data, uint32_t size, uint8_t *page_crcs);

/*
 * Store a block (size <= PT_BLOCK_MAX_SIZE, crc = pt_block_crc of the data) with the shard's
 * write certificate; *proof receives the service's write proof. Idempotent: writing the same
 * block again returns the proof again; a different block under the same id is -PT_EEXIST.
 */
int pt_blocks_write(const char *address, uint64_t block_id, uint32_t crc, const void *data,
                    uint32_t size, uint64_t cert, uint64_t *proof, const struct pt_call_opts *opts);

/* pt_blocks_write with the block's bytes gathered from n pieces (an RS block's cells lie
 * apart in the writer's row-major buffer); size is their total. */
int pt_blocks_write_iov(const char *address, uint64_t block_id, uint32_t crc,
                        const struct iovec *pieces, unsigned n, uint32_t size, uint64_t cert,
                        uint64_t *proof, const struct pt_call_opts *opts);
/* pt_blocks_write_iov with the block's page CRCs known already (pt_block_crc_pages of the
 * pieces' bytes; NULL: computed here): no pass over the data but the send and its MAC. Page
 * CRCs that do not match the bytes are refused by the service (-PT_EBADMSG), never stored. */
int pt_blocks_write_pages(const char *address, uint64_t block_id, uint32_t crc,
                          const struct iovec *pieces, unsigned n, uint32_t size,
                          const uint8_t *page_crcs, uint64_t cert, uint64_t *proof,
                          const struct pt_call_opts *opts);

/*
 * Read count bytes at offset into buf (clipped at the end of the block; *got = bytes copied,
 * *block_size = the block's size, either may be NULL). Every page touched is checked against
 * its stored CRC here: -PT_ECORRUPT on a mismatch. offset beyond the block: -PT_ERANGE.
 */
int pt_blocks_read(const char *address, uint64_t block_id, uint32_t offset, uint32_t count,
                   void *buf, uint32_t *got, uint32_t *block_size, const struct pt_call_opts *opts);

/*
 * The client's check of a BLOCK_READ response body for the range [offset, offset+count)
 * (what pt_blocks_read does with the reply; transport-free, so the simulator's clients run
 * it): layout, coverage of the range, every page's CRC; then the range's bytes go to buf.
 * 0, -PT_EPROTO, -PT_ERANGE, -PT_ECORRUPT.
 */
int pt_blocks_read_resp_check(const uint8_t *body, size_t len, uint32_t offset, uint32_t count,
                              void *buf, uint32_t *got, uint32_t *block_size);

/* Erase a block with the shard's erase certificate; *proof gets the erase proof. Idempotent. */
int pt_blocks_erase(const char *address, uint64_t block_id, uint32_t crc, uint32_t size,
                    uint64_t cert, uint64_t *proof, const struct pt_call_opts *opts);

/* Size and CRC of one stored block (-PT_ENOENT when absent). */
int pt_blocks_stat(const char *address, uint64_t block_id, struct pt_block_stat *out,
                   const struct pt_call_opts *opts);

/*
 * Up to max stored blocks with id >= start, in id order, into a malloc'd array; *more says
 * whether further blocks exist (continue from the last id + 1).
 */
int pt_blocks_list(const char *address, uint64_t start, uint32_t max, struct pt_block_stat **out,
                   size_t *count, int *more, const struct pt_call_opts *opts);

/* The service's id, failure domain, capacity, used bytes and block count. */
int pt_blocks_info(const char *address, struct pt_block_info *out, const struct pt_call_opts *opts);

#endif
