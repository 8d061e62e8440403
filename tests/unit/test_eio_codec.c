/* test_eio_codec.c -- node/codec/eio_codec.c: packets, polling payloads (spec 1.4, 1.6, 4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base_alloc.h"
#include "base_base64.h"
#include "base_frame.h"
#include "cd_eio.h"
#include "cd_sio.h"

#define RS "\x1e"

/* Packets seen by the callback, copied out (binary data lives only during the call). */
typedef struct seen {
    int n;
    int stop_at; /* return 7 from the callback for this packet index (-1: never) */
    struct {
        cd_eio_ptype_t type;
        int binary;
        char data[128];
        size_t len;
    } p[16];
} seen_t;

static int collect(void *ud, const cd_eio_packet_t *p)
{
    seen_t *s = ud;

    assert_true(s->n < 16);
    assert_non_null(p->data);
    assert_true(p->len <= sizeof(s->p[0].data));
    s->p[s->n].type = p->type;
    s->p[s->n].binary = p->binary;
    s->p[s->n].len = p->len;
    memcpy(s->p[s->n].data, p->data, p->len);
    return s->n++ == s->stop_at ? 7 : 0;
}

static int walk(const char *body, size_t len, seen_t *s)
{
    memset(s, 0, sizeof(*s));
    s->stop_at = -1;
    return cd_eio_decode_payload(body, len, collect, s);
}

#define WALK(lit, s) walk(lit, sizeof(lit) - 1, s)

static void assert_pkt(const seen_t *s, int i, cd_eio_ptype_t type, int binary, const void *data,
                       size_t len)
{
    assert_int_equal(s->p[i].type, type);
    assert_int_equal(s->p[i].binary, binary);
    assert_int_equal(s->p[i].len, len);
    assert_memory_equal(s->p[i].data, data, len);
}

/* ---------------------------------------------------------------- single packets */

static void test_text_every_type(void **state)
{
    static const char *const wire[] = {"0{\"sid\":\"x\"}", "1", "2", "3probe", "4hello", "5", "6"};
    cd_eio_packet_t p;

    for (int t = 0; t <= 6; t++) {
        assert_int_equal(cd_eio_decode_text(wire[t], strlen(wire[t]), &p), 0);
        assert_int_equal(p.type, t);
        assert_int_equal(p.binary, 0);
        assert_ptr_equal(p.data, wire[t] + 1); /* no copy */
        assert_int_equal(p.len, strlen(wire[t]) - 1);
    }
}

static void test_text_rejects(void **state)
{
    cd_eio_packet_t p;

    assert_int_equal(cd_eio_decode_text("", 0, &p), -1);
    assert_int_equal(cd_eio_decode_text("abc", 3, &p), -1); /* spec 5.1: "abc" closes */
    assert_int_equal(cd_eio_decode_text("7", 1, &p), -1);
    assert_int_equal(cd_eio_decode_text("9x", 2, &p), -1);
    assert_int_equal(cd_eio_decode_text("/", 1, &p), -1);
    assert_int_equal(cd_eio_decode_text("bAQIDBA==", 9, &p), -1);
}

/* ---------------------------------------------------------------- payload decoding */

static void test_payload_single(void **state)
{
    seen_t s;

    assert_int_equal(WALK("4hello", &s), 0);
    assert_int_equal(s.n, 1);
    assert_pkt(&s, 0, CD_EIO_MESSAGE, 0, "hello", 5);
}

/* spec 5.1: three packets in one POST. */
static void test_payload_three(void **state)
{
    seen_t s;

    assert_int_equal(WALK("4test1" RS "4test2" RS "4test3", &s), 0);
    assert_int_equal(s.n, 3);
    assert_pkt(&s, 0, CD_EIO_MESSAGE, 0, "test1", 5);
    assert_pkt(&s, 1, CD_EIO_MESSAGE, 0, "test2", 5);
    assert_pkt(&s, 2, CD_EIO_MESSAGE, 0, "test3", 5);
}

/* spec 5.1: text then binary record. */
static void test_payload_binary(void **state)
{
    seen_t s;

    assert_int_equal(WALK("4hello" RS "bAQIDBA==", &s), 0);
    assert_int_equal(s.n, 2);
    assert_pkt(&s, 0, CD_EIO_MESSAGE, 0, "hello", 5);
    assert_pkt(&s, 1, CD_EIO_MESSAGE, 1, "\x01\x02\x03\x04", 4);
}

/* Worked example 2, polling form. */
static void test_payload_example2(void **state)
{
    static const char body[] =
        "451-/chat,[\"file\",{\"_placeholder\":true,\"num\":0}]" RS "b3q2+7w==";
    seen_t s;

    assert_int_equal(walk(body, sizeof(body) - 1, &s), 0);
    assert_int_equal(s.n, 2);
    assert_pkt(&s, 0, CD_EIO_MESSAGE, 0, "51-/chat,[\"file\",{\"_placeholder\":true,\"num\":0}]",
               strlen("51-/chat,[\"file\",{\"_placeholder\":true,\"num\":0}]"));
    assert_pkt(&s, 1, CD_EIO_MESSAGE, 1, "\xDE\xAD\xBE\xEF", 4);
}

/* Worked example 3 (POST) and example 4 (GET). */
static void test_payload_examples3_4(void **state)
{
    seen_t s;

    assert_int_equal(WALK("451-7[\"up\",{\"_placeholder\":true,\"num\":0}]" RS "bAQIDBA==", &s), 0);
    assert_int_equal(s.n, 2);
    assert_pkt(&s, 0, CD_EIO_MESSAGE, 0, "51-7[\"up\",{\"_placeholder\":true,\"num\":0}]",
               strlen("51-7[\"up\",{\"_placeholder\":true,\"num\":0}]"));
    assert_pkt(&s, 1, CD_EIO_MESSAGE, 1, "\x01\x02\x03\x04", 4);

    assert_int_equal(WALK("40{\"sid\":\"8u1NNn8uVI0XpoM8AAAA\"}" RS "42[\"auth\",{}]", &s), 0);
    assert_int_equal(s.n, 2);
    assert_pkt(&s, 0, CD_EIO_MESSAGE, 0, "0{\"sid\":\"8u1NNn8uVI0XpoM8AAAA\"}",
               strlen("0{\"sid\":\"8u1NNn8uVI0XpoM8AAAA\"}"));
    assert_pkt(&s, 1, CD_EIO_MESSAGE, 0, "2[\"auth\",{}]", strlen("2[\"auth\",{}]"));
}

static void test_payload_control_packets(void **state)
{
    seen_t s;

    assert_int_equal(WALK("3" RS "1", &s), 0);
    assert_int_equal(s.n, 2);
    assert_pkt(&s, 0, CD_EIO_PONG, 0, "", 0);
    assert_pkt(&s, 1, CD_EIO_CLOSE, 0, "", 0);
}

/* An empty "b" record is a zero-length binary message, with a non-NULL pointer. */
static void test_payload_empty_binary(void **state)
{
    seen_t s;

    assert_int_equal(WALK("b", &s), 0);
    assert_int_equal(s.n, 1);
    assert_pkt(&s, 0, CD_EIO_MESSAGE, 1, "", 0);
}

static void test_payload_rejects_empty(void **state)
{
    seen_t s;

    assert_int_equal(walk("", 0, &s), -1);
    assert_int_equal(s.n, 0);
    assert_int_equal(WALK(RS, &s), -1);
    assert_int_equal(s.n, 0);
    assert_int_equal(WALK(RS "4a", &s), -1); /* leading empty record */
    assert_int_equal(s.n, 0);
    assert_int_equal(WALK("4a" RS, &s), -1); /* trailing empty record */
    assert_int_equal(s.n, 1);
    assert_int_equal(WALK("4a" RS RS "4b", &s), -1);
    assert_int_equal(s.n, 1);
}

static void test_payload_rejects_bad_type(void **state)
{
    seen_t s;

    assert_int_equal(WALK("abc", &s), -1); /* spec 5.1: POST "abc" closes the session */
    assert_int_equal(s.n, 0);
    assert_int_equal(WALK("4ok" RS "7", &s), -1);
    assert_int_equal(s.n, 1);
    assert_int_equal(WALK("4ok" RS "x4", &s), -1);
    assert_int_equal(s.n, 1);
}

/* Bad base64 stops the walk before the callback sees that record. */
static void test_payload_rejects_bad_base64(void **state)
{
    seen_t s;

    assert_int_equal(WALK("bAQIDBA=", &s), -1);
    assert_int_equal(s.n, 0);
    assert_int_equal(WALK("4a" RS "bAQ*DBA==" RS "4b", &s), -1);
    assert_int_equal(s.n, 1);
    assert_int_equal(WALK("4a" RS "b AQIDBA==", &s), -1);
    assert_int_equal(s.n, 1);
}

/* The record separator ends a record even inside what looks like JSON. */
static void test_payload_separator_splits(void **state)
{
    seen_t s;

    assert_int_equal(WALK("42[\"a" RS "4b\"]", &s), 0);
    assert_int_equal(s.n, 2);
    assert_pkt(&s, 0, CD_EIO_MESSAGE, 0, "2[\"a", 4);
    assert_pkt(&s, 1, CD_EIO_MESSAGE, 0, "b\"]", 3);
}

static void test_payload_callback_stops(void **state)
{
    static const char body[] = "4a" RS "4b" RS "4c";
    seen_t s;

    memset(&s, 0, sizeof(s));
    s.stop_at = 1;
    assert_int_equal(cd_eio_decode_payload(body, sizeof(body) - 1, collect, &s), 7);
    assert_int_equal(s.n, 2);
}

/* Several large binary records: the scratch buffer grows and nothing leaks (ASan). */
typedef struct big_ctx {
    const unsigned char *bytes;
    const size_t *sizes;
    int n;
} big_ctx_t;

static int check_big(void *ud, const cd_eio_packet_t *p)
{
    big_ctx_t *c = ud;

    assert_int_equal(p->binary, 1);
    assert_int_equal(p->len, c->sizes[c->n]);
    assert_memory_equal(p->data, c->bytes, p->len);
    c->n++;
    return 0;
}

static void test_payload_large_binary(void **state)
{
    static const size_t sizes[4] = {10, 3000, 200, 2999};
    unsigned char bytes[3000];
    char *body = base_malloc(4 * (1 + base_b64_enclen(sizeof(bytes))));
    size_t o = 0;
    big_ctx_t c = {bytes, sizes, 0};

    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (unsigned char)(i ^ (i >> 8));
    for (int k = 0; k < 4; k++) {
        if (k)
            body[o++] = CD_EIO_RS;
        body[o++] = 'b';
        o += base_b64_encode(bytes, sizes[k], body + o);
    }
    assert_int_equal(cd_eio_decode_payload(body, o, check_big, &c), 0);
    assert_int_equal(c.n, 4);
    base_free(body);
}

/* ---------------------------------------------------------------- payload encoding */

static void test_payload_len_write_text(void **state)
{
    base_frame_t *f[3] = {
        base_frame_from("4test1", 6, 0),
        base_frame_from("4test2", 6, 0),
        base_frame_from("2", 1, 0),
    };
    char out[64];
    static const char want[] = "4test1" RS "4test2" RS "2";

    assert_int_equal(cd_eio_payload_len(f, 3), sizeof(want) - 1);
    assert_int_equal(cd_eio_payload_write(f, 3, out), sizeof(want) - 1);
    assert_memory_equal(out, want, sizeof(want) - 1);
    assert_int_equal(cd_eio_payload_len(f, 0), 0);
    assert_int_equal(cd_eio_payload_write(f, 0, out), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f[i]->refcnt, 1); /* writing takes no reference */
        base_frame_unref(f[i]);
    }
}

/* Worked example 2: frames from the Socket.IO encoder, written as one polling body. */
static void test_payload_write_example2(void **state)
{
    static const char want[] =
        "451-/chat,[\"file\",{\"_placeholder\":true,\"num\":0}]" RS "b3q2+7w==";
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, "/chat");
    sio_bin_t bin = {(unsigned char *)"\xDE\xAD\xBE\xEF", 4};
    base_frame_t *f[2];
    char out[128];

    p->data = cJSON_Parse("[\"file\",{\"_placeholder\":true,\"num\":0}]");
    cd_sio_packet_add_attachments(p, &bin, 1);
    assert_int_equal(cd_sio_encode(p, f), 2);
    assert_int_equal(cd_eio_payload_len(f, 2), sizeof(want) - 1);
    assert_int_equal(cd_eio_payload_write(f, 2, out), sizeof(want) - 1);
    assert_memory_equal(out, want, sizeof(want) - 1);
    base_frame_unref(f[0]);
    base_frame_unref(f[1]);
    cd_sio_packet_free(p);
}

/* Worked example 4: the GET body carrying a CONNECT reply and an event. */
static void test_payload_write_example4(void **state)
{
    static const char want[] = "40{\"sid\":\"8u1NNn8uVI0XpoM8AAAA\"}" RS "42[\"auth\",{}]";
    cd_sio_packet_t *a = cd_sio_packet_new(CD_SIO_CONNECT, NULL),
                    *b = cd_sio_packet_new(CD_SIO_EVENT, NULL);
    base_frame_t *f[2];
    char out[128];

    a->data = cJSON_Parse("{\"sid\":\"8u1NNn8uVI0XpoM8AAAA\"}");
    b->data = cJSON_Parse("[\"auth\",{}]");
    assert_int_equal(cd_sio_encode(a, &f[0]), 1);
    assert_int_equal(cd_sio_encode(b, &f[1]), 1);
    assert_int_equal(cd_eio_payload_write(f, 2, out), sizeof(want) - 1);
    assert_memory_equal(out, want, sizeof(want) - 1);
    base_frame_unref(f[0]);
    base_frame_unref(f[1]);
    cd_sio_packet_free(a);
    cd_sio_packet_free(b);
}

/* write then decode gives back every frame, binary ones included, for all sizes mod 3. */
static void test_payload_roundtrip(void **state)
{
    unsigned char raw[7] = {0, 0xFF, 0x1E, 'b', 0x80, 0x7F, 1};
    base_frame_t *f[9];
    size_t n = 0;
    seen_t s;
    char *out;

    f[n++] = base_frame_from("4x", 2, 0);
    for (size_t len = 0; len <= 6; len++)
        f[n++] = base_frame_from(raw, len, 1);
    f[n++] = base_frame_from("6", 1, 0);
    out = base_malloc(cd_eio_payload_len(f, n));
    assert_int_equal(cd_eio_payload_write(f, n, out), cd_eio_payload_len(f, n));
    assert_int_equal(walk(out, cd_eio_payload_len(f, n), &s), 0);
    assert_int_equal(s.n, (int)n);
    assert_pkt(&s, 0, CD_EIO_MESSAGE, 0, "x", 1);
    for (size_t len = 0; len <= 6; len++)
        assert_pkt(&s, 1 + (int)len, CD_EIO_MESSAGE, 1, raw, len);
    assert_pkt(&s, (int)n - 1, CD_EIO_NOOP, 0, "", 0);
    base_free(out);
    for (size_t i = 0; i < n; i++)
        base_frame_unref(f[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_every_type),
        cmocka_unit_test(test_text_rejects),
        cmocka_unit_test(test_payload_single),
        cmocka_unit_test(test_payload_three),
        cmocka_unit_test(test_payload_binary),
        cmocka_unit_test(test_payload_example2),
        cmocka_unit_test(test_payload_examples3_4),
        cmocka_unit_test(test_payload_control_packets),
        cmocka_unit_test(test_payload_empty_binary),
        cmocka_unit_test(test_payload_rejects_empty),
        cmocka_unit_test(test_payload_rejects_bad_type),
        cmocka_unit_test(test_payload_rejects_bad_base64),
        cmocka_unit_test(test_payload_separator_splits),
        cmocka_unit_test(test_payload_callback_stops),
        cmocka_unit_test(test_payload_large_binary),
        cmocka_unit_test(test_payload_len_write_text),
        cmocka_unit_test(test_payload_write_example2),
        cmocka_unit_test(test_payload_write_example4),
        cmocka_unit_test(test_payload_roundtrip),
    };
    return cmocka_run_group_tests_name("eio_codec", tests, NULL, NULL);
}
