/* rooms.c -- the local rooms index (room <-> socket, both ways).
 *
 * Two maps of maps: room -> {sid -> sock} answers "who is in this room" for a
 * broadcast, sid -> {room -> sock} answers "which rooms must this socket leave" at a
 * disconnect without scanning every room. An inner map exists only while it has an
 * entry, so a room with no member does not exist (as in socket.io-adapter, where
 * "delete-room" fires when the last member leaves).
 *
 * Targets (adp_rooms_each) follow the one rule every adapter shares: union of the
 * rooms (every socket when none), minus members of any except room, each socket at
 * most once. A deduplicating set is built only when two or more rooms could name the
 * same socket; the common cases (everyone, one room) walk a single map.
 */
#include "rooms.h"

#include "base_alloc.h"

/* Inner map of outer[key], created on demand. */
static base_map_t *adp__rooms_inner(base_map_t *outer, const char *key)
{
    base_map_t *in = base_map_get(outer, key);
    if (in == NULL) {
        in = base_malloc(sizeof(*in));
        base_map_init(in);
        base_map_put(outer, key, in);
    }
    return in;
}

/* Removes member from outer[key] and drops the inner map when it became empty. */
static void adp__rooms_unlink(base_map_t *outer, const char *key, const char *member)
{
    base_map_t *in = base_map_get(outer, key);
    if (in == NULL)
        return;
    base_map_del(in, member);
    if (base_map_size(in) == 0) {
        base_map_del(outer, key);
        base_map_clear(in);
        base_free(in);
    }
}

static void adp__rooms_free_outer(base_map_t *outer)
{
    base_map_iter_t it = {0};
    void *v;
    while (base_map_next(outer, &it, NULL, &v)) {
        base_map_clear(v);
        base_free(v);
    }
    base_map_clear(outer);
}

void adp_rooms_init(adp_rooms_t *r)
{
    base_map_init(&r->rooms);
    base_map_init(&r->sids);
}

/* Forgets every membership; the socket pointers are not the index's to free. */
void adp_rooms_clear(adp_rooms_t *r)
{
    adp__rooms_free_outer(&r->rooms);
    adp__rooms_free_outer(&r->sids);
}

/* Idempotent: joining twice keeps one membership (and updates the pointer). */
void adp_rooms_add(adp_rooms_t *r, const char *sid, void *sock, const char *room)
{
    base_map_put(adp__rooms_inner(&r->rooms, room), sid, sock);
    base_map_put(adp__rooms_inner(&r->sids, sid), room, sock);
}

/* No-op when sid is not in room. */
void adp_rooms_del(adp_rooms_t *r, const char *sid, const char *room)
{
    adp__rooms_unlink(&r->rooms, room, sid);
    adp__rooms_unlink(&r->sids, sid, room);
}

/* Removes sid from every room it is in (a disconnect). No-op for an unknown sid. */
void adp_rooms_del_all(adp_rooms_t *r, const char *sid)
{
    base_map_t *mine = base_map_del(&r->sids, sid);
    if (mine == NULL)
        return;
    base_map_iter_t it = {0};
    const char *room;
    while (base_map_next(mine, &it, &room, NULL))
        adp__rooms_unlink(&r->rooms, room, sid);
    base_map_clear(mine);
    base_free(mine);
}

int adp_rooms_has_room(const adp_rooms_t *r, const char *room)
{
    return base_map_has(&r->rooms, room);
}

int adp_rooms_is_member(const adp_rooms_t *r, const char *sid, const char *room)
{
    const base_map_t *in = base_map_get(&r->rooms, room);
    return in != NULL && base_map_has(in, sid);
}

size_t adp_rooms_room_size(const adp_rooms_t *r, const char *room)
{
    const base_map_t *in = base_map_get(&r->rooms, room);
    return in ? base_map_size(in) : 0;
}

/* The room names written to out are borrowed from the index: valid until sid's
 * membership changes. Returns the total so the caller can size a second call. */
size_t adp_rooms_of(const adp_rooms_t *r, const char *sid, const char **out, size_t max)
{
    const base_map_t *in = base_map_get(&r->sids, sid);
    if (in == NULL)
        return 0;
    base_map_iter_t it = {0};
    const char *room;
    size_t n = 0;
    while (base_map_next(in, &it, &room, NULL)) {
        if (n < max)
            out[n] = room;
        n++;
    }
    return n;
}

static int adp__rooms_excluded(const adp_rooms_t *r, const char *sid, const char *const *except,
                               size_t n_except)
{
    for (size_t i = 0; i < n_except; i++) {
        if (adp_rooms_is_member(r, sid, except[i]))
            return 1;
    }
    return 0;
}

/* Every socket of the namespace: each sid appears once in r->sids, and any entry of
 * its inner map carries the socket pointer. */
static void adp__rooms_each_all(const adp_rooms_t *r, const char *const *except, size_t n_except,
                                adp_rooms_fn fn, void *ud)
{
    base_map_iter_t it = {0};
    const char *sid;
    void *v;
    while (base_map_next(&r->sids, &it, &sid, &v)) {
        base_map_iter_t in_it = {0};
        void *sock = NULL;
        base_map_next(v, &in_it, NULL, &sock);
        if (!adp__rooms_excluded(r, sid, except, n_except))
            fn(ud, sid, sock);
    }
}

/* Calls fn once per target socket. fn must not change the index: the walk holds
 * iterators into it. No allocation unless two or more rooms are given. */
void adp_rooms_each(const adp_rooms_t *r, const char *const *rooms, size_t n_rooms,
                    const char *const *except, size_t n_except, adp_rooms_fn fn, void *ud)
{
    if (rooms == NULL || n_rooms == 0) {
        adp__rooms_each_all(r, except, n_except, fn, ud);
        return;
    }

    base_map_t seen;
    int dedupe = n_rooms > 1;
    base_map_init(&seen);
    for (size_t i = 0; i < n_rooms; i++) {
        const base_map_t *in = base_map_get(&r->rooms, rooms[i]);
        if (in == NULL)
            continue;
        base_map_iter_t it = {0};
        const char *sid;
        void *sock;
        while (base_map_next(in, &it, &sid, &sock)) {
            if (dedupe) {
                if (base_map_has(&seen, sid))
                    continue;
                base_map_put(&seen, sid, NULL);
            }
            if (!adp__rooms_excluded(r, sid, except, n_except))
                fn(ud, sid, sock);
        }
    }
    base_map_clear(&seen);
}
