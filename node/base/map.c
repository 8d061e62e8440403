/* map.c -- string-keyed hash map: open addressing, linear probing, keyed SipHash-1-3.
 *
 * Why open addressing: rooms, sids and sessions are looked up on every broadcast
 * and every join; one flat slot array keeps a probe inside a cache line or two and
 * costs one allocation per map instead of one per entry. The capacity is a power of
 * two so the probe wraps with a mask. Deleted slots become tombstones so that the
 * probe chains of other keys stay intact; a tombstone directly followed by an empty
 * slot is useless (every probe through it stops one slot later anyway), so a delete
 * turns such trailing tombstones back into empty slots. The table is rebuilt when
 * live + tombstones pass 70% of the slots: doubled when live entries fill more than
 * half of it, otherwise rehashed in place to sweep the tombstones.
 *
 * Why a keyed hash: clients name rooms, and with an unkeyed hash (FNV-1a before) anyone can
 * compute thousands of names that land in one probe chain and turn every join and
 * broadcast lookup linear. SipHash with a random per-process key (kernel CSPRNG at the
 * first insert) makes the slot of a name unpredictable from outside; 1-3 rounds, as
 * Redis uses for its dicts, is enough for hash-table flooding and costs little more than
 * FNV on short keys.
 */
#include "base_map.h"

#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base_alloc.h"
#include "base_random.h"

/* Address of a private byte: never equal to a key we allocated. */
static char base__map_tomb_byte;
#define BASE_MAP_TOMB (&base__map_tomb_byte)

#define BASE_MAP_MIN_CAP 8

/* ------------------------------------------------------------------ SipHash */

#define BASE_ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void base__sip_rounds(uint64_t v[4], int n)
{
    while (n-- > 0) {
        v[0] += v[1];
        v[1] = BASE_ROTL64(v[1], 13);
        v[1] ^= v[0];
        v[0] = BASE_ROTL64(v[0], 32);
        v[2] += v[3];
        v[3] = BASE_ROTL64(v[3], 16);
        v[3] ^= v[2];
        v[0] += v[3];
        v[3] = BASE_ROTL64(v[3], 21);
        v[3] ^= v[0];
        v[2] += v[1];
        v[1] = BASE_ROTL64(v[1], 17);
        v[1] ^= v[2];
        v[2] = BASE_ROTL64(v[2], 32);
    }
}

static uint64_t base__le64(const unsigned char *p, size_t n)
{
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)p[i] << (8 * i);
    return w;
}

/* See map.h. */
uint64_t base__siphash(const void *data, size_t len, const unsigned char key[16], int c, int d)
{
    const unsigned char *p = data;
    uint64_t k0 = base__le64(key, 8), k1 = base__le64(key + 8, 8), m;
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
                     k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull};
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        m = base__le64(p + i, 8);
        v[3] ^= m;
        base__sip_rounds(v, c);
        v[0] ^= m;
    }
    m = base__le64(p + i, len - i) | ((uint64_t)(len & 0xff) << 56);
    v[3] ^= m;
    base__sip_rounds(v, c);
    v[0] ^= m;
    v[2] ^= 0xff;
    base__sip_rounds(v, d);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static unsigned char base__map_key[16];
static int base__map_keyed;

/* See map.h. */
void base_map_seed(const unsigned char key[16])
{
    memcpy(base__map_key, key, sizeof(base__map_key));
    base__map_keyed = 1;
}

/* The process key, drawn once. Without a CSPRNG at all (no getrandom, no OpenSSL seed)
 * the clock and pid still differ per process: worse, but never a fixed key. */
static void base__map_keygen(void)
{
    unsigned char k[16];

    if (base_random_bytes(k, sizeof(k)) != 0) {
        struct timespec ts;
        uint64_t mix;
        clock_gettime(CLOCK_REALTIME, &ts);
        mix =
            ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
        memcpy(k, &mix, sizeof(mix));
        memcpy(k + 8, &k[0], 8);
    }
    base_map_seed(k);
}

static unsigned base__map_hash(const char *key)
{
    if (!base__map_keyed)
        base__map_keygen();
    return (unsigned)base__siphash(key, strlen(key), base__map_key, 1, 3);
}

static int base__map_live(const base_map_entry_t *e)
{
    return e->key != NULL && e->key != BASE_MAP_TOMB;
}

/* Slot index holding key, or (size_t)-1. */
static size_t base__map_find(const base_map_t *m, const char *key, unsigned h)
{
    if (m->cap == 0)
        return (size_t)-1;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask, n = 0; n < m->cap; i = (i + 1) & mask, n++) {
        const base_map_entry_t *e = &m->slots[i];
        if (e->key == NULL)
            break;
        if (e->key != BASE_MAP_TOMB && e->hash == h && strcmp(e->key, key) == 0)
            return i;
    }
    return (size_t)-1;
}

/* Moves every live entry into a fresh table of new_cap slots (keys are moved, not copied). */
static void base__map_rehash(base_map_t *m, size_t new_cap)
{
    base_map_entry_t *old = m->slots;
    size_t old_cap = m->cap;
    size_t mask = new_cap - 1;

    m->slots = base_calloc(new_cap, sizeof(*m->slots));
    m->cap = new_cap;
    m->used = m->size;
    for (size_t i = 0; i < old_cap; i++) {
        if (!base__map_live(&old[i]))
            continue;
        size_t j = old[i].hash & mask;
        while (m->slots[j].key != NULL)
            j = (j + 1) & mask;
        m->slots[j] = old[i];
    }
    base_free(old);
}

void base_map_init(base_map_t *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->size = 0;
    m->used = 0;
}

/* Frees the copied keys and the slot array; values belong to the caller, who must
 * free them first if needed (iterate, then clear). */
void base_map_clear(base_map_t *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (base__map_live(&m->slots[i]))
            base_free(m->slots[i].key);
    }
    base_free(m->slots);
    base_map_init(m);
}

/* Value stored under key, or NULL when absent (a stored NULL looks the same: use
 * base_map_has to tell them apart). */
void *base_map_get(const base_map_t *m, const char *key)
{
    size_t i = base__map_find(m, key, base__map_hash(key));
    return i == (size_t)-1 ? NULL : m->slots[i].value;
}

int base_map_has(const base_map_t *m, const char *key)
{
    return base__map_find(m, key, base__map_hash(key)) != (size_t)-1;
}

/* Inserts a copy of key or replaces the value of an existing key. Returns the value
 * it replaced (NULL for a new key) so the caller can free it. Never fails (OOM aborts
 * per base_alloc.h). */
void *base_map_put(base_map_t *m, const char *key, void *value)
{
    unsigned h = base__map_hash(key);
    size_t i = base__map_find(m, key, h);
    if (i != (size_t)-1) {
        void *prev = m->slots[i].value;
        m->slots[i].value = value;
        return prev;
    }

    if (m->cap == 0) {
        base__map_rehash(m, BASE_MAP_MIN_CAP);
    } else if ((m->used + 1) * 10 > m->cap * 7) {
        size_t cap = m->cap;
        if ((m->size + 1) * 2 > cap)
            cap *= 2;
        base__map_rehash(m, cap);
    }

    /* The key is absent: take the first tombstone or empty slot of its chain. */
    size_t mask = m->cap - 1;
    i = h & mask;
    while (base__map_live(&m->slots[i]))
        i = (i + 1) & mask;
    if (m->slots[i].key == NULL)
        m->used++;
    m->slots[i].key = base_strdup(key);
    m->slots[i].value = value;
    m->slots[i].hash = h;
    m->size++;
    return NULL;
}

/* Removes key and returns its value (NULL when absent). Safe during iteration for the
 * entry just returned by base_map_next: no live entry moves. */
void *base_map_del(base_map_t *m, const char *key)
{
    unsigned h = base__map_hash(key);
    size_t i = base__map_find(m, key, h);
    if (i == (size_t)-1)
        return NULL;

    size_t mask = m->cap - 1;
    void *value = m->slots[i].value;
    base_free(m->slots[i].key);
    m->slots[i].key = BASE_MAP_TOMB;
    m->slots[i].value = NULL;
    m->size--;

    /* Trailing tombstones in front of an empty slot end no chain: reclaim them. */
    if (m->slots[(i + 1) & mask].key == NULL) {
        size_t n = 0;
        while (m->slots[i].key == BASE_MAP_TOMB && n < m->cap) {
            m->slots[i].key = NULL;
            m->used--;
            i = (i - 1) & mask;
            n++;
        }
    }
    return value;
}

/* Returns 1 with the next live entry in *key / *value (either may be NULL), 0 at the
 * end. Order is slot order: unspecified but stable while the map is not modified. */
int base_map_next(const base_map_t *m, base_map_iter_t *it, const char **key, void **value)
{
    while (it->pos < m->cap) {
        const base_map_entry_t *e = &m->slots[it->pos++];
        if (base__map_live(e)) {
            if (key)
                *key = e->key;
            if (value)
                *value = e->value;
            return 1;
        }
    }
    return 0;
}
