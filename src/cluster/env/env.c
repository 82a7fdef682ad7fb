/* Dispatch of the env interface (env.h) to its implementation's vtable. */
#include "cluster/env/env.h"

uint64_t pt_env_now(struct pt_env *e) { return e->ops->now(e); }
uint64_t pt_env_wall_ms(struct pt_env *e) { return e->ops->wall_ms(e); }
uint64_t pt_env_random(struct pt_env *e) { return e->ops->random(e); }
uint64_t pt_env_timer(struct pt_env *e, uint64_t delay_ms, pt_env_cb cb, void *ctx)
{
    return e->ops->timer(e, delay_ms, cb, ctx);
}
void pt_env_cancel(struct pt_env *e, uint64_t timer_id) { e->ops->cancel(e, timer_id); }
int pt_env_listen(struct pt_env *e, const char *self, pt_env_msg_cb cb, void *ctx)
{
    return e->ops->listen(e, self, cb, ctx);
}
int pt_env_send(struct pt_env *e, const char *to, const uint8_t *msg, size_t len)
{
    return e->ops->send(e, to, msg, len);
}

void pt_env_refuse(struct pt_env *e)
{
    if (e->ops->refuse) e->ops->refuse(e);
}
int pt_env_open(struct pt_env *e, const char *path, int flags) { return e->ops->open(e, path, flags); }
int pt_env_close(struct pt_env *e, int fd) { return e->ops->close(e, fd); }
int64_t pt_env_pread(struct pt_env *e, int fd, void *buf, size_t len, uint64_t off)
{
    return e->ops->pread(e, fd, buf, len, off);
}
int pt_env_pwrite(struct pt_env *e, int fd, const void *buf, size_t len, uint64_t off)
{
    return e->ops->pwrite(e, fd, buf, len, off);
}
int pt_env_truncate(struct pt_env *e, int fd, uint64_t size) { return e->ops->truncate(e, fd, size); }
int64_t pt_env_size(struct pt_env *e, int fd) { return e->ops->size(e, fd); }
void pt_env_fsync(struct pt_env *e, int fd, void (*done)(void *ctx, int status), void *ctx)
{
    e->ops->fsync(e, fd, done, ctx);
}
int pt_env_rename(struct pt_env *e, const char *from, const char *to)
{
    return e->ops->rename(e, from, to);
}
int pt_env_unlink(struct pt_env *e, const char *path) { return e->ops->unlink(e, path); }
int pt_env_mkdir(struct pt_env *e, const char *path) { return e->ops->mkdir(e, path); }
int pt_env_fsync_dir(struct pt_env *e, const char *path) { return e->ops->fsync_dir(e, path); }
int pt_env_list(struct pt_env *e, const char *path, char *buf, size_t cap)
{
    return e->ops->list(e, path, buf, cap);
}
