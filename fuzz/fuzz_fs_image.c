/*
 * Fuzz target: mounting a damaged or hostile flash image (src/fs). Input byte 0 picks one of
 * several small geometries and options, the rest is laid over the device from block 0 (the
 * remainder reads as erased, 0xff). If the image mounts, everything reachable is walked
 * without recursion (directories, stat, every attribute type the walk meets, whole files),
 * then petrel_fs_check runs. Nothing may crash or hang (each walk is bounded in entries,
 * depth and bytes), reading and checking must not program or erase anything, and a read may
 * fail only with a clean error. Option bit 4: when the check finds the image clean, a new
 * file is written, and after a remount the check must still be clean and the file intact.
 */
#include <string.h>

#include "fuzz.h"
#include "petrel/bd.h"
#include "petrel/common.h"
#include "petrel/fs.h"

struct fs_geometry {
    uint32_t read_size, prog_size, block_size, block_count;
};

/* Small devices, so that a fuzzed input covers a large part of them. */
static const struct fs_geometry fs_geometries[] = {
    {16, 16, 128, 32},   /* tiny NOR: 4 KiB */
    {16, 16, 512, 16},   /* 8 KiB */
    {512, 512, 512, 16}, /* eMMC-like sectors */
    {16, 16, 4096, 8},   /* NOR with 4 KiB erase blocks: 32 KiB */
};

#define FS_WALK_ENTRIES 256
#define FS_WALK_DEPTH 8
#define FS_READ_BUDGET (1u << 20)

/* The RAM device, with counters so the target sees any write during a read-only walk. */
struct fs_counting {
    struct petrel_bd inner;
    unsigned progs, erases;
};

static int fsc_read(void *ctx, uint32_t block, uint32_t off, void *buf, uint32_t size)
{
    struct fs_counting *c = ctx;
    return c->inner.read(c->inner.context, block, off, buf, size);
}

static int fsc_prog(void *ctx, uint32_t block, uint32_t off, const void *buf, uint32_t size)
{
    struct fs_counting *c = ctx;
    c->progs++;
    return c->inner.prog(c->inner.context, block, off, buf, size);
}

static int fsc_erase(void *ctx, uint32_t block)
{
    struct fs_counting *c = ctx;
    c->erases++;
    return c->inner.erase(c->inner.context, block);
}

static int fsc_sync(void *ctx)
{
    struct fs_counting *c = ctx;
    return c->inner.sync(c->inner.context);
}

static void fs_ignore_problem(void *ctx, const char *problem)
{
    (void)ctx;
    (void)problem;
}

/* Read a whole file within the budget; every error must be a clean one. */
static void fs_read_file(struct petrel_fs *fs, const char *path, uint64_t size, uint32_t *budget)
{
    struct petrel_fs_file f;
    static uint8_t buf[4096];
    uint64_t total = 0;
    int err = petrel_fs_file_open(fs, &f, path, PETREL_O_RDONLY);
    if (err) {
        FUZZ_CHECK(err < 0);
        return;
    }
    while (*budget > 0) {
        int64_t n = petrel_fs_file_read(fs, &f, buf, PT_MIN((uint32_t)sizeof(buf), *budget));
        if (n <= 0) {
            FUZZ_CHECK(n == 0 || n == -PT_ECORRUPT || n == -PT_EIO || n == -PT_EINVAL ||
                       n == -PT_ENOMEM);
            break;
        }
        FUZZ_CHECK((uint64_t)n <= sizeof(buf));
        total += (uint64_t)n;
        *budget -= (uint32_t)PT_MIN((uint64_t)n, (uint64_t)*budget);
    }
    if (*budget > 0) FUZZ_CHECK(total <= size || size == 0 || total == size);
    petrel_fs_file_close(fs, &f);
}

/* Walk every directory breadth-first from "/" with an explicit queue of paths. */
static void fs_walk(struct petrel_fs *fs)
{
    static char queue[FS_WALK_ENTRIES][FS_WALK_DEPTH * 64 + 2];
    static uint8_t attr[64];
    int head = 0, tail = 0, seen = 0;
    uint32_t budget = FS_READ_BUDGET;
    strcpy(queue[tail++], "/");
    while (head < tail && seen < FS_WALK_ENTRIES) {
        struct petrel_fs_dir d;
        struct petrel_fs_info info;
        const char *dir = queue[head++];
        int r, depth = 0;
        const char *p;
        for (p = dir; *p; p++)
            depth += *p == '/';
        if (petrel_fs_dir_open(fs, &d, dir) != 0) continue;
        while (seen < FS_WALK_ENTRIES && (r = petrel_fs_dir_read(fs, &d, &info)) == 1) {
            char path[sizeof(queue[0])];
            struct petrel_fs_info st;
            int n;
            seen++;
            FUZZ_CHECK(info.type == PETREL_FS_REG || info.type == PETREL_FS_DIR);
            FUZZ_CHECK(strlen(info.name) <= PETREL_FS_NAME_MAX_DEFAULT);
            n = snprintf(path, sizeof(path), "%s%s%.63s", dir, strcmp(dir, "/") ? "/" : "",
                         info.name);
            if (n < 0 || (size_t)n >= sizeof(path)) continue;
            if (petrel_fs_stat(fs, path, &st) == 0)
                FUZZ_CHECK(st.type == PETREL_FS_REG || st.type == PETREL_FS_DIR);
            petrel_fs_getattr(fs, path, (uint8_t)seen, attr, sizeof(attr));
            if (info.type == PETREL_FS_REG)
                fs_read_file(fs, path, info.size, &budget);
            else if (depth < FS_WALK_DEPTH && tail < FS_WALK_ENTRIES)
                strcpy(queue[tail++], path);
        }
        petrel_fs_dir_close(fs, &d);
    }
}

int pt_fuzz_fs_image(const uint8_t *data, size_t size)
{
    const struct fs_geometry *g;
    struct petrel_bd bd;
    struct petrel_bd_ram ram;
    struct fs_counting counting;
    struct petrel_fs_config cfg;
    struct petrel_fs fs;
    struct petrel_fs_fsinfo fsinfo;
    size_t dev_size;
    uint8_t *mem;
    int err, check, opts;
    if (size < 1) return 0;
    opts = data[0];
    g = &fs_geometries[(opts & 0x0f) % PT_ARRAY_SIZE(fs_geometries)];
    dev_size = (size_t)g->block_size * g->block_count;
    mem = malloc(dev_size);
    FUZZ_CHECK(mem != NULL);
    memset(mem, 0xff, dev_size);
    memcpy(mem, data + 1, PT_MIN(size - 1, dev_size));
    FUZZ_CHECK(petrel_bd_ram_init(&bd, &ram, mem, g->read_size, g->prog_size, g->block_size,
                                  g->block_count, 0xff) == 0);
    memset(&counting, 0, sizeof(counting));
    counting.inner = bd;
    bd.context = &counting;
    bd.read = fsc_read;
    bd.prog = fsc_prog;
    bd.erase = fsc_erase;
    bd.sync = fsc_sync;
    memset(&cfg, 0, sizeof(cfg));
    cfg.bd = &bd;
    err = petrel_fs_mount(&fs, &cfg);
    if (err) {
        FUZZ_CHECK(err == -PT_ECORRUPT || err == -PT_EVERSION || err == -PT_EINVAL ||
                   err == -PT_EIO || err == -PT_ENOMEM || err == -PT_ENOSPC);
        free(mem);
        return 0;
    }
    FUZZ_CHECK(petrel_fs_fsinfo(&fs, &fsinfo) == 0);
    FUZZ_CHECK(fsinfo.block_size == g->block_size && fsinfo.block_count <= g->block_count);
    counting.progs = counting.erases = 0;
    fs_walk(&fs);
    check = petrel_fs_check(&fs, fs_ignore_problem, NULL);
    FUZZ_CHECK(check == 0 || check == -PT_ECORRUPT || check == -PT_EIO || check == -PT_ENOMEM);
    /* Walking and checking only read. */
    FUZZ_CHECK(counting.progs == 0 && counting.erases == 0);
    petrel_fs_usage(&fs);

    if (check == 0 && (opts & 0x10)) {
        static const char text[] = "written after a fuzzed mount";
        struct petrel_fs_file f;
        char back[sizeof(text)];
        int w = petrel_fs_file_open(&fs, &f, "/fuzz-new",
                                    PETREL_O_WRONLY | PETREL_O_CREAT | PETREL_O_TRUNC);
        if (w == 0) {
            int64_t n = petrel_fs_file_write(&fs, &f, text, sizeof(text));
            w = petrel_fs_file_close(&fs, &f);
            if (n != (int64_t)sizeof(text)) w = -1;
        }
        petrel_fs_unmount(&fs);
        FUZZ_CHECK(petrel_fs_mount(&fs, &cfg) == 0);
        FUZZ_CHECK(petrel_fs_check(&fs, fs_ignore_problem, NULL) == 0);
        if (w == 0) {
            FUZZ_CHECK(petrel_fs_file_open(&fs, &f, "/fuzz-new", PETREL_O_RDONLY) == 0);
            FUZZ_CHECK(petrel_fs_file_read(&fs, &f, back, sizeof(back)) == (int64_t)sizeof(text));
            FUZZ_CHECK(memcmp(back, text, sizeof(text)) == 0);
            petrel_fs_file_close(&fs, &f);
        }
    }
    petrel_fs_unmount(&fs);
    free(mem);
    return 0;
}

PT_FUZZ_TARGET(pt_fuzz_fs_image)
