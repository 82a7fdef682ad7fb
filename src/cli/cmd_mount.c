/*
 * petrel mount STORE MOUNTPOINT [-f] [-o OPTIONS]: serve an image (or a cluster, or a local
 * directory) at MOUNTPOINT through FUSE. Returns once mounted (the server runs in the
 * background) unless -f; unmount with fusermount3 -u MOUNTPOINT or Ctrl-C with -f.
 */
#include <stdio.h>
#include <string.h>
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

int cmd_mount(int argc, char **argv)
{
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
         "mount options: ro, or libfuse options (comma-separated)"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL},
    };
    const struct cli_spec spec = {
        "mount",
        "IMAGE|petrel://HOST:PORT MOUNTPOINT [-f] [-o ro]",
        "Mount a flash image (read-write, the engine's semantics) or a cluster (write-once\n"
        "files: created on open, written sequentially, linked when the writer closes them)\n"
        "at MOUNTPOINT with FUSE. Unmount with 'fusermount3 -u MOUNTPOINT'.",
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
