/*
 * The directory index (docs/SPEC-FS.md 4.1): a directory of many pairs gets an INDEX record in
 * its head; lookups right after a mount start at the nearest indexed pair and read a bounded
 * number of pairs; splits add entries, drops and moves take them out first; fsck checks every
 * entry and reports a forged one, and a lookup that meets an entry that does not match its
 * pair starts from the head instead (the names stay found).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"
#include "fs_harness.h"
#include "petrel/common.h"
#include "test.h"

/* The chain of directory path: pairs and their lowest hashes, and the head's index. */
struct ix_view {
    uint32_t npairs, nindex;
    uint32_t pair[512][2];
    uint64_t lo[512];
    uint32_t ikey[512], ipair[512][2];
    uint32_t head[2];
    uint32_t index_block, index_off, index_len;
};

static void ix_view(struct fsh_dev *d, const char *path, struct ix_view *v)
{
    struct pt_lookup lk;
    struct pt_mdir md;
    uint32_t i;
    memset(v, 0, sizeof(*v));
    CHECK_OK(pt_lookup(&d->fs, path, &lk, -1));
    CHECK_EQ(lk.exists, 1);
    CHECK_OK(pt_mdir_fetch(&d->fs, &md, lk.e.pair, NULL));
    memcpy(v->head, md.pair, sizeof(v->head));
    v->index_block = md.pair[0];
    v->index_off = md.index_off;
    v->index_len = md.index_len;
    v->nindex = md.index_len / PT_INDEX_ENTRY;
    CHECK(v->nindex <= 512);
    for (i = 0; i < v->nindex; i++) {
        uint8_t e[PT_INDEX_ENTRY];
        CHECK_OK(pt_read(&d->fs, md.pair[0], md.index_off + i * PT_INDEX_ENTRY, e, PT_INDEX_ENTRY,
                         PT_INDEX_ENTRY));
        v->ikey[i] = pt_get_le32(e);
        v->ipair[i][0] = pt_get_le32(e + 4);
        v->ipair[i][1] = pt_get_le32(e + 8);
    }
    for (;;) {
        uint32_t next[2];
        CHECK(v->npairs < 512);
        memcpy(v->pair[v->npairs], md.pair, sizeof(md.pair));
        v->lo[v->npairs] = md.lo;
        v->npairs++;
        if (!md.next_cont) break;
        next[0] = md.next[0];
        next[1] = md.next[1];
        CHECK_OK(pt_mdir_fetch(&d->fs, &md, next, NULL));
    }
}

/* Position in the chain of the pair an index entry names, or -1. */
static int ix_pos(const struct ix_view *v, const uint32_t pair[2])
{
    uint32_t i;
    for (i = 0; i < v->npairs; i++)
        if (pt_pair_eq(v->pair[i], pair)) return (int)i;
    return -1;
}

/* The invariant, as the test sees it: every entry names a chain pair with that key. */
static void ix_check_invariant(const struct ix_view *v, const char *what)
{
    uint32_t i;
    for (i = 0; i < v->nindex; i++) {
        int p = ix_pos(v, v->ipair[i]), ok;
        CHECK_MSG(p > 0, "%s: index entry %u names {%u,%u}, not a continuation pair", what,
                  (unsigned)i, (unsigned)v->ipair[i][0], (unsigned)v->ipair[i][1]);
        CHECK_MSG(pt_index_lo_hi(v->lo[p], &ok) == v->ikey[i] && ok,
                  "%s: index entry %u key %08x, its pair's lo %016llx", what, (unsigned)i,
                  (unsigned)v->ikey[i], (unsigned long long)v->lo[p]);
        CHECK_MSG(i == 0 || v->ikey[i] > v->ikey[i - 1], "%s: entries out of order", what);
    }
}

/* The largest walk a lookup can make: pairs from the nearest entry (or the head) to the
 * last pair before the next entry. */
static uint32_t ix_max_gap(const struct ix_view *v)
{
    uint32_t i, prev = 0, gap = 0;
    for (i = 0; i < v->nindex; i++) {
        int p = ix_pos(v, v->ipair[i]);
        if (p < 0) continue;
        if ((uint32_t)p - prev > gap) gap = (uint32_t)p - prev;
        prev = (uint32_t)p;
    }
    if (v->npairs - prev > gap) gap = v->npairs - prev;
    return gap;
}

/* NOR, 512 B blocks: a pair holds a handful of names, so a few hundred make a long chain. */
static const struct fsh_geometry ix_geo = {
    "ix512", 16, 16, 512, 1024, 0xff, PETREL_BD_EMU_PROG_NOR, 512, 128, 0};

static void ix_create(struct fsh_dev *d, char kind, uint32_t from, uint32_t to)
{
    uint32_t i;
    char path[32];
    for (i = from; i < to; i++) {
        snprintf(path, sizeof(path), "d/%c%04u", kind, (unsigned)i);
        CHECK_OK(fsh_write_file(&d->fs, path, NULL, 0));
    }
}

static void ix_all_found(struct fsh_dev *d, char kind, uint32_t from, uint32_t to, uint32_t skip3)
{
    uint32_t i;
    char path[32];
    struct petrel_fs_info info;
    for (i = from; i < to; i++) {
        int err;
        snprintf(path, sizeof(path), "d/%c%04u", kind, (unsigned)i);
        err = petrel_fs_stat(&d->fs, path, &info);
        if (skip3 && i % 3 == 0)
            CHECK_MSG(err == -PT_ENOENT, "%s: removed, stat gives %s", path, petrel_errname(err));
        else
            CHECK_MSG(err == 0, "%s: %s", path, petrel_errname(err));
    }
}

/* A chain of a few hundred pairs gets an index whose entries all hold the invariant and cut
 * the chain into short walks; after a clean remount, each lookup reads a few pairs, never the
 * chain; churn (removes that empty pairs, creates that split them) keeps the invariant. */
TEST(fs_index_bounds_lookups)
{
    static struct fsh_dev d;
    static struct ix_view v;
    uint32_t i, n = 1500, max_read = 0, pairs;
    char path[32];
    fsh_dev_init(&d, &ix_geo, test_seed());
    fsh_format_mount(&d);
    CHECK_OK(petrel_fs_mkdir(&d.fs, "d"));
    ix_create(&d, 'f', 0, n);
    ix_view(&d, "d", &v);
    test_log("%u names: %u pairs, %u index entries, longest walk %u pairs", (unsigned)n,
             (unsigned)v.npairs, (unsigned)v.nindex, (unsigned)ix_max_gap(&v));
    pairs = v.npairs;
    CHECK(v.npairs > 100);
    CHECK(v.nindex >= 8);
    ix_check_invariant(&v, "after the creates");
    CHECK(ix_max_gap(&v) <= v.npairs / 4);
    CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));

    /* cold lookups: the pair memory is empty after a mount from the clean record */
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    for (i = 0; i < 60; i++) {
        uint64_t before = d.emu.stats.read_bytes, r;
        struct petrel_fs_info info;
        snprintf(path, sizeof(path), "d/f%04u", (unsigned)((i * 211u) % n));
        CHECK_OK(petrel_fs_stat(&d.fs, path, &info));
        r = d.emu.stats.read_bytes - before;
        if (r > max_read) max_read = (uint32_t)r;
    }
    test_log("cold lookups read at most %u B (the chain: %u pairs of 512 B)", (unsigned)max_read,
             (unsigned)pairs);
    /* a walk from the head would read about a pair per 512 B: the bound is a fraction */
    CHECK(max_read <= 512 * (pairs / 3));

    /* churn: every third name goes, new names come */
    for (i = 0; i < n; i += 3) {
        snprintf(path, sizeof(path), "d/f%04u", (unsigned)i);
        CHECK_OK(petrel_fs_remove(&d.fs, path));
    }
    ix_view(&d, "d", &v);
    ix_check_invariant(&v, "after the removes");
    ix_create(&d, 'g', 0, n / 3);
    ix_view(&d, "d", &v);
    ix_check_invariant(&v, "after the churn");
    test_log("after churn: %u pairs, %u index entries, longest walk %u", (unsigned)v.npairs,
             (unsigned)v.nindex, (unsigned)ix_max_gap(&v));
    CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    ix_all_found(&d, 'f', 0, n, 1);
    ix_all_found(&d, 'g', 0, n / 3, 0);
    CHECK_OK(fsh_unmount(&d));
    fsh_dev_free(&d);
}

/* Commit a forged INDEX record to the head of d: entries as given. */
static void ix_forge(struct fsh_dev *d, const struct ix_view *v, const uint32_t *keys,
                     const uint32_t (*pairs)[2], uint32_t n)
{
    uint8_t buf[64 * PT_INDEX_ENTRY];
    struct pt_mdir md;
    struct pt_rec r;
    uint32_t old[2], i;
    CHECK(n <= 64);
    for (i = 0; i < n; i++) {
        pt_put_le32(buf + i * PT_INDEX_ENTRY, keys[i]);
        pt_put_le32(buf + i * PT_INDEX_ENTRY + 4, pairs[i][0]);
        pt_put_le32(buf + i * PT_INDEX_ENTRY + 8, pairs[i][1]);
    }
    CHECK_OK(pt_mdir_fetch(&d->fs, &md, v->head, NULL));
    memset(&r, 0, sizeof(r));
    r.type = PT_REC_INDEX;
    r.seg[0] = buf;
    r.seglen[0] = n * PT_INDEX_ENTRY;
    CHECK_OK(pt_mdir_commit(&d->fs, &md, &r, 1, NULL, old, NULL));
}

struct ix_problems {
    int index;
};

static void ix_collect(void *ctx, const char *problem)
{
    struct ix_problems *p = (struct ix_problems *)ctx;
    test_log("fsck: %s", problem);
    if (strstr(problem, "index")) p->index++;
}

/* Forged entries: a key below its pair's lowest hash (a lookup between the two would start
 * past its name), a pair off the chain (blocks of nothing), and a key above the pair's (a
 * lookup still finds its names). fsck reports each; every name stays found. */
TEST(fs_index_forged_entries_reported)
{
    static struct fsh_dev d;
    static struct ix_view v;
    uint32_t n = 600, keys[3], pairs[3][2], k, p;
    struct ix_problems probs;
    int ok, round;
    fsh_dev_init(&d, &ix_geo, test_seed());
    fsh_format_mount(&d);
    CHECK_OK(petrel_fs_mkdir(&d.fs, "d"));
    ix_create(&d, 'f', 0, n);
    ix_view(&d, "d", &v);
    CHECK(v.npairs > 20);
    for (round = 0; round < 3; round++) {
        p = v.npairs / 2 + (uint32_t)round;
        k = pt_index_lo_hi(v.lo[p], &ok);
        CHECK(ok && k > 2);
        keys[0] = k;
        memcpy(pairs[0], v.pair[p], sizeof(pairs[0]));
        if (round == 0) keys[0] = pt_index_lo_hi(v.lo[p - 1], &ok) + 1; /* below its lo */
        if (round == 1) {
            pairs[0][0] = d.fs.block_count - 2; /* never written: no pair */
            pairs[0][1] = d.fs.block_count - 1;
        }
        if (round == 2) keys[0] = k + 1; /* above: harmless, still wrong */
        ix_forge(&d, &v, keys, (const uint32_t(*)[2])pairs, 1);
        memset(&probs, 0, sizeof(probs));
        CHECK_EQ(petrel_fs_check(&d.fs, ix_collect, &probs), -PT_ECORRUPT);
        CHECK_MSG(probs.index >= 1, "round %d: fsck did not report the forged entry", round);
        ix_all_found(&d, 'f', 0, n, 0);
        CHECK_OK(fsh_unmount(&d));
        CHECK_OK(fsh_mount(&d));
        ix_all_found(&d, 'f', 0, n, 0);
    }
    CHECK_OK(fsh_unmount(&d));
    fsh_dev_free(&d);
}

/* A 3.x image (its superblock's version) is read and written without an index: a 3.x engine
 * would change its pairs without keeping one. */
TEST(fs_index_none_on_3x_images)
{
    static struct fsh_dev d;
    static struct ix_view v;
    struct pt_mdir md;
    struct pt_rec r;
    uint8_t sb[PT_SB_SIZE];
    uint32_t old[2];
    struct pt_rec_ref rec = {0, 0, 0};
    uint32_t pos = 0;
    int found = 0;
    fsh_dev_init(&d, &ix_geo, test_seed());
    fsh_format_mount(&d);
    /* rewrite the superblock as 3.0 */
    CHECK_OK(pt_mdir_fetch(&d.fs, &md, (const uint32_t[2]){0, 1}, NULL));
    while (pt_rec_next(&d.fs, &md, &pos, &rec) == 1)
        if (rec.type == PT_REC_SUPERBLOCK) {
            CHECK_OK(pt_read(&d.fs, md.pair[0], rec.off, sb, PT_SB_SIZE, PT_SB_SIZE));
            found = 1;
        }
    CHECK(found);
    pt_put_le32(sb + 8, 0x00030000u);
    memset(&r, 0, sizeof(r));
    r.type = PT_REC_SUPERBLOCK;
    r.seg[0] = sb;
    r.seglen[0] = PT_SB_SIZE;
    d.fs.ms_clean = 0;
    CHECK_OK(pt_mdir_commit(&d.fs, &md, &r, 1, NULL, old, NULL));
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    CHECK_EQ(d.fs.image_version, 0x00030000u);
    CHECK_OK(petrel_fs_mkdir(&d.fs, "d"));
    ix_create(&d, 'f', 0, 600);
    ix_view(&d, "d", &v);
    CHECK(v.npairs > 20);
    CHECK_EQ(v.nindex, 0);
    CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
    CHECK_OK(fsh_unmount(&d));
    fsh_dev_free(&d);
}

/* Counts the engine's index log lines of each kind. */
struct ix_events {
    int add, remove, drop_link, move_link;
};
static struct ix_events ix_ev;

static void ix_log(void *ctx, enum petrel_log_level level, const char *module, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)module;
    if (!strstr(msg, "index of")) return;
    if (strstr(msg, ": add ")) ix_ev.add++;
    if (strstr(msg, ": remove ")) ix_ev.remove++;
    if (strstr(msg, "with its link") && strstr(msg, ": drop ")) ix_ev.drop_link++;
    if (strstr(msg, "with its link") && strstr(msg, ": move ")) ix_ev.move_link++;
}

static int ix_hash_cmp(const void *a, const void *b)
{
    char na[16], nb[16];
    uint64_t ha, hb;
    snprintf(na, sizeof(na), "f%04u", *(const unsigned *)a);
    snprintf(nb, sizeof(nb), "f%04u", *(const unsigned *)b);
    ha = petrel_hash64(na, strlen(na), 0);
    hb = petrel_hash64(nb, strlen(nb), 0);
    return ha < hb ? -1 : ha > hb;
}

/* Names removed from the lowest hash up: the pairs next to the head empty one after the
 * other, so indexed pairs end up right after the head and are dropped by the head's own
 * commit (THREAD and INDEX together); with block_cycles 8 the pairs written move too, some
 * right after the head (re-pointed in the head's THREAD commit), others further (entry out
 * first, back after). The invariant holds after every step, every name left is found. */
TEST(fs_index_drops_and_moves_keep_invariant)
{
    static struct fsh_dev d;
    static struct ix_view v;
    static unsigned order[700];
    uint32_t n = 700, i, j;
    char path[32];
    fsh_dev_init(&d, &ix_geo, test_seed());
    d.cfg.block_cycles = 8;
    fsh_format_mount(&d);
    CHECK_OK(petrel_fs_mkdir(&d.fs, "d"));
    ix_create(&d, 'f', 0, n);
    ix_view(&d, "d", &v);
    CHECK(v.nindex >= 4);
    for (i = 0; i < n; i++)
        order[i] = i;
    qsort(order, n, sizeof(order[0]), ix_hash_cmp);
    memset(&ix_ev, 0, sizeof(ix_ev));
    petrel_log_set(ix_log, NULL, PT_LOG_DEBUG);
    for (i = 0; i + 40 < n; i++) {
        uint8_t val[4] = {(uint8_t)i, 0, 0, 0};
        snprintf(path, sizeof(path), "d/f%04u", order[i]);
        CHECK_OK(petrel_fs_remove(&d.fs, path));
        /* churn in the pair now next to the head: it compacts, and moves every 8 */
        snprintf(path, sizeof(path), "d/f%04u", order[i + 1]);
        for (j = 0; j < 12; j++) {
            val[1] = (uint8_t)j;
            CHECK_OK(petrel_fs_setattr(&d.fs, path, 1, val, 4));
        }
        if (i % 7 == 0) {
            ix_view(&d, "d", &v);
            ix_check_invariant(&v, path);
        }
    }
    petrel_log_set(NULL, NULL, PT_LOG_ERROR);
    test_log("index events: %d adds, %d removes, %d drops and %d moves with the head's link",
             ix_ev.add, ix_ev.remove, ix_ev.drop_link, ix_ev.move_link);
    /* counted from the engine's log (so mk/switch-matrix.sh skips this case without one) */
    CHECK(ix_ev.drop_link > 0);
    CHECK(ix_ev.move_link > 0);
    CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    for (i = 0; i < n; i++) {
        struct petrel_fs_info info;
        snprintf(path, sizeof(path), "d/f%04u", order[i]);
        CHECK_EQ(petrel_fs_stat(&d.fs, path, &info), i + 40 < n ? -PT_ENOENT : 0);
    }
    CHECK_OK(fsh_unmount(&d));
    fsh_dev_free(&d);
}
