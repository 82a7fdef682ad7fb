/*
 * petrel ls [-l] LOCATION...: list directories (names sorted) or name files, on any kind of
 * location. With -l: type and mode, size, modification time, name. Reads only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/common.h"

struct entry {
    char *name;
    struct petrel_vfs_stat st;
};

struct listing {
    struct entry *v;
    size_t n, cap;
};

static int collect(void *ctx, const char *name, const struct petrel_vfs_stat *st)
{
    struct listing *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct entry *v = realloc(l->v, cap * sizeof(*v));
        if (!v) return -PT_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].name = strdup(name);
    if (!l->v[l->n].name) return -PT_ENOMEM;
    l->v[l->n].st = *st;
    l->n++;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static void print_entry(const char *name, const struct petrel_vfs_stat *st, int lng)
{
    if (lng) {
        char when[32] = "-";
        if (st->mtime_sec) {
            time_t t = (time_t)st->mtime_sec;
            struct tm tm;
            localtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
        }
        printf("%c%04o %12llu %-16s %s%s\n", st->type == PETREL_VFS_DIR ? 'd' : '-',
               st->mode & 07777, (unsigned long long)st->size, when, name,
               st->type == PETREL_VFS_DIR ? "/" : "");
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
        print_entry(text, &st, lng);
    } else {
        struct listing l = {0};
        size_t i;
        rc = petrel_vfs_readdir(p.vfs, p.loc.path, collect, &l);
        if (rc < 0) {
            status = cli_error("ls", "cannot list '%s': %s", text, cli_strerror(rc));
        } else {
            if (l.n) qsort(l.v, l.n, sizeof(*l.v), by_name);
            if (header) printf("%s:\n", text);
            for (i = 0; i < l.n; i++)
                print_entry(l.v[i].name, &l.v[i].st, lng);
        }
        for (i = 0; i < l.n; i++)
            free(l.v[i].name);
        free(l.v);
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
