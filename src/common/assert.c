/*
 * Failed invariant checks (PT_ASSERT, see petrel/common.h): one hook, set by the host (the
 * simulator reports the seed through it); the default logs the condition and aborts. Plain C99.
 */
#include <stdlib.h>

#include "petrel/common.h"

static petrel_assert_fn assert_hook;
static void *assert_ctx;

void petrel_assert_set_hook(petrel_assert_fn fn, void *ctx)
{
    assert_hook = fn;
    assert_ctx = ctx;
}

void petrel_assert_fail(const char *file, int line, const char *cond)
{
    if (assert_hook) assert_hook(assert_ctx, file, line, cond);
    petrel_log(PT_LOG_ERROR, "assert", "%s:%d: PT_ASSERT(%s) failed", file, line, cond);
    abort();
}
