/*
 * Location parsing: turns what a user typed ("disk.img:/a", "petrel://h:7400/x", "./f") into
 * a struct petrel_vfs_location. Owns the rules that decide which kind a text names; never
 * opens a store. Paths inside a vfs come out normalized ("/" or "/a/b", no "." or "..").
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "petrel/common.h"
#include "petrel/vfs.h"

static int copy_str(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size) return -PT_ENAMETOOLONG;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

int petrel_vfs_path_normalize(char *path, size_t size)
{
    char *out = path, *in = path;
    (void)size;
    if (*in != '/') return -PT_EINVAL;
    while (*in) {
        const char *start;
        size_t len;
        while (*in == '/')
            in++;
        if (!*in) break;
        start = in;
        while (*in && *in != '/')
            in++;
        len = (size_t)(in - start);
        if (len == 1 && start[0] == '.') continue;
        if (len == 2 && start[0] == '.' && start[1] == '.') return -PT_EINVAL;
        *out++ = '/';
        memmove(out, start, len);
        out += len;
    }
    if (out == path) *out++ = '/';
    *out = '\0';
    return 0;
}

/* Whether [p, end) is "HOST:PORT" with a non-empty host and a port 1..65535. */
static int member_valid(const char *p, const char *end)
{
    const char *colon = NULL, *q;
    unsigned long port = 0;
    for (q = p; q < end; q++)
        if (*q == ':') colon = q;
    if (!colon || colon == p || colon + 1 == end || end - colon > 6) return 0;
    for (q = colon + 1; q < end; q++) {
        if (*q < '0' || *q > '9') return 0;
        port = port * 10 + (unsigned long)(*q - '0');
    }
    return port > 0 && port <= 65535;
}

/* The rest of a cluster location after host and port: the path from `slash` on ("/" when
 * empty), normalized. */
static int cluster_path(struct petrel_vfs_location *loc, const char *slash)
{
    int rc;
    loc->kind = PETREL_VFS_CLUSTER;
    loc->store[0] = '\0';
    if (*slash == '\0') {
        strcpy(loc->path, "/");
        return 0;
    }
    rc = copy_str(loc->path, sizeof(loc->path), slash, strlen(slash));
    if (rc < 0) return rc;
    return petrel_vfs_path_normalize(loc->path, sizeof(loc->path));
}

/* "petrel://H:P,H:P,H:P[/PATH]": a registry group; host holds the members, port is 0. */
static int parse_cluster_group(const char *hp, const char *slash, struct petrel_vfs_location *loc)
{
    const char *p = hp;
    unsigned members = 0;
    int rc;
    while (p < slash) {
        const char *comma = memchr(p, ',', (size_t)(slash - p));
        const char *end = comma ? comma : slash;
        if (!member_valid(p, end) || ++members > 5) return -PT_EINVAL;
        p = comma ? comma + 1 : slash;
        if (comma && p == slash) return -PT_EINVAL;
    }
    rc = copy_str(loc->host, sizeof(loc->host), hp, (size_t)(slash - hp));
    if (rc < 0) return rc;
    loc->port = 0;
    return cluster_path(loc, slash);
}

static int parse_cluster(const char *text, struct petrel_vfs_location *loc)
{
    const char *hp = text + strlen("petrel://"), *slash, *colon;
    char *end;
    unsigned long port;
    int rc;
    slash = strchr(hp, '/');
    if (!slash) slash = hp + strlen(hp);
    if (memchr(hp, ',', (size_t)(slash - hp))) return parse_cluster_group(hp, slash, loc);
    colon = memchr(hp, ':', (size_t)(slash - hp));
    if (!colon || colon == hp) return -PT_EINVAL;
    rc = copy_str(loc->host, sizeof(loc->host), hp, (size_t)(colon - hp));
    if (rc < 0) return rc;
    if (colon + 1 == slash) return -PT_EINVAL;
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (end != slash || port == 0 || port > 65535 || errno) return -PT_EINVAL;
    loc->port = (uint16_t)port;
    return cluster_path(loc, slash);
}

static int is_store_file(const char *name)
{
    struct stat st;
    return stat(name, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

static int set_image(struct petrel_vfs_location *loc, const char *image, size_t image_len,
                     const char *path)
{
    int rc = copy_str(loc->store, sizeof(loc->store), image, image_len);
    if (rc < 0) return rc;
    loc->kind = PETREL_VFS_IMAGE;
    loc->host[0] = '\0';
    loc->port = 0;
    if (path[0] == '/') {
        rc = copy_str(loc->path, sizeof(loc->path), path, strlen(path));
    } else {
        /* "disk.img:a/b" is read as "disk.img:/a/b". */
        loc->path[0] = '/';
        rc = copy_str(loc->path + 1, sizeof(loc->path) - 1, path, strlen(path));
    }
    if (rc < 0) return rc;
    return petrel_vfs_path_normalize(loc->path, sizeof(loc->path));
}

static int set_local(struct petrel_vfs_location *loc, const char *text)
{
    int rc;
    loc->kind = PETREL_VFS_LOCAL;
    loc->host[0] = '\0';
    loc->port = 0;
    if (text[0] == '/') {
        strcpy(loc->store, "/");
        rc = copy_str(loc->path, sizeof(loc->path), text, strlen(text));
    } else {
        strcpy(loc->store, ".");
        loc->path[0] = '/';
        rc = copy_str(loc->path + 1, sizeof(loc->path) - 1, text, strlen(text));
    }
    if (rc < 0) return rc;
    /* ".." is meaningful in local paths: resolve the whole thing against the real root. */
    if (strstr(loc->path, "..")) {
        char abs[PATH_MAX];
        const char *p = text[0] == '/' ? text : loc->path + 1;
        if (realpath(p, abs)) {
            strcpy(loc->store, "/");
            return copy_str(loc->path, sizeof(loc->path), abs, strlen(abs));
        }
        /* A name that does not exist yet: resolve its parent. */
        {
            char parent[PATH_MAX], *cut;
            const char *base;
            if (strlen(p) >= sizeof(parent)) return -PT_ENAMETOOLONG;
            strcpy(parent, p);
            cut = strrchr(parent, '/');
            if (!cut) return -PT_EINVAL;
            base = p + (cut - parent) + 1;
            if (cut == parent)
                strcpy(parent, "/");
            else
                *cut = '\0';
            if (!realpath(parent, abs) || strcmp(base, "..") == 0 || strcmp(base, ".") == 0)
                return -PT_ENOENT;
            strcpy(loc->store, "/");
            if (strlen(abs) + 1 + strlen(base) >= sizeof(loc->path)) return -PT_ENAMETOOLONG;
            strcpy(loc->path, abs);
            if (strcmp(abs, "/") != 0) strcat(loc->path, "/");
            strcat(loc->path, base);
        }
    }
    return petrel_vfs_path_normalize(loc->path, sizeof(loc->path));
}

int petrel_vfs_location_parse(const char *text, struct petrel_vfs_location *loc)
{
    struct stat st;
    const char *colon;
    memset(loc, 0, sizeof(*loc));
    if (!text || !*text) return -PT_EINVAL;
    if (strncmp(text, "petrel://", 9) == 0) return parse_cluster(text, loc);
    if (lstat(text, &st) == 0) return set_local(loc, text);
    /* The first ':' whose prefix is an existing image decides; else the IMAGE:/PATH form. */
    for (colon = strchr(text, ':'); colon; colon = strchr(colon + 1, ':')) {
        char image[PETREL_VFS_PATH_MAX];
        size_t len = (size_t)(colon - text);
        if (len == 0 || len >= sizeof(image)) continue;
        memcpy(image, text, len);
        image[len] = '\0';
        if (is_store_file(image)) return set_image(loc, text, len, colon + 1);
    }
    colon = strchr(text, ':');
    if (colon && colon != text && (colon[1] == '\0' || colon[1] == '/'))
        return set_image(loc, text, (size_t)(colon - text), colon + 1);
    return set_local(loc, text);
}

int petrel_vfs_store_parse(const char *text, struct petrel_vfs_location *loc)
{
    struct stat st;
    memset(loc, 0, sizeof(*loc));
    if (!text || !*text) return -PT_EINVAL;
    if (strncmp(text, "petrel://", 9) == 0) return parse_cluster(text, loc);
    if (stat(text, &st) == 0) {
        if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
            return set_image(loc, text, strlen(text), "/");
        if (S_ISDIR(st.st_mode)) {
            int rc = copy_str(loc->store, sizeof(loc->store), text, strlen(text));
            if (rc < 0) return rc;
            loc->kind = PETREL_VFS_LOCAL;
            strcpy(loc->path, "/");
            return 0;
        }
        return -PT_EINVAL;
    }
    if (strchr(text, ':')) {
        int rc = petrel_vfs_location_parse(text, loc);
        if (rc < 0) return rc;
        if (loc->kind == PETREL_VFS_IMAGE) return 0;
    }
    return -PT_ENOENT;
}
