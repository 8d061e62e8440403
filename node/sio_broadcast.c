/* sio_broadcast.c -- broadcasts: the sio_op_t builder, emits to rooms (with or
 * without acks), room operations on matching sockets, and the adapter's deliver
 * callback.
 *
 * Encode once: whatever the number of targets, a packet is encoded into one set of
 * refcounted frames and the same frames are queued on every recipient (each queue
 * takes its own reference). The adapter decides who the targets are and may append
 * a recovery offset first; we only encode and queue.
 *
 * Broadcast acks follow Node: one ack id from the namespace counter for the whole
 * broadcast, registered on each target socket; the callback completes when every
 * target answered or went away, or at the timeout. They are delivered on this node
 * only (ADP_LOCAL): the adapter interface carries no cross-node ack replies, and an
 * ack id sent to another node's clients could collide with that node's own ids.
 */
#include <string.h>

#include "alloc.h"
#include "sio_private.h"

/* ---------------------------------------------------------------- packets */

void sio__append_args(cJSON *arr, cJSON *args)
{
    if (args == NULL)
        return;
    if (!cJSON_IsArray(args)) {
        cJSON_AddItemToArray(arr, args);
        return;
    }
    cJSON *it;
    while ((it = args->child) != NULL) {
        cJSON_DetachItemViaPointer(args, it);
        cJSON_AddItemToArray(arr, it);
    }
    cJSON_Delete(args);
}

sio_packet_t *sio__event_packet(const char *nsp, const char *event, cJSON *args,
                                const sio_bin_t *bins, size_t nbins)
{
    sio_packet_t *p = sio_packet_new(SIO_EVENT, nsp);
    p->data = cJSON_CreateArray();
    cJSON_AddItemToArray(p->data, cJSON_CreateString(event));
    sio__append_args(p->data, args);
    if (nbins > 0)
        sio_packet_add_attachments(p, bins, nbins);
    return p;
}

/* ---------------------------------------------------------------- deliver */

/* One per deliver call. */
typedef struct sio_deliver_ctx {
    sio_frame_t **frames;
    size_t n;
    unsigned eio_flags;
    int64_t id;
    sio_bcast_t *bc;
} sio_deliver_ctx_t;

static void sio__deliver_one(void *ud, const char *sid, void *sock)
{
    sio_deliver_ctx_t *ctx = ud;
    sio_socket_t *s = sock;

    if (s == NULL || s->state == SIO_SOCK_CLOSED || !sio__client_usable(s->client))
        return;
    if (sio__client_send_frames(s->client, ctx->frames, ctx->n, ctx->eio_flags) != SIO_OK)
        return;
    if (ctx->bc != NULL) {
        sio__pending_add(s, ctx->id, NULL, NULL, ctx->bc, 0);
        ctx->bc->expected++;
    }
}

/* The adp_host_t deliver callback (ud = the namespace). The adapter calls it for
 * local delivery, also for packets that came from other nodes. */
void sio__deliver(void *ud, const sio_packet_t *pkt, const adp_opts_t *opts)
{
    sio_namespace_t *nsp = ud;
    sio_frame_t *stack[8];
    sio_frame_t **frames = stack;
    size_t want = 1 + pkt->n_attach;
    sio_deliver_ctx_t ctx = {0};

    if (want > sizeof(stack) / sizeof(stack[0]))
        frames = sio_malloc(want * sizeof(*frames));
    ctx.frames = frames;
    ctx.n = sio_encode(pkt, frames);
    if (opts->flags & ADP_VOLATILE)
        ctx.eio_flags |= EIO_SEND_VOLATILE;
    if (opts->flags & ADP_NOCOMPRESS)
        ctx.eio_flags |= EIO_SEND_NOCOMPRESS;
    if (nsp->cur_bcast != NULL && pkt->id == nsp->cur_bcast->id) {
        ctx.bc = nsp->cur_bcast;
        ctx.id = pkt->id;
    }
    if (ctx.n > 0)
        adp_rooms_each(&nsp->adapter->rooms, opts->rooms, opts->n_rooms, opts->except,
                       opts->n_except, sio__deliver_one, &ctx);
    for (size_t i = 0; i < ctx.n; i++)
        sio_frame_unref(frames[i]);
    if (frames != stack)
        sio_free(frames);
}

/* ---------------------------------------------------------------- builder */

/* A broadcast to every socket of nsp. NULL when nsp is NULL. */
sio_op_t *sio_op(sio_namespace_t *nsp)
{
    if (nsp == NULL)
        return NULL;
    sio_op_t *op = sio_calloc(1, sizeof(*op));
    op->nsp = nsp;
    return op;
}

/* socket.broadcast: the namespace of s, minus s (its own room in except). */
sio_op_t *sio_op_from(sio_socket_t *s)
{
    if (s == NULL)
        return NULL;
    return sio_except(sio_op(s->nsp), s->id);
}

static void sio__push(char ***arr, size_t *n, const char *room)
{
    *arr = sio_realloc(*arr, (*n + 1) * sizeof(**arr));
    (*arr)[(*n)++] = sio_strdup(room);
}

sio_op_t *sio_to(sio_op_t *op, const char *room)
{
    if (op == NULL)
        return NULL;
    if (room == NULL)
        op->bad = 1;
    else
        sio__push(&op->rooms, &op->n_rooms, room);
    return op;
}

sio_op_t *sio_except(sio_op_t *op, const char *room)
{
    if (op == NULL)
        return NULL;
    if (room == NULL)
        op->bad = 1;
    else
        sio__push(&op->except, &op->n_except, room);
    return op;
}

sio_op_t *sio_volatile(sio_op_t *op)
{
    if (op != NULL)
        op->flags |= ADP_VOLATILE;
    return op;
}

sio_op_t *sio_local(sio_op_t *op)
{
    if (op != NULL)
        op->flags |= ADP_LOCAL;
    return op;
}

sio_op_t *sio_compress(sio_op_t *op, int on)
{
    if (op != NULL) {
        if (on)
            op->flags &= ~(unsigned)ADP_NOCOMPRESS;
        else
            op->flags |= ADP_NOCOMPRESS;
    }
    return op;
}

sio_op_t *sio_timeout(sio_op_t *op, unsigned ms)
{
    if (op != NULL)
        op->timeout_ms = ms;
    return op;
}

void sio_op_free(sio_op_t *op)
{
    if (op == NULL)
        return;
    for (size_t i = 0; i < op->n_rooms; i++)
        sio_free(op->rooms[i]);
    for (size_t i = 0; i < op->n_except; i++)
        sio_free(op->except[i]);
    sio_free(op->rooms);
    sio_free(op->except);
    sio_free(op);
}

static void sio__op_opts(const sio_op_t *op, adp_opts_t *o)
{
    o->rooms = (const char *const *)op->rooms;
    o->n_rooms = op->n_rooms;
    o->except = (const char *const *)op->except;
    o->n_except = op->n_except;
    o->flags = op->flags;
}

/* ---------------------------------------------------------------- emit */

/* Broadcasts event to op's targets through the adapter. Consumes op and args in
 * every case. SIO_EINVAL for a bad builder, a NULL/reserved event name. */
int sio_emit(sio_op_t *op, const char *event, cJSON *args, const sio_bin_t *bins, size_t nbins)
{
    adp_opts_t o;
    int rc;

    if (op == NULL || op->bad || event == NULL || sio_event_reserved(event) ||
        (nbins && bins == NULL)) {
        cJSON_Delete(args);
        sio_op_free(op);
        return SIO_EINVAL;
    }
    adp_adapter_t *a = op->nsp->adapter;
    sio_packet_t *p = sio__event_packet(op->nsp->name, event, args, bins, nbins);
    sio__op_opts(op, &o);
    rc = a->vt->broadcast(a, p, &o);
    sio_packet_free(p);
    sio_op_free(op);
    return rc;
}

static void sio__bcast_free(sio_bcast_t *bc)
{
    cJSON_Delete(bc->responses);
    sio_free(bc);
}

static void sio__bcast_timer_closed(uv_handle_t *h)
{
    sio_bcast_t *bc = h->data;
    sio_server_t *srv = bc->srv;
    sio__bcast_free(bc);
    sio__server_handle_gone(srv);
}

/* Ends bc once: unregisters what is still waiting on sockets, runs the callback. */
static void sio__bcast_finish(sio_bcast_t *bc, int err)
{
    if (bc->done)
        return;
    bc->done = 1;
    while (!sio_list_empty(&bc->entries))
        sio__pending_free(SIO_CONTAINER_OF(bc->entries.next, sio_pending_t, bc_node));
    if (bc->cb != NULL)
        bc->cb(err, bc->responses, bc->ud);
    if (bc->timed) {
        uv_timer_stop(&bc->timer);
        uv_close((uv_handle_t *)&bc->timer, sio__bcast_timer_closed);
    } else {
        sio__bcast_free(bc);
    }
}

static void sio__bcast_timeout(uv_timer_t *t)
{
    sio__bcast_finish(t->data, SIO_ETIMEDOUT);
}

void sio__bcast_answer(sio_bcast_t *bc, cJSON *args)
{
    cJSON_AddItemToArray(bc->responses, cJSON_Duplicate(args, 1));
    bc->answered++;
    if (bc->answered >= bc->expected)
        sio__bcast_finish(bc, SIO_OK);
}

void sio__bcast_target_gone(sio_bcast_t *bc)
{
    if (bc->expected > 0)
        bc->expected--;
    if (bc->answered >= bc->expected)
        sio__bcast_finish(bc, SIO_OK);
}

/* Broadcast asking every target to acknowledge. cb runs exactly once unless this
 * returns an error: SIO_OK with the answers when all targets answered or went away
 * (at once when there is none), SIO_ETIMEDOUT at op's timeout (0 = none). Local
 * targets only (see the top of this file). Consumes op and args. */
int sio_emit_ack(sio_op_t *op, const char *event, cJSON *args, const sio_bin_t *bins, size_t nbins,
                 sio_bcast_ack_cb cb, void *ud)
{
    adp_opts_t o;

    if (op == NULL || op->bad || event == NULL || cb == NULL || sio_event_reserved(event) ||
        (nbins && bins == NULL)) {
        cJSON_Delete(args);
        sio_op_free(op);
        return SIO_EINVAL;
    }
    sio_namespace_t *nsp = op->nsp;
    sio_server_t *srv = nsp->srv;
    adp_adapter_t *a = nsp->adapter;
    sio_packet_t *p = sio__event_packet(nsp->name, event, args, bins, nbins);
    sio_bcast_t *bc = sio_calloc(1, sizeof(*bc));

    bc->srv = srv;
    bc->cb = cb;
    bc->ud = ud;
    bc->responses = cJSON_CreateArray();
    sio_list_init(&bc->entries);
    bc->id = p->id = nsp->next_ack_id++;
    /* Answers cannot arrive while we deliver (one thread, no re-entry from the
     * engine), so expected is final once broadcast returns. */
    bc->expected = 0;
    unsigned timeout_ms = op->timeout_ms;
    sio__op_opts(op, &o);
    o.flags |= ADP_LOCAL;
    sio_bcast_t *saved = nsp->cur_bcast;
    nsp->cur_bcast = bc;
    int rc = a->vt->broadcast(a, p, &o);
    nsp->cur_bcast = saved;
    sio_packet_free(p);
    sio_op_free(op);
    if (rc != SIO_OK) {
        while (!sio_list_empty(&bc->entries))
            sio__pending_free(SIO_CONTAINER_OF(bc->entries.next, sio_pending_t, bc_node));
        sio__bcast_free(bc);
        return rc;
    }
    if (bc->answered >= bc->expected) {
        sio__bcast_finish(bc, SIO_OK);
        return SIO_OK;
    }
    if (timeout_ms > 0) {
        uv_timer_init(srv->loop, &bc->timer);
        bc->timer.data = bc;
        bc->timed = 1;
        srv->n_handles++;
        uv_timer_start(&bc->timer, sio__bcast_timeout, timeout_ms, 0);
    }
    return SIO_OK;
}

/* ---------------------------------------------------------------- room operations */

/* One per room operation: the matching sockets, collected before any is touched
 * (the rooms index must not change under adp_rooms_each). */
typedef struct sio_collect {
    sio_socket_t **v;
    size_t n, cap;
} sio_collect_t;

static void sio__collect_one(void *ud, const char *sid, void *sock)
{
    sio_collect_t *c = ud;
    sio_socket_t *s = sock;

    if (s == NULL || s->state == SIO_SOCK_CLOSED)
        return;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = sio_realloc(c->v, c->cap * sizeof(*c->v));
    }
    sio__socket_hold(s);
    c->v[c->n++] = s;
}

typedef enum sio_room_op { SIO_OP_JOIN, SIO_OP_LEAVE, SIO_OP_DISCONNECT } sio_room_op_t;

/* Local sockets only: the adapter interface has no remote room operations. */
static int sio__sockets_apply(sio_op_t *op, sio_room_op_t what, const char *room, int close)
{
    sio_collect_t c = {0};

    if (op == NULL || op->bad || (what != SIO_OP_DISCONNECT && room == NULL)) {
        sio_op_free(op);
        return SIO_EINVAL;
    }
    adp_rooms_each(&op->nsp->adapter->rooms, (const char *const *)op->rooms, op->n_rooms,
                   (const char *const *)op->except, op->n_except, sio__collect_one, &c);
    sio_op_free(op);
    for (size_t i = 0; i < c.n; i++) {
        sio_socket_t *s = c.v[i];
        if (what == SIO_OP_JOIN)
            sio_socket_join(s, room);
        else if (what == SIO_OP_LEAVE)
            sio_socket_leave(s, room);
        else
            sio_socket_disconnect(s, close);
    }
    for (size_t i = 0; i < c.n; i++)
        sio__socket_release(c.v[i]);
    sio_free(c.v);
    return SIO_OK;
}

/* socketsJoin: every matching local socket joins room. Consumes op. */
int sio_sockets_join(sio_op_t *op, const char *room)
{
    return sio__sockets_apply(op, SIO_OP_JOIN, room, 0);
}

/* socketsLeave: every matching local socket leaves room. Consumes op. */
int sio_sockets_leave(sio_op_t *op, const char *room)
{
    return sio__sockets_apply(op, SIO_OP_LEAVE, room, 0);
}

/* disconnectSockets: sio_socket_disconnect(s, close) on each match. Consumes op. */
int sio_sockets_disconnect(sio_op_t *op, int close)
{
    return sio__sockets_apply(op, SIO_OP_DISCONNECT, NULL, close);
}
