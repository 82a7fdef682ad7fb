/*
 * Petrel common definitions: error codes, their messages, and the logging callback.
 *
 * Every Petrel function that can fail returns 0 (or a non-negative count) on success and a
 * negative PT_E* code on failure. The codes mirror errno values where errno has a match, so a
 * FUSE driver or a CLI can hand them to the OS unchanged; Petrel-only conditions use values
 * above PT_EPETREL_BASE. Library code never prints: it returns codes, and reports detail
 * through the log callback below.
 *
 * This header is used by the flash engine, so it is plain C99 with no dependencies.
 */
#ifndef PETREL_COMMON_H
#define PETREL_COMMON_H

#include <stdarg.h>
#include <stdint.h>

enum petrel_error {
    PT_OK = 0,
    PT_EPERM = 1,         /* operation not permitted */
    PT_ENOENT = 2,        /* no such file or directory */
    PT_EINTR = 4,         /* interrupted */
    PT_EIO = 5,           /* input/output error from the device or the network */
    PT_ENXIO = 6,         /* no such device */
    PT_E2BIG = 7,         /* argument list too long */
    PT_EBADF = 9,         /* bad file handle */
    PT_EAGAIN = 11,       /* try again */
    PT_ENOMEM = 12,       /* out of memory */
    PT_EACCES = 13,       /* access denied: bad certificate, bad credentials */
    PT_EBUSY = 16,        /* resource busy */
    PT_EEXIST = 17,       /* entry exists */
    PT_EXDEV = 18,        /* cross-device link */
    PT_ENOTDIR = 20,      /* not a directory */
    PT_EISDIR = 21,       /* is a directory */
    PT_EINVAL = 22,       /* invalid argument */
    PT_EMFILE = 24,       /* too many open files */
    PT_EFBIG = 27,        /* file too large */
    PT_ENOSPC = 28,       /* no space left */
    PT_EROFS = 30,        /* read-only filesystem */
    PT_ERANGE = 34,       /* result out of range */
    PT_ENAMETOOLONG = 36, /* name too long */
    PT_ENOTEMPTY = 39,    /* directory not empty */
    PT_ELOOP = 40,        /* would create a loop */
    PT_ENODATA = 61,      /* no such attribute */
    PT_EPROTO = 71,       /* protocol error: malformed message */
    PT_EBADMSG = 74,      /* bad message: checksum mismatch on the wire */
    PT_EOVERFLOW = 75,    /* value too large */
    PT_ECORRUPT = 84,     /* stored data failed its checksum or is inconsistent */
    PT_ENOTSUP = 95,      /* operation not supported */
    PT_EADDRINUSE = 98,   /* address in use */
    PT_ECONNRESET = 104,  /* connection reset */
    PT_ETIMEDOUT = 110,   /* timed out */
    PT_ECONNREFUSED = 111,/* connection refused */
    PT_EHOSTUNREACH = 113,/* no route to the host or its network */
    PT_ESTALE = 116,      /* stale handle or address */
    PT_ECANCELED = 125,   /* operation canceled */

    PT_EPETREL_BASE = 1000,
    PT_ENOTLEADER = 1001, /* this replica is not the leader; retry at the leader */
    PT_EVERSION = 1002,   /* unsupported format or protocol version */
    PT_ENOTCERT = 1003,   /* write or erase without a valid certificate */
    PT_EINDOUBT = 1004,   /* the request was logged, then leadership was lost: it may or may
                           * not take effect (outcome unknown; never a plain retry) */
    PT_ENOHOST = 1005,    /* a host name that does not resolve to an address */
    PT_EMAX
};

/* A short, constant English message for a code; accepts the code negated or not. */
const char *petrel_strerror(int err);

/* The symbolic name of a code ("PT_EIO"), for logs and tests. */
const char *petrel_errname(int err);

/* Log levels, most severe first. */
enum petrel_log_level {
    PT_LOG_ERROR = 0,
    PT_LOG_WARN = 1,
    PT_LOG_INFO = 2,
    PT_LOG_DEBUG = 3,
};

/*
 * The logging callback: receives a formatted line (no trailing newline) and the module name.
 * Host programs install one; without one, library logging goes nowhere.
 */
typedef void (*petrel_log_fn)(void *ctx, enum petrel_log_level level, const char *module,
                              const char *message);

/* Install the process-wide log callback and the most verbose level it wants. */
void petrel_log_set(petrel_log_fn fn, void *ctx, enum petrel_log_level max_level);

/* Log a formatted message through the installed callback (no-op when none is installed). */
void petrel_log(enum petrel_log_level level, const char *module, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * Build switch PETREL_NO_LOG (define it for every file of the library, e.g. for firmware):
 * library calls of petrel_log compile to nothing. Their arguments are still type-checked
 * (against pt_log_discard's printf format) but never evaluated, so neither the formatting
 * (vsnprintf) nor the message strings are linked: with --gc-sections no printf-family
 * function is left in the image (`make size` checks the map file). petrel_log itself stays
 * defined, doing nothing, so objects built without the switch still link.
 */
#ifdef PETREL_NO_LOG
static inline void pt_log_discard(enum petrel_log_level level, const char *module,
                                  const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static inline void pt_log_discard(enum petrel_log_level level, const char *module,
                                  const char *fmt, ...)
{
    (void)level;
    (void)module;
    (void)fmt;
}
#define petrel_log(...) \
    do { \
        if (0) pt_log_discard(__VA_ARGS__); \
    } while (0)
#endif

/* A ready-made callback that writes "petrel MODULE: LEVEL: message" lines to stderr. */
void petrel_log_stderr(void *ctx, enum petrel_log_level level, const char *module,
                       const char *message);

#define PT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PT_MAX(a, b) ((a) > (b) ? (a) : (b))


/*
 * Invariant checks: PT_ASSERT(cond) documents an invariant and checks it, in tests and in
 * release builds alike (keep conditions cheap). A failed check calls the installed hook (the
 * simulator turns it into a failed case that prints its seed); without a hook, or if the hook
 * returns, it logs the failed condition and aborts.
 */
typedef void (*petrel_assert_fn)(void *ctx, const char *file, int line, const char *cond);
void petrel_assert_set_hook(petrel_assert_fn fn, void *ctx);
void petrel_assert_fail(const char *file, int line, const char *cond);
/*
 * Build switch PETREL_NO_ASSERT: PT_ASSERT checks nothing (the condition is compiled, so it
 * stays valid code, but not evaluated: a condition must never have side effects). For
 * firmware where the file-name strings and the checks cost flash; host builds and tests keep
 * the checks. petrel_assert_fail stays defined.
 */
#ifdef PETREL_NO_ASSERT
#define PT_ASSERT(cond) ((void)sizeof((cond) ? 1 : 0))
#else
#define PT_ASSERT(cond) ((cond) ? (void)0 : petrel_assert_fail(__FILE__, __LINE__, #cond))
#endif

#endif
