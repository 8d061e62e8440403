/* sio_socket.c -- sockets: the namespace handshake (connection state recovery,
 * middlewares, the CONNECT reply), event dispatch, acknowledgements both ways,
 * rooms, disconnects and the handshake accessors.
 *
 * The application gets raw pointers to sockets, so a socket must never vanish
 * under a callback that was handed it: every call out holds the socket and a closed
 * socket is freed by the last release (see sio_private.h). Each server->client ack
 * request ends exactly once -- answer, timeout, or SIO_ECLOSED when the socket
 * closes first -- because a silent drop is indistinguishable from a slow client.
 */
#include <stdio.h>
#include <string.h>

#include "base_alloc.h"
#include "sio_private.h"

/* Reasons after which the client may come back and recover (spec 3): the link died,
 * not the intent. Namespace disconnects and parse errors are final. */
static const char *const sio__recoverable[] = {
    "transport error", "transport close",      "forced close",
    "ping timeout",    "server shutting down", "forced server close",
};

static int sio__reason_recoverable(const char *reason)
{
    for (size_t i = 0; i < sizeof(sio__recoverable) / sizeof(sio__recoverable[0]); i++)
        if (strcmp(reason, sio__recoverable[i]) == 0)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- rooms */

static void sio__socket_session_changed(sio_socket_t *s);

int sio__adapter_join(sio_namespace_t *nsp, sio_socket_t *s, const char *room)
{
    return adp_join(nsp->adapter, s->id, s, room);
}

/* Adds s to room. SIO_ECLOSED for a closed socket. Allowed while connecting (in a
 * middleware), as in Node. */
int sio_socket_join(sio_socket_t *s, const char *room)
{
    if (s == NULL || room == NULL)
        return SIO_EINVAL;
    if (s->state == SIO_SOCK_CLOSED)
        return SIO_ECLOSED;
    int was = adp_is_member(s->nsp->adapter, s->id, room);
    int rc = sio__adapter_join(s->nsp, s, room);
    if (!was)
        sio__socket_session_changed(s);
    return rc;
}

/* Removes s from room (no-op when not a member). */
int sio_socket_leave(sio_socket_t *s, const char *room)
{
    if (s == NULL || room == NULL)
        return SIO_EINVAL;
    if (s->state == SIO_SOCK_CLOSED)
        return SIO_ECLOSED;
    if (!adp_is_member(s->nsp->adapter, s->id, room))
        return SIO_OK;
    adp_leave(s->nsp->adapter, s->id, room);
    sio__socket_session_changed(s);
    return SIO_OK;
}

int sio_socket_in_room(const sio_socket_t *s, const char *room)
{
    if (s == NULL || room == NULL || s->state == SIO_SOCK_CLOSED)
        return 0;
    return adp_is_member(s->nsp->adapter, s->id, room);
}

size_t sio_socket_room_count(const sio_socket_t *s)
{
    if (s == NULL || s->state == SIO_SOCK_CLOSED)
        return 0;
    return adp_socket_rooms(s->nsp->adapter, s->id, NULL, 0);
}

static void sio__socket_leave_all(sio_socket_t *s)
{
    adp_leave_all(s->nsp->adapter, s->id);
}

/* ---------------------------------------------------------------- sessions */

void sio__socket_session(sio_socket_t *s, adp_session_t *sess, const char **stack, size_t n_stack)
{
    adp_adapter_t *a = s->nsp->adapter;
    const char **rooms = stack;
    size_t n = adp_socket_rooms(a, s->id, stack, n_stack);

    if (n > n_stack) {
        rooms = base_malloc(n * sizeof(*rooms));
        n = adp_socket_rooms(a, s->id, rooms, n);
    }
    sess->sid = s->id;
    sess->pid = s->pid;
    sess->rooms = (char **)rooms;
    sess->n_rooms = n;
    sess->data = s->data;
    sess->has_read_age = (unsigned char)sio__socket_read_age(s, &sess->read_age_ms);
}

/* See sio_private.h. A new socket has missed nothing, so its admission counts as a read;
 * a restored one only reads once it answers a ping queued after its replay. */
int sio__socket_read_age(const sio_socket_t *s, uint64_t *age_ms)
{
    sio_client_t *c = s->client;
    uint64_t now, read_at = 0;
    int known = 0;

    /* a closing socket still has its client and engine session: its final read counts */
    if (c == NULL || c->eio == NULL || !s->admitted)
        return 0;
    now = uv_now(c->srv->loop);
    if (!s->recovered) {
        read_at = s->admitted_at;
        known = 1;
    }
    if (eio_session_read_at(c->eio) >= s->admitted_at) {
        read_at = eio_session_read_at(c->eio);
        known = 1;
    }
    if (known)
        *age_ms = now > read_at ? now - read_at : 0;
    return known;
}

/* See sio_private.h. */
void sio__session_done(adp_session_t *sess, const char **stack)
{
    if ((const char **)sess->rooms != stack)
        base_free(sess->rooms);
}

/* Tells a write-through adapter that s's rooms or data changed (connected sockets
 * with a session only: a connecting one is written whole when it is admitted). */
static void sio__socket_session_changed(sio_socket_t *s)
{
    adp_adapter_t *a = s->nsp->adapter;
    const char *stack[32];
    adp_session_t sess;

    if (s->state != SIO_SOCK_CONNECTED || s->pid == NULL || a->vt->session_update == NULL)
        return;
    sio__socket_session(s, &sess, stack, 32);
    a->vt->session_update(a, &sess);
    sio__session_done(&sess, stack);
}

/* ---------------------------------------------------------------- close */

/* The session's end: kept for a comeback when recoverable (memory adapter: saved;
 * write-through adapters: given its final TTL), dropped otherwise. */
static void sio__socket_end_session(sio_socket_t *s, int recoverable)
{
    adp_adapter_t *a = s->nsp->adapter;
    const char *stack[32];
    adp_session_t sess;

    if (a->vt->session_close == NULL && (!recoverable || a->vt->save_session == NULL))
        return;
    sio__socket_session(s, &sess, stack, 32);
    if (a->vt->session_close != NULL)
        a->vt->session_close(a, &sess, recoverable);
    else
        a->vt->save_session(a, &sess);
    sio__session_done(&sess, stack);
}

void sio__socket_close(sio_socket_t *s, const char *reason, int send_disconnect)
{
    sio_client_t *c = s->client;
    sio_namespace_t *nsp = s->nsp;
    sio_server_t *srv = nsp->srv;
    sio_sock_state_t was = s->state;

    if (was == SIO_SOCK_CLOSED)
        return;
    sio__socket_hold(s);
    s->state = SIO_SOCK_CLOSED;
    if (c != NULL && base_map_get(&c->sockets, nsp->name) == s)
        base_map_del(&c->sockets, nsp->name);
    if (was == SIO_SOCK_CONNECTED) {
        if (send_disconnect && c != NULL) {
            cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_DISCONNECT, nsp->name);
            sio__client_send(c, p, 0);
            cd_sio_packet_free(p);
        }
        if (base_map_get(&nsp->sockets, s->id) == s)
            base_map_del(&nsp->sockets, s->id);
        /* A superseded socket's session lives on in the socket that took it over. */
        int recoverable = srv->cfg.recovery && s->pid != NULL &&
                          (s->superseded || (reason != NULL && sio__reason_recoverable(reason)));
        if (srv->cfg.recovery && s->pid != NULL && !s->superseded)
            sio__socket_end_session(s, recoverable);
        sio__observers_closing(srv, s, recoverable);
    }
    sio__socket_leave_all(s);
    sio__pending_fail_all(s);
    if (was == SIO_SOCK_CONNECTED && s->on_disconnect != NULL)
        s->on_disconnect(s, reason != NULL ? reason : "server namespace disconnect",
                         s->disconnect_ud);
    s->client = NULL;
    sio__socket_release(s);
}

/* Sends DISCONNECT for s's namespace and closes s ("server namespace disconnect");
 * close=1 does so for every namespace of the connection, then closes it. s may be
 * freed on return (not while the caller is inside one of s's callbacks). */
void sio_socket_disconnect(sio_socket_t *s, int close)
{
    if (s == NULL || s->state == SIO_SOCK_CLOSED)
        return;
    if (close && s->client != NULL)
        sio__client_disconnect_all(s->client);
    else
        sio__socket_close(s, "server namespace disconnect", 1);
}

/* Closes every socket of c with reason, holding each across its close because a
 * disconnect callback may close the others. */
void sio__client_close_sockets(sio_client_t *c, const char *reason, int send_disconnect)
{
    size_t n = base_map_size(&c->sockets), i = 0;
    sio_socket_t **all;
    base_map_iter_t it = {0};
    const char *k;
    void *v;

    if (n == 0)
        return;
    all = base_malloc(n * sizeof(*all));
    while (i < n && base_map_next(&c->sockets, &it, &k, &v)) {
        all[i] = v;
        sio__socket_hold(all[i++]);
    }
    for (size_t j = 0; j < i; j++) {
        sio__socket_close(all[j], reason, send_disconnect);
        sio__socket_release(all[j]);
    }
    base_free(all);
}

void sio__client_disconnect_all(sio_client_t *c)
{
    sio__client_close_sockets(c, "server namespace disconnect", 1);
    sio__client_close(c, "forced close");
}

/* ---------------------------------------------------------------- connect */

/* A recovered socket that will not be admitted (a middleware refused it: an expired
 * token, say) took its session over for this attempt. Give it back as it was restored
 * (rooms of the session, not those a middleware joined meanwhile), so that the next
 * attempt, with a fresh token, still recovers, as Node keeps it; a write-through adapter
 * also stops holding and refreshing it. */
static void sio__socket_give_back(sio_socket_t *s, const adp_session_t *restored)
{
    adp_adapter_t *a = s->nsp->adapter;
    adp_session_t back = {.sid = s->id,
                          .pid = s->pid,
                          .rooms = restored->rooms,
                          .n_rooms = restored->n_rooms,
                          .data = s->data};

    if (back.pid == NULL)
        return;
    if (a->vt->session_close != NULL)
        a->vt->session_close(a, &back, 1);
    else if (a->vt->save_session != NULL)
        a->vt->save_session(a, &back);
}

size_t sio_socket_restored_rooms(const sio_socket_t *s, const char *const **rooms)
{
    if (s == NULL || rooms == NULL || s->restored == NULL)
        return 0;
    *rooms = (const char *const *)s->restored->rooms;
    return s->restored->n_rooms;
}

int sio_socket_decline_recovery(sio_socket_t *s)
{
    char id[21];

    if (s == NULL || s->state != SIO_SOCK_CONNECTING || !s->recovered || s->restored == NULL)
        return SIO_EINVAL;
    sio__socket_give_back(s, s->restored);
    s->restored = NULL;
    s->recovered = 0;
    s->has_floor = 0;
    sio__socket_leave_all(s); /* what a middleware joined under the old id */
    base_random_id(id);
    base_free(s->id);
    s->id = base_strdup(id);
    base_random_id(id);
    base_free(s->pid);
    s->pid = base_strdup(id);
    cJSON_Delete(s->data);
    s->data = cJSON_CreateObject();
    return SIO_OK;
}

/* Middlewares, then the CONNECT reply (missed packets first on a restore), rooms
 * and the connection callback. The caller holds s. */
static void sio__socket_admit(sio_socket_t *s, const adp_session_t *sess, cd_sio_packet_t **missed,
                              size_t n_missed)
{
    sio_namespace_t *nsp = s->nsp;
    sio_server_t *srv = nsp->srv;
    sio_client_t *c = s->client;

    if (!(s->recovered && srv->cfg.recovery_skip_middlewares)) {
        int was_recovered = s->recovered;

        s->restored = s->recovered ? sess : NULL;
        for (size_t i = 0; i < nsp->n_mw; i++) {
            sio_middleware_t mw = nsp->mw[i];
            sio_conn_error_t err = {0};
            int rc = mw.cb(s, &err, mw.ud);

            if (s->state == SIO_SOCK_CLOSED || rc != 0)
                s->restored = NULL;
            if (s->state == SIO_SOCK_CLOSED) {
                base_free(err.message);
                cJSON_Delete(err.data);
                if (s->recovered && sess != NULL)
                    sio__socket_give_back(s, sess);
                return;
            }
            if (rc != 0) {
                sio__send_connect_error(
                    c, nsp->name, err.message != NULL ? err.message : "Not authorized", err.data);
                base_free(err.message);
                if (s->recovered && sess != NULL)
                    sio__socket_give_back(s, sess);
                sio__socket_close(s, NULL, 0);
                return;
            }
            base_free(err.message);
            cJSON_Delete(err.data);
        }
        s->restored = NULL;
        if (was_recovered && !s->recovered) { /* declined: admitted as a new session */
            sess = NULL;
            n_missed = 0;
        }
    }
    /* Closing already (a middleware closed the connection): the engine's close
     * will drop the socket; it never becomes connected. */
    if (!sio__client_usable(c)) {
        if (s->recovered && sess != NULL)
            sio__socket_give_back(s, sess);
        return;
    }
    s->state = SIO_SOCK_CONNECTED;
    s->admitted_at = uv_now(srv->loop);
    s->admitted = 1;
    base_map_put(&nsp->sockets, s->id, s);
    uv_timer_stop(&c->connect_timer);
    sio__adapter_join(nsp, s, s->id);
    for (size_t i = 0; sess != NULL && i < sess->n_rooms; i++)
        sio__adapter_join(nsp, s, sess->rooms[i]);
    for (size_t i = 0; i < n_missed; i++)
        sio__client_send(c, missed[i], EIO_SEND_BACKLOG);

    cd_sio_packet_t *reply = cd_sio_packet_new(CD_SIO_CONNECT, nsp->name);
    reply->data = cJSON_CreateObject();
    cJSON_AddStringToObject(reply->data, "sid", s->id);
    if (s->pid != NULL)
        cJSON_AddStringToObject(reply->data, "pid", s->pid);
    sio__client_send(c, reply, 0);
    cd_sio_packet_free(reply);

    if (srv->cfg.recovery && s->pid != NULL && nsp->adapter->vt->session_open != NULL) {
        const char *stack[32];
        adp_session_t sess;
        sio__socket_session(s, &sess, stack, 32);
        nsp->adapter->vt->session_open(nsp->adapter, &sess);
        sio__session_done(&sess, stack);
    }
    sio__observers_admitted(srv, s);
    if (nsp->on_conn != NULL)
        nsp->on_conn(s, nsp->conn_ud);
}

/* The client came back to this very node before its old connection was noticed dead:
 * that socket still holds the sid (and with it the rooms, keyed by sid). It goes now,
 * before s joins anything, and without ending the session, which s has just taken over:
 * its late close must neither release s's session nor take s's rooms. */
static void sio__socket_supersede(sio_socket_t *s)
{
    sio_socket_t *old = base_map_get(&s->nsp->sockets, s->id);

    if (old == NULL || old == s)
        return;
    old->superseded = 1;
    sio__socket_close(old, "transport close", 0);
}

static void sio__on_restore(void *ud, int err, adp_session_t *sess, cd_sio_packet_t **missed,
                            size_t n_missed)
{
    sio_socket_t *s = ud;

    s->restoring = 0;
    if (s->state != SIO_SOCK_CLOSED) {
        if (err == SIO_OK && sess != NULL && sess->sid != NULL) {
            base_free(s->id);
            s->id = sess->sid;
            sess->sid = NULL;
            if (sess->pid != NULL) {
                base_free(s->pid);
                s->pid = sess->pid;
                sess->pid = NULL;
            }
            if (sess->data != NULL) {
                cJSON_Delete(s->data);
                s->data = sess->data;
                sess->data = NULL;
            }
            s->recovered = 1;
            sio__socket_supersede(s);
            if (n_missed > 0)
                s->has_floor = adp_packet_offset(missed[n_missed - 1], &s->floor_ms, &s->floor_seq);
            sio__socket_admit(s, sess, missed, n_missed);
        } else {
            sio__socket_admit(s, NULL, NULL, 0);
        }
    } else if (err == SIO_OK && sess != NULL && s->nsp->adapter->vt->session_close != NULL) {
        /* The client left while its session was being restored: the session was taken
         * over for it, give it back for the next attempt. */
        s->nsp->adapter->vt->session_close(s->nsp->adapter, sess, 1);
    }
    if (sess != NULL)
        adp_session_free(sess);
    /* The packets are ours, the array stays the adapter's (adapter.h). */
    for (size_t i = 0; i < n_missed; i++)
        cd_sio_packet_free(missed[i]);
    sio__socket_release(s);
}

void sio__socket_connect(sio_client_t *c, sio_namespace_t *nsp, cd_sio_packet_t *p)
{
    sio_server_t *srv = c->srv;
    char *pid = NULL, *offset = NULL;

    sio_socket_t *s = sio__socket_new(c, nsp);
    if (cJSON_IsObject(p->data)) {
        s->auth = p->data;
        p->data = NULL;
    } else {
        s->auth = cJSON_CreateObject();
    }
    cd_sio_packet_free(p);
    if (srv->cfg.recovery) {
        /* The client merges {pid, offset} into its auth; they are ours, not the app's. */
        cJSON *jp = cJSON_DetachItemFromObjectCaseSensitive(s->auth, "pid");
        cJSON *jo = cJSON_DetachItemFromObjectCaseSensitive(s->auth, "offset");
        /* No offset: the client received nothing yet (a write-through adapter knows
         * where its session began; the memory adapter declines). */
        if (cJSON_IsString(jp)) {
            pid = base_strdup(jp->valuestring);
            offset = cJSON_IsString(jo) ? base_strdup(jo->valuestring) : NULL;
        }
        cJSON_Delete(jp);
        cJSON_Delete(jo);
    }

    sio__socket_hold(s);
    adp_adapter_t *a = nsp->adapter;
    if (pid != NULL && a->vt->restore_session != NULL) {
        s->restoring = 1;
        sio__socket_hold(s);
        int rc = a->vt->restore_session(a, pid, offset, sio__on_restore, s);
        if (rc != SIO_OK && s->restoring) {
            /* A call that fails never runs its callback: new session. */
            s->restoring = 0;
            sio__socket_release(s);
            sio__socket_admit(s, NULL, NULL, 0);
        }
    } else {
        sio__socket_admit(s, NULL, NULL, 0);
    }
    base_free(pid);
    base_free(offset);
    sio__socket_release(s);
}

/* ---------------------------------------------------------------- incoming packets */

static int sio__ack_in_pending(const sio_socket_t *s, int64_t id)
{
    const base_list_t *li;
    for (li = s->acks_in.next; li != &s->acks_in; li = li->next)
        if (BASE_CONTAINER_OF(li, sio_ack_t, node)->id == id)
            return 1;
    return 0;
}

static void sio__socket_event(sio_socket_t *s, cd_sio_packet_t *p)
{
    cJSON *name = p->data != NULL ? p->data->child : NULL;
    char num[32];
    const char *ev;

    if ((ev = sio__event_name(name, num)) == NULL)
        return;
    sio_handler_t *h = base_map_get(&s->handlers, ev);
    sio_handler_t hd = h != NULL ? *h : s->any; /* copied: the callback may replace it */
    if (hd.cb == NULL)
        return;
    cJSON_DetachItemViaPointer(p->data, name);

    sio_ack_t *ack = NULL;
    /* A repeated id would let the app answer one request twice. */
    if (p->id >= 0 && !sio__ack_in_pending(s, p->id)) {
        ack = base_calloc(1, sizeof(*ack));
        ack->s = s;
        ack->id = p->id;
        base_list_push_back(&s->acks_in, &ack->node);
    }
    hd.cb(s, ev, p->data, p->attach, p->n_attach, ack, hd.ud);
    cJSON_Delete(name);
}

static void sio__socket_ack_reply(sio_socket_t *s, cd_sio_packet_t *p)
{
    sio_pending_t *pe = sio__pending_find(s, p->id);
    cJSON *empty = NULL;
    cJSON *args = p->data;

    if (pe == NULL)
        return; /* unknown, late or duplicate: ignored, as Node does */
    if (args == NULL)
        args = empty = cJSON_CreateArray();
    if (pe->bc != NULL) {
        sio_bcast_t *bc = pe->bc;
        sio__pending_free(pe);
        sio__bcast_answer(bc, args, p->attach, p->n_attach);
    } else {
        sio_ack_cb cb = pe->cb;
        void *ud = pe->ud;
        sio__pending_free(pe);
        if (cb != NULL)
            cb(s, SIO_OK, args, p->attach, p->n_attach, ud);
    }
    cJSON_Delete(empty);
}

void sio__socket_packet(sio_socket_t *s, cd_sio_packet_t *p)
{
    sio__socket_hold(s);
    switch (p->type) {
    case CD_SIO_DISCONNECT:
        sio__socket_close(s, "client namespace disconnect", 0);
        break;
    case CD_SIO_EVENT:
    case CD_SIO_BINARY_EVENT:
        sio__socket_event(s, p);
        break;
    case CD_SIO_ACK:
    case CD_SIO_BINARY_ACK:
        sio__socket_ack_reply(s, p);
        break;
    default:
        break;
    }
    cd_sio_packet_free(p);
    sio__socket_release(s);
}

/* ---------------------------------------------------------------- handlers */

/* Sets the handler of event (replacing any); cb NULL removes it. */
void sio_socket_on(sio_socket_t *s, const char *event, sio_event_cb cb, void *ud)
{
    if (s == NULL || event == NULL)
        return;
    sio_handler_t *old = base_map_del(&s->handlers, event);
    base_free(old);
    if (cb == NULL)
        return;
    sio_handler_t *h = base_malloc(sizeof(*h));
    h->cb = cb;
    h->ud = ud;
    base_map_put(&s->handlers, event, h);
}

void sio_socket_on_any(sio_socket_t *s, sio_event_cb cb, void *ud)
{
    s->any.cb = cb;
    s->any.ud = ud;
}

void sio_socket_on_disconnect(sio_socket_t *s, sio_disconnect_cb cb, void *ud)
{
    s->on_disconnect = cb;
    s->disconnect_ud = ud;
}

/* ---------------------------------------------------------------- emits */

/* EVENT to this socket. With recovery on (and s connected) it goes through the
 * adapter as a broadcast to s's own room, as Node does, so it gets an offset and is
 * replayed after a reconnect. args consumed; bins copied. */
int sio_socket_emit(sio_socket_t *s, const char *event, cJSON *args, const sio_bin_t *bins,
                    size_t nbins)
{
    int rc;

    if (s == NULL || event == NULL || cd_sio_event_reserved(event) || (nbins && bins == NULL)) {
        cJSON_Delete(args);
        return SIO_EINVAL;
    }
    if (s->state == SIO_SOCK_CLOSED || !sio__client_usable(s->client)) {
        cJSON_Delete(args);
        return SIO_ECLOSED;
    }
    cd_sio_packet_t *p = sio__event_packet(s->nsp->name, event, args, bins, nbins);
    if (s->nsp->srv->cfg.recovery && s->state == SIO_SOCK_CONNECTED) {
        adp_adapter_t *a = s->nsp->adapter;
        const char *rooms[1] = {s->id};
        adp_opts_t o = {.rooms = rooms, .n_rooms = 1};
        rc = a->vt->broadcast(a, p, &o);
    } else {
        rc = sio__client_send(s->client, p, 0);
    }
    cd_sio_packet_free(p);
    return rc;
}

/* EVENT with an ack id; cb runs exactly once unless this returns an error. */
int sio_socket_emit_ack(sio_socket_t *s, const char *event, cJSON *args, const sio_bin_t *bins,
                        size_t nbins, unsigned timeout_ms, sio_ack_cb cb, void *ud)
{
    if (s == NULL || event == NULL || cb == NULL || cd_sio_event_reserved(event) ||
        (nbins && bins == NULL)) {
        cJSON_Delete(args);
        return SIO_EINVAL;
    }
    if (s->state == SIO_SOCK_CLOSED || !sio__client_usable(s->client)) {
        cJSON_Delete(args);
        return SIO_ECLOSED;
    }
    cd_sio_packet_t *p = sio__event_packet(s->nsp->name, event, args, bins, nbins);
    p->id = s->nsp->next_ack_id++;
    sio_pending_t *pe = sio__pending_add(s, p->id, cb, ud, NULL, timeout_ms);
    int rc = sio__client_send(s->client, p, 0);
    cd_sio_packet_free(p);
    if (rc != SIO_OK)
        sio__pending_free(pe);
    return rc;
}

/* Answers a client's request once; frees ack in every case. SIO_ECLOSED when its
 * socket closed in the meantime (ack kept valid until the socket is freed). */
int sio_ack(sio_ack_t *ack, cJSON *args, const sio_bin_t *bins, size_t nbins)
{
    if (ack == NULL || (nbins && bins == NULL)) {
        cJSON_Delete(args);
        if (ack != NULL) {
            base_list_remove(&ack->node);
            base_free(ack);
        }
        return SIO_EINVAL;
    }
    sio_socket_t *s = ack->s;
    int64_t id = ack->id;
    base_list_remove(&ack->node);
    base_free(ack);
    if (s->state != SIO_SOCK_CONNECTED || !sio__client_usable(s->client)) {
        cJSON_Delete(args);
        return SIO_ECLOSED;
    }
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_ACK, s->nsp->name);
    p->id = id;
    p->data = cJSON_CreateArray();
    sio__append_args(p->data, args);
    if (nbins > 0)
        cd_sio_packet_add_attachments(p, bins, nbins);
    int rc = sio__client_send(s->client, p, 0);
    cd_sio_packet_free(p);
    return rc;
}

/* ---------------------------------------------------------------- accessors */

const char *sio_socket_id(const sio_socket_t *s)
{
    return s->id;
}

/* See sio_provider.h. */
const char *sio__socket_pid(const sio_socket_t *s)
{
    return s->pid;
}

sio_namespace_t *sio_socket_nsp(const sio_socket_t *s)
{
    return s->nsp;
}

const cJSON *sio_socket_auth(const sio_socket_t *s)
{
    return s->auth;
}

static eio_session_t *sio__socket_eio(const sio_socket_t *s)
{
    return s->client != NULL ? s->client->eio : NULL;
}

const char *sio_socket_address(const sio_socket_t *s)
{
    eio_session_t *e = sio__socket_eio(s);
    return e != NULL ? eio_session_address(e) : "";
}

const char *sio_socket_url(const sio_socket_t *s)
{
    eio_session_t *e = sio__socket_eio(s);
    return e != NULL ? eio_session_url(e) : "";
}

const char *sio_socket_transport(const sio_socket_t *s)
{
    eio_session_t *e = sio__socket_eio(s);
    return e != NULL ? eio_session_transport(e) : "";
}

int sio_socket_recovered(const sio_socket_t *s)
{
    return s->recovered;
}

/* Decoded once by the engine at the handshake (Node's querystring rules). */
const char *sio_socket_query(const sio_socket_t *s, const char *key)
{
    if (s == NULL || key == NULL || s->client == NULL || s->client->eio == NULL)
        return NULL;
    return eio_session_query_get(s->client->eio, key);
}

cJSON *sio_socket_data(sio_socket_t *s)
{
    return s->data;
}

void sio_socket_set_data(sio_socket_t *s, cJSON *data)
{
    if (s == NULL) {
        cJSON_Delete(data);
        return;
    }
    cJSON_Delete(s->data);
    s->data = data != NULL ? data : cJSON_CreateObject();
    sio__socket_session_changed(s);
}

void *sio_socket_userdata(const sio_socket_t *s)
{
    return s->userdata;
}

void sio_socket_set_userdata(sio_socket_t *s, void *p)
{
    s->userdata = p;
}
