/* fuzz_msgpack.c -- node/codec/msgpack.c (the msgpack reader) against arbitrary bytes.
 *
 * Whatever the reader accepts must write back (a tree it built is always writable: depth
 * within CD_MP_MAX_DEPTH, no NUL in strings, every placeholder backed by a buffer) and be
 * stable from then on: written, read and written again, the bytes are the same, and the
 * buffers too. Taking every buffer out of the tree (cd_mp_take_bins) must find them all,
 * in order. UTF-8 repair gets the raw input as well: its result is valid and repairing it
 * again changes nothing. Crashes, leaks and sanitizer reports are the other findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base_alloc.h"
#include "cd_msgpack.h"
#include "cd_utf8.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static void utf8(const uint8_t *data, size_t size)
{
    int changed;
    size_t n = cd_utf8_repair(data, size, NULL, &changed);
    unsigned char *out = base_malloc(n ? n : 1);

    check(cd_utf8_repair(data, size, out, &changed) == n);
    check(changed == !cd_utf8_valid(data, size));
    check(cd_utf8_valid(out, n));
    check(cd_utf8_repair(out, n, NULL, &changed) == n && !changed);
    base_free(out);
}

static void msgpack(const uint8_t *data, size_t size)
{
    cd_mp_bins_t bins = {0}, bins2 = {0};
    cJSON *tree, *tree2;
    sio_bin_t e1, e2, *att;
    size_t n_att;

    if (cd_mp_decode(data, size, &bins, &tree) != SIO_OK) {
        check(bins.n == 0);
        cd_mp_bins_free(&bins);
        return;
    }
    check(tree != NULL);
    check(cd_mp_encode(tree, bins.v, bins.n, &e1) == SIO_OK);
    check(cd_mp_decode(e1.data, e1.len, &bins2, &tree2) == SIO_OK);
    check(bins2.n == bins.n);
    for (size_t i = 0; i < bins.n; i++)
        check(bins2.v[i].len == bins.v[i].len &&
              (bins.v[i].len == 0 || memcmp(bins2.v[i].data, bins.v[i].data, bins.v[i].len) == 0));
    check(cd_mp_encode(tree2, bins2.v, bins2.n, &e2) == SIO_OK);
    check(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0);
    base_free(e2.data);

    /* the whole tree indexes every buffer, numbered from 0: taking them all is the identity */
    check(cd_mp_take_bins(tree, &bins, &att, &n_att) == SIO_OK);
    check(n_att == bins.n);
    check(cd_mp_encode(tree, att, n_att, &e2) == SIO_OK);
    check(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0);
    for (size_t i = 0; i < n_att; i++)
        base_free(att[i].data);
    base_free(att);
    base_free(e1.data);
    base_free(e2.data);

    /* the packet form, when the value is a map (the packets of the Redis adapter are) */
    if (cJSON_IsObject(tree2)) {
        cd_sio_packet_t *p;
        if (cd_mp_packet_from_tree(tree2, &bins2, &p) == SIO_OK) {
            cd_mp_writer_t w;
            check(p->type == CD_SIO_EVENT && cJSON_IsArray(p->data));
            cd_mp_writer_init(&w);
            check(cd_mp_writer_finish(&w, cd_mp_write_packet(&w, p, 0), &e2) == SIO_OK);
            base_free(e2.data);
            cd_sio_packet_free(p);
        }
    }
    cJSON_Delete(tree);
    cJSON_Delete(tree2);
    cd_mp_bins_free(&bins);
    cd_mp_bins_free(&bins2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    utf8(data, size);
    msgpack(data, size);
    return 0;
}
