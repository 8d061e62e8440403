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
 * server reported how many clients it reached and each of those answered or went
 * away, or at the timeout. The ack id never leaves the node: other nodes get the
 * packet without it (the adapter's broadcast_ack) and assign their own ids, since
 * ours could collide with theirs; their clients' answers come back as counts and
 * single ack arguments.
 *
 * Room operations (socketsJoin/Leave, disconnectSockets) apply to this node's
 * sockets at once and are published for the others, unless sio_local.
 */
#include <string.h>

#include "base_alloc.h"
#include "sio_private.h"

/* ---------------------------------------------------------------- deliver */

/* One per deliver call. */
typedef struct sio_deliver_ctx {
    base_frame_t **frames;
    size_t n;
    int has_offset; /* the packet carries a recovery offset (ms, seq) */
    uint64_t ms, seq;
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
    if (s->has_floor && ctx->has_offset) {
        if (adp_offset_cmp(ctx->ms, ctx->seq, s->floor_ms, s->floor_seq) <= 0)
            return; /* replayed by the restore already */
        s->has_floor = 0;
    }
    if (sio__client_send_frames(s->client, ctx->frames, ctx->n, ctx->eio_flags) != SIO_OK)
        return;
    if (ctx->bc != NULL) {
        sio__pending_add(s, ctx->id, NULL, NULL, ctx->bc, 0);
        ctx->bc->expected++;
    }
}

/* The adp_host_t deliver callback (ud = the namespace). The adapter calls it for
 * local delivery, also for packets that came from other nodes. */
void sio__deliver(void *ud, const cd_sio_packet_t *pkt, const adp_opts_t *opts)
{
    sio_namespace_t *nsp = ud;
    base_frame_t *stack[8];
    base_frame_t **frames = stack;
    size_t want = 1 + pkt->n_attach;
    sio_deliver_ctx_t ctx = {0};

    if (want > sizeof(stack) / sizeof(stack[0]))
        frames = base_malloc(want * sizeof(*frames));
    ctx.frames = frames;
    ctx.n = cd_sio_encode(pkt, frames);
    ctx.has_offset = opts->offset != NULL && adp_offset_parse(opts->offset, &ctx.ms, &ctx.seq);
    if (opts->flags & ADP_VOLATILE)
        ctx.eio_flags |= EIO_SEND_VOLATILE;
    if (opts->flags & ADP_NOCOMPRESS)
        ctx.eio_flags |= EIO_SEND_NOCOMPRESS;
    if (nsp->cur_bcast != NULL && pkt->id == nsp->cur_bcast->id) {
        ctx.bc = nsp->cur_bcast;
        ctx.id = pkt->id;
    }
    if (ctx.n > 0)
        adp_each(nsp->adapter, opts, sio__deliver_one, &ctx);
    for (size_t i = 0; i < ctx.n; i++)
        base_frame_unref(frames[i]);
    if (frames != stack)
        base_free(frames);
}

/* ---------------------------------------------------------------- builder */

/* A broadcast to every socket of nsp. NULL when nsp is NULL. */
sio_op_t *sio_op(sio_namespace_t *nsp)
{
    if (nsp == NULL)
        return NULL;
    sio_op_t *op = base_calloc(1, sizeof(*op));
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
    *arr = base_realloc(*arr, (*n + 1) * sizeof(**arr));
    (*arr)[(*n)++] = base_strdup(room);
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
        base_free(op->rooms[i]);
    for (size_t i = 0; i < op->n_except; i++)
        base_free(op->except[i]);
    base_free(op->rooms);
    base_free(op->except);
    base_free(op);
}

static void sio__op_opts(const sio_op_t *op, adp_opts_t *o)
{
    o->rooms = (const char *const *)op->rooms;
    o->n_rooms = op->n_rooms;
    o->except = (const char *const *)op->except;
    o->n_except = op->n_except;
    o->flags = op->flags;
    o->offset = NULL; /* the adapter assigns one, if any */
}

/* ---------------------------------------------------------------- emit */

/* Broadcasts event to op's targets through the adapter. Consumes op and args in
 * every case. SIO_EINVAL for a bad builder, a NULL/reserved event name. */
int sio_emit(sio_op_t *op, const char *event, cJSON *args, const sio_bin_t *bins, size_t nbins)
{
    adp_opts_t o;
    int rc;

    if (op == NULL || op->bad || event == NULL || cd_sio_event_reserved(event) ||
        (nbins && bins == NULL)) {
        cJSON_Delete(args);
        sio_op_free(op);
        return SIO_EINVAL;
    }
    adp_adapter_t *a = op->nsp->adapter;
    cd_sio_packet_t *p = sio__event_packet(op->nsp->name, event, args, bins, nbins);
    sio__op_opts(op, &o);
    rc = a->vt->broadcast(a, p, &o);
    cd_sio_packet_free(p);
    sio_op_free(op);
    return rc;
}

/* ---- the adapter's report on the other nodes (adp_ack_events_t, ud = bc) */

static void sio__bc_on_servers(void *ud, int err, size_t n)
{
    sio_bcast_t *bc = ud;

    bc->servers_known = 1;
    bc->servers = err == SIO_OK && n > 0 ? n : 1;
    if (err != SIO_OK)
        bc->err = SIO_EREDIS;
    sio__bcast_check(bc);
}

static void sio__bc_on_count(void *ud, size_t n)
{
    sio_bcast_t *bc = ud;

    if (bc->done)
        return;
    bc->servers_seen++;
    bc->expected += n;
    sio__bcast_check(bc);
}

static void sio__bc_on_ack(void *ud, const cJSON *arg, const sio_bin_t *bins, size_t n_bins)
{
    sio_bcast_t *bc = ud;
    cJSON *one;

    if (bc->done)
        return;
    one = cJSON_CreateArray();
    if (arg != NULL)
        cJSON_AddItemToArray(one, cJSON_Duplicate(arg, 1));
    bc->answered++;
    cJSON_AddItemToArray(bc->responses, one);
    sio__bcast_check(bc);
}

static void sio__bc_on_end(void *ud)
{
    sio_bcast_t *bc = ud;

    bc->remote = 0;
    /* The adapter gave up waiting (its timeout is ours): whatever is missing now will
     * not come. */
    if (!bc->done) {
        sio__bcast_check(bc);
        sio__bcast_finish(bc, bc->err != SIO_OK ? bc->err : SIO_ETIMEDOUT);
    }
    sio__bcast_unref(bc);
}

/* Broadcast asking every target to acknowledge. cb runs exactly once unless this
 * returns an error: SIO_OK with the answers when every server reported and all
 * targets answered or went away (at once when there is none), SIO_ETIMEDOUT at op's
 * timeout, SIO_EREDIS when the other nodes could not be asked (this node's answers).
 * Consumes op and args. */
int sio_emit_ack(sio_op_t *op, const char *event, cJSON *args, const sio_bin_t *bins, size_t nbins,
                 sio_bcast_ack_cb cb, void *ud)
{
    adp_opts_t o;

    if (op == NULL || op->bad || event == NULL || cb == NULL || cd_sio_event_reserved(event) ||
        (nbins && bins == NULL)) {
        cJSON_Delete(args);
        sio_op_free(op);
        return SIO_EINVAL;
    }
    sio_namespace_t *nsp = op->nsp;
    adp_adapter_t *a = nsp->adapter;
    cd_sio_packet_t *p = sio__event_packet(nsp->name, event, args, bins, nbins);
    sio_bcast_t *bc = sio__bcast_new(nsp);
    uint64_t timeout_ms = op->timeout_ms;

    bc->cb = cb;
    bc->ud = ud;
    bc->refs++; /* ours until the end of this call: a callback may finish bc */
    sio__op_opts(op, &o);
    if (!(op->flags & ADP_LOCAL) && a->vt->broadcast_ack != NULL) {
        adp_ack_events_t ev = {
            .ud = bc,
            .on_servers = sio__bc_on_servers,
            .on_count = sio__bc_on_count,
            .on_ack = sio__bc_on_ack,
            .on_end = sio__bc_on_end,
        };
        bc->servers_known = 0;
        bc->remote = 1;
        bc->refs++;
        if (a->vt->broadcast_ack(a, p, &o, timeout_ms, &ev) != SIO_OK) {
            bc->remote = 0;
            bc->refs--;
            bc->servers_known = 1;
            bc->err = SIO_EREDIS;
        }
    }
    /* Answers cannot arrive while we deliver (one thread, no re-entry from the
     * engine), so the local part of expected is final once broadcast returns. */
    bc->id = p->id = nsp->next_ack_id++;
    o.flags |= ADP_LOCAL;
    sio_bcast_t *saved = nsp->cur_bcast;
    nsp->cur_bcast = bc;
    a->vt->broadcast(a, p, &o);
    nsp->cur_bcast = saved;
    cd_sio_packet_free(p);
    sio_op_free(op);
    sio__bcast_check(bc);
    sio__bcast_arm(bc, timeout_ms);
    sio__bcast_unref(bc);
    return SIO_OK;
}

/* ---------------------------------------------------------------- room operations */

/* One per room operation: the matching sockets, collected before any is touched
 * (the rooms index must not change under adp_each). */
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
        c->v = base_realloc(c->v, c->cap * sizeof(*c->v));
    }
    sio__socket_hold(s);
    c->v[c->n++] = s;
}

/* See sio_private.h. The matches are collected (and held) before any is touched:
 * joining, leaving and disconnecting change the index being walked. */
void sio__local_apply(sio_namespace_t *nsp, adp_apply_t what, const adp_opts_t *opts,
                      const char *const *rooms, size_t n_rooms, int close)
{
    sio_collect_t c = {0};

    adp_each(nsp->adapter, opts, sio__collect_one, &c);
    for (size_t i = 0; i < c.n; i++) {
        sio_socket_t *s = c.v[i];
        for (size_t k = 0; what != ADP_APPLY_DISCONNECT && k < n_rooms; k++) {
            if (what == ADP_APPLY_JOIN)
                sio_socket_join(s, rooms[k]);
            else
                sio_socket_leave(s, rooms[k]);
        }
        if (what == ADP_APPLY_DISCONNECT)
            sio_socket_disconnect(s, close);
    }
    for (size_t i = 0; i < c.n; i++)
        sio__socket_release(c.v[i]);
    base_free(c.v);
}

/* This node's matches at once, then the other nodes through the adapter (unless
 * sio_local): SIO_EREDIS when they could not be told. */
static int sio__sockets_apply(sio_op_t *op, adp_apply_t what, const char *room, int close)
{
    adp_opts_t o;
    int rc = SIO_OK;

    if (op == NULL || op->bad || (what != ADP_APPLY_DISCONNECT && room == NULL)) {
        sio_op_free(op);
        return SIO_EINVAL;
    }
    sio_namespace_t *nsp = op->nsp;
    const char *rooms[1] = {room};
    size_t n_rooms = room != NULL ? 1 : 0;
    sio__op_opts(op, &o);
    if (!(op->flags & ADP_LOCAL) && nsp->adapter->vt->remote_apply != NULL)
        rc = nsp->adapter->vt->remote_apply(nsp->adapter, what, &o, rooms, n_rooms, close);
    sio__local_apply(nsp, what, &o, rooms, n_rooms, close);
    sio_op_free(op);
    return rc == SIO_OK ? SIO_OK : SIO_EREDIS;
}

/* socketsJoin: every matching socket joins room. Consumes op. */
int sio_sockets_join(sio_op_t *op, const char *room)
{
    return sio__sockets_apply(op, ADP_APPLY_JOIN, room, 0);
}

/* socketsLeave: every matching socket leaves room. Consumes op. */
int sio_sockets_leave(sio_op_t *op, const char *room)
{
    return sio__sockets_apply(op, ADP_APPLY_LEAVE, room, 0);
}

/* disconnectSockets: sio_socket_disconnect(s, close) on each match. Consumes op. */
int sio_sockets_disconnect(sio_op_t *op, int close)
{
    return sio__sockets_apply(op, ADP_APPLY_DISCONNECT, NULL, close);
}
