/* sio_redis.c -- sockeye_redis.h: a server becomes a node of a Redis cluster.
 *
 * Wiring on top of the protocol and the Redis adapter: one rds_node_t per server (the
 * node's two connections, uid, registry record and recovery storage) becomes the
 * server's adapter provider, so every namespace gets a Redis adapter, the node learns
 * its address when the server listens, and closes after the server's last client.
 */
#include <stdio.h>
#include <string.h>

#include "base_alloc.h"
#include "rds_node.h"
#include "rds_queue.h"
#include "rds_url.h"
#include "sio_provider.h"
#include "sockeye_redis.h"

/* One per server that called sio_server_use_redis: the provider's ud. */
typedef struct sio_redis_bind {
    sio_server_t *srv;
    rds_node_t *node;
    sio_redis_cb cb; /* first outcome of the start, may be NULL */
    void *ud;
} sio_redis_bind_t;

void sio_redis_config_init(sio_redis_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->key_prefix = "sockeye";
    cfg->channel_prefix = "socket.io";
    cfg->request_timeout_ms = 5000;
}

int sio_redis_url_check(const char *url, char *err, size_t errlen)
{
    rds_url_t u = {0}; /* fresh: rds_url_parse fills it */
    int rc = rds_url_parse(&u, url, err, errlen);

    rds_url_free(&u);
    return rc == SIO_OK ? SIO_OK : SIO_EINVAL;
}

/* ---------------------------------------------------------------- provider */

static adp_adapter_t *sio__redis_create(void *ud, const char *nsp, const adp_host_t *host)
{
    sio_redis_bind_t *b = ud;
    return rds_adapter_new(b->node, nsp, host);
}

static void sio__redis_listening(void *ud, const char *address)
{
    sio_redis_bind_t *b = ud;
    rds_node_set_address(b->node, address);
}

static void sio__redis_close(void *ud, void (*done)(void *arg), void *arg)
{
    sio_redis_bind_t *b = ud;
    rds_node_close(b->node, done, arg);
}

static adp_qstore_t *sio__redis_queues(void *ud, const adp_qconfig_t *cfg,
                                       const adp_qevents_t *ev)
{
    sio_redis_bind_t *b = ud;
    return rds_queue_new(b->node, cfg, ev);
}

static void sio__redis_free(void *ud)
{
    sio_redis_bind_t *b = ud;
    rds_node_free(b->node);
    base_free(b);
}

/* ---------------------------------------------------------------- use_redis */

static size_t sio__connections(void *ud)
{
    return sio_server_client_count(ud);
}

static void sio__redis_started(void *ud, int err, const char *reason)
{
    sio_redis_bind_t *b = ud;

    if (b->cb != NULL)
        b->cb(b->srv, err, reason, b->ud);
}

/* The binding of srv when it uses Redis, else NULL: recognised by its create callback,
 * which no other provider has. */
static sio_redis_bind_t *sio__redis_bind(const sio_server_t *srv)
{
    const adp_provider_t *p = srv != NULL ? sio__server_provider(srv) : NULL;
    return p != NULL && p->create == sio__redis_create ? p->ud : NULL;
}

/* Creates the node's Redis context, gives every namespace the Redis adapter and
 * starts connecting (see sockeye_redis.h). */
int sio_server_use_redis(sio_server_t *srv, const sio_redis_config_t *cfg, sio_redis_cb cb,
                         void *ud)
{
    sio_redis_config_t def;
    rds_url_t url = {0}; /* fresh: rds_url_parse fills it */
    char err[256];

    if (srv == NULL || sio__redis_bind(srv) != NULL || !sio__server_provider_settable(srv))
        return SIO_EINVAL;
    if (cfg == NULL) {
        sio_redis_config_init(&def);
        cfg = &def;
    }
    if (rds_url_parse(&url, cfg->url, err, sizeof(err)) != SIO_OK) {
        rds_url_free(&url);
        return SIO_EINVAL;
    }
    const sio_config_t *sc = sio__server_config(srv);
    rds_node_config_t rc = {
        .url = &url,
        .key_prefix = cfg->key_prefix,
        .channel_prefix = cfg->channel_prefix,
        .request_timeout_ms = cfg->request_timeout_ms,
        .recovery = sc->recovery,
        .recovery_window_ms = sc->recovery_window_ms,
        .detect_ms = (uint64_t)sc->ping_interval_ms + 2u * (uint64_t)sc->ping_timeout_ms,
        .on_log = cfg->on_log,
        .log_ud = cfg->log_ud,
        .connections = sio__connections,
        .conn_ud = srv,
    };
    rds_node_t *node = rds_node_new(sio__server_loop(srv), &rc);
    rds_url_free(&url);
    if (node == NULL)
        return SIO_EINVAL;
    sio_redis_bind_t *b = base_calloc(1, sizeof(*b));
    b->srv = srv;
    b->node = node;
    b->cb = cb;
    b->ud = ud;
    adp_provider_t p = {
        .ud = b,
        .create = sio__redis_create,
        .listening = sio__redis_listening,
        .close = sio__redis_close,
        .queues = sio__redis_queues,
        .free = sio__redis_free,
    };
    sio__server_set_provider(srv, &p); /* settable: checked above */
    return rds_node_start(node, sio__redis_started, b);
}

/* See sockeye_redis.h. */
void sio_server_redis_stats(const sio_server_t *srv, sio_redis_stats_t *out)
{
    sio_redis_bind_t *b = sio__redis_bind(srv);
    rds_node_stats_t st;

    memset(out, 0, sizeof(*out));
    out->uid = "";
    if (b == NULL)
        return;
    rds_node_get_stats(b->node, &st);
    out->enabled = 1;
    out->command_up = st.command_up;
    out->subscriber_up = st.subscriber_up;
    out->up = st.command_up && st.subscriber_up;
    out->reconnects = st.reconnects;
    out->publish_failures = st.publish_failures;
    out->request_timeouts = st.request_timeouts;
    out->messages_in = st.messages_in;
    out->messages_out = st.messages_out;
    out->uid = rds_node_uid(b->node);
}
