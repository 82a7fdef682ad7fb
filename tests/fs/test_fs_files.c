/*
 * File behaviour over every geometry: open flags, append, seek past the end, truncate up
 * and down, random overwrites against a model, error codes.
 */
#include "test_fs_harness.h"
#include "petrel/prng.h"

TEST(fs_open_flags_and_errors)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_file f;
        char buf[16];
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/x", PETREL_O_RDONLY), -PT_ENOENT);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/x", 0), -PT_EINVAL);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/x", PETREL_O_RDONLY | PETREL_O_TRUNC),
                 -PT_EINVAL);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/x", PETREL_O_RDWR | 0x10000), -PT_EINVAL);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/x", PETREL_O_WRONLY | PETREL_O_CREAT), 0);
        /* a created file exists at once */
        {
            struct petrel_fs_info info;
            CHECK_EQ(petrel_fs_stat(&t.fs, "/x", &info), 0);
            CHECK_EQ(info.size, 0);
        }
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, "abc", 3), 3);
        CHECK_EQ(petrel_fs_file_read(&t.fs, &f, buf, 3), -PT_EBADF);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/x", PETREL_O_WRONLY | PETREL_O_CREAT |
                                                        PETREL_O_EXCL),
                 -PT_EEXIST);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/x", PETREL_O_RDONLY), 0);
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, "z", 1), -PT_EBADF);
        CHECK_EQ(petrel_fs_file_truncate(&t.fs, &f, 0), -PT_EBADF);
        CHECK_EQ(petrel_fs_file_read(&t.fs, &f, buf, sizeof(buf)), 3);
        CHECK_MEM(buf, "abc", 3);
        CHECK_EQ(petrel_fs_file_read(&t.fs, &f, buf, sizeof(buf)), 0);
        CHECK_EQ(petrel_fs_file_seek(&t.fs, &f, -1, PETREL_SEEK_SET), -PT_EINVAL);
        CHECK_EQ(petrel_fs_file_seek(&t.fs, &f, 0, 7), -PT_EINVAL);
        CHECK_EQ(petrel_fs_file_seek(&t.fs, &f, 1LL << 40, PETREL_SEEK_SET), -PT_EFBIG);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        /* TRUNC empties, APPEND appends */
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/x", PETREL_O_RDWR | PETREL_O_APPEND), 0);
        CHECK_EQ(petrel_fs_file_seek(&t.fs, &f, 0, PETREL_SEEK_SET), 0);
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, "de", 2), 2);
        CHECK_EQ(petrel_fs_file_size(&t.fs, &f), 5);
        CHECK_EQ(petrel_fs_file_tell(&t.fs, &f), 5);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        CHECK_EQ(tfs_get(&t, "/x", buf, sizeof(buf)), 5);
        CHECK_MEM(buf, "abcde", 5);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/x", PETREL_O_WRONLY | PETREL_O_TRUNC), 0);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        tfs_remount(&t);
        CHECK_EQ(tfs_get(&t, "/x", buf, sizeof(buf)), 0);
        /* file as a directory component, EFBIG on write */
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/x/y", PETREL_O_WRONLY | PETREL_O_CREAT),
                 -PT_ENOTDIR);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/x", PETREL_O_WRONLY), 0);
        CHECK_EQ(petrel_fs_file_seek(&t.fs, &f, 0x7ffffff0, PETREL_SEEK_SET), 0x7ffffff0);
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, buf, 16), -PT_EFBIG);
        CHECK_EQ(petrel_fs_file_truncate(&t.fs, &f, 0x80000000ull), -PT_EFBIG);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        tfs_check_clean(&t);
    }
}

TEST(fs_seek_past_end_leaves_zeros)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_file f;
        uint64_t gap = (uint64_t)t.g->block_size * 3 + 77, i;
        uint8_t *buf = malloc(gap + 10);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/sparse", PETREL_O_RDWR | PETREL_O_CREAT), 0);
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, "head", 4), 4);
        CHECK_EQ(petrel_fs_file_seek(&t.fs, &f, (int64_t)gap, PETREL_SEEK_SET), (int64_t)gap);
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, "tail", 4), 4);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        tfs_remount(&t);
        CHECK_EQ(tfs_get(&t, "/sparse", buf, gap + 10), (int64_t)gap + 4);
        CHECK_MEM(buf, "head", 4);
        for (i = 4; i < gap; i++) CHECK_MSG(buf[i] == 0, "byte %llu is %u", (unsigned long long)i, buf[i]);
        CHECK_MEM(buf + gap, "tail", 4);
        tfs_check_clean(&t);
        free(buf);
    }
}

TEST(fs_truncate_down_and_up)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_file f;
        size_t len = t.g->block_size * 4 + 300;
        uint8_t *a = malloc(len), *b = malloc(len);
        size_t cut = t.g->block_size + 33, i;
        tfs_fill(a, len, 3);
        CHECK_EQ(tfs_put(&t, "/t", a, len), 0);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/t", PETREL_O_RDWR), 0);
        CHECK_EQ(petrel_fs_file_truncate(&t.fs, &f, cut), 0);
        CHECK_EQ(petrel_fs_file_size(&t.fs, &f), (int64_t)cut);
        CHECK_EQ(petrel_fs_file_truncate(&t.fs, &f, len), 0); /* grows with zeros */
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        tfs_remount(&t);
        CHECK_EQ(tfs_get(&t, "/t", b, len), (int64_t)len);
        CHECK_MEM(a, b, cut);
        for (i = cut; i < len; i++) CHECK_MSG(b[i] == 0, "byte %zu not zero after regrow", i);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/t", PETREL_O_RDWR), 0);
        CHECK_EQ(petrel_fs_file_truncate(&t.fs, &f, 5), 0);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        CHECK_EQ(tfs_get(&t, "/t", b, len), 5);
        CHECK_MEM(a, b, 5);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/t", PETREL_O_RDWR), 0);
        CHECK_EQ(petrel_fs_file_truncate(&t.fs, &f, 0), 0);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        tfs_remount(&t);
        CHECK_EQ(tfs_get(&t, "/t", b, len), 0);
        tfs_check_clean(&t);
        free(a);
        free(b);
    }
}

/* Random writes, truncates and reads against an in-memory copy, with remounts. */
TEST(fs_random_overwrites_match_model)
{
    struct tfs t;
    struct pt_prng g;
    pt_prng_seed(&g, test_seed());
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        size_t cap = t.g->block_size * 6;
        uint8_t *model = calloc(1, cap), *buf = malloc(cap), *chunk = malloc(cap);
        uint64_t size = 0;
        int round, i;
        for (round = 0; round < 6; round++) {
            struct petrel_fs_file f;
            CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/m", PETREL_O_RDWR | PETREL_O_CREAT), 0);
            for (i = 0; i < 25; i++) {
                uint64_t op = pt_prng_below(&g, 10);
                if (op < 7) {
                    uint64_t off = pt_prng_below(&g, cap / 2);
                    uint64_t n = 1 + pt_prng_below(&g, cap / 4);
                    pt_prng_fill(&g, chunk, n);
                    CHECK_EQ(petrel_fs_file_seek(&t.fs, &f, (int64_t)off, PETREL_SEEK_SET), (int64_t)off);
                    CHECK_EQ(petrel_fs_file_write(&t.fs, &f, chunk, n), (int64_t)n);
                    memcpy(model + off, chunk, n);
                    test_log("write %llu +%llu", (unsigned long long)off, (unsigned long long)n);
                    if (off + n > size) size = off + n;
                } else if (op < 8) {
                    uint64_t ns = pt_prng_below(&g, cap * 3 / 4);
                    CHECK_EQ(petrel_fs_file_truncate(&t.fs, &f, ns), 0);
                    if (ns < size) memset(model + ns, 0, size - ns);
                    test_log("truncate %llu", (unsigned long long)ns);
                    size = ns;
                } else if (op < 9) {
                    CHECK_EQ(petrel_fs_file_sync(&t.fs, &f), 0);
                } else {
                    CHECK_EQ(petrel_fs_file_seek(&t.fs, &f, 0, PETREL_SEEK_SET), 0);
                    CHECK_EQ(petrel_fs_file_read(&t.fs, &f, buf, cap), (int64_t)size);
                    TFS_CHECK_SAME(buf, model, size);
                }
            }
            CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
            tfs_remount(&t);
            CHECK_EQ(tfs_get(&t, "/m", buf, cap), (int64_t)size);
            TFS_CHECK_SAME(buf, model, size);
            tfs_check_clean(&t);
        }
        free(model);
        free(buf);
        free(chunk);
    }
}

TEST(fs_append_sync_many_times)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_file f;
        uint8_t rec[32], *buf;
        int i, n = 300;
        buf = malloc(32 * (size_t)n);
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/log", PETREL_O_WRONLY | PETREL_O_CREAT |
                                                          PETREL_O_APPEND),
                 0);
        for (i = 0; i < n; i++) {
            tfs_fill(rec, sizeof(rec), (uint32_t)i);
            CHECK_EQ(petrel_fs_file_write(&t.fs, &f, rec, sizeof(rec)), 32);
            CHECK_EQ(petrel_fs_file_sync(&t.fs, &f), 0);
        }
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        tfs_remount(&t);
        CHECK_EQ(tfs_get(&t, "/log", buf, 32 * (size_t)n), 32 * n);
        for (i = 0; i < n; i++) {
            tfs_fill(rec, sizeof(rec), (uint32_t)i);
            CHECK_MEM(buf + 32 * i, rec, 32);
        }
        tfs_check_clean(&t);
        free(buf);
    }
}

TEST(fs_empty_write_past_end_extends)
{
    struct tfs t;
    TFS_FOR_EACH_GEOMETRY(t, -1)
    {
        struct petrel_fs_file f;
        uint8_t buf[64];
        int i;
        CHECK_EQ(petrel_fs_file_open(&t.fs, &f, "/z", PETREL_O_RDWR | PETREL_O_CREAT), 0);
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, "ab", 2), 2);
        CHECK_EQ(petrel_fs_file_seek(&t.fs, &f, 40, PETREL_SEEK_SET), 40);
        CHECK_EQ(petrel_fs_file_write(&t.fs, &f, "", 0), 0);
        CHECK_EQ(petrel_fs_file_size(&t.fs, &f), 40);
        CHECK_EQ(petrel_fs_file_close(&t.fs, &f), 0);
        CHECK_EQ(tfs_get(&t, "/z", buf, sizeof(buf)), 40);
        CHECK_MEM(buf, "ab", 2);
        for (i = 2; i < 40; i++) CHECK_EQ(buf[i], 0);
    }
}
