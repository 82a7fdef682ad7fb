/*
 * Durable small files for server state (registry state, block service identity): a file is
 * replaced atomically (temp file in the same directory, write, fsync, rename over the old
 * one, fsync the directory), so after a crash at any point the name holds either the old or
 * the new content, never a mix. Never used for bulk data (block files have their own path).
 */
#ifndef PETREL_CLUSTER_DURABLE_H
#define PETREL_CLUSTER_DURABLE_H

#include <stddef.h>
#include <stdint.h>

/* Create a directory and its parents (mode 0755); existing ones are fine: 0 or -PT_E*. */
int pt_mkdir_p(const char *path);

/* fsync a directory, making renames and unlinks in it durable: 0 or -PT_EIO. */
int pt_dir_fsync(const char *dir);

/* Atomically replace dir/name with len bytes of data, durably: 0 or -PT_EIO/-PT_ENOSPC. */
int pt_durable_write_file(const char *dir, const char *name, const void *data, size_t len);

/*
 * Read a whole file of at most max bytes into a malloc'd buffer: 0, -PT_ENOENT, -PT_EFBIG
 * (larger than max), -PT_EIO, -PT_ENOMEM.
 */
int pt_read_file(const char *path, size_t max, uint8_t **data, size_t *len);

/* Map errno to a negative PT_E* code. */
int pt_errno_to_pt(int e);

#endif
