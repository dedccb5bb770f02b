/* redis_fixture.h - a private, throw-away redis-server for tests.
 *
 * Each fixture runs its own redis-server on a unix socket in a fresh
 * mkdtemp directory under /tmp (no TCP port: --port 0), with persistence
 * off (--save "" --appendonly no), so tests never touch a developer's
 * Redis and can run in parallel. The server is killed if the test process
 * dies (PR_SET_PDEATHSIG). Tests may kill, restart (same socket, empty
 * data) or pause it to exercise the gateway's failure paths.
 *
 * The redis-server binary: the server argument, else $CHATGATE_REDIS_SERVER,
 * else the compile-time CG_REDIS_SERVER (tests/unit/gateway/CMakeLists.txt
 * sets it from `which redis-server`), else "redis-server" on PATH. */
#ifndef CG_TEST_REDIS_FIXTURE_H
#define CG_TEST_REDIS_FIXTURE_H

#include <stddef.h>
#include <sys/types.h>

struct redisReply;

#define CG_REDIS_FIXTURE_MAX_ARGS 8

struct cg_redis_fixture {
    char        dir[64];      /* the mkdtemp directory */
    char        sock[96];     /* <dir>/redis.sock */
    char        url[112];     /* unix://<sock> */
    char        server[256];  /* redis-server binary */
    pid_t       pid;          /* 0 when not running */
    /* Extra redis-server arguments (e.g. "--requirepass", "pw"); set before
     * start, NULL-terminated, strings borrowed. */
    const char *extra[CG_REDIS_FIXTURE_MAX_ARGS + 1];
};

/* Start redis-server and wait (up to 10 s) until it answers PING.
 * Returns 0, or -1 with a message on stderr. */
int cg_redis_fixture_start(struct cg_redis_fixture *f, const char *server);

/* Start a fresh (empty) server on the same socket after kill/stop. */
int cg_redis_fixture_restart(struct cg_redis_fixture *f);

/* SIGKILL the server and reap it; the directory stays. */
void cg_redis_fixture_kill(struct cg_redis_fixture *f);

/* SIGSTOP (paused != 0) or SIGCONT: a hung server. */
void cg_redis_fixture_pause(struct cg_redis_fixture *f, int paused);

/* Stop the server (if running) and remove its directory. Idempotent. */
void cg_redis_fixture_stop(struct cg_redis_fixture *f);

/* "unix:///tmp/cg-redis-XXXXXX/redis.sock", for redis_url. */
const char *cg_redis_fixture_url(const struct cg_redis_fixture *f);

/* Run one command on a new blocking connection (password from extra's
 * --requirepass, if any). Returns the reply (free with freeReplyObject) or
 * NULL if the server cannot be reached. */
struct redisReply *cg_redis_fixture_command(const struct cg_redis_fixture *f,
                                            const char *fmt, ...);
struct redisReply *cg_redis_fixture_commandv(const struct cg_redis_fixture *f, int argc,
                                             const char **argv, const size_t *argvlen);

#endif
