/* conformance.c -- the server the official Socket.IO v5 test suite assumes
 * (socket.io docs/socket.io-protocol/v5-test-suite; spec 5.2).
 *
 *   example-conformance [--host ADDR] [--port N]      (default port 3000)
 *
 * Path /socket.io/, pingInterval 300, pingTimeout 200, maxPayload 1e6, connect
 * timeout 1000, CORS "*", connection state recovery off (the CONNECT reply must
 * carry exactly "sid"). Namespace "/": emits "auth" with the handshake auth on
 * connection, answers "message" with "message-back" (same args, binary included)
 * and acks "message-with-ack" with the same args. Namespace "/custom": emits "auth".
 * Prints "listening on HOST:PORT" once bound; exits cleanly on SIGTERM/SIGINT.
 *
 * Shows: the smallest server that passes the official protocol suite (sockeye.h only).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockeye.h"

/* One per process. */
typedef struct app {
    uv_loop_t *loop;
    sio_server_t *srv;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    int stopping;
} app_t;

static void on_message(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                       size_t nbins, sio_ack_t *ack, void *ud)
{
    sio_socket_emit(s, "message-back", cJSON_Duplicate(args, 1), bins, nbins);
}

static void on_message_with_ack(sio_socket_t *s, const char *event, const cJSON *args,
                                const sio_bin_t *bins, size_t nbins, sio_ack_t *ack, void *ud)
{
    if (ack != NULL)
        sio_ack(ack, cJSON_Duplicate(args, 1), bins, nbins);
}

static void emit_auth(sio_socket_t *s)
{
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_Duplicate(sio_socket_auth(s), 1));
    sio_socket_emit(s, "auth", args, NULL, 0);
}

static void on_main_connection(sio_socket_t *s, void *ud)
{
    emit_auth(s);
    sio_socket_on(s, "message", on_message, ud);
    sio_socket_on(s, "message-with-ack", on_message_with_ack, ud);
}

static void on_custom_connection(sio_socket_t *s, void *ud)
{
    emit_auth(s);
}

static void on_server_closed(void *arg)
{
    app_t *app = arg;
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    app_t *app = h->data;
    if (app->stopping)
        return;
    app->stopping = 1;
    sio_server_close(app->srv, on_server_closed, app);
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--host ADDR] [--port N]\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    sio_config_t cfg;
    app_t app = {0};
    int rc = 0;

    sio_config_init(&cfg);
    cfg.port = 3000;
    cfg.path = "/socket.io/";
    cfg.ping_interval_ms = 300;
    cfg.ping_timeout_ms = 200;
    cfg.max_payload = 1000000;
    cfg.connect_timeout_ms = 1000;
    cfg.cors_origins = "*";
    cfg.recovery = 0;
    cfg.per_message_deflate = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            cfg.host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            long p = strtol(argv[++i], &end, 10);
            if (*end != '\0' || p < 0 || p > 65535)
                return usage(argv[0]);
            cfg.port = (int)p;
        } else {
            return usage(argv[0]);
        }
    }

    app.loop = uv_default_loop();
    app.srv = sio_server_new(app.loop, &cfg);
    if (app.srv == NULL) {
        fprintf(stderr, "conformance: bad configuration\n");
        return 1;
    }
    sio_nsp_on_connection(sio_server_of(app.srv, "/"), on_main_connection, &app);
    sio_nsp_on_connection(sio_server_of(app.srv, "/custom"), on_custom_connection, &app);
    if (sio_server_listen(app.srv) != SIO_OK) {
        fprintf(stderr, "conformance: cannot listen on %s:%d\n", cfg.host, cfg.port);
        app.stopping = 1;
        sio_server_close(app.srv, NULL, NULL);
        uv_run(app.loop, UV_RUN_DEFAULT);
        sio_server_free(app.srv);
        uv_loop_close(app.loop);
        return 1;
    }
    uv_signal_init(app.loop, &app.sigterm);
    uv_signal_init(app.loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);

    printf("listening on %s:%d\n", cfg.host, sio_server_port(app.srv));
    fflush(stdout);

    uv_run(app.loop, UV_RUN_DEFAULT);
    sio_server_free(app.srv);
    if (uv_loop_close(app.loop) != 0) {
        fprintf(stderr, "conformance: handles left open at exit\n");
        rc = 1;
    }
    return rc;
}
