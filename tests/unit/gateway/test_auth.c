/* test_auth.c - auth.c's login limit against a real redis-server
 * (tests/support/redis_fixture), through the real store on a real libuv
 * loop: failed logins counted per (account, address), per address and per
 * account in fixed windows, narrowest first; what a refusal answers; that
 * successes give their counts back; that every key expires.
 *
 * Every test loads its config with cg_config_load() (the limits it needs
 * as flags), starts its own server, store and auth (start()), runs the
 * loop until each login answered, and ends with finish(), which asserts
 * that every handle was closed. */
#include "fmacros.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "chat/auth.h"
#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/store.h"
#include "redis_fixture.h"

#ifndef CG_REDIS_SERVER
#define CG_REDIS_SERVER "redis-server"
#endif

#define PASSWORD "correct horse"

static struct {
    int                     started;
    uv_loop_t               loop;
    uv_timer_t              tick;
    struct cg_redis_fixture redis;
    struct cg_config        cfg;
    struct cg_metrics       m;
    cg_store               *st;
    cg_auth                *auth;
    int                     ready;
    int                     closed;
} E;

/* What one auth call answered. */
struct answer {
    int     done;
    int     err;
    int64_t retry_after_s;
};

#define RUN_UNTIL(cond, ms)                                                   \
    do {                                                                      \
        uint64_t dl_ = uv_hrtime() + (uint64_t)(ms) * 1000000u;               \
        while (!(cond) && uv_hrtime() < dl_)                                  \
            uv_run(&E.loop, UV_RUN_ONCE);                                     \
    } while (0)

static void on_tick(uv_timer_t *t) { (void)t; }

static void
on_state(int ready, void *data)
{
    (void)data;
    E.ready = ready;
}

/* Redis, then a store and an auth on a fresh loop, with the config that
 * the flags (NULL-terminated) give. */
static void
start(const char *const *flags)
{
    char url[160], *argv[32], err[512];
    char *env[] = { NULL };
    int argc = 0;

    memset(&E, 0, sizeof E);
    cg_log_set_level(CG_LOG_ERROR);
    cr_assert(eq(int, cg_redis_fixture_start(&E.redis, getenv("CHATGATE_REDIS_SERVER")
                                                 ? NULL : CG_REDIS_SERVER), 0),
              "redis-server must start");
    snprintf(url, sizeof url, "unix://%s", E.redis.sock);
    argv[argc++] = "chatgate";
    argv[argc++] = "--redis";
    argv[argc++] = url;
    argv[argc++] = "--password-iterations";
    argv[argc++] = "1000";
    for (; flags != NULL && *flags != NULL; flags++)
        argv[argc++] = (char *)*flags;
    argv[argc] = NULL;
    cr_assert(eq(int, cg_config_init(&E.cfg), 0));
    cr_assert(eq(int, cg_config_load(&E.cfg, argc, argv, env, NULL, NULL, err, sizeof err),
                 0), "config: %s", err);
    cr_assert(eq(int, uv_loop_init(&E.loop), 0));
    uv_timer_init(&E.loop, &E.tick);
    uv_timer_start(&E.tick, on_tick, 5, 5);
    cr_assert(eq(int, cg_store_create(&E.loop, &E.cfg, &E.m, &E.st), 0));
    cg_store_set_state_cb(E.st, on_state, NULL);
    cr_assert(eq(int, cg_auth_create(&E.loop, &E.cfg, E.st, &E.m, &E.auth), 0));
    E.started = 1;
    RUN_UNTIL(E.ready == 1, 5000);
    cr_assert(eq(int, E.ready, 1), "store must become ready");
}

static void
on_closed(void *data)
{
    (void)data;
    E.closed = 1;
}

static void
teardown_impl(int check)
{
    int loop_rc;

    if (!E.started)
        return;
    E.started = 0;
    cg_auth_destroy(E.auth);
    E.auth = NULL;
    cg_store_close(E.st, on_closed, NULL);
    RUN_UNTIL(E.closed, 5000);
    uv_close((uv_handle_t *)&E.tick, NULL);
    uv_run(&E.loop, UV_RUN_DEFAULT);
    loop_rc = uv_loop_close(&E.loop);
    cg_config_cleanup(&E.cfg);
    cg_redis_fixture_stop(&E.redis);
    if (check) {
        cr_assert(E.closed, "close_cb must fire");
        cr_assert(eq(int, loop_rc, 0), "every handle must be closed");
    }
}

/* Criterion does not fail a test for assertions in .fini: the checks run
 * here, at the end of each test body. */
static void
finish(void)
{
    teardown_impl(1);
}

static void
teardown(void)
{
    teardown_impl(0);
}

TestSuite(cg_auth, .fini = teardown, .timeout = 60);

/* ---- driving auth ------------------------------------------------------ */

static void
on_answer(int err, const struct cg_principal *who, const char *token, void *data)
{
    struct answer *a = data;

    (void)token;
    a->done = 1;
    a->err = err;
    if (err == CG_E_LIMIT) {
        cr_assert(who != NULL, "a refusal carries who->retry_after_s");
        a->retry_after_s = who->retry_after_s;
    }
}

static void
register_user(const char *name)
{
    struct answer a = { 0 };

    cr_assert(eq(int, cg_auth_register(E.auth, name, strlen(name), PASSWORD,
                                       strlen(PASSWORD), "127.0.0.1", on_answer, &a), 0));
    RUN_UNTIL(a.done, 10000);
    cr_assert(eq(int, a.err, 0), "register %s", name);
}

/* One login of name with password from addr: its answer. */
static struct answer
login(const char *name, const char *password, const char *addr)
{
    struct answer a = { 0 };
    int rc = cg_auth_login(E.auth, name, strlen(name), password, strlen(password), addr,
                           on_answer, &a);

    cr_assert(eq(int, rc, 0), "cg_auth_login %s from %s returned %d", name, addr, rc);
    RUN_UNTIL(a.done, 10000);
    cr_assert(a.done, "login %s from %s must answer", name, addr);
    return a;
}

static void
expect_login(const char *name, const char *password, const char *addr, int want)
{
    struct answer a = login(name, password, addr);

    cr_assert(eq(int, a.err, want), "login %s (%s) from %s: %d, expected %d", name,
              strcmp(password, PASSWORD) == 0 ? "right password" : "wrong password",
              addr, a.err, want);
}

/* A refused login: CG_E_LIMIT, retrying after 1 .. window_s seconds. */
static void
expect_refused(const char *name, const char *password, const char *addr,
               int64_t window_s)
{
    struct answer a = login(name, password, addr);

    cr_assert(eq(int, a.err, CG_E_LIMIT), "login %s from %s: %d, expected CG_E_LIMIT",
              name, addr, a.err);
    cr_assert(a.retry_after_s >= 1 && a.retry_after_s <= window_s,
              "Retry-After %lld outside 1..%lld", (long long)a.retry_after_s,
              (long long)window_s);
}

/* ---- Redis inspection ---------------------------------------------------- */

static long long
rint_(const char *cmd, const char *key)
{
    redisReply *r = cg_redis_fixture_command(&E.redis, "%s %s", cmd, key);
    long long v;

    cr_assert(r != NULL);
    cr_assert(eq(int, r->type, REDIS_REPLY_INTEGER), "%s %s: reply type %d", cmd, key,
              r->type);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

/* The value of a counter key (0 when it does not exist). */
static long long
counter(const char *key)
{
    redisReply *r = cg_redis_fixture_command(&E.redis, "GET %s", key);
    long long v = 0;

    cr_assert(r != NULL);
    if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    else
        cr_assert(eq(int, r->type, REDIS_REPLY_NIL), "GET %s: reply type %d", key, r->type);
    freeReplyObject(r);
    return v;
}

/* The counter reaches want: counts are given back after the answer, in
 * the background (later commands of this node run after them: the store
 * keeps plain commands in order). */
static void
expect_counter(const char *key, long long want)
{
    RUN_UNTIL(counter(key) == want, 2000);
    cr_assert(eq(llong, counter(key), want), "%s", key);
}

/* key exists and expires within window_s. */
static void
expect_expiring(const char *key, int64_t window_s)
{
    long long ttl = rint_("PTTL", key);

    cr_assert(ttl > 0 && ttl <= window_s * 1000, "PTTL %s = %lld, expected 1..%lld",
              key, ttl, (long long)window_s * 1000);
}

/* ---- the tests ------------------------------------------------------------ */

Test(cg_auth, one_address_cannot_lock_the_account_out_of_another)
{
    start((const char *[]){ "--login-account-addr-max", "3", "--login-account-max", "10",
                            NULL });
    register_user("Victim");
    for (int i = 0; i < 3; i++)
        expect_login("victim", "wrong password", "203.0.113.7", CG_E_AUTH);
    /* The 4th, and as many more as the attacker likes: refused, and the
     * right password too, from that address. */
    for (int i = 0; i < 30; i++)
        expect_refused("victim", "wrong password", "203.0.113.7", 300);
    expect_refused("VICTIM", PASSWORD, "203.0.113.7", 300);
    /* 33 attempts, more than login_account_max: only 3 reached the
     * account's bucket. Its owner logs in from elsewhere. */
    expect_counter("cg:login:u:victim", 3);
    expect_login("victim", PASSWORD, "198.51.100.20", 0);
    expect_refused("victim", "wrong password", "203.0.113.7", 300);
    cr_assert(eq(u64, E.m.login_limited, 32));
    finish();
}

Test(cg_auth, the_account_bucket_bounds_guessing_from_many_addresses)
{
    char addr[32];

    start((const char *[]){ "--login-account-addr-max", "2", "--login-account-max", "5",
                            NULL });
    register_user("victim");
    /* 5 failures from 3 addresses: each within its own limit. */
    for (int i = 0; i < 5; i++) {
        snprintf(addr, sizeof addr, "203.0.113.%d", 1 + i / 2);
        expect_login("victim", "wrong password", addr, CG_E_AUTH);
    }
    /* The 6th, from a fresh address, with the right password too. */
    expect_refused("victim", "wrong password", "203.0.113.50", 900);
    expect_refused("victim", PASSWORD, "203.0.113.51", 900);
    /* A refusal by the account's bucket gives back what it took from the
     * narrower ones. */
    expect_counter("cg:login:ua:victim:203.0.113.51", 0);
    expect_counter("cg:login:a:203.0.113.51", 0);
    finish();
}

Test(cg_auth, the_address_bucket_counts_failures_on_every_account)
{
    char name[16];

    start((const char *[]){ "--login-addr-max", "3", NULL });
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "user%d", i);
        register_user(name);
    }
    expect_login("user0", "wrong password", "203.0.113.7", CG_E_AUTH);
    expect_login("user1", "wrong password", "203.0.113.7", CG_E_AUTH);
    /* Unknown names count too: no way round the limit by guessing names. */
    expect_login("nobody", "wrong password", "203.0.113.7", CG_E_AUTH);
    expect_refused("user3", PASSWORD, "203.0.113.7", 300);
    /* Refused by the address bucket: the (account, address) count of that
     * attempt was given back. */
    expect_counter("cg:login:ua:user3:203.0.113.7", 0);
    expect_login("user3", PASSWORD, "198.51.100.20", 0);
    finish();
}

Test(cg_auth, successful_logins_give_their_counts_back)
{
    start((const char *[]){ "--login-account-addr-max", "2", "--login-addr-max", "2",
                            "--login-account-max", "2", NULL });
    register_user("often");
    for (int i = 0; i < 6; i++)
        expect_login("often", PASSWORD, "203.0.113.7", 0);
    expect_counter("cg:login:ua:often:203.0.113.7", 0);
    expect_counter("cg:login:a:203.0.113.7", 0);
    expect_counter("cg:login:u:often", 0);
    /* The failures still count, all of them. */
    expect_login("often", "wrong password", "203.0.113.7", CG_E_AUTH);
    expect_login("often", "wrong password", "203.0.113.7", CG_E_AUTH);
    expect_refused("often", PASSWORD, "203.0.113.7", 300);
    finish();
}

Test(cg_auth, every_limit_key_expires_within_its_window)
{
    start((const char *[]){ "--login-account-addr-max", "1",
                            "--login-account-addr-window-s", "60",
                            "--login-addr-window-s", "120",
                            "--login-account-window-s", "240", NULL });
    register_user("victim");
    expect_login("victim", "wrong password", "203.0.113.7", CG_E_AUTH);
    expect_refused("victim", "wrong password", "203.0.113.7", 60);
    expect_login("victim", PASSWORD, "198.51.100.20", 0);
    expect_expiring("cg:login:ua:victim:203.0.113.7", 60);
    expect_expiring("cg:login:a:203.0.113.7", 120);
    expect_expiring("cg:login:u:victim", 240);
    /* A success's keys, given back to 0, expire as well. */
    expect_expiring("cg:login:ua:victim:198.51.100.20", 60);
    expect_expiring("cg:login:a:198.51.100.20", 120);
    finish();
}

Test(cg_auth, attempts_count_again_when_the_window_ends)
{
    start((const char *[]){ "--login-account-addr-max", "1",
                            "--login-account-addr-window-s", "1", NULL });
    register_user("victim");
    expect_login("victim", "wrong password", "203.0.113.7", CG_E_AUTH);
    expect_refused("victim", PASSWORD, "203.0.113.7", 1);
    RUN_UNTIL(rint_("EXISTS", "cg:login:ua:victim:203.0.113.7") == 0, 3000);
    expect_login("victim", PASSWORD, "203.0.113.7", 0);
    finish();
}

Test(cg_auth, ipv6_clients_count_by_their_64)
{
    start((const char *[]){ "--login-account-addr-max", "2", NULL });
    register_user("victim");
    expect_login("victim", "wrong password", "2001:db8:1:2::1", CG_E_AUTH);
    expect_login("victim", "wrong password", "2001:db8:1:2::2", CG_E_AUTH);
    expect_refused("victim", "wrong password", "2001:db8:1:2:ffff::3", 300);
    /* Another /64 is another client. */
    expect_login("victim", PASSWORD, "2001:db8:1:3::1", 0);
    finish();
}

Test(cg_auth, a_store_failure_is_not_a_refusal)
{
    struct answer a = { 0 };
    int rc;

    start(NULL);
    register_user("victim");
    cg_redis_fixture_kill(&E.redis);
    rc = cg_auth_login(E.auth, "victim", 6, PASSWORD, strlen(PASSWORD), "203.0.113.7",
                       on_answer, &a);
    if (rc == 0) {
        RUN_UNTIL(a.done, 10000);
        rc = a.err;
    }
    cr_assert(rc == CG_E_STORE || rc == CG_E_CLOSED, "login with Redis gone: %d", rc);
    cr_assert(eq(u64, E.m.login_limited, 0));
    finish();
}
