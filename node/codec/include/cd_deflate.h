/* cd_deflate.h -- permessage-deflate (RFC 7692) over byte buffers, free of I/O.
 *
 * The codec does the compression; the caller keeps the policy: which stream serves
 * which connection, the size limit, which messages are worth compressing. Streams are
 * created on first use, so a zeroed state costs nothing until a message needs it.
 *
 * Sending: every message is compressed from a fresh window (the stream is reset after
 * each one), so what one state compresses is valid for any receiver, with or without
 * context takeover, and one state can serve every connection of a server.
 * Receiving: a client may keep its window between messages, so each connection needs
 * its own inflate state, kept until the connection ends.
 */
#ifndef CD_DEFLATE_H
#define CD_DEFLATE_H

#include <stddef.h>

/* A compressor; zero-initialise, release with cd_deflate_end. */
typedef struct cd_deflate {
    void *z; /* z_stream, created on first use */
} cd_deflate_t;

/* A decompressor for one connection; zero-initialise, release with cd_inflate_end. */
typedef struct cd_inflate {
    void *z; /* z_stream, created on first use */
} cd_inflate_t;

/* The bytes of one message being received: reassembled fragments or inflated output.
 * p is the caller's (base_malloc); zero-initialise. */
typedef struct cd_msgbuf {
    unsigned char *p;
    size_t len; /* bytes held */
    size_t cap; /* bytes allocated */
} cd_msgbuf_t;

/* Grows b to at least need bytes, doubling from 4 KiB, but never past limit + 1 (the one
 * byte past a limit is how an oversized message is noticed): the result may hold less
 * than need when need > limit + 1. */
void cd_msgbuf_grow(cd_msgbuf_t *b, size_t need, size_t limit);

/* Compresses one whole message. Returns a new buffer (base_malloc, the caller frees it)
 * holding headroom spare bytes and then *outlen compressed bytes, the trailing
 * 00 00 ff ff already dropped as RFC 7692 wants. NULL when compressing does not pay
 * (the result would not be shorter than len) or the stream cannot be created: the
 * message then goes out uncompressed. */
unsigned char *cd_deflate_msg(cd_deflate_t *d, const unsigned char *in, size_t len, size_t headroom,
                              size_t *outlen);
/* Frees the stream; d is zeroed and usable again. */
void cd_deflate_end(cd_deflate_t *d);

enum {
    CD_INFLATE_OK = 0,
    CD_INFLATE_CORRUPT = -1, /* not a deflate stream, or the stream cannot be created */
    CD_INFLATE_TOO_BIG = -2, /* the message inflates past limit */
};

/* Inflates one received chunk of a compressed message, appending to out; with final
 * (its last chunk) also the 00 00 ff ff the sender dropped. Stops as soon as out holds
 * more than limit bytes, so a deflate bomb costs at most limit + 1 bytes of memory.
 * Returns CD_INFLATE_*; after an error the caller drops the connection. */
int cd_inflate_msg(cd_inflate_t *st, const unsigned char *in, size_t len, int final,
                   cd_msgbuf_t *out, size_t limit);
/* Frees the stream; st is zeroed and usable again. */
void cd_inflate_end(cd_inflate_t *st);

#endif
