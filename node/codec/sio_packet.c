/* sio_packet.c -- Socket.IO packets in memory (cd_sio_packet.h): creation, copies,
 * attachments, release. */
#include "cd_sio_packet.h"

#include <math.h>
#include <string.h>

#include "base_alloc.h"

/* Allocates an empty packet (no data, no buffers, id -1). nsp is copied; NULL means "/".
 * Aborts on OOM like every allocation (base_alloc.h). */
cd_sio_packet_t *cd_sio_packet_new(cd_sio_ptype_t t, const char *nsp)
{
    cd_sio_packet_t *p = base_calloc(1, sizeof(*p));

    p->type = t;
    p->nsp = base_strdup(nsp != NULL ? nsp : "/");
    p->id = -1;
    return p;
}

/* Frees p with its nsp, tree and every buffer present. Accepts NULL and packets the
 * decoder left half-filled (attach entries not yet received are NULL). */
void cd_sio_packet_free(cd_sio_packet_t *p)
{
    if (p == NULL)
        return;
    if (p->attach != NULL)
        for (size_t i = 0; i < p->n_attach; i++)
            base_free(p->attach[i].data);
    base_free(p->attach);
    cJSON_Delete(p->data);
    base_free(p->nsp);
    base_free(p);
}

/* Copies one buffer; a zero-length buffer still gets its own (1-byte) allocation so
 * that data is never NULL for a present buffer. */
void cd_sio_bin_copy(sio_bin_t *dst, const void *data, size_t len)
{
    dst->data = base_malloc(len);
    dst->len = len;
    if (len)
        memcpy(dst->data, data, len);
}

/* Deep copy of p: nsp, tree (cJSON_Duplicate) and buffers. The copy is independent
 * of p; the caller owns it. Returns NULL only when p is NULL or cJSON cannot allocate. */
cd_sio_packet_t *cd_sio_packet_dup(const cd_sio_packet_t *p)
{
    cd_sio_packet_t *q;

    if (p == NULL)
        return NULL;
    q = cd_sio_packet_new(p->type, p->nsp);
    q->id = p->id;
    if (p->data != NULL) {
        q->data = cJSON_Duplicate(p->data, 1);
        if (q->data == NULL) {
            cd_sio_packet_free(q);
            return NULL;
        }
    }
    q->n_attach = p->n_attach;
    q->n_have = p->n_have;
    if (p->n_attach > 0 && p->attach != NULL) {
        q->attach = base_calloc(p->n_attach, sizeof(*q->attach));
        for (size_t i = 0; i < p->n_attach; i++)
            if (p->attach[i].data != NULL)
                cd_sio_bin_copy(&q->attach[i], p->attach[i].data, p->attach[i].len);
    }
    return q;
}

/* Appends copies of bufs[0..n) to p->attach and raises n_attach; the caller keeps bufs.
 * Meant for packets being built for cd_sio_encode. */
void cd_sio_packet_add_attachments(cd_sio_packet_t *p, const sio_bin_t *bufs, size_t n)
{
    if (n == 0)
        return;
    p->attach = base_realloc(p->attach, (p->n_attach + n) * sizeof(*p->attach));
    for (size_t i = 0; i < n; i++)
        cd_sio_bin_copy(&p->attach[p->n_attach + i], bufs[i].data, bufs[i].len);
    p->n_attach += n;
}

/* Event names the server itself emits on a socket; a client may not send them (2.6). */
static const char *const cd__sio_reserved[] = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
};

/* 1 if name is one of cd__sio_reserved. */
int cd_sio_event_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof(cd__sio_reserved) / sizeof(cd__sio_reserved[0]); i++)
        if (strcmp(name, cd__sio_reserved[i]) == 0)
            return 1;
    return 0;
}

/* Names Socket.IO lets a client emit: a string that is not reserved, or a finite number
 * (JavaScript prints it; a non-finite one would re-encode as null, no name at all). */
int cd_sio_event_name_ok(const cJSON *name)
{
    if (cJSON_IsString(name))
        return !cd_sio_event_reserved(name->valuestring);
    return cJSON_IsNumber(name) && isfinite(name->valuedouble);
}
