/*
 * Shared fixture for the flash engine's behaviour tests: a RAM device per geometry, a
 * formatted and mounted filesystem, and small helpers. Included by tests/fs/test_fs_*.c.
 */
#ifndef TEST_FS_HARNESS_H
#define TEST_FS_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/bd.h"
#include "petrel/common.h"
#include "petrel/fs.h"
#include "test.h"

struct tfs_geometry {
    const char *name;
    uint32_t read_size, prog_size, block_size, block_count;
};

/* NOR-like, eMMC-like, NAND-like, tiny. */
static const struct tfs_geometry tfs_geometries[] = {
    {"nor", 16, 16, 4096, 256},
    {"emmc", 512, 512, 512, 2048},
    {"nand", 4096, 4096, 32768, 64},
    {"tiny", 16, 16, 128, 1024},
};
#define TFS_NGEOM ((int)(sizeof(tfs_geometries) / sizeof(tfs_geometries[0])))

struct tfs {
    const struct tfs_geometry *g;
    uint8_t *mem;
    struct petrel_bd bd;
    struct petrel_bd_ram ram;
    struct petrel_fs_config cfg;
    struct petrel_fs fs;
};

static inline void tfs_setup(struct tfs *t, const struct tfs_geometry *g, int32_t block_cycles)
{
    memset(t, 0, sizeof(*t));
    t->g = g;
    t->mem = (uint8_t *)malloc((size_t)g->block_size * g->block_count);
    CHECK(t->mem != NULL);
    memset(t->mem, 0xff, (size_t)g->block_size * g->block_count);
    CHECK_OK(petrel_bd_ram_init(&t->bd, &t->ram, t->mem, g->read_size, g->prog_size,
                                g->block_size, g->block_count, 0xff));
    t->cfg.bd = &t->bd;
    t->cfg.block_cycles = block_cycles;
    CHECK_EQ(petrel_fs_format(&t->fs, &t->cfg), 0);
    CHECK_EQ(petrel_fs_mount(&t->fs, &t->cfg), 0);
}

static inline void tfs_remount(struct tfs *t)
{
    CHECK_EQ(petrel_fs_unmount(&t->fs), 0);
    CHECK_EQ(petrel_fs_mount(&t->fs, &t->cfg), 0);
}

static inline void tfs_report(void *ctx, const char *problem)
{
    (void)ctx;
    test_log("fsck: %s", problem);
}

static inline void tfs_check_clean(struct tfs *t)
{
    int err = petrel_fs_check(&t->fs, tfs_report, NULL);
    CHECK_MSG(err == 0, "[%s] check: %s", t->g->name, petrel_strerror(err));
}

static inline void tfs_teardown(struct tfs *t)
{
    petrel_fs_unmount(&t->fs);
    free(t->mem);
}

/* Write a whole file (create/truncate) and close it. */
static inline int tfs_put(struct tfs *t, const char *path, const void *data, uint64_t len)
{
    struct petrel_fs_file f;
    int64_t n;
    int err = petrel_fs_file_open(&t->fs, &f, path,
                                  PETREL_O_WRONLY | PETREL_O_CREAT | PETREL_O_TRUNC);
    if (err) return err;
    n = petrel_fs_file_write(&t->fs, &f, data, len);
    err = petrel_fs_file_close(&t->fs, &f);
    if (n < 0) return (int)n;
    return err;
}

/* Read a whole file into buf (up to cap bytes); returns its length or an error. */
static inline int64_t tfs_get(struct tfs *t, const char *path, void *buf, uint64_t cap)
{
    struct petrel_fs_file f;
    int64_t n;
    int err = petrel_fs_file_open(&t->fs, &f, path, PETREL_O_RDONLY);
    if (err) return err;
    n = petrel_fs_file_read(&t->fs, &f, buf, cap);
    err = petrel_fs_file_close(&t->fs, &f);
    return err ? err : n;
}

static inline void tfs_fill(uint8_t *buf, size_t len, uint32_t seed)
{
    size_t i;
    uint32_t x = seed * 2654435761u + 1;
    for (i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}

/* Compare with the first differing offset in the failure message. */
#define TFS_CHECK_SAME(a, b, n)                                                              \
    do {                                                                                     \
        size_t tfs_k_;                                                                       \
        for (tfs_k_ = 0; tfs_k_ < (size_t)(n); tfs_k_++)                                     \
            CHECK_MSG(((const uint8_t *)(a))[tfs_k_] == ((const uint8_t *)(b))[tfs_k_],      \
                      "contents differ at byte %zu of %zu: %02x != %02x", tfs_k_,            \
                      (size_t)(n), ((const uint8_t *)(a))[tfs_k_],                            \
                      ((const uint8_t *)(b))[tfs_k_]);                                       \
    } while (0)

#define TFS_FOR_EACH_GEOMETRY(t, cycles)                                                     \
    for (int tfs_i_ = 0; tfs_i_ < TFS_NGEOM; tfs_i_++)                                       \
        for (int tfs_once_ = (tfs_setup(&(t), &tfs_geometries[tfs_i_], (cycles)),            \
                              test_log("geometry %s", tfs_geometries[tfs_i_].name), 1);     \
             tfs_once_; tfs_once_ = 0, tfs_teardown(&(t)))

#endif
