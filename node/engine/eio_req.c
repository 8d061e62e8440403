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
    size_t klen = eq != NULL ? (size_t)(eq - frag) : n;
    char *key, *val;

    if (klen == 0)
        return;
    /* a NUL from %00 ends the string, as it did for the protocol's C strings */
    key = base_strndup(frag, klen);
    if (base_map_has(&q->idx, key)) {
        base_free(key);
        return;
    }
    val = eq != NULL ? base_strndup(eq + 1, n - klen - 1) : base_strdup("");
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 8;
        q->kv = base_realloc(q->kv, q->cap * 2 * sizeof(*q->kv));
    }
    q->kv[2 * q->n] = key;
    q->kv[2 * q->n + 1] = val;
    q->n++;
    base_map_put(&q->idx, key, val);
}

const char *eio__query_get(const eio_query_t *q, const char *key)
{
    return base_map_get(&q->idx, key);
}

void eio__query_free(eio_query_t *q)
{
    for (size_t i = 0; i < 2 * q->n; i++)
        base_free(q->kv[i]);
    base_free(q->kv);
    base_map_clear(&q->idx);
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
