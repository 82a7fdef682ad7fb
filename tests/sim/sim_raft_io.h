/*
 * A libraft `struct raft_io` over env.h, for the simulator only: the replica core runs on it
 * until branch replica's src/cluster/replica/raft_io lands (then the simulator switches).
 *
 * Storage (files in the env's data directory):
 *   meta: two 32-byte slots [u64 seq][u64 term][u64 vote][u32 crc32c of the 24 bytes][u32 0];
 *         a write goes to the older slot, so a torn write leaves the other one intact.
 *   log:  records [u64 term][u32 len][u8 type][3 zero][u32 crc32c(data)][u32 crc32c(header 20 B)]
 *         then data padded to 8 bytes. Load keeps the longest valid prefix.
 * Messages: [u32 crc32c of the rest][u8 type][u64 sender id][u8 len][sender address] then the
 * type's fields (LE); a message with a bad CRC or a bad length is dropped.
 *
 * Durability: an append's callback runs only after an fsync of the log that covers it; term
 * and vote changes are written at once and no message leaves before their fsync completed (so
 * a vote cannot be granted and then forgotten). A write or fsync error is fatal: the io stops
 * and asks its owner (through `fatal`) to restart the process — retrying after a failed fsync
 * would trust pages the kernel may have dropped. Snapshots are not supported (the simulated
 * replicas set a snapshot threshold they never reach).
 */
#ifndef PETREL_TESTS_SIM_RAFT_IO_H
#define PETREL_TESTS_SIM_RAFT_IO_H

#include <raft.h>

#include "cluster/env/env.h"

struct sim_raft_io_config {
    struct pt_env *env;
    const char *listen; /* this replica's Raft address */
    void (*fatal)(void *ctx, int err);
    void *ctx;
};

/* Set up io (a struct raft_io the caller owns) over env; 0 or -PT_E*. */
int sim_raft_io_init(struct raft_io *io, const struct sim_raft_io_config *cfg);
/* Free what raft_close left (after its callback). */
void sim_raft_io_free(struct raft_io *io);

#endif
