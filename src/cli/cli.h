/*
 * The petrel command-line tool: one binary, one subcommand per user action. Each command is a
 * function in its own file (src/cli/cmd_*.c) listed in the table in main.c; every command
 * parses its arguments with the one option parser (opt.h).
 * Commands print one clear error line ("petrel CMD: what failed: why") and return non-zero.
 */
#ifndef PETREL_CLI_H
#define PETREL_CLI_H

#include <stdint.h>

#include "petrel/vfs.h"

struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

/* Print "petrel CMD: message" to stderr; returns 1 (the exit code for errors). */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- cluster secrets (secret.c; docs/CLI.md, "Secrets") ---------------------------------- */

/* The --secret FILE every command accepts (opt.c); NULL when not given. */
extern const char *cli_secret_path;

/*
 * The key a client uses for the cluster at "HOST:PORT" as typed: --secret, else the file
 * named by $PETREL_SECRET, else the per-user key file of that address when it exists
 * (cli_key_file_path), else none. Sets the process's client key (pt_auth_set_process).
 * 0, or 1 after printing the error line (a named file that cannot be loaded).
 */
int cli_client_auth(const char *cmd, const char *host, unsigned port);

/*
 * A server's keys: --secret (the cluster key: required for read_only_path) and read_only_path
 * (--read-only-secret, may be NULL). Sets the process's keys (the server's own client calls
 * use the cluster key). Without --secret, nothing is set (the server warns that the network is
 * trusted). 0, or 1 after printing the error line.
 */
int cli_server_auth(const char *cmd, const char *read_only_path);

/*
 * The per-user key file of a cluster address: $XDG_CONFIG_HOME/petrel/keys/ADDRESS, or
 * $HOME/.config/petrel/keys/ADDRESS. 0, or -1 when neither variable is set.
 */
int cli_key_file_path(const char *address, char *buf, size_t cap);

/* Whether this build has a command (the cluster servers come with the cluster parts). */
int cli_has_command(const char *name);

/* The message for a negative PT_E* code or errno value. */
const char *cli_strerror(int rc);
/* "cannot open image 'IMAGE': image format 2.0, this engine reads 3.x and 4.x" after an open
 * refused with -PT_EVERSION; returns 1 like cli_error. */
int cli_image_version_error(const char *cmd, const char *image);
/* "cannot reach cluster petrel://HOST:PORT: REASON" for a cluster that could not be opened,
 * the reason in a user's words (unknown host, nothing listening, no answer within 3 s, ...);
 * returns 1 like cli_error. */
int cli_cluster_error(const char *cmd, const char *host, unsigned port, int rc);
/* "bad location 'TEXT': REASON" for a text that did not parse as a location (a cluster
 * address missing its port or host, a port out of range); returns 1 like cli_error. */
int cli_location_error(const char *cmd, const char *text, int rc);
/* "cannot read 'SHOWN': MESSAGE" for a read of file f at off that failed with rc; a checksum
 * failure names the offset of the first bad piece: "data corrupted (checksum mismatch) at
 * offset N". Returns 1 like cli_error. */
int cli_read_error(const char *cmd, const char *shown, struct petrel_vfs *vfs,
                   struct petrel_vfs_file *f, uint64_t off, int rc);

/*
 * A place a command works on: a parsed location and the opened vfs of its store. Places on
 * the same store share one opened vfs (an image can be opened by one user at a time).
 */
struct cli_place {
    struct petrel_vfs_location loc;
    struct petrel_vfs *vfs;
    const char *text; /* what the user typed */
};

/* Parse text and open its store (flags: enum petrel_vfs_mount_flags). On failure prints
 * the error line for cmd and returns 1; 0 on success. */
int cli_place_open(const char *cmd, const char *text, int flags, struct cli_place *place);

/* Same for a whole store (mount, df, info): an existing file names an image, an existing
 * directory a local tree (petrel_vfs_store_parse). */
int cli_store_open(const char *cmd, const char *text, int flags, struct cli_place *place);

/* Release a place; the store is closed (unmounted) when its last place goes. Prints an error
 * and returns 1 when making the store durable failed; 0 otherwise. */
int cli_place_close(const char *cmd, struct cli_place *place);

/* How to show a path of a place in messages, as the user would type it ("disk.img:/a",
 * "petrel://h:7400/a", "dir/a"); rotates over a few static buffers. */
const char *cli_show(const struct cli_place *place, const char *path);

/* The entries of one directory with their stat, sorted by name (ls, cp -r, rm -r). */
struct cli_entry {
    char *name;
    struct petrel_vfs_stat st;
};
struct cli_listing {
    struct cli_entry *v;
    size_t n, cap;
};
/* Read every entry of path; on error returns it (entries read so far stay in l). Always pair
 * with cli_listing_free. */
int cli_listing_read(struct petrel_vfs *vfs, const char *path, struct cli_listing *l);
void cli_listing_free(struct cli_listing *l);

/* Progress of a long copy: prints a line on stderr only when stderr is a terminal. */
struct cli_progress {
    int enabled;
    uint64_t done, total;
    double start, last;
};
void cli_progress_start(struct cli_progress *p, uint64_t total);
void cli_progress_add(struct cli_progress *p, const char *name, uint64_t bytes);
void cli_progress_end(struct cli_progress *p);

/* Human-readable size ("8.0M") into buf. */
const char *cli_human_size(uint64_t bytes, char *buf, unsigned size);

/* Commands. */
int cmd_crc32c(int argc, char **argv);
int cmd_mkfs(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_mkdir(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_mv(int argc, char **argv);
int cmd_df(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_cluster(int argc, char **argv);
int cmd_registry(int argc, char **argv);
int cmd_blocks(int argc, char **argv);
int cmd_blocks_drain(int argc, char **argv); /* petrel blocks drain (blocks_drain.c) */
int cmd_blocks_fail(int argc, char **argv);  /* petrel blocks fail (blocks_drain.c) */
int cmd_shard(int argc, char **argv);
int cluster_status(int argc, char **argv); /* petrel cluster status (cluster_status.c) */
/* petrel cluster up|down|status FILE (cluster_deploy.c); argv[0] is "up", "down" or "status" */
int cluster_deploy(int argc, char **argv);
int cmd_cdc(int argc, char **argv);
int cmd_policy(int argc, char **argv); /* cmd_policy.c */

#endif
