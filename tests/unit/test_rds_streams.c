/* test_rds_streams.c -- adapter/redis/rds_streams.c and adapter/redis/sockeye.lua on a real redis-server.
 *
 * Each test starts its own redis-server on a free loopback port in a mktemp directory and
 * stops it by PID (the approach of test_rds_conn.c); without redis-server on PATH the tests
 * are skipped with a message. Every wait is a uv_run loop bounded by a deadline timer.
 * Fire-and-forget calls (session update/refresh/release) are awaited with a PING on the
 * same connection: one connection answers in order. Each test ends with every connection
 * closed and uv_loop_close() == 0.
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
#include "rds_channel.h"
#include "rds_conn.h"
#include "rds_streams.h"
#include "rds_wire.h"
#include "sockeye.h"

extern char **environ;

#define WINDOW 60000u
#define SLACK 10000u /* SLACK_MS of sockeye.lua */
#define DETECT 5000u /* the heartbeat detection the tests configure */
/* how long entries are kept for a window w (rds_streams.c, "Retention") */
#define RETAIN(w) ((w) + DETECT + 3u * SLACK)
#define MAX_PUB 256

/* ------------------------------------------------------------------ fixture */

typedef struct pubres {
    int calls, err;
    char offset[64];
} pubres_t;

typedef struct restres {
    int calls, err;
    adp_session_t *s;
    cd_sio_packet_t *p[512];
    size_t n;
} restres_t;

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t deadline;
    int expired;
    char dir[64], logfile[96];
    int port;
    pid_t pid;
    rds_conn_t *cmd, *sub;
    int cmd_up, sub_closed, cmd_closed;
    rds_streams_t *st;
    int loads, load_err;
    /* pub/sub observer */
    int subscribed, messages;
    unsigned char payload[4096];
    size_t payload_len;
    /* log observer */
    int warns;
} fx_t;

#include "redis_fixture.h"

static void redis_start(fx_t *f)
{
    rt_redis_spawn(&f->pid, f->port, f->dir, f->logfile, NULL, NULL, 1);
}

/* ------------------------------------------------------------------ replies as text */

/* Renders a reply compactly: strings as-is (bytes < 0x20 or > 0x7e as \xNN), integers as
 * digits, arrays as [a,b], nil as (nil), errors as !msg. */
static void render(const redisReply *r, char *out, size_t cap, size_t *pos)
{
#define PUT(...)                                                                                   \
    do {                                                                                           \
        if (*pos < cap)                                                                            \
            *pos += (size_t)snprintf(out + *pos, cap - *pos, __VA_ARGS__);                         \
    } while (0)
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        if (r->type == REDIS_REPLY_ERROR)
            PUT("!");
        for (size_t i = 0; i < r->len; i++) {
            unsigned char c = (unsigned char)r->str[i];
            if (c < 0x20 || c > 0x7e)
                PUT("\\x%02x", c);
            else
                PUT("%c", c);
        }
        break;
    case REDIS_REPLY_INTEGER:
        PUT("%lld", r->integer);
        break;
    case REDIS_REPLY_NIL:
        PUT("(nil)");
        break;
    case REDIS_REPLY_ARRAY:
        PUT("[");
        for (size_t i = 0; i < r->elements; i++) {
            if (i > 0)
                PUT(",");
            render(r->element[i], out, cap, pos);
        }
        PUT("]");
        break;
    default:
        PUT("?");
    }
    if (*pos >= cap)
        *pos = cap - 1;
#undef PUT
}

typedef struct res {
    int calls, err, type;
    long long integer;
    char text[16384];
} res_t;

static void on_reply(rds_conn_t *c, int err, redisReply *r, void *ud)
{
    res_t *x = ud;
    size_t pos = 0;

    x->calls++;
    x->err = err;
    x->text[0] = '\0';
    x->type = r != NULL ? r->type : 0;
    if (r != NULL) {
        render(r, x->text, sizeof(x->text), &pos);
        if (r->type == REDIS_REPLY_INTEGER)
            x->integer = r->integer;
    }
}

/* Sends a raw command on the fixture's command connection and waits for its reply. */
#define CMD(f, res, ...)                                                                           \
    do {                                                                                           \
        memset((res), 0, sizeof(*(res)));                                                          \
        assert_int_equal(rds_conn_command((f)->cmd, on_reply, (res), __VA_ARGS__), SIO_OK);        \
        RT_WAIT_FOR(f, (res)->calls == 1, 3000);                                                   \
        assert_int_equal((res)->err, SIO_OK);                                                      \
    } while (0)

/* Waits until everything sent before on the command connection was answered. */
static void sync_cmd(fx_t *f)
{
    res_t r;
    CMD(f, &r, "PING");
}

static long long redis_int(fx_t *f, const char *cmd, const char *key)
{
    res_t r;
    CMD(f, &r, "%s %s", cmd, key);
    assert_int_equal(r.type, REDIS_REPLY_INTEGER);
    return r.integer;
}

/* Redis' clock in ms. */
static uint64_t redis_now(fx_t *f)
{
    res_t r;
    unsigned long long sec, usec;

    CMD(f, &r, "TIME");
    assert_int_equal(sscanf(r.text, "[%llu,%llu]", &sec, &usec), 2);
    return sec * 1000u + usec / 1000u;
}

/* ------------------------------------------------------------------ connections */

static void on_log(void *ud, int level, const char *msg)
{
    fx_t *f = ud;
    if (getenv("RDS_TEST_VERBOSE") != NULL)
        print_message("log %d: %s\n", level, msg);
    if (level <= RDS_LOG_WARN)
        f->warns++;
}

static void on_up(rds_conn_t *c, const rds_up_info_t *info, void *ud)
{
    fx_t *f = ud;
    if (c == f->cmd)
        f->cmd_up++;
}

static void on_closed(void *ud)
{
    int *flag = ud;
    (*flag)++;
}

static rds_conn_t *conn_new(fx_t *f, int subscriber)
{
    rds_conn_config_t cfg;
    rds_conn_events_t ev;
    rds_url_t url;
    char text[64], err[128];
    rds_conn_t *c;

    snprintf(text, sizeof(text), "redis://127.0.0.1:%d", f->port);
    assert_int_equal(rds_url_parse(&url, text, err, sizeof(err)), SIO_OK);
    rds_conn_config_init(&cfg);
    cfg.url = &url;
    cfg.subscriber = subscriber;
    cfg.connect_timeout_ms = 1000;
    cfg.command_timeout_ms = 3000;
    cfg.backoff_min_ms = 50;
    cfg.backoff_max_ms = 200;
    memset(&ev, 0, sizeof(ev));
    ev.ud = f;
    ev.on_up = on_up;
    ev.on_log = on_log;
    c = rds_conn_new(&f->loop, &cfg, subscriber ? "sub" : "cmd", &ev);
    rds_url_free(&url);
    assert_non_null(c);
    assert_int_equal(rds_conn_start(c, NULL, NULL), SIO_OK);
    return c;
}

static void on_load(void *ud, int err)
{
    fx_t *f = ud;
    f->loads++;
    f->load_err = err;
}

static rds_streams_t *streams_new(fx_t *f, uint64_t window, size_t batch, size_t max_entries)
{
    rds_streams_config_t cfg;
    rds_streams_t *st;

    memset(&cfg, 0, sizeof(cfg));
    cfg.key_prefix = "sk";
    cfg.window_ms = window;
    cfg.detect_ms = DETECT;
    cfg.batch = batch;
    cfg.max_entries = max_entries;
    cfg.on_log = on_log;
    cfg.log_ud = f;
    st = rds_streams_new(f->cmd, &cfg);
    assert_non_null(st);
    return st;
}

/* redis-server + command connection + rds_streams with the library loaded. */
static void start(fx_t *f, uint64_t window, size_t batch, size_t max_entries)
{
    redis_start(f);
    f->cmd = conn_new(f, 0);
    RT_WAIT_FOR(f, f->cmd_up == 1, 5000);
    f->st = streams_new(f, window, batch, max_entries);
    assert_int_equal(rds_streams_load(f->st, on_load, f), SIO_OK);
    RT_WAIT_FOR(f, f->loads == 1, 3000);
    assert_int_equal(f->load_err, SIO_OK);
}

static void on_message(rds_conn_t *c, const rds_message_t *m, void *ud)
{
    fx_t *f = ud;

    if (m->kind == RDS_SUBSCRIBED) {
        f->subscribed++;
        return;
    }
    f->messages++;
    f->payload_len = m->payload_len < sizeof(f->payload) ? m->payload_len : sizeof(f->payload);
    memcpy(f->payload, m->payload, f->payload_len);
}

static void subscribe(fx_t *f, const char *channel)
{
    f->sub = conn_new(f, 1);
    assert_int_equal(rds_conn_subscribe(f->sub, channel, on_message, f), SIO_OK);
    RT_WAIT_FOR(f, f->subscribed == 1, 5000);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    rt_fixture_init(f, "streams");
    snprintf(f->logfile, sizeof(f->logfile), "%s/redis.log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int i, rc;

    rds_streams_free(f->st);
    if (f->cmd != NULL)
        rds_conn_close(f->cmd, NULL, NULL);
    if (f->sub != NULL)
        rds_conn_close(f->sub, NULL, NULL);
    rt_redis_kill(&f->pid);
    uv_close((uv_handle_t *)&f->deadline, NULL);
    for (i = 0; i < 100 && uv_loop_alive(&f->loop); i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    rc = uv_loop_close(&f->loop);
    rt_rm_dir(f->dir);
    free(f);
    assert_int_equal(rc, 0);
    return 0;
}

/* ------------------------------------------------------------------ publish helpers */

static void on_published(void *ud, int err, const char *offset)
{
    pubres_t *p = ud;
    p->calls++;
    p->err = err;
    snprintf(p->offset, sizeof(p->offset), "%s", offset != NULL ? offset : "");
}

/* msgpack [uid, {type 2, data [event, n], nsp}, {rooms, except, flags}]. */
static void encode(sio_bin_t *out, const char *nsp, const char *event, int n,
                   const char *const *rooms, size_t n_rooms, const char *const *except,
                   size_t n_except, int with_bin)
{
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, nsp);
    adp_opts_t o = {rooms, n_rooms, except, n_except, 0, NULL};

    p->data = cJSON_CreateArray();
    cJSON_AddItemToArray(p->data, cJSON_CreateString(event));
    cJSON_AddItemToArray(p->data, cJSON_CreateNumber(n));
    if (with_bin) {
        sio_bin_t b = {(unsigned char *)"\x01\x02\x03", 3};
        cJSON *ph = cJSON_CreateObject();
        cJSON_AddBoolToObject(ph, "_placeholder", 1);
        cJSON_AddNumberToObject(ph, "num", 0);
        cJSON_AddItemToArray(p->data, ph);
        cd_sio_packet_add_attachments(p, &b, 1);
    }
    assert_int_equal(rds_encode_broadcast("node1", p, &o, NULL, out), SIO_OK);
    cd_sio_packet_free(p);
}

/* Publishes event n (optionally with rooms/except) in nsp and waits for the offset. */
static void publish_ex(fx_t *f, const char *nsp, const char *event, int n, const char *const *rooms,
                       size_t n_rooms, const char *const *except, size_t n_except, pubres_t *res)
{
    sio_bin_t msg;
    char *chan = rds_channel(RDS_CHAN_BROADCAST, "socket.io", nsp, NULL);

    encode(&msg, nsp, event, n, rooms, n_rooms, except, n_except, 0);
    memset(res, 0, sizeof(*res));
    assert_int_equal(
        rds_streams_publish(f->st, nsp, rooms, n_rooms, chan, msg.data, msg.len, on_published, res),
        SIO_OK);
    base_free(msg.data);
    base_free(chan);
    RT_WAIT_FOR(f, res->calls == 1, 3000);
    assert_int_equal(res->err, SIO_OK);
}

static void publish(fx_t *f, const char *nsp, int n, const char *const *rooms, size_t n_rooms,
                    pubres_t *res)
{
    publish_ex(f, nsp, "ev", n, rooms, n_rooms, NULL, 0, res);
}

static void id_split(const char *id, unsigned long long *ms, unsigned long long *seq)
{
    assert_int_equal(sscanf(id, "%llu-%llu", ms, seq), 2);
}

/* a < b as stream ids */
static int id_less(const char *a, const char *b)
{
    unsigned long long am, as, bm, bs;
    id_split(a, &am, &as);
    id_split(b, &bm, &bs);
    return am < bm || (am == bm && as < bs);
}

/* ------------------------------------------------------------------ session helpers */

static adp_session_t *session(const char *sid, const char *pid, const char *const *rooms, size_t n,
                              const char *data_json)
{
    adp_session_t *s = base_calloc(1, sizeof(*s));
    s->sid = base_strdup(sid);
    s->pid = base_strdup(pid);
    s->rooms = n > 0 ? base_malloc(n * sizeof(*s->rooms)) : NULL;
    for (size_t i = 0; i < n; i++)
        s->rooms[i] = base_strdup(rooms[i]);
    s->n_rooms = n;
    s->data = data_json != NULL ? cJSON_Parse(data_json) : NULL;
    return s;
}

typedef struct opened {
    int calls, err;
} opened_t;

static void on_opened(void *ud, int err)
{
    opened_t *o = ud;
    o->calls++;
    o->err = err;
}

static void open_session(fx_t *f, const char *nsp, const adp_session_t *s, const char *owner)
{
    opened_t o = {0, 0};
    assert_int_equal(rds_session_open(f->st, nsp, s, owner, NULL, on_opened, &o), SIO_OK);
    RT_WAIT_FOR(f, o.calls == 1, 3000);
    assert_int_equal(o.err, SIO_OK);
}

static void on_restored(void *ud, int err, adp_session_t *s, cd_sio_packet_t **missed, size_t n)
{
    restres_t *r = ud;

    r->calls++;
    r->err = err;
    r->s = s;
    if (err != SIO_OK) {
        assert_null(s);
        assert_int_equal(n, 0);
    }
    assert_true(n <= 512);
    for (size_t i = 0; i < n; i++)
        r->p[i] = missed[i];
    r->n = n;
}

static void restres_free(restres_t *r)
{
    adp_session_free(r->s);
    for (size_t i = 0; i < r->n; i++)
        cd_sio_packet_free(r->p[i]);
    memset(r, 0, sizeof(*r));
}

/* Restores and waits; returns the callback's err. */
static int restore(fx_t *f, const char *nsp, const char *pid, const char *offset, const char *owner,
                   restres_t *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(rds_streams_restore(f->st, nsp, pid, offset, owner, on_restored, r), SIO_OK);
    RT_WAIT_FOR(f, r->calls == 1, 5000);
    return r->err;
}

/* Checks packet i is event "ev" with number n and the given offset last. */
static void expect_packet(const restres_t *r, size_t i, int n, const char *offset)
{
    const cd_sio_packet_t *p = r->p[i];
    int size;

    assert_non_null(p);
    assert_int_equal(p->type, CD_SIO_EVENT);
    assert_true(cJSON_IsArray(p->data));
    size = cJSON_GetArraySize(p->data);
    assert_int_equal(size, 3);
    assert_string_equal(cJSON_GetArrayItem(p->data, 0)->valuestring, "ev");
    assert_int_equal(cJSON_GetArrayItem(p->data, 1)->valueint, n);
    assert_string_equal(cJSON_GetArrayItem(p->data, 2)->valuestring, offset);
}

/* ------------------------------------------------------------------ tests: publish */

static void test_publish_ids_streams_pubsub(void **state)
{
    fx_t *f = *state;
    const char *a[] = {"a"}, *ab[] = {"a", "b"};
    pubres_t p1, p2, p3, q1;
    rds_broadcast_t b;
    res_t r;
    char expect[256];
    long long ttl;

    RT_REQUIRE_REDIS();
    start(f, WINDOW, 0, 0);
    subscribe(f, "socket.io#/#");

    publish(f, "/", 1, NULL, 0, &p1);
    RT_WAIT_FOR(f, f->messages == 1, 3000);
    /* the PUBLISH payload: [uid, packet, opts, offset] (first byte 0x94) */
    assert_int_equal(f->payload[0], 0x94);
    assert_int_equal(rds_decode_broadcast(f->payload, f->payload_len, &b), SIO_OK);
    assert_non_null(b.offset);
    assert_string_equal(b.offset, p1.offset);
    assert_string_equal(b.uid, "node1");
    assert_int_equal(cJSON_GetArraySize(b.packet->data), 2); /* offset not in data */
    rds_broadcast_free(&b);

    publish(f, "/", 2, a, 1, &p2);
    publish(f, "/", 3, ab, 2, &p3);
    RT_WAIT_FOR(f, f->messages == 3, 3000);
    assert_true(id_less(p1.offset, p2.offset));
    assert_true(id_less(p2.offset, p3.offset));
    assert_int_equal(rds_decode_broadcast(f->payload, f->payload_len, &b), SIO_OK);
    assert_string_equal(b.offset, p3.offset);
    assert_int_equal(b.opts.n_rooms, 2);
    rds_broadcast_free(&b);

    /* entries in the right streams, under the offsets given out */
    assert_int_equal(redis_int(f, "XLEN", "sk:{/}:all"), 1);
    assert_int_equal(redis_int(f, "XLEN", "sk:{/}:r:a"), 2);
    assert_int_equal(redis_int(f, "XLEN", "sk:{/}:r:b"), 1);
    CMD(f, &r, "XRANGE sk:{/}:r:a - +");
    assert_non_null(strstr(r.text, p2.offset));
    assert_non_null(strstr(r.text, p3.offset));
    assert_null(strstr(r.text, p1.offset));
    CMD(f, &r, "XRANGE sk:{/}:r:b - +");
    snprintf(expect, sizeof(expect), "[[%s,[m,\\x93", p3.offset);
    assert_memory_equal(r.text, expect, strlen(expect)); /* field m, the 3-element message */
    CMD(f, &r, "GET sk:{/}:last");
    assert_string_equal(r.text, p3.offset);

    /* expiries: streams the retention, last twice that */
    ttl = redis_int(f, "PTTL", "sk:{/}:r:a");
    assert_true(ttl > (long long)RETAIN(WINDOW) - 5000 && ttl <= (long long)RETAIN(WINDOW));
    ttl = redis_int(f, "PTTL", "sk:{/}:last");
    assert_true(ttl > (long long)(2 * RETAIN(WINDOW)) - 5000);

    /* another namespace has its own counter and keys */
    publish(f, "/chat", 1, a, 1, &q1);
    assert_int_equal(redis_int(f, "XLEN", "sk:{/chat}:r:a"), 1);
    CMD(f, &r, "GET sk:{/chat}:last");
    assert_string_equal(r.text, q1.offset);
    assert_int_equal(redis_int(f, "XLEN", "sk:{/}:r:a"), 2);
}

/* Many publishes in flight at once (same millisecond): ids strictly increase in reply
 * order, which is the order Redis ran them, across streams of one namespace. */
static void test_publish_pipelined_same_ms(void **state)
{
    fx_t *f = *state;
    static pubres_t res[MAX_PUB];
    const char *rooms[3][1] = {{"x"}, {"y"}, {"z"}};
    char *chan = rds_channel(RDS_CHAN_BROADCAST, "socket.io", "/", NULL);
    int order[MAX_PUB], n_done = 0, i, same_ms = 0;
    sio_bin_t msg;
    rds_streams_stats_t stt;

    RT_REQUIRE_REDIS();
    start(f, WINDOW, 0, 0);
    memset(res, 0, sizeof(res));
    for (i = 0; i < MAX_PUB; i++) {
        encode(&msg, "/", "ev", i, rooms[i % 3], i % 4 == 3 ? 0 : 1, NULL, 0, 0);
        assert_int_equal(rds_streams_publish(f->st, "/", rooms[i % 3], i % 4 == 3 ? 0 : 1, chan,
                                             msg.data, msg.len, on_published, &res[i]),
                         SIO_OK);
        base_free(msg.data);
    }
    base_free(chan);
    for (i = 0; i < MAX_PUB; i++) {
        RT_WAIT_FOR(f, res[i].calls == 1, 5000);
        assert_int_equal(res[i].err, SIO_OK);
        order[n_done++] = i;
    }
    for (i = 1; i < MAX_PUB; i++) {
        unsigned long long am, as, bm, bs;
        assert_true(id_less(res[order[i - 1]].offset, res[order[i]].offset));
        id_split(res[order[i - 1]].offset, &am, &as);
        id_split(res[order[i]].offset, &bm, &bs);
        same_ms += am == bm;
    }
    assert_true(same_ms > 0); /* the seq + 1 branch ran */
    rds_streams_get_stats(f->st, &stt);
    assert_int_equal(stt.published, MAX_PUB);
    assert_int_equal(stt.publish_failed, 0);
}

static void test_publish_refused(void **state)
{
    fx_t *f = *state;
    pubres_t p;
    res_t r;
    sio_bin_t msg;
    const char *bad = "\x92\xa1x\xa1y";

    RT_REQUIRE_REDIS();
    start(f, WINDOW, 0, 0);
    memset(&p, 0, sizeof(p));
    /* not a 3-element array: refused at the call, callback never runs */
    assert_int_equal(rds_streams_publish(f->st, "/", NULL, 0, "ch", bad, 5, on_published, &p),
                     SIO_EINVAL);
    assert_int_equal(rds_streams_publish(f->st, "/", NULL, 0, "ch", NULL, 5, on_published, &p),
                     SIO_EINVAL);
    /* the function itself fails loudly on such a message, writing nothing */
    CMD(f, &r, "FCALL sockeye_publish 2 sk:{/}:last sk:{/}:all 1000 ch %b", bad, (size_t)5);
    assert_int_equal(r.type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r.text, "0x93"));
    assert_int_equal(redis_int(f, "EXISTS", "sk:{/}:all"), 0);
    assert_int_equal(redis_int(f, "EXISTS", "sk:{/}:last"), 0);

    /* library missing (Redis restarted without it): the callback gets SIO_EREDIS */
    CMD(f, &r, "FUNCTION DELETE sockeye");
    encode(&msg, "/", "ev", 1, NULL, 0, NULL, 0, 0);
    assert_int_equal(
        rds_streams_publish(f->st, "/", NULL, 0, "ch", msg.data, msg.len, on_published, &p),
        SIO_OK);
    RT_WAIT_FOR(f, p.calls == 1, 3000);
    assert_int_equal(p.err, SIO_EREDIS);
    assert_true(f->warns >= 1);
    /* reloading fixes it */
    assert_int_equal(rds_streams_load(f->st, on_load, f), SIO_OK);
    memset(&p, 0, sizeof(p));
    assert_int_equal(
        rds_streams_publish(f->st, "/", NULL, 0, "ch", msg.data, msg.len, on_published, &p),
        SIO_OK);
    RT_WAIT_FOR(f, p.calls == 1, 3000);
    assert_int_equal(p.err, SIO_OK);
    assert_int_equal(f->loads, 2);
    base_free(msg.data);
}

/* Trimming by MINID: entries older than the retention go at the next publish to their
 * stream, newer ones stay; ids stay above a stream's top even when P:{N}:last is gone. */
static void test_trim_and_lost_last(void **state)
{
    fx_t *f = *state;
    const char *t[] = {"t"};
    pubres_t p;
    res_t r;
    uint64_t now;
    unsigned long long ms, seq;

    RT_REQUIRE_REDIS();
    start(f, 2000, 0, 0);
    /* one entry per radix node, so approximate trimming is exact here */
    CMD(f, &r, "CONFIG SET stream-node-max-entries 1");
    now = redis_now(f);
    CMD(f, &r, "XADD sk:{/}:r:t 1000-0 m old1");
    CMD(f, &r, "XADD sk:{/}:r:t %llu-0 m old2", (unsigned long long)(now - RETAIN(2000) - 3000));
    CMD(f, &r, "XADD sk:{/}:r:t %llu-0 m keep", (unsigned long long)(now - RETAIN(2000) + 3000));
    publish(f, "/", 1, t, 1, &p);
    CMD(f, &r, "XRANGE sk:{/}:r:t - +");
    assert_null(strstr(r.text, "old1"));
    assert_null(strstr(r.text, "old2"));
    assert_non_null(strstr(r.text, "keep"));
    assert_int_equal(redis_int(f, "XLEN", "sk:{/}:r:t"), 2);

    /* last lost while a stream holds an id above the clock: the next id goes above it */
    CMD(f, &r, "DEL sk:{/}:last");
    CMD(f, &r, "XADD sk:{/}:r:t %llu-5 m future", (unsigned long long)(now + 100000));
    publish(f, "/", 2, t, 1, &p);
    id_split(p.offset, &ms, &seq);
    assert_int_equal(ms, now + 100000);
    assert_int_equal(seq, 6);
}

/* ------------------------------------------------------------------ tests: sessions */

static void test_sessions(void **state)
{
    fx_t *f = *state;
    const char *rooms[] = {"SID1", "a"};
    const rds_refresh_t pids[] = {{"P1", 1, 0}, {"P2", 0, 0}, {"nope", 1, 5}};
    adp_session_t *s = session("SID1", "P1", rooms, 2, "{\"k\":1}"), *s2;
    rds_streams_stats_t stt;
    pubres_t p;
    res_t r;
    long long ttl;

    RT_REQUIRE_REDIS();
    start(f, WINDOW, 0, 0);

    /* no last offset yet: open creates one from the clock, so later ids are greater */
    open_session(f, "/", s, "nodeA#1");
    CMD(f, &r, "HMGET sk:{/}:sess:P1 sid pid rooms data owner");
    assert_string_equal(r.text, "[SID1,P1,[\"SID1\",\"a\"],{\"k\":1},nodeA#1]");
    CMD(f, &r, "HGET sk:{/}:sess:P1 offset");
    {
        char off[64];
        snprintf(off, sizeof(off), "%.63s", r.text);
        CMD(f, &r, "GET sk:{/}:last");
        assert_string_equal(r.text, off);
        publish(f, "/", 1, NULL, 0, &p);
        assert_true(id_less(off, p.offset));
    }
    ttl = redis_int(f, "PTTL", "sk:{/}:sess:P1");
    assert_true(ttl > (long long)(WINDOW + SLACK) - 5000 && ttl <= (long long)(WINDOW + SLACK));

    /* open after a publish: offset = that publish's offset; rooms get the own id */
    s2 = session("SID2", "P2", NULL, 0, NULL);
    open_session(f, "/", s2, "nodeA#2");
    CMD(f, &r, "HMGET sk:{/}:sess:P2 offset rooms data");
    {
        char expect[128];
        snprintf(expect, sizeof(expect), "[%s,[\"SID2\"],null]", p.offset);
        assert_string_equal(r.text, expect);
    }

    /* update by the owner rewrites; by another connection it is a no-op */
    base_free(s->rooms[1]);
    s->rooms[1] = base_strdup("b");
    assert_int_equal(rds_session_update(f->st, "/", s, "nodeA#1", NULL), SIO_OK);
    sync_cmd(f);
    CMD(f, &r, "HGET sk:{/}:sess:P1 rooms");
    assert_string_equal(r.text, "[\"SID1\",\"b\"]");
    /* "?" with no stored mark: the session's start (a low mark replays a little, a high
     * one could skip) */
    assert_int_equal(rds_session_update(f->st, "/", s, "nodeA#1", "{\"b\":\"?\"}"), SIO_OK);
    sync_cmd(f);
    {
        char expect[96], start[64];
        CMD(f, &r, "HGET sk:{/}:sess:P1 offset");
        snprintf(start, sizeof(start), "%.63s", r.text);
        assert_true(id_less(start, p.offset)); /* a publish came after the start */
        CMD(f, &r, "HGET sk:{/}:sess:P1 joined");
        snprintf(expect, sizeof(expect), "{\"b\":\"%s\"}", start);
        assert_string_equal(r.text, expect);
    }
    base_free(s->rooms[1]);
    s->rooms[1] = base_strdup("stale");
    assert_int_equal(rds_session_update(f->st, "/", s, "nodeB#9", NULL), SIO_OK);
    sync_cmd(f);
    CMD(f, &r, "HGET sk:{/}:sess:P1 rooms");
    assert_string_equal(r.text, "[\"SID1\",\"b\"]");

    /* refresh extends the TTL of existing sessions only, and raises a known read time
     * (never an unknown one, never backwards) */
    CMD(f, &r, "PEXPIRE sk:{/}:sess:P1 1000");
    CMD(f, &r, "PEXPIRE sk:{/}:sess:P2 1000");
    CMD(f, &r, "HSET sk:{/}:sess:P1 read 1");
    CMD(f, &r, "HSET sk:{/}:sess:P2 read 1");
    assert_int_equal(rds_session_refresh(f->st, "/", pids, 3), SIO_OK);
    sync_cmd(f);
    assert_true(redis_int(f, "PTTL", "sk:{/}:sess:P1") > (long long)WINDOW);
    assert_true(redis_int(f, "PTTL", "sk:{/}:sess:P2") > (long long)WINDOW);
    assert_int_equal(redis_int(f, "EXISTS", "sk:{/}:sess:nope"), 0);
    CMD(f, &r, "HGET sk:{/}:sess:P1 read");
    assert_true(strtoull(r.text, NULL, 10) + 5000 > redis_now(f));
    CMD(f, &r, "HGET sk:{/}:sess:P2 read");
    assert_string_equal(r.text, "1");
    assert_int_equal(rds_session_refresh(f->st, "/", pids, 0), SIO_OK);

    /* release: a stale owner cannot; recoverable -> TTL window; else deleted */
    assert_int_equal(rds_session_release(f->st, "/", "P1", "nodeB#9", 0), SIO_OK);
    sync_cmd(f);
    assert_int_equal(redis_int(f, "EXISTS", "sk:{/}:sess:P1"), 1);
    assert_int_equal(rds_session_release(f->st, "/", "P1", "nodeA#1", 1), SIO_OK);
    sync_cmd(f);
    ttl = redis_int(f, "PTTL", "sk:{/}:sess:P1");
    assert_true(ttl > (long long)WINDOW - 5000 && ttl <= (long long)WINDOW);
    assert_int_equal(rds_session_release(f->st, "/", "P2", "nodeA#2", 0), SIO_OK);
    sync_cmd(f);
    assert_int_equal(redis_int(f, "EXISTS", "sk:{/}:sess:P2"), 0);

    /* bad arguments */
    assert_int_equal(rds_session_open(f->st, "/", NULL, "o", NULL, on_opened, NULL), SIO_EINVAL);
    assert_int_equal(rds_session_update(f->st, "/", s, NULL, NULL), SIO_EINVAL);
    assert_int_equal(rds_session_release(f->st, NULL, "P", "o", 1), SIO_EINVAL);

    rds_streams_get_stats(f->st, &stt);
    assert_int_equal(stt.sessions_written, 4); /* two opens, two updates */
    assert_int_equal(stt.session_write_failed, 0);
    adp_session_free(s);
    adp_session_free(s2);
}

/* ------------------------------------------------------------------ tests: restore */

static void test_restore_exact_missed(void **state)
{
    fx_t *f = *state;
    const char *rooms[] = {"SID1", "a", "b"};
    const char *a[] = {"a"}, *b[] = {"b"}, *ab[] = {"a", "b"}, *c[] = {"c"}, *sid[] = {"SID1"};
    const char *exb[] = {"b"}, *exx[] = {"x"};
    adp_session_t *s = session("SID1", "P1", rooms, 3, "{\"user\":\"ann\"}");
    pubres_t e0, e1, e2, e3, e4, e5, e6, e7, e8, e9;
    rds_streams_stats_t stt;
    restres_t r;
    res_t x;

    RT_REQUIRE_REDIS();
    start(f, WINDOW, 0, 0);
    publish(f, "/", 0, a, 1, &e0); /* before the session: never replayed */
    open_session(f, "/", s, "A#1");
    publish(f, "/", 1, a, 1, &e1);
    publish(f, "/", 2, b, 1, &e2);
    publish(f, "/", 3, ab, 2, &e3);                  /* in two of its streams: once */
    publish(f, "/", 4, c, 1, &e4);                   /* not its room */
    publish(f, "/", 5, NULL, 0, &e5);                /* namespace-wide */
    publish_ex(f, "/", "ev", 6, a, 1, exb, 1, &e6);  /* except one of its rooms */
    publish_ex(f, "/", "ev", 7, ab, 2, exx, 1, &e7); /* except another room: kept */
    publish(f, "/", 8, sid, 1, &e8);                 /* direct emit */
    publish(f, "/other", 9, a, 1, &e9);              /* another namespace */
    assert_int_equal(rds_session_release(f->st, "/", "P1", "A#1", 1), SIO_OK);

    /* offset NULL: the client received nothing, the session's offset is used */
    assert_int_equal(restore(f, "/", "P1", NULL, "B#1", &r), SIO_OK);
    assert_int_equal(r.n, 6);
    expect_packet(&r, 0, 1, e1.offset);
    expect_packet(&r, 1, 2, e2.offset);
    expect_packet(&r, 2, 3, e3.offset);
    expect_packet(&r, 3, 5, e5.offset);
    expect_packet(&r, 4, 7, e7.offset);
    expect_packet(&r, 5, 8, e8.offset);
    assert_string_equal(r.p[0]->nsp, "/");
    assert_string_equal(r.s->sid, "SID1");
    assert_string_equal(r.s->pid, "P1");
    assert_int_equal(r.s->n_rooms, 3);
    assert_string_equal(r.s->rooms[2], "b");
    assert_string_equal(cJSON_GetObjectItem(r.s->data, "user")->valuestring, "ann");
    restres_free(&r);
    CMD(f, &x, "HGET sk:{/}:sess:P1 owner");
    assert_string_equal(x.text, "B#1");
    /* taken: the TTL is the connected one again */
    assert_true(redis_int(f, "PTTL", "sk:{/}:sess:P1") > (long long)WINDOW);

    /* from the client's offset (exclusive); a second restore by a new owner */
    assert_int_equal(restore(f, "/", "P1", e2.offset, "C#1", &r), SIO_OK);
    assert_int_equal(r.n, 4);
    expect_packet(&r, 0, 3, e3.offset);
    expect_packet(&r, 3, 8, e8.offset);
    restres_free(&r);
    /* the previous owners' late releases are no-ops */
    assert_int_equal(rds_session_release(f->st, "/", "P1", "B#1", 0), SIO_OK);
    assert_int_equal(rds_session_release(f->st, "/", "P1", "A#1", 0), SIO_OK);
    sync_cmd(f);
    assert_int_equal(redis_int(f, "EXISTS", "sk:{/}:sess:P1"), 1);

    /* the newest offset: nothing missed */
    assert_int_equal(restore(f, "/", "P1", e8.offset, "D#1", &r), SIO_OK);
    assert_int_equal(r.n, 0);
    assert_non_null(r.s);
    restres_free(&r);

    rds_streams_get_stats(f->st, &stt);
    assert_int_equal(stt.restores_ok, 3);
    assert_int_equal(stt.restores_failed, 0);
    assert_int_equal(stt.entries_replayed, 10);
    adp_session_free(s);
}

static void test_restore_binary(void **state)
{
    fx_t *f = *state;
    const char *rooms[] = {"S"};
    adp_session_t *s = session("S", "P", rooms, 1, NULL);
    char *chan = rds_channel(RDS_CHAN_BROADCAST, "socket.io", "/", NULL);
    sio_bin_t msg;
    pubres_t p;
    restres_t r;

    RT_REQUIRE_REDIS();
    start(f, WINDOW, 0, 0);
    open_session(f, "/", s, "A");
    encode(&msg, "/", "bin", 1, NULL, 0, NULL, 0, 1);
    memset(&p, 0, sizeof(p));
    assert_int_equal(
        rds_streams_publish(f->st, "/", NULL, 0, chan, msg.data, msg.len, on_published, &p),
        SIO_OK);
    RT_WAIT_FOR(f, p.calls == 1, 3000);
    base_free(msg.data);
    base_free(chan);
    assert_int_equal(restore(f, "/", "P", NULL, "B", &r), SIO_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.p[0]->n_attach, 1);
    assert_memory_equal(r.p[0]->attach[0].data, "\x01\x02\x03", 3);
    assert_null(r.s->data);
    assert_string_equal(
        cJSON_GetArrayItem(r.p[0]->data, cJSON_GetArraySize(r.p[0]->data) - 1)->valuestring,
        p.offset);
    restres_free(&r);
    adp_session_free(s);
}

static void test_restore_refusals(void **state)
{
    fx_t *f = *state;
    const char *rooms[] = {"S"};
    adp_session_t *s = session("S", "P", rooms, 1, NULL);
    rds_streams_t *small;
    char future[48];
    restres_t r;
    pubres_t p;
    res_t x;

    RT_REQUIRE_REDIS();
    start(f, WINDOW, 0, 0);
    /* no session */
    assert_int_equal(restore(f, "/", "nope", NULL, "B", &r), SIO_ENOTFOUND);
    /* malformed offsets: refused at the call, nothing taken, no callback */
    open_session(f, "/", s, "A");
    memset(&r, 0, sizeof(r));
    assert_int_equal(rds_streams_restore(f->st, "/", "P", "abc", "B", on_restored, &r),
                     SIO_ENOTFOUND);
    assert_int_equal(rds_streams_restore(f->st, "/", "P", "1-", "B", on_restored, &r),
                     SIO_ENOTFOUND);
    assert_int_equal(rds_streams_restore(f->st, "/", "P", "-1", "B", on_restored, &r),
                     SIO_ENOTFOUND);
    assert_int_equal(
        rds_streams_restore(f->st, "/", "P", "99999999999999999999999-0", "B", on_restored, &r),
        SIO_ENOTFOUND);
    assert_int_equal(rds_streams_restore(f->st, "/", NULL, "1-0", "B", on_restored, &r),
                     SIO_EINVAL);
    rt_run_for(f, 20);
    assert_int_equal(r.calls, 0);
    CMD(f, &x, "HGET sk:{/}:sess:P owner");
    assert_string_equal(x.text, "A");
    /* an offset the namespace never gave out (above its last one) */
    snprintf(future, sizeof(future), "%llu-0", (unsigned long long)(redis_now(f) + 100000));
    assert_int_equal(restore(f, "/", "P", future, "B", &r), SIO_ENOTFOUND);
    CMD(f, &x, "HGET sk:{/}:sess:P owner");
    assert_string_equal(x.text, "A"); /* a refused take changes nothing */
    /* an offset from before the session began: raised to its start, nothing of before */
    publish(f, "/", 1, rooms, 1, &p);
    assert_int_equal(restore(f, "/", "P", "1-0", "B", &r), SIO_OK);
    assert_int_equal(r.n, 1);
    expect_packet(&r, 0, 1, p.offset);
    restres_free(&r);
    /* a malformed stored session */
    CMD(f, &x, "HSET sk:{/}:sess:P rooms notjson");
    assert_int_equal(restore(f, "/", "P", NULL, "B", &r), SIO_ENOTFOUND);

    /* a small window: the session expires a window after its release */
    small = streams_new(f, 300, 0, 0);
    rds_streams_free(f->st);
    f->st = small;
    open_session(f, "/", s, "A");
    publish(f, "/", 1, rooms, 1, &p);
    assert_int_equal(restore(f, "/", "P", NULL, "B", &r), SIO_OK); /* fresh: fine */
    restres_free(&r);
    assert_int_equal(rds_session_release(f->st, "/", "P", "B", 1), SIO_OK);
    rt_run_for(f, 450);
    assert_int_equal(redis_int(f, "EXISTS", "sk:{/}:sess:P"), 0);
    assert_int_equal(restore(f, "/", "P", NULL, "C", &r), SIO_ENOTFOUND);
    adp_session_free(s);
}

/* The window is the session's, whatever the offset's age: a client whose rooms were quiet
 * for longer than the window recovers, and gets what came after its offset. A room joined
 * later replays only what came after its join mark; the session starts at its open mark. */
static void test_restore_quiet_rooms_and_marks(void **state)
{
    fx_t *f = *state;
    const char *rooms[] = {"S", "q"}, *q[] = {"q"}, *j[] = {"j"}, *later[] = {"S", "q", "j"};
    adp_session_t *s = session("S", "P", rooms, 2, NULL), *s2;
    pubres_t p0, p1, p2, pj1, pj2, pj3, ps;
    restres_t r;
    res_t x;
    char json[128];

    RT_REQUIRE_REDIS();
    start(f, 300, 0, 0);
    /* open mark: the node had delivered up to before p0 when the socket connected */
    publish(f, "/", 0, q, 1, &p0);
    {
        char before[48];
        unsigned long long ms, seq;
        opened_t o = {0, 0};
        id_split(p0.offset, &ms, &seq);
        snprintf(before, sizeof(before), "%llu-0", ms > 0 ? ms - 1 : 0);
        assert_int_equal(rds_session_open(f->st, "/", s, "A", before, on_opened, &o), SIO_OK);
        RT_WAIT_FOR(f, o.calls == 1, 3000);
        assert_int_equal(o.err, SIO_OK);
    }
    publish(f, "/", 1, q, 1, &p1);
    /* quiet for twice the window, connected (a refresh keeps the session) */
    rt_run_for(f, 600);
    assert_int_equal(rds_session_refresh(f->st, "/", (const rds_refresh_t[]){{"P", 1, 0}}, 1),
                     SIO_OK);
    publish(f, "/", 2, q, 1, &p2);
    assert_int_equal(restore(f, "/", "P", p1.offset, "B", &r), SIO_OK);
    assert_int_equal(r.n, 1);
    expect_packet(&r, 0, 2, p2.offset);
    restres_free(&r);
    /* no offset from the client: from the open mark, p0 included */
    assert_int_equal(restore(f, "/", "P", NULL, "C", &r), SIO_OK);
    assert_int_equal(r.n, 3);
    expect_packet(&r, 0, 0, p0.offset);
    restres_free(&r);

    /* room j: pj1 before the join (the node had seen it: its join mark), pj2 after */
    publish(f, "/", 10, j, 1, &pj1);
    s2 = session("S", "P", later, 3, NULL);
    snprintf(json, sizeof(json), "{\"j\":\"%s\"}", pj1.offset);
    assert_int_equal(rds_session_update(f->st, "/", s2, "C", json), SIO_OK);
    publish(f, "/", 11, j, 1, &pj2);
    /* "?" (a join before the node saw any offset) keeps a stored mark */
    publish(f, "/", 12, j, 1, &pj3);
    assert_int_equal(rds_session_update(f->st, "/", s2, "C", "{\"j\":\"?\"}"), SIO_OK);
    publish(f, "/", 13, rooms, 1, &ps);
    assert_int_equal(restore(f, "/", "P", p2.offset, "D", &r), SIO_OK);
    assert_int_equal(r.n, 3);
    expect_packet(&r, 0, 11, pj2.offset);
    expect_packet(&r, 1, 12, pj3.offset);
    expect_packet(&r, 2, 13, ps.offset);
    restres_free(&r);
    /* the client unheard of for longer than entries are kept (read older than retain -
     * 2 slacks): refused, and neither the take nor a hand-back (release) extends it; a read
     * reported by the owner's refresh makes it recoverable again */
    {
        char old[32];
        snprintf(old, sizeof(old), "%llu", (unsigned long long)(redis_now(f) - RETAIN(300)));
        CMD(f, &x, "HSET sk:{/}:sess:P read %s", old);
        assert_int_equal(restore(f, "/", "P", p2.offset, "D", &r), SIO_ENOTFOUND);
        assert_int_equal(rds_session_release(f->st, "/", "P", "D", 1), SIO_OK);
        assert_int_equal(restore(f, "/", "P", p2.offset, "D", &r), SIO_ENOTFOUND);
        assert_int_equal(rds_session_refresh(f->st, "/", (const rds_refresh_t[]){{"P", 1, 100}}, 1),
                         SIO_OK);
        sync_cmd(f);
        assert_int_equal(restore(f, "/", "P", p2.offset, "D", &r), SIO_OK);
        restres_free(&r);
    }
    /* left and joined again: the new mark */
    assert_int_equal(rds_session_update(f->st, "/", s, "D", "{}"), SIO_OK);
    snprintf(json, sizeof(json), "{\"j\":\"%s\"}", pj2.offset);
    assert_int_equal(rds_session_update(f->st, "/", s2, "D", json), SIO_OK);
    assert_int_equal(restore(f, "/", "P", p2.offset, "E", &r), SIO_OK);
    assert_int_equal(r.n, 2);
    expect_packet(&r, 0, 12, pj3.offset);
    expect_packet(&r, 1, 13, ps.offset);
    restres_free(&r);
    adp_session_free(s);
    adp_session_free(s2);
}

/* An except room excludes only what was published after the session joined it. */
static void test_restore_except_marks(void **state)
{
    fx_t *f = *state;
    const char *rooms[] = {"S"}, *with_x[] = {"S", "x"}, *ex[] = {"x"};
    adp_session_t *s = session("S", "P", rooms, 1, NULL), *s2 = session("S", "P", with_x, 2, NULL);
    pubres_t e1, e2;
    restres_t r;

    RT_REQUIRE_REDIS();
    start(f, WINDOW, 0, 0);
    open_session(f, "/", s, "A");
    publish_ex(f, "/", "ev", 1, NULL, 0, ex, 1, &e1); /* S not in x yet: for it */
    {
        char json[128];
        snprintf(json, sizeof(json), "{\"x\":\"%s\"}", e1.offset);
        assert_int_equal(rds_session_update(f->st, "/", s2, "A", json), SIO_OK);
    }
    publish_ex(f, "/", "ev", 2, NULL, 0, ex, 1, &e2); /* S in x now: not for it */
    assert_int_equal(restore(f, "/", "P", NULL, "B", &r), SIO_OK);
    assert_int_equal(r.n, 1);
    expect_packet(&r, 0, 1, e1.offset);
    restres_free(&r);
    adp_session_free(s);
    adp_session_free(s2);
}

/* Batches (COUNT 3 here), many rooms (more than the cursors kept in flight), and the cap. */
static void test_restore_batches_rooms_cap(void **state)
{
    fx_t *f = *state;
    char names[60][8];
    const char *rooms[61];
    pubres_t p[120];
    adp_session_t *s;
    restres_t r;
    int i;

    RT_REQUIRE_REDIS();
    start(f, WINDOW, 3, 0);
    rooms[0] = "S";
    for (i = 0; i < 60; i++) {
        snprintf(names[i], sizeof(names[i]), "r%d", i);
        rooms[i + 1] = names[i];
    }
    s = session("S", "P", rooms, 61, NULL);
    open_session(f, "/", s, "A");
    for (i = 0; i < 120; i++) {
        const char *one[1] = {rooms[1 + i % 60]};
        const char *two[2] = {rooms[1 + i % 60], rooms[1 + (i + 7) % 60]};
        if (i % 5 == 0)
            publish(f, "/", i, NULL, 0, &p[i]);
        else if (i % 5 == 1)
            publish(f, "/", i, two, 2, &p[i]);
        else
            publish(f, "/", i, one, 1, &p[i]);
    }
    assert_int_equal(restore(f, "/", "P", NULL, "B", &r), SIO_OK);
    assert_int_equal(r.n, 120);
    for (i = 0; i < 120; i++)
        expect_packet(&r, (size_t)i, i, p[i].offset);
    restres_free(&r);
    assert_int_equal(restore(f, "/", "P", p[99].offset, "C", &r), SIO_OK);
    assert_int_equal(r.n, 20);
    expect_packet(&r, 0, 100, p[100].offset);
    restres_free(&r);

    /* over the cap: SIO_ETOOBIG, nothing handed out */
    rds_streams_free(f->st);
    f->st = streams_new(f, WINDOW, 3, 50);
    assert_int_equal(restore(f, "/", "P", NULL, "D", &r), SIO_ETOOBIG);
    assert_int_equal(restore(f, "/", "P", p[79].offset, "E", &r), SIO_OK); /* 40 + dups < 50 */
    assert_int_equal(r.n, 40);
    restres_free(&r);
    adp_session_free(s);
}

/* rds_streams_free with calls in flight: each callback runs once with SIO_ECLOSED, the
 * late replies find orphans (ASan/valgrind check they are freed, not touched). */
static void test_free_with_pending(void **state)
{
    fx_t *f = *state;
    const char *rooms[] = {"S"};
    adp_session_t *s = session("S", "P", rooms, 1, NULL);
    char *chan = rds_channel(RDS_CHAN_BROADCAST, "socket.io", "/", NULL);
    opened_t o = {0, 0};
    restres_t r;
    pubres_t p, q;
    sio_bin_t msg;

    RT_REQUIRE_REDIS();
    start(f, WINDOW, 0, 0);
    open_session(f, "/", s, "A");
    publish(f, "/", 1, rooms, 1, &q);
    encode(&msg, "/", "ev", 1, NULL, 0, NULL, 0, 0);
    memset(&p, 0, sizeof(p));
    memset(&r, 0, sizeof(r));
    assert_int_equal(
        rds_streams_publish(f->st, "/", NULL, 0, chan, msg.data, msg.len, on_published, &p),
        SIO_OK);
    assert_int_equal(rds_streams_restore(f->st, "/", "P", NULL, "B", on_restored, &r), SIO_OK);
    assert_int_equal(rds_session_open(f->st, "/", s, "C", NULL, on_opened, &o), SIO_OK);
    assert_int_equal(rds_session_update(f->st, "/", s, "C", NULL), SIO_OK);
    rds_streams_free(f->st);
    f->st = NULL;
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.err, SIO_ECLOSED);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, SIO_ECLOSED);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.err, SIO_ECLOSED);
    sync_cmd(f); /* the replies arrive for orphans */
    rt_run_for(f, 20);
    assert_int_equal(p.calls, 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(o.calls, 1);

    /* a restore in the middle of its XRANGEs when the connection closes */
    f->st = streams_new(f, WINDOW, 1, 0);
    assert_int_equal(rds_streams_restore(f->st, "/", "P", NULL, "D", on_restored, &r), SIO_OK);
    memset(&r, 0, sizeof(r));
    rt_run_for(f, 0);
    {
        int closed = 0;
        rds_conn_close(f->cmd, on_closed, &closed);
        f->cmd = NULL;
        assert_true(r.calls <= 1);
        RT_WAIT_FOR(f, closed == 1, 2000);
    }
    rds_streams_free(f->st);
    f->st = NULL;
    base_free(msg.data);
    base_free(chan);
    adp_session_free(s);
}

/* Redis goes away: calls in flight fail with SIO_EREDIS, calls while down at the call. */
static void test_redis_down(void **state)
{
    fx_t *f = *state;
    const char *rooms[] = {"S"};
    adp_session_t *s = session("S", "P", rooms, 1, NULL);
    char *chan = rds_channel(RDS_CHAN_BROADCAST, "socket.io", "/", NULL);
    rds_streams_stats_t stt;
    restres_t r;
    pubres_t p;
    sio_bin_t msg;
    int i, rc = SIO_OK;

    RT_REQUIRE_REDIS();
    start(f, WINDOW, 0, 0);
    open_session(f, "/", s, "A");
    encode(&msg, "/", "ev", 1, NULL, 0, NULL, 0, 0);
    memset(&p, 0, sizeof(p));
    assert_int_equal(
        rds_streams_publish(f->st, "/", NULL, 0, chan, msg.data, msg.len, on_published, &p),
        SIO_OK);
    rt_redis_kill(&f->pid);
    RT_WAIT_FOR(f, p.calls == 1, 5000);
    assert_true(p.err == SIO_OK || p.err == SIO_EREDIS);
    /* bounded: the connection notices within a few turns */
    for (i = 0; i < 200 && rds_conn_is_up(f->cmd); i++)
        rt_run_for(f, 10);
    rc = rds_streams_publish(f->st, "/", NULL, 0, chan, msg.data, msg.len, on_published, &p);
    assert_int_equal(rc, SIO_EREDIS);
    assert_int_equal(rds_streams_restore(f->st, "/", "P", NULL, "B", on_restored, &r), SIO_EREDIS);
    assert_int_equal(rds_session_update(f->st, "/", s, "A", NULL), SIO_EREDIS);
    rds_streams_get_stats(f->st, &stt);
    assert_true(stt.publish_failed >= 1);
    assert_true(stt.session_write_failed >= 1);
    assert_true(stt.restores_failed >= 1);
    base_free(msg.data);
    base_free(chan);
    adp_session_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_ids_streams_pubsub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_pipelined_same_ms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_and_lost_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_exact_missed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_quiet_rooms_and_marks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_except_marks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_batches_rooms_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down, setup, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
