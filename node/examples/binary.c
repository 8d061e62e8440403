/* binary.c -- binary data both ways: buffers travel beside the JSON tree.
 *
 * In a cJSON tree a buffer is the placeholder {"_placeholder":true,"num":k} and its
 * bytes are bins[k] -- exactly the Socket.IO wire model, so nested buffers cost
 * nothing special.
 *
 *   on connection           -> "hello"({greeting:"hi", blob:<DE AD BE EF>})
 *   "echo"(...args, ack)    -> ack(...args), buffers included, wherever they are nested
 *   "reverse"(buf, ack)     -> ack(<buf's bytes reversed>)
 *
 * usage: example-binary [--host 127.0.0.1] [--port 3000]   (port 0 = any free port)
 *
 * Shows: binary arguments both ways with sio_placeholder and bins, nested anywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sockeye.h>

#include "example.h"

static void on_echo(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                    size_t nbins, sio_ack_t *ack, void *ud)
{
    /* args is borrowed, sio_ack consumes its tree: duplicate. bins are copied. */
    if (ack != NULL)
        sio_ack(ack, cJSON_Duplicate(args, 1), bins, nbins);
}

/* The buffer args[0] designates, or NULL when args[0] is no placeholder. */
static const sio_bin_t *arg_buffer(const cJSON *args, const sio_bin_t *bins, size_t nbins)
{
    const cJSON *a = cJSON_GetArrayItem(args, 0);
    const cJSON *num = cJSON_GetObjectItemCaseSensitive(a, "num");

    if (!cJSON_IsObject(a) || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "_placeholder")) ||
        !cJSON_IsNumber(num) || num->valuedouble < 0 || num->valuedouble >= (double)nbins)
        return NULL;
    return &bins[(size_t)num->valuedouble];
}

static void on_reverse(sio_socket_t *s, const char *event, const cJSON *args, const sio_bin_t *bins,
                       size_t nbins, sio_ack_t *ack, void *ud)
{
    const sio_bin_t *in = arg_buffer(args, bins, nbins);
    cJSON *out = cJSON_CreateArray();
    sio_bin_t rev;

    if (ack == NULL) {
        cJSON_Delete(out);
        return;
    }
    if (in == NULL) {
        cJSON_AddItemToArray(out, cJSON_CreateString("reverse takes a buffer"));
        sio_ack(ack, out, NULL, 0);
        return;
    }
    rev.len = in->len;
    rev.data = malloc(in->len ? in->len : 1);
    if (rev.data == NULL) {
        cJSON_Delete(out);
        return;
    }
    for (size_t i = 0; i < in->len; i++)
        rev.data[i] = in->data[in->len - 1 - i];
    cJSON_AddItemToArray(out, sio_placeholder(0));
    sio_ack(ack, out, &rev, 1); /* bins are copied: ours to free */
    free(rev.data);
}

static void on_connection(sio_socket_t *s, void *ud)
{
    static unsigned char bytes[] = {0xde, 0xad, 0xbe, 0xef};
    sio_bin_t blob = {bytes, sizeof(bytes)};
    cJSON *args = cJSON_CreateArray(), *hello = cJSON_CreateObject();

    cJSON_AddStringToObject(hello, "greeting", "hi");
    cJSON_AddItemToObject(hello, "blob", sio_placeholder(0));
    cJSON_AddItemToArray(args, hello);
    sio_socket_emit(s, "hello", args, &blob, 1);

    sio_socket_on(s, "echo", on_echo, NULL);
    sio_socket_on(s, "reverse", on_reverse, NULL);
}

static void setup(sio_server_t *server)
{
    sio_nsp_on_connection(sio_server_of(server, "/"), on_connection, NULL);
}

int main(int argc, char **argv)
{
    return example_main(argc, argv, setup);
}
