/*
 * petrel mount STORE MOUNTPOINT [-f] [-o OPTIONS]: serve an image (or a cluster, or a local
 * directory) at MOUNTPOINT through FUSE. Returns once mounted (the server runs in the
 * background) unless -f; unmount with fusermount3 -u MOUNTPOINT or Ctrl-C with -f.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "fuse/mount.h"
#include "petrel/common.h"

/* A mount in the background has no terminal: what its server logs goes to syslog. */
static void log_syslog(void *ctx, enum petrel_log_level level, const char *module,
                       const char *message)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    (void)ctx;
    syslog(prio[level <= PT_LOG_DEBUG ? level : PT_LOG_DEBUG], "%s: %s", module, message);
}

/* The staging directory of a cluster mount (-o cache=DIR): made if missing (its parent must
 * exist), a file can be made in it; its absolute path (the server runs from "/") into out. */
static int cache_dir_ready(const char *dir, char *out)
{
    char probe[PATH_MAX + 32];
    int fd;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return cli_error("mount", "cache directory '%s': %s", dir, strerror(errno));
    if (!realpath(dir, out))
        return cli_error("mount", "cache directory '%s': %s", dir, strerror(errno));
    snprintf(probe, sizeof(probe), "%s/probe.XXXXXX", out);
    if ((fd = mkstemp(probe)) < 0)
        return cli_error("mount", "cache directory '%s': %s", dir, strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}

int cmd_mount(int argc, char **argv)
{
    const char *cache_dir = NULL;
    char cache_abs[PATH_MAX];
    uint64_t cache_size = 0;
    int foreground = 0, n, rc, kernel_checks = 1;
    const char *opts = NULL;
    char rest[1024] = "";
    struct petrel_mount_options mo;
    struct petrel_vfs_location loc;
    enum petrel_mount_stage stage = PETREL_MOUNT_STAGE_OPEN;
    const struct cli_option options[] = {
        {'f', "foreground", CLI_FLAG, &foreground, NULL,
         "stay in the foreground (Ctrl-C unmounts)"},
        {'o', "options", CLI_STRING, &opts, "OPTS",
         "mount options: ro, cache=DIR, cache_size=N (cluster), or libfuse options "
         "(comma-separated)"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL},
    };
    const struct cli_spec spec = {
        "mount",
        "IMAGE|petrel://HOST:PORT MOUNTPOINT [-f] [-o ro,cache=DIR,cache_size=N]",
        "Mount a flash image (read-write, the engine's semantics) or a cluster (new files\n"
        "are written sequentially and linked when the writer closes them; a file opened for\n"
        "writing changes through a new version, committed at fsync and close) at MOUNTPOINT\n"
        "with FUSE. A cluster mount stages the writes of a change in cache=DIR (default\n"
        "$XDG_CACHE_HOME/petrel, else ~/.cache/petrel), at most cache_size=N bytes per open\n"
        "file (K, M, G; default 64M) before it uploads them as new spans.\n"
        "Unmount with 'fusermount3 -u MOUNTPOINT'.",
        options,
        2,
        2};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    memset(&mo, 0, sizeof(mo));
    mo.foreground = foreground;
    /* "ro" and "nodefault_permissions" are ours (the store opens read-only too; no kernel
     * permission checks even as root); the rest goes to libfuse. */
    if (opts) {
        char buf[1024], *tok, *save = NULL;
        if (strlen(opts) >= sizeof(buf)) return cli_error("mount", "options too long");
        strcpy(buf, opts);
        for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (strcmp(tok, "ro") == 0) {
                mo.read_only = 1;
            } else if (strcmp(tok, "nodefault_permissions") == 0) {
                kernel_checks = 0;
            } else if (strncmp(tok, "cache=", 6) == 0) {
                cache_dir = opts + (tok - buf) + 6; /* in opts: buf is reused below */
                if (!tok[6]) return cli_error("mount", "cache= needs a directory");
            } else if (strncmp(tok, "cache_size=", 11) == 0) {
                if (cli_parse_size(tok + 11, &cache_size) < 0 || cache_size == 0)
                    return cli_error("mount", "bad cache_size '%s' (a size: N, NK, NM, NG)",
                                     tok + 11);
            } else if (strcmp(tok, "rw") != 0) {
                if (rest[0]) strcat(rest, ",");
                strcat(rest, tok);
            }
        }
    }
    /* As root the kernel checks permissions against the stored modes and owners (the
     * store does not) unless asked not to. */
    if (geteuid() == 0 && kernel_checks && !strstr(rest, "default_permissions") &&
        strlen(rest) + sizeof(",default_permissions") < sizeof(rest)) {
        if (rest[0]) strcat(rest, ",");
        strcat(rest, "default_permissions");
    }
    if (rest[0]) mo.fuse_opts = rest;
    rc = petrel_vfs_store_parse(argv[1], &loc);
    if (rc < 0 && rc != -PT_ENOENT) return cli_location_error("mount", argv[1], rc);
    if (rc < 0) return cli_error("mount", "cannot open '%s': %s", argv[1], cli_strerror(rc));
    if (loc.kind == PETREL_VFS_IMAGE && strcmp(loc.path, "/") != 0)
        return cli_error("mount", "mount a whole image ('%s'), not a path in it", loc.store);
    if (loc.kind == PETREL_VFS_CLUSTER && strcmp(loc.path, "/") != 0)
        return cli_error("mount", "mount a whole cluster (petrel://%s:%u), not a path in it",
                         loc.host, loc.port);
    if ((cache_dir || cache_size) && loc.kind != PETREL_VFS_CLUSTER)
        return cli_error("mount", "cache= and cache_size= are options of a cluster mount");
    if (cache_dir) {
        char dir[PATH_MAX];
        size_t dl = strcspn(cache_dir, ",");
        if (dl >= sizeof(dir)) return cli_error("mount", "cache directory name too long");
        memcpy(dir, cache_dir, dl);
        dir[dl] = 0;
        if (cache_dir_ready(dir, cache_abs)) return 1;
        if (strlen(cache_abs) >= sizeof(loc.cache_dir))
            return cli_error("mount", "cache directory name too long");
        strcpy(loc.cache_dir, cache_abs);
    }
    loc.cache_size = cache_size;
    if (loc.kind == PETREL_VFS_CLUSTER && cli_client_auth("mount", loc.host, loc.port)) return 1;
    fflush(stdout);
    /* What the server logs (a link that failed at release) goes to stderr in the
     * foreground, to syslog in the background. */
    if (foreground) {
        petrel_log_set(petrel_log_stderr, NULL, PT_LOG_WARN);
    } else {
        openlog("petrel-mount", LOG_PID, LOG_DAEMON);
        petrel_log_set(log_syslog, NULL, PT_LOG_WARN);
    }
    rc = petrel_fuse_mount(&loc, argv[2], &mo, &stage);
    if (rc < 0) {
        switch (stage) {
        case PETREL_MOUNT_STAGE_OPEN:
            if (rc == -PT_EBUSY)
                return cli_error("mount",
                                 "cannot open '%s': in use by another process "
                                 "(mounted already?)",
                                 argv[1]);
            if (rc == -PT_EVERSION && loc.kind == PETREL_VFS_IMAGE)
                return cli_image_version_error("mount", argv[1]);
            if (rc == -PT_ECORRUPT && loc.kind == PETREL_VFS_IMAGE)
                return cli_error("mount",
                                 "cannot open '%s': not a Petrel image, or damaged "
                                 "beyond mounting",
                                 argv[1]);
            if (loc.kind == PETREL_VFS_CLUSTER)
                return cli_cluster_error("mount", loc.host, loc.port, rc);
            return cli_error("mount", "cannot open '%s': %s", argv[1], cli_strerror(rc));
        case PETREL_MOUNT_STAGE_FUSE:
            return cli_error("mount", "bad mount options '%s'", opts ? opts : "");
        case PETREL_MOUNT_STAGE_MOUNT:
            return cli_error("mount", "cannot mount at '%s' (does it exist? is FUSE available?)",
                             argv[2]);
        case PETREL_MOUNT_STAGE_CLOSE:
            return cli_error("mount", "unmounting '%s' failed: %s", argv[1], cli_strerror(rc));
        }
    }
    return 0;
}
