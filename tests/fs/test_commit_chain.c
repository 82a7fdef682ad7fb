/*
 * The commit chain of format 2.0 (docs/SPEC-FS.md 2.2): a commit left in a block from an
 * earlier use — or any bytes an erase leaves — never extends the current log.
 *   - the issue 9 reproduction (SD-card-like media, many commits per block), on every
 *     erase behaviour;
 *   - a hand-built image whose log is followed by a perfectly valid stale commit (right chain
 *     CRC): the fcrc end-of-log rule must ignore it, and a new commit over it must win;
 *   - a forced fcrc collision (the next commit's first bytes identical to the stale bytes
 *     under them): the writer must compact instead of appending an invisible commit;
 *   - images of other format versions: 1.0 refused with -PT_EVERSION and one message naming
 *     both versions, a newer minor accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_harness.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/hash.h"
#include "test.h"

/* --- the issue 9 reproduction ------------------------------------------------------------ */

static void many_files_in_one_block(int32_t erase_value, int report_no_erase)
{
    const struct fsh_geometry g = {
        "sd", 16, 16, 4096, 512, erase_value, PETREL_BD_EMU_PROG_NOR, 256, 64, report_no_erase};
    struct fsh_dev d;
    struct petrel_fs_info info;
    int i, pass;
    uint8_t buf[64];

    fsh_dev_init(&d, &g, test_seed());
    d.cfg.block_cycles = 500;
    fsh_format_mount(&d);
    CHECK_OK(petrel_fs_mkdir(&d.fs, "/d"));
    for (i = 0; i < 50; i++) {
        char path[32];
        struct petrel_fs_file f;
        snprintf(path, sizeof(path), "/d/file-%04d", i);
        fsh_pattern(buf, 48, 100 + (uint64_t)i, 0);
        CHECK_OK(petrel_fs_file_open(&d.fs, &f, path, PETREL_O_WRONLY | PETREL_O_CREAT));
        CHECK_EQ(petrel_fs_file_write(&d.fs, &f, buf, 48), 48);
        CHECK_OK(petrel_fs_file_sync(&d.fs, &f));
        CHECK_OK(petrel_fs_file_close(&d.fs, &f));
    }
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < 50; i++) {
            char path[32];
            snprintf(path, sizeof(path), "/d/file-%04d", i);
            CHECK_OK(petrel_fs_stat(&d.fs, path, &info));
            CHECK_MSG(info.size == 48, "%s: size %llu, not 48 (pass %d)", path,
                      (unsigned long long)info.size, pass);
            CHECK_MSG(fsh_file_is_pattern(&d.fs, path, 100 + (uint64_t)i, 48) == 1,
                      "%s: wrong bytes (pass %d)", path, pass);
        }
        CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
        CHECK_OK(fsh_unmount(&d));
        CHECK_OK(fsh_mount(&d));
    }
    fsh_dev_free(&d);
}

TEST(chain_issue9_keep_many_files)
{
    many_files_in_one_block(PETREL_BD_EMU_ERASE_KEEP, 0);
}

TEST(chain_issue9_random_many_files)
{
    many_files_in_one_block(PETREL_BD_EMU_ERASE_RANDOM, 0);
}

TEST(chain_issue9_ff_many_files)
{
    many_files_in_one_block(0xff, 0);
}

TEST(chain_issue9_00_many_files)
{
    many_files_in_one_block(0x00, 0);
}

TEST(chain_issue9_unreported_erase_many_files)
{
    many_files_in_one_block(0xff, 1);
}

/* --- hand-built images ------------------------------------------------------------------- */

#define IMG_BS 512u
#define IMG_BC 16u
#define IMG_PROG 16u

/* One block being laid out: records are appended at off; crc is the running commit CRC. */
struct img_block {
    uint8_t *b;
    uint32_t off, crc;
};

static void img_put(struct img_block *ib, const void *p, uint32_t n)
{
    memcpy(ib->b + ib->off, p, n);
    ib->crc = petrel_crc32c(ib->crc, p, n);
    ib->off += n;
}

static void img_rec(struct img_block *ib, uint8_t type, const void *payload, uint32_t len)
{
    uint8_t hdr[4];
    hdr[0] = type;
    hdr[1] = (uint8_t)len;
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)(len >> 16);
    img_put(ib, hdr, 4);
    img_put(ib, payload, len);
}

/* The CRC record: fcrc over the 16 bytes after the padded commit as they are in the buffer
 * now. Returns the commit's crc (the next commit's seed). */
static uint32_t img_close(struct img_block *ib)
{
    uint32_t end = ib->off + 12, pad = (IMG_PROG - end % IMG_PROG) % IMG_PROG, crc;
    uint8_t hdr[4], v[4];
    hdr[0] = 0x7f;
    hdr[1] = (uint8_t)(8 + pad);
    hdr[2] = hdr[3] = 0;
    img_put(ib, hdr, 4);
    pt_put_le32(v, end + pad + 16 <= IMG_BS ? petrel_crc32c(0, ib->b + end + pad, 16) : 0);
    img_put(ib, v, 4);
    crc = ib->crc;
    pt_put_le32(v, crc);
    memcpy(ib->b + ib->off, v, 4);
    memset(ib->b + ib->off + 4, 0, pad);
    ib->off += 4 + pad;
    ib->crc = crc;
    return crc;
}

static void img_superblock(struct img_block *ib, uint32_t version)
{
    uint8_t sb[36];
    memset(sb, 0, sizeof(sb));
    memcpy(sb, "petrel\0\0", 8);
    pt_put_le32(sb + 8, version);
    pt_put_le32(sb + 12, IMG_BS);
    pt_put_le32(sb + 16, IMG_BC);
    pt_put_le32(sb + 20, 256); /* page: 16 doubled up to 256 */
    pt_put_le16(sb + 24, 255);
    pt_put_le16(sb + 26, 64); /* min(252, 512/8, 1024) */
    pt_put_le32(sb + 28, 64);
    pt_put_le32(sb + 32, 0x7fffffff);
    img_rec(ib, 0x01, sb, sizeof(sb));
}

/* An empty regular file entry. */
static void img_file_entry(struct img_block *ib, const char *name)
{
    uint8_t e[64];
    uint32_t n = (uint32_t)strlen(name);
    pt_put_le64(e, petrel_hash64(name, n, 0));
    e[8] = PETREL_FS_REG;
    e[9] = (uint8_t)n;
    memcpy(e + 10, name, n);
    pt_put_le64(e + 10 + n, 0);
    pt_put_le32(e + 18 + n, PETREL_FS_BLOCK_NULL);
    e[22 + n] = 0;
    pt_put_le16(e + 23 + n, 0);
    img_rec(ib, 0x10, e, 25 + n);
}

struct img_dev {
    uint8_t *mem;
    struct petrel_bd bd;
    struct petrel_bd_ram ram;
    struct petrel_fs_config cfg;
    struct petrel_fs fs;
};

/* A RAM device of IMG_BC blocks: block 0 zeroed (to be laid out), the rest random-looking
 * (an erase that leaves old bytes), block 1 with a zero revision and an invalid header. */
static void img_dev_init(struct img_dev *d)
{
    uint32_t i;
    memset(d, 0, sizeof(*d));
    d->mem = (uint8_t *)malloc(IMG_BS * IMG_BC);
    CHECK(d->mem != NULL);
    fsh_pattern(d->mem, IMG_BS * IMG_BC, test_seed(), 0);
    for (i = 0; i < IMG_BS; i++)
        d->mem[i] = 0;
    memset(d->mem + IMG_BS, 0, IMG_PROG);
    CHECK_OK(petrel_bd_ram_init(&d->bd, &d->ram, d->mem, 16, IMG_PROG, IMG_BS, IMG_BC, -1));
    d->cfg.bd = &d->bd;
}

static char last_error[256];
static void capture_log(void *ctx, enum petrel_log_level level, const char *module, const char *msg)
{
    (void)ctx;
    (void)module;
    if (level == PT_LOG_INFO) snprintf(last_error, sizeof(last_error), "%s", msg);
}

/* A format 1.0 image (its first commit is the same bytes under both rules) is refused with
 * -PT_EVERSION, its version in fs->image_version and one log line naming both versions; so
 * are a 2.0 image (no mount-state record: a 2.x engine would change it without the dirty
 * mark) and a 5.0 image. 3.x images are read and written as 3.x (no directory index). */
TEST(chain_version_1_0_image_refused)
{
    static const uint32_t versions[3] = {0x00010000u, 0x00020000u, 0x00050000u};
    static const char *const messages[3] = {"image format 1.0, this engine reads 3.x and 4.x",
                                            "image format 2.0, this engine reads 3.x and 4.x",
                                            "image format 5.0, this engine reads 3.x and 4.x"};
    int v;
    for (v = 0; v < 3; v++) {
        struct img_dev d;
        struct img_block ib;
        uint8_t rev[4];
        img_dev_init(&d);
        ib.b = d.mem;
        ib.off = 0;
        ib.crc = 0;
        pt_put_le32(rev, 1);
        img_put(&ib, rev, 4);
        img_superblock(&ib, versions[v]);
        img_close(&ib);
        last_error[0] = 0;
        petrel_log_set(capture_log, NULL, PT_LOG_INFO);
        CHECK_EQ(petrel_fs_mount(&d.fs, &d.cfg), -PT_EVERSION);
        petrel_log_set(NULL, NULL, PT_LOG_ERROR);
        CHECK_EQ(d.fs.image_version, versions[v]);
        CHECK_MSG(strcmp(last_error, messages[v]) == 0, "message '%s', want '%s'", last_error,
                  messages[v]);
        {
            struct petrel_fs_info info;
            CHECK_EQ(petrel_fs_stat(&d.fs, "/", &info), -PT_EINVAL); /* not mounted */
        }
        free(d.mem);
    }
}

/* A newer minor version (3.1) mounts: minor versions only add records. This image has no
 * mount-state record, so the mount walks its pairs. */
TEST(chain_version_3_1_image_mounts)
{
    struct img_dev d;
    struct img_block ib;
    struct petrel_fs_info info;
    uint8_t rev[4];
    img_dev_init(&d);
    ib.b = d.mem;
    ib.off = 0;
    ib.crc = 0;
    pt_put_le32(rev, 1);
    img_put(&ib, rev, 4);
    img_superblock(&ib, 0x00030001u);
    img_file_entry(&ib, "hello");
    img_close(&ib);
    CHECK_OK(petrel_fs_mount(&d.fs, &d.cfg));
    CHECK_OK(petrel_fs_stat(&d.fs, "hello", &info));
    CHECK_EQ(info.size, 0);
    CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
    CHECK_OK(petrel_fs_unmount(&d.fs));
    free(d.mem);
}

/*
 * The worst stale commit: right after the log, a commit whose chain CRC is right (as if the
 * block's earlier life had the very same log so far) and which creates "ghost". The last
 * real commit's fcrc was taken over it (it was there, stale, when that commit was written),
 * so the reader must end the log there. A new commit then goes over it and must win, and
 * "ghost" must never appear.
 */
TEST(chain_valid_stale_commit_after_log_ignored)
{
    struct img_dev d;
    struct img_block ib, stale;
    struct petrel_fs_info info;
    uint8_t rev[4], tmp[64];
    uint32_t seed, start, end, len;
    img_dev_init(&d);
    ib.b = d.mem;
    ib.off = 0;
    ib.crc = 0;
    pt_put_le32(rev, 7);
    img_put(&ib, rev, 4);
    img_superblock(&ib, PETREL_FS_VERSION);
    img_file_entry(&ib, "real");
    /* lay out the stale commit's records first, where the log will end */
    end = ib.off + 12;
    start = end + (IMG_PROG - end % IMG_PROG) % IMG_PROG;
    stale.b = d.mem;
    stale.off = start;
    stale.crc = 0;
    img_file_entry(&stale, "ghost");
    len = stale.off - start;
    CHECK(len <= sizeof(tmp) && len > 16);
    seed = img_close(&ib); /* its fcrc is taken over the stale commit's first bytes */
    CHECK_EQ(ib.off, start);
    /* the stale commit's CRC, chained from the real log: it validates if ever parsed */
    memcpy(tmp, d.mem + start, len);
    stale.off = start;
    stale.crc = seed;
    img_put(&stale, tmp, len);
    img_close(&stale);
    CHECK_OK(petrel_fs_mount(&d.fs, &d.cfg));
    CHECK_OK(petrel_fs_stat(&d.fs, "real", &info));
    CHECK_EQ(petrel_fs_stat(&d.fs, "ghost", &info), -PT_ENOENT);
    CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
    /* a new commit is written over the stale one and the log continues through it */
    CHECK_OK(fsh_write_file(&d.fs, "new", "abc", 3));
    CHECK_OK(petrel_fs_unmount(&d.fs));
    CHECK_OK(petrel_fs_mount(&d.fs, &d.cfg));
    CHECK_OK(petrel_fs_stat(&d.fs, "real", &info));
    CHECK_EQ(petrel_fs_stat(&d.fs, "ghost", &info), -PT_ENOENT);
    CHECK_EQ(fsh_file_equals(&d.fs, "new", "abc", 3), 1);
    CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
    CHECK_OK(petrel_fs_unmount(&d.fs));
    free(d.mem);
}

/* --- forced fcrc collision ----------------------------------------------------------------- */

static void set_attr_value(struct fsh_dev *d, const char *value)
{
    CHECK_OK(petrel_fs_setattr(&d->fs, "f", 1, value, (uint32_t)strlen(value)));
}

/*
 * Commit A then commit B (each one ATTR record in the root pair). First run: find where B
 * lands and its bytes. Second run from the same start: those bytes are planted, stale, where
 * B will go, before A is written — so A's fcrc is the CRC of B's own first bytes. Appending B
 * would leave the window's CRC unchanged and B invisible: the writer must compact instead
 * (one more erase than the first run), and B must be there after a remount.
 */
TEST(chain_fcrc_collision_compacts)
{
    const struct fsh_geometry g = {
        "keep", 16, 16, 4096, 64, PETREL_BD_EMU_ERASE_KEEP, PETREL_BD_EMU_PROG_STRICT, 256, 16, 0};
    struct fsh_dev d;
    struct petrel_bd snap_bd, after_a_bd;
    struct petrel_bd_emu snap, after_a;
    uint8_t planted[64], v[16];
    uint32_t block = 0, off = 0, i;
    uint64_t erases_plain, erases_planted;
    int found = 0;

    fsh_dev_init(&d, &g, test_seed());
    fsh_format_mount(&d);
    CHECK_OK(fsh_write_file(&d.fs, "f", "data", 4));
    set_attr_value(&d, "start");
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(petrel_bd_emu_create(&snap_bd, &snap, &d.emu.cfg));
    CHECK_OK(petrel_bd_emu_copy(&snap, &d.emu));
    CHECK_OK(petrel_bd_emu_create(&after_a_bd, &after_a, &d.emu.cfg));

    /* run 1: A, snapshot, B */
    CHECK_OK(fsh_mount(&d));
    set_attr_value(&d, "AAAA");
    CHECK_OK(petrel_bd_emu_copy(&after_a, &d.emu));
    erases_plain = d.emu.stats.erases;
    set_attr_value(&d, "BBBB");
    erases_plain = d.emu.stats.erases - erases_plain;
    CHECK_OK(fsh_unmount(&d));
    for (block = 0; block < 2 && !found; block++)
        for (i = 0; i < g.block_size; i++)
            if (d.emu.memory[block * g.block_size + i] !=
                after_a.memory[block * g.block_size + i]) {
                off = i - i % g.prog_size;
                found = 1;
                break;
            }
    block--;
    CHECK_MSG(found, "commit B not found in the root pair");
    CHECK_EQ(erases_plain, 0); /* B was a plain append */
    CHECK(off + sizeof(planted) <= g.block_size);
    memcpy(planted, d.emu.memory + block * g.block_size + off, sizeof(planted));

    /* run 2: plant B's bytes as stale ones, then A and B again */
    CHECK_OK(petrel_bd_emu_copy(&d.emu, &snap));
    memcpy(d.emu.memory + block * g.block_size + off, planted, sizeof(planted));
    CHECK_OK(petrel_bd_emu_set_erased(&d.emu, block, off, sizeof(planted)));
    CHECK_OK(fsh_mount(&d));
    set_attr_value(&d, "AAAA");
    erases_planted = d.emu.stats.erases;
    set_attr_value(&d, "BBBB");
    erases_planted = d.emu.stats.erases - erases_planted;
    CHECK_MSG(erases_planted >= 1, "B was appended over identical stale bytes, not compacted");
    CHECK_EQ(petrel_fs_getattr(&d.fs, "f", 1, v, sizeof(v)), 4);
    CHECK(memcmp(v, "BBBB", 4) == 0);
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    CHECK_EQ(petrel_fs_getattr(&d.fs, "f", 1, v, sizeof(v)), 4);
    CHECK_MSG(memcmp(v, "BBBB", 4) == 0, "commit B lost after remount: %.4s", v);
    CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
    CHECK_OK(fsh_unmount(&d));
    petrel_bd_emu_destroy(&snap);
    petrel_bd_emu_destroy(&after_a);
    fsh_dev_free(&d);
}

/* --- a spare block whose erase silently did nothing ---------------------------------------- */

struct used_blocks {
    uint8_t *used;
};

static int mark_used(void *ctx, uint32_t block)
{
    ((struct used_blocks *)ctx)->used[block] = 1;
    return 0;
}

/*
 * The second block of a new pair must not hold a valid log: on a device with an erase value
 * the erase is trusted, but an erase that silently does nothing (a worn block) would leave an
 * old log there — here one of a revision far newer than the new pair's 1, which the pair
 * would then read instead of its own. Directory "a" is compacted many times and removed; its
 * two blocks (stale logs, high revisions) and one never-used block are all that can be
 * allocated (every other free block fails to erase), and one of the stale blocks' erases does
 * nothing. For every allocator start and each choice of that block, mkdir "b" and a file in
 * it must either work (and read back, also after a remount) or fail with -PT_ENOSPC; never may
 * "b" show a's old contents.
 */
TEST(chain_new_pair_spare_erase_noop_not_trusted)
{
    const struct fsh_geometry *g = &fsh_matrix[FSH_M4K * FSH_MATRIX_ERASES + 0]; /* 4096, 0xff */
    struct fsh_dev d;
    struct petrel_bd snap_bd;
    struct petrel_bd_emu snap;
    struct used_blocks before, after;
    uint32_t stale[2], fresh = PETREL_FS_BLOCK_NULL, b, nstale = 0;
    int i, noop, seed, worked = 0;

    fsh_dev_init(&d, g, test_seed());
    before.used = (uint8_t *)calloc(g->block_count, 1);
    after.used = (uint8_t *)calloc(g->block_count, 1);
    CHECK(before.used && after.used);
    fsh_format_mount(&d);
    CHECK_OK(petrel_fs_mkdir(&d.fs, "a"));
    CHECK_OK(fsh_write_file(&d.fs, "a/f", "x", 1));
    for (i = 0; i < 600; i++) {
        uint8_t v[4];
        pt_put_le32(v, (uint32_t)i);
        CHECK_OK(petrel_fs_setattr(&d.fs, "a/f", 1, v, 4));
    }
    CHECK_OK(petrel_fs_traverse(&d.fs, mark_used, &before));
    CHECK_OK(petrel_fs_remove(&d.fs, "a/f"));
    CHECK_OK(petrel_fs_remove(&d.fs, "a"));
    CHECK_OK(petrel_fs_traverse(&d.fs, mark_used, &after));
    CHECK_OK(fsh_unmount(&d));
    for (b = 0; b < g->block_count; b++) {
        if (before.used[b] && !after.used[b] && nstale < 2) stale[nstale++] = b;
        if (!before.used[b] && !after.used[b] && fresh == PETREL_FS_BLOCK_NULL &&
            petrel_bd_emu_wear(&d.emu, b) == 0)
            fresh = b;
    }
    CHECK_EQ(nstale, 2);
    CHECK(fresh != PETREL_FS_BLOCK_NULL);
    for (b = 0; b < g->block_count; b++)
        if (!after.used[b] && b != stale[0] && b != stale[1] && b != fresh)
            CHECK_OK(petrel_bd_emu_set_fault(&d.emu, b, PETREL_BD_EMU_ERASE_ERROR));
    CHECK_OK(petrel_bd_emu_create(&snap_bd, &snap, &d.emu.cfg));
    CHECK_OK(petrel_bd_emu_copy(&snap, &d.emu));
    for (noop = 0; noop < 2; noop++) {
        for (seed = 0; seed < 8; seed++) {
            struct petrel_fs_info info;
            int err, pass;
            CHECK_OK(petrel_bd_emu_copy(&d.emu, &snap));
            CHECK_OK(petrel_bd_emu_set_fault(&d.emu, stale[noop], PETREL_BD_EMU_ERASE_NOOP));
            d.cfg.seed_mix = (uint64_t)seed * 0x9e3779b97f4a7c15ull;
            CHECK_OK(fsh_mount(&d));
            err = petrel_fs_mkdir(&d.fs, "b");
            if (err == 0) err = fsh_write_file(&d.fs, "b/x", "new", 3);
            CHECK_MSG(err == 0 || err == -PT_ENOSPC, "noop erase on block %u, seed %d: %s",
                      (unsigned)stale[noop], seed, petrel_errname(err));
            for (pass = 0; err == 0 && pass < 2; pass++) {
                CHECK_MSG(fsh_file_equals(&d.fs, "b/x", "new", 3) == 1,
                          "noop erase on block %u, seed %d: b/x does not read back (pass %d)",
                          (unsigned)stale[noop], seed, pass);
                CHECK_EQ(petrel_fs_stat(&d.fs, "b/f", &info), -PT_ENOENT);
                CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
                CHECK_OK(fsh_unmount(&d));
                CHECK_OK(fsh_mount(&d));
            }
            if (err == 0) worked++;
            CHECK_OK(fsh_unmount(&d));
        }
    }
    test_log("mkdir worked in %d of 16 runs (else -PT_ENOSPC)", worked);
    CHECK(worked > 0);
    petrel_bd_emu_destroy(&snap);
    free(before.used);
    free(after.used);
    fsh_dev_free(&d);
}
