/* cd_utf8.h -- UTF-8 checked and repaired the way Node.js decodes it.
 *
 * Text that crosses into Sockeye from peers written in JavaScript (msgpack strings from
 * notepack, JSON payloads read with Buffer.toString) may hold ill-formed UTF-8. Node never
 * refuses such text: its decoder (the WHATWG one) replaces each maximal ill-formed
 * subsequence with U+FFFD. Doing exactly the same here keeps what a Sockeye node passes on
 * identical to what a Node node would, and gives every codec one definition of "valid"
 * (WebSocket text frames will be checked with it too). Pure functions: no allocation.
 */
#ifndef CD_UTF8_H
#define CD_UTF8_H

#include <stddef.h>

/* Repairs s[0..n): every maximal ill-formed subsequence (a stray continuation byte, a
 * truncated sequence, an overlong form, a surrogate, a code point past U+10FFFF, bytes
 * C0, C1, F5..FF) becomes U+FFFD (EF BF BD); well-formed sequences are kept as they are.
 * Returns the length of the result and writes it to dst when dst is not NULL (dst then
 * needs that many bytes: call once with NULL to measure). *changed is set to 1 when
 * anything was replaced, else 0. NUL bytes are ordinary characters here. */
size_t cd_utf8_repair(const unsigned char *s, size_t n, unsigned char *dst, int *changed);

/* 1 when s[0..n) is well-formed UTF-8 (cd_utf8_repair would change nothing), else 0. */
int cd_utf8_valid(const unsigned char *s, size_t n);

#endif
