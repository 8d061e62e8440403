/* base_frame.h -- one encoded Engine.IO packet, shared by reference.
 *
 * A broadcast is encoded once into frames and the same frames are queued on every
 * recipient (h2o shared chunks, lws fan-out). A frame holds the packet in its
 * WebSocket form: a text frame is the whole Engine.IO packet ("4" + Socket.IO text,
 * "2" for a ping ...); a binary frame is the raw attachment bytes. The polling
 * transport derives its payload encoding ("b" + base64) from the same frame.
 *
 * BASE_FRAME_PRE bytes of headroom precede the payload so the WebSocket layer can
 * write its header in place (libwebsockets' LWS_PRE); the engine checks at compile time
 * that it is large enough. Frames are touched only on the loop thread, so the
 * reference count is a plain integer.
 */
#ifndef BASE_FRAME_H
#define BASE_FRAME_H

#include <stddef.h>

#define BASE_FRAME_PRE 32

typedef struct base_frame {
    unsigned refcnt;      /* owners: queues and the encoder until it hands it over */
    unsigned char binary; /* 1 = binary attachment, 0 = text Engine.IO packet */
    size_t len;           /* payload length, headroom excluded */
    /* The WebSocket permessage-deflate form, made by the first compressing recipient
     * and reused by the others (eio_ws_send.c: the engine's deflate is the same for every
     * connection). Owned by the frame; freed with it. */
    unsigned char *z;      /* compressed bytes, headroom before them; NULL when not made */
    size_t z_len;          /* compressed length */
    unsigned char z_tried; /* 1 once compression was tried (z NULL: it does not pay) */
    unsigned char buf[];   /* BASE_FRAME_PRE headroom, then len payload bytes, then a NUL */
} base_frame_t;

/* New frame with refcnt 1 and room for len payload bytes (uninitialised, NUL after). */
base_frame_t *base_frame_new(size_t len, int binary);
/* New frame holding a copy of data. */
base_frame_t *base_frame_from(const void *data, size_t len, int binary);

static inline unsigned char *base_frame_data(base_frame_t *f)
{
    return f->buf + BASE_FRAME_PRE;
}

static inline base_frame_t *base_frame_ref(base_frame_t *f)
{
    f->refcnt++;
    return f;
}

/* Drops one reference; frees the frame when it was the last. NULL is ignored. */
void base_frame_unref(base_frame_t *f);

#endif
