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

#include <uv.h>

#include "adapter.h"

typedef struct mem_config {
    int recovery;                /* keep a packet log and sessions */
    uint64_t recovery_window_ms; /* maxDisconnectionDuration */
    uint64_t detect_ms;          /* pingInterval + 2 x pingTimeout: how long a dead
                                    connection can pass for alive (log retention) */
    size_t max_log;              /* packets kept at most (oldest dropped first) */
    uint64_t (*now_ms)(void);    /* wall clock in ms; NULL = real time */
    uv_loop_t *loop;             /* the server's loop: its provider offers a queue store
                                    (mem_queue_new) when set, none when NULL */
} mem_config_t;

adp_adapter_t *mem_adapter_new(const char *nsp, const adp_host_t *host, const mem_config_t *cfg);

/* The provider of a server whose every namespace gets a memory adapter with cfg (copied):
 * fills *out (its ud is owned by out->free). */
void mem_provider(const mem_config_t *cfg, adp_provider_t *out);

/* The in-memory queue store (adp_queue.h; mem_queue.c) on loop, cfg and ev copied: the
 * queues of a single node, kept in process and lost with it. NULL on a NULL argument. */
adp_qstore_t *mem_queue_new(uv_loop_t *loop, const adp_qconfig_t *cfg, const adp_qevents_t *ev);

#endif
