/* test_rds_codec.c -- adapter/rds_codec.c: the Redis wire formats, byte for byte.
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
#include "rds_channel.h"
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

/* notepack: data ["n",0,1,127,128,255,256,65535,65536,2^32-1,2^32,2^53,-1,-32,-33,-128,-129,
 * -32768,-32769,-2^31,-2^31-1,-2^53,1.5,-0.25,1e300]. notepack writes 1e300 (integral!) as
 * the garbage uint64 cf 00..00; we write float64, see HEX_NUMBERS_OURS_TAIL. */
static const char HEX_NUMBERS_HEAD[] =
    "93a26e3183a47479706502a464617461dc0019a16e00017fcc80ccffcd0100cdffffce00010000ceffff"
    "ffffcf0000000100000000cf0020000000000000ffe0d0dfd080d1ff7fd18000d2ffff7fffd28000000"
    "0d3ffffffff7fffffffd3ffe0000000000000cb3ff8000000000000cbbfd0000000000000";
static const char HEX_NUMBERS_NOTEPACK_TAIL[] =
    "cf0000000000000000a36e7370a12f83a5726f6f6d7390a665786365707490a5666c61677380";
static const char HEX_NUMBERS_OURS_TAIL[] =
    "cb7e37e43c8800759ca36e7370a12f83a5726f6f6d7390a665786365707490a5666c61677380";

/* notepack: ["n2",{type:2,data:["x",{a:Buf[1],b:[Buf[2,2],{c:Buf[3,3,3]}]},Buf(300x7),
 *            "s"x32,"t"x256],nsp:"/chat"},{rooms:["r1"],except:["r2","r3"],
 *            flags:{compress:false,volatile:true}}] -- built at run time (long). */

/* notepack: ["d1",{type:2,data:["d",new Date(0),new Date(1700000000123),new Date(-1),
 *            new Date(Date.UTC(12000,0,1)),undefined,{a:undefined,b:1},Uint8Array[9,8]],
 *            nsp:"/"},{rooms:[],except:[],flags:{}}]: timestamps 32/64/96, nil, bin. */
static const char HEX_DATES[] =
    "93a2643183a47479706502a46461746198a164d6ff00000000d7ff1d5353006553f100c70cff3b8b87c0"
    "ffffffffffffffffc70cff0000000000000049b1d60100c081a16201c4020908a36e7370a12f83a5726f"
    "6f6d7390a665786365707490a5666c61677380";

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

/* notepack: ["m1",{type:2,data:["m",{k0:0..k15:15},[0..15]],nsp:"/"},...]: map16, array16 */
static const char HEX_MAP16[] =
    "93a26d3183a47479706502a46461746193a16dde0010a26b3000a26b3101a26b3202a26b3303a26b3404"
    "a26b3505a26b3606a26b3707a26b3808a26b3909a36b31300aa36b31310ba36b31320ca36b31330da36b"
    "31340ea36b31350fdc0010000102030405060708090a0b0c0d0e0fa36e7370a12f83a5726f6f6d7390a6"
    "65786365707490a5666c61677380";

/* notepack: ["nr",{type:2,data:["e"],nsp:"/"},{rooms:[42,"x",1.5],except:[7],flags:{}}] */
static const char HEX_NUMROOM[] =
    "93a26e7283a47479706502a46461746191a165a36e7370a12f83a5726f6f6d73932aa178cb3ff8000000"
    "000000a66578636570749107a5666c61677380";

/* ---------------------------------------------------------------- helpers */

/* Hex text (spaces allowed) -> new buffer; *len its size. */
static unsigned char *unhex(const char *hex, size_t *len)
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

static char *tohex(const unsigned char *b, size_t n)
{
    char *s = malloc(2 * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        sprintf(s + 2 * i, "%02x", b[i]);
    s[2 * n] = '\0';
    return s;
}

static void assert_bin_hex(const sio_bin_t *b, const char *hex)
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
    const char *chan = "socket.io#/#room1#", *room;
    size_t room_len;

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

    assert_int_equal(rds_channel_parse("socket.io", "/", chan, strlen(chan), &room, &room_len),
                     RDS_CHAN_ROOM);
    assert_int_equal(room_len, 5);
    assert_memory_equal(room, "room1", 5);
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

static void test_numbers(void **state)
{
    static const double want[] = {0,
                                  1,
                                  127,
                                  128,
                                  255,
                                  256,
                                  65535,
                                  65536,
                                  4294967295.0,
                                  4294967296.0,
                                  9007199254740992.0,
                                  -1,
                                  -32,
                                  -33,
                                  -128,
                                  -129,
                                  -32768,
                                  -32769,
                                  -2147483648.0,
                                  -2147483649.0,
                                  -9007199254740992.0,
                                  1.5,
                                  -0.25};
    char hex[1024];
    rds_broadcast_t b;
    sio_bin_t out;

    snprintf(hex, sizeof(hex), "%s%s", HEX_NUMBERS_HEAD, HEX_NUMBERS_NOTEPACK_TAIL);
    assert_int_equal(decode_broadcast_hex(hex, &b), SIO_OK);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_true(arg(b.packet, (int)i + 1)->valuedouble == want[i]);
    assert_true(arg(b.packet, 24)->valuedouble == 0); /* notepack's wrapped 1e300 */

    /* our encoder writes every value but the last exactly as notepack does */
    cJSON_SetNumberValue(cJSON_GetArrayItem(b.packet->data, 24), 1e300);
    reencode(&b, &out);
    snprintf(hex, sizeof(hex), "%s%s", HEX_NUMBERS_HEAD, HEX_NUMBERS_OURS_TAIL);
    assert_bin_hex(&out, hex);
    base_free(out.data);
    rds_broadcast_free(&b);
}

/* Numbers the captures do not cover: > 2^63, >= 2^64, -0, NaN, float32 and all int widths. */
static void test_number_edges(void **state)
{
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, "/");
    adp_opts_t o = {NULL, 0, NULL, 0, 0, NULL};
    rds_broadcast_t b;
    sio_bin_t out;
    const char *data_hex;
    char *hex;

    p->data = cJSON_CreateArray();
    cJSON_AddItemToArray(p->data, cJSON_CreateString("e"));
    cJSON_AddItemToArray(p->data, cJSON_CreateNumber(-0.0));
    cJSON_AddItemToArray(p->data, cJSON_CreateNumber(9223372036854775808.0));
    cJSON_AddItemToArray(p->data, cJSON_CreateNumber(18446744073709551616.0));
    cJSON_AddItemToArray(p->data, cJSON_CreateNumber(-9223372036854775808.0));
    cJSON_AddItemToArray(p->data, cJSON_CreateNumber(NAN));
    assert_int_equal(rds_encode_broadcast("u", p, &o, NULL, &out), SIO_OK);
    hex = tohex(out.data, out.len);
    data_hex = "96a16500cf8000000000000000cb43f0000000000000d38000000000000000cb7ff8000000000000";
    assert_non_null(strstr(hex, data_hex));
    free(hex);
    base_free(out.data);
    cd_sio_packet_free(p);

    /* every msgpack number format, including float32 and int64 that notepack never writes */
    assert_int_equal(decode_broadcast_hex("93a17583a474797065d002a46461746199a165"
                                          "ca3fc00000"         /* float32 1.5 */
                                          "d3fffffffffffffffe" /* int64 -2 */
                                          "cfffffffffffffffff" /* uint64 2^64-1 */
                                          "d17fff"             /* int16 32767 */
                                          "d2ffffffff"         /* int32 -1 */
                                          "cd0102"             /* uint16 258 */
                                          "ce01020304"         /* uint32 */
                                          "c3"                 /* true */
                                          "a36e7370a12f80",
                                          &b),
                     SIO_OK);
    assert_true(arg(b.packet, 1)->valuedouble == 1.5);
    assert_true(arg(b.packet, 2)->valuedouble == -2);
    assert_true(arg(b.packet, 3)->valuedouble == 18446744073709551615.0);
    assert_true(arg(b.packet, 4)->valuedouble == 32767);
    assert_true(arg(b.packet, 5)->valuedouble == -1);
    assert_true(arg(b.packet, 6)->valuedouble == 258);
    assert_true(arg(b.packet, 7)->valuedouble == 16909060);
    assert_true(cJSON_IsTrue(arg(b.packet, 8)));
    assert_int_equal(b.opts.n_rooms, 0); /* empty opts map: everyone */
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

static void test_dates_undefined_typed(void **state)
{
    rds_broadcast_t b;
    const cJSON *obj;

    assert_int_equal(decode_broadcast_hex(HEX_DATES, &b), SIO_OK);
    /* what JSON.stringify gives for the same Dates (checked with node) */
    assert_string_equal(arg(b.packet, 1)->valuestring, "1970-01-01T00:00:00.000Z");
    assert_string_equal(arg(b.packet, 2)->valuestring, "2023-11-14T22:13:20.123Z");
    assert_string_equal(arg(b.packet, 3)->valuestring, "1969-12-31T23:59:59.999Z");
    assert_string_equal(arg(b.packet, 4)->valuestring, "+012000-01-01T00:00:00.000Z");
    assert_true(cJSON_IsNull(arg(b.packet, 5)));
    obj = arg(b.packet, 6);
    assert_null(cJSON_GetObjectItemCaseSensitive(obj, "a"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(obj, "b")->valueint, 1);
    assert_placeholder(arg(b.packet, 7), 0);
    assert_memory_equal(b.packet->attach[0].data, "\x09\x08", 2);
    rds_broadcast_free(&b);

    /* legacy notepack forms: d7 00 = Date in ms, ext type 0 = ArrayBuffer, d4 00 00 =
     * undefined (in an array: null, as map value: key dropped), other ext = [type, bin] */
    assert_int_equal(decode_broadcast_hex("93a17582a464617461"
                                          "96a165"
                                          "d7000000018bcfe56800" /* 1700000000000 ms */
                                          "c70300aabbcc"         /* ArrayBuffer */
                                          "d40000"               /* undefined */
                                          "82a178d40000a17901"   /* {x: undefined, y: 1} */
                                          "d505abcd"             /* ext 5 */
                                          "a474797065"
                                          "02"
                                          "80",
                                          &b),
                     SIO_OK);
    assert_string_equal(arg(b.packet, 1)->valuestring, "2023-11-14T22:13:20.000Z");
    assert_placeholder(arg(b.packet, 2), 0);
    assert_memory_equal(b.packet->attach[0].data, "\xaa\xbb\xcc", 3);
    assert_true(cJSON_IsNull(arg(b.packet, 3)));
    assert_int_equal(cJSON_GetArraySize(arg(b.packet, 4)), 1);
    assert_int_equal(cJSON_GetArrayItem(arg(b.packet, 5), 0)->valueint, 5);
    assert_placeholder(cJSON_GetArrayItem(arg(b.packet, 5), 1), 1);
    assert_memory_equal(b.packet->attach[1].data, "\xab\xcd", 2);
    assert_string_equal(b.packet->nsp, "/"); /* no nsp in the packet: "/" */
    rds_broadcast_free(&b);

    /* an out-of-range Date reads as null, as JSON.stringify(new Date(NaN)) */
    assert_int_equal(decode_broadcast_hex("93a17582a46461746192a165c70cff000000007fffffffffffffff"
                                          "a47479706502"
                                          "80",
                                          &b),
                     SIO_OK);
    assert_true(cJSON_IsNull(arg(b.packet, 1)));
    rds_broadcast_free(&b);
}

static void test_map16_array16(void **state)
{
    rds_broadcast_t b;
    sio_bin_t out;

    assert_int_equal(decode_broadcast_hex(HEX_MAP16, &b), SIO_OK);
    assert_int_equal(cJSON_GetArraySize(arg(b.packet, 1)), 16);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(arg(b.packet, 1), "k15")->valueint, 15);
    assert_int_equal(cJSON_GetArraySize(arg(b.packet, 2)), 16);
    reencode(&b, &out);
    assert_bin_hex(&out, HEX_MAP16);
    base_free(out.data);
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

static void test_utf8_repair(void **state)
{
    rds_broadcast_t b;

    /* "a<ff>b", "<e2 82>" (truncated), "<ed a0 80>" (surrogate): U+FFFD per maximal subpart,
     * as Buffer.toString gives "a\ufffdb", "\ufffd", "\ufffd\ufffd\ufffd" */
    assert_int_equal(decode_broadcast_hex("93a17582a46461746194a165a361ff62a2e282a3eda080"
                                          "a47479706502"
                                          "80",
                                          &b),
                     SIO_OK);
    assert_string_equal(arg(b.packet, 1)->valuestring, "a\xef\xbf\xbd"
                                                       "b");
    assert_string_equal(arg(b.packet, 2)->valuestring, "\xef\xbf\xbd");
    assert_string_equal(arg(b.packet, 3)->valuestring, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    rds_broadcast_free(&b);

    /* overlong <e0 80 80>, beyond U+10FFFF <f4 90 80 80>, and a valid 4-byte emoji kept */
    assert_int_equal(decode_broadcast_hex("93a17582a46461746194a165a3e08080a4f4908080a4f09f9880"
                                          "a47479706502"
                                          "80",
                                          &b),
                     SIO_OK);
    assert_string_equal(arg(b.packet, 1)->valuestring, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(arg(b.packet, 2)->valuestring,
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(arg(b.packet, 3)->valuestring, "\xf0\x9f\x98\x80");
    rds_broadcast_free(&b);

    /* valid sequences around a repaired byte are kept */
    assert_int_equal(decode_broadcast_hex("93a17582a46461746192a165a4c3a9ffc3a47479706502"
                                          "80",
                                          &b),
                     SIO_OK);
    assert_string_equal(arg(b.packet, 1)->valuestring, "\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd");
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
        /* values */
        {"93a175 81a464617461 92a16581 0101 80", SIO_EPARSE},      /* int map key */
        {"93a175 81a464617461 92a16581 c40101 01 80", SIO_EPARSE}, /* bin map key */
        /* a literal placeholder object would alias attachment 0 */
        {"93a175 81a464617461 92a16582ac5f706c616365686f6c646572c3a36e756d00 80", SIO_EPARSE},
        {"93a175 81a464617461 92a165a3610062 80", SIO_EPARSE}, /* NUL in a string */
        {"93a175 81a464617461 91a3610062 80", SIO_EPARSE},     /* NUL in the event */
        /* declared lengths far beyond the input */
        {"93a17581a46461746192a165 ddffffffff", SIO_EPARSE},                 /* array32 of 2^32-1 */
        {"93a17581a46461746192a165 dfffffffff", SIO_EPARSE},                 /* map32 of 2^32-1 */
        {"93a17581a46461746192a165 dbffffffff61", SIO_EPARSE},               /* str32 of 2^32-1 */
        {"93a17581a46461746192a165 c6ffffffff61", SIO_EPARSE},               /* bin32 of 2^32-1 */
        {"93a17581a46461746192a165 c9ffffffff0161", SIO_EPARSE},             /* ext32 of 2^32-1 */
        {"93a17581a46461746192a165 c5ffff", SIO_EPARSE},                     /* bin16 short */
        {"93a17581a46461746192a165 c70aff00000000000000000000", SIO_EPARSE}, /* ts96 len 10 */
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

/* ---------------------------------------------------------------- channels */

static void test_channel_format(void **state)
{
    static const struct {
        rds_chan_t kind;
        const char *nsp, *arg, *want;
    } cases[] = {
        {RDS_CHAN_BROADCAST, "/", NULL, "socket.io#/#"},
        {RDS_CHAN_BROADCAST, "/chat", NULL, "socket.io#/chat#"},
        {RDS_CHAN_ROOM, "/", "lobby", "socket.io#/#lobby#"},
        {RDS_CHAN_PATTERN, "/", NULL, "socket.io#/#*"},
        {RDS_CHAN_PATTERN, "/a*[b]?", NULL, "socket.io#/a\\*\\[b\\]\\?#*"},
        {RDS_CHAN_REQUEST, "/chat", NULL, "socket.io-request#/chat#"},
        {RDS_CHAN_RESPONSE, "/", NULL, "socket.io-response#/#"},
        {RDS_CHAN_RESPONSE_UID, "/", "AbC123", "socket.io-response#/#AbC123#"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *c = rds_channel(cases[i].kind, "socket.io", cases[i].nsp, cases[i].arg);
        assert_non_null(c);
        assert_string_equal(c, cases[i].want);
        base_free(c);
    }
    assert_null(rds_channel(RDS_CHAN_ROOM, "socket.io", "/", NULL));
    assert_null(rds_channel(RDS_CHAN_RESPONSE_UID, "socket.io", "/", NULL));
    assert_null(rds_channel(RDS_CHAN_BROADCAST, NULL, "/", NULL));
    assert_null(rds_channel(RDS_CHAN_BROADCAST, "k", NULL, NULL));
    assert_null(rds_channel(RDS_CHAN_NONE, "k", "/", NULL));
}

static void test_channel_parse(void **state)
{
    static const struct {
        const char *nsp, *chan;
        rds_chan_t kind;
        const char *arg;
    } cases[] = {
        {"/", "socket.io#/#", RDS_CHAN_BROADCAST, NULL},
        {"/", "socket.io#/#room1#", RDS_CHAN_ROOM, "room1"},
        {"/", "socket.io#/#a#b#", RDS_CHAN_ROOM, "a#b"},
        {"/", "socket.io#/##", RDS_CHAN_BROADCAST, NULL},
        {"/", "socket.io#/#x", RDS_CHAN_NONE, NULL},
        {"/", "socket.io#/chat#", RDS_CHAN_NONE, NULL},
        {"/chat", "socket.io#/chat#r#", RDS_CHAN_ROOM, "r"},
        {"/chat", "socket.io#/#r#", RDS_CHAN_NONE, NULL},
        {"/", "socket.io-request#/#", RDS_CHAN_REQUEST, NULL},
        {"/", "socket.io-request#/#x#", RDS_CHAN_NONE, NULL},
        {"/", "socket.io-response#/#", RDS_CHAN_RESPONSE, NULL},
        {"/", "socket.io-response#/#AbC123#", RDS_CHAN_RESPONSE_UID, "AbC123"},
        {"/", "socket.io-response#/##", RDS_CHAN_NONE, NULL},
        {"/", "other#/#", RDS_CHAN_NONE, NULL},
        {"/", "socket.io", RDS_CHAN_NONE, NULL},
        {"/", "", RDS_CHAN_NONE, NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *a = "junk";
        size_t alen = 99;
        rds_chan_t k = rds_channel_parse("socket.io", cases[i].nsp, cases[i].chan,
                                         strlen(cases[i].chan), &a, &alen);
        if (k != cases[i].kind)
            fail_msg("%s: kind %d, want %d", cases[i].chan, k, cases[i].kind);
        if (cases[i].arg == NULL) {
            assert_null(a);
            assert_int_equal(alen, 0);
        } else {
            assert_int_equal(alen, strlen(cases[i].arg));
            assert_memory_equal(a, cases[i].arg, alen);
        }
    }
    /* what rds_channel builds, rds_channel_parse recognises */
    for (rds_chan_t k = RDS_CHAN_BROADCAST; k <= RDS_CHAN_RESPONSE_UID; k++) {
        char *c;
        if (k == RDS_CHAN_PATTERN)
            continue;
        c = rds_channel(k, "my-app", "/ns", "x#y");
        assert_int_equal(rds_channel_parse("my-app", "/ns", c, strlen(c), NULL, NULL), k);
        base_free(c);
    }
    assert_int_equal(rds_channel_parse(NULL, "/", "a", 1, NULL, NULL), RDS_CHAN_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_bytes),
        cmocka_unit_test(test_captured_broadcast),
        cmocka_unit_test(test_emitter_message),
        cmocka_unit_test(test_binary_arg),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_number_edges),
        cmocka_unit_test(test_nested_binary),
        cmocka_unit_test(test_binary_roundtrip),
        cmocka_unit_test(test_bins_in_ignored_fields),
        cmocka_unit_test(test_dates_undefined_typed),
        cmocka_unit_test(test_map16_array16),
        cmocka_unit_test(test_numeric_rooms),
        cmocka_unit_test(test_offset_element),
        cmocka_unit_test(test_utf8_repair),
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
        cmocka_unit_test(test_channel_format),
        cmocka_unit_test(test_channel_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
