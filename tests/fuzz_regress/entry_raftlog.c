/* The fuzz entry pt_fuzz_raftlog (fuzz/fuzz_raftlog.c), compiled into the replay test with
 * the normal build. */
#include "../../fuzz/fuzz_raftlog.c"
