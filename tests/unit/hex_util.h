/* hex_util.h -- hex text <-> bytes for the codec unit tests (header-only).
 *
 * test_rds_wire.c and test_msgpack.c write their msgpack vectors as hex (as captured from
 * notepack.io) and compare what the encoders write as hex, so a failure prints both sides
 * readably. Include it after <cmocka.h>.
 */
#ifndef SOCKEYE_TESTS_HEX_UTIL_H
#define SOCKEYE_TESTS_HEX_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockeye_common.h"

/* Hex text (spaces allowed) -> new buffer (free); *len its size. */
static inline unsigned char *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex), o = 0;
    unsigned char *b = malloc(n / 2 + 1);
    assert_non_null(b);
    for (size_t i = 0; i < n;) {
        unsigned v;
        if (hex[i] == ' ') {
            i++;
            continue;
        }
        assert_true(i + 1 < n);
        assert_int_equal(sscanf(hex + i, "%2x", &v), 1);
        b[o++] = (unsigned char)v;
        i += 2;
    }
    *len = o;
    return b;
}

/* Bytes -> new lower-case hex text (free). */
static inline char *tohex(const unsigned char *b, size_t n)
{
    char *s = malloc(2 * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        sprintf(s + 2 * i, "%02x", b[i]);
    s[2 * n] = '\0';
    return s;
}

/* Fails unless b holds exactly the bytes of hex (spaces allowed), showing both as hex. */
static inline void assert_bin_hex(const sio_bin_t *b, const char *hex)
{
    size_t n;
    unsigned char *want = unhex(hex, &n);
    char *got = tohex(b->data, b->len);
    char *exp = tohex(want, n);
    assert_string_equal(got, exp);
    free(got);
    free(exp);
    free(want);
}

#endif
