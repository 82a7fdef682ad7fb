/*
 * petrel mv SRC... DST: rename within one store (atomic where the store makes renames
 * atomic). When DST is an existing directory the sources move into it. Moving between
 * different stores is refused with a hint (cp -r then rm -r), so a failure half-way can never
 * lose the source.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"

int cmd_mv(int argc, char **argv)
{
    int n, i, status = 0, into_dir = 0;
    struct cli_place dst;
    struct petrel_vfs_stat st;
    const struct cli_option options[] = {{0, NULL, CLI_FLAG, NULL, NULL, NULL}};
    const struct cli_spec spec = {
        "mv",
        "SRC... DST",
        "Rename or move files and directories within one image, cluster or local tree.\n"
        "With several sources, or when DST is a directory, moves into DST.",
        options,
        2,
        -1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    if (cli_place_open("mv", argv[n], 0, &dst)) return 1;
    if (petrel_vfs_stat(dst.vfs, dst.loc.path, &st) == 0 && st.type == PETREL_VFS_DIR) into_dir = 1;
    if (n > 2 && !into_dir) {
        cli_place_close("mv", &dst);
        return cli_error("mv", "target '%s' is not a directory", argv[n]);
    }
    for (i = 1; i < n; i++) {
        struct cli_place src;
        char target[PETREL_VFS_PATH_MAX];
        int rc;
        if (cli_place_open("mv", argv[i], 0, &src)) {
            status = 1;
            continue;
        }
        if (src.vfs != dst.vfs) {
            status =
                cli_error("mv", "cannot move '%s' to another store '%s' (use cp -r, then rm -r)",
                          argv[i], argv[n]);
        } else {
            snprintf(target, sizeof(target), "%s", dst.loc.path);
            if (into_dir && petrel_vfs_path_join(target, sizeof(target), dst.loc.path,
                                                 petrel_vfs_path_base(src.loc.path)) < 0)
                rc = -PT_ENAMETOOLONG;
            else
                rc = petrel_vfs_rename(src.vfs, src.loc.path, target);
            if (rc == -PT_ESTALE || (rc == -PT_EEXIST && (dst.vfs->caps & PETREL_VFS_CAP_WRITE_ONCE)))
                status = cli_error("mv", "cannot move '%s' to '%s': someone else changed one "
                                         "of them meanwhile (theirs is kept)",
                                   argv[i], cli_show(&dst, target));
            else if (rc < 0)
                status = cli_error("mv", "cannot move '%s' to '%s': %s", argv[i],
                                   cli_show(&dst, target), cli_strerror(rc));
        }
        if (cli_place_close("mv", &src)) status = 1;
    }
    if (cli_place_close("mv", &dst)) status = 1;
    return status;
}
