/* rds_queue.h -- the durable queue store of a Redis node (adp_queue.h on Redis streams).
 *
 * A queue is a Redis stream, a queue group a consumer group of it; every step that moves
 * a message between consumers is one FCALL of the function library (sockeye.lua,
 * sockeye_q*), so that nodes and backend workers sharing a queue never both hold one
 * message. Keys, functions, timing and the contract for workers in other languages:
 * adapter/redis/REDIS.md "Queues".
 *
 * The store rides on its node's connections: commands on the command connection, the
 * queues' ready channels on the subscriber (re-subscribed by it after a reconnect, when a
 * ready is signalled for every watched group: what was pushed meanwhile is waiting).
 * Everything runs on the node's loop.
 */
#ifndef RDS_QUEUE_H
#define RDS_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "adp_queue.h"
#include "rds_node.h"

/* The queue store of node (cfg and ev copied), which makes the node load the function
 * library at every connect from now on. Destroy it (vt->destroy) before rds_node_close.
 * NULL when the node is closing or a NULL argument. */
adp_qstore_t *rds_queue_new(rds_node_t *node, const adp_qconfig_t *cfg, const adp_qevents_t *ev);

/* Timing of the store's own passes (defaults: margin 5000 ms, trim 2000 ms): a watched
 * group is swept of messages idle for ack_timeout_ms + sweep_margin_ms, every half of
 * that; a watched queue is trimmed every trim_ms while this node acknowledged in it (or
 * it has an age bound). 0 keeps a value. For tests and tuning. */
void rds_queue_set_timing(adp_qstore_t *qs, uint64_t sweep_margin_ms, uint64_t trim_ms);

/* The function library (adapter/redis/sockeye.lua, embedded at build time; defined in
 * rds_streams.c, declared in rds_streams.h too): for a program that calls sockeye_qpush
 * without a node (sockeye-ctl push) and must FUNCTION LOAD it when Redis has none. */
const void *rds_library(size_t *len);

#endif
