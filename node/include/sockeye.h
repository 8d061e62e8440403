/* sockeye.h -- embed a Socket.IO v5 server in a C program.
 *
 * The model is the Node.js server's: a server holds namespaces; a client connects to
 * a namespace and becomes a socket there; sockets join rooms; events are emitted to
 * one socket or broadcast to rooms; either side may ask for an acknowledgement.
 * Everything runs on the caller's libuv loop, on one thread; no call here blocks.
 *
 * Values are cJSON trees. Binary values travel beside the tree: in the tree a buffer
 * is the placeholder {"_placeholder":true,"num":k}, and bins[k] holds its bytes --
 * exactly the Socket.IO wire model. sio_placeholder(k) builds one.
 *
 * Ownership: a cJSON *args passed to an emit/ack call is consumed (freed by the
 * library, also on error); bins are copied; trees handed to callbacks are borrowed
 * for the duration of the callback.
 *
 * Emitting, the cheat-sheet forms (sio_op_t is a one-shot builder consumed by the
 * terminal call):
 *   socket.emit(ev, ...)                  sio_socket_emit(s, "ev", args, NULL, 0)
 *   socket.broadcast.emit(...)            sio_emit(sio_op_from(s), "ev", args, NULL, 0)
 *   socket.to("r").emit(...)              sio_emit(sio_to(sio_op_from(s), "r"), ...)
 *   io.to("r").emit / io.in("r")          sio_emit(sio_to(sio_op(nsp), "r"), ...)
 *   io.to("a").to("b").except("c")        sio_except(sio_to(sio_to(sio_op(nsp), "a"), "b"), "c")
 *   io.of("/chat").to("r")                sio_to(sio_op(sio_server_of(srv, "/chat")), "r")
 *   io.to(socketId)                       sio_to(sio_op(nsp), sid)
 *   io.local / .volatile / .compress(0)   sio_local(op) / sio_volatile(op) / sio_compress(op, 0)
 *   io.timeout(ms).emit(..., cb)          sio_emit_ack(sio_timeout(op, ms), ..., cb, ud)
 *   io.in("r").socketsJoin("x")           sio_sockets_join(sio_to(sio_op(nsp), "r"), "x")
 */
#ifndef SOCKEYE_H
#define SOCKEYE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "sockeye_common.h" /* sio_err_t, sio_strerror, sio_bin_t */

#ifdef __cplusplus
extern "C" {
#endif


/* ---------------------------------------------------------------- types */

typedef struct sio_server sio_server_t;       /* one per process (or per listener) */
typedef struct sio_namespace sio_namespace_t; /* one per namespace name */
typedef struct sio_socket sio_socket_t;       /* one per client per namespace */
typedef struct sio_op sio_op_t;               /* one-shot broadcast builder */
typedef struct sio_ack sio_ack_t;             /* a pending reply to a client's ack request */
typedef struct sio_conn_error sio_conn_error_t; /* middleware refusal being built */

/* ---------------------------------------------------------------- configuration */

#define SIO_TRANSPORT_POLLING 1
#define SIO_TRANSPORT_WEBSOCKET 2

typedef struct sio_config {
    const char *host;              /* bind address, default "0.0.0.0" */
    int port;                      /* default 3000; 0 = any free port */
    const char *path;              /* default "/socket.io/" */
    unsigned ping_interval_ms;     /* default 25000 */
    unsigned ping_timeout_ms;      /* default 20000 */
    unsigned upgrade_timeout_ms;   /* default 10000 */
    unsigned connect_timeout_ms;   /* default 45000: no namespace joined by then -> close */
    size_t max_payload;            /* maxHttpBufferSize, default 1000000 */
    int transports;                /* SIO_TRANSPORT_* mask, default both */
    int allow_upgrades;            /* default 1 */
    const char *cors_origins;      /* NULL = no CORS headers; "*" or "a,b,c" allow-list */
    int cors_credentials;          /* send Access-Control-Allow-Credentials */
    int per_message_deflate;       /* negotiate permessage-deflate, default 1 */
    size_t max_queue;              /* frames queued per client before it is closed, default 10000 */
    size_t max_queue_bytes;        /* bytes of those frames before it is closed, default 16 MiB */
    int recovery;                  /* connection state recovery, default 1 */
    unsigned recovery_window_ms;   /* maxDisconnectionDuration, default 120000 */
    int recovery_skip_middlewares; /* default 1 */
} sio_config_t;

/* Fills cfg with the defaults above. */
void sio_config_init(sio_config_t *cfg);

/* ---------------------------------------------------------------- server */

/* Creates a server on loop. Namespace "/" exists from the start. NULL on bad config. */
sio_server_t *sio_server_new(uv_loop_t *loop, const sio_config_t *cfg);
/* Starts listening on cfg->host:cfg->port. SIO_EIO when the port cannot be bound. */
int sio_server_listen(sio_server_t *srv);
/* The port actually bound (useful with port 0). */
int sio_server_port(const sio_server_t *srv);
/* Stops accepting, closes every client with reason "server shutting down" (a
 * recoverable reason) and calls cb once every handle is closed. Then free. */
void sio_server_close(sio_server_t *srv, void (*cb)(void *arg), void *arg);
void sio_server_free(sio_server_t *srv);
/* Number of connected Engine.IO clients. */
size_t sio_server_client_count(const sio_server_t *srv);

/* Returns the namespace, creating it on first use. name must start with '/'. */
sio_namespace_t *sio_server_of(sio_server_t *srv, const char *name);

/* Dynamic namespaces: a client CONNECT to a name matching the POSIX extended regex
 * creates that namespace and calls init on it (attach handlers there). */
typedef void (*sio_nsp_init_cb)(sio_namespace_t *nsp, void *ud);
int sio_server_of_pattern(sio_server_t *srv, const char *regex, sio_nsp_init_cb init, void *ud);

/* Plain HTTP requests that are not Socket.IO traffic (e.g. /healthz). */
typedef struct sio_http_req {
    const char *method; /* "GET", "POST" ... */
    const char *path;   /* without the query */
    const char *query;  /* without '?', "" when none */
} sio_http_req_t;

typedef struct sio_http_res {
    int status;               /* 0 = not handled -> 404 */
    const char *content_type; /* static string */
    char *body;               /* malloc'd (base_malloc) or NULL; freed by the library */
    size_t body_len;
} sio_http_res_t;

typedef void (*sio_http_cb)(const sio_http_req_t *req, sio_http_res_t *res, void *ud);
void sio_server_on_http(sio_server_t *srv, sio_http_cb cb, void *ud);

/* ---------------------------------------------------------------- namespaces */

typedef void (*sio_connection_cb)(sio_socket_t *s, void *ud);
/* Returns 0 to accept; nonzero to refuse (after sio_conn_error_set). */
typedef int (*sio_middleware_cb)(sio_socket_t *s, sio_conn_error_t *err, void *ud);

const char *sio_nsp_name(const sio_namespace_t *nsp);
sio_server_t *sio_nsp_server(const sio_namespace_t *nsp);
void sio_nsp_on_connection(sio_namespace_t *nsp, sio_connection_cb cb, void *ud);
/* Middlewares run in order at CONNECT; skipped on a recovered session when
 * recovery_skip_middlewares is set. */
void sio_nsp_use(sio_namespace_t *nsp, sio_middleware_cb cb, void *ud);
/* The refusal sent as CONNECT_ERROR {"message":message,"data":data}. data consumed. */
void sio_conn_error_set(sio_conn_error_t *err, const char *message, cJSON *data);
/* Number of sockets of this namespace on this node. */
size_t sio_nsp_socket_count(const sio_namespace_t *nsp);

/* ---------------------------------------------------------------- sockets */

typedef void (*sio_event_cb)(sio_socket_t *s, const char *event, const cJSON *args,
                             const sio_bin_t *bins, size_t nbins, sio_ack_t *ack, void *ud);
typedef void (*sio_disconnect_cb)(sio_socket_t *s, const char *reason, void *ud);
/* Reply to a server->client ack request: exactly once, err SIO_OK or SIO_ETIMEDOUT
 * or SIO_ECLOSED (socket gone before the reply; then s is NULL). */
typedef void (*sio_ack_cb)(sio_socket_t *s, int err, const cJSON *args, const sio_bin_t *bins,
                           size_t nbins, void *ud);

const char *sio_socket_id(const sio_socket_t *s);
sio_namespace_t *sio_socket_nsp(const sio_socket_t *s);
/* The CONNECT auth payload ({} when none). */
const cJSON *sio_socket_auth(const sio_socket_t *s);
/* Handshake facts of the underlying connection. */
const char *sio_socket_address(const sio_socket_t *s);
const char *sio_socket_url(const sio_socket_t *s);
/* Value of a query parameter of the handshake URL (percent-decoded), or NULL. */
const char *sio_socket_query(const sio_socket_t *s, const char *key);
/* 1 when this socket is a restored session (connection state recovery). */
int sio_socket_recovered(const sio_socket_t *s);
/* In a middleware of a recovered socket: the rooms its session had (own id included),
 * which it rejoins once admitted; 0 otherwise. The array lives until the middlewares end. */
size_t sio_socket_restored_rooms(const sio_socket_t *s, const char *const **rooms);
/* In a middleware of a recovered socket: admit it as a new session instead (new id and
 * pid, no rooms, no missed packets, socket.data {}), e.g. when its new credentials no
 * longer grant rooms the session had. The session is handed back untouched, so a later
 * attempt with other credentials may still recover it. SIO_EINVAL when s is not a
 * recovered socket in its middlewares. */
int sio_socket_decline_recovery(sio_socket_t *s);
const char *sio_socket_transport(const sio_socket_t *s); /* "polling" | "websocket" */

/* socket.data: application state saved with the session for recovery. The socket
 * owns the tree; set_data consumes the new one. With Redis the session is written
 * through at set_data, at each join/leave and at the disconnect, so a change made in
 * place reaches the other nodes at the next of those. */
cJSON *sio_socket_data(sio_socket_t *s);
void sio_socket_set_data(sio_socket_t *s, cJSON *data);
/* A C pointer for the embedding program; not persisted. */
void *sio_socket_userdata(const sio_socket_t *s);
void sio_socket_set_userdata(sio_socket_t *s, void *p);

int sio_socket_join(sio_socket_t *s, const char *room);
int sio_socket_leave(sio_socket_t *s, const char *room);
int sio_socket_in_room(const sio_socket_t *s, const char *room);
/* Rooms s is in, its own id room included (0 once closed). */
size_t sio_socket_room_count(const sio_socket_t *s);

void sio_socket_on(sio_socket_t *s, const char *event, sio_event_cb cb, void *ud);
/* Called for events that have no handler of their own. */
void sio_socket_on_any(sio_socket_t *s, sio_event_cb cb, void *ud);
void sio_socket_on_disconnect(sio_socket_t *s, sio_disconnect_cb cb, void *ud);

int sio_socket_emit(sio_socket_t *s, const char *event, cJSON *args, const sio_bin_t *bins,
                    size_t nbins);
/* Emit asking the client to acknowledge; cb runs exactly once. timeout_ms 0 = never. */
int sio_socket_emit_ack(sio_socket_t *s, const char *event, cJSON *args, const sio_bin_t *bins,
                        size_t nbins, unsigned timeout_ms, sio_ack_cb cb, void *ud);
/* Sends DISCONNECT for this namespace; close=1 also closes the whole connection. */
void sio_socket_disconnect(sio_socket_t *s, int close);

/* Answer a client's ack request (ack given to an event handler). At most once:
 * the ack is freed by this call. args (array, or NULL for none) is consumed.
 * An ack never answered is freed when its socket closes. */
int sio_ack(sio_ack_t *ack, cJSON *args, const sio_bin_t *bins, size_t nbins);

/* ---------------------------------------------------------------- broadcasts */

/* Everyone in nsp. */
sio_op_t *sio_op(sio_namespace_t *nsp);
/* Everyone in s's namespace except s itself (socket.broadcast / socket.to). */
sio_op_t *sio_op_from(sio_socket_t *s);
sio_op_t *sio_to(sio_op_t *op, const char *room); /* also io.in(); repeatable: union */
sio_op_t *sio_except(sio_op_t *op, const char *room);
sio_op_t *sio_volatile(sio_op_t *op);
sio_op_t *sio_local(sio_op_t *op);
sio_op_t *sio_compress(sio_op_t *op, int on);
sio_op_t *sio_timeout(sio_op_t *op, unsigned ms);
void sio_op_free(sio_op_t *op);

int sio_emit(sio_op_t *op, const char *event, cJSON *args, const sio_bin_t *bins, size_t nbins);
/* Broadcast with acknowledgements: cb runs exactly once, when every targeted client
 * answered (err SIO_OK) or at the timeout (SIO_ETIMEDOUT), with an array holding each
 * answering client's ack arguments array. With Redis the targets are on every node
 * (unless sio_local): a client of another node appears as a one-element array, since
 * only the first ack argument crosses nodes (Node's wire), and err SIO_EREDIS means
 * the other nodes could not be reached (responses holds this node's answers). A zero
 * timeout is the Redis request timeout when other nodes are involved. */
typedef void (*sio_bcast_ack_cb)(int err, const cJSON *responses, void *ud);
int sio_emit_ack(sio_op_t *op, const char *event, cJSON *args, const sio_bin_t *bins,
                 size_t nbins, sio_bcast_ack_cb cb, void *ud);
/* Room operations on the matching sockets, on every node with Redis (this node only
 * with sio_local). Each consumes op. SIO_EREDIS: applied here but Redis could not
 * carry it to the other nodes. */
int sio_sockets_join(sio_op_t *op, const char *room);
int sio_sockets_leave(sio_op_t *op, const char *room);
int sio_sockets_disconnect(sio_op_t *op, int close);

/* ---------------------------------------------------------------- cluster
 *
 * With Redis (sio_server_use_redis, in the opt-in header sockeye_redis.h) every node of
 * a cluster shares broadcasts and
 * room operations; without it the calls below answer for this node alone, so a
 * program works the same on one node and on many. The wire format is that of
 * @socket.io/redis-adapter 8.x, so Node.js servers on that adapter and
 * @socket.io/redis-emitter publishers can be part of the same cluster.
 *
 *   io.fetchSockets()                      sio_fetch_sockets(sio_op(nsp), cb, ud)
 *   io.in("r").socketsJoin("x")            sio_sockets_join(sio_to(sio_op(nsp), "r"), "x")
 *   io.local.disconnectSockets()           sio_sockets_disconnect(sio_local(sio_op(nsp)), 0)
 *   io.serverSideEmit("ev", 1)             sio_server_emit(nsp, "ev", args)
 *   io.serverSideEmit("ev", 1, cb)         sio_server_emit_ack(nsp, "ev", args, cb, ud)
 *   io.on("ev", (arg, cb) => ...)          sio_nsp_on_server_event(nsp, handler, ud)
 *   io.of("/").adapter.allRooms()          sio_all_rooms(nsp, cb, ud)
 *   io.of("/").adapter.serverCount()       sio_server_count(nsp, cb, ud)
 *
 * Every callback below runs exactly once unless the call returned an error, and may
 * run before the call returns (always, when there is no other node). Trees handed
 * to callbacks are borrowed for the call. Requests to other nodes end after the
 * Redis request timeout; a node that died is then simply missing from the answer.
 */

/* fetchSockets: the sockets matching op on every node, as an array of
 * {"id", "rooms": [...], "data", "handshake": {headers, time, address, xdomain, secure,
 * issued, url, query, auth}} (Node's RemoteSocket fields). err SIO_OK: every node
 * answered; SIO_ETIMEDOUT / SIO_EREDIS: some nodes did not, sockets holds the ones
 * that did (this node's always). sio_local(op) asks this node only. Consumes op. */
typedef void (*sio_fetch_cb)(int err, const cJSON *sockets, void *ud);
int sio_fetch_sockets(sio_op_t *op, sio_fetch_cb cb, void *ud);

/* allRooms: every room name on every node, each once (sockets' own id rooms
 * included, as Node). err as for sio_fetch_sockets. */
typedef void (*sio_rooms_cb)(int err, const cJSON *rooms, void *ud);
int sio_all_rooms(sio_namespace_t *nsp, sio_rooms_cb cb, void *ud);

/* serverCount: how many servers serve this namespace, this one included (1 without
 * Redis, and on SIO_EREDIS). */
typedef void (*sio_count_cb)(int err, size_t count, void *ud);
int sio_server_count(sio_namespace_t *nsp, sio_count_cb cb, void *ud);

/* serverSideEmit: event(args...) to the OTHER servers' handlers of this namespace
 * (never this node's). JSON values only: binary does not cross (Node's wire is JSON
 * here). args (an array of arguments, or one value, or NULL) is consumed. SIO_EREDIS
 * when Redis is unreachable, SIO_EINVAL for a NULL or reserved event name. */
int sio_server_emit(sio_namespace_t *nsp, const char *event, cJSON *args);
/* The same, asking each other server for one answer: cb gets an array with one
 * answer per server (null for a server that answered nothing). err SIO_OK: all
 * answered; SIO_ETIMEDOUT: some did not within the request timeout (responses holds
 * those that did); SIO_EREDIS: none could be asked. */
typedef void (*sio_server_emit_cb)(int err, const cJSON *responses, void *ud);
int sio_server_emit_ack(sio_namespace_t *nsp, const char *event, cJSON *args,
                        sio_server_emit_cb cb, void *ud);

/* A server-side event from another node (io.on(event) in Node). args holds the
 * arguments after the event name. ack is NULL when the sender wants no answer, else
 * it must be answered once with sio_server_ack (an ack never answered is freed with
 * the server). One handler per namespace; cb NULL removes it. */
typedef struct sio_server_ack sio_server_ack_t;
typedef void (*sio_server_event_cb)(sio_namespace_t *nsp, const char *event, const cJSON *args,
                                    sio_server_ack_t *ack, void *ud);
void sio_nsp_on_server_event(sio_namespace_t *nsp, sio_server_event_cb cb, void *ud);
/* Answers with arg (one value, consumed; NULL answers nothing). Frees ack. SIO_EREDIS
 * when the answer could not be published. */
int sio_server_ack(sio_server_ack_t *ack, cJSON *arg);

/* {"_placeholder":true,"num":num}: marks where bins[num] goes in args. */
cJSON *sio_placeholder(int num);

#ifdef __cplusplus
}
#endif
#endif
