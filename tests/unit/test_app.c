/* test_app.c -- the standard application (node/program/app.c) on a real protocol layer
 * and a fake engine (fake_engine.h): every built-in event, what is refused and why, and
 * the counters /metrics shows. The end-to-end tests (tests/conformance/client.test.js,
 * auth.test.js) run the same application with the official client; these cases pin its
 * rules one by one, frame by frame.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "app.h"
#include "fake_engine.h"
#include "sockeye.h"

typedef struct fx {
    sio_server_t *srv;
    app_t *app;
    int closed;
} fx_t;

static void on_closed(void *arg)
{
    ((fx_t *)arg)->closed = 1;
}

static int is_closed(void *arg)
{
    return ((fx_t *)arg)->closed;
}

static const char *const relay_events[] = {"chat"};
static const char *const broadcast_events[] = {"bcast"};

/* A server with recovery off (no offsets in the frames) and the app on "/". */
static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    sio_config_t cfg;
    app_config_t ac = {
        .join_event = "join",
        .leave_event = "leave",
        .echo_event = "echo",
        .ask_event = "ask",
        .ask_timeout_ms = 50,
        .relay_events = relay_events,
        .n_relay_events = 1,
        .broadcast_events = broadcast_events,
        .n_broadcast_events = 1,
        .max_rooms_per_socket = 3,
    };

    sio_config_init(&cfg);
    cfg.recovery = 0;
    f->srv = sio_server_new(uv_default_loop(), &cfg);
    assert_non_null(f->srv);
    f->app = app_new(&ac);
    assert_int_equal(app_install(f->app, sio_server_of(f->srv, "/")), SIO_OK);
    assert_int_equal(sio_server_listen(f->srv), SIO_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;

    sio_server_close(f->srv, on_closed, f);
    run_until(is_closed, f, 100);
    assert_true(f->closed);
    sio_server_free(f->srv);
    app_free(f->app);
    assert_int_equal(uv_run(uv_default_loop(), UV_RUN_NOWAIT), 0);
    free(f);
    return 0;
}

/* A connected client of "/": the CONNECT reply is consumed. */
static eio_session_t *client(void)
{
    eio_session_t *e = fake_open();
    const char *r;

    fake_text(e, "0");
    r = fake_next(e);
    assert_non_null(r);
    assert_true(strncmp(r, "40{\"sid\":\"", 10) == 0);
    return e;
}

static void test_join_leave_and_their_refusals(void **state)
{
    fx_t *f = *state;
    eio_session_t *a = client();

    fake_text(a, "21[\"join\",\"r1\"]");
    EXPECT_FRAME(a, "431[{\"ok\":true}]");
    fake_text(a, "22[\"join\",[\"r2\",3]]"); /* an array of rooms; a number names "3" */
    EXPECT_FRAME(a, "432[{\"ok\":true}]");
    /* three rooms already (own id aside): a fourth is over --max-rooms-per-socket */
    fake_text(a, "23[\"join\",\"r4\"]");
    EXPECT_FRAME(a, "433[{\"ok\":false,\"error\":\"too many rooms\"}]");
    /* one already joined and one new: refused whole */
    fake_text(a, "24[\"join\",[\"r1\",\"r5\"]]");
    EXPECT_FRAME(a, "434[{\"ok\":false,\"error\":\"too many rooms\"}]");
    fake_text(a, "25[\"join\",\"\"]");
    EXPECT_FRAME(a, "435[{\"ok\":false,\"error\":\"invalid room\"}]");
    fake_text(a, "26[\"join\",{\"a\":1}]");
    EXPECT_FRAME(a, "436[{\"ok\":false,\"error\":\"invalid room\"}]");
    /* a room shaped like a socket id: another socket's private room */
    fake_text(a, "27[\"join\",\"AAAAAAAAAAAAAAAAAAAA\"]");
    EXPECT_FRAME(a, "437[{\"ok\":false,\"error\":\"reserved room\"}]");
    fake_text(a, "28[\"leave\",\"r2\"]");
    EXPECT_FRAME(a, "438[{\"ok\":true}]");
    fake_text(a, "29[\"join\",\"r4\"]"); /* room for one again */
    EXPECT_FRAME(a, "439[{\"ok\":true}]");
    fake_text(a, "2[\"join\",\"r6\"]"); /* no ack asked: nothing sent back */
    EXPECT_NO_FRAME(a);

    const app_stats_t *st = app_stats(f->app);
    assert_int_equal(st->handled[APP_JOIN], 9);
    assert_int_equal(st->handled[APP_LEAVE], 1);
    assert_int_equal(st->refused, 6);
}

static void test_relay_needs_membership_and_skips_the_sender(void **state)
{
    fx_t *f = *state;
    eio_session_t *a = client(), *b = client(), *c = client();

    fake_text(a, "21[\"join\",\"room\"]");
    EXPECT_FRAME(a, "431[{\"ok\":true}]");
    fake_text(b, "21[\"join\",\"room\"]");
    EXPECT_FRAME(b, "431[{\"ok\":true}]");

    /* chat: to the room except the sender, exactly (room, payload) */
    fake_text(a, "22[\"chat\",\"room\",{\"t\":\"hi\"},\"extra\"]");
    EXPECT_FRAME(a, "432[{\"ok\":true}]");
    EXPECT_FRAME(b, "42[\"chat\",\"room\",{\"t\":\"hi\"}]");
    EXPECT_NO_FRAME(a);
    EXPECT_NO_FRAME(c);
    /* bcast: the sender too; a missing payload becomes null */
    fake_text(b, "22[\"bcast\",\"room\"]");
    EXPECT_FRAME(b, "42[\"bcast\",\"room\",null]");
    EXPECT_FRAME(b, "432[{\"ok\":true}]");
    EXPECT_FRAME(a, "42[\"bcast\",\"room\",null]");
    /* a non-member may not relay into the room */
    fake_text(c, "23[\"chat\",\"room\",1]");
    EXPECT_FRAME(c, "433[{\"ok\":false,\"error\":\"not a member\"}]");
    EXPECT_NO_FRAME(a);
    EXPECT_NO_FRAME(b);
    fake_text(c, "24[\"chat\",null,1]");
    EXPECT_FRAME(c, "434[{\"ok\":false,\"error\":\"invalid room\"}]");
    assert_int_equal(app_stats(f->app)->handled[APP_RELAY], 3);
    assert_int_equal(app_stats(f->app)->handled[APP_BROADCAST], 1);
}

static void test_relay_renumbers_the_buffers_it_keeps(void **state)
{
    eio_session_t *a = client(), *b = client();
    const unsigned char x[] = {1, 2}, y[] = {3};

    fake_text(a, "21[\"join\",\"r\"]");
    EXPECT_FRAME(a, "431[{\"ok\":true}]");
    fake_text(b, "21[\"join\",\"r\"]");
    EXPECT_FRAME(b, "431[{\"ok\":true}]");
    /* buffer 0 sits in the dropped third argument: only buffer 1 is relayed, as 0 */
    fake_text(a, "52-[\"chat\",\"r\",{\"_placeholder\":true,\"num\":1},"
                 "{\"_placeholder\":true,\"num\":0}]");
    fake_bin(a, x, sizeof(x));
    fake_bin(a, y, sizeof(y));
    EXPECT_FRAME(b, "451-[\"chat\",\"r\",{\"_placeholder\":true,\"num\":0}]");
    EXPECT_FRAME(b, "<bin 03>");
    EXPECT_NO_FRAME(b);
}

static void test_echo_ask_and_unknown_events(void **state)
{
    fx_t *f = *state;
    eio_session_t *a = client();

    fake_text(a, "21[\"echo\",1,\"two\",{\"3\":[4]}]");
    EXPECT_FRAME(a, "431[1,\"two\",{\"3\":[4]}]");
    /* ask: the node asks the client back, and acks the caller with the answer */
    fake_text(a, "22[\"ask\",\"question\",\"q?\"]");
    const char *r = fake_next(a);
    assert_non_null(r);
    /* "42<id>["question","q?"]" (Engine.IO "4", EVENT "2"): the server's own ack id;
     * the client answers with ACK "3<id>" */
    assert_true(strncmp(r, "42", 2) == 0);
    char *bracket = strchr(r, '[');
    assert_non_null(bracket);
    assert_string_equal(bracket, "[\"question\",\"q?\"]");
    char answer[64];
    snprintf(answer, sizeof(answer), "3%.*s[\"yes\"]", (int)(bracket - r - 2), r + 2);
    fake_text(a, answer);
    EXPECT_FRAME(a, "432[\"yes\"]");
    /* unanswered: the caller hears "timeout" after --ask-timeout */
    fake_text(a, "23[\"ask\",\"question\"]");
    assert_non_null(fake_next(a));
    for (int i = 0; i < 50 && a->next_read >= a->n_frames; i++)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
    EXPECT_FRAME(a, "433[{\"ok\":false,\"error\":\"timeout\"}]");
    fake_text(a, "24[\"ask\",\"\"]");
    EXPECT_FRAME(a, "434[{\"ok\":false,\"error\":\"invalid event\"}]");
    fake_text(a, "25[\"nope\"]");
    EXPECT_FRAME(a, "435[{\"ok\":false,\"error\":\"unknown event\"}]");
    const app_stats_t *st = app_stats(f->app);
    assert_int_equal(st->handled[APP_ECHO], 1);
    assert_int_equal(st->handled[APP_ASK], 3);
    assert_int_equal(st->handled[APP_UNKNOWN], 1);
    assert_string_equal(app_kind_name(APP_RELAY), "relay");
}

static void test_room_names_as_javascript_prints_them(void **state)
{
    char buf[64];
    cJSON *v;

    v = cJSON_CreateNumber(42);
    assert_int_equal(app_room_name(v, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "42");
    cJSON_Delete(v);
    v = cJSON_CreateNumber(0.1);
    assert_int_equal(app_room_name(v, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "0.1");
    cJSON_Delete(v);
    v = cJSON_CreateNumber(-0.0);
    assert_int_equal(app_room_name(v, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "0");
    cJSON_Delete(v);
    v = cJSON_CreateString("");
    assert_int_equal(app_room_name(v, buf, sizeof(buf)), -1);
    cJSON_Delete(v);
    v = cJSON_CreateString("a room name that does not fit");
    assert_int_equal(app_room_name(v, buf, 8), -1);
    cJSON_Delete(v);
    v = cJSON_CreateTrue();
    assert_int_equal(app_room_name(v, buf, sizeof(buf)), -1);
    cJSON_Delete(v);
}

static void test_namespaces_served(void **state)
{
    fx_t *f = *state;

    assert_int_equal(app_namespace_count(f->app), 1);
    assert_string_equal(sio_nsp_name(app_namespace(f->app, 0)), "/");
    assert_int_equal(app_install_pattern(f->app, f->srv, "^/dyn-[0-9]+$"), SIO_OK);
    assert_int_equal(app_install_pattern(f->app, f->srv, "("), SIO_EINVAL);
    eio_session_t *e = fake_open();
    fake_text(e, "0/dyn-7,");
    const char *r = fake_next(e);
    assert_non_null(r);
    assert_true(strncmp(r, "40/dyn-7,{\"sid\":", 16) == 0);
    assert_int_equal(app_namespace_count(f->app), 2);
    fake_text(e, "2/dyn-7,1[\"echo\",\"x\"]");
    EXPECT_FRAME(e, "43/dyn-7,1[\"x\"]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_join_leave_and_their_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_needs_membership_and_skips_the_sender, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_relay_renumbers_the_buffers_it_keeps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_echo_ask_and_unknown_events, setup, teardown),
        cmocka_unit_test(test_room_names_as_javascript_prints_them),
        cmocka_unit_test_setup_teardown(test_namespaces_served, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
