/* ctl.c -- sockeye-ctl: what a Sockeye cluster keeps in Redis, as readable tables.
 *
 *   sockeye-ctl [--redis URL] [--prefix P] nodes
 *   sockeye-ctl [--redis URL] [--prefix P] sessions [nsp]
 *   sockeye-ctl [--redis URL] [--prefix P] streams [nsp]
 *   sockeye-ctl [--redis URL] [--prefix P] session <nsp> <pid>
 *   sockeye-ctl [--redis URL] [--prefix P] queues
 *   sockeye-ctl [--redis URL] [--prefix P] queue <name>
 *   sockeye-ctl [--redis URL] [--prefix P] push [--max-length N] [--max-age MS] <queue> <json>
 *
 * This file is the program: arguments, connecting (hiredis' blocking API with timeouts,
 * AUTH, SELECT), exit statuses. The commands themselves are ctl_cmd.c's (ctl_cmd.h says
 * what they read and why SCAN). Exit status: 0, 1 (no such session or queue; a Redis
 * error, with its message on stderr), 2 (usage; push: a bad queue name or JSON).
 *
 * The URL and prefix default to the node's own settings (SOCKEYE_REDIS_URL,
 * SOCKEYE_REDIS_KEY_PREFIX), so on a node's host plain `sockeye-ctl nodes` works.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "ctl_cmd.h"
#include "rds_url.h"
#include "sockeye_common.h"

#define CTL_TIMEOUT_S 5

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("sockeye-ctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* Runs a command of the connection's setup; exits with Redis' message on failure. */
static void setup_cmd(app_ctl_t *x, int argc, const char **argv)
{
    redisReply *r = app_ctl_command(x, argc, argv);

    if (r == NULL)
        die("%s", x->err);
    freeReplyObject(r);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *out)
{
    fputs("Usage: sockeye-ctl [--redis URL] [--prefix P] COMMAND\n"
          "\n"
          "Commands (read-only but push; keys found with SCAN):\n"
          "  nodes                  nodes registered in the cluster\n"
          "  sessions [nsp]         recovery sessions (all namespaces, or one)\n"
          "  streams [nsp]          recovery streams and the offset counters\n"
          "  session <nsp> <pid>    one session in full\n"
          "  queues                 durable queues: length, groups, pending, dead letters\n"
          "  queue <name>           one queue: each group's consumers, their nodes, pending\n"
          "  push [--max-length N] [--max-age MS] <queue> <json>\n"
          "                         push one message (a JSON text) to a queue; prints its id.\n"
          "                         The bounds are the node's --queue-max-length and\n"
          "                         --queue-max-age (env SOCKEYE_QUEUE_MAX_LENGTH,\n"
          "                         SOCKEYE_QUEUE_MAX_AGE; defaults 1000000 and 604800000,\n"
          "                         0 = no age bound)\n"
          "\n"
          "Options:\n"
          "  --redis URL            redis://[:pass@]host[:port][/db] or unix:///path\n"
          "                         (env SOCKEYE_REDIS_URL, default redis://127.0.0.1:6379)\n"
          "  --prefix P             key prefix of the nodes (--redis-key-prefix)\n"
          "                         (env SOCKEYE_REDIS_KEY_PREFIX, default sockeye)\n"
          "  --help                 this text\n",
          out);
}

/* A decimal count for a flag or variable; exits with status 2 when it is not one. */
static uint64_t parse_count(const char *what, const char *v)
{
    char *end;
    unsigned long long n;

    if (v == NULL || v[0] < '0' || v[0] > '9' || (errno = 0, n = strtoull(v, &end, 10), errno) ||
        *end != '\0') {
        fprintf(stderr, "sockeye-ctl: %s must be a non-negative integer, got '%s'\n", what,
                v != NULL ? v : "");
        exit(2);
    }
    return n;
}

static redisContext *connect_url(const rds_url_t *u)
{
    struct timeval tv = {CTL_TIMEOUT_S, 0};
    redisContext *c = u->is_unix ? redisConnectUnixWithTimeout(u->path, tv)
                                 : redisConnectWithTimeout(u->host, u->port, tv);
    if (c == NULL)
        die("cannot allocate a redis context");
    if (c->err)
        die("cannot connect to redis: %s", c->errstr);
    redisSetTimeout(c, tv);
    return c;
}

int main(int argc, char **argv)
{
    const char *url_text = getenv("SOCKEYE_REDIS_URL"),
               *prefix = getenv("SOCKEYE_REDIS_KEY_PREFIX");
    char err[256];
    const char *env_len = getenv("SOCKEYE_QUEUE_MAX_LENGTH"),
               *env_age = getenv("SOCKEYE_QUEUE_MAX_AGE");
    uint64_t max_length = APP_CTL_Q_MAX_LENGTH, max_age = APP_CTL_Q_MAX_AGE_MS;
    rds_url_t url;
    app_ctl_t x;
    int i = 1, rc;

    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if ((strcmp(argv[i], "--redis") == 0 || strcmp(argv[i], "--redis-url") == 0) &&
            i + 1 < argc)
            url_text = argv[++i];
        else if ((strcmp(argv[i], "--prefix") == 0 || strcmp(argv[i], "--redis-key-prefix") == 0) &&
                 i + 1 < argc)
            prefix = argv[++i];
        else {
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    if (prefix == NULL || prefix[0] == '\0')
        prefix = "sockeye";
    /* push: its flags (after the command name), checked before connecting */
    if (strcmp(argv[i], "push") == 0) {
        int j = i + 1;
        if (env_len != NULL && env_len[0] != '\0')
            max_length = parse_count("SOCKEYE_QUEUE_MAX_LENGTH", env_len);
        if (env_age != NULL && env_age[0] != '\0')
            max_age = parse_count("SOCKEYE_QUEUE_MAX_AGE", env_age);
        for (; j + 1 < argc && strncmp(argv[j], "--", 2) == 0; j += 2) {
            if (strcmp(argv[j], "--max-length") == 0)
                max_length = parse_count("--max-length", argv[j + 1]);
            else if (strcmp(argv[j], "--max-age") == 0)
                max_age = parse_count("--max-age", argv[j + 1]);
            else
                break;
        }
        if (argc - j != 2) {
            usage(stderr);
            return 2;
        }
        /* leave the queue and the JSON at argv[i + 1], argv[i + 2] */
        argv[i + 1] = argv[j];
        argv[i + 2] = argv[j + 1];
        argc = i + 3;
    }
    memset(&url, 0, sizeof(url)); /* parse wants a fresh or freed url */
    if (rds_url_parse(&url, url_text, err, sizeof(err)) != SIO_OK)
        die("bad redis URL: %s", err);

    app_ctl_init(&x, connect_url(&url), prefix, stdout);
    if (url.pass != NULL) {
        const char *a[3] = {"AUTH", url.user != NULL ? url.user : url.pass, url.pass};
        setup_cmd(&x, url.user != NULL ? 3 : 2, a);
    }
    if (url.db != 0) {
        char db[16];
        const char *a[2] = {"SELECT", db};
        snprintf(db, sizeof(db), "%d", url.db);
        setup_cmd(&x, 2, a);
    }
    if (app_ctl_read_clock(&x) != APP_CTL_OK)
        die("%s", x.err);

    if (strcmp(argv[i], "nodes") == 0 && argc - i == 1)
        rc = app_ctl_nodes(&x);
    else if (strcmp(argv[i], "sessions") == 0 && argc - i <= 2)
        rc = app_ctl_sessions(&x, argc - i == 2 ? argv[i + 1] : NULL);
    else if (strcmp(argv[i], "streams") == 0 && argc - i <= 2)
        rc = app_ctl_streams(&x, argc - i == 2 ? argv[i + 1] : NULL);
    else if (strcmp(argv[i], "session") == 0 && argc - i == 3)
        rc = app_ctl_session(&x, argv[i + 1], argv[i + 2]);
    else if (strcmp(argv[i], "queues") == 0 && argc - i == 1)
        rc = app_ctl_queues(&x);
    else if (strcmp(argv[i], "queue") == 0 && argc - i == 2)
        rc = app_ctl_queue(&x, argv[i + 1]);
    else if (strcmp(argv[i], "push") == 0 && argc - i == 3)
        rc = app_ctl_push(&x, argv[i + 1], argv[i + 2], max_length, max_age);
    else {
        usage(stderr);
        rc = 2;
    }
    if (rc == APP_CTL_EREDIS)
        die("%s", x.err);
    if (rc == APP_CTL_EINVAL)
        fprintf(stderr, "sockeye-ctl: %s\n", x.err);
    redisFree(x.c);
    rds_url_free(&url);
    return rc;
}
