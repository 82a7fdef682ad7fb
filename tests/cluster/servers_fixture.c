/*
 * Fixtures for registry and block service tests (see servers_fixture.h).
 */
#include "servers_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static void reg_on_stop(uv_async_t *a)
{
    struct reg_fixture *f = a->data;
    pt_registry_server_stop(f->srv);
    uv_close((uv_handle_t *)&f->stop, NULL);
}

static void *loop_thread(void *arg)
{
    uv_run(arg, UV_RUN_DEFAULT);
    return NULL;
}

int reg_fixture_start(struct reg_fixture *f, const char *dir, int dynamic_ports)
{
    struct pt_registry_server_config cfg = {dir, "127.0.0.1:0", 5000, dynamic_ports, NULL};
    int err;
    memset(f, 0, sizeof(*f));
    uv_loop_init(&f->loop);
    err = pt_registry_server_start(&f->loop, &cfg, &f->srv);
    if (err) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
        uv_loop_close(&f->loop);
        return err;
    }
    snprintf(f->address, sizeof(f->address), "%s", pt_registry_server_address(f->srv));
    uv_async_init(&f->loop, &f->stop, reg_on_stop);
    f->stop.data = f;
    CHECK(pthread_create(&f->thread, NULL, loop_thread, &f->loop) == 0);
    return 0;
}

void reg_fixture_stop(struct reg_fixture *f)
{
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    CHECK_EQ(uv_loop_close(&f->loop), 0);
}

static void blocks_on_stop(uv_async_t *a)
{
    struct blocks_fixture *f = a->data;
    pt_blocks_server_stop(f->srv);
    uv_close((uv_handle_t *)&f->stop, NULL);
}

int blocks_fixture_start(struct blocks_fixture *f, const char *registry, const char *const *dirs,
                         int ndirs, const char *failure_domain)
{
    return blocks_fixture_start_idle(f, registry, dirs, ndirs, failure_domain, 0);
}

int blocks_fixture_start_idle(struct blocks_fixture *f, const char *registry,
                              const char *const *dirs, int ndirs, const char *failure_domain,
                              uint32_t stream_idle_ms)
{
    struct pt_blocks_server_config cfg;
    int err;
    memset(f, 0, sizeof(*f));
    memset(&cfg, 0, sizeof(cfg));
    cfg.registry = registry;
    cfg.failure_domain = failure_domain;
    cfg.dirs = dirs;
    cfg.ndirs = ndirs;
    cfg.listen = "127.0.0.1:0";
    cfg.heartbeat_ms = 200;
    cfg.stream_idle_ms = stream_idle_ms;
    uv_loop_init(&f->loop);
    err = pt_blocks_server_start(&f->loop, &cfg, &f->srv);
    if (err) {
        uv_loop_close(&f->loop);
        return err;
    }
    uv_async_init(&f->loop, &f->stop, blocks_on_stop);
    f->stop.data = f;
    CHECK(pthread_create(&f->thread, NULL, loop_thread, &f->loop) == 0);
    return 0;
}

void blocks_fixture_stop(struct blocks_fixture *f)
{
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    pt_blocks_server_free(f->srv);
    CHECK_EQ(uv_loop_close(&f->loop), 0);
}

const char *petrel_bin(void)
{
    static char path[4096];
    const char *env = getenv("PETREL_BIN");
    ssize_t n;
    char *slash;
    if (env && *env) return env;
    n = readlink("/proc/self/exe", path, sizeof(path) - 16);
    if (n <= 0) return "build/petrel";
    path[n] = 0;
    slash = strrchr(path, '/'); /* BUILD/tests/test-cluster -> BUILD/petrel */
    if (slash) *slash = 0;
    slash = strrchr(path, '/');
    if (slash) strcpy(slash, "/petrel");
    return path;
}

int proc_start(struct server_proc *p, int want, const char *const *args)
{
    const char *argv[32];
    char buf[4096];
    size_t got = 0;
    int fds[2], i, n = 0;
    uint64_t deadline = pt_now_ms() + 90000; /* generous: CI machines are busy */
    memset(p, 0, sizeof(*p));
    argv[n++] = petrel_bin();
    for (i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (pipe(fds) != 0) return -1;
    snprintf(buf, sizeof(buf), "%s/%s.stderr", test_tmpdir(), args[0]);
    p->pid = fork();
    if (p->pid < 0) return -1;
    if (p->pid == 0) {
        int log = open(buf, O_WRONLY | O_CREAT | O_APPEND, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (log >= 0) dup2(log, 2); /* server logs go to the case's directory */
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    p->out_fd = fds[0];
    while (p->naddr < want) {
        struct pollfd pf = {p->out_fd, POLLIN, 0};
        char *line, *nl;
        int left = (int)(deadline > pt_now_ms() ? deadline - pt_now_ms() : 0);
        ssize_t r;
        if (left == 0 || poll(&pf, 1, left) <= 0) break;
        r = read(p->out_fd, buf + got, sizeof(buf) - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        buf[got] = 0;
        p->naddr = 0;
        for (line = buf; (nl = strchr(line, '\n')) != NULL && p->naddr < 4; line = nl + 1) {
            if (strncmp(line, "listening on ", 13) == 0) {
                size_t len = strcspn(line + 13, " \n");
                if (len >= PT_ADDR_MAX) len = PT_ADDR_MAX - 1;
                memcpy(p->address[p->naddr], line + 13, len);
                p->address[p->naddr][len] = 0;
                p->naddr++;
            }
        }
    }
    if (p->naddr < want) {
        proc_stop(p, SIGKILL);
        return -1;
    }
    return 0;
}

int proc_stop(struct server_proc *p, int sig)
{
    int status = 0;
    if (p->pid <= 0) return -1;
    kill(p->pid, sig);
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
    }
    p->pid = 0;
    close(p->out_fd);
    return status;
}

int proc_alive(struct server_proc *p)
{
    int status;
    return p->pid > 0 && waitpid(p->pid, &status, WNOHANG) == 0;
}
