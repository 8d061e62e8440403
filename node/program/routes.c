/* routes.c -- the plain HTTP routes of the node (routes.h). */
#include "routes.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base_alloc.h"
#include "config.h"
#include "metrics.h"

/* ---------------------------------------------------------------- static files */

static void app__file_load(app_routes_t *r, app_static_file_t *f, const char *path,
                           const char *type, const char *hint)
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
        app_text_t b = {0};

        app_text_printf(&b, "%s is missing: %s\n", path, hint);
        f->missing = b.s;
        if (r->log != NULL)
            r->log(APP_LOG_WARN, "%s is missing: %s", path, hint);
    }
}

static void app__file_free(app_static_file_t *f)
{
    base_free(f->data);
    base_free(f->missing);
}

static int app__file_exists(const char *path)
{
    return access(path, R_OK) == 0;
}

/* See routes.h. */
void app_routes_load(app_routes_t *r, const char *www_dir, const char *exe_dir,
                     const char *built_www)
{
    char path[4200];

    if (www_dir != NULL && www_dir[0] != '\0') {
        snprintf(path, sizeof(path), "%s/index.html", www_dir);
    } else {
        /* An installed tree keeps www/ beside the binary; a build tree uses the source. */
        snprintf(path, sizeof(path), "%s/www/index.html", exe_dir);
        if (!app__file_exists(path))
            snprintf(path, sizeof(path), "%s/index.html", built_www);
    }
    app__file_load(r, &r->index, path, "text/html; charset=utf-8", "check --www-dir");

    snprintf(path, sizeof(path), "%s/socket.io.min.js", exe_dir);
    app__file_load(r, &r->client, path, "application/javascript; charset=utf-8",
                   "the build copies it from tests/node_modules/socket.io-client; run `npm ci` in "
                   "tests/ and rebuild");
}

void app_routes_free(app_routes_t *r)
{
    app__file_free(&r->index);
    app__file_free(&r->client);
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

static void route_healthz(app_routes_t *r, sio_http_res_t *res)
{
    /* A draining node says so, so a load balancer stops sending it new clients. */
    if (r->draining)
        res_text(res, 503, "text/plain; charset=utf-8", "draining\n", 9);
    else
        res_text(res, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

static void route_metrics(app_routes_t *r, sio_http_res_t *res)
{
    app_text_t b = {0};
    app_metrics_src_t m = {
        .srv = r->srv,
        .app = r->app,
        .queues = r->queues,
        .uptime_s = (double)(uv_now(r->loop) - r->started_ms) / 1000.0,
        .draining = r->draining,
    };

    app_metrics_render(&m, &b);
    res->status = 200;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    res->body = b.s;
    res->body_len = b.len;
}

static void serve_file(const app_static_file_t *f, sio_http_res_t *res)
{
    if (f->data != NULL)
        res_text(res, 200, f->type, f->data, f->len);
    else
        res_text(res, 404, "text/plain; charset=utf-8", f->missing, strlen(f->missing));
}

static void route_index(app_routes_t *r, sio_http_res_t *res)
{
    serve_file(&r->index, res);
}

static void route_client(app_routes_t *r, sio_http_res_t *res)
{
    serve_file(&r->client, res);
}

/* clang-format off */
static const struct {
    const char *path;
    void (*fn)(app_routes_t *r, sio_http_res_t *res);
} routes[] = {
    {"/healthz", route_healthz},
    {"/metrics", route_metrics},
    {"/", route_index},
    {"/index.html", route_index},
    {"/socket.io.min.js", route_client},
};
/* clang-format on */

/* See routes.h. */
void app_routes_http(const sio_http_req_t *req, sio_http_res_t *res, void *ud)
{
    app_routes_t *r = ud;

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(req->path, routes[i].path) != 0)
            continue;
        if (strcmp(req->method, "GET") != 0) {
            res_text(res, 405, "text/plain; charset=utf-8", "method not allowed\n", 19);
            return;
        }
        routes[i].fn(r, res);
        if (r->log != NULL)
            r->log(APP_LOG_DEBUG, "GET %s -> %d", req->path, res->status);
        return;
    }
    res_text(res, 404, "text/plain; charset=utf-8", "not found\n", 10);
}
