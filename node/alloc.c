#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sio__oom(size_t n)
{
    fprintf(stderr, "sockeye: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sio_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        sio__oom(n);
    return p;
}

void *sio_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        sio__oom(count * size);
    return p;
}

void *sio_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        sio__oom(n);
    return q;
}

char *sio_strndup(const char *s, size_t n)
{
    char *d = sio_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sio_strdup(const char *s)
{
    return sio_strndup(s, strlen(s));
}

void sio_free(void *p)
{
    free(p);
}
