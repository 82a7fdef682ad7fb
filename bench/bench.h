/*
 * Benchmarks run by `make bench` (build/bench/petrel-bench [NAME...]). Each BENCH() prints its
 * own lines in the documented "KIND FIELDS..." forms; ratios are against a baseline measured
 * in the same run, never against a number written down earlier.
 */
#ifndef PETREL_BENCH_H
#define PETREL_BENCH_H

typedef void (*bench_fn)(void);
void bench_register(const char *name, bench_fn fn);
double bench_now(void); /* monotonic seconds */

#define BENCH(name)                                                                           \
    static void bench_##name(void);                                                          \
    __attribute__((constructor)) static void bench_register_##name(void)                     \
    {                                                                                        \
        bench_register(#name, bench_##name);                                                 \
    }                                                                                        \
    static void bench_##name(void)

#endif
