/* map.h -- string-keyed hash map (open addressing, linear probing).
 *
 * Used for rooms, socket ids, sessions and namespaces: everything Sockeye looks up
 * by name. Keys are copied in; values are opaque pointers the map never frees.
 * The struct is caller-allocated so it can be embedded (hot-path internal).
 */
#ifndef SIO_MAP_H
#define SIO_MAP_H

#include <stddef.h>

typedef struct sio_map_entry {
    char *key;    /* owned copy; NULL = empty slot; SIO_MAP_TOMB = deleted */
    void *value;
    unsigned hash;
} sio_map_entry_t;

typedef struct sio_map {
    sio_map_entry_t *slots;
    size_t cap;   /* power of two, 0 before the first insert */
    size_t size;  /* live entries */
    size_t used;  /* live + tombstones, drives the resize */
} sio_map_t;

typedef struct sio_map_iter {
    size_t pos;
} sio_map_iter_t;

void sio_map_init(sio_map_t *m);
/* Frees keys and slots, not values. The map is empty and reusable afterwards. */
void sio_map_clear(sio_map_t *m);
void *sio_map_get(const sio_map_t *m, const char *key);
int sio_map_has(const sio_map_t *m, const char *key);
/* Inserts or replaces; returns the previous value (NULL when the key was new). */
void *sio_map_put(sio_map_t *m, const char *key, void *value);
/* Removes key; returns its value, or NULL when absent. */
void *sio_map_del(sio_map_t *m, const char *key);
static inline size_t sio_map_size(const sio_map_t *m)
{
    return m->size;
}
/* Iteration: sio_map_iter_t it = {0}; while (sio_map_next(m, &it, &k, &v)) ...
 * Deleting the entry just returned is allowed; inserting during iteration is not. */
int sio_map_next(const sio_map_t *m, sio_map_iter_t *it, const char **key, void **value);

#endif
