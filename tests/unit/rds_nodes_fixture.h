/* rds_nodes_fixture.h -- two Redis adapter nodes on one loop against a real redis-server,
 * for the cmocka unit tests of adapter/redis (header-only).
 *
 * test_rds_node.c (the node: broadcasts, recovery, outages) and test_rds_req.c (cluster
 * requests) drive the same setup: two rds_node_t contexts in one process, each with the
 * adapter of namespace "/" and a fake namespace host that records what the adapter hands
 * it, plus raw pub/sub connections ("taps") to read or write the bytes on a channel. This
 * header holds that setup once so the two files cannot drift.
 *
 * Include it after <cmocka.h>; it brings redis_fixture.h (the server, bounded waits).
 * Each test calls redis_start (or not, to test an unreachable Redis), node_new and
 * node_start; teardown closes whatever is left and checks uv_loop_close() == 0.
 */
#ifndef SOCKEYE_TESTS_RDS_NODES_FIXTURE_H
#define SOCKEYE_TESTS_RDS_NODES_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base_alloc.h"
#include "rds_conn.h"
#include "rds_node.h"
#include "sockeye.h"

/* ------------------------------------------------------------------ fake hosts */

/* What one namespace host was handed; one per node. */
typedef struct host {
    struct fx *f;
    adp_adapter_t *a;
    int delivered;
    char last_event[64];
    char last_tail[64]; /* last data element when it is a string (an offset) */
    int applied;
    int apply_what;
    char apply_room[64];   /* first room to join/leave, "" when none */
    size_t apply_n_rooms;  /* rooms to join/leave */
    char apply_target[64]; /* first room of opts (the sockets targeted), "" when none */
    char apply_except[64]; /* first except room of opts, "" when none */
    int apply_close;
    int fetched;
    char fetch_target[64]; /* first room of the fetch's opts */
    int server_events;
    char server_request[64]; /* request id of the last server event, "" without one */
    char server_event[64];   /* its event name */
    int deliver_acks;
    char ack_request[64];
    char ack_event[64];      /* event name of the last broadcast with acks */
    uint64_t ack_timeout_ms; /* its timeout */
    size_t ack_clients;      /* clients deliver_ack reports reaching (node_new sets 2) */
} host_t;

static inline void rn_copy_first(char *dst, size_t cap, const char *const *v, size_t n)
{
    snprintf(dst, cap, "%s", n > 0 ? v[0] : "");
}

static inline void host_deliver(void *ud, const cd_sio_packet_t *pkt, const adp_opts_t *opts)
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

static inline void host_apply(void *ud, adp_apply_t what, const adp_opts_t *opts,
                              const char *const *rooms, size_t n_rooms, int close)
{
    host_t *h = ud;
    h->applied++;
    h->apply_what = (int)what;
    rn_copy_first(h->apply_room, sizeof(h->apply_room), rooms, n_rooms);
    h->apply_n_rooms = n_rooms;
    rn_copy_first(h->apply_target, sizeof(h->apply_target), opts->rooms, opts->n_rooms);
    rn_copy_first(h->apply_except, sizeof(h->apply_except), opts->except, opts->n_except);
    h->apply_close = close;
}

/* Answers every fetch with one socket, "sb". */
static inline cJSON *host_fetch(void *ud, const adp_opts_t *opts)
{
    host_t *h = ud;
    cJSON *arr = cJSON_CreateArray(), *s = cJSON_CreateObject();

    h->fetched++;
    rn_copy_first(h->fetch_target, sizeof(h->fetch_target), opts->rooms, opts->n_rooms);
    cJSON_AddStringToObject(s, "id", "sb");
    cJSON_AddItemToArray(arr, s);
    return arr;
}

static inline void host_server_event(void *ud, const cJSON *args, const char *request_id)
{
    host_t *h = ud;
    const cJSON *ev = cJSON_IsArray(args) ? args->child : NULL;

    h->server_events++;
    snprintf(h->server_request, sizeof(h->server_request), "%s", request_id ? request_id : "");
    snprintf(h->server_event, sizeof(h->server_event), "%s",
             cJSON_IsString(ev) ? ev->valuestring : "");
}

static inline size_t host_deliver_ack(void *ud, const cd_sio_packet_t *pkt, const adp_opts_t *opts,
                                      uint64_t timeout_ms, const char *request_id)
{
    host_t *h = ud;
    const cJSON *ev = pkt->data != NULL ? pkt->data->child : NULL;

    h->deliver_acks++;
    snprintf(h->ack_request, sizeof(h->ack_request), "%s", request_id);
    snprintf(h->ack_event, sizeof(h->ack_event), "%s", cJSON_IsString(ev) ? ev->valuestring : "");
    h->ack_timeout_ms = timeout_ms;
    return h->ack_clients;
}

/* ------------------------------------------------------------------ fixture */

#define RN_TAPS 4 /* raw connections a test may hold at once */

typedef struct fx {
    rds_conn_t *taps[RN_TAPS]; /* raw connections still open (closed by teardown on failure) */
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

static inline void quiet_log(void *ud, int level, const char *msg)
{
    if (getenv("RDS_TEST_VERBOSE") != NULL)
        print_message("log %d: %s\n", level, msg);
}

/* Node i: a context and its "/" adapter with host h[i]. */
static inline void node_new(fx_t *f, int i, int recovery, unsigned timeout_ms)
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
    f->h[i].ack_clients = 2;
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

static inline void start_cb(void *ud, int err, const char *reason)
{
    start_res_t *s = ud;
    s->done = 1;
    s->err = err;
}

static inline void node_start(fx_t *f, int i)
{
    start_res_t s = {0};
    assert_int_equal(rds_node_start(f->r[i], start_cb, &s), SIO_OK);
    RT_WAIT_FOR(f, s.done, 5000);
    assert_int_equal(s.err, SIO_OK);
}

static inline void closed_cb(void *ud)
{
    (*(int *)ud)++;
}

/* Closes node i (waiting for its close callback), destroys its adapter, frees it. */
static inline void node_close(fx_t *f, int i)
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

/* A fresh fixture; tag names the scratch dir (/tmp/sockeye-<tag>-XXXXXX). */
static inline int rn_setup(void **state, const char *tag)
{
    fx_t *f = base_calloc(1, sizeof(*f));

    rt_fixture_init(f, tag);
    *state = f;
    return 0;
}

static inline void rn_walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static inline int rn_teardown(void **state)
{
    fx_t *f = *state;

    /* a test that failed half-way leaves its raw connections: they would retry forever */
    for (int i = 0; i < RN_TAPS; i++) {
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
        uv_walk(&f->loop, rn_walk_close, NULL);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        fail_msg("handles left open at the end of the test");
    }
    rt_rm_dir(f->dir);
    base_free(f);
    return 0;
}

/* ------------------------------------------------------------------ broadcasts */

/* A new EVENT packet [name, 1] in "/". */
static inline cd_sio_packet_t *event(const char *name)
{
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, "/");
    p->data = cJSON_CreateArray();
    cJSON_AddItemToArray(p->data, cJSON_CreateString(name));
    cJSON_AddItemToArray(p->data, cJSON_CreateNumber(1));
    return p;
}

/* Node i broadcasts event name to room (NULL: everyone) with flags. */
static inline int bcast(fx_t *f, int i, const char *name, const char *room, unsigned flags)
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
static inline void barrier(fx_t *f, int i, int j)
{
    int before = f->h[j].delivered;
    assert_int_equal(bcast(f, i, "marker", NULL, 0), SIO_OK);
    RT_WAIT_FOR(f, f->h[j].delivered > before && strcmp(f->h[j].last_event, "marker") == 0, 3000);
}

/* ------------------------------------------------------------------ raw connections */

/* A raw subscriber: the bytes on one channel. */
typedef struct tap {
    int messages;
    char payload[512];
    size_t len;
    int up;
} tap_t;

static inline void tap_cb(rds_conn_t *c, const rds_message_t *m, void *ud)
{
    tap_t *t = ud;
    if (m->kind != RDS_MESSAGE)
        return;
    t->messages++;
    t->len = m->payload_len < sizeof(t->payload) ? m->payload_len : sizeof(t->payload);
    memcpy(t->payload, m->payload, t->len);
}

static inline void tap_up(rds_conn_t *c, const rds_up_info_t *info, void *ud)
{
    ((tap_t *)ud)->up = 1;
}

/* A raw connection to the test's server, remembered for teardown: a subscriber of
 * channel when channel is not NULL, else a command connection. Waits until it is up. */
static inline rds_conn_t *tap_new(fx_t *f, tap_t *t, const char *channel)
{
    rds_conn_config_t cc;
    rds_url_t u = {0};
    char url[64], err[128];
    rds_conn_events_t ev = {.ud = t, .on_up = tap_up, .on_log = quiet_log};

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->port);
    assert_int_equal(rds_url_parse(&u, url, err, sizeof(err)), SIO_OK);
    rds_conn_config_init(&cc);
    cc.url = &u;
    cc.subscriber = channel != NULL;
    rds_conn_t *c = rds_conn_new(&f->loop, &cc, "tap", &ev);
    rds_url_free(&u);
    if (channel != NULL)
        assert_int_equal(rds_conn_subscribe(c, channel, tap_cb, t), SIO_OK);
    assert_int_equal(rds_conn_start(c, NULL, NULL), SIO_OK);
    for (int i = 0; i < RN_TAPS; i++) {
        if (f->taps[i] == NULL) {
            f->taps[i] = c;
            break;
        }
    }
    RT_WAIT_FOR(f, t->up, 3000);
    return c;
}

static inline void tap_close(fx_t *f, rds_conn_t *c)
{
    int closed = 0;
    for (int i = 0; i < RN_TAPS; i++) {
        if (f->taps[i] == c)
            f->taps[i] = NULL;
    }
    rds_conn_close(c, closed_cb, &closed);
    RT_WAIT_FOR(f, closed == 1, 3000);
}

#endif
