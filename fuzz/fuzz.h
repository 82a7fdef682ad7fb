/*
 * Petrel's fuzz targets: one entry point per decoder, each taking arbitrary bytes.
 *
 * Every entry is an ordinary function, so the same code runs two ways: under libFuzzer
 * (`make fuzz`: each fuzz/fuzz_TARGET.c is built with -DPT_LIBFUZZER, which adds the
 * LLVMFuzzerTestOneInput wrapper) and in `make test`, where tests/fuzz_regress/ replays the
 * saved corpora and regression inputs through these functions with the normal build.
 *
 * An entry must accept any input: it feeds the bytes to the decoder under test, and when the
 * decoder accepts them it checks what the decoder promised (a re-encode gives the same
 * bytes, ranges lie inside their buffers, returned data matches its CRC). A broken promise
 * is a bug: FUZZ_CHECK prints the target, file and line and aborts, which libFuzzer records
 * as a crash and the replay test as a failed case. Crashes, hangs and leaks are caught by the
 * sanitizers and libFuzzer's limits. Entries never print otherwise and keep no state between
 * inputs except set-up done once (a scratch directory).
 */
#ifndef PETREL_FUZZ_H
#define PETREL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant broken at %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The entries; each returns 0 (libFuzzer's convention: the input was processed). */
int pt_fuzz_frame(const uint8_t *data, size_t size);
int pt_fuzz_registry_msg(const uint8_t *data, size_t size);
int pt_fuzz_blocks_msg(const uint8_t *data, size_t size);
int pt_fuzz_registry_state(const uint8_t *data, size_t size);
int pt_fuzz_block_file(const uint8_t *data, size_t size);
int pt_fuzz_cursor(const uint8_t *data, size_t size);
int pt_fuzz_fs_image(const uint8_t *data, size_t size);
int pt_fuzz_raftmsg(const uint8_t *data, size_t size);
int pt_fuzz_raftlog(const uint8_t *data, size_t size);
int pt_fuzz_shard_msgs(const uint8_t *data, size_t size);
int pt_fuzz_cdc_msgs(const uint8_t *data, size_t size);

/* Define the libFuzzer entry for one target when built by `make fuzz`. */
#ifdef PT_LIBFUZZER
#define PT_FUZZ_TARGET(fn)                                                                         \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                                  \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                                   \
    {                                                                                              \
        return fn(data, size);                                                                     \
    }
#else
#define PT_FUZZ_TARGET(fn)
#endif

#endif
