/* rds_private.h -- what rds_node.c (context, broadcasts, sessions, restore),
 * rds_link.c (commands, publishing, the log) and rds_req.c (cluster requests and
 * responses) share. Nothing else includes it.
 */
#ifndef RDS_PRIVATE_H
#define RDS_PRIVATE_H

#include "base_list.h"
#include "base_map.h"
#include "rds_channel.h"
#include "rds_conn.h"
#include "rds_node.h"
#include "rds_streams.h"
#include "rds_wire.h"

#define RDS_TICK_MS 5000      /* registry and session refresh period */
#define RDS_NODE_TTL_MS 15000 /* registry record lifetime: three missed refreshes */
#define RDS_DRAIN_MS 2000     /* close: how long commands in flight may finish */

/* One per node. */
struct rds_node {
    uv_loop_t *loop;
    rds_node_config_t cfg; /* strings point at the owned copies below */
    char *key_prefix;
    char *channel_prefix;
    rds_url_t url;
    char uid[8];
    rds_conn_t *cmd;      /* commands: PUBLISH, PUBSUB NUMSUB, registry, sessions */
    rds_conn_t *sub;      /* subscriptions only */
    rds_streams_t *st;    /* recovery storage; NULL when recovery is off */
    int lib_wanted;       /* queues need the function library (loaded by st when it exists) */
    base_list_t adapters; /* rds_rnsp_t.link */
    base_map_t requests;  /* request id -> rds_rreq_t*, ours awaiting answers */
    uint64_t next_req;
    uint64_t next_owner;
    uv_timer_t timer; /* registry + session refresh; while closing, the drain poll */
    char *address;
    uint64_t started_ms;

    void (*start_cb)(void *ud, int err, const char *reason);
    void *start_ud;
    int started, start_pending, cmd_ready, sub_ready;

    int closing;          /* rds_node_close called */
    int closed;           /* connections released: adapters work locally only */
    uint64_t drain_until; /* uv_now deadline of the drain */
    void (*close_cb)(void *ud);
    void *close_ud;
    int handles; /* timer + connections not yet closed */

    rds_node_stats_t stats;
    int fail_logged;         /* a publish failure was logged ... */
    uint64_t fail_logged_at; /* ... at this uv_now */
    uint64_t fails_unlogged; /* failures since that line */
};

/* A live broadcast held for a restore in flight (adapter/redis/REDIS.md "Restore"). */
typedef struct rds_held {
    base_list_t link;
    cd_sio_packet_t *pkt; /* owned; data ends with its offset */
    rds_opts_t opts;      /* owned */
    uint64_t ms, seq;     /* the offset */
} rds_held_t;

typedef struct rds_rnsp rds_rnsp_t;

/* One restore in flight. Outlives its adapter only through the detach (a == NULL). */
typedef struct rds_restore {
    base_list_t link; /* in a->restores */
    rds_rnsp_t *a;    /* NULL once the adapter is gone */
    char *pid;
    char *owner;
    int have_offset; /* the client sent an offset: held packets at or before it were seen */
    uint64_t ms, seq;
    adp_restore_cb cb;
    void *ud;
    base_list_t held; /* rds_held_t, arrival order */
    size_t n_held;
    int overflow; /* too much arrived meanwhile: the restore fails rather than lose any */
} rds_restore_t;

/* A session this node holds: who owns it (node uid + connection serial) and the join
 * mark of each of its rooms, tracked here, where the joins happen, so that a session
 * write that never reached Redis cannot move a mark later. */
typedef struct rds_live {
    char *owner;
    base_map_t rooms; /* room -> owned mark string, or rds__from_start (see rds_node.c) */
} rds_live_t;

/* One namespace's adapter. */
struct rds_rnsp {
    adp_adapter_t base;
    rds_node_t *r;
    base_list_t link; /* in r->adapters */
    char *ch_bcast;   /* K#N#, also the prefix of room channels */
    size_t ch_bcast_len;
    char *ch_pattern;      /* K#N#* (glob-escaped) */
    char *ch_request;      /* K-request#N# */
    char *ch_response;     /* K-response#N# */
    char *ch_response_uid; /* K-response#N#<uid># */
    base_map_t live;       /* pid -> rds_live_t*: sessions this node holds */
    /* The highest offset this node has seen in the namespace ("" = none yet), from the
     * subscriber, the one ordered source of its deliveries: a socket that connects or
     * joins a room now can only receive what comes after it (its session's mark). */
    char mark[48];
    uint64_t mark_ms, mark_seq;
    base_list_t restores; /* rds_restore_t */
};

/* ------------------------------------------------------------ rds_link.c */

/* One log line through the configured sink (stderr without one). Never fails. */
__attribute__((format(printf, 3, 4))) void rds__log(rds_node_t *r, int level, const char *fmt, ...);
/* A command with string arguments on the command connection (binary safe through lens;
 * NULL lens = strlen). SIO_ECLOSED once the node closed its connections. */
int rds__cmd(rds_node_t *r, rds_reply_cb cb, void *ud, int argc, const char *const *argv,
             const size_t *lens);
/* PUBLISH buf on channel through the command connection (fire and forget; a failure
 * is counted and logged). SIO_OK or the refusal (SIO_EREDIS when down). */
int rds__publish(rds_node_t *r, const char *channel, const void *buf, size_t len);
/* Counts one publish that did not reach Redis and logs it (rate-limited). */
void rds__publish_failed(rds_node_t *r, int err);
/* Sends FUNCTION LOAD REPLACE of the function library on the command connection (its
 * failure is logged: FCALLs then fail). SIO_OK or the connection's refusal. */
int rds__load_library(rds_node_t *r);
/* Something beside recovery (the queue store, rds_queue.c) calls the library's functions:
 * from now on the node loads it at every command-connection up, and now when up and not
 * loaded by the recovery storage. Commands sent after this call run after the load (one
 * connection answers in order). */
void rds__need_library(rds_node_t *r);

/* ------------------------------------------------------------ rds_req.c */

/* Subscription callback of K-request#N#, K-response#N# and K-response#N#<uid>#. */
void rds__req_on_message(rds_conn_t *c, const rds_message_t *m, void *ud);
/* Ends every request of adapter a (every request when a is NULL) with err. */
void rds__req_cancel(rds_node_t *r, rds_rnsp_t *a, int err);

int rds__req_remote_apply(adp_adapter_t *base, adp_apply_t what, const adp_opts_t *opts,
                          const char *const *rooms, size_t n_rooms, int close);
int rds__req_remote_fetch(adp_adapter_t *base, const adp_opts_t *opts, adp_list_cb cb, void *ud);
int rds__req_remote_all_rooms(adp_adapter_t *base, adp_list_cb cb, void *ud);
int rds__req_server_count(adp_adapter_t *base, adp_count_cb cb, void *ud);
int rds__req_server_emit(adp_adapter_t *base, const cJSON *args, adp_list_cb cb, void *ud);
int rds__req_server_emit_reply(adp_adapter_t *base, const char *request_id, const cJSON *arg);
int rds__req_broadcast_ack(adp_adapter_t *base, const cd_sio_packet_t *pkt, const adp_opts_t *opts,
                           uint64_t timeout_ms, const adp_ack_events_t *ev);
int rds__req_broadcast_ack_reply(adp_adapter_t *base, const char *request_id, const cJSON *arg,
                                 const sio_bin_t *bins, size_t n_bins);

#endif
