/*
 * The read-only build (PETREL_FS_READONLY) against images the full engine wrote. This one
 * source is built twice by `make switch-matrix` (mk/switch-matrix.sh):
 *   - with the default engine:        readonly_images write DIR  writes the images below;
 *   - with -DPETREL_FS_READONLY:      readonly_images read DIR   reads them and checks every
 *     byte, and that the engine never programs nor erases the device.
 * Images (a RAM device of 64 blocks of 4 KiB, saved as raw files):
 *   clean.img   directories, an inline file, a one-block file, a multi-block file, a directory
 *               of 40 entries (several pairs), an attribute; unmounted cleanly;
 *   dirty.img   the same plus a synced late file, never unmounted (mount walks the pairs);
 *   cut-N.img   clean.img, then a rename across directories cut (the device fails every
 *               program and erase) at its N-th program or erase, N = 1 .. until it completes.
 * The reader requires, for each cut image, either a mount that shows the file in exactly one
 * of its two places with its bytes, or -PT_EROFS (the image needs a repair: a rename half
 * done); at least one of each must occur. A garbage image must be refused (-PT_ECORRUPT).
 * Exits 0 when everything holds, 1 with one line naming the first failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/bd.h"
#include "petrel/common.h"
#include "petrel/fs.h"

#define BLOCK_SIZE 4096u
#define BLOCK_COUNT 64u
#define IMAGE_BYTES (BLOCK_SIZE * BLOCK_COUNT)
#define BIG_BYTES (60u * 1024u)
#define MID_BYTES 3000u
#define SMALL_BYTES 20u
#define MANY 40

static uint8_t image[IMAGE_BYTES];
static uint8_t expect[BIG_BYTES];
static struct petrel_bd ram_bd, dev;
static struct petrel_bd_ram ram;
static struct petrel_fs fs;
static struct petrel_fs_config cfg;
static long progs, erases, cut_at; /* cut_at: fail from this prog/erase on (0 = never) */

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "readonly_images: " __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                                       \
        exit(1);                                                                                   \
    } while (0)

/* The device: RAM, counting programs and erases, failing all of them once cut. */
static int dev_read(void *c, uint32_t b, uint32_t off, void *buf, uint32_t size)
{
    return ram_bd.read(c, b, off, buf, size);
}

static int dev_prog(void *c, uint32_t b, uint32_t off, const void *buf, uint32_t size)
{
    if (cut_at && progs + erases + 1 >= cut_at) return -PT_EIO;
    progs++;
    return ram_bd.prog(c, b, off, buf, size);
}

static int dev_erase(void *c, uint32_t b)
{
    if (cut_at && progs + erases + 1 >= cut_at) return -PT_EIO;
    erases++;
    return ram_bd.erase(c, b);
}

static int dev_sync(void *c)
{
    return ram_bd.sync ? ram_bd.sync(c) : 0;
}

static void dev_setup(void)
{
    if (petrel_bd_ram_init(&ram_bd, &ram, image, 16, 16, BLOCK_SIZE, BLOCK_COUNT, 0xff))
        FAIL("ram device");
    dev = ram_bd;
    dev.read = dev_read;
    dev.prog = dev_prog;
    dev.erase = dev_erase;
    dev.sync = dev_sync;
    memset(&cfg, 0, sizeof(cfg));
    cfg.bd = &dev;
    cfg.block_cycles = 100;
}

static void pattern(uint8_t *p, uint32_t n, uint32_t seed)
{
    uint32_t i, x = seed * 2654435761u + 1;
    for (i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 16);
    }
}

static void path_of(char *buf, size_t size, int i)
{
    snprintf(buf, size, "/many/entry-%02d", i);
}

#ifndef PETREL_FS_READONLY
/* ---- writer: the full engine ---- */

static void put_file(const char *path, uint32_t n, uint32_t seed)
{
    struct petrel_fs_file f;
    int err = petrel_fs_file_open(&fs, &f, path, PETREL_O_WRONLY | PETREL_O_CREAT);
    if (err) FAIL("create %s: %s", path, petrel_strerror(err));
    pattern(expect, n, seed);
    if (petrel_fs_file_write(&fs, &f, expect, n) != (int64_t)n) FAIL("write %s", path);
    err = petrel_fs_file_close(&fs, &f);
    if (err) FAIL("close %s: %s", path, petrel_strerror(err));
}

static void build_tree(void)
{
    char p[64];
    int i, err;
    memset(image, 0xff, sizeof(image));
    if ((err = petrel_fs_format(&fs, &cfg))) FAIL("format: %s", petrel_strerror(err));
    if ((err = petrel_fs_mount(&fs, &cfg))) FAIL("mount: %s", petrel_strerror(err));
    if (petrel_fs_mkdir(&fs, "/a") || petrel_fs_mkdir(&fs, "/a/b") || petrel_fs_mkdir(&fs, "/many"))
        FAIL("mkdir");
    put_file("/a/small", SMALL_BYTES, 1);
    put_file("/a/b/mid", MID_BYTES, 2);
    put_file("/big.bin", BIG_BYTES, 3);
    for (i = 0; i < MANY; i++) {
        path_of(p, sizeof(p), i);
        put_file(p, 100 + (uint32_t)i, 100 + (uint32_t)i);
    }
    if (petrel_fs_setattr(&fs, "/a/small", 7, "attr-value", 10)) FAIL("setattr");
}

static void save(const char *dir, const char *name)
{
    char p[512];
    FILE *f;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    f = fopen(p, "wb");
    if (!f || fwrite(image, 1, sizeof(image), f) != sizeof(image) || fclose(f))
        FAIL("cannot write %s", p);
}

static int write_images(const char *dir)
{
    static uint8_t clean[IMAGE_BYTES];
    char name[32];
    long n;
    int err;
    build_tree();
    if ((err = petrel_fs_unmount(&fs))) FAIL("unmount: %s", petrel_strerror(err));
    save(dir, "clean.img");
    memcpy(clean, image, sizeof(clean));

    build_tree();
    put_file("/a/late", 500, 4);
    memset(&fs, 0, sizeof(fs)); /* the power goes: no unmount */
    save(dir, "dirty.img");

    for (n = 1;; n++) {
        memcpy(image, clean, sizeof(image));
        memset(&fs, 0, sizeof(fs));
        cut_at = 0;
        if ((err = petrel_fs_mount(&fs, &cfg))) FAIL("mount clean: %s", petrel_strerror(err));
        progs = erases = 0;
        cut_at = n;
        err = petrel_fs_rename(&fs, "/a/small", "/a/b/moved");
        cut_at = 0;
        memset(&fs, 0, sizeof(fs)); /* cut or not, no unmount */
        snprintf(name, sizeof(name), "cut-%ld.img", n);
        save(dir, name);
        if (!err) break; /* the rename completed before the cut: the last image */
        if (n > 200) FAIL("rename never completes");
    }
    printf("readonly_images: wrote clean, dirty and %ld cut images\n", n);
    return 0;
}

#else
/* ---- reader: the read-only engine ---- */

static uint8_t got[BIG_BYTES];

static void load(const char *dir, const char *name)
{
    char p[512];
    FILE *f;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    f = fopen(p, "rb");
    if (!f || fread(image, 1, sizeof(image), f) != sizeof(image)) FAIL("cannot read %s", p);
    fclose(f);
}

/* 1 when path holds the pattern, 0 when it does not exist; fails on anything else. */
static int check_file(const char *path, uint32_t n, uint32_t seed)
{
    struct petrel_fs_file f;
    struct petrel_fs_info info;
    int64_t r;
    int err = petrel_fs_file_open(&fs, &f, path, PETREL_O_RDONLY);
    if (err == -PT_ENOENT) return 0;
    if (err) FAIL("open %s: %s", path, petrel_strerror(err));
    pattern(expect, n, seed);
    memset(got, 0, sizeof(got));
    r = petrel_fs_file_read(&fs, &f, got, sizeof(got));
    if (r != (int64_t)n || memcmp(got, expect, n)) FAIL("%s reads wrong bytes", path);
    if (petrel_fs_file_close(&fs, &f)) FAIL("close %s", path);
    if (petrel_fs_stat(&fs, path, &info) || info.size != n) FAIL("stat %s", path);
    return 1;
}

static int count_dir(const char *path)
{
    struct petrel_fs_dir d;
    struct petrel_fs_info info;
    int n = 0, err = petrel_fs_dir_open(&fs, &d, path);
    if (err) FAIL("dir_open %s: %s", path, petrel_strerror(err));
    while ((err = petrel_fs_dir_read(&fs, &d, &info)) == 1)
        n++;
    if (err) FAIL("dir_read %s: %s", path, petrel_strerror(err));
    petrel_fs_dir_close(&fs, &d);
    return n;
}

static void check_tree(int with_late)
{
    struct petrel_fs_file f;
    char p[64], attr[16];
    int i;
    if (check_file("/a/small", SMALL_BYTES, 1) != 1) FAIL("/a/small missing");
    if (check_file("/a/b/mid", MID_BYTES, 2) != 1) FAIL("/a/b/mid missing");
    if (check_file("/big.bin", BIG_BYTES, 3) != 1) FAIL("/big.bin missing");
    for (i = 0; i < MANY; i++) {
        path_of(p, sizeof(p), i);
        if (check_file(p, 100 + (uint32_t)i, 100 + (uint32_t)i) != 1) FAIL("%s missing", p);
    }
    if (check_file("/a/late", 500, 4) != with_late) FAIL("/a/late");
    if (count_dir("/") != 3 || count_dir("/many") != MANY || count_dir("/a") != 2 + with_late)
        FAIL("directory listings");
    if (petrel_fs_getattr(&fs, "/a/small", 7, attr, sizeof(attr)) != 10 ||
        memcmp(attr, "attr-value", 10))
        FAIL("getattr");
    /* every way of writing is refused */
    if (petrel_fs_file_open(&fs, &f, "/a/small", PETREL_O_WRONLY) != -PT_EROFS ||
        petrel_fs_file_open(&fs, &f, "/a/small", PETREL_O_RDWR) != -PT_EROFS ||
        petrel_fs_file_open(&fs, &f, "/new", PETREL_O_RDONLY | PETREL_O_CREAT) != -PT_EROFS)
        FAIL("a write access was not refused with -PT_EROFS");
}

static void mount_image(const char *dir, const char *name)
{
    int err;
    load(dir, name);
    memset(&fs, 0, sizeof(fs));
    err = petrel_fs_mount(&fs, &cfg);
    if (err) FAIL("mount %s: %s", name, petrel_strerror(err));
}

static int read_images(const char *dir)
{
    char name[512];
    long n, refused = 0, mounted = 0, moved = 0;
    int err;
    progs = erases = 0;
    mount_image(dir, "clean.img");
    check_tree(0);
    if (petrel_fs_unmount(&fs)) FAIL("unmount clean");
    mount_image(dir, "dirty.img");
    check_tree(1);
    if (petrel_fs_unmount(&fs)) FAIL("unmount dirty");
    for (n = 1;; n++) {
        int a, b;
        FILE *f;
        snprintf(name, sizeof(name), "%s/cut-%ld.img", dir, n);
        if (!(f = fopen(name, "rb"))) break;
        fclose(f);
        snprintf(name, sizeof(name), "cut-%ld.img", n);
        load(dir, name);
        memset(&fs, 0, sizeof(fs));
        err = petrel_fs_mount(&fs, &cfg);
        if (err == -PT_EROFS) {
            refused++;
            if (fs.mounted) FAIL("%s: refused but mounted", name);
            continue;
        }
        if (err) FAIL("mount %s: %s", name, petrel_strerror(err));
        mounted++;
        a = check_file("/a/small", SMALL_BYTES, 1);
        b = check_file("/a/b/moved", SMALL_BYTES, 1);
        if (a + b != 1) FAIL("%s: the renamed file shows in %d places", name, a + b);
        moved += b;
        if (petrel_fs_unmount(&fs)) FAIL("unmount %s", name);
    }
    if (n < 3 || !refused || !mounted || !moved)
        FAIL("cut images: %ld, %ld mounted (%ld after the rename), %ld refused: expected both",
             n - 1, mounted, moved, refused);
    /* hostile bytes: garbage is refused, not read */
    pattern(image, sizeof(image), 99);
    memset(&fs, 0, sizeof(fs));
    err = petrel_fs_mount(&fs, &cfg);
    if (err != -PT_ECORRUPT) FAIL("a garbage image mounts: %s", petrel_strerror(err));
    if (progs || erases) FAIL("the read-only engine programmed %ld times, erased %ld", progs, erases);
    printf("readonly_images: clean and dirty images read back; %ld cut images: %ld mounted "
           "(%ld after the rename), %ld refused (-PT_EROFS); no program, no erase\n",
           n - 1, mounted, moved, refused);
    return 0;
}
#endif

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: readonly_images write|read DIR\n");
        return 2;
    }
    dev_setup();
#ifndef PETREL_FS_READONLY
    if (!strcmp(argv[1], "write")) return write_images(argv[2]);
#else
    if (!strcmp(argv[1], "read")) return read_images(argv[2]);
#endif
    fprintf(stderr, "readonly_images: %s: not in this build\n", argv[1]);
    return 2;
}
