/* The fuzz entry pt_fuzz_blocks_msg (fuzz/fuzz_blocks_msg.c), compiled into the replay test with
 * the normal build. */
#include "../../fuzz/fuzz_blocks_msg.c"
