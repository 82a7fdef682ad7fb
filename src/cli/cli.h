/*
 * The petrel command-line tool: one binary, one subcommand per user action. Each command is a
 * function in its own file (src/cli/cmd_*.c) listed in the table in main.c.
 * Commands print one clear error line ("petrel CMD: what failed: why") and return non-zero.
 */
#ifndef PETREL_CLI_H
#define PETREL_CLI_H

struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

/* Print "petrel CMD: message" to stderr; returns 1 (the exit code for errors). */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Commands. */
int cmd_crc32c(int argc, char **argv);
int cmd_registry(int argc, char **argv);
int cmd_blocks(int argc, char **argv);
int cmd_shard(int argc, char **argv);
int cmd_cdc(int argc, char **argv);

#endif
