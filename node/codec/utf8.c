/* utf8.c -- UTF-8 validation and repair as Node.js decodes (cd_utf8.h).
 *
 * One pass over the bytes following the well-formed table of Unicode 15 §3.9 (table 3-7):
 * a lead byte fixes how many continuation bytes follow and the range of the first one
 * (which is what rules out overlong forms, surrogates and code points past U+10FFFF). A
 * sequence that breaks off is one maximal ill-formed subsequence and costs one U+FFFD; the
 * byte that broke it starts the next sequence, as in the WHATWG decoder.
 */
#include "cd_utf8.h"

#include <string.h>

/* Repairs s[0..n) into dst (or only measures when dst is NULL); see cd_utf8.h. */
size_t cd_utf8_repair(const unsigned char *s, size_t n, unsigned char *dst, int *changed)
{
    size_t i = 0, o = 0;

    *changed = 0;
    while (i < n) {
        unsigned char c = s[i];
        unsigned need, lo = 0x80, hi = 0xBF;
        size_t j;

        if (c < 0x80) {
            if (dst)
                dst[o] = c;
            o++;
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            need = 0;
        }
        j = i + 1;
        for (unsigned k = 0; k < need; k++, j++) {
            if (j >= n || s[j] < lo || s[j] > hi)
                break;
            lo = 0x80;
            hi = 0xBF;
        }
        if (need > 0 && j == i + 1 + need) {
            if (dst)
                memcpy(dst + o, s + i, j - i);
            o += j - i;
        } else {
            if (dst)
                memcpy(dst + o, "\xEF\xBF\xBD", 3);
            o += 3;
            *changed = 1;
        }
        i = j;
    }
    return o;
}

/* Well-formed check: the repair's verdict without writing anything. */
int cd_utf8_valid(const unsigned char *s, size_t n)
{
    int changed;

    cd_utf8_repair(s, n, NULL, &changed);
    return !changed;
}
