/* frame.c -- shared encoded frames (base_frame.h). */
#include "base_frame.h"

#include <string.h>

#include "base_alloc.h"

base_frame_t *base_frame_new(size_t len, int binary)
{
    base_frame_t *f = base_malloc(sizeof(*f) + BASE_FRAME_PRE + len + 1);
    f->refcnt = 1;
    f->binary = binary ? 1 : 0;
    f->len = len;
    f->z = NULL;
    f->z_len = 0;
    f->z_tried = 0;
    f->buf[BASE_FRAME_PRE + len] = '\0';
    return f;
}

base_frame_t *base_frame_from(const void *data, size_t len, int binary)
{
    base_frame_t *f = base_frame_new(len, binary);
    if (len)
        memcpy(base_frame_data(f), data, len);
    return f;
}

void base_frame_unref(base_frame_t *f)
{
    if (f != NULL && --f->refcnt == 0) {
        base_free(f->z);
        base_free(f);
    }
}
