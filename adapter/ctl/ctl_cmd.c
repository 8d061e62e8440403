/* ctl_cmd.c -- the commands of sockeye-ctl (ctl_cmd.h).
 *
 * Every Redis call goes through app_ctl_command, which turns a transport error or an
 * error reply into APP_CTL_EREDIS and a message; each command then frees what it holds
 * and returns, so a failure costs neither memory nor a half-written row. Tables are
 * built whole, then printed with their columns aligned.
 */
#include "ctl_cmd.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "adp_queue.h"
#include "base_alloc.h"
#include "rds_queue.h"

#define CTL_SCAN_COUNT "1000" /* SCAN COUNT hint */
#define CTL_MAX_SCANS 1000000 /* SCAN calls at most (a changing keyspace never loops) */
#define CTL_CELL_MAX 60       /* table cells are cut to this many bytes */

/* ------------------------------------------------------------------ small helpers */

void app_ctl_init(app_ctl_t *x, redisContext *c, const char *prefix, FILE *out)
{
    memset(x, 0, sizeof(*x));
    x->c = c;
    x->prefix = prefix;
    x->out = out;
}

__attribute__((format(printf, 2, 3))) static int fail(app_ctl_t *x, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(x->err, sizeof(x->err), fmt, ap);
    va_end(ap);
    return APP_CTL_EREDIS;
}

/* Runs a command; NULL with Redis' message on a transport error or an error reply. */
redisReply *app_ctl_command(app_ctl_t *x, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(x->c, argc, argv, NULL);

    if (r == NULL) {
        fail(x, "redis: %s", x->c->errstr[0] ? x->c->errstr : "no reply");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", r->str);
        freeReplyObject(r);
        fail(x, "redis refused %s: %s", argv[0], msg);
        return NULL;
    }
    return r;
}

static redisReply *cmd2(app_ctl_t *x, const char *a, const char *b)
{
    const char *argv[2] = {a, b};
    return app_ctl_command(x, 2, argv);
}

/* A string reply's text or "" (nil, other types). */
static const char *rstr(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? r->str
                                                                                         : "";
}

/* TIME -> x->now_ms (seconds and microseconds). */
int app_ctl_read_clock(app_ctl_t *x)
{
    const char *argv[1] = {"TIME"};
    redisReply *r = app_ctl_command(x, 1, argv);

    if (r == NULL)
        return APP_CTL_EREDIS;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        x->now_ms = strtoull(rstr(r->element[0]), NULL, 10) * 1000 +
                    strtoull(rstr(r->element[1]), NULL, 10) / 1000;
    freeReplyObject(r);
    return APP_CTL_OK;
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

/* PTTL as text: "none" (no expiry), "gone", or a duration. APP_CTL_OK or APP_CTL_EREDIS. */
static int fmt_pttl(app_ctl_t *x, const char *key, char *buf, size_t len)
{
    redisReply *r = cmd2(x, "PTTL", key);

    if (r == NULL)
        return APP_CTL_EREDIS;
    if (r->type != REDIS_REPLY_INTEGER || r->integer == -2)
        snprintf(buf, len, "gone");
    else if (r->integer == -1)
        snprintf(buf, len, "none");
    else
        fmt_dur(buf, len, (uint64_t)r->integer);
    freeReplyObject(r);
    return APP_CTL_OK;
}

/* Age of a stream id / offset "<ms>-<seq>" against Redis' clock. */
static void fmt_id_age(const app_ctl_t *x, const char *id, char *buf, size_t len)
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

static void table_free(table_t *t)
{
    for (size_t k = 0; k < t->rows * t->cols; k++)
        base_free(t->cells[k]);
    base_free(t->cells);
    memset(t, 0, sizeof(*t));
}

/* Prints t to out (or empty when it has no row) and frees it. */
static void table_print(table_t *t, FILE *out, const char *empty)
{
    size_t *w = base_calloc(t->cols, sizeof(*w));

    if (t->rows == 1) {
        fprintf(out, "%s\n", empty);
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
                    fprintf(out, "%-*s  ", (int)w[i], c);
                else
                    fprintf(out, "%s", c);
            }
            fputc('\n', out);
            if (r == 0) {
                for (size_t i = 0; i < t->cols; i++) {
                    for (size_t k = 0; k < w[i]; k++)
                        fputc('-', out);
                    if (i + 1 < t->cols)
                        fputs("  ", out);
                }
                fputc('\n', out);
            }
        }
    }
    table_free(t);
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

static void keys_free(keys_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        base_free(k->v[i]);
    base_free(k->v);
    memset(k, 0, sizeof(*k));
}

/* Every key matching pattern (of type when not NULL), sorted, at most APP_CTL_MAX_KEYS.
 * APP_CTL_EREDIS with *out empty on failure. */
static int scan(app_ctl_t *x, const char *pattern, const char *type, keys_t *out)
{
    char cursor[32] = "0";
    int calls = 0;

    memset(out, 0, sizeof(*out));
    do {
        const char *argv[8] = {"SCAN",  cursor,         "MATCH", pattern,
                               "COUNT", CTL_SCAN_COUNT, "TYPE",  type};
        redisReply *r = app_ctl_command(x, type != NULL ? 8 : 6, argv);

        if (r == NULL) {
            keys_free(out);
            return APP_CTL_EREDIS;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            keys_free(out);
            return fail(x, "unexpected SCAN reply");
        }
        snprintf(cursor, sizeof(cursor), "%s", rstr(r->element[0]));
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            if (out->n == APP_CTL_MAX_KEYS) {
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
    return APP_CTL_OK;
}

static void truncated_note(const app_ctl_t *x, const keys_t *k)
{
    if (k->truncated)
        fprintf(x->out, "(listing stopped at %d keys)\n", APP_CTL_MAX_KEYS);
}

/* The pattern "P:{<nsp or *>}:<tail>" with P and nsp escaped. */
static char *ns_pattern(const app_ctl_t *x, const char *nsp, const char *tail)
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
static int split_key(const app_ctl_t *x, const char *key, char **nsp, const char **rest,
                     const char *mark)
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

int app_ctl_nodes(app_ctl_t *x)
{
    char zkey[512], *pat, *esc;
    redisReply *z;
    keys_t recs;
    table_t t;
    size_t live = 0, stale = 0;
    int rc = APP_CTL_OK;

    snprintf(zkey, sizeof(zkey), "%s:nodes", x->prefix);
    esc = glob_escape(x->prefix);
    pat = base_malloc(strlen(esc) + 8);
    sprintf(pat, "%s:node:*", esc);
    rc = scan(x, pat, "hash", &recs);
    base_free(pat);
    base_free(esc);
    if (rc != APP_CTL_OK)
        return rc;
    {
        const char *argv[5] = {"ZRANGE", zkey, "0", "-1", "WITHSCORES"};
        z = app_ctl_command(x, 5, argv);
    }
    if (z == NULL) {
        keys_free(&recs);
        return APP_CTL_EREDIS;
    }
    table_init(&t, 8, "UID", "ADDRESS", "PID", "UP", "CONNECTIONS", "VERSION", "EXPIRES IN",
               "STATE");
    /* members of the zset first (with their score), then records the zset lacks */
    for (size_t i = 0; i + 1 < z->elements && rc == APP_CTL_OK; i += 2) {
        const char *uid = rstr(z->element[i]);
        uint64_t exp = strtoull(rstr(z->element[i + 1]), NULL, 10);
        char key[512], up[32], expires[32];
        const char *argv[7];
        redisReply *h;
        int has;

        snprintf(key, sizeof(key), "%s:node:%s", x->prefix, uid);
        argv[0] = "HMGET", argv[1] = key, argv[2] = "address", argv[3] = "pid";
        argv[4] = "started", argv[5] = "connections", argv[6] = "version";
        h = app_ctl_command(x, 7, argv);
        if (h == NULL) {
            rc = APP_CTL_EREDIS;
            break;
        }
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
    for (size_t k = 0; k < recs.n && rc == APP_CTL_OK; k++) {
        char ttl[32], up[32];
        const char *argv[2] = {"HGETALL", recs.v[k]};
        const char *f[6] = {"-", "-", "-", "-", "-", "-"}; /* id address pid started conns ver */
        static const char *const names[6] = {"id",      "address",     "pid",
                                             "started", "connections", "version"};
        redisReply *h;

        if (recs.v[k] == NULL)
            continue;
        h = app_ctl_command(x, 2, argv);
        if (h == NULL) {
            rc = APP_CTL_EREDIS;
            break;
        }
        for (size_t i = 0; i + 1 < h->elements; i += 2)
            for (int j = 0; j < 6; j++)
                if (strcmp(rstr(h->element[i]), names[j]) == 0)
                    f[j] = rstr(h->element[i + 1]);
        if (fmt_pttl(x, recs.v[k], ttl, sizeof(ttl)) != APP_CTL_OK) {
            freeReplyObject(h);
            rc = APP_CTL_EREDIS;
            break;
        }
        fmt_dur(up, sizeof(up),
                strcmp(f[3], "-") != 0 ? x->now_ms - strtoull(f[3], NULL, 10) : UINT64_MAX);
        table_row(&t, f[0], f[1], f[2], up, f[4], f[5], ttl, "unlisted");
        live++;
        freeReplyObject(h);
    }
    if (rc == APP_CTL_OK) {
        table_print(&t, x->out, "no nodes registered");
        fprintf(x->out,
                "%zu live, %zu stale (stale: missed their refreshes; pruned by the next writer)\n",
                live, stale);
        truncated_note(x, &recs);
    } else {
        table_free(&t);
    }
    freeReplyObject(z);
    keys_free(&recs);
    return rc;
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

int app_ctl_sessions(app_ctl_t *x, const char *nsp)
{
    char *pat = ns_pattern(x, nsp, "sess:*");
    keys_t ks;
    table_t t;
    size_t shown = 0;
    int rc = scan(x, pat, "hash", &ks);

    base_free(pat);
    if (rc != APP_CTL_OK)
        return rc;
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
        h = app_ctl_command(x, 7, argv);
        if (h == NULL) {
            base_free(ns);
            rc = APP_CTL_EREDIS;
            break;
        }
        if (h->elements != 5) {
            freeReplyObject(h);
            base_free(ns);
            continue;
        }
        if (fmt_pttl(x, ks.v[k], ttl, sizeof(ttl)) != APP_CTL_OK) {
            freeReplyObject(h);
            base_free(ns);
            rc = APP_CTL_EREDIS;
            break;
        }
        rooms = rooms_text(rstr(h->element[2]), rstr(h->element[0]), &n);
        snprintf(count, sizeof(count), "%zu", n);
        fmt_id_age(x, rstr(h->element[3]), age, sizeof(age));
        table_row(&t, ns, rstr(h->element[1]), rstr(h->element[0]), rooms, count,
                  rstr(h->element[3]), age, rstr(h->element[4]), ttl);
        shown++;
        base_free(rooms);
        base_free(ns);
        freeReplyObject(h);
    }
    if (rc == APP_CTL_OK) {
        table_print(&t, x->out, "no sessions");
        if (shown > 0)
            fprintf(x->out, "%zu session(s); ROOMS leaves out each socket's own id room\n", shown);
        truncated_note(x, &ks);
    } else {
        table_free(&t);
    }
    keys_free(&ks);
    return rc;
}

/* One row of the streams table for stream key; *entries gets its length. */
static int stream_row(app_ctl_t *x, table_t *t, const char *key, uint64_t *entries)
{
    char *ns, len[24], ttl[32], age[32], span[32], first[64] = "-", last[64] = "-";
    const char *rest, *name;
    const char *a2[6] = {"XRANGE", key, "-", "+", "COUNT", "1"};
    const char *a3[6] = {"XREVRANGE", key, "+", "-", "COUNT", "1"};
    redisReply *r;
    unsigned long long fm = 0, lm = 0;

    if (!split_key(x, key, &ns, &rest, "}:"))
        return APP_CTL_OK;
    name = rest;
    if ((r = cmd2(x, "XLEN", key)) == NULL)
        goto fail;
    snprintf(len, sizeof(len), "%lld", r->integer);
    *entries = (uint64_t)r->integer;
    freeReplyObject(r);
    if ((r = app_ctl_command(x, 6, a2)) == NULL)
        goto fail;
    if (r->elements > 0 && r->element[0]->elements > 0)
        snprintf(first, sizeof(first), "%s", rstr(r->element[0]->element[0]));
    freeReplyObject(r);
    if ((r = app_ctl_command(x, 6, a3)) == NULL)
        goto fail;
    if (r->elements > 0 && r->element[0]->elements > 0)
        snprintf(last, sizeof(last), "%s", rstr(r->element[0]->element[0]));
    freeReplyObject(r);
    fmt_id_age(x, strcmp(last, "-") != 0 ? last : NULL, age, sizeof(age));
    if (sscanf(first, "%llu-", &fm) == 1 && sscanf(last, "%llu-", &lm) == 1 && lm >= fm)
        fmt_dur(span, sizeof(span), lm - fm);
    else
        snprintf(span, sizeof(span), "-");
    if (fmt_pttl(x, key, ttl, sizeof(ttl)) != APP_CTL_OK)
        goto fail;
    table_row(t, ns, name, len, first, last, age, span, ttl);
    base_free(ns);
    return APP_CTL_OK;
fail:
    base_free(ns);
    return APP_CTL_EREDIS;
}

int app_ctl_streams(app_ctl_t *x, const char *nsp)
{
    char *pat = ns_pattern(x, nsp, "*");
    keys_t ks;
    table_t t, lt;
    uint64_t total = 0;
    int rc = scan(x, pat, "stream", &ks);

    base_free(pat);
    if (rc != APP_CTL_OK)
        return rc;
    table_init(&t, 8, "NAMESPACE", "STREAM", "ENTRIES", "FIRST", "LAST", "LAST AGE", "SPAN", "TTL");
    for (size_t k = 0; k < ks.n && rc == APP_CTL_OK; k++) {
        uint64_t entries = 0;
        rc = stream_row(x, &t, ks.v[k], &entries);
        total += entries;
    }
    if (rc != APP_CTL_OK) {
        table_free(&t);
        keys_free(&ks);
        return rc;
    }
    table_print(&t, x->out, "no streams");
    if (ks.n > 0)
        fprintf(x->out,
                "%zu stream(s), %" PRIu64 " entries (a broadcast to n rooms is stored n times)\n",
                ks.n, total);
    truncated_note(x, &ks);
    keys_free(&ks);

    /* the namespaces' offset counters */
    pat = ns_pattern(x, nsp, "last");
    rc = scan(x, pat, "string", &ks);
    base_free(pat);
    if (rc != APP_CTL_OK)
        return rc;
    table_init(&lt, 4, "NAMESPACE", "LAST OFFSET", "AGE", "TTL");
    for (size_t k = 0; k < ks.n; k++) {
        char *ns, ttl[32], age[32];
        const char *rest;
        redisReply *r;

        if (!split_key(x, ks.v[k], &ns, &rest, "}:last"))
            continue;
        r = cmd2(x, "GET", ks.v[k]);
        if (r == NULL || fmt_pttl(x, ks.v[k], ttl, sizeof(ttl)) != APP_CTL_OK) {
            freeReplyObject(r);
            base_free(ns);
            rc = APP_CTL_EREDIS;
            break;
        }
        fmt_id_age(x, rstr(r), age, sizeof(age));
        table_row(&lt, ns, rstr(r), age, ttl);
        freeReplyObject(r);
        base_free(ns);
    }
    if (rc == APP_CTL_OK) {
        fputc('\n', x->out);
        table_print(&lt, x->out, "no offset counters");
    } else {
        table_free(&lt);
    }
    keys_free(&ks);
    return rc;
}

int app_ctl_session(app_ctl_t *x, const char *nsp, const char *pid)
{
    size_t len = strlen(x->prefix) + strlen(nsp) + strlen(pid) + 16;
    char *key = base_malloc(len), ttl[32], age[32];
    static const char *const order[] = {"sid",   "pid",    "owner", "offset",
                                        "rooms", "joined", "read",  "data"};
    const char *argv[2] = {"HGETALL", key};
    redisReply *h;

    snprintf(key, len, "%s:{%s}:sess:%s", x->prefix, nsp, pid);
    h = app_ctl_command(x, 2, argv);
    if (h == NULL) {
        base_free(key);
        return APP_CTL_EREDIS;
    }
    if (h->elements == 0) {
        fprintf(x->out,
                "no session %s in namespace %s (key %s): never opened, expired or released\n", pid,
                nsp, key);
        freeReplyObject(h);
        base_free(key);
        return APP_CTL_NOTFOUND;
    }
    /* the TTL first: a failure must not leave the session half printed */
    if (fmt_pttl(x, key, ttl, sizeof(ttl)) != APP_CTL_OK) {
        freeReplyObject(h);
        base_free(key);
        return APP_CTL_EREDIS;
    }
    fprintf(x->out, "%-8s %s\n", "key", key);
    for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++) {
        for (size_t i = 0; i + 1 < h->elements; i += 2) {
            const char *v = rstr(h->element[i + 1]);
            if (strcmp(rstr(h->element[i]), order[o]) != 0)
                continue;
            if (strcmp(order[o], "data") == 0 || strcmp(order[o], "rooms") == 0 ||
                strcmp(order[o], "joined") == 0) {
                cJSON *j = cJSON_Parse(v);
                char *pretty = j != NULL ? cJSON_Print(j) : NULL;
                fprintf(x->out, "%-8s %s\n", order[o], pretty != NULL ? pretty : v);
                cJSON_free(pretty);
                cJSON_Delete(j);
            } else if (strcmp(order[o], "offset") == 0) {
                fmt_id_age(x, v, age, sizeof(age));
                fprintf(x->out, "%-8s %s (%s old)\n", order[o], v, age);
            } else if (strcmp(order[o], "read") == 0) {
                char id[48];
                snprintf(id, sizeof(id), "%.40s-0", v); /* a time in ms: an id's age */
                fmt_id_age(x, id, age, sizeof(age));
                fprintf(x->out, "%-8s %s (%s ago)\n", order[o], v, age);
            } else {
                fprintf(x->out, "%-8s %s\n", order[o], v);
            }
        }
    }
    fprintf(x->out, "%-8s %s\n", "ttl", ttl);
    freeReplyObject(h);
    base_free(key);
    return APP_CTL_OK;
}

/* ------------------------------------------------------------------ queues */

/* The keys of queue (rds_queue.c's rds__qnames_new): the stream P:{q:T}:Q, T = Q without
 * its trailing ".dead"s, its registry, its ready channel and its dead letters. */
typedef struct qkeys {
    char *stream, *registry, *channel, *dead;
} qkeys_t;

static void qkeys_init(qkeys_t *k, const char *prefix, const char *queue)
{
    size_t sl = sizeof(ADP_Q_DEAD_SUFFIX) - 1, t = strlen(queue);
    size_t len = strlen(prefix) + 2 * t + 32;

    while (t > sl && memcmp(queue + t - sl, ADP_Q_DEAD_SUFFIX, sl) == 0)
        t -= sl;
    k->stream = base_malloc(len);
    snprintf(k->stream, len, "%s:{q:%.*s}:%s", prefix, (int)t, queue, queue);
    len = strlen(k->stream) + 16;
    k->registry = base_malloc(len);
    k->channel = base_malloc(len);
    k->dead = base_malloc(len);
    snprintf(k->registry, len, "%s:c", k->stream);
    snprintf(k->channel, len, "%s:ready", k->stream);
    snprintf(k->dead, len, "%s" ADP_Q_DEAD_SUFFIX, k->stream);
}

static void qkeys_free(qkeys_t *k)
{
    base_free(k->stream);
    base_free(k->registry);
    base_free(k->channel);
    base_free(k->dead);
}

/* The value of field name in a flat [name, value, ...] reply (XINFO), or NULL. */
static const redisReply *field(const redisReply *r, const char *name)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (strcmp(rstr(r->element[i]), name) == 0)
            return r->element[i + 1];
    return NULL;
}

/* An integer (or integer text) reply as a cell; "-" for nil and anything else. */
static void fmt_int(char *buf, size_t len, const redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        snprintf(buf, len, "%lld", r->integer);
    else if (r != NULL && r->type == REDIS_REPLY_STRING)
        snprintf(buf, len, "%s", r->str);
    else
        snprintf(buf, len, "-");
}

/* EXISTS key -> *yes. */
static int exists(app_ctl_t *x, const char *key, int *yes)
{
    redisReply *r = cmd2(x, "EXISTS", key);

    if (r == NULL)
        return APP_CTL_EREDIS;
    *yes = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    return APP_CTL_OK;
}

/* XLEN key -> *n (0 for a missing key). */
static int xlen(app_ctl_t *x, const char *key, long long *n)
{
    redisReply *r = cmd2(x, "XLEN", key);

    if (r == NULL)
        return APP_CTL_EREDIS;
    *n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return APP_CTL_OK;
}

/* XINFO GROUPS of an existing stream (the reply), or NULL with x->err. */
static redisReply *xinfo_groups(app_ctl_t *x, const char *key)
{
    const char *argv[3] = {"XINFO", "GROUPS", key};
    redisReply *r = app_ctl_command(x, 3, argv);

    if (r != NULL && r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        fail(x, "unexpected XINFO GROUPS reply");
        return NULL;
    }
    return r;
}

/* XPENDING summary of group: *oldest gets the smallest pending id (empty when none). */
static int oldest_pending(app_ctl_t *x, const char *key, const char *group, char *oldest,
                          size_t len)
{
    const char *argv[3] = {"XPENDING", key, group};
    redisReply *r = app_ctl_command(x, 3, argv);

    if (r == NULL)
        return APP_CTL_EREDIS;
    oldest[0] = '\0';
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        snprintf(oldest, len, "%s", r->element[1]->str);
    freeReplyObject(r);
    return APP_CTL_OK;
}

/* Is id a smaller stream id than best ("" counts as none)? */
static int id_less(const char *id, const char *best)
{
    unsigned long long am = 0, as = 0, bm = 0, bs = 0;

    if (best[0] == '\0')
        return 1;
    sscanf(id, "%llu-%llu", &am, &as);
    sscanf(best, "%llu-%llu", &bm, &bs);
    return am < bm || (am == bm && as < bs);
}

/* Age of a time in ms (a score of P:queues) against Redis' clock. */
static void fmt_ms_age(const app_ctl_t *x, const char *ms_text, char *buf, size_t len)
{
    char id[48];

    snprintf(id, sizeof(id), "%.40s-0", ms_text);
    fmt_id_age(x, ms_text[0] ? id : NULL, buf, len);
}

/* One row of the queues table. */
static int queue_row(app_ctl_t *x, table_t *t, const char *queue, const char *score)
{
    char len[24] = "-", groups[24] = "-", pending[24] = "-", oldest_age[32] = "-", dead[24],
         push[32], oldest[64] = "";
    long long n, nd;
    int has, rc = APP_CTL_EREDIS;
    qkeys_t k;

    qkeys_init(&k, x->prefix, queue);
    if (exists(x, k.stream, &has) != APP_CTL_OK || xlen(x, k.dead, &nd) != APP_CTL_OK)
        goto out;
    if (has) {
        redisReply *g;
        long long total = 0;
        if (xlen(x, k.stream, &n) != APP_CTL_OK || (g = xinfo_groups(x, k.stream)) == NULL)
            goto out;
        snprintf(len, sizeof(len), "%lld", n);
        snprintf(groups, sizeof(groups), "%zu", g->elements);
        for (size_t i = 0; i < g->elements; i++) {
            const redisReply *p = field(g->element[i], "pending");
            char o[64];
            if (p == NULL || p->type != REDIS_REPLY_INTEGER || p->integer <= 0)
                continue;
            total += p->integer;
            if (oldest_pending(x, k.stream, rstr(field(g->element[i], "name")), o, sizeof(o)) !=
                APP_CTL_OK) {
                freeReplyObject(g);
                goto out;
            }
            if (o[0] && id_less(o, oldest))
                snprintf(oldest, sizeof(oldest), "%s", o);
        }
        freeReplyObject(g);
        snprintf(pending, sizeof(pending), "%lld", total);
        if (oldest[0])
            fmt_id_age(x, oldest, oldest_age, sizeof(oldest_age));
    }
    snprintf(dead, sizeof(dead), "%lld", nd);
    fmt_ms_age(x, score, push, sizeof(push));
    table_row(t, queue, len, groups, pending, oldest_age, dead, push);
    rc = APP_CTL_OK;
out:
    qkeys_free(&k);
    return rc;
}

/* Members of the index, by name (qsort over pairs of element pointers). */
static int pair_cmp(const void *a, const void *b)
{
    const redisReply *const *x = a, *const *y = b;
    return strcmp(rstr(x[0]), rstr(y[0]));
}

int app_ctl_queues(app_ctl_t *x)
{
    char zkey[512], stop[24];
    const char *argv[6] = {"ZRANGE", zkey, "0", stop, "REV", "WITHSCORES"};
    redisReply *z, *card, **pairs;
    table_t t;
    size_t n;
    int rc = APP_CTL_OK;

    snprintf(zkey, sizeof(zkey), "%s:queues", x->prefix);
    snprintf(stop, sizeof(stop), "%d", APP_CTL_MAX_KEYS - 1);
    if ((card = cmd2(x, "ZCARD", zkey)) == NULL)
        return APP_CTL_EREDIS;
    /* the most recently pushed: those are the ones kept when there are more */
    if ((z = app_ctl_command(x, 6, argv)) == NULL) {
        freeReplyObject(card);
        return APP_CTL_EREDIS;
    }
    n = z->type == REDIS_REPLY_ARRAY ? z->elements / 2 : 0;
    pairs = base_malloc((n ? n : 1) * 2 * sizeof(*pairs));
    for (size_t i = 0; i < 2 * n; i++)
        pairs[i] = z->element[i];
    qsort(pairs, n, 2 * sizeof(*pairs), pair_cmp);
    table_init(&t, 7, "QUEUE", "LENGTH", "GROUPS", "PENDING", "OLDEST PENDING", "DEAD",
               "LAST PUSH");
    for (size_t i = 0; i < n && rc == APP_CTL_OK; i++)
        rc = queue_row(x, &t, rstr(pairs[2 * i]), rstr(pairs[2 * i + 1]));
    if (rc == APP_CTL_OK) {
        table_print(&t, x->out, "no queues (nothing pushed yet)");
        if (n > 0)
            fprintf(x->out,
                    "%zu queue(s); OLDEST PENDING: age of the oldest message delivered and not "
                    "acknowledged yet\n",
                    n);
        if (card->type == REDIS_REPLY_INTEGER && card->integer > APP_CTL_MAX_KEYS)
            fprintf(x->out, "(listing stopped at the %d most recently pushed of %lld queues)\n",
                    APP_CTL_MAX_KEYS, card->integer);
    } else {
        table_free(&t);
    }
    base_free(pairs);
    freeReplyObject(card);
    freeReplyObject(z);
    return rc;
}

/* The node cell of a consumer: "~ret" is the group's own, a registered one shows its
 * node's uid ("(gone)" after it when that node's record expired), else a worker's. */
static int node_cell(app_ctl_t *x, const char *consumer, const redisReply *owner, char *buf,
                     size_t len)
{
    char key[512];
    int has;

    if (strcmp(consumer, "~ret") == 0) {
        snprintf(buf, len, "(given back)");
        return APP_CTL_OK;
    }
    if (owner == NULL || owner->type != REDIS_REPLY_STRING) {
        snprintf(buf, len, "(worker)");
        return APP_CTL_OK;
    }
    snprintf(key, sizeof(key), "%s:node:%s", x->prefix, owner->str);
    if (exists(x, key, &has) != APP_CTL_OK)
        return APP_CTL_EREDIS;
    snprintf(buf, len, "%s%s", owner->str, has ? "" : " (gone)");
    return APP_CTL_OK;
}

/* One group of app_ctl_queue: its line, then its consumers' table. */
static int queue_group(app_ctl_t *x, const qkeys_t *k, const redisReply *g)
{
    const char *group = rstr(field(g, "name"));
    const char *ldi = rstr(field(g, "last-delivered-id"));
    char pending[24], lag[24], oldest[64], age[32] = "-";
    const char *argv[4] = {"XINFO", "CONSUMERS", k->stream, group};
    redisReply *cs, *owners = NULL;
    table_t t;
    int rc = APP_CTL_OK;

    fmt_int(pending, sizeof(pending), field(g, "pending"));
    fmt_int(lag, sizeof(lag), field(g, "lag"));
    if (oldest_pending(x, k->stream, group, oldest, sizeof(oldest)) != APP_CTL_OK)
        return APP_CTL_EREDIS;
    if (oldest[0])
        fmt_id_age(x, oldest, age, sizeof(age));
    if ((cs = app_ctl_command(x, 4, argv)) == NULL)
        return APP_CTL_EREDIS;
    if (cs->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(cs);
        return fail(x, "unexpected XINFO CONSUMERS reply");
    }
    if (cs->elements > 0) {
        /* the owners of every consumer in one HMGET of the registry */
        size_t n = cs->elements < APP_CTL_MAX_KEYS ? cs->elements : APP_CTL_MAX_KEYS;
        const char **a = base_malloc((n + 2) * sizeof(char *));
        char **fields = base_malloc(n * sizeof(char *));
        a[0] = "HMGET";
        a[1] = k->registry;
        for (size_t i = 0; i < n; i++) {
            const char *name = rstr(field(cs->element[i], "name"));
            size_t l = strlen(group) + strlen(name) + 2;
            fields[i] = base_malloc(l);
            snprintf(fields[i], l, "%s\n%s", group, name);
            a[i + 2] = fields[i];
        }
        owners = app_ctl_command(x, (int)n + 2, a);
        for (size_t i = 0; i < n; i++)
            base_free(fields[i]);
        base_free(fields);
        base_free(a);
        if (owners == NULL) {
            freeReplyObject(cs);
            return APP_CTL_EREDIS;
        }
    }
    fprintf(x->out,
            "\ngroup %s: %zu consumer(s), %s pending, oldest pending %s, last delivered %s, "
            "lag %s\n",
            group, cs->elements, pending, age, ldi[0] ? ldi : "-", lag);
    table_init(&t, 4, "CONSUMER", "NODE", "PENDING", "IDLE");
    for (size_t i = 0; i < cs->elements && i < APP_CTL_MAX_KEYS; i++) {
        const redisReply *c = cs->element[i], *idle = field(c, "idle");
        const char *name = rstr(field(c, "name"));
        char node[128], cp[24], ci[32];
        if (node_cell(x, name,
                      owners != NULL && owners->type == REDIS_REPLY_ARRAY &&
                              i < owners->elements
                          ? owners->element[i]
                          : NULL,
                      node, sizeof(node)) != APP_CTL_OK) {
            rc = APP_CTL_EREDIS;
            break;
        }
        fmt_int(cp, sizeof(cp), field(c, "pending"));
        fmt_dur(ci, sizeof(ci),
                idle != NULL && idle->type == REDIS_REPLY_INTEGER && idle->integer >= 0
                    ? (uint64_t)idle->integer
                    : UINT64_MAX);
        table_row(&t, name, node, cp, ci);
    }
    if (rc == APP_CTL_OK) {
        table_print(&t, x->out, "no consumers");
        if (cs->elements > APP_CTL_MAX_KEYS)
            fprintf(x->out, "(listing stopped at %d consumers)\n", APP_CTL_MAX_KEYS);
    } else {
        table_free(&t);
    }
    freeReplyObject(owners);
    freeReplyObject(cs);
    return rc;
}

int app_ctl_queue(app_ctl_t *x, const char *queue)
{
    char zkey[512], push[48] = "-", first[64] = "-", last[64] = "-";
    const char *a2[6], *a3[6];
    redisReply *r, *g = NULL;
    long long n, nd;
    int has, rc = APP_CTL_EREDIS;
    qkeys_t k;

    qkeys_init(&k, x->prefix, queue);
    if (exists(x, k.stream, &has) != APP_CTL_OK)
        goto out;
    if (!has) {
        fprintf(x->out, "no queue %s (key %s): never pushed to, or deleted\n", queue, k.stream);
        rc = APP_CTL_NOTFOUND;
        goto out;
    }
    snprintf(zkey, sizeof(zkey), "%s:queues", x->prefix);
    {
        const char *argv[3] = {"ZSCORE", zkey, queue};
        if ((r = app_ctl_command(x, 3, argv)) == NULL)
            goto out;
        if (r->type == REDIS_REPLY_STRING) {
            char age[32];
            fmt_ms_age(x, r->str, age, sizeof(age));
            snprintf(push, sizeof(push), "%s ago", age);
        }
        freeReplyObject(r);
    }
    a2[0] = "XRANGE", a2[1] = k.stream, a2[2] = "-", a2[3] = "+", a2[4] = "COUNT", a2[5] = "1";
    a3[0] = "XREVRANGE", a3[1] = k.stream, a3[2] = "+", a3[3] = "-", a3[4] = "COUNT", a3[5] = "1";
    if (xlen(x, k.stream, &n) != APP_CTL_OK || xlen(x, k.dead, &nd) != APP_CTL_OK)
        goto out;
    if ((r = app_ctl_command(x, 6, a2)) == NULL)
        goto out;
    if (r->elements > 0 && r->element[0]->elements > 0)
        snprintf(first, sizeof(first), "%s", rstr(r->element[0]->element[0]));
    freeReplyObject(r);
    if ((r = app_ctl_command(x, 6, a3)) == NULL)
        goto out;
    if (r->elements > 0 && r->element[0]->elements > 0)
        snprintf(last, sizeof(last), "%s", rstr(r->element[0]->element[0]));
    freeReplyObject(r);
    if ((g = xinfo_groups(x, k.stream)) == NULL)
        goto out;
    fprintf(x->out, "%-10s %s\n", "queue", queue);
    fprintf(x->out, "%-10s %s\n", "key", k.stream);
    fprintf(x->out, "%-10s %lld (first %s, last %s)\n", "length", n, first, last);
    fprintf(x->out, "%-10s %s\n", "last push", push);
    fprintf(x->out, "%-10s %zu\n", "groups", g->elements);
    rc = APP_CTL_OK;
    for (size_t i = 0; i < g->elements && rc == APP_CTL_OK; i++)
        rc = queue_group(x, &k, g->element[i]);
    if (rc != APP_CTL_OK)
        goto out;
    fprintf(x->out, "\n%-10s %lld (queue %s" ADP_Q_DEAD_SUFFIX ")\n", "dead", nd, queue);
out:
    freeReplyObject(g);
    qkeys_free(&k);
    return rc;
}

/* Redis' answer to an FCALL of a function it does not have (7.0: "ERR Function not
 * found"). */
static int no_function(const char *err)
{
    return strstr(err, "Function not found") != NULL || strstr(err, "function not found") != NULL;
}

int app_ctl_push(app_ctl_t *x, const char *queue, const char *json, uint64_t max_length,
                 uint64_t max_age_ms)
{
    const char *end = NULL;
    cJSON *j;
    char *text, len[24], age[24], zkey[512], now[24];
    redisReply *r = NULL;
    qkeys_t k;
    int rc = APP_CTL_EREDIS;

    if (!adp_qname_ok(queue)) {
        snprintf(x->err, sizeof(x->err),
                 "invalid queue name: 1 to 200 bytes, no control character");
        return APP_CTL_EINVAL;
    }
    if (max_length < 1) {
        snprintf(x->err, sizeof(x->err), "--max-length must be at least 1");
        return APP_CTL_EINVAL;
    }
    j = cJSON_ParseWithOpts(json, &end, 1);
    if (j == NULL) {
        const char *at = cJSON_GetErrorPtr();
        snprintf(x->err, sizeof(x->err), "invalid JSON payload (at byte %td)",
                 at != NULL && at >= json ? at - json : (ptrdiff_t)0);
        return APP_CTL_EINVAL;
    }
    /* stored compact, as a node stores a payload (rds_queue.c: cJSON_PrintUnformatted) */
    text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (text == NULL) {
        snprintf(x->err, sizeof(x->err), "cannot print the JSON payload");
        return APP_CTL_EINVAL;
    }
    qkeys_init(&k, x->prefix, queue);
    snprintf(len, sizeof(len), "%" PRIu64, max_length);
    snprintf(age, sizeof(age), "%" PRIu64, max_age_ms);
    {
        const char *argv[9] = {"FCALL", "sockeye_qpush", "1", k.stream, k.channel, len, age,
                               "j",     text};
        size_t lens[9];
        for (int i = 0; i < 9; i++)
            lens[i] = strlen(argv[i]);
        for (int attempt = 0; attempt < 2 && r == NULL; attempt++) {
            r = redisCommandArgv(x->c, 9, argv, lens);
            if (r == NULL) {
                fail(x, "redis: %s", x->c->errstr[0] ? x->c->errstr : "no reply");
                goto out;
            }
            if (r->type == REDIS_REPLY_ERROR && attempt == 0 && no_function(r->str)) {
                /* no node with queues ran on this Redis yet: load the library the nodes
                 * load (not REPLACE: a node that loaded it meanwhile keeps its own) */
                size_t lib_len;
                const void *lib = rds_library(&lib_len);
                const char *la[3] = {"FUNCTION", "LOAD", lib};
                size_t ll[3] = {8, 4, lib_len};
                redisReply *lr = redisCommandArgv(x->c, 3, la, ll);
                freeReplyObject(r);
                r = NULL;
                if (lr == NULL) {
                    fail(x, "redis: %s", x->c->errstr[0] ? x->c->errstr : "no reply");
                    goto out;
                }
                if (lr->type == REDIS_REPLY_ERROR && strstr(lr->str, "already exists") == NULL) {
                    fail(x, "redis refused FUNCTION LOAD of the sockeye library: %s", lr->str);
                    freeReplyObject(lr);
                    goto out;
                }
                freeReplyObject(lr);
            }
        }
        if (r->type == REDIS_REPLY_ERROR) {
            fail(x, "redis refused FCALL sockeye_qpush: %s", r->str);
            goto out;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
            r->element[0]->type != REDIS_REPLY_STRING) {
            fail(x, "unexpected sockeye_qpush reply");
            goto out;
        }
    }
    /* the operators' index, as a node writes it (rds_queue.c rds__qindex), on Redis' clock */
    snprintf(zkey, sizeof(zkey), "%s:queues", x->prefix);
    snprintf(now, sizeof(now), "%" PRIu64, x->now_ms);
    {
        const char *argv[5] = {"ZADD", zkey, "GT", now, queue};
        redisReply *z = app_ctl_command(x, 5, argv);
        if (z == NULL)
            goto out;
        freeReplyObject(z);
    }
    fprintf(x->out, "%s\n", r->element[0]->str);
    if (r->element[1]->type == REDIS_REPLY_INTEGER && r->element[1]->integer > 0)
        fprintf(x->out,
                "%lld message(s) dropped by the bounds (max-length %s, max-age %s ms), %lld of "
                "them not acknowledged by every group\n",
                r->element[1]->integer, len, age,
                r->element[2]->type == REDIS_REPLY_INTEGER ? r->element[2]->integer : 0LL);
    rc = APP_CTL_OK;
out:
    freeReplyObject(r);
    cJSON_free(text);
    qkeys_free(&k);
    return rc;
}
