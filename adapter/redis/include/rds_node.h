/* rds_node.h -- the Redis adapter: one node of a cluster, wire-compatible with
 * @socket.io/redis-adapter 8.x (spec redis-wire.md §1, adapter/redis/REDIS.md).
 *
 * Two levels, as in Node (one pub/sub client pair shared by every namespace's adapter):
 *   - rds_node_t, one per node: the uid that tags everything this node publishes, a
 *     command connection and a subscriber connection (rds_conn_t: timeouts, reconnect,
 *     resubscribe), the recovery storage (rds_streams_t) when recovery is on, the node
 *     registry record refreshed every few seconds, and the table of requests this node
 *     is waiting answers for;
 *   - one adapter per namespace (rds_adapter_new; node/embed makes it the server's
 *     adapter provider), which
 *     subscribes that namespace's channels and implements adp_vtable_t.
 * Everything runs on the loop given to rds_node_new; nothing here blocks.
 */
#ifndef RDS_NODE_H
#define RDS_NODE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "adapter.h"
#include "rds_url.h"

typedef struct rds_node rds_node_t;

typedef struct rds_node_config {
    const rds_url_t *url;        /* borrowed by rds_node_new, which copies it; NULL = local */
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
} rds_node_config_t;

typedef struct rds_node_stats {
    int command_up, subscriber_up;
    uint64_t reconnects;       /* both connections summed */
    uint64_t publish_failures; /* broadcasts (and requests) that could not be published */
    uint64_t request_timeouts; /* our requests that ended before every node answered */
    uint64_t messages_in;      /* broadcasts from other nodes delivered here */
    uint64_t messages_out;     /* broadcasts published */
} rds_node_stats_t;

/* A node's context. cfg and its strings are copied. NULL only for a NULL loop or cfg.
 * Nothing touches the network before rds_node_start. Close with rds_node_close,
 * then free with rds_node_free once every adapter made from it is destroyed. */
rds_node_t *rds_node_new(uv_loop_t *loop, const rds_node_config_t *cfg);

/* Connects both connections (and loads the recovery function library when recovery is
 * on). cb reports the first outcome once: SIO_OK when everything is up and every
 * subscription recorded so far is confirmed, or an error with a one-line reason
 * (SIO_EREDIS: unreachable, authentication refused, library refused; SIO_ECLOSED:
 * closed first). The connections keep retrying in the background after an error.
 * SIO_EINVAL when already started or closing (cb not called). */
int rds_node_start(rds_node_t *r, void (*cb)(void *ud, int err, const char *reason), void *ud);

/* The address written into the registry record ("host:port"); copied. */
void rds_node_set_address(rds_node_t *r, const char *address);

/* Graceful close: removes this node's registry record, lets the commands in flight
 * (session writes of the clients just closed) finish for up to 2 s, ends every pending
 * request with SIO_ECLOSED, closes both connections and every timer, then calls cb
 * from the loop. Adapters keep working locally afterwards (broadcasts return
 * SIO_EREDIS). Idempotent: a second call only replaces nothing and returns. */
void rds_node_close(rds_node_t *r, void (*cb)(void *ud), void *ud);

/* Frees the context after rds_node_close's callback and after every adapter made
 * from it was destroyed. NULL is ignored. */
void rds_node_free(rds_node_t *r);

/* The adapter of namespace nsp on this node: an sio_adapter_factory_t (ud = the
 * rds_node_t). Subscribes K#N#*, K-request#N#, K-response#N# and K-response#N#<uid>#
 * now (or at connect). Never NULL (OOM aborts). */
adp_adapter_t *rds_adapter_new(rds_node_t *r, const char *nsp, const adp_host_t *host);

/* This node's uid: 6 characters of [A-Za-z0-9_-], as Node's uid2(6). */
const char *rds_node_uid(const rds_node_t *r);

void rds_node_get_stats(const rds_node_t *r, rds_node_stats_t *out);

#endif
