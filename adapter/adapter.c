/* adapter.c -- what every adapter shares: membership through the local index.
 *
 * The namespace calls adp_join/adp_leave/adp_leave_all and never touches a->rooms
 * itself, so the index and the adapter's own bookkeeping (a Redis adapter's
 * subscriptions, for instance) cannot drift apart. The index is updated here, then
 * the implementation's hook runs, except for leave_all whose hook runs first: a
 * disconnect is the one case where the hook could not otherwise learn which rooms
 * the socket was in.
 */
#include "adapter.h"

#include <string.h>

#include "base_alloc.h"
#include "sockeye_common.h"

/* Frees the session, its strings, its rooms and its data tree. NULL is ignored. */
void adp_session_free(adp_session_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_rooms; i++)
        base_free(s->rooms[i]);
    base_free(s->rooms);
    base_free(s->sid);
    base_free(s->pid);
    cJSON_Delete(s->data);
    cJSON_Delete(s->joined);
    base_free(s);
}

/* Adds sid to room in the local index (idempotent), then runs the join hook with
 * the index already updated. Returns the hook's result (SIO_OK without a hook); the
 * local membership is kept even when the hook fails, so local delivery still works
 * and the caller decides whether to undo it with adp_leave. */
int adp_join(adp_adapter_t *a, const char *sid, void *sock, const char *room)
{
    adp_rooms_add(&a->rooms, sid, sock, room);
    if (a->vt->join)
        return a->vt->join(a, sid, sock, room);
    return SIO_OK;
}

/* Removes sid from room, then runs the leave hook (the room may no longer exist in
 * the index: adp_rooms_has_room tells the hook it was the last member). */
void adp_leave(adp_adapter_t *a, const char *sid, const char *room)
{
    adp_rooms_del(&a->rooms, sid, room);
    if (a->vt->leave)
        a->vt->leave(a, sid, room);
}

/* Runs the leave_all hook while the index still lists sid's rooms (adp_rooms_of),
 * then removes sid from all of them. */
void adp_leave_all(adp_adapter_t *a, const char *sid)
{
    if (a->vt->leave_all)
        a->vt->leave_all(a, sid);
    adp_rooms_del_all(&a->rooms, sid);
}

/* Targets of opts on this node, each once (rooms.h for the rule). */
void adp_each(const adp_adapter_t *a, const adp_opts_t *opts, adp_rooms_fn fn, void *ud)
{
    adp_rooms_each(&a->rooms, opts->rooms, opts->n_rooms, opts->except, opts->n_except, fn, ud);
}

int adp_is_member(const adp_adapter_t *a, const char *sid, const char *room)
{
    return adp_rooms_is_member(&a->rooms, sid, room);
}

size_t adp_socket_rooms(const adp_adapter_t *a, const char *sid, const char **out, size_t max)
{
    return adp_rooms_of(&a->rooms, sid, out, max);
}

void adp_each_room(const adp_adapter_t *a, void (*fn)(void *ud, const char *room), void *ud)
{
    base_map_iter_t it = {0};
    const char *k;

    while (base_map_next(&a->rooms.rooms, &it, &k, NULL))
        fn(ud, k);
}

/* ---------------------------------------------------------------- offsets */

int adp_offset_parse(const char *s, uint64_t *ms, uint64_t *seq)
{
    uint64_t v[2] = {0, 0};

    if (s == NULL)
        return 0;
    for (int part = 0; part < 2; part++) {
        const char *start = s;
        while (*s >= '0' && *s <= '9') {
            uint64_t d = (uint64_t)(*s - '0');
            if (v[part] > (UINT64_MAX - d) / 10)
                return 0;
            v[part] = v[part] * 10 + d;
            s++;
        }
        if (s == start || *s != (part == 0 ? '-' : '\0'))
            return 0;
        s++;
    }
    *ms = v[0];
    *seq = v[1];
    return 1;
}

int adp_offset_cmp(uint64_t ams, uint64_t aseq, uint64_t bms, uint64_t bseq)
{
    if (ams != bms)
        return ams < bms ? -1 : 1;
    return aseq < bseq ? -1 : aseq > bseq;
}

int adp_packet_offset(const cd_sio_packet_t *p, uint64_t *ms, uint64_t *seq)
{
    const cJSON *last = p->data != NULL && p->data->child != NULL ? p->data->child->prev : NULL;
    return last != NULL && cJSON_IsString(last) && adp_offset_parse(last->valuestring, ms, seq);
}

/* ---------------------------------------------------------------- queues */

void adp_qmsg_free(adp_qmsg_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_bins; i++)
        base_free(m->bins[i].data);
    base_free(m->bins);
    cJSON_Delete(m->payload);
    base_free(m->id);
    base_free(m);
}

/* Names travel in Redis keys, channels and log lines: bounded, and nothing that could
 * break a line or a terminal. */
int adp_qname_ok(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;

    if (n < 1 || n > 200)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}
