/*
 * Directory listings for commands that walk trees (ls, cp -r, rm -r): every entry of one
 * directory with its stat, sorted by name, in memory owned by the listing. The one place the
 * CLI collects entries, so each command shows and visits them in the same order.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "petrel/common.h"

static int listing_add(void *ctx, const char *name, const struct petrel_vfs_stat *st)
{
    struct cli_listing *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct cli_entry *v = realloc(l->v, cap * sizeof(*v));
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

static int listing_by_name(const void *a, const void *b)
{
    return strcmp(((const struct cli_entry *)a)->name, ((const struct cli_entry *)b)->name);
}

int cli_listing_read(struct petrel_vfs *vfs, const char *path, struct cli_listing *l)
{
    int rc;
    memset(l, 0, sizeof(*l));
    rc = petrel_vfs_readdir(vfs, path, listing_add, l);
    if (l->n) qsort(l->v, l->n, sizeof(*l->v), listing_by_name);
    return rc < 0 ? rc : 0;
}

void cli_listing_free(struct cli_listing *l)
{
    size_t i;
    for (i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    memset(l, 0, sizeof(*l));
}
