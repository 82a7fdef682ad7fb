/*
 * One request with retries (see pt_call in net.h): the loop every client call goes through.
 * Owns the retry decision for a single address; never retries an error a retry cannot cure,
 * and never redirects to another address (leader redirection belongs to the caller).
 */
#include <string.h>

#include "cluster/net/net.h"
#include "petrel/common.h"

int pt_call(const char *address, uint16_t kind, const struct iovec *parts, int nparts,
            const struct pt_call_opts *opts, struct pt_reply *reply)
{
    int timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
    uint32_t budget = opts && opts->retry_budget_ms ? opts->retry_budget_ms : 10000;
    uint64_t seed = opts && opts->seed ? opts->seed : pt_entropy_seed();
    struct pt_retry retry;
    struct pt_conn *conn = NULL;
    int err;
    pt_retry_init(&retry, 20, 1000, budget, seed);
    for (;;) {
        if (!conn) err = pt_conn_open(address, timeout, 0, &conn);
        else err = 0;
        if (!err) err = pt_conn_callv(conn, kind, parts, nparts, timeout, reply);
        else memset(reply, 0, sizeof(*reply));
        if (err >= 0) break;
        if (err == -PT_EINVAL && !conn) break; /* bad address */
        if (!pt_error_retryable(err) || err == -PT_ENOTLEADER) break;
        if (budget == 1 || pt_retry_wait(&retry) != 0) break;
        pt_reply_free(reply);
    }
    pt_conn_close(conn);
    return err;
}
