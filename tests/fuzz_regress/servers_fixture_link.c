/* The cluster tests' server fixtures (tests/cluster/servers_fixture.c), built into this part
   too, so the network fuzz test starts and kills servers the same way. */
#include "../cluster/servers_fixture.c"
