/* rds_conn.h -- one logical Redis connection that survives Redis restarts.
 *
 * The Redis adapter needs two connections per node (a subscriber and a command
 * connection; a RESP2 connection in subscribe mode takes nothing but (un)subscribe), and
 * both need the same things hiredis 0.14 does not give: timeouts (its async API has none
 * and its libuv adapter has no timer hook), AUTH/SELECT on every connect, reconnection with
 * backoff, and subscriptions that come back by themselves after Redis did. This module adds
 * exactly that on top of hiredis async (driven by a uv_poll_t, as hiredis's libuv adapter
 * does), on the caller's loop, and knows nothing of Socket.IO.
 *
 * Life cycle (libuv's): rds_conn_new -> rds_conn_start -> ... -> rds_conn_close(cb); memory
 * is freed after the close callback, once hiredis and every uv handle are done with it.
 *
 * Promises:
 *  - A command accepted (SIO_OK) gets its callback exactly once, never before the call
 *    returns: with the reply, or with reply NULL and SIO_ETIMEDOUT (no reply within the
 *    command timeout; the late reply is swallowed), SIO_EREDIS (the connection was lost
 *    with the command in flight) or SIO_ECLOSED (rds_conn_close). A command refused at the
 *    call (down, closing, bad arguments) returns the error and its callback never runs.
 *  - Commands issued while the connection is down fail at once with SIO_EREDIS: nothing is
 *    buffered for later, so memory stays bounded during an outage and the caller decides.
 *  - Every (re)connect sends AUTH (when the URL has a password), SELECT (db != 0) and PING
 *    before the connection counts as up, so a wrong password, a bad db or a Redis still
 *    loading its dataset surfaces as a clear reason instead of failing every command.
 *  - The subscriptions of a subscriber connection are remembered and re-issued on every
 *    reconnect; on_up runs only after Redis confirmed all of them, so from then on no
 *    message is missed (messages published while down are lost: pub/sub has no memory).
 *  - Down/up transitions are logged once each ("redis <name>: connection lost (...),
 *    retrying in N ms" / "redis <name>: reconnected ..."); repeated failures while down
 *    are logged again only when the reason changes.
 *
 * Host names are resolved by hiredis with a blocking getaddrinfo() at each attempt: give an
 * address (or an /etc/hosts name) where a stalled resolver would hurt the loop.
 *
 * Not thread-safe: everything runs on the loop's thread. Callbacks may call any function of
 * this module on the same connection, rds_conn_close included.
 */
#ifndef RDS_CONN_H
#define RDS_CONN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "rds_url.h"

#define RDS_CONNECT_TIMEOUT_MS 2000
#define RDS_COMMAND_TIMEOUT_MS 5000
#define RDS_BACKOFF_MIN_MS 100
#define RDS_BACKOFF_MAX_MS 5000

/* Log levels handed to on_log; the same numbers as app_log_level_t (node/config.h). */
enum { RDS_LOG_ERROR = 0, RDS_LOG_WARN = 1, RDS_LOG_INFO = 2, RDS_LOG_DEBUG = 3 };

/* The one log path of the Redis modules: formats fmt and hands the line to sink(ud), or
 * without a sink writes "sockeye: <level>: <line>" to stderr for levels up to
 * stderr_max. Never fails (a long line is cut). */
void rds_log_v(void (*sink)(void *ud, int level, const char *msg), void *ud, int level,
               int stderr_max, const char *fmt, va_list ap);

typedef struct rds_conn rds_conn_t;

/* How to connect. Borrowed by rds_conn_new, which copies what it keeps. */
typedef struct rds_conn_config {
    const rds_url_t *url;        /* NULL = 127.0.0.1:6379 db 0 */
    unsigned connect_timeout_ms; /* TCP connect + AUTH/SELECT/PING + resubscribe, default 2000 */
    unsigned command_timeout_ms; /* per command, default 5000; 0 = wait forever */
    unsigned backoff_min_ms;     /* first retry delay, doubled per failure, default 100 */
    unsigned backoff_max_ms;     /* cap, default 5000 */
    int subscriber;              /* 1 = pub/sub connection: (p)(un)subscribe only */
} rds_conn_config_t;

/* What on_up reports. */
typedef struct rds_up_info {
    uint64_t n_up;       /* 1 for the first connection, then 2, 3 ... */
    uint64_t down_ms;    /* how long the connection was down (0 the first time) */
    size_t resubscribed; /* channels + patterns re-issued and confirmed by Redis */
} rds_up_info_t;

/* Owner callbacks, all optional. Copied by rds_conn_new. */
typedef struct rds_conn_events {
    void *ud;
    /* Connected, handshake done, subscriptions confirmed: commands may be issued. Runs on
     * every transition to up, the first one included. */
    void (*on_up)(rds_conn_t *c, const rds_up_info_t *info, void *ud);
    /* Was up, now is not; reconnection is already scheduled. reason is a one-line message
     * valid during the call. Commands in flight have already failed with SIO_EREDIS. */
    void (*on_down)(rds_conn_t *c, const char *reason, void *ud);
    /* Log sink; NULL writes "sockeye: <level>: <msg>" lines on stderr. */
    void (*on_log)(void *ud, int level, const char *msg);
} rds_conn_events_t;

/* Outcome of the first connection attempt: err SIO_OK (up; on_up follows), SIO_EREDIS with
 * a one-line reason (the connection keeps retrying in the background until closed), or
 * SIO_ECLOSED when closed before any outcome. Runs exactly once. */
typedef void (*rds_start_cb)(rds_conn_t *c, int err, const char *reason, void *ud);

/* A command's outcome: err SIO_OK with a reply (which may be a Redis error reply,
 * REDIS_REPLY_ERROR: Redis answered), or a sio_err_t with reply NULL. reply is hiredis's,
 * valid only during the call. */
typedef void (*rds_reply_cb)(rds_conn_t *c, int err, redisReply *reply, void *ud);

enum {
    RDS_SUBSCRIBED = 1, /* Redis confirmed a (re)subscription; payload NULL */
    RDS_MESSAGE = 2,    /* a published message */
};

/* One pub/sub event. Pointers are hiredis's, valid during the callback only, and binary
 * safe (use the lengths). pattern is set for psubscribe'd entries, channel for messages
 * and channel confirmations. */
typedef struct rds_message {
    int kind; /* RDS_SUBSCRIBED or RDS_MESSAGE */
    const char *channel;
    size_t channel_len;
    const char *pattern;
    size_t pattern_len;
    const char *payload;
    size_t payload_len;
} rds_message_t;

typedef void (*rds_message_cb)(rds_conn_t *c, const rds_message_t *m, void *ud);

/* Counters for /metrics; monotonic for the life of the connection. */
typedef struct rds_conn_stats {
    uint64_t reconnects;      /* times the connection came back up after the first */
    uint64_t commands_failed; /* refused while down, or lost in flight (SIO_EREDIS) */
    uint64_t timeouts;        /* commands that ended with SIO_ETIMEDOUT */
    uint64_t late_replies;    /* replies that arrived after their command timed out */
    uint64_t messages;        /* pub/sub messages delivered */
} rds_conn_stats_t;

/* Fills cfg with the defaults above (url NULL, not a subscriber). */
void rds_conn_config_init(rds_conn_config_t *cfg);

/* Creates a connection on loop; nothing happens on the network until rds_conn_start.
 * name labels log lines ("redis <name>: ..."). cfg, its url, name and ev are copied. Zero
 * timeouts/backoffs in cfg take the defaults (command_timeout_ms 0 means none). Returns
 * NULL only when backoff_min_ms > backoff_max_ms. The connection owns two uv timers on
 * loop from here on, so it must be closed with rds_conn_close even if never started. */
rds_conn_t *rds_conn_new(uv_loop_t *loop, const rds_conn_config_t *cfg, const char *name,
                         const rds_conn_events_t *ev);

/* Starts connecting (the first attempt runs from the loop, not inside this call) and
 * reports the first attempt's outcome through cb (may be NULL). SIO_EINVAL when already
 * started, SIO_ECLOSED when closing; cb does not run then. */
int rds_conn_start(rds_conn_t *c, rds_start_cb cb, void *ud);

/* Closes the connection: every pending command callback runs once with SIO_ECLOSED (and
 * a pending start callback too) before this returns; hiredis is released and both timers
 * closed; then cb(ud) runs from the loop and c is freed after cb returns. Safe from inside
 * any callback of c. SIO_ECLOSED (and cb never runs) when already closing. */
int rds_conn_close(rds_conn_t *c, void (*cb)(void *ud), void *ud);

/* Sends a printf-style command (hiredis format: %s C string, %b pointer + size_t, %d ...).
 * cb may be NULL (the reply is dropped, failures still counted). SIO_OK: cb will run
 * exactly once. SIO_EREDIS: not connected (or going down). SIO_ECLOSED: closing.
 * SIO_EINVAL: bad format, a subscriber connection, or a (p)(un)subscribe / monitor command
 * (those would change the connection's mode behind our back). */
int rds_conn_command(rds_conn_t *c, rds_reply_cb cb, void *ud, const char *fmt, ...);
int rds_conn_vcommand(rds_conn_t *c, rds_reply_cb cb, void *ud, const char *fmt, va_list ap);

/* The same with arguments as pointer + length (binary safe). argvlen NULL = strlen. */
int rds_conn_command_argv(rds_conn_t *c, rds_reply_cb cb, void *ud, int argc,
                          const char *const *argv, const size_t *argvlen);

/* Subscriber connections only. Records the subscription and sends it now if connected
 * (else at the next connect); cb receives RDS_SUBSCRIBED once per (re)subscription Redis
 * confirms, then RDS_MESSAGE for each message. Subscribing again to a name already held
 * replaces its cb/ud without a new SUBSCRIBE. SIO_EINVAL: not a subscriber connection,
 * empty name or NULL cb. SIO_ECLOSED: closing. Usable before rds_conn_start. */
int rds_conn_subscribe(rds_conn_t *c, const char *channel, rds_message_cb cb, void *ud);
int rds_conn_psubscribe(rds_conn_t *c, const char *pattern, rds_message_cb cb, void *ud);

/* Forgets the subscription (no callback for it from now on, even for messages already on
 * the wire) and sends UNSUBSCRIBE when connected. SIO_ENOTFOUND when not subscribed. */
int rds_conn_unsubscribe(rds_conn_t *c, const char *channel);
int rds_conn_punsubscribe(rds_conn_t *c, const char *pattern);

/* 1 when up (commands accepted), else 0. */
int rds_conn_is_up(const rds_conn_t *c);
const char *rds_conn_name(const rds_conn_t *c);
/* The URL with the password masked, for messages ("redis://:***@10.0.0.5:6379/0"). */
const char *rds_conn_where(const rds_conn_t *c);
/* Why the last attempt failed or the connection was lost; "" when never. */
const char *rds_conn_last_error(const rds_conn_t *c);
/* Commands in flight (accepted, not yet answered or timed out). */
size_t rds_conn_pending(const rds_conn_t *c);
/* Channels + patterns currently subscribed (confirmed or not). */
size_t rds_conn_subscriptions(const rds_conn_t *c);
void rds_conn_get_stats(const rds_conn_t *c, rds_conn_stats_t *out);

#endif
