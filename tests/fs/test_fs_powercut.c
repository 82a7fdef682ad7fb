/*
 * A simple power-cut sweep and bit-flip checks on the RAM device (the exhaustive sweeps
 * over emulated flash live in the fs-test part): for each scenario, cut the power at every
 * program/erase in turn (clean cuts and torn programs), remount, and require a clean check
 * and the state wholly before or wholly after the operation. Bit flips in any used block
 * give a clean error or the right bytes, never wrong bytes.
 */
#include "test_fs_harness.h"

struct cutbd {
    struct petrel_bd bd;
    const struct petrel_bd *inner;
    long budget; /* programs + erases left before the power goes */
    int torn;    /* the cut program writes half of its bytes */
    int dead;
};

static int cut_read(void *c, uint32_t b, uint32_t o, void *buf, uint32_t n)
{
    struct cutbd *k = (struct cutbd *)c;
    return k->inner->read(k->inner->context, b, o, buf, n);
}

static int cut_spend(struct cutbd *k)
{
    if (k->dead) return -PT_EIO;
    if (k->budget-- <= 0) {
        k->dead = 1;
        return -PT_EIO;
    }
    return 0;
}

static int cut_prog(void *c, uint32_t b, uint32_t o, const void *buf, uint32_t n)
{
    struct cutbd *k = (struct cutbd *)c;
    if (cut_spend(k)) {
        if (k->torn && k->dead == 1 && n >= 2 * k->inner->prog_size) {
            uint32_t half = n / 2 - (n / 2) % k->inner->prog_size;
            k->inner->prog(k->inner->context, b, o, buf, half);
            k->dead = 2;
        }
        return -PT_EIO;
    }
    return k->inner->prog(k->inner->context, b, o, buf, n);
}

static int cut_erase(void *c, uint32_t b)
{
    struct cutbd *k = (struct cutbd *)c;
    if (cut_spend(k)) return -PT_EIO;
    return k->inner->erase(k->inner->context, b);
}

static int cut_sync(void *c)
{
    struct cutbd *k = (struct cutbd *)c;
    return k->dead ? -PT_EIO : 0;
}

static void cut_init(struct cutbd *k, const struct petrel_bd *inner, long budget, int torn)
{
    memset(k, 0, sizeof(*k));
    k->bd = *inner;
    k->bd.context = k;
    k->bd.read = cut_read;
    k->bd.prog = cut_prog;
    k->bd.erase = cut_erase;
    k->bd.sync = cut_sync;
    k->inner = inner;
    k->budget = budget;
    k->torn = torn;
}

/* A scenario: prepare (on a mounted fs), the operation, and a state classifier. */
struct scenario {
    const char *name;
    void (*prepare)(struct tfs *t);
    int (*op)(struct petrel_fs *fs);
    int (*state)(struct tfs *t); /* 0 before, 1 after, -1 neither */
};

static uint8_t pc_data[9000];

static int file_is(struct tfs *t, const char *path, const void *data, int64_t len)
{
    static uint8_t buf[16384];
    int64_t n = tfs_get(t, path, buf, sizeof(buf));
    return n == len && memcmp(buf, data, (size_t)len) == 0;
}

static int exists(struct tfs *t, const char *path)
{
    struct petrel_fs_info info;
    return petrel_fs_stat(&t->fs, path, &info) == 0;
}

/* create + write + sync */
static void prep_none(struct tfs *t)
{
    CHECK_EQ(petrel_fs_mkdir(&t->fs, "/d"), 0);
    CHECK_EQ(tfs_put(t, "/d/keep", "keep", 4), 0);
}
static int op_create(struct petrel_fs *fs)
{
    struct petrel_fs_file f;
    int64_t n;
    int err = petrel_fs_file_open(fs, &f, "/d/new", PETREL_O_WRONLY | PETREL_O_CREAT);
    if (err) return err;
    n = petrel_fs_file_write(fs, &f, pc_data, 5000);
    err = petrel_fs_file_close(fs, &f);
    return n < 0 ? (int)n : err;
}
static int st_create(struct tfs *t)
{
    if (!file_is(t, "/d/keep", "keep", 4)) return -1;
    if (!exists(t, "/d/new")) return 0;
    if (file_is(t, "/d/new", pc_data, 5000)) return 1;
    /* created but not yet synced: empty is the state "before the write" */
    return file_is(t, "/d/new", "", 0) ? 0 : -1;
}

/* append + sync to an existing file */
static void prep_append(struct tfs *t)
{
    prep_none(t);
    CHECK_EQ(tfs_put(t, "/d/log", pc_data, 3000), 0);
}
static int op_append(struct petrel_fs *fs)
{
    struct petrel_fs_file f;
    int64_t n;
    int err = petrel_fs_file_open(fs, &f, "/d/log", PETREL_O_WRONLY | PETREL_O_APPEND);
    if (err) return err;
    n = petrel_fs_file_write(fs, &f, pc_data + 3000, 40);
    err = petrel_fs_file_close(fs, &f);
    return n < 0 ? (int)n : err;
}
static int st_append(struct tfs *t)
{
    if (!file_is(t, "/d/keep", "keep", 4)) return -1;
    if (file_is(t, "/d/log", pc_data, 3000)) return 0;
    return file_is(t, "/d/log", pc_data, 3040) ? 1 : -1;
}

/* overwrite in the middle */
static int op_overwrite(struct petrel_fs *fs)
{
    struct petrel_fs_file f;
    int64_t n;
    int err = petrel_fs_file_open(fs, &f, "/d/log", PETREL_O_WRONLY);
    if (err) return err;
    petrel_fs_file_seek(fs, &f, 1000, PETREL_SEEK_SET);
    n = petrel_fs_file_write(fs, &f, pc_data + 5000, 700);
    err = petrel_fs_file_close(fs, &f);
    return n < 0 ? (int)n : err;
}
static int st_overwrite(struct tfs *t)
{
    static uint8_t want[3000];
    if (!file_is(t, "/d/keep", "keep", 4)) return -1;
    if (file_is(t, "/d/log", pc_data, 3000)) return 0;
    memcpy(want, pc_data, 3000);
    memcpy(want + 1000, pc_data + 5000, 700);
    return file_is(t, "/d/log", want, 3000) ? 1 : -1;
}

/* rename across directories over an existing file */
static void prep_rename(struct tfs *t)
{
    prep_append(t);
    CHECK_EQ(petrel_fs_mkdir(&t->fs, "/e"), 0);
    CHECK_EQ(tfs_put(t, "/e/target", "old", 3), 0);
    CHECK_EQ(petrel_fs_setattr(&t->fs, "/d/log", 7, "tag", 3), 0);
}
static int op_rename(struct petrel_fs *fs)
{
    return petrel_fs_rename(fs, "/d/log", "/e/target");
}
static int st_rename(struct tfs *t)
{
    char a[8];
    if (!file_is(t, "/d/keep", "keep", 4)) return -1;
    if (file_is(t, "/d/log", pc_data, 3000) && file_is(t, "/e/target", "old", 3)) return 0;
    if (!exists(t, "/d/log") && file_is(t, "/e/target", pc_data, 3000) &&
        petrel_fs_getattr(&t->fs, "/e/target", 7, a, sizeof(a)) == 3)
        return 1;
    return -1;
}

/* mkdir and rmdir */
static int op_mkdir(struct petrel_fs *fs)
{
    return petrel_fs_mkdir(fs, "/d/sub");
}
static int st_mkdir(struct tfs *t)
{
    struct petrel_fs_info info;
    if (!file_is(t, "/d/keep", "keep", 4)) return -1;
    if (petrel_fs_stat(&t->fs, "/d/sub", &info) == -PT_ENOENT) return 0;
    return petrel_fs_stat(&t->fs, "/d/sub", &info) == 0 && info.type == PETREL_FS_DIR ? 1 : -1;
}
static void prep_rmdir(struct tfs *t)
{
    prep_none(t);
    CHECK_EQ(petrel_fs_mkdir(&t->fs, "/d/sub"), 0);
    CHECK_EQ(petrel_fs_mkdir(&t->fs, "/x"), 0);
}
static int op_rmdir(struct petrel_fs *fs)
{
    return petrel_fs_remove(fs, "/d/sub");
}
static int st_rmdir(struct tfs *t)
{
    int r = st_mkdir(t);
    return r < 0 ? r : 1 - r;
}

/* attribute change */
static int op_setattr(struct petrel_fs *fs)
{
    return petrel_fs_setattr(fs, "/d/keep", 9, "value", 5);
}
static int st_setattr(struct tfs *t)
{
    char a[8];
    int64_t n;
    if (!file_is(t, "/d/keep", "keep", 4)) return -1;
    n = petrel_fs_getattr(&t->fs, "/d/keep", 9, a, sizeof(a));
    if (n == -PT_ENODATA) return 0;
    return n == 5 && memcmp(a, "value", 5) == 0 ? 1 : -1;
}

/* many small files in one directory: compactions and splits */
static void prep_many(struct tfs *t)
{
    int i;
    char name[32];
    prep_none(t);
    for (i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "/d/m%02d", i);
        CHECK_EQ(tfs_put(t, name, name, strlen(name)), 0);
    }
}
static int op_many(struct petrel_fs *fs)
{
    struct petrel_fs_file f;
    int err = petrel_fs_file_open(fs, &f, "/d/m99", PETREL_O_WRONLY | PETREL_O_CREAT);
    if (err) return err;
    petrel_fs_file_write(fs, &f, "/d/m99", 6);
    return petrel_fs_file_close(fs, &f);
}
static int st_many(struct tfs *t)
{
    int i;
    char name[32];
    for (i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "/d/m%02d", i);
        if (!file_is(t, name, name, (int64_t)strlen(name))) return -1;
    }
    if (!exists(t, "/d/m99")) return 0;
    if (file_is(t, "/d/m99", "/d/m99", 6)) return 1;
    return file_is(t, "/d/m99", "", 0) ? 0 : -1;
}

static const struct scenario scenarios[] = {
    {"create", prep_none, op_create, st_create},
    {"append", prep_append, op_append, st_append},
    {"overwrite", prep_append, op_overwrite, st_overwrite},
    {"rename", prep_rename, op_rename, st_rename},
    {"mkdir", prep_none, op_mkdir, st_mkdir},
    {"rmdir", prep_rmdir, op_rmdir, st_rmdir},
    {"setattr", prep_none, op_setattr, st_setattr},
    {"many", prep_many, op_many, st_many},
};

static long run_sweep(const struct tfs_geometry *g, int torn, int32_t block_cycles)
{
    struct tfs t;
    size_t bytes = (size_t)g->block_size * g->block_count;
    uint8_t *base = malloc(bytes);
    long cuts = 0;
    size_t s;
    tfs_fill(pc_data, sizeof(pc_data), 99);
    for (s = 0; s < PT_ARRAY_SIZE(scenarios); s++) {
        const struct scenario *sc = &scenarios[s];
        long n;
        int done = 0;
        tfs_setup(&t, g, block_cycles);
        sc->prepare(&t);
        CHECK_EQ(petrel_fs_unmount(&t.fs), 0);
        memcpy(base, t.mem, bytes);
        for (n = 0; !done && n < 5000; n++) {
            struct cutbd k;
            struct petrel_fs_config cfg = t.cfg;
            int err, st;
            memcpy(t.mem, base, bytes);
            cut_init(&k, &t.bd, n, torn);
            cfg.bd = &k.bd;
            err = petrel_fs_mount(&t.fs, &cfg);
            if (err == 0) {
                err = sc->op(&t.fs);
                petrel_fs_unmount(&t.fs);
            }
            done = !k.dead && err == 0;
            if (!done) cuts++;
            CHECK_MSG(done || k.dead, "[%s %s] cut %ld: operation failed without a cut: %s",
                      g->name, sc->name, n, petrel_strerror(err));
            err = petrel_fs_mount(&t.fs, &t.cfg);
            CHECK_MSG(err == 0, "[%s %s] cut %ld: mount after the cut: %s", g->name, sc->name,
                      n, petrel_strerror(err));
            err = petrel_fs_check(&t.fs, tfs_report, NULL);
            CHECK_MSG(err == 0, "[%s %s] cut %ld: check after the cut: %s", g->name, sc->name,
                      n, petrel_strerror(err));
            st = sc->state(&t);
            CHECK_MSG(st == 1 || (st == 0 && !done), "[%s %s] cut %ld%s: state %d", g->name,
                      sc->name, n, torn ? " (torn)" : "", st);
            /* the remounted filesystem stays usable */
            CHECK_EQ(tfs_put(&t, "/after", "ok", 2), 0);
            CHECK_EQ(petrel_fs_unmount(&t.fs), 0);
        }
        CHECK_MSG(done, "[%s %s] never completed", g->name, sc->name);
        CHECK_OK(petrel_fs_mount(&t.fs, &t.cfg));
        tfs_teardown(&t);
    }
    free(base);
    return cuts;
}

TEST_T(fs_powercut_sweep, 600)
{
    long cuts = 0;
    int gi;
    for (gi = 0; gi < TFS_NGEOM; gi++) {
        if (tfs_geometries[gi].block_size > 8192 && test_sanitized()) continue;
        cuts += run_sweep(&tfs_geometries[gi], 0, -1);
        cuts += run_sweep(&tfs_geometries[gi], 1, 8);
    }
    test_log("%ld power cuts simulated", cuts);
}

TEST(fs_bit_flips_never_return_wrong_bytes)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        size_t len = t.g->block_size * 3 + 500, bytes = (size_t)t.g->block_size * t.g->block_count;
        uint8_t *a = malloc(len), *b = malloc(len), *base = malloc(bytes);
        uint32_t blk, off;
        long clean = 0, caught = 0;
        tfs_fill(a, len, 5);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/d"), 0);
        CHECK_EQ(tfs_put(&t, "/d/f", a, len), 0);
        CHECK_EQ(petrel_fs_unmount(&t.fs), 0);
        memcpy(base, t.mem, bytes);
        for (blk = 0; blk < t.g->block_count; blk++) {
            for (off = 1; off < t.g->block_size; off += t.g->block_size / 4 + 7) {
                int err;
                int64_t n;
                memcpy(t.mem, base, bytes);
                if (t.mem[(size_t)blk * t.g->block_size + off] == 0xff) continue; /* unused */
                t.mem[(size_t)blk * t.g->block_size + off] ^= 0x10;
                err = petrel_fs_mount(&t.fs, &t.cfg);
                if (err) {
                    CHECK_EQ(err, -PT_ECORRUPT);
                    caught++;
                    continue;
                }
                n = tfs_get(&t, "/d/f", b, len);
                if (n == 0) {
                    /* the flip hit the newest commit: the pair fell back to the older
                     * commit in which the file was still empty */
                    caught++;
                } else if (n < 0) {
                    CHECK_MSG(n == -PT_ECORRUPT || n == -PT_ENOENT, "read: %s",
                              petrel_strerror((int)n));
                    caught++;
                } else {
                    CHECK_EQ(n, (int64_t)len);
                    TFS_CHECK_SAME(a, b, len);
                    clean++;
                }
                petrel_fs_unmount(&t.fs);
            }
        }
        test_log("%s: %ld flips caught, %ld harmless", t.g->name, caught, clean);
        CHECK(caught > 0);
        memcpy(t.mem, base, bytes);
        CHECK_EQ(petrel_fs_mount(&t.fs, &t.cfg), 0);
        free(a);
        free(b);
        free(base);
    }
}
