/* test_adapter.c -- the adapter interface's own code (adapter/adapter.c): recovery
 * offsets, membership helpers and the order in which they call an adapter's hooks, the
 * host's queries of the local index, and sessions' release. A recording adapter stands
 * in for an implementation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapter.h"
#include "base_alloc.h"

static void test_offsets(void **state)
{
    uint64_t ms = 1, seq = 1;

    assert_int_equal(adp_offset_parse("1700000000000-0", &ms, &seq), 1);
    assert_true(ms == 1700000000000ULL && seq == 0);
    assert_int_equal(adp_offset_parse("0-18446744073709551615", &ms, &seq), 1);
    assert_true(seq == UINT64_MAX);
    /* overflow, signs, missing parts, trailing bytes, spaces */
    const char *bad[] = {"0-18446744073709551616",
                         "-1-0",
                         "1--0",
                         "1-",
                         "-1",
                         "1",
                         "",
                         "1-0 ",
                         " 1-0",
                         "1-0-0",
                         "a-0",
                         "1-0x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(adp_offset_parse(bad[i], &ms, &seq), 0);
    assert_int_equal(adp_offset_parse(NULL, &ms, &seq), 0);

    assert_true(adp_offset_cmp(1, 9, 2, 0) < 0);
    assert_true(adp_offset_cmp(2, 0, 1, 9) > 0);
    assert_true(adp_offset_cmp(2, 1, 2, 2) < 0);
    assert_int_equal(adp_offset_cmp(2, 2, 2, 2), 0);
}

static void test_packet_offset(void **state)
{
    cd_sio_packet_t *p = cd_sio_packet_new(CD_SIO_EVENT, "/");
    uint64_t ms, seq;

    assert_int_equal(adp_packet_offset(p, &ms, &seq), 0); /* no data */
    p->data = cJSON_Parse("[\"ev\",1]");
    assert_int_equal(adp_packet_offset(p, &ms, &seq), 0); /* last is not a string */
    cJSON_AddItemToArray(p->data, cJSON_CreateString("12-3"));
    assert_int_equal(adp_packet_offset(p, &ms, &seq), 1);
    assert_true(ms == 12 && seq == 3);
    cd_sio_packet_free(p);
}

/* ---------------------------------------------------------------- a recording adapter */

typedef struct rec {
    adp_adapter_t base;
    char log[512];
} rec_t;

static void rec_note(adp_adapter_t *a, const char *what, const char *sid, const char *room)
{
    rec_t *r = (rec_t *)a;
    size_t n = strlen(r->log);
    /* what the hook sees of the index at the time it runs */
    snprintf(r->log + n, sizeof(r->log) - n, "%s(%s,%s,%zu) ", what, sid, room ? room : "-",
             adp_socket_rooms(a, sid, NULL, 0));
}

static int rec_join(adp_adapter_t *a, const char *sid, void *sock, const char *room)
{
    rec_note(a, "join", sid, room);
    return strcmp(room, "refused") == 0 ? SIO_EINVAL : SIO_OK;
}

static void rec_leave(adp_adapter_t *a, const char *sid, const char *room)
{
    rec_note(a, "leave", sid, room);
}

static void rec_leave_all(adp_adapter_t *a, const char *sid)
{
    rec_note(a, "leave_all", sid, NULL);
}

static const adp_vtable_t rec_vt = {
    .join = rec_join,
    .leave = rec_leave,
    .leave_all = rec_leave_all,
};

static void each_sid(void *ud, const char *sid, void *sock)
{
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 128 - n, "%s ", sid);
}

static void each_room(void *ud, const char *room)
{
    int *n = ud;
    (*n)++;
}

static void test_membership_hooks_and_queries(void **state)
{
    rec_t r = {.base = {.vt = &rec_vt}};
    int sock_a, sock_b;
    const char *rooms[4];
    char got[128] = "";
    int n_rooms = 0;

    adp_rooms_init(&r.base.rooms);
    /* join: the index first, then the hook (which sees the room already counted) */
    assert_int_equal(adp_join(&r.base, "A", &sock_a, "x"), SIO_OK);
    assert_int_equal(adp_join(&r.base, "A", &sock_a, "y"), SIO_OK);
    assert_int_equal(adp_join(&r.base, "B", &sock_b, "x"), SIO_OK);
    /* a hook's refusal is reported, the index keeps the join (the adapter decides) */
    assert_int_equal(adp_join(&r.base, "B", &sock_b, "refused"), SIO_EINVAL);
    assert_string_equal(r.log, "join(A,x,1) join(A,y,2) join(B,x,1) join(B,refused,2) ");
    assert_true(adp_is_member(&r.base, "A", "y"));
    assert_false(adp_is_member(&r.base, "B", "y"));
    assert_int_equal(adp_socket_rooms(&r.base, "A", rooms, 4), 2);

    const char *to[] = {"x"}, *except[] = {"y"};
    adp_opts_t o = {.rooms = to, .n_rooms = 1, .except = except, .n_except = 1};
    adp_each(&r.base, &o, each_sid, got);
    assert_string_equal(got, "B ");
    adp_each_room(&r.base, each_room, &n_rooms);
    assert_int_equal(n_rooms, 3);

    /* leave: the index first; leave_all: the hook first, while the rooms are listed */
    r.log[0] = '\0';
    adp_leave(&r.base, "A", "y");
    adp_leave_all(&r.base, "B");
    assert_string_equal(r.log, "leave(A,y,1) leave_all(B,-,2) ");
    assert_int_equal(adp_socket_rooms(&r.base, "B", NULL, 0), 0);
    adp_rooms_clear(&r.base.rooms);
}

static void test_session_free(void **state)
{
    adp_session_t *s = base_calloc(1, sizeof(*s));

    s->sid = base_strdup("sid");
    s->pid = base_strdup("pid");
    s->rooms = base_malloc(2 * sizeof(char *));
    s->rooms[0] = base_strdup("sid");
    s->rooms[1] = base_strdup("r");
    s->n_rooms = 2;
    s->data = cJSON_CreateObject();
    s->joined = cJSON_Parse("{\"r\":\"1-0\"}");
    adp_session_free(s); /* everything it owns (valgrind/ASan would report a leak) */
    adp_session_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_packet_offset),
        cmocka_unit_test(test_membership_hooks_and_queries),
        cmocka_unit_test(test_session_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
