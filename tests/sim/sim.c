/*
 * The simulator (see sim.h): event queue, network, disk and process faults behind env.h.
 *
 * Invariants: events run in (time, sequence) order and nothing else decides the order; every
 * random choice comes from s->rng in that order; an event of a process carries the process's
 * generation and is dropped if the process crashed since (its timers, fsync completions and
 * deliveries die with it); no env call completes re-entrantly (completions are events).
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/common.h"
#include "petrel/crc32c.h"
#include "petrel/prng.h"

#define NAME_MAX_ 128

enum ev_kind { EV_TIMER = 1, EV_MSG, EV_FSYNC, EV_RESTART, EV_FAULT_TICK, EV_UNBLOCK, EV_FLAP };

struct event {
    uint64_t time, seq;
    enum ev_kind kind;
    struct sim_proc *proc; /* owner (NULL: the simulator's own) */
    uint32_t gen;
    uint64_t timer_id;
    pt_env_cb cb;
    void (*done)(void *ctx, int status);
    void *ctx;
    int status, ino;
    struct sim_proc *from;
    char from_addr[PT_ENV_ADDR_MAX];
    char to[PT_ENV_ADDR_MAX];
    uint8_t *msg;
    size_t len;
    int a, b, flaps;
};

struct sim_file {
    uint8_t *vol, *dur, *prev; /* prev: bytes [prev_off, prev_off+prev_n) of dur before the last sync */
    size_t vol_len, cap, dur_len, dur_cap, prev_dur_len, prev_off, prev_n;
    size_t lo, hi; /* dirty range of vol since the last durable sync (lo >= hi: clean) */
    int has_prev, open_fds;
};

struct sim_dirent {
    char path[NAME_MAX_];
    int ino; /* -1: directory */
};

struct ns {
    struct sim_dirent *e;
    size_t n, cap;
};

struct listener {
    char addr[PT_ENV_ADDR_MAX];
    pt_env_msg_cb cb;
    void *ctx;
};

/* One incarnation's env: after a crash its calls fail, its sends vanish, its fsyncs complete
 * with -PT_EIO and its timers still fire (so the dead incarnation's code can free itself). */
struct sim_env {
    struct pt_env env; /* first: casts back */
    struct sim_proc *p;
    uint32_t gen;
    struct sim_env *older;
};

struct sim_proc {
    struct sim_env *env; /* the current incarnation's */
    struct sim *sim;
    int index;
    char name[PT_ENV_ADDR_MAX];
    int up;
    uint32_t gen;
    uint64_t paused_until;
    int64_t wall_offset;
    int can_crash, can_pause, can_partition;
    struct sim_proc_hooks hooks;
    struct listener listeners[4];
    int n_listeners;
    struct sim_file *files;
    size_t n_files, files_cap;
    struct ns vol, dur;
    int fds[64]; /* ino, or -1 */
};

struct sim {
    struct pt_prng rng;
    struct sim_faults f;
    uint64_t now, seq, hash, next_timer;
    struct event **heap;
    size_t n_heap, heap_cap;
    struct event **timers; /* by id: pending timer event or NULL */
    size_t timers_cap;
    struct sim_proc *procs[SIM_PROC_MAX];
    int n_procs;
    uint8_t blocked[SIM_PROC_MAX][SIM_PROC_MAX];
    struct sim_stats stats;
    int print_trace; /* PETREL_SIM_TRACE: every event on stderr (to diff two runs) */
};

static const struct pt_env_ops sim_ops;

static struct sim_env *env_of(struct pt_env *e) { return (struct sim_env *)e; }
/* The process behind an env, and whether that env is its live incarnation. */
static struct sim_proc *proc_of(struct pt_env *e) { return env_of(e)->p; }
static int env_live(struct pt_env *e)
{
    struct sim_env *se = env_of(e);
    return se->p->up && se->gen == se->p->gen;
}

static void env_new(struct sim_proc *p)
{
    struct sim_env *se = calloc(1, sizeof(*se));
    if (!se) abort();
    se->env.ops = &sim_ops;
    se->p = p;
    se->gen = p->gen;
    se->older = p->env;
    p->env = se;
}

/* ---- randomness, trace -------------------------------------------------------------------- */

uint64_t sim_random(struct sim *s) { return pt_prng_next(&s->rng); }
uint64_t sim_below(struct sim *s, uint64_t bound) { return pt_prng_below(&s->rng, bound); }
int sim_chance(struct sim *s, uint32_t ppm) { return ppm && pt_prng_below(&s->rng, SIM_PPM) < ppm; }

void sim_fill(struct sim *s, void *buf, size_t len) { pt_prng_fill(&s->rng, buf, len); }

static void trace(struct sim *s, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t x = s->hash ^ (a * 0x9e3779b97f4a7c15ull) ^ (b << 17) ^ (c * 0xbf58476d1ce4e5b9ull);
    s->hash = pt_splitmix64(&x);
    if (s->print_trace)
        fprintf(stderr, "trace %llu %llu %llx\n", (unsigned long long)a, (unsigned long long)b,
                (unsigned long long)c);
}

uint64_t sim_trace_hash(const struct sim *s) { return s->hash; }
const struct sim_stats *sim_stats(const struct sim *s) { return &s->stats; }
uint64_t sim_now(struct sim *s) { return s->now; }

/* ---- event queue: a binary heap on (time, seq) -------------------------------------------- */

static int ev_less(const struct event *a, const struct event *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void heap_push(struct sim *s, struct event *e)
{
    size_t i;
    if (s->n_heap == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 256;
        s->heap = realloc(s->heap, s->heap_cap * sizeof(*s->heap));
        if (!s->heap) abort();
    }
    e->seq = ++s->seq;
    i = s->n_heap++;
    while (i > 0 && ev_less(e, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
}

static struct event *heap_pop(struct sim *s)
{
    struct event *top, *last;
    size_t i = 0;
    if (!s->n_heap) return NULL;
    top = s->heap[0];
    last = s->heap[--s->n_heap];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n_heap) break;
        if (c + 1 < s->n_heap && ev_less(s->heap[c + 1], s->heap[c])) c++;
        if (!ev_less(s->heap[c], last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n_heap) s->heap[i] = last;
    return top;
}

static struct event *ev_new(struct sim *s, enum ev_kind kind, struct sim_proc *p, uint64_t delay)
{
    struct event *e = calloc(1, sizeof(*e));
    if (!e) abort();
    e->kind = kind;
    e->proc = p;
    e->gen = p ? p->gen : 0;
    e->time = s->now + delay;
    return e;
}

static void ev_free(struct event *e)
{
    free(e->msg);
    free(e);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

void sim_faults_none(struct sim_faults *f)
{
    memset(f, 0, sizeof(*f));
    f->delay_min_ms = 1;
    f->delay_max_ms = 1;
}

void sim_faults_default(struct sim_faults *f)
{
    memset(f, 0, sizeof(*f));
    f->delay_min_ms = 1;
    f->delay_max_ms = 20;
    f->loss_ppm = 20000;
    f->dup_ppm = 10000;
    f->corrupt_ppm = 5000;
    f->reorder_ppm = 20000;
    f->reorder_max_ms = 300;
    f->partition_ppm = 30000;
    f->partition_max_ms = 4000;
    f->crash_ppm = 30000;
    f->restart_max_ms = 3000;
    f->pause_ppm = 20000;
    f->pause_max_ms = 3000;
    f->clock_jump_ppm = 20000;
    f->clock_jump_max_ms = 60000;
    /* Disk errors, per call: a failed write or fsync stops the replica's Raft I/O and the
     * harness's supervisor restarts it from its disk (pt_raft_failed_fn). */
    f->fsync_fail_ppm = 2000;
    f->read_eio_ppm = 500;
    f->write_eio_ppm = 1000;
    f->write_enospc_ppm = 1000;
    f->torn_ppm = 500000;
    f->stale_ppm = 0; /* a lying disk breaks any quorum protocol: unit-tested, off here */
}

static void schedule_fault_tick(struct sim *s)
{
    heap_push(s, ev_new(s, EV_FAULT_TICK, NULL, 100));
}

struct sim *sim_new(uint64_t seed, const struct sim_faults *faults)
{
    struct sim *s = calloc(1, sizeof(*s));
    if (!s) abort();
    pt_prng_seed(&s->rng, seed);
    s->f = *faults;
    s->hash = seed;
    s->print_trace = getenv("PETREL_SIM_TRACE") != NULL;
    schedule_fault_tick(s);
    return s;
}

static void ns_free(struct ns *n)
{
    free(n->e);
    memset(n, 0, sizeof(*n));
}

static void proc_free(struct sim_proc *p)
{
    size_t i;
    while (p->env) {
        struct sim_env *se = p->env;
        p->env = se->older;
        free(se);
    }
    for (i = 0; i < p->n_files; i++) {
        free(p->files[i].vol);
        free(p->files[i].dur);
        free(p->files[i].prev);
    }
    free(p->files);
    ns_free(&p->vol);
    ns_free(&p->dur);
    free(p);
}

void sim_free(struct sim *s)
{
    size_t i;
    int j;
    for (i = 0; i < s->n_heap; i++)
        ev_free(s->heap[i]);
    free(s->heap);
    free(s->timers);
    for (j = 0; j < s->n_procs; j++)
        proc_free(s->procs[j]);
    free(s);
}

void sim_set_faults(struct sim *s, const struct sim_faults *faults)
{
    s->f = *faults;
}

struct sim_proc *sim_proc_add(struct sim *s, const char *name)
{
    struct sim_proc *p;
    int i;
    if (s->n_procs == SIM_PROC_MAX) return NULL;
    p = calloc(1, sizeof(*p));
    if (!p) abort();
    p->sim = s;
    p->index = s->n_procs;
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->up = 1;
    p->gen = 1;
    p->can_crash = p->can_pause = p->can_partition = 1;
    env_new(p);
    for (i = 0; i < (int)PT_ARRAY_SIZE(p->fds); i++)
        p->fds[i] = -1;
    s->procs[s->n_procs++] = p;
    return p;
}

void sim_proc_set_hooks(struct sim_proc *p, const struct sim_proc_hooks *h) { p->hooks = *h; }
void sim_proc_set_faultable(struct sim_proc *p, int crash, int pause, int partition)
{
    p->can_crash = crash;
    p->can_pause = pause;
    p->can_partition = partition;
}
struct pt_env *sim_proc_env(struct sim_proc *p) { return &p->env->env; }
const char *sim_proc_name(struct sim_proc *p) { return p->name; }
int sim_proc_up(struct sim_proc *p) { return p->up; }
struct sim_proc *sim_env_proc(struct pt_env *e) { return proc_of(e); }

/* ---- disk: namespace ------------------------------------------------------------------------ */

static struct sim_dirent *ns_find(struct ns *n, const char *path)
{
    size_t i;
    for (i = 0; i < n->n; i++)
        if (strcmp(n->e[i].path, path) == 0) return &n->e[i];
    return NULL;
}

static void ns_put(struct ns *n, const char *path, int ino)
{
    struct sim_dirent *d = ns_find(n, path);
    if (!d) {
        if (n->n == n->cap) {
            n->cap = n->cap ? n->cap * 2 : 16;
            n->e = realloc(n->e, n->cap * sizeof(*n->e));
            if (!n->e) abort();
        }
        d = &n->e[n->n++];
        snprintf(d->path, sizeof(d->path), "%s", path);
    }
    d->ino = ino;
}

static void ns_del(struct ns *n, const char *path)
{
    struct sim_dirent *d = ns_find(n, path);
    if (d) *d = n->e[--n->n];
}

static void ns_copy(struct ns *dst, const struct ns *src)
{
    size_t i;
    dst->n = 0;
    for (i = 0; i < src->n; i++)
        ns_put(dst, src->e[i].path, src->e[i].ino);
}

/* Whether `path` sits directly in directory `dir` ("" = the top). */
static int in_dir(const char *path, const char *dir)
{
    const char *slash = strrchr(path, '/');
    size_t dl = strlen(dir);
    if (!slash) return dl == 0;
    return (size_t)(slash - path) == dl && strncmp(path, dir, dl) == 0;
}

static int path_ok(const char *path)
{
    size_t len = strlen(path);
    return len > 0 && len < NAME_MAX_ && path[0] != '/' && !strstr(path, "..");
}

static int parent_exists(struct sim_proc *p, const char *path)
{
    char dir[NAME_MAX_];
    const char *slash = strrchr(path, '/');
    struct sim_dirent *d;
    if (!slash) return 1;
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    d = ns_find(&p->vol, dir);
    return d && d->ino == -1;
}

/* ---- disk: files ---------------------------------------------------------------------------- */

static int file_new(struct sim_proc *p)
{
    if (p->n_files == p->files_cap) {
        p->files_cap = p->files_cap ? p->files_cap * 2 : 16;
        p->files = realloc(p->files, p->files_cap * sizeof(*p->files));
        if (!p->files) abort();
    }
    memset(&p->files[p->n_files], 0, sizeof(p->files[0]));
    return (int)p->n_files++;
}

static void buf_reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return;
    while (*cap < need)
        *cap = *cap ? *cap * 2 : 4096;
    *buf = realloc(*buf, *cap);
    if (!*buf) abort();
}

static void file_dirty(struct sim_file *f, size_t lo, size_t hi)
{
    if (f->lo >= f->hi) {
        f->lo = lo;
        f->hi = hi;
    } else {
        if (lo < f->lo) f->lo = lo;
        if (hi > f->hi) f->hi = hi;
    }
}

/* Make the file's current contents durable; remember the replaced bytes for a lying disk. */
static void file_sync(struct sim_file *f)
{
    size_t lo = f->lo, hi = f->hi;
    if (f->vol_len == f->dur_len && lo >= hi) return;
    if (lo >= hi) lo = hi = PT_MIN(f->vol_len, f->dur_len);
    if (hi > f->vol_len) hi = f->vol_len;
    /* previous version of the range */
    free(f->prev);
    f->prev_off = lo;
    f->prev_n = f->dur_len > lo ? PT_MIN(hi, f->dur_len) - PT_MIN(lo, f->dur_len) : 0;
    f->prev = malloc(f->prev_n ? f->prev_n : 1);
    if (!f->prev) abort();
    if (f->prev_n) memcpy(f->prev, f->dur + lo, f->prev_n);
    f->prev_dur_len = f->dur_len;
    f->has_prev = 1;
    buf_reserve(&f->dur, &f->dur_cap, f->vol_len);
    if (hi > lo) memcpy(f->dur + lo, f->vol + lo, hi - lo);
    f->dur_len = f->vol_len;
    f->lo = f->hi = 0;
}

/* A crash: the file becomes what the disk kept (durable, plus torn dirty sectors maybe). */
static void file_crash(struct sim *s, struct sim_file *f)
{
    if (f->has_prev && sim_chance(s, s->f.stale_ppm)) {
        /* The disk lies: the last sync of this file never happened. */
        if (f->prev_n) memcpy(f->dur + f->prev_off, f->prev, f->prev_n);
        f->dur_len = f->prev_dur_len;
        f->has_prev = 0;
        s->stats.stale_files++;
    }
    if ((f->lo < f->hi || f->vol_len != f->dur_len) && sim_chance(s, s->f.torn_ppm)) {
        /* Some dirty sectors reached the medium, the others did not; the size may too. */
        size_t lo = f->lo < f->hi ? f->lo : PT_MIN(f->vol_len, f->dur_len);
        size_t hi = f->lo < f->hi ? f->hi : PT_MAX(f->vol_len, f->dur_len);
        size_t len = f->dur_len, sec;
        if (f->vol_len > f->dur_len) len = f->dur_len + (size_t)sim_below(s, f->vol_len - f->dur_len + 1);
        buf_reserve(&f->dur, &f->dur_cap, PT_MAX(len, f->vol_len));
        if (len > f->dur_len) memset(f->dur + f->dur_len, 0, len - f->dur_len);
        for (sec = lo / SIM_SECTOR * SIM_SECTOR; sec < hi && sec < len; sec += SIM_SECTOR) {
            size_t end = PT_MIN(PT_MIN(sec + SIM_SECTOR, hi), len);
            if (sec < f->vol_len && sim_chance(s, SIM_PPM / 2))
                memcpy(f->dur + sec, f->vol + sec, PT_MIN(end, f->vol_len) - sec);
        }
        f->dur_len = len;
        s->stats.torn_files++;
    }
    buf_reserve(&f->vol, &f->cap, f->dur_len);
    if (f->dur_len) memcpy(f->vol, f->dur, f->dur_len);
    f->vol_len = f->dur_len;
    f->lo = f->hi = 0;
    f->open_fds = 0;
}

static struct sim_file *fd_file(struct sim_proc *p, int fd)
{
    if (fd < 0 || fd >= (int)PT_ARRAY_SIZE(p->fds) || p->fds[fd] < 0) return NULL;
    return &p->files[p->fds[fd]];
}

int64_t sim_disk_durable(struct sim_proc *p, const char *path, void *buf, size_t cap)
{
    struct sim_dirent *d = ns_find(&p->dur, path);
    struct sim_file *f;
    if (!d || d->ino < 0) return -PT_ENOENT;
    f = &p->files[d->ino];
    if (f->dur_len < cap) cap = f->dur_len;
    if (cap) memcpy(buf, f->dur, cap);
    return (int64_t)f->dur_len;
}

/* ---- env ops: clock, timers ----------------------------------------------------------------- */

static uint64_t op_now(struct pt_env *e) { return sim_env_proc(e)->sim->now; }

static uint64_t op_wall_ms(struct pt_env *e)
{
    struct sim_proc *p = sim_env_proc(e);
    /* 2026-01-01T00:00:00Z plus virtual time plus jumps */
    return (uint64_t)((int64_t)(1767225600000ull + p->sim->now) + p->wall_offset);
}

static uint64_t op_random(struct pt_env *e) { return sim_random(sim_env_proc(e)->sim); }

static uint64_t op_timer(struct pt_env *e, uint64_t delay_ms, pt_env_cb cb, void *ctx)
{
    struct sim_proc *p = sim_env_proc(e);
    struct sim *s = p->sim;
    uint64_t id = ++s->next_timer;
    struct event *ev;
    if (id >= s->timers_cap) {
        size_t old = s->timers_cap;
        s->timers_cap = s->timers_cap ? s->timers_cap * 2 : 1024;
        while (s->timers_cap <= id)
            s->timers_cap *= 2;
        s->timers = realloc(s->timers, s->timers_cap * sizeof(*s->timers));
        if (!s->timers) abort();
        memset(s->timers + old, 0, (s->timers_cap - old) * sizeof(*s->timers));
    }
    ev = ev_new(s, EV_TIMER, p, delay_ms);
    ev->gen = env_of(e)->gen; /* a dead incarnation's timers still fire: it frees itself */
    ev->timer_id = id;
    ev->cb = cb;
    ev->ctx = ctx;
    s->timers[id] = ev;
    heap_push(s, ev);
    return id;
}

static void op_cancel(struct pt_env *e, uint64_t id)
{
    struct sim *s = sim_env_proc(e)->sim;
    if (id && id < s->timers_cap && s->timers[id]) {
        s->timers[id]->cb = NULL; /* stays in the heap, does nothing */
        s->timers[id] = NULL;
    }
}

/* ---- env ops: network ----------------------------------------------------------------------- */

static int op_listen(struct pt_env *e, const char *self, pt_env_msg_cb cb, void *ctx)
{
    struct sim_proc *p = sim_env_proc(e);
    struct sim *s = p->sim;
    int i, j;
    if (strlen(self) >= PT_ENV_ADDR_MAX || !self[0]) return -PT_EINVAL;
    if (!env_live(e)) return -PT_EIO;
    for (i = 0; i < s->n_procs; i++)
        for (j = 0; j < s->procs[i]->n_listeners; j++)
            if (strcmp(s->procs[i]->listeners[j].addr, self) == 0) return -PT_EADDRINUSE;
    if (p->n_listeners == (int)PT_ARRAY_SIZE(p->listeners)) return -PT_EMFILE;
    snprintf(p->listeners[p->n_listeners].addr, PT_ENV_ADDR_MAX, "%s", self);
    p->listeners[p->n_listeners].cb = cb;
    p->listeners[p->n_listeners].ctx = ctx;
    p->n_listeners++;
    return 0;
}

static struct listener *find_listener(struct sim *s, const char *addr, struct sim_proc **owner)
{
    int i, j;
    for (i = 0; i < s->n_procs; i++)
        for (j = 0; j < s->procs[i]->n_listeners; j++)
            if (strcmp(s->procs[i]->listeners[j].addr, addr) == 0) {
                *owner = s->procs[i];
                return &s->procs[i]->listeners[j];
            }
    return NULL;
}

static void queue_msg(struct sim *s, struct sim_proc *from, const char *to, const uint8_t *msg,
                      size_t len, uint64_t delay)
{
    struct event *ev = ev_new(s, EV_MSG, NULL, delay);
    ev->from = from;
    ev->gen = from->gen;
    /* the transport names a sender by its first listener (env_uv's handshake does the same) */
    snprintf(ev->from_addr, sizeof(ev->from_addr), "%s",
             from->n_listeners ? from->listeners[0].addr : "");
    snprintf(ev->to, sizeof(ev->to), "%s", to);
    ev->msg = malloc(len ? len : 1);
    if (!ev->msg) abort();
    if (len) memcpy(ev->msg, msg, len);
    ev->len = len;
    if (len && sim_chance(s, s->f.corrupt_ppm)) {
        ev->msg[sim_below(s, len)] ^= (uint8_t)(1u << sim_below(s, 8));
        s->stats.msgs_corrupt++;
    }
    heap_push(s, ev);
}

static uint64_t msg_delay(struct sim *s)
{
    const struct sim_faults *f = &s->f;
    uint64_t d = f->delay_min_ms;
    if (f->delay_max_ms > f->delay_min_ms) d += sim_below(s, f->delay_max_ms - f->delay_min_ms + 1);
    if (sim_chance(s, f->reorder_ppm)) d += sim_below(s, f->reorder_max_ms + 1);
    return d;
}

static int op_send(struct pt_env *e, const char *to, const uint8_t *msg, size_t len)
{
    struct sim_proc *p = sim_env_proc(e);
    struct sim *s = p->sim;
    if (len > PT_ENV_MSG_MAX) return -PT_E2BIG;
    if (!env_live(e)) return 0; /* a dead process sends nothing */
    s->stats.msgs_sent++;
    if (sim_chance(s, s->f.loss_ppm)) {
        s->stats.msgs_lost++;
        return 0;
    }
    queue_msg(s, p, to, msg, len, msg_delay(s));
    if (sim_chance(s, s->f.dup_ppm)) {
        s->stats.msgs_dup++;
        queue_msg(s, p, to, msg, len, msg_delay(s));
    }
    return 0;
}

/* ---- env ops: disk -------------------------------------------------------------------------- */

static int disk_fault(struct pt_env *e, uint32_t eio_ppm, uint32_t enospc_ppm)
{
    struct sim_proc *p = proc_of(e);
    struct sim *s = p->sim;
    if (!env_live(e)) return -PT_EIO;
    if (!p->can_crash) return 0; /* processes the profile spares (clients) get a clean disk */
    if (sim_chance(s, eio_ppm)) {
        s->stats.io_errors++;
        return -PT_EIO;
    }
    if (sim_chance(s, enospc_ppm)) {
        s->stats.io_errors++;
        return -PT_ENOSPC;
    }
    return 0;
}

static int op_open(struct pt_env *e, const char *path, int flags)
{
    struct sim_proc *p = sim_env_proc(e);
    struct sim_dirent *d;
    int fd, ino;
    if (!env_live(e)) return -PT_EIO;
    if (!path_ok(path)) return -PT_EINVAL;
    d = ns_find(&p->vol, path);
    if (d && d->ino < 0) return -PT_EISDIR;
    if (d && (flags & PT_ENV_CREAT) && (flags & PT_ENV_EXCL)) return -PT_EEXIST;
    if (!d && !(flags & PT_ENV_CREAT)) return -PT_ENOENT;
    if (!d && !parent_exists(p, path)) return -PT_ENOENT;
    for (fd = 0; fd < (int)PT_ARRAY_SIZE(p->fds); fd++)
        if (p->fds[fd] < 0) break;
    if (fd == (int)PT_ARRAY_SIZE(p->fds)) return -PT_EMFILE;
    if (d)
        ino = d->ino;
    else {
        ino = file_new(p);
        ns_put(&p->vol, path, ino);
    }
    p->fds[fd] = ino;
    p->files[ino].open_fds++;
    return fd;
}

static int op_close(struct pt_env *e, int fd)
{
    struct sim_proc *p = sim_env_proc(e);
    struct sim_file *f = fd_file(p, fd);
    if (!env_live(e)) return 0; /* its descriptors died with it */
    if (!f) return -PT_EBADF;
    f->open_fds--;
    p->fds[fd] = -1;
    return 0;
}

static int64_t op_pread(struct pt_env *e, int fd, void *buf, size_t len, uint64_t off)
{
    struct sim_proc *p = sim_env_proc(e);
    struct sim_file *f = fd_file(p, fd);
    int rc;
    if (!env_live(e)) return -PT_EIO;
    if (!f) return -PT_EBADF;
    if ((rc = disk_fault(e, p->sim->f.read_eio_ppm, 0)) != 0) return rc;
    if (off >= f->vol_len) return 0;
    if (len > f->vol_len - off) len = (size_t)(f->vol_len - off);
    memcpy(buf, f->vol + off, len);
    return (int64_t)len;
}

static int op_pwrite(struct pt_env *e, int fd, const void *buf, size_t len, uint64_t off)
{
    struct sim_proc *p = sim_env_proc(e);
    struct sim_file *f = fd_file(p, fd);
    int rc;
    if (!env_live(e)) return -PT_EIO;
    if (!f) return -PT_EBADF;
    if ((rc = disk_fault(e, p->sim->f.write_eio_ppm, p->sim->f.write_enospc_ppm)) != 0) return rc;
    if (off + len > (64u << 20)) return -PT_ENOSPC;
    buf_reserve(&f->vol, &f->cap, (size_t)off + len);
    if (off > f->vol_len) memset(f->vol + f->vol_len, 0, (size_t)off - f->vol_len);
    memcpy(f->vol + off, buf, len);
    if (off + len > f->vol_len) f->vol_len = (size_t)off + len;
    file_dirty(f, (size_t)off, (size_t)off + len);
    return 0;
}

static int op_truncate(struct pt_env *e, int fd, uint64_t size)
{
    struct sim_proc *p = sim_env_proc(e);
    struct sim_file *f = fd_file(p, fd);
    int rc;
    if (!env_live(e)) return -PT_EIO;
    if (!f) return -PT_EBADF;
    if ((rc = disk_fault(e, p->sim->f.write_eio_ppm, 0)) != 0) return rc;
    buf_reserve(&f->vol, &f->cap, (size_t)size);
    if (size > f->vol_len) {
        memset(f->vol + f->vol_len, 0, (size_t)size - f->vol_len);
        file_dirty(f, f->vol_len, (size_t)size);
    }
    f->vol_len = (size_t)size;
    if (f->hi > size) f->hi = (size_t)size;
    return 0;
}

static int64_t op_size(struct pt_env *e, int fd)
{
    struct sim_file *f = env_live(e) ? fd_file(sim_env_proc(e), fd) : NULL;
    return f ? (int64_t)f->vol_len : -PT_EBADF;
}

static void op_fsync(struct pt_env *e, int fd, void (*done)(void *ctx, int status), void *ctx)
{
    struct sim_proc *p = sim_env_proc(e);
    struct sim *s = p->sim;
    struct event *ev;
    ev = ev_new(s, EV_FSYNC, p, 1 + sim_below(s, 5));
    ev->gen = env_of(e)->gen;
    ev->done = done;
    ev->ctx = ctx;
    ev->ino = env_live(e) && fd_file(p, fd) ? p->fds[fd] : -1;
    ev->status = ev->ino < 0 ? -PT_EBADF : 0;
    if (ev->status == 0 && p->can_crash && sim_chance(s, s->f.fsync_fail_ppm)) {
        ev->status = -PT_EIO;
        s->stats.fsync_fails++;
    }
    heap_push(s, ev);
}

static int op_rename(struct pt_env *e, const char *from, const char *to)
{
    struct sim_proc *p = sim_env_proc(e);
    struct sim_dirent *d;
    int ino, rc;
    if ((rc = disk_fault(e, p->sim->f.write_eio_ppm, 0)) != 0) return rc;
    if (!path_ok(from) || !path_ok(to)) return -PT_EINVAL;
    d = ns_find(&p->vol, from);
    if (!d) return -PT_ENOENT;
    if (!parent_exists(p, to)) return -PT_ENOENT;
    ino = d->ino;
    ns_del(&p->vol, from);
    ns_put(&p->vol, to, ino);
    return 0;
}

static int op_unlink(struct pt_env *e, const char *path)
{
    struct sim_proc *p = sim_env_proc(e);
    struct sim_dirent *d;
    int rc;
    if ((rc = disk_fault(e, p->sim->f.write_eio_ppm, 0)) != 0) return rc;
    if (!path_ok(path)) return -PT_EINVAL;
    d = ns_find(&p->vol, path);
    if (!d) return -PT_ENOENT;
    if (d->ino < 0) return -PT_EISDIR;
    ns_del(&p->vol, path);
    return 0;
}

static int op_mkdir(struct pt_env *e, const char *path)
{
    struct sim_proc *p = sim_env_proc(e);
    int rc;
    if ((rc = disk_fault(e, p->sim->f.write_eio_ppm, p->sim->f.write_enospc_ppm)) != 0) return rc;
    if (!path_ok(path)) return -PT_EINVAL;
    if (ns_find(&p->vol, path)) return -PT_EEXIST;
    if (!parent_exists(p, path)) return -PT_ENOENT;
    ns_put(&p->vol, path, -1);
    return 0;
}

static int op_fsync_dir(struct pt_env *e, const char *path)
{
    struct sim_proc *p = sim_env_proc(e);
    size_t i;
    int rc;
    if ((rc = disk_fault(e, p->sim->f.fsync_fail_ppm, 0)) != 0) return rc;
    for (i = 0; i < p->dur.n;)
        if (in_dir(p->dur.e[i].path, path))
            p->dur.e[i] = p->dur.e[--p->dur.n];
        else
            i++;
    for (i = 0; i < p->vol.n; i++)
        if (in_dir(p->vol.e[i].path, path)) ns_put(&p->dur, p->vol.e[i].path, p->vol.e[i].ino);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int op_list(struct pt_env *e, const char *path, char *buf, size_t cap)
{
    struct sim_proc *p = sim_env_proc(e);
    const char *names[256];
    size_t i, n = 0, pos = 0, skip = path[0] ? strlen(path) + 1 : 0;
    if (!env_live(e)) return -PT_EIO;
    if (path[0]) {
        struct sim_dirent *d = ns_find(&p->vol, path);
        if (!d) return -PT_ENOENT;
        if (d->ino >= 0) return -PT_ENOTDIR;
    }
    for (i = 0; i < p->vol.n; i++)
        if (in_dir(p->vol.e[i].path, path)) {
            if (n == PT_ARRAY_SIZE(names)) return -PT_EOVERFLOW;
            names[n++] = p->vol.e[i].path + skip;
        }
    qsort(names, n, sizeof(names[0]), cmp_str);
    for (i = 0; i < n; i++) {
        size_t l = strlen(names[i]) + 1;
        if (pos + l > cap) return -PT_ERANGE;
        memcpy(buf + pos, names[i], l);
        pos += l;
    }
    return (int)n;
}

static const struct pt_env_ops sim_ops = {
    .now = op_now,
    .wall_ms = op_wall_ms,
    .random = op_random,
    .timer = op_timer,
    .cancel = op_cancel,
    .listen = op_listen,
    .send = op_send,
    .open = op_open,
    .close = op_close,
    .pread = op_pread,
    .pwrite = op_pwrite,
    .truncate = op_truncate,
    .size = op_size,
    .fsync = op_fsync,
    .rename = op_rename,
    .unlink = op_unlink,
    .mkdir = op_mkdir,
    .fsync_dir = op_fsync_dir,
    .list = op_list,
};

/* ---- process faults ------------------------------------------------------------------------- */

void sim_proc_crash(struct sim_proc *p)
{
    struct sim *s = p->sim;
    size_t i;
    if (!p->up) return;
    p->up = 0;
    p->gen++; /* its pending events die */
    p->n_listeners = 0;
    p->paused_until = 0;
    for (i = 0; i < PT_ARRAY_SIZE(p->fds); i++)
        p->fds[i] = -1;
    if (s->print_trace) {
        for (i = 0; i < p->vol.n; i++) {
            struct sim_dirent *d = &p->vol.e[i], *dd = ns_find(&p->dur, d->path);
            fprintf(stderr, "crash %s %llu: %s ino %d vol %zu dur %zu%s\n", p->name,
                    (unsigned long long)s->now, d->path, d->ino,
                    d->ino >= 0 ? p->files[d->ino].vol_len : 0,
                    d->ino >= 0 ? p->files[d->ino].dur_len : 0,
                    dd ? (dd->ino == d->ino ? "" : " (durable name: other file)") : " (name not durable)");
        }
        for (i = 0; i < p->dur.n; i++)
            if (!ns_find(&p->vol, p->dur.e[i].path))
                fprintf(stderr, "crash %s %llu: %s durable but unlinked\n", p->name,
                        (unsigned long long)s->now, p->dur.e[i].path);
    }
    for (i = 0; i < p->n_files; i++)
        file_crash(s, &p->files[i]);
    ns_copy(&p->vol, &p->dur);
    s->stats.crashes++;
    trace(s, 100, s->now, (uint64_t)p->index);
    if (p->hooks.stop) p->hooks.stop(p->hooks.ctx);
}

void sim_proc_restart(struct sim_proc *p)
{
    if (p->up) return;
    p->up = 1;
    p->gen++;
    env_new(p);
    trace(p->sim, 101, p->sim->now, (uint64_t)p->index);
    if (p->hooks.start) p->hooks.start(p->hooks.ctx);
}

void sim_proc_restart_later(struct sim_proc *p, uint64_t ms)
{
    struct event *ev = ev_new(p->sim, EV_RESTART, NULL, ms);
    ev->a = p->index;
    heap_push(p->sim, ev);
}

void sim_proc_pause(struct sim_proc *p, uint64_t ms)
{
    p->paused_until = p->sim->now + ms;
    p->sim->stats.pauses++;
}

void sim_proc_clock_jump(struct sim_proc *p, int64_t delta_ms)
{
    p->wall_offset += delta_ms;
    p->sim->stats.clock_jumps++;
}

void sim_block(struct sim *s, struct sim_proc *a, struct sim_proc *b, int blocked)
{
    s->blocked[a->index][b->index] = (uint8_t)(blocked != 0);
}

void sim_heal(struct sim *s)
{
    int i;
    memset(s->blocked, 0, sizeof(s->blocked));
    for (i = 0; i < s->n_procs; i++)
        s->procs[i]->paused_until = 0;
}

/* A partition around process i: symmetric, one-way (either way) or flapping. */
static void start_partition(struct sim *s, int i)
{
    uint64_t len = 200 + sim_below(s, s->f.partition_max_ms + 1);
    int kind = (int)sim_below(s, 4), j;
    struct event *ev;
    for (j = 0; j < s->n_procs; j++) {
        if (j == i || !s->procs[j]->can_partition) continue;
        if (kind != 2) s->blocked[i][j] = 1; /* i cannot talk */
        if (kind != 1) s->blocked[j][i] = 1; /* i cannot hear */
    }
    s->stats.partitions++;
    ev = ev_new(s, kind == 3 ? EV_FLAP : EV_UNBLOCK, NULL, kind == 3 ? 100 + sim_below(s, 400) : len);
    ev->a = i;
    ev->flaps = kind == 3 ? 2 + (int)sim_below(s, 8) : 0;
    heap_push(s, ev);
}

static void unblock(struct sim *s, int i)
{
    int j;
    for (j = 0; j < s->n_procs; j++)
        s->blocked[i][j] = s->blocked[j][i] = 0;
}

static void fault_tick(struct sim *s)
{
    const struct sim_faults *f = &s->f;
    int i;
    for (i = 0; i < s->n_procs; i++) {
        struct sim_proc *p = s->procs[i];
        /* rates are per second; this runs every 100 ms */
        if (p->can_partition && sim_chance(s, f->partition_ppm / 10)) start_partition(s, i);
        if (p->up && p->can_crash && sim_chance(s, f->crash_ppm / 10)) {
            struct event *ev = ev_new(s, EV_RESTART, NULL, 1 + sim_below(s, f->restart_max_ms + 1));
            ev->a = i;
            sim_proc_crash(p);
            heap_push(s, ev);
        }
        if (p->up && p->can_pause && sim_chance(s, f->pause_ppm / 10))
            sim_proc_pause(p, 1 + sim_below(s, f->pause_max_ms + 1));
        if (sim_chance(s, f->clock_jump_ppm / 10))
            sim_proc_clock_jump(p, (int64_t)sim_below(s, 2ull * f->clock_jump_max_ms + 1) -
                                       (int64_t)f->clock_jump_max_ms);
    }
    schedule_fault_tick(s);
}

/* ---- the loop ------------------------------------------------------------------------------- */

int sim_step(struct sim *s)
{
    struct event *ev = heap_pop(s);
    struct sim_proc *to = NULL;
    struct listener *l;
    if (!ev) return 0;
    if (ev->time > s->now) s->now = ev->time;
    /* A paused process runs nothing until its pause ends: push its events past it. */
    if (ev->proc && ev->proc->paused_until > s->now && ev->gen == ev->proc->gen) {
        ev->time = ev->proc->paused_until;
        heap_push(s, ev);
        return 1;
    }
    s->stats.events++;
    switch (ev->kind) {
    case EV_TIMER:
        if (s->timers[ev->timer_id] == ev) s->timers[ev->timer_id] = NULL;
        if (ev->cb) {
            trace(s, EV_TIMER, s->now, ev->timer_id);
            ev->cb(ev->ctx);
        }
        break;
    case EV_FSYNC:
        if (ev->gen != ev->proc->gen) {
            /* Crashed meanwhile: nothing becomes durable (the disk already crashed). The dead
             * incarnation is told nothing bad: it is only closing, and libraft 0.15 crashes
             * when an append fails while it closes. */
            trace(s, EV_FSYNC, s->now, 0);
            ev->done(ev->ctx, 0);
        } else {
            if (ev->status == 0) file_sync(&ev->proc->files[ev->ino]);
            trace(s, EV_FSYNC, s->now, (uint64_t)ev->proc->index * 16 + (uint64_t)-ev->status);
            ev->done(ev->ctx, ev->status);
        }
        break;
    case EV_MSG:
        l = find_listener(s, ev->to, &to);
        if (!l) break;
        if (s->blocked[ev->from->index][to->index]) {
            s->stats.msgs_blocked++;
            break;
        }
        if (to->paused_until > s->now) {
            /* the receiver is paused: the message waits in its socket buffer */
            ev->time = to->paused_until;
            heap_push(s, ev);
            return 1;
        }
        s->stats.msgs_delivered++;
        if (s->print_trace) {
            size_t k;
            fprintf(stderr, "msg %s -> %s:", ev->from->name, ev->to);
            for (k = 0; k < ev->len && k < 200; k++)
                fprintf(stderr, "%02x", ev->msg[k]);
            fprintf(stderr, "\n");
        }
        trace(s, EV_MSG, s->now, petrel_crc32c(0, ev->msg, ev->len) ^ ((uint64_t)to->index << 32));
        l->cb(l->ctx, ev->from_addr, ev->msg, ev->len);
        break;
    case EV_RESTART:
        sim_proc_restart(s->procs[ev->a]);
        break;
    case EV_FAULT_TICK:
        fault_tick(s);
        break;
    case EV_UNBLOCK:
        unblock(s, ev->a);
        break;
    case EV_FLAP: {
        int j, on = ev->flaps % 2;
        for (j = 0; j < s->n_procs; j++)
            if (j != ev->a && s->procs[j]->can_partition)
                s->blocked[ev->a][j] = s->blocked[j][ev->a] = (uint8_t)on;
        if (--ev->flaps > 0) {
            struct event *next = ev_new(s, EV_FLAP, NULL, 100 + sim_below(s, 400));
            next->a = ev->a;
            next->flaps = ev->flaps;
            heap_push(s, next);
        } else
            unblock(s, ev->a);
        break;
    }
    }
    ev_free(ev);
    return 1;
}

void sim_run_until(struct sim *s, uint64_t t)
{
    while (s->n_heap && s->heap[0]->time <= t)
        sim_step(s);
    if (s->now < t) s->now = t;
}

int sim_run_until_cond(struct sim *s, uint64_t t, int (*pred)(void *ctx), void *ctx)
{
    while (!pred(ctx)) {
        if (!s->n_heap || s->heap[0]->time > t) {
            if (s->now < t) s->now = t;
            return pred(ctx);
        }
        sim_step(s);
    }
    return 1;
}
