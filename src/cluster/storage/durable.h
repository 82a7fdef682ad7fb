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

/*
 * Create a directory and its parents (mode 0755); existing ones are fine: 0 or -PT_E*. Every
 * directory it creates is made durable: its parent is fsync'd after the mkdir (POSIX makes a
 * new entry durable only through an fsync of the directory holding it).
 */
int pt_mkdir_p(const char *path);

/* fsync a directory, making creations, renames and unlinks in it durable: 0 or -PT_EIO. */
int pt_dir_fsync(const char *dir);

/* fsync an open file (path names it for the hook below): 0 or -PT_EIO. */
int pt_file_fsync(int fd, const char *path);

/*
 * Every fsync of the servers' files and directories goes through pt_dir_fsync / pt_file_fsync
 * (and the functions here that use them). A test may install a hook that sees each one (the
 * path, whether it is a directory) and returns what fsync(2) would (0 or -1 with errno set),
 * to count the calls or to fail them; NULL restores fsync(2). Not thread-safe: set it while
 * no server runs in the process.
 */
typedef int (*pt_fsync_hook)(void *ctx, int fd, const char *path, int is_dir);
void pt_durable_set_fsync_hook(pt_fsync_hook hook, void *ctx);

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
