/*
 * Directory durability (issue 10): every directory the servers create, every file renamed into
 * place and every block file removed is followed by an fsync of the directory that holds the
 * entry. Checked through the fsync hook of storage/durable.c, which sees every fsync the servers'
 * storage code makes (files and directories) and can fail any of them. The block store does
 * its I/O through the env instead: its durability is checked in the simulator, by crashing it
 * (tests/sim/test_sim_blocks.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/blocks/blocks.h"
#include "cluster/client/blocks_client.h"
#include "cluster/replica/entry.h"
#include "cluster/replica/node.h"
#include "cluster/storage/durable.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "test.h"

#define LOG_MAX 600

/* The fsyncs seen, in order: "D path" for a directory, "F path" for a file. */
struct sync_log {
    char what[LOG_MAX][1024];
    unsigned n;
    int fail_dirs;  /* fail every directory fsync with EIO */
    int fail_files; /* fail every file fsync with EIO */
};

static int record_sync(void *ctx, int fd, const char *path, int is_dir)
{
    struct sync_log *l = ctx;
    if (l->n < LOG_MAX)
        snprintf(l->what[l->n++], sizeof(l->what[0]), "%c %s", is_dir ? 'D' : 'F', path);
    if ((is_dir && l->fail_dirs) || (!is_dir && l->fail_files)) {
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

static struct sync_log *start_log(void)
{
    struct sync_log *l = calloc(1, sizeof(*l));
    CHECK(l != NULL);
    pt_durable_set_fsync_hook(record_sync, l);
    return l;
}

static void stop_log(struct sync_log *l)
{
    pt_durable_set_fsync_hook(NULL, NULL);
    free(l);
}

/* Whether "KIND path" was logged at position >= from; returns its index or -1. */
static int logged(const struct sync_log *l, unsigned from, char kind, const char *path)
{
    char want[1024];
    unsigned i;
    snprintf(want, sizeof(want), "%c %s", kind, path);
    for (i = from; i < l->n; i++)
        if (strcmp(l->what[i], want) == 0) return (int)i;
    return -1;
}

TEST(durable_mkdir_p_syncs_the_parent_of_every_new_directory)
{
    struct sync_log *l = start_log();
    char base[512], path[600], p1[600], p2[600];
    snprintf(base, sizeof(base), "%s", test_tmpdir());
    snprintf(path, sizeof(path), "%s/a//b/c/", base);
    snprintf(p1, sizeof(p1), "%s/a", base);
    snprintf(p2, sizeof(p2), "%s/a/b", base);
    CHECK_OK(pt_mkdir_p(path));
    /* New: a, a/b, a/b/c; each one's parent synced after its mkdir, nothing else. */
    CHECK_EQ(l->n, 3);
    CHECK(logged(l, 0, 'D', base) == 0);
    CHECK(logged(l, 0, 'D', p1) == 1);
    CHECK(logged(l, 0, 'D', p2) == 2);
    /* Existing directories are not synced again. */
    l->n = 0;
    CHECK_OK(pt_mkdir_p(path));
    CHECK_EQ(l->n, 0);
    /* A failed directory fsync is the call's error. */
    l->fail_dirs = 1;
    snprintf(path, sizeof(path), "%s/a/b/d", base);
    CHECK_EQ(pt_mkdir_p(path), -PT_EIO);
    /* A relative path's first directory lives in ".". */
    l->fail_dirs = 0;
    l->n = 0;
    {
        char cwd[600];
        CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
        CHECK_OK(chdir(base) == 0 ? 0 : -1);
        CHECK_OK(pt_mkdir_p("rel/x"));
        CHECK_OK(chdir(cwd) == 0 ? 0 : -1);
        CHECK_EQ(l->n, 2);
        CHECK(logged(l, 0, 'D', ".") == 0);
        CHECK(logged(l, 0, 'D', "rel") == 1);
    }
    stop_log(l);
}

TEST(durable_write_file_syncs_data_then_directory)
{
    struct sync_log *l = start_log();
    char dir[512], tmp[600], final[600];
    uint8_t *data;
    size_t len;
    struct stat st;
    snprintf(dir, sizeof(dir), "%s", test_tmpdir());
    snprintf(tmp, sizeof(tmp), "%s/.state.tmp", dir);
    snprintf(final, sizeof(final), "%s/state", dir);
    CHECK_OK(pt_durable_write_file(dir, "state", "one", 3));
    CHECK_EQ(l->n, 2);
    CHECK(logged(l, 0, 'F', tmp) == 0); /* the bytes before the rename */
    CHECK(logged(l, 0, 'D', dir) == 1); /* the rename after it */
    /* A failed data fsync: no rename (the old content stays), no temp file left. */
    l->fail_files = 1;
    CHECK_EQ(pt_durable_write_file(dir, "state", "two", 3), -PT_EIO);
    CHECK_EQ(stat(tmp, &st), -1);
    CHECK_OK(pt_read_file(final, 16, &data, &len));
    CHECK_EQ(len, 3);
    CHECK(memcmp(data, "one", 3) == 0);
    free(data);
    /* A failed directory fsync is reported (the caller must not trust the rename). */
    l->fail_files = 0;
    l->fail_dirs = 1;
    CHECK_EQ(pt_durable_write_file(dir, "state", "two", 3), -PT_EIO);
    stop_log(l);
}

/* ---- the replicated node's own files (replica/node.c) ---------------------------------------- */

/* A state machine that applies nothing: the node only ever logs its term barriers here. */
static struct pt_shard_apply_out node_out;

static int nothing_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    (void)fsm;
    (void)buf;
    node_out.count = 0;
    *result = &node_out;
    return 0;
}

static int nothing_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    (void)fsm;
    (void)bufs;
    (void)n;
    return RAFT_NOMEM; /* never reached: far below the snapshot threshold */
}

static int nothing_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    (void)buf;
    return RAFT_NOMEM;
}

static void nothing_handler(void *ctx, struct pt_request *req)
{
    (void)ctx;
    pt_request_reply_error(req, -PT_ENOTSUP, "test node", NULL);
}

static void node_config(struct pt_node_config *nc, struct raft_fsm *fsm, const char *dir)
{
    memset(fsm, 0, sizeof(*fsm));
    fsm->version = 1;
    fsm->apply = nothing_apply;
    fsm->snapshot = nothing_snapshot;
    fsm->restore = nothing_restore;
    memset(nc, 0, sizeof(*nc));
    nc->registry = "127.0.0.1:1"; /* nobody: discovery fails and is tried again */
    nc->kind = PT_NODE_SHARD;
    nc->replicas = 1;
    nc->dir = dir;
    nc->host = "127.0.0.1";
    nc->fsm = fsm;
    nc->handler = nothing_handler;
}

TEST(node_creates_its_directories_and_raft_port_durably)
{
    struct sync_log *l = start_log();
    struct pt_node_config nc;
    struct raft_fsm fsm;
    struct pt_node *n = NULL;
    char base[512], dir[600], raft[700], tmp[700], port_path[700], err[400];
    uint8_t *data = NULL;
    size_t len = 0;
    int at;
    snprintf(base, sizeof(base), "%s/a", test_tmpdir());
    snprintf(dir, sizeof(dir), "%s/node", base);
    snprintf(raft, sizeof(raft), "%s/raft", dir);
    snprintf(tmp, sizeof(tmp), "%s/.raft.port.tmp", dir);
    snprintf(port_path, sizeof(port_path), "%s/raft.port", dir);
    node_config(&nc, &fsm, dir);
    CHECK_MSG(pt_node_start(&n, &nc, err, sizeof(err)) == 0, "%s", err);
    /* DIR and DIR/raft are new entries, each made durable in its parent... */
    CHECK(logged(l, 0, 'D', test_tmpdir()) >= 0);
    CHECK(logged(l, 0, 'D', base) >= 0);
    CHECK((at = logged(l, 0, 'D', dir)) >= 0);
    /* ...and raft.port is written to a temporary file, synced, renamed, its directory synced. */
    CHECK((at = logged(l, (unsigned)at, 'F', tmp)) >= 0);
    CHECK(logged(l, (unsigned)at, 'D', dir) > at);
    CHECK_OK(pt_read_file(port_path, 16, &data, &len));
    CHECK(len > 1 && data[len - 1] == '\n' && strtoul((char *)data, NULL, 10) > 0);
    free(data);
    CHECK_OK(raise(SIGINT)); /* the node's own signal handle stops it */
    CHECK_OK(pt_node_run(n));
    stop_log(l);
}

TEST(node_start_failures_say_why_and_release_everything)
{
    struct pt_node_config nc;
    struct raft_fsm fsm;
    struct pt_node *n = (struct pt_node *)1;
    char dir[600], file[700], err[400];
    int fd;
    /* Before anything is opened. */
    snprintf(dir, sizeof(dir), "%s/timing", test_tmpdir());
    node_config(&nc, &fsm, dir);
    nc.raft.election_timeout_ms = 100;
    nc.raft.heartbeat_ms = 100;
    CHECK_EQ(pt_node_start(&n, &nc, err, sizeof(err)), -PT_EINVAL);
    CHECK(n == NULL && strstr(err, "--heartbeat-ms") != NULL);
    /* The data directory cannot be made: a file is in the way. */
    snprintf(file, sizeof(file), "%s/afile", test_tmpdir());
    fd = open(file, O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0);
    close(fd);
    node_config(&nc, &fsm, file);
    CHECK(pt_node_start(&n, &nc, err, sizeof(err)) < 0);
    CHECK(n == NULL && strstr(err, "cannot create") != NULL);
    /* After the loop, the env, the frame server and the Raft port were set up: libraft's own
     * storage in DIR/raft is refused, and everything opened is closed again (ASan's leak check
     * and uv_loop_close's own check in the undo path catch what is not). */
    snprintf(dir, sizeof(dir), "%s/old", test_tmpdir());
    snprintf(file, sizeof(file), "%s/raft", dir);
    CHECK_OK(pt_mkdir_p(file));
    snprintf(file, sizeof(file), "%s/raft/metadata1", dir);
    fd = open(file, O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, "01234567", 8) == 8);
    close(fd);
    node_config(&nc, &fsm, dir);
    CHECK_EQ(pt_node_start(&n, &nc, err, sizeof(err)), -PT_EVERSION);
    CHECK_MSG(n == NULL && strstr(err, "libraft") != NULL, "%s", err);
}
