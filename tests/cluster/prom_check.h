/*
 * A strict checker of the Prometheus text exposition format 0.0.4 as Petrel writes it, for the
 * tests (promtool is used as well when it is installed). It fails on what promtool fails on
 * (unparsable lines, a sample before its TYPE, a family split in two, histogram buckets out of
 * order or not cumulative, +Inf bucket != _count) and on Petrel's naming rules (counters end in
 * _total; a TYPE and a HELP for every family; unit suffixes _seconds/_bytes where used).
 */
#ifndef PETREL_TEST_PROM_CHECK_H
#define PETREL_TEST_PROM_CHECK_H

#include <stddef.h>

/* 0 when `text` is valid; else -1 with a one-line reason (and the line) in why. */
int prom_check(const char *text, char *why, size_t cap);

/* The value of the first sample named exactly `series` (name with its labels, as printed:
 * 'petrel_raft_leader' or 'petrel_requests_total{kind="ping"}'): 0, or -1 when absent. */
int prom_value(const char *text, const char *series, double *out);

#endif
