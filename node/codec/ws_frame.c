/* ws_frame.c -- headers of the WebSocket data frames the server writes (cd_ws.h). */
#include "cd_ws.h"

#include <stdint.h>

size_t cd_ws_header(unsigned char *end, int binary, int deflated, size_t len)
{
    unsigned char b0 = (unsigned char)(0x80 | (deflated ? 0x40 : 0) | (binary ? 2 : 1));

    if (len < 126) {
        end[-2] = b0;
        end[-1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        end[-4] = b0;
        end[-3] = 126;
        end[-2] = (unsigned char)(len >> 8);
        end[-1] = (unsigned char)len;
        return 4;
    }
    end[-10] = b0;
    end[-9] = 127;
    for (int i = 0; i < 8; i++)
        end[-8 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}
