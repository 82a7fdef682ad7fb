/*
 * The shard server: one replica of one metadata shard. Runs a libuv loop with
 *  - a Raft member (libraft over Petrel's Raft I/O, src/cluster/replica: log under DIR/raft,
 *    validated messages on its Raft port) whose log
 *    is the write-ahead log of the shard state machine (shard_sm.h) stored under DIR/store;
 *  - a frame server (cluster/net) answering PT_MSG_SHARD_* requests: queries from the leader's
 *    store, state changes as Raft entries answered only once committed and applied;
 *  - a registry loop (heartbeat, peer and block-service discovery) on the libuv thread pool.
 * Message layouts: docs/PROTOCOL.md ("Shards"); durability argument: docs/DESIGN.md.
 */
#ifndef PETREL_CLUSTER_SHARD_SERVER_H
#define PETREL_CLUSTER_SHARD_SERVER_H

#include <stdint.h>

#include "cluster/proto/ids.h"
#include "cluster/replica/node.h"

/* Answers PT_MSG_SHARD_REQ and PT_MSG_NODE_INFO (proto/ids.h). */

struct pt_shard_config {
    const char *registry;      /* "HOST:PORT" of the registry */
    unsigned shard;            /* 0..255 */
    unsigned replica;          /* 0..replicas-1 */
    unsigned replicas;         /* Raft group size: 1, 3 or 5 */
    const char *dir;           /* data directory */
    const char *host;          /* address to listen on (port chosen by the OS) */
    unsigned snapshot_entries; /* compact the log every this many entries; 0 = 4096 */
    uint64_t retention_ms;     /* deleted files are kept this long before GC; 0 = 24 h */
    uint64_t repair_rate;      /* bytes/s repair may read and write; 0 = unlimited */
    uint64_t repair_stale_ms;  /* rebuild the blocks of a service stale this long; 0 = never */
    int no_repair;             /* --no-repair: queue reports, rebuild and erase nothing */
    /* --placement-grace: for this long after start-up a span that cannot be placed is
     * answered EAGAIN (services may still be registering), ENOSPC after; 0 = 15 s. */
    uint64_t placement_grace_ms;
    int placement_grace_set; /* placement_grace_ms was given (so 0 means none) */
    uint32_t compact_below;    /* compaction merges runs of spans smaller than this; 0 = 64 KiB */
    uint64_t compact_rate;     /* bytes/s compaction may read and write; 0 = 16 MiB/s */
    int compact_off;           /* --compact-below 0: no compaction */
    struct pt_node_raft_options raft; /* timing, fsync check */
    const char *http; /* metrics endpoint "HOST:PORT" (port 0: OS-chosen); NULL: none */
};

/* Run until SIGINT/SIGTERM: 0, or a negative PT_E* when start-up failed (err names what). */
int pt_shard_server_run(const struct pt_shard_config *cfg, char *err, unsigned err_cap);

#endif
