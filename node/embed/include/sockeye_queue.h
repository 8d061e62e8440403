/* sockeye_queue.h -- durable queues on a server: messages stored until a consumer
 * acknowledges them, each processed by one consumer of a group at a time.
 *
 * A queue is a named, ordered log, global to the cluster (the same queue from every
 * namespace and every node). A group on a queue receives every message of the queue;
 * inside a group each message goes to exactly one consumer at a time, spread over the
 * consumers that have room under their prefetch. A message leaves its group only when
 * its consumer acknowledges it; a consumer that cancels or disconnects on purpose gives
 * its unacknowledged messages back at once, one whose connection was lost (and may come
 * back: connection state recovery) keeps them for the recovery window, and a message not
 * acknowledged within the ack timeout, or held by a consumer whose node died, is
 * delivered again -- to another consumer, or to the same session when it comes back --
 * with its delivery count raised, up to max_deliveries, after which it moves to the
 * dead-letter queue "<queue>.dead".
 *
 * Delivery is at least once: a consumer may see a message again (its deliveries > 1),
 * and processing exactly once is the consumer's business, with the message id.
 *
 * Consumers are sockets: the server emits queue:msg(queue, {id, payload, deliveries})
 * with an acknowledgement request, and the client's ack is the acknowledgement. The
 * consumers of a socket are kept in its socket.data under "queues" (an array of {queue,
 * group, prefetch}), so a recovered session keeps them on whichever node it comes back
 * to, and is handed again at once what it held.
 *
 * With Redis (sockeye_redis.h) queues are Redis streams and consumer groups (durable as
 * Redis is; adapter/redis/REDIS.md, "Queues", also says how backend workers in any
 * language consume them); with the in-memory adapter they live in the process.
 */
#ifndef SOCKEYE_QUEUE_H
#define SOCKEYE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "sockeye.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sio_queues sio_queues_t; /* one per server */

typedef struct sio_queue_config {
    unsigned ack_timeout_ms;  /* a delivery not acknowledged by then is given back, 30000 */
    unsigned max_deliveries;  /* deliveries of one message before the dead-letter queue, 5 */
    unsigned max_prefetch;    /* upper bound of a consumer's prefetch, 1000 */
    unsigned default_prefetch; /* prefetch of a consumer that names none, 100 */
    uint64_t max_length;      /* messages a queue keeps at most, 1000000 */
    uint64_t max_age_ms;      /* age past which a message is dropped, 7 days; 0 = none */
    size_t max_payload;       /* bytes of one message (JSON text + buffers), 1000000 */
    /* Pushes awaiting the store's answer at most, 10000: past it a push is refused at once
     * (SIO_EBUSY) instead of queueing behind a Redis that cannot keep up, where it would
     * wait past the command timeout and fail anyway after using memory. */
    unsigned max_pushes_in_flight;
    /* Log sink (levels 0 error .. 3 debug: messages dropped by a bound, dead letters);
     * NULL writes "sockeye: <level>: <msg>" lines on stderr. */
    void (*on_log)(void *ud, int level, const char *msg);
    void *log_ud;
} sio_queue_config_t;

/* Fills cfg with the defaults above. */
void sio_queue_config_init(sio_queue_config_t *cfg);

/* The queues of srv (cfg copied; NULL = defaults), on the store its adapter offers (the
 * memory adapter's, or Redis' once sio_server_use_redis was called: make the queues
 * after it). NULL when the adapter keeps no queues or cfg is invalid. Close with
 * sio_queues_close before the server closes, then free. */
sio_queues_t *sio_queues_new(sio_server_t *srv, const sio_queue_config_t *cfg);
/* Stops delivering, passes on the acknowledgements already received, lets the store
 * flush, then calls cb from the loop. Messages still in flight stay with their consumers'
 * sessions: a session that comes back elsewhere gets them again at once, others go back
 * to their group after the ack timeout. */
void sio_queues_close(sio_queues_t *q, void (*cb)(void *arg), void *arg);
void sio_queues_free(sio_queues_t *q);

/* Outcome of a push: err SIO_OK and the message's id once it is stored (with Redis: once
 * Redis confirmed the write); SIO_EREDIS (Redis down: nothing is buffered), SIO_ETOOBIG,
 * SIO_ECLOSED. Runs exactly once unless sio_queue_push returned an error. */
typedef void (*sio_queue_push_cb)(int err, const char *id, void *ud);

/* Stores payload (consumed; placeholders index bins, which are copied) at the end of
 * queue. SIO_EINVAL for a bad name (1-200 bytes, no control character) or bins,
 * SIO_EBUSY when max_pushes_in_flight pushes await the store already (counted). */
int sio_queue_push(sio_queues_t *q, const char *queue, cJSON *payload, const sio_bin_t *bins,
                   size_t nbins, sio_queue_push_cb cb, void *ud);

/* Makes s a consumer of group on queue with at most prefetch unacknowledged messages
 * (0 = the default). Idempotent for the same socket, queue and group (the prefetch is
 * updated). SIO_EINVAL for a bad name or prefetch, SIO_ECLOSED for a closed socket. */
int sio_queue_consume(sio_queues_t *q, sio_socket_t *s, const char *queue, const char *group,
                      unsigned prefetch);
/* Stops it: its unacknowledged messages go back to the group at once. SIO_ENOTFOUND when
 * s does not consume group on queue. */
int sio_queue_cancel(sio_queues_t *q, sio_socket_t *s, const char *queue, const char *group);

typedef struct sio_queue_stats {
    uint64_t pushed, delivered, redelivered, acknowledged, dead_lettered, trimmed,
        trimmed_unread;      /* by this node (trimmed_unread: dropped by a bound unread) */
    uint64_t timeouts;       /* deliveries not acknowledged in time */
    uint64_t busy;           /* pushes refused: max_pushes_in_flight reached */
    size_t pushes_in_flight; /* pushes awaiting the store's answer */
    size_t consumers;        /* consumers on this node (held sessions included) */
    size_t in_flight;        /* deliveries awaiting their acknowledgement here */
} sio_queue_stats_t;

void sio_queues_stats(const sio_queues_t *q, sio_queue_stats_t *out);
/* In-flight deliveries of this node per queue: calls fn once per queue with some. */
void sio_queues_each_in_flight(const sio_queues_t *q,
                               void (*fn)(void *ud, const char *queue, size_t n), void *ud);

#ifdef __cplusplus
}
#endif
#endif
