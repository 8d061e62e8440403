/* sio_codec.c -- Socket.IO v5 packet codec (cd_sio.h).
 *
 * Decoding follows socket.io-parser 4.2 field by field (type, "N-" for binary types,
 * "/nsp," only when a '/' follows, a maximal digit run as ack id, then JSON) but is
 * stricter wherever Node's leniency would only let a hostile client through: digits
 * mean ASCII digits, ack ids stay within 2^53 (what a JS client can express), a NUL
 * byte in a namespace is refused, and JSON must span the rest of the message exactly.
 *
 * Placeholders {"_placeholder":true,"num":k} stay in the tree and the buffers sit in
 * cd_sio_packet_t.attach, so a decoded packet re-encodes byte for byte. Because the rest
 * of the node (and the adapters) index attach[] by k, every placeholder of an EVENT or
 * ACK packet is checked against the number of buffers: 0 <= k < n_attach, k integral.
 * A plain EVENT therefore may not contain placeholder objects at all; Node would pass
 * them through as ordinary objects, we refuse rather than hand out dangling indexes.
 *
 * Encoding prints the tree once with cJSON_PrintUnformatted (compact, key order kept)
 * and copies it once into a frame behind the header.
 */
#include "cd_sio.h"

#include <math.h>
#include <string.h>

#include "base_alloc.h"

#define CD_SIO_ACK_ID_MAX 9007199254740992LL /* 2^53: the largest id a JS peer can count to */
#define CD_SIO_MAX_ATTACHMENTS_DEFAULT 10

/* ---------------------------------------------------------------- tables */

enum {
    CD_SIO_SHAPE_ABSENT = 1 << 0,
    CD_SIO_SHAPE_OBJECT = 1 << 1,
    CD_SIO_SHAPE_ARRAY = 1 << 2,
    CD_SIO_SHAPE_STRING = 1 << 3,
};

/* What each packet type may carry (spec 2.2). event: the array needs a valid name first;
 * args: the payload holds user values, so placeholders in it must be checked. */
static const struct cd__sio_rule {
    unsigned char shapes;
    unsigned char event;
    unsigned char args;
} cd__sio_rules[] = {
    [CD_SIO_CONNECT] = {CD_SIO_SHAPE_ABSENT | CD_SIO_SHAPE_OBJECT, 0, 0},
    [CD_SIO_DISCONNECT] = {CD_SIO_SHAPE_ABSENT, 0, 0},
    [CD_SIO_EVENT] = {CD_SIO_SHAPE_ARRAY, 1, 1},
    [CD_SIO_ACK] = {CD_SIO_SHAPE_ARRAY, 0, 1},
    [CD_SIO_CONNECT_ERROR] = {CD_SIO_SHAPE_OBJECT | CD_SIO_SHAPE_STRING, 0, 0},
    [CD_SIO_BINARY_EVENT] = {CD_SIO_SHAPE_ARRAY, 1, 1},
    [CD_SIO_BINARY_ACK] = {CD_SIO_SHAPE_ARRAY, 0, 1},
};

/* ---------------------------------------------------------------- validation */

/* Checks every placeholder under node: an object whose "_placeholder" is true must have
 * an integral "num" in [0, count). Other objects and arrays are searched; a placeholder
 * is a leaf (as in socket.io-parser's reconstruction). Depth is bounded by cJSON's
 * parse nesting limit for decoded trees. Returns 1 when all are valid. */
static int cd__sio_placeholders_ok(const cJSON *node, size_t count)
{
    const cJSON *c;

    if (cJSON_IsObject(node)) {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(node, "_placeholder");
        if (cJSON_IsTrue(ph)) {
            const cJSON *num = cJSON_GetObjectItemCaseSensitive(node, "num");
            double k;
            if (!cJSON_IsNumber(num))
                return 0;
            k = num->valuedouble;
            return k >= 0 && k < (double)count && k == floor(k);
        }
    } else if (!cJSON_IsArray(node)) {
        return 1;
    }
    for (c = node->child; c != NULL; c = c->next)
        if (!cd__sio_placeholders_ok(c, count))
            return 0;
    return 1;
}

/* Applies the per-type payload rule of spec 2.2 and the reserved-name rule of 2.6.
 * Placeholders are checked separately, once the buffer count is final. */
static int cd__sio_payload_ok(cd_sio_ptype_t t, const cJSON *data)
{
    const struct cd__sio_rule *r = &cd__sio_rules[t];
    unsigned shape = data == NULL           ? CD_SIO_SHAPE_ABSENT
                     : cJSON_IsObject(data) ? CD_SIO_SHAPE_OBJECT
                     : cJSON_IsArray(data)  ? CD_SIO_SHAPE_ARRAY
                     : cJSON_IsString(data) ? CD_SIO_SHAPE_STRING
                                            : 0;

    if (!(r->shapes & shape))
        return 0;
    if (r->event)
        return cd_sio_event_name_ok(data->child);
    return 1;
}

/* ---------------------------------------------------------------- decoder */

/* Prepares a decoder (caller-allocated, one per connection): nothing pending, not failed,
 * the default limit of 10 attachments, which the caller may change before feeding. */
void cd_sio_decoder_init(cd_sio_decoder_t *d)
{
    d->pending = NULL;
    d->max_attachments = CD_SIO_MAX_ATTACHMENTS_DEFAULT;
    d->failed = 0;
}

/* Drops any half-received packet and clears the failure; max_attachments is kept. */
void cd_sio_decoder_reset(cd_sio_decoder_t *d)
{
    cd_sio_packet_free(d->pending);
    d->pending = NULL;
    d->failed = 0;
}

/* Puts d in its sticky failed state (freeing the partial packet) and returns the error. */
static int cd__sio_decoder_fail(cd_sio_decoder_t *d)
{
    cd_sio_packet_free(d->pending);
    d->pending = NULL;
    d->failed = 1;
    return SIO_EPARSE;
}

static int cd__sio_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int cd__sio_is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parses one Socket.IO text packet (see cd_sio.h). On success ownership of the
 * packet goes to *out, or to d->pending for a binary packet still missing buffers.
 * On SIO_EPARSE nothing is left allocated and d stays failed until reset. */
int cd_sio_decode_text(cd_sio_decoder_t *d, const char *s, size_t len, cd_sio_packet_t **out)
{
    size_t i = 0, count = 0;
    int64_t id = -1;
    const char *nsp = NULL;
    size_t nsp_len = 0;
    cJSON *data = NULL;
    cd_sio_ptype_t type;
    cd_sio_packet_t *p;

    *out = NULL;
    if (d->failed || d->pending != NULL)
        return cd__sio_decoder_fail(d);
    if (len == 0 || s[0] < '0' || s[0] > '6')
        return cd__sio_decoder_fail(d);
    type = (cd_sio_ptype_t)(s[i++] - '0');

    if (type == CD_SIO_BINARY_EVENT || type == CD_SIO_BINARY_ACK) {
        size_t start = i;
        for (; i < len && cd__sio_is_digit(s[i]); i++) {
            if (count > (SIZE_MAX - 9) / 10)
                return cd__sio_decoder_fail(d);
            count = count * 10 + (size_t)(s[i] - '0');
            if (count > d->max_attachments)
                return cd__sio_decoder_fail(d);
        }
        if (i == start || i == len || s[i] != '-' || count == 0)
            return cd__sio_decoder_fail(d);
        i++;
    }

    if (i < len && s[i] == '/') {
        const char *comma = memchr(s + i, ',', len - i);
        size_t end = comma != NULL ? (size_t)(comma - s) : len;
        nsp = s + i;
        nsp_len = end - i;
        if (memchr(nsp, '\0', nsp_len) != NULL)
            return cd__sio_decoder_fail(d);
        i = comma != NULL ? end + 1 : len;
    }

    if (i < len && cd__sio_is_digit(s[i])) {
        id = 0;
        for (; i < len && cd__sio_is_digit(s[i]); i++) {
            id = id * 10 + (s[i] - '0');
            if (id > CD_SIO_ACK_ID_MAX)
                return cd__sio_decoder_fail(d);
        }
    }

    if (i < len) {
        const char *end = NULL;
        data = cJSON_ParseWithLengthOpts(s + i, len - i, &end, 0);
        if (data == NULL)
            return cd__sio_decoder_fail(d);
        while (end < s + len && cd__sio_is_json_ws(*end))
            end++;
        if (end != s + len)
            goto bad_data;
    }
    if (!cd__sio_payload_ok(type, data))
        goto bad_data;
    if (count == 0 && cd__sio_rules[type].args && !cd__sio_placeholders_ok(data, 0))
        goto bad_data;

    p = base_calloc(1, sizeof(*p));
    p->type = type;
    p->nsp = nsp != NULL ? base_strndup(nsp, nsp_len) : base_strdup("/");
    p->id = id;
    p->data = data;
    if (count > 0) {
        p->n_attach = count;
        p->attach = base_calloc(count, sizeof(*p->attach));
        d->pending = p;
    } else {
        *out = p;
    }
    return SIO_OK;

bad_data:
    cJSON_Delete(data);
    return cd__sio_decoder_fail(d);
}

/* Stores one buffer of the pending binary packet (copied; b stays the caller's).
 * Hands the packet out once the last announced buffer arrived and its placeholders
 * all index a buffer. SIO_EPARSE, with d failed, when nothing was pending. */
int cd_sio_decode_binary(cd_sio_decoder_t *d, const unsigned char *b, size_t len,
                         cd_sio_packet_t **out)
{
    cd_sio_packet_t *p = d->pending;

    *out = NULL;
    if (d->failed || p == NULL)
        return cd__sio_decoder_fail(d);
    cd_sio_bin_copy(&p->attach[p->n_have++], b, len);
    if (p->n_have < p->n_attach)
        return SIO_OK;
    if (!cd__sio_placeholders_ok(p->data, p->n_attach))
        return cd__sio_decoder_fail(d);
    d->pending = NULL;
    *out = p;
    return SIO_OK;
}

/* ---------------------------------------------------------------- encoder */

static size_t cd__sio_digits(uint64_t v)
{
    size_t n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* Writes v in decimal at o; returns the number of digits. */
static size_t cd__sio_put_u64(char *o, uint64_t v)
{
    size_t n = cd__sio_digits(v);

    for (size_t i = n; i-- > 0; v /= 10)
        o[i] = (char)('0' + v % 10);
    return n;
}

/* Encodes p (see cd_sio.h). The type written follows the buffers actually carried:
 * EVENT/ACK with buffers become 5/6, and BINARY_EVENT/BINARY_ACK without any become
 * 2/3 (a "0-" count would be refused by every decoder, ours included). Buffers of other
 * types are not sent. p->nsp must be "/" or start with '/'. Returns the number of frames
 * stored in frames, or 0 when cJSON cannot print the tree (out of memory, or an item of
 * invalid type); nothing is allocated then. */
size_t cd_sio_encode(const cd_sio_packet_t *p, base_frame_t **frames)
{
    static const char type_digit[] = {
        [CD_SIO_CONNECT] = '0',    [CD_SIO_DISCONNECT] = '1',    [CD_SIO_EVENT] = '2',
        [CD_SIO_ACK] = '3',        [CD_SIO_CONNECT_ERROR] = '4', [CD_SIO_BINARY_EVENT] = '2',
        [CD_SIO_BINARY_ACK] = '3',
    };
    int args = cd__sio_rules[p->type].args;
    size_t n_bin = args ? p->n_attach : 0;
    int has_nsp = strcmp(p->nsp, "/") != 0;
    size_t nsp_len = has_nsp ? strlen(p->nsp) : 0;
    char *json = NULL;
    size_t json_len = 0, hlen;
    base_frame_t *f;
    char *o;

    if (p->data != NULL) {
        json = cJSON_PrintUnformatted(p->data);
        if (json == NULL)
            return 0;
        json_len = strlen(json);
    }
    hlen = 2 + (n_bin ? cd__sio_digits(n_bin) + 1 : 0) + (has_nsp ? nsp_len + 1 : 0) +
           (p->id >= 0 ? cd__sio_digits((uint64_t)p->id) : 0);

    f = base_frame_new(hlen + json_len, 0);
    o = (char *)base_frame_data(f);
    *o++ = '4';
    if (n_bin) {
        *o++ = type_digit[p->type] == '2' ? '5' : '6';
        o += cd__sio_put_u64(o, n_bin);
        *o++ = '-';
    } else {
        *o++ = type_digit[p->type];
    }
    if (has_nsp) {
        memcpy(o, p->nsp, nsp_len);
        o += nsp_len;
        *o++ = ',';
    }
    if (p->id >= 0)
        o += cd__sio_put_u64(o, (uint64_t)p->id);
    if (json != NULL) {
        memcpy(o, json, json_len);
        cJSON_free(json);
    }
    frames[0] = f;

    for (size_t k = 0; k < n_bin; k++)
        frames[1 + k] = base_frame_from(p->attach[k].data, p->attach[k].len, 1);
    return 1 + n_bin;
}
