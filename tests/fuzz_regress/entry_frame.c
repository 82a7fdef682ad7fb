/* The fuzz entry pt_fuzz_frame (fuzz/fuzz_frame.c), compiled into the replay test with the normal
 * build. */
#include "../../fuzz/fuzz_frame.c"
