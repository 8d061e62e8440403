/* rds_wire.h -- the messages of @socket.io/redis-adapter 8.x on Redis, free of I/O.
 *
 * A Sockeye node shares a cluster with Node.js Socket.IO servers and accepts what
 * @socket.io/redis-emitter publishes, so everything it puts on or takes off Redis must be
 * byte-compatible with notepack.io (msgpack) and JSON.stringify (spec redis-wire.md §0, §1,
 * §3). This module turns those messages -- broadcasts, requests, responses -- into
 * Sockeye's own structures (adp_opts_t targets, cd_sio_packet_t events) and back, nothing
 * else: no hiredis, no loop, no sockets, which is what lets it be unit-tested and fuzzed
 * alone. The msgpack values inside them are the codec's (cd_msgpack.h: notepack's forms,
 * bins as placeholders, UTF-8 repair, depth limit); the channel names are rds_channel.h's.
 *
 * Where Node is lenient we follow Node when it is harmless (invalid UTF-8 in JSON gets
 * U+FFFD like Buffer.toString, unknown flags and keys are ignored) and refuse when it would
 * hurt our clients or our invariants (an event our clients' parser rejects, placeholders
 * in JSON that no buffer backs). Every decode failure frees what it built and returns an
 * error; no input can crash, hang or leak.
 */
#ifndef RDS_WIRE_H
#define RDS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "adapter.h"
#include "cd_msgpack.h"
#include "cd_sio_packet.h"

/* Deepest nesting of arrays/maps accepted in a msgpack message, envelope included (a
 * broadcast's event arguments start at depth 3): the codec's limit. Deeper trees are
 * refused both ways. */
#define RDS_MAX_DEPTH CD_MP_MAX_DEPTH

/* ---------------------------------------------------------------- options */

/* Broadcast targets as they travel: opts {rooms, except, flags}. One per decoded message,
 * owns its strings. A numeric room on the wire becomes its decimal text (spec §0). */
typedef struct rds_opts {
    char **rooms; /* owned array of owned names */
    size_t n_rooms;
    char **except; /* owned array of owned names */
    size_t n_except;
    unsigned flags;     /* ADP_VOLATILE (volatile truthy), ADP_NOCOMPRESS (compress: false) */
    int64_t timeout_ms; /* flags.timeout (broadcast with ack), -1 when absent */
} rds_opts_t;

/* Frees the arrays and names of o and zeroes it (timeout_ms -1). NULL is ignored. */
void rds_opts_free(rds_opts_t *o);

/* Fills *view with a borrowed adp_opts_t over o (valid while o lives and is unchanged). */
void rds_opts_view(const rds_opts_t *o, adp_opts_t *view);

/* ---------------------------------------------------------------- broadcasts */

/* One decoded broadcast message [uid, packet, opts(, offset)]. */
typedef struct rds_broadcast {
    char *uid;               /* publisher's uid ("emitter" for the emitter); owned */
    cd_sio_packet_t *packet; /* owned; CD_SIO_EVENT, nsp from packet.nsp or "/", id -1, data =
                              * [event, args...] with placeholders, attach = the bins */
    rds_opts_t opts;
    char *offset; /* Sockeye's optional 4th element; NULL when absent; owned */
} rds_broadcast_t;

/* Encodes msgpack([uid, {type:2, data, nsp}, {rooms, except, flags}(, offset)]) exactly as
 * the Node adapter does: keys in that order, flags holding volatile:true and/or
 * compress:false only when set, numbers in notepack's forms (integral values within
 * [-2^63, 2^64) as the smallest int, others float64), placeholders as bin from p->attach.
 * The packet is always written as type 2 (receivers re-encode) without an id; nsp is
 * p->nsp. offset NULL writes the 3-element form that Node nodes and emitters produce.
 * On success *out holds a new buffer (base_free(out->data)); on failure *out is {NULL, 0}
 * and the result is SIO_EINVAL (NULL argument, p not an EVENT/BINARY_EVENT whose data is
 * an array, a bad placeholder, a cJSON raw value, ADP_LOCAL set: local broadcasts are never
 * published) or SIO_ETOOBIG (nesting deeper than RDS_MAX_DEPTH). */
int rds_encode_broadcast(const char *uid, const cd_sio_packet_t *p, const adp_opts_t *opts,
                         const char *offset, sio_bin_t *out);

/* Decodes one broadcast message from any publisher (Node adapter, emitter, other msgpack
 * libraries: every standard format is accepted, plus notepack's extensions: timestamp
 * ext -1 and legacy fixext8 type 0 become the ISO string Node's clients would see, ext type
 * 0 is binary, d4 00 00 is undefined, other ext values become [type, <bin>] as in notepack).
 * packet.data must be a non-empty array whose first element is a non-reserved event name
 * or a number (what socket.io-client accepts); opts must be a map. A 4th element is the
 * offset when it is a string and ignored otherwise, as are further elements and unknown
 * keys/flags. On success *b is filled (rds_broadcast_free releases it); on failure *b is
 * zeroed and the result is SIO_EPARSE (malformed, truncated, trailing bytes, wrong types,
 * non-string map keys, a string holding NUL) or SIO_ETOOBIG (deeper than RDS_MAX_DEPTH);
 * SIO_ENOMEM only if cJSON's allocator fails (ours aborts instead). */
int rds_decode_broadcast(const void *buf, size_t len, rds_broadcast_t *b);

/* Frees everything b holds and zeroes it. NULL is ignored. */
void rds_broadcast_free(rds_broadcast_t *b);

/* ---------------------------------------------------------------- requests and responses */

/* RequestType of the Node adapter (spec §1.2). */
typedef enum rds_req_type {
    RDS_TYPE_NONE = -1, /* no "type": replies to SOCKETS, ALL_ROOMS, REMOTE_FETCH, legacy 2/3/4 */
    RDS_REQ_SOCKETS = 0,
    RDS_REQ_ALL_ROOMS = 1,
    RDS_REQ_REMOTE_JOIN = 2,
    RDS_REQ_REMOTE_LEAVE = 3,
    RDS_REQ_REMOTE_DISCONNECT = 4,
    RDS_REQ_REMOTE_FETCH = 5,
    RDS_REQ_SERVER_SIDE_EMIT = 6,
    RDS_REQ_BROADCAST = 7,
    RDS_REQ_BROADCAST_CLIENT_COUNT = 8,
    RDS_REQ_BROADCAST_ACK = 9,
} rds_req_type_t;

/* One decoded request or response. Fields not carried by the message are NULL / 0 / -1. */
typedef struct rds_msg {
    int type;         /* rds_req_type_t */
    char *uid;        /* sender's uid; absent in emitter requests 2/3/4 and in replies */
    char *request_id; /* absent in 2/3/4 and in 6 without ack */
    int has_opts;     /* 2/3/4: 1 = target sockets by opts, 0 = legacy {sid, room} form */
    rds_opts_t opts;  /* 2/3/4/5/7 */
    int has_rooms;    /* "rooms" was present (and, in a reply, an array) */
    char **rooms;     /* 0: filter; 2/3: rooms to join/leave; reply to 1: all rooms */
    size_t n_rooms;
    int close;               /* 4: close the underlying connection too */
    char *sid;               /* legacy 2/3/4: the target socket */
    char *room;              /* legacy 2/3: the room */
    cd_sio_packet_t *packet; /* 7: the event to deliver (as in a broadcast) */
    cJSON *data;             /* 6 request: [event, args...]; 6 reply: the ack argument;
                              * 9: the ack argument (wire key "packet"); NULL when absent */
    sio_bin_t *attach;       /* buffers of the placeholders in data, numbered from 0 */
    size_t n_attach;
    cJSON *sockets;       /* replies to 0 (ids) / 5 (objects): the array; NULL otherwise */
    int64_t client_count; /* 8: clients reached on that node; -1 otherwise */
} rds_msg_t;

/* Decodes a payload received on the request channel. Payloads starting with '{' are JSON
 * (invalid UTF-8 replaced as Node's Buffer.toString does), others a msgpack map. Accepts
 * the forms of spec §1.2 and §3: types 0..7, with or without uid/requestId, legacy 2/3/4.
 * Refused with SIO_EPARSE: not an object, type missing or not an integer in 0..7, a field
 * of the wrong kind, and what a receiver cannot act on: 0/1/5/7 without requestId, 5/7
 * without opts, 2/3 without rooms (or legacy sid/room), legacy 4 without sid, 6 whose data
 * is not [event, ...], 7 whose packet is not a valid event. SIO_ETOOBIG past RDS_MAX_DEPTH.
 * On failure *m is zeroed; on success rds_msg_free releases it. */
int rds_decode_request(const void *buf, size_t len, rds_msg_t *m);

/* Decodes a payload received on a response channel (JSON or msgpack as above). Every reply
 * needs a requestId; type is optional (RDS_TYPE_NONE); 8 needs an integral clientCount
 * >= 0; 9 takes its ack argument from "packet", the others from "data". "rooms" and
 * "sockets" are kept only when they are arrays (Node ignores them otherwise) but rooms
 * must then hold names. SIO_EPARSE / SIO_ETOOBIG and a zeroed *m on failure. */
int rds_decode_response(const void *buf, size_t len, rds_msg_t *m);

/* Frees everything m holds and zeroes it (client_count -1). NULL is ignored. */
void rds_msg_free(rds_msg_t *m);

/* Requests a node sends on K-request#N#. Each writes a new buffer into *out
 * (base_free(out->data)) with the keys in the order the Node adapter writes them and returns
 * SIO_OK, or returns SIO_EINVAL (a required argument NULL, a type out of range) with *out
 * {NULL, 0}; the msgpack one may also return SIO_ETOOBIG, the JSON ones SIO_ENOMEM when
 * cJSON's allocator fails. Arguments are borrowed. */

/* JSON {"uid","requestId","type":1} -- allRooms(). */
int rds_encode_all_rooms_req(const char *uid, const char *request_id, sio_bin_t *out);
/* JSON {"uid","type":2|3,"opts":{"rooms","except"},"rooms":[..]} -- socketsJoin/Leave;
 * type is RDS_REQ_REMOTE_JOIN or RDS_REQ_REMOTE_LEAVE. */
int rds_encode_sockets_rooms_req(int type, const char *uid, const adp_opts_t *opts,
                                 const char *const *rooms, size_t n_rooms, sio_bin_t *out);
/* JSON {"uid","type":4,"opts":{"rooms","except"},"close":bool} -- disconnectSockets(). */
int rds_encode_disconnect_req(const char *uid, const adp_opts_t *opts, int close, sio_bin_t *out);
/* JSON {"uid","requestId","type":5,"opts":{"rooms","except"}} -- fetchSockets(). */
int rds_encode_fetch_req(const char *uid, const char *request_id, const adp_opts_t *opts,
                         sio_bin_t *out);
/* JSON {"uid"(,"requestId"),"type":6,"data":args} -- serverSideEmit(); request_id NULL means
 * no acknowledgement is wanted. args must be an array ([event, ...]). */
int rds_encode_server_emit_req(const char *uid, const char *request_id, const cJSON *args,
                               sio_bin_t *out);
/* msgpack {uid, requestId, type:7, packet:{type:2,data,nsp}, opts:{rooms,except,flags}} --
 * broadcast with ack; flags carry volatile/compress as in a broadcast plus timeout when
 * timeout_ms >= 0. p as in rds_encode_broadcast. */
int rds_encode_broadcast_ack_req(const char *uid, const char *request_id, const cd_sio_packet_t *p,
                                 const adp_opts_t *opts, int64_t timeout_ms, sio_bin_t *out);

/* Responses a node publishes (same return conventions). */

/* JSON {"requestId","sockets":[sid..]} -- answer to SOCKETS (0). */
int rds_encode_sockets_res(const char *request_id, const char *const *sids, size_t n,
                           sio_bin_t *out);
/* JSON {"requestId","rooms":[room..]} -- answer to ALL_ROOMS (1). */
int rds_encode_all_rooms_res(const char *request_id, const char *const *rooms, size_t n,
                             sio_bin_t *out);
/* JSON {"requestId","sockets":sockets} -- answer to REMOTE_FETCH (5); sockets must be an
 * array of {id, handshake, rooms, data} objects built by the caller. */
int rds_encode_fetch_res(const char *request_id, const cJSON *sockets, sio_bin_t *out);
/* JSON {"type":6,"requestId"(,"data":arg)} -- one node's ack to SERVER_SIDE_EMIT; arg NULL
 * stands for JS undefined and omits "data". Always published on K-response#N#. */
int rds_encode_server_emit_res(const char *request_id, const cJSON *arg, sio_bin_t *out);
/* JSON {"type":8,"requestId","clientCount":n} -- how many local clients a BROADCAST reached. */
int rds_encode_client_count_res(const char *request_id, uint64_t client_count, sio_bin_t *out);
/* msgpack {type:9, requestId(, packet:arg)} -- one client's first ack argument; the
 * placeholders in arg index bins (a client's ack attachments); arg NULL omits "packet". */
int rds_encode_broadcast_ack_res(const char *request_id, const cJSON *arg, const sio_bin_t *bins,
                                 size_t n_bins, sio_bin_t *out);
/* JSON {"requestId"} -- answer to a legacy {sid, room} / {sid, close} request. */
int rds_encode_legacy_res(const char *request_id, sio_bin_t *out);

#endif
