/*
 * Where the engine's memory lives (issue 15): an open file's buffered tree updates in the
 * caller's pend_buffer (any room, down to one update) with nothing written past it, and a
 * filesystem without the built-in link table and fingers (what a build without malloc has)
 * giving the same results as with them. Entries committed from segments (name from the path,
 * structure and inline tail copied from the old record on the device) are covered by rename
 * and sync here with inline tails and attributes, across pairs.
 */
#include "fs/fs_internal.h"
#include "petrel/prng.h"
#include "test_fs_harness.h"

#define MEM_CANARY 0xa5u

/* Random overwrites of a file of several blocks through pend_buffer rooms of 1, 2 and 5
 * updates: every read matches the model, nothing past the room is touched, and the file
 * reads back after a remount with a clean check. */
TEST(fs_pend_buffer_rooms)
{
    static const uint32_t rooms[3] = {1, 2, 5};
    struct tfs t;
    struct pt_prng g;
    pt_prng_seed(&g, test_seed());
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        /* nand has 64 blocks: a smaller file leaves room for the blocks in flight */
        size_t cap = t.g->block_size * (t.g->block_count >= 256 ? 6 : 3);
        uint8_t *model = calloc(1, cap), *buf = malloc(cap), *chunk = malloc(cap);
        uint8_t *page = malloc(t.g->block_size);
        uint64_t size = 0;
        int r;
        for (r = 0; r < 3; r++) {
            struct {
                struct petrel_fs_pend pend[5];
                uint8_t canary[64];
            } room;
            struct petrel_fs_file_config fc;
            struct petrel_fs_file f;
            uint32_t k;
            int i;
            memset(&room, MEM_CANARY, sizeof(room));
            memset(&fc, 0, sizeof(fc));
            fc.buffer = page;
            fc.pend_buffer = room.pend;
            fc.pend_count = rooms[r];
            CHECK_EQ(petrel_fs_file_opencfg(&t.fs, &f, "/p", PETREL_O_RDWR | PETREL_O_CREAT,
                                            &fc), 0);
            for (i = 0; i < 30; i++) {
                uint64_t off = pt_prng_below(&g, cap - t.g->block_size);
                uint64_t n = 1 + pt_prng_below(&g, t.g->block_size * 2);
                if (off + n > cap) n = cap - off;
                pt_prng_fill(&g, chunk, n);
                CHECK_EQ(petrel_fs_file_seek(&t.fs, &f, (int64_t)off, PETREL_SEEK_SET),
                         (int64_t)off);
                CHECK_EQ(petrel_fs_file_write(&t.fs, &f, chunk, n), (int64_t)n);
                memcpy(model + off, chunk, n);
                if (off + n > size) size = off + n;
                if (i % 10 == 9) {
                    CHECK_EQ(petrel_fs_file_sync(&t.fs, &f), 0);
                    CHECK_EQ(petrel_fs_file_seek(&t.fs, &f, 0, PETREL_SEEK_SET), 0);
                    CHECK_EQ(petrel_fs_file_read(&t.fs, &f, buf, cap), (int64_t)size);
                    TFS_CHECK_SAME(buf, model, size);
                }
            }
            CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
            for (k = rooms[r]; k < 5; k++)
                CHECK_MSG(room.pend[k].index == 0xa5a5a5a5u && room.pend[k].block == 0xa5a5a5a5u,
                          "room of %u: update %u written past it", (unsigned)rooms[r],
                          (unsigned)k);
            for (k = 0; k < sizeof(room.canary); k++) CHECK_EQ(room.canary[k], MEM_CANARY);
            tfs_remount(&t);
            CHECK_EQ(tfs_get(&t, "/p", buf, cap), (int64_t)size);
            TFS_CHECK_SAME(buf, model, size);
            tfs_check_clean(&t);
        }
        free(model);
        free(buf);
        free(chunk);
        free(page);
    }
}

/* Stat every name of the model: present ones with their size, absent ones -PT_ENOENT. */
static void mem_check_names(struct tfs *t, const int *present, int n)
{
    char path[48];
    int i;
    for (i = 0; i < n; i++) {
        struct petrel_fs_info info;
        snprintf(path, sizeof(path), "/d/entry-%04d", i);
        if (present[i]) {
            CHECK_MSG(petrel_fs_stat(&t->fs, path, &info) == 0, "%s missing", path);
            CHECK_EQ(info.size, (uint64_t)(i % 37));
        } else {
            CHECK_EQ(petrel_fs_stat(&t->fs, path, &info), -PT_ENOENT);
        }
    }
}

/* A directory of many pairs built, renamed into, thinned and listed on a filesystem without
 * links and fingers (nlinks 0, fg NULL: a PETREL_FS_NO_MALLOC build without link_buffer)
 * holds exactly what the same steps leave with them. */
TEST(fs_without_links_and_fingers)
{
    struct tfs t;
    int pass;
    for (pass = 0; pass < 2; pass++) {
        static int present[300];
        const int n = 300;
        uint8_t data[64];
        char path[48], path2[48];
        struct petrel_fs_dir d;
        struct petrel_fs_info info;
        int i, listed = 0, live = 0;
        tfs_setup(&t, &tfs_geometries[3], -1); /* tiny blocks: many pairs */
        test_log("pass %d: %s", pass, pass ? "without links and fingers" : "with them");
        if (pass) {
            t.fs.nlinks = 0;
            t.fs.fg = NULL;
        }
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/d"), 0);
        memset(data, 0x3c, sizeof(data));
        for (i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "/t-%04d", i);
            CHECK_EQ(tfs_put(&t, path, data, (uint64_t)(i % 37)), 0);
            snprintf(path2, sizeof(path2), "/d/entry-%04d", i);
            CHECK_EQ(petrel_fs_rename(&t.fs, path, path2), 0);
            present[i] = 1;
        }
        for (i = 0; i < n; i += 3) {
            snprintf(path, sizeof(path), "/d/entry-%04d", i);
            CHECK_EQ(petrel_fs_remove(&t.fs, path), 0);
            present[i] = 0;
        }
        if (pass) CHECK(t.fs.nlinks == 0 && t.fs.fg == NULL);
        mem_check_names(&t, present, n);
        CHECK_EQ(petrel_fs_dir_open(&t.fs, &d, "/d"), 0);
        while (petrel_fs_dir_read(&t.fs, &d, &info) == 1) listed++;
        CHECK_EQ(petrel_fs_dir_close(&t.fs, &d), 0);
        for (i = 0; i < n; i++) live += present[i];
        CHECK_EQ(listed, live);
        tfs_check_clean(&t);
        tfs_teardown(&t);
    }
}

/* A rename across pairs and a sync rewrite an entry from its parts: the old record's
 * structure and inline tail (copied from the device), the new name (from the path) and
 * the attributes. Both survive a remount byte for byte. */
TEST(fs_entry_parts_survive_rename_and_sync)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        uint8_t data[100], back[100], attr[8] = {1, 2, 3, 4, 5, 6, 7, 8}, aback[8];
        char path[48];
        struct petrel_fs_file f;
        int i;
        tfs_fill(data, sizeof(data), 7);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/a"), 0);
        CHECK_EQ(petrel_fs_mkdir(&t.fs, "/b"), 0);
        for (i = 0; i < 40; i++) { /* fill the pairs so that /a and /b differ */
            snprintf(path, sizeof(path), "/b/filler-%02d", i);
            CHECK_EQ(tfs_put(&t, path, data, 10), 0);
        }
        CHECK_EQ(tfs_put(&t, "/a/small", data, 50), 0); /* an inline tail */
        CHECK_EQ(petrel_fs_setattr(&t.fs, "/a/small", 9, attr, sizeof(attr)), 0);
        CHECK_EQ(petrel_fs_rename(&t.fs, "/a/small", "/b/renamed-longer"), 0);
        CHECK_EQ(tfs_get(&t, "/b/renamed-longer", back, sizeof(back)), 50);
        TFS_CHECK_SAME(back, data, 50);
        /* sync rewrites the entry with the name copied from the device */
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/b/renamed-longer",
                                     PETREL_O_RDWR | PETREL_O_APPEND), 0);
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, data + 50, 20), 20);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        tfs_remount(&t);
        CHECK_EQ(tfs_get(&t, "/b/renamed-longer", back, sizeof(back)), 70);
        TFS_CHECK_SAME(back, data, 70);
        CHECK_EQ(petrel_fs_getattr(&t.fs, "/b/renamed-longer", 9, aback,
                                   sizeof(aback)), (int64_t)sizeof(attr));
        TFS_CHECK_SAME(aback, attr, sizeof(attr));
        CHECK_EQ(tfs_get(&t, "/a/small", back, sizeof(back)), -PT_ENOENT);
        {
            struct petrel_fs_dir d;
            struct petrel_fs_info info;
            int found = 0;
            CHECK_EQ(petrel_fs_dir_open(&t.fs, &d, "/b"), 0);
            while (petrel_fs_dir_read(&t.fs, &d, &info) == 1)
                if (strcmp(info.name, "renamed-longer") == 0) found++;
            CHECK_EQ(petrel_fs_dir_close(&t.fs, &d), 0);
            CHECK_EQ(found, 1);
        }
        tfs_check_clean(&t);
    }
}

/* Rewrite the mounted, fresh filesystem's superblock as format 3.0: in-session fingers are a
 * 3.x image's (a 4.x image's directories have indexes instead). */
static void mem_make_3x(struct petrel_fs *fs)
{
    static const uint32_t root[2] = {0, 1};
    struct pt_mdir md;
    struct pt_rec r;
    struct pt_rec_ref rec = {0, 0, 0};
    uint8_t sb[PT_SB_SIZE];
    uint32_t old[2], pos = 0;
    int found = 0;
    CHECK_OK(pt_mdir_fetch(fs, &md, root, NULL));
    while (pt_rec_next(fs, &md, &pos, &rec) == 1)
        if (rec.type == PT_REC_SUPERBLOCK) {
            CHECK_OK(pt_read(fs, md.pair[0], rec.off, sb, PT_SB_SIZE, PT_SB_SIZE));
            found = 1;
        }
    CHECK(found);
    pt_put_le32(sb + 8, 0x00030000u);
    memset(&r, 0, sizeof(r));
    r.type = PT_REC_SUPERBLOCK;
    r.seg[0] = sb;
    r.seglen[0] = PT_SB_SIZE;
    CHECK_OK(pt_mdir_commit(fs, &md, &r, 1, NULL, old, NULL));
}

/* The fingers allocated at mount are used: on a 3.x image, in a directory of more pairs than
 * the remembered links cover, lookups read less with them than the same lookups with fg NULL
 * (a build without malloc), and find the same entries. */
TEST(fs_fingers_allocated_at_mount_cut_reads)
{
    static struct petrel_bd_emu emu;
    struct petrel_bd bd;
    struct petrel_bd_emu_config ec;
    static struct petrel_fs fs;
    struct petrel_fs_config cfg;
    uint64_t reads[2];
    uint8_t data[8];
    char path[48];
    int pass, i;
    memset(&ec, 0, sizeof(ec));
    ec.read_size = 16;
    ec.prog_size = 16;
    ec.block_size = 512;
    ec.block_count = 1024;
    ec.erase_value = 0xff;
    ec.prog_mode = PETREL_BD_EMU_PROG_NOR;
    ec.seed = 1;
    CHECK_OK(petrel_bd_emu_create(&bd, &emu, &ec));
    memset(&cfg, 0, sizeof(cfg));
    cfg.bd = &bd;
    cfg.block_cycles = -1;
    memset(data, 0x11, sizeof(data));
    CHECK_EQ(petrel_fs_format(&fs, &cfg), 0);
    CHECK_EQ(petrel_fs_mount(&fs, &cfg), 0);
    mem_make_3x(&fs);
    CHECK_EQ(petrel_fs_unmount(&fs), 0);
    CHECK_EQ(petrel_fs_mount(&fs, &cfg), 0);
    CHECK_EQ(fs.image_version, 0x00030000u);
    CHECK_EQ(petrel_fs_mkdir(&fs, "/d"), 0);
    for (i = 0; i < 400; i++) {
        struct petrel_fs_file f;
        snprintf(path, sizeof(path), "/d/name-%03d", i);
        CHECK_EQ(petrel_fs_file_open(&fs, &f, path, PETREL_O_WRONLY | PETREL_O_CREAT), 0);
        CHECK_EQ(petrel_fs_file_write(&fs, &f, data, sizeof(data)), (int64_t)sizeof(data));
        CHECK_EQ(petrel_fs_file_close(&fs, &f), 0);
    }
    CHECK_EQ(petrel_fs_unmount(&fs), 0);
    for (pass = 0; pass < 2; pass++) {
        CHECK_EQ(petrel_fs_mount(&fs, &cfg), 0);
        CHECK(fs.fg != NULL && fs.nlinks == PETREL_FS_LINK_CACHE);
        if (pass) fs.fg = NULL; /* the allocation stays in fs.tables: unmount frees it */
        petrel_bd_emu_stats_reset(&emu);
        for (i = 0; i < 400; i++) {
            struct petrel_fs_info info;
            snprintf(path, sizeof(path), "/d/name-%03d", (i * 151) % 400);
            CHECK_EQ(petrel_fs_stat(&fs, path, &info), 0);
            CHECK_EQ(info.size, (uint64_t)sizeof(data));
        }
        reads[pass] = emu.stats.read_bytes;
        CHECK_EQ(petrel_fs_unmount(&fs), 0);
    }
    test_log("400 lookups read %llu B with the fingers, %llu B without",
             (unsigned long long)reads[0], (unsigned long long)reads[1]);
    CHECK(reads[0] < reads[1]);
    petrel_bd_emu_destroy(&emu);
}
