/*
 * petrel ls [-l] LOCATION...: list directories (names sorted) or name files, on any kind of
 * location. With -l: type and mode, size (a device's major, minor), modification time, name
 * (a symbolic link's "-> target"). Reads only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sysmacros.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"

static char type_char(uint8_t type)
{
    switch (type) {
    case PETREL_VFS_DIR: return 'd';
    case PETREL_VFS_LNK: return 'l';
    case PETREL_VFS_FIFO: return 'p';
    case PETREL_VFS_SOCK: return 's';
    case PETREL_VFS_CHR: return 'c';
    case PETREL_VFS_BLK: return 'b';
    default: return '-';
    }
}

/* path: where the entry is in vfs (to read a link's target). */
static void print_entry(struct petrel_vfs *vfs, const char *path, const char *name,
                        const struct petrel_vfs_stat *st, int lng)
{
    if (lng) {
        char when[32] = "-", size[32], target[PETREL_VFS_PATH_MAX] = "";
        if (st->mtime_sec) {
            time_t t = (time_t)st->mtime_sec;
            struct tm tm;
            localtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
        }
        if (st->type == PETREL_VFS_CHR || st->type == PETREL_VFS_BLK)
            snprintf(size, sizeof(size), "%u, %u", (unsigned)major((dev_t)st->rdev),
                     (unsigned)minor((dev_t)st->rdev));
        else
            snprintf(size, sizeof(size), "%llu", (unsigned long long)st->size);
        if (st->type == PETREL_VFS_LNK) {
            int64_t n = petrel_vfs_readlink(vfs, path, target, sizeof(target) - 1);
            if (n < 0) snprintf(target, sizeof(target), "(%s)", cli_strerror((int)n));
            else target[n < (int64_t)sizeof(target) - 1 ? n : (int64_t)sizeof(target) - 1] = 0;
        }
        printf("%c%04o %12s %-16s %s%s%s%s\n", type_char(st->type), st->mode & 07777, size, when,
               name, st->type == PETREL_VFS_DIR ? "/" : "", target[0] ? " -> " : "", target);
    } else {
        printf("%s%s\n", name, st->type == PETREL_VFS_DIR ? "/" : "");
    }
}

static int list_one(const char *text, int lng, int header)
{
    struct cli_place p;
    struct petrel_vfs_stat st;
    int rc, status = 0;
    if (cli_place_open("ls", text, PETREL_VFS_MOUNT_READ_ONLY, &p)) return 1;
    rc = petrel_vfs_stat(p.vfs, p.loc.path, &st);
    if (rc < 0) {
        status = cli_error("ls", "cannot access '%s': %s", text, cli_strerror(rc));
    } else if (st.type != PETREL_VFS_DIR) {
        print_entry(p.vfs, p.loc.path, text, &st, lng);
    } else {
        struct cli_listing l;
        size_t i;
        rc = cli_listing_read(p.vfs, p.loc.path, &l);
        if (rc < 0) {
            status = cli_error("ls", "cannot list '%s': %s", text, cli_strerror(rc));
        } else {
            if (header) printf("%s:\n", text);
            for (i = 0; i < l.n; i++) {
                char child[PETREL_VFS_PATH_MAX];
                if (petrel_vfs_path_join(child, sizeof(child), p.loc.path, l.v[i].name) < 0)
                    child[0] = 0;
                print_entry(p.vfs, child, l.v[i].name, &l.v[i].st, lng);
            }
        }
        cli_listing_free(&l);
    }
    if (cli_place_close("ls", &p)) status = 1;
    return status;
}

int cmd_ls(int argc, char **argv)
{
    int lng = 0, n, i, status = 0;
    const struct cli_option options[] = {
        {'l', "long", CLI_FLAG, &lng, NULL, "type, mode, size and time of each entry"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL},
    };
    const struct cli_spec spec = {
        "ls",
        "[-l] LOCATION...",
        "List directories and files. A LOCATION is IMAGE:PATH, petrel://HOST:PORT/PATH or a\n"
        "local path.",
        options,
        1,
        -1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    for (i = 1; i <= n; i++) {
        if (n > 1 && i > 1) printf("\n");
        if (list_one(argv[i], lng, n > 1)) status = 1;
    }
    return status;
}
