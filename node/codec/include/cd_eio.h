/* eio_parser.h -- Engine.IO v4 packet and polling-payload codec, free of I/O.
 *
 * Packets: a type digit '0'..'6' (open close ping pong message upgrade noop) and
 * data. Over WebSocket a text frame is one packet and a binary frame is a message
 * with binary data. Over polling a payload is packets joined by 0x1E; a binary
 * message is written "b" + base64. The parser never allocates for text packets
 * (data points into the input); base64 records are decoded into a temporary buffer
 * that lives only during the callback.
 */
#ifndef EIO_PARSER_H
#define EIO_PARSER_H

#include <stddef.h>

#include "sk_frame.h"

#define EIO_RS 0x1E /* record separator between packets of a polling payload */

typedef enum eio_ptype {
    EIO_OPEN = 0,
    EIO_CLOSE = 1,
    EIO_PING = 2,
    EIO_PONG = 3,
    EIO_MESSAGE = 4,
    EIO_UPGRADE = 5,
    EIO_NOOP = 6,
} eio_ptype_t;

typedef struct eio_packet {
    eio_ptype_t type;
    int binary;        /* 1 for a binary message (then type == EIO_MESSAGE) */
    const char *data;  /* after the type digit; binary bytes when binary */
    size_t len;
} eio_packet_t;

/* Parses one WebSocket text frame. Returns 0, or -1 when empty or the type is
 * not a digit 0..6. */
int eio_decode_text(const char *s, size_t len, eio_packet_t *out);

/* Walks a polling POST body, calling cb for each packet in order. Stops at the first
 * invalid record (empty record, bad type, bad base64) and returns -1 without calling
 * cb for it; packets before it were already delivered. Returns -1 for an empty body.
 * A nonzero return from cb stops the walk and is returned. */
typedef int (*eio_packet_cb)(void *ud, const eio_packet_t *p);
int eio_decode_payload(const char *body, size_t len, eio_packet_cb cb, void *ud);

/* Bytes needed to write frames as one polling payload (no NUL). */
size_t eio_payload_len(sio_frame_t *const *frames, size_t n);
/* Writes the payload; out must have eio_payload_len() bytes. Returns bytes written. */
size_t eio_payload_write(sio_frame_t *const *frames, size_t n, char *out);

#endif
