/*
 * Shared helpers for the flash engine's heavy tests (see fs_harness.h). Owns the geometry
 * table every sweep uses, so "the four geometries" means the same thing in every test.
 */
#include "fs_harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"
#include "test.h"

const struct fsh_geometry fsh_geometries[FSH_GEOMETRY_COUNT] = {
    {"nor", 16, 16, 4096, 64, 0xff, PETREL_BD_EMU_PROG_STRICT, 256, 16, 0},
    {"emmc", 512, 512, 512, 256, PETREL_BD_EMU_ERASE_KEEP, PETREL_BD_EMU_PROG_RAW, 512, 16, 0},
    {"nand", 4096, 4096, 32768, 32, 0xff, PETREL_BD_EMU_PROG_NOR, 4096, 16, 0},
    {"tiny", 16, 16, 128, 256, 0x00, PETREL_BD_EMU_PROG_NOR, 128, 32, 0},
    {"nor1", 1, 1, 4096, 64, 0xff, PETREL_BD_EMU_PROG_NOR, 256, 16, 0},
};

/* clang-format off */
#define FSH_MATRIX_ROW(size, count, cache, look)                                                 \
    {#size "-ff", 16, 16, size, count, 0xff, PETREL_BD_EMU_PROG_NOR, cache, look, 0},             \
    {#size "-00", 16, 16, size, count, 0x00, PETREL_BD_EMU_PROG_NOR, cache, look, 0},             \
    {#size "-random", 16, 16, size, count, PETREL_BD_EMU_ERASE_RANDOM, PETREL_BD_EMU_PROG_RAW,    \
     cache, look, 0},                                                                              \
    {#size "-keep", 16, 16, size, count, PETREL_BD_EMU_ERASE_KEEP, PETREL_BD_EMU_PROG_RAW, cache, \
     look, 0},                                                                                     \
    {#size "-unreported", 16, 16, size, count, 0xff, PETREL_BD_EMU_PROG_NOR, cache, look, 1}

const struct fsh_geometry fsh_matrix[FSH_MATRIX_SIZES * FSH_MATRIX_ERASES] = {
    FSH_MATRIX_ROW(512, 128, 256, 16),
    FSH_MATRIX_ROW(4096, 48, 256, 8),
    FSH_MATRIX_ROW(65536, 24, 1024, 8),
};
/* clang-format on */

void fsh_dev_init(struct fsh_dev *d, const struct fsh_geometry *g, uint64_t seed)
{
    struct petrel_bd_emu_config ec;
    /* PETREL_FS_TEST_LOG=1 shows the engine's log while debugging a case. */
    if (getenv("PETREL_FS_TEST_LOG")) petrel_log_set(petrel_log_stderr, NULL, PT_LOG_DEBUG);
    memset(d, 0, sizeof(*d));
    d->geo = *g;
    memset(&ec, 0, sizeof(ec));
    ec.read_size = g->read_size;
    ec.prog_size = g->prog_size;
    ec.block_size = g->block_size;
    ec.block_count = g->block_count;
    ec.erase_value = g->erase_value;
    ec.prog_mode = g->prog_mode;
    ec.seed = seed;
    CHECK_OK(petrel_bd_emu_create(&d->bd, &d->emu, &ec));
    if (g->report_no_erase) d->bd.erase_value = -1;
    d->read_buffer = calloc(1, g->cache_size);
    d->prog_buffer = calloc(1, g->cache_size);
    d->lookahead_buffer = calloc(1, g->lookahead_size);
    CHECK(d->read_buffer && d->prog_buffer && d->lookahead_buffer);
    d->cfg.bd = &d->bd;
    d->cfg.cache_size = g->cache_size;
    d->cfg.lookahead_size = g->lookahead_size;
    d->cfg.block_cycles = 100;
    d->cfg.read_buffer = d->read_buffer;
    d->cfg.prog_buffer = d->prog_buffer;
    d->cfg.lookahead_buffer = d->lookahead_buffer;
}

void fsh_dev_free(struct fsh_dev *d)
{
    if (d->mounted) fsh_unmount(d);
    petrel_bd_emu_destroy(&d->emu);
    free(d->read_buffer);
    free(d->prog_buffer);
    free(d->lookahead_buffer);
}

int fsh_mount(struct fsh_dev *d)
{
    int err = petrel_fs_mount(&d->fs, &d->cfg);
    d->mounted = err == 0;
    return err;
}

int fsh_unmount(struct fsh_dev *d)
{
    int err = 0;
    if (d->mounted) err = petrel_fs_unmount(&d->fs);
    d->mounted = 0;
    return err;
}

void fsh_format_mount(struct fsh_dev *d)
{
    CHECK_OK(petrel_fs_format(&d->fs, &d->cfg));
    CHECK_OK(fsh_mount(d));
}

void fsh_reboot(struct fsh_dev *d)
{
    fsh_unmount(d);
    petrel_bd_emu_reboot(&d->emu);
}

void fsh_pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t offset)
{
    /* Each 8-byte word is a hash of (seed, word index): any offset can be regenerated. */
    size_t i;
    for (i = 0; i < len; i++) {
        uint64_t pos = offset + i, s = seed * 0x9e3779b97f4a7c15ull + (pos >> 3) + 1;
        uint64_t w = pt_splitmix64(&s);
        buf[i] = (uint8_t)(w >> ((pos & 7) * 8));
    }
}

int fsh_write_file(struct petrel_fs *fs, const char *path, const void *data, size_t len)
{
    struct petrel_fs_file f;
    int64_t n;
    int err = petrel_fs_file_open(fs, &f, path, PETREL_O_WRONLY | PETREL_O_CREAT | PETREL_O_TRUNC);
    if (err) return err;
    n = petrel_fs_file_write(fs, &f, data, len);
    if (n >= 0 && (size_t)n != len) n = -PT_EIO;
    err = petrel_fs_file_close(fs, &f);
    return n < 0 ? (int)n : err;
}

int fsh_write_pattern(struct petrel_fs *fs, const char *path, uint64_t seed, size_t len)
{
    uint8_t *buf = (uint8_t *)malloc(len ? len : 1);
    int err;
    CHECK(buf != NULL);
    fsh_pattern(buf, len, seed, 0);
    err = fsh_write_file(fs, path, buf, len);
    free(buf);
    return err;
}

int64_t fsh_read_file(struct petrel_fs *fs, const char *path, void *buf, size_t cap)
{
    struct petrel_fs_file f;
    int64_t n = 0, total = 0;
    int err = petrel_fs_file_open(fs, &f, path, PETREL_O_RDONLY);
    if (err) return err;
    for (;;) {
        if ((size_t)total == cap) {
            uint8_t extra; /* one more byte tells "exactly cap" from "longer" */
            n = petrel_fs_file_read(fs, &f, &extra, 1);
            if (n > 0) total++;
            break;
        }
        n = petrel_fs_file_read(fs, &f, (uint8_t *)buf + total, cap - (size_t)total);
        if (n <= 0) break;
        total += n;
    }
    err = petrel_fs_file_close(fs, &f);
    if (n < 0) return n;
    return err ? err : total;
}

int fsh_file_equals(struct petrel_fs *fs, const char *path, const void *data, size_t len)
{
    uint8_t *buf = (uint8_t *)malloc(len + 1);
    int64_t n;
    int same;
    CHECK(buf != NULL);
    n = fsh_read_file(fs, path, buf, len + 1);
    same = n >= 0 && (size_t)n == len && memcmp(buf, data, len) == 0;
    free(buf);
    return n < 0 ? (int)n : same;
}

int fsh_file_is_pattern(struct petrel_fs *fs, const char *path, uint64_t seed, size_t len)
{
    uint8_t *want = (uint8_t *)malloc(len ? len : 1);
    int r;
    CHECK(want != NULL);
    fsh_pattern(want, len, seed, 0);
    r = fsh_file_equals(fs, path, want, len);
    free(want);
    return r;
}

static void powercut_file(char *out, size_t n)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, n, "%s/petrel-fs-powercuts-%ld", tmp && *tmp ? tmp : "/tmp", (long)getppid());
}

void fsh_powercuts_add(const char *name, uint64_t n)
{
    char path[512];
    FILE *f;
    powercut_file(path, sizeof(path));
    f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%s %" PRIu64 "\n", name, n);
    fclose(f);
}

uint64_t fsh_powercuts_total(int reset, unsigned *reports)
{
    char path[512], name[128];
    unsigned long long v;
    uint64_t total = 0;
    FILE *f;
    powercut_file(path, sizeof(path));
    *reports = 0;
    f = fopen(path, "r");
    if (!f) return 0;
    while (fscanf(f, "%127s %llu", name, &v) == 2) {
        total += v;
        (*reports)++;
    }
    fclose(f);
    if (reset) remove(path);
    return total;
}

void fsh_check_log(void *ctx, const char *problem)
{
    (void)ctx;
    test_log("fsck: %s", problem);
}

int fsh_is_data_page(const struct fsh_dev *d, uint32_t page_size, uint32_t block, uint32_t slot)
{
    const uint8_t *p;
    uint8_t addr[8];
    uint32_t crc;
    if (block >= d->geo.block_count || (uint64_t)(slot + 1) * page_size > d->geo.block_size)
        return 0;
    p = d->emu.memory + (size_t)block * d->geo.block_size + (size_t)slot * page_size;
    pt_put_le32(addr, block);
    pt_put_le32(addr + 4, slot);
    crc = petrel_crc32c(petrel_crc32c(0, addr, 8), p, page_size - 4);
    return crc == pt_get_le32(p + page_size - 4);
}

int fsh_known_bug(const char *description)
{
    const char *run = getenv("PETREL_FS_KNOWN_BUGS");
    if (run && *run && strcmp(run, "0") != 0) return 0;
    printf("    known engine bug (not run by default; PETREL_FS_KNOWN_BUGS=1 runs it): %s\n",
           description);
    fflush(stdout);
    test_log("skipped: %s", description);
    return 1;
}
