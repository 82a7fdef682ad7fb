/*
 * The mount-state record (docs/SPEC-FS.md 3.1): a cleanly unmounted image mounts from its
 * root pair alone; the first change of a session marks it dirty (once, before anything else);
 * unmount marks it clean; a cut session's image is walked; a stale or malformed record is
 * reported by fsck and never trusted when dirty; the commit path refuses to commit while the
 * record is clean. The power-loss sweeps (test_powerloss.c) cut inside these transitions.
 */
#include <stdio.h>
#include <string.h>

#include "fs/fs_internal.h"
#include "fs_harness.h"
#include "petrel/common.h"
#include "test.h"

static const uint32_t ms_root[2] = {0, 1};

/* The record in force in the root pair (fails the case when there is none). */
static struct pt_mstate ms_on_disk(struct petrel_fs *fs)
{
    struct pt_mdir md;
    struct pt_mstate m;
    CHECK_OK(pt_mdir_fetch(fs, &md, ms_root, NULL));
    CHECK_EQ(pt_mstate_read(fs, &md, &m), 1);
    return m;
}

/* Commit raw records to a pair, past the engine's rules (forging an image). */
static void ms_forge(struct petrel_fs *fs, const uint32_t pair[2], uint8_t type, const void *p,
                     uint32_t len)
{
    struct pt_mdir md;
    struct pt_rec r;
    uint32_t old[2];
    CHECK_OK(pt_mdir_fetch(fs, &md, pair, NULL));
    memset(&r, 0, sizeof(r));
    r.type = type;
    r.seg[0] = p;
    r.seglen[0] = len;
    CHECK_OK(pt_mdir_commit(fs, &md, &r, 1, NULL, old, NULL));
    CHECK_EQ(old[0], PT_NULL);
}

static void ms_forge_record(struct petrel_fs *fs, uint8_t clean, uint32_t next_dirid)
{
    struct pt_mstate m;
    uint8_t buf[PT_MSTATE_SIZE];
    memset(&m, 0, sizeof(m));
    m.clean = clean;
    m.next_dirid = next_dirid;
    pt_mstate_encode(buf, &m);
    ms_forge(fs, ms_root, PT_REC_MSTATE, buf, PT_MSTATE_SIZE);
}

/* A tree of directories and files over several pairs, unmounted cleanly. */
static void ms_populate(struct fsh_dev *d)
{
    char path[48];
    int i;
    CHECK_OK(petrel_fs_mkdir(&d->fs, "a"));
    CHECK_OK(petrel_fs_mkdir(&d->fs, "a/b"));
    CHECK_OK(petrel_fs_mkdir(&d->fs, "c"));
    for (i = 0; i < 40; i++) {
        snprintf(path, sizeof(path), "a/b/file-%02d", i);
        CHECK_OK(fsh_write_pattern(&d->fs, path, (uint64_t)i, 100));
    }
    CHECK_OK(fsh_unmount(d));
}

static void ms_check(struct fsh_dev *d)
{
    CHECK_OK(petrel_fs_check(&d->fs, fsh_check_log, NULL));
}

/* Problems fsck reports, one line each, into a buffer. */
struct ms_problems {
    char text[1024];
    int n;
};
static void ms_problem(void *ctx, const char *problem)
{
    struct ms_problems *p = (struct ms_problems *)ctx;
    size_t len = strlen(p->text);
    p->n++;
    snprintf(p->text + len, sizeof(p->text) - len, "%s\n", problem);
}

/* Format, unmount and mount of a clean image read the root pair only, whatever the tree;
 * a session that changes nothing writes nothing. */
TEST(mstate_clean_mount_reads_root_pair_only)
{
    static struct fsh_dev d;
    struct petrel_fs_info info;
    uint64_t clean_read, walk_read;
    fsh_dev_init(&d, &fsh_geometries[FSH_NOR], test_seed());
    fsh_format_mount(&d);
    CHECK_EQ(ms_on_disk(&d.fs).clean, 1);
    ms_populate(&d);
    petrel_bd_emu_stats_reset(&d.emu);
    CHECK_OK(fsh_mount(&d));
    clean_read = d.emu.stats.read_bytes;
    CHECK(clean_read <= 2u * d.geo.block_size);
    /* a reading session writes nothing, not even at unmount */
    CHECK_OK(petrel_fs_stat(&d.fs, "a/b/file-07", &info));
    CHECK_EQ(fsh_file_is_pattern(&d.fs, "a/b/file-07", 7, 100), 1);
    CHECK_OK(fsh_unmount(&d));
    CHECK_EQ(d.emu.stats.progs, 0);
    CHECK_EQ(d.emu.stats.erases, 0);
    /* the same image, dirty: the walk reads every pair */
    CHECK_OK(fsh_mount(&d));
    ms_forge_record(&d.fs, 0, 0);
    d.mounted = 0; /* a cut session: no unmount */
    petrel_bd_emu_stats_reset(&d.emu);
    CHECK_OK(fsh_mount(&d));
    walk_read = d.emu.stats.read_bytes;
    CHECK_EQ(ms_on_disk(&d.fs).clean, 0);
    test_log("mount read %llu B clean, %llu B walking", (unsigned long long)clean_read,
             (unsigned long long)walk_read);
    CHECK(walk_read > 2 * clean_read);
    ms_check(&d);
    fsh_dev_free(&d);
}

/* The first change of a session commits "dirty" to the root pair and syncs, once; unmount
 * commits "clean" with the session's next directory id, so directories made after the next
 * mount get fresh ids. */
TEST(mstate_session_dirty_once_then_clean)
{
    static struct fsh_dev d;
    struct pt_mstate m;
    uint64_t progs, syncs;
    fsh_dev_init(&d, &fsh_geometries[FSH_NOR], test_seed());
    fsh_format_mount(&d);
    ms_populate(&d);
    CHECK_OK(fsh_mount(&d));
    CHECK_EQ(d.fs.ms_clean, 1);
    syncs = d.emu.stats.syncs;
    CHECK_OK(petrel_fs_mkdir(&d.fs, "d"));
    CHECK_EQ(ms_on_disk(&d.fs).clean, 0);
    CHECK(d.emu.stats.syncs > syncs); /* the mark is durable before the change */
    progs = d.emu.stats.progs;
    CHECK_OK(petrel_fs_setattr(&d.fs, "d", 1, "x", 1));
    CHECK_EQ(d.emu.stats.progs, progs + 1); /* no second mark: one commit */
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    m = ms_on_disk(&d.fs);
    CHECK_EQ(m.clean, 1);
    CHECK_EQ(m.next_dirid, 5); /* a, a/b, c, d */
    CHECK_EQ(d.fs.next_dirid, 5);
    CHECK_OK(petrel_fs_remove(&d.fs, "d"));
    CHECK_OK(petrel_fs_mkdir(&d.fs, "e"));
    CHECK_OK(petrel_fs_mkdir(&d.fs, "e/f"));
    ms_check(&d);
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    CHECK_EQ(ms_on_disk(&d.fs).next_dirid, 7);
    ms_check(&d);
    fsh_dev_free(&d);
}

/* A clean record that does not say what the pairs say is corruption fsck reports: a next
 * directory id already in use, an operation half done. Marked dirty, the same image is walked
 * and checks clean. */
TEST(mstate_stale_clean_record_reported)
{
    static struct fsh_dev d;
    struct ms_problems p;
    struct petrel_fs_gstate g;
    struct pt_lookup lk;
    uint8_t gbuf[PT_GSTATE_SIZE];
    fsh_dev_init(&d, &fsh_geometries[FSH_NOR], test_seed());
    fsh_format_mount(&d);
    ms_populate(&d);

    /* stale directory id: the record claims ids from 2 while a, a/b, c hold 1-3 */
    CHECK_OK(fsh_mount(&d));
    ms_forge_record(&d.fs, 1, 2);
    d.mounted = 0;
    CHECK_OK(fsh_mount(&d));
    CHECK_EQ(d.fs.next_dirid, 2); /* trusted: it says clean */
    memset(&p, 0, sizeof(p));
    CHECK_EQ(petrel_fs_check(&d.fs, ms_problem, &p), -PT_ECORRUPT);
    test_log("%s", p.text);
    CHECK(strstr(p.text, "mount-state record is stale: clean, next directory id 2, id 3 in use"));
    ms_forge_record(&d.fs, 0, 0);
    d.mounted = 0;
    CHECK_OK(fsh_mount(&d));
    CHECK_EQ(d.fs.next_dirid, 4); /* walked */
    ms_check(&d);
    CHECK_OK(fsh_unmount(&d)); /* a session that changed nothing: the record stays dirty */

    /* stale global state: an orphan delta in a directory's pair under a clean record */
    CHECK_OK(fsh_mount(&d));
    CHECK_OK(pt_lookup(&d.fs, "c", &lk, -1));
    CHECK_EQ(lk.exists, 1);
    memset(&g, 0, sizeof(g));
    g.orphans = 1;
    pt_gstate_encode(gbuf, &g);
    ms_forge(&d.fs, lk.e.pair, PT_REC_GDELTA, gbuf, PT_GSTATE_SIZE);
    ms_forge_record(&d.fs, 1, 4); /* the walked session above left the record dirty */
    d.mounted = 0;
    CHECK_OK(fsh_mount(&d));
    memset(&p, 0, sizeof(p));
    CHECK_EQ(petrel_fs_check(&d.fs, ms_problem, &p), -PT_ECORRUPT);
    test_log("%s", p.text);
    CHECK(strstr(p.text, "mount-state record is stale: clean, but an operation is half done"));
    CHECK(strstr(p.text, "global state in use differs from the pairs' deltas"));
    /* dirty: the walk finds the orphan count and the repair settles it */
    ms_forge_record(&d.fs, 0, 0);
    d.mounted = 0;
    CHECK_OK(fsh_mount(&d));
    CHECK_EQ(d.fs.gstate.orphans, 0);
    ms_check(&d);
    CHECK_EQ(fsh_file_is_pattern(&d.fs, "a/b/file-39", 39, 100), 1);
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    CHECK_EQ(ms_on_disk(&d.fs).clean, 1);
    ms_check(&d);
    fsh_dev_free(&d);
}

/* A malformed record (bad state byte, wrong length) is never trusted: mount walks, fsck
 * reports it, and the next session's clean record replaces it. */
TEST(mstate_malformed_record_walked_and_reported)
{
    static struct fsh_dev d;
    static const uint8_t bad_state[PT_MSTATE_SIZE] = {7, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t short_rec[4] = {1, 0, 0, 0};
    struct ms_problems p;
    int k;
    fsh_dev_init(&d, &fsh_geometries[FSH_NOR], test_seed());
    fsh_format_mount(&d);
    ms_populate(&d);
    for (k = 0; k < 2; k++) {
        CHECK_OK(fsh_mount(&d));
        if (k == 0)
            ms_forge(&d.fs, ms_root, PT_REC_MSTATE, bad_state, sizeof(bad_state));
        else
            ms_forge(&d.fs, ms_root, PT_REC_MSTATE, short_rec, sizeof(short_rec));
        d.mounted = 0;
        CHECK_OK(fsh_mount(&d));
        CHECK_EQ(d.fs.ms_clean, 0);
        CHECK_EQ(d.fs.next_dirid, 4); /* walked */
        memset(&p, 0, sizeof(p));
        CHECK_EQ(petrel_fs_check(&d.fs, ms_problem, &p), -PT_ECORRUPT);
        CHECK(strstr(p.text, "mount-state record malformed"));
        CHECK_OK(petrel_fs_mkdir(&d.fs, "x"));
        CHECK_OK(petrel_fs_remove(&d.fs, "x"));
        CHECK_OK(fsh_unmount(&d));
        CHECK_OK(fsh_mount(&d));
        CHECK_EQ(ms_on_disk(&d.fs).clean, 1);
        ms_check(&d);
        CHECK_OK(fsh_unmount(&d));
    }
    fsh_dev_free(&d);
}

/* The commit path refuses to commit while the record is clean (a changing call that forgot
 * the mark would leave it stale), and programs nothing. */
TEST(mstate_commit_before_mark_refused)
{
    static struct fsh_dev d;
    struct pt_mdir md;
    uint64_t progs;
    fsh_dev_init(&d, &fsh_geometries[FSH_NOR], test_seed());
    fsh_format_mount(&d);
    ms_populate(&d);
    CHECK_OK(fsh_mount(&d));
    CHECK_OK(pt_mdir_fetch(&d.fs, &md, ms_root, NULL));
    progs = d.emu.stats.progs;
    CHECK_EQ(pt_fs_commit(&d.fs, &md, NULL, 0), -PT_EINVAL);
    CHECK_EQ(d.emu.stats.progs, progs);
    CHECK_OK(pt_mstate_mark_dirty(&d.fs));
    CHECK_OK(pt_mdir_fetch(&d.fs, &md, ms_root, NULL));
    CHECK_OK(pt_fs_commit(&d.fs, &md, NULL, 0));
    ms_check(&d);
    fsh_dev_free(&d);
}

/* A failing dirty mark fails the call and changes nothing; the next call marks and works. */
TEST(mstate_mark_failure_fails_the_call)
{
    static struct fsh_dev d;
    struct petrel_fs_info info;
    fsh_dev_init(&d, &fsh_geometries[FSH_NOR], test_seed());
    fsh_format_mount(&d);
    ms_populate(&d);
    CHECK_OK(fsh_mount(&d));
    petrel_bd_emu_powerloss(&d.emu, 1, PETREL_BD_EMU_POWERLOSS_ATOMIC); /* the next prog dies */
    CHECK(petrel_fs_mkdir(&d.fs, "z") < 0);
    CHECK_EQ(d.fs.ms_clean, 1);
    fsh_reboot(&d);
    CHECK_OK(fsh_mount(&d));
    CHECK_EQ(petrel_fs_stat(&d.fs, "z", &info), -PT_ENOENT);
    CHECK_EQ(d.fs.ms_clean, 1); /* the cut mark never landed: still clean and right */
    ms_check(&d);
    CHECK_OK(petrel_fs_mkdir(&d.fs, "z"));
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    CHECK_OK(petrel_fs_stat(&d.fs, "z", &info));
    ms_check(&d);
    fsh_dev_free(&d);
}

/* ---- fingers saved with the clean record (docs/SPEC-FS.md 3.2) ---- */

#define MSF_BLOCKS 512
#define MSF_FILES 2500

/* Rewrite the superblock of the mounted, fresh filesystem as format 3.0 and remount: saved
 * fingers are a 3.x image's (a 4.x image's directories have indexes instead). */
static void msf_make_3x(struct fsh_dev *d)
{
    static const uint32_t root[2] = {0, 1};
    struct pt_mdir md;
    struct pt_rec r;
    struct pt_rec_ref rec = {0, 0, 0};
    uint8_t sb[PT_SB_SIZE];
    uint32_t old[2], pos = 0;
    int found = 0;
    CHECK_OK(pt_mdir_fetch(&d->fs, &md, root, NULL));
    while (pt_rec_next(&d->fs, &md, &pos, &rec) == 1)
        if (rec.type == PT_REC_SUPERBLOCK) {
            CHECK_OK(pt_read(&d->fs, md.pair[0], rec.off, sb, PT_SB_SIZE, PT_SB_SIZE));
            found = 1;
        }
    CHECK(found);
    pt_put_le32(sb + 8, 0x00030000u);
    memset(&r, 0, sizeof(r));
    r.type = PT_REC_SUPERBLOCK;
    r.seg[0] = sb;
    r.seglen[0] = PT_SB_SIZE;
    CHECK_OK(pt_mdir_commit(&d->fs, &md, &r, 1, NULL, old, NULL));
    CHECK_OK(fsh_unmount(d));
    CHECK_OK(fsh_mount(d));
    CHECK_EQ(d->fs.image_version, 0x00030000u);
}

/* NOR 16/16/4096 x 512 with a pair memory of one slot per two blocks (as the image tools
 * configure), a 3.0 image, a directory d of MSF_FILES empty files, unmounted cleanly. */
static void msf_setup(struct fsh_dev *d)
{
    static struct petrel_fs_link links[MSF_BLOCKS / 2];
    static uint32_t index[MSF_BLOCKS];
    struct fsh_geometry g = fsh_geometries[FSH_NOR];
    struct petrel_fs_info info;
    char path[32];
    int i;
    g.block_count = MSF_BLOCKS;
    fsh_dev_init(d, &g, test_seed());
    d->cfg.link_buffer = links;
    d->cfg.link_count = MSF_BLOCKS / 2;
    d->cfg.link_index = index;
    fsh_format_mount(d);
    msf_make_3x(d);
    CHECK_OK(petrel_fs_mkdir(&d->fs, "d"));
    for (i = 0; i < MSF_FILES; i++) {
        snprintf(path, sizeof(path), "d/f%05d", i);
        CHECK_OK(fsh_write_file(&d->fs, path, NULL, 0));
    }
    /* the last walk is in the root directory: the fingers still go to d, the directory of
     * the longest walks */
    CHECK_OK(petrel_fs_stat(&d->fs, "d", &info));
    CHECK_OK(fsh_unmount(d));
}

/* After a clean unmount, the first lookups in a directory of many pairs start at a saved
 * finger: none walks the directory from its head. */
TEST(mstate_fingers_bound_first_lookups)
{
    static struct fsh_dev d;
    struct petrel_fs_info info;
    uint64_t max = 0, total = 0;
    char path[32];
    int i;
    msf_setup(&d);
    CHECK_OK(fsh_mount(&d));
    CHECK(d.fs.dfg_n >= 8);
    ms_check(&d);
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    for (i = 0; i < 50; i++) {
        uint64_t before = d.emu.stats.read_bytes;
        snprintf(path, sizeof(path), "d/f%05d", (i * 7919) % MSF_FILES);
        CHECK_OK(petrel_fs_stat(&d.fs, path, &info));
        if (d.emu.stats.read_bytes - before > max) max = d.emu.stats.read_bytes - before;
        total += d.emu.stats.read_bytes - before;
    }
    test_log("%u fingers; 50 first lookups: max %llu B, mean %llu B", (unsigned)d.fs.dfg_n,
             (unsigned long long)max, (unsigned long long)(total / 50));
    /* every pair a finger: the lookup reads the directory's head and the name's pair (and
     * one more at a finger's rounded bound) */
    CHECK(max <= 4u * d.geo.block_size);
    fsh_dev_free(&d);
}

/* A pair a finger names is dropped (its names removed); a name created afterwards in its
 * former range is found: the fingers are not used once any pair has moved. */
TEST(mstate_fingers_dropped_after_layout_change)
{
    static struct fsh_dev d;
    struct petrel_fs_info info;
    struct pt_lookup lk;
    struct pt_mdir md;
    uint8_t e[PT_FINGER_SIZE];
    uint32_t pair[2];
    char path[32];
    int i, removed = 0;
    msf_setup(&d);
    CHECK_OK(fsh_mount(&d));
    CHECK(d.fs.dfg_n >= 8);
    /* the pair of the 5th finger and its range */
    CHECK_OK(pt_read(&d.fs, d.fs.dfg_block, d.fs.dfg_off + PT_FINGER_SIZE * 4, e,
                     PT_FINGER_SIZE, PT_FINGER_SIZE));
    pair[0] = pt_get_le32(e + 4);
    pair[1] = pt_get_le32(e + 8);
    CHECK_OK(pt_mdir_fetch(&d.fs, &md, pair, NULL));
    CHECK(md.next_cont);
    for (i = 0; i < MSF_FILES; i++) {
        uint64_t h;
        snprintf(path, sizeof(path), "f%05d", i);
        h = petrel_hash64(path, strlen(path), 0);
        if (h < md.lo || h >= md.next_split) continue;
        snprintf(path, sizeof(path), "d/f%05d", i);
        CHECK_OK(petrel_fs_remove(&d.fs, path));
        removed++;
    }
    CHECK(removed > 0);
    CHECK_EQ(pt_lookup(&d.fs, "d", &lk, -1), 0); /* the pair is gone from the thread */
    /* a new name in the range the dropped pair held */
    for (i = 0;; i++) {
        uint64_t h;
        snprintf(path, sizeof(path), "n%06d", i);
        h = petrel_hash64(path, strlen(path), 0);
        if (h >= md.lo && h < md.next_split && h >= ((uint64_t)pt_get_le32(e) << 32)) break;
    }
    snprintf(path, sizeof(path), "d/n%06d", i);
    CHECK_OK(fsh_write_file(&d.fs, path, "x", 1));
    CHECK_OK(petrel_fs_stat(&d.fs, path, &info));
    ms_check(&d);
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    CHECK_OK(petrel_fs_stat(&d.fs, path, &info));
    ms_check(&d);
    fsh_dev_free(&d);
}

/* A clean image whose fingers name the wrong pairs (forged) is reported by fsck. */
TEST(mstate_fingers_forged_reported)
{
    static struct fsh_dev d;
    static uint8_t rec[PT_FINGERS_HDR + PT_FINGER_SIZE * PT_FINGERS_MAX];
    struct ms_problems p;
    uint32_t n, len;
    msf_setup(&d);
    CHECK_OK(fsh_mount(&d));
    n = d.fs.dfg_n;
    CHECK(n >= 8);
    len = PT_FINGERS_HDR + PT_FINGER_SIZE * n;
    CHECK_OK(pt_read(&d.fs, d.fs.dfg_block, d.fs.dfg_off - PT_FINGERS_HDR, rec, len, len));
    /* the 3rd finger names the 4th finger's pair */
    memcpy(rec + PT_FINGERS_HDR + PT_FINGER_SIZE * 2 + 4, rec + PT_FINGERS_HDR + PT_FINGER_SIZE * 3 + 4,
           8);
    ms_forge(&d.fs, ms_root, PT_REC_FINGERS, rec, len);
    d.mounted = 0;
    CHECK_OK(fsh_mount(&d));
    memset(&p, 0, sizeof(p));
    CHECK_EQ(petrel_fs_check(&d.fs, ms_problem, &p), -PT_ECORRUPT);
    test_log("%s", p.text);
    CHECK(strstr(p.text, "fingers"));
    fsh_dev_free(&d);
}

/* The FINGERS payload measured with a dry writer (pt_fingers_emit with a length it cannot
 * match reports it: the writer's offset says what it wrote). */
static uint32_t msf_fingers_len(struct petrel_fs *fs)
{
    struct pt_writer w;
    pt_writer_init(fs, &w, 0, 0, PT_WRITER_MEASURE);
    (void)pt_fingers_emit(fs, &w, 0);
    return w.off;
}

/* Unmount writes the FINGERS record straight from the remembered links (no buffer), so the
 * links must stay put while that commit measures and writes it (a compaction may fetch and
 * remember other pairs in between): while pinned, a pair not remembered yet replaces none,
 * and the payload keeps its length; unpinned, the same pairs replace the directory's links. */
TEST(mstate_fingers_links_pinned_during_commit)
{
    static struct fsh_dev d;
    struct petrel_fs_dir dir;
    struct petrel_fs_info info;
    struct pt_mdir fake;
    uint32_t len, i;
    msf_setup(&d);
    CHECK_OK(fsh_mount(&d));
    /* remember every pair of d, and make it the last directory walked */
    CHECK_OK(petrel_fs_dir_open(&d.fs, &dir, "d"));
    while (petrel_fs_dir_read(&d.fs, &dir, &info) == 1) {
    }
    CHECK_OK(petrel_fs_dir_close(&d.fs, &dir));
    CHECK_OK(petrel_fs_stat(&d.fs, "d/f02499", &info));
    d.fs.links_pinned = 1;
    len = msf_fingers_len(&d.fs);
    test_log("FINGERS payload %u B from %u links", (unsigned)len, (unsigned)d.fs.nlinks);
    CHECK(len >= PT_FINGERS_HDR + 8 * PT_FINGER_SIZE);
    /* pairs {b, b + nlinks} that no link names: one for every slot (link_index: a new
     * pair's slot is its lower block modulo the table) */
    memset(&fake, 0, sizeof(fake));
    for (i = 0; i < d.fs.nlinks; i++) {
        fake.pair[0] = i;
        fake.pair[1] = i + d.fs.nlinks;
        pt_links_remember(&d.fs, &fake);
    }
    CHECK_EQ(msf_fingers_len(&d.fs), len);
    {
        struct pt_writer w;
        pt_writer_init(&d.fs, &w, 0, 0, PT_WRITER_MEASURE);
        CHECK_OK(pt_fingers_emit(&d.fs, &w, len));
    }
    d.fs.links_pinned = 0;
    for (i = 0; i < d.fs.nlinks; i++) {
        fake.pair[0] = i;
        fake.pair[1] = i + d.fs.nlinks;
        pt_links_remember(&d.fs, &fake);
    }
    d.fs.links_pinned = 1;
    CHECK(msf_fingers_len(&d.fs) != len);
    {
        /* a payload that no longer has the measured length fails the commit, never a
         * record whose header lies */
        struct pt_writer w;
        pt_writer_init(&d.fs, &w, 0, 0, PT_WRITER_MEASURE);
        CHECK_EQ(pt_fingers_emit(&d.fs, &w, len), -PT_ECORRUPT);
    }
    d.fs.links_pinned = 0;
    /* the links are a cache: the clean unmount still writes what they now say */
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    ms_check(&d);
    fsh_dev_free(&d);
}
