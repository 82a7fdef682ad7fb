/* The fuzz entry pt_fuzz_block_file (fuzz/fuzz_block_file.c), compiled into the replay test with
 * the normal build. */
#include "../../fuzz/fuzz_block_file.c"
