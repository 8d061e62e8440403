/* eio_lws.h -- what the engine's libwebsockets files share (eio_private.h says which
 * they are and in which order they use each other).
 *
 * Every handler here returns what the lws callback should return: 0 to go on, -1 to
 * close the connection (1 from eio__on_confirm_upgrade: refused, lws completes the
 * transaction).
 */
#ifndef EIO_LWS_H
#define EIO_LWS_H

#include <libwebsockets.h>

#include "eio_private.h"

/* ---------------------------------------------------------------- eio_handshake.c */

/* Fills r from the request line of wsi (method and the Engine.IO arguments). */
void eio__req_parse(struct lws *wsi, eio_req_t *r);
/* The query of wsi's request, re-encoded so that decoding it gives lws' view back
 * (base_malloc, "" when none); when pairs is not NULL, also adds its decoded pairs. */
char *eio__req_query(struct lws *wsi, eio_query_t *pairs);
/* Collects what the session keeps about its handshake request (peer address, url at
 * path, the query as string and decoded, selected headers) into hs, which it
 * overwrites; the caller owns the result (eio__session_open takes it over). */
void eio__handshake_facts(struct lws *wsi, const char *path, eio_handshake_t *hs);
/* The reference's verify(): returns an EIO_ERR_* code or -1 when the request may
 * proceed, with *sp set to the session it names (NULL without sid). */
int eio__verify(eio_server_t *srv, struct lws *wsi, const eio_req_t *r, int upgrade,
                eio_session_t **sp);

/* ---------------------------------------------------------------- eio_reply.c */

/* The reference's error codes (engine.io Server.errorMessages) ... */
enum {
    EIO_ERR_TRANSPORT = 0,
    EIO_ERR_SID = 1,
    EIO_ERR_METHOD = 2,
    EIO_ERR_BAD = 3,
    EIO_ERR_FORBIDDEN = 4,
    EIO_ERR_VERSION = 5,
};
/* ... and their messages, by code. */
extern const char *const eio__err_msg[];

/* Flags of an answer. */
#define EIO_R_CORS 1      /* CORS headers of the configured policy */
#define EIO_R_PREFLIGHT 2 /* plus the preflight ones */
#define EIO_R_NOSTORE 4   /* cache-control: no-store (polling) */
#define EIO_R_CLOSE 8     /* connection: close */

/* Writes status line and headers into a fresh buffer (LWS_PRE headroom) with room
 * for body_len bytes after them; *p is where the body goes. NULL when the headers
 * did not fit (then nothing was written). */
unsigned char *eio__reply_begin(eio_server_t *srv, struct lws *wsi, unsigned status,
                                const char *ctype, size_t body_len, unsigned flags,
                                unsigned char **p);
/* Sends what eio__reply_begin started (body up to p), frees buf and, when complete,
 * ends the HTTP transaction. */
int eio__reply_end(struct lws *wsi, unsigned char *buf, unsigned char *p, int complete);
/* A whole answer with len bytes of body (none to a HEAD request). */
int eio__reply(eio_server_t *srv, struct lws *wsi, unsigned status, const char *ctype,
               const void *body, size_t len, unsigned flags);
/* {"code":N,"message":"..."} with 400 (403 for Forbidden), as the reference. */
int eio__reply_error(eio_server_t *srv, struct lws *wsi, int code);
/* "ok", the answer to a POST. */
int eio__reply_ok(eio_server_t *srv, struct lws *wsi);
/* One packet as a polling payload. */
int eio__reply_packet(eio_server_t *srv, struct lws *wsi, const char *pkt);

/* ---------------------------------------------------------------- eio_polling.c */

/* LWS_CALLBACK_HTTP_WRITEABLE: answers a held GET. */
int eio__get_writeable(eio_server_t *srv, struct lws *wsi, eio_conn_t *c);
/* A GET / POST naming session s. */
int eio__handle_get(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, eio_session_t *s);
int eio__handle_post(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, eio_session_t *s);
/* LWS_CALLBACK_HTTP_BODY / HTTP_BODY_COMPLETION of a POST. */
int eio__on_body(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, const void *in, size_t len);
int eio__on_body_done(eio_server_t *srv, struct lws *wsi, eio_conn_t *c);
/* eio_transport_t.wake_noop. */
void eio__wake_noop(struct lws *wsi);

/* ---------------------------------------------------------------- eio_route.c */

/* LWS_CALLBACK_HTTP: a request for path. */
int eio__on_http(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, const char *path);

/* ---------------------------------------------------------------- eio_ws_send.c */

/* LWS_CALLBACK_SERVER_WRITEABLE of a WebSocket. */
int eio__on_ws_writeable(eio_server_t *srv, struct lws *wsi, eio_conn_t *c);
/* eio_transport_t.wake for a session whose transport is its WebSocket (s->ws set). */
void eio__ws_wake(eio_session_t *s);
/* eio_transport_t.wake_close. */
void eio__wake_close(eio_server_t *srv, struct lws *wsi, unsigned short code);
/* Asks a probe WebSocket to send "3probe". */
void eio__wake_probe_ack(struct lws *wsi);

/* ---------------------------------------------------------------- eio_ws.c */

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 lets the upgrade go on, 1 refused it. */
int eio__on_confirm_upgrade(eio_server_t *srv, struct lws *wsi, const char *proto);
/* LWS_CALLBACK_ESTABLISHED: a new WebSocket session, or the probe of an upgrade. */
int eio__on_ws_open(eio_server_t *srv, struct lws *wsi, eio_conn_t *c);
/* LWS_CALLBACK_RECEIVE: one piece of a message. */
int eio__on_ws_rx(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, const void *in, size_t len);
/* LWS_CALLBACK_CONFIRM_EXTENSION_OKAY: nonzero refuses the extension. */
int eio__on_extension(struct lws *wsi, eio_conn_t *c, const char *name);

/* ---------------------------------------------------------------- eio_listen.c */

/* Binds every address host resolves to on one port (the first bind picks it when
 * port is 0). SIO_EIO with a message when nothing could be bound or the port is
 * taken. */
int eio__bind(eio_server_t *srv);
/* Starts accepting on the bound sockets (one uv_poll each, counted in n_handles). */
void eio__listeners_start(eio_server_t *srv);
/* Stops accepting and closes the listening sockets (their handles report to
 * eio__handle_closed). */
void eio__listeners_close(eio_server_t *srv);
/* Closes the bound sockets of a listen that failed before eio__listeners_start. */
void eio__close_fds(eio_server_t *srv);

#endif
