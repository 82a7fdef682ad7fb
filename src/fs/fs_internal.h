/*
 * Internal interfaces of the flash engine, shared by the files of src/fs/. Nothing here is
 * public: the on-disk constants are specified in docs/SPEC-FS.md and change with it.
 *
 * Module map:
 *   cache.c      device access through the read and program caches, verified programs
 *   alloc.c      block allocator (lookahead window, seeded start, going-round detection)
 *   mdir.c       metadata pairs: fetch, append commit, compaction, split, record scans
 *   commit.c     filesystem-level commits: global-state deltas, relocation fix-ups
 *   gstate.c     half-done renames and orphaned directories: repair at mount
 *   mstate.c     the mount-state record: dirty/clean sessions, what mount reads instead of a walk
 *   index.c      a big directory's index of its pairs (head pair): bounded lookups, write order
 *   dir.c        paths, lookups, mkdir, remove, rename, directory reading
 *   ctree.c      file data: pages with CRCs, the copy-on-write block tree
 *   file.c       open files: buffering, write, read, truncate, sync
 *   attr.c       custom attributes
 *   superblock.c format, mount, unmount, fsinfo
 *   check.c      traverse, usage, consistency check
 *   wear.c       static wear leveling: erase counts, the WEAR record, moves of cold data
 */
#ifndef PETREL_FS_INTERNAL_H
#define PETREL_FS_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/fs.h"
#include "petrel/hash.h"

#define PT_NULL PETREL_FS_BLOCK_NULL

/* Keeps a helper's locals out of its caller's frame, so that helpers called one after the
 * other share stack instead of adding up (docs/FIRMWARE.md, stack-worst and frame-max). */
#if defined(__GNUC__)
#define PT_NOINLINE __attribute__((noinline))
#else
#define PT_NOINLINE
#endif

/* Every public call but format and mount starts with this: a filesystem never mounted
 * (zero-initialised), unmounted, or whose mount failed gives -PT_EINVAL, never a crash. */
#define PT_REQUIRE_MOUNTED(fs)                                                                 \
    do {                                                                                       \
        if (!(fs) || !(fs)->mounted) return -PT_EINVAL;                                        \
    } while (0)

/* ---- On-disk record types (docs/SPEC-FS.md "Records"). ---- */
enum pt_rec_type {
    PT_REC_SUPERBLOCK = 0x01,
    PT_REC_HEAD = 0x02,     /* this pair starts a directory: dirid */
    PT_REC_THREAD = 0x03,   /* next pair in the thread, continuation flag, split hash */
    PT_REC_LO = 0x04,       /* lowest name hash this pair holds */
    PT_REC_GDELTA = 0x05,   /* global state delta */
    PT_REC_MSTATE = 0x06,   /* mount state: clean/dirty, totals of the walk (root pair) */
    PT_REC_FINGERS = 0x07,  /* pairs of one directory, saved with the clean mount state */
    PT_REC_INDEX = 0x08,    /* head pair: (lowest hash -> pair) of some continuation pairs */
    PT_REC_WEAR = 0x09,     /* root pair: erase count per block (format 4.1) */
    PT_REC_ENTRY = 0x10,    /* directory entry (file or directory) */
    PT_REC_DELETE = 0x11,   /* entry removed */
    PT_REC_ATTR = 0x12,     /* custom attribute */
    PT_REC_ATTRDEL = 0x13,  /* custom attribute removed */
    PT_REC_CRC = 0x7f,      /* closes a commit */
    /* Not on disk: a commit input that copies an entry's attributes under a new hash. */
    PT_REC_COPYATTRS = 0xf0
};

#define PT_REC_HDR 4u          /* type u8, payload length le24 */
#define PT_CRC_PAYLOAD 8u      /* fcrc le32, crc le32 (+ padding) */
#define PT_GSTATE_SIZE 24u
#define PT_SB_SIZE 36u
#define PT_MSTATE_SIZE 12u
#define PT_MSTATE_DIRTY 0x00u
#define PT_MSTATE_CLEAN 0x01u

/* Records superseded by a later one of their type ("singletons"): their index among them
 * (0-4), or -1. */
#define PT_SINGLETONS 8
static inline int pt_rec_singleton(uint8_t type)
{
    if (type >= PT_REC_SUPERBLOCK && type <= PT_REC_LO) return type - PT_REC_SUPERBLOCK;
    if (type == PT_REC_MSTATE) return 4;
    if (type == PT_REC_FINGERS) return 5;
    if (type == PT_REC_INDEX) return 6;
    if (type == PT_REC_WEAR) return 7;
    return -1;
}
/* WEAR: le32 base, u8 shift, 3 zero bytes, then one byte per block: (count - base) >> shift,
 * at most 255 (docs/SPEC-FS.md 9). */
#define PT_WEAR_HDR 8u
/* INDEX: entries of le32 lo_hi (the pair's lowest hash divided by 2^32, rounded up), le32
 * pair[0], le32 pair[1], lo_hi strictly increasing (docs/SPEC-FS.md 4.1). */
#define PT_INDEX_ENTRY 12u
#define PT_INDEX_HOPS 8u  /* a split this many pairs or more past the nearest entry adds one */
/* FINGERS: le32 head[0], le32 head[1], then entries of le32 lo_hi (the pair's lowest hash
 * divided by 2^32, rounded up), le32 pair[0], le32 pair[1]. */
#define PT_FINGERS_HDR 8u
#define PT_FINGER_SIZE 12u
#define PT_FINGERS_MAX 96u     /* written from the remembered links at unmount (mstate.c) */
#define PT_FINGERS_MIN_PAIRS 32u /* smaller directories are walked from the head */

/* Entry payload offsets. */
#define PT_ENTRY_FIXED 10u     /* hash le64, type u8, name_len u8 */
#define PT_DIRSTRUCT_SIZE 12u  /* pair le32 x2, dirid le32 */
#define PT_REGSTRUCT_SIZE 15u  /* size le64, root le32, depth u8, tail_len le16 */
/* depth byte: index levels above the data blocks, or PT_DEPTH_DIRECT | n (2 <= n <=
 * PETREL_FS_DIRECT_MAX): n data blocks, root and n - 1 more listed in the entry */
#define PT_DEPTH_DIRECT 0x80u
#define PT_DIRECT_MAX PETREL_FS_DIRECT_MAX
#define PT_REGSTRUCT_MAX (PT_REGSTRUCT_SIZE + 4u * (PT_DIRECT_MAX - 1))

static inline uint32_t pt_direct_count(uint8_t depth)
{
    return (depth & PT_DEPTH_DIRECT) ? (uint32_t)(depth & 0x7fu) : 0;
}

/* A record in a pair's log: payload offset and length, type. */
struct pt_rec_ref {
    uint32_t off; /* payload offset in the block */
    uint32_t len;
    uint8_t type;
};

/* A fetched metadata pair. */
struct pt_mdir {
    uint32_t pair[2];   /* pair[0] holds the newest valid log */
    uint32_t rev;       /* revision of pair[0] */
    uint32_t off;       /* end of the valid log in pair[0] */
    uint8_t erased;     /* the space after off is known erased: appending is safe */
    uint8_t head;       /* this pair starts a directory */
    uint8_t next_cont;  /* the next pair continues this directory */
    uint32_t dirid;     /* directory id (head pairs) */
    uint64_t lo;        /* lowest hash held here */
    uint64_t next_split;/* lowest hash of the continuation pair */
    uint32_t next[2];   /* next pair in the thread (PT_NULL: end) */
    struct petrel_fs_gstate gdelta; /* XOR of this pair's deltas */
    uint32_t crc_xor;   /* XOR of the CRCs of the valid commits */
    uint32_t log_crc;   /* crc of the last valid commit: seed of the next one's */
    uint32_t fcrc;      /* fcrc of the last valid commit */
    uint32_t ncommits;
    /* result of the lookup requested at fetch */
    uint8_t found;      /* 0 none, else PT_REC_ENTRY or PT_REC_DELETE */
    struct pt_rec_ref found_rec;
    uint8_t attrs_none;  /* known: the log holds no attribute of attrs_hash */
    uint64_t attrs_hash;
    uint32_t index_off;  /* payload offset in pair[0] of the INDEX record in force (0: none) */
    uint32_t index_len;
};

/* One record to commit. Payload = seg[0], seg[1], seg[2] (any may be empty), with copy_len
 * bytes read from the device (block copy_block, offset copy_off) inserted before seg[copy_at]
 * (copy_at 3: after seg[2]). Built from the parts where they lie (the caller's path, a
 * record already on disk), an entry needs no name- or block-sized buffer on the stack; a
 * copied range must stay unchanged until the commit returns (a pair's newest log block is:
 * a commit appends to it or compacts out of it). A FINGERS record whose seg[0] is NULL has a
 * payload of seglen[0] bytes written by pt_fingers_emit (nothing else set). */
#define PT_REC_SEGS 3
struct pt_rec {
    uint8_t type;
    uint8_t atype;      /* attribute type for ATTR / ATTRDEL */
    uint8_t copy_at;
    uint64_t hash;      /* key for ENTRY/DELETE/ATTR/ATTRDEL/COPYATTRS (new hash) */
    const void *seg[PT_REC_SEGS];
    uint32_t seglen[PT_REC_SEGS];
    uint32_t copy_block, copy_off, copy_len;
    /* COPYATTRS: copy live attributes of src_hash in src to hash.
     * INDEX with src set: the payload is bytes [hash >> 32, + (uint32_t)hash) of block
     * src->pair[0], then seg[0], then bytes [src_hash >> 32, + (uint32_t)src_hash) of that
     * block: a changed index is written from the old one without holding it in RAM. */
    const struct pt_mdir *src;
    uint64_t src_hash;
};

/* What a commit's split linked: the first new pair and its lowest hash. */
struct pt_split_note {
    uint32_t pair[2];
    uint64_t lo;
    int valid;
};

/* A decoded directory entry. */
struct pt_entry {
    uint8_t type;       /* enum petrel_fs_type */
    uint8_t name_len;
    uint64_t hash;
    uint32_t name_off;  /* disk offset of the name */
    uint32_t block;     /* block holding the record */
    uint32_t rec_off;   /* payload offset */
    uint32_t rec_len;
    /* DIR */
    uint32_t pair[2];
    uint32_t dirid;
    /* REG */
    uint64_t size;
    uint32_t root;
    uint8_t depth;
    uint32_t direct[PT_DIRECT_MAX - 1];
    uint16_t tail_len;
    uint32_t tail_off;  /* disk offset of the tail bytes */
};

/* ---- cache.c ---- */
int pt_read(struct petrel_fs *fs, uint32_t block, uint32_t off, void *buf, uint32_t size,
            uint32_t hint);
int pt_read_crc(struct petrel_fs *fs, uint32_t block, uint32_t off, uint32_t size,
                uint32_t *crc);
int pt_read_direct(struct petrel_fs *fs, uint32_t block, uint32_t off, void *buf, uint32_t size);
int pt_erase(struct petrel_fs *fs, uint32_t block);
int pt_prog_direct(struct petrel_fs *fs, uint32_t block, uint32_t off, const void *buf,
                   uint32_t size);
int pt_verify(struct petrel_fs *fs, uint32_t block, uint32_t off, uint32_t size,
              uint32_t expect_crc);
void pt_cache_drop(struct petrel_fs *fs, uint32_t block);
struct pt_mdir;
void pt_links_remember(struct petrel_fs *fs, const struct pt_mdir *md);
const struct petrel_fs_link *pt_links_find(struct petrel_fs *fs, const uint32_t pair[2]);
void pt_links_forget(struct petrel_fs *fs, const uint32_t pair[2]);
void pt_links_clear(struct petrel_fs *fs);
int pt_sync(struct petrel_fs *fs);

/* A program stream: appends bytes into a block through the program cache, keeps the CRC. */
struct pt_writer {
    uint32_t block;
    uint32_t start;  /* first offset written (for verification) */
    uint32_t off;    /* next offset */
    uint32_t crc;    /* CRC since the commit start */
    uint32_t vcrc;   /* CRC of everything written since start */
    int dry;         /* count only (PT_WRITER_MEASURE: and past the block end) */
};
#define PT_WRITER_MEASURE 2
void pt_writer_init(struct petrel_fs *fs, struct pt_writer *w, uint32_t block, uint32_t off,
                    int dry);
int pt_writer_put(struct petrel_fs *fs, struct pt_writer *w, const void *buf, uint32_t size);
int pt_writer_copy(struct petrel_fs *fs, struct pt_writer *w, uint32_t block, uint32_t off,
                   uint32_t size);
int pt_writer_flush(struct petrel_fs *fs, struct pt_writer *w);

/* ---- alloc.c ---- */
void pt_alloc_init(struct petrel_fs *fs);
int pt_alloc(struct petrel_fs *fs, uint32_t *block);
int pt_alloc_erased(struct petrel_fs *fs, uint32_t *block);
void pt_alloc_ack(struct petrel_fs *fs);
void pt_alloc_drop_window(struct petrel_fs *fs);

/* ---- mdir.c ---- */
int pt_mdir_fetch(struct petrel_fs *fs, struct pt_mdir *md, const uint32_t pair[2],
                  const uint64_t *find_hash);
int pt_mdir_refetch(struct petrel_fs *fs, struct pt_mdir *md, const uint64_t *find_hash);
/* A fetch that also reports every ENTRY and DELETE record it parses, in log order: block,
 * type, payload offset and length, name hash. Records of a commit that then fails its CRC are
 * reported too (the caller keeps only those inside the log the fetch returns, md->off); a
 * remembered pair is recalled without reports. */
struct pt_fetch_visit {
    void (*fn)(void *ctx, uint32_t block, uint8_t type, uint32_t off, uint32_t len,
               uint64_t hash);
    void *ctx;
};
int pt_mdir_fetch_visit(struct petrel_fs *fs, struct pt_mdir *md, const uint32_t pair[2],
                        const struct pt_fetch_visit *visit);
int pt_rec_next(struct petrel_fs *fs, const struct pt_mdir *md, uint32_t *pos,
                struct pt_rec_ref *rec);
int pt_rec_hash(struct petrel_fs *fs, const struct pt_mdir *md, const struct pt_rec_ref *rec,
                uint64_t *hash, uint8_t *atype);
int pt_rec_live(struct petrel_fs *fs, const struct pt_mdir *md, const struct pt_rec_ref *rec,
                uint32_t after, const struct pt_rec *recs, int n, int *live);
/* Which records of a log later records of the same log supersede, for its first
 * PT_LIVE_MAP_RECS records (later ones are decided by pt_rec_live). Built in O(records)
 * reads, so a compaction or a directory read does not rescan the log once per record. */
#define PT_LIVE_MAP_RECS 512u
struct pt_live_map {
    uint32_t nrecs;                         /* records (CRC records excluded) mapped */
    uint8_t dead[PT_LIVE_MAP_RECS / 8];     /* bit i: record i is superseded or a tombstone */
};
int pt_live_map_build(struct petrel_fs *fs, const struct pt_mdir *md, struct pt_live_map *map);
int pt_live_map_live(struct petrel_fs *fs, const struct pt_mdir *md,
                     const struct pt_live_map *map, uint32_t idx,
                     const struct pt_rec_ref *rec, uint32_t after, int *live);
int pt_mdir_has_entries(struct petrel_fs *fs, const struct pt_mdir *md);
/* Commit recs and, when delta is not NULL, a GDELTA record of delta (after them). */
int pt_mdir_commit(struct petrel_fs *fs, struct pt_mdir *md, const struct pt_rec *recs, int n,
                   const struct petrel_fs_gstate *delta, uint32_t old_pair[2],
                   struct pt_split_note *split);
int pt_mdir_create(struct petrel_fs *fs, struct pt_mdir *md, const struct pt_rec *recs, int n);
int pt_block_invalidate(struct petrel_fs *fs, uint32_t block);
uint32_t pt_fcrc_size(const struct petrel_fs *fs);
int pt_entry_decode(struct petrel_fs *fs, uint32_t block, const struct pt_rec_ref *rec,
                    struct pt_entry *e);
int pt_pair_eq(const uint32_t a[2], const uint32_t b[2]);
void pt_gstate_xor(struct petrel_fs_gstate *a, const struct petrel_fs_gstate *b);
void pt_gstate_encode(uint8_t *p, const struct petrel_fs_gstate *g);
void pt_gstate_decode(struct petrel_fs_gstate *g, const uint8_t *p);
int pt_gstate_zero(const struct petrel_fs_gstate *g);

/* ---- commit.c ---- */
int pt_fs_commit(struct petrel_fs *fs, struct pt_mdir *md, const struct pt_rec *recs, int n);
int pt_thread_pred(struct petrel_fs *fs, const uint32_t pair[2], struct pt_mdir *pred,
                   uint32_t dhead[2]);
void pt_handles_relocate(struct petrel_fs *fs, const uint32_t old[2], const uint32_t nw[2]);
int pt_drop_if_empty(struct petrel_fs *fs, const struct pt_mdir *md);
extern struct petrel_fs_gstate pt_gpending_dummy;

/* ---- gstate.c ---- */
int pt_fs_repair(struct petrel_fs *fs, int finish_move);
int pt_unlink_dir(struct petrel_fs *fs, const uint32_t head[2]);

/* ---- mstate.c ---- */
struct pt_mstate {
    uint8_t clean;       /* also: the global state is zero */
    uint32_t next_dirid; /* above every directory id in use */
    uint32_t seed;       /* where the next session's allocator starts */
};
void pt_mstate_encode(uint8_t *p, const struct pt_mstate *m);
int pt_mstate_decode(struct pt_mstate *m, const uint8_t *p, uint32_t len);
int pt_mstate_read(struct petrel_fs *fs, const struct pt_mdir *md, struct pt_mstate *m);
/* Before anything a public call may commit (and before its lookups): make the record dirty,
 * durably, once per session. */
int pt_mstate_mark_dirty(struct petrel_fs *fs);
/* At unmount: the session's totals, marked clean (a session that changed nothing writes
 * nothing), with the fingers of the last directory walked. */
int pt_mstate_mark_clean(struct petrel_fs *fs);
/* The FINGERS record in force in the root pair md: 1 (its directory head, the offset of its
 * first entry, the count), 0 none, -PT_ECORRUPT malformed. */
int pt_fingers_locate(struct petrel_fs *fs, const struct pt_mdir *md, uint32_t head[2],
                      uint32_t *off, uint32_t *n);
/* At a mount from a clean record: note the FINGERS record of the root pair md. */
int pt_fingers_load(struct petrel_fs *fs, const struct pt_mdir *md);
/* The payload of a FINGERS record given with no segment (struct pt_rec): len bytes built
 * from the remembered links, which stay put while fs->links_pinned; -PT_ECORRUPT if they
 * no longer give len bytes. */
int pt_fingers_emit(struct petrel_fs *fs, struct pt_writer *w, uint32_t len);
/* The saved finger of directory head with the highest lo <= hash, if usable and above
 * *lo: returns 1 and sets pair and *lo, else 0 (or an error). */
int pt_fingers_find(struct petrel_fs *fs, const uint32_t head[2], uint64_t hash,
                    uint32_t pair[2], uint64_t *lo);

/* ---- index.c ---- */
uint32_t pt_index_cap(const struct petrel_fs *fs);
uint32_t pt_index_lo_hi(uint64_t lo, int *ok);
/* The entry of head's INDEX with the highest lo_hi * 2^32 <= hash: 1 (pair, lo_hi), 0 none. */
int pt_index_find(struct petrel_fs *fs, uint32_t block, uint32_t off, uint32_t len,
                  uint64_t hash, uint32_t pair[2], uint32_t *lo_hi);
/* Whether head md's INDEX names pair: 1 yes, 0 no. */
int pt_index_names(struct petrel_fs *fs, const struct pt_mdir *head, const uint32_t pair[2]);
/* The INDEX record for head md without pair `remove` (when named) and with `add` at lowest
 * hash add_lo (when add is not NULL; in remove's place when both): 1 (r, e filled), 0 no
 * change. A full index makes room by dropping the entry whose neighbours are nearest. */
int pt_index_rec(struct petrel_fs *fs, const struct pt_mdir *head, const uint32_t remove[2],
                 const uint32_t add[2], uint64_t add_lo, struct pt_rec *r, uint8_t *e);
/* Commit that change to the directory's head pair; head is updated if it moved. */
int pt_index_change(struct petrel_fs *fs, uint32_t head[2], const uint32_t remove[2],
                    const uint32_t add[2], uint64_t add_lo);

/* ---- dir.c ---- */
struct pt_lookup {
    struct pt_mdir md;      /* pair that holds (or would hold) the last component */
    uint32_t parent[2];     /* head of the directory holding the last component */
    uint32_t parent_dirid;
    const char *name;       /* last component */
    uint32_t name_len;
    uint64_t hash;
    int exists;             /* entry found */
    struct pt_entry e;      /* the entry when exists */
    int is_root;            /* the path is the root itself */
    int saw_dirid;          /* lookup passed through a directory with watch_dirid */
};
int pt_lookup(struct petrel_fs *fs, const char *path, struct pt_lookup *lk,
              int64_t watch_dirid);
int pt_dir_find_pair(struct petrel_fs *fs, const uint32_t head[2], uint64_t hash,
                     struct pt_mdir *md);
int pt_entry_name_eq(struct petrel_fs *fs, const struct pt_entry *e, const char *name,
                     uint32_t len);
int pt_fs_writable(struct petrel_fs *fs);
int pt_dir_head(struct petrel_fs *fs, const struct pt_entry *e, uint32_t head[2]);

/* ---- ctree.c ---- */
uint32_t pt_page_payload(const struct petrel_fs *fs);
uint32_t pt_pages_per_block(const struct petrel_fs *fs);
uint32_t pt_tree_fanout(const struct petrel_fs *fs);
uint32_t pt_page_crc(uint32_t block, uint32_t slot, const uint8_t *payload, uint32_t len);
int pt_page_read(struct petrel_fs *fs, uint32_t block, uint32_t slot, const uint8_t **payload);
int pt_page_prog(struct petrel_fs *fs, uint32_t block, uint32_t slot, uint8_t *page);
int pt_tree_lookup(struct petrel_fs *fs, uint32_t root, uint8_t depth, const uint32_t *direct,
                   uint32_t index, uint32_t *block);
int pt_tree_lookup_run(struct petrel_fs *fs, uint32_t root, uint8_t depth,
                       const uint32_t *direct, uint32_t index, uint32_t *blocks, uint32_t max,
                       uint8_t *n);
int pt_tree_apply(struct petrel_fs *fs, uint32_t *root, uint8_t *depth,
                  struct petrel_fs_file *f);
int pt_tree_walk(struct petrel_fs *fs, uint32_t root, uint8_t depth, const uint32_t *direct,
                 uint64_t size,
                 int (*cb)(void *ctx, uint32_t block, int is_data), void *ctx);

/* ---- file.c ---- */
uint32_t pt_reg_struct(uint8_t *p, uint64_t size, uint32_t root, uint8_t depth,
                       const uint32_t *direct, uint16_t tail_len);
int pt_file_inflight(struct petrel_fs *fs, int (*cb)(void *ctx, uint32_t block, int is_data),
                     void *ctx);

/* ---- check.c ---- */
int pt_traverse(struct petrel_fs *fs, int include_inflight,
                int (*cb)(void *ctx, uint32_t block, int is_data), void *ctx);

/* ---- wear.c (static wear leveling; PT_WEAR when built) ---- */
#if !defined(PETREL_FS_NO_WEAR) && !defined(PETREL_FS_READONLY)
#define PT_WEAR 1
/* Count an erase of block (called by pt_erase for every erase it attempts). */
static inline void pt_wear_count(struct petrel_fs *fs, uint32_t block)
{
    if (!fs->wear || block >= fs->block_count) return;
    fs->wear[block]++;
    fs->wear_unsaved++;
    if (!fs->wear_busy) fs->wear_credit++; /* a move's own erases earn no moves */
}
/* alloc.c: the most erased free block of the allocator's window (made anew when fresh). */
int pt_alloc_worn(struct petrel_fs *fs, uint32_t *block, int fresh);
/* At mount, with the root pair fetched: set up the counts (from its WEAR record). */
int pt_wear_mount(struct petrel_fs *fs, const struct pt_mdir *root);
void pt_wear_free(struct petrel_fs *fs);
/* Between operations: move cold data when the spread and the budget allow. Errors are the
 * device's (-PT_EIO ...); nothing committed is lost on any of them. */
int pt_wear_level(struct petrel_fs *fs);
/* Commit the WEAR record to the root pair when counts changed since it was written. */
int pt_wear_save(struct petrel_fs *fs);
#else
#define pt_wear_count(fs, block) ((void)(fs), (void)(block))
#endif

#endif
