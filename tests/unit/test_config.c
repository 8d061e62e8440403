/* test_config.c -- node/program/config.c: defaults, environment, command line, precedence,
 * errors, and that --help / the README table cover every row of the table.
 *
 * The .c is included (as h2o's unit tests do) to reach cfg_table: the point of the
 * documentation tests is "every entry", which only the table itself can enumerate.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../node/program/config.c"

/* A fake environment: NULL-terminated name/value pairs. */
static const char *const *fake_env;

static const char *fake_getenv(const char *name)
{
    for (const char *const *p = fake_env; p && p[0]; p += 2) {
        if (strcmp(p[0], name) == 0)
            return p[1];
    }
    return NULL;
}

static int setup(void **state)
{
    app_node_config_t *cfg = malloc(sizeof(*cfg));

    app_node_config_init(cfg);
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    app_node_config_free(*state);
    free(*state);
    return 0;
}

static int parse(app_node_config_t *cfg, char *err, size_t errlen, ...)
{
    char prog[] = "sockeye";
    char *argv[32] = {prog};
    int argc = 1;
    va_list ap;
    const char *a;

    /* The parser never writes to argv; the casts only meet main()'s signature. */
    va_start(ap, errlen);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = (char *)a;
    va_end(ap);
    return app_node_config_argv(cfg, argc, argv, err, errlen);
}

static void test_defaults(void **state)
{
    app_node_config_t *cfg = *state;

    assert_string_equal(cfg->srv.host, "0.0.0.0");
    assert_int_equal(cfg->srv.port, 3000);
    assert_string_equal(cfg->srv.path, "/socket.io/");
    assert_int_equal(cfg->srv.ping_interval_ms, 25000);
    assert_int_equal(cfg->srv.ping_timeout_ms, 20000);
    assert_int_equal(cfg->srv.max_payload, 1000000);
    assert_int_equal(cfg->srv.transports, SIO_TRANSPORT_POLLING | SIO_TRANSPORT_WEBSOCKET);
    assert_null(cfg->srv.cors_origins);
    assert_int_equal(cfg->srv.per_message_deflate, 1);
    assert_int_equal(cfg->srv.recovery, 1);
    assert_int_equal(cfg->srv.recovery_window_ms, 120000);
    assert_int_equal(cfg->namespaces.n, 1);
    assert_string_equal(cfg->namespaces.v[0], "/chat");
    assert_null(cfg->namespace_pattern);
    assert_int_equal(cfg->relay_events.n, 1);
    assert_string_equal(cfg->relay_events.v[0], "chat");
    assert_string_equal(cfg->broadcast_events.v[0], "bcast");
    assert_string_equal(cfg->join_event, "join");
    assert_string_equal(cfg->leave_event, "leave");
    assert_string_equal(cfg->echo_event, "echo");
    assert_string_equal(cfg->www_dir, "");
    assert_int_equal(cfg->log_level, APP_LOG_INFO);
    assert_int_equal(app_node_config_check(cfg, NULL, 0), SIO_OK);
}

static void test_flags(void **state)
{
    app_node_config_t *cfg = *state;
    char err[256];

    assert_int_equal(parse(cfg, err, sizeof(err), "--port", "0", "--host=127.0.0.1", "--transports",
                           "websocket", "--no-recovery", "--cors-credentials",
                           "--per-message-deflate", "off", "--max-payload", "42", "--cors-origins",
                           "*", "--log-level", "DEBUG", "--echo-event", "", NULL),
                     APP_CFG_RUN);
    assert_int_equal(cfg->srv.port, 0);
    assert_string_equal(cfg->srv.host, "127.0.0.1");
    assert_int_equal(cfg->srv.transports, SIO_TRANSPORT_WEBSOCKET);
    assert_int_equal(cfg->srv.recovery, 0);
    assert_int_equal(cfg->srv.cors_credentials, 1);
    assert_int_equal(cfg->srv.per_message_deflate, 0);
    assert_int_equal(cfg->srv.max_payload, 42);
    assert_string_equal(cfg->srv.cors_origins, "*");
    assert_int_equal(cfg->log_level, APP_LOG_DEBUG);
    assert_string_equal(cfg->echo_event, "");

    /* A nullable string set empty is unset again. */
    assert_int_equal(parse(cfg, err, sizeof(err), "--cors-origins=", NULL), APP_CFG_RUN);
    assert_null(cfg->srv.cors_origins);
    /* A boolean followed by a word that is no boolean leaves that word alone. */
    assert_int_equal(parse(cfg, err, sizeof(err), "--recovery", "--port", "7", NULL), APP_CFG_RUN);
    assert_int_equal(cfg->srv.recovery, 1);
    assert_int_equal(cfg->srv.port, 7);
}

static void test_env_then_flags(void **state)
{
    app_node_config_t *cfg = *state;
    char err[256];
    /* clang-format off */
    static const char *const env[] = {
        "SOCKEYE_PORT", "4000", "SOCKEYE_PATH", "/env/", "SOCKEYE_NAMESPACE", "/a, /b",
        "SOCKEYE_RELAY_EVENTS", "x,y", "SOCKEYE_RECOVERY", "no", NULL,
    };
    /* clang-format on */

    fake_env = env;
    assert_int_equal(app_node_config_env(cfg, fake_getenv, err, sizeof(err)), SIO_OK);
    assert_int_equal(cfg->srv.port, 4000);
    assert_string_equal(cfg->srv.path, "/env/");
    assert_int_equal(cfg->namespaces.n, 2);
    assert_string_equal(cfg->namespaces.v[1], "/b");
    assert_int_equal(cfg->relay_events.n, 2);
    assert_int_equal(cfg->srv.recovery, 0);

    /* The first occurrence of a list flag replaces the environment's list, the next append. */
    assert_int_equal(parse(cfg, err, sizeof(err), "--port", "5000", "--namespace", "/c",
                           "--namespace", "/d,/e", NULL),
                     APP_CFG_RUN);
    assert_int_equal(cfg->srv.port, 5000);
    assert_string_equal(cfg->srv.path, "/env/");
    assert_int_equal(cfg->namespaces.n, 3);
    assert_string_equal(cfg->namespaces.v[0], "/c");
    assert_string_equal(cfg->namespaces.v[2], "/e");
    fake_env = NULL;
}

static void test_errors(void **state)
{
    static const struct {
        const char *args[3];
        const char *needle;
    } cases[] = {
        {{"--bogus"}, "unknown option --bogus"},
        {{"--no-port"}, "unknown option --no-port"},
        {{"--port", "abc"}, "is not a non-negative integer"},
        {{"--port", "-1"}, "is not a non-negative integer"},
        {{"--port", "65536"}, "out of range"},
        {{"--ping-interval", "0"}, "out of range"},
        {{"--ping-interval", "99999999999"}, "out of range"},
        {{"--port"}, "needs a value"},
        {{"--transports", "pigeon"}, "unknown value \"pigeon\""},
        {{"--transports", ","}, "at least one value"},
        {{"--log-level", "loud"}, "unknown value \"loud\""},
        {{"--namespace", "chat"}, "must start with /"},
        {{"--path", "x"}, "must start with /"},
        {{"--namespace-pattern", "(a"}, "bad regular expression"},
        {{"--recovery=maybe"}, "not a boolean"},
        {{"--no-recovery=1"}, "takes no value"},
        {{"positional"}, "unexpected argument"},
        {{"-p"}, "unexpected argument"},
    };
    char err[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        app_node_config_t cfg;
        char prog[] = "sockeye";
        char *argv[4] = {prog};
        int argc = 1;

        for (int k = 0; k < 3 && cases[i].args[k]; k++)
            argv[argc++] = (char *)cases[i].args[k];
        app_node_config_init(&cfg);
        err[0] = '\0';
        assert_int_equal(app_node_config_argv(&cfg, argc, argv, err, sizeof(err)), SIO_EINVAL);
        if (strstr(err, cases[i].needle) == NULL)
            fail_msg("%s: got \"%s\", expected \"%s\"", cases[i].args[0], err, cases[i].needle);
        app_node_config_free(&cfg);
    }
}

static void test_env_error_names_variable(void **state)
{
    app_node_config_t *cfg = *state;
    char err[256];
    static const char *const env[] = {"SOCKEYE_MAX_QUEUE", "lots", NULL};

    fake_env = env;
    assert_int_equal(app_node_config_env(cfg, fake_getenv, err, sizeof(err)), SIO_EINVAL);
    assert_non_null(strstr(err, "SOCKEYE_MAX_QUEUE"));
    fake_env = NULL;
}

static void test_actions(void **state)
{
    app_node_config_t *cfg = *state;
    char err[64];

    assert_int_equal(parse(cfg, err, sizeof(err), "--help", NULL), APP_CFG_HELP);
    assert_int_equal(parse(cfg, err, sizeof(err), "--port", "1", "--help-markdown", NULL),
                     APP_CFG_MARKDOWN);
    assert_int_equal(parse(cfg, err, sizeof(err), "--version", NULL), APP_CFG_VERSION);
}

static void test_check(void **state)
{
    app_node_config_t *cfg = *state;
    char err[128];

    cfg->srv.transports = 0;
    assert_int_equal(app_node_config_check(cfg, err, sizeof(err)), SIO_EINVAL);
}

/* Every row reaches both documents, with its env name; table and texts cannot drift. */
static void test_docs_cover_table(void **state)
{
    char *help = NULL, *md = NULL;
    size_t help_len = 0, md_len = 0;
    FILE *f;

    f = open_memstream(&help, &help_len);
    app_node_config_help(f, "sockeye");
    fclose(f);
    f = open_memstream(&md, &md_len);
    app_node_config_markdown(f);
    fclose(f);
    for (size_t i = 0; i < CFG_COUNT; i++) {
        char flag[80];

        snprintf(flag, sizeof(flag), "--%s %s", cfg_table[i].flag, cfg_table[i].metavar);
        if (!strstr(help, flag) || !strstr(help, cfg_table[i].env))
            fail_msg("--help lacks %s / %s", flag, cfg_table[i].env);
        if (!strstr(md, flag) || !strstr(md, cfg_table[i].env))
            fail_msg("markdown lacks %s / %s", flag, cfg_table[i].env);
        /* env names follow the flag names, so nobody has to guess one */
        char env[80] = "SOCKEYE_";
        size_t n = strlen(env);

        for (const char *p = cfg_table[i].flag; *p && n < sizeof(env) - 1; p++)
            env[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        env[n] = '\0';
        assert_string_equal(env, cfg_table[i].env);
    }
    free(help);
    free(md);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_then_flags, setup, teardown),
        cmocka_unit_test(test_errors),
        cmocka_unit_test_setup_teardown(test_env_error_names_variable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_actions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
        cmocka_unit_test(test_docs_cover_table),
    };

    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
