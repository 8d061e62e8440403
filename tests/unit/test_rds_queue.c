/* test_rds_queue.c -- adapter/redis/rds_queue.c and the sockeye_q* functions of
 * adapter/redis/sockeye.lua, against a real redis-server: the contract every store passes
 * (queue_contract.h), then what only this store has: its keys (read with a plain hiredis
 * connection), the function library loaded without recovery, retention by the trim pass,
 * and Redis going away and coming back.
 *
 * Each test starts its own redis-server on a free loopback port (skipped when
 * redis-server is not on PATH), a node with recovery off, and stops the server by PID.
 * The store's sweep margin and trim period are 100 ms (rds_queue_set_timing). Every wait
 * is bounded; each test ends with every handle closed and uv_loop_close() == 0.
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
#include <signal.h>

#include "queue_contract.h"
#include "rds_node.h"
#include "rds_queue.h"

#define MARGIN_MS 100 /* the store's sweep margin and trim period in these tests */

static void quiet_log(void *ud, int level, const char *msg)
{
    if (getenv("QUEUE_TEST_VERBOSE") != NULL)
        print_message("node log %d: %s\n", level, msg);
}

static adp_qstore_t *make_rds(fx_t *f, const adp_qconfig_t *cfg)
{
    adp_qevents_t ev = qf_events(f);
    adp_qstore_t *qs = rds_queue_new(f->node, cfg, &ev);

    rds_queue_set_timing(qs, MARGIN_MS, MARGIN_MS);
    return qs;
}

/* ready() comes through the node's subscriber, on its own connection: the wake-ups of a
 * subscription (each one brings one) and of the publishes before this call arrive within
 * this on loopback. One that came later could only make a wait for a ready() end early,
 * never make a check fail. */
static void settle_rds(fx_t *f)
{
    rt_run_for(f, 100);
}

typedef struct started {
    int done, err;
} started_t;

static void start_cb(void *ud, int err, const char *reason)
{
    started_t *s = ud;
    s->done = 1;
    s->err = err;
}

/* A node on f's server with recovery off (the queues alone must load the library). */
static rds_node_t *node_new(fx_t *f)
{
    char url[64], err[128];
    rds_url_t u = {0};

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->port);
    assert_int_equal(rds_url_parse(&u, url, err, sizeof(err)), SIO_OK);
    rds_node_config_t cfg = {
        .url = &u,
        .key_prefix = "sockeye",
        .channel_prefix = "socket.io",
        .request_timeout_ms = 1000,
        .on_log = quiet_log,
    };
    rds_node_t *r = rds_node_new(&f->loop, &cfg);
    rds_url_free(&u);
    assert_non_null(r);
    return r;
}

static void node_start(fx_t *f)
{
    started_t s = {0};

    assert_int_equal(rds_node_start(f->node, start_cb, &s), SIO_OK);
    RT_WAIT_FOR(f, s.done, 5000);
    assert_int_equal(s.err, SIO_OK);
}

static void closed_cb(void *ud)
{
    (*(int *)ud)++;
}

static int setup(void **state)
{
    fx_t *f = base_calloc(1, sizeof(*f));

    rt_fixture_init(f, "rds-queue");
    f->make = make_rds;
    f->settle = settle_rds;
    *state = f;
    if (!rt_redis_on_path())
        return 0; /* each test skips */
    rt_redis_start(f);
    f->node = node_new(f);
    node_start(f);
    return 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int closed = 0;

    qf_destroy_store(f); /* before the node closes (rds_queue.h) */
    if (f->node != NULL) {
        rds_node_close(f->node, closed_cb, &closed);
        RT_WAIT_FOR(f, closed == 1, 5000);
        rds_node_free(f->node);
    }
    rt_redis_kill(&f->pid);
    uv_close((uv_handle_t *)&f->deadline, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&f->loop) != 0) {
        uv_walk(&f->loop, walk_close, NULL);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        fail_msg("handles left open at the end of the test");
    }
    rt_rm_dir(f->dir);
    base_free(f);
    return 0;
}

/* ------------------------------------------------------------------ plain hiredis */

static redisContext *sync_connect(fx_t *f)
{
    redisContext *c = redisConnect("127.0.0.1", f->port);
    struct timeval tv = {.tv_sec = 2};

    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisSetTimeout(c, tv);
    return c;
}

/* An integer reply of a command (hiredis format) that must give one. */
static long long sync_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    long long v;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("%s: not an integer (%s)", fmt, r->type == REDIS_REPLY_ERROR ? r->str : "?");
    v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Messages group holds in stream (XPENDING's summary count). */
static long long sync_pending(redisContext *c, const char *stream, const char *group)
{
    redisReply *r = redisCommand(c, "XPENDING %s %s", stream, group);
    long long n;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_true(r->elements >= 1);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_INTEGER);
    n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* 1 when FUNCTION LIST has the sockeye library with its queue functions. */
static int sync_has_library(redisContext *c)
{
    redisReply *r = redisCommand(c, "FUNCTION LIST LIBRARYNAME sockeye");
    int found = 0;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements && !found; i++) {
        const redisReply *lib = r->element[i];
        for (size_t j = 0; j + 1 < lib->elements; j += 2) {
            const redisReply *k = lib->element[j], *v = lib->element[j + 1];
            if (strcmp(k->str, "functions") != 0 || v->type != REDIS_REPLY_ARRAY)
                continue;
            for (size_t n = 0; n < v->elements; n++) {
                const redisReply *fn = v->element[n];
                for (size_t m = 0; m + 1 < fn->elements; m += 2) {
                    if (strcmp(fn->element[m]->str, "name") == 0 &&
                        strcmp(fn->element[m + 1]->str, "sockeye_qtake") == 0)
                        found = 1;
                }
            }
        }
    }
    freeReplyObject(r);
    return found;
}

/* ------------------------------------------------------------------ the contract */

#define CONTRACT(name, call)                                                                       \
    static void test_##name(void **state)                                                          \
    {                                                                                              \
        RT_REQUIRE_REDIS();                                                                        \
        call;                                                                                      \
    }

CONTRACT(push_take_order, qc_push_take_order(*state))
CONTRACT(group_starts_at_oldest, qc_group_starts_at_oldest(*state))
CONTRACT(take_spreads, qc_take_spreads(*state))
CONTRACT(ack, qc_ack(*state))
CONTRACT(release, qc_release(*state))
CONTRACT(release_all, qc_release_all(*state))
CONTRACT(adopt, qc_adopt(*state))
CONTRACT(max_length, qc_max_length(*state))
CONTRACT(max_age, qc_max_age(*state))
CONTRACT(payloads, qc_payloads(*state))
CONTRACT(max_payload, qc_max_payload(*state))
CONTRACT(bad_names, qc_bad_names(*state))
CONTRACT(ready, qc_ready(*state))
/* ack_timeout_ms 100 + MARGIN_MS: min-idle 200 ms, swept every 100 ms; 500 ms quiet is
 * more than two sweeps' worth. */
CONTRACT(sweep, qc_sweep(*state, 100, 500))
CONTRACT(destroy_in_flight, qc_destroy_in_flight(*state))

/* ------------------------------------------------------------------ this store only */

/* The dead letter lives in "<prefix>:{q:jobs}:jobs.dead": the hash tag of its queue, so
 * that one FCALL may move it in a Redis Cluster; the message left the queue's pending
 * set. */
static void test_adopt_dead_letter(void **state)
{
    RT_REQUIRE_REDIS();
    qc_adopt_dead_letter(*state);
}

static void test_dead_letter(void **state)
{
    fx_t *f = *state;

    RT_REQUIRE_REDIS();
    qc_dead_letter(f);
    redisContext *c = sync_connect(f);
    assert_int_equal(sync_int(c, "XLEN sockeye:{q:jobs}:jobs.dead"), 1);
    assert_int_equal(sync_int(c, "EXISTS sockeye:{q:jobs.dead}:jobs.dead"), 0);
    assert_int_equal(sync_pending(c, "sockeye:{q:jobs}:jobs", "g"), 0);
    assert_int_equal(sync_pending(c, "sockeye:{q:jobs}:jobs.dead", "g"), 1);
    redisFree(c);
}

/* A queue is the stream "<prefix>:{q:<queue>}:<queue>", a group its consumer group; what a
 * take hands out is pending there, under the consumer's name, registered as this node's;
 * an ack removes it from the pending set. */
static void test_keys(void **state)
{
    fx_t *f = *state;
    qf_took_t t = {0};

    RT_REQUIRE_REDIS();
    qc_store_default(f);
    redisContext *c = sync_connect(f);
    qf_push_n(f, "jobs", 1, 3, NULL);
    assert_int_equal(sync_int(c, "XLEN sockeye:{q:jobs}:jobs"), 3);
    qf_watch(f, "jobs", "g");
    qf_take1(f, "jobs", "g", "c1", 2, &t);
    assert_int_equal(sync_pending(c, "sockeye:{q:jobs}:jobs", "g"), 2);
    redisReply *r = redisCommand(c, "HGET sockeye:{q:jobs}:jobs:c g\nc1");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, rds_node_uid(f->node));
    freeReplyObject(r);

    f->qs->vt->ack(f->qs, "jobs", "g", t.msgs[0]->id);
    qf_sync(f);
    assert_int_equal(sync_pending(c, "sockeye:{q:jobs}:jobs", "g"), 1);

    /* a dead-letter queue pushed to directly keeps its queue's tag too */
    qf_push_n(f, "jobs.dead.dead", 1, 1, NULL);
    assert_int_equal(sync_int(c, "XLEN sockeye:{q:jobs}:jobs.dead.dead"), 1);
    redisFree(c);
    qf_took_clear(&t);
}

/* With recovery off nothing else loads the function library: the store does, as soon as
 * it is made on a node that is up, and again on a server that lost it (the node's next
 * connect). */
static void test_library_without_recovery(void **state)
{
    fx_t *f = *state;

    RT_REQUIRE_REDIS();
    redisContext *c = sync_connect(f);
    assert_false(sync_has_library(c));
    qc_store_default(f);
    qf_push_n(f, "jobs", 1, 1, NULL); /* sent after the load on the same connection */
    assert_true(sync_has_library(c));
    redisFree(c);
}

/* Pushes are plain XADDs: the bounds come with the trim pass after them, and a queue far
 * over its bound (here 2,500 pushed for max_length 10, more than one trim call drops) is
 * brought back by calls that follow each other until it is within the bound, every drop
 * counted. */
static void test_bounds_after_a_burst(void **state)
{
    fx_t *f = *state;
    adp_qconfig_t cfg = qf_cfg();

    RT_REQUIRE_REDIS();
    cfg.max_length = 10;
    qf_store(f, &cfg);
    for (int i = 0; i < 5; i++)
        qf_push_n(f, "burst", 500 * i, 500, NULL);
    RT_WAIT_FOR(f, qf_stats(f).trimmed == 2490, QF_WAIT_MS);
    assert_int_equal(qf_stats(f).trimmed_unread, 2490); /* no group: nobody read them */
    redisContext *c = sync_connect(f);
    assert_int_equal(sync_int(c, "XLEN sockeye:{q:burst}:burst"), 10);
    redisFree(c);
}

/* The trim pass drops what every group acknowledged (XTRIM MINID), so that a queue in use
 * does not grow; a group made afterwards does not find those messages. */
static void test_retention(void **state)
{
    fx_t *f = *state;
    qf_took_t t = {0};

    RT_REQUIRE_REDIS();
    qc_store_default(f);
    redisContext *c = sync_connect(f);
    qf_watch(f, "jobs", "g1");
    qf_push_n(f, "jobs", 1, 3, NULL);
    qf_take1(f, "jobs", "g1", "c1", 2, &t);
    for (size_t i = 0; i < t.n; i++)
        f->qs->vt->ack(f->qs, "jobs", "g1", t.msgs[i]->id);
    qf_sync(f);
    RT_WAIT_FOR(f, sync_int(c, "XLEN sockeye:{q:jobs}:jobs") == 1, QF_WAIT_MS);
    qf_watch(f, "jobs", "g2");
    qf_take1(f, "jobs", "g2", "c2", 10, &t);
    qf_expect(&t, (const int[]){3}, qc_d1, NULL, 1);
    redisFree(c);
    qf_took_clear(&t);
}

/* Pushes {"n": n} until Redis takes it (the node reconnects on its own schedule),
 * bounded by QF_WAIT_MS x 3. */
static void push_until_ok(fx_t *f, int n)
{
    char json[32];
    uint64_t end = uv_now(&f->loop) + 3 * QF_WAIT_MS;
    int err;

    snprintf(json, sizeof(json), "{\"n\":%d}", n);
    while ((err = qf_push_bins(f, "jobs", json, NULL, 0, NULL)) != SIO_OK && uv_now(&f->loop) < end)
        rt_run_for(f, 50);
    assert_int_equal(err, SIO_OK);
}

/* Redis gone: a push in flight ends with SIO_EREDIS through its callback, later pushes
 * and takes fail with SIO_EREDIS (at once or through the callback). Redis back, empty
 * (no persistence): the node reloads the library, the store works again and the watched
 * group is woken. */
static void test_redis_down(void **state)
{
    fx_t *f = *state;
    qf_took_t t = {0};
    qf_pushed_t p = {0};
    cJSON *v = cJSON_CreateNull();
    size_t one = 1;

    RT_REQUIRE_REDIS();
    qc_store_default(f);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 1, NULL);
    assert_int_equal(f->qs->vt->push(f->qs, "jobs", v, NULL, 0, qf_push_cb, &p), SIO_OK);
    rt_redis_kill(&f->pid); /* before the loop writes the command */
    RT_WAIT_FOR(f, p.calls == 1, QF_WAIT_MS);
    assert_int_equal(p.err, SIO_EREDIS);
    assert_true(p.id_null);

    assert_int_equal(qf_push_bins(f, "jobs", "{\"n\":2}", NULL, 0, NULL), SIO_EREDIS);
    int rc =
        f->qs->vt->take(f->qs, "jobs", "g", (const char *const[]){"c1"}, &one, 1, qf_take_cb, &t);
    if (rc == SIO_OK) {
        RT_WAIT_FOR(f, t.calls == 1, QF_WAIT_MS);
        rc = t.err;
    }
    assert_int_equal(rc, SIO_EREDIS);
    assert_int_equal(t.n, 0);
    cJSON_Delete(v);

    rt_redis_start(f);
    push_until_ok(f, 3);
    qf_ready_reset(f);
    qf_push_n(f, "jobs", 4, 1, NULL);
    RT_WAIT_FOR(f, qf_ready_count(f, "jobs", "g") >= 1, QF_WAIT_MS);
    qf_take1(f, "jobs", "g", "c1", 10, &t);
    qf_expect(&t, (const int[]){3, 4}, qc_d1, NULL, 2);
    assert_int_equal(p.calls, 1);
    qf_took_clear(&t);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_push_take_order),
        T(test_group_starts_at_oldest),
        T(test_take_spreads),
        T(test_ack),
        T(test_release),
        T(test_release_all),
        T(test_adopt),
        T(test_dead_letter),
        T(test_adopt_dead_letter),
        T(test_max_length),
        T(test_bounds_after_a_burst),
        T(test_max_age),
        T(test_payloads),
        T(test_max_payload),
        T(test_bad_names),
        T(test_ready),
        T(test_sweep),
        T(test_destroy_in_flight),
        T(test_keys),
        T(test_library_without_recovery),
        T(test_retention),
        T(test_redis_down),
    };
#undef T
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
