/* ctl.c -- sockeye-ctl: what a Sockeye cluster keeps in Redis, as readable tables.
 *
 *   sockeye-ctl [--redis URL] [--prefix P] nodes
 *   sockeye-ctl [--redis URL] [--prefix P] sessions [nsp]
 *   sockeye-ctl [--redis URL] [--prefix P] streams [nsp]
 *   sockeye-ctl [--redis URL] [--prefix P] session <nsp> <pid>
 *
 * An operator's tool, so it is synchronous (hiredis' blocking API with timeouts) and
 * read-only. Keys are those of adapter/REDIS.md; they are found with SCAN, never KEYS: KEYS
 * blocks a production Redis for as long as it walks the whole keyspace, SCAN does a bounded
 * amount of work per call. Listings are capped (CTL_MAX_KEYS) so a huge cluster gives a
 * truncated table and a note instead of an unbounded run. Times are shown relative to
 * Redis' clock (TIME), the clock that stamped the offsets.
 *
 * The URL and prefix default to the node's own settings (SOCKEYE_REDIS_URL,
 * SOCKEYE_REDIS_KEY_PREFIX), so on a node's host plain `sockeye-ctl nodes` works.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "base_alloc.h"
#include "rds_url.h"
#include "sockeye_common.h"

#define CTL_TIMEOUT_S 5
#define CTL_MAX_KEYS 100000   /* keys listed per command at most */
#define CTL_SCAN_COUNT "1000" /* SCAN COUNT hint */
#define CTL_MAX_SCANS 1000000 /* SCAN calls at most (a changing keyspace never loops) */
#define CTL_CELL_MAX 60       /* table cells are cut to this many bytes */

typedef struct ctl {
    redisContext *c;
    const char *prefix;
    uint64_t now_ms; /* Redis' clock at start */
} ctl_t;

/* ------------------------------------------------------------------ small helpers */

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

/* Runs a command; exits with Redis' message on a transport error or an error reply. */
static redisReply *cmd_argv(ctl_t *x, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(x->c, argc, argv, NULL);

    if (r == NULL)
        die("redis: %s", x->c->errstr[0] ? x->c->errstr : "no reply");
    if (r->type == REDIS_REPLY_ERROR) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", r->str);
        freeReplyObject(r);
        die("redis refused %s: %s", argv[0], msg);
    }
    return r;
}

static redisReply *cmd2(ctl_t *x, const char *a, const char *b)
{
    const char *argv[2] = {a, b};
    return cmd_argv(x, 2, argv);
}

/* A string reply's text or "" (nil, other types). */
static const char *rstr(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? r->str
                                                                                         : "";
}

/* Escapes the glob metacharacters of s for SCAN MATCH. New string. */
static char *glob_escape(const char *s)
{
    char *out = base_malloc(strlen(s) * 2 + 1), *o = out;

    for (; *s; s++) {
        if (strchr("*?[]\\", *s) != NULL)
            *o++ = '\\';
        *o++ = *s;
    }
    *o = '\0';
    return out;
}

/* "1.2s", "4m05s", "3h12m", "2d04h"; "-" for unknown (UINT64_MAX). */
static void fmt_dur(char *buf, size_t len, uint64_t ms)
{
    uint64_t s = ms / 1000;

    if (ms == UINT64_MAX)
        snprintf(buf, len, "-");
    else if (ms < 60000)
        snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "s", s, (ms % 1000) / 100);
    else if (s < 3600)
        snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, (s % 3600) / 60);
    else
        snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, (s % 86400) / 3600);
}

/* PTTL as text: "none" (no expiry), "gone", or a duration. */
static void fmt_pttl(ctl_t *x, const char *key, char *buf, size_t len)
{
    redisReply *r = cmd2(x, "PTTL", key);

    if (r->type != REDIS_REPLY_INTEGER || r->integer == -2)
        snprintf(buf, len, "gone");
    else if (r->integer == -1)
        snprintf(buf, len, "none");
    else
        fmt_dur(buf, len, (uint64_t)r->integer);
    freeReplyObject(r);
}

/* Age of a stream id / offset "<ms>-<seq>" against Redis' clock. */
static void fmt_id_age(ctl_t *x, const char *id, char *buf, size_t len)
{
    unsigned long long ms;

    if (id == NULL || sscanf(id, "%llu-", &ms) != 1)
        snprintf(buf, len, "-");
    else if (ms > x->now_ms)
        snprintf(buf, len, "future");
    else
        fmt_dur(buf, len, x->now_ms - ms);
}

/* ------------------------------------------------------------------ tables */

typedef struct table {
    size_t cols, rows, cap;
    char **cells; /* rows x cols, row 0 = header */
} table_t;

static void table_init(table_t *t, size_t cols, ...)
{
    va_list ap;

    memset(t, 0, sizeof(*t));
    t->cols = cols;
    t->cap = 16;
    t->cells = base_malloc(t->cap * cols * sizeof(char *));
    va_start(ap, cols);
    for (size_t i = 0; i < cols; i++)
        t->cells[i] = base_strdup(va_arg(ap, const char *));
    va_end(ap);
    t->rows = 1;
}

/* Appends a row of cols strings (copied, cut to CTL_CELL_MAX bytes, control bytes shown
 * as '?': keys may hold anything and this prints to a terminal). */
static void table_row(table_t *t, ...)
{
    va_list ap;

    if (t->rows == t->cap) {
        t->cap *= 2;
        t->cells = base_realloc(t->cells, t->cap * t->cols * sizeof(char *));
    }
    va_start(ap, t);
    for (size_t i = 0; i < t->cols; i++) {
        const char *s = va_arg(ap, const char *);
        size_t n = strlen(s);
        char *c;
        if (n > CTL_CELL_MAX) {
            c = base_malloc(CTL_CELL_MAX + 4);
            memcpy(c, s, CTL_CELL_MAX - 3);
            memcpy(c + CTL_CELL_MAX - 3, "...", 4);
        } else {
            c = base_strdup(s);
        }
        for (char *p = c; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
        t->cells[t->rows * t->cols + i] = c;
    }
    va_end(ap);
    t->rows++;
}

static void table_print(table_t *t, const char *empty)
{
    size_t *w = base_calloc(t->cols, sizeof(*w));

    if (t->rows == 1) {
        printf("%s\n", empty);
    } else {
        for (size_t r = 0; r < t->rows; r++)
            for (size_t i = 0; i < t->cols; i++) {
                size_t n = strlen(t->cells[r * t->cols + i]);
                if (n > w[i])
                    w[i] = n;
            }
        for (size_t r = 0; r < t->rows; r++) {
            for (size_t i = 0; i < t->cols; i++) {
                const char *c = t->cells[r * t->cols + i];
                if (i + 1 < t->cols)
                    printf("%-*s  ", (int)w[i], c);
                else
                    printf("%s", c);
            }
            putchar('\n');
            if (r == 0) {
                for (size_t i = 0; i < t->cols; i++) {
                    for (size_t k = 0; k < w[i]; k++)
                        putchar('-');
                    if (i + 1 < t->cols)
                        fputs("  ", stdout);
                }
                putchar('\n');
            }
        }
    }
    for (size_t k = 0; k < t->rows * t->cols; k++)
        base_free(t->cells[k]);
    base_free(t->cells);
    base_free(w);
}

/* ------------------------------------------------------------------ SCAN */

typedef struct keys {
    char **v;
    size_t n, cap;
    int truncated;
} keys_t;

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every key matching pattern (of type when not NULL), sorted, at most CTL_MAX_KEYS. */
static void scan(ctl_t *x, const char *pattern, const char *type, keys_t *out)
{
    char cursor[32] = "0";
    int calls = 0;

    memset(out, 0, sizeof(*out));
    do {
        const char *argv[8] = {"SCAN",  cursor,         "MATCH", pattern,
                               "COUNT", CTL_SCAN_COUNT, "TYPE",  type};
        redisReply *r = cmd_argv(x, type != NULL ? 8 : 6, argv);

        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[1]->type != REDIS_REPLY_ARRAY)
            die("unexpected SCAN reply");
        snprintf(cursor, sizeof(cursor), "%s", rstr(r->element[0]));
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            if (out->n == CTL_MAX_KEYS) {
                out->truncated = 1;
                break;
            }
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 64;
                out->v = base_realloc(out->v, out->cap * sizeof(*out->v));
            }
            out->v[out->n++] = base_strdup(rstr(r->element[1]->element[i]));
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0 && !out->truncated && ++calls < CTL_MAX_SCANS);
    /* SCAN may return a key twice: sort, then drop repeats */
    if (out->n > 0) {
        size_t k = 1;
        qsort(out->v, out->n, sizeof(*out->v), str_cmp);
        for (size_t i = 1; i < out->n; i++) {
            if (strcmp(out->v[i], out->v[k - 1]) == 0)
                base_free(out->v[i]);
            else
                out->v[k++] = out->v[i];
        }
        out->n = k;
    }
}

static void keys_free(keys_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        base_free(k->v[i]);
    base_free(k->v);
}

static void truncated_note(const keys_t *k)
{
    if (k->truncated)
        printf("(listing stopped at %d keys)\n", CTL_MAX_KEYS);
}

/* The pattern "P:{<nsp or *>}:<tail>" with P and nsp escaped. */
static char *ns_pattern(ctl_t *x, const char *nsp, const char *tail)
{
    char *p = glob_escape(x->prefix), *n = nsp != NULL ? glob_escape(nsp) : base_strdup("*");
    size_t len = strlen(p) + strlen(n) + strlen(tail) + 8;
    char *out = base_malloc(len);

    snprintf(out, len, "%s:{%s}:%s", p, n, tail);
    base_free(p);
    base_free(n);
    return out;
}

/* Splits "P:{N}:<rest>": *nsp (new string) and *rest (inside key). 0 when not of that form. */
static int split_key(ctl_t *x, const char *key, char **nsp, const char **rest, const char *mark)
{
    size_t pl = strlen(x->prefix);
    const char *start, *end;

    if (strncmp(key, x->prefix, pl) != 0 || strncmp(key + pl, ":{", 2) != 0)
        return 0;
    start = key + pl + 2;
    end = strstr(start, mark); /* mark: "}:sess:", "}:r:", "}:all" */
    if (end == NULL)
        return 0;
    *nsp = base_strndup(start, (size_t)(end - start));
    *rest = end + 2;
    return 1;
}

/* ------------------------------------------------------------------ commands */

static int cmd_nodes(ctl_t *x)
{
    char zkey[512], *pat, *esc;
    redisReply *z;
    keys_t recs;
    table_t t;
    size_t live = 0, stale = 0;

    snprintf(zkey, sizeof(zkey), "%s:nodes", x->prefix);
    esc = glob_escape(x->prefix);
    pat = base_malloc(strlen(esc) + 8);
    sprintf(pat, "%s:node:*", esc);
    scan(x, pat, "hash", &recs);
    base_free(pat);
    base_free(esc);
    {
        const char *argv[5] = {"ZRANGE", zkey, "0", "-1", "WITHSCORES"};
        z = cmd_argv(x, 5, argv);
    }
    table_init(&t, 8, "UID", "ADDRESS", "PID", "UP", "CONNECTIONS", "VERSION", "EXPIRES IN",
               "STATE");
    /* members of the zset first (with their score), then records the zset lacks */
    for (size_t i = 0; i + 1 < z->elements; i += 2) {
        const char *uid = rstr(z->element[i]);
        uint64_t exp = strtoull(rstr(z->element[i + 1]), NULL, 10);
        char key[512], up[32], expires[32];
        const char *argv[7];
        redisReply *h;
        int has;

        snprintf(key, sizeof(key), "%s:node:%s", x->prefix, uid);
        argv[0] = "HMGET", argv[1] = key, argv[2] = "address", argv[3] = "pid";
        argv[4] = "started", argv[5] = "connections", argv[6] = "version";
        h = cmd_argv(x, 7, argv);
        has = h->elements == 5 && h->element[0]->type == REDIS_REPLY_STRING;
        fmt_dur(up, sizeof(up),
                has ? x->now_ms - strtoull(rstr(h->element[2]), NULL, 10) : UINT64_MAX);
        fmt_dur(expires, sizeof(expires), exp > x->now_ms ? exp - x->now_ms : 0);
        table_row(&t, uid, has ? rstr(h->element[0]) : "-", has ? rstr(h->element[1]) : "-", up,
                  has ? rstr(h->element[3]) : "-", has ? rstr(h->element[4]) : "-", expires,
                  has && exp > x->now_ms ? "live" : "stale");
        if (has && exp > x->now_ms)
            live++;
        else
            stale++;
        freeReplyObject(h);
        /* the record was listed: drop it from the leftovers */
        for (size_t k = 0; k < recs.n; k++)
            if (recs.v[k] != NULL && strcmp(recs.v[k], key) == 0) {
                base_free(recs.v[k]);
                recs.v[k] = NULL;
            }
    }
    for (size_t k = 0; k < recs.n; k++) {
        char ttl[32], up[32];
        const char *argv[2] = {"HGETALL", recs.v[k]};
        const char *f[6] = {"-", "-", "-", "-", "-", "-"}; /* id address pid started conns ver */
        static const char *const names[6] = {"id",      "address",     "pid",
                                             "started", "connections", "version"};
        redisReply *h;

        if (recs.v[k] == NULL)
            continue;
        h = cmd_argv(x, 2, argv);
        for (size_t i = 0; i + 1 < h->elements; i += 2)
            for (int j = 0; j < 6; j++)
                if (strcmp(rstr(h->element[i]), names[j]) == 0)
                    f[j] = rstr(h->element[i + 1]);
        fmt_pttl(x, recs.v[k], ttl, sizeof(ttl));
        fmt_dur(up, sizeof(up),
                strcmp(f[3], "-") != 0 ? x->now_ms - strtoull(f[3], NULL, 10) : UINT64_MAX);
        table_row(&t, f[0], f[1], f[2], up, f[4], f[5], ttl, "unlisted");
        live++;
        freeReplyObject(h);
    }
    table_print(&t, "no nodes registered");
    printf("%zu live, %zu stale (stale: missed their refreshes; pruned by the next writer)\n", live,
           stale);
    truncated_note(&recs);
    freeReplyObject(z);
    keys_free(&recs);
    return 0;
}

/* Rooms JSON -> "a,b,c" (the own-id room left out when sid is given), new string. */
static char *rooms_text(const char *json, const char *sid, size_t *count)
{
    cJSON *a = cJSON_Parse(json), *it;
    size_t len = 1, n = 0, pos = 0;
    char *out;

    *count = 0;
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return base_strdup(json[0] ? "(malformed)" : "");
    }
    cJSON_ArrayForEach(it, a)
    {
        if (cJSON_IsString(it))
            len += strlen(it->valuestring) + 1;
    }
    out = base_malloc(len);
    cJSON_ArrayForEach(it, a)
    {
        size_t k;
        if (!cJSON_IsString(it) || (sid != NULL && strcmp(it->valuestring, sid) == 0))
            continue;
        if (n++ > 0)
            out[pos++] = ',';
        k = strlen(it->valuestring);
        memcpy(out + pos, it->valuestring, k);
        pos += k;
    }
    out[pos] = '\0';
    *count = n;
    cJSON_Delete(a);
    return out;
}

static int cmd_sessions(ctl_t *x, const char *nsp)
{
    char *pat = ns_pattern(x, nsp, "sess:*");
    keys_t ks;
    table_t t;
    size_t shown = 0;

    scan(x, pat, "hash", &ks);
    base_free(pat);
    table_init(&t, 9, "NAMESPACE", "PID", "SID", "ROOMS", "JOINED", "OFFSET", "OFFSET AGE", "OWNER",
               "TTL");
    for (size_t k = 0; k < ks.n; k++) {
        const char *argv[7] = {"HMGET", ks.v[k], "sid", "pid", "rooms", "offset", "owner"};
        char *ns, ttl[32], age[32], count[16];
        const char *rest;
        redisReply *h;
        char *rooms;
        size_t n;

        if (!split_key(x, ks.v[k], &ns, &rest, "}:sess:"))
            continue;
        h = cmd_argv(x, 7, argv);
        if (h->elements != 5) {
            freeReplyObject(h);
            base_free(ns);
            continue;
        }
        rooms = rooms_text(rstr(h->element[2]), rstr(h->element[0]), &n);
        snprintf(count, sizeof(count), "%zu", n);
        fmt_pttl(x, ks.v[k], ttl, sizeof(ttl));
        fmt_id_age(x, rstr(h->element[3]), age, sizeof(age));
        table_row(&t, ns, rstr(h->element[1]), rstr(h->element[0]), rooms, count,
                  rstr(h->element[3]), age, rstr(h->element[4]), ttl);
        shown++;
        base_free(rooms);
        base_free(ns);
        freeReplyObject(h);
    }
    table_print(&t, "no sessions");
    if (shown > 0)
        printf("%zu session(s); ROOMS leaves out each socket's own id room\n", shown);
    truncated_note(&ks);
    keys_free(&ks);
    return 0;
}

static int cmd_streams(ctl_t *x, const char *nsp)
{
    char *pat = ns_pattern(x, nsp, "*");
    keys_t ks;
    table_t t, lt;
    uint64_t total = 0;

    scan(x, pat, "stream", &ks);
    base_free(pat);
    table_init(&t, 8, "NAMESPACE", "STREAM", "ENTRIES", "FIRST", "LAST", "LAST AGE", "SPAN", "TTL");
    for (size_t k = 0; k < ks.n; k++) {
        char *ns, len[24], ttl[32], age[32], span[32], first[64] = "-", last[64] = "-";
        const char *rest, *name;
        redisReply *r;
        unsigned long long fm = 0, lm = 0;

        if (!split_key(x, ks.v[k], &ns, &rest, "}:"))
            continue;
        name = rest;
        r = cmd2(x, "XLEN", ks.v[k]);
        snprintf(len, sizeof(len), "%lld", r->integer);
        total += (uint64_t)r->integer;
        freeReplyObject(r);
        {
            const char *a2[6] = {"XRANGE", ks.v[k], "-", "+", "COUNT", "1"};
            const char *a3[6] = {"XREVRANGE", ks.v[k], "+", "-", "COUNT", "1"};
            r = cmd_argv(x, 6, a2);
            if (r->elements > 0 && r->element[0]->elements > 0)
                snprintf(first, sizeof(first), "%s", rstr(r->element[0]->element[0]));
            freeReplyObject(r);
            r = cmd_argv(x, 6, a3);
            if (r->elements > 0 && r->element[0]->elements > 0)
                snprintf(last, sizeof(last), "%s", rstr(r->element[0]->element[0]));
            freeReplyObject(r);
        }
        fmt_id_age(x, strcmp(last, "-") != 0 ? last : NULL, age, sizeof(age));
        if (sscanf(first, "%llu-", &fm) == 1 && sscanf(last, "%llu-", &lm) == 1 && lm >= fm)
            fmt_dur(span, sizeof(span), lm - fm);
        else
            snprintf(span, sizeof(span), "-");
        fmt_pttl(x, ks.v[k], ttl, sizeof(ttl));
        table_row(&t, ns, name, len, first, last, age, span, ttl);
        base_free(ns);
    }
    table_print(&t, "no streams");
    if (ks.n > 0)
        printf("%zu stream(s), %" PRIu64 " entries (a broadcast to n rooms is stored n times)\n",
               ks.n, total);
    truncated_note(&ks);
    keys_free(&ks);

    /* the namespaces' offset counters */
    pat = ns_pattern(x, nsp, "last");
    scan(x, pat, "string", &ks);
    base_free(pat);
    table_init(&lt, 4, "NAMESPACE", "LAST OFFSET", "AGE", "TTL");
    for (size_t k = 0; k < ks.n; k++) {
        char *ns, ttl[32], age[32];
        const char *rest;
        redisReply *r;

        if (!split_key(x, ks.v[k], &ns, &rest, "}:last"))
            continue;
        r = cmd2(x, "GET", ks.v[k]);
        fmt_id_age(x, rstr(r), age, sizeof(age));
        fmt_pttl(x, ks.v[k], ttl, sizeof(ttl));
        table_row(&lt, ns, rstr(r), age, ttl);
        freeReplyObject(r);
        base_free(ns);
    }
    putchar('\n');
    table_print(&lt, "no offset counters");
    keys_free(&ks);
    return 0;
}

static int cmd_session(ctl_t *x, const char *nsp, const char *pid)
{
    size_t len = strlen(x->prefix) + strlen(nsp) + strlen(pid) + 16;
    char *key = base_malloc(len), ttl[32], age[32];
    static const char *const order[] = {"sid",   "pid",    "owner", "offset",
                                        "rooms", "joined", "read",  "data"};
    const char *argv[2] = {"HGETALL", key};
    redisReply *h;

    snprintf(key, len, "%s:{%s}:sess:%s", x->prefix, nsp, pid);
    h = cmd_argv(x, 2, argv);
    if (h->elements == 0) {
        printf("no session %s in namespace %s (key %s): never opened, expired or released\n", pid,
               nsp, key);
        freeReplyObject(h);
        base_free(key);
        return 1;
    }
    printf("%-8s %s\n", "key", key);
    for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++) {
        for (size_t i = 0; i + 1 < h->elements; i += 2) {
            const char *v = rstr(h->element[i + 1]);
            if (strcmp(rstr(h->element[i]), order[o]) != 0)
                continue;
            if (strcmp(order[o], "data") == 0 || strcmp(order[o], "rooms") == 0 ||
                strcmp(order[o], "joined") == 0) {
                cJSON *j = cJSON_Parse(v);
                char *pretty = j != NULL ? cJSON_Print(j) : NULL;
                printf("%-8s %s\n", order[o], pretty != NULL ? pretty : v);
                cJSON_free(pretty);
                cJSON_Delete(j);
            } else if (strcmp(order[o], "offset") == 0) {
                fmt_id_age(x, v, age, sizeof(age));
                printf("%-8s %s (%s old)\n", order[o], v, age);
            } else if (strcmp(order[o], "read") == 0) {
                char id[48];
                snprintf(id, sizeof(id), "%.40s-0", v); /* a time in ms: an id's age */
                fmt_id_age(x, id, age, sizeof(age));
                printf("%-8s %s (%s ago)\n", order[o], v, age);
            } else {
                printf("%-8s %s\n", order[o], v);
            }
        }
    }
    fmt_pttl(x, key, ttl, sizeof(ttl));
    printf("%-8s %s\n", "ttl", ttl);
    freeReplyObject(h);
    base_free(key);
    return 0;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *out)
{
    fputs("Usage: sockeye-ctl [--redis URL] [--prefix P] COMMAND\n"
          "\n"
          "Commands (read-only; keys found with SCAN):\n"
          "  nodes                  nodes registered in the cluster\n"
          "  sessions [nsp]         recovery sessions (all namespaces, or one)\n"
          "  streams [nsp]          recovery streams and the offset counters\n"
          "  session <nsp> <pid>    one session in full\n"
          "\n"
          "Options:\n"
          "  --redis URL            redis://[:pass@]host[:port][/db] or unix:///path\n"
          "                         (env SOCKEYE_REDIS_URL, default redis://127.0.0.1:6379)\n"
          "  --prefix P             key prefix of the nodes (--redis-key-prefix)\n"
          "                         (env SOCKEYE_REDIS_KEY_PREFIX, default sockeye)\n"
          "  --help                 this text\n",
          out);
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
    rds_url_t url;
    ctl_t x;
    int i = 1, rc;
    redisReply *r;

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
    memset(&url, 0, sizeof(url)); /* parse wants a fresh or freed url */
    if (rds_url_parse(&url, url_text, err, sizeof(err)) != SIO_OK)
        die("bad redis URL: %s", err);

    memset(&x, 0, sizeof(x));
    x.prefix = prefix;
    x.c = connect_url(&url);
    if (url.pass != NULL) {
        const char *a[3] = {"AUTH", url.user != NULL ? url.user : url.pass, url.pass};
        freeReplyObject(cmd_argv(&x, url.user != NULL ? 3 : 2, a));
    }
    if (url.db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", url.db);
        freeReplyObject(cmd2(&x, "SELECT", db));
    }
    r = cmd_argv(&x, 1, (const char *[]){"TIME"});
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        x.now_ms = strtoull(rstr(r->element[0]), NULL, 10) * 1000 +
                   strtoull(rstr(r->element[1]), NULL, 10) / 1000;
    freeReplyObject(r);

    if (strcmp(argv[i], "nodes") == 0 && argc - i == 1)
        rc = cmd_nodes(&x);
    else if (strcmp(argv[i], "sessions") == 0 && argc - i <= 2)
        rc = cmd_sessions(&x, argc - i == 2 ? argv[i + 1] : NULL);
    else if (strcmp(argv[i], "streams") == 0 && argc - i <= 2)
        rc = cmd_streams(&x, argc - i == 2 ? argv[i + 1] : NULL);
    else if (strcmp(argv[i], "session") == 0 && argc - i == 3)
        rc = cmd_session(&x, argv[i + 1], argv[i + 2]);
    else {
        usage(stderr);
        rc = 2;
    }
    redisFree(x.c);
    rds_url_free(&url);
    return rc;
}
