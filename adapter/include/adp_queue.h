/* adp_queue.h -- durable queues: what a queue store keeps, and what the queue engine
 * (node/embed/sio_queue.c) asks of it.
 *
 * A queue is a named, ordered log of messages. A group on a queue receives every message
 * of the queue; inside a group each message is held by one consumer at a time until that
 * consumer acknowledges it. The store keeps the log, the groups and, per group, which
 * consumer holds which message (its pending set); the engine keeps the sockets: who
 * consumes what with which prefetch, deliveries in flight, acknowledgement timeouts.
 *
 * Consumers are named by the store's callers: the engine names a WebSocket consumer by
 * its session's pid, so that whichever node the session comes back to finds the
 * messages it held (adopt); a backend worker names itself. One consumer name is special:
 * ADP_Q_RETURNED holds the messages given back to the group (release, a sweep), which the
 * next take hands out before any new one.
 *
 * Delivery counts: a message's first delivery counts 1; every later hand-out (after a
 * release, a sweep, an adopt) raises it. A take that would hand out a message for the
 * (max_deliveries + 1)-th time moves it to the queue "<queue>.dead" instead (pushed there
 * as a new message with the same payload), so a message that no consumer can process
 * does not loop for ever.
 *
 * Every call runs on the loop the store was made on; callbacks run from the loop (never
 * inside the call that asked), exactly once unless the call returned an error. Names
 * (queue, group, consumer) are checked by the caller: 1-200 bytes, no control characters.
 */
#ifndef ADP_QUEUE_H
#define ADP_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sockeye_common.h"

/* The consumer that holds messages given back to a group, until a take hands them out. */
#define ADP_Q_RETURNED "~ret"
/* Suffix of a queue's dead-letter queue. */
#define ADP_Q_DEAD_SUFFIX ".dead"

/* Settings of a store (one per node). */
typedef struct adp_qconfig {
    /* A message held by a consumer that has not been heard of for this long (its node
     * died) is given back to its group by the store's sweep. The engine gives back its
     * own consumers' timed-out messages itself, at the ack timeout; the store's sweep
     * runs at ack_timeout_ms + a margin so that it only finds what a dead node left. */
    uint64_t ack_timeout_ms;
    unsigned max_deliveries; /* hand-outs of one message before it is dead-lettered */
    uint64_t max_length;     /* messages a queue keeps at most (oldest dropped, counted); a
                                store may apply it (and max_age_ms) shortly after a push
                                rather than in it: Redis within its trim period */
    uint64_t max_age_ms;     /* older messages are dropped (counted); 0 = no age bound */
    size_t max_payload;      /* bytes of one stored message at most (push: SIO_ETOOBIG) */
} adp_qconfig_t;

/* One message handed out by a store; the receiver owns it (adp_qmsg_free). */
typedef struct adp_qmsg {
    char *id;            /* the store's id, "<ms>-<seq>": unique and ordered per queue */
    uint64_t deliveries; /* 1 at the first delivery */
    cJSON *payload;      /* the pushed value, binary as placeholders */
    sio_bin_t *bins;     /* the placeholders' buffers (owned), n_bins of them */
    size_t n_bins;
} adp_qmsg_t;

void adp_qmsg_free(adp_qmsg_t *m);

/* Counters of a store, since it was made (for /metrics). */
typedef struct adp_qstats {
    uint64_t pushed;         /* messages stored by this node */
    uint64_t delivered;      /* messages handed out by takes and adopts of this node */
    uint64_t redelivered;    /* of which deliveries > 1 */
    uint64_t acknowledged;   /* acks this node passed on */
    uint64_t dead_lettered;  /* messages this node's takes moved to a dead-letter queue */
    uint64_t trimmed;        /* messages dropped by a bound (length, age) by this node */
    uint64_t trimmed_unread; /* of which some group had not acknowledged yet */
} adp_qstats_t;

typedef struct adp_qstore adp_qstore_t;

/* What the store tells the engine. */
typedef struct adp_qevents {
    void *ud;
    /* Messages may be waiting for group on queue (a push, a release, a sweep found some):
     * the engine takes if one of its consumers has room. Only for watched groups; may be
     * spurious (a take then finds nothing). */
    void (*ready)(void *ud, const char *queue, const char *group);
    /* A line for the node's log (levels 0 error .. 3 debug), e.g. messages dropped by a
     * bound. May be NULL. */
    void (*log)(void *ud, int level, const char *msg);
} adp_qevents_t;

/* Outcome of a push: err SIO_OK with the message's id once the store has it (and, for
 * a durable store, once it confirmed the write), else SIO_EREDIS (store unreachable),
 * SIO_ETOOBIG (over max_payload) or SIO_ECLOSED (the store is closing); id NULL then. */
typedef void (*adp_qpush_cb)(void *ud, int err, const char *id);

/* Outcome of a take or an adopt: err SIO_OK and n messages (possibly 0), each handed to
 * the consumer at the same index of to[] (an index into the consumers of the request);
 * else an error and n 0. The messages are the callback's (adp_qmsg_free each); the
 * arrays are the store's, valid during the call. */
typedef void (*adp_qtake_cb)(void *ud, int err, adp_qmsg_t **msgs, const size_t *to, size_t n);

typedef struct adp_qstore_vt {
    /* Stores a message (payload and buffers copied) at the end of queue, which exists from
     * then on; groups that already exist will receive it, and wakes their watchers. */
    int (*push)(adp_qstore_t *qs, const char *queue, const cJSON *payload, const sio_bin_t *bins,
                size_t n_bins, adp_qpush_cb cb, void *ud);

    /* This node has a consumer of group on queue (the first one): the group is created at
     * the oldest message the queue keeps when it does not exist, ready() is called for it
     * from now on, and the store sweeps it (ack_timeout_ms). unwatch: the last one left. */
    int (*watch)(adp_qstore_t *qs, const char *queue, const char *group);
    void (*unwatch)(adp_qstore_t *qs, const char *queue, const char *group);

    /* Hands up to want[i] messages to consumers[i], for i < n: given-back messages first
     * (oldest first), then new ones in queue order; a consumer gets its share before the
     * next one, so one call spreads messages in the order of consumers[]. Dead-letters
     * what is past max_deliveries instead of handing it out. */
    int (*take)(adp_qstore_t *qs, const char *queue, const char *group,
                const char *const *consumers, const size_t *want, size_t n, adp_qtake_cb cb,
                void *ud);

    /* The message was processed: it leaves the group's pending set (no matter who holds it:
     * a late ack still counts). Fire and forget; the store may batch acks. */
    void (*ack)(adp_qstore_t *qs, const char *queue, const char *group, const char *id);

    /* Gives the messages back to the group now, each only if consumer still holds it (a
     * sweep may have given it to another already). Fire and forget. */
    void (*release)(adp_qstore_t *qs, const char *queue, const char *group, const char *consumer,
                    const char *const *ids, size_t n);
    /* Gives back everything consumer holds in group and forgets the consumer. */
    void (*release_all)(adp_qstore_t *qs, const char *queue, const char *group,
                        const char *consumer);

    /* Keeps what consumer holds in group from the sweep for another ack_timeout_ms (a
     * session that may still come back: the engine calls it every few seconds). */
    void (*hold)(adp_qstore_t *qs, const char *queue, const char *group, const char *consumer);

    /* The session named consumer came back on this node: hands it again everything it
     * holds in group (deliveries raised, to[] all 0; past max_deliveries dead-lettered as
     * by take), and the consumer is this node's from now on. */
    int (*adopt)(adp_qstore_t *qs, const char *queue, const char *group, const char *consumer,
                 adp_qtake_cb cb, void *ud);

    void (*get_stats)(const adp_qstore_t *qs, adp_qstats_t *out);

    /* Ends every call in flight with SIO_ECLOSED (from the loop), flushes what it batched
     * when it can, then frees the store once nothing of it is left on the loop. */
    void (*destroy)(adp_qstore_t *qs);
} adp_qstore_vt_t;

/* Base of every store; implementations embed it first. */
struct adp_qstore {
    const adp_qstore_vt_t *vt;
    adp_qconfig_t cfg;
    adp_qevents_t ev;
};

/* Name rules of queues, groups and consumers (1-200 bytes, no control character):
 * 1 when name is valid. */
int adp_qname_ok(const char *name);

#endif
