/* cd_msgpack.h -- msgpack as notepack.io reads and writes it, to and from cJSON trees.
 *
 * notepack.io is the msgpack library of @socket.io/redis-adapter and redis-emitter, so a
 * Sockeye node that shares a cluster with Node.js servers must read every byte they write
 * and write the bytes they would write. This module does that and nothing else: no I/O, no
 * adapter, no Redis, which is what lets it be unit-tested and fuzzed alone.
 *
 * Model: values are cJSON trees. A msgpack bin value becomes the Socket.IO placeholder
 * {"_placeholder":true,"num":k} in the tree with its bytes appended to a bins list, numbered
 * depth-first in the order they were read -- the model of cd_sio_packet_t, so a subtree
 * taken out with its buffers (cd_mp_take_bins) is packet data the protocol can send as it is.
 * Writing goes the other way: a placeholder is written as bin with the bytes it indexes.
 *
 * Reading is hand-written rather than msgpack_unpack_next: msgpack-c 4.0 allocates
 * count * sizeof(msgpack_object) up front for a declared array (5 input bytes asked malloc
 * for 8 GB in our test) and caps nesting at 32 by a compile-time constant. The reader checks
 * every declared length against the bytes left before it allocates, bounds nesting at
 * CD_MP_MAX_DEPTH and builds the tree in one pass. Writing uses msgpack-c's packer, whose
 * integer/str/bin forms are notepack's (smallest form), into a buffer that grows through
 * base_realloc.
 *
 * Where Node is lenient we follow it when that is harmless: strings with ill-formed UTF-8
 * get U+FFFD as Buffer.toString gives (cd_utf8.h); notepack's extensions read as Node sees
 * them (timestamp ext -1 and legacy fixext8 type 0 become the ISO string JSON.stringify
 * prints for the Date, ext type 0 is binary, d4 00 xx is undefined, any other ext is
 * [type, <bin>]). We refuse what would hurt our invariants: strings holding NUL (cJSON
 * strings cannot), non-string map keys (JS objects have none), and literal placeholder
 * objects (they would alias the buffers). Every failure frees what it built; no input can
 * crash, hang or leak.
 */
#ifndef CD_MSGPACK_H
#define CD_MSGPACK_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cd_sio_packet.h"
#include "sockeye_common.h"

/* Deepest nesting of arrays and maps accepted in one message, the outermost container
 * included. Deeper trees are refused both ways (SIO_ETOOBIG): the reader and the writer
 * recurse once per level. */
#define CD_MP_MAX_DEPTH 64

/* ---------------------------------------------------------------- reading */

/* The buffers of the bin values met while reading one message, in depth-first order.
 * One per message, owned by the caller; start from {0}. An entry moved out by
 * cd_mp_take_bins is left {NULL, 0}. */
typedef struct cd_mp_bins {
    sio_bin_t *v; /* owned array of owned buffers (data never NULL for a present one) */
    size_t n;
    size_t cap;
} cd_mp_bins_t;

/* Frees every buffer still in b and the array, and zeroes b. NULL is ignored. */
void cd_mp_bins_free(cd_mp_bins_t *b);

/* Reads one whole message buf[0..len) into a new tree *out (cJSON_Delete), appending the
 * buffers of its bin values to bins (their placeholders number them from bins->n on).
 * Every standard format is read; ext values as described above. A map value that is JS
 * undefined drops its key, and an undefined array element reads as null (as JSON.stringify
 * would print them); a message that is undefined as a whole is refused.
 * Fails with SIO_EPARSE (empty or NULL input, truncated, bytes left after the value as
 * notepack refuses them, the never-used byte c1, a declared length beyond the input, a map
 * key that is not a string, a string holding NUL, a literal {"_placeholder": true}, a
 * timestamp 96 of the wrong size) or SIO_ETOOBIG (deeper than CD_MP_MAX_DEPTH); SIO_ENOMEM
 * only if cJSON's allocator fails (ours aborts instead); SIO_EINVAL when bins is NULL.
 * On failure *out is NULL and bins holds the buffers it held before the call (its array
 * may have grown: cd_mp_bins_free it in any case). */
int cd_mp_decode(const void *buf, size_t len, cd_mp_bins_t *bins, cJSON **out);

/* Moves the buffers that the placeholders of tree index out of bins into a new array
 * (*att, *n; base_free each data and the array; NULL / 0 when tree has none) and renumbers
 * those placeholders from 0. A subtree of one read message indexes a contiguous run of
 * bins (depth-first numbering), so buffers of the rest of the message never alias these.
 * bins NULL means the tree came without buffers (JSON): any placeholder in it is refused.
 * SIO_EPARSE when a placeholder has no buffer: bins NULL, num not a number or outside bins,
 * a run that is not contiguous. On failure *att / *n are NULL / 0, bins is unchanged, and
 * the placeholders of tree may be partly renumbered. */
int cd_mp_take_bins(cJSON *tree, cd_mp_bins_t *bins, sio_bin_t **att, size_t *n);

/* The Socket.IO packet form {type, data, nsp} that the Redis adapter carries, read from a
 * tree (of a msgpack message with its bins, or of JSON with bins NULL) into a new EVENT
 * packet *out (cd_sio_packet_free): nsp from "nsp" or "/", id -1, data detached from obj,
 * its buffers taken from bins (cd_mp_take_bins). "type" may be absent, 2 (EVENT) or 5
 * (BINARY_EVENT, what emitters of the socket.io 2 era wrote); data must be what
 * socket.io-client accepts as an event, [name, ...] whose name is a non-reserved string or
 * a finite number, or every client would drop its connection. SIO_EPARSE otherwise, with
 * *out NULL and obj untouched (except a failed cd_mp_take_bins: data is then detached and
 * freed). */
int cd_mp_packet_from_tree(cJSON *obj, cd_mp_bins_t *bins, cd_sio_packet_t **out);

/* ---------------------------------------------------------------- writing */

/* A message being written. One per message, on the caller's stack: cd_mp_writer_init,
 * then cd_mp_write_* calls (each returns SIO_OK or an error; stop at the first), then
 * cd_mp_writer_finish, which hands the bytes over or frees them. */
typedef struct cd_mp_writer {
    unsigned char *data; /* grows through base_realloc */
    size_t len;
    size_t cap;
} cd_mp_writer_t;

void cd_mp_writer_init(cd_mp_writer_t *w);

/* Ends w: with rc SIO_OK, *out takes the bytes (base_free(out->data)); otherwise they are
 * freed and *out is {NULL, 0}. Returns rc. */
int cd_mp_writer_finish(cd_mp_writer_t *w, int rc, sio_bin_t *out);

/* Headers and scalars, each in the smallest form (as notepack). A container header is
 * followed by n values (a map: n key/value pairs). SIO_OK, or SIO_ENOMEM when the buffer
 * cannot grow any more (past SIZE_MAX / 2). */
int cd_mp_write_array(cd_mp_writer_t *w, size_t n);
int cd_mp_write_map(cd_mp_writer_t *w, size_t n);
int cd_mp_write_str(cd_mp_writer_t *w, const char *s);
int cd_mp_write_int(cd_mp_writer_t *w, int64_t v);
int cd_mp_write_bool(cd_mp_writer_t *w, int v);
/* An array of the n strings of v; SIO_EINVAL when one of them is NULL. */
int cd_mp_write_strs(cd_mp_writer_t *w, const char *const *v, size_t n);

/* Writes the tree v found inside depth containers of the message. Numbers follow
 * notepack's rule: an integral value within [-2^63, 2^64) as the smallest int form,
 * anything else as float64 (notepack wraps integral values past 2^64 around; we keep
 * them as float64). A placeholder is written as bin with the bytes bins[num] (as
 * socket.io-parser recognises one: an object whose "_placeholder" is true). Object keys
 * are written in tree order. SIO_EINVAL: v NULL, a placeholder whose num does not index
 * bins, a cJSON raw or invalid item, a NULL key or string; SIO_ETOOBIG: a container past
 * CD_MP_MAX_DEPTH. */
int cd_mp_write_json(cd_mp_writer_t *w, const cJSON *v, const sio_bin_t *bins, size_t n_bins,
                     int depth);

/* Writes p as {type: 2, data, nsp} (the map the Redis adapter carries; receivers re-encode
 * for their clients, so the type is always EVENT and the ack id is never written), found
 * inside depth containers; p->attach are the buffers of data's placeholders. SIO_EINVAL
 * when p is not an EVENT / BINARY_EVENT whose data is an array, or has no nsp, or announces
 * buffers it lacks; otherwise as cd_mp_write_json. */
int cd_mp_write_packet(cd_mp_writer_t *w, const cd_sio_packet_t *p, int depth);

/* One tree as a whole message: cd_mp_write_json at depth 0 into a new buffer *out
 * (base_free(out->data)); *out is {NULL, 0} on failure. */
int cd_mp_encode(const cJSON *v, const sio_bin_t *bins, size_t n_bins, sio_bin_t *out);

#endif
