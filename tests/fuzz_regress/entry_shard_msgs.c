/* The fuzz entry pt_fuzz_shard_msgs (fuzz/fuzz_shard_msgs.c), compiled into the replay test with
 * the normal build. */
#include "../../fuzz/fuzz_shard_msgs.c"
