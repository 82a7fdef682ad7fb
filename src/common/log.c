/*
 * The logging facility: one process-wide callback, installed by the host program. Library
 * code calls petrel_log(); nothing here ever writes anywhere on its own. Built with
 * PETREL_NO_LOG (common.h) every function stays defined but formats and writes nothing, so
 * no printf-family function is linked through this file.
 */
#include "petrel/common.h"

#include <stdio.h>

static petrel_log_fn log_fn;
static void *log_ctx;
static enum petrel_log_level log_max = PT_LOG_INFO;

void petrel_log_set(petrel_log_fn fn, void *ctx, enum petrel_log_level max_level)
{
    log_fn = fn;
    log_ctx = ctx;
    log_max = max_level;
}

/* With PETREL_NO_LOG, petrel_log is a macro (common.h); the parentheses define the function
 * all the same, for objects built without the switch. */
void(petrel_log)(enum petrel_log_level level, const char *module, const char *fmt, ...)
{
#ifdef PETREL_NO_LOG
    (void)level;
    (void)module;
    (void)fmt;
#else
    char line[1024];
    va_list ap;
    if (!log_fn || level > log_max) return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    log_fn(log_ctx, level, module, line);
#endif
}

void petrel_log_stderr(void *ctx, enum petrel_log_level level, const char *module,
                       const char *message)
{
#ifdef PETREL_NO_LOG
    (void)ctx;
    (void)level;
    (void)module;
    (void)message;
#else
    static const char *const names[] = {"error", "warning", "info", "debug"};
    (void)ctx;
    fprintf(stderr, "petrel %s: %s: %s\n", module, names[level], message);
#endif
}
