/*
 * The CDC server: one replica of the cross-directory coordinator, a Raft group (replica/node.h)
 * whose state is the CDC state machine (cdc_sm.h). The leader accepts PT_MSG_CDC_REQ, records
 * a transaction (BEGIN) before touching any shard, then drives transactions one at a time,
 * one step at a time, recording each step in the log before the next; it answers a client
 * when the transaction's FINISH is committed. A new leader resumes where the log says.
 */
#ifndef PETREL_CLUSTER_CDC_SERVER_H
#define PETREL_CLUSTER_CDC_SERVER_H

#include "cluster/replica/node.h"

struct pt_cdc_config {
    const char *registry;
    unsigned replica, replicas;
    unsigned shards; /* shards in the deployment: new directories are spread over them */
    const char *dir;
    const char *host;
    struct pt_node_raft_options raft; /* timing, fsync check */
    const char *http; /* metrics endpoint "HOST:PORT" (port 0: OS-chosen); NULL: none */
};

/* Run until SIGINT/SIGTERM: 0, or a negative PT_E* when start-up failed (err says why). */
int pt_cdc_server_run(const struct pt_cdc_config *cfg, char *err, unsigned err_cap);

#endif
