/* cd_sio.h -- Socket.IO v5 packet codec, free of I/O.
 *
 * Text form: type [attachments "-"] [nsp ","] [ack-id] [json]. A packet with
 * binary is sent as BINARY_EVENT/BINARY_ACK: each buffer is replaced in the JSON
 * by {"_placeholder":true,"num":k} and follows as its own Engine.IO binary message.
 * We keep the placeholders in the tree and the buffers beside it (cd_sio_packet_t.attach):
 * that is the wire model, it round-trips byte-exactly, and the adapters can turn it
 * into msgpack bin values without a second tree walk at decode time.
 *
 * The decoder is a small state machine fed with Engine.IO message payloads (the
 * bytes after the '4' for text, the raw bytes for binary). After an error it frees
 * its partial packet and stays failed: the caller closes the connection.
 */
#ifndef CD_SIO_H
#define CD_SIO_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "base_frame.h"
#include "cd_sio_packet.h"

/* Decoder state. One per client connection. */
typedef struct cd_sio_decoder {
    cd_sio_packet_t *pending;  /* binary packet waiting for attachments */
    size_t max_attachments; /* limit on the announced count (default 10) */
    int failed;             /* sticky: every call fails after an error */
} cd_sio_decoder_t;

void cd_sio_decoder_init(cd_sio_decoder_t *d);
/* Frees a pending packet; the decoder is reusable (not failed) afterwards. */
void cd_sio_decoder_reset(cd_sio_decoder_t *d);

/* Feeds one text message (Engine.IO data after the '4').
 * Returns SIO_OK with *out = complete packet (caller owns it), or SIO_OK with
 * *out = NULL when it now waits for attachments, or SIO_EPARSE when the text is
 * not a valid packet by the rules of the spec (unknown type, bad attachment count,
 * bad nsp, unparsable JSON, payload shape wrong for the type, reserved event name,
 * text while attachments are awaited). */
int cd_sio_decode_text(cd_sio_decoder_t *d, const char *s, size_t len, cd_sio_packet_t **out);

/* Feeds one binary message. SIO_OK with *out set when it completed the packet,
 * NULL while more are awaited; SIO_EPARSE when no binary packet is pending or a
 * placeholder number is out of range. */
int cd_sio_decode_binary(cd_sio_decoder_t *d, const unsigned char *b, size_t len, cd_sio_packet_t **out);

/* Encodes p into frames: one text frame holding the whole Engine.IO packet
 * ("4" + Socket.IO text) followed by one binary frame per attachment. EVENT/ACK with
 * attachments are written as BINARY_EVENT/BINARY_ACK. frames must have room for
 * 1 + p->n_attach entries; returns the number written (each with refcnt 1). */
size_t cd_sio_encode(const cd_sio_packet_t *p, base_frame_t **frames);

#endif
