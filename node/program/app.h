/* app.h -- the standard application: what `sockeye` does with no C code of yours.
 *
 * On every namespace it is installed on, a client may
 *   join(room, ack)            join room, ack({ok:true})
 *   leave(room, ack)           leave room, ack({ok:true})
 *   echo(...args, ack)         ack(...args), binary included
 *   ask(event, ...args, ack)   the node emits event(...args) to that client asking for an
 *                              ack; the client's answer is acked back (or {ok:false,
 *                              error:"timeout"}) -- server->client acks from the outside
 *   chat(room, payload)        relayed to room except the sender (relay events)
 *   bcast(room, payload)       relayed to room including the sender (broadcast events)
 * The names are configurable. Relays need the sender to be a member of room;
 * otherwise nothing is sent and an ack, if asked, gets {ok:false,error:"not a member"}.
 * Rooms are non-empty strings; numbers stand for their decimal text (as String(n)).
 * Where a room goes, an array of up to 16 rooms may go too: join/leave take each,
 * a relay goes to their union (one copy per socket) and needs membership of all.
 * Names shaped like a socket id (20 base64url characters) cannot be joined: a socket's
 * id room carries its private traffic ({ok:false,error:"reserved room"}).
 * An event the app does not know is answered {ok:false,error:"unknown event"} when
 * the client asked for an ack, so a client never waits for a timeout on a typo.
 * With max_rooms_per_socket set, a join that would put the socket in more rooms than
 * that (its own id room aside) is refused whole: {ok:false,error:"too many rooms"}.
 *
 * Authentication (cfg.jwt set): a middleware on every served namespace admits a
 * client only with auth.token, a token the verifier accepts; otherwise CONNECT_ERROR
 * "unauthorized: <reason>" ("missing token", "expired", "bad signature" ...). Claims:
 *   rooms: [room, ...]      joined at connect (same names as join takes; an invalid
 *                           or socket-id-shaped one refuses the token whole)
 *   allow: [pattern, ...]   rooms join/leave accept: an exact name, or a prefix ending
 *                           in '*' ("team:42:*"; "*" alone is every room)
 * With authentication on, join and leave accept only the token's rooms and those its
 * allow patterns match ({ok:false,error:"not allowed"}): no allow claim means no other
 * room. The verified claims are kept as socket.data.jwt, so they travel with the
 * session (recovery, fetchSockets). The check is a middleware, so it runs on a
 * recovered session only when recovery_skip_middlewares is off (sockeye turns it off
 * when a key is configured): otherwise a recovered client keeps its earlier claims.
 *
 * It sits on the public API only (sockeye.h): it is the reference user of it.
 */
#ifndef APP_H
#define APP_H

#include <stddef.h>
#include <stdint.h>

#include "jwt.h"
#include "sockeye.h"
#include "sockeye_queue.h"

typedef struct app_config {
    const char *join_event;  /* NULL or "" disables */
    const char *leave_event; /* NULL or "" disables */
    const char *echo_event;  /* NULL or "" disables */
    const char *ask_event;   /* NULL or "" disables */
    unsigned ask_timeout_ms; /* 0 = wait for ever */
    const char *const *relay_events;
    size_t n_relay_events;
    const char *const *broadcast_events;
    size_t n_broadcast_events;
    unsigned max_rooms_per_socket; /* client joins beyond this are refused; 0 = no limit */
    const app_jwt_t *jwt;          /* NULL = no authentication; borrowed, must outlive the app */
    /* "EVENT=QUEUE": a client's EVENT(...args, ack) becomes a push of {event, args, sid,
     * nsp, claims} to QUEUE (app_set_queues gives the queues). */
    const char *const *event_queues;
    size_t n_event_queues;
} app_config_t;

/* Counters for /metrics, one per kind of built-in event. */
typedef enum app_kind {
    APP_JOIN,
    APP_LEAVE,
    APP_ECHO,
    APP_ASK,
    APP_RELAY,
    APP_BROADCAST,
    APP_QUEUE_PUSH,    /* queue:push(queue, payload, ack) */
    APP_QUEUE_CONSUME, /* queue:consume(queue, {group, prefetch}, ack) */
    APP_QUEUE_CANCEL,  /* queue:cancel(queue, {group}, ack) */
    APP_EVENT_QUEUE,   /* an event mapped to a queue (event_queues) */
    APP_UNKNOWN,
    APP_KIND_COUNT
} app_kind_t;

typedef struct app_stats {
    uint64_t handled[APP_KIND_COUNT]; /* events received, per kind */
    uint64_t refused;                 /* relays, joins and leaves refused */
    uint64_t unauthorized;            /* connections refused for their token */
} app_stats_t;

typedef struct app app_t; /* one per server */

/* Copies cfg (names included). NULL never (OOM aborts). The app must outlive every
 * namespace it is installed on: free it after sio_server_free. */
app_t *app_new(const app_config_t *cfg);
void app_free(app_t *app);

/* The queues the queue events use (sockeye_queue.h; made once the server has its
 * adapter, after the app): NULL = none, the events then answer {ok:false,
 * error:"queues unavailable"}. Borrowed: close the queues before freeing the app. */
void app_set_queues(app_t *app, sio_queues_t *q);

/* Serves the application on nsp (its connection handler is replaced). SIO_OK. */
int app_install(app_t *app, sio_namespace_t *nsp);
/* Serves it on every dynamic namespace matching the POSIX ERE regex. The error of
 * sio_server_of_pattern (SIO_EINVAL for a bad regex). */
int app_install_pattern(app_t *app, sio_server_t *srv, const char *regex);

/* The namespaces the app serves, in installation order (dynamic ones included). */
size_t app_namespace_count(const app_t *app);
sio_namespace_t *app_namespace(const app_t *app, size_t i);

const app_stats_t *app_stats(const app_t *app);
/* Name of a kind for metrics labels ("join", "relay" ...). */
const char *app_kind_name(app_kind_t kind);

/* The room a JSON value designates, as the app understands it: a non-empty string,
 * or a number as its decimal text. Writes at most len bytes (NUL included); -1 when
 * v designates no room or does not fit. */
int app_room_name(const cJSON *v, char *buf, size_t len);

#endif
