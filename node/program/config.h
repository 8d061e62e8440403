/* config.h -- configuration of the standalone `sockeye` node.
 *
 * Every setting lives in ONE static const table (config.c): long flag, SOCKEYE_*
 * environment variable, type, default, help text and the offset of the field it
 * fills. Parsing, `--help` and the README table (`--help-markdown`) all walk that
 * table, so a setting cannot be documented in one place and forgotten in another
 * (nginx command tables, redis commands.def).
 *
 * Precedence: defaults < environment < command line. A list given on the command
 * line replaces the environment's list on its first occurrence and appends on the
 * following ones (`--namespace /a --namespace /b`).
 */
#ifndef APP_CONFIG_H
#define APP_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "jwt.h"
#include "sockeye.h"

typedef enum app_log_level {
    APP_LOG_ERROR = 0,
    APP_LOG_WARN = 1,
    APP_LOG_INFO = 2,
    APP_LOG_DEBUG = 3,
} app_log_level_t;

/* An owned list of owned strings. */
typedef struct app_strlist {
    char **v;
    size_t n;
} app_strlist_t;

/* Everything the node executable needs. One per process. Strings are owned
 * (base_strdup'd) and released by app_node_config_free. */
typedef struct app_node_config {
    sio_config_t srv;               /* handed to sio_server_new (its strings owned here) */
    app_strlist_t namespaces;       /* besides "/", which always exists */
    char *namespace_pattern;        /* POSIX ERE for dynamic namespaces, NULL = none */
    app_strlist_t relay_events;     /* (room, payload) -> room except the sender */
    app_strlist_t broadcast_events; /* (room, payload) -> room including the sender */
    char *join_event;
    char *leave_event;
    char *echo_event;
    char *ask_event; /* (event, ...args) -> asks the client, replies its answer */
    unsigned ask_timeout_ms;
    char *www_dir;                     /* "" = the directory the binary was built with */
    unsigned drain_timeout_ms;         /* graceful shutdown budget */
    char *redis_url;                   /* NULL = single node (no cluster) */
    char *redis_key_prefix;            /* keys Sockeye stores in Redis */
    char *redis_channel_prefix;        /* pub/sub channels (@socket.io/redis-adapter's key) */
    unsigned redis_request_timeout_ms; /* cluster requests */
    int log_level;                     /* app_log_level_t */
    char *jwt_secret;                  /* HS256 shared secret; NULL = none */
    char *jwt_secret_file;             /* HS256 secret read from this file; NULL = none */
    char *jwt_public_key;              /* RS256 PEM public key file; NULL = none */
    char *jwt_issuer;                  /* required "iss", NULL = not checked */
    char *jwt_audience;                /* required "aud", NULL = not checked */
    unsigned jwt_leeway_s;             /* clock skew allowed on exp/nbf */
    unsigned max_rooms_per_socket;     /* client joins beyond this are refused; 0 = no limit */
    /* Durable queues (sockeye_queue.h) */
    unsigned queue_ack_timeout_ms;  /* a delivery not acknowledged by then goes back */
    unsigned queue_max_deliveries;  /* deliveries before the dead-letter queue */
    unsigned queue_max_prefetch;    /* bound of a consumer's prefetch */
    unsigned queue_max_pushes_in_flight; /* pushes awaiting Redis at most */
    size_t queue_max_length;        /* messages a queue keeps */
    size_t queue_max_age_ms;        /* 0 = no age bound */
    size_t queue_max_payload;       /* bytes of one message */
    app_strlist_t event_queues;     /* "EVENT=QUEUE": client events pushed to a queue */
} app_node_config_t;

/* What the caller should do after parsing. Errors are the negative sio_err_t. */
enum {
    APP_CFG_RUN = 0,      /* start the node */
    APP_CFG_HELP = 1,     /* --help was given */
    APP_CFG_MARKDOWN = 2, /* --help-markdown was given */
    APP_CFG_VERSION = 3,  /* --version was given */
};

/* Fills cfg with the table's defaults. Every owned field is allocated, so
 * app_node_config_free is always safe afterwards. Cannot fail (OOM aborts). */
void app_node_config_init(app_node_config_t *cfg);

/* Releases every owned string and list; cfg may be re-initialised afterwards. */
void app_node_config_free(app_node_config_t *cfg);

/* Applies the SOCKEYE_* variables found through get (getenv when NULL; a function
 * so tests need not touch the process environment). On a bad value returns
 * SIO_EINVAL with a one-line explanation in err; cfg then holds the values parsed
 * so far and must still be freed. */
int app_node_config_env(app_node_config_t *cfg, const char *(*get)(const char *name), char *err,
                        size_t errlen);

/* Applies the command line (argv[0] is skipped). Accepts `--flag value`,
 * `--flag=value`, and for booleans `--flag`, `--no-flag`. Returns one of APP_CFG_*,
 * or SIO_EINVAL with the reason in err (unknown flag, missing or bad value). */
int app_node_config_argv(app_node_config_t *cfg, int argc, char **argv, char *err, size_t errlen);

/* Checks the combination of values (e.g. no transport at all). SIO_EINVAL + err. */
int app_node_config_check(const app_node_config_t *cfg, char *err, size_t errlen);

/* The token verifier the configuration asks for, built once at start-up: *out is
 * NULL when no JWT key is configured (authentication off), else a verifier the caller
 * frees with app_jwt_free. Reads --jwt-secret-file / --jwt-public-key now (secrets are
 * wiped from the read buffer afterwards). With a key it also turns
 * recovery_skip_middlewares off: a recovered client must present a valid token too,
 * and the token check is a middleware. Call after app_node_config_check. SIO_EINVAL
 * with a one-line reason in err (unreadable file, not a public key, empty secret ...);
 * the reason never quotes a secret. */
int app_node_config_auth(app_node_config_t *cfg, app_jwt_t **out, char *err, size_t errlen);

/* Writes the usage text listing every table entry, with env names and defaults. */
void app_node_config_help(FILE *out, const char *prog);

/* Writes the README configuration table (GitHub markdown) from the same table. */
void app_node_config_markdown(FILE *out);

#endif
