/*
 * The progress line of long copies: bytes done, rate and time left, redrawn at most a few
 * times a second on stderr, and only when stderr is a terminal (scripts and pipes see
 * nothing). Owns no copy logic.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *cli_human_size(uint64_t bytes, char *buf, unsigned size)
{
    static const char units[] = "BKMGTPE";
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%lluB", (unsigned long long)bytes);
    else
        snprintf(buf, size, "%.1f%c", v, units[u]);
    return buf;
}

void cli_progress_start(struct cli_progress *p, uint64_t total)
{
    p->enabled = isatty(STDERR_FILENO);
    p->done = 0;
    p->total = total;
    p->start = now();
    p->last = 0; /* the first piece draws the line at once */
}

void cli_progress_add(struct cli_progress *p, const char *name, uint64_t bytes)
{
    double t, rate;
    char a[32], b[32], r[32];
    p->done += bytes;
    if (!p->enabled) return;
    t = now();
    if (t - p->last < 0.25) return;
    p->last = t;
    rate = t > p->start ? (double)p->done / (t - p->start) : 0;
    fprintf(stderr, "\r\033[K%s  %s", name, cli_human_size(p->done, a, sizeof(a)));
    if (p->total) fprintf(stderr, " / %s", cli_human_size(p->total, b, sizeof(b)));
    fprintf(stderr, "  %s/s", cli_human_size((uint64_t)rate, r, sizeof(r)));
    if (p->total > p->done && rate > 0)
        fprintf(stderr, "  ETA %.0fs", (double)(p->total - p->done) / rate);
    fflush(stderr);
}

void cli_progress_end(struct cli_progress *p)
{
    if (p->enabled && p->last > 0) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}
