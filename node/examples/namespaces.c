/* namespaces.c -- namespaces, dynamic namespaces and a middleware.
 *
 *   "/"                     open to all
 *   "/admin"                a middleware refuses any client whose auth lacks
 *                           {token:"secret"}: connect_error "not authorized", data {code:401}
 *   "/team-<a-z0-9>+"       created on first connection (a POSIX extended regex)
 * Everywhere: on connection -> "welcome"(namespace name);
 *             "shout"(text) -> "shout"(text) to every socket of that namespace only.
 * On "/admin": "stats"(ack) -> ack({"/": n, "/admin": n, ...}) socket counts.
 *
 * usage: example-namespaces [--host 127.0.0.1] [--port 3000]   (port 0 = any free port)
 *
 * Shows: sio_server_of, sio_server_of_pattern (dynamic namespaces), sio_nsp_use
 * (a middleware refusing with sio_conn_error_set).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sockeye.h>

#include "example.h"

#define MAX_NSP 64

static sio_namespace_t *known[MAX_NSP]; /* for "stats" */
static size_t n_known;

static void on_shout(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                     size_t nbins, sio_ack_t *ack, void *ud)
{
    const cJSON *text = cJSON_GetArrayItem(args, 0);
    cJSON *out = cJSON_CreateArray();

    cJSON_AddItemToArray(out, text ? cJSON_Duplicate(text, 1) : cJSON_CreateNull());
    /* io.of(nsp).emit(): the namespace is the boundary. */
    sio_emit(sio_op(sio_socket_nsp(s)), "shout", out, NULL, 0);
}

static void on_stats(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                     size_t nbins, sio_ack_t *ack, void *ud)
{
    cJSON *out = cJSON_CreateArray(), *counts = cJSON_CreateObject();

    for (size_t i = 0; i < n_known; i++)
        cJSON_AddNumberToObject(counts, sio_nsp_name(known[i]),
                                (double)sio_nsp_socket_count(known[i]));
    cJSON_AddItemToArray(out, counts);
    if (ack != NULL)
        sio_ack(ack, out, NULL, 0);
    else
        cJSON_Delete(out);
}

static void on_connection(sio_socket_t *s, void *ud)
{
    cJSON *args = cJSON_CreateArray();

    cJSON_AddItemToArray(args, cJSON_CreateString(sio_nsp_name(sio_socket_nsp(s))));
    sio_socket_emit(s, "welcome", args, NULL, 0);
    sio_socket_on(s, "shout", on_shout, NULL);
    if (ud != NULL) /* the admin namespace */
        sio_socket_on(s, "stats", on_stats, NULL);
}

/* Runs at CONNECT, before the socket exists for the application. */
static int require_token(sio_socket_t *s, sio_conn_error_t *err, void *ud)
{
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(sio_socket_auth(s), "token");
    cJSON *data;

    if (cJSON_IsString(token) && strcmp(token->valuestring, "secret") == 0)
        return 0;
    data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "code", 401);
    sio_conn_error_set(err, "not authorized", data);
    return 1;
}

static void serve(sio_namespace_t *nsp, void *admin)
{
    if (n_known < MAX_NSP)
        known[n_known++] = nsp;
    sio_nsp_on_connection(nsp, on_connection, admin);
}

/* A client asked for a name matching the pattern: the namespace now exists. */
static void on_new_team(sio_namespace_t *nsp, void *ud)
{
    serve(nsp, NULL);
}

static void setup(sio_server_t *server)
{
    sio_namespace_t *admin = sio_server_of(server, "/admin");

    serve(sio_server_of(server, "/"), NULL);
    sio_nsp_use(admin, require_token, NULL);
    serve(admin, admin);
    sio_server_of_pattern(server, "^/team-[a-z0-9]+$", on_new_team, NULL);
}

int main(int argc, char **argv)
{
    return example_main(argc, argv, setup);
}
