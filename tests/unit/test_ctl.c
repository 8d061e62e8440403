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

static int queues(app_ctl_t *x, const char *a, const char *b)
{
    return app_ctl_queues(x);
}

static int queue(app_ctl_t *x, const char *a, const char *b)
{
    return app_ctl_queue(x, a);
}

/* push with the node's default bounds */
static int push(app_ctl_t *x, const char *a, const char *b)
{
    return app_ctl_push(x, a, b, APP_CTL_Q_MAX_LENGTH, APP_CTL_Q_MAX_AGE_MS);
}

/* push keeping one message at most */
static int push1(app_ctl_t *x, const char *a, const char *b)
{
    return app_ctl_push(x, a, b, 1, 0);
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

/* Consumers' IDLE is Redis' own clock since their last read (no way to write it): a
 * last-column duration under 10 s is shown as "?.?s" in f->out. */
static void mask_idle(fx_t *f)
{
    for (char *l = f->out; *l; ) {
        char *e = strchr(l, '\n');
        if (e == NULL)
            break;
        if (e - l >= 6 && e[-1] == 's' && e[-3] == '.' && e[-2] >= '0' && e[-2] <= '9' &&
            e[-4] >= '0' && e[-4] <= '9' && e[-5] == ' ')
            e[-4] = '?', e[-2] = '?';
        l = e + 1;
    }
}

/* A queue as nodes leave it (README "Queues"): orders with 4 messages, group billing (a
 * node's consumer holding 2, one of a node gone holding none, a worker's having
 * acknowledged its one, ~ret holding 1 given back) and group audit reading nothing yet,
 * 2 dead letters; alpha with no group; gone indexed but its stream deleted. */
static void write_queue(fx_t *f)
{
    const char *q = "sockeye:{q:orders}:orders";
    char id[4][32];
    uint64_t now = f->now = redis_now(f);

    id_at(id[0], sizeof(id[0]), now - (2 * HOUR + 30 * MINUTE + HALF_MINUTE), 0);
    id_at(id[1], sizeof(id[1]), now - (1 * HOUR + 30 * MINUTE + HALF_MINUTE), 0);
    id_at(id[2], sizeof(id[2]), now - (1 * HOUR + 15 * MINUTE + HALF_MINUTE), 0);
    id_at(id[3], sizeof(id[3]), now - (45 * MINUTE + HALF_MINUTE), 0);
    memcpy(f->first, id[0], sizeof(id[0]));
    memcpy(f->last, id[3], sizeof(id[3]));
    memcpy(f->room, id[2], sizeof(id[2]));
    for (int i = 0; i < 4; i++)
        cmd(f, "XADD %s %s j {\"n\":%d}", q, id[i], i);
    cmd(f, "HSET sockeye:node:AbC123 id AbC123 address 127.0.0.1:3001");
    cmd(f, "XGROUP CREATE %s billing 0", q);
    cmd(f, "XGROUP CREATE %s audit 0", q);
    cmd(f, "XREADGROUP GROUP billing pid-a COUNT 2 STREAMS %s >", q);
    cmd(f, "XREADGROUP GROUP billing ~ret COUNT 1 STREAMS %s >", q);
    cmd(f, "XREADGROUP GROUP billing w1 COUNT 1 STREAMS %s >", q);
    cmd(f, "XACK %s billing %s", q, id[3]);
    cmd(f, "XGROUP CREATECONSUMER %s billing pid-b", q);
    cmd(f, "HSET %s:c %s AbC123 %s Gone99", q, "billing\npid-a", "billing\npid-b");
    cmd(f, "XADD %s.dead * j 1 from %s group billing deliveries 6", q, id[0]);
    cmd(f, "XADD %s.dead * j 2 from %s group billing deliveries 6", q, id[1]);
    cmd(f, "XADD sockeye:{q:alpha}:alpha %s j 0", id[0]);
    cmd(f, "ZADD sockeye:queues %" PRIu64 " orders %" PRIu64 " alpha %" PRIu64 " gone",
        now - (10 * MINUTE + HALF_MINUTE), now - (3 * HOUR + 30 * MINUTE + HALF_MINUTE),
        now - (26 * HOUR + 30 * MINUTE));
    cmd(f, "ZADD other:queues %" PRIu64 " elsewhere", now);
}

/* The queues of the index by name: length, groups, pending, the oldest unacknowledged
 * message's age, dead letters, last push. */
static void test_queues(void **state)
{
    fx_t *f = *state;

    RT_REQUIRE_REDIS();
    redis_start(f);
    f->now = redis_now(f);
    assert_int_equal(run(f, "sockeye", queues, NULL, NULL), APP_CTL_OK);
    expect(f, "no queues (nothing pushed yet)\n");
    write_queue(f);
    assert_int_equal(run(f, "sockeye", queues, NULL, NULL), APP_CTL_OK);
    expect(f, "QUEUE   LENGTH  GROUPS  PENDING  OLDEST PENDING  DEAD  LAST PUSH\n"
              "------  ------  ------  -------  --------------  ----  ---------\n"
              "alpha   1       0       0        -               0     3h30m\n"
              "gone    -       -       -        -               0     1d02h\n"
              "orders  4       2       3        2h30m           2     10m30s\n"
              "3 queue(s); OLDEST PENDING: age of the oldest message delivered and not "
              "acknowledged yet\n");
}

/* One queue: each group's line and consumers with their nodes, then the dead letters;
 * an unknown queue is NOTFOUND. */
static void test_queue(void **state)
{
    fx_t *f = *state;

    RT_REQUIRE_REDIS();
    redis_start(f);
    write_queue(f);
    assert_int_equal(run(f, "sockeye", queue, "orders", NULL), APP_CTL_OK);
    mask_idle(f);
    expect(f,
           "queue      orders\n"
           "key        sockeye:{q:orders}:orders\n"
           "length     4 (first %s, last %s)\n"
           "last push  10m30s ago\n"
           "groups     2\n"
           "\n"
           "group audit: 0 consumer(s), 0 pending, oldest pending -, last delivered 0-0, lag 4\n"
           "no consumers\n"
           "\n"
           "group billing: 4 consumer(s), 3 pending, oldest pending 2h30m, last delivered %s, "
           "lag 0\n"
           "CONSUMER  NODE           PENDING  IDLE\n"
           "--------  -------------  -------  ----\n"
           "pid-a     AbC123         2        ?.?s\n"
           "pid-b     Gone99 (gone)  0        ?.?s\n"
           "w1        (worker)       0        ?.?s\n"
           "~ret      (given back)   1        ?.?s\n"
           "\n"
           "dead       2 (queue orders.dead)\n",
           f->first, f->last, f->last);

    assert_int_equal(run(f, "sockeye", queue, "alpha", NULL), APP_CTL_OK);
    expect(f,
           "queue      alpha\n"
           "key        sockeye:{q:alpha}:alpha\n"
           "length     1 (first %s, last %s)\n"
           "last push  3h30m ago\n"
           "groups     0\n"
           "\n"
           "dead       0 (queue alpha.dead)\n",
           f->first, f->first);

    assert_int_equal(run(f, "sockeye", queue, "gone", NULL), APP_CTL_NOTFOUND);
    expect(f, "no queue gone (key sockeye:{q:gone}:gone): never pushed to, or deleted\n");
    assert_int_equal(run(f, "sockeye", queue, "nope", NULL), APP_CTL_NOTFOUND);
    expect(f, "no queue nope (key sockeye:{q:nope}:nope): never pushed to, or deleted\n");
    /* a dead-letter queue lives in its queue's slot */
    assert_int_equal(run(f, "sockeye", queue, "orders.dead", NULL), APP_CTL_OK);
    assert_non_null(strstr(f->out, "key        sockeye:{q:orders}:orders.dead\n"
                                   "length     2 ("));
}

/* The message's id, then nothing. */
static void expect_id(fx_t *f, char *id, size_t len)
{
    unsigned long long ms, seq;
    int n = 0;

    if (sscanf(f->out, "%llu-%llu\n%n", &ms, &seq, &n) != 2 || n == 0 || f->out[n] != '\0')
        fail_msg("printed: %s", f->out);
    snprintf(id, len, "%llu-%llu", ms, seq);
    assert_true(ms >= f->now && ms < f->now + HALF_MINUTE);
}

static redisReply *reply(fx_t *f, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(f->c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

/* push: loads the library on a Redis without it, stores the JSON compact as a node does
 * (field j), indexes the queue, wakes the queue's watchers, applies the bounds; bad input
 * is refused before anything is sent. */
static void test_push(void **state)
{
    fx_t *f = *state;
    char id[64], id2[64], big[202];
    redisReply *r;

    RT_REQUIRE_REDIS();
    redis_start(f);
    f->now = redis_now(f);
    r = reply(f, "FUNCTION LIST LIBRARYNAME sockeye");
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);

    assert_int_equal(run(f, "sockeye", push, "jobs", " { \"a\" : [1, 2], \"s\": \"\\u00e9\" } "),
                     APP_CTL_OK);
    expect_id(f, id, sizeof(id));
    r = reply(f, "XRANGE sockeye:{q:jobs}:jobs - +");
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->element[0]->str, id);
    assert_int_equal(r->element[0]->element[1]->elements, 2);
    assert_string_equal(r->element[0]->element[1]->element[0]->str, "j");
    assert_string_equal(r->element[0]->element[1]->element[1]->str,
                        "{\"a\":[1,2],\"s\":\"\xc3\xa9\"}");
    freeReplyObject(r);
    r = reply(f, "ZSCORE sockeye:queues jobs");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_true(strtoull(r->str, NULL, 10) >= f->now);
    freeReplyObject(r);
    r = reply(f, "FUNCTION LIST LIBRARYNAME sockeye");
    assert_int_equal(r->elements, 1);
    freeReplyObject(r);

    /* the library loaded now: the next push is one FCALL; any JSON value is a payload */
    assert_int_equal(run(f, "sockeye", push, "jobs", "null"), APP_CTL_OK);
    expect_id(f, id2, sizeof(id2));
    assert_string_not_equal(id, id2);
    /* the bounds: one message kept, the two before it dropped and said so (no group has
     * read them: a queue without groups counts what it drops as unread) */
    assert_int_equal(run(f, "sockeye", push1, "jobs", "3"), APP_CTL_OK);
    assert_non_null(strstr(f->out, "\n2 message(s) dropped by the bounds (max-length 1, "
                                   "max-age 0 ms), 2 of them not acknowledged by every group\n"));
    r = reply(f, "XLEN sockeye:{q:jobs}:jobs");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);

    /* bad input: EINVAL, a reason, nothing printed nor written */
    memset(big, 'q', 201);
    big[201] = '\0';
    static const char *const bad[][3] = {
        /* queue, JSON, the start of the reason */
        {"jobs", "{", "invalid JSON"},        {"jobs", "1 2", "invalid JSON"},
        {"jobs", "", "invalid JSON"},         {"jobs", "{\"a\":}", "invalid JSON"},
        {"jobs", "nope", "invalid JSON"},     {"", "1", "invalid queue name"},
        {"a\tb", "1", "invalid queue name"},  {"a\nb", "1", "invalid queue name"},
        {"x\x7f", "1", "invalid queue name"}, {NULL, "1", "invalid queue name"}, /* 201 bytes */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *out;
        app_ctl_t x;
        free(f->out);
        f->out = NULL;
        out = open_memstream(&f->out, &f->out_len);
        assert_non_null(out);
        app_ctl_init(&x, f->c, "sockeye", out);
        assert_int_equal(app_ctl_read_clock(&x), APP_CTL_OK);
        assert_int_equal(push(&x, bad[i][0] != NULL ? bad[i][0] : big, bad[i][1]),
                         APP_CTL_EINVAL);
        fclose(out);
        assert_string_equal(f->out, "");
        assert_memory_equal(x.err, bad[i][2], strlen(bad[i][2]));
    }
    {
        app_ctl_t x;
        app_ctl_init(&x, f->c, "sockeye", stdout);
        assert_int_equal(app_ctl_push(&x, "jobs", "1", 0, 0), APP_CTL_EINVAL);
    }
    r = reply(f, "XLEN sockeye:{q:jobs}:jobs");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = reply(f, "ZCARD sockeye:queues");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    /* the index under another prefix; a ".dead" queue shares its queue's slot */
    assert_int_equal(run(f, "other", push, "jobs.dead", "{}"), APP_CTL_OK);
    r = reply(f, "XLEN other:{q:jobs}:jobs.dead");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
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
    for (int i = 0; i < 7; i++) {
        static const run_fn fns[7] = {nodes, sessions, streams, session, queues, queue, push};
        FILE *out;
        free(f->out);
        f->out = NULL;
        out = open_memstream(&f->out, &f->out_len);
        assert_non_null(out);
        app_ctl_init(&x, f->c, "sockeye", out);
        assert_int_equal(fns[i](&x, i < 4 ? "/" : "jobs", i < 4 ? "pid-1" : "{}"),
                         APP_CTL_EREDIS);
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
        cmocka_unit_test_setup_teardown(test_queues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_glob_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
