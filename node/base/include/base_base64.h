/* base_base64.h -- standard alphabet with padding, as Engine.IO polling uses ("b" records). */
#ifndef BASE_BASE64_H
#define BASE_BASE64_H

#include <stddef.h>

/* Encoded length for n input bytes (no NUL). */
static inline size_t base_b64_enclen(size_t n)
{
    return (n + 2) / 3 * 4;
}
/* Writes base_b64_enclen(n) chars to out (no NUL); returns that length. */
size_t base_b64_encode(const unsigned char *in, size_t n, char *out);
/* Strict decode (padding required, no whitespace). out needs n / 4 * 3 bytes.
 * Returns 0 and sets *outlen, or -1 on any invalid input (out is then garbage). */
int base_b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen);

#endif
