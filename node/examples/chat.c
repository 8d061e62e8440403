/* chat.c -- rooms and broadcasts: a complete chat server on the public API.
 *
 * A client connects with its name in the auth payload and a room in the query:
 *     io("http://127.0.0.1:3000", { auth: { name: "ann" }, query: { room: "lobby" } })
 * and then
 *     "message"(text)      -> everyone else in the room gets "message"({name, text})
 * The room hears "joined"({name}) when someone arrives and "left"({name}) when they go.
 *
 * usage: example-chat [--host 127.0.0.1] [--port 3000]   (port 0 = any free port)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sockeye.h>

static sio_server_t *server;
static uv_signal_t sigterm, sigint;

/* The name and room live in socket.data, so a recovered session keeps them. */
static const char *data_str(sio_socket_t *s, const char *key, const char *def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sio_socket_data(s), key);

    return cJSON_IsString(v) ? v->valuestring : def;
}

static void tell_room(sio_socket_t *s, const char *event, cJSON *args)
{
    /* socket.to(room).emit(): the room, the sender excluded. */
    sio_emit(sio_to(sio_op_from(s), data_str(s, "room", "lobby")), event, args, NULL, 0);
}

static void on_message(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                       size_t nbins, sio_ack_t *ack, void *ud)
{
    const cJSON *text = cJSON_GetArrayItem(args, 0);
    cJSON *out = cJSON_CreateArray(), *msg = cJSON_CreateObject();

    if (!cJSON_IsString(text)) {
        cJSON_Delete(out);
        cJSON_Delete(msg);
        return;
    }
    cJSON_AddStringToObject(msg, "name", data_str(s, "name", "anonymous"));
    cJSON_AddStringToObject(msg, "text", text->valuestring);
    cJSON_AddItemToArray(out, msg);
    tell_room(s, "message", out);
}

static void announce(sio_socket_t *s, const char *event)
{
    cJSON *out = cJSON_CreateArray(), *who = cJSON_CreateObject();

    cJSON_AddStringToObject(who, "name", data_str(s, "name", "anonymous"));
    cJSON_AddItemToArray(out, who);
    tell_room(s, event, out);
}

static void on_disconnect(sio_socket_t *s, const char *reason, void *ud)
{
    announce(s, "left");
}

static void on_connection(sio_socket_t *s, void *ud)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(sio_socket_auth(s), "name");
    const char *room = sio_socket_query(s, "room");

    if (!sio_socket_recovered(s)) {
        cJSON *data = cJSON_CreateObject();

        cJSON_AddStringToObject(data, "name",
                                cJSON_IsString(name) ? name->valuestring : "anonymous");
        cJSON_AddStringToObject(data, "room", room && room[0] ? room : "lobby");
        sio_socket_set_data(s, data);
        sio_socket_join(s, data_str(s, "room", "lobby"));
        announce(s, "joined");
    }
    sio_socket_on(s, "message", on_message, NULL);
    sio_socket_on_disconnect(s, on_disconnect, NULL);
}

/* ---------------------------------------------------------------- boilerplate */

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

int main(int argc, char **argv)
{
    sio_config_t cfg;
    uv_loop_t *loop = uv_default_loop();
    int rc;

    sio_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 3000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            cfg.port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--host") == 0)
            cfg.host = argv[i + 1];
    }
    server = sio_server_new(loop, &cfg);
    if (server == NULL)
        return 2;
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);

    sio_nsp_on_connection(sio_server_of(server, "/"), on_connection, NULL);

    rc = sio_server_listen(server);
    if (rc == SIO_OK) {
        printf("listening on %s:%d\n", cfg.host, sio_server_port(server));
        fflush(stdout);
        uv_signal_start(&sigterm, on_signal, SIGTERM);
        uv_signal_start(&sigint, on_signal, SIGINT);
    } else {
        fprintf(stderr, "cannot listen on %s:%d: %s\n", cfg.host, cfg.port, sio_strerror(rc));
        on_signal(&sigterm, SIGTERM);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    sio_server_free(server);
    return uv_loop_close(loop) == 0 && rc == SIO_OK ? 0 : 1;
}
