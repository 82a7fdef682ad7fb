/*
 * The CLI option parser (see opt.h). Owns option syntax and the wording of option errors;
 * never interprets what an option means.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opt.h"

const char *cli_secret_path;

/* An option every command takes: the cluster secret for whatever cluster it reaches. */
static const struct cli_option secret_option = {
    0, "secret", CLI_STRING, &cli_secret_path, "FILE",
    "cluster secret (default: $PETREL_SECRET, then the key file\n"
    "                           'petrel cluster start' wrote for the address)"};

static int opt_end(const struct cli_option *o)
{
    return o->short_name == 0 && o->long_name == NULL;
}

int cli_parse_size(const char *text, uint64_t *out)
{
    char *end;
    unsigned long long v;
    unsigned shift = 0;
    if (!text || !isdigit((unsigned char)text[0])) return -1;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno) return -1;
    switch (toupper((unsigned char)*end)) {
    case '\0':
        break;
    case 'K':
        shift = 10;
        end++;
        break;
    case 'M':
        shift = 20;
        end++;
        break;
    case 'G':
        shift = 30;
        end++;
        break;
    case 'T':
        shift = 40;
        end++;
        break;
    case 'B':
        break;
    default:
        return -1;
    }
    if (shift && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0 || strcmp(end, "ib") == 0))
        end += strlen(end);
    else if (!shift && (strcmp(end, "B") == 0))
        end++;
    if (*end) return -1;
    if (shift && v > (~0ULL >> shift)) return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

int cli_parse_uint(const char *text, unsigned max, unsigned *out)
{
    char *end;
    unsigned long long v;
    if (!text || !isdigit((unsigned char)text[0])) return -1;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (*end || errno || v > max) return -1;
    *out = (unsigned)v;
    return 0;
}

/* A command may claim -h for itself (df -h); then only --help asks for help. */
static int opt_claims_h(const struct cli_spec *spec)
{
    const struct cli_option *o;
    for (o = spec->options; o && !(o->short_name == 0 && o->long_name == NULL); o++)
        if (o->short_name == 'h') return 1;
    return 0;
}

void cli_print_help(const struct cli_spec *spec)
{
    const struct cli_option *o;
    printf("usage: petrel %s %s\n\n%s\n", spec->name, spec->usage, spec->description);
    printf("\noptions:\n");
    for (o = spec->options; o && !opt_end(o); o++) {
        char left[64];
        int n = 0;
        if (o->short_name) n += snprintf(left + n, sizeof(left) - (size_t)n, "-%c", o->short_name);
        if (o->short_name && o->long_name) n += snprintf(left + n, sizeof(left) - (size_t)n, ", ");
        if (o->long_name) n += snprintf(left + n, sizeof(left) - (size_t)n, "--%s", o->long_name);
        if (o->kind != CLI_FLAG)
            snprintf(left + n, sizeof(left) - (size_t)n, " %s",
                     o->arg_name ? o->arg_name : "VALUE");
        printf("  %-24s %s\n", left, o->help);
    }
    printf("  %-24s %s\n", "--secret FILE", secret_option.help);
    printf("  %-24s %s\n", opt_claims_h(spec) ? "--help" : "-h, --help", "show this help");
}

static int set_value(const struct cli_spec *spec, const struct cli_option *o, const char *shown,
                     const char *value)
{
    switch (o->kind) {
    case CLI_FLAG:
        *(int *)o->value = 1;
        return 0;
    case CLI_STRING:
        *(const char **)o->value = value;
        return 0;
    case CLI_STRINGS: {
        struct cli_strings *list = o->value;
        if (list->n >= list->max) {
            cli_error(spec->name, "too many %s (at most %d)", shown, list->max);
            return -1;
        }
        list->v[list->n++] = value;
        return 0;
    }
    case CLI_SIZE:
        if (cli_parse_size(value, (uint64_t *)o->value) < 0) {
            cli_error(spec->name, "bad size '%s' for %s (use a number with K, M, G or T)", value,
                      shown);
            return -1;
        }
        return 0;
    case CLI_UINT: {
        char *end;
        unsigned long long v;
        errno = 0;
        v = strtoull(value, &end, 10);
        if (!isdigit((unsigned char)value[0]) || *end || errno) {
            cli_error(spec->name, "bad number '%s' for %s", value, shown);
            return -1;
        }
        *(uint64_t *)o->value = v;
        return 0;
    }
    }
    return -1;
}

enum cli_parse_result cli_parse(const struct cli_spec *spec, int argc, char **argv, int *nargs)
{
    int i, n = 0, only_args = 0;
    for (i = 1; i < argc; i++) {
        char *a = argv[i];
        const struct cli_option *o;
        if (only_args || a[0] != '-' || a[1] == '\0') {
            argv[1 + n++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = 1;
            continue;
        }
        if ((strcmp(a, "-h") == 0 && !opt_claims_h(spec)) || strcmp(a, "--help") == 0) {
            cli_print_help(spec);
            return CLI_PARSE_HELP;
        }
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            for (o = spec->options; o && !opt_end(o); o++)
                if (o->long_name && strlen(o->long_name) == len &&
                    strncmp(o->long_name, name, len) == 0)
                    break;
            if ((!o || opt_end(o)) && len == 6 && strncmp(name, "secret", 6) == 0)
                o = &secret_option;
            if (!o || opt_end(o)) {
                cli_error(spec->name, "unknown option '%.*s' (petrel %s --help lists them)",
                          (int)(len + 2), a, spec->name);
                return CLI_PARSE_ERROR;
            }
            if (o->kind == CLI_FLAG) {
                if (eq) {
                    cli_error(spec->name, "option '--%s' takes no value", o->long_name);
                    return CLI_PARSE_ERROR;
                }
                *(int *)o->value = 1;
                continue;
            }
            if (!eq && i + 1 >= argc) {
                cli_error(spec->name, "option '--%s' needs a value", o->long_name);
                return CLI_PARSE_ERROR;
            }
            if (set_value(spec, o, a, eq ? eq + 1 : argv[++i]) < 0) return CLI_PARSE_ERROR;
            continue;
        }
        /* Short options, possibly combined: -rf, -o ro, -oro. */
        for (a++; *a; a++) {
            for (o = spec->options; o && !opt_end(o); o++)
                if (o->short_name == *a) break;
            if (!o || opt_end(o)) {
                cli_error(spec->name, "unknown option '-%c' (petrel %s --help lists them)", *a,
                          spec->name);
                return CLI_PARSE_ERROR;
            }
            if (o->kind == CLI_FLAG) {
                *(int *)o->value = 1;
                continue;
            }
            {
                char shown[3] = {'-', *a, '\0'};
                const char *value = a[1] ? a + 1 : (i + 1 < argc ? argv[++i] : NULL);
                if (!value) {
                    cli_error(spec->name, "option '%s' needs a value", shown);
                    return CLI_PARSE_ERROR;
                }
                if (set_value(spec, o, shown, value) < 0) return CLI_PARSE_ERROR;
            }
            break;
        }
    }
    if (n < spec->min_args) {
        cli_error(spec->name, "missing argument (usage: petrel %s %s)", spec->name, spec->usage);
        return CLI_PARSE_ERROR;
    }
    if (spec->max_args >= 0 && n > spec->max_args) {
        cli_error(spec->name, "too many arguments (usage: petrel %s %s)", spec->name, spec->usage);
        return CLI_PARSE_ERROR;
    }
    *nargs = n;
    return CLI_PARSE_OK;
}
