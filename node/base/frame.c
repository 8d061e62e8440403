#include "sk_frame.h"

#include <string.h>

#include "sk_alloc.h"

sio_frame_t *sio_frame_new(size_t len, int binary)
{
    sio_frame_t *f = sio_malloc(sizeof(*f) + SIO_FRAME_PRE + len + 1);
    f->refcnt = 1;
    f->binary = binary ? 1 : 0;
    f->len = len;
    f->z = NULL;
    f->z_len = 0;
    f->z_tried = 0;
    f->buf[SIO_FRAME_PRE + len] = '\0';
    return f;
}

sio_frame_t *sio_frame_from(const void *data, size_t len, int binary)
{
    sio_frame_t *f = sio_frame_new(len, binary);
    if (len)
        memcpy(sio_frame_data(f), data, len);
    return f;
}

void sio_frame_unref(sio_frame_t *f)
{
    if (f != NULL && --f->refcnt == 0) {
        sio_free(f->z);
        sio_free(f);
    }
}
