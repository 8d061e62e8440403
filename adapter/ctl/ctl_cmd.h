/* ctl_cmd.h -- the commands of sockeye-ctl: what a Sockeye cluster keeps in Redis, as
 * readable tables.
 *
 * Kept apart from ctl.c (arguments, connecting) so that each command can run against any
 * connected hiredis context and write to any stream: the unit test drives them against a
 * real redis-server and reads what they print. An operator's tool, so everything is
 * synchronous (hiredis' blocking API) and read-only, but for app_ctl_push (one message into a
 * durable queue, the way a node pushes it). Keys are those of
 * adapter/redis/REDIS.md, found with SCAN, never KEYS (KEYS blocks a production Redis for
 * as long as it walks the whole keyspace; SCAN does a bounded amount of work per call).
 * Listings are capped (APP_CTL_MAX_KEYS) so a huge cluster gives a truncated table and a
 * note instead of an unbounded run. Times are shown relative to Redis' clock (TIME), the
 * clock that stamped the offsets.
 */
#ifndef APP_CTL_CMD_H
#define APP_CTL_CMD_H

#include <stdint.h>
#include <stdio.h>

#include <hiredis/hiredis.h>

#define APP_CTL_MAX_KEYS 100000 /* keys listed per command at most */

/* What a command returns; sockeye-ctl exits with the value, or 1 for APP_CTL_EREDIS. */
enum {
    APP_CTL_OK = 0,
    APP_CTL_NOTFOUND = 1, /* app_ctl_session, app_ctl_queue: no such session / queue */
    APP_CTL_EINVAL = 2,   /* app_ctl_push: bad queue name or JSON, nothing sent; see err */
    APP_CTL_EREDIS = -1,  /* transport error, error reply or unexpected reply: see err */
};

/* The node's defaults of --queue-max-length and --queue-max-age (node/program/config.c):
 * the bounds app_ctl_push applies unless told others. */
#define APP_CTL_Q_MAX_LENGTH 1000000ULL
#define APP_CTL_Q_MAX_AGE_MS 604800000ULL

/* One run of commands against one Redis. */
typedef struct app_ctl {
    redisContext *c;    /* borrowed; connected, AUTH and SELECT done */
    const char *prefix; /* key prefix of the nodes (--redis-key-prefix); borrowed */
    FILE *out;          /* where tables and notes go */
    uint64_t now_ms;    /* Redis' clock, from app_ctl_read_clock (0 before) */
    char err[512];      /* why the last call returned APP_CTL_EREDIS / NULL */
} app_ctl_t;

/* Fills *x; touches nothing on the network. */
void app_ctl_init(app_ctl_t *x, redisContext *c, const char *prefix, FILE *out);

/* Runs one command. Returns its reply (freeReplyObject), or NULL with x->err set to
 * "redis: <transport error>" or "redis refused <argv[0]>: <error reply>". */
redisReply *app_ctl_command(app_ctl_t *x, int argc, const char **argv);

/* Reads Redis' clock (TIME) into x->now_ms: APP_CTL_OK or APP_CTL_EREDIS. */
int app_ctl_read_clock(app_ctl_t *x);

/* The commands. Each writes its table(s) to x->out and returns APP_CTL_OK, or
 * APP_CTL_EREDIS with x->err set, having written nothing more after the failure (what
 * was already written stays). nsp NULL means every namespace. */

/* Nodes registered (P:nodes and P:node:<uid>): live, stale, and records the zset lacks. */
int app_ctl_nodes(app_ctl_t *x);
/* Recovery sessions (P:{N}:sess:<pid>), one row each. */
int app_ctl_sessions(app_ctl_t *x, const char *nsp);
/* Recovery streams (P:{N}:all, P:{N}:r:<room>) and the offset counters (P:{N}:last). */
int app_ctl_streams(app_ctl_t *x, const char *nsp);
/* One session in full; APP_CTL_NOTFOUND (and a line saying so) when there is none. */
int app_ctl_session(app_ctl_t *x, const char *nsp, const char *pid);

/* Durable queues (README "Queues"; keys: P:queues, P:{q:T}:Q, its registry Q:c and its
 * dead letters Q.dead, T = Q without its trailing ".dead"s). */

/* The queues of the index P:queues (the most recently pushed APP_CTL_MAX_KEYS), one row
 * each: length, groups, pending, age of the oldest unacknowledged message, dead letters,
 * last push. */
int app_ctl_queues(app_ctl_t *x);
/* One queue: per group its consumers (with the node owning each), pending, idle, lag and
 * oldest pending, then its dead letters. APP_CTL_NOTFOUND (and a line saying so) when
 * its stream does not exist. */
int app_ctl_queue(app_ctl_t *x, const char *queue);
/* Pushes json (a JSON text, stored compact as field 'j', as a node stores a payload
 * without binary) to queue with FCALL sockeye_qpush and the bounds max_length (>= 1) and
 * max_age_ms (0: none), indexes the queue in P:queues, and prints the new id (and what
 * the bounds dropped). Loads the function library first when Redis has none (no node
 * with queues ran yet). APP_CTL_EINVAL, nothing sent, for a bad name (1-200 bytes, no
 * control character) or JSON. */
int app_ctl_push(app_ctl_t *x, const char *queue, const char *json, uint64_t max_length,
                 uint64_t max_age_ms);

#endif
