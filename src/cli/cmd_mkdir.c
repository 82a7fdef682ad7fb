/*
 * petrel mkdir [-p] LOCATION...: create directories; with -p also the missing parents, and
 * an existing directory is fine.
 */
#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"

int cmd_mkdir(int argc, char **argv)
{
    int parents = 0, n, i, status = 0;
    const struct cli_option options[] = {
        {'p', "parents", CLI_FLAG, &parents, NULL, "create missing parents; no error if it exists"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL},
    };
    const struct cli_spec spec = {"mkdir", "[-p] LOCATION...", "Create directories.", options, 1,
                                  -1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    for (i = 1; i <= n; i++) {
        struct cli_place p;
        int rc;
        if (cli_place_open("mkdir", argv[i], 0, &p)) {
            status = 1;
            continue;
        }
        rc = parents ? petrel_vfs_mkdir_parents(p.vfs, p.loc.path)
                     : petrel_vfs_mkdir(p.vfs, p.loc.path);
        if (rc < 0)
            status =
                cli_error("mkdir", "cannot create directory '%s': %s", argv[i], cli_strerror(rc));
        if (cli_place_close("mkdir", &p)) status = 1;
    }
    return status;
}
