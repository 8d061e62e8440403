/* eio_reply.c -- the engine's HTTP answers: status line and headers, the CORS headers
 * of the configured policy, and the reference's error bodies.
 *
 * Answers are small and written in the callback of their own request; lws buffers what
 * the socket does not take.
 */
#include "eio_lws.h"

#include <stdio.h>
#include <string.h>

#include "base_alloc.h"

#define EIO_HDR_ROOM 2048  /* status line + headers of one answer */
#define EIO_ORIGIN_MAX 512 /* longer Origin / request-headers values are not echoed */

/* The reference's messages (engine.io Server.errorMessages), by EIO_ERR_* code. */
const char *const eio__err_msg[] = {
    "Transport unknown", "Session ID unknown", "Bad handshake method",
    "Bad request",       "Forbidden",          "Unsupported protocol version",
};

static int eio__add_hdr(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                        unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
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

unsigned char *eio__reply_begin(eio_server_t *srv, struct lws *wsi, unsigned status,
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

int eio__reply_end(struct lws *wsi, unsigned char *buf, unsigned char *p, int complete)
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

int eio__reply(eio_server_t *srv, struct lws *wsi, unsigned status, const char *ctype,
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

int eio__reply_error(eio_server_t *srv, struct lws *wsi, int code)
{
    char body[96];
    int n =
        snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code, eio__err_msg[code]);

    return eio__reply(srv, wsi, code == EIO_ERR_FORBIDDEN ? 403 : 400, "application/json", body,
                      (size_t)n, EIO_R_CORS);
}

int eio__reply_ok(eio_server_t *srv, struct lws *wsi)
{
    return eio__reply(srv, wsi, 200, "text/html", "ok", 2, EIO_R_CORS);
}

int eio__reply_packet(eio_server_t *srv, struct lws *wsi, const char *pkt)
{
    return eio__reply(srv, wsi, 200, "text/plain; charset=UTF-8", pkt, strlen(pkt),
                      EIO_R_CORS | EIO_R_NOSTORE);
}
