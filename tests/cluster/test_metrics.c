/*
 * The metrics module (src/cluster/metrics) without processes: what it renders passes the strict
 * checker (tests/cluster/prom_check.c) and promtool when installed, with the right numbers in the
 * right buckets; names and labels that would make the output unparsable are refused at
 * creation; and the checker itself fails on each kind of broken exposition.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/metrics/metrics.h"
#include "petrel/common.h"
#include "prom_check.h"
#include "test.h"

/* promtool check metrics on `text` when promtool is installed: 1 accepted, 0 refused, -1 absent. */
int web_promtool_check(const char *text);
int web_promtool_check(const char *text)
{
    char path[600], cmd[1400];
    FILE *f;
    int rc;
    if (system("command -v promtool >/dev/null 2>&1") != 0) return -1;
    snprintf(path, sizeof(path), "%s/metrics-%d.txt", test_tmpdir(), (int)getpid());
    f = fopen(path, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
    /* promtool prints lint problems and exits non-zero on any */
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' > '%s.out' 2>&1", path, path);
    rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "cat '%s.out' >&2", path);
        if (system(cmd) != 0) return 0;
    }
    return rc == 0;
}

TEST(metrics_render_is_valid_exposition)
{
    struct pt_metrics *m = pt_metrics_new();
    struct pt_metric *c, *g, *h, *h2;
    char *text, why[300];
    size_t len;
    double v;
    CHECK(m);
    c = pt_metrics_counter(m, "petrel_requests_total", "kind=\"ping\"", "Requests");
    CHECK(c);
    CHECK(pt_metrics_counter(m, "petrel_requests_total", "kind=\"ping\"", "Requests") == c);
    pt_metric_add(c, 3);
    pt_metric_add(pt_metrics_counter(m, "petrel_requests_total", "kind=\"block_read\"", "Requests"),
                  5);
    g = pt_metrics_gauge(m, "petrel_raft_term", "", "Term");
    pt_metric_set(g, 7);
    pt_metric_gauge_add(pt_metrics_gauge(m, "petrel_connections", "", "Open"), 2);
    h = pt_metrics_histogram(m, "petrel_fsync_duration_seconds", "", "fsync latency");
    pt_metric_observe(h, 0.0002); /* le 0.00025 */
    pt_metric_observe(h, 0.0002);
    pt_metric_observe(h, 0.003); /* le 0.005 */
    pt_metric_observe(h, 20);    /* only +Inf */
    pt_metric_observe(h, NAN);   /* counted as 0 */
    h2 = pt_metrics_histogram(m, "petrel_request_duration_seconds", "kind=\"x\\\"y\"",
                              "Latency with an escaped label");
    CHECK(h2);
    pt_metric_observe(h2, 1.5);
    /* collectors run before rendering */
    CHECK_OK(pt_metrics_render(m, &text, &len));
    CHECK_EQ(strlen(text), len);
    if (prom_check(text, why, sizeof(why)) != 0) {
        fprintf(stderr, "%s\n%s", why, text);
        CHECK(0);
    }
    CHECK(web_promtool_check(text) != 0);
    CHECK_OK(prom_value(text, "petrel_requests_total{kind=\"ping\"}", &v));
    CHECK(v == 3);
    CHECK_OK(prom_value(text, "petrel_requests_total{kind=\"block_read\"}", &v));
    CHECK(v == 5);
    CHECK_OK(prom_value(text, "petrel_raft_term", &v));
    CHECK(v == 7);
    CHECK_OK(prom_value(text, "petrel_fsync_duration_seconds_bucket{le=\"0.0001\"}", &v));
    CHECK(v == 1); /* the NaN, as 0 */
    CHECK_OK(prom_value(text, "petrel_fsync_duration_seconds_bucket{le=\"0.00025\"}", &v));
    CHECK(v == 3);
    CHECK_OK(prom_value(text, "petrel_fsync_duration_seconds_bucket{le=\"0.005\"}", &v));
    CHECK(v == 4);
    CHECK_OK(prom_value(text, "petrel_fsync_duration_seconds_bucket{le=\"10\"}", &v));
    CHECK(v == 4);
    CHECK_OK(prom_value(text, "petrel_fsync_duration_seconds_bucket{le=\"+Inf\"}", &v));
    CHECK(v == 5);
    CHECK_OK(prom_value(text, "petrel_fsync_duration_seconds_count", &v));
    CHECK(v == 5);
    CHECK_OK(prom_value(text, "petrel_fsync_duration_seconds_sum", &v));
    CHECK(fabs(v - 20.0034) < 1e-9);
    CHECK_OK(prom_value(text, "petrel_request_duration_seconds_count{kind=\"x\\\"y\"}", &v));
    CHECK(v == 1);
    free(text);
    pt_metrics_free(m);
}

TEST(metrics_refuse_series_that_would_not_parse)
{
    struct pt_metrics *m = pt_metrics_new();
    char buf[16];
    CHECK(m);
    CHECK(pt_metrics_counter(NULL, "petrel_x_total", "", "") == NULL);
    CHECK(pt_metrics_counter(m, "9petrel_total", "", "") == NULL);
    CHECK(pt_metrics_counter(m, "petrel x_total", "", "") == NULL);
    CHECK(pt_metrics_counter(m, "", "", "") == NULL);
    CHECK(pt_metrics_counter(m, "petrel_x_total", "kind=\"a", "") == NULL);
    CHECK(pt_metrics_counter(m, "petrel_x_total", "kind=a", "") == NULL);
    CHECK(pt_metrics_counter(m, "petrel_x_total", "le=\"1\"", "") == NULL);
    CHECK(pt_metrics_counter(m, "petrel_x_total", "__name=\"1\"", "") == NULL);
    CHECK(pt_metrics_counter(m, "petrel_x_total", "k=\"a\nb\"", "") == NULL);
    CHECK(pt_metrics_counter(m, "petrel_x_total", "k=\"a\\qb\"", "") == NULL);
    CHECK(pt_metrics_counter(m, "petrel_x_total", "k=\"a\"x", "") == NULL);
    CHECK(pt_metrics_counter(m, "petrel_x_total", "k=\"a\",j=\"b\"", "") != NULL);
    /* one name, one type */
    CHECK(pt_metrics_gauge(m, "petrel_x_total", "", "") == NULL);
    /* updates through NULL are no-ops */
    pt_metric_add(NULL, 1);
    pt_metric_set(NULL, 1);
    pt_metric_observe(NULL, 1);
    CHECK_OK(pt_metrics_label_escape("a\"b\\c\nd", buf, sizeof(buf)));
    CHECK(strcmp(buf, "a\\\"b\\\\c\\nd") == 0);
    CHECK_EQ(pt_metrics_label_escape("0123456789abcdef", buf, sizeof(buf)), -PT_ERANGE);
    CHECK(buf[0] == 0);
    pt_metrics_free(m);
}

TEST(prom_check_refuses_broken_expositions)
{
    static const char *const bad[] = {
        "",
        "petrel_a_total 1\n",                                                       /* no TYPE */
        "# HELP petrel_a_total a\n# TYPE petrel_a_total counter\npetrel_a_total 1", /* no \n */
        "# HELP petrel_a a\n# TYPE petrel_a counter\npetrel_a 1\n",                 /* no _total */
        "# HELP petrel_a_total a\n# TYPE petrel_a_total gauge\npetrel_a_total 1\n",
        "# HELP petrel_a_total a\n# TYPE petrel_a_total counter\npetrel_a_total -1\n",
        "# HELP petrel_a_total a\n# TYPE petrel_a_total counter\npetrel_a_total x\n",
        "# HELP petrel_a_total a\n# TYPE petrel_a_total counter\npetrel_a_total{k=\"v} 1\n",
        "# HELP petrel_a_total a\n# TYPE petrel_a_total counter\npetrel_a_total 1 2 3\n",
        "# HELP petrel_a a\n# TYPE petrel_a gauge\n# HELP petrel_b b\n# TYPE petrel_b gauge\n"
        "petrel_a 1\n", /* outside its family */
        "# HELP petrel_a a\n# TYPE petrel_a gauge\npetrel_a 1\n# HELP petrel_b b\n"
        "# TYPE petrel_b gauge\npetrel_b 1\n# TYPE petrel_a gauge\n", /* family twice */
        "# HELP petrel_h_seconds h\n# TYPE petrel_h_seconds histogram\n"
        "petrel_h_seconds_bucket{le=\"1\"} 2\npetrel_h_seconds_bucket{le=\"2\"} 1\n"
        "petrel_h_seconds_bucket{le=\"+Inf\"} 2\npetrel_h_seconds_sum 1\n"
        "petrel_h_seconds_count 2\n", /* not cumulative */
        "# HELP petrel_h_seconds h\n# TYPE petrel_h_seconds histogram\n"
        "petrel_h_seconds_bucket{le=\"2\"} 1\npetrel_h_seconds_bucket{le=\"1\"} 1\n"
        "petrel_h_seconds_bucket{le=\"+Inf\"} 1\npetrel_h_seconds_sum 1\n"
        "petrel_h_seconds_count 1\n", /* le order */
        "# HELP petrel_h_seconds h\n# TYPE petrel_h_seconds histogram\n"
        "petrel_h_seconds_bucket{le=\"1\"} 1\npetrel_h_seconds_bucket{le=\"+Inf\"} 1\n"
        "petrel_h_seconds_sum 1\npetrel_h_seconds_count 2\n", /* count != +Inf */
        "# HELP petrel_h h\n# TYPE petrel_h histogram\n"
        "petrel_h_bucket{le=\"+Inf\"} 1\npetrel_h_sum 1\npetrel_h_count 1\n", /* no unit */
        "# HELP other_a a\n# TYPE other_a gauge\nother_a 1\n",                /* not petrel_ */
    };
    static const char good[] =
        "# HELP petrel_a_total a\n# TYPE petrel_a_total counter\npetrel_a_total{k=\"v\"} 1\n"
        "# HELP petrel_h_seconds h\n# TYPE petrel_h_seconds histogram\n"
        "petrel_h_seconds_bucket{le=\"1\"} 1\npetrel_h_seconds_bucket{le=\"+Inf\"} 2\n"
        "petrel_h_seconds_sum 3\npetrel_h_seconds_count 2\n";
    char why[300];
    size_t i;
    CHECK_OK(prom_check(good, why, sizeof(why)));
    for (i = 0; i < PT_ARRAY_SIZE(bad); i++)
        CHECK_MSG(prom_check(bad[i], why, sizeof(why)) != 0, "accepted broken case %zu", i);
}

/* --- the registry's status page and heartbeat status tails (no processes) -------------------- */

#include "cluster/proto/registry_msg.h"
#include "cluster/registry/registry.h"
#include "cluster/registry/registry_status.h"

TEST(registry_heartbeat_status_tail)
{
    struct pt_reg_replica in, out;
    struct pt_reg_blocks bin, bout;
    uint8_t buf[1024];
    struct pt_cursor c;
    size_t len;
    memset(&in, 0, sizeof(in));
    in.shard = 3;
    in.replica = 1;
    in.leader = 1;
    snprintf(in.addr, sizeof(in.addr), "127.0.0.1:9000");
    in.term = 12;
    in.commit = 3456;
    snprintf(in.http, sizeof(in.http), "127.0.0.1:9100");
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_reg_enc_shard_heartbeat(&c, &in);
    CHECK(pt_cursor_ok(&c));
    len = c.pos;
    pt_cursor_init(&c, buf, len);
    pt_reg_dec_shard_heartbeat(&c, &out);
    CHECK(pt_cursor_ok(&c) && !pt_cursor_left(&c));
    CHECK(out.term == 12 && out.commit == 3456 && strcmp(out.http, in.http) == 0);
    /* without the tail (an older sender): accepted, tail empty */
    pt_cursor_init(&c, buf, len - (8 + 8 + 2 + strlen(in.http)));
    pt_reg_dec_shard_heartbeat(&c, &out);
    CHECK(pt_cursor_ok(&c) && !pt_cursor_left(&c));
    CHECK(out.term == 0 && out.commit == 0 && out.http[0] == 0);
    CHECK(strcmp(out.addr, in.addr) == 0);
    /* a cut tail is malformed */
    pt_cursor_init(&c, buf, len - 3);
    pt_reg_dec_shard_heartbeat(&c, &out);
    CHECK(!pt_cursor_ok(&c));
    pt_cursor_init(&c, buf, len - 20);
    pt_reg_dec_shard_heartbeat(&c, &out);
    CHECK(!pt_cursor_ok(&c));
    /* CDC the same way */
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_reg_enc_cdc_heartbeat(&c, &in);
    len = c.pos;
    pt_cursor_init(&c, buf, len);
    pt_reg_dec_cdc_heartbeat(&c, &out);
    CHECK(pt_cursor_ok(&c) && !pt_cursor_left(&c));
    CHECK(out.term == 12 && out.commit == 3456 && strcmp(out.http, in.http) == 0);
    /* block services: an http string after the scrub progress */
    memset(&bin, 0, sizeof(bin));
    bin.id = 77;
    snprintf(bin.failure_domain, sizeof(bin.failure_domain), "rack1");
    snprintf(bin.addr, sizeof(bin.addr), "127.0.0.1:9001");
    snprintf(bin.http, sizeof(bin.http), "127.0.0.1:9101");
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_reg_enc_blocks_heartbeat(&c, &bin);
    len = c.pos;
    pt_cursor_init(&c, buf, len);
    pt_reg_dec_blocks_heartbeat(&c, &bout);
    CHECK(pt_cursor_ok(&c) && !pt_cursor_left(&c));
    CHECK(strcmp(bout.http, bin.http) == 0);
    pt_cursor_init(&c, buf, len - (2 + strlen(bin.http)));
    pt_reg_dec_blocks_heartbeat(&c, &bout);
    CHECK(pt_cursor_ok(&c) && !pt_cursor_left(&c) && bout.http[0] == 0);
}

static void page_heartbeats(struct pt_registry *r, uint64_t now, int with_b2)
{
    struct pt_reg_replica hb;
    struct pt_reg_blocks b;
    uint8_t secret[PT_REG_SECRET_SIZE] = {1}, out[PT_REG_SECRET_SIZE];
    unsigned rep;
    for (rep = 0; rep < 3; rep++) {
        memset(&hb, 0, sizeof(hb));
        hb.shard = 1;
        hb.replica = (uint8_t)rep;
        hb.leader = rep == 2;
        hb.term = 5;
        hb.commit = 100 + rep;
        snprintf(hb.addr, sizeof(hb.addr), "127.0.0.1:%u", 9000 + rep);
        snprintf(hb.http, sizeof(hb.http), "127.0.0.1:%u", 9100 + rep);
        CHECK_OK(pt_registry_shard_heartbeat(r, &hb, now));
    }
    memset(&b, 0, sizeof(b));
    b.id = 0xabc;
    b.capacity = 1000;
    b.used = 250;
    snprintf(b.failure_domain, sizeof(b.failure_domain), "<script>alert(1)</script>");
    snprintf(b.addr, sizeof(b.addr), "127.0.0.1:9200");
    snprintf(b.http, sizeof(b.http), "127.0.0.1:9300\"><b>x");
    CHECK_OK(pt_registry_blocks_heartbeat(r, &b, now, secret, out));
    if (with_b2) {
        b.id = 0xdef;
        snprintf(b.failure_domain, sizeof(b.failure_domain), "rack2");
        snprintf(b.addr, sizeof(b.addr), "127.0.0.1:9201");
        CHECK_OK(pt_registry_blocks_heartbeat(r, &b, now, secret, out));
    }
}

TEST(registry_status_page_shows_leaders_escapes_and_goes_down_on_time)
{
    struct pt_registry r;
    struct pt_registry_events ev;
    char *page;
    size_t len;
    const uint64_t wall = 1800000000000ull;
    pt_registry_init(&r, 3000);
    memset(&ev, 0, sizeof(ev));
    page_heartbeats(&r, 1000, 1);
    pt_registry_events_watch(&ev, &r, 1000, wall);
    CHECK(ev.next == 0); /* coming up is not an event */
    CHECK_OK(pt_registry_status_page(&r, &ev, "127.0.0.1:7400", 2000, wall, &page, &len));
    CHECK_EQ(strlen(page), len);
    CHECK(strstr(page, "class=\"leadername\" data-shard=\"1\">replica 2</td>"));
    CHECK(strstr(page, "<td>5</td><td>102</td>"));                 /* term, commit of replica 2 */
    CHECK(strstr(page, "href=\"http://127.0.0.1:9102/metrics\"")); /* its metrics link */
    CHECK(strstr(page, "data-service=\"0000000000000abc\" data-state=\"up\""));
    CHECK(strstr(page, "data-service=\"0000000000000def\" data-state=\"up\""));
    CHECK(strstr(page, "250 B (25.0%)"));
    /* hostile strings from heartbeats are text, never markup */
    CHECK(!strstr(page, "<script>alert"));
    CHECK(strstr(page, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    CHECK(!strstr(page, "<b>x"));
    CHECK(strstr(page, "9300&quot;&gt;&lt;b&gt;x"));
    CHECK(strstr(page, "<script>\n(function(){var every=2000;")); /* the refresh script, whole */
    CHECK(strstr(page, "</script>\n</body></html>\n"));
    free(page);

    /* block service 0xdef falls silent: up until stale_after, down after, with one event */
    page_heartbeats(&r, 3999, 0);
    CHECK_OK(pt_registry_status_page(&r, &ev, "127.0.0.1:7400", 4000, wall, &page, &len));
    CHECK(strstr(page, "data-service=\"0000000000000def\" data-state=\"up\""));
    free(page);
    pt_registry_events_watch(&ev, &r, 4000, wall);
    CHECK(ev.next == 0);
    pt_registry_events_watch(&ev, &r, 4001, wall + 3001);
    CHECK(ev.next == 1);
    CHECK(
        strstr(ev.ring[0].text, "block service 0000000000000def (rack2, 127.0.0.1:9201) is down"));
    pt_registry_events_watch(&ev, &r, 4100, wall + 3100);
    CHECK(ev.next == 1); /* said once */
    CHECK_OK(pt_registry_status_page(&r, &ev, "127.0.0.1:7400", 4100, wall, &page, &len));
    CHECK(strstr(page, "data-service=\"0000000000000def\" data-state=\"down\""));
    CHECK(strstr(page, "data-service=\"0000000000000abc\" data-state=\"up\""));
    {
        const char *row = strstr(page, "data-service=\"0000000000000def\"");
        CHECK(row && strstr(row, "<td class=\"down\">down</td>") &&
              strstr(row, "<td class=\"down\">down</td>") < strstr(row, "</tr>"));
        CHECK(strstr(page, "<tr><td>block service</td><td class=\"up\">1</td>"
                           "<td class=\"down\">1</td></tr>"));
    }
    CHECK(strstr(page, "is down: no heartbeat for 3 s"));
    free(page);
    /* it comes back */
    page_heartbeats(&r, 5000, 1);
    pt_registry_events_watch(&ev, &r, 5000, wall + 4000);
    CHECK(ev.next == 2);
    CHECK(strstr(ev.ring[1].text, "0000000000000def (rack2, 127.0.0.1:9201) is back"));
    /* a leader that went silent is not named: the group shows none */
    CHECK_OK(pt_registry_status_page(&r, &ev, "127.0.0.1:7400", 9000, wall, &page, &len));
    CHECK(strstr(page, "class=\"down leadername\" data-shard=\"1\">none</td>"));
    free(page);
    pt_registry_free(&r);
}

/* --- the HTTP endpoint in-process: the loop renders, a stalled loop is a bounded 503 ---------- */

/* A group member's page: which member it is, its role and staleness, every member's row (a
 * member never heard from shown down, "never"), a view beyond the staleness bound flagged. */
TEST(registry_group_status_page_lists_members)
{
    struct pt_registry r;
    struct pt_registry_events ev;
    struct pt_registry_group_view g;
    char *page;
    size_t len;
    const uint64_t wall = 1800000000000ull;
    pt_registry_init(&r, 3000);
    memset(&ev, 0, sizeof(ev));
    memset(&g, 0, sizeof(g));
    page_heartbeats(&r, 1000, 0);
    g.self = 1;
    g.members = 3;
    g.max_staleness_ms = 2000;
    snprintf(g.m[0].addr, sizeof(g.m[0].addr), "10.0.0.1:7400");
    g.m[0].role = PT_REGISTRY_ROLE_LEADER;
    g.m[0].silent_ms = 400;
    g.m[0].info = (struct pt_reg_info){.replica = 0, .replicas = 3, .serving = 1, .term = 7,
                                       .commit = 41, .applied = 41};
    snprintf(g.m[1].addr, sizeof(g.m[1].addr), "10.0.0.2:7400<i>");
    g.m[1].role = PT_REGISTRY_ROLE_FOLLOWER;
    g.m[1].info = (struct pt_reg_info){.replica = 1, .replicas = 3, .term = 7, .commit = 40,
                                       .applied = 39, .staleness_ms = 300};
    snprintf(g.m[2].addr, sizeof(g.m[2].addr), "10.0.0.3:7400");
    g.m[2].role = PT_REGISTRY_ROLE_DOWN;
    g.m[2].silent_ms = UINT64_MAX;
    CHECK_OK(pt_registry_group_status_page(&r, &ev, &g, 2000, wall, &page, &len));
    CHECK_EQ(strlen(page), len);
    CHECK(strstr(page, "<p id=\"member\" data-member=\"1\" data-role=\"follower\" "
                       "data-fresh=\"yes\">"));
    CHECK(strstr(page, "member 1 of 3 (10.0.0.2:7400&lt;i&gt;)"));
    CHECK(!strstr(page, "<i>"));
    CHECK(strstr(page, "<tr data-member=\"0\" data-role=\"leader\" class=\"leader\"><td>0</td>"
                       "<td>10.0.0.1:7400</td><td class=\"up\">leader</td><td>0.4 s ago</td>"
                       "<td>7</td><td>41</td><td>41</td><td>0.0 s</td></tr>"));
    CHECK(strstr(page, "<td>1 (this page)</td>"));
    CHECK(strstr(page, "<td>7</td><td>40</td><td>39</td><td>0.3 s</td>"));
    CHECK(strstr(page, "<tr data-member=\"2\" data-role=\"down\"><td>2</td><td>10.0.0.3:7400</td>"
                       "<td class=\"down\">down (unreachable)</td><td>never</td>"));
    /* the rest of the page is the registry's, from this member's state */
    CHECK(strstr(page, "<table id=\"shards\">"));
    CHECK(strstr(page, "data-service=\"0000000000000abc\" data-state=\"up\""));
    free(page);
    /* beyond the bound: flagged */
    g.m[1].info.staleness_ms = 2500;
    CHECK_OK(pt_registry_group_status_page(&r, &ev, &g, 2000, wall, &page, &len));
    CHECK(strstr(page, "data-role=\"follower\" data-fresh=\"no\">"));
    CHECK(strstr(page, "<span class=\"down\">2.5 s</span> (beyond the bound"));
    free(page);
    /* a standalone registry's page has no group section */
    CHECK_OK(pt_registry_status_page(&r, &ev, "127.0.0.1:7400", 2000, wall, &page, &len));
    CHECK(!strstr(page, "id=\"registry\"") && !strstr(page, "id=\"member\""));
    free(page);
    pt_registry_free(&r);
}

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>

/* GET path from addr over HTTP/1.0: the status, the body in body (cap bytes, NUL-ended). */
static int http_get_local(const char *addr, const char *path, char *body, size_t cap)
{
    struct sockaddr_in sa;
    struct timeval tv = {20, 0};
    char req[256], *buf = malloc(1 << 20);
    unsigned port;
    size_t len = 0;
    int fd, status = -1;
    char *p;
    CHECK(buf);
    CHECK(sscanf(addr, "127.0.0.1:%u", &port) == 1);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        free(buf);
        return -1;
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
    CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    for (;;) {
        ssize_t n = read(fd, buf + len, (1 << 20) - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) == 1 && (p = strstr(buf, "\r\n\r\n")))
        snprintf(body, cap, "%s", p + 4);
    free(buf);
    return status;
}

struct loop_run {
    uv_loop_t loop;
    uv_async_t stop;
    struct pt_http *http;
    struct pt_metric *ticks;
};

static void on_stop(uv_async_t *a)
{
    struct loop_run *r = a->data;
    pt_http_stop(r->http);
    uv_close((uv_handle_t *)&r->stop, NULL);
}

static uint64_t pc_now_ms_local(void)
{
    return uv_hrtime() / 1000000u;
}

static void *loop_main(void *arg)
{
    struct loop_run *r = arg;
    uv_run(&r->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void count_render(void *ctx)
{
    pt_metric_add(ctx, 1);
}

TEST(metrics_http_endpoint_renders_on_the_loop)
{
    struct loop_run r;
    struct pt_metrics *m = pt_metrics_new();
    char *body = malloc(1 << 20), why[300], addr[64];
    pthread_t t;
    uint64_t start;
    double v;
    CHECK(m && body);
    memset(&r, 0, sizeof(r));
    CHECK_OK(uv_loop_init(&r.loop));
    r.ticks = pt_metrics_counter(m, "petrel_test_renders_total", "", "Renders so far");
    CHECK_OK(pt_metrics_on_collect(m, count_render, r.ticks));
    CHECK_EQ(pt_http_start(&r.loop, "127.0.0.1:99999", m, NULL, NULL, &r.http), -PT_EINVAL);
    CHECK_EQ(pt_http_start(&r.loop, "nowhere:1", m, NULL, NULL, &r.http), -PT_EINVAL);
    CHECK_OK(pt_http_start(&r.loop, "127.0.0.1:0", m, NULL, NULL, &r.http));
    snprintf(addr, sizeof(addr), "%s", pt_http_address(r.http));
    CHECK(strncmp(addr, "127.0.0.1:", 10) == 0 && strcmp(addr, "127.0.0.1:0") != 0);
    /* The loop is not running: the HTTP thread must not render itself, and must not hang. */
    start = pc_now_ms_local();
    CHECK_EQ(http_get_local(addr, "/metrics", body, 1 << 20), 503);
    CHECK(pc_now_ms_local() - start >= PT_HTTP_WAIT_MS - 100);
    CHECK(r.ticks->value == 0);
    /* The loop runs: rendered there, a valid exposition, collectors run once per render. */
    r.stop.data = &r;
    CHECK_OK(uv_async_init(&r.loop, &r.stop, on_stop));
    CHECK_OK(pthread_create(&t, NULL, loop_main, &r));
    CHECK_EQ(http_get_local(addr, "/metrics", body, 1 << 20), 200);
    CHECK_OK(prom_check(body, why, sizeof(why)));
    CHECK_OK(prom_value(body, "petrel_test_renders_total", &v));
    CHECK(v == 1);
    CHECK_EQ(http_get_local(addr, "/metrics", body, 1 << 20), 200);
    CHECK_OK(prom_value(body, "petrel_test_renders_total", &v));
    CHECK(v == 2);
    CHECK_EQ(http_get_local(addr, "/", body, 1 << 20), 404); /* no page callback */
    uv_async_send(&r.stop);
    CHECK_OK(pthread_join(t, NULL));
    CHECK_OK(uv_loop_close(&r.loop));
    CHECK_EQ(http_get_local(addr, "/metrics", body, 1 << 20), -1); /* closed */
    pt_metrics_free(m);
    free(body);
}
