/* rds_streams.h -- connection state recovery stored in Redis (issue 4).
 *
 * The Redis side of recovery, as laid out in adapter/redis/REDIS.md: the function library
 * `sockeye` (publish + store in one atomic step, sessions), session write-through, and
 * the read half of a restore (session lookup, XRANGE of the session's streams in
 * bounded batches, merge by id, except-filtering, decoding). It sits on one command
 * connection (rds_conn_t) owned by the Redis adapter and knows nothing of sockets: the
 * adapter (adapter/redis/rds_node.c) calls it, holds live packets during a restore and merges them.
 *
 * Every function that takes a callback runs it exactly once when it returned SIO_OK,
 * and never when it returned an error.
 */
#ifndef RDS_STREAMS_H
#define RDS_STREAMS_H

#include <stddef.h>
#include <stdint.h>

#include "adapter.h"
#include "rds_conn.h"

typedef struct rds_streams rds_streams_t; /* one per node (all namespaces) */

typedef struct rds_streams_config {
    const char *key_prefix;  /* "sockeye" */
    uint64_t window_ms;      /* recovery window (maxDisconnectionDuration) */
    uint64_t detect_ms;      /* how long a dead connection can pass for alive: pingInterval +
                                2 x pingTimeout; entries are kept window + detect + 30 s */
    size_t batch;            /* XRANGE COUNT per call, default 100 */
    /* Added with the implementation (issue 4); zero/NULL = defaults. */
    size_t max_entries;      /* entries read per restore at most, default 100000 (SIO_ETOOBIG) */
    void (*on_log)(void *ud, int level, const char *msg); /* RDS_LOG_*; NULL = stderr */
    void *log_ud;
} rds_streams_config_t;

/* cmd must be a command (not subscriber) connection; borrowed, must outlive the result. */
rds_streams_t *rds_streams_new(rds_conn_t *cmd, const rds_streams_config_t *cfg);
/* Fails every pending callback with SIO_ECLOSED first. */
void rds_streams_free(rds_streams_t *st);

/* FUNCTION LOAD REPLACE the library. Call at every (re)connect of cmd (its on_up). */
int rds_streams_load(rds_streams_t *st, void (*cb)(void *ud, int err), void *ud);

/* The function library (adapter/redis/sockeye.lua, embedded at build time) as loaded by
 * rds_streams_load: for FUNCTION LOAD by a node that keeps queues without recovery. */
const void *rds_library(size_t *len);

/* FCALL sockeye_publish: store msg (msgpack [uid, packet, opts], no offset) under a new
 * offset in the stream of each room (or the namespace stream when n_rooms == 0), then
 * PUBLISH it with the offset appended ([uid, packet, opts, offset]) on channel.
 * cb gets the offset ("<ms>-<seq>") or an error (SIO_EREDIS, SIO_ETIMEDOUT ...). */
typedef void (*rds_publish_cb)(void *ud, int err, const char *offset);
int rds_streams_publish(rds_streams_t *st, const char *nsp, const char *const *rooms,
                        size_t n_rooms, const char *channel, const void *msg, size_t len,
                        rds_publish_cb cb, void *ud);

/* Sessions, written through while connected. owner identifies the connection that
 * holds the session (node uid + serial) so a stale owner's late writes are no-ops.
 * mark: the last offset the node delivered in the namespace (NULL or "" when it has seen
 * none: the namespace's last offset stands in). Entries up to it were published before
 * the socket could receive them, so a restore starts after it.
 * open: writes the hash with offset = mark, and its TTL. update: joined is the JSON object
 * room -> join mark of the rooms joined after the start (the node tracks them; "?" for a
 * join before the node had seen any offset: Redis resolves it), NULL to keep the stored. */
int rds_session_open(rds_streams_t *st, const char *nsp, const adp_session_t *s,
                     const char *owner, const char *mark, void (*cb)(void *ud, int err),
                     void *ud);
/* Rooms or data changed (fire and forget; failures are counted and logged). */
int rds_session_update(rds_streams_t *st, const char *nsp, const adp_session_t *s,
                       const char *owner, const char *joined);
/* Refresh the TTL of these sessions and raise their read times (a node calls it every few
 * seconds, pipelined). */
typedef struct rds_refresh {
    const char *pid;
    int has_age;     /* 0: the read time is not known (restored, no ping answered yet) */
    uint64_t age_ms; /* how long ago its client was known to have read everything */
} rds_refresh_t;
int rds_session_refresh(rds_streams_t *st, const char *nsp, const rds_refresh_t *items, size_t n);
/* The socket is gone: recoverable -> TTL = window from now; else delete. Owner-checked. */
int rds_session_release(rds_streams_t *st, const char *nsp, const char *pid, const char *owner,
                        int recoverable);

/* Read half of a restore. offset may be NULL (the client had received nothing: the
 * session's own offset is used). On success cb gets the session (owned by cb) and the
 * missed packets in offset order, each an EVENT whose data ends with its offset, already
 * filtered by the session's rooms, their join marks and the entries' except rooms (owned by
 * cb, array borrowed for the call); s->joined holds the join marks. SIO_ENOTFOUND: no
 * session, expired, its client unheard of for too long (read time), offset malformed or
 * never given out. Taking ownership (owner field) is part of the read. */
typedef void (*rds_restore_cb)(void *ud, int err, adp_session_t *s, cd_sio_packet_t **missed,
                               size_t n_missed);
int rds_streams_restore(rds_streams_t *st, const char *nsp, const char *pid, const char *offset,
                        const char *owner, rds_restore_cb cb, void *ud);

/* Counters for /metrics. */
typedef struct rds_streams_stats {
    uint64_t published, publish_failed, sessions_written, session_write_failed;
    uint64_t restores_ok, restores_failed, entries_replayed;
} rds_streams_stats_t;
void rds_streams_get_stats(const rds_streams_t *st, rds_streams_stats_t *out);

#endif
