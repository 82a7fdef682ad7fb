/*
 * petrel mkfs IMAGE --size 8M [--block-size 4096] [--prog-size N] [--read-size N]: create an
 * image file (or format a block device) with an empty flash filesystem. Arguments are checked
 * before anything is written; a file this command created is removed if formatting fails. An
 * existing Petrel image or a file or device holding data is kept unless --force is given.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"
#include "petrel/fs.h"
#include "petrel/vfs.h"
#include "vfs/vfs_image.h"

static int power_of_two(uint64_t v)
{
    return v && !(v & (v - 1));
}

/*
 * What IMAGE holds before a format would destroy it: 0 when nothing worth keeping (missing,
 * empty, or only erased bytes — zeros or 0xff — in its first MiB), else 1 with a description
 * in what ("a Petrel image (format 4.0, 8.0M)", "data (3 KiB used of 8.0M)").
 */
static int mkfs_existing(const char *path, const struct stat *st, char *what, size_t size)
{
    struct petrel_vfs *vfs;
    char human[32];
    uint64_t bytes = (uint64_t)st->st_size;
    unsigned char buf[65536];
    uint64_t scanned = 0;
    int fd, rc;
    if (S_ISREG(st->st_mode) && st->st_size == 0) return 0;
    rc = petrel_vfs_image_open(path, PETREL_VFS_MOUNT_READ_ONLY, &vfs);
    if (rc == 0 || rc == -PT_EVERSION || rc == -PT_EBUSY) {
        uint32_t v = rc == -PT_EVERSION ? petrel_vfs_image_refused_version() : 0;
        if (rc == 0) petrel_vfs_close(vfs);
        if (rc == -PT_EBUSY)
            snprintf(what, size, "a Petrel image in use (mounted?)");
        else if (v)
            snprintf(what, size, "a Petrel image (format %u.%u)", (unsigned)(v >> 16),
                     (unsigned)(v & 0xffff));
        else
            snprintf(what, size, "a Petrel image (format %u.%u)",
                     (unsigned)(PETREL_FS_VERSION >> 16), (unsigned)(PETREL_FS_VERSION & 0xffff));
        return 1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0; /* the format itself reports why it cannot open it */
    if (S_ISBLK(st->st_mode)) {
        off_t end = lseek(fd, 0, SEEK_END);
        bytes = end < 0 ? 0 : (uint64_t)end;
        lseek(fd, 0, SEEK_SET);
    }
    while (scanned < (1u << 20)) {
        ssize_t n = read(fd, buf, sizeof(buf)), i;
        if (n <= 0) break;
        for (i = 0; i < n; i++)
            if (buf[i] != 0 && buf[i] != 0xff) {
                close(fd);
                snprintf(what, size, "%s of %s holding data (not a Petrel image)",
                         S_ISBLK(st->st_mode) ? "a device" : "a file",
                         cli_human_size(bytes, human, sizeof(human)));
                return 1;
            }
        scanned += (uint64_t)n;
    }
    close(fd);
    return 0;
}

int cmd_mkfs(int argc, char **argv)
{
    uint64_t size = 0, block = IMAGE_BLOCK_SIZE, prog = IMAGE_PROG_SIZE, rd = IMAGE_READ_SIZE;
    int n, rc, force = 0;
    struct stat st;
    char human[32], what[160];
    const struct cli_option options[] = {
        {'s', "size", CLI_SIZE, &size, "SIZE", "image size (8M, 1G, ...); not for block devices"},
        {'b', "block-size", CLI_SIZE, &block, "BYTES", "erase block size (default 4096)"},
        {0, "prog-size", CLI_SIZE, &prog, "BYTES", "smallest program unit (default 16)"},
        {0, "read-size", CLI_SIZE, &rd, "BYTES", "smallest read unit (default 16)"},
        {'f', "force", CLI_FLAG, &force, NULL,
         "overwrite an existing Petrel image or a file or device holding data"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL},
    };
    const struct cli_spec spec = {
        "mkfs",
        "IMAGE --size SIZE [--block-size 4096] [--prog-size N] [--read-size N] [--force]",
        "Create IMAGE as an empty Petrel flash filesystem, or format the block device IMAGE.\n"
        "An existing Petrel image, or a file or device holding data, is overwritten only\n"
        "with --force: everything on it is lost.",
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
    if (!force && stat(argv[1], &st) == 0 && mkfs_existing(argv[1], &st, what, sizeof(what)))
        return cli_error("mkfs", "'%s' is %s; use --force to overwrite it", argv[1], what);
    rc = petrel_vfs_image_format(argv[1], size, (uint32_t)block, (uint32_t)prog, (uint32_t)rd);
    if (rc == -PT_EBUSY)
        return cli_error("mkfs", "cannot format '%s': image is in use (mounted?)", argv[1]);
    if (rc < 0) return cli_error("mkfs", "cannot format '%s': %s", argv[1], cli_strerror(rc));
    printf("%s: %s flash filesystem, %llu blocks of %llu bytes\n", argv[1],
           size ? cli_human_size(size, human, sizeof(human)) : "device",
           (unsigned long long)(size / block), (unsigned long long)block);
    return 0;
}
