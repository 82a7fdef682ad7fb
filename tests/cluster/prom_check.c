/*
 * The exposition-format checker of prom_check.h. Reads line by line; keeps the families seen
 * (name, type, whether HELP/TYPE came, whether the family is closed because another began) and,
 * for the histogram being read, its last bucket bound and count.
 */
#include "prom_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAMILIES_MAX 512

struct family {
    char name[128];
    char type[16];
    int help, typed, closed;
};

struct checker {
    struct family fam[FAMILIES_MAX];
    int n;
    int current; /* family whose samples are being read, -1 none */
    /* histogram state of the current label set */
    char hist_labels[256];
    double last_le;
    double last_count;
    int have_inf;
    double inf_count;
};

static int fail(char *why, size_t cap, const char *line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *why, size_t cap, const char *line, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(why, cap, "%s: '%.120s'", msg, line);
    return -1;
}

static int name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static struct family *find(struct checker *k, const char *name)
{
    int i;
    for (i = 0; i < k->n; i++)
        if (strcmp(k->fam[i].name, name) == 0) return &k->fam[i];
    return NULL;
}

static struct family *add(struct checker *k, const char *name)
{
    struct family *f = find(k, name);
    if (f || k->n == FAMILIES_MAX) return f;
    f = &k->fam[k->n++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    return f;
}

/* Parse a metric name at *p into out; 0 or -1. */
static int parse_name(const char **p, char *out, size_t cap)
{
    size_t n = 0;
    if (!name_char(**p, 1)) return -1;
    while (name_char(**p, n == 0) && n + 1 < cap)
        out[n++] = *(*p)++;
    out[n] = 0;
    return name_char(**p, 0) ? -1 : 0;
}

/* Labels '{k="v",...}' at *p: copies them (without le) into rest, le's value into le. */
static int parse_labels(const char **p, char *rest, size_t cap, char *le, size_t le_cap)
{
    size_t rn = 0;
    rest[0] = le[0] = 0;
    if (**p != '{') return 0;
    (*p)++;
    while (**p != '}') {
        char lname[128], val[256];
        size_t n = 0, v = 0;
        if (!name_char(**p, 1)) return -1;
        while (name_char(**p, n == 0) && n + 1 < sizeof(lname))
            lname[n++] = *(*p)++;
        lname[n] = 0;
        if (*(*p)++ != '=' || *(*p)++ != '"') return -1;
        while (**p && **p != '"') {
            if (**p == '\\') {
                (*p)++;
                if (**p != '\\' && **p != '"' && **p != 'n') return -1;
            }
            if (v + 1 < sizeof(val)) val[v++] = **p;
            (*p)++;
        }
        val[v] = 0;
        if (*(*p)++ != '"') return -1;
        if (strcmp(lname, "le") == 0)
            snprintf(le, le_cap, "%.60s", val);
        else
            rn += (size_t)snprintf(rest + rn, rn < cap ? cap - rn : 0, "%s=%s,", lname, val);
        if (**p == ',')
            (*p)++;
        else if (**p != '}')
            return -1;
    }
    (*p)++;
    return rn < cap ? 0 : -1;
}

static int parse_value(const char *s, double *out)
{
    char *end;
    if (strcmp(s, "+Inf") == 0) {
        *out = INFINITY;
        return 0;
    }
    if (strcmp(s, "-Inf") == 0) {
        *out = -INFINITY;
        return 0;
    }
    if (strcmp(s, "NaN") == 0) {
        *out = NAN;
        return 0;
    }
    *out = strtod(s, &end);
    return *s && *end == 0 ? 0 : -1;
}

/* The family a sample name belongs to (histogram suffixes stripped when the base is one). */
static struct family *family_of(struct checker *k, const char *name, const char **suffix)
{
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    struct family *f;
    unsigned i;
    *suffix = "";
    for (i = 0; i < 3; i++)
        if (ends_with(name, sfx[i])) {
            char base[128];
            snprintf(base, sizeof(base), "%.*s", (int)(strlen(name) - strlen(sfx[i])), name);
            f = find(k, base);
            if (f && strcmp(f->type, "histogram") == 0) {
                *suffix = sfx[i];
                return f;
            }
        }
    return find(k, name);
}

static int check_line(struct checker *k, const char *line, char *why, size_t cap)
{
    char name[128], labels[256], le[64], valtext[64];
    const char *p = line, *suffix;
    struct family *f;
    double v;
    if (!*line) return 0;
    if (line[0] == '#') {
        const char *kw;
        if (strncmp(line, "# HELP ", 7) == 0)
            kw = "HELP";
        else if (strncmp(line, "# TYPE ", 7) == 0)
            kw = "TYPE";
        else
            return 0; /* a comment */
        p = line + 7;
        if (parse_name(&p, name, sizeof(name)) || (*p && *p != ' '))
            return fail(why, cap, line, "bad metric name in %s", kw);
        f = add(k, name);
        if (!f) return fail(why, cap, line, "too many families");
        if (f->closed) return fail(why, cap, line, "family %s appears twice", name);
        if (k->current >= 0 && &k->fam[k->current] != f) k->fam[k->current].closed = 1;
        k->current = (int)(f - k->fam);
        if (kw[0] == 'H') {
            if (f->help) return fail(why, cap, line, "second HELP for %s", name);
            f->help = 1;
            return 0;
        }
        if (f->typed) return fail(why, cap, line, "second TYPE for %s", name);
        p++;
        if (strcmp(p, "counter") && strcmp(p, "gauge") && strcmp(p, "histogram") &&
            strcmp(p, "summary") && strcmp(p, "untyped"))
            return fail(why, cap, line, "unknown type");
        snprintf(f->type, sizeof(f->type), "%s", p);
        f->typed = 1;
        if (strcmp(p, "counter") == 0 && !ends_with(name, "_total"))
            return fail(why, cap, line, "a counter's name must end in _total");
        if (strcmp(p, "counter") != 0 && ends_with(name, "_total"))
            return fail(why, cap, line, "only counters end in _total");
        if (strncmp(name, "petrel_", 7) != 0)
            return fail(why, cap, line, "names start with petrel_");
        k->hist_labels[0] = 0;
        k->last_le = -INFINITY;
        k->last_count = 0;
        k->have_inf = 0;
        return 0;
    }
    if (parse_name(&p, name, sizeof(name))) return fail(why, cap, line, "bad sample name");
    if (parse_labels(&p, labels, sizeof(labels), le, sizeof(le)))
        return fail(why, cap, line, "bad labels");
    if (*p++ != ' ') return fail(why, cap, line, "no space before the value");
    if (sscanf(p, "%63s", valtext) != 1 || parse_value(valtext, &v))
        return fail(why, cap, line, "bad value");
    p += strlen(valtext);
    if (*p) return fail(why, cap, line, "a timestamp or junk after the value");
    f = family_of(k, name, &suffix);
    if (!f || !f->typed || !f->help) return fail(why, cap, line, "sample without HELP and TYPE");
    if (&k->fam[k->current] != f) return fail(why, cap, line, "sample outside its family");
    if (strcmp(f->type, "counter") == 0 && !(v >= 0))
        return fail(why, cap, line, "a negative or NaN counter");
    if (strcmp(f->type, "histogram") != 0) {
        if (le[0]) return fail(why, cap, line, "le label outside a histogram");
        return 0;
    }
    if (!*suffix) return fail(why, cap, line, "histogram sample without _bucket/_sum/_count");
    if (strcmp(suffix, "_bucket") == 0) {
        double bound;
        if (!le[0] || parse_value(le, &bound)) return fail(why, cap, line, "bucket without le");
        if (strcmp(k->hist_labels, labels) != 0) { /* a new label set begins */
            if (k->hist_labels[0] && !k->have_inf)
                return fail(why, cap, line, "previous histogram has no +Inf bucket");
            snprintf(k->hist_labels, sizeof(k->hist_labels), "%s", labels);
            k->last_le = -INFINITY;
            k->last_count = 0;
            k->have_inf = 0;
        } else if (k->have_inf) {
            return fail(why, cap, line, "bucket after +Inf");
        }
        if (!(bound > k->last_le)) return fail(why, cap, line, "buckets not in increasing le");
        if (v < k->last_count) return fail(why, cap, line, "buckets not cumulative");
        k->last_le = bound;
        k->last_count = v;
        if (isinf(bound)) {
            k->have_inf = 1;
            k->inf_count = v;
        }
        return 0;
    }
    if (le[0]) return fail(why, cap, line, "le on _sum/_count");
    if (strcmp(k->hist_labels, labels) != 0 || !k->have_inf)
        return fail(why, cap, line, "_sum/_count without the buckets before them");
    if (strcmp(suffix, "_count") == 0 && v != k->inf_count)
        return fail(why, cap, line, "_count differs from the +Inf bucket");
    return 0;
}

int prom_check(const char *text, char *why, size_t cap)
{
    struct checker *k = calloc(1, sizeof(*k));
    const char *p = text;
    char line[1024];
    int rc = 0, i;
    if (!k) return fail(why, cap, "", "out of memory");
    k->current = -1;
    if (!*text) rc = fail(why, cap, "", "empty exposition");
    while (!rc && *p) {
        const char *nl = strchr(p, '\n');
        size_t n;
        if (!nl) {
            rc = fail(why, cap, p, "last line without a newline");
            break;
        }
        n = (size_t)(nl - p);
        if (n >= sizeof(line)) {
            rc = fail(why, cap, p, "line too long");
            break;
        }
        memcpy(line, p, n);
        line[n] = 0;
        rc = check_line(k, line, why, cap);
        p = nl + 1;
    }
    for (i = 0; !rc && i < k->n; i++) {
        if (!k->fam[i].typed || !k->fam[i].help)
            rc = fail(why, cap, k->fam[i].name, "family without TYPE or HELP");
        if (strcmp(k->fam[i].type, "histogram") == 0 && !ends_with(k->fam[i].name, "_seconds") &&
            !ends_with(k->fam[i].name, "_bytes"))
            rc = fail(why, cap, k->fam[i].name, "a histogram without a unit suffix");
    }
    free(k);
    return rc;
}

int prom_value(const char *text, const char *series, double *out)
{
    size_t n = strlen(series);
    const char *p = text;
    while (p && *p) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            char v[64];
            if (sscanf(p + n + 1, "%63s", v) != 1) return -1;
            return parse_value(v, out);
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return -1;
}
