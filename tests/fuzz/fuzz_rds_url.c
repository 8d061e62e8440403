/* fuzz_rds_url.c -- libFuzzer target for adapter/redis/rds_url.c.
 *
 * Properties checked on every input, besides "no crash, no leak, no UB":
 *  - a refusal leaves the defaults and a non-empty "redis URL: ..." reason;
 *  - an accepted URL has its fields in range (port 1..65535, db 0..RDS_URL_MAX_DB, a host
 *    for TCP and an absolute path of at most RDS_URL_MAX_UNIX_PATH bytes for unix);
 *  - format(show_password) parses back to an equal URL, and formatting that again gives
 *    the same text (the canonical form is a fixed point);
 *  - the masked form shows "***" in the password's place (user names are encoded, so the
 *    first '@' is the separator) and nothing of a URL without a password.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base_alloc.h"
#include "rds_url.h"
#include "sockeye.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static int same_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static int same_url(const rds_url_t *a, const rds_url_t *b)
{
    return a->is_unix == b->is_unix && a->port == b->port && a->db == b->db &&
           same_str(a->host, b->host) && same_str(a->path, b->path) && same_str(a->user, b->user) &&
           same_str(a->pass, b->pass);
}

/* Formats u into a fresh buffer. */
static char *format(const rds_url_t *u, int show)
{
    size_t n = rds_url_format(u, show, NULL, 0);
    char *buf = base_malloc(n + 1);
    CHECK(rds_url_format(u, show, buf, n + 1) == n);
    CHECK(strlen(buf) == n);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = base_malloc(size + 1), err[256], *text, *again, *masked, *at;
    rds_url_t u, v;
    int rc;

    memcpy(s, data, size);
    s[size] = '\0';
    rc = rds_url_parse(&u, s, err, sizeof(err));
    if (rc != SIO_OK) {
        CHECK(rc == SIO_EINVAL);
        CHECK(strncmp(err, "redis URL: ", 11) == 0 && strlen(err) > 11);
        CHECK(!u.is_unix && u.port == RDS_URL_DEFAULT_PORT && u.db == 0 && u.user == NULL &&
              u.pass == NULL && u.path == NULL && strcmp(u.host, RDS_URL_DEFAULT_HOST) == 0);
        rds_url_free(&u);
        base_free(s);
        return 0;
    }
    CHECK(err[0] == '\0');
    CHECK(u.db >= 0 && u.db <= RDS_URL_MAX_DB);
    CHECK(u.user == NULL || u.pass != NULL);
    if (u.is_unix) {
        CHECK(u.host == NULL && u.path != NULL && u.path[0] == '/');
        CHECK(strlen(u.path) <= RDS_URL_MAX_UNIX_PATH);
    } else {
        CHECK(u.host != NULL && u.path == NULL && strlen(u.host) <= 253);
        CHECK(u.port >= 1 && u.port <= 65535);
    }

    text = format(&u, 1);
    CHECK(rds_url_parse(&v, text, err, sizeof(err)) == SIO_OK);
    CHECK(same_url(&u, &v));
    again = format(&v, 1);
    CHECK(strcmp(text, again) == 0);

    masked = format(&u, 0);
    at = strchr(masked, '@');
    if (u.pass != NULL)
        CHECK(at != NULL && at - masked >= 11 && memcmp(at - 4, ":***", 4) == 0);
    else
        CHECK(strcmp(masked, text) == 0);

    base_free(masked);
    base_free(again);
    base_free(text);
    rds_url_free(&v);
    rds_url_free(&u);
    base_free(s);
    return 0;
}
