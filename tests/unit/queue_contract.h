/* queue_contract.h -- the checks of adp_queue.h that every queue store must pass
 * (header-only; queue_fixture.h has the fixture and the helpers).
 *
 * Each qc_* function makes its store (f->make, through qf_store) and leaves it on f->qs
 * for the test file's teardown, so a test file may look further at what it left (the
 * Redis keys behind it). Queue "jobs" and group "g" unless a check needs more.
 */
#ifndef SOCKEYE_TESTS_QUEUE_CONTRACT_H
#define SOCKEYE_TESTS_QUEUE_CONTRACT_H

#include "queue_fixture.h"

static const uint64_t qc_d1[] = {1, 1, 1, 1, 1, 1, 1, 1};
static const uint64_t qc_d2[] = {2, 2, 2, 2, 2, 2, 2, 2};
static const uint64_t qc_d3[] = {3, 3, 3, 3, 3, 3, 3, 3};

static inline void qc_store_default(fx_t *f)
{
    adp_qconfig_t cfg = qf_cfg();
    qf_store(f, &cfg);
}

/* Messages come out in push order, first delivery 1, with increasing "<ms>-<seq>" ids that
 * are the ids the pushes reported; nothing comes out twice. */
static inline void qc_push_take_order(fx_t *f)
{
    char ids[5][QF_ID_MAX];
    qf_took_t t = {0};
    static const int ns[] = {1, 2, 3, 4, 5};

    qc_store_default(f);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 5, ids);
    for (int i = 0; i < 4; i++)
        qf_id_before(ids[i], ids[i + 1]);
    qf_take1(f, "jobs", "g", "c1", 3, &t);
    qf_expect(&t, ns, qc_d1, NULL, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(t.msgs[i]->id, ids[i]);
        assert_int_equal(t.msgs[i]->n_bins, 0);
    }
    qf_take1(f, "jobs", "g", "c1", 10, &t);
    qf_expect(&t, ns + 3, qc_d1, NULL, 2);
    qf_take1(f, "jobs", "g", "c1", 10, &t);
    assert_int_equal(t.n, 0);

    adp_qstats_t st = qf_stats(f);
    assert_int_equal(st.pushed, 5);
    assert_int_equal(st.delivered, 5);
    assert_int_equal(st.redelivered, 0);
    qf_took_clear(&t);
}

/* A group made after pushes starts at the oldest message the queue keeps; one made
 * later still gets everything, independently of the first. */
static inline void qc_group_starts_at_oldest(fx_t *f)
{
    qf_took_t t = {0};
    static const int ns[] = {1, 2, 3};

    qc_store_default(f);
    qf_push_n(f, "jobs", 1, 2, NULL);
    qf_watch(f, "jobs", "g1");
    qf_take1(f, "jobs", "g1", "c1", 1, &t);
    qf_expect(&t, ns, qc_d1, NULL, 1);
    qf_push_n(f, "jobs", 3, 1, NULL);
    qf_watch(f, "jobs", "g2");
    qf_take1(f, "jobs", "g2", "c2", 10, &t);
    qf_expect(&t, ns, qc_d1, NULL, 3);
    qf_take1(f, "jobs", "g1", "c1", 10, &t);
    qf_expect(&t, ns + 1, qc_d1, NULL, 2);
    qf_took_clear(&t);
}

/* One take for several consumers: each gets its share in the order of consumers[], and
 * given-back messages go out before new ones, to whichever consumer comes first. */
static inline void qc_take_spreads(fx_t *f)
{
    qf_took_t t = {0};
    const char *abc[] = {"a", "b", "c"};
    const size_t want[] = {2, 1, 5};
    static const int ns[] = {1, 2, 3, 4, 5};
    static const size_t to[] = {0, 0, 1, 2, 2};

    qc_store_default(f);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 5, NULL);
    qf_take(f, "jobs", "g", abc, want, 3, &t);
    qf_expect(&t, ns, qc_d1, to, 5);

    char first[QF_ID_MAX];
    snprintf(first, sizeof(first), "%s", t.msgs[0]->id);
    f->qs->vt->release(f->qs, "jobs", "g", "a", (const char *const[]){first}, 1);
    qf_push_n(f, "jobs", 6, 1, NULL);
    const char *cb[] = {"c", "b"};
    const size_t want2[] = {1, 2};
    qf_take(f, "jobs", "g", cb, want2, 2, &t);
    assert_int_equal(t.n, 2);
    assert_int_equal(qf_n(t.msgs[0]), 1); /* given back: first, to "c" */
    assert_int_equal(t.msgs[0]->deliveries, 2);
    assert_string_equal(t.msgs[0]->id, first);
    assert_int_equal(t.to[0], 0);
    assert_int_equal(qf_n(t.msgs[1]), 6);
    assert_int_equal(t.msgs[1]->deliveries, 1);
    assert_int_equal(t.to[1], 1);
    qf_took_clear(&t);
}

/* An ack takes the message out of the pending set, whoever holds it: a release of it
 * afterwards gives nothing back, an adopt does not hand it out again. */
static inline void qc_ack(fx_t *f)
{
    qf_took_t t = {0};
    char ids[2][QF_ID_MAX];
    static const int ns[] = {1, 2};

    qc_store_default(f);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 2, ids);
    qf_take1(f, "jobs", "g", "c1", 2, &t);
    qf_expect(&t, ns, qc_d1, NULL, 2);
    f->qs->vt->ack(f->qs, "jobs", "g", ids[0]);
    qf_sync(f);
    f->qs->vt->release(f->qs, "jobs", "g", "c1", (const char *const[]){ids[0], ids[1]}, 2);
    qf_take1(f, "jobs", "g", "c2", 10, &t);
    qf_expect(&t, ns + 1, qc_d2, NULL, 1);
    qf_adopt(f, "jobs", "g", "c1", &t);
    assert_int_equal(t.n, 0);

    /* a late ack (c1 gave it back, c2 holds it now) still counts; a second one is harmless */
    f->qs->vt->ack(f->qs, "jobs", "g", ids[1]);
    f->qs->vt->ack(f->qs, "jobs", "g", ids[1]);
    qf_sync(f);
    f->qs->vt->release_all(f->qs, "jobs", "g", "c2");
    qf_take1(f, "jobs", "g", "c3", 10, &t);
    assert_int_equal(t.n, 0);
    assert_int_equal(qf_stats(f).acknowledged, 3);
    qf_took_clear(&t);
}

/* A release gives back only what that consumer holds; the next take hands it out
 * before any new message, deliveries 2. */
static inline void qc_release(fx_t *f)
{
    qf_took_t t = {0};
    char ids[3][QF_ID_MAX], fourth[QF_ID_MAX];
    static const int ns[] = {1, 2, 3};

    qc_store_default(f);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 3, ids);
    qf_take1(f, "jobs", "g", "c1", 3, &t);
    qf_expect(&t, ns, qc_d1, NULL, 3);
    f->qs->vt->release(f->qs, "jobs", "g", "c1", (const char *const[]){ids[1]}, 1);
    qf_push(f, "jobs", "{\"n\":4}", fourth);
    qf_take1(f, "jobs", "g", "c2", 2, &t);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.msgs[0]->id, ids[1]);
    assert_int_equal(t.msgs[0]->deliveries, 2);
    assert_string_equal(t.msgs[1]->id, fourth);
    assert_int_equal(t.msgs[1]->deliveries, 1);

    /* c1 does not hold the fourth (c2 does), and nobody holds "1-0": nothing moves */
    f->qs->vt->release(f->qs, "jobs", "g", "c1", (const char *const[]){fourth, "1-0"}, 2);
    qf_take1(f, "jobs", "g", "c3", 10, &t);
    assert_int_equal(t.n, 0);
    assert_int_equal(qf_stats(f).redelivered, 1);
    qf_took_clear(&t);
}

/* release_all gives back everything the consumer holds, oldest first, and forgets it. */
static inline void qc_release_all(fx_t *f)
{
    qf_took_t t = {0};
    static const int ns[] = {1, 2, 3};

    qc_store_default(f);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 3, NULL);
    qf_take1(f, "jobs", "g", "c1", 3, &t);
    f->qs->vt->release_all(f->qs, "jobs", "g", "c1");
    f->qs->vt->release_all(f->qs, "jobs", "g", "nobody"); /* holds nothing: harmless */
    qf_take1(f, "jobs", "g", "c2", 10, &t);
    qf_expect(&t, ns, qc_d2, NULL, 3);
    qf_adopt(f, "jobs", "g", "c1", &t);
    assert_int_equal(t.n, 0);
    assert_int_equal(qf_stats(f).redelivered, 3);
    qf_took_clear(&t);
}

/* adopt hands a consumer everything it holds again, deliveries raised each time, and
 * takes nothing away from the group's other consumers. */
static inline void qc_adopt(fx_t *f)
{
    qf_took_t t = {0};
    static const int ns[] = {1, 2};

    qc_store_default(f);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 2, NULL);
    qf_take1(f, "jobs", "g", "c1", 2, &t);
    qf_adopt(f, "jobs", "g", "c1", &t);
    qf_expect(&t, ns, qc_d2, NULL, 2);
    qf_adopt(f, "jobs", "g", "c1", &t);
    qf_expect(&t, ns, qc_d3, NULL, 2);
    qf_take1(f, "jobs", "g", "c2", 10, &t);
    assert_int_equal(t.n, 0);

    adp_qstats_t st = qf_stats(f);
    assert_int_equal(st.delivered, 6);
    assert_int_equal(st.redelivered, 4);
    qf_took_clear(&t);
}

/* Past max_deliveries a take moves the message to "<queue>.dead", a queue like any
 * other, from which it is taken with its payload. */
static inline void qc_dead_letter(fx_t *f)
{
    qf_took_t t = {0};
    char id[QF_ID_MAX];
    adp_qconfig_t cfg = qf_cfg();

    cfg.max_deliveries = 2;
    qf_store(f, &cfg);
    qf_watch(f, "jobs", "g");
    qf_push(f, "jobs", "{\"n\":7}", id);
    for (uint64_t d = 1; d <= 2; d++) {
        qf_take1(f, "jobs", "g", "c1", 1, &t);
        assert_int_equal(t.n, 1);
        assert_int_equal(t.msgs[0]->deliveries, d);
        f->qs->vt->release(f->qs, "jobs", "g", "c1", (const char *const[]){id}, 1);
    }
    qf_take1(f, "jobs", "g", "c1", 5, &t);
    assert_int_equal(t.n, 0);
    assert_int_equal(qf_stats(f).dead_lettered, 1);

    qf_watch(f, "jobs" ADP_Q_DEAD_SUFFIX, "g");
    qf_take1(f, "jobs" ADP_Q_DEAD_SUFFIX, "g", "c9", 5, &t);
    qf_expect(&t, (const int[]){7}, qc_d1, NULL, 1);
    qf_took_clear(&t);
}

/* An adopt past max_deliveries dead-letters too: a session that keeps coming back and
 * dying on one message must not get it for ever. */
static inline void qc_adopt_dead_letter(fx_t *f)
{
    qf_took_t t = {0};
    adp_qconfig_t cfg = qf_cfg();

    cfg.max_deliveries = 2;
    qf_store(f, &cfg);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 2, NULL);
    qf_take1(f, "jobs", "g", "c1", 2, &t);
    assert_int_equal(t.n, 2);
    qf_adopt(f, "jobs", "g", "c1", &t); /* deliveries 2: the last allowed */
    assert_int_equal(t.n, 2);
    assert_int_equal(t.msgs[0]->deliveries, 2);
    qf_adopt(f, "jobs", "g", "c1", &t); /* a third would be past the bound */
    assert_int_equal(t.n, 0);
    assert_int_equal(qf_stats(f).dead_lettered, 2);

    qf_watch(f, "jobs" ADP_Q_DEAD_SUFFIX, "g");
    qf_take1(f, "jobs" ADP_Q_DEAD_SUFFIX, "g", "c9", 5, &t);
    qf_expect(&t, (const int[]){1, 2}, qc_d1, NULL, 2);
    qf_took_clear(&t);
}

/* max_length drops the oldest messages, counted as trimmed and, when the group had not
 * acknowledged them (not delivered yet, or pending), as unread; a pending one that is
 * dropped is not handed out again. */
static inline void qc_max_length(fx_t *f)
{
    qf_took_t t = {0};
    adp_qconfig_t cfg = qf_cfg();
    static const int ns[] = {3, 4, 5, 6};

    cfg.max_length = 3;
    qf_store(f, &cfg);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 5, NULL);
    /* the memory store drops at the push, the Redis one in its trim pass after it */
    RT_WAIT_FOR(f, qf_stats(f).trimmed == 2, QF_WAIT_MS);
    assert_int_equal(qf_stats(f).trimmed_unread, 2);
    qf_take1(f, "jobs", "g", "c1", 1, &t);
    qf_expect(&t, ns, qc_d1, NULL, 1);
    qf_push_n(f, "jobs", 6, 1, NULL); /* drops 3, which c1 holds */
    RT_WAIT_FOR(f, qf_stats(f).trimmed == 3, QF_WAIT_MS);
    assert_int_equal(qf_stats(f).trimmed_unread, 3);
    qf_take1(f, "jobs", "g", "c1", 10, &t);
    qf_expect(&t, ns + 1, qc_d1, NULL, 3);
    qf_adopt(f, "jobs", "g", "c1", &t);
    qf_expect(&t, ns + 1, qc_d2, NULL, 3);
    qf_took_clear(&t);
}

/* max_age_ms drops what is older, even when nobody pushes any more (the store's own
 * pass), counted as unread when the group had not had it. */
static inline void qc_max_age(fx_t *f)
{
    qf_took_t t = {0};
    adp_qconfig_t cfg = qf_cfg();

    cfg.max_age_ms = 100;
    qf_store(f, &cfg);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 1, NULL);
    RT_WAIT_FOR(f, qf_stats(f).trimmed == 1, QF_WAIT_MS);
    assert_int_equal(qf_stats(f).trimmed_unread, 1);
    qf_take1(f, "jobs", "g", "c1", 10, &t);
    assert_int_equal(t.n, 0);
}

/* The payload comes back as pushed: JSON values of every kind, and binary buffers
 * (placeholders with their bytes, NUL and 0xff included, an empty one too). */
static inline void qc_payloads(fx_t *f)
{
    qf_took_t t = {0};
    static const char *json =
        "{\"s\":\"\\u00e9\\u2603 \\\"q\\\" \\u0001\",\"a\":[1,-2.5,null,true,false,{\"k\":[]}],"
        "\"big\":9007199254740991,\"o\":{}}";
    static const char *bin_json =
        "[\"bin\",{\"_placeholder\":true,\"num\":0},{\"x\":{\"_placeholder\":true,\"num\":1}}]";
    unsigned char bytes[] = {0, 1, 2, 0xff, 0};
    sio_bin_t bins[2] = {{bytes, sizeof(bytes)}, {bytes, 0}};

    qc_store_default(f);
    qf_watch(f, "jobs", "g");
    qf_push(f, "jobs", json, NULL);
    assert_int_equal(qf_push_bins(f, "jobs", bin_json, bins, 2, NULL), SIO_OK);
    qf_take1(f, "jobs", "g", "c1", 2, &t);
    assert_int_equal(t.n, 2);

    cJSON *want = cJSON_Parse(json), *want_bin = cJSON_Parse(bin_json);
    int same = cJSON_Compare(t.msgs[0]->payload, want, 1);
    int same_bin = cJSON_Compare(t.msgs[1]->payload, want_bin, 1);
    cJSON_Delete(want);
    cJSON_Delete(want_bin);
    assert_true(same);
    assert_true(same_bin);
    assert_int_equal(t.msgs[0]->n_bins, 0);
    assert_int_equal(t.msgs[1]->n_bins, 2);
    assert_int_equal(t.msgs[1]->bins[0].len, sizeof(bytes));
    assert_memory_equal(t.msgs[1]->bins[0].data, bytes, sizeof(bytes));
    assert_int_equal(t.msgs[1]->bins[1].len, 0);
    qf_took_clear(&t);
}

/* Over max_payload (the JSON text plus the buffers): SIO_ETOOBIG, nothing stored. */
static inline void qc_max_payload(fx_t *f)
{
    qf_took_t t = {0};
    adp_qconfig_t cfg = qf_cfg();
    char big[128];
    unsigned char bytes[100] = {0};
    sio_bin_t bin = {bytes, sizeof(bytes)};

    cfg.max_payload = 64;
    qf_store(f, &cfg);
    qf_watch(f, "jobs", "g");
    snprintf(big, sizeof(big), "{\"s\":\"%080d\"}", 0);
    assert_int_equal(qf_push_bins(f, "jobs", big, NULL, 0, NULL), SIO_ETOOBIG);
    assert_int_equal(qf_push_bins(f, "jobs", "[{\"_placeholder\":true,\"num\":0}]", &bin, 1, NULL),
                     SIO_ETOOBIG);
    qf_push(f, "jobs", "{\"n\":1}", NULL);
    qf_take1(f, "jobs", "g", "c1", 10, &t);
    qf_expect(&t, (const int[]){1}, qc_d1, NULL, 1);
    assert_int_equal(qf_stats(f).pushed, 1);
    qf_took_clear(&t);
}

/* Every call that names something refuses a bad name (empty, over 200 bytes, a control
 * character) with SIO_EINVAL and no callback; the fire-and-forget ones do nothing. A
 * 200-byte name is fine. */
static inline void qc_bad_names(fx_t *f)
{
    char long_name[202], max_name[201];
    const char *bad[] = {NULL, "", long_name, "a\nb", "tab\there", "del\x7f"};
    qf_took_t t = {0};
    qf_pushed_t p = {0};
    cJSON *v = cJSON_CreateNull();
    size_t one = 1;

    memset(long_name, 'q', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    memset(max_name, 'q', sizeof(max_name) - 1);
    max_name[sizeof(max_name) - 1] = '\0';
    qc_store_default(f);
    adp_qstore_t *qs = f->qs;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *b = bad[i];
        assert_int_equal(qs->vt->push(qs, b, v, NULL, 0, qf_push_cb, &p), SIO_EINVAL);
        assert_int_equal(qs->vt->watch(qs, b, "g"), SIO_EINVAL);
        assert_int_equal(qs->vt->watch(qs, "jobs", b), SIO_EINVAL);
        assert_int_equal(
            qs->vt->take(qs, b, "g", (const char *const[]){"c"}, &one, 1, qf_take_cb, &t),
            SIO_EINVAL);
        assert_int_equal(
            qs->vt->take(qs, "jobs", b, (const char *const[]){"c"}, &one, 1, qf_take_cb, &t),
            SIO_EINVAL);
        assert_int_equal(qs->vt->take(qs, "jobs", "g", (const char *const[]){"c", b},
                                      (const size_t[]){1, 1}, 2, qf_take_cb, &t),
                         SIO_EINVAL);
        assert_int_equal(qs->vt->adopt(qs, "jobs", "g", b, qf_take_cb, &t), SIO_EINVAL);
        qs->vt->ack(qs, b, "g", "1-0");
        qs->vt->release(qs, "jobs", b, "c", (const char *const[]){"1-0"}, 1);
        qs->vt->release_all(qs, "jobs", "g", b);
        qs->vt->hold(qs, b, "g", "c");
        qs->vt->unwatch(qs, b, "g");
    }
    assert_int_equal(qs->vt->push(qs, "jobs", NULL, NULL, 0, qf_push_cb, &p), SIO_EINVAL);
    assert_int_equal(qs->vt->push(qs, "jobs", v, NULL, 0, NULL, NULL), SIO_EINVAL);
    assert_int_equal(qs->vt->push(qs, "jobs", v, NULL, 1, qf_push_cb, &p), SIO_EINVAL);
    assert_int_equal(qs->vt->take(qs, "jobs", "g", (const char *const[]){"c"}, &one, 1, NULL, NULL),
                     SIO_EINVAL);
    assert_int_equal(qs->vt->adopt(qs, "jobs", "g", "c", NULL, NULL), SIO_EINVAL);
    cJSON_Delete(v);
    qf_sync(f);
    assert_int_equal(p.calls, 0);
    assert_int_equal(t.calls, 0);

    qf_watch(f, max_name, max_name);
    qf_push(f, max_name, "{\"n\":1}", NULL);
    qf_take1(f, max_name, max_name, max_name, 1, &t);
    qf_expect(&t, (const int[]){1}, qc_d1, NULL, 1);
    assert_int_equal(qf_stats(f).pushed, 1);
    qf_took_clear(&t);
}

/* ready() tells a watched group that messages may wait: after watch when some do, after
 * a push and after a release; never a group no longer watched. */
static inline void qc_ready(fx_t *f)
{
    qf_took_t t = {0};
    char id[QF_ID_MAX];

    qc_store_default(f);
    qf_push_n(f, "early", 1, 1, NULL);
    qf_watch(f, "early", "g");
    RT_WAIT_FOR(f, qf_ready_count(f, "early", "g") >= 1, QF_WAIT_MS);

    qf_watch(f, "jobs", "g1");
    qf_watch(f, "jobs", "g2");
    qf_watch(f, "other", "g");
    qf_ready_reset(f);
    qf_push(f, "jobs", "{\"n\":1}", id);
    RT_WAIT_FOR(f, qf_ready_count(f, "jobs", "g1") >= 1 && qf_ready_count(f, "jobs", "g2") >= 1,
                QF_WAIT_MS);
    assert_int_equal(qf_ready_count(f, "other", "g"), 0);

    qf_take1(f, "jobs", "g1", "c1", 1, &t);
    qf_ready_reset(f);
    f->qs->vt->release(f->qs, "jobs", "g1", "c1", (const char *const[]){id}, 1);
    RT_WAIT_FOR(f, qf_ready_count(f, "jobs", "g1") >= 1, QF_WAIT_MS);

    /* g1 and g2 are woken by the same push: g1's wake-up is the barrier for g2's */
    f->qs->vt->unwatch(f->qs, "jobs", "g2");
    qf_ready_reset(f);
    qf_push_n(f, "jobs", 2, 1, NULL);
    RT_WAIT_FOR(f, qf_ready_count(f, "jobs", "g1") >= 1, QF_WAIT_MS);
    assert_int_equal(qf_ready_count(f, "jobs", "g2"), 0);

    /* nobody watches jobs: a later push elsewhere is the barrier */
    f->qs->vt->unwatch(f->qs, "jobs", "g1");
    qf_ready_reset(f);
    qf_push_n(f, "jobs", 3, 1, NULL);
    qf_push_n(f, "other", 1, 1, NULL);
    RT_WAIT_FOR(f, qf_ready_count(f, "other", "g") >= 1, QF_WAIT_MS);
    assert_int_equal(qf_ready_count(f, "jobs", "g1"), 0);
    assert_int_equal(qf_ready_count(f, "jobs", "g2"), 0);
    qf_took_clear(&t);
}

/* Takes for consumer until it gets something (the store's sweep runs on its own clock),
 * bounded by ms. */
static inline void qf_take_until(fx_t *f, const char *consumer, qf_took_t *t, unsigned ms)
{
    uint64_t end = uv_now(&f->loop) + ms;

    for (;;) {
        qf_take1(f, "jobs", "g", consumer, 10, t);
        if (t->n > 0 || uv_now(&f->loop) >= end)
            break;
        rt_run_for(f, 20);
    }
    assert_true(t->n > 0);
}

static inline void qc_hold_cb(uv_timer_t *h)
{
    fx_t *f = h->data;
    f->holds++;
    f->qs->vt->hold(f->qs, "jobs", "g", "c3");
}

/* The sweep gives back what a consumer has not been heard of for longer than the ack
 * timeout (plus the store's margin; the test file makes both small) and wakes the
 * watcher; hold() keeps a consumer's messages from it. The store must be made with
 * ack_timeout_ms sweep_ms and a margin that sweeps within QF_WAIT_MS. */
static inline void qc_sweep(fx_t *f, uint64_t sweep_ms, unsigned quiet_ms)
{
    qf_took_t t = {0};
    adp_qconfig_t cfg = qf_cfg();

    cfg.ack_timeout_ms = sweep_ms;
    qf_store(f, &cfg);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 2, NULL);
    qf_take1(f, "jobs", "g", "c1", 1, &t);
    qf_take1(f, "jobs", "g", "c3", 1, &t);
    assert_int_equal(uv_timer_init(&f->loop, &f->hold_timer), 0);
    f->hold_timer_init = 1;
    f->hold_timer.data = f;
    uv_timer_start(&f->hold_timer, qc_hold_cb, sweep_ms / 2, sweep_ms / 2);
    qf_ready_reset(f);

    qf_take_until(f, "c2", &t, QF_WAIT_MS);
    qf_expect(&t, (const int[]){1}, qc_d2, NULL, 1);
    RT_WAIT_FOR(f, qf_ready_count(f, "jobs", "g") >= 1, QF_WAIT_MS);
    f->qs->vt->ack(f->qs, "jobs", "g", t.msgs[0]->id); /* else c2 is swept in turn */
    qf_sync(f);

    /* c3 is held: well past the sweep's idle time, its message is still its own */
    rt_run_for(f, quiet_ms);
    assert_true(f->holds >= 2);
    qf_take1(f, "jobs", "g", "c2", 10, &t);
    assert_int_equal(t.n, 0);
    uv_timer_stop(&f->hold_timer);
    qf_take_until(f, "c2", &t, QF_WAIT_MS);
    qf_expect(&t, (const int[]){2}, qc_d2, NULL, 1);
    uv_close((uv_handle_t *)&f->hold_timer, NULL);
    qf_took_clear(&t);
}

/* destroy ends every call in flight with SIO_ECLOSED, from the loop, exactly once; calls
 * made from those callbacks are refused. f->qs is NULL afterwards. */
static inline void qc_destroy_in_flight(fx_t *f)
{
    qf_took_t t = {0}, a = {0};
    qf_pushed_t p = {0};
    cJSON *v = cJSON_CreateNull();
    size_t one = 1;

    qc_store_default(f);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 1, NULL);
    adp_qstore_t *qs = f->qs;
    t.push_from_cb = qs;
    assert_int_equal(
        qs->vt->take(qs, "jobs", "g", (const char *const[]){"c1"}, &one, 1, qf_take_cb, &t),
        SIO_OK);
    assert_int_equal(qs->vt->adopt(qs, "jobs", "g", "c2", qf_take_cb, &a), SIO_OK);
    assert_int_equal(qs->vt->push(qs, "jobs", v, NULL, 0, qf_push_cb, &p), SIO_OK);
    cJSON_Delete(v);
    qs->vt->ack(qs, "jobs", "g", "1-0"); /* batched: flushed or dropped, never leaked */
    qs->vt->destroy(qs);
    f->qs = NULL;
    assert_int_equal(t.calls + a.calls + p.calls, 0);
    RT_WAIT_FOR(f, t.calls == 1 && a.calls == 1 && p.calls == 1, QF_WAIT_MS);
    assert_int_equal(t.err, SIO_ECLOSED);
    assert_int_equal(t.n, 0);
    assert_int_equal(t.push_rc, SIO_ECLOSED);
    assert_int_equal(a.err, SIO_ECLOSED);
    assert_int_equal(a.n, 0);
    assert_int_equal(p.err, SIO_ECLOSED);
    assert_true(p.id_null);
    rt_run_for(f, 100); /* the replies of what was in flight: dropped, not called back */
    assert_int_equal(t.calls + a.calls + p.calls, 3);
}

#endif
