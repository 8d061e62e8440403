/* fuzz_rds_wire.c -- adapter/redis/rds_wire.c against arbitrary Redis payloads.
 *
 * Every input is decoded three ways (broadcast, request, response). Whatever decodes must
 * re-encode, decode again, and -- for broadcasts, which go msgpack to msgpack -- re-encode
 * to the very same bytes: a relay through Sockeye must not drift. Crashes, leaks and
 * sanitizer reports are the other findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base_alloc.h"
#include "rds_wire.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static void broadcast(const uint8_t *data, size_t size)
{
    rds_broadcast_t b, b2;
    adp_opts_t o;
    sio_bin_t e1, e2;

    if (rds_decode_broadcast(data, size, &b) != SIO_OK)
        return;
    check(b.packet != NULL && b.uid != NULL);
    rds_opts_view(&b.opts, &o);
    check(rds_encode_broadcast(b.uid, b.packet, &o, b.offset, &e1) == SIO_OK);
    check(rds_decode_broadcast(e1.data, e1.len, &b2) == SIO_OK);
    check(b2.packet->n_attach == b.packet->n_attach);
    rds_opts_view(&b2.opts, &o);
    check(rds_encode_broadcast(b2.uid, b2.packet, &o, b2.offset, &e2) == SIO_OK);
    check(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0);
    base_free(e1.data);
    base_free(e2.data);
    rds_broadcast_free(&b2);
    rds_broadcast_free(&b);
}

/* Re-encodes a decoded request with the encoder for its type; SIO_ENOTFOUND when there
 * is none for this form (legacy forms are answered, never sent; type 0 is never sent;
 * JSON cannot carry the buffers of a msgpack type 6). */
static int request_encode(const rds_msg_t *m, sio_bin_t *out)
{
    adp_opts_t o;
    const char *uid = m->uid != NULL ? m->uid : "emitter";

    rds_opts_view(&m->opts, &o);
    switch (m->type) {
    case RDS_REQ_ALL_ROOMS:
        return rds_encode_all_rooms_req(uid, m->request_id, out);
    case RDS_REQ_REMOTE_JOIN:
    case RDS_REQ_REMOTE_LEAVE:
        if (!m->has_opts)
            return SIO_ENOTFOUND;
        return rds_encode_sockets_rooms_req(m->type, uid, &o, (const char *const *)m->rooms,
                                            m->n_rooms, out);
    case RDS_REQ_REMOTE_DISCONNECT:
        if (!m->has_opts)
            return SIO_ENOTFOUND;
        return rds_encode_disconnect_req(uid, &o, m->close, out);
    case RDS_REQ_REMOTE_FETCH:
        return rds_encode_fetch_req(uid, m->request_id, &o, out);
    case RDS_REQ_SERVER_SIDE_EMIT:
        if (m->n_attach > 0)
            return SIO_ENOTFOUND;
        return rds_encode_server_emit_req(uid, m->request_id, m->data, out);
    case RDS_REQ_BROADCAST:
        return rds_encode_broadcast_ack_req(uid, m->request_id, m->packet, &o, m->opts.timeout_ms,
                                            out);
    default:
        return SIO_ENOTFOUND;
    }
}

static void request(const uint8_t *data, size_t size)
{
    rds_msg_t m, m2;
    sio_bin_t e;
    int rc;

    if (rds_decode_request(data, size, &m) != SIO_OK)
        return;
    check(m.type >= RDS_REQ_SOCKETS && m.type <= RDS_REQ_BROADCAST);
    rc = request_encode(&m, &e);
    /* a JSON request may nest deeper than our msgpack limit (cJSON allows 1000 levels) */
    check(rc == SIO_OK || rc == SIO_ENOTFOUND || (rc == SIO_ETOOBIG && data[0] == '{'));
    if (rc == SIO_OK) {
        check(rds_decode_request(e.data, e.len, &m2) == SIO_OK);
        check(m2.type == m.type && m2.n_rooms == m.n_rooms && m2.opts.n_rooms == m.opts.n_rooms);
        rds_msg_free(&m2);
        base_free(e.data);
    }
    rds_msg_free(&m);
}

static void response(const uint8_t *data, size_t size)
{
    rds_msg_t m, m2;
    sio_bin_t e;
    int rc = SIO_ENOTFOUND;

    if (rds_decode_response(data, size, &m) != SIO_OK)
        return;
    check(m.request_id != NULL);
    if (m.type == RDS_REQ_BROADCAST_CLIENT_COUNT)
        rc = rds_encode_client_count_res(m.request_id, (uint64_t)m.client_count, &e);
    else if (m.type == RDS_REQ_BROADCAST_ACK)
        rc = rds_encode_broadcast_ack_res(m.request_id, m.data, m.attach, m.n_attach, &e);
    else if (m.type == RDS_REQ_SERVER_SIDE_EMIT && m.n_attach == 0)
        rc = rds_encode_server_emit_res(m.request_id, m.data, &e);
    else if (m.has_rooms)
        rc = rds_encode_all_rooms_res(m.request_id, (const char *const *)m.rooms, m.n_rooms, &e);
    else if (m.sockets != NULL)
        rc = rds_encode_fetch_res(m.request_id, m.sockets, &e);
    check(rc == SIO_OK || rc == SIO_ENOTFOUND || (rc == SIO_ETOOBIG && data[0] == '{'));
    if (rc == SIO_OK) {
        check(rds_decode_response(e.data, e.len, &m2) == SIO_OK);
        check(strcmp(m2.request_id, m.request_id) == 0);
        rds_msg_free(&m2);
        base_free(e.data);
    }
    rds_msg_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    broadcast(data, size);
    request(data, size);
    response(data, size);
    return 0;
}
