/* test_ctl.c -- adapter/ctl/ctl_cmd.c: the commands of sockeye-ctl against a real
 * redis-server, with keys written the way a node writes them (adapter/redis/REDIS.md).
 *
 * Each test starts its own redis-server (redis_fixture.h; skipped when redis-server is not
 * on PATH), writes the keys through a plain hiredis connection and checks what each
 * command prints, byte for byte: the tables sockeye-ctl shows an operator
 * (tests/integration/ctl.test.js checks the same commands against a live node). Times are
 * written relative to Redis' clock and chosen in the middle of the unit the tables round
 * to (minutes past an hour), so the expected text holds for 30 s after the keys were
 * written whatever the machine's speed.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "base_alloc.h"
#include "ctl_cmd.h"

typedef struct fx {
    uv_loop_t loop; /* redis_fixture.h's waits; the commands themselves are synchronous */
    uv_timer_t deadline;
    int expired;
    char dir[64];
    int port;
    pid_t pid;
    redisContext *c; /* writes the keys, and is the context the commands run on */
    uint64_t now;    /* Redis' clock when the keys were written (ms) */
    char first[32];  /* ids / offsets written by write_keys, for the expected text */
    char last[32];
    char room[32];
    char chat[32];
    char ahead[32];
    uint64_t read;
    char *out; /* what the last command printed */
    size_t out_len;
} fx_t;

#include "redis_fixture.h"

#define MINUTE 60000ULL
#define HOUR (60 * MINUTE)
#define HALF_MINUTE 30000ULL /* margin: the tables show minutes past an hour */

static int setup(void **state)
{
    fx_t *f = base_calloc(1, sizeof(*f));

    rt_fixture_init(f, "test-ctl");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;

    if (f->c != NULL)
        redisFree(f->c);
    free(f->out);
    rt_redis_kill(&f->pid);
    uv_close((uv_handle_t *)&f->deadline, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    rt_rm_dir(f->dir);
    base_free(f);
    return 0;
}

/* Starts redis-server and connects f->c to it (bounded: 100 tries, 20 ms apart). */
static void redis_start(fx_t *f)
{
    struct timeval tv = {2, 0};

    rt_redis_spawn(&f->pid, f->port, f->dir, NULL, NULL, NULL, 1);
    for (int i = 0; i < 100; i++) {
        f->c = redisConnectWithTimeout("127.0.0.1", f->port, tv);
        if (f->c != NULL && f->c->err == 0)
            break;
        redisFree(f->c);
        f->c = NULL;
        rt_run_for(f, 20);
    }
    assert_non_null(f->c);
    redisSetTimeout(f->c, tv);
}

/* Runs a command (hiredis format) that must succeed. */
static void cmd(fx_t *f, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(f->c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", fmt, r->str);
    freeReplyObject(r);
}

/* Redis' clock in ms. */
static uint64_t redis_now(fx_t *f)
{
    redisReply *r = redisCommand(f->c, "TIME");
    uint64_t ms;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    ms = strtoull(r->element[0]->str, NULL, 10) * 1000 +
         strtoull(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return ms;
}

/* "<now - ago>-<seq>" (ago may be "negative": a time ahead of Redis' clock). */
static const char *id_at(char *buf, size_t len, uint64_t ms, unsigned seq)
{
    snprintf(buf, len, "%" PRIu64 "-%u", ms, seq);
    return buf;
}

/* What a running cluster leaves: the node registry, streams and offset counters of "/"
 * and "/chat", and sessions (REDIS.md "Keys"). */
static void write_keys(fx_t *f)
{
    uint64_t now = f->now = redis_now(f);

    id_at(f->first, sizeof(f->first), now - (2 * HOUR + 30 * MINUTE + HALF_MINUTE), 0);
    id_at(f->last, sizeof(f->last), now - (1 * HOUR + 30 * MINUTE + HALF_MINUTE), 3);
    id_at(f->room, sizeof(f->room), now - (1 * HOUR + 15 * MINUTE + HALF_MINUTE), 1);
    id_at(f->chat, sizeof(f->chat), now + 40 * HOUR, 0);
    id_at(f->ahead, sizeof(f->ahead), now + HOUR, 0);
    f->read = now - (1 * HOUR + 45 * MINUTE + HALF_MINUTE);

    /* a live node, a stale zset member without a record, a record the zset lacks */
    cmd(f,
        "HSET sockeye:node:AbC123 id AbC123 address 127.0.0.1:3001 pid 4242 started %" PRIu64
        " connections 17 version 0.1.0",
        now - (3 * HOUR + 30 * MINUTE + HALF_MINUTE));
    cmd(f, "PEXPIRE sockeye:node:AbC123 15000");
    cmd(f, "ZADD sockeye:nodes %" PRIu64 " AbC123 %" PRIu64 " Gone99",
        now + 12 * HOUR + 30 * MINUTE + HALF_MINUTE, now - 2 * HOUR);
    cmd(f,
        "HSET sockeye:node:Unlst1 id Unlst1 address 10.0.0.2:3000 pid 7 started %" PRIu64
        " connections 0 version 0.0.9",
        now - (25 * HOUR + 30 * MINUTE));

    /* streams (one field, m): "/" all (2 entries) and room1, "/chat" all; the counters */
    cmd(f, "XADD sockeye:{/}:all %s m x", f->first);
    cmd(f, "XADD sockeye:{/}:all %s m y", f->last);
    cmd(f, "PEXPIRE sockeye:{/}:all %" PRIu64, 5 * HOUR + 30 * MINUTE + HALF_MINUTE);
    cmd(f, "XADD sockeye:{/}:r:room1 %s m z", f->room);
    cmd(f, "XADD sockeye:{/chat}:all %s m w", f->chat);
    cmd(f, "SET sockeye:{/}:last %s PX %" PRIu64, f->room, 10 * HOUR + 30 * MINUTE + HALF_MINUTE);
    cmd(f, "SET sockeye:{/chat}:last garbage");

    /* sessions: a full one, a malformed one, one with a tab and a room too long to show */
    cmd(f,
        "HSET sockeye:{/}:sess:pid-1 sid sid-1 pid pid-1 rooms %s data %s offset %s joined "
        "{\"late\":\"%s\"} read %" PRIu64 " owner AbC123:7",
        "[\"sid-1\",\"early\",\"late\"]", "{\"k\":1,\"n\":[1,2]}", f->first, f->room, f->read);
    cmd(f, "PEXPIRE sockeye:{/}:sess:pid-1 %" PRIu64, 1 * HOUR + 30 * MINUTE + HALF_MINUTE);
    cmd(f, "HSET sockeye:{/chat}:sess:pid-2 sid sid-2 pid pid-2 rooms %s offset bad owner AbC123:8",
        "not json");
    cmd(f, "HSET sockeye:{/}:sess:pid-3 sid sid-3 pid pid-3 rooms %s offset %s owner AbC123:9",
        "[\"sid-3\",\"tab\there\",\"a-room-whose-name-is-much-longer-than-sixty-bytes-so-it-is-"
        "cut\"]",
        f->ahead);
    /* another cluster's keys under another prefix: never listed */
    cmd(f, "HSET other:{/}:sess:pid-9 sid sid-9 pid pid-9 rooms []");
    cmd(f, "HSET other:node:Zz9999 id Zz9999");
}

/* Runs one command with its output captured into f->out; returns its result. */
typedef int (*run_fn)(app_ctl_t *x, const char *a, const char *b);

static int run(fx_t *f, const char *prefix, run_fn fn, const char *a, const char *b)
{
    FILE *out;
    app_ctl_t x;
    int rc;

    free(f->out);
    f->out = NULL;
    out = open_memstream(&f->out, &f->out_len);
    assert_non_null(out);
    app_ctl_init(&x, f->c, prefix, out);
    assert_int_equal(app_ctl_read_clock(&x), APP_CTL_OK);
    assert_true(x.now_ms >= f->now && x.now_ms < f->now + HALF_MINUTE);
    rc = fn(&x, a, b);
    if (rc == APP_CTL_EREDIS)
        print_message("error: %s\n", x.err);
    fclose(out);
    return rc;
}

static int nodes(app_ctl_t *x, const char *a, const char *b)
{
    return app_ctl_nodes(x);
}

static int sessions(app_ctl_t *x, const char *a, const char *b)
{
    return app_ctl_sessions(x, a);
}

static int streams(app_ctl_t *x, const char *a, const char *b)
{
    return app_ctl_streams(x, a);
}

static int session(app_ctl_t *x, const char *a, const char *b)
{
    return app_ctl_session(x, a, b);
}

/* Fails unless the last command printed exactly want (printf format over the ids). */
__attribute__((format(printf, 2, 3))) static void expect(fx_t *f, const char *want, ...)
{
    char buf[4096];
    va_list ap;

    va_start(ap, want);
    vsnprintf(buf, sizeof(buf), want, ap);
    va_end(ap);
    if (strcmp(f->out, buf) != 0)
        fail_msg("printed:\n%s\nwanted:\n%s", f->out, buf);
}

/* ------------------------------------------------------------------ tests */

/* The node registry: the zset's members first (stale without a record, then live), then
 * the records the zset lacks; the last line counts them. */
static void test_nodes(void **state)
{
    fx_t *f = *state;

    RT_REQUIRE_REDIS();
    redis_start(f);
    write_keys(f);
    assert_int_equal(run(f, "sockeye", nodes, NULL, NULL), APP_CTL_OK);
    expect(f, "UID     ADDRESS         PID   UP     CONNECTIONS  VERSION  EXPIRES IN  STATE\n"
              "------  --------------  ----  -----  -----------  -------  ----------  --------\n"
              "Gone99  -               -     -      -            -        0.0s        stale\n"
              "AbC123  127.0.0.1:3001  4242  3h30m  17           0.1.0    12h30m      live\n"
              "Unlst1  10.0.0.2:3000   7     1d01h  0            0.0.9    none        unlisted\n"
              "2 live, 1 stale (stale: missed their refreshes; pruned by the next writer)\n");
}

/* Sessions of every namespace or one: rooms without the socket's own, malformed fields
 * shown as such, long cells cut and control bytes replaced. */
static void test_sessions(void **state)
{
    fx_t *f = *state;

    RT_REQUIRE_REDIS();
    redis_start(f);
    write_keys(f);
    assert_int_equal(run(f, "sockeye", sessions, NULL, NULL), APP_CTL_OK);
    expect(f,
           "NAMESPACE  PID    SID    ROOMS                                                         "
           "JOINED  OFFSET           OFFSET AGE  OWNER     TTL\n"
           "---------  -----  -----  ------------------------------------------------------------  "
           "------  ---------------  ----------  --------  -----\n"
           "/chat      pid-2  sid-2  (malformed)                                                   "
           "0       bad              -           AbC123:8  none\n"
           "/          pid-1  sid-1  early,late                                                    "
           "2       %s  2h30m       AbC123:7  1h30m\n"
           "/          pid-3  sid-3  tab?here,a-room-whose-name-is-much-longer-than-sixty-byte...  "
           "2       %s  future      AbC123:9  none\n"
           "3 session(s); ROOMS leaves out each socket's own id room\n",
           f->first, f->ahead);

    assert_int_equal(run(f, "sockeye", sessions, "/chat", NULL), APP_CTL_OK);
    expect(f, "NAMESPACE  PID    SID    ROOMS        JOINED  OFFSET  OFFSET AGE  OWNER     TTL\n"
              "---------  -----  -----  -----------  ------  ------  ----------  --------  ----\n"
              "/chat      pid-2  sid-2  (malformed)  0       bad     -           AbC123:8  none\n"
              "1 session(s); ROOMS leaves out each socket's own id room\n");
    assert_int_equal(run(f, "sockeye", sessions, "/none", NULL), APP_CTL_OK);
    expect(f, "no sessions\n");
    assert_int_equal(run(f, "other", sessions, NULL, NULL), APP_CTL_OK);
    expect(f, "NAMESPACE  PID    SID    ROOMS  JOINED  OFFSET  OFFSET AGE  OWNER  TTL\n"
              "---------  -----  -----  -----  ------  ------  ----------  -----  ----\n"
              "/          pid-9  sid-9         0               -                  none\n"
              "1 session(s); ROOMS leaves out each socket's own id room\n");
}

/* Streams with their first and last ids, ages, spans and TTLs, then the counters. */
static void test_streams(void **state)
{
    fx_t *f = *state;

    RT_REQUIRE_REDIS();
    redis_start(f);
    write_keys(f);
    assert_int_equal(run(f, "sockeye", streams, NULL, NULL), APP_CTL_OK);
    expect(f,
           "NAMESPACE  STREAM   ENTRIES  FIRST            LAST             LAST AGE  SPAN   TTL\n"
           "---------  -------  -------  ---------------  ---------------  --------  -----  -----\n"
           "/chat      all      1        %s  %s  future    0.0s   none\n"
           "/          all      2        %s  %s  1h30m     1h00m  5h30m\n"
           "/          r:room1  1        %s  %s  1h15m     0.0s   none\n"
           "3 stream(s), 4 entries (a broadcast to n rooms is stored n times)\n"
           "\n"
           "NAMESPACE  LAST OFFSET      AGE    TTL\n"
           "---------  ---------------  -----  ------\n"
           "/chat      garbage          -      none\n"
           "/          %s  1h15m  10h30m\n",
           f->chat, f->chat, f->first, f->last, f->room, f->room, f->room);

    assert_int_equal(run(f, "sockeye", streams, "/", NULL), APP_CTL_OK);
    expect(f,
           "NAMESPACE  STREAM   ENTRIES  FIRST            LAST             LAST AGE  SPAN   TTL\n"
           "---------  -------  -------  ---------------  ---------------  --------  -----  -----\n"
           "/          all      2        %s  %s  1h30m     1h00m  5h30m\n"
           "/          r:room1  1        %s  %s  1h15m     0.0s   none\n"
           "2 stream(s), 3 entries (a broadcast to n rooms is stored n times)\n"
           "\n"
           "NAMESPACE  LAST OFFSET      AGE    TTL\n"
           "---------  ---------------  -----  ------\n"
           "/          %s  1h15m  10h30m\n",
           f->first, f->last, f->room, f->room, f->room);
    assert_int_equal(run(f, "sockeye", streams, "/nope", NULL), APP_CTL_OK);
    expect(f, "no streams\n\nno offset counters\n");
}

/* One session in full, its JSON fields pretty-printed; a missing one said so. */
static void test_session(void **state)
{
    fx_t *f = *state;

    RT_REQUIRE_REDIS();
    redis_start(f);
    write_keys(f);
    assert_int_equal(run(f, "sockeye", session, "/", "pid-1"), APP_CTL_OK);
    expect(f,
           "key      sockeye:{/}:sess:pid-1\n"
           "sid      sid-1\n"
           "pid      pid-1\n"
           "owner    AbC123:7\n"
           "offset   %s (2h30m old)\n"
           "rooms    [\"sid-1\", \"early\", \"late\"]\n"
           "joined   {\n\t\"late\":\t\"%s\"\n}\n"
           "read     %" PRIu64 " (1h45m ago)\n"
           "data     {\n\t\"k\":\t1,\n\t\"n\":\t[1, 2]\n}\n"
           "ttl      1h30m\n",
           f->first, f->room, f->read);

    assert_int_equal(run(f, "sockeye", session, "/chat", "pid-2"), APP_CTL_OK);
    expect(f, "key      sockeye:{/chat}:sess:pid-2\n"
              "sid      sid-2\n"
              "pid      pid-2\n"
              "owner    AbC123:8\n"
              "offset   bad (- old)\n"
              "rooms    not json\n"
              "ttl      none\n");

    assert_int_equal(run(f, "sockeye", session, "/", "no-such-pid"), APP_CTL_NOTFOUND);
    expect(f, "no session no-such-pid in namespace / (key sockeye:{/}:sess:no-such-pid): never "
              "opened, expired or released\n");
}

/* Nothing written yet: each command says so. */
static void test_empty(void **state)
{
    fx_t *f = *state;

    RT_REQUIRE_REDIS();
    redis_start(f);
    f->now = redis_now(f);
    assert_int_equal(run(f, "sockeye", nodes, NULL, NULL), APP_CTL_OK);
    expect(f, "no nodes registered\n"
              "0 live, 0 stale (stale: missed their refreshes; pruned by the next writer)\n");
    assert_int_equal(run(f, "sockeye", sessions, NULL, NULL), APP_CTL_OK);
    expect(f, "no sessions\n");
    assert_int_equal(run(f, "sockeye", streams, NULL, NULL), APP_CTL_OK);
    expect(f, "no streams\n\nno offset counters\n");
}

/* Prefixes and namespaces are matched literally: their glob metacharacters are escaped
 * in SCAN MATCH (a prefix "my*app" must not list "myXapp"'s keys). */
static void test_glob_escaped(void **state)
{
    fx_t *f = *state;

    RT_REQUIRE_REDIS();
    redis_start(f);
    f->now = redis_now(f);
    cmd(f, "HSET my*app:node:Star01 id Star01 address star:1 pid 1 version v");
    cmd(f, "HSET myXapp:node:Other1 id Other1 address x:1 pid 2 version v");
    cmd(f, "HSET my*app:{/a*b}:sess:p1 sid s1 pid p1 rooms []");
    cmd(f, "HSET my*app:{/aXb}:sess:p2 sid s2 pid p2 rooms []");
    assert_int_equal(run(f, "my*app", nodes, NULL, NULL), APP_CTL_OK);
    expect(f, "UID     ADDRESS  PID  UP  CONNECTIONS  VERSION  EXPIRES IN  STATE\n"
              "------  -------  ---  --  -----------  -------  ----------  --------\n"
              "Star01  star:1   1    -   -            v        none        unlisted\n"
              "1 live, 0 stale (stale: missed their refreshes; pruned by the next writer)\n");
    assert_int_equal(run(f, "my*app", sessions, "/a*b", NULL), APP_CTL_OK);
    expect(f, "NAMESPACE  PID  SID  ROOMS  JOINED  OFFSET  OFFSET AGE  OWNER  TTL\n"
              "---------  ---  ---  -----  ------  ------  ----------  -----  ----\n"
              "/a*b       p1   s1          0               -                  none\n"
              "1 session(s); ROOMS leaves out each socket's own id room\n");
}

/* Redis errors come back as APP_CTL_EREDIS with the message sockeye-ctl prints, and
 * nothing is printed after them. */
static void test_errors(void **state)
{
    fx_t *f = *state;
    const char *argv[1] = {"NOSUCHCMD"};
    app_ctl_t x;

    RT_REQUIRE_REDIS();
    redis_start(f);
    write_keys(f);
    app_ctl_init(&x, f->c, "sockeye", stdout);
    assert_null(app_ctl_command(&x, 1, argv));
    assert_memory_equal(x.err, "redis refused NOSUCHCMD: ERR unknown command", 44);

    /* Redis gone: the next call of each command fails at once, with nothing printed */
    rt_redis_kill(&f->pid);
    for (int i = 0; i < 4; i++) {
        static const run_fn fns[4] = {nodes, sessions, streams, session};
        FILE *out;
        free(f->out);
        f->out = NULL;
        out = open_memstream(&f->out, &f->out_len);
        assert_non_null(out);
        app_ctl_init(&x, f->c, "sockeye", out);
        assert_int_equal(fns[i](&x, "/", "pid-1"), APP_CTL_EREDIS);
        fclose(out);
        assert_memory_equal(x.err, "redis: ", 7);
        assert_string_equal(f->out, "");
    }
    assert_int_equal(app_ctl_read_clock(&x), APP_CTL_EREDIS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_glob_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
