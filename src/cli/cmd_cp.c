/*
 * petrel cp [-r] SRC... DST: copy files and trees between any kinds of location (local,
 * image, cluster, on either side). Streams in 1 MiB pieces and writes each destination file
 * sequentially, so write-once stores accept it.
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

struct copy {
    struct cli_place *src, *dst;
    char *buf;
    int recursive;
    int no_clobber; /* -n: never replace an existing file */
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
    return status;
}

static int copy_any(struct copy *c, const char *from, const char *to)
{
    struct petrel_vfs_stat st;
    int rc = petrel_vfs_stat(c->src->vfs, from, &st);
    if (rc < 0)
        return cli_error("cp", "cannot access '%s': %s", cli_show(c->src, from), cli_strerror(rc));
    if (st.type == PETREL_VFS_DIR) {
        if (!c->recursive)
            return cli_error("cp", "'%s' is a directory (use -r to copy it)",
                             cli_show(c->src, from));
        return copy_tree(c, from, to);
    }
    return copy_file(c, from, to, st.size);
}

int cmd_cp(int argc, char **argv)
{
    int recursive = 0, no_clobber = 0, n, i, status = 0, into_dir = 0;
    struct cli_place dst;
    struct petrel_vfs_stat st;
    struct copy c;
    const struct cli_option options[] = {
        {'r', "recursive", CLI_FLAG, &recursive, NULL, "copy directories and their contents"},
        {'n', "no-clobber", CLI_FLAG, &no_clobber, NULL,
         "never replace an existing file: fail instead (also when one appears meanwhile)"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL},
    };
    const struct cli_spec spec = {
        "cp",
        "[-r] [-n] SRC... DST",
        "Copy files (and with -r, directories) between locations of any kind: a local path,\n"
        "IMAGE:PATH (a flash image) or petrel://HOST:PORT/PATH (a cluster). With several\n"
        "sources, or when DST is a directory, copies into DST. Shows progress on a terminal.\n"
        "An existing file is replaced only as cp found it: if someone else changes the name\n"
        "meanwhile, cp fails and leaves theirs.",
        options,
        2,
        -1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    if (cli_place_open("cp", argv[n], 0, &dst)) return 1;
    if (petrel_vfs_stat(dst.vfs, dst.loc.path, &st) == 0 && st.type == PETREL_VFS_DIR) into_dir = 1;
    if (n > 2 && !into_dir) {
        cli_place_close("cp", &dst);
        return cli_error("cp", "target '%s' is not a directory", argv[n]);
    }
    c.buf = malloc(CP_CHUNK);
    if (!c.buf) {
        cli_place_close("cp", &dst);
        return cli_error("cp", "out of memory");
    }
    c.recursive = recursive;
    c.no_clobber = no_clobber;
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
