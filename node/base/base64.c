/* base64.c -- RFC 4648 base64 (standard alphabet, '=' padding) for Engine.IO polling.
 *
 * Polling carries every binary message as "b" + base64, so this sits on the per-message
 * path: table driven, no allocation, one pass. The decoder is strict (length a multiple
 * of 4, padding only in the last quantum, no whitespace, unused trailing bits zero) so
 * that a decoded record re-encodes to the very same bytes; every client we talk to
 * (engine.io-client, Node's Buffer) writes canonical base64.
 */
#include "base_base64.h"

#include <stdint.h>

static const char base__b64_alpha[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value + 1 of each input byte, 0 when not in the alphabet ('=' included): the zero
 * default of the unlisted entries then means "invalid" without a range initializer. */
static const uint8_t base__b64_val[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

/* Encodes n bytes of in as base_b64_enclen(n) characters in out (no NUL).
 * Never fails; returns the number of characters written. */
size_t base_b64_encode(const unsigned char *in, size_t n, char *out)
{
    char *o = out;
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = base__b64_alpha[v >> 18];
        *o++ = base__b64_alpha[(v >> 12) & 63];
        *o++ = base__b64_alpha[(v >> 6) & 63];
        *o++ = base__b64_alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = base__b64_alpha[v >> 18];
        *o++ = base__b64_alpha[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = base__b64_alpha[v >> 18];
        *o++ = base__b64_alpha[(v >> 12) & 63];
        *o++ = base__b64_alpha[(v >> 6) & 63];
        *o++ = '=';
    }
    return (size_t)(o - out);
}

/* Strict decode of n characters into out (room for n / 4 * 3 bytes).
 * Returns 0 and the decoded length in *outlen, or -1 on a length that is not a multiple
 * of 4, a character outside the alphabet, misplaced padding, or nonzero unused bits.
 * out may have been written to on failure. */
int base_b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen)
{
    const unsigned char *s = (const unsigned char *)in;
    unsigned char *o = out;

    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        unsigned a = base__b64_val[s[i]], b = base__b64_val[s[i + 1]];
        unsigned c = base__b64_val[s[i + 2]], d = base__b64_val[s[i + 3]];

        if (a && b && c && d) {
            uint32_t v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
            *o++ = (unsigned char)(v >> 16);
            *o++ = (unsigned char)(v >> 8);
            *o++ = (unsigned char)v;
            continue;
        }
        /* Only the last quantum may be short, as "xx==" or "xxx=". */
        if (i + 4 != n || !a || !b || s[i + 3] != '=')
            return -1;
        a--;
        b--;
        if (s[i + 2] == '=') {
            if (b & 0x0F)
                return -1;
            *o++ = (unsigned char)(a << 2 | b >> 4);
        } else {
            if (!c || ((c - 1) & 0x03))
                return -1;
            c--;
            *o++ = (unsigned char)(a << 2 | b >> 4);
            *o++ = (unsigned char)(b << 4 | c >> 2);
        }
    }
    *outlen = (size_t)(o - out);
    return 0;
}
