/*
 * Retry pacing: exponential back-off with jitter, inside a time budget. Owns only the delay
 * arithmetic and the sleep; what to retry is the caller's decision (pt_error_retryable gives
 * the usual answer). Jitter comes from a seeded pt_prng so a test replays its delays exactly.
 */
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "cluster/net/net.h"
#include "petrel/common.h"

uint64_t pt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t pt_entropy_seed(void)
{
    struct timespec ts;
    static uint64_t counter;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^
           (++counter * 0x9e3779b97f4a7c15ull);
}

void pt_retry_init(struct pt_retry *r, uint32_t base_ms, uint32_t max_delay_ms, uint32_t budget_ms,
                   uint64_t seed)
{
    r->base_ms = base_ms ? base_ms : 1;
    r->max_delay_ms = max_delay_ms < r->base_ms ? r->base_ms : max_delay_ms;
    r->budget_ms = budget_ms;
    r->attempt = 0;
    r->start_ms = pt_now_ms();
    pt_prng_seed(&r->prng, seed);
}

uint32_t pt_retry_next_delay(struct pt_retry *r)
{
    uint64_t cap = r->base_ms;
    uint32_t i;
    for (i = 0; i < r->attempt && cap < r->max_delay_ms; i++)
        cap *= 2;
    if (cap > r->max_delay_ms) cap = r->max_delay_ms;
    r->attempt++;
    return (uint32_t)(cap - pt_prng_below(&r->prng, cap / 2 + 1));
}

int pt_retry_wait(struct pt_retry *r)
{
    uint64_t delay, elapsed;
    struct timespec ts;
    if (r->budget_ms) {
        elapsed = pt_now_ms() - r->start_ms;
        if (elapsed >= r->budget_ms) return -PT_ETIMEDOUT;
        delay = pt_retry_next_delay(r);
        if (delay > r->budget_ms - elapsed) delay = r->budget_ms - elapsed;
    } else {
        delay = pt_retry_next_delay(r);
    }
    ts.tv_sec = (time_t)(delay / 1000);
    ts.tv_nsec = (long)(delay % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return 0;
}

int pt_error_retryable(int err)
{
    switch (err < 0 ? -err : err) {
    case PT_EIO:
    case PT_EAGAIN:
    case PT_EBUSY:
    case PT_ETIMEDOUT:
    case PT_ECONNRESET:
    case PT_ECONNREFUSED:
    case PT_EHOSTUNREACH:
    case PT_EBADMSG:
    case PT_ESTALE:
    case PT_ENOTLEADER:
        return 1;
    default:
        return 0;
    }
}
