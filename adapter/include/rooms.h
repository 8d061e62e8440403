/* rooms.h -- the local rooms index: room <-> socket, both ways.
 *
 * Each socket is named by its id and carries an opaque pointer (the protocol
 * layer's socket). Targets of a broadcast are computed here so every adapter
 * agrees on the rule: union of rooms (every socket when no room is given) minus the
 * members of the except rooms, each socket at most once.
 */
#ifndef ADP_ROOMS_H
#define ADP_ROOMS_H

#include <stddef.h>

#include "base_map.h"

typedef struct adp_rooms {
    base_map_t rooms; /* room -> base_map_t* (sid -> sock) */
    base_map_t sids;  /* sid -> base_map_t* (room -> sock) */
} adp_rooms_t;

void adp_rooms_init(adp_rooms_t *r);
void adp_rooms_clear(adp_rooms_t *r);
/* Adds sid (with its pointer) to room; idempotent. */
void adp_rooms_add(adp_rooms_t *r, const char *sid, void *sock, const char *room);
void adp_rooms_del(adp_rooms_t *r, const char *sid, const char *room);
void adp_rooms_del_all(adp_rooms_t *r, const char *sid);
int adp_rooms_has_room(const adp_rooms_t *r, const char *room);
int adp_rooms_is_member(const adp_rooms_t *r, const char *sid, const char *room);
size_t adp_rooms_room_size(const adp_rooms_t *r, const char *room);
/* The rooms of sid: fills out (up to max) and returns the total count. */
size_t adp_rooms_of(const adp_rooms_t *r, const char *sid, const char **out, size_t max);
/* Calls fn once per matching socket. rooms NULL/0 = every socket. fn must not
 * change the index (collect first, mutate after). */
typedef void (*adp_rooms_fn)(void *ud, const char *sid, void *sock);
void adp_rooms_each(const adp_rooms_t *r, const char *const *rooms, size_t n_rooms,
                    const char *const *except, size_t n_except, adp_rooms_fn fn, void *ud);

#endif
