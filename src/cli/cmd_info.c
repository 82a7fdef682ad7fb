/*
 * petrel info IMAGE: the geometry, format and usage of a flash image. Wear (erase counts) is
 * not recorded in the image format, so it is reported as unknown rather than guessed.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"
#include "vfs/vfs_image.h"

int cmd_info(int argc, char **argv)
{
    struct cli_place p;
    struct petrel_fs *fs;
    struct petrel_fs_fsinfo fi;
    int64_t used;
    int n, rc, status = 0;
    char a[32], b[32];
    const struct cli_option options[] = {{0, NULL, CLI_FLAG, NULL, NULL, NULL}};
    const struct cli_spec spec = {
        "info", "IMAGE", "Show a flash image's format, geometry, limits and usage.", options, 1, 1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    if (cli_store_open("info", argv[1], PETREL_VFS_MOUNT_READ_ONLY, &p)) return 1;
    fs = petrel_vfs_image_fs(p.vfs);
    if (!fs) {
        cli_place_close("info", &p);
        return cli_error("info", "'%s' is not an image", argv[1]);
    }
    rc = petrel_fs_fsinfo(fs, &fi);
    used = rc < 0 ? rc : petrel_fs_usage(fs);
    if (rc < 0 || used < 0) {
        status = cli_error("info", "cannot read '%s': %s", argv[1],
                           cli_strerror(rc < 0 ? rc : (int)used));
    } else {
        uint64_t total = (uint64_t)fi.block_count * fi.block_size;
        printf("image:        %s\n", argv[1]);
        printf("format:       petrel flash %u.%u\n", fi.version >> 16, fi.version & 0xffff);
        printf("size:         %s (%llu bytes)\n", cli_human_size(total, a, sizeof(a)),
               (unsigned long long)total);
        printf("blocks:       %u of %u bytes\n", fi.block_count, fi.block_size);
        printf("page size:    %u (data + 4-byte CRC)\n", fi.page_size);
        printf("inline max:   %u\n", fi.inline_max);
        printf("name max:     %u\n", fi.name_max);
        printf("file max:     %llu\n", (unsigned long long)fi.file_max);
        printf("attr max:     %u\n", fi.attr_max);
        printf("used:         %lld blocks (%s), %u%%\n", (long long)used,
               cli_human_size((uint64_t)used * fi.block_size, b, sizeof(b)),
               fi.block_count ? (unsigned)((uint64_t)used * 100 / fi.block_count) : 0);
        printf("free:         %lld blocks\n", (long long)fi.block_count - (long long)used);
        printf("wear:         unknown (an image does not record erase counts)\n");
    }
    if (cli_place_close("info", &p)) status = 1;
    return status;
}
