/* rds_channel.c -- pub/sub channel names of @socket.io/redis-adapter 8.x (rds_channel.h).
 *
 * One table gives every kind's shape; building measures, then writes (two passes over the
 * same code, so the length cannot disagree with the bytes), and parsing matches the fixed
 * prefix part by part without building anything.
 */
#include "rds_channel.h"

#include <string.h>

#include "base_alloc.h"

/* Every channel is K <infix> N "#" [arg "#"]; the table is the spec's channel list. */
static const struct rds__chan_fmt {
    const char *infix;
    unsigned char arg;     /* followed by arg "#" */
    unsigned char pattern; /* glob: escaped, then "*" */
} rds__chans[] = {
    [RDS_CHAN_BROADCAST] = {"#", 0, 0},         [RDS_CHAN_ROOM] = {"#", 1, 0},
    [RDS_CHAN_PATTERN] = {"#", 0, 1},           [RDS_CHAN_REQUEST] = {"-request#", 0, 0},
    [RDS_CHAN_RESPONSE] = {"-response#", 0, 0}, [RDS_CHAN_RESPONSE_UID] = {"-response#", 1, 0},
};

/* Appends s to d at *o (escaping glob metacharacters when glob); d NULL only counts. */
static void rds__chan_put(char *d, size_t *o, const char *s, int glob)
{
    for (; *s; s++) {
        if (glob && strchr("*?[]\\", *s) != NULL) {
            if (d)
                d[*o] = '\\';
            (*o)++;
        }
        if (d)
            d[*o] = *s;
        (*o)++;
    }
}

/* New channel name (base_free) or NULL on a missing argument; see rds_channel.h. */
char *rds_channel(rds_chan_t kind, const char *key, const char *nsp, const char *arg)
{
    const struct rds__chan_fmt *f;
    char *d = NULL;
    size_t o;

    if (kind <= RDS_CHAN_NONE || kind > RDS_CHAN_RESPONSE_UID || key == NULL || nsp == NULL)
        return NULL;
    f = &rds__chans[kind];
    if (f->arg && arg == NULL)
        return NULL;
    /* two passes: measure, then write */
    for (int pass = 0; pass < 2; pass++) {
        o = 0;
        rds__chan_put(d, &o, key, f->pattern);
        rds__chan_put(d, &o, f->infix, 0);
        rds__chan_put(d, &o, nsp, f->pattern);
        rds__chan_put(d, &o, "#", 0);
        if (f->arg) {
            rds__chan_put(d, &o, arg, 0);
            rds__chan_put(d, &o, "#", 0);
        }
        if (f->pattern)
            rds__chan_put(d, &o, "*", 0);
        if (pass == 0)
            d = base_malloc(o + 1);
    }
    d[o] = '\0';
    return d;
}

/* Matches key infix nsp "#" at the start of chan; returns the prefix length or 0. */
static size_t rds__chan_prefix(const char *key, const char *infix, const char *nsp,
                               const char *chan, size_t len)
{
    const char *parts[] = {key, infix, nsp, "#"};
    size_t o = 0;

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        size_t n = strlen(parts[i]);
        if (len - o < n || memcmp(chan + o, parts[i], n) != 0)
            return 0;
        o += n;
    }
    return o;
}

/* Kind of chan for (key, nsp), room/uid pointed into chan; never allocates. */
rds_chan_t rds_channel_parse(const char *key, const char *nsp, const char *chan, size_t len,
                             const char **arg, size_t *arg_len)
{
    const char *a = NULL;
    size_t alen = 0, n;
    rds_chan_t kind = RDS_CHAN_NONE;

    if (key == NULL || nsp == NULL || chan == NULL)
        goto out;
    if ((n = rds__chan_prefix(key, "#", nsp, chan, len)) > 0) {
        if (n == len) {
            kind = RDS_CHAN_BROADCAST;
        } else if (chan[len - 1] == '#') {
            a = chan + n;
            alen = len - n - 1;
            kind = alen > 0 ? RDS_CHAN_ROOM : RDS_CHAN_BROADCAST;
        }
    } else if ((n = rds__chan_prefix(key, "-request#", nsp, chan, len)) > 0) {
        if (n == len)
            kind = RDS_CHAN_REQUEST;
    } else if ((n = rds__chan_prefix(key, "-response#", nsp, chan, len)) > 0) {
        if (n == len) {
            kind = RDS_CHAN_RESPONSE;
        } else if (len - n >= 2 && chan[len - 1] == '#') {
            a = chan + n;
            alen = len - n - 1;
            kind = RDS_CHAN_RESPONSE_UID;
        }
    }
    if (kind != RDS_CHAN_ROOM && kind != RDS_CHAN_RESPONSE_UID) {
        a = NULL;
        alen = 0;
    }
out:
    if (arg)
        *arg = a;
    if (arg_len)
        *arg_len = alen;
    return kind;
}
