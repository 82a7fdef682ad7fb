/*
 * The Petrel cluster client: a C library for the distributed filesystem (registry, shards,
 * CDC, block services). Paths are absolute, '/'-separated, names up to 255 bytes.
 *
 * Files are written once: petrel_client_write_file() creates a transient (invisible) file,
 * stores its bytes span by span (small files inline in the shard, larger spans mirrored on
 * block services in distinct failure domains), certifies every span with the block services'
 * proofs and only then links the file into its directory, atomically: a reader sees the whole
 * file or nothing. Reads stream: a range is delivered in pieces to a callback, never the whole
 * file in memory; each piece is checked against the page CRCs the block service stored, and
 * a read falls back to another copy when a block service is down or a page is corrupt.
 *
 * Every call retries transient failures (lost connections, leader changes, a leader still
 * catching up) with exponential back-off and jitter within the configured budget, and follows
 * a follower's redirection to the leader. Errors are negative PT_E* codes
 * (include/petrel/common.h): PT_ENOENT, PT_EEXIST, PT_ENOTDIR, PT_EISDIR, PT_ENOTEMPTY,
 * PT_ELOOP (a directory moved under itself), PT_ECORRUPT (no intact copy left), PT_ETIMEDOUT
 * (budget spent), PT_EINVAL (bad path or argument).
 *
 * A struct petrel_client is used by one thread at a time; open one per thread.
 */
#ifndef PETREL_CLIENT_H
#define PETREL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct petrel_client;

struct petrel_client_config {
    const char *registry;     /* "HOST:PORT" of the registry (required) */
    uint32_t retry_budget_ms; /* time one operation may spend retrying; 0 = 30000 */
    int attempt_timeout_ms;   /* one request/response; 0 = 3000 */
    uint32_t span_size;       /* bytes per span (= per block); 0 = 4 MiB; max 8 MiB */
    unsigned copies;          /* copies of each block (mirroring); 0 = 2 */
    uint64_t seed;            /* jitter and cookie seed; 0 = from the OS */
};

/* Open a client (no connection is made until the first call): 0 or -PT_EINVAL / -PT_ENOMEM. */
int petrel_client_open(struct petrel_client **out, const struct petrel_client_config *cfg);

/*
 * Ask the registry one cheap question, within timeout_ms, with no retry: 0 when a registry
 * answers, else -PT_ECONNREFUSED, -PT_ETIMEDOUT (no answer), -PT_EHOSTUNREACH, -PT_EPROTO /
 * -PT_ECONNRESET (something else listens there), -PT_EIO or -PT_EINVAL (an address the
 * client cannot use). A front end calls it first, so that an
 * unreachable cluster is an error within seconds instead of after the retry budget.
 */
int petrel_client_probe(struct petrel_client *c, int timeout_ms);

/* Close a client and free everything it holds (NULL is fine). */
void petrel_client_close(struct petrel_client *c);

enum petrel_file_type {
    PETREL_TYPE_DIR = 1,
    PETREL_TYPE_FILE = 2,
    PETREL_TYPE_SYMLINK = 3,
    PETREL_TYPE_FIFO = 4,
    PETREL_TYPE_SOCKET = 5,
    PETREL_TYPE_CHR = 6, /* character device */
    PETREL_TYPE_BLK = 7, /* block device */
};

struct petrel_stat {
    uint64_t id;    /* inode id; its top byte is the shard that owns it */
    uint8_t type;   /* enum petrel_file_type */
    uint64_t size;  /* bytes (files); target length (symlinks) */
    uint64_t mtime; /* milliseconds since the epoch */
    /* POSIX attributes (a shard from before them answers mode 0755/0644, owner 0:0, all
       times = mtime) */
    uint32_t mode;                         /* type bits (S_IFMT values) | permission bits */
    uint32_t uid, gid;
    uint64_t atime_ns, mtime_ns, ctime_ns; /* nanoseconds since the epoch */
    uint64_t rdev;                         /* device nodes */
    uint64_t version; /* files: changes with every change of the content */
    uint8_t state;    /* files: 0 being written, 1 linked, 2 unlinked (kept), 3 expired */
    uint32_t spans;   /* files: number of spans (0 from a shard before issue 12) */
    uint32_t nlink;   /* link count (directories: 2 + subdirectories); 0 from an older shard */
};

/* What petrel_client_setattr changes (the values of the shard's SETATTR, PROTOCOL.md). */
enum petrel_attr_valid {
    PETREL_ATTR_MODE = 0x01, /* mode & 07777 */
    PETREL_ATTR_UID = 0x02,
    PETREL_ATTR_GID = 0x04,
    PETREL_ATTR_ATIME = 0x08,     /* atime_ns */
    PETREL_ATTR_MTIME = 0x10,     /* mtime_ns */
    PETREL_ATTR_ATIME_NOW = 0x20, /* the shard's time of the change */
    PETREL_ATTR_MTIME_NOW = 0x40,
};

struct petrel_attr {
    unsigned valid; /* enum petrel_attr_valid; for new entries: mode, uid and gid are used */
    uint32_t mode, uid, gid;
    uint64_t atime_ns, mtime_ns;
};

/* Resolve a path to its inode id and type (lookups from the root, one shard call per name). */
/*
 * The cluster's storage as the registry lists it now: total capacity and bytes used, summed
 * over the block services that are not stale. 0 or a negative error (registry unreachable).
 */
int petrel_client_capacity(struct petrel_client *c, uint64_t *capacity, uint64_t *used);

int petrel_client_resolve(struct petrel_client *c, const char *path, uint64_t *id, uint8_t *type);

/* Attributes of a path. */
int petrel_client_stat(struct petrel_client *c, const char *path, struct petrel_stat *st);

struct petrel_dirent {
    uint64_t id;
    uint8_t type;
    char name[256];
};

/*
 * List a directory: fn is called for every entry (in name-hash order, fetched page by page);
 * a non-zero return from fn stops the listing and is returned.
 */
typedef int (*petrel_list_fn)(void *ctx, const struct petrel_dirent *entry);
int petrel_client_list(struct petrel_client *c, const char *path, petrel_list_fn fn, void *ctx);

/* Create a directory (through the CDC; it may land on any shard). PT_EEXIST if the name exists. */
int petrel_client_mkdir(struct petrel_client *c, const char *path);

/* Remove an empty directory (PT_ENOTEMPTY otherwise). */
int petrel_client_rmdir(struct petrel_client *c, const char *path);

/*
 * Create path from a stream: read(ctx, buf, cap) returns bytes (> 0), 0 at the end, or a
 * negative error that aborts the write. The file becomes visible only when complete, and
 * only if the name is still free then: the link is a link-if-absent on the shard, so of
 * several writers racing for one new name exactly one succeeds and the others get PT_EEXIST
 * (checked before writing as well) with their file abandoned, never linked. *size_out (may
 * be NULL) receives the size written. Retries (lost replies) never act on another's file.
 */
typedef long (*petrel_read_fn)(void *ctx, void *buf, size_t cap);
int petrel_client_write_file(struct petrel_client *c, const char *path, petrel_read_fn read,
                             void *ctx, uint64_t *size_out);

/*
 * Like petrel_client_write_file, but the new file takes the place of the file `replaces` (an
 * id from petrel_client_stat) at path: the link replaces that inode only if path still names
 * it; if someone else removed or replaced it meanwhile the call fails with PT_ESTALE and
 * leaves theirs. replaces 0 is petrel_client_write_file. The replaced file is kept for the
 * retention period, then collected.
 */
int petrel_client_replace_file(struct petrel_client *c, const char *path, uint64_t replaces,
                               petrel_read_fn read, void *ctx, uint64_t *size_out);

/*
 * Read len bytes at offset (clipped at the end of the file), handed to write(ctx, buf, n) in
 * pieces of at most 1 MiB; a non-zero return from write stops the read and is returned.
 * *got (may be NULL) receives the bytes delivered. A mirrored span falls back from copy to
 * copy; a Reed-Solomon span whose block is down, slower than the attempt timeout or serves a
 * page that fails its CRC is read degraded: the affected cell rows are rebuilt from D other
 * blocks and checked against their cell CRCs, and the bad block is reported to the file's
 * shard (repair queue). More than P blocks lost: -PT_EIO, with a log line naming the file and
 * the span; never wrong bytes.
 */
typedef int (*petrel_write_fn)(void *ctx, const void *buf, size_t len);
int petrel_client_read(struct petrel_client *c, const char *path, uint64_t offset, uint64_t len,
                       petrel_write_fn write, void *ctx, uint64_t *got);

/* ---- redundancy: storage policies ------------------------------------------------------- */

/*
 * A directory's storage policy (docs/SPEC-SHARD.md §3.9): files of at least rs_threshold
 * bytes are written Reed-Solomon RS(data, parity) in spans of data x block_size bytes (each
 * span's D + P blocks in distinct failure domains); smaller files inline up to 4 KiB, else
 * mirrored with `copies` copies. data = parity = 0: always mirrored. Limits: copies 1..16,
 * data 1..16, parity 1..4, data + parity <= 16, block_size 4 KiB..4 MiB (a multiple of 4 KiB
 * up to 64 KiB, of 64 KiB above), rs_threshold <= 64 MiB.
 */
struct petrel_policy {
    unsigned copies;
    unsigned data, parity;
    uint32_t rs_threshold;
    uint32_t block_size;
};

/* Set (p) or clear (p NULL) the policy of the directory at path: 0, -PT_EINVAL (limits),
 * -PT_ENOTDIR, -PT_ENOENT. */
int petrel_client_set_policy(struct petrel_client *c, const char *path,
                             const struct petrel_policy *p);

/*
 * The policy new files under the directory at path get: its own, else its nearest ancestor's,
 * else the default (copies from the client config; RS(4,2) at 4 MiB in 1 MiB blocks when the
 * registry lists block services in at least 6 failure domains). *from (cap bytes, may be
 * NULL) receives the path of the directory the policy comes from, or "" for the default.
 */
int petrel_client_get_policy(struct petrel_client *c, const char *path, struct petrel_policy *out,
                             char *from, size_t cap);

/*
 * Remove a file's name (the shard keeps the file for its retention period before GC). The
 * name is removed only while it holds the file resolved at the start of the call (a file
 * someone else put there meanwhile is left: PT_ESTALE).
 */
int petrel_client_unlink(struct petrel_client *c, const char *path);

/* Remove path only if it names inode id (from petrel_client_stat); PT_ESTALE otherwise. */
int petrel_client_unlink_inode(struct petrel_client *c, const char *path, uint64_t id);

/*
 * Rename a file or directory. Within one directory the shard does it alone; across
 * directories the CDC runs it as a transaction (refusing to move a directory under itself:
 * PT_ELOOP). An existing target is replaced atomically, with rename(2) rules: a file replaces
 * a file (which is kept for the retention period, then collected), a directory replaces only
 * an empty directory (PT_ENOTEMPTY); file onto directory PT_EISDIR, directory onto file
 * PT_ENOTDIR; a rename onto itself does nothing. Compare-and-set: it moves only what `from`
 * named and replaces only what `to` named when the call began (nothing: `to` must still be
 * free, else PT_EEXIST); a change by someone else in between gives PT_ESTALE, nothing done.
 */
int petrel_client_rename(struct petrel_client *c, const char *from, const char *to);

/* rename that never replaces: PT_EEXIST when `to` exists, also when it appears meanwhile. */
int petrel_client_rename_noreplace(struct petrel_client *c, const char *from, const char *to);

/* ---- POSIX attributes, nodes, handles by inode (issue 11) ---------------------------------- */

/*
 * Attributes of an inode by id, whatever its state: a file being written (transient), linked,
 * or unlinked but still in its retention period (an open file someone removed). PT_ENOENT
 * once it is gone.
 */
int petrel_client_stat_inode(struct petrel_client *c, uint64_t id, struct petrel_stat *st);

/* Read from an inode by id (a handle's file, even after its name was removed). */
int petrel_client_read_inode(struct petrel_client *c, uint64_t id, uint64_t offset, uint64_t len,
                             petrel_write_fn write, void *ctx, uint64_t *got);

/*
 * Change mode, owner and times (a->valid says which) of path / of inode id, in one shard
 * operation; ctime becomes the time of the change. Any inode, a file being written included.
 * The POSIX rules (only root changes an owner, ...) are the caller's: the FUSE mount applies
 * them. PT_EINVAL for unknown bits.
 */
int petrel_client_setattr(struct petrel_client *c, const char *path, const struct petrel_attr *a);
int petrel_client_setattr_inode(struct petrel_client *c, uint64_t id, const struct petrel_attr *a);

/* Create a directory with mode (permission bits), uid and gid. */
int petrel_client_mkdir_owned(struct petrel_client *c, const char *path, uint32_t mode,
                              uint32_t uid, uint32_t gid);

/*
 * Create a symbolic link (type PETREL_TYPE_SYMLINK, target 1..4095 bytes), FIFO, socket or
 * device node (rdev) at path, with mode (permission bits), uid and gid: created and named in
 * one shard operation, only if the name is free (PT_EEXIST). Not repeated after a reply lost
 * in doubt (PT_EINDOUBT: look at the name).
 */
int petrel_client_mknod(struct petrel_client *c, const char *path, uint8_t type, uint32_t mode,
                        uint32_t uid, uint32_t gid, uint64_t rdev, const char *target);

/*
 * Space for statfs/df: every file system holding blocks counted once (block services on one
 * disk share it: deduplicated by the file system id each service reports), divided by the
 * number of copies of each block. *total and *avail in bytes. A service that does not answer
 * counts with the capacity the registry lists and no free space.
 */
int petrel_client_space(struct petrel_client *c, uint64_t *total, uint64_t *avail);

/* A symbolic link's target into buf (NUL-terminated when it fits); its length, or PT_EINVAL
 * when path is not a link. */
int petrel_client_readlink(struct petrel_client *c, const char *path, char *buf, size_t size);

/*
 * The two halves of petrel_client_replace_file, for a writer that needs its file's id before
 * the bytes (fstat, fchmod, futimens and rename of a file still being written):
 * petrel_client_create makes the transient file (mode, uid, gid from owner; NULL: 0644, 0:0)
 * with the same checks of the name; petrel_client_fill streams the bytes and links it (may be
 * called on another client, in another thread). A file never filled expires unlinked.
 */
struct petrel_new_file {
    uint64_t dir, file, cookie, replaces;
    uint8_t name_len;
    char name[256];
    /* the directory's storage policy, found at create: copies, and RS(data, parity) for
     * files of at least rs_threshold bytes in cells of rs_block_size (data 0: mirrored) */
    uint8_t copies, rs_data, rs_parity;
    uint32_t rs_threshold, rs_block_size;
};
int petrel_client_create(struct petrel_client *c, const char *path, uint64_t replaces,
                         const struct petrel_attr *owner, struct petrel_new_file *nf);
int petrel_client_fill(struct petrel_client *c, const struct petrel_new_file *nf,
                       petrel_read_fn read, void *ctx, uint64_t *size_out);
/*
 * A file being written will be linked at `path` instead (rename before close): the name it
 * holds now (if any) is what the link replaces. PT_EXDEV when path's directory lives on
 * another shard than the file (the caller copies instead).
 */
int petrel_client_retarget(struct petrel_client *c, struct petrel_new_file *nf, const char *path);

/* ---- files that change (issue 12) ---------------------------------------------------------- */

/*
 * A change of a linked file: writes at any offset, truncation, reads that see the change's own
 * writes, then a commit that replaces the file's content atomically by compare-and-swap on its
 * version. Nothing is visible to others before the commit; readers that opened the file keep
 * the version they opened (it is kept for the retention period after a commit).
 *
 * Writes are staged in a local cache file under `cache_dir` (created there, unlinked at
 * once, so nothing is left behind by a crash), appended as made: at most `cache_limit` bytes
 * (an overwrite counts again until the next upload); beyond that the
 * staged ranges are uploaded ("spilled") as spans of the shard's change file, which stays
 * invisible until the commit. Unchanged spans stay shared with the old version: an overwrite
 * rewrites only the spans it touches (their old bytes read, merged, written as new spans), an
 * append writes new spans after the last one (merged into the last one when it is smaller than
 * 64 KiB), a truncation drops the spans past the new end and rewrites the one it cuts; runs
 * of zeros nothing wrote (a truncate up, a write past the end) of 64 KiB or more become hole
 * spans (nothing stored, any length: a file reaches 2^63 - 1 bytes, beyond is -PT_EFBIG).
 *
 * The change file is made on the shard at the first upload (OPEN_CHANGE); a change that is
 * only read never touches the shard. New spans follow the storage policy of the file's
 * directory: Reed-Solomon when the file is at least the policy's threshold (pieces under
 * 64 KiB mirrored), else mirrored with its copies (inline up to 4 KiB).
 */
struct petrel_change;

struct petrel_change_config {
    const char *cache_dir; /* NULL: $XDG_CACHE_HOME/petrel, else $HOME/.cache/petrel, else /tmp */
    uint64_t cache_limit;  /* bytes staged locally before a spill; 0 = 64 MiB */
};

/*
 * Open a change of the linked file `id` at version `version` (from petrel_client_stat_inode;
 * 0: its current version). PT_ESTALE when the file is at another version or not linked,
 * PT_EISDIR / PT_EINVAL for what is not a regular file. The change keeps `c` (one thread).
 */
int petrel_change_open(struct petrel_client *c, uint64_t id, uint64_t version,
                       const struct petrel_change_config *cfg, struct petrel_change **out);

/* Write len bytes at offset (past the end: the gap reads as zeros). 0 or an error (a failed
 * spill: PT_ESTALE when another writer committed first; the change is then useless;
 * PT_EFBIG past 1 TiB: gaps are stored as zeros). */
int petrel_change_write(struct petrel_change *ch, uint64_t offset, const void *buf, size_t len);

/* Set the size: shorter drops bytes, longer adds zeros (PT_EFBIG past 1 TiB). */
int petrel_change_truncate(struct petrel_change *ch, uint64_t size);

/* Read through the change (its own writes, else the version it started from). */
int petrel_change_read(struct petrel_change *ch, uint64_t offset, uint64_t len,
                       petrel_write_fn write, void *ctx, uint64_t *got);

/* The size as the change sees it; the file's version the change started from. */
uint64_t petrel_change_size(const struct petrel_change *ch);
uint64_t petrel_change_version(const struct petrel_change *ch);

/* Whether the change differs from the version it started from (something to commit). */
int petrel_change_dirty(const struct petrel_change *ch);

/* Bytes this change has uploaded as new spans so far (an overwrite costs the spans it
 * touches, not the file: what tests and benchmarks measure). */
uint64_t petrel_change_uploaded(const struct petrel_change *ch);

/*
 * Upload what is staged and replace the file's content with the change, atomically, only if
 * the file is still at the version the change started from: 0 (*version, may be NULL, gets
 * the new version), PT_ESTALE when another writer's commit came first or the file was removed
 * (nothing of this change is visible; it stays open but every later commit fails the same),
 * or another error (nothing visible either). After a success the change continues from the
 * new version (an fsync); nothing to commit is a success that changes nothing.
 */
int petrel_change_commit(struct petrel_change *ch, uint64_t *version);

/* Forget the change (uncommitted work is dropped; the shard's change file expires). */
void petrel_change_close(struct petrel_change *ch);

#endif
