/* fuzz_deflate.c -- node/codec/deflate.c, permessage-deflate, against arbitrary bytes.
 *
 * Byte 0 chooses the limit and how the rest is cut into chunks. Two properties besides
 * "no crash, no leak, no UB":
 *   - inflating hostile input never holds more than limit + 1 bytes, and a result under
 *     the limit is reported as such (a deflate bomb costs at most the limit);
 *   - whatever is compressed inflates back to itself, over any chunking.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base_alloc.h"
#include "cd_deflate.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

/* Inflates in[0..n) cut into chunks of step bytes (the last one final). */
static int inflate_all(cd_inflate_t *st, const unsigned char *in, size_t n, size_t step,
                       cd_msgbuf_t *out, size_t limit)
{
    int rc = CD_INFLATE_OK;
    size_t off = 0;

    do {
        size_t m = n - off < step ? n - off : step;
        rc = cd_inflate_msg(st, in + off, m, off + m == n, out, limit);
        off += m;
    } while (rc == CD_INFLATE_OK && off < n);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t limit = (size_t)64 << (data[0] & 7); /* 64 B .. 8 KiB */
    size_t step = 1 + (data[0] >> 3);           /* 1 .. 32 bytes per chunk */
    const unsigned char *in = data + 1;
    size_t n = size - 1;

    /* hostile input */
    cd_inflate_t st = {0};
    cd_msgbuf_t out = {0};
    int rc = inflate_all(&st, in, n, step, &out, limit);
    check(out.len <= limit + 1);
    check(rc != CD_INFLATE_OK || out.len <= limit);
    check(rc != CD_INFLATE_TOO_BIG || out.len > limit);
    cd_inflate_end(&st);
    base_free(out.p);

    /* our own output inflates back */
    cd_deflate_t d = {0};
    size_t zlen = 0;
    unsigned char *z = cd_deflate_msg(&d, in, n, 16, &zlen);
    if (z != NULL) {
        cd_inflate_t st2 = {0};
        cd_msgbuf_t back = {0};
        check(zlen < n);
        check(inflate_all(&st2, z + 16, zlen, step, &back, n + 1) == CD_INFLATE_OK);
        check(back.len == n && (n == 0 || memcmp(back.p, in, n) == 0));
        cd_inflate_end(&st2);
        base_free(back.p);
        base_free(z);
    }
    cd_deflate_end(&d);
    return 0;
}
