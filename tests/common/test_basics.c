/*
 * Common pieces: the little-endian codec and its bounded cursor, the seeded generator, error
 * messages.
 */
#include <string.h>

#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/prng.h"
#include "test.h"

TEST(codec_little_endian_layout)
{
    uint8_t b[8];
    pt_put_le16(b, 0x1234);
    CHECK(b[0] == 0x34 && b[1] == 0x12);
    pt_put_le32(b, 0x89abcdefu);
    CHECK(b[0] == 0xef && b[1] == 0xcd && b[2] == 0xab && b[3] == 0x89);
    pt_put_le64(b, 0x0102030405060708ull);
    CHECK(b[0] == 8 && b[7] == 1);
    CHECK_EQ(pt_get_le64(b), 0x0102030405060708ull);
    CHECK_EQ(pt_get_le32(b + 4), 0x01020304u);
    CHECK_EQ(pt_get_le16(b + 6), 0x0102);
}

TEST(codec_cursor_round_trip_and_overflow)
{
    uint8_t buf[15], out[3];
    struct pt_cursor c;
    pt_cursor_init(&c, buf, sizeof(buf));
    pt_enc_u8(&c, 0xaa);
    pt_enc_u16(&c, 0xbbcc);
    pt_enc_u64(&c, 0x1122334455667788ull);
    pt_enc_bytes(&c, "xyz", 3);
    CHECK(pt_cursor_ok(&c));
    CHECK_EQ(c.pos, 14);
    pt_enc_u32(&c, 1); /* does not fit: 1 byte left */
    CHECK(!pt_cursor_ok(&c));
    CHECK_EQ(c.pos, 14);

    pt_cursor_init(&c, buf, 14);
    CHECK_EQ(pt_dec_u8(&c), 0xaa);
    CHECK_EQ(pt_dec_u16(&c), 0xbbcc);
    CHECK_EQ(pt_dec_u64(&c), 0x1122334455667788ull);
    pt_dec_bytes(&c, out, 3);
    CHECK_MEM(out, "xyz", 3);
    CHECK(pt_cursor_ok(&c));
    CHECK_EQ(pt_dec_u32(&c), 0); /* past the end: zero and failed */
    CHECK(!pt_cursor_ok(&c));
    CHECK_EQ(pt_cursor_left(&c), 0);
}

TEST(prng_replays_from_seed)
{
    struct pt_prng a, b;
    int i, differ = 0;
    pt_prng_seed(&a, 42);
    pt_prng_seed(&b, 42);
    for (i = 0; i < 1000; i++) CHECK_EQ(pt_prng_next(&a), pt_prng_next(&b));
    pt_prng_seed(&b, 43);
    for (i = 0; i < 16; i++) differ += pt_prng_next(&a) != pt_prng_next(&b);
    CHECK(differ == 16);
    /* Seed 0 is a valid, non-degenerate stream. */
    pt_prng_seed(&a, 0);
    CHECK(pt_prng_next(&a) != 0 || pt_prng_next(&a) != 0);
}

TEST(prng_below_is_in_range_and_uniform)
{
    struct pt_prng g;
    long count[7] = {0};
    int i;
    pt_prng_seed(&g, test_seed());
    CHECK_EQ(pt_prng_below(&g, 0), 0);
    CHECK_EQ(pt_prng_below(&g, 1), 0);
    for (i = 0; i < 70000; i++) {
        uint64_t v = pt_prng_below(&g, 7);
        CHECK(v < 7);
        count[v]++;
    }
    for (i = 0; i < 7; i++) CHECK(count[i] > 9400 && count[i] < 10600);
}

TEST(errors_have_messages_and_names)
{
    CHECK(strcmp(petrel_strerror(-PT_ECORRUPT), "corrupt data") == 0);
    CHECK(strcmp(petrel_strerror(PT_ENOSPC), "no space left on device") == 0);
    CHECK(strcmp(petrel_errname(-PT_EIO), "PT_EIO") == 0);
    CHECK(strcmp(petrel_strerror(-9999), "unknown error") == 0);
    /* Codes mirror errno so front ends can pass them through. */
    CHECK_EQ(PT_ENOENT, 2);
    CHECK_EQ(PT_ENOSPC, 28);
    CHECK_EQ(PT_ENOTEMPTY, 39);
}
