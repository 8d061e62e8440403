/* sio_queue.c -- the queue engine (sockeye_queue.h): sockets as consumers of the queue
 * store their server's adapter offers (adp_queue.h).
 *
 * The store keeps messages, groups and who holds what; the engine keeps the sockets:
 * which session consumes which group with which prefetch, the deliveries awaiting their
 * acknowledgement, and what a socket's end means for what it holds.
 *
 * Three tiers of state: a qgroup_t per (queue, group) with consumers on this node (it
 * watches the group in the store, so a node without consumers of a queue never reads
 * it); a qsess_t per session that consumes (named by its pid, which names the consumer in
 * the store, so the messages it holds follow the session to any node); a qcons_t per
 * session per group, with its deliveries in flight (qdel_t, one per emitted queue:msg).
 *
 * Takes: a group is taken for when the store says messages may wait (ready), when a
 * consumer frees a slot, or when one arrives. Takes are coalesced per loop turn (an idle
 * handle runs them), at most one in flight per group, each asking for every consumer with
 * room an equal part of QUEUE_SHARE messages (at least one), consumers in rotating order:
 * a small backlog is spread over the consumers of a node instead of all going to the
 * first one asked, and the store's takes racing between nodes spread them
 * over the nodes. A consumer costs nothing while nothing is pushed: no polling.
 *
 * Ends: a socket that leaves on purpose (or cancels) gives back what it holds at once; a
 * socket whose session may come back keeps it, held for the recovery window (the store
 * is told every few seconds, so that its sweep does not give it away), and gets it all
 * again at once when it comes back, here or on another node (adopt). A delivery not
 * acknowledged within the ack timeout is given back for another consumer.
 */
#include <stdio.h>
#include <string.h>

#include "adp_queue.h"
#include "base_alloc.h"
#include "base_list.h"
#include "base_map.h"
#include "sio_provider.h"
#include "sockeye_queue.h"

#define QUEUE_SHARE 64          /* messages one take asks for, split over its consumers */
#define QUEUE_HOLD_TICK_MS 5000 /* how often held sessions are refreshed in the store */
#define QUEUE_DATA_KEY "queues" /* socket.data key keeping a socket's consumers */
#define QUEUE_RETRY_MS 1000     /* a take the store refused (Redis down) is tried again */

typedef struct qgroup qgroup_t;
typedef struct qsess qsess_t;
typedef struct qcons qcons_t;

/* One per (queue, group) with consumers on this node. */
struct qgroup {
    char *key; /* "queue\ngroup" (owned); queue and group point into name */
    char *name;
    const char *queue, *group;
    base_list_t cons;  /* qcons_t.glink, dead ones included while a take is in flight */
    base_list_t sched; /* in q->sched while a take is scheduled */
    unsigned char scheduled, taking, again;
    unsigned char failed; /* the last take failed: the retry timer schedules another */
    size_t rr; /* rotation of the consumers' order between takes */
};

/* One per session per group. */
struct qcons {
    base_list_t glink; /* in g->cons */
    base_list_t slink; /* in ss->cons */
    qgroup_t *g;
    qsess_t *ss; /* NULL once dead */
    char *name;  /* the consumer's name in the store (a copy of the session's) */
    unsigned prefetch;
    size_t in_flight;
    base_map_t dels; /* id -> qdel_t*, deliveries awaiting an ack */
    int dead;        /* cancelled or its session ended while a take of g was in flight */
};

/* One per session that consumes. */
struct qsess {
    char *name;          /* pid, or the socket id when recovery is off */
    sio_socket_t *s;     /* NULL while held */
    base_list_t cons;    /* qcons_t.slink */
    uint64_t hold_until; /* loop ms; only while held */
};

/* One per queue:msg emitted; freed by its ack callback, which always comes. */
typedef struct qdel {
    sio_queues_t *q; /* NULL once the engine closed */
    qcons_t *c;      /* NULL once the consumer is gone */
    char *id;        /* "id\0queue\0group": what a late ack needs */
    const char *queue, *group;
} qdel_t;

/* One per take in flight. */
typedef struct qtake {
    sio_queues_t *q;
    qgroup_t *g;
    qcons_t **cons; /* the consumers asked for, in the order of the request */
    size_t n;
} qtake_t;

struct sio_queues {
    sio_server_t *srv;
    uv_loop_t *loop;
    sio_queue_config_t cfg;
    adp_qstore_t *store;
    base_map_t groups;   /* key -> qgroup_t* */
    base_map_t sessions; /* name -> qsess_t* */
    base_list_t sched;   /* qgroup_t.sched */
    uv_idle_t idle;      /* runs the scheduled takes */
    uv_timer_t tick;     /* refreshes and ends holds */
    uv_timer_t retry;    /* takes that failed, again after QUEUE_RETRY_MS */
    int idle_on, retry_on;
    int closing;
    int handles; /* of idle, tick and retry, not yet closed */
    size_t ops;  /* takes, adopts and pushes in flight */
    size_t pushes; /* pushes in flight: bounded by cfg.max_pushes_in_flight */
    uint64_t busy; /* pushes refused for that bound */
    void (*close_cb)(void *arg);
    void *close_arg;
    uint64_t timeouts;
    size_t in_flight;
};

static void sio__q_schedule(qgroup_t *g, sio_queues_t *q);

/* ---------------------------------------------------------------- config */

void sio_queue_config_init(sio_queue_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->ack_timeout_ms = 30000;
    cfg->max_deliveries = 5;
    cfg->max_prefetch = 1000;
    cfg->default_prefetch = 100;
    cfg->max_length = 1000000;
    cfg->max_age_ms = (uint64_t)7 * 24 * 3600 * 1000;
    cfg->max_payload = 1000000;
    cfg->max_pushes_in_flight = 10000;
}

static int sio__q_config_ok(const sio_queue_config_t *c)
{
    return c->ack_timeout_ms > 0 && c->max_deliveries > 0 && c->max_prefetch > 0 &&
           c->default_prefetch > 0 && c->default_prefetch <= c->max_prefetch && c->max_length > 0 &&
           c->max_payload > 0 && c->max_pushes_in_flight > 0;
}

/* ---------------------------------------------------------------- names */

/* The session's name in the store: its pid (the same on every node it may come back
 * to), or its socket id without recovery. */
static const char *sio__q_name(const sio_socket_t *s)
{
    const char *pid = sio__socket_pid(s);
    return pid != NULL ? pid : sio_socket_id(s);
}

static char *sio__q_key(const char *queue, const char *group)
{
    size_t lq = strlen(queue), lg = strlen(group);
    char *k = base_malloc(lq + lg + 2);

    memcpy(k, queue, lq);
    k[lq] = '\n';
    memcpy(k + lq + 1, group, lg + 1);
    return k;
}

/* ---------------------------------------------------------------- groups */

static qgroup_t *sio__q_group(sio_queues_t *q, const char *queue, const char *group)
{
    char *key = sio__q_key(queue, group);
    qgroup_t *g = base_map_get(&q->groups, key);

    if (g != NULL) {
        base_free(key);
        return g;
    }
    g = base_calloc(1, sizeof(*g));
    g->key = key;
    g->name = base_strdup(key);
    g->name[strlen(queue)] = '\0';
    g->queue = g->name;
    g->group = g->name + strlen(queue) + 1;
    base_list_init(&g->cons);
    base_list_init(&g->sched);
    base_map_put(&q->groups, key, g);
    q->store->vt->watch(q->store, g->queue, g->group);
    return g;
}

/* Frees g when nothing uses it any more: no consumer left and no take in flight. */
static void sio__q_group_maybe_free(sio_queues_t *q, qgroup_t *g)
{
    if (g->taking || !base_list_empty(&g->cons))
        return;
    if (g->scheduled)
        base_list_remove(&g->sched);
    if (!q->closing)
        q->store->vt->unwatch(q->store, g->queue, g->group);
    base_map_del(&q->groups, g->key);
    base_free(g->key);
    base_free(g->name);
    base_free(g);
}

/* ---------------------------------------------------------------- consumers */

/* The deliveries of c lose their consumer: their acks only reach the store now. */
static void sio__q_orphan(sio_queues_t *q, qcons_t *c)
{
    base_map_iter_t it = {0};
    void *v;

    while (base_map_next(&c->dels, &it, NULL, &v))
        ((qdel_t *)v)->c = NULL;
    base_map_clear(&c->dels);
    q->in_flight -= c->in_flight;
    c->in_flight = 0;
}

static void sio__q_cons_free(qcons_t *c)
{
    base_list_remove(&c->glink);
    base_free(c->name);
    base_free(c);
}

/* Ends c: out of its session, deliveries orphaned; freed now, or after the take in flight
 * for its group (which may still name it). */
static void sio__q_cons_end(sio_queues_t *q, qcons_t *c)
{
    qgroup_t *g = c->g;

    sio__q_orphan(q, c);
    base_list_remove(&c->slink);
    c->ss = NULL;
    if (g->taking) {
        c->dead = 1;
        return;
    }
    sio__q_cons_free(c);
    sio__q_group_maybe_free(q, g);
}

static qcons_t *sio__q_cons_find(qsess_t *ss, qgroup_t *g)
{
    base_list_t *it;

    for (it = ss->cons.next; it != &ss->cons; it = it->next) {
        qcons_t *c = BASE_CONTAINER_OF(it, qcons_t, slink);
        if (c->g == g)
            return c;
    }
    return NULL;
}

static qcons_t *sio__q_cons_new(qsess_t *ss, qgroup_t *g, unsigned prefetch)
{
    qcons_t *c = base_calloc(1, sizeof(*c));

    c->g = g;
    c->ss = ss;
    c->name = base_strdup(ss->name);
    c->prefetch = prefetch;
    base_map_init(&c->dels);
    base_list_push_back(&g->cons, &c->glink);
    base_list_push_back(&ss->cons, &c->slink);
    return c;
}

/* ---------------------------------------------------------------- sessions */

static qsess_t *sio__q_sess(sio_queues_t *q, const char *name, sio_socket_t *s)
{
    qsess_t *ss = base_map_get(&q->sessions, name);

    if (ss == NULL) {
        ss = base_calloc(1, sizeof(*ss));
        ss->name = base_strdup(name);
        base_list_init(&ss->cons);
        base_map_put(&q->sessions, name, ss);
    }
    ss->s = s;
    ss->hold_until = 0;
    return ss;
}

/* Ends ss and its consumers; give_back: what they hold goes back to their groups (an
 * end on purpose, an expired hold), else it stays theirs in the store (the node
 * closes: another node adopts it when the session comes back, the sweep otherwise). */
static void sio__q_sess_end(sio_queues_t *q, qsess_t *ss, int give_back)
{
    while (!base_list_empty(&ss->cons)) {
        qcons_t *c = BASE_CONTAINER_OF(ss->cons.next, qcons_t, slink);
        if (give_back)
            q->store->vt->release_all(q->store, c->g->queue, c->g->group, ss->name);
        sio__q_cons_end(q, c);
    }
    base_map_del(&q->sessions, ss->name);
    base_free(ss->name);
    base_free(ss);
}

/* socket.data.queues: the consumers of s, so that its session keeps them on whichever
 * node it comes back to. Rewritten whole (sio_socket_set_data writes the session through). */
static void sio__q_persist(qsess_t *ss)
{
    cJSON *data = sio_socket_data(ss->s);
    cJSON *copy = data != NULL ? cJSON_Duplicate(data, 1) : cJSON_CreateObject();
    cJSON *arr = cJSON_CreateArray();
    base_list_t *it;

    for (it = ss->cons.next; it != &ss->cons; it = it->next) {
        qcons_t *c = BASE_CONTAINER_OF(it, qcons_t, slink);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "queue", c->g->queue);
        cJSON_AddStringToObject(o, "group", c->g->group);
        cJSON_AddNumberToObject(o, "prefetch", c->prefetch);
        cJSON_AddItemToArray(arr, o);
    }
    if (!cJSON_IsObject(copy)) {
        cJSON_Delete(copy);
        copy = cJSON_CreateObject();
    }
    cJSON_DeleteItemFromObjectCaseSensitive(copy, QUEUE_DATA_KEY);
    if (cJSON_GetArraySize(arr) > 0)
        cJSON_AddItemToObject(copy, QUEUE_DATA_KEY, arr);
    else
        cJSON_Delete(arr);
    sio_socket_set_data(ss->s, copy);
}

/* ---------------------------------------------------------------- deliveries */

static void sio__q_del_free(qdel_t *d)
{
    base_free(d->id);
    base_free(d);
}

/* The client's answer to queue:msg, or its timeout, or the socket's end. */
static void sio__q_on_ack(sio_socket_t *s, int err, const cJSON *args, const sio_bin_t *bins,
                          size_t nbins, void *ud)
{
    qdel_t *d = ud;
    sio_queues_t *q = d->q;
    qcons_t *c = d->c;

    if (q == NULL || q->closing) { /* the engine is gone: redelivered later, at least once */
        sio__q_del_free(d);
        return;
    }
    if (err == SIO_OK)
        q->store->vt->ack(q->store, d->queue, d->group, d->id);
    else if (err == SIO_ETIMEDOUT)
        q->timeouts++;
    if (c != NULL) {
        base_map_del(&c->dels, d->id);
        c->in_flight--;
        q->in_flight--;
        if (err == SIO_ETIMEDOUT) {
            const char *ids[1] = {d->id};
            q->store->vt->release(q->store, d->queue, d->group, c->name, ids, 1);
        }
        sio__q_schedule(c->g, q);
    }
    /* SIO_ECLOSED: the socket ended; its consumers were ended or held first (observer) */
    sio__q_del_free(d);
}

/* Emits queue:msg(queue, {id, payload, deliveries}) to c's socket, asking for an ack
 * within the ack timeout. Takes m. */
static void sio__q_deliver(sio_queues_t *q, qcons_t *c, adp_qmsg_t *m)
{
    qgroup_t *g = c->g;
    size_t lid = strlen(m->id), lq = strlen(g->queue), lg = strlen(g->group);
    qdel_t *d = base_calloc(1, sizeof(*d));
    cJSON *args = cJSON_CreateArray(), *msg = cJSON_CreateObject();

    d->q = q;
    d->id = base_malloc(lid + lq + lg + 3);
    memcpy(d->id, m->id, lid + 1);
    memcpy(d->id + lid + 1, g->queue, lq + 1);
    memcpy(d->id + lid + lq + 2, g->group, lg + 1);
    d->queue = d->id + lid + 1;
    d->group = d->id + lid + lq + 2;
    cJSON_AddStringToObject(msg, "id", m->id);
    cJSON_AddItemToObject(msg, "payload", m->payload != NULL ? m->payload : cJSON_CreateNull());
    m->payload = NULL;
    cJSON_AddNumberToObject(msg, "deliveries", (double)m->deliveries);
    cJSON_AddItemToArray(args, cJSON_CreateString(g->queue));
    cJSON_AddItemToArray(args, msg);
    if (sio_socket_emit_ack(c->ss->s, "queue:msg", args, m->bins, m->n_bins, q->cfg.ack_timeout_ms,
                            sio__q_on_ack, d) != SIO_OK) {
        /* The socket is closing: its end (observer) gives back or holds what it holds. */
        sio__q_del_free(d);
    } else {
        d->c = c;
        base_map_put(&c->dels, d->id, d);
        c->in_flight++;
        q->in_flight++;
    }
    adp_qmsg_free(m);
}

/* ---------------------------------------------------------------- takes */

static void sio__q_maybe_closed(sio_queues_t *q);

static void sio__q_on_retry(uv_timer_t *t)
{
    sio_queues_t *q = t->data;
    base_map_iter_t it = {0};
    void *v;

    q->retry_on = 0;
    while (base_map_next(&q->groups, &it, NULL, &v)) {
        qgroup_t *g = v;
        if (g->failed) {
            g->failed = 0;
            sio__q_schedule(g, q);
        }
    }
}

/* A take of g failed (the store is unreachable): another in QUEUE_RETRY_MS, so that
 * consumers waiting when Redis comes back do not depend on a ready() alone (a push made
 * while this node was cut off wakes nobody here). */
static void sio__q_take_failed(sio_queues_t *q, qgroup_t *g)
{
    if (q->closing)
        return;
    g->failed = 1;
    if (!q->retry_on) {
        q->retry_on = 1;
        uv_timer_start(&q->retry, sio__q_on_retry, QUEUE_RETRY_MS, 0);
    }
}

static void sio__q_on_take(void *ud, int err, adp_qmsg_t **msgs, const size_t *to, size_t n)
{
    qtake_t *t = ud;
    sio_queues_t *q = t->q;
    qgroup_t *g = t->g;
    size_t asked = 0;

    q->ops--;
    g->taking = 0;
    for (size_t i = 0; i < t->n; i++)
        asked += t->cons[i]->dead ? 0 : 1;
    for (size_t i = 0; i < n; i++) {
        qcons_t *c = to[i] < t->n ? t->cons[to[i]] : NULL;
        if (q->closing || c == NULL) {
            adp_qmsg_free(msgs[i]); /* stays the consumer's in the store */
        } else if (c->dead) {
            const char *ids[1] = {msgs[i]->id};
            q->store->vt->release(q->store, g->queue, g->group, c->name, ids, 1);
            adp_qmsg_free(msgs[i]);
        } else if (c->ss->s == NULL) {
            adp_qmsg_free(msgs[i]); /* held: handed again when the session comes back */
        } else {
            sio__q_deliver(q, c, msgs[i]);
        }
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->cons[i]->dead)
            sio__q_cons_free(t->cons[i]);
    /* a full batch may mean more is waiting; a ready during the take too */
    if (!q->closing && err == SIO_OK && (g->again || (n > 0 && asked > 0)))
        sio__q_schedule(g, q);
    else if (err != SIO_OK && err != SIO_ECLOSED)
        sio__q_take_failed(q, g);
    g->again = 0;
    base_free(t->cons);
    base_free(t);
    sio__q_group_maybe_free(q, g);
    sio__q_maybe_closed(q);
}

static void sio__q_take(sio_queues_t *q, qgroup_t *g)
{
    size_t n = 0, k = 0, start;
    base_list_t *it;

    for (it = g->cons.next; it != &g->cons; it = it->next)
        n++;
    if (n == 0)
        return;
    qcons_t **all = base_malloc(n * sizeof(*all));
    for (it = g->cons.next; it != &g->cons; it = it->next)
        all[k++] = BASE_CONTAINER_OF(it, qcons_t, glink);
    qtake_t *t = base_calloc(1, sizeof(*t));
    t->cons = base_malloc(n * sizeof(*t->cons));
    const char **names = base_malloc(n * sizeof(*names));
    size_t *want = base_malloc(n * sizeof(*want));
    start = g->rr++ % n;
    for (size_t i = 0; i < n; i++) {
        qcons_t *c = all[(start + i) % n];
        if (c->dead || c->ss == NULL || c->ss->s == NULL || c->in_flight >= c->prefetch)
            continue;
        t->cons[t->n] = c;
        names[t->n] = c->name;
        t->n++;
    }
    size_t share = t->n > 0 && QUEUE_SHARE / t->n > 0 ? QUEUE_SHARE / t->n : 1;
    for (size_t i = 0; i < t->n; i++) {
        size_t room = t->cons[i]->prefetch - t->cons[i]->in_flight;
        want[i] = room < share ? room : share;
    }
    base_free(all);
    if (t->n > 0) {
        t->q = q;
        t->g = g;
        g->taking = 1;
        q->ops++;
        if (q->store->vt->take(q->store, g->queue, g->group, names, want, t->n, sio__q_on_take,
                               t) != SIO_OK) {
            g->taking = 0;
            q->ops--;
            t->n = 0;
            sio__q_take_failed(q, g);
        }
    }
    if (!g->taking) {
        base_free(t->cons);
        base_free(t);
    }
    base_free(names);
    base_free(want);
}

static void sio__q_on_idle(uv_idle_t *h)
{
    sio_queues_t *q = h->data;
    base_list_t todo;

    base_list_init(&todo);
    while (!base_list_empty(&q->sched)) {
        base_list_t *it = q->sched.next;
        base_list_remove(it);
        base_list_push_back(&todo, it);
    }
    uv_idle_stop(&q->idle);
    q->idle_on = 0;
    while (!base_list_empty(&todo)) {
        qgroup_t *g = BASE_CONTAINER_OF(todo.next, qgroup_t, sched);
        base_list_remove(&g->sched);
        g->scheduled = 0;
        if (g->taking)
            g->again = 1;
        else
            sio__q_take(q, g);
    }
}

/* A take for g on the next loop turn (coalesced). */
static void sio__q_schedule(qgroup_t *g, sio_queues_t *q)
{
    if (q->closing)
        return;
    if (g->taking) {
        g->again = 1;
        return;
    }
    if (g->scheduled)
        return;
    g->scheduled = 1;
    base_list_push_back(&q->sched, &g->sched);
    if (!q->idle_on) {
        q->idle_on = 1;
        uv_idle_start(&q->idle, sio__q_on_idle);
    }
}

/* The store says messages may wait for group on queue. */
static void sio__q_on_ready(void *ud, const char *queue, const char *group)
{
    sio_queues_t *q = ud;
    char *key = sio__q_key(queue, group);
    qgroup_t *g = base_map_get(&q->groups, key);

    base_free(key);
    if (g != NULL)
        sio__q_schedule(g, q);
}

/* The store's log lines go to the configured sink, stderr without one. */
static void sio__q_on_log(void *ud, int level, const char *msg)
{
    sio_queues_t *q = ud;
    static const char *const names[] = {"error", "warn", "info", "debug"};

    if (q->cfg.on_log != NULL)
        q->cfg.on_log(q->cfg.log_ud, level, msg);
    else
        fprintf(stderr, "sockeye: %s: %s\n", names[level >= 0 && level <= 3 ? level : 2], msg);
}

/* ---------------------------------------------------------------- adopt */

typedef struct qadopt {
    sio_queues_t *q;
    char *key; /* the group's key */
    char *name;
} qadopt_t;

/* What a session that came back held, handed again at once. */
static void sio__q_on_adopt(void *ud, int err, adp_qmsg_t **msgs, const size_t *to, size_t n)
{
    qadopt_t *a = ud;
    sio_queues_t *q = a->q;
    qgroup_t *g = q->closing ? NULL : base_map_get(&q->groups, a->key);
    qsess_t *ss = q->closing ? NULL : base_map_get(&q->sessions, a->name);
    qcons_t *c = g != NULL && ss != NULL ? sio__q_cons_find(ss, g) : NULL;

    q->ops--;
    for (size_t i = 0; i < n; i++) {
        if (c != NULL && ss->s != NULL)
            sio__q_deliver(q, c, msgs[i]);
        else
            adp_qmsg_free(msgs[i]); /* still the session's in the store */
    }
    if (g != NULL)
        sio__q_schedule(g, q);
    base_free(a->key);
    base_free(a->name);
    base_free(a);
    sio__q_maybe_closed(q);
}

static void sio__q_adopt(sio_queues_t *q, qcons_t *c)
{
    qadopt_t *a = base_calloc(1, sizeof(*a));

    a->q = q;
    a->key = base_strdup(c->g->key);
    a->name = base_strdup(c->name);
    q->ops++;
    if (q->store->vt->adopt(q->store, c->g->queue, c->g->group, c->name, sio__q_on_adopt, a) !=
        SIO_OK) {
        q->ops--;
        base_free(a->key);
        base_free(a->name);
        base_free(a);
        sio__q_schedule(c->g, q);
    }
}

/* ---------------------------------------------------------------- sockets */

static int sio__q_prefetch_ok(const sio_queues_t *q, unsigned prefetch)
{
    return prefetch >= 1 && prefetch <= q->cfg.max_prefetch;
}

/* A socket was admitted: a recovered one gets back its consumers (socket.data.queues) and
 * at once what it held, here or on the node it came from. */
static void sio__q_on_admitted(void *ud, sio_socket_t *s)
{
    sio_queues_t *q = ud;
    const cJSON *list, *it;
    qsess_t *ss;

    if (q->closing || !sio_socket_recovered(s))
        return;
    list = cJSON_GetObjectItemCaseSensitive(sio_socket_data(s), QUEUE_DATA_KEY);
    if (!cJSON_IsArray(list))
        return;
    ss = sio__q_sess(q, sio__q_name(s), s);
    cJSON_ArrayForEach(it, list)
    {
        const cJSON *jq = cJSON_GetObjectItemCaseSensitive(it, "queue");
        const cJSON *jg = cJSON_GetObjectItemCaseSensitive(it, "group");
        const cJSON *jp = cJSON_GetObjectItemCaseSensitive(it, "prefetch");
        unsigned prefetch = cJSON_IsNumber(jp) ? (unsigned)jp->valuedouble : 0;

        if (!cJSON_IsString(jq) || !cJSON_IsString(jg) || !adp_qname_ok(jq->valuestring) ||
            !adp_qname_ok(jg->valuestring) || !sio__q_prefetch_ok(q, prefetch))
            continue;
        qgroup_t *g = sio__q_group(q, jq->valuestring, jg->valuestring);
        qcons_t *c = sio__q_cons_find(ss, g);
        if (c == NULL)
            c = sio__q_cons_new(ss, g, prefetch);
        c->prefetch = prefetch;
        sio__q_adopt(q, c);
    }
    if (base_list_empty(&ss->cons))
        sio__q_sess_end(q, ss, 0);
}

/* A socket is closing: on purpose, what it holds goes back now; else it stays held. */
static void sio__q_on_closing(void *ud, sio_socket_t *s, int recoverable)
{
    sio_queues_t *q = ud;
    qsess_t *ss = base_map_get(&q->sessions, sio__q_name(s));
    base_list_t *it;

    if (ss == NULL || ss->s != s)
        return;
    if (!recoverable) {
        sio__q_sess_end(q, ss, 1);
        return;
    }
    ss->s = NULL;
    ss->hold_until = uv_now(q->loop) + sio__server_config(q->srv)->recovery_window_ms;
    for (it = ss->cons.next; it != &ss->cons; it = it->next) {
        qcons_t *c = BASE_CONTAINER_OF(it, qcons_t, slink);
        sio__q_orphan(q, c);
        q->store->vt->hold(q->store, c->g->queue, c->g->group, c->name);
    }
}

/* Every few seconds: held sessions stay held in the store, or end past their window. */
static void sio__q_on_tick(uv_timer_t *t)
{
    sio_queues_t *q = t->data;
    uint64_t now = uv_now(q->loop);
    base_map_iter_t it = {0};
    void *v;
    qsess_t *expired[64];
    size_t n = 0;

    while (base_map_next(&q->sessions, &it, NULL, &v)) {
        qsess_t *ss = v;
        base_list_t *li;

        if (ss->s != NULL)
            continue;
        if (now >= ss->hold_until) {
            if (n < sizeof(expired) / sizeof(expired[0]))
                expired[n++] = ss; /* the rest at the next tick */
            continue;
        }
        for (li = ss->cons.next; li != &ss->cons; li = li->next) {
            qcons_t *c = BASE_CONTAINER_OF(li, qcons_t, slink);
            q->store->vt->hold(q->store, c->g->queue, c->g->group, c->name);
        }
    }
    for (size_t i = 0; i < n; i++)
        sio__q_sess_end(q, expired[i], 1);
}

/* ---------------------------------------------------------------- public API */

sio_queues_t *sio_queues_new(sio_server_t *srv, const sio_queue_config_t *cfg)
{
    sio_queue_config_t def;
    const adp_provider_t *p = srv != NULL ? sio__server_provider(srv) : NULL;

    if (cfg == NULL) {
        sio_queue_config_init(&def);
        cfg = &def;
    }
    if (p == NULL || p->queues == NULL || !sio__q_config_ok(cfg))
        return NULL;
    sio_queues_t *q = base_calloc(1, sizeof(*q));
    adp_qconfig_t qc = {
        .ack_timeout_ms = cfg->ack_timeout_ms,
        .max_deliveries = cfg->max_deliveries,
        .max_length = cfg->max_length,
        .max_age_ms = cfg->max_age_ms,
        .max_payload = cfg->max_payload,
    };
    adp_qevents_t ev = {.ud = q, .ready = sio__q_on_ready, .log = sio__q_on_log};
    sio_observer_t obs = {.ud = q, .admitted = sio__q_on_admitted, .closing = sio__q_on_closing};

    q->srv = srv;
    q->loop = sio__server_loop(srv);
    q->cfg = *cfg;
    q->store = p->queues(p->ud, &qc, &ev);
    if (q->store == NULL || sio__server_observe(srv, &obs) != SIO_OK) {
        if (q->store != NULL)
            q->store->vt->destroy(q->store);
        base_free(q);
        return NULL;
    }
    base_map_init(&q->groups);
    base_map_init(&q->sessions);
    base_list_init(&q->sched);
    uv_idle_init(q->loop, &q->idle);
    q->idle.data = q;
    uv_timer_init(q->loop, &q->tick);
    q->tick.data = q;
    uv_timer_init(q->loop, &q->retry);
    q->retry.data = q;
    q->handles = 3;
    unsigned tick = q->cfg.ack_timeout_ms / 3;
    tick = tick < QUEUE_HOLD_TICK_MS ? (tick > 0 ? tick : 1) : QUEUE_HOLD_TICK_MS;
    uv_timer_start(&q->tick, sio__q_on_tick, tick, tick);
    uv_unref((uv_handle_t *)&q->tick);
    return q;
}

static void sio__q_maybe_closed(sio_queues_t *q)
{
    if (q->closing && q->handles == 0 && q->ops == 0 && q->close_cb != NULL) {
        void (*cb)(void *) = q->close_cb;
        q->close_cb = NULL;
        cb(q->close_arg);
    }
}

static void sio__q_handle_closed(uv_handle_t *h)
{
    sio_queues_t *q = h->data;
    q->handles--;
    sio__q_maybe_closed(q);
}

void sio_queues_close(sio_queues_t *q, void (*cb)(void *arg), void *arg)
{
    base_map_iter_t it = {0};
    void *v;

    if (q == NULL || q->closing)
        return;
    q->closing = 1;
    q->close_cb = cb;
    q->close_arg = arg;
    sio__server_unobserve(q->srv, q);
    /* deliveries in flight: their acks come after the engine is gone; at least once */
    while (base_map_next(&q->sessions, &it, NULL, &v)) {
        base_list_t *li;
        qsess_t *ss = v;
        for (li = ss->cons.next; li != &ss->cons; li = li->next) {
            qcons_t *c = BASE_CONTAINER_OF(li, qcons_t, slink);
            base_map_iter_t di = {0};
            void *d;
            while (base_map_next(&c->dels, &di, NULL, &d))
                ((qdel_t *)d)->q = NULL;
            /* ...and out of c: such an ack frees its qdel_t without touching c (q is
             * NULL), so c must not keep it, or sio_queues_free's orphaning writes into
             * freed deliveries (the server closing between close and free, as main.c
             * does, fails every pending ack first). */
            sio__q_orphan(q, c);
        }
    }
    uv_close((uv_handle_t *)&q->idle, sio__q_handle_closed);
    uv_close((uv_handle_t *)&q->tick, sio__q_handle_closed);
    uv_close((uv_handle_t *)&q->retry, sio__q_handle_closed);
    /* the store ends the takes in flight with SIO_ECLOSED from the loop */
    q->store->vt->destroy(q->store);
}

void sio_queues_free(sio_queues_t *q)
{
    base_map_iter_t it = {0};
    void *v;

    if (q == NULL)
        return;
    while (base_map_next(&q->sessions, &it, NULL, &v))
        sio__q_sess_end(q, v, 0);
    base_map_clear(&q->sessions);
    base_map_clear(&q->groups); /* emptied with the sessions */
    base_free(q);
}

/* One per push in flight: the caller's callback. */
typedef struct qpush {
    sio_queues_t *q; /* counted in q->ops: the engine outlives its pushes */
    sio_queue_push_cb cb;
    void *ud;
} qpush_t;

static void sio__q_on_pushed(void *ud, int err, const char *id)
{
    qpush_t *p = ud;

    sio_queues_t *q = p->q;

    q->pushes--;
    q->ops--;
    p->cb(err, id, p->ud);
    base_free(p);
    sio__q_maybe_closed(q);
}

int sio_queue_push(sio_queues_t *q, const char *queue, cJSON *payload, const sio_bin_t *bins,
                   size_t nbins, sio_queue_push_cb cb, void *ud)
{
    int rc;

    if (q == NULL || !adp_qname_ok(queue) || (nbins > 0 && bins == NULL) || cb == NULL) {
        cJSON_Delete(payload);
        return SIO_EINVAL;
    }
    if (q->closing) {
        cJSON_Delete(payload);
        return SIO_ECLOSED;
    }
    if (q->pushes >= q->cfg.max_pushes_in_flight) {
        q->busy++;
        cJSON_Delete(payload);
        return SIO_EBUSY;
    }
    if (payload == NULL)
        payload = cJSON_CreateNull();
    qpush_t *p = base_malloc(sizeof(*p));
    p->q = q;
    p->cb = cb;
    p->ud = ud;
    rc = q->store->vt->push(q->store, queue, payload, bins, nbins, sio__q_on_pushed, p);
    if (rc != SIO_OK)
        base_free(p); /* a call that fails never runs its callback */
    else {
        q->pushes++;
        q->ops++;
    }
    cJSON_Delete(payload);
    return rc;
}

int sio_queue_consume(sio_queues_t *q, sio_socket_t *s, const char *queue, const char *group,
                      unsigned prefetch)
{
    if (q == NULL || s == NULL || !adp_qname_ok(queue) || !adp_qname_ok(group))
        return SIO_EINVAL;
    if (prefetch == 0)
        prefetch = q->cfg.default_prefetch;
    if (!sio__q_prefetch_ok(q, prefetch))
        return SIO_EINVAL;
    if (q->closing || sio_socket_room_count(s) == 0)
        return SIO_ECLOSED; /* a closed socket is in no room, not even its own */
    qsess_t *ss = sio__q_sess(q, sio__q_name(s), s);
    qgroup_t *g = sio__q_group(q, queue, group);
    qcons_t *c = sio__q_cons_find(ss, g);
    if (c == NULL)
        c = sio__q_cons_new(ss, g, prefetch);
    c->prefetch = prefetch;
    sio__q_persist(ss);
    sio__q_schedule(g, q);
    return SIO_OK;
}

int sio_queue_cancel(sio_queues_t *q, sio_socket_t *s, const char *queue, const char *group)
{
    if (q == NULL || s == NULL || !adp_qname_ok(queue) || !adp_qname_ok(group))
        return SIO_EINVAL;
    qsess_t *ss = base_map_get(&q->sessions, sio__q_name(s));
    char *key = sio__q_key(queue, group);
    qgroup_t *g = base_map_get(&q->groups, key);
    qcons_t *c = ss != NULL && ss->s == s && g != NULL ? sio__q_cons_find(ss, g) : NULL;

    base_free(key);
    if (c == NULL)
        return SIO_ENOTFOUND;
    q->store->vt->release_all(q->store, queue, group, ss->name);
    sio__q_cons_end(q, c);
    sio__q_persist(ss);
    if (base_list_empty(&ss->cons))
        sio__q_sess_end(q, ss, 0);
    return SIO_OK;
}

void sio_queues_stats(const sio_queues_t *q, sio_queue_stats_t *out)
{
    adp_qstats_t st;
    base_map_iter_t it = {0};
    void *v;

    memset(out, 0, sizeof(*out));
    if (q == NULL)
        return;
    q->store->vt->get_stats(q->store, &st);
    out->pushed = st.pushed;
    out->delivered = st.delivered;
    out->redelivered = st.redelivered;
    out->acknowledged = st.acknowledged;
    out->dead_lettered = st.dead_lettered;
    out->trimmed = st.trimmed;
    out->trimmed_unread = st.trimmed_unread;
    out->timeouts = q->timeouts;
    out->busy = q->busy;
    out->pushes_in_flight = q->pushes;
    out->in_flight = q->in_flight;
    while (base_map_next(&q->sessions, &it, NULL, &v)) {
        base_list_t *li;
        for (li = ((qsess_t *)v)->cons.next; li != &((qsess_t *)v)->cons; li = li->next)
            out->consumers++;
    }
}

void sio_queues_each_in_flight(const sio_queues_t *q,
                               void (*fn)(void *ud, const char *queue, size_t n), void *ud)
{
    base_map_t per; /* queue -> count, as a pointer-sized integer */
    base_map_iter_t it = {0};
    const char *k;
    void *v;

    if (q == NULL)
        return;
    base_map_init(&per);
    while (base_map_next(&q->groups, &it, NULL, &v)) {
        qgroup_t *g = v;
        size_t n = (size_t)(uintptr_t)base_map_get(&per, g->queue);
        base_list_t *li;
        for (li = g->cons.next; li != &g->cons; li = li->next)
            n += BASE_CONTAINER_OF(li, qcons_t, glink)->in_flight;
        base_map_put(&per, g->queue, (void *)(uintptr_t)n);
    }
    memset(&it, 0, sizeof(it));
    while (base_map_next(&per, &it, &k, &v))
        if ((uintptr_t)v > 0)
            fn(ud, k, (size_t)(uintptr_t)v);
    base_map_clear(&per);
}
