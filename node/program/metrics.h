/* metrics.h -- the node's Prometheus page (GET /metrics), rendered from the counters the
 * server, the Redis link and the standard application keep.
 *
 * Rendering is separate from serving (routes.c) so that the page's content is tested
 * without HTTP, and so that a counter added anywhere has one place to be shown.
 */
#ifndef APP_METRICS_H
#define APP_METRICS_H

#include <stddef.h>

#include "app.h"
#include "sockeye.h"

/* Growing text (one per rendering). Starts {0}; s is NUL-terminated once anything was
 * written, and owned by the caller (base_free / free). */
typedef struct app_text {
    char *s;
    size_t len, cap;
} app_text_t;

__attribute__((format(printf, 2, 3))) void app_text_printf(app_text_t *t, const char *fmt, ...);
/* Appends v as a Prometheus label value: backslash, double quote and newline escaped. */
void app_text_label(app_text_t *t, const char *v);

/* What the page shows: a snapshot of the node, read at each request. */
typedef struct app_metrics_src {
    const sio_server_t *srv;
    const app_t *app;
    const sio_queues_t *queues; /* NULL = no queue metrics */
    double uptime_s;
    int draining;
} app_metrics_src_t;

/* Appends the whole page (text exposition format 0.0.4) to out. */
void app_metrics_render(const app_metrics_src_t *m, app_text_t *out);

#endif
