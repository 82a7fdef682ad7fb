/*
 * Fuzz target: the CDC request codec (src/cluster/proto/cdc_msgs.c). The input is a request
 * body. An accepted request has a known op, non-empty names without NUL or '/', a second name
 * only for a rename, and re-encodes to exactly the input.
 */
#include <string.h>

#include "cluster/proto/cdc_msgs.h"
#include "fuzz.h"
#include "petrel/common.h"

int pt_fuzz_cdc_msgs(const uint8_t *data, size_t size)
{
    struct pt_cdc_req q;
    uint8_t again[600];
    int err = pt_cdc_req_decode(&q, data, size), n;
    if (err) {
        FUZZ_CHECK(err == -PT_EPROTO || err == -PT_EINVAL);
        return 0;
    }
    FUZZ_CHECK(q.op >= PT_CDC_MKDIR && q.op <= PT_CDC_RENAME);
    FUZZ_CHECK(q.name_len > 0 && strlen(q.name) == q.name_len && !strchr(q.name, '/'));
    if (q.op == PT_CDC_RENAME)
        FUZZ_CHECK(q.name2_len > 0 && strlen(q.name2) == q.name2_len && !strchr(q.name2, '/'));
    else
        FUZZ_CHECK(q.name2_len == 0);
    n = pt_cdc_req_encode(&q, again, sizeof(again));
    FUZZ_CHECK(n == (int)size && memcmp(again, data, size) == 0);
    return 0;
}

PT_FUZZ_TARGET(pt_fuzz_cdc_msgs)
