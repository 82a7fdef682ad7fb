/* The fuzz entry pt_fuzz_raftmsg (fuzz/fuzz_raftmsg.c), compiled into the replay test with
 * the normal build. */
#include "../../fuzz/fuzz_raftmsg.c"
