/*
 * Test fixtures for the registry and block services: in-process servers on their own loop
 * thread, and server processes (build/petrel) started as children of the test, killed with
 * the test even when it fails (PR_SET_PDEATHSIG).
 */
#ifndef PETREL_TEST_SERVERS_FIXTURE_H
#define PETREL_TEST_SERVERS_FIXTURE_H

#include <pthread.h>
#include <sys/types.h>
#include <uv.h>

#include "cluster/blocks/blocks.h"
#include "cluster/net/net.h"
#include "cluster/registry/registry.h"

struct reg_fixture {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    struct pt_registry_server *srv;
    char address[PT_ADDR_MAX];
};

/* Start a registry with state in dir on 127.0.0.1:0 (stale after 5 s): 0 or its error. */
int reg_fixture_start(struct reg_fixture *f, const char *dir, int dynamic_ports);
void reg_fixture_stop(struct reg_fixture *f);

struct blocks_fixture {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    struct pt_blocks_server *srv;
};

/* Start block services for dirs, registered with registry: 0 or its error. */
int blocks_fixture_start(struct blocks_fixture *f, const char *registry, const char *const *dirs,
                         int ndirs, const char *failure_domain);
/* blocks_fixture_start with write streams dropped after stream_idle_ms of silence (0: default). */
int blocks_fixture_start_idle(struct blocks_fixture *f, const char *registry,
                              const char *const *dirs, int ndirs, const char *failure_domain,
                              uint32_t stream_idle_ms);
void blocks_fixture_stop(struct blocks_fixture *f);

/* --- processes ----------------------------------------------------------------------------- */

struct server_proc {
    pid_t pid;
    int out_fd;                   /* the child's stdout */
    char address[4][PT_ADDR_MAX]; /* from its "listening on" lines */
    int naddr;
};

/* Path of the petrel binary ($PETREL_BIN, else next to the test binary's directory). */
const char *petrel_bin(void);

/*
 * Start `petrel ARGS...` (NULL-terminated) and wait up to 10 s for `want` "listening on"
 * lines; 0 or -1 (the child is killed then).
 */
int proc_start(struct server_proc *p, int want, const char *const *args);

/* Send a signal and reap (SIGKILL for a crash, SIGTERM for a clean stop); returns the status. */
int proc_stop(struct server_proc *p, int sig);

/* Whether the process is still running (not exited or killed). */
int proc_alive(struct server_proc *p);

#endif
