/* eio_codec.c -- Engine.IO v4 packet and polling-payload codec.
 *
 * Text packets are never copied: the packet handed to the callback points into the
 * caller's buffer. Only "b" + base64 records need bytes of their own; one scratch
 * buffer, grown to the largest record of the body, serves the whole walk and is freed
 * before returning, so a payload costs at most one allocation however many binary
 * records it carries.
 */
#include "cd_eio.h"

#include <string.h>

#include "base_alloc.h"
#include "base_base64.h"

/* Parses one WebSocket text frame: a type digit '0'..'6' and its data (pointing into s).
 * Returns 0, or -1 when s is empty or starts with anything else. "b" + base64 is not
 * accepted here: it would need a buffer, and no v4 client sends it over WebSocket. */
int cd_eio_decode_text(const char *s, size_t len, cd_eio_packet_t *out)
{
    if (len == 0 || s[0] < '0' || s[0] > '6')
        return -1;
    out->type = (cd_eio_ptype_t)(s[0] - '0');
    out->binary = 0;
    out->data = s + 1;
    out->len = len - 1;
    return 0;
}

/* Walks a polling body record by record (see cd_eio.h). The record is rejected
 * before cb sees it, so cb never observes a packet from a bad record. */
int cd_eio_decode_payload(const char *body, size_t len, cd_eio_packet_cb cb, void *ud)
{
    unsigned char *scratch = NULL;
    size_t scratch_cap = 0;
    const char *p = body, *end = body + len;
    int rc = 0;

    if (len == 0)
        return -1;
    for (;;) {
        const char *rs = memchr(p, CD_EIO_RS, (size_t)(end - p));
        const char *rec_end = rs != NULL ? rs : end;
        size_t rlen = (size_t)(rec_end - p);
        cd_eio_packet_t pkt;

        if (rlen == 0) {
            rc = -1;
            break;
        }
        if (p[0] == 'b') {
            size_t need = (rlen - 1) / 4 * 3;
            if (need > scratch_cap) {
                base_free(scratch);
                scratch = base_malloc(need);
                scratch_cap = need;
            }
            if (base_b64_decode(p + 1, rlen - 1, scratch, &pkt.len) != 0) {
                rc = -1;
                break;
            }
            pkt.type = CD_EIO_MESSAGE;
            pkt.binary = 1;
            /* an empty "b" record is a zero-length message; never hand out NULL */
            pkt.data = scratch != NULL ? (const char *)scratch : "";
        } else if (cd_eio_decode_text(p, rlen, &pkt) != 0) {
            rc = -1;
            break;
        }
        rc = cb(ud, &pkt);
        if (rc != 0 || rs == NULL)
            break;
        p = rs + 1;
    }
    base_free(scratch);
    return rc;
}

/* Bytes of the polling form of frames: text as is, binary as "b" + base64, with one
 * separator between consecutive frames. 0 for n == 0. */
size_t cd_eio_payload_len(base_frame_t *const *frames, size_t n)
{
    size_t total = n > 0 ? n - 1 : 0;

    for (size_t i = 0; i < n; i++)
        total += frames[i]->binary ? 1 + base_b64_enclen(frames[i]->len) : frames[i]->len;
    return total;
}

/* Writes the polling form of frames into out (cd_eio_payload_len() bytes, no NUL).
 * Returns the bytes written. The frames are only read; their references stay with
 * the caller. */
size_t cd_eio_payload_write(base_frame_t *const *frames, size_t n, char *out)
{
    char *o = out;

    for (size_t i = 0; i < n; i++) {
        base_frame_t *f = frames[i];

        if (i > 0)
            *o++ = CD_EIO_RS;
        if (f->binary) {
            *o++ = 'b';
            o += base_b64_encode(base_frame_data(f), f->len, o);
        } else {
            if (f->len)
                memcpy(o, base_frame_data(f), f->len);
            o += f->len;
        }
    }
    return (size_t)(o - out);
}
