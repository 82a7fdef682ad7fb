/*
 * The FUSE driver: serves one vfs (an image, a cluster, or a local tree) at a mount point
 * through libfuse3, until unmounted (fusermount3 -u) or interrupted (Ctrl-C, SIGTERM).
 */
#ifndef PETREL_FUSE_MOUNT_H
#define PETREL_FUSE_MOUNT_H

#include <stddef.h>

#include "petrel/vfs.h"

struct petrel_mount_options {
    int foreground;        /* stay in the foreground (else daemonize once mounted) */
    int read_only;         /* mount read-only */
    const char *fuse_opts; /* extra comma-separated -o options for libfuse, or NULL */
};

/* Where a failed petrel_fuse_mount stopped, for the caller's message. */
enum petrel_mount_stage {
    PETREL_MOUNT_STAGE_OPEN = 1,  /* opening the store */
    PETREL_MOUNT_STAGE_FUSE = 2,  /* setting up libfuse (bad -o option) */
    PETREL_MOUNT_STAGE_MOUNT = 3, /* mounting (mount point missing, busy, no /dev/fuse) */
    PETREL_MOUNT_STAGE_CLOSE = 4, /* unmounting the store after serving */
};

/*
 * Open the store loc names, mount it at mountpoint and serve requests until unmounted.
 * Without foreground, returns in the parent once the mount is up (the child serves; the
 * parent's return value is 0). Returns 0, or a negative PT_E* code with *stage set.
 */
int petrel_fuse_mount(const struct petrel_vfs_location *loc, const char *mountpoint,
                      const struct petrel_mount_options *options, enum petrel_mount_stage *stage);

#endif
