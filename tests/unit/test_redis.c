/* test_redis.c -- adapter/redis.c: two nodes (two rds_node_t contexts on one loop)
 * against a real redis-server, with fake namespace hosts recording what the adapter
 * hands them, and a raw subscriber reading the bytes on the wire.
 *
 * Each test starts its own redis-server on a free loopback port (skipped when
 * redis-server is not on PATH) and stops it by PID. Every wait is bounded; "nothing
 * else arrived" is checked behind a marker broadcast from the same node (one node's
 * publishes reach the others in order). Each test ends with every handle closed and
 * uv_loop_close() == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base_alloc.h"
#include "rds_conn.h"
#include "rds_node.h"
#include "rds_wire.h"
#include "sockeye.h"

extern char **environ;

/* ------------------------------------------------------------------ fake hosts */

/* What one namespace host was handed. */
typedef struct host {
    struct fx *f;
    adp_adapter_t *a;
    int delivered;
    char last_event[64];
    char last_tail[64]; /* last data element when it is a string (an offset) */
    int applied;
    int apply_what;
    char apply_room[64];
    int fetched;
    int server_events;
    char server_request[64];
    int deliver_acks;
    char ack_request[64];
} host_t;

static void host_deliver(void *ud, const cd_sio_packet_t *pkt, const adp_opts_t *opts)
{
    host_t *h = ud;
    const cJSON *ev = pkt->data != NULL ? pkt->data->child : NULL;
    const cJSON *tail =
        pkt->data != NULL && pkt->data->child != NULL ? pkt->data->child->prev : NULL;

    h->delivered++;
    snprintf(h->last_event, sizeof(h->last_event), "%s", cJSON_IsString(ev) ? ev->valuestring : "");
    snprintf(h->last_tail, sizeof(h->last_tail), "%s",
             cJSON_IsString(tail) && tail != ev ? tail->valuestring : "");
}

static void host_apply(void *ud, adp_apply_t what, const adp_opts_t *opts, const char *const *rooms,
                       size_t n_rooms, int close)
{
    host_t *h = ud;
    h->applied++;
    h->apply_what = (int)what;
    snprintf(h->apply_room, sizeof(h->apply_room), "%s", n_rooms > 0 ? rooms[0] : "");
}

static cJSON *host_fetch(void *ud, const adp_opts_t *opts)
{
    host_t *h = ud;
    cJSON *arr = cJSON_CreateArray(), *s = cJSON_CreateObject();

    h->fetched++;
    cJSON_AddStringToObject(s, "id", "sb");
    cJSON_AddItemToArray(arr, s);
    return arr;
}

static void host_server_event(void *ud, const cJSON *args, const char *request_id)
{
    host_t *h = ud;
    h->server_events++;
    snprintf(h->server_request, sizeof(h->server_request), "%s", request_id ? request_id : "");
}

static size_t host_deliver_ack(void *ud, const cd_sio_packet_t *pkt, const adp_opts_t *opts,
                               uint64_t timeout_ms, const char *request_id)
{
    host_t *h = ud;
    h->deliver_acks++;
    snprintf(h->ack_request, sizeof(h->ack_request), "%s", request_id);
    return 2;
}

/* ------------------------------------------------------------------ fixture */

typedef struct fx {
    rds_conn_t *taps[2]; /* raw subscribers still open (closed by teardown on failure) */
    uv_loop_t loop;
    uv_timer_t deadline;
    int expired;
    char dir[64];
    int port;
    pid_t pid;
    rds_node_t *r[2];
    host_t h[2];
} fx_t;

#include "redis_fixture.h"

static int port_open(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

static void redis_start(fx_t *f)
{
    rt_redis_spawn(&f->pid, f->port, f->dir, NULL, NULL, NULL, 0);
    for (int i = 0; i < 100 && !port_open(f->port); i++)
        rt_run_for(f, 20);
    assert_true(port_open(f->port));
}

static void quiet_log(void *ud, int level, const char *msg)
{
    if (getenv("RDS_TEST_VERBOSE") != NULL)
        print_message("log %d: %s\n", level, msg);
}

/* Node i: a context and its "/" adapter with host h[i]. */
static void node_new(fx_t *f, int i, int recovery, unsigned timeout_ms)
{
    char url[64];
    rds_url_t u = {0};
    char err[128];

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->port);
    assert_int_equal(rds_url_parse(&u, url, err, sizeof(err)), SIO_OK);
    rds_node_config_t cfg = {
        .url = &u,
        .key_prefix = "sockeye",
        .channel_prefix = "socket.io",
        .request_timeout_ms = timeout_ms,
        .recovery = recovery,
        .recovery_window_ms = 60000,
        .on_log = quiet_log,
    };
    f->r[i] = rds_node_new(&f->loop, &cfg);
    rds_url_free(&u);
    assert_non_null(f->r[i]);
    f->h[i].f = f;
    adp_host_t host = {
        .ud = &f->h[i],
        .deliver = host_deliver,
        .apply = host_apply,
        .fetch = host_fetch,
        .server_event = host_server_event,
        .deliver_ack = host_deliver_ack,
    };
    f->h[i].a = rds_adapter_new(f->r[i], "/", &host);
}

typedef struct start_res {
    int done, err;
} start_res_t;

static void start_cb(void *ud, int err, const char *reason)
{
    start_res_t *s = ud;
    s->done = 1;
    s->err = err;
}

static void node_start(fx_t *f, int i)
{
    start_res_t s = {0};
    assert_int_equal(rds_node_start(f->r[i], start_cb, &s), SIO_OK);
    RT_WAIT_FOR(f, s.done, 5000);
    assert_int_equal(s.err, SIO_OK);
}

static void closed_cb(void *ud)
{
    (*(int *)ud)++;
}

static void node_close(fx_t *f, int i)
{
    int closed = 0;

    if (f->r[i] == NULL)
        return;
    rds_node_close(f->r[i], closed_cb, &closed);
    RT_WAIT_FOR(f, closed == 1, 5000);
    f->h[i].a->vt->destroy(f->h[i].a);
    rds_node_free(f->r[i]);
    f->r[i] = NULL;
}

static int setup(void **state)
{
    fx_t *f = base_calloc(1, sizeof(*f));

    rt_fixture_init(f, "test-redis");
    *state = f;
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

    /* a test that failed half-way leaves its raw subscribers: they would retry forever */
    for (int i = 0; i < 2; i++) {
        if (f->taps[i] != NULL)
            rds_conn_close(f->taps[i], NULL, NULL);
        f->taps[i] = NULL;
    }
    for (int i = 0; i < 2; i++)
        node_close(f, i);
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

/* ------------------------------------------------------------------ helpers */

static cd_sio_packet_t *event(const char *name)
{
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, "/");
    p->data = cJSON_CreateArray();
    cJSON_AddItemToArray(p->data, cJSON_CreateString(name));
    cJSON_AddItemToArray(p->data, cJSON_CreateNumber(1));
    return p;
}

static int bcast(fx_t *f, int i, const char *name, const char *room, unsigned flags)
{
    const char *rooms[1] = {room};
    adp_opts_t o = {.rooms = rooms, .n_rooms = room != NULL ? 1 : 0, .flags = flags};
    cd_sio_packet_t *p = event(name);
    adp_adapter_t *a = f->h[i].a;
    int rc = a->vt->broadcast(a, p, &o);
    cd_sio_packet_free(p);
    return rc;
}

/* Node i broadcasts a marker to everyone; waits until node j delivered it. */
static void barrier(fx_t *f, int i, int j)
{
    int before = f->h[j].delivered;
    assert_int_equal(bcast(f, i, "marker", NULL, 0), SIO_OK);
    RT_WAIT_FOR(f, f->h[j].delivered > before && strcmp(f->h[j].last_event, "marker") == 0, 3000);
}

/* A raw subscriber: the bytes on one channel. */
typedef struct tap {
    int messages;
    char payload[512];
    size_t len;
    int up;
} tap_t;

static void tap_cb(rds_conn_t *c, const rds_message_t *m, void *ud)
{
    tap_t *t = ud;
    if (m->kind != RDS_MESSAGE)
        return;
    t->messages++;
    t->len = m->payload_len < sizeof(t->payload) ? m->payload_len : sizeof(t->payload);
    memcpy(t->payload, m->payload, t->len);
}

static void tap_up(rds_conn_t *c, const rds_up_info_t *info, void *ud)
{
    ((tap_t *)ud)->up = 1;
}

static rds_conn_t *tap_new(fx_t *f, tap_t *t, const char *channel)
{
    rds_conn_config_t cc;
    rds_url_t u = {0};
    char url[64], err[128];
    rds_conn_events_t ev = {.ud = t, .on_up = tap_up, .on_log = quiet_log};

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->port);
    assert_int_equal(rds_url_parse(&u, url, err, sizeof(err)), SIO_OK);
    rds_conn_config_init(&cc);
    cc.url = &u;
    cc.subscriber = 1;
    rds_conn_t *c = rds_conn_new(&f->loop, &cc, "tap", &ev);
    rds_url_free(&u);
    assert_int_equal(rds_conn_subscribe(c, channel, tap_cb, t), SIO_OK);
    assert_int_equal(rds_conn_start(c, NULL, NULL), SIO_OK);
    for (int i = 0; i < 2; i++) {
        if (f->taps[i] == NULL) {
            f->taps[i] = c;
            break;
        }
    }
    RT_WAIT_FOR(f, t->up, 3000);
    return c;
}

static void tap_close(fx_t *f, rds_conn_t *c)
{
    int closed = 0;
    for (int i = 0; i < 2; i++) {
        if (f->taps[i] == c)
            f->taps[i] = NULL;
    }
    rds_conn_close(c, closed_cb, &closed);
    RT_WAIT_FOR(f, closed == 1, 3000);
}

/* ------------------------------------------------------------------ tests */

/* A broadcast is delivered here at once, published in the Node adapter's format on
 * the room channel, delivered by the other node, and not twice here. */
static void test_broadcast_between_nodes(void **state)
{
    fx_t *f = *state;
    tap_t t = {0};
    rds_broadcast_t b;

    RT_REQUIRE_REDIS();
    redis_start(f);
    node_new(f, 0, 0, 1000);
    node_new(f, 1, 0, 1000);
    node_start(f, 0);
    node_start(f, 1);
    adp_rooms_add(&f->h[1].a->rooms, "sb", NULL, "r");
    rds_conn_t *tap = tap_new(f, &t, "socket.io#/#r#");

    assert_int_equal(bcast(f, 0, "news", "r", 0), SIO_OK);
    assert_int_equal(f->h[0].delivered, 1); /* local, synchronously */
    RT_WAIT_FOR(f, f->h[1].delivered == 1, 3000);
    assert_string_equal(f->h[1].last_event, "news");
    RT_WAIT_FOR(f, t.messages == 1, 3000);
    assert_int_equal(rds_decode_broadcast(t.payload, t.len, &b), SIO_OK);
    assert_string_equal(b.uid, rds_node_uid(f->r[0]));
    assert_int_equal(b.opts.n_rooms, 1);
    assert_string_equal(b.opts.rooms[0], "r");
    assert_null(b.offset);
    rds_broadcast_free(&b);

    /* a room node 1 does not have: filtered before decoding; local ones stay here */
    assert_int_equal(bcast(f, 0, "elsewhere", "nobody", 0), SIO_OK);
    assert_int_equal(bcast(f, 0, "mine", NULL, ADP_LOCAL), SIO_OK);
    barrier(f, 0, 1);
    assert_int_equal(f->h[1].delivered, 2); /* news + marker */
    assert_int_equal(f->h[0].delivered, 4); /* news, elsewhere, mine, marker: once each */

    rds_node_stats_t st;
    rds_node_get_stats(f->r[1], &st);
    assert_int_equal(st.messages_in, 2);
    assert_true(st.command_up && st.subscriber_up);
    tap_close(f, tap);
}

typedef struct list_res {
    int calls, err;
    cJSON *list;
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

typedef struct ack_res {
    int servers, counts, acks, ends;
    size_t n_servers, clients;
} ack_res_t;

static void ev_servers(void *ud, int err, size_t n)
{
    ack_res_t *r = ud;
    r->servers++;
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

/* The request/response types between two Sockeye nodes. */
static void test_requests(void **state)
{
    fx_t *f = *state;
    adp_opts_t all = {0};
    list_res_t r = {0};

    RT_REQUIRE_REDIS();
    redis_start(f);
    node_new(f, 0, 0, 2000);
    node_new(f, 1, 0, 2000);
    node_start(f, 0);
    node_start(f, 1);
    adp_adapter_t *a = f->h[0].a, *b = f->h[1].a;

    assert_int_equal(a->vt->server_count(a, count_cb, &r), SIO_OK);
    RT_WAIT_FOR(f, r.calls == 1, 3000);
    assert_int_equal(r.err, SIO_OK);
    assert_int_equal(r.n, 2);

    memset(&r, 0, sizeof(r));
    assert_int_equal(a->vt->remote_fetch(a, &all, list_cb, &r), SIO_OK);
    RT_WAIT_FOR(f, r.calls == 1, 3000);
    assert_int_equal(r.err, SIO_OK);
    assert_int_equal(cJSON_GetArraySize(r.list), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(r.list, 0), "id")->valuestring,
                        "sb");
    assert_int_equal(f->h[0].fetched, 0); /* its own request is not answered by itself */
    cJSON_Delete(r.list);

    adp_rooms_add(&b->rooms, "sb", NULL, "room-b");
    memset(&r, 0, sizeof(r));
    assert_int_equal(a->vt->remote_all_rooms(a, list_cb, &r), SIO_OK);
    RT_WAIT_FOR(f, r.calls == 1, 3000);
    assert_int_equal(r.err, SIO_OK);
    assert_int_equal(cJSON_GetArraySize(r.list), 1);
    assert_string_equal(cJSON_GetArrayItem(r.list, 0)->valuestring, "room-b");
    cJSON_Delete(r.list);

    const char *rooms[1] = {"joined"};
    assert_int_equal(a->vt->remote_apply(a, ADP_APPLY_JOIN, &all, rooms, 1, 0), SIO_OK);
    RT_WAIT_FOR(f, f->h[1].applied == 1, 3000);
    assert_int_equal(f->h[1].apply_what, ADP_APPLY_JOIN);
    assert_string_equal(f->h[1].apply_room, "joined");
    assert_int_equal(f->h[0].applied, 0);

    /* server-side emit with an ack: node 1's handler answers later */
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString("hello"));
    memset(&r, 0, sizeof(r));
    assert_int_equal(a->vt->server_emit(a, args, list_cb, &r), SIO_OK);
    cJSON_Delete(args);
    RT_WAIT_FOR(f, f->h[1].server_events == 1, 3000);
    assert_int_equal(f->h[0].server_events, 0);
    cJSON *answer = cJSON_CreateNumber(42);
    assert_int_equal(b->vt->server_emit_reply(b, f->h[1].server_request, answer), SIO_OK);
    cJSON_Delete(answer);
    RT_WAIT_FOR(f, r.calls == 1, 3000);
    assert_int_equal(r.err, SIO_OK);
    assert_int_equal(cJSON_GetArrayItem(r.list, 0)->valueint, 42);
    cJSON_Delete(r.list);

    /* broadcast with acks: node 1 reaches 2 clients, both answer */
    ack_res_t ar = {0};
    adp_ack_events_t ev = {&ar, ev_servers, ev_count, ev_ack, ev_end};
    cd_sio_packet_t *p = event("ask");
    assert_int_equal(a->vt->broadcast_ack(a, p, &all, 2000, &ev), SIO_OK);
    cd_sio_packet_free(p);
    RT_WAIT_FOR(f, f->h[1].deliver_acks == 1, 3000);
    RT_WAIT_FOR(f, ar.counts == 1, 3000);
    assert_int_equal(ar.servers, 1);
    assert_int_equal(ar.n_servers, 2);
    assert_int_equal(ar.clients, 2);
    for (int i = 0; i < 2; i++) {
        cJSON *v = cJSON_CreateNumber(i);
        assert_int_equal(b->vt->broadcast_ack_reply(b, f->h[1].ack_request, v, NULL, 0), SIO_OK);
        cJSON_Delete(v);
    }
    RT_WAIT_FOR(f, ar.ends == 1, 3000);
    assert_int_equal(ar.acks, 2);
    rt_run_for(f, 50);
    assert_int_equal(ar.ends, 1);
}

/* A subscriber that never answers (a frozen node): the request ends at its timeout
 * with what the others said. */
static void test_request_timeout(void **state)
{
    fx_t *f = *state;
    tap_t t = {0};
    adp_opts_t all = {0};
    list_res_t r = {0};

    RT_REQUIRE_REDIS();
    redis_start(f);
    node_new(f, 0, 0, 300);
    node_new(f, 1, 0, 300);
    node_start(f, 0);
    node_start(f, 1);
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

/* Redis gone: the broadcast is delivered here, the caller gets SIO_EREDIS, the
 * failure is counted; Redis back: the nodes reconnect and publish again. */
static void test_redis_down_and_back(void **state)
{
    fx_t *f = *state;
    rds_node_stats_t st;

    RT_REQUIRE_REDIS();
    redis_start(f);
    node_new(f, 0, 0, 1000);
    node_new(f, 1, 0, 1000);
    node_start(f, 0);
    node_start(f, 1);
    rt_redis_kill(&f->pid);
    RT_WAIT_FOR(f, (rds_node_get_stats(f->r[0], &st), !st.command_up), 3000);
    assert_int_equal(bcast(f, 0, "down", NULL, 0), SIO_EREDIS);
    assert_int_equal(f->h[0].delivered, 1);
    rds_node_get_stats(f->r[0], &st);
    assert_int_equal(st.publish_failures, 1);

    redis_start(f);
    RT_WAIT_FOR(f,
                (rds_node_get_stats(f->r[0], &st), st.command_up && st.subscriber_up) &&
                    (rds_node_get_stats(f->r[1], &st), st.command_up && st.subscriber_up),
                10000);
    rds_node_get_stats(f->r[1], &st);
    assert_true(st.reconnects >= 2);
    barrier(f, 0, 1);
    assert_int_equal(f->h[1].delivered, 1); /* the marker only: "down" was lost */
}

/* With recovery on, a recoverable broadcast is delivered here when it comes back
 * from Redis, with its offset appended; volatile ones at once, without. */
static void test_recoverable_round_trip(void **state)
{
    fx_t *f = *state;

    RT_REQUIRE_REDIS();
    redis_start(f);
    node_new(f, 0, 1, 1000);
    node_new(f, 1, 0, 1000);
    node_start(f, 0);
    node_start(f, 1);
    assert_int_equal(bcast(f, 0, "kept", NULL, 0), SIO_OK);
    assert_int_equal(f->h[0].delivered, 0);
    RT_WAIT_FOR(f, f->h[0].delivered == 1, 3000);
    assert_string_equal(f->h[0].last_event, "kept");
    assert_non_null(strchr(f->h[0].last_tail, '-')); /* "<ms>-<seq>" */
    RT_WAIT_FOR(f, f->h[1].delivered == 1, 3000);
    assert_string_equal(f->h[1].last_tail, ""); /* node 1 has recovery off: no offset */
    assert_int_equal(bcast(f, 0, "vol", NULL, ADP_VOLATILE), SIO_OK);
    assert_int_equal(f->h[0].delivered, 2);
    assert_string_equal(f->h[0].last_tail, "");
}

/* No Redis: the start reports a clear error instead of hanging. */
static void test_start_refused(void **state)
{
    fx_t *f = *state;
    start_res_t s = {0};

    node_new(f, 0, 0, 1000);
    assert_int_equal(rds_node_start(f->r[0], start_cb, &s), SIO_OK);
    RT_WAIT_FOR(f, s.done, 5000);
    assert_int_equal(s.err, SIO_EREDIS);
    assert_int_equal(rds_node_start(f->r[0], start_cb, &s), SIO_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_broadcast_between_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down_and_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recoverable_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_refused, setup, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
