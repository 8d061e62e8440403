/* eio_private.h -- the engine's insides, shared by all its files; nothing of lws.
 *
 * Split: eio_session.c owns the Engine.IO session state machine -- send queue,
 * heartbeats, packet handling, the close protocol and the deferred on_close -- and
 * reaches the network only through the transport registered with the server
 * (eio_transport_t). eio_req.c reads requests from their strings. Both are free of
 * libwebsockets, so the unit tests drive them without a socket. The lws transport is
 * the files that include eio_lws.h: eio_server.c (context, callback dispatch, listen,
 * shutdown), eio_listen.c (our listening sockets), eio_handshake.c (reading a request),
 * eio_route.c (where it goes), eio_reply.c (HTTP answers), eio_polling.c (GET/POST),
 * eio_ws.c (WebSocket upgrade and receiving), eio_ws_send.c (WebSocket sending).
 * Each file uses only files listed before it (eio_server.c uses the others), never the
 * other way round.
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

#include "base_list.h"
#include "base_map.h"
#include "cd_deflate.h"
#include "cd_eio.h"
#include "eio.h"

/* The transport's connection type, opaque here: the session only keeps and compares
 * pointers to it, and asks the transport for the engine's state of one (conn_of). */
struct lws;
struct lws_context;
struct lws_vhost;

#define EIO_ID_LEN 20
#define EIO_MAX_LISTENERS 8
#define EIO_SID_MAX 64 /* longer sid arguments match no session */

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
 * user data). What it owns is released by eio__conn_gone (eio_server.c). */
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
    unsigned char pmd;          /* permessage-deflate negotiated (eio_ws.c: eio__on_extension) */
    unsigned char msg_deflated; /* the message being received is compressed */
    cd_inflate_t zrx;           /* inflate stream of this connection, made on first use */
    unsigned char want_write;   /* WebSocket: WRITEABLE asked for; the queue waits for it */
    unsigned char peer_closed;  /* WebSocket: the client's close frame came; lws answers it */
} eio_conn_t;

#define EIO_QUERY_MAX_PAIRS 1000

/* The handshake query decoded once (eio_req.c): key/value pairs in the order the keys
 * first appeared; a key that comes again is ignored, and so is any key past
 * EIO_QUERY_MAX_PAIRS (Node's querystring maxKeys). Packed in one block, trimmed when the
 * session opens: a query holds a few short pairs, and a table plus two strings per pair
 * would cost an idle session more than its query is worth. Zero-initialise. */
typedef struct eio_query {
    char *buf;  /* key NUL value NUL key NUL value NUL ... (base_malloc), NULL when empty */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
    size_t n;   /* pairs */
} eio_query_t;

struct eio_session {
    base_list_t link;    /* srv->sessions while not DEAD */
    base_list_t pending; /* srv->pending while on_close waits for the loop */
    base_list_t wlink;   /* srv->writes while its WebSocket has frames to flush */
    eio_server_t *srv;
    char id[EIO_ID_LEN + 1];
    int transport;           /* EIO_TRANSPORT_POLLING or EIO_TRANSPORT_WEBSOCKET */
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
    char *address, *url;         /* handshake facts (owned); the query follows url's '?' */
    eio_query_t pairs;           /* the query, decoded */
    cJSON *headers;
    void *data;
};

/* Handshake facts collected by eio_handshake.c and moved into a new session. */
typedef struct eio_handshake {
    char *address, *url; /* ownership moves to the session */
    eio_query_t pairs;
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
 * ac->ev.addWrite: eio_server.c registers the libwebsockets transport, a unit test a fake.
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
    uv_prepare_t flush_prep; /* runs the flush (eio_ws_send.c) while writes is not empty */
    int lws_kick;            /* an lws timeout was set outside lws: wake lws (eio_ws_send.c) */
    int handles_ready;       /* the handles above are initialised */
    int n_handles;           /* our uv handles not yet closed (incl. session timers) */
    uint64_t reap_deadline;
    base_frame_t *ping; /* the shared "2" frame */
    cd_deflate_t zs;    /* shared deflate stream, made on first use */
    void (*close_cb)(void *arg);
    void *close_arg;
};

/* What the engine needs from one request line (eio_req.c, eio_handshake.c). */
typedef struct eio_req {
    int method;    /* LWSHUMETH_*, -1 when lws saw none */
    int transport; /* SIO_TRANSPORT_*, 0 = missing or unknown */
    int eio_ok;    /* EIO=4 */
    int has_sid;
    char sid[EIO_SID_MAX + 1];
} eio_req_t;

/* A growing NUL-terminated string (base_malloc); zero-initialise. */
typedef struct eio_buf {
    char *p;
    size_t len, cap;
} eio_buf_t;

/* ---------------------------------------------------------------- eio_req.c */

/* Appends n bytes of s to b. */
void eio__buf_put(eio_buf_t *b, const char *s, size_t n);
/* Appends n bytes of s percent-encoded (uppercase hex), leaving alone the unreserved
 * characters and those in keep: what a query or path decoder would misread is encoded. */
void eio__buf_encode(eio_buf_t *b, const char *s, size_t n, const char *keep);
/* Takes what the engine needs from one decoded query fragment (n bytes, "key=value" or
 * "key"): EIO, transport and sid; any other fragment leaves r as it is. */
void eio__req_arg(eio_req_t *r, const char *frag, size_t n);
/* Appends one decoded query fragment to the query string q, re-encoded so that decoding
 * q gives the fragment back; an empty fragment adds nothing. */
void eio__query_append(eio_buf_t *q, const char *frag, size_t n);
/* Adds one decoded query fragment (n bytes) to q, with the rules the protocol applied
 * to the query string before the engine decoded it: the key is what comes before the
 * first '=', the value what follows ("" without '='); a fragment with an empty key adds
 * nothing, nor does a key q already holds; key and value end at a NUL byte, if any. */
void eio__query_add(eio_query_t *q, const char *frag, size_t n);
/* The value of key, NULL when q does not hold it. */
const char *eio__query_get(const eio_query_t *q, const char *key);
/* The pair after *it (0 starts; an offset into q->buf): 1 with *key and *value, or 0 at
 * the end. */
int eio__query_next(const eio_query_t *q, size_t *it, const char **key, const char **value);
/* Gives back the slack of q's block (once no pair will be added). */
void eio__query_trim(eio_query_t *q);
/* Frees what q holds; q is empty and usable again. */
void eio__query_free(eio_query_t *q);
/* Is path under base (base_len bytes without its trailing '/'): "/x/..." or exactly
 * "/x"; a base of "/" takes every path. 0 for a NULL path. */
int eio__path_match(const char *base, size_t base_len, const char *path);
/* Is origin (olen bytes) one of the comma-separated entries of list (blanks around an
 * entry ignored, compared byte for byte)? */
int eio__origin_listed(const char *list, const char *origin, size_t olen);
/* 0 when origin holds a control character other than tab (Node refuses such a
 * header); 1 otherwise, NULL included. */
int eio__origin_chars_ok(const char *origin);

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
 * moved into the session. Never fails (allocation failure aborts, base_alloc.h). */
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
