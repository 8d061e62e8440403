/* adapter.h -- where rooms live and broadcasts go.
 *
 * One adapter per namespace (as in Node's socket.io-adapter). It keeps the local
 * rooms index and decides how a broadcast reaches its targets: the memory adapter
 * delivers locally (and logs packets for connection state recovery); the Redis
 * adapter also publishes to other nodes. The adapter knows nothing of Engine.IO or
 * libwebsockets: it hands packets back to its host (the namespace) to encode once
 * and queue on the local targets.
 */
#ifndef ADP_ADAPTER_H
#define ADP_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "rooms.h"
#include "adp_queue.h"
#include "cd_sio_packet.h"

#define ADP_VOLATILE 1   /* may be dropped; never stored for recovery */
#define ADP_LOCAL 2      /* this node only; never published */
#define ADP_NOCOMPRESS 4 /* compress(false) */

/* Targets of a broadcast: union of rooms (all sockets when none) minus the members
 * of any except room. One per broadcast call, borrowed. */
typedef struct adp_opts {
    const char *const *rooms;
    size_t n_rooms;
    const char *const *except;
    size_t n_except;
    unsigned flags;
    /* The packet's recovery offset ("<ms>-<seq>", also the last item of its data) when
     * it has one, else NULL. Lets the namespace drop a live copy of a packet a restore
     * already replayed (see sio__deliver). */
    const char *offset;
} adp_opts_t;

/* Recovery offsets are "<ms>-<seq>" (decimal, no sign), totally ordered per namespace.
 * adp_offset_parse returns 1 and the two numbers, or 0 for anything else (overflow too). */
int adp_offset_parse(const char *s, uint64_t *ms, uint64_t *seq);
/* <0, 0, >0 as a is before, equal to, after b. */
int adp_offset_cmp(uint64_t ams, uint64_t aseq, uint64_t bms, uint64_t bseq);
/* The offset a stored/replayed packet's data ends with: 1 when there is one. */
int adp_packet_offset(const cd_sio_packet_t *p, uint64_t *ms, uint64_t *seq);

/* What connection state recovery saves of a socket. One per session. */
typedef struct adp_session {
    char *sid;
    char *pid;
    char **rooms; /* includes the socket's own id */
    size_t n_rooms;
    cJSON *data;  /* socket.data, may be NULL */
    /* How long ago (ms) the client was last known to have read everything sent to it
     * (has_read_age 0: not known since this connection began, e.g. a restored socket
     * that has not answered a ping since its replay). Recovery refuses a session whose
     * client has not been heard from for longer than entries are kept. */
    unsigned char has_read_age;
    uint64_t read_age_ms;
    /* Set by a write-through adapter's restore only (owned, may be NULL): room -> join
     * mark of the rooms joined after the session's start. */
    cJSON *joined;
} adp_session_t;

void adp_session_free(adp_session_t *s);

/* Room operations a node applies to its own matching sockets (socketsJoin,
 * socketsLeave, disconnectSockets), for itself or on another node's request. */
typedef enum adp_apply {
    ADP_APPLY_JOIN = 2,       /* the wire's REMOTE_JOIN */
    ADP_APPLY_LEAVE = 3,      /* REMOTE_LEAVE */
    ADP_APPLY_DISCONNECT = 4, /* REMOTE_DISCONNECT */
} adp_apply_t;

/* Callbacks into the namespace that owns the adapter. Only deliver is required; the
 * others serve requests from other nodes (a cluster adapter ignores a request whose
 * callback is NULL, which a node without the feature would do too). */
typedef struct adp_host {
    void *ud;
    /* Encode pkt once and queue it on every local socket matching opts. */
    void (*deliver)(void *ud, const cd_sio_packet_t *pkt, const adp_opts_t *opts);
    /* Join/leave rooms (or disconnect, close = also the connection) on every local
     * socket matching opts. */
    void (*apply)(void *ud, adp_apply_t what, const adp_opts_t *opts, const char *const *rooms,
                  size_t n_rooms, int close);
    /* The local sockets matching opts as a new array of {id, handshake, rooms, data}
     * (the caller frees it). */
    cJSON *(*fetch)(void *ud, const adp_opts_t *opts);
    /* serverSideEmit from another node: args is [event, ...]. request_id NULL: no ack
     * wanted; else the answer goes back through vt->server_emit_reply(request_id). */
    void (*server_event)(void *ud, const cJSON *args, const char *request_id);
    /* Broadcast with acks from another node: deliver pkt to the local matches, each
     * asked for an ack with a node-local id, and return how many were reached. Each
     * answer goes back through vt->broadcast_ack_reply(request_id) until timeout_ms. */
    size_t (*deliver_ack)(void *ud, const cd_sio_packet_t *pkt, const adp_opts_t *opts,
                          uint64_t timeout_ms, const char *request_id);
    /* Calls fn for every connected local socket with a session: its pid and read age
     * (as in adp_session_t), for the periodic refresh of write-through sessions. */
    void (*each_session)(void *ud,
                         void (*fn)(void *fud, const char *pid, int has_age, uint64_t age_ms),
                         void *fud);
} adp_host_t;

typedef struct adp_adapter adp_adapter_t;

/* Restore outcome: err SIO_OK with the session and the packets the client missed
 * (in order; each EVENT's data already ends with its offset), or err SIO_ENOTFOUND
 * (unknown/expired session or offset no longer held) with s == NULL. Ownership of
 * s and of every packet passes to the callback; the missed array itself stays the
 * adapter's (valid during the call). Called exactly once. */
typedef void (*adp_restore_cb)(void *ud, int err, adp_session_t *s, cd_sio_packet_t **missed,
                               size_t n_missed);

/* Outcome of a cluster request (fetch sockets, all rooms, server-side emit): what the
 * OTHER nodes answered, as a new array the callback owns (fetch: socket objects; all
 * rooms: the names they reported, duplicates possible; server emit: one answer per
 * node, null where a node answered nothing).
 * err SIO_OK: every node answered; SIO_ETIMEDOUT: the request timeout elapsed first
 * (list holds what came); SIO_EREDIS: Redis could not be reached (list empty);
 * SIO_ECLOSED: the adapter is going away. Called exactly once. */
typedef void (*adp_list_cb)(void *ud, int err, cJSON *list);
/* Server count (this node included); err as above, n 1 on error. */
typedef void (*adp_count_cb)(void *ud, int err, size_t n);

/* The requester's side of a broadcast with acks across nodes. */
typedef struct adp_ack_events {
    void *ud;
    /* How many servers serve the namespace, this one included (once; err != SIO_OK:
     * unknown, and n is 1). */
    void (*on_servers)(void *ud, int err, size_t n);
    /* One other node delivered the packet to n of its clients. */
    void (*on_count)(void *ud, size_t n);
    /* One remote client answered; arg is its first ack argument (NULL: none), bins
     * the buffers its placeholders index. Borrowed for the call. */
    void (*on_ack)(void *ud, const cJSON *arg, const sio_bin_t *bins, size_t n_bins);
    /* The request is over (complete, timed out, or the adapter closes): no call
     * follows. Always called once when broadcast_ack returned SIO_OK. */
    void (*on_end)(void *ud);
} adp_ack_events_t;

typedef struct adp_vtable {
    void (*destroy)(adp_adapter_t *a);
    /* Broadcast pkt (an EVENT) to opts' targets. When recovery is on and the packet
     * is recoverable (EVENT, no ack id, not volatile), the targets get it with an
     * offset appended to its data: the memory adapter appends it to pkt->data before
     * delivering; the Redis adapter delivers when the stored copy comes back (pkt is
     * untouched). SIO_OK, or SIO_EREDIS when the other nodes could not be reached (the
     * local targets got it anyway). */
    int (*broadcast)(adp_adapter_t *a, cd_sio_packet_t *pkt, const adp_opts_t *opts);
    /* Membership hooks (the rooms index itself is a.rooms). May be NULL. */
    int (*join)(adp_adapter_t *a, const char *sid, void *sock, const char *room);
    void (*leave)(adp_adapter_t *a, const char *sid, const char *room);
    void (*leave_all)(adp_adapter_t *a, const char *sid);
    /* Save a session at a recoverable disconnect (the memory adapter) or as it
     * changes (write-through adapters). May be NULL when recovery is off. */
    int (*save_session)(adp_adapter_t *a, const adp_session_t *s);
    /* Look the session up and collect what it missed since offset (NULL when the
     * client received nothing yet: an adapter that cannot tell where the session
     * began answers SIO_ENOTFOUND). */
    int (*restore_session)(adp_adapter_t *a, const char *pid, const char *offset,
                           adp_restore_cb cb, void *ud);
    /* Periodic housekeeping (expire sessions and logged packets); now in ms. */
    void (*tick)(adp_adapter_t *a, uint64_t now_ms);

    /* Session write-through (recovery on, sockets with a pid). open: the socket is
     * connected (rooms joined, data set); update: its rooms or data changed; close:
     * it is gone, recoverable = the client may come back and restore it. Each may be
     * NULL; the memory adapter only implements close (it saves at a recoverable
     * disconnect). */
    void (*session_open)(adp_adapter_t *a, const adp_session_t *s);
    void (*session_update)(adp_adapter_t *a, const adp_session_t *s);
    void (*session_close)(adp_adapter_t *a, const adp_session_t *s, int recoverable);

    /* Cluster requests (spec redis-wire.md 1.2): what the OTHER nodes must do or
     * answer; the namespace handles its own sockets itself. NULL = no other node
     * (the memory adapter), i.e. the local answer is the whole answer. Each returns
     * SIO_OK, or SIO_EREDIS when Redis is unreachable (callback never called then). */
    /* socketsJoin / socketsLeave / disconnectSockets on the other nodes. */
    int (*remote_apply)(adp_adapter_t *a, adp_apply_t what, const adp_opts_t *opts,
                        const char *const *rooms, size_t n_rooms, int close);
    int (*remote_fetch)(adp_adapter_t *a, const adp_opts_t *opts, adp_list_cb cb, void *ud);
    int (*remote_all_rooms)(adp_adapter_t *a, adp_list_cb cb, void *ud);
    int (*server_count)(adp_adapter_t *a, adp_count_cb cb, void *ud);
    /* args is [event, ...] (JSON only: the wire carries no binary here). cb NULL: no
     * acknowledgement wanted. */
    int (*server_emit)(adp_adapter_t *a, const cJSON *args, adp_list_cb cb, void *ud);
    /* Answer to a host.server_event request (arg NULL = no value). */
    int (*server_emit_reply)(adp_adapter_t *a, const char *request_id, const cJSON *arg);
    /* Broadcast pkt with acks to the other nodes' matches (the caller delivers
     * locally itself); timeout_ms bounds the whole request. */
    int (*broadcast_ack)(adp_adapter_t *a, const cd_sio_packet_t *pkt, const adp_opts_t *opts,
                         uint64_t timeout_ms, const adp_ack_events_t *ev);
    /* One local client's answer to a host.deliver_ack request. */
    int (*broadcast_ack_reply)(adp_adapter_t *a, const char *request_id, const cJSON *arg,
                               const sio_bin_t *bins, size_t n_bins);
} adp_vtable_t;

/* Base of every adapter; implementations embed it first. */
struct adp_adapter {
    const adp_vtable_t *vt;
    char *nsp;          /* namespace name */
    adp_host_t host;
    adp_rooms_t rooms;  /* local membership: room <-> socket */
};

/* Helpers every adapter uses: membership in the local index, targets of opts.
 * join/leave update a->rooms then call the hook; leave_all calls its hook first (so
 * it can still see the socket's rooms) then updates a->rooms. */
int adp_join(adp_adapter_t *a, const char *sid, void *sock, const char *room);
void adp_leave(adp_adapter_t *a, const char *sid, const char *room);
void adp_leave_all(adp_adapter_t *a, const char *sid);
/* What the host asks of the local index, so that it never reads a->rooms itself (which
 * index an adapter keeps is the adapter's business). adp_each calls fn once per local
 * socket matching opts' targets (fn must not change membership: collect, then act);
 * adp_socket_rooms fills out with up to max of sid's rooms and returns how many there
 * are; adp_each_room calls fn with every local room name. */
void adp_each(const adp_adapter_t *a, const adp_opts_t *opts, adp_rooms_fn fn, void *ud);
int adp_is_member(const adp_adapter_t *a, const char *sid, const char *room);
size_t adp_socket_rooms(const adp_adapter_t *a, const char *sid, const char **out, size_t max);
void adp_each_room(const adp_adapter_t *a, void (*fn)(void *ud, const char *room), void *ud);

/* ------------------------------------------------ providers */

/* Where a server's namespaces get their adapters. Registered with the protocol by
 * whoever picks the adapter (the embedding entry points: the memory adapter, or a Redis
 * node's), so that the protocol names no implementation and an implementation needs no
 * protocol: both see only this interface. One per server. */
typedef struct adp_provider {
    void *ud;
    /* The adapter of namespace nsp, calling back into host (copied). Never NULL: OOM
     * aborts. */
    adp_adapter_t *(*create)(void *ud, const char *nsp, const adp_host_t *host);
    /* The server listens at address ("host:port"), e.g. for a node registry. May be
     * NULL. */
    void (*listening)(void *ud, const char *address);
    /* The server is closing and every client is gone: release what the adapters share
     * (connections), then call done(arg) exactly once, from the loop. NULL when there is
     * nothing to close. */
    void (*close)(void *ud, void (*done)(void *arg), void *arg);
    /* Frees ud, after every adapter made by create was destroyed. May be NULL. */
    void (*free)(void *ud);
    /* The node's queue store (adp_queue.h), made for the caller, who destroys it before
     * the server closes (the store may use what close releases). NULL when this adapter
     * keeps no queues, and may be NULL itself. */
    adp_qstore_t *(*queues)(void *ud, const adp_qconfig_t *cfg, const adp_qevents_t *ev);
} adp_provider_t;

#endif
