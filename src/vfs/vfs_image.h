/*
 * The image backend's extras beyond the vfs ops: formatting an image and reaching the
 * engine under an opened image vfs (for fsck and info). Used by the CLI only.
 */
#ifndef PETREL_VFS_IMAGE_H
#define PETREL_VFS_IMAGE_H

#include <stdint.h>

#include "petrel/fs.h"
#include "petrel/vfs.h"

/* Defaults of mkfs, and what an image is first tried with at open. */
#define IMAGE_BLOCK_SIZE 4096
#define IMAGE_PROG_SIZE 16
#define IMAGE_READ_SIZE 16
#define IMAGE_ERASE_VALUE 0xff /* images are made to be written to NOR flash */
#define IMAGE_BLOCK_CYCLES 500 /* metadata pairs move after this many erases */

/*
 * Create (or overwrite) an image file of size bytes, or format a block device (size taken
 * from the device), with an empty filesystem.
 * Returns 0, -PT_EINVAL (bad geometry: sizes must divide block_size, size a multiple of
 * block_size of at least 2 blocks), -PT_EBUSY (image in use), or a device/engine error.
 */
int petrel_vfs_image_format(const char *path, uint64_t size, uint32_t block_size,
                            uint32_t prog_size, uint32_t read_size);

/* The engine of an opened image vfs (NULL for another backend). */
struct petrel_fs *petrel_vfs_image_fs(struct petrel_vfs *vfs);

#endif
