/*
 * Which cluster secret a command uses (see cli.h and docs/CLI.md, "Secrets"). Owns the lookup
 * order for clients (--secret, $PETREL_SECRET, the per-user key file of the address) and the
 * wording of secret errors; the file rules and the keys themselves are cluster/proto/auth.c.
 * Never prints or logs a secret's bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cluster/proto/auth.h"
#include "petrel/common.h"

int cli_key_file_path(const char *address, char *buf, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0])
        n = snprintf(buf, cap, "%s/petrel/keys/%s", xdg, address);
    else if (home && home[0])
        n = snprintf(buf, cap, "%s/.config/petrel/keys/%s", home, address);
    else
        return -1;
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

int cli_client_auth(const char *cmd, const char *host, unsigned port)
{
    struct pt_auth_key key;
    char err[512], path[4096], address[300];
    const char *file = cli_secret_path;
    int rc;
    if (!file) file = getenv("PETREL_SECRET");
    if (file && !file[0]) file = NULL;
    if (!file) {
        if (port)
            snprintf(address, sizeof(address), "%s:%u", host, port);
        else
            snprintf(address, sizeof(address), "%s", host); /* a registry group */
        if (cli_key_file_path(address, path, sizeof(path)) != 0 || access(path, F_OK) != 0) {
            pt_auth_set_process(NULL, NULL, NULL);
            return 0; /* no secret known for this cluster: try without */
        }
        file = path;
    }
    rc = pt_auth_key_load(file, &key, err, sizeof(err));
    if (rc < 0) return cli_error(cmd, "cannot use the %s", err);
    pt_auth_set_process(&key, NULL, NULL);
    sodium_memzero(&key, sizeof(key));
    return 0;
}

int cli_server_auth(const char *cmd, const char *read_only_path)
{
    struct pt_auth_key full, ro;
    char err[512];
    if (!cli_secret_path) {
        if (read_only_path)
            return cli_error(cmd, "--read-only-secret needs --secret (the cluster's own key)");
        return 0;
    }
    if (pt_auth_key_load(cli_secret_path, &full, err, sizeof(err)) < 0)
        return cli_error(cmd, "cannot use the %s", err);
    if (read_only_path && pt_auth_key_load(read_only_path, &ro, err, sizeof(err)) < 0)
        return cli_error(cmd, "cannot use the read-only %s", err);
    if (read_only_path && sodium_memcmp(full.id, ro.id, PT_AUTH_ID_BYTES) == 0)
        return cli_error(cmd, "the read-only secret is the cluster secret itself: make "
                              "another (petrel cluster init --secret FILE)");
    pt_auth_set_process(&full, &full, read_only_path ? &ro : NULL);
    sodium_memzero(&full, sizeof(full));
    sodium_memzero(&ro, sizeof(ro));
    return 0;
}
