/* err.c -- messages of the error codes every layer returns (sockeye_common.h). */
#include "sockeye_common.h"

static const struct {
    int err;
    const char *msg;
} base__errors[] = {
    {SIO_OK, "success"},
    {SIO_ENOMEM, "out of memory"},
    {SIO_EINVAL, "invalid argument"},
    {SIO_ECLOSED, "socket or server closed"},
    {SIO_ETIMEDOUT, "acknowledgement timed out"},
    {SIO_EPARSE, "malformed input"},
    {SIO_ETOOBIG, "over a size limit"},
    {SIO_EIO, "network or listen error"},
    {SIO_ENOTFOUND, "not found"},
    {SIO_EBUSY, "queue over its high-water mark"},
    {SIO_EREDIS, "redis unreachable or refused the command"},
};

/* Message for an sio_err_t; a static string, "unknown error" for other values. */
const char *sio_strerror(int err)
{
    for (size_t i = 0; i < sizeof(base__errors) / sizeof(base__errors[0]); i++)
        if (base__errors[i].err == err)
            return base__errors[i].msg;
    return "unknown error";
}
