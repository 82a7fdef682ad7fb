/*
 * What the client library's files share beyond include/petrel/client.h: span-level access for
 * change.c (files that change, issue 12), so that it reuses the one write path (placement,
 * block writes, certification, retries) and the one read path (copies, Reed-Solomon rebuild,
 * CRC checks) of client.c instead of copies of them.
 */
#ifndef PETREL_CLUSTER_CLIENT_INTERNAL_H
#define PETREL_CLUSTER_CLIENT_INTERNAL_H

#include <stdint.h>

#include "cluster/net/net.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/client.h"

/* A shard request to the shard that owns inode `owner`, through the router (retries). */
int pt_client_shard_call(struct petrel_client *c, uint64_t owner, const struct pt_shard_req *q,
                         struct pt_reply *rep, int *retried);

/* Store data as the span at offset of transient file (cookie): inline up to 4 KiB, else
 * mirrored with `copies` copies (0: the client's), placed, written and certified. */
int pt_client_put_span(struct petrel_client *c, uint64_t file, uint64_t cookie, unsigned copies,
                       uint64_t offset, const uint8_t *data, uint32_t len);

/* Store data (len <= D x block size) as a Reed-Solomon span at offset of transient file
 * (cookie) with policy p's D, P and block size: placed, written and certified. */
int pt_client_put_rs_span(struct petrel_client *c, uint64_t file, uint64_t cookie,
                          const struct pt_policy *p, uint64_t offset, const uint8_t *data,
                          uint32_t len);

/* The storage policy file's new spans follow: its directory's (the nearest ancestor's that
 * has one), else the client's default. */
int pt_client_file_policy(struct petrel_client *c, uint64_t file, struct pt_policy *p);

/* Deliver [from, from + count) of span s of file to write(ctx, ...), checked. */
int pt_client_read_span(struct petrel_client *c, uint64_t file, const struct pt_span *s,
                        uint32_t from, uint32_t count, petrel_write_fn write, void *ctx);

uint32_t pt_client_span_size(const struct petrel_client *c);
uint64_t pt_client_cookie(struct petrel_client *c);

#endif
