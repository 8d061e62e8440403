/* fuzz_sio_codec.c -- libFuzzer target for node/codec/sio_codec.c.
 *
 * Input layout: byte 0 is a selector, the rest is a sequence of messages separated by
 * 0x1E. Message i is fed as binary when bit (i % 7) of the selector is set, as text
 * otherwise; bit 7 lowers max_attachments to 2. This drives the whole state machine:
 * headers, buffers, text while buffers are awaited, stray buffers, sticky failure.
 *
 * Properties, besides "no crash, no leak, no UB":
 *  - every call returns SIO_OK or SIO_EPARSE; after an error the decoder has nothing
 *    pending and the next call fails too (sticky) until cd_sio_decoder_reset;
 *  - a complete packet is well formed (nsp starts with '/', buffer counts consistent);
 *  - encode(packet) decodes again with a fresh decoder, and that packet (and a
 *    cd_sio_packet_dup of the first) encodes to the very same frames.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base_alloc.h"
#include "base_frame.h"
#include "cd_sio.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static size_t encode_all(const cd_sio_packet_t *p, base_frame_t ***frames)
{
    size_t n;

    *frames = base_malloc((1 + p->n_attach) * sizeof(**frames));
    n = cd_sio_encode(p, *frames);
    CHECK(n == 1 + p->n_attach);
    return n;
}

static void free_frames(base_frame_t **f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        base_frame_unref(f[i]);
    base_free(f);
}

static void same_frames(base_frame_t **a, size_t na, base_frame_t **b, size_t nb)
{
    CHECK(na == nb);
    for (size_t i = 0; i < na; i++) {
        CHECK(a[i]->binary == b[i]->binary && a[i]->len == b[i]->len);
        CHECK(memcmp(base_frame_data(a[i]), base_frame_data(b[i]), a[i]->len) == 0);
        CHECK(a[i]->refcnt == 1);
    }
}

static void check_packet(const cd_sio_packet_t *p, size_t max_attach)
{
    int binary = p->type == CD_SIO_BINARY_EVENT || p->type == CD_SIO_BINARY_ACK;
    base_frame_t **f1, **f2, **f3;
    size_t n1, n2, n3;
    cd_sio_decoder_t d;
    cd_sio_packet_t *q = NULL, *dup;

    CHECK(p->type >= CD_SIO_CONNECT && p->type <= CD_SIO_BINARY_ACK);
    CHECK(p->nsp != NULL && p->nsp[0] == '/');
    CHECK(p->id >= -1 && p->id <= 9007199254740992LL);
    CHECK(binary ? p->n_attach >= 1 && p->n_attach <= max_attach : p->n_attach == 0);
    CHECK(p->n_have == p->n_attach);
    for (size_t i = 0; i < p->n_attach; i++)
        CHECK(p->attach[i].data != NULL);

    n1 = encode_all(p, &f1);
    CHECK(f1[0]->binary == 0 && f1[0]->len >= 2 && base_frame_data(f1[0])[0] == '4');

    cd_sio_decoder_init(&d);
    d.max_attachments = max_attach;
    {
        /* exact-size copy so that ASan catches reads past the text */
        size_t tl = f1[0]->len - 1;
        char *t = base_malloc(tl);
        memcpy(t, base_frame_data(f1[0]) + 1, tl);
        CHECK(cd_sio_decode_text(&d, t, tl, &q) == SIO_OK);
        base_free(t);
    }
    for (size_t i = 1; i < n1; i++) {
        CHECK(q == NULL);
        CHECK(f1[i]->binary == 1);
        CHECK(cd_sio_decode_binary(&d, base_frame_data(f1[i]), f1[i]->len, &q) == SIO_OK);
    }
    CHECK(q != NULL && d.pending == NULL);

    n2 = encode_all(q, &f2);
    same_frames(f1, n1, f2, n2);
    dup = cd_sio_packet_dup(p);
    CHECK(dup != NULL);
    n3 = encode_all(dup, &f3);
    same_frames(f1, n1, f3, n3);

    free_frames(f1, n1);
    free_frames(f2, n2);
    free_frames(f3, n3);
    cd_sio_packet_free(q);
    cd_sio_packet_free(dup);
    cd_sio_decoder_reset(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p, *end = data + size;
    cd_sio_decoder_t d;
    uint8_t sel;
    size_t idx = 0;

    if (size == 0)
        return 0;
    sel = data[0];
    cd_sio_decoder_init(&d);
    if (sel & 0x80)
        d.max_attachments = 2;

    for (p = data + 1;; idx++) {
        const uint8_t *rs = memchr(p, 0x1E, (size_t)(end - p));
        size_t len = (size_t)((rs != NULL ? rs : end) - p);
        int was_failed = d.failed, rc;
        cd_sio_packet_t *pkt = (cd_sio_packet_t *)&d; /* must be overwritten */
        unsigned char *msg = base_malloc(len);

        if (len)
            memcpy(msg, p, len);
        if ((sel >> (idx % 7)) & 1)
            rc = cd_sio_decode_binary(&d, msg, len, &pkt);
        else
            rc = cd_sio_decode_text(&d, (const char *)msg, len, &pkt);
        base_free(msg);

        CHECK(rc == SIO_OK || rc == SIO_EPARSE);
        if (rc == SIO_OK) {
            CHECK(!was_failed && !d.failed);
            CHECK(pkt == NULL ? d.pending != NULL : d.pending == NULL);
            if (pkt != NULL) {
                check_packet(pkt, d.max_attachments);
                cd_sio_packet_free(pkt);
            }
        } else {
            CHECK(pkt == NULL && d.pending == NULL && d.failed);
            if (was_failed)
                cd_sio_decoder_reset(&d); /* sticky was observed; go on exploring */
        }
        if (rs == NULL)
            break;
        p = rs + 1;
    }
    cd_sio_decoder_reset(&d);
    return 0;
}
