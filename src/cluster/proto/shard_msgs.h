/*
 * Shard messages: the requests a client (or the CDC) sends to a metadata shard, the replies it
 * gets back, inode ids, and the span record that describes where a file's bytes live.
 *
 * This module owns the byte layout of those messages (docs/PROTOCOL.md, "Shard messages") and
 * of the span record (docs/SPEC-SHARD.md); it never touches the network or the store. Every
 * decoder is bounded: a short, oversized or inconsistent buffer gives -PT_EPROTO, never an
 * out-of-bounds access. Requests are encoded as one generic structure whose present fields
 * depend on the operation (shard_req_fields() is the single table of which fields go with
 * which op), so client, server, Raft log and tests share one codec.
 */
#ifndef PETREL_CLUSTER_SHARD_MSGS_H
#define PETREL_CLUSTER_SHARD_MSGS_H

#include <stddef.h>
#include <stdint.h>

/* Inode ids: the top byte is the shard that owns the inode, the rest a per-shard sequence. */
#define PT_INODE_SHARD(id) ((unsigned)((uint64_t)(id) >> 56))
#define PT_INODE_MAKE(shard, seq)                                                                  \
    (((uint64_t)(shard) << 56) | ((uint64_t)(seq)&0x00FFFFFFFFFFFFFFull))
#define PT_INODE_ROOT PT_INODE_MAKE(0, 1) /* the root directory, owned by shard 0 */
#define PT_SHARD_MAX 256

/* Entry and inode types. Types 3..7 are nodes: no spans, linked at creation (MAKE_NODE);
 * everywhere else they follow a file's rules (a name, retention after unlink, GC). */
enum pt_inode_type {
    PT_TYPE_NONE = 0,
    PT_TYPE_DIR = 1,
    PT_TYPE_FILE = 2,
    PT_TYPE_SYMLINK = 3,
    PT_TYPE_FIFO = 4,
    PT_TYPE_SOCKET = 5,
    PT_TYPE_CHR = 6,
    PT_TYPE_BLK = 7,
};
#define PT_TYPE_VALID(t) ((t) >= PT_TYPE_DIR && (t) <= PT_TYPE_BLK)
#define PT_TYPE_IS_NODE(t) ((t) >= PT_TYPE_SYMLINK && (t) <= PT_TYPE_BLK)

/* Mode type bits (the Linux S_IFMT values, fixed here: they are part of the format). */
#define PT_MODE_IFMT 0170000u
#define PT_MODE_IFSOCK 0140000u
#define PT_MODE_IFLNK 0120000u
#define PT_MODE_IFREG 0100000u
#define PT_MODE_IFBLK 0060000u
#define PT_MODE_IFDIR 0040000u
#define PT_MODE_IFCHR 0020000u
#define PT_MODE_IFIFO 0010000u
#define PT_MODE_PERM 07777u /* permission bits incl. setuid, setgid, sticky */
/* The type a mode's S_IFMT bits name (PT_TYPE_NONE for none we know), and back. */
uint8_t pt_mode_type(uint32_t mode);
uint32_t pt_type_mode(uint8_t type);

#define PT_SYMLINK_MAX 4095 /* bytes of a symbolic link's target (PATH_MAX - 1) */

/* File states. */
enum pt_file_state {
    PT_FILE_TRANSIENT = 0, /* being written: invisible, owned by a writer until its deadline */
    PT_FILE_LINKED = 1,    /* visible through a directory entry, immutable */
    PT_FILE_UNLINKED = 2,  /* no entry any more: kept until its retention deadline, then GC */
    PT_FILE_EXPIRED = 3,   /* transient file whose writer vanished: its blocks await GC */
};

/* Shard operations. Values < 16 are read-only queries served by the leader's store. */
enum pt_shard_op {
    PT_SHARD_LOOKUP = 1,          /* (id=dir, name) -> id, type */
    PT_SHARD_READDIR = 2,         /* (id=dir, offset=hash, name=after, max) -> entries */
    PT_SHARD_STAT = 3,            /* (id) -> attributes */
    PT_SHARD_SPANS = 4,           /* (id=file, offset=from, max) -> span records */
    /* Redundancy (Reed-Solomon spans, storage policies, the repair queue). */
    PT_SHARD_GET_POLICY = 12,  /* (id=dir) -> policy record, -PT_ENOENT when none is set */
    PT_SHARD_REPAIR_LIST = 13, /* (target=service, offset=block, max) -> repair queue entries */
    PT_SHARD_DRAIN_STATUS = 14, /* (target=service) -> u8 draining, u64 blocks still on it */
    PT_SHARD_REPAIR_STATUS = 15, /* () leader only -> spans below policy, queue, per service */
    PT_SHARD_CONSTRUCT_FILE = 16, /* (cookie) -> file id */
    PT_SHARD_ADD_SPAN = 17,       /* (id, cookie, offset, size, crc, layout, services) -> blocks */
    PT_SHARD_ADD_INLINE = 18,     /* (id, cookie, offset, data) */
    PT_SHARD_CERTIFY_SPAN = 19,   /* (id, cookie, offset, data = proofs) */
    PT_SHARD_LINK_FILE = 20,      /* (id=file, cookie, target=dir, name) */
    PT_SHARD_UNLINK = 21,         /* (id=dir, name) */
    PT_SHARD_RENAME = 22,         /* same directory: (id=dir, name -> name2) -> replaced */
    PT_SHARD_EXPIRE = 23,         /* () : expire transient files past deadline (time in entry) */
    PT_SHARD_DROP_SPAN = 24,      /* (id, cookie, offset): forget the last, uncertified span */
    PT_SHARD_RETIRE_FILE = 25,    /* (id): a file lost its name on another shard: retention */
    PT_SHARD_FORGET_FILE = 26,    /* (id): leader only: every block erased, drop the file */
    PT_SHARD_FORGET_DROPPED = 27, /* (data = n x (time, service, block)): leader only: erased */
    /* Compare-and-set forms: they act only when the name still holds the inode the caller
     * saw (expect), else -PT_ESTALE; expect 0 means "the name must be free" (-PT_EEXIST). */
    PT_SHARD_LINK_REPLACE = 28, /* (id=file, cookie, target=dir, name, expect) -> replaced */
    PT_SHARD_UNLINK_INODE = 29, /* (id=dir, name, expect) -> removed */
    PT_SHARD_RENAME_INODE = 30, /* (id=dir, target=source inode, name -> name2, expect)
                                   -> replaced */
    /* The shard-local halves of CDC transactions; txn makes a retry return the same result. */
    PT_SHARD_MAKE_DIR = 32,     /* (txn, target=parent) -> new dir id */
    PT_SHARD_ADD_ENTRY = 33,    /* (txn, id=dir, name, target, offset=type) */
    PT_SHARD_REMOVE_ENTRY = 34, /* (txn, id=dir, name, target=expected) */
    PT_SHARD_LOCK_ENTRY = 35,   /* (txn, id=dir, name) -> id, type */
    PT_SHARD_UNLOCK_ENTRY = 36, /* (txn, id=dir, name) */
    PT_SHARD_REMOVE_DIR = 37,   /* (txn, id=dir): only if empty */
    PT_SHARD_SET_PARENT = 38,   /* (txn, id=dir, target=new parent) */
    /* (txn, id=dir, name, target=new inode, offset=its type, cookie=replaced inode expected):
     * the entry, locked by txn, now names target (rename onto an existing name) */
    PT_SHARD_REPLACE_ENTRY = 39,
    /* POSIX attributes (issue 11). */
    PT_SHARD_SETATTR = 40,   /* (id, attr): mode/uid/gid/atime/mtime as attr.valid says */
    PT_SHARD_MAKE_NODE = 41, /* (id=dir, name, attr = mode incl. type, uid, gid, rdev;
                                data = symlink target) -> new inode id; name must be free */
    /* Files that change (issue 12): a change is a transient file that starts with the linked
     * file's spans, shared (reference-counted), and replaces them by compare-and-swap. */
    PT_SHARD_OPEN_CHANGE = 42,    /* (id=file, cookie, expect=version or 0) -> change id,
                                     version, size */
    PT_SHARD_TRUNCATE_SPANS = 43, /* (id=change, cookie, offset=span boundary, expect=size
                                     before, 0: any): drop the tail */
    PT_SHARD_COMMIT_CHANGE = 44,  /* (id=change, cookie) -> new version of the file */
    PT_SHARD_ADD_HOLE = 45,       /* (id, cookie, offset, expect=length): a hole span (zeros,
                                     no blocks) at the end, or in place in a change file */
    PT_SHARD_COMPACT_CHANGE = 47, /* (id=change, cookie): leader only: the change's merged
                                     spans replace the runs they hold, same bytes, same
                                     version -> version, id holding the old spans */
    /* Redundancy. */
    PT_SHARD_ADD_RS_SPAN = 48,     /* (id, cookie, offset, size, crc, layout, data = cell CRCs,
                                      services) -> blocks */
    PT_SHARD_SET_POLICY = 49,      /* (id=dir, data = policy record; empty: clear) */
    PT_SHARD_REPORT_BAD_BLOCK = 50, /* (id=file, target=block, offset=span, max=reason) */
    /* Scrubbing and repair (numbers 56..63). */
    PT_SHARD_SCRUB_REPORT = 56, /* (id=block, target=service): a scrubber found it rotten */
    PT_SHARD_REPLACE_BLOCK = 57, /* (id=file, offset=span, target=block, services=(old, new)):
                                    leader only: repair swaps a rebuilt copy in */
    PT_SHARD_DRAIN_SERVICE = 58, /* (target=service, max=1 drain / 0 stop): move its blocks off */
    PT_SHARD_FAIL_SERVICE = 59   /* (target=service, max=1 failed / 0 not): rebuild its blocks */
};

/* Why a reader reported a block (REPORT_BAD_BLOCK's max, the repair queue's reason). */
enum pt_bad_block_reason {
    PT_BAD_UNREACHABLE = 1, /* the service did not answer (down or slower than the timeout) */
    PT_BAD_CORRUPT = 2,     /* a page failed its CRC, or a rebuilt cell its cell CRC */
    PT_BAD_MISSING = 3,     /* the service does not hold the block */
};

/* SETATTR's attr.valid bits. ctime becomes the entry time on every SETATTR. */
enum pt_shard_attr_valid {
    PT_ATTR_MODE = 0x01, /* mode & 07777 (the type bits are kept) */
    PT_ATTR_UID = 0x02,
    PT_ATTR_GID = 0x04,
    PT_ATTR_ATIME = 0x08,     /* to attr.atime (ns) */
    PT_ATTR_MTIME = 0x10,     /* to attr.mtime (ns) */
    PT_ATTR_ATIME_NOW = 0x20, /* to the entry time (UTIME_NOW resolved by the shard) */
    PT_ATTR_MTIME_NOW = 0x40,
    PT_ATTR_ALL = 0x7f,
};

/* The attribute block (PROTOCOL.md 4.1): SETATTR and MAKE_NODE always carry it; CONSTRUCT_FILE
 * and MAKE_DIR may (mode, uid, gid of the new inode; absent: 0644 / 0755, owner 0:0). */
struct pt_shard_attr {
    uint32_t valid;
    uint32_t mode, uid, gid;
    uint64_t atime, mtime; /* ns since the epoch */
    uint64_t rdev;
};

/* Storage classes of a span. */
enum pt_storage_class {
    PT_STORAGE_INLINE = 0,   /* bytes stored in the shard record itself */
    PT_STORAGE_MIRRORED = 1, /* data = 1 block, parity = k-1 full copies */
    PT_STORAGE_RS = 2,       /* Reed-Solomon: data D blocks + parity P blocks of block_size */
    PT_STORAGE_HOLE = 3,     /* a hole: `size` bytes that read as zeros, nothing stored */
};

#define PT_NAME_MAX 255
#define PT_SPAN_BLOCKS_MAX 16 /* D + P */
#define PT_INLINE_MAX 4096    /* bytes a span may store inline */
#define PT_HOLE_MAX INT64_MAX /* the longest hole span, and the largest file size */
#define PT_SPAN_SIZE_MAX (64u << 20)
#define PT_READDIR_MAX 256
#define PT_SHARD_MSG_MAX (64u << 10) /* largest request or reply body */

/*
 * Reed-Solomon geometry (SPEC-SHARD.md §3.3). A span of `size` bytes over D data blocks is cut
 * into cells striped row by row: byte x of the span is in row x / (D * cell), data block
 * (x mod D * cell) / cell, at block offset row * cell + x mod cell. The block size is a
 * function of (size, D): ceil(size / D) rounded up to a page when that is at most one cell
 * (one row; the cell is the whole block), else to a multiple of 64 KiB (cells of 64 KiB).
 * The last row is padded with zeros; parity block j of a row is the code's row D + j over
 * that row's D cells.
 */
#define PT_RS_CELL (64u << 10)      /* cell size of blocks larger than one cell */
#define PT_RS_BLOCK_MAX (4u << 20)  /* largest RS block: at most 64 rows */
#define PT_RS_ROWS_MAX (PT_RS_BLOCK_MAX / PT_RS_CELL)
#define PT_RS_PAGE 4096u
static inline uint32_t pt_rs_block_size(uint32_t size, unsigned data)
{
    uint64_t per = data ? ((uint64_t)size + data - 1) / data : 0;
    if (per <= PT_RS_CELL) return (uint32_t)((per + PT_RS_PAGE - 1) / PT_RS_PAGE * PT_RS_PAGE);
    return (uint32_t)((per + PT_RS_CELL - 1) / PT_RS_CELL * PT_RS_CELL);
}
static inline uint32_t pt_rs_cell(uint32_t block_size)
{
    return block_size < PT_RS_CELL ? block_size : PT_RS_CELL;
}
static inline uint32_t pt_rs_rows(uint32_t block_size)
{
    uint32_t cell = pt_rs_cell(block_size);
    return cell ? block_size / cell : 0;
}

/*
 * A directory's storage policy (GET_POLICY / SET_POLICY; SPEC-SHARD.md §3.9), 12 bytes:
 * u8 version 1, u8 copies, u8 D, u8 P, u32 rs threshold, u32 block size. Files of at least
 * `rs_threshold` bytes are written RS(D, P) in spans of D x block_size when D > 0, smaller
 * ones (and all when D = 0) inline up to 4 KiB, else mirrored with `copies` copies.
 */
#define PT_POLICY_SIZE 12
struct pt_cursor;
struct pt_policy {
    uint8_t copies;        /* 1..16 */
    uint8_t data, parity;  /* 0, 0: never RS; else D 1..16, P 1..4, D + P <= 16 */
    uint32_t rs_threshold; /* bytes */
    uint32_t block_size;   /* RS block size: 4 KiB .. 4 MiB, a multiple of 4 KiB */
};
void pt_policy_encode(uint8_t out[PT_POLICY_SIZE], const struct pt_policy *p);
/* 0, or -PT_EINVAL for a record that breaks a rule above. */
int pt_policy_decode(const uint8_t *in, size_t len, struct pt_policy *p);

/*
 * One repair-queue entry (REPAIR_LIST reply; SPEC-SHARD.md §3.10): the block, where it
 * belongs, why and when it was reported.
 */
struct pt_repair_entry {
    uint64_t service, block, file, offset;
    uint8_t reason; /* enum pt_bad_block_reason */
    uint32_t count; /* reports received */
    uint64_t first_ms, last_ms;
};
#define PT_REPAIR_ENTRY_SIZE 61
void pt_repair_entry_encode(struct pt_cursor *c, const struct pt_repair_entry *e);
int pt_repair_entry_decode(struct pt_cursor *c, struct pt_repair_entry *e);

/* A block of a span: where it lives, its id and the CRC32C of its bytes. */
struct pt_block_ref {
    uint64_t service;
    uint64_t block;
    uint32_t crc;
};

/* A span: a contiguous range of a file and its layout. */
struct pt_span {
    uint64_t offset;
    uint64_t size;     /* < 2^32 except for holes (up to PT_HOLE_MAX) */
    uint32_t crc;      /* CRC32C of the span's size bytes (holes: 0) */
    uint8_t storage;   /* enum pt_storage_class */
    uint8_t data;      /* D (mirrored: 1) */
    uint8_t parity;    /* P (mirrored: copies - 1) */
    uint8_t certified; /* every block written and proven */
    uint32_t block_size;
    struct pt_block_ref blocks[PT_SPAN_BLOCKS_MAX];
    /* Reed-Solomon: rows x (D + P) u32 LE cell CRCs, block-major (block b, row r at
     * b * rows + r); points into the buffer decoded from (or the caller's, to encode). */
    const uint8_t *cell_crcs;
    uint32_t inline_len;
    const uint8_t *inline_data; /* points into the buffer decoded from */
};

/* Request fields; which are present depends on op (see shard_req_fields). */
struct pt_shard_req {
    uint8_t op;
    uint64_t id;
    uint64_t target;
    uint64_t cookie;
    uint64_t txn;
    uint64_t offset;
    uint32_t size;
    uint32_t crc;
    uint8_t storage, data, parity; /* layout */
    uint32_t block_size;
    uint16_t max;
    uint8_t name_len, name2_len;
    char name[PT_NAME_MAX + 1], name2[PT_NAME_MAX + 1]; /* NUL-terminated copies */
    uint32_t data_len;
    const uint8_t *data_ptr; /* inline bytes or proofs; points into the decoded buffer */
    uint8_t n_services;
    uint64_t services[PT_SPAN_BLOCKS_MAX]; /* ADD_SPAN: chosen by the leader */
    uint64_t expect; /* the *_INODE / LINK_REPLACE ops: the inode the name must hold, 0 = none */
    uint8_t has_attr; /* attr present (always for SETATTR / MAKE_NODE) */
    struct pt_shard_attr attr;
};

/* Encode a request; returns its length or a negative error (-PT_EINVAL: bad field). */
int pt_shard_req_encode(const struct pt_shard_req *req, uint8_t *buf, size_t cap);

/* Decode a request (the struct may point into buf); 0 or -PT_EPROTO / -PT_ENAMETOOLONG. */
int pt_shard_req_decode(struct pt_shard_req *req, const uint8_t *buf, size_t len);

/* Whether an op changes state (goes through the Raft log) or is a query. */
int pt_shard_op_is_write(uint8_t op);
/* Whether an op is known. */
int pt_shard_op_valid(uint8_t op);

/* Span record codec (stored in the shard and sent in SPANS replies). */
struct pt_cursor;
void pt_span_encode(struct pt_cursor *c, const struct pt_span *s);
/* Decode one span record; 0 or -PT_EPROTO. inline_data points into the cursor's buffer. */
int pt_span_decode(struct pt_cursor *c, struct pt_span *s);
/* Number of blocks a span's layout has (D + P; 0 for inline). */
unsigned pt_span_block_count(const struct pt_span *s);
/* The CRC32C of cell `row` of block `block` of an RS span. */
uint32_t pt_span_cell_crc(const struct pt_span *s, unsigned block, unsigned row);
/* Largest encoded span record (RS(12,4) with 64 rows of cell CRCs). */
#define PT_SPAN_RECORD_MAX (24 + PT_SPAN_BLOCKS_MAX * 20 + PT_RS_ROWS_MAX * PT_SPAN_BLOCKS_MAX * 4)

/* Attributes returned by STAT. */
struct pt_shard_stat {
    uint8_t type;      /* enum pt_inode_type */
    uint8_t state;     /* files: enum pt_file_state */
    uint64_t size;     /* files: bytes; symlinks: target length */
    uint64_t mtime;    /* ms since the epoch (deterministic clock of the log) */
    uint64_t parent;   /* directories: parent id (root: itself) */
    uint64_t deadline; /* files: transient owner deadline or retention deadline */
    /* POSIX attributes (a reply from a shard before issue 11 has none: has_posix 0) */
    uint8_t has_posix;
    uint32_t mode, uid, gid;               /* mode includes the type bits */
    uint64_t atime_ns, mtime_ns, ctime_ns; /* ns since the epoch */
    uint64_t rdev, version;                /* version: bumped by every content change */
    uint16_t target_len;                   /* symlinks */
    char target[PT_SYMLINK_MAX + 1];       /* NUL-terminated */
    uint32_t spans;                        /* files: span count (0 from a shard before issue 12) */
    uint32_t nlink; /* link count: directories 2 + subdirectories, else 1 (0: older shard) */
};

/* One directory entry returned by READDIR. */
struct pt_dirent {
    uint64_t hash;
    uint64_t id;
    uint8_t type;
    uint8_t name_len;
    char name[PT_NAME_MAX + 1];
};

/*
 * Replies are [i32 status][body]. pt_shard_reply_open() returns the status (0 or a negative
 * PT_E*, or -PT_EPROTO for a reply too short or with an impossible status) and sets body to
 * what follows; on -PT_EPROTO body is an empty failed cursor (decoders then fail cleanly).
 */
int pt_shard_reply_open(const uint8_t *reply, size_t len, struct pt_cursor *body);
/* Body decoders for the client; each returns 0 or -PT_EPROTO (a dirent name holding NUL or
   '/' included). */
int pt_shard_reply_stat(struct pt_cursor *body, struct pt_shard_stat *st);
int pt_shard_reply_dirent(struct pt_cursor *body, struct pt_dirent *de);

/* An operation's name for metrics ("shard_lookup"; "shard_other" for one not named here). */
const char *pt_shard_op_metric_name(uint8_t op);

#endif
