/*
 * The vfs ops: one small filesystem interface that the CLI and the FUSE driver use for every
 * kind of place Petrel data can live — a local directory, a flash-engine image file, or a
 * cluster reached through its registry. A backend fills a table of operations; callers use
 * only the petrel_vfs_* wrappers below and never look inside a backend.
 *
 * Conventions:
 * - Paths given to a mounted vfs are absolute inside it ("/", "/a/b"); the backend maps them.
 * - Every function returns 0 (or a non-negative count) or a negative PT_E* code.
 * - A vfs is not thread-safe: callers serialize calls (the flash engine is single-threaded).
 * - File handles are opened, read and written at explicit offsets, and closed. Closing a
 *   handle that wrote is what makes the data durable and, on a write-once backend (cluster),
 *   what links the file into its directory. petrel_vfs_file_sync never links: it only makes
 *   already-written bytes durable where the backend can.
 * - petrel_vfs_file_abandon closes a handle whose writer failed: a write-once backend drops
 *   the unlinked file, so a half-written file never appears.
 * - Capabilities (PETREL_VFS_CAP_*) tell callers what a backend can do; operations a
 *   backend cannot do return -PT_ENOTSUP.
 */
#ifndef PETREL_VFS_H
#define PETREL_VFS_H

#include <stddef.h>
#include <stdint.h>

/* --- locations -------------------------------------------------------------------------- */

enum petrel_vfs_kind {
    PETREL_VFS_LOCAL = 1,   /* a plain local path */
    PETREL_VFS_IMAGE = 2,   /* IMAGE:PATH, a flash-engine image file or block device */
    PETREL_VFS_CLUSTER = 3, /* petrel://HOST:PORT/PATH, a cluster through its registry */
};

#define PETREL_VFS_PATH_MAX 4096
#define PETREL_VFS_HOST_MAX 256

struct petrel_vfs_location {
    enum petrel_vfs_kind kind;
    char store[PETREL_VFS_PATH_MAX]; /* LOCAL: the directory the vfs is rooted at ("/" or
                                        "."); IMAGE: the image file; CLUSTER: "" */
    char host[PETREL_VFS_HOST_MAX];  /* CLUSTER: registry host, or with port 0 the members
                                        of a registry group "HOST:PORT,HOST:PORT,..." */
    uint16_t port;                   /* CLUSTER: registry port (0: host is a group) */
    char path[PETREL_VFS_PATH_MAX];  /* absolute path inside the vfs, normalized: "/" or
                                        "/a/b" (no trailing '/', no "." or ".." parts) */
    /* CLUSTER, set by the caller (parsing leaves them empty): where changes of files stage
     * their writes ("": $XDG_CACHE_HOME/petrel, else ~/.cache/petrel) and how many bytes one
     * change stages before it uploads them as new spans (0: 64 MiB). */
    char cache_dir[PETREL_VFS_PATH_MAX];
    uint64_t cache_size;
};

/*
 * Parse a location given by a user:
 * - "petrel://HOST:PORT[/PATH]"                  -> CLUSTER (PATH defaults to "/");
 * - "petrel://H1:P1,H2:P2,H3:P3[/PATH]"          -> CLUSTER through a registry group of up
 *   to 5 members: host holds "H1:P1,H2:P2,H3:P3", port is 0;
 * - "IMAGE:PATH" where IMAGE names an existing file or block device, or where PATH is empty
 *   or starts with '/' ("new.img:/x" names an image even before it exists)  -> IMAGE;
 * - anything else, and any text that itself exists as a local file (a local name may
 *   contain ':')                                  -> LOCAL, rooted at "/" for an absolute
 *   path and at "." for a relative one.
 * Returns 0, or -PT_EINVAL (malformed cluster address, bad port) / -PT_ENAMETOOLONG.
 */
int petrel_vfs_location_parse(const char *text, struct petrel_vfs_location *loc);

/*
 * Parse the thing a `mount` or `df` names as a whole store: "petrel://HOST:PORT[/]" ->
 * CLUSTER; an existing regular file or block device -> IMAGE (path "/"); an existing directory
 * -> LOCAL rooted there; otherwise IMAGE:PATH forms as above. Returns 0 or a negative code
 * (-PT_ENOENT when it names nothing).
 */
int petrel_vfs_store_parse(const char *text, struct petrel_vfs_location *loc);

/* Normalize an absolute path in place ("//a/./b/" -> "/a/b"); -PT_EINVAL for "..". */
int petrel_vfs_path_normalize(char *path, size_t size);

/* --- the vfs ---------------------------------------------------------------------------- */

/* Entry types (the values of the flash engine's entry types). */
enum petrel_vfs_type {
    PETREL_VFS_REG = 1,
    PETREL_VFS_DIR = 2,
    PETREL_VFS_LNK = 3,  /* symbolic link */
    PETREL_VFS_FIFO = 4, /* named pipe */
    PETREL_VFS_SOCK = 5, /* UNIX-domain socket */
    PETREL_VFS_CHR = 6,  /* character device */
    PETREL_VFS_BLK = 7,  /* block device */
};

/* A uid or gid a backend does not keep (the caller shows its own). */
#define PETREL_VFS_ID_NONE 0xffffffffu

struct petrel_vfs_stat {
    uint8_t type;      /* enum petrel_vfs_type */
    uint64_t size;     /* bytes (files, link targets); entries or 0 (directories) */
    int64_t mtime_sec; /* modification time, seconds since the epoch; 0 = unknown */
    uint32_t mtime_nsec;
    uint32_t mode; /* permission bits incl. setuid/setgid/sticky (0755 / 0644 where the
                      backend keeps none) */
    uint32_t uid, gid; /* owner; PETREL_VFS_ID_NONE where the backend keeps none */
    int64_t atime_sec; /* access and change times; 0 = unknown (then shown as mtime) */
    uint32_t atime_nsec;
    int64_t ctime_sec;
    uint32_t ctime_nsec;
    uint64_t rdev; /* device number of a CHR/BLK node (Linux encoding), else 0 */
    uint64_t version; /* cluster files: the content's version (issue 12); else 0 */
    uint32_t spans;   /* cluster files: how many spans hold the content; else 0 */
    uint64_t ino;     /* CAP_INO: the entry's stable inode number (cluster: its inode id) */
    uint32_t nlink;   /* link count where the backend keeps one (cluster directories: 2 +
                         subdirectories); 0 = unknown (shown as 2 for directories, else 1) */
};

/* What petrel_vfs_setattr changes (one atomic update where the backend can). */
enum petrel_vfs_attr_valid {
    PETREL_VFS_SET_MODE = 0x01,  /* mode & 07777 */
    PETREL_VFS_SET_UID = 0x02,
    PETREL_VFS_SET_GID = 0x04,
    PETREL_VFS_SET_ATIME = 0x08, /* to atime_sec/nsec */
    PETREL_VFS_SET_MTIME = 0x10, /* to mtime_sec/nsec */
    PETREL_VFS_SET_CTIME = 0x20, /* to ctime_sec/nsec (else a change sets it to now) */
};

struct petrel_vfs_attr {
    unsigned valid; /* enum petrel_vfs_attr_valid */
    uint32_t mode, uid, gid;
    int64_t atime_sec, mtime_sec, ctime_sec;
    uint32_t atime_nsec, mtime_nsec, ctime_nsec;
};

/* A node to create with petrel_vfs_mknod: a symbolic link (target), FIFO, socket or device. */
struct petrel_vfs_node {
    uint8_t type;       /* PETREL_VFS_LNK, _FIFO, _SOCK, _CHR or _BLK */
    uint32_t mode;      /* permission bits */
    uint32_t uid, gid;  /* owner (PETREL_VFS_ID_NONE: the backend's default) */
    uint64_t rdev;      /* CHR/BLK */
    const char *target; /* LNK: the target (1..PETREL_VFS_PATH_MAX - 1 bytes) */
};

struct petrel_vfs_statfs {
    uint64_t block_size;   /* bytes per block */
    uint64_t blocks_total; /* capacity, blocks (0 = unknown) */
    uint64_t blocks_used;  /* in use, blocks */
    uint32_t name_max;     /* longest entry name */
};

/* Open flags for petrel_vfs_file_open (values of their own, not the host's O_*). */
enum petrel_vfs_open_flags {
    PETREL_VFS_O_READ = 0x01,
    PETREL_VFS_O_WRITE = 0x02,
    PETREL_VFS_O_CREAT = 0x04,
    PETREL_VFS_O_EXCL = 0x08,
    PETREL_VFS_O_TRUNC = 0x10,
    /* With O_WRITE | O_CREAT on a write-once store: the file may take the place of the one
     * the name holds at open (which is replaced at close only if the name still holds it,
     * else close fails with -PT_ESTALE and leaves the name alone); without it an existing
     * name is -PT_EPERM there. A name free at open must still be free at close (-PT_EEXIST).
     * Other stores ignore it (O_TRUNC rewrites in place). */
    PETREL_VFS_O_REPLACE = 0x20,
    /* Every write goes to the end of the file, whatever offset it names (O_APPEND). */
    PETREL_VFS_O_APPEND = 0x40,
};

/* Capabilities. */
enum petrel_vfs_caps {
    PETREL_VFS_CAP_WRITE_ONCE = 0x01,   /* new files are created, written sequentially once and
                                           linked on close (with RANDOM_WRITE: existing files
                                           change through versions committed at sync/close) */
    PETREL_VFS_CAP_XATTR = 0x02,        /* extended attributes */
    PETREL_VFS_CAP_RANDOM_WRITE = 0x04, /* writes at any offset, truncate */
    PETREL_VFS_CAP_READ_ONLY = 0x08,    /* opened read-only: every change is -PT_EROFS */
    PETREL_VFS_CAP_MTIME = 0x10,        /* keeps modification times settable by set_mtime */
    PETREL_VFS_CAP_MODE = 0x20,         /* keeps permission bits settable by set_mode */
    PETREL_VFS_CAP_OWNER = 0x40,        /* keeps owners, atime and ctime (setattr) */
    PETREL_VFS_CAP_NODES = 0x80,        /* keeps symbolic links, FIFOs, sockets, devices */
    PETREL_VFS_CAP_INO = 0x100,         /* stat gives every entry a stable, non-zero ino */
};

/* Flags for petrel_vfs_open. */
enum petrel_vfs_mount_flags {
    PETREL_VFS_MOUNT_READ_ONLY = 0x01,
};

struct petrel_vfs;
struct petrel_vfs_file;

/* A directory listing callback: return 0 to go on, non-zero to stop (returned as is). */
typedef int (*petrel_vfs_dir_fn)(void *ctx, const char *name, const struct petrel_vfs_stat *st);

struct petrel_vfs_ops {
    const char *name; /* "local", "image", "cluster" */
    int (*stat)(struct petrel_vfs *vfs, const char *path, struct petrel_vfs_stat *st);
    int (*readdir)(struct petrel_vfs *vfs, const char *path, petrel_vfs_dir_fn fn, void *ctx);
    int (*mkdir)(struct petrel_vfs *vfs, const char *path);
    int (*remove)(struct petrel_vfs *vfs, const char *path); /* a file or an empty dir */
    int (*rename)(struct petrel_vfs *vfs, const char *from, const char *to);
    int (*open)(struct petrel_vfs *vfs, const char *path, int flags, struct petrel_vfs_file **file);
    int64_t (*read)(struct petrel_vfs *vfs, struct petrel_vfs_file *file, void *buf, uint64_t size,
                    uint64_t off);
    int64_t (*write)(struct petrel_vfs *vfs, struct petrel_vfs_file *file, const void *buf,
                     uint64_t size, uint64_t off);
    int (*truncate)(struct petrel_vfs *vfs, struct petrel_vfs_file *file, uint64_t size);
    int (*fstat)(struct petrel_vfs *vfs, struct petrel_vfs_file *file, struct petrel_vfs_stat *st);
    int (*sync)(struct petrel_vfs *vfs, struct petrel_vfs_file *file);
    int (*close)(struct petrel_vfs *vfs, struct petrel_vfs_file *file, int abandon);
    int (*statfs)(struct petrel_vfs *vfs, struct petrel_vfs_statfs *st);
    int (*set_mtime)(struct petrel_vfs *vfs, const char *path, int64_t sec, uint32_t nsec);
    int (*set_mode)(struct petrel_vfs *vfs, const char *path, uint32_t mode);
    int64_t (*getxattr)(struct petrel_vfs *vfs, const char *path, const char *name, void *buf,
                        uint64_t size);
    int (*setxattr)(struct petrel_vfs *vfs, const char *path, const char *name, const void *buf,
                    uint64_t size, int flags);
    int (*removexattr)(struct petrel_vfs *vfs, const char *path, const char *name);
    int64_t (*listxattr)(struct petrel_vfs *vfs, const char *path, char *buf, uint64_t size);
    int (*destroy)(struct petrel_vfs *vfs); /* unmount and free */
    /* Optional: rename only if `to` does not exist, atomically (-PT_EEXIST otherwise). A
     * backend without it gets a stat, then rename (not atomic). */
    int (*rename_noreplace)(struct petrel_vfs *vfs, const char *from, const char *to);
    /* Optional (CAP_OWNER): change mode, owner and times of path in one update. */
    int (*setattr)(struct petrel_vfs *vfs, const char *path, const struct petrel_vfs_attr *a);
    /* Optional (CAP_NODES): create a symbolic link, FIFO, socket or device node. */
    int (*mknod)(struct petrel_vfs *vfs, const char *path, const struct petrel_vfs_node *n);
    /* Optional (CAP_NODES): a link's target into buf (at most size bytes); its length. */
    int64_t (*readlink)(struct petrel_vfs *vfs, const char *path, char *buf, uint64_t size);
};

struct petrel_vfs {
    const struct petrel_vfs_ops *ops;
    unsigned caps;                        /* enum petrel_vfs_caps */
    void *backend;                        /* the backend's state */
    char label[PETREL_VFS_PATH_MAX + 64]; /* what it is, for messages ("disk.img") */
};

/* Flags for petrel_vfs_setxattr (same meaning as setxattr(2)). */
enum petrel_vfs_xattr_flags { PETREL_VFS_XATTR_CREATE = 1, PETREL_VFS_XATTR_REPLACE = 2 };

/*
 * Open the store a location names (its kind, store, host and port; not its path) with the
 * backend for its kind. flags: enum petrel_vfs_mount_flags. On success *out is a vfs to
 * close with petrel_vfs_close. Errors: -PT_ENOENT (no such image), -PT_ECORRUPT (image does
 * not mount), -PT_EBUSY (image in use by another process), -PT_ECONNREFUSED, ...
 */
int petrel_vfs_open(const struct petrel_vfs_location *loc, int flags, struct petrel_vfs **out);

/* Unmount and free: returns the first error from making state durable, or 0. */
int petrel_vfs_close(struct petrel_vfs *vfs);

/* Backends (called by petrel_vfs_open; exposed for tests). */
int petrel_vfs_local_open(const char *root, int flags, struct petrel_vfs **out);
int petrel_vfs_image_open(const char *image, int flags, struct petrel_vfs **out);
/* The format version (major << 16 | minor) of the image the last petrel_vfs_image_open in
 * this process refused with -PT_EVERSION, or 0: lets a tool say which format it found. */
uint32_t petrel_vfs_image_refused_version(void);
/* host/port as in struct petrel_vfs_location (port 0: host is a registry group). */
int petrel_vfs_cluster_open(const char *host, uint16_t port, int flags, struct petrel_vfs **out);
/* The same with a staging directory (NULL or "": the default) and size (0: the default) for
 * the changes of files (struct petrel_vfs_location's cache_dir, cache_size). */
int petrel_vfs_cluster_open_cache(const char *host, uint16_t port, int flags,
                                  const char *cache_dir, uint64_t cache_size,
                                  struct petrel_vfs **out);

/* A registry's address as the cluster's calls take it ("A.B.C.D:PORT", "[V6]:PORT"): a
 * numeric host kept, a host name resolved (-PT_ENOHOST when it does not resolve). With port 0,
 * host is a registry group "H:P,H:P,...": each member so, comma-separated. */
int petrel_vfs_cluster_address(const char *host, uint16_t port, char *out, size_t cap);

/* The operations (see struct petrel_vfs_ops). */
int petrel_vfs_stat(struct petrel_vfs *vfs, const char *path, struct petrel_vfs_stat *st);
int petrel_vfs_readdir(struct petrel_vfs *vfs, const char *path, petrel_vfs_dir_fn fn, void *ctx);
int petrel_vfs_mkdir(struct petrel_vfs *vfs, const char *path);
int petrel_vfs_remove(struct petrel_vfs *vfs, const char *path);
int petrel_vfs_rename(struct petrel_vfs *vfs, const char *from, const char *to);
/* rename that never replaces: -PT_EEXIST when `to` exists (RENAME_NOREPLACE). */
int petrel_vfs_rename_noreplace(struct petrel_vfs *vfs, const char *from, const char *to);
int petrel_vfs_file_open(struct petrel_vfs *vfs, const char *path, int flags,
                         struct petrel_vfs_file **file);
int64_t petrel_vfs_file_read(struct petrel_vfs *vfs, struct petrel_vfs_file *file, void *buf,
                             uint64_t size, uint64_t off);
int64_t petrel_vfs_file_write(struct petrel_vfs *vfs, struct petrel_vfs_file *file, const void *buf,
                              uint64_t size, uint64_t off);
int petrel_vfs_file_truncate(struct petrel_vfs *vfs, struct petrel_vfs_file *file, uint64_t size);
int petrel_vfs_file_stat(struct petrel_vfs *vfs, struct petrel_vfs_file *file,
                         struct petrel_vfs_stat *st);
int petrel_vfs_file_sync(struct petrel_vfs *vfs, struct petrel_vfs_file *file);
int petrel_vfs_file_close(struct petrel_vfs *vfs, struct petrel_vfs_file *file);
int petrel_vfs_file_abandon(struct petrel_vfs *vfs, struct petrel_vfs_file *file);
int petrel_vfs_statfs(struct petrel_vfs *vfs, struct petrel_vfs_statfs *st);
int petrel_vfs_set_mtime(struct petrel_vfs *vfs, const char *path, int64_t sec, uint32_t nsec);
int petrel_vfs_set_mode(struct petrel_vfs *vfs, const char *path, uint32_t mode);
/* Mode, owner and times at once (a->valid says which); -PT_ENOTSUP without CAP_OWNER. */
int petrel_vfs_setattr(struct petrel_vfs *vfs, const char *path, const struct petrel_vfs_attr *a);
/* Create a symbolic link, FIFO, socket or device node: -PT_EEXIST, -PT_ENOENT, -PT_EINVAL
 * (bad type, empty or too long target), -PT_ENOTSUP without CAP_NODES. */
int petrel_vfs_mknod(struct petrel_vfs *vfs, const char *path, const struct petrel_vfs_node *n);
/* Read a symbolic link's target into buf (not terminated, at most size bytes); returns its
 * full length. -PT_EINVAL when path is not a link. */
int64_t petrel_vfs_readlink(struct petrel_vfs *vfs, const char *path, char *buf, uint64_t size);
int64_t petrel_vfs_getxattr(struct petrel_vfs *vfs, const char *path, const char *name, void *buf,
                            uint64_t size);
int petrel_vfs_setxattr(struct petrel_vfs *vfs, const char *path, const char *name, const void *buf,
                        uint64_t size, int flags);
int petrel_vfs_removexattr(struct petrel_vfs *vfs, const char *path, const char *name);
/* List names as NUL-terminated strings back to back (size 0: return the size needed). */
int64_t petrel_vfs_listxattr(struct petrel_vfs *vfs, const char *path, char *buf, uint64_t size);

/* Helpers shared by the CLI and the FUSE driver. */

/* Write the whole buffer at off (loops over short writes). */
int petrel_vfs_write_all(struct petrel_vfs *vfs, struct petrel_vfs_file *file, const void *buf,
                         uint64_t size, uint64_t off);
/* Create every missing directory of path (like mkdir -p); existing directories are fine. */
int petrel_vfs_mkdir_parents(struct petrel_vfs *vfs, const char *path);
/* Join a directory path and a name into out ("/" + "a" -> "/a"). */
int petrel_vfs_path_join(char *out, size_t size, const char *dir, const char *name);
/* The last component of a path ("/a/b" -> "b", "/" -> ""). */
const char *petrel_vfs_path_base(const char *path);

#endif
