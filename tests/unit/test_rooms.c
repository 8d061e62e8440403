/* test_rooms.c -- adapter/rooms.c: membership both ways and the targets rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rooms.h"

/* Sockets are stand-ins: the pointer carries the sid's first letter. */
static char sock_a = 'a', sock_b = 'b', sock_c = 'c', sock_d = 'd';

/* What adp_rooms_each reported, sorted, as "a,b,c" (sids are one letter here). */
typedef struct collect {
    char sids[64][8];
    size_t n;
    int bad_sock;
} collect_t;

static void collect_fn(void *ud, const char *sid, void *sock)
{
    collect_t *c = ud;
    assert_true(c->n < 64);
    snprintf(c->sids[c->n++], sizeof(c->sids[0]), "%s", sid);
    if (sock == NULL || *(const char *)sock != sid[0])
        c->bad_sock = 1;
}

/* Bounded append; a test string that would not fit fails the test. */
static void append(char *dst, size_t cap, const char *src)
{
    size_t len = strlen(dst), add = strlen(src);
    assert_true(len + add < cap);
    memcpy(dst + len, src, add + 1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Runs each() and returns the sorted targets joined by commas (duplicates kept, so a
 * socket delivered twice shows up twice). */
static const char *targets(const adp_rooms_t *r, const char *const *rooms, size_t n_rooms,
                           const char *const *except, size_t n_except)
{
    static char out[512];
    collect_t c;
    memset(&c, 0, sizeof(c));
    adp_rooms_each(r, rooms, n_rooms, except, n_except, collect_fn, &c);
    assert_false(c.bad_sock);
    qsort(c.sids, c.n, sizeof(c.sids[0]), cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < c.n; i++) {
        if (i)
            append(out, sizeof(out), ",");
        append(out, sizeof(out), c.sids[i]);
    }
    return out;
}

/* a in {a, r1, r2}; b in {b, r1}; c in {c, r2, r3}; d in {d} */
static int setup(void **state)
{
    adp_rooms_t *r = test_malloc(sizeof(*r));
    adp_rooms_init(r);
    adp_rooms_add(r, "a", &sock_a, "a");
    adp_rooms_add(r, "a", &sock_a, "r1");
    adp_rooms_add(r, "a", &sock_a, "r2");
    adp_rooms_add(r, "b", &sock_b, "b");
    adp_rooms_add(r, "b", &sock_b, "r1");
    adp_rooms_add(r, "c", &sock_c, "c");
    adp_rooms_add(r, "c", &sock_c, "r2");
    adp_rooms_add(r, "c", &sock_c, "r3");
    adp_rooms_add(r, "d", &sock_d, "d");
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    adp_rooms_t *r = *state;
    adp_rooms_clear(r);
    test_free(r);
    return 0;
}

static void test_add_has(void **state)
{
    adp_rooms_t *r = *state;
    assert_true(adp_rooms_has_room(r, "r1"));
    assert_true(adp_rooms_has_room(r, "a"));
    assert_false(adp_rooms_has_room(r, "nope"));
    assert_true(adp_rooms_is_member(r, "a", "r1"));
    assert_true(adp_rooms_is_member(r, "b", "r1"));
    assert_false(adp_rooms_is_member(r, "c", "r1"));
    assert_false(adp_rooms_is_member(r, "zz", "r1"));
    assert_false(adp_rooms_is_member(r, "a", "nope"));
    assert_int_equal(adp_rooms_room_size(r, "r1"), 2);
    assert_int_equal(adp_rooms_room_size(r, "r3"), 1);
    assert_int_equal(adp_rooms_room_size(r, "nope"), 0);

    /* idempotent */
    adp_rooms_add(r, "a", &sock_a, "r1");
    assert_int_equal(adp_rooms_room_size(r, "r1"), 2);
    assert_int_equal(adp_rooms_of(r, "a", NULL, 0), 3);
}

static void test_of(void **state)
{
    adp_rooms_t *r = *state;
    const char *out[8];
    size_t n = adp_rooms_of(r, "c", out, 8);
    assert_int_equal(n, 3);
    const char *want[] = {"c", "r2", "r3"};
    for (size_t j = 0; j < 3; j++) {
        int found = 0;
        for (size_t i = 0; i < n; i++)
            found += strcmp(out[i], want[j]) == 0;
        assert_int_equal(found, 1);
    }
    /* max smaller than the total: fills max, reports all */
    const char *one[1] = {NULL};
    assert_int_equal(adp_rooms_of(r, "c", one, 1), 3);
    assert_non_null(one[0]);
    assert_int_equal(adp_rooms_of(r, "unknown", out, 8), 0);
}

static void test_del(void **state)
{
    adp_rooms_t *r = *state;
    adp_rooms_del(r, "a", "r1");
    assert_false(adp_rooms_is_member(r, "a", "r1"));
    assert_true(adp_rooms_has_room(r, "r1"));
    assert_int_equal(adp_rooms_room_size(r, "r1"), 1);
    assert_int_equal(adp_rooms_of(r, "a", NULL, 0), 2);

    /* last member leaves: the room no longer exists */
    adp_rooms_del(r, "b", "r1");
    assert_false(adp_rooms_has_room(r, "r1"));
    assert_int_equal(adp_rooms_room_size(r, "r1"), 0);

    /* no-ops */
    adp_rooms_del(r, "b", "r1");
    adp_rooms_del(r, "zz", "r2");
    adp_rooms_del(r, "a", "zz");
    assert_int_equal(adp_rooms_room_size(r, "r2"), 2);

    /* leaving every room one by one forgets the socket entirely */
    adp_rooms_del(r, "d", "d");
    assert_int_equal(adp_rooms_of(r, "d", NULL, 0), 0);
    assert_false(adp_rooms_has_room(r, "d"));
    assert_string_equal(targets(r, NULL, 0, NULL, 0), "a,b,c");
}

static void test_del_all(void **state)
{
    adp_rooms_t *r = *state;
    adp_rooms_del_all(r, "c");
    assert_false(adp_rooms_has_room(r, "c"));
    assert_false(adp_rooms_has_room(r, "r3"));
    assert_true(adp_rooms_has_room(r, "r2"));
    assert_int_equal(adp_rooms_room_size(r, "r2"), 1);
    assert_int_equal(adp_rooms_of(r, "c", NULL, 0), 0);
    adp_rooms_del_all(r, "c"); /* unknown sid: no-op */
    assert_string_equal(targets(r, NULL, 0, NULL, 0), "a,b,d");

    adp_rooms_del_all(r, "a");
    adp_rooms_del_all(r, "b");
    adp_rooms_del_all(r, "d");
    assert_int_equal(base_map_size(&r->rooms), 0);
    assert_int_equal(base_map_size(&r->sids), 0);
    assert_string_equal(targets(r, NULL, 0, NULL, 0), "");
}

static void test_each_all(void **state)
{
    adp_rooms_t *r = *state;
    const char *const none[] = {NULL};
    assert_string_equal(targets(r, NULL, 0, NULL, 0), "a,b,c,d");
    assert_string_equal(targets(r, none, 0, NULL, 0), "a,b,c,d"); /* n_rooms 0 = all */
}

static void test_each_one_room(void **state)
{
    adp_rooms_t *r = *state;
    const char *const r1[] = {"r1"};
    const char *const r2[] = {"r2"};
    const char *const nope[] = {"nope"};
    assert_string_equal(targets(r, r1, 1, NULL, 0), "a,b");
    assert_string_equal(targets(r, r2, 1, NULL, 0), "a,c");
    assert_string_equal(targets(r, nope, 1, NULL, 0), "");
}

static void test_each_union_dedupe(void **state)
{
    adp_rooms_t *r = *state;
    const char *const r12[] = {"r1", "r2"};
    const char *const r123[] = {"r1", "r2", "r3"};
    const char *const dup[] = {"r1", "r1", "a"};
    const char *const with_missing[] = {"nope", "r3", "d"};
    assert_string_equal(targets(r, r12, 2, NULL, 0), "a,b,c");
    assert_string_equal(targets(r, r123, 3, NULL, 0), "a,b,c");
    assert_string_equal(targets(r, dup, 3, NULL, 0), "a,b");
    assert_string_equal(targets(r, with_missing, 3, NULL, 0), "c,d");
}

static void test_each_except(void **state)
{
    adp_rooms_t *r = *state;
    const char *const r1[] = {"r1"};
    const char *const r12[] = {"r1", "r2"};
    const char *const ex_a[] = {"a"};
    const char *const ex_r2[] = {"r2"};
    const char *const ex_b_r3[] = {"b", "r3"};
    const char *const ex_nope[] = {"nope"};

    /* all sockets minus except */
    assert_string_equal(targets(r, NULL, 0, ex_r2, 1), "b,d");
    assert_string_equal(targets(r, NULL, 0, ex_b_r3, 2), "a,d");
    assert_string_equal(targets(r, NULL, 0, ex_nope, 1), "a,b,c,d");
    /* one room minus except (broadcast.emit from a: to r1 except a) */
    assert_string_equal(targets(r, r1, 1, ex_a, 1), "b");
    assert_string_equal(targets(r, r1, 1, ex_r2, 1), "b");
    /* union minus except */
    assert_string_equal(targets(r, r12, 2, ex_a, 1), "b,c");
    assert_string_equal(targets(r, r12, 2, ex_b_r3, 2), "a");
    assert_string_equal(targets(r, r12, 2, ex_r2, 1), "b");
    /* everything excluded */
    const char *const ex_all[] = {"r1", "r2", "d"};
    assert_string_equal(targets(r, NULL, 0, ex_all, 3), "");
}

static void test_each_empty_index(void **state)
{
    adp_rooms_t r;
    const char *const r12[] = {"r1", "r2"};
    const char *const ex[] = {"x"};
    adp_rooms_init(&r);
    assert_string_equal(targets(&r, NULL, 0, NULL, 0), "");
    assert_string_equal(targets(&r, r12, 1, NULL, 0), "");
    assert_string_equal(targets(&r, r12, 2, ex, 1), "");
    assert_string_equal(targets(&r, NULL, 0, ex, 1), "");
    assert_false(adp_rooms_has_room(&r, "r1"));
    adp_rooms_del_all(&r, "a");
    adp_rooms_del(&r, "a", "r1");
    adp_rooms_clear(&r);
}

/* Many sockets in overlapping rooms: every socket once, none twice. */
typedef struct count_ctx {
    const char *base; /* socks[0]: the pointer's offset is the socket's index */
    int count[1000];
} count_ctx_t;

static void count_fn(void *ud, const char *sid, void *sock)
{
    count_ctx_t *c = ud;
    ptrdiff_t i = (const char *)sock - c->base;
    assert_true(i >= 0 && i < 1000);
    c->count[i]++;
}

static void test_each_many(void **state)
{
    enum { N = 1000 };
    static char socks[N];
    adp_rooms_t r;
    char sid[16], room[16];
    adp_rooms_init(&r);
    /* s<i> is in its own room and in g<i%7>, g<(i+1)%7>, g<(i+2)%7> */
    for (int i = 0; i < N; i++) {
        snprintf(sid, sizeof(sid), "s%d", i);
        adp_rooms_add(&r, sid, &socks[i], sid);
        for (int k = 0; k < 3; k++) {
            snprintf(room, sizeof(room), "g%d", (i + k) % 7);
            adp_rooms_add(&r, sid, &socks[i], room);
        }
    }
    size_t in_g0 = 0;
    for (int i = 0; i < N; i++)
        in_g0 += i % 7 == 0 || i % 7 == 5 || i % 7 == 6;
    assert_int_equal(adp_rooms_room_size(&r, "g0"), in_g0);

    const char *const all7[] = {"g0", "g1", "g2", "g3", "g4", "g5", "g6"};
    const char *const ex_g0[] = {"g0"};
    count_ctx_t *c = test_calloc(1, sizeof(*c));
    c->base = socks;
    adp_rooms_each(&r, all7, 7, NULL, 0, count_fn, c);
    for (int i = 0; i < N; i++)
        assert_int_equal(c->count[i], 1);

    /* minus g0: i%7 in {0, 5, 6} are in g0 */
    memset(c->count, 0, sizeof(c->count));
    adp_rooms_each(&r, all7, 7, ex_g0, 1, count_fn, c);
    for (int i = 0; i < N; i++)
        assert_int_equal(c->count[i], (i % 7 == 0 || i % 7 == 5 || i % 7 == 6) ? 0 : 1);

    /* all sockets, same answer */
    memset(c->count, 0, sizeof(c->count));
    adp_rooms_each(&r, NULL, 0, ex_g0, 1, count_fn, c);
    for (int i = 0; i < N; i++)
        assert_int_equal(c->count[i], (i % 7 == 0 || i % 7 == 5 || i % 7 == 6) ? 0 : 1);

    test_free(c);
    adp_rooms_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_has, setup, teardown),
        cmocka_unit_test_setup_teardown(test_of, setup, teardown),
        cmocka_unit_test_setup_teardown(test_del, setup, teardown),
        cmocka_unit_test_setup_teardown(test_del_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_one_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_union_dedupe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_except, setup, teardown),
        cmocka_unit_test(test_each_empty_index),
        cmocka_unit_test(test_each_many),
    };
    return cmocka_run_group_tests_name("rooms", tests, NULL, NULL);
}
