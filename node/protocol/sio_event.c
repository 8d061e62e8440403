/* sio_event.c -- events as packets: building an EVENT from a name and arguments, reading
 * an event's name as Node does, binary placeholders. Pure helpers on codec packets, used
 * by every protocol file that emits or receives events.
 */
#include <stdio.h>

#include "base_alloc.h"
#include "sio_private.h"

void sio__append_args(cJSON *arr, cJSON *args)
{
    if (args == NULL)
        return;
    if (!cJSON_IsArray(args)) {
        cJSON_AddItemToArray(arr, args);
        return;
    }
    cJSON *it;
    while ((it = args->child) != NULL) {
        cJSON_DetachItemViaPointer(args, it);
        cJSON_AddItemToArray(arr, it);
    }
    cJSON_Delete(args);
}

cd_sio_packet_t *sio__event_packet(const char *nsp, const char *event, cJSON *args,
                                   const sio_bin_t *bins, size_t nbins)
{
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, nsp);
    p->data = cJSON_CreateArray();
    cJSON_AddItemToArray(p->data, cJSON_CreateString(event));
    sio__append_args(p->data, args);
    if (nbins > 0)
        cd_sio_packet_add_attachments(p, bins, nbins);
    return p;
}

/* See sio_private.h. */
const char *sio__event_name(const cJSON *name, char num[32])
{
    if (cJSON_IsString(name))
        return name->valuestring;
    if (cJSON_IsNumber(name)) {
        snprintf(num, 32, "%.17g", name->valuedouble);
        return num;
    }
    return NULL;
}

/* {"_placeholder":true,"num":num}. */
cJSON *sio_placeholder(int num)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "_placeholder");
    cJSON_AddNumberToObject(o, "num", num);
    return o;
}
