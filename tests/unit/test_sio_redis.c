/* test_sio_redis.c -- node/embed/sio_redis.c: a server becomes a node of a Redis cluster
 * through the opt-in API (sockeye_redis.h), against a real redis-server: the URL check,
 * the first outcome, the adapter provider it installs (the registry learns the listening
 * address, the close removes the record), refusals, and a Redis that is not there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "sockeye.h"
#include "sockeye_redis.h"

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t deadline;
    int expired;
    char dir[64];
    int port;
    pid_t pid;
    sio_server_t *srv;
    int outcomes; /* sio_redis_cb calls */
    int err;
    char reason[256];
    int closed;
} fx_t;

#include "redis_fixture.h"

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    sio_config_t cfg;

    rt_fixture_init(f, "sioredis");
    sio_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    f->srv = sio_server_new(&f->loop, &cfg);
    assert_non_null(f->srv);
    *state = f;
    return 0;
}

static void on_closed(void *arg)
{
    ((fx_t *)arg)->closed = 1;
}

static int teardown(void **state)
{
    fx_t *f = *state;

    sio_server_close(f->srv, on_closed, f);
    RT_WAIT_FOR(f, f->closed, 5000);
    sio_server_free(f->srv);
    rt_redis_kill(&f->pid);
    uv_close((uv_handle_t *)&f->deadline, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    rt_rm_dir(f->dir);
    free(f);
    return 0;
}

static void on_redis(sio_server_t *srv, int err, const char *reason, void *ud)
{
    fx_t *f = ud;

    f->outcomes++;
    f->err = err;
    snprintf(f->reason, sizeof(f->reason), "%s", reason != NULL ? reason : "");
}

static void quiet(void *ud, int level, const char *msg)
{
}

static int use_redis(fx_t *f, const char *url)
{
    sio_redis_config_t rc;

    sio_redis_config_init(&rc);
    rc.url = url;
    rc.request_timeout_ms = 500;
    rc.on_log = quiet;
    return sio_server_use_redis(f->srv, &rc, on_redis, f);
}

/* HGET P:node:<uid> field, through a connection of the test's own. */
static int registry_field(fx_t *f, const char *uid, const char *field, char *out, size_t len)
{
    redisContext *c = redisConnect("127.0.0.1", f->port);
    int found = 0;

    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *r = redisCommand(c, "HGET sockeye:node:%s %s", uid, field);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_STRING) {
        snprintf(out, len, "%s", r->str);
        found = 1;
    }
    freeReplyObject(r);
    redisFree(c);
    return found;
}

static void test_url_check(void **state)
{
    char err[128] = "";

    assert_int_equal(sio_redis_url_check("redis://127.0.0.1:6379/2", err, sizeof(err)), SIO_OK);
    assert_int_equal(sio_redis_url_check("unix:///tmp/r.sock?db=1", err, sizeof(err)), SIO_OK);
    assert_int_equal(sio_redis_url_check("http://x", err, sizeof(err)), SIO_EINVAL);
    assert_true(err[0] != '\0'); /* a reason for the operator */
}

static void test_a_node_of_the_cluster(void **state)
{
    fx_t *f = *state;
    sio_redis_stats_t st;
    char url[64], addr[64], uid[8];

    RT_REQUIRE_REDIS();
    sio_server_redis_stats(f->srv, &st);
    assert_int_equal(st.enabled, 0);
    assert_string_equal(st.uid, "");

    rt_redis_start(f);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->port);
    assert_int_equal(use_redis(f, url), SIO_OK);
    RT_WAIT_FOR(f, f->outcomes == 1, 5000);
    assert_int_equal(f->err, SIO_OK);
    /* once is enough: a second call is refused and its callback never runs */
    assert_int_equal(use_redis(f, url), SIO_EINVAL);

    sio_server_redis_stats(f->srv, &st);
    assert_int_equal(st.enabled, 1);
    assert_int_equal(st.up, 1);
    assert_int_equal(strlen(st.uid), 6);
    snprintf(uid, sizeof(uid), "%s", st.uid);

    /* the provider hears the address the server listens on, and writes it to the registry */
    assert_int_equal(sio_server_listen(f->srv), SIO_OK);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%d", sio_server_port(f->srv));
    RT_WAIT_FOR(f, registry_field(f, uid, "address", addr, sizeof(addr)) && strcmp(addr, want) == 0,
                8000);

    /* the close reaches the node after the clients: its record goes */
    sio_server_close(f->srv, on_closed, f);
    RT_WAIT_FOR(f, f->closed, 5000);
    assert_int_equal(registry_field(f, uid, "address", addr, sizeof(addr)), 0);
    assert_int_equal(f->outcomes, 1);
}

static void test_refusals(void **state)
{
    fx_t *f = *state;

    assert_int_equal(use_redis(f, "nope://x"), SIO_EINVAL);
    assert_int_equal(sio_server_use_redis(NULL, NULL, NULL, NULL), SIO_EINVAL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->outcomes, 0);
    /* still a working single node: its adapter is the memory one */
    sio_redis_stats_t st;
    sio_server_redis_stats(f->srv, &st);
    assert_int_equal(st.enabled, 0);
}

static void test_redis_not_there(void **state)
{
    fx_t *f = *state;
    char url[64];

    /* nothing listens on the fixture's port: the first outcome is an error with a reason,
     * and the server closes cleanly while the node keeps retrying */
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->port);
    assert_int_equal(use_redis(f, url), SIO_OK);
    RT_WAIT_FOR(f, f->outcomes == 1, 8000);
    assert_int_equal(f->err, SIO_EREDIS);
    assert_true(f->reason[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_check),
        cmocka_unit_test_setup_teardown(test_a_node_of_the_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_not_there, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
