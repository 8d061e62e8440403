/* base_clock.h -- wall-clock time in milliseconds.
 *
 * Recovery offsets, session expiry and handshake times are wall-clock values that other
 * processes (other nodes, Redis) compare, so they cannot come from the loop's monotonic
 * uv_now. Everything that only measures a delay on this node uses uv_now instead.
 */
#ifndef BASE_CLOCK_H
#define BASE_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t base_now_ms(void);

#endif
