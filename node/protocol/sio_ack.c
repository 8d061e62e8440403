/* sio_ack.c -- acknowledgements the server waits for: one request on one socket
 * (sio_pending_t) and the aggregation of a broadcast with acks (sio_bcast_t).
 *
 * Each server->client ack request ends exactly once -- answer, timeout, or SIO_ECLOSED
 * when the socket closes first -- because a silent drop is indistinguishable from a slow
 * client. A broadcast with acks completes when every server reported how many clients it
 * reached and each of those answered or went away, or at its timeout (sio_broadcast.c
 * explains the wire side).
 */
#include "base_alloc.h"
#include "sio_private.h"

static void sio__pending_closed(uv_handle_t *h)
{
    sio_pending_t *p = h->data;
    sio_server_t *srv = p->srv;
    base_free(p);
    sio__server_handle_gone(srv);
}

static void sio__pending_timeout(uv_timer_t *t)
{
    sio_pending_t *p = t->data;
    sio_socket_t *s = p->s;
    sio_ack_cb cb = p->cb;
    void *ud = p->ud;

    sio__socket_hold(s);
    sio__pending_free(p);
    if (cb != NULL)
        cb(s, SIO_ETIMEDOUT, NULL, NULL, 0, ud);
    sio__socket_release(s);
}

sio_pending_t *sio__pending_add(sio_socket_t *s, int64_t id, sio_ack_cb cb, void *ud,
                                sio_bcast_t *bc, unsigned timeout_ms)
{
    sio_pending_t *p = base_calloc(1, sizeof(*p));
    sio_server_t *srv = s->nsp->srv;

    p->srv = srv;
    p->s = s;
    p->id = id;
    p->cb = cb;
    p->ud = ud;
    p->bc = bc;
    base_list_push_back(&s->acks_out, &p->node);
    if (bc != NULL)
        base_list_push_back(&bc->entries, &p->bc_node);
    else
        base_list_init(&p->bc_node);
    if (timeout_ms > 0) {
        uv_timer_init(srv->loop, &p->timer);
        p->timer.data = p;
        p->timed = 1;
        srv->n_handles++;
        uv_timer_start(&p->timer, sio__pending_timeout, timeout_ms, 0);
    }
    return p;
}

void sio__pending_free(sio_pending_t *p)
{
    base_list_remove(&p->node);
    base_list_remove(&p->bc_node);
    p->bc = NULL;
    if (p->timed) {
        uv_timer_stop(&p->timer);
        uv_close((uv_handle_t *)&p->timer, sio__pending_closed);
    } else {
        base_free(p);
    }
}

sio_pending_t *sio__pending_find(sio_socket_t *s, int64_t id)
{
    base_list_t *li, *tmp;
    BASE_LIST_FOREACH_SAFE(li, tmp, &s->acks_out)
    {
        sio_pending_t *p = BASE_CONTAINER_OF(li, sio_pending_t, node);
        if (p->id == id)
            return p;
    }
    return NULL;
}

/* Every pending request of s ends now with SIO_ECLOSED (s == NULL in the callback:
 * the socket is on its way out). */
void sio__pending_fail_all(sio_socket_t *s)
{
    while (!base_list_empty(&s->acks_out)) {
        sio_pending_t *p = BASE_CONTAINER_OF(s->acks_out.next, sio_pending_t, node);
        sio_bcast_t *bc = p->bc;
        sio_ack_cb cb = p->cb;
        void *ud = p->ud;

        sio__pending_free(p);
        if (bc != NULL)
            sio__bcast_target_gone(bc);
        else if (cb != NULL)
            cb(NULL, SIO_ECLOSED, NULL, NULL, 0, ud);
    }
}

/* See sio_private.h. Never NULL (OOM aborts). */
sio_bcast_t *sio__bcast_new(sio_namespace_t *nsp)
{
    sio_bcast_t *bc = base_calloc(1, sizeof(*bc));

    bc->srv = nsp->srv;
    bc->nsp = nsp;
    bc->responses = cJSON_CreateArray();
    base_list_init(&bc->entries);
    bc->refs = 1;
    bc->servers_known = 1; /* this node alone until the adapter says otherwise */
    bc->servers = 1;
    bc->servers_seen = 1;
    return bc;
}

/* See sio_private.h; frees bc at the last reference. */
void sio__bcast_unref(sio_bcast_t *bc)
{
    if (--bc->refs > 0)
        return;
    cJSON_Delete(bc->responses);
    base_free(bc->reply_id);
    base_free(bc);
}

static void sio__bcast_timer_closed(uv_handle_t *h)
{
    sio_bcast_t *bc = h->data;
    sio_server_t *srv = bc->srv;
    sio__bcast_unref(bc);
    sio__server_handle_gone(srv);
}

/* Ends bc once: unregisters what is still waiting on sockets, runs the callback. */
void sio__bcast_finish(sio_bcast_t *bc, int err)
{
    if (bc->done)
        return;
    bc->done = 1;
    while (!base_list_empty(&bc->entries))
        sio__pending_free(BASE_CONTAINER_OF(bc->entries.next, sio_pending_t, bc_node));
    if (bc->cb != NULL)
        bc->cb(err, bc->responses, bc->ud);
    if (bc->timed) {
        bc->timed = 0;
        uv_timer_stop(&bc->timer);
        uv_close((uv_handle_t *)&bc->timer, sio__bcast_timer_closed);
    }
    sio__bcast_unref(bc);
}

static void sio__bcast_timeout(uv_timer_t *t)
{
    sio__bcast_finish(t->data, SIO_ETIMEDOUT);
}

/* See sio_private.h; a no-op for 0, a finished bc, or one already armed. */
void sio__bcast_arm(sio_bcast_t *bc, uint64_t ms)
{
    sio_server_t *srv = bc->srv;

    if (ms == 0 || bc->done || bc->timed)
        return;
    uv_timer_init(srv->loop, &bc->timer);
    bc->timer.data = bc;
    bc->timed = 1;
    bc->refs++;
    srv->n_handles++;
    uv_timer_start(&bc->timer, sio__bcast_timeout, ms, 0);
}

/* See sio_private.h. */
void sio__bcast_check(sio_bcast_t *bc)
{
    if (!bc->done && bc->servers_known && bc->servers_seen >= bc->servers &&
        bc->answered >= bc->expected)
        sio__bcast_finish(bc, bc->err);
}

/* A local target answered: kept in the responses, or (another node asked) sent back
 * through the adapter with its first argument only. */
void sio__bcast_answer(sio_bcast_t *bc, cJSON *args, const sio_bin_t *bins, size_t nbins)
{
    if (bc->done)
        return;
    bc->answered++;
    if (bc->reply_id != NULL) {
        /* Another node asked: only the first argument crosses (Node's wire). */
        adp_adapter_t *a = bc->nsp->adapter;
        if (a->vt->broadcast_ack_reply != NULL)
            a->vt->broadcast_ack_reply(a, bc->reply_id, args != NULL ? args->child : NULL, bins,
                                       nbins);
    } else {
        cJSON_AddItemToArray(bc->responses, cJSON_Duplicate(args, 1));
    }
    sio__bcast_check(bc);
}

/* A local target closed before answering: one answer fewer to wait for. */
void sio__bcast_target_gone(sio_bcast_t *bc)
{
    if (bc->expected > 0)
        bc->expected--;
    sio__bcast_check(bc);
}
