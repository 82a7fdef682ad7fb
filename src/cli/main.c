/*
 * petrel: dispatch to a subcommand. Owns the command table and the common error format;
 * commands own their options (through the one option parser, opt.h) and output.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define PETREL_VERSION "0.1.0"

static const struct cli_command commands[] = {
    {"mkfs", "create a flash image (or format a block device)", cmd_mkfs},
    {"ls", "list directories", cmd_ls},
    {"stat", "show a file's or directory's details", cmd_stat},
    {"cat", "write files to standard output", cmd_cat},
    {"cp", "copy files and trees between locations of any kind", cmd_cp},
    {"mkdir", "create directories", cmd_mkdir},
    {"rm", "remove files and trees", cmd_rm},
    {"mv", "rename or move within a store", cmd_mv},
    {"df", "show capacity and usage of a store", cmd_df},
    {"fsck", "check a flash image", cmd_fsck},
    {"info", "show a flash image's geometry, usage and wear", cmd_info},
    {"mount", "mount an image or a cluster with FUSE", cmd_mount},
    {"cluster", "start a local cluster, or show a cluster's status", cmd_cluster},
    {"policy", "show or set a cluster directory's storage policy (mirrored, Reed-Solomon)",
     cmd_policy},
    {"crc32c", "print the CRC-32C of files", cmd_crc32c},
    {"registry", "run the cluster registry server", cmd_registry},
    {"blocks", "run block services, one per disk directory", cmd_blocks},
    {"shard", "run one replica of a metadata shard", cmd_shard},
    {"cdc", "run one replica of the cross-directory coordinator", cmd_cdc},
};

int cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "petrel %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_has_command(const char *name)
{
    size_t i;
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0) return 1;
    return 0;
}

static void usage(FILE *out)
{
    size_t i;
    fprintf(out, "usage: petrel COMMAND [ARGS...]   (petrel COMMAND --help for details)\n\n");
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nA LOCATION is IMAGE:PATH (a flash image), petrel://HOST:PORT/PATH (a cluster)\n"
                 "or a local path.\n");
}

int main(int argc, char **argv)
{
    size_t i;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("petrel %s\n", PETREL_VERSION);
        return 0;
    }
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "petrel: unknown command '%s' (petrel --help lists them)\n", argv[1]);
    return 2;
}
