/*
 * The registry's status page and metrics (docs/OPERATIONS.md, "Status page"): what the
 * registry knows from heartbeats, rendered on the loop thread for the HTTP endpoint
 * (cluster/metrics). Owns the page's HTML (self-contained: inline style and a small script that
 * re-fetches the page every PT_STATUS_REFRESH_MS and swaps its body in, so it needs no network
 * beyond the registry), the recent-events ring (services going down and coming back, refused
 * heartbeats, failed saves) and the registry's gauges. Every text that came from a heartbeat is
 * HTML-escaped: a hostile failure-domain name cannot inject markup. Reads the state, never
 * changes it.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/metrics/metrics.h"
#include "cluster/registry/registry.h"
#include "cluster/registry/registry_status.h"
#include "petrel/common.h"

#define PT_STATUS_REFRESH_MS 2000

void pt_registry_events_add(struct pt_registry_events *ev, uint64_t wall_ms, const char *fmt, ...)
{
    struct pt_registry_event *e = &ev->ring[ev->next % PT_REGISTRY_EVENTS];
    va_list ap;
    e->wall_ms = wall_ms;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
    ev->next++;
}

static const char *kind_word(uint8_t kind)
{
    return kind == PT_REG_KIND_SHARD ? "shard replica"
           : kind == PT_REG_KIND_CDC ? "CDC replica"
                                     : "block service";
}

static void entry_name(const struct pt_registry_entry *e, char *buf, size_t cap)
{
    if (e->kind == PT_REG_KIND_BLOCKS)
        snprintf(buf, cap, "block service %016" PRIx64 " (%s, %s)", e->blocks.id,
                 e->blocks.failure_domain, e->blocks.addr[0] ? e->blocks.addr : "no address");
    else if (e->kind == PT_REG_KIND_SHARD)
        snprintf(buf, cap, "shard %u replica %u (%s)", e->replica.shard, e->replica.replica,
                 e->replica.addr[0] ? e->replica.addr : "no address");
    else
        snprintf(buf, cap, "CDC replica %u (%s)", e->replica.replica,
                 e->replica.addr[0] ? e->replica.addr : "no address");
}

void pt_registry_events_watch(struct pt_registry_events *ev, struct pt_registry *r, uint64_t now_ms,
                              uint64_t wall_ms)
{
    size_t i;
    for (i = 0; i < r->count; i++) {
        struct pt_registry_entry *e = &r->entries[i];
        int stale = pt_registry_entry_stale(r, e, now_ms);
        char name[256];
        if (stale == e->reported_stale) continue;
        /* An entry loaded stale from the state file and never heard from is not news. */
        if (stale && e->last_seen_ms == 0 && !e->reported_up) {
            e->reported_stale = 1;
            continue;
        }
        entry_name(e, name, sizeof(name));
        if (stale)
            pt_registry_events_add(ev, wall_ms, "%s is down: no heartbeat for %" PRIu64 " s", name,
                                   (now_ms - e->last_seen_ms) / 1000);
        else if (e->reported_up)
            pt_registry_events_add(ev, wall_ms, "%s is back", name);
        e->reported_stale = (uint8_t)stale;
        e->reported_up = 1;
    }
    (void)kind_word;
}

/* --- metrics ------------------------------------------------------------------------------- */

void pt_registry_metrics_collect(struct pt_metrics *m, const struct pt_registry *r, uint64_t now_ms)
{
    static const uint8_t kinds[] = {PT_REG_KIND_SHARD, PT_REG_KIND_CDC, PT_REG_KIND_BLOCKS};
    static const char *const names[] = {"shard", "cdc", "blocks"};
    unsigned k;
    size_t i;
    for (k = 0; k < 3; k++) {
        unsigned up = 0, down = 0;
        char l[64];
        for (i = 0; i < r->count; i++)
            if (r->entries[i].kind == kinds[k]) {
                if (pt_registry_entry_stale(r, &r->entries[i], now_ms))
                    down++;
                else
                    up++;
            }
        snprintf(l, sizeof(l), "kind=\"%s\",state=\"up\"", names[k]);
        pt_metric_set(pt_metrics_gauge(m, "petrel_registry_services", l,
                                       "Registered services by kind and heartbeat state"),
                      up);
        snprintf(l, sizeof(l), "kind=\"%s\",state=\"down\"", names[k]);
        pt_metric_set(pt_metrics_gauge(m, "petrel_registry_services", l,
                                       "Registered services by kind and heartbeat state"),
                      down);
    }
}

/* --- the page ------------------------------------------------------------------------------- */

struct html {
    char *buf;
    size_t len, cap;
    int failed;
};

static void put(struct html *h, const char *s, size_t n)
{
    if (h->failed) return;
    if (h->len + n + 1 > h->cap) {
        size_t cap = (h->cap + n + 1) * 2;
        char *nb = realloc(h->buf, cap);
        if (!nb) {
            h->failed = 1;
            return;
        }
        h->buf = nb;
        h->cap = cap;
    }
    memcpy(h->buf + h->len, s, n);
    h->len += n;
    h->buf[h->len] = 0;
}

/* Raw markup (trusted: written here). */
static void raw(struct html *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void raw(struct html *h, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        h->failed = 1;
        return;
    }
    put(h, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Text from the outside world, escaped. */
static void text(struct html *h, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            put(h, "&lt;", 4);
            break;
        case '>':
            put(h, "&gt;", 4);
            break;
        case '&':
            put(h, "&amp;", 5);
            break;
        case '"':
            put(h, "&quot;", 6);
            break;
        case '\'':
            put(h, "&#39;", 5);
            break;
        default:
            if ((unsigned char)*s < 0x20)
                put(h, "?", 1);
            else
                put(h, s, 1);
        }
    }
}

static void bytes_text(char *buf, size_t cap, uint64_t v)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double d = (double)v;
    unsigned u = 0;
    while (d >= 1024 && u < 5) {
        d /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", d, unit[u]);
}

static void time_text(char *buf, size_t cap, uint64_t wall_ms)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void state_cell(struct html *h, int stale, uint64_t age_ms)
{
    raw(h, "<td class=\"%s\">%s</td><td>%.1f s</td>", stale ? "down" : "up", stale ? "down" : "up",
        (double)age_ms / 1000.0);
}

static void http_cell(struct html *h, const char *http)
{
    if (!http[0]) {
        raw(h, "<td></td>");
        return;
    }
    raw(h, "<td><a href=\"http://");
    text(h, http);
    raw(h, "/metrics\">metrics</a></td>");
}

static int by_shard(const void *a, const void *b)
{
    const struct pt_registry_entry *x = *(const struct pt_registry_entry *const *)a;
    const struct pt_registry_entry *y = *(const struct pt_registry_entry *const *)b;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    if (x->kind == PT_REG_KIND_BLOCKS) {
        int c = strcmp(x->blocks.failure_domain, y->blocks.failure_domain);
        if (c) return c;
        return x->blocks.id < y->blocks.id ? -1 : x->blocks.id > y->blocks.id;
    }
    if (x->replica.shard != y->replica.shard) return x->replica.shard < y->replica.shard ? -1 : 1;
    return x->replica.replica < y->replica.replica ? -1 : x->replica.replica > y->replica.replica;
}

/* Shard groups (kind SHARD) or the CDC group: one row per replica, the group's leader named. */
static void groups_table(struct html *h, struct pt_registry_entry **v, size_t n, uint8_t kind,
                         const struct pt_registry *r, uint64_t now_ms)
{
    size_t i, j;
    raw(h,
        "<table id=\"%s\"><tr><th>%s</th><th>leader</th><th>replica</th><th>address</th>"
        "<th>state</th><th>last heartbeat</th><th>term</th><th>commit index</th>"
        "<th></th></tr>\n",
        kind == PT_REG_KIND_SHARD ? "shards" : "cdc",
        kind == PT_REG_KIND_SHARD ? "shard" : "group");
    for (i = 0; i < n; i = j) {
        const struct pt_registry_entry *leader = NULL;
        if (v[i]->kind != kind) {
            j = i + 1;
            continue;
        }
        for (j = i; j < n && v[j]->kind == kind && v[j]->replica.shard == v[i]->replica.shard; j++)
            if (v[j]->replica.leader && !pt_registry_entry_stale(r, v[j], now_ms)) leader = v[j];
        for (size_t k = i; k < j; k++) {
            const struct pt_registry_entry *e = v[k];
            int stale = pt_registry_entry_stale(r, e, now_ms);
            uint64_t age =
                e->last_seen_ms && now_ms > e->last_seen_ms ? now_ms - e->last_seen_ms : 0;
            raw(h, "<tr class=\"%s\">", e == leader ? "leader" : "");
            if (k == i) {
                raw(h, "<td rowspan=\"%zu\">%s%u</td>", j - i,
                    kind == PT_REG_KIND_SHARD ? "shard " : "cdc",
                    kind == PT_REG_KIND_SHARD ? (unsigned)e->replica.shard : 0u);
                if (leader)
                    raw(h,
                        "<td rowspan=\"%zu\" class=\"leadername\" data-%s=\"%u\">replica %u</td>",
                        j - i, kind == PT_REG_KIND_SHARD ? "shard" : "cdc", e->replica.shard,
                        leader->replica.replica);
                else
                    raw(h, "<td rowspan=\"%zu\" class=\"down leadername\" data-%s=\"%u\">none</td>",
                        j - i, kind == PT_REG_KIND_SHARD ? "shard" : "cdc", e->replica.shard);
            }
            raw(h, "<td>%u%s</td><td>", e->replica.replica, e == leader ? " (leader)" : "");
            text(h, e->replica.addr[0] ? e->replica.addr : "-");
            raw(h, "</td>");
            state_cell(h, stale, age);
            raw(h, "<td>%" PRIu64 "</td><td>%" PRIu64 "</td>", e->replica.term, e->replica.commit);
            http_cell(h, e->replica.http);
            raw(h, "</tr>\n");
        }
    }
    raw(h, "</table>\n");
}

static void blocks_table(struct html *h, struct pt_registry_entry **v, size_t n,
                         const struct pt_registry *r, uint64_t now_ms)
{
    size_t i;
    const char *domain = NULL;
    raw(h, "<table id=\"blocks\"><tr><th>failure domain</th><th>service</th><th>address</th>"
           "<th>state</th><th>last heartbeat</th><th>capacity</th><th>used</th><th>blocks</th>"
           "<th>scrubbed</th><th>rotten</th><th>scrub passes</th><th>last pass</th><th></th>"
           "</tr>\n");
    for (i = 0; i < n; i++) {
        const struct pt_registry_entry *e = v[i];
        int stale;
        uint64_t age;
        char cap[32], used[32], last[40];
        if (e->kind != PT_REG_KIND_BLOCKS) continue;
        stale = pt_registry_entry_stale(r, e, now_ms);
        age = e->last_seen_ms && now_ms > e->last_seen_ms ? now_ms - e->last_seen_ms : 0;
        bytes_text(cap, sizeof(cap), e->blocks.capacity);
        bytes_text(used, sizeof(used), e->blocks.used);
        if (e->blocks.scrub_last_pass_ms)
            time_text(last, sizeof(last), e->blocks.scrub_last_pass_ms);
        else
            snprintf(last, sizeof(last), "none yet");
        raw(h, "<tr data-service=\"%016" PRIx64 "\" data-state=\"%s\"><td>", e->blocks.id,
            stale ? "down" : "up");
        if (!domain || strcmp(domain, e->blocks.failure_domain) != 0)
            text(h, e->blocks.failure_domain);
        domain = e->blocks.failure_domain;
        raw(h, "</td><td>%016" PRIx64 "</td><td>", e->blocks.id);
        text(h, e->blocks.addr[0] ? e->blocks.addr : "-");
        raw(h, "</td>");
        state_cell(h, stale, age);
        raw(h,
            "<td>%s</td><td>%s (%.1f%%)</td><td>%" PRIu64 "</td><td>%" PRIu64
            "</td><td class=\"%s\">%" PRIu64 "</td><td>%" PRIu64 "</td><td>%s</td>",
            cap, used,
            e->blocks.capacity ? 100.0 * (double)e->blocks.used / (double)e->blocks.capacity : 0.0,
            e->blocks.blocks, e->blocks.scrub_checked, e->blocks.scrub_rotten ? "down" : "",
            e->blocks.scrub_rotten, e->blocks.scrub_passes, last);
        http_cell(h, e->blocks.http);
        raw(h, "</tr>\n");
    }
    raw(h, "</table>\n");
}

static const char page_head[] =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Petrel cluster status</title>\n"
    "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin:.5em 0 "
    "1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}th{background:#eee}"
    ".up{color:#070}.down{color:#b00;font-weight:bold}tr.leader{background:#eef6ff}"
    "#banner{color:#b00}</style></head>\n<body>\n";

/* Re-fetch the page and swap its body in; on failure say so and keep the last view. */
static const char page_script[] =
    "<script>\n"
    "(function(){var every=%d;function tick(){fetch(location.href,{cache:'no-store'})"
    ".then(function(r){if(!r.ok)throw new Error('HTTP '+r.status);return r.text();})"
    ".then(function(t){var d=new DOMParser().parseFromString(t,'text/html');"
    "document.getElementById('content').innerHTML=d.getElementById('content').innerHTML;"
    "document.getElementById('banner').textContent='';})"
    ".catch(function(e){document.getElementById('banner').textContent="
    "'registry unreachable ('+e.message+'): showing the last view';})"
    ".finally(function(){setTimeout(tick,every);});}setTimeout(tick,every);})();\n"
    "</script>\n";

static int page(const struct pt_registry *r, const struct pt_registry_events *ev,
                const char *self, const struct pt_registry_group_view *group, uint64_t now_ms,
                uint64_t wall_ms, char **out, size_t *len);

static const char *role_word(enum pt_registry_role role)
{
    return role == PT_REGISTRY_ROLE_LEADER      ? "leader"
           : role == PT_REGISTRY_ROLE_FOLLOWER  ? "follower"
           : role == PT_REGISTRY_ROLE_CANDIDATE ? "candidate"
                                                : "down";
}

static void staleness_text(char *buf, size_t cap, uint64_t ms)
{
    if (ms == UINT64_MAX)
        snprintf(buf, cap, "nothing applied yet");
    else
        snprintf(buf, cap, "%.1f s", (double)ms / 1000.0);
}

/* Which member this is, and every member of the group as it last answered. */
static void group_section(struct html *h, const struct pt_registry_group_view *g)
{
    const struct pt_registry_member_view *me = &g->m[g->self];
    char stale[40];
    unsigned i;
    int fresh = me->info.staleness_ms <= g->max_staleness_ms;
    staleness_text(stale, sizeof(stale), me->info.staleness_ms);
    raw(h,
        "<p id=\"member\" data-member=\"%u\" data-role=\"%s\" data-fresh=\"%s\">This page: "
        "member %u of %u (",
        g->self, role_word(me->role), fresh ? "yes" : "no", g->self, g->members);
    text(h, me->addr);
    raw(h, "), <b>%s</b> &middot; staleness <span class=\"%s\">%s</span>%s</p>\n",
        role_word(me->role), fresh ? "up" : "down", stale,
        fresh ? "" : " (beyond the bound: reads are sent to the leader, this view may be old)");
    raw(h, "<h2>Registry group</h2>\n<table id=\"registry\"><tr><th>member</th><th>address</th>"
           "<th>role</th><th>last answer</th><th>term</th><th>commit index</th><th>applied</th>"
           "<th>staleness</th></tr>\n");
    for (i = 0; i < g->members; i++) {
        const struct pt_registry_member_view *m = &g->m[i];
        int down = m->role == PT_REGISTRY_ROLE_DOWN;
        raw(h, "<tr data-member=\"%u\" data-role=\"%s\"%s><td>%u%s</td><td>", i,
            role_word(m->role), m->role == PT_REGISTRY_ROLE_LEADER ? " class=\"leader\"" : "", i,
            i == g->self ? " (this page)" : "");
        text(h, m->addr);
        raw(h, "</td><td class=\"%s\">%s</td>", down ? "down" : "up",
            down ? "down (unreachable)" : role_word(m->role));
        if (i == g->self)
            raw(h, "<td>-</td>");
        else if (m->silent_ms == UINT64_MAX)
            raw(h, "<td>never</td>");
        else
            raw(h, "<td>%.1f s ago</td>", (double)m->silent_ms / 1000.0);
        if (!m->info.replicas) {
            raw(h, "<td>-</td><td>-</td><td>-</td><td>-</td></tr>\n");
            continue;
        }
        staleness_text(stale, sizeof(stale), m->info.staleness_ms);
        raw(h, "<td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%s%s</td></tr>\n",
            m->info.term, m->info.commit, m->info.applied, stale, down ? " (last known)" : "");
    }
    raw(h, "</table>\n");
}

int pt_registry_status_page(const struct pt_registry *r, const struct pt_registry_events *ev,
                            const char *self, uint64_t now_ms, uint64_t wall_ms, char **out,
                            size_t *len)
{
    return page(r, ev, self, NULL, now_ms, wall_ms, out, len);
}

int pt_registry_group_status_page(const struct pt_registry *r,
                                  const struct pt_registry_events *ev,
                                  const struct pt_registry_group_view *group, uint64_t now_ms,
                                  uint64_t wall_ms, char **out, size_t *len)
{
    return page(r, ev, group ? group->m[group->self].addr : "", group, now_ms, wall_ms, out, len);
}

static int page(const struct pt_registry *r, const struct pt_registry_events *ev,
                const char *self, const struct pt_registry_group_view *group, uint64_t now_ms,
                uint64_t wall_ms, char **out, size_t *len)
{
    struct html h = {0};
    struct pt_registry_entry **v = calloc(r->count ? r->count : 1, sizeof(struct pt_registry_entry *));
    unsigned up[4] = {0}, down[4] = {0};
    char now_text[40];
    size_t i;
    uint64_t k;
    if (!v) return -PT_ENOMEM;
    for (i = 0; i < r->count; i++) {
        v[i] = &r->entries[i];
        if (v[i]->kind <= 3) {
            if (pt_registry_entry_stale(r, v[i], now_ms))
                down[v[i]->kind]++;
            else
                up[v[i]->kind]++;
        }
    }
    qsort(v, r->count, sizeof(struct pt_registry_entry *), by_shard);
    time_text(now_text, sizeof(now_text), wall_ms);
    put(&h, page_head, strlen(page_head));
    raw(&h, "<h1>Petrel cluster</h1>\n<div id=\"banner\"></div>\n<div id=\"content\">\n");
    raw(&h, "<p>Registry ");
    text(&h, self);
    raw(&h, " &middot; %s &middot; a service is down after %.1f s without a heartbeat</p>\n",
        now_text, (double)r->stale_after_ms / 1000.0);
    if (group) group_section(&h, group);
    raw(&h, "<h2>Services</h2>\n<table id=\"services\"><tr><th>kind</th><th>up</th><th>down</th>"
            "</tr>\n");
    for (k = 1; k <= 3; k++)
        raw(&h, "<tr><td>%s</td><td class=\"up\">%u</td><td class=\"%s\">%u</td></tr>\n",
            kind_word((uint8_t)k), up[k], down[k] ? "down" : "", down[k]);
    raw(&h, "</table>\n<h2>Shards</h2>\n");
    groups_table(&h, v, r->count, PT_REG_KIND_SHARD, r, now_ms);
    raw(&h, "<h2>CDC</h2>\n");
    groups_table(&h, v, r->count, PT_REG_KIND_CDC, r, now_ms);
    raw(&h, "<h2>Block services by failure domain</h2>\n");
    blocks_table(&h, v, r->count, r, now_ms);
    raw(&h, "<h2>Recent events</h2>\n<table id=\"events\"><tr><th>time</th><th>event</th></tr>\n");
    for (k = ev->next; k > 0 && k + PT_REGISTRY_EVENTS > ev->next; k--) {
        const struct pt_registry_event *e = &ev->ring[(k - 1) % PT_REGISTRY_EVENTS];
        char t[40];
        time_text(t, sizeof(t), e->wall_ms);
        raw(&h, "<tr><td>%s</td><td>", t);
        text(&h, e->text);
        raw(&h, "</td></tr>\n");
    }
    if (ev->next == 0) raw(&h, "<tr><td></td><td>none</td></tr>\n");
    raw(&h, "</table>\n</div>\n");
    raw(&h, page_script, PT_STATUS_REFRESH_MS);
    raw(&h, "</body></html>\n");
    free(v);
    if (h.failed) {
        free(h.buf);
        return -PT_ENOMEM;
    }
    *out = h.buf;
    *len = h.len;
    return 0;
}
