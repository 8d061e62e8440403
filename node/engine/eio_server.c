/* eio_server.c -- the engine on libwebsockets: the lws context on the caller's libuv
 * loop, the one lws callback and where each of its reasons goes, the transport the
 * session state machine calls (eio_transport_t), listen and the shutdown sequence.
 *
 * Shutdown on a foreign loop (lws 4.1): lws_context_destroy closes every lws
 * connection but only starts closing lws' uv handles; the context memory goes only
 * with a second lws_context_destroy once those are gone. lws marks its per-loop
 * handles (idle, timer) with handle->data == context and closes them only after all
 * connection handles, so we poll the loop (uv_walk) from an idle handle until no
 * handle points at the context, then destroy again. Neither call may run inside an
 * lws callback, hence the timer/idle hops.
 */
#include "eio_lws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base_alloc.h"
#include "cd_deflate.h"
#include "cd_ws.h"

#define EIO_DRAIN_MS 1000 /* shutdown: time given to sessions to flush */
#define EIO_REAP_MS 5000  /* shutdown: time given to lws to close its handles */

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
 * extensions); eio__on_ws_rx (eio_ws.c) inflates compressed messages and
 * eio__ws_bytes (eio_ws_send.c) compresses. Our deflate never keeps context between messages, so a
 * client that asks for server_no_context_takeover gets it echoed. */
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

static void eio__on_srv_handle_closed(uv_handle_t *h)
{
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
    eio__listeners_start(srv);
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
    eio__listeners_close(srv);
    srv->phase = EIO_SRV_DRAINING;
    uv_timer_start(&srv->drain_timer, eio__on_drain_end, EIO_DRAIN_MS, 0);
    eio__sessions_shutdown(srv);
    eio__shutdown_step(srv);
}

/* ---------------------------------------------------------------- the transport */

/* A held GET is answered from its WRITEABLE callback; a WebSocket session's frames go
 * through eio_ws_send.c. */
static void eio__wake(eio_session_t *s)
{
    if (s->transport == EIO_TRANSPORT_WEBSOCKET) {
        if (s->ws != NULL)
            eio__ws_wake(s);
    } else if (s->get != NULL) {
        lws_callback_on_writable(s->get);
    }
}

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

/* A server on the libwebsockets transport; see eio__server_new (eio_session.c). */
eio_server_t *eio_server_new(uv_loop_t *loop, const eio_config_t *cfg, const eio_callbacks_t *cb)
{
    return eio__server_new(loop, cfg, cb, &eio__lws_transport);
}
