/* base_alloc.h -- the one memory policy of Sockeye.
 *
 * Every allocation goes through these wrappers so the policy lives in one place.
 * Policy: allocation failure aborts the process with a message (as hiredis 0.14's
 * alloc.h does). A node that cannot allocate a few hundred bytes cannot keep its
 * delivery promises either; dying loudly lets the load balancer and the recovery
 * path (sessions in Redis) take over, which is safer than limping on with holes.
 * Per-client limits (max payload, queue high-water marks) keep a single client from
 * being the reason we run out.
 */
#ifndef BASE_ALLOC_H
#define BASE_ALLOC_H

#include <stddef.h>

void *base_malloc(size_t n);
void *base_calloc(size_t count, size_t size);
void *base_realloc(void *p, size_t n);
char *base_strdup(const char *s);
char *base_strndup(const char *s, size_t n);
void base_free(void *p);

#endif
