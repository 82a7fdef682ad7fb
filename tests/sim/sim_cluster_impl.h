/*
 * Internals shared by the simulated cluster's files (not an interface): the cluster, its
 * replica processes and their incarnations, the clients, and the checker's model.
 *   sim_cluster.c  replicas, the shard front end, the run (set-up, faults, heal, settle)
 *   sim_client.c   the clients: workload, retries, redirection
 *   sim_check.c    the model fed by the committed history and every check against it
 */
#ifndef PETREL_TESTS_SIM_CLUSTER_IMPL_H
#define PETREL_TESTS_SIM_CLUSTER_IMPL_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/replica/replica.h"
#include "cluster/shard/shard_fsm.h"
#include "cluster/shard/shard_sm.h"
#include "petrel/codec.h"
#include "sim_cluster.h"

#define MAX_SHARDS 4
#define MAX_CLIENTS 8
#define NAMES 6
#define ATTEMPT_MS 700
#define MAX_ATTEMPTS 40
#define SEEN_MAX 64
#define REQ_MAX (PT_INLINE_MAX + 512)
#define REPLY_MAX (PT_SHARD_MSG_MAX + 64)

struct sim_cluster;

/* ---- model ------------------------------------------------------------------------------------ */

struct hist_entry {
    uint64_t entry_sum, reply_sum;
    int set;
};

struct version {
    uint64_t index;
    uint64_t names[NAMES];
};

/* A content a linked file held until a commit replaced it at `index` (issue 12). */
struct mold {
    uint64_t index;
    uint8_t *data;
    size_t len;
};

struct mfile {
    uint64_t id, cookie;
    uint8_t state;
    uint8_t *data;
    size_t len;
    /* files that change (issue 12) */
    uint64_t base;           /* a change file: the file it changes (0: a plain file) */
    uint64_t base_commits;   /* a change file: its base's commits when it was opened */
    int committed;           /* a change file whose commit succeeded */
    uint64_t commits;        /* a file: changes committed to it */
    uint64_t ver_seen, ver_commits; /* the version OPEN_CHANGE last answered, at `commits` */
    struct mold *old;        /* contents replaced by commits, oldest first */
    size_t n_old;
};

struct keyset {
    uint64_t *k;
    size_t n, cap;
};

struct shard_model {
    uint64_t dir;
    struct hist_entry *hist;
    size_t hist_cap;
    uint64_t committed; /* highest index applied anywhere */
    struct version *ver;
    size_t n_ver, ver_cap;
    uint64_t cur[NAMES];
    uint64_t acked_max;
    struct keyset ok_keys; /* requests that succeeded in H */
};

/* ---- nodes -------------------------------------------------------------------------------------- */

/* One incarnation of a replica process: everything that dies with it. */
struct inc {
    struct node *n;
    struct pt_env *env;
    struct raft_io io;
    int io_ready, dead;
    int storage_failed; /* the raft_io stopped on a disk error: restart from disk */
    struct pt_replica *rep;
    struct pt_shard_sm sm;
    int sm_open;
    struct pt_shard_fsm fsm;
    struct raft_fsm wrap;
    uint64_t applied; /* last index applied by this incarnation */
    uint64_t watch_timer;
    char seen_from[SEEN_MAX][8];
    uint64_t seen_id[SEEN_MAX];
    unsigned seen_next;
};

struct node {
    struct sim_cluster *c;
    unsigned shard, rid; /* rid: 0-based */
    struct sim_proc *proc;
    char addr[PT_ENV_ADDR_MAX], raft_addr[PT_ENV_ADDR_MAX], dir[512];
    struct inc *cur; /* the live incarnation (NULL while down or starting failed) */
    unsigned incarnations;
};

enum op_kind {
    OP_WRITE,
    OP_LOOKUP,
    OP_READDIR,
    OP_READ,
    OP_RENAME,
    OP_UNLINK,
    OP_CHANGE, /* issue 12: open a change of a named file, append or rewrite it, commit */
    OP_COMPACT, /* issue 12: a leader's compaction: merge a run of a file's spans, same bytes */
    OP_MKDIR,
    OP_KINDS
};

struct client {
    struct sim_cluster *c;
    unsigned idx;
    struct sim_proc *proc;
    struct pt_env *env;
    char addr[PT_ENV_ADDR_MAX];
    int busy, kind, stage;
    int cas;             /* compare-and-set ops: look the names up first, then act on what was seen */
    uint64_t seen[2];    /* what the lookups of a compare-and-set op saw (0: free) */
    unsigned shard, name, name2;
    uint64_t file_id, cookie;
    uint64_t change_id, base_size; /* OP_CHANGE */
    int rewrite;                   /* OP_CHANGE: truncate to 0 and write anew (else append) */
    uint64_t run_off;              /* OP_COMPACT: the run's first byte */
    uint8_t merged[1024];          /* OP_COMPACT: the run's bytes, one after the other */
    size_t merged_len;
    uint8_t data[2][64];
    size_t dlen[2];
    unsigned nspans, span;
    uint64_t req_id;
    uint8_t req[REQ_MAX];
    size_t req_len;
    int is_write;
    unsigned target[MAX_SHARDS];
    unsigned attempts;
    int indeterminate;
    uint64_t timer, op_lo, seq;
};

struct sim_cluster {
    struct sim_cluster_config cfg;
    struct sim *sim;
    struct node nodes[MAX_SHARDS][PT_REPLICA_MAX];
    struct client clients[MAX_CLIENTS];
    struct shard_model model[MAX_SHARDS];
    struct mfile *files;
    size_t n_files, files_cap;
    struct keyset acked_keys[MAX_SHARDS], failed_keys[MAX_SHARDS];
    int stop_clients, violated;
    struct sim_cluster_result *res;
    uint8_t reply[REPLY_MAX];
};

/* sim_check.c */
void sc_violate(struct sim_cluster *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t sc_sum64(const void *buf, size_t len);
void sc_keyset_add(struct keyset *s, uint64_t k);
int sc_keyset_has(const struct keyset *s, uint64_t k);
struct mfile *sc_file_find(struct sim_cluster *c, uint64_t id);
int sc_name_index(const char *name, size_t len);
/* The FSM of every replica: the real one, wrapped to record the committed history. */
int sc_wrap_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result);
int sc_wrap_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs);
int sc_wrap_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs);
int sc_wrap_restore(struct raft_fsm *fsm, struct raft_buffer *buf);
void sc_check_lookup(struct client *cl, int st, struct pt_cursor *body, uint64_t *id_out);
void sc_check_readdir(struct client *cl, struct pt_cursor *body);
void sc_check_spans(struct client *cl, struct pt_cursor *body);
void sc_check_stat(struct client *cl, struct pt_cursor *body);
void sc_final_checks(struct sim_cluster *c);

/* sim_client.c */
void sc_client_next(void *ctx);
void sc_on_client_reply(void *ctx, const char *from, const uint8_t *msg, size_t len);
void sc_set_name(char *dst, uint8_t *len, unsigned idx);

/* sim_cluster.c */
int sc_replica_converged(struct sim_cluster *c, unsigned s, unsigned r, raft_index leader_last);
raft_index sc_shard_leader_last(struct sim_cluster *c, unsigned s);

#endif
