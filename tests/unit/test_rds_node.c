/* test_rds_node.c -- adapter/redis/rds_node.c: two nodes (two rds_node_t contexts on one
 * loop) against a real redis-server, with fake namespace hosts recording what the adapter
 * hands them, and a raw subscriber reading the bytes on the wire (rds_nodes_fixture.h).
 * Cluster requests between the nodes are test_rds_req.c's.
 *
 * Each test starts its own redis-server on a free loopback port (skipped when
 * redis-server is not on PATH) and stops it by PID. Every wait is bounded; "nothing
 * else arrived" is checked behind a marker broadcast from the same node (one node's
 * publishes reach the others in order). Each test ends with every handle closed and
 * uv_loop_close() == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <signal.h>

#include "rds_nodes_fixture.h"
#include "rds_wire.h"

static int setup(void **state)
{
    return rn_setup(state, "test-redis");
}

static int teardown(void **state)
{
    return rn_teardown(state);
}

/* ------------------------------------------------------------------ tests */

/* A broadcast is delivered here at once, published in the Node adapter's format on
 * the room channel, delivered by the other node, and not twice here. */
static void test_broadcast_between_nodes(void **state)
{
    fx_t *f = *state;
    tap_t t = {0};
    rds_broadcast_t b;

    RT_REQUIRE_REDIS();
    rt_redis_start(f);
    node_new(f, 0, 0, 1000);
    node_new(f, 1, 0, 1000);
    node_start(f, 0);
    node_start(f, 1);
    adp_rooms_add(&f->h[1].a->rooms, "sb", NULL, "r");
    rds_conn_t *tap = tap_new(f, &t, "socket.io#/#r#");

    assert_int_equal(bcast(f, 0, "news", "r", 0), SIO_OK);
    assert_int_equal(f->h[0].delivered, 1); /* local, synchronously */
    RT_WAIT_FOR(f, f->h[1].delivered == 1, 3000);
    assert_string_equal(f->h[1].last_event, "news");
    RT_WAIT_FOR(f, t.messages == 1, 3000);
    assert_int_equal(rds_decode_broadcast(t.payload, t.len, &b), SIO_OK);
    assert_string_equal(b.uid, rds_node_uid(f->r[0]));
    assert_int_equal(b.opts.n_rooms, 1);
    assert_string_equal(b.opts.rooms[0], "r");
    assert_null(b.offset);
    rds_broadcast_free(&b);

    /* a room node 1 does not have: filtered before decoding; local ones stay here */
    assert_int_equal(bcast(f, 0, "elsewhere", "nobody", 0), SIO_OK);
    assert_int_equal(bcast(f, 0, "mine", NULL, ADP_LOCAL), SIO_OK);
    barrier(f, 0, 1);
    assert_int_equal(f->h[1].delivered, 2); /* news + marker */
    assert_int_equal(f->h[0].delivered, 4); /* news, elsewhere, mine, marker: once each */

    rds_node_stats_t st;
    rds_node_get_stats(f->r[1], &st);
    assert_int_equal(st.messages_in, 2);
    assert_true(st.command_up && st.subscriber_up);
    tap_close(f, tap);
}

/* Redis gone: the broadcast is delivered here, the caller gets SIO_EREDIS, the
 * failure is counted; Redis back: the nodes reconnect and publish again. */
static void test_redis_down_and_back(void **state)
{
    fx_t *f = *state;
    rds_node_stats_t st;

    RT_REQUIRE_REDIS();
    rt_redis_start(f);
    node_new(f, 0, 0, 1000);
    node_new(f, 1, 0, 1000);
    node_start(f, 0);
    node_start(f, 1);
    rt_redis_kill(&f->pid);
    RT_WAIT_FOR(f, (rds_node_get_stats(f->r[0], &st), !st.command_up), 3000);
    assert_int_equal(bcast(f, 0, "down", NULL, 0), SIO_EREDIS);
    assert_int_equal(f->h[0].delivered, 1);
    rds_node_get_stats(f->r[0], &st);
    assert_int_equal(st.publish_failures, 1);

    rt_redis_start(f);
    RT_WAIT_FOR(f,
                (rds_node_get_stats(f->r[0], &st), st.command_up && st.subscriber_up) &&
                    (rds_node_get_stats(f->r[1], &st), st.command_up && st.subscriber_up),
                10000);
    rds_node_get_stats(f->r[1], &st);
    assert_true(st.reconnects >= 2);
    barrier(f, 0, 1);
    assert_int_equal(f->h[1].delivered, 1); /* the marker only: "down" was lost */
}

/* With recovery on, a recoverable broadcast is delivered here when it comes back
 * from Redis, with its offset appended; volatile ones at once, without. */
static void test_recoverable_round_trip(void **state)
{
    fx_t *f = *state;

    RT_REQUIRE_REDIS();
    rt_redis_start(f);
    node_new(f, 0, 1, 1000);
    node_new(f, 1, 0, 1000);
    node_start(f, 0);
    node_start(f, 1);
    assert_int_equal(bcast(f, 0, "kept", NULL, 0), SIO_OK);
    assert_int_equal(f->h[0].delivered, 0);
    RT_WAIT_FOR(f, f->h[0].delivered == 1, 3000);
    assert_string_equal(f->h[0].last_event, "kept");
    assert_non_null(strchr(f->h[0].last_tail, '-')); /* "<ms>-<seq>" */
    RT_WAIT_FOR(f, f->h[1].delivered == 1, 3000);
    assert_string_equal(f->h[1].last_tail, ""); /* node 1 has recovery off: no offset */
    assert_int_equal(bcast(f, 0, "vol", NULL, ADP_VOLATILE), SIO_OK);
    assert_int_equal(f->h[0].delivered, 2);
    assert_string_equal(f->h[0].last_tail, "");
}

/* No Redis: the start reports a clear error instead of hanging. */
static void test_start_refused(void **state)
{
    fx_t *f = *state;
    start_res_t s = {0};

    node_new(f, 0, 0, 1000);
    assert_int_equal(rds_node_start(f->r[0], start_cb, &s), SIO_OK);
    RT_WAIT_FOR(f, s.done, 5000);
    assert_int_equal(s.err, SIO_EREDIS);
    assert_int_equal(rds_node_start(f->r[0], start_cb, &s), SIO_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_broadcast_between_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down_and_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recoverable_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_refused, setup, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
