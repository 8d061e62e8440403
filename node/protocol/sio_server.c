/* sio_server.c -- the Socket.IO server: configuration, the listener, clients (one
 * per Engine.IO session) and namespaces (static, or created by a pattern).
 *
 * The engine hands us opened sessions, whole messages and closes. A client turns
 * messages into packets with its own decoder and routes them by namespace under the
 * dispatch rules of the protocol (spec 2.2): CONNECT only to a namespace it has not
 * joined, everything else only to one it has. Any other packet, and any decoding
 * error, closes the whole Engine.IO session as the reference does: a peer that broke
 * the framing once cannot be assumed to be in sync afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base_alloc.h"
#include "sio_private.h"

/* ---------------------------------------------------------------- configuration */

/* Defaults of the reference server (socket.io 4.8 / engine.io 6.6), except the
 * ones sockeye.h documents otherwise (recovery and permessage-deflate on). */
void sio_config_init(sio_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = "0.0.0.0";
    cfg->port = 3000;
    cfg->path = "/socket.io/";
    cfg->ping_interval_ms = 25000;
    cfg->ping_timeout_ms = 20000;
    cfg->upgrade_timeout_ms = 10000;
    cfg->connect_timeout_ms = 45000;
    cfg->max_payload = 1000000;
    cfg->transports = SIO_TRANSPORT_POLLING | SIO_TRANSPORT_WEBSOCKET;
    cfg->allow_upgrades = 1;
    cfg->cors_origins = NULL;
    cfg->cors_credentials = 0;
    cfg->per_message_deflate = 1;
    cfg->max_queue = 10000;
    cfg->max_queue_bytes = (size_t)16 << 20;
    cfg->recovery = 1;
    cfg->recovery_window_ms = 120000;
    cfg->recovery_skip_middlewares = 1;
}

static int sio__config_valid(const sio_config_t *c)
{
    return c->host != NULL && c->port >= 0 && c->port <= 65535 && c->path != NULL &&
           c->path[0] == '/' && c->ping_interval_ms > 0 && c->ping_timeout_ms > 0 &&
           c->max_payload > 0 &&
           (c->transports & (SIO_TRANSPORT_POLLING | SIO_TRANSPORT_WEBSOCKET)) != 0 &&
           c->max_queue > 0;
}

/* ---------------------------------------------------------------- namespaces */

static adp_adapter_t *sio__adapter_new(sio_server_t *srv, sio_namespace_t *nsp)
{
    adp_host_t host;

    sio__host_init(nsp, &host);
    return srv->provider.create(srv->provider.ud, nsp->name, &host);
}

static sio_namespace_t *sio__nsp_new(sio_server_t *srv, const char *name)
{
    sio_namespace_t *nsp = base_calloc(1, sizeof(*nsp));
    nsp->srv = srv;
    nsp->name = base_strdup(name);
    base_map_init(&nsp->sockets);
    base_list_init(&nsp->server_acks);
    nsp->adapter = sio__adapter_new(srv, nsp);
    if (nsp->adapter == NULL) {
        base_free(nsp->name);
        base_free(nsp);
        return NULL;
    }
    base_map_put(&srv->nsps, name, nsp);
    return nsp;
}

static void sio__nsp_free(sio_namespace_t *nsp)
{
    if (nsp->adapter != NULL)
        nsp->adapter->vt->destroy(nsp->adapter);
    sio__server_acks_free(nsp);
    base_map_clear(&nsp->sockets);
    base_free(nsp->mw);
    base_free(nsp->name);
    base_free(nsp);
}

/* The namespace called name, creating it on first use. NULL when name does not
 * start with '/' (Node would prefix one; an embedder passing "chat" is a bug we
 * would rather report than guess about). */
sio_namespace_t *sio_server_of(sio_server_t *srv, const char *name)
{
    if (srv == NULL || name == NULL || name[0] != '/')
        return NULL;
    sio_namespace_t *nsp = base_map_get(&srv->nsps, name);
    return nsp != NULL ? nsp : sio__nsp_new(srv, name);
}

/* Registers a dynamic-namespace pattern. SIO_EINVAL when regex does not compile.
 * init runs once per namespace created by a match, before its first CONNECT. */
int sio_server_of_pattern(sio_server_t *srv, const char *regex, sio_nsp_init_cb init, void *ud)
{
    if (srv == NULL || regex == NULL)
        return SIO_EINVAL;
    sio_pattern_t *p = base_calloc(1, sizeof(*p));
    if (regcomp(&p->re, regex, REG_EXTENDED | REG_NOSUB) != 0) {
        base_free(p);
        return SIO_EINVAL;
    }
    p->init = init;
    p->ud = ud;
    base_list_push_back(&srv->patterns, &p->node);
    return SIO_OK;
}

/* The namespace called name, creating it when a dynamic pattern matches; NULL when
 * neither a namespace nor a pattern knows the name. */
static sio_namespace_t *sio__server_lookup_nsp(sio_server_t *srv, const char *name)
{
    sio_namespace_t *nsp = base_map_get(&srv->nsps, name);
    base_list_t *it, *tmp;

    if (nsp != NULL)
        return nsp;
    BASE_LIST_FOREACH_SAFE(it, tmp, &srv->patterns)
    {
        sio_pattern_t *p = BASE_CONTAINER_OF(it, sio_pattern_t, node);
        if (regexec(&p->re, name, 0, NULL, 0) != 0)
            continue;
        nsp = sio__nsp_new(srv, name);
        if (nsp != NULL && p->init != NULL)
            p->init(nsp, p->ud);
        return nsp;
    }
    return NULL;
}

/* See sio_provider.h. The old provider is freed once none of its adapters is left, which
 * holds at once: without clients no namespace has a socket, so every adapter is new. */
int sio__server_set_provider(sio_server_t *srv, const adp_provider_t *p)
{
    base_map_iter_t it = {0};
    const char *k;
    void *v;
    adp_provider_t old;

    if (p == NULL || p->create == NULL || !sio__server_provider_settable(srv))
        return SIO_EINVAL;
    old = srv->provider;
    srv->provider = *p;
    while (base_map_next(&srv->nsps, &it, &k, &v)) {
        sio_namespace_t *nsp = v;
        adp_adapter_t *a = sio__adapter_new(srv, nsp);
        nsp->adapter->vt->destroy(nsp->adapter);
        nsp->adapter = a;
    }
    if (old.free != NULL)
        old.free(old.ud);
    if (srv->eio != NULL && srv->provider.listening != NULL) {
        char addr[300];
        snprintf(addr, sizeof(addr), "%s:%d", srv->cfg.host, sio_server_port(srv));
        srv->provider.listening(srv->provider.ud, addr);
    }
    return SIO_OK;
}

/* See sio_provider.h. Without clients no namespace has a socket, so no adapter holds
 * state that a swap would lose. */
int sio__server_provider_settable(const sio_server_t *srv)
{
    return srv != NULL && !srv->closing && srv->n_clients == 0;
}

/* See sio_provider.h. */
const adp_provider_t *sio__server_provider(const sio_server_t *srv)
{
    return &srv->provider;
}

/* See sio_provider.h. */
int sio__server_observe(sio_server_t *srv, const sio_observer_t *o)
{
    if (srv == NULL || o == NULL || srv->n_observers == SIO_MAX_OBSERVERS)
        return SIO_EINVAL;
    srv->observers[srv->n_observers++] = *o;
    return SIO_OK;
}

/* See sio_provider.h. */
void sio__server_unobserve(sio_server_t *srv, void *ud)
{
    size_t j = 0;

    for (size_t i = 0; i < srv->n_observers; i++)
        if (srv->observers[i].ud != ud)
            srv->observers[j++] = srv->observers[i];
    srv->n_observers = j;
}

/* See sio_provider.h. */
const sio_config_t *sio__server_config(const sio_server_t *srv)
{
    return &srv->cfg;
}

/* See sio_provider.h. */
uv_loop_t *sio__server_loop(const sio_server_t *srv)
{
    return srv->loop;
}

const char *sio_nsp_name(const sio_namespace_t *nsp)
{
    return nsp->name;
}

sio_server_t *sio_nsp_server(const sio_namespace_t *nsp)
{
    return nsp->srv;
}

/* Replaces the connection callback (one per namespace). */
void sio_nsp_on_connection(sio_namespace_t *nsp, sio_connection_cb cb, void *ud)
{
    nsp->on_conn = cb;
    nsp->conn_ud = ud;
}

/* Appends a middleware; they run in registration order at each CONNECT. */
void sio_nsp_use(sio_namespace_t *nsp, sio_middleware_cb cb, void *ud)
{
    if (cb == NULL)
        return;
    nsp->mw = base_realloc(nsp->mw, (nsp->n_mw + 1) * sizeof(*nsp->mw));
    nsp->mw[nsp->n_mw].cb = cb;
    nsp->mw[nsp->n_mw].ud = ud;
    nsp->n_mw++;
}

/* Records the refusal a middleware returns; the last call wins. data consumed. */
void sio_conn_error_set(sio_conn_error_t *err, const char *message, cJSON *data)
{
    if (err == NULL) {
        cJSON_Delete(data);
        return;
    }
    base_free(err->message);
    cJSON_Delete(err->data);
    err->message = message != NULL ? base_strdup(message) : NULL;
    err->data = data;
}

size_t sio_nsp_socket_count(const sio_namespace_t *nsp)
{
    return base_map_size(&nsp->sockets);
}

/* ---------------------------------------------------------------- clients */

static void sio__on_connect_timeout(uv_timer_t *t)
{
    sio_client_t *c = t->data;
    base_map_iter_t it = {0};
    const char *k;
    void *v;

    while (base_map_next(&c->sockets, &it, &k, &v))
        if (((sio_socket_t *)v)->state == SIO_SOCK_CONNECTED)
            return;
    sio__client_close(c, "forced close");
}

static void sio__client_timer_closed(uv_handle_t *h)
{
    sio_client_t *c = BASE_CONTAINER_OF(h, sio_client_t, connect_timer);
    sio_server_t *srv = c->srv;

    cd_sio_decoder_reset(&c->dec);
    base_map_clear(&c->sockets);
    base_free(c);
    sio__server_handle_gone(srv);
}

static void sio__on_open(void *ud, eio_session_t *es)
{
    sio_server_t *srv = ud;
    sio_client_t *c = base_calloc(1, sizeof(*c));

    c->srv = srv;
    c->eio = es;
    cd_sio_decoder_init(&c->dec);
    base_map_init(&c->sockets);
    uv_timer_init(srv->loop, &c->connect_timer);
    c->connect_timer.data = c;
    srv->n_handles++;
    if (srv->cfg.connect_timeout_ms > 0)
        uv_timer_start(&c->connect_timer, sio__on_connect_timeout, srv->cfg.connect_timeout_ms, 0);
    base_list_push_back(&srv->clients, &c->node);
    srv->n_clients++;
    eio_session_set_data(es, c);
}

static void sio__client_dispatch(sio_client_t *c, cd_sio_packet_t *p)
{
    sio_socket_t *s = base_map_get(&c->sockets, p->nsp);

    if (p->type == CD_SIO_CONNECT && s == NULL) {
        sio_namespace_t *nsp = sio__server_lookup_nsp(c->srv, p->nsp);
        if (nsp == NULL) {
            sio__send_connect_error(c, p->nsp, "Invalid namespace", NULL);
            cd_sio_packet_free(p);
            return;
        }
        sio__socket_connect(c, nsp, p);
        return;
    }
    if (s != NULL && s->state == SIO_SOCK_CONNECTED && p->type != CD_SIO_CONNECT &&
        p->type != CD_SIO_CONNECT_ERROR) {
        sio__socket_packet(s, p);
        return;
    }
    cd_sio_packet_free(p);
    sio__client_close(c, "parse error");
}

static void sio__on_message(void *ud, eio_session_t *es, const char *data, size_t len, int binary)
{
    sio_client_t *c = eio_session_data(es);
    cd_sio_packet_t *p = NULL;
    int rc;

    if (!sio__client_usable(c))
        return;
    if (binary)
        rc = cd_sio_decode_binary(&c->dec, (const unsigned char *)data, len, &p);
    else
        rc = cd_sio_decode_text(&c->dec, data, len, &p);
    if (rc != SIO_OK) {
        cd_sio_packet_free(p);
        sio__client_close(c, "parse error");
        return;
    }
    if (p != NULL)
        sio__client_dispatch(c, p);
}

static void sio__on_close(void *ud, eio_session_t *es, const char *reason)
{
    sio_server_t *srv = ud;
    sio_client_t *c = eio_session_data(es);

    if (c == NULL)
        return;
    c->closing = 1;
    /* The session is still valid here, so disconnect callbacks can read the
     * handshake; frames they try to send are refused (closing). */
    sio__client_close_sockets(c, reason, 0);
    eio_session_set_data(es, NULL);
    c->eio = NULL;
    base_list_remove(&c->node);
    srv->n_clients--;
    uv_close((uv_handle_t *)&c->connect_timer, sio__client_timer_closed);
}

/* The public request and answer have the engine's fields under the public names: copied
 * across, so that the engine needs nothing of sockeye.h. */
static void sio__on_http(const eio_http_req_t *req, eio_http_res_t *res, void *ud)
{
    sio_server_t *srv = ud;
    sio_http_req_t preq = {.method = req->method, .path = req->path, .query = req->query};
    sio_http_res_t pres = {0};

    if (srv->http_cb == NULL)
        return;
    srv->http_cb(&preq, &pres, srv->http_ud);
    res->status = pres.status;
    res->content_type = pres.content_type;
    res->body = pres.body;
    res->body_len = pres.body_len;
}

_Static_assert(SIO_TRANSPORT_POLLING == EIO_TRANSPORT_POLLING &&
                   SIO_TRANSPORT_WEBSOCKET == EIO_TRANSPORT_WEBSOCKET,
               "the protocol passes its transport mask to the engine as it is");

/* ---------------------------------------------------------------- server */

/* See sio_provider.h. cfg is copied (its strings too); NULL cfg means the defaults.
 * Nothing touches the loop until sio_server_listen, so a server that never listened
 * may be freed directly. */
sio_server_t *sio__server_create(uv_loop_t *loop, const sio_config_t *cfg,
                                 const adp_provider_t *provider)
{
    sio_config_t def;
    sio_server_t *srv;

    if (cfg == NULL) {
        sio_config_init(&def);
        cfg = &def;
    }
    if (loop == NULL || provider == NULL || provider->create == NULL || !sio__config_valid(cfg)) {
        if (provider != NULL && provider->free != NULL)
            provider->free(provider->ud);
        return NULL;
    }
    srv = base_calloc(1, sizeof(*srv));
    srv->provider = *provider;
    srv->loop = loop;
    srv->cfg = *cfg;
    srv->host = base_strdup(cfg->host);
    srv->path = base_strdup(cfg->path);
    srv->cors = cfg->cors_origins != NULL ? base_strdup(cfg->cors_origins) : NULL;
    srv->cfg.host = srv->host;
    srv->cfg.path = srv->path;
    srv->cfg.cors_origins = srv->cors;
    base_map_init(&srv->nsps);
    base_list_init(&srv->patterns);
    base_list_init(&srv->clients);
    if (sio_server_of(srv, "/") == NULL) {
        sio_server_free(srv);
        return NULL;
    }
    return srv;
}

static void sio__on_tick(uv_timer_t *t)
{
    sio_server_t *srv = t->data;
    uint64_t now = base_now_ms();
    base_map_iter_t it = {0};
    const char *k;
    void *v;

    while (base_map_next(&srv->nsps, &it, &k, &v)) {
        adp_adapter_t *a = ((sio_namespace_t *)v)->adapter;
        if (a->vt->tick != NULL)
            a->vt->tick(a, now);
    }
}

/* Creates the engine and binds. SIO_EIO when the port cannot be bound (the engine
 * prints why); SIO_EINVAL when already listening or closing. */
int sio_server_listen(sio_server_t *srv)
{
    if (srv == NULL || srv->eio != NULL || srv->closing)
        return SIO_EINVAL;
    eio_config_t ec = {
        .host = srv->cfg.host,
        .port = srv->cfg.port,
        .path = srv->cfg.path,
        .ping_interval_ms = srv->cfg.ping_interval_ms,
        .ping_timeout_ms = srv->cfg.ping_timeout_ms,
        .upgrade_timeout_ms = srv->cfg.upgrade_timeout_ms,
        .max_payload = srv->cfg.max_payload,
        .transports = srv->cfg.transports,
        .allow_upgrades = srv->cfg.allow_upgrades,
        .cors_origins = srv->cfg.cors_origins,
        .cors_credentials = srv->cfg.cors_credentials,
        .per_message_deflate = srv->cfg.per_message_deflate,
        .max_queue = srv->cfg.max_queue,
        .max_queue_bytes = srv->cfg.max_queue_bytes,
    };
    eio_callbacks_t cb = {
        .ud = srv,
        .on_open = sio__on_open,
        .on_message = sio__on_message,
        .on_close = sio__on_close,
        .on_http = sio__on_http,
        .http_ud = srv,
    };
    srv->eio = eio_server_new(srv->loop, &ec, &cb);
    if (srv->eio == NULL)
        return SIO_EIO;
    int rc = eio_server_listen(srv->eio);
    if (rc != SIO_OK)
        return rc;
    if (srv->provider.listening != NULL) {
        char addr[300];
        snprintf(addr, sizeof(addr), "%s:%d", srv->cfg.host, sio_server_port(srv));
        srv->provider.listening(srv->provider.ud, addr);
    }
    uv_timer_init(srv->loop, &srv->tick);
    srv->tick.data = srv;
    srv->n_handles++;
    srv->tick_started = 1;
    uv_timer_start(&srv->tick, sio__on_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&srv->tick);
    return SIO_OK;
}

int sio_server_port(const sio_server_t *srv)
{
    return srv->eio != NULL ? eio_server_port(srv->eio) : srv->cfg.port;
}

size_t sio_server_client_count(const sio_server_t *srv)
{
    return srv->n_clients;
}

void sio_server_on_http(sio_server_t *srv, sio_http_cb cb, void *ud)
{
    srv->http_cb = cb;
    srv->http_ud = ud;
}

static void sio__tick_closed(uv_handle_t *h)
{
    sio__server_handle_gone(h->data);
}

static void sio__eio_closed(void *arg)
{
    sio_server_t *srv = arg;
    srv->eio_closed = 1;
    sio__server_maybe_closed(srv);
}

/* Stops accepting and closes every client (reason "server shutting down", which
 * saves recoverable sessions). cb runs once the engine and every handle of ours are
 * closed -- synchronously when the server never listened. Idempotent. */
void sio_server_close(sio_server_t *srv, void (*cb)(void *arg), void *arg)
{
    if (srv == NULL || srv->closing)
        return;
    srv->closing = 1;
    srv->close_cb = cb;
    srv->close_arg = arg;
    if (srv->tick_started) {
        srv->tick_started = 0;
        uv_close((uv_handle_t *)&srv->tick, sio__tick_closed);
    }
    if (srv->eio != NULL)
        eio_server_close(srv->eio, sio__eio_closed, srv);
    else
        srv->eio_closed = 1;
    sio__server_maybe_closed(srv);
}

/* Frees everything. After sio_server_close's callback, or for a server that never
 * listened. */
void sio_server_free(sio_server_t *srv)
{
    base_map_iter_t it = {0};
    const char *k;
    void *v;
    base_list_t *li, *tmp;

    if (srv == NULL)
        return;
    if (srv->eio != NULL)
        eio_server_free(srv->eio);
    while (base_map_next(&srv->nsps, &it, &k, &v))
        sio__nsp_free(v);
    base_map_clear(&srv->nsps);
    if (srv->provider.free != NULL) /* after its adapters */
        srv->provider.free(srv->provider.ud);
    BASE_LIST_FOREACH_SAFE(li, tmp, &srv->patterns)
    {
        sio_pattern_t *p = BASE_CONTAINER_OF(li, sio_pattern_t, node);
        regfree(&p->re);
        base_free(p);
    }
    base_free(srv->host);
    base_free(srv->path);
    base_free(srv->cors);
    base_free(srv);
}
