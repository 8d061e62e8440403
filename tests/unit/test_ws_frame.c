/* test_ws_frame.c -- node/codec/ws_frame.c: headers of server data frames (RFC 6455 5.2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cd_ws.h"

/* Writes the header for len into a buffer whose "payload" starts at CD_WS_HDR_MAX + 2
 * and checks that nothing outside the header was touched. Returns the header's start. */
static const unsigned char *header(unsigned char *buf, int binary, int deflated, size_t len,
                                   size_t *hlen)
{
    unsigned char *end = buf + 2 + CD_WS_HDR_MAX;

    memset(buf, 0xAA, 4 + CD_WS_HDR_MAX);
    *hlen = cd_ws_header(end, binary, deflated, len);
    for (unsigned char *p = buf; p < end - *hlen; p++)
        assert_int_equal(*p, 0xAA);
    for (unsigned char *p = end; p < buf + 4 + CD_WS_HDR_MAX; p++)
        assert_int_equal(*p, 0xAA);
    return end - *hlen;
}

static void test_short_lengths(void **state)
{
    unsigned char buf[4 + CD_WS_HDR_MAX];
    const size_t lens[] = {0, 1, 125};
    size_t h;

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        const unsigned char *p = header(buf, 0, 0, lens[i], &h);
        assert_int_equal(h, 2);
        assert_int_equal(p[0], 0x81);    /* FIN, text */
        assert_int_equal(p[1], lens[i]); /* no mask bit: a server frame */
    }
}

static void test_16bit_lengths(void **state)
{
    unsigned char buf[4 + CD_WS_HDR_MAX];
    size_t h;
    const unsigned char *p = header(buf, 0, 0, 126, &h);

    assert_int_equal(h, 4);
    assert_memory_equal(p, "\x81\x7e\x00\x7e", 4);
    p = header(buf, 1, 0, 0xffff, &h);
    assert_int_equal(h, 4);
    assert_memory_equal(p, "\x82\x7e\xff\xff", 4);
    p = header(buf, 0, 0, 0x1234, &h);
    assert_memory_equal(p, "\x81\x7e\x12\x34", 4);
}

static void test_64bit_lengths(void **state)
{
    unsigned char buf[4 + CD_WS_HDR_MAX];
    size_t h;
    const unsigned char *p = header(buf, 1, 0, 0x10000, &h);

    assert_int_equal(h, 10);
    assert_memory_equal(p, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
#if SIZE_MAX > 0xffffffffu
    p = header(buf, 0, 0, (size_t)0x0102030405060708ull, &h);
    assert_int_equal(h, 10);
    assert_memory_equal(p, "\x81\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10);
#endif
}

/* RSV1 (0x40) marks a compressed message, in every length form. */
static void test_deflated_sets_rsv1(void **state)
{
    unsigned char buf[4 + CD_WS_HDR_MAX];
    size_t h;

    assert_int_equal(header(buf, 0, 1, 5, &h)[0], 0xC1);
    assert_int_equal(header(buf, 1, 1, 5, &h)[0], 0xC2);
    assert_int_equal(header(buf, 0, 1, 300, &h)[0], 0xC1);
    assert_int_equal(h, 4);
    assert_int_equal(header(buf, 1, 1, 70000, &h)[0], 0xC2);
    assert_int_equal(h, 10);
}

/* Header and payload end up contiguous: the form lws and the flush hand to the socket. */
static void test_contiguous_with_payload(void **state)
{
    unsigned char buf[CD_WS_HDR_MAX + 5];
    size_t h;

    memcpy(buf + CD_WS_HDR_MAX, "hello", 5);
    h = cd_ws_header(buf + CD_WS_HDR_MAX, 0, 0, 5);
    assert_memory_equal(buf + CD_WS_HDR_MAX - h, "\x81\x05hello", h + 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_lengths),           cmocka_unit_test(test_16bit_lengths),
        cmocka_unit_test(test_64bit_lengths),           cmocka_unit_test(test_deflated_sets_rsv1),
        cmocka_unit_test(test_contiguous_with_payload),
    };
    return cmocka_run_group_tests_name("ws_frame", tests, NULL, NULL);
}
