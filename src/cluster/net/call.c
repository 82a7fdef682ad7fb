/*
 * One request with retries (see pt_call in net.h): the loop every client call goes through,
 * and the small process-wide pool of idle connections it reuses. Owns the retry decision for
 * a single address; never retries an error a retry cannot cure, never redirects to another
 * address (leader redirection belongs to the caller), and never pools a connection whose
 * framing state is uncertain (pt_conn drops its socket on any transport error, so a pooled
 * connection has no response in flight).
 *
 * A pooled connection may have been closed by its server meanwhile (restart, idle close): a
 * transport failure on a reused connection is retried at once on a fresh one, outside the
 * back-off and budget, since the request is retried anyway (pt_call is for requests that are
 * safe to retry) -- except in pt_call_once, for a request that must reach the server at most
 * once: the server may have read it before the connection failed.
 */
#include <pthread.h>
#include <string.h>

#include "cluster/net/net.h"
#include "petrel/common.h"

#define POOL_SIZE 32

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pt_conn *pool[POOL_SIZE];
static uint64_t pool_used[POOL_SIZE];
static uint64_t pool_clock;

static struct pt_conn *pool_take(const char *address)
{
    struct pt_conn *c = NULL;
    int i;
    pthread_mutex_lock(&pool_lock);
    for (i = 0; i < POOL_SIZE; i++)
        if (pool[i] && strcmp(pt_conn_address(pool[i]), address) == 0) {
            c = pool[i];
            pool[i] = NULL;
            break;
        }
    pthread_mutex_unlock(&pool_lock);
    return c;
}

static void pool_put(struct pt_conn *c)
{
    struct pt_conn *evict = NULL;
    int i, slot = 0;
    pthread_mutex_lock(&pool_lock);
    for (i = 0; i < POOL_SIZE; i++) {
        if (!pool[i]) {
            slot = i;
            break;
        }
        if (pool_used[i] < pool_used[slot]) slot = i; /* least recently returned */
    }
    evict = pool[slot];
    pool[slot] = c;
    pool_used[slot] = ++pool_clock;
    pthread_mutex_unlock(&pool_lock);
    pt_conn_close(evict);
}

struct pt_conn *pt_call_pool_take(const char *address)
{
    return pool_take(address);
}

void pt_call_pool_put(struct pt_conn *c)
{
    pool_put(c);
}

void pt_call_pool_clear(void)
{
    struct pt_conn *all[POOL_SIZE];
    int i;
    pthread_mutex_lock(&pool_lock);
    memcpy(all, pool, sizeof(all));
    memset(pool, 0, sizeof(pool));
    pthread_mutex_unlock(&pool_lock);
    for (i = 0; i < POOL_SIZE; i++)
        pt_conn_close(all[i]);
}

/* A failure of the connection itself (the request may not have reached a live server). */
static int transport_error(int err, const struct pt_reply *reply)
{
    return err < 0 && !reply->remote && err != -PT_ENOMEM && err != -PT_EINVAL;
}

static int call(const char *address, uint16_t kind, const struct iovec *parts, int nparts,
                const struct pt_call_opts *opts, int once, struct pt_reply *reply)
{
    int timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
    uint32_t budget = opts && opts->retry_budget_ms ? opts->retry_budget_ms : 10000;
    uint64_t seed = opts && opts->seed ? opts->seed : pt_entropy_seed();
    struct pt_retry retry;
    struct pt_conn *conn;
    int err, reused;
    memset(reply, 0, sizeof(*reply));
    pt_retry_init(&retry, 20, 1000, budget, seed);
    for (;;) {
        conn = pool_take(address);
        reused = conn != NULL;
        err = conn ? 0 : pt_conn_open(address, timeout, 0, &conn);
        if (!err) {
            err = pt_conn_callv(conn, kind, parts, nparts, timeout, reply);
            if (err >= 0 || reply->remote)
                pool_put(conn);
            else
                pt_conn_close(conn);
            if (reused && transport_error(err, reply) && err != -PT_ETIMEDOUT && !once) {
                pt_reply_free(reply);
                continue; /* a stale pooled connection: try a fresh one at once */
            }
        }
        if (err >= 0) break;
        if (err == -PT_EINVAL && !reply->remote) break; /* bad address */
        if (!pt_error_retryable(err) || err == -PT_ENOTLEADER) break;
        if (once || budget == 1 || pt_retry_wait(&retry) != 0) break;
        pt_reply_free(reply);
    }
    return err;
}

int pt_call(const char *address, uint16_t kind, const struct iovec *parts, int nparts,
            const struct pt_call_opts *opts, struct pt_reply *reply)
{
    return call(address, kind, parts, nparts, opts, 0, reply);
}

int pt_call_buf(const char *address, uint16_t kind, const void *body, size_t len,
                const struct pt_call_opts *opts, struct pt_reply *reply)
{
    struct iovec iov;
    iov.iov_base = (void *)body;
    iov.iov_len = len;
    return call(address, kind, &iov, len ? 1 : 0, opts, 0, reply);
}

int pt_call_once(const char *address, uint16_t kind, const struct iovec *parts, int nparts,
                 const struct pt_call_opts *opts, struct pt_reply *reply)
{
    return call(address, kind, parts, nparts, opts, 1, reply);
}
