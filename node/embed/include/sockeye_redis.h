/* sockeye_redis.h -- opt-in: make a server a node of a cluster behind Redis.
 *
 * Include it beside sockeye.h when a program clusters; a program that does not never
 * sees a Redis type. With Redis every node of a cluster shares broadcasts, room
 * operations and the cluster calls of sockeye.h (fetch sockets, all rooms, server
 * count, server-side emit), and connection state recovery survives a node's death. The
 * wire format is that of @socket.io/redis-adapter 8.x, so Node.js servers on that adapter
 * and @socket.io/redis-emitter publishers can be part of the same cluster; the keys
 * Sockeye keeps are described in adapter/redis/REDIS.md.
 */
#ifndef SOCKEYE_REDIS_H
#define SOCKEYE_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "sockeye.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sio_redis_config {
    const char *url;             /* redis://[user:pass@]host[:port][/db] or unix://; NULL =
                                  * redis://127.0.0.1:6379 */
    const char *key_prefix;      /* keys Sockeye stores (registry, sessions), default "sockeye" */
    const char *channel_prefix;  /* pub/sub channels, default "socket.io" (Node's `key`) */
    unsigned request_timeout_ms; /* cluster requests, default 5000 (Node's requestsTimeout) */
    /* Log sink for connection events (lost, back, publish failures); level is 0 error,
     * 1 warn, 2 info, 3 debug. NULL writes "sockeye: <level>: <msg>" lines on stderr. */
    void (*on_log)(void *ud, int level, const char *msg);
    void *log_ud;
} sio_redis_config_t;

/* Fills cfg with the defaults above. */
void sio_redis_config_init(sio_redis_config_t *cfg);

/* First outcome of sio_server_use_redis: err SIO_OK once both Redis connections are up
 * and every namespace is subscribed (a message published from now on is received), or
 * SIO_EREDIS with a one-line reason (unreachable, refused authentication, bad db ...;
 * the connections keep retrying in the background). */
typedef void (*sio_redis_cb)(sio_server_t *srv, int err, const char *reason, void *ud);

/* Makes srv a node of the cluster behind Redis: every namespace (existing and future)
 * gets the Redis adapter. Call once, before sio_server_listen (listening from cb, once
 * it reports SIO_OK, means no client reaches a node that cannot hear the others yet);
 * cfg is copied; cb may be NULL. Returns SIO_OK (cb will run), or SIO_EINVAL for a URL
 * that does not parse, a second call, or a server that already has clients (cb never
 * runs). When Redis goes away later, clients stay connected, local delivery goes on,
 * cross-node broadcasts fail with SIO_EREDIS, and the node reconnects, resubscribes
 * and logs both. The connections close with sio_server_close, after every client, so
 * a server using Redis must be closed before sio_server_free. */
int sio_server_use_redis(sio_server_t *srv, const sio_redis_config_t *cfg, sio_redis_cb cb,
                         void *ud);

/* Counters for monitoring. */
typedef struct sio_redis_stats {
    int enabled; /* sio_server_use_redis was called */
    int up;      /* both connections are up */
    int command_up, subscriber_up;
    uint64_t reconnects;       /* times a connection came back, both connections summed */
    uint64_t publish_failures; /* broadcasts that could not reach the other nodes */
    uint64_t request_timeouts; /* cluster requests that ended before every node answered */
    uint64_t messages_in;      /* broadcasts received from other nodes and delivered */
    uint64_t messages_out;     /* broadcasts published */
    const char *uid;           /* this node's id in the cluster ("" without Redis) */
} sio_redis_stats_t;

/* Fills out (all zero / "" without Redis). */
void sio_server_redis_stats(const sio_server_t *srv, sio_redis_stats_t *out);

/* Checks a Redis URL as sio_server_use_redis would read it: SIO_OK, or SIO_EINVAL with
 * a one-line reason in err (a configuration check before anything starts). */
int sio_redis_url_check(const char *url, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
