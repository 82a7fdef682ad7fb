/*
 * Test harness for process-level cluster tests: starts build/petrel registry, shard, cdc and
 * blocks processes on loopback with OS-chosen ports, data under the case's temp dir, and kills
 * them all when the case ends (also when it fails: each child also dies with the test process
 * through PR_SET_PDEATHSIG, and the runner kills the case's process group).
 */
#ifndef PETREL_TEST_PROC_CLUSTER_H
#define PETREL_TEST_PROC_CLUSTER_H

#include <stdint.h>
#include <sys/types.h>

#include "cluster/proto/registry_msg.h"
#include "petrel/client.h"

#define PC_MAX_PROCS 32
/* How long a harness wait (a process's address line, a leader, the cluster serving) may take
 * before the case fails: generous, because CI machines are busy (every wait polls for its
 * event and returns as soon as it happens, so a quiet machine never waits this long). */
#define PC_WAIT_MS 90000

struct pc_proc {
    pid_t pid;
    char name[48];
    char log[600];
    char argv_buf[1024];
};

struct pc_cluster {
    char root[512];
    char registry[256]; /* the registry's address, or a group's "H:P,H:P,H:P" */
    unsigned registries; /* 0: one registry process; 3 or 5: a registry group */
    int dynamic_ports; /* restart the registry with --using-dynamic-ports */
    unsigned shards, replicas, blocks;
    int with_cdc;
    unsigned snapshot_entries; /* shards' --snapshot-entries (0: default) */
    unsigned retention_s;      /* shards' --retention (0: default) */
    const char *scrub_rate;    /* block services' --scrub-rate MB/s (NULL: default) */
    const char *repair_stale;  /* shards' --repair-stale SECONDS (NULL: default) */
    int no_repair;             /* shards get --no-repair */
    const char *placement_grace; /* shards' --placement-grace SECONDS (NULL: default) */
    /* With authentication (pc_start_auth): every server gets --secret and --read-only-secret,
     * and this process's client key is the cluster key. "" = none. */
    char secret[600], ro_secret[600];
    /* With HTTP (pc_start_http): every server gets --http 127.0.0.1:0; the registry's status
     * page and metrics address is registry_http. */
    int http;
    char registry_http[64];
    /* With HTTP and a registry group: each member's status page and metrics address. */
    char registry_https[PT_REG_MAX_REPLICAS][64];
    struct pc_proc procs[PC_MAX_PROCS];
    unsigned nprocs;
    unsigned reg_proc; /* index of the registry (of the group's first member: "registry-0") */
};

/*
 * Start registry, shards x replicas, (cdc x 3), block services; wait until "/" answers.
 * pc_start_opts also sets the shards' snapshot interval.
 */
void pc_start_opts(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
                   int with_cdc, unsigned snapshot_entries);
void pc_start(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
              int with_cdc);
/* pc_start with the shards' retention period in seconds. */
void pc_start_retention(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
                        unsigned retention_s);
/* pc_start with the block services' --scrub-rate and the shards' --repair-stale (strings,
 * NULL: the default). */
void pc_start_scrub(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
                    int with_cdc, const char *scrub_rate, const char *repair_stale);
/* pc_start with secrets made in the case's directory (secret, read-only-secret). */
void pc_start_auth(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
                   int with_cdc);
/* pc_start with --no-repair on every shard: reported blocks stay lost (degraded-read tests). */
/* pc_start with the shards' --placement-grace SECONDS: how long an unplaceable span is
 * answered EAGAIN before ENOSPC. pc_start waits until every service has registered, so a
 * case about refusals can use a short one. */
void pc_start_placement_grace(struct pc_cluster *c, unsigned shards, unsigned replicas,
                              unsigned blocks, int with_cdc, const char *seconds);
void pc_start_no_repair(struct pc_cluster *c, unsigned shards, unsigned replicas,
                        unsigned blocks, int with_cdc);
/* pc_start with --http 127.0.0.1:0 on every server (status page and /metrics). */
void pc_start_http(struct pc_cluster *c, unsigned shards, unsigned replicas, unsigned blocks,
                   int with_cdc);
/* pc_start with a registry group of `registries` members (processes "registry-0".."-N"). */
void pc_start_registry_group(struct pc_cluster *c, unsigned shards, unsigned replicas,
                             unsigned blocks, int with_cdc, unsigned registries);
/* pc_start_registry_group with --http 127.0.0.1:0 on every server (registry_https[i]). */
void pc_start_registry_group_http(struct pc_cluster *c, unsigned shards, unsigned replicas,
                                  unsigned blocks, int with_cdc, unsigned registries);
/* The group member that serves as leader (-1: none now), asked with PT_MSG_REG_INFO. */
int pc_registry_leader(struct pc_cluster *c);
/* The index in c->procs of the process named `name`, or -1. */
int pc_find(struct pc_cluster *c, const char *name);
/* Kill every process (SIGKILL) and reap them. */
void pc_stop(struct pc_cluster *c);
/* Kill one process by name ("shard-0-1", "blocks-2", "registry", "cdc-0") with a signal. */
pid_t pc_kill(struct pc_cluster *c, const char *name, int sig);
/* Start one killed process again (same arguments, same data, a new port). */
void pc_restart_one(struct pc_cluster *c, const char *name);
/* Start everything again on the same data directories (new ports). */
void pc_restart_all(struct pc_cluster *c, int using_dynamic_ports);
/* A client on the cluster. */
struct petrel_client *pc_client(struct pc_cluster *c, uint32_t budget_ms);
/* Wait until the root directory can be listed (bounded); returns milliseconds waited. */
uint64_t pc_wait_serving(struct pc_cluster *c, unsigned timeout_ms);
/* The registry's address of the current leader of a shard ("" if none), via NODE_INFO. */
int pc_shard_leader(struct pc_cluster *c, unsigned shard, unsigned *replica);
/* The leader of a shard (shard >= 0) or of the CDC (shard < 0). */
int pc_group_leader(struct pc_cluster *c, int shard, unsigned *replica);
/* Milliseconds of a monotonic clock. */
uint64_t pc_now_ms(void);

#endif
