/* rds_link.c -- what every part of a Redis node says through its command connection:
 * commands, PUBLISH (a failure counted and logged, rate-limited), the node's log, and the
 * load of the function library for the queue store when recovery does not load it.
 *
 * Kept apart from rds_node.c (the node and its adapters) so that the cluster requests
 * (rds_req.c), which publish and log too, depend on this file only, and rds_node.c
 * depends on rds_req.c for the requests: one direction.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "rds_private.h"

#define RDS_FAIL_LOG_MS 5000 /* at most one "could not be published" line this often */

/* One log line through the configured sink (stderr without one). Never fails. */
void rds__log(rds_node_t *r, int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rds_log_v(r->cfg.on_log, r->cfg.log_ud, level, RDS_LOG_DEBUG, fmt, ap);
    va_end(ap);
}

/* Command with string arguments (binary safe through lens; NULL lens = strlen). */
int rds__cmd(rds_node_t *r, rds_reply_cb cb, void *ud, int argc, const char *const *argv,
             const size_t *lens)
{
    if (r->closed)
        return SIO_ECLOSED;
    return rds_conn_command_argv(r->cmd, cb, ud, argc, argv, lens);
}

void rds__publish_failed(rds_node_t *r, int err)
{
    uint64_t now = uv_now(r->loop);

    r->stats.publish_failures++;
    r->fails_unlogged++;
    if (r->fail_logged && now - r->fail_logged_at < RDS_FAIL_LOG_MS)
        return;
    rds__log(r, RDS_LOG_WARN,
             "redis: %" PRIu64 " message(s) could not be published (%s): other nodes "
             "miss them, this node's clients still got theirs",
             r->fails_unlogged, sio_strerror(err));
    r->fail_logged = 1;
    r->fail_logged_at = now;
    r->fails_unlogged = 0;
}

static void rds__publish_reply(rds_conn_t *c, int err, redisReply *reply, void *ud)
{
    rds_node_t *r = ud;

    if (err == SIO_ECLOSED)
        return;
    if (err != SIO_OK || reply == NULL || reply->type == REDIS_REPLY_ERROR)
        rds__publish_failed(r, err != SIO_OK ? err : SIO_EREDIS);
}

/* PUBLISH on the command connection; the reply only matters when it is a failure
 * (counted). SIO_OK when handed to Redis, SIO_EREDIS when the connection refused it
 * (down or closed: counted and logged here). buf is copied. */
int rds__publish(rds_node_t *r, const char *channel, const void *buf, size_t len)
{
    const char *argv[3] = {"PUBLISH", channel, buf};
    size_t lens[3] = {7, strlen(channel), len};
    int rc = rds__cmd(r, rds__publish_reply, r, 3, argv, lens);

    if (rc != SIO_OK) {
        rds__publish_failed(r, rc);
        return SIO_EREDIS;
    }
    return SIO_OK;
}

static void rds__library_reply(rds_conn_t *c, int err, redisReply *reply, void *ud)
{
    rds_node_t *r = ud;

    if (err == SIO_ECLOSED)
        return;
    if (err != SIO_OK || reply == NULL || reply->type == REDIS_REPLY_ERROR)
        rds__log(r, RDS_LOG_ERROR,
                 "redis: cannot load the sockeye function library (Redis >= 7 is needed for "
                 "queues): %s",
                 reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str
                                                                   : sio_strerror(err));
}

/* See rds_private.h. */
int rds__load_library(rds_node_t *r)
{
    size_t len;
    const void *lib = rds_library(&len);
    const char *argv[4] = {"FUNCTION", "LOAD", "REPLACE", lib};
    size_t lens[4] = {8, 4, 7, len};

    return rds__cmd(r, rds__library_reply, r, 4, argv, lens);
}

/* See rds_private.h. With recovery on, the storage loads the library at every up already. */
void rds__need_library(rds_node_t *r)
{
    if (r->lib_wanted)
        return;
    r->lib_wanted = 1;
    if (r->st == NULL && !r->closed && rds_conn_is_up(r->cmd))
        rds__load_library(r);
}
