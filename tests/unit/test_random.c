/* test_random.c -- node/base/random.c: random bytes and the ids built from them (the
 * shape of Node's base64id: 20 characters of base64url). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base_map.h"
#include "base_random.h"

static void test_bytes(void **state)
{
    unsigned char a[64], b[64], zero[64] = {0};

    assert_int_equal(base_random_bytes(a, sizeof(a)), 0);
    assert_int_equal(base_random_bytes(b, sizeof(b)), 0);
    /* 512 random bits twice alike, or all zero, would mean no random source at all */
    assert_memory_not_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_int_equal(base_random_bytes(a, 0), 0);
}

static void test_ids(void **state)
{
    base_map_t seen;
    char id[21];

    base_map_init(&seen);
    for (int i = 0; i < 1000; i++) {
        memset(id, '!', sizeof(id));
        base_random_id(id);
        assert_int_equal(strlen(id), 20);
        assert_int_equal(strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789-_"),
                         20);
        assert_false(base_map_has(&seen, id)); /* 120 bits: never twice */
        base_map_put(&seen, id, NULL);
    }
    base_map_clear(&seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
