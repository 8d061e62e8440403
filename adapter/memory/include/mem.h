/* mem.h -- the in-memory adapter: a single node's rooms, broadcasts and connection state
 * recovery, kept in process (lost with the process).
 *
 * The embedded default (no Redis). With recovery on it keeps a log of recoverable
 * packets for the retention (window + detection delay, see memory.c) and bounded by
 * count, and the sessions of recoverably disconnected sockets for the window.
 */
#ifndef MEM_H
#define MEM_H

#include <stddef.h>
#include <stdint.h>

#include "adapter.h"

typedef struct mem_config {
    int recovery;                /* keep a packet log and sessions */
    uint64_t recovery_window_ms; /* maxDisconnectionDuration */
    uint64_t detect_ms;          /* pingInterval + 2 x pingTimeout: how long a dead
                                    connection can pass for alive (log retention) */
    size_t max_log;              /* packets kept at most (oldest dropped first) */
    uint64_t (*now_ms)(void);    /* wall clock in ms; NULL = real time */
} mem_config_t;

adp_adapter_t *mem_adapter_new(const char *nsp, const adp_host_t *host, const mem_config_t *cfg);

/* The provider of a server whose every namespace gets a memory adapter with cfg (copied):
 * fills *out (its ud is owned by out->free). */
void mem_provider(const mem_config_t *cfg, adp_provider_t *out);

#endif
