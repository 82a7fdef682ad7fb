/*
 * petrel df LOCATION...: capacity, used and free space of the stores locations are in.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"

int cmd_df(int argc, char **argv)
{
    int n, i, status = 0, human = 0;
    const struct cli_option options[] = {
        {'h', "human-readable", CLI_FLAG, &human, NULL, "sizes as 1.5K, 234.0M, 2.0G"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL}};
    const struct cli_spec spec = {
        "df",
        "[-h] LOCATION...",
        "Show the size, used and available space of the store (image, cluster or local\n"
        "filesystem) each LOCATION is in; an image may be named alone (petrel df disk.img).",
        options,
        1,
        -1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    printf("%-32s %12s %12s %12s %5s\n", "Store", "Size", "Used", "Avail", "Use%");
    for (i = 1; i <= n; i++) {
        struct cli_place p;
        struct petrel_vfs_statfs s;
        int rc;
        if (cli_store_open("df", argv[i], PETREL_VFS_MOUNT_READ_ONLY, &p)) {
            status = 1;
            continue;
        }
        rc = petrel_vfs_statfs(p.vfs, &s);
        if (rc < 0) {
            status = cli_error("df", "cannot read usage of '%s': %s", argv[i], cli_strerror(rc));
        } else {
            unsigned long long size = s.blocks_total * s.block_size;
            unsigned long long used = s.blocks_used * s.block_size;
            unsigned long long avail = size > used ? size - used : 0ULL;
            unsigned long long pct = size ? (used * 100 + size - 1) / size : 0ULL;
            if (human) {
                char a[32], b[32], c[32];
                printf("%-32s %12s %12s %12s %4llu%%\n", p.vfs->label,
                       cli_human_size(size, a, sizeof(a)), cli_human_size(used, b, sizeof(b)),
                       cli_human_size(avail, c, sizeof(c)), pct);
            } else {
                printf("%-32s %12llu %12llu %12llu %4llu%%\n", p.vfs->label, size, used, avail,
                       pct);
            }
        }
        if (cli_place_close("df", &p)) status = 1;
    }
    return status;
}
