/* test_deflate.c -- node/codec/deflate.c: permessage-deflate (RFC 7692) over buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base_alloc.h"
#include "cd_deflate.h"

#define HEADROOM 10

/* Text that compresses well, as JSON events do. */
static unsigned char *json_like(size_t len)
{
    static const char rec[] = "{\"event\":\"tick\",\"room\":\"lobby\",\"n\":12345},";
    unsigned char *p = base_malloc(len);

    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)rec[i % (sizeof(rec) - 1)];
    return p;
}

/* Bytes that do not compress (xorshift). */
static unsigned char *noise(size_t len)
{
    unsigned char *p = base_malloc(len);
    uint32_t x = 2463534242u;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
    return p;
}

/* Inflates in chunks of step bytes (the way frames arrive in pieces). */
static int inflate_chunks(cd_inflate_t *st, const unsigned char *in, size_t len, size_t step,
                          cd_msgbuf_t *out, size_t limit)
{
    size_t off = 0;
    int rc;

    do {
        size_t n = len - off < step ? len - off : step;
        rc = cd_inflate_msg(st, in + off, n, off + n == len, out, limit);
        off += n;
    } while (rc == CD_INFLATE_OK && off < len);
    return rc;
}

static void test_roundtrip(void **state)
{
    const size_t lens[] = {200, 5000, 100000};
    cd_deflate_t d = {0};
    cd_inflate_t in = {0};

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        unsigned char *msg = json_like(lens[i]);
        size_t zlen = 0;
        unsigned char *z = cd_deflate_msg(&d, msg, lens[i], HEADROOM, &zlen);
        cd_msgbuf_t out = {0};

        assert_non_null(z);
        assert_true(zlen > 0 && zlen < lens[i]);
        /* the sync-flush marker is dropped, as RFC 7692 wants */
        assert_false(zlen >= 4 && memcmp(z + HEADROOM + zlen - 4, "\0\0\xff\xff", 4) == 0);
        /* one inflater for every message: the sender resets, so no window is shared */
        assert_int_equal(inflate_chunks(&in, z + HEADROOM, zlen, 7, &out, lens[i]), CD_INFLATE_OK);
        assert_int_equal(out.len, lens[i]);
        assert_memory_equal(out.p, msg, lens[i]);
        base_free(out.p);
        base_free(z);
        base_free(msg);
    }
    cd_deflate_end(&d);
    assert_null(d.z);
    cd_inflate_end(&in);
    assert_null(in.z);
}

/* Each message is compressed from a fresh window: the second of two equal messages
 * inflates on its own, with a new inflater. */
static void test_no_context_takeover(void **state)
{
    unsigned char *msg = json_like(3000);
    cd_deflate_t d = {0};
    size_t l1, l2;
    unsigned char *z1 = cd_deflate_msg(&d, msg, 3000, 0, &l1);
    unsigned char *z2 = cd_deflate_msg(&d, msg, 3000, 0, &l2);
    cd_inflate_t in = {0};
    cd_msgbuf_t out = {0};

    assert_non_null(z1);
    assert_non_null(z2);
    assert_int_equal(l1, l2);
    assert_memory_equal(z1, z2, l1);
    assert_int_equal(cd_inflate_msg(&in, z2, l2, 1, &out, 3000), CD_INFLATE_OK);
    assert_int_equal(out.len, 3000);
    assert_memory_equal(out.p, msg, 3000);
    cd_inflate_end(&in);
    cd_deflate_end(&d);
    base_free(out.p);
    base_free(z1);
    base_free(z2);
    base_free(msg);
}

/* RFC 7692 7.2.3.1 and 7.2.3.2: "Hello", then "Hello" again with the window shared
 * (a client with context takeover); the inflater keeps its window between messages. */
static void test_rfc_examples(void **state)
{
    static const unsigned char m1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    static const unsigned char m2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    cd_inflate_t in = {0};
    cd_msgbuf_t out = {0};

    assert_int_equal(cd_inflate_msg(&in, m1, sizeof(m1), 1, &out, 100), CD_INFLATE_OK);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.p, "Hello", 5);
    out.len = 0;
    assert_int_equal(cd_inflate_msg(&in, m2, sizeof(m2), 1, &out, 100), CD_INFLATE_OK);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.p, "Hello", 5);
    cd_inflate_end(&in);
    base_free(out.p);
}

/* Compressing does not pay: the message goes out as it is (NULL). */
static void test_does_not_pay(void **state)
{
    unsigned char *rnd = noise(2000);
    cd_deflate_t d = {0};
    size_t zlen = 123;

    assert_null(cd_deflate_msg(&d, rnd, 2000, HEADROOM, &zlen));
    assert_null(cd_deflate_msg(&d, (const unsigned char *)"Hello", 5, HEADROOM, &zlen));
    assert_null(cd_deflate_msg(&d, (const unsigned char *)"", 0, HEADROOM, &zlen));
    /* the stream is still good afterwards */
    unsigned char *msg = json_like(2000);
    unsigned char *z = cd_deflate_msg(&d, msg, 2000, HEADROOM, &zlen);
    assert_non_null(z);
    base_free(z);
    base_free(msg);
    base_free(rnd);
    cd_deflate_end(&d);
}

/* A deflate bomb stops right past the limit: never more than limit + 1 bytes held. */
static void test_inflate_limit(void **state)
{
    unsigned char *zeros = base_calloc(1, 1000000);
    cd_deflate_t d = {0};
    cd_inflate_t in = {0};
    cd_msgbuf_t out = {0};
    size_t zlen;
    unsigned char *z = cd_deflate_msg(&d, zeros, 1000000, 0, &zlen);

    assert_non_null(z);
    assert_true(zlen < 10000); /* about 1000:1, deflate's best */
    assert_int_equal(cd_inflate_msg(&in, z, zlen, 1, &out, 10000), CD_INFLATE_TOO_BIG);
    assert_true(out.cap <= 10001);
    assert_true(out.len > 10000);
    cd_inflate_end(&in);
    base_free(out.p);

    /* exactly at the limit is fine */
    memset(&out, 0, sizeof(out));
    base_free(z);
    z = cd_deflate_msg(&d, zeros, 10000, 0, &zlen);
    assert_non_null(z);
    assert_int_equal(cd_inflate_msg(&in, z, zlen, 1, &out, 10000), CD_INFLATE_OK);
    assert_int_equal(out.len, 10000);
    cd_inflate_end(&in);
    cd_deflate_end(&d);
    base_free(out.p);
    base_free(z);
    base_free(zeros);
}

static void test_inflate_corrupt(void **state)
{
    /* BFINAL=1 with the reserved block type 11 */
    static const unsigned char bad[] = {0x07, 0x00, 0x00};
    unsigned char *msg = json_like(4000);
    cd_deflate_t d = {0};
    cd_inflate_t in = {0};
    cd_msgbuf_t out = {0};
    size_t zlen;
    unsigned char *z;

    assert_int_equal(cd_inflate_msg(&in, bad, sizeof(bad), 1, &out, 1000), CD_INFLATE_CORRUPT);
    cd_inflate_end(&in);

    /* a good message with its middle overwritten */
    z = cd_deflate_msg(&d, msg, 4000, 0, &zlen);
    assert_non_null(z);
    memset(z + zlen / 3, 0xff, zlen / 3);
    out.len = 0;
    assert_int_equal(cd_inflate_msg(&in, z, zlen, 1, &out, 100000), CD_INFLATE_CORRUPT);
    cd_inflate_end(&in);
    cd_deflate_end(&d);
    base_free(out.p);
    base_free(z);
    base_free(msg);
}

static void test_msgbuf_grow(void **state)
{
    cd_msgbuf_t b = {0};

    cd_msgbuf_grow(&b, 10, 1000000);
    assert_int_equal(b.cap, 4096);
    cd_msgbuf_grow(&b, 5000, 1000000);
    assert_int_equal(b.cap, 8192);
    cd_msgbuf_grow(&b, 9000, 10000);
    assert_int_equal(b.cap, 10001); /* capped at limit + 1 */
    base_free(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),     cmocka_unit_test(test_no_context_takeover),
        cmocka_unit_test(test_rfc_examples),  cmocka_unit_test(test_does_not_pay),
        cmocka_unit_test(test_inflate_limit), cmocka_unit_test(test_inflate_corrupt),
        cmocka_unit_test(test_msgbuf_grow),
    };
    return cmocka_run_group_tests_name("deflate", tests, NULL, NULL);
}
