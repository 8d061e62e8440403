/* cd_eio.h -- Engine.IO v4 packet and polling-payload codec, free of I/O.
 *
 * Packets: a type digit '0'..'6' (open close ping pong message upgrade noop) and
 * data. Over WebSocket a text frame is one packet and a binary frame is a message
 * with binary data. Over polling a payload is packets joined by 0x1E; a binary
 * message is written "b" + base64. The parser never allocates for text packets
 * (data points into the input); base64 records are decoded into a temporary buffer
 * that lives only during the callback.
 */
#ifndef CD_EIO_H
#define CD_EIO_H

#include <stddef.h>

#include "base_frame.h"

#define CD_EIO_RS 0x1E /* record separator between packets of a polling payload */

typedef enum cd_eio_ptype {
    CD_EIO_OPEN = 0,
    CD_EIO_CLOSE = 1,
    CD_EIO_PING = 2,
    CD_EIO_PONG = 3,
    CD_EIO_MESSAGE = 4,
    CD_EIO_UPGRADE = 5,
    CD_EIO_NOOP = 6,
} cd_eio_ptype_t;

typedef struct cd_eio_packet {
    cd_eio_ptype_t type;
    int binary;       /* 1 for a binary message (then type == CD_EIO_MESSAGE) */
    const char *data; /* after the type digit; binary bytes when binary */
    size_t len;
} cd_eio_packet_t;

/* Parses one WebSocket text frame. Returns 0, or -1 when empty or the type is
 * not a digit 0..6. */
int cd_eio_decode_text(const char *s, size_t len, cd_eio_packet_t *out);

/* Walks a polling POST body, calling cb for each packet in order. Stops at the first
 * invalid record (empty record, bad type, bad base64) and returns -1 without calling
 * cb for it; packets before it were already delivered. Returns -1 for an empty body.
 * A nonzero return from cb stops the walk and is returned. */
typedef int (*cd_eio_packet_cb)(void *ud, const cd_eio_packet_t *p);
int cd_eio_decode_payload(const char *body, size_t len, cd_eio_packet_cb cb, void *ud);

/* Bytes needed to write frames as one polling payload (no NUL). */
size_t cd_eio_payload_len(base_frame_t *const *frames, size_t n);
/* Writes the payload; out must have cd_eio_payload_len() bytes. Returns bytes written. */
size_t cd_eio_payload_write(base_frame_t *const *frames, size_t n, char *out);

#endif
