/* test_sio_queue.c -- the queue engine (node/embed/sio_queue.c) on the in-memory store
 * (adapter/memory/mem_queue.c) that sio_server_new provides, driven through a fake engine
 * (fake_engine.h): consumers are real protocol sockets, deliveries are the queue:msg
 * frames queued on their sessions, acknowledgements are ACK packets fed back as text.
 *
 * The C API (sio_queue_push / consume / cancel) is used instead of the queue:* events of
 * the standard application, so that what is tested is the engine and its store only.
 * Every wait is bounded by a deadline timer on the loop, so a delivery that never comes
 * fails the test instead of hanging it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sio_private.h"
#include "sockeye_queue.h"

#include "fake_engine.h"

/* ---------------------------------------------------------------- fixture */

#define MAX_DLV 64
#define MAX_CLI 8

/* One queue:msg a client received. */
typedef struct dlv {
    long ackid;
    char queue[64];
    char id[64];
    char payload[256];
    int deliveries;
    int acked;
} dlv_t;

/* One connected client: its fake session and the server's socket for it. */
typedef struct cli {
    eio_session_t *e;
    sio_socket_t *s;
    dlv_t d[MAX_DLV];
    size_t n;
    int others; /* frames that were not queue:msg */
} cli_t;

typedef struct fx {
    sio_server_t *srv;
    sio_queues_t *q;
    sio_socket_t *last;
    int q_closed; /* calls of the queues' close callback */
    int srv_closed;
    int pushed, push_err;
    char push_ids[32][64];
    int logs;
    cli_t cli[MAX_CLI];
    size_t n_cli;
} fx_t;

static uv_loop_t *loop(void)
{
    return uv_default_loop();
}

static void on_connection(sio_socket_t *s, void *ud)
{
    ((fx_t *)ud)->last = s;
}

/* Keeps the store's lines (dead letters, sweeps) out of the test output, counted. */
static void on_log(void *ud, int level, const char *msg)
{
    ((fx_t *)ud)->logs++;
    (void)level;
    (void)msg;
}

/* A server with recovery as asked and queues with cfg (NULL: defaults, but quiet). */
static void make(fx_t *f, int recovery, sio_queue_config_t *cfg)
{
    sio_config_t sc;
    sio_queue_config_t def;

    sio_config_init(&sc);
    sc.recovery = recovery;
    f->srv = sio_server_new(loop(), &sc);
    assert_non_null(f->srv);
    sio_nsp_on_connection(sio_server_of(f->srv, "/"), on_connection, f);
    assert_int_equal(sio_server_listen(f->srv), SIO_OK);
    if (cfg == NULL) {
        sio_queue_config_init(&def);
        cfg = &def;
    }
    cfg->on_log = on_log;
    cfg->log_ud = f;
    f->q = sio_queues_new(f->srv, cfg);
    assert_non_null(f->q);
}

static fx_t *g_fx;

static int setup(void **state)
{
    g_fx = calloc(1, sizeof(*g_fx));
    *state = g_fx;
    return 0;
}

/* ---------------------------------------------------------------- bounded waits */

static int g_fired;
static uv_timer_t g_deadline;
static int g_deadline_init;

static void on_deadline(uv_timer_t *t)
{
    g_fired = 1;
}

/* Runs the loop until pred(arg) or max_ms passed; the deadline timer keeps the loop
 * alive (so UV_RUN_ONCE blocks on it rather than spinning) and bounds the wait. Returns
 * pred's last answer. The timer is static, never closed, only stopped: a failing
 * assertion inside pred (pump) longjmps out of here, and a handle on this stack frame
 * would then corrupt the loop for every later test. */
static int wait_for(int (*pred)(void *), void *arg, unsigned max_ms)
{
    long rounds = 0;

    if (!g_deadline_init) {
        uv_timer_init(loop(), &g_deadline);
        g_deadline_init = 1;
    }
    g_fired = 0;
    uv_timer_start(&g_deadline, on_deadline, max_ms, 0);
    while (!(pred != NULL && pred(arg)) && !g_fired && rounds++ < 1000000)
        uv_run(loop(), UV_RUN_ONCE);
    uv_timer_stop(&g_deadline); /* stopped, it keeps no loop alive */
    return pred != NULL && pred(arg);
}

/* Lets the loop run for ms: for checking that something does NOT happen. */
static void settle(unsigned ms)
{
    wait_for(NULL, NULL, ms);
}

static int q_closed(void *arg)
{
    return ((fx_t *)arg)->q_closed > 0;
}

static int srv_closed(void *arg)
{
    return ((fx_t *)arg)->srv_closed;
}

static void on_q_closed(void *arg)
{
    ((fx_t *)arg)->q_closed++;
}

static void on_srv_closed(void *arg)
{
    ((fx_t *)arg)->srv_closed = 1;
}

/* The order of node/program/main.c: queues closed, then the server, then both freed. */
static int teardown(void **state)
{
    fx_t *f = *state;

    if (f->q != NULL && f->q_closed == 0) {
        sio_queues_close(f->q, on_q_closed, f);
        assert_true(wait_for(q_closed, f, 2000));
    }
    if (f->srv != NULL) {
        sio_server_close(f->srv, on_srv_closed, f);
        assert_true(wait_for(srv_closed, f, 2000));
        sio_server_free(f->srv);
    }
    sio_queues_free(f->q);
    settle(20); /* the store's handles close after its last op */
    assert_int_equal(uv_run(loop(), UV_RUN_NOWAIT), 0);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------- clients */

/* Reads the frames queued on c since the last call: queue:msg ones into c->d. */
static void pump(cli_t *c)
{
    const char *r;

    while ((r = fake_next(c->e)) != NULL) {
        char *end;
        long ackid;
        if (strncmp(r, "42", 2) != 0 || r[2] < '0' || r[2] > '9') {
            c->others++;
            continue;
        }
        ackid = strtol(r + 2, &end, 10);
        cJSON *a = cJSON_Parse(end);
        assert_non_null(a);
        if (!cJSON_IsString(cJSON_GetArrayItem(a, 0)) ||
            strcmp(cJSON_GetArrayItem(a, 0)->valuestring, "queue:msg") != 0) {
            c->others++;
            cJSON_Delete(a);
            continue;
        }
        assert_int_equal(cJSON_GetArraySize(a), 3);
        assert_true(c->n < MAX_DLV);
        dlv_t *d = &c->d[c->n++];
        const cJSON *m = cJSON_GetArrayItem(a, 2);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
        const cJSON *nd = cJSON_GetObjectItemCaseSensitive(m, "deliveries");
        assert_true(cJSON_IsString(cJSON_GetArrayItem(a, 1)));
        assert_true(cJSON_IsString(id));
        assert_true(cJSON_IsNumber(nd));
        d->ackid = ackid;
        snprintf(d->queue, sizeof(d->queue), "%s", cJSON_GetArrayItem(a, 1)->valuestring);
        snprintf(d->id, sizeof(d->id), "%s", id->valuestring);
        d->deliveries = nd->valueint;
        char *p = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(m, "payload"));
        snprintf(d->payload, sizeof(d->payload), "%s", p != NULL ? p : "(none)");
        free(p);
        d->acked = 0;
        cJSON_Delete(a);
    }
}

/* Connects a new client to "/" (optionally with an auth object). */
static cli_t *connect_cli(fx_t *f, const char *auth)
{
    char buf[512];

    assert_true(f->n_cli < MAX_CLI);
    cli_t *c = &f->cli[f->n_cli++];
    f->last = NULL;
    c->e = fake_open();
    snprintf(buf, sizeof(buf), "0%s", auth != NULL ? auth : "");
    fake_text(c->e, buf);
    assert_non_null(f->last);
    c->s = f->last;
    /* the CONNECT reply may follow missed packets of a recovery: pump skips them all */
    pump(c);
    assert_true(c->others >= 1);
    return c;
}

/* The client acknowledges its i-th delivery: "43<id>[]" on the wire, of which the fake
 * engine is handed the Socket.IO packet (the Engine.IO "4" message type stripped). */
static void ack(cli_t *c, size_t i)
{
    char buf[64];

    assert_true(i < c->n);
    assert_false(c->d[i].acked);
    c->d[i].acked = 1;
    snprintf(buf, sizeof(buf), "3%ld[]", c->d[i].ackid);
    fake_text(c->e, buf);
}

typedef struct want {
    cli_t *c[2];
    size_t n; /* the deliveries c[0] and c[1] must have together at least */
} want_t;

static int have(void *arg)
{
    want_t *w = arg;
    size_t n = 0;

    for (int i = 0; i < 2; i++) {
        if (w->c[i] != NULL) {
            pump(w->c[i]);
            n += w->c[i]->n;
        }
    }
    return n >= w->n;
}

/* Waits (bounded) until c holds n deliveries in all; fails the test otherwise. */
static void wait_dlv(cli_t *c, size_t n, unsigned max_ms)
{
    want_t w = {{c, NULL}, n};
    assert_true(wait_for(have, &w, max_ms));
}

static void wait_dlv2(cli_t *a, cli_t *b, size_t n, unsigned max_ms)
{
    want_t w = {{a, b}, n};
    assert_true(wait_for(have, &w, max_ms));
}

/* ---------------------------------------------------------------- pushes */

static void on_pushed(int err, const char *id, void *ud)
{
    fx_t *f = ud;
    if (err != SIO_OK) {
        f->push_err = err;
        return;
    }
    assert_non_null(id);
    if (f->pushed < 32)
        snprintf(f->push_ids[f->pushed], sizeof(f->push_ids[0]), "%s", id);
    f->pushed++;
}

/* Pushes {"n": first .. first+count-1} to queue and waits until the store has them. */
static void push_n(fx_t *f, const char *queue, int first, int count)
{
    int before = f->pushed;
    for (int i = first; i < first + count; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "n", i);
        assert_int_equal(sio_queue_push(f->q, queue, p, NULL, 0, on_pushed, f), SIO_OK);
    }
    /* the store answers from an idle handle: a few turns, bounded */
    for (int r = 0; r < 1000 && f->pushed < before + count && f->push_err == 0; r++)
        uv_run(loop(), UV_RUN_NOWAIT);
    assert_int_equal(f->pushed, before + count);
    assert_int_equal(f->push_err, 0);
}

static int count_payload(const cli_t *c, const char *payload)
{
    int n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += strcmp(c->d[i].payload, payload) == 0;
    return n;
}

static sio_queue_stats_t stats(fx_t *f)
{
    sio_queue_stats_t st;
    sio_queues_stats(f->q, &st);
    return st;
}

/* ---------------------------------------------------------------- tests */

/* consume, then push: one queue:msg, deliveries 1, the payload, the push's id; acked it
 * leaves the group (nothing comes again). */
static void test_consume_then_push(void **state)
{
    fx_t *f = *state;
    make(f, 0, NULL);
    cli_t *a = connect_cli(f, NULL);

    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 0), SIO_OK);
    assert_int_equal(stats(f).consumers, 1);
    push_n(f, "jobs", 1, 1);
    wait_dlv(a, 1, 1000);
    assert_string_equal(a->d[0].queue, "jobs");
    assert_string_equal(a->d[0].id, f->push_ids[0]);
    assert_string_equal(a->d[0].payload, "{\"n\":1}");
    assert_int_equal(a->d[0].deliveries, 1);
    assert_int_equal(stats(f).in_flight, 1);
    /* socket.data.queues keeps the consumer (for a recovery elsewhere) */
    char *data = cJSON_PrintUnformatted(sio_socket_data(a->s));
    assert_non_null(
        strstr(data, "\"queues\":[{\"queue\":\"jobs\",\"group\":\"g\",\"prefetch\":100}]"));
    free(data);

    ack(a, 0);
    settle(50);
    pump(a);
    assert_int_equal(a->n, 1);
    sio_queue_stats_t st = stats(f);
    assert_int_equal(st.pushed, 1);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.acknowledged, 1);
    assert_int_equal(st.in_flight, 0);

    /* pushed before anyone consumed: a new group starts at the oldest message */
    push_n(f, "early", 7, 1);
    assert_int_equal(sio_queue_consume(f->q, a->s, "early", "g", 0), SIO_OK);
    wait_dlv(a, 2, 1000);
    assert_string_equal(a->d[1].queue, "early");
    assert_string_equal(a->d[1].payload, "{\"n\":7}");
    ack(a, 1);
}

/* prefetch N: at most N unacknowledged; the next comes only after an ack; order kept. */
static void test_prefetch(void **state)
{
    fx_t *f = *state;
    make(f, 0, NULL);
    cli_t *a = connect_cli(f, NULL);

    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 2), SIO_OK);
    push_n(f, "jobs", 0, 5);
    wait_dlv(a, 2, 1000);
    settle(50);
    pump(a);
    assert_int_equal(a->n, 2);
    assert_int_equal(stats(f).in_flight, 2);

    for (size_t i = 0; i < 3; i++) {
        ack(a, i);
        wait_dlv(a, i + 3, 1000);
        settle(30);
        pump(a);
        assert_int_equal(a->n, i + 3); /* one ack, one more: never 3 in flight */
        assert_int_equal(stats(f).in_flight, 2);
    }
    ack(a, 3);
    ack(a, 4);
    settle(30);
    pump(a);
    assert_int_equal(a->n, 5);
    assert_int_equal(stats(f).in_flight, 0);
    for (size_t i = 0; i < 5; i++) { /* one consumer: push order */
        char want[32];
        snprintf(want, sizeof(want), "{\"n\":%zu}", i);
        assert_string_equal(a->d[i].payload, want);
        assert_int_equal(a->d[i].deliveries, 1);
    }

    /* consume again: only the prefetch changes (still one consumer) */
    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 1), SIO_OK);
    assert_int_equal(stats(f).consumers, 1);
    push_n(f, "jobs", 5, 2);
    wait_dlv(a, 6, 1000);
    settle(30);
    pump(a);
    assert_int_equal(a->n, 6);
    ack(a, 5);
    wait_dlv(a, 7, 1000);
    ack(a, 6);
}

/* Two consumers of one group: each message to one of them, both get some (their prefetch
 * leaves room for a part only), none twice. */
static void test_one_group_shares(void **state)
{
    fx_t *f = *state;
    make(f, 0, NULL);
    cli_t *a = connect_cli(f, NULL), *b = connect_cli(f, NULL);

    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 2), SIO_OK);
    assert_int_equal(sio_queue_consume(f->q, b->s, "jobs", "g", 2), SIO_OK);
    assert_int_equal(stats(f).consumers, 2);
    push_n(f, "jobs", 0, 10);
    wait_dlv2(a, b, 4, 1000);
    settle(30);
    pump(a);
    pump(b);
    assert_int_equal(a->n, 2);
    assert_int_equal(b->n, 2);
    /* ack whatever arrives until all 10 came */
    for (int round = 0; round < 50 && a->n + b->n < 10; round++) {
        for (size_t i = 0; i < a->n; i++)
            if (!a->d[i].acked)
                ack(a, i);
        for (size_t i = 0; i < b->n; i++)
            if (!b->d[i].acked)
                ack(b, i);
        wait_dlv2(a, b, a->n + b->n + 1, 1000);
    }
    assert_int_equal(a->n + b->n, 10);
    assert_true(a->n > 0 && b->n > 0);
    for (int i = 0; i < 10; i++) {
        char want[32];
        snprintf(want, sizeof(want), "{\"n\":%d}", i);
        assert_int_equal(count_payload(a, want) + count_payload(b, want), 1);
    }
    for (size_t i = 0; i < a->n; i++)
        assert_int_equal(a->d[i].deliveries, 1);
    for (size_t i = 0; i < b->n; i++)
        assert_int_equal(b->d[i].deliveries, 1);
}

/* Two groups on one queue: each receives every message. */
static void test_two_groups(void **state)
{
    fx_t *f = *state;
    make(f, 0, NULL);
    cli_t *a = connect_cli(f, NULL), *b = connect_cli(f, NULL);

    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g1", 0), SIO_OK);
    assert_int_equal(sio_queue_consume(f->q, b->s, "jobs", "g2", 0), SIO_OK);
    push_n(f, "jobs", 0, 5);
    wait_dlv(a, 5, 1000);
    wait_dlv(b, 5, 1000);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(a->d[i].id, f->push_ids[i]);
        assert_string_equal(b->d[i].id, f->push_ids[i]);
        ack(a, i);
    }
    /* g1 acknowledged everything, g2 nothing: g2 still has its five in flight */
    settle(30);
    assert_int_equal(stats(f).in_flight, 5);
    for (size_t i = 0; i < 5; i++)
        ack(b, i);
    settle(30);
    pump(a);
    pump(b);
    assert_int_equal(a->n, 5);
    assert_int_equal(b->n, 5);
    assert_int_equal(stats(f).in_flight, 0);
}

/* cancel: what the consumer held goes back at once, to the other consumer, deliveries 2;
 * cancelling what is not consumed is an error. */
static void test_cancel(void **state)
{
    fx_t *f = *state;
    make(f, 0, NULL);
    cli_t *a = connect_cli(f, NULL), *b = connect_cli(f, NULL);

    assert_int_equal(sio_queue_cancel(f->q, a->s, "jobs", "g"), SIO_ENOTFOUND);
    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 10), SIO_OK);
    push_n(f, "jobs", 0, 3);
    wait_dlv(a, 3, 1000);
    assert_int_equal(sio_queue_consume(f->q, b->s, "jobs", "g", 10), SIO_OK);
    settle(30);
    pump(b);
    assert_int_equal(b->n, 0); /* all three are a's */

    assert_int_equal(sio_queue_cancel(f->q, b->s, "jobs", "other"), SIO_ENOTFOUND);
    assert_int_equal(sio_queue_cancel(f->q, a->s, "jobs", "g"), SIO_OK);
    assert_int_equal(sio_queue_cancel(f->q, a->s, "jobs", "g"), SIO_ENOTFOUND);
    assert_int_equal(stats(f).consumers, 1);
    /* at once: far below the 30 s ack timeout */
    wait_dlv(b, 3, 1000);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(b->d[i].id, a->d[i].id);
        assert_int_equal(b->d[i].deliveries, 2);
        ack(b, i);
    }
    /* the consumer is gone from socket.data.queues too */
    assert_null(cJSON_GetObjectItemCaseSensitive(sio_socket_data(a->s), "queues"));
    /* a's late acks (its socket still waits for them) do no harm */
    ack(a, 0);
    settle(30);
    pump(a);
    pump(b);
    assert_int_equal(a->n, 3);
    assert_int_equal(b->n, 3);
    sio_queue_stats_t st = stats(f);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.redelivered, 3);
}

/* A namespace disconnect by the client is on purpose: what it held goes back at once,
 * even with recovery on. */
static void test_disconnect_gives_back(void **state)
{
    fx_t *f = *state;
    make(f, 1, NULL);
    cli_t *a = connect_cli(f, NULL), *b = connect_cli(f, NULL);

    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 10), SIO_OK);
    push_n(f, "jobs", 0, 3);
    wait_dlv(a, 3, 1000);
    assert_int_equal(sio_queue_consume(f->q, b->s, "jobs", "g", 10), SIO_OK);
    ack(a, 1); /* processed: not given back */
    settle(30);
    pump(b);
    assert_int_equal(b->n, 0);

    fake_text(a->e, "1"); /* "41" on the wire: DISCONNECT of "/" */
    assert_int_equal(stats(f).consumers, 1);
    wait_dlv(b, 2, 1000);
    assert_string_equal(b->d[0].id, a->d[0].id);
    assert_string_equal(b->d[1].id, a->d[2].id);
    assert_int_equal(b->d[0].deliveries, 2);
    assert_int_equal(b->d[1].deliveries, 2);
    ack(b, 0);
    ack(b, 1);
    settle(30);
    pump(b);
    assert_int_equal(b->n, 2);
    assert_int_equal(stats(f).in_flight, 0);
}

/* A lost connection with recovery on is not on purpose: the session keeps what it held
 * (another consumer does not get it), and gets it again at once when it comes back. */
static void test_hold_and_adopt(void **state)
{
    fx_t *f = *state;
    make(f, 1, NULL);
    cli_t *a = connect_cli(f, NULL), *b = connect_cli(f, NULL);
    char auth[256], pid[64], sid[64];

    snprintf(pid, sizeof(pid), "%s", sio__socket_pid(a->s));
    snprintf(sid, sizeof(sid), "%s", sio_socket_id(a->s));
    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 10), SIO_OK);
    push_n(f, "jobs", 0, 2);
    wait_dlv(a, 2, 1000);
    /* a recovery needs an offset: an emit through the adapter gives one */
    assert_int_equal(sio_socket_emit(a->s, "hello", NULL, NULL, 0), SIO_OK);
    const char *r = fake_next(a->e);
    assert_non_null(r);
    assert_true(strncmp(r, "42[\"hello\",\"", 12) == 0);
    char offset[64];
    snprintf(offset, sizeof(offset), "%.*s", (int)(strchr(r + 12, '"') - (r + 12)), r + 12);

    fake_close(a->e, "transport close");
    assert_int_equal(stats(f).consumers, 1); /* held */
    assert_int_equal(stats(f).in_flight, 0);
    assert_int_equal(sio_queue_consume(f->q, b->s, "jobs", "g", 10), SIO_OK);
    settle(50);
    pump(b);
    assert_int_equal(b->n, 0);

    snprintf(auth, sizeof(auth), "{\"pid\":\"%s\",\"offset\":\"%s\"}", pid, offset);
    cli_t *a2 = connect_cli(f, auth);
    assert_int_equal(sio_socket_recovered(a2->s), 1);
    assert_string_equal(sio_socket_id(a2->s), sid);
    wait_dlv(a2, 2, 1000);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(a2->d[i].id, a->d[i].id);
        assert_int_equal(a2->d[i].deliveries, 2);
        ack(a2, i);
    }
    settle(30);
    pump(a2);
    pump(b);
    assert_int_equal(a2->n, 2);
    assert_int_equal(b->n, 0);
    assert_int_equal(stats(f).consumers, 2);
    assert_int_equal(stats(f).in_flight, 0);
}

/* Not acknowledged within the ack timeout: delivered again, deliveries raised; the late
 * ack of the first delivery is ignored, the ack of the second ends it. */
static void test_ack_timeout(void **state)
{
    fx_t *f = *state;
    sio_queue_config_t cfg;
    sio_queue_config_init(&cfg);
    cfg.ack_timeout_ms = 100;
    make(f, 0, &cfg);
    cli_t *a = connect_cli(f, NULL);

    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 1), SIO_OK);
    push_n(f, "jobs", 0, 1);
    wait_dlv(a, 1, 1000);
    assert_int_equal(a->d[0].deliveries, 1);
    wait_dlv(a, 2, 2000);
    assert_string_equal(a->d[1].id, a->d[0].id);
    assert_int_equal(a->d[1].deliveries, 2);
    assert_true(stats(f).timeouts >= 1);
    ack(a, 0); /* too late: the socket forgot that ack id */
    ack(a, 1);
    settle(400); /* past ack timeout and the store's sweep: nothing comes again */
    pump(a);
    assert_int_equal(a->n, 2);
    sio_queue_stats_t st = stats(f);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.redelivered, 1);
}

/* Past max_deliveries the message goes to "<queue>.dead", where it can be consumed. */
static void test_dead_letter(void **state)
{
    fx_t *f = *state;
    sio_queue_config_t cfg;
    sio_queue_config_init(&cfg);
    cfg.ack_timeout_ms = 60;
    cfg.max_deliveries = 2;
    make(f, 0, &cfg);
    cli_t *a = connect_cli(f, NULL), *d = connect_cli(f, NULL);

    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 1), SIO_OK);
    assert_int_equal(sio_queue_consume(f->q, d->s, "jobs.dead", "dl", 1), SIO_OK);
    push_n(f, "jobs", 42, 1);
    wait_dlv(a, 2, 2000);
    assert_int_equal(a->d[0].deliveries, 1);
    assert_int_equal(a->d[1].deliveries, 2);
    wait_dlv(d, 1, 2000);
    assert_string_equal(d->d[0].queue, "jobs.dead");
    assert_string_equal(d->d[0].payload, "{\"n\":42}");
    assert_int_equal(d->d[0].deliveries, 1);
    ack(d, 0);
    settle(300);
    pump(a);
    pump(d);
    assert_int_equal(a->n, 2); /* never a third time */
    assert_int_equal(d->n, 1);
    sio_queue_stats_t st = stats(f);
    assert_int_equal(st.dead_lettered, 1);
    assert_int_equal(st.in_flight, 0);
    assert_true(f->logs >= 1); /* the dead letter was logged, through the sink */
}

/* Bad names, prefetch and configs are refused, and change nothing. */
/* --queue-max-pushes-in-flight: pushes past the bound are refused at once with SIO_EBUSY
 * (counted, no callback), and room comes back as the store answers. */
static void test_pushes_in_flight_bound(void **state)
{
    fx_t *f = *state;
    sio_queue_config_t cfg;

    sio_queue_config_init(&cfg);
    cfg.max_pushes_in_flight = 2;
    make(f, 0, &cfg);
    for (int i = 0; i < 2; i++)
        assert_int_equal(sio_queue_push(f->q, "jobs", cJSON_CreateTrue(), NULL, 0, on_pushed, f),
                         SIO_OK);
    assert_int_equal(stats(f).pushes_in_flight, 2);
    assert_int_equal(sio_queue_push(f->q, "jobs", cJSON_CreateTrue(), NULL, 0, on_pushed, f),
                     SIO_EBUSY);
    assert_int_equal(stats(f).busy, 1);
    for (int r = 0; r < 1000 && f->pushed < 2; r++)
        uv_run(loop(), UV_RUN_NOWAIT);
    assert_int_equal(f->pushed, 2);
    assert_int_equal(stats(f).pushes_in_flight, 0);
    push_n(f, "jobs", 3, 2); /* room again */
    assert_int_equal(stats(f).busy, 1);
}

static void test_bad_input(void **state)
{
    fx_t *f = *state;
    sio_queue_config_t cfg;
    char big[202];

    sio_queue_config_init(&cfg);
    cfg.max_prefetch = 10;
    cfg.default_prefetch = 5;
    cfg.max_payload = 64;
    make(f, 0, &cfg);
    cli_t *a = connect_cli(f, NULL);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';

    assert_int_equal(sio_queue_consume(f->q, a->s, "", "g", 1), SIO_EINVAL);
    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "", 1), SIO_EINVAL);
    assert_int_equal(sio_queue_consume(f->q, a->s, "jo\nbs", "g", 1), SIO_EINVAL);
    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g\x01", 1), SIO_EINVAL);
    assert_int_equal(sio_queue_consume(f->q, a->s, big, "g", 1), SIO_EINVAL);
    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", big, 1), SIO_EINVAL);
    assert_int_equal(sio_queue_consume(f->q, a->s, big + 1, big + 1, 1), SIO_OK); /* 200 */
    assert_int_equal(sio_queue_cancel(f->q, a->s, big + 1, big + 1), SIO_OK);
    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 11), SIO_EINVAL);
    assert_int_equal(sio_queue_consume(f->q, NULL, "jobs", "g", 1), SIO_EINVAL);
    assert_int_equal(sio_queue_consume(NULL, a->s, "jobs", "g", 1), SIO_EINVAL);
    assert_int_equal(sio_queue_cancel(f->q, a->s, "", "g"), SIO_EINVAL);
    assert_int_equal(stats(f).consumers, 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(sio_socket_data(a->s), "queues"));

    /* pushes: the payload is consumed even when refused (ASan: no leak) */
    assert_int_equal(sio_queue_push(f->q, "", cJSON_CreateTrue(), NULL, 0, on_pushed, f),
                     SIO_EINVAL);
    assert_int_equal(sio_queue_push(f->q, big, cJSON_CreateTrue(), NULL, 0, on_pushed, f),
                     SIO_EINVAL);
    assert_int_equal(sio_queue_push(f->q, "jobs", cJSON_CreateTrue(), NULL, 0, NULL, f),
                     SIO_EINVAL);
    assert_int_equal(sio_queue_push(f->q, "jobs", cJSON_CreateTrue(), NULL, 1, on_pushed, f),
                     SIO_EINVAL);
    /* over max_payload: refused through the callback */
    assert_int_equal(sio_queue_push(f->q, "jobs", cJSON_CreateString(big), NULL, 0, on_pushed, f),
                     SIO_OK);
    for (int r = 0; r < 100 && f->push_err == 0; r++)
        uv_run(loop(), UV_RUN_NOWAIT);
    assert_int_equal(f->push_err, SIO_ETOOBIG);
    assert_int_equal(f->pushed, 0);
    assert_int_equal(stats(f).pushed, 0);

    /* the default prefetch applies to a consumer that names none */
    f->push_err = 0;
    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 0), SIO_OK);
    push_n(f, "jobs", 0, 7);
    wait_dlv(a, 5, 1000);
    settle(30);
    pump(a);
    assert_int_equal(a->n, 5);
    for (size_t i = 0; i < a->n; i++)
        ack(a, i);
    wait_dlv(a, 7, 1000);
    ack(a, 5);
    ack(a, 6);

    /* invalid configs: no queues */
    sio_queue_config_t bad;
    sio_queue_config_init(&bad);
    bad.ack_timeout_ms = 0;
    assert_null(sio_queues_new(f->srv, &bad));
    sio_queue_config_init(&bad);
    bad.default_prefetch = 2000; /* over max_prefetch */
    assert_null(sio_queues_new(f->srv, &bad));
    sio_queue_config_init(&bad);
    bad.max_deliveries = 0;
    assert_null(sio_queues_new(f->srv, &bad));
    assert_null(sio_queues_new(NULL, NULL));
}

/* Closing the queues with deliveries in flight: the callback runs once, nothing more is
 * delivered or accepted, and the acks that come afterwards (the client's, or the socket's
 * end failing them) and the frees leave nothing behind (ASan). */
static void test_close_in_flight(void **state)
{
    fx_t *f = *state;
    make(f, 0, NULL);
    cli_t *a = connect_cli(f, NULL);

    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 5), SIO_OK);
    push_n(f, "jobs", 0, 3);
    wait_dlv(a, 3, 1000);
    assert_int_equal(stats(f).in_flight, 3);

    sio_queues_close(f->q, on_q_closed, f);
    sio_queues_close(f->q, on_q_closed, f); /* once is enough: a no-op */
    assert_true(wait_for(q_closed, f, 2000));
    settle(30);
    assert_int_equal(f->q_closed, 1);
    assert_int_equal(sio_queue_push(f->q, "jobs", cJSON_CreateTrue(), NULL, 0, on_pushed, f),
                     SIO_ECLOSED);
    assert_int_equal(sio_queue_consume(f->q, a->s, "jobs", "g", 5), SIO_ECLOSED);
    /* the client acks one after the close; the other two end with the server */
    ack(a, 0);
    settle(30);
    pump(a);
    assert_int_equal(a->n, 3);
    assert_int_equal(f->q_closed, 1);
    /* teardown: server closed (its socket fails the two pending acks), both freed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_consume_then_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_group_shares, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_gives_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_and_adopt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pushes_in_flight_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
