/*
 * Places: the link between what a user typed and an opened vfs. Owns the sharing of one
 * opened store between several arguments of one command (cp a.img:/x a.img:/y opens the image
 * once) and the wording of "cannot open" errors. Never keeps a store open past the command.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "petrel/common.h"
#include "petrel/fs.h"

struct open_store {
    struct petrel_vfs *vfs;
    enum petrel_vfs_kind kind;
    char store[PETREL_VFS_PATH_MAX];
    char host[PETREL_VFS_HOST_MAX];
    uint16_t port;
    int users;
};

static struct open_store stores[8];

const char *cli_strerror(int rc)
{
    int e = rc < 0 ? -rc : rc;
    /* PT_ECORRUPT shares EILSEQ's number, whose C library text is about wide characters */
    if (e == PT_ECORRUPT) return "data corrupted (checksum mismatch)";
    if (e >= PT_EPETREL_BASE) return petrel_strerror(e);
    return strerror(e);
}

int cli_image_version_error(const char *cmd, const char *image)
{
    uint32_t v = petrel_vfs_image_refused_version();
    return cli_error(cmd,
                     "cannot open image '%s': image format %u.%u, this engine reads 3.x and %u.x",
                     image, (unsigned)(v >> 16), (unsigned)(v & 0xffff),
                     (unsigned)(PETREL_FS_VERSION >> 16));
}

/* Pieces a corrupt read is narrowed down to: the smallest data page an image can have. */
#define CORRUPT_STEP 512u
#define CORRUPT_SCAN (64u << 20)

int cli_read_error(const char *cmd, const char *shown, struct petrel_vfs *vfs,
                   struct petrel_vfs_file *f, uint64_t off, int rc)
{
    char piece[CORRUPT_STEP];
    uint64_t at;
    if (rc != -PT_ECORRUPT) return cli_error(cmd, "cannot read '%s': %s", shown, cli_strerror(rc));
    /* the failed read started at off: the first piece from there that fails is the bad one */
    for (at = off - off % CORRUPT_STEP; at < off + CORRUPT_SCAN; at += CORRUPT_STEP) {
        int64_t n = petrel_vfs_file_read(vfs, f, piece, CORRUPT_STEP, at);
        if (n == 0) break;
        if (n == -PT_ECORRUPT)
            return cli_error(cmd, "cannot read '%s': data corrupted (checksum mismatch) at offset %llu",
                             shown, (unsigned long long)(at > off ? at : off));
        if (n < 0) break;
    }
    return cli_error(cmd, "cannot read '%s': data corrupted (checksum mismatch) at offset %llu",
                     shown, (unsigned long long)off);
}

int cli_cluster_error(const char *cmd, const char *host, unsigned port, int rc)
{
    const char *why;
    if (!port) {
        /* a registry group: its members, as given */
        return cli_error(cmd, "cannot reach cluster petrel://%s: %s", host, cli_strerror(rc));
    }
    switch (rc < 0 ? -rc : rc) {
    case PT_ENOHOST:
        return cli_error(cmd, "cannot reach cluster petrel://%s:%u: unknown host '%s'", host,
                         port, host);
    case PT_ECONNREFUSED:
        why = "connection refused (nothing listens on that port: is the registry running?)";
        break;
    case PT_ETIMEDOUT:
        why = "no answer within 3 s (wrong address, or a firewall in the way?)";
        break;
    case PT_EHOSTUNREACH:
        why = "host unreachable (no route to it)";
        break;
    case PT_EPROTO:
    case PT_EBADMSG:
    case PT_ECONNRESET:
        why = "what answers there is not a Petrel registry";
        break;
    case PT_EACCES:
        why = "authentication refused (no secret, or not this cluster's: --secret FILE or "
              "PETREL_SECRET)";
        break;
    default:
        why = cli_strerror(rc);
        break;
    }
    return cli_error(cmd, "cannot reach cluster petrel://%s:%u: %s", host, port, why);
}

int cli_location_error(const char *cmd, const char *text, int rc)
{
    const char *hp, *slash, *colon;
    if (strncmp(text, "petrel://", 9) == 0) {
        hp = text + 9;
        slash = strchr(hp, '/');
        if (!slash) slash = hp + strlen(hp);
        colon = memchr(hp, ':', (size_t)(slash - hp));
        if (hp == slash || colon == hp)
            return cli_error(cmd, "bad location '%s': no host (write petrel://HOST:PORT/PATH)",
                             text);
        if (!colon || colon + 1 == slash)
            return cli_error(cmd, "bad location '%s': no port (write petrel://HOST:PORT/PATH)",
                             text);
        if (rc == -PT_EINVAL)
            return cli_error(cmd, "bad location '%s': bad port '%.*s' (a number, 1-65535)", text,
                             (int)(slash - colon - 1), colon + 1);
    }
    return cli_error(cmd, "bad location '%s': %s", text, cli_strerror(rc));
}

static int same_store(const struct open_store *s, const struct petrel_vfs_location *loc)
{
    return s->vfs && s->kind == loc->kind && strcmp(s->store, loc->store) == 0 &&
           strcmp(s->host, loc->host) == 0 && s->port == loc->port;
}

static int place_open(const char *cmd, const char *text, int flags, struct cli_place *place,
                      int whole_store)
{
    size_t i;
    int rc;
    struct open_store *free_slot = NULL;
    memset(place, 0, sizeof(*place));
    place->text = text;
    rc = whole_store ? petrel_vfs_store_parse(text, &place->loc)
                     : petrel_vfs_location_parse(text, &place->loc);
    if (rc == -PT_ENOENT) return cli_error(cmd, "cannot open '%s': %s", text, cli_strerror(rc));
    if (rc < 0) return cli_location_error(cmd, text, rc);
    for (i = 0; i < PT_ARRAY_SIZE(stores); i++) {
        if (same_store(&stores[i], &place->loc)) {
            stores[i].users++;
            place->vfs = stores[i].vfs;
            return 0;
        }
        if (!stores[i].vfs && !free_slot) free_slot = &stores[i];
    }
    if (!free_slot) return cli_error(cmd, "too many stores in one command");
    if (place->loc.kind == PETREL_VFS_CLUSTER &&
        cli_client_auth(cmd, place->loc.host, place->loc.port))
        return 1;
    rc = petrel_vfs_open(&place->loc, flags, &place->vfs);
    if (rc < 0) {
        if (place->loc.kind == PETREL_VFS_IMAGE && rc == -PT_EBUSY)
            return cli_error(cmd, "cannot open image '%s': in use by another process (mounted?)",
                             place->loc.store);
        if (place->loc.kind == PETREL_VFS_IMAGE && rc == -PT_ECORRUPT)
            return cli_error(cmd,
                             "cannot open image '%s': not a Petrel image, or damaged "
                             "beyond mounting",
                             place->loc.store);
        if (place->loc.kind == PETREL_VFS_IMAGE && rc == -PT_EVERSION)
            return cli_image_version_error(cmd, place->loc.store);
        if (place->loc.kind == PETREL_VFS_IMAGE)
            return cli_error(cmd, "cannot open image '%s': %s", place->loc.store, cli_strerror(rc));
        if (place->loc.kind == PETREL_VFS_CLUSTER)
            return cli_cluster_error(cmd, place->loc.host, place->loc.port, rc);
        return cli_error(cmd, "cannot open '%s': %s", place->loc.store, cli_strerror(rc));
    }
    free_slot->vfs = place->vfs;
    free_slot->kind = place->loc.kind;
    snprintf(free_slot->store, sizeof(free_slot->store), "%s", place->loc.store);
    snprintf(free_slot->host, sizeof(free_slot->host), "%s", place->loc.host);
    free_slot->port = place->loc.port;
    free_slot->users = 1;
    return 0;
}

int cli_place_open(const char *cmd, const char *text, int flags, struct cli_place *place)
{
    return place_open(cmd, text, flags, place, 0);
}

int cli_store_open(const char *cmd, const char *text, int flags, struct cli_place *place)
{
    return place_open(cmd, text, flags, place, 1);
}

int cli_place_close(const char *cmd, struct cli_place *place)
{
    size_t i;
    if (!place->vfs) return 0;
    for (i = 0; i < PT_ARRAY_SIZE(stores); i++) {
        if (stores[i].vfs == place->vfs) {
            place->vfs = NULL;
            if (--stores[i].users > 0) return 0;
            {
                int rc = petrel_vfs_close(stores[i].vfs);
                stores[i].vfs = NULL;
                if (rc < 0)
                    return cli_error(cmd, "cannot close '%s': %s", place->text, cli_strerror(rc));
            }
            return 0;
        }
    }
    return 0;
}

const char *cli_show(const struct cli_place *place, const char *path)
{
    static char bufs[4][PETREL_VFS_PATH_MAX + PETREL_VFS_HOST_MAX + 32];
    static unsigned next;
    char *b = bufs[next++ % 4];
    const struct petrel_vfs_location *l = &place->loc;
    switch (l->kind) {
    case PETREL_VFS_IMAGE:
        snprintf(b, sizeof(bufs[0]), "%s:%s", l->store, path);
        break;
    case PETREL_VFS_CLUSTER:
        if (l->port)
            snprintf(b, sizeof(bufs[0]), "petrel://%s:%u%s", l->host, l->port, path);
        else
            snprintf(b, sizeof(bufs[0]), "petrel://%s%s", l->host, path);
        break;
    case PETREL_VFS_LOCAL:
        if (strcmp(l->store, ".") == 0)
            snprintf(b, sizeof(bufs[0]), "%s", path[1] ? path + 1 : ".");
        else if (strcmp(l->store, "/") == 0)
            snprintf(b, sizeof(bufs[0]), "%s", path);
        else
            snprintf(b, sizeof(bufs[0]), "%s%s", l->store, strcmp(path, "/") ? path : "");
        break;
    }
    return b;
}
