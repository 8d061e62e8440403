/* sio_provider.h -- what the protocol offers the layers above it (node/embed, the
 * program) besides the public API: a server built on a given adapter provider.
 *
 * The protocol names no adapter implementation: the namespaces get their adapters from
 * an adp_provider_t (adapter.h) registered here. The embedding entry points choose it
 * (sio_server_new: the memory adapter; sio_server_use_redis: the Redis adapter), which
 * keeps the protocol free of Redis and of the memory adapter's settings.
 */
#ifndef SIO_PROVIDER_H
#define SIO_PROVIDER_H

#include <uv.h>

#include "adapter.h"
#include "sockeye.h"

/* A server whose namespaces take their adapters from provider (copied; the server owns
 * provider->ud from now on and calls provider->free at sio_server_free, or at once when
 * this fails). cfg NULL = sio_config_init's defaults. NULL for a NULL loop, a provider
 * without create, or an invalid cfg. */
sio_server_t *sio__server_create(uv_loop_t *loop, const sio_config_t *cfg,
                                 const adp_provider_t *provider);

/* Replaces the provider: every namespace gets a new adapter from p, the old provider is
 * freed, and p->listening hears the address at once when the server already listens.
 * SIO_OK, or SIO_EINVAL (NULL arguments, a provider without create, a server that has
 * clients or is closing; p is then left to the caller). */
int sio__server_set_provider(sio_server_t *srv, const adp_provider_t *p);

/* 1 when sio__server_set_provider would accept a new provider now. */
int sio__server_provider_settable(const sio_server_t *srv);
/* The provider in use (borrowed). */
const adp_provider_t *sio__server_provider(const sio_server_t *srv);
/* The server's configuration (its copy, valid while the server lives). */
const sio_config_t *sio__server_config(const sio_server_t *srv);
uv_loop_t *sio__server_loop(const sio_server_t *srv);

/* The pid of s's session (connection state recovery: it names the session on every node),
 * NULL when recovery is off. */
const char *sio__socket_pid(const sio_socket_t *s);

/* What a layer above learns of every socket of a server (the queue engine: who consumes
 * is a socket, and what happens to its messages depends on how the socket ends). One per
 * registration; the struct is copied. */
typedef struct sio_observer {
    void *ud;
    /* s was admitted: connected, in its rooms, its replay queued, just before the
     * namespace's connection callback. sio_socket_recovered(s) tells a restored session. */
    void (*admitted)(void *ud, sio_socket_t *s);
    /* s, once connected, is closing: still valid, out of its rooms' futures but before its
     * pending acks end with SIO_ECLOSED and before its disconnect callback. recoverable: its
     * session is kept for a comeback (on this node or another). */
    void (*closing)(void *ud, sio_socket_t *s, int recoverable);
} sio_observer_t;

/* Adds an observer (at most SIO_MAX_OBSERVERS): SIO_OK or SIO_EINVAL. Observers are
 * called in registration order. */
#define SIO_MAX_OBSERVERS 4
int sio__server_observe(sio_server_t *srv, const sio_observer_t *o);
/* Removes the observer registered with ud (no call reaches it afterwards). */
void sio__server_unobserve(sio_server_t *srv, void *ud);

#endif
