/* main.c -- the `sockeye` executable: a standalone Socket.IO node.
 *
 * Configuration (config.c) -> one server on the default libuv loop -> the standard
 * application (app.c) on "/" and every configured namespace -> a few plain HTTP
 * routes for operators and the demo page. SIGTERM/SIGINT drain: the server closes
 * every client with a recoverable reason so they reconnect elsewhere and recover;
 * a second signal, or the drain timeout, exits at once. A clean run ends with
 * uv_loop_close() == 0, i.e. every handle closed, or the exit status says otherwise.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "app.h"
#include "base_alloc.h"
#include "config.h"
#include "routes.h"
#include "sockeye.h"
#include "sockeye_queue.h"
#include "sockeye_redis.h"

#ifndef SOCKEYE_WWW_DIR
#define SOCKEYE_WWW_DIR "www"
#endif

#define EXIT_BAD_CONFIG 2

/* The process. One of these. */
typedef struct node {
    uv_loop_t *loop;
    app_node_config_t cfg;
    sio_server_t *srv;
    app_t *app;
    app_jwt_t *jwt;     /* NULL = no authentication */
    uv_signal_t sig[2]; /* SIGTERM, SIGINT */
    uv_timer_t drain;
    int draining;
    int exit_code;
    app_routes_t routes;  /* /healthz, /metrics, the chat page */
    sio_queues_t *queues; /* durable queues, once the server has its adapter */
} node_t;

static int log_level = APP_LOG_INFO;

__attribute__((format(printf, 2, 3))) static void node_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    va_list ap;

    if (level > log_level)
        return;
    fprintf(stderr, "sockeye: %s: ", names[level]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---------------------------------------------------------------- files */

/* The directory of the running binary, where the build copies socket.io.min.js. */
static void exe_dir(char *buf, size_t len)
{
    size_t n = len;
    char *slash;

    if (uv_exepath(buf, &n) != 0) {
        snprintf(buf, len, ".");
        return;
    }
    slash = strrchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
}

/* ---------------------------------------------------------------- shutdown */

static void on_handle_closed(uv_handle_t *h)
{
}

/* The server's close callback: only our own handles are left, and once they are
 * closed uv_run returns. */
static void on_server_closed(void *arg)
{
    node_t *n = arg;

    if (n->draining)
        node_log(APP_LOG_INFO, "every client closed, exiting");
    for (size_t i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&n->sig[i], on_handle_closed);
    uv_close((uv_handle_t *)&n->drain, on_handle_closed);
}

static void on_drain_timeout(uv_timer_t *t)
{
    node_t *n = t->data;

    node_log(APP_LOG_WARN, "drain timeout (%u ms) reached with %zu client(s) left, exiting now",
             n->cfg.drain_timeout_ms, sio_server_client_count(n->srv));
    fflush(stdout);
    fflush(stderr);
    _exit(1);
}

static void on_queues_closed(void *arg)
{
    node_t *n = arg;
    sio_server_close(n->srv, on_server_closed, n);
}

/* The queues close first (they pass on the acknowledgements already received), then the
 * server: its clients' sessions, with the messages they hold, are recovered elsewhere. */
static void close_server(node_t *n)
{
    if (n->queues != NULL)
        sio_queues_close(n->queues, on_queues_closed, n);
    else
        sio_server_close(n->srv, on_server_closed, n);
}

static void on_signal(uv_signal_t *h, int signum)
{
    node_t *n = h->data;

    if (n->draining) {
        /* The operator insists: no more waiting, and no cleanup that could hang. */
        node_log(APP_LOG_WARN, "second signal (%s), exiting now", strsignal(signum));
        fflush(stdout);
        fflush(stderr);
        _exit(1);
    }
    n->draining = 1;
    n->routes.draining = 1;
    node_log(APP_LOG_INFO, "%s: draining %zu client(s), at most %u ms", strsignal(signum),
             sio_server_client_count(n->srv), n->cfg.drain_timeout_ms);
    uv_timer_start(&n->drain, on_drain_timeout, n->cfg.drain_timeout_ms, 0);
    close_server(n);
}

static void on_walk(uv_handle_t *h, void *arg)
{
    node_log(APP_LOG_ERROR, "handle still open at exit: %s%s", uv_handle_type_name(h->type),
             uv_is_closing(h) ? " (closing)" : "");
}

/* ---------------------------------------------------------------- start-up */

static int install_app(node_t *n)
{
    const app_node_config_t *c = &n->cfg;
    app_config_t ac = {
        .join_event = c->join_event,
        .leave_event = c->leave_event,
        .echo_event = c->echo_event,
        .ask_event = c->ask_event,
        .ask_timeout_ms = c->ask_timeout_ms,
        .relay_events = (const char *const *)c->relay_events.v,
        .n_relay_events = c->relay_events.n,
        .broadcast_events = (const char *const *)c->broadcast_events.v,
        .n_broadcast_events = c->broadcast_events.n,
        .max_rooms_per_socket = c->max_rooms_per_socket,
        .jwt = n->jwt,
        .event_queues = (const char *const *)c->event_queues.v,
        .n_event_queues = c->event_queues.n,
    };
    int rc;

    n->app = app_new(&ac);
    app_install(n->app, sio_server_of(n->srv, "/"));
    for (size_t i = 0; i < c->namespaces.n; i++) {
        sio_namespace_t *nsp = sio_server_of(n->srv, c->namespaces.v[i]);

        if (nsp == NULL) {
            node_log(APP_LOG_ERROR, "cannot create namespace %s", c->namespaces.v[i]);
            return SIO_EINVAL;
        }
        app_install(n->app, nsp);
    }
    if (c->namespace_pattern != NULL) {
        rc = app_install_pattern(n->app, n->srv, c->namespace_pattern);
        if (rc != SIO_OK) {
            node_log(APP_LOG_ERROR, "--namespace-pattern %s: %s", c->namespace_pattern,
                     sio_strerror(rc));
            return rc;
        }
    }
    return SIO_OK;
}

static void queue_log(void *ud, int level, const char *msg)
{
    node_log(level, "%s", msg);
}

/* The queues sit on the store of the server's adapter: made once that is final (after
 * Redis, when there is Redis), before the first client. */
static void start_queues(node_t *n)
{
    sio_queue_config_t qc;

    sio_queue_config_init(&qc);
    qc.ack_timeout_ms = n->cfg.queue_ack_timeout_ms;
    qc.max_deliveries = n->cfg.queue_max_deliveries;
    qc.max_prefetch = n->cfg.queue_max_prefetch;
    qc.max_pushes_in_flight = n->cfg.queue_max_pushes_in_flight;
    qc.max_length = n->cfg.queue_max_length;
    qc.max_age_ms = n->cfg.queue_max_age_ms;
    qc.max_payload = n->cfg.queue_max_payload;
    qc.on_log = queue_log;
    qc.log_ud = n;
    n->queues = sio_queues_new(n->srv, &qc);
    if (n->queues == NULL)
        node_log(APP_LOG_WARN, "this adapter keeps no queues: queue events are refused");
    app_set_queues(n->app, n->queues);
    n->routes.queues = n->queues;
}

static void start_listening(node_t *n)
{
    static const int signums[2] = {SIGTERM, SIGINT};
    int rc;

    start_queues(n);
    rc = sio_server_listen(n->srv);

    if (rc != SIO_OK) {
        node_log(APP_LOG_ERROR, "cannot listen on %s:%d: %s", n->cfg.srv.host, n->cfg.srv.port,
                 sio_strerror(rc));
        n->exit_code = 1;
        close_server(n);
        return;
    }
    for (size_t i = 0; i < 2; i++)
        uv_signal_start(&n->sig[i], on_signal, signums[i]);
    printf("sockeye: listening on %s:%d\n", n->cfg.srv.host, sio_server_port(n->srv));
    fflush(stdout);
}

static void redis_log(void *ud, int level, const char *msg)
{
    node_log(level, "%s", msg);
}

/* First outcome of the Redis connection: listen only once the node is part of the
 * cluster, so a client never reaches a node that cannot yet hear the others. */
static void on_redis(sio_server_t *srv, int err, const char *reason, void *ud)
{
    node_t *n = ud;

    if (n->draining)
        return;
    if (err != SIO_OK) {
        node_log(APP_LOG_ERROR, "cannot join the cluster: %s",
                 reason != NULL ? reason : sio_strerror(err));
        n->exit_code = 1;
        sio_server_close(n->srv, on_server_closed, n);
        return;
    }
    start_listening(n);
}

static int start_redis(node_t *n)
{
    sio_redis_config_t rc;

    sio_redis_config_init(&rc);
    rc.url = n->cfg.redis_url;
    rc.key_prefix = n->cfg.redis_key_prefix;
    rc.channel_prefix = n->cfg.redis_channel_prefix;
    rc.request_timeout_ms = n->cfg.redis_request_timeout_ms;
    rc.on_log = redis_log;
    rc.log_ud = n;
    if (sio_server_use_redis(n->srv, &rc, on_redis, n) != SIO_OK) {
        node_log(APP_LOG_ERROR, "cannot use Redis: bad --redis URL");
        return SIO_EINVAL;
    }
    return SIO_OK;
}

int main(int argc, char **argv)
{
    static node_t node;
    node_t *n = &node;
    const char *prog = argc > 0 ? argv[0] : "sockeye";
    char err[512], dir[4096];
    int rc;

    /* A peer that vanishes mid-write must cost one connection, not the process. */
    signal(SIGPIPE, SIG_IGN);

    app_node_config_init(&n->cfg);
    rc = app_node_config_env(&n->cfg, NULL, err, sizeof(err));
    if (rc == SIO_OK)
        rc = app_node_config_argv(&n->cfg, argc, argv, err, sizeof(err));
    if (rc == APP_CFG_RUN)
        rc = app_node_config_check(&n->cfg, err, sizeof(err));
    if (rc == APP_CFG_RUN)
        rc = app_node_config_auth(&n->cfg, &n->jwt, err, sizeof(err));
    switch (rc) {
    case APP_CFG_RUN:
        break;
    case APP_CFG_HELP:
        app_node_config_help(stdout, "sockeye");
        app_node_config_free(&n->cfg);
        return 0;
    case APP_CFG_MARKDOWN:
        app_node_config_markdown(stdout);
        app_node_config_free(&n->cfg);
        return 0;
    case APP_CFG_VERSION:
        printf("sockeye %s\n", SOCKEYE_VERSION);
        app_node_config_free(&n->cfg);
        return 0;
    default:
        fprintf(stderr, "%s: %s\nTry '%s --help'.\n", prog, err, prog);
        app_node_config_free(&n->cfg);
        return EXIT_BAD_CONFIG;
    }
    log_level = n->cfg.log_level;
    if (n->jwt != NULL)
        node_log(APP_LOG_INFO, "clients must present a %s token (auth.token)",
                 app_jwt_alg_name(app_jwt_alg(n->jwt)));

    n->loop = uv_default_loop();
    n->srv = sio_server_new(n->loop, &n->cfg.srv);
    if (n->srv == NULL) {
        fprintf(stderr, "%s: the server refused this configuration\nTry '%s --help'.\n", prog,
                prog);
        app_jwt_free(n->jwt);
        app_node_config_free(&n->cfg);
        uv_loop_close(n->loop);
        return EXIT_BAD_CONFIG;
    }
    n->routes.srv = n->srv;
    n->routes.loop = n->loop;
    n->routes.started_ms = uv_now(n->loop);
    n->routes.log = node_log;
    exe_dir(dir, sizeof(dir));
    app_routes_load(&n->routes, n->cfg.www_dir, dir, SOCKEYE_WWW_DIR);
    sio_server_on_http(n->srv, app_routes_http, &n->routes);
    for (size_t i = 0; i < 2; i++) {
        uv_signal_init(n->loop, &n->sig[i]);
        n->sig[i].data = n;
    }
    uv_timer_init(n->loop, &n->drain);
    n->drain.data = n;

    rc = install_app(n);
    n->routes.app = n->app;
    if (rc == SIO_OK && n->cfg.redis_url != NULL)
        rc = start_redis(n); /* listens from on_redis */
    else if (rc == SIO_OK)
        start_listening(n);
    if (rc != SIO_OK) {
        n->exit_code = 1;
        sio_server_close(n->srv, on_server_closed, n);
    }

    uv_run(n->loop, UV_RUN_DEFAULT);

    sio_server_free(n->srv);
    sio_queues_free(n->queues);
    app_free(n->app);
    app_jwt_free(n->jwt);
    app_routes_free(&n->routes);
    app_node_config_free(&n->cfg);
    if (uv_loop_close(n->loop) != 0) {
        uv_walk(n->loop, on_walk, NULL);
        node_log(APP_LOG_ERROR, "event loop not empty at exit");
        return 1;
    }
    return n->exit_code;
}
