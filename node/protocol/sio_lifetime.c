/* sio_lifetime.c -- a socket's life: creation, holds, and the free at the last release.
 *
 * The application gets raw pointers to sockets, so a socket must never vanish under a
 * callback that was handed it: every call out holds the socket, and a closed socket is
 * freed by the last release (sio_private.h, "Lifetimes"). Kept apart from sio_socket.c
 * because the ack bookkeeping (sio_ack.c), below the socket logic, needs the holds too.
 */
#include "base_alloc.h"
#include "sio_private.h"

sio_socket_t *sio__socket_new(sio_client_t *c, sio_namespace_t *nsp)
{
    sio_socket_t *s = base_calloc(1, sizeof(*s));
    char id[21];

    s->client = c;
    s->nsp = nsp;
    base_random_id(id);
    s->id = base_strdup(id);
    if (nsp->srv->cfg.recovery) {
        base_random_id(id);
        s->pid = base_strdup(id);
    }
    s->data = cJSON_CreateObject();
    s->issued = base_now_ms();
    s->state = SIO_SOCK_CONNECTING;
    base_map_init(&s->handlers);
    base_list_init(&s->acks_out);
    base_list_init(&s->acks_in);
    base_map_put(&c->sockets, nsp->name, s);
    return s;
}

static void sio__socket_free(sio_socket_t *s)
{
    base_map_iter_t it = {0};
    const char *k;
    void *v;
    base_list_t *li, *tmp;

    while (base_map_next(&s->handlers, &it, &k, &v))
        base_free(v);
    base_map_clear(&s->handlers);
    BASE_LIST_FOREACH_SAFE(li, tmp, &s->acks_in)
    {
        sio_ack_t *a = BASE_CONTAINER_OF(li, sio_ack_t, node);
        base_list_remove(&a->node);
        base_free(a);
    }
    cJSON_Delete(s->auth);
    cJSON_Delete(s->data);
    base_free(s->id);
    base_free(s->pid);
    base_free(s);
}

void sio__socket_hold(sio_socket_t *s)
{
    s->holds++;
}

void sio__socket_release(sio_socket_t *s)
{
    if (--s->holds == 0 && s->state == SIO_SOCK_CLOSED)
        sio__socket_free(s);
}
