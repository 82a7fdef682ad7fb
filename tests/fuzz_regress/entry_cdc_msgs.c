/* The fuzz entry pt_fuzz_cdc_msgs (fuzz/fuzz_cdc_msgs.c), compiled into the replay test with the
 * normal build. */
#include "../../fuzz/fuzz_cdc_msgs.c"
