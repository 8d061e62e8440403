/* test_routes.c -- the plain HTTP routes of the node (node/program/routes.c): health
 * while running and draining, methods, unknown paths, files served from memory and the
 * explanation of a missing one, the metrics page's headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "app.h"
#include "routes.h"
#include "sockeye.h"

typedef struct fx {
    char dir[64]; /* www/ and the "exe dir" in one scratch directory */
    sio_server_t *srv;
    app_t *app;
    app_routes_t r;
} fx_t;

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    app_config_t ac = {.echo_event = "echo"};

    snprintf(f->dir, sizeof(f->dir), "/tmp/sockeye-routes.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->srv = sio_server_new(uv_default_loop(), NULL);
    f->app = app_new(&ac);
    app_install(f->app, sio_server_of(f->srv, "/"));
    f->r.srv = f->srv;
    f->r.app = f->app;
    f->r.loop = uv_default_loop();
    f->r.started_ms = uv_now(uv_default_loop());
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    char path[256];

    app_routes_free(&f->r);
    sio_server_free(f->srv);
    app_free(f->app);
    snprintf(path, sizeof(path), "%s/index.html", f->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/socket.io.min.js", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Answers one request; the body is kept in res (free it with free_res). */
static void get(fx_t *f, const char *method, const char *path, sio_http_res_t *res)
{
    sio_http_req_t req = {.method = method, .path = path, .query = ""};
    memset(res, 0, sizeof(*res));
    app_routes_http(&req, res, &f->r);
}

static void free_res(sio_http_res_t *res)
{
    free(res->body);
    res->body = NULL;
}

static void test_health_methods_and_unknown_paths(void **state)
{
    fx_t *f = *state;
    sio_http_res_t res;

    app_routes_load(&f->r, f->dir, f->dir, f->dir);
    get(f, "GET", "/healthz", &res);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body, "ok\n");
    free_res(&res);
    f->r.draining = 1; /* a load balancer stops sending new clients */
    get(f, "GET", "/healthz", &res);
    assert_int_equal(res.status, 503);
    assert_string_equal(res.body, "draining\n");
    free_res(&res);
    get(f, "POST", "/healthz", &res);
    assert_int_equal(res.status, 405);
    free_res(&res);
    get(f, "GET", "/nope", &res);
    assert_int_equal(res.status, 404);
    assert_string_equal(res.body, "not found\n");
    free_res(&res);
    get(f, "GET", "/metrics", &res);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(res.body, "\nsockeye_draining 1\n"));
    assert_int_equal(res.body_len, strlen(res.body));
    free_res(&res);
}

static void test_files_from_memory(void **state)
{
    fx_t *f = *state;
    sio_http_res_t res;

    write_file(f->dir, "index.html", "<p>chat</p>");
    write_file(f->dir, "socket.io.min.js", "/*io*/");
    app_routes_load(&f->r, f->dir, f->dir, "/nonexistent");
    /* read once: a change on disk afterwards is not seen */
    write_file(f->dir, "index.html", "<p>changed</p>");
    get(f, "GET", "/", &res);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.content_type, "text/html; charset=utf-8");
    assert_string_equal(res.body, "<p>chat</p>");
    free_res(&res);
    get(f, "GET", "/index.html", &res);
    assert_int_equal(res.status, 200);
    free_res(&res);
    get(f, "GET", "/socket.io.min.js", &res);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.content_type, "application/javascript; charset=utf-8");
    assert_string_equal(res.body, "/*io*/");
    free_res(&res);
}

static void test_a_missing_file_says_why(void **state)
{
    fx_t *f = *state;
    sio_http_res_t res;
    char www[128];

    snprintf(www, sizeof(www), "%s/nowhere", f->dir);
    app_routes_load(&f->r, www, f->dir, "/nonexistent");
    get(f, "GET", "/", &res);
    assert_int_equal(res.status, 404);
    assert_non_null(strstr(res.body, "index.html is missing: check --www-dir"));
    free_res(&res);
    get(f, "GET", "/socket.io.min.js", &res);
    assert_int_equal(res.status, 404);
    assert_non_null(strstr(res.body, "run `npm ci` in tests/ and rebuild"));
    free_res(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_methods_and_unknown_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_from_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_file_says_why, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
