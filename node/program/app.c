/* app.c -- the standard application on the public API (see app.h for the contract).
 *
 * One catch-all handler per socket (sio_socket_on_any) looks the event name up in
 * the app's table and calls the handler of its kind: a socket costs one
 * registration, whatever the number of configured names, and adding a kind is a
 * row in kind_handlers[], not another branch.
 *
 * Authentication is a namespace middleware, so a refused client never becomes a
 * socket (CONNECT_ERROR, as Node's io.use). What a token grants is read back from
 * socket.data.jwt at each join rather than cached in C: the session carries it, so a
 * recovered socket, on this node or another, is judged by the same claims.
 */
#include "app.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adp_queue.h" /* the name rules of queues and groups */
#include "base_alloc.h"
#include "base_list.h"

#define APP_MAX_ROOM 1024     /* bytes of a room name, NUL included */
#define APP_MAX_ROOMS 16      /* rooms named by one event */
#define APP_DATA_CLAIMS "jwt" /* socket.data member holding the verified claims */

typedef char app_room_t[APP_MAX_ROOM];

typedef void (*app_handler_fn)(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                               const sio_bin_t *bins, size_t nbins, sio_ack_t *ack);

/* One configured event name. One per name per app. */
typedef struct app_event {
    char *name;
    app_kind_t kind;
    char *queue; /* APP_EVENT_QUEUE: where the event goes */
} app_event_t;

/* One per socket while the app has queues: the pushes whose outcome its client awaits.
 * Kept in the socket's userdata; its disconnect ends them (an ack dies with its socket,
 * a push outcome may come later). */
typedef struct app_sock {
    base_list_t pushes; /* app_push_t.link */
} app_sock_t;

typedef struct app_push {
    base_list_t link; /* in app_sock_t.pushes, while the client waits */
    sio_ack_t *ack;   /* NULL once nobody waits */
} app_push_t;

struct app {
    app_event_t *events;
    size_t n_events;
    unsigned ask_timeout_ms;
    unsigned max_rooms;     /* per socket, for client joins; 0 = no limit */
    const app_jwt_t *jwt;   /* NULL = no authentication */
    sio_namespace_t **nsps; /* served namespaces, for metrics */
    size_t n_nsps;
    sio_queues_t *queues; /* NULL = the queue events answer "queues unavailable" */
    app_stats_t stats;
};

/* clang-format off */
static const char *const kind_names[APP_KIND_COUNT] = {
    [APP_JOIN] = "join",
    [APP_LEAVE] = "leave",
    [APP_ECHO] = "echo",
    [APP_ASK] = "ask",
    [APP_RELAY] = "relay",
    [APP_BROADCAST] = "broadcast",
    [APP_QUEUE_PUSH] = "queue_push",
    [APP_QUEUE_CONSUME] = "queue_consume",
    [APP_QUEUE_CANCEL] = "queue_cancel",
    [APP_EVENT_QUEUE] = "event_queue",
    [APP_UNKNOWN] = "unknown",
};
/* clang-format on */

/* ---------------------------------------------------------------- helpers */

/* Answers ack with a single status object; a NULL ack (none asked) is fine. */
static void reply_status(sio_ack_t *ack, int ok, const char *error)
{
    cJSON *args, *obj;

    if (ack == NULL)
        return;
    args = cJSON_CreateArray();
    obj = cJSON_CreateObject();
    cJSON_AddBoolToObject(obj, "ok", ok);
    if (!ok)
        cJSON_AddStringToObject(obj, "error", error);
    cJSON_AddItemToArray(args, obj);
    sio_ack(ack, args, NULL, 0);
}

int app_room_name(const cJSON *v, char *buf, size_t len)
{
    int n;

    if (cJSON_IsString(v)) {
        size_t l = strlen(v->valuestring);

        if (l == 0 || l >= len)
            return -1;
        memcpy(buf, v->valuestring, l + 1);
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return -1;
    if (v->valuedouble == 0) {
        /* String(-0) is "0" too. */
        n = snprintf(buf, len, "0");
    } else if (v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 1e21) {
        n = snprintf(buf, len, "%.0f", v->valuedouble);
    } else {
        /* The shortest text that reads back as the same double, as String(n) does. */
        n = -1;
        for (int prec = 1; prec <= 17; prec++) {
            n = snprintf(buf, len, "%.*g", prec, v->valuedouble);
            if (n > 0 && (size_t)n < len && strtod(buf, NULL) == v->valuedouble)
                break;
        }
    }
    return (n > 0 && (size_t)n < len) ? 0 : -1;
}

/* The rooms an event's first argument names: one room, or an array of 1 to
 * APP_MAX_ROOMS rooms (a union for relays). Number of rooms, or 0 when invalid. */
static size_t parse_rooms(const cJSON *v, app_room_t *rooms)
{
    size_t n = 0;
    const cJSON *item;

    if (!cJSON_IsArray(v))
        return app_room_name(v, rooms[0], APP_MAX_ROOM) == 0 ? 1 : 0;
    cJSON_ArrayForEach(item, v)
    {
        if (n == APP_MAX_ROOMS || app_room_name(item, rooms[n], APP_MAX_ROOM) != 0)
            return 0;
        n++;
    }
    return n;
}

/* State of one renumbering walk (one per relayed event with buffers). */
struct renumber {
    const sio_bin_t *bins;
    size_t nbins;
    int *map;       /* old index -> new index, -1 = not yet seen */
    sio_bin_t *out; /* new index -> buffer (borrowed bytes) */
    size_t n_out;
};

/* Renumbers the binary placeholders under node (compact, in order of first
 * appearance) and appends the matching buffers of r->bins to r->out, so a subset of an
 * event's arguments carries exactly its own attachments (r->n_out of them). */
static void renumber_walk(cJSON *node, struct renumber *r)
{
    cJSON *ph = NULL, *num = NULL;

    if (cJSON_IsObject(node)) {
        ph = cJSON_GetObjectItemCaseSensitive(node, "_placeholder");
        num = cJSON_GetObjectItemCaseSensitive(node, "num");
    }
    if (ph != NULL && num != NULL && cJSON_IsTrue(ph) && cJSON_IsNumber(num)) {
        double d = num->valuedouble;

        if (d >= 0 && d < (double)r->nbins && d == floor(d)) {
            size_t k = (size_t)d;

            if (r->map[k] < 0) {
                r->map[k] = (int)r->n_out;
                r->out[r->n_out++] = r->bins[k];
            }
            cJSON_SetNumberValue(num, r->map[k]);
        }
        return;
    }
    for (cJSON *c = node->child; c != NULL; c = c->next)
        renumber_walk(c, r);
}

/* ---------------------------------------------------------------- handlers */

/* Every socket sits in a room named by its id, and a direct emit to a socket is a
 * broadcast to that room (with recovery on, even socket.emit). A client able to join
 * another socket's id room would read that socket's private traffic, so names shaped
 * like a socket id (20 base64url characters) are reserved. */
static int sid_shaped(const char *room)
{
    size_t len = strlen(room);

    return len == 20 && strspn(room, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789-_") == len;
}

static int reserved_room(const sio_socket_t *s, const char *room)
{
    return sid_shaped(room) && strcmp(room, sio_socket_id(s)) != 0;
}

/* An allow pattern: the exact room name, or a prefix ending in '*'. Nothing else is
 * special, so a pattern never needs escaping to mean itself. */
static int pattern_matches(const char *pattern, const char *room)
{
    size_t len = strlen(pattern);

    if (len > 0 && pattern[len - 1] == '*')
        return strncmp(pattern, room, len - 1) == 0;
    return strcmp(pattern, room) == 0;
}

/* With authentication on: 1 when the claims list room in "rooms" or match it with an
 * "allow" pattern. No claims grant nothing (fail closed). The claims were validated at
 * connect. */
static int claims_permit(const cJSON *claims, const char *room)
{
    const cJSON *it;
    app_room_t name;

    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(claims, "rooms"))
    {
        if (app_room_name(it, name, sizeof(name)) == 0 && strcmp(name, room) == 0)
            return 1;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(claims, "allow"))
    {
        if (cJSON_IsString(it) && pattern_matches(it->valuestring, room))
            return 1;
    }
    return 0;
}

static int permitted(sio_socket_t *s, const char *room)
{
    return claims_permit(cJSON_GetObjectItemCaseSensitive(sio_socket_data(s), APP_DATA_CLAIMS),
                         room);
}

/* Rooms s is in, its own id room aside. */
static size_t room_count(const sio_socket_t *s)
{
    size_t n = sio_socket_room_count(s);
    return n > 0 ? n - 1 : 0;
}

/* 1 when joining rooms[0..n) keeps s within the app's cap. Rooms it is in already and
 * repeated names cost nothing. A request naming more rooms than the cap is refused
 * outright, which also bounds the duplicate scan below to cap^2 comparisons. */
static int within_cap(const app_t *app, sio_socket_t *s, app_room_t *rooms, size_t n)
{
    size_t fresh = 0, have;

    if (app->max_rooms == 0)
        return 1;
    if (n > app->max_rooms)
        return 0;
    have = room_count(s);
    for (size_t i = 0; i < n; i++) {
        int seen = sio_socket_in_room(s, rooms[i]);

        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(rooms[k], rooms[i]) == 0;
        fresh += !seen;
        if (have + fresh > app->max_rooms)
            return 0;
    }
    return 1;
}

/* join and leave: every named room, or none when one of them is refused (invalid,
 * reserved, not granted by the token, over the cap). */
static void membership(app_t *app, sio_socket_t *s, const cJSON *args, sio_ack_t *ack,
                       int (*op)(sio_socket_t *s, const char *room))
{
    app_room_t rooms[APP_MAX_ROOMS];
    size_t n = parse_rooms(cJSON_GetArrayItem(args, 0), rooms);
    const char *refusal = NULL;
    int rc = SIO_OK;

    if (n == 0)
        refusal = "invalid room";
    for (size_t i = 0; i < n && refusal == NULL; i++) {
        if (op == sio_socket_join && reserved_room(s, rooms[i]))
            refusal = "reserved room";
        else if (app->jwt != NULL && !permitted(s, rooms[i]))
            refusal = "not allowed";
    }
    if (refusal == NULL && op == sio_socket_join && !within_cap(app, s, rooms, n))
        refusal = "too many rooms";
    if (refusal != NULL) {
        app->stats.refused++;
        reply_status(ack, 0, refusal);
        return;
    }
    for (size_t i = 0; i < n && rc == SIO_OK; i++)
        rc = op(s, rooms[i]);
    reply_status(ack, rc == SIO_OK, sio_strerror(rc));
}

static void on_join(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                    const sio_bin_t *bins, size_t nbins, sio_ack_t *ack)
{
    membership(app, s, args, ack, sio_socket_join);
}

static void on_leave(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                     const sio_bin_t *bins, size_t nbins, sio_ack_t *ack)
{
    membership(app, s, args, ack, sio_socket_leave);
}

static void on_echo(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                    const sio_bin_t *bins, size_t nbins, sio_ack_t *ack)
{
    if (ack == NULL)
        return;
    sio_ack(ack, args ? cJSON_Duplicate(args, 1) : cJSON_CreateArray(), bins, nbins);
}

/* Common to both relay kinds; include_sender picks io.to(room) over socket.to(room).
 * Several rooms are a union: a socket in two of them gets one copy. The sender must
 * be a member of every room it names. */
static void relay(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                  const sio_bin_t *bins, size_t nbins, sio_ack_t *ack, int include_sender)
{
    app_room_t rooms[APP_MAX_ROOMS];
    size_t n = parse_rooms(cJSON_GetArrayItem(args, 0), rooms);
    const cJSON *payload;
    cJSON *out;
    sio_op_t *op;
    int rc;

    if (n == 0) {
        app->stats.refused++;
        reply_status(ack, 0, "invalid room");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (!sio_socket_in_room(s, rooms[i])) {
            app->stats.refused++;
            reply_status(ack, 0, "not a member");
            return;
        }
    }
    /* Exactly (room, payload), as the reference application sends: the room as the
     * client wrote it, a missing payload as null. */
    out = cJSON_CreateArray();
    cJSON_AddItemToArray(out, cJSON_Duplicate(cJSON_GetArrayItem(args, 0), 1));
    payload = cJSON_GetArrayItem(args, 1);
    cJSON_AddItemToArray(out, payload ? cJSON_Duplicate(payload, 1) : cJSON_CreateNull());

    op = include_sender ? sio_op(sio_socket_nsp(s)) : sio_op_from(s);
    for (size_t i = 0; i < n; i++)
        op = sio_to(op, rooms[i]);
    if (nbins == 0) {
        rc = sio_emit(op, event, out, NULL, 0);
    } else {
        struct renumber r = {bins, nbins, base_malloc(nbins * sizeof(int)),
                             base_malloc(nbins * sizeof(sio_bin_t)), 0};

        for (size_t i = 0; i < nbins; i++)
            r.map[i] = -1;
        renumber_walk(out, &r);
        rc = sio_emit(op, event, out, r.out, r.n_out);
        base_free(r.map);
        base_free(r.out);
    }
    reply_status(ack, rc == SIO_OK, sio_strerror(rc));
}

static void on_relay(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                     const sio_bin_t *bins, size_t nbins, sio_ack_t *ack)
{
    relay(app, s, event, args, bins, nbins, ack, 0);
}

static void on_broadcast(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                         const sio_bin_t *bins, size_t nbins, sio_ack_t *ack)
{
    relay(app, s, event, args, bins, nbins, ack, 1);
}

/* The client answered (or did not): pass its answer on to the client's own ack, ud
 * (NULL when the ask itself wanted none). SIO_ECLOSED means the socket is gone and its
 * pending acks with it: touch nothing. */
static void on_ask_answer(sio_socket_t *s, int err, const cJSON *args, const sio_bin_t *bins,
                          size_t nbins, void *ud)
{
    sio_ack_t *reply = ud;

    if (err == SIO_OK && reply != NULL)
        sio_ack(reply, args ? cJSON_Duplicate(args, 1) : cJSON_CreateArray(), bins, nbins);
    else if (err == SIO_ETIMEDOUT)
        reply_status(reply, 0, "timeout");
}

static void on_ask(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                   const sio_bin_t *bins, size_t nbins, sio_ack_t *ack)
{
    const cJSON *name = cJSON_GetArrayItem(args, 0);
    cJSON *out;
    int rc;

    if (!cJSON_IsString(name) || name->valuestring[0] == '\0') {
        reply_status(ack, 0, "invalid event");
        return;
    }
    /* args[0] is a string, so every placeholder is in the rest: bins pass as they are. */
    out = cJSON_Duplicate(args, 1);
    cJSON_DeleteItemFromArray(out, 0);
    rc = sio_socket_emit_ack(s, name->valuestring, out, bins, nbins, app->ask_timeout_ms,
                             on_ask_answer, ack);
    if (rc != SIO_OK) /* a call that fails never runs its callback */
        reply_status(ack, 0, sio_strerror(rc));
}

/* ---------------------------------------------------------------- queues */

/* What a client reads in {ok:false, error} for a refused queue call. */
static const char *queue_error(int rc)
{
    switch (rc) {
    case SIO_EINVAL:
        return "invalid queue";
    case SIO_ETOOBIG:
        return "too big";
    case SIO_EREDIS:
        return "redis unreachable";
    case SIO_EBUSY:
        return "busy"; /* --queue-max-pushes-in-flight: try again later */
    case SIO_ENOTFOUND:
        return "not consuming";
    default:
        return sio_strerror(rc);
    }
}

/* With authentication on, 1 when the token's claim (queue_push or queue_consume: a list
 * of patterns with the rules of "allow") covers queue; without it every queue is open. */
static int queue_permitted(const app_t *app, sio_socket_t *s, const char *claim, const char *queue)
{
    const cJSON *claims = cJSON_GetObjectItemCaseSensitive(sio_socket_data(s), APP_DATA_CLAIMS);
    const cJSON *it;

    if (app->jwt == NULL)
        return 1;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(claims, claim))
    {
        if (cJSON_IsString(it) && pattern_matches(it->valuestring, queue))
            return 1;
    }
    return 0;
}

static void on_pushed(int err, const char *id, void *ud)
{
    app_push_t *p = ud;

    if (p->ack != NULL) {
        if (err == SIO_OK) {
            cJSON *args = cJSON_CreateArray(), *obj = cJSON_CreateObject();
            cJSON_AddTrueToObject(obj, "ok");
            cJSON_AddStringToObject(obj, "id", id);
            cJSON_AddItemToArray(args, obj);
            sio_ack(p->ack, args, NULL, 0);
        } else {
            reply_status(p->ack, 0, queue_error(err));
        }
        base_list_remove(&p->link);
    }
    base_free(p);
}

/* Pushes payload (consumed) to queue for s and answers ack with the outcome once the
 * store has it. */
static void push_for(app_t *app, sio_socket_t *s, const char *queue, cJSON *payload,
                     const sio_bin_t *bins, size_t nbins, sio_ack_t *ack)
{
    app_sock_t *as = sio_socket_userdata(s);
    app_push_t *p = base_calloc(1, sizeof(*p));
    int rc;

    base_list_init(&p->link);
    if (ack != NULL && as != NULL) {
        p->ack = ack;
        base_list_push_back(&as->pushes, &p->link);
    }
    rc = sio_queue_push(app->queues, queue, payload, bins, nbins, on_pushed, p);
    if (rc != SIO_OK) { /* a call that fails never runs its callback */
        base_list_remove(&p->link);
        base_free(p);
        app->stats.refused++;
        reply_status(ack, 0, queue_error(rc));
    }
}

/* The queue a queue event names, or NULL after answering why not. */
static const char *queue_arg(app_t *app, sio_socket_t *s, const cJSON *args, sio_ack_t *ack,
                             const char *claim)
{
    const cJSON *q = cJSON_GetArrayItem(args, 0);
    const char *refusal = NULL;

    if (app->queues == NULL)
        refusal = "queues unavailable";
    else if (!cJSON_IsString(q) || !adp_qname_ok(q->valuestring))
        refusal = "invalid queue";
    else if (!queue_permitted(app, s, claim, q->valuestring))
        refusal = "not allowed";
    if (refusal != NULL) {
        app->stats.refused++;
        reply_status(ack, 0, refusal);
        return NULL;
    }
    return q->valuestring;
}

/* The group of queue:consume / queue:cancel options, or NULL after answering why not. */
static const char *group_arg(app_t *app, const cJSON *opts, sio_ack_t *ack)
{
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(opts, "group");

    if (!cJSON_IsObject(opts) || !cJSON_IsString(g) || !adp_qname_ok(g->valuestring)) {
        app->stats.refused++;
        reply_status(ack, 0, "invalid group");
        return NULL;
    }
    return g->valuestring;
}

static void on_queue_push(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                          const sio_bin_t *bins, size_t nbins, sio_ack_t *ack)
{
    const char *queue = queue_arg(app, s, args, ack, "queue_push");
    const cJSON *payload = cJSON_GetArrayItem(args, 1);

    if (queue == NULL)
        return;
    /* args[0] is a string, so every placeholder is in the payload: bins pass as they are */
    push_for(app, s, queue, payload != NULL ? cJSON_Duplicate(payload, 1) : cJSON_CreateNull(),
             bins, nbins, ack);
}

static void on_queue_consume(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                             const sio_bin_t *bins, size_t nbins, sio_ack_t *ack)
{
    const char *queue = queue_arg(app, s, args, ack, "queue_consume");
    const cJSON *opts = cJSON_GetArrayItem(args, 1);
    const cJSON *pf = cJSON_GetObjectItemCaseSensitive(opts, "prefetch");
    const char *group;
    unsigned prefetch = 0;
    int rc;

    if (queue == NULL || (group = group_arg(app, opts, ack)) == NULL)
        return;
    if (pf != NULL) {
        if (!cJSON_IsNumber(pf) || pf->valuedouble < 1 || pf->valuedouble > 4294967295.0 ||
            pf->valuedouble != floor(pf->valuedouble)) {
            app->stats.refused++;
            reply_status(ack, 0, "invalid prefetch");
            return;
        }
        prefetch = (unsigned)pf->valuedouble;
    }
    rc = sio_queue_consume(app->queues, s, queue, group, prefetch);
    if (rc == SIO_EINVAL && pf != NULL) {
        app->stats.refused++;
        reply_status(ack, 0, "invalid prefetch"); /* names were checked: over the bound */
        return;
    }
    if (rc != SIO_OK)
        app->stats.refused++;
    reply_status(ack, rc == SIO_OK, queue_error(rc));
}

static void on_queue_cancel(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                            const sio_bin_t *bins, size_t nbins, sio_ack_t *ack)
{
    const char *queue = queue_arg(app, s, args, ack, "queue_consume");
    const char *group;
    int rc;

    if (queue == NULL || (group = group_arg(app, cJSON_GetArrayItem(args, 1), ack)) == NULL)
        return;
    rc = sio_queue_cancel(app->queues, s, queue, group);
    if (rc != SIO_OK)
        app->stats.refused++;
    reply_status(ack, rc == SIO_OK, queue_error(rc));
}

/* EVENT(...args, ack) -> a push of {event, args, sid, nsp, claims} to the event's queue. */
static void on_event_queue(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                           const sio_bin_t *bins, size_t nbins, sio_ack_t *ack)
{
    const char *queue = NULL;
    const cJSON *claims = cJSON_GetObjectItemCaseSensitive(sio_socket_data(s), APP_DATA_CLAIMS);
    cJSON *payload;

    for (size_t i = 0; i < app->n_events && queue == NULL; i++)
        if (app->events[i].kind == APP_EVENT_QUEUE && strcmp(app->events[i].name, event) == 0)
            queue = app->events[i].queue;
    if (app->queues == NULL || queue == NULL) {
        reply_status(ack, 0, "queues unavailable");
        return;
    }
    payload = cJSON_CreateObject();
    cJSON_AddStringToObject(payload, "event", event);
    cJSON_AddItemToObject(payload, "args",
                          args != NULL ? cJSON_Duplicate(args, 1) : cJSON_CreateArray());
    cJSON_AddStringToObject(payload, "sid", sio_socket_id(s));
    cJSON_AddStringToObject(payload, "nsp", sio_nsp_name(sio_socket_nsp(s)));
    cJSON_AddItemToObject(payload, "claims",
                          claims != NULL ? cJSON_Duplicate(claims, 1) : cJSON_CreateNull());
    push_for(app, s, queue, payload, bins, nbins, ack);
}

static void on_unknown(app_t *app, sio_socket_t *s, const char *event, const cJSON *args,
                       const sio_bin_t *bins, size_t nbins, sio_ack_t *ack)
{
    reply_status(ack, 0, "unknown event");
}

/* clang-format off */
static const app_handler_fn kind_handlers[APP_KIND_COUNT] = {
    [APP_JOIN] = on_join,
    [APP_LEAVE] = on_leave,
    [APP_ECHO] = on_echo,
    [APP_ASK] = on_ask,
    [APP_RELAY] = on_relay,
    [APP_BROADCAST] = on_broadcast,
    [APP_QUEUE_PUSH] = on_queue_push,
    [APP_QUEUE_CONSUME] = on_queue_consume,
    [APP_QUEUE_CANCEL] = on_queue_cancel,
    [APP_EVENT_QUEUE] = on_event_queue,
    [APP_UNKNOWN] = on_unknown,
};
/* clang-format on */

static void on_any(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                   size_t nbins, sio_ack_t *ack, void *ud)
{
    app_t *app = ud;
    app_kind_t kind = APP_UNKNOWN;

    for (size_t i = 0; i < app->n_events; i++) {
        if (strcmp(app->events[i].name, event) == 0) {
            kind = app->events[i].kind;
            break;
        }
    }
    app->stats.handled[kind]++;
    kind_handlers[kind](app, s, event, args, bins, nbins, ack);
}

/* The pushes s's client waits for end with s: nobody is left to answer. */
static void on_disconnect(sio_socket_t *s, const char *reason, void *ud)
{
    app_sock_t *as = sio_socket_userdata(s);

    if (as == NULL)
        return;
    while (!base_list_empty(&as->pushes)) {
        app_push_t *p = BASE_CONTAINER_OF(as->pushes.next, app_push_t, link);
        base_list_remove(&p->link);
        p->ack = NULL; /* freed by its outcome, which still comes */
    }
    sio_socket_set_userdata(s, NULL);
    base_free(as);
}

static void on_connection(sio_socket_t *s, void *ud)
{
    app_t *app = ud;

    sio_socket_on_any(s, on_any, ud);
    if (app->queues != NULL) {
        app_sock_t *as = base_calloc(1, sizeof(*as));
        base_list_init(&as->pushes);
        sio_socket_set_userdata(s, as);
        sio_socket_on_disconnect(s, on_disconnect, app);
    }
}

/* ---------------------------------------------------------------- authentication */

/* What the app needs of the claims it acts on; NULL when usable, else the refusal.
 * A token naming a room the app could not join, or a pattern that is not a string,
 * is refused whole: the issuer meant something, and half of it would be a surprise. */
static const char *check_app_claims(const cJSON *claims)
{
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(claims, "rooms");
    const cJSON *allow = cJSON_GetObjectItemCaseSensitive(claims, "allow");
    const cJSON *it;
    app_room_t name;

    if (rooms != NULL && !cJSON_IsArray(rooms))
        return "invalid claim: rooms";
    cJSON_ArrayForEach(it, rooms)
    {
        if (app_room_name(it, name, sizeof(name)) != 0 || sid_shaped(name))
            return "invalid claim: rooms";
    }
    if (allow != NULL && !cJSON_IsArray(allow))
        return "invalid claim: allow";
    cJSON_ArrayForEach(it, allow)
    {
        if (!cJSON_IsString(it) || it->valuestring[0] == '\0')
            return "invalid claim: allow";
    }
    static const char *const queue_claims[][2] = {
        {"queue_push", "invalid claim: queue_push"},
        {"queue_consume", "invalid claim: queue_consume"},
    };
    for (size_t i = 0; i < 2; i++) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(claims, queue_claims[i][0]);
        if (list != NULL && !cJSON_IsArray(list))
            return queue_claims[i][1];
        cJSON_ArrayForEach(it, list)
        {
            if (!cJSON_IsString(it) || it->valuestring[0] == '\0')
                return queue_claims[i][1];
        }
    }
    return NULL;
}

/* The token check at CONNECT (recovered sessions included when middlewares run for
 * them): refuses with "unauthorized: <reason>", or joins the token's rooms and keeps
 * the claims as socket.data.jwt (replacing a recovered session's older ones). */
static int auth_middleware(sio_socket_t *s, sio_conn_error_t *err, void *ud)
{
    app_t *app = ud;
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(sio_socket_auth(s), "token");
    const cJSON *it;
    app_jwt_err_t why = APP_JWT_OK;
    const char *refusal;
    cJSON *claims = NULL, *data;
    app_room_t name;
    char msg[96];

    if (!cJSON_IsString(token) || token->valuestring[0] == '\0')
        refusal = "missing token";
    else if ((claims = app_jwt_verify(app->jwt, token->valuestring, strlen(token->valuestring),
                                      (int64_t)time(NULL), &why)) == NULL)
        refusal = app_jwt_reason(why);
    else
        refusal = check_app_claims(claims);
    if (refusal != NULL) {
        app->stats.unauthorized++;
        snprintf(msg, sizeof(msg), "unauthorized: %s", refusal);
        sio_conn_error_set(err, msg, NULL);
        cJSON_Delete(claims);
        return -1;
    }
    /* A recovered session rejoins its rooms once admitted: one the new token no longer
     * grants must not come back (nor its missed events), so such a session is declined
     * and the socket starts afresh; the session stays for a token that grants it. */
    if (sio_socket_recovered(s)) {
        const char *const *had;
        size_t n = sio_socket_restored_rooms(s, &had);

        for (size_t i = 0; i < n; i++) {
            if (strcmp(had[i], sio_socket_id(s)) != 0 && !claims_permit(claims, had[i])) {
                sio_socket_decline_recovery(s);
                break;
            }
        }
    }
    /* Joined while connecting: the session is then written once, rooms included. */
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(claims, "rooms"))
    {
        if (app_room_name(it, name, sizeof(name)) == 0)
            sio_socket_join(s, name);
    }
    data = sio_socket_data(s);
    if (!cJSON_IsObject(data)) {
        sio_socket_set_data(s, cJSON_CreateObject());
        data = sio_socket_data(s);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(data, APP_DATA_CLAIMS);
    cJSON_AddItemToObject(data, APP_DATA_CLAIMS, claims);
    return 0;
}

/* ---------------------------------------------------------------- public */

static void add_event(app_t *app, const char *name, app_kind_t kind)
{
    if (name == NULL || name[0] == '\0')
        return;
    /* The first kind given for a name wins; a name handled twice would be a surprise. */
    for (size_t i = 0; i < app->n_events; i++) {
        if (strcmp(app->events[i].name, name) == 0)
            return;
    }
    app->events = base_realloc(app->events, (app->n_events + 1) * sizeof(*app->events));
    app->events[app->n_events].name = base_strdup(name);
    app->events[app->n_events].kind = kind;
    app->events[app->n_events].queue = NULL;
    app->n_events++;
}

app_t *app_new(const app_config_t *cfg)
{
    app_t *app = base_calloc(1, sizeof(*app));

    app->ask_timeout_ms = cfg->ask_timeout_ms;
    app->max_rooms = cfg->max_rooms_per_socket;
    app->jwt = cfg->jwt;
    add_event(app, cfg->join_event, APP_JOIN);
    add_event(app, cfg->leave_event, APP_LEAVE);
    add_event(app, cfg->echo_event, APP_ECHO);
    add_event(app, cfg->ask_event, APP_ASK);
    for (size_t i = 0; i < cfg->n_relay_events; i++)
        add_event(app, cfg->relay_events[i], APP_RELAY);
    for (size_t i = 0; i < cfg->n_broadcast_events; i++)
        add_event(app, cfg->broadcast_events[i], APP_BROADCAST);
    add_event(app, "queue:push", APP_QUEUE_PUSH);
    add_event(app, "queue:consume", APP_QUEUE_CONSUME);
    add_event(app, "queue:cancel", APP_QUEUE_CANCEL);
    for (size_t i = 0; i < cfg->n_event_queues; i++) {
        const char *eq = strchr(cfg->event_queues[i], '=');
        if (eq == NULL || eq == cfg->event_queues[i] || eq[1] == '\0')
            continue; /* the configuration checks the shape */
        char *name = base_strndup(cfg->event_queues[i], (size_t)(eq - cfg->event_queues[i]));
        size_t before = app->n_events;
        add_event(app, name, APP_EVENT_QUEUE);
        if (app->n_events > before)
            app->events[before].queue = base_strdup(eq + 1);
        base_free(name);
    }
    return app;
}

void app_set_queues(app_t *app, sio_queues_t *q)
{
    app->queues = q;
}

void app_free(app_t *app)
{
    if (app == NULL)
        return;
    for (size_t i = 0; i < app->n_events; i++) {
        base_free(app->events[i].name);
        base_free(app->events[i].queue);
    }
    base_free(app->events);
    base_free(app->nsps);
    base_free(app);
}

int app_install(app_t *app, sio_namespace_t *nsp)
{
    for (size_t i = 0; i < app->n_nsps; i++) {
        if (app->nsps[i] == nsp)
            return SIO_OK;
    }
    app->nsps = base_realloc(app->nsps, (app->n_nsps + 1) * sizeof(*app->nsps));
    app->nsps[app->n_nsps++] = nsp;
    if (app->jwt != NULL)
        sio_nsp_use(nsp, auth_middleware, app);
    sio_nsp_on_connection(nsp, on_connection, app);
    return SIO_OK;
}

static void on_dynamic_nsp(sio_namespace_t *nsp, void *ud)
{
    app_install(ud, nsp);
}

int app_install_pattern(app_t *app, sio_server_t *srv, const char *regex)
{
    return sio_server_of_pattern(srv, regex, on_dynamic_nsp, app);
}

size_t app_namespace_count(const app_t *app)
{
    return app->n_nsps;
}

sio_namespace_t *app_namespace(const app_t *app, size_t i)
{
    return i < app->n_nsps ? app->nsps[i] : NULL;
}

const app_stats_t *app_stats(const app_t *app)
{
    return &app->stats;
}

const char *app_kind_name(app_kind_t kind)
{
    return (unsigned)kind < APP_KIND_COUNT ? kind_names[kind] : "?";
}
