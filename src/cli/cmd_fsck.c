/*
 * petrel fsck IMAGE: check a flash image. Exit 0 when clean; otherwise print each problem
 * (one line each, after the error line) and exit 1. Mount may finish a half-done rename, as
 * any mount does; fsck itself repairs nothing. On a terminal a progress line shows the blocks
 * checked against those in use.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"
#include "vfs/vfs_image.h"

struct problems {
    unsigned count;
};

struct check_progress {
    struct cli_progress line;
    uint64_t block_size, reported;
};

static void report(void *ctx, const char *problem)
{
    struct problems *p = ctx;
    p->count++;
    fprintf(stderr, "  %s\n", problem);
}

/* The progress line (on a terminal only): blocks checked, as bytes, against those in use. */
static void progress(void *ctx, uint64_t blocks)
{
    struct check_progress *p = ctx;
    uint64_t bytes = blocks * p->block_size;
    cli_progress_add(&p->line, "fsck", bytes - p->reported);
    p->reported = bytes;
}

int cmd_fsck(int argc, char **argv)
{
    struct cli_place p;
    struct problems found = {0};
    struct petrel_fs *fs;
    int n, rc, status = 0;
    const struct cli_option options[] = {{0, NULL, CLI_FLAG, NULL, NULL, NULL}};
    const struct cli_spec spec = {
        "fsck",
        "IMAGE",
        "Check a flash image: every metadata commit and data page CRC, the directory\n"
        "structure, the file trees and block use. Exit 0 when clean.",
        options,
        1,
        1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    if (cli_store_open("fsck", argv[1], PETREL_VFS_MOUNT_READ_ONLY, &p)) return 1;
    fs = petrel_vfs_image_fs(p.vfs);
    if (!fs) {
        cli_place_close("fsck", &p);
        return cli_error("fsck", "'%s' is not an image", argv[1]);
    }
    {
        struct check_progress prog;
        struct petrel_fs_fsinfo info;
        int64_t used = petrel_fs_usage(fs);
        memset(&prog, 0, sizeof(prog));
        prog.block_size = petrel_fs_fsinfo(fs, &info) == 0 ? info.block_size : 0;
        cli_progress_start(&prog.line, used > 0 ? (uint64_t)used * prog.block_size : 0);
        rc = petrel_fs_check_progress(fs, report, &found, progress, &prog);
        cli_progress_end(&prog.line);
    }
    if (rc == -PT_ECORRUPT || found.count)
        status = cli_error("fsck", "'%s' is damaged: %u problem%s (listed above)", argv[1],
                           found.count, found.count == 1 ? "" : "s");
    else if (rc < 0)
        status = cli_error("fsck", "cannot check '%s': %s", argv[1], cli_strerror(rc));
    else
        printf("%s: clean\n", argv[1]);
    if (cli_place_close("fsck", &p)) status = 1;
    return status;
}
