/* redis_fixture.h -- a real redis-server for the cmocka unit tests (header-only).
 *
 * test_rds_conn.c, test_rds_streams.c and test_rds_node.c each start their own redis-server
 * on a free loopback port in a mktemp directory, wait on their uv loop with a deadline
 * timer, stop the server by PID and skip (with a message) when redis-server is not on
 * PATH. This header holds that shared code once so the three copies cannot drift.
 *
 * Include it after <cmocka.h>, <uv.h> (via sockeye.h or rds_conn.h) and after the test's
 * own `fx_t` is defined: rt_deadline_cb, RT_WAIT_FOR and rt_run_for use its `loop`
 * (uv_loop_t), `deadline` (uv_timer_t whose data is the fx_t) and `expired` (int) members.
 */
#ifndef SOCKEYE_TESTS_REDIS_FIXTURE_H
#define SOCKEYE_TESTS_REDIS_FIXTURE_H

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------------ skip without redis */

static int rt_have_redis = -1;

/* 1 when an executable redis-server is on PATH (looked up once). */
static inline int rt_redis_on_path(void)
{
    const char *path = getenv("PATH");
    char buf[4096];

    if (rt_have_redis >= 0)
        return rt_have_redis;
    rt_have_redis = 0;
    while (path != NULL && *path != '\0') {
        const char *colon = strchr(path, ':');
        size_t n = colon != NULL ? (size_t)(colon - path) : strlen(path);
        if (n > 0 && n < sizeof(buf) - 16) {
            snprintf(buf, sizeof(buf), "%.*s/redis-server", (int)n, path);
            if (access(buf, X_OK) == 0)
                rt_have_redis = 1;
        }
        path = colon != NULL ? colon + 1 : NULL;
    }
    return rt_have_redis;
}

#define RT_REQUIRE_REDIS()                                                                         \
    do {                                                                                           \
        if (!rt_redis_on_path()) {                                                                 \
            print_message("redis-server is not on PATH: skipping this test\n");                    \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------ bounded waits */

static inline void rt_deadline_cb(uv_timer_t *t)
{
    fx_t *f = t->data;
    f->expired = 1;
}

/* Runs the loop until cond holds or ms elapse; fails the test when cond does not hold. */
#define RT_WAIT_FOR(f, cond, ms)                                                                   \
    do {                                                                                           \
        (f)->expired = 0;                                                                          \
        uv_timer_start(&(f)->deadline, rt_deadline_cb, (ms), 0);                                   \
        while (!(cond) && !(f)->expired)                                                           \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->deadline);                                                             \
        if (!(cond))                                                                               \
            print_message("timed out after %u ms waiting for: %s\n", (unsigned)(ms), #cond);       \
        assert_true(cond);                                                                         \
    } while (0)

/* Runs the loop for ms whatever happens (to check that nothing more does). */
static inline void rt_run_for(fx_t *f, unsigned ms)
{
    f->expired = 0;
    uv_timer_start(&f->deadline, rt_deadline_cb, ms, 0);
    while (!f->expired)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* ------------------------------------------------------------------ redis-server */

/* A loopback TCP port that was free a moment ago. */
static inline int rt_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Spawns `redis-server --port port --bind 127.0.0.1 --save '' --appendonly no --dir dir`
 * into *pid, with stdout and stderr on /dev/null, plus:
 *   --logfile logfile                               when logfile is not NULL
 *   --requirepass pass                              when pass is not NULL nor ""
 *   --unixsocket unix_path --unixsocketperm 700     when unix_path is not NULL
 * When null_stdin is set, stdin goes to /dev/null too and the open of /dev/null is
 * asserted. Does not wait for the server: each test has its own way to. */
static inline void rt_redis_spawn(pid_t *pid, int port, const char *dir, const char *logfile,
                                  const char *pass, const char *unix_path, int null_stdin)
{
    char port_s[16];
    const char *argv[20];
    int argc = 0, fd;
    posix_spawn_file_actions_t fa;

    snprintf(port_s, sizeof(port_s), "%d", port);
    argv[argc++] = "redis-server";
    argv[argc++] = "--port";
    argv[argc++] = port_s;
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--save";
    argv[argc++] = "";
    argv[argc++] = "--appendonly";
    argv[argc++] = "no";
    argv[argc++] = "--dir";
    argv[argc++] = dir;
    if (logfile != NULL) {
        argv[argc++] = "--logfile";
        argv[argc++] = logfile;
    }
    if (pass != NULL && pass[0] != '\0') {
        argv[argc++] = "--requirepass";
        argv[argc++] = pass;
    }
    if (unix_path != NULL) {
        argv[argc++] = "--unixsocket";
        argv[argc++] = unix_path;
        argv[argc++] = "--unixsocketperm";
        argv[argc++] = "700";
    }
    argv[argc] = NULL;

    fd = open("/dev/null", O_RDWR);
    if (null_stdin)
        assert_true(fd >= 0);
    posix_spawn_file_actions_init(&fa);
    if (null_stdin)
        posix_spawn_file_actions_adddup2(&fa, fd, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    assert_int_equal(posix_spawnp(pid, "redis-server", &fa, NULL, (char *const *)argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
}

/* 1 when something accepts TCP connections on the loopback port. */
static inline int rt_port_open(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Starts a plain redis-server on f->port (f->pid, f->dir) and waits until it accepts
 * connections (bounded: 100 tries, 20 ms apart). */
static inline void rt_redis_start(fx_t *f)
{
    rt_redis_spawn(&f->pid, f->port, f->dir, NULL, NULL, NULL, 0);
    for (int i = 0; i < 100 && !rt_port_open(f->port); i++)
        rt_run_for(f, 20);
    assert_true(rt_port_open(f->port));
}

/* SIGKILLs and reaps *pid when it is set, then clears it. */
static inline void rt_redis_kill(pid_t *pid)
{
    int st;

    if (*pid <= 0)
        return;
    kill(*pid, SIGKILL);
    waitpid(*pid, &st, 0);
    *pid = 0;
}

/* The start every fixture shares: its loop and deadline timer, a scratch dir
 * /tmp/sockeye-<tag>-XXXXXX for redis-server, and a free port for it. */
static inline void rt_fixture_init(fx_t *f, const char *tag)
{
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->deadline), 0);
    f->deadline.data = f;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sockeye-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(f->dir));
    f->port = rt_free_port();
}

/* Removes the test's scratch dir (the redis-server files in it, then the dir). */
static inline void rt_rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

#endif
