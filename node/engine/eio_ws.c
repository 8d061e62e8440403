/* eio_ws.c -- the WebSocket transport, receiving side: the upgrade decision, a new
 * WebSocket session or an upgrade probe, messages reassembled and inflated, the probe's
 * "2probe" / "5" exchange, and the permessage-deflate offer.
 *
 * lws negotiates the extension and parses frames; inflating is ours (cd_inflate_msg),
 * because lws 4.1.6's own extension aborts on messages any client can send
 * (eio_server.c, eio__pmd_ext).
 */
#include "eio_lws.h"

#include <string.h>

#include "base_alloc.h"
#include "base_base64.h"
#include "cd_deflate.h"
#include "cd_eio.h"

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
int eio__on_confirm_upgrade(eio_server_t *srv, struct lws *wsi, const char *proto)
{
    eio_session_t *s;
    eio_req_t r;
    char *uri;
    int ulen, err;

    if (proto == NULL || strcmp(proto, "websocket") != 0)
        return eio__reject_upgrade(srv, wsi, 400, "Bad request");
    if (lws_http_get_uri_and_method(wsi, &uri, &ulen) < 0 ||
        !eio__path_match(srv->path, srv->path_len, uri))
        return eio__reject_upgrade(srv, wsi, 404, "Not Found");
    if (srv->phase != EIO_SRV_RUNNING)
        return eio__reject_upgrade(srv, wsi, 503, "Server shutting down");
    eio__req_parse(wsi, &r);
    err = eio__verify(srv, wsi, &r, 1, &s);
    if (err < 0 && r.transport != EIO_TRANSPORT_WEBSOCKET)
        err = EIO_ERR_BAD;
    /* a known sid that cannot upgrade now (already upgraded or upgrading) gets the
     * 101 and an immediate close, as from the reference (eio__on_ws_open) */
    if (err >= 0)
        return eio__reject_upgrade(srv, wsi, err == EIO_ERR_FORBIDDEN ? 403 : 400,
                                   eio__err_msg[err]);
    return 0;
}

int eio__on_ws_open(eio_server_t *srv, struct lws *wsi, eio_conn_t *c)
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
        eio__handshake_facts(wsi, uri, &hs);
        eio__session_open(srv, EIO_TRANSPORT_WEBSOCKET, &hs, wsi, c);
    } else {
        s = eio__session_find(srv, r.sid);
        if (s == NULL || s->state != EIO_S_OPEN || s->transport != EIO_TRANSPORT_POLLING ||
            s->probe != NULL || !srv->cfg.allow_upgrades) {
            rc = -1;
        } else {
            c->s = s;
            c->role = EIO_ROLE_PROBE;
            eio__upgrade_start(s, wsi);
        }
    }
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

int eio__on_ws_rx(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, const void *in, size_t len)
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

/* The client offered permessage-deflate (eio_server.c: eio__pmd_ext). We accept unless the offer
 * limits server_max_window_bits: accepting that needs the parameter echoed with a
 * value, which lws 4.1 cannot do (it echoes only argument-less options). Returns
 * what the lws callback returns (nonzero refuses the extension). */
int eio__on_extension(struct lws *wsi, eio_conn_t *c, const char *name)
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
