/* test_sio_codec.c -- node/codec/sio_codec.c and sio_packet.c: the worked examples of spec section 4 byte for
 * byte, the conformance-suite packets of 5.2, every rejection rule of 2.2/2.3/2.6, limits,
 * packet ownership (dup/free) and the encoder's choices. Run under ASan for leaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base_alloc.h"
#include "base_frame.h"
#include "cd_sio.h"

#define PH(k) "{\"_placeholder\":true,\"num\":" #k "}"

/* ---------------------------------------------------------------- helpers */

static int setup(void **state)
{
    cd_sio_decoder_t *d = base_malloc(sizeof(*d));

    cd_sio_decoder_init(d);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    cd_sio_decoder_t *d = *state;

    cd_sio_decoder_reset(d);
    base_free(d);
    return 0;
}

static int feed(cd_sio_decoder_t *d, const char *s, cd_sio_packet_t **out)
{
    return cd_sio_decode_text(d, s, strlen(s), out);
}

static int feed_bin(cd_sio_decoder_t *d, const void *b, size_t len, cd_sio_packet_t **out)
{
    return cd_sio_decode_binary(d, b, len, out);
}

/* Decodes s (Socket.IO text, no Engine.IO '4') plus n buffers with a fresh decoder and
 * returns the complete packet. */
static cd_sio_packet_t *decode_ok(const char *s, const sio_bin_t *bins, size_t n)
{
    cd_sio_decoder_t d;
    cd_sio_packet_t *p = (cd_sio_packet_t *)1;

    cd_sio_decoder_init(&d);
    assert_int_equal(feed(&d, s, &p), SIO_OK);
    for (size_t i = 0; i < n; i++) {
        assert_null(p);
        assert_non_null(d.pending);
        assert_int_equal(feed_bin(&d, bins[i].data, bins[i].len, &p), SIO_OK);
    }
    assert_non_null(p);
    assert_null(d.pending);
    assert_int_equal(d.failed, 0);
    return p;
}

/* s must be refused on the text step, leaving nothing pending and the decoder failed. */
static void assert_rejects(const char *s)
{
    cd_sio_decoder_t d;
    cd_sio_packet_t *p = (cd_sio_packet_t *)1;

    cd_sio_decoder_init(&d);
    assert_int_equal(cd_sio_decode_text(&d, s, strlen(s), &p), SIO_EPARSE);
    assert_null(p);
    assert_null(d.pending);
    assert_int_equal(d.failed, 1);
}

/* The text is accepted, but the packet is refused once its n buffers have arrived. */
static void assert_rejects_on_completion(const char *s, size_t n)
{
    cd_sio_decoder_t d;
    cd_sio_packet_t *p;

    cd_sio_decoder_init(&d);
    assert_int_equal(feed(&d, s, &p), SIO_OK);
    assert_null(p);
    for (size_t i = 0; i + 1 < n; i++) {
        assert_int_equal(feed_bin(&d, "x", 1, &p), SIO_OK);
        assert_null(p);
    }
    assert_int_equal(feed_bin(&d, "x", 1, &p), SIO_EPARSE);
    assert_null(p);
    assert_null(d.pending);
    assert_int_equal(d.failed, 1);
}

static void assert_json(const cJSON *data, const char *want)
{
    char *got = cJSON_PrintUnformatted(data);

    assert_non_null(got);
    assert_string_equal(got, want);
    cJSON_free(got);
}

/* Encodes p and checks the text frame (whole Engine.IO packet) and each binary frame. */
static void assert_encodes(const cd_sio_packet_t *p, const char *text, const sio_bin_t *bins,
                           size_t n)
{
    base_frame_t *f[16];

    assert_int_equal(cd_sio_encode(p, f), 1 + n);
    assert_int_equal(f[0]->binary, 0);
    assert_int_equal(f[0]->refcnt, 1);
    assert_int_equal(f[0]->len, strlen(text));
    assert_memory_equal(base_frame_data(f[0]), text, strlen(text));
    assert_int_equal(base_frame_data(f[0])[f[0]->len], '\0');
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(f[1 + i]->binary, 1);
        assert_int_equal(f[1 + i]->refcnt, 1);
        assert_int_equal(f[1 + i]->len, bins[i].len);
        assert_memory_equal(base_frame_data(f[1 + i]), bins[i].data, bins[i].len);
    }
    for (size_t i = 0; i <= n; i++)
        base_frame_unref(f[i]);
}

/* Decode "s" + bins, re-encode: the frames must be "4" + s and the same bins. The
 * deep copy must encode identically after the original is gone. */
static void assert_roundtrip(const char *s, const sio_bin_t *bins, size_t n)
{
    cd_sio_packet_t *p = decode_ok(s, bins, n), *q;
    char *wire = base_malloc(strlen(s) + 2);

    wire[0] = '4';
    strcpy(wire + 1, s);
    assert_encodes(p, wire, bins, n);
    q = cd_sio_packet_dup(p);
    cd_sio_packet_free(p);
    assert_encodes(q, wire, bins, n);
    cd_sio_packet_free(q);
    base_free(wire);
}

static cd_sio_packet_t *make(cd_sio_ptype_t t, const char *nsp, int64_t id, const char *json)
{
    cd_sio_packet_t *p = cd_sio_packet_new(t, nsp);

    p->id = id;
    if (json != NULL) {
        p->data = cJSON_Parse(json);
        assert_non_null(p->data);
    }
    return p;
}

#define BIN(lit) ((sio_bin_t){(unsigned char *)(lit), sizeof(lit) - 1})

/* ---------------------------------------------------------------- worked examples (spec 4) */

/* 1: greet("hi") with ack id 5 in /chat, and the client's ack. */
static void test_example1_event_and_ack(void **state)
{
    static const unsigned char want[] = {0x34, 0x32, 0x2f, 0x63, 0x68, 0x61, 0x74, 0x2c,
                                         0x35, 0x5b, 0x22, 0x67, 0x72, 0x65, 0x65, 0x74,
                                         0x22, 0x2c, 0x22, 0x68, 0x69, 0x22, 0x5d};
    cd_sio_packet_t *p = make(CD_SIO_EVENT, "/chat", 5, "[\"greet\",\"hi\"]");
    base_frame_t *f[1];

    assert_int_equal(cd_sio_encode(p, f), 1);
    assert_int_equal(f[0]->len, sizeof(want));
    assert_memory_equal(base_frame_data(f[0]), want, sizeof(want));
    base_frame_unref(f[0]);
    cd_sio_packet_free(p);

    p = decode_ok("2/chat,5[\"greet\",\"hi\"]", NULL, 0);
    assert_int_equal(p->type, CD_SIO_EVENT);
    assert_string_equal(p->nsp, "/chat");
    assert_int_equal(p->id, 5);
    assert_json(p->data, "[\"greet\",\"hi\"]");
    assert_int_equal(p->n_attach, 0);
    cd_sio_packet_free(p);

    p = decode_ok("3/chat,5[{\"ok\":true}]", NULL, 0);
    assert_int_equal(p->type, CD_SIO_ACK);
    assert_string_equal(p->nsp, "/chat");
    assert_int_equal(p->id, 5);
    assert_json(p->data, "[{\"ok\":true}]");
    cd_sio_packet_free(p);
    p = make(CD_SIO_ACK, "/chat", 5, "[{\"ok\":true}]");
    assert_encodes(p, "43/chat,5[{\"ok\":true}]", NULL, 0);
    cd_sio_packet_free(p);
}

/* 2: file(<DE AD BE EF>) in /chat: one text frame then one binary frame. */
static void test_example2_binary_event(void **state)
{
    cd_sio_decoder_t *d = *state;
    const sio_bin_t bin = BIN("\xDE\xAD\xBE\xEF");
    cd_sio_packet_t *p = make(CD_SIO_EVENT, "/chat", -1, "[\"file\"," PH(0) "]");

    cd_sio_packet_add_attachments(p, &bin, 1);
    assert_encodes(p, "451-/chat,[\"file\"," PH(0) "]", &bin, 1);
    cd_sio_packet_free(p);

    assert_int_equal(feed(d, "51-/chat,[\"file\"," PH(0) "]", &p), SIO_OK);
    assert_null(p);
    assert_non_null(d->pending);
    assert_int_equal(feed_bin(d, bin.data, bin.len, &p), SIO_OK);
    assert_non_null(p);
    assert_null(d->pending);
    assert_int_equal(p->type, CD_SIO_BINARY_EVENT);
    assert_string_equal(p->nsp, "/chat");
    assert_int_equal(p->id, -1);
    assert_int_equal(p->n_attach, 1);
    assert_int_equal(p->n_have, 1);
    assert_int_equal(p->attach[0].len, 4);
    assert_memory_equal(p->attach[0].data, "\xDE\xAD\xBE\xEF", 4);
    assert_json(p->data, "[\"file\"," PH(0) "]");
    cd_sio_packet_free(p);
}

/* 3: client binary event with ack 7, and the server's ack. */
static void test_example3_binary_ack_request(void **state)
{
    const sio_bin_t bin = BIN("\x01\x02\x03\x04");
    cd_sio_packet_t *p = decode_ok("51-7[\"up\"," PH(0) "]", &bin, 1);

    assert_int_equal(p->type, CD_SIO_BINARY_EVENT);
    assert_string_equal(p->nsp, "/");
    assert_int_equal(p->id, 7);
    assert_memory_equal(p->attach[0].data, "\x01\x02\x03\x04", 4);
    cd_sio_packet_free(p);
    assert_roundtrip("51-7[\"up\"," PH(0) "]", &bin, 1);

    p = make(CD_SIO_ACK, NULL, 7, "[{\"got\":4}]");
    assert_encodes(p, "437[{\"got\":4}]", NULL, 0);
    cd_sio_packet_free(p);
    assert_roundtrip("37[{\"got\":4}]", NULL, 0);
}

/* 4: the namespace CONNECT reply and an event in one GET. */
static void test_example4_connect_reply(void **state)
{
    cd_sio_packet_t *p = make(CD_SIO_CONNECT, "/", -1, "{\"sid\":\"8u1NNn8uVI0XpoM8AAAA\"}");

    assert_encodes(p, "40{\"sid\":\"8u1NNn8uVI0XpoM8AAAA\"}", NULL, 0);
    cd_sio_packet_free(p);
    assert_roundtrip("0{\"sid\":\"8u1NNn8uVI0XpoM8AAAA\"}", NULL, 0);
    assert_roundtrip("2[\"auth\",{}]", NULL, 0);
}

/* 5: CONNECT with auth; refusal by a middleware. */
static void test_example5_auth_and_refusal(void **state)
{
    cd_sio_packet_t *p = decode_ok("0{\"token\":\"t\"}", NULL, 0);

    assert_int_equal(p->type, CD_SIO_CONNECT);
    assert_string_equal(cJSON_GetObjectItem(p->data, "token")->valuestring, "t");
    cd_sio_packet_free(p);

    p = make(CD_SIO_CONNECT_ERROR, NULL, -1,
             "{\"message\":\"not authorized\",\"data\":{\"code\":42}}");
    assert_encodes(p, "44{\"message\":\"not authorized\",\"data\":{\"code\":42}}", NULL, 0);
    cd_sio_packet_free(p);
    assert_roundtrip("4{\"message\":\"not authorized\",\"data\":{\"code\":42}}", NULL, 0);
}

/* 6: recovery: CONNECT with pid/offset (key order kept), replayed binary event, reply. */
static void test_example6_recovery(void **state)
{
    const sio_bin_t bin = BIN("\x09\x08");
    cd_sio_packet_t *p;

    assert_roundtrip("0{\"pid\":\"bF8V\",\"offset\":\"1795480791162-0\",\"token\":\"t\"}", NULL, 0);
    p = make(CD_SIO_EVENT, NULL, -1, "[\"r1\"," PH(0) ",\"1795480791464-0\"]");
    cd_sio_packet_add_attachments(p, &bin, 1);
    assert_encodes(p, "451-[\"r1\"," PH(0) ",\"1795480791464-0\"]", &bin, 1);
    cd_sio_packet_free(p);
    assert_roundtrip("51-[\"r1\"," PH(0) ",\"1795480791464-0\"]", &bin, 1);
    assert_roundtrip("2[\"missed1\",\"x\",\"1795480792369-0\"]", NULL, 0);
    assert_roundtrip("0{\"sid\":\"uvi1\",\"pid\":\"5e1E\"}", NULL, 0);
}

/* ---------------------------------------------------------------- conformance packets (5.2) */

static void test_suite_packets(void **state)
{
    const sio_bin_t two[2] = {BIN("\x01\x02\x03"), BIN("\x04\x05\x06")};
    cd_sio_packet_t *p;

    assert_roundtrip("0", NULL, 0);
    assert_roundtrip("0{\"token\":\"123\"}", NULL, 0);
    assert_roundtrip("0/custom,", NULL, 0);
    assert_roundtrip("0/custom,{\"token\":\"abc\"}", NULL, 0);
    assert_roundtrip("1", NULL, 0);
    assert_roundtrip("2[\"message\",1,\"2\",{\"3\":[true]}]", NULL, 0);
    assert_roundtrip("2456[\"message-with-ack\",1,\"2\",{\"3\":[false]}]", NULL, 0);
    assert_roundtrip("3456[1,\"2\",{\"3\":[false]}]", NULL, 0);
    assert_roundtrip("52-[\"message\"," PH(0) "," PH(1) "]", two, 2);
    assert_roundtrip("52-789[\"message-with-ack\"," PH(0) "," PH(1) "]", two, 2);
    assert_roundtrip("62-789[" PH(0) "," PH(1) "]", two, 2);

    /* "40/random" (no comma): CONNECT to /random without payload */
    p = decode_ok("0/random", NULL, 0);
    assert_int_equal(p->type, CD_SIO_CONNECT);
    assert_string_equal(p->nsp, "/random");
    assert_null(p->data);
    cd_sio_packet_free(p);
    p = decode_ok("1/custom", NULL, 0);
    assert_int_equal(p->type, CD_SIO_DISCONNECT);
    assert_string_equal(p->nsp, "/custom");
    cd_sio_packet_free(p);

    assert_rejects("abc");               /* 4abc */
    assert_rejects("2{}");               /* 42{} */
    assert_rejects("2abc[\"message\"]"); /* 42abc[...] */
}

/* ---------------------------------------------------------------- valid packets */

static void test_every_type_valid(void **state)
{
    static const struct {
        const char *s;
        cd_sio_ptype_t t;
        const char *nsp;
        int64_t id;
    } ok[] = {
        {"0", CD_SIO_CONNECT, "/", -1},
        {"0{}", CD_SIO_CONNECT, "/", -1},
        {"0/a,{\"x\":1}", CD_SIO_CONNECT, "/a", -1},
        {"1", CD_SIO_DISCONNECT, "/", -1},
        {"1/a,", CD_SIO_DISCONNECT, "/a", -1},
        {"2[\"e\"]", CD_SIO_EVENT, "/", -1},
        {"2[1]", CD_SIO_EVENT, "/", -1},
        {"2[-2.5,\"x\"]", CD_SIO_EVENT, "/", -1},
        {"2/a,3[\"e\",null]", CD_SIO_EVENT, "/a", 3},
        {"2/a/b,0[\"e\"]", CD_SIO_EVENT, "/a/b", 0},
        {"2[\"connection\"]", CD_SIO_EVENT, "/", -1}, /* reserved only server-to-server */
        {"2[\"\"]", CD_SIO_EVENT, "/", -1},
        {"3[]", CD_SIO_ACK, "/", -1},
        {"3/a,0[1]", CD_SIO_ACK, "/a", 0},
        {"4{\"message\":\"m\"}", CD_SIO_CONNECT_ERROR, "/", -1},
        {"4\"str\"", CD_SIO_CONNECT_ERROR, "/", -1},
        {"4/a,\"str\"", CD_SIO_CONNECT_ERROR, "/a", -1},
        {"2 [\"ws\"] ", CD_SIO_EVENT, "/", -1}, /* JSON may have surrounding whitespace */
        {"2[\"_placeholder\",{\"_placeholder\":false,\"num\":9}]", CD_SIO_EVENT, "/", -1},
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cd_sio_packet_t *p = decode_ok(ok[i].s, NULL, 0);
        assert_int_equal(p->type, ok[i].t);
        assert_string_equal(p->nsp, ok[i].nsp);
        assert_int_equal(p->id, ok[i].id);
        cd_sio_packet_free(p);
    }
}

static void test_binary_types_valid(void **state)
{
    const sio_bin_t bins[3] = {BIN(""), BIN("a"), BIN("\x00\x01")};
    cd_sio_packet_t *p;

    p = decode_ok("61-/a,1[" PH(0) "]", bins, 1);
    assert_int_equal(p->type, CD_SIO_BINARY_ACK);
    assert_string_equal(p->nsp, "/a");
    assert_int_equal(p->id, 1);
    assert_int_equal(p->attach[0].len, 0);
    assert_non_null(p->attach[0].data);
    cd_sio_packet_free(p);

    /* placeholders nested anywhere, repeated, leading zeros in the count */
    assert_roundtrip("53-[\"e\",{\"a\":[" PH(2) "," PH(0) "]}," PH(1) "," PH(1) "]", bins, 3);
    p = decode_ok("503-[\"e\"," PH(2) "]", bins, 3);
    assert_int_equal(p->n_attach, 3);
    cd_sio_packet_free(p);
    /* buffers need not all be referenced */
    p = decode_ok("52-[\"e\"]", bins, 2);
    cd_sio_packet_free(p);
}

/* Binary messages are copied: the caller's buffer may change afterwards. */
static void test_binary_copied(void **state)
{
    cd_sio_decoder_t *d = *state;
    unsigned char buf[3] = {1, 2, 3};
    cd_sio_packet_t *p;

    assert_int_equal(feed(d, "51-[\"e\"," PH(0) "]", &p), SIO_OK);
    assert_int_equal(feed_bin(d, buf, 3, &p), SIO_OK);
    memset(buf, 0, sizeof(buf));
    assert_memory_equal(p->attach[0].data, "\x01\x02\x03", 3);
    cd_sio_packet_free(p);
}

/* One decoder handles many packets in a row. */
static void test_decoder_sequence(void **state)
{
    cd_sio_decoder_t *d = *state;
    cd_sio_packet_t *p;

    for (int i = 0; i < 3; i++) {
        assert_int_equal(feed(d, "2[\"a\"]", &p), SIO_OK);
        assert_non_null(p);
        cd_sio_packet_free(p);
        assert_int_equal(feed(d, "51-[\"b\"," PH(0) "]", &p), SIO_OK);
        assert_null(p);
        assert_int_equal(feed_bin(d, "z", 1, &p), SIO_OK);
        assert_non_null(p);
        cd_sio_packet_free(p);
    }
}

/* ---------------------------------------------------------------- rejections */

static void test_rejects_type(void **state)
{
    assert_rejects("");
    assert_rejects("7");
    assert_rejects("9[\"a\"]");
    assert_rejects("a");
    assert_rejects("/chat,");
    assert_rejects("[\"a\"]");
    assert_rejects("-1");
}

static void test_rejects_attachment_count(void **state)
{
    assert_rejects("5[\"a\"]");  /* no count */
    assert_rejects("5-[\"a\"]"); /* empty count */
    assert_rejects("51[\"a\"]"); /* no '-' */
    assert_rejects("51");        /* ends before '-' */
    assert_rejects("5");
    assert_rejects("50-[\"a\"]"); /* count must be >= 1 */
    assert_rejects("60-[]");
    assert_rejects("5a-[\"a\"]"); /* digits only */
    assert_rejects("5+1-[\"a\"]");
    assert_rejects("5 1-[\"a\"]");
    assert_rejects("511-[\"a\"]");                         /* over the default limit of 10 */
    assert_rejects("599999999999999999999999999-[\"a\"]"); /* overflow */
    assert_rejects("518446744073709551617-[\"a\"]");       /* 2^64 + 1 */
}

static void test_rejects_ack_id(void **state)
{
    assert_rejects("29007199254740993[\"a\"]");     /* 2^53 + 1 */
    assert_rejects("299999999999999999999[\"a\"]"); /* beyond int64 */
    assert_rejects("218446744073709551617[\"a\"]"); /* 2^64 + 1, would wrap */
}

static void test_rejects_json(void **state)
{
    assert_rejects("2[\"a\"");         /* unterminated */
    assert_rejects("2[\"a\"]x");       /* trailing garbage */
    assert_rejects("2[\"a\"][\"b\"]"); /* two values */
    assert_rejects("2[\"a\",]");
    assert_rejects("2['a']");
    assert_rejects("2 "); /* whitespace only */
    assert_rejects("0{\"a\":}");
    assert_rejects("2[\"a\\"); /* ends in a backslash */
    assert_rejects("0/a,{");
    assert_rejects("2/a,[\"e\"]]");
}

static void test_rejects_connect_shape(void **state)
{
    assert_rejects("0[]");
    assert_rejects("0\"s\"");
    assert_rejects("0null");
    assert_rejects("0true");
    assert_rejects("05[]"); /* the id is read, the payload is still an array */
}

static void test_rejects_disconnect_shape(void **state)
{
    assert_rejects("1{}");
    assert_rejects("1[]");
    assert_rejects("1\"bye\"");
    assert_rejects("1/a,null");
}

static void test_rejects_event_shape(void **state)
{
    assert_rejects("2"); /* absent */
    assert_rejects("2/a,");
    assert_rejects("25");     /* ack id, no payload */
    assert_rejects("2[]");    /* empty array */
    assert_rejects("2\"e\""); /* not an array */
    assert_rejects("2{\"e\":1}");
    assert_rejects("2[null]"); /* first item neither string nor number */
    assert_rejects("2[true]");
    assert_rejects("2[{}]");
    assert_rejects("2[[\"e\"]]");
    assert_rejects("2[1e400]"); /* non-finite: would re-encode as null */
    assert_rejects("51-[]");
    assert_rejects("51-{}");
    assert_rejects("51-[null," PH(0) "]");
}

static void test_rejects_ack_shape(void **state)
{
    assert_rejects("3");
    assert_rejects("35");
    assert_rejects("3/a,5");
    assert_rejects("35{}");
    assert_rejects("35\"s\"");
    assert_rejects("351"); /* digits run is the id, nothing left */
    assert_rejects("61-5{}");
}

static void test_rejects_connect_error_shape(void **state)
{
    assert_rejects("4");
    assert_rejects("4[]");
    assert_rejects("41");
    assert_rejects("4/a,");
    assert_rejects("4true");
}

static void test_rejects_reserved_names(void **state)
{
    assert_rejects("2[\"connect\"]");
    assert_rejects("2[\"connect_error\",1]");
    assert_rejects("2[\"disconnect\"]");
    assert_rejects("2/a,[\"disconnecting\"]");
    assert_rejects("27[\"newListener\"]");
    assert_rejects("2[\"removeListener\"]");
    assert_rejects("51-[\"disconnect\"," PH(0) "]");
}

static void test_rejects_nsp(void **state)
{
    static const char nul_nsp[] = "2/ch\0at,[\"a\"]";
    cd_sio_decoder_t d;
    cd_sio_packet_t *p;

    cd_sio_decoder_init(&d);
    assert_int_equal(cd_sio_decode_text(&d, nul_nsp, sizeof(nul_nsp) - 1, &p), SIO_EPARSE);
    assert_int_equal(d.failed, 1);
    /* without a comma the whole rest is the namespace, so the payload is missing */
    assert_rejects("2/chat[\"a\"]");
}

/* A NUL right after the JSON value is trailing garbage too. */
static void test_rejects_embedded_nul(void **state)
{
    static const char s[] = "2[\"a\"]\0x";
    cd_sio_decoder_t d;
    cd_sio_packet_t *p;

    cd_sio_decoder_init(&d);
    assert_int_equal(cd_sio_decode_text(&d, s, sizeof(s) - 1, &p), SIO_EPARSE);
}

static void test_rejects_placeholders(void **state)
{
    assert_rejects_on_completion("51-[\"e\"," PH(1) "]", 1); /* num == count */
    assert_rejects_on_completion("52-[\"e\"," PH(0) "," PH(2) "]", 2);
    assert_rejects_on_completion("51-[\"e\"," PH(-1) "]", 1);
    assert_rejects_on_completion("52-[\"e\"," PH(0.5) "]", 2);
    assert_rejects_on_completion("51-[\"e\",{\"_placeholder\":true,\"num\":\"0\"}]", 1);
    assert_rejects_on_completion("51-[\"e\",{\"_placeholder\":true}]", 1);
    assert_rejects_on_completion("51-[\"e\",{\"a\":[[" PH(3) "]]}]", 1);
    assert_rejects_on_completion("61-[" PH(1) "]", 1);
    /* a plain EVENT/ACK has no buffers, so no placeholder can be valid in it */
    assert_rejects("2[\"e\"," PH(0) "]");
    assert_rejects("3[" PH(0) "]");
}

static void test_rejects_text_while_pending(void **state)
{
    cd_sio_decoder_t *d = *state;
    cd_sio_packet_t *p;

    assert_int_equal(feed(d, "52-[\"e\"," PH(0) "," PH(1) "]", &p), SIO_OK);
    assert_int_equal(feed_bin(d, "a", 1, &p), SIO_OK);
    assert_null(p);
    assert_int_equal(feed(d, "2[\"e\"]", &p), SIO_EPARSE);
    assert_null(p);
    assert_null(d->pending);
    assert_int_equal(d->failed, 1);
}

static void test_rejects_binary_without_header(void **state)
{
    cd_sio_decoder_t *d = *state;
    cd_sio_packet_t *p = (cd_sio_packet_t *)1;

    assert_int_equal(feed_bin(d, "\x01", 1, &p), SIO_EPARSE);
    assert_null(p);
    assert_int_equal(d->failed, 1);
    cd_sio_decoder_reset(d);
    /* nor after a complete binary packet */
    assert_int_equal(feed(d, "51-[\"e\"," PH(0) "]", &p), SIO_OK);
    assert_int_equal(feed_bin(d, "\x01", 1, &p), SIO_OK);
    cd_sio_packet_free(p);
    assert_int_equal(feed_bin(d, "\x01", 1, &p), SIO_EPARSE);
}

static void test_failed_is_sticky(void **state)
{
    cd_sio_decoder_t *d = *state;
    cd_sio_packet_t *p;

    assert_int_equal(feed(d, "2[]", &p), SIO_EPARSE);
    assert_int_equal(feed(d, "2[\"ok\"]", &p), SIO_EPARSE);
    assert_null(p);
    assert_int_equal(feed(d, "51-[\"e\"," PH(0) "]", &p), SIO_EPARSE);
    assert_int_equal(feed_bin(d, "x", 1, &p), SIO_EPARSE);
    assert_null(p);

    cd_sio_decoder_reset(d);
    assert_int_equal(d->failed, 0);
    assert_int_equal(feed(d, "2[\"ok\"]", &p), SIO_OK);
    assert_non_null(p);
    cd_sio_packet_free(p);
}

/* Reset frees a packet still waiting for buffers (checked by ASan's leak check). */
static void test_reset_drops_pending(void **state)
{
    cd_sio_decoder_t *d = *state;
    cd_sio_packet_t *p;

    assert_int_equal(feed(d, "53-[\"e\"," PH(0) "]", &p), SIO_OK);
    assert_int_equal(feed_bin(d, "abc", 3, &p), SIO_OK);
    assert_non_null(d->pending);
    cd_sio_decoder_reset(d);
    assert_null(d->pending);
    assert_int_equal(d->failed, 0);
    assert_int_equal(d->max_attachments, 10);
}

/* ---------------------------------------------------------------- limits */

static void test_attachment_limit(void **state)
{
    sio_bin_t bins[10];
    cd_sio_decoder_t *d = *state;
    cd_sio_packet_t *p;

    for (int i = 0; i < 10; i++) {
        bins[i].data = (unsigned char *)"0123456789" + i;
        bins[i].len = 1;
    }
    assert_roundtrip("510-[\"e\"," PH(9) "," PH(0) "]", bins, 10);
    assert_rejects("511-[\"e\"," PH(0) "]");
    assert_rejects("611-[" PH(0) "]");

    d->max_attachments = 2;
    assert_int_equal(feed(d, "53-[\"e\"]", &p), SIO_EPARSE);
    cd_sio_decoder_reset(d);
    assert_int_equal(feed(d, "52-[\"e\"]", &p), SIO_OK);
    assert_null(p);
}

static void test_ack_id_limit(void **state)
{
    cd_sio_packet_t *p = decode_ok("29007199254740992[\"a\"]", NULL, 0); /* 2^53 */

    assert_int_equal(p->id, 9007199254740992LL);
    assert_encodes(p, "429007199254740992[\"a\"]", NULL, 0);
    cd_sio_packet_free(p);
    p = decode_ok("20000[\"a\"]", NULL, 0); /* leading zeros allowed, as in Node */
    assert_int_equal(p->id, 0);
    cd_sio_packet_free(p);
    assert_rejects("29007199254740993[\"a\"]");
}

static char *nested(const char *prefix, int depth, const char *suffix)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *s = base_malloc(pl + 2 * (size_t)depth + sl + 1);
    char *o = s;

    memcpy(o, prefix, pl);
    o += pl;
    memset(o, '[', (size_t)depth);
    o += depth;
    memset(o, ']', (size_t)depth);
    o += depth;
    memcpy(o, suffix, sl + 1);
    return s;
}

/* Nesting below cJSON's limit (1000) round-trips; far beyond it is refused, no crash. */
static void test_deep_nesting(void **state)
{
    char *s = nested("2[\"deep\",", 900, "]");

    assert_roundtrip(s, NULL, 0);
    base_free(s);
    s = nested("2[\"deep\",", 5000, "]");
    assert_rejects(s);
    base_free(s);
    s = nested("51-[\"deep\",", 900, "]");
    {
        const sio_bin_t b = BIN("b");
        assert_roundtrip(s, &b, 1);
    }
    base_free(s);
}

/* ---------------------------------------------------------------- encoder */

static void test_encode_choices(void **state)
{
    const sio_bin_t bins[2] = {BIN("\x00"), BIN("\xFF\xFE")};
    cd_sio_packet_t *p;

    p = make(CD_SIO_CONNECT, NULL, -1, NULL);
    assert_encodes(p, "40", NULL, 0);
    cd_sio_packet_free(p);
    p = make(CD_SIO_DISCONNECT, "/chat", -1, NULL);
    assert_encodes(p, "41/chat,", NULL, 0);
    cd_sio_packet_free(p);
    p = make(CD_SIO_EVENT, "/", 0, "[\"a\"]"); /* id 0 is written */
    assert_encodes(p, "420[\"a\"]", NULL, 0);
    cd_sio_packet_free(p);
    p = make(CD_SIO_EVENT, NULL, -1, "[\"a\", {\"z\":1, \"a\":2}]"); /* compact, key order */
    assert_encodes(p, "42[\"a\",{\"z\":1,\"a\":2}]", NULL, 0);
    cd_sio_packet_free(p);
    p = make(CD_SIO_CONNECT_ERROR, "/x", -1, "\"nope\"");
    assert_encodes(p, "44/x,\"nope\"", NULL, 0);
    cd_sio_packet_free(p);

    /* EVENT/ACK with buffers become 5/6; BINARY_* without buffers become 2/3 */
    p = make(CD_SIO_ACK, "/n", 12, "[" PH(0) "," PH(1) "]");
    cd_sio_packet_add_attachments(p, bins, 2);
    assert_encodes(p, "462-/n,12[" PH(0) "," PH(1) "]", bins, 2);
    cd_sio_packet_free(p);
    p = make(CD_SIO_BINARY_EVENT, NULL, -1, "[\"e\"]");
    assert_encodes(p, "42[\"e\"]", NULL, 0);
    cd_sio_packet_free(p);
    p = make(CD_SIO_BINARY_ACK, NULL, 3, "[]");
    assert_encodes(p, "433[]", NULL, 0);
    cd_sio_packet_free(p);

    /* buffers on a type that cannot carry them are not sent */
    p = make(CD_SIO_CONNECT, NULL, -1, "{}");
    cd_sio_packet_add_attachments(p, bins, 1);
    assert_encodes(p, "40{}", NULL, 0);
    cd_sio_packet_free(p);
}

/* 10+ buffers: the count has two digits. */
static void test_encode_many_attachments(void **state)
{
    sio_bin_t bins[12];
    cd_sio_packet_t *p = make(CD_SIO_EVENT, NULL, -1, "[\"e\"," PH(11) "]");

    for (int i = 0; i < 12; i++) {
        bins[i].data = (unsigned char *)"abcdefghijkl" + i;
        bins[i].len = 1;
    }
    cd_sio_packet_add_attachments(p, bins, 12);
    assert_encodes(p, "4512-[\"e\"," PH(11) "]", bins, 12);
    cd_sio_packet_free(p);
}

/* ---------------------------------------------------------------- packet ownership */

static void test_packet_new_free(void **state)
{
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, NULL);

    assert_string_equal(p->nsp, "/");
    assert_int_equal(p->id, -1);
    assert_null(p->data);
    assert_int_equal(p->n_attach, 0);
    assert_null(p->attach);
    cd_sio_packet_free(p);
    cd_sio_packet_free(NULL);

    /* a half-built packet (announced buffers not there yet) frees cleanly */
    p = cd_sio_packet_new(CD_SIO_BINARY_EVENT, "/x");
    p->n_attach = 3;
    p->attach = base_calloc(3, sizeof(*p->attach));
    p->attach[0].data = base_malloc(4);
    p->attach[0].len = 4;
    p->n_have = 1;
    cd_sio_packet_free(p);
}

static void test_packet_dup_is_deep(void **state)
{
    const sio_bin_t bins[2] = {BIN("one"), BIN("two!")};
    cd_sio_packet_t *p = make(CD_SIO_EVENT, "/room", 42, "[\"e\",{\"k\":[1,2]}," PH(1) "]"), *q;

    cd_sio_packet_add_attachments(p, bins, 2);
    q = cd_sio_packet_dup(p);
    assert_ptr_not_equal(q->nsp, p->nsp);
    assert_ptr_not_equal(q->data, p->data);
    assert_ptr_not_equal(q->attach, p->attach);
    assert_ptr_not_equal(q->attach[0].data, p->attach[0].data);
    /* mutate the original everywhere, then drop it */
    p->nsp[1] = 'X';
    cJSON_DeleteItemFromArray(p->data, 1);
    p->attach[1].data[0] = '?';
    cd_sio_packet_free(p);

    assert_int_equal(q->type, CD_SIO_EVENT);
    assert_string_equal(q->nsp, "/room");
    assert_int_equal(q->id, 42);
    assert_json(q->data, "[\"e\",{\"k\":[1,2]}," PH(1) "]");
    assert_int_equal(q->n_attach, 2);
    assert_memory_equal(q->attach[0].data, "one", 3);
    assert_memory_equal(q->attach[1].data, "two!", 4);
    cd_sio_packet_free(q);

    p = cd_sio_packet_new(CD_SIO_DISCONNECT, "/z");
    q = cd_sio_packet_dup(p);
    assert_string_equal(q->nsp, "/z");
    assert_null(q->data);
    assert_null(q->attach);
    cd_sio_packet_free(p);
    cd_sio_packet_free(q);
    assert_null(cd_sio_packet_dup(NULL));
}

/* dup of a packet the decoder still holds copies only the buffers received so far. */
static void test_packet_dup_partial(void **state)
{
    cd_sio_decoder_t *d = *state;
    cd_sio_packet_t *p, *q;

    assert_int_equal(feed(d, "53-[\"e\"]", &p), SIO_OK);
    assert_int_equal(feed_bin(d, "ab", 2, &p), SIO_OK);
    q = cd_sio_packet_dup(d->pending);
    assert_int_equal(q->n_attach, 3);
    assert_int_equal(q->n_have, 1);
    assert_memory_equal(q->attach[0].data, "ab", 2);
    assert_null(q->attach[1].data);
    cd_sio_packet_free(q);
}

static void test_add_attachments(void **state)
{
    unsigned char buf[2] = {7, 8};
    sio_bin_t b = {buf, 2};
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, NULL);

    cd_sio_packet_add_attachments(p, &b, 0);
    assert_int_equal(p->n_attach, 0);
    cd_sio_packet_add_attachments(p, &b, 1);
    buf[0] = 9;
    cd_sio_packet_add_attachments(p, &b, 1);
    assert_int_equal(p->n_attach, 2);
    assert_memory_equal(p->attach[0].data, "\x07\x08", 2);
    assert_memory_equal(p->attach[1].data, "\x09\x08", 2);
    cd_sio_packet_free(p);
}

static void test_event_reserved(void **state)
{
    static const char *const yes[] = {"connect",       "connect_error", "disconnect",
                                      "disconnecting", "newListener",   "removeListener"};
    static const char *const no[] = {"",         "connection",   "message",      "Connect",
                                     "connect ", "disconnected", "new_namespace"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(cd_sio_event_reserved(yes[i]));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(cd_sio_event_reserved(no[i]));
}

/* Many decode/encode/fail cycles; under ASan any leak fails the run at exit. */
static void test_no_leak_cycles(void **state)
{
    static const char *const texts[] = {
        "2[\"a\",{\"b\":[1,2,3]}]", "0/x,{\"t\":\"y\"}",    "2[",
        "52-[\"e\"," PH(1) "]",     "53-[\"e\"," PH(0) "]", "7",
        "2[\"connect\"]",           "3/n,9[null]",
    };
    cd_sio_decoder_t d;

    cd_sio_decoder_init(&d);
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
            cd_sio_packet_t *p = NULL;
            base_frame_t *f[4];
            int rc = feed(&d, texts[i], &p);
            if (rc == SIO_OK && p == NULL) {
                rc = feed_bin(&d, "q", 1, &p);
                if (rc == SIO_OK && p == NULL)
                    rc = feed_bin(&d, "r", 1, &p);
            }
            if (p != NULL) {
                size_t n = cd_sio_encode(p, f);
                while (n > 0)
                    base_frame_unref(f[--n]);
                cd_sio_packet_free(p);
            }
            if (rc != SIO_OK || round % 7 == 0)
                cd_sio_decoder_reset(&d);
        }
    }
    cd_sio_decoder_reset(&d);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_example1_event_and_ack),
        T(test_example2_binary_event),
        T(test_example3_binary_ack_request),
        T(test_example4_connect_reply),
        T(test_example5_auth_and_refusal),
        T(test_example6_recovery),
        T(test_suite_packets),
        T(test_every_type_valid),
        T(test_binary_types_valid),
        T(test_binary_copied),
        T(test_decoder_sequence),
        T(test_rejects_type),
        T(test_rejects_attachment_count),
        T(test_rejects_ack_id),
        T(test_rejects_json),
        T(test_rejects_connect_shape),
        T(test_rejects_disconnect_shape),
        T(test_rejects_event_shape),
        T(test_rejects_ack_shape),
        T(test_rejects_connect_error_shape),
        T(test_rejects_reserved_names),
        T(test_rejects_nsp),
        T(test_rejects_embedded_nul),
        T(test_rejects_placeholders),
        T(test_rejects_text_while_pending),
        T(test_rejects_binary_without_header),
        T(test_failed_is_sticky),
        T(test_reset_drops_pending),
        T(test_attachment_limit),
        T(test_ack_id_limit),
        T(test_deep_nesting),
        T(test_encode_choices),
        T(test_encode_many_attachments),
        T(test_packet_new_free),
        T(test_packet_dup_is_deep),
        T(test_packet_dup_partial),
        T(test_add_attachments),
        T(test_event_reserved),
        T(test_no_leak_cycles),
    };
    return cmocka_run_group_tests_name("sio_codec", tests, NULL, NULL);
}
