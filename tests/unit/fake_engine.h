/* fake_engine.h -- a fake Engine.IO engine for unit tests of the layers above it.
 *
 * It defines every eio_* function the protocol layer calls (eio.h), so a test that
 * includes it links the protocol (and everything above: the standard application)
 * without the real engine: each "session" records the frames queued on it and closes
 * only when the test says so, which makes every ordering question (what was sent before
 * the CONNECT reply, how many times a frame is shared, which reason reached the
 * disconnect callback) directly observable. Timers run on a real libuv loop, bounded by
 * uv_run rounds. Include it from exactly one file of a test executable, after cmocka.h.
 */
#ifndef FAKE_ENGINE_H
#define FAKE_ENGINE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base_frame.h"
#include "base_random.h"
#include "eio.h"

/* ---------------------------------------------------------------- fake engine */

#define MAX_FRAMES 64

struct eio_session {
    eio_server_t *srv;
    char id[21];
    void *data;
    base_frame_t *frames[MAX_FRAMES];
    unsigned flags[MAX_FRAMES];
    size_t n_frames;
    size_t next_read;
    int closing;
    int closed;
    char reason[64];
    int refuse_sends;  /* next sends fail with SIO_ECLOSED */
    int volatile_drop; /* volatile sends dropped (SIO_EBUSY) */
};

struct eio_server {
    eio_callbacks_t cb;
    uv_loop_t *loop;
    eio_session_t *sessions[64];
    size_t n;
    int closed;
};

static eio_server_t *g_eio;

eio_server_t *eio_server_new(uv_loop_t *loop, const eio_config_t *cfg, const eio_callbacks_t *cb)
{
    eio_server_t *s = calloc(1, sizeof(*s));
    s->cb = *cb;
    s->loop = loop;
    g_eio = s;
    return s;
}

int eio_server_listen(eio_server_t *srv)
{
    return SIO_OK;
}

int eio_server_port(const eio_server_t *srv)
{
    return 4242;
}

size_t eio_server_session_count(const eio_server_t *srv)
{
    return srv->n;
}

static inline void fake_deliver_close(eio_session_t *s)
{
    if (s->closed)
        return;
    s->closed = 1;
    s->srv->cb.on_close(s->srv->cb.ud, s, s->reason);
}

void eio_server_close(eio_server_t *srv, void (*cb)(void *arg), void *arg)
{
    for (size_t i = 0; i < srv->n; i++) {
        if (!srv->sessions[i]->closed) {
            if (!srv->sessions[i]->closing)
                snprintf(srv->sessions[i]->reason, sizeof(srv->sessions[i]->reason), "%s",
                         "server shutting down");
            srv->sessions[i]->closing = 1;
            fake_deliver_close(srv->sessions[i]);
        }
    }
    srv->closed = 1;
    if (cb != NULL)
        cb(arg);
}

void eio_server_free(eio_server_t *srv)
{
    for (size_t i = 0; i < srv->n; i++) {
        eio_session_t *s = srv->sessions[i];
        for (size_t j = 0; j < s->n_frames; j++)
            base_frame_unref(s->frames[j]);
        free(s);
    }
    if (g_eio == srv)
        g_eio = NULL;
    free(srv);
}

int eio_session_send(eio_session_t *s, base_frame_t *f, unsigned flags)
{
    if (s->closing || s->refuse_sends)
        return SIO_ECLOSED;
    if ((flags & EIO_SEND_VOLATILE) && s->volatile_drop)
        return SIO_EBUSY;
    assert_true(s->n_frames < MAX_FRAMES);
    s->frames[s->n_frames] = base_frame_ref(f);
    s->flags[s->n_frames++] = flags;
    return SIO_OK;
}

void eio_session_close(eio_session_t *s, const char *reason)
{
    if (s->closing)
        return;
    s->closing = 1;
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
}

const char *eio_session_id(const eio_session_t *s)
{
    return s->id;
}

uint64_t eio_session_read_at(const eio_session_t *s)
{
    return 0; /* the fake client never answers a ping */
}

const char *eio_session_transport(const eio_session_t *s)
{
    return "websocket";
}

const char *eio_session_address(const eio_session_t *s)
{
    return "127.0.0.1";
}

const char *eio_session_url(const eio_session_t *s)
{
    return "/socket.io/?EIO=4&transport=websocket&name=J%C3%BCrgen+X&flag&x=1&x=2";
}

const char *eio_session_query(const eio_session_t *s)
{
    return "EIO=4&transport=websocket&name=J%C3%BCrgen+X&flag&x=1&x=2&bad=%zz";
}

/* The handshake query above as the engine decodes it (node/engine/eio_req.c): the
 * protocol only passes these on. */
static const char *const fake_query[][2] = {
    {"EIO", "4"},
    {"transport", "websocket"},
    {"name", "J\xc3\xbcrgen X"},
    {"flag", ""},
    {"x", "1"},
    {"bad", "%zz"},
};

const char *eio_session_query_get(const eio_session_t *s, const char *key)
{
    for (size_t i = 0; i < sizeof(fake_query) / sizeof(fake_query[0]); i++)
        if (strcmp(fake_query[i][0], key) == 0)
            return fake_query[i][1];
    return NULL;
}

int eio_session_query_next(const eio_session_t *s, size_t *it, const char **key, const char **value)
{
    if (*it >= sizeof(fake_query) / sizeof(fake_query[0]))
        return 0;
    *key = fake_query[*it][0];
    *value = fake_query[*it][1];
    (*it)++;
    return 1;
}

const cJSON *eio_session_headers(const eio_session_t *s)
{
    return NULL;
}

void *eio_session_data(const eio_session_t *s)
{
    return s->data;
}

void eio_session_set_data(eio_session_t *s, void *data)
{
    s->data = data;
}

/* ---------------------------------------------------------------- test helpers */

static inline eio_session_t *fake_open(void)
{
    eio_session_t *s = calloc(1, sizeof(*s));
    s->srv = g_eio;
    base_random_id(s->id);
    g_eio->sessions[g_eio->n++] = s;
    g_eio->cb.on_open(g_eio->cb.ud, s);
    return s;
}

static inline void fake_text(eio_session_t *s, const char *text)
{
    if (!s->closing)
        s->srv->cb.on_message(s->srv->cb.ud, s, text, strlen(text), 0);
}

static inline void fake_bin(eio_session_t *s, const void *b, size_t n)
{
    if (!s->closing)
        s->srv->cb.on_message(s->srv->cb.ud, s, b, n, 1);
}

/* The engine reports a close (as from the loop). */
static inline void fake_close(eio_session_t *s, const char *reason)
{
    if (!s->closing)
        snprintf(s->reason, sizeof(s->reason), "%s", reason);
    s->closing = 1;
    fake_deliver_close(s);
}

/* Delivers the on_close of a session the protocol asked to close. */
static inline void fake_flush(eio_session_t *s)
{
    if (s->closing)
        fake_deliver_close(s);
}

/* Next frame queued on s as a string ("<binary n>" prefix for binary), or NULL. */
static inline const char *fake_next(eio_session_t *s)
{
    static char buf[4096];
    if (s->next_read >= s->n_frames)
        return NULL;
    base_frame_t *f = s->frames[s->next_read++];
    if (f->binary) {
        size_t o = (size_t)snprintf(buf, sizeof(buf), "<bin");
        for (size_t i = 0; i < f->len && o + 4 < sizeof(buf); i++)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, " %02x", base_frame_data(f)[i]);
        snprintf(buf + o, sizeof(buf) - o, ">");
    } else {
        snprintf(buf, sizeof(buf), "%.*s", (int)f->len, (const char *)base_frame_data(f));
    }
    return buf;
}

static inline base_frame_t *fake_last_frame(eio_session_t *s)
{
    return s->n_frames ? s->frames[s->n_frames - 1] : NULL;
}

#define EXPECT_FRAME(s, str)                                                                       \
    do {                                                                                           \
        const char *got_ = fake_next(s);                                                           \
        assert_non_null(got_);                                                                     \
        assert_string_equal(got_, str);                                                            \
    } while (0)
#define EXPECT_NO_FRAME(s) assert_null(fake_next(s))

/* Runs the loop until pred() or rounds exhausted (each round blocks at most on the
 * nearest timer, so this is bounded by the timers the test armed). */
static inline void run_until(int (*pred)(void *), void *arg, int rounds)
{
    for (int i = 0; i < rounds && !pred(arg); i++)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
}

#endif
