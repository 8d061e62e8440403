/* sio_cluster.c -- the cluster side of the protocol layer: the
 * cluster-wide calls of sockeye.h (fetch sockets, all rooms, server count,
 * server-side emit), and the adapter host callbacks through which other nodes act on
 * this node's sockets.
 *
 * Division of labour: this node's part of every operation is computed here, from
 * the namespace's own sockets and rooms index; the adapter only carries requests to
 * the other nodes and their answers back (adapter.h "Cluster requests"). Without
 * Redis the adapter has no such hooks and the local part is the whole answer, so
 * the same program runs unchanged on one node or many.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base_alloc.h"
#include "sio_private.h"

/* ---------------------------------------------------------------- describing a socket */

/* Node's handshake.time is `new Date().toString()`; ours is the same shape in UTC. */
static void sio__date_string(uint64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)", &tm);
}

static cJSON *sio__query_object(sio_socket_t *s)
{
    cJSON *q = cJSON_CreateObject();
    const char *k, *v;
    size_t it = 0;

    if (s->client == NULL || s->client->eio == NULL)
        return q;
    while (eio_session_query_next(s->client->eio, &it, &k, &v))
        cJSON_AddStringToObject(q, k, v);
    return q;
}

/* {id, handshake, rooms, data} with Node's handshake keys, so Node servers that fetch
 * our sockets build RemoteSockets from it unchanged. A new tree. */
cJSON *sio__socket_describe(sio_socket_t *s)
{
    cJSON *o = cJSON_CreateObject(), *hs = cJSON_CreateObject(), *rooms = cJSON_CreateArray();
    eio_session_t *e = s->client != NULL ? s->client->eio : NULL;
    const cJSON *headers = e != NULL ? eio_session_headers(e) : NULL;
    const char *stack[32];
    adp_session_t sess;
    char date[96];

    cJSON_AddStringToObject(o, "id", s->id);
    cJSON_AddItemToObject(hs, "headers",
                          headers != NULL ? cJSON_Duplicate(headers, 1) : cJSON_CreateObject());
    sio__date_string(s->issued, date, sizeof(date));
    cJSON_AddStringToObject(hs, "time", date);
    cJSON_AddStringToObject(hs, "address", sio_socket_address(s));
    cJSON_AddBoolToObject(hs, "xdomain",
                          headers != NULL && cJSON_GetObjectItemCaseSensitive(headers, "origin"));
    cJSON_AddFalseToObject(hs, "secure");
    cJSON_AddNumberToObject(hs, "issued", (double)s->issued);
    cJSON_AddStringToObject(hs, "url", sio_socket_url(s));
    cJSON_AddItemToObject(hs, "query", sio__query_object(s));
    cJSON_AddItemToObject(hs, "auth",
                          s->auth != NULL ? cJSON_Duplicate(s->auth, 1) : cJSON_CreateObject());
    cJSON_AddItemToObject(o, "handshake", hs);
    sio__socket_session(s, &sess, stack, 32);
    for (size_t i = 0; i < sess.n_rooms; i++)
        cJSON_AddItemToArray(rooms, cJSON_CreateString(sess.rooms[i]));
    sio__session_done(&sess, stack);
    cJSON_AddItemToObject(o, "rooms", rooms);
    cJSON_AddItemToObject(o, "data",
                          s->data != NULL ? cJSON_Duplicate(s->data, 1) : cJSON_CreateNull());
    return o;
}

/* ---------------------------------------------------------------- host callbacks */

static void sio__host_apply(void *ud, adp_apply_t what, const adp_opts_t *opts,
                            const char *const *rooms, size_t n_rooms, int close)
{
    sio__local_apply(ud, what, opts, rooms, n_rooms, close);
}

typedef struct sio_fetch_acc {
    cJSON *arr;
} sio_fetch_acc_t;

static void sio__describe_one(void *ud, const char *sid, void *sock)
{
    sio_fetch_acc_t *acc = ud;
    sio_socket_t *s = sock;

    if (s != NULL && s->state == SIO_SOCK_CONNECTED)
        cJSON_AddItemToArray(acc->arr, sio__socket_describe(s));
}

static cJSON *sio__local_fetch(sio_namespace_t *nsp, const adp_opts_t *opts)
{
    sio_fetch_acc_t acc = {cJSON_CreateArray()};

    adp_each(nsp->adapter, opts, sio__describe_one, &acc);
    return acc.arr;
}

static cJSON *sio__host_fetch(void *ud, const adp_opts_t *opts)
{
    return sio__local_fetch(ud, opts);
}

static void sio__host_server_event(void *ud, const cJSON *args, const char *request_id)
{
    sio_namespace_t *nsp = ud;
    const cJSON *name = cJSON_IsArray(args) ? args->child : NULL;
    char num[32];
    const char *ev;

    if (nsp->on_server_event == NULL || name == NULL)
        return; /* no listener: no answer, as a Node server without io.on(event) */
    if ((ev = sio__event_name(name, num)) == NULL)
        return;
    cJSON *rest = cJSON_CreateArray();
    for (const cJSON *it = name->next; it != NULL; it = it->next)
        cJSON_AddItemToArray(rest, cJSON_Duplicate(it, 1));
    sio_server_ack_t *ack = NULL;
    if (request_id != NULL) {
        ack = base_calloc(1, sizeof(*ack));
        ack->nsp = nsp;
        ack->request_id = base_strdup(request_id);
        base_list_push_back(&nsp->server_acks, &ack->node);
    }
    nsp->on_server_event(nsp, ev, rest, ack, nsp->server_event_ud);
    cJSON_Delete(rest);
}

static size_t sio__host_deliver_ack(void *ud, const cd_sio_packet_t *pkt, const adp_opts_t *opts,
                                    uint64_t timeout_ms, const char *request_id)
{
    sio_namespace_t *nsp = ud;
    cd_sio_packet_t *p = cd_sio_packet_dup(pkt);
    sio_bcast_t *bc;
    size_t n;

    if (p == NULL)
        return 0;
    bc = sio__bcast_new(nsp);
    bc->reply_id = base_strdup(request_id);
    bc->id = p->id = nsp->next_ack_id++;
    bc->refs++;
    sio_bcast_t *saved = nsp->cur_bcast;
    nsp->cur_bcast = bc;
    sio__deliver(nsp, p, opts);
    nsp->cur_bcast = saved;
    cd_sio_packet_free(p);
    n = bc->expected;
    sio__bcast_check(bc);
    sio__bcast_arm(bc, timeout_ms);
    sio__bcast_unref(bc);
    return n;
}

/* See sio_private.h. */
/* adp_host_t.each_session: the connected sockets with a session and their read ages. */
static void sio__host_each_session(
    void *ud, void (*fn)(void *fud, const char *pid, int has_age, uint64_t age_ms), void *fud)
{
    sio_namespace_t *nsp = ud;
    base_map_iter_t it = {0};
    void *v;

    while (base_map_next(&nsp->sockets, &it, NULL, &v)) {
        const sio_socket_t *s = v;
        uint64_t age = 0;
        int known;

        if (s->pid == NULL)
            continue;
        known = sio__socket_read_age(s, &age);
        fn(fud, s->pid, known, age);
    }
}

void sio__host_init(sio_namespace_t *nsp, adp_host_t *host)
{
    memset(host, 0, sizeof(*host));
    host->ud = nsp;
    host->deliver = sio__deliver;
    host->apply = sio__host_apply;
    host->fetch = sio__host_fetch;
    host->server_event = sio__host_server_event;
    host->deliver_ack = sio__host_deliver_ack;
    host->each_session = sio__host_each_session;
}

/* See sio_private.h. */
void sio__server_acks_free(sio_namespace_t *nsp)
{
    while (!base_list_empty(&nsp->server_acks)) {
        sio_server_ack_t *ack = BASE_CONTAINER_OF(nsp->server_acks.next, sio_server_ack_t, node);
        base_list_remove(&ack->node);
        base_free(ack->request_id);
        base_free(ack);
    }
}

/* ---------------------------------------------------------------- fetch sockets */

typedef struct sio_fetch_req {
    cJSON *sockets; /* this node's, then the others' appended */
    sio_fetch_cb cb;
    void *ud;
} sio_fetch_req_t;

static void sio__fetch_done(void *ud, int err, cJSON *list)
{
    sio_fetch_req_t *fr = ud;
    cJSON *it;

    while (list != NULL && (it = list->child) != NULL) {
        cJSON_DetachItemViaPointer(list, it);
        cJSON_AddItemToArray(fr->sockets, it);
    }
    cJSON_Delete(list);
    fr->cb(err, fr->sockets, fr->ud);
    cJSON_Delete(fr->sockets);
    base_free(fr);
}

/* See sockeye.h. SIO_EINVAL for a bad op or a NULL cb (op consumed anyway). */
int sio_fetch_sockets(sio_op_t *op, sio_fetch_cb cb, void *ud)
{
    adp_opts_t o = {0};

    if (op == NULL || op->bad || cb == NULL) {
        sio_op_free(op);
        return SIO_EINVAL;
    }
    sio_namespace_t *nsp = op->nsp;
    adp_adapter_t *a = nsp->adapter;
    o.rooms = (const char *const *)op->rooms;
    o.n_rooms = op->n_rooms;
    o.except = (const char *const *)op->except;
    o.n_except = op->n_except;
    sio_fetch_req_t *fr = base_malloc(sizeof(*fr));
    fr->sockets = sio__local_fetch(nsp, &o);
    fr->cb = cb;
    fr->ud = ud;
    int remote = !(op->flags & ADP_LOCAL) && a->vt->remote_fetch != NULL;
    int rc = remote ? a->vt->remote_fetch(a, &o, sio__fetch_done, fr) : SIO_OK;
    sio_op_free(op);
    if (!remote || rc != SIO_OK)
        sio__fetch_done(fr, rc == SIO_OK ? SIO_OK : SIO_EREDIS, NULL);
    return SIO_OK;
}

/* ---------------------------------------------------------------- all rooms */

typedef struct sio_rooms_req {
    base_map_t seen;
    cJSON *rooms;
    sio_rooms_cb cb;
    void *ud;
} sio_rooms_req_t;

static void sio__rooms_add(void *ud, const char *name)
{
    sio_rooms_req_t *rr = ud;

    if (base_map_has(&rr->seen, name))
        return;
    base_map_put(&rr->seen, name, rr);
    cJSON_AddItemToArray(rr->rooms, cJSON_CreateString(name));
}

static void sio__rooms_done(void *ud, int err, cJSON *list)
{
    sio_rooms_req_t *rr = ud;

    for (const cJSON *it = list != NULL ? list->child : NULL; it != NULL; it = it->next)
        if (cJSON_IsString(it))
            sio__rooms_add(rr, it->valuestring);
    cJSON_Delete(list);
    rr->cb(err, rr->rooms, rr->ud);
    cJSON_Delete(rr->rooms);
    base_map_clear(&rr->seen);
    base_free(rr);
}

/* See sockeye.h. SIO_EINVAL for a NULL nsp or cb. */
int sio_all_rooms(sio_namespace_t *nsp, sio_rooms_cb cb, void *ud)
{
    if (nsp == NULL || cb == NULL)
        return SIO_EINVAL;
    adp_adapter_t *a = nsp->adapter;
    sio_rooms_req_t *rr = base_malloc(sizeof(*rr));
    base_map_init(&rr->seen);
    rr->rooms = cJSON_CreateArray();
    rr->cb = cb;
    rr->ud = ud;
    adp_each_room(a, sio__rooms_add, rr);
    int rc = a->vt->remote_all_rooms != NULL ? a->vt->remote_all_rooms(a, sio__rooms_done, rr)
                                             : SIO_ENOTFOUND;
    if (rc != SIO_OK)
        sio__rooms_done(rr, rc == SIO_ENOTFOUND ? SIO_OK : SIO_EREDIS, NULL);
    return SIO_OK;
}

/* ---------------------------------------------------------------- server count */

typedef struct sio_count_req {
    sio_count_cb cb;
    void *ud;
} sio_count_req_t;

static void sio__count_done(void *ud, int err, size_t n)
{
    sio_count_req_t *cr = ud;
    cr->cb(err, n, cr->ud);
    base_free(cr);
}

/* See sockeye.h. SIO_EINVAL for a NULL nsp or cb. */
int sio_server_count(sio_namespace_t *nsp, sio_count_cb cb, void *ud)
{
    if (nsp == NULL || cb == NULL)
        return SIO_EINVAL;
    adp_adapter_t *a = nsp->adapter;
    if (a->vt->server_count == NULL) {
        cb(SIO_OK, 1, ud);
        return SIO_OK;
    }
    sio_count_req_t *cr = base_malloc(sizeof(*cr));
    cr->cb = cb;
    cr->ud = ud;
    if (a->vt->server_count(a, sio__count_done, cr) != SIO_OK)
        sio__count_done(cr, SIO_EREDIS, 1);
    return SIO_OK;
}

/* ---------------------------------------------------------------- server-side emit */

/* [event, args...]; NULL for a NULL or reserved name (args consumed either way). */
static cJSON *sio__server_args(const char *event, cJSON *args)
{
    if (event == NULL || cd_sio_event_reserved(event)) {
        cJSON_Delete(args);
        return NULL;
    }
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, cJSON_CreateString(event));
    sio__append_args(arr, args);
    return arr;
}

/* See sockeye.h. */
int sio_server_emit(sio_namespace_t *nsp, const char *event, cJSON *args)
{
    cJSON *arr;
    int rc = SIO_OK;

    if (nsp == NULL) {
        cJSON_Delete(args);
        return SIO_EINVAL;
    }
    arr = sio__server_args(event, args);
    if (arr == NULL)
        return SIO_EINVAL;
    if (nsp->adapter->vt->server_emit != NULL)
        rc = nsp->adapter->vt->server_emit(nsp->adapter, arr, NULL, NULL);
    cJSON_Delete(arr);
    return rc == SIO_OK ? SIO_OK : SIO_EREDIS;
}

typedef struct sio_emit_req {
    sio_server_emit_cb cb;
    void *ud;
} sio_emit_req_t;

static void sio__server_emit_done(void *ud, int err, cJSON *list)
{
    sio_emit_req_t *er = ud;
    cJSON *empty = NULL;

    if (list == NULL)
        list = empty = cJSON_CreateArray();
    er->cb(err, list, er->ud);
    if (empty == NULL)
        cJSON_Delete(list);
    else
        cJSON_Delete(empty);
    base_free(er);
}

/* See sockeye.h. */
int sio_server_emit_ack(sio_namespace_t *nsp, const char *event, cJSON *args, sio_server_emit_cb cb,
                        void *ud)
{
    cJSON *arr;

    if (nsp == NULL || cb == NULL) {
        cJSON_Delete(args);
        return SIO_EINVAL;
    }
    arr = sio__server_args(event, args);
    if (arr == NULL)
        return SIO_EINVAL;
    sio_emit_req_t *er = base_malloc(sizeof(*er));
    er->cb = cb;
    er->ud = ud;
    adp_adapter_t *a = nsp->adapter;
    int rc = a->vt->server_emit != NULL ? a->vt->server_emit(a, arr, sio__server_emit_done, er)
                                        : SIO_ENOTFOUND;
    cJSON_Delete(arr);
    if (rc != SIO_OK)
        sio__server_emit_done(er, rc == SIO_ENOTFOUND ? SIO_OK : SIO_EREDIS, NULL);
    return SIO_OK;
}

/* See sockeye.h. Replaces the previous handler; NULL nsp is ignored. */
void sio_nsp_on_server_event(sio_namespace_t *nsp, sio_server_event_cb cb, void *ud)
{
    if (nsp == NULL)
        return;
    nsp->on_server_event = cb;
    nsp->server_event_ud = ud;
}

/* See sockeye.h. SIO_EINVAL for a NULL ack. */
int sio_server_ack(sio_server_ack_t *ack, cJSON *arg)
{
    int rc = SIO_OK;

    if (ack == NULL) {
        cJSON_Delete(arg);
        return SIO_EINVAL;
    }
    adp_adapter_t *a = ack->nsp->adapter;
    if (a->vt->server_emit_reply != NULL)
        rc = a->vt->server_emit_reply(a, ack->request_id, arg);
    cJSON_Delete(arg);
    base_list_remove(&ack->node);
    base_free(ack->request_id);
    base_free(ack);
    return rc == SIO_OK ? SIO_OK : SIO_EREDIS;
}
