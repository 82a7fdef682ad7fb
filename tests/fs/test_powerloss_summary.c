/*
 * The closing line of the power-loss sweep: how many power cuts this run simulated, over
 * every case that counted some (sweep, model test, wear test). Registered after the sweep
 * (this file sorts after test_powerloss.c), so it runs last among them. When the whole
 * sweep ran in a normal build, the total must reach 48,000 (the count before the erase matrix
 * came in; the issue asked for 30,000).
 */
#include <inttypes.h>
#include <stdio.h>

#include "fs_harness.h"
#include "test.h"

/* 10 scenarios x (5 geometries + 3 block sizes x 5 erase behaviours of the erase matrix). */
#define PL_SWEEP_CASES 200

TEST(powerloss_summary)
{
    unsigned reports;
    uint64_t total = fsh_powercuts_total(1, &reports);
    printf("fs power cuts simulated: %" PRIu64 " (%u cases reporting)\n", total, reports);
    fflush(stdout);
    test_log("power cuts simulated: %" PRIu64 " over %u cases", total, reports);
    if (reports >= PL_SWEEP_CASES && !test_sanitized())
        CHECK_MSG(total >= 48000, "only %" PRIu64 " power cuts: the sweep must do 48,000", total);
}
