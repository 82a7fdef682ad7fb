/*
 * The series of a process and their text exposition (see metrics.h). Owns name and label
 * validation (a series that would make the output unparsable is refused at creation, so the
 * renderer never has to), the bucket bounds, and the output's layout: one HELP and one TYPE
 * line per name, its series together, histograms as cumulative _bucket{le=...}, _sum, _count.
 * Never touched from more than one thread: the loop updates and renders.
 */
#include "cluster/metrics/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "petrel/common.h"

static const double bucket_bounds[PT_METRICS_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   10.0,
};

struct pt_metrics *pt_metrics_new(void)
{
    struct pt_metrics *m = calloc(1, sizeof(*m));
    struct timespec ts;
    if (!m) return NULL;
    m->series = calloc(PT_METRICS_SERIES_MAX, sizeof(*m->series));
    if (!m->series) {
        free(m);
        return NULL;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    pt_metric_set(pt_metrics_gauge(m, "petrel_process_start_time_seconds", "",
                                   "Start time of the process since the Unix epoch"),
                  (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    return m;
}

void pt_metrics_free(struct pt_metrics *m)
{
    if (!m) return;
    free(m->series);
    free(m);
}

static int name_ok(const char *s, int colon)
{
    size_t i;
    if (!s[0]) return 0;
    for (i = 0; s[i]; i++) {
        char c = s[i];
        int alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return 0;
    }
    return 1;
}

/* 'k="v",k2="v2"': label names valid (not "le", not reserved "__"), values with only the
 * escapes \\, \" and \n and no raw newline. */
static int labels_ok(const char *s)
{
    while (*s) {
        char name[PT_METRICS_LABELS_MAX];
        size_t n = 0;
        while (*s && *s != '=' && n + 1 < sizeof(name))
            name[n++] = *s++;
        name[n] = 0;
        if (*s++ != '=' || !name_ok(name, 0) || strcmp(name, "le") == 0 ||
            strncmp(name, "__", 2) == 0)
            return 0;
        if (*s++ != '"') return 0;
        while (*s && *s != '"') {
            if (*s == '\n') return 0;
            if (*s == '\\') {
                s++;
                if (*s != '\\' && *s != '"' && *s != 'n') return 0;
            }
            s++;
        }
        if (*s++ != '"') return 0;
        if (*s == ',')
            s++;
        else if (*s)
            return 0;
    }
    return 1;
}

static struct pt_metric *series_get(struct pt_metrics *m, enum pt_metric_type type,
                                    const char *name, const char *labels, const char *help)
{
    size_t i;
    struct pt_metric *s;
    if (!m) return NULL;
    if (!labels) labels = "";
    for (i = 0; i < m->count; i++) {
        s = &m->series[i];
        if (strcmp(s->name, name) != 0) continue;
        if (s->type != type) return NULL;
        if (strcmp(s->labels, labels) == 0) return s;
    }
    if (m->count == PT_METRICS_SERIES_MAX || strlen(name) >= PT_METRICS_NAME_MAX ||
        strlen(labels) >= PT_METRICS_LABELS_MAX || !name_ok(name, 1) || !labels_ok(labels))
        return NULL;
    s = &m->series[m->count++];
    memset(s, 0, sizeof(*s));
    s->type = type;
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->labels, sizeof(s->labels), "%s", labels);
    snprintf(s->help, sizeof(s->help), "%s", help ? help : "");
    return s;
}

struct pt_metric *pt_metrics_counter(struct pt_metrics *m, const char *name, const char *labels,
                                     const char *help)
{
    return series_get(m, PT_METRIC_COUNTER, name, labels, help);
}

struct pt_metric *pt_metrics_gauge(struct pt_metrics *m, const char *name, const char *labels,
                                   const char *help)
{
    return series_get(m, PT_METRIC_GAUGE, name, labels, help);
}

struct pt_metric *pt_metrics_histogram(struct pt_metrics *m, const char *name, const char *labels,
                                       const char *help)
{
    return series_get(m, PT_METRIC_HISTOGRAM, name, labels, help);
}

void pt_metric_add(struct pt_metric *c, uint64_t n)
{
    if (!c) return;
    PT_ASSERT(c->type == PT_METRIC_COUNTER);
    c->value += (double)n;
}

void pt_metric_set(struct pt_metric *g, double v)
{
    if (!g) return;
    PT_ASSERT(g->type != PT_METRIC_HISTOGRAM);
    g->value = v;
}

void pt_metric_gauge_add(struct pt_metric *g, double delta)
{
    if (!g) return;
    PT_ASSERT(g->type == PT_METRIC_GAUGE);
    g->value += delta;
}

void pt_metric_observe(struct pt_metric *h, double seconds)
{
    unsigned i;
    if (!h) return;
    PT_ASSERT(h->type == PT_METRIC_HISTOGRAM);
    if (!(seconds >= 0)) seconds = 0; /* NaN or a clock step backwards */
    for (i = 0; i < PT_METRICS_BUCKETS && seconds > bucket_bounds[i]; i++)
        ;
    if (i < PT_METRICS_BUCKETS) h->buckets[i]++;
    h->count++;
    h->sum += seconds;
}

int pt_metrics_on_collect(struct pt_metrics *m, pt_metrics_collect_fn fn, void *ctx)
{
    if (!m) return 0;
    if (m->ncollectors == PT_METRICS_COLLECTORS_MAX) return -PT_ENOSPC;
    m->collectors[m->ncollectors].fn = fn;
    m->collectors[m->ncollectors].ctx = ctx;
    m->ncollectors++;
    return 0;
}

int pt_metrics_label_escape(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in; in++) {
        const char *rep = *in == '\\' ? "\\\\" : *in == '"' ? "\\\"" : *in == '\n' ? "\\n" : NULL;
        size_t k = rep ? 2 : 1;
        if (n + k >= cap) {
            if (cap) out[0] = 0;
            return -PT_ERANGE;
        }
        if (rep)
            memcpy(out + n, rep, 2);
        else
            out[n] = *in;
        n += k;
    }
    if (!cap) return -PT_ERANGE;
    out[n] = 0;
    return 0;
}

/* --- rendering ------------------------------------------------------------------------------ */

struct text {
    char *buf;
    size_t len, cap;
    int failed;
};

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (t->failed) return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        {
            size_t cap = (t->cap + (size_t)n + 1) * 2;
            char *nb = realloc(t->buf, cap);
            if (!nb) {
                t->failed = 1;
                return;
            }
            t->buf = nb;
            t->cap = cap;
        }
    }
}

/* A sample value: integers without a fraction, others with enough digits to round-trip. */
static void text_value(struct text *t, double v)
{
    if (isnan(v))
        text_printf(t, "NaN");
    else if (isinf(v))
        text_printf(t, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9e15)
        text_printf(t, "%.0f", v);
    else
        text_printf(t, "%.17g", v);
}

static void help_line(struct text *t, const struct pt_metric *s)
{
    const char *p;
    text_printf(t, "# HELP %s ", s->name);
    for (p = s->help; *p; p++) {
        if (*p == '\\')
            text_printf(t, "\\\\");
        else if (*p == '\n')
            text_printf(t, "\\n");
        else
            text_printf(t, "%c", *p);
    }
    text_printf(t, "\n# TYPE %s %s\n", s->name,
                s->type == PT_METRIC_COUNTER ? "counter"
                : s->type == PT_METRIC_GAUGE ? "gauge"
                                             : "histogram");
}

static void render_histogram(struct text *t, const struct pt_metric *s)
{
    const char *sep = s->labels[0] ? "," : "";
    uint64_t cum = 0;
    unsigned i;
    for (i = 0; i < PT_METRICS_BUCKETS; i++) {
        cum += s->buckets[i];
        text_printf(t, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", s->name, s->labels, sep,
                    bucket_bounds[i], cum);
    }
    text_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", s->name, s->labels, sep, s->count);
    text_printf(t, s->labels[0] ? "%s_sum{%s} " : "%s_sum%s ", s->name, s->labels);
    text_value(t, s->sum);
    text_printf(t, s->labels[0] ? "\n%s_count{%s} %" PRIu64 "\n" : "\n%s_count%s %" PRIu64 "\n",
                s->name, s->labels, s->count);
}

int pt_metrics_render(struct pt_metrics *m, char **out, size_t *len)
{
    struct text t = {0};
    unsigned char *done;
    size_t i, j;
    *out = NULL;
    *len = 0;
    for (i = 0; i < m->ncollectors; i++)
        m->collectors[i].fn(m->collectors[i].ctx);
    done = calloc(m->count ? m->count : 1, 1);
    if (!done) return -PT_ENOMEM;
    text_printf(&t, "%s", "");
    /* Names in order of first creation; a name's series together under one HELP/TYPE. */
    for (i = 0; i < m->count; i++) {
        if (done[i]) continue;
        help_line(&t, &m->series[i]);
        for (j = i; j < m->count; j++) {
            const struct pt_metric *s = &m->series[j];
            if (done[j] || strcmp(s->name, m->series[i].name) != 0) continue;
            done[j] = 1;
            if (s->type == PT_METRIC_HISTOGRAM) {
                render_histogram(&t, s);
                continue;
            }
            text_printf(&t, s->labels[0] ? "%s{%s} " : "%s%s ", s->name, s->labels);
            text_value(&t, s->value);
            text_printf(&t, "\n");
        }
    }
    free(done);
    if (t.failed) {
        free(t.buf);
        return -PT_ENOMEM;
    }
    *out = t.buf;
    *len = t.len;
    return 0;
}
