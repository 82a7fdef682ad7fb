/*
 * A firmware-style use of the Petrel flash engine: a SPI-NOR-like chip behind four callbacks
 * (read, prog, erase, sync), every buffer static, no malloc (built with
 * -DPETREL_FS_NO_MALLOC), no stdio in the firmware build.
 *
 * The "chip" is a static array with NOR semantics: erase sets a 4 KiB sector to 0xff, a
 * program can only clear bits (the new byte is ANDed into the old one, as on a real chip), so
 * an engine that programmed a byte twice would read back a mix. On a board, the four callbacks
 * become the SPI commands (READ 0x03, PAGE PROGRAM 0x02, SECTOR ERASE 0x20, wait for the
 * status register's busy bit in sync) and everything else stays as it is.
 *
 * The program formats, mounts, makes a directory, writes a file, renames and removes
 * entries, then "cuts the power": it forgets the mounted state without unmounting, mounts
 * again and reads the file back. main returns 0 when everything matched, otherwise the
 * number of the step that failed (built with -DEXAMPLE_REPORT, the host build also prints the
 * step and the error). `make test` runs it on the host; `make size` links it for Cortex-M0 and
 * measures the engine inside it (docs/FIRMWARE.md).
 */
#include <stdint.h>
#include <string.h>

#include "petrel/common.h"
#include "petrel/fs.h"

#ifdef EXAMPLE_REPORT
#include <stdio.h>
#endif

/* ---- the chip: 16 sectors of 4 KiB (64 KiB), erased to 0xff ---- */

#define NOR_SECTOR 4096u
#define NOR_SECTORS 16u
#define NOR_READ_SIZE 16u /* the engine's smallest read and program: any value that divides */
#define NOR_PROG_SIZE 16u /* the 256-byte page program of the chip works */

static uint8_t nor_memory[NOR_SECTORS * NOR_SECTOR];

static int nor_read(void *context, uint32_t block, uint32_t off, void *buf, uint32_t size)
{
    (void)context;
    memcpy(buf, &nor_memory[block * NOR_SECTOR + off], size);
    return 0;
}

static int nor_prog(void *context, uint32_t block, uint32_t off, const void *buf, uint32_t size)
{
    const uint8_t *src = (const uint8_t *)buf;
    uint8_t *dst = &nor_memory[block * NOR_SECTOR + off];
    uint32_t i;
    (void)context;
    for (i = 0; i < size; i++)
        dst[i] &= src[i]; /* NOR: programming only clears bits */
    return 0;
}

static int nor_erase(void *context, uint32_t block)
{
    (void)context;
    memset(&nor_memory[block * NOR_SECTOR], 0xff, NOR_SECTOR);
    return 0;
}

static int nor_sync(void *context)
{
    (void)context;
    return 0;
}

static const struct petrel_bd nor_device = {
    .context = NULL,
    .read = nor_read,
    .prog = nor_prog,
    .erase = nor_erase,
    .sync = nor_sync,
    .read_size = NOR_READ_SIZE,
    .prog_size = NOR_PROG_SIZE,
    .block_size = NOR_SECTOR,
    .block_count = NOR_SECTORS,
    .erase_value = 0xff,
};

/* ---- the filesystem: static state and buffers ---- */

#define CACHE_SIZE 256u   /* read and program caches: one data page each */
#define LOOKAHEAD_SIZE 8u /* 64 blocks of allocator bitmap: the whole chip */
#define FILE_BUFFER 256u  /* a file's page buffer: the page size of this geometry */

static uint8_t read_buffer[CACHE_SIZE], prog_buffer[CACHE_SIZE];
static uint8_t lookahead_buffer[LOOKAHEAD_SIZE];
static uint8_t file_buffer[FILE_BUFFER];
static struct petrel_fs fs;
static struct petrel_fs_file file;
static struct petrel_fs_config config;

static const char message[] = "petrel on a SPI NOR chip: survives the power cut\n";

#ifndef EXAMPLE_READ_ONLY
static int example_run(int *step)
{
    struct petrel_fs_file_config fcfg;
    uint8_t back[sizeof(message)];
    int64_t n;
    int err;

    config.bd = &nor_device;
    config.cache_size = CACHE_SIZE;
    config.lookahead_size = LOOKAHEAD_SIZE;
    config.read_buffer = read_buffer;
    config.prog_buffer = prog_buffer;
    config.lookahead_buffer = lookahead_buffer;
    config.block_cycles = 100;
    memset(&fcfg, 0, sizeof(fcfg)); /* fields left zero take their defaults */
    fcfg.buffer = file_buffer;

    *step = 1;
    if ((err = petrel_fs_format(&fs, &config))) return err;
    *step = 2;
    if ((err = petrel_fs_mount(&fs, &config))) return err;
    *step = 3;
    if ((err = petrel_fs_mkdir(&fs, "/log"))) return err;
    *step = 4;
    if ((err = petrel_fs_file_opencfg(&fs, &file, "/log/boot.txt", PETREL_O_WRONLY | PETREL_O_CREAT,
                                      &fcfg)))
        return err;
    *step = 5;
    n = petrel_fs_file_write(&fs, &file, message, sizeof(message));
    if (n != (int64_t)sizeof(message)) {
        (void)petrel_fs_file_close(&fs, &file);
        return n < 0 ? (int)n : -PT_EIO;
    }
    *step = 6;
    if ((err = petrel_fs_file_close(&fs, &file))) return err;
    *step = 7;
    if ((err = petrel_fs_rename(&fs, "/log/boot.txt", "/boot.txt"))) return err;
    *step = 8;
    if ((err = petrel_fs_remove(&fs, "/log"))) return err;

    /* power cut: the mounted state is lost without an unmount */
    memset(&fs, 0, sizeof(fs));
    memset(&file, 0, sizeof(file));

    *step = 9;
    if ((err = petrel_fs_mount(&fs, &config))) return err;
    *step = 10;
    if ((err = petrel_fs_file_opencfg(&fs, &file, "/boot.txt", PETREL_O_RDONLY, &fcfg))) return err;
    *step = 11;
    n = petrel_fs_file_read(&fs, &file, back, sizeof(back));
    (void)petrel_fs_file_close(&fs, &file);
    if (n < 0) return (int)n;
    if (n != (int64_t)sizeof(message) || memcmp(back, message, sizeof(message)) != 0)
        return -PT_ECORRUPT;
    *step = 12; /* the removed directory must stay removed */
    if ((err = petrel_fs_file_opencfg(&fs, &file, "/log/boot.txt", PETREL_O_RDONLY, &fcfg)) !=
        -PT_ENOENT)
        return err ? err : -PT_EEXIST;
    *step = 13;
    return petrel_fs_unmount(&fs);
}

#else
/* What a reader-only firmware calls (mount, open for reading, read, list, unmount), linked by
 * `make size` to show how much of the engine such an app keeps without a read-only switch. */
static int example_run(int *step)
{
    struct petrel_fs_file_config fcfg;
    struct petrel_fs_dir dir;
    struct petrel_fs_info info;
    uint8_t back[sizeof(message)];
    int err;
    config.bd = &nor_device;
    config.cache_size = CACHE_SIZE;
    config.lookahead_size = LOOKAHEAD_SIZE;
    config.read_buffer = read_buffer;
    config.prog_buffer = prog_buffer;
    config.lookahead_buffer = lookahead_buffer;
    memset(&fcfg, 0, sizeof(fcfg)); /* fields left zero take their defaults */
    fcfg.buffer = file_buffer;
    *step = 1;
    if ((err = petrel_fs_mount(&fs, &config))) return err;
    *step = 2;
    if ((err = petrel_fs_dir_open(&fs, &dir, "/"))) return err;
    while ((err = petrel_fs_dir_read(&fs, &dir, &info)) > 0)
        continue;
    (void)petrel_fs_dir_close(&fs, &dir);
    if (err < 0) return err;
    *step = 3;
    if ((err = petrel_fs_file_opencfg(&fs, &file, "/boot.txt", PETREL_O_RDONLY, &fcfg))) return err;
    err = (int)petrel_fs_file_read(&fs, &file, back, sizeof(back));
    (void)petrel_fs_file_close(&fs, &file);
    if (err < 0) return err;
    *step = 4;
    return petrel_fs_unmount(&fs);
}
#endif

int main(void)
{
    int step = 0;
    int err = example_run(&step);
#ifdef EXAMPLE_REPORT
    if (err) {
        fprintf(stderr, "example: step %d failed: %s\n", step, petrel_strerror(err));
    } else {
        printf("example: formatted, wrote, power-cycled, read back %u bytes: ok\n",
               (unsigned)sizeof(message));
    }
#endif
    return err ? step : 0;
}
