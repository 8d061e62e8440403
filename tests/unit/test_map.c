/* test_map.c -- node/map.c: insert, replace, delete, tombstones, growth, iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base_map.h"

static int setup(void **state)
{
    base_map_t *m = test_malloc(sizeof(*m));
    base_map_init(m);
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    base_map_t *m = *state;
    base_map_clear(m);
    test_free(m);
    return 0;
}

static void test_empty(void **state)
{
    base_map_t *m = *state;
    base_map_iter_t it = {0};
    assert_int_equal(base_map_size(m), 0);
    assert_null(base_map_get(m, "a"));
    assert_false(base_map_has(m, "a"));
    assert_null(base_map_del(m, "a"));
    assert_false(base_map_next(m, &it, NULL, NULL));
}

static void test_insert_get_replace(void **state)
{
    base_map_t *m = *state;
    int a = 1, b = 2, c = 3;
    char key[8] = "alpha";

    assert_null(base_map_put(m, key, &a));
    key[0] = 'X'; /* the map must hold its own copy */
    assert_ptr_equal(base_map_get(m, "alpha"), &a);
    assert_null(base_map_get(m, "Xlpha"));
    assert_null(base_map_put(m, "beta", &b));
    assert_int_equal(base_map_size(m), 2);

    assert_ptr_equal(base_map_put(m, "alpha", &c), &a);
    assert_ptr_equal(base_map_get(m, "alpha"), &c);
    assert_int_equal(base_map_size(m), 2);

    /* a NULL value is a value: has() tells it from an absent key */
    assert_null(base_map_put(m, "", NULL));
    assert_true(base_map_has(m, ""));
    assert_null(base_map_get(m, ""));
    assert_int_equal(base_map_size(m), 3);
}

static void test_delete(void **state)
{
    base_map_t *m = *state;
    int a = 1, b = 2;
    base_map_put(m, "a", &a);
    base_map_put(m, "b", &b);
    assert_ptr_equal(base_map_del(m, "a"), &a);
    assert_null(base_map_del(m, "a"));
    assert_false(base_map_has(m, "a"));
    assert_ptr_equal(base_map_get(m, "b"), &b);
    assert_int_equal(base_map_size(m), 1);
    assert_null(base_map_put(m, "a", &b));
    assert_ptr_equal(base_map_get(m, "a"), &b);
}

/* Deleting inside a chain must leave later keys of the chain reachable, and churn on
 * a fixed key set must not grow the table (tombstones are reused or reclaimed). */
static void test_tombstone_reuse(void **state)
{
    base_map_t *m = *state;
    char key[32];
    int v[6];
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        base_map_put(m, key, &v[i]);
    }
    size_t cap = m->cap;
    assert_int_equal(cap, 16); /* 6 keys with min cap 8 crossed 70% once */

    for (int round = 0; round < 1000; round++) {
        int i = round % 6;
        size_t used = m->used;
        snprintf(key, sizeof(key), "k%d", i);
        assert_ptr_equal(base_map_del(m, key), &v[i]);
        for (int j = 0; j < 6; j++) {
            char other[32];
            snprintf(other, sizeof(other), "k%d", j);
            if (j == i)
                assert_false(base_map_has(m, other));
            else
                assert_ptr_equal(base_map_get(m, other), &v[j]);
        }
        assert_null(base_map_put(m, key, &v[i]));
        assert_true(m->used <= used); /* the tombstone (or reclaimed slot) was reused */
    }
    assert_int_equal(m->cap, cap);
    assert_int_equal(base_map_size(m), 6);

    /* Fresh keys churned through one slot's worth of space: still no growth. */
    for (int round = 0; round < 1000; round++) {
        snprintf(key, sizeof(key), "tmp%d", round);
        base_map_put(m, key, &v[0]);
        assert_ptr_equal(base_map_del(m, key), &v[0]);
    }
    assert_int_equal(m->cap, cap);
    assert_int_equal(base_map_size(m), 6);
    assert_true(m->used >= m->size && m->used <= m->cap);
}

static void test_grow_10k(void **state)
{
    base_map_t *m = *state;
    char key[32];
    enum { N = 10000 };
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "socket-%lu", (unsigned long)i);
        assert_null(base_map_put(m, key, (void *)(i + 1)));
    }
    assert_int_equal(base_map_size(m), N);
    assert_true((m->cap & (m->cap - 1)) == 0);
    assert_true(m->used * 10 <= m->cap * 7);
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "socket-%lu", (unsigned long)i);
        assert_ptr_equal(base_map_get(m, key), (void *)(i + 1));
    }
    assert_null(base_map_get(m, "socket-10000"));

    /* delete the even half, the odd half is intact */
    for (uintptr_t i = 0; i < N; i += 2) {
        snprintf(key, sizeof(key), "socket-%lu", (unsigned long)i);
        assert_ptr_equal(base_map_del(m, key), (void *)(i + 1));
    }
    assert_int_equal(base_map_size(m), N / 2);
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "socket-%lu", (unsigned long)i);
        if (i % 2)
            assert_ptr_equal(base_map_get(m, key), (void *)(i + 1));
        else
            assert_false(base_map_has(m, key));
    }
}

static void test_iterate(void **state)
{
    base_map_t *m = *state;
    char key[32];
    enum { N = 100 };
    int seen[N] = {0};
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "%lu", (unsigned long)i);
        base_map_put(m, key, (void *)i);
    }
    base_map_iter_t it = {0};
    const char *k;
    void *v;
    size_t n = 0;
    while (base_map_next(m, &it, &k, &v)) {
        uintptr_t i = (uintptr_t)v;
        assert_true(i < N);
        snprintf(key, sizeof(key), "%lu", (unsigned long)i);
        assert_string_equal(k, key);
        seen[i]++;
        n++;
    }
    assert_int_equal(n, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
}

/* Deleting the entry just returned is allowed and must not skip or repeat others. */
static void test_iterate_delete(void **state)
{
    base_map_t *m = *state;
    char key[32];
    enum { N = 500 };
    int seen[N] = {0};
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "room:%lu", (unsigned long)i);
        base_map_put(m, key, (void *)i);
    }
    base_map_iter_t it = {0};
    const char *k;
    void *v;
    while (base_map_next(m, &it, &k, &v)) {
        uintptr_t i = (uintptr_t)v;
        seen[i]++;
        if (i % 3 != 0)
            assert_ptr_equal(base_map_del(m, k), v);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(base_map_size(m), (N + 2) / 3);
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "room:%lu", (unsigned long)i);
        assert_int_equal(base_map_has(m, key), i % 3 == 0);
    }

    /* delete everything while iterating: the map ends empty and still works */
    base_map_iter_t it2 = {0};
    while (base_map_next(m, &it2, &k, NULL))
        base_map_del(m, k);
    assert_int_equal(base_map_size(m), 0);
    assert_null(base_map_put(m, "again", NULL));
    assert_true(base_map_has(m, "again"));
}

static void test_clear_reuse(void **state)
{
    base_map_t *m = *state;
    base_map_put(m, "a", NULL);
    base_map_put(m, "b", NULL);
    base_map_clear(m);
    assert_int_equal(base_map_size(m), 0);
    assert_int_equal(m->cap, 0);
    assert_false(base_map_has(m, "a"));
    base_map_put(m, "c", NULL);
    assert_true(base_map_has(m, "c"));
}

/* The hash is SipHash: the reference vectors of SipHash-2-4 (key 00..0f; the empty message
 * and the 15-byte message 00..0e), and 1-3 under two keys differs (a keyed hash). */
static void test_siphash(void **state)
{
    unsigned char key[16], msg[15], other[16];
    for (int i = 0; i < 16; i++) {
        key[i] = (unsigned char)i;
        other[i] = (unsigned char)(0xa0 + i);
    }
    for (int i = 0; i < 15; i++)
        msg[i] = (unsigned char)i;
    assert_true(base__siphash(msg, 0, key, 2, 4) == 0x726fdb47dd0e0e31ull);
    assert_true(base__siphash(msg, 15, key, 2, 4) == 0xa129ca6149be45e5ull);
    assert_true(base__siphash("room", 4, key, 1, 3) != base__siphash("room", 4, other, 1, 3));
    assert_true(base__siphash("room", 4, key, 1, 3) != base__siphash("rooM", 4, key, 1, 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_get_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstone_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grow_10k, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterate_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_reuse, setup, teardown),
        cmocka_unit_test(test_siphash),
    };
    return cmocka_run_group_tests_name("map", tests, NULL, NULL);
}
