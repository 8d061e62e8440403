/* alloc.c -- the allocation wrappers of base_alloc.h: one place for the OOM policy (abort).
 *
 * A zero-byte request is served as one byte so that a valid call never returns NULL
 * and "NULL means failure" needs no exception anywhere.
 */
#include "base_alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void base__oom(size_t n)
{
    fprintf(stderr, "sockeye: out of memory allocating %zu bytes\n", n);
    abort();
}

/* n bytes, uninitialised. Never NULL: out of memory aborts. */
void *base_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        base__oom(n);
    return p;
}

/* count * size zeroed bytes. Never NULL: out of memory, or a product that does not
 * fit in size_t (calloc checks it), aborts. */
void *base_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        base__oom(size != 0 && count > SIZE_MAX / size ? SIZE_MAX : count * size);
    return p;
}

/* Resizes p (NULL: allocates) to n bytes; p is invalid afterwards, use the result.
 * Never NULL: out of memory aborts (p is then not freed, but the process ends). */
void *base_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        base__oom(n);
    return q;
}

/* A NUL-terminated copy of the first n bytes of s (which need no NUL of their own). */
char *base_strndup(const char *s, size_t n)
{
    char *d = base_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* A copy of the string s. */
char *base_strdup(const char *s)
{
    return base_strndup(s, strlen(s));
}

/* Frees what the calls above returned; NULL is ignored. */
void base_free(void *p)
{
    free(p);
}
