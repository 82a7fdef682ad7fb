/* The fuzz entry pt_fuzz_registry_msg (fuzz/fuzz_registry_msg.c), compiled into the replay test
 * with the normal build. */
#include "../../fuzz/fuzz_registry_msg.c"
