/* cd_sio_packet.h -- one Socket.IO packet in memory: the type the protocol, the codecs
 * and the adapters pass around.
 *
 * Kept apart from the text codec (cd_sio.h) so that what carries packets (the adapter
 * interface, the Redis wire format, the recovery logs) does not depend on how the
 * WebSocket text form is parsed. Binary values stay where the wire puts them: a
 * placeholder {"_placeholder":true,"num":k} in the tree, the bytes in attach[k].
 */
#ifndef CD_SIO_PACKET_H
#define CD_SIO_PACKET_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sockeye_common.h"

typedef enum cd_sio_ptype {
    CD_SIO_CONNECT = 0,
    CD_SIO_DISCONNECT = 1,
    CD_SIO_EVENT = 2,
    CD_SIO_ACK = 3,
    CD_SIO_CONNECT_ERROR = 4,
    CD_SIO_BINARY_EVENT = 5,
    CD_SIO_BINARY_ACK = 6,
} cd_sio_ptype_t;

/* One Socket.IO packet. One per message; owned by whoever holds the pointer. */
typedef struct cd_sio_packet {
    cd_sio_ptype_t type;
    char *nsp;          /* owned, never NULL; "/" when absent on the wire */
    int64_t id;         /* ack id, -1 when absent */
    cJSON *data;        /* owned; NULL when the packet has no payload */
    size_t n_attach;    /* buffers announced (5/6) or carried (encoding) */
    size_t n_have;      /* buffers received so far (decoder only) */
    sio_bin_t *attach;  /* owned array of n_attach owned buffers */
} cd_sio_packet_t;

/* Allocates an empty packet of type t in namespace nsp (copied; NULL = "/"), id -1. */
cd_sio_packet_t *cd_sio_packet_new(cd_sio_ptype_t t, const char *nsp);
/* Frees the packet, its tree and its buffers. NULL is ignored. */
void cd_sio_packet_free(cd_sio_packet_t *p);
/* Deep copy (tree and buffers). */
cd_sio_packet_t *cd_sio_packet_dup(const cd_sio_packet_t *p);
/* Copies len bytes into a new buffer at dst; a zero-length buffer still gets its own
 * allocation, so data is never NULL for a present buffer. */
void cd_sio_bin_copy(sio_bin_t *dst, const void *data, size_t len);
/* Appends copies of bufs to p->attach. */
void cd_sio_packet_add_attachments(cd_sio_packet_t *p, const sio_bin_t *bufs, size_t n);

/* 1 if name is reserved (connect, connect_error, disconnect, disconnecting,
 * newListener, removeListener). */
int cd_sio_event_reserved(const char *name);
/* 1 if name (the first item of an EVENT's array; NULL when there is none) is one a client
 * may send: a string that is not reserved, or a finite number. */
int cd_sio_event_name_ok(const cJSON *name);

#endif
