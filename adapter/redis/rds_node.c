/* rds_node.c -- the Redis adapter: the node's context, broadcasts both ways, sessions
 * written through, and the restore's hold list (requests live in rds_req.c; publishing and the log in rds_link.c).
 *
 * Broadcasts follow @socket.io/redis-adapter 8.x byte for byte (spec redis-wire.md
 * §1.1): the publisher delivers to its own sockets and PUBLISHes [uid, packet, opts]
 * on K#N# (K#N#<room># for exactly one room); every node PSUBSCRIBEs K#N#* and drops
 * what it published itself, what targets a room it does not have, and what belongs
 * to another namespace. Node nodes and @socket.io/redis-emitter therefore share the
 * cluster with us.
 *
 * Recoverable broadcasts (recovery on, EVENT without ack, not volatile, not local) go
 * through the recovery storage instead: one FCALL stores the message under a new
 * offset and publishes [uid, packet, opts, offset]. The publisher delivers such a
 * message to its own sockets only when it comes back over the subscriber connection,
 * like every other node: all deliveries of a node then come from one ordered source,
 * so a client sees strictly increasing offsets (adapter/redis/REDIS.md explains the race
 * this avoids). The price is one Redis round trip on local delivery.
 *
 * Failure policy: Redis down never stops local delivery. A broadcast that cannot be
 * published is delivered here without an offset, counted, logged (at most one line
 * per 5 s) and reported to the caller as SIO_EREDIS.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base_alloc.h"
#include "base_clock.h"
#include "base_random.h"
#include "rds_private.h"
#include "sockeye_common.h"

#define RDS_HOLD_MAX 10000 /* live packets held for one restore before it gives up */

static const char rds__uid_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---------------------------------------------------------------- helpers */

static void rds__rds_log(void *ud, int level, const char *msg)
{
    rds__log(ud, level, "%s", msg);
}

static int rds__strv_has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], s) == 0)
            return 1;
    }
    return 0;
}

/* The Node rule for what a session missed: a broadcast to no room or to one of its
 * rooms, unless one of its rooms is excepted. */
static int rds__opts_match(const rds_opts_t *o, const adp_session_t *s)
{
    int aimed = o->n_rooms == 0;
    for (size_t i = 0; i < s->n_rooms && !aimed; i++)
        aimed = rds__strv_has(o->rooms, o->n_rooms, s->rooms[i]);
    if (!aimed)
        return 0;
    for (size_t i = 0; i < s->n_rooms; i++) {
        if (rds__strv_has(o->except, o->n_except, s->rooms[i]))
            return 0;
    }
    return 1;
}

static int rds__recoverable(const cd_sio_packet_t *pkt, const adp_opts_t *opts)
{
    return (pkt->type == CD_SIO_EVENT || pkt->type == CD_SIO_BINARY_EVENT) && pkt->id < 0 &&
           !(opts->flags & (ADP_VOLATILE | ADP_LOCAL)) && cJSON_IsArray(pkt->data);
}

/* The channel of a broadcast: K#N#<room># for exactly one room, else K#N#. Writes into
 * stack when it fits, else allocates (the caller frees when the result != stack). */
static char *rds__bcast_channel(const rds_rnsp_t *a, const adp_opts_t *o, char *stack, size_t cap)
{
    if (o->n_rooms != 1)
        return a->ch_bcast;
    size_t rl = strlen(o->rooms[0]), need = a->ch_bcast_len + rl + 2;
    char *ch = need <= cap ? stack : base_malloc(need);
    memcpy(ch, a->ch_bcast, a->ch_bcast_len);
    memcpy(ch + a->ch_bcast_len, o->rooms[0], rl);
    ch[a->ch_bcast_len + rl] = '#';
    ch[need - 1] = '\0';
    return ch;
}

/* A recoverable broadcast on its way through the storage: the encoded message is
 * kept so a failure can still be delivered here (decoded back: rare path). */
typedef struct rds_pubctx {
    rds_rnsp_t *a;
    sio_bin_t msg;
} rds_pubctx_t;

/* Raises a's mark to the offset s[0..len) when it is a later one. */
static void rds__mark_seen(rds_rnsp_t *a, const char *s, size_t len)
{
    char id[sizeof(a->mark)];
    uint64_t ms, seq;

    if (len >= sizeof(id))
        return;
    memcpy(id, s, len);
    id[len] = '\0';
    if (!adp_offset_parse(id, &ms, &seq))
        return;
    if (a->mark[0] != '\0' && adp_offset_cmp(ms, seq, a->mark_ms, a->mark_seq) <= 0)
        return;
    memcpy(a->mark, id, len + 1);
    a->mark_ms = ms;
    a->mark_seq = seq;
}

/* The offset of a stored broadcast without decoding it: sockeye_publish appends it as the
 * last element of a 4-element array (first byte 0x94), a msgpack str (fixstr, or str8 from
 * 32 bytes). Only one length can fit: a shorter suffix is preceded by a digit or '-', not
 * a str header, and a longer one would include the header. */
static void rds__mark_from_tail(rds_rnsp_t *a, const unsigned char *p, size_t len)
{
    if (len < 4 || p[0] != 0x94)
        return;
    for (size_t n = 3; n < sizeof(a->mark) && n + 2 < len; n++) {
        int fix = n < 32 && p[len - n - 1] == 0xa0 + n;
        int str8 = n >= 32 && p[len - n - 1] == n && p[len - n - 2] == 0xd9;
        if (fix || str8) {
            rds__mark_seen(a, (const char *)p + len - n, n);
            return;
        }
    }
}

static void rds__deliver_msg(rds_rnsp_t *a, const sio_bin_t *msg)
{
    rds_broadcast_t b;
    adp_opts_t view;

    if (rds_decode_broadcast(msg->data, msg->len, &b) != SIO_OK)
        return;
    rds_opts_view(&b.opts, &view);
    if (a->base.host.deliver != NULL)
        a->base.host.deliver(a->base.host.ud, b.packet, &view);
    rds_broadcast_free(&b);
}

static void rds__on_stored(void *ud, int err, const char *offset)
{
    rds_pubctx_t *pc = ud;
    rds_node_t *r = pc->a->r;

    if (err == SIO_OK) {
        r->stats.messages_out++;
        /* Our delivery rides on the subscriber; if it is down the message will not come
         * back (pub/sub has no memory): deliver now, with the offset. */
        if (!rds_conn_is_up(r->sub)) {
            rds_broadcast_t b;
            adp_opts_t view;
            rds__mark_seen(pc->a, offset, strlen(offset));
            if (rds_decode_broadcast(pc->msg.data, pc->msg.len, &b) == SIO_OK) {
                cJSON_AddItemToArray(b.packet->data, cJSON_CreateString(offset));
                rds_opts_view(&b.opts, &view);
                view.offset = offset;
                pc->a->base.host.deliver(pc->a->base.host.ud, b.packet, &view);
                rds_broadcast_free(&b);
            }
        }
    } else if (err != SIO_ECLOSED) {
        /* Lost in flight or timed out: it may still come back (then twice: at least
         * once beats not at all). */
        rds__publish_failed(r, err);
        rds__deliver_msg(pc->a, &pc->msg);
    }
    base_free(pc->msg.data);
    base_free(pc);
}

/* Local delivery plus PUBLISH, or for a recoverable packet the storage round trip
 * (delivery when it comes back). Returns SIO_OK, or SIO_EREDIS when the other nodes
 * could not be reached (delivered here anyway), or the encoder's error (delivered
 * here, nothing published: a tree too deep or not an event). pkt is not modified. */
static int rds__broadcast(adp_adapter_t *base, cd_sio_packet_t *pkt, const adp_opts_t *opts)
{
    static const adp_opts_t everyone = {0};
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    rds_node_t *r = a->r;
    char stack[256];
    sio_bin_t msg = {0};
    int rc;

    if (opts == NULL)
        opts = &everyone;
    if (opts->flags & ADP_LOCAL) {
        base->host.deliver(base->host.ud, pkt, opts);
        return SIO_OK;
    }
    rc = rds_encode_broadcast(r->uid, pkt, opts, NULL, &msg);
    if (rc != SIO_OK) {
        base->host.deliver(base->host.ud, pkt, opts);
        return rc;
    }
    char *channel = rds__bcast_channel(a, opts, stack, sizeof(stack));
    if (r->st != NULL && rds__recoverable(pkt, opts) && !r->closed) {
        rds_pubctx_t *pc = base_malloc(sizeof(*pc));
        pc->a = a;
        pc->msg = msg;
        rc = rds_streams_publish(r->st, base->nsp, opts->rooms, opts->n_rooms, channel, msg.data,
                                 msg.len, rds__on_stored, pc);
        if (rc != SIO_OK) {
            base_free(pc);
            base->host.deliver(base->host.ud, pkt, opts);
            rds__publish_failed(r, rc);
            rc = SIO_EREDIS;
        }
        msg.data = rc == SIO_OK ? NULL : msg.data;
    } else {
        base->host.deliver(base->host.ud, pkt, opts);
        rc = rds__publish(r, channel, msg.data, msg.len);
        if (rc == SIO_OK)
            r->stats.messages_out++;
    }
    if (channel != stack && channel != a->ch_bcast)
        base_free(channel);
    base_free(msg.data);
    return rc;
}

/* ---------------------------------------------------------------- receiving */

static void rds__held_free(rds_held_t *h)
{
    base_list_remove(&h->link);
    cd_sio_packet_free(h->pkt);
    rds_opts_free(&h->opts);
    base_free(h);
}

/* Keeps a copy of a live recoverable packet for every restore in flight. */
static void rds__hold(rds_rnsp_t *a, const cd_sio_packet_t *pkt, const rds_opts_t *o, uint64_t ms,
                      uint64_t seq)
{
    base_list_t *it, *tmp;

    BASE_LIST_FOREACH_SAFE(it, tmp, &a->restores)
    {
        rds_restore_t *rs = BASE_CONTAINER_OF(it, rds_restore_t, link);
        if (rs->overflow)
            continue;
        if (rs->n_held >= RDS_HOLD_MAX) {
            rs->overflow = 1;
            continue;
        }
        rds_held_t *h = base_calloc(1, sizeof(*h));
        h->pkt = cd_sio_packet_dup(pkt);
        if (h->pkt == NULL) {
            base_free(h);
            rs->overflow = 1;
            continue;
        }
        h->ms = ms;
        h->seq = seq;
        h->opts.timeout_ms = -1;
        h->opts.flags = o->flags;
        h->opts.n_rooms = o->n_rooms;
        h->opts.rooms = base_calloc(o->n_rooms ? o->n_rooms : 1, sizeof(char *));
        for (size_t i = 0; i < o->n_rooms; i++)
            h->opts.rooms[i] = base_strdup(o->rooms[i]);
        h->opts.n_except = o->n_except;
        h->opts.except = base_calloc(o->n_except ? o->n_except : 1, sizeof(char *));
        for (size_t i = 0; i < o->n_except; i++)
            h->opts.except[i] = base_strdup(o->except[i]);
        base_list_push_back(&rs->held, &h->link);
        rs->n_held++;
    }
}

/* A room channel is only worth decoding when a local socket is in that room, or a
 * restore is in flight (its socket is not in the index yet). */
static int rds__room_wanted(rds_rnsp_t *a, const char *room, size_t len)
{
    char stack[256];
    char *name;
    int has;

    if (!base_list_empty(&a->restores))
        return 1;
    name = len < sizeof(stack) ? stack : base_malloc(len + 1);
    memcpy(name, room, len);
    name[len] = '\0';
    has = adp_rooms_has_room(&a->base.rooms, name);
    if (name != stack)
        base_free(name);
    return has;
}

/* A GET of a namespace's last offset in flight (by name: the adapter may go meanwhile). */
typedef struct rds_markq {
    rds_node_t *r;
    char *nsp;
} rds_markq_t;

static void rds__mark_reply(rds_conn_t *c, int err, redisReply *rep, void *ud)
{
    rds_markq_t *q = ud;
    base_list_t *it;

    if (err == SIO_OK && rep != NULL && rep->type == REDIS_REPLY_STRING) {
        for (it = q->r->adapters.next; it != &q->r->adapters; it = it->next) {
            rds_rnsp_t *a = BASE_CONTAINER_OF(it, rds_rnsp_t, link);
            if (strcmp(a->base.nsp, q->nsp) == 0)
                rds__mark_seen(a, rep->str, rep->len);
        }
    }
    base_free(q->nsp);
    base_free(q);
}

/* The subscription is active: from now on every stored broadcast of the namespace
 * reaches this node, so the namespace's last offset, read now, is a mark: what is at or
 * below it was published before (or was seen already), what is above it will arrive.
 * A node that has seen no broadcast yet then still has an exact mark for a socket's
 * start and joins, instead of an estimate made later in Redis. */
static void rds__mark_from_redis(rds_rnsp_t *a)
{
    rds_node_t *r = a->r;
    size_t n = strlen(r->key_prefix) + strlen(a->base.nsp) + 16;
    char *key = base_malloc(n);
    const char *argv[2] = {"GET", key};
    rds_markq_t *q = base_malloc(sizeof(*q));

    snprintf(key, n, "%s:{%s}:last", r->key_prefix, a->base.nsp);
    q->r = r;
    q->nsp = base_strdup(a->base.nsp);
    if (rds__cmd(r, rds__mark_reply, q, 2, argv, NULL) != SIO_OK) {
        base_free(q->nsp);
        base_free(q);
    }
    base_free(key);
}

/* PSUBSCRIBE K#N#* callback: one broadcast from any node (ourselves included for
 * recoverable broadcasts), an emitter, or any other publisher of the wire format. */
static void rds__on_broadcast(rds_conn_t *c, const rds_message_t *m, void *ud)
{
    rds_rnsp_t *a = ud;
    rds_node_t *r = a->r;
    const char *room;
    size_t room_len;
    rds_broadcast_t b;
    adp_opts_t view;
    uint64_t ms = 0, seq = 0;

    if (m->kind == RDS_SUBSCRIBED && r->st != NULL)
        rds__mark_from_redis(a);
    if (m->kind != RDS_MESSAGE || m->channel == NULL)
        return;
    rds_chan_t kind = rds_channel_parse(r->channel_prefix, a->base.nsp, m->channel, m->channel_len,
                                        &room, &room_len);
    if (kind != RDS_CHAN_BROADCAST && kind != RDS_CHAN_ROOM)
        return;
    if (kind == RDS_CHAN_ROOM && !rds__room_wanted(a, room, room_len)) {
        rds__mark_from_tail(a, (const unsigned char *)m->payload,
                            m->payload_len); /* for a socket joining later */
        return;
    }
    if (rds_decode_broadcast(m->payload, m->payload_len, &b) != SIO_OK) {
        rds__log(r, RDS_LOG_DEBUG, "redis: malformed broadcast on %.*s ignored",
                 (int)m->channel_len, m->channel);
        return;
    }
    int own = strcmp(b.uid, r->uid) == 0;
    /* Our own message comes back only when it went through the storage (it has an
     * offset): that is when we deliver it (see the top of this file). */
    if ((own && b.offset == NULL) || strcmp(b.packet->nsp, a->base.nsp) != 0)
        goto done;
    if (!own)
        r->stats.messages_in++;
    if (b.offset != NULL)
        rds__mark_seen(a, b.offset, strlen(b.offset));
    if (b.offset != NULL && r->st != NULL && adp_offset_parse(b.offset, &ms, &seq) &&
        cJSON_IsArray(b.packet->data)) {
        cJSON_AddItemToArray(b.packet->data, cJSON_CreateString(b.offset));
        if (!base_list_empty(&a->restores))
            rds__hold(a, b.packet, &b.opts, ms, seq);
    }
    rds_opts_view(&b.opts, &view);
    view.offset = b.offset;
    a->base.host.deliver(a->base.host.ud, b.packet, &view);
done:
    rds_broadcast_free(&b);
}

/* ---------------------------------------------------------------- sessions */

static char *rds__new_owner(rds_node_t *r)
{
    char buf[48];
    snprintf(buf, sizeof(buf), "%s:%" PRIu64, r->uid, ++r->next_owner);
    return base_strdup(buf);
}

static void rds__session_opened(void *ud, int err)
{
    rds_node_t *r = ud;
    if (err != SIO_OK && err != SIO_ECLOSED)
        rds__log(r, RDS_LOG_DEBUG, "redis: session write failed: %s", sio_strerror(err));
}

/* rds_live_t.rooms value of a room the session had from its start (its floor is the
 * session's offset). */
static char rds__from_start;

/* A held session whose rooms are s's, each from the start, or with the join mark joined
 * names (a restored session's, NULL for a new one). Takes owner. */
static rds_live_t *rds__live_new(char *owner, const adp_session_t *s, const cJSON *joined)
{
    rds_live_t *l = base_calloc(1, sizeof(*l));

    l->owner = owner;
    base_map_init(&l->rooms);
    for (size_t i = 0; i < s->n_rooms; i++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(joined, s->rooms[i]);
        void *old =
            base_map_put(&l->rooms, s->rooms[i],
                         cJSON_IsString(m) ? base_strdup(m->valuestring) : &rds__from_start);
        if (old != NULL && old != &rds__from_start)
            base_free(old);
    }
    return l;
}

static void rds__live_rooms_clear(base_map_t *rooms)
{
    base_map_iter_t it = {0};
    void *v;

    while (base_map_next(rooms, &it, NULL, &v))
        if (v != &rds__from_start)
            base_free(v);
    base_map_clear(rooms);
}

static void rds__live_free(rds_live_t *l)
{
    if (l == NULL)
        return;
    rds__live_rooms_clear(&l->rooms);
    base_free(l->owner);
    base_free(l);
}

/* Brings l's rooms to s's: rooms kept keep their mark, new ones get the node's mark now
 * ("?" when it has seen no offset yet: Redis resolves it once), rooms left are dropped.
 * Returns the join marks as the JSON object the session stores (owned). */
static char *rds__live_joined(rds_rnsp_t *a, rds_live_t *l, const adp_session_t *s)
{
    cJSON *o = cJSON_CreateObject();
    base_map_t next;
    char *json;

    base_map_init(&next);
    for (size_t i = 0; i < s->n_rooms; i++) {
        void *v = base_map_del(&l->rooms, s->rooms[i]);
        if (v == NULL)
            v = base_strdup(a->mark[0] != '\0' ? a->mark : "?");
        v = base_map_put(&next, s->rooms[i], v);
        if (v != NULL && v != &rds__from_start)
            base_free(v); /* a room listed twice */
    }
    rds__live_rooms_clear(&l->rooms);
    l->rooms = next;
    {
        base_map_iter_t it = {0};
        const char *room;
        void *v;
        while (base_map_next(&l->rooms, &it, &room, &v))
            if (v != &rds__from_start)
                cJSON_AddStringToObject(o, room, v);
    }
    json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return json;
}

/* Writes s's session through as l's owner. */
static void rds__live_write(rds_rnsp_t *a, rds_live_t *l, const adp_session_t *s)
{
    char *joined = rds__live_joined(a, l, s);

    rds_session_update(a->r->st, a->base.nsp, s, l->owner, joined);
    cJSON_free(joined);
}

/* The socket is connected: write its session (a restored one is already ours: the
 * restore took ownership, so this is an update). */
static void rds__session_open(adp_adapter_t *base, const adp_session_t *s)
{
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    rds_node_t *r = a->r;

    if (r->st == NULL || r->closed || s->pid == NULL)
        return;
    rds_live_t *l = base_map_get(&a->live, s->pid);
    if (l != NULL) {
        rds__live_write(a, l, s);
        return;
    }
    l = rds__live_new(rds__new_owner(r), s, NULL);
    base_map_put(&a->live, s->pid, l);
    rds_session_open(r->st, base->nsp, s, l->owner, a->mark, rds__session_opened, r);
}

static void rds__session_update(adp_adapter_t *base, const adp_session_t *s)
{
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    rds_node_t *r = a->r;

    if (r->st == NULL || r->closed || s->pid == NULL)
        return;
    rds_live_t *l = base_map_get(&a->live, s->pid);
    if (l != NULL)
        rds__live_write(a, l, s);
}

static void rds__session_close(adp_adapter_t *base, const adp_session_t *s, int recoverable)
{
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    rds_node_t *r = a->r;

    if (s->pid == NULL)
        return;
    rds_live_t *l = base_map_del(&a->live, s->pid);
    if (l == NULL)
        return;
    /* socket.data may have been changed in place since the last write: the state
     * that survives is the one at the disconnect. */
    if (r->st != NULL && !r->closed && recoverable)
        rds__live_write(a, l, s);
    if (r->st != NULL && !r->closed)
        rds_session_release(r->st, base->nsp, s->pid, l->owner, recoverable);
    rds__live_free(l);
}

/* One refresh being collected from the host's sockets. */
typedef struct rds_refresh_batch {
    rds_rnsp_t *a;
    rds_refresh_t *items;
    size_t n, cap;
} rds_refresh_batch_t;

static void rds__refresh_one(void *ud, const char *pid, int has_age, uint64_t age_ms)
{
    rds_refresh_batch_t *b = ud;

    if (b->n == b->cap || !base_map_has(&b->a->live, pid))
        return; /* only sessions this node holds */
    b->items[b->n++] = (rds_refresh_t){pid, has_age, age_ms};
}

/* Refreshes the TTL and the read time of every session this node holds, one pipelined
 * call per namespace; the read ages come from the sockets' heartbeats (host). */
static void rds__refresh_sessions(rds_node_t *r)
{
    base_list_t *it;

    for (it = r->adapters.next; it != &r->adapters; it = it->next) {
        rds_rnsp_t *a = BASE_CONTAINER_OF(it, rds_rnsp_t, link);
        rds_refresh_batch_t b = {a, NULL, 0, base_map_size(&a->live)};

        if (b.cap == 0 || a->base.host.each_session == NULL)
            continue;
        b.items = base_malloc(b.cap * sizeof(*b.items));
        a->base.host.each_session(a->base.host.ud, rds__refresh_one, &b);
        rds_session_refresh(r->st, a->base.nsp, b.items, b.n);
        base_free(b.items);
    }
}

/* ---------------------------------------------------------------- restore */

static void rds__restore_free(rds_restore_t *rs)
{
    while (!base_list_empty(&rs->held))
        rds__held_free(BASE_CONTAINER_OF(rs->held.next, rds_held_t, link));
    base_list_remove(&rs->link);
    base_free(rs->pid);
    base_free(rs->owner);
    base_free(rs);
}

static int rds__missed_has(cd_sio_packet_t **v, size_t n, uint64_t ms, uint64_t seq)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t m2, s2;
        if (adp_packet_offset(v[i], &m2, &s2) && m2 == ms && s2 == seq)
            return 1;
    }
    return 0;
}

/* The storage answered: merge what it read with what arrived live meanwhile (by
 * offset, each once), then hand the session over. */
static void rds__on_restored(void *ud, int err, adp_session_t *s, cd_sio_packet_t **missed,
                             size_t n_missed)
{
    rds_restore_t *rs = ud;
    rds_rnsp_t *a = rs->a;
    cd_sio_packet_t **all = NULL;
    size_t n = 0;

    if (err == SIO_OK && (rs->overflow || a == NULL)) {
        if (rs->overflow && a != NULL)
            rds__log(a->r, RDS_LOG_WARN,
                     "redis: restore of %s abandoned: more than %d live messages arrived "
                     "during it",
                     rs->pid, RDS_HOLD_MAX);
        err = SIO_ENOTFOUND;
    }
    if (err != SIO_OK || s == NULL) {
        for (size_t i = 0; i < n_missed; i++)
            cd_sio_packet_free(missed[i]);
        adp_session_free(s);
        if (a != NULL && err != SIO_ENOTFOUND && err != SIO_ECLOSED)
            rds__log(a->r, RDS_LOG_DEBUG, "redis: restore of %s failed: %s", rs->pid,
                     sio_strerror(err));
        adp_restore_cb cb = rs->cb;
        void *cud = rs->ud;
        rds__restore_free(rs);
        cb(cud, SIO_ENOTFOUND, NULL, NULL, 0);
        return;
    }

    size_t n_held = rs->n_held;
    all = base_malloc((n_missed + rs->n_held + 1) * sizeof(*all));
    for (size_t i = 0; i < n_missed; i++)
        all[n++] = missed[i];
    /* Held packets are in pub/sub order, which is offset order (REDIS.md): append the
     * new ones, then one insertion pass keeps the whole list sorted. */
    while (!base_list_empty(&rs->held)) {
        rds_held_t *h = BASE_CONTAINER_OF(rs->held.next, rds_held_t, link);
        int seen = rs->have_offset && adp_offset_cmp(h->ms, h->seq, rs->ms, rs->seq) <= 0;
        if (!seen && rds__opts_match(&h->opts, s) &&
            !rds__missed_has(all, n_missed, h->ms, h->seq)) {
            all[n++] = h->pkt;
            h->pkt = NULL;
        }
        rds__held_free(h);
    }
    for (size_t i = 1; i < n; i++) {
        cd_sio_packet_t *p = all[i];
        uint64_t pm = 0, ps = 0;
        adp_packet_offset(p, &pm, &ps);
        size_t j = i;
        while (j > 0) {
            uint64_t qm = 0, qs = 0;
            adp_packet_offset(all[j - 1], &qm, &qs);
            if (adp_offset_cmp(qm, qs, pm, ps) <= 0)
                break;
            all[j] = all[j - 1];
            j--;
        }
        all[j] = p;
    }
    rds__log(a->r, RDS_LOG_DEBUG,
             "redis: restored %s: %zu stored + %zu live held during the restore -> %zu "
             "sent",
             rs->pid, n_missed, n_held, n);
    if (s->pid != NULL) {
        rds__live_free(base_map_put(&a->live, s->pid, rds__live_new(rs->owner, s, s->joined)));
        rs->owner = NULL;
    }
    adp_restore_cb cb = rs->cb;
    void *cud = rs->ud;
    rds__restore_free(rs);
    cb(cud, SIO_OK, s, n ? all : NULL, n);
    base_free(all);
}

/* Restore through the storage, holding live packets meanwhile. The callback runs
 * exactly once, possibly before this returns (SIO_ENOTFOUND at once when recovery is
 * off or Redis is down: the client gets a fresh session rather than a wait). */
static int rds__restore(adp_adapter_t *base, const char *pid, const char *offset, adp_restore_cb cb,
                        void *ud)
{
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    rds_node_t *r = a->r;

    if (cb == NULL)
        return SIO_EINVAL;
    if (r->st == NULL || r->closed || pid == NULL || !rds_conn_is_up(r->cmd)) {
        cb(ud, SIO_ENOTFOUND, NULL, NULL, 0);
        return SIO_OK;
    }
    rds_restore_t *rs = base_calloc(1, sizeof(*rs));
    rs->a = a;
    rs->pid = base_strdup(pid);
    rs->owner = rds__new_owner(r);
    rs->have_offset = adp_offset_parse(offset, &rs->ms, &rs->seq);
    rs->cb = cb;
    rs->ud = ud;
    base_list_init(&rs->held);
    base_list_push_back(&a->restores, &rs->link);
    int rc = rds_streams_restore(r->st, base->nsp, pid, offset, rs->owner, rds__on_restored, rs);
    if (rc != SIO_OK) {
        rds__restore_free(rs);
        cb(ud, SIO_ENOTFOUND, NULL, NULL, 0);
    }
    return SIO_OK;
}

/* ---------------------------------------------------------------- the adapter */

static void rds__destroy(adp_adapter_t *base)
{
    rds_rnsp_t *a = (rds_rnsp_t *)base;
    rds_node_t *r = a->r;
    base_map_iter_t it = {0};
    void *v;
    base_list_t *li, *tmp;

    rds__req_cancel(r, a, SIO_ECLOSED);
    if (!r->closed) {
        rds_conn_punsubscribe(r->sub, a->ch_pattern);
        rds_conn_unsubscribe(r->sub, a->ch_request);
        rds_conn_unsubscribe(r->sub, a->ch_response);
        rds_conn_unsubscribe(r->sub, a->ch_response_uid);
    }
    /* A restore still in flight answers later into nothing: detach it. */
    BASE_LIST_FOREACH_SAFE(li, tmp, &a->restores)
    {
        rds_restore_t *rs = BASE_CONTAINER_OF(li, rds_restore_t, link);
        base_list_remove(&rs->link);
        rs->a = NULL;
    }
    while (base_map_next(&a->live, &it, NULL, &v))
        rds__live_free(v);
    base_map_clear(&a->live);
    base_list_remove(&a->link);
    adp_rooms_clear(&base->rooms);
    base_free(a->ch_bcast);
    base_free(a->ch_pattern);
    base_free(a->ch_request);
    base_free(a->ch_response);
    base_free(a->ch_response_uid);
    base_free(base->nsp);
    base_free(a);
}

static const adp_vtable_t rds__vt = {
    .destroy = rds__destroy,
    .broadcast = rds__broadcast,
    .restore_session = rds__restore,
    .session_open = rds__session_open,
    .session_update = rds__session_update,
    .session_close = rds__session_close,
    .remote_apply = rds__req_remote_apply,
    .remote_fetch = rds__req_remote_fetch,
    .remote_all_rooms = rds__req_remote_all_rooms,
    .server_count = rds__req_server_count,
    .server_emit = rds__req_server_emit,
    .server_emit_reply = rds__req_server_emit_reply,
    .broadcast_ack = rds__req_broadcast_ack,
    .broadcast_ack_reply = rds__req_broadcast_ack_reply,
};

/* See rds_node.h. The subscriptions are recorded on the subscriber connection, which
 * re-issues them after every reconnect. */
adp_adapter_t *rds_adapter_new(rds_node_t *r, const char *nsp, const adp_host_t *host)
{
    rds_rnsp_t *a = base_calloc(1, sizeof(*a));

    a->base.vt = &rds__vt;
    a->base.nsp = base_strdup(nsp != NULL ? nsp : "/");
    if (host != NULL)
        a->base.host = *host;
    adp_rooms_init(&a->base.rooms);
    a->r = r;
    a->ch_bcast = rds_channel(RDS_CHAN_BROADCAST, r->channel_prefix, a->base.nsp, NULL);
    a->ch_bcast_len = strlen(a->ch_bcast);
    a->ch_pattern = rds_channel(RDS_CHAN_PATTERN, r->channel_prefix, a->base.nsp, NULL);
    a->ch_request = rds_channel(RDS_CHAN_REQUEST, r->channel_prefix, a->base.nsp, NULL);
    a->ch_response = rds_channel(RDS_CHAN_RESPONSE, r->channel_prefix, a->base.nsp, NULL);
    a->ch_response_uid = rds_channel(RDS_CHAN_RESPONSE_UID, r->channel_prefix, a->base.nsp, r->uid);
    base_map_init(&a->live);
    base_list_init(&a->restores);
    base_list_push_back(&r->adapters, &a->link);
    if (!r->closing) {
        rds_conn_psubscribe(r->sub, a->ch_pattern, rds__on_broadcast, a);
        rds_conn_subscribe(r->sub, a->ch_request, rds__req_on_message, a);
        rds_conn_subscribe(r->sub, a->ch_response, rds__req_on_message, a);
        rds_conn_subscribe(r->sub, a->ch_response_uid, rds__req_on_message, a);
    }
    return &a->base;
}

/* ---------------------------------------------------------------- node registry */

static void rds__ignore_reply(rds_conn_t *c, int err, redisReply *reply, void *ud)
{
}

/* P:node:<uid> (hash, PX 15 s) and P:nodes (zset scored by expiry, stale members
 * pruned): who is in the cluster, for operators and sockeye-ctl. */
static void rds__registry_write(rds_node_t *r)
{
    char key[512], zkey[512], pid[24], started[24], conns[24], exp[24], now[32], ttl[16];
    uint64_t t = base_now_ms();
    size_t nconn = r->cfg.connections != NULL ? r->cfg.connections(r->cfg.conn_ud) : 0;

    if (r->closed || !rds_conn_is_up(r->cmd))
        return;
    snprintf(key, sizeof(key), "%s:node:%s", r->key_prefix, r->uid);
    snprintf(zkey, sizeof(zkey), "%s:nodes", r->key_prefix);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    snprintf(started, sizeof(started), "%" PRIu64, r->started_ms);
    snprintf(conns, sizeof(conns), "%zu", nconn);
    snprintf(exp, sizeof(exp), "%" PRIu64, t + RDS_NODE_TTL_MS);
    snprintf(now, sizeof(now), "(%" PRIu64, t);
    snprintf(ttl, sizeof(ttl), "%d", RDS_NODE_TTL_MS);
    const char *hset[] = {"HSET",        key,
                          "id",          r->uid,
                          "address",     r->address ? r->address : "",
                          "pid",         pid,
                          "started",     started,
                          "connections", conns,
                          "version",     SOCKEYE_VERSION};
    const char *pexp[] = {"PEXPIRE", key, ttl};
    const char *zadd[] = {"ZADD", zkey, exp, r->uid};
    const char *prune[] = {"ZREMRANGEBYSCORE", zkey, "-inf", now};
    rds__cmd(r, rds__ignore_reply, NULL, 14, hset, NULL);
    rds__cmd(r, rds__ignore_reply, NULL, 3, pexp, NULL);
    rds__cmd(r, rds__ignore_reply, NULL, 4, zadd, NULL);
    rds__cmd(r, rds__ignore_reply, NULL, 4, prune, NULL);
}

static void rds__registry_remove(rds_node_t *r)
{
    char key[512], zkey[512];

    if (r->closed || !rds_conn_is_up(r->cmd))
        return;
    snprintf(key, sizeof(key), "%s:node:%s", r->key_prefix, r->uid);
    snprintf(zkey, sizeof(zkey), "%s:nodes", r->key_prefix);
    const char *del[] = {"DEL", key};
    const char *zrem[] = {"ZREM", zkey, r->uid};
    rds__cmd(r, rds__ignore_reply, NULL, 2, del, NULL);
    rds__cmd(r, rds__ignore_reply, NULL, 3, zrem, NULL);
}

static void rds__on_tick(uv_timer_t *t)
{
    rds_node_t *r = t->data;

    rds__registry_write(r);
    if (r->st != NULL && rds_conn_is_up(r->cmd))
        rds__refresh_sessions(r);
}

/* ---------------------------------------------------------------- connections */

static void rds__start_done(rds_node_t *r, int err, const char *reason)
{
    if (!r->start_pending)
        return;
    if (err == SIO_OK && !(r->cmd_ready && r->sub_ready))
        return;
    r->start_pending = 0;
    if (r->start_cb != NULL)
        r->start_cb(r->start_ud, err, reason);
}

static void rds__on_loaded(void *ud, int err)
{
    rds_node_t *r = ud;
    char reason[256];

    if (err == SIO_ECLOSED)
        return;
    if (err != SIO_OK) {
        snprintf(reason, sizeof(reason),
                 "cannot load the sockeye function library (Redis >= 7 is needed for "
                 "recovery): %s",
                 sio_strerror(err));
        rds__log(r, RDS_LOG_ERROR, "redis: %s", reason);
        rds__start_done(r, SIO_EREDIS, reason);
        return;
    }
    r->cmd_ready = 1;
    rds__start_done(r, SIO_OK, NULL);
}

static void rds__cmd_up(rds_conn_t *c, const rds_up_info_t *info, void *ud)
{
    rds_node_t *r = ud;

    if (r->st != NULL) {
        int rc = rds_streams_load(r->st, rds__on_loaded, r);
        if (rc != SIO_OK)
            rds__on_loaded(r, rc);
    } else {
        if (r->lib_wanted)
            rds__load_library(r); /* queues (rds_queue.c); failures are logged */
        r->cmd_ready = 1;
    }
    rds__registry_write(r);
    if (info->n_up > 1)
        rds__log(r, RDS_LOG_INFO,
                 "redis: command connection back after %" PRIu64
                 " ms: cross-node publishing resumes",
                 info->down_ms);
    rds__start_done(r, SIO_OK, NULL);
}

static void rds__cmd_down(rds_conn_t *c, const char *reason, void *ud)
{
    rds_node_t *r = ud;
    rds__log(r, RDS_LOG_WARN,
             "redis: command connection down (%s): broadcasts reach this node's clients "
             "only until it is back",
             reason);
}

static void rds__sub_up(rds_conn_t *c, const rds_up_info_t *info, void *ud)
{
    rds_node_t *r = ud;

    r->sub_ready = 1;
    if (info->n_up > 1)
        rds__log(r, RDS_LOG_INFO,
                 "redis: subscriber back after %" PRIu64
                 " ms, resubscribed %zu channel(s): cross-node delivery resumes",
                 info->down_ms, info->resubscribed);
    rds__start_done(r, SIO_OK, NULL);
}

static void rds__sub_down(rds_conn_t *c, const char *reason, void *ud)
{
    rds_node_t *r = ud;
    rds__log(r, RDS_LOG_WARN,
             "redis: subscriber connection down (%s): messages from other nodes are "
             "missed until it is back",
             reason);
}

static void rds__on_conn_start(rds_conn_t *c, int err, const char *reason, void *ud)
{
    rds_node_t *r = ud;
    char msg[512];

    if (err == SIO_OK)
        return; /* on_up follows */
    snprintf(msg, sizeof(msg), "%s (%s)", reason != NULL ? reason : sio_strerror(err),
             rds_conn_where(c));
    rds__start_done(r, err, msg);
}

/* See rds_node.h. Creates both connections (idle), the storage when recovery is on, and
 * the housekeeping timer; the uid comes from the OS random source (base_random_bytes), or from
 * the clock and pid when that fails (uniqueness, not secrecy, is what matters). */
rds_node_t *rds_node_new(uv_loop_t *loop, const rds_node_config_t *cfg)
{
    rds_conn_config_t cc;
    rds_conn_events_t ev = {0};
    unsigned char rnd[6];

    if (loop == NULL || cfg == NULL)
        return NULL;
    rds_node_t *r = base_calloc(1, sizeof(*r));
    r->loop = loop;
    r->cfg = *cfg;
    r->key_prefix = base_strdup(cfg->key_prefix != NULL ? cfg->key_prefix : "sockeye");
    r->channel_prefix =
        base_strdup(cfg->channel_prefix != NULL ? cfg->channel_prefix : "socket.io");
    r->cfg.key_prefix = r->key_prefix;
    r->cfg.channel_prefix = r->channel_prefix;
    r->cfg.url = NULL;
    if (r->cfg.request_timeout_ms == 0)
        r->cfg.request_timeout_ms = 5000;
    rds_url_init(&r->url);
    if (cfg->url != NULL) {
        rds_url_free(&r->url);
        rds_url_copy(&r->url, cfg->url);
    }
    if (base_random_bytes(rnd, sizeof(rnd)) != 0) {
        uint64_t x = uv_hrtime() ^ (uint64_t)getpid() << 32;
        for (size_t i = 0; i < sizeof(rnd); i++, x >>= 7)
            rnd[i] = (unsigned char)x;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        r->uid[i] = rds__uid_chars[rnd[i] & 63];
    r->uid[6] = '\0';
    r->started_ms = base_now_ms();
    base_list_init(&r->adapters);
    base_map_init(&r->requests);

    rds_conn_config_init(&cc);
    cc.url = &r->url;
    ev.ud = r;
    ev.on_log = rds__rds_log;
    ev.on_up = rds__cmd_up;
    ev.on_down = rds__cmd_down;
    r->cmd = rds_conn_new(loop, &cc, "command", &ev);
    cc.subscriber = 1;
    ev.on_up = rds__sub_up;
    ev.on_down = rds__sub_down;
    r->sub = rds_conn_new(loop, &cc, "subscriber", &ev);
    if (cfg->recovery) {
        rds_streams_config_t sc = {
            .key_prefix = r->key_prefix,
            .window_ms = cfg->recovery_window_ms != 0 ? cfg->recovery_window_ms : 120000,
            .detect_ms = cfg->detect_ms != 0 ? cfg->detect_ms : 65000,
            .batch = 100,
            .on_log = rds__rds_log,
            .log_ud = r,
        };
        r->st = rds_streams_new(r->cmd, &sc);
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->handles = 3;
    return r;
}

/* See rds_node.h. */
int rds_node_start(rds_node_t *r, void (*cb)(void *ud, int err, const char *reason), void *ud)
{
    if (r->started || r->closing)
        return SIO_EINVAL;
    r->started = 1;
    r->start_pending = 1;
    r->start_cb = cb;
    r->start_ud = ud;
    rds_conn_start(r->cmd, rds__on_conn_start, r);
    rds_conn_start(r->sub, rds__on_conn_start, r);
    uv_timer_start(&r->timer, rds__on_tick, RDS_TICK_MS, RDS_TICK_MS);
    uv_unref((uv_handle_t *)&r->timer);
    rds__log(r, RDS_LOG_INFO, "redis: node %s joining the cluster (channels %s#..., keys %s:...)",
             r->uid, r->channel_prefix, r->key_prefix);
    return SIO_OK;
}

/* See rds_node.h; rewrites the registry record now when connected. */
void rds_node_set_address(rds_node_t *r, const char *address)
{
    base_free(r->address);
    r->address = address != NULL ? base_strdup(address) : NULL;
    rds__registry_write(r);
}

/* ---------------------------------------------------------------- close */

static void rds__closed_one(void *ud)
{
    rds_node_t *r = ud;

    if (--r->handles > 0)
        return;
    if (r->close_cb != NULL)
        r->close_cb(r->close_ud);
}

static void rds__timer_closed(uv_handle_t *h)
{
    rds__closed_one(h->data);
}

/* Releases the connections: every callback still pending runs with SIO_ECLOSED. */
static void rds__close_now(rds_node_t *r)
{
    base_list_t *it;

    rds_node_get_stats(r, &r->stats); /* the counters of the connections, kept */
    r->closed = 1;
    rds__req_cancel(r, NULL, SIO_ECLOSED);
    if (r->st != NULL) {
        rds_streams_free(r->st);
        r->st = NULL;
    }
    /* Restores were failed by the storage; nothing else references the adapters'
     * subscriptions once the subscriber is gone. */
    for (it = r->adapters.next; it != &r->adapters; it = it->next) {
        rds_rnsp_t *a = BASE_CONTAINER_OF(it, rds_rnsp_t, link);
        base_map_iter_t mi = {0};
        void *v;
        while (base_map_next(&a->live, &mi, NULL, &v))
            rds__live_free(v);
        base_map_clear(&a->live);
    }
    rds_conn_close(r->cmd, rds__closed_one, r);
    rds_conn_close(r->sub, rds__closed_one, r);
    uv_close((uv_handle_t *)&r->timer, rds__timer_closed);
}

static void rds__drain_poll(uv_timer_t *t)
{
    rds_node_t *r = t->data;

    if (rds_conn_pending(r->cmd) > 0 && uv_now(r->loop) < r->drain_until)
        return;
    uv_timer_stop(&r->timer);
    rds__close_now(r);
}

/* See rds_node.h. */
void rds_node_close(rds_node_t *r, void (*cb)(void *ud), void *ud)
{
    if (r == NULL || r->closing)
        return;
    r->closing = 1;
    r->close_cb = cb;
    r->close_ud = ud;
    uv_timer_stop(&r->timer);
    rds__req_cancel(r, NULL, SIO_ECLOSED);
    rds__registry_remove(r);
    if (rds_conn_pending(r->cmd) == 0) {
        rds__close_now(r);
        return;
    }
    r->drain_until = uv_now(r->loop) + RDS_DRAIN_MS;
    uv_ref((uv_handle_t *)&r->timer);
    uv_timer_start(&r->timer, rds__drain_poll, 10, 10);
}

/* See rds_node.h. */
void rds_node_free(rds_node_t *r)
{
    if (r == NULL)
        return;
    base_map_clear(&r->requests); /* empty: every request ended at close */
    rds_url_free(&r->url);
    base_free(r->key_prefix);
    base_free(r->channel_prefix);
    base_free(r->address);
    base_free(r);
}

/* See rds_node.h. */
const char *rds_node_uid(const rds_node_t *r)
{
    return r->uid;
}

/* See rds_node.h; after close the connection counters are the last ones seen. */
void rds_node_get_stats(const rds_node_t *r, rds_node_stats_t *out)
{
    rds_conn_stats_t cs, ss;

    *out = r->stats;
    out->command_up = !r->closed && rds_conn_is_up(r->cmd);
    out->subscriber_up = !r->closed && rds_conn_is_up(r->sub);
    if (!r->closed && r->cmd != NULL) {
        rds_conn_get_stats(r->cmd, &cs);
        rds_conn_get_stats(r->sub, &ss);
        out->reconnects = cs.reconnects + ss.reconnects;
    }
}
