/* eio_session.c -- Engine.IO v4 sessions: queues, heartbeats, packets, the close protocol.
 *
 * Why the session is separate from any connection: with long-polling a client is a
 * series of short HTTP requests, and during an upgrade it is two connections at
 * once. So the session (sid) is the unit the application sees, and connections
 * attach to it for a while (eio_private.h). This file never calls lws: it asks the
 * transport registered with the server (eio_transport_t) to write later (from a
 * WRITEABLE callback, or by eio_ws_send.c's flush before the loop sleeps); nothing is
 * written to the network from inside an eio_* call. So a fake transport drives it in
 * the unit tests (tests/unit/test_eio_session.c).
 *
 * Why on_close is deferred: the application must never be re-entered from inside
 * one of its own eio_* calls (eio_session_send may close on a full queue), and a
 * session must not be freed under a callback that still holds it. So a close only
 * marks the session and queues it; an idle handle delivers on_close from the loop,
 * and the memory goes once on_close returned and no connection points at it.
 *
 * Heartbeat (v4: the server pings): every ping_interval a "2" is queued and a pong
 * is due within ping_timeout. The deadline is kept as an absolute loop time and is
 * also checked whenever a request names the session, so a client that polls right
 * at the deadline sees the session gone even if the timer has not fired yet.
 */
#include "eio_private.h"

#include <stdio.h>
#include <string.h>

#include "base_alloc.h"
#include "base_random.h"
#include "cd_eio.h"
#include "cd_ws.h"

/* ---------------------------------------------------------------- queue */

/* Bounded by frames and by bytes, the backlog excepted (EIO_SEND_BACKLOG). Bytes count
 * each reference: a broadcast frame is shared, but a client that holds it back holds it
 * alive, and the bound is about what one client may pin. */
static int eio__queue_push(eio_queue_t *q, base_frame_t *f, unsigned flags, size_t max,
                           size_t max_bytes)
{
    if (!(flags & EIO_SEND_BACKLOG) &&
        (q->len - q->backlog >= max || q->bytes - q->backlog_bytes > max_bytes - f->len ||
         f->len > max_bytes))
        return -1;
    if (q->len == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 8;
        eio_qent_t *nb = base_malloc(ncap * sizeof(*nb));
        for (size_t i = 0; i < q->len; i++)
            nb[i] = q->buf[(q->head + i) & (q->cap - 1)];
        base_free(q->buf);
        q->buf = nb;
        q->cap = ncap;
        q->head = 0;
    }
    q->buf[(q->head + q->len) & (q->cap - 1)] = (eio_qent_t){f, flags};
    q->len++;
    q->bytes += f->len;
    if (flags & EIO_SEND_BACKLOG) {
        q->backlog++;
        q->backlog_bytes += f->len;
    }
    return 0;
}

base_frame_t *eio__queue_pop(eio_queue_t *q, unsigned *flags)
{
    eio_qent_t e;

    if (q->len == 0)
        return NULL;
    e = q->buf[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    q->bytes -= e.f->len;
    if (e.flags & EIO_SEND_BACKLOG) {
        q->backlog--;
        q->backlog_bytes -= e.f->len;
    }
    if (flags != NULL)
        *flags = e.flags;
    return e.f;
}

void eio__queue_clear(eio_queue_t *q)
{
    base_frame_t *f;

    while ((f = eio__queue_pop(q, NULL)) != NULL)
        base_frame_unref(f);
}

/* ---------------------------------------------------------------- server object */

/* The server object without a transport: what eio_server_new (eio_server.c) builds on,
 * and what a test builds with a fake transport. cfg and cb are copied, the strings in cfg
 * too; a zero number in cfg means the reference's default. NULL when an argument is
 * missing or the port is out of range; nothing is touched on the loop. */
eio_server_t *eio__server_new(uv_loop_t *loop, const eio_config_t *cfg, const eio_callbacks_t *cb,
                              const eio_transport_t *tr)
{
    eio_server_t *srv;
    const char *path;

    if (loop == NULL || cfg == NULL || cb == NULL || tr == NULL || cfg->port < 0 ||
        cfg->port > 65535)
        return NULL;
    srv = base_calloc(1, sizeof(*srv));
    srv->loop = loop;
    srv->tr = tr;
    srv->cfg = *cfg;
    srv->cb = *cb;
    /* zero means "the reference default" for every number */
    if (srv->cfg.ping_interval_ms == 0)
        srv->cfg.ping_interval_ms = 25000;
    if (srv->cfg.ping_timeout_ms == 0)
        srv->cfg.ping_timeout_ms = 20000;
    if (srv->cfg.upgrade_timeout_ms == 0)
        srv->cfg.upgrade_timeout_ms = 10000;
    if (srv->cfg.max_payload == 0)
        srv->cfg.max_payload = 1000000;
    if (srv->cfg.max_queue == 0)
        srv->cfg.max_queue = 10000;
    if (srv->cfg.max_queue_bytes == 0)
        srv->cfg.max_queue_bytes = (size_t)16 << 20;
    if ((srv->cfg.transports & (EIO_TRANSPORT_POLLING | EIO_TRANSPORT_WEBSOCKET)) == 0)
        srv->cfg.transports = EIO_TRANSPORT_POLLING | EIO_TRANSPORT_WEBSOCKET;

    /* keep the path as "/name/": requests match "/name/..." or exactly "/name" */
    path = cfg->path != NULL && cfg->path[0] == '/' ? cfg->path : "/engine.io/";
    srv->path_len = strlen(path);
    while (srv->path_len > 1 && path[srv->path_len - 1] == '/')
        srv->path_len--;
    srv->path = base_malloc(srv->path_len + 2);
    memcpy(srv->path, path, srv->path_len);
    srv->path[srv->path_len] = '/';
    srv->path[srv->path_len + 1] = '\0';
    if (srv->path_len == 1) /* "/" itself: everything is ours */
        srv->path[1] = '\0';
    srv->cfg.path = srv->path;
    srv->host = cfg->host != NULL ? base_strdup(cfg->host) : NULL;
    srv->cfg.host = srv->host;
    srv->cors =
        cfg->cors_origins != NULL && cfg->cors_origins[0] ? base_strdup(cfg->cors_origins) : NULL;
    srv->cfg.cors_origins = srv->cors;

    srv->port = cfg->port;
    base_list_init(&srv->sessions);
    base_list_init(&srv->pending);
    base_list_init(&srv->writes);
    base_map_init(&srv->by_id);
    srv->ping = base_frame_from("2", 1, 0);
    srv->phase = EIO_SRV_NEW;
    return srv;
}

/* Frees the server. Only after eio_server_close's callback, or for a server whose
 * listen never succeeded and that was never closed. */
void eio_server_free(eio_server_t *srv)
{
    if (srv == NULL)
        return;
    base_map_clear(&srv->by_id);
    base_frame_unref(srv->ping);
    base_free(srv->path);
    base_free(srv->host);
    base_free(srv->cors);
    base_free(srv);
}

int eio_server_port(const eio_server_t *srv)
{
    return srv->port;
}

size_t eio_server_session_count(const eio_server_t *srv)
{
    return srv->n_open;
}

uint64_t eio__now(eio_server_t *srv)
{
    uv_update_time(srv->loop);
    return uv_now(srv->loop);
}

void eio__handle_closed(eio_server_t *srv)
{
    srv->n_handles--;
    if (srv->phase >= EIO_SRV_DRAINING)
        srv->tr->shutdown_step(srv);
}

static void eio__on_pending(uv_idle_t *h)
{
    eio__pending_flush(h->data);
}

static void eio__on_pending_closed(uv_handle_t *h)
{
    eio__handle_closed(h->data);
}

void eio__sessions_handles_init(eio_server_t *srv)
{
    uv_idle_init(srv->loop, &srv->pending_idle);
    srv->pending_idle.data = srv;
    srv->n_handles++;
    srv->pending_ready = 1;
}

void eio__sessions_handles_close(eio_server_t *srv)
{
    uv_close((uv_handle_t *)&srv->pending_idle, eio__on_pending_closed);
}

/* ---------------------------------------------------------------- heartbeat */

static void eio__on_ping_due(uv_timer_t *t);

/* Next ping one interval from now; the pong to it is due timeout after that. */
static void eio__hb_arm(eio_session_t *s)
{
    eio_server_t *srv = s->srv;

    s->awaiting_pong = 0;
    s->hb_deadline = uv_now(srv->loop) + srv->cfg.ping_interval_ms + srv->cfg.ping_timeout_ms;
    uv_timer_start(&s->hb_timer, eio__on_ping_due, srv->cfg.ping_interval_ms, 0);
}

static void eio__on_pong_overdue(uv_timer_t *t)
{
    eio_session_t *s = t->data;

    if (s->state == EIO_S_OPEN)
        eio__session_close(s, "ping timeout", EIO_CLOSE_ERROR);
}

static void eio__on_ping_due(uv_timer_t *t)
{
    eio_session_t *s = t->data;
    uint64_t now = uv_now(s->srv->loop);

    if (s->state != EIO_S_OPEN)
        return;
    s->awaiting_pong = 1;
    s->ping_sent_at = now;
    /* the deadline stays the one armed with the interval: a late timer must not
     * give the client more time than the reference does */
    uv_timer_start(&s->hb_timer, eio__on_pong_overdue,
                   s->hb_deadline > now ? s->hb_deadline - now : 0, 0);
    eio_session_send(s, s->srv->ping, 0);
}

static void eio__on_linger_end(uv_timer_t *t)
{
    eio_session_t *s = t->data;

    s->lingering = 0;
    eio__session_maybe_free(s);
}

static void eio__on_upgrade_timeout(uv_timer_t *t)
{
    eio_session_t *s = t->data;
    struct lws *wsi = s->probe;

    if (wsi == NULL)
        return;
    eio__upgrade_abort(s, wsi, s->srv->tr->conn_of(wsi));
    s->srv->tr->wake_close(s->srv, wsi, CD_WS_CLOSE_NORMAL);
}

/* ---------------------------------------------------------------- sessions */

static void eio__unmap(eio_session_t *s)
{
    if (s->in_map) {
        base_map_del(&s->srv->by_id, s->id);
        s->in_map = 0;
    }
}

eio_session_t *eio__session_open(eio_server_t *srv, int transport, eio_handshake_t *hs,
                                 struct lws *wsi, eio_conn_t *c)
{
    eio_session_t *s = base_calloc(1, sizeof(*s));
    char open[256];
    int n;

    s->srv = srv;
    s->transport = transport;
    s->state = EIO_S_OPEN;
    do
        base_random_id(s->id);
    while (base_map_has(&srv->by_id, s->id));
    base_map_put(&srv->by_id, s->id, s);
    s->in_map = 1;
    base_list_push_back(&srv->sessions, &s->link);
    base_list_init(&s->pending);
    base_list_init(&s->wlink);
    s->address = hs->address;
    s->url = hs->url;
    s->pairs = hs->pairs;
    eio__query_trim(&s->pairs);
    s->headers = hs->headers;
    memset(hs, 0, sizeof(*hs));

    uv_timer_init(srv->loop, &s->hb_timer);
    uv_timer_init(srv->loop, &s->upg_timer);
    s->hb_timer.data = s;
    s->upg_timer.data = s;
    s->n_handles = 2;
    srv->n_handles += 2;

    n = snprintf(open, sizeof(open),
                 "0{\"sid\":\"%s\",\"upgrades\":%s,\"pingInterval\":%u,\"pingTimeout\":%u,"
                 "\"maxPayload\":%zu}",
                 s->id,
                 transport == EIO_TRANSPORT_POLLING && srv->cfg.allow_upgrades &&
                         (srv->cfg.transports & EIO_TRANSPORT_WEBSOCKET)
                     ? "[\"websocket\"]"
                     : "[]",
                 srv->cfg.ping_interval_ms, srv->cfg.ping_timeout_ms, srv->cfg.max_payload);
    eio__queue_push(&s->q, base_frame_from(open, (size_t)n, 0), 0, (size_t)-1, (size_t)-1);

    /* the request that opened the session carries the open packet */
    c->s = s;
    c->role = transport == EIO_TRANSPORT_POLLING ? EIO_ROLE_GET : EIO_ROLE_WS;
    if (transport == EIO_TRANSPORT_POLLING)
        s->get = wsi;
    else
        s->ws = wsi;

    eio__hb_arm(s);
    s->read_at = uv_now(srv->loop); /* only the open packet is queued */
    s->counted = 1;
    srv->n_open++;
    if (srv->cb.on_open != NULL)
        srv->cb.on_open(srv->cb.ud, s);
    srv->tr->wake(s);
    return s;
}

eio_session_t *eio__session_find(eio_server_t *srv, const char *sid)
{
    eio_session_t *s = base_map_get(&srv->by_id, sid);

    if (s != NULL && s->state == EIO_S_OPEN && eio__now(srv) >= s->hb_deadline) {
        eio__session_close(s, "ping timeout", EIO_CLOSE_ERROR);
        s = base_map_get(&srv->by_id, sid);
    }
    return s;
}

void eio__session_packet(eio_session_t *s, const cd_eio_packet_t *p)
{
    eio_server_t *srv = s->srv;

    if (s->state != EIO_S_OPEN)
        return;
    switch (p->type) {
    case CD_EIO_MESSAGE:
        if (srv->cb.on_message != NULL)
            srv->cb.on_message(srv->cb.ud, s, p->data, p->len, p->binary);
        break;
    case CD_EIO_PONG:
        if (s->awaiting_pong) {
            /* the pong comes after the client read the ping, so everything queued
             * before the ping (one transport, in order) was read too */
            s->read_at = s->ping_sent_at;
            eio__hb_arm(s);
        }
        break;
    case CD_EIO_PING: /* v4: only the server pings ("invalid heartbeat direction") */
        eio__session_close(s, "transport error", EIO_CLOSE_ERROR);
        break;
    case CD_EIO_CLOSE:
        eio__session_close(s, "transport close", EIO_CLOSE_CLIENT);
        break;
    default: /* open, upgrade and noop carry nothing on an established transport */
        break;
    }
}

/* WebSocket close codes by reason; the reference closes without a status, these
 * just tell a client what happened. */
static unsigned short eio__close_code(const char *reason)
{
    static const struct {
        const char *reason;
        unsigned short code;
    } table[] = {
        {"server shutting down", CD_WS_CLOSE_GOINGAWAY},
        {"parse error", CD_WS_CLOSE_PROTOCOL_ERR},
        {"transport error", CD_WS_CLOSE_UNEXPECTED_CONDITION},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (reason != NULL && strcmp(reason, table[i].reason) == 0)
            return table[i].code;
    return CD_WS_CLOSE_NORMAL;
}

void eio__session_close(eio_session_t *s, const char *reason, int mode)
{
    eio_server_t *srv = s->srv;

    if (s->state != EIO_S_OPEN)
        return;
    s->state = EIO_S_CLOSING;
    s->close_mode = mode;
    s->reason = base_strdup(reason != NULL ? reason : "forced close");
    uv_timer_stop(&s->hb_timer);
    uv_timer_stop(&s->upg_timer);
    if (s->probe != NULL) {
        struct lws *wsi = s->probe;
        eio__upgrade_abort(s, wsi, srv->tr->conn_of(wsi));
        srv->tr->wake_close(srv, wsi, CD_WS_CLOSE_NORMAL);
    }
    s->upgrading = 0;
    if (s->post != NULL) /* its body is still coming; it will be answered on its own */
        eio__detach(s, s->post, srv->tr->conn_of(s->post));
    if (mode != EIO_CLOSE_FLUSH)
        eio__queue_clear(&s->q);
    /* only a polling session flushing its queue stays reachable: its next GET
     * collects what is left and the final "1" */
    if (mode != EIO_CLOSE_FLUSH || s->transport != EIO_TRANSPORT_POLLING)
        eio__unmap(s);

    if (s->transport == EIO_TRANSPORT_POLLING) {
        if (s->get != NULL) {
            srv->tr->wake(s);
        } else if (mode == EIO_CLOSE_FLUSH) {
            s->lingering = 1;
            uv_timer_start(&s->hb_timer, eio__on_linger_end,
                           (uint64_t)srv->cfg.ping_interval_ms + srv->cfg.ping_timeout_ms, 0);
        }
    } else if (s->ws != NULL) {
        if (mode == EIO_CLOSE_FLUSH) {
            srv->tr->wake(s);
        } else {
            struct lws *wsi = s->ws;
            eio__detach(s, wsi, srv->tr->conn_of(wsi));
            srv->tr->wake_close(srv, wsi, eio__close_code(s->reason));
        }
    }

    base_list_push_back(&srv->pending, &s->pending);
    if (srv->pending_ready)
        uv_idle_start(&srv->pending_idle, eio__on_pending);
}

void eio__pending_flush(eio_server_t *srv)
{
    while (!base_list_empty(&srv->pending)) {
        eio_session_t *s = BASE_CONTAINER_OF(srv->pending.next, eio_session_t, pending);

        base_list_remove(&s->pending);
        s->state = EIO_S_CLOSED;
        if (s->counted) {
            s->counted = 0;
            srv->n_open--;
            if (srv->cb.on_close != NULL)
                srv->cb.on_close(srv->cb.ud, s, s->reason);
        }
        eio__session_maybe_free(s);
    }
    if (srv->pending_ready)
        uv_idle_stop(&srv->pending_idle);
    if (srv->phase == EIO_SRV_DRAINING)
        srv->tr->shutdown_step(srv);
}

void eio__detach(eio_session_t *s, struct lws *wsi, eio_conn_t *c)
{
    if (s == NULL)
        return;
    if (s->get == wsi) {
        s->get = NULL;
        /* a closing session has said its last word with this GET */
        if (s->state != EIO_S_OPEN)
            eio__unmap(s);
    }
    if (s->post == wsi)
        s->post = NULL;
    if (s->ws == wsi)
        s->ws = NULL;
    if (s->probe == wsi)
        s->probe = NULL;
    if (c != NULL && c->s == s)
        c->s = NULL;
}

static void eio__on_timer_closed(uv_handle_t *h)
{
    eio_session_t *s = h->data;
    eio_server_t *srv = s->srv;

    if (--s->n_handles > 0) {
        eio__handle_closed(srv);
        return;
    }
    base_free(s->reason);
    base_free(s->address);
    base_free(s->url);
    eio__query_free(&s->pairs);
    cJSON_Delete(s->headers);
    base_free(s->q.buf);
    base_free(s);
    eio__handle_closed(srv);
}

void eio__session_maybe_free(eio_session_t *s)
{
    eio_server_t *srv = s->srv;

    if (s->state != EIO_S_CLOSED || s->get != NULL || s->post != NULL || s->ws != NULL ||
        s->probe != NULL || s->lingering)
        return;
    s->state = EIO_S_DEAD;
    eio__unmap(s);
    base_list_remove(&s->link);
    base_list_remove(&s->wlink);
    eio__queue_clear(&s->q);
    uv_close((uv_handle_t *)&s->hb_timer, eio__on_timer_closed);
    uv_close((uv_handle_t *)&s->upg_timer, eio__on_timer_closed);
    if (srv->phase == EIO_SRV_DRAINING)
        srv->tr->shutdown_step(srv);
}

void eio__sessions_shutdown(eio_server_t *srv)
{
    base_list_t *it, *tmp;

    BASE_LIST_FOREACH_SAFE(it, tmp, &srv->sessions)
    {
        eio_session_t *s = BASE_CONTAINER_OF(it, eio_session_t, link);
        eio__session_close(s, "server shutting down", EIO_CLOSE_FLUSH);
    }
}

/* End of the drain: whatever still waits for a GET or a slow socket is cut loose;
 * lws_context_destroy closes their connections right after. */
void eio__sessions_force_free(eio_server_t *srv)
{
    base_list_t *it, *tmp;

    eio__pending_flush(srv);
    BASE_LIST_FOREACH_SAFE(it, tmp, &srv->sessions)
    {
        eio_session_t *s = BASE_CONTAINER_OF(it, eio_session_t, link);
        struct lws *conns[4] = {s->get, s->post, s->ws, s->probe};

        for (int i = 0; i < 4; i++)
            if (conns[i] != NULL)
                eio__detach(s, conns[i], srv->tr->conn_of(conns[i]));
        if (s->lingering) {
            s->lingering = 0;
            uv_timer_stop(&s->hb_timer);
        }
        eio__session_maybe_free(s);
    }
}

/* ---------------------------------------------------------------- upgrade */

void eio__upgrade_start(eio_session_t *s, struct lws *wsi)
{
    s->probe = wsi;
    uv_timer_start(&s->upg_timer, eio__on_upgrade_timeout, s->srv->cfg.upgrade_timeout_ms, 0);
}

void eio__upgrade_abort(eio_session_t *s, struct lws *wsi, eio_conn_t *c)
{
    eio__detach(s, wsi, c);
    s->upgrading = 0;
    uv_timer_stop(&s->upg_timer);
}

void eio__upgrade_probe(eio_session_t *s)
{
    s->upgrading = 1;
    if (s->get != NULL)
        s->srv->tr->wake_noop(s->get);
}

void eio__upgrade_finish(eio_session_t *s)
{
    struct lws *wsi = s->probe;
    eio_conn_t *c = s->srv->tr->conn_of(wsi);

    uv_timer_stop(&s->upg_timer);
    s->probe = NULL;
    s->ws = wsi;
    c->role = EIO_ROLE_WS;
    s->transport = EIO_TRANSPORT_WEBSOCKET;
    s->upgrading = 0;
    /* a client that did not pause its polling still has a GET out: end it cleanly */
    if (s->get != NULL)
        s->srv->tr->wake_noop(s->get);
    if (s->q.len > 0)
        s->srv->tr->wake(s);
}

/* ---------------------------------------------------------------- public session API */

int eio_session_send(eio_session_t *s, base_frame_t *f, unsigned flags)
{
    if (s == NULL || f == NULL)
        return SIO_EINVAL;
    if (s->state != EIO_S_OPEN)
        return SIO_ECLOSED;
    if (flags & EIO_SEND_VOLATILE) {
        int writable;
        if (s->transport == EIO_TRANSPORT_WEBSOCKET) {
            /* Frames queued during this loop iteration still go out before it sleeps
             * (eio_ws_send.c's flush), so "cannot take it now" means the kernel pushed back
             * and the queue waits for WRITEABLE. Testing for an empty queue instead
             * dropped a volatile packet sent right after an ack to the same client. */
            eio_conn_t *c = s->ws != NULL ? s->srv->tr->conn_of(s->ws) : NULL;
            writable = c != NULL && !c->want_write;
        } else {
            eio_conn_t *c = s->get != NULL ? s->srv->tr->conn_of(s->get) : NULL;
            writable = c != NULL && !c->noop && !s->upgrading;
        }
        if (!writable)
            return SIO_EBUSY;
    }
    if (eio__queue_push(&s->q, f, flags, s->srv->cfg.max_queue, s->srv->cfg.max_queue_bytes) != 0) {
        eio__session_close(s, "transport error", EIO_CLOSE_ERROR);
        return SIO_ECLOSED;
    }
    base_frame_ref(f);
    if (s->q.len == 1)
        s->srv->tr->wake(s);
    return SIO_OK;
}

void eio_session_close(eio_session_t *s, const char *reason)
{
    if (s != NULL)
        eio__session_close(s, reason, EIO_CLOSE_FLUSH);
}

const char *eio_session_id(const eio_session_t *s)
{
    return s->id;
}

uint64_t eio_session_read_at(const eio_session_t *s)
{
    return s->read_at;
}

const char *eio_session_transport(const eio_session_t *s)
{
    return s->transport == EIO_TRANSPORT_WEBSOCKET ? "websocket" : "polling";
}

const char *eio_session_address(const eio_session_t *s)
{
    return s->address != NULL ? s->address : "";
}

const char *eio_session_url(const eio_session_t *s)
{
    return s->url != NULL ? s->url : "";
}

const char *eio_session_query(const eio_session_t *s)
{
    const char *q = s->url != NULL ? strchr(s->url, '?') : NULL;
    return q != NULL ? q + 1 : "";
}

const char *eio_session_query_get(const eio_session_t *s, const char *key)
{
    return s != NULL && key != NULL ? eio__query_get(&s->pairs, key) : NULL;
}

int eio_session_query_next(const eio_session_t *s, size_t *it, const char **key, const char **value)
{
    return s != NULL && eio__query_next(&s->pairs, it, key, value);
}

const cJSON *eio_session_headers(const eio_session_t *s)
{
    return s->headers;
}

void *eio_session_data(const eio_session_t *s)
{
    return s->data;
}

void eio_session_set_data(eio_session_t *s, void *data)
{
    s->data = data;
}
