/* test_rds_conn.c -- adapter/redis/rds_conn.c against a real redis-server.
 *
 * Each test starts its own redis-server (when it needs one) on a free loopback port in a
 * mktemp directory and stops it by PID: `redis-server --port P --bind 127.0.0.1 --save ''
 * --appendonly no`. Without redis-server on PATH those tests are skipped with a message.
 * Every wait is a uv_run loop bounded by a deadline timer; "nothing else happened" is
 * checked by running the loop for a bounded time and counting callbacks. Each test ends
 * like libuv's MAKE_VALGRIND_HAPPY: every connection closed, the loop drained and
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rds_conn.h"
#include "sockeye.h"

extern char **environ;

#define MAX_CONNS 4
#define PASSWORD "s3cret pass@/:" /* exercises percent-encoding end to end */

/* ------------------------------------------------------------------ observers */

/* What one connection reported through rds_conn_events_t and its start callback. */
typedef struct obs {
    struct fx *f;
    int starts, start_err;
    char start_reason[256];
    int ups, downs;
    rds_up_info_t last_up;
    char down_reason[256];
    int lost_logs, reconnected_logs, connected_logs, still_down_logs, warn_logs, debug_logs;
    int closed;
} obs_t;

/* One command's outcome(s). calls must end at exactly 1. */
typedef struct res {
    int calls;
    int err;
    int type;
    long long integer;
    char str[2048];
    size_t len;
} res_t;

/* What a subscription callback saw. */
typedef struct subs {
    int subscribed, messages;
    char channel[64], pattern[64];
    char payload[256];
    size_t payload_len;
} subs_t;

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t deadline;
    int expired;
    char dir[64];
    char logfile[96];
    int port;
    pid_t pid;
    char pass[64]; /* requirepass of the running server, "" = none */
    rds_conn_t *conns[MAX_CONNS];
    obs_t obs[MAX_CONNS];
} fx_t;

#include "redis_fixture.h"

/* One TCP connect attempt on the loop; 0 when the port accepted. */
typedef struct probe {
    uv_tcp_t tcp;
    uv_connect_t req;
    int done, status, closed;
} probe_t;

static void probe_closed(uv_handle_t *h)
{
    probe_t *p = h->data;
    p->closed = 1;
}

static void probe_connected(uv_connect_t *req, int status)
{
    probe_t *p = req->data;
    p->done = 1;
    p->status = status;
}

static int probe_port(fx_t *f, int port)
{
    struct sockaddr_in sa;
    probe_t p;

    memset(&p, 0, sizeof(p));
    uv_ip4_addr("127.0.0.1", port, &sa);
    assert_int_equal(uv_tcp_init(&f->loop, &p.tcp), 0);
    p.tcp.data = &p;
    p.req.data = &p;
    if (uv_tcp_connect(&p.req, &p.tcp, (const struct sockaddr *)&sa, probe_connected) != 0) {
        p.done = 1;
        p.status = -1;
    }
    RT_WAIT_FOR(f, p.done, 2000);
    uv_close((uv_handle_t *)&p.tcp, probe_closed);
    RT_WAIT_FOR(f, p.closed, 2000);
    return p.status;
}

/* Starts redis-server on f->port (requirepass pass when non-empty, also listening on
 * unix_path when given) and waits until it accepts TCP connections. */
static void redis_start(fx_t *f, const char *pass, const char *unix_path)
{
    snprintf(f->pass, sizeof(f->pass), "%s", pass != NULL ? pass : "");
    rt_redis_spawn(&f->pid, f->port, f->dir, f->logfile, f->pass, unix_path, 1);

    /* bounded: up to 100 probes, 20 ms apart */
    for (int i = 0; i < 100; i++) {
        if (probe_port(f, f->port) == 0)
            return;
        rt_run_for(f, 20);
    }
    fail_msg("redis-server did not accept connections on port %d", f->port);
}

/* ------------------------------------------------------------------ connections */

static void on_log(void *ud, int level, const char *msg)
{
    obs_t *o = ud;

    if (getenv("RDS_TEST_VERBOSE") != NULL)
        print_message("log %d: %s\n", level, msg);
    if (level == RDS_LOG_WARN)
        o->warn_logs++;
    if (level == RDS_LOG_DEBUG)
        o->debug_logs++;
    if (strstr(msg, "connection lost (") != NULL)
        o->lost_logs++;
    if (strstr(msg, ": reconnected after ") != NULL)
        o->reconnected_logs++;
    if (strstr(msg, ": connected to ") != NULL)
        o->connected_logs++;
    if (strstr(msg, ": still down (") != NULL)
        o->still_down_logs++;
}

static void on_up(rds_conn_t *c, const rds_up_info_t *info, void *ud)
{
    obs_t *o = ud;
    o->ups++;
    o->last_up = *info;
}

static void on_down(rds_conn_t *c, const char *reason, void *ud)
{
    obs_t *o = ud;
    o->downs++;
    snprintf(o->down_reason, sizeof(o->down_reason), "%s", reason);
    assert_int_equal(rds_conn_is_up(c), 0);
}

static void on_start(rds_conn_t *c, int err, const char *reason, void *ud)
{
    obs_t *o = ud;
    o->starts++;
    o->start_err = err;
    snprintf(o->start_reason, sizeof(o->start_reason), "%s", reason != NULL ? reason : "");
}

static void on_closed(void *ud)
{
    obs_t *o = ud;
    o->closed++;
}

/* Creates connection slot i to the fixture's server (url_text NULL = plain URL there). */
static rds_conn_t *conn_new(fx_t *f, int i, const char *url_text, int subscriber,
                            unsigned cmd_timeout)
{
    rds_conn_config_t cfg;
    rds_conn_events_t ev;
    rds_url_t url;
    char text[256], err[256], name[16];

    if (url_text == NULL) {
        snprintf(text, sizeof(text), "redis://127.0.0.1:%d", f->port);
        url_text = text;
    }
    assert_int_equal(rds_url_parse(&url, url_text, err, sizeof(err)), SIO_OK);
    rds_conn_config_init(&cfg);
    cfg.url = &url;
    cfg.subscriber = subscriber;
    cfg.connect_timeout_ms = 1000;
    cfg.command_timeout_ms = cmd_timeout;
    cfg.backoff_min_ms = 50;
    cfg.backoff_max_ms = 300;
    memset(&ev, 0, sizeof(ev));
    memset(&f->obs[i], 0, sizeof(f->obs[i]));
    f->obs[i].f = f;
    ev.ud = &f->obs[i];
    ev.on_up = on_up;
    ev.on_down = on_down;
    ev.on_log = on_log;
    snprintf(name, sizeof(name), "%s%d", subscriber ? "sub" : "cmd", i);
    f->conns[i] = rds_conn_new(&f->loop, &cfg, name, &ev);
    rds_url_free(&url); /* the connection keeps its own copy */
    assert_non_null(f->conns[i]);
    return f->conns[i];
}

/* Starts slot i and waits for the first outcome. */
static int conn_start(fx_t *f, int i)
{
    assert_int_equal(rds_conn_start(f->conns[i], on_start, &f->obs[i]), SIO_OK);
    RT_WAIT_FOR(f, f->obs[i].starts == 1, 3000);
    return f->obs[i].start_err;
}

static void conn_close(fx_t *f, int i)
{
    if (f->conns[i] == NULL)
        return;
    assert_int_equal(rds_conn_close(f->conns[i], on_closed, &f->obs[i]), SIO_OK);
    f->conns[i] = NULL;
    RT_WAIT_FOR(f, f->obs[i].closed == 1, 2000);
}

static void on_reply(rds_conn_t *c, int err, redisReply *r, void *ud)
{
    res_t *x = ud;

    x->calls++;
    x->err = err;
    x->type = r != NULL ? r->type : 0;
    if (r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
                      r->type == REDIS_REPLY_ERROR)) {
        x->len = r->len < sizeof(x->str) ? (size_t)r->len : sizeof(x->str);
        memcpy(x->str, r->str, x->len);
    }
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        x->integer = r->integer;
}

/* Sends a command and waits for its (single) outcome. */
#define CMD(f, i, res, ...)                                                                        \
    do {                                                                                           \
        memset((res), 0, sizeof(*(res)));                                                          \
        assert_int_equal(rds_conn_command((f)->conns[i], on_reply, (res), __VA_ARGS__), SIO_OK);   \
        RT_WAIT_FOR(f, (res)->calls == 1, 3000);                                                   \
    } while (0)

static void on_message(rds_conn_t *c, const rds_message_t *m, void *ud)
{
    subs_t *s = ud;

    if (m->kind == RDS_SUBSCRIBED) {
        s->subscribed++;
        return;
    }
    assert_int_equal(m->kind, RDS_MESSAGE);
    s->messages++;
    snprintf(s->channel, sizeof(s->channel), "%.*s", (int)m->channel_len, m->channel);
    if (m->pattern != NULL)
        snprintf(s->pattern, sizeof(s->pattern), "%.*s", (int)m->pattern_len, m->pattern);
    else
        s->pattern[0] = '\0';
    s->payload_len = m->payload_len < sizeof(s->payload) ? m->payload_len : sizeof(s->payload);
    memcpy(s->payload, m->payload, s->payload_len);
}

/* ------------------------------------------------------------------ fixture */

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    rt_fixture_init(f, "rds");
    snprintf(f->logfile, sizeof(f->logfile), "%s/redis.log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int i, rc;

    for (i = 0; i < MAX_CONNS; i++) {
        if (f->conns[i] != NULL) {
            rds_conn_close(f->conns[i], NULL, NULL);
            f->conns[i] = NULL;
        }
    }
    rt_redis_kill(&f->pid);
    uv_close((uv_handle_t *)&f->deadline, NULL);
    /* bounded drain: close callbacks need a turn or two */
    for (i = 0; i < 100 && uv_loop_alive(&f->loop); i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    rc = uv_loop_close(&f->loop);
    rt_rm_dir(f->dir);
    free(f);
    assert_int_equal(rc, 0); /* every handle closed (MAKE_VALGRIND_HAPPY) */
    return 0;
}

/* ------------------------------------------------------------------ tests */

static void test_connect_ping(void **state)
{
    fx_t *f = *state;
    rds_conn_stats_t st;
    res_t r;

    RT_REQUIRE_REDIS();
    redis_start(f, NULL, NULL);
    conn_new(f, 0, NULL, 0, 2000);
    assert_int_equal(rds_conn_is_up(f->conns[0]), 0);
    /* not started yet: commands fail at the call, their callback never runs */
    memset(&r, 0, sizeof(r));
    assert_int_equal(rds_conn_command(f->conns[0], on_reply, &r, "PING"), SIO_EREDIS);
    assert_int_equal(conn_start(f, 0), SIO_OK);
    assert_int_equal(rds_conn_start(f->conns[0], on_start, &f->obs[0]), SIO_EINVAL);
    RT_WAIT_FOR(f, f->obs[0].ups == 1, 1000);
    assert_int_equal(f->obs[0].last_up.n_up, 1);
    assert_int_equal(f->obs[0].connected_logs, 1);
    assert_int_equal(rds_conn_is_up(f->conns[0]), 1);
    assert_string_equal(rds_conn_name(f->conns[0]), "cmd0");
    assert_non_null(strstr(rds_conn_where(f->conns[0]), "redis://127.0.0.1:"));

    CMD(f, 0, &r, "PING");
    assert_int_equal(r.err, SIO_OK);
    assert_int_equal(r.type, REDIS_REPLY_STATUS);
    assert_memory_equal(r.str, "PONG", 4);
    assert_int_equal(r.calls, 1);
    assert_int_equal(rds_conn_pending(f->conns[0]), 0);

    /* a Redis error reply is a reply: err OK, type ERROR */
    CMD(f, 0, &r, "NOSUCHCOMMAND %s", "x");
    assert_int_equal(r.err, SIO_OK);
    assert_int_equal(r.type, REDIS_REPLY_ERROR);

    /* a NULL callback is allowed (fire and forget) and still answered in order */
    assert_int_equal(rds_conn_command(f->conns[0], NULL, NULL, "SET k v"), SIO_OK);
    CMD(f, 0, &r, "GET k");
    assert_memory_equal(r.str, "v", 1);

    /* refused at the call: mode-changing commands, empty commands, bad arguments */
    assert_int_equal(rds_conn_command(f->conns[0], on_reply, &r, "SUBSCRIBE ch"), SIO_EINVAL);
    assert_int_equal(rds_conn_command(f->conns[0], on_reply, &r, "psubscribe p*"), SIO_EINVAL);
    assert_int_equal(rds_conn_command(f->conns[0], on_reply, &r, "UNSUBSCRIBE"), SIO_EINVAL);
    assert_int_equal(rds_conn_command(f->conns[0], on_reply, &r, "MONITOR"), SIO_EINVAL);
    assert_int_equal(rds_conn_command(f->conns[0], on_reply, &r, ""), SIO_EINVAL);
    assert_int_equal(rds_conn_command_argv(f->conns[0], on_reply, &r, 0, NULL, NULL), SIO_EINVAL);
    assert_int_equal(rds_conn_subscribe(f->conns[0], "ch", on_message, NULL), SIO_EINVAL);
    rt_run_for(f, 50);
    assert_int_equal(r.calls, 1); /* none of the refused ones called back */

    rds_conn_get_stats(f->conns[0], &st);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.timeouts, 0);
    assert_int_equal(st.commands_failed, 1); /* the PING before start */
    conn_close(f, 0);
    assert_int_equal(f->obs[0].downs, 0);
}

static void test_set_get_binary(void **state)
{
    fx_t *f = *state;
    static const char value[] = {'a', '\0', 'b', '\r', '\n', (char)0xff, '\0', 'z'};
    const char *argv[3];
    size_t lens[3];
    res_t r;

    RT_REQUIRE_REDIS();
    redis_start(f, NULL, NULL);
    conn_new(f, 0, NULL, 0, 2000);
    assert_int_equal(conn_start(f, 0), SIO_OK);

    argv[0] = "SET";
    argv[1] = "bin\0key";
    argv[2] = value;
    lens[0] = 3;
    lens[1] = 7;
    lens[2] = sizeof(value);
    memset(&r, 0, sizeof(r));
    assert_int_equal(rds_conn_command_argv(f->conns[0], on_reply, &r, 3, argv, lens), SIO_OK);
    RT_WAIT_FOR(f, r.calls == 1, 2000);
    assert_int_equal(r.type, REDIS_REPLY_STATUS);

    CMD(f, 0, &r, "GET %b", "bin\0key", (size_t)7);
    assert_int_equal(r.err, SIO_OK);
    assert_int_equal(r.type, REDIS_REPLY_STRING);
    assert_int_equal(r.len, sizeof(value));
    assert_memory_equal(r.str, value, sizeof(value));

    /* the key with the NUL is not the key cut at the NUL */
    CMD(f, 0, &r, "EXISTS %s", "bin");
    assert_int_equal(r.integer, 0);

    /* argvlen NULL means C strings */
    argv[0] = "ECHO";
    argv[1] = "plain";
    memset(&r, 0, sizeof(r));
    assert_int_equal(rds_conn_command_argv(f->conns[0], on_reply, &r, 2, argv, NULL), SIO_OK);
    RT_WAIT_FOR(f, r.calls == 1, 2000);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.str, "plain", 5);
    conn_close(f, 0);
}

static void test_command_timeout(void **state)
{
    fx_t *f = *state;
    rds_conn_stats_t st;
    res_t r, late[3];

    RT_REQUIRE_REDIS();
    redis_start(f, NULL, NULL);
    conn_new(f, 0, NULL, 0, 300);
    assert_int_equal(conn_start(f, 0), SIO_OK);

    /* CLIENT PAUSE answers at once, then holds this client's next commands */
    CMD(f, 0, &r, "CLIENT PAUSE 1200");
    assert_int_equal(r.type, REDIS_REPLY_STATUS);
    memset(late, 0, sizeof(late));
    for (int i = 0; i < 3; i++)
        assert_int_equal(rds_conn_command(f->conns[0], on_reply, &late[i], "ECHO %d", i), SIO_OK);
    assert_int_equal(rds_conn_pending(f->conns[0]), 3);
    RT_WAIT_FOR(f, late[0].calls == 1 && late[1].calls == 1 && late[2].calls == 1, 1000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(late[i].err, SIO_ETIMEDOUT);
    assert_int_equal(rds_conn_pending(f->conns[0]), 0);
    rds_conn_get_stats(f->conns[0], &st);
    assert_int_equal(st.timeouts, 3);
    assert_int_equal(st.late_replies, 0);

    /* the pause ends, the late replies arrive and are swallowed: no second callback */
    {
        rds_conn_t *c = f->conns[0];
        RT_WAIT_FOR(f, (rds_conn_get_stats(c, &st), st.late_replies == 3), 3000);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(late[i].calls, 1);

    /* the connection is still good, in order, and on time */
    CMD(f, 0, &r, "ECHO %s", "after");
    assert_int_equal(r.err, SIO_OK);
    assert_memory_equal(r.str, "after", 5);
    assert_int_equal(f->obs[0].downs, 0);
    rds_conn_get_stats(f->conns[0], &st);
    assert_int_equal(st.timeouts, 3);

    /* a timed-out command whose reply never comes before close: hiredis's NULL reply at
     * teardown releases its record (LeakSanitizer / valgrind check this), no callback */
    CMD(f, 0, &r, "CLIENT PAUSE 1000");
    memset(late, 0, sizeof(late));
    assert_int_equal(rds_conn_command(f->conns[0], on_reply, &late[0], "PING"), SIO_OK);
    RT_WAIT_FOR(f, late[0].calls == 1, 1000);
    assert_int_equal(late[0].err, SIO_ETIMEDOUT);
    conn_close(f, 0);
    assert_int_equal(late[0].calls, 1);
}

static void test_pubsub(void **state)
{
    fx_t *f = *state;
    subs_t ch, pat, other;
    const char *argv[3];
    size_t lens[3];
    static const char payload[] = {'h', 'i', '\0', (char)0x80, 'x'};
    res_t r;

    RT_REQUIRE_REDIS();
    redis_start(f, NULL, NULL);
    conn_new(f, 0, NULL, 0, 2000);
    conn_new(f, 1, NULL, 1, 2000);
    memset(&ch, 0, sizeof(ch));
    memset(&pat, 0, sizeof(pat));
    memset(&other, 0, sizeof(other));
    /* subscribing before start is allowed: sent on the first connect */
    assert_int_equal(rds_conn_subscribe(f->conns[1], "chan", on_message, &ch), SIO_OK);
    assert_int_equal(conn_start(f, 0), SIO_OK);
    assert_int_equal(conn_start(f, 1), SIO_OK);
    RT_WAIT_FOR(f, f->obs[1].ups == 1, 1000);
    assert_int_equal(ch.subscribed, 1); /* confirmed before on_up */
    assert_int_equal(f->obs[1].last_up.resubscribed, 1);

    assert_int_equal(rds_conn_psubscribe(f->conns[1], "pat.*", on_message, &pat), SIO_OK);
    assert_int_equal(rds_conn_subscribe(f->conns[1], "other", on_message, &other), SIO_OK);
    RT_WAIT_FOR(f, pat.subscribed == 1 && other.subscribed == 1, 2000);
    assert_int_equal(rds_conn_subscriptions(f->conns[1]), 3);

    /* subscriber connections take no commands */
    assert_int_equal(rds_conn_command(f->conns[1], on_reply, &r, "PING"), SIO_EINVAL);
    assert_int_equal(rds_conn_unsubscribe(f->conns[1], "nope"), SIO_ENOTFOUND);
    assert_int_equal(rds_conn_subscribe(f->conns[1], "", on_message, &ch), SIO_EINVAL);
    assert_int_equal(rds_conn_subscribe(f->conns[1], "x", NULL, NULL), SIO_EINVAL);

    argv[0] = "PUBLISH";
    argv[1] = "chan";
    argv[2] = payload;
    lens[0] = 7;
    lens[1] = 4;
    lens[2] = sizeof(payload);
    memset(&r, 0, sizeof(r));
    assert_int_equal(rds_conn_command_argv(f->conns[0], on_reply, &r, 3, argv, lens), SIO_OK);
    RT_WAIT_FOR(f, ch.messages == 1, 2000);
    assert_int_equal(r.integer, 1);
    assert_string_equal(ch.channel, "chan");
    assert_string_equal(ch.pattern, "");
    assert_int_equal(ch.payload_len, sizeof(payload));
    assert_memory_equal(ch.payload, payload, sizeof(payload));

    CMD(f, 0, &r, "PUBLISH pat.x %s", "by-pattern");
    RT_WAIT_FOR(f, pat.messages == 1, 2000);
    assert_string_equal(pat.channel, "pat.x");
    assert_string_equal(pat.pattern, "pat.*");
    assert_memory_equal(pat.payload, "by-pattern", 10);
    assert_int_equal(ch.messages, 1);

    /* after unsubscribe no callback, even for a message already on its way: "other" is
     * published after "chan" on the same connection, so it arrives after it */
    assert_int_equal(rds_conn_unsubscribe(f->conns[1], "chan"), SIO_OK);
    assert_int_equal(rds_conn_unsubscribe(f->conns[1], "chan"), SIO_ENOTFOUND);
    assert_int_equal(rds_conn_command(f->conns[0], NULL, NULL, "PUBLISH chan late"), SIO_OK);
    assert_int_equal(rds_conn_command(f->conns[0], NULL, NULL, "PUBLISH other marker"), SIO_OK);
    RT_WAIT_FOR(f, other.messages == 1, 2000);
    assert_int_equal(ch.messages, 1);

    /* re-subscribing a held name replaces the handler without a second SUBSCRIBE */
    memset(&ch, 0, sizeof(ch));
    assert_int_equal(rds_conn_subscribe(f->conns[1], "other", on_message, &ch), SIO_OK);
    CMD(f, 0, &r, "PUBLISH other again");
    RT_WAIT_FOR(f, ch.messages == 1, 2000);
    assert_int_equal(r.integer, 1);
    assert_int_equal(ch.subscribed, 0);
    assert_int_equal(other.messages, 1);

    assert_int_equal(rds_conn_punsubscribe(f->conns[1], "pat.*"), SIO_OK);
    CMD(f, 0, &r, "PUBLISH pat.y %s", "gone");
    CMD(f, 0, &r, "PUBLISH other %s", "marker2");
    RT_WAIT_FOR(f, ch.messages == 2, 2000);
    assert_int_equal(pat.messages, 1);
    {
        rds_conn_stats_t st;
        rds_conn_get_stats(f->conns[1], &st);
        assert_int_equal(st.messages, 5);
    }
    conn_close(f, 1);
    conn_close(f, 0);
}

static void on_reply_then_command(rds_conn_t *c, int err, redisReply *r, void *ud)
{
    res_t *x = ud;
    res_t dummy;

    on_reply(c, err, r, ud);
    /* from inside a failure callback, the connection already refuses new work */
    if (err != SIO_OK)
        x->integer = rds_conn_command(c, on_reply, &dummy, "PING");
}

static void test_kill_and_restart(void **state)
{
    fx_t *f = *state;
    subs_t ch, pat;
    rds_conn_stats_t st;
    res_t r, blocked;
    int i;

    RT_REQUIRE_REDIS();
    redis_start(f, NULL, NULL);
    conn_new(f, 0, NULL, 0, 5000);
    conn_new(f, 1, NULL, 1, 5000);
    conn_new(f, 2, NULL, 0, 2000);
    memset(&ch, 0, sizeof(ch));
    memset(&pat, 0, sizeof(pat));
    assert_int_equal(rds_conn_subscribe(f->conns[1], "room", on_message, &ch), SIO_OK);
    assert_int_equal(rds_conn_psubscribe(f->conns[1], "ns:*", on_message, &pat), SIO_OK);
    assert_int_equal(conn_start(f, 0), SIO_OK);
    assert_int_equal(conn_start(f, 1), SIO_OK);
    assert_int_equal(conn_start(f, 2), SIO_OK);
    RT_WAIT_FOR(f, f->obs[1].ups == 1 && ch.subscribed == 1 && pat.subscribed == 1, 1000);

    /* a command in flight when Redis dies fails with SIO_EREDIS, exactly once; wait until
     * the server has it blocked so it really is in flight */
    memset(&blocked, 0, sizeof(blocked));
    assert_int_equal(
        rds_conn_command(f->conns[0], on_reply_then_command, &blocked, "BLPOP nothing 10"), SIO_OK);
    for (i = 0; i < 100; i++) {
        CMD(f, 2, &r, "INFO clients");
        if (strstr(r.str, "blocked_clients:1") != NULL)
            break;
        rt_run_for(f, 10);
    }
    assert_non_null(strstr(r.str, "blocked_clients:1"));

    rt_redis_kill(&f->pid);
    RT_WAIT_FOR(f, blocked.calls == 1 && f->obs[0].downs == 1 && f->obs[1].downs == 1, 3000);
    assert_int_equal(blocked.err, SIO_EREDIS);
    assert_int_equal(blocked.integer, SIO_EREDIS);
    assert_true(f->obs[0].down_reason[0] != '\0');
    assert_string_equal(rds_conn_last_error(f->conns[0]), f->obs[0].down_reason);
    assert_int_equal(f->obs[0].lost_logs, 1);
    assert_int_equal(f->obs[1].lost_logs, 1);
    assert_int_equal(rds_conn_is_up(f->conns[0]), 0);

    /* while down, commands fail at the call and nothing is buffered */
    memset(&r, 0, sizeof(r));
    assert_int_equal(rds_conn_command(f->conns[0], on_reply, &r, "PING"), SIO_EREDIS);
    assert_int_equal(rds_conn_pending(f->conns[0]), 0);

    /* repeated failed attempts: the loss is logged once, a changed reason once more, the
     * repeats only at debug level */
    RT_WAIT_FOR(f, f->obs[0].debug_logs >= 2 && f->obs[1].debug_logs >= 2, 5000);
    assert_int_equal(f->obs[0].lost_logs, 1);
    assert_true(f->obs[0].still_down_logs <= 1);
    assert_int_equal(f->obs[0].warn_logs, f->obs[0].lost_logs + f->obs[0].still_down_logs);
    assert_int_equal(f->obs[0].downs, 1);
    assert_int_equal(f->obs[0].ups, 1);
    rds_conn_get_stats(f->conns[0], &st);
    assert_true(st.commands_failed >= 3); /* BLPOP, the PING inside its callback, the PING */

    /* Redis comes back on the same port: reconnect, resubscribe, messages flow again */
    redis_start(f, NULL, NULL);
    RT_WAIT_FOR(f, f->obs[0].ups == 2 && f->obs[1].ups == 2 && f->obs[2].ups == 2, 5000);
    assert_int_equal(f->obs[1].last_up.n_up, 2);
    assert_int_equal(f->obs[1].last_up.resubscribed, 2);
    assert_true(f->obs[1].last_up.down_ms > 0);
    assert_int_equal(ch.subscribed, 2);
    assert_int_equal(pat.subscribed, 2);
    assert_int_equal(f->obs[0].reconnected_logs, 1);
    assert_int_equal(f->obs[1].reconnected_logs, 1);
    rds_conn_get_stats(f->conns[1], &st);
    assert_int_equal(st.reconnects, 1);

    CMD(f, 0, &r, "PUBLISH room %s", "back");
    assert_int_equal(r.integer, 1);
    CMD(f, 0, &r, "PUBLISH ns:chat %s", "also");
    assert_int_equal(r.integer, 1);
    RT_WAIT_FOR(f, ch.messages == 1 && pat.messages == 1, 2000);
    assert_memory_equal(ch.payload, "back", 4);
    assert_string_equal(pat.channel, "ns:chat");
    assert_int_equal(blocked.calls, 1);
    conn_close(f, 2);
    conn_close(f, 1);
    conn_close(f, 0);
}

/* A connection reset (RST, reported by libuv as a poll error) must end the connection like
 * an orderly close does. Redis killed while it holds unread bytes of ours resets. */
static void test_reset_while_up(void **state)
{
    fx_t *f = *state;
    res_t r;
    subs_t ch;

    RT_REQUIRE_REDIS();
    redis_start(f, NULL, NULL);
    conn_new(f, 0, NULL, 0, 5000);
    conn_new(f, 1, NULL, 1, 5000);
    memset(&ch, 0, sizeof(ch));
    assert_int_equal(rds_conn_subscribe(f->conns[1], "c", on_message, &ch), SIO_OK);
    assert_int_equal(conn_start(f, 0), SIO_OK);
    assert_int_equal(conn_start(f, 1), SIO_OK);
    RT_WAIT_FOR(f, ch.subscribed == 1, 1000);

    kill(f->pid, SIGSTOP);
    memset(&r, 0, sizeof(r));
    assert_int_equal(rds_conn_command(f->conns[0], on_reply, &r, "PING"), SIO_OK);
    /* the subscriber gets unread bytes too, through a subscription change */
    assert_int_equal(rds_conn_subscribe(f->conns[1], "d", on_message, &ch), SIO_OK);
    rt_run_for(f, 50);      /* let both writes reach the stopped server's receive buffers */
    rt_redis_kill(&f->pid); /* SIGKILL works on a stopped process; unread data -> RST */
    RT_WAIT_FOR(f, r.calls == 1 && f->obs[0].downs == 1 && f->obs[1].downs == 1, 3000);
    assert_int_equal(r.err, SIO_EREDIS);
    if (getenv("RDS_TEST_VERBOSE") != NULL)
        print_message("reset reasons: \"%s\" / \"%s\"\n", f->obs[0].down_reason,
                      f->obs[1].down_reason);

    redis_start(f, NULL, NULL);
    RT_WAIT_FOR(f, f->obs[0].ups == 2 && f->obs[1].ups == 2, 5000);
    assert_int_equal(f->obs[1].last_up.resubscribed, 2);
    conn_close(f, 1);
    conn_close(f, 0);
}

static void test_auth_and_select(void **state)
{
    fx_t *f = *state;
    char url[256];
    res_t r;

    RT_REQUIRE_REDIS();
    redis_start(f, PASSWORD, NULL);

    /* password only (percent-encoded in the URL) */
    snprintf(url, sizeof(url), "redis://:s3cret%%20pass%%40%%2F%%3A@127.0.0.1:%d", f->port);
    conn_new(f, 0, url, 0, 2000);
    assert_int_equal(conn_start(f, 0), SIO_OK);
    assert_null(strstr(rds_conn_where(f->conns[0]), "s3cret"));
    CMD(f, 0, &r, "PING");
    assert_int_equal(r.type, REDIS_REPLY_STATUS);

    /* ACL user + password, and SELECT */
    snprintf(url, sizeof(url), "redis://default:s3cret%%20pass%%40%%2F%%3A@127.0.0.1:%d/2",
             f->port);
    conn_new(f, 1, url, 0, 2000);
    assert_int_equal(conn_start(f, 1), SIO_OK);
    CMD(f, 1, &r, "SET only-in-2 yes");
    CMD(f, 1, &r, "GET only-in-2");
    assert_int_equal(r.type, REDIS_REPLY_STRING);
    CMD(f, 0, &r, "GET only-in-2");
    assert_int_equal(r.type, REDIS_REPLY_NIL);
    conn_close(f, 1);

    /* wrong password: a clear start error, no on_down (never up), and it keeps trying */
    snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d", f->port);
    conn_new(f, 1, url, 0, 2000);
    assert_int_equal(conn_start(f, 1), SIO_EREDIS);
    assert_non_null(strstr(f->obs[1].start_reason, "AUTH refused: "));
    assert_non_null(strstr(f->obs[1].start_reason, "WRONGPASS"));
    RT_WAIT_FOR(f, f->obs[1].debug_logs >= 1, 3000);
    assert_int_equal(f->obs[1].downs, 0);
    assert_int_equal(f->obs[1].ups, 0);
    assert_int_equal(f->obs[1].warn_logs, 1);
    conn_close(f, 1);

    /* no password at all */
    conn_new(f, 1, NULL, 0, 2000);
    assert_int_equal(conn_start(f, 1), SIO_EREDIS);
    assert_non_null(strstr(f->obs[1].start_reason, "NOAUTH"));
    assert_non_null(strstr(f->obs[1].start_reason, "the URL has no password"));
    conn_close(f, 1);

    /* a db the server does not have */
    snprintf(url, sizeof(url), "redis://:s3cret%%20pass%%40%%2F%%3A@127.0.0.1:%d/99999", f->port);
    conn_new(f, 1, url, 0, 2000);
    assert_int_equal(conn_start(f, 1), SIO_EREDIS);
    assert_non_null(strstr(f->obs[1].start_reason, "SELECT 99999 refused"));
    conn_close(f, 1);
    conn_close(f, 0);
}

static void test_close_with_pending(void **state)
{
    fx_t *f = *state;
    res_t p[5], r;
    rds_conn_t *c;
    int i;

    RT_REQUIRE_REDIS();
    redis_start(f, NULL, NULL);
    c = conn_new(f, 0, NULL, 0, 5000);
    assert_int_equal(conn_start(f, 0), SIO_OK);
    CMD(f, 0, &r, "CLIENT PAUSE 1000");
    memset(p, 0, sizeof(p));
    assert_int_equal(rds_conn_command(c, on_reply_then_command, &p[0], "PING"), SIO_OK);
    for (i = 1; i < 5; i++)
        assert_int_equal(rds_conn_command(c, on_reply, &p[i], "PING"), SIO_OK);
    assert_int_equal(rds_conn_pending(c), 5);

    /* every pending callback runs once, with SIO_ECLOSED, before close returns */
    assert_int_equal(rds_conn_close(c, on_closed, &f->obs[0]), SIO_OK);
    f->conns[0] = NULL;
    for (i = 0; i < 5; i++) {
        assert_int_equal(p[i].calls, 1);
        assert_int_equal(p[i].err, SIO_ECLOSED);
    }
    assert_int_equal(p[0].integer, SIO_ECLOSED); /* new commands refused while closing */
    assert_int_equal(f->obs[0].closed, 0);       /* the close callback comes from the loop */
    RT_WAIT_FOR(f, f->obs[0].closed == 1, 2000);
    rt_run_for(f, 50);
    for (i = 0; i < 5; i++)
        assert_int_equal(p[i].calls, 1);
    assert_int_equal(f->obs[0].downs, 0);
}

/* Closes the connection from inside a reply callback. */
static void on_reply_close(rds_conn_t *c, int err, redisReply *r, void *ud)
{
    res_t *x = ud;
    obs_t *o = x->integer == 0 ? NULL : (obs_t *)(intptr_t)x->integer;

    on_reply(c, err, r, ud);
    assert_int_equal(rds_conn_close(c, on_closed, o), SIO_OK);
    assert_int_equal(rds_conn_close(c, on_closed, o), SIO_ECLOSED);
}

static void on_start_close(rds_conn_t *c, int err, const char *reason, void *ud)
{
    obs_t *o = ud;

    on_start(c, err, reason, ud);
    assert_int_equal(rds_conn_close(c, on_closed, o), SIO_OK);
}

static void test_close_reentrant(void **state)
{
    fx_t *f = *state;
    res_t a, b;
    rds_conn_t *c;

    RT_REQUIRE_REDIS();
    redis_start(f, NULL, NULL);

    /* close from a reply callback: the command behind it gets SIO_ECLOSED */
    c = conn_new(f, 0, NULL, 0, 2000);
    assert_int_equal(conn_start(f, 0), SIO_OK);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.integer = (long long)(intptr_t)&f->obs[0];
    assert_int_equal(rds_conn_command(c, on_reply_close, &a, "PING"), SIO_OK);
    assert_int_equal(rds_conn_command(c, on_reply, &b, "PING"), SIO_OK);
    f->conns[0] = NULL; /* the callback owns the close */
    RT_WAIT_FOR(f, f->obs[0].closed == 1, 2000);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, SIO_OK);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.err, SIO_ECLOSED);

    /* close before start */
    c = conn_new(f, 1, NULL, 0, 2000);
    f->conns[1] = NULL;
    assert_int_equal(rds_conn_close(c, on_closed, &f->obs[1]), SIO_OK);
    RT_WAIT_FOR(f, f->obs[1].closed == 1, 2000);

    /* close from the start callback */
    c = conn_new(f, 2, NULL, 1, 2000);
    f->conns[2] = NULL;
    assert_int_equal(rds_conn_start(c, on_start_close, &f->obs[2]), SIO_OK);
    RT_WAIT_FOR(f, f->obs[2].closed == 1, 2000);
    assert_int_equal(f->obs[2].starts, 1);
    assert_int_equal(f->obs[2].start_err, SIO_OK);
    assert_int_equal(f->obs[2].ups, 0); /* closed before on_up */

    /* close while connecting: the start callback reports SIO_ECLOSED */
    c = conn_new(f, 3, NULL, 0, 2000);
    f->conns[3] = NULL;
    assert_int_equal(rds_conn_start(c, on_start, &f->obs[3]), SIO_OK);
    assert_int_equal(rds_conn_close(c, on_closed, &f->obs[3]), SIO_OK);
    assert_int_equal(f->obs[3].starts, 1);
    assert_int_equal(f->obs[3].start_err, SIO_ECLOSED);
    RT_WAIT_FOR(f, f->obs[3].closed == 1, 2000);
}

static void test_refused_then_up(void **state)
{
    fx_t *f = *state;
    rds_conn_stats_t st;
    res_t r;

    RT_REQUIRE_REDIS();
    /* nothing listens yet: a clear first outcome, then retries until Redis appears */
    conn_new(f, 0, NULL, 0, 2000);
    assert_int_equal(conn_start(f, 0), SIO_EREDIS);
    assert_non_null(strstr(f->obs[0].start_reason, "refused"));
    assert_int_equal(f->obs[0].warn_logs, 1);
    RT_WAIT_FOR(f, f->obs[0].debug_logs >= 1, 3000);
    redis_start(f, NULL, NULL);
    RT_WAIT_FOR(f, f->obs[0].ups == 1, 3000);
    assert_int_equal(f->obs[0].last_up.n_up, 1);
    assert_int_equal(f->obs[0].connected_logs, 1);
    assert_int_equal(f->obs[0].downs, 0);
    assert_int_equal(f->obs[0].starts, 1);
    rds_conn_get_stats(f->conns[0], &st);
    assert_int_equal(st.reconnects, 0);
    CMD(f, 0, &r, "PING");
    assert_int_equal(r.err, SIO_OK);
    conn_close(f, 0);
}

static void test_unix_socket(void **state)
{
    fx_t *f = *state;
    char path[128], url[160];
    res_t r;

    RT_REQUIRE_REDIS();
    snprintf(path, sizeof(path), "%s/redis.sock", f->dir);
    redis_start(f, NULL, path);
    snprintf(url, sizeof(url), "unix://%s?db=1", path);
    conn_new(f, 0, url, 0, 2000);
    assert_int_equal(conn_start(f, 0), SIO_OK);
    CMD(f, 0, &r, "CLIENT INFO");
    assert_non_null(strstr(r.str, "db=1"));
    conn_close(f, 0);
}

/* A server that completes TCP handshakes (the kernel does, from the backlog) but never
 * answers: the handshake deadline must end the attempt. Needs no redis-server. */
static void test_silent_server_times_out(void **state)
{
    fx_t *f = *state;
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    char url[64];
    int fd;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", ntohs(sa.sin_port));
    conn_new(f, 0, url, 0, 2000);
    assert_int_equal(conn_start(f, 0), SIO_EREDIS);
    assert_non_null(strstr(f->obs[0].start_reason, "no answer to the handshake within 1000 ms"));
    conn_close(f, 0);
    close(fd);
}

/* Bad URLs and configurations are refused up front. */
static void test_config_edges(void **state)
{
    fx_t *f = *state;
    rds_conn_config_t cfg;
    rds_conn_t *c;

    rds_conn_config_init(&cfg);
    assert_int_equal(cfg.connect_timeout_ms, RDS_CONNECT_TIMEOUT_MS);
    assert_int_equal(cfg.command_timeout_ms, RDS_COMMAND_TIMEOUT_MS);
    cfg.backoff_min_ms = 1000;
    cfg.backoff_max_ms = 10;
    assert_null(rds_conn_new(&f->loop, &cfg, "x", NULL));

    /* all defaults, no events: 127.0.0.1:6379, logs to stderr */
    c = rds_conn_new(&f->loop, NULL, NULL, NULL);
    assert_non_null(c);
    assert_string_equal(rds_conn_name(c), "redis");
    assert_string_equal(rds_conn_where(c), "redis://127.0.0.1:6379/0");
    assert_string_equal(rds_conn_last_error(c), "");
    assert_int_equal(rds_conn_subscribe(c, "x", on_message, NULL), SIO_EINVAL);
    assert_int_equal(rds_conn_close(c, on_closed, &f->obs[0]), SIO_OK);
    RT_WAIT_FOR(f, f->obs[0].closed == 1, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_get_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pubsub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_while_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_and_select, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_reentrant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_then_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_server_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_edges, setup, teardown),
    };
    return cmocka_run_group_tests_name("rds_conn", tests, NULL, NULL);
}
