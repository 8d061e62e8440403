/* fuzz_eio_req.c -- node/engine/eio_req.c, the engine's request rules, against arbitrary
 * decoded query fragments, paths and origins (what lws hands over from a hostile request).
 *
 * Input: fragments separated by '\n' (a decoded fragment may hold '&', '=', '%', NUL);
 * the first one also serves as the engine path, the second as an origin allow-list, the
 * third as an origin. Properties checked besides "no crash, no leak, no UB":
 *   - every fragment with a key (text before the first '=' and the first NUL) is found
 *     by that key, and the first occurrence of a key wins;
 *   - the query string the session keeps decodes, with Node's querystring rules ('+' is a
 *     space, %XX a byte), back to exactly the fragments that went in.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base_alloc.h"
#include "eio_private.h"

#define MAX_FRAGS 64

static void check(int cond)
{
    if (!cond)
        abort();
}

static int hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) as Node's querystring does into out (as long as n); returns its length. */
static size_t qs_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && (hi = hex((unsigned char)s[i + 1])) >= 0 &&
                   (lo = hex((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *frag[MAX_FRAGS];
    size_t len[MAX_FRAGS], n = 0, start = 0;
    eio_req_t r;
    eio_buf_t q = {0};
    eio_query_t pairs = {0};

    for (size_t i = 0; i <= size && n < MAX_FRAGS; i++) {
        if (i == size || data[i] == '\n') {
            frag[n] = (const char *)data + start;
            len[n++] = i - start;
            start = i + 1;
        }
    }
    memset(&r, 0, sizeof(r));
    for (size_t i = 0; i < n; i++) {
        eio__req_arg(&r, frag[i], len[i]);
        eio__query_append(&q, frag[i], len[i]);
        eio__query_add(&pairs, frag[i], len[i]);
    }

    /* every key is found; the value is the first occurrence's (up to its first NUL) */
    for (size_t i = 0; i < n; i++) {
        const char *eq = memchr(frag[i], '=', len[i]);
        size_t klen = eq != NULL ? (size_t)(eq - frag[i]) : len[i];
        char *key = base_strndup(frag[i], klen);
        if (key[0] != '\0') {
            const char *v = eio__query_get(&pairs, key);
            check(v != NULL);
            int first = 1;
            for (size_t j = 0; j < i && first; j++) {
                const char *e2 = memchr(frag[j], '=', len[j]);
                size_t k2 = e2 != NULL ? (size_t)(e2 - frag[j]) : len[j];
                char *key2 = base_strndup(frag[j], k2);
                first = strcmp(key, key2) != 0;
                base_free(key2);
            }
            if (first) {
                char *want = eq != NULL ? base_strndup(eq + 1, len[i] - klen - 1) : base_strdup("");
                check(strcmp(v, want) == 0);
                base_free(want);
            }
        }
        base_free(key);
    }

    /* the kept string decodes back to the non-empty fragments, in order */
    size_t k = 0, pos = 0;
    while (q.p != NULL && pos <= q.len) {
        const char *amp = memchr(q.p + pos, '&', q.len - pos);
        size_t plen = amp != NULL ? (size_t)(amp - (q.p + pos)) : q.len - pos;
        char *dec = base_malloc(plen + 1);
        size_t dlen = qs_decode(q.p + pos, plen, dec);
        while (k < n && len[k] == 0)
            k++;
        check(k < n && dlen == len[k] && memcmp(dec, frag[k], dlen) == 0);
        base_free(dec);
        k++;
        if (amp == NULL)
            break;
        pos += plen + 1;
    }
    while (k < n && len[k] == 0)
        k++;
    check(k == n);

    /* paths and origins: a base path, an allow-list and an origin from the input */
    if (n >= 3) {
        char *base = base_strndup(frag[0], len[0]), *list = base_strndup(frag[1], len[1]);
        char *origin = base_strndup(frag[2], len[2]);
        size_t blen = strlen(base);
        if (blen > 0)
            (void)eio__path_match(base, blen, origin);
        (void)eio__origin_listed(list, origin, strlen(origin));
        (void)eio__origin_chars_ok(origin);
        base_free(base);
        base_free(list);
        base_free(origin);
    }
    base_free(q.p);
    eio__query_free(&pairs);
    return 0;
}
