/*
 * Replays the fuzz corpora through the fuzz entry points with the normal build (and under
 * `make check` with ASan+UBSan): every seed in fuzz/corpus/TARGET, every regression input in
 * fuzz/regress/TARGET (inputs that once broke a decoder, kept fixed), and a bounded number of
 * seeded mutations of each (bit flips, byte stores, cuts, growth, splices). An entry aborts on
 * a broken invariant, and the runner reports the crash as a failed case with the seed.
 * fuzz/crashes/ holds reproducers of open bugs in code owned elsewhere: it is replayed only
 * when PETREL_FUZZ_CRASHES=1, so it does not block `make test`.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../fuzz/fuzz.h"
#include "petrel/common.h"
#include "petrel/prng.h"
#include "test.h"

typedef int (*fuzz_entry)(const uint8_t *data, size_t size);

/* The repository root: the working directory of `make test`, else derived from the binary. */
static const char *repo_root(void)
{
    static char root[8300];
    static const char *const up[] = {"", "/..", "/../.."};
    char exe[4096], probe[8300];
    ssize_t n;
    size_t i;
    struct stat st;
    if (stat("fuzz/corpus", &st) == 0) return ".";
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return ".";
    exe[n] = 0;
    *strrchr(exe, '/') = 0; /* BUILD/tests */
    for (i = 0; i < PT_ARRAY_SIZE(up); i++) {
        snprintf(probe, sizeof(probe), "%s/..%s/fuzz/corpus", exe, up[i]);
        if (stat(probe, &st) == 0) {
            snprintf(root, sizeof(root), "%s/..%s", exe, up[i]);
            return root;
        }
    }
    return ".";
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    CHECK_MSG(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(n > 0 ? (size_t)n : 1);
    CHECK(buf != NULL);
    CHECK((size_t)n == fread(buf, 1, (size_t)n, f));
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* One seeded mutation of in[0..len) into a fresh exact-size buffer (so ASan sees over-reads). */
static uint8_t *mutate(struct pt_prng *g, const uint8_t *in, size_t len, const uint8_t *other,
                       size_t olen, size_t *out_len)
{
    size_t n = len, i, k;
    uint8_t *out = malloc(len + 64);
    CHECK(out != NULL);
    if (len) memcpy(out, in, len);
    for (k = 1 + pt_prng_below(g, 4); k > 0; k--) {
        switch (pt_prng_below(g, 6)) {
        case 0: /* flip a bit */
            if (n) out[pt_prng_below(g, n)] ^= (uint8_t)(1u << pt_prng_below(g, 8));
            break;
        case 1: /* store an interesting byte */
            if (n) {
                static const uint8_t v[] = {0, 1, 0x7f, 0x80, 0xff, 4, 5};
                out[pt_prng_below(g, n)] = v[pt_prng_below(g, sizeof(v))];
            }
            break;
        case 2: /* cut the tail */
            n = (size_t)pt_prng_below(g, n + 1);
            break;
        case 3: /* grow by random bytes */
            i = (size_t)pt_prng_below(g, 17);
            if (n + i > len + 64) i = len + 64 - n;
            pt_prng_fill(g, out + n, i);
            n += i;
            break;
        case 4: /* splice in a piece of another input */
            if (olen && n) {
                size_t at = (size_t)pt_prng_below(g, n), from = (size_t)pt_prng_below(g, olen);
                size_t cnt = PT_MIN(PT_MIN(olen - from, n - at), (size_t)16);
                memcpy(out + at, other + from, cnt);
            }
            break;
        default: /* a 32-bit little-endian boundary value */
            if (n >= 4) {
                static const uint32_t v[] = {0, 1, 0xffffffffu, 0x80000000u, 4096, 4097, 65536};
                size_t at = (size_t)pt_prng_below(g, n - 3);
                uint32_t x = v[pt_prng_below(g, PT_ARRAY_SIZE(v))];
                out[at] = (uint8_t)x;
                out[at + 1] = (uint8_t)(x >> 8);
                out[at + 2] = (uint8_t)(x >> 16);
                out[at + 3] = (uint8_t)(x >> 24);
            }
            break;
        }
    }
    *out_len = n;
    return out;
}

struct inputs {
    uint8_t *data[256];
    size_t len[256];
    int n;
};

static void load_dir(struct inputs *in, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char *names[256];
    int n = 0, i;
    if (!d) return;
    while ((e = readdir(d)) != NULL && n < 256)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    /* Sorted, so a given seed always mutates the same inputs in the same order. */
    for (i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (in->n < 256) {
            in->data[in->n] = read_all(path, &in->len[in->n]);
            in->n++;
        }
        free(names[i]);
    }
}

static void replay(const char *target, fuzz_entry fn)
{
    struct inputs in;
    struct pt_prng g;
    char dir[8192];
    int i, m, rounds = test_soak() ? 5000 : test_sanitized() ? 100 : 500, seeds;
    memset(&in, 0, sizeof(in));
    snprintf(dir, sizeof(dir), "%s/fuzz/corpus/%s", repo_root(), target);
    load_dir(&in, dir);
    seeds = in.n;
    CHECK_MSG(seeds > 0, "no seed corpus in %s", dir);
    snprintf(dir, sizeof(dir), "%s/fuzz/regress/%s", repo_root(), target);
    load_dir(&in, dir);
    if (getenv("PETREL_FUZZ_CRASHES")) {
        snprintf(dir, sizeof(dir), "%s/fuzz/crashes/%s", repo_root(), target);
        load_dir(&in, dir);
    }
    test_log("%s: %d seeds, %d regression inputs", target, seeds, in.n - seeds);
    for (i = 0; i < in.n; i++)
        fn(in.data[i], in.len[i]);
    pt_prng_seed(&g, test_seed());
    for (i = 0; i < in.n; i++)
        for (m = 0; m < rounds; m++) {
            int o = (int)pt_prng_below(&g, (uint64_t)in.n);
            size_t len;
            uint8_t *x = mutate(&g, in.data[i], in.len[i], in.data[o], in.len[o], &len);
            uint8_t *exact = malloc(len ? len : 1);
            CHECK(exact != NULL);
            if (len) memcpy(exact, x, len);
            fn(exact, len);
            free(exact);
            free(x);
        }
    for (i = 0; i < in.n; i++)
        free(in.data[i]);
}

TEST_T(fuzz_replay_frame, 120)
{
    replay("frame", pt_fuzz_frame);
}
TEST_T(fuzz_replay_registry_msg, 120)
{
    replay("registry_msg", pt_fuzz_registry_msg);
}
TEST_T(fuzz_replay_blocks_msg, 120)
{
    replay("blocks_msg", pt_fuzz_blocks_msg);
}
TEST_T(fuzz_replay_registry_state, 120)
{
    replay("registry_state", pt_fuzz_registry_state);
}
TEST_T(fuzz_replay_block_file, 180)
{
    replay("block_file", pt_fuzz_block_file);
}
TEST_T(fuzz_replay_raftmsg, 120)
{
    replay("raftmsg", pt_fuzz_raftmsg);
}
TEST_T(fuzz_replay_raftlog, 180)
{
    replay("raftlog", pt_fuzz_raftlog);
}
TEST_T(fuzz_replay_cursor, 120)
{
    replay("cursor", pt_fuzz_cursor);
}

/* The entries must reject, not crash on, the degenerate inputs too. */
TEST(fuzz_entries_take_empty_and_tiny_inputs)
{
    static const fuzz_entry all[] = {
        pt_fuzz_frame,          pt_fuzz_registry_msg, pt_fuzz_blocks_msg,
        pt_fuzz_registry_state, pt_fuzz_block_file,   pt_fuzz_cursor,
        pt_fuzz_fs_image,       pt_fuzz_shard_msgs,   pt_fuzz_cdc_msgs,
        pt_fuzz_raftmsg,        pt_fuzz_raftlog};
    uint8_t b[64];
    size_t i, n;
    for (i = 0; i < PT_ARRAY_SIZE(all); i++)
        for (n = 0; n <= sizeof(b); n++) {
            uint8_t *x = malloc(n ? n : 1);
            memset(x, (int)(n * 37 + i), n);
            all[i](x, n);
            free(x);
        }
}

TEST_T(fuzz_replay_fs_image, 240)
{
    replay("fs_image", pt_fuzz_fs_image);
}
TEST_T(fuzz_replay_shard_msgs, 120)
{
    replay("shard_msgs", pt_fuzz_shard_msgs);
}
TEST_T(fuzz_replay_cdc_msgs, 120)
{
    replay("cdc_msgs", pt_fuzz_cdc_msgs);
}
