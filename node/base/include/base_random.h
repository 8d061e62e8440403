/* base_random.h -- unpredictable bytes and ids.
 *
 * Session ids, socket ids, recovery pids and the maps' hash key must not be guessable
 * from outside: they come from the kernel CSPRNG (getrandom), with OpenSSL's RAND_bytes
 * for a kernel without it.
 */
#ifndef BASE_RANDOM_H
#define BASE_RANDOM_H

#include <stddef.h>

/* Fills buf with n random bytes. 0, or -1 when no random source answered (buf then
 * holds garbage). */
int base_random_bytes(void *buf, size_t n);

/* 15 random bytes as 20 base64url characters and a NUL: the shape of Node's base64id,
 * used for sids, socket ids and pids. Aborts when there is no random source at all:
 * guessable ids would let one client take over another's session. */
void base_random_id(char out[21]);

#endif
