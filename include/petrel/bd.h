/*
 * Block devices for the flash engine: the interface the engine calls, and the devices Petrel
 * ships (RAM, image file, emulated flash).
 *
 * A block device is an array of block_count erase blocks of block_size bytes. The engine
 * reads in multiples of read_size at read_size-aligned offsets, programs in multiples of
 * prog_size at prog_size-aligned offsets of erased space only, and erases whole blocks.
 * Callbacks return 0 or a negative PT_E* code: -PT_EIO for a device error, -PT_ECORRUPT when
 * the device itself knows the data is bad. Devices never allocate unless documented.
 *
 * Plain C99, no dependencies: this builds for microcontrollers.
 */
#ifndef PETREL_BD_H
#define PETREL_BD_H

#include <stddef.h>
#include <stdint.h>

#include "petrel/prng.h"

struct petrel_bd {
    void *context; /* passed back to every callback */

    /* Read size bytes at (block, off) into buf. */
    int (*read)(void *context, uint32_t block, uint32_t off, void *buf, uint32_t size);
    /* Program size bytes of erased space at (block, off). */
    int (*prog)(void *context, uint32_t block, uint32_t off, const void *buf, uint32_t size);
    /* Erase one block; its contents become undefined until programmed (or erase_value). */
    int (*erase)(void *context, uint32_t block);
    /* Make every completed prog and erase durable (flush write caches). */
    int (*sync)(void *context);

    /* Geometry. */
    uint32_t read_size;   /* smallest read, bytes */
    uint32_t prog_size;   /* smallest program, bytes */
    uint32_t block_size;  /* erase block, bytes; a multiple of read_size and prog_size */
    uint32_t block_count; /* number of erase blocks */
    int32_t erase_value;  /* byte value of erased memory (0xff, 0x00), or -1 if unknown */
};

/* --- RAM device: block_count * block_size bytes of caller memory. ------------------------ */

struct petrel_bd_ram {
    uint8_t *memory;
    uint32_t block_size;
    uint32_t block_count;
};

/*
 * Set up bd as a RAM device over memory (block_count * block_size bytes, caller-owned),
 * with the given read and program granularity. Erase fills a block with erase_value
 * (0xff when erase_value is -1). Returns 0 or -PT_EINVAL for inconsistent geometry.
 */
int petrel_bd_ram_init(struct petrel_bd *bd, struct petrel_bd_ram *ram, void *memory,
                       uint32_t read_size, uint32_t prog_size, uint32_t block_size,
                       uint32_t block_count, int32_t erase_value);

/* Check an access against a device's geometry: 0 or -PT_EINVAL. Devices share this check. */
int petrel_bd_check(const struct petrel_bd *bd, uint32_t block, uint32_t off, uint32_t size,
                    uint32_t granularity);

/* --- Image file device: a regular file or a block device node (POSIX). ------------------- */

struct petrel_bd_file {
    int fd;               /* open descriptor, owned by the device until close */
    uint32_t block_size;
    uint32_t block_count;
    int32_t erase_value;  /* byte written by erase, or -1: erase writes nothing */
    /* optional whole-block read cache (petrel_bd_file_set_cache) */
    uint8_t *cache;       /* cache_slots * block_size bytes */
    uint32_t *cache_tag;  /* block held by each slot, or PETREL_BD_FILE_NO_BLOCK */
    uint32_t cache_slots;
    uint64_t preads;      /* pread calls made (statistics) */
    uint64_t read_bytes;  /* bytes read from the file (statistics) */
};
#define PETREL_BD_FILE_NO_BLOCK 0xffffffffu

/*
 * Open path as an image: read/prog are pread/pwrite at block * block_size + off, sync is
 * fsync. block_count 0 takes the count from the size of the file or device (size /
 * block_size; -PT_EINVAL if that is 0). A regular file shorter than the geometry is extended
 * when `create` is set (with erase_value bytes, or zeros when erase_value is -1) and refused
 * with -PT_EINVAL otherwise; `create` also creates a missing file. erase writes block_size
 * erase_value bytes, or does nothing at all when erase_value is -1 (for media with no erase,
 * such as SD cards and eMMC). Returns 0, -PT_EINVAL for bad geometry, -PT_ENOENT / -PT_EACCES
 * / -PT_EIO from the OS. Uses no memory beyond a small stack buffer.
 */
int petrel_bd_file_open(struct petrel_bd *bd, struct petrel_bd_file *file, const char *path,
                        int create, uint32_t read_size, uint32_t prog_size,
                        uint32_t block_size, uint32_t block_count, int32_t erase_value);

/*
 * Read through a cache of whole blocks: a read of any part of block b reads all of b once
 * (one pread) into slot b mod slots, later reads of b are served from memory. Programs and
 * erases write through (the file is written at once, then the cached copy is updated), so
 * a sync still makes every completed prog and erase durable. buffer holds slots * block_size
 * bytes and tags `slots` entries; both stay the caller's and must outlive the device.
 * slots 0 turns the cache off. Returns -PT_EINVAL for a missing buffer.
 */
int petrel_bd_file_set_cache(struct petrel_bd_file *file, void *buffer, uint32_t *tags,
                             uint32_t slots);

/* Close the image (after a final fsync). Returns 0 or -PT_EIO if the fsync failed. */
int petrel_bd_file_close(struct petrel_bd_file *file);

/* --- Emulated flash: a deterministic, fault-injecting device for tests. ---------------- */

/* What erase leaves in a block. */
enum petrel_bd_emu_erase {
    PETREL_BD_EMU_ERASE_00 = 0x00,
    PETREL_BD_EMU_ERASE_FF = 0xff,
    PETREL_BD_EMU_ERASE_RANDOM = -1, /* no erase value: random bytes from the seed */
    PETREL_BD_EMU_ERASE_KEEP = -2,   /* no erase value: old contents stay (like an SD card) */
};

/* How prog treats bytes that are not in the erased state. */
enum petrel_bd_emu_prog_mode {
    PETREL_BD_EMU_PROG_RAW = 0,    /* overwrite, like RAM or an SD card */
    PETREL_BD_EMU_PROG_NOR = 1,    /* bits only move away from the erase value: with 0xff
                                    * new = old & data, with 0x00 new = old | data, so a
                                    * second prog of a byte gives a mix (as real NOR does) */
    PETREL_BD_EMU_PROG_STRICT = 2, /* a prog touching a byte already programmed since its
                                    * erase fails with -PT_EINVAL and changes nothing (finds
                                    * engine bugs) */
};

/* Faulty behaviour of a bad block, or of any block past its endurance. */
enum petrel_bd_emu_fault {
    PETREL_BD_EMU_OK = 0,
    PETREL_BD_EMU_PROG_ERROR,  /* prog returns -PT_EIO, the block is unchanged */
    PETREL_BD_EMU_ERASE_ERROR, /* erase returns -PT_EIO, the block is unchanged */
    PETREL_BD_EMU_READ_ERROR,  /* read returns -PT_EIO */
    PETREL_BD_EMU_PROG_NOOP,   /* prog returns 0 but changes nothing */
    PETREL_BD_EMU_ERASE_NOOP,  /* erase returns 0 but changes nothing */
};

/* What a cut of the power does to the operation it interrupts. */
enum petrel_bd_emu_powerloss {
    PETREL_BD_EMU_POWERLOSS_ATOMIC = 0, /* the cut operation does not happen at all */
    PETREL_BD_EMU_POWERLOSS_TORN = 1,   /* a prog writes a random prefix (and, in NOR mode,
                                         * some bits of the next byte); an erase erases a
                                         * random prefix of the block */
};

struct petrel_bd_emu_config {
    uint32_t read_size, prog_size, block_size, block_count;
    int32_t erase_value;                 /* enum petrel_bd_emu_erase */
    enum petrel_bd_emu_prog_mode prog_mode;
    uint32_t endurance;                  /* erases a block survives; 0 = unlimited */
    enum petrel_bd_emu_fault worn_fault; /* behaviour once erase count > endurance */
    uint64_t seed;                       /* every random choice comes from this */
};

/* Counters of device traffic since creation or petrel_bd_emu_stats_reset. */
struct petrel_bd_emu_stats {
    uint64_t reads, progs, erases, syncs;          /* operations (successful or not) */
    uint64_t read_bytes, prog_bytes, erase_bytes;  /* bytes moved by successful ops */
};

struct petrel_bd_emu {
    struct petrel_bd_emu_config cfg;
    uint8_t *memory;       /* block_count * block_size bytes */
    uint8_t *programmed;   /* one bit per byte: programmed since its last erase */
    uint32_t *wear;        /* erase count per block */
    uint8_t *fault;        /* enum petrel_bd_emu_fault per block */
    uint8_t *dirty;        /* per block: changed since the last copy or restore into it */
    struct pt_prng prng;
    struct petrel_bd_emu_stats stats;
    uint64_t powerloss_ops;  /* prog+erase operations counted toward the cut */
    uint64_t powerloss_at;   /* cut at this (1-based) operation; 0 = never */
    enum petrel_bd_emu_powerloss powerloss_mode;
    int dead;                /* the power is off: every op fails until reboot */
};

/*
 * Create an emulated device and set up bd to use it. Allocates (with malloc) the contents
 * and per-block state; this device is for tests and hosts, not firmware. Every block starts
 * erased (wear 0). Returns 0, -PT_EINVAL for bad geometry or settings, -PT_ENOMEM.
 */
int petrel_bd_emu_create(struct petrel_bd *bd, struct petrel_bd_emu *emu,
                         const struct petrel_bd_emu_config *cfg);

/* Free what petrel_bd_emu_create allocated. */
void petrel_bd_emu_destroy(struct petrel_bd_emu *emu);

/* Copy contents, wear, faults, generator and power state of src into dst (same geometry):
 * a snapshot to restart a scenario from. Returns 0 or -PT_EINVAL. Stats are not copied. */
int petrel_bd_emu_copy(struct petrel_bd_emu *dst, const struct petrel_bd_emu *src);

/* Like petrel_bd_emu_copy, but copies only the blocks of dst changed (by prog, erase, flip,
 * fault or wear setting) since dst was last copied or restored from src: cheap restarts from
 * a snapshot. Direct writes to dst->memory are not tracked: use petrel_bd_emu_copy after
 * them. Returns 0 or -PT_EINVAL. */
int petrel_bd_emu_restore(struct petrel_bd_emu *dst, const struct petrel_bd_emu *src);

/* Give one block a faulty behaviour (PETREL_BD_EMU_OK makes it good again). */
int petrel_bd_emu_set_fault(struct petrel_bd_emu *emu, uint32_t block,
                            enum petrel_bd_emu_fault fault);

/*
 * Cut the power at the n-th prog or erase from now (1 = the next one; 0 disarms). That
 * operation is applied as `mode` says and returns -PT_EIO; from then on every read, prog,
 * erase and sync returns -PT_EIO until petrel_bd_emu_reboot.
 */
void petrel_bd_emu_powerloss(struct petrel_bd_emu *emu, uint64_t n,
                             enum petrel_bd_emu_powerloss mode);

/* Power back on: contents stay as the cut left them, the cut is disarmed. */
void petrel_bd_emu_reboot(struct petrel_bd_emu *emu);

/* Whether the power is off (a cut happened and no reboot since). */
int petrel_bd_emu_is_dead(const struct petrel_bd_emu *emu);

/* Flip nbits random bits in block (UINT32_MAX: a random block for each bit). */
int petrel_bd_emu_flip_bits(struct petrel_bd_emu *emu, uint32_t block, uint32_t nbits);

/* Flip nbits random bits within bytes [off, off + len) of block. */
int petrel_bd_emu_flip_range(struct petrel_bd_emu *emu, uint32_t block, uint32_t off,
                             uint32_t len, uint32_t nbits);

/* Put bytes [off, off + len) of block back in the erased state, as if never programmed since
 * the last erase: erase_value bytes (random for ERASE_RANDOM, unchanged for ERASE_KEEP) and
 * no longer "programmed" for PROG_STRICT. Tests use it to model a write that never happened. */
int petrel_bd_emu_set_erased(struct petrel_bd_emu *emu, uint32_t block, uint32_t off,
                             uint32_t len);

/* Erase count of a block (0 for an out-of-range block). */
uint32_t petrel_bd_emu_wear(const struct petrel_bd_emu *emu, uint32_t block);

/* Set the erase count of a block (to age a device quickly in tests). */
int petrel_bd_emu_set_wear(struct petrel_bd_emu *emu, uint32_t block, uint32_t wear);

/* Zero the traffic counters. */
void petrel_bd_emu_stats_reset(struct petrel_bd_emu *emu);

#endif
