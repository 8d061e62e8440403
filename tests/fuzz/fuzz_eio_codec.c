/* fuzz_eio_codec.c -- libFuzzer target for node/codec/eio_codec.c and node/base/base64.c.
 *
 * Properties checked on every input, besides "no crash, no leak, no UB":
 *  - a polling body that decodes is reproduced byte for byte by cd_eio_payload_write()
 *    from the packets it yielded (text records as is, binary as "b" + canonical base64);
 *  - a WebSocket text frame decodes iff it starts with '0'..'6';
 *  - base64: decode(encode(x)) == x, and a successful decode re-encodes to the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base_alloc.h"
#include "base_base64.h"
#include "base_frame.h"
#include "cd_eio.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

/* Frames rebuilt from the packets the walk delivered. */
typedef struct rebuilt {
    base_frame_t **f;
    size_t n, cap;
} rebuilt_t;

static int on_packet(void *ud, const cd_eio_packet_t *p)
{
    rebuilt_t *r = ud;
    base_frame_t *f;

    CHECK(p->data != NULL);
    if (p->binary) {
        CHECK(p->type == CD_EIO_MESSAGE);
        f = base_frame_from(p->data, p->len, 1);
    } else {
        CHECK(p->type >= CD_EIO_OPEN && p->type <= CD_EIO_NOOP);
        f = base_frame_new(p->len + 1, 0);
        base_frame_data(f)[0] = (unsigned char)('0' + p->type);
        if (p->len)
            memcpy(base_frame_data(f) + 1, p->data, p->len);
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 8;
        r->f = base_realloc(r->f, r->cap * sizeof(*r->f));
    }
    r->f[r->n++] = f;
    return 0;
}

static void fuzz_payload(const char *s, size_t len)
{
    rebuilt_t r = {NULL, 0, 0};
    int rc = cd_eio_decode_payload(s, len, on_packet, &r);

    CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        size_t want = cd_eio_payload_len(r.f, r.n);
        char *out = base_malloc(want);
        CHECK(r.n >= 1);
        CHECK(want == len);
        CHECK(cd_eio_payload_write(r.f, r.n, out) == len);
        CHECK(memcmp(out, s, len) == 0);
        base_free(out);
    } else {
        CHECK(len == 0 || r.n < (size_t)len);
    }
    for (size_t i = 0; i < r.n; i++)
        base_frame_unref(r.f[i]);
    base_free(r.f);
}

static void fuzz_text(const char *s, size_t len)
{
    cd_eio_packet_t p;
    int ok = len > 0 && s[0] >= '0' && s[0] <= '6';

    CHECK((cd_eio_decode_text(s, len, &p) == 0) == ok);
    if (ok) {
        CHECK(p.type == (cd_eio_ptype_t)(s[0] - '0'));
        CHECK(p.binary == 0);
        CHECK(p.data == s + 1 && p.len == len - 1);
    }
}

static void fuzz_base64(const unsigned char *data, size_t len)
{
    char *enc = base_malloc(base_b64_enclen(len));
    unsigned char *dec = base_malloc(len + 1); /* >= len (round trip) and >= len / 4 * 3 */
    size_t el = base_b64_encode(data, len, enc), dl = 0;

    CHECK(el == base_b64_enclen(len));
    CHECK(base_b64_decode(enc, el, dec, &dl) == 0);
    CHECK(dl == len && (len == 0 || memcmp(dec, data, len) == 0));

    /* the input read as base64 text */
    if (base_b64_decode((const char *)data, len, dec, &dl) == 0) {
        CHECK(len % 4 == 0 && dl <= len / 4 * 3);
        CHECK(base_b64_enclen(dl) == len);
        CHECK(base_b64_encode(dec, dl, enc) == len);
        CHECK(memcmp(enc, data, len) == 0);
    }
    base_free(enc);
    base_free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* libFuzzer hands over an exactly sized copy, so ASan sees any read past the end */
    fuzz_payload((const char *)data, size);
    fuzz_text((const char *)data, size);
    fuzz_base64(data, size);
    return 0;
}
