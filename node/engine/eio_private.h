/* eio_private.h -- the engine's insides, shared by eio.c (sessions) and http.c (lws).
 *
 * Split: eio.c owns the Engine.IO session state machine -- send queue, heartbeats,
 * packet handling, the close protocol and the deferred on_close -- and touches
 * libwebsockets only through the eio__wake_* calls below. http.c owns the lws
 * context on the caller's loop, our own listening sockets, request routing, the HTTP
 * answers, WebSocket framing and the shutdown sequence.
 *
 * Three tiers of state, as in the lws examples:
 *   eio_server_t   one per listener;
 *   eio_session_t  one per Engine.IO client (sid), outlives any single connection;
 *   eio_conn_t     one per lws connection (lws' per-session user data), i.e. per
 *                  HTTP request on a keep-alive connection (lws reallocates it when a
 *                  transaction completes) or per WebSocket.
 * A session points at the connections currently serving it (get, post, ws, probe)
 * and each of those points back; both links are cut together (eio__detach) so
 * neither side ever sees a dangling pointer, whichever dies first.
 *
 * Session lifecycle:
 *   OPEN     handshake done, traffic flows both ways.
 *   CLOSING  close decided (by us, by the client or by the application); on_close is
 *            queued for the loop; no new sends; the transport may still be draining.
 *   CLOSED   on_close delivered: the application forgot the session. It stays only
 *            while its transport drains (a WebSocket flushing its last frames, a
 *            polling session waiting for the GET that carries its final "1").
 *   DEAD     freed as soon as its two uv timers report closed.
 */
#ifndef EIO_PRIVATE_H
#define EIO_PRIVATE_H

#include <stdint.h>

#include <libwebsockets.h>

#include "base_list.h"
#include "base_map.h"
#include "cd_deflate.h"
#include "cd_eio.h"
#include "eio.h"

#define EIO_ID_LEN 20
#define EIO_MAX_LISTENERS 8

enum eio_state { EIO_S_OPEN, EIO_S_CLOSING, EIO_S_CLOSED, EIO_S_DEAD };

/* How a close treats what is still queued. */
enum eio_close_mode {
    EIO_CLOSE_FLUSH,  /* asked by the server: deliver the queue, then "1" / close frame */
    EIO_CLOSE_ERROR,  /* our verdict on a bad client: drop the queue; a pending GET gets "1" */
    EIO_CLOSE_CLIENT, /* the client left: drop the queue; a pending GET gets noop "6" */
};

/* What an lws connection currently does for the engine. */
enum eio_role {
    EIO_ROLE_NONE,  /* unrelated or finished request */
    EIO_ROLE_GET,   /* held polling GET */
    EIO_ROLE_POST,  /* polling POST receiving its body */
    EIO_ROLE_WS,    /* the session's WebSocket transport */
    EIO_ROLE_PROBE, /* WebSocket probing an upgrade of a polling session */
};

/* One queued frame reference and the EIO_SEND_* flags it was sent with. */
typedef struct eio_qent {
    base_frame_t *f;
    unsigned flags;
} eio_qent_t;

/* Bounded FIFO of frame references (ring buffer, grows up to max_queue frames beyond the
 * backlog). */
typedef struct eio_queue {
    eio_qent_t *buf;
    size_t cap;     /* slots allocated (power of two) */
    size_t head;    /* index of the oldest frame */
    size_t len;     /* frames queued */
    size_t backlog; /* of which sent with EIO_SEND_BACKLOG */
    size_t bytes;   /* payload bytes queued (a shared frame counts in every queue) */
    size_t backlog_bytes;
} eio_queue_t;

/* One per lws connection (lws allocates and zeroes it: the protocol's per-session
 * user data). What it owns is released by eio__conn_gone (http.c). */
typedef struct eio_conn {
    eio_session_t *s;          /* session served, NULL when none / detached */
    int role;                  /* enum eio_role */
    unsigned char done;        /* the HTTP answer was written; ignore further body */
    unsigned char noop;        /* held GET: answer noop "6" (upgrade probe started) */
    unsigned char probe_ack;   /* probe WebSocket owes "3probe" */
    unsigned short close_code; /* WebSocket: close with this code at the next WRITEABLE */
    char *body;                /* POST body collected so far (base_malloc) */
    size_t body_len, body_cap;
    cd_msgbuf_t msg; /* WebSocket message being reassembled / inflated */
    unsigned char msg_binary;
    unsigned char pmd;          /* permessage-deflate negotiated (http.c: eio__pmd_ext) */
    unsigned char msg_deflated; /* the message being received is compressed */
    cd_inflate_t zrx;           /* inflate stream of this connection, made on first use */
    unsigned char want_write;   /* WebSocket: WRITEABLE asked for; the queue waits for it */
    unsigned char peer_closed;  /* WebSocket: the client's close frame came; lws answers it */
} eio_conn_t;

struct eio_session {
    base_list_t link;    /* srv->sessions while not DEAD */
    base_list_t pending; /* srv->pending while on_close waits for the loop */
    base_list_t wlink;   /* srv->writes while its WebSocket has frames to flush */
    eio_server_t *srv;
    char id[EIO_ID_LEN + 1];
    int transport;           /* SIO_TRANSPORT_POLLING or SIO_TRANSPORT_WEBSOCKET */
    int state;               /* enum eio_state */
    int close_mode;          /* enum eio_close_mode, once CLOSING */
    char *reason;            /* close reason handed to on_close (owned) */
    unsigned char in_map;    /* findable by sid in srv->by_id */
    unsigned char upgrading; /* "2probe" answered: polling GETs get noop */
    unsigned char awaiting_pong;
    unsigned char lingering;             /* CLOSED polling session waiting for its last GET */
    unsigned char counted;               /* included in srv->n_open */
    struct lws *get, *post, *ws, *probe; /* connections serving us, see eio_conn_t */
    eio_queue_t q;
    uint64_t hb_deadline;        /* loop ms after which no pong means "ping timeout" */
    uint64_t ping_sent_at;       /* loop ms the ping awaiting its pong was queued */
    uint64_t read_at;            /* loop ms: the client had read all queued before it */
    uv_timer_t hb_timer;         /* ping interval / pong timeout; linger once CLOSED */
    uv_timer_t upg_timer;        /* upgrade timeout while a probe is open */
    int n_handles;               /* of the two timers, not yet closed */
    char *address, *url, *query; /* handshake facts (owned) */
    cJSON *headers;
    void *data;
};

/* Handshake facts collected by http.c and moved into a new session. */
typedef struct eio_handshake {
    char *address, *url, *query; /* ownership moves to the session */
    cJSON *headers;
} eio_handshake_t;

enum eio_srv_phase {
    EIO_SRV_NEW,      /* created, not listening */
    EIO_SRV_RUNNING,  /* listening */
    EIO_SRV_DRAINING, /* close called: sessions are flushing their last frames */
    EIO_SRV_LWS_DOWN, /* lws_context_destroy started: waiting for its uv handles */
    EIO_SRV_HANDLES,  /* closing our own handles */
    EIO_SRV_CLOSED,   /* close callback delivered */
};

/* What the session state machine (eio_session.c) asks of the connections that carry
 * it, registered with the server (eio__server_new) as hiredis' adapters register
 * ac->ev.addWrite: eio_http.c registers the libwebsockets transport, a unit test a fake.
 * The session never calls lws itself, so nothing is written to the network from inside
 * an eio_* call: the hooks only ask for a write, and the transport writes later.
 * None of them may call into the application or free a session. */
typedef struct eio_transport {
    /* s has output for the connection that should carry it (its held GET, its
     * WebSocket); no-op when it has none. */
    void (*wake)(eio_session_t *s);
    /* Closes connection wsi of srv with a WebSocket close code at its next chance to
     * write, or drops it if that chance does not come within pingInterval + pingTimeout. */
    void (*wake_close)(eio_server_t *srv, struct lws *wsi, unsigned short code);
    /* Releases the held GET wsi with noop "6" (the session is upgrading). */
    void (*wake_noop)(struct lws *wsi);
    /* One step of the shutdown sequence; called whenever something it waits on
     * finished (a session freed, a handle closed, the pending on_close delivered). */
    void (*shutdown_step)(eio_server_t *srv);
    /* The engine's state of connection wsi, NULL when it has none. */
    eio_conn_t *(*conn_of)(struct lws *wsi);
} eio_transport_t;

typedef struct eio_listener {
    uv_poll_t poll;
    int fd;
} eio_listener_t;

struct eio_server {
    uv_loop_t *loop;
    const eio_transport_t *tr; /* the network side (eio_transport_t) */
    eio_config_t cfg;          /* copy; strings point at the owned copies below */
    char *host, *path, *cors;
    size_t path_len; /* path without its trailing '/' */
    eio_callbacks_t cb;
    int phase; /* enum eio_srv_phase */
    int port;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    eio_listener_t listeners[EIO_MAX_LISTENERS];
    int n_listeners;
    base_list_t sessions;    /* eio_session_t.link, every not-DEAD session */
    base_list_t pending;     /* eio_session_t.pending, on_close not yet delivered */
    base_map_t by_id;        /* sid -> eio_session_t*, sessions a request may reach */
    size_t n_open;           /* sessions the application knows (on_open .. on_close) */
    uv_idle_t pending_idle;  /* delivers on_close from the loop */
    int pending_ready;       /* pending_idle is initialised */
    uv_timer_t drain_timer;  /* bounds the shutdown drain */
    uv_timer_t accept_timer; /* pauses accepting while out of file descriptors */
    uv_idle_t reap_idle;     /* waits for lws' own handles after lws_context_destroy */
    base_list_t writes;      /* eio_session_t.wlink: WebSockets to flush before the loop sleeps */
    uv_prepare_t flush_prep; /* runs the flush (http.c) while writes is not empty */
    int lws_kick;            /* an lws timeout was set outside lws: wake lws (http.c) */
    int handles_ready;       /* the handles above are initialised */
    int n_handles;           /* our uv handles not yet closed (incl. session timers) */
    uint64_t reap_deadline;
    base_frame_t *ping; /* the shared "2" frame */
    cd_deflate_t zs;    /* shared deflate stream, made on first use */
    void (*close_cb)(void *arg);
    void *close_arg;
};

/* ---------------------------------------------------------------- eio_session.c */

/* The server object without a transport (see eio_session.c). */
eio_server_t *eio__server_new(uv_loop_t *loop, const eio_config_t *cfg, const eio_callbacks_t *cb,
                              const eio_transport_t *tr);
/* Initialises the loop handle that delivers on_close (counted in srv->n_handles);
 * before it, closes wait for it to be initialised. */
void eio__sessions_handles_init(eio_server_t *srv);
/* Closes that handle; eio__handle_closed follows from the loop. */
void eio__sessions_handles_close(eio_server_t *srv);

/* Creates an OPEN session on transport, registers it under a fresh sid, queues the
 * open packet, attaches the connection that asked (wsi/c: the handshake GET or the
 * WebSocket), arms the heartbeat, calls on_open and wakes the connection. hs is
 * moved into the session. Never fails (allocation failure aborts, alloc.h). */
eio_session_t *eio__session_open(eio_server_t *srv, int transport, eio_handshake_t *hs,
                                 struct lws *wsi, eio_conn_t *c);
/* The session a request names, or NULL when unknown. Applies the heartbeat deadline
 * lazily first, so a session whose pong is overdue is closed and not returned. */
eio_session_t *eio__session_find(eio_server_t *srv, const char *sid);
/* Handles one decoded packet from the session's main transport. */
void eio__session_packet(eio_session_t *s, const cd_eio_packet_t *p);
/* Starts closing (idempotent while not OPEN). reason is copied. */
void eio__session_close(eio_session_t *s, const char *reason, int mode);
/* Frees s if nothing holds it any more: CLOSED, no connection attached, not
 * lingering. Must not be called while the application may still use s. */
void eio__session_maybe_free(eio_session_t *s);
/* Cuts the link between s and one of its connections (by role). */
void eio__detach(eio_session_t *s, struct lws *wsi, eio_conn_t *c);
/* The probe WebSocket said "2probe": mark upgrading, release a held GET. */
void eio__upgrade_probe(eio_session_t *s);
/* The probe WebSocket said "5": the session moves to it. */
void eio__upgrade_finish(eio_session_t *s);
/* A probe WebSocket is attached: arm the upgrade timeout. */
void eio__upgrade_start(eio_session_t *s, struct lws *wsi);
/* The probe wsi (connection c) will not carry s: cut it loose and forget the upgrade,
 * s goes on polling. Closing wsi is the caller's business. Harmless when wsi was
 * already detached. */
void eio__upgrade_abort(eio_session_t *s, struct lws *wsi, eio_conn_t *c);
/* Drops every queued frame reference. */
void eio__queue_clear(eio_queue_t *q);
/* Takes the oldest frame (the caller now owns the reference) and, when flags is not
 * NULL, its send flags. NULL when empty. */
base_frame_t *eio__queue_pop(eio_queue_t *q, unsigned *flags);
/* Closes every session for shutdown; frees the ones that can go now. */
void eio__sessions_shutdown(eio_server_t *srv);
/* Delivers every pending on_close now (from a loop callback). */
void eio__pending_flush(eio_server_t *srv);
/* Frees every remaining session at once (end of the shutdown drain). */
void eio__sessions_force_free(eio_server_t *srv);
/* A server handle or session timer finished closing. */
void eio__handle_closed(eio_server_t *srv);
/* Loop time in ms, refreshed (requests compare against deadlines). */
uint64_t eio__now(eio_server_t *srv);

#endif
