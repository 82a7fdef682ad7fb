/* The fuzz entry pt_fuzz_registry_state (fuzz/fuzz_registry_state.c), compiled into the replay test
 * with the normal build. */
#include "../../fuzz/fuzz_registry_state.c"
