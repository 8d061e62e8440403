/* chat.c -- rooms and broadcasts: a complete chat server on the public API.
 *
 * A client connects with its name in the auth payload and a room in the query:
 *     io("http://127.0.0.1:3000", { auth: { name: "ann" }, query: { room: "lobby" } })
 * and then
 *     "message"(text)      -> everyone else in the room gets "message"({name, text})
 * The room hears "joined"({name}) when someone arrives and "left"({name}) when they go.
 *
 * usage: example-chat [--host 127.0.0.1] [--port 3000]   (port 0 = any free port)
 *
 * Shows: rooms (sio_socket_join), socket.to(room).emit (sio_op_from + sio_to), handshake
 * auth and query, disconnect callbacks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sockeye.h>

#include "example.h"

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

static void setup(sio_server_t *server)
{
    sio_nsp_on_connection(sio_server_of(server, "/"), on_connection, NULL);
}

int main(int argc, char **argv)
{
    return example_main(argc, argv, setup);
}
