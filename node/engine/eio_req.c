/* eio_req.c -- what a request says, read from its strings; no libwebsockets here.
 *
 * eio_handshake.c takes the strings out of lws and hands them over, so the rules --
 * which arguments count, how the query is kept, which paths and origins match -- can
 * be unit-tested without a connection (tests/unit/test_eio_req.c).
 */
#include "eio_private.h"

#include <string.h>

#include "base_alloc.h"

void eio__buf_put(eio_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = base_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* lws hands us the request already decoded ('+' as space, %xx resolved, split at '&'
 * and ';'), so the strings the session keeps are re-encoded: decoding them gives lws'
 * view back. */
void eio__buf_encode(eio_buf_t *b, const char *s, size_t n, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            (ch != 0 && strchr("-._~", ch)) || (ch != 0 && strchr(keep, ch))) {
            eio__buf_put(b, (const char *)&s[i], 1);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            eio__buf_put(b, e, 3);
        }
    }
}

void eio__req_arg(eio_req_t *r, const char *frag, size_t n)
{
    const char *eq = memchr(frag, '=', n);
    size_t klen, vlen;
    const char *v;

    if (eq == NULL)
        return;
    klen = (size_t)(eq - frag);
    v = eq + 1;
    vlen = n - klen - 1;
    if (klen == 3 && memcmp(frag, "EIO", 3) == 0) {
        r->eio_ok = vlen == 1 && v[0] == '4';
    } else if (klen == 9 && memcmp(frag, "transport", 9) == 0) {
        if (vlen == 7 && memcmp(v, "polling", 7) == 0)
            r->transport = EIO_TRANSPORT_POLLING;
        else if (vlen == 9 && memcmp(v, "websocket", 9) == 0)
            r->transport = EIO_TRANSPORT_WEBSOCKET;
        else
            r->transport = 0;
    } else if (klen == 3 && memcmp(frag, "sid", 3) == 0) {
        /* an over-long sid cannot be ours: keep a marker that matches nothing */
        r->has_sid = 1;
        if (vlen <= EIO_SID_MAX) {
            memcpy(r->sid, v, vlen);
            r->sid[vlen] = '\0';
        } else {
            strcpy(r->sid, "-");
        }
    }
}

void eio__query_append(eio_buf_t *q, const char *frag, size_t n)
{
    const char *eq = memchr(frag, '=', n);
    size_t klen = eq != NULL ? (size_t)(eq - frag) : n;

    if (n == 0)
        return;
    if (q->len > 0)
        eio__buf_put(q, "&", 1);
    eio__buf_encode(q, frag, klen, ",:/@!$'()*");
    if (eq != NULL) {
        eio__buf_put(q, "=", 1);
        eio__buf_encode(q, eq + 1, n - klen - 1, ",:/@!$'()*=");
    }
}

void eio__query_add(eio_query_t *q, const char *frag, size_t n)
{
    const char *eq = memchr(frag, '=', n);
    size_t klen = eq != NULL ? (size_t)(eq - frag) : n, vlen = 0;
    const char *v = eq != NULL ? eq + 1 : "";

    if (klen == 0 || q->n >= EIO_QUERY_MAX_PAIRS)
        return;
    /* a NUL from %00 ends the string, as it did for the protocol's C strings */
    klen = strnlen(frag, klen);
    if (eq != NULL)
        vlen = strnlen(v, n - (size_t)(eq - frag) - 1);
    size_t it = 0;
    const char *k, *kv;
    while (eio__query_next(q, &it, &k, &kv))
        if (strlen(k) == klen && memcmp(k, frag, klen) == 0)
            return; /* the first occurrence wins */
    if (q->len + klen + vlen + 2 > q->cap) {
        q->cap = (q->len + klen + vlen + 2) * 2;
        q->buf = base_realloc(q->buf, q->cap);
    }
    memcpy(q->buf + q->len, frag, klen);
    q->buf[q->len + klen] = '\0';
    q->len += klen + 1;
    memcpy(q->buf + q->len, v, vlen);
    q->buf[q->len + vlen] = '\0';
    q->len += vlen + 1;
    q->n++;
}

int eio__query_next(const eio_query_t *q, size_t *it, const char **key, const char **value)
{
    if (*it >= q->len)
        return 0;
    *key = q->buf + *it;
    *value = *key + strlen(*key) + 1;
    *it = (size_t)(*value - q->buf) + strlen(*value) + 1;
    return 1;
}

const char *eio__query_get(const eio_query_t *q, const char *key)
{
    size_t it = 0;
    const char *k, *v;

    while (eio__query_next(q, &it, &k, &v))
        if (strcmp(k, key) == 0)
            return v;
    return NULL;
}

void eio__query_trim(eio_query_t *q)
{
    if (q->buf != NULL && q->cap > q->len) {
        q->buf = base_realloc(q->buf, q->len);
        q->cap = q->len;
    }
}

void eio__query_free(eio_query_t *q)
{
    base_free(q->buf);
    memset(q, 0, sizeof(*q));
}

int eio__path_match(const char *base, size_t base_len, const char *path)
{
    if (path == NULL)
        return 0;
    if (base_len == 1)
        return path[0] == '/';
    if (strncmp(path, base, base_len) != 0)
        return 0;
    return path[base_len] == '\0' || path[base_len] == '/';
}

int eio__origin_listed(const char *list, const char *origin, size_t olen)
{
    const char *p = list;

    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        const char *a = p, *b = p + n;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if ((size_t)(b - a) == olen && memcmp(a, origin, olen) == 0)
            return 1;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return 0;
}

/* Node refuses an Origin holding characters an HTTP header may not carry. */
int eio__origin_chars_ok(const char *origin)
{
    for (const unsigned char *p = (const unsigned char *)origin; p != NULL && *p; p++)
        if (*p != '\t' && (*p < 0x20 || *p == 0x7f))
            return 0;
    return 1;
}
