/* The process-level cluster harness (tests/cluster/proc_cluster.c), built into this part too,
   so the network fuzz test starts a whole cluster and kills it the same way. */
#include "../cluster/proc_cluster.c"
