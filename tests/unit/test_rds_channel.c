/* test_rds_channel.c -- adapter/redis/rds_channel.c: the pub/sub channel names of
 * @socket.io/redis-adapter 8.x (spec §1), built and classified.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base_alloc.h"
#include "rds_channel.h"

static void test_channel_format(void **state)
{
    static const struct {
        rds_chan_t kind;
        const char *nsp, *arg, *want;
    } cases[] = {
        {RDS_CHAN_BROADCAST, "/", NULL, "socket.io#/#"},
        {RDS_CHAN_BROADCAST, "/chat", NULL, "socket.io#/chat#"},
        {RDS_CHAN_ROOM, "/", "lobby", "socket.io#/#lobby#"},
        {RDS_CHAN_PATTERN, "/", NULL, "socket.io#/#*"},
        {RDS_CHAN_PATTERN, "/a*[b]?", NULL, "socket.io#/a\\*\\[b\\]\\?#*"},
        {RDS_CHAN_REQUEST, "/chat", NULL, "socket.io-request#/chat#"},
        {RDS_CHAN_RESPONSE, "/", NULL, "socket.io-response#/#"},
        {RDS_CHAN_RESPONSE_UID, "/", "AbC123", "socket.io-response#/#AbC123#"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *c = rds_channel(cases[i].kind, "socket.io", cases[i].nsp, cases[i].arg);
        assert_non_null(c);
        assert_string_equal(c, cases[i].want);
        base_free(c);
    }
    assert_null(rds_channel(RDS_CHAN_ROOM, "socket.io", "/", NULL));
    assert_null(rds_channel(RDS_CHAN_RESPONSE_UID, "socket.io", "/", NULL));
    assert_null(rds_channel(RDS_CHAN_BROADCAST, NULL, "/", NULL));
    assert_null(rds_channel(RDS_CHAN_BROADCAST, "k", NULL, NULL));
    assert_null(rds_channel(RDS_CHAN_NONE, "k", "/", NULL));
}

static void test_channel_parse(void **state)
{
    static const struct {
        const char *nsp, *chan;
        rds_chan_t kind;
        const char *arg;
    } cases[] = {
        {"/", "socket.io#/#", RDS_CHAN_BROADCAST, NULL},
        {"/", "socket.io#/#room1#", RDS_CHAN_ROOM, "room1"},
        {"/", "socket.io#/#a#b#", RDS_CHAN_ROOM, "a#b"},
        {"/", "socket.io#/##", RDS_CHAN_BROADCAST, NULL},
        {"/", "socket.io#/#x", RDS_CHAN_NONE, NULL},
        {"/", "socket.io#/chat#", RDS_CHAN_NONE, NULL},
        {"/chat", "socket.io#/chat#r#", RDS_CHAN_ROOM, "r"},
        {"/chat", "socket.io#/#r#", RDS_CHAN_NONE, NULL},
        {"/", "socket.io-request#/#", RDS_CHAN_REQUEST, NULL},
        {"/", "socket.io-request#/#x#", RDS_CHAN_NONE, NULL},
        {"/", "socket.io-response#/#", RDS_CHAN_RESPONSE, NULL},
        {"/", "socket.io-response#/#AbC123#", RDS_CHAN_RESPONSE_UID, "AbC123"},
        {"/", "socket.io-response#/##", RDS_CHAN_NONE, NULL},
        {"/", "other#/#", RDS_CHAN_NONE, NULL},
        {"/", "socket.io", RDS_CHAN_NONE, NULL},
        {"/", "", RDS_CHAN_NONE, NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *a = "junk";
        size_t alen = 99;
        rds_chan_t k = rds_channel_parse("socket.io", cases[i].nsp, cases[i].chan,
                                         strlen(cases[i].chan), &a, &alen);
        if (k != cases[i].kind)
            fail_msg("%s: kind %d, want %d", cases[i].chan, k, cases[i].kind);
        if (cases[i].arg == NULL) {
            assert_null(a);
            assert_int_equal(alen, 0);
        } else {
            assert_int_equal(alen, strlen(cases[i].arg));
            assert_memory_equal(a, cases[i].arg, alen);
        }
    }
    /* what rds_channel builds, rds_channel_parse recognises */
    for (rds_chan_t k = RDS_CHAN_BROADCAST; k <= RDS_CHAN_RESPONSE_UID; k++) {
        char *c;
        if (k == RDS_CHAN_PATTERN)
            continue;
        c = rds_channel(k, "my-app", "/ns", "x#y");
        assert_int_equal(rds_channel_parse("my-app", "/ns", c, strlen(c), NULL, NULL), k);
        base_free(c);
    }
    assert_int_equal(rds_channel_parse(NULL, "/", "a", 1, NULL, NULL), RDS_CHAN_NONE);
}

/* The room channel @socket.io/redis-emitter publishes on for to("room1") (spec §3). */
static void test_channel_emitter_room(void **state)
{
    const char *chan = "socket.io#/#room1#", *room;
    size_t room_len;

    assert_int_equal(rds_channel_parse("socket.io", "/", chan, strlen(chan), &room, &room_len),
                     RDS_CHAN_ROOM);
    assert_int_equal(room_len, 5);
    assert_memory_equal(room, "room1", 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channel_format),
        cmocka_unit_test(test_channel_parse),
        cmocka_unit_test(test_channel_emitter_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
