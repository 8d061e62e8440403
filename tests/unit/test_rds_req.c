/* test_rds_req.c -- adapter/redis/rds_req.c: cluster requests between two nodes (two
 * rds_node_t contexts on one loop) against a real redis-server (rds_nodes_fixture.h).
 *
 * Node 0 asks, node 1 answers through its fake host (the adp_host_t callbacks a namespace
 * would implement); raw connections play a frozen node (a subscriber that never answers)
 * and the Node.js peers (an emitter's requests without uid, legacy forms, type 0). Each
 * test starts its own redis-server on a free loopback port (skipped when redis-server is
 * not on PATH) and stops it by PID; every wait is bounded; each test ends with every
 * handle closed and uv_loop_close() == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <signal.h>

#include "rds_nodes_fixture.h"

static int setup(void **state)
{
    return rn_setup(state, "test-rds-req");
}

static int teardown(void **state)
{
    return rn_teardown(state);
}

/* ------------------------------------------------------------------ outcomes */

/* What a list or count request reported. */
typedef struct list_res {
    int calls, err;
    cJSON *list; /* owned once reported */
    size_t n;
} list_res_t;

static void list_cb(void *ud, int err, cJSON *list)
{
    list_res_t *r = ud;
    r->calls++;
    r->err = err;
    r->list = list;
}

static void count_cb(void *ud, int err, size_t n)
{
    list_res_t *r = ud;
    r->calls++;
    r->err = err;
    r->n = n;
}

/* What a broadcast with acks reported. */
typedef struct ack_res {
    int servers, counts, acks, ends;
    int servers_err;
    size_t n_servers, clients;
} ack_res_t;

static void ev_servers(void *ud, int err, size_t n)
{
    ack_res_t *r = ud;
    r->servers++;
    r->servers_err = err;
    r->n_servers = n;
}

static void ev_count(void *ud, size_t n)
{
    ack_res_t *r = ud;
    r->counts++;
    r->clients += n;
}

static void ev_ack(void *ud, const cJSON *arg, const sio_bin_t *bins, size_t n)
{
    ack_res_t *r = ud;
    if (cJSON_IsNumber(arg))
        r->acks++;
}

static void ev_end(void *ud)
{
    ((ack_res_t *)ud)->ends++;
}

/* Two started nodes with request timeout timeout_ms. */
static void two_nodes(fx_t *f, unsigned timeout_ms)
{
    rt_redis_start(f);
    node_new(f, 0, 0, timeout_ms);
    node_new(f, 1, 0, timeout_ms);
    node_start(f, 0);
    node_start(f, 1);
}

/* ["name"] as serverSideEmit arguments. */
static cJSON *args_of(const char *name)
{
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(name));
    return args;
}

/* Publishes payload on channel through a raw command connection. */
static void publish_raw(fx_t *f, rds_conn_t *c, const char *channel, const char *payload)
{
    const char *argv[3] = {"PUBLISH", channel, payload};
    assert_int_equal(rds_conn_command_argv(c, NULL, NULL, 3, argv, NULL), SIO_OK);
}

/* ------------------------------------------------------------------ asking */

/* serverCount is PUBSUB NUMSUB of the request channel: every node of the namespace. */
static void test_server_count(void **state)
{
    fx_t *f = *state;
    list_res_t r = {0};

    RT_REQUIRE_REDIS();
    two_nodes(f, 2000);
    adp_adapter_t *a = f->h[0].a;

    assert_int_equal(a->vt->server_count(a, count_cb, &r), SIO_OK);
    assert_int_equal(r.calls, 0); /* never from inside the call */
    RT_WAIT_FOR(f, r.calls == 1, 3000);
    assert_int_equal(r.err, SIO_OK);
    assert_int_equal(r.n, 2);

    /* node 1 gone: only this one is left */
    node_close(f, 1);
    memset(&r, 0, sizeof(r));
    assert_int_equal(a->vt->server_count(a, count_cb, &r), SIO_OK);
    RT_WAIT_FOR(f, r.calls == 1, 3000);
    assert_int_equal(r.err, SIO_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(a->vt->server_count(a, NULL, NULL), SIO_EINVAL);
}

/* fetchSockets: the other node's sockets, matched by the opts it was sent; the answer
 * goes to the requester's own response channel, and no node answers itself. */
static void test_fetch_sockets(void **state)
{
    fx_t *f = *state;
    const char *rooms[1] = {"r"}, *except[1] = {"x"};
    adp_opts_t o = {.rooms = rooms, .n_rooms = 1, .except = except, .n_except = 1};
    list_res_t r = {0};
    tap_t t = {0};
    char chan[64];

    RT_REQUIRE_REDIS();
    two_nodes(f, 2000);
    adp_adapter_t *a = f->h[0].a;
    snprintf(chan, sizeof(chan), "socket.io-response#/#%s#", rds_node_uid(f->r[0]));
    rds_conn_t *tap = tap_new(f, &t, chan);

    assert_int_equal(a->vt->remote_fetch(a, &o, list_cb, &r), SIO_OK);
    RT_WAIT_FOR(f, r.calls == 1, 3000);
    assert_int_equal(r.err, SIO_OK);
    assert_int_equal(cJSON_GetArraySize(r.list), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(r.list, 0), "id")->valuestring,
                        "sb");
    cJSON_Delete(r.list);
    assert_int_equal(f->h[1].fetched, 1);
    assert_string_equal(f->h[1].fetch_target, "r");
    assert_int_equal(f->h[0].fetched, 0); /* its own request is not answered by itself */
    RT_WAIT_FOR(f, t.messages == 1, 3000);
    assert_non_null(memmem(t.payload, t.len, "\"sockets\":[{\"id\":\"sb\"}]", 23));
    assert_int_equal(a->vt->remote_fetch(a, NULL, list_cb, &r), SIO_EINVAL);
    assert_int_equal(a->vt->remote_fetch(a, &o, NULL, NULL), SIO_EINVAL);
    tap_close(f, tap);
}

/* allRooms: the rooms the other node has. */
static void test_all_rooms(void **state)
{
    fx_t *f = *state;
    list_res_t r = {0};

    RT_REQUIRE_REDIS();
    two_nodes(f, 2000);
    adp_adapter_t *a = f->h[0].a, *b = f->h[1].a;

    adp_rooms_add(&a->rooms, "sa", NULL, "room-a"); /* not reported: the caller has its own */
    adp_rooms_add(&b->rooms, "sb", NULL, "room-b");
    assert_int_equal(a->vt->remote_all_rooms(a, list_cb, &r), SIO_OK);
    RT_WAIT_FOR(f, r.calls == 1, 3000);
    assert_int_equal(r.err, SIO_OK);
    assert_int_equal(cJSON_GetArraySize(r.list), 1);
    assert_string_equal(cJSON_GetArrayItem(r.list, 0)->valuestring, "room-b");
    cJSON_Delete(r.list);
}

/* socketsJoin / socketsLeave / disconnectSockets reach the other node's host with the
 * targets and rooms they were given; fire and forget, never applied by the sender. */
static void test_remote_apply(void **state)
{
    fx_t *f = *state;
    const char *target[1] = {"r"}, *except[1] = {"x"}, *rooms[2] = {"joined", "too"};
    adp_opts_t o = {.rooms = target, .n_rooms = 1, .except = except, .n_except = 1};
    adp_opts_t all = {0};

    RT_REQUIRE_REDIS();
    two_nodes(f, 2000);
    adp_adapter_t *a = f->h[0].a;
    host_t *h = &f->h[1];

    assert_int_equal(a->vt->remote_apply(a, ADP_APPLY_JOIN, &o, rooms, 2, 0), SIO_OK);
    RT_WAIT_FOR(f, h->applied == 1, 3000);
    assert_int_equal(h->apply_what, ADP_APPLY_JOIN);
    assert_string_equal(h->apply_room, "joined");
    assert_int_equal(h->apply_n_rooms, 2);
    assert_string_equal(h->apply_target, "r");
    assert_string_equal(h->apply_except, "x");

    assert_int_equal(a->vt->remote_apply(a, ADP_APPLY_LEAVE, &all, rooms, 1, 0), SIO_OK);
    RT_WAIT_FOR(f, h->applied == 2, 3000);
    assert_int_equal(h->apply_what, ADP_APPLY_LEAVE);
    assert_string_equal(h->apply_room, "joined");
    assert_string_equal(h->apply_target, "");

    assert_int_equal(a->vt->remote_apply(a, ADP_APPLY_DISCONNECT, &o, NULL, 0, 1), SIO_OK);
    RT_WAIT_FOR(f, h->applied == 3, 3000);
    assert_int_equal(h->apply_what, ADP_APPLY_DISCONNECT);
    assert_int_equal(h->apply_n_rooms, 0);
    assert_true(h->apply_close);
    assert_string_equal(h->apply_target, "r");

    barrier(f, 0, 1); /* node 0's publishes reached node 1 in order: nothing else came */
    assert_int_equal(f->h[0].applied, 0);
    assert_int_equal(h->applied, 3);
    assert_int_equal(a->vt->remote_apply(a, ADP_APPLY_JOIN, NULL, rooms, 1, 0), SIO_EINVAL);
}

/* serverSideEmit without an ack: the other node's handler runs with no request id. */
static void test_server_emit(void **state)
{
    fx_t *f = *state;
    cJSON *args = args_of("hello");

    RT_REQUIRE_REDIS();
    two_nodes(f, 2000);
    adp_adapter_t *a = f->h[0].a;

    assert_int_equal(a->vt->server_emit(a, args, NULL, NULL), SIO_OK);
    RT_WAIT_FOR(f, f->h[1].server_events == 1, 3000);
    assert_string_equal(f->h[1].server_event, "hello");
    assert_string_equal(f->h[1].server_request, "");
    barrier(f, 0, 1);
    assert_int_equal(f->h[0].server_events, 0);
    cJSON_Delete(args);
    args = cJSON_CreateObject(); /* not [event, ...] */
    assert_int_equal(a->vt->server_emit(a, args, NULL, NULL), SIO_EINVAL);
    cJSON_Delete(args);
}

/* serverSideEmit with an ack: the other node's handler answers later, through
 * server_emit_reply; no value stands for undefined and reads back as null. */
static void test_server_emit_ack(void **state)
{
    fx_t *f = *state;
    list_res_t r = {0};
    cJSON *args = args_of("hello");

    RT_REQUIRE_REDIS();
    two_nodes(f, 2000);
    adp_adapter_t *a = f->h[0].a, *b = f->h[1].a;

    assert_int_equal(a->vt->server_emit(a, args, list_cb, &r), SIO_OK);
    RT_WAIT_FOR(f, f->h[1].server_events == 1, 3000);
    assert_int_equal(f->h[0].server_events, 0);
    assert_string_not_equal(f->h[1].server_request, "");
    cJSON *answer = cJSON_CreateNumber(42);
    assert_int_equal(b->vt->server_emit_reply(b, f->h[1].server_request, answer), SIO_OK);
    cJSON_Delete(answer);
    RT_WAIT_FOR(f, r.calls == 1, 3000);
    assert_int_equal(r.err, SIO_OK);
    assert_int_equal(cJSON_GetArraySize(r.list), 1);
    assert_int_equal(cJSON_GetArrayItem(r.list, 0)->valueint, 42);
    cJSON_Delete(r.list);

    /* an answer without a value; a second answer to the same request is ignored */
    memset(&r, 0, sizeof(r));
    assert_int_equal(a->vt->server_emit(a, args, list_cb, &r), SIO_OK);
    RT_WAIT_FOR(f, f->h[1].server_events == 2, 3000);
    assert_int_equal(b->vt->server_emit_reply(b, f->h[1].server_request, NULL), SIO_OK);
    RT_WAIT_FOR(f, r.calls == 1, 3000);
    assert_int_equal(r.err, SIO_OK);
    assert_true(cJSON_IsNull(cJSON_GetArrayItem(r.list, 0)));
    cJSON_Delete(r.list);
    assert_int_equal(b->vt->server_emit_reply(b, f->h[1].server_request, NULL), SIO_OK);
    rt_run_for(f, 50);
    assert_int_equal(r.calls, 1);
    assert_int_equal(b->vt->server_emit_reply(b, NULL, NULL), SIO_EINVAL);
    cJSON_Delete(args);
}

/* Broadcast with acks: node 1 reaches 2 clients, both answer; the requester hears the
 * server count, the client count and each ack, then the end, once. */
static void test_broadcast_ack(void **state)
{
    fx_t *f = *state;
    adp_opts_t all = {0};
    ack_res_t ar = {0};
    adp_ack_events_t ev = {&ar, ev_servers, ev_count, ev_ack, ev_end};

    RT_REQUIRE_REDIS();
    two_nodes(f, 2000);
    adp_adapter_t *a = f->h[0].a, *b = f->h[1].a;

    cd_sio_packet_t *p = event("ask");
    assert_int_equal(a->vt->broadcast_ack(a, p, &all, 1500, &ev), SIO_OK);
    cd_sio_packet_free(p);
    RT_WAIT_FOR(f, f->h[1].deliver_acks == 1, 3000);
    assert_string_equal(f->h[1].ack_event, "ask");
    assert_int_equal(f->h[1].ack_timeout_ms, 1500); /* the others are told the timeout */
    RT_WAIT_FOR(f, ar.counts == 1, 3000);
    assert_int_equal(ar.servers, 1);
    assert_int_equal(ar.servers_err, SIO_OK);
    assert_int_equal(ar.n_servers, 2);
    assert_int_equal(ar.clients, 2);
    assert_int_equal(f->h[0].deliver_acks, 0);
    for (int i = 0; i < 2; i++) {
        cJSON *v = cJSON_CreateNumber(i);
        assert_int_equal(b->vt->broadcast_ack_reply(b, f->h[1].ack_request, v, NULL, 0), SIO_OK);
        cJSON_Delete(v);
    }
    RT_WAIT_FOR(f, ar.ends == 1, 3000);
    assert_int_equal(ar.acks, 2);
    rt_run_for(f, 50);
    assert_int_equal(ar.ends, 1);

    /* no client reached there: over as soon as the count arrives */
    memset(&ar, 0, sizeof(ar));
    f->h[1].ack_clients = 0;
    p = event("nobody");
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(a->vt->broadcast_ack(a, p, &all, 1500, &ev), SIO_OK);
    cd_sio_packet_free(p);
    RT_WAIT_FOR(f, ar.ends == 1, 3000);
    assert_true(uv_now(&f->loop) - t0 < 1000);
    assert_int_equal(ar.counts, 1);
    assert_int_equal(ar.clients, 0);
    assert_int_equal(ar.acks, 0);
    assert_int_equal(a->vt->broadcast_ack(a, NULL, &all, 0, &ev), SIO_EINVAL);
    assert_int_equal(b->vt->broadcast_ack_reply(b, NULL, NULL, NULL, 0), SIO_EINVAL);
}

/* ------------------------------------------------------------------ not answered */

/* A subscriber that never answers (a frozen node): the request ends at its timeout
 * with what the others said. */
static void test_request_timeout(void **state)
{
    fx_t *f = *state;
    tap_t t = {0};
    adp_opts_t all = {0};
    list_res_t r = {0};

    RT_REQUIRE_REDIS();
    two_nodes(f, 300);
    rds_conn_t *mute = tap_new(f, &t, "socket.io-request#/#");
    adp_adapter_t *a = f->h[0].a;

    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(a->vt->remote_fetch(a, &all, list_cb, &r), SIO_OK);
    RT_WAIT_FOR(f, r.calls == 1, 3000);
    uint64_t took = uv_now(&f->loop) - t0;
    assert_int_equal(r.err, SIO_ETIMEDOUT);
    assert_int_equal(cJSON_GetArraySize(r.list), 1); /* node 1's answer */
    assert_true(took >= 250 && took < 1500);
    cJSON_Delete(r.list);
    rds_node_stats_t st;
    rds_node_get_stats(f->r[0], &st);
    assert_int_equal(st.request_timeouts, 1);
    tap_close(f, mute);
}

/* The other node is up but its handler never acks: serverSideEmit and a broadcast whose
 * clients do not all answer end at their timeouts with what came. */
static void test_unanswered_acks(void **state)
{
    fx_t *f = *state;
    list_res_t r = {0};
    adp_opts_t all = {0};
    ack_res_t ar = {0};
    adp_ack_events_t ev = {&ar, ev_servers, ev_count, ev_ack, ev_end};
    cJSON *args = args_of("hello");
    rds_node_stats_t st;

    RT_REQUIRE_REDIS();
    two_nodes(f, 300);
    adp_adapter_t *a = f->h[0].a, *b = f->h[1].a;

    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(a->vt->server_emit(a, args, list_cb, &r), SIO_OK);
    RT_WAIT_FOR(f, r.calls == 1, 3000);
    assert_int_equal(r.err, SIO_ETIMEDOUT);
    assert_int_equal(cJSON_GetArraySize(r.list), 0);
    assert_true(uv_now(&f->loop) - t0 >= 250);
    assert_int_equal(f->h[1].server_events, 1);
    cJSON_Delete(r.list);
    cJSON_Delete(args);

    /* 2 clients reached, 1 answers; the broadcast's own timeout (400 ms) bounds it */
    cd_sio_packet_t *p = event("ask");
    t0 = uv_now(&f->loop);
    assert_int_equal(a->vt->broadcast_ack(a, p, &all, 400, &ev), SIO_OK);
    cd_sio_packet_free(p);
    RT_WAIT_FOR(f, ar.counts == 1, 3000);
    cJSON *v = cJSON_CreateNumber(1);
    assert_int_equal(b->vt->broadcast_ack_reply(b, f->h[1].ack_request, v, NULL, 0), SIO_OK);
    cJSON_Delete(v);
    RT_WAIT_FOR(f, ar.ends == 1, 3000);
    assert_true(uv_now(&f->loop) - t0 >= 350);
    assert_int_equal(ar.acks, 1);
    rds_node_get_stats(f->r[0], &st);
    assert_int_equal(st.request_timeouts, 2);
}

/* A request pending when its node closes ends once, with SIO_ECLOSED; a closed node
 * refuses new ones with SIO_EREDIS (it works locally only). */
static void test_cancel_on_close(void **state)
{
    fx_t *f = *state;
    tap_t t = {0};
    adp_opts_t all = {0};
    list_res_t r = {0}, r2 = {0};
    int closed = 0;

    RT_REQUIRE_REDIS();
    two_nodes(f, 5000);
    rds_conn_t *mute = tap_new(f, &t, "socket.io-request#/#");
    adp_adapter_t *a = f->h[0].a;

    assert_int_equal(a->vt->remote_fetch(a, &all, list_cb, &r), SIO_OK);
    RT_WAIT_FOR(f, t.messages == 1, 3000); /* published: waiting for the mute one */
    assert_int_equal(r.calls, 0);
    rds_node_close(f->r[0], closed_cb, &closed);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, SIO_ECLOSED);
    cJSON_Delete(r.list);
    RT_WAIT_FOR(f, closed == 1, 5000);
    assert_int_equal(a->vt->remote_fetch(a, &all, list_cb, &r2), SIO_EREDIS);
    assert_int_equal(a->vt->server_count(a, count_cb, &r2), SIO_EREDIS);
    assert_int_equal(a->vt->remote_apply(a, ADP_APPLY_JOIN, &all, NULL, 0, 0), SIO_EREDIS);
    rt_run_for(f, 50);
    assert_int_equal(r2.calls, 0);
    assert_int_equal(r.calls, 1);
    a->vt->destroy(a);
    rds_node_free(f->r[0]);
    f->r[0] = NULL;
    tap_close(f, mute);
}

/* Redis down: every request is refused at once with SIO_EREDIS and its callback never
 * runs; the failed publishes are counted. */
static void test_redis_down(void **state)
{
    fx_t *f = *state;
    adp_opts_t all = {0};
    list_res_t r = {0};
    ack_res_t ar = {0};
    adp_ack_events_t ev = {&ar, ev_servers, ev_count, ev_ack, ev_end};
    cJSON *args = args_of("hello");
    const char *rooms[1] = {"x"};
    rds_node_stats_t st;

    RT_REQUIRE_REDIS();
    two_nodes(f, 2000);
    adp_adapter_t *a = f->h[0].a;
    rt_redis_kill(&f->pid);
    RT_WAIT_FOR(f, (rds_node_get_stats(f->r[0], &st), !st.command_up), 3000);

    assert_int_equal(a->vt->server_count(a, count_cb, &r), SIO_EREDIS);
    assert_int_equal(a->vt->remote_fetch(a, &all, list_cb, &r), SIO_EREDIS);
    assert_int_equal(a->vt->remote_all_rooms(a, list_cb, &r), SIO_EREDIS);
    assert_int_equal(a->vt->server_emit(a, args, list_cb, &r), SIO_EREDIS);
    assert_int_equal(a->vt->server_emit(a, args, NULL, NULL), SIO_EREDIS);
    assert_int_equal(a->vt->remote_apply(a, ADP_APPLY_JOIN, &all, rooms, 1, 0), SIO_EREDIS);
    assert_int_equal(a->vt->remote_apply(a, ADP_APPLY_DISCONNECT, &all, NULL, 0, 1), SIO_EREDIS);
    cd_sio_packet_t *p = event("ask");
    assert_int_equal(a->vt->broadcast_ack(a, p, &all, 500, &ev), SIO_EREDIS);
    cd_sio_packet_free(p);
    rt_run_for(f, 100);
    assert_int_equal(r.calls, 0);
    assert_int_equal(ar.servers + ar.counts + ar.acks + ar.ends, 0);
    rds_node_get_stats(f->r[0], &st);
    assert_int_equal(st.publish_failures, 4); /* emit, join, disconnect, broadcast */
    cJSON_Delete(args);
}

/* ------------------------------------------------------------------ other peers */

/* Requests from Node.js peers: the emitter's carry no uid and are applied by every
 * node; the legacy {sid, room} form is applied where the socket lives and answered
 * {requestId}; type 0 (SOCKETS, which only v8 answers) lists the matching socket ids. */
static void test_requests_from_other_peers(void **state)
{
    fx_t *f = *state;
    tap_t cmd = {0}, any = {0}, mine = {0};

    RT_REQUIRE_REDIS();
    two_nodes(f, 2000);
    rds_conn_t *pub = tap_new(f, &cmd, NULL);
    rds_conn_t *res = tap_new(f, &any, "socket.io-response#/#");
    rds_conn_t *res_x = tap_new(f, &mine, "socket.io-response#/#x#");
    adp_rooms_add(&f->h[1].a->rooms, "s1", NULL, "s1");
    adp_rooms_add(&f->h[1].a->rooms, "s1", NULL, "r");

    /* the emitter's socketsLeave (spec §3): both nodes apply it */
    publish_raw(f, pub, "socket.io-request#/#",
                "{\"type\":3,\"opts\":{\"rooms\":[\"room1\"],\"except\":[],\"flags\":{}},"
                "\"rooms\":[\"room2\"]}");
    RT_WAIT_FOR(f, f->h[0].applied == 1 && f->h[1].applied == 1, 3000);
    assert_int_equal(f->h[0].apply_what, ADP_APPLY_LEAVE);
    assert_string_equal(f->h[0].apply_room, "room2");
    assert_string_equal(f->h[1].apply_target, "room1");

    /* legacy join of one socket: applied and answered only where s1 lives */
    publish_raw(f, pub, "socket.io-request#/#",
                "{\"requestId\":\"L1\",\"type\":2,\"sid\":\"s1\",\"room\":\"late\"}");
    RT_WAIT_FOR(f, f->h[1].applied == 2 && any.messages == 1, 3000);
    assert_int_equal(f->h[1].apply_what, ADP_APPLY_JOIN);
    assert_string_equal(f->h[1].apply_target, "s1");
    assert_string_equal(f->h[1].apply_room, "late");
    assert_int_equal(any.len, strlen("{\"requestId\":\"L1\"}"));
    assert_memory_equal(any.payload, "{\"requestId\":\"L1\"}", any.len);

    /* type 0 from node "x": the ids in room r, on x's own response channel */
    publish_raw(f, pub, "socket.io-request#/#",
                "{\"uid\":\"x\",\"requestId\":\"Q0\",\"type\":0,\"rooms\":[\"r\"]}");
    RT_WAIT_FOR(f, mine.messages == 2, 3000); /* both nodes answer, node 0 with none */
    barrier(f, 1, 0);
    assert_int_equal(f->h[0].applied, 1);
    assert_int_equal(any.messages, 1);

    /* garbage on the request channel is dropped; the nodes keep answering */
    publish_raw(f, pub, "socket.io-request#/#", "{\"type\":");
    publish_raw(f, pub, "socket.io-request#/#", "\xc1");
    publish_raw(f, pub, "socket.io-request#/#",
                "{\"uid\":\"x\",\"requestId\":\"Q1\",\"type\":0,\"rooms\":[\"r\"]}");
    RT_WAIT_FOR(f, mine.messages == 4, 3000);
    tap_close(f, res_x);
    tap_close(f, res);
    tap_close(f, pub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_sockets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_rooms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_emit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_emit_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broadcast_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_on_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_from_other_peers, setup, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
