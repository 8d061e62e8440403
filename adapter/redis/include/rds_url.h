/* rds_url.h -- where a node finds Redis: redis:// and unix:// URLs, free of I/O.
 *
 * Operators pass one string (--redis-url / SOCKEYE_REDIS_URL); every Redis connection of a
 * node is made from the parsed form. The accepted shapes are the ones Redis clients agree
 * on (node-redis, ioredis, redis-py):
 *
 *   redis://[user:pass@ | :pass@]host[:port][/db]      host may be [ipv6]
 *   unix://[user:pass@ | :pass@]/abs/path[?db=N]        a unix socket (redis-py's form)
 *
 * Missing parts default to 127.0.0.1, 6379 and db 0, so "redis://" is a local Redis.
 * user and pass are percent-decoded ("p%40ss" is "p@ss"); a literal '@', ':' in the user or
 * any character a URL would not carry must be percent-encoded. Validation is strict: a URL
 * we would misread (two '@', a port out of range, a path that is not a db number, query
 * parameters we do not know) is refused with a one-line reason rather than guessed at,
 * because a node that silently talks to the wrong Redis splits the cluster.
 *
 * rediss:// is refused with its own message: hiredis 0.14 has no TLS.
 */
#ifndef RDS_URL_H
#define RDS_URL_H

#include <stddef.h>

#define RDS_URL_DEFAULT_HOST "127.0.0.1"
#define RDS_URL_DEFAULT_PORT 6379
#define RDS_URL_MAX_DB 1000000    /* far above any real `databases` setting */
#define RDS_URL_MAX_UNIX_PATH 107 /* sun_path less its NUL on Linux */

/* A parsed URL. Strings are owned (base_malloc) and released by rds_url_free. */
typedef struct rds_url {
    int is_unix; /* 1: path names a unix socket, host/port unused */
    char *host;  /* TCP host without brackets; never NULL for TCP */
    int port;    /* 1..65535 */
    char *path;  /* unix socket path, NULL for TCP */
    char *user;  /* ACL user name, NULL = none (AUTH pass) */
    char *pass;  /* NULL = no AUTH at all */
    int db;      /* SELECT db, 0..RDS_URL_MAX_DB */
} rds_url_t;

/* Fills u with the defaults (127.0.0.1:6379, db 0, no auth). Cannot fail (OOM aborts);
 * rds_url_free is always safe afterwards. */
void rds_url_init(rds_url_t *u);

/* Releases u's strings; u may be re-initialised afterwards. */
void rds_url_free(rds_url_t *u);

/* Parses s into u (which must not hold strings: init'ed and freed, or fresh). On success
 * returns SIO_OK and u owns its strings. On a bad URL returns SIO_EINVAL with a one-line
 * reason in err (when errlen > 0) and leaves u holding the defaults, so rds_url_free is
 * safe either way. NULL or "" parse as the defaults. Never touches the network. */
int rds_url_parse(rds_url_t *u, const char *s, char *err, size_t errlen);

/* Deep copy: dst receives its own strings (dst must not hold any). */
void rds_url_copy(rds_url_t *dst, const rds_url_t *src);

/* Writes the canonical URL of u into buf (snprintf rules: truncated but always
 * NUL-terminated when len > 0) and returns the length it needed. With show_password 0 the
 * password reads "***", which is what logs and error messages should print; with 1 the
 * output parses back to an equal rds_url_t (user and password percent-encoded). */
size_t rds_url_format(const rds_url_t *u, int show_password, char *buf, size_t len);

#endif
