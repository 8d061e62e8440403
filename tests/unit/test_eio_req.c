/* test_eio_req.c -- node/engine/eio_req.c: the request rules that need no connection
 * (Engine.IO arguments, the decoded handshake query, path and origin checks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base_alloc.h"
#include "base_map.h"
#include "eio_private.h"

#define FRAG(q, lit) eio__query_add(q, lit, sizeof(lit) - 1)

/* ---------------------------------------------------------------- query pairs */

static void assert_pair(const eio_query_t *q, size_t i, const char *k, const char *v)
{
    size_t it = 0;
    const char *key = NULL, *value = NULL;

    assert_true(i < q->n);
    for (size_t j = 0; j <= i; j++)
        assert_true(eio__query_next(q, &it, &key, &value));
    assert_string_equal(key, k);
    assert_string_equal(value, v);
}

static void test_query_pairs(void **state)
{
    eio_query_t q = {0};

    FRAG(&q, "EIO=4");
    FRAG(&q, "name=J\xc3\xbcrgen X"); /* as lws hands it over: decoded */
    FRAG(&q, "flag");                 /* no '=': empty value */
    FRAG(&q, "x=1");
    FRAG(&q, "x=2");     /* the first occurrence wins */
    FRAG(&q, "=orphan"); /* empty key: skipped */
    FRAG(&q, "");        /* empty fragment: skipped */
    FRAG(&q, "f=a=b=c"); /* the value keeps its '=' */
    FRAG(&q, "e=");      /* empty value */
    FRAG(&q, "amp=a&b"); /* an encoded '&' came back from lws inside the value */
    assert_int_equal(q.n, 7);
    assert_pair(&q, 0, "EIO", "4");
    assert_pair(&q, 1, "name", "J\xc3\xbcrgen X");
    assert_pair(&q, 2, "flag", "");
    assert_pair(&q, 3, "x", "1");
    assert_pair(&q, 4, "f", "a=b=c");
    assert_pair(&q, 5, "e", "");
    assert_pair(&q, 6, "amp", "a&b");
    assert_string_equal(eio__query_get(&q, "x"), "1");
    assert_string_equal(eio__query_get(&q, "flag"), "");
    assert_null(eio__query_get(&q, "orphan"));
    assert_null(eio__query_get(&q, ""));
    eio__query_free(&q);
    assert_int_equal(q.n, 0);
    assert_null(eio__query_get(&q, "x"));
    FRAG(&q, "again=1"); /* usable after free */
    assert_string_equal(eio__query_get(&q, "again"), "1");
    eio__query_free(&q);
}

/* A NUL byte ends key and value, as it ended the protocol's C strings. */
static void test_query_nul(void **state)
{
    eio_query_t q = {0};

    eio__query_add(&q, "a\0b=c\0d", 7);
    eio__query_add(&q, "\0=x", 3); /* not an empty key before the NUL: key "" */
    eio__query_add(&q, "a=again", 7);
    assert_int_equal(q.n, 2);
    assert_pair(&q, 0, "a", "c");
    assert_pair(&q, 1, "", "x");
    eio__query_free(&q);
}

/* Many pairs: the block grows; past EIO_QUERY_MAX_PAIRS (Node's maxKeys) keys are dropped,
 * and the trim gives the slack back without losing a pair. */
static void test_query_many(void **state)
{
    eio_query_t q = {0};
    char frag[32];

    for (int i = 0; i < 1000; i++) {
        int n = snprintf(frag, sizeof(frag), "k%d=v%d", i % 700, i);
        eio__query_add(&q, frag, (size_t)n);
    }
    assert_int_equal(q.n, 700);
    assert_string_equal(eio__query_get(&q, "k5"), "v5");
    assert_string_equal(eio__query_get(&q, "k699"), "v699");
    assert_pair(&q, 123, "k123", "v123");
    eio__query_trim(&q);
    assert_int_equal(q.cap, q.len);
    assert_pair(&q, 699, "k699", "v699");
    for (int i = 700; i < 2 * EIO_QUERY_MAX_PAIRS; i++) {
        int n = snprintf(frag, sizeof(frag), "k%d=v%d", i, i);
        eio__query_add(&q, frag, (size_t)n);
    }
    assert_int_equal(q.n, EIO_QUERY_MAX_PAIRS);
    assert_null(eio__query_get(&q, "k1000"));
    assert_string_equal(eio__query_get(&q, "k999"), "v999");
    eio__query_free(&q);
}

/* The protocol's decoder of the kept query string (sio__client_parse_query before the
 * engine decoded the query): the oracle the pairs must agree with. */
static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static char *pct_decode(const char *in, size_t n)
{
    char *out = base_malloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (in[i] == '+') {
            out[o++] = ' ';
        } else if (in[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)in[i + 1])) >= 0 &&
                   (lo = hexval((unsigned char)in[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    return out;
}

static void oracle(const char *q, base_map_t *m)
{
    while (q != NULL && *q != '\0') {
        const char *amp = strchr(q, '&');
        size_t len = amp != NULL ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t klen = eq != NULL ? (size_t)(eq - q) : len;

        if (klen > 0) {
            char *key = pct_decode(q, klen);
            if (!base_map_has(m, key))
                base_map_put(m, key,
                             eq != NULL ? pct_decode(eq + 1, len - klen - 1) : base_strdup(""));
            base_free(key);
        }
        q = amp != NULL ? amp + 1 : NULL;
    }
}

/* Random fragments, every byte value included: the pairs decoded once equal what the
 * protocol got from the re-encoded string (eio__query_append), key for key. */
static void test_query_matches_protocol(void **state)
{
    static const char alphabet[] = "ab=&+%; \x01\xc3\xbc\x7f\xff"
                                   "0";
    unsigned seed = 12345;

    for (int round = 0; round < 2000; round++) {
        eio_query_t q = {0};
        eio_buf_t s = {0};
        base_map_t m;
        base_map_iter_t it = {0};
        const char *k;
        void *v;
        int nfrag = (int)(seed % 6);

        base_map_init(&m);
        for (int f = 0; f < nfrag; f++) {
            char frag[8];
            size_t n;

            seed = seed * 1103515245u + 12345u;
            n = (seed >> 16) % sizeof(frag);
            for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                /* mostly the interesting characters, sometimes any byte (NUL too) */
                frag[i] = (seed >> 24) % 4 ? alphabet[(seed >> 16) % (sizeof(alphabet) - 1)]
                                           : (char)(seed >> 16);
            }
            eio__query_add(&q, frag, n);
            eio__query_append(&s, frag, n);
        }
        oracle(s.p != NULL ? s.p : "", &m);
        assert_int_equal(q.n, base_map_size(&m));
        while (base_map_next(&m, &it, &k, &v)) {
            const char *got = eio__query_get(&q, k);
            assert_non_null(got);
            assert_string_equal(got, v);
            base_free(v);
        }
        base_map_clear(&m);
        base_free(s.p);
        eio__query_free(&q);
        seed = seed * 1103515245u + 12345u;
    }
}

/* ---------------------------------------------------------------- query string */

static void test_query_string(void **state)
{
    eio_buf_t s = {0};

    eio__query_append(&s, "EIO=4", 5);
    eio__query_append(&s, "", 0); /* nothing, not even a separator */
    eio__query_append(&s, "name=J\xc3\xbcrgen X", 14);
    eio__query_append(&s, "flag", 4);
    eio__query_append(&s, "f=a=b&c+d%", 10);
    assert_string_equal(s.p, "EIO=4&name=J%C3%BCrgen%20X&flag&f=a=b%26c%2Bd%25");
    base_free(s.p);

    memset(&s, 0, sizeof(s));
    eio__buf_encode(&s, "/a b/c", 6, "/");
    assert_string_equal(s.p, "/a%20b/c");
    eio__buf_put(&s, "?", 1);
    assert_string_equal(s.p, "/a%20b/c?");
    base_free(s.p);
}

/* ---------------------------------------------------------------- Engine.IO arguments */

#define ARG(r, lit) eio__req_arg(r, lit, sizeof(lit) - 1)

static void test_req_args(void **state)
{
    eio_req_t r;
    char longsid[EIO_SID_MAX + 8];

    memset(&r, 0, sizeof(r));
    ARG(&r, "EIO=4");
    ARG(&r, "transport=websocket");
    ARG(&r, "sid=abc");
    ARG(&r, "other=1");
    assert_true(r.eio_ok);
    assert_int_equal(r.transport, EIO_TRANSPORT_WEBSOCKET);
    assert_true(r.has_sid);
    assert_string_equal(r.sid, "abc");

    ARG(&r, "EIO=3");
    assert_false(r.eio_ok);
    ARG(&r, "EIO=44");
    assert_false(r.eio_ok);
    ARG(&r, "transport=polling");
    assert_int_equal(r.transport, EIO_TRANSPORT_POLLING);
    ARG(&r, "transport=flashsocket");
    assert_int_equal(r.transport, 0);

    memset(&r, 0, sizeof(r));
    ARG(&r, "EIO");       /* no '=': not an argument */
    ARG(&r, "sid");       /* idem */
    ARG(&r, "xEIO=4");    /* other key */
    ARG(&r, "transport"); /* no value */
    assert_false(r.eio_ok);
    assert_false(r.has_sid);
    assert_int_equal(r.transport, 0);

    /* an over-long sid matches no session: a marker no sid has */
    memset(longsid, 'a', sizeof(longsid));
    memcpy(longsid, "sid=", 4);
    eio__req_arg(&r, longsid, sizeof(longsid));
    assert_true(r.has_sid);
    assert_string_equal(r.sid, "-");
    memset(&r, 0, sizeof(r));
    eio__req_arg(&r, longsid, 4 + EIO_SID_MAX); /* exactly the limit still counts */
    assert_int_equal(strlen(r.sid), EIO_SID_MAX);
}

/* ---------------------------------------------------------------- path, origin */

static void test_path_match(void **state)
{
    assert_true(eio__path_match("/engine.io/", 10, "/engine.io"));
    assert_true(eio__path_match("/engine.io/", 10, "/engine.io/"));
    assert_true(eio__path_match("/engine.io/", 10, "/engine.io/x/y"));
    assert_false(eio__path_match("/engine.io/", 10, "/engine.iox"));
    assert_false(eio__path_match("/engine.io/", 10, "/engine"));
    assert_false(eio__path_match("/engine.io/", 10, "/other/"));
    assert_false(eio__path_match("/engine.io/", 10, NULL));
    /* a base of "/" takes every path */
    assert_true(eio__path_match("/", 1, "/"));
    assert_true(eio__path_match("/", 1, "/anything"));
    assert_false(eio__path_match("/", 1, "anything"));
    assert_false(eio__path_match("/", 1, NULL));
}

#define LISTED(list, o) eio__origin_listed(list, o, strlen(o))

static void test_origin_listed(void **state)
{
    const char *list = "http://a.example, https://b.example:8443 ,\thttp://c";

    assert_true(LISTED(list, "http://a.example"));
    assert_true(LISTED(list, "https://b.example:8443"));
    assert_true(LISTED(list, "http://c"));
    assert_false(LISTED(list, "http://a.exampl"));   /* a prefix is not a match */
    assert_false(LISTED(list, "http://a.example.")); /* nor a longer name */
    assert_false(LISTED(list, "HTTP://A.EXAMPLE"));  /* byte for byte */
    assert_false(LISTED(list, "https://b.example"));
    assert_false(LISTED(list, ""));
    assert_false(LISTED("", "http://a.example"));
    assert_true(LISTED("http://one", "http://one"));
    assert_true(LISTED(",,http://two,", "http://two"));
    /* only the first olen bytes of origin count */
    assert_true(eio__origin_listed(list, "http://cXYZ", 8));
}

static void test_origin_chars(void **state)
{
    assert_true(eio__origin_chars_ok("https://a.example:8443"));
    assert_true(eio__origin_chars_ok("a\tb"));
    assert_true(eio__origin_chars_ok("http://\xc3\xbc.example")); /* bytes >= 0x80 pass */
    assert_true(eio__origin_chars_ok(""));
    assert_true(eio__origin_chars_ok(NULL)); /* no Origin header */
    assert_false(eio__origin_chars_ok("a\x01"));
    assert_false(eio__origin_chars_ok("a\rb"));
    assert_false(eio__origin_chars_ok("a\x7f"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_pairs),  cmocka_unit_test(test_query_nul),
        cmocka_unit_test(test_query_many),   cmocka_unit_test(test_query_matches_protocol),
        cmocka_unit_test(test_query_string), cmocka_unit_test(test_req_args),
        cmocka_unit_test(test_path_match),   cmocka_unit_test(test_origin_listed),
        cmocka_unit_test(test_origin_chars),
    };
    return cmocka_run_group_tests_name("eio_req", tests, NULL, NULL);
}
