/* eio_listen.c -- our own listening sockets, handed to lws one connection at a time.
 *
 * Why our own: lws 4.1 binds inside lws_create_context and reports a busy port only as
 * a failed context, and a context on a foreign loop can only be destroyed
 * asynchronously. So we bind (host may resolve to several addresses; port 0 picks one
 * port for all), watch the sockets with uv_poll, accept ourselves and hand each
 * connection to lws (lws_adopt_socket_vhost). The vhost is a server that never listens
 * (CONTEXT_PORT_NO_LISTEN_SERVER).
 */
#include "eio_lws.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define EIO_ACCEPT_BURST 64 /* accepts per readiness event, then back to the loop */

static void eio__on_accept(uv_poll_t *h, int status, int events);

static void eio__on_accept_resume(uv_timer_t *t)
{
    eio_server_t *srv = t->data;

    if (srv->phase != EIO_SRV_RUNNING)
        return;
    for (int i = 0; i < srv->n_listeners; i++)
        uv_poll_start(&srv->listeners[i].poll, UV_READABLE, eio__on_accept);
}

static void eio__on_accept(uv_poll_t *h, int status, int events)
{
    eio_server_t *srv = h->data;
    eio_listener_t *l = BASE_CONTAINER_OF(h, eio_listener_t, poll);

    if (status < 0 || srv->phase != EIO_SRV_RUNNING)
        return;
    for (int i = 0; i < EIO_ACCEPT_BURST; i++) {
        int one = 1;
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                /* the pending connection keeps the socket readable: without a
                 * pause this would spin until a descriptor frees up */
                fprintf(stderr, "sockeye: accept: %s; pausing 100 ms\n", strerror(errno));
                for (int k = 0; k < srv->n_listeners; k++)
                    uv_poll_stop(&srv->listeners[k].poll);
                uv_timer_start(&srv->accept_timer, eio__on_accept_resume, 100, 0);
            }
            break;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        lws_adopt_socket_vhost(srv->vh, fd); /* closes fd itself on failure */
    }
}

void eio__close_fds(eio_server_t *srv)
{
    for (int i = 0; i < srv->n_listeners; i++)
        close(srv->listeners[i].fd);
    srv->n_listeners = 0;
}

int eio__bind(eio_server_t *srv)
{
    const char *host = srv->host != NULL && srv->host[0] ? srv->host : "0.0.0.0";
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[16];
    int port = srv->port, has_v4 = 0, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "sockeye: cannot resolve %s: %s\n", host, gai_strerror(rc));
        return SIO_EIO;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next)
        has_v4 |= ai->ai_family == AF_INET;
    for (ai = res; ai != NULL && srv->n_listeners < EIO_MAX_LISTENERS; ai = ai->ai_next) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int one = 1, fd;

        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6) {
            /* "::" alone stays dual-stack; next to an IPv4 address it must not clash */
            int v6only = has_v4;
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
        }
        if (bind(fd, (struct sockaddr *)&ss, (socklen_t)ai->ai_addrlen) != 0 ||
            listen(fd, 511) != 0) {
            int e = errno;
            close(fd);
            if (e == EADDRINUSE || e == EACCES) {
                fprintf(stderr, "sockeye: cannot listen on %s:%d: %s\n", host, port, strerror(e));
                eio__close_fds(srv);
                freeaddrinfo(res);
                return SIO_EIO;
            }
            continue; /* e.g. ::1 on a host without IPv6 */
        }
        if (port == 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                 : ((struct sockaddr_in6 *)&ss)->sin6_port);
        srv->listeners[srv->n_listeners++].fd = fd;
    }
    freeaddrinfo(res);
    if (srv->n_listeners == 0) {
        fprintf(stderr, "sockeye: cannot listen on %s:%d\n", host, srv->port);
        return SIO_EIO;
    }
    srv->port = port;
    return SIO_OK;
}

static void eio__on_listener_closed(uv_handle_t *h)
{
    eio_listener_t *l = BASE_CONTAINER_OF((uv_poll_t *)h, eio_listener_t, poll);

    close(l->fd);
    l->fd = -1;
    eio__handle_closed(h->data);
}

void eio__listeners_start(eio_server_t *srv)
{
    for (int i = 0; i < srv->n_listeners; i++) {
        eio_listener_t *l = &srv->listeners[i];
        uv_poll_init(srv->loop, &l->poll, l->fd);
        l->poll.data = srv;
        uv_poll_start(&l->poll, UV_READABLE, eio__on_accept);
        srv->n_handles++;
    }
}

void eio__listeners_close(eio_server_t *srv)
{
    for (int i = 0; i < srv->n_listeners; i++) {
        uv_poll_stop(&srv->listeners[i].poll);
        uv_close((uv_handle_t *)&srv->listeners[i].poll, eio__on_listener_closed);
    }
    srv->n_listeners = 0;
}
