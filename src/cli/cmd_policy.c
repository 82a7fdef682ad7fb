/*
 * petrel policy show|set|clear petrel://HOST:PORT/DIR: a cluster directory's storage policy
 * (which files are written Reed-Solomon, with what D, P and block size, and how many copies the
 * others get). `show` prints the policy new files under DIR get and the directory it comes
 * from (the nearest ancestor that has one, or the default). Cluster locations only.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opt.h"
#include "petrel/client.h"
#include "petrel/common.h"

static int policy_client(const char *text, struct petrel_vfs_location *loc,
                         struct petrel_client **out)
{
    struct petrel_client_config cfg;
    char registry[1024];
    int rc = petrel_vfs_location_parse(text, loc);
    if (rc < 0) return cli_error("policy", "bad location '%s': %s", text, cli_strerror(rc));
    if (loc->kind != PETREL_VFS_CLUSTER)
        return cli_error("policy", "'%s' is not a cluster location (petrel://HOST:PORT/DIR)", text);
    rc = petrel_vfs_cluster_address(loc->host, loc->port, registry, sizeof(registry));
    if (rc < 0) return cli_cluster_error("policy", loc->host, loc->port, rc);
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = registry;
    rc = petrel_client_open(out, &cfg);
    if (rc < 0) return cli_error("policy", "cannot open a client: %s", cli_strerror(rc));
    return 0;
}

static void policy_print(const char *text, const struct petrel_policy *p, const char *from)
{
    char th[32], bs[32];
    printf("%s: ", text);
    if (p->data)
        printf("files >= %s: RS(%u,%u) in %s blocks; smaller: inline up to 4K, else %u %s",
               cli_human_size(p->rs_threshold, th, sizeof(th)), p->data, p->parity,
               cli_human_size(p->block_size, bs, sizeof(bs)), p->copies,
               p->copies == 1 ? "copy" : "copies");
    else
        printf("mirrored: inline up to 4K, else %u %s", p->copies,
               p->copies == 1 ? "copy" : "copies");
    printf(" (%s%s)\n", from[0] ? "set on " : "cluster default", from);
}

int cmd_policy(int argc, char **argv)
{
    const char *rs = NULL;
    uint64_t copies = 2, threshold = 4u << 20, block = 1u << 20;
    int n, rc;
    unsigned d = 0, p = 0;
    struct petrel_vfs_location loc;
    struct petrel_client *c = NULL;
    const char *action;
    const struct cli_option options[] = {
        {0, "rs", CLI_STRING, &rs, "D,P", "Reed-Solomon layout for large files (e.g. 4,2 or 10,4)"},
        {0, "copies", CLI_UINT, &copies, "N", "copies of mirrored files (default 2)"},
        {0, "threshold", CLI_SIZE, &threshold, "SIZE",
         "files of at least SIZE are written RS (default 4M)"},
        {0, "block-size", CLI_SIZE, &block, "SIZE", "RS block size (default 1M; span = D x SIZE)"},
        {0, NULL, CLI_FLAG, NULL, NULL, NULL},
    };
    const struct cli_spec spec = {
        "policy",
        "show|set|clear petrel://HOST:PORT/DIR [--rs D,P] [--copies N] "
        "[--threshold SIZE] [--block-size SIZE]",
        "Show, set or clear a cluster directory's storage policy. New files take the policy of "
        "their nearest ancestor directory that has one; without any, small files are mirrored "
        "and files of at least 4M are RS(4,2) when the cluster has 6 or more failure domains. "
        "`set` without --rs makes the directory mirrored only.",
        options,
        2,
        2};
    CLI_PARSE_OR_RETURN(&spec, argc, argv, &n);
    action = argv[1];
    if (strcmp(action, "show") != 0 && strcmp(action, "set") != 0 && strcmp(action, "clear") != 0)
        return cli_error("policy", "unknown action '%s' (show, set or clear)", action);
    if (rs) {
        char extra;
        if (sscanf(rs, "%u,%u%c", &d, &p, &extra) != 2)
            return cli_error("policy", "--rs takes D,P (e.g. 4,2), not '%s'", rs);
    }
    if (policy_client(argv[2], &loc, &c)) return 1;
    if (strcmp(action, "show") == 0) {
        struct petrel_policy got;
        char from[PETREL_VFS_PATH_MAX];
        rc = petrel_client_get_policy(c, loc.path, &got, from, sizeof(from));
        if (rc == 0) policy_print(argv[2], &got, from);
    } else if (strcmp(action, "clear") == 0) {
        rc = petrel_client_set_policy(c, loc.path, NULL);
    } else {
        struct petrel_policy pol;
        memset(&pol, 0, sizeof(pol));
        pol.copies = copies > 16 ? 0 : (unsigned)copies;
        pol.data = d;
        pol.parity = p;
        pol.rs_threshold = rs ? (threshold > UINT32_MAX ? UINT32_MAX : (uint32_t)threshold) : 0;
        pol.block_size = rs ? (block > UINT32_MAX ? 0 : (uint32_t)block) : 0;
        rc = petrel_client_set_policy(c, loc.path, &pol);
        if (rc == -PT_EINVAL) {
            petrel_client_close(c);
            return cli_error("policy",
                             "invalid policy: copies 1..16; RS D 1..16, P 1..4, D + P <= 16; "
                             "block size 4K..4M (a multiple of 4K up to 64K, of 64K above); "
                             "threshold <= 64M");
        }
    }
    petrel_client_close(c);
    if (rc < 0) return cli_error("policy", "%s '%s': %s", action, argv[2], cli_strerror(rc));
    return 0;
}
