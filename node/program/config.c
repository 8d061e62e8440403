/* config.c -- the settings table of the standalone node and its three readers:
 * environment, command line, and the documentation writers (--help, README table).
 *
 * Defaults are written in the table as text and go through the same parser as a
 * flag's value, so what --help shows is exactly what the node starts with.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "base_alloc.h"
#include "sockeye_redis.h"

typedef enum cfg_type {
    CFG_INT,    /* int, decimal, within [min, max] */
    CFG_UINT,   /* unsigned, decimal, within [min, max] */
    CFG_SIZE,   /* size_t, decimal */
    CFG_STRING, /* char * (owned) */
    CFG_BOOL,   /* int 0/1: on/off, true/false, yes/no, 1/0 */
    CFG_LIST,   /* app_strlist_t: comma separated, flag repeatable */
    CFG_MASK,   /* int: comma separated names from choices, OR-ed */
    CFG_ENUM,   /* int: one name from choices */
} cfg_type_t;

#define CFG_NULLABLE 1 /* CFG_STRING: empty text means "unset" (NULL) */

typedef struct cfg_choice {
    const char *name;
    int value;
} cfg_choice_t;

/* Extra validation of one value (one list item for CFG_LIST). 0 = fine, else
 * nonzero with the reason written to err. */
typedef int (*cfg_check_fn)(const char *value, char *err, size_t errlen);

/* One setting. One per row of the table below. */
typedef struct cfg_entry {
    const char *flag; /* long flag without the dashes */
    const char *env;  /* environment variable */
    cfg_type_t type;
    const char *def;             /* default as text, NULL = unset */
    const char *metavar;         /* value placeholder in the help */
    const char *help;            /* one sentence or two */
    size_t offset;               /* of the field in app_node_config_t */
    long long min, max;          /* CFG_INT/CFG_UINT range; both 0 = the type's range */
    const cfg_choice_t *choices; /* CFG_MASK/CFG_ENUM, NULL-terminated */
    cfg_check_fn check;          /* may be NULL */
    unsigned flags;              /* CFG_* bits */
} cfg_entry_t;

static int check_namespace(const char *v, char *err, size_t errlen);
static int check_path(const char *v, char *err, size_t errlen);
static int check_regex(const char *v, char *err, size_t errlen);
static int check_redis_url(const char *v, char *err, size_t errlen);
static int check_nonempty(const char *v, char *err, size_t errlen);
static int check_given(const char *v, char *err, size_t errlen);
static int check_event_queue(const char *v, char *err, size_t errlen);

static const cfg_choice_t transport_choices[] = {
    {"polling", SIO_TRANSPORT_POLLING},
    {"websocket", SIO_TRANSPORT_WEBSOCKET},
    {NULL, 0},
};

static const cfg_choice_t log_choices[] = {
    {"error", APP_LOG_ERROR},
    {"warn", APP_LOG_WARN},
    {"info", APP_LOG_INFO},
    {"debug", APP_LOG_DEBUG},
    {NULL, 0},
};

#define OFF(field) offsetof(app_node_config_t, field)

static const cfg_entry_t cfg_table[] = {
    {"host", "SOCKEYE_HOST", CFG_STRING, "0.0.0.0", "ADDR", "Address to listen on.", OFF(srv.host),
     0, 0, NULL, NULL, 0},
    {"port", "SOCKEYE_PORT", CFG_INT, "3000", "PORT", "TCP port to listen on; 0 picks a free one.",
     OFF(srv.port), 0, 65535, NULL, NULL, 0},
    {"path", "SOCKEYE_PATH", CFG_STRING, "/socket.io/", "PATH",
     "HTTP path of the Socket.IO endpoint.", OFF(srv.path), 0, 0, NULL, check_path, 0},
    {"ping-interval", "SOCKEYE_PING_INTERVAL", CFG_UINT, "25000", "MS",
     "Heartbeat interval (pingInterval).", OFF(srv.ping_interval_ms), 1, UINT_MAX, NULL, NULL, 0},
    {"ping-timeout", "SOCKEYE_PING_TIMEOUT", CFG_UINT, "20000", "MS",
     "Time allowed for a pong before the client is dropped (pingTimeout).",
     OFF(srv.ping_timeout_ms), 1, UINT_MAX, NULL, NULL, 0},
    {"upgrade-timeout", "SOCKEYE_UPGRADE_TIMEOUT", CFG_UINT, "10000", "MS",
     "Time allowed to finish a polling to websocket upgrade.", OFF(srv.upgrade_timeout_ms), 1,
     UINT_MAX, NULL, NULL, 0},
    {"connect-timeout", "SOCKEYE_CONNECT_TIMEOUT", CFG_UINT, "45000", "MS",
     "A connection that joined no namespace by then is closed.", OFF(srv.connect_timeout_ms), 1,
     UINT_MAX, NULL, NULL, 0},
    {"max-payload", "SOCKEYE_MAX_PAYLOAD", CFG_SIZE, "1000000", "BYTES",
     "Largest message or polling body accepted (maxHttpBufferSize).", OFF(srv.max_payload), 1, 0,
     NULL, NULL, 0},
    {"transports", "SOCKEYE_TRANSPORTS", CFG_MASK, "polling,websocket", "LIST",
     "Transports offered: polling, websocket or both.", OFF(srv.transports), 0, 0,
     transport_choices, NULL, 0},
    {"allow-upgrades", "SOCKEYE_ALLOW_UPGRADES", CFG_BOOL, "on", "BOOL",
     "Let polling clients upgrade to websocket.", OFF(srv.allow_upgrades), 0, 0, NULL, NULL, 0},
    {"cors-origins", "SOCKEYE_CORS_ORIGINS", CFG_STRING, NULL, "LIST",
     "Origins allowed by CORS: * or a comma list; unset = no CORS headers.", OFF(srv.cors_origins),
     0, 0, NULL, NULL, CFG_NULLABLE},
    {"cors-credentials", "SOCKEYE_CORS_CREDENTIALS", CFG_BOOL, "off", "BOOL",
     "Send Access-Control-Allow-Credentials.", OFF(srv.cors_credentials), 0, 0, NULL, NULL, 0},
    /* lws only negotiates; the engine deflates/inflates itself (codec/deflate.c), because
     * lws 4.1.6's own permessage-deflate asserts on inputs any client can send. */
    {"per-message-deflate", "SOCKEYE_PER_MESSAGE_DEFLATE", CFG_BOOL, "on", "BOOL",
     "Negotiate websocket permessage-deflate when the client offers it (messages >= 1 KB).",
     OFF(srv.per_message_deflate), 0, 0, NULL, NULL, 0},
    {"max-queue", "SOCKEYE_MAX_QUEUE", CFG_SIZE, "10000", "FRAMES",
     "Frames queued for one client before it is disconnected.", OFF(srv.max_queue), 1, 0, NULL,
     NULL, 0},
    /* Bytes too: 10,000 frames of 1 MB would be 10 GB held for one slow client. A replay
     * after recovery counts against neither bound (eio.h, EIO_SEND_BACKLOG). */
    {"max-queue-bytes", "SOCKEYE_MAX_QUEUE_BYTES", CFG_SIZE, "16777216", "BYTES",
     "Bytes of those frames queued for one client before it is disconnected.",
     OFF(srv.max_queue_bytes), 1, 0, NULL, NULL, 0},
    {"recovery", "SOCKEYE_RECOVERY", CFG_BOOL, "on", "BOOL",
     "Connection state recovery: a client that reconnects in time gets what it missed.",
     OFF(srv.recovery), 0, 0, NULL, NULL, 0},
    {"recovery-window", "SOCKEYE_RECOVERY_WINDOW", CFG_UINT, "120000", "MS",
     "How long a disconnected session stays recoverable (maxDisconnectionDuration).",
     OFF(srv.recovery_window_ms), 1, UINT_MAX, NULL, NULL, 0},
    {"recovery-skip-middlewares", "SOCKEYE_RECOVERY_SKIP_MIDDLEWARES", CFG_BOOL, "on", "BOOL",
     "Skip connection middlewares for a recovered session (always off with a JWT key: a "
     "recovered client presents its token again).",
     OFF(srv.recovery_skip_middlewares), 0, 0, NULL, NULL, 0},
    {"namespace", "SOCKEYE_NAMESPACE", CFG_LIST, "/chat", "NSP",
     "Namespaces served besides / (which always exists); repeatable or comma list.",
     OFF(namespaces), 0, 0, NULL, check_namespace, 0},
    {"namespace-pattern", "SOCKEYE_NAMESPACE_PATTERN", CFG_STRING, NULL, "REGEX",
     "POSIX extended regex: a client connecting to a matching name creates that namespace.",
     OFF(namespace_pattern), 0, 0, NULL, check_regex, CFG_NULLABLE},
    {"relay-events", "SOCKEYE_RELAY_EVENTS", CFG_LIST, "chat", "LIST",
     "Events (room, payload) relayed to the room except the sender; sender must be a member.",
     OFF(relay_events), 0, 0, NULL, NULL, 0},
    {"broadcast-events", "SOCKEYE_BROADCAST_EVENTS", CFG_LIST, "bcast", "LIST",
     "Events (room, payload) relayed to the room including the sender; sender must be a member.",
     OFF(broadcast_events), 0, 0, NULL, NULL, 0},
    {"join-event", "SOCKEYE_JOIN_EVENT", CFG_STRING, "join", "NAME",
     "Event (room) that joins a room, acked {ok:true}; empty disables it.", OFF(join_event), 0, 0,
     NULL, NULL, 0},
    {"leave-event", "SOCKEYE_LEAVE_EVENT", CFG_STRING, "leave", "NAME",
     "Event (room) that leaves a room, acked {ok:true}; empty disables it.", OFF(leave_event), 0, 0,
     NULL, NULL, 0},
    {"echo-event", "SOCKEYE_ECHO_EVENT", CFG_STRING, "echo", "NAME",
     "Event whose arguments are acked back unchanged; empty disables it.", OFF(echo_event), 0, 0,
     NULL, NULL, 0},
    {"ask-event", "SOCKEYE_ASK_EVENT", CFG_STRING, "ask", "NAME",
     "Event (name, ...args): the node emits name(...args) back asking for an ack and acks the "
     "caller with the answer, or {ok:false,error:\"timeout\"}; empty disables it.",
     OFF(ask_event), 0, 0, NULL, NULL, 0},
    {"ask-timeout", "SOCKEYE_ASK_TIMEOUT", CFG_UINT, "5000", "MS",
     "How long the ask event waits for the client's ack.", OFF(ask_timeout_ms), 1, UINT_MAX, NULL,
     NULL, 0},
    {"max-rooms-per-socket", "SOCKEYE_MAX_ROOMS_PER_SOCKET", CFG_UINT, "1000", "COUNT",
     "Rooms a socket may be in (its own id room aside) for its join event to succeed, "
     "else {ok:false,error:\"too many rooms\"}; 0 = no limit. Joins by the server or from a "
     "token are never refused, but count.",
     OFF(max_rooms_per_socket), 0, 0, NULL, NULL, 0},
    /* Authentication (README "Authentication"). No default is ever shown for a key:
     * they have none, and --help must not echo one taken from the environment. */
    {"jwt-secret", "SOCKEYE_JWT_SECRET", CFG_STRING, NULL, "SECRET",
     "HS256: every client must send auth.token, a JWT signed with this shared secret (32 or "
     "more random bytes). A flag shows in ps: prefer the variable or --jwt-secret-file.",
     OFF(jwt_secret), 0, 0, NULL, check_given, 0},
    {"jwt-secret-file", "SOCKEYE_JWT_SECRET_FILE", CFG_STRING, NULL, "FILE",
     "HS256 as --jwt-secret, the secret read from FILE (trailing newlines ignored).",
     OFF(jwt_secret_file), 0, 0, NULL, check_given, 0},
    {"jwt-public-key", "SOCKEYE_JWT_PUBLIC_KEY", CFG_STRING, NULL, "FILE",
     "RS256: every client must send auth.token, a JWT verified with this PEM public key "
     "(-----BEGIN PUBLIC KEY-----, RSA of 2048 bits or more).",
     OFF(jwt_public_key), 0, 0, NULL, check_given, 0},
    {"jwt-issuer", "SOCKEYE_JWT_ISSUER", CFG_STRING, NULL, "NAME",
     "With a JWT key: the token's iss claim must be exactly NAME; unset = not checked.",
     OFF(jwt_issuer), 0, 0, NULL, NULL, CFG_NULLABLE},
    {"jwt-audience", "SOCKEYE_JWT_AUDIENCE", CFG_STRING, NULL, "NAME",
     "With a JWT key: the token's aud claim (a string or an array) must name NAME; unset = not "
     "checked.",
     OFF(jwt_audience), 0, 0, NULL, NULL, CFG_NULLABLE},
    {"jwt-leeway", "SOCKEYE_JWT_LEEWAY", CFG_UINT, "30", "SECONDS",
     "Clock skew allowed when checking the token's exp and nbf claims.", OFF(jwt_leeway_s), 0, 3600,
     NULL, NULL, 0},
    {"www-dir", "SOCKEYE_WWW_DIR", CFG_STRING, "", "DIR",
     "Directory holding index.html for GET /; empty = the one the binary was built with.",
     OFF(www_dir), 0, 0, NULL, NULL, 0},
    {"drain-timeout", "SOCKEYE_DRAIN_TIMEOUT", CFG_UINT, "10000", "MS",
     "On SIGTERM/SIGINT, time allowed to close every client before exiting anyway.",
     OFF(drain_timeout_ms), 1, UINT_MAX, NULL, NULL, 0},
    {"redis", "SOCKEYE_REDIS", CFG_STRING, NULL, "URL",
     "Join the cluster behind this Redis: redis://[user:pass@]host[:port][/db] or "
     "unix:///path[?db=N]; unset = a single node.",
     OFF(redis_url), 0, 0, NULL, check_redis_url, CFG_NULLABLE},
    /* The same setting under the name Redis clients and the env convention use. */
    {"redis-url", "SOCKEYE_REDIS_URL", CFG_STRING, NULL, "URL", "Same as --redis.", OFF(redis_url),
     0, 0, NULL, check_redis_url, CFG_NULLABLE},
    {"redis-key-prefix", "SOCKEYE_REDIS_KEY_PREFIX", CFG_STRING, "sockeye", "PREFIX",
     "Prefix of the keys Sockeye keeps in Redis (node registry, sessions, streams).",
     OFF(redis_key_prefix), 0, 0, NULL, check_nonempty, 0},
    {"redis-channel-prefix", "SOCKEYE_REDIS_CHANNEL_PREFIX", CFG_STRING, "socket.io", "PREFIX",
     "Prefix of the pub/sub channels: the `key` of @socket.io/redis-adapter and -emitter, so "
     "Node servers and emitters with the same prefix share the cluster.",
     OFF(redis_channel_prefix), 0, 0, NULL, check_nonempty, 0},
    {"redis-request-timeout", "SOCKEYE_REDIS_REQUEST_TIMEOUT", CFG_UINT, "5000", "MS",
     "How long a cluster request (fetch sockets, all rooms, server-side emit, broadcast "
     "acks) waits for the other nodes.",
     OFF(redis_request_timeout_ms), 1, UINT_MAX, NULL, NULL, 0},
    {"queue-ack-timeout", "SOCKEYE_QUEUE_ACK_TIMEOUT", CFG_UINT, "30000", "MS",
     "Durable queues: a message not acknowledged by its consumer by then is delivered again.",
     OFF(queue_ack_timeout_ms), 1, UINT_MAX, NULL, NULL, 0},
    {"queue-max-deliveries", "SOCKEYE_QUEUE_MAX_DELIVERIES", CFG_UINT, "5", "COUNT",
     "Deliveries of one message before it moves to the dead-letter queue <queue>.dead.",
     OFF(queue_max_deliveries), 1, UINT_MAX, NULL, NULL, 0},
    {"queue-max-prefetch", "SOCKEYE_QUEUE_MAX_PREFETCH", CFG_UINT, "1000", "COUNT",
     "Largest prefetch a consumer may ask for (unacknowledged messages in flight; 100 when it "
     "names none).",
     OFF(queue_max_prefetch), 100, UINT_MAX, NULL, NULL, 0},
    {"queue-max-length", "SOCKEYE_QUEUE_MAX_LENGTH", CFG_SIZE, "1000000", "COUNT",
     "Messages a queue keeps at most: older ones are dropped (counted and logged), "
     "acknowledged or not.",
     OFF(queue_max_length), 1, 0, NULL, NULL, 0},
    {"queue-max-age", "SOCKEYE_QUEUE_MAX_AGE", CFG_SIZE, "604800000", "MS",
     "Age past which a message is dropped (counted and logged), acknowledged or not; 0 = no "
     "age bound.",
     OFF(queue_max_age_ms), 0, 0, NULL, NULL, 0},
    {"queue-max-payload", "SOCKEYE_QUEUE_MAX_PAYLOAD", CFG_SIZE, "1000000", "BYTES",
     "Largest queue message (its JSON text and buffers); a larger push is refused.",
     OFF(queue_max_payload), 1, 0, NULL, NULL, 0},
    {"queue-max-pushes-in-flight", "SOCKEYE_QUEUE_MAX_PUSHES_IN_FLIGHT", CFG_UINT, "10000",
     "COUNT",
     "Pushes of this node awaiting Redis at most: past it a push is refused at once "
     "({ok:false, error:\"busy\"}, counted) instead of queueing behind a Redis that cannot "
     "keep up.",
     OFF(queue_max_pushes_in_flight), 1, UINT_MAX, NULL, NULL, 0},
    {"event-queue", "SOCKEYE_EVENT_QUEUE", CFG_LIST, NULL, "EVENT=QUEUE",
     "A client's EVENT(...args, ack) is pushed to QUEUE as {event, args, sid, nsp, claims} "
     "and acked {ok:true, id} once stored; repeatable or comma list.",
     OFF(event_queues), 0, 0, NULL, check_event_queue, 0},
    {"log-level", "SOCKEYE_LOG_LEVEL", CFG_ENUM, "info", "LEVEL",
     "Logging on stderr: error, warn, info or debug.", OFF(log_level), 0, 0, log_choices, NULL, 0},
};

#define CFG_COUNT (sizeof(cfg_table) / sizeof(cfg_table[0]))

/* Flags that are requests rather than settings. */
static const struct {
    const char *flag;
    int result;
    const char *help;
} cfg_actions[] = {
    {"help", APP_CFG_HELP, "Print this help and exit."},
    {"help-markdown", APP_CFG_MARKDOWN, "Print the configuration table in markdown and exit."},
    {"version", APP_CFG_VERSION, "Print the version and exit."},
};

static const struct {
    const char *word;
    int value;
} bool_words[] = {
    {"1", 1}, {"on", 1}, {"true", 1}, {"yes", 1}, {"0", 0}, {"off", 0}, {"false", 0}, {"no", 0},
};

/* ---------------------------------------------------------------- helpers */

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void *field(app_node_config_t *cfg, const cfg_entry_t *e)
{
    return (char *)cfg + e->offset;
}

/* Pointer fields are moved with memcpy: the table also points at the library's
 * `const char *` members, and memcpy keeps that free of aliasing questions. */
static char *get_str(const app_node_config_t *cfg, const cfg_entry_t *e)
{
    char *s;

    memcpy(&s, (const char *)cfg + e->offset, sizeof(s));
    return s;
}

static void set_str(app_node_config_t *cfg, const cfg_entry_t *e, char *s)
{
    char *old = get_str(cfg, e);

    base_free(old);
    memcpy(field(cfg, e), &s, sizeof(s));
}

static void strlist_clear(app_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        base_free(l->v[i]);
    base_free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void strlist_push(app_strlist_t *l, const char *s, size_t len)
{
    l->v = base_realloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = base_strndup(s, len);
}

static int parse_bool(const char *v, int *out)
{
    for (size_t i = 0; i < sizeof(bool_words) / sizeof(bool_words[0]); i++) {
        if (strcasecmp(v, bool_words[i].word) == 0) {
            *out = bool_words[i].value;
            return 0;
        }
    }
    return -1;
}

static int parse_integer(const cfg_entry_t *e, const char *v, unsigned long long *out, char *err,
                         size_t errlen)
{
    char *end;
    unsigned long long n;
    long long lo = e->min, hi = e->max;

    if (e->type == CFG_SIZE && hi == 0)
        hi = LLONG_MAX;
    if (e->type == CFG_UINT && hi == 0)
        hi = UINT_MAX;
    if (e->type == CFG_INT && lo == 0 && hi == 0)
        hi = INT_MAX;
    /* strtoull accepts a sign and wraps negatives: refuse anything but digits. */
    if (v[0] < '0' || v[0] > '9') {
        errf(err, errlen, "--%s: \"%s\" is not a non-negative integer", e->flag, v);
        return SIO_EINVAL;
    }
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0') {
        errf(err, errlen, "--%s: \"%s\" is not a non-negative integer", e->flag, v);
        return SIO_EINVAL;
    }
    if (n < (unsigned long long)lo || n > (unsigned long long)hi) {
        errf(err, errlen, "--%s: %s is out of range (%lld..%lld)", e->flag, v, lo, hi);
        return SIO_EINVAL;
    }
    *out = n;
    return SIO_OK;
}

static int find_choice(const cfg_choice_t *c, const char *name, size_t len, int *value)
{
    for (; c->name != NULL; c++) {
        if (strlen(c->name) == len && strncasecmp(c->name, name, len) == 0) {
            *value = c->value;
            return 0;
        }
    }
    return -1;
}

static void choice_names(const cfg_choice_t *c, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (; c->name != NULL && used < len; c++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "", c->name);
}

/* Calls fn on each trimmed, non-empty item of a comma list; stops at its error. */
static int each_item(const char *v, int (*fn)(const char *item, size_t len, void *arg), void *arg)
{
    const char *p = v;

    while (*p != '\0') {
        const char *start, *end;
        int rc;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        start = p;
        while (*p != '\0' && *p != ',')
            p++;
        end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end > start && (rc = fn(start, (size_t)(end - start), arg)) != 0)
            return rc;
    }
    return 0;
}

struct mask_ctx {
    const cfg_entry_t *e;
    int mask;
    char *err;
    size_t errlen;
};

static int mask_item(const char *item, size_t len, void *arg)
{
    struct mask_ctx *m = arg;
    int value;
    char names[128];

    if (find_choice(m->e->choices, item, len, &value) != 0) {
        choice_names(m->e->choices, names, sizeof(names));
        errf(m->err, m->errlen, "--%s: unknown value \"%.*s\" (expected %s)", m->e->flag, (int)len,
             item, names);
        return SIO_EINVAL;
    }
    m->mask |= value;
    return 0;
}

struct list_ctx {
    const cfg_entry_t *e;
    app_strlist_t *out;
    char *err;
    size_t errlen;
};

static int list_item(const char *item, size_t len, void *arg)
{
    struct list_ctx *l = arg;

    strlist_push(l->out, item, len);
    if (l->e->check != NULL) {
        char msg[160];

        if (l->e->check(l->out->v[l->out->n - 1], msg, sizeof(msg)) != 0) {
            errf(l->err, l->errlen, "--%s: %s", l->e->flag, msg);
            return SIO_EINVAL;
        }
    }
    return 0;
}

/* Parses v into e's field. append: for lists, add to the current items instead of
 * replacing them. Leaves the field unchanged on error (lists keep earlier items). */
static int set_value(app_node_config_t *cfg, const cfg_entry_t *e, const char *v, int append,
                     char *err, size_t errlen)
{
    unsigned long long n;
    int b, rc;

    if (v == NULL && e->type != CFG_STRING) {
        /* Only strings may be unset; the table never asks for anything else. */
        errf(err, errlen, "--%s: a value is required", e->flag);
        return SIO_EINVAL;
    }
    switch (e->type) {
    case CFG_INT:
    case CFG_UINT:
    case CFG_SIZE:
        if ((rc = parse_integer(e, v, &n, err, errlen)) != SIO_OK)
            return rc;
        if (e->type == CFG_INT)
            *(int *)field(cfg, e) = (int)n;
        else if (e->type == CFG_UINT)
            *(unsigned *)field(cfg, e) = (unsigned)n;
        else
            *(size_t *)field(cfg, e) = (size_t)n;
        return SIO_OK;
    case CFG_BOOL:
        if (parse_bool(v, &b) != 0) {
            errf(err, errlen, "--%s: \"%s\" is not a boolean (on/off, true/false, yes/no, 1/0)",
                 e->flag, v);
            return SIO_EINVAL;
        }
        *(int *)field(cfg, e) = b;
        return SIO_OK;
    case CFG_STRING:
        if (v == NULL || (v[0] == '\0' && (e->flags & CFG_NULLABLE))) {
            set_str(cfg, e, NULL);
            return SIO_OK;
        }
        if (e->check != NULL) {
            char msg[160];

            if (e->check(v, msg, sizeof(msg)) != 0) {
                errf(err, errlen, "--%s: %s", e->flag, msg);
                return SIO_EINVAL;
            }
        }
        set_str(cfg, e, base_strdup(v));
        return SIO_OK;
    case CFG_ENUM: {
        char names[128];

        if (find_choice(e->choices, v, strlen(v), &b) != 0) {
            choice_names(e->choices, names, sizeof(names));
            errf(err, errlen, "--%s: unknown value \"%s\" (expected %s)", e->flag, v, names);
            return SIO_EINVAL;
        }
        *(int *)field(cfg, e) = b;
        return SIO_OK;
    }
    case CFG_MASK: {
        struct mask_ctx m = {e, 0, err, errlen};

        if ((rc = each_item(v, mask_item, &m)) != 0)
            return rc;
        if (m.mask == 0) {
            errf(err, errlen, "--%s: at least one value is required", e->flag);
            return SIO_EINVAL;
        }
        *(int *)field(cfg, e) = m.mask;
        return SIO_OK;
    }
    case CFG_LIST: {
        app_strlist_t *l = field(cfg, e);
        app_strlist_t fresh = {NULL, 0};
        struct list_ctx c = {e, &fresh, err, errlen};

        if ((rc = each_item(v, list_item, &c)) != 0) {
            strlist_clear(&fresh);
            return rc;
        }
        if (!append)
            strlist_clear(l);
        for (size_t i = 0; i < fresh.n; i++)
            strlist_push(l, fresh.v[i], strlen(fresh.v[i]));
        strlist_clear(&fresh);
        return SIO_OK;
    }
    }
    return SIO_EINVAL;
}

/* ---------------------------------------------------------------- checks */

static int check_namespace(const char *v, char *err, size_t errlen)
{
    if (v[0] != '/') {
        errf(err, errlen, "namespace \"%s\" must start with /", v);
        return -1;
    }
    return 0;
}

static int check_path(const char *v, char *err, size_t errlen)
{
    if (v[0] != '/') {
        errf(err, errlen, "path \"%s\" must start with /", v);
        return -1;
    }
    return 0;
}

static int check_regex(const char *v, char *err, size_t errlen)
{
    regex_t re;
    int rc = regcomp(&re, v, REG_EXTENDED | REG_NOSUB);

    if (rc != 0) {
        char msg[100];

        regerror(rc, &re, msg, sizeof(msg));
        errf(err, errlen, "bad regular expression \"%s\": %s", v, msg);
        return -1;
    }
    regfree(&re);
    return 0;
}

/* A URL we would misread is refused here, before anything starts. */
/* EVENT=QUEUE, both non-empty, the queue a valid queue name (1-200 bytes, no control). */
static int check_event_queue(const char *v, char *err, size_t errlen)
{
    const char *eq = strchr(v, '=');
    size_t n;

    if (eq == NULL || eq == v || eq[1] == '\0') {
        errf(err, errlen, "'%s' is not EVENT=QUEUE", v);
        return -1;
    }
    n = strlen(eq + 1);
    for (const char *c = eq + 1; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            n = 0;
    if (n < 1 || n > 200) {
        errf(err, errlen, "'%s': the queue name must be 1 to 200 bytes, no control character", v);
        return -1;
    }
    return 0;
}

static int check_redis_url(const char *v, char *err, size_t errlen)
{
    char why[120];

    if (sio_redis_url_check(v, why, sizeof(why)) != SIO_OK) {
        errf(err, errlen, "bad Redis URL: %s", why);
        return -1;
    }
    return 0;
}

static int check_nonempty(const char *v, char *err, size_t errlen)
{
    if (v[0] == '\0') {
        errf(err, errlen, "an empty prefix is not allowed");
        return -1;
    }
    return 0;
}

/* Keys fail closed: an empty SOCKEYE_JWT_SECRET from a broken template must not
 * quietly turn authentication off. The value itself is never quoted. */
static int check_given(const char *v, char *err, size_t errlen)
{
    if (v[0] == '\0') {
        errf(err, errlen, "an empty value is not allowed (unset it to turn authentication off)");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- public */

void app_node_config_init(app_node_config_t *cfg)
{
    char err[256];

    memset(cfg, 0, sizeof(*cfg));
    /* The library's own defaults first: fields the table does not cover keep them. */
    sio_config_init(&cfg->srv);
    cfg->srv.host = NULL;
    cfg->srv.path = NULL;
    cfg->srv.cors_origins = NULL;
    for (size_t i = 0; i < CFG_COUNT; i++) {
        const cfg_entry_t *e = &cfg_table[i];

        if (e->def == NULL)
            continue;
        if (set_value(cfg, e, e->def, 0, err, sizeof(err)) != SIO_OK) {
            /* A bad default is a bug in the table above, caught by the unit test. */
            fprintf(stderr, "sockeye: bad built-in default: %s\n", err);
            abort();
        }
    }
}

void app_node_config_free(app_node_config_t *cfg)
{
    if (cfg->jwt_secret != NULL)
        OPENSSL_cleanse(cfg->jwt_secret, strlen(cfg->jwt_secret));
    for (size_t i = 0; i < CFG_COUNT; i++) {
        const cfg_entry_t *e = &cfg_table[i];

        if (e->type == CFG_STRING)
            set_str(cfg, e, NULL);
        else if (e->type == CFG_LIST)
            strlist_clear(field(cfg, e));
    }
}

static const char *real_getenv(const char *name)
{
    return getenv(name);
}

int app_node_config_env(app_node_config_t *cfg, const char *(*get)(const char *name), char *err,
                        size_t errlen)
{
    if (get == NULL)
        get = real_getenv;
    for (size_t i = 0; i < CFG_COUNT; i++) {
        const cfg_entry_t *e = &cfg_table[i];
        const char *v = get(e->env);
        char msg[256];

        if (v == NULL)
            continue;
        if (set_value(cfg, e, v, 0, msg, sizeof(msg)) != SIO_OK) {
            /* Name the variable: the flag in msg is not what the operator typed. */
            errf(err, errlen, "%s: %s", e->env, msg);
            return SIO_EINVAL;
        }
    }
    return SIO_OK;
}

static const cfg_entry_t *find_entry(const char *name, size_t len)
{
    for (size_t i = 0; i < CFG_COUNT; i++) {
        if (strlen(cfg_table[i].flag) == len && strncmp(cfg_table[i].flag, name, len) == 0)
            return &cfg_table[i];
    }
    return NULL;
}

int app_node_config_argv(app_node_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    unsigned char seen[CFG_COUNT] = {0};

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *name, *eq, *value = NULL;
        const cfg_entry_t *e;
        size_t len;
        int negated = 0, rc;

        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            errf(err, errlen, "unexpected argument \"%s\" (options start with --)", arg);
            return SIO_EINVAL;
        }
        name = arg + 2;
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        if (eq != NULL)
            value = eq + 1;

        for (size_t k = 0; k < sizeof(cfg_actions) / sizeof(cfg_actions[0]); k++) {
            if (strlen(cfg_actions[k].flag) == len && strncmp(cfg_actions[k].flag, name, len) == 0)
                return cfg_actions[k].result;
        }

        e = find_entry(name, len);
        if (e == NULL && len > 3 && strncmp(name, "no-", 3) == 0) {
            e = find_entry(name + 3, len - 3);
            if (e != NULL && e->type != CFG_BOOL)
                e = NULL;
            negated = e != NULL;
        }
        if (e == NULL) {
            errf(err, errlen, "unknown option --%.*s", (int)len, name);
            return SIO_EINVAL;
        }

        if (e->type == CFG_BOOL) {
            int b;

            if (negated) {
                if (value != NULL) {
                    errf(err, errlen, "--no-%s takes no value", e->flag);
                    return SIO_EINVAL;
                }
                value = "off";
            } else if (value == NULL) {
                /* `--recovery off` as well as a bare `--recovery`. */
                if (i + 1 < argc && parse_bool(argv[i + 1], &b) == 0)
                    value = argv[++i];
                else
                    value = "on";
            }
        } else if (value == NULL) {
            if (i + 1 >= argc) {
                errf(err, errlen, "--%s needs a value (%s)", e->flag, e->metavar);
                return SIO_EINVAL;
            }
            value = argv[++i];
        }

        rc = set_value(cfg, e, value, seen[e - cfg_table], err, errlen);
        if (rc != SIO_OK)
            return rc;
        seen[e - cfg_table] = 1;
    }
    return APP_CFG_RUN;
}

int app_node_config_check(const app_node_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->srv.transports == 0) {
        errf(err, errlen, "--transports: no transport enabled");
        return SIO_EINVAL;
    }
    if (cfg->srv.host == NULL || cfg->srv.host[0] == '\0') {
        errf(err, errlen, "--host: an address is required");
        return SIO_EINVAL;
    }
    int keys =
        (cfg->jwt_secret != NULL) + (cfg->jwt_secret_file != NULL) + (cfg->jwt_public_key != NULL);
    if (keys > 1) {
        errf(err, errlen,
             "--jwt-secret, --jwt-secret-file and --jwt-public-key are exclusive: "
             "give one key");
        return SIO_EINVAL;
    }
    /* Checks with no key to check against would read as "auth is on" and not be. */
    if (keys == 0 && (cfg->jwt_issuer != NULL || cfg->jwt_audience != NULL)) {
        errf(err, errlen,
             "--jwt-issuer and --jwt-audience need a key (--jwt-secret, "
             "--jwt-secret-file or --jwt-public-key)");
        return SIO_EINVAL;
    }
    return SIO_OK;
}

#define KEY_FILE_MAX (64 * 1024) /* a PEM RSA-16384 public key is about 3 KB */

/* Reads a small key file whole. NULL with the reason in err. */
static char *read_key_file(const char *flag, const char *path, size_t *len, char *err,
                           size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    size_t n;

    if (fp == NULL) {
        errf(err, errlen, "--%s: cannot read %s: %s", flag, path, strerror(errno));
        return NULL;
    }
    buf = base_malloc(KEY_FILE_MAX + 1);
    n = fread(buf, 1, KEY_FILE_MAX + 1, fp);
    if (ferror(fp) || n > KEY_FILE_MAX) {
        errf(err, errlen, ferror(fp) ? "--%s: cannot read %s" : "--%s: %s is over 64 KiB", flag,
             path);
        OPENSSL_cleanse(buf, KEY_FILE_MAX + 1);
        base_free(buf);
        fclose(fp);
        return NULL;
    }
    fclose(fp);
    buf[n] = '\0';
    *len = n;
    return buf;
}

int app_node_config_auth(app_node_config_t *cfg, app_jwt_t **out, char *err, size_t errlen)
{
    app_jwt_config_t jc = {
        .alg = APP_JWT_HS256,
        .issuer = cfg->jwt_issuer,
        .audience = cfg->jwt_audience,
        .leeway_s = cfg->jwt_leeway_s,
    };
    const char *flag;
    char *file = NULL, why[200];
    size_t len = 0;

    *out = NULL;
    if (cfg->jwt_secret != NULL) {
        flag = "jwt-secret";
        jc.key = cfg->jwt_secret;
        jc.key_len = strlen(cfg->jwt_secret);
    } else if (cfg->jwt_secret_file != NULL) {
        flag = "jwt-secret-file";
        if ((file = read_key_file(flag, cfg->jwt_secret_file, &len, err, errlen)) == NULL)
            return SIO_EINVAL;
        /* `echo secret > file` and Kubernetes secrets end with a newline nobody meant. */
        while (len > 0 && (file[len - 1] == '\n' || file[len - 1] == '\r'))
            len--;
        jc.key = file;
        jc.key_len = len;
    } else if (cfg->jwt_public_key != NULL) {
        flag = "jwt-public-key";
        if ((file = read_key_file(flag, cfg->jwt_public_key, &len, err, errlen)) == NULL)
            return SIO_EINVAL;
        jc.alg = APP_JWT_RS256;
        jc.key = file;
        jc.key_len = len;
    } else {
        return SIO_OK;
    }
    *out = app_jwt_new(&jc, why, sizeof(why));
    if (file != NULL) {
        OPENSSL_cleanse(file, KEY_FILE_MAX + 1);
        base_free(file);
    }
    if (*out == NULL) {
        if (cfg->jwt_public_key != NULL)
            errf(err, errlen, "--%s %s: %s", flag, cfg->jwt_public_key, why);
        else
            errf(err, errlen, "--%s: %s", flag, why);
        return SIO_EINVAL;
    }
    cfg->srv.recovery_skip_middlewares = 0;
    return SIO_OK;
}

static const char *shown_default(const cfg_entry_t *e)
{
    return (e->def == NULL || e->def[0] == '\0') ? "(none)" : e->def;
}

/* Writes text word-wrapped to HELP_WIDTH columns, continuation lines indented. */
#define HELP_WIDTH 79
#define HELP_INDENT 37

static void wrap(FILE *out, const char *text, size_t col)
{
    const char *p = text;

    while (*p != '\0') {
        size_t word = strcspn(p, " ");

        if (col > HELP_INDENT && col + 1 + word > HELP_WIDTH) {
            fprintf(out, "\n%*s", HELP_INDENT, "");
            col = HELP_INDENT;
        } else if (col > HELP_INDENT) {
            fputc(' ', out);
            col++;
        }
        fwrite(p, 1, word, out);
        col += word;
        p += word;
        while (*p == ' ')
            p++;
    }
    fputc('\n', out);
}

void app_node_config_help(FILE *out, const char *prog)
{
    fprintf(out,
            "Usage: %s [options]\n"
            "\n"
            "Sockeye: a Socket.IO v5 server. Every option can also be set by its environment\n"
            "variable; a flag given on the command line wins. Booleans take on/off, true/false,\n"
            "yes/no or 1/0, and --no-FLAG turns one off. Lists are comma separated.\n"
            "\n"
            "Options:\n",
            prog);
    for (size_t i = 0; i < CFG_COUNT; i++) {
        const cfg_entry_t *e = &cfg_table[i];
        char head[64];

        snprintf(head, sizeof(head), "--%s %s", e->flag, e->metavar);
        fprintf(out, "  %-34s ", head);
        wrap(out, e->help, HELP_INDENT);
        fprintf(out, "%*senv %s, default %s\n", HELP_INDENT, "", e->env, shown_default(e));
    }
    for (size_t i = 0; i < sizeof(cfg_actions) / sizeof(cfg_actions[0]); i++) {
        char head[64];

        snprintf(head, sizeof(head), "--%s", cfg_actions[i].flag);
        fprintf(out, "  %-34s ", head);
        wrap(out, cfg_actions[i].help, HELP_INDENT);
    }
    fprintf(out, "\nExit status: 0 after a clean shutdown, 1 on a runtime error or when the\n"
                 "drain timeout expires, 2 on a bad option.\n");
}

/* Markdown table cells: a literal '|' would end the cell. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s, out);
    }
}

void app_node_config_markdown(FILE *out)
{
    fputs("| flag | environment | default | description |\n", out);
    fputs("|---|---|---|---|\n", out);
    for (size_t i = 0; i < CFG_COUNT; i++) {
        const cfg_entry_t *e = &cfg_table[i];

        fprintf(out, "| `--%s %s` | `%s` | ", e->flag, e->metavar, e->env);
        if (e->def == NULL || e->def[0] == '\0') {
            fputs("(none)", out);
        } else {
            fputc('`', out);
            md_cell(out, e->def);
            fputc('`', out);
        }
        fputs(" | ", out);
        md_cell(out, e->help);
        fputs(" |\n", out);
    }
}
