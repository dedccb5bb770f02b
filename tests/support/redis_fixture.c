/* redis_fixture.c - a private redis-server per test (see redis_fixture.h).
 *
 * fork + exec rather than posix_spawn so the child can ask for SIGKILL
 * when the test process dies (PR_SET_PDEATHSIG): a crashed test must not
 * leave servers behind. Readiness is "answers PING on its socket". */
#include "fmacros.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "redis_fixture.h"

static const char *
fixture_password(const struct cg_redis_fixture *f)
{
    for (int i = 0; f->extra[i] && f->extra[i + 1]; i++)
        if (strcmp(f->extra[i], "--requirepass") == 0)
            return f->extra[i + 1];
    return NULL;
}

static redisContext *
fixture_connect(const struct cg_redis_fixture *f)
{
    struct timeval tv = { 2, 0 };
    redisContext *c = redisConnectUnixWithTimeout(f->sock, tv);
    const char *pw = fixture_password(f);

    if (c == NULL || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    if (pw) {
        redisReply *r = redisCommand(c, "AUTH %s", pw);
        int ok = r && r->type != REDIS_REPLY_ERROR;
        if (r)
            freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int
spawn(struct cg_redis_fixture *f)
{
    char logfile[128];
    const char *argv[24];
    int n = 0;
    pid_t parent = getpid(), pid;

    snprintf(logfile, sizeof logfile, "%s/redis.log", f->dir);
    unlink(f->sock);
    argv[n++] = f->server;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--unixsocket";
    argv[n++] = f->sock;
    argv[n++] = "--unixsocketperm";
    argv[n++] = "700";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = f->dir;
    argv[n++] = "--logfile";
    argv[n++] = logfile;
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    for (int i = 0; f->extra[i] && i < CG_REDIS_FIXTURE_MAX_ARGS; i++)
        argv[n++] = f->extra[i];
    argv[n] = NULL;

    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "redis fixture: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
        }
        execvp(f->server, (char *const *)argv);
        fprintf(stderr, "redis fixture: cannot run %s: %s\n", f->server, strerror(errno));
        _exit(127);
    }
    f->pid = pid;

    /* Up to 10 s for the first PONG. */
    for (int i = 0; i < 1000; i++) {
        int status;
        redisContext *c;

        if (waitpid(pid, &status, WNOHANG) == pid) {
            f->pid = 0;
            fprintf(stderr, "redis fixture: %s exited at start (see %s)\n", f->server, logfile);
            return -1;
        }
        if ((c = fixture_connect(f)) != NULL) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return 0;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "redis fixture: %s did not answer within 10 s\n", f->server);
    cg_redis_fixture_kill(f);
    return -1;
}

int
cg_redis_fixture_start(struct cg_redis_fixture *f, const char *server)
{
    const char *env = getenv("CHATGATE_REDIS_SERVER");

    f->pid = 0;
    if (server == NULL)
        server = env && *env ? env : NULL;
#ifdef CG_REDIS_SERVER
    if (server == NULL && CG_REDIS_SERVER[0])
        server = CG_REDIS_SERVER;
#endif
    if (server == NULL)
        server = "redis-server";
    snprintf(f->server, sizeof f->server, "%s", server);
    snprintf(f->dir, sizeof f->dir, "/tmp/cg-redis-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        fprintf(stderr, "redis fixture: mkdtemp: %s\n", strerror(errno));
        f->dir[0] = '\0';
        return -1;
    }
    snprintf(f->sock, sizeof f->sock, "%s/redis.sock", f->dir);
    snprintf(f->url, sizeof f->url, "unix://%s", f->sock);
    return spawn(f);
}

int
cg_redis_fixture_restart(struct cg_redis_fixture *f)
{
    if (f->pid)
        cg_redis_fixture_kill(f);
    return spawn(f);
}

void
cg_redis_fixture_kill(struct cg_redis_fixture *f)
{
    if (f->pid <= 0)
        return;
    kill(f->pid, SIGKILL);
    while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    f->pid = 0;
}

void
cg_redis_fixture_pause(struct cg_redis_fixture *f, int paused)
{
    if (f->pid > 0)
        kill(f->pid, paused ? SIGSTOP : SIGCONT);
}

void
cg_redis_fixture_stop(struct cg_redis_fixture *f)
{
    char path[128];

    if (f->pid > 0) {
        kill(f->pid, SIGCONT);
        kill(f->pid, SIGTERM);
        for (int i = 0; i < 300; i++) {
            if (waitpid(f->pid, NULL, WNOHANG) == f->pid) {
                f->pid = 0;
                break;
            }
            sleep_ms(10);
        }
        cg_redis_fixture_kill(f);
    }
    if (f->dir[0]) {
        unlink(f->sock);
        snprintf(path, sizeof path, "%s/redis.log", f->dir);
        unlink(path);
        rmdir(f->dir);
        f->dir[0] = '\0';
    }
}

const char *
cg_redis_fixture_url(const struct cg_redis_fixture *f)
{
    return f->url;
}

struct redisReply *
cg_redis_fixture_command(const struct cg_redis_fixture *f, const char *fmt, ...)
{
    redisContext *c = fixture_connect(f);
    redisReply *r;
    va_list ap;

    if (c == NULL)
        return NULL;
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

struct redisReply *
cg_redis_fixture_commandv(const struct cg_redis_fixture *f, int argc, const char **argv,
                          const size_t *argvlen)
{
    redisContext *c = fixture_connect(f);
    redisReply *r;

    if (c == NULL)
        return NULL;
    r = redisCommandArgv(c, argc, argv, argvlen);
    redisFree(c);
    return r;
}
