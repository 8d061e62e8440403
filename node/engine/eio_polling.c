/* eio_polling.c -- the HTTP long-polling transport: the held GET that carries the
 * session's queue, the POST that carries what the client sends.
 *
 * A GET with nothing to say is held (no lws timeout) until the session has output,
 * then answered from LWS_CALLBACK_HTTP_WRITEABLE with everything queued as one payload.
 */
#include "eio_lws.h"

#include <stdlib.h>
#include <string.h>

#include "base_alloc.h"
#include "cd_eio.h"

/* Answers a held GET: everything queued as one payload, or the noop / close packet
 * that ends it. The GET is detached before the write, because completing the
 * transaction hands the connection (and its user data) back to lws. */
int eio__get_writeable(eio_server_t *srv, struct lws *wsi, eio_conn_t *c)
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

int eio__handle_get(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, eio_session_t *s)
{
    if (s->state != EIO_S_OPEN) {
        /* a server-closed polling session hands its last frames and "1" to the
         * next GET; anything else closing is gone */
        if (s->close_mode == EIO_CLOSE_FLUSH && s->get == NULL &&
            s->transport == EIO_TRANSPORT_POLLING) {
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

int eio__handle_post(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, eio_session_t *s)
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

int eio__on_body(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, const void *in, size_t len)
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

int eio__on_body_done(eio_server_t *srv, struct lws *wsi, eio_conn_t *c)
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

void eio__wake_noop(struct lws *wsi)
{
    eio_conn_t *c = lws_wsi_user(wsi);

    if (c != NULL)
        c->noop = 1;
    lws_callback_on_writable(wsi);
}
