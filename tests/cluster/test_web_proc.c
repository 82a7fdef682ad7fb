/*
 * The HTTP views on real processes: a registry, 2 shards x 3 replicas, 3 CDC replicas and 3
 * block services, every one started with --http 127.0.0.1:0.
 *  - /metrics of every server kind (registry, shard, CDC, blocks; found through the links of
 *    the registry's status page, i.e. through the heartbeats' status tails) passes the strict
 *    checker and promtool when installed, and counts what happened: the requests of a file
 *    written, the Raft leader flag, fsyncs, the registry's services.
 *  - The status page names each shard's leader as the shards themselves report it (NODE_INFO),
 *    in the raw HTML and, when Chromium is installed, in the DOM headless Chromium builds.
 *  - A block service killed with SIGKILL is shown as down within the registry's stale time
 *    (3 s in the harness) plus slack, with a "is down" event.
 *  - The endpoint refuses what it does not serve: POST 405, unknown path 404, a long path 414;
 *    and stays up.
 *  - A registry group of 3 with --http (web_registry_group_page): every member's page says
 *    which member it is and lists the members' roles; changes show through "/" (what the
 *    page's script polls) on a follower: a killed block service, a killed member.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cluster/client/registry_client.h"
#include "cluster/net/net.h"
#include "petrel/client.h"
#include "petrel/common.h"
#include "proc_cluster.h"
#include "prom_check.h"
#include "test.h"

int web_promtool_check(const char *text); /* test_metrics.c */

#define SHARDS 2
#define BLOCKS 3
#define STALE_MS 3000 /* the harness's --stale-after */

/* One HTTP/1.0 request; the body (malloc'd, NUL-terminated) and the status code. */
static int http_request(const char *addr, const char *method, const char *path, int *status,
                        char **body)
{
    struct sockaddr_storage ss;
    struct timeval tv = {10, 0};
    char req[2048], *buf = NULL, *p;
    size_t len = 0, cap = 0;
    int fd;
    *body = NULL;
    *status = 0;
    if (pt_addr_parse(addr, &ss) != 0) return -1;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) != 0) {
        close(fd);
        return -1;
    }
    snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: %s\r\n\r\n", method, path, addr);
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t n;
        if (cap - len < 4097) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            CHECK(buf);
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    if (!buf) return -1;
    buf[len] = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1 || !(p = strstr(buf, "\r\n\r\n"))) {
        free(buf);
        return -1;
    }
    *body = strdup(p + 4);
    free(buf);
    return *body ? 0 : -1;
}

static char *http_get(const char *addr, const char *path)
{
    char *body;
    int status;
    if (http_request(addr, "GET", path, &status, &body) != 0) return NULL;
    if (status != 200) {
        free(body);
        return NULL;
    }
    return body;
}

/* The metrics addresses linked from one table of the page (id="shards", "cdc", "blocks"). */
static unsigned page_links(const char *page, const char *table, char out[][64], unsigned max)
{
    char open[64];
    const char *p, *end;
    unsigned n = 0;
    snprintf(open, sizeof(open), "<table id=\"%s\">", table);
    p = strstr(page, open);
    if (!p) return 0;
    end = strstr(p, "</table>");
    while (n < max && (p = strstr(p, "<a href=\"http://")) && p < end) {
        p += strlen("<a href=\"http://");
        if (sscanf(p, "%63[0-9.:]", out[n]) == 1) n++;
    }
    return n;
}

/* The leader the page names for shard s: its replica number, or -1 (none, or no such row). */
static int page_leader(const char *page, unsigned s)
{
    char key[64];
    const char *p;
    int replica;
    snprintf(key, sizeof(key), "class=\"leadername\" data-shard=\"%u\">replica ", s);
    p = strstr(page, key);
    if (!p || sscanf(p + strlen(key), "%d", &replica) != 1) return -1;
    return replica;
}

/* Headless Chromium's DOM of the page, or NULL without Chromium. */
static char *chromium_dom(const char *addr)
{
    char cmd[2000], path[600];
    FILE *f;
    char *dom;
    long size;
    if (system("command -v chromium >/dev/null 2>&1") != 0) return NULL;
    snprintf(path, sizeof(path), "%s/dom.html", test_tmpdir());
    snprintf(cmd, sizeof(cmd),
             "timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run "
             "--user-data-dir='%s/chromium' --dump-dom 'http://%s/' > '%s' 2>/dev/null",
             test_tmpdir(), addr, path);
    CHECK_MSG(system(cmd) == 0, "chromium --dump-dom failed");
    f = fopen(path, "r");
    CHECK(f);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    dom = calloc(1, (size_t)size + 1);
    CHECK(dom);
    CHECK(fread(dom, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    return dom;
}

/* Fetch, check and return one server's /metrics. */
static char *metrics_checked(const char *addr, const char *what)
{
    char why[400];
    char *text = http_get(addr, "/metrics");
    int promtool;
    CHECK_MSG(text, "GET http://%s/metrics (%s) failed", addr, what);
    if (prom_check(text, why, sizeof(why)) != 0) {
        fprintf(stderr, "%s\n", text);
        CHECK_MSG(0, "/metrics of %s (%s): %s", what, addr, why);
    }
    promtool = web_promtool_check(text);
    CHECK_MSG(promtool != 0, "promtool refused /metrics of %s (%s)", what, addr);
    return text;
}

static double value_or(const char *text, const char *series, double dflt)
{
    double v;
    return prom_value(text, series, &v) == 0 ? v : dflt;
}

/* Wait (bounded) for a page where every shard names a leader and links every replica. */
static char *wait_full_page(struct pc_cluster *c)
{
    uint64_t start = pc_now_ms();
    char links[16][64];
    while (pc_now_ms() - start < PC_WAIT_MS) {
        char *page = http_get(c->registry_http, "/");
        unsigned s, ok = page != NULL;
        for (s = 0; ok && s < SHARDS; s++)
            ok = page_leader(page, s) >= 0;
        if (ok && page_links(page, "shards", links, 16) == SHARDS * 3 &&
            page_links(page, "cdc", links, 16) == 3 &&
            page_links(page, "blocks", links, 16) == BLOCKS)
            return page;
        free(page);
        usleep(100000);
    }
    CHECK_MSG(0, "the status page never showed every service with a leader per shard");
    return NULL;
}

static long read_once(void *ctx, void *buf, size_t cap)
{
    int *left = ctx;
    size_t n = cap < (size_t)*left ? cap : (size_t)*left;
    memset(buf, 'w', n);
    *left -= (int)n;
    return (long)n;
}

static void write_file(struct pc_cluster *c)
{
    struct petrel_client *cl = pc_client(c, 30000);
    int left = 20000;
    uint64_t size = 0;
    CHECK_OK(petrel_client_write_file(cl, "/web.bin", read_once, &left, &size));
    CHECK_EQ(size, 20000);
    petrel_client_close(cl);
}

/* A block service's id (16 hex digits) from its log's "listening on" line. */
static void blocks_id(struct pc_cluster *c, const char *name, char out[32])
{
    int i = pc_find(c, name);
    FILE *f;
    char line[700];
    CHECK(i >= 0);
    f = fopen(c->procs[i].log, "r");
    CHECK(f);
    out[0] = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "listening on %*s (block service %16[0-9a-f]", out) == 1) break;
    fclose(f);
    CHECK(strlen(out) == 16);
}

TEST_T(web_metrics_and_status_page, 300)
{
    struct pc_cluster c;
    char links[16][64], *page, *text, *dom, *body;
    unsigned n, i, s;
    double shard_reqs = 0, shard_links = 0, link_timed = 0, block_writes = 0, leaders = 0,
           fsyncs = 0;
    int status, victim;
    char victim_id[32] = "", key[64];
    uint64_t killed_at, start;

    pc_start_http(&c, SHARDS, 3, BLOCKS, 1);
    write_file(&c);
    page = wait_full_page(&c);

    /* the registry */
    text = metrics_checked(c.registry_http, "registry");
    CHECK(value_or(text, "petrel_registry_services{kind=\"blocks\",state=\"up\"}", -1) == BLOCKS);
    CHECK(value_or(text, "petrel_registry_services{kind=\"shard\",state=\"up\"}", -1) ==
          SHARDS * 3);
    CHECK(value_or(text, "petrel_requests_total{kind=\"reg_blocks_heartbeat\"}", 0) > 0);
    free(text);

    /* shards: one leader per group, the file's requests counted somewhere */
    n = page_links(page, "shards", links, 16);
    CHECK_EQ(n, SHARDS * 3);
    for (i = 0; i < n; i++) {
        text = metrics_checked(links[i], "shard");
        leaders += value_or(text, "petrel_raft_leader", 0);
        /* shard requests are counted per operation: the file's creation and link */
        shard_reqs += value_or(text, "petrel_requests_total{kind=\"shard_construct_file\"}", 0);
        shard_links += value_or(text, "petrel_requests_total{kind=\"shard_link_file\"}", 0);
        link_timed +=
            value_or(text, "petrel_request_duration_seconds_count{kind=\"shard_link_file\"}", 0);
        CHECK(value_or(text, "petrel_requests_total{kind=\"shard_req\"}", -1) == -1);
        CHECK(value_or(text, "petrel_raft_term", 0) >= 1);
        CHECK(value_or(text, "petrel_fsync_duration_seconds_count", 0) >= 1);
        free(text);
    }
    CHECK(leaders >= SHARDS); /* a deposed leader may still say so for a moment */
    CHECK(shard_reqs > 0);
    CHECK(shard_links > 0 && link_timed == shard_links);

    /* CDC */
    n = page_links(page, "cdc", links, 16);
    CHECK_EQ(n, 3);
    for (i = 0; i < n; i++) {
        text = metrics_checked(links[i], "cdc");
        CHECK(value_or(text, "petrel_raft_commit_index", 0) >= 1);
        free(text);
    }

    /* block services: the file's blocks written and fsync'd */
    n = page_links(page, "blocks", links, 16);
    CHECK_EQ(n, BLOCKS);
    for (i = 0; i < n; i++) {
        text = metrics_checked(links[i], "blocks");
        /* a block is written as a stream: one BLOCK_WRITE_END each (PROTOCOL.md 3.2) */
        block_writes += value_or(text, "petrel_requests_total{kind=\"block_write\"}", 0) +
                        value_or(text, "petrel_requests_total{kind=\"block_write_end\"}", 0);
        fsyncs += value_or(text, "petrel_fsync_duration_seconds_count", 0);
        CHECK(value_or(text, "petrel_disk_written_bytes_total", 0) >= 0);
        free(text);
    }
    CHECK(block_writes >= 1);
    CHECK(fsyncs >= 1);
    free(page);

    /* each shard's leader as the shards say it, on the page (retried: leadership may move) */
    for (s = 0; s < SHARDS; s++) {
        start = pc_now_ms();
        for (;;) {
            unsigned leader;
            int shown;
            page = http_get(c.registry_http, "/");
            CHECK(page);
            shown = page_leader(page, s);
            free(page);
            if (pc_shard_leader(&c, s, &leader) == 0 && shown == (int)leader) break;
            CHECK_MSG(pc_now_ms() - start < PC_WAIT_MS,
                      "shard %u: the page never named its "
                      "leader",
                      s);
            usleep(100000);
        }
    }
    dom = chromium_dom(c.registry_http);
    if (dom) {
        for (s = 0; s < SHARDS; s++)
            CHECK_MSG(page_leader(dom, s) >= 0, "Chromium's DOM names no leader for shard %u", s);
        CHECK(strstr(dom, "<table id=\"blocks\">"));
        free(dom);
    } else {
        fprintf(stderr, "web: chromium not installed: the leaders were checked in the raw HTML "
                        "only\n");
    }

    /* requests the endpoint does not serve */
    CHECK_OK(http_request(c.registry_http, "POST", "/metrics", &status, &body));
    CHECK_EQ(status, 405);
    free(body);
    CHECK_OK(http_request(c.registry_http, "GET", "/nothing", &status, &body));
    CHECK_EQ(status, 404);
    free(body);
    {
        char longpath[600];
        memset(longpath, 'a', sizeof(longpath) - 1);
        longpath[0] = '/';
        longpath[sizeof(longpath) - 1] = 0;
        CHECK_OK(http_request(c.registry_http, "GET", longpath, &status, &body));
        CHECK_EQ(status, 414);
        free(body);
    }

    /* a killed block service is shown down within the stale time */
    victim = pc_find(&c, "blocks-1");
    CHECK(victim >= 0);
    blocks_id(&c, "blocks-1", victim_id);
    snprintf(key, sizeof(key), "data-service=\"%s\" data-state=\"", victim_id);
    page = http_get(c.registry_http, "/");
    CHECK(page && strstr(page, key) && strncmp(strstr(page, key) + strlen(key), "up", 2) == 0);
    free(page);
    pc_kill(&c, "blocks-1", SIGKILL);
    killed_at = pc_now_ms();
    for (;;) {
        const char *p;
        page = http_get(c.registry_http, "/");
        CHECK(page);
        p = strstr(page, key);
        CHECK(p);
        if (strncmp(p + strlen(key), "down", 4) == 0) break;
        free(page);
        CHECK_MSG(pc_now_ms() - killed_at < STALE_MS + 3000,
                  "the killed block service was not shown down within %u ms", STALE_MS + 3000);
        usleep(50000);
    }
    fprintf(stderr, "web: block service %s shown down %" PRIu64 " ms after SIGKILL\n", victim_id,
            pc_now_ms() - killed_at);
    CHECK(strstr(page, "is down: no heartbeat"));
    CHECK(strstr(page, victim_id));
    free(page);
    dom = chromium_dom(c.registry_http);
    if (dom) {
        char *p = strstr(dom, key);
        CHECK_MSG(p && strncmp(p + strlen(key), "down", 4) == 0,
                  "Chromium's DOM does not show the killed service down");
        free(dom);
    }
    /* the registry's metrics agree */
    text = metrics_checked(c.registry_http, "registry");
    CHECK(value_or(text, "petrel_registry_services{kind=\"blocks\",state=\"down\"}", -1) == 1);
    free(text);
    pc_stop(&c);
}

/* ---- a registry group: every member's page ------------------------------------------------ */

/* The role a group member's page gives member i ("leader", "follower", "down"), or "". */
static void page_member_role(const char *page, unsigned i, char *role, size_t cap)
{
    char key[64];
    const char *p;
    role[0] = 0;
    snprintf(key, sizeof(key), "<tr data-member=\"%u\" data-role=\"", i);
    p = strstr(page, key);
    if (p) snprintf(role, cap, "%.*s", (int)strcspn(p + strlen(key), "\""), p + strlen(key));
}

/* Whether the page is member `self`'s own, with that role for itself, fresh. */
static int page_is_member(const char *page, unsigned self, const char *role)
{
    char key[128];
    snprintf(key, sizeof(key), "<p id=\"member\" data-member=\"%u\" data-role=\"%s\" "
                               "data-fresh=\"yes\">", self, role);
    return strstr(page, key) != NULL;
}

/* The state ("up"/"down") a page shows for block service `id`, or "" when not listed. */
static void page_service_state(const char *page, const char *id, char *state, size_t cap)
{
    char key[96];
    const char *p;
    state[0] = 0;
    snprintf(key, sizeof(key), "data-service=\"%s\" data-state=\"", id);
    p = strstr(page, key);
    if (p) snprintf(state, cap, "%.*s", (int)strcspn(p + strlen(key), "\""), p + strlen(key));
}

/*
 * A registry group of 3 with --http: every member serves the status page from its own
 * replicated state, saying which member it is, its role and staleness, and listing the
 * members (leader/follower, term, commit index). The endpoint the page's script polls (its own
 * URL, "/") follows changes: a block service killed is shown down on a follower's page, and a
 * member killed is shown down (unreachable) on the others'.
 */
TEST_T(web_registry_group_page, 120)
{
    struct pc_cluster c;
    char *lpage = NULL, *fpage = NULL, role[32], state[16], victim_id[32], name[32], key[64];
    struct pt_reg_info info;
    struct pt_call_opts one = {500, 1, 0};
    int leader = -1;
    unsigned f = 0, g = 0, i;
    uint64_t start;

    pc_start_registry_group_http(&c, 1, 1, 2, 0, 3);
    blocks_id(&c, "blocks-1", victim_id);

    /* the leader's page and a follower's agree on who leads, both list the block services */
    start = pc_now_ms();
    for (;;) {
        int ok = 0;
        free(lpage);
        free(fpage);
        lpage = fpage = NULL;
        leader = pc_registry_leader(&c);
        if (leader >= 0) {
            f = ((unsigned)leader + 1) % 3;
            g = ((unsigned)leader + 2) % 3;
            lpage = http_get(c.registry_https[leader], "/");
            fpage = http_get(c.registry_https[f], "/");
        }
        if (lpage && fpage && page_is_member(lpage, (unsigned)leader, "leader") &&
            page_is_member(fpage, f, "follower")) {
            ok = 1;
            for (i = 0; i < 3; i++) {
                const char *want = i == (unsigned)leader ? "leader" : "follower";
                page_member_role(lpage, i, role, sizeof(role));
                ok &= strcmp(role, want) == 0;
                page_member_role(fpage, i, role, sizeof(role));
                ok &= strcmp(role, want) == 0;
            }
            page_service_state(fpage, victim_id, state, sizeof(state));
            ok &= strcmp(state, "up") == 0;
        }
        if (ok) break;
        CHECK_MSG(pc_now_ms() - start < PC_WAIT_MS,
                  "the members' pages never agreed on the group and its services");
        usleep(100000);
    }
    CHECK(strstr(fpage, "<th>term</th><th>commit index</th>"));
    CHECK(strstr(fpage, "1 (this page)") || strstr(fpage, "0 (this page)") ||
          strstr(fpage, "2 (this page)"));
    /* the leader's row on the follower's page: the term the leader reports, a commit index no
     * newer than the leader's */
    {
        char addrs[PT_REG_MAX_REPLICAS][PT_REG_ADDR_MAX];
        uint64_t term = 0, commit = 0;
        const char *row, *cells;
        CHECK_EQ(pt_reg_location_split(c.registry, addrs, PT_REG_MAX_REPLICAS), 3);
        snprintf(key, sizeof(key), "<tr data-member=\"%d\" data-role=\"leader\"", leader);
        row = strstr(fpage, key);
        CHECK(row);
        cells = strstr(row, " ago</td>");
        CHECK(cells && cells < strstr(row, "</tr>"));
        CHECK(sscanf(cells, " ago</td><td>%" SCNu64 "</td><td>%" SCNu64, &term, &commit) == 2);
        CHECK_OK(pt_reg_info(addrs[leader], &info, &one));
        CHECK_EQ(term, info.term);
        CHECK(commit >= 1 && commit <= info.commit);
    }
    free(lpage);
    lpage = NULL;

    /* the same in the DOM headless Chromium builds from the follower's page */
    {
        char *dom = chromium_dom(c.registry_https[f]);
        if (dom) {
            CHECK_MSG(page_is_member(dom, f, "follower"),
                      "Chromium's DOM of member %u's page does not say it is a follower", f);
            page_member_role(dom, (unsigned)leader, role, sizeof(role));
            CHECK_EQ(strcmp(role, "leader"), 0);
            free(dom);
        }
    }

    /* the page refreshes itself by fetching its own URL: "/" of the same member */
    CHECK(strstr(fpage, "fetch(location.href"));
    CHECK(strstr(fpage, "<div id=\"content\">")); /* what the script swaps in */
    free(fpage);
    fpage = NULL;

    /* a block service killed: the follower's page (replicated state) shows it down */
    pc_kill(&c, "blocks-1", SIGKILL);
    start = pc_now_ms();
    for (;;) {
        fpage = http_get(c.registry_https[f], "/");
        CHECK(fpage);
        page_service_state(fpage, victim_id, state, sizeof(state));
        if (strcmp(state, "down") == 0) break;
        free(fpage);
        CHECK_MSG(pc_now_ms() - start < STALE_MS + 5000,
                  "the follower's page did not show the killed block service down");
        usleep(50000);
    }
    fprintf(stderr, "web: follower %u showed block service %s down %" PRIu64 " ms after SIGKILL\n",
            f, victim_id, pc_now_ms() - start);
    CHECK(strstr(fpage, "is down: no heartbeat"));
    free(fpage);

    /* a member killed: shown down (unreachable) by the leader and the other follower */
    snprintf(name, sizeof(name), "registry-%u", g);
    pc_kill(&c, name, SIGKILL);
    start = pc_now_ms();
    for (;;) {
        int ok;
        lpage = http_get(c.registry_https[leader], "/");
        fpage = http_get(c.registry_https[f], "/");
        CHECK(lpage && fpage);
        page_member_role(lpage, g, role, sizeof(role));
        ok = strcmp(role, "down") == 0;
        page_member_role(fpage, g, role, sizeof(role));
        ok &= strcmp(role, "down") == 0;
        if (ok) break;
        free(lpage);
        free(fpage);
        CHECK_MSG(pc_now_ms() - start < 5000, "the killed member %u was not shown down", g);
        usleep(50000);
    }
    snprintf(key, sizeof(key), "registry member %u (", g);
    CHECK(strstr(lpage, key) && strstr(lpage, "is unreachable"));
    CHECK(strstr(fpage, "down (unreachable)"));
    free(lpage);
    free(fpage);
    pc_stop(&c);
}
