/*
 * Shared helpers for the flash engine's heavy tests: the four geometries every sweep runs
 * over, an emulated device with a mounted filesystem and static buffers (so a test can
 * abandon a filesystem after a power cut without leaking), file helpers, and the counter of
 * simulated power cuts that the summary case reports.
 */
#ifndef PETREL_FS_HARNESS_H
#define PETREL_FS_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "petrel/bd.h"
#include "petrel/fs.h"

struct fsh_geometry {
    const char *name;
    uint32_t read_size, prog_size, block_size, block_count;
    int32_t erase_value; /* enum petrel_bd_emu_erase */
    enum petrel_bd_emu_prog_mode prog_mode;
    uint32_t cache_size, lookahead_size;
    int report_no_erase; /* the device reports erase_value -1 whatever its erase does */
};

/* NOR 16/16/4096 (strict programming), eMMC 512/512/512 (no erase), NAND 4096/4096/32768,
 * tiny 128 B blocks, and NOR with 1-byte reads and programs (NOR bit semantics). */
extern const struct fsh_geometry fsh_geometries[];
#define FSH_GEOMETRY_COUNT 5
enum { FSH_NOR = 0, FSH_EMMC = 1, FSH_NAND = 2, FSH_TINY = 3, FSH_NOR1 = 4 };

/*
 * The erase matrix: every erase behaviour — 0xff (NOR bits), 0x00 (NOR bits), RANDOM, KEEP
 * (old contents stay, like an SD card) and a device that erases to 0xff but reports no erase
 * value (-1) — at block sizes 512, 4096 and 65536, with 16-byte programs so that many commits
 * share a block. fsh_matrix[size * FSH_MATRIX_ERASES + erase]. Devices without an erase value
 * program raw: like an SD card they overwrite whatever is there (a torn program whose prefix
 * equals the old bytes leaves nothing to tell it happened, and the engine may program there
 * again, which a strict device would refuse although real media accept it).
 */
#define FSH_MATRIX_SIZES 3
#define FSH_MATRIX_ERASES 5
extern const struct fsh_geometry fsh_matrix[FSH_MATRIX_SIZES * FSH_MATRIX_ERASES];
enum { FSH_M512 = 0, FSH_M4K = 1, FSH_M64K = 2 };

/* An emulated device, its config and a filesystem. Must not move once set up. */
struct fsh_dev {
    struct fsh_geometry geo;
    struct petrel_bd bd;
    struct petrel_bd_emu emu;
    struct petrel_fs_config cfg;
    struct petrel_fs fs;
    void *read_buffer, *prog_buffer, *lookahead_buffer;
    int mounted;
};

/* Create the device (erased, seeded); fills cfg with static buffers. Fails the case on error.
 * With PETREL_FS_TEST_LOG set in the environment the engine's log goes to stderr. */
void fsh_dev_init(struct fsh_dev *d, const struct fsh_geometry *g, uint64_t seed);
void fsh_dev_free(struct fsh_dev *d);

/* Format and mount; fails the case on error. */
void fsh_format_mount(struct fsh_dev *d);
/* Mount / unmount keeping d->mounted right; return the engine's code. */
int fsh_mount(struct fsh_dev *d);
int fsh_unmount(struct fsh_dev *d);
/* After a power cut: drop the filesystem state (unmount, errors ignored), revive the device. */
void fsh_reboot(struct fsh_dev *d);

/* Deterministic bytes for (seed, offset): content that differs per file and per version. */
void fsh_pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t offset);

/* Create or replace path with len bytes of data (open CREAT|TRUNC, write, close). */
int fsh_write_file(struct petrel_fs *fs, const char *path, const void *data, size_t len);
/* Write len bytes of fsh_pattern(seed) to path. */
int fsh_write_pattern(struct petrel_fs *fs, const char *path, uint64_t seed, size_t len);
/* Read a whole file into buf (cap bytes); returns its size or a negative code. */
int64_t fsh_read_file(struct petrel_fs *fs, const char *path, void *buf, size_t cap);
/* 1 if path holds exactly len bytes of data, 0 if it holds something else, or a negative code. */
int fsh_file_equals(struct petrel_fs *fs, const char *path, const void *data, size_t len);
/* Same, against fsh_pattern(seed). */
int fsh_file_is_pattern(struct petrel_fs *fs, const char *path, uint64_t seed, size_t len);

/* Count simulated power cuts: cases run in separate processes, so counts go to a file
 * shared by the run (keyed by the runner's pid) and the summary case adds them up. */
void fsh_powercuts_add(const char *name, uint64_t n);
/* The run's total so far and how many cases reported (the summary case calls this last
 * with reset set, which removes the shared file). */
uint64_t fsh_powercuts_total(int reset, unsigned *reports);

/*
 * Whether (block, slot) holds a valid data page as docs/SPEC-FS.md defines it: page_size
 * bytes, payload then le32 CRC32C of (le32 block, le32 slot, payload). Tests use it to aim
 * bit flips at file data and never at metadata (where a flip legitimately falls back).
 */
int fsh_is_data_page(const struct fsh_dev *d, uint32_t page_size, uint32_t block, uint32_t slot);

/*
 * Cases that expose an engine bug not fixed yet call this first: unless PETREL_FS_KNOWN_BUGS=1
 * it prints "known engine bug (not run by default): DESCRIPTION" and returns 1, and the case
 * returns without checking; with it set, it returns 0 and the case runs (and fails). Keeps
 * `make test` green while the failing case stays in the tree, named in the report.
 */
int fsh_known_bug(const char *description);

/* A problem collector for petrel_fs_check: logs each problem with test_log. */
void fsh_check_log(void *ctx, const char *problem);

#endif
