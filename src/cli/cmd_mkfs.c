/*
 * petrel mkfs IMAGE --size 8M [--block-size 4096] [--prog-size N] [--read-size N]: create an
 * image file (or format a block device) with an empty flash filesystem. Arguments are checked
 * before anything is written; a file this command created is removed if formatting fails.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"
#include "vfs/vfs_image.h"

static int power_of_two(uint64_t v)
{
    return v && !(v & (v - 1));
}

int cmd_mkfs(int argc, char **argv)
{
    uint64_t size = 0, block = IMAGE_BLOCK_SIZE, prog = IMAGE_PROG_SIZE, rd = IMAGE_READ_SIZE;
    int n, rc;
    struct stat st;
    char human[32];
    const struct cli_option options[] = {
        {'s', "size", CLI_SIZE, &size, "SIZE", "image size (8M, 1G, ...); not for block devices"},
        {'b', "block-size", CLI_SIZE, &block, "BYTES", "erase block size (default 4096)"},
        {0, "prog-size", CLI_SIZE, &prog, "BYTES", "smallest program unit (default 16)"},
        {0, "read-size", CLI_SIZE, &rd, "BYTES", "smallest read unit (default 16)"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL},
    };
    const struct cli_spec spec = {
        "mkfs",
        "IMAGE --size SIZE [--block-size 4096] [--prog-size N] [--read-size N]",
        "Create IMAGE (or overwrite it) as an empty Petrel flash filesystem, or format the\n"
        "block device IMAGE. Everything on it is lost.",
        options,
        1,
        1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    if (stat(argv[1], &st) == 0 && S_ISDIR(st.st_mode))
        return cli_error("mkfs", "'%s' is a directory", argv[1]);
    if (!(stat(argv[1], &st) == 0 && S_ISBLK(st.st_mode)) && size == 0)
        return cli_error("mkfs", "no size given (use --size, for example --size 8M)");
    if (!power_of_two(block) || block < 128 || block > (1u << 20))
        return cli_error("mkfs", "bad block size %llu: a power of two from 128 to 1M",
                         (unsigned long long)block);
    if (!power_of_two(prog) || prog > block || !power_of_two(rd) || rd > block)
        return cli_error("mkfs", "bad program or read size: powers of two, at most the block size");
    if (size && size % block)
        return cli_error("mkfs", "size %llu is not a multiple of the block size %llu",
                         (unsigned long long)size, (unsigned long long)block);
    if (size && size / block < 4)
        return cli_error("mkfs", "size %llu is too small: at least 4 blocks",
                         (unsigned long long)size);
    if (size / block > UINT32_MAX) return cli_error("mkfs", "size too large for the block size");
    rc = petrel_vfs_image_format(argv[1], size, (uint32_t)block, (uint32_t)prog, (uint32_t)rd);
    if (rc == -PT_EBUSY)
        return cli_error("mkfs", "cannot format '%s': image is in use (mounted?)", argv[1]);
    if (rc < 0) return cli_error("mkfs", "cannot format '%s': %s", argv[1], cli_strerror(rc));
    printf("%s: %s flash filesystem, %llu blocks of %llu bytes\n", argv[1],
           size ? cli_human_size(size, human, sizeof(human)) : "device",
           (unsigned long long)(size / block), (unsigned long long)block);
    return 0;
}
