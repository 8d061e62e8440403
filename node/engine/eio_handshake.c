/* eio_handshake.c -- reading a request out of libwebsockets: its Engine.IO arguments,
 * the reference's verify(), and the facts a new session keeps about its handshake.
 *
 * lws hands the query over already decoded ('+' as space, %xx resolved) and split into
 * fragments at '&' and ';'; the rules applied to those fragments are in eio_req.c,
 * which needs no connection and is unit-tested on its own.
 */
#include "eio_lws.h"

#include <string.h>

#include "base_alloc.h"

/* Handshake headers kept on the session (socket.handshake.headers). */
static const enum lws_token_indexes eio__kept_headers[] = {
    WSI_TOKEN_HOST,
    WSI_TOKEN_ORIGIN,
    WSI_TOKEN_HTTP_USER_AGENT,
    WSI_TOKEN_HTTP_COOKIE,
    WSI_TOKEN_HTTP_REFERER,
    WSI_TOKEN_HTTP_ACCEPT,
    WSI_TOKEN_HTTP_ACCEPT_LANGUAGE,
    WSI_TOKEN_HTTP_ACCEPT_ENCODING,
    WSI_TOKEN_HTTP_AUTHORIZATION,
    WSI_TOKEN_X_FORWARDED_FOR,
    WSI_TOKEN_HTTP_X_REAL_IP,
};
static const char *const eio__kept_custom[] = {"x-forwarded-proto:", "x-forwarded-host:"};

/* Hands each query fragment of wsi, as lws decoded it, to whichever of r (the
 * arguments), q (the query string) and pairs (the decoded query) is not NULL. */
static void eio__walk_query(struct lws *wsi, eio_req_t *r, eio_buf_t *q, eio_query_t *pairs)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    char *frag;

    if (total <= 0)
        return;
    frag = base_malloc((size_t)total + 1);
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);

        if (n < 0)
            break;
        if (r != NULL)
            eio__req_arg(r, frag, (size_t)n);
        if (q != NULL)
            eio__query_append(q, frag, (size_t)n);
        if (pairs != NULL)
            eio__query_add(pairs, frag, (size_t)n);
    }
    base_free(frag);
}

void eio__req_parse(struct lws *wsi, eio_req_t *r)
{
    char *uri;
    int ulen;

    memset(r, 0, sizeof(*r));
    r->method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    eio__walk_query(wsi, r, NULL, NULL);
}

char *eio__req_query(struct lws *wsi, eio_query_t *pairs)
{
    eio_buf_t q = {0};

    eio__walk_query(wsi, NULL, &q, pairs);
    return q.p != NULL ? q.p : base_strdup("");
}

/* Copies a header (all its fragments) into a fresh string, NULL when absent. */
static char *eio__hdr_dup(struct lws *wsi, enum lws_token_indexes tok)
{
    int n = lws_hdr_total_length(wsi, tok);
    char *v;

    if (n <= 0)
        return NULL;
    v = base_malloc((size_t)n + 1);
    if (lws_hdr_copy(wsi, v, n + 1, tok) < 0) {
        base_free(v);
        return NULL;
    }
    return v;
}

void eio__handshake_facts(struct lws *wsi, const char *path, eio_handshake_t *hs)
{
    char peer[128];
    eio_buf_t url = {0};
    cJSON *h = cJSON_CreateObject();

    memset(hs, 0, sizeof(*hs));
    peer[0] = '\0';
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    peer[sizeof(peer) - 1] = '\0';
    hs->address = base_strdup(peer);

    /* the query is decoded here, once: the session hands out the pairs, and keeps the
     * request URL (the query re-encoded after its '?') only for eio_session_url and
     * eio_session_query, trimmed to its length: it lives as long as the session */
    char *query = eio__req_query(wsi, &hs->pairs);
    eio__buf_encode(&url, path, strlen(path), "/,:@!$'()*+;=");
    if (query[0]) {
        eio__buf_put(&url, "?", 1);
        eio__buf_put(&url, query, strlen(query));
    }
    base_free(query);
    if (url.p == NULL)
        eio__buf_put(&url, "", 0);
    hs->url = base_realloc(url.p, url.len + 1);

    for (size_t i = 0; i < sizeof(eio__kept_headers) / sizeof(eio__kept_headers[0]); i++) {
        const char *name = (const char *)lws_token_to_string(eio__kept_headers[i]);
        char *v = eio__hdr_dup(wsi, eio__kept_headers[i]);
        char key[64];
        size_t kl;

        if (v == NULL || name == NULL) {
            base_free(v);
            continue;
        }
        kl = strlen(name);
        if (kl > 0 && name[kl - 1] == ':')
            kl--;
        if (kl >= sizeof(key))
            kl = sizeof(key) - 1;
        memcpy(key, name, kl);
        key[kl] = '\0';
        cJSON_AddStringToObject(h, key, v);
        base_free(v);
    }
    for (size_t i = 0; i < sizeof(eio__kept_custom) / sizeof(eio__kept_custom[0]); i++) {
        const char *name = eio__kept_custom[i];
        int nl = (int)strlen(name);
        int vl = lws_hdr_custom_length(wsi, name, nl);
        char key[64];

        if (vl < 0)
            continue;
        char *v = base_malloc((size_t)vl + 1);
        if (lws_hdr_custom_copy(wsi, v, vl + 1, name, nl) >= 0) {
            memcpy(key, name, (size_t)nl - 1);
            key[nl - 1] = '\0';
            cJSON_AddStringToObject(h, key, v);
        }
        base_free(v);
    }
    hs->headers = h;
}

static int eio__origin_ok(struct lws *wsi)
{
    char *o = eio__hdr_dup(wsi, WSI_TOKEN_ORIGIN);
    int ok = eio__origin_chars_ok(o);

    base_free(o);
    return ok;
}

int eio__verify(eio_server_t *srv, struct lws *wsi, const eio_req_t *r, int upgrade,
                eio_session_t **sp)
{
    *sp = NULL;
    if (r->transport == 0 || !(srv->cfg.transports & r->transport))
        return EIO_ERR_TRANSPORT;
    if (!eio__origin_ok(wsi))
        return EIO_ERR_BAD;
    if (r->has_sid) {
        eio_session_t *s = eio__session_find(srv, r->sid);
        if (s == NULL)
            return EIO_ERR_SID;
        if (!upgrade && s->transport != r->transport)
            return EIO_ERR_BAD;
        *sp = s;
    } else {
        if (r->method != LWSHUMETH_GET)
            return EIO_ERR_METHOD;
        if (r->transport == EIO_TRANSPORT_WEBSOCKET && !upgrade)
            return EIO_ERR_BAD;
    }
    if (!r->eio_ok)
        return EIO_ERR_VERSION;
    return -1;
}
