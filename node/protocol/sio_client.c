/* sio_client.c -- the protocol's side of one Engine.IO session: sending packets and
 * frames to it, closing it, and the count of uv handles the server waits for when it
 * closes.
 *
 * Everything the other protocol files send goes through here, so the "is this client
 * still usable" rule lives in one place: once the engine reported the close, or we
 * started closing, nothing more is queued.
 */
#include <string.h>

#include "base_alloc.h"
#include "sio_private.h"

int sio__client_usable(const sio_client_t *c)
{
    return c != NULL && c->eio != NULL && !c->closing;
}

void sio__client_close(sio_client_t *c, const char *reason)
{
    if (!sio__client_usable(c))
        return;
    c->closing = 1;
    eio_session_close(c->eio, reason);
}

int sio__client_send_frames(sio_client_t *c, base_frame_t **frames, size_t n, unsigned eio_flags)
{
    if (!sio__client_usable(c))
        return SIO_ECLOSED;
    for (size_t i = 0; i < n; i++) {
        /* A dropped volatile text frame drops its attachments too: alone they
         * would desynchronise the client's decoder. */
        int rc = eio_session_send(c->eio, frames[i], eio_flags);
        if (rc != SIO_OK)
            return rc;
    }
    return SIO_OK;
}

int sio__client_send(sio_client_t *c, const cd_sio_packet_t *p, unsigned eio_flags)
{
    base_frame_t *stack[8];
    base_frame_t **frames = stack;
    size_t want = 1 + p->n_attach;
    int rc;

    if (!sio__client_usable(c))
        return SIO_ECLOSED;
    if (want > sizeof(stack) / sizeof(stack[0]))
        frames = base_malloc(want * sizeof(*frames));
    size_t n = cd_sio_encode(p, frames);
    rc = n > 0 ? sio__client_send_frames(c, frames, n, eio_flags) : SIO_EINVAL;
    for (size_t i = 0; i < n; i++)
        base_frame_unref(frames[i]);
    if (frames != stack)
        base_free(frames);
    return rc;
}

static void sio__provider_closed(void *arg)
{
    sio__server_handle_gone(arg);
}

/* The last steps of sio_server_close, once the engine is gone: the adapter provider
 * closes after every client (their closes just wrote their sessions), then the close
 * callback runs when no handle of ours is left. */
void sio__server_maybe_closed(sio_server_t *srv)
{
    if (srv->closing && srv->eio_closed && srv->provider.close != NULL && !srv->provider_closing) {
        srv->provider_closing = 1;
        srv->n_handles++;
        srv->provider.close(srv->provider.ud, sio__provider_closed, srv);
        return;
    }
    if (srv->closing && srv->eio_closed && srv->n_handles == 0 && !srv->close_fired) {
        srv->close_fired = 1;
        if (srv->close_cb != NULL)
            srv->close_cb(srv->close_arg);
    }
}

void sio__server_handle_gone(sio_server_t *srv)
{
    srv->n_handles--;
    sio__server_maybe_closed(srv);
}

void sio__send_connect_error(sio_client_t *c, const char *nsp, const char *message, cJSON *data)
{
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_CONNECT_ERROR, nsp);
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "message", message);
    if (data != NULL)
        cJSON_AddItemToObject(o, "data", data);
    p->data = o;
    sio__client_send(c, p, 0);
    cd_sio_packet_free(p);
}

/* See sio_private.h. A copy of the array: an observer may remove itself meanwhile. */
void sio__observers_admitted(sio_server_t *srv, sio_socket_t *s)
{
    sio_observer_t obs[SIO_MAX_OBSERVERS];
    size_t n = srv->n_observers;

    memcpy(obs, srv->observers, n * sizeof(*obs));
    for (size_t i = 0; i < n; i++)
        if (obs[i].admitted != NULL)
            obs[i].admitted(obs[i].ud, s);
}

void sio__observers_closing(sio_server_t *srv, sio_socket_t *s, int recoverable)
{
    sio_observer_t obs[SIO_MAX_OBSERVERS];
    size_t n = srv->n_observers;

    memcpy(obs, srv->observers, n * sizeof(*obs));
    for (size_t i = 0; i < n; i++)
        if (obs[i].closing != NULL)
            obs[i].closing(obs[i].ud, s, recoverable);
}
