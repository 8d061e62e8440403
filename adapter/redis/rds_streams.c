/* rds_streams.c -- connection state recovery stored in Redis (issue 4).
 *
 * The C half of the function library adapter/redis/sockeye.lua (embedded at build time as
 * generated/sockeye_lua.h): every write is one FCALL, so publish-and-store and each session
 * step are atomic on the server and cost one round trip; the only multi-command step is
 * the read half of a restore, which only reads after its first call (the take).
 *
 * Restore, and why it is shaped this way:
 *  - sockeye_session_take checks that the offset was given out by the namespace, raises
 *    it to the session's own start and makes the caller the session's owner in the same
 *    step, so two nodes cannot both restore one session and the old node's late release
 *    becomes a no-op. It does not test the offset's age: a session that exists proves its
 *    entries are still kept (retention below), so a quiet room recovers like a busy one.
 *  - Then one XRANGE cursor per stream of the session's rooms (own id room included) and
 *    the namespace stream, each from the offset exclusive, or from the room's join mark
 *    when that is later (what was published to a room before the socket joined it is not
 *    its to replay), in batches of cfg.batch, with at most RDS_RESTORE_PARALLEL cursors
 *    in flight: a socket in thousands of rooms pipelines a bounded number of commands.
 *  - Entries are merged by id and equal ids dropped (a broadcast to two of the session's
 *    rooms is stored in both streams), then decoded and filtered by except rooms.
 *  - Work is bounded: cfg.max_entries entries and RDS_RESTORE_MAX_BYTES bytes of stored
 *    messages per restore (SIO_ETOOBIG: the client gets a fresh session rather than the
 *    node a memory spike), and RDS_RESTORE_MAX_MS of wall time.
 *
 * Retention, and why it is window + detect + 3 x RDS_SLACK_MS. Each session keeps a read
 * time: when its client was last known to have read everything sent to it. The owner
 * node reports it from the heartbeat (a pong proves everything queued before its ping was
 * read; rds_session_refresh every few seconds, and every session write); taking the
 * session, or handing it back after a refused attempt, never moves it. Nothing in the
 * session's rooms between its offset and that time is unread, so what it missed was
 * published after the read time minus the publish-to-send latency (one slack). The take
 * refuses a read time older than retain - 2 slacks = window + detect + slack, so what the
 * client missed is still kept, with one slack left for the restore's reads: a restore
 * past RDS_RESTORE_MAX_MS fails (SIO_ETIMEDOUT) rather than answer with a possible hole.
 * A client the node noticed gone (at most detect = pingInterval + 2 x pingTimeout after
 * its last pong) and back within the window is therefore always recoverable. Every node
 * of a cluster must share window and heartbeat settings: the publisher's retention
 * decides the trim.
 *
 * Life cycle: every call in progress is an operation record (rds_op_t) on st->ops, passed
 * as the ud of its commands. rds_streams_free fails the pending user callbacks with
 * SIO_ECLOSED and orphans the records; a record is freed by the last reply of its commands,
 * which rds_conn delivers exactly once (with SIO_ECLOSED at the latest when it closes).
 */
#include "rds_streams.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base_alloc.h"
#include "base_list.h"
#include "base_map.h"
#include "rds_wire.h"
#include "sockeye_common.h"
#include "sockeye_lua.h" /* generated: static const unsigned char sockeye_lua[] */

#define RDS_DEFAULT_BATCH 100u
#define RDS_DEFAULT_MAX_ENTRIES 100000u
#define RDS_RESTORE_MAX_BYTES ((size_t)128 * 1024 * 1024)
#define RDS_SLACK_MS 10000u      /* SLACK_MS in sockeye.lua */
#define RDS_RETAIN_SLACKS 3u     /* session slack, delivery latency, restore time */
#define RDS_RESTORE_MAX_MS 8000u /* < RDS_SLACK_MS: see the rationale above */
#define RDS_RESTORE_PARALLEL 32u /* XRANGE cursors in flight per restore */
#define RDS_REFRESH_BATCH 256u   /* session keys per FCALL sockeye_session_refresh */
#define RDS_OFFSET_MAX 48        /* "<20 digits>-<20 digits>" + NUL */

enum {
    RDS_OP_LOAD,
    RDS_OP_PUBLISH,
    RDS_OP_OPEN,
    RDS_OP_UPDATE,
    RDS_OP_REFRESH,
    RDS_OP_RELEASE,
    RDS_OP_RESTORE
};

static const char *const rds_op_names[] = {"load",           "publish",         "session open",
                                           "session update", "session refresh", "session release",
                                           "restore"};

/* One call in progress. Embedded first in each kind's record; one per API call (one per
 * batch for refresh). */
typedef struct rds_op {
    base_list_t link;  /* on st->ops until orphaned or detached for its final callback */
    rds_streams_t *st; /* NULL once orphaned by rds_streams_free */
    int kind;
    unsigned inflight; /* commands sent and not yet answered */
    int done;          /* the user callback ran, or there is none to run */
    void (*cb)(void);  /* the user callback, cast back by kind */
    void *ud;
} rds_op_t;

struct rds_streams {
    rds_conn_t *cmd;
    char *prefix;
    uint64_t window_ms, retain_ms;
    char window_arg[24], retain_arg[24]; /* as the decimal ARGVs the functions take */
    size_t batch, max_entries;
    void (*on_log)(void *ud, int level, const char *msg);
    void *log_ud;
    base_list_t ops;
    int closing;
    int publish_failing, session_failing; /* log state changes, not every failure */
    rds_streams_stats_t stats;
};

/* One stream read by a restore. */
typedef struct rds_cursor {
    struct rds_restore_op *r;
    char *key;
    char start[RDS_OFFSET_MAX + 2]; /* "(" + the last id read */
} rds_cursor_t;

/* One stored entry, raw, until the merge. */
typedef struct rds_entry {
    uint64_t ms, seq;
    char *id;
    char *msg;
    size_t len;
} rds_entry_t;

typedef struct rds_restore_op {
    rds_op_t op;
    char *nsp;
    adp_session_t *s;
    base_map_t rooms; /* the session's rooms, own id included (values unused) */
    char offset[RDS_OFFSET_MAX];
    uint64_t off_ms, off_seq;
    cJSON *joined; /* room -> join mark, from the take */
    uint64_t t0;   /* monotonic ms when the take was sent */
    rds_cursor_t *cur;
    size_t n_cur, next_cur, active;
    rds_entry_t *ents;
    size_t n_ents, cap_ents, bytes;
} rds_restore_op_t;

/* ------------------------------------------------------------------ helpers */

__attribute__((format(printf, 3, 4))) static void rds__slog(const rds_streams_t *st, int level,
                                                            const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rds_log_v(st->on_log, st->log_ud, level, RDS_LOG_WARN, fmt, ap);
    va_end(ap);
}

static uint64_t rds__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "P:{N}:<what><arg>" (arg may be NULL). */
static char *rds__key(const rds_streams_t *st, const char *nsp, const char *what, const char *arg)
{
    size_t n = strlen(st->prefix) + strlen(nsp) + strlen(what) + (arg ? strlen(arg) : 0) + 6;
    char *k = base_malloc(n);
    snprintf(k, n, "%s:{%s}:%s%s", st->prefix, nsp, what, arg ? arg : "");
    return k;
}

/* Parses "<ms>-<seq>" (decimal digits only, no overflow, nothing else). 0 on failure. */
static int rds__id_parse(const char *s, size_t len, uint64_t *ms, uint64_t *seq)
{
    uint64_t v[2] = {0, 0};
    size_t i = 0;

    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            uint64_t d = (uint64_t)(s[i] - '0');
            if (v[part] > (UINT64_MAX - d) / 10)
                return 0;
            v[part] = v[part] * 10 + d;
            i++;
        }
        if (i == start)
            return 0;
        if (part == 0) {
            if (i >= len || s[i] != '-')
                return 0;
            i++;
        }
    }
    if (i != len || len >= RDS_OFFSET_MAX)
        return 0;
    *ms = v[0];
    *seq = v[1];
    return 1;
}

static int rds__is_str(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* What went wrong with a reply, for logs: the error reply's text or the transport error. */
static const char *rds__why(int err, const redisReply *r)
{
    if (err == SIO_ETIMEDOUT)
        return "timed out";
    if (err == SIO_ECLOSED)
        return "connection closed";
    if (err != SIO_OK)
        return "connection lost";
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        return r->str;
    return "unexpected reply";
}

/* JSON array of the session's rooms, own id first when missing (REDIS.md: rooms include the
 * socket's own id, the restore relies on it). New string (base_free). */
static char *rds__rooms_json(const adp_session_t *s)
{
    cJSON *a = cJSON_CreateArray();
    int has_sid = 0;
    char *out, *ret;

    for (size_t i = 0; i < s->n_rooms; i++)
        has_sid |= s->sid != NULL && strcmp(s->rooms[i], s->sid) == 0;
    if (!has_sid && s->sid != NULL)
        cJSON_AddItemToArray(a, cJSON_CreateString(s->sid));
    for (size_t i = 0; i < s->n_rooms; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(s->rooms[i]));
    out = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    ret = base_strdup(out != NULL ? out : "[]");
    cJSON_free(out);
    return ret;
}

static char *rds__data_json(const cJSON *data)
{
    char *out, *ret;

    if (data == NULL)
        return base_strdup("null");
    out = cJSON_PrintUnformatted(data);
    ret = base_strdup(out != NULL ? out : "null");
    cJSON_free(out);
    return ret;
}

/* ------------------------------------------------------------------ operations */

static rds_op_t *rds__op_new(rds_streams_t *st, size_t size, int kind, void (*cb)(void), void *ud)
{
    rds_op_t *op = base_calloc(1, size);
    op->st = st;
    op->kind = kind;
    op->cb = cb;
    op->ud = ud;
    op->done = cb == NULL;
    base_list_push_back(&st->ops, &op->link);
    return op;
}

static void rds__restore_release(rds_restore_op_t *r);

/* Frees op and what it holds. Off every list first. */
static void rds__op_free(rds_op_t *op)
{
    base_list_remove(&op->link);
    if (op->kind == RDS_OP_RESTORE)
        rds__restore_release((rds_restore_op_t *)op);
    base_free(op);
}

/* Sends one command for op; counts it in flight when accepted. */
static int rds__send(rds_op_t *op, rds_reply_cb cb, void *ud, int argc, const char *const *argv,
                     const size_t *argvlen)
{
    int rc = rds_conn_command_argv(op->st->cmd, cb, ud, argc, argv, argvlen);
    if (rc == SIO_OK)
        op->inflight++;
    return rc;
}

/* Entry of every reply handler: 1 when op should act on the reply; 0 when it is orphaned
 * or already answered its caller (then it is freed with its last reply). */
static int rds__op_enter(rds_op_t *op)
{
    op->inflight--;
    if (op->st != NULL && !op->done)
        return 1;
    if (op->inflight == 0)
        rds__op_free(op);
    return 0;
}

/* The user callback is about to run. Returns 1 when the caller must free op after the
 * callback (nothing in flight: op is detached so a rds_streams_free from inside the
 * callback cannot free it under our feet), 0 when the last reply will. */
static int rds__op_detach(rds_op_t *op)
{
    op->done = 1;
    if (op->inflight != 0)
        return 0;
    base_list_remove(&op->link);
    return 1;
}

/* Runs op's user callback with err (no result). Touches nothing of op after the callback
 * except to free it when it was detached. */
static void rds__op_fail(rds_op_t *op, int err)
{
    int own = rds__op_detach(op);

    switch (op->kind) {
    case RDS_OP_LOAD:
    case RDS_OP_OPEN:
        ((void (*)(void *, int))op->cb)(op->ud, err);
        break;
    case RDS_OP_PUBLISH:
        ((rds_publish_cb)op->cb)(op->ud, err, NULL);
        break;
    case RDS_OP_RESTORE:
        ((rds_restore_cb)op->cb)(op->ud, err, NULL, NULL, 0);
        break;
    default:
        break;
    }
    if (own)
        rds__op_free(op);
}

/* ------------------------------------------------------------------ life cycle */

rds_streams_t *rds_streams_new(rds_conn_t *cmd, const rds_streams_config_t *cfg)
{
    rds_streams_t *st;

    if (cmd == NULL || cfg == NULL || cfg->window_ms == 0)
        return NULL;
    st = base_calloc(1, sizeof(*st));
    st->cmd = cmd;
    st->prefix = base_strdup(cfg->key_prefix != NULL ? cfg->key_prefix : "sockeye");
    st->window_ms = cfg->window_ms;
    st->retain_ms = cfg->window_ms + cfg->detect_ms + RDS_RETAIN_SLACKS * RDS_SLACK_MS;
    snprintf(st->window_arg, sizeof(st->window_arg), "%" PRIu64, cfg->window_ms);
    snprintf(st->retain_arg, sizeof(st->retain_arg), "%" PRIu64, st->retain_ms);
    st->batch = cfg->batch != 0 ? cfg->batch : RDS_DEFAULT_BATCH;
    st->max_entries = cfg->max_entries != 0 ? cfg->max_entries : RDS_DEFAULT_MAX_ENTRIES;
    st->on_log = cfg->on_log;
    st->log_ud = cfg->log_ud;
    base_list_init(&st->ops);
    return st;
}

/* Orphans every record first, then fails the pending callbacks one by one: a callback may
 * close the connection, whose synchronous SIO_ECLOSED replies then find orphans and free
 * them, never a record this loop still holds. */
void rds_streams_free(rds_streams_t *st)
{
    base_list_t pending, *it, *tmp;

    if (st == NULL)
        return;
    st->closing = 1;
    base_list_init(&pending);
    BASE_LIST_FOREACH_SAFE(it, tmp, &st->ops)
    {
        rds_op_t *op = BASE_CONTAINER_OF(it, rds_op_t, link);
        base_list_remove(&op->link);
        op->st = NULL;
        if (!op->done)
            base_list_push_back(&pending, &op->link);
        else if (op->inflight == 0)
            rds__op_free(op);
    }
    while (!base_list_empty(&pending)) {
        rds_op_t *op = BASE_CONTAINER_OF(pending.next, rds_op_t, link);
        base_list_remove(&op->link);
        rds__op_fail(op, SIO_ECLOSED);
    }
    base_free(st->prefix);
    base_free(st);
}

void rds_streams_get_stats(const rds_streams_t *st, rds_streams_stats_t *out)
{
    if (out == NULL)
        return;
    if (st == NULL)
        memset(out, 0, sizeof(*out));
    else
        *out = st->stats;
}

/* ------------------------------------------------------------------ load */

static void rds__load_reply(rds_conn_t *c, int err, redisReply *r, void *ud)
{
    rds_op_t *op = ud;
    rds_streams_t *st = op->st;

    if (!rds__op_enter(op))
        return;
    if (err == SIO_OK && rds__is_str(r)) {
        rds__slog(st, RDS_LOG_DEBUG, "redis streams: function library '%.*s' loaded", (int)r->len,
                  r->str);
    } else {
        rds__slog(st, RDS_LOG_ERROR, "redis streams: FUNCTION LOAD failed (%s)", rds__why(err, r));
        if (err == SIO_OK)
            err = SIO_EREDIS;
    }
    rds__op_fail(op, err); /* SIO_OK included: the load callback takes err only */
}

/* See rds_streams.h: the bytes of the embedded library, for a node that loads it without
 * a recovery storage (queues). */
const void *rds_library(size_t *len)
{
    *len = sizeof(sockeye_lua);
    return sockeye_lua;
}

/* Sends FUNCTION LOAD REPLACE with the embedded library. The connection's on_up calls it,
 * so commands the caller sends after this call run after the library is (re)loaded:
 * one connection answers in order. SIO_EREDIS when the connection is down. */
int rds_streams_load(rds_streams_t *st, void (*cb)(void *ud, int err), void *ud)
{
    const char *argv[4] = {"FUNCTION", "LOAD", "REPLACE", (const char *)sockeye_lua};
    size_t lens[4] = {8, 4, 7, sizeof(sockeye_lua)};
    rds_op_t *op;
    int rc;

    if (st == NULL || cb == NULL)
        return SIO_EINVAL;
    if (st->closing)
        return SIO_ECLOSED;
    op = rds__op_new(st, sizeof(*op), RDS_OP_LOAD, (void (*)(void))cb, ud);
    rc = rds__send(op, rds__load_reply, op, 4, argv, lens);
    if (rc != SIO_OK)
        rds__op_free(op);
    return rc;
}

/* ------------------------------------------------------------------ publish */

static void rds__publish_reply(rds_conn_t *c, int err, redisReply *r, void *ud)
{
    rds_op_t *op = ud;
    rds_streams_t *st = op->st;
    char offset[RDS_OFFSET_MAX];
    uint64_t ms, seq;
    int own;

    if (!rds__op_enter(op))
        return;
    if (err == SIO_OK && rds__is_str(r) && rds__id_parse(r->str, r->len, &ms, &seq)) {
        memcpy(offset, r->str, r->len);
        offset[r->len] = '\0';
        st->stats.published++;
        if (st->publish_failing) {
            st->publish_failing = 0;
            rds__slog(st, RDS_LOG_INFO, "redis streams: publishing works again");
        }
        own = rds__op_detach(op);
        ((rds_publish_cb)op->cb)(op->ud, SIO_OK, offset);
        if (own)
            rds__op_free(op);
        return;
    }
    st->stats.publish_failed++;
    if (!st->publish_failing) {
        st->publish_failing = 1;
        rds__slog(st, RDS_LOG_WARN, "redis streams: FCALL sockeye_publish failed (%s)",
                  rds__why(err, r));
    }
    rds__op_fail(op, err == SIO_OK ? SIO_EREDIS : err);
}

/* One FCALL sockeye_publish: keys P:{N}:last then the streams (P:{N}:all, or one per room),
 * args retain, channel, message. msg must be the 3-element msgpack array the codec writes
 * (checked here too, so a bad caller fails at the call rather than in Redis). SIO_EINVAL
 * on bad arguments; the connection's error when it refused the command. */
int rds_streams_publish(rds_streams_t *st, const char *nsp, const char *const *rooms,
                        size_t n_rooms, const char *channel, const void *msg, size_t len,
                        rds_publish_cb cb, void *ud)
{
    size_t n_streams = n_rooms > 0 ? n_rooms : 1, argc = 4 + n_streams + 3, i, k = 0;
    const char **argv;
    size_t *lens;
    char **keys, numkeys[24];
    rds_op_t *op;
    int rc;

    if (st == NULL || nsp == NULL || channel == NULL || msg == NULL || len == 0 || cb == NULL ||
        (n_rooms > 0 && rooms == NULL) || ((const unsigned char *)msg)[0] != 0x93 ||
        argc > INT32_MAX)
        return SIO_EINVAL;
    for (i = 0; i < n_rooms; i++)
        if (rooms[i] == NULL)
            return SIO_EINVAL;
    if (st->closing)
        return SIO_ECLOSED;

    keys = base_malloc((n_streams + 1) * sizeof(*keys));
    keys[0] = rds__key(st, nsp, "last", NULL);
    if (n_rooms == 0)
        keys[1] = rds__key(st, nsp, "all", NULL);
    for (i = 0; i < n_rooms; i++)
        keys[1 + i] = rds__key(st, nsp, "r:", rooms[i]);
    snprintf(numkeys, sizeof(numkeys), "%zu", n_streams + 1);

    argv = base_malloc(argc * sizeof(*argv));
    lens = base_malloc(argc * sizeof(*lens));
    argv[k++] = "FCALL";
    argv[k++] = "sockeye_publish";
    argv[k++] = numkeys;
    for (i = 0; i <= n_streams; i++)
        argv[k++] = keys[i];
    argv[k++] = st->retain_arg;
    argv[k++] = channel;
    for (i = 0; i < k; i++)
        lens[i] = strlen(argv[i]);
    argv[k] = msg;
    lens[k++] = len;

    op = rds__op_new(st, sizeof(*op), RDS_OP_PUBLISH, (void (*)(void))cb, ud);
    rc = rds__send(op, rds__publish_reply, op, (int)k, argv, lens);
    if (rc != SIO_OK) {
        rds__op_free(op);
        st->stats.publish_failed++;
    }
    for (i = 0; i <= n_streams; i++)
        base_free(keys[i]);
    base_free(keys);
    base_free(argv);
    base_free(lens);
    return rc;
}

/* ------------------------------------------------------------------ sessions */

static void rds__session_failed(rds_streams_t *st, int kind, int err, const redisReply *r)
{
    st->stats.session_write_failed++;
    if (!st->session_failing) {
        st->session_failing = 1;
        rds__slog(st, RDS_LOG_WARN, "redis streams: %s failed (%s)", rds_op_names[kind],
                  rds__why(err, r));
    }
}

static void rds__session_ok(rds_streams_t *st)
{
    if (st->session_failing) {
        st->session_failing = 0;
        rds__slog(st, RDS_LOG_INFO, "redis streams: session writes work again");
    }
}

/* Replies of open, update, refresh and release. */
static void rds__session_reply(rds_conn_t *c, int err, redisReply *r, void *ud)
{
    rds_op_t *op = ud;
    rds_streams_t *st = op->st;
    int ok;

    if (op->kind != RDS_OP_OPEN) {
        /* no user callback: done from the start; account unless orphaned */
        op->inflight--;
        if (st != NULL) {
            ok = err == SIO_OK && r != NULL && r->type == REDIS_REPLY_INTEGER;
            if (!ok) {
                rds__session_failed(st, op->kind, err, r);
            } else {
                rds__session_ok(st);
                if (op->kind == RDS_OP_UPDATE && r->integer == 1)
                    st->stats.sessions_written++;
                else if (op->kind != RDS_OP_REFRESH && r->integer == 0)
                    rds__slog(st, RDS_LOG_DEBUG,
                              "redis streams: %s skipped: the session is gone or owned by "
                              "another connection",
                              rds_op_names[op->kind]);
            }
        }
        if (op->inflight == 0)
            rds__op_free(op);
        return;
    }
    if (!rds__op_enter(op))
        return;
    ok = err == SIO_OK && rds__is_str(r);
    if (ok) {
        st->stats.sessions_written++;
        rds__session_ok(st);
    } else {
        rds__session_failed(st, op->kind, err, r);
    }
    rds__op_fail(op, ok ? SIO_OK : err == SIO_OK ? SIO_EREDIS : err);
}

static int rds__session_valid(const adp_session_t *s)
{
    if (s == NULL || s->sid == NULL || s->pid == NULL || (s->n_rooms > 0 && s->rooms == NULL))
        return 0;
    for (size_t i = 0; i < s->n_rooms; i++)
        if (s->rooms[i] == NULL)
            return 0;
    return 1;
}

/* A read age as the functions take it: decimal ms, "" when unknown. */
static void rds__age_arg(char buf[24], int has_age, uint64_t age_ms)
{
    if (has_age)
        snprintf(buf, 24, "%" PRIu64, age_ms);
    else
        buf[0] = '\0';
}

/* open and update share keys (session, last offset) and arguments: window, retain, owner,
 * sid, pid, rooms, data, mark, read age, joined. */
static int rds__session_write(rds_streams_t *st, int kind, const char *nsp, const adp_session_t *s,
                              const char *owner, const char *mark, const char *joined, rds_op_t *op)
{
    const char *fn = kind == RDS_OP_OPEN ? "sockeye_session_open" : "sockeye_session_update";
    char *sess = rds__key(st, nsp, "sess:", s->pid);
    char *last = rds__key(st, nsp, "last", NULL);
    char *rooms = rds__rooms_json(s), *data = rds__data_json(s->data);
    const char *argv[15];
    char age[24];
    int k = 0, rc;

    rds__age_arg(age, s->has_read_age, s->read_age_ms);
    argv[k++] = "FCALL";
    argv[k++] = fn;
    argv[k++] = "2";
    argv[k++] = sess;
    argv[k++] = last;
    argv[k++] = st->window_arg;
    argv[k++] = st->retain_arg;
    argv[k++] = owner;
    argv[k++] = s->sid;
    argv[k++] = s->pid;
    argv[k++] = rooms;
    argv[k++] = data;
    argv[k++] = mark != NULL ? mark : "";
    argv[k++] = age;
    argv[k++] = joined != NULL ? joined : "";
    rc = rds__send(op, rds__session_reply, op, k, argv, NULL);
    base_free(sess);
    base_free(last);
    base_free(rooms);
    base_free(data);
    return rc;
}

/* FCALL sockeye_session_open. SIO_EINVAL on bad arguments; the connection's refusal
 * otherwise (then nothing was written and cb never runs). */
int rds_session_open(rds_streams_t *st, const char *nsp, const adp_session_t *s, const char *owner,
                     const char *mark, void (*cb)(void *ud, int err), void *ud)
{
    rds_op_t *op;
    int rc;

    if (st == NULL || nsp == NULL || !rds__session_valid(s) || owner == NULL || cb == NULL)
        return SIO_EINVAL;
    if (st->closing)
        return SIO_ECLOSED;
    op = rds__op_new(st, sizeof(*op), RDS_OP_OPEN, (void (*)(void))cb, ud);
    rc = rds__session_write(st, RDS_OP_OPEN, nsp, s, owner, mark, NULL, op);
    if (rc != SIO_OK) {
        rds__op_free(op);
        rds__session_failed(st, RDS_OP_OPEN, rc, NULL);
    }
    return rc;
}

/* FCALL sockeye_session_update, fire and forget: a stale owner's write is a no-op in
 * Redis. Failures (at the call too) are counted in session_write_failed and logged once
 * per failing period. */
int rds_session_update(rds_streams_t *st, const char *nsp, const adp_session_t *s,
                       const char *owner, const char *joined)
{
    rds_op_t *op;
    int rc;

    if (st == NULL || nsp == NULL || !rds__session_valid(s) || owner == NULL)
        return SIO_EINVAL;
    if (st->closing)
        return SIO_ECLOSED;
    op = rds__op_new(st, sizeof(*op), RDS_OP_UPDATE, NULL, NULL);
    rc = rds__session_write(st, RDS_OP_UPDATE, nsp, s, owner, NULL, joined, op);
    if (rc != SIO_OK) {
        rds__op_free(op);
        rds__session_failed(st, RDS_OP_UPDATE, rc, NULL);
    }
    return rc;
}

/* FCALL sockeye_session_refresh in batches of RDS_REFRESH_BATCH keys (one slot: every key
 * has the namespace's hash tag). Unowned: extending a session another node took over is
 * harmless, that node refreshes it too. Returns the first refusal; batches sent before it
 * still run. */
int rds_session_refresh(rds_streams_t *st, const char *nsp, const rds_refresh_t *items, size_t n)
{
    const char *argv[4 + 2 * RDS_REFRESH_BATCH];
    char *keys[RDS_REFRESH_BATCH], numkeys[16], ages[RDS_REFRESH_BATCH][24];
    size_t i, j, m;
    int rc = SIO_OK;

    if (st == NULL || nsp == NULL || (n > 0 && items == NULL))
        return SIO_EINVAL;
    for (i = 0; i < n; i++)
        if (items[i].pid == NULL)
            return SIO_EINVAL;
    if (st->closing)
        return SIO_ECLOSED;
    for (i = 0; i < n && rc == SIO_OK; i += m) {
        rds_op_t *op = rds__op_new(st, sizeof(*op), RDS_OP_REFRESH, NULL, NULL);
        int k = 0;

        m = n - i < RDS_REFRESH_BATCH ? n - i : RDS_REFRESH_BATCH;
        snprintf(numkeys, sizeof(numkeys), "%zu", m);
        argv[k++] = "FCALL";
        argv[k++] = "sockeye_session_refresh";
        argv[k++] = numkeys;
        for (j = 0; j < m; j++)
            argv[k++] = keys[j] = rds__key(st, nsp, "sess:", items[i + j].pid);
        argv[k++] = st->window_arg;
        for (j = 0; j < m; j++) {
            rds__age_arg(ages[j], items[i + j].has_age, items[i + j].age_ms);
            argv[k++] = ages[j];
        }
        rc = rds__send(op, rds__session_reply, op, k, argv, NULL);
        for (j = 0; j < m; j++)
            base_free(keys[j]);
        if (rc != SIO_OK) {
            rds__op_free(op);
            rds__session_failed(st, RDS_OP_REFRESH, rc, NULL);
        }
    }
    return rc;
}

/* FCALL sockeye_session_release (owner-checked in Redis), fire and forget. */
int rds_session_release(rds_streams_t *st, const char *nsp, const char *pid, const char *owner,
                        int recoverable)
{
    const char *argv[8];
    char *sess;
    rds_op_t *op;
    int rc;

    if (st == NULL || nsp == NULL || pid == NULL || owner == NULL)
        return SIO_EINVAL;
    if (st->closing)
        return SIO_ECLOSED;
    sess = rds__key(st, nsp, "sess:", pid);
    argv[0] = "FCALL";
    argv[1] = "sockeye_session_release";
    argv[2] = "1";
    argv[3] = sess;
    argv[4] = st->window_arg;
    argv[5] = owner;
    argv[6] = recoverable ? "1" : "0";
    op = rds__op_new(st, sizeof(*op), RDS_OP_RELEASE, NULL, NULL);
    rc = rds__send(op, rds__session_reply, op, 7, argv, NULL);
    base_free(sess);
    if (rc != SIO_OK) {
        rds__op_free(op);
        rds__session_failed(st, RDS_OP_RELEASE, rc, NULL);
    }
    return rc;
}

/* ------------------------------------------------------------------ restore */

static void rds__restore_release(rds_restore_op_t *r)
{
    for (size_t i = 0; i < r->n_cur; i++)
        base_free(r->cur[i].key);
    base_free(r->cur);
    for (size_t i = 0; i < r->n_ents; i++) {
        base_free(r->ents[i].id);
        base_free(r->ents[i].msg);
    }
    base_free(r->ents);
    base_map_clear(&r->rooms);
    cJSON_Delete(r->joined);
    adp_session_free(r->s);
    base_free(r->nsp);
}

static void rds__restore_fail(rds_restore_op_t *r, int err, const char *why)
{
    rds_streams_t *st = r->op.st;

    st->stats.restores_failed++;
    rds__slog(st, err == SIO_ENOTFOUND ? RDS_LOG_DEBUG : RDS_LOG_WARN,
              "redis streams: restore in '%s' failed: %s", r->nsp, why);
    rds__op_fail(&r->op, err);
}

static void rds__xrange_reply(rds_conn_t *c, int err, redisReply *reply, void *ud);

/* Sends the next XRANGE of cursor i. */
static int rds__cursor_send(rds_restore_op_t *r, size_t i)
{
    rds_cursor_t *cu = &r->cur[i];
    char count[24];
    const char *argv[6] = {"XRANGE", cu->key, cu->start, "+", "COUNT", count};

    snprintf(count, sizeof(count), "%zu", r->op.st->batch);
    return rds__send(&r->op, rds__xrange_reply, cu, 6, argv, NULL);
}

/* Starts cursors until RDS_RESTORE_PARALLEL are active or none is left. */
static int rds__cursors_fill(rds_restore_op_t *r)
{
    while (r->active < RDS_RESTORE_PARALLEL && r->next_cur < r->n_cur) {
        int rc = rds__cursor_send(r, r->next_cur);
        if (rc != SIO_OK)
            return rc;
        r->next_cur++;
        r->active++;
    }
    return SIO_OK;
}

static int rds__entry_cmp(const void *a, const void *b)
{
    const rds_entry_t *x = a, *y = b;
    if (x->ms != y->ms)
        return x->ms < y->ms ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* 1 when one of the entry's except rooms is a room the session was in when the entry
 * was published (a room joined later, after its join mark, did not exclude it then). */
static int rds__excluded(const rds_restore_op_t *r, const rds_opts_t *o, const rds_entry_t *e)
{
    for (size_t i = 0; i < o->n_except; i++) {
        const cJSON *j;
        uint64_t ms, seq;

        if (!base_map_has(&r->rooms, o->except[i]))
            continue;
        j = cJSON_GetObjectItemCaseSensitive(r->joined, o->except[i]);
        if (!cJSON_IsString(j) ||
            !rds__id_parse(j->valuestring, strlen(j->valuestring), &ms, &seq) ||
            adp_offset_cmp(e->ms, e->seq, ms, seq) > 0)
            return 1;
    }
    return 0;
}

/* Every cursor is done: merge, decode, filter, answer. */
static void rds__restore_finish(rds_restore_op_t *r)
{
    rds_streams_t *st = r->op.st;
    cd_sio_packet_t **out = NULL;
    size_t n_out = 0, bad = 0, i;
    adp_session_t *s;
    int own;

    if (r->n_ents > 0) {
        qsort(r->ents, r->n_ents, sizeof(*r->ents), rds__entry_cmp);
        out = base_malloc(r->n_ents * sizeof(cd_sio_packet_t *));
    }
    for (i = 0; i < r->n_ents; i++) {
        rds_entry_t *e = &r->ents[i];
        rds_broadcast_t b;

        if (i > 0 && e->ms == r->ents[i - 1].ms && e->seq == r->ents[i - 1].seq)
            continue; /* the same broadcast, stored in two of the session's rooms */
        if (rds_decode_broadcast(e->msg, e->len, &b) != SIO_OK) {
            bad++;
            continue;
        }
        if (!rds__excluded(r, &b.opts, e) && !(b.opts.flags & ADP_VOLATILE) &&
            cJSON_IsArray(b.packet->data)) {
            cJSON_AddItemToArray(b.packet->data, cJSON_CreateString(e->id));
            out[n_out++] = b.packet;
            b.packet = NULL;
        }
        rds_broadcast_free(&b);
    }
    if (bad > 0)
        rds__slog(st, RDS_LOG_WARN,
                  "redis streams: restore in '%s' skipped %zu stored entries that do not decode",
                  r->nsp, bad);
    st->stats.restores_ok++;
    st->stats.entries_replayed += n_out;
    s = r->s;
    r->s = NULL;
    s->joined = r->joined; /* the new owner tracks the join marks from here */
    r->joined = NULL;
    own = rds__op_detach(&r->op);
    ((rds_restore_cb)r->op.cb)(r->op.ud, SIO_OK, s, out, n_out);
    base_free(out);
    if (own)
        rds__op_free(&r->op);
}

/* Copies the entries of one XRANGE reply into r. 0 on success, else the error. */
static int rds__take_entries(rds_restore_op_t *r, rds_cursor_t *cu, const redisReply *rep,
                             const char **why)
{
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i], *f;
        rds_entry_t *x;
        uint64_t ms, seq;

        if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            !rds__is_str(e->element[0]) ||
            !rds__id_parse(e->element[0]->str, e->element[0]->len, &ms, &seq)) {
            *why = "malformed XRANGE reply";
            return SIO_EREDIS;
        }
        /* resume after this id whatever the entry holds */
        cu->start[0] = '(';
        memcpy(cu->start + 1, e->element[0]->str, e->element[0]->len);
        cu->start[e->element[0]->len + 1] = '\0';
        f = e->element[1];
        if (f == NULL || f->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t j = 0; j + 1 < f->elements; j += 2) {
            const redisReply *k = f->element[j], *v = f->element[j + 1];
            if (!rds__is_str(k) || k->len != 1 || k->str[0] != 'm' || !rds__is_str(v))
                continue;
            if (r->n_ents >= r->op.st->max_entries ||
                r->bytes + (size_t)v->len > RDS_RESTORE_MAX_BYTES) {
                *why = "too many missed entries (over the per-restore bound)";
                return SIO_ETOOBIG;
            }
            if (r->n_ents == r->cap_ents) {
                r->cap_ents = r->cap_ents ? r->cap_ents * 2 : 64;
                r->ents = base_realloc(r->ents, r->cap_ents * sizeof(*r->ents));
            }
            x = &r->ents[r->n_ents++];
            x->ms = ms;
            x->seq = seq;
            x->id = base_strndup(e->element[0]->str, e->element[0]->len);
            x->msg = base_malloc(v->len > 0 ? v->len : 1);
            memcpy(x->msg, v->str, v->len);
            x->len = v->len;
            r->bytes += v->len;
            break;
        }
    }
    return SIO_OK;
}

static void rds__xrange_reply(rds_conn_t *c, int err, redisReply *rep, void *ud)
{
    rds_cursor_t *cu = ud;
    rds_restore_op_t *r = cu->r;
    const char *why = NULL;
    int rc;

    if (!rds__op_enter(&r->op))
        return;
    if (err != SIO_OK || rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        rds__restore_fail(r, err != SIO_OK ? err : SIO_EREDIS, rds__why(err, rep));
        return;
    }
    rc = rds__take_entries(r, cu, rep, &why);
    if (rc != SIO_OK) {
        rds__restore_fail(r, rc, why);
        return;
    }
    if (rds__mono_ms() - r->t0 > RDS_RESTORE_MAX_MS) {
        rds__restore_fail(r, SIO_ETIMEDOUT, "took longer than its bound");
        return;
    }
    if (rep->elements >= r->op.st->batch) {
        rc = rds__cursor_send(r, (size_t)(cu - r->cur));
    } else {
        r->active--;
        rc = rds__cursors_fill(r);
    }
    if (rc != SIO_OK) {
        rds__restore_fail(r, rc, "the connection refused a command");
        return;
    }
    if (r->active == 0 && r->next_cur == r->n_cur)
        rds__restore_finish(r);
}

/* Builds r->s, r->offset and r->joined from the take's reply {sid, pid, rooms, data,
 * offset, now, joined}; 0 when it is not a usable session. */
static int rds__session_parse(rds_restore_op_t *r, const redisReply *rep)
{
    cJSON *rooms, *data, *it;
    adp_session_t *s;
    uint64_t ms, seq;
    size_t n = 0;

    if (rep->elements != 7)
        return 0;
    for (size_t i = 0; i < 7; i++)
        if (!rds__is_str(rep->element[i]) ||
            memchr(rep->element[i]->str, 0, rep->element[i]->len) != NULL)
            return 0;
    if (!rds__id_parse(rep->element[4]->str, rep->element[4]->len, &ms, &seq))
        return 0;
    r->joined = cJSON_ParseWithLength(rep->element[6]->str, rep->element[6]->len);
    if (!cJSON_IsObject(r->joined))
        return 0; /* released with r */
    rooms = cJSON_ParseWithLength(rep->element[2]->str, rep->element[2]->len);
    if (!cJSON_IsArray(rooms)) {
        cJSON_Delete(rooms);
        return 0;
    }
    cJSON_ArrayForEach(it, rooms)
    {
        if (!cJSON_IsString(it)) {
            cJSON_Delete(rooms);
            return 0;
        }
        n++;
    }
    data = cJSON_ParseWithLength(rep->element[3]->str, rep->element[3]->len);
    if (data == NULL) {
        cJSON_Delete(rooms);
        return 0;
    }
    if (cJSON_IsNull(data)) {
        cJSON_Delete(data);
        data = NULL;
    }
    s = base_calloc(1, sizeof(*s));
    s->sid = base_strndup(rep->element[0]->str, rep->element[0]->len);
    s->pid = base_strndup(rep->element[1]->str, rep->element[1]->len);
    s->rooms = n > 0 ? base_malloc(n * sizeof(*s->rooms)) : NULL;
    cJSON_ArrayForEach(it, rooms)
    {
        s->rooms[s->n_rooms++] = base_strdup(it->valuestring);
    }
    s->data = data;
    cJSON_Delete(rooms);
    r->s = s;
    memcpy(r->offset, rep->element[4]->str, rep->element[4]->len);
    r->offset[rep->element[4]->len] = '\0';
    r->off_ms = ms;
    r->off_seq = seq;
    return 1;
}

/* Where the cursor of room starts (exclusive): the offset, or the room's join mark when
 * the socket joined it later. */
static const char *rds__cursor_from(const rds_restore_op_t *r, const char *room)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(r->joined, room);
    uint64_t ms, seq;
    size_t n;

    if (!cJSON_IsString(j))
        return r->offset;
    n = strlen(j->valuestring);
    if (n < RDS_OFFSET_MAX && rds__id_parse(j->valuestring, n, &ms, &seq) &&
        adp_offset_cmp(ms, seq, r->off_ms, r->off_seq) > 0)
        return j->valuestring;
    return r->offset;
}

/* One cursor per distinct room (own id included) plus the namespace stream. */
static void rds__cursors_build(rds_restore_op_t *r)
{
    rds_streams_t *st = r->op.st;
    adp_session_t *s = r->s;
    size_t i, k = 0;

    base_map_put(&r->rooms, s->sid, r);
    for (i = 0; i < s->n_rooms; i++)
        base_map_put(&r->rooms, s->rooms[i], r);
    r->cur = base_calloc(base_map_size(&r->rooms) + 1, sizeof(*r->cur));
    {
        base_map_iter_t it = {0};
        const char *room;
        void *v;
        while (base_map_next(&r->rooms, &it, &room, &v)) {
            snprintf(r->cur[k].start, sizeof(r->cur[k].start), "(%s", rds__cursor_from(r, room));
            r->cur[k++].key = rds__key(st, r->nsp, "r:", room);
        }
    }
    snprintf(r->cur[k].start, sizeof(r->cur[k].start), "(%s", r->offset);
    r->cur[k++].key = rds__key(st, r->nsp, "all", NULL);
    r->n_cur = k;
    for (i = 0; i < k; i++)
        r->cur[i].r = r;
}

static void rds__take_reply(rds_conn_t *c, int err, redisReply *rep, void *ud)
{
    rds_restore_op_t *r = ud;
    static const char *const refusals[] = {
        "no such session", "malformed offset", "offset never given out in this namespace",
        "its client was not heard from for longer than entries are kept"};
    int rc;

    if (!rds__op_enter(&r->op))
        return;
    if (err != SIO_OK || rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        rds__restore_fail(r, err != SIO_OK ? err : SIO_EREDIS, rds__why(err, rep));
        return;
    }
    if (rep->type == REDIS_REPLY_INTEGER) {
        long long code = rep->integer;
        rds__restore_fail(r, SIO_ENOTFOUND,
                          code <= 0 && code >= -3 ? refusals[-code] : "refused by Redis");
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || !rds__session_parse(r, rep)) {
        rds__restore_fail(r, SIO_ENOTFOUND, "the stored session is malformed");
        return;
    }
    rds__cursors_build(r);
    rc = rds__cursors_fill(r);
    if (rc != SIO_OK)
        rds__restore_fail(r, rc, "the connection refused a command");
}

/* FCALL sockeye_session_take, then the XRANGE cursors (see the top of the file). A
 * malformed offset is refused at the call with SIO_ENOTFOUND (no round trip, nothing taken,
 * cb never runs), as are bad arguments (SIO_EINVAL) and a connection that is down. */
int rds_streams_restore(rds_streams_t *st, const char *nsp, const char *pid, const char *offset,
                        const char *owner, rds_restore_cb cb, void *ud)
{
    const char *argv[9];
    rds_restore_op_t *r;
    uint64_t ms, seq;
    char *sess, *last;
    int rc;

    if (st == NULL || nsp == NULL || pid == NULL || owner == NULL || cb == NULL)
        return SIO_EINVAL;
    if (st->closing)
        return SIO_ECLOSED;
    if (offset != NULL && !rds__id_parse(offset, strlen(offset), &ms, &seq)) {
        st->stats.restores_failed++;
        return SIO_ENOTFOUND;
    }
    r = (rds_restore_op_t *)rds__op_new(st, sizeof(*r), RDS_OP_RESTORE, (void (*)(void))cb, ud);
    r->nsp = base_strdup(nsp);
    base_map_init(&r->rooms);
    r->t0 = rds__mono_ms();
    sess = rds__key(st, nsp, "sess:", pid);
    last = rds__key(st, nsp, "last", NULL);
    argv[0] = "FCALL";
    argv[1] = "sockeye_session_take";
    argv[2] = "2";
    argv[3] = sess;
    argv[4] = last;
    argv[5] = st->window_arg;
    argv[6] = owner;
    argv[7] = offset != NULL ? offset : "";
    argv[8] = st->retain_arg;
    rc = rds__send(&r->op, rds__take_reply, r, 9, argv, NULL);
    base_free(sess);
    base_free(last);
    if (rc != SIO_OK) {
        rds__op_free(&r->op);
        st->stats.restores_failed++;
    }
    return rc;
}
