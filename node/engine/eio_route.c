/* eio_route.c -- where an HTTP request goes: outside the engine's path to the
 * application's on_http (404 without one); on the path to the CORS preflight, the
 * polling handshake, or the session's GET or POST.
 */
#include "eio_lws.h"

#include <string.h>

#include "base_alloc.h"

/* Method names by LWSHUMETH_* index. */
static const char *const eio__methods[] = {"GET",    "POST",    "OPTIONS", "PUT", "PATCH",
                                           "DELETE", "CONNECT", "HEAD",    "GET"};

/* A request outside the engine's path: the application's on_http answers, or 404. */
static int eio__plain_http(eio_server_t *srv, struct lws *wsi, const char *path)
{
    eio_req_t r;
    eio_http_req_t req;
    eio_http_res_t res = {0};
    char *query;
    int rc;

    eio__req_parse(wsi, &r);
    query = eio__req_query(wsi, NULL);
    req.method = r.method >= 0 && r.method < (int)(sizeof(eio__methods) / sizeof(eio__methods[0]))
                     ? eio__methods[r.method]
                     : "GET";
    req.path = path;
    req.query = query;
    if (srv->cb.on_http != NULL)
        srv->cb.on_http(&req, &res, srv->cb.http_ud);
    if (res.status == 0)
        rc = eio__reply(srv, wsi, 404, "text/plain", "Not Found", 9, 0);
    else
        rc = eio__reply(srv, wsi, (unsigned)res.status,
                        res.content_type != NULL ? res.content_type : "text/plain", res.body,
                        res.body != NULL ? res.body_len : 0, 0);
    base_free(res.body);
    base_free(query);
    return rc;
}

int eio__on_http(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, const char *path)
{
    eio_session_t *s;
    eio_req_t r;
    int err, rc;

    if (c == NULL)
        return -1;
    if (!eio__path_match(srv->path, srv->path_len, path))
        return eio__plain_http(srv, wsi, path);
    eio__req_parse(wsi, &r);
    if (r.method == LWSHUMETH_OPTIONS && srv->cors != NULL) {
        rc = eio__reply(srv, wsi, 204, NULL, NULL, 0, EIO_R_CORS | EIO_R_PREFLIGHT);
    } else if ((err = eio__verify(srv, wsi, &r, 0, &s)) >= 0) {
        rc = eio__reply_error(srv, wsi, err);
    } else if (s == NULL) {
        if (srv->phase != EIO_SRV_RUNNING) {
            rc = eio__reply(srv, wsi, 503, "text/plain", "Server shutting down", 20, EIO_R_CORS);
        } else {
            eio_handshake_t hs;
            eio__handshake_facts(wsi, path, &hs);
            lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
            eio__session_open(srv, EIO_TRANSPORT_POLLING, &hs, wsi, c);
            rc = 0;
        }
    } else if (r.method == LWSHUMETH_GET) {
        rc = eio__handle_get(srv, wsi, c, s);
    } else if (r.method == LWSHUMETH_POST) {
        rc = eio__handle_post(srv, wsi, c, s);
    } else {
        rc = eio__reply(srv, wsi, 500, NULL, NULL, 0, EIO_R_CORS);
    }
    return rc;
}
