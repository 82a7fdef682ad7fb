/*
 * Fuzz target: the Raft message decoder (src/cluster/replica/raft_msg.c), the only code that
 * reads bytes arriving on a Raft port. The input is
 *
 *   u8 options | message bytes
 *
 * Option bit 0 recomputes the length field and the CRC32C first, so the fuzzer reaches the
 * body checks behind them (a message flagged AUTH keeps its last 40 bytes as the trailer).
 * An accepted message must re-encode to exactly the input bytes before the trailer (no field
 * is ignored or normalised), keep every count within the limits, and free cleanly; a sealed
 * one's trailer is checked under a fixed key without harm (0 or -PT_EACCES).
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/replica/raft_msg.h"
#include "fuzz.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

int pt_fuzz_raftmsg(const uint8_t *data, size_t size)
{
    struct pt_raft_msg_header h;
    struct raft_message m;
    uint8_t *copy, *again = NULL;
    size_t len, again_len = 0, trailer;
    int rc;
    if (size < 1) return 0;
    len = size - 1;
    copy = malloc(len ? len : 1);
    FUZZ_CHECK(copy != NULL);
    if (len) memcpy(copy, data + 1, len);
    if ((data[0] & 1) && len >= PT_RAFT_MSG_HEADER) {
        uint32_t crc;
        size_t body = len - PT_RAFT_MSG_HEADER;
        if ((pt_get_le16(copy + 6) & PT_RAFT_MSG_AUTH) && body >= PT_RAFT_MSG_TRAILER)
            body -= PT_RAFT_MSG_TRAILER;
        pt_put_le32(copy + 20, (uint32_t)body);
        crc = petrel_crc32c(petrel_crc32c(0, copy, 40), copy + PT_RAFT_MSG_HEADER, body);
        pt_put_le32(copy + 40, crc);
    }
    rc = pt_raft_msg_decode_header(copy, len, &h);
    FUZZ_CHECK(rc == 0 || rc == -PT_EPROTO || rc == -PT_EVERSION || rc == -PT_EBADMSG);
    trailer = rc == 0 && (h.flags & PT_RAFT_MSG_AUTH) ? PT_RAFT_MSG_TRAILER : 0;
    if (trailer) {
        static const uint8_t key[32] = {1};
        uint64_t seq;
        int u = pt_raft_msg_unseal(copy, len, key, &seq);
        FUZZ_CHECK(u == 0 || u == -PT_EACCES);
    }
    if (rc == 0) {
        FUZZ_CHECK((size_t)h.body_len + PT_RAFT_MSG_HEADER + trailer == len);
        rc = pt_raft_msg_decode_body(&h, copy + PT_RAFT_MSG_HEADER, &m);
        FUZZ_CHECK(rc == 0 || rc == -PT_EPROTO || rc == -PT_ENOMEM);
    } else {
        rc = 1;
    }
    if (rc == 0) {
        FUZZ_CHECK(m.type == h.type && m.server_id == h.from);
        if (m.type == RAFT_IO_APPEND_ENTRIES)
            FUZZ_CHECK(m.append_entries.n_entries <= PT_RAFT_MSG_ENTRIES_MAX);
        if (m.type == RAFT_IO_INSTALL_SNAPSHOT)
            FUZZ_CHECK(m.install_snapshot.conf.n <= PT_RAFT_MSG_SERVERS_MAX);
        FUZZ_CHECK(pt_raft_msg_encode(&h, &m, &again, &again_len) == 0);
        FUZZ_CHECK(again_len == len && memcmp(again, copy, len - trailer) == 0);
        free(again);
        pt_raft_msg_release(&m);
    }
    free(copy);
    return 0;
}

PT_FUZZ_TARGET(pt_fuzz_raftmsg)
