/* sio_embed.c -- sio_server_new: the embedding API's default server, whose namespaces
 * use the in-memory adapter.
 *
 * This is wiring, not protocol: the protocol (node/protocol) builds a server on whatever
 * adapter provider it is given and names no implementation, the memory adapter
 * (adapter/memory) knows nothing of servers. Choosing one for the other happens here, on
 * top of both, with the recovery settings the server was configured with.
 */
#include "mem.h"
#include "sio_provider.h"

/* See sockeye.h. */
sio_server_t *sio_server_new(uv_loop_t *loop, const sio_config_t *cfg)
{
    sio_config_t def;
    adp_provider_t p;

    if (cfg == NULL) {
        sio_config_init(&def);
        cfg = &def;
    }
    mem_config_t mc = {
        .recovery = cfg->recovery,
        .recovery_window_ms = cfg->recovery_window_ms,
        /* how long a dead connection can pass for alive: the log outlives it */
        .detect_ms = (uint64_t)cfg->ping_interval_ms + 2u * (uint64_t)cfg->ping_timeout_ms,
        .max_log = 100000,
        .now_ms = NULL,
        .loop = loop, /* queues (sockeye_queue.h) kept in process */
    };
    mem_provider(&mc, &p);
    return sio__server_create(loop, cfg, &p);
}
