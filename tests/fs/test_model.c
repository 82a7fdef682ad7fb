/*
 * Model-based random test: random sequences of operations (create, write, seek, truncate,
 * sync, close, rename, mkdir, remove, setattr, removeattr, remount) on an emulated NOR
 * device, each checked against an in-memory model of the durable state; random power cuts
 * (atomic and torn) after which the filesystem must show exactly the model before or after
 * the interrupted call (a remount too: unmount writes the clean mount-state record); random
 * bit flips in file data pages after which a read returns the right bytes or -PT_ECORRUPT,
 * never wrong bytes. Everything derives from test_seed().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_harness.h"
#include "petrel/common.h"
#include "petrel/prng.h"
#include "test.h"

#define M_ENTRIES 48
#define M_PATH 64
#define M_DATA_MAX 6000
#define M_TOTAL_MAX 40000
#define M_ATTRS 3
#define M_ATTR_MAX 48

struct m_entry {
    char path[M_PATH];
    int used, type;
    size_t size;
    uint8_t data[M_DATA_MAX];
    int attr_len[M_ATTRS]; /* -1 = absent */
    uint8_t attr[M_ATTRS][M_ATTR_MAX];
};

struct model {
    struct m_entry e[M_ENTRIES];
};

struct m_run {
    struct fsh_dev d;
    struct pt_prng g;
    struct model *now, *before, *after;
    uint64_t ops, cuts, flips, flips_caught, remounts;
    uint64_t ok_calls, err_calls, bytes_written, syncs;
    uint32_t inline_max, page_size;
    size_t total_max;  /* bytes of file data the model keeps: far from full, never ENOSPC */
    int attr_types;    /* attribute types used: 3, or 1 on tiny blocks */
    uint32_t attr_len; /* longest attribute value used */
};

static void model_copy(struct model *dst, const struct model *src)
{
    size_t i;
    for (i = 0; i < M_ENTRIES; i++) {
        const struct m_entry *s = &src->e[i];
        struct m_entry *t = &dst->e[i];
        t->used = s->used;
        if (!s->used) continue;
        memcpy(t->path, s->path, sizeof(t->path));
        t->type = s->type;
        t->size = s->size;
        memcpy(t->data, s->data, s->size);
        memcpy(t->attr_len, s->attr_len, sizeof(t->attr_len));
        memcpy(t->attr, s->attr, sizeof(t->attr));
    }
}

static struct m_entry *model_find(struct model *m, const char *path)
{
    size_t i;
    for (i = 0; i < M_ENTRIES; i++)
        if (m->e[i].used && strcmp(m->e[i].path, path) == 0) return &m->e[i];
    return NULL;
}

static struct m_entry *model_add(struct model *m, const char *path, int type)
{
    size_t i;
    for (i = 0; i < M_ENTRIES; i++) {
        struct m_entry *e = &m->e[i];
        if (e->used) continue;
        memset(e->path, 0, sizeof(e->path));
        snprintf(e->path, sizeof(e->path), "%s", path);
        e->used = 1;
        e->type = type;
        e->size = 0;
        e->attr_len[0] = e->attr_len[1] = e->attr_len[2] = -1;
        return e;
    }
    return NULL;
}

static size_t model_total(const struct model *m)
{
    size_t i, t = 0;
    for (i = 0; i < M_ENTRIES; i++)
        if (m->e[i].used) t += m->e[i].size;
    return t;
}

static int model_count(const struct model *m)
{
    int i, n = 0;
    for (i = 0; i < M_ENTRIES; i++)
        n += m->e[i].used;
    return n;
}

/* Parent path of p into out ("" for the root). */
static void parent_of(const char *p, char *out)
{
    const char *slash = strrchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : 0;
    memcpy(out, p, n);
    out[n] = 0;
}

/* 0 if the parent exists as a directory, else the error the engine must give. */
static int model_parent_ok(struct model *m, const char *p)
{
    char parent[M_PATH];
    struct m_entry *e;
    parent_of(p, parent);
    if (!parent[0]) return 0;
    e = model_find(m, parent);
    if (!e) {
        /* Missing parent: ENOENT, or ENOTDIR if some ancestor is a file. */
        char anc[M_PATH];
        strcpy(anc, parent);
        while (anc[0]) {
            struct m_entry *a;
            parent_of(anc, anc);
            if (!anc[0]) break;
            a = model_find(m, anc);
            if (a) return a->type == PETREL_FS_REG ? -PT_ENOTDIR : -PT_ENOENT;
        }
        return -PT_ENOENT;
    }
    return e->type == PETREL_FS_DIR ? 0 : -PT_ENOTDIR;
}

static int model_children(struct model *m, const char *dir)
{
    size_t i, n = strlen(dir);
    int c = 0;
    for (i = 0; i < M_ENTRIES; i++) {
        const char *p = m->e[i].path;
        if (!m->e[i].used) continue;
        if (n == 0) {
            c += strchr(p, '/') == NULL;
        } else if (strncmp(p, dir, n) == 0 && p[n] == '/' && !strchr(p + n + 1, '/')) {
            c++;
        }
    }
    return c;
}

/* --- comparing the filesystem with a model ------------------------------------------- */

static int fs_matches(struct m_run *r, struct model *m, char *why, size_t whylen)
{
    struct petrel_fs *fs = &r->d.fs;
    static uint8_t buf[M_DATA_MAX + 1];
    size_t i;
    for (i = 0; i < M_ENTRIES; i++) {
        struct m_entry *e = &m->e[i];
        struct petrel_fs_info info;
        int err, t;
        if (!e->used) continue;
        err = petrel_fs_stat(fs, e->path, &info);
        if (err) {
            snprintf(why, whylen, "stat %s: %s", e->path, petrel_errname(err));
            return 0;
        }
        if (info.type != e->type || (e->type == PETREL_FS_REG && info.size != e->size)) {
            snprintf(why, whylen, "%s: type %d size %llu, model type %d size %zu", e->path,
                     info.type, (unsigned long long)info.size, e->type, e->size);
            return 0;
        }
        if (e->type == PETREL_FS_REG) {
            int64_t n = fsh_read_file(fs, e->path, buf, sizeof(buf));
            if (n != (int64_t)e->size || memcmp(buf, e->data, e->size) != 0) {
                snprintf(why, whylen, "%s: contents differ (read %lld)", e->path, (long long)n);
                return 0;
            }
        } else {
            struct petrel_fs_dir dir;
            struct petrel_fs_info di;
            int cnt = 0, rr;
            CHECK_OK(petrel_fs_dir_open(fs, &dir, e->path));
            while ((rr = petrel_fs_dir_read(fs, &dir, &di)) > 0) {
                char child[2 * M_PATH + 300];
                cnt++;
                snprintf(child, sizeof(child), "%s/%s", e->path, di.name);
                if (!model_find(m, child)) test_log("%s: unexpected entry %s", e->path, di.name);
            }
            CHECK_OK(petrel_fs_dir_close(fs, &dir));
            if (rr < 0 || cnt != model_children(m, e->path)) {
                snprintf(why, whylen, "%s: %d entries, model %d", e->path, cnt,
                         model_children(m, e->path));
                return 0;
            }
        }
        for (t = 0; t < M_ATTRS; t++) {
            uint8_t a[M_ATTR_MAX];
            int64_t n = petrel_fs_getattr(fs, e->path, (uint8_t)(t + 1), a, sizeof(a));
            if (e->attr_len[t] < 0 ? n != -PT_ENODATA
                                   : n != e->attr_len[t] || memcmp(a, e->attr[t], (size_t)n)) {
                snprintf(why, whylen, "%s: attribute %d differs (%lld)", e->path, t + 1,
                         (long long)n);
                return 0;
            }
        }
    }
    {
        struct petrel_fs_dir dir;
        struct petrel_fs_info di;
        int cnt = 0, rr;
        CHECK_OK(petrel_fs_dir_open(fs, &dir, "/"));
        while ((rr = petrel_fs_dir_read(fs, &dir, &di)) > 0) {
            cnt++;
            if (!model_find(m, di.name)) {
                snprintf(why, whylen, "unexpected /%.40s", di.name);
                CHECK_OK(petrel_fs_dir_close(fs, &dir));
                return 0;
            }
        }
        CHECK_OK(petrel_fs_dir_close(fs, &dir));
        if (rr < 0 || cnt != model_children(m, "")) {
            snprintf(why, whylen, "root: %d entries, model %d", cnt, model_children(m, ""));
            return 0;
        }
    }
    return 1;
}

/* --- the random operations ------------------------------------------------------------- */

static const char *const pool[] = {"f0",    "f1",    "f2",    "d0",       "d1",    "d0/f0",
                                   "d0/f1", "d1/f0", "d0/d2", "d0/d2/f0", "d1/d3", "d1/d3/f1"};

static const char *pick_path(struct m_run *r)
{
    /* Half the time an existing entry (renames move entries off the pool). */
    if (pt_prng_below(&r->g, 2)) {
        int n = model_count(r->now), k, i;
        if (n > 0) {
            k = (int)pt_prng_below(&r->g, (uint64_t)n);
            for (i = 0; i < M_ENTRIES; i++)
                if (r->now->e[i].used && k-- == 0) return r->now->e[i].path;
        }
    }
    return pool[pt_prng_below(&r->g, PT_ARRAY_SIZE(pool))];
}

/* A call that failed with the power gone: returns 1 (the caller stops the op). */
static int cut(struct m_run *r)
{
    return petrel_bd_emu_is_dead(&r->d.emu);
}

/* What the running call is, for failure messages. */
static char m_desc[200];

/* On a failure: the model's entries, to read the failure message against. */
static void model_dump(const struct model *m)
{
    size_t i;
    for (i = 0; i < M_ENTRIES; i++) {
        const struct m_entry *e = &m->e[i];
        if (!e->used) continue;
        test_log("model: %s %s size %zu attrs %d/%d/%d", e->type == PETREL_FS_DIR ? "dir " : "file",
                 e->path, e->size, e->attr_len[0], e->attr_len[1], e->attr_len[2]);
    }
}

#define M_CALL(expr, want)                                                                         \
    do {                                                                                           \
        long long m_r_ = (long long)(expr);                                                        \
        if (cut(r)) return 1;                                                                      \
        if (m_r_ != (want)) model_dump(r->before);                                                 \
        CHECK_MSG(m_r_ == (want), "op %llu: %s (%s) = %s, expected %s",                            \
                  (unsigned long long)r->ops, #expr, m_desc, petrel_errname((int)m_r_),            \
                  petrel_errname((int)(want)));                                                    \
        if (m_r_ == 0)                                                                             \
            r->ok_calls++;                                                                         \
        else                                                                                       \
            r->err_calls++;                                                                        \
    } while (0)

/* Each op updates r->now to the state after it (r->before holds the state before). */

static int op_mkdir(struct m_run *r)
{
    const char *p = pick_path(r);
    int want = model_find(r->now, p) ? -PT_EEXIST : model_parent_ok(r->now, p);
    if (strlen(p) >= M_PATH - 1 || model_count(r->now) >= M_ENTRIES - 2) return 0;
    if (want == 0) model_add(r->now, p, PETREL_FS_DIR);
    snprintf(m_desc, sizeof(m_desc), "mkdir %s", p);
    M_CALL(petrel_fs_mkdir(&r->d.fs, p), want);
    return 0;
}

static int is_below(const char *p, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(p, dir, n) == 0 && p[n] == '/';
}

static int op_remove(struct m_run *r)
{
    const char *p0 = pick_path(r);
    char p[M_PATH];
    struct m_entry *e;
    int want;
    snprintf(p, sizeof(p), "%s", p0);
    e = model_find(r->now, p);
    if (!e)
        want = model_parent_ok(r->now, p) ? model_parent_ok(r->now, p) : -PT_ENOENT;
    else if (e->type == PETREL_FS_DIR && model_children(r->now, p) > 0)
        want = -PT_ENOTEMPTY;
    else
        want = 0;
    if (want == 0) e->used = 0;
    snprintf(m_desc, sizeof(m_desc), "remove %s", p);
    M_CALL(petrel_fs_remove(&r->d.fs, p), want);
    return 0;
}

static int op_rename(struct m_run *r)
{
    char src[M_PATH], dst[M_PATH];
    struct m_entry *s, *t;
    int want;
    size_t i;
    snprintf(src, sizeof(src), "%s", pick_path(r));
    snprintf(dst, sizeof(dst), "%s", pick_path(r));
    if (strcmp(src, dst) == 0) return 0;
    s = model_find(r->now, src);
    t = model_find(r->now, dst);
    if (!s) {
        want = model_parent_ok(r->now, src) ? model_parent_ok(r->now, src) : -PT_ENOENT;
    } else if (model_parent_ok(r->now, dst)) {
        want = model_parent_ok(r->now, dst);
    } else if (s->type == PETREL_FS_DIR && is_below(dst, src)) {
        want = -PT_EINVAL;
    } else if (t && s->type == PETREL_FS_REG && t->type == PETREL_FS_DIR) {
        want = -PT_EISDIR;
    } else if (t && s->type == PETREL_FS_DIR && t->type == PETREL_FS_REG) {
        want = -PT_ENOTDIR;
    } else if (t && t->type == PETREL_FS_DIR && model_children(r->now, dst) > 0) {
        want = -PT_ENOTEMPTY;
    } else {
        want = 0;
    }
    if (want == 0) {
        /* Resulting paths must fit the model. */
        for (i = 0; i < M_ENTRIES; i++) {
            struct m_entry *e = &r->now->e[i];
            if (e->used && is_below(e->path, src) &&
                strlen(dst) + strlen(e->path) - strlen(src) >= M_PATH - 1)
                return 0;
        }
        if (t) t->used = 0;
        for (i = 0; i < M_ENTRIES; i++) {
            struct m_entry *e = &r->now->e[i];
            char np[2 * M_PATH];
            if (!e->used) continue;
            if (e == s) {
                snprintf(e->path, sizeof(e->path), "%s", dst);
            } else if (is_below(e->path, src)) {
                snprintf(np, sizeof(np), "%s%s", dst, e->path + strlen(src));
                memcpy(e->path, np, strlen(np) + 1); /* fits: checked above */
            }
        }
    }
    snprintf(m_desc, sizeof(m_desc), "rename %s %s", src, dst);
    M_CALL(petrel_fs_rename(&r->d.fs, src, dst), want);
    return 0;
}

static int op_attr(struct m_run *r)
{
    const char *p = pick_path(r);
    struct m_entry *e = model_find(r->now, p);
    int type = (int)pt_prng_below(&r->g, (uint64_t)r->attr_types);
    snprintf(m_desc, sizeof(m_desc), "attribute %d of %s", type + 1, p);
    if (!e) {
        int want = model_parent_ok(r->now, p) ? model_parent_ok(r->now, p) : -PT_ENOENT;
        M_CALL(petrel_fs_setattr(&r->d.fs, p, (uint8_t)(type + 1), "x", 1), want);
        return 0;
    }
    if (pt_prng_below(&r->g, 4) == 0) {
        int want = e->attr_len[type] < 0 ? -PT_ENODATA : 0;
        e->attr_len[type] = -1;
        M_CALL(petrel_fs_removeattr(&r->d.fs, p, (uint8_t)(type + 1)), want);
    } else {
        uint8_t v[M_ATTR_MAX];
        uint32_t len = (uint32_t)pt_prng_below(&r->g, r->attr_len + 1);
        pt_prng_fill(&r->g, v, len);
        e->attr_len[type] = (int)len;
        memcpy(e->attr[type], v, len);
        M_CALL(petrel_fs_setattr(&r->d.fs, p, (uint8_t)(type + 1), v, len), 0);
    }
    return 0;
}

/*
 * A file session: open (maybe creating), a few writes / seeks / reads / truncates / syncs,
 * close. Each call is one op for power cuts: r->before is the durable state before it,
 * r->now the durable state if it completes.
 */
static int op_session(struct m_run *r)
{
    const char *p0 = pick_path(r);
    char p[M_PATH];
    struct petrel_fs_file f;
    struct m_entry *e;
    static uint8_t pending[M_DATA_MAX], tmp[M_DATA_MAX];
    size_t size, pos = 0;
    int want, steps, i, err;
    snprintf(p, sizeof(p), "%s", p0);
    snprintf(m_desc, sizeof(m_desc), "file session on %s", p);
    e = model_find(r->now, p);
    if (e && e->type == PETREL_FS_DIR)
        want = -PT_EISDIR;
    else if (!e)
        want = model_parent_ok(r->now, p);
    else
        want = 0;
    if (!e && !want && model_count(r->now) >= M_ENTRIES - 2) return 0;
    if (want == 0 && !e) e = model_add(r->now, p, PETREL_FS_REG); /* exists empty on open */
    err = petrel_fs_file_open(&r->d.fs, &f, p, PETREL_O_RDWR | PETREL_O_CREAT);
    if (cut(r)) return 1;
    CHECK_MSG(err == want, "op %llu: open %s = %s, expected %s", (unsigned long long)r->ops, p,
              petrel_errname(err), petrel_errname(want));
    if (err) return 0;
    size = e->size;
    memcpy(pending, e->data, size);
    steps = 1 + (int)pt_prng_below(&r->g, 6);
    for (i = 0; i < steps; i++) {
        uint64_t kind = pt_prng_below(&r->g, 10);
        int64_t n;
        model_copy(r->before, r->now);
        r->ops++;
        if (kind < 5) { /* write at a random place (maybe past the end) */
            size_t room = M_DATA_MAX - 1, off, len;
            size_t budget = r->total_max - PT_MIN(model_total(r->now), r->total_max);
            off = (size_t)pt_prng_below(&r->g, (uint64_t)size + 200);
            if (off > room) off = room;
            len = 1 + (size_t)pt_prng_below(&r->g, pt_prng_below(&r->g, 4) ? 300 : 3000);
            if (off + len > room) len = room - off;
            /* len may be 0: fs.h says a write of 0 bytes past the end extends the file. */
            if (off + len > size && off + len - size > budget) continue;
            pt_prng_fill(&r->g, tmp, len);
            n = petrel_fs_file_seek(&r->d.fs, &f, (int64_t)off, PETREL_SEEK_SET);
            if (cut(r)) goto dead;
            CHECK_EQ(n, (int64_t)off);
            n = petrel_fs_file_write(&r->d.fs, &f, tmp, len);
            if (cut(r)) goto dead;
            if (n != (int64_t)len) model_dump(r->now);
            CHECK_MSG(n == (int64_t)len,
                      "op %llu: write %s %zu@%zu = %s (model holds %zu bytes; %lld of %u "
                      "blocks in use)",
                      (unsigned long long)r->ops, p, len, off, petrel_errname((int)n),
                      model_total(r->now), (long long)petrel_fs_usage(&r->d.fs),
                      r->d.geo.block_count);
            r->bytes_written += len;
            if (off > size) memset(pending + size, 0, off - size);
            memcpy(pending + off, tmp, len);
            if (off + len > size) size = off + len;
            pos = off + len;
        } else if (kind < 7) { /* read back from a random place */
            size_t off = size ? (size_t)pt_prng_below(&r->g, size) : 0, len;
            len = (size_t)pt_prng_below(&r->g, 2000) + 1;
            n = petrel_fs_file_seek(&r->d.fs, &f, (int64_t)off, PETREL_SEEK_SET);
            if (cut(r)) goto dead;
            n = petrel_fs_file_read(&r->d.fs, &f, tmp, len);
            if (cut(r)) goto dead;
            if (len > size - off) len = size - off;
            CHECK_MSG(n == (int64_t)len, "op %llu: read %s %zu@%zu = %lld",
                      (unsigned long long)r->ops, p, len, off, (long long)n);
            CHECK_MSG(memcmp(tmp, pending + off, len) == 0, "op %llu: read %s %zu@%zu: wrong bytes",
                      (unsigned long long)r->ops, p, len, off);
            pos = off + len;
        } else if (kind < 8) { /* truncate */
            size_t ns = (size_t)pt_prng_below(&r->g, (uint64_t)size + 500);
            size_t budget = r->total_max - PT_MIN(model_total(r->now), r->total_max);
            if (ns >= M_DATA_MAX || (ns > size && ns - size > budget)) continue;
            err = petrel_fs_file_truncate(&r->d.fs, &f, ns);
            if (cut(r)) goto dead;
            CHECK_MSG(err == 0, "op %llu: truncate %s %zu: %s", (unsigned long long)r->ops, p, ns,
                      petrel_errname(err));
            if (ns > size) memset(pending + size, 0, ns - size);
            size = ns;
        } else if (kind < 9) { /* size and tell */
            CHECK_EQ(petrel_fs_file_size(&r->d.fs, &f), (int64_t)size);
            CHECK_EQ(petrel_fs_file_tell(&r->d.fs, &f), (int64_t)pos);
        } else { /* sync */
            e->size = size;
            memcpy(e->data, pending, size);
            err = petrel_fs_file_sync(&r->d.fs, &f);
            if (cut(r)) goto dead;
            CHECK_MSG(err == 0, "op %llu: sync %s: %s", (unsigned long long)r->ops, p,
                      petrel_errname(err));
            r->syncs++;
        }
    }
    model_copy(r->before, r->now);
    e->size = size;
    memcpy(e->data, pending, size);
    err = petrel_fs_file_close(&r->d.fs, &f);
    if (cut(r)) return 1;
    if (err) model_dump(r->now);
    CHECK_MSG(err == 0, "op %llu: close %s (%zu bytes): %s (model holds %zu bytes; %lld of %u "
              "blocks in use)",
              (unsigned long long)r->ops, p, size, petrel_errname(err), model_total(r->now),
              (long long)petrel_fs_usage(&r->d.fs), r->d.geo.block_count);
    return 0;
dead:
    petrel_fs_file_close(&r->d.fs, &f); /* releases the handle; the power is off */
    return 1;
}

/* After a cut: reboot, mount, fsck, and the state must be r->before or r->now. */
static void recover(struct m_run *r)
{
    char why_now[200], why_before[200];
    int err;
    fsh_reboot(&r->d);
    r->cuts++;
    err = fsh_mount(&r->d);
    CHECK_MSG(err == 0, "op %llu: mount after a cut: %s", (unsigned long long)r->ops,
              petrel_errname(err));
    err = petrel_fs_check(&r->d.fs, fsh_check_log, NULL);
    CHECK_MSG(err == 0, "op %llu: fsck after a cut: %s", (unsigned long long)r->ops,
              petrel_errname(err));
    if (fs_matches(r, r->now, why_now, sizeof(why_now))) return;
    CHECK_MSG(fs_matches(r, r->before, why_before, sizeof(why_before)),
              "op %llu: after a cut the filesystem is neither before (%s) nor after (%s)",
              (unsigned long long)r->ops, why_before, why_now);
    model_copy(r->now, r->before);
}

static int collect_block(void *ctx, uint32_t block)
{
    uint8_t *used = (uint8_t *)ctx;
    used[block] = 1;
    return 0;
}

/*
 * Flip bits in a page of file data: find a durable file stored out of line, locate 16 of its
 * bytes on the device, flip 1-3 bits there, remount, read the file: the right bytes or
 * -PT_ECORRUPT. Then restore the block.
 */
static void op_flip(struct m_run *r)
{
    static uint8_t buf[M_DATA_MAX + 1];
    uint8_t *saved;
    uint8_t *used;
    struct m_entry *e = NULL;
    size_t i, off, found_at = 0;
    uint32_t b, found = UINT32_MAX, bs = r->d.geo.block_size;
    int64_t n;
    int tries;
    for (tries = 0; tries < 8 && !e; tries++) {
        struct m_entry *c = &r->now->e[pt_prng_below(&r->g, M_ENTRIES)];
        if (c->used && c->type == PETREL_FS_REG && c->size > r->inline_max + 64) e = c;
    }
    if (!e) return;
    /* Stay out of the tail, which may live inline in metadata. */
    off = (size_t)pt_prng_below(&r->g, e->size - r->inline_max - 16);
    used = (uint8_t *)calloc(r->d.geo.block_count, 1);
    CHECK(used != NULL);
    CHECK_OK(petrel_fs_traverse(&r->d.fs, collect_block, used));
    for (b = 0; b < r->d.geo.block_count && found == UINT32_MAX; b++) {
        const uint8_t *blk = r->d.emu.memory + (size_t)b * bs;
        if (!used[b]) continue;
        for (i = 0; i + 16 <= bs; i++) {
            uint32_t slot = (uint32_t)(i / r->page_size);
            /* Inside the payload of a valid data page only: never in metadata. */
            if (i % r->page_size + 16 > r->page_size - 4) continue;
            if (memcmp(blk + i, e->data + off, 16) != 0) continue;
            if (!fsh_is_data_page(&r->d, r->page_size, b, slot)) continue;
            found = b;
            found_at = i;
            break;
        }
    }
    free(used);
    if (found == UINT32_MAX) return; /* straddles pages; try another time */
    saved = (uint8_t *)malloc(bs);
    CHECK(saved != NULL);
    memcpy(saved, r->d.emu.memory + (size_t)found * bs, bs);
    CHECK_OK(petrel_bd_emu_flip_range(&r->d.emu, found, (uint32_t)found_at, 16,
                                      1 + (uint32_t)pt_prng_below(&r->g, 3)));
    r->flips++;
    CHECK_OK(fsh_unmount(&r->d));
    CHECK_OK(fsh_mount(&r->d));
    n = fsh_read_file(&r->d.fs, e->path, buf, sizeof(buf));
    if (n == -PT_ECORRUPT) {
        r->flips_caught++;
    } else {
        CHECK_MSG(n == (int64_t)e->size && memcmp(buf, e->data, e->size) == 0,
                  "op %llu: after a bit flip in %s's data (block %u offset %zu) read gave %s "
                  "and not the right bytes",
                  (unsigned long long)r->ops, e->path, (unsigned)found, found_at,
                  n < 0 ? petrel_errname((int)n) : "a count");
    }
    memcpy(r->d.emu.memory + (size_t)found * bs, saved, bs);
    free(saved);
    CHECK_OK(fsh_unmount(&r->d));
    CHECK_OK(fsh_mount(&r->d));
}

static void model_run(uint64_t seed, uint64_t nops, const struct fsh_geometry *geo)
{
    struct m_run *r = (struct m_run *)calloc(1, sizeof(*r));
    struct petrel_fs_fsinfo info;
    char why[200];
    /* PETREL_FS_MODEL_PARANOID=1: compare the whole tree after every op (slow; for finding
     * the first op where a failure starts). */
    int paranoid = getenv("PETREL_FS_MODEL_PARANOID") != NULL;
    CHECK(r != NULL);
    r->now = (struct model *)calloc(1, sizeof(struct model));
    r->before = (struct model *)calloc(1, sizeof(struct model));
    r->after = (struct model *)calloc(1, sizeof(struct model));
    CHECK(r->now && r->before && r->after);
    pt_prng_seed(&r->g, seed);
    fsh_dev_init(&r->d, geo, seed);
    fsh_format_mount(&r->d);
    CHECK_OK(petrel_fs_fsinfo(&r->d.fs, &info));
    r->inline_max = info.inline_max;
    r->page_size = info.page_size;
    /* An entry and all its attributes must fit one metadata block: on 128-byte blocks use
     * one short attribute. */
    r->attr_types = info.block_size < 512 ? 1 : M_ATTRS;
    r->total_max = PT_MIN((size_t)M_TOTAL_MAX, (size_t)info.block_size * info.block_count / 5);
    r->attr_len = info.block_size < 512 ? 12 : M_ATTR_MAX;
    while (r->ops < nops) {
        uint64_t kind = pt_prng_below(&r->g, 100);
        int armed = pt_prng_below(&r->g, 4) == 0, dead = 0;
        model_copy(r->before, r->now);
        if (armed)
            petrel_bd_emu_powerloss(&r->d.emu, 1 + pt_prng_below(&r->g, 12),
                                    pt_prng_below(&r->g, 2) ? PETREL_BD_EMU_POWERLOSS_TORN
                                                            : PETREL_BD_EMU_POWERLOSS_ATOMIC);
        r->ops++;
        if (kind < 40)
            dead = op_session(r);
        else if (kind < 52)
            dead = op_mkdir(r);
        else if (kind < 64)
            dead = op_remove(r);
        else if (kind < 80)
            dead = op_rename(r);
        else if (kind < 94)
            dead = op_attr(r);
        else if (kind < 97) {
            petrel_bd_emu_powerloss(&r->d.emu, 0, PETREL_BD_EMU_POWERLOSS_ATOMIC);
            op_flip(r);
        } else {
            /* unmount commits the clean mount-state record when the session changed
             * anything: an armed cut may fall in it (or in the mount from it) */
            int err = fsh_unmount(&r->d);
            if (!petrel_bd_emu_is_dead(&r->d.emu)) {
                CHECK_OK(err);
                err = fsh_mount(&r->d);
            }
            dead = petrel_bd_emu_is_dead(&r->d.emu);
            if (!dead) {
                CHECK_OK(err);
                r->remounts++;
                CHECK_MSG(fs_matches(r, r->now, why, sizeof(why)), "op %llu: after remount: %s",
                          (unsigned long long)r->ops, why);
            }
        }
        if (dead || petrel_bd_emu_is_dead(&r->d.emu))
            recover(r);
        else if (paranoid)
            CHECK_MSG(fs_matches(r, r->now, why, sizeof(why)), "op %llu (%s): %s",
                      (unsigned long long)r->ops, m_desc, why);
        m_desc[0] = 0;
        petrel_bd_emu_powerloss(&r->d.emu, 0, PETREL_BD_EMU_POWERLOSS_ATOMIC);
    }
    CHECK_OK(fsh_unmount(&r->d));
    CHECK_OK(fsh_mount(&r->d));
    CHECK_MSG(fs_matches(r, r->now, why, sizeof(why)), "at the end: %s", why);
    CHECK_OK(petrel_fs_check(&r->d.fs, fsh_check_log, NULL));
    test_log("%llu ops, %llu power cuts, %llu remounts, %llu bit flips (%llu caught as "
             "-PT_ECORRUPT, the rest hit stale copies)",
             (unsigned long long)r->ops, (unsigned long long)r->cuts,
             (unsigned long long)r->remounts, (unsigned long long)r->flips,
             (unsigned long long)r->flips_caught);
    test_log("%llu namespace/attribute calls succeeded, %llu gave the expected error; "
             "%llu bytes written, %llu syncs",
             (unsigned long long)r->ok_calls, (unsigned long long)r->err_calls,
             (unsigned long long)r->bytes_written, (unsigned long long)r->syncs);
    fsh_powercuts_add(geo->name, r->cuts);
    fsh_dev_free(&r->d);
    free(r->now);
    free(r->before);
    free(r->after);
    free(r);
}

#define MODEL_OPS (test_soak() ? 300000 : test_sanitized() ? 5000 : 30000)

TEST_T(model_random_ops_cuts_flips, 300)
{
    model_run(test_seed(), MODEL_OPS, &fsh_geometries[FSH_NOR]);
}

TEST_T(model_random_ops_cuts_flips_emmc, 300)
{
    model_run(test_seed(), MODEL_OPS, &fsh_geometries[FSH_EMMC]);
}

/* The eMMC geometry with erase filling random bytes (the case above keeps old contents). */
TEST_T(model_random_ops_cuts_flips_emmc_random_erase, 300)
{
    struct fsh_geometry g = fsh_geometries[FSH_EMMC];
    g.name = "emmc-random-erase";
    g.erase_value = PETREL_BD_EMU_ERASE_RANDOM;
    model_run(test_seed(), MODEL_OPS, &g);
}

TEST_T(model_random_ops_cuts_flips_nor1, 300)
{
    model_run(test_seed(), MODEL_OPS / 2, &fsh_geometries[FSH_NOR1]);
}

TEST_T(model_random_ops_cuts_flips_nand, 300)
{
    model_run(test_seed(), MODEL_OPS / 3, &fsh_geometries[FSH_NAND]);
}

TEST_T(model_random_ops_cuts_flips_tiny, 300)
{
    model_run(test_seed(), MODEL_OPS, &fsh_geometries[FSH_TINY]);
}

/* The erase matrix at one block size: the model run under each erase behaviour in turn. Every
 * directory takes two blocks and every file outside its entry one at least, so 64 KiB blocks
 * get 64 of them (the matrix's 24 run out of blocks, not bytes, under the model's tree). */
static void model_matrix(int size, uint64_t nops)
{
    int e;
    for (e = 0; e < FSH_MATRIX_ERASES; e++) {
        struct fsh_geometry g = fsh_matrix[size * FSH_MATRIX_ERASES + e];
        if (g.block_size >= 65536) g.block_count = 64;
        model_run(test_seed() + (uint64_t)e, nops, &g);
    }
}

TEST_T(model_matrix512, 300)
{
    model_matrix(FSH_M512, MODEL_OPS / 2);
}

TEST_T(model_matrix4k, 300)
{
    model_matrix(FSH_M4K, MODEL_OPS / 2);
}

TEST_T(model_matrix64k, 300)
{
    model_matrix(FSH_M64K, MODEL_OPS / 6);
}

/* Fixed seeds that once lost a directory or failed a removal: removing a directory whose
 * parent's head relocates during the removal (the repair that relocation runs reclaims the
 * removed directory first; the removal must still succeed), on the eMMC geometry with
 * random erase contents. */
TEST_T(model_emmc_random_erase_relocation_seeds, 120)
{
    struct fsh_geometry g = fsh_geometries[FSH_EMMC];
    g.name = "emmc-random-erase";
    g.erase_value = PETREL_BD_EMU_ERASE_RANDOM;
    test_seed();
    model_run(11, 3000, &g);
    model_run(55, 6000, &g);
}

/* The smallest reproduction of the tiny-block failure the model test found. */
TEST(model_tiny_attr_then_mkdir)
{
    struct fsh_dev d;
    fsh_dev_init(&d, &fsh_geometries[FSH_TINY], 1);
    fsh_format_mount(&d);
    CHECK_OK(fsh_write_pattern(&d.fs, "f0", 1, 2352));
    CHECK_OK(petrel_fs_setattr(&d.fs, "f0", 1, "twelve bytes", 12));
    CHECK_OK(petrel_fs_mkdir(&d.fs, "d0"));
    CHECK_OK(petrel_fs_mkdir(&d.fs, "d1"));
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
    fsh_dev_free(&d);
}

/* Directories made and removed over and over on a device whose erase changes nothing: a new
 * directory must always start empty (a minimal form of the eMMC model failure). */
TEST(model_new_directories_start_empty_without_erase)
{
    struct fsh_dev d;
    int i;
    fsh_dev_init(&d, &fsh_geometries[FSH_EMMC], test_seed());
    fsh_format_mount(&d);
    for (i = 0; i < 400; i++) {
        char dir[16], file[32];
        struct petrel_fs_dir h;
        struct petrel_fs_info info;
        int n = 0;
        snprintf(dir, sizeof(dir), "d%d", i % 3);
        CHECK_OK(petrel_fs_mkdir(&d.fs, dir));
        CHECK_OK(petrel_fs_dir_open(&d.fs, &h, dir));
        while (petrel_fs_dir_read(&d.fs, &h, &info) > 0)
            n++;
        CHECK_OK(petrel_fs_dir_close(&d.fs, &h));
        CHECK_MSG(n == 0, "round %d: new directory %s lists %d entries (e.g. %s)", i, dir, n,
                  info.name);
        snprintf(file, sizeof(file), "%s/f%d", dir, i % 5);
        CHECK_OK(fsh_write_pattern(&d.fs, file, (uint64_t)i, 100 + (size_t)i % 700));
        CHECK_OK(petrel_fs_remove(&d.fs, file));
        CHECK_OK(petrel_fs_remove(&d.fs, dir));
        if (i % 50 == 49) {
            CHECK_OK(fsh_unmount(&d));
            CHECK_OK(fsh_mount(&d));
        }
    }
    fsh_dev_free(&d);
}

/* A minimal form of the tiny-block failures the model test finds: churn with attributes
 * must neither leak blocks nor lose a file it just wrote. */
TEST(model_tiny_churn_with_attributes)
{
    struct fsh_dev d;
    int i;
    fsh_dev_init(&d, &fsh_geometries[FSH_TINY], 1);
    fsh_format_mount(&d);
    CHECK_OK(petrel_fs_mkdir(&d.fs, "d"));
    for (i = 0; i < 400; i++) {
        char p[32];
        int64_t used;
        snprintf(p, sizeof(p), "d/f%d", i % 7);
        CHECK_OK(fsh_write_pattern(&d.fs, p, (uint64_t)i, 20 + (size_t)i % 500));
        CHECK_MSG(petrel_fs_setattr(&d.fs, p, 1, "attr!", 5) == 0, "step %d: setattr %s", i, p);
        if (i % 3 == 0) CHECK_OK(petrel_fs_remove(&d.fs, p));
        /* At most 7 files of at most 520 bytes: a few dozen blocks with metadata. */
        used = petrel_fs_usage(&d.fs);
        CHECK_MSG(used >= 0 && used <= 80, "step %d: %lld blocks in use", i, (long long)used);
    }
    CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
    fsh_dev_free(&d);
}

/* A directory that grew to many pairs and is emptied again gives its pairs back: removals
 * drop continuation pairs left without entries (except one a reader stands on). */
TEST(model_tiny_emptied_directory_gives_pairs_back)
{
    struct fsh_dev d;
    struct petrel_fs_dir h;
    struct petrel_fs_info info;
    int64_t empty, base, full, after;
    int i, n = 0;
    fsh_dev_init(&d, &fsh_geometries[FSH_TINY], 1);
    fsh_format_mount(&d);
    empty = petrel_fs_usage(&d.fs);
    CHECK_OK(petrel_fs_mkdir(&d.fs, "d"));
    base = petrel_fs_usage(&d.fs);
    for (i = 0; i < 40; i++) {
        char p[32];
        snprintf(p, sizeof(p), "d/f%d", i);
        CHECK_OK(fsh_write_pattern(&d.fs, p, (uint64_t)i, 30));
    }
    full = petrel_fs_usage(&d.fs);
    CHECK_MSG(full > base + 20, "40 files in d use %lld blocks (empty: %lld)", (long long)full,
              (long long)base);
    /* a reader part-way through the directory while every entry goes */
    CHECK_OK(petrel_fs_dir_open(&d.fs, &h, "d"));
    CHECK(petrel_fs_dir_read(&d.fs, &h, &info) > 0);
    for (i = 0; i < 40; i++) {
        char p[32];
        snprintf(p, sizeof(p), "d/f%d", i);
        CHECK_OK(petrel_fs_remove(&d.fs, p));
    }
    while (petrel_fs_dir_read(&d.fs, &h, &info) > 0)
        n++;
    CHECK_MSG(n == 0, "the reader lists %d removed entries (e.g. %s)", n, info.name);
    CHECK_OK(petrel_fs_dir_close(&d.fs, &h));
    CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
    after = petrel_fs_usage(&d.fs);
    CHECK_MSG(after <= base + 4, "emptied directory still uses %lld blocks (empty: %lld)",
              (long long)after, (long long)base);
    CHECK_OK(fsh_unmount(&d));
    CHECK_OK(fsh_mount(&d));
    CHECK_OK(petrel_fs_check(&d.fs, fsh_check_log, NULL));
    CHECK_OK(petrel_fs_remove(&d.fs, "d"));
    /* d's pair and, on 128 B blocks, the root's continuation pair that took d's entry */
    CHECK_EQ(petrel_fs_usage(&d.fs), empty);
    fsh_dev_free(&d);
}
