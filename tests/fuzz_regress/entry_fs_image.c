/* The fuzz entry pt_fuzz_fs_image (fuzz/fuzz_fs_image.c), compiled into the replay test with the
 * normal build. */
#include "../../fuzz/fuzz_fs_image.c"
