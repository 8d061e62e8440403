/* test_memory.c -- adapter/memory.c (and the adapter.c helpers): delivery, offsets,
 * the packet log, session save/restore and expiry, all on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mem.h"
#include "base_alloc.h"

#define WINDOW 1000u
#define DETECT 500u
#define RETAIN (WINDOW + DETECT + 10000u) /* log retention: memory.c, MEM_SLACK_MS */

/* Bounded append; a test string that would not fit fails the test. */
static void append(char *dst, size_t cap, const char *src)
{
    size_t len = strlen(dst), add = strlen(src);
    assert_true(len + add < cap);
    memcpy(dst + len, src, add + 1);
}

/* ------------------------------------------------------------------ fixtures */

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
    return fake_now;
}

/* What the host saw: one record per deliver() call. */
typedef struct delivered {
    char *json; /* pkt->data as compact JSON */
    cd_sio_ptype_t type;
    const adp_opts_t *opts; /* the pointer handed in (checked against the caller's) */
    size_t n_rooms, n_except;
    unsigned flags;
} delivered_t;

/* What a restore callback got. */
typedef struct restored {
    int calls;
    int err;
    adp_session_t *s;
    cd_sio_packet_t **missed;
    size_t n_missed;
} restored_t;

typedef struct fx {
    adp_adapter_t *a;
    delivered_t out[64];
    size_t n_out;
    restored_t r;
} fx_t;

static void host_deliver(void *ud, const cd_sio_packet_t *pkt, const adp_opts_t *opts)
{
    fx_t *f = ud;
    assert_true(f->n_out < 64);
    delivered_t *d = &f->out[f->n_out++];
    d->json = pkt->data ? cJSON_PrintUnformatted(pkt->data) : NULL;
    d->type = pkt->type;
    d->opts = opts;
    d->n_rooms = opts->n_rooms;
    d->n_except = opts->n_except;
    d->flags = opts->flags;
}

/* Takes ownership as the contract says: the packets are copied out of the adapter's
 * array, which the adapter frees after we return. */
static void restore_cb(void *ud, int err, adp_session_t *s, cd_sio_packet_t **missed, size_t n)
{
    fx_t *f = ud;
    f->r.calls++;
    f->r.err = err;
    f->r.s = s;
    f->r.n_missed = n;
    f->r.missed = NULL;
    if (n) {
        f->r.missed = base_malloc(n * sizeof(cd_sio_packet_t *));
        memcpy(f->r.missed, missed, n * sizeof(cd_sio_packet_t *));
    }
}

static void restored_reset(fx_t *f)
{
    for (size_t i = 0; i < f->r.n_missed; i++)
        cd_sio_packet_free(f->r.missed[i]);
    base_free(f->r.missed);
    adp_session_free(f->r.s);
    memset(&f->r, 0, sizeof(f->r));
}

static fx_t *fx_new(int recovery, size_t max_log)
{
    fx_t *f = test_calloc(1, sizeof(*f));
    adp_host_t host = {.ud = f, .deliver = host_deliver};
    mem_config_t cfg = {
        .recovery = recovery,
        .recovery_window_ms = WINDOW,
        .detect_ms = DETECT,
        .max_log = max_log,
        .now_ms = fake_clock,
    };
    fake_now = 1000;
    f->a = mem_adapter_new("/chat", &host, &cfg);
    return f;
}

static int setup_recovery(void **state)
{
    *state = fx_new(1, 0);
    return 0;
}

static int setup_small_log(void **state)
{
    *state = fx_new(1, 3);
    return 0;
}

static int setup_plain(void **state)
{
    *state = fx_new(0, 0);
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    restored_reset(f);
    for (size_t i = 0; i < f->n_out; i++)
        cJSON_free(f->out[i].json);
    f->a->vt->destroy(f->a);
    test_free(f);
    return 0;
}

/* ------------------------------------------------------------------ helpers */

/* Broadcasts ["name", n] with the given targets; returns its offset ("" when none). */
static const char *emit(fx_t *f, const char *name, int n, const char *const *rooms, size_t n_rooms,
                        const char *const *except, size_t n_except, unsigned flags)
{
    static char offset[64];
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, "/chat");
    adp_opts_t opts = {rooms, n_rooms, except, n_except, flags, NULL};
    p->data = cJSON_CreateArray();
    cJSON_AddItemToArray(p->data, cJSON_CreateString(name));
    cJSON_AddItemToArray(p->data, cJSON_CreateNumber(n));
    size_t before = f->n_out;
    assert_int_equal(f->a->vt->broadcast(f->a, p, &opts), SIO_OK);
    assert_int_equal(f->n_out, before + 1);
    assert_ptr_equal(f->out[before].opts, &opts);
    assert_int_equal(f->out[before].n_rooms, n_rooms);
    assert_int_equal(f->out[before].n_except, n_except);
    assert_int_equal(f->out[before].flags, flags);

    offset[0] = '\0';
    int size = cJSON_GetArraySize(p->data);
    if (size == 3) {
        const cJSON *last = cJSON_GetArrayItem(p->data, 2);
        assert_true(cJSON_IsString(last));
        snprintf(offset, sizeof(offset), "%s", last->valuestring);
    } else {
        assert_int_equal(size, 2);
    }
    cd_sio_packet_free(p);
    return offset;
}

static void save(fx_t *f, const char *sid, const char *pid, const char *const *rooms, size_t n)
{
    adp_session_t s = {0};
    s.sid = (char *)sid;
    s.pid = (char *)pid;
    s.rooms = (char **)rooms;
    s.n_rooms = n;
    s.data = cJSON_Parse("{\"user\":\"ann\"}");
    assert_int_equal(f->a->vt->save_session(f->a, &s), SIO_OK);
    cJSON_Delete(s.data); /* the adapter keeps its own copy */
}

static int restore(fx_t *f, const char *pid, const char *offset)
{
    restored_reset(f);
    assert_int_equal(f->a->vt->restore_session(f->a, pid, offset, restore_cb, f), SIO_OK);
    assert_int_equal(f->r.calls, 1);
    if (f->r.err != SIO_OK) {
        assert_null(f->r.s);
        assert_null(f->r.missed);
        assert_int_equal(f->r.n_missed, 0);
    }
    return f->r.err;
}

/* The missed packets as "name:n,name:n" with each offset checked to be last. */
static const char *missed_names(fx_t *f)
{
    static char out[512];
    out[0] = '\0';
    for (size_t i = 0; i < f->r.n_missed; i++) {
        const cd_sio_packet_t *p = f->r.missed[i];
        assert_int_equal(p->type, CD_SIO_EVENT);
        assert_string_equal(p->nsp, "/chat");
        assert_int_equal(cJSON_GetArraySize(p->data), 3);
        assert_true(cJSON_IsString(cJSON_GetArrayItem(p->data, 2)));
        char one[64];
        snprintf(one, sizeof(one), "%s%s:%d", i ? "," : "",
                 cJSON_GetArrayItem(p->data, 0)->valuestring,
                 cJSON_GetArrayItem(p->data, 1)->valueint);
        append(out, sizeof(out), one);
    }
    return out;
}

static int offset_cmp(const char *a, const char *b)
{
    unsigned long long am, as, bm, bs;
    assert_int_equal(sscanf(a, "%llu-%llu", &am, &as), 2);
    assert_int_equal(sscanf(b, "%llu-%llu", &bm, &bs), 2);
    if (am != bm)
        return am < bm ? -1 : 1;
    return as < bs ? -1 : as > bs;
}

/* ------------------------------------------------------------------ tests */

static void test_plain_deliver(void **state)
{
    fx_t *f = *state;
    const char *const r1[] = {"r1"};
    const char *const ex[] = {"x", "y"};
    assert_string_equal(f->a->nsp, "/chat");
    assert_string_equal(emit(f, "a", 1, r1, 1, ex, 2, ADP_NOCOMPRESS), "");
    assert_string_equal(f->out[0].json, "[\"a\",1]");
    assert_string_equal(emit(f, "b", 2, NULL, 0, NULL, 0, 0), "");

    /* no recovery: nothing saved, every restore fails (and still calls back once) */
    adp_session_t s = {.sid = (char *)"s", .pid = (char *)"p"};
    assert_int_equal(f->a->vt->save_session(f->a, &s), SIO_EINVAL);
    assert_int_equal(restore(f, "p", "1000-0"), SIO_ENOTFOUND);
}

static void test_offsets_increasing(void **state)
{
    fx_t *f = *state;
    char prev[64] = "";
    struct {
        uint64_t now;
        const char *want;
    } steps[] = {
        {1000, "1000-0"}, {1000, "1000-1"}, {1000, "1000-2"},
        {1001, "1001-0"}, {5000, "5000-0"}, {4000, "5000-1"}, /* clock stepped back: still after */
        {4999, "5000-2"}, {5000, "5000-3"}, {5001, "5001-0"},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        fake_now = steps[i].now;
        const char *off = emit(f, "e", (int)i, NULL, 0, NULL, 0, 0);
        assert_string_equal(off, steps[i].want);
        /* the delivered packet carries the same offset as its last element */
        char want_json[96];
        snprintf(want_json, sizeof(want_json), "[\"e\",%zu,\"%s\"]", i, off);
        assert_string_equal(f->out[i].json, want_json);
        if (prev[0])
            assert_int_equal(offset_cmp(prev, off), -1);
        snprintf(prev, sizeof(prev), "%s", off);
    }
}

/* Volatile, acked, non-EVENT and non-array packets are delivered untouched and never
 * replayed; binary events are logged like text ones. */
static void test_not_logged(void **state)
{
    fx_t *f = *state;
    const char *const own[] = {"sid1"};
    save(f, "sid1", "pid1", own, 1);
    char first[64];
    snprintf(first, sizeof(first), "%s", emit(f, "first", 0, NULL, 0, NULL, 0, 0));

    assert_string_equal(emit(f, "vol", 1, NULL, 0, NULL, 0, ADP_VOLATILE), "");
    assert_string_equal(emit(f, "vol2", 2, own, 1, NULL, 0, ADP_VOLATILE | ADP_LOCAL), "");

    cd_sio_packet_t *acked = cd_sio_packet_new(CD_SIO_EVENT, "/chat");
    acked->id = 7;
    acked->data = cJSON_Parse("[\"acked\",3]");
    adp_opts_t all = {0};
    f->a->vt->broadcast(f->a, acked, &all);
    assert_int_equal(cJSON_GetArraySize(acked->data), 2);
    cd_sio_packet_free(acked);

    cd_sio_packet_t *ack = cd_sio_packet_new(CD_SIO_ACK, "/chat");
    ack->data = cJSON_Parse("[\"ack\",4]");
    f->a->vt->broadcast(f->a, ack, &all);
    assert_int_equal(cJSON_GetArraySize(ack->data), 2);
    cd_sio_packet_free(ack);

    cd_sio_packet_t *odd = cd_sio_packet_new(CD_SIO_EVENT, "/chat");
    odd->data = cJSON_Parse("{\"not\":\"array\"}");
    f->a->vt->broadcast(f->a, odd, NULL); /* NULL opts = everyone */
    assert_int_equal(f->out[f->n_out - 1].n_rooms, 0);
    cd_sio_packet_free(odd);

    cd_sio_packet_t *bin = cd_sio_packet_new(CD_SIO_BINARY_EVENT, "/chat");
    bin->data = cJSON_Parse("[\"bin\",5,{\"_placeholder\":true,\"num\":0}]");
    unsigned char bytes[] = {1, 2, 3};
    sio_bin_t b = {bytes, sizeof(bytes)};
    cd_sio_packet_add_attachments(bin, &b, 1);
    f->a->vt->broadcast(f->a, bin, &all);
    assert_int_equal(cJSON_GetArraySize(bin->data), 4);
    cd_sio_packet_free(bin);

    assert_int_equal(f->n_out, 7);
    assert_int_equal(restore(f, "pid1", first), SIO_OK);
    assert_int_equal(f->r.n_missed, 1);
    const cd_sio_packet_t *got = f->r.missed[0];
    assert_int_equal(got->type, CD_SIO_BINARY_EVENT);
    assert_string_equal(cJSON_GetArrayItem(got->data, 0)->valuestring, "bin");
    assert_int_equal(got->n_attach, 1);
    assert_memory_equal(got->attach[0].data, bytes, sizeof(bytes));
    assert_true(cJSON_IsString(cJSON_GetArrayItem(got->data, 3)));
}

/* Session sid1 in rooms {sid1, r1}: what it missed follows the Node rule. */
static void test_restore_filters(void **state)
{
    fx_t *f = *state;
    const char *const own[] = {"sid1", "r1"};
    const char *const r1[] = {"r1"};
    const char *const r2[] = {"r2"};
    const char *const r1r2[] = {"r1", "r2"};
    const char *const sid1[] = {"sid1"};
    const char *const ex_r1[] = {"r1"};
    const char *const ex_sid1[] = {"sid1"};
    const char *const ex_other[] = {"zz"};

    char start[64];
    snprintf(start, sizeof(start), "%s", emit(f, "before", 0, NULL, 0, NULL, 0, 0));
    fake_now += 10;
    save(f, "sid1", "pid1", own, 2);
    fake_now += 10;

    emit(f, "all", 1, NULL, 0, NULL, 0, 0);        /* yes: no rooms */
    emit(f, "to-r1", 2, r1, 1, NULL, 0, 0);        /* yes: shares r1 */
    emit(f, "to-r2", 3, r2, 1, NULL, 0, 0);        /* no: not in r2 */
    emit(f, "to-r1r2", 4, r1r2, 2, NULL, 0, 0);    /* yes: union */
    emit(f, "direct", 5, sid1, 1, NULL, 0, 0);     /* yes: socket.emit */
    emit(f, "all-ex-r1", 6, NULL, 0, ex_r1, 1, 0); /* no: in except */
    emit(f, "r1-ex-me", 7, r1, 1, ex_sid1, 1, 0);  /* no: broadcast.emit by me */
    emit(f, "r1-ex-zz", 8, r1, 1, ex_other, 1, 0); /* yes */
    emit(f, "r2-ex-zz", 9, r2, 1, ex_other, 1, 0); /* no */
    fake_now += 10;
    emit(f, "last", 10, NULL, 0, NULL, 0, 0); /* yes */

    fake_now += WINDOW / 2;
    assert_int_equal(restore(f, "pid1", start), SIO_OK);
    assert_string_equal(missed_names(f), "all:1,to-r1:2,to-r1r2:4,direct:5,r1-ex-zz:8,last:10");
    /* offsets in order, strictly increasing */
    for (size_t i = 1; i < f->r.n_missed; i++) {
        assert_int_equal(offset_cmp(cJSON_GetArrayItem(f->r.missed[i - 1]->data, 2)->valuestring,
                                    cJSON_GetArrayItem(f->r.missed[i]->data, 2)->valuestring),
                         -1);
    }
    /* the session comes back whole */
    adp_session_t *s = f->r.s;
    assert_non_null(s);
    assert_string_equal(s->sid, "sid1");
    assert_string_equal(s->pid, "pid1");
    assert_int_equal(s->n_rooms, 2);
    assert_string_equal(s->rooms[0], "sid1");
    assert_string_equal(s->rooms[1], "r1");
    assert_string_equal(cJSON_GetObjectItem(s->data, "user")->valuestring, "ann");

    /* consumed: a second restore of the same pid fails */
    assert_int_equal(restore(f, "pid1", start), SIO_ENOTFOUND);
}

/* Restoring from the newest offset: success with nothing missed. From a middle
 * offset: only what follows it. */
static void test_restore_from_offset(void **state)
{
    fx_t *f = *state;
    const char *const own[] = {"s"};
    char off[4][64];
    for (int i = 0; i < 4; i++)
        snprintf(off[i], sizeof(off[i]), "%s", emit(f, "e", i, NULL, 0, NULL, 0, 0));

    save(f, "s", "p", own, 1);
    assert_int_equal(restore(f, "p", off[3]), SIO_OK);
    assert_int_equal(f->r.n_missed, 0);
    assert_null(f->r.missed);
    assert_non_null(f->r.s);

    save(f, "s", "p", own, 1);
    assert_int_equal(restore(f, "p", off[1]), SIO_OK);
    assert_string_equal(missed_names(f), "e:2,e:3");
    assert_string_equal(cJSON_GetArrayItem(f->r.missed[0]->data, 2)->valuestring, off[2]);
}

static void test_restore_unknown(void **state)
{
    fx_t *f = *state;
    const char *const own[] = {"s"};
    char off[64];
    snprintf(off, sizeof(off), "%s", emit(f, "e", 0, NULL, 0, NULL, 0, 0));
    save(f, "s", "p", own, 1);

    assert_int_equal(restore(f, "nobody", off), SIO_ENOTFOUND);
    assert_int_equal(restore(f, NULL, off), SIO_ENOTFOUND);
    /* offsets that were never issued or are not offsets at all */
    const char *bad[] = {"",       "1000",    "1000-", "-0",      "1000-5",
                         "1001-0", "1000-0x", "a-b",   "1000--0", "99999999999999999999999-0",
                         NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(restore(f, "p", bad[i]), SIO_ENOTFOUND);
    /* the session survived failed attempts on the offset */
    assert_int_equal(restore(f, "p", off), SIO_OK);
    /* an offset older than every entry (a quiet room's) is fine: the session decides.
     * Saved through save_session alone, it has no marks to raise the offset to. */
    save(f, "s", "p", own, 1);
    assert_int_equal(restore(f, "p", "999-0"), SIO_OK);
    assert_string_equal(missed_names(f), "e:0");
    /* a NULL callback is refused without a call */
    assert_int_equal(f->a->vt->restore_session(f->a, "p", off, NULL, NULL), SIO_EINVAL);
}

static void test_restore_expired(void **state)
{
    fx_t *f = *state;
    const char *const own[] = {"s"};
    char off[64];
    snprintf(off, sizeof(off), "%s", emit(f, "e", 0, NULL, 0, NULL, 0, 0));
    save(f, "s", "p", own, 1);
    save(f, "s2", "p2", own, 1);

    fake_now += WINDOW; /* exactly at the limit: still valid */
    assert_int_equal(restore(f, "p2", off), SIO_OK);

    fake_now += 1;
    assert_int_equal(restore(f, "p", off), SIO_ENOTFOUND);
    fake_now -= 1; /* dropped for good, not merely rejected */
    assert_int_equal(restore(f, "p", off), SIO_ENOTFOUND);
}

static void test_restore_trimmed_by_max_log(void **state)
{
    fx_t *f = *state; /* max_log = 3 */
    const char *const own[] = {"s"};
    char off[5][64];
    for (int i = 0; i < 5; i++)
        snprintf(off[i], sizeof(off[i]), "%s", emit(f, "e", i, NULL, 0, NULL, 0, 0));
    save(f, "s", "p", own, 1);
    /* e0 and e1 were dropped by the count bound: from e0 it would miss e1 */
    assert_int_equal(restore(f, "p", off[0]), SIO_ENOTFOUND);
    assert_int_equal(restore(f, "p", off[1]), SIO_OK);
    assert_string_equal(missed_names(f), "e:2,e:3,e:4");
    save(f, "s", "p", own, 1);
    assert_int_equal(restore(f, "p", off[2]), SIO_OK);
    assert_string_equal(missed_names(f), "e:3,e:4");
}

static void test_tick_expiry(void **state)
{
    fx_t *f = *state;
    const char *const own[] = {"s"};
    char old[64], young[64], later[64];
    fake_now = 1000;
    snprintf(old, sizeof(old), "%s", emit(f, "old", 0, NULL, 0, NULL, 0, 0));
    fake_now = 1600;
    snprintf(young, sizeof(young), "%s", emit(f, "young", 1, NULL, 0, NULL, 0, 0));
    save(f, "s", "p-early", own, 1); /* disconnected at 1600 */
    fake_now = 1700;
    snprintf(later, sizeof(later), "%s", emit(f, "later", 2, NULL, 0, NULL, 0, 0));

    /* at 2001 "old" (1000) is older than the window but the log keeps the retention: a
     * session whose offset is that old (a quiet room) gets what followed */
    f->a->vt->tick(f->a, 2001);
    fake_now = 2001;
    save(f, "s", "p", own, 1);
    assert_int_equal(restore(f, "p", old), SIO_OK);
    assert_string_equal(missed_names(f), "young:1,later:2");

    /* at 2601 the session saved at 1600 is swept by tick, even though the clock
     * the adapter reads still says 2001 */
    f->a->vt->tick(f->a, 2601);
    assert_int_equal(restore(f, "p-early", later), SIO_ENOTFOUND);

    /* past the retention of "old" (and not of "young") the sweep drops it; a live
     * session with that offset still gets what remains: nothing it missed was that old */
    f->a->vt->tick(f->a, 1000 + RETAIN + 1);
    save(f, "s", "p", own, 1);
    assert_int_equal(restore(f, "p", old), SIO_OK);
    assert_string_equal(missed_names(f), "young:1,later:2");

    /* everything goes once the retention has passed for all */
    f->a->vt->tick(f->a, 100000);
    save(f, "s", "p", own, 1);
    assert_int_equal(restore(f, "p", later), SIO_OK);
    assert_int_equal(f->r.n_missed, 0);
    /* new offsets still come after the old ones */
    fake_now = 500;
    assert_int_equal(offset_cmp(later, emit(f, "next", 3, NULL, 0, NULL, 0, 0)), -1);
}

/* Through the socket hooks (open, update, close) a session has marks: its start, and a
 * join mark per room joined later. A restore replays nothing from before either. */
static void test_restore_marks(void **state)
{
    fx_t *f = *state;
    const char *const at_open[] = {"s", "q"}, *const q[] = {"q"}, *const late[] = {"late"};
    const char *const joined[] = {"s", "q", "late"};
    adp_session_t sess = {.sid = (char *)"s", .pid = (char *)"p"};
    char e1[64];

    emit(f, "e", 0, q, 1, NULL, 0, 0); /* before the socket connected */
    sess.rooms = (char **)at_open;
    sess.n_rooms = 2;
    f->a->vt->session_open(f->a, &sess);
    snprintf(e1, sizeof(e1), "%s", emit(f, "e", 1, q, 1, NULL, 0, 0));
    emit(f, "x", 0, late, 1, NULL, 0, 0); /* before the join */
    sess.rooms = (char **)joined;
    sess.n_rooms = 3;
    f->a->vt->session_update(f->a, &sess);
    emit(f, "x", 1, late, 1, NULL, 0, 0);
    emit(f, "all", 0, NULL, 0, NULL, 0, 0);
    f->a->vt->session_close(f->a, &sess, 1);
    /* the client received nothing: from its start */
    assert_int_equal(restore(f, "p", NULL), SIO_OK);
    assert_string_equal(missed_names(f), "e:1,x:1,all:0");

    /* restored, the socket keeps its session's marks and read time: a client that never
     * read its replay and comes back with an old offset gets it all again (raised to its
     * start, nothing of before) */
    f->a->vt->session_open(f->a, &sess);
    emit(f, "x", 2, late, 1, NULL, 0, 0);
    f->a->vt->session_close(f->a, &sess, 1);
    assert_int_equal(restore(f, "p", "1-0"), SIO_OK);
    assert_string_equal(missed_names(f), "e:1,x:1,all:0,x:2");

    /* an except room excludes only what was broadcast after the socket joined it */
    {
        const char *const ex[] = {"late2"};
        const char *const four[] = {"s", "q", "late", "late2"};
        char before[64];
        f->a->vt->session_open(f->a, &sess);
        snprintf(before, sizeof(before), "%s", emit(f, "y", 0, NULL, 0, ex, 1, 0));
        sess.rooms = (char **)four;
        sess.n_rooms = 4;
        f->a->vt->session_update(f->a, &sess); /* joins late2 after y:0 */
        emit(f, "y", 1, NULL, 0, ex, 1, 0);    /* excluded: it is in late2 now */
        f->a->vt->session_close(f->a, &sess, 1);
        assert_int_equal(restore(f, "p", e1), SIO_OK);
        assert_string_equal(missed_names(f), "x:1,all:0,x:2,y:0");
        sess.rooms = (char **)joined;
        sess.n_rooms = 3;
    }

    /* the read time: a client unheard of for longer than window + detect is refused, and
     * handing the session back (a refused attempt) does not make it younger */
    f->a->vt->session_open(f->a, &sess);
    f->a->vt->session_close(f->a, &sess, 1);
    fake_now += WINDOW / 2;
    assert_int_equal(restore(f, "p", e1), SIO_OK); /* taken: marks wait in live */
    f->a->vt->session_close(f->a, &sess, 1);       /* handed back, nothing read */
    fake_now += WINDOW / 2 + DETECT + 1;
    assert_int_equal(restore(f, "p", e1), SIO_ENOTFOUND);
    assert_int_equal(restore(f, "p", e1), SIO_ENOTFOUND); /* dropped for good */
    /* a read the socket reports (read age 0 at its close) keeps a session recoverable as
     * long as its marks are there: the same wait, but read at the end */
    f->a->vt->session_open(f->a, &sess);
    fake_now += WINDOW / 2 + DETECT + 1;
    sess.has_read_age = 1;
    sess.read_age_ms = 0;
    f->a->vt->session_close(f->a, &sess, 1);
    sess.has_read_age = 0;
    assert_int_equal(restore(f, "p", e1), SIO_OK);
    f->a->vt->session_close(f->a, &sess, 0);

    /* a final disconnect keeps nothing */
    f->a->vt->session_open(f->a, &sess);
    f->a->vt->session_close(f->a, &sess, 0);
    assert_int_equal(restore(f, "p", e1), SIO_ENOTFOUND);
}

static void test_save_replaces(void **state)
{
    fx_t *f = *state;
    const char *const one[] = {"s1"};
    const char *const two[] = {"s2", "room"};
    char off[64];
    snprintf(off, sizeof(off), "%s", emit(f, "e", 0, NULL, 0, NULL, 0, 0));
    save(f, "s1", "p", one, 1);
    save(f, "s2", "p", two, 2);
    assert_int_equal(restore(f, "p", off), SIO_OK);
    assert_string_equal(f->r.s->sid, "s2");
    assert_int_equal(f->r.s->n_rooms, 2);

    /* a session without data or rooms round-trips too */
    adp_session_t bare = {.sid = (char *)"b", .pid = (char *)"pb"};
    assert_int_equal(f->a->vt->save_session(f->a, &bare), SIO_OK);
    assert_int_equal(restore(f, "pb", off), SIO_OK);
    assert_null(f->r.s->data);
    assert_int_equal(f->r.s->n_rooms, 0);
    adp_session_t nopid = {.sid = (char *)"b"};
    assert_int_equal(f->a->vt->save_session(f->a, &nopid), SIO_EINVAL);
}

/* The log stays bounded over a long run and the newest packets stay recoverable. */
static void test_log_bounded(void **state)
{
    fx_t *f = *state; /* max_log = 3 */
    const char *const own[] = {"s"};
    char off[64] = "";
    for (int i = 0; i < 2000; i++) {
        fake_now += i % 3 == 0;
        snprintf(off, sizeof(off), "%s", emit(f, "e", i, NULL, 0, NULL, 0, 0));
        if (f->n_out == 64) { /* recycle the record buffer */
            for (size_t k = 0; k < f->n_out; k++)
                cJSON_free(f->out[k].json);
            f->n_out = 0;
        }
    }
    save(f, "s", "p", own, 1);
    assert_int_equal(restore(f, "p", off), SIO_OK);
    assert_int_equal(f->r.n_missed, 0);
}

/* ------------------------------------------------ adapter.c helpers (hooks) */

typedef struct hook_adapter {
    adp_adapter_t base;
    char log[256];
} hook_adapter_t;

static void hook_note(adp_adapter_t *a, const char *what, const char *sid, const char *room)
{
    hook_adapter_t *h = (hook_adapter_t *)a;
    char one[64];
    /* record the index state the hook sees: how many rooms sid is in right now */
    snprintf(one, sizeof(one), "%s(%s,%s)=%zu;", what, sid, room ? room : "-",
             adp_rooms_of(&a->rooms, sid, NULL, 0));
    append(h->log, sizeof(h->log), one);
}

static int hook_join(adp_adapter_t *a, const char *sid, void *sock, const char *room)
{
    hook_note(a, "join", sid, room);
    return strcmp(room, "fail") == 0 ? SIO_EREDIS : SIO_OK;
}

static void hook_leave(adp_adapter_t *a, const char *sid, const char *room)
{
    hook_note(a, "leave", sid, room);
}

static void hook_leave_all(adp_adapter_t *a, const char *sid)
{
    hook_note(a, "all", sid, NULL);
}

static void test_adapter_hooks(void **state)
{
    static const adp_vtable_t vt = {
        .join = hook_join, .leave = hook_leave, .leave_all = hook_leave_all};
    hook_adapter_t h;
    char sock;
    memset(&h, 0, sizeof(h));
    h.base.vt = &vt;
    adp_rooms_init(&h.base.rooms);

    assert_int_equal(adp_join(&h.base, "s", &sock, "s"), SIO_OK);
    assert_int_equal(adp_join(&h.base, "s", &sock, "r"), SIO_OK);
    /* a failing hook is reported; the local membership stays */
    assert_int_equal(adp_join(&h.base, "s", &sock, "fail"), SIO_EREDIS);
    assert_true(adp_rooms_is_member(&h.base.rooms, "s", "fail"));
    adp_leave(&h.base, "s", "r");
    assert_false(adp_rooms_has_room(&h.base.rooms, "r"));
    adp_leave_all(&h.base, "s");
    assert_int_equal(adp_rooms_of(&h.base.rooms, "s", NULL, 0), 0);
    /* join/leave hooks see the index after the change, leave_all before */
    assert_string_equal(h.log, "join(s,s)=1;join(s,r)=2;join(s,fail)=3;leave(s,r)=2;all(s,-)=2;");
    adp_rooms_clear(&h.base.rooms);
}

/* The memory adapter has no hooks: the helpers alone keep its index. */
static void test_memory_membership(void **state)
{
    fx_t *f = *state;
    char sock;
    assert_int_equal(adp_join(f->a, "s", &sock, "s"), SIO_OK);
    assert_int_equal(adp_join(f->a, "s", &sock, "room"), SIO_OK);
    assert_true(adp_rooms_is_member(&f->a->rooms, "s", "room"));
    adp_leave(f->a, "s", "room");
    assert_false(adp_rooms_has_room(&f->a->rooms, "room"));
    adp_join(f->a, "s", &sock, "room");
    adp_leave_all(f->a, "s");
    assert_int_equal(base_map_size(&f->a->rooms.rooms), 0);
    adp_join(f->a, "t", &sock, "t"); /* left for destroy to free */
}

static void test_session_free_null(void **state)
{
    adp_session_free(NULL);
    adp_session_t *s = base_calloc(1, sizeof(*s));
    s->sid = base_strdup("a");
    s->pid = base_strdup("b");
    s->rooms = base_malloc(2 * sizeof(char *));
    s->rooms[0] = base_strdup("a");
    s->rooms[1] = base_strdup("r");
    s->n_rooms = 2;
    s->data = cJSON_CreateObject();
    adp_session_free(s); /* ASan reports any leak */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_deliver, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_increasing, setup_recovery, teardown),
        cmocka_unit_test_setup_teardown(test_not_logged, setup_recovery, teardown),
        cmocka_unit_test_setup_teardown(test_restore_filters, setup_recovery, teardown),
        cmocka_unit_test_setup_teardown(test_restore_from_offset, setup_recovery, teardown),
        cmocka_unit_test_setup_teardown(test_restore_unknown, setup_recovery, teardown),
        cmocka_unit_test_setup_teardown(test_restore_expired, setup_recovery, teardown),
        cmocka_unit_test_setup_teardown(test_restore_trimmed_by_max_log, setup_small_log, teardown),
        cmocka_unit_test_setup_teardown(test_tick_expiry, setup_recovery, teardown),
        cmocka_unit_test_setup_teardown(test_restore_marks, setup_recovery, teardown),
        cmocka_unit_test_setup_teardown(test_save_replaces, setup_recovery, teardown),
        cmocka_unit_test_setup_teardown(test_log_bounded, setup_small_log, teardown),
        cmocka_unit_test(test_adapter_hooks),
        cmocka_unit_test_setup_teardown(test_memory_membership, setup_plain, teardown),
        cmocka_unit_test(test_session_free_null),
    };
    return cmocka_run_group_tests_name("memory", tests, NULL, NULL);
}
