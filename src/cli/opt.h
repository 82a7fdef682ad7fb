/*
 * The one option parser of the petrel CLI. A command describes its options and positional
 * arguments in a struct cli_spec; cli_parse handles --help, long and short options (also
 * "--name=value" and combined short flags "-rf"), "--" and option/argument interleaving, and
 * prints the one error line for anything wrong. Commands never parse argv themselves.
 */
#ifndef PETREL_CLI_OPT_H
#define PETREL_CLI_OPT_H

#include <stdint.h>

enum cli_opt_kind {
    CLI_FLAG,   /* int *: set to 1 */
    CLI_STRING, /* const char **: the value */
    CLI_SIZE,   /* uint64_t *: bytes, with K/M/G/T suffixes (binary) */
    CLI_UINT,   /* uint64_t *: a decimal number */
    CLI_STRINGS, /* struct cli_strings *: every value, in order (a repeatable option) */
};

/* The values of a repeatable option (CLI_STRINGS): caller-provided room for max values. */
struct cli_strings {
    const char **v;
    int n, max;
};

struct cli_option {
    char short_name;       /* 0 = none */
    const char *long_name; /* NULL = none */
    enum cli_opt_kind kind;
    void *value;
    const char *arg_name; /* shown in help for options with a value */
    const char *help;
};

struct cli_spec {
    const char *name;                 /* "cp" (or "cluster start") */
    const char *usage;                /* "[-r] SRC... DST" */
    const char *description;          /* a paragraph for --help */
    const struct cli_option *options; /* ends with an entry whose kind is CLI_FLAG and
                                         short_name 0 and long_name NULL */
    int min_args;
    int max_args; /* -1 = no limit */
};

enum cli_parse_result { CLI_PARSE_OK = 0, CLI_PARSE_HELP = 1, CLI_PARSE_ERROR = 2 };

/*
 * Parse argv[1..argc-1] (argv[0] is the command name). Positional arguments are moved to
 * the front of argv + 1 in order and counted in *nargs (so they are argv[1..*nargs]).
 * Returns CLI_PARSE_OK, CLI_PARSE_HELP (help printed on stdout: exit 0) or CLI_PARSE_ERROR
 * (error line printed: exit 2).
 */
enum cli_parse_result cli_parse(const struct cli_spec *spec, int argc, char **argv, int *nargs);

/* Parse a size ("8M", "4096", "1G", "64KiB"); 0 or -1 when malformed or overflowing. */
int cli_parse_size(const char *text, uint64_t *out);

/* Parse a decimal number no larger than max (digits only); 0, or -1 when malformed or too
 * large. For options read as text whose checks need the number's bounds. */
int cli_parse_uint(const char *text, unsigned max, unsigned *out);

/* Print a spec's help text. */
void cli_print_help(const struct cli_spec *spec);

/* Parse and return from the command on help or error (the common prologue). */
#define CLI_PARSE_OR_RETURN(spec, argc, argv, nargs)                                               \
    do {                                                                                           \
        enum cli_parse_result cli_r_ = cli_parse((spec), (argc), (argv), (nargs));                 \
        if (cli_r_ == CLI_PARSE_HELP) return 0;                                                    \
        if (cli_r_ == CLI_PARSE_ERROR) return 2;                                                   \
    } while (0)

#endif
