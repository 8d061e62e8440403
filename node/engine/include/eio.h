/* eio.h -- the Engine.IO v4 engine: sessions over WebSocket and HTTP long-polling.
 *
 * The engine owns the listening socket (libwebsockets on the caller's libuv loop),
 * the handshake, heartbeats, the polling<->websocket upgrade, per-session send
 * queues and the HTTP error answers of the protocol. It knows nothing of namespaces:
 * above it, the protocol layer sees opened sessions, whole messages and closes.
 * Plain HTTP requests outside the Engine.IO path go to on_http.
 */
#ifndef EIO_H
#define EIO_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "base_frame.h"
#include "sockeye_common.h"

/* Transports, a mask in eio_config_t.transports (the values of sockeye.h's
 * SIO_TRANSPORT_*, which the protocol passes through). */
#define EIO_TRANSPORT_POLLING 1
#define EIO_TRANSPORT_WEBSOCKET 2

/* A plain HTTP request outside the engine's path (e.g. /healthz). */
typedef struct eio_http_req {
    const char *method; /* "GET", "POST" ... */
    const char *path;   /* without the query */
    const char *query;  /* without '?', "" when none */
} eio_http_req_t;

/* Its answer, filled by the callback. */
typedef struct eio_http_res {
    int status;               /* 0 = not handled -> 404 */
    const char *content_type; /* static string */
    char *body;               /* malloc'd or NULL; freed by the engine */
    size_t body_len;
} eio_http_res_t;

typedef void (*eio_http_cb)(const eio_http_req_t *req, eio_http_res_t *res, void *ud);

typedef struct eio_server eio_server_t;   /* one per listener */
typedef struct eio_session eio_session_t; /* one per Engine.IO client (sid) */

typedef struct eio_config {
    const char *host;
    int port;
    const char *path; /* e.g. "/socket.io/" (trailing slash optional on the wire) */
    unsigned ping_interval_ms;
    unsigned ping_timeout_ms;
    unsigned upgrade_timeout_ms;
    size_t max_payload; /* per message (ws) and per POST body (polling) */
    int transports;     /* EIO_TRANSPORT_* mask */
    int allow_upgrades;
    const char *cors_origins; /* NULL, "*", or comma list */
    int cors_credentials;
    int per_message_deflate;
    size_t max_queue;       /* queued frames before the session is closed */
    size_t max_queue_bytes; /* queued payload bytes before the session is closed */
} eio_config_t;

typedef struct eio_callbacks {
    void *ud;
    /* A session completed its handshake. */
    void (*on_open)(void *ud, eio_session_t *s);
    /* One whole message (Engine.IO type 4): text without the '4', or binary bytes. */
    void (*on_message)(void *ud, eio_session_t *s, const char *data, size_t len, int binary);
    /* Exactly once per opened session, from the loop (never inside an eio_* call),
     * with a reason of the reference ("transport close", "ping timeout", "transport
     * error", "parse error", "forced close", "server shutting down"). The session is
     * freed right after it returns. */
    void (*on_close)(void *ud, eio_session_t *s, const char *reason);
    /* Requests outside path. May be NULL (everything else is 404). */
    eio_http_cb on_http;
    void *http_ud;
} eio_callbacks_t;

/* Flags for eio_session_send. */
#define EIO_SEND_VOLATILE 1   /* drop when the transport cannot take it right now */
#define EIO_SEND_NOCOMPRESS 2 /* do not deflate this frame */
/* Part of a catch-up burst (a restore's replay, bounded by the adapter): queued whatever
 * the queue holds and not counted against max_queue, so a client that missed more than
 * max_queue packets is not closed by its own recovery (and then again at each retry). */
#define EIO_SEND_BACKLOG 4

eio_server_t *eio_server_new(uv_loop_t *loop, const eio_config_t *cfg, const eio_callbacks_t *cb);
/* Binds and listens. SIO_EIO on failure (message on stderr). */
int eio_server_listen(eio_server_t *srv);
int eio_server_port(const eio_server_t *srv);
size_t eio_server_session_count(const eio_server_t *srv);
/* Stops accepting, closes all sessions ("server shutting down"), tears down lws and
 * calls cb once nothing of the engine is left on the loop. */
void eio_server_close(eio_server_t *srv, void (*cb)(void *arg), void *arg);
void eio_server_free(eio_server_t *srv);

/* Queues frame (takes its own reference). SIO_OK, SIO_ECLOSED when the session is
 * closing, SIO_EBUSY when it was volatile and dropped. A session whose queue passes
 * max_queue is closed ("transport error"); the send then returns SIO_ECLOSED. */
int eio_session_send(eio_session_t *s, base_frame_t *f, unsigned flags);
/* Starts closing (idempotent); on_close follows from the loop. */
void eio_session_close(eio_session_t *s, const char *reason);

const char *eio_session_id(const eio_session_t *s);
/* Loop time (ms, uv_now) before which everything queued on s is known to have been read
 * by the client: the send time of the last ping it answered, or the session's open (when
 * nothing was queued yet). Recovery uses it to tell how old the client's state may be. */
uint64_t eio_session_read_at(const eio_session_t *s);
const char *eio_session_transport(const eio_session_t *s);
const char *eio_session_address(const eio_session_t *s);
const char *eio_session_url(const eio_session_t *s);   /* handshake request path?query */
const char *eio_session_query(const eio_session_t *s); /* handshake query (without '?') */
/* The handshake query, decoded once when the session opened (Node's handshake.query):
 * the value of key, "" for a key given without '=', NULL when absent. Keys and values
 * are as libwebsockets decoded the request ('+' a space, %xx resolved, split at '&' and
 * ';'); a key given twice keeps its first value; a fragment with an empty key is
 * skipped. The strings live as long as s. */
const char *eio_session_query_get(const eio_session_t *s, const char *key);
/* Iterates the decoded pairs in the order their keys first appeared:
 *   size_t it = 0; const char *k, *v;
 *   while (eio_session_query_next(s, &it, &k, &v)) ...
 * Returns 1 with *key and *value set, 0 after the last pair. */
int eio_session_query_next(const eio_session_t *s, size_t *it, const char **key,
                           const char **value);
/* Selected handshake request headers as a JSON object (lowercase names). */
const cJSON *eio_session_headers(const eio_session_t *s);
void *eio_session_data(const eio_session_t *s);
void eio_session_set_data(eio_session_t *s, void *data);

#endif
