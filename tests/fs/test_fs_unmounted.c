/*
 * Issue 9 §4: every public petrel_fs_* call (all of include/petrel/fs.h but format and mount,
 * which take an unmounted filesystem) on a filesystem that is not mounted returns -PT_EINVAL:
 * never mounted (zero-initialised), unmounted, or whose mount failed. A table over the API;
 * each row is run in each of the three states, with handles that look real (opened before
 * the unmount) so that no call can get by without the check.
 */
#include <stdlib.h>
#include <string.h>

#include "fs_harness.h"
#include "petrel/common.h"
#include "test.h"

struct um_ctx {
    struct petrel_fs *fs;
    struct petrel_fs_file *file;
    struct petrel_fs_dir *dir;
};

static int um_count(void *ctx, uint32_t block)
{
    (void)ctx;
    (void)block;
    return 0;
}

static void um_problem(void *ctx, const char *problem)
{
    (void)ctx;
    (void)problem;
}

#define UM_CALL(fn_name, expr)                                                                     \
    static int64_t um_##fn_name(struct um_ctx *c)                                                  \
    {                                                                                              \
        return (int64_t)(expr);                                                                    \
    }

static uint8_t um_buf[64];
static struct petrel_fs_info um_info;
static struct petrel_fs_fsinfo um_fsinfo_out;

UM_CALL(unmount, petrel_fs_unmount(c->fs))
UM_CALL(fsinfo, petrel_fs_fsinfo(c->fs, &um_fsinfo_out))
UM_CALL(stat, petrel_fs_stat(c->fs, "f", &um_info))
UM_CALL(remove, petrel_fs_remove(c->fs, "f"))
UM_CALL(rename, petrel_fs_rename(c->fs, "f", "g"))
UM_CALL(mkdir, petrel_fs_mkdir(c->fs, "d2"))
UM_CALL(dir_open, petrel_fs_dir_open(c->fs, c->dir, "/"))
UM_CALL(dir_read, petrel_fs_dir_read(c->fs, c->dir, &um_info))
UM_CALL(dir_seek, petrel_fs_dir_seek(c->fs, c->dir, 0))
UM_CALL(dir_tell, petrel_fs_dir_tell(c->fs, c->dir))
UM_CALL(dir_rewind, petrel_fs_dir_rewind(c->fs, c->dir))
UM_CALL(dir_close, petrel_fs_dir_close(c->fs, c->dir))
UM_CALL(file_open, petrel_fs_file_open(c->fs, c->file, "f", PETREL_O_RDWR))
UM_CALL(file_opencfg, petrel_fs_file_opencfg(c->fs, c->file, "f", PETREL_O_RDWR, NULL))
UM_CALL(file_read, petrel_fs_file_read(c->fs, c->file, um_buf, sizeof(um_buf)))
UM_CALL(file_write, petrel_fs_file_write(c->fs, c->file, um_buf, sizeof(um_buf)))
UM_CALL(file_seek, petrel_fs_file_seek(c->fs, c->file, 0, PETREL_SEEK_SET))
UM_CALL(file_tell, petrel_fs_file_tell(c->fs, c->file))
UM_CALL(file_size, petrel_fs_file_size(c->fs, c->file))
UM_CALL(file_truncate, petrel_fs_file_truncate(c->fs, c->file, 3))
UM_CALL(file_sync, petrel_fs_file_sync(c->fs, c->file))
UM_CALL(file_close, petrel_fs_file_close(c->fs, c->file))
UM_CALL(getattr, petrel_fs_getattr(c->fs, "f", 1, um_buf, sizeof(um_buf)))
UM_CALL(setattr, petrel_fs_setattr(c->fs, "f", 1, "v", 1))
UM_CALL(removeattr, petrel_fs_removeattr(c->fs, "f", 1))
UM_CALL(usage, petrel_fs_usage(c->fs))
UM_CALL(traverse, petrel_fs_traverse(c->fs, um_count, NULL))
UM_CALL(check, petrel_fs_check(c->fs, um_problem, NULL))

static const struct {
    const char *name;
    int64_t (*call)(struct um_ctx *c);
} um_api[] = {
    {"unmount", um_unmount},
    {"fsinfo", um_fsinfo},
    {"stat", um_stat},
    {"remove", um_remove},
    {"rename", um_rename},
    {"mkdir", um_mkdir},
    {"dir_open", um_dir_open},
    {"dir_read", um_dir_read},
    {"dir_seek", um_dir_seek},
    {"dir_tell", um_dir_tell},
    {"dir_rewind", um_dir_rewind},
    {"dir_close", um_dir_close},
    {"file_open", um_file_open},
    {"file_opencfg", um_file_opencfg},
    {"file_read", um_file_read},
    {"file_write", um_file_write},
    {"file_seek", um_file_seek},
    {"file_tell", um_file_tell},
    {"file_size", um_file_size},
    {"file_truncate", um_file_truncate},
    {"file_sync", um_file_sync},
    {"file_close", um_file_close},
    {"getattr", um_getattr},
    {"setattr", um_setattr},
    {"removeattr", um_removeattr},
    {"usage", um_usage},
    {"traverse", um_traverse},
    {"check", um_check},
};

enum um_state { UM_NEVER, UM_UNMOUNTED, UM_MOUNT_FAILED };

/* Bring d->fs into the state; *file and *dir are handles opened while it was mounted (for
 * UM_UNMOUNTED) or zeroed. */
static void um_prepare(struct fsh_dev *d, enum um_state state, struct petrel_fs_file *file,
                       struct petrel_fs_dir *dir)
{
    memset(file, 0, sizeof(*file));
    memset(dir, 0, sizeof(*dir));
    memset(&d->fs, 0, sizeof(d->fs));
    if (state == UM_NEVER) return;
    CHECK_OK(fsh_mount(d));
    if (state == UM_UNMOUNTED) {
        CHECK_OK(petrel_fs_file_open(&d->fs, file, "f", PETREL_O_RDWR));
        CHECK_OK(petrel_fs_dir_open(&d->fs, dir, "/"));
        CHECK_OK(petrel_fs_unmount(&d->fs));
        d->mounted = 0;
        return;
    }
    CHECK_OK(fsh_unmount(d));
    d->cfg.block_count = d->geo.block_count - 1; /* disagrees with the superblock */
    CHECK_EQ(fsh_mount(d), -PT_EINVAL);
    d->cfg.block_count = 0;
}

TEST(fs_api_unmounted_returns_einval)
{
    static const char *const states[3] = {"never mounted", "unmounted", "mount failed"};
    struct fsh_dev d;
    size_t i;
    int s;
    fsh_dev_init(&d, &fsh_geometries[FSH_NOR], test_seed());
    fsh_format_mount(&d);
    CHECK_OK(fsh_write_file(&d.fs, "f", "abc", 3));
    CHECK_OK(fsh_unmount(&d));
    for (s = 0; s < 3; s++) {
        for (i = 0; i < PT_ARRAY_SIZE(um_api); i++) {
            struct petrel_fs_file file;
            struct petrel_fs_dir dir;
            struct um_ctx c;
            int64_t r;
            um_prepare(&d, (enum um_state)s, &file, &dir);
            c.fs = &d.fs;
            c.file = &file;
            c.dir = &dir;
            r = um_api[i].call(&c);
            CHECK_MSG(r == -PT_EINVAL, "petrel_fs_%s on a filesystem %s: %lld, not -PT_EINVAL",
                      um_api[i].name, states[s], (long long)r);
        }
    }
    /* the device was not touched: it mounts and holds the file */
    CHECK_OK(fsh_mount(&d));
    CHECK_EQ(fsh_file_equals(&d.fs, "f", "abc", 3), 1);
    CHECK_OK(fsh_unmount(&d));
    fsh_dev_free(&d);
}

/* A NULL filesystem pointer is refused the same way. */
TEST(fs_api_null_fs_returns_einval)
{
    struct um_ctx c;
    struct petrel_fs_file file;
    struct petrel_fs_dir dir;
    size_t i;
    memset(&file, 0, sizeof(file));
    memset(&dir, 0, sizeof(dir));
    c.fs = NULL;
    c.file = &file;
    c.dir = &dir;
    for (i = 0; i < PT_ARRAY_SIZE(um_api); i++)
        CHECK_MSG(um_api[i].call(&c) == -PT_EINVAL, "petrel_fs_%s(NULL) is not -PT_EINVAL",
                  um_api[i].name);
}
