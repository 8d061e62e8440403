/* eio_ws_send.c -- the WebSocket transport, sending side: data frames framed and
 * compressed here, flushed straight into the socket before the loop sleeps, and the
 * close handshake from our side.
 *
 * WebSocket frames are written by us, not by lws: the sessions that got frames during a
 * loop iteration are listed, and before the loop sleeps (uv_prepare) each one's queue
 * goes into its socket with one sendmsg, many frames at once, straight from the frames'
 * BASE_FRAME_PRE headroom. Only when the kernel says EAGAIN does lws get asked for
 * LWS_CALLBACK_SERVER_WRITEABLE (eio__ws_flush tells why and how this stays in order
 * with lws' own writes). permessage-deflate is done here too, with the server's one
 * deflate stream (cd_deflate_msg), for the reason eio_ws.c gives.
 */
#include "eio_lws.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "cd_deflate.h"
#include "cd_ws.h"

#define EIO_DEFLATE_MIN 1024 /* smaller WebSocket messages go uncompressed (ws' threshold) */

/* A frame's headroom takes the WebSocket header we write in place (eio__ws_bytes);
 * LWS_PRE is what lws_write itself may need there. */
_Static_assert(LWS_PRE <= BASE_FRAME_PRE, "frames need LWS_PRE bytes of headroom for lws_write");
_Static_assert(CD_WS_HDR_MAX <= BASE_FRAME_PRE, "frames need room for a WebSocket header");

/* lws' own opcode for a close frame: private in 4.1 (roles/ws/private-lib-roles-ws.h)
 * but fixed by the ABI, it is the gap between HTTP (3) and PING (5) in the public
 * enum lws_write_protocol. */
#define EIO_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)

/* Ends a WebSocket from its WRITEABLE callback: our own close frame, then -1.
 * Why not lws_close_reason() + return -1: Debian's lws 4.1.6 is built with _DEBUG,
 * whose libuv path calls close twice ("close_and_handled uv repeat test",
 * core-net/service.c) and the second call kills the connection before the polite
 * close frame is sent, so the client would see 1006. A frame we write ourselves is
 * already in the socket (or in lws' output buffer, which lws flushes before it
 * closes); with no reason stored, lws then closes without sending a second one. */
static int eio__ws_close_now(struct lws *wsi, unsigned short code)
{
    unsigned char buf[LWS_PRE + 2];

    buf[LWS_PRE] = (unsigned char)(code >> 8);
    buf[LWS_PRE + 1] = (unsigned char)(code & 0xff);
    lws_write(wsi, buf + LWS_PRE, 2, EIO_LWS_WRITE_CLOSE);
    return -1;
}

/* The bytes of one data frame as it goes to connection c: WebSocket header and
 * payload, contiguous, inside memory the frame owns (*len set). The header goes
 * into the headroom before the payload or before the frame's compressed form;
 * every recipient writes the same bytes there, and only on the loop thread. A
 * broadcast is compressed once: the deflate is the same for every connection, so
 * the first compressing recipient keeps the result on the frame (f->z). The server's
 * one deflate stream serves every connection: cd_deflate_msg starts each message from
 * a fresh window, which any client can inflate. */
static unsigned char *eio__ws_bytes(eio_server_t *srv, const eio_conn_t *c, base_frame_t *f,
                                    unsigned flags, size_t *len)
{
    unsigned char *data = base_frame_data(f);
    size_t h;

    if (c->pmd && !(flags & EIO_SEND_NOCOMPRESS) && f->len >= EIO_DEFLATE_MIN) {
        if (!f->z_tried) {
            f->z_tried = 1;
            f->z = cd_deflate_msg(&srv->zs, data, f->len, CD_WS_HDR_MAX, &f->z_len);
        }
        if (f->z != NULL) {
            h = cd_ws_header(f->z + CD_WS_HDR_MAX, f->binary, 1, f->z_len);
            *len = h + f->z_len;
            return f->z + CD_WS_HDR_MAX - h;
        }
    }
    h = cd_ws_header(data, f->binary, 0, f->len);
    *len = h + f->len;
    return data - h;
}

/* One data frame, framed here and handed to lws as raw bytes. Why not
 * lws_write(TEXT/BINARY): that runs every data frame through the connection's
 * extensions, and lws 4.1.6's permessage-deflate aborts on some messages and has
 * no per-message opt-out for EIO_SEND_NOCOMPRESS (see eio_server.c: eio__pmd_ext). lws still
 * parses what clients send, answers their pings and sends the close frames. A raw
 * write is copied by lws when the socket does not take it all, so the frame is
 * free to go as soon as this returns. Takes over the caller's reference to f. */
static int eio__ws_write(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, base_frame_t *f,
                         unsigned flags)
{
    size_t len;
    unsigned char *p = eio__ws_bytes(srv, c, f, flags, &len);
    int n = lws_write(wsi, p, len, LWS_WRITE_HTTP);

    base_frame_unref(f);
    return n < 0 ? -1 : 0;
}

/* Asks lws for one WRITEABLE callback; until it comes the flush leaves c alone.
 * Each request costs lws an epoll_ctl pair (libuv's uv_poll_start re-registers
 * the descriptor), so it is made only once per wait. */
static void eio__want_write(struct lws *wsi, eio_conn_t *c)
{
    if (!c->want_write) {
        c->want_write = 1;
        lws_callback_on_writable(wsi);
    }
}

enum { EIO_FLUSH_DONE, EIO_FLUSH_WAIT, EIO_FLUSH_FAIL };

#define EIO_FLUSH_IOV 64 /* frames per sendmsg */

/* Writes s's queued frames straight into the WebSocket's socket, many frames per
 * sendmsg, until the queue is empty (EIO_FLUSH_DONE) or the socket is full
 * (EIO_FLUSH_WAIT: WRITEABLE comes when it drains); EIO_FLUSH_FAIL when the socket
 * failed (the connection must go).
 *
 * Why not lws_write per frame from WRITEABLE: each frame then costs a send and two
 * epoll_ctl (lws starts and stops POLLOUT through uv_poll_start, which libuv turns
 * into a delete and a re-add of the descriptor). This costs one sendmsg per
 * connection and loop iteration, and POLLOUT only when the kernel says EAGAIN.
 *
 * Ordering with what lws writes itself on the connection (pongs, its close echo,
 * the tail of a write it buffered): we only write while lws holds nothing buffered,
 * and we never keep half a frame -- the unsent rest of a frame cut by the kernel is
 * handed to lws (lws_write raw copies it), which sends it before anything else. So
 * lws always sees the stream at a frame boundary. The descriptor carries the
 * WebSocket bytes as they are: the context has no TLS (eio_server_listen; TLS is
 * a proxy's job in front of the node). */
static int eio__ws_flush(eio_server_t *srv, struct lws *wsi, eio_conn_t *c, eio_session_t *s)
{
    struct iovec iov[EIO_FLUSH_IOV];
    int fd = lws_get_socket_fd(wsi);

    if (lws_partial_buffered(wsi) || fd < 0) {
        eio__want_write(wsi, c);
        return EIO_FLUSH_WAIT;
    }
    while (s->q.len > 0) {
        size_t n = s->q.len < EIO_FLUSH_IOV ? s->q.len : EIO_FLUSH_IOV, done;
        struct msghdr mh;
        ssize_t w;

        for (size_t i = 0; i < n; i++) {
            eio_qent_t *e = &s->q.buf[(s->q.head + i) & (s->q.cap - 1)];
            iov[i].iov_base = eio__ws_bytes(srv, c, e->f, e->flags, &iov[i].iov_len);
        }
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = iov;
        mh.msg_iovlen = n;
        do
            w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (w < 0 && errno == EINTR);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return EIO_FLUSH_FAIL;
            eio__want_write(wsi, c);
            return EIO_FLUSH_WAIT;
        }
        done = (size_t)w;
        for (size_t i = 0; i < n; i++) {
            base_frame_t *f;
            int rc;

            if (done >= iov[i].iov_len) {
                done -= iov[i].iov_len;
                base_frame_unref(eio__queue_pop(&s->q, NULL));
                continue;
            }
            if (done == 0) { /* the socket is full at a frame boundary */
                eio__want_write(wsi, c);
                return EIO_FLUSH_WAIT;
            }
            f = eio__queue_pop(&s->q, NULL);
            rc = lws_write(wsi, (unsigned char *)iov[i].iov_base + done, iov[i].iov_len - done,
                           LWS_WRITE_HTTP);
            base_frame_unref(f);
            if (rc < 0)
                return EIO_FLUSH_FAIL;
            if (lws_partial_buffered(wsi)) {
                /* lws asked for WRITEABLE itself; it comes once lws sent the rest */
                c->want_write = 1;
                return EIO_FLUSH_WAIT;
            }
            break; /* lws got it all out after all: go on */
        }
    }
    return EIO_FLUSH_DONE;
}

/* Can s's WebSocket (wsi, connection c) be written outside WRITEABLE right now? Not
 * once the client sent its close (lws answers it and sends nothing more, as before),
 * not once lws started a close of its own (a protocol error in what the client sent:
 * lws stored a close reason and sends the close frame from POLLOUT; no data may
 * follow it), not for a closing session (its last frames and the close frame go
 * from WRITEABLE, under the close deadline). */
static int eio__flush_ok(eio_session_t *s, struct lws *wsi, eio_conn_t *c)
{
    return c != NULL && c->s == s && c->role == EIO_ROLE_WS && !c->peer_closed &&
           s->state == EIO_S_OPEN && lws_get_close_length(wsi) == 0;
}

/* The loop is about to sleep: flush every WebSocket that got frames since (Redis'
 * handleClientsWithPendingWrites). A session queued during this run (none is: a
 * flush calls nothing that sends) would be taken in the same pass. */
static void eio__on_flush(uv_prepare_t *h)
{
    eio_server_t *srv = h->data;

    while (!base_list_empty(&srv->writes)) {
        eio_session_t *s = BASE_CONTAINER_OF(srv->writes.next, eio_session_t, wlink);
        struct lws *wsi = s->ws;
        eio_conn_t *c;

        base_list_remove(&s->wlink);
        if (wsi == NULL || s->q.len == 0)
            continue;
        c = lws_wsi_user(wsi);
        /* a session closing meanwhile was woken through WRITEABLE (eio__wake); a
         * connection with WRITEABLE on its way is flushed from there */
        if (!eio__flush_ok(s, wsi, c) || c->want_write)
            continue;
        if (eio__ws_flush(srv, wsi, c, s) == EIO_FLUSH_FAIL) {
            /* as a failed lws_write would: the connection closes, CLOSED tells the
             * session; lws does it from its own loop callback, not under us */
            lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
            srv->lws_kick = 1;
        }
    }
    if (srv->lws_kick) {
        srv->lws_kick = 0;
        if (srv->ctx != NULL && srv->phase < EIO_SRV_LWS_DOWN)
            lws_cancel_service(srv->ctx);
    }
    uv_prepare_stop(h);
}

/* Has the flush run before the loop next sleeps. */
static void eio__flush_arm(eio_server_t *srv)
{
    if (srv->handles_ready && srv->phase < EIO_SRV_HANDLES)
        uv_prepare_start(&srv->flush_prep, eio__on_flush);
}

/* lws 4.1 on libuv re-arms its timer (the one behind lws_set_timeout) only around
 * its own callbacks (lws_io_cb, its idle handle). A timeout set from anywhere else
 * -- our heartbeat timers, the application -- would wait for the next event on some
 * lws socket: for ever on a quiet server, so a peer that stopped reading was never
 * dropped. So before the loop sleeps the flush wakes lws once (lws_cancel_service:
 * an eventfd write, after which lws recomputes its timer). */
static void eio__lws_kick(eio_server_t *srv)
{
    srv->lws_kick = 1;
    eio__flush_arm(srv);
}

int eio__on_ws_writeable(eio_server_t *srv, struct lws *wsi, eio_conn_t *c)
{
    eio_session_t *s;
    int rc;

    if (c == NULL)
        return -1;
    c->want_write = 0;
    if (c->close_code)
        return eio__ws_close_now(wsi, c->close_code);
    s = c->s;
    if (c->role == EIO_ROLE_PROBE) {
        if (!c->probe_ack)
            return 0;
        c->probe_ack = 0;
        return eio__ws_write(srv, wsi, c, base_frame_from("3probe", 6, 0), 0);
    }
    if (c->role != EIO_ROLE_WS)
        return 0;
    if (s == NULL) /* orphaned: its session is gone */
        return eio__ws_close_now(wsi, LWS_CLOSE_STATUS_NORMAL);
    rc = eio__ws_flush(srv, wsi, c, s);
    if (rc == EIO_FLUSH_FAIL)
        return -1;
    if (rc == EIO_FLUSH_DONE && s->state != EIO_S_OPEN) {
        /* flushed after a server-side close: now close the socket */
        unsigned short code = strcmp(s->reason, "server shutting down") == 0
                                  ? LWS_CLOSE_STATUS_GOINGAWAY
                                  : LWS_CLOSE_STATUS_NORMAL;
        eio__detach(s, wsi, c);
        eio__session_maybe_free(s);
        return eio__ws_close_now(wsi, code);
    }
    return 0;
}

/* ---------------------------------------------------------------- wake hooks */

/* A WebSocket being closed by us says goodbye from its WRITEABLE callback, which a
 * peer that stopped reading never lets come: the socket, and whatever lws buffered
 * for it, would be held for ever. So a closing WebSocket gets as long as a silent
 * client gets before "ping timeout" (pingInterval + pingTimeout) and lws then drops
 * it (the reference's ws gives a closing socket a fixed 30 s the same way). */
static void eio__close_deadline(eio_server_t *srv, struct lws *wsi)
{
    uint64_t ms = (uint64_t)srv->cfg.ping_interval_ms + srv->cfg.ping_timeout_ms;
    uint64_t secs = (ms + 999) / 1000;

    lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, secs < INT_MAX ? (int)secs : INT_MAX);
    eio__lws_kick(srv);
}

void eio__ws_wake(eio_session_t *s)
{
    struct lws *wsi = s->ws;
    eio_server_t *srv = s->srv;
    eio_conn_t *c;

    /* once per loop iteration and recipient of a broadcast: touch nothing but s here,
     * the flush looks at the connection (eio__flush_ok) */
    if (s->state == EIO_S_OPEN) {
        if (s->wlink.next == &s->wlink) { /* not listed yet */
            base_list_push_back(&srv->writes, &s->wlink);
            eio__flush_arm(srv);
        }
        return;
    }
    eio__close_deadline(srv, wsi); /* flushing its last frames */
    c = lws_wsi_user(wsi);
    if (c != NULL)
        eio__want_write(wsi, c);
    else
        lws_callback_on_writable(wsi);
}

void eio__wake_close(eio_server_t *srv, struct lws *wsi, unsigned short code)
{
    eio_conn_t *c = lws_wsi_user(wsi);

    if (c != NULL)
        c->close_code = code;
    eio__close_deadline(srv, wsi);
    lws_callback_on_writable(wsi);
}

void eio__wake_probe_ack(struct lws *wsi)
{
    eio_conn_t *c = lws_wsi_user(wsi);

    if (c != NULL)
        c->probe_ack = 1;
    lws_callback_on_writable(wsi);
}
