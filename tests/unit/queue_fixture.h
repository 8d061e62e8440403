/* queue_fixture.h -- the contract of a queue store (adapter/include/adp_queue.h), checked
 * once for both stores (header-only).
 *
 * The queue engine (node/embed/sio_queue.c) relies on one model whatever the store: the
 * in-process one (test_mem_queue.c) and the Redis one (test_rds_queue.c) must hand out the
 * same messages, in the same order, with the same delivery counts. So the checks of the
 * contract live here, as qc_* functions on a fixture whose store the test file makes
 * (f->make); each file adds what only its store has (timing, Redis keys, outages).
 *
 * Every wait runs the loop until a condition or a deadline (redis_fixture.h), and every
 * callback is checked to come from the loop, not from inside the call that asked.
 * Callbacks only record what they got: an assertion failing inside a libuv callback would
 * longjmp out of uv_run.
 *
 * Include it after <cmocka.h>.
 */
#ifndef SOCKEYE_TESTS_QUEUE_FIXTURE_H
#define SOCKEYE_TESTS_QUEUE_FIXTURE_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <uv.h>

#include "adp_queue.h"
#include "base_alloc.h"

#define QF_WAIT_MS 3000 /* any one step on loopback: far above what it takes */
#define QF_MAX_MSGS 64  /* messages one recorder keeps */
#define QF_MAX_READY 16 /* (queue, group) pairs the ready() log tells apart */
#define QF_ID_MAX 64

typedef struct fx fx_t;

/* A (queue, group) and how many ready() calls it got. */
typedef struct qf_ready {
    char queue[64], group[64];
    int n;
} qf_ready_t;

struct fx {
    uv_loop_t loop;
    uv_timer_t deadline;
    int expired;
    char dir[64]; /* redis-server's, Redis only */
    int port;
    pid_t pid;
    void *node; /* the store's rds_node_t, Redis only */
    /* Makes a store on f's loop with cfg and the fixture's events (qf_events). */
    adp_qstore_t *(*make)(fx_t *f, const adp_qconfig_t *cfg);
    /* Returns once everything the store signalled so far has reached the fixture. */
    void (*settle)(fx_t *f);
    adp_qstore_t *qs;
    qf_ready_t ready[QF_MAX_READY];
    size_t n_ready;
    int ready_overflow;
    uv_timer_t hold_timer; /* qc_sweep's keep-alive of one consumer */
    int hold_timer_init;
    int holds;
};

#include "redis_fixture.h"

/* The teardown's first step: the store and what a failed test may have left running
 * on it (a hold timer calling a destroyed store). */
static inline void qf_destroy_store(fx_t *f)
{
    if (f->hold_timer_init && !uv_is_closing((uv_handle_t *)&f->hold_timer))
        uv_close((uv_handle_t *)&f->hold_timer, NULL);
    if (f->qs != NULL)
        f->qs->vt->destroy(f->qs);
    f->qs = NULL;
}

/* ------------------------------------------------------------------ events */

static inline void qf_on_ready(void *ud, const char *queue, const char *group)
{
    fx_t *f = ud;

    for (size_t i = 0; i < f->n_ready; i++) {
        if (strcmp(f->ready[i].queue, queue) == 0 && strcmp(f->ready[i].group, group) == 0) {
            f->ready[i].n++;
            return;
        }
    }
    if (f->n_ready == QF_MAX_READY) {
        f->ready_overflow = 1;
        return;
    }
    qf_ready_t *r = &f->ready[f->n_ready++];
    snprintf(r->queue, sizeof(r->queue), "%s", queue);
    snprintf(r->group, sizeof(r->group), "%s", group);
    r->n = 1;
}

static inline void qf_on_log(void *ud, int level, const char *msg)
{
    if (getenv("QUEUE_TEST_VERBOSE") != NULL)
        print_message("log %d: %s\n", level, msg);
}

static inline adp_qevents_t qf_events(fx_t *f)
{
    adp_qevents_t ev = {.ud = f, .ready = qf_on_ready, .log = qf_on_log};
    return ev;
}

static inline int qf_ready_count(const fx_t *f, const char *queue, const char *group)
{
    for (size_t i = 0; i < f->n_ready; i++) {
        if (strcmp(f->ready[i].queue, queue) == 0 && strcmp(f->ready[i].group, group) == 0)
            return f->ready[i].n;
    }
    return 0;
}

/* Forgets the ready() calls so far, once the ones already on their way arrived. */
static inline void qf_ready_reset(fx_t *f)
{
    f->settle(f);
    assert_false(f->ready_overflow);
    f->n_ready = 0;
}

/* ------------------------------------------------------------------ recorders */

typedef struct qf_pushed {
    int calls, err;
    int id_null;
    char id[QF_ID_MAX];
} qf_pushed_t;

static inline void qf_push_cb(void *ud, int err, const char *id)
{
    qf_pushed_t *p = ud;

    p->calls++;
    p->err = err;
    p->id_null = id == NULL;
    snprintf(p->id, sizeof(p->id), "%s", id != NULL ? id : "");
}

/* What a take or an adopt handed out (the messages are the recorder's: qf_took_clear). */
typedef struct qf_took {
    int calls, err;
    size_t n;
    adp_qmsg_t *msgs[QF_MAX_MSGS];
    size_t to[QF_MAX_MSGS];
    int overflow;
    adp_qstore_t *push_from_cb; /* pushes from the callback when set; its return code: */
    int push_rc;
} qf_took_t;

/* The outcome of qf_took_t's push from a callback, should a broken store accept it: static,
 * as that callback may come after the test's frame is gone. */
static qf_pushed_t qf_late_push;

static inline void qf_take_cb(void *ud, int err, adp_qmsg_t **msgs, const size_t *to, size_t n)
{
    qf_took_t *t = ud;

    t->calls++;
    t->err = err;
    for (size_t i = 0; i < n; i++) {
        if (t->n == QF_MAX_MSGS) {
            adp_qmsg_free(msgs[i]);
            t->overflow = 1;
            continue;
        }
        t->msgs[t->n] = msgs[i];
        t->to[t->n++] = to[i];
    }
    if (t->push_from_cb != NULL) {
        cJSON *v = cJSON_CreateNull();
        t->push_rc = t->push_from_cb->vt->push(t->push_from_cb, "late", v, NULL, 0, qf_push_cb,
                                               &qf_late_push);
        cJSON_Delete(v);
    }
}

static inline void qf_took_clear(qf_took_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        adp_qmsg_free(t->msgs[i]);
    memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------------ calls */

static inline adp_qconfig_t qf_cfg(void)
{
    adp_qconfig_t c = {.ack_timeout_ms = 30000}; /* no sweep unless a test asks for one */
    return c;
}

static inline void qf_store(fx_t *f, const adp_qconfig_t *cfg)
{
    f->qs = f->make(f, cfg);
    assert_non_null(f->qs);
}

static inline void qf_watch(fx_t *f, const char *queue, const char *group)
{
    assert_int_equal(f->qs->vt->watch(f->qs, queue, group), SIO_OK);
}

/* Pushes payload (JSON text) with its buffers; the outcome, the id into id (when not
 * NULL). The outcome is the call's error, or else the callback's, which must come from
 * the loop, once (a store may refuse at once or through the callback: the engine takes
 * both). */
static inline int qf_push_bins(fx_t *f, const char *queue, const char *json, const sio_bin_t *bins,
                               size_t n_bins, char *id)
{
    qf_pushed_t p = {0};
    cJSON *v = cJSON_Parse(json);
    int rc;

    assert_non_null(v);
    rc = f->qs->vt->push(f->qs, queue, v, bins, n_bins, qf_push_cb, &p);
    cJSON_Delete(v); /* the store copied it */
    if (rc != SIO_OK) {
        rt_run_for(f, 20); /* a call that failed must never call back */
        assert_int_equal(p.calls, 0);
        return rc;
    }
    assert_int_equal(p.calls, 0);
    RT_WAIT_FOR(f, p.calls == 1, QF_WAIT_MS);
    assert_int_equal(p.id_null, p.err != SIO_OK);
    if (id != NULL)
        snprintf(id, QF_ID_MAX, "%s", p.id);
    return p.err;
}

static inline void qf_push(fx_t *f, const char *queue, const char *json, char *id)
{
    assert_int_equal(qf_push_bins(f, queue, json, NULL, 0, id), SIO_OK);
}

/* Pushes {"n":first} .. {"n":first+n-1}; their ids into ids (when not NULL). */
static inline void qf_push_n(fx_t *f, const char *queue, int first, int n, char ids[][QF_ID_MAX])
{
    char json[32];

    for (int i = 0; i < n; i++) {
        snprintf(json, sizeof(json), "{\"n\":%d}", first + i);
        qf_push(f, queue, json, ids != NULL ? ids[i] : NULL);
    }
}

/* A take that must succeed; what it handed out is in t (cleared first). */
static inline void qf_take(fx_t *f, const char *queue, const char *group,
                           const char *const *consumers, const size_t *want, size_t n, qf_took_t *t)
{
    qf_took_clear(t);
    assert_int_equal(f->qs->vt->take(f->qs, queue, group, consumers, want, n, qf_take_cb, t),
                     SIO_OK);
    assert_int_equal(t->calls, 0);
    RT_WAIT_FOR(f, t->calls == 1, QF_WAIT_MS);
    assert_int_equal(t->err, SIO_OK);
    assert_false(t->overflow);
}

static inline void qf_take1(fx_t *f, const char *queue, const char *group, const char *consumer,
                            size_t want, qf_took_t *t)
{
    qf_take(f, queue, group, &consumer, &want, 1, t);
}

static inline void qf_adopt(fx_t *f, const char *queue, const char *group, const char *consumer,
                            qf_took_t *t)
{
    qf_took_clear(t);
    assert_int_equal(f->qs->vt->adopt(f->qs, queue, group, consumer, qf_take_cb, t), SIO_OK);
    assert_int_equal(t->calls, 0);
    RT_WAIT_FOR(f, t->calls == 1, QF_WAIT_MS);
    assert_int_equal(t->err, SIO_OK);
    for (size_t i = 0; i < t->n; i++)
        assert_int_equal(t->to[i], 0);
}

/* Returns once the store has carried out every fire-and-forget call made so far (acks,
 * releases): a take that hands nothing out, behind them (the Redis store sends its
 * commands in order on one connection and batches acks into the loop turn after). */
static inline void qf_sync(fx_t *f)
{
    qf_took_t t = {0};
    const char *c = "sync";
    size_t want = 0;

    rt_run_for(f, 1); /* the loop turn that flushes batched acks */
    qf_take(f, "qf.sync", "sync", &c, &want, 1, &t);
    assert_int_equal(t.n, 0);
}

static inline adp_qstats_t qf_stats(fx_t *f)
{
    adp_qstats_t st;
    f->qs->vt->get_stats(f->qs, &st);
    return st;
}

/* ------------------------------------------------------------------ messages */

/* The "n" of a {"n": k} payload. */
static inline int qf_n(const adp_qmsg_t *m)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(m->payload, "n");
    assert_true(cJSON_IsNumber(n));
    return n->valueint;
}

/* An id must be "<ms>-<seq>", both decimal, nothing else. */
static inline void qf_id_parse(const char *id, uint64_t *ms, uint64_t *seq)
{
    int used = -1;

    assert_non_null(id);
    assert_true(id[0] >= '0' && id[0] <= '9');
    assert_int_equal(sscanf(id, "%" SCNu64 "-%" SCNu64 "%n", ms, seq, &used), 2);
    assert_int_equal((size_t)used, strlen(id));
}

/* Fails unless id a comes strictly before id b. */
static inline void qf_id_before(const char *a, const char *b)
{
    uint64_t ams, aseq, bms, bseq;

    qf_id_parse(a, &ams, &aseq);
    qf_id_parse(b, &bms, &bseq);
    assert_true(ams < bms || (ams == bms && aseq < bseq));
}

/* Fails unless t handed out, in this order, the payloads {"n": ns[i]} with deliveries
 * dl[i] to consumer index to[i] (to NULL: all 0). */
static inline void qf_expect(const qf_took_t *t, const int *ns, const uint64_t *dl,
                             const size_t *to, size_t n)
{
    assert_int_equal(t->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(qf_n(t->msgs[i]), ns[i]);
        assert_int_equal(t->msgs[i]->deliveries, dl[i]);
        assert_int_equal(t->to[i], to != NULL ? to[i] : 0);
        qf_id_parse(t->msgs[i]->id, &(uint64_t){0}, &(uint64_t){0});
    }
}

#endif
