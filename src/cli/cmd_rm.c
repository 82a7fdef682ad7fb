/*
 * petrel rm [-rf] LOCATION...: remove files, and with -r (-R) directories with everything in
 * them (children first). Without -r a directory is refused. Removing the root of a store is
 * refused. With -f a LOCATION that does not exist is no error (never anything else).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"

static int remove_tree(struct cli_place *p, const char *path)
{
    struct petrel_vfs_stat st;
    int rc = petrel_vfs_stat(p->vfs, path, &st);
    if (rc < 0)
        return cli_error("rm", "cannot remove '%s': %s", cli_show(p, path), cli_strerror(rc));
    if (st.type == PETREL_VFS_DIR) {
        struct cli_listing l;
        size_t i;
        int status = 0;
        rc = cli_listing_read(p->vfs, path, &l);
        if (rc < 0)
            status = cli_error("rm", "cannot list '%s': %s", cli_show(p, path), cli_strerror(rc));
        for (i = 0; i < l.n && !status; i++) {
            char child[PETREL_VFS_PATH_MAX];
            if (petrel_vfs_path_join(child, sizeof(child), path, l.v[i].name) < 0)
                status = cli_error("rm", "path too long under '%s'", cli_show(p, path));
            else
                status = remove_tree(p, child);
        }
        cli_listing_free(&l);
        if (status) return status;
    }
    rc = petrel_vfs_remove(p->vfs, path);
    if (rc == -PT_ESTALE)
        return cli_error("rm", "cannot remove '%s': someone else replaced it meanwhile (theirs "
                               "is kept)",
                         cli_show(p, path));
    if (rc < 0)
        return cli_error("rm", "cannot remove '%s': %s", cli_show(p, path), cli_strerror(rc));
    return 0;
}

int cmd_rm(int argc, char **argv)
{
    int recursive = 0, recursive2 = 0, force = 0, n, i, status = 0;
    const struct cli_option options[] = {
        {'r', "recursive", CLI_FLAG, &recursive, NULL, "remove directories and their contents"},
        {'R', NULL, CLI_FLAG, &recursive2, NULL, "same as -r"},
        {'f', "force", CLI_FLAG, &force, NULL, "a LOCATION that does not exist is no error"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL},
    };
    const struct cli_spec spec = {"rm",
                                  "[-r] [-f] LOCATION...",
                                  "Remove files (and with -r, directories and their contents).",
                                  options,
                                  1,
                                  -1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    recursive |= recursive2;
    for (i = 1; i <= n; i++) {
        struct cli_place p;
        struct petrel_vfs_stat st;
        int rc;
        if (cli_place_open("rm", argv[i], 0, &p)) {
            status = 1;
            continue;
        }
        rc = petrel_vfs_stat(p.vfs, p.loc.path, &st);
        if (rc == -PT_ENOENT && force)
            ; /* nothing to remove */
        else if (rc < 0)
            status = cli_error("rm", "cannot remove '%s': %s", argv[i], cli_strerror(rc));
        else if (strcmp(p.loc.path, "/") == 0)
            status = cli_error("rm", "refusing to remove the root of '%s'", argv[i]);
        else if (st.type == PETREL_VFS_DIR && !recursive)
            status = cli_error("rm", "cannot remove '%s': is a directory (use -r)", argv[i]);
        else if (remove_tree(&p, p.loc.path))
            status = 1;
        if (cli_place_close("rm", &p)) status = 1;
    }
    return status;
}
