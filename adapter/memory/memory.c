/* memory.c -- the in-memory adapter, with connection state recovery.
 *
 * The single-node adapter (Node's socket.io-adapter SessionAwareAdapter): targets
 * are local sockets only, so a broadcast is handed straight back to the host. With
 * recovery on it also keeps
 *   - a packet log: every recoverable broadcast (EVENT or BINARY_EVENT, no ack id,
 *     not volatile) with its offset, a copy of its opts and its emit time, oldest
 *     first on an intrusive list, bounded by count (max_log) and by age (the
 *     retention, swept by tick);
 *   - per connected socket, its marks: the last offset when it connected (its start)
 *     and, for each room joined later, the last offset at the join, so a restore never
 *     hands a socket what was broadcast before it could have received it;
 *   - sessions saved at a recoverable disconnect, keyed by pid, with their marks.
 *
 * The window is the session's, not the offset's: a restore does not need the client's
 * offset to be in the log (in a quiet room it may be long gone). The log keeps entries for
 * window + detect + slack (retention), and each session its read time: when its client
 * was last known to have read everything sent to it (the heartbeat tells: adp_session_t).
 * Nothing in its rooms between its offset and that time is unread, so what it missed is
 * younger than the read time, and a restore is refused once that is older than window +
 * detect: what it missed may be gone. Taking a session or handing it back never moves
 * the read time; only a read does. Only the count bound can drop what a session missed
 * otherwise: the highest offset it dropped is remembered, and an offset below it is
 * refused. The marks and the read time follow a session through a restore into its new
 * socket, so a replay the client never read is replayed again at the next attempt.
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
#include "sk_alloc.h"
#include "sk_list.h"
#include "sockeye.h"

#define ADP_MEMORY_DEFAULT_WINDOW_MS 120000u /* Node's maxDisconnectionDuration */
#define ADP_MEMORY_DEFAULT_MAX_LOG 100000u
#define ADP_MEMORY_SLACK_MS 10000u /* tick granularity and clock jitter, with room to spare */
#define ADP_OFFSET_MAX 48          /* "<20 digits>-<20 digits>" + NUL fits */

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

/* An offset as numbers; 0-0 (never given out: offsets follow the clock) = none. */
typedef struct adp_mark {
    uint64_t ms, seq;
} adp_mark_t;

/* A socket's marks and read time (see the top of the file). */
typedef struct adp_marks {
    adp_mark_t start;
    sio_map_t joined; /* each room of the socket -> adp_mark_t* (joined later) or
                         &adp__from_start (in it since it connected) */
    uint64_t read_at; /* adapter clock ms */
} adp_marks_t;

static adp_mark_t adp__from_start;

/* A saved session waiting for its client. One per recoverable disconnect. */
typedef struct adp_saved {
    adp_session_t *s;   /* owned deep copy */
    adp_marks_t *marks; /* NULL when saved through save_session alone */
    uint64_t disconnected_at;
    uint64_t read_at; /* the marks' one, or from s's read age */
} adp_saved_t;

/* One per namespace. */
typedef struct adp_memory {
    adp_adapter_t base;
    adp_memory_config_t cfg;
    sio_list_t log; /* adp_log_entry_t, oldest first */
    size_t n_log;
    sio_map_t sessions; /* pid -> adp_saved_t* */
    sio_map_t live;     /* pid -> adp_marks_t*: connected sockets */
    uint64_t retain_ms; /* log entries are kept this long */
    uint64_t last_ms;   /* offset of the newest logged packet */
    uint64_t last_seq;
    int have_offset;    /* last_ms/last_seq are set */
    adp_mark_t dropped; /* the newest entry the count bound dropped */
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

static int adp__mark_cmp(adp_mark_t a, adp_mark_t b)
{
    return adp_offset_cmp(a.ms, a.seq, b.ms, b.seq);
}

static adp_mark_t adp__memory_last(const adp_memory_t *m)
{
    adp_mark_t k = {0, 0};
    if (m->have_offset) {
        k.ms = m->last_ms;
        k.seq = m->last_seq;
    }
    return k;
}

static void adp__joined_clear(sio_map_t *joined)
{
    sio_map_iter_t it = {0};
    void *v;
    while (sio_map_next(joined, &it, NULL, &v))
        if (v != &adp__from_start)
            sio_free(v);
    sio_map_clear(joined);
}

static void adp__marks_free(adp_marks_t *mk)
{
    if (mk == NULL)
        return;
    adp__joined_clear(&mk->joined);
    sio_free(mk);
}

/* Raises mk's read time with s's read age, when s knows one. */
static void adp__marks_read(const adp_memory_t *m, adp_marks_t *mk, const adp_session_t *s)
{
    uint64_t now = m->cfg.now_ms(), at;
    if (!s->has_read_age)
        return;
    at = now > s->read_age_ms ? now - s->read_age_ms : 0;
    if (at > mk->read_at)
        mk->read_at = at;
}

/* Brings mk's rooms to s's: rooms kept keep their mark, new ones get the last offset. */
static void adp__marks_rooms(const adp_memory_t *m, adp_marks_t *mk, const adp_session_t *s)
{
    sio_map_t next;
    sio_map_init(&next);
    for (size_t i = 0; i < s->n_rooms; i++) {
        void *v = sio_map_del(&mk->joined, s->rooms[i]);
        if (v == NULL) {
            adp_mark_t *at = sio_malloc(sizeof(*at));
            *at = adp__memory_last(m);
            v = at;
        }
        v = sio_map_put(&next, s->rooms[i], v);
        if (v != NULL && v != &adp__from_start)
            sio_free(v); /* a room listed twice */
    }
    adp__joined_clear(&mk->joined);
    mk->joined = next;
}

static void adp__saved_free(adp_saved_t *sv)
{
    adp_session_free(sv->s);
    adp__marks_free(sv->marks);
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

/* The count bound drops the oldest entry, perhaps one a session still misses: noted. */
static void adp__memory_drop_for_room(adp_memory_t *m)
{
    const adp_log_entry_t *e = SIO_CONTAINER_OF(m->log.next, adp_log_entry_t, link);
    m->dropped.ms = e->ms;
    m->dropped.seq = e->seq;
    adp__memory_drop_oldest(m);
}

static int adp__recoverable(const sio_packet_t *pkt, const adp_opts_t *opts)
{
    return (pkt->type == SIO_EVENT || pkt->type == SIO_BINARY_EVENT) && pkt->id < 0 &&
           !(opts->flags & ADP_VOLATILE) && cJSON_IsArray(pkt->data);
}

/* 1 when the socket was in room when e was broadcast (marks NULL: assume it was). */
static int adp__was_in(const adp_marks_t *mk, const char *room, const adp_log_entry_t *e)
{
    const adp_mark_t *at = mk != NULL ? sio_map_get(&mk->joined, room) : NULL;
    return at == NULL || at == &adp__from_start ||
           adp_offset_cmp(e->ms, e->seq, at->ms, at->seq) > 0;
}

/* The Node rule for what a session missed: a room-less broadcast, or one aimed at a
 * room the socket was in (adp__was_in), unless the socket was in one of the except rooms
 * (a room joined after the broadcast did not exclude it then). */
static int adp__entry_matches(const adp_log_entry_t *e, const adp_session_t *s,
                              const adp_marks_t *mk)
{
    int aimed = e->n_rooms == 0;
    for (size_t i = 0; i < s->n_rooms && !aimed; i++)
        aimed = adp__strv_has(e->rooms, e->n_rooms, s->rooms[i]) && adp__was_in(mk, s->rooms[i], e);
    if (!aimed)
        return 0;
    for (size_t i = 0; i < s->n_rooms; i++) {
        if (adp__strv_has(e->except, e->n_except, s->rooms[i]) && adp__was_in(mk, s->rooms[i], e))
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
    it = (sio_map_iter_t){0};
    while (sio_map_next(&m->live, &it, NULL, &v))
        adp__marks_free(v);
    sio_map_clear(&m->live);
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
        adp__memory_drop_for_room(m);
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
 * current time, with marks (owned; may be NULL). SIO_EINVAL without recovery or pid. */
static int adp__memory_save(adp_memory_t *m, const adp_session_t *s, adp_marks_t *marks)
{
    if (!m->cfg.recovery || s == NULL || s->pid == NULL) {
        adp__marks_free(marks);
        return SIO_EINVAL;
    }
    adp_saved_t *sv = sio_malloc(sizeof(*sv));
    sv->s = adp__session_dup(s);
    sv->marks = marks;
    sv->disconnected_at = m->cfg.now_ms();
    if (marks != NULL)
        sv->read_at = marks->read_at;
    else if (s->has_read_age && sv->disconnected_at > s->read_age_ms)
        sv->read_at = sv->disconnected_at - s->read_age_ms;
    else
        sv->read_at = sv->disconnected_at; /* an embedder's save: read as it is saved */
    adp_saved_t *old = sio_map_put(&m->sessions, s->pid, sv);
    if (old)
        adp__saved_free(old);
    return SIO_OK;
}

static int adp__memory_save_session(adp_adapter_t *a, const adp_session_t *s)
{
    return adp__memory_save((adp_memory_t *)a, s, NULL);
}

/* The socket connected. A new one starts at the last offset given out, its rooms count
 * from there and it has read everything; a restored one finds its marks and read time
 * where the restore left them (live), since its client may not read the replay. */
static void adp__memory_session_open(adp_adapter_t *a, const adp_session_t *s)
{
    adp_memory_t *m = (adp_memory_t *)a;
    if (!m->cfg.recovery || s->pid == NULL)
        return;
    adp_marks_t *mk = sio_map_get(&m->live, s->pid);
    if (mk != NULL) {
        adp__marks_rooms(m, mk, s);
        adp__marks_read(m, mk, s);
        return;
    }
    mk = sio_calloc(1, sizeof(*mk));
    mk->start = adp__memory_last(m);
    mk->read_at = m->cfg.now_ms();
    sio_map_init(&mk->joined);
    for (size_t i = 0; i < s->n_rooms; i++)
        sio_map_put(&mk->joined, s->rooms[i], &adp__from_start);
    sio_map_put(&m->live, s->pid, mk);
}

/* Rooms or data changed: rooms joined since are marked at the last offset. */
static void adp__memory_session_update(adp_adapter_t *a, const adp_session_t *s)
{
    adp_memory_t *m = (adp_memory_t *)a;
    adp_marks_t *mk = s->pid != NULL ? sio_map_get(&m->live, s->pid) : NULL;
    if (mk != NULL) {
        adp__marks_rooms(m, mk, s);
        adp__marks_read(m, mk, s);
    }
}

/* The socket's end: a recoverable disconnect is saved with its marks, the rest of the
 * session's life is in the socket itself on a single node. */
static void adp__memory_session_close(adp_adapter_t *a, const adp_session_t *s, int recoverable)
{
    adp_memory_t *m = (adp_memory_t *)a;
    adp_marks_t *mk = s->pid != NULL ? sio_map_del(&m->live, s->pid) : NULL;
    if (mk != NULL) {
        adp__marks_rooms(m, mk, s); /* rooms left in the disconnect handler */
        adp__marks_read(m, mk, s);
    }
    if (recoverable)
        adp__memory_save(m, s, mk);
    else
        adp__marks_free(mk);
}

static int adp__memory_expired(const adp_memory_t *m, uint64_t at, uint64_t now)
{
    return now > at && now - at > m->cfg.recovery_window_ms;
}

/* Calls cb exactly once, before returning: SIO_OK with the session (consumed: removed
 * from the adapter; its marks and read time wait in live for its new socket) and copies
 * of the packets it missed, oldest first; or SIO_ENOTFOUND when the session is unknown or
 * expired, its client was not heard from for longer than window + detect, or offset was
 * never given out or is older than what the count bound dropped. offset NULL (the client received
 * nothing) reads from the session's start. The missed array is freed after cb returns; the packets
 * and the session belong to cb. Returns SIO_EINVAL without calling anything when cb is NULL, SIO_OK
 * otherwise. */
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
    uint64_t now = m->cfg.now_ms();
    if (adp__memory_expired(m, sv->disconnected_at, now) ||
        (now > sv->read_at && now - sv->read_at > m->retain_ms - ADP_MEMORY_SLACK_MS)) {
        sio_map_del(&m->sessions, pid);
        adp__saved_free(sv);
        goto notfound;
    }
    adp_mark_t from;
    if (offset == NULL && sv->marks != NULL) {
        from = sv->marks->start;
    } else if (offset != NULL && adp_offset_parse(offset, &ms, &seq) && m->have_offset) {
        from.ms = ms;
        from.seq = seq;
        if (adp__mark_cmp(from, adp__memory_last(m)) > 0)
            goto notfound; /* never given out */
        if (sv->marks != NULL && adp__mark_cmp(from, sv->marks->start) < 0)
            from = sv->marks->start; /* before the socket was there: not its to replay */
    } else {
        goto notfound;
    }
    if (adp__mark_cmp(from, m->dropped) < 0)
        goto notfound; /* the count bound dropped entries it missed */

    /* Walk back from the newest entry to the offset: cost is what was missed. */
    sio_list_t *at = m->log.prev;
    size_t n_after = 0;
    for (; at != &m->log; at = at->prev, n_after++) {
        const adp_log_entry_t *e = SIO_CONTAINER_OF(at, adp_log_entry_t, link);
        if (adp_offset_cmp(e->ms, e->seq, from.ms, from.seq) <= 0)
            break;
    }

    adp_session_t *s = sv->s;
    adp_marks_t *mk = sv->marks;
    if (mk == NULL) { /* an embedder's save: marks from here on */
        mk = sio_calloc(1, sizeof(*mk));
        sio_map_init(&mk->joined);
        for (size_t i = 0; i < s->n_rooms; i++)
            sio_map_put(&mk->joined, s->rooms[i], &adp__from_start);
        mk->read_at = sv->read_at;
    }
    sio_map_del(&m->sessions, pid);
    sio_free(sv);

    /* n_after entries follow the hit; sio_malloc(0) still returns a pointer */
    sio_packet_t **missed = sio_malloc(n_after * sizeof(sio_packet_t *));
    size_t n = 0;
    for (at = at->next; at != &m->log && n < n_after; at = at->next) {
        const adp_log_entry_t *e = SIO_CONTAINER_OF(at, adp_log_entry_t, link);
        sio_packet_t *p = adp__entry_matches(e, s, mk) ? sio_packet_dup(e->pkt) : NULL;
        if (p)
            missed[n++] = p;
    }
    adp__marks_free(sio_map_put(&m->live, s->pid, mk));
    cb(ud, SIO_OK, s, n ? missed : NULL, n);
    sio_free(missed);
    return SIO_OK;

notfound:
    cb(ud, SIO_ENOTFOUND, NULL, NULL, 0);
    return SIO_OK;
}

/* Drops logged packets older than the retention and sessions older than the window as
 * of now_ms. The log is in emit order, so the sweep stops at the first young entry. */
static void adp__memory_tick(adp_adapter_t *a, uint64_t now_ms)
{
    adp_memory_t *m = (adp_memory_t *)a;
    while (!sio_list_empty(&m->log)) {
        const adp_log_entry_t *e = SIO_CONTAINER_OF(m->log.next, adp_log_entry_t, link);
        if (!(now_ms > e->emitted_at && now_ms - e->emitted_at > m->retain_ms))
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
    .session_open = adp__memory_session_open,
    .session_update = adp__memory_session_update,
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
    m->retain_ms = m->cfg.recovery_window_ms + m->cfg.detect_ms + ADP_MEMORY_SLACK_MS;
    sio_list_init(&m->log);
    sio_map_init(&m->sessions);
    sio_map_init(&m->live);
    return &m->base;
}
