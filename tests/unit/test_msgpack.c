/* test_msgpack.c -- node/codec/msgpack.c: msgpack <-> cJSON trees as notepack.io.
 *
 * The vectors marked "notepack" were produced once with notepack.io 3.0.1's encode() (the
 * parser of @socket.io/redis-adapter 8.x and redis-emitter 5.x) from the JS value quoted
 * beside each, so byte equality here means equality with Node's bytes. They are whole
 * broadcast messages as the Redis adapter carries them; here they are read and written as
 * plain msgpack values (tree[1].data is the event's data), the envelope being
 * test_rds_wire.c's business.
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
#include "cd_msgpack.h"
#include "hex_util.h"

/* ---------------------------------------------------------------- vectors */

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

/* notepack: ["d1",{type:2,data:["d",new Date(0),new Date(1700000000123),new Date(-1),
 *            new Date(Date.UTC(12000,0,1)),undefined,{a:undefined,b:1},Uint8Array[9,8]],
 *            nsp:"/"},{rooms:[],except:[],flags:{}}]: timestamps 32/64/96, nil, bin. */
static const char HEX_DATES[] =
    "93a2643183a47479706502a46461746198a164d6ff00000000d7ff1d5353006553f100c70cff3b8b87c0"
    "ffffffffffffffffc70cff0000000000000049b1d60100c081a16201c4020908a36e7370a12f83a5726f"
    "6f6d7390a665786365707490a5666c61677380";

/* notepack: ["m1",{type:2,data:["m",{k0:0..k15:15},[0..15]],nsp:"/"},...]: map16, array16 */
static const char HEX_MAP16[] =
    "93a26d3183a47479706502a46461746193a16dde0010a26b3000a26b3101a26b3202a26b3303a26b3404"
    "a26b3505a26b3606a26b3707a26b3808a26b3909a36b31300aa36b31310ba36b31320ca36b31330da36b"
    "31340ea36b31350fdc0010000102030405060708090a0b0c0d0e0fa36e7370a12f83a5726f6f6d7390a6"
    "65786365707490a5666c61677380";

/* notepack: ["uid123",{type:2,data:["bin",Buffer[1,2,3]],nsp:"/"},{rooms:[],except:[],flags:{}}] */
static const char HEX_BIN[] =
    "93a675696431323383a47479706502a46461746192a362696ec403010203a36e7370a12f83a5726f6f6d"
    "7390a665786365707490a5666c61677380";

/* ---------------------------------------------------------------- helpers */

/* Decodes hex into *tree, appending to bins. */
static int decode_hex(const char *hex, cd_mp_bins_t *bins, cJSON **tree)
{
    size_t n;
    unsigned char *buf = unhex(hex, &n);
    int rc = cd_mp_decode(buf, n, bins, tree);
    free(buf);
    return rc;
}

/* The event data of a broadcast message: tree[1].data. */
static const cJSON *data_of(const cJSON *tree)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(tree, 1), "data");
}

static const cJSON *arg(const cJSON *tree, int i)
{
    return cJSON_GetArrayItem(data_of(tree), i);
}

static void assert_placeholder(const cJSON *v, int num)
{
    assert_true(cJSON_IsObject(v));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "_placeholder")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(v, "num")->valueint, num);
}

/* Writes tree (its placeholders indexing bins) and checks the bytes against hex. */
static void assert_encodes_to(const cJSON *tree, const cd_mp_bins_t *bins, const char *hex)
{
    sio_bin_t out;

    assert_int_equal(
        cd_mp_encode(tree, bins != NULL ? bins->v : NULL, bins != NULL ? bins->n : 0, &out),
        SIO_OK);
    assert_bin_hex(&out, hex);
    base_free(out.data);
}

/* A buffer of n bytes: the header hdr (hex) followed by n - len(hdr) copies of fill. */
static unsigned char *big(const char *hdr, size_t n, unsigned char fill)
{
    size_t h;
    unsigned char *head = unhex(hdr, &h), *b = malloc(n);

    assert_non_null(b);
    memcpy(b, head, h);
    memset(b + h, fill, n - h);
    free(head);
    return b;
}

/* ---------------------------------------------------------------- notepack's numbers */

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
    cd_mp_bins_t bins = {0};
    cJSON *tree;

    snprintf(hex, sizeof(hex), "%s%s", HEX_NUMBERS_HEAD, HEX_NUMBERS_NOTEPACK_TAIL);
    assert_int_equal(decode_hex(hex, &bins, &tree), SIO_OK);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_true(arg(tree, (int)i + 1)->valuedouble == want[i]);
    assert_true(arg(tree, 24)->valuedouble == 0); /* notepack's wrapped 1e300 */

    /* our writer writes every value but the last exactly as notepack does */
    cJSON_SetNumberValue(cJSON_GetArrayItem(data_of(tree), 24), 1e300);
    snprintf(hex, sizeof(hex), "%s%s", HEX_NUMBERS_HEAD, HEX_NUMBERS_OURS_TAIL);
    assert_encodes_to(tree, &bins, hex);
    assert_int_equal(bins.n, 0);
    cJSON_Delete(tree);
    cd_mp_bins_free(&bins);
}

/* Numbers the captures do not cover: > 2^63, >= 2^64, -0, NaN, float32 and all int widths. */
static void test_number_edges(void **state)
{
    cd_mp_bins_t bins = {0};
    cJSON *data = cJSON_CreateArray(), *tree;

    cJSON_AddItemToArray(data, cJSON_CreateString("e"));
    cJSON_AddItemToArray(data, cJSON_CreateNumber(-0.0));
    cJSON_AddItemToArray(data, cJSON_CreateNumber(9223372036854775808.0));
    cJSON_AddItemToArray(data, cJSON_CreateNumber(18446744073709551616.0));
    cJSON_AddItemToArray(data, cJSON_CreateNumber(-9223372036854775808.0));
    cJSON_AddItemToArray(data, cJSON_CreateNumber(NAN));
    assert_encodes_to(
        data, NULL,
        "96a16500cf8000000000000000cb43f0000000000000d38000000000000000cb7ff8000000000000");
    cJSON_Delete(data);

    /* every msgpack number format, including float32 and int64 that notepack never writes */
    assert_int_equal(decode_hex("93a17583a474797065d002a46461746199a165"
                                "ca3fc00000"         /* float32 1.5 */
                                "d3fffffffffffffffe" /* int64 -2 */
                                "cfffffffffffffffff" /* uint64 2^64-1 */
                                "d17fff"             /* int16 32767 */
                                "d2ffffffff"         /* int32 -1 */
                                "cd0102"             /* uint16 258 */
                                "ce01020304"         /* uint32 */
                                "c3"                 /* true */
                                "a36e7370a12f80",
                                &bins, &tree),
                     SIO_OK);
    assert_true(arg(tree, 1)->valuedouble == 1.5);
    assert_true(arg(tree, 2)->valuedouble == -2);
    assert_true(arg(tree, 3)->valuedouble == 18446744073709551615.0);
    assert_true(arg(tree, 4)->valuedouble == 32767);
    assert_true(arg(tree, 5)->valuedouble == -1);
    assert_true(arg(tree, 6)->valuedouble == 258);
    assert_true(arg(tree, 7)->valuedouble == 16909060);
    assert_true(cJSON_IsTrue(arg(tree, 8)));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(tree, 2)), 0); /* the empty map */
    cJSON_Delete(tree);
    cd_mp_bins_free(&bins);
}

/* ---------------------------------------------------------------- every format */

/* Each format read, then written back in its smallest form (notepack's): the same bytes
 * for the forms notepack writes, the canonical ones for the others. */
static void test_format_widths(void **state)
{
    static const struct {
        const char *in;   /* hex */
        const char *json; /* the value read */
        const char *out;  /* hex written back; NULL: the same as in */
    } cases[] = {
        /* positive fixint, uint 8/16/32/64 at their bounds */
        {"00", "0", NULL},
        {"7f", "127", NULL},
        {"cc80", "128", NULL},
        {"ccff", "255", NULL},
        {"cd0100", "256", NULL},
        {"cdffff", "65535", NULL},
        {"ce00010000", "65536", NULL},
        {"ceffffffff", "4294967295", NULL},
        {"cf0000000100000000", "4294967296", NULL},
        {"cf001fffffffffffff", "9007199254740991", NULL},
        /* negative fixint, int 8/16/32/64 at their bounds */
        {"ff", "-1", NULL},
        {"e0", "-32", NULL},
        {"d0df", "-33", NULL},
        {"d080", "-128", NULL},
        {"d1ff7f", "-129", NULL},
        {"d18000", "-32768", NULL},
        {"d2ffff7fff", "-32769", NULL},
        {"d280000000", "-2147483648", NULL},
        {"d3ffffffff7fffffff", "-2147483649", NULL},
        {"d3ffe0000000000001", "-9007199254740991", NULL},
        /* wider than needed: read, written back in the smallest form */
        {"cc05", "5", "05"},
        {"cd0005", "5", "05"},
        {"ce00000005", "5", "05"},
        {"cf0000000000000005", "5", "05"},
        {"d005", "5", "05"},
        {"d0ff", "-1", "ff"},
        {"d1ffff", "-1", "ff"},
        {"d2ffffffff", "-1", "ff"},
        {"d3fffffffffffffffe", "-2", "fe"},
        {"d17fff", "32767", "cd7fff"},
        /* floats: float32 is read, float64 written; integral floats become ints */
        {"ca3fc00000", "1.5", "cb3ff8000000000000"},
        {"cb3ff8000000000000", "1.5", NULL},
        {"cbbfd0000000000000", "-0.25", NULL},
        {"cb4000000000000000", "2", "02"},
        {"ca40000000", "2", "02"},
        /* nil, booleans */
        {"c0", "null", NULL},
        {"c2", "false", NULL},
        {"c3", "true", NULL},
        /* strings: fixstr, str 8/16/32 (the long ones in test_format_widths_long) */
        {"a0", "\"\"", NULL},
        {"a161", "\"a\"", NULL},
        {"bf61616161616161616161616161616161616161616161616161616161616161",
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", NULL},
        {"d9026162", "\"ab\"", "a26162"},
        {"da00026162", "\"ab\"", "a26162"},
        {"db000000026162", "\"ab\"", "a26162"},
        {"a3e282ac", "\"\xe2\x82\xac\"", NULL},
        /* bin 8/16/32: a placeholder, its bytes in the bins */
        {"c400", "{\"_placeholder\":true,\"num\":0}", NULL},
        {"c403010203", "{\"_placeholder\":true,\"num\":0}", NULL},
        {"c5000201ff", "{\"_placeholder\":true,\"num\":0}", "c40201ff"},
        {"c60000000201ff", "{\"_placeholder\":true,\"num\":0}", "c40201ff"},
        /* arrays: fixarray, array 16/32 */
        {"90", "[]", NULL},
        {"9f000102030405060708090a0b0c0d0e", "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14]", NULL},
        {"dc0010000102030405060708090a0b0c0d0e0f", "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]", NULL},
        {"dc0001c0", "[null]", "91c0"},
        {"dd00000001c0", "[null]", "91c0"},
        /* maps: fixmap, map 16/32; keys as str 8/16/32 too */
        {"80", "{}", NULL},
        {"82a16101a16202", "{\"a\":1,\"b\":2}", NULL},
        {"82a16202a16101", "{\"b\":2,\"a\":1}", NULL}, /* key order kept */
        {"de0001a16101", "{\"a\":1}", "81a16101"},
        {"df00000001a16101", "{\"a\":1}", "81a16101"},
        {"81d9016101", "{\"a\":1}", "81a16101"},
        {"81da00016101", "{\"a\":1}", "81a16101"},
        {"81db0000000161c3", "{\"a\":true}", "81a161c3"},
        {"81a0c0", "{\"\":null}", NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cd_mp_bins_t bins = {0};
        cJSON *tree = NULL, *want = cJSON_Parse(cases[i].json);

        assert_non_null(want);
        if (decode_hex(cases[i].in, &bins, &tree) != SIO_OK)
            fail_msg("case %zu (%s) not read", i, cases[i].in);
        if (!cJSON_Compare(tree, want, 1)) {
            char *got = cJSON_PrintUnformatted(tree);
            fail_msg("case %zu (%s) read as %s, want %s", i, cases[i].in, got, cases[i].json);
        }
        assert_encodes_to(tree, &bins, cases[i].out != NULL ? cases[i].out : cases[i].in);
        cJSON_Delete(tree);
        cJSON_Delete(want);
        cd_mp_bins_free(&bins);
    }

    /* the bytes of a bin land in the bins, in order */
    {
        cd_mp_bins_t bins = {0};
        cJSON *tree;
        assert_int_equal(decode_hex("93c400c5000201ffc60000000103", &bins, &tree), SIO_OK);
        assert_int_equal(bins.n, 3);
        assert_int_equal(bins.v[0].len, 0);
        assert_non_null(bins.v[0].data); /* present, even empty */
        assert_int_equal(bins.v[1].len, 2);
        assert_memory_equal(bins.v[1].data, "\x01\xff", 2);
        assert_int_equal(bins.v[2].len, 1);
        assert_placeholder(cJSON_GetArrayItem(tree, 2), 2);
        cJSON_Delete(tree);
        cd_mp_bins_free(&bins);
    }
}

/* The 16- and 32-bit lengths at the sizes that need them, written back byte for byte. */
static void test_format_widths_long(void **state)
{
    static const struct {
        const char *hdr; /* format and length (hex) */
        size_t n;        /* elements (bytes, array items, map entries) */
        int kind;        /* 's'tr, 'b'in, 'a'rray, 'm'ap */
    } cases[] = {
        {"d9ff", 255, 's'},         {"da0100", 256, 's'},       {"daffff", 65535, 's'},
        {"db00010000", 65536, 's'}, {"c4ff", 255, 'b'},         {"c50100", 256, 'b'},
        {"c600010000", 65536, 'b'}, {"dcffff", 65535, 'a'},     {"dd00010000", 65536, 'a'},
        {"deffff", 65535, 'm'},     {"df00010000", 65536, 'm'},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t h = strlen(cases[i].hdr) / 2, len;
        unsigned char *buf;
        cd_mp_bins_t bins = {0};
        cJSON *tree;
        sio_bin_t out;

        if (cases[i].kind == 'm') {
            /* n entries {"<k>": nil} with distinct 4-byte keys a4 xxxx */
            unsigned char *p;
            len = h + cases[i].n * 6;
            buf = big(cases[i].hdr, len, 0);
            p = buf + h;
            for (size_t k = 0; k < cases[i].n; k++, p += 6) {
                p[0] = 0xa4;
                for (int d = 0; d < 4; d++)
                    p[1 + d] = "0123456789abcdef"[(k >> (12 - 4 * d)) & 0xf];
                p[5] = 0xc0;
            }
        } else {
            len = h + cases[i].n;
            buf = big(cases[i].hdr, len, cases[i].kind == 'a' ? 0xc0 : 'x');
        }
        assert_int_equal(cd_mp_decode(buf, len, &bins, &tree), SIO_OK);
        switch (cases[i].kind) {
        case 's':
            assert_int_equal(strlen(tree->valuestring), cases[i].n);
            break;
        case 'b':
            assert_int_equal(bins.n, 1);
            assert_int_equal(bins.v[0].len, cases[i].n);
            break;
        default:
            assert_int_equal(cJSON_GetArraySize(tree), (int)cases[i].n);
            break;
        }
        assert_int_equal(cd_mp_encode(tree, bins.v, bins.n, &out), SIO_OK);
        assert_int_equal(out.len, len);
        assert_memory_equal(out.data, buf, len);
        base_free(out.data);
        cJSON_Delete(tree);
        cd_mp_bins_free(&bins);
        free(buf);
    }
}

/* ---------------------------------------------------------------- notepack's extensions */

static void test_dates_undefined_typed(void **state)
{
    cd_mp_bins_t bins = {0};
    const cJSON *obj;
    cJSON *tree;

    assert_int_equal(decode_hex(HEX_DATES, &bins, &tree), SIO_OK);
    /* what JSON.stringify gives for the same Dates (checked with node) */
    assert_string_equal(arg(tree, 1)->valuestring, "1970-01-01T00:00:00.000Z");
    assert_string_equal(arg(tree, 2)->valuestring, "2023-11-14T22:13:20.123Z");
    assert_string_equal(arg(tree, 3)->valuestring, "1969-12-31T23:59:59.999Z");
    assert_string_equal(arg(tree, 4)->valuestring, "+012000-01-01T00:00:00.000Z");
    assert_true(cJSON_IsNull(arg(tree, 5)));
    obj = arg(tree, 6);
    assert_null(cJSON_GetObjectItemCaseSensitive(obj, "a"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(obj, "b")->valueint, 1);
    assert_placeholder(arg(tree, 7), 0);
    assert_int_equal(bins.n, 1);
    assert_memory_equal(bins.v[0].data, "\x09\x08", 2);
    cJSON_Delete(tree);
    cd_mp_bins_free(&bins);

    /* legacy notepack forms: d7 00 = Date in ms, ext type 0 = ArrayBuffer, d4 00 00 =
     * undefined (in an array: null, as map value: key dropped), other ext = [type, bin] */
    assert_int_equal(decode_hex("93a17582a464617461"
                                "96a165"
                                "d7000000018bcfe56800" /* 1700000000000 ms */
                                "c70300aabbcc"         /* ArrayBuffer */
                                "d40000"               /* undefined */
                                "82a178d40000a17901"   /* {x: undefined, y: 1} */
                                "d505abcd"             /* ext 5 */
                                "a474797065"
                                "02"
                                "80",
                                &bins, &tree),
                     SIO_OK);
    assert_string_equal(arg(tree, 1)->valuestring, "2023-11-14T22:13:20.000Z");
    assert_placeholder(arg(tree, 2), 0);
    assert_memory_equal(bins.v[0].data, "\xaa\xbb\xcc", 3);
    assert_true(cJSON_IsNull(arg(tree, 3)));
    assert_int_equal(cJSON_GetArraySize(arg(tree, 4)), 1);
    assert_int_equal(cJSON_GetArrayItem(arg(tree, 5), 0)->valueint, 5);
    assert_placeholder(cJSON_GetArrayItem(arg(tree, 5), 1), 1);
    assert_memory_equal(bins.v[1].data, "\xab\xcd", 2);
    cJSON_Delete(tree);
    cd_mp_bins_free(&bins);

    /* an out-of-range Date reads as null, as JSON.stringify(new Date(NaN)) */
    assert_int_equal(decode_hex("93a17582a46461746192a165c70cff000000007fffffffffffffff"
                                "a47479706502"
                                "80",
                                &bins, &tree),
                     SIO_OK);
    assert_true(cJSON_IsNull(arg(tree, 1)));
    cJSON_Delete(tree);
    cd_mp_bins_free(&bins);
}

/* Each ext form read, and what it is written back as (a Date as its string, undefined as
 * null, any other ext as the [type, bin] pair notepack hands out). */
static void test_ext_forms(void **state)
{
    static const struct {
        const char *in, *json, *out;
    } cases[] = {
        {"91d40000", "[null]", "91c0"}, /* undefined */
        {"d6ff00000000", "\"1970-01-01T00:00:00.000Z\"",
         "b8313937302d30312d30315430303a30303a30302e3030305a"}, /* timestamp 32 */
        {"d6ff65537f00", "\"2023-11-14T14:06:56.000Z\"",
         "b8323032332d31312d31345431343a30363a35362e3030305a"},                /* timestamp 32 */
        {"c70300aabbcc", "{\"_placeholder\":true,\"num\":0}", "c403aabbcc"},   /* ArrayBuffer */
        {"c8000300aabbcc", "{\"_placeholder\":true,\"num\":0}", "c403aabbcc"}, /* ext16 type 0 */
        {"d401ab", "[1,{\"_placeholder\":true,\"num\":0}]", "9201c401ab"},     /* fixext 1 */
        {"d505abcd", "[5,{\"_placeholder\":true,\"num\":0}]", "9205c402abcd"}, /* fixext 2 */
        {"d60701020304", "[7,{\"_placeholder\":true,\"num\":0}]", "9207c40401020304"},
        {"d4fe01", "[-2,{\"_placeholder\":true,\"num\":0}]", "92fec40101"}, /* negative type */
        {"c7020701ff", "[7,{\"_placeholder\":true,\"num\":0}]", "9207c40201ff"},
        {"c800020701ff", "[7,{\"_placeholder\":true,\"num\":0}]", "9207c40201ff"},
        {"c9000000020701ff", "[7,{\"_placeholder\":true,\"num\":0}]", "9207c40201ff"},
        {"d4ff01", "[-1,{\"_placeholder\":true,\"num\":0}]", "92ffc40101"}, /* -1, not a time */
        {"c80001ffab", "[-1,{\"_placeholder\":true,\"num\":0}]", "92ffc401ab"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cd_mp_bins_t bins = {0};
        cJSON *tree = NULL, *want = cJSON_Parse(cases[i].json);

        assert_non_null(want);
        if (decode_hex(cases[i].in, &bins, &tree) != SIO_OK)
            fail_msg("case %zu (%s) not read", i, cases[i].in);
        if (!cJSON_Compare(tree, want, 1)) {
            char *got = cJSON_PrintUnformatted(tree);
            fail_msg("case %zu (%s) read as %s, want %s", i, cases[i].in, got, cases[i].json);
        }
        assert_encodes_to(tree, &bins, cases[i].out != NULL ? cases[i].out : cases[i].in);
        cJSON_Delete(tree);
        cJSON_Delete(want);
        cd_mp_bins_free(&bins);
    }
    /* fixext 16 */
    {
        cd_mp_bins_t bins = {0};
        cJSON *tree;
        assert_int_equal(decode_hex("d8090102030405060708090a0b0c0d0e0f10", &bins, &tree), SIO_OK);
        assert_int_equal(cJSON_GetArrayItem(tree, 0)->valueint, 9);
        assert_int_equal(bins.v[0].len, 16);
        cJSON_Delete(tree);
        cd_mp_bins_free(&bins);
    }
}

static void test_map16_array16(void **state)
{
    cd_mp_bins_t bins = {0};
    cJSON *tree;

    assert_int_equal(decode_hex(HEX_MAP16, &bins, &tree), SIO_OK);
    assert_int_equal(cJSON_GetArraySize(arg(tree, 1)), 16);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(arg(tree, 1), "k15")->valueint, 15);
    assert_int_equal(cJSON_GetArraySize(arg(tree, 2)), 16);
    assert_encodes_to(tree, &bins, HEX_MAP16);
    cJSON_Delete(tree);
    cd_mp_bins_free(&bins);
}

/* ---------------------------------------------------------------- strings */

static void test_utf8_repair(void **state)
{
    cd_mp_bins_t bins = {0};
    cJSON *tree;

    /* "a<ff>b", "<e2 82>" (truncated), "<ed a0 80>" (surrogate): U+FFFD per maximal subpart,
     * as Buffer.toString gives "a\ufffdb", "\ufffd", "\ufffd\ufffd\ufffd" */
    assert_int_equal(decode_hex("93a17582a46461746194a165a361ff62a2e282a3eda080"
                                "a47479706502"
                                "80",
                                &bins, &tree),
                     SIO_OK);
    assert_string_equal(arg(tree, 1)->valuestring, "a\xef\xbf\xbd"
                                                   "b");
    assert_string_equal(arg(tree, 2)->valuestring, "\xef\xbf\xbd");
    assert_string_equal(arg(tree, 3)->valuestring, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    cJSON_Delete(tree);

    /* overlong <e0 80 80>, beyond U+10FFFF <f4 90 80 80>, and a valid 4-byte emoji kept */
    assert_int_equal(decode_hex("93a17582a46461746194a165a3e08080a4f4908080a4f09f9880"
                                "a47479706502"
                                "80",
                                &bins, &tree),
                     SIO_OK);
    assert_string_equal(arg(tree, 1)->valuestring, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(arg(tree, 2)->valuestring,
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(arg(tree, 3)->valuestring, "\xf0\x9f\x98\x80");
    cJSON_Delete(tree);

    /* valid sequences around a repaired byte are kept */
    assert_int_equal(decode_hex("93a17582a46461746192a165a4c3a9ffc3a47479706502"
                                "80",
                                &bins, &tree),
                     SIO_OK);
    assert_string_equal(arg(tree, 1)->valuestring, "\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd");
    cJSON_Delete(tree);

    /* map keys are repaired the same way, and written back repaired */
    assert_int_equal(decode_hex("81a2ff6101", &bins, &tree), SIO_OK);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(tree, "\xef\xbf\xbd"
                                                           "a"));
    assert_encodes_to(tree, &bins, "81a4efbfbd6101");
    cJSON_Delete(tree);
    assert_int_equal(bins.n, 0);
}

/* ---------------------------------------------------------------- round trips */

/* Trees written then read give the same tree, and writing that again the same bytes. */
static void test_round_trips(void **state)
{
    static const char *const trees[] = {
        "null",
        "[]",
        "{}",
        "[\"ev\",1,-1,0.5,-1e-300,1e300,true,false,null,\"\","
        "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]",
        "{\"b\":{\"c\":[1,{\"d\":[[[]]]}]},\"a\":[{},{\"x\":\"y\"}],\"\":0}",
        "[4294967295,4294967296,-2147483649,9007199254740992,-9007199254740992,1."
        "7976931348623157e308]",
        "{\"k\":\"a\\\"b\\\\c\\u0001\\n\"}",
    };
    sio_bin_t bufs[2] = {{(unsigned char *)"\x00\xff", 2}, {(unsigned char *)"", 0}};

    for (size_t i = 0; i < sizeof(trees) / sizeof(trees[0]); i++) {
        cJSON *in = cJSON_Parse(trees[i]), *back;
        cd_mp_bins_t bins = {0};
        sio_bin_t e1, e2;

        assert_non_null(in);
        assert_int_equal(cd_mp_encode(in, NULL, 0, &e1), SIO_OK);
        assert_int_equal(cd_mp_decode(e1.data, e1.len, &bins, &back), SIO_OK);
        if (!cJSON_Compare(in, back, 1))
            fail_msg("tree %zu changed on the way: %s", i, trees[i]);
        assert_int_equal(cd_mp_encode(back, NULL, 0, &e2), SIO_OK);
        assert_int_equal(e1.len, e2.len);
        assert_memory_equal(e1.data, e2.data, e1.len);
        base_free(e1.data);
        base_free(e2.data);
        cJSON_Delete(in);
        cJSON_Delete(back);
        cd_mp_bins_free(&bins);
    }

    /* placeholders: written as bin from the buffers they index, read back in tree order */
    {
        cJSON *in = cJSON_Parse("{\"z\":{\"_placeholder\":true,\"num\":1},"
                                "\"y\":[{\"_placeholder\":true,\"num\":0},"
                                "{\"_placeholder\":true,\"num\":1}]}");
        cd_mp_bins_t bins = {0};
        cJSON *back;
        sio_bin_t e;

        assert_int_equal(cd_mp_encode(in, bufs, 2, &e), SIO_OK);
        assert_bin_hex(&e, "82a17ac400a17992c40200ffc400");
        assert_int_equal(cd_mp_decode(e.data, e.len, &bins, &back), SIO_OK);
        assert_int_equal(bins.n, 3); /* one per bin value: the reader shares nothing */
        assert_placeholder(cJSON_GetObjectItemCaseSensitive(back, "z"), 0);
        assert_placeholder(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(back, "y"), 0), 1);
        assert_int_equal(bins.v[1].len, 2);
        assert_memory_equal(bins.v[1].data, "\x00\xff", 2);
        base_free(e.data);
        cJSON_Delete(in);
        cJSON_Delete(back);
        cd_mp_bins_free(&bins);
    }
}

/* ---------------------------------------------------------------- limits and bad input */

/* Nesting: 64 containers in all are fine, 65 are refused, both ways. */
static void test_depth_limit(void **state)
{
    size_t n = 100000;
    unsigned char *buf = malloc(n + 8);
    cd_mp_bins_t bins = {0};
    cJSON *tree, *leaf;
    cd_mp_writer_t w;
    sio_bin_t out;

    assert_non_null(buf);
    for (int kind = 0; kind < 2; kind++) {
        for (int levels = 64; levels <= 65; levels++) {
            /* levels nested arrays [[..[]..]] or maps {"a":{"a":..{}..}} */
            size_t len = 0;
            for (int i = 0; i < levels - 1; i++) {
                if (kind == 0) {
                    buf[len++] = 0x91;
                } else {
                    memcpy(buf + len, "\x81\xa1\x61", 3);
                    len += 3;
                }
            }
            buf[len++] = kind == 0 ? 0x90 : 0x80;
            assert_int_equal(cd_mp_decode(buf, len, &bins, &tree),
                             levels <= CD_MP_MAX_DEPTH ? SIO_OK : SIO_ETOOBIG);
            if (levels > CD_MP_MAX_DEPTH) {
                assert_null(tree);
                continue;
            }
            assert_int_equal(cd_mp_encode(tree, NULL, 0, &out), SIO_OK);
            assert_int_equal(out.len, len);
            assert_memory_equal(out.data, buf, len);
            base_free(out.data);
            /* inside one more container, or one more level in the tree: refused */
            cd_mp_writer_init(&w);
            assert_int_equal(cd_mp_writer_finish(&w, cd_mp_write_json(&w, tree, NULL, 0, 1), &out),
                             SIO_ETOOBIG);
            assert_null(out.data);
            assert_int_equal(out.len, 0);
            for (leaf = tree; leaf->child != NULL;)
                leaf = leaf->child;
            if (kind == 0)
                cJSON_AddItemToArray(leaf, cJSON_CreateArray());
            else
                cJSON_AddItemToObject(leaf, "a", cJSON_CreateObject());
            assert_int_equal(cd_mp_encode(tree, NULL, 0, &out), SIO_ETOOBIG);
            assert_null(out.data);
            cJSON_Delete(tree);
        }
    }

    /* a bin, a scalar or a Date is no container: fine at the deepest level */
    memset(buf, 0x91, 64);
    memcpy(buf + 64, "\xc4\x01\x07", 3);
    assert_int_equal(cd_mp_decode(buf, 67, &bins, &tree), SIO_OK);
    assert_int_equal(cd_mp_encode(tree, bins.v, bins.n, &out), SIO_OK);
    assert_int_equal(out.len, 67);
    base_free(out.data);
    cJSON_Delete(tree);
    cd_mp_bins_free(&bins);
    memcpy(buf + 64, "\xd6\xff\x00\x00\x00\x00", 6);
    assert_int_equal(cd_mp_decode(buf, 70, &bins, &tree), SIO_OK);
    cJSON_Delete(tree);
    /* but an ext pair [type, bin] is an array: one level more */
    memcpy(buf + 63, "\xd5\x05\xab\xcd", 4);
    assert_int_equal(cd_mp_decode(buf, 67, &bins, &tree), SIO_OK);
    cJSON_Delete(tree);
    cd_mp_bins_free(&bins);
    buf[63] = 0x91;
    memcpy(buf + 64, "\xd5\x05\xab\xcd", 4);
    assert_int_equal(cd_mp_decode(buf, 68, &bins, &tree), SIO_ETOOBIG);
    assert_int_equal(bins.n, 0);

    /* a deep bomb: 100000 nested arrays, refused without recursing that deep */
    memset(buf, 0x91, n);
    assert_int_equal(cd_mp_decode(buf, n, &bins, &tree), SIO_ETOOBIG);
    assert_null(tree);
    free(buf);
}

/* What the reader refuses; a refusal leaves the caller's bins as they were. */
static void test_bad_input(void **state)
{
    static const struct {
        const char *hex;
        int rc;
    } bad[] = {
        {"", SIO_EPARSE},
        {"c1", SIO_EPARSE},         /* never-used byte */
        {"92c401bbc1", SIO_EPARSE}, /* ... after a bin was read */
        {"d40000", SIO_EPARSE},     /* undefined as the whole message */
        /* map keys are strings */
        {"810101", SIO_EPARSE},                                    /* int key */
        {"81c4010101", SIO_EPARSE},                                /* bin key */
        {"81c001", SIO_EPARSE},                                    /* nil key */
        {"819001", SIO_EPARSE},                                    /* array key */
        {"93a175 81a464617461 92a16581 0101 80", SIO_EPARSE},      /* int map key, deep */
        {"93a175 81a464617461 92a16581 c40101 01 80", SIO_EPARSE}, /* bin map key, deep */
        /* a literal placeholder object would alias buffer 0 */
        {"93a175 81a464617461 92a16582ac5f706c616365686f6c646572c3a36e756d00 80", SIO_EPARSE},
        {"81ac5f706c616365686f6c646572c3", SIO_EPARSE},
        /* NUL cannot be in a cJSON string */
        {"93a175 81a464617461 92a165a3610062 80", SIO_EPARSE}, /* in a string */
        {"93a175 81a464617461 91a3610062 80", SIO_EPARSE},     /* in the event */
        {"81a2610001", SIO_EPARSE},                            /* in a key */
        {"a100", SIO_EPARSE},
        /* declared lengths far beyond the input */
        {"93a17581a46461746192a165 ddffffffff", SIO_EPARSE},                 /* array32 of 2^32-1 */
        {"93a17581a46461746192a165 dfffffffff", SIO_EPARSE},                 /* map32 of 2^32-1 */
        {"93a17581a46461746192a165 dbffffffff61", SIO_EPARSE},               /* str32 of 2^32-1 */
        {"93a17581a46461746192a165 c6ffffffff61", SIO_EPARSE},               /* bin32 of 2^32-1 */
        {"93a17581a46461746192a165 c9ffffffff0161", SIO_EPARSE},             /* ext32 of 2^32-1 */
        {"93a17581a46461746192a165 c5ffff", SIO_EPARSE},                     /* bin16 short */
        {"93a17581a46461746192a165 c70aff00000000000000000000", SIO_EPARSE}, /* ts96 len 10 */
        {"ddffffffff", SIO_EPARSE},   /* huge top-level array */
        {"dc0003a175", SIO_EPARSE},   /* array16 short */
        {"de0002a16101", SIO_EPARSE}, /* map16 short */
        {"82a16101", SIO_EPARSE},     /* a map entry missing */
        {"81a161", SIO_EPARSE},       /* a value missing */
        {"cd01", SIO_EPARSE},         /* uint16 short */
        {"cb3ff8", SIO_EPARSE},       /* float64 short */
        {"d5", SIO_EPARSE},           /* fixext without type */
        {"d501ab", SIO_EPARSE},       /* fixext 2 short */
        {"c702", SIO_EPARSE},         /* ext8 without type */
    };
    cd_mp_bins_t bins = {0};
    cJSON *tree;
    size_t n;
    unsigned char *buf;

    /* one buffer already there, from an earlier read */
    assert_int_equal(decode_hex("c401aa", &bins, &tree), SIO_OK);
    cJSON_Delete(tree);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tree = (cJSON *)&bins; /* anything but NULL */
        if (decode_hex(bad[i].hex, &bins, &tree) != bad[i].rc)
            fail_msg("input %zu (%s) not refused with %d", i, bad[i].hex, bad[i].rc);
        assert_null(tree);
        assert_int_equal(bins.n, 1);
        assert_int_equal(bins.v[0].data[0], 0xaa);
    }
    assert_int_equal(cd_mp_decode(NULL, 0, &bins, &tree), SIO_EPARSE);
    assert_int_equal(cd_mp_decode("\xc0", 0, &bins, &tree), SIO_EPARSE);
    assert_int_equal(cd_mp_decode("\xc0", 1, NULL, &tree), SIO_EINVAL);

    /* every prefix of a valid message is refused */
    buf = unhex(HEX_BIN, &n);
    for (size_t len = 0; len < n; len++) {
        assert_int_equal(cd_mp_decode(buf, len, &bins, &tree), SIO_EPARSE);
        assert_int_equal(bins.n, 1);
    }
    assert_int_equal(cd_mp_decode(buf, n, &bins, &tree), SIO_OK);
    assert_int_equal(bins.n, 2);
    cJSON_Delete(tree);
    free(buf);
    cd_mp_bins_free(&bins);
    cd_mp_bins_free(NULL);
}

/* One message is one value: bytes after it are refused, as notepack does. */
static void test_trailing_bytes(void **state)
{
    static const char *const bad[] = {
        "c0c0", "9000", "a16100", "8020", "c40101ff", "d6ff00000000c0", "d40000c0",
    };
    cd_mp_bins_t bins = {0};
    cJSON *tree;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (decode_hex(bad[i], &bins, &tree) != SIO_EPARSE)
            fail_msg("%s: trailing bytes accepted", bad[i]);
        assert_null(tree);
        assert_int_equal(bins.n, 0);
    }
    assert_int_equal(decode_hex("c0", &bins, &tree), SIO_OK);
    assert_true(cJSON_IsNull(tree));
    cJSON_Delete(tree);
    cd_mp_bins_free(&bins); /* its array grew for the bin of "c40101ff" */
}

/* ---------------------------------------------------------------- bins and packets */

static void test_take_bins(void **state)
{
    cd_mp_bins_t bins = {0};
    sio_bin_t *att;
    size_t n;
    sio_bin_t dummy;
    cJSON *tree, *sub, *other;

    /* [bin aa, [bin bbbb, {x: bin cccccc}], nil]: buffers 0, 1, 2 */
    assert_int_equal(decode_hex("93c401aa92c402bbbb81a178c403cccccc c0", &bins, &tree), SIO_OK);
    assert_int_equal(bins.n, 3);
    sub = cJSON_GetArrayItem(tree, 1);
    assert_int_equal(cd_mp_take_bins(sub, &bins, &att, &n), SIO_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(att[0].data, "\xbb\xbb", 2);
    assert_memory_equal(att[1].data, "\xcc\xcc\xcc", 3);
    assert_placeholder(cJSON_GetArrayItem(sub, 0), 0);
    assert_placeholder(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(sub, 1), "x"), 1);
    assert_int_equal(bins.n, 3); /* moved entries stay, empty */
    assert_null(bins.v[1].data);
    assert_null(bins.v[2].data);
    assert_memory_equal(bins.v[0].data, "\xaa", 1);
    for (size_t i = 0; i < n; i++)
        base_free(att[i].data);
    base_free(att);

    /* a subtree without placeholders takes nothing */
    other = cJSON_GetArrayItem(tree, 2);
    att = &dummy;
    assert_int_equal(cd_mp_take_bins(other, &bins, &att, &n), SIO_OK);
    assert_null(att);
    assert_int_equal(n, 0);

    /* without bins (a JSON tree) any placeholder is refused */
    assert_int_equal(cd_mp_take_bins(tree, NULL, &att, &n), SIO_EPARSE);
    assert_null(att);
    assert_int_equal(cd_mp_take_bins(other, NULL, &att, &n), SIO_OK);
    cJSON_Delete(tree);

    /* nums that index nothing, or not a contiguous run: refused, bins untouched */
    {
        static const char *const bad[] = {
            "[{\"_placeholder\":true,\"num\":3}]",
            "[{\"_placeholder\":true,\"num\":-1}]",
            "[{\"_placeholder\":true,\"num\":0.5}]",
            "[{\"_placeholder\":true,\"num\":\"0\"}]",
            "[{\"_placeholder\":true}]",
            "[{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":2}]",
            "[{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":0}]",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            cJSON *t = cJSON_Parse(bad[i]);
            assert_non_null(t);
            if (cd_mp_take_bins(t, &bins, &att, &n) != SIO_EPARSE)
                fail_msg("%s: taken", bad[i]);
            assert_null(att);
            assert_int_equal(n, 0);
            assert_non_null(bins.v[0].data);
            cJSON_Delete(t);
        }
    }
    cd_mp_bins_free(&bins);
}

static void test_packet_from_tree(void **state)
{
    static const struct {
        const char *json;
        int rc;
        const char *nsp;
    } cases[] = {
        {"{\"type\":2,\"data\":[\"e\",1],\"nsp\":\"/chat\"}", SIO_OK, "/chat"},
        {"{\"data\":[\"e\"]}", SIO_OK, "/"},                 /* type and nsp optional */
        {"{\"type\":5,\"data\":[\"e\"]}", SIO_OK, "/"},      /* BINARY_EVENT of the 2.x era */
        {"{\"data\":[7,\"x\"]}", SIO_OK, "/"},               /* a numeric event name */
        {"{\"type\":3,\"data\":[\"e\"]}", SIO_EPARSE, NULL}, /* an ACK */
        {"{\"type\":\"2\",\"data\":[\"e\"]}", SIO_EPARSE, NULL},
        {"{\"type\":2.5,\"data\":[\"e\"]}", SIO_EPARSE, NULL},
        {"{\"nsp\":1,\"data\":[\"e\"]}", SIO_EPARSE, NULL},
        {"{\"data\":\"e\"}", SIO_EPARSE, NULL},
        {"{\"data\":[]}", SIO_EPARSE, NULL},
        {"{\"data\":[\"connect\"]}", SIO_EPARSE, NULL}, /* reserved */
        {"{\"data\":[\"disconnecting\"]}", SIO_EPARSE, NULL},
        {"{\"data\":[true]}", SIO_EPARSE, NULL},
        {"{\"data\":[null]}", SIO_EPARSE, NULL},
        {"{}", SIO_EPARSE, NULL},
        {"[\"e\"]", SIO_EPARSE, NULL},
    };
    cd_sio_packet_t *p;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *obj = cJSON_Parse(cases[i].json), *copy = cJSON_Duplicate(obj, 1);
        p = (cd_sio_packet_t *)obj;
        if (cd_mp_packet_from_tree(obj, NULL, &p) != cases[i].rc)
            fail_msg("%s: not %d", cases[i].json, cases[i].rc);
        if (cases[i].rc == SIO_OK) {
            assert_int_equal(p->type, CD_SIO_EVENT);
            assert_int_equal(p->id, -1);
            assert_string_equal(p->nsp, cases[i].nsp);
            assert_true(cJSON_Compare(p->data, cJSON_GetObjectItem(copy, "data"), 1));
            assert_null(cJSON_GetObjectItem(obj, "data")); /* detached into the packet */
            assert_int_equal(p->n_attach, 0);
            cd_sio_packet_free(p);
        } else {
            assert_null(p);
            assert_true(cJSON_Compare(obj, copy, 1)); /* untouched */
        }
        cJSON_Delete(obj);
        cJSON_Delete(copy);
    }

    /* from msgpack with its bins: the packet takes its buffers, renumbered from 0 */
    {
        cd_mp_bins_t bins = {0};
        cJSON *tree;
        assert_int_equal(decode_hex("92c401aa 83a474797065 02 a464617461 92a165c40101 a36e7370a12f",
                                    &bins, &tree),
                         SIO_OK);
        assert_int_equal(cd_mp_packet_from_tree(cJSON_GetArrayItem(tree, 1), &bins, &p), SIO_OK);
        assert_int_equal(p->n_attach, 1);
        assert_int_equal(p->n_have, 1);
        assert_int_equal(p->attach[0].data[0], 0x01);
        assert_placeholder(cJSON_GetArrayItem(p->data, 1), 0);
        assert_memory_equal(bins.v[0].data, "\xaa", 1); /* not this packet's */
        cd_sio_packet_free(p);
        cJSON_Delete(tree);
        cd_mp_bins_free(&bins);
    }
    /* from JSON, a placeholder has no buffer: refused, the data detached and freed */
    {
        cJSON *obj = cJSON_Parse("{\"data\":[\"e\",{\"_placeholder\":true,\"num\":0}]}");
        assert_int_equal(cd_mp_packet_from_tree(obj, NULL, &p), SIO_EPARSE);
        assert_null(p);
        assert_null(cJSON_GetObjectItem(obj, "data"));
        cJSON_Delete(obj);
    }
}

/* ---------------------------------------------------------------- writer */

static void test_writer(void **state)
{
    cd_mp_writer_t w;
    sio_bin_t out;
    const char *names[] = {"a", "bc"};
    int rc;

    /* headers and scalars in their smallest forms */
    cd_mp_writer_init(&w);
    rc = cd_mp_write_array(&w, 3);
    if (rc == SIO_OK)
        rc = cd_mp_write_map(&w, 17);
    if (rc == SIO_OK)
        rc = cd_mp_write_array(&w, 65536);
    if (rc == SIO_OK)
        rc = cd_mp_write_int(&w, -1);
    if (rc == SIO_OK)
        rc = cd_mp_write_int(&w, 255);
    if (rc == SIO_OK)
        rc = cd_mp_write_int(&w, INT64_MIN);
    if (rc == SIO_OK)
        rc = cd_mp_write_bool(&w, 1);
    if (rc == SIO_OK)
        rc = cd_mp_write_bool(&w, 0);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(&w, "");
    if (rc == SIO_OK)
        rc = cd_mp_write_strs(&w, names, 2);
    if (rc == SIO_OK)
        rc = cd_mp_write_strs(&w, NULL, 0);
    assert_int_equal(cd_mp_writer_finish(&w, rc, &out), SIO_OK);
    assert_bin_hex(&out,
                   "93 de0011 dd00010000 ff ccff d38000000000000000 c3 c2 a0 92a161a26263 90");
    base_free(out.data);

    /* a failure anywhere frees what was written */
    cd_mp_writer_init(&w);
    rc = cd_mp_write_array(&w, 2);
    assert_int_equal(rc, SIO_OK);
    names[1] = NULL;
    rc = cd_mp_write_strs(&w, names, 2);
    assert_int_equal(rc, SIO_EINVAL);
    out.data = (unsigned char *)"x";
    out.len = 1;
    assert_int_equal(cd_mp_writer_finish(&w, rc, &out), SIO_EINVAL);
    assert_null(out.data);
    assert_int_equal(out.len, 0);
    cd_mp_writer_init(&w);
    assert_int_equal(cd_mp_write_str(&w, NULL), SIO_EINVAL);
    assert_int_equal(cd_mp_writer_finish(&w, SIO_EINVAL, &out), SIO_EINVAL);
}

static void test_write_packet(void **state)
{
    sio_bin_t bufs[1] = {{(unsigned char *)"\x01\x02", 2}};
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, "/");
    cd_mp_writer_t w;
    sio_bin_t out;
    char *nsp;

    /* spec §1.1: the packet of io.to("lobby").emit("news", 7) */
    p->data = cJSON_Parse("[\"news\",7]");
    cd_mp_writer_init(&w);
    assert_int_equal(cd_mp_writer_finish(&w, cd_mp_write_packet(&w, p, 0), &out), SIO_OK);
    assert_bin_hex(&out, "83a47479706502a46461746192a46e65777307a36e7370a12f");
    base_free(out.data);

    /* a BINARY_EVENT with an ack id goes out as {type: 2} with its bins, and no id */
    cJSON_Delete(p->data);
    p->data = cJSON_Parse("[\"b\",{\"_placeholder\":true,\"num\":0}]");
    p->type = CD_SIO_BINARY_EVENT;
    p->id = 12;
    cd_sio_packet_add_attachments(p, bufs, 1);
    cd_mp_writer_init(&w);
    assert_int_equal(cd_mp_writer_finish(&w, cd_mp_write_packet(&w, p, 0), &out), SIO_OK);
    assert_bin_hex(&out, "83a47479706502a46461746192a162c4020102a36e7370a12f");
    base_free(out.data);

    /* refused: not an event, data not an array, no nsp, buffers announced but absent */
    cd_mp_writer_init(&w);
    p->type = CD_SIO_ACK;
    assert_int_equal(cd_mp_write_packet(&w, p, 0), SIO_EINVAL);
    p->type = CD_SIO_EVENT;
    nsp = p->nsp;
    p->nsp = NULL;
    assert_int_equal(cd_mp_write_packet(&w, p, 0), SIO_EINVAL);
    p->nsp = nsp;
    {
        sio_bin_t *att = p->attach;
        p->attach = NULL;
        assert_int_equal(cd_mp_write_packet(&w, p, 0), SIO_EINVAL);
        p->attach = att;
    }
    assert_int_equal(cd_mp_write_packet(&w, NULL, 0), SIO_EINVAL);
    cJSON_Delete(p->data);
    p->data = cJSON_Parse("{\"a\":1}");
    assert_int_equal(cd_mp_write_packet(&w, p, 0), SIO_EINVAL);
    assert_int_equal(w.len, 0); /* nothing written by a refusal */
    cd_mp_writer_finish(&w, SIO_EINVAL, &out);
    cd_sio_packet_free(p);
}

static void test_write_errors(void **state)
{
    sio_bin_t bufs[1] = {{(unsigned char *)"z", 1}};
    static const char *const bad_placeholders[] = {
        "[{\"_placeholder\":true,\"num\":1}]",
        "[{\"_placeholder\":true,\"num\":-1}]",
        "[{\"_placeholder\":true,\"num\":0.5}]",
        "[{\"_placeholder\":true,\"num\":\"0\"}]",
        "[{\"_placeholder\":true}]",
    };
    sio_bin_t out = {(unsigned char *)"x", 1};
    cJSON *v;

    for (size_t i = 0; i < sizeof(bad_placeholders) / sizeof(bad_placeholders[0]); i++) {
        v = cJSON_Parse(bad_placeholders[i]);
        if (cd_mp_encode(v, bufs, 1, &out) != SIO_EINVAL)
            fail_msg("%s: written", bad_placeholders[i]);
        assert_null(out.data);
        cJSON_Delete(v);
    }
    /* a placeholder with no bins at all; "_placeholder": false is a plain object */
    v = cJSON_Parse("{\"_placeholder\":true,\"num\":0}");
    assert_int_equal(cd_mp_encode(v, NULL, 0, &out), SIO_EINVAL);
    cJSON_Delete(v);
    v = cJSON_Parse("{\"_placeholder\":false,\"num\":0}");
    assert_int_equal(cd_mp_encode(v, NULL, 0, &out), SIO_OK);
    assert_bin_hex(&out, "82ac5f706c616365686f6c646572c2a36e756d00");
    base_free(out.data);
    cJSON_Delete(v);

    /* raw JSON has no msgpack meaning; an object member needs a key */
    v = cJSON_CreateArray();
    cJSON_AddItemToArray(v, cJSON_CreateRaw("1"));
    assert_int_equal(cd_mp_encode(v, NULL, 0, &out), SIO_EINVAL);
    cJSON_Delete(v);
    v = cJSON_CreateObject();
    cJSON_AddItemToArray(v, cJSON_CreateNull()); /* a member without a key */
    assert_int_equal(cd_mp_encode(v, NULL, 0, &out), SIO_EINVAL);
    cJSON_Delete(v);
    assert_int_equal(cd_mp_encode(NULL, NULL, 0, &out), SIO_EINVAL);
    assert_null(out.data);
    v = cJSON_CreateNull();
    assert_int_equal(cd_mp_encode(v, NULL, 0, NULL), SIO_EINVAL);
    cJSON_Delete(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_number_edges),
        cmocka_unit_test(test_format_widths),
        cmocka_unit_test(test_format_widths_long),
        cmocka_unit_test(test_dates_undefined_typed),
        cmocka_unit_test(test_ext_forms),
        cmocka_unit_test(test_map16_array16),
        cmocka_unit_test(test_utf8_repair),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_take_bins),
        cmocka_unit_test(test_packet_from_tree),
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_write_packet),
        cmocka_unit_test(test_write_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
