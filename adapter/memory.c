/* memory.c -- the in-memory adapter, with connection state recovery.
 *
 * The single-node adapter (Node's socket.io-adapter SessionAwareAdapter): targets
 * are local sockets only, so a broadcast is handed straight back to the host. With
 * recovery on it also keeps
 *   - a packet log: every recoverable broadcast (EVENT or BINARY_EVENT, no ack id,
 *     not volatile) with its offset, a copy of its opts and its emit time, oldest
 *     first on an intrusive list, bounded by count (max_log) and by age (the
 *     recovery window, swept by tick);
 *   - sessions saved at a recoverable disconnect, keyed by pid.
 *
 * Offsets are "<ms>-<seq>" like Redis stream ids (and like the Redis adapter), not
 * Node's yeast ids: the client treats the offset as an opaque string. They are
 * strictly increasing even when the wall clock steps back (the last ms is reused with
 * the next seq), so "after the offset" is a plain comparison of (ms, seq) and a
 * restore walks back from the newest entry only as far as the client's offset.
 *
 * A restored session is consumed: a pid can be restored at most once, so two clients
 * racing with the same pid cannot both claim one socket's state.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "adapter.h"
#include "alloc.h"
#include "list.h"
#include "sockeye.h"

#define ADP_MEMORY_DEFAULT_WINDOW_MS 120000u /* Node's maxDisconnectionDuration */
#define ADP_MEMORY_DEFAULT_MAX_LOG 100000u
#define ADP_OFFSET_MAX 48 /* "<20 digits>-<20 digits>" + NUL fits */

/* One logged broadcast. One per recoverable packet, while inside the window. */
typedef struct adp_log_entry {
    sio_list_t link;
    uint64_t ms, seq;    /* the offset "<ms>-<seq>", as numbers for ordering */
    uint64_t emitted_at; /* clock ms at broadcast, for the window sweep */
    sio_packet_t *pkt;   /* owned deep copy; data ends with its offset */
    char **rooms;        /* owned copies of opts */
    size_t n_rooms;
    char **except;
    size_t n_except;
    unsigned flags;
} adp_log_entry_t;

/* A saved session waiting for its client. One per recoverable disconnect. */
typedef struct adp_saved {
    adp_session_t *s; /* owned deep copy */
    uint64_t disconnected_at;
} adp_saved_t;

/* One per namespace. */
typedef struct adp_memory {
    adp_adapter_t base;
    adp_memory_config_t cfg;
    sio_list_t log; /* adp_log_entry_t, oldest first */
    size_t n_log;
    sio_map_t sessions; /* pid -> adp_saved_t* */
    uint64_t last_ms;   /* offset of the newest logged packet */
    uint64_t last_seq;
    int have_offset; /* last_ms/last_seq are set */
} adp_memory_t;

static uint64_t adp__memory_realtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------------ helpers */

static char **adp__strv_dup(const char *const *v, size_t n)
{
    if (v == NULL || n == 0)
        return NULL;
    char **out = sio_malloc(n * sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = sio_strdup(v[i]);
    return out;
}

static void adp__strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sio_free(v[i]);
    sio_free(v);
}

static int adp__strv_has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], s) == 0)
            return 1;
    }
    return 0;
}

static adp_session_t *adp__session_dup(const adp_session_t *s)
{
    adp_session_t *d = sio_calloc(1, sizeof(*d));
    d->sid = sio_strdup(s->sid ? s->sid : "");
    d->pid = sio_strdup(s->pid);
    d->rooms = adp__strv_dup((const char *const *)s->rooms, s->n_rooms);
    d->n_rooms = d->rooms ? s->n_rooms : 0;
    d->data = s->data ? cJSON_Duplicate(s->data, 1) : NULL;
    return d;
}

static void adp__saved_free(adp_saved_t *sv)
{
    adp_session_free(sv->s);
    sio_free(sv);
}

static void adp__entry_free(adp_log_entry_t *e)
{
    sio_list_remove(&e->link);
    sio_packet_free(e->pkt);
    adp__strv_free(e->rooms, e->n_rooms);
    adp__strv_free(e->except, e->n_except);
    sio_free(e);
}

static void adp__memory_drop_oldest(adp_memory_t *m)
{
    adp__entry_free(SIO_CONTAINER_OF(m->log.next, adp_log_entry_t, link));
    m->n_log--;
}

static int adp__recoverable(const sio_packet_t *pkt, const adp_opts_t *opts)
{
    return (pkt->type == SIO_EVENT || pkt->type == SIO_BINARY_EVENT) && pkt->id < 0 &&
           !(opts->flags & ADP_VOLATILE) && cJSON_IsArray(pkt->data);
}

/* The Node rule for what a session missed: a room-less broadcast, or one aimed at a
 * room the socket is in, unless the socket is in one of the except rooms. */
static int adp__entry_matches(const adp_log_entry_t *e, const adp_session_t *s)
{
    int aimed = e->n_rooms == 0;
    for (size_t i = 0; i < s->n_rooms && !aimed; i++)
        aimed = adp__strv_has(e->rooms, e->n_rooms, s->rooms[i]);
    if (!aimed)
        return 0;
    for (size_t i = 0; i < s->n_rooms; i++) {
        if (adp__strv_has(e->except, e->n_except, s->rooms[i]))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ vtable */

static void adp__memory_destroy(adp_adapter_t *a)
{
    adp_memory_t *m = (adp_memory_t *)a;
    while (!sio_list_empty(&m->log))
        adp__memory_drop_oldest(m);
    sio_map_iter_t it = {0};
    void *v;
    while (sio_map_next(&m->sessions, &it, NULL, &v))
        adp__saved_free(v);
    sio_map_clear(&m->sessions);
    adp_rooms_clear(&a->rooms);
    sio_free(a->nsp);
    sio_free(m);
}

/* Assigns the next offset, appends it to pkt->data and logs a copy. */
static void adp__memory_log(adp_memory_t *m, sio_packet_t *pkt, const adp_opts_t *opts)
{
    uint64_t now = m->cfg.now_ms();
    if (!m->have_offset || now > m->last_ms) {
        m->have_offset = 1;
        m->last_ms = now;
        m->last_seq = 0;
    } else {
        m->last_seq++; /* same ms, or the clock went back: stay after the last one */
    }

    char id[ADP_OFFSET_MAX];
    snprintf(id, sizeof(id), "%" PRIu64 "-%" PRIu64, m->last_ms, m->last_seq);
    cJSON_AddItemToArray(pkt->data, cJSON_CreateString(id));
    sio_packet_t *copy = sio_packet_dup(pkt);
    if (copy == NULL)
        return; /* cJSON could not allocate: delivered live, a restore from it fails */

    adp_log_entry_t *e = sio_calloc(1, sizeof(*e));
    e->ms = m->last_ms;
    e->seq = m->last_seq;
    e->emitted_at = now;
    e->pkt = copy;
    e->rooms = adp__strv_dup(opts->rooms, opts->n_rooms);
    e->n_rooms = e->rooms ? opts->n_rooms : 0;
    e->except = adp__strv_dup(opts->except, opts->n_except);
    e->n_except = e->except ? opts->n_except : 0;
    e->flags = opts->flags;
    sio_list_push_back(&m->log, &e->link);
    m->n_log++;
    while (m->n_log > m->cfg.max_log)
        adp__memory_drop_oldest(m);
}

/* Delivers pkt to the local targets of opts (opts NULL = everyone). With recovery on,
 * a recoverable packet first gets its offset appended to pkt->data and is logged, so
 * the caller's packet is modified. Always SIO_OK. */
static int adp__memory_broadcast(adp_adapter_t *a, sio_packet_t *pkt, const adp_opts_t *opts)
{
    static const adp_opts_t everyone = {0};
    adp_memory_t *m = (adp_memory_t *)a;
    if (opts == NULL)
        opts = &everyone;
    if (m->cfg.recovery && adp__recoverable(pkt, opts))
        adp__memory_log(m, pkt, opts);
    if (a->host.deliver)
        a->host.deliver(a->host.ud, pkt, opts);
    return SIO_OK;
}

/* Stores a deep copy of s under s->pid (replacing an older one), stamped with the
 * current time. SIO_EINVAL without recovery or without a pid. */
static int adp__memory_save_session(adp_adapter_t *a, const adp_session_t *s)
{
    adp_memory_t *m = (adp_memory_t *)a;
    if (!m->cfg.recovery || s == NULL || s->pid == NULL)
        return SIO_EINVAL;
    adp_saved_t *sv = sio_malloc(sizeof(*sv));
    sv->s = adp__session_dup(s);
    sv->disconnected_at = m->cfg.now_ms();
    adp_saved_t *old = sio_map_put(&m->sessions, s->pid, sv);
    if (old)
        adp__saved_free(old);
    return SIO_OK;
}

/* Write-through hook at a socket's end: only a recoverable disconnect is kept, the
 * rest of the session's life is in the socket itself on a single node. */
static void adp__memory_session_close(adp_adapter_t *a, const adp_session_t *s, int recoverable)
{
    if (recoverable)
        adp__memory_save_session(a, s);
}

static int adp__memory_expired(const adp_memory_t *m, uint64_t at, uint64_t now)
{
    return now > at && now - at > m->cfg.recovery_window_ms;
}

/* Calls cb exactly once, before returning: SIO_OK with the session (consumed: removed
 * from the adapter) and copies of the packets it missed, oldest first; or
 * SIO_ENOTFOUND when the session is unknown or expired, or offset is not in the log
 * (never sent, or already trimmed). The missed array is freed after cb returns; the
 * packets and the session belong to cb. Returns SIO_EINVAL without calling anything
 * when cb is NULL, SIO_OK otherwise. */
static int adp__memory_restore_session(adp_adapter_t *a, const char *pid, const char *offset,
                                       adp_restore_cb cb, void *ud)
{
    adp_memory_t *m = (adp_memory_t *)a;
    uint64_t ms, seq;
    if (cb == NULL)
        return SIO_EINVAL;

    adp_saved_t *sv = pid ? sio_map_get(&m->sessions, pid) : NULL;
    if (sv == NULL || !m->cfg.recovery)
        goto notfound;
    if (adp__memory_expired(m, sv->disconnected_at, m->cfg.now_ms())) {
        sio_map_del(&m->sessions, pid);
        adp__saved_free(sv);
        goto notfound;
    }
    if (offset == NULL || !adp_offset_parse(offset, &ms, &seq))
        goto notfound;

    /* Walk back from the newest entry to the offset: cost is what was missed. */
    sio_list_t *at = m->log.prev;
    size_t n_after = 0;
    for (; at != &m->log; at = at->prev, n_after++) {
        const adp_log_entry_t *e = SIO_CONTAINER_OF(at, adp_log_entry_t, link);
        if (e->ms < ms || (e->ms == ms && e->seq <= seq))
            break;
    }
    if (at == &m->log)
        goto notfound;
    const adp_log_entry_t *hit = SIO_CONTAINER_OF(at, adp_log_entry_t, link);
    if (hit->ms != ms || hit->seq != seq)
        goto notfound;

    adp_session_t *s = sv->s;
    sio_map_del(&m->sessions, pid);
    sio_free(sv);

    /* n_after entries follow the hit; sio_malloc(0) still returns a pointer */
    sio_packet_t **missed = sio_malloc(n_after * sizeof(sio_packet_t *));
    size_t n = 0;
    for (at = at->next; at != &m->log && n < n_after; at = at->next) {
        const adp_log_entry_t *e = SIO_CONTAINER_OF(at, adp_log_entry_t, link);
        sio_packet_t *p = adp__entry_matches(e, s) ? sio_packet_dup(e->pkt) : NULL;
        if (p)
            missed[n++] = p;
    }
    cb(ud, SIO_OK, s, n ? missed : NULL, n);
    sio_free(missed);
    return SIO_OK;

notfound:
    cb(ud, SIO_ENOTFOUND, NULL, NULL, 0);
    return SIO_OK;
}

/* Drops logged packets and sessions older than the window as of now_ms. The log is
 * in emit order, so the sweep stops at the first young entry. */
static void adp__memory_tick(adp_adapter_t *a, uint64_t now_ms)
{
    adp_memory_t *m = (adp_memory_t *)a;
    while (!sio_list_empty(&m->log)) {
        const adp_log_entry_t *e = SIO_CONTAINER_OF(m->log.next, adp_log_entry_t, link);
        if (!adp__memory_expired(m, e->emitted_at, now_ms))
            break;
        adp__memory_drop_oldest(m);
    }
    sio_map_iter_t it = {0};
    const char *pid;
    void *v;
    while (sio_map_next(&m->sessions, &it, &pid, &v)) {
        adp_saved_t *sv = v;
        if (adp__memory_expired(m, sv->disconnected_at, now_ms)) {
            sio_map_del(&m->sessions, pid); /* frees pid: sv is still ours */
            adp__saved_free(sv);
        }
    }
}

static const adp_vtable_t adp__memory_vt = {
    .destroy = adp__memory_destroy,
    .broadcast = adp__memory_broadcast,
    .join = NULL,
    .leave = NULL,
    .leave_all = NULL,
    .save_session = adp__memory_save_session,
    .restore_session = adp__memory_restore_session,
    .tick = adp__memory_tick,
    .session_close = adp__memory_session_close,
};

/* New in-memory adapter for namespace nsp (copied). host is copied; cfg may be NULL
 * (no recovery). A zero window or max_log takes the default (120 s, 100000 packets).
 * Free with a->vt->destroy(a). Never fails (OOM aborts). */
adp_adapter_t *adp_memory_new(const char *nsp, const adp_host_t *host,
                              const adp_memory_config_t *cfg)
{
    adp_memory_t *m = sio_calloc(1, sizeof(*m));
    m->base.vt = &adp__memory_vt;
    m->base.nsp = sio_strdup(nsp ? nsp : "/");
    if (host)
        m->base.host = *host;
    adp_rooms_init(&m->base.rooms);
    if (cfg)
        m->cfg = *cfg;
    if (m->cfg.recovery_window_ms == 0)
        m->cfg.recovery_window_ms = ADP_MEMORY_DEFAULT_WINDOW_MS;
    if (m->cfg.max_log == 0)
        m->cfg.max_log = ADP_MEMORY_DEFAULT_MAX_LOG;
    if (m->cfg.now_ms == NULL)
        m->cfg.now_ms = adp__memory_realtime;
    sio_list_init(&m->log);
    sio_map_init(&m->sessions);
    return &m->base;
}
