/* rds_channel.h -- the pub/sub channel names of @socket.io/redis-adapter 8.x (spec §1).
 *
 * Every channel of namespace N under channel prefix K is K <infix> N "#" [arg "#"]. A node
 * builds the names it subscribes and publishes on, and classifies the names Redis hands
 * back with a message, exactly as the Node adapter does, so Node nodes, emitters and
 * Sockeye nodes meet on the same channels. Pure string work: no I/O, no allocation when
 * parsing.
 */
#ifndef RDS_CHANNEL_H
#define RDS_CHANNEL_H

#include <stddef.h>

/* The pub/sub channels of one namespace N under key prefix K (spec §1). */
typedef enum rds_chan {
    RDS_CHAN_NONE = 0,     /* not a channel of this (K, N) */
    RDS_CHAN_BROADCAST,    /* K#N#               broadcasts not aimed at exactly one room */
    RDS_CHAN_ROOM,         /* K#N#<room>#        broadcast to exactly one room */
    RDS_CHAN_PATTERN,      /* K#N#*              what the node PSUBSCRIBEs (glob-escaped) */
    RDS_CHAN_REQUEST,      /* K-request#N#       requests; NUMSUB counts the nodes */
    RDS_CHAN_RESPONSE,     /* K-response#N#      responses to anyone */
    RDS_CHAN_RESPONSE_UID, /* K-response#N#<uid># responses to one node */
} rds_chan_t;

/* Builds the channel name of the given kind. arg is the room (RDS_CHAN_ROOM) or the node
 * uid (RDS_CHAN_RESPONSE_UID) and ignored otherwise. In RDS_CHAN_PATTERN the glob
 * metacharacters of K and N (* ? [ ] \) are backslash-escaped so the pattern matches
 * exactly this namespace's channels. Returns a new string (base_free), or NULL when key or
 * nsp is NULL, arg is missing for a kind that needs it, or kind is RDS_CHAN_NONE. */
char *rds_channel(rds_chan_t kind, const char *key, const char *nsp, const char *arg);

/* Classifies a channel name received from Redis (message or pmessage) against namespace
 * nsp under key: returns its kind and, for RDS_CHAN_ROOM / RDS_CHAN_RESPONSE_UID, points
 * *arg / *arg_len at the room / uid inside chan (not NUL-terminated; both set to NULL / 0
 * for the other kinds). Mirrors the Node adapter: the room is everything between "K#N#" and
 * the final '#', so rooms may contain '#'; "K#N##" counts as the plain broadcast channel
 * (an empty room means no filter). A name with the prefix but without the final '#' is
 * RDS_CHAN_NONE. Never allocates; arg and arg_len may be NULL. */
rds_chan_t rds_channel_parse(const char *key, const char *nsp, const char *chan, size_t len,
                             const char **arg, size_t *arg_len);

#endif
