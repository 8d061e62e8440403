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

#include "base_alloc.h"
#include "base_clock.h"
#include "base_list.h"
#include "mem.h"
#include "sockeye_common.h"

#define MEM_DEFAULT_WINDOW_MS 120000u /* Node's maxDisconnectionDuration */
#define MEM_DEFAULT_MAX_LOG 100000u
#define MEM_SLACK_MS 10000u /* tick granularity and clock jitter, with room to spare */
#define ADP_OFFSET_MAX 48   /* "<20 digits>-<20 digits>" + NUL fits */

/* One logged broadcast. One per recoverable packet, while inside the window. */
typedef struct mem_log_entry {
    base_list_t link;
    uint64_t ms, seq;     /* the offset "<ms>-<seq>", as numbers for ordering */
    uint64_t emitted_at;  /* clock ms at broadcast, for the window sweep */
    cd_sio_packet_t *pkt; /* owned deep copy; data ends with its offset */
    char **rooms;         /* owned copies of opts */
    size_t n_rooms;
    char **except;
    size_t n_except;
    unsigned flags;
} mem_log_entry_t;

/* An offset as numbers; 0-0 (never given out: offsets follow the clock) = none. */
typedef struct mem_mark {
    uint64_t ms, seq;
} mem_mark_t;

/* A socket's marks and read time (see the top of the file). */
typedef struct mem_marks {
    mem_mark_t start;
    base_map_t joined; /* each room of the socket -> mem_mark_t* (joined later) or
                         &mem__from_start (in it since it connected) */
    uint64_t read_at;  /* adapter clock ms */
} mem_marks_t;

static mem_mark_t mem__from_start;

/* A saved session waiting for its client. One per recoverable disconnect. */
typedef struct mem_saved {
    adp_session_t *s;   /* owned deep copy */
    mem_marks_t *marks; /* NULL when saved through save_session alone */
    uint64_t disconnected_at;
    uint64_t read_at; /* the marks' one, or from s's read age */
} mem_saved_t;

/* One per namespace. */
typedef struct mem_adapter {
    adp_adapter_t base;
    mem_config_t cfg;
    base_list_t log; /* mem_log_entry_t, oldest first */
    size_t n_log;
    base_map_t sessions; /* pid -> mem_saved_t* */
    base_map_t live;     /* pid -> mem_marks_t*: connected sockets */
    uint64_t retain_ms;  /* log entries are kept this long */
    uint64_t last_ms;    /* offset of the newest logged packet */
    uint64_t last_seq;
    int have_offset;    /* last_ms/last_seq are set */
    mem_mark_t dropped; /* the newest entry the count bound dropped */
} mem_adapter_t;

/* ------------------------------------------------------------------ helpers */

static char **mem__strv_dup(const char *const *v, size_t n)
{
    if (v == NULL || n == 0)
        return NULL;
    char **out = base_malloc(n * sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = base_strdup(v[i]);
    return out;
}

static void mem__strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        base_free(v[i]);
    base_free(v);
}

static int mem__strv_has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], s) == 0)
            return 1;
    }
    return 0;
}

static adp_session_t *mem__session_dup(const adp_session_t *s)
{
    adp_session_t *d = base_calloc(1, sizeof(*d));
    d->sid = base_strdup(s->sid ? s->sid : "");
    d->pid = base_strdup(s->pid);
    d->rooms = mem__strv_dup((const char *const *)s->rooms, s->n_rooms);
    d->n_rooms = d->rooms ? s->n_rooms : 0;
    d->data = s->data ? cJSON_Duplicate(s->data, 1) : NULL;
    return d;
}

static int mem__mark_cmp(mem_mark_t a, mem_mark_t b)
{
    return adp_offset_cmp(a.ms, a.seq, b.ms, b.seq);
}

static mem_mark_t mem__last(const mem_adapter_t *m)
{
    mem_mark_t k = {0, 0};
    if (m->have_offset) {
        k.ms = m->last_ms;
        k.seq = m->last_seq;
    }
    return k;
}

static void mem__joined_clear(base_map_t *joined)
{
    base_map_iter_t it = {0};
    void *v;
    while (base_map_next(joined, &it, NULL, &v))
        if (v != &mem__from_start)
            base_free(v);
    base_map_clear(joined);
}

static void mem__marks_free(mem_marks_t *mk)
{
    if (mk == NULL)
        return;
    mem__joined_clear(&mk->joined);
    base_free(mk);
}

/* Raises mk's read time with s's read age, when s knows one. */
static void mem__marks_read(const mem_adapter_t *m, mem_marks_t *mk, const adp_session_t *s)
{
    uint64_t now = m->cfg.now_ms(), at;
    if (!s->has_read_age)
        return;
    at = now > s->read_age_ms ? now - s->read_age_ms : 0;
    if (at > mk->read_at)
        mk->read_at = at;
}

/* Brings mk's rooms to s's: rooms kept keep their mark, new ones get the last offset. */
static void mem__marks_rooms(const mem_adapter_t *m, mem_marks_t *mk, const adp_session_t *s)
{
    base_map_t next;
    base_map_init(&next);
    for (size_t i = 0; i < s->n_rooms; i++) {
        void *v = base_map_del(&mk->joined, s->rooms[i]);
        if (v == NULL) {
            mem_mark_t *at = base_malloc(sizeof(*at));
            *at = mem__last(m);
            v = at;
        }
        v = base_map_put(&next, s->rooms[i], v);
        if (v != NULL && v != &mem__from_start)
            base_free(v); /* a room listed twice */
    }
    mem__joined_clear(&mk->joined);
    mk->joined = next;
}

static void mem__saved_free(mem_saved_t *sv)
{
    adp_session_free(sv->s);
    mem__marks_free(sv->marks);
    base_free(sv);
}

static void mem__entry_free(mem_log_entry_t *e)
{
    base_list_remove(&e->link);
    cd_sio_packet_free(e->pkt);
    mem__strv_free(e->rooms, e->n_rooms);
    mem__strv_free(e->except, e->n_except);
    base_free(e);
}

static void mem__drop_oldest(mem_adapter_t *m)
{
    mem__entry_free(BASE_CONTAINER_OF(m->log.next, mem_log_entry_t, link));
    m->n_log--;
}

/* The count bound drops the oldest entry, perhaps one a session still misses: noted. */
static void mem__drop_for_room(mem_adapter_t *m)
{
    const mem_log_entry_t *e = BASE_CONTAINER_OF(m->log.next, mem_log_entry_t, link);
    m->dropped.ms = e->ms;
    m->dropped.seq = e->seq;
    mem__drop_oldest(m);
}

static int mem__recoverable(const cd_sio_packet_t *pkt, const adp_opts_t *opts)
{
    return (pkt->type == CD_SIO_EVENT || pkt->type == CD_SIO_BINARY_EVENT) && pkt->id < 0 &&
           !(opts->flags & ADP_VOLATILE) && cJSON_IsArray(pkt->data);
}

/* 1 when the socket was in room when e was broadcast (marks NULL: assume it was). */
static int mem__was_in(const mem_marks_t *mk, const char *room, const mem_log_entry_t *e)
{
    const mem_mark_t *at = mk != NULL ? base_map_get(&mk->joined, room) : NULL;
    return at == NULL || at == &mem__from_start ||
           adp_offset_cmp(e->ms, e->seq, at->ms, at->seq) > 0;
}

/* The Node rule for what a session missed: a room-less broadcast, or one aimed at a
 * room the socket was in (mem__was_in), unless the socket was in one of the except rooms
 * (a room joined after the broadcast did not exclude it then). */
static int mem__entry_matches(const mem_log_entry_t *e, const adp_session_t *s,
                              const mem_marks_t *mk)
{
    int aimed = e->n_rooms == 0;
    for (size_t i = 0; i < s->n_rooms && !aimed; i++)
        aimed = mem__strv_has(e->rooms, e->n_rooms, s->rooms[i]) && mem__was_in(mk, s->rooms[i], e);
    if (!aimed)
        return 0;
    for (size_t i = 0; i < s->n_rooms; i++) {
        if (mem__strv_has(e->except, e->n_except, s->rooms[i]) && mem__was_in(mk, s->rooms[i], e))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ vtable */

static void mem__destroy(adp_adapter_t *a)
{
    mem_adapter_t *m = (mem_adapter_t *)a;
    while (!base_list_empty(&m->log))
        mem__drop_oldest(m);
    base_map_iter_t it = {0};
    void *v;
    while (base_map_next(&m->sessions, &it, NULL, &v))
        mem__saved_free(v);
    base_map_clear(&m->sessions);
    it = (base_map_iter_t){0};
    while (base_map_next(&m->live, &it, NULL, &v))
        mem__marks_free(v);
    base_map_clear(&m->live);
    adp_rooms_clear(&a->rooms);
    base_free(a->nsp);
    base_free(m);
}

/* Assigns the next offset, appends it to pkt->data and logs a copy. */
static void mem__log(mem_adapter_t *m, cd_sio_packet_t *pkt, const adp_opts_t *opts)
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
    cd_sio_packet_t *copy = cd_sio_packet_dup(pkt);
    if (copy == NULL)
        return; /* cJSON could not allocate: delivered live, a restore from it fails */

    mem_log_entry_t *e = base_calloc(1, sizeof(*e));
    e->ms = m->last_ms;
    e->seq = m->last_seq;
    e->emitted_at = now;
    e->pkt = copy;
    e->rooms = mem__strv_dup(opts->rooms, opts->n_rooms);
    e->n_rooms = e->rooms ? opts->n_rooms : 0;
    e->except = mem__strv_dup(opts->except, opts->n_except);
    e->n_except = e->except ? opts->n_except : 0;
    e->flags = opts->flags;
    base_list_push_back(&m->log, &e->link);
    m->n_log++;
    while (m->n_log > m->cfg.max_log)
        mem__drop_for_room(m);
}

/* Delivers pkt to the local targets of opts (opts NULL = everyone). With recovery on,
 * a recoverable packet first gets its offset appended to pkt->data and is logged, so
 * the caller's packet is modified. Always SIO_OK. */
static int mem__broadcast(adp_adapter_t *a, cd_sio_packet_t *pkt, const adp_opts_t *opts)
{
    static const adp_opts_t everyone = {0};
    mem_adapter_t *m = (mem_adapter_t *)a;
    if (opts == NULL)
        opts = &everyone;
    if (m->cfg.recovery && mem__recoverable(pkt, opts))
        mem__log(m, pkt, opts);
    if (a->host.deliver)
        a->host.deliver(a->host.ud, pkt, opts);
    return SIO_OK;
}

/* Stores a deep copy of s under s->pid (replacing an older one), stamped with the
 * current time, with marks (owned; may be NULL). SIO_EINVAL without recovery or pid. */
static int mem__save(mem_adapter_t *m, const adp_session_t *s, mem_marks_t *marks)
{
    if (!m->cfg.recovery || s == NULL || s->pid == NULL) {
        mem__marks_free(marks);
        return SIO_EINVAL;
    }
    mem_saved_t *sv = base_malloc(sizeof(*sv));
    sv->s = mem__session_dup(s);
    sv->marks = marks;
    sv->disconnected_at = m->cfg.now_ms();
    if (marks != NULL)
        sv->read_at = marks->read_at;
    else if (s->has_read_age && sv->disconnected_at > s->read_age_ms)
        sv->read_at = sv->disconnected_at - s->read_age_ms;
    else
        sv->read_at = sv->disconnected_at; /* an embedder's save: read as it is saved */
    mem_saved_t *old = base_map_put(&m->sessions, s->pid, sv);
    if (old)
        mem__saved_free(old);
    return SIO_OK;
}

static int mem__save_session(adp_adapter_t *a, const adp_session_t *s)
{
    return mem__save((mem_adapter_t *)a, s, NULL);
}

/* The socket connected. A new one starts at the last offset given out, its rooms count
 * from there and it has read everything; a restored one finds its marks and read time
 * where the restore left them (live), since its client may not read the replay. */
static void mem__session_open(adp_adapter_t *a, const adp_session_t *s)
{
    mem_adapter_t *m = (mem_adapter_t *)a;
    if (!m->cfg.recovery || s->pid == NULL)
        return;
    mem_marks_t *mk = base_map_get(&m->live, s->pid);
    if (mk != NULL) {
        mem__marks_rooms(m, mk, s);
        mem__marks_read(m, mk, s);
        return;
    }
    mk = base_calloc(1, sizeof(*mk));
    mk->start = mem__last(m);
    mk->read_at = m->cfg.now_ms();
    base_map_init(&mk->joined);
    for (size_t i = 0; i < s->n_rooms; i++)
        base_map_put(&mk->joined, s->rooms[i], &mem__from_start);
    base_map_put(&m->live, s->pid, mk);
}

/* Rooms or data changed: rooms joined since are marked at the last offset. */
static void mem__session_update(adp_adapter_t *a, const adp_session_t *s)
{
    mem_adapter_t *m = (mem_adapter_t *)a;
    mem_marks_t *mk = s->pid != NULL ? base_map_get(&m->live, s->pid) : NULL;
    if (mk != NULL) {
        mem__marks_rooms(m, mk, s);
        mem__marks_read(m, mk, s);
    }
}

/* The socket's end: a recoverable disconnect is saved with its marks, the rest of the
 * session's life is in the socket itself on a single node. */
static void mem__session_close(adp_adapter_t *a, const adp_session_t *s, int recoverable)
{
    mem_adapter_t *m = (mem_adapter_t *)a;
    mem_marks_t *mk = s->pid != NULL ? base_map_del(&m->live, s->pid) : NULL;
    if (mk != NULL) {
        mem__marks_rooms(m, mk, s); /* rooms left in the disconnect handler */
        mem__marks_read(m, mk, s);
    }
    if (recoverable)
        mem__save(m, s, mk);
    else
        mem__marks_free(mk);
}

static int mem__expired(const mem_adapter_t *m, uint64_t at, uint64_t now)
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
static int mem__restore_session(adp_adapter_t *a, const char *pid, const char *offset,
                                adp_restore_cb cb, void *ud)
{
    mem_adapter_t *m = (mem_adapter_t *)a;
    uint64_t ms, seq;
    if (cb == NULL)
        return SIO_EINVAL;

    mem_saved_t *sv = pid ? base_map_get(&m->sessions, pid) : NULL;
    if (sv == NULL || !m->cfg.recovery)
        goto notfound;
    uint64_t now = m->cfg.now_ms();
    if (mem__expired(m, sv->disconnected_at, now) ||
        (now > sv->read_at && now - sv->read_at > m->retain_ms - MEM_SLACK_MS)) {
        base_map_del(&m->sessions, pid);
        mem__saved_free(sv);
        goto notfound;
    }
    mem_mark_t from;
    if (offset == NULL && sv->marks != NULL) {
        from = sv->marks->start;
    } else if (offset != NULL && adp_offset_parse(offset, &ms, &seq) && m->have_offset) {
        from.ms = ms;
        from.seq = seq;
        if (mem__mark_cmp(from, mem__last(m)) > 0)
            goto notfound; /* never given out */
        if (sv->marks != NULL && mem__mark_cmp(from, sv->marks->start) < 0)
            from = sv->marks->start; /* before the socket was there: not its to replay */
    } else {
        goto notfound;
    }
    if (mem__mark_cmp(from, m->dropped) < 0)
        goto notfound; /* the count bound dropped entries it missed */

    /* Walk back from the newest entry to the offset: cost is what was missed. */
    base_list_t *at = m->log.prev;
    size_t n_after = 0;
    for (; at != &m->log; at = at->prev, n_after++) {
        const mem_log_entry_t *e = BASE_CONTAINER_OF(at, mem_log_entry_t, link);
        if (adp_offset_cmp(e->ms, e->seq, from.ms, from.seq) <= 0)
            break;
    }

    adp_session_t *s = sv->s;
    mem_marks_t *mk = sv->marks;
    if (mk == NULL) { /* an embedder's save: marks from here on */
        mk = base_calloc(1, sizeof(*mk));
        base_map_init(&mk->joined);
        for (size_t i = 0; i < s->n_rooms; i++)
            base_map_put(&mk->joined, s->rooms[i], &mem__from_start);
        mk->read_at = sv->read_at;
    }
    base_map_del(&m->sessions, pid);
    base_free(sv);

    /* n_after entries follow the hit; base_malloc(0) still returns a pointer */
    cd_sio_packet_t **missed = base_malloc(n_after * sizeof(cd_sio_packet_t *));
    size_t n = 0;
    for (at = at->next; at != &m->log && n < n_after; at = at->next) {
        const mem_log_entry_t *e = BASE_CONTAINER_OF(at, mem_log_entry_t, link);
        cd_sio_packet_t *p = mem__entry_matches(e, s, mk) ? cd_sio_packet_dup(e->pkt) : NULL;
        if (p)
            missed[n++] = p;
    }
    mem__marks_free(base_map_put(&m->live, s->pid, mk));
    cb(ud, SIO_OK, s, n ? missed : NULL, n);
    base_free(missed);
    return SIO_OK;

notfound:
    cb(ud, SIO_ENOTFOUND, NULL, NULL, 0);
    return SIO_OK;
}

/* Drops logged packets older than the retention and sessions older than the window as
 * of now_ms. The log is in emit order, so the sweep stops at the first young entry. */
static void mem__tick(adp_adapter_t *a, uint64_t now_ms)
{
    mem_adapter_t *m = (mem_adapter_t *)a;
    while (!base_list_empty(&m->log)) {
        const mem_log_entry_t *e = BASE_CONTAINER_OF(m->log.next, mem_log_entry_t, link);
        if (!(now_ms > e->emitted_at && now_ms - e->emitted_at > m->retain_ms))
            break;
        mem__drop_oldest(m);
    }
    base_map_iter_t it = {0};
    const char *pid;
    void *v;
    while (base_map_next(&m->sessions, &it, &pid, &v)) {
        mem_saved_t *sv = v;
        if (mem__expired(m, sv->disconnected_at, now_ms)) {
            base_map_del(&m->sessions, pid); /* frees pid: sv is still ours */
            mem__saved_free(sv);
        }
    }
}

static const adp_vtable_t mem__vt = {
    .destroy = mem__destroy,
    .broadcast = mem__broadcast,
    .join = NULL,
    .leave = NULL,
    .leave_all = NULL,
    .save_session = mem__save_session,
    .restore_session = mem__restore_session,
    .tick = mem__tick,
    .session_open = mem__session_open,
    .session_update = mem__session_update,
    .session_close = mem__session_close,
};

/* New in-memory adapter for namespace nsp (copied). host is copied; cfg may be NULL
 * (no recovery). A zero window or max_log takes the default (120 s, 100000 packets).
 * Free with a->vt->destroy(a). Never fails (OOM aborts). */
adp_adapter_t *mem_adapter_new(const char *nsp, const adp_host_t *host, const mem_config_t *cfg)
{
    mem_adapter_t *m = base_calloc(1, sizeof(*m));
    m->base.vt = &mem__vt;
    m->base.nsp = base_strdup(nsp ? nsp : "/");
    if (host)
        m->base.host = *host;
    adp_rooms_init(&m->base.rooms);
    if (cfg)
        m->cfg = *cfg;
    if (m->cfg.recovery_window_ms == 0)
        m->cfg.recovery_window_ms = MEM_DEFAULT_WINDOW_MS;
    if (m->cfg.max_log == 0)
        m->cfg.max_log = MEM_DEFAULT_MAX_LOG;
    if (m->cfg.now_ms == NULL)
        m->cfg.now_ms = base_now_ms;
    m->retain_ms = m->cfg.recovery_window_ms + m->cfg.detect_ms + MEM_SLACK_MS;
    base_list_init(&m->log);
    base_map_init(&m->sessions);
    base_map_init(&m->live);
    return &m->base;
}

/* ---------------------------------------------------------------- provider */

static adp_adapter_t *mem__provider_create(void *ud, const char *nsp, const adp_host_t *host)
{
    return mem_adapter_new(nsp, host, ud);
}

static adp_qstore_t *mem__provider_queues(void *ud, const adp_qconfig_t *cfg,
                                          const adp_qevents_t *ev)
{
    const mem_config_t *mc = ud;
    return mc->loop != NULL ? mem_queue_new(mc->loop, cfg, ev) : NULL;
}

static void mem__provider_free(void *ud)
{
    base_free(ud);
}

/* See mem.h. */
void mem_provider(const mem_config_t *cfg, adp_provider_t *out)
{
    mem_config_t *copy = base_malloc(sizeof(*copy));

    *copy = *cfg;
    memset(out, 0, sizeof(*out));
    out->ud = copy;
    out->create = mem__provider_create;
    out->queues = mem__provider_queues;
    out->free = mem__provider_free;
}
