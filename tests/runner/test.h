/*
 * Petrel's test runner: named cases registered by TEST(), each run in a forked child (a crash
 * or a hang fails that case, not the run), with a per-case time limit.
 *
 *   TEST(crc32c_vectors) { CHECK_EQ(petrel_crc32c(0, "123456789", 9), 0xe3069283u); }
 *
 * A randomized case calls test_seed() for its seed; the runner prints it when the case fails
 * (and always with -v), and `test-PART --seed S NAME` replays it. Default seeds are fixed per
 * case so that `make test` is reproducible; PETREL_TEST_SEED=random (make soak) draws fresh
 * ones, PETREL_TEST_SEED=N forces one.
 *
 * Usage: test-PART [-v] [--list] [--no-fork] [--seed S] [--timeout SECONDS] [PATTERN...]
 * PATTERN is a case name or a shell glob. The last line is "N passed, N failed".
 */
#ifndef PETREL_TEST_H
#define PETREL_TEST_H

#include <stddef.h>
#include <stdint.h>

typedef void (*test_fn)(void);

void test_register(const char *name, const char *file, test_fn fn, int timeout_seconds);

#define TEST_TIMEOUT_DEFAULT 120

/* Define a case with the default time limit. */
#define TEST(name) TEST_T(name, TEST_TIMEOUT_DEFAULT)

/* Define a case with its own time limit in seconds. */
#define TEST_T(name, seconds)                                                                 \
    static void test_case_##name(void);                                                      \
    __attribute__((constructor)) static void test_register_##name(void)                      \
    {                                                                                        \
        test_register(#name, __FILE__, test_case_##name, seconds);                            \
    }                                                                                        \
    static void test_case_##name(void)

/* The seed of the running case (marks it randomized). */
uint64_t test_seed(void);

/* Whether the run is a soak (PETREL_SOAK=1): randomized cases may run longer. */
int test_soak(void);

/* Whether the run is under sanitizers (PETREL_SANITIZED=1): heavy cases may scale down. */
int test_sanitized(void);

/* Print a line of detail for the running case (shown with -v, and when the case fails). */
void test_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Report a failure and end the case. */
void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* A fresh temporary directory for the case, removed after it (path valid during the case). */
const char *test_tmpdir(void);

#define CHECK(cond)                                                                           \
    do {                                                                                     \
        if (!(cond)) test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                      \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                  \
    do {                                                                                     \
        if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__);                             \
    } while (0)

#define CHECK_EQ(a, b)                                                                        \
    do {                                                                                     \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                      \
        if (check_a_ != check_b_)                                                            \
            test_fail(__FILE__, __LINE__, "CHECK_EQ(%s, %s): %lld != %lld (0x%llx != 0x%llx)", \
                      #a, #b, check_a_, check_b_, (unsigned long long)check_a_,              \
                      (unsigned long long)check_b_);                                         \
    } while (0)

#define CHECK_OK(expr)                                                                        \
    do {                                                                                     \
        long long check_r_ = (long long)(expr);                                              \
        if (check_r_ < 0)                                                                    \
            test_fail(__FILE__, __LINE__, "CHECK_OK(%s): returned %lld", #expr, check_r_);   \
    } while (0)

#define CHECK_MEM(a, b, n)                                                                    \
    do {                                                                                     \
        if (memcmp((a), (b), (n)) != 0)                                                      \
            test_fail(__FILE__, __LINE__, "CHECK_MEM(%s, %s, %s): contents differ", #a, #b,  \
                      #n);                                                                   \
    } while (0)

#endif
