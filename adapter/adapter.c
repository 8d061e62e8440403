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

#include "alloc.h"
#include "sockeye.h"

/* Frees the session, its strings, its rooms and its data tree. NULL is ignored. */
void adp_session_free(adp_session_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_rooms; i++)
        sio_free(s->rooms[i]);
    sio_free(s->rooms);
    sio_free(s->sid);
    sio_free(s->pid);
    cJSON_Delete(s->data);
    sio_free(s);
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
