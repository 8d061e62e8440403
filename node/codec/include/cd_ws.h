/* cd_ws.h -- the part of RFC 6455 framing the engine writes itself, free of I/O.
 *
 * libwebsockets parses what clients send and writes the control frames; the engine
 * frames its own data frames (eio_ws.c tells why), so only the header of a server data
 * frame lives here. A server frame is never masked, and the engine never fragments: FIN
 * is always set. RSV1 marks a permessage-deflate message (RFC 7692).
 *
 * The header is written backwards from where the payload starts, into the headroom a
 * frame keeps before its bytes (base_frame_t, BASE_FRAME_PRE), so that header and
 * payload go out contiguous without a copy.
 */
#ifndef CD_WS_H
#define CD_WS_H

#include <stddef.h>

#define CD_WS_HDR_MAX 10 /* longest header of a server frame: 2 + 64-bit length */

/* Close status codes (RFC 6455 section 7.4.1) the engine sends. */
enum cd_ws_close {
    CD_WS_CLOSE_NORMAL = 1000,
    CD_WS_CLOSE_GOINGAWAY = 1001,
    CD_WS_CLOSE_PROTOCOL_ERR = 1002,
    CD_WS_CLOSE_INVALID_PAYLOAD = 1007,
    CD_WS_CLOSE_POLICY_VIOLATION = 1008,
    CD_WS_CLOSE_MESSAGE_TOO_LARGE = 1009,
    CD_WS_CLOSE_UNEXPECTED_CONDITION = 1011,
};

/* Writes the header of a FIN data frame carrying len payload bytes so that it ends
 * right before end (the payload's first byte): text or binary opcode, RSV1 when
 * deflated, the shortest length form (7-bit, 16-bit or 64-bit). The CD_WS_HDR_MAX
 * bytes before end must be writable. Returns the header's length: 2, 4 or 10. */
size_t cd_ws_header(unsigned char *end, int binary, int deflated, size_t len);

#endif
