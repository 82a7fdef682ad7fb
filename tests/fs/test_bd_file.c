/*
 * The image file device and the RAM device: geometry from the file size, pread/pwrite round
 * trips, erase with and without an erase value, persistence across close/open, bad input, and
 * a filesystem kept in an image file.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "petrel/bd.h"
#include "petrel/common.h"
#include "petrel/fs.h"
#include "test.h"

static void image_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", test_tmpdir(), name);
}

TEST(bd_file_create_prog_read_erase_persist)
{
    struct petrel_bd bd;
    struct petrel_bd_file f;
    char path[300];
    uint8_t w[512], r[512];
    struct stat st;
    size_t i;
    image_path(path, sizeof(path), "img");
    CHECK_OK(petrel_bd_file_open(&bd, &f, path, 1, 16, 16, 4096, 8, 0xff));
    CHECK_OK(stat(path, &st));
    CHECK_EQ(st.st_size, 8 * 4096);
    CHECK_EQ(bd.block_count, 8);
    CHECK_EQ(bd.erase_value, 0xff);
    CHECK_OK(bd.read(bd.context, 7, 4096 - 512, r, 512));
    for (i = 0; i < 512; i++)
        CHECK_EQ(r[i], 0xff); /* extended with the erase value */
    for (i = 0; i < 512; i++)
        w[i] = (uint8_t)(i * 7);
    CHECK_OK(bd.prog(bd.context, 3, 1024, w, 512));
    CHECK_OK(bd.sync(bd.context));
    CHECK_OK(petrel_bd_file_close(&f));

    /* Reopen with the geometry read from the size. */
    CHECK_OK(petrel_bd_file_open(&bd, &f, path, 0, 16, 16, 4096, 0, 0xff));
    CHECK_EQ(bd.block_count, 8);
    CHECK_OK(bd.read(bd.context, 3, 1024, r, 512));
    CHECK_MEM(r, w, 512);
    CHECK_OK(bd.erase(bd.context, 3));
    CHECK_OK(bd.read(bd.context, 3, 1024, r, 512));
    for (i = 0; i < 512; i++)
        CHECK_EQ(r[i], 0xff);
    CHECK_EQ(bd.read(bd.context, 8, 0, r, 16), -PT_EINVAL);
    CHECK_EQ(bd.prog(bd.context, 0, 4090, w, 16), -PT_EINVAL);
    CHECK_EQ(bd.erase(bd.context, 8), -PT_EINVAL);
    CHECK_OK(petrel_bd_file_close(&f));
}

TEST(bd_file_erase_without_value_writes_nothing)
{
    struct petrel_bd bd;
    struct petrel_bd_file f;
    char path[300];
    uint8_t w[512], r[512];
    image_path(path, sizeof(path), "sd");
    CHECK_OK(petrel_bd_file_open(&bd, &f, path, 1, 512, 512, 512, 16, -1));
    CHECK_EQ(bd.erase_value, -1);
    memset(w, 0xab, sizeof(w));
    CHECK_OK(bd.prog(bd.context, 5, 0, w, 512));
    CHECK_OK(bd.erase(bd.context, 5));
    CHECK_OK(bd.read(bd.context, 5, 0, r, 512));
    CHECK_MEM(r, w, 512);
    CHECK_OK(bd.prog(bd.context, 5, 0, w, 512)); /* overwrite allowed on such media */
    CHECK_OK(petrel_bd_file_close(&f));
}

TEST(bd_file_bad_input)
{
    struct petrel_bd bd;
    struct petrel_bd_file f;
    char path[300];
    FILE *fp;
    image_path(path, sizeof(path), "missing");
    CHECK_EQ(petrel_bd_file_open(&bd, &f, path, 0, 16, 16, 4096, 0, 0xff), -PT_ENOENT);
    CHECK_EQ(petrel_bd_file_open(&bd, &f, path, 1, 16, 16, 4008, 4, 0xff), -PT_EINVAL);
    CHECK_EQ(petrel_bd_file_open(&bd, &f, path, 1, 16, 16, 4096, 4, 0x100), -PT_EINVAL);
    CHECK_EQ(petrel_bd_file_open(&bd, &f, test_tmpdir(), 0, 16, 16, 4096, 0, 0xff) < 0, 1);
    /* A file shorter than one block has no geometry to read. */
    image_path(path, sizeof(path), "short");
    fp = fopen(path, "wb");
    CHECK(fp != NULL);
    fputs("tiny", fp);
    fclose(fp);
    CHECK_EQ(petrel_bd_file_open(&bd, &f, path, 0, 16, 16, 4096, 0, 0xff), -PT_EINVAL);
    /* Shorter than the given geometry and not allowed to grow. */
    CHECK_EQ(petrel_bd_file_open(&bd, &f, path, 0, 1, 1, 2, 8, 0xff), -PT_EINVAL);
}

TEST(bd_file_device_node)
{
    struct petrel_bd bd;
    struct petrel_bd_file f;
    uint8_t r[16];
    /* /dev/zero is a character device of no measurable size: geometry must be given. */
    if (petrel_bd_file_open(&bd, &f, "/dev/zero", 0, 16, 16, 4096, 4, -1) != 0) {
        test_log("/dev/zero not writable here; skipped");
        return;
    }
    CHECK_OK(bd.read(bd.context, 3, 0, r, 16));
    CHECK_EQ(r[0], 0);
    CHECK_OK(bd.sync(bd.context));
    CHECK_OK(petrel_bd_file_close(&f));
}

TEST(bd_ram_round_trip_and_bounds)
{
    static uint8_t mem[4 * 128];
    struct petrel_bd bd;
    struct petrel_bd_ram ram;
    uint8_t w[16], r[16];
    memset(w, 0x21, sizeof(w));
    CHECK_EQ(petrel_bd_ram_init(&bd, &ram, mem, 16, 16, 100, 4, 0xff), -PT_EINVAL);
    CHECK_OK(petrel_bd_ram_init(&bd, &ram, mem, 16, 16, 128, 4, 0x00));
    CHECK_OK(bd.erase(bd.context, 2));
    CHECK_OK(bd.read(bd.context, 2, 0, r, 16));
    CHECK_EQ(r[5], 0x00);
    CHECK_OK(bd.prog(bd.context, 2, 112, w, 16));
    CHECK_OK(bd.read(bd.context, 2, 112, r, 16));
    CHECK_MEM(r, w, 16);
    CHECK_EQ(bd.prog(bd.context, 4, 0, w, 16), -PT_EINVAL);
    CHECK_EQ(bd.read(bd.context, 2, 120, r, 16), -PT_EINVAL);
}

/* The engine on an image file, through close and reopen (geometry read from the size). */
TEST(bd_file_holds_a_filesystem)
{
    static uint8_t rbuf[512], pbuf[512], look[8];
    struct petrel_bd bd;
    struct petrel_bd_file f;
    struct petrel_fs_config cfg;
    struct petrel_fs fs;
    struct petrel_fs_file file;
    char path[300];
    uint8_t data[3000], back[3001];
    int pass, i;
    for (i = 0; i < (int)sizeof(data); i++)
        data[i] = (uint8_t)(i * 13 + 1);
    image_path(path, sizeof(path), "fs.img");
    for (pass = 0; pass < 2; pass++) {
        /* Pass 0: an SD-like image whose erase writes nothing; pass 1: 0xff erase. */
        int32_t ev = pass ? 0xff : -1;
        remove(path);
        CHECK_OK(petrel_bd_file_open(&bd, &f, path, 1, 512, 512, 512, 64, ev));
        memset(&cfg, 0, sizeof(cfg));
        cfg.bd = &bd;
        cfg.cache_size = 512;
        cfg.lookahead_size = 8;
        cfg.read_buffer = rbuf;
        cfg.prog_buffer = pbuf;
        cfg.lookahead_buffer = look;
        CHECK_OK(petrel_fs_format(&fs, &cfg));
        CHECK_OK(petrel_fs_mount(&fs, &cfg));
        CHECK_OK(petrel_fs_mkdir(&fs, "dir"));
        CHECK_OK(petrel_fs_file_open(&fs, &file, "dir/data", PETREL_O_WRONLY | PETREL_O_CREAT));
        CHECK_EQ(petrel_fs_file_write(&fs, &file, data, sizeof(data)), sizeof(data));
        CHECK_OK(petrel_fs_file_close(&fs, &file));
        CHECK_OK(petrel_fs_unmount(&fs));
        CHECK_OK(petrel_bd_file_close(&f));

        CHECK_OK(petrel_bd_file_open(&bd, &f, path, 0, 512, 512, 512, 0, ev));
        CHECK_EQ(bd.block_count, 64);
        CHECK_OK(petrel_fs_mount(&fs, &cfg));
        CHECK_OK(petrel_fs_check(&fs, NULL, NULL));
        CHECK_OK(petrel_fs_file_open(&fs, &file, "dir/data", PETREL_O_RDONLY));
        CHECK_EQ(petrel_fs_file_read(&fs, &file, back, sizeof(back)), sizeof(data));
        CHECK_MEM(back, data, sizeof(data));
        CHECK_OK(petrel_fs_file_close(&fs, &file));
        CHECK_OK(petrel_fs_unmount(&fs));
        CHECK_OK(petrel_bd_file_close(&f));
    }
}

/* The block cache: random progs, erases and reads against a shadow copy of the image, with a
 * cache smaller than the device (slots shared by several blocks); a block read twice costs
 * one pread; what the cache returns is what the file holds (checked by reading it uncached). */
TEST(bd_file_block_cache_matches_the_file)
{
    static uint8_t shadow[16 * 1024], cache[4 * 1024], buf[1024];
    struct petrel_bd bd, bd2;
    struct petrel_bd_file f, f2;
    uint32_t tags[4], i;
    uint64_t x = 12345;
    char path[300];
    image_path(path, sizeof(path), "cached");
    CHECK_OK(petrel_bd_file_open(&bd, &f, path, 1, 16, 16, 1024, 16, 0xff));
    CHECK_EQ(petrel_bd_file_set_cache(&f, NULL, tags, 4), -PT_EINVAL);
    CHECK_OK(petrel_bd_file_set_cache(&f, cache, tags, 4));
    memset(shadow, 0xff, sizeof(shadow));
    CHECK_OK(bd.read(bd.context, 5, 0, buf, 16));
    CHECK_EQ(f.preads, 1);
    CHECK_OK(bd.read(bd.context, 5, 512, buf, 512));
    CHECK_EQ(f.preads, 1); /* the same block: served from the cache */
    CHECK_EQ(f.read_bytes, 1024);
    for (i = 0; i < 3000; i++) {
        uint32_t op, block, off, len, k;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        op = (uint32_t)(x >> 60) % 4;
        block = (uint32_t)(x >> 40) % 16;
        off = ((uint32_t)(x >> 20) % 64) * 16;
        len = 16 * (1 + (uint32_t)(x >> 8) % ((1024 - off) / 16));
        if (op == 0) {
            CHECK_OK(bd.erase(bd.context, block));
            memset(shadow + block * 1024, 0xff, 1024);
        } else if (op == 1) {
            for (k = 0; k < len; k++)
                buf[k] = (uint8_t)(x >> (k % 56)) ^ (uint8_t)k;
            CHECK_OK(bd.prog(bd.context, block, off, buf, len));
            memcpy(shadow + block * 1024 + off, buf, len);
        } else {
            CHECK_OK(bd.read(bd.context, block, off, buf, len));
            CHECK_MEM(buf, shadow + block * 1024 + off, len);
        }
    }
    /* the file itself holds the same bytes (write-through) */
    CHECK_OK(petrel_bd_file_open(&bd2, &f2, path, 0, 16, 16, 1024, 0, 0xff));
    for (i = 0; i < 16; i++) {
        CHECK_OK(bd2.read(bd2.context, i, 0, buf, 1024));
        CHECK_MEM(buf, shadow + i * 1024, 1024);
    }
    CHECK_OK(petrel_bd_file_close(&f2));
    CHECK_OK(petrel_bd_file_close(&f));
}
