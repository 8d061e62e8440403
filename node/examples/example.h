/* example.h -- what every example's main() shares: flags, listening, signals, the loop.
 *
 * Each example shows one feature. Starting a server on the default loop, printing
 * "listening on HOST:PORT" (the line the tests wait for) and closing cleanly on
 * SIGTERM or SIGINT is the same in all of them, so it is written once, here, and an
 * example's main() is one call. Header-only, with static functions, because CMake
 * builds every node/examples/NAME.c as a program of its own.
 */
#ifndef SOCKEYE_EXAMPLE_H
#define SOCKEYE_EXAMPLE_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sockeye.h>

static sio_server_t *example_server;
static uv_signal_t example_sigterm, example_sigint;

static void example_on_closed(void *arg)
{
    uv_close((uv_handle_t *)&example_sigterm, NULL);
    uv_close((uv_handle_t *)&example_sigint, NULL);
}

static void example_on_signal(uv_signal_t *h, int signum)
{
    uv_signal_stop(&example_sigterm);
    uv_signal_stop(&example_sigint);
    sio_server_close(example_server, example_on_closed, NULL);
}

/* Runs an example: --host (default 127.0.0.1) and --port (default 3000; 0 = any free
 * port) from argv, a server on the default loop, setup() to attach the handlers, then
 * the loop until SIGTERM or SIGINT closed the server. Returns main's exit status: 0
 * after a clean run, 1 when listening failed or a handle stayed open on the loop, 2
 * when the server could not be created. */
static int example_main(int argc, char **argv, void (*setup)(sio_server_t *server))
{
    sio_config_t cfg;
    uv_loop_t *loop = uv_default_loop();
    int rc;

    sio_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 3000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            cfg.port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--host") == 0)
            cfg.host = argv[i + 1];
    }
    example_server = sio_server_new(loop, &cfg);
    if (example_server == NULL)
        return 2;
    uv_signal_init(loop, &example_sigterm);
    uv_signal_init(loop, &example_sigint);

    setup(example_server);

    rc = sio_server_listen(example_server);
    if (rc == SIO_OK) {
        printf("listening on %s:%d\n", cfg.host, sio_server_port(example_server));
        fflush(stdout);
        uv_signal_start(&example_sigterm, example_on_signal, SIGTERM);
        uv_signal_start(&example_sigint, example_on_signal, SIGINT);
    } else {
        fprintf(stderr, "cannot listen on %s:%d: %s\n", cfg.host, cfg.port, sio_strerror(rc));
        example_on_signal(&example_sigterm, SIGTERM);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    sio_server_free(example_server);
    return uv_loop_close(loop) == 0 && rc == SIO_OK ? 0 : 1;
}

#endif
