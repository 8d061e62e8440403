/* redis.h -- the Redis adapter: one node of a cluster, wire-compatible with
 * @socket.io/redis-adapter 8.x (spec redis-wire.md §1, adapter/REDIS.md).
 *
 * Two levels, as in Node (one pub/sub client pair shared by every namespace's adapter):
 *   - adp_redis_t, one per node: the uid that tags everything this node publishes, a
 *     command connection and a subscriber connection (rds_conn_t: timeouts, reconnect,
 *     resubscribe), the recovery storage (rds_streams_t) when recovery is on, the node
 *     registry record refreshed every few seconds, and the table of requests this node
 *     is waiting answers for;
 *   - one adapter per namespace (adp_redis_adapter_new, an sio adapter factory), which
 *     subscribes that namespace's channels and implements adp_vtable_t.
 * Everything runs on the loop given to adp_redis_new; nothing here blocks.
 */
#ifndef ADP_REDIS_H
#define ADP_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "adapter.h"
#include "rds_url.h"

typedef struct adp_redis adp_redis_t;

typedef struct adp_redis_config {
    const rds_url_t *url;        /* borrowed by adp_redis_new, which copies it; NULL = local */
    const char *key_prefix;      /* keys: registry, sessions, streams ("sockeye") */
    const char *channel_prefix;  /* pub/sub channels ("socket.io") */
    unsigned request_timeout_ms; /* cluster requests (5000) */
    int recovery;                /* connection state recovery through Redis */
    uint64_t recovery_window_ms; /* its window (maxDisconnectionDuration) */
    uint64_t detect_ms;          /* pingInterval + 2 x pingTimeout: entries outlive sessions
                                    by this much (rds_streams.c, "Retention") */
    /* Log sink (levels as RDS_LOG_*); NULL = "sockeye: <level>: <msg>" on stderr. */
    void (*on_log)(void *ud, int level, const char *msg);
    void *log_ud;
    /* Connection count written into the node registry record; NULL = 0. */
    size_t (*connections)(void *ud);
    void *conn_ud;
} adp_redis_config_t;

typedef struct adp_redis_stats {
    int command_up, subscriber_up;
    uint64_t reconnects;       /* both connections summed */
    uint64_t publish_failures; /* broadcasts (and requests) that could not be published */
    uint64_t request_timeouts; /* our requests that ended before every node answered */
    uint64_t messages_in;      /* broadcasts from other nodes delivered here */
    uint64_t messages_out;     /* broadcasts published */
} adp_redis_stats_t;

/* A node's context. cfg and its strings are copied. NULL only for a NULL loop or cfg.
 * Nothing touches the network before adp_redis_start. Close with adp_redis_close,
 * then free with adp_redis_free once every adapter made from it is destroyed. */
adp_redis_t *adp_redis_new(uv_loop_t *loop, const adp_redis_config_t *cfg);

/* Connects both connections (and loads the recovery function library when recovery is
 * on). cb reports the first outcome once: SIO_OK when everything is up and every
 * subscription recorded so far is confirmed, or an error with a one-line reason
 * (SIO_EREDIS: unreachable, authentication refused, library refused; SIO_ECLOSED:
 * closed first). The connections keep retrying in the background after an error.
 * SIO_EINVAL when already started or closing (cb not called). */
int adp_redis_start(adp_redis_t *r, void (*cb)(void *ud, int err, const char *reason), void *ud);

/* The address written into the registry record ("host:port"); copied. */
void adp_redis_set_address(adp_redis_t *r, const char *address);

/* Graceful close: removes this node's registry record, lets the commands in flight
 * (session writes of the clients just closed) finish for up to 2 s, ends every pending
 * request with SIO_ECLOSED, closes both connections and every timer, then calls cb
 * from the loop. Adapters keep working locally afterwards (broadcasts return
 * SIO_EREDIS). Idempotent: a second call only replaces nothing and returns. */
void adp_redis_close(adp_redis_t *r, void (*cb)(void *ud), void *ud);

/* Frees the context after adp_redis_close's callback and after every adapter made
 * from it was destroyed. NULL is ignored. */
void adp_redis_free(adp_redis_t *r);

/* The adapter of namespace nsp on this node: an sio_adapter_factory_t (ud = the
 * adp_redis_t). Subscribes K#N#*, K-request#N#, K-response#N# and K-response#N#<uid>#
 * now (or at connect). Never NULL (OOM aborts). */
adp_adapter_t *adp_redis_adapter_new(void *r, const char *nsp, const adp_host_t *host);

/* This node's uid: 6 characters of [A-Za-z0-9_-], as Node's uid2(6). */
const char *adp_redis_uid(const adp_redis_t *r);

void adp_redis_get_stats(const adp_redis_t *r, adp_redis_stats_t *out);

#endif
