/*
 * Fuzz target: stored block files as the block store reads them (header, page-CRC table,
 * data; src/cluster/blocks/blocks_store.c). The input is
 *
 *   u8 options | u32 offset | u32 count | file bytes
 *
 * The file bytes are stored as block FUZZ_BLOCK_ID in a scratch store, then stat and a read
 * of [offset, offset+count) must either fail cleanly (-PT_ECORRUPT, -PT_ERANGE) or return a
 * response whose header decodes, whose range covers the request, and every byte of which is
 * the file's and matches its page CRC. Option bit 0 erases the block afterwards (it must go);
 * bit 1 then writes a valid block under the same id: it must replace a corrupt or absent
 * block, succeed on an identical one, and leave a different valid one byte for byte intact.
 * Bit 2 instead rewrites the block's own data (as the file holds it) under the header's CRC
 * and size, as a client retrying a write does: it must be refused when the data does not
 * match that CRC, and otherwise leave a block that reads back whole and right, even when the
 * stored copy had rotted (a bad page CRC table or data).
 */
#include <fcntl.h>
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/blocks/blocks.h"
#include "fuzz.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define FUZZ_BLOCK_ID 0x0123456789abcdefull

static struct pt_blocks_local block_store;
static char block_dir[256];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void block_store_cleanup(void)
{
    if (!block_dir[0]) return;
    pt_blocks_local_close(&block_store);
    nftw(block_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    block_dir[0] = 0;
}

static void block_store_setup(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    if (block_dir[0]) return;
    snprintf(block_dir, sizeof(block_dir), "%s/petrel-fuzz-blocks-XXXXXX", base);
    FUZZ_CHECK(mkdtemp(block_dir) != NULL);
    FUZZ_CHECK(pt_blocks_local_open(block_dir, &block_store) == 0);
    atexit(block_store_cleanup);
}

static void put_file(const char *path, const uint8_t *bytes, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(len == 0 || write(fd, bytes, len) == (ssize_t)len);
    close(fd);
}

/* Whether the file at path holds exactly bytes[0..len). */
static int file_is(const char *path, const uint8_t *bytes, size_t len)
{
    uint8_t *got = malloc(len + 1);
    int fd = open(path, O_RDONLY), same;
    ssize_t n;
    FUZZ_CHECK(got != NULL && fd >= 0);
    n = read(fd, got, len + 1);
    close(fd);
    same = n == (ssize_t)len && (len == 0 || memcmp(got, bytes, len) == 0);
    free(got);
    return same;
}

/* A successful read: every returned byte is the file's and matches its page CRC. */
static void check_read(const uint8_t *file, size_t flen, uint32_t offset, uint32_t count,
                       const uint8_t *body, size_t body_len)
{
    struct pt_block_read_resp r;
    struct pt_cursor c;
    const uint8_t *crcs, *pagedata;
    uint32_t want, i, table_pages;
    uint64_t data_start;
    pt_cursor_init(&c, (void *)body, body_len);
    pt_block_dec_read_resp(&c, &r);
    FUZZ_CHECK(pt_cursor_ok(&c));
    FUZZ_CHECK(body_len == PT_BLOCK_READ_RESP_FIELDS + (size_t)r.pages * 4 + r.data_len);
    FUZZ_CHECK(flen >= PT_BLOCK_FILE_HEADER && r.block_size == pt_get_le32(file + 16));
    FUZZ_CHECK(offset <= r.block_size);
    want = PT_MIN(count, r.block_size - offset);
    if (want)
        FUZZ_CHECK(r.data_offset <= offset &&
                   (uint64_t)offset + want <= (uint64_t)r.data_offset + r.data_len);
    crcs = body + PT_BLOCK_READ_RESP_FIELDS;
    pagedata = crcs + (size_t)r.pages * 4;
    table_pages = pt_get_le32(file + 24);
    data_start = PT_BLOCK_FILE_HEADER + (uint64_t)table_pages * 4;
    if (r.data_len == 0) return; /* an empty range touches no page: nothing was read */
    FUZZ_CHECK(data_start + r.data_offset + r.data_len <= flen);
    FUZZ_CHECK(memcmp(pagedata, file + data_start + r.data_offset, r.data_len) == 0);
    FUZZ_CHECK(
        r.pages == 0 ||
        memcmp(crcs, file + PT_BLOCK_FILE_HEADER + (size_t)(r.data_offset / PT_BLOCK_PAGE_SIZE) * 4,
               (size_t)r.pages * 4) == 0);
    for (i = 0; i < r.pages; i++) {
        uint32_t n = PT_MIN(PT_BLOCK_PAGE_SIZE, r.data_len - i * PT_BLOCK_PAGE_SIZE);
        FUZZ_CHECK(petrel_crc32c(0, pagedata + (size_t)i * PT_BLOCK_PAGE_SIZE, n) ==
                   pt_get_le32(crcs + (size_t)4 * i));
    }
}

int pt_fuzz_block_file(const uint8_t *data, size_t size)
{
    char path[4096];
    struct pt_block_stat st;
    const uint8_t *file;
    uint8_t *body;
    size_t flen, body_len;
    uint32_t offset, count;
    int stat_err, read_err, opts;
    if (size < 9) return 0;
    block_store_setup();
    opts = data[0];
    offset = pt_get_le32(data + 1);
    count = pt_get_le32(data + 5);
    file = data + 9;
    flen = size - 9;
    FUZZ_CHECK(pt_blocks_local_path(&block_store, FUZZ_BLOCK_ID, path, sizeof(path)) == 0);
    put_file(path, file, flen);

    stat_err = pt_blocks_store_stat(&block_store.store, FUZZ_BLOCK_ID, &st);
    FUZZ_CHECK(stat_err == 0 || stat_err == -PT_ECORRUPT);
    if (stat_err == 0) {
        FUZZ_CHECK(st.block_id == FUZZ_BLOCK_ID && st.size <= PT_BLOCK_MAX_SIZE);
        FUZZ_CHECK(st.size == pt_get_le32(file + 16) && st.crc == pt_get_le32(file + 20));
    }
    read_err = pt_blocks_store_read(&block_store.store, FUZZ_BLOCK_ID, offset, count, &body, &body_len);
    FUZZ_CHECK(read_err == 0 || read_err == -PT_ECORRUPT || read_err == -PT_ERANGE);
    if (stat_err) FUZZ_CHECK(read_err == -PT_ECORRUPT);
    if (read_err == 0) {
        check_read(file, flen, offset, count, body, body_len);
        free(body);
    } else {
        FUZZ_CHECK(body == NULL && body_len == 0);
    }
    FUZZ_CHECK(file_is(path, file, flen)); /* reading never changes a block */

    if (opts & 1) {
        int err = pt_blocks_store_erase(&block_store.store, FUZZ_BLOCK_ID, stat_err ? 0 : st.crc,
                                        stat_err ? 0 : st.size);
        FUZZ_CHECK(err == 0);
        FUZZ_CHECK(access(path, F_OK) != 0);
        stat_err = -PT_ENOENT;
    }
    if (opts & 2) {
        uint32_t wsize = (uint32_t)PT_MIN(flen, (size_t)3 * PT_BLOCK_PAGE_SIZE + 17);
        uint32_t crc = petrel_crc32c(0, file, wsize);
        int err = pt_blocks_local_write(&block_store, FUZZ_BLOCK_ID, crc, file, wsize);
        if (stat_err == 0 && (st.crc != crc || st.size != wsize)) {
            FUZZ_CHECK(err == -PT_EEXIST);
            FUZZ_CHECK(file_is(path, file, flen));
        } else {
            FUZZ_CHECK(err == 0);
            FUZZ_CHECK(
                pt_blocks_store_read(&block_store.store, FUZZ_BLOCK_ID, 0, wsize, &body, &body_len) == 0);
            FUZZ_CHECK(body_len >= wsize && memcmp(body + body_len - wsize, file, wsize) == 0);
            free(body);
        }
    }
    if ((opts & 4) && stat_err == 0) {
        uint32_t pages = pt_get_le32(file + 24);
        uint64_t data_start = PT_BLOCK_FILE_HEADER + (uint64_t)pages * 4;
        if (data_start + st.size <= flen) {
            const uint8_t *own = file + data_start;
            int err = pt_blocks_local_write(&block_store, FUZZ_BLOCK_ID, st.crc, own, st.size);
            if (petrel_crc32c(0, own, st.size) != st.crc) {
                FUZZ_CHECK(err == -PT_EBADMSG);
            } else {
                FUZZ_CHECK(err == 0);
                FUZZ_CHECK(pt_blocks_store_read(&block_store.store, FUZZ_BLOCK_ID, 0, st.size, &body,
                                                &body_len) == 0);
                FUZZ_CHECK(body_len >= st.size &&
                           memcmp(body + body_len - st.size, own, st.size) == 0);
                free(body);
            }
        }
    }
    unlink(path);
    return 0;
}

PT_FUZZ_TARGET(pt_fuzz_block_file)
