/* mem_queue.c -- the in-memory queue store (adp_queue.h): the durable queues of a single
 * node without Redis, kept in process. Not durable across a restart: the process takes
 * every message along.
 *
 * It keeps the model of Redis streams with consumer groups, so that the queue engine
 * behaves the same on both stores:
 *   - per queue, a log of messages, oldest first, with ids "<ms>-<seq>" (wall clock,
 *     seq within the ms) strictly increasing like XADD's: a clock that steps back reuses
 *     the last ms with the next seq;
 *   - per group, its position (the next message none of its consumers had, as the
 *     group's last-delivered id) and its pending set: id -> holder and delivery count.
 *     Each holder keeps its messages on a list ordered by id; ADP_Q_RETURNED is one more
 *     holder of every group, whose list (oldest first) the next take empties first;
 *   - retention: a message leaves the log as soon as every group has moved past it and
 *     none has it pending (acknowledged, or dead-lettered, everywhere); a queue with no
 *     group keeps everything. The bounds drop the oldest whatever the groups say:
 *     max_length at each push, max_age_ms at each push and tick; counted in the stats
 *     and logged once per tick and queue (a full queue would log at every push);
 *   - sweep: a holder not heard of (a take naming it, an ack or a release of what it
 *     holds, hold, adopt) for ack_timeout_ms + a margin gives everything back to
 *     ADP_Q_RETURNED. On one node no node dies, but a session that expires without
 *     release_all must not keep messages for ever, and the Redis store sweeps the same.
 *
 * A holder exists only while it holds something, so the consumers of expired sessions
 * leave nothing behind. State changes happen inside the calls; what the caller is told
 * (callbacks, ready()) is queued and delivered by an idle handle, so that nothing calls
 * back inside a call, in the order the calls were made.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base_alloc.h"
#include "base_clock.h"
#include "base_list.h"
#include "base_map.h"
#include "mem.h"

#define MEM_Q_ID_MAX 48            /* "<20 digits>-<20 digits>" + NUL fits */
#define MEM_Q_MARGIN_MIN_MS 200u   /* the sweep's margin over ack_timeout_ms, at least */
#define MEM_Q_TICK_MAX_MS 1000u    /* the tick (sweep, age bound, drop log) at most */
#define MEM_Q_TICK_MIN_MS 10u      /* and at least */
#define MEM_Q_LOG_MAX 512          /* one log line */

/* One stored message. One per message of a queue's log. */
typedef struct mem_qentry {
    base_list_t link;      /* in its queue's log, oldest first */
    uint64_t ms, seq;      /* the id as numbers, for ordering */
    char id[MEM_Q_ID_MAX]; /* "<ms>-<seq>" */
    unsigned pending;      /* groups that have it in their pending set */
    cJSON *payload;        /* owned */
    sio_bin_t *bins;       /* owned, n_bins of them */
    size_t n_bins;
} mem_qentry_t;

/* A holder of messages in a group: a consumer while it holds something, or the group's
 * ADP_Q_RETURNED (always there). */
typedef struct mem_qholder {
    char *name;       /* owned; NULL for the group's ADP_Q_RETURNED */
    base_list_t held; /* mem_qpend_t, by id */
    uint64_t seen_at; /* loop ms when last heard of (the sweep) */
} mem_qholder_t;

/* One message in a group's pending set. */
typedef struct mem_qpend {
    base_list_t link; /* in its holder's held list */
    mem_qentry_t *e;
    mem_qholder_t *holder;
    uint64_t deliveries; /* hand-outs so far */
} mem_qpend_t;

typedef struct mem_queue mem_queue_t;

/* A group of a queue. One per (queue, group); lives as long as the store. */
typedef struct mem_qgroup {
    char *name;
    mem_queue_t *q;
    base_list_t *next;          /* the next entry never handed out, or &q->log */
    uint64_t last_ms, last_seq; /* the last entry handed out; 0-0 = none yet */
    base_map_t pending;         /* id -> mem_qpend_t* */
    base_map_t holders;         /* consumer -> mem_qholder_t*, while it holds something */
    mem_qholder_t returned;     /* ADP_Q_RETURNED */
    int watched;                /* ready() is called for it */
    int ready_queued;           /* a ready() is queued already */
} mem_qgroup_t;

/* A queue. One per name pushed to or watched; lives as long as the store. */
struct mem_queue {
    char *name;
    base_list_t log; /* mem_qentry_t, oldest first */
    uint64_t n;
    uint64_t last_ms, last_seq; /* the newest id given out */
    int have_id;
    base_map_t groups;                /* name -> mem_qgroup_t* */
    uint64_t dropped, dropped_unread; /* by the bounds since the last log line */
};

typedef enum mem_qop_kind {
    MEM_QOP_PUSH,
    MEM_QOP_TAKE, /* a take or an adopt */
    MEM_QOP_READY,
} mem_qop_kind_t;

/* What a call will tell its caller from the loop. One per push, take, adopt and wake-up. */
typedef struct mem_qop {
    base_list_t link; /* in the store's ops, in call order */
    mem_qop_kind_t kind;
    int err;
    void *ud;
    adp_qpush_cb push_cb;
    adp_qtake_cb take_cb;
    char *id;         /* push: the stored id (NULL on error) */
    adp_qmsg_t **msgs; /* take: owned until handed to take_cb */
    size_t *to;
    size_t n, cap;
    mem_qgroup_t *g; /* ready */
} mem_qop_t;

typedef struct mem_qstore {
    adp_qstore_t base;
    uv_loop_t *loop;
    uv_idle_t idle; /* delivers ops */
    uv_timer_t tick;
    base_map_t queues; /* name -> mem_queue_t* */
    base_list_t ops;   /* mem_qop_t, in call order */
    size_t n_ops;
    adp_qstats_t stats;
    uint64_t sweep_after; /* loop ms without news before a holder is swept; 0 = never */
    int closing;          /* destroy was called */
    int handles_closing;  /* uv_close was called on both handles */
    int open_handles;
} mem_qstore_t;

/* ------------------------------------------------------------------ helpers */

static void mem__qlog(const mem_qstore_t *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void mem__qlog(const mem_qstore_t *s, int level, const char *fmt, ...)
{
    char line[MEM_Q_LOG_MAX];
    va_list ap;

    if (s->base.ev.log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    s->base.ev.log(s->base.ev.ud, level, line);
}

/* cJSON allocates with malloc, outside base_malloc: the same policy (OOM aborts) here. */
static cJSON *mem__json_dup(const cJSON *v)
{
    cJSON *d = cJSON_Duplicate(v, 1);
    if (d == NULL) {
        fprintf(stderr, "sockeye: out of memory (queue payload copy)\n");
        abort();
    }
    return d;
}

static sio_bin_t *mem__bins_dup(const sio_bin_t *bins, size_t n)
{
    if (n == 0)
        return NULL;
    sio_bin_t *d = base_malloc(n * sizeof(*d));
    for (size_t i = 0; i < n; i++) {
        d[i].len = bins[i].len;
        d[i].data = base_malloc(bins[i].len ? bins[i].len : 1);
        if (bins[i].len)
            memcpy(d[i].data, bins[i].data, bins[i].len);
    }
    return d;
}

static void mem__bins_free(sio_bin_t *bins, size_t n)
{
    for (size_t i = 0; i < n; i++)
        base_free(bins[i].data);
    base_free(bins);
}

/* The size max_payload bounds: the payload as compact JSON text plus its buffers. */
static size_t mem__payload_size(const cJSON *payload, const sio_bin_t *bins, size_t n)
{
    char *text = cJSON_PrintUnformatted(payload);
    if (text == NULL) {
        fprintf(stderr, "sockeye: out of memory (queue payload size)\n");
        abort();
    }
    size_t size = strlen(text);
    cJSON_free(text);
    for (size_t i = 0; i < n; i++)
        size += bins[i].len;
    return size;
}

/* A copy of e for a receiver, as its deliveries-th hand-out. */
static adp_qmsg_t *mem__msg_new(const mem_qentry_t *e, uint64_t deliveries)
{
    adp_qmsg_t *m = base_calloc(1, sizeof(*m));
    m->id = base_strdup(e->id);
    m->deliveries = deliveries;
    m->payload = mem__json_dup(e->payload);
    m->bins = mem__bins_dup(e->bins, e->n_bins);
    m->n_bins = e->n_bins;
    return m;
}

static mem_qentry_t *mem__entry_of(base_list_t *link)
{
    return BASE_CONTAINER_OF(link, mem_qentry_t, link);
}

static mem_qpend_t *mem__pend_of(base_list_t *link)
{
    return BASE_CONTAINER_OF(link, mem_qpend_t, link);
}

/* 1 when g has handed e out already (e is at or before its position). */
static int mem__passed(const mem_qgroup_t *g, const mem_qentry_t *e)
{
    return adp_offset_cmp(e->ms, e->seq, g->last_ms, g->last_seq) <= 0;
}

/* 1 when e may leave the log: some group exists, every group passed it, none has it
 * pending. */
static int mem__entry_done(const mem_queue_t *q, const mem_qentry_t *e)
{
    base_map_iter_t it = {0};
    void *v;

    if (e->pending > 0 || base_map_size(&q->groups) == 0)
        return 0;
    while (base_map_next(&q->groups, &it, NULL, &v)) {
        if (!mem__passed(v, e))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ holders */

static void mem__holder_init(mem_qholder_t *h, const char *name, uint64_t now)
{
    h->name = name != NULL ? base_strdup(name) : NULL;
    base_list_init(&h->held);
    h->seen_at = now;
}

/* consumer's holder in g; with create, a new one (heard of now) when it holds nothing. */
static mem_qholder_t *mem__holder_get(mem_qstore_t *s, mem_qgroup_t *g, const char *consumer,
                                      int create)
{
    mem_qholder_t *h = base_map_get(&g->holders, consumer);
    if (h == NULL && create) {
        h = base_malloc(sizeof(*h));
        mem__holder_init(h, consumer, uv_now(s->loop));
        base_map_put(&g->holders, consumer, h);
    }
    return h;
}

/* Forgets h once it holds nothing (never the group's ADP_Q_RETURNED). */
static void mem__holder_gc(mem_qgroup_t *g, mem_qholder_t *h)
{
    if (h == &g->returned || !base_list_empty(&h->held))
        return;
    base_map_del(&g->holders, h->name);
    base_free(h->name);
    base_free(h);
}

/* Puts p on h's list, which stays ordered by id; walks from the newest, where a take's
 * messages go. */
static void mem__held_insert(mem_qholder_t *h, mem_qpend_t *p)
{
    base_list_t *at = h->held.prev;
    while (at != &h->held) {
        const mem_qentry_t *e = mem__pend_of(at)->e;
        if (adp_offset_cmp(e->ms, e->seq, p->e->ms, p->e->seq) < 0)
            break;
        at = at->prev;
    }
    base_list_push_back(at->next, &p->link); /* before at->next: right after at */
    p->holder = h;
}

/* Moves p to g's ADP_Q_RETURNED, which the next take empties first. Does not forget the
 * old holder (the caller may still use it). */
static void mem__give_back(mem_qgroup_t *g, mem_qpend_t *p)
{
    base_list_remove(&p->link);
    mem__held_insert(&g->returned, p);
}

/* ------------------------------------------------------------------ log */

static void mem__entry_free(mem_queue_t *q, mem_qentry_t *e);

/* p leaves g's pending set (acknowledged or dead-lettered); its message leaves the log
 * when no group needs it any more. Forgets a holder left with nothing. */
static void mem__pend_drop(mem_queue_t *q, mem_qgroup_t *g, mem_qpend_t *p)
{
    mem_qentry_t *e = p->e;
    mem_qholder_t *h = p->holder;

    base_map_del(&g->pending, e->id);
    base_list_remove(&p->link);
    base_free(p);
    mem__holder_gc(g, h);
    e->pending--;
    if (mem__entry_done(q, e))
        mem__entry_free(q, e);
}

/* Removes e from the log, whatever the groups say: out of every pending set (a late ack
 * or release of it finds nothing, as Redis' XACK of a trimmed id), and positions on it
 * move to the next entry. */
static void mem__entry_free(mem_queue_t *q, mem_qentry_t *e)
{
    base_map_iter_t it = {0};
    void *v;

    while (base_map_next(&q->groups, &it, NULL, &v)) {
        mem_qgroup_t *g = v;
        if (g->next == &e->link)
            g->next = e->link.next;
        mem_qpend_t *p = base_map_del(&g->pending, e->id);
        if (p != NULL) {
            mem_qholder_t *h = p->holder;
            base_list_remove(&p->link);
            base_free(p);
            mem__holder_gc(g, h);
        }
    }
    base_list_remove(&e->link);
    q->n--;
    cJSON_Delete(e->payload);
    mem__bins_free(e->bins, e->n_bins);
    base_free(e);
}

/* A bound drops q's oldest entry: counted, unread when no group exists or some group
 * has not acknowledged it, logged at the next tick. */
static void mem__trim_oldest(mem_qstore_t *s, mem_queue_t *q)
{
    mem_qentry_t *e = mem__entry_of(q->log.next);
    int unread = base_map_size(&q->groups) == 0 || e->pending > 0;
    base_map_iter_t it = {0};
    void *v;

    while (!unread && base_map_next(&q->groups, &it, NULL, &v))
        unread = !mem__passed(v, e);
    s->stats.trimmed++;
    q->dropped++;
    if (unread) {
        s->stats.trimmed_unread++;
        q->dropped_unread++;
    }
    mem__entry_free(q, e);
}

/* The age bound, as of wall-clock now (the id's ms is the push time, never decreasing). */
static void mem__trim_age(mem_qstore_t *s, mem_queue_t *q, uint64_t now)
{
    uint64_t max_age = s->base.cfg.max_age_ms;
    while (max_age > 0 && !base_list_empty(&q->log)) {
        const mem_qentry_t *e = mem__entry_of(q->log.next);
        if (!(now > e->ms && now - e->ms > max_age))
            break;
        mem__trim_oldest(s, q);
    }
}

/* One line for what the bounds dropped from q since the last one. */
static void mem__log_drops(mem_qstore_t *s, mem_queue_t *q)
{
    if (q->dropped == 0)
        return;
    mem__qlog(s, q->dropped_unread > 0 ? 1 : 2,
              "queue %s: %" PRIu64 " message(s) dropped by its bounds (max_length %" PRIu64
              ", max_age_ms %" PRIu64 "), %" PRIu64 " of them not acknowledged by every group",
              q->name, q->dropped, s->base.cfg.max_length, s->base.cfg.max_age_ms,
              q->dropped_unread);
    q->dropped = q->dropped_unread = 0;
}

static mem_queue_t *mem__queue_get(mem_qstore_t *s, const char *name, int create)
{
    mem_queue_t *q = base_map_get(&s->queues, name);
    if (q == NULL && create) {
        q = base_calloc(1, sizeof(*q));
        q->name = base_strdup(name);
        base_list_init(&q->log);
        base_map_init(&q->groups);
        base_map_put(&s->queues, name, q);
    }
    return q;
}

static mem_qgroup_t *mem__group_get(mem_qstore_t *s, const char *queue, const char *group)
{
    mem_queue_t *q = mem__queue_get(s, queue, 0);
    return q != NULL ? base_map_get(&q->groups, group) : NULL;
}

/* A new group of q, at the oldest entry q keeps. */
static mem_qgroup_t *mem__group_new(mem_queue_t *q, const char *name)
{
    mem_qgroup_t *g = base_calloc(1, sizeof(*g));
    g->name = base_strdup(name);
    g->q = q;
    g->next = q->log.next;
    base_map_init(&g->pending);
    base_map_init(&g->holders);
    mem__holder_init(&g->returned, NULL, 0);
    base_map_put(&q->groups, name, g);
    return g;
}

static void mem__group_free(mem_qgroup_t *g)
{
    base_map_iter_t it = {0};
    void *v;

    while (base_map_next(&g->pending, &it, NULL, &v))
        base_free(v);
    base_map_clear(&g->pending);
    it = (base_map_iter_t){0};
    while (base_map_next(&g->holders, &it, NULL, &v)) {
        mem_qholder_t *h = v;
        base_free(h->name);
        base_free(h);
    }
    base_map_clear(&g->holders);
    base_free(g->name);
    base_free(g);
}

static void mem__queue_free(mem_queue_t *q)
{
    base_map_iter_t it = {0};
    void *v;

    while (base_map_next(&q->groups, &it, NULL, &v))
        mem__group_free(v);
    base_map_clear(&q->groups);
    while (!base_list_empty(&q->log)) {
        mem_qentry_t *e = mem__entry_of(q->log.next);
        base_list_remove(&e->link);
        cJSON_Delete(e->payload);
        mem__bins_free(e->bins, e->n_bins);
        base_free(e);
    }
    base_free(q->name);
    base_free(q);
}

/* ------------------------------------------------------------------ ops */

static void mem__run(uv_idle_t *h);

static mem_qop_t *mem__op_new(mem_qstore_t *s, mem_qop_kind_t kind, void *ud)
{
    mem_qop_t *op = base_calloc(1, sizeof(*op));
    op->kind = kind;
    op->ud = ud;
    (void)s;
    return op;
}

/* Queues op for delivery from the loop. */
static void mem__op_queue(mem_qstore_t *s, mem_qop_t *op)
{
    base_list_push_back(&s->ops, &op->link);
    s->n_ops++;
    uv_idle_start(&s->idle, mem__run);
}

static void mem__op_add_msg(mem_qop_t *op, adp_qmsg_t *m, size_t to)
{
    if (op->n == op->cap) {
        op->cap = op->cap ? 2 * op->cap : 8;
        op->msgs = base_realloc(op->msgs, op->cap * sizeof(*op->msgs));
        op->to = base_realloc(op->to, op->cap * sizeof(*op->to));
    }
    op->msgs[op->n] = m;
    op->to[op->n] = to;
    op->n++;
}

/* Frees op and whatever of it was not handed over. */
static void mem__op_free(mem_qop_t *op)
{
    for (size_t i = 0; i < op->n; i++)
        adp_qmsg_free(op->msgs[i]);
    base_free(op->msgs);
    base_free(op->to);
    base_free(op->id);
    base_free(op);
}

/* Ends op with err (destroy): the messages it would have handed out are freed. */
static void mem__op_fail(mem_qop_t *op, int err)
{
    for (size_t i = 0; i < op->n; i++)
        adp_qmsg_free(op->msgs[i]);
    op->n = 0;
    base_free(op->id);
    op->id = NULL;
    op->err = err;
}

/* Tells g's watcher that messages may be waiting: once per loop turn at most. */
static void mem__wake(mem_qstore_t *s, mem_qgroup_t *g)
{
    if (!g->watched || g->ready_queued)
        return;
    g->ready_queued = 1;
    mem_qop_t *op = mem__op_new(s, MEM_QOP_READY, NULL);
    op->g = g;
    mem__op_queue(s, op);
}

static void mem__wake_queue(mem_qstore_t *s, mem_queue_t *q)
{
    base_map_iter_t it = {0};
    void *v;

    while (base_map_next(&q->groups, &it, NULL, &v))
        mem__wake(s, v);
}

static void mem__deliver(mem_qstore_t *s, mem_qop_t *op)
{
    switch (op->kind) {
    case MEM_QOP_PUSH:
        op->push_cb(op->ud, op->err, op->err == SIO_OK ? op->id : NULL);
        break;
    case MEM_QOP_TAKE:
        op->take_cb(op->ud, op->err, op->n ? op->msgs : NULL, op->n ? op->to : NULL, op->n);
        op->n = 0; /* the messages are the callback's now */
        break;
    case MEM_QOP_READY:
        op->g->ready_queued = 0;
        if (!s->closing && op->g->watched && s->base.ev.ready != NULL)
            s->base.ev.ready(s->base.ev.ud, op->g->q->name, op->g->name);
        break;
    }
}

static void mem__handle_closed(uv_handle_t *h)
{
    mem_qstore_t *s = h->data;
    if (--s->open_handles == 0)
        base_free(s);
}

static void mem__close_handles(mem_qstore_t *s)
{
    if (s->handles_closing)
        return;
    s->handles_closing = 1;
    uv_close((uv_handle_t *)&s->idle, mem__handle_closed);
    uv_close((uv_handle_t *)&s->tick, mem__handle_closed);
}

/* Delivers the ops queued before this turn; those the callbacks queue wait for the next
 * one, so a caller that takes again from its callback cannot keep the loop here. */
static void mem__run(uv_idle_t *h)
{
    mem_qstore_t *s = h->data;
    size_t n = s->n_ops;

    while (n-- > 0 && !base_list_empty(&s->ops)) {
        mem_qop_t *op = BASE_CONTAINER_OF(s->ops.next, mem_qop_t, link);
        base_list_remove(&op->link);
        s->n_ops--;
        mem__deliver(s, op); /* may destroy the store: s stays until its handles close */
        mem__op_free(op);
    }
    if (base_list_empty(&s->ops)) {
        if (!s->handles_closing)
            uv_idle_stop(&s->idle);
        if (s->closing)
            mem__close_handles(s);
    }
}

/* ------------------------------------------------------------------ store */

/* Appends a message (payload and bins owned) to queue, which exists from then on; the
 * groups at its end will hand it out next. Applies the bounds. */
static mem_qentry_t *mem__append(mem_qstore_t *s, const char *queue, cJSON *payload,
                                 sio_bin_t *bins, size_t n_bins)
{
    mem_queue_t *q = mem__queue_get(s, queue, 1);
    uint64_t now = base_now_ms();
    base_map_iter_t it = {0};
    void *v;

    if (!q->have_id || now > q->last_ms) {
        q->have_id = 1;
        q->last_ms = now;
        q->last_seq = 0;
    } else {
        q->last_seq++; /* same ms, or the clock went back: stay after the last one */
    }
    mem_qentry_t *e = base_calloc(1, sizeof(*e));
    e->ms = q->last_ms;
    e->seq = q->last_seq;
    snprintf(e->id, sizeof(e->id), "%" PRIu64 "-%" PRIu64, e->ms, e->seq);
    e->payload = payload;
    e->bins = bins;
    e->n_bins = n_bins;
    base_list_push_back(&q->log, &e->link);
    q->n++;
    while (base_map_next(&q->groups, &it, NULL, &v)) {
        mem_qgroup_t *g = v;
        if (g->next == &q->log)
            g->next = &e->link;
    }
    while (s->base.cfg.max_length > 0 && q->n > s->base.cfg.max_length)
        mem__trim_oldest(s, q);
    mem__trim_age(s, q, now);
    return e;
}

/* Moves p's message to "<queue>.dead" (a new message there, same payload): it leaves g's
 * pending set as if acknowledged. */
static void mem__dead_letter(mem_qstore_t *s, mem_queue_t *q, mem_qgroup_t *g, mem_qpend_t *p)
{
    size_t len = strlen(q->name);
    char *dead = base_malloc(len + sizeof(ADP_Q_DEAD_SUFFIX));

    memcpy(dead, q->name, len);
    memcpy(dead + len, ADP_Q_DEAD_SUFFIX, sizeof(ADP_Q_DEAD_SUFFIX));
    mem_qentry_t *d = mem__append(s, dead, mem__json_dup(p->e->payload),
                                  mem__bins_dup(p->e->bins, p->e->n_bins), p->e->n_bins);
    mem__qlog(s, 1, "queue %s group %s: message %s dead-lettered to %s as %s after %" PRIu64
              " deliveries", q->name, g->name, p->e->id, dead, d->id, p->deliveries);
    s->stats.dead_lettered++;
    mem__wake_queue(s, mem__queue_get(s, dead, 0));
    base_free(dead);
    mem__pend_drop(q, g, p);
}

/* Hands up to want messages of g to consumer (index to of the request) into op: given-back
 * ones first, oldest first, then new ones; dead-letters what is past max_deliveries. */
static void mem__hand_out(mem_qstore_t *s, mem_queue_t *q, mem_qgroup_t *g, const char *consumer,
                          size_t want, mem_qop_t *op, size_t to)
{
    mem_qholder_t *h = mem__holder_get(s, g, consumer, 0);
    unsigned max = s->base.cfg.max_deliveries;
    size_t got = 0;

    if (h != NULL)
        h->seen_at = uv_now(s->loop);
    while (got < want) {
        mem_qpend_t *p;
        if (!base_list_empty(&g->returned.held)) {
            p = mem__pend_of(g->returned.held.next);
            if (max > 0 && p->deliveries >= max) {
                mem__dead_letter(s, q, g, p);
                continue;
            }
            p->deliveries++;
            base_list_remove(&p->link);
            s->stats.redelivered++;
        } else if (g->next != &q->log) {
            mem_qentry_t *e = mem__entry_of(g->next);
            p = base_calloc(1, sizeof(*p));
            base_list_init(&p->link);
            p->e = e;
            p->deliveries = 1;
            e->pending++;
            base_map_put(&g->pending, e->id, p);
            g->next = e->link.next;
            g->last_ms = e->ms;
            g->last_seq = e->seq;
        } else {
            break;
        }
        if (h == NULL)
            h = mem__holder_get(s, g, consumer, 1);
        mem__held_insert(h, p);
        mem__op_add_msg(op, mem__msg_new(p->e, p->deliveries), to);
        s->stats.delivered++;
        got++;
    }
}

/* ------------------------------------------------------------------ vtable */

/* See adp_queue.h. The payload and buffers are copied; SIO_ETOOBIG (over max_payload)
 * comes through cb, as every outcome. SIO_EINVAL on a bad name or a NULL payload or cb,
 * SIO_ECLOSED once destroyed: cb does not run then. */
static int mem__push(adp_qstore_t *qs, const char *queue, const cJSON *payload,
                     const sio_bin_t *bins, size_t n_bins, adp_qpush_cb cb, void *ud)
{
    mem_qstore_t *s = (mem_qstore_t *)qs;

    if (s->closing)
        return SIO_ECLOSED;
    if (!adp_qname_ok(queue) || payload == NULL || cb == NULL || (n_bins > 0 && bins == NULL))
        return SIO_EINVAL;
    mem_qop_t *op = mem__op_new(s, MEM_QOP_PUSH, ud);
    op->push_cb = cb;
    if (qs->cfg.max_payload > 0 && mem__payload_size(payload, bins, n_bins) > qs->cfg.max_payload) {
        op->err = SIO_ETOOBIG;
        mem__op_queue(s, op);
        return SIO_OK;
    }
    mem_qentry_t *e =
        mem__append(s, queue, mem__json_dup(payload), mem__bins_dup(bins, n_bins), n_bins);
    s->stats.pushed++;
    op->id = base_strdup(e->id);
    mem__op_queue(s, op);
    mem__wake_queue(s, mem__queue_get(s, queue, 0));
    return SIO_OK;
}

/* See adp_queue.h. Also creates the queue (empty) when nothing was pushed to it yet, and
 * wakes the watcher when the group has something to hand out already. */
static int mem__watch(adp_qstore_t *qs, const char *queue, const char *group)
{
    mem_qstore_t *s = (mem_qstore_t *)qs;

    if (s->closing)
        return SIO_ECLOSED;
    if (!adp_qname_ok(queue) || !adp_qname_ok(group))
        return SIO_EINVAL;
    mem_queue_t *q = mem__queue_get(s, queue, 1);
    mem_qgroup_t *g = base_map_get(&q->groups, group);
    if (g == NULL)
        g = mem__group_new(q, group);
    g->watched = 1;
    if (!base_list_empty(&g->returned.held) || g->next != &q->log)
        mem__wake(s, g);
    return SIO_OK;
}

static void mem__unwatch(adp_qstore_t *qs, const char *queue, const char *group)
{
    mem_qstore_t *s = (mem_qstore_t *)qs;
    mem_qgroup_t *g;

    if (s->closing || !adp_qname_ok(queue) || !adp_qname_ok(group))
        return;
    if ((g = mem__group_get(s, queue, group)) != NULL)
        g->watched = 0;
}

/* See adp_queue.h. A group that does not exist has nothing to hand out: SIO_OK and no
 * message. SIO_EINVAL on a bad name, ADP_Q_RETURNED as a consumer or a NULL cb. */
static int mem__take(adp_qstore_t *qs, const char *queue, const char *group,
                     const char *const *consumers, const size_t *want, size_t n,
                     adp_qtake_cb cb, void *ud)
{
    mem_qstore_t *s = (mem_qstore_t *)qs;

    if (s->closing)
        return SIO_ECLOSED;
    if (!adp_qname_ok(queue) || !adp_qname_ok(group) || cb == NULL ||
        (n > 0 && (consumers == NULL || want == NULL)))
        return SIO_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!adp_qname_ok(consumers[i]) || strcmp(consumers[i], ADP_Q_RETURNED) == 0)
            return SIO_EINVAL;
    }
    mem_qop_t *op = mem__op_new(s, MEM_QOP_TAKE, ud);
    op->take_cb = cb;
    mem_qgroup_t *g = mem__group_get(s, queue, group);
    for (size_t i = 0; g != NULL && i < n; i++)
        mem__hand_out(s, g->q, g, consumers[i], want[i], op, i);
    mem__op_queue(s, op);
    return SIO_OK;
}

/* See adp_queue.h. Counted in stats.acknowledged even when id was not pending (any
 * more): the ack was passed on. */
static void mem__ack(adp_qstore_t *qs, const char *queue, const char *group, const char *id)
{
    mem_qstore_t *s = (mem_qstore_t *)qs;
    mem_qgroup_t *g;
    mem_qpend_t *p;

    if (s->closing || !adp_qname_ok(queue) || !adp_qname_ok(group) || id == NULL)
        return;
    s->stats.acknowledged++;
    if ((g = mem__group_get(s, queue, group)) == NULL)
        return;
    if ((p = base_map_get(&g->pending, id)) == NULL)
        return;
    p->holder->seen_at = uv_now(s->loop);
    mem__pend_drop(g->q, g, p);
}

static void mem__release(adp_qstore_t *qs, const char *queue, const char *group,
                         const char *consumer, const char *const *ids, size_t n)
{
    mem_qstore_t *s = (mem_qstore_t *)qs;
    mem_qgroup_t *g;
    mem_qholder_t *h;
    size_t moved = 0;

    if (s->closing || !adp_qname_ok(queue) || !adp_qname_ok(group) || !adp_qname_ok(consumer) ||
        (n > 0 && ids == NULL))
        return;
    if ((g = mem__group_get(s, queue, group)) == NULL ||
        (h = mem__holder_get(s, g, consumer, 0)) == NULL)
        return;
    h->seen_at = uv_now(s->loop);
    for (size_t i = 0; i < n; i++) {
        mem_qpend_t *p = ids[i] != NULL ? base_map_get(&g->pending, ids[i]) : NULL;
        if (p != NULL && p->holder == h) {
            mem__give_back(g, p);
            moved++;
        }
    }
    mem__holder_gc(g, h);
    if (moved > 0)
        mem__wake(s, g);
}

/* Gives back everything h holds in g and forgets h; the number given back. */
static size_t mem__release_holder(mem_qstore_t *s, mem_qgroup_t *g, mem_qholder_t *h)
{
    size_t moved = 0;

    while (!base_list_empty(&h->held)) {
        mem__give_back(g, mem__pend_of(h->held.next));
        moved++;
    }
    mem__holder_gc(g, h);
    if (moved > 0)
        mem__wake(s, g);
    return moved;
}

/* The holder consumer of group on queue, and its group in *gp; NULL when the store is
 * closing, a name is bad, or consumer holds nothing there (fire-and-forget calls). */
static mem_qholder_t *mem__holder_find(mem_qstore_t *s, const char *queue, const char *group,
                                       const char *consumer, mem_qgroup_t **gp)
{
    if (s->closing || !adp_qname_ok(queue) || !adp_qname_ok(group) || !adp_qname_ok(consumer))
        return NULL;
    if ((*gp = mem__group_get(s, queue, group)) == NULL)
        return NULL;
    return mem__holder_get(s, *gp, consumer, 0);
}

static void mem__release_all(adp_qstore_t *qs, const char *queue, const char *group,
                             const char *consumer)
{
    mem_qstore_t *s = (mem_qstore_t *)qs;
    mem_qgroup_t *g = NULL;
    mem_qholder_t *h = mem__holder_find(s, queue, group, consumer, &g);

    if (h != NULL)
        mem__release_holder(s, g, h);
}

static void mem__hold(adp_qstore_t *qs, const char *queue, const char *group,
                      const char *consumer)
{
    mem_qstore_t *s = (mem_qstore_t *)qs;
    mem_qgroup_t *g = NULL;
    mem_qholder_t *h = mem__holder_find(s, queue, group, consumer, &g);

    if (h != NULL && h != &g->returned)
        h->seen_at = uv_now(s->loop);
}

/* See adp_queue.h. Everything consumer holds, oldest first, each delivery raised; what is
 * past max_deliveries is dead-lettered instead. A consumer that holds nothing gets SIO_OK
 * and no message. */
static int mem__adopt(adp_qstore_t *qs, const char *queue, const char *group,
                      const char *consumer, adp_qtake_cb cb, void *ud)
{
    mem_qstore_t *s = (mem_qstore_t *)qs;
    mem_qgroup_t *g;
    mem_qholder_t *h;
    base_list_t *at;

    if (s->closing)
        return SIO_ECLOSED;
    if (!adp_qname_ok(queue) || !adp_qname_ok(group) || !adp_qname_ok(consumer) ||
        strcmp(consumer, ADP_Q_RETURNED) == 0 || cb == NULL)
        return SIO_EINVAL;
    mem_qop_t *op = mem__op_new(s, MEM_QOP_TAKE, ud);
    op->take_cb = cb;
    if ((g = mem__group_get(s, queue, group)) != NULL &&
        (h = mem__holder_get(s, g, consumer, 0)) != NULL) {
        mem_queue_t *q = mem__queue_get(s, queue, 0);
        unsigned max = s->base.cfg.max_deliveries;
        h->seen_at = uv_now(s->loop);
        at = h->held.next;
        while (at != &h->held) {
            mem_qpend_t *p = mem__pend_of(at);
            at = at->next;
            /* past max_deliveries an adopt dead-letters as a take does (and as the Redis
             * store's sockeye_qadopt): a session that keeps dying on a message must not
             * get it for ever. Dropping the holder's last message frees the holder. */
            if (max > 0 && p->deliveries >= max) {
                int last = at == &h->held;
                mem__dead_letter(s, q, g, p);
                if (last)
                    break;
                continue;
            }
            p->deliveries++;
            mem__op_add_msg(op, mem__msg_new(p->e, p->deliveries), 0);
            s->stats.delivered++;
            s->stats.redelivered++;
        }
    }
    mem__op_queue(s, op);
    return SIO_OK;
}

static void mem__get_stats(const adp_qstore_t *qs, adp_qstats_t *out)
{
    *out = ((const mem_qstore_t *)qs)->stats;
}

/* The tick: the age bound, the sweep of holders not heard of, the log of drops. */
static void mem__on_tick(uv_timer_t *t)
{
    mem_qstore_t *s = t->data;
    uint64_t now = uv_now(s->loop), wall = base_now_ms();
    base_map_iter_t qi = {0};
    void *qv;

    while (base_map_next(&s->queues, &qi, NULL, &qv)) {
        mem_queue_t *q = qv;
        mem__trim_age(s, q, wall);
        base_map_iter_t gi = {0};
        void *gv;
        while (s->sweep_after > 0 && base_map_next(&q->groups, &gi, NULL, &gv)) {
            mem_qgroup_t *g = gv;
            base_map_iter_t hi = {0};
            void *hv;
            while (base_map_next(&g->holders, &hi, NULL, &hv)) {
                mem_qholder_t *h = hv;
                if (now < h->seen_at || now - h->seen_at <= s->sweep_after)
                    continue;
                uint64_t quiet = now - h->seen_at;
                char *name = base_strdup(h->name);
                size_t moved = mem__release_holder(s, g, h); /* deletes the entry we are on */
                mem__qlog(s, 2,
                          "queue %s group %s: consumer %s not heard of for %" PRIu64
                          " ms: %zu message(s) given back",
                          q->name, g->name, name, quiet, moved);
                base_free(name);
            }
        }
        mem__log_drops(s, q);
    }
}

/* See adp_queue.h. Every queued outcome is ended with SIO_ECLOSED (wake-ups are dropped)
 * from the loop; the store is freed after its handles closed. Calls made meanwhile (from
 * those callbacks) return SIO_ECLOSED or do nothing. */
static void mem__destroy(adp_qstore_t *qs)
{
    mem_qstore_t *s = (mem_qstore_t *)qs;
    base_map_iter_t it = {0};
    void *v;
    base_list_t *at, *tmp;

    if (s->closing)
        return;
    s->closing = 1;
    BASE_LIST_FOREACH_SAFE(at, tmp, &s->ops)
    {
        mem_qop_t *op = BASE_CONTAINER_OF(at, mem_qop_t, link);
        if (op->kind == MEM_QOP_READY) {
            base_list_remove(&op->link);
            s->n_ops--;
            mem__op_free(op);
        } else {
            mem__op_fail(op, SIO_ECLOSED);
        }
    }
    while (base_map_next(&s->queues, &it, NULL, &v)) {
        mem__log_drops(s, v);
        mem__queue_free(v);
    }
    base_map_clear(&s->queues);
    uv_timer_stop(&s->tick);
    if (base_list_empty(&s->ops))
        mem__close_handles(s);
    else
        uv_idle_start(&s->idle, mem__run);
}

static const adp_qstore_vt_t mem__qvt = {
    .push = mem__push,
    .watch = mem__watch,
    .unwatch = mem__unwatch,
    .take = mem__take,
    .ack = mem__ack,
    .release = mem__release,
    .release_all = mem__release_all,
    .hold = mem__hold,
    .adopt = mem__adopt,
    .get_stats = mem__get_stats,
    .destroy = mem__destroy,
};

/* See mem.h. */
adp_qstore_t *mem_queue_new(uv_loop_t *loop, const adp_qconfig_t *cfg, const adp_qevents_t *ev)
{
    if (loop == NULL || cfg == NULL)
        return NULL;
    mem_qstore_t *s = base_calloc(1, sizeof(*s));
    s->base.vt = &mem__qvt;
    s->base.cfg = *cfg;
    if (ev != NULL)
        s->base.ev = *ev;
    s->loop = loop;
    base_map_init(&s->queues);
    base_list_init(&s->ops);

    uint64_t tick = MEM_Q_TICK_MAX_MS;
    if (cfg->ack_timeout_ms > 0) {
        uint64_t margin = cfg->ack_timeout_ms / 2;
        s->sweep_after = cfg->ack_timeout_ms + (margin > MEM_Q_MARGIN_MIN_MS ? margin
                                                                           : MEM_Q_MARGIN_MIN_MS);
        if (s->sweep_after / 4 < tick)
            tick = s->sweep_after / 4;
    }
    if (cfg->max_age_ms > 0 && cfg->max_age_ms / 4 < tick)
        tick = cfg->max_age_ms / 4;
    if (tick < MEM_Q_TICK_MIN_MS)
        tick = MEM_Q_TICK_MIN_MS;

    uv_idle_init(loop, &s->idle);
    uv_timer_init(loop, &s->tick);
    s->idle.data = s;
    s->tick.data = s;
    s->open_handles = 2;
    uv_timer_start(&s->tick, mem__on_tick, tick, tick);
    uv_unref((uv_handle_t *)&s->tick); /* the tick alone does not keep a loop alive */
    return &s->base;
}
