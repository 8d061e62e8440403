/* msgpack.c -- msgpack <-> cJSON trees as notepack.io reads and writes them (cd_msgpack.h).
 *
 * The reader walks the bytes once, recursing per container, and builds the tree as it
 * goes; declared lengths are checked against the bytes left before anything is allocated
 * (an element takes at least one byte, a map entry two), so a short input that announces
 * 2^32 elements costs nothing. The writer walks a tree into msgpack-c's packer.
 */
#include "cd_msgpack.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "base_alloc.h"
#include "cd_utf8.h"

#define CD_MP_JS_MAX_TIME 8.64e15 /* largest |ms| a JS Date holds */

/* ---------------------------------------------------------------- bins */

/* Appends a copy of p[0..len) and returns its index (the placeholder's num). */
static size_t cd__mp_bins_add(cd_mp_bins_t *b, const unsigned char *p, size_t len)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 4;
        b->v = base_realloc(b->v, b->cap * sizeof(*b->v));
    }
    /* a present buffer never has NULL data, even when empty (as cd_sio_packet.h) */
    b->v[b->n].data = base_malloc(len);
    b->v[b->n].len = len;
    if (len)
        memcpy(b->v[b->n].data, p, len);
    return b->n++;
}

/* Drops the buffers from index n on: what a failed read had appended. */
static void cd__mp_bins_cut(cd_mp_bins_t *b, size_t n)
{
    while (b->n > n)
        base_free(b->v[--b->n].data);
}

/* Frees every buffer left and the array; NULL is ignored. */
void cd_mp_bins_free(cd_mp_bins_t *b)
{
    if (b == NULL)
        return;
    cd__mp_bins_cut(b, 0);
    base_free(b->v);
    memset(b, 0, sizeof(*b));
}

/* ---------------------------------------------------------------- reader */

/* One read in progress. */
typedef struct cd__mp_rd {
    const unsigned char *p;
    size_t len;
    size_t pos;
    cd_mp_bins_t *bins;
} cd__mp_rd_t;

enum {
    CD_MP_BAD,
    CD_MP_NIL,
    CD_MP_FALSE,
    CD_MP_TRUE,
    CD_MP_BIN,
    CD_MP_EXT,
    CD_MP_FLOAT,
    CD_MP_UINT,
    CD_MP_INT,
    CD_MP_FIXEXT,
    CD_MP_STR,
    CD_MP_ARRAY,
    CD_MP_MAP,
};

/* Formats 0xc0..0xdf: kind and the width of the big-endian field after the prefix (the
 * length, the value, or for fixext the payload size). */
static const struct cd__mp_fmt {
    unsigned char kind;
    unsigned char size;
} cd__mp_fmt[32] = {
    [0x00] = {CD_MP_NIL, 0},     [0x01] = {CD_MP_BAD, 0},    [0x02] = {CD_MP_FALSE, 0},
    [0x03] = {CD_MP_TRUE, 0},    [0x04] = {CD_MP_BIN, 1},    [0x05] = {CD_MP_BIN, 2},
    [0x06] = {CD_MP_BIN, 4},     [0x07] = {CD_MP_EXT, 1},    [0x08] = {CD_MP_EXT, 2},
    [0x09] = {CD_MP_EXT, 4},     [0x0a] = {CD_MP_FLOAT, 4},  [0x0b] = {CD_MP_FLOAT, 8},
    [0x0c] = {CD_MP_UINT, 1},    [0x0d] = {CD_MP_UINT, 2},   [0x0e] = {CD_MP_UINT, 4},
    [0x0f] = {CD_MP_UINT, 8},    [0x10] = {CD_MP_INT, 1},    [0x11] = {CD_MP_INT, 2},
    [0x12] = {CD_MP_INT, 4},     [0x13] = {CD_MP_INT, 8},    [0x14] = {CD_MP_FIXEXT, 1},
    [0x15] = {CD_MP_FIXEXT, 2},  [0x16] = {CD_MP_FIXEXT, 4}, [0x17] = {CD_MP_FIXEXT, 8},
    [0x18] = {CD_MP_FIXEXT, 16}, [0x19] = {CD_MP_STR, 1},    [0x1a] = {CD_MP_STR, 2},
    [0x1b] = {CD_MP_STR, 4},     [0x1c] = {CD_MP_ARRAY, 2},  [0x1d] = {CD_MP_ARRAY, 4},
    [0x1e] = {CD_MP_MAP, 2},     [0x1f] = {CD_MP_MAP, 4},
};

static size_t cd__mp_left(const cd__mp_rd_t *r)
{
    return r->len - r->pos;
}

/* Points *out at the next n bytes and consumes them; 0 when fewer are left. */
static int cd__mp_take(cd__mp_rd_t *r, size_t n, const unsigned char **out)
{
    if (cd__mp_left(r) < n)
        return 0;
    *out = r->p + r->pos;
    r->pos += n;
    return 1;
}

static uint64_t cd__mp_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int64_t cd__mp_be_signed(const unsigned char *p, size_t n)
{
    uint64_t v = cd__mp_be(p, n);

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

/* NUL-terminated copy of s[0..n) in cJSON's allocator (so cJSON_Delete can own it), with
 * ill-formed UTF-8 repaired. NULL with *err set when s holds NUL (cJSON strings cannot) or
 * cJSON cannot allocate. */
static char *cd__mp_str_copy(const unsigned char *s, size_t n, int *err)
{
    int changed;
    size_t m;
    char *d;

    if (memchr(s, '\0', n) != NULL) {
        *err = SIO_EPARSE;
        return NULL;
    }
    m = cd_utf8_repair(s, n, NULL, &changed);
    d = cJSON_malloc(m + 1);
    if (d == NULL) {
        *err = SIO_ENOMEM;
        return NULL;
    }
    if (changed)
        cd_utf8_repair(s, n, (unsigned char *)d, &changed);
    else
        memcpy(d, s, n);
    d[m] = '\0';
    return d;
}

static cJSON *cd__mp_placeholder(size_t num)
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
static void cd__mp_civil(int64_t z, int64_t *y, unsigned *m, unsigned *d)
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
static cJSON *cd__mp_date(double ms)
{
    char buf[96];
    int64_t t, days, rem, y;
    unsigned mo, d;

    if (!isfinite(ms) || fabs(ms) > CD_MP_JS_MAX_TIME)
        return cJSON_CreateNull();
    t = (int64_t)trunc(ms);
    days = t / 86400000;
    rem = t % 86400000;
    if (rem < 0) {
        rem += 86400000;
        days--;
    }
    cd__mp_civil(days, &y, &mo, &d);
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
static int cd__mp_ext(cd__mp_rd_t *r, int depth, unsigned char prefix, int t,
                      const unsigned char *pl, size_t n, cJSON **out)
{
    int fixed = prefix >= 0xd4;
    cJSON *pair, *num, *ph;

    *out = NULL;
    if (t == 0 && fixed && n == 1)
        return SIO_OK;               /* d4 00 xx: undefined */
    if (t == 0 && fixed && n == 8) { /* legacy Date: int64 ms */
        *out = cd__mp_date((double)cd__mp_be_signed(pl, 4) * 4294967296.0 +
                           (double)cd__mp_be(pl + 4, 4));
    } else if (t == 0 && !fixed) { /* legacy ArrayBuffer: plain binary */
        *out = cd__mp_placeholder(cd__mp_bins_add(r->bins, pl, n));
    } else if (t == -1 && fixed && n == 4) { /* timestamp 32 */
        *out = cd__mp_date((double)cd__mp_be(pl, 4) * 1e3);
    } else if (t == -1 && fixed && n == 8) { /* timestamp 64: 30-bit ns, 34-bit s */
        uint64_t hi = cd__mp_be(pl, 4), lo = cd__mp_be(pl + 4, 4);
        double s = (double)(hi & 3) * 4294967296.0 + (double)lo;
        *out = cd__mp_date(s * 1e3 + (double)(hi >> 2) / 1e6);
    } else if (t == -1 && prefix == 0xc7) { /* timestamp 96 */
        double s;
        if (n != 12)
            return SIO_EPARSE; /* notepack would read 12 bytes regardless and lose sync */
        s = (double)cd__mp_be_signed(pl + 4, 4) * 4294967296.0 + (double)cd__mp_be(pl + 8, 4);
        *out = cd__mp_date(s * 1e3 + (double)cd__mp_be(pl, 4) / 1e6);
    } else { /* anything else: notepack hands out [type, Buffer] */
        if (depth + 1 > CD_MP_MAX_DEPTH)
            return SIO_ETOOBIG;
        pair = cJSON_CreateArray();
        num = cJSON_CreateNumber(t);
        ph = cd__mp_placeholder(cd__mp_bins_add(r->bins, pl, n));
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

static int cd__mp_value(cd__mp_rd_t *r, int depth, cJSON **out);

/* Reads a string value of n bytes into a new cJSON string. */
static int cd__mp_str(cd__mp_rd_t *r, size_t n, cJSON **out)
{
    const unsigned char *s;
    int err = SIO_OK;
    char *copy;
    cJSON *item;

    if (!cd__mp_take(r, n, &s))
        return SIO_EPARSE;
    copy = cd__mp_str_copy(s, n, &err);
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
static int cd__mp_key(cd__mp_rd_t *r, char **key)
{
    const unsigned char *h, *s;
    size_t n;
    int err = SIO_OK;

    if (!cd__mp_take(r, 1, &h))
        return SIO_EPARSE;
    if (*h >= 0xa0 && *h <= 0xbf) {
        n = *h & 0x1f;
    } else if (*h >= 0xd9 && *h <= 0xdb) {
        size_t w = cd__mp_fmt[*h - 0xc0].size;
        if (!cd__mp_take(r, w, &s))
            return SIO_EPARSE;
        n = (size_t)cd__mp_be(s, w);
    } else {
        return SIO_EPARSE;
    }
    if (!cd__mp_take(r, n, &s))
        return SIO_EPARSE;
    *key = cd__mp_str_copy(s, n, &err);
    return *key != NULL ? SIO_OK : err;
}

static int cd__mp_array(cd__mp_rd_t *r, int depth, size_t n, cJSON **out)
{
    cJSON *arr;

    if (depth + 1 > CD_MP_MAX_DEPTH)
        return SIO_ETOOBIG;
    if (n > cd__mp_left(r)) /* every element takes at least one byte */
        return SIO_EPARSE;
    arr = cJSON_CreateArray();
    if (arr == NULL)
        return SIO_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        cJSON *v = NULL;
        int rc = cd__mp_value(r, depth + 1, &v);
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

static int cd__mp_map(cd__mp_rd_t *r, int depth, size_t n, cJSON **out)
{
    cJSON *obj;

    if (depth + 1 > CD_MP_MAX_DEPTH)
        return SIO_ETOOBIG;
    if (n > cd__mp_left(r) / 2) /* every entry takes at least two bytes */
        return SIO_EPARSE;
    obj = cJSON_CreateObject();
    if (obj == NULL)
        return SIO_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char *key = NULL;
        cJSON *v = NULL;
        int rc = cd__mp_key(r, &key);
        if (rc == SIO_OK)
            rc = cd__mp_value(r, depth + 1, &v);
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
static int cd__mp_value(cd__mp_rd_t *r, int depth, cJSON **out)
{
    const unsigned char *h, *f = NULL, *pl;
    struct cd__mp_fmt fmt;
    uint64_t n = 0;

    *out = NULL;
    if (!cd__mp_take(r, 1, &h))
        return SIO_EPARSE;
    if (*h <= 0x7f || *h >= 0xe0) {
        *out = cJSON_CreateNumber(*h >= 0xe0 ? (double)(int8_t)*h : (double)*h);
        return *out != NULL ? SIO_OK : SIO_ENOMEM;
    }
    if (*h <= 0x8f)
        return cd__mp_map(r, depth, *h & 0x0f, out);
    if (*h <= 0x9f)
        return cd__mp_array(r, depth, *h & 0x0f, out);
    if (*h <= 0xbf)
        return cd__mp_str(r, *h & 0x1f, out);

    fmt = cd__mp_fmt[*h - 0xc0];
    if (fmt.kind != CD_MP_FIXEXT && fmt.size > 0) {
        if (!cd__mp_take(r, fmt.size, &f))
            return SIO_EPARSE;
        n = cd__mp_be(f, fmt.size);
    }
    switch (fmt.kind) {
    case CD_MP_NIL:
        *out = cJSON_CreateNull();
        break;
    case CD_MP_FALSE:
        *out = cJSON_CreateFalse();
        break;
    case CD_MP_TRUE:
        *out = cJSON_CreateTrue();
        break;
    case CD_MP_UINT:
        *out = cJSON_CreateNumber((double)n);
        break;
    case CD_MP_INT:
        *out = cJSON_CreateNumber((double)cd__mp_be_signed(f, fmt.size));
        break;
    case CD_MP_FLOAT:
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
    case CD_MP_STR:
        return cd__mp_str(r, (size_t)n, out);
    case CD_MP_BIN:
        if (!cd__mp_take(r, (size_t)n, &pl))
            return SIO_EPARSE;
        *out = cd__mp_placeholder(cd__mp_bins_add(r->bins, pl, (size_t)n));
        break;
    case CD_MP_ARRAY:
        return cd__mp_array(r, depth, (size_t)n, out);
    case CD_MP_MAP:
        return cd__mp_map(r, depth, (size_t)n, out);
    case CD_MP_EXT:
    case CD_MP_FIXEXT: {
        const unsigned char *t;
        size_t len = fmt.kind == CD_MP_EXT ? (size_t)n : fmt.size;
        if (!cd__mp_take(r, 1, &t) || !cd__mp_take(r, len, &pl))
            return SIO_EPARSE;
        return cd__mp_ext(r, depth, *h, (int8_t)*t, pl, len, out);
    }
    default:
        return SIO_EPARSE; /* 0xc1, never used */
    }
    return *out != NULL ? SIO_OK : SIO_ENOMEM;
}

/* Whole message -> one tree; trailing bytes are an error as in notepack. On failure the
 * buffers this call appended are dropped again (cd_msgpack.h). */
int cd_mp_decode(const void *buf, size_t len, cd_mp_bins_t *bins, cJSON **out)
{
    cd__mp_rd_t r = {buf, len, 0, bins};
    size_t n0 = bins != NULL ? bins->n : 0;
    int rc;

    *out = NULL;
    if (bins == NULL)
        return SIO_EINVAL;
    if (buf == NULL || len == 0)
        return SIO_EPARSE;
    rc = cd__mp_value(&r, 0, out);
    if (rc == SIO_OK && (*out == NULL || r.pos != len))
        rc = SIO_EPARSE;
    if (rc != SIO_OK) {
        cJSON_Delete(*out);
        *out = NULL;
        cd__mp_bins_cut(bins, n0);
    }
    return rc;
}

/* ---------------------------------------------------------------- placeholders out */

/* Renumbers tree's placeholders from 0 and finds the run of bins they index: *lo its
 * first index, *count its length. bins NULL: any placeholder is an error. */
static int cd__mp_take_walk(cJSON *v, const cd_mp_bins_t *bins, size_t *lo, size_t *count)
{
    cJSON *c;

    if (cJSON_IsObject(v) && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "_placeholder"))) {
        cJSON *num = cJSON_GetObjectItemCaseSensitive(v, "num");
        size_t k;
        if (bins == NULL || !cJSON_IsNumber(num) || !(num->valuedouble >= 0) ||
            num->valuedouble >= (double)bins->n || num->valuedouble != floor(num->valuedouble))
            return SIO_EPARSE;
        k = (size_t)num->valuedouble;
        if (*count == 0)
            *lo = k;
        if (k != *lo + *count) /* cannot happen after cd_mp_decode: it numbers depth-first */
            return SIO_EPARSE;
        cJSON_SetNumberValue(num, (double)*count);
        (*count)++;
        return SIO_OK;
    }
    cJSON_ArrayForEach(c, v)
    {
        int rc = cd__mp_take_walk(c, bins, lo, count);
        if (rc != SIO_OK)
            return rc;
    }
    return SIO_OK;
}

/* Moves the run of buffers tree indexes into a new array; see cd_msgpack.h. */
int cd_mp_take_bins(cJSON *tree, cd_mp_bins_t *bins, sio_bin_t **att, size_t *n)
{
    size_t lo = 0, count = 0;
    int rc = cd__mp_take_walk(tree, bins, &lo, &count);

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

/* ---------------------------------------------------------------- packets */

/* What socket.io-client accepts as EVENT data: [name, ...] with a non-reserved string or
 * a finite number as name; anything else makes every client drop its connection. */

/* {type, data, nsp} -> a new EVENT packet owning data (detached from obj) and its bins. */
int cd_mp_packet_from_tree(cJSON *obj, cd_mp_bins_t *bins, cd_sio_packet_t **out)
{
    const cJSON *type, *nsp;
    cJSON *data;
    cd_sio_packet_t *p;
    int rc;

    *out = NULL;
    if (!cJSON_IsObject(obj))
        return SIO_EPARSE;
    type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    /* 5 (BINARY_EVENT) is what emitters of the socket.io 2 era wrote for binary args */
    if (type != NULL && !(cJSON_IsNumber(type) && (type->valuedouble == CD_SIO_EVENT ||
                                                   type->valuedouble == CD_SIO_BINARY_EVENT)))
        return SIO_EPARSE;
    nsp = cJSON_GetObjectItemCaseSensitive(obj, "nsp");
    if (nsp != NULL && !cJSON_IsString(nsp))
        return SIO_EPARSE;
    data = cJSON_GetObjectItemCaseSensitive(obj, "data");
    if (!cd_sio_event_name_ok(cJSON_IsArray(data) ? data->child : NULL))
        return SIO_EPARSE;
    p = cd_sio_packet_new(CD_SIO_EVENT, nsp != NULL ? nsp->valuestring : "/");
    p->data = cJSON_DetachItemViaPointer(obj, data);
    rc = cd_mp_take_bins(p->data, bins, &p->attach, &p->n_attach);
    if (rc != SIO_OK) {
        cd_sio_packet_free(p);
        return rc;
    }
    p->n_have = p->n_attach;
    *out = p;
    return SIO_OK;
}

/* ---------------------------------------------------------------- writer */

/* The packer's sink: w's buffer, doubled as needed through base_realloc so the memory
 * policy stays in alloc.c. -1 (the packer's error) only past SIZE_MAX / 2. */
static int cd__mp_out_write(void *ud, const char *buf, size_t len)
{
    cd_mp_writer_t *w = ud;

    if (len > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < len) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        w->data = base_realloc(w->data, cap);
        w->cap = cap;
    }
    memcpy(w->data + w->len, buf, len);
    w->len += len;
    return 0;
}

/* A packer over w: two pointers, set up per call so that cd_mp_writer_t (and this
 * header's users) need not see msgpack-c. */
static void cd__mp_packer(cd_mp_writer_t *w, msgpack_packer *pk)
{
    msgpack_packer_init(pk, w, cd__mp_out_write);
}

static int cd__mp_pk(int packer_rc)
{
    return packer_rc == 0 ? SIO_OK : SIO_ENOMEM;
}

void cd_mp_writer_init(cd_mp_writer_t *w)
{
    memset(w, 0, sizeof(*w));
}

/* Hands the bytes to *out on success, frees them on failure; returns rc. */
int cd_mp_writer_finish(cd_mp_writer_t *w, int rc, sio_bin_t *out)
{
    if (rc != SIO_OK) {
        base_free(w->data);
        out->data = NULL;
        out->len = 0;
    } else {
        out->data = w->data;
        out->len = w->len;
    }
    memset(w, 0, sizeof(*w));
    return rc;
}

int cd_mp_write_array(cd_mp_writer_t *w, size_t n)
{
    msgpack_packer pk;

    cd__mp_packer(w, &pk);
    return cd__mp_pk(msgpack_pack_array(&pk, n));
}

int cd_mp_write_map(cd_mp_writer_t *w, size_t n)
{
    msgpack_packer pk;

    cd__mp_packer(w, &pk);
    return cd__mp_pk(msgpack_pack_map(&pk, n));
}

static int cd__mp_str_pk(msgpack_packer *pk, const char *s)
{
    return cd__mp_pk(msgpack_pack_str_with_body(pk, s, strlen(s)));
}

int cd_mp_write_str(cd_mp_writer_t *w, const char *s)
{
    msgpack_packer pk;

    if (s == NULL)
        return SIO_EINVAL;
    cd__mp_packer(w, &pk);
    return cd__mp_str_pk(&pk, s);
}

int cd_mp_write_int(cd_mp_writer_t *w, int64_t v)
{
    msgpack_packer pk;

    cd__mp_packer(w, &pk);
    return cd__mp_pk(msgpack_pack_int64(&pk, v));
}

int cd_mp_write_bool(cd_mp_writer_t *w, int v)
{
    msgpack_packer pk;

    cd__mp_packer(w, &pk);
    return cd__mp_pk(v ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
}

int cd_mp_write_strs(cd_mp_writer_t *w, const char *const *v, size_t n)
{
    int rc = cd_mp_write_array(w, n);

    for (size_t i = 0; i < n && rc == SIO_OK; i++)
        rc = cd_mp_write_str(w, v[i]);
    return rc;
}

/* notepack's number rule: integral values as the smallest int form (msgpack-c picks the
 * same forms), float64 otherwise. We also use float64 beyond 2^64, where notepack's own
 * int path wraps around. */
static int cd__mp_number(msgpack_packer *pk, double d)
{
    if (isfinite(d) && d == trunc(d)) {
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0)
            return cd__mp_pk(msgpack_pack_int64(pk, (int64_t)d));
        if (d > 0 && d < 18446744073709551616.0)
            return cd__mp_pk(msgpack_pack_uint64(pk, (uint64_t)d));
    }
    return cd__mp_pk(msgpack_pack_double(pk, d));
}

/* If v is a placeholder, *bin is its buffer (or NULL with *rc SIO_EINVAL when its num does
 * not index bins); returns 0 for any other value. Same test as socket.io-parser. */
static int cd__mp_is_placeholder(const cJSON *v, const sio_bin_t *bins, size_t n_bins,
                                 const sio_bin_t **bin, int *rc)
{
    const cJSON *num;
    double k;

    if (!cJSON_IsObject(v) || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "_placeholder")))
        return 0;
    num = cJSON_GetObjectItemCaseSensitive(v, "num");
    k = cJSON_IsNumber(num) ? num->valuedouble : -1;
    if (!(k >= 0 && k < (double)n_bins && k == floor(k))) {
        *rc = SIO_EINVAL;
        *bin = NULL;
    } else {
        *rc = SIO_OK;
        *bin = &bins[(size_t)k];
    }
    return 1;
}

/* Packs v found at nesting depth (containers around it). */
static int cd__mp_json(msgpack_packer *pk, const cJSON *v, const sio_bin_t *bins, size_t n_bins,
                       int depth)
{
    const cJSON *c;
    const sio_bin_t *bin;
    size_t n = 0;
    int rc = SIO_OK;

    if (v == NULL)
        return SIO_EINVAL;
    switch (v->type & 0xff) {
    case cJSON_False:
        return cd__mp_pk(msgpack_pack_false(pk));
    case cJSON_True:
        return cd__mp_pk(msgpack_pack_true(pk));
    case cJSON_NULL:
        return cd__mp_pk(msgpack_pack_nil(pk));
    case cJSON_Number:
        return cd__mp_number(pk, v->valuedouble);
    case cJSON_String:
        return v->valuestring != NULL ? cd__mp_str_pk(pk, v->valuestring) : SIO_EINVAL;
    case cJSON_Array:
    case cJSON_Object:
        break;
    default:
        return SIO_EINVAL; /* raw or invalid: no msgpack meaning */
    }
    if (cd__mp_is_placeholder(v, bins, n_bins, &bin, &rc)) {
        if (rc != SIO_OK)
            return rc;
        rc = cd__mp_pk(msgpack_pack_bin(pk, bin->len));
        if (rc == SIO_OK && bin->len > 0)
            rc = cd__mp_pk(msgpack_pack_bin_body(pk, bin->data, bin->len));
        return rc;
    }
    if (depth + 1 > CD_MP_MAX_DEPTH)
        return SIO_ETOOBIG;
    cJSON_ArrayForEach(c, v)
    {
        n++;
    }
    if (cJSON_IsArray(v))
        rc = cd__mp_pk(msgpack_pack_array(pk, n));
    else
        rc = cd__mp_pk(msgpack_pack_map(pk, n));
    cJSON_ArrayForEach(c, v)
    {
        if (rc != SIO_OK)
            break;
        if (cJSON_IsObject(v))
            rc = c->string != NULL ? cd__mp_str_pk(pk, c->string) : SIO_EINVAL;
        if (rc == SIO_OK)
            rc = cd__mp_json(pk, c, bins, n_bins, depth + 1);
    }
    return rc;
}

int cd_mp_write_json(cd_mp_writer_t *w, const cJSON *v, const sio_bin_t *bins, size_t n_bins,
                     int depth)
{
    msgpack_packer pk;

    cd__mp_packer(w, &pk);
    return cd__mp_json(&pk, v, bins, n_bins, depth);
}

/* {type:2, data, nsp} with p's attachments as the bins. */
int cd_mp_write_packet(cd_mp_writer_t *w, const cd_sio_packet_t *p, int depth)
{
    int rc;

    if (p == NULL || p->nsp == NULL || !cJSON_IsArray(p->data) ||
        (p->type != CD_SIO_EVENT && p->type != CD_SIO_BINARY_EVENT) ||
        (p->n_attach > 0 && p->attach == NULL))
        return SIO_EINVAL;
    rc = cd_mp_write_map(w, 3);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(w, "type");
    if (rc == SIO_OK)
        rc = cd_mp_write_int(w, CD_SIO_EVENT);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(w, "data");
    if (rc == SIO_OK)
        rc = cd_mp_write_json(w, p->data, p->attach, p->n_attach, depth + 1);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(w, "nsp");
    if (rc == SIO_OK)
        rc = cd_mp_write_str(w, p->nsp);
    return rc;
}

/* One tree, one message: *out owns the bytes on SIO_OK, is {NULL, 0} otherwise. */
int cd_mp_encode(const cJSON *v, const sio_bin_t *bins, size_t n_bins, sio_bin_t *out)
{
    cd_mp_writer_t w;

    if (out == NULL)
        return SIO_EINVAL;
    cd_mp_writer_init(&w);
    return cd_mp_writer_finish(&w, cd_mp_write_json(&w, v, bins, n_bins, 0), out);
}
