/*
 * The test runner behind tests/runner/test.h: registration, selection, isolation (one forked
 * child per case, in its own process group, killed whole on timeout or when it ends), seeds,
 * temporary directories and the closing "N passed, N failed" line.
 */
#include "test.h"

#include <errno.h>
#include <fnmatch.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "petrel/hash.h"

struct test_case {
    const char *name;
    const char *file;
    test_fn fn;
    int timeout;
};

#define TEST_MAX 4096
static struct test_case cases[TEST_MAX];
static int case_count;

static struct {
    int verbose;
    int no_fork;
    int have_seed;
    uint64_t seed;
    int random_seed;
    int timeout_override;
} opts;

/* State of the running case (in the child). */
static uint64_t current_seed;
static int current_randomized;
static FILE *current_log;
static char current_tmpdir[256];

void test_register(const char *name, const char *file, test_fn fn, int timeout_seconds)
{
    if (case_count >= TEST_MAX) {
        fprintf(stderr, "runner: too many test cases\n");
        exit(2);
    }
    cases[case_count].name = name;
    cases[case_count].file = file;
    cases[case_count].fn = fn;
    cases[case_count].timeout = timeout_seconds;
    case_count++;
}

uint64_t test_seed(void)
{
    if (!current_randomized) {
        current_randomized = 1;
        test_log("seed=%" PRIu64, current_seed);
    }
    return current_seed;
}

int test_soak(void)
{
    const char *s = getenv("PETREL_SOAK");
    return s && *s && strcmp(s, "0") != 0;
}

int test_sanitized(void)
{
    const char *s = getenv("PETREL_SANITIZED");
    return s && *s && strcmp(s, "0") != 0;
}

void test_log(const char *fmt, ...)
{
    va_list ap;
    FILE *out = current_log ? current_log : stdout;
    va_start(ap, fmt);
    fputs("    ", out);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    va_end(ap);
    fflush(out);
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    FILE *out = current_log ? current_log : stdout;
    va_start(ap, fmt);
    fprintf(out, "    %s:%d: ", file, line);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    va_end(ap);
    if (current_randomized) fprintf(out, "    replay with --seed %" PRIu64 "\n", current_seed);
    fflush(out);
    fflush(stdout);
    _exit(1);
}

const char *test_tmpdir(void)
{
    return current_tmpdir;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint64_t case_seed(const struct test_case *c)
{
    if (opts.have_seed) return opts.seed;
    if (opts.random_seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return petrel_hash64(c->name, strlen(c->name),
                             (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
                                 ((uint64_t)getpid() << 40));
    }
    return petrel_hash64(c->name, strlen(c->name), 0) & 0xffffffffu;
}

static void dump_log(FILE *log)
{
    char buf[4096];
    size_t n;
    fflush(log);
    rewind(log);
    while ((n = fread(buf, 1, sizeof(buf), log)) > 0) fwrite(buf, 1, n, stdout);
}

/* Run one case; returns 1 if it passed. */
static int run_case(const struct test_case *c)
{
    const char *tmp = getenv("TMPDIR");
    FILE *log;
    pid_t pid;
    int status = 0, passed, timed_out = 0;
    double start = now_ms(), deadline;
    int timeout = opts.timeout_override ? opts.timeout_override : c->timeout;

    snprintf(current_tmpdir, sizeof(current_tmpdir), "%s/petrel-test-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(current_tmpdir)) {
        printf("FAIL %s: cannot create a temporary directory: %s\n", c->name, strerror(errno));
        return 0;
    }
    current_seed = case_seed(c);
    current_randomized = 0;

    if (opts.no_fork) {
        current_log = NULL;
        printf("run  %s\n", c->name);
        fflush(stdout);
        c->fn();
        printf("ok   %s (%.0f ms)\n", c->name, now_ms() - start);
        nftw(current_tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        return 1;
    }

    log = tmpfile();
    if (!log) {
        printf("FAIL %s: cannot create a log file\n", c->name);
        return 0;
    }
    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        printf("FAIL %s: fork: %s\n", c->name, strerror(errno));
        fclose(log);
        return 0;
    }
    if (pid == 0) {
        setpgid(0, 0);
        current_log = log;
        c->fn();
        fflush(log);
        _exit(0);
    }
    setpgid(pid, pid);
    deadline = start + timeout * 1000.0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) break;
        if (now_ms() > deadline) {
            timed_out = 1;
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        usleep(2000);
    }
    /* Whatever the case started and left behind in its group goes with it. */
    kill(-pid, SIGKILL);

    passed = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (passed) {
        printf("ok   %s (%.0f ms)\n", c->name, now_ms() - start);
        if (opts.verbose) dump_log(log);
    } else {
        if (timed_out)
            printf("FAIL %s: timed out after %d s\n", c->name, timeout);
        else if (WIFSIGNALED(status))
            printf("FAIL %s: killed by signal %d (%s)\n", c->name, WTERMSIG(status),
                   strsignal(WTERMSIG(status)));
        else
            printf("FAIL %s (%s)\n", c->name, c->file);
        dump_log(log);
        printf("    seed %" PRIu64 "\n", current_seed);
    }
    fclose(log);
    nftw(current_tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    fflush(stdout);
    return passed;
}

static int selected(const struct test_case *c, int npat, char **pats)
{
    int i;
    if (npat == 0) return 1;
    for (i = 0; i < npat; i++)
        if (strcmp(pats[i], c->name) == 0 || fnmatch(pats[i], c->name, 0) == 0) return 1;
    return 0;
}

static void usage(const char *prog)
{
    printf("usage: %s [-v] [--list] [--no-fork] [--seed S] [--timeout SECONDS] [PATTERN...]\n",
           prog);
}

int main(int argc, char **argv)
{
    char *pats[256];
    int npat = 0, i, passed = 0, failed = 0, list = 0;
    const char *env_seed = getenv("PETREL_TEST_SEED");

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (env_seed && strcmp(env_seed, "random") == 0) {
        opts.random_seed = 1;
    } else if (env_seed && *env_seed) {
        opts.have_seed = 1;
        opts.seed = strtoull(env_seed, NULL, 0);
    }
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            opts.verbose = 1;
        } else if (strcmp(argv[i], "--list") == 0) {
            list = 1;
        } else if (strcmp(argv[i], "--no-fork") == 0) {
            opts.no_fork = 1;
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            char *end;
            opts.have_seed = 1;
            opts.seed = strtoull(argv[++i], &end, 0);
            if (*end) {
                fprintf(stderr, "runner: bad seed '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            opts.timeout_override = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(argv[0]);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "runner: unknown option '%s'\n", argv[i]);
            usage(argv[0]);
            return 2;
        } else if (npat < 256) {
            pats[npat++] = argv[i];
        }
    }
    if (list) {
        for (i = 0; i < case_count; i++)
            if (selected(&cases[i], npat, pats)) printf("%s\n", cases[i].name);
        return 0;
    }
    for (i = 0; i < case_count; i++) {
        if (!selected(&cases[i], npat, pats)) continue;
        if (run_case(&cases[i]))
            passed++;
        else
            failed++;
    }
    if (passed + failed == 0 && npat > 0) {
        fprintf(stderr, "runner: no case matches\n");
        return 2;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
