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
#include "sio_parser.h"

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
} adp_opts_t;

/* What connection state recovery saves of a socket. One per session. */
typedef struct adp_session {
    char *sid;
    char *pid;
    char **rooms; /* includes the socket's own id */
    size_t n_rooms;
    cJSON *data;  /* socket.data, may be NULL */
} adp_session_t;

void adp_session_free(adp_session_t *s);

/* Callbacks into the namespace that owns the adapter. */
typedef struct adp_host {
    void *ud;
    /* Encode pkt once and queue it on every local socket matching opts. */
    void (*deliver)(void *ud, const sio_packet_t *pkt, const adp_opts_t *opts);
} adp_host_t;

typedef struct adp_adapter adp_adapter_t;

/* Restore outcome: err SIO_OK with the session and the packets the client missed
 * (in order; each EVENT's data already ends with its offset), or err SIO_ENOTFOUND
 * (unknown/expired session or offset no longer held) with s == NULL. Ownership of
 * s and of every packet passes to the callback; the missed array itself stays the
 * adapter's (valid during the call). Called exactly once. */
typedef void (*adp_restore_cb)(void *ud, int err, adp_session_t *s, sio_packet_t **missed,
                               size_t n_missed);

typedef struct adp_vtable {
    void (*destroy)(adp_adapter_t *a);
    /* Broadcast pkt (an EVENT) to opts' targets. When recovery is on and the packet
     * is recoverable (EVENT, no ack id, not volatile), the adapter assigns an offset
     * and appends it to pkt->data as a string first. */
    int (*broadcast)(adp_adapter_t *a, sio_packet_t *pkt, const adp_opts_t *opts);
    /* Membership hooks (the rooms index itself is a.rooms). May be NULL. */
    int (*join)(adp_adapter_t *a, const char *sid, void *sock, const char *room);
    void (*leave)(adp_adapter_t *a, const char *sid, const char *room);
    void (*leave_all)(adp_adapter_t *a, const char *sid);
    /* Save a session at a recoverable disconnect (the memory adapter) or as it
     * changes (write-through adapters). May be NULL when recovery is off. */
    int (*save_session)(adp_adapter_t *a, const adp_session_t *s);
    /* Look the session up and collect what it missed since offset. */
    int (*restore_session)(adp_adapter_t *a, const char *pid, const char *offset,
                           adp_restore_cb cb, void *ud);
    /* Periodic housekeeping (expire sessions and logged packets); now in ms. */
    void (*tick)(adp_adapter_t *a, uint64_t now_ms);
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

/* ------------------------------------------------ the in-memory adapter */

typedef struct adp_memory_config {
    int recovery;                  /* keep a packet log and sessions */
    uint64_t recovery_window_ms;   /* maxDisconnectionDuration */
    size_t max_log;                /* packets kept at most (oldest dropped first) */
    uint64_t (*now_ms)(void);      /* wall clock in ms; NULL = real time */
} adp_memory_config_t;

adp_adapter_t *adp_memory_new(const char *nsp, const adp_host_t *host,
                              const adp_memory_config_t *cfg);

#endif
