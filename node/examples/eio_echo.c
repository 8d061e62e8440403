/* eio_echo.c -- an engine-only echo server: what the official Engine.IO v4 test
 * suite (socketio/socket.io docs/engine.io-protocol/v4-test-suite) expects.
 *
 * Path /engine.io/, pingInterval 300, pingTimeout 200, maxPayload 1000000, CORS "*";
 * every message (text or binary) goes back unchanged on its session.
 *
 *   example-eio_echo [--host 127.0.0.1] [--port 3000] [--deflate] [--max-queue N]
 *                    [--max-queue-bytes N] [--cors ORIGINS] [--cors-credentials]
 *                    [--upgrade-timeout MS] [--test-hooks]
 *
 * Prints "listening on HOST:PORT" once bound (--port 0 picks a free port) and exits
 * 0 on SIGINT/SIGTERM after closing every handle (uv_loop_close must succeed).
 *
 * --test-hooks (tests/conformance/engine.test.js) turns text messages starting with
 * "__" into commands instead of echoing them, to reach engine features an echo never
 * uses: "__close:T" sends T then closes the session from the server side,
 * "__volatile:T" sends T as a volatile packet, "__nocompress:T" sends T with
 * EIO_SEND_NOCOMPRESS, "__flood:N" sends N packets at once,
 * "__info" answers the handshake facts as JSON; GET /healthz outside the engine
 * path answers "ok" (the on_http hook). On exit it prints the number of sessions
 * opened and closed ("sessions opened=N closed=M") on stderr.
 *
 * Shows: the engine alone (eio.h, the engine layer's public header): sessions, whole
 * messages and closes, without Socket.IO on top.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base_alloc.h"
#include "eio.h"

static eio_server_t *srv;
static uv_signal_t sigs[2];
static int hooks;
static unsigned long n_opened, n_closed;

static int send_text(eio_session_t *s, const char *text, size_t len, unsigned flags)
{
    base_frame_t *f = base_frame_new(len + 1, 0);
    int rc;

    base_frame_data(f)[0] = '4';
    memcpy(base_frame_data(f) + 1, text, len);
    rc = eio_session_send(s, f, flags);
    base_frame_unref(f);
    return rc;
}

static int starts(const char *data, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(data, prefix, n) == 0;
}

static void on_hook(eio_session_t *s, const char *data, size_t len)
{
    if (starts(data, len, "__close:")) {
        send_text(s, data + 8, len - 8, 0);
        eio_session_close(s, "forced close");
    } else if (starts(data, len, "__nocompress:")) {
        send_text(s, data + 13, len - 13, EIO_SEND_NOCOMPRESS);
    } else if (starts(data, len, "__volatile:")) {
        send_text(s, data + 11, len - 11, EIO_SEND_VOLATILE);
    } else if (starts(data, len, "__flood:")) {
        char num[16] = {0}; /* data is not NUL-terminated */
        memcpy(num, data + 8, len - 8 < sizeof(num) - 1 ? len - 8 : sizeof(num) - 1);
        long n = strtol(num, NULL, 10);
        for (long i = 0; i < n && send_text(s, "x", 1, 0) == SIO_OK; i++)
            ;
    } else if (starts(data, len, "__info")) {
        cJSON *o = cJSON_CreateObject();
        char *js;
        cJSON_AddStringToObject(o, "id", eio_session_id(s));
        cJSON_AddStringToObject(o, "transport", eio_session_transport(s));
        cJSON_AddStringToObject(o, "address", eio_session_address(s));
        cJSON_AddStringToObject(o, "url", eio_session_url(s));
        cJSON_AddStringToObject(o, "query", eio_session_query(s));
        /* the decoded query, in order: [[key, value], ...] */
        cJSON *pairs = cJSON_AddArrayToObject(o, "queryPairs");
        const char *k, *v;
        size_t it = 0;
        while (eio_session_query_next(s, &it, &k, &v)) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateString(k));
            cJSON_AddItemToArray(pair, cJSON_CreateString(v));
            cJSON_AddItemToArray(pairs, pair);
        }
        cJSON_AddItemToObject(o, "headers", cJSON_Duplicate(eio_session_headers(s), 1));
        cJSON_AddNumberToObject(o, "sessions", (double)eio_server_session_count(srv));
        js = cJSON_PrintUnformatted(o);
        send_text(s, js, strlen(js), 0);
        cJSON_free(js);
        cJSON_Delete(o);
    }
}

static void on_http(const eio_http_req_t *req, eio_http_res_t *res, void *ud)
{
    if (strcmp(req->method, "GET") == 0 && strcmp(req->path, "/healthz") == 0) {
        res->status = 200;
        res->content_type = "text/plain";
        res->body = base_malloc(2);
        memcpy(res->body, "ok", 2);
        res->body_len = 2;
    }
}

static void on_open(void *ud, eio_session_t *s)
{
    n_opened++;
}

static void on_close(void *ud, eio_session_t *s, const char *reason)
{
    n_closed++;
}

static void on_message(void *ud, eio_session_t *s, const char *data, size_t len, int binary)
{
    base_frame_t *f;

    if (!binary) {
        if (hooks && starts(data, len, "__"))
            on_hook(s, data, len);
        else
            send_text(s, data, len, 0);
        return;
    }
    f = base_frame_from(data, len, 1);
    eio_session_send(s, f, 0);
    base_frame_unref(f);
}

static void on_closed(void *arg)
{
    (void)arg; /* the loop ends by itself: nothing of ours is left on it */
}

static void on_signal(uv_signal_t *h, int signum)
{
    for (int i = 0; i < 2; i++) {
        uv_signal_stop(&sigs[i]);
        uv_close((uv_handle_t *)&sigs[i], NULL);
    }
    eio_server_close(srv, on_closed, NULL);
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--host ADDR] [--port N] [--deflate] [--max-queue N]\n"
            "          [--max-queue-bytes N] [--cors ORIGINS]\n"
            "          [--cors-credentials] [--upgrade-timeout MS] [--test-hooks]\n",
            argv0);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *cors = "*";
    int port = 3000, deflate = 0, cors_credentials = 0, rc;
    long max_queue = 10000, upgrade_timeout = 10000, max_queue_bytes = 16L << 20;
    uv_loop_t loop;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 0 || v > 65535) {
                usage(argv[0]);
                return 2;
            }
            port = (int)v;
        } else if (strcmp(argv[i], "--deflate") == 0) {
            deflate = 1;
        } else if (strcmp(argv[i], "--test-hooks") == 0) {
            hooks = 1;
        } else if (strcmp(argv[i], "--cors") == 0 && i + 1 < argc) {
            cors = argv[++i];
        } else if (strcmp(argv[i], "--cors-credentials") == 0) {
            cors_credentials = 1;
        } else if (strcmp(argv[i], "--upgrade-timeout") == 0 && i + 1 < argc) {
            upgrade_timeout = strtol(argv[++i], NULL, 10);
            if (upgrade_timeout <= 0) {
                usage(argv[0]);
                return 2;
            }
        } else if (strcmp(argv[i], "--max-queue-bytes") == 0 && i + 1 < argc) {
            max_queue_bytes = strtol(argv[++i], NULL, 10);
            if (max_queue_bytes <= 0) {
                usage(argv[0]);
                return 2;
            }
        } else if (strcmp(argv[i], "--max-queue") == 0 && i + 1 < argc) {
            max_queue = strtol(argv[++i], NULL, 10);
            if (max_queue <= 0) {
                usage(argv[0]);
                return 2;
            }
        } else {
            usage(argv[0]);
            return 2;
        }
    }

    eio_config_t cfg = {
        .host = host,
        .port = port,
        .path = "/engine.io/",
        .ping_interval_ms = 300,
        .ping_timeout_ms = 200,
        .upgrade_timeout_ms = (unsigned)upgrade_timeout,
        .max_payload = 1000000,
        .transports = EIO_TRANSPORT_POLLING | EIO_TRANSPORT_WEBSOCKET,
        .allow_upgrades = 1,
        .cors_origins = cors,
        .cors_credentials = cors_credentials,
        .per_message_deflate = deflate,
        .max_queue = (size_t)max_queue,
        .max_queue_bytes = (size_t)max_queue_bytes,
    };
    eio_callbacks_t cb = {.on_open = on_open, .on_message = on_message, .on_close = on_close};

    if (hooks)
        cb.on_http = on_http;

    uv_loop_init(&loop);
    srv = eio_server_new(&loop, &cfg, &cb);
    if (srv == NULL || eio_server_listen(srv) != SIO_OK) {
        fprintf(stderr, "eio_echo: cannot listen on %s:%d\n", host, port);
        if (srv != NULL) {
            eio_server_close(srv, on_closed, NULL);
            uv_run(&loop, UV_RUN_DEFAULT);
            eio_server_free(srv);
        }
        uv_loop_close(&loop);
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&loop, &sigs[i]);
        uv_signal_start(&sigs[i], on_signal, i == 0 ? SIGINT : SIGTERM);
    }
    printf("listening on %s:%d\n", host, eio_server_port(srv));
    fflush(stdout);

    uv_run(&loop, UV_RUN_DEFAULT);
    eio_server_free(srv);
    if (hooks)
        fprintf(stderr, "sessions opened=%lu closed=%lu\n", n_opened, n_closed);
    rc = uv_loop_close(&loop);
    if (rc != 0) {
        fprintf(stderr, "eio_echo: uv_loop_close: %s\n", uv_strerror(rc));
        return 1;
    }
    return 0;
}
