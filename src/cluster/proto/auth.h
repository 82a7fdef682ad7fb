/*
 * Cluster authentication (docs/PROTOCOL.md, "Authentication", byte by byte): the cluster
 * secret, the keys derived from it, the connection handshake's session keys and the MAC every
 * authenticated frame and Raft message carries. Every primitive is libsodium's: BLAKE2b
 * (crypto_generichash, keyed) for derivation, the handshake's proof and Raft MACs; ChaCha20
 * and Poly1305 for the frame MAC (exactly RFC 8439's AEAD_CHACHA20_POLY1305 with an empty
 * plaintext, the frame as associated data: four times cheaper than BLAKE2b over a body, and
 * every block's bytes cross it on both ends); randombytes_buf for nonces and secrets,
 * sodium_memcmp / crypto_verify_16 for every comparison of secret-dependent bytes. Nothing here
 * is hand-written cryptography, and nothing here does network I/O.
 *
 * A secret file holds 32 random bytes as 64 hex digits and a newline (any 32..4096 bytes
 * work: trailing white space is ignored). It must be a regular file that neither group nor
 * others may read; a file that is refuses to load, so a leaked mode is noticed at start-up,
 * not after the secret leaked. The key is BLAKE2b-256 of the file's bytes (personalised); its
 * public id is the first 8 bytes of a keyed hash, so a server can tell which of its keys a
 * client claims without the key ever crossing the wire.
 *
 * Two kinds of key: the full key (servers, writers) and a read-only key (a second secret):
 * a server that holds a read-only key accepts clients proving it, and answers their writes
 * (pt_auth_read_only_allowed says which requests are reads) with -PT_EACCES.
 *
 * Process credentials: a server or client process loads its keys once, before it starts any
 * server or connection, with pt_auth_set_process; pt_server_start, pt_conn_open and the Raft
 * I/O take them from there unless their config names keys of their own (tests do).
 */
#ifndef PETREL_CLUSTER_PROTO_AUTH_H
#define PETREL_CLUSTER_PROTO_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sodium.h>

#define PT_AUTH_KEY_BYTES 32
#define PT_AUTH_ID_BYTES 8
#define PT_AUTH_NONCE_BYTES 32
#define PT_AUTH_MAC_BYTES 32
#define PT_AUTH_TAG_BYTES 16 /* a frame MAC (Poly1305 tag) */
/* The AUTH_HELLO's version: 2 since frames carry a ChaCha20-Poly1305 tag (1: BLAKE2b). */
#define PT_AUTH_HELLO_VERSION 2
#define PT_AUTH_HELLO_SIZE (2 + PT_AUTH_ID_BYTES + PT_AUTH_NONCE_BYTES)
#define PT_AUTH_SECRET_MIN 32   /* bytes of a secret file (after trailing white space) */
#define PT_AUTH_SECRET_MAX 4096 /* largest secret file accepted */

struct pt_auth_key {
    uint8_t key[PT_AUTH_KEY_BYTES]; /* derived from the secret file's bytes */
    uint8_t id[PT_AUTH_ID_BYTES];   /* public: names the key in a handshake */
    int read_only;                  /* set by the holder: a server's read-only client key */
};

/* The keys a server accepts: full is required, read_only may be NULL. */
struct pt_auth_keys {
    const struct pt_auth_key *full;
    const struct pt_auth_key *read_only;
};

/* Derive a key from a secret's bytes (tests; files go through pt_auth_key_load). */
void pt_auth_key_from_secret(const void *secret, size_t len, struct pt_auth_key *out);

/*
 * Load a secret file: 0, or -PT_ENOENT / -PT_EACCES (group/other may read it, or it cannot be
 * opened) / -PT_EINVAL (not a regular file, shorter than PT_AUTH_SECRET_MIN or longer than
 * PT_AUTH_SECRET_MAX) with one line saying why in err.
 */
int pt_auth_key_load(const char *path, struct pt_auth_key *out, char *err, size_t err_cap);

/*
 * Create a new secret file at path with mode 0600 (32 random bytes as hex): 0, -PT_EEXIST when
 * it exists (a secret is never overwritten), or -PT_E* from the file system, with err filled.
 */
int pt_auth_secret_create(const char *path, char *err, size_t err_cap);

/* ---- process credentials ---------------------------------------------------------------- */

/*
 * Set the keys this process uses: client (the key its connections prove; NULL = none),
 * server_full and server_read_only (the keys its servers accept; NULL = none: no
 * authentication). The structs are copied. Call before any server or connection starts; a
 * process that changes its client key later must clear pt_call's pool of idle connections
 * (pt_call_pool_clear), which were opened with the old key.
 */
void pt_auth_set_process(const struct pt_auth_key *client, const struct pt_auth_key *server_full,
                         const struct pt_auth_key *server_read_only);
/* The process's client key, or NULL. */
const struct pt_auth_key *pt_auth_process_client(void);
/* The keys this process's servers accept (full == NULL: none). */
struct pt_auth_keys pt_auth_process_server(void);

/* ---- handshake and frame MACs ------------------------------------------------------------ */

/* Keys of one authenticated connection, one per direction. */
struct pt_auth_session {
    uint8_t c2s[PT_AUTH_KEY_BYTES]; /* client -> server frames */
    uint8_t s2c[PT_AUTH_KEY_BYTES]; /* server -> client frames */
};

/* Random bytes from libsodium (nonces). */
void pt_auth_random(void *out, size_t len);

/* Session keys from a key and both nonces, and the server's proof of the key. */
void pt_auth_session_derive(const struct pt_auth_key *k, const uint8_t *client_nonce,
                            const uint8_t *server_nonce, struct pt_auth_session *out);
void pt_auth_server_proof(const struct pt_auth_key *k, const uint8_t *client_nonce,
                          const uint8_t *server_nonce, uint8_t out[PT_AUTH_MAC_BYTES]);

/*
 * A MAC computed over several pieces: init with a 32-byte key, add pieces in order, finish.
 * (BLAKE2b-256 keyed.) pt_auth_mac_equal compares in constant time.
 */
struct pt_auth_mac {
    crypto_generichash_state state;
};
void pt_auth_mac_init(struct pt_auth_mac *m, const uint8_t key[PT_AUTH_KEY_BYTES]);
void pt_auth_mac_add(struct pt_auth_mac *m, const void *data, size_t len);
void pt_auth_mac_final(struct pt_auth_mac *m, uint8_t out[PT_AUTH_MAC_BYTES]);
int pt_auth_mac_equal(const uint8_t *a, const uint8_t *b);

/*
 * The MAC of one sealed frame, computed over several pieces (the frame's header bytes and
 * body): AEAD_CHACHA20_POLY1305 (RFC 8439 section 2.8) under the 32-byte session key with the
 * 96-bit nonce 00 00 00 00 | seq as u64 little-endian, an empty plaintext and the pieces as
 * associated data. So the one-time Poly1305 key is the first 32 bytes of ChaCha20's block 0
 * for (key, nonce), and the tag equals crypto_aead_chacha20poly1305_ietf_encrypt_detached's
 * over the concatenated pieces. A (key, seq) pair must never seal two different frames: the
 * session keys are fresh per connection and direction, and seq counts frames in one.
 */
struct pt_auth_frame_mac {
    crypto_onetimeauth_poly1305_state state;
    uint64_t ad_len; /* bytes added so far */
};
void pt_auth_frame_mac_init(struct pt_auth_frame_mac *m, const uint8_t key[PT_AUTH_KEY_BYTES],
                            uint64_t seq);
void pt_auth_frame_mac_add(struct pt_auth_frame_mac *m, const void *data, size_t len);
void pt_auth_frame_mac_final(struct pt_auth_frame_mac *m, uint8_t out[PT_AUTH_TAG_BYTES]);
/* Constant-time comparison of two frame MACs: 1 when equal. */
int pt_auth_tag_equal(const uint8_t *a, const uint8_t *b);

/* The key for Raft messages between replicas, derived from the cluster key. */
void pt_auth_raft_key(const struct pt_auth_key *k, uint8_t out[PT_AUTH_KEY_BYTES]);

/*
 * Whether a client holding the read-only key may send this request: pings, registry lists,
 * block reads, stats and listings, node info, and shard requests whose op is not a write.
 */
int pt_auth_read_only_allowed(uint16_t kind, const uint8_t *body, uint32_t len);

#endif
