/* deflate.c -- permessage-deflate compression and inflation (cd_deflate.h).
 *
 * zlib's raw deflate (negative window bits: no zlib header, as RFC 7692 wants) with the
 * largest window, so any window size a client compresses with can be inflated.
 */
#include "cd_deflate.h"

#include <string.h>

#include <zlib.h>

#include "base_alloc.h"

void cd_msgbuf_grow(cd_msgbuf_t *b, size_t need, size_t limit)
{
    size_t cap = b->cap ? b->cap : 4096;

    while (cap < need)
        cap *= 2;
    if (cap > limit + 1)
        cap = limit + 1;
    b->p = base_realloc(b->p, cap);
    b->cap = cap;
}

unsigned char *cd_deflate_msg(cd_deflate_t *d, const unsigned char *in, size_t len, size_t headroom,
                              size_t *outlen)
{
    z_stream *z = d->z;
    unsigned char *buf;
    size_t cap;
    int rc;

    if (z == NULL) {
        z = base_calloc(1, sizeof(*z));
        if (deflateInit2(z, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            base_free(z);
            return NULL;
        }
        d->z = z;
    }
    cap = deflateBound(z, (uLong)len) + 16; /* + the sync flush marker */
    buf = base_malloc(headroom + cap);
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)len;
    z->next_out = buf + headroom;
    z->avail_out = (uInt)cap;
    rc = deflate(z, Z_SYNC_FLUSH);
    *outlen = cap - z->avail_out;
    deflateReset(z);
    /* the stream must have ended on the 00 00 ff ff marker, which RFC 7692 drops */
    if (rc != Z_OK || z->avail_in != 0 || *outlen < 4 || *outlen - 4 >= len ||
        memcmp(buf + headroom + *outlen - 4, "\0\0\xff\xff", 4) != 0) {
        base_free(buf);
        return NULL;
    }
    *outlen -= 4;
    return buf;
}

void cd_deflate_end(cd_deflate_t *d)
{
    if (d->z != NULL) {
        deflateEnd(d->z);
        base_free(d->z);
        d->z = NULL;
    }
}

int cd_inflate_msg(cd_inflate_t *st, const unsigned char *in, size_t len, int final,
                   cd_msgbuf_t *out, size_t limit)
{
    static const unsigned char trailer[4] = {0, 0, 0xff, 0xff};
    z_stream *z = st->z;

    if (z == NULL) {
        z = base_calloc(1, sizeof(*z));
        if (inflateInit2(z, -15) != Z_OK) {
            base_free(z);
            return CD_INFLATE_CORRUPT;
        }
        st->z = z;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) {
            z->next_in = (Bytef *)in;
            z->avail_in = (uInt)len;
        } else if (final) {
            z->next_in = (Bytef *)trailer;
            z->avail_in = sizeof(trailer);
        } else {
            break;
        }
        for (;;) {
            int rc;

            if (out->len == out->cap) {
                if (out->cap > limit)
                    return CD_INFLATE_TOO_BIG;
                cd_msgbuf_grow(out, out->len + 1, limit);
            }
            z->next_out = out->p + out->len;
            z->avail_out = (uInt)(out->cap - out->len);
            rc = inflate(z, pass ? Z_SYNC_FLUSH : Z_NO_FLUSH);
            out->len = (size_t)(z->next_out - out->p);
            if (out->len > limit)
                return CD_INFLATE_TOO_BIG;
            if (rc == Z_STREAM_END) /* a sender that ends with BFINAL starts afresh */
                inflateReset(z);
            else if (rc == Z_BUF_ERROR && z->avail_out > 0)
                break; /* wants more input */
            else if (rc != Z_OK && rc != Z_BUF_ERROR)
                return CD_INFLATE_CORRUPT;
            if (z->avail_in == 0 && z->avail_out > 0)
                break;
        }
    }
    return CD_INFLATE_OK;
}

void cd_inflate_end(cd_inflate_t *st)
{
    if (st->z != NULL) {
        inflateEnd(st->z);
        base_free(st->z);
        st->z = NULL;
    }
}
