/*
 * Block devices for the flash engine: the interface the engine calls, and the devices Petrel
 * ships (RAM here; image file and emulated flash are declared below as they land).
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

#endif
