/* test_eio_session.c -- node/engine/eio_session.c, the session state machine, driven
 * through a fake transport: no socket, no libwebsockets.
 *
 * The server is built with eio__server_new and a transport whose hooks only record
 * what the state machine asked for (wake, close with a code, release a held GET); the
 * "connections" are plain eio_conn_t the test owns, and their struct lws * is their own
 * address (conn_of gives it back). What the real transport does from its callbacks
 * (answer a GET, finish an upgrade) the test does by calling the same eio__ functions.
 * Each test runs its own libuv loop with short real timers, bounded by rounds, and ends
 * with every handle closed and uv_loop_close() == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base_alloc.h"
#include "cd_ws.h"
#include "eio_private.h"

/* ---------------------------------------------------------------- fake transport */

#define MAX_CALLS 32

typedef struct fake {
    uv_loop_t loop;
    eio_server_t *srv;
    /* transport hooks seen */
    int wakes;
    int closes;
    struct lws *closed[MAX_CALLS];
    unsigned short close_codes[MAX_CALLS];
    int noops;
    struct lws *nooped[MAX_CALLS];
    int shutdown_steps;
    /* application callbacks seen */
    int opens;
    int n_closed;
    eio_session_t *closed_s[MAX_CALLS];
    char reasons[MAX_CALLS][32];
    size_t queued_at_close[MAX_CALLS]; /* frames still queued when on_close came */
    int in_close_call;                 /* on_close must never run inside an eio_* call */
} fake_t;

static fake_t *F; /* the transport hooks get no user data: one fake per test */

#define WSI(c) ((struct lws *)(c))

static void fk_wake(eio_session_t *s)
{
    F->wakes++;
}

static void fk_wake_close(eio_server_t *srv, struct lws *wsi, unsigned short code)
{
    assert_ptr_equal(srv, F->srv);
    assert_true(F->closes < MAX_CALLS);
    F->closed[F->closes] = wsi;
    F->close_codes[F->closes++] = code;
}

static void fk_wake_noop(struct lws *wsi)
{
    assert_true(F->noops < MAX_CALLS);
    F->nooped[F->noops++] = wsi;
}

static void fk_shutdown_step(eio_server_t *srv)
{
    F->shutdown_steps++;
}

static eio_conn_t *fk_conn_of(struct lws *wsi)
{
    return (eio_conn_t *)wsi;
}

static const eio_transport_t fake_transport = {
    .wake = fk_wake,
    .wake_close = fk_wake_close,
    .wake_noop = fk_wake_noop,
    .shutdown_step = fk_shutdown_step,
    .conn_of = fk_conn_of,
};

static void on_open(void *ud, eio_session_t *s)
{
    ((fake_t *)ud)->opens++;
}

static void on_close(void *ud, eio_session_t *s, const char *reason)
{
    fake_t *f = ud;

    assert_false(f->in_close_call);
    assert_true(f->n_closed < MAX_CALLS);
    f->closed_s[f->n_closed] = s;
    f->queued_at_close[f->n_closed] = s->q.len;
    snprintf(f->reasons[f->n_closed++], sizeof(f->reasons[0]), "%s", reason);
}

/* ---------------------------------------------------------------- fixture */

static const eio_config_t base_cfg = {
    .path = "/engine.io/",
    .ping_interval_ms = 30,
    .ping_timeout_ms = 40,
    .upgrade_timeout_ms = 30,
    .max_payload = 1000,
    .transports = EIO_TRANSPORT_POLLING | EIO_TRANSPORT_WEBSOCKET,
    .allow_upgrades = 1,
    .max_queue = 4,
    .max_queue_bytes = 100,
};

static void fake_start(fake_t *f, const eio_config_t *cfg)
{
    eio_callbacks_t cb = {.ud = f, .on_open = on_open, .on_close = on_close};

    memset(f, 0, sizeof(*f));
    F = f;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->srv = eio__server_new(&f->loop, cfg != NULL ? cfg : &base_cfg, &cb, &fake_transport);
    assert_non_null(f->srv);
    eio__sessions_handles_init(f->srv);
}

/* Runs the loop until pred or about max_ms of loop time passed. */
static void run_until(fake_t *f, int (*pred)(fake_t *, void *), void *arg, unsigned max_ms)
{
    uint64_t end = uv_now(&f->loop) + max_ms;

    while (!pred(f, arg) && uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static int closed_n(fake_t *f, void *arg)
{
    return f->n_closed >= (int)(intptr_t)arg;
}

static int no_handles(fake_t *f, void *arg)
{
    return f->srv->n_handles == 0;
}

/* Closes whatever is left, lets the sessions go, closes the handles and the loop. */
static void fake_stop(fake_t *f)
{
    eio__sessions_shutdown(f->srv);
    eio__sessions_force_free(f->srv);
    assert_true(base_list_empty(&f->srv->sessions));
    eio__sessions_handles_close(f->srv);
    run_until(f, no_handles, NULL, 1000);
    assert_int_equal(f->srv->n_handles, 0);
    eio_server_free(f->srv);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    F = NULL;
}

static eio_session_t *open_session(fake_t *f, int transport, eio_conn_t *c)
{
    eio_handshake_t hs;

    memset(&hs, 0, sizeof(hs));
    memset(c, 0, sizeof(*c));
    hs.address = base_strdup("127.0.0.1");
    hs.url = base_strdup("/engine.io/?EIO=4&transport=polling&name=J%C3%BCrgen%20X&x=1");
    hs.headers = cJSON_CreateObject();
    eio__query_add(&hs.pairs, "EIO=4", 5);
    eio__query_add(&hs.pairs, "transport=polling", 17);
    eio__query_add(&hs.pairs, "name=J\xc3\xbcrgen X", 14);
    eio__query_add(&hs.pairs, "x=1", 3);
    eio__query_add(&hs.pairs, "x=2", 3);
    return eio__session_open(f->srv, transport, &hs, WSI(c), c);
}

/* Takes the queued frames as the transport would (text joined by '|'). */
static void drain(eio_session_t *s, char *out, size_t cap)
{
    base_frame_t *fr;
    size_t o = 0;

    out[0] = '\0';
    while ((fr = eio__queue_pop(&s->q, NULL)) != NULL) {
        o += (size_t)snprintf(out + o, cap - o, "%s%.*s", o ? "|" : "", (int)fr->len,
                              (const char *)base_frame_data(fr));
        base_frame_unref(fr);
    }
}

static int send_text(eio_session_t *s, const char *text, unsigned flags)
{
    base_frame_t *fr = base_frame_from(text, strlen(text), 0);
    int rc = eio_session_send(s, fr, flags);

    base_frame_unref(fr);
    return rc;
}

/* ---------------------------------------------------------------- open */

static void test_open_polling(void **state)
{
    fake_t f;
    eio_conn_t get;
    eio_session_t *s;
    char out[512], want[512];
    const char *k, *v;
    size_t it = 0;

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_POLLING, &get);
    assert_int_equal(f.opens, 1);
    assert_int_equal(f.wakes, 1); /* the GET that asked carries the open packet */
    assert_int_equal(strlen(eio_session_id(s)), EIO_ID_LEN);
    assert_string_equal(eio_session_transport(s), "polling");
    assert_ptr_equal(get.s, s);
    assert_int_equal(get.role, EIO_ROLE_GET);
    assert_ptr_equal(s->get, WSI(&get));
    assert_ptr_equal(eio__session_find(f.srv, eio_session_id(s)), s);
    assert_null(eio__session_find(f.srv, "nosuchsid"));
    assert_int_equal(eio_server_session_count(f.srv), 1);

    drain(s, out, sizeof(out));
    snprintf(want, sizeof(want),
             "0{\"sid\":\"%s\",\"upgrades\":[\"websocket\"],\"pingInterval\":30,"
             "\"pingTimeout\":40,\"maxPayload\":1000}",
             eio_session_id(s));
    assert_string_equal(out, want);

    /* the handshake facts, the query decoded once */
    assert_string_equal(eio_session_address(s), "127.0.0.1");
    assert_string_equal(eio_session_query(s), "EIO=4&transport=polling&name=J%C3%BCrgen%20X&x=1");
    assert_string_equal(eio_session_query_get(s, "name"), "J\xc3\xbcrgen X");
    assert_string_equal(eio_session_query_get(s, "x"), "1");
    assert_null(eio_session_query_get(s, "nope"));
    assert_null(eio_session_query_get(s, NULL));
    assert_true(eio_session_query_next(s, &it, &k, &v));
    assert_string_equal(k, "EIO");
    assert_true(eio_session_query_next(s, &it, &k, &v));
    assert_string_equal(k, "transport");
    assert_true(eio_session_query_next(s, &it, &k, &v));
    assert_string_equal(k, "name");
    assert_true(eio_session_query_next(s, &it, &k, &v));
    assert_string_equal(k, "x");
    assert_string_equal(v, "1");
    assert_false(eio_session_query_next(s, &it, &k, &v));

    eio__detach(s, WSI(&get), &get);
    fake_stop(&f);
    assert_int_equal(f.n_closed, 1);
    assert_string_equal(f.reasons[0], "server shutting down");
}

static void test_open_websocket(void **state)
{
    fake_t f;
    eio_conn_t ws;
    eio_session_t *s;
    char out[512];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_WEBSOCKET, &ws);
    assert_int_equal(ws.role, EIO_ROLE_WS);
    assert_ptr_equal(s->ws, WSI(&ws));
    assert_string_equal(eio_session_transport(s), "websocket");
    drain(s, out, sizeof(out));
    assert_non_null(strstr(out, "\"upgrades\":[]")); /* nothing to upgrade to */
    fake_stop(&f);
}

/* ---------------------------------------------------------------- queue */

static void test_queue_frames(void **state)
{
    fake_t f;
    eio_conn_t ws;
    eio_session_t *s;
    base_frame_t *fr;
    unsigned flags;
    char out[512];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_WEBSOCKET, &ws);
    drain(s, out, sizeof(out));
    f.wakes = 0;
    fr = base_frame_from("4a", 2, 0);
    assert_int_equal(eio_session_send(s, fr, 0), SIO_OK);
    assert_int_equal(fr->refcnt, 2); /* the queue holds its own reference */
    assert_int_equal(eio_session_send(s, fr, EIO_SEND_NOCOMPRESS), SIO_OK);
    assert_int_equal(f.wakes, 1); /* woken once, when the queue stopped being empty */
    assert_int_equal(s->q.len, 2);
    assert_ptr_equal(eio__queue_pop(&s->q, &flags), fr);
    assert_int_equal(flags, 0);
    base_frame_unref(fr);
    assert_ptr_equal(eio__queue_pop(&s->q, &flags), fr);
    assert_int_equal(flags, EIO_SEND_NOCOMPRESS);
    base_frame_unref(fr);
    assert_int_equal(fr->refcnt, 1);
    base_frame_unref(fr);

    /* FIFO across the ring's growth */
    for (int i = 0; i < 3; i++) {
        char t[8];
        snprintf(t, sizeof(t), "4m%d", i);
        assert_int_equal(send_text(s, t, 0), SIO_OK);
    }
    drain(s, out, sizeof(out));
    assert_string_equal(out, "4m0|4m1|4m2");
    assert_int_equal(eio_session_send(NULL, NULL, 0), SIO_EINVAL);
    fake_stop(&f);
}

/* ---------------------------------------------------------------- heartbeat */

static int ping_queued(fake_t *f, void *arg)
{
    return ((eio_session_t *)arg)->awaiting_pong;
}

static void test_heartbeat(void **state)
{
    fake_t f;
    eio_conn_t ws;
    eio_session_t *s;
    cd_eio_packet_t pong = {.type = CD_EIO_PONG};
    char out[512];
    uint64_t sent;

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_WEBSOCKET, &ws);
    drain(s, out, sizeof(out));

    /* ping after pingInterval; the pong re-arms and moves read_at to the ping */
    run_until(&f, ping_queued, s, 500);
    assert_true(s->awaiting_pong);
    drain(s, out, sizeof(out));
    assert_string_equal(out, "2");
    sent = s->ping_sent_at;
    eio__session_packet(s, &pong);
    assert_false(s->awaiting_pong);
    assert_int_equal(eio_session_read_at(s), sent);
    assert_int_equal(s->state, EIO_S_OPEN);

    /* the next ping goes unanswered: "ping timeout" after pingTimeout */
    run_until(&f, ping_queued, s, 500);
    assert_true(s->awaiting_pong);
    run_until(&f, closed_n, (void *)1, 500);
    assert_int_equal(f.n_closed, 1);
    assert_string_equal(f.reasons[0], "ping timeout");
    /* an error close drops the queue (the ping too) and ends the WebSocket; with no
     * connection left the session was freed right after on_close */
    assert_int_equal(f.queued_at_close[0], 0);
    assert_int_equal(f.closes, 1);
    assert_ptr_equal(f.closed[0], WSI(&ws));
    assert_int_equal(f.close_codes[0], CD_WS_CLOSE_NORMAL);
    assert_null(ws.s);
    fake_stop(&f);
}

/* A request that names a session past its pong deadline finds it closed, even when
 * the timer has not fired yet; a client that pings is a protocol error. */
static void test_heartbeat_lazy_and_direction(void **state)
{
    fake_t f;
    eio_conn_t a, b;
    eio_session_t *s, *t;
    char id[EIO_ID_LEN + 1];
    cd_eio_packet_t ping = {.type = CD_EIO_PING};

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_WEBSOCKET, &a);
    t = open_session(&f, EIO_TRANSPORT_WEBSOCKET, &b);
    snprintf(id, sizeof(id), "%s", eio_session_id(s));
    s->hb_deadline = 0;
    assert_null(eio__session_find(f.srv, id));
    assert_int_equal(s->state, EIO_S_CLOSING);
    eio__session_packet(t, &ping);
    assert_int_equal(t->state, EIO_S_CLOSING);
    assert_int_equal(f.n_closed, 0); /* not from inside the calls */
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.n_closed, 2);
    assert_string_equal(f.reasons[0], "ping timeout");
    assert_string_equal(f.reasons[1], "transport error");
    assert_int_equal(f.close_codes[1], CD_WS_CLOSE_UNEXPECTED_CONDITION);
    fake_stop(&f);
}

/* ---------------------------------------------------------------- closing */

/* Asked by the server: the queue is delivered first; a polling session stays reachable
 * for the GET that takes its last frames and "1". */
static void test_close_flush_polling(void **state)
{
    fake_t f;
    eio_conn_t get;
    eio_session_t *s;
    char out[512], id[EIO_ID_LEN + 1];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_POLLING, &get);
    drain(s, out, sizeof(out));
    snprintf(id, sizeof(id), "%s", eio_session_id(s));
    assert_int_equal(send_text(s, "4bye", 0), SIO_OK);
    f.wakes = 0;
    f.in_close_call = 1;
    eio_session_close(s, "forced close");
    eio_session_close(s, "again"); /* idempotent */
    f.in_close_call = 0;
    assert_int_equal(f.n_closed, 0);
    assert_int_equal(f.wakes, 1); /* the held GET is woken to answer */
    assert_int_equal(s->q.len, 1);
    assert_ptr_equal(eio__session_find(f.srv, id), s);
    assert_int_equal(send_text(s, "4late", 0), SIO_ECLOSED);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.n_closed, 1);
    assert_string_equal(f.reasons[0], "forced close");
    assert_int_equal(eio_server_session_count(f.srv), 0);
    /* the GET takes the frame, then the session is gone */
    drain(s, out, sizeof(out));
    assert_string_equal(out, "4bye");
    eio__detach(s, WSI(&get), &get);
    assert_null(eio__session_find(f.srv, id));
    eio__session_maybe_free(s);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.n_closed, 1); /* exactly once */
    fake_stop(&f);
    assert_int_equal(f.n_closed, 1);
}

/* Without a GET out, a flushing polling session lingers for pingInterval +
 * pingTimeout, then goes. */
static int session_count_zero(fake_t *f, void *arg)
{
    return base_list_empty(&f->srv->sessions);
}

static void test_close_flush_linger(void **state)
{
    fake_t f;
    eio_conn_t get;
    eio_session_t *s;
    char out[512];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_POLLING, &get);
    drain(s, out, sizeof(out));
    eio__detach(s, WSI(&get), &get);
    assert_int_equal(send_text(s, "4x", 0), SIO_OK);
    eio_session_close(s, NULL);
    assert_true(s->lingering);
    run_until(&f, session_count_zero, NULL, 1000);
    assert_true(base_list_empty(&f.srv->sessions));
    assert_int_equal(f.n_closed, 1);
    assert_string_equal(f.reasons[0], "forced close"); /* NULL reason */
    fake_stop(&f);
}

/* Asked by the server on a WebSocket: the queue is kept and flushed through wake; the
 * close frame is the transport's business once it is written. */
static void test_close_flush_websocket(void **state)
{
    fake_t f;
    eio_conn_t ws;
    eio_session_t *s;
    char out[512];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_WEBSOCKET, &ws);
    drain(s, out, sizeof(out));
    assert_int_equal(send_text(s, "4a", 0), SIO_OK);
    f.wakes = 0;
    eio_session_close(s, "forced close");
    assert_int_equal(f.wakes, 1);
    assert_int_equal(f.closes, 0);
    assert_int_equal(s->q.len, 1);
    assert_ptr_equal(ws.s, s);
    assert_null(eio__session_find(f.srv, eio_session_id(s)));
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.n_closed, 1);
    fake_stop(&f);
}

/* Our verdict on a bad client drops the queue and closes with the reason's code; a
 * client that leaves drops it too and gets a normal close. */
static void test_close_error_and_client(void **state)
{
    fake_t f;
    eio_conn_t a, b, get;
    eio_session_t *s, *t, *u;
    cd_eio_packet_t close_pkt = {.type = CD_EIO_CLOSE};
    char out[512];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_WEBSOCKET, &a);
    t = open_session(&f, EIO_TRANSPORT_WEBSOCKET, &b);
    u = open_session(&f, EIO_TRANSPORT_POLLING, &get);
    drain(u, out, sizeof(out));
    assert_int_equal(send_text(s, "4x", 0), SIO_OK);
    eio__session_close(s, "parse error", EIO_CLOSE_ERROR);
    assert_int_equal(s->q.len, 0);
    assert_int_equal(f.closes, 1);
    assert_ptr_equal(f.closed[0], WSI(&a));
    assert_int_equal(f.close_codes[0], CD_WS_CLOSE_PROTOCOL_ERR);
    assert_null(a.s);
    assert_null(s->ws);

    eio__session_packet(t, &close_pkt);
    assert_int_equal(t->close_mode, EIO_CLOSE_CLIENT);
    assert_int_equal(f.closes, 2);
    assert_int_equal(f.close_codes[1], CD_WS_CLOSE_NORMAL);

    /* polling: the held GET is woken to say its last word */
    assert_int_equal(send_text(u, "4y", 0), SIO_OK);
    f.wakes = 0;
    eio__session_close(u, "transport close", EIO_CLOSE_CLIENT);
    assert_int_equal(f.wakes, 1);
    assert_int_equal(u->q.len, 0);
    assert_null(eio__session_find(f.srv, eio_session_id(u)));

    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.n_closed, 3);
    assert_string_equal(f.reasons[0], "parse error");
    assert_string_equal(f.reasons[1], "transport close");
    assert_string_equal(f.reasons[2], "transport close");
    /* s and t, left without a connection, went right after their on_close; u waits
     * for its GET */
    assert_int_equal(f.srv->sessions.next, &u->link);
    eio__detach(u, WSI(&get), &get);
    eio__session_maybe_free(u);
    fake_stop(&f);
    assert_int_equal(f.n_closed, 3);
}

/* ---------------------------------------------------------------- limits */

static void test_max_queue(void **state)
{
    fake_t f;
    eio_conn_t ws;
    eio_session_t *s;
    char out[512];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_WEBSOCKET, &ws);
    drain(s, out, sizeof(out));
    for (int i = 0; i < 4; i++)
        assert_int_equal(send_text(s, "4x", 0), SIO_OK);
    /* a catch-up burst is not counted */
    assert_int_equal(send_text(s, "4backlog", EIO_SEND_BACKLOG), SIO_OK);
    f.in_close_call = 1;
    assert_int_equal(send_text(s, "4over", 0), SIO_ECLOSED);
    f.in_close_call = 0;
    assert_int_equal(s->state, EIO_S_CLOSING);
    assert_int_equal(s->q.len, 0);
    assert_int_equal(f.close_codes[0], CD_WS_CLOSE_UNEXPECTED_CONDITION);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.n_closed, 1);
    assert_string_equal(f.reasons[0], "transport error");
    fake_stop(&f);
}

static void test_max_queue_bytes(void **state)
{
    fake_t f;
    eio_conn_t ws;
    eio_session_t *s;
    char out[512], big[101];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_WEBSOCKET, &ws);
    drain(s, out, sizeof(out));
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[0] = '4';
    assert_int_equal(send_text(s, big, EIO_SEND_BACKLOG), SIO_OK); /* backlog: not counted */
    big[60] = '\0';
    assert_int_equal(send_text(s, big, 0), SIO_OK); /* 60 bytes */
    big[40] = '\0';
    assert_int_equal(send_text(s, big, 0), SIO_OK); /* 100: at the limit */
    assert_int_equal(send_text(s, "4", 0), SIO_ECLOSED);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_string_equal(f.reasons[0], "transport error");
    fake_stop(&f);
}

/* Volatile frames go only where the transport can take them right now. */
static void test_volatile(void **state)
{
    fake_t f;
    eio_conn_t ws, get;
    eio_session_t *s, *p;
    char out[512];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_WEBSOCKET, &ws);
    p = open_session(&f, EIO_TRANSPORT_POLLING, &get);
    drain(s, out, sizeof(out));
    drain(p, out, sizeof(out));

    assert_int_equal(send_text(s, "4v", EIO_SEND_VOLATILE), SIO_OK);
    ws.want_write = 1; /* the kernel pushed back: the queue waits for WRITEABLE */
    assert_int_equal(send_text(s, "4v", EIO_SEND_VOLATILE), SIO_EBUSY);
    assert_int_equal(send_text(s, "4n", 0), SIO_OK); /* others still queue */
    drain(s, out, sizeof(out));
    assert_string_equal(out, "4v|4n");

    assert_int_equal(send_text(p, "4v", EIO_SEND_VOLATILE), SIO_OK); /* a GET is held */
    get.noop = 1;
    assert_int_equal(send_text(p, "4v", EIO_SEND_VOLATILE), SIO_EBUSY);
    get.noop = 0;
    p->upgrading = 1;
    assert_int_equal(send_text(p, "4v", EIO_SEND_VOLATILE), SIO_EBUSY);
    p->upgrading = 0;
    eio__detach(p, WSI(&get), &get); /* no GET out */
    assert_int_equal(send_text(p, "4v", EIO_SEND_VOLATILE), SIO_EBUSY);
    drain(p, out, sizeof(out));
    assert_string_equal(out, "4v");
    assert_int_equal(s->state, EIO_S_OPEN);
    assert_int_equal(p->state, EIO_S_OPEN);
    fake_stop(&f);
}

/* ---------------------------------------------------------------- upgrade */

/* What eio_ws.c does when a probe WebSocket names the session. */
static void attach_probe(eio_session_t *s, eio_conn_t *probe)
{
    memset(probe, 0, sizeof(*probe));
    probe->s = s;
    probe->role = EIO_ROLE_PROBE;
    eio__upgrade_start(s, WSI(probe));
}

static void test_upgrade(void **state)
{
    fake_t f;
    eio_conn_t get, probe;
    eio_session_t *s;
    char out[512];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_POLLING, &get);
    drain(s, out, sizeof(out));
    attach_probe(s, &probe);
    assert_ptr_equal(s->probe, WSI(&probe));

    /* "2probe": the held GET is released with noop */
    eio__upgrade_probe(s);
    assert_true(s->upgrading);
    assert_int_equal(f.noops, 1);
    assert_ptr_equal(f.nooped[0], WSI(&get));
    eio__detach(s, WSI(&get), &get); /* the transport answered it */
    assert_int_equal(send_text(s, "4during", 0), SIO_OK);

    /* "5": the session moves to the WebSocket, and what queued meanwhile goes there */
    f.wakes = 0;
    eio__upgrade_finish(s);
    assert_null(s->probe);
    assert_ptr_equal(s->ws, WSI(&probe));
    assert_int_equal(probe.role, EIO_ROLE_WS);
    assert_false(s->upgrading);
    assert_string_equal(eio_session_transport(s), "websocket");
    assert_int_equal(f.wakes, 1);
    assert_int_equal(f.noops, 1);
    drain(s, out, sizeof(out));
    assert_string_equal(out, "4during");
    assert_int_equal(f.closes, 0);
    /* the upgrade timer was stopped: the session outlives upgradeTimeout */
    assert_int_equal(uv_is_active((uv_handle_t *)&s->upg_timer), 0);
    fake_stop(&f);
}

/* A client that did not pause its polling still has a GET out at "5": it gets noop. */
static void test_upgrade_finish_with_get(void **state)
{
    fake_t f;
    eio_conn_t get, probe;
    eio_session_t *s;
    char out[512];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_POLLING, &get);
    drain(s, out, sizeof(out));
    attach_probe(s, &probe);
    eio__upgrade_probe(s);
    eio__upgrade_finish(s);
    assert_int_equal(f.noops, 2);
    assert_ptr_equal(f.nooped[1], WSI(&get));
    eio__detach(s, WSI(&get), &get);
    fake_stop(&f);
}

static int probe_closed(fake_t *f, void *arg)
{
    return f->closes > 0;
}

/* No "5" within upgradeTimeout: the probe is closed and the session goes on polling. */
static void test_upgrade_timeout(void **state)
{
    fake_t f;
    eio_conn_t get, probe;
    eio_session_t *s;
    char out[512];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_POLLING, &get);
    drain(s, out, sizeof(out));
    attach_probe(s, &probe);
    eio__upgrade_probe(s);
    run_until(&f, probe_closed, NULL, 500);
    assert_int_equal(f.closes, 1);
    assert_ptr_equal(f.closed[0], WSI(&probe));
    assert_int_equal(f.close_codes[0], CD_WS_CLOSE_NORMAL);
    assert_null(s->probe);
    assert_null(probe.s);
    assert_false(s->upgrading);
    assert_int_equal(s->state, EIO_S_OPEN);
    assert_string_equal(eio_session_transport(s), "polling");
    eio__detach(s, WSI(&get), &get);
    fake_stop(&f);
}

/* The probe fails (eio_ws.c saw something else than "2probe"/"5"), or the session
 * closes while it is probing: the probe is cut loose either way. */
static void test_upgrade_abort(void **state)
{
    fake_t f;
    eio_conn_t get, probe, probe2;
    eio_session_t *s;
    char out[512];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_POLLING, &get);
    drain(s, out, sizeof(out));
    attach_probe(s, &probe);
    eio__upgrade_probe(s);
    eio__upgrade_abort(s, WSI(&probe), &probe);
    assert_null(s->probe);
    assert_false(s->upgrading);
    assert_int_equal(f.closes, 0);              /* closing it is the caller's business */
    eio__upgrade_abort(s, WSI(&probe), &probe); /* harmless twice */

    attach_probe(s, &probe2);
    eio_session_close(s, "forced close");
    assert_int_equal(f.closes, 1);
    assert_ptr_equal(f.closed[0], WSI(&probe2));
    assert_null(probe2.s);
    eio__detach(s, WSI(&get), &get);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.n_closed, 1);
    fake_stop(&f);
}

/* ---------------------------------------------------------------- shutdown */

static void test_shutdown(void **state)
{
    fake_t f;
    eio_conn_t ws, get;
    eio_session_t *s, *p;
    char out[512];

    fake_start(&f, NULL);
    s = open_session(&f, EIO_TRANSPORT_WEBSOCKET, &ws);
    p = open_session(&f, EIO_TRANSPORT_POLLING, &get);
    drain(s, out, sizeof(out));
    drain(p, out, sizeof(out));
    assert_int_equal(send_text(s, "4last", 0), SIO_OK);
    f.srv->phase = EIO_SRV_DRAINING;
    eio__sessions_shutdown(f.srv);
    assert_int_equal(s->close_mode, EIO_CLOSE_FLUSH);
    assert_int_equal(s->q.len, 1); /* flushed, not dropped */
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.n_closed, 2);
    assert_string_equal(f.reasons[0], "server shutting down");
    assert_string_equal(f.reasons[1], "server shutting down");
    assert_true(f.shutdown_steps > 0); /* told after the pending on_close */
    f.shutdown_steps = 0;
    eio__sessions_force_free(f.srv); /* end of the drain: cut loose */
    assert_null(ws.s);
    assert_null(get.s);
    assert_true(base_list_empty(&f.srv->sessions));
    assert_true(f.shutdown_steps > 0);
    fake_stop(&f);
    assert_int_equal(f.n_closed, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_polling),
        cmocka_unit_test(test_open_websocket),
        cmocka_unit_test(test_queue_frames),
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_heartbeat_lazy_and_direction),
        cmocka_unit_test(test_close_flush_polling),
        cmocka_unit_test(test_close_flush_linger),
        cmocka_unit_test(test_close_flush_websocket),
        cmocka_unit_test(test_close_error_and_client),
        cmocka_unit_test(test_max_queue),
        cmocka_unit_test(test_max_queue_bytes),
        cmocka_unit_test(test_volatile),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_upgrade_finish_with_get),
        cmocka_unit_test(test_upgrade_timeout),
        cmocka_unit_test(test_upgrade_abort),
        cmocka_unit_test(test_shutdown),
    };
    return cmocka_run_group_tests_name("eio_session", tests, NULL, NULL);
}
