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
#include "sockeye.h"

#ifndef SOCKEYE_WWW_DIR
#define SOCKEYE_WWW_DIR "www"
#endif

#define EXIT_BAD_CONFIG 2

/* A file served from memory, read once at start-up so requests never block. */
typedef struct static_file {
    char *data; /* NULL when it could not be read */
    size_t len;
    const char *type; /* Content-Type */
    char *missing;    /* the 404 body explaining why it is absent */
} static_file_t;

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
    uint64_t started_ms;
    static_file_t index;
    static_file_t client;
} node_t;

static int log_level = APP_LOG_INFO;

static void node_log(int level, const char *fmt, ...)
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

/* ---------------------------------------------------------------- growing text */

typedef struct strbuf {
    char *s;
    size_t len, cap;
} strbuf_t;

static void sb_printf(strbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t room = b->cap - b->len;

        va_start(ap, fmt);
        n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->s = base_realloc(b->s, b->cap);
    }
}

/* A Prometheus label value: backslash, double quote and newline are escaped. */
static void sb_label(strbuf_t *b, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"')
            sb_printf(b, "\\%c", *v);
        else if (*v == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *v);
    }
}

/* ---------------------------------------------------------------- static files */

static void file_load(static_file_t *f, const char *path, const char *type, const char *hint)
{
    FILE *fp = fopen(path, "rb");
    long size;

    f->type = type;
    f->data = NULL;
    f->missing = NULL;
    if (fp != NULL && fseek(fp, 0, SEEK_END) == 0 && (size = ftell(fp)) >= 0 &&
        fseek(fp, 0, SEEK_SET) == 0) {
        f->data = base_malloc((size_t)size + 1);
        f->len = fread(f->data, 1, (size_t)size, fp);
        if (f->len != (size_t)size) {
            base_free(f->data);
            f->data = NULL;
        }
    }
    if (fp != NULL)
        fclose(fp);
    if (f->data == NULL) {
        strbuf_t b = {0};

        sb_printf(&b, "%s is missing: %s\n", path, hint);
        f->missing = b.s;
        node_log(APP_LOG_WARN, "%s is missing: %s", path, hint);
    }
}

static void file_free(static_file_t *f)
{
    base_free(f->data);
    base_free(f->missing);
}

static int file_exists(const char *path)
{
    return access(path, R_OK) == 0;
}

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

static void load_static_files(node_t *n)
{
    char dir[4096], path[4200];
    const char *www = n->cfg.www_dir;

    exe_dir(dir, sizeof(dir));
    if (www != NULL && www[0] != '\0') {
        snprintf(path, sizeof(path), "%s/index.html", www);
    } else {
        /* An installed tree keeps www/ beside the binary; a build tree uses the source. */
        snprintf(path, sizeof(path), "%s/www/index.html", dir);
        if (!file_exists(path))
            snprintf(path, sizeof(path), "%s/index.html", SOCKEYE_WWW_DIR);
    }
    file_load(&n->index, path, "text/html; charset=utf-8", "check --www-dir");

    snprintf(path, sizeof(path), "%s/socket.io.min.js", dir);
    file_load(&n->client, path, "application/javascript; charset=utf-8",
              "the build copies it from tests/node_modules/socket.io-client; run `npm ci` in "
              "tests/ and rebuild");
}

/* ---------------------------------------------------------------- HTTP routes */

static void res_text(sio_http_res_t *res, int status, const char *type, const char *body,
                     size_t len)
{
    res->status = status;
    res->content_type = type;
    res->body = base_malloc(len + 1);
    memcpy(res->body, body, len);
    res->body[len] = '\0';
    res->body_len = len;
}

static void route_healthz(node_t *n, sio_http_res_t *res)
{
    /* A draining node says so, so a load balancer stops sending it new clients. */
    if (n->draining)
        res_text(res, 503, "text/plain; charset=utf-8", "draining\n", 9);
    else
        res_text(res, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

/* The cluster link: is it up, how often it came back, what could not cross it. */
static void route_metrics_redis(node_t *n, strbuf_t *b)
{
    sio_redis_stats_t rs;

    sio_server_redis_stats(n->srv, &rs);
    if (!rs.enabled)
        return;
    sb_printf(b,
              "# HELP sockeye_redis_up 1 while the Redis connection is up.\n"
              "# TYPE sockeye_redis_up gauge\n"
              "sockeye_redis_up{connection=\"command\"} %d\n"
              "sockeye_redis_up{connection=\"subscriber\"} %d\n",
              rs.command_up, rs.subscriber_up);
    sb_printf(b,
              "# HELP sockeye_redis_reconnects_total Times a Redis connection came back.\n"
              "# TYPE sockeye_redis_reconnects_total counter\n"
              "sockeye_redis_reconnects_total %llu\n",
              (unsigned long long)rs.reconnects);
    sb_printf(b,
              "# HELP sockeye_redis_publish_failures_total Broadcasts and requests that could "
              "not reach the other nodes.\n"
              "# TYPE sockeye_redis_publish_failures_total counter\n"
              "sockeye_redis_publish_failures_total %llu\n",
              (unsigned long long)rs.publish_failures);
    sb_printf(b,
              "# HELP sockeye_redis_request_timeouts_total Cluster requests that ended before "
              "every node answered.\n"
              "# TYPE sockeye_redis_request_timeouts_total counter\n"
              "sockeye_redis_request_timeouts_total %llu\n",
              (unsigned long long)rs.request_timeouts);
    sb_printf(b,
              "# HELP sockeye_redis_messages_total Broadcasts published (out) and received "
              "from other nodes (in).\n"
              "# TYPE sockeye_redis_messages_total counter\n"
              "sockeye_redis_messages_total{direction=\"in\"} %llu\n"
              "sockeye_redis_messages_total{direction=\"out\"} %llu\n",
              (unsigned long long)rs.messages_in, (unsigned long long)rs.messages_out);
}

static void route_metrics(node_t *n, sio_http_res_t *res)
{
    strbuf_t b = {0};
    const app_stats_t *st = app_stats(n->app);

    sb_printf(&b,
              "# HELP sockeye_info Build information.\n# TYPE sockeye_info gauge\n"
              "sockeye_info{version=\"%s\"} 1\n",
              SOCKEYE_VERSION);
    sb_printf(&b,
              "# HELP sockeye_clients Connected Engine.IO clients.\n"
              "# TYPE sockeye_clients gauge\nsockeye_clients %zu\n",
              sio_server_client_count(n->srv));
    sb_printf(&b, "# HELP sockeye_sockets Connected Socket.IO sockets per namespace.\n"
                  "# TYPE sockeye_sockets gauge\n");
    for (size_t i = 0; i < app_namespace_count(n->app); i++) {
        sio_namespace_t *nsp = app_namespace(n->app, i);

        sb_printf(&b, "sockeye_sockets{namespace=\"");
        sb_label(&b, sio_nsp_name(nsp));
        sb_printf(&b, "\"} %zu\n", sio_nsp_socket_count(nsp));
    }
    sb_printf(&b,
              "# HELP sockeye_uptime_seconds Seconds since the node started.\n"
              "# TYPE sockeye_uptime_seconds gauge\nsockeye_uptime_seconds %.3f\n",
              (double)(uv_now(n->loop) - n->started_ms) / 1000.0);
    sb_printf(&b, "# HELP sockeye_app_events_total Events handled by the built-in application.\n"
                  "# TYPE sockeye_app_events_total counter\n");
    for (int k = 0; k < APP_KIND_COUNT; k++)
        sb_printf(&b, "sockeye_app_events_total{kind=\"%s\"} %llu\n", app_kind_name(k),
                  (unsigned long long)st->handled[k]);
    sb_printf(&b,
              "# HELP sockeye_app_refused_total Relays and joins refused (not a member, "
              "invalid room).\n# TYPE sockeye_app_refused_total counter\n"
              "sockeye_app_refused_total %llu\n",
              (unsigned long long)st->refused);
    sb_printf(&b,
              "# HELP sockeye_app_unauthorized_total Connections refused for their token.\n"
              "# TYPE sockeye_app_unauthorized_total counter\n"
              "sockeye_app_unauthorized_total %llu\n",
              (unsigned long long)st->unauthorized);
    route_metrics_redis(n, &b);
    sb_printf(&b,
              "# HELP sockeye_draining 1 while the node shuts down.\n"
              "# TYPE sockeye_draining gauge\nsockeye_draining %d\n",
              n->draining);
    res->status = 200;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    res->body = b.s;
    res->body_len = b.len;
}

static void serve_file(const static_file_t *f, sio_http_res_t *res)
{
    if (f->data != NULL)
        res_text(res, 200, f->type, f->data, f->len);
    else
        res_text(res, 404, "text/plain; charset=utf-8", f->missing, strlen(f->missing));
}

static void route_index(node_t *n, sio_http_res_t *res)
{
    serve_file(&n->index, res);
}

static void route_client(node_t *n, sio_http_res_t *res)
{
    serve_file(&n->client, res);
}

/* clang-format off */
static const struct {
    const char *path;
    void (*fn)(node_t *n, sio_http_res_t *res);
} routes[] = {
    {"/healthz", route_healthz},
    {"/metrics", route_metrics},
    {"/", route_index},
    {"/index.html", route_index},
    {"/socket.io.min.js", route_client},
};
/* clang-format on */

static void on_http(const sio_http_req_t *req, sio_http_res_t *res, void *ud)
{
    node_t *n = ud;

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(req->path, routes[i].path) != 0)
            continue;
        if (strcmp(req->method, "GET") != 0) {
            res_text(res, 405, "text/plain; charset=utf-8", "method not allowed\n", 19);
            return;
        }
        routes[i].fn(n, res);
        node_log(APP_LOG_DEBUG, "GET %s -> %d", req->path, res->status);
        return;
    }
    res_text(res, 404, "text/plain; charset=utf-8", "not found\n", 10);
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
    node_log(APP_LOG_INFO, "%s: draining %zu client(s), at most %u ms", strsignal(signum),
             sio_server_client_count(n->srv), n->cfg.drain_timeout_ms);
    uv_timer_start(&n->drain, on_drain_timeout, n->cfg.drain_timeout_ms, 0);
    sio_server_close(n->srv, on_server_closed, n);
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

static void start_listening(node_t *n)
{
    static const int signums[2] = {SIGTERM, SIGINT};
    int rc = sio_server_listen(n->srv);

    if (rc != SIO_OK) {
        node_log(APP_LOG_ERROR, "cannot listen on %s:%d: %s", n->cfg.srv.host, n->cfg.srv.port,
                 sio_strerror(rc));
        n->exit_code = 1;
        sio_server_close(n->srv, on_server_closed, n);
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
    char err[512];
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
    n->started_ms = uv_now(n->loop);
    n->srv = sio_server_new(n->loop, &n->cfg.srv);
    if (n->srv == NULL) {
        fprintf(stderr, "%s: the server refused this configuration\nTry '%s --help'.\n", prog,
                prog);
        app_jwt_free(n->jwt);
        app_node_config_free(&n->cfg);
        uv_loop_close(n->loop);
        return EXIT_BAD_CONFIG;
    }
    load_static_files(n);
    sio_server_on_http(n->srv, on_http, n);
    for (size_t i = 0; i < 2; i++) {
        uv_signal_init(n->loop, &n->sig[i]);
        n->sig[i].data = n;
    }
    uv_timer_init(n->loop, &n->drain);
    n->drain.data = n;

    rc = install_app(n);
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
    app_free(n->app);
    app_jwt_free(n->jwt);
    file_free(&n->index);
    file_free(&n->client);
    app_node_config_free(&n->cfg);
    if (uv_loop_close(n->loop) != 0) {
        uv_walk(n->loop, on_walk, NULL);
        node_log(APP_LOG_ERROR, "event loop not empty at exit");
        return 1;
    }
    return n->exit_code;
}
