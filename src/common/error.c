/*
 * Error code names and messages: the one place a Petrel code becomes text.
 */
#include "petrel/common.h"

#include <stddef.h>

struct error_text {
    int code;
    const char *name;
    const char *message;
};

static const struct error_text error_texts[] = {
    {PT_OK, "PT_OK", "success"},
    {PT_EPERM, "PT_EPERM", "operation not permitted"},
    {PT_ENOENT, "PT_ENOENT", "no such file or directory"},
    {PT_EINTR, "PT_EINTR", "interrupted"},
    {PT_EIO, "PT_EIO", "input/output error"},
    {PT_ENXIO, "PT_ENXIO", "no such device"},
    {PT_E2BIG, "PT_E2BIG", "argument list too long"},
    {PT_EBADF, "PT_EBADF", "bad file handle"},
    {PT_EAGAIN, "PT_EAGAIN", "resource temporarily unavailable"},
    {PT_ENOMEM, "PT_ENOMEM", "out of memory"},
    {PT_EACCES, "PT_EACCES", "permission denied"},
    {PT_EBUSY, "PT_EBUSY", "resource busy"},
    {PT_EEXIST, "PT_EEXIST", "file exists"},
    {PT_EXDEV, "PT_EXDEV", "cross-device link"},
    {PT_ENOTDIR, "PT_ENOTDIR", "not a directory"},
    {PT_EISDIR, "PT_EISDIR", "is a directory"},
    {PT_EINVAL, "PT_EINVAL", "invalid argument"},
    {PT_EMFILE, "PT_EMFILE", "too many open files"},
    {PT_EFBIG, "PT_EFBIG", "file too large"},
    {PT_ENOSPC, "PT_ENOSPC", "no space left on device"},
    {PT_EROFS, "PT_EROFS", "read-only filesystem"},
    {PT_ERANGE, "PT_ERANGE", "result out of range"},
    {PT_ENAMETOOLONG, "PT_ENAMETOOLONG", "name too long"},
    {PT_ENOTEMPTY, "PT_ENOTEMPTY", "directory not empty"},
    {PT_ELOOP, "PT_ELOOP", "would create a directory loop"},
    {PT_ENODATA, "PT_ENODATA", "no such attribute"},
    {PT_EPROTO, "PT_EPROTO", "protocol error"},
    {PT_EBADMSG, "PT_EBADMSG", "bad message checksum"},
    {PT_EOVERFLOW, "PT_EOVERFLOW", "value too large"},
    {PT_ECORRUPT, "PT_ECORRUPT", "corrupt data"},
    {PT_ENOTSUP, "PT_ENOTSUP", "operation not supported"},
    {PT_EADDRINUSE, "PT_EADDRINUSE", "address in use"},
    {PT_ECONNRESET, "PT_ECONNRESET", "connection reset"},
    {PT_ETIMEDOUT, "PT_ETIMEDOUT", "timed out"},
    {PT_ECONNREFUSED, "PT_ECONNREFUSED", "connection refused"},
    {PT_EHOSTUNREACH, "PT_EHOSTUNREACH", "host unreachable"},
    {PT_ESTALE, "PT_ESTALE", "stale handle or address"},
    {PT_ECANCELED, "PT_ECANCELED", "operation canceled"},
    {PT_ENOTLEADER, "PT_ENOTLEADER", "not the leader"},
    {PT_EVERSION, "PT_EVERSION", "unsupported format or protocol version"},
    {PT_ENOTCERT, "PT_ENOTCERT", "missing or invalid certificate"},
    {PT_EINDOUBT, "PT_EINDOUBT", "outcome unknown: leadership lost after the request was logged"},
    {PT_ENOHOST, "PT_ENOHOST", "unknown host"},
};

static const struct error_text *error_find(int err)
{
    size_t i;
    if (err < 0) err = -err;
    for (i = 0; i < sizeof(error_texts) / sizeof(error_texts[0]); i++)
        if (error_texts[i].code == err) return &error_texts[i];
    return NULL;
}

const char *petrel_strerror(int err)
{
    const struct error_text *t = error_find(err);
    return t ? t->message : "unknown error";
}

const char *petrel_errname(int err)
{
    const struct error_text *t = error_find(err);
    return t ? t->name : "PT_E?";
}
