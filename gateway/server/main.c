/* main.c - flags, signals, start/stop order, exit codes; nothing else.
 *
 * Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 1 when the server
 * cannot start, 2 for a configuration error. A second SIGTERM/SIGINT while
 * draining exits at once. */
#include "fmacros.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "core/config.h"
#include "core/log.h"
#include "server/server.h"

extern char **environ;

struct app {
    uv_loop_t        loop;
    uv_signal_t      sigterm, sigint;
    struct cg_server srv;
    int              stopping;
};

static void
on_stopped(void *data)
{
    struct app *app = data;

    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
}

static void
on_signal(uv_signal_t *h, int signum)
{
    struct app *app = h->data;

    if (app->stopping) {
        cg_log(CG_LOG_WARN, "second %s: exiting without draining", strsignal(signum));
        _exit(1);
    }
    app->stopping = 1;
    cg_log(CG_LOG_NOTICE, "%s: shutting down", strsignal(signum));
    cg_server_stop(&app->srv, on_stopped, app);
}

/* Log the effective configuration (secrets redacted) as one line. */
static void
log_config(const struct cg_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    if (f == NULL)
        return;
    cg_config_dump(cfg, f, 1);
    fclose(f);
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n')
            text[i] = ' ';
    cg_log(CG_LOG_NOTICE, "chatgate %s starting with %s", CG_VERSION, text);
    free(text);
}

int
main(int argc, char **argv)
{
    static struct app app;
    struct cg_config cfg;
    int help = 0, print = 0, rc;
    char err[512];

    if (cg_config_init(&cfg) < 0) {
        fprintf(stderr, "chatgate: out of memory\n");
        return 1;
    }
    rc = cg_config_load(&cfg, argc, argv, environ, &help, &print, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "chatgate: %s\n(see chatgate --help)\n", err);
        cg_config_cleanup(&cfg);
        return 2;
    }
    if (help || print) {
        if (help)
            cg_config_help(stdout, argv[0]);
        else
            cg_config_dump(&cfg, stdout, 1);
        cg_config_cleanup(&cfg);
        return 0;
    }
    cg_log_set_level(cfg.log_threshold);
    cg_log_route_lws();
    log_config(&cfg);

    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&app.loop);
    if (cg_server_start(&app.srv, &app.loop, &cfg) < 0) {
        uv_run(&app.loop, UV_RUN_DEFAULT);    /* let started handles close */
        uv_loop_close(&app.loop);
        cg_config_cleanup(&cfg);
        return 1;
    }
    uv_signal_init(&app.loop, &app.sigterm);
    uv_signal_init(&app.loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);

    uv_run(&app.loop, UV_RUN_DEFAULT);

    rc = uv_loop_close(&app.loop);
    if (rc != 0)
        cg_log(CG_LOG_WARN, "event loop closed with handles still open (%s)",
               uv_strerror(rc));
    cg_config_cleanup(&cfg);
    return 0;
}
