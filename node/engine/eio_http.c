/* http.c -- the engine's network side: libwebsockets on the caller's libuv loop.
 *
 * Why our own listening sockets: lws 4.1 binds inside lws_create_context and
 * reports a busy port only as a failed context, and a context on a foreign loop can
 * only be destroyed asynchronously. So we bind (host may resolve to several
 * addresses; port 0 picks one port for all), watch the sockets with uv_poll, accept
 * ourselves and hand each connection to lws (lws_adopt_socket_vhost). The vhost is
 * a server that never listens (CONTEXT_PORT_NO_LISTEN_SERVER).
 *
 * Writes: HTTP answers are small and written in the callback of their own request
 * (lws buffers what the socket does not take); the held polling GET is answered from
 * LWS_CALLBACK_HTTP_WRITEABLE. WebSocket frames are written by us, not by lws: the
 * sessions that got frames during a loop iteration are listed, and before the loop
 * sleeps (uv_prepare) each one's queue goes into its socket with one sendmsg, many
 * frames at once, straight from the frames' BASE_FRAME_PRE headroom. Only when the
 * kernel says EAGAIN does lws get asked for LWS_CALLBACK_SERVER_WRITEABLE
 * (eio__ws_flush tells why and how this stays in order with lws' own writes).
 *
 * WebSocket data frames are framed here and written raw, and permessage-deflate is
 * done here too (one shared deflate stream for sending, one inflate stream per
 * connection for receiving): lws 4.1.6's own extension aborts the process on
 * messages any client can send (eio__pmd_ext). lws negotiates and parses frames.
 *
 * Shutdown on a foreign loop (lws 4.1): lws_context_destroy closes every lws
 * connection but only starts closing lws' uv handles; the context memory goes only
 * with a second lws_context_destroy once those are gone. lws marks its per-loop
 * handles (idle, timer) with handle->data == context and closes them only after all
 * connection handles, so we poll the loop (uv_walk) from an idle handle until no
 * handle points at the context, then destroy again. Neither call may run inside an
 * lws callback, hence the timer/idle hops.
 */
#include "eio_private.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base_alloc.h"
#include "base_base64.h"
#include "cd_deflate.h"
#include "cd_eio.h"
#include "cd_ws.h"

/* A frame's headroom takes the WebSocket header we write in place (eio__ws_write);
 * LWS_PRE is what lws_write itself may need there. */
_Static_assert(LWS_PRE <= BASE_FRAME_PRE, "frames need LWS_PRE bytes of headroom for lws_write");
_Static_assert(CD_WS_HDR_MAX <= BASE_FRAME_PRE, "frames need room for a WebSocket header");

#define EIO_HDR_ROOM 2048   /* status line + headers of one answer */
#define EIO_ORIGIN_MAX 512  /* longer Origin / request-headers values are not echoed */
#define EIO_DRAIN_MS 1000   /* shutdown: time given to sessions to flush */
#define EIO_REAP_MS 5000    /* shutdown: time given to lws to close its handles */
#define EIO_ACCEPT_BURST 64 /* accepts per readiness event, then back to the loop */
#define EIO_SID_MAX 64
#define EIO_DEFLATE_MIN 1024 /* smaller WebSocket messages go uncompressed (ws' threshold) */

/* The engine names WebSocket close codes by their RFC numbers (cd_ws.h) so that the
 * session state machine needs nothing of lws; lws uses the same numbers. */
_Static_assert((int)CD_WS_CLOSE_NORMAL == (int)LWS_CLOSE_STATUS_NORMAL &&
                   (int)CD_WS_CLOSE_GOINGAWAY == (int)LWS_CLOSE_STATUS_GOINGAWAY &&
                   (int)CD_WS_CLOSE_PROTOCOL_ERR == (int)LWS_CLOSE_STATUS_PROTOCOL_ERR &&
                   (int)CD_WS_CLOSE_INVALID_PAYLOAD == (int)LWS_CLOSE_STATUS_INVALID_PAYLOAD &&
                   (int)CD_WS_CLOSE_POLICY_VIOLATION == (int)LWS_CLOSE_STATUS_POLICY_VIOLATION &&
                   (int)CD_WS_CLOSE_MESSAGE_TOO_LARGE == (int)LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE &&
                   (int)CD_WS_CLOSE_UNEXPECTED_CONDITION ==
                       (int)LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
               "RFC 6455 close codes");

static void eio__wake_probe_ack(struct lws *wsi);

/* ---------------------------------------------------------------- protocol errors */

/* The reference's error codes and messages (engine.io Server.errorMessages). */
enum {
    EIO_ERR_TRANSPORT = 0,
    EIO_ERR_SID = 1,
    EIO_ERR_METHOD = 2,
    EIO_ERR_BAD = 3,
    EIO_ERR_FORBIDDEN = 4,
    EIO_ERR_VERSION = 5,
};

static const char *const eio__err_msg[] = {
    "Transport unknown", "Session ID unknown", "Bad handshake method",
    "Bad request",       "Forbidden",          "Unsupported protocol version",
};

/* Method names by LWSHUMETH_* index. */
static const char *const eio__methods[] = {"GET",    "POST",    "OPTIONS", "PUT", "PATCH",
                                           "DELETE", "CONNECT", "HEAD",    "GET"};

/* Handshake headers kept on the session (socket.handshake.headers). */
static const enum lws_token_indexes eio__kept_headers[] = {
    WSI_TOKEN_HOST,
    WSI_TOKEN_ORIGIN,
    WSI_TOKEN_HTTP_USER_AGENT,
    WSI_TOKEN_HTTP_COOKIE,
    WSI_TOKEN_HTTP_REFERER,
    WSI_TOKEN_HTTP_ACCEPT,
    WSI_TOKEN_HTTP_ACCEPT_LANGUAGE,
    WSI_TOKEN_HTTP_ACCEPT_ENCODING,
    WSI_TOKEN_HTTP_AUTHORIZATION,
    WSI_TOKEN_X_FORWARDED_FOR,
    WSI_TOKEN_HTTP_X_REAL_IP,
};
static const char *const eio__kept_custom[] = {"x-forwarded-proto:", "x-forwarded-host:"};

/* ---------------------------------------------------------------- requests */

/* What the engine needs from one request line. */
typedef struct eio_req {
    int method;    /* LWSHUMETH_*, -1 when lws saw none */
    int transport; /* SIO_TRANSPORT_*, 0 = missing or unknown */
    int eio_ok;    /* EIO=4 */
    int has_sid;
    char sid[EIO_SID_MAX + 1];
    char *query; /* re-encoded query string (base_malloc), "" when none */
} eio_req_t;

typedef struct eio_buf {
    char *p;
    size_t len, cap;
} eio_buf_t;

static void eio__buf_put(eio_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = base_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Percent-encodes what a query or path decoder would misread. lws hands us the
 * request already decoded ('+' as space, %xx resolved, split at '&' and ';'), so the
 * strings the session keeps are re-encoded: decoding them gives lws' view back. */
static void eio__buf_encode(eio_buf_t *b, const char *s, size_t n, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            (ch != 0 && strchr("-._~", ch)) || (ch != 0 && strchr(keep, ch))) {
            eio__buf_put(b, (const char *)&s[i], 1);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            eio__buf_put(b, e, 3);
        }
    }
}

static void eio__req_parse(struct lws *wsi, eio_req_t *r)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    char *frag = base_malloc((size_t)(total > 0 ? total : 0) + 1);
    eio_buf_t q = {0};
    char *uri;
    int ulen;

    memset(r, 0, sizeof(*r));
    r->method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    for (int i = 0; total > 0; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
        char *eq;
        size_t klen;

        if (n < 0)
            break;
        eq = memchr(frag, '=', (size_t)n);
        klen = eq != NULL ? (size_t)(eq - frag) : (size_t)n;
        if (eq != NULL) {
            const char *v = eq + 1;
            size_t vlen = (size_t)n - klen - 1;
            if (klen == 3 && memcmp(frag, "EIO", 3) == 0) {
                r->eio_ok = vlen == 1 && v[0] == '4';
            } else if (klen == 9 && memcmp(frag, "transport", 9) == 0) {
                if (vlen == 7 && memcmp(v, "polling", 7) == 0)
                    r->transport = SIO_TRANSPORT_POLLING;
                else if (vlen == 9 && memcmp(v, "websocket", 9) == 0)
                    r->transport = SIO_TRANSPORT_WEBSOCKET;
                else
                    r->transport = 0;
            } else if (klen == 3 && memcmp(frag, "sid", 3) == 0) {
                /* an over-long sid cannot be ours: keep a marker that matches nothing */
                r->has_sid = 1;
                if (vlen <= EIO_SID_MAX) {
                    memcpy(r->sid, v, vlen);
                    r->sid[vlen] = '\0';
                } else {
                    strcpy(r->sid, "-");
                }
            }
        }
        if (n == 0)
            continue;
        if (q.len > 0)
            eio__buf_put(&q, "&", 1);
        eio__buf_encode(&q, frag, klen, ",:/@!$'()*");
        if (eq != NULL) {
            eio__buf_put(&q, "=", 1);
            eio__buf_encode(&q, eq + 1, (size_t)n - klen - 1, ",:/@!$'()*=");
        }
    }
    base_free(frag);
    r->query = q.p != NULL ? q.p : base_strdup("");
}

/* Copies a header (all its fragments) into a fresh string, NULL when absent. */
static char *eio__hdr_dup(struct lws *wsi, enum lws_token_indexes tok)
{
    int n = lws_hdr_total_length(wsi, tok);
    char *v;

    if (n <= 0)
        return NULL;
    v = base_malloc((size_t)n + 1);
    if (lws_hdr_copy(wsi, v, n + 1, tok) < 0) {
        base_free(v);
        return NULL;
    }
    return v;
}

/* Collects what the session keeps about its handshake request. */
static void eio__handshake_facts(struct lws *wsi, const char *path, eio_req_t *r,
                                 eio_handshake_t *hs)
{
    char peer[128];
    eio_buf_t url = {0};
    cJSON *h = cJSON_CreateObject();

    peer[0] = '\0';
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    peer[sizeof(peer) - 1] = '\0';
    hs->address = base_strdup(peer);

    eio__buf_encode(&url, path, strlen(path), "/,:@!$'()*+;=");
    if (r->query[0]) {
        eio__buf_put(&url, "?", 1);
        eio__buf_put(&url, r->query, strlen(r->query));
    }
    hs->url = url.p;
    hs->query = r->query;
    r->query = NULL;

    for (size_t i = 0; i < sizeof(eio__kept_headers) / sizeof(eio__kept_headers[0]); i++) {
        const char *name = (const char *)lws_token_to_string(eio__kept_headers[i]);
        char *v = eio__hdr_dup(wsi, eio__kept_headers[i]);
        char key[64];
        size_t kl;

        if (v == NULL || name == NULL) {
            base_free(v);
            continue;
        }
        kl = strlen(name);
        if (kl > 0 && name[kl - 1] == ':')
            kl--;
        if (kl >= sizeof(key))
            kl = sizeof(key) - 1;
        memcpy(key, name, kl);
        key[kl] = '\0';
        cJSON_AddStringToObject(h, key, v);
        base_free(v);
    }
    for (size_t i = 0; i < sizeof(eio__kept_custom) / sizeof(eio__kept_custom[0]); i++) {
        const char *name = eio__kept_custom[i];
        int nl = (int)strlen(name);
        int vl = lws_hdr_custom_length(wsi, name, nl);
        char key[64];

        if (vl < 0)
            continue;
        char *v = base_malloc((size_t)vl + 1);
        if (lws_hdr_custom_copy(wsi, v, vl + 1, name, nl) >= 0) {
            memcpy(key, name, (size_t)nl - 1);
            key[nl - 1] = '\0';
            cJSON_AddStringToObject(h, key, v);
        }
        base_free(v);
    }
    hs->headers = h;
}

/* Node refuses an Origin holding characters an HTTP header may not carry. */
static int eio__origin_ok(struct lws *wsi)
{
    char *o = eio__hdr_dup(wsi, WSI_TOKEN_ORIGIN);
    int ok = 1;

    for (const unsigned char *p = (const unsigned char *)o; p != NULL && *p; p++)
        if (*p != '\t' && (*p < 0x20 || *p == 0x7f))
            ok = 0;
    base_free(o);
    return ok;
}

/* "/x/..." or exactly "/x" (a path of "/" takes everything). */
static int eio__path_match(const eio_server_t *srv, const char *path)
{
    if (path == NULL)
        return 0;
    if (srv->path_len == 1)
        return path[0] == '/';
    if (strncmp(path, srv->path, srv->path_len) != 0)
        return 0;
    return path[srv->path_len] == '\0' || path[srv->path_len] == '/';
}

/* The reference's verify(): returns an EIO_ERR_* code or -1 when the request may
 * proceed, with *sp set to the session it names (NULL without sid). */
static int eio__verify(eio_server_t *srv, struct lws *wsi, const eio_req_t *r, int upgrade,
                       eio_session_t **sp)
{
    *sp = NULL;
    if (r->transport == 0 || !(srv->cfg.transports & r->transport))
        return EIO_ERR_TRANSPORT;
    if (!eio__origin_ok(wsi))
        return EIO_ERR_BAD;
    if (r->has_sid) {
        eio_session_t *s = eio__session_find(srv, r->sid);
        if (s == NULL)
            return EIO_ERR_SID;
        if (!upgrade && s->transport != r->transport)
            return EIO_ERR_BAD;
        *sp = s;
    } else {
        if (r->method != LWSHUMETH_GET)
            return EIO_ERR_METHOD;
        if (r->transport == SIO_TRANSPORT_WEBSOCKET && !upgrade)
            return EIO_ERR_BAD;
    }
    if (!r->eio_ok)
        return EIO_ERR_VERSION;
    return -1;
}

/* ---------------------------------------------------------------- answers */

#define EIO_R_CORS 1      /* CORS headers of the configured policy */
#define EIO_R_PREFLIGHT 2 /* plus the preflight ones */
#define EIO_R_NOSTORE 4   /* cache-control: no-store (polling) */
#define EIO_R_CLOSE 8     /* connection: close */

static int eio__add_hdr(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                        unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

/* Is origin (olen bytes) one of the comma-separated entries of list? */
static int eio__origin_listed(const char *list, const char *origin, size_t olen)
{
    const char *p = list;

    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        const char *a = p, *b = p + n;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if ((size_t)(b - a) == olen && memcmp(a, origin, olen) == 0)
            return 1;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return 0;
}

/* CORS as the reference's cors middleware answers with {origin, credentials}. */
static int eio__cors_headers(eio_server_t *srv, struct lws *wsi, int preflight, unsigned char **p,
                             unsigned char *end)
{
    char origin[EIO_ORIGIN_MAX], reqh[EIO_ORIGIN_MAX];
    const char *allow = NULL;
    int olen = -1, vary_origin = 0, rc = 0;

    if (srv->cors == NULL)
        return 0;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) < (int)sizeof(origin))
        olen = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
    if (strcmp(srv->cors, "*") == 0) {
        /* "*" cannot go with credentials (browsers reject it): echo the origin then */
        if (srv->cfg.cors_credentials && olen > 0) {
            allow = origin;
            vary_origin = 1;
        } else {
            allow = "*";
        }
    } else {
        vary_origin = 1;
        if (olen > 0 && eio__origin_listed(srv->cors, origin, (size_t)olen))
            allow = origin;
    }
    if (allow != NULL) {
        rc |= eio__add_hdr(wsi, "access-control-allow-origin:", allow, p, end);
        if (srv->cfg.cors_credentials)
            rc |= eio__add_hdr(wsi, "access-control-allow-credentials:", "true", p, end);
    }
    if (preflight) {
        rc |= eio__add_hdr(wsi, "access-control-allow-methods:", "GET,HEAD,PUT,PATCH,POST,DELETE",
                           p, end);
        if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AC_REQUEST_HEADERS) < (int)sizeof(reqh) &&
            lws_hdr_copy(wsi, reqh, sizeof(reqh), WSI_TOKEN_HTTP_AC_REQUEST_HEADERS) > 0)
            rc |= eio__add_hdr(wsi, "access-control-allow-headers:", reqh, p, end);
    }
    if (vary_origin || preflight)
        rc |= eio__add_hdr(wsi, "vary:",
                           vary_origin && preflight ? "Origin, Access-Control-Request-Headers"
                           : vary_origin            ? "Origin"
                                                    : "Access-Control-Request-Headers",
                           p, end);
    return rc;
}

/* Did the request say "Connection: close"? */
static int eio__conn_close_asked(struct lws *wsi)
{
    char v[64];

    if (lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_CONNECTION) <= 0)
        return 0;
    for (char *p = v; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return strstr(v, "close") != NULL;
}

/* Writes status line and headers into a fresh buffer (LWS_PRE headroom) with room
 * for body_len bytes after them; *p is where the body goes. NULL when the headers
 * did not fit (then nothing was written). */
static unsigned char *eio__reply_begin(eio_server_t *srv, struct lws *wsi, unsigned status,
                                       const char *ctype, size_t body_len, unsigned flags,
                                       unsigned char **p)
{
    unsigned char *buf = base_malloc(LWS_PRE + EIO_HDR_ROOM + body_len);
    unsigned char *end = buf + LWS_PRE + EIO_HDR_ROOM;
    int rc = 0;

    *p = buf + LWS_PRE;
    rc |= lws_add_http_header_status(wsi, status, p, end);
    if (ctype != NULL)
        rc |=
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                         (const unsigned char *)ctype, (int)strlen(ctype), p, end);
    rc |= lws_add_http_header_content_length(wsi, body_len, p, end);
    if (flags & EIO_R_NOSTORE)
        rc |= eio__add_hdr(wsi, "cache-control:", "no-store", p, end);
    /* say it when the connection ends with this answer: a client that asked for
     * "close" may still pool the socket unless the answer confirms it (Node's http
     * client does, node-fetch asks for "close") */
    if ((flags & EIO_R_CLOSE) || eio__conn_close_asked(wsi))
        rc |= eio__add_hdr(wsi, "connection:", "close", p, end);
    if (flags & EIO_R_CORS)
        rc |= eio__cors_headers(srv, wsi, (flags & EIO_R_PREFLIGHT) != 0, p, end);
    rc |= lws_finalize_http_header(wsi, p, end);
    if (rc) {
        base_free(buf);
        return NULL;
    }
    return buf;
}

/* Sends what eio__reply_begin started (body up to p), frees buf and, when complete,
 * ends the HTTP transaction. Returns what the lws callback should return. */
static int eio__reply_end(struct lws *wsi, unsigned char *buf, unsigned char *p, int complete)
{
    unsigned char *start = buf + LWS_PRE;
    int n = lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL);

    base_free(buf);
    if (n < 0)
        return -1;
    if (complete && lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

static int eio__reply(eio_server_t *srv, struct lws *wsi, unsigned status, const char *ctype,
                      const void *body, size_t len, unsigned flags)
{
    unsigned char *p, *buf = eio__reply_begin(srv, wsi, status, ctype, len, flags, &p);
    char *uri;
    int ulen;

    if (buf == NULL)
        return -1;
    /* a HEAD answer announces the length but carries no body */
    if (lws_http_get_uri_and_method(wsi, &uri, &ulen) == LWSHUMETH_HEAD)
        len = 0;
    if (len > 0)
        memcpy(p, body, len);
    return eio__reply_end(wsi, buf, p + len, 1);
}

/* {"code":N,"message":"..."} with 400 (403 for Forbidden), as the reference. */
static int eio__reply_error(eio_server_t *srv, struct lws *wsi, int code)
{
    char body[96];
    int n =
        snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code, eio__err_msg[code]);

    return eio__reply(srv, wsi, code == EIO_ERR_FORBIDDEN ? 403 : 400, "application/json", body,
                      (size_t)n, EIO_R_CORS);
}

static int eio__reply_ok(eio_server_t *srv, struct lws *wsi)
{
    return eio__reply(srv, wsi, 200, "text/html", "ok", 2, EIO_R_CORS);
}

static int eio__reply_packet(eio_server_t *srv, struct lws *wsi, const char *pkt)
{
    return eio__reply(srv, wsi, 200, "text/plain; charset=UTF-8", pkt, strlen(pkt),
                      EIO_R_CORS | EIO_R_NOSTORE);
}

/* ---------------------------------------------------------------- polling */

/* Answers a held GET: everything queued as one payload, or the noop / close packet
 * that ends it. The GET is detached before the write, because completing the
 * transaction hands the connection (and its user data) back to lws. */
static int eio__get_writeable(eio_server_t *srv, struct lws *wsi, eio_conn_t *c)
{
    eio_session_t *s = c->s;
    base_frame_t *stack[16], **frames = stack;
    const char *tail = NULL;
    size_t n = 0, len;
    unsigned char *buf, *p;

    if (s == NULL || c->role != EIO_ROLE_GET)
        return 0;
    if (c->noop) {
        eio__detach(s, wsi, c);
        eio__session_maybe_free(s);
        return eio__reply_packet(srv, wsi, "6");
    }
    if (s->state == EIO_S_OPEN && s->q.len == 0)
        return 0; /* spurious: keep holding */
    if (s->state != EIO_S_OPEN)
        tail = s->close_mode == EIO_CLOSE_CLIENT ? "6" : "1";

    if (s->q.len > sizeof(stack) / sizeof(stack[0]))
        frames = base_malloc(s->q.len * sizeof(*frames));
    while (s->q.len > 0)
        frames[n++] = eio__queue_pop(&s->q, NULL);
    eio__detach(s, wsi, c);
    eio__session_maybe_free(s);

    len = cd_eio_payload_len(frames, n) + (tail != NULL ? (n > 0) + 1 : 0);
    buf = eio__reply_begin(srv, wsi, 200, "text/plain; charset=UTF-8", len,
                           EIO_R_CORS | EIO_R_NOSTORE, &p);
    if (buf != NULL) {
        p += cd_eio_payload_write(frames, n, (char *)p);
        if (tail != NULL) {
            if (n > 0)
                *p++ = CD_EIO_RS;
            *p++ = (unsigned char)tail[0];
        }
    }
    for (size_t i = 0; i < n; i++)
        base_frame_unref(frames[i]);
    if (frames != stack)
        base_free(frames);
    if (buf == NULL)
        return -1;
    return eio__reply_end(wsi, buf, p, 1);
}

static int eio__handle_get(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, eio_session_t *s)
{
    if (s->state != EIO_S_OPEN) {
        /* a server-closed polling session hands its last frames and "1" to the
         * next GET; anything else closing is gone */
        if (s->close_mode == EIO_CLOSE_FLUSH && s->get == NULL &&
            s->transport == SIO_TRANSPORT_POLLING) {
            if (s->lingering) {
                s->lingering = 0;
                uv_timer_stop(&s->hb_timer);
            }
            c->s = s;
            c->role = EIO_ROLE_GET;
            s->get = wsi;
            lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
            lws_callback_on_writable(wsi);
            return 0;
        }
        return eio__reply_error(srv, wsi, EIO_ERR_SID);
    }
    if (s->get != NULL) {
        /* overlapping polls: the reference fails the session; the first GET gets "1" */
        eio__session_close(s, "transport error", EIO_CLOSE_ERROR);
        return eio__reply_error(srv, wsi, EIO_ERR_BAD);
    }
    if (s->upgrading)
        return eio__reply_packet(srv, wsi, "6");
    c->s = s;
    c->role = EIO_ROLE_GET;
    s->get = wsi;
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0); /* held as long as there is nothing to say */
    if (s->q.len > 0)
        lws_callback_on_writable(wsi);
    return 0;
}

static int eio__handle_post(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, eio_session_t *s)
{
    char clen[32], ctype[64];

    if (s->state != EIO_S_OPEN)
        return eio__reply_error(srv, wsi, EIO_ERR_SID);
    if (s->post != NULL) {
        eio__session_close(s, "transport error", EIO_CLOSE_ERROR);
        return eio__reply_error(srv, wsi, EIO_ERR_BAD);
    }
    if (lws_hdr_copy(wsi, ctype, sizeof(ctype), WSI_TOKEN_HTTP_CONTENT_TYPE) > 0 &&
        strncmp(ctype, "application/octet-stream", 24) == 0) {
        eio__session_close(s, "transport error", EIO_CLOSE_ERROR);
        return eio__reply_error(srv, wsi, EIO_ERR_BAD);
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        /* lws 4.1's HTTP/1 server does not decode chunked request bodies (it would
         * wait for 100 MB); clients of the protocol always send Content-Length */
        c->done = 1;
        eio__reply(srv, wsi, 411, NULL, NULL, 0, EIO_R_CORS | EIO_R_CLOSE);
        return -1;
    }
    if (lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
        strtoull(clen, NULL, 10) > srv->cfg.max_payload) {
        eio__session_close(s, "transport error", EIO_CLOSE_ERROR);
        c->done = 1;
        return eio__reply(srv, wsi, 413, NULL, NULL, 0, EIO_R_CORS);
    }
    c->s = s;
    c->role = EIO_ROLE_POST;
    s->post = wsi;
    return 0;
}

static int eio__on_body(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, const void *in,
                        size_t len)
{
    if (c == NULL || c->role != EIO_ROLE_POST || c->done)
        return 0;
    if (c->body_len + len > srv->cfg.max_payload) {
        eio_session_t *s = c->s;
        c->done = 1;
        if (s != NULL) {
            eio__detach(s, wsi, c);
            eio__session_close(s, "transport error", EIO_CLOSE_ERROR);
        }
        return eio__reply(srv, wsi, 413, NULL, NULL, 0, EIO_R_CORS);
    }
    if (c->body_len + len > c->body_cap) {
        c->body_cap = (c->body_len + len) * 2 < srv->cfg.max_payload ? (c->body_len + len) * 2
                                                                     : srv->cfg.max_payload;
        c->body = base_realloc(c->body, c->body_cap);
    }
    if (len > 0)
        memcpy(c->body + c->body_len, in, len);
    c->body_len += len;
    return 0;
}

static int eio__post_packet(void *ud, const cd_eio_packet_t *p)
{
    eio_session_t *s = ud;

    eio__session_packet(s, p);
    return s->state == EIO_S_OPEN ? 0 : 1;
}

static int eio__on_body_done(eio_server_t *srv, struct lws *wsi, eio_conn_t *c)
{
    eio_session_t *s;
    int rc;

    if (c == NULL || c->role != EIO_ROLE_POST || c->done)
        return 0;
    c->done = 1;
    s = c->s;
    if (s == NULL) /* the session closed while the body was coming */
        return eio__reply_error(srv, wsi, EIO_ERR_SID);
    eio__detach(s, wsi, c);
    rc = cd_eio_decode_payload(c->body != NULL ? c->body : "", c->body_len, eio__post_packet, s);
    if (rc < 0)
        eio__session_close(s, "parse error", EIO_CLOSE_ERROR);
    /* the reference answers "ok" even to a POST it could not parse */
    return eio__reply_ok(srv, wsi);
}

/* ---------------------------------------------------------------- plain HTTP */

static int eio__plain_http(eio_server_t *srv, struct lws *wsi, const char *path)
{
    eio_req_t r;
    sio_http_req_t req;
    sio_http_res_t res = {0};
    int rc;

    eio__req_parse(wsi, &r);
    req.method = r.method >= 0 && r.method < (int)(sizeof(eio__methods) / sizeof(eio__methods[0]))
                     ? eio__methods[r.method]
                     : "GET";
    req.path = path;
    req.query = r.query;
    if (srv->cb.on_http != NULL)
        srv->cb.on_http(&req, &res, srv->cb.http_ud);
    if (res.status == 0)
        rc = eio__reply(srv, wsi, 404, "text/plain", "Not Found", 9, 0);
    else
        rc = eio__reply(srv, wsi, (unsigned)res.status,
                        res.content_type != NULL ? res.content_type : "text/plain", res.body,
                        res.body != NULL ? res.body_len : 0, 0);
    base_free(res.body);
    base_free(r.query);
    return rc;
}

/* ---------------------------------------------------------------- engine HTTP */

static int eio__on_http(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, const char *path)
{
    eio_session_t *s;
    eio_req_t r;
    int err, rc;

    if (c == NULL)
        return -1;
    if (!eio__path_match(srv, path))
        return eio__plain_http(srv, wsi, path);
    eio__req_parse(wsi, &r);
    if (r.method == LWSHUMETH_OPTIONS && srv->cors != NULL) {
        rc = eio__reply(srv, wsi, 204, NULL, NULL, 0, EIO_R_CORS | EIO_R_PREFLIGHT);
    } else if ((err = eio__verify(srv, wsi, &r, 0, &s)) >= 0) {
        rc = eio__reply_error(srv, wsi, err);
    } else if (s == NULL) {
        if (srv->phase != EIO_SRV_RUNNING) {
            rc = eio__reply(srv, wsi, 503, "text/plain", "Server shutting down", 20, EIO_R_CORS);
        } else {
            eio_handshake_t hs;
            eio__handshake_facts(wsi, path, &r, &hs);
            lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
            eio__session_open(srv, SIO_TRANSPORT_POLLING, &hs, wsi, c);
            rc = 0;
        }
    } else if (r.method == LWSHUMETH_GET) {
        rc = eio__handle_get(srv, wsi, c, s);
    } else if (r.method == LWSHUMETH_POST) {
        rc = eio__handle_post(srv, wsi, c, s);
    } else {
        rc = eio__reply(srv, wsi, 500, NULL, NULL, 0, EIO_R_CORS);
    }
    base_free(r.query);
    return rc;
}

/* ---------------------------------------------------------------- WebSocket */

/* Refusal of an upgrade, in the reference's raw form (text/html, message only). */
static int eio__reject_upgrade(eio_server_t *srv, struct lws *wsi, unsigned status, const char *msg)
{
    unsigned char *p, *buf;
    size_t len = strlen(msg);

    buf = eio__reply_begin(srv, wsi, status, "text/html", len, EIO_R_CLOSE, &p);
    if (buf == NULL)
        return -1;
    memcpy(p, msg, len);
    /* lws completes the transaction itself when CONFIRM_UPGRADE returns > 0 */
    return eio__reply_end(wsi, buf, p + len, 0) < 0 ? -1 : 1;
}

/* Decides on an upgrade while the request is still HTTP, so that what the
 * reference refuses in verify() gets its plain 400 instead of a 101. */
static int eio__on_confirm_upgrade(eio_server_t *srv, struct lws *wsi, const char *proto)
{
    eio_session_t *s;
    eio_req_t r;
    char *uri;
    int ulen, err;

    if (proto == NULL || strcmp(proto, "websocket") != 0)
        return eio__reject_upgrade(srv, wsi, 400, "Bad request");
    if (lws_http_get_uri_and_method(wsi, &uri, &ulen) < 0 || !eio__path_match(srv, uri))
        return eio__reject_upgrade(srv, wsi, 404, "Not Found");
    if (srv->phase != EIO_SRV_RUNNING)
        return eio__reject_upgrade(srv, wsi, 503, "Server shutting down");
    eio__req_parse(wsi, &r);
    err = eio__verify(srv, wsi, &r, 1, &s);
    if (err < 0 && r.transport != SIO_TRANSPORT_WEBSOCKET)
        err = EIO_ERR_BAD;
    /* a known sid that cannot upgrade now (already upgraded or upgrading) gets the
     * 101 and an immediate close, as from the reference (eio__on_ws_open) */
    base_free(r.query);
    if (err >= 0)
        return eio__reject_upgrade(srv, wsi, err == EIO_ERR_FORBIDDEN ? 403 : 400,
                                   eio__err_msg[err]);
    return 0;
}

static int eio__on_ws_open(eio_server_t *srv, struct lws *wsi, eio_conn_t *c)
{
    eio_session_t *s = NULL;
    eio_req_t r;
    char *uri = NULL;
    int ulen = 0, rc = 0;

    if (c == NULL)
        return -1;
    eio__req_parse(wsi, &r);
    if (!r.has_sid) {
        eio_handshake_t hs;
        if (lws_http_get_uri_and_method(wsi, &uri, &ulen) < 0 || uri == NULL)
            uri = srv->path;
        eio__handshake_facts(wsi, uri, &r, &hs);
        eio__session_open(srv, SIO_TRANSPORT_WEBSOCKET, &hs, wsi, c);
    } else {
        s = eio__session_find(srv, r.sid);
        if (s == NULL || s->state != EIO_S_OPEN || s->transport != SIO_TRANSPORT_POLLING ||
            s->probe != NULL || !srv->cfg.allow_upgrades) {
            rc = -1;
        } else {
            c->s = s;
            c->role = EIO_ROLE_PROBE;
            eio__upgrade_start(s, wsi);
        }
    }
    base_free(r.query);
    return rc;
}

/* One whole WebSocket message from the session's transport or from a probe. */
static void eio__ws_message(eio_server_t *srv, struct lws *wsi, eio_conn_t *c,
                            const unsigned char *data, size_t len, int binary)
{
    eio_session_t *s = c->s;
    cd_eio_packet_t pkt;

    if (s == NULL)
        return;
    if (c->role == EIO_ROLE_PROBE) {
        if (!binary && len == 6 && memcmp(data, "2probe", 6) == 0 && s->state == EIO_S_OPEN) {
            eio__upgrade_probe(s);
            eio__wake_probe_ack(wsi);
        } else if (!binary && len == 1 && data[0] == '5' && s->upgrading &&
                   s->state == EIO_S_OPEN) {
            eio__upgrade_finish(s);
        } else {
            /* anything else on a probe fails the upgrade; the session stays */
            eio__upgrade_abort(s, wsi, c);
            c->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
        }
        return;
    }
    if (s->state != EIO_S_OPEN)
        return;
    if (binary) {
        pkt.type = CD_EIO_MESSAGE;
        pkt.binary = 1;
        pkt.data = (const char *)data;
        pkt.len = len;
        eio__session_packet(s, &pkt);
    } else if (len > 0 && data[0] == 'b') {
        /* the base64 form of a binary message is legal on a WebSocket too */
        unsigned char *bin = base_malloc((len - 1) / 4 * 3 + 1);
        if (base_b64_decode((const char *)data + 1, len - 1, bin, &pkt.len) == 0) {
            pkt.type = CD_EIO_MESSAGE;
            pkt.binary = 1;
            pkt.data = (const char *)bin;
            eio__session_packet(s, &pkt);
        } else {
            eio__session_close(s, "parse error", EIO_CLOSE_ERROR);
        }
        base_free(bin);
    } else if (cd_eio_decode_text((const char *)data, len, &pkt) == 0) {
        eio__session_packet(s, &pkt);
    } else {
        eio__session_close(s, "parse error", EIO_CLOSE_ERROR);
    }
}

/* A WebSocket message the session cannot accept: over max_payload (1009, as the
 * reference's ws) or not inflatable (1007). */
static int eio__ws_reject(struct lws *wsi, eio_conn_t *c, unsigned short code)
{
    eio_session_t *s = c->s;

    if (s != NULL) {
        if (c->role == EIO_ROLE_WS)
            eio__session_close(s, "transport error", EIO_CLOSE_ERROR);
        else
            eio__upgrade_abort(s, wsi, c);
    }
    lws_close_reason(wsi, (enum lws_close_status)code, NULL, 0);
    return -1;
}

static int eio__on_ws_rx(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, const void *in,
                         size_t len)
{
    int first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);

    if (c == NULL)
        return -1;
    if (first) {
        c->msg.len = 0;
        c->msg_binary = (unsigned char)lws_frame_is_binary(wsi);
        c->msg_deflated = c->pmd && (lws_get_reserved_bits(wsi) & 0x40);
    }
    if (c->msg_deflated) {
        /* the stream keeps its window across messages (the client may use context
         * takeover); the limit stops a deflate bomb as soon as it passes max_payload */
        int rc = cd_inflate_msg(&c->zrx, in, len, final, &c->msg, srv->cfg.max_payload);
        if (rc == CD_INFLATE_TOO_BIG)
            return eio__ws_reject(wsi, c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
        if (rc != CD_INFLATE_OK)
            return eio__ws_reject(wsi, c, LWS_CLOSE_STATUS_INVALID_PAYLOAD);
    } else if (c->msg.len + len > srv->cfg.max_payload) {
        return eio__ws_reject(wsi, c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
    } else if (!(first && final)) {
        if (c->msg.len + len > c->msg.cap)
            cd_msgbuf_grow(&c->msg, c->msg.len + len, srv->cfg.max_payload);
        if (len > 0)
            memcpy(c->msg.p + c->msg.len, in, len);
        c->msg.len += len;
    }
    if (final) {
        if (first && !c->msg_deflated) /* whole message in one piece: no copy */
            eio__ws_message(srv, wsi, c, in, len, c->msg_binary);
        else
            eio__ws_message(srv, wsi, c, c->msg.p, c->msg.len, c->msg_binary);
        c->msg.len = 0;
        if (c->msg.cap > 65536) { /* keep a small buffer, give big ones back */
            base_free(c->msg.p);
            c->msg.p = NULL;
            c->msg.cap = 0;
        }
    }
    if (c->close_code) {
        lws_close_reason(wsi, (enum lws_close_status)c->close_code, NULL, 0);
        return -1;
    }
    return 0;
}

/* lws' own opcode for a close frame: private in 4.1 (roles/ws/private-lib-roles-ws.h)
 * but fixed by the ABI, it is the gap between HTTP (3) and PING (5) in the public
 * enum lws_write_protocol. */
#define EIO_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)

/* Ends a WebSocket from its WRITEABLE callback: our own close frame, then -1.
 * Why not lws_close_reason() + return -1: Debian's lws 4.1.6 is built with _DEBUG,
 * whose libuv path calls close twice ("close_and_handled uv repeat test",
 * core-net/service.c) and the second call kills the connection before the polite
 * close frame is sent, so the client would see 1006. A frame we write ourselves is
 * already in the socket (or in lws' output buffer, which lws flushes before it
 * closes); with no reason stored, lws then closes without sending a second one. */
static int eio__ws_close_now(struct lws *wsi, unsigned short code)
{
    unsigned char buf[LWS_PRE + 2];

    buf[LWS_PRE] = (unsigned char)(code >> 8);
    buf[LWS_PRE + 1] = (unsigned char)(code & 0xff);
    lws_write(wsi, buf + LWS_PRE, 2, EIO_LWS_WRITE_CLOSE);
    return -1;
}

/* The bytes of one data frame as it goes to connection c: WebSocket header and
 * payload, contiguous, inside memory the frame owns (*len set). The header goes
 * into the headroom before the payload or before the frame's compressed form;
 * every recipient writes the same bytes there, and only on the loop thread. A
 * broadcast is compressed once: the deflate is the same for every connection, so
 * the first compressing recipient keeps the result on the frame (f->z). The server's
 * one deflate stream serves every connection: cd_deflate_msg starts each message from
 * a fresh window, which any client can inflate. */
static unsigned char *eio__ws_bytes(eio_server_t *srv, const eio_conn_t *c, base_frame_t *f,
                                    unsigned flags, size_t *len)
{
    unsigned char *data = base_frame_data(f);
    size_t h;

    if (c->pmd && !(flags & EIO_SEND_NOCOMPRESS) && f->len >= EIO_DEFLATE_MIN) {
        if (!f->z_tried) {
            f->z_tried = 1;
            f->z = cd_deflate_msg(&srv->zs, data, f->len, CD_WS_HDR_MAX, &f->z_len);
        }
        if (f->z != NULL) {
            h = cd_ws_header(f->z + CD_WS_HDR_MAX, f->binary, 1, f->z_len);
            *len = h + f->z_len;
            return f->z + CD_WS_HDR_MAX - h;
        }
    }
    h = cd_ws_header(data, f->binary, 0, f->len);
    *len = h + f->len;
    return data - h;
}

/* One data frame, framed here and handed to lws as raw bytes. Why not
 * lws_write(TEXT/BINARY): that runs every data frame through the connection's
 * extensions, and lws 4.1.6's permessage-deflate aborts on some messages and has
 * no per-message opt-out for EIO_SEND_NOCOMPRESS (see eio__pmd_ext). lws still
 * parses what clients send, answers their pings and sends the close frames. A raw
 * write is copied by lws when the socket does not take it all, so the frame is
 * free to go as soon as this returns. Takes over the caller's reference to f. */
static int eio__ws_write(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, base_frame_t *f,
                         unsigned flags)
{
    size_t len;
    unsigned char *p = eio__ws_bytes(srv, c, f, flags, &len);
    int n = lws_write(wsi, p, len, LWS_WRITE_HTTP);

    base_frame_unref(f);
    return n < 0 ? -1 : 0;
}

/* Asks lws for one WRITEABLE callback; until it comes the flush leaves c alone.
 * Each request costs lws an epoll_ctl pair (libuv's uv_poll_start re-registers
 * the descriptor), so it is made only once per wait. */
static void eio__want_write(struct lws *wsi, eio_conn_t *c)
{
    if (!c->want_write) {
        c->want_write = 1;
        lws_callback_on_writable(wsi);
    }
}

enum { EIO_FLUSH_DONE, EIO_FLUSH_WAIT, EIO_FLUSH_FAIL };

#define EIO_FLUSH_IOV 64 /* frames per sendmsg */

/* Writes s's queued frames straight into the WebSocket's socket, many frames per
 * sendmsg, until the queue is empty (EIO_FLUSH_DONE) or the socket is full
 * (EIO_FLUSH_WAIT: WRITEABLE comes when it drains); EIO_FLUSH_FAIL when the socket
 * failed (the connection must go).
 *
 * Why not lws_write per frame from WRITEABLE: each frame then costs a send and two
 * epoll_ctl (lws starts and stops POLLOUT through uv_poll_start, which libuv turns
 * into a delete and a re-add of the descriptor). This costs one sendmsg per
 * connection and loop iteration, and POLLOUT only when the kernel says EAGAIN.
 *
 * Ordering with what lws writes itself on the connection (pongs, its close echo,
 * the tail of a write it buffered): we only write while lws holds nothing buffered,
 * and we never keep half a frame -- the unsent rest of a frame cut by the kernel is
 * handed to lws (lws_write raw copies it), which sends it before anything else. So
 * lws always sees the stream at a frame boundary. The descriptor carries the
 * WebSocket bytes as they are: the context has no TLS (eio_server_listen; TLS is
 * a proxy's job in front of the node). */
static int eio__ws_flush(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, eio_session_t *s)
{
    struct iovec iov[EIO_FLUSH_IOV];
    int fd = lws_get_socket_fd(wsi);

    if (lws_partial_buffered(wsi) || fd < 0) {
        eio__want_write(wsi, c);
        return EIO_FLUSH_WAIT;
    }
    while (s->q.len > 0) {
        size_t n = s->q.len < EIO_FLUSH_IOV ? s->q.len : EIO_FLUSH_IOV, done;
        struct msghdr mh;
        ssize_t w;

        for (size_t i = 0; i < n; i++) {
            eio_qent_t *e = &s->q.buf[(s->q.head + i) & (s->q.cap - 1)];
            iov[i].iov_base = eio__ws_bytes(srv, c, e->f, e->flags, &iov[i].iov_len);
        }
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = iov;
        mh.msg_iovlen = n;
        do
            w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (w < 0 && errno == EINTR);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return EIO_FLUSH_FAIL;
            eio__want_write(wsi, c);
            return EIO_FLUSH_WAIT;
        }
        done = (size_t)w;
        for (size_t i = 0; i < n; i++) {
            base_frame_t *f;
            int rc;

            if (done >= iov[i].iov_len) {
                done -= iov[i].iov_len;
                base_frame_unref(eio__queue_pop(&s->q, NULL));
                continue;
            }
            if (done == 0) { /* the socket is full at a frame boundary */
                eio__want_write(wsi, c);
                return EIO_FLUSH_WAIT;
            }
            f = eio__queue_pop(&s->q, NULL);
            rc = lws_write(wsi, (unsigned char *)iov[i].iov_base + done, iov[i].iov_len - done,
                           LWS_WRITE_HTTP);
            base_frame_unref(f);
            if (rc < 0)
                return EIO_FLUSH_FAIL;
            if (lws_partial_buffered(wsi)) {
                /* lws asked for WRITEABLE itself; it comes once lws sent the rest */
                c->want_write = 1;
                return EIO_FLUSH_WAIT;
            }
            break; /* lws got it all out after all: go on */
        }
    }
    return EIO_FLUSH_DONE;
}

/* Can s's WebSocket (wsi, connection c) be written outside WRITEABLE right now? Not
 * once the client sent its close (lws answers it and sends nothing more, as before),
 * not once lws started a close of its own (a protocol error in what the client sent:
 * lws stored a close reason and sends the close frame from POLLOUT; no data may
 * follow it), not for a closing session (its last frames and the close frame go
 * from WRITEABLE, under the close deadline). */
static int eio__flush_ok(eio_session_t *s, struct lws *wsi, eio_conn_t *c)
{
    return c != NULL && c->s == s && c->role == EIO_ROLE_WS && !c->peer_closed &&
           s->state == EIO_S_OPEN && lws_get_close_length(wsi) == 0;
}

/* The loop is about to sleep: flush every WebSocket that got frames since (Redis'
 * handleClientsWithPendingWrites). A session queued during this run (none is: a
 * flush calls nothing that sends) would be taken in the same pass. */
static void eio__on_flush(uv_prepare_t *h)
{
    eio_server_t *srv = h->data;

    while (!base_list_empty(&srv->writes)) {
        eio_session_t *s = BASE_CONTAINER_OF(srv->writes.next, eio_session_t, wlink);
        struct lws *wsi = s->ws;
        eio_conn_t *c;

        base_list_remove(&s->wlink);
        if (wsi == NULL || s->q.len == 0)
            continue;
        c = lws_wsi_user(wsi);
        /* a session closing meanwhile was woken through WRITEABLE (eio__wake); a
         * connection with WRITEABLE on its way is flushed from there */
        if (!eio__flush_ok(s, wsi, c) || c->want_write)
            continue;
        if (eio__ws_flush(srv, wsi, c, s) == EIO_FLUSH_FAIL) {
            /* as a failed lws_write would: the connection closes, CLOSED tells the
             * session; lws does it from its own loop callback, not under us */
            lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
            srv->lws_kick = 1;
        }
    }
    if (srv->lws_kick) {
        srv->lws_kick = 0;
        if (srv->ctx != NULL && srv->phase < EIO_SRV_LWS_DOWN)
            lws_cancel_service(srv->ctx);
    }
    uv_prepare_stop(h);
}

/* Has the flush run before the loop next sleeps. */
static void eio__flush_arm(eio_server_t *srv)
{
    if (srv->handles_ready && srv->phase < EIO_SRV_HANDLES)
        uv_prepare_start(&srv->flush_prep, eio__on_flush);
}

/* lws 4.1 on libuv re-arms its timer (the one behind lws_set_timeout) only around
 * its own callbacks (lws_io_cb, its idle handle). A timeout set from anywhere else
 * -- our heartbeat timers, the application -- would wait for the next event on some
 * lws socket: for ever on a quiet server, so a peer that stopped reading was never
 * dropped. So before the loop sleeps the flush wakes lws once (lws_cancel_service:
 * an eventfd write, after which lws recomputes its timer). */
static void eio__lws_kick(eio_server_t *srv)
{
    srv->lws_kick = 1;
    eio__flush_arm(srv);
}

static int eio__on_ws_writeable(eio_server_t *srv, struct lws *wsi, eio_conn_t *c)
{
    eio_session_t *s;
    int rc;

    if (c == NULL)
        return -1;
    c->want_write = 0;
    if (c->close_code)
        return eio__ws_close_now(wsi, c->close_code);
    s = c->s;
    if (c->role == EIO_ROLE_PROBE) {
        if (!c->probe_ack)
            return 0;
        c->probe_ack = 0;
        return eio__ws_write(srv, wsi, c, base_frame_from("3probe", 6, 0), 0);
    }
    if (c->role != EIO_ROLE_WS)
        return 0;
    if (s == NULL) /* orphaned: its session is gone */
        return eio__ws_close_now(wsi, LWS_CLOSE_STATUS_NORMAL);
    rc = eio__ws_flush(srv, wsi, c, s);
    if (rc == EIO_FLUSH_FAIL)
        return -1;
    if (rc == EIO_FLUSH_DONE && s->state != EIO_S_OPEN) {
        /* flushed after a server-side close: now close the socket */
        unsigned short code = strcmp(s->reason, "server shutting down") == 0
                                  ? LWS_CLOSE_STATUS_GOINGAWAY
                                  : LWS_CLOSE_STATUS_NORMAL;
        eio__detach(s, wsi, c);
        eio__session_maybe_free(s);
        return eio__ws_close_now(wsi, code);
    }
    return 0;
}

/* The client offered permessage-deflate (eio__pmd_ext). We accept unless the offer
 * limits server_max_window_bits: accepting that needs the parameter echoed with a
 * value, which lws 4.1 cannot do (it echoes only argument-less options). Returns
 * what the lws callback returns (nonzero refuses the extension). */
static int eio__on_extension(struct lws *wsi, eio_conn_t *c, const char *name)
{
    char offer[256];

    if (c == NULL || name == NULL || strcmp(name, "permessage-deflate") != 0)
        return 1;
    if (lws_hdr_copy(wsi, offer, sizeof(offer), WSI_TOKEN_EXTENSIONS) < 0 ||
        strstr(offer, "server_max_window_bits") != NULL)
        return 1;
    c->pmd = 1;
    return 0;
}

/* ---------------------------------------------------------------- connection end */

/* The connection closed or its HTTP transaction ended: release what it held and
 * tell its session. Idempotent (lws may report both). */
static void eio__conn_gone(struct lws *wsi, eio_conn_t *c)
{
    eio_session_t *s;
    int role;

    if (c == NULL)
        return;
    base_free(c->body);
    c->body = NULL;
    c->body_len = c->body_cap = 0;
    base_free(c->msg.p);
    c->msg.p = NULL;
    c->msg.len = c->msg.cap = 0;
    cd_inflate_end(&c->zrx);
    s = c->s;
    if (s == NULL)
        return;
    role = c->role;
    eio__detach(s, wsi, c);
    if (s->state == EIO_S_OPEN) {
        if (role == EIO_ROLE_GET) /* a poll cancelled by the client kills the session */
            eio__session_close(s, "transport error", EIO_CLOSE_ERROR);
        else if (role == EIO_ROLE_WS)
            eio__session_close(s, "transport close", EIO_CLOSE_CLIENT);
        else if (role == EIO_ROLE_PROBE)
            eio__upgrade_abort(s, wsi, c);
    }
    eio__session_maybe_free(s);
}

/* ---------------------------------------------------------------- lws glue */

static int eio__callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    eio_server_t *srv = ctx != NULL ? lws_context_user(ctx) : NULL;
    eio_conn_t *c = user;

    if (srv == NULL)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return eio__on_http(srv, wsi, c, in);
    case LWS_CALLBACK_HTTP_BODY:
        return eio__on_body(srv, wsi, c, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return eio__on_body_done(srv, wsi, c);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c != NULL ? eio__get_writeable(srv, wsi, c) : 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return eio__on_confirm_upgrade(srv, wsi, in);
    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
        return eio__on_extension(wsi, c, in);
    case LWS_CALLBACK_ESTABLISHED:
        return eio__on_ws_open(srv, wsi, c);
    case LWS_CALLBACK_RECEIVE:
        return eio__on_ws_rx(srv, wsi, c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return eio__on_ws_writeable(srv, wsi, c);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c != NULL) /* lws echoes the close; nothing of ours may follow it */
            c->peer_closed = 1;
        return 0;
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        eio__conn_gone(wsi, c);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols eio__protocols[] = {
    {
        .name = "sockeye-eio",
        .callback = eio__callback,
        .per_session_data_size = sizeof(eio_conn_t),
        .rx_buffer_size = 0,     /* lws default chunking for reads */
        .tx_packet_size = 65536, /* send() up to 64 KiB per POLLOUT */
    },
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* permessage-deflate (RFC 7692) with lws doing only the negotiation and the frame
 * parsing. lws 4.1.6's own extension (lws_extension_callback_pm_deflate) asserts,
 * i.e. aborts the process, on data it can be fed by any client: inflating a
 * message whose output ends at its 1 KiB buffer boundary ("priv->rx.avail_out")
 * and deflating an empty message or one whose output ends there ("FAIL want to
 * trim out length"). So this extension passes every payload through untouched
 * (returning 0, lws' "no extension acted" value, as for a connection without
 * extensions); eio__on_ws_rx inflates compressed messages and eio__ws_write
 * compresses. Our deflate never keeps context between messages, so a client that
 * asks for server_no_context_takeover gets it echoed. */
static const struct lws_ext_options eio__pmd_opts[] = {
    {"server_no_context_takeover", EXTARG_NONE},
    {NULL, EXTARG_NONE},
};

static int eio__pmd_ext(struct lws_context *ctx, const struct lws_extension *ext, struct lws *wsi,
                        enum lws_extension_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    if (reason == LWS_EXT_CB_CONSTRUCT && in != NULL)
        *(const struct lws_ext_options **)in = eio__pmd_opts;
    return 0;
}

static const struct lws_extension eio__exts[] = {
    {"permessage-deflate", eio__pmd_ext, "permessage-deflate"},
    {NULL, NULL, NULL},
};

/* ---------------------------------------------------------------- wake hooks */

/* A WebSocket being closed by us says goodbye from its WRITEABLE callback, which a
 * peer that stopped reading never lets come: the socket, and whatever lws buffered
 * for it, would be held for ever. So a closing WebSocket gets as long as a silent
 * client gets before "ping timeout" (pingInterval + pingTimeout) and lws then drops
 * it (the reference's ws gives a closing socket a fixed 30 s the same way). */
static void eio__close_deadline(eio_server_t *srv, struct lws *wsi)
{
    uint64_t ms = (uint64_t)srv->cfg.ping_interval_ms + srv->cfg.ping_timeout_ms;
    uint64_t secs = (ms + 999) / 1000;

    lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, secs < INT_MAX ? (int)secs : INT_MAX);
    eio__lws_kick(srv);
}

static void eio__wake(eio_session_t *s)
{
    struct lws *wsi = s->transport == SIO_TRANSPORT_WEBSOCKET ? s->ws : s->get;
    eio_server_t *srv = s->srv;

    if (wsi == NULL)
        return;
    if (wsi == s->ws) {
        eio_conn_t *c;

        /* once per loop iteration and recipient of a broadcast: touch nothing but
         * s here, the flush looks at the connection (eio__flush_ok) */
        if (s->state == EIO_S_OPEN) {
            if (s->wlink.next == &s->wlink) { /* not listed yet */
                base_list_push_back(&srv->writes, &s->wlink);
                eio__flush_arm(srv);
            }
            return;
        }
        eio__close_deadline(srv, wsi); /* flushing its last frames */
        c = lws_wsi_user(wsi);
        if (c != NULL) {
            eio__want_write(wsi, c);
            return;
        }
    }
    lws_callback_on_writable(wsi);
}

static void eio__wake_close(eio_server_t *srv, struct lws *wsi, unsigned short code)
{
    eio_conn_t *c = lws_wsi_user(wsi);

    if (c != NULL)
        c->close_code = code;
    eio__close_deadline(srv, wsi);
    lws_callback_on_writable(wsi);
}

static void eio__wake_probe_ack(struct lws *wsi)
{
    eio_conn_t *c = lws_wsi_user(wsi);

    if (c != NULL)
        c->probe_ack = 1;
    lws_callback_on_writable(wsi);
}

static void eio__wake_noop(struct lws *wsi)
{
    eio_conn_t *c = lws_wsi_user(wsi);

    if (c != NULL)
        c->noop = 1;
    lws_callback_on_writable(wsi);
}

/* ---------------------------------------------------------------- listening */

static void eio__on_accept(uv_poll_t *h, int status, int events);

static void eio__on_accept_resume(uv_timer_t *t)
{
    eio_server_t *srv = t->data;

    if (srv->phase != EIO_SRV_RUNNING)
        return;
    for (int i = 0; i < srv->n_listeners; i++)
        uv_poll_start(&srv->listeners[i].poll, UV_READABLE, eio__on_accept);
}

static void eio__on_accept(uv_poll_t *h, int status, int events)
{
    eio_server_t *srv = h->data;
    eio_listener_t *l = BASE_CONTAINER_OF(h, eio_listener_t, poll);

    if (status < 0 || srv->phase != EIO_SRV_RUNNING)
        return;
    for (int i = 0; i < EIO_ACCEPT_BURST; i++) {
        int one = 1;
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                /* the pending connection keeps the socket readable: without a
                 * pause this would spin until a descriptor frees up */
                fprintf(stderr, "sockeye: accept: %s; pausing 100 ms\n", strerror(errno));
                for (int k = 0; k < srv->n_listeners; k++)
                    uv_poll_stop(&srv->listeners[k].poll);
                uv_timer_start(&srv->accept_timer, eio__on_accept_resume, 100, 0);
            }
            break;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        lws_adopt_socket_vhost(srv->vh, fd); /* closes fd itself on failure */
    }
}

static void eio__close_fds(eio_server_t *srv)
{
    for (int i = 0; i < srv->n_listeners; i++)
        close(srv->listeners[i].fd);
    srv->n_listeners = 0;
}

/* Binds every address host resolves to on one port (the first bind picks it when
 * port is 0). SIO_EIO with a message when nothing could be bound or the port is
 * taken. */
static int eio__bind(eio_server_t *srv)
{
    const char *host = srv->host != NULL && srv->host[0] ? srv->host : "0.0.0.0";
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[16];
    int port = srv->port, has_v4 = 0, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "sockeye: cannot resolve %s: %s\n", host, gai_strerror(rc));
        return SIO_EIO;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next)
        has_v4 |= ai->ai_family == AF_INET;
    for (ai = res; ai != NULL && srv->n_listeners < EIO_MAX_LISTENERS; ai = ai->ai_next) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int one = 1, fd;

        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6) {
            /* "::" alone stays dual-stack; next to an IPv4 address it must not clash */
            int v6only = has_v4;
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
        }
        if (bind(fd, (struct sockaddr *)&ss, (socklen_t)ai->ai_addrlen) != 0 ||
            listen(fd, 511) != 0) {
            int e = errno;
            close(fd);
            if (e == EADDRINUSE || e == EACCES) {
                fprintf(stderr, "sockeye: cannot listen on %s:%d: %s\n", host, port, strerror(e));
                eio__close_fds(srv);
                freeaddrinfo(res);
                return SIO_EIO;
            }
            continue; /* e.g. ::1 on a host without IPv6 */
        }
        if (port == 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                 : ((struct sockaddr_in6 *)&ss)->sin6_port);
        srv->listeners[srv->n_listeners++].fd = fd;
    }
    freeaddrinfo(res);
    if (srv->n_listeners == 0) {
        fprintf(stderr, "sockeye: cannot listen on %s:%d\n", host, srv->port);
        return SIO_EIO;
    }
    srv->port = port;
    return SIO_OK;
}

static void eio__on_srv_handle_closed(uv_handle_t *h)
{
    eio__handle_closed(h->data);
}

static void eio__on_listener_closed(uv_handle_t *h)
{
    eio_listener_t *l = BASE_CONTAINER_OF((uv_poll_t *)h, eio_listener_t, poll);

    close(l->fd);
    l->fd = -1;
    eio__handle_closed(h->data);
}

static void eio__handles_init(eio_server_t *srv)
{
    eio__sessions_handles_init(srv);
    uv_timer_init(srv->loop, &srv->drain_timer);
    uv_idle_init(srv->loop, &srv->reap_idle);
    uv_timer_init(srv->loop, &srv->accept_timer);
    uv_prepare_init(srv->loop, &srv->flush_prep);
    srv->flush_prep.data = srv;
    srv->drain_timer.data = srv;
    srv->reap_idle.data = srv;
    srv->accept_timer.data = srv;
    srv->n_handles += 4;
    srv->handles_ready = 1;
}

/* Binds, creates the lws context on the caller's loop and starts accepting.
 * SIO_EIO on failure (message on stderr; nothing is left on the loop). lws logs
 * only errors unless SOCKEYE_LWS_LOG holds an lws log-level mask (e.g. 15). */
int eio_server_listen(eio_server_t *srv)
{
    struct lws_context_creation_info info;
    void *loops[1];
    const char *lvl = getenv("SOCKEYE_LWS_LOG");

    if (srv == NULL || srv->phase != EIO_SRV_NEW)
        return SIO_EINVAL;
    if (eio__bind(srv) != SIO_OK)
        return SIO_EIO;

    lws_set_log_level(lvl != NULL ? atoi(lvl) : LLL_ERR, NULL);
    memset(&info, 0, sizeof(info));
    loops[0] = srv->loop;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
    info.foreign_loops = loops;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.vhost_name = "sockeye";
    info.protocols = eio__protocols;
    info.extensions = srv->cfg.per_message_deflate ? eio__exts : NULL;
    info.user = srv;
    info.timeout_secs = 30;           /* request bodies, WebSocket close handshakes */
    info.max_http_header_data = 8192; /* cookies and tokens ride in headers */
    info.keepalive_timeout = 60;
    srv->ctx = lws_create_context(&info);
    if (srv->ctx != NULL)
        srv->vh = lws_get_vhost_by_name(srv->ctx, "sockeye");
    if (srv->ctx == NULL || srv->vh == NULL) {
        fprintf(stderr, "sockeye: cannot start libwebsockets (libwebsockets-evlib_uv.so "
                        "missing?)\n");
        eio__close_fds(srv);
        return SIO_EIO;
    }

    eio__handles_init(srv);
    for (int i = 0; i < srv->n_listeners; i++) {
        eio_listener_t *l = &srv->listeners[i];
        uv_poll_init(srv->loop, &l->poll, l->fd);
        l->poll.data = srv;
        uv_poll_start(&l->poll, UV_READABLE, eio__on_accept);
        srv->n_handles++;
    }
    srv->phase = EIO_SRV_RUNNING;
    return SIO_OK;
}

/* ---------------------------------------------------------------- shutdown */

static void eio__close_handles(eio_server_t *srv)
{
    cd_deflate_end(&srv->zs);
    srv->phase = EIO_SRV_HANDLES;
    eio__sessions_handles_close(srv);
    uv_close((uv_handle_t *)&srv->drain_timer, eio__on_srv_handle_closed);
    uv_close((uv_handle_t *)&srv->reap_idle, eio__on_srv_handle_closed);
    uv_close((uv_handle_t *)&srv->accept_timer, eio__on_srv_handle_closed);
    uv_close((uv_handle_t *)&srv->flush_prep, eio__on_srv_handle_closed);
}

typedef struct eio_lws_count {
    const void *ctx;
    unsigned n;
} eio_lws_count_t;

static void eio__count_lws_handle(uv_handle_t *h, void *arg)
{
    eio_lws_count_t *a = arg;

    if (h->data == a->ctx)
        a->n++;
}

static void eio__on_reap(uv_idle_t *h)
{
    eio_server_t *srv = h->data;
    eio_lws_count_t a = {srv->ctx, 0};

    uv_walk(srv->loop, eio__count_lws_handle, &a);
    if (a.n > 0 && uv_now(srv->loop) < srv->reap_deadline)
        return;
    uv_idle_stop(&srv->reap_idle);
    if (a.n > 0)
        fprintf(stderr, "sockeye: libwebsockets kept its handles; leaking its context\n");
    else
        lws_context_destroy(srv->ctx); /* second call: frees the context */
    srv->ctx = NULL;
    srv->vh = NULL;
    eio__close_handles(srv);
}

static void eio__on_drain_end(uv_timer_t *t)
{
    eio_server_t *srv = t->data;

    if (srv->phase != EIO_SRV_DRAINING)
        return;
    eio__sessions_force_free(srv);
    srv->phase = EIO_SRV_LWS_DOWN;
    if (srv->ctx != NULL) {
        lws_context_destroy(srv->ctx); /* first call: closes every connection */
        srv->reap_deadline = uv_now(srv->loop) + EIO_REAP_MS;
        uv_idle_start(&srv->reap_idle, eio__on_reap);
    } else {
        eio__close_handles(srv);
    }
}

static void eio__shutdown_step(eio_server_t *srv)
{
    switch (srv->phase) {
    case EIO_SRV_DRAINING:
        /* leave the lws callback / application call we may be in before destroying */
        if (base_list_empty(&srv->sessions))
            uv_timer_start(&srv->drain_timer, eio__on_drain_end, 0, 0);
        break;
    case EIO_SRV_HANDLES:
        if (srv->n_handles == 0) {
            srv->phase = EIO_SRV_CLOSED;
            if (srv->close_cb != NULL)
                srv->close_cb(srv->close_arg);
        }
        break;
    default:
        break;
    }
}

void eio_server_close(eio_server_t *srv, void (*cb)(void *arg), void *arg)
{
    if (srv == NULL || srv->phase >= EIO_SRV_DRAINING)
        return;
    srv->close_cb = cb;
    srv->close_arg = arg;
    if (!srv->handles_ready)
        eio__handles_init(srv);
    for (int i = 0; i < srv->n_listeners; i++) {
        uv_poll_stop(&srv->listeners[i].poll);
        uv_close((uv_handle_t *)&srv->listeners[i].poll, eio__on_listener_closed);
    }
    srv->n_listeners = 0;
    srv->phase = EIO_SRV_DRAINING;
    uv_timer_start(&srv->drain_timer, eio__on_drain_end, EIO_DRAIN_MS, 0);
    eio__sessions_shutdown(srv);
    eio__shutdown_step(srv);
}

/* ---------------------------------------------------------------- the transport */

static eio_conn_t *eio__conn_of(struct lws *wsi)
{
    return lws_wsi_user(wsi);
}

/* What the session state machine (eio_session.c) calls to reach the network. */
static const eio_transport_t eio__lws_transport = {
    .wake = eio__wake,
    .wake_close = eio__wake_close,
    .wake_noop = eio__wake_noop,
    .shutdown_step = eio__shutdown_step,
    .conn_of = eio__conn_of,
};

eio_server_t *eio_server_new(uv_loop_t *loop, const eio_config_t *cfg, const eio_callbacks_t *cb)
{
    return eio__server_new(loop, cfg, cb, &eio__lws_transport);
}
