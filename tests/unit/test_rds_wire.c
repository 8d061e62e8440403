/* test_rds_wire.c -- adapter/redis/rds_wire.c: the messages of @socket.io/redis-adapter
 * 8.x on Redis (broadcasts, requests, responses), byte for byte. The msgpack values inside
 * them (number forms, Dates, UTF-8, format widths) are test_msgpack.c's; channel names are
 * test_rds_channel.c's.
 *
 * The msgpack vectors marked "notepack" were produced once with notepack.io 3.0.1's
 * encode() (the parser of @socket.io/redis-adapter 8.x and redis-emitter 5.x) from the
 * JS value quoted beside each, so byte equality here means equality with Node's bytes.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base_alloc.h"
#include "hex_util.h"
#include "rds_wire.h"

/* ---------------------------------------------------------------- vectors */

/* Spec §1.1, composed: io.to("lobby").emit("news", 7) by node AbC123. */
static const char HEX_EXAMPLE[] = "93a6416243313233"
                                  "83a47479706502a46461746192a46e65777307a36e7370a12f"
                                  "83a5726f6f6d7391a56c6f626279a665786365707490a5666c61677380";

/* notepack: ["E8FrxM",{type:2,data:["v",{k:1.5}],nsp:"/"},
 *            {rooms:["a","b"],except:["c"],flags:{volatile:true}}] (spec §1.1 capture) */
static const char HEX_CAPTURED[] =
    "93a645384672784d83a47479706502a46461746192a17681a16bcb3ff8000000000000a36e7370a12f"
    "83a5726f6f6d7392a161a162a665786365707491a163a5666c61677381a8766f6c6174696c65c3";

/* notepack: the emitter's ["emitter",{type:2,data:["from-emitter","a"],nsp:"/"},
 *           {rooms:["room1"],flags:{},except:[]}] (spec §3 capture, its key order) */
static const char HEX_EMITTER[] =
    "93a7656d697474657283a47479706502a46461746192ac66726f6d2d656d6974746572a161a36e7370"
    "a12f83a5726f6f6d7391a5726f6f6d31a5666c61677380a665786365707490";

/* notepack: ["uid123",{type:2,data:["bin",Buffer[1,2,3]],nsp:"/"},{rooms:[],except:[],flags:{}}] */
static const char HEX_BIN[] =
    "93a675696431323383a47479706502a46461746192a362696ec403010203a36e7370a12f83a5726f6f6d"
    "7390a665786365707490a5666c61677380";

/* notepack: ["n2",{type:2,data:["x",{a:Buf[1],b:[Buf[2,2],{c:Buf[3,3,3]}]},Buf(300x7),
 *            "s"x32,"t"x256],nsp:"/chat"},{rooms:["r1"],except:["r2","r3"],
 *            flags:{compress:false,volatile:true}}] -- built at run time (long). */

/* notepack: {uid:"AbC123",requestId:"Rq1234",type:7,packet:{type:2,data:["ev",1,Buf[ff]],
 *            nsp:"/"},opts:{rooms:["r"],except:[],flags:{timeout:5000}}} */
static const char HEX_REQ7[] =
    "85a3756964a6416243313233a9726571756573744964a6527131323334a47479706507a67061636b6574"
    "83a47479706502a46461746193a2657601c401ffa36e7370a12fa46f70747383a5726f6f6d7391a172a6"
    "65786365707490a5666c61677381a774696d656f7574cd1388";

/* notepack: {type:9,requestId:"Rq1234",packet:{ok:true,buf:Buf[1,2]}} and packet:undefined */
static const char HEX_RES9[] =
    "83a47479706509a9726571756573744964a6527131323334a67061636b657482a26f6bc3a3627566c402"
    "0102";
static const char HEX_RES9_UNDEF[] = "82a47479706509a9726571756573744964a6527131323334";

/* notepack: ["nr",{type:2,data:["e"],nsp:"/"},{rooms:[42,"x",1.5],except:[7],flags:{}}] */
static const char HEX_NUMROOM[] =
    "93a26e7283a47479706502a46461746191a165a36e7370a12f83a5726f6f6d73932aa178cb3ff8000000"
    "000000a66578636570749107a5666c61677380";

/* ---------------------------------------------------------------- helpers */

static void assert_bin_text(const sio_bin_t *b, const char *text)
{
    assert_int_equal(b->len, strlen(text));
    assert_memory_equal(b->data, text, b->len);
}

static int decode_broadcast_hex(const char *hex, rds_broadcast_t *b)
{
    size_t n;
    unsigned char *buf = unhex(hex, &n);
    int rc = rds_decode_broadcast(buf, n, b);
    free(buf);
    return rc;
}

static int decode_hex(int response, const char *hex, rds_msg_t *m)
{
    size_t n;
    unsigned char *buf = unhex(hex, &n);
    int rc = response ? rds_decode_response(buf, n, m) : rds_decode_request(buf, n, m);
    free(buf);
    return rc;
}

static int decode_text(int response, const char *text, rds_msg_t *m)
{
    return response ? rds_decode_response(text, strlen(text), m)
                    : rds_decode_request(text, strlen(text), m);
}

/* Re-encodes a decoded broadcast the way the adapter would relay it. */
static void reencode(const rds_broadcast_t *b, sio_bin_t *out)
{
    adp_opts_t o;
    rds_opts_view(&b->opts, &o);
    assert_int_equal(rds_encode_broadcast(b->uid, b->packet, &o, b->offset, out), SIO_OK);
}

static const cJSON *arg(const cd_sio_packet_t *p, int i)
{
    return cJSON_GetArrayItem(p->data, i);
}

static void assert_placeholder(const cJSON *v, int num)
{
    assert_true(cJSON_IsObject(v));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "_placeholder")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(v, "num")->valueint, num);
}

static void assert_zero_broadcast(const rds_broadcast_t *b)
{
    assert_null(b->uid);
    assert_null(b->packet);
    assert_null(b->offset);
    assert_null(b->opts.rooms);
    assert_null(b->opts.except);
}

static void assert_zero_msg(const rds_msg_t *m)
{
    assert_int_equal(m->type, RDS_TYPE_NONE);
    assert_null(m->uid);
    assert_null(m->request_id);
    assert_null(m->packet);
    assert_null(m->data);
    assert_null(m->attach);
    assert_null(m->rooms);
    assert_null(m->sockets);
    assert_int_equal(m->client_count, -1);
}

/* ---------------------------------------------------------------- broadcasts */

static void test_example_bytes(void **state)
{
    const char *rooms[] = {"lobby"};
    adp_opts_t o = {rooms, 1, NULL, 0, 0, NULL};
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, "/");
    sio_bin_t out;
    rds_broadcast_t b;

    p->data = cJSON_Parse("[\"news\",7]");
    assert_int_equal(rds_encode_broadcast("AbC123", p, &o, NULL, &out), SIO_OK);
    assert_bin_hex(&out, HEX_EXAMPLE);

    assert_int_equal(rds_decode_broadcast(out.data, out.len, &b), SIO_OK);
    assert_string_equal(b.uid, "AbC123");
    assert_string_equal(b.packet->nsp, "/");
    assert_int_equal(b.packet->type, CD_SIO_EVENT);
    assert_int_equal(b.packet->id, -1);
    assert_int_equal(b.packet->n_attach, 0);
    assert_true(cJSON_Compare(b.packet->data, p->data, 1));
    assert_int_equal(b.opts.n_rooms, 1);
    assert_string_equal(b.opts.rooms[0], "lobby");
    assert_int_equal(b.opts.n_except, 0);
    assert_int_equal(b.opts.flags, 0);
    assert_null(b.offset);
    rds_broadcast_free(&b);
    base_free(out.data);
    cd_sio_packet_free(p);
}

static void test_captured_broadcast(void **state)
{
    rds_broadcast_t b;
    sio_bin_t out;

    assert_int_equal(decode_broadcast_hex(HEX_CAPTURED, &b), SIO_OK);
    assert_string_equal(b.uid, "E8FrxM");
    assert_string_equal(b.packet->nsp, "/");
    assert_string_equal(arg(b.packet, 0)->valuestring, "v");
    assert_true(cJSON_GetObjectItemCaseSensitive(arg(b.packet, 1), "k")->valuedouble == 1.5);
    assert_int_equal(b.opts.n_rooms, 2);
    assert_string_equal(b.opts.rooms[0], "a");
    assert_string_equal(b.opts.rooms[1], "b");
    assert_int_equal(b.opts.n_except, 1);
    assert_string_equal(b.opts.except[0], "c");
    assert_int_equal(b.opts.flags, ADP_VOLATILE);
    reencode(&b, &out);
    assert_bin_hex(&out, HEX_CAPTURED); /* we write what the Node adapter writes */
    base_free(out.data);
    rds_broadcast_free(&b);
}

static void test_emitter_message(void **state)
{
    rds_broadcast_t b;

    assert_int_equal(decode_broadcast_hex(HEX_EMITTER, &b), SIO_OK);
    assert_string_equal(b.uid, "emitter");
    assert_string_equal(arg(b.packet, 0)->valuestring, "from-emitter");
    assert_string_equal(arg(b.packet, 1)->valuestring, "a");
    assert_int_equal(cJSON_GetArraySize(b.packet->data), 2);
    assert_int_equal(b.opts.n_rooms, 1);
    assert_string_equal(b.opts.rooms[0], "room1");
    assert_int_equal(b.opts.n_except, 0);
    assert_int_equal(b.opts.flags, 0);
    rds_broadcast_free(&b);
    /* its channel, socket.io#/#room1#: test_rds_channel.c */
}

static void test_binary_arg(void **state)
{
    rds_broadcast_t b;
    sio_bin_t out;

    assert_int_equal(decode_broadcast_hex(HEX_BIN, &b), SIO_OK);
    assert_int_equal(b.packet->type, CD_SIO_EVENT);
    assert_int_equal(b.packet->n_attach, 1);
    assert_int_equal(b.packet->n_have, 1);
    assert_placeholder(arg(b.packet, 1), 0);
    assert_int_equal(b.packet->attach[0].len, 3);
    assert_memory_equal(b.packet->attach[0].data, "\x01\x02\x03", 3);
    reencode(&b, &out);
    assert_bin_hex(&out, HEX_BIN);
    base_free(out.data);
    rds_broadcast_free(&b);
}

/* Depth-first numbering of several buffers at different depths, str8/str16/bin16, flags
 * both set; Node writes its flags in call order, we always write volatile first. */
static void test_nested_binary(void **state)
{
    char hex[4096], *s;
    rds_broadcast_t b;
    sio_bin_t out;
    const cJSON *o1, *b1;

    s = hex;
    s += sprintf(s, "93a26e3283a47479706502a46461746195a17882a161c40101a16292c402020281a163c4"
                    "03030303c5012c");
    for (int i = 0; i < 300; i++)
        s += sprintf(s, "07");
    s += sprintf(s, "d920");
    for (int i = 0; i < 32; i++)
        s += sprintf(s, "73");
    s += sprintf(s, "da0100");
    for (int i = 0; i < 256; i++)
        s += sprintf(s, "74");
    s += sprintf(s, "a36e7370a52f6368617483a5726f6f6d7391a27231a665786365707492a27232a27233a566"
                    "6c61677382");
    assert_int_equal(sprintf(s, "%s", "a8636f6d7072657373c2a8766f6c6174696c65c3"), 40);

    assert_int_equal(decode_broadcast_hex(hex, &b), SIO_OK);
    assert_string_equal(b.packet->nsp, "/chat");
    assert_int_equal(b.packet->n_attach, 4);
    o1 = arg(b.packet, 1);
    assert_placeholder(cJSON_GetObjectItemCaseSensitive(o1, "a"), 0);
    b1 = cJSON_GetObjectItemCaseSensitive(o1, "b");
    assert_placeholder(cJSON_GetArrayItem(b1, 0), 1);
    assert_placeholder(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(b1, 1), "c"), 2);
    assert_placeholder(arg(b.packet, 2), 3);
    assert_int_equal(b.packet->attach[0].len, 1);
    assert_int_equal(b.packet->attach[1].len, 2);
    assert_int_equal(b.packet->attach[2].len, 3);
    assert_int_equal(b.packet->attach[3].len, 300);
    assert_memory_equal(b.packet->attach[2].data, "\x03\x03\x03", 3);
    assert_int_equal(b.packet->attach[3].data[299], 7);
    assert_int_equal(strlen(arg(b.packet, 3)->valuestring), 32);
    assert_int_equal(strlen(arg(b.packet, 4)->valuestring), 256);
    assert_int_equal(b.opts.flags, ADP_VOLATILE | ADP_NOCOMPRESS);
    assert_int_equal(b.opts.n_except, 2);

    reencode(&b, &out);
    strcpy(s, "a8766f6c6174696c65c3a8636f6d7072657373c2");
    assert_bin_hex(&out, hex);
    base_free(out.data);
    rds_broadcast_free(&b);
}

/* A packet built in C with buffers in nested places survives encode + decode exactly. */
static void test_binary_roundtrip(void **state)
{
    sio_bin_t bufs[3] = {{(unsigned char *)"", 0},
                         {(unsigned char *)"\x00\xff\x10", 3},
                         {(unsigned char *)"hello", 5}};
    const char *except[] = {"x", "y"};
    adp_opts_t o = {NULL, 0, except, 2, ADP_NOCOMPRESS, NULL};
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, "/n");
    rds_broadcast_t b;
    sio_bin_t out;

    /* placeholders out of order in the tree on purpose: nums index attach, whatever order */
    p->data = cJSON_Parse("[\"up\",{\"z\":[{\"_placeholder\":true,\"num\":2}],"
                          "\"y\":{\"_placeholder\":true,\"num\":0}},"
                          "[[[{\"_placeholder\":true,\"num\":1}]]],null,false,\"\xc3\xa9\"]");
    assert_non_null(p->data);
    cd_sio_packet_add_attachments(p, bufs, 3);
    assert_int_equal(rds_encode_broadcast("N0de_1", p, &o, "1700000000000-3", &out), SIO_OK);
    assert_int_equal(out.data[0], 0x94);
    assert_int_equal(rds_decode_broadcast(out.data, out.len, &b), SIO_OK);
    assert_string_equal(b.offset, "1700000000000-3");
    assert_string_equal(b.packet->nsp, "/n");
    assert_int_equal(b.opts.flags, ADP_NOCOMPRESS);
    assert_int_equal(b.packet->n_attach, 3);
    /* decoding renumbers depth-first: z's buffer is 0, y's 1, the deep one 2 */
    assert_int_equal(b.packet->attach[0].len, 5);
    assert_memory_equal(b.packet->attach[0].data, "hello", 5);
    assert_int_equal(b.packet->attach[1].len, 0);
    assert_non_null(b.packet->attach[1].data);
    assert_int_equal(b.packet->attach[2].len, 3);
    assert_memory_equal(b.packet->attach[2].data, "\x00\xff\x10", 3);
    assert_string_equal(arg(b.packet, 5)->valuestring, "\xc3\xa9");
    base_free(out.data);

    /* and a second round trip is byte-identical */
    {
        sio_bin_t again, third;
        rds_broadcast_t b2;
        reencode(&b, &again);
        assert_int_equal(rds_decode_broadcast(again.data, again.len, &b2), SIO_OK);
        assert_true(cJSON_Compare(b.packet->data, b2.packet->data, 1));
        reencode(&b2, &third);
        assert_int_equal(again.len, third.len);
        assert_memory_equal(again.data, third.data, again.len);
        base_free(again.data);
        base_free(third.data);
        rds_broadcast_free(&b2);
    }
    rds_broadcast_free(&b);
    cd_sio_packet_free(p);
}

/* Buffers in fields we ignore are dropped; those of packet.data are renumbered from 0. */
static void test_bins_in_ignored_fields(void **state)
{
    rds_broadcast_t b;

    /* packet {foo: <bin aa>, data: ["e", <bin bb>]}, opts {flags: {x: <bin cc>}} */
    assert_int_equal(decode_broadcast_hex("93a175 82a3666f6fc401aa a46461746192a165c401bb"
                                          " 81a5666c61677381a178c401cc",
                                          &b),
                     SIO_OK);
    assert_int_equal(b.packet->n_attach, 1);
    assert_placeholder(arg(b.packet, 1), 0);
    assert_int_equal(b.packet->attach[0].data[0], 0xbb);
    assert_int_equal(b.opts.flags, 0);
    rds_broadcast_free(&b);
}

static void test_numeric_rooms(void **state)
{
    rds_broadcast_t b;

    assert_int_equal(decode_broadcast_hex(HEX_NUMROOM, &b), SIO_OK);
    assert_int_equal(b.opts.n_rooms, 3);
    assert_string_equal(b.opts.rooms[0], "42");
    assert_string_equal(b.opts.rooms[1], "x");
    assert_string_equal(b.opts.rooms[2], "1.5");
    assert_int_equal(b.opts.n_except, 1);
    assert_string_equal(b.opts.except[0], "7");
    rds_broadcast_free(&b);

    /* -0 and 1/3 as String() prints them; the key "rooms" written as str8 */
    assert_int_equal(decode_broadcast_hex("93a16581a46461746191a16581d905726f6f6d7392"
                                          "cb8000000000000000cb3fd5555555555555",
                                          &b),
                     SIO_OK);
    assert_int_equal(b.opts.n_rooms, 2);
    assert_string_equal(b.opts.rooms[0], "0");
    assert_string_equal(b.opts.rooms[1], "0.3333333333333333");
    rds_broadcast_free(&b);
}

static void test_offset_element(void **state)
{
    rds_broadcast_t b;
    char hex[512];

    /* 4th string element: Sockeye's offset */
    snprintf(hex, sizeof(hex), "94%sa5312d322d33", HEX_EXAMPLE + 2);
    assert_int_equal(decode_broadcast_hex(hex, &b), SIO_OK);
    assert_string_equal(b.offset, "1-2-3");
    rds_broadcast_free(&b);
    /* non-string 4th and extra elements are ignored */
    snprintf(hex, sizeof(hex), "95%s07c0", HEX_EXAMPLE + 2);
    assert_int_equal(decode_broadcast_hex(hex, &b), SIO_OK);
    assert_null(b.offset);
    assert_string_equal(b.uid, "AbC123");
    rds_broadcast_free(&b);
}

/* Every prefix of a valid message is rejected, and so is every input below. */
static void test_malformed_broadcasts(void **state)
{
    static const struct {
        const char *hex;
        int rc;
    } bad[] = {
        /* envelope */
        {"", SIO_EPARSE},
        {"c1", SIO_EPARSE},                          /* never-used byte */
        {"80", SIO_EPARSE},                          /* not an array */
        {"92a175a0", SIO_EPARSE},                    /* 2 elements */
        {"9301 81a464617461 91a165 80", SIO_EPARSE}, /* uid not a string */
        {"93a175 c0 80", SIO_EPARSE},                /* packet nil */
        /* packet */
        {"93a175 81a464617461 a165 80", SIO_EPARSE},               /* data not array */
        {"93a175 81a464617461 90 80", SIO_EPARSE},                 /* data empty */
        {"93a175 81a464617461 91a7636f6e6e656374 80", SIO_EPARSE}, /* "connect" */
        {"93a175 81a464617461 91c3 80", SIO_EPARSE},               /* event name true */
        {"93a175 82a47479706503a464617461 91a165 80", SIO_EPARSE}, /* type 3 */
        {"93a175 82a36e737001a464617461 91a165 80", SIO_EPARSE},   /* nsp 1 */
        /* opts */
        {"93a175 81a464617461 91a165 c0", SIO_EPARSE},                     /* opts nil */
        {"93a175 81a464617461 91a165 81a5726f6f6d73a3616263", SIO_EPARSE}, /* rooms "abc" */
        {"93a175 81a464617461 91a165 81a5726f6f6d7391c0", SIO_EPARSE},     /* room nil */
        {"93a175 81a464617461 91a165 81a5726f6f6d739180", SIO_EPARSE},     /* room map */
        {"ddffffffff", SIO_EPARSE},                                          /* huge top-level */
        {"dc0003a175", SIO_EPARSE},                                          /* array16 short */
    };
    rds_broadcast_t b;
    size_t n;
    unsigned char *buf;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&b, 0xa5, sizeof(b));
        if (decode_broadcast_hex(bad[i].hex, &b) != bad[i].rc)
            fail_msg("input %zu (%s) not rejected with %d", i, bad[i].hex, bad[i].rc);
        assert_zero_broadcast(&b);
    }
    assert_int_equal(rds_decode_broadcast(NULL, 0, &b), SIO_EPARSE);

    buf = unhex(HEX_BIN, &n);
    for (size_t len = 0; len < n; len++) {
        assert_int_equal(rds_decode_broadcast(buf, len, &b), SIO_EPARSE);
        assert_zero_broadcast(&b);
    }
    free(buf);

    /* trailing bytes after a complete message, as notepack */
    {
        char hex[512];
        snprintf(hex, sizeof(hex), "%sc0", HEX_EXAMPLE);
        assert_int_equal(decode_broadcast_hex(hex, &b), SIO_EPARSE);
    }
}

/* Nesting: 64 containers in all are fine, 65 are refused, both ways. */
static void test_depth_limit(void **state)
{
    char hex[1024], *s;
    rds_broadcast_t b;
    sio_bin_t out;
    adp_opts_t o = {NULL, 0, NULL, 0, 0, NULL};

    for (int extra = 61; extra <= 62; extra++) {
        s = hex;
        /* envelope(1) + packet map(2) + data array(3) + extra nested arrays */
        s += sprintf(s, "93a17581a46461746192a165");
        for (int i = 0; i < extra; i++)
            s += sprintf(s, "91");
        s += sprintf(s, "c0"
                        "80");
        assert_int_equal(decode_broadcast_hex(hex, &b), extra == 61 ? SIO_OK : SIO_ETOOBIG);
        if (extra == 61) {
            reencode(&b, &out);
            base_free(out.data);
            /* one more level in the tree and the encoder refuses too */
            cJSON *leaf = b.packet->data;
            while (cJSON_GetArrayItem(leaf, cJSON_GetArraySize(leaf) - 1) != NULL &&
                   cJSON_IsArray(cJSON_GetArrayItem(leaf, cJSON_GetArraySize(leaf) - 1)))
                leaf = cJSON_GetArrayItem(leaf, cJSON_GetArraySize(leaf) - 1);
            cJSON_AddItemToArray(leaf, cJSON_CreateArray());
            assert_int_equal(rds_encode_broadcast("u", b.packet, &o, NULL, &out), SIO_ETOOBIG);
            assert_null(out.data);
            assert_int_equal(out.len, 0);
            rds_broadcast_free(&b);
        } else {
            assert_zero_broadcast(&b);
        }
    }
    /* a deep bomb: 100000 nested arrays, rejected without recursing that deep */
    {
        size_t n = 100000;
        unsigned char *bomb = malloc(n);
        assert_non_null(bomb);
        memset(bomb, 0x91, n);
        assert_int_equal(rds_decode_broadcast(bomb, n, &b), SIO_ETOOBIG);
        free(bomb);
    }
}

static void test_encode_errors(void **state)
{
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, "/");
    adp_opts_t o = {NULL, 0, NULL, 0, 0, NULL};
    const char *null_room[] = {NULL};
    sio_bin_t out = {(unsigned char *)"x", 1};

    p->data = cJSON_Parse("[\"e\",{\"_placeholder\":true,\"num\":0}]");
    assert_int_equal(rds_encode_broadcast("u", p, &o, NULL, &out), SIO_EINVAL); /* no buffer */
    assert_null(out.data);
    cJSON_Delete(p->data);
    p->data = cJSON_Parse("{\"a\":1}");
    assert_int_equal(rds_encode_broadcast("u", p, &o, NULL, &out), SIO_EINVAL); /* not array */
    cJSON_Delete(p->data);
    p->data = cJSON_Parse("[\"e\"]");
    assert_int_equal(rds_encode_broadcast(NULL, p, &o, NULL, &out), SIO_EINVAL);
    assert_int_equal(rds_encode_broadcast("u", NULL, &o, NULL, &out), SIO_EINVAL);
    assert_int_equal(rds_encode_broadcast("u", p, NULL, NULL, &out), SIO_EINVAL);
    assert_int_equal(rds_encode_broadcast("u", p, &o, NULL, NULL), SIO_EINVAL);
    o.flags = ADP_LOCAL;
    assert_int_equal(rds_encode_broadcast("u", p, &o, NULL, &out), SIO_EINVAL);
    o.flags = 0;
    o.rooms = null_room;
    o.n_rooms = 1;
    assert_int_equal(rds_encode_broadcast("u", p, &o, NULL, &out), SIO_EINVAL);
    o.n_rooms = 0;
    p->type = CD_SIO_ACK;
    assert_int_equal(rds_encode_broadcast("u", p, &o, NULL, &out), SIO_EINVAL);
    p->type = CD_SIO_EVENT;
    cJSON_AddItemToArray(p->data, cJSON_CreateRaw("1"));
    assert_int_equal(rds_encode_broadcast("u", p, &o, NULL, &out), SIO_EINVAL);
    assert_null(out.data);
    cd_sio_packet_free(p);
}

/* ---------------------------------------------------------------- requests */

static void test_request_all_rooms(void **state)
{
    const char *json = "{\"uid\":\"AbC123\",\"requestId\":\"Rq1\",\"type\":1}";
    sio_bin_t out;
    rds_msg_t m;

    assert_int_equal(rds_encode_all_rooms_req("AbC123", "Rq1", &out), SIO_OK);
    assert_bin_text(&out, json);
    base_free(out.data);
    assert_int_equal(decode_text(0, json, &m), SIO_OK);
    assert_int_equal(m.type, RDS_REQ_ALL_ROOMS);
    assert_string_equal(m.uid, "AbC123");
    assert_string_equal(m.request_id, "Rq1");
    rds_msg_free(&m);
    assert_zero_msg(&m);
}

static void test_request_join_leave(void **state)
{
    const char *rooms[] = {"a"}, *except[] = {"b"}, *targets[] = {"c", "d"};
    adp_opts_t o = {rooms, 1, except, 1, 0, NULL};
    const char *json = "{\"uid\":\"AbC123\",\"type\":2,\"opts\":{\"rooms\":[\"a\"],"
                       "\"except\":[\"b\"]},\"rooms\":[\"c\",\"d\"]}";
    sio_bin_t out;
    rds_msg_t m;

    assert_int_equal(
        rds_encode_sockets_rooms_req(RDS_REQ_REMOTE_JOIN, "AbC123", &o, targets, 2, &out), SIO_OK);
    assert_bin_text(&out, json);
    base_free(out.data);
    assert_int_equal(rds_encode_sockets_rooms_req(5, "AbC123", &o, targets, 2, &out), SIO_EINVAL);
    assert_null(out.data);

    assert_int_equal(decode_text(0, json, &m), SIO_OK);
    assert_int_equal(m.type, RDS_REQ_REMOTE_JOIN);
    assert_true(m.has_opts);
    assert_int_equal(m.opts.n_rooms, 1);
    assert_string_equal(m.opts.rooms[0], "a");
    assert_string_equal(m.opts.except[0], "b");
    assert_true(m.has_rooms);
    assert_int_equal(m.n_rooms, 2);
    assert_string_equal(m.rooms[1], "d");
    assert_null(m.request_id);
    rds_msg_free(&m);

    /* the emitter's socketsLeave: no uid, no requestId (spec §3 / §4.1 shape) */
    assert_int_equal(decode_text(0,
                                 "{\"type\":3,\"opts\":{\"rooms\":[\"room1\"],\"except\":[],"
                                 "\"flags\":{}},\"rooms\":[\"room2\"]}",
                                 &m),
                     SIO_OK);
    assert_int_equal(m.type, RDS_REQ_REMOTE_LEAVE);
    assert_null(m.uid);
    assert_true(m.has_opts);
    assert_int_equal(m.n_rooms, 1);
    assert_string_equal(m.rooms[0], "room2");
    rds_msg_free(&m);

    /* a single bare room is what socket.join() takes too */
    assert_int_equal(decode_text(0, "{\"type\":2,\"opts\":{},\"rooms\":\"solo\"}", &m), SIO_OK);
    assert_int_equal(m.n_rooms, 1);
    assert_string_equal(m.rooms[0], "solo");
    rds_msg_free(&m);

    /* legacy form */
    assert_int_equal(
        decode_text(0, "{\"requestId\":\"x1\",\"type\":2,\"sid\":\"s1\",\"room\":5}", &m), SIO_OK);
    assert_false(m.has_opts);
    assert_string_equal(m.sid, "s1");
    assert_string_equal(m.room, "5");
    assert_string_equal(m.request_id, "x1");
    rds_msg_free(&m);
}

static void test_request_disconnect(void **state)
{
    adp_opts_t o = {NULL, 0, NULL, 0, 0, NULL};
    const char *json = "{\"uid\":\"u\",\"type\":4,\"opts\":{\"rooms\":[],\"except\":[]},"
                       "\"close\":true}";
    sio_bin_t out;
    rds_msg_t m;

    assert_int_equal(rds_encode_disconnect_req("u", &o, 1, &out), SIO_OK);
    assert_bin_text(&out, json);
    base_free(out.data);
    assert_int_equal(decode_text(0, json, &m), SIO_OK);
    assert_int_equal(m.type, RDS_REQ_REMOTE_DISCONNECT);
    assert_true(m.has_opts);
    assert_true(m.close);
    rds_msg_free(&m);

    /* emitter (spec §4.1 data) and legacy forms */
    assert_int_equal(decode_text(0,
                                 "{\"type\":4,\"opts\":{\"rooms\":[\"room2\"],\"except\":[],"
                                 "\"flags\":{}},\"close\":false}",
                                 &m),
                     SIO_OK);
    assert_false(m.close);
    assert_string_equal(m.opts.rooms[0], "room2");
    rds_msg_free(&m);
    assert_int_equal(
        decode_text(0, "{\"requestId\":\"r\",\"type\":4,\"sid\":\"s9\",\"close\":1}", &m), SIO_OK);
    assert_false(m.has_opts);
    assert_string_equal(m.sid, "s9");
    assert_true(m.close);
    rds_msg_free(&m);
}

static void test_request_fetch_sockets(void **state)
{
    const char *rooms[] = {"a"};
    adp_opts_t o = {rooms, 1, NULL, 0, 0, NULL};
    const char *json = "{\"uid\":\"u\",\"requestId\":\"r\",\"type\":5,\"opts\":{\"rooms\":"
                       "[\"a\"],\"except\":[]}}";
    sio_bin_t out;
    rds_msg_t m;

    assert_int_equal(rds_encode_fetch_req("u", "r", &o, &out), SIO_OK);
    assert_bin_text(&out, json);
    base_free(out.data);
    assert_int_equal(decode_text(0, json, &m), SIO_OK);
    assert_int_equal(m.type, RDS_REQ_REMOTE_FETCH);
    assert_string_equal(m.opts.rooms[0], "a");
    rds_msg_free(&m);

    /* type 0: v8 only answers it */
    assert_int_equal(decode_text(0,
                                 "{\"uid\":\"u\",\"requestId\":\"r\",\"type\":0,\"rooms\":"
                                 "[\"a\",\"b\"]}",
                                 &m),
                     SIO_OK);
    assert_int_equal(m.type, RDS_REQ_SOCKETS);
    assert_int_equal(m.n_rooms, 2);
    rds_msg_free(&m);
}

static void test_request_server_side_emit(void **state)
{
    cJSON *args = cJSON_Parse("[\"ev\",1,{\"a\":[true,null]}]");
    const char *with_ack = "{\"uid\":\"u\",\"requestId\":\"r\",\"type\":6,\"data\":"
                           "[\"ev\",1,{\"a\":[true,null]}]}";
    sio_bin_t out;
    rds_msg_t m;

    assert_int_equal(rds_encode_server_emit_req("u", "r", args, &out), SIO_OK);
    assert_bin_text(&out, with_ack);
    base_free(out.data);
    assert_int_equal(rds_encode_server_emit_req("u", NULL, args, &out), SIO_OK);
    assert_bin_text(&out, "{\"uid\":\"u\",\"type\":6,\"data\":[\"ev\",1,{\"a\":[true,null]}]}");
    base_free(out.data);

    assert_int_equal(decode_text(0, with_ack, &m), SIO_OK);
    assert_int_equal(m.type, RDS_REQ_SERVER_SIDE_EMIT);
    assert_string_equal(m.request_id, "r");
    assert_true(cJSON_Compare(m.data, args, 1));
    rds_msg_free(&m);

    /* the emitter's serverSideEmit (spec §3) */
    assert_int_equal(
        decode_text(0, "{\"uid\":\"emitter\",\"type\":6,\"data\":[\"hello\",\"w\"]}", &m), SIO_OK);
    assert_string_equal(m.uid, "emitter");
    assert_null(m.request_id);
    assert_string_equal(cJSON_GetArrayItem(m.data, 0)->valuestring, "hello");
    rds_msg_free(&m);
    cJSON_Delete(args);
}

static void test_request_broadcast_ack(void **state)
{
    const char *rooms[] = {"r"};
    adp_opts_t o;
    sio_bin_t out;
    rds_msg_t m;

    assert_int_equal(decode_hex(0, HEX_REQ7, &m), SIO_OK);
    assert_int_equal(m.type, RDS_REQ_BROADCAST);
    assert_string_equal(m.uid, "AbC123");
    assert_string_equal(m.request_id, "Rq1234");
    assert_non_null(m.packet);
    assert_string_equal(m.packet->nsp, "/");
    assert_string_equal(arg(m.packet, 0)->valuestring, "ev");
    assert_placeholder(arg(m.packet, 2), 0);
    assert_int_equal(m.packet->n_attach, 1);
    assert_int_equal(m.packet->attach[0].data[0], 0xff);
    assert_int_equal(m.opts.n_rooms, 1);
    assert_string_equal(m.opts.rooms[0], "r");
    assert_int_equal(m.opts.timeout_ms, 5000);

    rds_opts_view(&m.opts, &o);
    assert_ptr_equal(o.rooms[0], m.opts.rooms[0]);
    o.rooms = rooms;
    assert_int_equal(
        rds_encode_broadcast_ack_req("AbC123", "Rq1234", m.packet, &o, m.opts.timeout_ms, &out),
        SIO_OK);
    assert_bin_hex(&out, HEX_REQ7);
    base_free(out.data);
    rds_msg_free(&m);
}

static void test_malformed_requests(void **state)
{
    static const char *const bad_json[] = {
        "{\"uid\":\"u\",\"requestId\":\"r\"}",                /* no type */
        "{\"uid\":\"u\",\"requestId\":\"r\",\"type\":\"1\"}", /* type as text */
        "{\"uid\":\"u\",\"requestId\":\"r\",\"type\":1.5}",
        "{\"uid\":\"u\",\"requestId\":\"r\",\"type\":10}",
        "{\"requestId\":\"r\",\"type\":8,\"clientCount\":1}", /* a response type */
        "{\"uid\":\"u\",\"type\":1}",                         /* no requestId */
        "{\"uid\":\"u\",\"requestId\":\"r\",\"type\":5}",     /* no opts */
        "{\"uid\":\"u\",\"requestId\":\"r\",\"type\":5,\"opts\":[]}",
        "{\"uid\":\"u\",\"type\":6,\"data\":\"ev\"}", /* data not an array */
        "{\"uid\":\"u\",\"type\":6,\"data\":[]}",
        "{\"uid\":\"u\",\"type\":6,\"data\":[{\"_placeholder\":true,\"num\":0}]}",
        "{\"uid\":\"u\",\"type\":6,\"data\":[\"e\",{\"_placeholder\":true,\"num\":0}]}",
        "{\"uid\":\"u\",\"requestId\":\"r\",\"type\":7,\"opts\":{}}", /* no packet */
        "{\"type\":2,\"opts\":{\"rooms\":[]}}",                       /* join without rooms */
        "{\"type\":2,\"sid\":\"s\"}",                                 /* legacy without room */
        "{\"type\":4}",                                               /* legacy without sid */
        "{\"type\":2,\"opts\":{\"rooms\":[{}]},\"rooms\":[]}",        /* room is an object */
        "{\"uid\":{},\"requestId\":\"r\",\"type\":1}",
        "{\"type\":1,\"requestId\":\"r\"} x", /* trailing garbage */
        "{\"type\":1,",                       /* truncated */
        "{",
    };
    rds_msg_t m;

    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
        memset(&m, 0x5a, sizeof(m));
        if (decode_text(0, bad_json[i], &m) != SIO_EPARSE)
            fail_msg("request %zu accepted: %s", i, bad_json[i]);
        assert_zero_msg(&m);
    }
    /* raw NUL inside JSON, a msgpack array, an empty payload */
    assert_int_equal(rds_decode_request("{\"type\":1,\0}", 12, &m), SIO_EPARSE);
    assert_int_equal(decode_hex(0, "9101", &m), SIO_EPARSE);
    assert_int_equal(rds_decode_request("", 0, &m), SIO_EPARSE);
    /* every prefix of the type-7 request */
    {
        size_t n;
        unsigned char *buf = unhex(HEX_REQ7, &n);
        for (size_t len = 0; len < n; len++)
            assert_int_equal(rds_decode_request(buf, len, &m), SIO_EPARSE);
        free(buf);
    }
    /* invalid UTF-8 in JSON is repaired like Buffer.toString(), not refused */
    {
        const char *j = "{\"uid\":\"\xff\",\"requestId\":\"r\",\"type\":1}";
        assert_int_equal(rds_decode_request(j, strlen(j), &m), SIO_OK);
    }
    assert_string_equal(m.uid, "\xef\xbf\xbd");
    rds_msg_free(&m);
}

/* ---------------------------------------------------------------- responses */

static void test_responses_json(void **state)
{
    const char *rooms[] = {"a", "b"}, *sids[] = {"s1"};
    cJSON *sockets = cJSON_Parse("[{\"id\":\"s1\",\"handshake\":{\"headers\":{},\"time\":\"t\","
                                 "\"address\":\"::1\",\"query\":{}},\"rooms\":[\"s1\",\"r\"],"
                                 "\"data\":{\"k\":1}}]");
    cJSON *ack = cJSON_Parse("{\"x\":1}");
    sio_bin_t out;
    rds_msg_t m;

    assert_int_equal(rds_encode_all_rooms_res("r", rooms, 2, &out), SIO_OK);
    assert_bin_text(&out, "{\"requestId\":\"r\",\"rooms\":[\"a\",\"b\"]}");
    assert_int_equal(rds_decode_response(out.data, out.len, &m), SIO_OK);
    assert_int_equal(m.type, RDS_TYPE_NONE);
    assert_true(m.has_rooms);
    assert_int_equal(m.n_rooms, 2);
    assert_string_equal(m.rooms[1], "b");
    rds_msg_free(&m);
    base_free(out.data);

    assert_int_equal(rds_encode_sockets_res("r", sids, 1, &out), SIO_OK);
    assert_bin_text(&out, "{\"requestId\":\"r\",\"sockets\":[\"s1\"]}");
    base_free(out.data);

    assert_int_equal(rds_encode_fetch_res("r", sockets, &out), SIO_OK);
    assert_int_equal(rds_decode_response(out.data, out.len, &m), SIO_OK);
    assert_true(cJSON_Compare(m.sockets, sockets, 1));
    assert_false(m.has_rooms);
    rds_msg_free(&m);
    base_free(out.data);

    assert_int_equal(rds_encode_server_emit_res("r", ack, &out), SIO_OK);
    assert_bin_text(&out, "{\"type\":6,\"requestId\":\"r\",\"data\":{\"x\":1}}");
    assert_int_equal(rds_decode_response(out.data, out.len, &m), SIO_OK);
    assert_int_equal(m.type, RDS_REQ_SERVER_SIDE_EMIT);
    assert_true(cJSON_Compare(m.data, ack, 1));
    rds_msg_free(&m);
    base_free(out.data);
    assert_int_equal(rds_encode_server_emit_res("r", NULL, &out), SIO_OK);
    assert_bin_text(&out, "{\"type\":6,\"requestId\":\"r\"}");
    base_free(out.data);

    assert_int_equal(rds_encode_client_count_res("Rq1234", 3, &out), SIO_OK);
    assert_bin_text(&out, "{\"type\":8,\"requestId\":\"Rq1234\",\"clientCount\":3}");
    assert_int_equal(rds_decode_response(out.data, out.len, &m), SIO_OK);
    assert_int_equal(m.type, RDS_REQ_BROADCAST_CLIENT_COUNT);
    assert_int_equal(m.client_count, 3);
    rds_msg_free(&m);
    base_free(out.data);

    assert_int_equal(rds_encode_legacy_res("r", &out), SIO_OK);
    assert_bin_text(&out, "{\"requestId\":\"r\"}");
    assert_int_equal(rds_decode_response(out.data, out.len, &m), SIO_OK);
    assert_string_equal(m.request_id, "r");
    assert_null(m.data);
    rds_msg_free(&m);
    base_free(out.data);

    /* Node ignores non-array rooms/sockets in a reply; so do we */
    assert_int_equal(decode_text(1, "{\"requestId\":\"r\",\"rooms\":5,\"sockets\":{}}", &m),
                     SIO_OK);
    assert_false(m.has_rooms);
    assert_null(m.sockets);
    rds_msg_free(&m);

    assert_int_equal(rds_encode_fetch_res("r", ack, &out), SIO_EINVAL); /* not an array */
    assert_int_equal(rds_encode_all_rooms_res(NULL, rooms, 2, &out), SIO_EINVAL);
    cJSON_Delete(sockets);
    cJSON_Delete(ack);
}

static void test_response_broadcast_ack(void **state)
{
    sio_bin_t out;
    rds_msg_t m;

    assert_int_equal(decode_hex(1, HEX_RES9, &m), SIO_OK);
    assert_int_equal(m.type, RDS_REQ_BROADCAST_ACK);
    assert_string_equal(m.request_id, "Rq1234");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m.data, "ok")));
    assert_placeholder(cJSON_GetObjectItemCaseSensitive(m.data, "buf"), 0);
    assert_int_equal(m.n_attach, 1);
    assert_memory_equal(m.attach[0].data, "\x01\x02", 2);
    assert_int_equal(rds_encode_broadcast_ack_res("Rq1234", m.data, m.attach, m.n_attach, &out),
                     SIO_OK);
    assert_bin_hex(&out, HEX_RES9);
    base_free(out.data);
    rds_msg_free(&m);

    assert_int_equal(decode_hex(1, HEX_RES9_UNDEF, &m), SIO_OK);
    assert_null(m.data);
    assert_int_equal(rds_encode_broadcast_ack_res("Rq1234", NULL, NULL, 0, &out), SIO_OK);
    assert_bin_hex(&out, HEX_RES9_UNDEF);
    base_free(out.data);
    rds_msg_free(&m);
}

static void test_malformed_responses(void **state)
{
    static const char *const bad_json[] = {
        "{\"rooms\":[\"a\"]}",              /* no requestId */
        "{\"type\":8,\"requestId\":\"r\"}", /* no clientCount */
        "{\"type\":8,\"requestId\":\"r\",\"clientCount\":-1}",
        "{\"type\":8,\"requestId\":\"r\",\"clientCount\":1.5}",
        "{\"type\":8,\"requestId\":\"r\",\"clientCount\":\"3\"}",
        "{\"requestId\":\"r\",\"rooms\":[null]}",
        "{\"requestId\":\"r\",\"type\":11}",
        "{\"requestId\":\"r\",\"data\":{\"_placeholder\":true,\"num\":0}}",
    };
    rds_msg_t m;

    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
        memset(&m, 0x5a, sizeof(m));
        if (decode_text(1, bad_json[i], &m) != SIO_EPARSE)
            fail_msg("response %zu accepted: %s", i, bad_json[i]);
        assert_zero_msg(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_bytes),
        cmocka_unit_test(test_captured_broadcast),
        cmocka_unit_test(test_emitter_message),
        cmocka_unit_test(test_binary_arg),
        cmocka_unit_test(test_nested_binary),
        cmocka_unit_test(test_binary_roundtrip),
        cmocka_unit_test(test_bins_in_ignored_fields),
        cmocka_unit_test(test_numeric_rooms),
        cmocka_unit_test(test_offset_element),
        cmocka_unit_test(test_malformed_broadcasts),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_request_all_rooms),
        cmocka_unit_test(test_request_join_leave),
        cmocka_unit_test(test_request_disconnect),
        cmocka_unit_test(test_request_fetch_sockets),
        cmocka_unit_test(test_request_server_side_emit),
        cmocka_unit_test(test_request_broadcast_ack),
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_responses_json),
        cmocka_unit_test(test_response_broadcast_ack),
        cmocka_unit_test(test_malformed_responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
