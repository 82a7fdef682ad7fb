/*
 * Metrics and the HTTP view of a server (docs/OPERATIONS.md, "Metrics and status page").
 *
 * struct pt_metrics is a process's set of series: counters, gauges and latency histograms,
 * each named by a Prometheus name and an optional label set. Every update happens on the
 * server's loop thread (one call per event, at the place the event happens); gauges that
 * mirror state owned elsewhere (Raft term, queue lengths, scrub progress) are set by collect
 * callbacks run just before rendering, on the loop thread too. So the series need no lock.
 * Updates through a NULL series are no-ops: code that runs without metrics (the simulator,
 * in-process tests) calls the same functions.
 *
 * struct pt_http is the read-only HTTP endpoint (libmicrohttpd, its own thread): GET /metrics
 * answers the Prometheus text exposition format 0.0.4; any other path goes to the owner's page
 * callback (the registry's status page) or is 404. The HTTP thread never reads server state: it
 * queues the request, wakes the loop (uv_async) and waits (bounded, PT_HTTP_WAIT_MS) while the
 * loop renders the answer under the endpoint's lock; a loop that does not answer in time gets
 * the client a 503. The endpoints are unauthenticated: bind them to a trusted address.
 *
 * Invariants: series are never removed while the set lives (pointers handed out stay valid);
 * a name has one type and one help text; a histogram's buckets are PT_METRICS_BUCKETS.
 */
#ifndef PETREL_CLUSTER_METRICS_H
#define PETREL_CLUSTER_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define PT_METRICS_NAME_MAX 64
#define PT_METRICS_LABELS_MAX 96
#define PT_METRICS_HELP_MAX 120
#define PT_METRICS_SERIES_MAX 512
#define PT_METRICS_COLLECTORS_MAX 8
/* Latency buckets in seconds: 100 us .. 10 s, then +Inf. */
#define PT_METRICS_BUCKETS 15

enum pt_metric_type { PT_METRIC_COUNTER = 1, PT_METRIC_GAUGE = 2, PT_METRIC_HISTOGRAM = 3 };

struct pt_metric {
    enum pt_metric_type type;
    char name[PT_METRICS_NAME_MAX];
    char labels[PT_METRICS_LABELS_MAX]; /* 'kind="block_read"', or "" */
    char help[PT_METRICS_HELP_MAX];
    double value;                         /* counter, gauge */
    uint64_t buckets[PT_METRICS_BUCKETS]; /* histogram: observations <= bound[i] (not cumulative) */
    uint64_t count;                       /* histogram */
    double sum;                           /* histogram */
};

typedef void (*pt_metrics_collect_fn)(void *ctx);

struct pt_metrics {
    struct pt_metric *series; /* PT_METRICS_SERIES_MAX slots */
    size_t count;
    struct {
        pt_metrics_collect_fn fn;
        void *ctx;
    } collectors[PT_METRICS_COLLECTORS_MAX];
    unsigned ncollectors;
};

/* A set with the process's own series (petrel_process_start_time_seconds); free with
 * pt_metrics_free. NULL when out of memory. */
struct pt_metrics *pt_metrics_new(void);
void pt_metrics_free(struct pt_metrics *m);

/*
 * The series (name, labels), created on first use. name must match [a-zA-Z_:][a-zA-Z0-9_:]*,
 * labels is "" or 'k="v",k2="v2"' with valid label names and escaped values (see
 * pt_metrics_label_escape); help is plain text. NULL when m is NULL, the set is full, the name or
 * labels are invalid, or the name already has another type.
 */
struct pt_metric *pt_metrics_counter(struct pt_metrics *m, const char *name, const char *labels,
                                     const char *help);
struct pt_metric *pt_metrics_gauge(struct pt_metrics *m, const char *name, const char *labels,
                                   const char *help);
struct pt_metric *pt_metrics_histogram(struct pt_metrics *m, const char *name, const char *labels,
                                       const char *help);

/* Updates (no-ops on NULL). A counter only grows. */
void pt_metric_add(struct pt_metric *c, uint64_t n);
void pt_metric_set(struct pt_metric *g, double v);
/* Move a gauge by delta (a gauge several owners share, e.g. open connections). */
void pt_metric_gauge_add(struct pt_metric *g, double delta);
void pt_metric_observe(struct pt_metric *h, double seconds);

/* Register a callback run before every render (on the loop thread): 0 or -PT_ENOSPC. */
int pt_metrics_on_collect(struct pt_metrics *m, pt_metrics_collect_fn fn, void *ctx);

/* Run the collectors and render the text exposition format into a malloc'd, NUL-terminated
 * buffer: 0 or -PT_ENOMEM. */
int pt_metrics_render(struct pt_metrics *m, char **out, size_t *len);

/* Write `in` escaped for a label value (\\, \", \n) into out: 0, or -PT_ERANGE when it does not
 * fit (out is then empty). */
int pt_metrics_label_escape(const char *in, char *out, size_t cap);

/* --- the HTTP endpoint ---------------------------------------------------------------------- */

#define PT_HTTP_WAIT_MS 5000

/*
 * An answer for a path other than /metrics, rendered on the loop thread: fill *body (malloc'd,
 * taken by the endpoint), *len and *content_type (a static string) and return an HTTP status
 * (200), or return 404 without a body.
 */
typedef int (*pt_http_page_fn)(void *ctx, const char *path, char **body, size_t *len,
                               const char **content_type);

struct pt_http;

/*
 * Serve `m` (and `page`, may be NULL) on "HOST:PORT" (port 0: the OS chooses; read it back
 * with pt_http_address): 0, -PT_EINVAL (bad address), -PT_EADDRINUSE, -PT_EIO.
 */
int pt_http_start(uv_loop_t *loop, const char *listen, struct pt_metrics *m, pt_http_page_fn page,
                  void *page_ctx, struct pt_http **out);
const char *pt_http_address(const struct pt_http *h);
/* Stop answering (in-flight requests get 503), join the HTTP thread and release everything once
 * the loop has closed the wake-up handle (keep running the loop). NULL is fine. */
void pt_http_stop(struct pt_http *h);

#endif
