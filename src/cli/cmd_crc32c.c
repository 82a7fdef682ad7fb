/*
 * petrel crc32c FILE...: the CRC-32C of each file as 8 hex digits and the name ("-" reads
 * standard input). Streams the file; never loads it whole.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/crc32c.h"

static int crc_stream(FILE *f, uint32_t *out)
{
    static unsigned char buf[1 << 16];
    uint32_t crc = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) crc = petrel_crc32c(crc, buf, n);
    if (ferror(f)) return -1;
    *out = crc;
    return 0;
}

int cmd_crc32c(int argc, char **argv)
{
    int i, n, status = 0;
    const struct cli_option options[] = {{0, NULL, CLI_FLAG, NULL, NULL, NULL}};
    const struct cli_spec spec = {
        "crc32c", "FILE...",
        "Print the CRC-32C (Castagnoli) of each FILE as 8 hex digits and its name;\n"
        "'-' reads standard input.",
        options, 0, -1};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    if (n < 1) return cli_error("crc32c", "no file given (usage: petrel crc32c FILE...)");
    for (i = 1; i <= n; i++) {
        uint32_t crc;
        int is_stdin = strcmp(argv[i], "-") == 0;
        FILE *f = is_stdin ? stdin : fopen(argv[i], "rb");
        if (!f) {
            status = cli_error("crc32c", "cannot open '%s': %s", argv[i], strerror(errno));
            continue;
        }
        if (crc_stream(f, &crc) < 0)
            status = cli_error("crc32c", "cannot read '%s': %s", argv[i], strerror(errno));
        else
            printf("%08x  %s\n", crc, argv[i]);
        if (!is_stdin) fclose(f);
    }
    return status;
}
