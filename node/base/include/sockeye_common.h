/* sockeye_common.h -- the vocabulary every layer and the public API share.
 *
 * Part of the foundation (node/base): error codes and buffers cross every layer, from
 * the codecs to the embedding API, so they are defined once, here, at the bottom.
 * They keep the public API's sio_ names (sockeye.h includes this header): an embedder
 * sees one error type whichever layer produced the error.
 */
#ifndef SOCKEYE_COMMON_H
#define SOCKEYE_COMMON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

typedef enum sio_err {
    SIO_OK = 0,
    SIO_ENOMEM = -1,    /* allocation failed */
    SIO_EINVAL = -2,    /* bad argument */
    SIO_ECLOSED = -3,   /* the socket/server is closed or closing */
    SIO_ETIMEDOUT = -4, /* an acknowledgement did not arrive in time */
    SIO_EPARSE = -5,    /* malformed input */
    SIO_ETOOBIG = -6,   /* over a configured size limit */
    SIO_EIO = -7,       /* network / listen error */
    SIO_ENOTFOUND = -8, /* no such namespace, session, room ... */
    SIO_EBUSY = -9,     /* queue over its high-water mark */
    SIO_EREDIS = -10,   /* Redis unreachable or refused the command */
} sio_err_t;

const char *sio_strerror(int err);

/* A binary value: the bytes of one Socket.IO attachment. */
typedef struct sio_bin {
    unsigned char *data;
    size_t len;
} sio_bin_t;

#ifdef __cplusplus
}
#endif
#endif
