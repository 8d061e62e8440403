/* rds_conn.c -- a hiredis async connection with timeouts, reconnection and resubscription.
 *
 * States: IDLE (not started) -> WAIT (retry timer armed) -> CONNECTING (a hiredis context
 * exists; TCP connect, then the pipelined AUTH/SELECT/PING handshake, then the
 * resubscription of a subscriber) -> UP -> back to WAIT when hiredis drops the context,
 * and CLOSING from anywhere. One uv timer serves both the retry delay (WAIT) and the connect
 * deadline (CONNECTING) because they are never armed at once; a second timer watches the
 * oldest command in flight.
 *
 * Why the details are the way they are (hiredis 0.14.1, read from its async.c):
 *  - The event glue is ours (rds__io_*, a uv_poll_t per context: the shape of hiredis's
 *    adapters/libuv.h) rather than that header, because its 0.14.1 poll callback returns
 *    early on a non-zero status, and libuv reports a socket error (POLLERR: a refused
 *    connect, a reset) exactly that way, after stopping the poll. hiredis then never learns
 *    that the socket failed: a refused connect waited for the connect timeout and a reset
 *    connection would have looked up forever. Ours hands the error to hiredis as the
 *    events it was waiting for, so its read/write hits the error and tears down.
 *  - Every way a context can end (connect error, EOF, protocol error, our redisAsyncFree)
 *    runs the same teardown: the reply callbacks of pending commands with a NULL reply, then
 *    the event library's cleanup hook, then the disconnect callback only if the TCP
 *    connection had been made. Our cleanup hook is therefore the single place that learns
 *    "this context is gone", whatever the cause, and it runs after every pending callback
 *    did.
 *  - onConnect/onDisconnect run without REDIS_IN_CALLBACK, so freeing the context from them
 *    would be a double free. We set neither: the handshake commands are queued right after
 *    redisAsyncConnect (hiredis writes them once connected) and their replies tell us the
 *    connection works.
 *  - redisAsyncFree from inside a reply callback only sets REDIS_FREEING; hiredis frees when
 *    the callback returns. So a connection object stays allocated until its uv timers are
 *    closed, which happens on a later loop turn than any hiredis teardown we started.
 *  - Timed-out commands stay registered in hiredis (there is no way to withdraw one): the
 *    record is marked orphan and freed by the late reply, or by the NULL reply of teardown.
 *  - A pub/sub reply is routed by channel name through hiredis's dicts, and a reply it
 *    cannot route may go to the previous reply's callback. All subscriptions therefore share
 *    one callback (rds__sub_cb) with the connection as privdata, which makes mis-routing
 *    harmless, and the connection's own map decides who gets a message.
 *  - The subscriber never sends PING or a bare UNSUBSCRIBE once subscribed: hiredis 0.14
 *    would misroute the first and assert on the nil channel of the second's reply.
 */
#include "rds_conn.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <hiredis/async.h>

#include "base_alloc.h"
#include "base_list.h"
#include "base_map.h"
#include "sockeye_common.h"

#define RDS_SUB_BATCH 128         /* names per re-issued SUBSCRIBE */
#define RDS_KEEPALIVE_IDLE_S 15   /* TCP keepalive: first probe after 15 s idle, */
#define RDS_KEEPALIVE_INTVL_S 5   /* then every 5 s, */
#define RDS_KEEPALIVE_CNT 3       /* 3 unanswered probes = dead peer */
#define RDS_USER_TIMEOUT_MS 30000 /* unacknowledged data for 30 s = dead peer */

typedef enum rds_state {
    RDS_ST_IDLE,       /* created, not started */
    RDS_ST_WAIT,       /* no context; state_timer runs the next attempt */
    RDS_ST_CONNECTING, /* context exists; state_timer is the connect deadline */
    RDS_ST_UP,         /* handshake and resubscription done */
    RDS_ST_CLOSING,    /* rds_conn_close called; waiting for handle close callbacks */
} rds_state_t;

struct rds_conn {
    uv_loop_t *loop;
    char *name;
    char *where; /* URL with the password masked */
    rds_url_t url;
    rds_conn_config_t cfg; /* url pointer cleared; defaults filled */
    rds_conn_events_t ev;
    rds_state_t state;
    redisAsyncContext *ac;  /* NULL unless CONNECTING or UP (or in teardown) */
    int hs_done;            /* the current context passed AUTH/SELECT/PING */
    size_t resub_pending;   /* subscription confirmations awaited before UP */
    size_t resubscribed;    /* confirmations received during this connect */
    uv_timer_t state_timer; /* retry delay (WAIT) or connect deadline (CONNECTING) */
    uv_timer_t cmd_timer;   /* due at or before the oldest pending command's deadline */
    int handles_open;       /* timers not yet closed during CLOSING */
    base_list_t pending;    /* rds_cmd_t in issue order, none timed out */
    size_t n_pending;
    base_map_t channels; /* channel -> rds_sub_t* */
    base_map_t patterns; /* pattern -> rds_sub_t* */
    unsigned failures;   /* failed attempts since the last UP (backoff exponent) */
    uint64_t n_up;
    uint64_t down_since; /* uv_now when the connection was lost */
    uint64_t rng;        /* xorshift state for the backoff jitter */
    rds_start_cb start_cb;
    void *start_ud;
    int start_pending; /* the first outcome is not reported yet */
    void (*close_cb)(void *ud);
    void *close_ud;
    rds_conn_stats_t stats;
    char reason[256]; /* why we are tearing the current context down; "" = hiredis's */
    char last_error[256];
    char logged_error[256]; /* last failure reason logged while down */
};

/* One per command handed to hiredis; freed when hiredis calls back, which it does exactly
 * once: with the reply, a late reply, or NULL at teardown. */
typedef struct rds_cmd {
    base_list_t link; /* in c->pending until answered or orphaned */
    rds_conn_t *c;
    rds_reply_cb cb;
    void *ud;
    uint64_t deadline; /* uv_now ms; UINT64_MAX = no timeout */
    int orphan;        /* the owner was already answered (timeout or close): swallow */
} rds_cmd_t;

/* One per connection attempt's handshake (AUTH, SELECT, PING pipelined). */
typedef struct rds_hs {
    rds_conn_t *c;
    const char *steps[3]; /* command names in send order, for error messages */
    char dbnum[16];
    int sent;
    int answered;
    int failed;
} rds_hs_t;

/* One per subscribed channel or pattern. */
typedef struct rds_sub {
    rds_message_cb cb;
    void *ud;
} rds_sub_t;

/* ---------------------------------------------------------------- helpers */

/* See rds_conn.h. */
void rds_log_v(void (*sink)(void *ud, int level, const char *msg), void *ud, int level,
               int stderr_max, const char *fmt, va_list ap)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char msg[768];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (sink != NULL)
        sink(ud, level, msg);
    else if (level <= stderr_max)
        fprintf(stderr, "sockeye: %s: %s\n", names[level & 3], msg);
}

__attribute__((format(printf, 3, 4))) static void rds__conn_log(const rds_conn_t *c, int level,
                                                                const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rds_log_v(c->ev.on_log, c->ev.ud, level, RDS_LOG_DEBUG, fmt, ap);
    va_end(ap);
}

static uint64_t rds__now(const rds_conn_t *c)
{
    return uv_now(c->loop);
}

static uint64_t rds__rand(rds_conn_t *c)
{
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return x;
}

/* Next retry delay: backoff_min doubled per failure up to backoff_max, minus up to a
 * quarter at random so nodes that lost Redis together do not come back in lockstep. */
static unsigned rds__backoff(rds_conn_t *c)
{
    uint64_t d = c->cfg.backoff_min_ms;
    unsigned i;

    for (i = 0; i < c->failures && d < c->cfg.backoff_max_ms; i++)
        d *= 2;
    if (d > c->cfg.backoff_max_ms)
        d = c->cfg.backoff_max_ms;
    if (c->failures < 64)
        c->failures++;
    return (unsigned)(d - rds__rand(c) % (d / 4 + 1));
}

/* Keepalive and a user timeout make a vanished peer (cable, VM, firewall) end the
 * connection in tens of seconds rather than the kernel's default hours. Best effort. */
static void rds__tune_socket(int fd)
{
    int on = 1, idle = RDS_KEEPALIVE_IDLE_S, intvl = RDS_KEEPALIVE_INTVL_S, cnt = RDS_KEEPALIVE_CNT;

    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
#ifdef TCP_USER_TIMEOUT
    {
        unsigned ut = RDS_USER_TIMEOUT_MS;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
    }
#endif
}

/* The context is unusable for new commands (teardown started). */
static int rds__ac_dying(const redisAsyncContext *ac)
{
    return ac == NULL || (ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)) != 0;
}

static void rds__state_timer_cb(uv_timer_t *t);

/* ---------------------------------------------------------------- up / down */

/* The current context finished its handshake and resubscription. */
static void rds__become_up(rds_conn_t *c)
{
    rds_up_info_t info;

    uv_timer_stop(&c->state_timer);
    c->state = RDS_ST_UP;
    c->failures = 0;
    c->n_up++;
    info.n_up = c->n_up;
    info.down_ms = c->n_up > 1 ? rds__now(c) - c->down_since : 0;
    info.resubscribed = c->resubscribed;
    c->logged_error[0] = '\0';
    if (c->n_up > 1) {
        c->stats.reconnects++;
        if (c->cfg.subscriber)
            rds__conn_log(c, RDS_LOG_INFO,
                          "redis %s: reconnected after %llu ms, %zu subscription(s) restored",
                          c->name, (unsigned long long)info.down_ms, info.resubscribed);
        else
            rds__conn_log(c, RDS_LOG_INFO, "redis %s: reconnected after %llu ms", c->name,
                          (unsigned long long)info.down_ms);
    } else {
        rds__conn_log(c, RDS_LOG_INFO, "redis %s: connected to %s", c->name, c->where);
    }
    if (c->start_pending) {
        c->start_pending = 0;
        if (c->start_cb != NULL)
            c->start_cb(c, SIO_OK, NULL, c->start_ud);
        if (c->state != RDS_ST_UP)
            return;
    }
    if (c->ev.on_up != NULL)
        c->ev.on_up(c, &info, c->ev.ud);
}

/* The context is gone (hiredis already ran every pending callback). Schedules the next
 * attempt and tells the owner, once per transition. */
static void rds__gone(rds_conn_t *c)
{
    int was_up = c->state == RDS_ST_UP;
    unsigned delay;

    c->ac = NULL;
    c->hs_done = 0;
    c->resub_pending = 0;
    if (c->state == RDS_ST_CLOSING)
        return;
    snprintf(c->last_error, sizeof(c->last_error), "%s",
             c->reason[0] != '\0' ? c->reason : "connection closed");
    c->reason[0] = '\0';
    c->state = RDS_ST_WAIT;
    delay = rds__backoff(c);
    uv_timer_start(&c->state_timer, rds__state_timer_cb, delay, 0);

    if (was_up) {
        c->down_since = rds__now(c);
        rds__conn_log(c, RDS_LOG_WARN, "redis %s: connection lost (%s), retrying in %u ms", c->name,
                      c->last_error, delay);
        memcpy(c->logged_error, c->last_error, sizeof(c->logged_error));
        if (c->ev.on_down != NULL)
            c->ev.on_down(c, c->last_error, c->ev.ud);
    } else if (c->start_pending) {
        c->start_pending = 0;
        rds__conn_log(c, RDS_LOG_WARN, "redis %s: cannot connect to %s: %s, retrying in %u ms",
                      c->name, c->where, c->last_error, delay);
        memcpy(c->logged_error, c->last_error, sizeof(c->logged_error));
        if (c->start_cb != NULL)
            c->start_cb(c, SIO_EREDIS, c->last_error, c->start_ud);
    } else if (strcmp(c->logged_error, c->last_error) != 0) {
        rds__conn_log(c, RDS_LOG_WARN, "redis %s: still down (%s), retrying in %u ms", c->name,
                      c->last_error, delay);
        memcpy(c->logged_error, c->last_error, sizeof(c->logged_error));
    } else {
        rds__conn_log(c, RDS_LOG_DEBUG, "redis %s: attempt failed (%s), retrying in %u ms", c->name,
                      c->last_error, delay);
    }
}

/* ---------------------------------------------------------------- event glue */

/* One per hiredis context: the socket's poll handle. Outlives the context by one loop turn
 * (uv_close), and the connection too when the connection is closed meanwhile. */
typedef struct rds_io {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis let go of the context */
    rds_conn_t *c;
    int events; /* UV_READABLE | UV_WRITABLE hiredis asked for */
} rds_io_t;

static void rds__io_cb(uv_poll_t *h, int status, int events)
{
    rds_io_t *io = h->data;

    if (status < 0) {
        /* libuv stopped the poll on a socket error; hiredis finds the error itself when it
         * reads or writes (or checks SO_ERROR while connecting) and tears the context down */
        events = io->events;
    }
    if (io->ac != NULL && (events & UV_READABLE))
        redisAsyncHandleRead(io->ac);
    if (io->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(io->ac);
    if (status < 0 && io->ac != NULL && io->events != 0)
        uv_poll_start(&io->poll, io->events, rds__io_cb);
}

static void rds__io_set(rds_io_t *io, int on, int ev)
{
    io->events = on ? (io->events | ev) : (io->events & ~ev);
    if (io->events != 0)
        uv_poll_start(&io->poll, io->events, rds__io_cb);
    else
        uv_poll_stop(&io->poll);
}

static void rds__io_add_read(void *privdata)
{
    rds__io_set(privdata, 1, UV_READABLE);
}

static void rds__io_del_read(void *privdata)
{
    rds__io_set(privdata, 0, UV_READABLE);
}

static void rds__io_add_write(void *privdata)
{
    rds__io_set(privdata, 1, UV_WRITABLE);
}

static void rds__io_del_write(void *privdata)
{
    rds__io_set(privdata, 0, UV_WRITABLE);
}

static void rds__io_closed(uv_handle_t *h)
{
    base_free(h->data);
}

/* hiredis's cleanup hook: runs once per context, after the pending callbacks and before the
 * context is freed, whatever ended it. The poll must go before hiredis closes the fd. */
static void rds__io_cleanup(void *privdata)
{
    rds_io_t *io = privdata;
    redisAsyncContext *ac = io->ac;
    rds_conn_t *c = io->c;

    if (c->reason[0] == '\0' && ac->c.err != 0)
        snprintf(c->reason, sizeof(c->reason), "%s", ac->c.errstr);
    io->ac = NULL;
    uv_close((uv_handle_t *)&io->poll, rds__io_closed);
    rds__gone(c);
}

/* Hooks ac into c's loop. 0, or -1 when libuv refuses the fd (nothing installed then). */
static int rds__io_attach(rds_conn_t *c, redisAsyncContext *ac)
{
    rds_io_t *io = base_calloc(1, sizeof(*io));

    if (uv_poll_init(c->loop, &io->poll, ac->c.fd) != 0) {
        base_free(io);
        return -1;
    }
    io->poll.data = io;
    io->ac = ac;
    io->c = c;
    ac->ev.data = io;
    ac->ev.addRead = rds__io_add_read;
    ac->ev.delRead = rds__io_del_read;
    ac->ev.addWrite = rds__io_add_write;
    ac->ev.delWrite = rds__io_del_write;
    ac->ev.cleanup = rds__io_cleanup;
    return 0;
}

/* ---------------------------------------------------------------- subscriptions */

static void rds__dispatch(rds_conn_t *c, base_map_t *m, const redisReply *key, rds_message_t *msg)
{
    rds_sub_t *s;

    if (key->type != REDIS_REPLY_STRING || strlen(key->str) != (size_t)key->len)
        return; /* a name with a NUL cannot be one of ours */
    s = base_map_get(m, key->str);
    if (s == NULL)
        return; /* unsubscribed while the message was on the wire */
    if (msg->kind == RDS_MESSAGE)
        c->stats.messages++;
    s->cb(c, msg, s->ud);
}

static int rds__is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING;
}

/* Every pub/sub reply of the connection lands here (see the top comment). */
static void rds__sub_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    rds_conn_t *c = privdata;
    redisReply *r = reply, **e;
    rds_message_t msg;
    const char *kind;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        !rds__is_str(r->element[0]) || c->state == RDS_ST_CLOSING)
        return;
    e = r->element;
    kind = e[0]->str;
    memset(&msg, 0, sizeof(msg));
    if (strcasecmp(kind, "message") == 0 && r->elements == 3 && rds__is_str(e[1]) &&
        rds__is_str(e[2])) {
        msg.kind = RDS_MESSAGE;
        msg.channel = e[1]->str;
        msg.channel_len = e[1]->len;
        msg.payload = e[2]->str;
        msg.payload_len = e[2]->len;
        rds__dispatch(c, &c->channels, e[1], &msg);
    } else if (strcasecmp(kind, "pmessage") == 0 && r->elements == 4 && rds__is_str(e[1]) &&
               rds__is_str(e[2]) && rds__is_str(e[3])) {
        msg.kind = RDS_MESSAGE;
        msg.pattern = e[1]->str;
        msg.pattern_len = e[1]->len;
        msg.channel = e[2]->str;
        msg.channel_len = e[2]->len;
        msg.payload = e[3]->str;
        msg.payload_len = e[3]->len;
        rds__dispatch(c, &c->patterns, e[1], &msg);
    } else if ((strcasecmp(kind, "subscribe") == 0 || strcasecmp(kind, "psubscribe") == 0) &&
               rds__is_str(e[1])) {
        int pattern = kind[0] == 'p' || kind[0] == 'P';
        int counted = 0;
        msg.kind = RDS_SUBSCRIBED;
        if (pattern) {
            msg.pattern = e[1]->str;
            msg.pattern_len = e[1]->len;
        } else {
            msg.channel = e[1]->str;
            msg.channel_len = e[1]->len;
        }
        if (c->state == RDS_ST_CONNECTING && c->hs_done && c->resub_pending > 0) {
            c->resub_pending--;
            c->resubscribed++;
            counted = 1;
        }
        rds__dispatch(c, pattern ? &c->patterns : &c->channels, e[1], &msg);
        if (counted && c->state == RDS_ST_CONNECTING && c->ac == ac && c->resub_pending == 0)
            rds__become_up(c);
    }
    /* unsubscribe / punsubscribe confirmations need nothing: the map already forgot */
}

/* Sends SUBSCRIBE/PSUBSCRIBE for every name of m in batches. Returns the number of names
 * sent, or -1 when hiredis refused a command (the context is going down). */
static long rds__send_subs(rds_conn_t *c, base_map_t *m, const char *verb)
{
    const char *argv[RDS_SUB_BATCH + 1];
    base_map_iter_t it = {0};
    const char *key;
    void *val;
    long sent = 0;
    int n = 0, more = 1;

    argv[0] = verb;
    while (more) {
        more = base_map_next(m, &it, &key, &val);
        if (more)
            argv[1 + n++] = key;
        if (n == RDS_SUB_BATCH || (!more && n > 0)) {
            if (redisAsyncCommandArgv(c->ac, rds__sub_cb, c, n + 1, argv, NULL) != REDIS_OK)
                return -1;
            sent += n;
            n = 0;
        }
    }
    return sent;
}

/* After the handshake: re-issue every subscription, or go up at once when there is none. */
static void rds__resubscribe(rds_conn_t *c)
{
    long a = 0, b = 0;

    c->resubscribed = 0;
    if (c->cfg.subscriber) {
        a = rds__send_subs(c, &c->channels, "SUBSCRIBE");
        b = a < 0 ? -1 : rds__send_subs(c, &c->patterns, "PSUBSCRIBE");
    }
    if (a < 0 || b < 0) {
        snprintf(c->reason, sizeof(c->reason), "hiredis refused to queue SUBSCRIBE");
        redisAsyncFree(c->ac);
        return;
    }
    c->resub_pending = (size_t)(a + b);
    if (c->resub_pending == 0)
        rds__become_up(c);
}

static int rds__sub_add(rds_conn_t *c, base_map_t *m, const char *verb, const char *name,
                        rds_message_cb cb, void *ud)
{
    rds_sub_t *s;
    const char *argv[2];

    if (c->state == RDS_ST_CLOSING)
        return SIO_ECLOSED;
    if (!c->cfg.subscriber || name == NULL || name[0] == '\0' || cb == NULL)
        return SIO_EINVAL;
    s = base_map_get(m, name);
    if (s != NULL) {
        s->cb = cb;
        s->ud = ud;
        return SIO_OK;
    }
    s = base_malloc(sizeof(*s));
    s->cb = cb;
    s->ud = ud;
    base_map_put(m, name, s);
    if (c->hs_done && !rds__ac_dying(c->ac)) {
        argv[0] = verb;
        argv[1] = name;
        /* a refusal means teardown has begun: the next connect subscribes */
        if (redisAsyncCommandArgv(c->ac, rds__sub_cb, c, 2, argv, NULL) == REDIS_OK &&
            c->state == RDS_ST_CONNECTING)
            c->resub_pending++;
    }
    return SIO_OK;
}

static int rds__sub_del(rds_conn_t *c, base_map_t *m, const char *verb, const char *name)
{
    rds_sub_t *s;
    const char *argv[2];

    if (c->state == RDS_ST_CLOSING)
        return SIO_ECLOSED;
    if (!c->cfg.subscriber || name == NULL)
        return SIO_EINVAL;
    s = base_map_del(m, name);
    if (s == NULL)
        return SIO_ENOTFOUND;
    base_free(s);
    if (c->hs_done && !rds__ac_dying(c->ac)) {
        argv[0] = verb;
        argv[1] = name;
        (void)redisAsyncCommandArgv(c->ac, NULL, NULL, 2, argv, NULL);
    }
    return SIO_OK;
}

/* ---------------------------------------------------------------- handshake */

static void rds__hs_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    rds_hs_t *hs = privdata;
    rds_conn_t *c = hs->c;
    redisReply *r = reply;
    const char *step = hs->steps[hs->answered];
    int failed;

    hs->answered++;
    if (r != NULL && !hs->failed && r->type == REDIS_REPLY_ERROR) {
        hs->failed = 1;
        if (strcmp(step, "SELECT") == 0)
            snprintf(c->reason, sizeof(c->reason), "SELECT %s refused: %s", hs->dbnum, r->str);
        else if (strncmp(r->str, "NOAUTH", 6) == 0)
            snprintf(c->reason, sizeof(c->reason), "%s refused: %s (the URL has no password)", step,
                     r->str);
        else
            snprintf(c->reason, sizeof(c->reason), "%s refused: %s", step, r->str);
    }
    if (hs->answered < hs->sent)
        return;
    failed = hs->failed;
    base_free(hs);
    if (r == NULL || c->state != RDS_ST_CONNECTING || c->ac != ac)
        return; /* teardown: the cleanup hook reports it */
    if (failed) {
        redisAsyncFree(ac); /* deferred by hiredis until this callback returns */
        return;
    }
    c->hs_done = 1;
    rds__resubscribe(c);
}

/* Queues AUTH/SELECT/PING on a context that may still be connecting. Returns 0, or -1 with
 * c->reason set when hiredis refused (the caller frees the context). */
static int rds__handshake(rds_conn_t *c)
{
    rds_hs_t *hs = base_calloc(1, sizeof(*hs));
    const char *argv[3];
    int argc;

    hs->c = c;
    snprintf(hs->dbnum, sizeof(hs->dbnum), "%d", c->url.db);
    for (int step = 0; step < 3; step++) {
        argc = 0;
        if (step == 0 && c->url.pass != NULL) {
            argv[argc++] = "AUTH";
            if (c->url.user != NULL)
                argv[argc++] = c->url.user;
            argv[argc++] = c->url.pass;
        } else if (step == 1 && c->url.db != 0) {
            argv[argc++] = "SELECT";
            argv[argc++] = hs->dbnum;
        } else if (step == 2) {
            argv[argc++] = "PING";
        }
        if (argc == 0)
            continue;
        hs->steps[hs->sent] = argv[0];
        if (redisAsyncCommandArgv(c->ac, rds__hs_cb, hs, argc, argv, NULL) != REDIS_OK) {
            snprintf(c->reason, sizeof(c->reason), "hiredis refused to queue %s", argv[0]);
            if (hs->sent == 0)
                base_free(hs);
            else
                hs->failed = 1; /* the callbacks already queued free it */
            return -1;
        }
        hs->sent++;
    }
    return 0;
}

/* ---------------------------------------------------------------- connecting */

static void rds__attempt(rds_conn_t *c)
{
    redisAsyncContext *ac;

    c->state = RDS_ST_CONNECTING;
    c->reason[0] = '\0';
    c->hs_done = 0;
    c->resub_pending = 0;
    if (c->url.is_unix)
        ac = redisAsyncConnectUnix(c->url.path);
    else
        ac = redisAsyncConnect(c->url.host, c->url.port);
    if (ac == NULL) {
        snprintf(c->reason, sizeof(c->reason), "cannot allocate a hiredis context");
        rds__gone(c);
        return;
    }
    if (ac->c.err != 0) { /* resolution failure, or a unix socket refused at once */
        snprintf(c->reason, sizeof(c->reason), "%s", ac->c.errstr);
        redisAsyncFree(ac);
        rds__gone(c);
        return;
    }
    ac->data = c;
    if (rds__io_attach(c, ac) != 0) {
        snprintf(c->reason, sizeof(c->reason), "cannot watch the socket with libuv");
        redisAsyncFree(ac);
        rds__gone(c);
        return;
    }
    c->ac = ac;
    if (!c->url.is_unix)
        rds__tune_socket(ac->c.fd);
    uv_timer_start(&c->state_timer, rds__state_timer_cb, c->cfg.connect_timeout_ms, 0);
    if (rds__handshake(c) != 0)
        redisAsyncFree(ac); /* runs the cleanup hook -> rds__gone */
}

static void rds__state_timer_cb(uv_timer_t *t)
{
    rds_conn_t *c = t->data;
    redisAsyncContext *ac = c->ac;

    if (c->state == RDS_ST_WAIT) {
        rds__attempt(c);
        return;
    }
    if (c->state != RDS_ST_CONNECTING || ac == NULL)
        return;
    if (!(ac->c.flags & REDIS_CONNECTED))
        snprintf(c->reason, sizeof(c->reason), "no TCP connection within %u ms",
                 c->cfg.connect_timeout_ms);
    else if (!c->hs_done)
        snprintf(c->reason, sizeof(c->reason), "no answer to the handshake within %u ms",
                 c->cfg.connect_timeout_ms);
    else
        snprintf(c->reason, sizeof(c->reason), "%zu subscription(s) not confirmed within %u ms",
                 c->resub_pending, c->cfg.connect_timeout_ms);
    redisAsyncFree(ac); /* not inside hiredis: frees now, the cleanup hook reschedules */
}

/* ---------------------------------------------------------------- commands */

static void rds__cmd_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    rds_cmd_t *rec = privdata;
    rds_conn_t *c = rec->c;
    int err = SIO_OK;

    if (rec->orphan) {
        if (reply != NULL)
            c->stats.late_replies++;
        base_free(rec);
        return;
    }
    base_list_remove(&rec->link);
    c->n_pending--;
    if (reply == NULL) {
        err = c->state == RDS_ST_CLOSING ? SIO_ECLOSED : SIO_EREDIS;
        c->stats.commands_failed++;
    }
    if (rec->cb != NULL)
        rec->cb(c, err, reply, rec->ud);
    base_free(rec);
}

static void rds__cmd_timer_cb(uv_timer_t *t)
{
    rds_conn_t *c = t->data;
    uint64_t now = rds__now(c);
    rds_cmd_t *rec;

    while (!base_list_empty(&c->pending)) {
        rec = BASE_CONTAINER_OF(c->pending.next, rds_cmd_t, link);
        if (rec->deadline > now)
            break;
        base_list_remove(&rec->link);
        c->n_pending--;
        rec->orphan = 1; /* hiredis still owns the callback; rds__cmd_cb frees */
        c->stats.timeouts++;
        if (rec->cb != NULL)
            rec->cb(c, SIO_ETIMEDOUT, NULL, rec->ud);
        if (c->state == RDS_ST_CLOSING)
            return;
    }
    if (!base_list_empty(&c->pending)) {
        rec = BASE_CONTAINER_OF(c->pending.next, rds_cmd_t, link);
        uv_timer_start(&c->cmd_timer, rds__cmd_timer_cb, rec->deadline - now, 0);
    }
}

/* Name of the first argument of a formatted RESP command, which we produced ourselves. */
static int rds__cmd_allowed(const char *cmd, size_t len)
{
    static const char *const modal[] = {"subscribe", "psubscribe", "unsubscribe", "punsubscribe",
                                        "monitor"};
    const char *p = memchr(cmd, '$', len), *name;
    char *end;
    long n;

    if (p == NULL)
        return 0; /* no argument at all: hiredis would assert */
    n = strtol(p + 1, &end, 10);
    if (n <= 0 || end[0] != '\r' || (size_t)(end + 2 - cmd) + (size_t)n > len)
        return 0;
    name = end + 2;
    for (size_t i = 0; i < sizeof(modal) / sizeof(modal[0]); i++)
        if ((size_t)n == strlen(modal[i]) && strncasecmp(name, modal[i], (size_t)n) == 0)
            return 0;
    return 1;
}

/* Checks the state, then hands the formatted command to hiredis. Frees cmd. */
static int rds__submit(rds_conn_t *c, rds_reply_cb cb, void *ud, char *cmd, int len)
{
    rds_cmd_t *rec;
    unsigned tmo = c->cfg.command_timeout_ms;

    if (len < 0 || !rds__cmd_allowed(cmd, (size_t)len)) {
        if (len >= 0)
            redisFreeCommand(cmd);
        return SIO_EINVAL;
    }
    if (c->state != RDS_ST_UP || rds__ac_dying(c->ac)) {
        redisFreeCommand(cmd);
        c->stats.commands_failed++;
        return SIO_EREDIS;
    }
    rec = base_calloc(1, sizeof(*rec));
    rec->c = c;
    rec->cb = cb;
    rec->ud = ud;
    rec->deadline = tmo != 0 ? rds__now(c) + tmo : UINT64_MAX;
    base_list_init(&rec->link);
    if (redisAsyncFormattedCommand(c->ac, rds__cmd_cb, rec, cmd, (size_t)len) != REDIS_OK) {
        redisFreeCommand(cmd);
        base_free(rec);
        c->stats.commands_failed++;
        return SIO_EREDIS;
    }
    redisFreeCommand(cmd);
    base_list_push_back(&c->pending, &rec->link);
    c->n_pending++;
    if (tmo != 0 && !uv_is_active((uv_handle_t *)&c->cmd_timer))
        uv_timer_start(&c->cmd_timer, rds__cmd_timer_cb, tmo, 0);
    return SIO_OK;
}

/* ---------------------------------------------------------------- public */

void rds_conn_config_init(rds_conn_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->connect_timeout_ms = RDS_CONNECT_TIMEOUT_MS;
    cfg->command_timeout_ms = RDS_COMMAND_TIMEOUT_MS;
    cfg->backoff_min_ms = RDS_BACKOFF_MIN_MS;
    cfg->backoff_max_ms = RDS_BACKOFF_MAX_MS;
}

rds_conn_t *rds_conn_new(uv_loop_t *loop, const rds_conn_config_t *cfg, const char *name,
                         const rds_conn_events_t *ev)
{
    rds_conn_config_t def;
    rds_conn_t *c;
    size_t n;

    if (cfg == NULL) {
        rds_conn_config_init(&def);
        cfg = &def;
    }
    c = base_calloc(1, sizeof(*c));
    c->cfg = *cfg;
    c->cfg.url = NULL;
    if (c->cfg.connect_timeout_ms == 0)
        c->cfg.connect_timeout_ms = RDS_CONNECT_TIMEOUT_MS;
    if (c->cfg.backoff_min_ms == 0)
        c->cfg.backoff_min_ms = RDS_BACKOFF_MIN_MS;
    if (c->cfg.backoff_max_ms == 0)
        c->cfg.backoff_max_ms = RDS_BACKOFF_MAX_MS;
    if (c->cfg.backoff_min_ms > c->cfg.backoff_max_ms) {
        base_free(c);
        return NULL;
    }
    c->loop = loop;
    c->name = base_strdup(name != NULL ? name : "redis");
    if (cfg->url != NULL)
        rds_url_copy(&c->url, cfg->url);
    else
        rds_url_init(&c->url);
    n = rds_url_format(&c->url, 0, NULL, 0);
    c->where = base_malloc(n + 1);
    rds_url_format(&c->url, 0, c->where, n + 1);
    if (ev != NULL)
        c->ev = *ev;
    c->state = RDS_ST_IDLE;
    base_list_init(&c->pending);
    base_map_init(&c->channels);
    base_map_init(&c->patterns);
    c->rng = (uv_hrtime() ^ (uint64_t)(uintptr_t)c) | 1;
    uv_timer_init(loop, &c->state_timer);
    uv_timer_init(loop, &c->cmd_timer);
    c->state_timer.data = c;
    c->cmd_timer.data = c;
    return c;
}

int rds_conn_start(rds_conn_t *c, rds_start_cb cb, void *ud)
{
    if (c->state == RDS_ST_CLOSING)
        return SIO_ECLOSED;
    if (c->state != RDS_ST_IDLE)
        return SIO_EINVAL;
    c->start_cb = cb;
    c->start_ud = ud;
    c->start_pending = 1;
    c->state = RDS_ST_WAIT;
    uv_timer_start(&c->state_timer, rds__state_timer_cb, 0, 0);
    return SIO_OK;
}

static void rds__free_subs(base_map_t *m)
{
    base_map_iter_t it = {0};
    const char *key;
    void *val;

    while (base_map_next(m, &it, &key, &val))
        base_free(val);
    base_map_clear(m);
}

static void rds__handle_closed(uv_handle_t *h)
{
    rds_conn_t *c = h->data;

    if (--c->handles_open > 0)
        return;
    if (c->ac != NULL) {
        /* cannot happen (teardown is synchronous within hiredis); leaking beats a
         * use-after-free in a callback hiredis still holds */
        rds__conn_log(c, RDS_LOG_ERROR, "redis %s: hiredis context outlived close", c->name);
        if (c->close_cb != NULL)
            c->close_cb(c->close_ud);
        return;
    }
    if (c->close_cb != NULL)
        c->close_cb(c->close_ud);
    rds__free_subs(&c->channels);
    rds__free_subs(&c->patterns);
    rds_url_free(&c->url);
    base_free(c->where);
    base_free(c->name);
    base_free(c);
}

int rds_conn_close(rds_conn_t *c, void (*cb)(void *ud), void *ud)
{
    rds_cmd_t *rec;

    if (c->state == RDS_ST_CLOSING)
        return SIO_ECLOSED;
    c->state = RDS_ST_CLOSING;
    c->close_cb = cb;
    c->close_ud = ud;
    while (!base_list_empty(&c->pending)) {
        rec = BASE_CONTAINER_OF(c->pending.next, rds_cmd_t, link);
        base_list_remove(&rec->link);
        c->n_pending--;
        rec->orphan = 1; /* hiredis's NULL reply at free time releases it */
        if (rec->cb != NULL)
            rec->cb(c, SIO_ECLOSED, NULL, rec->ud);
    }
    if (c->start_pending) {
        c->start_pending = 0;
        if (c->start_cb != NULL)
            c->start_cb(c, SIO_ECLOSED, "connection closed", c->start_ud);
    }
    if (c->ac != NULL)
        redisAsyncFree(c->ac); /* now, or when the running hiredis callback returns */
    c->handles_open = 2;
    uv_close((uv_handle_t *)&c->state_timer, rds__handle_closed);
    uv_close((uv_handle_t *)&c->cmd_timer, rds__handle_closed);
    return SIO_OK;
}

int rds_conn_vcommand(rds_conn_t *c, rds_reply_cb cb, void *ud, const char *fmt, va_list ap)
{
    char *cmd = NULL;
    int len;

    if (c->state == RDS_ST_CLOSING)
        return SIO_ECLOSED;
    if (c->cfg.subscriber || fmt == NULL)
        return SIO_EINVAL;
    len = redisvFormatCommand(&cmd, fmt, ap);
    return rds__submit(c, cb, ud, cmd, len);
}

int rds_conn_command(rds_conn_t *c, rds_reply_cb cb, void *ud, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = rds_conn_vcommand(c, cb, ud, fmt, ap);
    va_end(ap);
    return rc;
}

int rds_conn_command_argv(rds_conn_t *c, rds_reply_cb cb, void *ud, int argc,
                          const char *const *argv, const size_t *argvlen)
{
    char *cmd = NULL;
    int len;

    if (c->state == RDS_ST_CLOSING)
        return SIO_ECLOSED;
    if (c->cfg.subscriber || argc < 1 || argv == NULL)
        return SIO_EINVAL;
    for (int i = 0; i < argc; i++)
        if (argv[i] == NULL)
            return SIO_EINVAL;
    len = redisFormatCommandArgv(&cmd, argc, (const char **)argv, argvlen);
    return rds__submit(c, cb, ud, cmd, len);
}

int rds_conn_subscribe(rds_conn_t *c, const char *channel, rds_message_cb cb, void *ud)
{
    return rds__sub_add(c, &c->channels, "SUBSCRIBE", channel, cb, ud);
}

int rds_conn_psubscribe(rds_conn_t *c, const char *pattern, rds_message_cb cb, void *ud)
{
    return rds__sub_add(c, &c->patterns, "PSUBSCRIBE", pattern, cb, ud);
}

int rds_conn_unsubscribe(rds_conn_t *c, const char *channel)
{
    return rds__sub_del(c, &c->channels, "UNSUBSCRIBE", channel);
}

int rds_conn_punsubscribe(rds_conn_t *c, const char *pattern)
{
    return rds__sub_del(c, &c->patterns, "PUNSUBSCRIBE", pattern);
}

int rds_conn_is_up(const rds_conn_t *c)
{
    return c->state == RDS_ST_UP && !rds__ac_dying(c->ac);
}

const char *rds_conn_name(const rds_conn_t *c)
{
    return c->name;
}

const char *rds_conn_where(const rds_conn_t *c)
{
    return c->where;
}

const char *rds_conn_last_error(const rds_conn_t *c)
{
    return c->last_error;
}

size_t rds_conn_pending(const rds_conn_t *c)
{
    return c->n_pending;
}

size_t rds_conn_subscriptions(const rds_conn_t *c)
{
    return base_map_size(&c->channels) + base_map_size(&c->patterns);
}

void rds_conn_get_stats(const rds_conn_t *c, rds_conn_stats_t *out)
{
    *out = c->stats;
}
