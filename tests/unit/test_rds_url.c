/* test_rds_url.c -- adapter/redis/rds_url.c: accepted shapes, defaults, percent-decoding, the
 * refusals (each with the reason an operator needs) and the format/parse round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rds_url.h"
#include "sockeye.h"

/* Parses s and expects success. */
static void ok(rds_url_t *u, const char *s)
{
    char err[256];
    int rc = rds_url_parse(u, s, err, sizeof(err));
    if (rc != SIO_OK)
        print_message("unexpected refusal of \"%s\": %s\n", s, err);
    assert_int_equal(rc, SIO_OK);
    assert_string_equal(err, "");
}

/* Parses s, expects SIO_EINVAL with `needle` in the reason and the defaults left in u. */
static void bad(const char *s, const char *needle)
{
    char err[256];
    rds_url_t u;
    int rc = rds_url_parse(&u, s, err, sizeof(err));

    if (rc != SIO_EINVAL || strstr(err, needle) == NULL)
        print_message("\"%s\": rc %d, reason \"%s\", wanted \"%s\"\n", s, rc, err, needle);
    assert_int_equal(rc, SIO_EINVAL);
    assert_non_null(strstr(err, "redis URL: "));
    assert_non_null(strstr(err, needle));
    assert_string_equal(u.host, RDS_URL_DEFAULT_HOST);
    assert_int_equal(u.port, RDS_URL_DEFAULT_PORT);
    assert_int_equal(u.db, 0);
    assert_null(u.user);
    assert_null(u.pass);
    assert_null(u.path);
    assert_int_equal(u.is_unix, 0);
    rds_url_free(&u);
}

static void expect_defaults(const rds_url_t *u)
{
    assert_int_equal(u->is_unix, 0);
    assert_string_equal(u->host, "127.0.0.1");
    assert_int_equal(u->port, 6379);
    assert_int_equal(u->db, 0);
    assert_null(u->user);
    assert_null(u->pass);
    assert_null(u->path);
}

static void test_defaults(void **state)
{
    static const char *const inputs[] = {NULL,        "",           "redis://",
                                         "redis:///", "redis://:@", "REDIS://"};
    rds_url_t u;

    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        ok(&u, inputs[i]);
        expect_defaults(&u);
        rds_url_free(&u);
    }
    rds_url_init(&u);
    expect_defaults(&u);
    rds_url_free(&u);
    rds_url_free(&u); /* freeing twice is harmless: free leaves it zeroed */
}

static void test_tcp_shapes(void **state)
{
    rds_url_t u;

    ok(&u, "redis://localhost");
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6379);
    rds_url_free(&u);

    ok(&u, "redis://10.0.0.5:6380/3");
    assert_string_equal(u.host, "10.0.0.5");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    rds_url_free(&u);

    ok(&u, "redis://:7000");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 7000);
    rds_url_free(&u);

    ok(&u, "redis://[::1]:7001/15");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7001);
    assert_int_equal(u.db, 15);
    rds_url_free(&u);

    ok(&u, "redis://[fe80::1:2]");
    assert_string_equal(u.host, "fe80::1:2");
    assert_int_equal(u.port, 6379);
    rds_url_free(&u);

    ok(&u, "Redis://redis-1.internal_net.example:65535/1000000");
    assert_string_equal(u.host, "redis-1.internal_net.example");
    assert_int_equal(u.port, 65535);
    assert_int_equal(u.db, RDS_URL_MAX_DB);
    rds_url_free(&u);

    ok(&u, "redis://h:00001/007");
    assert_int_equal(u.port, 1);
    assert_int_equal(u.db, 7);
    rds_url_free(&u);
}

static void test_userinfo(void **state)
{
    rds_url_t u;

    ok(&u, "redis://:secret@redis:6379");
    assert_null(u.user);
    assert_string_equal(u.pass, "secret");
    assert_string_equal(u.host, "redis");
    rds_url_free(&u);

    ok(&u, "redis://alice:s3cr%40t%2Fx%3a@h/2");
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.pass, "s3cr@t/x:");
    assert_string_equal(u.host, "h");
    assert_int_equal(u.db, 2);
    rds_url_free(&u);

    /* a ':' after the first one belongs to the password; sub-delims are legal raw */
    ok(&u, "redis://bob:a:b!$&'()*+,;=~@h");
    assert_string_equal(u.user, "bob");
    assert_string_equal(u.pass, "a:b!$&'()*+,;=~");
    rds_url_free(&u);

    /* a user with an empty password is an ACL "nopass" user */
    ok(&u, "redis://svc:@h");
    assert_string_equal(u.user, "svc");
    assert_string_equal(u.pass, "");
    rds_url_free(&u);

    ok(&u, "redis://%E2%82%AC:%c3%A9@h");
    assert_string_equal(u.user, "\xe2\x82\xac");
    assert_string_equal(u.pass, "\xc3\xa9");
    rds_url_free(&u);
}

static void test_unix(void **state)
{
    rds_url_t u;

    ok(&u, "unix:///tmp/redis.sock");
    assert_int_equal(u.is_unix, 1);
    assert_string_equal(u.path, "/tmp/redis.sock");
    assert_null(u.host);
    assert_int_equal(u.db, 0);
    rds_url_free(&u);

    ok(&u, "unix://:pw@/var/run/redis/redis%20server.sock?db=4");
    assert_int_equal(u.is_unix, 1);
    assert_string_equal(u.path, "/var/run/redis/redis server.sock");
    assert_string_equal(u.pass, "pw");
    assert_int_equal(u.db, 4);
    rds_url_free(&u);
}

static void test_refusals(void **state)
{
    char longhost[300], longpath[200];

    bad("rediss://host:6380", "TLS");
    bad("http://host", "unsupported scheme \"http\"");
    bad("localhost:6379", "missing scheme");
    bad("redis://host:0", "not a number in 1..65535");
    bad("redis://host:65536", "not a number in 1..65535");
    bad("redis://host:", "not a number in 1..65535");
    bad("redis://host:12a", "not a number in 1..65535");
    bad("redis://host:123456", "not a number in 1..65535");
    bad("redis://user@host", "without a password");
    bad("redis://a:b@c@host", "more than one '@'");
    bad("redis://:pa/ss@host", "percent-encode '/'");
    bad("redis://host/abc", "not a database number");
    bad("redis://host/1/2", "not a database number");
    bad("redis://host/-1", "not a database number");
    bad("redis://host/1000001", "not a database number");
    bad("redis://host?db=1", "query parameters are not supported");
    bad("redis://host/1?x", "query parameters are not supported");
    bad("redis://host#frag", "fragment");
    bad("redis://ho st", "offset 10");
    bad("redis://host\x01", "byte 0x01");
    bad("redis://h\xc3\xa9", "non-ASCII");
    bad("redis://:p%zz@h", "bad %-escape");
    bad("redis://:p%0@h", "truncated %-escape");
    bad("redis://:p%@h", "truncated %-escape");
    bad("redis://:p%00@h", "NUL");
    bad("redis://:p\"q@h", "'\"' in the password must be percent-encoded");
    bad("redis://us[er:p@h", "'[' in the user name must be percent-encoded");
    bad("redis://::1", "brackets");
    bad("redis://[::1", "without ']'");
    bad("redis://[::1]x", "after ']'");
    bad("redis://[]:1", "empty IPv6");
    bad("redis://[::g]", "IPv6 address");
    bad("redis://h%41", "'%' is not allowed in a host name");
    bad("unix://host/tmp/s.sock", "no host");
    bad("unix://", "absolute socket path");
    bad("unix:///", "absolute socket path");
    bad("unix:///?db=1", "absolute socket path");
    bad("unix:///tmp/s?foo=1", "only the query");
    bad("unix:///tmp/s?db=x", "not a database number");
    bad("unix:///tmp/%00", "NUL");

    memset(longhost, 'a', sizeof(longhost));
    memcpy(longhost, "redis://", 8);
    longhost[8 + 254] = '\0';
    bad(longhost, "longer than 253");
    memset(longpath, 'p', sizeof(longpath));
    memcpy(longpath, "unix:///", 8);
    longpath[8 + 107] = '\0';
    bad(longpath, "longer than 107");
    longpath[8 + 106] = '\0'; /* "/" + 106 bytes = 107: just fits */
    {
        rds_url_t u;
        ok(&u, longpath);
        assert_int_equal(strlen(u.path), 107);
        rds_url_free(&u);
    }
}

static void test_err_buffer_edges(void **state)
{
    rds_url_t u;
    char tiny[8];

    /* no room for the reason at all: still refused, nothing written */
    assert_int_equal(rds_url_parse(&u, "rediss://x", NULL, 0), SIO_EINVAL);
    rds_url_free(&u);
    /* a short buffer gets a truncated, terminated reason */
    assert_int_equal(rds_url_parse(&u, "rediss://x", tiny, sizeof(tiny)), SIO_EINVAL);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    rds_url_free(&u);
}

static void roundtrip(const char *s, const char *canonical)
{
    rds_url_t a, b;
    char buf[512];
    size_t n;

    ok(&a, s);
    n = rds_url_format(&a, 1, buf, sizeof(buf));
    assert_int_equal(n, strlen(buf));
    if (canonical != NULL)
        assert_string_equal(buf, canonical);
    ok(&b, buf);
    assert_int_equal(a.is_unix, b.is_unix);
    assert_int_equal(a.port, b.port);
    assert_int_equal(a.db, b.db);
    if (a.host != NULL)
        assert_string_equal(a.host, b.host);
    else
        assert_null(b.host);
    if (a.path != NULL)
        assert_string_equal(a.path, b.path);
    if (a.user != NULL)
        assert_string_equal(a.user, b.user);
    else
        assert_null(b.user);
    if (a.pass != NULL)
        assert_string_equal(a.pass, b.pass);
    else
        assert_null(b.pass);
    rds_url_free(&a);
    rds_url_free(&b);
}

static void test_format(void **state)
{
    rds_url_t u;
    char buf[128], small[10];
    size_t n;

    roundtrip("redis://", "redis://127.0.0.1:6379/0");
    roundtrip("redis://alice:p%40ss:w0rd!@h:1/2", "redis://alice:p%40ss%3Aw0rd%21@h:1/2");
    roundtrip("redis://:x@[::1]", "redis://:x@[::1]:6379/0");
    roundtrip("redis://svc:@h", "redis://svc:@h:6379/0");
    roundtrip("unix://:pw@/tmp/a%20b.sock?db=3", "unix://:pw@/tmp/a%20b.sock?db=3");
    roundtrip("unix:///tmp/s.sock", "unix:///tmp/s.sock");

    ok(&u, "redis://alice:secret@h:1/2");
    rds_url_format(&u, 0, buf, sizeof(buf));
    assert_string_equal(buf, "redis://alice:***@h:1/2");
    assert_null(strstr(buf, "secret"));
    /* snprintf contract: the needed length, a truncated terminated copy */
    n = rds_url_format(&u, 0, small, sizeof(small));
    assert_int_equal(n, strlen("redis://alice:***@h:1/2"));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_int_equal(rds_url_format(&u, 0, NULL, 0), n);
    rds_url_free(&u);
}

static void test_copy(void **state)
{
    rds_url_t a, b;

    ok(&a, "redis://u:p@h:5/6");
    rds_url_copy(&b, &a);
    rds_url_free(&a);
    assert_string_equal(b.user, "u");
    assert_string_equal(b.pass, "p");
    assert_string_equal(b.host, "h");
    assert_int_equal(b.port, 5);
    assert_int_equal(b.db, 6);
    rds_url_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_tcp_shapes),
        cmocka_unit_test(test_userinfo), cmocka_unit_test(test_unix),
        cmocka_unit_test(test_refusals), cmocka_unit_test(test_err_buffer_edges),
        cmocka_unit_test(test_format),   cmocka_unit_test(test_copy),
    };
    return cmocka_run_group_tests_name("rds_url", tests, NULL, NULL);
}
