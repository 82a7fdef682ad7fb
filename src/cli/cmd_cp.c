/*
 * petrel cp [-r|-R] [-L] [-p|-a] SRC... DST: copy files and trees between any kinds of location
 * (local, image, cluster, on either side). Streams in 1 MiB pieces and writes each destination
 * file sequentially, so write-once stores accept it.
 *
 * Symbolic links: with -r a link is copied as a link (its target text, unchanged), FIFOs,
 * sockets and device nodes as nodes; -L (and a copy without -r) follows links instead,
 * component by component, at most CP_LINK_HOPS of them per path, and refuses a dangling link
 * and a link that leads back into a directory being copied (a loop). -p keeps modes, owners
 * (where the destination keeps them and cp may give files away) and times; -a is -r -p.
 *
 * cp never removes or replaces what it did not create or did not see. A destination name
 * that was free when cp looked is created exclusively: of several cp racing for one new name
 * exactly one wins, the others fail with one line and leave nothing (on a cluster the loser's
 * file is abandoned, never linked). A destination that existed is replaced only as it was
 * when cp looked: on a cluster the new file takes the place of exactly that inode, and if
 * someone else removed or replaced it meanwhile cp fails and leaves theirs. A copy that fails
 * part-way leaves no partial file: the handle is abandoned, and on a store without
 * write-once semantics the file cp itself created (exclusively) is removed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"

#define CP_CHUNK (1u << 20)
/* Links followed while resolving one path before it counts as a loop (Linux: 40). */
#define CP_LINK_HOPS 40
/* Directories being copied, outermost first: a followed link into one of them is a loop. */
#define CP_DEPTH_MAX 256

struct copy {
    struct cli_place *src, *dst;
    char *buf;
    int recursive;
    int no_clobber; /* -n: never replace an existing file */
    int follow;     /* -L: copy what links point to */
    int preserve;   /* -p / -a: keep mode, owner, times */
    char *open_dirs[CP_DEPTH_MAX];
    int depth;
};

/* The error line for a destination that could not be created or replaced. */
static int create_error(struct copy *c, const char *to, int existed, int rc)
{
    const char *shown = cli_show(c->dst, to);
    if (rc == -PT_EEXIST && !existed)
        return cli_error("cp", "cannot create '%s': someone else created it meanwhile "
                               "(theirs is kept)",
                         shown);
    if (rc == -PT_EPERM && existed && (c->dst->vfs->caps & PETREL_VFS_CAP_WRITE_ONCE))
        return cli_error("cp", "cannot replace '%s': %s", shown, cli_strerror(rc));
    if (rc == -PT_ESTALE)
        return cli_error("cp", "cannot replace '%s': someone else changed or removed it "
                               "meanwhile (theirs is kept)",
                         shown);
    return cli_error("cp", "cannot %s '%s': %s", existed ? "replace" : "create", shown,
                     cli_strerror(rc));
}

static int copy_file(struct copy *c, const char *from, const char *to, uint64_t size)
{
    struct petrel_vfs *sv = c->src->vfs, *dv = c->dst->vfs;
    struct petrel_vfs_file *in, *out;
    struct petrel_vfs_stat st;
    struct cli_progress prog;
    uint64_t off = 0;
    int existed, rc, flags;
    const char *failed = NULL;

    if (sv == dv && strcmp(from, to) == 0)
        return cli_error("cp", "'%s' and '%s' are the same file", cli_show(c->src, from),
                         cli_show(c->dst, to));
    rc = petrel_vfs_file_open(sv, from, PETREL_VFS_O_READ, &in);
    if (rc < 0)
        return cli_error("cp", "cannot open '%s': %s", cli_show(c->src, from), cli_strerror(rc));
    existed = petrel_vfs_stat(dv, to, &st) == 0;
    if (existed && st.type == PETREL_VFS_DIR) {
        petrel_vfs_file_close(sv, in);
        return cli_error("cp", "cannot overwrite directory '%s' with a file", cli_show(c->dst, to));
    }
    if (existed && st.type != PETREL_VFS_REG) {
        petrel_vfs_file_close(sv, in);
        return cli_error("cp", "cannot overwrite '%s': not a regular file", cli_show(c->dst, to));
    }
    if (existed && c->no_clobber) {
        petrel_vfs_file_close(sv, in);
        return cli_error("cp", "cannot create '%s': it exists (-n never replaces)",
                         cli_show(c->dst, to));
    }
    /* A free name is taken exclusively (so the file is ours to remove on failure, and a racer
     * that took it first keeps it); an existing one is replaced as it was seen. */
    flags = PETREL_VFS_O_WRITE | PETREL_VFS_O_CREAT |
            (existed ? PETREL_VFS_O_TRUNC | PETREL_VFS_O_REPLACE : PETREL_VFS_O_EXCL);
    rc = petrel_vfs_file_open(dv, to, flags, &out);
    if (rc < 0) {
        petrel_vfs_file_close(sv, in);
        return create_error(c, to, existed, rc);
    }
    cli_progress_start(&prog, size);
    for (;;) {
        int64_t n = petrel_vfs_file_read(sv, in, c->buf, CP_CHUNK, off);
        if (n < 0) {
            rc = (int)n;
            failed = "cannot read";
            break;
        }
        if (n == 0) break;
        rc = petrel_vfs_write_all(dv, out, c->buf, (uint64_t)n, off);
        if (rc < 0) {
            failed = "cannot write";
            break;
        }
        off += (uint64_t)n;
        cli_progress_add(&prog, petrel_vfs_path_base(to), (uint64_t)n);
    }
    cli_progress_end(&prog);
    if (failed && failed[7] == 'r' && rc == -PT_ECORRUPT) {
        petrel_vfs_file_abandon(dv, out);
        if (!existed && !(dv->caps & PETREL_VFS_CAP_WRITE_ONCE)) petrel_vfs_remove(dv, to);
        rc = cli_read_error("cp", cli_show(c->src, from), sv, in, off, rc);
        petrel_vfs_file_close(sv, in);
        return rc;
    }
    petrel_vfs_file_close(sv, in);
    if (failed) {
        petrel_vfs_file_abandon(dv, out);
        /* A write-once store never linked the abandoned file: nothing to remove there. */
        if (!existed && !(dv->caps & PETREL_VFS_CAP_WRITE_ONCE)) petrel_vfs_remove(dv, to);
        return cli_error("cp", "%s '%s': %s", failed,
                         failed[7] == 'r' ? cli_show(c->src, from) : cli_show(c->dst, to),
                         cli_strerror(rc));
    }
    rc = petrel_vfs_file_close(dv, out);
    if (rc < 0) {
        /* On a write-once store a failed close means the file was not linked: the name is
         * someone else's (or as it was). Elsewhere the file cp created exclusively goes. */
        if (!existed && !(dv->caps & PETREL_VFS_CAP_WRITE_ONCE)) petrel_vfs_remove(dv, to);
        if (rc == -PT_EEXIST || rc == -PT_ESTALE) return create_error(c, to, existed, rc);
        return cli_error("cp", "cannot write '%s': %s", cli_show(c->dst, to), cli_strerror(rc));
    }
    return 0;
}

static int copy_any(struct copy *c, const char *from, const char *to);

/* -p: give to the mode, owner and times from has (a failure to give a file away to another
 * owner is not an error unless cp runs as root, like cp(1)). */
static int copy_attrs(struct copy *c, const char *to, const struct petrel_vfs_stat *from)
{
    struct petrel_vfs *dv = c->dst->vfs;
    int rc;
    if (!c->preserve) return 0;
    if (dv->caps & PETREL_VFS_CAP_OWNER) {
        struct petrel_vfs_attr a;
        memset(&a, 0, sizeof(a));
        a.valid = PETREL_VFS_SET_MODE | PETREL_VFS_SET_ATIME | PETREL_VFS_SET_MTIME;
        a.mode = from->mode;
        a.atime_sec = from->atime_sec ? from->atime_sec : from->mtime_sec;
        a.atime_nsec = from->atime_sec ? from->atime_nsec : from->mtime_nsec;
        a.mtime_sec = from->mtime_sec;
        a.mtime_nsec = from->mtime_nsec;
        if (from->uid != PETREL_VFS_ID_NONE && (c->src->vfs->caps & PETREL_VFS_CAP_OWNER)) {
            a.valid |= PETREL_VFS_SET_UID | PETREL_VFS_SET_GID;
            a.uid = from->uid;
            a.gid = from->gid;
        }
        rc = petrel_vfs_setattr(dv, to, &a);
        if (rc == -PT_EPERM && (a.valid & PETREL_VFS_SET_UID)) {
            a.valid &= ~(unsigned)(PETREL_VFS_SET_UID | PETREL_VFS_SET_GID);
            rc = petrel_vfs_setattr(dv, to, &a);
        }
    } else {
        rc = (dv->caps & PETREL_VFS_CAP_MODE) ? petrel_vfs_set_mode(dv, to, from->mode) : 0;
        if (rc == 0 && (dv->caps & PETREL_VFS_CAP_MTIME) && from->mtime_sec)
            rc = petrel_vfs_set_mtime(dv, to, from->mtime_sec, from->mtime_nsec);
    }
    if (rc < 0)
        return cli_error("cp", "cannot keep mode, owner and times of '%s': %s",
                         cli_show(c->dst, to), cli_strerror(rc));
    return 0;
}

/*
 * Resolve path in the source, following every symbolic link on the way, into out (a path
 * without links) and its stat. Returns 0, or 1 after printing why (dangling link, loop).
 */
static int resolve_links(struct copy *c, const char *path, char *out, size_t size,
                         struct petrel_vfs_stat *st)
{
    struct petrel_vfs *sv = c->src->vfs;
    char rest[PETREL_VFS_PATH_MAX], target[PETREL_VFS_PATH_MAX], done[PETREL_VFS_PATH_MAX];
    int hops = 0, rc;
    size_t dlen = 0;
    if (strlen(path) >= sizeof(rest)) return cli_error("cp", "path too long: '%s'", path);
    strcpy(rest, path);
    done[0] = '\0';
    for (;;) {
        char *p = rest, *name;
        size_t nlen;
        while (*p == '/')
            p++;
        if (!*p) break;
        name = p;
        while (*p && *p != '/')
            p++;
        nlen = (size_t)(p - name);
        if (nlen == 1 && name[0] == '.') {
            memmove(rest, p, strlen(p) + 1);
            continue;
        }
        if (nlen == 2 && name[0] == '.' && name[1] == '.') {
            while (dlen > 0 && done[dlen - 1] != '/')
                dlen--;
            if (dlen > 0) dlen--;
            done[dlen] = '\0';
            memmove(rest, p, strlen(p) + 1);
            continue;
        }
        if (dlen + 1 + nlen >= sizeof(done)) return cli_error("cp", "path too long: '%s'", path);
        done[dlen] = '/';
        memcpy(done + dlen + 1, name, nlen);
        done[dlen + 1 + nlen] = '\0';
        memmove(rest, p, strlen(p) + 1);
        rc = petrel_vfs_stat(sv, done, st);
        if (rc == -PT_ENOENT && hops > 0)
            return cli_error("cp", "cannot copy '%s': dangling symbolic link ('%s' does not exist)",
                             cli_show(c->src, path), done);
        if (rc < 0)
            return cli_error("cp", "cannot access '%s': %s", cli_show(c->src, path),
                             cli_strerror(rc));
        if (st->type == PETREL_VFS_LNK) {
            int64_t n;
            size_t tlen, rlen = strlen(rest);
            if (++hops > CP_LINK_HOPS)
                return cli_error("cp", "cannot copy '%s': too many levels of symbolic links "
                                       "(a loop?)",
                                 cli_show(c->src, path));
            n = petrel_vfs_readlink(sv, done, target, sizeof(target) - 1);
            if (n < 0 || n >= (int64_t)sizeof(target) - 1)
                return cli_error("cp", "cannot read link '%s': %s", cli_show(c->src, done),
                                 cli_strerror(n < 0 ? (int)n : -PT_ENAMETOOLONG));
            tlen = (size_t)n;
            if (tlen + 1 + rlen >= sizeof(rest)) return cli_error("cp", "path too long: '%s'", path);
            memmove(rest + tlen + 1, rest, rlen + 1);
            memcpy(rest, target, tlen);
            rest[tlen] = '/';
            /* relative to the link's directory (done up to dlen), absolute from the root */
            if (target[0] == '/' && c->src->loc.kind == PETREL_VFS_LOCAL &&
                strcmp(c->src->loc.store, "/") != 0)
                return cli_error("cp", "cannot follow '%s': it points to the absolute path '%.*s' "
                                       "(name the source by its absolute path to follow it)",
                                 cli_show(c->src, done), (int)tlen, target);
            if (target[0] == '/') dlen = 0;
            done[dlen] = '\0';
            continue;
        }
        dlen += 1 + nlen;
    }
    if (dlen == 0) {
        strcpy(done, "/");
        rc = petrel_vfs_stat(sv, done, st);
        if (rc < 0)
            return cli_error("cp", "cannot access '%s': %s", cli_show(c->src, path),
                             cli_strerror(rc));
    }
    if (strlen(done) >= size) return cli_error("cp", "path too long: '%s'", path);
    strcpy(out, done);
    return 0;
}

/* Copy a link as a link, or a FIFO, socket or device as a node of its own. */
static int copy_node(struct copy *c, const char *from, const char *to,
                     const struct petrel_vfs_stat *st)
{
    struct petrel_vfs_node n;
    char target[PETREL_VFS_PATH_MAX];
    int rc;
    memset(&n, 0, sizeof(n));
    n.type = st->type;
    n.mode = st->mode;
    n.uid = n.gid = PETREL_VFS_ID_NONE;
    n.rdev = st->rdev;
    if (st->type == PETREL_VFS_LNK) {
        int64_t len = petrel_vfs_readlink(c->src->vfs, from, target, sizeof(target) - 1);
        if (len < 0 || len >= (int64_t)sizeof(target) - 1)
            return cli_error("cp", "cannot read link '%s': %s", cli_show(c->src, from),
                             cli_strerror(len < 0 ? (int)len : -PT_ENAMETOOLONG));
        target[len] = '\0';
        n.target = target;
    }
    if (!(c->dst->vfs->caps & PETREL_VFS_CAP_NODES))
        return cli_error("cp", "cannot create '%s': %s are not kept by this store (use -L to "
                               "copy what links point to)",
                         cli_show(c->dst, to),
                         st->type == PETREL_VFS_LNK ? "symbolic links" : "special files");
    rc = petrel_vfs_mknod(c->dst->vfs, to, &n);
    if (rc == -PT_EEXIST)
        return cli_error("cp", "cannot create '%s': it exists (cp replaces only files)",
                         cli_show(c->dst, to));
    if (rc < 0)
        return cli_error("cp", "cannot create '%s': %s", cli_show(c->dst, to), cli_strerror(rc));
    return copy_attrs(c, to, st);
}

/* A link that led to directory dir loops when dir is being copied or holds one that is. */
static int check_loop(struct copy *c, const char *link, const char *dir)
{
    size_t len = strlen(dir);
    int i;
    for (i = 0; i < c->depth; i++)
        if (strcmp(c->open_dirs[i], dir) == 0 || strcmp(dir, "/") == 0 ||
            (strncmp(c->open_dirs[i], dir, len) == 0 && c->open_dirs[i][len] == '/'))
            return cli_error("cp", "cannot copy '%s': symbolic link loop (it leads back to '%s', "
                                   "which is being copied)",
                             cli_show(c->src, link), cli_show(c->src, dir));
    return 0;
}

static int copy_tree(struct copy *c, const char *from, const char *to)
{
    struct cli_listing l;
    struct petrel_vfs_stat st;
    size_t i;
    int rc, status = 0;
    if (c->src->vfs == c->dst->vfs) {
        size_t len = strlen(from);
        if (strcmp(from, "/") == 0 ||
            (strncmp(to, from, len) == 0 && (to[len] == '/' || to[len] == '\0')))
            return cli_error("cp", "cannot copy directory '%s' into itself",
                             cli_show(c->src, from));
    }
    rc = petrel_vfs_stat(c->dst->vfs, to, &st);
    if (rc == 0 && st.type != PETREL_VFS_DIR)
        return cli_error("cp", "cannot overwrite file '%s' with a directory", cli_show(c->dst, to));
    if (rc == -PT_ENOENT) rc = petrel_vfs_mkdir(c->dst->vfs, to);
    if (rc < 0)
        return cli_error("cp", "cannot create directory '%s': %s", cli_show(c->dst, to),
                         cli_strerror(rc));
    if (c->depth >= CP_DEPTH_MAX)
        return cli_error("cp", "'%s': directories nested too deep", cli_show(c->src, from));
    c->open_dirs[c->depth] = strdup(from);
    if (!c->open_dirs[c->depth]) return cli_error("cp", "out of memory");
    c->depth++;
    rc = cli_listing_read(c->src->vfs, from, &l);
    if (rc < 0)
        status = cli_error("cp", "cannot list '%s': %s", cli_show(c->src, from), cli_strerror(rc));
    for (i = 0; i < l.n && !status; i++) {
        char a[PETREL_VFS_PATH_MAX], b[PETREL_VFS_PATH_MAX];
        if (petrel_vfs_path_join(a, sizeof(a), from, l.v[i].name) < 0 ||
            petrel_vfs_path_join(b, sizeof(b), to, l.v[i].name) < 0) {
            status = cli_error("cp", "path too long under '%s'", cli_show(c->src, from));
            break;
        }
        status = copy_any(c, a, b);
    }
    cli_listing_free(&l);
    c->depth--;
    free(c->open_dirs[c->depth]);
    /* last: copying the children changed the directory's times */
    if (!status && c->preserve && petrel_vfs_stat(c->src->vfs, from, &st) == 0)
        status = copy_attrs(c, to, &st);
    return status;
}

static int copy_any(struct copy *c, const char *from, const char *to)
{
    struct petrel_vfs_stat st;
    char real[PETREL_VFS_PATH_MAX];
    int rc = petrel_vfs_stat(c->src->vfs, from, &st);
    if (rc < 0)
        return cli_error("cp", "cannot access '%s': %s", cli_show(c->src, from), cli_strerror(rc));
    if (st.type == PETREL_VFS_LNK && (c->follow || !c->recursive)) {
        if (resolve_links(c, from, real, sizeof(real), &st)) return 1;
        if (st.type == PETREL_VFS_DIR && check_loop(c, from, real)) return 1;
        from = real;
    }
    if (st.type == PETREL_VFS_DIR) {
        if (!c->recursive)
            return cli_error("cp", "'%s' is a directory (use -r to copy it)",
                             cli_show(c->src, from));
        return copy_tree(c, from, to);
    }
    if (st.type != PETREL_VFS_REG) {
        if (!c->recursive)
            return cli_error("cp", "'%s' is not a regular file (use -r to copy it as it is)",
                             cli_show(c->src, from));
        return copy_node(c, from, to, &st);
    }
    rc = copy_file(c, from, to, st.size);
    return rc ? rc : copy_attrs(c, to, &st);
}

int cmd_cp(int argc, char **argv)
{
    int recursive = 0, recursive2 = 0, no_clobber = 0, follow = 0, preserve = 0, archive = 0;
    int n, i, status = 0, into_dir = 0;
    struct cli_place dst;
    struct petrel_vfs_stat st;
    struct copy c;
    const struct cli_option options[] = {
        {'r', "recursive", CLI_FLAG, &recursive, NULL,
         "copy directories and their contents; links as links, special files as such"},
        {'R', NULL, CLI_FLAG, &recursive2, NULL, "same as -r"},
        {'L', "dereference", CLI_FLAG, &follow, NULL, "copy what symbolic links point to"},
        {'p', "preserve", CLI_FLAG, &preserve, NULL, "keep modes, owners and times"},
        {'a', "archive", CLI_FLAG, &archive, NULL, "-r -p"},
        {'n', "no-clobber", CLI_FLAG, &no_clobber, NULL,
         "never replace an existing file: fail instead (also when one appears meanwhile)"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL},
    };
    const struct cli_spec spec = {
        "cp",
        "[-r|-R] [-L] [-p|-a] [-n] SRC... DST",
        "Copy files (and with -r, directories) between locations of any kind: a local path,\n"
        "IMAGE:PATH (a flash image) or petrel://HOST:PORT/PATH (a cluster). With several\n"
        "sources, or when DST is a directory, copies into DST. Shows progress on a terminal.\n"
        "An existing file is replaced only as cp found it: if someone else changes the name\n"
        "meanwhile, cp fails and leaves theirs.",
        options,
        2,
        -1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    recursive |= recursive2 | archive;
    preserve |= archive;
    if (cli_place_open("cp", argv[n], 0, &dst)) return 1;
    if (petrel_vfs_stat(dst.vfs, dst.loc.path, &st) == 0 && st.type == PETREL_VFS_DIR) into_dir = 1;
    if (n > 2 && !into_dir) {
        cli_place_close("cp", &dst);
        return cli_error("cp", "target '%s' is not a directory", argv[n]);
    }
    memset(&c, 0, sizeof(c));
    c.buf = malloc(CP_CHUNK);
    if (!c.buf) {
        cli_place_close("cp", &dst);
        return cli_error("cp", "out of memory");
    }
    c.recursive = recursive;
    c.no_clobber = no_clobber;
    c.follow = follow;
    c.preserve = preserve;
    c.dst = &dst;
    for (i = 1; i < n && !status; i++) {
        struct cli_place src;
        char target[PETREL_VFS_PATH_MAX];
        if (cli_place_open("cp", argv[i], PETREL_VFS_MOUNT_READ_ONLY, &src)) {
            status = 1;
            break;
        }
        c.src = &src;
        if (into_dir && strcmp(src.loc.path, "/") != 0) {
            if (petrel_vfs_path_join(target, sizeof(target), dst.loc.path,
                                     petrel_vfs_path_base(src.loc.path)) < 0)
                status = cli_error("cp", "path too long: '%s'", argv[n]);
        } else {
            snprintf(target, sizeof(target), "%s", dst.loc.path);
        }
        if (!status) status = copy_any(&c, src.loc.path, target);
        c.src = NULL;
        if (cli_place_close("cp", &src)) status = 1;
    }
    free(c.buf);
    if (cli_place_close("cp", &dst)) status = 1;
    return status;
}
