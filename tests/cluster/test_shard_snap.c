/*
 * Shard snapshots streamed through a small buffer (shard_snap.c): a store much larger than the
 * memory a process may take is snapshotted to a file and restored from it, byte for byte, under
 * an address-space limit on private memory (RLIMIT_DATA: the heap and anonymous mappings, not
 * LMDB's shared file map) that the whole-buffer path cannot meet.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/shard/shard_sm.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define SNAP_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SNAP_TEST_SANITIZED 1
#endif
#endif
#ifndef SNAP_TEST_SANITIZED
#define SNAP_TEST_SANITIZED 0
#endif

#define STORE_VALUES 16384u /* x 4000 bytes: a 64 MB store */
#define STORE_VALUE 4000u
#define MEMORY_ALLOWED (24u << 20) /* more private memory the measured step may take */
#define CHUNK (64u << 10)

static void open_sm(struct pt_shard_sm *sm, const char *name)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", test_tmpdir(), name);
    CHECK_OK(pt_shard_sm_open(sm, dir, 0, 1));
}

/* Fill the store's tables straight through LMDB with distinct, checkable records (tables whose
 * values a restore does not decode: it recounts directories from inodes and dirents). */
static void fill_store(struct pt_shard_sm *sm, unsigned values)
{
    static uint8_t v[STORE_VALUE];
    MDB_txn *t;
    unsigned i;
    CHECK_EQ(mdb_txn_begin(sm->env, NULL, 0, &t), 0);
    for (i = 0; i < values; i++) {
        uint8_t kb[8];
        MDB_val k = {sizeof(kb), kb}, val = {sizeof(v) - (i % 7), v};
        pt_put_le64(kb, (uint64_t)i * 2654435761u + 1);
        memset(v, (int)(i * 31u), sizeof(v));
        pt_put_le32(v, i);
        CHECK_EQ(mdb_put(t,
                         i % 3 == 0   ? sm->spans
                         : i % 3 == 1 ? sm->dropped
                                      : sm->blockidx,
                         &k, &val, 0),
                 0);
    }
    CHECK_EQ(mdb_txn_commit(t), 0);
}

static int fd_write(void *ctx, const uint8_t *buf, size_t len)
{
    int fd = *(int *)ctx;
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) return -PT_EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int64_t fd_read(void *ctx, uint64_t off, uint8_t *buf, size_t len)
{
    ssize_t n = pread(*(int *)ctx, buf, len, (off_t)off);
    return n < 0 ? -PT_EIO : (int64_t)n;
}

/* Private memory the process holds now (VmData of /proc/self/status), in bytes. */
static uint64_t data_bytes(void)
{
    char line[256];
    uint64_t kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmData: %lu kB", (unsigned long *)&kb) == 1) break;
    fclose(f);
    return kb << 10;
}

/* In a child process: cap private memory at its current amount + MEMORY_ALLOWED (not under a
 * sanitizer, whose allocator maps memory its own way), run step, exit with its result. */
enum snap_step { STEP_TAKE_STREAM, STEP_RESTORE_STREAM, STEP_TAKE_BUFFER };

static int run_bounded(struct pt_shard_sm *sm, enum snap_step step, const char *path)
{
    int status = 0;
    pid_t pid;
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        static uint8_t chunk[CHUNK];
        int fd, rc;
        if (!SNAP_TEST_SANITIZED) {
            struct rlimit r;
            r.rlim_cur = r.rlim_max = data_bytes() + MEMORY_ALLOWED;
            if (setrlimit(RLIMIT_DATA, &r) != 0) _exit(99);
        }
        if (step == STEP_TAKE_BUFFER) {
            uint8_t *buf;
            size_t len;
            rc = pt_shard_sm_snapshot(sm, &buf, &len);
            _exit(rc == 0 ? 0 : rc == -PT_ENOMEM ? 2 : 3);
        }
        fd = open(path, step == STEP_TAKE_STREAM ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0644);
        if (fd < 0) _exit(98);
        if (step == STEP_TAKE_STREAM) {
            rc = pt_shard_sm_snapshot_stream(sm, fd_write, &fd, chunk, sizeof(chunk), NULL);
        } else {
            off_t len = lseek(fd, 0, SEEK_END);
            rc = pt_shard_sm_restore_stream(sm, fd_read, &fd, (uint64_t)len, chunk, sizeof(chunk));
        }
        if (rc == 0 && fsync(fd) != 0) rc = -PT_EIO;
        close(fd);
        _exit(rc == 0 ? 0 : rc == -PT_ENOMEM ? 2 : 3);
    }
    CHECK(pid > 0);
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void files_equal(const char *a, const char *b)
{
    static uint8_t x[CHUNK], y[CHUNK];
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    size_t na, nb;
    CHECK(fa && fb);
    do {
        na = fread(x, 1, sizeof(x), fa);
        nb = fread(y, 1, sizeof(y), fb);
        CHECK_EQ(na, nb);
        CHECK_MEM(x, y, na);
    } while (na);
    fclose(fa);
    fclose(fb);
}

/* A 64 MB store goes to a file and back into another store with 24 MB of private memory to
 * spare, where one buffer of the whole image does not fit; the two images are identical. */
TEST(shard_snapshot_streams_a_large_store_under_a_memory_bound)
{
    struct pt_shard_sm a, b;
    char pa[512], pb[512];
    snprintf(pa, sizeof(pa), "%s/a.snap", test_tmpdir());
    snprintf(pb, sizeof(pb), "%s/b.snap", test_tmpdir());
    open_sm(&a, "a");
    fill_store(&a, STORE_VALUES);
    if (!SNAP_TEST_SANITIZED) CHECK_EQ(run_bounded(&a, STEP_TAKE_BUFFER, NULL), 2);
    CHECK_EQ(run_bounded(&a, STEP_TAKE_STREAM, pa), 0);
    open_sm(&b, "b");
    CHECK_EQ(run_bounded(&b, STEP_RESTORE_STREAM, pa), 0);
    CHECK_EQ(run_bounded(&b, STEP_TAKE_STREAM, pb), 0);
    files_equal(pa, pb);
    pt_shard_sm_close(&a);
    pt_shard_sm_close(&b);
    unlink(pa);
    unlink(pb);
}

struct img_src {
    const uint8_t *p;
    size_t len;
};

static int64_t img_read(void *ctx, uint64_t off, uint8_t *buf, size_t len)
{
    struct img_src *s = ctx;
    if (off >= s->len) return 0;
    if (len > s->len - off) len = s->len - (size_t)off;
    memcpy(buf, s->p + off, len);
    return (int64_t)len;
}

/* Every damaged byte and every short length is refused before the store changes. */
TEST(shard_snapshot_restore_refuses_damage_without_change)
{
    struct pt_shard_sm a, b;
    uint8_t *img, *before, *after;
    size_t len, blen, alen, i;
    uint8_t chunk[16];
    open_sm(&a, "a");
    fill_store(&a, 12);
    CHECK_OK(pt_shard_sm_snapshot(&a, &img, &len));
    open_sm(&b, "b");
    fill_store(&b, 3);
    CHECK_OK(pt_shard_sm_snapshot(&b, &before, &blen));
    for (i = 0; i < len; i += 1 + len / 97) {
        img[i] ^= 0x10;
        CHECK_EQ(pt_shard_sm_restore(&b, img, len), -PT_ECORRUPT);
        img[i] ^= 0x10;
    }
    CHECK_EQ(pt_shard_sm_restore(&b, img, len - 1), -PT_ECORRUPT);
    CHECK_EQ(pt_shard_sm_restore(&b, img, 11), -PT_ECORRUPT);
    CHECK_OK(pt_shard_sm_snapshot(&b, &after, &alen));
    CHECK_EQ(alen, blen);
    CHECK_MEM(after, before, blen);
    free(after);
    /* The smallest buffer the stream takes still moves values larger than itself. */
    {
        struct pt_shard_sm c;
        uint8_t *again;
        size_t glen;
        struct img_src src = {img, len};
        open_sm(&c, "c");
        CHECK_OK(pt_shard_sm_restore_stream(&c, img_read, &src, len, chunk, sizeof(chunk)));
        CHECK_OK(pt_shard_sm_snapshot(&c, &again, &glen));
        CHECK_EQ(glen, len);
        CHECK_MEM(again, img, len);
        free(again);
        pt_shard_sm_close(&c);
        CHECK_EQ(pt_shard_sm_snapshot_stream(&a, fd_write, NULL, chunk, 15, NULL), -PT_EINVAL);
    }
    free(img);
    free(before);
    pt_shard_sm_close(&a);
    pt_shard_sm_close(&b);
}

/* Resident pages of mapped files (RssFile of /proc/self/status), in bytes. */
static uint64_t file_rss_bytes(void)
{
    char line[256];
    unsigned long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "RssFile: %lu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb << 10;
}

static int fd_write_null(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    (void)len;
    return 0;
}

/* Reading the whole store maps all of it into the process; a trim gives the pages back to the
 * page cache, so the replica's resident memory does not stay at the size of its store. (The
 * peak during a walk is the kernel's to decide: one that maps a whole large page-cache folio
 * per fault, as Linux 6.18 on ext4, maps most of a store read in key order at once.) */
TEST(shard_trim_gives_back_the_store_pages_a_walk_mapped)
{
    static uint8_t chunk[CHUNK];
    struct pt_shard_sm a;
    uint64_t before, walked, trimmed, sum = 0;
    MDB_txn *t;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;
    open_sm(&a, "a");
    fill_store(&a, STORE_VALUES); /* 64 MB */
    pt_shard_sm_trim(&a);
    before = file_rss_bytes();
    CHECK_EQ(mdb_txn_begin(a.env, NULL, MDB_RDONLY, &t), 0);
    CHECK_EQ(mdb_cursor_open(t, a.spans, &cur), 0);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        sum += ((const uint8_t *)v.mv_data)[v.mv_size - 1];
    mdb_cursor_close(cur);
    mdb_txn_abort(t);
    walked = file_rss_bytes();
    CHECK(sum > 0);
    CHECK_MSG(walked >= before + (16u << 20), "a third of the store mapped only %llu bytes",
              (unsigned long long)(walked - before));
    pt_shard_sm_trim(&a);
    trimmed = file_rss_bytes();
    CHECK_MSG(trimmed + (16u << 20) <= walked,
              "resident file pages %llu after a walk, %llu trimmed", (unsigned long long)walked,
              (unsigned long long)trimmed);
    /* The store reads the same after a trim. */
    CHECK_OK(pt_shard_sm_snapshot_stream(&a, fd_write_null, NULL, chunk, sizeof(chunk), NULL));
    pt_shard_sm_close(&a);
}
