/*
 * The cluster wire frame: the envelope around every request and response between Petrel
 * servers and clients (docs/PROTOCOL.md, section "Frame", byte by byte).
 *
 * A frame is a fixed 24-byte header followed by a body of at most a configured maximum:
 *
 *   magic u32 | version u8 | flags u8 | kind u16 | request id u64 | body length u32 | crc u32
 *
 * The CRC32C covers header bytes 0..19 followed by the body, so a flipped bit anywhere (length
 * included) is caught; a sealed frame's (flag AUTH) covers the header bytes alone, its MAC
 * covering the body (one pass over the body on each side, not two). This module only encodes and
 * validates bytes: it never allocates, never does I/O, and never trusts a length before checking it
 * against the caller's maximum, so a hostile length cannot make a reader allocate gigabytes.
 *
 * Error responses (flags RESPONSE|ERROR) carry a body of their own (struct pt_frame_error):
 * the positive PT_E* code, a message, and for PT_ENOTLEADER the leader's "HOST:PORT".
 *
 * Message kinds are u16 and grouped by service: 0x00xx generic, 0x01xx registry, 0x02xx block
 * services, 0x03xx shards, 0x04xx CDC, all declared in proto/ids.h.
 */
#ifndef PETREL_CLUSTER_FRAME_H
#define PETREL_CLUSTER_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "cluster/proto/ids.h"
#include "petrel/codec.h"

#define PT_FRAME_MAGIC 0x4c525450u /* "PTRL" in byte order P T R L */
#define PT_FRAME_VERSION 1
#define PT_FRAME_HEADER_SIZE 24
/* The default largest body a peer accepts: a whole block (8 MiB) plus its request fields. */
#define PT_FRAME_MAX_BODY_DEFAULT (8u * 1024 * 1024 + 64 * 1024)

/* Header flags. A request has no flag; a response has RESPONSE; a failed one also ERROR. */
#define PT_FRAME_RESPONSE 0x01u
#define PT_FRAME_ERROR 0x02u
/* The body ends with an authentication trailer (sequence u64, MAC): see pt_frame_seal. */
#define PT_FRAME_AUTH 0x04u
#define PT_FRAME_FLAGS_KNOWN (PT_FRAME_RESPONSE | PT_FRAME_ERROR | PT_FRAME_AUTH)

/* Bytes of the authentication trailer: sequence number u64, then a 16-byte MAC (Poly1305). */
#define PT_FRAME_TRAILER_SIZE 24

/* Limits of the error body. */
#define PT_FRAME_ERROR_MESSAGE_MAX 1024
#define PT_FRAME_ADDRESS_MAX 255

struct pt_frame_header {
    uint8_t version;
    uint8_t flags;
    uint16_t kind;
    uint64_t request_id;
    uint32_t body_len;
    uint32_t crc;
};

/* Decoded error body. Strings are NUL-terminated copies (truncated to the limits above). */
struct pt_frame_error {
    int code; /* negative PT_E* */
    char message[PT_FRAME_ERROR_MESSAGE_MAX + 1];
    char leader[PT_FRAME_ADDRESS_MAX + 1]; /* "" unless code == -PT_ENOTLEADER */
};

/*
 * Write a header for `body` into out[PT_FRAME_HEADER_SIZE], computing the CRC over the header
 * and the body. body_len must not exceed UINT32_MAX.
 */
void pt_frame_encode_header(uint8_t *out, uint8_t flags, uint16_t kind, uint64_t request_id,
                            const void *body, uint32_t body_len);

/*
 * Decode and check the header in in[PT_FRAME_HEADER_SIZE] (everything but the CRC, which
 * needs the body): -PT_EPROTO for a wrong magic or unknown flags, -PT_EVERSION for another
 * protocol version, -PT_E2BIG for a body longer than max_body. On every error `out` is still
 * filled as far as it could be decoded (request id included) so a reply can name the request.
 */
int pt_frame_decode_header(const uint8_t *in, uint32_t max_body, struct pt_frame_header *out);

/* The CRC a frame carries: of header bytes 0..19 and the body, or of the header bytes alone
 * when they have flag AUTH (raw_header[5]). */
uint32_t pt_frame_crc(const uint8_t *raw_header, const void *body, uint32_t body_len);

/* Check the CRC of a decoded header against its raw bytes and body: 0 or -PT_EBADMSG. */
int pt_frame_check_crc(const uint8_t *raw_header, const struct pt_frame_header *h,
                       const void *body);

/*
 * Decode a whole frame held in one buffer (header, then body): 0 with *body pointing into
 * buf, or the errors of decode_header / check_crc, or -PT_EPROTO when len is not exactly
 * header + body length (truncated or trailing bytes).
 */
int pt_frame_decode(const uint8_t *buf, size_t len, uint32_t max_body, struct pt_frame_header *h,
                    const uint8_t **body);

/*
 * Header (and, with a key, authentication trailer) for a frame whose body is the
 * concatenation of parts. Without key (NULL) this is pt_frame_encode_header over the parts.
 * With a 32-byte session key, flags gain PT_FRAME_AUTH, the announced body length counts the
 * trailer, and trailer[PT_FRAME_TRAILER_SIZE] receives seq and the MAC (pt_auth_frame_mac:
 * ChaCha20-Poly1305 with seq as the nonce) over header bytes 0..19 and the body parts
 * (docs/PROTOCOL.md, 1.4); the CRC then covers the header bytes alone. The trailer is sent
 * right after the parts. The total must not exceed UINT32_MAX - PT_FRAME_TRAILER_SIZE.
 */
void pt_frame_seal(uint8_t *hdr, uint8_t *trailer, uint8_t flags, uint16_t kind,
                   uint64_t request_id, const struct iovec *parts, int nparts,
                   const uint8_t *key, uint64_t seq);

/*
 * What a sender may already know of its parts: the CRC32C (from 0) of parts[from..nparts)
 * taken together, e.g. a block's page CRCs combined with petrel_crc32c_append. pt_frame_seal_known
 * combines it into the frame CRC instead of reading those bytes again (with a key the MAC still
 * reads them). A wrong value makes a frame its receiver refuses, never a wrong frame accepted.
 */
struct pt_frame_known_crc {
    int from;
    uint32_t crc;
};
/* pt_frame_seal with known (NULL: nothing known, which is pt_frame_seal). */
void pt_frame_seal_known(uint8_t *hdr, uint8_t *trailer, uint8_t flags, uint16_t kind,
                         uint64_t request_id, const struct iovec *parts, int nparts,
                         const struct pt_frame_known_crc *known, const uint8_t *key, uint64_t seq);

/*
 * Check the trailer of a received frame whose header decoded and whose CRC matched: the
 * PT_FRAME_AUTH flag, a body long enough for the trailer, the expected sequence number and the
 * MAC under key. 0 with h->body_len reduced to the body without its trailer, or -PT_EACCES.
 */
int pt_frame_unseal(const uint8_t *raw_header, struct pt_frame_header *h, const uint8_t *body,
                    const uint8_t *key, uint64_t seq);

/* Size of the error body for a message and leader (either may be NULL). */
size_t pt_frame_error_size(const char *message, const char *leader);

/*
 * Encode an error body: code (negative or positive PT_E*), message, leader. Strings longer
 * than the limits are truncated. Returns the bytes written, or -PT_ERANGE if cap is too small.
 */
int pt_frame_error_encode(uint8_t *out, size_t cap, int code, const char *message,
                          const char *leader);

/* Decode an error body: 0, or -PT_EPROTO when malformed (code 0 or out of range included). */
int pt_frame_error_decode(const uint8_t *body, size_t len, struct pt_frame_error *out);

/*
 * Strings on the wire (used by every message file): u16 length, then that many bytes, no NUL.
 * pt_dec_str copies into dst[cap] with a NUL and fails the cursor when the string does not fit
 * (a length >= cap) or holds a NUL byte.
 */
void pt_enc_str(struct pt_cursor *c, const char *s);
void pt_dec_str(struct pt_cursor *c, char *dst, size_t cap);
/* Bytes a string takes on the wire. */
size_t pt_str_size(const char *s);

#endif
