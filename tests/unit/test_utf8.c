/* test_utf8.c -- node/codec/utf8.c: UTF-8 checked and repaired as Node.js decodes it.
 *
 * Expected outputs follow the WHATWG decoder (Buffer.toString, TextDecoder): one U+FFFD
 * per maximal ill-formed subsequence (Unicode 15 §3.9, "U+FFFD Substitution of Maximal
 * Subparts"), e.g. Buffer.from("e282", "hex").toString() is "\ufffd" but
 * Buffer.from("eda080", "hex").toString() is "\ufffd\ufffd\ufffd".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cd_utf8.h"

#define R "\xef\xbf\xbd" /* U+FFFD */

/* in -> want, with the measured length, the changed flag and cd_utf8_valid agreeing. */
static void check(const char *in, size_t n, const char *want, size_t want_n)
{
    unsigned char out[64];
    int changed = -1;
    size_t m = cd_utf8_repair((const unsigned char *)in, n, NULL, &changed);

    assert_int_equal(m, want_n);
    assert_true(m <= sizeof(out));
    memset(out, 0x5a, sizeof(out));
    assert_int_equal(cd_utf8_repair((const unsigned char *)in, n, out, &changed), want_n);
    assert_memory_equal(out, want, want_n);
    if (want_n < sizeof(out))
        assert_int_equal(out[want_n], 0x5a); /* nothing written past the result */
    assert_int_equal(changed, n != want_n || memcmp(in, want, n) != 0);
    assert_int_equal(cd_utf8_valid((const unsigned char *)in, n), !changed);
}

#define CHECK(in, want) check(in, sizeof(in) - 1, want, sizeof(want) - 1)

/* Well-formed text is kept byte for byte, at every boundary of table 3-7. */
static void test_valid(void **state)
{
    CHECK("", "");
    CHECK("plain ascii \x01\x7f", "plain ascii \x01\x7f");
    CHECK("\xc2\x80", "\xc2\x80");                 /* U+0080 */
    CHECK("\xdf\xbf", "\xdf\xbf");                 /* U+07FF */
    CHECK("\xe0\xa0\x80", "\xe0\xa0\x80");         /* U+0800 */
    CHECK("\xed\x9f\xbf", "\xed\x9f\xbf");         /* U+D7FF, below the surrogates */
    CHECK("\xee\x80\x80", "\xee\x80\x80");         /* U+E000, above them */
    CHECK("\xef\xbf\xbf", "\xef\xbf\xbf");         /* U+FFFF */
    CHECK("\xf0\x90\x80\x80", "\xf0\x90\x80\x80"); /* U+10000 */
    CHECK("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"); /* U+10FFFF */
    CHECK("\xf0\x9f\x98\x80 \xc3\xa9", "\xf0\x9f\x98\x80 \xc3\xa9");
    CHECK(R, R); /* U+FFFD itself is well-formed */
    /* NUL is an ordinary character here (the callers refuse it where they must) */
    check("a\0b", 3, "a\0b", 3);
}

/* Each maximal ill-formed subsequence costs one U+FFFD; the byte that broke a sequence
 * starts the next one. */
static void test_repair(void **state)
{
    CHECK("\x80", R);                   /* lone continuation */
    CHECK("\xbf\x80", R R);             /* two of them: one each */
    CHECK("\xc0\x80", R R);             /* overlong NUL: C0 never leads */
    CHECK("\xc1\xbf", R R);             /* C1 never leads */
    CHECK("\xe0\x80\x80", R R R);       /* overlong 3-byte: E0 needs A0..BF */
    CHECK("\xe0\x9f\xbf", R R R);       /* overlong U+07FF */
    CHECK("\xed\xa0\x80", R R R);       /* surrogate U+D800: ED needs 80..9F */
    CHECK("\xed\xbf\xbf", R R R);       /* surrogate U+DFFF */
    CHECK("\xf0\x80\x80\x80", R R R R); /* overlong 4-byte: F0 needs 90..BF */
    CHECK("\xf4\x90\x80\x80", R R R R); /* past U+10FFFF: F4 needs 80..8F */
    CHECK("\xf5\x80\x80\x80", R R R R); /* F5..FF never lead */
    CHECK("\xff", R);
    CHECK("\xfe\xff", R R);
    CHECK("\xe2\x82", R);     /* truncated at the end: one */
    CHECK("\xf0\x9f\x98", R); /* truncated 4-byte: one */
    CHECK("\xe2\x82"
          "A",
          R "A");                                    /* broken by ASCII, which is kept */
    CHECK("\xe2\x82\xe2\x82\xac", R "\xe2\x82\xac"); /* broken by a new lead */
    CHECK("\xf0\x9f\x98\xc3\xa9", R "\xc3\xa9");
    CHECK("\xc3", R);
    CHECK("a\xffz", "a" R "z");
    CHECK("\xc3\xa9\xff\xc3", "\xc3\xa9" R R);
    CHECK("\xe0\x80\x80\xf4\x90\x80\x80\xf0\x9f\x98\x80", R R R R R R R "\xf0\x9f\x98\x80");
}

/* The result can be three times the input (every byte replaced), never more. */
static void test_growth(void **state)
{
    unsigned char in[16], out[48];
    int changed;

    memset(in, 0x80, sizeof(in));
    assert_int_equal(cd_utf8_repair(in, sizeof(in), NULL, &changed), 48);
    assert_int_equal(cd_utf8_repair(in, sizeof(in), out, &changed), 48);
    assert_true(changed);
    for (size_t i = 0; i < sizeof(out); i += 3)
        assert_memory_equal(out + i, R, 3);
    assert_false(cd_utf8_valid(in, sizeof(in)));
    assert_true(cd_utf8_valid(in, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_repair),
        cmocka_unit_test(test_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
