/*
 * petrel stat LOCATION...: type, size, mode, modification time and extended attribute names
 * of each location. Reads only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"

static int stat_one(const char *text)
{
    struct cli_place p;
    struct petrel_vfs_stat st;
    int rc, status = 0;
    if (cli_place_open("stat", text, PETREL_VFS_MOUNT_READ_ONLY, &p)) return 1;
    rc = petrel_vfs_stat(p.vfs, p.loc.path, &st);
    if (rc < 0) {
        status = cli_error("stat", "cannot stat '%s': %s", text, cli_strerror(rc));
    } else {
        printf("  Location: %s\n", text);
        printf("      Type: %s\n", st.type == PETREL_VFS_DIR ? "directory" : "file");
        printf("      Size: %llu\n", (unsigned long long)st.size);
        printf("      Mode: %04o\n", st.mode & 07777);
        if (st.version) { /* a cluster file: which version, in how many spans */
            printf("   Version: %llu\n", (unsigned long long)st.version);
            printf("     Spans: %u\n", st.spans);
        }
        if (st.mtime_sec) {
            char when[64];
            time_t t = (time_t)st.mtime_sec;
            struct tm tm;
            localtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", &tm);
            printf("  Modified: %s\n", when);
        }
        if (p.vfs->caps & PETREL_VFS_CAP_XATTR) {
            int64_t len = petrel_vfs_listxattr(p.vfs, p.loc.path, NULL, 0);
            if (len > 0) {
                char *names = malloc((size_t)len);
                if (names &&
                    (len = petrel_vfs_listxattr(p.vfs, p.loc.path, names, (uint64_t)len)) > 0) {
                    int64_t off = 0;
                    printf("Attributes:");
                    while (off < len) {
                        printf(" %s", names + off);
                        off += (int64_t)strlen(names + off) + 1;
                    }
                    printf("\n");
                }
                free(names);
            }
        }
    }
    if (cli_place_close("stat", &p)) status = 1;
    return status;
}

int cmd_stat(int argc, char **argv)
{
    int n, i, status = 0;
    const struct cli_option options[] = {{0, NULL, CLI_FLAG, NULL, NULL, NULL}};
    const struct cli_spec spec = {"stat",
                                  "LOCATION...",
                                  "Show the type, size, mode, time and attributes of locations.",
                                  options,
                                  1,
                                  -1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    for (i = 1; i <= n; i++)
        if (stat_one(argv[i])) status = 1;
    return status;
}
