/*
 * SipHash-2-4 against the test vectors published with the paper (key 00 01 .. 0f, message
 * 00 01 .. n-1; n = 15 is the paper's worked example in Appendix A), plus key and message
 * sensitivity and the constant-time comparison.
 */
#include <string.h>

#include "petrel/siphash.h"
#include "test.h"

static const uint64_t vectors[] = {
    0x726fdb47dd0e0e31ull, 0x74f839c593dc67fdull, 0x0d6c8009d9a94f5aull, 0x85676696d7fb7e2dull,
    0xcf2794e0277187b7ull, 0x18765564cd99a68dull, 0xcbc9466e58fee3ceull, 0xab0200f58b01d137ull,
    0x93f5f5799a932462ull, 0x9e0082df0ba9e4b0ull, 0x7a5dbbc594ddb9f3ull, 0xf4b32f46226bada7ull,
    0x751e8fbc860ee5fbull, 0x14ea5627c0843d90ull, 0xf723ca908e7af2eeull, 0xa129ca6149be45e5ull,
    0x3f2acc7f57c29bdbull, 0x699ae9f52cbe4794ull, 0x4bc1b3f0968dd39cull, 0xbb6dc91da77961bdull,
    0xbed65cf21aa2ee98ull, 0xd0f2cbb02e3b67c7ull, 0x93536795e3a33e88ull, 0xa80c038ccd5ccec8ull,
    0xb8ad50c6f649af94ull, 0xbce192de8a85b8eaull, 0x17d835b85bbb15f3ull, 0x2f2e6163076bcfadull,
};

TEST(siphash_paper_vectors)
{
    uint8_t key[16], msg[64];
    size_t i;
    for (i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)i;
    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
        CHECK_MSG(petrel_siphash24(key, msg, i) == vectors[i], "vector for length %zu", i);
}

TEST(siphash_key_and_message_sensitivity)
{
    uint8_t key[16] = {0}, msg[40] = {0};
    uint64_t base = petrel_siphash24(key, msg, sizeof(msg));
    size_t bit;
    for (bit = 0; bit < 128; bit++) {
        key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        CHECK(petrel_siphash24(key, msg, sizeof(msg)) != base);
        key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (bit = 0; bit < sizeof(msg) * 8; bit++) {
        msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        CHECK(petrel_siphash24(key, msg, sizeof(msg)) != base);
        msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* The length is part of the input: trailing zeros change the result. */
    CHECK(petrel_siphash24(key, msg, 39) != base);
}

TEST(siphash_mac_equal)
{
    int bit;
    CHECK(petrel_mac_equal(0, 0));
    CHECK(petrel_mac_equal(0xa129ca6149be45e5ull, 0xa129ca6149be45e5ull));
    for (bit = 0; bit < 64; bit++)
        CHECK(!petrel_mac_equal(0x1234ull, 0x1234ull ^ (1ull << bit)));
}
