/*
 * The Petrel flash engine: a power-loss-safe, wear-leveling filesystem for flash chips,
 * SD/eMMC cards, image files and emulated flash. This header is the manual: every function
 * and every configuration field is documented where it is declared. The on-disk format is
 * specified byte by byte in docs/SPEC-FS.md.
 *
 * Guarantees
 *  - Every operation is atomic: after a power cut at any program or erase, mount shows the
 *    state before or after the interrupted operation, never a mix. Data written to a file is
 *    durable once petrel_fs_file_sync() or petrel_fs_file_close() returned 0.
 *  - Nothing returned is wrong: metadata commits and every page of file data carry a CRC32C
 *    that is checked on every read; a bad page gives -PT_ECORRUPT, never wrong bytes.
 *  - Every program is read back and compared with the CRC the engine expected, so a block
 *    that silently kept its old contents is caught; the block is abandoned and the data moves.
 *  - RAM is bounded and independent of the filesystem size; no recursion; with
 *    -DPETREL_FS_NO_MALLOC the engine never calls malloc and every buffer comes from the
 *    configuration (and petrel_fs_file_opencfg()).
 *
 * Paths are absolute or relative to the root ("/a/b", "a/b"); "." and ".." components are
 * not interpreted (a name "." or ".." is rejected with -PT_EINVAL). Repeated and trailing
 * slashes are ignored. Every function returns 0 (or a non-negative count) on success and a
 * negative PT_E* code (petrel/common.h) on failure. The engine is not thread-safe: callers
 * serialise access to one struct petrel_fs.
 *
 * A struct petrel_fs starts zero-initialised (static, memset or = {0}). Every function but
 * petrel_fs_format and petrel_fs_mount returns -PT_EINVAL on a filesystem that is not
 * mounted: never mounted, unmounted, or whose mount failed (and on a NULL fs).
 *
 * Plain C99, no dependencies.
 *
 * Build switches (define them for every file of the engine and of src/common it uses; see
 * examples/ and docs/FIRMWARE.md for a firmware build, `make size` for what each saves):
 *   PETREL_FS_NO_MALLOC   the engine calls no malloc or free: the caches and the lookahead
 *                         come from the configuration (read_buffer, prog_buffer,
 *                         lookahead_buffer), each file's page buffer from
 *                         petrel_fs_file_opencfg; a missing buffer is -PT_ENOMEM. Set
 *                         cache_size and lookahead_size explicitly to size the static
 *                         buffers; a file buffer takes page_size bytes (petrel_fs_fsinfo; at
 *                         most cache_size). Remembered pairs and lookup fingers exist only
 *                         with link_buffer (pairs; no fingers), and a file buffers
 *                         PETREL_FS_PENDING_INLINE tree updates unless given pend_buffer:
 *                         the same results with more reads and index writes.
 *   PETREL_NO_LOG         no logging: petrel_log calls compile to nothing, so no printf-family
 *                         function and no message string is linked (petrel/common.h).
 *   PETREL_NO_ASSERT      PT_ASSERT checks nothing (petrel/common.h).
 *   PETREL_FS_NO_CHECK    no consistency check: petrel_fs_check and petrel_fs_check_progress
 *                         are not declared nor built (traverse and usage stay).
 *   PETREL_CRC32C_TABLE_BYTES=8192|1024|64, PETREL_CRC32C_NO_HW
 *                         the CRC-32C table size and no hardware paths (petrel/crc32c.h); a
 *                         microcontroller gets the table path, 64 B is the smallest.
 *   PETREL_FS_READONLY    a reader only (like littlefs's LFS_READONLY): format, mkdir,
 *                         remove, rename, mknod, file write/truncate/sync, setattr and
 *                         removeattr are not declared nor built, and nothing the engine
 *                         builds ever programs or erases the device (no commit path, no
 *                         allocator, no mount-state marking). petrel_fs_file_open with write
 *                         access or PETREL_O_CREAT/TRUNC is -PT_EROFS; unmount and file close
 *                         only release. Mount reads a cleanly unmounted image and one whose
 *                         last session was cut (walked, as the full engine does), but refuses
 *                         with -PT_EROFS an image that needs a repair to be read consistently
 *                         (a rename half done: the entry would show in both directories; or
 *                         orphans: an entry may point at a pair that moved): mount it once
 *                         with the full engine, which repairs it, then read it here.
 *   PETREL_FS_NO_WEAR     no static wear leveling (wear.c): petrel_fs_config.wear_spread and
 *                         wear_buffer are ignored; the WEAR record of an image is kept by
 *                         compaction but neither read nor updated.
 * `make switch-matrix` runs the engine's tests with each combination of these switches.
 */
#ifndef PETREL_FS_H
#define PETREL_FS_H

#include <stddef.h>
#include <stdint.h>

#include "petrel/bd.h" /* struct petrel_bd: callbacks + geometry */

/* Version of the on-disk format written by this engine (major << 16 | minor). 2.0 changed the
 * commit chain (docs/SPEC-FS.md 2.2) and added block-list entries (7); 3.0 added the
 * mount-state record (docs/SPEC-FS.md 3.1) that a cleanly unmounted image is mounted from; a 1.x or 2.x
 * image is refused with -PT_EVERSION. 4.1 added the optional WEAR record (erase counts, docs/SPEC-FS.md
 * 9) that 4.0 engines skip. */
#define PETREL_FS_VERSION 0x00040001u

/* Longest file name this build supports, and the default name_max. */
#define PETREL_FS_NAME_MAX_DEFAULT 255

/* Largest attribute value accepted by default (bytes), and the attribute types (0-255). */
#define PETREL_FS_ATTR_MAX_DEFAULT 1022

/* Default and largest file size: the data tree addresses up to 2^31 - 1 bytes by default. */
#define PETREL_FS_FILE_MAX_DEFAULT 0x7fffffffu

/* How many data-block updates a file buffers before it writes them into its tree. */
#define PETREL_FS_PENDING 64
/* ... and how many it keeps inside struct petrel_fs_file when nothing is allocated
 * (PETREL_FS_NO_MALLOC without petrel_fs_file_config.pend_buffer). */
#define PETREL_FS_PENDING_INLINE 4
/* Fingers a lookup keeps into the last directory it walked. */
#define PETREL_FS_FINGERS 16
/* Entries a directory reader takes from one scan of a metadata pair. */
#define PETREL_FS_DIR_BATCH 32
/* A file of at most this many data blocks lists them in its entry (no index block). */
#define PETREL_FS_DIRECT_MAX 4
/* Consecutive data-block addresses an open file keeps from one index page it read. */
#define PETREL_FS_MAP_RUN 8

/* How deep a file's data tree may grow (index levels above the data blocks). */
#define PETREL_FS_TREE_DEPTH_MAX 6

/* The "no block" address. */
#define PETREL_FS_BLOCK_NULL 0xffffffffu

/* Flags for petrel_fs_file_open(): one access mode plus any of the others. */
enum petrel_fs_open_flags {
    PETREL_O_RDONLY = 1,     /* read only */
    PETREL_O_WRONLY = 2,     /* write only */
    PETREL_O_RDWR = 3,       /* read and write */
    PETREL_O_CREAT = 0x0100, /* create the file if it does not exist */
    PETREL_O_EXCL = 0x0200,  /* with CREAT: fail with -PT_EEXIST if it exists */
    PETREL_O_TRUNC = 0x0400, /* truncate an existing file to size 0 (needs write access) */
    PETREL_O_APPEND = 0x0800 /* every write goes to the end of the file */
};

/* Origins for petrel_fs_file_seek(). */
enum petrel_fs_whence { PETREL_SEEK_SET = 0, PETREL_SEEK_CUR = 1, PETREL_SEEK_END = 2 };

/* Entry types (docs/SPEC-FS.md §4). Types 3-7 are host file types the engine stores and
 * does not interpret: they keep a file's structure (size, data, attributes), so a symbolic
 * link keeps its target as its data and a device node its number in an attribute of the
 * caller's. petrel_fs_file_open opens any of them but a directory. */
enum petrel_fs_type {
    PETREL_FS_REG = 1,     /* regular file */
    PETREL_FS_DIR = 2,     /* directory */
    PETREL_FS_SYMLINK = 3, /* symbolic link: the data is the target */
    PETREL_FS_FIFO = 4,    /* named pipe */
    PETREL_FS_SOCK = 5,    /* UNIX-domain socket */
    PETREL_FS_CHR = 6,     /* character device */
    PETREL_FS_BLK = 7      /* block device */
};
/* Whether an entry type has the file structure (all but directories). */
#define PETREL_FS_TYPE_HAS_DATA(t) ((t) == PETREL_FS_REG || ((t) >= 3 && (t) <= 7))

/*
 * Configuration. Zeroed fields take their documented default. The structure (and the
 * device and buffers it points to) must stay valid while the filesystem is mounted.
 */
struct petrel_fs_config {
    /* The device: callbacks and geometry (read_size, prog_size, block_size, erase_value). */
    const struct petrel_bd *bd;

    /* Number of blocks to use. 0 = bd->block_count at format, the superblock's at mount.
     * At mount a nonzero value must equal the superblock's (-PT_EINVAL otherwise). */
    uint32_t block_count;

    /* Bytes of the read cache and of the program cache (each). A multiple of read_size and
     * prog_size, at least the page size (see petrel_fs_fsinfo) and at most block_size.
     * 0 = block_size when block_size <= 4096, else the page size. A larger cache reads less. */
    uint32_t cache_size;

    /* Bytes of the allocator's lookahead bitmap (8 blocks per byte, multiple of 8).
     * 0 = enough for the whole device, capped at 64 bytes (512 blocks). */
    uint32_t lookahead_size;

    /* Erase cycles of a metadata block before the pair moves to a fresh block (dynamic wear
     * leveling); -1 (or 0) = never. Values 1..7 are raised to 8, even values to the next odd
     * one (a move keeps the block with the current log: with an even count that would be the
     * same block every time). The root pair (blocks 0 and
     * 1, which hold the superblock) never moves: every block_cycles compactions it moves the
     * root directory's entries out to a pair that can. */
    int32_t block_cycles;

    /* Limits, written to the superblock at format and checked at mount. 0 = defaults
     * (PETREL_FS_NAME_MAX_DEFAULT, PETREL_FS_FILE_MAX_DEFAULT, PETREL_FS_ATTR_MAX_DEFAULT),
     * lowered at format when the block size is too small to hold them (tiny devices);
     * petrel_fs_fsinfo reports the values in force. */
    uint32_t name_max, file_max, attr_max;

    /* Optional static buffers of cache_size bytes (read, prog) and lookahead_size bytes;
     * NULL = allocated at mount (an error with -DPETREL_FS_NO_MALLOC). */
    void *read_buffer, *prog_buffer, *lookahead_buffer;

    /* Extra value XORed into the allocator's start-point seed (0 normally). The seed is
     * otherwise, on a cleanly unmounted image, where the previous session's allocator stopped
     * (kept in the mount-state record) and, on an image walked at mount, the XOR of the CRCs
     * of all commits read: deterministic per image. */
    uint64_t seed_mix;

    /* Optional memory of pairs for large directories: link_count remembered pairs (instead
     * of the PETREL_FS_LINK_CACHE built in) and link_index, one entry per block of the device
     * (bd->block_count; -PT_EINVAL when missing with link_buffer), that find a
     * block's pair in one step. With a slot per pair of a directory, walking the directory
     * to the pair of a name reads nothing but that pair. Both NULL/0 = the built-in table,
     * allocated at mount with PETREL_FS_FINGERS lookup fingers (about 1.8 KiB, outside
     * struct petrel_fs); with PETREL_FS_NO_MALLOC there is none: every lookup reads the
     * pairs it passes (same results, more reads), unless link_buffer is given. */
    struct petrel_fs_link *link_buffer;
    uint32_t link_count;
    uint32_t *link_index;

    /* Static wear leveling (docs/SPEC-FS.md 9; compiled out with PETREL_FS_NO_WEAR and in the
     * read-only build). 0 = off. When on, the engine counts every erase of every block and,
     * when the most-erased block has been erased more than wear_spread times more often than
     * a block holding file data, moves that cold data onto a worn free block, so that its old,
     * little-erased block joins the blocks in rotation. Extra writes are bounded: at most one
     * block moved per max(1, wear_spread / 4) erases the engine did otherwise, at most
     * PETREL_FS_WEAR_MOVE_MAX per call. Moves run at the end of a successful
     * petrel_fs_file_sync (and so close), never inside another operation, each as a
     * copy-then-commit like a file write (power-cut safe); their failure never fails the sync.
     * The counts are kept in the root pair (a WEAR record written at unmount and after every
     * block_count erases) when 8 + block_count bytes fit in a quarter of a block, so the
     * decision survives reboots; otherwise they restart at zero at each mount. Open files'
     * data never moves. 16 to 64 suits most flash (a wear-out is reached with the mean erase
     * count within about wear_spread of the highest). */
    uint32_t wear_spread;
    /* Erase counts: PETREL_FS_WEAR_WORDS(block count) words, or NULL (allocated at mount when
     * wear_spread is set; with PETREL_FS_NO_MALLOC wear leveling is then off). */
    uint32_t *wear_buffer;
};

/* Words of a petrel_fs_config.wear_buffer for a device of n blocks: a count per block and
 * room to encode the WEAR record (8 + n bytes). */
#define PETREL_FS_WEAR_WORDS(n) ((n) + ((n) + 3) / 4 + 2)
/* Blocks static wear leveling moves at most per call (one file's blocks). */
#define PETREL_FS_WEAR_MOVE_MAX 4

/* One directory entry or a stat result. */
struct petrel_fs_info {
    uint8_t type;  /* enum petrel_fs_type */
    uint64_t size; /* data size in bytes (0 for directories) */
    char name[PETREL_FS_NAME_MAX_DEFAULT + 1];
};

/* Filesystem parameters, from the superblock. */
struct petrel_fs_fsinfo {
    uint32_t version;     /* on-disk format version (PETREL_FS_VERSION) */
    uint32_t block_size;  /* erase block size */
    uint32_t block_count; /* blocks in the filesystem */
    uint32_t name_max;    /* longest name */
    uint64_t file_max;    /* largest file */
    uint32_t attr_max;    /* largest attribute value */
    uint32_t page_size;   /* data page size (payload + 4-byte CRC) */
    uint32_t inline_max;  /* largest file tail kept inline in metadata */
};

/* ---- Engine state. Callers allocate these structures; their fields are private. ---- */

/* A block-sized window of the device held in RAM. */
struct petrel_fs_cache {
    uint8_t *buf;
    uint32_t block; /* PETREL_FS_BLOCK_NULL when empty */
    uint32_t off;
    uint32_t size;
};

/* How many metadata pairs' thread links the engine remembers (a lookup walks a
 * directory's chain of pairs through them without reading the pairs it only passes). */
#define PETREL_FS_LINK_CACHE 32

/* A remembered pair (valid until either block is programmed or erased): its thread link and
 * the extent of its log as last validated, so that reading it again needs no CRC pass. */
struct petrel_fs_link {
    uint32_t pair[2];     /* PETREL_FS_BLOCK_NULL when unused; pair[0] holds the log */
    uint32_t next[2];
    uint64_t next_split;
    uint32_t rev, off;    /* revision and end of the valid log in pair[0] */
    uint32_t log_crc;     /* CRC of the last commit: the seed of the next one's */
    uint32_t fcrc;        /* the last commit's fcrc (docs/SPEC-FS.md 2.2) */
    uint32_t crc_xor;     /* XOR of the log's commit CRCs */
    uint8_t next_cont;
    uint8_t erased;       /* the space after off is known erased */
    uint8_t indexed;      /* the log holds an INDEX record (a directory index, in a head) */
};

/* Global state: the XOR of all deltas in all metadata logs (docs/SPEC-FS.md). */
struct petrel_fs_gstate {
    uint32_t move_pair[2]; /* pair holding the source of a half-done rename */
    uint64_t move_hash;    /* its name hash */
    uint32_t move_pending; /* 1 while a cross-pair rename is half done */
    uint32_t orphans;      /* number of unfinished directory link/unlink steps */
};

/* Common head of open files and directories: the engine keeps a list to fix them up. */
struct petrel_fs_handle {
    struct petrel_fs_handle *next;
    uint8_t kind;
};

/* An open directory. */
struct petrel_fs_dir {
    struct petrel_fs_handle h;
    uint32_t head[2];   /* first pair of the directory */
    uint32_t pair[2];   /* pair being read */
    uint64_t last_hash; /* hash of the last entry returned from this pair */
    int have_last;      /* whether last_hash is set */
    int at_end;         /* all pairs read */
    uint64_t pos;       /* entries returned since rewind */
    /* the next entries of the pair in hash order, found by one scan of its log; valid while
     * the pair's log is the one scanned (block, end and revision) */
    uint32_t batch_block, batch_off, batch_rev;
    uint8_t batch_n, batch_i;
    uint8_t batch_last;  /* the batch holds the rest of the pair */
    struct {
        uint64_t hash;
        uint32_t off, len; /* the ENTRY record's payload in batch_block */
    } batch[PETREL_FS_DIR_BATCH];
};

/* An open file. */
struct petrel_fs_file {
    struct petrel_fs_handle h;
    uint32_t head[2];   /* first pair of the parent directory */
    uint64_t hash;      /* name hash: the entry's key */
    uint32_t epair[2];  /* pair that held the entry when layout_gen was egen */
    uint32_t egen;
    uint8_t epair_valid;
    int flags;          /* open flags */
    uint8_t type;       /* entry type (enum petrel_fs_type), kept by sync */
    int dirty;          /* metadata must be committed at sync */
    int error;          /* sticky error after a failed write (the file can only be closed) */
    uint64_t pos;       /* current position */
    uint64_t size;      /* current size */
    uint64_t tree_size; /* bytes [0, tree_size) live in the data tree, the rest in buf */
    uint32_t root;      /* root of the data tree (PETREL_FS_BLOCK_NULL: empty) */
    uint8_t depth;      /* index levels above data blocks, or 0x80 | n: n blocks listed */
    uint32_t direct[PETREL_FS_DIRECT_MAX - 1]; /* listed data blocks 1.. (root is block 0) */
    uint8_t buf_alloc;  /* buf was allocated by open */
    uint8_t buf_state;  /* 0 empty, 1 clean, 2 dirty */
    uint8_t ob_open;    /* a data block is being written */
    uint64_t buf_page;  /* logical page held in buf */
    uint8_t *buf;       /* one page of payload */
    uint32_t ob_index;  /* open block: logical block index */
    uint32_t ob_block;  /* open block: physical block being written */
    uint32_t ob_src;    /* open block: block it replaces (or NULL) */
    uint32_t ob_next;   /* open block: next page slot to program */
    uint32_t ob_src_pages; /* open block: valid pages in ob_src */
    uint32_t map_index; /* last tree lookup: logical blocks map_index.. */
    uint32_t map_block[PETREL_FS_MAP_RUN]; /* ... and where they are */
    uint8_t map_n;      /* blocks mapped (0 when map_valid is clear) */
    uint8_t map_valid;
    uint32_t pend_n;    /* buffered tree updates */
    uint32_t pend_max;  /* room in pend */
    uint8_t pend_alloc; /* pend was allocated on its own by open */
    /* the buffered updates: PETREL_FS_PENDING allocated by open (with buf when buf is),
     * the configuration's pend_buffer, or pend_inline (without malloc) */
    struct petrel_fs_pend {
        uint32_t index, block;
    } *pend;
    struct petrel_fs_pend pend_inline[PETREL_FS_PENDING_INLINE];
};

/* Per-file configuration for petrel_fs_file_opencfg(). Zero it first (memset or = {0}):
 * fields left zero take their defaults. */
struct petrel_fs_file_config {
    void *buffer; /* petrel_fs_fsinfo().page_size bytes, or NULL (allocated) */
    /* Room for pend_count buffered data-block updates (8 bytes each), or NULL/0: allocated
     * (PETREL_FS_PENDING of them), or with PETREL_FS_NO_MALLOC the PETREL_FS_PENDING_INLINE
     * kept in the file. Fewer means more index-block writes for random writes, the same
     * data. */
    struct petrel_fs_pend *pend_buffer;
    uint32_t pend_count;
};

/* A mounted filesystem. */
struct petrel_fs {
    const struct petrel_fs_config *cfg;
    const struct petrel_bd *bd;
    uint32_t block_size, block_count;
    uint32_t read_size, prog_size;
    uint32_t cache_size;
    uint32_t page_size;   /* data page: payload + CRC */
    uint32_t inline_max;  /* largest inline tail */
    uint32_t name_max, attr_max;
    uint64_t file_max;
    int32_t block_cycles;
    uint32_t image_version; /* format version in the superblock the last mount found (kept
                               when the mount failed, e.g. with -PT_EVERSION); 0 if none */
    uint8_t mounted, rcache_alloc, pcache_alloc, look_alloc;
    uint8_t readonly;     /* set when the device wore out or metadata cannot be written */
    uint8_t repairing;    /* inside the orphan repair (no nested repair) */
    uint8_t ms_clean;     /* the root pair's mount-state record says "clean": nothing may
                             commit before pt_mstate_mark_dirty has changed that */
    uint8_t ms_changed;   /* a call of this session may have changed something (the record
                             is dirty): unmount marks it clean */
    struct petrel_fs_cache rcache, pcache;
    /* allocator */
    uint8_t *lookahead;
    uint32_t look_size;   /* bits in the lookahead bitmap */
    uint32_t look_len;    /* blocks the current window covers (at most look_size) */
    uint32_t look_start;  /* first block of the window */
    uint32_t look_next;   /* next bit to try in the window */
    uint32_t look_ack;    /* blocks left before the allocator has gone round once */
    uint64_t seed;
    uint32_t next_dirid;
    uint32_t layout_gen;  /* bumped whenever entries may have moved between pairs */
    struct petrel_fs_gstate gstate;   /* global state on disk (XOR of all deltas) */
    struct petrel_fs_gstate gpending; /* global state the next commit must establish */
    struct petrel_fs_handle *handles;
    /* the table in use: cfg->link_buffer, or PETREL_FS_LINK_CACHE links allocated at mount
     * (with the fingers below, one allocation), or none (nlinks 0) without malloc */
    struct petrel_fs_link *linkv;
    void *tables;                 /* the allocation of the built-in links and fingers */
    uint32_t nlinks;
    uint32_t *link_index;         /* block -> slot + 1 (cfg->link_index), or NULL */
    /* the last directory a path led to (its path's component hash and depth) */
    uint64_t dc_key;
    uint32_t dc_ncomp, dc_gen, dc_dirid;
    uint32_t dc_head[2];
    uint8_t dc_valid;
    uint32_t link_next;   /* next slot to replace */
    /* fingers into the last directory walked: for each 16th of the hash space, the pair
     * whose range starts lowest in it (valid while layout_gen is fg_gen) */
    uint32_t fg_head[2], fg_gen;
    /* fingers the last clean unmount saved for one directory (the root pair's FINGERS record,
     * docs/SPEC-FS.md 3.2): dfg_n entries at dfg_off in block dfg_block, usable while no pair
     * has moved (layout_gen is dfg_gen) and no block was allocated since a mount from the
     * clean record */
    uint32_t dfg_head[2], dfg_block, dfg_off, dfg_gen, dfg_n;
    /* the directory whose walk passed the most pairs this session: the one unmount saves
     * fingers for (with the last directory walked as the other candidate) */
    uint32_t big_head[2], big_hops;
    /* the last directory walk (index.c): its head, the pair it ended at, the pairs passed
     * since the nearest index entry (a lower bound), valid while layout_gen is ix_gen; and
     * where that head's INDEX record is (ix_block, ix_off, ix_len; ix_known), valid while
     * layout_gen is ix_kgen and no block was allocated */
    uint32_t ix_head[2], ix_pair[2], ix_gen, ix_hops;
    uint32_t ix_block, ix_off, ix_len, ix_kgen;
    uint8_t ix_known, ix_busy, index_ok; /* index_ok: the image is format 4 (writes indexes) */
    uint8_t links_pinned; /* remembered links are not replaced (an unmount's FINGERS commit) */
    /* PETREL_FS_FINGERS fingers, allocated at mount; NULL without malloc (walks then start
     * at the directory's head or the saved fingers) */
    struct petrel_fs_finger {
        uint64_t lo;
        uint32_t pair[2];
    } *fg;
#if !defined(PETREL_FS_NO_WEAR) && !defined(PETREL_FS_READONLY)
    /* static wear leveling (wear.c): erase counts per block (NULL: off), erases not yet
     * spent on moves and not yet saved in the WEAR record, blocks moved this session */
    uint32_t *wear;
    uint32_t wear_credit, wear_unsaved, wear_moves;
    uint8_t wear_alloc, wear_busy;
#endif
};

/* ---- Filesystem ---------------------------------------------------------------------- */

#ifndef PETREL_FS_READONLY
/*
 * Format the device: an empty root directory and the superblock. Erases what it needs only;
 * any previous contents are lost. fs is used as scratch and left unmounted.
 * Errors: -PT_EINVAL (bad geometry or configuration), -PT_EIO, -PT_ENOMEM.
 */
int petrel_fs_format(struct petrel_fs *fs, const struct petrel_fs_config *cfg);
#endif /* PETREL_FS_READONLY */

/*
 * Mount: find the newest valid superblock, read the global state, finish or undo a half-done
 * rename, reclaim orphaned directories, seed the allocator. An image unmounted cleanly is
 * mounted from its root pair alone (its mount-state record); one whose last session was cut
 * (power loss, no unmount) is walked pair by pair, as fsck does. Mount writes only to finish
 * a half-done operation. The first call of a session that may change anything first commits
 * "dirty" to the root pair and syncs the device (once per mount).
 * Errors: -PT_ECORRUPT (no valid superblock: not a petrel image or destroyed), -PT_EVERSION
 * (another major format, e.g. a 2.x image: its version is left in fs->image_version and
 * logged at info level as "image format 2.0, this engine reads 3.x"), -PT_EINVAL
 * (configuration does not match the image), -PT_EIO, -PT_ENOMEM, and with
 * PETREL_FS_READONLY -PT_EROFS (the image needs a repair: a half-done rename or orphans; the
 * read-only build never writes, see the build switches above). On failure fs is left
 * unmounted.
 */
int petrel_fs_mount(struct petrel_fs *fs, const struct petrel_fs_config *cfg);

/* Unmount: syncs the device and, when the session changed anything, commits the clean
 * mount-state record (so the next mount reads the root pair only); releases buffers. Open
 * files are NOT synced (close them first). -PT_EINVAL when fs is not mounted; an error of the
 * sync or the record (the image is then mounted by a walk next time) after releasing. */
int petrel_fs_unmount(struct petrel_fs *fs);

/* Filesystem parameters. */
int petrel_fs_fsinfo(struct petrel_fs *fs, struct petrel_fs_fsinfo *info);

/* Type, size and name of path ("/" gives the root, named "/").
 * Errors: -PT_ENOENT, -PT_ENOTDIR (a middle component is a file), -PT_ENAMETOOLONG. */
int petrel_fs_stat(struct petrel_fs *fs, const char *path, struct petrel_fs_info *info);

#ifndef PETREL_FS_READONLY
/* Remove a file or an empty directory.
 * Errors: -PT_ENOENT, -PT_ENOTEMPTY, -PT_EINVAL (the root), -PT_ENOSPC, -PT_EROFS. */
int petrel_fs_remove(struct petrel_fs *fs, const char *path);

/*
 * Rename oldpath to newpath atomically, also across directories. An existing newpath is
 * replaced if it is a file and oldpath is a file, or if it is an empty directory and oldpath
 * is a directory; attributes move with the entry.
 * Errors: -PT_ENOENT, -PT_EISDIR (file over directory), -PT_ENOTDIR
 * (directory over file), -PT_ENOTEMPTY (non-empty directory target), -PT_EINVAL (a directory
 * into its own subtree, or the root), -PT_ENAMETOOLONG, -PT_ENOSPC, -PT_EROFS.
 */
int petrel_fs_rename(struct petrel_fs *fs, const char *oldpath, const char *newpath);

/* Create a directory. Errors: -PT_EEXIST, -PT_ENOENT (parent missing), -PT_ENOTDIR,
 * -PT_ENAMETOOLONG, -PT_ENOSPC, -PT_EROFS. */
int petrel_fs_mkdir(struct petrel_fs *fs, const char *path);

/*
 * Create an empty entry of a type with the file structure (PETREL_FS_REG or 3-7), in one
 * commit. A symbolic link is then filled by opening it for writing (a power cut in between
 * leaves it with an empty target). Errors: -PT_EINVAL (PETREL_FS_DIR or an unknown type),
 * -PT_EEXIST, -PT_ENOENT, -PT_ENOTDIR, -PT_ENAMETOOLONG, -PT_ENOSPC, -PT_EROFS.
 */
int petrel_fs_mknod(struct petrel_fs *fs, const char *path, uint8_t type);
#endif /* PETREL_FS_READONLY */

/* ---- Directories ---------------------------------------------------------------------- */

/* Open a directory for reading. Errors: -PT_ENOENT, -PT_ENOTDIR. */
int petrel_fs_dir_open(struct petrel_fs *fs, struct petrel_fs_dir *dir, const char *path);

/*
 * Read the next entry: returns 1 and fills info, or 0 at the end. No "." or ".." entries are
 * returned. Entries come in name-hash order (not alphabetical). Entries created or removed
 * while a directory is open may or may not be seen; no entry is returned twice.
 */
int petrel_fs_dir_read(struct petrel_fs *fs, struct petrel_fs_dir *dir,
                       struct petrel_fs_info *info);

/* Seek to a position returned by petrel_fs_dir_tell (the count of entries read). */
int petrel_fs_dir_seek(struct petrel_fs *fs, struct petrel_fs_dir *dir, uint64_t off);

/* Position: the number of entries read since open or rewind. */
int64_t petrel_fs_dir_tell(struct petrel_fs *fs, struct petrel_fs_dir *dir);

/* Back to the first entry. */
int petrel_fs_dir_rewind(struct petrel_fs *fs, struct petrel_fs_dir *dir);

/* Close the directory. */
int petrel_fs_dir_close(struct petrel_fs *fs, struct petrel_fs_dir *dir);

/* ---- Files ---------------------------------------------------------------------------- */

/*
 * Open (and with PETREL_O_CREAT create) a file. The page buffer is allocated (see
 * petrel_fs_file_opencfg to supply it). Errors: -PT_ENOENT, -PT_EEXIST (CREAT|EXCL),
 * -PT_EISDIR, -PT_ENOTDIR, -PT_ENAMETOOLONG, -PT_EINVAL (bad flags, TRUNC without write
 * access), -PT_ENOMEM, -PT_ENOSPC, -PT_EROFS (write access on a read-only filesystem).
 * A created file exists on disk (empty) when open returns.
 */
int petrel_fs_file_open(struct petrel_fs *fs, struct petrel_fs_file *file, const char *path,
                        int flags);

/* Like petrel_fs_file_open with a caller buffer (needed with -DPETREL_FS_NO_MALLOC). */
int petrel_fs_file_opencfg(struct petrel_fs *fs, struct petrel_fs_file *file, const char *path,
                           int flags, const struct petrel_fs_file_config *fcfg);

/* Read up to size bytes at the position; returns the count (0 at end of file).
 * Errors: -PT_EBADF (not open for reading), -PT_ECORRUPT (a page failed its CRC), -PT_EIO. */
int64_t petrel_fs_file_read(struct petrel_fs *fs, struct petrel_fs_file *file, void *buf,
                            uint64_t size);

#ifndef PETREL_FS_READONLY
/* Write size bytes at the position (at the end with APPEND); returns size. Writing past
 * the end leaves a hole of zeros; like littlefs, even a write of 0 bytes past the end
 * extends the file to the position. Data is durable after sync/close.
 * Errors: -PT_EBADF, -PT_EFBIG (beyond file_max), -PT_ENOSPC, -PT_EIO, -PT_ECORRUPT. */
int64_t petrel_fs_file_write(struct petrel_fs *fs, struct petrel_fs_file *file,
                             const void *buf, uint64_t size);
#endif /* PETREL_FS_READONLY */

/* Move the position; returns the new position. Seeking beyond the end is allowed.
 * Errors: -PT_EINVAL (negative result or bad whence), -PT_EFBIG (beyond file_max). */
int64_t petrel_fs_file_seek(struct petrel_fs *fs, struct petrel_fs_file *file, int64_t off,
                            int whence);

/* Current position. */
int64_t petrel_fs_file_tell(struct petrel_fs *fs, struct petrel_fs_file *file);

/* Current size (including unsynced writes). */
int64_t petrel_fs_file_size(struct petrel_fs *fs, struct petrel_fs_file *file);

#ifndef PETREL_FS_READONLY
/* Set the size: shrink, or grow with zeros. The position does not move.
 * Errors: -PT_EBADF (not writable), -PT_EFBIG, -PT_ENOSPC, -PT_EIO. */
int petrel_fs_file_truncate(struct petrel_fs *fs, struct petrel_fs_file *file, uint64_t size);

/* Make everything written so far durable, atomically (all of it or none after a power cut).
 * Errors: -PT_ENOSPC, -PT_EIO, -PT_ENOENT (the file was removed while open). */
int petrel_fs_file_sync(struct petrel_fs *fs, struct petrel_fs_file *file);
#endif /* PETREL_FS_READONLY */

/* Sync and release the file (released even when the sync fails; its error is returned). */
int petrel_fs_file_close(struct petrel_fs *fs, struct petrel_fs_file *file);

/* ---- Custom attributes: up to attr_max bytes per (entry, type), type 0-255. ---------- */

/* Copy the attribute into buf (at most size bytes); returns its full size.
 * Errors: -PT_ENOENT (no such path), -PT_ENODATA (no such attribute). */
int64_t petrel_fs_getattr(struct petrel_fs *fs, const char *path, uint8_t type, void *buf,
                          uint32_t size);

#ifndef PETREL_FS_READONLY
/* Set (create or replace) an attribute, atomically.
 * Errors: -PT_ENOENT, -PT_ERANGE (size > attr_max), -PT_ENOSPC, -PT_EROFS. */
int petrel_fs_setattr(struct petrel_fs *fs, const char *path, uint8_t type, const void *buf,
                      uint32_t size);

/* Remove an attribute. Errors: -PT_ENOENT, -PT_ENODATA. */
int petrel_fs_removeattr(struct petrel_fs *fs, const char *path, uint8_t type);
#endif /* PETREL_FS_READONLY */

/* ---- Whole filesystem ------------------------------------------------------------------ */

/* Blocks in use by committed metadata and file data (open files' unsynced data excluded). */
int64_t petrel_fs_usage(struct petrel_fs *fs);

/* Call cb once for every block in use (committed state); cb returning nonzero stops the
 * walk and that value is returned. */
int petrel_fs_traverse(struct petrel_fs *fs, int (*cb)(void *ctx, uint32_t block), void *ctx);

#ifndef PETREL_FS_NO_CHECK
/*
 * Consistency check for `petrel fsck`: walks all metadata and data, verifying every commit
 * CRC and every data page CRC, the structure (thread, directory ranges, trees, block
 * addresses, double use of a block) and the global state. Reports each problem through cb
 * (may be NULL) as one line of text; returns 0 when clean, -PT_ECORRUPT when not, or another
 * negative code when the walk itself failed (-PT_EIO).
 */
int petrel_fs_check(struct petrel_fs *fs, void (*cb)(void *ctx, const char *problem),
                    void *ctx);

/* petrel_fs_check, calling progress (when not NULL) as it goes with the number of blocks
 * checked so far (a metadata pair counts two, a data block one), to compare with
 * petrel_fs_usage. The check reads each metadata block about twice and each data page once
 * (plus index pages) when the lookahead buffer covers the device; a smaller one adds a walk
 * of the metadata and index blocks per lookahead window. */
int petrel_fs_check_progress(struct petrel_fs *fs, void (*cb)(void *ctx, const char *problem),
                             void *ctx, void (*progress)(void *pctx, uint64_t blocks),
                             void *pctx);
#endif /* PETREL_FS_NO_CHECK */

#endif
