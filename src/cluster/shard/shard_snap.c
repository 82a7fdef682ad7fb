/*
 * Shard snapshots streamed through a caller's buffer (see shard_sm.h and docs/SPEC-SHARD.md,
 * "Shard snapshot"). Owns the snapshot byte format and nothing else.
 *
 * Memory never grows with the store: taking walks the tables in one LMDB read transaction and
 * hands the image to a sink one buffer at a time; restoring reads the image from a positional
 * source twice (first the CRC over every byte, then the records), writes each value straight
 * into LMDB's reserved space (MDB_RESERVE, so a value of any size needs no copy of its own) and
 * commits every PT_SHARD_RESTORE_BATCH bytes, so LMDB's dirty pages stay bounded too. Pages
 * of LMDB's map that a walk touched are unmapped from the process every PT_SHARD_SNAP_TRIM
 * bytes of image and at every restore commit (pt_shard_sm_trim): they are page cache, not the
 * process's memory, and should not stay counted in its resident set.
 *
 * Invariants: a restore applies nothing unless the whole image's magic, version, CRC and
 * record structure were checked first; the image bytes are the same whichever way they are
 * produced (a sink into one buffer or a file), so old snapshots (versions 1-5) still restore.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "cluster/shard/shard_sm.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define SNAP_MAGIC 0x53535450u
#define SNAP_VERSION                                                                               \
    5 /* 2: dropped; 3: policy and repairq; 4: POSIX inode records;                                \
         5: blockrefs and changes */
#define SNAP_TABLES 12

static void snap_tables(struct pt_shard_sm *sm, MDB_dbi *t[SNAP_TABLES])
{
    MDB_dbi *all[SNAP_TABLES] = {&sm->inodes, &sm->dirents, &sm->spans,     &sm->blockidx,
                                 &sm->meta,   &sm->txns,    &sm->transient, &sm->dropped,
                                 &sm->policy, &sm->repairq, &sm->blockrefs, &sm->changes};
    memcpy(t, all, sizeof(all));
}

/* ---- taking ---------------------------------------------------------------------------- */

struct snap_out {
    pt_shard_snap_write_fn write;
    void *ctx;
    uint8_t *buf;
    size_t cap, used;
    uint64_t total;
    uint32_t crc;
    int rc;
};

static void out_flush(struct snap_out *o)
{
    if (o->rc == 0 && o->used) o->rc = o->write(o->ctx, o->buf, o->used);
    o->used = 0;
}

static void out_bytes(struct snap_out *o, const void *p, size_t n)
{
    const uint8_t *b = p;
    o->crc = petrel_crc32c(o->crc, b, n);
    o->total += n;
    while (n && o->rc == 0) {
        size_t take = o->cap - o->used < n ? o->cap - o->used : n;
        memcpy(o->buf + o->used, b, take);
        o->used += take;
        b += take;
        n -= take;
        if (o->used == o->cap) out_flush(o);
    }
}

static void out_u32(struct snap_out *o, uint32_t v)
{
    uint8_t b[4];
    pt_put_le32(b, v);
    out_bytes(o, b, 4);
}

static void out_u64(struct snap_out *o, uint64_t v)
{
    uint8_t b[8];
    pt_put_le64(b, v);
    out_bytes(o, b, 8);
}

int pt_shard_sm_snapshot_stream(struct pt_shard_sm *sm, pt_shard_snap_write_fn write, void *ctx,
                                uint8_t *buf, size_t cap, uint64_t *total)
{
    MDB_dbi *tables[SNAP_TABLES];
    struct snap_out o;
    MDB_txn *t;
    uint64_t trim_at = PT_SHARD_SNAP_TRIM;
    size_t i;
    int rc;
    if (cap < 16) return -PT_EINVAL;
    snap_tables(sm, tables);
    memset(&o, 0, sizeof(o));
    o.write = write;
    o.ctx = ctx;
    o.buf = buf;
    o.cap = cap;
    if ((rc = mdb_txn_begin(sm->env, NULL, MDB_RDONLY, &t)) != 0) return pt_shard_sm_mdb_error(rc);
    out_u32(&o, SNAP_MAGIC);
    out_u32(&o, SNAP_VERSION);
    for (i = 0; i < SNAP_TABLES && o.rc == 0; i++) {
        MDB_stat st;
        MDB_cursor *cur;
        MDB_val k, v;
        /* The count leads the records: the read transaction's own statistics give it. */
        if ((rc = mdb_stat(t, *tables[i], &st)) != 0) break;
        out_u64(&o, st.ms_entries);
        if ((rc = mdb_cursor_open(t, *tables[i], &cur)) != 0) break;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && o.rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (o.total >= trim_at) {
                /* The walk maps the store page by page: give back what it passed. */
                pt_shard_sm_trim(sm);
                trim_at = o.total + PT_SHARD_SNAP_TRIM;
            }
            out_u32(&o, (uint32_t)k.mv_size);
            out_bytes(&o, k.mv_data, k.mv_size);
            out_u32(&o, (uint32_t)v.mv_size);
            out_bytes(&o, v.mv_data, v.mv_size);
        }
        mdb_cursor_close(cur);
        if (rc != MDB_NOTFOUND && rc != 0) break;
        rc = 0;
    }
    mdb_txn_abort(t);
    if (rc) return pt_shard_sm_mdb_error(rc);
    {
        uint32_t crc = o.crc;
        out_u32(&o, crc);
    }
    out_flush(&o);
    if (o.rc) return o.rc;
    if (total) *total = o.total;
    return 0;
}

/* A sink into one buffer of exactly the image's size (pt_shard_sm_snapshot). */
struct snap_mem {
    uint8_t *buf;
    size_t cap, len;
};

static int mem_write(void *ctx, const uint8_t *p, size_t n)
{
    struct snap_mem *m = ctx;
    if (n > m->cap - m->len) return -PT_EOVERFLOW;
    memcpy(m->buf + m->len, p, n);
    m->len += n;
    return 0;
}

static int size_write(void *ctx, const uint8_t *p, size_t n)
{
    (void)p;
    *(uint64_t *)ctx += n;
    return 0;
}

int pt_shard_sm_snapshot(struct pt_shard_sm *sm, uint8_t **out, size_t *out_len)
{
    uint8_t chunk[4096];
    uint64_t size = 0, total;
    struct snap_mem m;
    int rc;
    if ((rc = pt_shard_sm_snapshot_stream(sm, size_write, &size, chunk, sizeof(chunk), NULL)) != 0)
        return rc;
    if (size > SIZE_MAX) return -PT_ENOMEM;
    m.buf = malloc((size_t)size);
    if (!m.buf) return -PT_ENOMEM;
    m.cap = (size_t)size;
    m.len = 0;
    /* Nothing applies between the two passes (the caller is the only writer, on one thread),
     * so the second image has the same size; a sink overflow says otherwise. */
    rc = pt_shard_sm_snapshot_stream(sm, mem_write, &m, chunk, sizeof(chunk), &total);
    if (rc == 0 && total != m.len) rc = -PT_EIO;
    if (rc) {
        free(m.buf);
        return rc;
    }
    *out = m.buf;
    *out_len = m.len;
    return 0;
}

/* ---- restoring ------------------------------------------------------------------------- */

struct snap_in {
    pt_shard_snap_read_fn read;
    void *ctx;
    uint8_t *buf;
    size_t cap, pos, fill;
    uint64_t off; /* source offset of buf[0] */
    uint64_t end; /* bytes of records: the image's length minus the CRC */
    uint32_t crc; /* of the bytes consumed, when `crc_on` */
    int crc_on;
    int rc;
};

static void in_rewind(struct snap_in *in)
{
    in->pos = in->fill = 0;
    in->off = 0;
    in->crc = 0;
    in->rc = 0;
}

/* Copy n bytes of the image to dst (NULL: skip them). Past `end` is corrupt. */
static void in_bytes(struct snap_in *in, void *dst, uint64_t n)
{
    uint8_t *d = dst;
    if (in->rc) return;
    if (n > in->end - (in->off + in->pos)) {
        in->rc = -PT_ECORRUPT;
        return;
    }
    while (n) {
        size_t take;
        if (in->pos == in->fill) {
            uint64_t at = in->off + in->fill;
            uint64_t want = in->end - at < in->cap ? in->end - at : in->cap;
            int64_t got = in->read(in->ctx, at, in->buf, (size_t)want);
            if (got < 0) {
                in->rc = (int)got;
                return;
            }
            if ((uint64_t)got != want) {
                in->rc = -PT_ECORRUPT; /* shorter than the length the caller stated */
                return;
            }
            in->off = at;
            in->pos = 0;
            in->fill = (size_t)want;
        }
        take = in->fill - in->pos < n ? in->fill - in->pos : (size_t)n;
        if (in->crc_on) in->crc = petrel_crc32c(in->crc, in->buf + in->pos, take);
        if (d) {
            memcpy(d, in->buf + in->pos, take);
            d += take;
        }
        in->pos += take;
        n -= take;
    }
}

static uint32_t in_u32(struct snap_in *in)
{
    uint8_t b[4] = {0};
    in_bytes(in, b, 4);
    return pt_get_le32(b);
}

static uint64_t in_u64(struct snap_in *in)
{
    uint8_t b[8] = {0};
    in_bytes(in, b, 8);
    return pt_get_le64(b);
}

/* Tables an image of `version` holds (1 had no dropped table, 2 no policy and repairq, 3-4 no
 * blockrefs and changes); 0 for a version this code does not know. */
static size_t snap_version_tables(uint32_t version)
{
    if (version < 1 || version > SNAP_VERSION) return 0;
    return version == 1 ? 7 : version == 2 ? 8 : version <= 4 ? 10 : 12;
}

/* Pass 1: the CRC over every byte and the record structure, without touching the store. */
static int restore_check(struct snap_in *in, size_t *n_tables)
{
    uint8_t tail[4];
    uint32_t version;
    size_t i;
    int64_t got;
    in->crc_on = 1;
    if (in_u32(in) != SNAP_MAGIC) return in->rc ? in->rc : -PT_ECORRUPT;
    version = in_u32(in);
    *n_tables = snap_version_tables(version);
    if (in->rc) return in->rc;
    if (*n_tables == 0) return -PT_ECORRUPT;
    for (i = 0; i < *n_tables && in->rc == 0; i++) {
        uint64_t count = in_u64(in), j;
        for (j = 0; j < count && in->rc == 0; j++) {
            uint32_t klen = in_u32(in);
            if (in->rc == 0 && (klen == 0 || klen > PT_SHARD_SNAP_KEY_MAX)) in->rc = -PT_ECORRUPT;
            in_bytes(in, NULL, klen);
            in_bytes(in, NULL, in_u32(in));
        }
    }
    if (in->rc) return in->rc;
    if (in->off + in->pos != in->end) return -PT_ECORRUPT; /* bytes after the last table */
    got = in->read(in->ctx, in->end, tail, 4);
    if (got < 0) return (int)got;
    if (got != 4 || pt_get_le32(tail) != in->crc) return -PT_ECORRUPT;
    return 0;
}

int pt_shard_sm_restore_stream(struct pt_shard_sm *sm, pt_shard_snap_read_fn read, void *ctx,
                               uint64_t len, uint8_t *buf, size_t cap)
{
    MDB_dbi *tables[SNAP_TABLES];
    struct snap_in in;
    MDB_txn *t = NULL;
    uint64_t batch = 0;
    size_t i, n_tables;
    int rc;
    if (cap < 16) return -PT_EINVAL;
    if (len < 12) return -PT_ECORRUPT;
    snap_tables(sm, tables);
    memset(&in, 0, sizeof(in));
    in.read = read;
    in.ctx = ctx;
    in.buf = buf;
    in.cap = cap;
    in.end = len - 4;
    if ((rc = restore_check(&in, &n_tables)) != 0) return rc;

    /* Pass 2: the image is whole; replace the tables, committing in bounded batches. */
    in_rewind(&in);
    in.crc_on = 0;
    in_u32(&in);
    in_u32(&in);
    if ((rc = mdb_txn_begin(sm->env, NULL, 0, &t)) != 0) return pt_shard_sm_mdb_error(rc);
    for (i = 0; i < SNAP_TABLES; i++)
        if ((rc = mdb_drop(t, *tables[i], 0)) != 0) goto fail;
    for (i = 0; i < n_tables; i++) {
        uint64_t count = in_u64(&in), j;
        for (j = 0; j < count && in.rc == 0; j++) {
            uint8_t key[PT_SHARD_SNAP_KEY_MAX];
            MDB_val k, v;
            k.mv_size = in_u32(&in);
            if (in.rc == 0 && (k.mv_size == 0 || k.mv_size > sizeof(key))) in.rc = -PT_ECORRUPT;
            in_bytes(&in, key, k.mv_size);
            k.mv_data = key;
            v.mv_size = in_u32(&in);
            v.mv_data = NULL;
            if (in.rc) break;
            if ((rc = mdb_put(t, *tables[i], &k, &v, MDB_RESERVE)) != 0) goto fail;
            in_bytes(&in, v.mv_data, v.mv_size);
            batch += 8 + k.mv_size + v.mv_size;
            if (batch >= PT_SHARD_RESTORE_BATCH) {
                if ((rc = mdb_txn_commit(t)) != 0) {
                    t = NULL;
                    goto fail;
                }
                t = NULL;
                batch = 0;
                pt_shard_sm_trim(sm);
                if ((rc = mdb_txn_begin(sm->env, NULL, 0, &t)) != 0) goto fail;
            }
        }
        if (in.rc) break;
    }
    if (in.rc) {
        /* The source changed under us after pass 1 checked it. */
        mdb_txn_abort(t);
        return in.rc;
    }
    /* Directory link counts from the entries (images from before the count hold 0). */
    if ((rc = pt_shard_sm_recount_subdirs(sm, t)) != 0) {
        mdb_txn_abort(t);
        return rc;
    }
    sm->root_stamped = 0; /* the snapshot's root may predate its time */
    return pt_shard_sm_mdb_error(mdb_txn_commit(t));
fail:
    if (t) mdb_txn_abort(t);
    return pt_shard_sm_mdb_error(rc);
}

/* A source over one buffer (pt_shard_sm_restore). */
struct snap_src {
    const uint8_t *buf;
    size_t len;
};

static int64_t mem_read(void *ctx, uint64_t off, uint8_t *dst, size_t n)
{
    struct snap_src *s = ctx;
    if (off >= s->len) return 0;
    if (n > s->len - off) n = s->len - (size_t)off;
    memcpy(dst, s->buf + off, n);
    return (int64_t)n;
}

int pt_shard_sm_restore(struct pt_shard_sm *sm, const uint8_t *buf, size_t len)
{
    uint8_t chunk[4096];
    struct snap_src src = {buf, len};
    return pt_shard_sm_restore_stream(sm, mem_read, &src, len, chunk, sizeof(chunk));
}

/* ---- resident memory ------------------------------------------------------------------- */

void pt_shard_sm_trim(struct pt_shard_sm *sm)
{
    /* The map is read-only and shared (the store writes with pwrite, not through the map):
     * dropping this process's page table entries loses nothing, a later read faults the page
     * back in from the page cache. LMDB does not say where its map is (me_mapaddr is set only
     * with MDB_FIXEDMAP): it is the mapping of the data file's inode in /proc/self/maps. */
    char line[512];
    struct stat st;
    mdb_filehandle_t fd;
    FILE *maps;
    if (mdb_env_get_fd(sm->env, &fd) != 0 || fstat(fd, &st) != 0) return;
    if (!(maps = fopen("/proc/self/maps", "r"))) return;
    while (fgets(line, sizeof(line), maps)) {
        unsigned long start, end, offset, inode;
        unsigned dev_major, dev_minor;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &start, &end, perms, &offset, &dev_major,
                   &dev_minor, &inode) != 7)
            continue;
        if (inode != (unsigned long)st.st_ino || dev_major != major(st.st_dev) ||
            dev_minor != minor(st.st_dev) || perms[1] == 'w')
            continue;
        (void)madvise((void *)start, end - start, MADV_DONTNEED);
    }
    fclose(maps);
}
