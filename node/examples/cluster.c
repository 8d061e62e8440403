/* cluster.c -- one node of a cluster: every cluster-wide call of sockeye.h, driven
 * by the clients (the integration tests use it as a remote control).
 *
 * Start a few of these against one Redis (Node.js servers on @socket.io/redis-adapter
 * may join too):
 *     example-cluster --port 3001 --redis redis://127.0.0.1:6379 --name a
 *     example-cluster --port 3002 --redis redis://127.0.0.1:6379 --name b
 * On "/" and "/chat" a client may then ask, each with an ack for the outcome:
 *     join(room), leave(room), set-data(obj)          its own rooms and socket.data
 *     emit({event, args, to, except, volatile, local, broadcast, nsp})
 *         io[.of(nsp)].to(...).except(...)[.volatile][.local].emit(event, ...args);
 *         broadcast: true = socket.broadcast (everyone but the asker)
 *     emit-ack({... same, timeout})  -> {err, responses}  broadcast with acks
 *     fetch({to, except, local})     -> {err, sockets}    fetchSockets()
 *     sockets-join({to, except, local, room}) / sockets-leave(...) /
 *     disconnect-sockets({to, except, local, close})      room operations
 *     all-rooms() -> {err, rooms}      server-count() -> {err, count}
 *     server-emit({event, args, ack}) -> {err, responses} serverSideEmit()
 * A server-side event from another node is shown to this node's clients as
 * "server-event"({node, event, args}) and, when an answer is wanted, answered
 * {node, event, args}. err is null or the sio_strerror() text.
 *
 * usage: example-cluster [--host 127.0.0.1] [--port 3000] [--redis URL] [--name NAME]
 *                        [--request-timeout MS] [--recovery on|off]
 *
 * Shows: sockeye_redis.h (sio_server_use_redis) and every cluster call of sockeye.h:
 * fetch sockets, room operations, server-side emit with acks, all rooms, server count.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sockeye.h>
#include <sockeye_redis.h>

static sio_server_t *server;
static uv_signal_t sigterm, sigint;
static const char *node_name = "node";
static const char *host = "127.0.0.1";
static int exit_code;

/* ---------------------------------------------------------------- helpers */

static cJSON *outcome(int err)
{
    cJSON *o = cJSON_CreateObject();

    if (err == SIO_OK)
        cJSON_AddNullToObject(o, "err");
    else
        cJSON_AddStringToObject(o, "err", sio_strerror(err));
    return o;
}

static void reply(sio_ack_t *ack, cJSON *obj)
{
    cJSON *args = cJSON_CreateArray();

    cJSON_AddItemToArray(args, obj);
    if (ack != NULL)
        sio_ack(ack, args, NULL, 0);
    else
        cJSON_Delete(args);
}

static const cJSON *spec_of(const cJSON *args)
{
    const cJSON *spec = cJSON_GetArrayItem(args, 0);
    return cJSON_IsObject(spec) ? spec : NULL;
}

static int flag(const cJSON *spec, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(spec, key));
}

/* A room argument: a string, or an array of strings. */
static void each_room(const cJSON *v, void (*fn)(const char *room, void *ud), void *ud)
{
    const cJSON *it;

    if (cJSON_IsString(v)) {
        fn(v->valuestring, ud);
        return;
    }
    cJSON_ArrayForEach(it, v)
    {
        if (cJSON_IsString(it))
            fn(it->valuestring, ud);
    }
}

static void add_to(const char *room, void *ud)
{
    sio_to(ud, room);
}

static void add_except(const char *room, void *ud)
{
    sio_except(ud, room);
}

/* The broadcast operator a spec describes: {to, except, volatile, local, broadcast,
 * nsp}, from socket s. */
static sio_op_t *op_of(sio_socket_t *s, const cJSON *spec)
{
    const cJSON *nsp = cJSON_GetObjectItemCaseSensitive(spec, "nsp");
    sio_op_t *op;

    if (cJSON_IsString(nsp))
        op = sio_op(sio_server_of(server, nsp->valuestring)); /* io.of(nsp) */
    else if (flag(spec, "broadcast"))
        op = sio_op_from(s); /* socket.broadcast */
    else
        op = sio_op(sio_socket_nsp(s));
    each_room(cJSON_GetObjectItemCaseSensitive(spec, "to"), add_to, op);
    each_room(cJSON_GetObjectItemCaseSensitive(spec, "except"), add_except, op);
    if (flag(spec, "volatile"))
        sio_volatile(op);
    if (flag(spec, "local"))
        sio_local(op);
    return op;
}

static const char *event_of(const cJSON *spec)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(spec, "event");
    return cJSON_IsString(ev) ? ev->valuestring : NULL;
}

static cJSON *args_of(const cJSON *spec)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(spec, "args");
    return cJSON_IsArray(a) ? cJSON_Duplicate(a, 1) : cJSON_CreateArray();
}

/* ---------------------------------------------------------------- the socket's own state */

static void join_one(const char *room, void *ud)
{
    sio_socket_join(ud, room);
}

static void on_join(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                    size_t nbins, sio_ack_t *ack, void *ud)
{
    each_room(cJSON_GetArrayItem(args, 0), join_one, s);
    reply(ack, outcome(SIO_OK));
}

static void on_leave(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                     size_t nbins, sio_ack_t *ack, void *ud)
{
    const cJSON *room = cJSON_GetArrayItem(args, 0);

    if (cJSON_IsString(room))
        sio_socket_leave(s, room->valuestring);
    reply(ack, outcome(SIO_OK));
}

static void on_set_data(sio_socket_t *s, const char *event, const cJSON *args,
                        const sio_bin_t *bins, size_t nbins, sio_ack_t *ack, void *ud)
{
    const cJSON *data = cJSON_GetArrayItem(args, 0);

    sio_socket_set_data(s, data != NULL ? cJSON_Duplicate(data, 1) : NULL);
    reply(ack, outcome(SIO_OK));
}

/* ---------------------------------------------------------------- broadcasts */

static void on_emit(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                    size_t nbins, sio_ack_t *ack, void *ud)
{
    const cJSON *spec = spec_of(args);

    if (spec == NULL || event_of(spec) == NULL) {
        reply(ack, outcome(SIO_EINVAL));
        return;
    }
    reply(ack, outcome(sio_emit(op_of(s, spec), event_of(spec), args_of(spec), NULL, 0)));
}

static void emit_ack_done(int err, const cJSON *responses, void *ud)
{
    cJSON *o = outcome(err);

    cJSON_AddItemToObject(o, "responses", cJSON_Duplicate(responses, 1));
    reply(ud, o);
}

static void on_emit_ack(sio_socket_t *s, const char *event, const cJSON *args,
                        const sio_bin_t *bins, size_t nbins, sio_ack_t *ack, void *ud)
{
    const cJSON *spec = spec_of(args);
    const cJSON *timeout = cJSON_GetObjectItemCaseSensitive(spec, "timeout");
    int rc;

    if (spec == NULL || event_of(spec) == NULL) {
        reply(ack, outcome(SIO_EINVAL));
        return;
    }
    sio_op_t *op = op_of(s, spec);
    if (cJSON_IsNumber(timeout))
        sio_timeout(op, (unsigned)timeout->valuedouble);
    rc = sio_emit_ack(op, event_of(spec), args_of(spec), NULL, 0, emit_ack_done, ack);
    if (rc != SIO_OK)
        reply(ack, outcome(rc));
}

/* ---------------------------------------------------------------- cluster operations */

static void fetch_done(int err, const cJSON *sockets, void *ud)
{
    cJSON *o = outcome(err);

    cJSON_AddItemToObject(o, "sockets", cJSON_Duplicate(sockets, 1));
    reply(ud, o);
}

static void on_fetch(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                     size_t nbins, sio_ack_t *ack, void *ud)
{
    const cJSON *spec = spec_of(args);
    cJSON *empty = cJSON_CreateObject();

    sio_fetch_sockets(op_of(s, spec != NULL ? spec : empty), fetch_done, ack);
    cJSON_Delete(empty);
}

/* sockets-join / sockets-leave / disconnect-sockets: ud tells which. */
static void on_room_op(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                       size_t nbins, sio_ack_t *ack, void *ud)
{
    const cJSON *spec = spec_of(args);
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(spec, "room");
    const char *what = ud;
    int rc;

    if (spec == NULL) {
        reply(ack, outcome(SIO_EINVAL));
        return;
    }
    sio_op_t *op = op_of(s, spec);
    if (strcmp(what, "disconnect") == 0)
        rc = sio_sockets_disconnect(op, flag(spec, "close"));
    else if (strcmp(what, "join") == 0)
        rc = sio_sockets_join(op, cJSON_IsString(room) ? room->valuestring : NULL);
    else
        rc = sio_sockets_leave(op, cJSON_IsString(room) ? room->valuestring : NULL);
    reply(ack, outcome(rc));
}

static void rooms_done(int err, const cJSON *rooms, void *ud)
{
    cJSON *o = outcome(err);

    cJSON_AddItemToObject(o, "rooms", cJSON_Duplicate(rooms, 1));
    reply(ud, o);
}

static void on_all_rooms(sio_socket_t *s, const char *event, const cJSON *args,
                         const sio_bin_t *bins, size_t nbins, sio_ack_t *ack, void *ud)
{
    sio_all_rooms(sio_socket_nsp(s), rooms_done, ack);
}

static void count_done(int err, size_t count, void *ud)
{
    cJSON *o = outcome(err);

    cJSON_AddNumberToObject(o, "count", (double)count);
    reply(ud, o);
}

static void on_server_count(sio_socket_t *s, const char *event, const cJSON *args,
                            const sio_bin_t *bins, size_t nbins, sio_ack_t *ack, void *ud)
{
    sio_server_count(sio_socket_nsp(s), count_done, ack);
}

static void server_emit_done(int err, const cJSON *responses, void *ud)
{
    cJSON *o = outcome(err);

    cJSON_AddItemToObject(o, "responses", cJSON_Duplicate(responses, 1));
    reply(ud, o);
}

static void on_server_emit(sio_socket_t *s, const char *event, const cJSON *args,
                           const sio_bin_t *bins, size_t nbins, sio_ack_t *ack, void *ud)
{
    const cJSON *spec = spec_of(args);
    sio_namespace_t *nsp = sio_socket_nsp(s);

    if (spec == NULL || event_of(spec) == NULL) {
        reply(ack, outcome(SIO_EINVAL));
        return;
    }
    if (flag(spec, "ack")) {
        int rc = sio_server_emit_ack(nsp, event_of(spec), args_of(spec), server_emit_done, ack);
        if (rc != SIO_OK)
            reply(ack, outcome(rc));
        return;
    }
    reply(ack, outcome(sio_server_emit(nsp, event_of(spec), args_of(spec))));
}

/* serverSideEmit from another node: shown to our clients, answered when asked. */
static void on_server_event(sio_namespace_t *nsp, const char *event, const cJSON *args,
                            sio_server_ack_t *ack, void *ud)
{
    cJSON *seen = cJSON_CreateObject(), *out = cJSON_CreateArray();

    cJSON_AddStringToObject(seen, "node", node_name);
    cJSON_AddStringToObject(seen, "event", event);
    cJSON_AddItemToObject(seen, "args", cJSON_Duplicate(args, 1));
    if (ack != NULL)
        sio_server_ack(ack, cJSON_Duplicate(seen, 1));
    cJSON_AddItemToArray(out, seen);
    sio_emit(sio_local(sio_op(nsp)), "server-event", out, NULL, 0);
}

/* ---------------------------------------------------------------- wiring */

static const struct {
    const char *event;
    sio_event_cb cb;
    const char *ud;
} handlers[] = {
    {"join", on_join, NULL},
    {"leave", on_leave, NULL},
    {"set-data", on_set_data, NULL},
    {"emit", on_emit, NULL},
    {"emit-ack", on_emit_ack, NULL},
    {"fetch", on_fetch, NULL},
    {"sockets-join", on_room_op, "join"},
    {"sockets-leave", on_room_op, "leave"},
    {"disconnect-sockets", on_room_op, "disconnect"},
    {"all-rooms", on_all_rooms, NULL},
    {"server-count", on_server_count, NULL},
    {"server-emit", on_server_emit, NULL},
};

static void on_connection(sio_socket_t *s, void *ud)
{
    for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
        sio_socket_on(s, handlers[i].event, handlers[i].cb, (void *)handlers[i].ud);
}

static void on_closed(void *arg)
{
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    sio_server_close(server, on_closed, NULL);
}

static void listen_now(void)
{
    int rc = sio_server_listen(server);

    if (rc != SIO_OK) {
        fprintf(stderr, "cannot listen: %s\n", sio_strerror(rc));
        exit_code = 1;
        on_signal(&sigterm, SIGTERM);
        return;
    }
    printf("listening on %s:%d\n", host, sio_server_port(server));
    fflush(stdout);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
}

/* Listen once the node hears the cluster. */
static void on_redis(sio_server_t *srv, int err, const char *reason, void *ud)
{
    if (err != SIO_OK) {
        fprintf(stderr, "cannot join the cluster: %s\n", reason);
        exit_code = 1;
        on_signal(&sigterm, SIGTERM);
        return;
    }
    listen_now();
}

int main(int argc, char **argv)
{
    sio_config_t cfg;
    sio_redis_config_t rcfg;
    const char *redis = NULL;
    uv_loop_t *loop = uv_default_loop();

    sio_config_init(&cfg);
    sio_redis_config_init(&rcfg);
    cfg.host = host;
    cfg.port = 3000;
    cfg.recovery = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            cfg.port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--host") == 0)
            cfg.host = host = argv[i + 1];
        else if (strcmp(argv[i], "--redis") == 0)
            redis = argv[i + 1];
        else if (strcmp(argv[i], "--name") == 0)
            node_name = argv[i + 1];
        else if (strcmp(argv[i], "--request-timeout") == 0)
            rcfg.request_timeout_ms = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--recovery") == 0)
            cfg.recovery = strcmp(argv[i + 1], "on") == 0;
    }
    server = sio_server_new(loop, &cfg);
    if (server == NULL)
        return 2;
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    for (size_t i = 0; i < 2; i++) {
        sio_namespace_t *nsp = sio_server_of(server, i == 0 ? "/" : "/chat");
        sio_nsp_on_connection(nsp, on_connection, NULL);
        sio_nsp_on_server_event(nsp, on_server_event, NULL);
    }
    if (redis != NULL) {
        rcfg.url = redis;
        if (sio_server_use_redis(server, &rcfg, on_redis, NULL) != SIO_OK) {
            fprintf(stderr, "bad --redis URL: %s\n", redis);
            exit_code = 2;
            on_signal(&sigterm, SIGTERM);
        }
    } else {
        listen_now();
    }
    uv_run(loop, UV_RUN_DEFAULT);
    sio_server_free(server);
    return uv_loop_close(loop) == 0 ? exit_code : 1;
}
