/* rds_req.c -- cluster requests between nodes (spec redis-wire.md §1.2): what this
 * node asks the others, and what it answers them.
 *
 * Asking follows the Node adapter so mixed clusters agree on the count of answers:
 * PUBSUB NUMSUB K-request#N# first (every node of the namespace, ourselves included,
 * subscribes that channel), then PUBLISH the request and wait for NUMSUB - 1 answers
 * or the request timeout, whichever comes first. A node that died since the NUMSUB
 * therefore costs at most the timeout, never a stall (redis-adapter#295).
 *
 * Answering: every request type 0..7 of the Node adapter and of the emitter, in JSON
 * or msgpack. Our own requests come back to us (we subscribe the channel we publish
 * on) and are dropped by uid; emitter requests have no uid and are always applied.
 * Immediate answers go to the requester's own channel K-response#N#<uid>#, which Node
 * nodes subscribe too; answers given later (server-side emit acks, broadcast acks) go
 * to K-response#N#, as Node sends them, because by then only the request id is kept.
 *
 * A request's memory is freed once nothing can reach it: its timer closed and its
 * NUMSUB reply arrived (both are promised by libuv and rds_conn), so the order in
 * which a request ends, times out or is cancelled does not matter.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base_alloc.h"
#include "rds_private.h"
#include "sockeye_common.h"

typedef enum rds_rq_kind {
    RDS_RQ_COUNT, /* serverCount: NUMSUB only */
    RDS_RQ_FETCH, /* REMOTE_FETCH (5) */
    RDS_RQ_ROOMS, /* ALL_ROOMS (1) */
    RDS_RQ_EMIT,  /* SERVER_SIDE_EMIT (6) with ack */
    RDS_RQ_BCAST, /* BROADCAST (7) with acks */
} rds_rq_kind_t;

/* One request of ours. */
typedef struct rds_rreq {
    rds_node_t *r;
    rds_rnsp_t *a; /* NULL once ended */
    rds_rq_kind_t kind;
    char id[40];
    sio_bin_t payload; /* published once NUMSUB answered */
    uint64_t timeout_ms;
    size_t expected; /* answers awaited from other nodes */
    size_t got;
    cJSON *list;
    adp_list_cb list_cb;
    adp_count_cb count_cb;
    void *ud;
    adp_ack_events_t ev;
    size_t clients; /* broadcast: clients the other nodes reached so far */
    size_t acks;
    uv_timer_t timer;
    int refs; /* timer not closed + NUMSUB reply awaited */
    int done;
    int in_map;
} rds_rreq_t;

/* ---------------------------------------------------------------- lifetime */

static void rds__rq_unref(rds_rreq_t *q)
{
    if (--q->refs > 0)
        return;
    base_free(q->payload.data);
    cJSON_Delete(q->list);
    base_free(q);
}

static void rds__rq_timer_closed(uv_handle_t *h)
{
    rds__rq_unref(h->data);
}

/* Ends q once: out of the table, its owner told, its timer closed. */
static void rds__rq_finish(rds_rreq_t *q, int err)
{
    if (q->done)
        return;
    q->done = 1;
    if (q->in_map) {
        base_map_del(&q->r->requests, q->id);
        q->in_map = 0;
    }
    q->a = NULL;
    if (err == SIO_ETIMEDOUT)
        q->r->stats.request_timeouts++;
    switch (q->kind) {
    case RDS_RQ_COUNT:
        q->count_cb(q->ud, err, 1);
        break;
    case RDS_RQ_FETCH:
    case RDS_RQ_ROOMS:
    case RDS_RQ_EMIT: {
        cJSON *list = q->list;
        q->list = NULL;
        q->list_cb(q->ud, err, list);
        break;
    }
    case RDS_RQ_BCAST:
        if (q->ev.on_end != NULL)
            q->ev.on_end(q->ev.ud);
        break;
    }
    uv_timer_stop(&q->timer);
    uv_close((uv_handle_t *)&q->timer, rds__rq_timer_closed);
}

static void rds__rq_timeout(uv_timer_t *t)
{
    rds__rq_finish(t->data, SIO_ETIMEDOUT);
}

/* Ends every request of a (all when a is NULL) with err: each owner hears once, the
 * memory goes when the NUMSUB replies and timer closes come back. */
void rds__req_cancel(rds_node_t *r, rds_rnsp_t *a, int err)
{
    base_map_iter_t it = {0};
    void *v;
    rds_rreq_t **all;
    size_t n = 0, cap = base_map_size(&r->requests);

    if (cap == 0)
        return;
    /* Collected first: the callbacks may start new requests. */
    all = base_malloc(cap * sizeof(*all));
    while (n < cap && base_map_next(&r->requests, &it, NULL, &v)) {
        rds_rreq_t *q = v;
        if (a == NULL || q->a == a) {
            q->refs++;
            all[n++] = q;
        }
    }
    for (size_t i = 0; i < n; i++) {
        rds__rq_finish(all[i], err);
        rds__rq_unref(all[i]);
    }
    base_free(all);
}

static rds_rreq_t *rds__rq_new(rds_rnsp_t *a, rds_rq_kind_t kind)
{
    rds_node_t *r = a->r;
    rds_rreq_t *q = base_calloc(1, sizeof(*q));

    q->r = r;
    q->a = a;
    q->kind = kind;
    q->timeout_ms = r->cfg.request_timeout_ms;
    snprintf(q->id, sizeof(q->id), "%s-%" PRIu64, r->uid, ++r->next_req);
    uv_timer_init(r->loop, &q->timer);
    q->timer.data = q;
    q->refs = 1;
    return q;
}

/* A request that never started: nothing was told, only the timer to close. */
static void rds__rq_abort(rds_rreq_t *q)
{
    q->done = 1;
    uv_close((uv_handle_t *)&q->timer, rds__rq_timer_closed);
}

/* ---------------------------------------------------------------- asking */

static void rds__rq_check_bcast(rds_rreq_t *q)
{
    if (q->got >= q->expected && q->acks >= q->clients)
        rds__rq_finish(q, SIO_OK);
}

static void rds__rq_on_numsub(rds_conn_t *c, int err, redisReply *reply, void *ud)
{
    rds_rreq_t *q = ud;
    size_t n = 1;

    if (q->done || q->a == NULL) {
        rds__rq_unref(q);
        return;
    }
    if (err == SIO_OK && (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
                          reply->elements < 2 || reply->element[1]->type != REDIS_REPLY_INTEGER))
        err = SIO_EREDIS;
    if (err == SIO_OK && reply->element[1]->integer > 1)
        n = (size_t)reply->element[1]->integer;
    if (err != SIO_OK) {
        if (err != SIO_ETIMEDOUT && err != SIO_ECLOSED)
            err = SIO_EREDIS;
        if (q->kind == RDS_RQ_BCAST && q->ev.on_servers != NULL)
            q->ev.on_servers(q->ev.ud, err, 1);
        rds__rq_finish(q, err);
        rds__rq_unref(q);
        return;
    }
    if (q->kind == RDS_RQ_COUNT) {
        base_map_del(&q->r->requests, q->id);
        q->in_map = 0;
        q->done = 1;
        uv_close((uv_handle_t *)&q->timer, rds__rq_timer_closed);
        q->count_cb(q->ud, SIO_OK, n);
        rds__rq_unref(q);
        return;
    }
    if (q->kind == RDS_RQ_BCAST && q->ev.on_servers != NULL)
        q->ev.on_servers(q->ev.ud, SIO_OK, n);
    q->expected = n - 1; /* every node but us */
    if (q->expected == 0 || q->done) {
        rds__rq_finish(q, SIO_OK);
        rds__rq_unref(q);
        return;
    }
    if (rds__publish(q->r, q->a->ch_request, q->payload.data, q->payload.len) != SIO_OK) {
        rds__rq_finish(q, SIO_EREDIS);
    } else {
        uv_timer_start(&q->timer, rds__rq_timeout, q->timeout_ms, 0);
    }
    rds__rq_unref(q);
}

/* Asks NUMSUB, then publishes q->payload (rds__rq_on_numsub). SIO_EREDIS when the
 * command connection refuses: q is released, no callback will run. */
static int rds__rq_send(rds_rreq_t *q)
{
    const char *argv[3] = {"PUBSUB", "NUMSUB", q->a->ch_request};

    if (q->r->closed) {
        rds__rq_abort(q);
        return SIO_EREDIS;
    }
    q->refs++;
    if (rds_conn_command_argv(q->r->cmd, rds__rq_on_numsub, q, 3, argv, NULL) != SIO_OK) {
        q->refs--;
        rds__rq_abort(q);
        return SIO_EREDIS;
    }
    /* In the table from now on, so a close or the adapter's end can cancel it. */
    base_map_put(&q->r->requests, q->id, q);
    q->in_map = 1;
    return SIO_OK;
}

/* serverCount: PUBSUB NUMSUB of the request channel, as the Node adapter counts. */
int rds__req_server_count(adp_adapter_t *base, adp_count_cb cb, void *ud)
{
    rds_rreq_t *q;

    if (cb == NULL)
        return SIO_EINVAL;
    q = rds__rq_new((rds_rnsp_t *)base, RDS_RQ_COUNT);
    q->count_cb = cb;
    q->ud = ud;
    return rds__rq_send(q);
}

/* Sends q, whose answers are collected into one list for cb. enc_rc is the result of
 * encoding q's payload: on failure q is dropped and SIO_EINVAL returned (cb never runs). */
static int rds__rq_send_list(rds_rreq_t *q, int enc_rc, adp_list_cb cb, void *ud)
{
    if (enc_rc != SIO_OK) {
        rds__rq_abort(q);
        return SIO_EINVAL;
    }
    q->list = cJSON_CreateArray();
    q->list_cb = cb;
    q->ud = ud;
    return rds__rq_send(q);
}

/* fetchSockets on the other nodes (REMOTE_FETCH): their socket objects, concatenated. */
int rds__req_remote_fetch(adp_adapter_t *base, const adp_opts_t *opts, adp_list_cb cb, void *ud)
{
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    rds_rreq_t *q;

    if (cb == NULL || opts == NULL)
        return SIO_EINVAL;
    q = rds__rq_new(a, RDS_RQ_FETCH);
    return rds__rq_send_list(q, rds_encode_fetch_req(a->r->uid, q->id, opts, &q->payload), cb, ud);
}

/* allRooms on the other nodes (ALL_ROOMS): their room names, concatenated. */
int rds__req_remote_all_rooms(adp_adapter_t *base, adp_list_cb cb, void *ud)
{
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    rds_rreq_t *q;

    if (cb == NULL)
        return SIO_EINVAL;
    q = rds__rq_new(a, RDS_RQ_ROOMS);
    return rds__rq_send_list(q, rds_encode_all_rooms_req(a->r->uid, q->id, &q->payload), cb, ud);
}

/* serverSideEmit (SERVER_SIDE_EMIT): published once; with cb, one answer per other
 * node is awaited. SIO_EINVAL when args is not [event, ...]. */
int rds__req_server_emit(adp_adapter_t *base, const cJSON *args, adp_list_cb cb, void *ud)
{
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    sio_bin_t buf = {0};
    rds_rreq_t *q;

    if (!cJSON_IsArray(args))
        return SIO_EINVAL;
    if (cb == NULL) {
        if (rds_encode_server_emit_req(a->r->uid, NULL, args, &buf) != SIO_OK)
            return SIO_EINVAL;
        int rc = a->r->closed ? SIO_EREDIS : rds__publish(a->r, a->ch_request, buf.data, buf.len);
        base_free(buf.data);
        return rc;
    }
    q = rds__rq_new(a, RDS_RQ_EMIT);
    return rds__rq_send_list(q, rds_encode_server_emit_req(a->r->uid, q->id, args, &q->payload), cb,
                             ud);
}

/* Broadcast with acks to the other nodes (BROADCAST, msgpack): their client counts
 * and acks go to ev until every node reported and every counted client answered, or
 * timeout_ms (0 = the request timeout), which is also what the others are told. */
int rds__req_broadcast_ack(adp_adapter_t *base, const cd_sio_packet_t *pkt, const adp_opts_t *opts,
                           uint64_t timeout_ms, const adp_ack_events_t *ev)
{
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    rds_rreq_t *q;
    int rc;

    if (pkt == NULL || opts == NULL || ev == NULL)
        return SIO_EINVAL;
    q = rds__rq_new(a, RDS_RQ_BCAST);
    if (timeout_ms > 0)
        q->timeout_ms = timeout_ms;
    rc = rds_encode_broadcast_ack_req(a->r->uid, q->id, pkt, opts, (int64_t)q->timeout_ms,
                                      &q->payload);
    if (rc != SIO_OK) {
        rds__rq_abort(q);
        return rc;
    }
    q->ev = *ev;
    rc = rds__rq_send(q);
    if (rc != SIO_OK)
        rds__publish_failed(a->r, rc);
    return rc;
}

/* socketsJoin / socketsLeave / disconnectSockets for the other nodes: fire and forget,
 * as in Node (no answer is defined for the opts form). */
int rds__req_remote_apply(adp_adapter_t *base, adp_apply_t what, const adp_opts_t *opts,
                          const char *const *rooms, size_t n_rooms, int close)
{
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    sio_bin_t buf = {0};
    int rc;

    if (opts == NULL)
        return SIO_EINVAL;
    if (what == ADP_APPLY_DISCONNECT)
        rc = rds_encode_disconnect_req(a->r->uid, opts, close, &buf);
    else
        rc = rds_encode_sockets_rooms_req((int)what, a->r->uid, opts, rooms, n_rooms, &buf);
    if (rc != SIO_OK)
        return rc;
    rc = a->r->closed ? SIO_EREDIS : rds__publish(a->r, a->ch_request, buf.data, buf.len);
    base_free(buf.data);
    return rc;
}

/* ---------------------------------------------------------------- answers we get */

static void rds__rq_on_response(rds_rnsp_t *a, const rds_msg_t *m)
{
    rds_rreq_t *q = m->request_id != NULL ? base_map_get(&a->r->requests, m->request_id) : NULL;

    if (q == NULL || q->a != a || q->done)
        return; /* late, foreign, or for another namespace */
    switch (q->kind) {
    case RDS_RQ_FETCH:
        for (cJSON *s = m->sockets != NULL ? m->sockets->child : NULL; s != NULL; s = s->next)
            cJSON_AddItemToArray(q->list, cJSON_Duplicate(s, 1));
        q->got++;
        break;
    case RDS_RQ_ROOMS:
        for (size_t i = 0; i < m->n_rooms; i++)
            cJSON_AddItemToArray(q->list, cJSON_CreateString(m->rooms[i]));
        q->got++;
        break;
    case RDS_RQ_EMIT:
        if (m->type != RDS_REQ_SERVER_SIDE_EMIT && m->type != RDS_TYPE_NONE)
            return;
        cJSON_AddItemToArray(q->list,
                             m->data != NULL ? cJSON_Duplicate(m->data, 1) : cJSON_CreateNull());
        q->got++;
        break;
    case RDS_RQ_BCAST:
        if (m->type == RDS_REQ_BROADCAST_CLIENT_COUNT && m->client_count >= 0) {
            q->got++;
            q->clients += (size_t)m->client_count;
            if (q->ev.on_count != NULL)
                q->ev.on_count(q->ev.ud, (size_t)m->client_count);
        } else if (m->type == RDS_REQ_BROADCAST_ACK) {
            q->acks++;
            if (q->ev.on_ack != NULL)
                q->ev.on_ack(q->ev.ud, m->data, m->attach, m->n_attach);
        } else {
            return;
        }
        if (!q->done)
            rds__rq_check_bcast(q);
        return;
    default:
        return;
    }
    if (q->got >= q->expected)
        rds__rq_finish(q, SIO_OK);
}

/* ---------------------------------------------------------------- answering */

/* K-response#N#<uid># when the requester gave its uid, else K-response#N#. */
static void rds__respond(rds_rnsp_t *a, const char *uid, const sio_bin_t *buf)
{
    char *ch = NULL;

    if (uid != NULL && uid[0] != '\0' && strcmp(uid, "emitter") != 0)
        ch = rds_channel(RDS_CHAN_RESPONSE_UID, a->r->channel_prefix, a->base.nsp, uid);
    rds__publish(a->r, ch != NULL ? ch : a->ch_response, buf->data, buf->len);
    base_free(ch);
}

typedef struct rds_sids {
    const char **v;
    size_t n, cap;
} rds_sids_t;

static void rds__collect_sid(void *ud, const char *sid, void *sock)
{
    rds_sids_t *c = ud;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = base_realloc(c->v, c->cap * sizeof(*c->v));
    }
    c->v[c->n++] = sid;
}

static void rds__answer_sockets(rds_rnsp_t *a, const rds_msg_t *m)
{
    rds_sids_t c = {0};
    sio_bin_t buf = {0};

    adp_rooms_each(&a->base.rooms, (const char *const *)m->rooms, m->n_rooms, NULL, 0,
                   rds__collect_sid, &c);
    if (rds_encode_sockets_res(m->request_id, c.v, c.n, &buf) == SIO_OK)
        rds__respond(a, m->uid, &buf);
    base_free(buf.data);
    base_free(c.v);
}

static void rds__answer_all_rooms(rds_rnsp_t *a, const rds_msg_t *m)
{
    const base_map_t *rooms = &a->base.rooms.rooms;
    size_t n = base_map_size(rooms), i = 0;
    const char **v = base_malloc((n ? n : 1) * sizeof(*v));
    base_map_iter_t it = {0};
    const char *k;
    sio_bin_t buf = {0};

    while (i < n && base_map_next(rooms, &it, &k, NULL))
        v[i++] = k;
    if (rds_encode_all_rooms_res(m->request_id, v, i, &buf) == SIO_OK)
        rds__respond(a, m->uid, &buf);
    base_free(buf.data);
    base_free(v);
}

/* Join/leave/disconnect, in the opts form or the legacy {sid, room} form (answered
 * {requestId} when the socket is here, as Node does). */
static void rds__answer_apply(rds_rnsp_t *a, const rds_msg_t *m)
{
    const adp_host_t *h = &a->base.host;
    adp_apply_t what = (adp_apply_t)m->type;
    adp_opts_t view;

    if (h->apply == NULL)
        return;
    if (m->has_opts) {
        rds_opts_view(&m->opts, &view);
        h->apply(h->ud, what, &view, (const char *const *)m->rooms, m->n_rooms, m->close);
        return;
    }
    if (m->sid == NULL || !adp_rooms_has_room(&a->base.rooms, m->sid))
        return;
    const char *target[1] = {m->sid};
    const char *room[1] = {m->room};
    adp_opts_t one = {.rooms = target, .n_rooms = 1};
    h->apply(h->ud, what, &one, room, m->room != NULL ? 1 : 0, m->close);
    if (m->request_id != NULL) {
        sio_bin_t buf = {0};
        if (rds_encode_legacy_res(m->request_id, &buf) == SIO_OK)
            rds__respond(a, m->uid, &buf);
        base_free(buf.data);
    }
}

static void rds__answer_fetch(rds_rnsp_t *a, const rds_msg_t *m)
{
    const adp_host_t *h = &a->base.host;
    adp_opts_t view;
    sio_bin_t buf = {0};

    rds_opts_view(&m->opts, &view);
    cJSON *sockets = h->fetch != NULL ? h->fetch(h->ud, &view) : cJSON_CreateArray();
    if (rds_encode_fetch_res(m->request_id, sockets, &buf) == SIO_OK)
        rds__respond(a, m->uid, &buf);
    base_free(buf.data);
    cJSON_Delete(sockets);
}

static void rds__answer_broadcast(rds_rnsp_t *a, const rds_msg_t *m)
{
    const adp_host_t *h = &a->base.host;
    adp_opts_t view;
    sio_bin_t buf = {0};
    size_t n = 0;
    uint64_t timeout =
        m->opts.timeout_ms >= 0 ? (uint64_t)m->opts.timeout_ms : a->r->cfg.request_timeout_ms;

    rds_opts_view(&m->opts, &view);
    view.flags &= ~(unsigned)ADP_LOCAL;
    if (h->deliver_ack != NULL)
        n = h->deliver_ack(h->ud, m->packet, &view, timeout, m->request_id);
    /* Published before any ack can be (they need a loop turn): the requester learns
     * how many to wait for first. */
    if (rds_encode_client_count_res(m->request_id, n, &buf) == SIO_OK)
        rds__respond(a, m->uid, &buf);
    base_free(buf.data);
}

static void rds__rq_on_request(rds_rnsp_t *a, const rds_msg_t *m)
{
    rds_node_t *r = a->r;
    const adp_host_t *h = &a->base.host;

    /* Ours: we applied or answered locally already. */
    if (m->uid != NULL && strcmp(m->uid, r->uid) == 0)
        return;
    switch (m->type) {
    case RDS_REQ_SOCKETS:
        rds__answer_sockets(a, m);
        break;
    case RDS_REQ_ALL_ROOMS:
        rds__answer_all_rooms(a, m);
        break;
    case RDS_REQ_REMOTE_JOIN:
    case RDS_REQ_REMOTE_LEAVE:
    case RDS_REQ_REMOTE_DISCONNECT:
        rds__answer_apply(a, m);
        break;
    case RDS_REQ_REMOTE_FETCH:
        rds__answer_fetch(a, m);
        break;
    case RDS_REQ_SERVER_SIDE_EMIT:
        if (h->server_event != NULL)
            h->server_event(h->ud, m->data, m->request_id);
        break;
    case RDS_REQ_BROADCAST:
        rds__answer_broadcast(a, m);
        break;
    default:
        break;
    }
}

/* Subscriber callback of the request and response channels of one namespace. Bad
 * payloads are dropped (logged at debug): a broken peer must not stop the others. */
void rds__req_on_message(rds_conn_t *c, const rds_message_t *msg, void *ud)
{
    rds_rnsp_t *a = ud;
    rds_msg_t m;
    int rc;

    if (msg->kind != RDS_MESSAGE || msg->channel == NULL)
        return;
    int is_request = msg->channel_len == strlen(a->ch_request) &&
                     memcmp(msg->channel, a->ch_request, msg->channel_len) == 0;
    if (is_request)
        rc = rds_decode_request(msg->payload, msg->payload_len, &m);
    else
        rc = rds_decode_response(msg->payload, msg->payload_len, &m);
    if (rc != SIO_OK) {
        rds__log(a->r, RDS_LOG_DEBUG, "redis: malformed %s on %.*s ignored (%s)",
                 is_request ? "request" : "response", (int)msg->channel_len, msg->channel,
                 sio_strerror(rc));
        return;
    }
    if (is_request)
        rds__rq_on_request(a, &m);
    else
        rds__rq_on_response(a, &m);
    rds_msg_free(&m);
}

/* ---------------------------------------------------------------- deferred answers */

int rds__req_server_emit_reply(adp_adapter_t *base, const char *request_id, const cJSON *arg)
{
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    sio_bin_t buf = {0};
    int rc;

    if (request_id == NULL)
        return SIO_EINVAL;
    rc = rds_encode_server_emit_res(request_id, arg, &buf);
    if (rc == SIO_OK)
        rc = a->r->closed ? SIO_EREDIS : rds__publish(a->r, a->ch_response, buf.data, buf.len);
    base_free(buf.data);
    return rc;
}

/* One local client's ack to another node's broadcast (BROADCAST_ACK, msgpack). */
int rds__req_broadcast_ack_reply(adp_adapter_t *base, const char *request_id, const cJSON *arg,
                                 const sio_bin_t *bins, size_t n_bins)
{
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    sio_bin_t buf = {0};
    int rc;

    if (request_id == NULL)
        return SIO_EINVAL;
    rc = rds_encode_broadcast_ack_res(request_id, arg, bins, n_bins, &buf);
    if (rc == SIO_OK)
        rc = a->r->closed ? SIO_EREDIS : rds__publish(a->r, a->ch_response, buf.data, buf.len);
    base_free(buf.data);
    return rc;
}
