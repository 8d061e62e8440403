/* rds_wire.c -- Redis wire formats of @socket.io/redis-adapter 8.x (see rds_wire.h).
 *
 * Decoding runs in two steps. First the whole payload becomes one cJSON tree (msgpack by
 * our reader, JSON by cJSON) with every bin value replaced by a placeholder and its bytes
 * appended to one list, in depth-first order. Then the fields are picked out of the tree;
 * the subtree we keep for delivery (packet.data, an ack argument) takes its own buffers out
 * of the list and its placeholders are renumbered from 0. Depth-first numbering makes this a
 * contiguous slice, so a bin that sat in an ignored field never aliases a kept one.
 *
 * Encoding walks a cJSON tree into msgpack-c's packer; JSON messages are small cJSON
 * objects printed once. Key order follows the Node adapter so captures compare byte for
 * byte.
 */
#include "rds_wire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "base_alloc.h"

#define RDS_JS_MAX_SAFE 9007199254740992.0 /* 2^53: integers a JS peer counts exactly */
#define RDS_JS_MAX_TIME 8.64e15            /* largest |ms| a JS Date holds */

/* ---------------------------------------------------------------- buffers */

/* Output of the packer: grows through base_realloc so the memory policy stays in alloc.c. */
typedef struct rds__out {
    unsigned char *data;
    size_t len;
    size_t cap;
} rds__out_t;

static int rds__out_write(void *ud, const char *buf, size_t len)
{
    rds__out_t *o = ud;

    if (len > o->cap - o->len) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap - o->len < len) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        o->data = base_realloc(o->data, cap);
        o->cap = cap;
    }
    memcpy(o->data + o->len, buf, len);
    o->len += len;
    return 0;
}

/* The buffers met while decoding one message, in depth-first order. Entries moved out
 * to a kept subtree are left {NULL, 0}. */
typedef struct rds__bins {
    sio_bin_t *v;
    size_t n;
    size_t cap;
} rds__bins_t;

static size_t rds__bins_add(rds__bins_t *b, const unsigned char *p, size_t len)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 4;
        b->v = base_realloc(b->v, b->cap * sizeof(*b->v));
    }
    /* a present buffer never has NULL data, even when empty (as sio_parser) */
    b->v[b->n].data = base_malloc(len);
    b->v[b->n].len = len;
    if (len)
        memcpy(b->v[b->n].data, p, len);
    return b->n++;
}

static void rds__bins_free(rds__bins_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        base_free(b->v[i].data);
    base_free(b->v);
    memset(b, 0, sizeof(*b));
}

static void rds__free_bin_array(sio_bin_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        base_free(v[i].data);
    base_free(v);
}

static void rds__free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        base_free(v[i]);
    base_free(v);
}

/* ---------------------------------------------------------------- UTF-8 */

/* Length of s[0..n) once every maximal ill-formed subsequence is replaced by U+FFFD, the
 * WHATWG decoder's rule that Node's Buffer.toString (hence notepack and JSON.parse on a
 * Buffer) follows; writes the result to dst when dst is not NULL. *changed tells whether
 * anything was replaced. */
static size_t rds__utf8_fix(const unsigned char *s, size_t n, unsigned char *dst, int *changed)
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

/* NUL-terminated copy of s[0..n) in cJSON's allocator (so cJSON_Delete can own it), with
 * invalid UTF-8 replaced. NULL with *err set when s holds NUL (cJSON strings cannot) or
 * cJSON cannot allocate. */
static char *rds__str_copy(const unsigned char *s, size_t n, int *err)
{
    int changed;
    size_t m;
    char *d;

    if (memchr(s, '\0', n) != NULL) {
        *err = SIO_EPARSE;
        return NULL;
    }
    m = rds__utf8_fix(s, n, NULL, &changed);
    d = cJSON_malloc(m + 1);
    if (d == NULL) {
        *err = SIO_ENOMEM;
        return NULL;
    }
    if (changed)
        rds__utf8_fix(s, n, (unsigned char *)d, &changed);
    else
        memcpy(d, s, n);
    d[m] = '\0';
    return d;
}

/* ---------------------------------------------------------------- msgpack reader */

typedef struct rds__rd {
    const unsigned char *p;
    size_t len;
    size_t pos;
    rds__bins_t *bins;
} rds__rd_t;

enum {
    RDS_MP_BAD,
    RDS_MP_NIL,
    RDS_MP_FALSE,
    RDS_MP_TRUE,
    RDS_MP_BIN,
    RDS_MP_EXT,
    RDS_MP_FLOAT,
    RDS_MP_UINT,
    RDS_MP_INT,
    RDS_MP_FIXEXT,
    RDS_MP_STR,
    RDS_MP_ARRAY,
    RDS_MP_MAP,
};

/* Formats 0xc0..0xdf: kind and the width of the big-endian field after the prefix (the
 * length, the value, or for fixext the payload size). */
static const struct rds__fmt {
    unsigned char kind;
    unsigned char size;
} rds__fmt[32] = {
    [0x00] = {RDS_MP_NIL, 0},     [0x01] = {RDS_MP_BAD, 0},    [0x02] = {RDS_MP_FALSE, 0},
    [0x03] = {RDS_MP_TRUE, 0},    [0x04] = {RDS_MP_BIN, 1},    [0x05] = {RDS_MP_BIN, 2},
    [0x06] = {RDS_MP_BIN, 4},     [0x07] = {RDS_MP_EXT, 1},    [0x08] = {RDS_MP_EXT, 2},
    [0x09] = {RDS_MP_EXT, 4},     [0x0a] = {RDS_MP_FLOAT, 4},  [0x0b] = {RDS_MP_FLOAT, 8},
    [0x0c] = {RDS_MP_UINT, 1},    [0x0d] = {RDS_MP_UINT, 2},   [0x0e] = {RDS_MP_UINT, 4},
    [0x0f] = {RDS_MP_UINT, 8},    [0x10] = {RDS_MP_INT, 1},    [0x11] = {RDS_MP_INT, 2},
    [0x12] = {RDS_MP_INT, 4},     [0x13] = {RDS_MP_INT, 8},    [0x14] = {RDS_MP_FIXEXT, 1},
    [0x15] = {RDS_MP_FIXEXT, 2},  [0x16] = {RDS_MP_FIXEXT, 4}, [0x17] = {RDS_MP_FIXEXT, 8},
    [0x18] = {RDS_MP_FIXEXT, 16}, [0x19] = {RDS_MP_STR, 1},    [0x1a] = {RDS_MP_STR, 2},
    [0x1b] = {RDS_MP_STR, 4},     [0x1c] = {RDS_MP_ARRAY, 2},  [0x1d] = {RDS_MP_ARRAY, 4},
    [0x1e] = {RDS_MP_MAP, 2},     [0x1f] = {RDS_MP_MAP, 4},
};

static size_t rds__left(const rds__rd_t *r)
{
    return r->len - r->pos;
}

/* Points *out at the next n bytes and consumes them; 0 when fewer are left. */
static int rds__take(rds__rd_t *r, size_t n, const unsigned char **out)
{
    if (rds__left(r) < n)
        return 0;
    *out = r->p + r->pos;
    r->pos += n;
    return 1;
}

static uint64_t rds__be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int64_t rds__be_signed(const unsigned char *p, size_t n)
{
    uint64_t v = rds__be(p, n);

    switch (n) {
    case 1:
        return (int8_t)v;
    case 2:
        return (int16_t)v;
    case 4:
        return (int32_t)v;
    default:
        return (int64_t)v;
    }
}

static cJSON *rds__placeholder(size_t num)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || cJSON_AddTrueToObject(o, "_placeholder") == NULL ||
        cJSON_AddNumberToObject(o, "num", (double)num) == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Days since 1970-01-01 -> proleptic Gregorian date (the era/day-of-era method). */
static void rds__civil(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era, yy;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    yy = (int64_t)yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

/* A notepack Date as its clients see it: JSON.stringify(new Date(ms)), i.e. the ISO
 * string (extended year outside 0..9999) or null for an invalid date. */
static cJSON *rds__date(double ms)
{
    char buf[96];
    int64_t t, days, rem, y;
    unsigned mo, d;

    if (!isfinite(ms) || fabs(ms) > RDS_JS_MAX_TIME)
        return cJSON_CreateNull();
    t = (int64_t)trunc(ms);
    days = t / 86400000;
    rem = t % 86400000;
    if (rem < 0) {
        rem += 86400000;
        days--;
    }
    rds__civil(days, &y, &mo, &d);
    if (y >= 0 && y <= 9999)
        snprintf(buf, sizeof(buf), "%04d", (int)y);
    else
        snprintf(buf, sizeof(buf), "%c%06d", y < 0 ? '-' : '+', (int)(y < 0 ? -y : y));
    snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "-%02u-%02uT%02d:%02d:%02d.%03dZ", mo, d,
             (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
             (int)(rem % 1000));
    return cJSON_CreateString(buf);
}

/* notepack's decoding of an ext value of type t with payload pl[0..n) announced by
 * prefix (d4..d8 fixext, c7..c9 ext 8/16/32). *out NULL with SIO_OK means JS undefined. */
static int rds__ext(rds__rd_t *r, int depth, unsigned char prefix, int t, const unsigned char *pl,
                    size_t n, cJSON **out)
{
    int fixed = prefix >= 0xd4;
    cJSON *pair, *num, *ph;

    *out = NULL;
    if (t == 0 && fixed && n == 1)
        return SIO_OK;               /* d4 00 xx: undefined */
    if (t == 0 && fixed && n == 8) { /* legacy Date: int64 ms */
        *out = rds__date((double)rds__be_signed(pl, 4) * 4294967296.0 + (double)rds__be(pl + 4, 4));
    } else if (t == 0 && !fixed) { /* legacy ArrayBuffer: plain binary */
        *out = rds__placeholder(rds__bins_add(r->bins, pl, n));
    } else if (t == -1 && fixed && n == 4) { /* timestamp 32 */
        *out = rds__date((double)rds__be(pl, 4) * 1e3);
    } else if (t == -1 && fixed && n == 8) { /* timestamp 64: 30-bit ns, 34-bit s */
        uint64_t hi = rds__be(pl, 4), lo = rds__be(pl + 4, 4);
        double s = (double)(hi & 3) * 4294967296.0 + (double)lo;
        *out = rds__date(s * 1e3 + (double)(hi >> 2) / 1e6);
    } else if (t == -1 && prefix == 0xc7) { /* timestamp 96 */
        double s;
        if (n != 12)
            return SIO_EPARSE; /* notepack would read 12 bytes regardless and lose sync */
        s = (double)rds__be_signed(pl + 4, 4) * 4294967296.0 + (double)rds__be(pl + 8, 4);
        *out = rds__date(s * 1e3 + (double)rds__be(pl, 4) / 1e6);
    } else { /* anything else: notepack hands out [type, Buffer] */
        if (depth + 1 > RDS_MAX_DEPTH)
            return SIO_ETOOBIG;
        pair = cJSON_CreateArray();
        num = cJSON_CreateNumber(t);
        ph = rds__placeholder(rds__bins_add(r->bins, pl, n));
        if (pair == NULL || num == NULL || ph == NULL) {
            cJSON_Delete(pair);
            cJSON_Delete(num);
            cJSON_Delete(ph);
            return SIO_ENOMEM;
        }
        cJSON_AddItemToArray(pair, num);
        cJSON_AddItemToArray(pair, ph);
        *out = pair;
    }
    return *out != NULL ? SIO_OK : SIO_ENOMEM;
}

static int rds__mp_value(rds__rd_t *r, int depth, cJSON **out);

/* Reads a string value of n bytes into a new cJSON string. */
static int rds__mp_str(rds__rd_t *r, size_t n, cJSON **out)
{
    const unsigned char *s;
    int err = SIO_OK;
    char *copy;
    cJSON *item;

    if (!rds__take(r, n, &s))
        return SIO_EPARSE;
    copy = rds__str_copy(s, n, &err);
    if (copy == NULL)
        return err;
    item = cJSON_CreateNull();
    if (item == NULL) {
        cJSON_free(copy);
        return SIO_ENOMEM;
    }
    /* hand the copy to cJSON instead of letting cJSON_CreateString duplicate it again */
    item->type = cJSON_String;
    item->valuestring = copy;
    *out = item;
    return SIO_OK;
}

/* Reads a map key: msgpack allows any type, JS objects only have string keys. */
static int rds__mp_key(rds__rd_t *r, char **key)
{
    const unsigned char *h, *s;
    size_t n;
    int err = SIO_OK;

    if (!rds__take(r, 1, &h))
        return SIO_EPARSE;
    if (*h >= 0xa0 && *h <= 0xbf) {
        n = *h & 0x1f;
    } else if (*h >= 0xd9 && *h <= 0xdb) {
        size_t w = rds__fmt[*h - 0xc0].size;
        if (!rds__take(r, w, &s))
            return SIO_EPARSE;
        n = (size_t)rds__be(s, w);
    } else {
        return SIO_EPARSE;
    }
    if (!rds__take(r, n, &s))
        return SIO_EPARSE;
    *key = rds__str_copy(s, n, &err);
    return *key != NULL ? SIO_OK : err;
}

static int rds__mp_array(rds__rd_t *r, int depth, size_t n, cJSON **out)
{
    cJSON *arr;

    if (depth + 1 > RDS_MAX_DEPTH)
        return SIO_ETOOBIG;
    if (n > rds__left(r)) /* every element takes at least one byte */
        return SIO_EPARSE;
    arr = cJSON_CreateArray();
    if (arr == NULL)
        return SIO_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        cJSON *v = NULL;
        int rc = rds__mp_value(r, depth + 1, &v);
        if (rc == SIO_OK && v == NULL && (v = cJSON_CreateNull()) == NULL)
            rc = SIO_ENOMEM; /* undefined in an array reads back as null */
        if (rc != SIO_OK) {
            cJSON_Delete(arr);
            return rc;
        }
        cJSON_AddItemToArray(arr, v);
    }
    *out = arr;
    return SIO_OK;
}

static int rds__mp_map(rds__rd_t *r, int depth, size_t n, cJSON **out)
{
    cJSON *obj;

    if (depth + 1 > RDS_MAX_DEPTH)
        return SIO_ETOOBIG;
    if (n > rds__left(r) / 2) /* every entry takes at least two bytes */
        return SIO_EPARSE;
    obj = cJSON_CreateObject();
    if (obj == NULL)
        return SIO_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char *key = NULL;
        cJSON *v = NULL;
        int rc = rds__mp_key(r, &key);
        if (rc == SIO_OK)
            rc = rds__mp_value(r, depth + 1, &v);
        if (rc == SIO_OK && v != NULL && strcmp(key, "_placeholder") == 0 && cJSON_IsTrue(v))
            rc = SIO_EPARSE; /* only bin values may become placeholders */
        if (rc != SIO_OK) {
            cJSON_free(key);
            cJSON_Delete(v);
            cJSON_Delete(obj);
            return rc;
        }
        if (v == NULL) { /* undefined value: JS keeps the key, JSON drops it; so do we */
            cJSON_free(key);
            continue;
        }
        v->string = key; /* cJSON_Delete frees it: not flagged cJSON_StringIsConst */
        cJSON_AddItemToArray(obj, v);
    }
    *out = obj;
    return SIO_OK;
}

/* Decodes one value at nesting depth (containers around it). *out NULL with SIO_OK is JS
 * undefined, which only the caller knows how to place. */
static int rds__mp_value(rds__rd_t *r, int depth, cJSON **out)
{
    const unsigned char *h, *f = NULL, *pl;
    struct rds__fmt fmt;
    uint64_t n = 0;

    *out = NULL;
    if (!rds__take(r, 1, &h))
        return SIO_EPARSE;
    if (*h <= 0x7f || *h >= 0xe0) {
        *out = cJSON_CreateNumber(*h >= 0xe0 ? (double)(int8_t)*h : (double)*h);
        return *out != NULL ? SIO_OK : SIO_ENOMEM;
    }
    if (*h <= 0x8f)
        return rds__mp_map(r, depth, *h & 0x0f, out);
    if (*h <= 0x9f)
        return rds__mp_array(r, depth, *h & 0x0f, out);
    if (*h <= 0xbf)
        return rds__mp_str(r, *h & 0x1f, out);

    fmt = rds__fmt[*h - 0xc0];
    if (fmt.kind != RDS_MP_FIXEXT && fmt.size > 0) {
        if (!rds__take(r, fmt.size, &f))
            return SIO_EPARSE;
        n = rds__be(f, fmt.size);
    }
    switch (fmt.kind) {
    case RDS_MP_NIL:
        *out = cJSON_CreateNull();
        break;
    case RDS_MP_FALSE:
        *out = cJSON_CreateFalse();
        break;
    case RDS_MP_TRUE:
        *out = cJSON_CreateTrue();
        break;
    case RDS_MP_UINT:
        *out = cJSON_CreateNumber((double)n);
        break;
    case RDS_MP_INT:
        *out = cJSON_CreateNumber((double)rds__be_signed(f, fmt.size));
        break;
    case RDS_MP_FLOAT:
        if (fmt.size == 4) {
            uint32_t u = (uint32_t)n;
            float x;
            memcpy(&x, &u, sizeof(x));
            *out = cJSON_CreateNumber((double)x);
        } else {
            double x;
            memcpy(&x, &n, sizeof(x));
            *out = cJSON_CreateNumber(x);
        }
        break;
    case RDS_MP_STR:
        return rds__mp_str(r, (size_t)n, out);
    case RDS_MP_BIN:
        if (!rds__take(r, (size_t)n, &pl))
            return SIO_EPARSE;
        *out = rds__placeholder(rds__bins_add(r->bins, pl, (size_t)n));
        break;
    case RDS_MP_ARRAY:
        return rds__mp_array(r, depth, (size_t)n, out);
    case RDS_MP_MAP:
        return rds__mp_map(r, depth, (size_t)n, out);
    case RDS_MP_EXT:
    case RDS_MP_FIXEXT: {
        const unsigned char *t;
        size_t len = fmt.kind == RDS_MP_EXT ? (size_t)n : fmt.size;
        if (!rds__take(r, 1, &t) || !rds__take(r, len, &pl))
            return SIO_EPARSE;
        return rds__ext(r, depth, *h, (int8_t)*t, pl, len, out);
    }
    default:
        return SIO_EPARSE; /* 0xc1, never used */
    }
    return *out != NULL ? SIO_OK : SIO_ENOMEM;
}

/* Whole payload -> one tree; trailing bytes are an error as in notepack. */
static int rds__mp_decode(const void *buf, size_t len, rds__bins_t *bins, cJSON **out)
{
    rds__rd_t r = {buf, len, 0, bins};
    int rc;

    *out = NULL;
    if (buf == NULL || len == 0)
        return SIO_EPARSE;
    rc = rds__mp_value(&r, 0, out);
    if (rc == SIO_OK && (*out == NULL || r.pos != len))
        rc = SIO_EPARSE;
    if (rc != SIO_OK) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return rc;
}

/* JSON payload -> tree, after the same UTF-8 repair Node's msg.toString() does. The text
 * must be one JSON value with only whitespace after it (JSON.parse); raw NUL is refused. */
static int rds__json_decode(const void *buf, size_t len, cJSON **out)
{
    int changed;
    size_t m;
    char *text;
    const char *end = NULL;

    *out = NULL;
    if (memchr(buf, '\0', len) != NULL)
        return SIO_EPARSE;
    m = rds__utf8_fix(buf, len, NULL, &changed);
    text = base_malloc(m + 1);
    rds__utf8_fix(buf, len, (unsigned char *)text, &changed);
    text[m] = '\0';
    *out = cJSON_ParseWithLengthOpts(text, m, &end, 0);
    if (*out != NULL) {
        while (end < text + m && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (end != text + m) {
            cJSON_Delete(*out);
            *out = NULL;
        }
    }
    base_free(text);
    return *out != NULL ? SIO_OK : SIO_EPARSE;
}

/* ---------------------------------------------------------------- msgpack writer */

typedef struct rds__enc {
    msgpack_packer pk;
    rds__out_t out;
    const sio_bin_t *bins; /* what placeholders of the tree being packed index */
    size_t n_bins;
} rds__enc_t;

static void rds__enc_init(rds__enc_t *e)
{
    memset(e, 0, sizeof(*e));
    msgpack_packer_init(&e->pk, &e->out, rds__out_write);
}

/* Hands the bytes to *out on success, frees them on failure; returns rc. */
static int rds__enc_finish(rds__enc_t *e, int rc, sio_bin_t *out)
{
    if (rc != SIO_OK) {
        base_free(e->out.data);
        out->data = NULL;
        out->len = 0;
        return rc;
    }
    out->data = e->out.data;
    out->len = e->out.len;
    return SIO_OK;
}

static int rds__pk(int packer_rc)
{
    return packer_rc == 0 ? SIO_OK : SIO_ENOMEM;
}

static int rds__pack_cstr(rds__enc_t *e, const char *s)
{
    return rds__pk(msgpack_pack_str_with_body(&e->pk, s, strlen(s)));
}

/* notepack's number rule: integral values as the smallest int form (msgpack-c picks the
 * same forms), float64 otherwise. We also use float64 beyond 2^64, where notepack's own
 * int path wraps around. */
static int rds__pack_number(rds__enc_t *e, double d)
{
    if (isfinite(d) && d == trunc(d)) {
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0)
            return rds__pk(msgpack_pack_int64(&e->pk, (int64_t)d));
        if (d > 0 && d < 18446744073709551616.0)
            return rds__pk(msgpack_pack_uint64(&e->pk, (uint64_t)d));
    }
    return rds__pk(msgpack_pack_double(&e->pk, d));
}

/* If v is a placeholder, *bin is its buffer (or NULL with SIO_EINVAL when its num does not
 * index e->bins); returns 0 for any other value. Same test as socket.io-parser. */
static int rds__is_placeholder(const rds__enc_t *e, const cJSON *v, const sio_bin_t **bin, int *rc)
{
    const cJSON *num;
    double k;

    if (!cJSON_IsObject(v) || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "_placeholder")))
        return 0;
    num = cJSON_GetObjectItemCaseSensitive(v, "num");
    k = cJSON_IsNumber(num) ? num->valuedouble : -1;
    if (!(k >= 0 && k < (double)e->n_bins && k == floor(k))) {
        *rc = SIO_EINVAL;
        *bin = NULL;
    } else {
        *rc = SIO_OK;
        *bin = &e->bins[(size_t)k];
    }
    return 1;
}

/* Packs v found at nesting depth (containers around it). */
static int rds__pack_json(rds__enc_t *e, const cJSON *v, int depth)
{
    const cJSON *c;
    const sio_bin_t *bin;
    size_t n = 0;
    int rc = SIO_OK;

    if (v == NULL)
        return SIO_EINVAL;
    switch (v->type & 0xff) {
    case cJSON_False:
        return rds__pk(msgpack_pack_false(&e->pk));
    case cJSON_True:
        return rds__pk(msgpack_pack_true(&e->pk));
    case cJSON_NULL:
        return rds__pk(msgpack_pack_nil(&e->pk));
    case cJSON_Number:
        return rds__pack_number(e, v->valuedouble);
    case cJSON_String:
        return v->valuestring != NULL ? rds__pack_cstr(e, v->valuestring) : SIO_EINVAL;
    case cJSON_Array:
    case cJSON_Object:
        break;
    default:
        return SIO_EINVAL; /* raw or invalid: no msgpack meaning */
    }
    if (rds__is_placeholder(e, v, &bin, &rc)) {
        if (rc != SIO_OK)
            return rc;
        rc = rds__pk(msgpack_pack_bin(&e->pk, bin->len));
        if (rc == SIO_OK && bin->len > 0)
            rc = rds__pk(msgpack_pack_bin_body(&e->pk, bin->data, bin->len));
        return rc;
    }
    if (depth + 1 > RDS_MAX_DEPTH)
        return SIO_ETOOBIG;
    cJSON_ArrayForEach(c, v)
    {
        n++;
    }
    if (cJSON_IsArray(v))
        rc = rds__pk(msgpack_pack_array(&e->pk, n));
    else
        rc = rds__pk(msgpack_pack_map(&e->pk, n));
    cJSON_ArrayForEach(c, v)
    {
        if (rc != SIO_OK)
            break;
        if (cJSON_IsObject(v))
            rc = c->string != NULL ? rds__pack_cstr(e, c->string) : SIO_EINVAL;
        if (rc == SIO_OK)
            rc = rds__pack_json(e, c, depth + 1);
    }
    return rc;
}

static int rds__pack_names(rds__enc_t *e, const char *const *v, size_t n)
{
    int rc = rds__pk(msgpack_pack_array(&e->pk, n));

    for (size_t i = 0; i < n && rc == SIO_OK; i++)
        rc = v[i] != NULL ? rds__pack_cstr(e, v[i]) : SIO_EINVAL;
    return rc;
}

/* {type:2, data, nsp} with p's attachments as the bins. */
static int rds__pack_packet(rds__enc_t *e, const cd_sio_packet_t *p, int depth)
{
    int rc;

    if (p->nsp == NULL || !cJSON_IsArray(p->data) ||
        (p->type != CD_SIO_EVENT && p->type != CD_SIO_BINARY_EVENT) ||
        (p->n_attach > 0 && p->attach == NULL))
        return SIO_EINVAL;
    e->bins = p->attach;
    e->n_bins = p->n_attach;
    rc = rds__pk(msgpack_pack_map(&e->pk, 3));
    if (rc == SIO_OK)
        rc = rds__pack_cstr(e, "type");
    if (rc == SIO_OK)
        rc = rds__pk(msgpack_pack_int(&e->pk, CD_SIO_EVENT));
    if (rc == SIO_OK)
        rc = rds__pack_cstr(e, "data");
    if (rc == SIO_OK)
        rc = rds__pack_json(e, p->data, depth + 1);
    if (rc == SIO_OK)
        rc = rds__pack_cstr(e, "nsp");
    if (rc == SIO_OK)
        rc = rds__pack_cstr(e, p->nsp);
    e->bins = NULL;
    e->n_bins = 0;
    return rc;
}

/* {rooms, except, flags:{volatile?, compress?, timeout?}} as the Node adapter's rawOpts. */
static int rds__pack_opts(rds__enc_t *e, const adp_opts_t *o, int64_t timeout_ms)
{
    size_t nf =
        ((o->flags & ADP_VOLATILE) != 0) + ((o->flags & ADP_NOCOMPRESS) != 0) + (timeout_ms >= 0);
    int rc;

    if ((o->n_rooms > 0 && o->rooms == NULL) || (o->n_except > 0 && o->except == NULL) ||
        (o->flags & ADP_LOCAL))
        return SIO_EINVAL;
    rc = rds__pk(msgpack_pack_map(&e->pk, 3));
    if (rc == SIO_OK)
        rc = rds__pack_cstr(e, "rooms");
    if (rc == SIO_OK)
        rc = rds__pack_names(e, o->rooms, o->n_rooms);
    if (rc == SIO_OK)
        rc = rds__pack_cstr(e, "except");
    if (rc == SIO_OK)
        rc = rds__pack_names(e, o->except, o->n_except);
    if (rc == SIO_OK)
        rc = rds__pack_cstr(e, "flags");
    if (rc == SIO_OK)
        rc = rds__pk(msgpack_pack_map(&e->pk, nf));
    if (rc == SIO_OK && (o->flags & ADP_VOLATILE)) {
        rc = rds__pack_cstr(e, "volatile");
        if (rc == SIO_OK)
            rc = rds__pk(msgpack_pack_true(&e->pk));
    }
    if (rc == SIO_OK && (o->flags & ADP_NOCOMPRESS)) {
        rc = rds__pack_cstr(e, "compress");
        if (rc == SIO_OK)
            rc = rds__pk(msgpack_pack_false(&e->pk));
    }
    if (rc == SIO_OK && timeout_ms >= 0) {
        rc = rds__pack_cstr(e, "timeout");
        if (rc == SIO_OK)
            rc = rds__pk(msgpack_pack_int64(&e->pk, timeout_ms));
    }
    return rc;
}

/* ---------------------------------------------------------------- field extraction */

/* A room / id as text: strings as they are, numbers as JS String(n) would print them. */
static int rds__name(const cJSON *v, char **out)
{
    char buf[40];
    double d;

    *out = NULL;
    if (cJSON_IsString(v)) {
        *out = base_strdup(v->valuestring);
        return SIO_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return SIO_EPARSE;
    d = v->valuedouble;
    if (d == 0) {
        snprintf(buf, sizeof(buf), "0"); /* String(-0) is "0" */
    } else if (d == trunc(d) && fabs(d) < 1e21) {
        snprintf(buf, sizeof(buf), "%.0f", d);
    } else {
        /* the shortest form that reads back exactly, as JS picks its digits */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof(buf), "%.*g", prec, d);
            if (strtod(buf, NULL) == d)
                break;
        }
    }
    *out = base_strdup(buf);
    return SIO_OK;
}

/* Optional name: absent -> NULL and SIO_OK. */
static int rds__opt_name(const cJSON *parent, const char *key, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(parent, key);

    *out = NULL;
    return v == NULL ? SIO_OK : rds__name(v, out);
}

/* A list of names: absent or null -> empty; an array of names; with single_ok also one
 * bare name (socket.join() takes either). */
static int rds__names(const cJSON *v, int single_ok, char ***out, size_t *n)
{
    const cJSON *c;
    size_t i = 0;

    *out = NULL;
    *n = 0;
    if (v == NULL || cJSON_IsNull(v))
        return SIO_OK;
    if (!cJSON_IsArray(v)) {
        if (!single_ok || !(cJSON_IsString(v) || cJSON_IsNumber(v)))
            return SIO_EPARSE;
        *out = base_calloc(1, sizeof(char *));
        if (rds__name(v, &(*out)[0]) != SIO_OK) {
            base_free(*out);
            *out = NULL;
            return SIO_EPARSE;
        }
        *n = 1;
        return SIO_OK;
    }
    cJSON_ArrayForEach(c, v)
    {
        i++;
    }
    if (i == 0)
        return SIO_OK;
    *out = base_calloc(i, sizeof(char *));
    i = 0;
    cJSON_ArrayForEach(c, v)
    {
        if (rds__name(c, &(*out)[i]) != SIO_OK) {
            rds__free_names(*out, i);
            *out = NULL;
            return SIO_EPARSE;
        }
        i++;
    }
    *n = i;
    return SIO_OK;
}

/* JS truthiness, for flags and close. */
static int rds__truthy(const cJSON *v)
{
    if (v == NULL || cJSON_IsNull(v) || cJSON_IsFalse(v))
        return 0;
    if (cJSON_IsNumber(v))
        return v->valuedouble != 0 && !isnan(v->valuedouble);
    if (cJSON_IsString(v))
        return v->valuestring[0] != '\0';
    return 1;
}

static int rds__opts(const cJSON *v, rds_opts_t *o)
{
    const cJSON *flags, *timeout;
    int rc;

    memset(o, 0, sizeof(*o));
    o->timeout_ms = -1;
    if (!cJSON_IsObject(v))
        return SIO_EPARSE;
    rc = rds__names(cJSON_GetObjectItemCaseSensitive(v, "rooms"), 0, &o->rooms, &o->n_rooms);
    if (rc == SIO_OK)
        rc = rds__names(cJSON_GetObjectItemCaseSensitive(v, "except"), 0, &o->except, &o->n_except);
    if (rc != SIO_OK) {
        rds_opts_free(o);
        return rc;
    }
    /* flags only tune delivery: a malformed one is ignored rather than losing the event */
    flags = cJSON_GetObjectItemCaseSensitive(v, "flags");
    if (cJSON_IsObject(flags)) {
        if (rds__truthy(cJSON_GetObjectItemCaseSensitive(flags, "volatile")))
            o->flags |= ADP_VOLATILE;
        if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(flags, "compress")))
            o->flags |= ADP_NOCOMPRESS;
        timeout = cJSON_GetObjectItemCaseSensitive(flags, "timeout");
        if (cJSON_IsNumber(timeout) && timeout->valuedouble >= 0 &&
            timeout->valuedouble <= RDS_JS_MAX_SAFE)
            o->timeout_ms = (int64_t)timeout->valuedouble;
    }
    return SIO_OK;
}

/* Moves the buffers of tree's placeholders out of bins into a new array and renumbers
 * them from 0. Placeholders in a JSON tree have no buffers: refused. */
static int rds__take_walk(cJSON *v, int from_json, size_t *lo, size_t *count)
{
    cJSON *c;

    if (cJSON_IsObject(v) && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "_placeholder"))) {
        cJSON *num = cJSON_GetObjectItemCaseSensitive(v, "num");
        size_t k;
        if (from_json || !cJSON_IsNumber(num))
            return SIO_EPARSE;
        k = (size_t)num->valuedouble;
        if (*count == 0)
            *lo = k;
        if (k != *lo + *count) /* cannot happen: the decoder numbers depth-first */
            return SIO_EPARSE;
        cJSON_SetNumberValue(num, (double)*count);
        (*count)++;
        return SIO_OK;
    }
    cJSON_ArrayForEach(c, v)
    {
        int rc = rds__take_walk(c, from_json, lo, count);
        if (rc != SIO_OK)
            return rc;
    }
    return SIO_OK;
}

static int rds__take_bins(cJSON *tree, rds__bins_t *bins, int from_json, sio_bin_t **att, size_t *n)
{
    size_t lo = 0, count = 0;
    int rc = rds__take_walk(tree, from_json, &lo, &count);

    *att = NULL;
    *n = 0;
    if (rc != SIO_OK)
        return rc;
    if (count == 0)
        return SIO_OK;
    if (lo + count > bins->n)
        return SIO_EPARSE;
    *att = base_calloc(count, sizeof(**att));
    for (size_t i = 0; i < count; i++) {
        (*att)[i] = bins->v[lo + i];
        bins->v[lo + i].data = NULL;
        bins->v[lo + i].len = 0;
    }
    *n = count;
    return SIO_OK;
}

/* What socket.io-client accepts as EVENT data: [name, ...] with a non-reserved string or
 * a finite number as name; anything else makes every client drop its connection. */
static int rds__event_ok(const cJSON *data)
{
    const cJSON *name = cJSON_IsArray(data) ? data->child : NULL;

    if (cJSON_IsString(name))
        return !cd_sio_event_reserved(name->valuestring);
    return cJSON_IsNumber(name) && isfinite(name->valuedouble);
}

/* {type, data, nsp} -> a new EVENT packet owning data (detached from pobj) and its bins. */
static int rds__packet(cJSON *pobj, rds__bins_t *bins, int from_json, cd_sio_packet_t **out)
{
    const cJSON *type, *nsp;
    cJSON *data;
    cd_sio_packet_t *p;
    int rc;

    *out = NULL;
    if (!cJSON_IsObject(pobj))
        return SIO_EPARSE;
    type = cJSON_GetObjectItemCaseSensitive(pobj, "type");
    /* 5 (BINARY_EVENT) is what emitters of the socket.io 2 era wrote for binary args */
    if (type != NULL && !(cJSON_IsNumber(type) && (type->valuedouble == CD_SIO_EVENT ||
                                                   type->valuedouble == CD_SIO_BINARY_EVENT)))
        return SIO_EPARSE;
    nsp = cJSON_GetObjectItemCaseSensitive(pobj, "nsp");
    if (nsp != NULL && !cJSON_IsString(nsp))
        return SIO_EPARSE;
    data = cJSON_GetObjectItemCaseSensitive(pobj, "data");
    if (!rds__event_ok(data))
        return SIO_EPARSE;
    p = cd_sio_packet_new(CD_SIO_EVENT, nsp != NULL ? nsp->valuestring : "/");
    p->data = cJSON_DetachItemViaPointer(pobj, data);
    rc = rds__take_bins(p->data, bins, from_json, &p->attach, &p->n_attach);
    if (rc != SIO_OK) {
        cd_sio_packet_free(p);
        return rc;
    }
    p->n_have = p->n_attach;
    *out = p;
    return SIO_OK;
}

/* ---------------------------------------------------------------- options */

/* Frees o's names and arrays, leaves it empty (timeout -1); NULL is ignored. */
void rds_opts_free(rds_opts_t *o)
{
    if (o == NULL)
        return;
    rds__free_names(o->rooms, o->n_rooms);
    rds__free_names(o->except, o->n_except);
    memset(o, 0, sizeof(*o));
    o->timeout_ms = -1;
}

/* Borrowed adp_opts_t over o; valid while o is unchanged. */
void rds_opts_view(const rds_opts_t *o, adp_opts_t *view)
{
    view->rooms = (const char *const *)o->rooms;
    view->n_rooms = o->n_rooms;
    view->except = (const char *const *)o->except;
    view->n_except = o->n_except;
    view->flags = o->flags;
    view->offset = NULL; /* the caller sets it from the message's 4th element */
}

/* ---------------------------------------------------------------- broadcasts */

/* msgpack [uid, packet, opts(, offset)] as the Node adapter writes it. *out owns the bytes
 * on SIO_OK, is {NULL, 0} on SIO_EINVAL / SIO_ETOOBIG (rds_codec.h lists the cases). */
int rds_encode_broadcast(const char *uid, const cd_sio_packet_t *p, const adp_opts_t *opts,
                         const char *offset, sio_bin_t *out)
{
    rds__enc_t e;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    rds__enc_init(&e);
    if (uid == NULL || p == NULL || opts == NULL)
        return rds__enc_finish(&e, SIO_EINVAL, out);
    rc = rds__pk(msgpack_pack_array(&e.pk, offset != NULL ? 4 : 3));
    if (rc == SIO_OK)
        rc = rds__pack_cstr(&e, uid);
    if (rc == SIO_OK)
        rc = rds__pack_packet(&e, p, 1);
    if (rc == SIO_OK)
        rc = rds__pack_opts(&e, opts, -1);
    if (rc == SIO_OK && offset != NULL)
        rc = rds__pack_cstr(&e, offset);
    return rds__enc_finish(&e, rc, out);
}

/* Any publisher's [uid, packet, opts(, offset)] -> *b (owned by the caller). On error *b
 * is zeroed and nothing is left allocated. */
int rds_decode_broadcast(const void *buf, size_t len, rds_broadcast_t *b)
{
    rds__bins_t bins = {0};
    cJSON *root = NULL, *uid, *pkt, *opts, *off;
    int rc;

    memset(b, 0, sizeof(*b));
    b->opts.timeout_ms = -1;
    rc = rds__mp_decode(buf, len, &bins, &root);
    if (rc != SIO_OK)
        goto done;
    rc = SIO_EPARSE;
    if (!cJSON_IsArray(root) || cJSON_GetArraySize(root) < 3)
        goto done;
    uid = root->child;
    pkt = uid->next;
    opts = pkt->next;
    off = opts->next;
    if (!cJSON_IsString(uid))
        goto done;
    b->uid = base_strdup(uid->valuestring);
    rc = rds__packet(pkt, &bins, 0, &b->packet);
    if (rc == SIO_OK)
        rc = rds__opts(opts, &b->opts);
    if (rc == SIO_OK && cJSON_IsString(off))
        b->offset = base_strdup(off->valuestring);
done:
    cJSON_Delete(root);
    rds__bins_free(&bins);
    if (rc != SIO_OK)
        rds_broadcast_free(b);
    return rc;
}

/* Frees what b holds and zeroes it; NULL is ignored. */
void rds_broadcast_free(rds_broadcast_t *b)
{
    if (b == NULL)
        return;
    base_free(b->uid);
    cd_sio_packet_free(b->packet);
    rds_opts_free(&b->opts);
    base_free(b->offset);
    memset(b, 0, sizeof(*b));
    b->opts.timeout_ms = -1;
}

/* ---------------------------------------------------------------- requests and responses */

static void rds__msg_zero(rds_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    m->type = RDS_TYPE_NONE;
    m->client_count = -1;
    m->opts.timeout_ms = -1;
}

/* Frees what m holds and zeroes it; NULL is ignored. */
void rds_msg_free(rds_msg_t *m)
{
    if (m == NULL)
        return;
    base_free(m->uid);
    base_free(m->request_id);
    rds_opts_free(&m->opts);
    rds__free_names(m->rooms, m->n_rooms);
    base_free(m->sid);
    base_free(m->room);
    cd_sio_packet_free(m->packet);
    cJSON_Delete(m->data);
    rds__free_bin_array(m->attach, m->n_attach);
    cJSON_Delete(m->sockets);
    rds__msg_zero(m);
}

/* Detaches root[key] into m->data with its buffers (absent: data stays NULL). */
static int rds__msg_data(rds_msg_t *m, cJSON *root, const char *key, rds__bins_t *bins,
                         int from_json)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);

    if (v == NULL)
        return SIO_OK;
    m->data = cJSON_DetachItemViaPointer(root, v);
    return rds__take_bins(m->data, bins, from_json, &m->attach, &m->n_attach);
}

static int rds__request_fields(rds_msg_t *m, cJSON *root, rds__bins_t *bins, int from_json)
{
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(root, "opts");
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(root, "rooms");
    const cJSON *data;
    int rc = SIO_OK;

    switch (m->type) {
    case RDS_REQ_SOCKETS:
        if (m->request_id == NULL)
            return SIO_EPARSE;
        m->has_rooms = rooms != NULL;
        return rds__names(rooms, 0, &m->rooms, &m->n_rooms);
    case RDS_REQ_ALL_ROOMS:
        return m->request_id != NULL ? SIO_OK : SIO_EPARSE;
    case RDS_REQ_REMOTE_JOIN:
    case RDS_REQ_REMOTE_LEAVE:
    case RDS_REQ_REMOTE_DISCONNECT:
        /* Node takes the opts form whenever opts is truthy, the legacy one otherwise */
        m->has_opts = rds__truthy(opts);
        if (m->type == RDS_REQ_REMOTE_DISCONNECT)
            m->close = rds__truthy(cJSON_GetObjectItemCaseSensitive(root, "close"));
        if (m->has_opts) {
            rc = rds__opts(opts, &m->opts);
            if (rc == SIO_OK && m->type != RDS_REQ_REMOTE_DISCONNECT) {
                if (rooms == NULL)
                    return SIO_EPARSE;
                m->has_rooms = 1;
                rc = rds__names(rooms, 1, &m->rooms, &m->n_rooms);
            }
            return rc;
        }
        rc = rds__opt_name(root, "sid", &m->sid);
        if (rc == SIO_OK && m->type != RDS_REQ_REMOTE_DISCONNECT)
            rc = rds__opt_name(root, "room", &m->room);
        if (rc == SIO_OK &&
            (m->sid == NULL || (m->type != RDS_REQ_REMOTE_DISCONNECT && m->room == NULL)))
            rc = SIO_EPARSE;
        return rc;
    case RDS_REQ_REMOTE_FETCH:
        if (m->request_id == NULL || opts == NULL)
            return SIO_EPARSE;
        return rds__opts(opts, &m->opts);
    case RDS_REQ_SERVER_SIDE_EMIT:
        data = cJSON_GetObjectItemCaseSensitive(root, "data");
        if (!cJSON_IsArray(data) || !cJSON_IsString(data->child))
            return SIO_EPARSE;
        return rds__msg_data(m, root, "data", bins, from_json);
    case RDS_REQ_BROADCAST:
        if (m->request_id == NULL || opts == NULL)
            return SIO_EPARSE;
        rc = rds__packet(cJSON_GetObjectItemCaseSensitive(root, "packet"), bins, from_json,
                         &m->packet);
        return rc == SIO_OK ? rds__opts(opts, &m->opts) : rc;
    default:
        return SIO_EPARSE; /* 8 and 9 are responses */
    }
}

static int rds__response_fields(rds_msg_t *m, cJSON *root, rds__bins_t *bins, int from_json)
{
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(root, "rooms");
    cJSON *sockets = cJSON_GetObjectItemCaseSensitive(root, "sockets");
    int rc;

    if (m->request_id == NULL)
        return SIO_EPARSE;
    if (m->type == RDS_REQ_BROADCAST_CLIENT_COUNT) {
        const cJSON *cc = cJSON_GetObjectItemCaseSensitive(root, "clientCount");
        if (!cJSON_IsNumber(cc) || !(cc->valuedouble >= 0) || cc->valuedouble > RDS_JS_MAX_SAFE ||
            cc->valuedouble != trunc(cc->valuedouble))
            return SIO_EPARSE;
        m->client_count = (int64_t)cc->valuedouble;
        return SIO_OK;
    }
    rc = rds__msg_data(m, root, m->type == RDS_REQ_BROADCAST_ACK ? "packet" : "data", bins,
                       from_json);
    if (rc == SIO_OK && cJSON_IsArray(rooms)) {
        m->has_rooms = 1;
        rc = rds__names(rooms, 0, &m->rooms, &m->n_rooms);
    }
    if (rc == SIO_OK && cJSON_IsArray(sockets))
        m->sockets = cJSON_DetachItemViaPointer(root, sockets);
    return rc;
}

static int rds__msg_decode(const void *buf, size_t len, int response, rds_msg_t *m)
{
    rds__bins_t bins = {0};
    cJSON *root = NULL;
    const cJSON *type;
    int from_json, rc;

    rds__msg_zero(m);
    if (buf == NULL || len == 0)
        return SIO_EPARSE;
    from_json = ((const unsigned char *)buf)[0] == '{';
    rc = from_json ? rds__json_decode(buf, len, &root) : rds__mp_decode(buf, len, &bins, &root);
    if (rc != SIO_OK)
        goto done;
    rc = SIO_EPARSE;
    if (!cJSON_IsObject(root))
        goto done;
    type = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (type != NULL) {
        double t = cJSON_IsNumber(type) ? type->valuedouble : -1;
        if (!(t >= RDS_REQ_SOCKETS && t <= RDS_REQ_BROADCAST_ACK && t == trunc(t)))
            goto done;
        m->type = (int)t;
    } else if (!response) {
        goto done;
    }
    rc = rds__opt_name(root, "uid", &m->uid);
    if (rc == SIO_OK)
        rc = rds__opt_name(root, "requestId", &m->request_id);
    if (rc == SIO_OK)
        rc = response ? rds__response_fields(m, root, &bins, from_json)
                      : rds__request_fields(m, root, &bins, from_json);
done:
    cJSON_Delete(root);
    rds__bins_free(&bins);
    if (rc != SIO_OK)
        rds_msg_free(m);
    return rc;
}

/* A K-request#N# payload -> *m; SIO_EPARSE / SIO_ETOOBIG with *m zeroed otherwise. */
int rds_decode_request(const void *buf, size_t len, rds_msg_t *m)
{
    return rds__msg_decode(buf, len, 0, m);
}

/* A K-response#N#[uid#] payload -> *m; SIO_EPARSE / SIO_ETOOBIG with *m zeroed otherwise. */
int rds_decode_response(const void *buf, size_t len, rds_msg_t *m)
{
    return rds__msg_decode(buf, len, 1, m);
}

/* ---------------------------------------------------------------- JSON encoders */

/* Prints root (consumed) into a new sio buffer. */
static int rds__json_finish(cJSON *root, int rc, sio_bin_t *out)
{
    char *text = NULL;

    out->data = NULL;
    out->len = 0;
    if (rc == SIO_OK && root == NULL)
        rc = SIO_ENOMEM;
    if (rc == SIO_OK && (text = cJSON_PrintUnformatted(root)) == NULL)
        rc = SIO_ENOMEM;
    cJSON_Delete(root);
    if (rc != SIO_OK)
        return rc;
    out->len = strlen(text);
    out->data = base_malloc(out->len);
    memcpy(out->data, text, out->len);
    cJSON_free(text);
    return SIO_OK;
}

/* Adds key: string, failing with SIO_EINVAL on NULL. */
static int rds__add_str(cJSON *o, const char *key, const char *s, int rc)
{
    if (rc != SIO_OK)
        return rc;
    if (s == NULL)
        return SIO_EINVAL;
    return cJSON_AddStringToObject(o, key, s) != NULL ? SIO_OK : SIO_ENOMEM;
}

static int rds__add_num(cJSON *o, const char *key, double d, int rc)
{
    if (rc != SIO_OK)
        return rc;
    return cJSON_AddNumberToObject(o, key, d) != NULL ? SIO_OK : SIO_ENOMEM;
}

static int rds__add_names(cJSON *o, const char *key, const char *const *v, size_t n, int rc)
{
    cJSON *arr;

    if (rc != SIO_OK)
        return rc;
    if (n > 0 && v == NULL)
        return SIO_EINVAL;
    arr = cJSON_AddArrayToObject(o, key);
    if (arr == NULL)
        return SIO_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        cJSON *s;
        if (v[i] == NULL)
            return SIO_EINVAL;
        s = cJSON_CreateString(v[i]);
        if (s == NULL || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            return SIO_ENOMEM;
        }
    }
    return SIO_OK;
}

/* Adds a borrowed tree by reference: printed, never freed by us. */
static int rds__add_ref(cJSON *o, const char *key, const cJSON *v, int rc)
{
    if (rc != SIO_OK)
        return rc;
    return cJSON_AddItemReferenceToObject(o, key, (cJSON *)v) ? SIO_OK : SIO_ENOMEM;
}

/* "opts": {"rooms", "except"}: what the Node adapter sends for 2/3/4/5 (no flags). */
static int rds__add_target(cJSON *o, const adp_opts_t *opts, int rc)
{
    cJSON *t;

    if (rc != SIO_OK)
        return rc;
    if (opts == NULL)
        return SIO_EINVAL;
    t = cJSON_AddObjectToObject(o, "opts");
    if (t == NULL)
        return SIO_ENOMEM;
    rc = rds__add_names(t, "rooms", opts->rooms, opts->n_rooms, rc);
    return rds__add_names(t, "except", opts->except, opts->n_except, rc);
}

/* Request encoders: *out owns the bytes on SIO_OK, {NULL, 0} on error (rds_codec.h). */
int rds_encode_all_rooms_req(const char *uid, const char *request_id, sio_bin_t *out)
{
    cJSON *o = cJSON_CreateObject();
    int rc = o != NULL ? SIO_OK : SIO_ENOMEM;

    if (out == NULL) {
        cJSON_Delete(o);
        return SIO_EINVAL;
    }
    rc = rds__add_str(o, "uid", uid, rc);
    rc = rds__add_str(o, "requestId", request_id, rc);
    rc = rds__add_num(o, "type", RDS_REQ_ALL_ROOMS, rc);
    return rds__json_finish(o, rc, out);
}

int rds_encode_sockets_rooms_req(int type, const char *uid, const adp_opts_t *opts,
                                 const char *const *rooms, size_t n_rooms, sio_bin_t *out)
{
    cJSON *o;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    o = cJSON_CreateObject();
    rc = o != NULL ? SIO_OK : SIO_ENOMEM;
    if (type != RDS_REQ_REMOTE_JOIN && type != RDS_REQ_REMOTE_LEAVE)
        rc = SIO_EINVAL;
    rc = rds__add_str(o, "uid", uid, rc);
    rc = rds__add_num(o, "type", type, rc);
    rc = rds__add_target(o, opts, rc);
    rc = rds__add_names(o, "rooms", rooms, n_rooms, rc);
    return rds__json_finish(o, rc, out);
}

int rds_encode_disconnect_req(const char *uid, const adp_opts_t *opts, int close, sio_bin_t *out)
{
    cJSON *o;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    o = cJSON_CreateObject();
    rc = o != NULL ? SIO_OK : SIO_ENOMEM;
    rc = rds__add_str(o, "uid", uid, rc);
    rc = rds__add_num(o, "type", RDS_REQ_REMOTE_DISCONNECT, rc);
    rc = rds__add_target(o, opts, rc);
    if (rc == SIO_OK && cJSON_AddBoolToObject(o, "close", close != 0) == NULL)
        rc = SIO_ENOMEM;
    return rds__json_finish(o, rc, out);
}

int rds_encode_fetch_req(const char *uid, const char *request_id, const adp_opts_t *opts,
                         sio_bin_t *out)
{
    cJSON *o;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    o = cJSON_CreateObject();
    rc = o != NULL ? SIO_OK : SIO_ENOMEM;
    rc = rds__add_str(o, "uid", uid, rc);
    rc = rds__add_str(o, "requestId", request_id, rc);
    rc = rds__add_num(o, "type", RDS_REQ_REMOTE_FETCH, rc);
    rc = rds__add_target(o, opts, rc);
    return rds__json_finish(o, rc, out);
}

int rds_encode_server_emit_req(const char *uid, const char *request_id, const cJSON *args,
                               sio_bin_t *out)
{
    cJSON *o;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    o = cJSON_CreateObject();
    rc = o != NULL ? SIO_OK : SIO_ENOMEM;
    if (!cJSON_IsArray(args))
        rc = SIO_EINVAL;
    rc = rds__add_str(o, "uid", uid, rc);
    if (request_id != NULL)
        rc = rds__add_str(o, "requestId", request_id, rc);
    rc = rds__add_num(o, "type", RDS_REQ_SERVER_SIDE_EMIT, rc);
    rc = rds__add_ref(o, "data", args, rc);
    return rds__json_finish(o, rc, out);
}

int rds_encode_broadcast_ack_req(const char *uid, const char *request_id, const cd_sio_packet_t *p,
                                 const adp_opts_t *opts, int64_t timeout_ms, sio_bin_t *out)
{
    rds__enc_t e;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    rds__enc_init(&e);
    if (uid == NULL || request_id == NULL || p == NULL || opts == NULL)
        return rds__enc_finish(&e, SIO_EINVAL, out);
    rc = rds__pk(msgpack_pack_map(&e.pk, 5));
    if (rc == SIO_OK)
        rc = rds__pack_cstr(&e, "uid");
    if (rc == SIO_OK)
        rc = rds__pack_cstr(&e, uid);
    if (rc == SIO_OK)
        rc = rds__pack_cstr(&e, "requestId");
    if (rc == SIO_OK)
        rc = rds__pack_cstr(&e, request_id);
    if (rc == SIO_OK)
        rc = rds__pack_cstr(&e, "type");
    if (rc == SIO_OK)
        rc = rds__pk(msgpack_pack_int(&e.pk, RDS_REQ_BROADCAST));
    if (rc == SIO_OK)
        rc = rds__pack_cstr(&e, "packet");
    if (rc == SIO_OK)
        rc = rds__pack_packet(&e, p, 1);
    if (rc == SIO_OK)
        rc = rds__pack_cstr(&e, "opts");
    if (rc == SIO_OK)
        rc = rds__pack_opts(&e, opts, timeout_ms);
    return rds__enc_finish(&e, rc, out);
}

/* Response encoders: same conventions as the requests above. */
int rds_encode_sockets_res(const char *request_id, const char *const *sids, size_t n,
                           sio_bin_t *out)
{
    cJSON *o;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    o = cJSON_CreateObject();
    rc = o != NULL ? SIO_OK : SIO_ENOMEM;
    rc = rds__add_str(o, "requestId", request_id, rc);
    rc = rds__add_names(o, "sockets", sids, n, rc);
    return rds__json_finish(o, rc, out);
}

int rds_encode_all_rooms_res(const char *request_id, const char *const *rooms, size_t n,
                             sio_bin_t *out)
{
    cJSON *o;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    o = cJSON_CreateObject();
    rc = o != NULL ? SIO_OK : SIO_ENOMEM;
    rc = rds__add_str(o, "requestId", request_id, rc);
    rc = rds__add_names(o, "rooms", rooms, n, rc);
    return rds__json_finish(o, rc, out);
}

int rds_encode_fetch_res(const char *request_id, const cJSON *sockets, sio_bin_t *out)
{
    cJSON *o;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    o = cJSON_CreateObject();
    rc = o != NULL ? SIO_OK : SIO_ENOMEM;
    if (!cJSON_IsArray(sockets))
        rc = SIO_EINVAL;
    rc = rds__add_str(o, "requestId", request_id, rc);
    rc = rds__add_ref(o, "sockets", sockets, rc);
    return rds__json_finish(o, rc, out);
}

int rds_encode_server_emit_res(const char *request_id, const cJSON *arg, sio_bin_t *out)
{
    cJSON *o;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    o = cJSON_CreateObject();
    rc = o != NULL ? SIO_OK : SIO_ENOMEM;
    rc = rds__add_num(o, "type", RDS_REQ_SERVER_SIDE_EMIT, rc);
    rc = rds__add_str(o, "requestId", request_id, rc);
    if (arg != NULL)
        rc = rds__add_ref(o, "data", arg, rc);
    return rds__json_finish(o, rc, out);
}

int rds_encode_client_count_res(const char *request_id, uint64_t client_count, sio_bin_t *out)
{
    cJSON *o;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    o = cJSON_CreateObject();
    rc = o != NULL ? SIO_OK : SIO_ENOMEM;
    rc = rds__add_num(o, "type", RDS_REQ_BROADCAST_CLIENT_COUNT, rc);
    rc = rds__add_str(o, "requestId", request_id, rc);
    rc = rds__add_num(o, "clientCount", (double)client_count, rc);
    return rds__json_finish(o, rc, out);
}

int rds_encode_broadcast_ack_res(const char *request_id, const cJSON *arg, const sio_bin_t *bins,
                                 size_t n_bins, sio_bin_t *out)
{
    rds__enc_t e;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    rds__enc_init(&e);
    if (request_id == NULL || (n_bins > 0 && bins == NULL))
        return rds__enc_finish(&e, SIO_EINVAL, out);
    e.bins = bins;
    e.n_bins = n_bins;
    rc = rds__pk(msgpack_pack_map(&e.pk, arg != NULL ? 3 : 2));
    if (rc == SIO_OK)
        rc = rds__pack_cstr(&e, "type");
    if (rc == SIO_OK)
        rc = rds__pk(msgpack_pack_int(&e.pk, RDS_REQ_BROADCAST_ACK));
    if (rc == SIO_OK)
        rc = rds__pack_cstr(&e, "requestId");
    if (rc == SIO_OK)
        rc = rds__pack_cstr(&e, request_id);
    if (rc == SIO_OK && arg != NULL) {
        rc = rds__pack_cstr(&e, "packet");
        if (rc == SIO_OK)
            rc = rds__pack_json(&e, arg, 1);
    }
    return rds__enc_finish(&e, rc, out);
}

int rds_encode_legacy_res(const char *request_id, sio_bin_t *out)
{
    cJSON *o;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    o = cJSON_CreateObject();
    rc = o != NULL ? SIO_OK : SIO_ENOMEM;
    rc = rds__add_str(o, "requestId", request_id, rc);
    return rds__json_finish(o, rc, out);
}
