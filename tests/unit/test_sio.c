/* test_sio.c -- the protocol layer (node/protocol) driven through a fake engine
 * (fake_engine.h): sessions that record what is queued on them and close only when the
 * test says so.
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
#include "sio_private.h"

#include "fake_engine.h"

/* ---------------------------------------------------------------- fixture */

typedef struct fx {
    sio_server_t *srv;
    sio_socket_t *last; /* last connected socket */
    sio_socket_t *sockets[16];
    size_t n_sockets;
    int connections;
    char reasons[8][64];
    int n_reasons;
    int acks;
    int ack_err;
    char ack_args[256];
    int ack_s_null;
    int bc_calls;
    int bc_err;
    char bc_resp[512];
    int closed;
    int mw_calls[4];
    int events;
    char last_event[64];
    char last_args[512];
    size_t last_nbins;
} fx_t;

static fx_t *g;

static void on_disconnect(sio_socket_t *s, const char *reason, void *ud)
{
    fx_t *f = ud;
    if (f->n_reasons < 8)
        snprintf(f->reasons[f->n_reasons++], 64, "%s", reason);
}

static void on_any(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                   size_t nbins, sio_ack_t *ack, void *ud)
{
    fx_t *f = ud;
    char *txt = cJSON_PrintUnformatted(args);
    f->events++;
    snprintf(f->last_event, sizeof(f->last_event), "%s", event);
    snprintf(f->last_args, sizeof(f->last_args), "%s", txt);
    f->last_nbins = nbins;
    free(txt);
    if (ack != NULL)
        sio_ack(ack, cJSON_Duplicate(args, 1), bins, nbins);
}

static void on_connection(sio_socket_t *s, void *ud)
{
    fx_t *f = ud;
    f->connections++;
    f->last = s;
    if (f->n_sockets < 16)
        f->sockets[f->n_sockets++] = s;
    sio_socket_on_disconnect(s, on_disconnect, f);
    sio_socket_on_any(s, on_any, f);
}

static sio_server_t *make_server(fx_t *f, int recovery)
{
    sio_config_t cfg;
    sio_config_init(&cfg);
    cfg.recovery = recovery;
    cfg.connect_timeout_ms = 200;
    sio_server_t *srv = sio_server_new(uv_default_loop(), &cfg);
    assert_non_null(srv);
    sio_nsp_on_connection(sio_server_of(srv, "/"), on_connection, f);
    assert_int_equal(sio_server_listen(srv), SIO_OK);
    f->srv = srv;
    return srv;
}

static void on_closed(void *arg)
{
    ((fx_t *)arg)->closed = 1;
}

static int is_closed(void *arg)
{
    return ((fx_t *)arg)->closed;
}

static int setup(void **state)
{
    g = calloc(1, sizeof(*g));
    *state = g;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->srv != NULL) {
        sio_server_close(f->srv, on_closed, f);
        run_until(is_closed, f, 100);
        assert_true(f->closed);
        sio_server_free(f->srv);
    }
    assert_int_equal(uv_run(uv_default_loop(), UV_RUN_NOWAIT), 0);
    free(f);
    return 0;
}

/* Opens a session and connects "/" (checks the reply and returns the session). */
static eio_session_t *connect_main(fx_t *f, const char *auth)
{
    eio_session_t *e = fake_open();
    char buf[256];
    snprintf(buf, sizeof(buf), "0%s", auth ? auth : "");
    fake_text(e, buf);
    const char *r = fake_next(e);
    assert_non_null(r);
    assert_true(strncmp(r, "40{\"sid\":\"", 10) == 0);
    return e;
}

/* ---------------------------------------------------------------- tests */

static void test_strerror_and_config(void **state)
{
    sio_config_t cfg;
    assert_string_equal(sio_strerror(SIO_OK), "success");
    assert_string_equal(sio_strerror(SIO_ETIMEDOUT), "acknowledgement timed out");
    assert_string_equal(sio_strerror(12345), "unknown error");
    sio_config_init(&cfg);
    assert_int_equal(cfg.port, 3000);
    assert_string_equal(cfg.path, "/socket.io/");
    assert_int_equal(cfg.ping_interval_ms, 25000);
    assert_int_equal(cfg.connect_timeout_ms, 45000);
    assert_int_equal(cfg.recovery_window_ms, 120000);
    cfg.path = "socket.io";
    assert_null(sio_server_new(uv_default_loop(), &cfg));
    sio_config_init(&cfg);
    cfg.port = 70000;
    assert_null(sio_server_new(uv_default_loop(), &cfg));
    /* a server that never listened is freed directly */
    sio_server_t *srv = sio_server_new(uv_default_loop(), NULL);
    assert_non_null(srv);
    assert_null(sio_server_of(srv, "chat"));
    assert_string_equal(sio_nsp_name(sio_server_of(srv, "/chat")), "/chat");
    assert_ptr_equal(sio_server_of(srv, "/chat"), sio_server_of(srv, "/chat"));
    assert_int_equal(sio_server_of_pattern(srv, "(", NULL, NULL), SIO_EINVAL);
    sio_server_free(srv);
}

static void test_connect_and_auth(void **state)
{
    fx_t *f = *state;
    make_server(f, 1);
    eio_session_t *e = fake_open();
    fake_text(e, "0{\"token\":\"t\",\"pid\":\"nope\",\"offset\":\"1-0\"}");
    const char *r = fake_next(e);
    assert_non_null(r);
    /* recovery on: sid and pid; restore failed -> new session, recovered 0 */
    assert_non_null(strstr(r, "\"sid\":\""));
    assert_non_null(strstr(r, "\"pid\":\""));
    assert_int_equal(f->connections, 1);
    assert_int_equal(sio_socket_recovered(f->last), 0);
    char *auth = cJSON_PrintUnformatted(sio_socket_auth(f->last));
    assert_string_equal(auth, "{\"token\":\"t\"}");
    free(auth);
    assert_int_equal(sio_server_client_count(f->srv), 1);
    assert_int_equal(sio_nsp_socket_count(sio_server_of(f->srv, "/")), 1);
    assert_true(sio_socket_in_room(f->last, sio_socket_id(f->last)));
    assert_string_equal(sio_socket_transport(f->last), "websocket");
    assert_string_equal(sio_socket_address(f->last), "127.0.0.1");
    assert_string_equal(sio_socket_query(f->last, "name"), "J\xc3\xbcrgen X");
    assert_string_equal(sio_socket_query(f->last, "flag"), "");
    assert_string_equal(sio_socket_query(f->last, "x"), "1");
    assert_string_equal(sio_socket_query(f->last, "bad"), "%zz");
    assert_null(sio_socket_query(f->last, "missing"));

    /* unknown namespace */
    fake_text(e, "0/nope,{}");
    EXPECT_FRAME(e, "44/nope,{\"message\":\"Invalid namespace\"}");
    /* second CONNECT to "/" closes the connection */
    fake_text(e, "0");
    assert_true(e->closing);
    assert_string_equal(e->reason, "parse error");
    fake_flush(e);
    assert_int_equal(f->n_reasons, 1);
    assert_string_equal(f->reasons[0], "parse error");
    assert_int_equal(sio_server_client_count(f->srv), 0);
}

static int mw_first(sio_socket_t *s, sio_conn_error_t *err, void *ud)
{
    fx_t *f = ud;
    f->mw_calls[0]++;
    sio_socket_join(s, "from-mw");
    return 0;
}

static int mw_refuse(sio_socket_t *s, sio_conn_error_t *err, void *ud)
{
    fx_t *f = ud;
    f->mw_calls[1]++;
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(sio_socket_auth(s), "token");
    if (cJSON_IsString(tok) && strcmp(tok->valuestring, "ok") == 0)
        return 0;
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "code", 42);
    sio_conn_error_set(err, "not authorized", data);
    return 1;
}

static void test_middlewares(void **state)
{
    fx_t *f = *state;
    make_server(f, 0);
    sio_namespace_t *nsp = sio_server_of(f->srv, "/");
    sio_nsp_use(nsp, mw_first, f);
    sio_nsp_use(nsp, mw_refuse, f);
    eio_session_t *e = fake_open();
    fake_text(e, "0{\"token\":\"bad\"}");
    EXPECT_FRAME(e, "44{\"message\":\"not authorized\",\"data\":{\"code\":42}}");
    assert_int_equal(f->mw_calls[0], 1);
    assert_int_equal(f->mw_calls[1], 1);
    assert_int_equal(f->connections, 0);
    assert_int_equal(sio_nsp_socket_count(nsp), 0);
    /* the refused socket left the room a middleware put it in */
    assert_false(adp_rooms_has_room(&nsp->adapter->rooms, "from-mw"));
    /* the namespace can be tried again on the same connection */
    fake_text(e, "0{\"token\":\"ok\"}");
    const char *r = fake_next(e);
    assert_non_null(r);
    assert_true(strncmp(r, "40{\"sid\":", 9) == 0);
    assert_null(strstr(r, "pid"));
    assert_int_equal(f->connections, 1);
    assert_true(sio_socket_in_room(f->last, "from-mw"));
    fake_close(e, "transport close");
    assert_string_equal(f->reasons[0], "transport close");
}

static void test_events_and_client_acks(void **state)
{
    fx_t *f = *state;
    make_server(f, 0);
    eio_session_t *e = connect_main(f, NULL);
    fake_text(e, "2[\"hello\",1,{\"a\":[true]}]");
    assert_int_equal(f->events, 1);
    assert_string_equal(f->last_event, "hello");
    assert_string_equal(f->last_args, "[1,{\"a\":[true]}]");
    EXPECT_NO_FRAME(e);
    /* numeric event names dispatch by their decimal form */
    fake_text(e, "2[7,\"x\"]");
    assert_string_equal(f->last_event, "7");
    /* ack with binary */
    fake_text(e, "51-12[\"up\",{\"_placeholder\":true,\"num\":0}]");
    assert_int_equal(f->events, 2);
    unsigned char b[] = {1, 2, 3, 4};
    fake_bin(e, b, sizeof(b));
    assert_int_equal(f->events, 3);
    assert_int_equal(f->last_nbins, 1);
    EXPECT_FRAME(e, "461-12[{\"_placeholder\":true,\"num\":0}]");
    EXPECT_FRAME(e, "<bin 01 02 03 04>");
    /* unknown ack ids are ignored */
    fake_text(e, "3999[1]");
    assert_false(e->closing);
    /* CONNECT_ERROR from the client closes */
    fake_text(e, "4{\"message\":\"x\"}");
    assert_true(e->closing);
    fake_flush(e);
}

static void held_ack_cb(sio_socket_t *s, const char *event, const cJSON *args,
                        const sio_bin_t *bins, size_t nbins, sio_ack_t *ack, void *ud)
{
    /* the same id twice while the first is pending: the second gets no ack */
    static sio_ack_t *held;
    fx_t *f = ud;
    f->events++;
    if (held == NULL) {
        assert_non_null(ack);
        held = ack;
        return;
    }
    assert_null(ack);
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateString("once"));
    assert_int_equal(sio_ack(held, a, NULL, 0), SIO_OK);
    held = NULL;
}

static void test_duplicate_ack_id(void **state)
{
    fx_t *f = *state;
    make_server(f, 0);
    eio_session_t *e = connect_main(f, NULL);
    sio_socket_on(f->last, "q", held_ack_cb, f);
    fake_text(e, "25[\"q\"]");
    fake_text(e, "25[\"q\"]");
    assert_int_equal(f->events, 2);
    EXPECT_FRAME(e, "435[\"once\"]");
    EXPECT_NO_FRAME(e);
}

static void ack_cb(sio_socket_t *s, int err, const cJSON *args, const sio_bin_t *bins, size_t nbins,
                   void *ud)
{
    fx_t *f = ud;
    f->acks++;
    f->ack_err = err;
    f->ack_s_null = s == NULL;
    f->ack_args[0] = '\0';
    if (args != NULL) {
        char *t = cJSON_PrintUnformatted(args);
        snprintf(f->ack_args, sizeof(f->ack_args), "%s", t);
        free(t);
    }
}

static int acks_at_least_one(void *arg)
{
    return ((fx_t *)arg)->acks >= 1;
}

static void test_server_acks(void **state)
{
    fx_t *f = *state;
    make_server(f, 1);
    eio_session_t *e = connect_main(f, NULL);
    sio_socket_t *s = f->last;

    /* answered */
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateNumber(1));
    assert_int_equal(sio_socket_emit_ack(s, "ask", args, NULL, 0, 0, ack_cb, f), SIO_OK);
    EXPECT_FRAME(e, "420[\"ask\",1]");
    fake_text(e, "30[\"yes\"]");
    assert_int_equal(f->acks, 1);
    assert_int_equal(f->ack_err, SIO_OK);
    assert_string_equal(f->ack_args, "[\"yes\"]");
    fake_text(e, "30[\"again\"]"); /* a second answer is ignored */
    assert_int_equal(f->acks, 1);

    /* timed out */
    f->acks = 0;
    assert_int_equal(sio_socket_emit_ack(s, "slow", NULL, NULL, 0, 30, ack_cb, f), SIO_OK);
    EXPECT_FRAME(e, "421[\"slow\"]");
    run_until(acks_at_least_one, f, 50);
    assert_int_equal(f->acks, 1);
    assert_int_equal(f->ack_err, SIO_ETIMEDOUT);
    assert_false(f->ack_s_null);
    fake_text(e, "31[]"); /* late answer ignored */
    assert_int_equal(f->acks, 1);

    /* socket goes away first: SIO_ECLOSED with s == NULL, exactly once */
    f->acks = 0;
    assert_int_equal(sio_socket_emit_ack(s, "never", NULL, NULL, 0, 10000, ack_cb, f), SIO_OK);
    assert_int_equal(sio_socket_emit_ack(s, "never2", NULL, NULL, 0, 0, ack_cb, f), SIO_OK);
    fake_close(e, "ping timeout");
    assert_int_equal(f->acks, 2);
    assert_int_equal(f->ack_err, SIO_ECLOSED);
    assert_true(f->ack_s_null);
    assert_string_equal(f->reasons[0], "ping timeout");

    /* reserved names are refused, args consumed */
    e = connect_main(f, NULL);
    assert_int_equal(sio_socket_emit(f->last, "disconnect", cJSON_CreateArray(), NULL, 0),
                     SIO_EINVAL);
    assert_int_equal(sio_socket_emit_ack(f->last, "x", NULL, NULL, 0, 0, NULL, NULL), SIO_EINVAL);
    /* a send the engine refuses fails and never calls back */
    e->refuse_sends = 1;
    f->acks = 0;
    assert_int_equal(sio_socket_emit_ack(f->last, "x", NULL, NULL, 0, 0, ack_cb, f), SIO_ECLOSED);
    e->refuse_sends = 0;
    fake_close(e, "transport close");
    assert_int_equal(f->acks, 0);
}

static void test_disconnects(void **state)
{
    fx_t *f = *state;
    make_server(f, 0);
    sio_nsp_on_connection(sio_server_of(f->srv, "/chat"), on_connection, f);

    /* client namespace disconnect keeps the session */
    eio_session_t *e = connect_main(f, NULL);
    fake_text(e, "1");
    assert_int_equal(f->n_reasons, 1);
    assert_string_equal(f->reasons[0], "client namespace disconnect");
    assert_false(e->closing);
    EXPECT_NO_FRAME(e);
    /* an event for the namespace just left closes the connection */
    fake_text(e, "2[\"late\"]");
    assert_true(e->closing);
    fake_flush(e);

    /* server namespace disconnect: DISCONNECT sent, session kept */
    e = connect_main(f, NULL);
    sio_socket_disconnect(f->last, 0);
    EXPECT_FRAME(e, "41");
    assert_string_equal(f->reasons[1], "server namespace disconnect");
    assert_false(e->closing);

    /* close=1: DISCONNECT on every namespace then the engine close */
    fake_text(e, "0");
    fake_next(e);
    fake_text(e, "0/chat,");
    const char *r = fake_next(e);
    assert_true(strncmp(r, "40/chat,{", 9) == 0);
    sio_socket_disconnect(f->last, 1);
    const char *a = fake_next(e);
    assert_non_null(a);
    char first[4096];
    snprintf(first, sizeof(first), "%s", a);
    const char *b = fake_next(e);
    assert_non_null(b);
    assert_true((strcmp(first, "41") == 0 && strcmp(b, "41/chat,") == 0) ||
                (strcmp(first, "41/chat,") == 0 && strcmp(b, "41") == 0));
    assert_true(e->closing);
    assert_int_equal(f->n_reasons, 4);
    assert_string_equal(f->reasons[2], "server namespace disconnect");
    assert_string_equal(f->reasons[3], "server namespace disconnect");
    fake_flush(e);
    assert_int_equal(f->n_reasons, 4); /* no second disconnect on engine close */
}

static void disconnect_in_event(sio_socket_t *s, const char *event, const cJSON *args,
                                const sio_bin_t *bins, size_t nbins, sio_ack_t *ack, void *ud)
{
    fx_t *f = ud;
    f->events++;
    sio_socket_disconnect(s, 1);
    /* still valid inside the callback; the ack now fails cleanly */
    assert_string_equal(sio_socket_id(s), sio_socket_id(s));
    assert_int_equal(sio_ack(ack, NULL, NULL, 0), SIO_ECLOSED);
    assert_int_equal(sio_socket_emit(s, "x", NULL, NULL, 0), SIO_ECLOSED);
    assert_int_equal(sio_socket_join(s, "r"), SIO_ECLOSED);
}

static void test_disconnect_inside_callback(void **state)
{
    fx_t *f = *state;
    make_server(f, 1);
    eio_session_t *e = connect_main(f, NULL);
    sio_socket_on(f->last, "bye", disconnect_in_event, f);
    fake_text(e, "23[\"bye\"]");
    assert_int_equal(f->events, 1);
    assert_string_equal(f->reasons[0], "server namespace disconnect");
    EXPECT_FRAME(e, "41");
    EXPECT_NO_FRAME(e);
    fake_flush(e);
}

static void test_broadcast_encode_once(void **state)
{
    fx_t *f = *state;
    make_server(f, 0);
    eio_session_t *e[3];
    for (int i = 0; i < 3; i++)
        e[i] = connect_main(f, NULL);
    sio_socket_t *s0 = f->sockets[0], *s1 = f->sockets[1], *s2 = f->sockets[2];
    sio_namespace_t *nsp = sio_server_of(f->srv, "/");
    sio_socket_join(s0, "r");
    sio_socket_join(s1, "r");
    sio_socket_join(s2, "x");

    /* everyone: the very same frame on each session */
    assert_int_equal(sio_emit(sio_op(nsp), "all", NULL, NULL, 0), SIO_OK);
    base_frame_t *fr = fake_last_frame(e[0]);
    assert_ptr_equal(fake_last_frame(e[1]), fr);
    assert_ptr_equal(fake_last_frame(e[2]), fr);
    assert_int_equal(fr->refcnt, 3);
    for (int i = 0; i < 3; i++)
        EXPECT_FRAME(e[i], "42[\"all\"]");

    /* to a room, except a room */
    assert_int_equal(
        sio_emit(sio_except(sio_to(sio_op(nsp), "r"), sio_socket_id(s1)), "r", NULL, NULL, 0),
        SIO_OK);
    EXPECT_FRAME(e[0], "42[\"r\"]");
    EXPECT_NO_FRAME(e[1]);
    EXPECT_NO_FRAME(e[2]);

    /* socket.broadcast excludes the sender; binary shared as well */
    unsigned char bin[] = {9, 8};
    sio_bin_t bins[1] = {{bin, 2}};
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, sio_placeholder(0));
    assert_int_equal(sio_emit(sio_op_from(s0), "b", args, bins, 1), SIO_OK);
    EXPECT_NO_FRAME(e[0]);
    for (int i = 1; i < 3; i++) {
        EXPECT_FRAME(e[i], "451-[\"b\",{\"_placeholder\":true,\"num\":0}]");
        EXPECT_FRAME(e[i], "<bin 09 08>");
    }

    /* volatile and compress flags reach the engine; a dropped volatile is fine */
    e[1]->volatile_drop = 1;
    assert_int_equal(sio_emit(sio_compress(sio_volatile(sio_op(nsp)), 0), "v", NULL, NULL, 0),
                     SIO_OK);
    assert_int_equal(e[0]->flags[e[0]->n_frames - 1], EIO_SEND_VOLATILE | EIO_SEND_NOCOMPRESS);
    EXPECT_FRAME(e[0], "42[\"v\"]");
    EXPECT_NO_FRAME(e[1]);
    EXPECT_FRAME(e[2], "42[\"v\"]");
    e[1]->volatile_drop = 0;

    /* bad builders fail and consume */
    assert_int_equal(sio_emit(sio_to(sio_op(nsp), NULL), "x", cJSON_CreateArray(), NULL, 0),
                     SIO_EINVAL);
    assert_int_equal(sio_emit(sio_op(nsp), "connect", NULL, NULL, 0), SIO_EINVAL);
    assert_int_equal(sio_emit(NULL, "x", cJSON_CreateArray(), NULL, 0), SIO_EINVAL);
    sio_op_free(sio_to(sio_op(nsp), "unused"));

    /* room operations on matching sockets */
    assert_int_equal(sio_sockets_join(sio_to(sio_op(nsp), "r"), "joined"), SIO_OK);
    assert_true(sio_socket_in_room(s0, "joined"));
    assert_true(sio_socket_in_room(s1, "joined"));
    assert_false(sio_socket_in_room(s2, "joined"));
    assert_int_equal(sio_sockets_leave(sio_op(nsp), "joined"), SIO_OK);
    assert_false(sio_socket_in_room(s0, "joined"));
    assert_int_equal(sio_sockets_disconnect(sio_to(sio_op(nsp), "x"), 0), SIO_OK);
    EXPECT_FRAME(e[2], "41");
    assert_int_equal(f->n_reasons, 1);
    assert_int_equal(sio_nsp_socket_count(nsp), 2);
    assert_int_equal(sio_sockets_disconnect(sio_op(nsp), 1), SIO_OK);
    assert_true(e[0]->closing && e[1]->closing);
    assert_int_equal(f->n_reasons, 3);
}

static void bc_cb(int err, const cJSON *responses, void *ud)
{
    fx_t *f = ud;
    f->bc_calls++;
    f->bc_err = err;
    char *t = cJSON_PrintUnformatted(responses);
    snprintf(f->bc_resp, sizeof(f->bc_resp), "%s", t);
    free(t);
}

static int bc_called(void *arg)
{
    return ((fx_t *)arg)->bc_calls > 0;
}

static void test_broadcast_acks(void **state)
{
    fx_t *f = *state;
    make_server(f, 1);
    sio_namespace_t *nsp = sio_server_of(f->srv, "/");
    eio_session_t *e[3];
    for (int i = 0; i < 3; i++)
        e[i] = connect_main(f, NULL);

    /* all answer: one id for the broadcast, encoded once */
    assert_int_equal(sio_emit_ack(sio_op(nsp), "q", NULL, NULL, 0, bc_cb, f), SIO_OK);
    assert_ptr_equal(fake_last_frame(e[0]), fake_last_frame(e[2]));
    for (int i = 0; i < 3; i++)
        EXPECT_FRAME(e[i], "420[\"q\"]");
    fake_text(e[0], "30[0]");
    fake_text(e[0], "30[0]"); /* duplicate answer from the same client ignored */
    fake_text(e[2], "30[2]");
    assert_int_equal(f->bc_calls, 0);
    fake_text(e[1], "30[1]");
    assert_int_equal(f->bc_calls, 1);
    assert_int_equal(f->bc_err, SIO_OK);
    assert_string_equal(f->bc_resp, "[[0],[2],[1]]");

    /* a target that goes away no longer counts; a timeout ends the rest */
    f->bc_calls = 0;
    assert_int_equal(sio_emit_ack(sio_timeout(sio_op(nsp), 40), "t", NULL, NULL, 0, bc_cb, f),
                     SIO_OK);
    fake_text(e[0], "31[\"a\"]");
    fake_close(e[1], "transport close");
    assert_int_equal(f->bc_calls, 0);
    run_until(bc_called, f, 50);
    assert_int_equal(f->bc_calls, 1);
    assert_int_equal(f->bc_err, SIO_ETIMEDOUT);
    assert_string_equal(f->bc_resp, "[[\"a\"]]");
    fake_text(e[2], "31[\"late\"]");
    assert_int_equal(f->bc_calls, 1);

    /* no target at all: completes at once */
    f->bc_calls = 0;
    assert_int_equal(sio_emit_ack(sio_to(sio_op(nsp), "empty"), "n", NULL, NULL, 0, bc_cb, f),
                     SIO_OK);
    assert_int_equal(f->bc_calls, 1);
    assert_string_equal(f->bc_resp, "[]");

    /* the last target closing completes it */
    f->bc_calls = 0;
    assert_int_equal(sio_emit_ack(sio_to(sio_op(nsp), sio_socket_id(f->sockets[2])), "z", NULL,
                                  NULL, 0, bc_cb, f),
                     SIO_OK);
    fake_close(e[2], "transport close");
    assert_int_equal(f->bc_calls, 1);
    assert_int_equal(f->bc_err, SIO_OK);

    /* pending broadcast acks at server close complete */
    f->bc_calls = 0;
    assert_int_equal(sio_emit_ack(sio_timeout(sio_op(nsp), 10000), "w", NULL, NULL, 0, bc_cb, f),
                     SIO_OK);
    assert_int_equal(f->bc_calls, 0);
}

static int no_mw(sio_socket_t *s, sio_conn_error_t *err, void *ud)
{
    fx_t *f = ud;
    f->mw_calls[2]++;
    return 0;
}

static void test_recovery(void **state)
{
    fx_t *f = *state;
    make_server(f, 1);
    sio_namespace_t *nsp = sio_server_of(f->srv, "/");
    sio_nsp_use(nsp, no_mw, f);
    eio_session_t *e = fake_open();
    fake_text(e, "0{\"token\":\"t\"}");
    const char *r = fake_next(e);
    cJSON *reply = cJSON_Parse(r + 2);
    char sid[64], pid[64];
    snprintf(sid, sizeof(sid), "%s", cJSON_GetObjectItem(reply, "sid")->valuestring);
    snprintf(pid, sizeof(pid), "%s", cJSON_GetObjectItem(reply, "pid")->valuestring);
    cJSON_Delete(reply);
    assert_int_equal(f->mw_calls[2], 1);
    sio_socket_t *s = f->last;
    sio_socket_join(s, "room1");
    cJSON_AddStringToObject(sio_socket_data(s), "user", "ann");

    /* socket.emit goes through the adapter: it gets an offset */
    assert_int_equal(sio_socket_emit(s, "first", NULL, NULL, 0), SIO_OK);
    r = fake_next(e);
    assert_non_null(r);
    assert_true(strncmp(r, "42[\"first\",\"", 12) == 0);
    char offset[64];
    const char *q = r + 12;
    snprintf(offset, sizeof(offset), "%.*s", (int)(strchr(q, '"') - q), q);

    fake_close(e, "transport close");
    assert_string_equal(f->reasons[0], "transport close");
    /* missed while away: to its room, to everyone, not to another room */
    assert_int_equal(sio_emit(sio_to(sio_op(nsp), "room1"), "m1", NULL, NULL, 0), SIO_OK);
    assert_int_equal(sio_emit(sio_to(sio_op(nsp), "other"), "no", NULL, NULL, 0), SIO_OK);
    assert_int_equal(sio_emit(sio_op(nsp), "m2", NULL, NULL, 0), SIO_OK);
    assert_int_equal(sio_emit(sio_volatile(sio_op(nsp)), "vol", NULL, NULL, 0), SIO_OK);

    eio_session_t *e2 = fake_open();
    char buf[256];
    snprintf(buf, sizeof(buf), "0{\"pid\":\"%s\",\"offset\":\"%s\",\"token\":\"t\"}", pid, offset);
    fake_text(e2, buf);
    r = fake_next(e2);
    assert_true(strncmp(r, "42[\"m1\",\"", 9) == 0);
    r = fake_next(e2);
    assert_true(strncmp(r, "42[\"m2\",\"", 9) == 0);
    r = fake_next(e2);
    char want[256];
    snprintf(want, sizeof(want), "40{\"sid\":\"%s\",\"pid\":\"%s\"}", sid, pid);
    assert_string_equal(r, want);
    EXPECT_NO_FRAME(e2);
    s = f->last;
    assert_int_equal(sio_socket_recovered(s), 1);
    assert_string_equal(sio_socket_id(s), sid);
    assert_true(sio_socket_in_room(s, "room1"));
    assert_true(sio_socket_in_room(s, sid));
    assert_string_equal(cJSON_GetObjectItem(sio_socket_data(s), "user")->valuestring, "ann");
    assert_int_equal(f->mw_calls[2], 1); /* skipped on a restore */
    char *auth = cJSON_PrintUnformatted(sio_socket_auth(s));
    assert_string_equal(auth, "{\"token\":\"t\"}");
    free(auth);

    /* a namespace disconnect is final: nothing to restore afterwards */
    fake_text(e2, "1");
    eio_session_t *e3 = fake_open();
    fake_text(e3, buf);
    r = fake_next(e3);
    assert_non_null(r);
    assert_true(strncmp(r, "40{", 3) == 0);
    assert_null(strstr(r, sid));
    assert_int_equal(sio_socket_recovered(f->last), 0);
    assert_int_equal(f->mw_calls[2], 2);
}

static void test_connect_timeout(void **state)
{
    fx_t *f = *state;
    make_server(f, 0);
    eio_session_t *idle = fake_open();
    eio_session_t *joined = connect_main(f, NULL);
    for (int i = 0; i < 50 && !idle->closing; i++)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
    assert_true(idle->closing);
    assert_string_equal(idle->reason, "forced close");
    assert_false(joined->closing);
    fake_flush(idle);
}

static void nsp_init(sio_namespace_t *nsp, void *ud)
{
    fx_t *f = ud;
    f->mw_calls[3]++;
    sio_nsp_on_connection(nsp, on_connection, f);
}

static void test_dynamic_namespaces(void **state)
{
    fx_t *f = *state;
    make_server(f, 0);
    assert_int_equal(sio_server_of_pattern(f->srv, "^/dyn-[0-9]+$", nsp_init, f), SIO_OK);
    eio_session_t *e = fake_open();
    fake_text(e, "0/dyn-12,");
    const char *r = fake_next(e);
    assert_true(strncmp(r, "40/dyn-12,{\"sid\"", 16) == 0);
    assert_int_equal(f->mw_calls[3], 1);
    assert_string_equal(sio_nsp_name(sio_socket_nsp(f->last)), "/dyn-12");
    fake_text(e, "0/dyn-x,");
    EXPECT_FRAME(e, "44/dyn-x,{\"message\":\"Invalid namespace\"}");
    /* a second client reuses the namespace (init not called again) */
    eio_session_t *e2 = fake_open();
    fake_text(e2, "0/dyn-12,");
    r = fake_next(e2);
    assert_true(strncmp(r, "40/dyn-12,", 10) == 0);
    assert_int_equal(f->mw_calls[3], 1);
}

static void test_server_close_saves_sessions(void **state)
{
    fx_t *f = *state;
    make_server(f, 1);
    connect_main(f, NULL);
    connect_main(f, NULL);
    sio_socket_data(f->last);
    sio_socket_set_data(f->last, cJSON_CreateString("d"));
    /* teardown closes the server: both sockets see "server shutting down" */
    sio_server_close(f->srv, on_closed, f);
    run_until(is_closed, f, 100);
    assert_true(f->closed);
    assert_int_equal(f->n_reasons, 2);
    assert_string_equal(f->reasons[0], "server shutting down");
    sio_server_free(f->srv);
    f->srv = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_strerror_and_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_and_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_middlewares, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_and_client_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_ack_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broadcast_encode_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broadcast_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dynamic_namespaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_close_saves_sessions, setup, teardown),
    };
    return cmocka_run_group_tests_name("sio", tests, NULL, NULL);
}
