/* base_map.h -- string-keyed hash map (open addressing, linear probing).
 *
 * Used for rooms, socket ids, sessions and namespaces: everything Sockeye looks up
 * by name. Keys are copied in; values are opaque pointers the map never frees.
 * The struct is caller-allocated so it can be embedded (hot-path internal).
 */
#ifndef BASE_MAP_H
#define BASE_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct base_map_entry {
    char *key;    /* owned copy; NULL = empty slot; BASE_MAP_TOMB = deleted */
    void *value;
    unsigned hash;
} base_map_entry_t;

typedef struct base_map {
    base_map_entry_t *slots;
    size_t cap;   /* power of two, 0 before the first insert */
    size_t size;  /* live entries */
    size_t used;  /* live + tombstones, drives the resize */
} base_map_t;

typedef struct base_map_iter {
    size_t pos;
} base_map_iter_t;

void base_map_init(base_map_t *m);
/* Frees keys and slots, not values. The map is empty and reusable afterwards. */
void base_map_clear(base_map_t *m);
void *base_map_get(const base_map_t *m, const char *key);
int base_map_has(const base_map_t *m, const char *key);
/* Inserts or replaces; returns the previous value (NULL when the key was new). */
void *base_map_put(base_map_t *m, const char *key, void *value);
/* Removes key; returns its value, or NULL when absent. */
void *base_map_del(base_map_t *m, const char *key);
static inline size_t base_map_size(const base_map_t *m)
{
    return m->size;
}
/* Iteration: base_map_iter_t it = {0}; while (base_map_next(m, &it, &k, &v)) ...
 * Deleting the entry just returned is allowed; inserting during iteration is not. */
int base_map_next(const base_map_t *m, base_map_iter_t *it, const char **key, void **value);

/* Sets the hash key of every map in the process. Drawn from the kernel CSPRNG at the
 * first insert otherwise; call it only before any map holds a key (tests, fuzzers that
 * want a fixed layout): entries keep the hash they were stored with. */
void base_map_seed(const unsigned char key[16]);
/* SipHash-c-d of data under key (c = 1, d = 3 for the maps; 2-4 is the reference one). */
uint64_t base__siphash(const void *data, size_t len, const unsigned char key[16], int c, int d);

#endif
