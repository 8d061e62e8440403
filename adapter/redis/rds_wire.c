/* rds_wire.c -- Redis wire formats of @socket.io/redis-adapter 8.x (see rds_wire.h).
 *
 * Decoding runs in two steps. First the whole payload becomes one cJSON tree (msgpack by
 * the codec's reader, cd_msgpack.h; JSON by cJSON) with every bin value replaced by a
 * placeholder and its bytes appended to one list, in depth-first order. Then the fields are
 * picked out of the tree; the subtree we keep for delivery (packet.data, an ack argument)
 * takes its own buffers out of the list (cd_mp_take_bins) and its placeholders are
 * renumbered from 0. Depth-first numbering makes this a contiguous slice, so a bin that sat
 * in an ignored field never aliases a kept one.
 *
 * Encoding writes the envelope with the codec's writer (msgpack) or prints a small cJSON
 * object once (JSON). Key order follows the Node adapter so captures compare byte for
 * byte.
 */
#include "rds_wire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base_alloc.h"
#include "cd_utf8.h"

#define RDS_JS_MAX_SAFE 9007199254740992.0 /* 2^53: integers a JS peer counts exactly */

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

/* ---------------------------------------------------------------- JSON payloads */

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
    m = cd_utf8_repair(buf, len, NULL, &changed);
    text = base_malloc(m + 1);
    cd_utf8_repair(buf, len, (unsigned char *)text, &changed);
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

/* ---------------------------------------------------------------- options on the wire */

/* {rooms, except, flags:{volatile?, compress?, timeout?}} as the Node adapter's rawOpts. */
static int rds__write_opts(cd_mp_writer_t *w, const adp_opts_t *o, int64_t timeout_ms)
{
    size_t nf =
        ((o->flags & ADP_VOLATILE) != 0) + ((o->flags & ADP_NOCOMPRESS) != 0) + (timeout_ms >= 0);
    int rc;

    if ((o->n_rooms > 0 && o->rooms == NULL) || (o->n_except > 0 && o->except == NULL) ||
        (o->flags & ADP_LOCAL))
        return SIO_EINVAL;
    rc = cd_mp_write_map(w, 3);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(w, "rooms");
    if (rc == SIO_OK)
        rc = cd_mp_write_strs(w, o->rooms, o->n_rooms);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(w, "except");
    if (rc == SIO_OK)
        rc = cd_mp_write_strs(w, o->except, o->n_except);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(w, "flags");
    if (rc == SIO_OK)
        rc = cd_mp_write_map(w, nf);
    if (rc == SIO_OK && (o->flags & ADP_VOLATILE)) {
        rc = cd_mp_write_str(w, "volatile");
        if (rc == SIO_OK)
            rc = cd_mp_write_bool(w, 1);
    }
    if (rc == SIO_OK && (o->flags & ADP_NOCOMPRESS)) {
        rc = cd_mp_write_str(w, "compress");
        if (rc == SIO_OK)
            rc = cd_mp_write_bool(w, 0);
    }
    if (rc == SIO_OK && timeout_ms >= 0) {
        rc = cd_mp_write_str(w, "timeout");
        if (rc == SIO_OK)
            rc = cd_mp_write_int(w, timeout_ms);
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
 * on SIO_OK, is {NULL, 0} on SIO_EINVAL / SIO_ETOOBIG (rds_wire.h lists the cases). */
int rds_encode_broadcast(const char *uid, const cd_sio_packet_t *p, const adp_opts_t *opts,
                         const char *offset, sio_bin_t *out)
{
    cd_mp_writer_t w;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    cd_mp_writer_init(&w);
    if (uid == NULL || p == NULL || opts == NULL)
        return cd_mp_writer_finish(&w, SIO_EINVAL, out);
    rc = cd_mp_write_array(&w, offset != NULL ? 4 : 3);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(&w, uid);
    if (rc == SIO_OK)
        rc = cd_mp_write_packet(&w, p, 1);
    if (rc == SIO_OK)
        rc = rds__write_opts(&w, opts, -1);
    if (rc == SIO_OK && offset != NULL)
        rc = cd_mp_write_str(&w, offset);
    return cd_mp_writer_finish(&w, rc, out);
}

/* Any publisher's [uid, packet, opts(, offset)] -> *b (owned by the caller). On error *b
 * is zeroed and nothing is left allocated. */
int rds_decode_broadcast(const void *buf, size_t len, rds_broadcast_t *b)
{
    cd_mp_bins_t bins = {0};
    cJSON *root = NULL, *uid, *pkt, *opts, *off;
    int rc;

    memset(b, 0, sizeof(*b));
    b->opts.timeout_ms = -1;
    rc = cd_mp_decode(buf, len, &bins, &root);
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
    rc = cd_mp_packet_from_tree(pkt, &bins, &b->packet);
    if (rc == SIO_OK)
        rc = rds__opts(opts, &b->opts);
    if (rc == SIO_OK && cJSON_IsString(off))
        b->offset = base_strdup(off->valuestring);
done:
    cJSON_Delete(root);
    cd_mp_bins_free(&bins);
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

/* Detaches root[key] into m->data with its buffers (absent: data stays NULL). bins is
 * NULL for a JSON payload, which carries none. */
static int rds__msg_data(rds_msg_t *m, cJSON *root, const char *key, cd_mp_bins_t *bins)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);

    if (v == NULL)
        return SIO_OK;
    m->data = cJSON_DetachItemViaPointer(root, v);
    return cd_mp_take_bins(m->data, bins, &m->attach, &m->n_attach);
}

static int rds__request_fields(rds_msg_t *m, cJSON *root, cd_mp_bins_t *bins)
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
        return rds__msg_data(m, root, "data", bins);
    case RDS_REQ_BROADCAST:
        if (m->request_id == NULL || opts == NULL)
            return SIO_EPARSE;
        rc = cd_mp_packet_from_tree(cJSON_GetObjectItemCaseSensitive(root, "packet"), bins,
                                    &m->packet);
        return rc == SIO_OK ? rds__opts(opts, &m->opts) : rc;
    default:
        return SIO_EPARSE; /* 8 and 9 are responses */
    }
}

static int rds__response_fields(rds_msg_t *m, cJSON *root, cd_mp_bins_t *bins)
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
    rc = rds__msg_data(m, root, m->type == RDS_REQ_BROADCAST_ACK ? "packet" : "data", bins);
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
    cd_mp_bins_t bins = {0};
    cJSON *root = NULL;
    const cJSON *type;
    int from_json, rc;

    rds__msg_zero(m);
    if (buf == NULL || len == 0)
        return SIO_EPARSE;
    from_json = ((const unsigned char *)buf)[0] == '{';
    rc = from_json ? rds__json_decode(buf, len, &root) : cd_mp_decode(buf, len, &bins, &root);
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
        rc = response ? rds__response_fields(m, root, from_json ? NULL : &bins)
                      : rds__request_fields(m, root, from_json ? NULL : &bins);
done:
    cJSON_Delete(root);
    cd_mp_bins_free(&bins);
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

/* Request encoders: *out owns the bytes on SIO_OK, {NULL, 0} on error (rds_wire.h). */
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
    cd_mp_writer_t w;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    cd_mp_writer_init(&w);
    if (uid == NULL || request_id == NULL || p == NULL || opts == NULL)
        return cd_mp_writer_finish(&w, SIO_EINVAL, out);
    rc = cd_mp_write_map(&w, 5);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(&w, "uid");
    if (rc == SIO_OK)
        rc = cd_mp_write_str(&w, uid);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(&w, "requestId");
    if (rc == SIO_OK)
        rc = cd_mp_write_str(&w, request_id);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(&w, "type");
    if (rc == SIO_OK)
        rc = cd_mp_write_int(&w, RDS_REQ_BROADCAST);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(&w, "packet");
    if (rc == SIO_OK)
        rc = cd_mp_write_packet(&w, p, 1);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(&w, "opts");
    if (rc == SIO_OK)
        rc = rds__write_opts(&w, opts, timeout_ms);
    return cd_mp_writer_finish(&w, rc, out);
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
    cd_mp_writer_t w;
    int rc;

    if (out == NULL)
        return SIO_EINVAL;
    cd_mp_writer_init(&w);
    if (request_id == NULL || (n_bins > 0 && bins == NULL))
        return cd_mp_writer_finish(&w, SIO_EINVAL, out);
    rc = cd_mp_write_map(&w, arg != NULL ? 3 : 2);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(&w, "type");
    if (rc == SIO_OK)
        rc = cd_mp_write_int(&w, RDS_REQ_BROADCAST_ACK);
    if (rc == SIO_OK)
        rc = cd_mp_write_str(&w, "requestId");
    if (rc == SIO_OK)
        rc = cd_mp_write_str(&w, request_id);
    if (rc == SIO_OK && arg != NULL) {
        rc = cd_mp_write_str(&w, "packet");
        if (rc == SIO_OK)
            rc = cd_mp_write_json(&w, arg, bins, n_bins, 1);
    }
    return cd_mp_writer_finish(&w, rc, out);
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
