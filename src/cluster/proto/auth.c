/*
 * Cluster authentication primitives (see auth.h; formats in docs/PROTOCOL.md,
 * "Authentication"). Owns the secret file's rules, key derivation and the read-only policy.
 * Every derivation is a keyed BLAKE2b over a distinct ASCII label, so no two uses of the key
 * can produce the same bytes; secret material is compared only with sodium_memcmp.
 */
#include "cluster/proto/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/proto/ids.h"
#include "cluster/proto/shard_msgs.h"
#include "petrel/codec.h"
#include "petrel/common.h"

static void sodium_ready(void)
{
    /* Idempotent and thread-safe; -1 only when no randomness source exists at all. */
    if (sodium_init() < 0) petrel_log(PT_LOG_ERROR, "auth", "libsodium failed to initialise");
}

/* out = BLAKE2b-256(key, label | a | b) */
static void derive(const uint8_t *key, const char *label, const uint8_t *a, size_t alen,
                   const uint8_t *b, size_t blen, uint8_t *out, size_t outlen)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, key ? PT_AUTH_KEY_BYTES : 0, outlen);
    crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
    if (alen) crypto_generichash_update(&st, a, alen);
    if (blen) crypto_generichash_update(&st, b, blen);
    crypto_generichash_final(&st, out, outlen);
}

void pt_auth_key_from_secret(const void *secret, size_t len, struct pt_auth_key *out)
{
    sodium_ready();
    memset(out, 0, sizeof(*out));
    derive(NULL, "petrel secret v1", secret, len, NULL, 0, out->key, PT_AUTH_KEY_BYTES);
    derive(out->key, "petrel key id", NULL, 0, NULL, 0, out->id, PT_AUTH_ID_BYTES);
}

static int fail(char *err, size_t cap, int code, const char *fmt, const char *path, const char *why)
{
    if (err && cap) snprintf(err, cap, fmt, path, why);
    return code;
}

int pt_auth_key_load(const char *path, struct pt_auth_key *out, char *err, size_t err_cap)
{
    uint8_t buf[PT_AUTH_SECRET_MAX + 1];
    struct stat st;
    ssize_t got;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        return fail(err, err_cap, e == ENOENT ? -PT_ENOENT : -PT_EACCES, "secret %s: %s", path,
                    strerror(e));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, err_cap, -PT_EINVAL, "secret %s: %s", path, "not a regular file");
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        return fail(err, err_cap, -PT_EACCES, "secret %s: %s", path,
                    "group or others may access it (chmod 600 it)");
    }
    while (len < sizeof(buf)) {
        got = read(fd, buf + len, sizeof(buf) - len);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        len += (size_t)got;
    }
    close(fd);
    if (len > PT_AUTH_SECRET_MAX) {
        sodium_memzero(buf, sizeof(buf));
        return fail(err, err_cap, -PT_EINVAL, "secret %s: %s", path,
                    "longer than 4096 bytes: not a secret file");
    }
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                   buf[len - 1] == '\t'))
        len--;
    if (len < PT_AUTH_SECRET_MIN) {
        sodium_memzero(buf, sizeof(buf));
        return fail(err, err_cap, -PT_EINVAL, "secret %s: %s", path,
                    "shorter than 32 bytes (make one with petrel cluster init --secret)");
    }
    pt_auth_key_from_secret(buf, len, out);
    sodium_memzero(buf, sizeof(buf));
    return 0;
}

int pt_auth_secret_create(const char *path, char *err, size_t err_cap)
{
    uint8_t raw[32];
    char hex[2 * sizeof(raw) + 2];
    size_t n;
    int fd, e;
    sodium_ready();
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        e = errno;
        return fail(err, err_cap, e == EEXIST ? -PT_EEXIST : -PT_EACCES, "secret %s: %s", path,
                    strerror(e));
    }
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    n = strlen(hex);
    hex[n++] = '\n';
    /* O_CREAT's mode passes the umask: force 0600 in case the umask was odd. */
    if (fchmod(fd, 0600) != 0 || write(fd, hex, n) != (ssize_t)n || fsync(fd) != 0) {
        e = errno;
        close(fd);
        unlink(path);
        sodium_memzero(hex, sizeof(hex));
        return fail(err, err_cap, -PT_EIO, "secret %s: %s", path, strerror(e));
    }
    sodium_memzero(hex, sizeof(hex));
    close(fd);
    return 0;
}

/* ---- process credentials ---------------------------------------------------------------- */

static struct pt_auth_key process_client, process_full, process_read_only;
static int have_client, have_full, have_read_only;

void pt_auth_set_process(const struct pt_auth_key *client, const struct pt_auth_key *server_full,
                         const struct pt_auth_key *server_read_only)
{
    sodium_ready();
    have_client = client != NULL;
    have_full = server_full != NULL;
    have_read_only = server_full && server_read_only;
    if (client) process_client = *client;
    if (server_full) process_full = *server_full;
    if (have_read_only) {
        process_read_only = *server_read_only;
        process_read_only.read_only = 1;
    }
}

const struct pt_auth_key *pt_auth_process_client(void)
{
    return have_client ? &process_client : NULL;
}

struct pt_auth_keys pt_auth_process_server(void)
{
    struct pt_auth_keys k;
    k.full = have_full ? &process_full : NULL;
    k.read_only = have_read_only ? &process_read_only : NULL;
    return k;
}

/* ---- handshake and MACs ------------------------------------------------------------------ */

void pt_auth_random(void *out, size_t len)
{
    sodium_ready();
    randombytes_buf(out, len);
}

void pt_auth_session_derive(const struct pt_auth_key *k, const uint8_t *client_nonce,
                            const uint8_t *server_nonce, struct pt_auth_session *out)
{
    derive(k->key, "petrel c2s", client_nonce, PT_AUTH_NONCE_BYTES, server_nonce,
           PT_AUTH_NONCE_BYTES, out->c2s, PT_AUTH_KEY_BYTES);
    derive(k->key, "petrel s2c", client_nonce, PT_AUTH_NONCE_BYTES, server_nonce,
           PT_AUTH_NONCE_BYTES, out->s2c, PT_AUTH_KEY_BYTES);
}

void pt_auth_server_proof(const struct pt_auth_key *k, const uint8_t *client_nonce,
                          const uint8_t *server_nonce, uint8_t out[PT_AUTH_MAC_BYTES])
{
    derive(k->key, "petrel server proof", client_nonce, PT_AUTH_NONCE_BYTES, server_nonce,
           PT_AUTH_NONCE_BYTES, out, PT_AUTH_MAC_BYTES);
}

void pt_auth_raft_key(const struct pt_auth_key *k, uint8_t out[PT_AUTH_KEY_BYTES])
{
    derive(k->key, "petrel raft", NULL, 0, NULL, 0, out, PT_AUTH_KEY_BYTES);
}

void pt_auth_mac_init(struct pt_auth_mac *m, const uint8_t key[PT_AUTH_KEY_BYTES])
{
    crypto_generichash_init(&m->state, key, PT_AUTH_KEY_BYTES, PT_AUTH_MAC_BYTES);
}

void pt_auth_mac_add(struct pt_auth_mac *m, const void *data, size_t len)
{
    if (len) crypto_generichash_update(&m->state, data, len);
}

void pt_auth_mac_final(struct pt_auth_mac *m, uint8_t out[PT_AUTH_MAC_BYTES])
{
    crypto_generichash_final(&m->state, out, PT_AUTH_MAC_BYTES);
}

int pt_auth_mac_equal(const uint8_t *a, const uint8_t *b)
{
    return sodium_memcmp(a, b, PT_AUTH_MAC_BYTES) == 0;
}

void pt_auth_frame_mac_init(struct pt_auth_frame_mac *m, const uint8_t key[PT_AUTH_KEY_BYTES],
                            uint64_t seq)
{
    uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
    uint8_t one_time[crypto_onetimeauth_poly1305_KEYBYTES];
    memset(nonce, 0, 4);
    pt_put_le64(nonce + 4, seq);
    /* ChaCha20 block 0 (counter 0) for (key, nonce): its first 32 bytes key Poly1305 once. */
    crypto_stream_chacha20_ietf(one_time, sizeof(one_time), nonce, key);
    crypto_onetimeauth_poly1305_init(&m->state, one_time);
    sodium_memzero(one_time, sizeof(one_time));
    m->ad_len = 0;
}

void pt_auth_frame_mac_add(struct pt_auth_frame_mac *m, const void *data, size_t len)
{
    if (!len) return;
    crypto_onetimeauth_poly1305_update(&m->state, data, len);
    m->ad_len += len;
}

void pt_auth_frame_mac_final(struct pt_auth_frame_mac *m, uint8_t out[PT_AUTH_TAG_BYTES])
{
    static const uint8_t zeros[16];
    uint8_t lengths[16];
    /* RFC 8439 2.8: AD padded to 16 bytes, the (empty) ciphertext, then both lengths u64 LE. */
    crypto_onetimeauth_poly1305_update(&m->state, zeros, (16 - (m->ad_len & 15)) & 15);
    pt_put_le64(lengths, m->ad_len);
    pt_put_le64(lengths + 8, 0);
    crypto_onetimeauth_poly1305_update(&m->state, lengths, sizeof(lengths));
    crypto_onetimeauth_poly1305_final(&m->state, out);
    sodium_memzero(&m->state, sizeof(m->state));
}

int pt_auth_tag_equal(const uint8_t *a, const uint8_t *b)
{
    return crypto_verify_16(a, b) == 0;
}

int pt_auth_read_only_allowed(uint16_t kind, const uint8_t *body, uint32_t len)
{
    switch (kind) {
    case PT_MSG_PING:
    case PT_MSG_REG_LIST_SHARDS:
    case PT_MSG_REG_LIST_CDC:
    case PT_MSG_REG_LIST_BLOCKS:
    case PT_MSG_REG_INFO:
    case PT_MSG_BLOCK_READ:
    case PT_MSG_BLOCK_STAT:
    case PT_MSG_BLOCK_LIST:
    case PT_MSG_BLOCK_INFO:
    case PT_MSG_NODE_INFO:
        return 1;
    case PT_MSG_SHARD_REQ:
        /* The op is the body's first byte; an unknown op is not a read either. */
        return len >= 1 && pt_shard_op_valid(body[0]) && !pt_shard_op_is_write(body[0]);
    default:
        /* Heartbeats, block secrets (they would let a reader forge write certificates),
         * block writes and erases, every CDC transaction, and kinds added later. */
        return 0;
    }
}
