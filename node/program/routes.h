/* routes.h -- the plain HTTP routes of the `sockeye` node: /healthz, /metrics, the chat
 * page and the client bundle it loads.
 *
 * Everything is answered from memory: the files are read once at start-up, so a request
 * never blocks the loop on the disk, and a missing file is explained in its 404 body
 * (and in a warning at start-up) instead of a bare "not found".
 */
#ifndef APP_ROUTES_H
#define APP_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "app.h"
#include "sockeye.h"

/* A file served from memory. */
typedef struct app_static_file {
    char *data; /* NULL when it could not be read */
    size_t len;
    const char *type; /* Content-Type */
    char *missing;    /* the 404 body explaining why it is absent */
} app_static_file_t;

/* One per node. The program fills the first fields, app_routes_load the files. */
typedef struct app_routes {
    sio_server_t *srv;
    const app_t *app;
    const sio_queues_t *queues; /* NULL = no queue metrics */
    uv_loop_t *loop;
    uint64_t started_ms; /* uv_now at start-up: the uptime metric */
    int draining;        /* set when the node drains: /healthz answers 503 */
    /* Log sink (levels as APP_LOG_*); NULL logs nothing. */
    void (*log)(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    app_static_file_t index;  /* GET / and /index.html */
    app_static_file_t client; /* GET /socket.io.min.js */
} app_routes_t;

/* Reads index.html from www_dir (NULL or "": www/ beside exe_dir when it exists, else
 * built_www) and socket.io.min.js from exe_dir, where the build copies it. */
void app_routes_load(app_routes_t *r, const char *www_dir, const char *exe_dir,
                     const char *built_www);
void app_routes_free(app_routes_t *r);

/* The sio_http_cb of the node (ud = the routes): GET only (405 otherwise), 404 for any
 * other path. */
void app_routes_http(const sio_http_req_t *req, sio_http_res_t *res, void *ud);

#endif
