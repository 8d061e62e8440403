/* test_base64.c -- node/base64.c: RFC 4648 vectors, the spec's binary records, strictness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base_base64.h"

/* Encodes in, checks the text, decodes it back and checks the bytes. */
static void check_pair(const void *in, size_t n, const char *b64)
{
    char enc[256];
    unsigned char dec[256];
    size_t declen = 12345;

    assert_int_equal(base_b64_enclen(n), strlen(b64));
    assert_int_equal(base_b64_encode(in, n, enc), strlen(b64));
    assert_memory_equal(enc, b64, strlen(b64));
    assert_int_equal(base_b64_decode(b64, strlen(b64), dec, &declen), 0);
    assert_int_equal(declen, n);
    if (n)
        assert_memory_equal(dec, in, n);
}

static int decodes(const char *s)
{
    unsigned char out[64];
    size_t len;

    return base_b64_decode(s, strlen(s), out, &len) == 0;
}

static void test_rfc4648_vectors(void **state)
{
    check_pair("", 0, "");
    check_pair("f", 1, "Zg==");
    check_pair("fo", 2, "Zm8=");
    check_pair("foo", 3, "Zm9v");
    check_pair("foob", 4, "Zm9vYg==");
    check_pair("fooba", 5, "Zm9vYmE=");
    check_pair("foobar", 6, "Zm9vYmFy");
}

/* The binary records of spec section 4 (examples 2, 3 and 6). */
static void test_spec_records(void **state)
{
    static const unsigned char deadbeef[] = {0xDE, 0xAD, 0xBE, 0xEF};
    static const unsigned char one_to_four[] = {1, 2, 3, 4};
    static const unsigned char nine_eight[] = {0x09, 0x08};
    static const unsigned char high[] = {0xFB, 0xFF, 0xBF};

    check_pair(deadbeef, 4, "3q2+7w==");
    check_pair(one_to_four, 4, "AQIDBA==");
    check_pair(nine_eight, 2, "CQg=");
    check_pair(high, 3, "+/+/"); /* both non-alphanumeric characters */
}

/* Every length and byte value survives encode then decode. */
static void test_roundtrip_all_lengths(void **state)
{
    unsigned char in[300], dec[300];
    char enc[400];
    size_t declen;

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(in); n++) {
        size_t el = base_b64_encode(in, n, enc);
        assert_int_equal(el, base_b64_enclen(n));
        assert_int_equal(base_b64_decode(enc, el, dec, &declen), 0);
        assert_int_equal(declen, n);
        assert_memory_equal(dec, in, n);
    }
}

static void test_rejects_bad_length(void **state)
{
    assert_false(decodes("A"));
    assert_false(decodes("AQ"));
    assert_false(decodes("AQI"));
    assert_false(decodes("AQIDB"));
    assert_false(decodes("Zg=")); /* padding required */
    assert_false(decodes("Zg"));
}

static void test_rejects_bad_chars(void **state)
{
    assert_false(decodes("Zm9v YmFy")); /* whitespace */
    assert_false(decodes("Zm9v\nYmFy"));
    assert_false(decodes("Zm9-")); /* url-safe alphabet is not ours */
    assert_false(decodes("Zm9_"));
    assert_false(decodes("Zm*v"));
    assert_false(decodes("Zm9\xC3"));
    assert_int_equal(base_b64_decode("Zm\0v", 4, (unsigned char[4]){0}, &(size_t){0}), -1);
}

static void test_rejects_bad_padding(void **state)
{
    assert_false(decodes("===="));
    assert_false(decodes("A==="));
    assert_false(decodes("Zg==Zg==")); /* padding before the last quantum */
    assert_false(decodes("Z=g="));
    assert_false(decodes("Zm=v"));
    assert_false(decodes("=Zm9"));
}

/* Unused trailing bits must be zero, so that decoding is the inverse of encoding. */
static void test_rejects_noncanonical(void **state)
{
    assert_true(decodes("AQ=="));
    assert_false(decodes("AR=="));
    assert_true(decodes("AQI="));
    assert_false(decodes("AQJ="));
}

int main(void)
{
    /* one test per line */
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_spec_records),
        cmocka_unit_test(test_roundtrip_all_lengths),
        cmocka_unit_test(test_rejects_bad_length),
        cmocka_unit_test(test_rejects_bad_chars),
        cmocka_unit_test(test_rejects_bad_padding),
        cmocka_unit_test(test_rejects_noncanonical),
    };
    /* clang-format on */
    return cmocka_run_group_tests_name("base64", tests, NULL, NULL);
}
