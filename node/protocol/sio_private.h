/* sio_private.h -- bodies of the protocol layer's types, shared by the files of
 * node/protocol and by nothing else (the build gives no other layer this folder).
 *
 * The files form a chain, each using only those before it (tests/layers checks it):
 * sio_client.c (sends, closes, handle count) and sio_event.c (events as packets) ->
 * sio_lifetime.c (socket holds) -> sio_ack.c (acks awaited) -> sio_socket.c ->
 * sio_broadcast.c -> sio_cluster.c -> sio_server.c (namespaces, the engine's callbacks).
 * What a lower file must call in a higher one goes through a registered callback.
 *
 * Three tiers of state, as in the lws examples: a server holds namespaces (one per
 * name) and clients (one per Engine.IO session); a client holds its sockets (one
 * per namespace it joined); a socket holds its handlers and its pending acks.
 *
 * Lifetimes. A socket is owned by the maps it sits in (client->sockets and, once
 * connected, nsp->sockets) until it closes; after that only by its holds: every
 * call into the application with a socket, and a restore in flight, holds it, and
 * the socket is freed when it is closed and the last hold goes (the hiredis
 * IN_CALLBACK/FREEING idea). A client is freed only in the close callback of its
 * uv timer, i.e. from the loop and never under a callback of ours, so a socket's
 * client pointer is valid whenever the socket is not closed. Every uv handle we
 * open is counted in srv->n_handles so sio_server_close can report "all closed".
 */
#ifndef SIO_PRIVATE_H
#define SIO_PRIVATE_H

#include <regex.h>
#include <stdint.h>

#include "adapter.h"
#include "base_clock.h"
#include "base_list.h"
#include "base_map.h"
#include "base_random.h"
#include "eio.h"
#include "cd_sio.h"
#include "sio_provider.h"
#include "sockeye.h"

typedef struct sio_client sio_client_t;
typedef struct sio_pending sio_pending_t;
typedef struct sio_bcast sio_bcast_t;

/* A dynamic-namespace pattern. One per sio_server_of_pattern call. */
typedef struct sio_pattern {
    base_list_t node; /* in srv->patterns, registration order */
    regex_t re;      /* POSIX extended, unanchored like Node's RegExp.test */
    sio_nsp_init_cb init;
    void *ud;
} sio_pattern_t;

/* One per process (or listener). */
struct sio_server {
    uv_loop_t *loop;
    sio_config_t cfg;         /* copy; its strings point at the owned copies below */
    char *host, *path, *cors; /* owned */
    eio_server_t *eio;        /* NULL until listen */
    base_map_t nsps;           /* name -> sio_namespace_t* */
    base_list_t patterns;      /* sio_pattern_t */
    base_list_t clients;       /* sio_client_t.node */
    size_t n_clients;
    uv_timer_t tick; /* adapter housekeeping, ~1 s, unref'd */
    int tick_started;
    size_t n_handles; /* our uv handles opened and not yet closed */
    int closing;      /* sio_server_close called */
    int eio_closed;   /* the engine reported it is gone */
    int close_fired;  /* close_cb already ran */
    void (*close_cb)(void *arg);
    void *close_arg;
    sio_http_cb http_cb;
    void *http_ud;
    /* Where every namespace's adapter comes from (the memory adapter, or a cluster's
     * when sio_server_use_redis swapped it): registered by the embedding entry points
     * (node/embed), so that this layer names no adapter implementation. */
    adp_provider_t provider;
    int provider_closing; /* its close started (after the engine's) */
    sio_observer_t observers[SIO_MAX_OBSERVERS]; /* sio__server_observe, in order */
    size_t n_observers;
};

typedef struct sio_middleware {
    sio_middleware_cb cb;
    void *ud;
} sio_middleware_t;

/* One per namespace name. Lives until the server is freed. */
struct sio_namespace {
    sio_server_t *srv;
    char *name;             /* owned */
    adp_adapter_t *adapter; /* owned; its rooms index is the membership truth */
    base_map_t sockets;      /* sid -> sio_socket_t*, connected sockets only */
    sio_middleware_t *mw;   /* owned array, run in order */
    size_t n_mw;
    sio_connection_cb on_conn;
    void *conn_ud;
    int64_t next_ack_id;    /* server->client ack ids, shared by the sockets (as Node) */
    sio_bcast_t *cur_bcast; /* set only while a broadcast-with-ack is being delivered */
    sio_server_event_cb on_server_event; /* serverSideEmit from other nodes */
    void *server_event_ud;
    base_list_t server_acks; /* sio_server_ack_t not answered yet, freed with the nsp */
};

/* One per Engine.IO session. */
struct sio_client {
    sio_server_t *srv;
    eio_session_t *eio; /* NULL once the engine reported the close */
    cd_sio_decoder_t dec;  /* one packet stream per connection */
    base_map_t sockets;  /* nsp name -> sio_socket_t* (connecting or connected) */
    uv_timer_t connect_timer; /* connect_timeout_ms with no namespace joined -> close */
    base_list_t node;          /* in srv->clients */
    int closing;              /* we (or the engine) started closing: no more I/O */
};

typedef enum sio_sock_state {
    SIO_SOCK_CONNECTING = 0, /* CONNECT received: restore or middlewares running */
    SIO_SOCK_CONNECTED,      /* CONNECT reply sent, in rooms */
    SIO_SOCK_CLOSED,         /* out of every map; alive only through holds */
} sio_sock_state_t;

typedef struct sio_handler {
    sio_event_cb cb;
    void *ud;
} sio_handler_t;

/* One per client per namespace. */
struct sio_socket {
    sio_client_t *client; /* NULL once closed */
    sio_namespace_t *nsp;
    char *id;    /* owned; the socket's own room */
    char *pid;   /* owned; NULL when recovery is off */
    cJSON *auth; /* owned, "pid"/"offset" removed */
    cJSON *data; /* owned socket.data ({} by default) */
    void *userdata;
    int recovered;
    uint64_t issued;               /* wall clock ms of the CONNECT (handshake.issued) */
    uint64_t admitted_at;          /* loop ms it became connected (after its replay was queued) */
    int admitted;                  /* it became connected once (it may be closing now) */
    int superseded;                /* its session was restored on another socket of this node */
    const adp_session_t *restored; /* during the middlewares of a recovered socket */
    sio_sock_state_t state;
    unsigned holds; /* callbacks on the stack + restore in flight */
    int restoring;  /* restore_session issued, callback not yet run */
    /* After a restore: the offset of the last packet replayed. A live packet at or
     * below it is a copy still in flight when the restore read the streams: dropped.
     * Cleared by the first live packet above it (live order is offset order). */
    int has_floor;
    uint64_t floor_ms, floor_seq;
    base_map_t handlers; /* event name -> sio_handler_t* (owned) */
    sio_handler_t any;
    sio_disconnect_cb on_disconnect;
    void *disconnect_ud;
    base_list_t acks_out; /* sio_pending_t: our ack requests awaiting the client */
    base_list_t acks_in;  /* sio_ack_t: the client's requests not yet answered */
};

/* A client's ack request handed to an event handler. */
struct sio_ack {
    base_list_t node; /* in s->acks_in */
    sio_socket_t *s;
    int64_t id;
};

/* One server->client ack request on one socket, alone or as part of a broadcast. */
struct sio_pending {
    base_list_t node;    /* in s->acks_out */
    base_list_t bc_node; /* in bc->entries when bc != NULL */
    sio_server_t *srv;
    sio_socket_t *s;
    int64_t id;
    sio_ack_cb cb; /* single-socket request */
    void *ud;
    sio_bcast_t *bc; /* or the broadcast it belongs to */
    uv_timer_t timer;
    int timed; /* timer initialised (freed from its close callback) */
};

/* One per sio_emit_ack call, or per broadcast-with-ack another node asked us to
 * deliver (reply_id set: each answer goes back through the adapter). Freed when
 * refs drops to 0: one for the broadcast until it finishes, one while its timer is
 * open, one while the adapter's cross-node part runs. */
struct sio_bcast {
    sio_server_t *srv;
    sio_namespace_t *nsp;
    int64_t id;
    sio_bcast_ack_cb cb;
    void *ud;
    char *reply_id;  /* the other node's request id (responder side), else NULL */
    size_t expected; /* targets that may still answer (other nodes' counts added) */
    size_t answered;
    cJSON *responses;   /* array of each answer's args array */
    base_list_t entries; /* sio_pending_t.bc_node still registered on sockets */
    uv_timer_t timer;
    int timed;
    int done;
    int refs;
    int remote;          /* the adapter's part is running (its on_end not called yet) */
    int servers_known;   /* the server count is known */
    size_t servers;      /* servers serving the namespace, this one included */
    size_t servers_seen; /* servers that reported their client count (this one: 1) */
    int err;             /* SIO_EREDIS when the other nodes could not be asked */
};

/* A serverSideEmit from another node that wants an answer. */
struct sio_server_ack {
    base_list_t node; /* in nsp->server_acks */
    sio_namespace_t *nsp;
    char *request_id;
};

/* One-shot broadcast builder. */
struct sio_op {
    sio_namespace_t *nsp;
    char **rooms;
    size_t n_rooms;
    char **except;
    size_t n_except;
    unsigned flags; /* ADP_* */
    unsigned timeout_ms;
    int bad; /* a builder call got a bad argument: the terminal call fails */
};

struct sio_conn_error {
    char *message;
    cJSON *data;
};

/* ------------------------------------------------------------ sio_client.c */

/* 1 when the client can still take frames. */
int sio__client_usable(const sio_client_t *c);
/* Starts closing the client's Engine.IO session with reason (idempotent). */
void sio__client_close(sio_client_t *c, const char *reason);
/* Encodes p and queues it on c. SIO_ECLOSED when c is closing. */
int sio__client_send(sio_client_t *c, const cd_sio_packet_t *p, unsigned eio_flags);
/* Queues already encoded frames (the caller keeps its references). */
int sio__client_send_frames(sio_client_t *c, base_frame_t **frames, size_t n, unsigned eio_flags);
/* CONNECT_ERROR {message, data} for namespace nsp on c (data consumed). */
void sio__send_connect_error(sio_client_t *c, const char *nsp, const char *message, cJSON *data);
/* One of our uv handles (or the adapter provider) finished closing: n_handles
 * bookkeeping, then the next closing step. */
void sio__server_handle_gone(sio_server_t *srv);
/* The closing steps that can run now: the provider's close once the engine is gone,
 * the close callback once nothing of ours is left. */
void sio__server_maybe_closed(sio_server_t *srv);

/* Tells every observer (sio_provider.h) that s was admitted / is closing. */
void sio__observers_admitted(sio_server_t *srv, sio_socket_t *s);
void sio__observers_closing(sio_server_t *srv, sio_socket_t *s, int recoverable);

/* ------------------------------------------------------------ sio_event.c */

/* EVENT packet [event, args...] in nsp with copies of bins. Consumes args. */
cd_sio_packet_t *sio__event_packet(const char *nsp, const char *event, cJSON *args,
                                   const sio_bin_t *bins, size_t nbins);
/* Appends args (an array's items, or one value) to arr. Consumes args. */
void sio__append_args(cJSON *arr, cJSON *args);
/* An event's name as Node reads it: the string, or a number printed as JavaScript would
 * ("%.17g" into num); NULL for anything else (the packet is dropped). */
const char *sio__event_name(const cJSON *name, char num[32]);

/* ------------------------------------------------------------ sio_lifetime.c */

/* A new CONNECTING socket of c in nsp (fresh id, and pid when recovery is on),
 * registered in c->sockets. Never NULL (OOM aborts). */
sio_socket_t *sio__socket_new(sio_client_t *c, sio_namespace_t *nsp);
void sio__socket_hold(sio_socket_t *s);
/* Drops a hold; frees s when it is closed and this was the last hold. */
void sio__socket_release(sio_socket_t *s);

/* ------------------------------------------------------------ sio_ack.c */

/* Registers a server->client ack entry on s (bc != NULL: part of a broadcast). */
sio_pending_t *sio__pending_add(sio_socket_t *s, int64_t id, sio_ack_cb cb, void *ud,
                                sio_bcast_t *bc, unsigned timeout_ms);
/* Unlinks p from its socket and broadcast and frees it (after its timer closed). */
void sio__pending_free(sio_pending_t *p);
/* s's pending request with ack id, or NULL. */
sio_pending_t *sio__pending_find(sio_socket_t *s, int64_t id);
/* Every pending request of s ends now with SIO_ECLOSED (s's socket is going away). */
void sio__pending_fail_all(sio_socket_t *s);
/* New broadcast-with-ack bookkeeping (refs 1, not timed). */
sio_bcast_t *sio__bcast_new(sio_namespace_t *nsp);
/* Drops one reference of bc (sio_bcast_t.refs). */
void sio__bcast_unref(sio_bcast_t *bc);
/* Ends bc once with err (cb or nothing for a responder), unregistering its targets. */
void sio__bcast_finish(sio_bcast_t *bc, int err);
/* Arms bc's timeout (ms > 0). */
void sio__bcast_arm(sio_bcast_t *bc, uint64_t ms);
/* Finishes bc when every server reported and every target answered. */
void sio__bcast_check(sio_bcast_t *bc);
/* A target of bc answered (args and its buffers borrowed) or went away. */
void sio__bcast_answer(sio_bcast_t *bc, cJSON *args, const sio_bin_t *bins, size_t nbins);
void sio__bcast_target_gone(sio_bcast_t *bc);

/* ------------------------------------------------------------ sio_socket.c */

/* Handles a CONNECT from c for nsp, a namespace c has not joined. Consumes p. */
void sio__socket_connect(sio_client_t *c, sio_namespace_t *nsp, cd_sio_packet_t *p);
/* Handles a non-CONNECT packet for a connected socket. Consumes p. */
void sio__socket_packet(sio_socket_t *s, cd_sio_packet_t *p);
/* Closes s (idempotent): leaves rooms, fails pending acks, runs the disconnect
 * callback when it was connected. send_disconnect writes DISCONNECT first. s may be
 * freed on return unless the caller holds it. */
void sio__socket_close(sio_socket_t *s, const char *reason, int send_disconnect);
/* Closes every socket of c with reason (each held across its close). */
void sio__client_close_sockets(sio_client_t *c, const char *reason, int send_disconnect);
/* sio_socket_disconnect(s, 1): DISCONNECT on every namespace, then the engine close. */
void sio__client_disconnect_all(sio_client_t *c);
/* Joins through adp_join (index first, then the adapter's hook). */
int sio__adapter_join(sio_namespace_t *nsp, sio_socket_t *s, const char *room);
/* What the adapter's session hooks get: s's session, borrowing s's strings and rooms
 * (rooms points into stack when they fit in n_stack, else at an allocation the caller
 * frees with sio__session_done). */
void sio__socket_session(sio_socket_t *s, adp_session_t *sess, const char **stack, size_t n_stack);
void sio__session_done(adp_session_t *sess, const char **stack);
/* How long ago s's client was last known to have read everything sent to it: 1 and
 * *age_ms, or 0 when not known since s was admitted (restored, no ping answered since
 * its replay). */
int sio__socket_read_age(const sio_socket_t *s, uint64_t *age_ms);

/* ------------------------------------------------------------ sio_broadcast.c */

/* The adapter host callback: encode once, queue on every local target. */
void sio__deliver(void *ud, const cd_sio_packet_t *pkt, const adp_opts_t *opts);
/* join/leave/disconnect on this node's sockets matching opts (room operations and
 * the adapter's apply callback). */
void sio__local_apply(sio_namespace_t *nsp, adp_apply_t what, const adp_opts_t *opts,
                      const char *const *rooms, size_t n_rooms, int close);

/* ------------------------------------------------------------ sio_cluster.c */

/* {id, handshake, rooms, data}: a socket as fetchSockets describes it (new tree). */
cJSON *sio__socket_describe(sio_socket_t *s);
/* The adapter host of nsp: deliver plus the callbacks serving other nodes. */
void sio__host_init(sio_namespace_t *nsp, adp_host_t *host);
/* Frees nsp's unanswered server acks (namespace teardown). */
void sio__server_acks_free(sio_namespace_t *nsp);

#endif
