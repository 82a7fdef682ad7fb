/*
 * The benchmark driver: runs every registered benchmark, or those named on the command line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

struct bench_entry {
    const char *name;
    bench_fn fn;
};
static struct bench_entry entries[256];
static int entry_count;

void bench_register(const char *name, bench_fn fn)
{
    if (entry_count < 256) {
        entries[entry_count].name = name;
        entries[entry_count].fn = fn;
        entry_count++;
    }
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int i, j, ran = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 0; i < entry_count; i++) {
        int wanted = argc < 2;
        for (j = 1; j < argc; j++) wanted |= strcmp(argv[j], entries[i].name) == 0;
        if (!wanted) continue;
        entries[i].fn();
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "petrel-bench: no benchmark matches\n");
        return 2;
    }
    return 0;
}
