/* random.c -- see base_random.h. */
#include "base_random.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include <openssl/rand.h>

static const char base__b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int base_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        got += (size_t)r;
    }
    if (got < n && (n > (size_t)0x7fffffff || RAND_bytes(p, (int)n) != 1))
        return -1;
    return 0;
}

void base_random_id(char out[21])
{
    unsigned char raw[15];

    if (base_random_bytes(raw, sizeof(raw)) != 0) {
        fprintf(stderr, "sockeye: no random source for session ids\n");
        abort();
    }
    for (int i = 0; i < 5; i++) {
        unsigned v = (unsigned)raw[3 * i] << 16 | (unsigned)raw[3 * i + 1] << 8 | raw[3 * i + 2];
        out[4 * i] = base__b64url[v >> 18 & 63];
        out[4 * i + 1] = base__b64url[v >> 12 & 63];
        out[4 * i + 2] = base__b64url[v >> 6 & 63];
        out[4 * i + 3] = base__b64url[v & 63];
    }
    out[20] = '\0';
}
