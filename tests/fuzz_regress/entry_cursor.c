/* The fuzz entry pt_fuzz_cursor (fuzz/fuzz_cursor.c), compiled into the replay test with the normal
 * build. */
#include "../../fuzz/fuzz_cursor.c"
