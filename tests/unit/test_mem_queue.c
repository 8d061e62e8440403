/* test_mem_queue.c -- adapter/memory/mem_queue.c, the in-process queue store, on a real uv
 * loop: the contract every store passes (queue_contract.h), then what only this store
 * does (retention as soon as every group acknowledged, takes of unknown groups).
 *
 * Every wait is bounded (redis_fixture.h's RT_WAIT_FOR, no Redis here); each test ends
 * with the store destroyed, every handle closed and uv_loop_close() == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mem.h"
#include "queue_contract.h"

static adp_qstore_t *make_mem(fx_t *f, const adp_qconfig_t *cfg)
{
    adp_qevents_t ev = qf_events(f);
    return mem_queue_new(&f->loop, cfg, &ev);
}

/* Everything the store queued is delivered by its idle handle within a loop turn or two. */
static void settle_mem(fx_t *f)
{
    rt_run_for(f, 10);
}

static int setup(void **state)
{
    fx_t *f = base_calloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->deadline), 0);
    f->deadline.data = f;
    f->make = make_mem;
    f->settle = settle_mem;
    *state = f;
    return 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    fx_t *f = *state;

    qf_destroy_store(f);
    uv_close((uv_handle_t *)&f->deadline, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&f->loop) != 0) {
        uv_walk(&f->loop, walk_close, NULL);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        uv_loop_close(&f->loop);
        base_free(f);
        fail_msg("handles left open at the end of the test");
    }
    base_free(f);
    return 0;
}

/* ------------------------------------------------------------------ the contract */

static void test_push_take_order(void **state)
{
    qc_push_take_order(*state);
}

static void test_group_starts_at_oldest(void **state)
{
    qc_group_starts_at_oldest(*state);
}

static void test_take_spreads(void **state)
{
    qc_take_spreads(*state);
}

static void test_ack(void **state)
{
    qc_ack(*state);
}

static void test_release(void **state)
{
    qc_release(*state);
}

static void test_release_all(void **state)
{
    qc_release_all(*state);
}

static void test_adopt(void **state)
{
    qc_adopt(*state);
}

static void test_adopt_dead_letter(void **state)
{
    qc_adopt_dead_letter(*state);
}

static void test_dead_letter(void **state)
{
    qc_dead_letter(*state);
}

static void test_max_length(void **state)
{
    qc_max_length(*state);
}

static void test_max_age(void **state)
{
    qc_max_age(*state);
}

static void test_payloads(void **state)
{
    qc_payloads(*state);
}

static void test_max_payload(void **state)
{
    qc_max_payload(*state);
}

static void test_bad_names(void **state)
{
    qc_bad_names(*state);
}

static void test_ready(void **state)
{
    qc_ready(*state);
}

/* ack_timeout_ms 100: swept after 100 + 200 ms (MEM_Q_MARGIN_MIN_MS), ticks of 75 ms;
 * 600 ms quiet is two sweeps' worth. */
static void test_sweep(void **state)
{
    qc_sweep(*state, 100, 600);
}

static void test_destroy_in_flight(void **state)
{
    qc_destroy_in_flight(*state);
}

/* ------------------------------------------------------------------ this store only */

/* A message every group acknowledged leaves the log at once: a group made afterwards does
 * not find it. A queue without a group keeps everything. */
static void test_retention(void **state)
{
    fx_t *f = *state;
    qf_took_t t = {0};
    adp_qconfig_t cfg = qf_cfg();

    qf_store(f, &cfg);
    qf_push_n(f, "jobs", 1, 3, NULL);
    qf_watch(f, "jobs", "g1");
    qf_take1(f, "jobs", "g1", "c1", 2, &t);
    for (size_t i = 0; i < t.n; i++)
        f->qs->vt->ack(f->qs, "jobs", "g1", t.msgs[i]->id);
    qf_watch(f, "jobs", "g2");
    qf_take1(f, "jobs", "g2", "c2", 10, &t);
    qf_expect(&t, (const int[]){3}, qc_d1, NULL, 1);
    qf_took_clear(&t);
}

/* A group that was never watched has nothing to hand out; the take still answers. */
static void test_take_unknown_group(void **state)
{
    fx_t *f = *state;
    qf_took_t t = {0};
    adp_qconfig_t cfg = qf_cfg();

    qf_store(f, &cfg);
    qf_push_n(f, "jobs", 1, 1, NULL);
    qf_take1(f, "jobs", "nobody", "c1", 10, &t);
    assert_int_equal(t.n, 0);
    qf_take1(f, "nothing-here", "g", "c1", 10, &t);
    assert_int_equal(t.n, 0);
}

/* mem_queue_new refuses NULLs; without events it works and calls nothing. */
static void test_new(void **state)
{
    fx_t *f = *state;
    adp_qconfig_t cfg = qf_cfg();
    qf_took_t t = {0};

    assert_null(mem_queue_new(NULL, &cfg, NULL));
    assert_null(mem_queue_new(&f->loop, NULL, NULL));
    f->qs = mem_queue_new(&f->loop, &cfg, NULL);
    assert_non_null(f->qs);
    qf_watch(f, "jobs", "g");
    qf_push_n(f, "jobs", 1, 1, NULL);
    qf_take1(f, "jobs", "g", "c1", 1, &t);
    assert_int_equal(t.n, 1);
    assert_int_equal(f->n_ready, 0);
    qf_took_clear(&t);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_push_take_order),
        T(test_group_starts_at_oldest),
        T(test_take_spreads),
        T(test_ack),
        T(test_release),
        T(test_release_all),
        T(test_adopt),
        T(test_dead_letter),
        T(test_adopt_dead_letter),
        T(test_max_length),
        T(test_max_age),
        T(test_payloads),
        T(test_max_payload),
        T(test_bad_names),
        T(test_ready),
        T(test_sweep),
        T(test_destroy_in_flight),
        T(test_retention),
        T(test_take_unknown_group),
        T(test_new),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
