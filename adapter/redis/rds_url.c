/* rds_url.c -- redis:// and unix:// URLs (see rds_url.h for the accepted shapes).
 *
 * The parser works on spans of the input and copies out only what it keeps, so a refusal
 * frees nothing but the temporary result. Each part is checked against a character class
 * table before it is decoded: a character a URL cannot carry raw is an error that names
 * the character and the part, because the usual cause is a password with an unencoded
 * '@' or '/' and the operator needs to know which character to encode.
 */
#include "rds_url.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base_alloc.h"
#include "sockeye_common.h"

/* ---------------------------------------------------------------- character classes */

enum {
    C_UNRES = 1, /* ALPHA DIGIT - . _ ~ (never needs encoding) */
    C_SUB = 2,   /* ! $ & ' ( ) * + , ; = (RFC 3986 sub-delims, legal raw in userinfo) */
    C_HOST = 4,  /* reg-name / IPv4: ALPHA DIGIT - . _ */
    C_HEX = 8,
};

static unsigned char url_class(unsigned char ch)
{
    unsigned char c = 0;

    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        c |= C_UNRES | C_HOST;
    if (ch == '-' || ch == '.' || ch == '_')
        c |= C_UNRES | C_HOST;
    if (ch == '~')
        c |= C_UNRES;
    if (ch != '\0' && strchr("!$&'()*+,;=", ch) != NULL)
        c |= C_SUB;
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))
        c |= C_HEX;
    return c;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return ch - 'A' + 10;
}

/* ---------------------------------------------------------------- errors */

static int url_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (errlen == 0)
        return SIO_EINVAL;
    n = snprintf(err, errlen, "redis URL: ");
    if (n > 0 && (size_t)n < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return SIO_EINVAL;
}

/* Describes a byte for an error message without echoing control characters. */
static const char *show_char(unsigned char ch, char *buf, size_t len)
{
    if (ch > 0x20 && ch < 0x7f)
        snprintf(buf, len, "'%c'", ch);
    else
        snprintf(buf, len, "byte 0x%02x", ch);
    return buf;
}

/* ---------------------------------------------------------------- decoding */

/* Percent-decodes s[0..n) into a new string after checking that every raw character is
 * in class `allowed` (or one of `extra`). NULL with err filled on a bad character, a
 * malformed escape or an escaped NUL (the value travels as a C string). */
static char *decode_part(const char *s, size_t n, unsigned allowed, const char *extra,
                         const char *what, char *err, size_t errlen)
{
    char *out = base_malloc(n + 1), cbuf[16];
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n) {
                url_fail(err, errlen, "truncated %%-escape in the %s", what);
                goto fail;
            }
            if (!(url_class((unsigned char)s[i + 1]) & C_HEX) ||
                !(url_class((unsigned char)s[i + 2]) & C_HEX)) {
                url_fail(err, errlen, "bad %%-escape \"%%%c%c\" in the %s", s[i + 1], s[i + 2],
                         what);
                goto fail;
            }
            ch = (unsigned char)(hexval((unsigned char)s[i + 1]) * 16 +
                                 hexval((unsigned char)s[i + 2]));
            if (ch == 0) {
                url_fail(err, errlen, "%%00 (NUL) is not allowed in the %s", what);
                goto fail;
            }
            i += 2;
        } else if (!(url_class(ch) & allowed) &&
                   (extra == NULL || ch == '\0' || strchr(extra, ch) == NULL)) {
            url_fail(err, errlen, "%s in the %s must be percent-encoded",
                     show_char(ch, cbuf, sizeof(cbuf)), what);
            goto fail;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return out;
fail:
    base_free(out);
    return NULL;
}

/* Parses 1..max_digits decimal digits s[0..n) into *v, within [lo, hi]. */
static int parse_uint(const char *s, size_t n, size_t max_digits, long lo, long hi, long *v)
{
    long x = 0;
    size_t i;

    if (n == 0 || n > max_digits)
        return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (s[i] - '0');
    }
    if (x < lo || x > hi)
        return -1;
    *v = x;
    return 0;
}

/* ---------------------------------------------------------------- parts */

/* userinfo = [user] ":" pass. A user with no ':' is refused: clients disagree on whether
 * "x@" is a user or a password, so we make the operator say which. */
static int parse_userinfo(rds_url_t *u, const char *s, size_t n, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen;

    if (colon == NULL)
        return url_fail(err, errlen,
                        "\"user@\" without a password: write redis://:PASSWORD@host for a "
                        "password, redis://USER:PASSWORD@host for an ACL user");
    ulen = (size_t)(colon - s);
    if (ulen > 0) {
        u->user = decode_part(s, ulen, C_UNRES | C_SUB, NULL, "user name", err, errlen);
        if (u->user == NULL)
            return SIO_EINVAL;
    }
    u->pass = decode_part(colon + 1, n - ulen - 1, C_UNRES | C_SUB, ":", "password", err, errlen);
    if (u->pass == NULL)
        return SIO_EINVAL;
    if (u->user == NULL && u->pass[0] == '\0') { /* ":@" means no auth at all */
        base_free(u->pass);
        u->pass = NULL;
    }
    return SIO_OK;
}

/* host [":" port] where host is a reg-name, an IPv4 address or "[" IPv6 "]". An empty
 * host keeps the default (so "redis://:6380" is the local Redis on 6380). */
static int parse_hostport(rds_url_t *u, const char *s, size_t n, char *err, size_t errlen)
{
    const char *host = s, *port = NULL;
    size_t hlen = n, plen = 0, i;
    char cbuf[16];
    long v;

    if (n > 0 && s[0] == '[') {
        const char *end = memchr(s, ']', n);
        if (end == NULL)
            return url_fail(err, errlen, "'[' without ']' around the IPv6 address");
        host = s + 1;
        hlen = (size_t)(end - host);
        if (hlen == 0)
            return url_fail(err, errlen, "empty IPv6 address \"[]\"");
        for (i = 0; i < hlen; i++) {
            unsigned char ch = (unsigned char)host[i];
            if (!(url_class(ch) & C_HEX) && ch != ':' && ch != '.')
                return url_fail(err, errlen, "%s is not allowed in an IPv6 address",
                                show_char(ch, cbuf, sizeof(cbuf)));
        }
        if (end + 1 < s + n) {
            if (end[1] != ':')
                return url_fail(err, errlen, "unexpected text after ']'");
            port = end + 2;
            plen = (size_t)(s + n - port);
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon != NULL) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
            plen = n - hlen - 1;
            if (memchr(port, ':', plen) != NULL)
                return url_fail(err, errlen,
                                "more than one ':' in the host (an IPv6 address "
                                "must be written in brackets: [::1])");
        }
        for (i = 0; i < hlen; i++) {
            unsigned char ch = (unsigned char)host[i];
            if (!(url_class(ch) & C_HOST))
                return url_fail(err, errlen, "%s is not allowed in a host name",
                                show_char(ch, cbuf, sizeof(cbuf)));
        }
    }
    if (hlen > 253)
        return url_fail(err, errlen, "host name longer than 253 characters");
    if (port != NULL) {
        if (parse_uint(port, plen, 5, 1, 65535, &v) != 0)
            return url_fail(err, errlen, "port \"%.*s\" is not a number in 1..65535",
                            (int)(plen > 16 ? 16 : plen), port);
        u->port = (int)v;
    }
    if (hlen > 0) {
        base_free(u->host);
        u->host = base_strndup(host, hlen);
    }
    return SIO_OK;
}

/* "/N" selects database N; "" and "/" keep 0. */
static int parse_db_path(rds_url_t *u, const char *s, size_t n, char *err, size_t errlen)
{
    long v;

    if (n <= 1)
        return SIO_OK;
    if (parse_uint(s + 1, n - 1, 7, 0, RDS_URL_MAX_DB, &v) != 0)
        return url_fail(err, errlen, "path \"%.*s\" is not a database number (redis://host/3)",
                        (int)(n > 24 ? 24 : n), s);
    u->db = (int)v;
    return SIO_OK;
}

/* The unix form's only query parameter: "db=N". */
static int parse_unix_query(rds_url_t *u, const char *s, size_t n, char *err, size_t errlen)
{
    long v;

    if (n < 3 || memcmp(s, "db=", 3) != 0)
        return url_fail(err, errlen, "unix:// URLs take only the query \"?db=N\"");
    if (parse_uint(s + 3, n - 3, 7, 0, RDS_URL_MAX_DB, &v) != 0)
        return url_fail(err, errlen, "\"?%.*s\" is not a database number", (int)(n > 24 ? 24 : n),
                        s);
    u->db = (int)v;
    return SIO_OK;
}

/* ---------------------------------------------------------------- parse */

static int parse_into(rds_url_t *u, const char *s, char *err, size_t errlen)
{
    const char *sep, *rest, *end, *at, *p, *auth_end;
    size_t slen = strlen(s), i;
    char cbuf[16];
    int rc;

    for (i = 0; i < slen; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return url_fail(err, errlen,
                            "%s at offset %zu (spaces, control and non-ASCII "
                            "characters must be percent-encoded)",
                            show_char(ch, cbuf, sizeof(cbuf)), i);
    }
    sep = strstr(s, "://");
    if (sep == NULL)
        return url_fail(err, errlen, "missing scheme: expected redis://host:port");
    if ((size_t)(sep - s) == 6 && strncasecmp(s, "rediss", 6) == 0)
        return url_fail(err, errlen,
                        "rediss:// (TLS) is not supported: this build's hiredis "
                        "(0.14) has no TLS; use redis:// or a local TLS tunnel");
    if ((size_t)(sep - s) == 4 && strncasecmp(s, "unix", 4) == 0)
        u->is_unix = 1;
    else if (!((size_t)(sep - s) == 5 && strncasecmp(s, "redis", 5) == 0))
        return url_fail(err, errlen, "unsupported scheme \"%.*s\" (expected redis:// or unix://)",
                        (int)((sep - s) > 16 ? 16 : (sep - s)), s);
    rest = sep + 3;
    end = s + slen;

    if (strchr(rest, '#') != NULL)
        return url_fail(err, errlen,
                        "a '#' fragment is not allowed (percent-encode '#' in a "
                        "password as %%23)");

    /* The authority ends at the first '/' (or '?'): a raw '/' in a password would end it
     * early, which is why '/' must be encoded there. */
    auth_end = rest;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?')
        auth_end++;
    at = memchr(rest, '@', (size_t)(auth_end - rest));
    if (at != NULL) {
        if (memchr(at + 1, '@', (size_t)(auth_end - at - 1)) != NULL)
            return url_fail(err, errlen,
                            "more than one '@' (percent-encode '@' in a password "
                            "as %%40)");
        rc = parse_userinfo(u, rest, (size_t)(at - rest), err, errlen);
        if (rc != SIO_OK)
            return rc;
        rest = at + 1;
    }

    if (u->is_unix) {
        const char *q;
        if (rest != auth_end)
            return url_fail(err, errlen, "unix:// takes no host: write unix:///path/to/redis.sock");
        if (rest == end || *rest != '/' || rest + 1 == end || rest[1] == '?')
            return url_fail(err, errlen,
                            "unix:// needs an absolute socket path "
                            "(unix:///path/to/redis.sock)");
        q = memchr(rest, '?', (size_t)(end - rest));
        p = q != NULL ? q : end;
        base_free(u->host);
        u->host = NULL;
        u->path = decode_part(rest, (size_t)(p - rest), C_UNRES | C_SUB, "/:@", "socket path", err,
                              errlen);
        if (u->path == NULL)
            return SIO_EINVAL;
        if (strlen(u->path) > RDS_URL_MAX_UNIX_PATH)
            return url_fail(err, errlen, "unix socket path longer than %d bytes",
                            RDS_URL_MAX_UNIX_PATH);
        u->port = 0;
        return q != NULL ? parse_unix_query(u, q + 1, (size_t)(end - q - 1), err, errlen) : SIO_OK;
    }

    if (memchr(auth_end, '@', (size_t)(end - auth_end)) != NULL)
        return url_fail(err, errlen,
                        "'@' after the host: percent-encode '/' and '?' in a "
                        "password as %%2F and %%3F");
    rc = parse_hostport(u, rest, (size_t)(auth_end - rest), err, errlen);
    if (rc != SIO_OK)
        return rc;
    if (memchr(auth_end, '?', (size_t)(end - auth_end)) != NULL)
        return url_fail(err, errlen,
                        "query parameters are not supported in redis:// URLs (put "
                        "the db in the path: redis://host:6379/2)");
    return parse_db_path(u, auth_end, (size_t)(end - auth_end), err, errlen);
}

void rds_url_init(rds_url_t *u)
{
    memset(u, 0, sizeof(*u));
    u->host = base_strdup(RDS_URL_DEFAULT_HOST);
    u->port = RDS_URL_DEFAULT_PORT;
}

void rds_url_free(rds_url_t *u)
{
    base_free(u->host);
    base_free(u->path);
    base_free(u->user);
    base_free(u->pass);
    memset(u, 0, sizeof(*u));
}

int rds_url_parse(rds_url_t *u, const char *s, char *err, size_t errlen)
{
    int rc;

    if (errlen > 0)
        err[0] = '\0';
    rds_url_init(u);
    if (s == NULL || s[0] == '\0')
        return SIO_OK;
    rc = parse_into(u, s, err, errlen);
    if (rc != SIO_OK) {
        rds_url_free(u);
        rds_url_init(u);
    }
    return rc;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? base_strdup(s) : NULL;
}

void rds_url_copy(rds_url_t *dst, const rds_url_t *src)
{
    *dst = *src;
    dst->host = dup_or_null(src->host);
    dst->path = dup_or_null(src->path);
    dst->user = dup_or_null(src->user);
    dst->pass = dup_or_null(src->pass);
}

/* ---------------------------------------------------------------- format */

/* snprintf-style sink: counts everything, stores what fits. */
typedef struct sink {
    char *buf;
    size_t len;
    size_t n;
} sink_t;

static void put_char(sink_t *k, char ch)
{
    if (k->n + 1 < k->len)
        k->buf[k->n] = ch;
    k->n++;
}

static void put_str(sink_t *k, const char *s)
{
    while (*s != '\0')
        put_char(k, *s++);
}

/* Percent-encodes everything but unreserved characters and `keep`. */
static void put_enc(sink_t *k, const char *s, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((url_class(ch) & C_UNRES) || (keep != NULL && strchr(keep, ch) != NULL)) {
            put_char(k, (char)ch);
        } else {
            put_char(k, '%');
            put_char(k, hex[ch >> 4]);
            put_char(k, hex[ch & 15]);
        }
    }
}

size_t rds_url_format(const rds_url_t *u, int show_password, char *buf, size_t len)
{
    sink_t k = {buf, len, 0};
    char num[24];

    put_str(&k, u->is_unix ? "unix://" : "redis://");
    if (u->pass != NULL) {
        if (u->user != NULL)
            put_enc(&k, u->user, NULL);
        put_char(&k, ':');
        if (show_password)
            put_enc(&k, u->pass, NULL);
        else
            put_str(&k, "***");
        put_char(&k, '@');
    }
    if (u->is_unix) {
        put_enc(&k, u->path != NULL ? u->path : "", "/");
        if (u->db != 0) {
            snprintf(num, sizeof(num), "?db=%d", u->db);
            put_str(&k, num);
        }
    } else {
        const char *host = u->host != NULL ? u->host : RDS_URL_DEFAULT_HOST;
        int v6 = strchr(host, ':') != NULL;
        if (v6)
            put_char(&k, '[');
        put_str(&k, host);
        if (v6)
            put_char(&k, ']');
        snprintf(num, sizeof(num), ":%d/%d", u->port, u->db);
        put_str(&k, num);
    }
    if (len > 0)
        buf[k.n < len ? k.n : len - 1] = '\0';
    return k.n;
}
