/* rds_queue.c -- the queue store of a Redis node (rds_queue.h, adp_queue.h): the C half of
 * the sockeye_q* functions of adapter/redis/sockeye.lua.
 *
 * Cost model (issue 10 asks for >= 40k messages/s push -> take -> ack through one node):
 *  - a push is XADD and PUBLISH, pipelined by hiredis with every other command, not an
 *    FCALL: measured at 10k msgs/s, sockeye_qpush cost Redis 17.8 us per call (its Lua
 *    entry and five redis.call()s), the two plain commands under 2 us. The bounds are
 *    applied by the trim pass instead (sockeye_qtrim, exact and counted) within trim_ms of
 *    a push: a queue can pass max_length by what is pushed in that time, never for
 *    longer. Backends and sockeye-ctl still call sockeye_qpush (bounds at once). The index
 *    P:queues is written at most once a second per queue;
 *  - a take is one FCALL for many consumers and many messages (the engine coalesces);
 *  - acks are collected and sent as one XACK per (queue, group) per loop turn, from an
 *    idle handle that runs only while something waits;
 *  - nothing runs per consumer while idle: a watched group costs a subscription to its
 *    queue's ready channel (shared by the queue's groups), a sweep every half of its
 *    min-idle, and the queue a trim every few seconds while this node acknowledged in it;
 *    a queue no consumer of this node watches is never read.
 *
 * Life cycle: every command in flight carries an operation record (rds_qop_t) on
 * qs->ops. destroy detaches them (their replies are dropped: rds_conn answers each exactly
 * once, with SIO_ECLOSED at the latest when the node closes), owes each user callback an
 * SIO_ECLOSED, closes its two handles and, from the last close callback, pays what it owes
 * and frees the store. A store destroyed inside one of its callbacks stays allocated until
 * then, so the callback's caller may still look at qs->closing.
 */
#include "rds_queue.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base_alloc.h"
#include "base_clock.h"
#include "base_list.h"
#include "base_map.h"
#include "cd_msgpack.h"
#include "rds_private.h"

#define RDS_Q_MARGIN_MS 5000  /* sweep min-idle = ack timeout + this (engine's release lag) */
#define RDS_Q_TRIM_MS 2000    /* retention pass per watched queue while acks flow */
#define RDS_Q_INDEX_MS 1000   /* P:queues written at most this often per queue */
#define RDS_Q_LOG_MS 5000     /* at most one line per kind of trouble this often */
#define RDS_Q_NAMES_MAX 4096  /* queue names cached before the cache starts over */
#define RDS_Q_MIN_PERIOD 50   /* ms: shortest sweep period */
#define RDS_Q_ID_MAX 48       /* "<20 digits>-<20 digits>" + NUL */
#define RDS_Q_TRIM_BATCH 1000 /* entries one sockeye_qtrim drops by the bounds at most (Q_TRIM_BATCH) */

typedef struct rds_qs rds_qs_t;

/* The Redis names of one queue (see REDIS.md "Queues"): one per queue used, cached. */
typedef struct rds_qnames {
    char *stream;     /* P:{q:T}:Q, T = Q without trailing ".dead"s */
    char *registry;   /* P:{q:T}:Q:c */
    char *channel;    /* P:{q:T}:Q:ready */
    char *dead;       /* P:{q:T}:Q.dead */
    char *dchannel;   /* P:{q:T}:Q.dead:ready */
    uint64_t indexed; /* uv_now of this node's last ZADD P:queues for Q (0: never) */
} rds_qnames_t;

typedef struct rds_qq rds_qq_t;

/* One per (queue, group) watched on this node. */
typedef struct rds_qgroup {
    base_list_t link; /* in q->groups */
    base_list_t rlink; /* in qs->ready while a ready() is due */
    rds_qq_t *q;
    char *group;
    unsigned watches;    /* watch calls not yet unwatched */
    int ready_due;       /* in qs->ready */
    uint64_t next_sweep; /* uv_now */
} rds_qgroup_t;

/* One per queue with a watched group: its subscription and its retention pass. */
struct rds_qq {
    rds_qs_t *qs;
    char *queue;
    rds_qnames_t *n;  /* owned (not the cache's) */
    base_list_t groups;
    uint64_t next_trim; /* uv_now */
    int acked;          /* this node acknowledged or pushed in it since the last trim */
};

/* Acks of one (queue, group) collected during a loop turn. */
typedef struct rds_qacks {
    char *queue, *group;
    char **ids;
    size_t n, cap;
} rds_qacks_t;

enum { RDS_QOP_PUSH, RDS_QOP_TAKE, RDS_QOP_ADOPT, RDS_QOP_TRIM, RDS_QOP_GROUP, RDS_QOP_OTHER };

/* One per command in flight. */
typedef struct rds_qop {
    base_list_t link; /* in qs->ops */
    rds_qs_t *qs;     /* NULL once the store is destroyed: the reply is dropped */
    int kind;
    adp_qpush_cb push_cb; /* RDS_QOP_PUSH */
    adp_qtake_cb take_cb; /* RDS_QOP_TAKE, RDS_QOP_ADOPT */
    void *ud;
    char *queue; /* owned: the index, logs, stats */
    size_t n_cons; /* TAKE: consumers asked, bounds the indexes of the reply */
} rds_qop_t;

/* An SIO_ECLOSED owed by destroy, paid from the loop. */
typedef struct rds_qnotice {
    adp_qpush_cb push_cb;
    adp_qtake_cb take_cb;
    void *ud;
} rds_qnotice_t;

/* The store; one per node that has queues. */
struct rds_qs {
    adp_qstore_t base;
    rds_node_t *r;
    uint64_t margin_ms, trim_ms;
    base_map_t queues; /* queue -> rds_qq_t*: watched */
    base_map_t names;  /* queue -> rds_qnames_t*: cache of the others */
    base_map_t acks;   /* "queue\ngroup" -> rds_qacks_t* */
    base_map_t dirty;  /* queue -> NULL: pushed here, not watched, not trimmed since */
    uint64_t dirty_at; /* uv_now when the dirty queues are trimmed (0: none) */
    base_list_t ops;   /* rds_qop_t */
    base_list_t ready; /* rds_qgroup_t.rlink */
    uv_timer_t timer;  /* sweeps and trims, armed at the earliest due */
    uv_idle_t idle;    /* acks and ready() of this loop turn */
    int idle_on, timer_at_set;
    uint64_t timer_at;
    adp_qstats_t stats;
    int closing, handles;
    rds_qnotice_t *owed;
    size_t n_owed;
    /* rate limits of the log (uv_now of the last line, what happened since) */
    uint64_t trim_logged_at, err_logged_at;
    uint64_t trim_unlogged, trim_unread_unlogged, err_unlogged;
};

/* ---------------------------------------------------------------- helpers */

static void rds__qlog(rds_qs_t *qs, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rds__qlog(rds_qs_t *qs, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (qs->base.ev.log != NULL)
        qs->base.ev.log(qs->base.ev.ud, level, line);
    else
        rds__log(qs->r, level, "%s", line);
}

/* A Redis error or a lost command: logged at most once per RDS_Q_LOG_MS, with a count. */
static void rds__qtrouble(rds_qs_t *qs, const char *what, const char *queue, int err,
                          const redisReply *reply)
{
    uint64_t now = uv_now(qs->r->loop);

    qs->err_unlogged++;
    if (qs->err_logged_at != 0 && now - qs->err_logged_at < RDS_Q_LOG_MS)
        return;
    rds__qlog(qs, RDS_LOG_WARN, "redis queues: %s of queue '%s' failed (%s)%s", what, queue,
              reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str : sio_strerror(err),
              qs->err_unlogged > 1 ? "; more failures since the last line" : "");
    qs->err_logged_at = now;
    qs->err_unlogged = 0;
}

/* Messages dropped by the bounds: counted, and logged at most once per RDS_Q_LOG_MS (the
 * first at once) with what was dropped since the last line. */
static void rds__qtrimmed(rds_qs_t *qs, const char *queue, uint64_t n, uint64_t unread)
{
    uint64_t now = uv_now(qs->r->loop);

    if (n == 0)
        return;
    qs->stats.trimmed += n;
    qs->stats.trimmed_unread += unread;
    qs->trim_unlogged += n;
    qs->trim_unread_unlogged += unread;
    if (qs->trim_logged_at != 0 && now - qs->trim_logged_at < RDS_Q_LOG_MS)
        return;
    rds__qlog(qs, qs->trim_unread_unlogged > 0 ? RDS_LOG_WARN : RDS_LOG_INFO,
              "redis queues: %" PRIu64 " message(s) dropped by the bounds (max_length %" PRIu64
              ", max_age_ms %" PRIu64 "; last in queue '%s'), %" PRIu64
              " of them not acknowledged by every group",
              qs->trim_unlogged, qs->base.cfg.max_length, qs->base.cfg.max_age_ms, queue,
              qs->trim_unread_unlogged);
    qs->trim_logged_at = now;
    qs->trim_unlogged = 0;
    qs->trim_unread_unlogged = 0;
}

static char *rds__qfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *rds__qfmt(const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = base_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* The names of queue: T (the hash tag) is queue without its trailing ".dead"s, so that a
 * queue and its dead-letter queue share a Redis Cluster slot. */
static rds_qnames_t *rds__qnames_new(const char *prefix, const char *queue)
{
    size_t sl = sizeof(ADP_Q_DEAD_SUFFIX) - 1, t = strlen(queue);
    rds_qnames_t *n = base_calloc(1, sizeof(*n));

    while (t > sl && memcmp(queue + t - sl, ADP_Q_DEAD_SUFFIX, sl) == 0)
        t -= sl;
    n->stream = rds__qfmt("%s:{q:%.*s}:%s", prefix, (int)t, queue, queue);
    n->registry = rds__qfmt("%s:c", n->stream);
    n->channel = rds__qfmt("%s:ready", n->stream);
    n->dead = rds__qfmt("%s" ADP_Q_DEAD_SUFFIX, n->stream);
    n->dchannel = rds__qfmt("%s:ready", n->dead);
    return n;
}

static void rds__qnames_free(rds_qnames_t *n)
{
    if (n == NULL)
        return;
    base_free(n->stream);
    base_free(n->registry);
    base_free(n->channel);
    base_free(n->dead);
    base_free(n->dchannel);
    base_free(n);
}

static void rds__qnames_clear(base_map_t *m)
{
    base_map_iter_t it = {0};
    void *v;

    while (base_map_next(m, &it, NULL, &v))
        rds__qnames_free(v);
    base_map_clear(m);
}

/* The names of queue: its watch's, else the cache's (bounded: it starts over when full). */
static rds_qnames_t *rds__qnames(rds_qs_t *qs, const char *queue)
{
    rds_qq_t *q = base_map_get(&qs->queues, queue);
    rds_qnames_t *n;

    if (q != NULL)
        return q->n;
    n = base_map_get(&qs->names, queue);
    if (n != NULL)
        return n;
    if (base_map_size(&qs->names) >= RDS_Q_NAMES_MAX)
        rds__qnames_clear(&qs->names);
    n = rds__qnames_new(qs->r->key_prefix, queue);
    base_map_put(&qs->names, queue, n);
    return n;
}

/* ---------------------------------------------------------------- commands */

static void rds__qreply(rds_conn_t *c, int err, redisReply *reply, void *ud);
static void rds__qtrim(rds_qs_t *qs, const char *queue, const rds_qnames_t *n);

static rds_qop_t *rds__qop_new(rds_qs_t *qs, int kind, const char *queue)
{
    rds_qop_t *op = base_calloc(1, sizeof(*op));

    op->qs = qs;
    op->kind = kind;
    op->queue = base_strdup(queue);
    base_list_push_back(&qs->ops, &op->link);
    return op;
}

static void rds__qop_free(rds_qop_t *op)
{
    if (op->qs != NULL)
        base_list_remove(&op->link);
    base_free(op->queue);
    base_free(op);
}

/* Sends a command for op (freed here when refused). SIO_OK, else SIO_EREDIS: Redis
 * unreachable (down, or the node's connections are closed). */
static int rds__qsend(rds_qs_t *qs, rds_qop_t *op, int argc, const char *const *argv,
                      const size_t *lens)
{
    int rc = rds__cmd(qs->r, rds__qreply, op, argc, argv, lens);

    if (rc != SIO_OK) {
        rds__qop_free(op);
        return SIO_EREDIS;
    }
    return SIO_OK;
}

/* A fire-and-forget command of queue: failures are logged (rate-limited). */
static void rds__qsend_other(rds_qs_t *qs, const char *queue, int argc, const char *const *argv,
                             const size_t *lens)
{
    if (rds__qsend(qs, rds__qop_new(qs, RDS_QOP_OTHER, queue), argc, argv, lens) != SIO_OK)
        rds__qtrouble(qs, argv[0][0] == 'F' ? argv[1] : argv[0], queue, SIO_EREDIS, NULL);
}

/* ZADD P:queues GT now queue, at most once per RDS_Q_INDEX_MS per queue: the index of
 * queues for operators (a separate command: never in an FCALL with a queue's keys, so that
 * every FCALL touches one hash slot). */
static void rds__qindex(rds_qs_t *qs, const char *queue)
{
    rds_qnames_t *n = rds__qnames(qs, queue);
    uint64_t now = uv_now(qs->r->loop);
    char key[256], score[24];

    if (n->indexed != 0 && now - n->indexed < RDS_Q_INDEX_MS)
        return;
    n->indexed = now;
    snprintf(key, sizeof(key), "%s:queues", qs->r->key_prefix);
    snprintf(score, sizeof(score), "%" PRIu64, base_now_ms());
    const char *argv[5] = {"ZADD", key, "GT", score, queue};
    rds__qsend_other(qs, queue, 5, argv, NULL);
}

static uint64_t rds__qint(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer > 0 ? (uint64_t)r->integer : 0;
    if (r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10);
    return 0;
}

static int rds__qis_str(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* One handed-out message from its stored field: 'j' JSON text, 'm' msgpack whose bin
 * values are the buffers; anything else (or undecodable) is handed out as null, logged. */
static adp_qmsg_t *rds__qmsg(rds_qs_t *qs, const char *queue, const redisReply *id,
                             uint64_t deliveries, const redisReply *field,
                             const redisReply *value)
{
    adp_qmsg_t *m = base_calloc(1, sizeof(*m));
    const char *f = rds__qis_str(field) ? field->str : "";
    int ok = 0;

    m->id = base_strndup(id->str, id->len);
    m->deliveries = deliveries;
    if (strcmp(f, "j") == 0 && rds__qis_str(value)) {
        m->payload = cJSON_ParseWithLength(value->str, value->len);
        ok = m->payload != NULL;
    } else if (strcmp(f, "m") == 0 && rds__qis_str(value)) {
        cd_mp_bins_t bins = {0};
        if (cd_mp_decode(value->str, value->len, &bins, &m->payload) == SIO_OK &&
            cd_mp_take_bins(m->payload, &bins, &m->bins, &m->n_bins) == SIO_OK) {
            ok = 1;
        } else {
            cJSON_Delete(m->payload);
            m->payload = NULL;
        }
        cd_mp_bins_free(&bins);
    }
    if (!ok) {
        m->payload = cJSON_CreateNull();
        rds__qlog(qs, RDS_LOG_WARN,
                  "redis queues: message %s of queue '%s' has no readable payload ('j' JSON "
                  "text or 'm' msgpack): handed out as null",
                  m->id, queue);
    }
    return m;
}

/* The reply of sockeye_qtake / sockeye_qadopt: {dead, trimmed, unread, then (index, id,
 * deliveries, field, value) per message}, into the callback's arrays. */
static void rds__qtaken(rds_qs_t *qs, rds_qop_t *op, int err, const redisReply *r)
{
    adp_qmsg_t **msgs = NULL;
    size_t *to = NULL, n = 0;

    if (err == SIO_OK && (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
                          (r->elements - 3) % 5 != 0)) {
        rds__qtrouble(qs, op->kind == RDS_QOP_TAKE ? "take" : "adopt", op->queue, SIO_EREDIS,
                      r);
        err = SIO_EREDIS;
    }
    if (err == SIO_OK) {
        uint64_t dead = rds__qint(r->element[0]);
        size_t cap = (r->elements - 3) / 5;
        qs->stats.dead_lettered += dead;
        rds__qtrimmed(qs, op->queue, rds__qint(r->element[1]), rds__qint(r->element[2]));
        if (dead > 0) {
            char *dq = rds__qfmt("%s" ADP_Q_DEAD_SUFFIX, op->queue);
            rds__qindex(qs, dq);
            base_free(dq);
        }
        msgs = base_malloc((cap ? cap : 1) * sizeof(*msgs));
        to = base_malloc((cap ? cap : 1) * sizeof(*to));
        for (size_t i = 0; i < cap; i++) {
            redisReply **e = r->element + 3 + 5 * i;
            uint64_t idx = rds__qint(e[0]), dl = rds__qint(e[2]);
            if (!rds__qis_str(e[1]) || idx >= op->n_cons)
                continue; /* cannot happen with our function; never index out of to[] */
            msgs[n] = rds__qmsg(qs, op->queue, e[1], dl, e[3], e[4]);
            to[n++] = (size_t)idx;
            qs->stats.delivered++;
            if (dl > 1)
                qs->stats.redelivered++;
        }
    }
    op->take_cb(op->ud, err, msgs, to, n);
    base_free(msgs);
    base_free(to);
}

/* Every reply of the store's commands. A detached op (the store is gone) is dropped: its
 * user callback got SIO_ECLOSED from destroy. The op leaves qs->ops before any user
 * callback runs, so a destroy from that callback does not see it. */
static void rds__qreply(rds_conn_t *c, int err, redisReply *reply, void *ud)
{
    rds_qop_t *op = ud;
    rds_qs_t *qs = op->qs;

    if (qs == NULL) {
        rds__qop_free(op);
        return;
    }
    base_list_remove(&op->link);
    op->qs = NULL;
    if (err != SIO_OK)
        err = SIO_EREDIS; /* lost, timed out (the step may have run: at least once) */
    switch (op->kind) {
    case RDS_QOP_PUSH:
        if (err == SIO_OK && (reply == NULL || reply->type != REDIS_REPLY_STRING)) {
            rds__qtrouble(qs, "push", op->queue, SIO_EREDIS, reply);
            err = SIO_EREDIS;
        }
        if (err == SIO_OK) {
            qs->stats.pushed++;
            op->push_cb(op->ud, SIO_OK, reply->str); /* XADD's id */
        } else {
            op->push_cb(op->ud, err, NULL);
        }
        break;
    case RDS_QOP_TAKE:
    case RDS_QOP_ADOPT:
        rds__qtaken(qs, op, err, reply);
        break;
    case RDS_QOP_TRIM:
        if (err == SIO_OK && reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
            reply->elements == 3) {
            uint64_t n = rds__qint(reply->element[1]);
            rds__qtrimmed(qs, op->queue, n, rds__qint(reply->element[2]));
            /* a full batch: the queue may still be over its bounds (pushes outran the
             * pass); another call now, each one short so Redis serves others between */
            if (n >= RDS_Q_TRIM_BATCH && !qs->closing)
                rds__qtrim(qs, op->queue, rds__qnames(qs, op->queue));
        } else
            rds__qtrouble(qs, "trim", op->queue, err, reply);
        break;
    case RDS_QOP_GROUP: /* the group exists already: what a second node finds */
        if (err == SIO_OK && reply != NULL && reply->type == REDIS_REPLY_ERROR &&
            strncmp(reply->str, "BUSYGROUP", 9) == 0)
            break;
        /* FALLTHROUGH */
    default:
        if (err != SIO_OK || (reply != NULL && reply->type == REDIS_REPLY_ERROR))
            rds__qtrouble(qs, "a command", op->queue, err, reply);
        break;
    }
    rds__qop_free(op);
}

/* ---------------------------------------------------------------- the loop turn */

static void rds__qidle_cb(uv_idle_t *h);

static void rds__qkick(rds_qs_t *qs)
{
    if (qs->idle_on || qs->closing)
        return;
    qs->idle_on = 1;
    uv_idle_start(&qs->idle, rds__qidle_cb);
}

static void rds__qacks_free(rds_qacks_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        base_free(b->ids[i]);
    base_free(b->ids);
    base_free(b->queue);
    base_free(b->group);
    base_free(b);
}

/* One XACK per (queue, group) of what was acknowledged since the last flush. Acks that
 * cannot be sent are lost (logged): those messages come back by release or sweep. */
static void rds__qflush_acks(rds_qs_t *qs)
{
    base_map_iter_t it = {0};
    void *v;

    while (base_map_next(&qs->acks, &it, NULL, &v)) {
        rds_qacks_t *b = v;
        rds_qnames_t *n = rds__qnames(qs, b->queue);
        rds_qq_t *q = base_map_get(&qs->queues, b->queue);
        const char **argv = base_malloc((b->n + 3) * sizeof(*argv));
        argv[0] = "XACK";
        argv[1] = n->stream;
        argv[2] = b->group;
        for (size_t i = 0; i < b->n; i++)
            argv[3 + i] = b->ids[i];
        if (rds__qsend(qs, rds__qop_new(qs, RDS_QOP_OTHER, b->queue), (int)(b->n + 3), argv,
                       NULL) == SIO_OK) {
            qs->stats.acknowledged += b->n;
            if (q != NULL)
                q->acked = 1;
        } else {
            rds__qtrouble(qs, "ack", b->queue, SIO_EREDIS, NULL);
        }
        base_free(argv);
        rds__qacks_free(b);
    }
    base_map_clear(&qs->acks);
}

/* Runs while something waits: the ready() calls due, then the acks. */
static void rds__qidle_cb(uv_idle_t *h)
{
    rds_qs_t *qs = h->data;

    while (!qs->closing && !base_list_empty(&qs->ready)) {
        rds_qgroup_t *g = BASE_CONTAINER_OF(qs->ready.next, rds_qgroup_t, rlink);
        base_list_remove(&g->rlink);
        g->ready_due = 0;
        if (qs->base.ev.ready != NULL)
            qs->base.ev.ready(qs->base.ev.ud, g->q->queue, g->group); /* may unwatch/destroy */
    }
    if (qs->closing)
        return;
    rds__qflush_acks(qs);
    if (base_list_empty(&qs->ready) && base_map_size(&qs->acks) == 0) {
        uv_idle_stop(&qs->idle);
        qs->idle_on = 0;
    }
}

/* Messages may wait for every watched group of q: one ready() each, this loop turn. */
static void rds__qready_all(rds_qq_t *q)
{
    base_list_t *it;

    for (it = q->groups.next; it != &q->groups; it = it->next) {
        rds_qgroup_t *g = BASE_CONTAINER_OF(it, rds_qgroup_t, link);
        if (!g->ready_due) {
            g->ready_due = 1;
            base_list_push_back(&q->qs->ready, &g->rlink);
        }
    }
    rds__qkick(q->qs);
}

/* The queue's ready channel: a push, a release or a sweep (any node, any worker calling
 * the functions); and every (re)subscription, after which what was pushed while the
 * subscriber was down may be waiting. */
static void rds__qon_channel(rds_conn_t *c, const rds_message_t *m, void *ud)
{
    rds__qready_all(ud);
}

/* ---------------------------------------------------------------- sweeps and trims */

static uint64_t rds__qsweep_idle(const rds_qs_t *qs)
{
    return qs->base.cfg.ack_timeout_ms + qs->margin_ms;
}

static uint64_t rds__qsweep_period(const rds_qs_t *qs)
{
    uint64_t p = rds__qsweep_idle(qs) / 2;
    return p < RDS_Q_MIN_PERIOD ? RDS_Q_MIN_PERIOD : p;
}

static void rds__qsweep(rds_qs_t *qs, rds_qgroup_t *g)
{
    char idle[24];

    snprintf(idle, sizeof(idle), "%" PRIu64, rds__qsweep_idle(qs));
    const char *argv[7] = {"FCALL", "sockeye_qsweep", "1", g->q->n->stream,
                           g->q->n->channel, g->group, idle};
    rds__qsend_other(qs, g->q->queue, 7, argv, NULL);
}

static void rds__qtrim(rds_qs_t *qs, const char *queue, const rds_qnames_t *n)
{
    char len[24], age[24];

    snprintf(len, sizeof(len), "%" PRIu64, qs->base.cfg.max_length);
    snprintf(age, sizeof(age), "%" PRIu64, qs->base.cfg.max_age_ms);
    const char *argv[6] = {"FCALL", "sockeye_qtrim", "1", n->stream, len, age};
    rds__qsend(qs, rds__qop_new(qs, RDS_QOP_TRIM, queue), 6, argv, NULL);
}

static void rds__qtimer_cb(uv_timer_t *t);

/* Arms the timer at the earliest sweep or trim due (the one timer of the store). */
static void rds__qarm(rds_qs_t *qs)
{
    base_map_iter_t it = {0};
    void *v;
    uint64_t at = qs->dirty_at != 0 ? qs->dirty_at : UINT64_MAX, now = uv_now(qs->r->loop);

    while (base_map_next(&qs->queues, &it, NULL, &v)) {
        rds_qq_t *q = v;
        if (q->next_trim < at)
            at = q->next_trim;
        for (base_list_t *li = q->groups.next; li != &q->groups; li = li->next) {
            rds_qgroup_t *g = BASE_CONTAINER_OF(li, rds_qgroup_t, link);
            if (g->next_sweep < at)
                at = g->next_sweep;
        }
    }
    if (at == UINT64_MAX) {
        uv_timer_stop(&qs->timer);
        qs->timer_at_set = 0;
        return;
    }
    if (qs->timer_at_set && qs->timer_at == at)
        return;
    qs->timer_at = at;
    qs->timer_at_set = 1;
    uv_timer_start(&qs->timer, rds__qtimer_cb, at > now ? at - now : 0, 0);
}

static void rds__qtimer_cb(uv_timer_t *t)
{
    rds_qs_t *qs = t->data;
    base_map_iter_t it = {0};
    void *v;
    uint64_t now = uv_now(qs->r->loop);

    qs->timer_at_set = 0;
    if (qs->dirty_at != 0 && qs->dirty_at <= now) {
        const char *queue;
        while (base_map_next(&qs->dirty, &it, &queue, NULL))
            rds__qtrim(qs, queue, rds__qnames(qs, queue));
        base_map_clear(&qs->dirty);
        qs->dirty_at = 0;
        it.pos = 0;
    }
    while (base_map_next(&qs->queues, &it, NULL, &v)) {
        rds_qq_t *q = v;
        if (q->next_trim <= now) {
            if (q->acked || qs->base.cfg.max_age_ms > 0)
                rds__qtrim(qs, q->queue, q->n);
            q->acked = 0;
            q->next_trim = now + qs->trim_ms;
        }
        for (base_list_t *li = q->groups.next; li != &q->groups; li = li->next) {
            rds_qgroup_t *g = BASE_CONTAINER_OF(li, rds_qgroup_t, link);
            if (g->next_sweep <= now) {
                rds__qsweep(qs, g);
                g->next_sweep = now + rds__qsweep_period(qs);
            }
        }
    }
    rds__qarm(qs);
}

/* ---------------------------------------------------------------- the vtable */

/* Both names valid. A NULL group is refused like any bad name: it used to mean "no group"
 * (push), which let watch, take, adopt, release... through with a NULL group, to crash
 * in base_strdup or the command's argv (tests/unit/test_rds_queue.c, bad names). */
/* A push to queue: its bounds are applied by a trim pass within trim_ms (rds__qtimer_cb):
 * the watched queue's own pass, or, for a queue only pushed to here, one pass over every
 * queue pushed to since the last one. */
static void rds__qdirty(rds_qs_t *qs, const char *queue)
{
    rds_qq_t *q = base_map_get(&qs->queues, queue);

    if (q != NULL) {
        q->acked = 1;
        return;
    }
    if (base_map_get(&qs->dirty, queue) != NULL)
        return;
    base_map_put(&qs->dirty, queue, (void *)1); /* a set: the value only says "present" */
    if (qs->dirty_at == 0) {
        qs->dirty_at = uv_now(qs->r->loop) + qs->trim_ms;
        rds__qarm(qs);
    }
}

static int rds__qnames_ok(const char *queue, const char *group)
{
    return adp_qname_ok(queue) && adp_qname_ok(group);
}

/* See adp_queue.h. The payload is stored as JSON text ('j') when it has no buffer, else as
 * msgpack with the buffers as bin values ('m'); max_payload bounds that value. */
static int rds__qpush(adp_qstore_t *base, const char *queue, const cJSON *payload,
                      const sio_bin_t *bins, size_t n_bins, adp_qpush_cb cb, void *ud)
{
    rds_qs_t *qs = (rds_qs_t *)base;
    sio_bin_t val = {0};
    char *text = NULL;
    int rc;

    if (qs->closing)
        return SIO_ECLOSED;
    /* buffers announced without their array: cd_mp_encode would read bins[num] for the
     * first placeholder (the memory store refuses this too) */
    if (!adp_qname_ok(queue) || payload == NULL || cb == NULL || (n_bins > 0 && bins == NULL))
        return SIO_EINVAL;
    if (n_bins == 0) {
        text = cJSON_PrintUnformatted(payload);
        if (text == NULL)
            return SIO_EINVAL;
        val.data = (unsigned char *)text;
        val.len = strlen(text);
    } else if ((rc = cd_mp_encode(payload, bins, n_bins, &val)) != SIO_OK) {
        return rc;
    }
    if (base->cfg.max_payload > 0 && val.len > base->cfg.max_payload) {
        rc = SIO_ETOOBIG;
    } else {
        rds_qnames_t *n = rds__qnames(qs, queue);
        const char *argv[5] = {"XADD", n->stream, "*", text != NULL ? "j" : "m",
                               (const char *)val.data};
        size_t lens[5] = {4, strlen(n->stream), 1, 1, val.len};
        rds_qop_t *op = rds__qop_new(qs, RDS_QOP_PUSH, queue);
        op->push_cb = cb;
        op->ud = ud;
        rc = rds__qsend(qs, op, 5, argv, lens);
        if (rc == SIO_OK) {
            /* the watchers' wake-up, after the XADD on the same connection */
            const char *pub[3] = {"PUBLISH", n->channel, ""};
            rds__qsend_other(qs, queue, 3, pub, NULL);
            rds__qindex(qs, queue);
            rds__qdirty(qs, queue);
        }
    }
    if (text != NULL)
        cJSON_free(text);
    else
        base_free(val.data);
    return rc;
}

/* See adp_queue.h. The group is created at once (XGROUP CREATE at 0: the oldest message
 * the queue keeps); when Redis is down meanwhile, the first take creates it. */
static int rds__qwatch(adp_qstore_t *base, const char *queue, const char *group)
{
    rds_qs_t *qs = (rds_qs_t *)base;
    rds_node_t *r = qs->r;
    rds_qq_t *q;
    rds_qgroup_t *g = NULL;
    base_list_t *it;
    uint64_t now = uv_now(r->loop);

    if (qs->closing)
        return SIO_ECLOSED;
    if (!rds__qnames_ok(queue, group))
        return SIO_EINVAL;
    if (r->closed)
        return SIO_EREDIS;
    q = base_map_get(&qs->queues, queue);
    if (q == NULL) {
        q = base_calloc(1, sizeof(*q));
        q->qs = qs;
        q->queue = base_strdup(queue);
        q->n = rds__qnames_new(r->key_prefix, queue);
        base_list_init(&q->groups);
        q->next_trim = now + qs->trim_ms;
        base_map_put(&qs->queues, queue, q);
        rds_conn_subscribe(r->sub, q->n->channel, rds__qon_channel, q);
    }
    for (it = q->groups.next; it != &q->groups && g == NULL; it = it->next) {
        rds_qgroup_t *x = BASE_CONTAINER_OF(it, rds_qgroup_t, link);
        if (strcmp(x->group, group) == 0)
            g = x;
    }
    if (g != NULL) {
        g->watches++;
        return SIO_OK;
    }
    g = base_calloc(1, sizeof(*g));
    g->q = q;
    g->group = base_strdup(group);
    g->watches = 1;
    g->next_sweep = now + rds__qsweep_period(qs);
    base_list_push_back(&q->groups, &g->link);
    const char *argv[6] = {"XGROUP", "CREATE", q->n->stream, group, "0", "MKSTREAM"};
    rds__qsend(qs, rds__qop_new(qs, RDS_QOP_GROUP, queue), 6, argv, NULL);
    rds__qarm(qs);
    /* A ready now: messages may wait already (the subscription's confirmation brings one
     * too, but only for the first group of a queue). */
    rds__qready_all(q);
    return SIO_OK;
}

static void rds__qgroup_free(rds_qs_t *qs, rds_qgroup_t *g)
{
    base_list_remove(&g->link);
    if (g->ready_due)
        base_list_remove(&g->rlink);
    base_free(g->group);
    base_free(g);
}

/* Forgets q (its groups gone) and its subscription. */
static void rds__qq_free(rds_qs_t *qs, rds_qq_t *q)
{
    while (!base_list_empty(&q->groups))
        rds__qgroup_free(qs, BASE_CONTAINER_OF(q->groups.next, rds_qgroup_t, link));
    if (!qs->r->closed)
        rds_conn_unsubscribe(qs->r->sub, q->n->channel);
    base_map_del(&qs->queues, q->queue);
    rds__qnames_free(q->n);
    base_free(q->queue);
    base_free(q);
}

/* See adp_queue.h. */
static void rds__qunwatch(adp_qstore_t *base, const char *queue, const char *group)
{
    rds_qs_t *qs = (rds_qs_t *)base;
    rds_qq_t *q = queue != NULL ? base_map_get(&qs->queues, queue) : NULL;
    base_list_t *it;

    if (q == NULL || group == NULL || qs->closing)
        return;
    for (it = q->groups.next; it != &q->groups; it = it->next) {
        rds_qgroup_t *g = BASE_CONTAINER_OF(it, rds_qgroup_t, link);
        if (strcmp(g->group, group) != 0)
            continue;
        if (--g->watches == 0)
            rds__qgroup_free(qs, g);
        break;
    }
    if (base_list_empty(&q->groups))
        rds__qq_free(qs, q);
    rds__qarm(qs);
}

/* FCALL sockeye_qtake / sockeye_qadopt for op: the stream, registry and dead-letter keys,
 * then head (group ...), then the (consumer, want) pairs of take. */
static int rds__qtake_send(rds_qs_t *qs, rds_qop_t *op, const char *fn, const char *const *head,
                           size_t n_head, const char *const *consumers, const size_t *want,
                           size_t n)
{
    rds_qnames_t *nm = rds__qnames(qs, op->queue);
    size_t argc = 6 + n_head + 2 * n;
    const char **argv = base_malloc(argc * sizeof(*argv));
    char *nums = base_malloc(n * 24 + 1);
    int rc;

    argv[0] = "FCALL";
    argv[1] = fn;
    argv[2] = "3";
    argv[3] = nm->stream;
    argv[4] = nm->registry;
    argv[5] = nm->dead;
    for (size_t i = 0; i < n_head; i++)
        argv[6 + i] = head[i];
    for (size_t i = 0; i < n; i++) {
        snprintf(nums + 24 * i, 24, "%zu", want[i]);
        argv[6 + n_head + 2 * i] = consumers[i];
        argv[7 + n_head + 2 * i] = nums + 24 * i;
    }
    rc = rds__qsend(qs, op, (int)argc, argv, NULL);
    base_free(nums);
    base_free(argv);
    return rc;
}

/* See adp_queue.h. One FCALL for every consumer of the call. */
static int rds__qtake(adp_qstore_t *base, const char *queue, const char *group,
                      const char *const *consumers, const size_t *want, size_t n,
                      adp_qtake_cb cb, void *ud)
{
    rds_qs_t *qs = (rds_qs_t *)base;
    char maxd[24], len[24], age[24];

    if (qs->closing)
        return SIO_ECLOSED;
    if (!rds__qnames_ok(queue, group) || cb == NULL || n == 0 || consumers == NULL ||
        want == NULL)
        return SIO_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!adp_qname_ok(consumers[i]))
            return SIO_EINVAL;
    }
    snprintf(maxd, sizeof(maxd), "%u", base->cfg.max_deliveries);
    snprintf(len, sizeof(len), "%" PRIu64, base->cfg.max_length);
    snprintf(age, sizeof(age), "%" PRIu64, base->cfg.max_age_ms);
    const char *head[6] = {group, qs->r->uid, maxd, rds__qnames(qs, queue)->dchannel, len, age};
    rds_qop_t *op = rds__qop_new(qs, RDS_QOP_TAKE, queue);
    op->take_cb = cb;
    op->ud = ud;
    op->n_cons = n;
    return rds__qtake_send(qs, op, "sockeye_qtake", head, 6, consumers, want, n);
}

/* See adp_queue.h. Batched: one XACK per (queue, group) per loop turn. */
static void rds__qack(adp_qstore_t *base, const char *queue, const char *group, const char *id)
{
    rds_qs_t *qs = (rds_qs_t *)base;
    char key[512];
    rds_qacks_t *b;

    if (qs->closing || !rds__qnames_ok(queue, group) || id == NULL || strlen(id) >= RDS_Q_ID_MAX)
        return;
    snprintf(key, sizeof(key), "%s\n%s", queue, group);
    b = base_map_get(&qs->acks, key);
    if (b == NULL) {
        b = base_calloc(1, sizeof(*b));
        b->queue = base_strdup(queue);
        b->group = base_strdup(group);
        base_map_put(&qs->acks, key, b);
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 16;
        b->ids = base_realloc(b->ids, b->cap * sizeof(*b->ids));
    }
    b->ids[b->n++] = base_strdup(id);
    rds__qkick(qs);
}

/* See adp_queue.h. Only what consumer still holds goes back, and only while this node
 * owns consumer (the registry: a consumer another node adopted is not ours to release). */
static void rds__qrelease(adp_qstore_t *base, const char *queue, const char *group,
                          const char *consumer, const char *const *ids, size_t n)
{
    rds_qs_t *qs = (rds_qs_t *)base;

    if (qs->closing || n == 0 || ids == NULL || !rds__qnames_ok(queue, group) ||
        !adp_qname_ok(consumer))
        return;
    rds_qnames_t *nm = rds__qnames(qs, queue);
    const char **argv = base_malloc((n + 9) * sizeof(*argv));
    size_t argc = 9;
    argv[0] = "FCALL";
    argv[1] = "sockeye_qrelease";
    argv[2] = "2";
    argv[3] = nm->stream;
    argv[4] = nm->registry;
    argv[5] = nm->channel;
    argv[6] = group;
    argv[7] = consumer;
    argv[8] = qs->r->uid;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] != NULL && ids[i][0] != '\0' && strlen(ids[i]) < RDS_Q_ID_MAX)
            argv[argc++] = ids[i];
    }
    if (argc > 9)
        rds__qsend_other(qs, queue, (int)argc, argv, NULL);
    base_free(argv);
}

/* See adp_queue.h. */
static void rds__qrelease_all(adp_qstore_t *base, const char *queue, const char *group,
                              const char *consumer)
{
    rds_qs_t *qs = (rds_qs_t *)base;

    if (qs->closing || !rds__qnames_ok(queue, group) || !adp_qname_ok(consumer))
        return;
    rds_qnames_t *nm = rds__qnames(qs, queue);
    const char *argv[9] = {"FCALL",     "sockeye_qrelease_all", "2",      nm->stream,
                           nm->registry, nm->channel,            group, consumer,
                           qs->r->uid};
    rds__qsend_other(qs, queue, 9, argv, NULL);
}

/* See adp_queue.h. */
static void rds__qhold(adp_qstore_t *base, const char *queue, const char *group,
                       const char *consumer)
{
    rds_qs_t *qs = (rds_qs_t *)base;

    if (qs->closing || !rds__qnames_ok(queue, group) || !adp_qname_ok(consumer))
        return;
    const char *argv[6] = {"FCALL", "sockeye_qhold", "1", rds__qnames(qs, queue)->stream,
                           group, consumer};
    rds__qsend_other(qs, queue, 6, argv, NULL);
}

/* See adp_queue.h. */
static int rds__qadopt(adp_qstore_t *base, const char *queue, const char *group,
                       const char *consumer, adp_qtake_cb cb, void *ud)
{
    rds_qs_t *qs = (rds_qs_t *)base;
    char maxd[24], len[24], age[24];

    if (qs->closing)
        return SIO_ECLOSED;
    if (!rds__qnames_ok(queue, group) || !adp_qname_ok(consumer) || cb == NULL)
        return SIO_EINVAL;
    snprintf(maxd, sizeof(maxd), "%u", base->cfg.max_deliveries);
    snprintf(len, sizeof(len), "%" PRIu64, base->cfg.max_length);
    snprintf(age, sizeof(age), "%" PRIu64, base->cfg.max_age_ms);
    const char *head[7] = {group, consumer, qs->r->uid, maxd, rds__qnames(qs, queue)->dchannel,
                           len,   age};
    rds_qop_t *op = rds__qop_new(qs, RDS_QOP_ADOPT, queue);
    op->take_cb = cb;
    op->ud = ud;
    op->n_cons = 1;
    return rds__qtake_send(qs, op, "sockeye_qadopt", head, 7, NULL, NULL, 0);
}

static void rds__qget_stats(const adp_qstore_t *base, adp_qstats_t *out)
{
    const rds_qs_t *qs = (const rds_qs_t *)base;

    if (out != NULL)
        *out = qs->stats;
}

/* ---------------------------------------------------------------- destroy */

static void rds__qfree(rds_qs_t *qs)
{
    rds__qnames_clear(&qs->names);
    base_map_clear(&qs->queues);
    base_map_clear(&qs->acks);
    base_map_clear(&qs->dirty);
    base_free(qs->owed);
    base_free(qs);
}

/* The last handle closed: nothing of the store is on the loop any more. Pays the
 * SIO_ECLOSED owed to the calls that were in flight, then frees. */
static void rds__qhandle_closed(uv_handle_t *h)
{
    rds_qs_t *qs = h->data;

    if (--qs->handles > 0)
        return;
    for (size_t i = 0; i < qs->n_owed; i++) {
        rds_qnotice_t *o = &qs->owed[i];
        if (o->push_cb != NULL)
            o->push_cb(o->ud, SIO_ECLOSED, NULL);
        else
            o->take_cb(o->ud, SIO_ECLOSED, NULL, NULL, 0);
    }
    rds__qfree(qs);
}

/* See adp_queue.h: acks still batched are sent when Redis is reachable; every call in
 * flight ends with SIO_ECLOSED from the loop (their replies, when they come, are dropped:
 * what a take handed out stays its consumers' in Redis, for an adopt or the sweep). */
static void rds__qdestroy(adp_qstore_t *base)
{
    rds_qs_t *qs = (rds_qs_t *)base;
    base_map_iter_t it = {0};
    void *v;
    size_t n = 0;

    if (qs->closing)
        return;
    if (!qs->r->closed)
        rds__qflush_acks(qs);
    else {
        while (base_map_next(&qs->acks, &it, NULL, &v))
            rds__qacks_free(v);
        base_map_clear(&qs->acks);
    }
    qs->closing = 1;
    for (base_list_t *li = qs->ops.next; li != &qs->ops; li = li->next)
        n++;
    qs->owed = base_calloc(n ? n : 1, sizeof(*qs->owed));
    while (!base_list_empty(&qs->ops)) {
        rds_qop_t *op = BASE_CONTAINER_OF(qs->ops.next, rds_qop_t, link);
        base_list_remove(&op->link);
        op->qs = NULL;
        if (op->push_cb != NULL || op->take_cb != NULL) {
            qs->owed[qs->n_owed].push_cb = op->push_cb;
            qs->owed[qs->n_owed].take_cb = op->take_cb;
            qs->owed[qs->n_owed].ud = op->ud;
            qs->n_owed++;
        }
    }
    it.pos = 0;
    while (base_map_next(&qs->queues, &it, NULL, &v)) {
        rds_qq_t *q = v;
        while (!base_list_empty(&q->groups))
            rds__qgroup_free(qs, BASE_CONTAINER_OF(q->groups.next, rds_qgroup_t, link));
        if (!qs->r->closed)
            rds_conn_unsubscribe(qs->r->sub, q->n->channel);
        rds__qnames_free(q->n);
        base_free(q->queue);
        base_free(q);
    }
    base_map_clear(&qs->queues);
    uv_close((uv_handle_t *)&qs->timer, rds__qhandle_closed);
    uv_close((uv_handle_t *)&qs->idle, rds__qhandle_closed);
}

static const adp_qstore_vt_t rds__qvt = {
    .push = rds__qpush,
    .watch = rds__qwatch,
    .unwatch = rds__qunwatch,
    .take = rds__qtake,
    .ack = rds__qack,
    .release = rds__qrelease,
    .release_all = rds__qrelease_all,
    .hold = rds__qhold,
    .adopt = rds__qadopt,
    .get_stats = rds__qget_stats,
    .destroy = rds__qdestroy,
};

/* See rds_queue.h. */
adp_qstore_t *rds_queue_new(rds_node_t *node, const adp_qconfig_t *cfg, const adp_qevents_t *ev)
{
    if (node == NULL || cfg == NULL || node->closing)
        return NULL;
    rds_qs_t *qs = base_calloc(1, sizeof(*qs));
    qs->base.vt = &rds__qvt;
    qs->base.cfg = *cfg;
    if (ev != NULL)
        qs->base.ev = *ev;
    qs->r = node;
    qs->margin_ms = RDS_Q_MARGIN_MS;
    qs->trim_ms = RDS_Q_TRIM_MS;
    base_map_init(&qs->queues);
    base_map_init(&qs->names);
    base_map_init(&qs->acks);
    base_map_init(&qs->dirty);
    base_list_init(&qs->ops);
    base_list_init(&qs->ready);
    uv_timer_init(node->loop, &qs->timer);
    uv_unref((uv_handle_t *)&qs->timer); /* housekeeping never keeps a loop alive */
    uv_idle_init(node->loop, &qs->idle);
    qs->timer.data = qs;
    qs->idle.data = qs;
    qs->handles = 2;
    rds__need_library(node);
    return &qs->base;
}

/* See rds_queue.h. */
void rds_queue_set_timing(adp_qstore_t *base, uint64_t sweep_margin_ms, uint64_t trim_ms)
{
    rds_qs_t *qs = (rds_qs_t *)base;

    if (qs == NULL)
        return;
    if (sweep_margin_ms != 0)
        qs->margin_ms = sweep_margin_ms;
    if (trim_ms != 0)
        qs->trim_ms = trim_ms;
}
