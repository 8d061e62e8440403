/* test_metrics.c -- the Prometheus page of the node (node/program/metrics.c): growing
 * text, label escaping, and the page of a server with the standard application.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "app.h"
#include "metrics.h"
#include "sockeye.h"

static void test_text_grows_and_escapes_labels(void **state)
{
    app_text_t t = {0};
    char big[3000];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    app_text_printf(&t, "%s", "a");
    app_text_printf(&t, "%s", big); /* past any first capacity */
    app_text_printf(&t, "%d", 7);
    assert_int_equal(t.len, 1 + sizeof(big) - 1 + 1);
    assert_int_equal(t.s[0], 'a');
    assert_string_equal(t.s + t.len - 1, "7");
    free(t.s);

    memset(&t, 0, sizeof(t));
    app_text_label(&t, "a\"b\\c\nd");
    assert_string_equal(t.s, "a\\\"b\\\\c\\nd");
    free(t.s);
}

/* Every sample line's metric has a HELP and a TYPE line before it. */
static void assert_described(const char *page)
{
    const char *line = page;

    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        if (line[0] != '#') {
            char name[128], help[160], type[160];
            size_t n = strcspn(line, "{ ");
            assert_true(n < sizeof(name));
            memcpy(name, line, n);
            name[n] = '\0';
            snprintf(help, sizeof(help), "# HELP %s ", name);
            snprintf(type, sizeof(type), "# TYPE %s ", name);
            const char *h = strstr(page, help), *ty = strstr(page, type);
            assert_non_null(h);
            assert_non_null(ty);
            assert_true(h < line && ty < line);
        }
        line = end + 1;
    }
}

static void test_page_of_a_node(void **state)
{
    sio_server_t *srv = sio_server_new(uv_default_loop(), NULL);
    app_config_t ac = {.join_event = "join"};
    app_t *app = app_new(&ac);
    app_text_t t = {0};

    assert_non_null(srv);
    app_install(app, sio_server_of(srv, "/"));
    app_install(app, sio_server_of(srv, "/we\"ird"));
    app_metrics_src_t m = {.srv = srv, .app = app, .uptime_s = 1.5, .draining = 1};
    app_metrics_render(&m, &t);
    assert_non_null(t.s);
    assert_described(t.s);
    assert_non_null(strstr(t.s, "sockeye_info{version=\"" SOCKEYE_VERSION "\"} 1\n"));
    assert_non_null(strstr(t.s, "\nsockeye_clients 0\n"));
    assert_non_null(strstr(t.s, "\nsockeye_sockets{namespace=\"/\"} 0\n"));
    assert_non_null(strstr(t.s, "\nsockeye_sockets{namespace=\"/we\\\"ird\"} 0\n"));
    assert_non_null(strstr(t.s, "\nsockeye_uptime_seconds 1.500\n"));
    assert_non_null(strstr(t.s, "\nsockeye_app_events_total{kind=\"join\"} 0\n"));
    assert_non_null(strstr(t.s, "\nsockeye_draining 1\n"));
    /* no Redis: the cluster link's metrics are absent, not zero */
    assert_null(strstr(t.s, "sockeye_redis_"));
    free(t.s);
    sio_server_free(srv);
    app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_grows_and_escapes_labels),
        cmocka_unit_test(test_page_of_a_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
