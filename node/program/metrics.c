/* metrics.c -- the Prometheus page of the node (metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>

#include "base_alloc.h"
#include "sockeye_queue.h"
#include "sockeye_redis.h"

/* ---------------------------------------------------------------- growing text */

void app_text_printf(app_text_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t room = b->cap - b->len;

        va_start(ap, fmt);
        n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->s = base_realloc(b->s, b->cap);
    }
}

/* A Prometheus label value: backslash, double quote and newline are escaped. */
void app_text_label(app_text_t *b, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"')
            app_text_printf(b, "\\%c", *v);
        else if (*v == '\n')
            app_text_printf(b, "\\n");
        else
            app_text_printf(b, "%c", *v);
    }
}

/* ---------------------------------------------------------------- the page */

/* The cluster link: is it up, how often it came back, what could not cross it. */
static void app__metrics_redis(const sio_server_t *srv, app_text_t *b)
{
    sio_redis_stats_t rs;

    sio_server_redis_stats(srv, &rs);
    if (!rs.enabled)
        return;
    app_text_printf(b,
                    "# HELP sockeye_redis_up 1 while the Redis connection is up.\n"
                    "# TYPE sockeye_redis_up gauge\n"
                    "sockeye_redis_up{connection=\"command\"} %d\n"
                    "sockeye_redis_up{connection=\"subscriber\"} %d\n",
                    rs.command_up, rs.subscriber_up);
    app_text_printf(b,
                    "# HELP sockeye_redis_reconnects_total Times a Redis connection came back.\n"
                    "# TYPE sockeye_redis_reconnects_total counter\n"
                    "sockeye_redis_reconnects_total %llu\n",
                    (unsigned long long)rs.reconnects);
    app_text_printf(
        b,
        "# HELP sockeye_redis_publish_failures_total Broadcasts and requests that could "
        "not reach the other nodes.\n"
        "# TYPE sockeye_redis_publish_failures_total counter\n"
        "sockeye_redis_publish_failures_total %llu\n",
        (unsigned long long)rs.publish_failures);
    app_text_printf(
        b,
        "# HELP sockeye_redis_request_timeouts_total Cluster requests that ended before "
        "every node answered.\n"
        "# TYPE sockeye_redis_request_timeouts_total counter\n"
        "sockeye_redis_request_timeouts_total %llu\n",
        (unsigned long long)rs.request_timeouts);
    app_text_printf(b,
                    "# HELP sockeye_redis_messages_total Broadcasts published (out) and received "
                    "from other nodes (in).\n"
                    "# TYPE sockeye_redis_messages_total counter\n"
                    "sockeye_redis_messages_total{direction=\"in\"} %llu\n"
                    "sockeye_redis_messages_total{direction=\"out\"} %llu\n",
                    (unsigned long long)rs.messages_in, (unsigned long long)rs.messages_out);
}

/* Per-queue labels are bounded: the first QUEUE_LABELS queues by name order of the walk,
 * the rest summed under queue="(other)", so a client naming queues cannot grow /metrics. */
#define QUEUE_LABELS 50

typedef struct app__qwalk {
    app_text_t *b;
    size_t shown;
    size_t other;
} app__qwalk_t;

static void app__metrics_in_flight(void *ud, const char *queue, size_t n)
{
    app__qwalk_t *w = ud;

    if (w->shown == QUEUE_LABELS) {
        w->other += n;
        return;
    }
    w->shown++;
    app_text_printf(w->b, "sockeye_queue_in_flight{queue=\"");
    app_text_label(w->b, queue);
    app_text_printf(w->b, "\"} %zu\n", n);
}

/* Durable queues: what this node pushed, delivered, saw acknowledged, dead-lettered, and
 * what a bound dropped (trimmed_unread: before some group acknowledged it). */
static void app__metrics_queues(const sio_queues_t *q, app_text_t *b)
{
    sio_queue_stats_t st;
    app__qwalk_t w = {b, 0, 0};

    if (q == NULL)
        return;
    sio_queues_stats(q, &st);
    app_text_printf(b,
                    "# HELP sockeye_queue_messages_total Queue messages by what happened to them "
                    "on this node.\n# TYPE sockeye_queue_messages_total counter\n");
    const struct {
        const char *what;
        uint64_t n;
    } rows[] = {
        {"pushed", st.pushed},
        {"delivered", st.delivered},
        {"redelivered", st.redelivered},
        {"acknowledged", st.acknowledged},
        {"dead_lettered", st.dead_lettered},
        {"trimmed", st.trimmed},
        {"trimmed_unread", st.trimmed_unread},
        {"timed_out", st.timeouts},
        {"refused_busy", st.busy},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        app_text_printf(b, "sockeye_queue_messages_total{what=\"%s\"} %llu\n", rows[i].what,
                        (unsigned long long)rows[i].n);
    app_text_printf(b,
                    "# HELP sockeye_queue_consumers Queue consumers on this node (held sessions "
                    "included).\n# TYPE sockeye_queue_consumers gauge\nsockeye_queue_consumers "
                    "%zu\n",
                    st.consumers);
    app_text_printf(b,
                    "# HELP sockeye_queue_pushes_in_flight Pushes of this node awaiting Redis "
                    "(bounded by --queue-max-pushes-in-flight).\n# TYPE "
                    "sockeye_queue_pushes_in_flight gauge\nsockeye_queue_pushes_in_flight %zu\n",
                    st.pushes_in_flight);
    app_text_printf(b, "# HELP sockeye_queue_in_flight Deliveries of this node awaiting their "
                       "acknowledgement, per queue.\n# TYPE sockeye_queue_in_flight gauge\n");
    sio_queues_each_in_flight(q, app__metrics_in_flight, &w);
    if (w.other > 0)
        app_text_printf(b, "sockeye_queue_in_flight{queue=\"(other)\"} %zu\n", w.other);
}

/* See metrics.h. */
void app_metrics_render(const app_metrics_src_t *m, app_text_t *out)
{
    app_text_t *b = out;
    const app_stats_t *st = app_stats(m->app);

    app_text_printf(b,
                    "# HELP sockeye_info Build information.\n# TYPE sockeye_info gauge\n"
                    "sockeye_info{version=\"%s\"} 1\n",
                    SOCKEYE_VERSION);
    app_text_printf(b,
                    "# HELP sockeye_clients Connected Engine.IO clients.\n"
                    "# TYPE sockeye_clients gauge\nsockeye_clients %zu\n",
                    sio_server_client_count(m->srv));
    app_text_printf(b, "# HELP sockeye_sockets Connected Socket.IO sockets per namespace.\n"
                       "# TYPE sockeye_sockets gauge\n");
    for (size_t i = 0; i < app_namespace_count(m->app); i++) {
        sio_namespace_t *nsp = app_namespace(m->app, i);

        app_text_printf(b, "sockeye_sockets{namespace=\"");
        app_text_label(b, sio_nsp_name(nsp));
        app_text_printf(b, "\"} %zu\n", sio_nsp_socket_count(nsp));
    }
    app_text_printf(b,
                    "# HELP sockeye_uptime_seconds Seconds since the node started.\n"
                    "# TYPE sockeye_uptime_seconds gauge\nsockeye_uptime_seconds %.3f\n",
                    m->uptime_s);
    app_text_printf(b,
                    "# HELP sockeye_app_events_total Events handled by the built-in application.\n"
                    "# TYPE sockeye_app_events_total counter\n");
    for (int k = 0; k < APP_KIND_COUNT; k++)
        app_text_printf(b, "sockeye_app_events_total{kind=\"%s\"} %llu\n", app_kind_name(k),
                        (unsigned long long)st->handled[k]);
    app_text_printf(b,
                    "# HELP sockeye_app_refused_total Relays and joins refused (not a member, "
                    "invalid room).\n# TYPE sockeye_app_refused_total counter\n"
                    "sockeye_app_refused_total %llu\n",
                    (unsigned long long)st->refused);
    app_text_printf(b,
                    "# HELP sockeye_app_unauthorized_total Connections refused for their token.\n"
                    "# TYPE sockeye_app_unauthorized_total counter\n"
                    "sockeye_app_unauthorized_total %llu\n",
                    (unsigned long long)st->unauthorized);
    app__metrics_redis(m->srv, b);
    app__metrics_queues(m->queues, b);
    app_text_printf(b,
                    "# HELP sockeye_draining 1 while the node shuts down.\n"
                    "# TYPE sockeye_draining gauge\nsockeye_draining %d\n",
                    m->draining);
}
