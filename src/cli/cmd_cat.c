/*
 * petrel cat LOCATION...: stream files to standard output, in pieces (never a whole file in
 * memory). Reads only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"

#define CAT_CHUNK (1u << 20)

static int cat_one(const char *text, char *buf)
{
    struct cli_place p;
    struct petrel_vfs_file *f;
    uint64_t off = 0;
    int rc, status = 0;
    if (cli_place_open("cat", text, PETREL_VFS_MOUNT_READ_ONLY, &p)) return 1;
    rc = petrel_vfs_file_open(p.vfs, p.loc.path, PETREL_VFS_O_READ, &f);
    if (rc < 0) {
        status = cli_error("cat", "cannot open '%s': %s", text, cli_strerror(rc));
    } else {
        for (;;) {
            int64_t n = petrel_vfs_file_read(p.vfs, f, buf, CAT_CHUNK, off);
            char *q = buf;
            if (n < 0) {
                status = cli_read_error("cat", text, p.vfs, f, off, (int)n);
                break;
            }
            if (n == 0) break;
            off += (uint64_t)n;
            while (n > 0) {
                ssize_t w = write(STDOUT_FILENO, q, (size_t)n);
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) {
                    status = cli_error("cat", "cannot write output: %s", cli_strerror(errno));
                    break;
                }
                q += w;
                n -= w;
            }
            if (status) break;
        }
        petrel_vfs_file_close(p.vfs, f);
    }
    if (cli_place_close("cat", &p)) status = 1;
    return status;
}

int cmd_cat(int argc, char **argv)
{
    int n, i, status = 0;
    char *buf;
    const struct cli_option options[] = {{0, NULL, CLI_FLAG, NULL, NULL, NULL}};
    const struct cli_spec spec = {
        "cat", "LOCATION...", "Write the contents of files to standard output.", options, 1, -1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    buf = malloc(CAT_CHUNK);
    if (!buf) return cli_error("cat", "out of memory");
    for (i = 1; i <= n && !status; i++)
        if (cat_one(argv[i], buf)) status = 1;
    free(buf);
    return status;
}
